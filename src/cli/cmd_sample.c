/* `scoreloss sample`: draws inputs from a distribution (or resamples the rows
 * of a CSV file) and writes them as columns x1..xd. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "scoreloss/csv.h"
#include "scoreloss/dist.h"

static const cli_option options[] = {
    {"dist", 0, CLI_VALUE, "SPEC", NULL, "the input distribution: " CLI_DIST_SPECS},
    {"input", 0, CLI_VALUE, "FILE.csv", NULL,
     "instead of --dist: draw rows of FILE.csv (columns x1..xd) with replacement"},
    {"d", 0, CLI_VALUE, "D", NULL, "dimension (required with --dist; with --input it must match)"},
    {"n", 0, CLI_VALUE | CLI_REQUIRED, "N", NULL, "number of samples"},
    {"seed", 0, CLI_VALUE, "S", "1", "random seed"},
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "X.csv", NULL,
     "output CSV with columns x1..xd ('-' for standard output)"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_sample = {
    "sample",
    "draw input samples x from a distribution and write them as columns x1..xd",
    "(--dist SPEC --d D | --input FILE.csv) --n N [--seed S] -o X.csv",
    "The samples depend only on the seed, never on the number of threads. The\n"
    "output starts with a comment line recording the parameters.",
    "scoreloss sample --dist logistic --d 10 --n 100000 --seed 1 -o X.csv",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* The distribution to draw from: --dist SPEC in dimension --d, or the rows of
 * --input (whose column count is then d). */
static int make_dist(const cli_args *args, size_t *d, sl_dist **dist) {
    const char *spec = cli_value(args, "dist");
    const char *input = cli_value(args, "input");
    sl_status st;
    if (spec) {
        st = sl_dist_from_spec(spec, *d, dist);
        return st ? cli_option_lib_error(args, "dist", st) : 0;
    }
    size_t rows = 0, file_d = 0;
    double *X = NULL;
    int status = cli_read_x(args, input, &rows, &file_d, &X, NULL);
    if (status) return status;
    if (cli_given(args, "d") && *d != file_d) {
        free(X);
        return cli_option_error(args, "d", "%zu differs from the %zu columns x1..x%zu of %s", *d,
                                file_d, file_d, input);
    }
    *d = file_d;
    st = sl_dist_from_samples(input, rows, file_d, X, dist);
    free(X);
    return st ? cli_lib_error(args, st) : 0;
}

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_sample, argc, argv, &args);
    if (status != CLI_RUN) return status;

    size_t d = 0, n = 0;
    uint64_t seed = 1;
    if ((status = cli_size(&args, "n", 1, SIZE_MAX, &n)) ||
        (status = cli_size(&args, "d", 1, SIZE_MAX, &d)) ||
        (status = cli_seed(&args, "seed", &seed)))
        return status;
    const char *spec = cli_value(&args, "dist");
    const char *input = cli_value(&args, "input");
    if (spec && input)
        return cli_error(&args, CLI_EXIT_USAGE, "give either --dist or --input, not both");
    if (!spec && !input)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --dist SPEC or --input FILE.csv (see scoreloss sample "
                         "--help)");
    if (spec && !cli_given(&args, "d"))
        return cli_error(&args, CLI_EXIT_USAGE, "missing option --d D (the dimension of --dist)");

    sl_dist *dist = NULL;
    if ((status = make_dist(&args, &d, &dist))) return status;

    double *X = NULL;
    char **names = NULL, *comment = NULL;
    sl_status st;
    if (!(X = cli_alloc_doubles(&args, n, d)) || !(comment = cli_comment(&args, NULL, NULL))) {
        status = CLI_EXIT_FAILURE;
    } else if (!(names = sl_names_numbered("x", d))) {
        status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory");
    } else if ((st = sl_dist_sample(dist, seed, n, X))) {
        status = cli_lib_error(&args, st);
    } else {
        status = cli_write_csv(&args, cli_value(&args, "output"), comment, n, d,
                               (const char *const *)names, X, d);
    }
    free(X);
    free(names);
    free(comment);
    sl_dist_free(dist);
    return status;
}
