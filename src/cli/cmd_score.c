/* `scoreloss score`: score functions g = grad log p and H = Hessian of log p
 * at query points, written per point as g_1..g_d and h_i_j (i <= j). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "scoreloss/csv.h"
#include "scoreloss/dist.h"

/* The score sources this command knows. Later estimators join this list. */
static const char *const methods[] = {"exact"};
#define NMETHODS (sizeof methods / sizeof methods[0])

/* Query points per call into the library (fewer in high dimension, so the
 * block x d x d Hessian buffer stays under 2^22 doubles); also the progress
 * granularity. */
#define SCORE_BLOCK 4096
#define SCORE_BLOCK_DOUBLES ((size_t)1 << 22)

static const cli_option options[] = {
    {"method", 0, CLI_VALUE | CLI_REQUIRED, "NAME", NULL,
     "score source; available: exact (the distribution's own g and H)"},
    {"dist", 0, CLI_VALUE, "SPEC", NULL, "distribution for --method exact: " CLI_DIST_SPECS},
    {"input", 0, CLI_VALUE | CLI_REQUIRED, "X.csv", NULL,
     "samples, columns x1..xd (they fix d; estimators fit to them)"},
    {"at", 0, CLI_VALUE, "Q.csv", NULL,
     "query points, columns x1..xd (default: the rows of --input)"},
    {"progress", 0, 0, NULL, NULL, "show progress on stderr even when it is not a terminal"},
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "S.csv", NULL,
     "output, one row per query point: g_1..g_d, then h_i_j for i <= j"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_score = {
    "score",
    "score functions g = grad log p and Hessian H of log p at query points",
    "--method exact --dist SPEC --input X.csv [--at Q.csv] [--progress] -o S.csv",
    "Columns: g_1..g_d, then the upper triangle of H row by row: h_1_1, h_1_2, ..,\n"
    "h_1_d, h_2_2, .., h_d_d (1-based). Sign convention: g = grad log p, so for\n"
    "N(0, I) g = -x and H = -I.",
    "scoreloss score --method exact --dist logistic --input X.csv -o S.csv",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* Column names g_1..g_d, h_1_1, h_1_2, .., h_d_d in one allocation. */
static char **score_names(size_t d, size_t cols) {
    const size_t each = 48;
    char **names = malloc(cols * sizeof *names + cols * each);
    if (!names) return NULL;
    char *pool = (char *)(names + cols);
    size_t c = 0;
    for (size_t i = 0; i < d; ++i, ++c) {
        names[c] = pool + c * each;
        snprintf(names[c], each, "g_%zu", i + 1);
    }
    for (size_t i = 0; i < d; ++i)
        for (size_t j = i; j < d; ++j, ++c) {
            names[c] = pool + c * each;
            snprintf(names[c], each, "h_%zu_%zu", i + 1, j + 1);
        }
    return names;
}

/* Exact scores of nq points in blocks, streamed to the output. */
static int write_exact(const cli_args *args, const sl_dist *dist, size_t nq, const double *Q,
                       size_t d) {
    const size_t cols = d + d * (d + 1) / 2;
    size_t block = SCORE_BLOCK_DOUBLES / (d * d);
    if (block > SCORE_BLOCK) block = SCORE_BLOCK;
    if (block > nq) block = nq;
    if (block == 0) block = 1;
    char *comment = cli_comment(args, NULL, NULL);
    char **names = score_names(d, cols);
    double *G = cli_alloc_doubles(args, block, d);
    double *H = G ? cli_alloc_doubles(args, block, d * d) : NULL;
    double *row = malloc(cols * sizeof *row);
    sl_csv_writer *w = NULL;
    cli_progress progress;
    int status = 0;
    sl_status st = SL_OK;
    if (!comment || !G || !H) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if (!names || !row) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    st = sl_csv_writer_open(cli_value(args, "output"), comment, cols, (const char *const *)names,
                            &w);
    cli_progress_start(&progress, args, cli_given(args, "progress"));
    for (size_t lo = 0; lo < nq && !st; lo += block) {
        size_t m = nq - lo < block ? nq - lo : block;
        st = sl_dist_grad_hess(dist, m, Q + lo * d, G, H);
        for (size_t r = 0; r < m && !st; ++r) {
            const double *g = G + r * d, *h = H + r * d * d;
            size_t c = 0;
            for (size_t i = 0; i < d; ++i) row[c++] = g[i];
            for (size_t i = 0; i < d; ++i)
                for (size_t j = i; j < d; ++j) row[c++] = h[i * d + j];
            st = sl_csv_writer_row(w, row);
        }
        cli_progress_update(&progress, lo + m, nq);
    }
    cli_progress_finish(&progress);
    if (st)
        sl_csv_writer_abort(w);
    else
        st = sl_csv_writer_close(w);
    if (st) status = cli_lib_error(args, st);
done:
    free(comment);
    free(names);
    free(G);
    free(H);
    free(row);
    return status;
}

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_score, argc, argv, &args);
    if (status != CLI_RUN) return status;

    const char *method = cli_value(&args, "method");
    size_t mi = 0;
    while (mi < NMETHODS && strcmp(methods[mi], method) != 0) ++mi;
    if (mi == NMETHODS) {
        char list[256] = "";
        for (size_t i = 0; i < NMETHODS; ++i)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     methods[i]);
        return cli_option_error(&args, "method", "unknown method '%s' (available: %s)", method,
                                list);
    }
    const char *spec = cli_value(&args, "dist");
    if (!spec)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --dist SPEC (--method exact needs the distribution)");
    const char *input = cli_value(&args, "input");
    const char *at = cli_value(&args, "at");

    size_t n = 0, d = 0, nq = 0, dq = 0;
    double *X = NULL, *Qfile = NULL;
    sl_dist *dist = NULL;
    sl_status st;
    if ((status = cli_read_x(&args, input, &n, &d, &X, NULL))) goto done;
    if ((st = sl_dist_from_spec(spec, d, &dist))) {
        status = cli_option_lib_error(&args, "dist", st);
        goto done;
    }
    const unsigned need = SL_DIST_GRAD | SL_DIST_HESS;
    if ((sl_dist_caps(dist) & need) != need) {
        status = cli_option_error(&args, "dist",
                                  "distribution '%s' is sample-only: it has no exact gradient and "
                                  "Hessian, which --method exact needs (a plug-in must export "
                                  "gradient and hessian callbacks)",
                                  sl_dist_name(dist));
        goto done;
    }
    if (at) {
        if ((status = cli_read_x(&args, at, &nq, &dq, &Qfile, NULL))) goto done;
        if (dq != d) {
            status = cli_error(&args, CLI_EXIT_FAILURE,
                               "the query points %s have d = %zu columns (x1..x%zu) but the "
                               "samples %s have d = %zu",
                               at, dq, dq, input, d);
            goto done;
        }
    }
    status = write_exact(&args, dist, at ? nq : n, at ? Qfile : X, d);
done:
    free(X);
    free(Qfile);
    sl_dist_free(dist);
    return status;
}
