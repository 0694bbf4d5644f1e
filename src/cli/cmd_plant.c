/* `scoreloss plant`: labels inputs with a planted one-hidden-layer network
 * and writes the data (x1..xd,y) and the truth (a,w1..wd). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "scoreloss/csv.h"
#include "scoreloss/network.h"
#include "scoreloss/rng.h"

/* Streams of the seed for the three random parts, so changing how one is
 * drawn leaves the others as they were. */
enum { STREAM_W = 1, STREAM_A = 2, STREAM_NOISE = 3 };

static const cli_option options[] = {
    {"input", 0, CLI_VALUE | CLI_REQUIRED, "X.csv", NULL, "inputs, columns x1..xd"},
    {"k", 0, CLI_VALUE, "K", NULL, "hidden units, 1 <= K <= d (required unless --truth-in)"},
    {"act", 0, CLI_VALUE, "NAME", "relu",
     "activation: relu, sigmoid, tanh, erf, softplus, quadratic or cubic"},
    {"w", 0, CLI_VALUE, "SPEC", "orthonormal",
     "first layer W: orthonormal, identity, random or random:COND (COND >= 1)"},
    {"a", 0, CLI_VALUE, "SPEC", "ones",
     "second layer a: ones, positive (uniform on [0.5, 1.5]) or "
     "A1,..,Ak"},
    {"noise", 0, CLI_VALUE, "SIGMA", "0", "standard deviation of the Gaussian label noise"},
    {"seed", 0, CLI_VALUE, "S", "1", "random seed (W, a and the noise use separate streams of it)"},
    {"truth-in", 0, CLI_VALUE, "TRUTH.csv", NULL,
     "take W and a from this truth file (columns a,w1..wd) instead of drawing them"},
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "DATA.csv", NULL,
     "output data, columns x1..xd,y"},
    {"truth", 0, CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "TRUTH.csv", NULL,
     "output truth, one row per hidden unit, columns a,w1..wd"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_plant = {
    "plant",
    "label inputs with a planted network y = sum_i a_i act(w_i . x) + noise",
    "--input X.csv --k K [--act NAME] [--w SPEC] [--a SPEC] [--noise SIGMA] [--seed S]\n"
    "                 [--truth-in TRUTH.csv] -o DATA.csv --truth TRUTH.csv",
    "Both outputs appear only when both are complete. W is k x d; the truth file\n"
    "has one row per hidden unit (a, then the row w_i).",
    "scoreloss plant --input X.csv --k 5 --w random:10 --noise 0.1 --seed 1 -o DATA.csv "
    "--truth TRUTH.csv",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* The network: read from --truth-in, or k x d drawn from --w and --a. */
static int make_network(const cli_args *args, size_t k, size_t d, sl_act act, uint64_t seed,
                        sl_network **out) {
    const char *input = cli_value(args, "input");
    const char *truth_in = cli_value(args, "truth-in");
    sl_status st;
    if (truth_in) {
        if ((st = sl_network_read(truth_in, act, out))) return cli_lib_error(args, st);
        if ((*out)->d != d)
            return cli_error(args, CLI_EXIT_FAILURE,
                             "%s has %zu inputs (w1..w%zu) but %s has d = %zu columns x1..x%zu",
                             truth_in, (*out)->d, (*out)->d, input, d, d);
        if (cli_given(args, "k") && (*out)->k != k)
            return cli_option_error(args, "k", "%zu differs from the %zu hidden units of %s", k,
                                    (*out)->k, truth_in);
        return 0;
    }
    if (k > d)
        return cli_option_error(args, "k",
                                "k = %zu exceeds d = %zu, the number of columns x1..x%zu of %s "
                                "(need k <= d)",
                                k, d, d, input);
    if ((st = sl_network_alloc(k, d, act, out))) return cli_lib_error(args, st);
    if ((st = sl_network_set_w(*out, cli_value(args, "w"), sl_rng_derive(seed, STREAM_W))))
        return cli_option_lib_error(args, "w", st);
    if ((st = sl_network_set_a(*out, cli_value(args, "a"), sl_rng_derive(seed, STREAM_A))))
        return cli_option_lib_error(args, "a", st);
    return 0;
}

/* Writes the data through a streaming writer held open while the truth file
 * is written, so a failure of either leaves both targets as they were; only
 * the data file's final rename comes after the truth is in place. */
static int write_outputs(const cli_args *args, const sl_network *net, size_t n, const double *X,
                         const double *y, const char *input_comment) {
    const size_t d = net->d;
    char *data_comment = cli_comment(args, "input: ", input_comment);
    char *truth_comment = cli_comment(args, NULL, NULL);
    char **xnames = sl_names_numbered("x", d);
    const char **names = malloc((d + 1) * sizeof *names);
    double *row = malloc((d + 1) * sizeof *row);
    sl_csv_writer *w = NULL;
    int status = 0;
    sl_status st;
    if (!data_comment || !truth_comment) {
        status = CLI_EXIT_FAILURE;
    } else if (!xnames || !names || !row) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
    } else {
        for (size_t j = 0; j < d; ++j) names[j] = xnames[j];
        names[d] = "y";
        st = sl_csv_writer_open(cli_value(args, "output"), data_comment, d + 1, names, &w);
        for (size_t i = 0; i < n && !st; ++i) {
            memcpy(row, X + i * d, d * sizeof *row);
            row[d] = y[i];
            st = sl_csv_writer_row(w, row);
        }
        if (!st) st = sl_network_write(net, cli_value(args, "truth"), truth_comment);
        if (st) {
            sl_csv_writer_abort(w);
        } else {
            st = sl_csv_writer_close(w);
        }
        if (st) status = cli_lib_error(args, st);
    }
    free(data_comment);
    free(truth_comment);
    free(xnames);
    free(names);
    free(row);
    return status;
}

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_plant, argc, argv, &args);
    if (status != CLI_RUN) return status;

    size_t k = 0;
    double noise = 0.0;
    uint64_t seed = 1;
    if ((status = cli_size(&args, "k", 1, SIZE_MAX, &k)) ||
        (status = cli_double(&args, "noise", 0.0, HUGE_VAL, "a number >= 0", &noise)) ||
        (status = cli_seed(&args, "seed", &seed)))
        return status;
    const int from_file = cli_given(&args, "truth-in");
    if (from_file && (cli_given(&args, "w") || cli_given(&args, "a")))
        return cli_error(&args, CLI_EXIT_USAGE, "--truth-in gives W and a: leave out --w and --a");
    if (!from_file && !cli_given(&args, "k"))
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --k K (see scoreloss plant --help)");
    if (strcmp(cli_value(&args, "output"), cli_value(&args, "truth")) == 0)
        return cli_error(&args, CLI_EXIT_USAGE, "-o and --truth name the same file '%s'",
                         cli_value(&args, "truth"));
    sl_act act;
    sl_status st = sl_act_from_name(cli_value(&args, "act"), &act);
    if (st) return cli_option_lib_error(&args, "act", st);

    size_t n = 0, d = 0;
    double *X = NULL, *y = NULL;
    char *input_comment = NULL;
    sl_network *net = NULL;
    if ((status = cli_read_x(&args, cli_value(&args, "input"), &n, &d, &X, &input_comment)) ||
        (status = make_network(&args, k, d, act, seed, &net)))
        goto done;
    if (!(y = cli_alloc_doubles(&args, n, 1))) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((st = sl_network_label(net, n, X, noise, sl_rng_derive(seed, STREAM_NOISE), y))) {
        status = cli_lib_error(&args, st);
        goto done;
    }
    status = write_outputs(&args, net, n, X, y, input_comment);
done:
    free(X);
    free(y);
    free(input_comment);
    sl_network_free(net);
    return status;
}
