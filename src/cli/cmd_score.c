/* `scoreloss score`: score functions g = grad log p and H = Hessian of log p
 * at query points, estimated from samples (llsfe, kde, gauss, hermite) or
 * exact, written per point as g_1..g_d and h_i_j (i <= j); with --eval, the
 * accuracy of each method against a distribution's exact scores. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli_util.h"
#include "scoreloss/csv.h"
#include "scoreloss/dist.h"
#include "scoreloss/logdens.h"
#include "scoreloss/score.h"

/* Each method at most once, so at most the six there are. */
#define MAX_METHODS 6
#define METHOD_NAMES "llsfe, kde, gauss, hermite, exact, indep"

/* Rows formatted per call into the writer (bounds the row buffer). */
#define WRITE_BLOCK 4096

static const cli_option options[] = {
    {"method", 0, CLI_VALUE | CLI_REQUIRED, "NAME[,NAME..]", NULL,
     "score source(s): llsfe (local-likelihood fit), kde (gradient of log kernel density), "
     "gauss (one fitted Gaussian), hermite (N(0, I): g = -x, H = -I), exact (the distribution's "
     "own scores, needs --dist); several, comma-separated, only with --eval"},
    {"input", 0, CLI_VALUE | CLI_REQUIRED, "X.csv", NULL,
     "samples, columns x1..xd (they fix d; estimators fit to them)"},
    {"at", 0, CLI_VALUE, "Q.csv", NULL,
     "query points, columns x1..xd (default: the rows of --input, each left out of its own "
     "estimate)"},
    {"bandwidth", 0, CLI_VALUE, "SPEC", NULL,
     "kernel bandwidth of llsfe and kde: auto (default; held-out score matching over a grid), "
     "a fixed H > 0, knn:K (distance to the K-th nearest sample, K >= 2) or const:C"},
    {"bw-const", 0, CLI_VALUE, "C", NULL,
     "bandwidth h = C n^(-1/(d+6)), C > 0 (the same as --bandwidth const:C; not with "
     "--bandwidth)"},
    {"strategy", 0, CLI_VALUE, "NAME", "auto",
     "kernel sums over auto, allpairs (matrix products; fixed bandwidth only) or neighbours "
     "(k-d tree)"},
    {"cutoff", 0, CLI_VALUE, "R", "5",
     "neighbours strategy: kernel support in bandwidths, > 0 (weights beyond 5h are below "
     "3.7e-6)"},
    {"knn-eps", 0, CLI_VALUE, "E", "0",
     "knn:K bandwidths: find the K nearest (1 + E)-approximately, E >= 0 (each K-th distance "
     "within 1 + E of the exact one; faster at large n; 0 = exact)"},
    {"shrink", 0, CLI_VALUE, "NU0", NULL,
     "llsfe: weight in pseudo-samples of the pooled local covariance the local fit is shrunk "
     "towards, >= 0 (default: chosen with the automatic bandwidth; 3 with a given one)"},
    {"seed", 0, CLI_VALUE, "S", "1", "seed of the automatic bandwidth's held-out split"},
    {"dist", 0, CLI_VALUE, "SPEC", NULL,
     "distribution with exact scores, for --method exact and --eval: " CLI_DIST_SPECS},
    {"eval", 0, 0, NULL, NULL,
     "print to stdout one CSV row per method: its accuracy against the exact scores of --dist"},
    {"radius", 0, CLI_VALUE, "R", "2", "--eval: only query points with |x| <= R, R > 0"},
    {"progress", 0, 0, NULL, NULL, "show progress on stderr even when it is not a terminal"},
    {"output", 'o', CLI_VALUE | CLI_OUTPUT, "S.csv", NULL,
     "output, one row per query point: g_1..g_d, then h_i_j for i <= j (required unless "
     "--eval; one method only)"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_score = {
    "score",
    "score functions g = grad log p and Hessian H of log p, estimated or exact",
    "--method NAME[,NAME..] --input X.csv [--at Q.csv]\n"
    "         [--bandwidth auto|H|knn:K|const:C | --bw-const C]\n"
    "         [--strategy auto|allpairs|neighbours] [--cutoff R] [--knn-eps E]\n"
    "         [--shrink NU0] [--seed S] [--dist SPEC] [--eval [--radius R]] [--progress]\n"
    "         [-o S.csv]",
    "Columns: g_1..g_d, then the upper triangle of H row by row: h_1_1, h_1_2, ..,\n"
    "h_1_d, h_2_2, .., h_d_d (1-based). Sign convention: g = grad log p, so for\n"
    "N(0, I) g = -x and H = -I. Without --at, the scores are at the samples, each\n"
    "left out of its own estimate.\n"
    "\n"
    "The comment line of the output records the command and what the estimator\n"
    "chose (bandwidth, or median bandwidth for knn:K; strategy; points whose local\n"
    "fit was regularised); llsfe and kde also print it to stderr, one line each.\n"
    "\n"
    "--eval needs --dist with exact scores and prints the table\n"
    "  method,bandwidth,n,d,queries_in_radius,regularised,g_rel_mse,\n"
    "  s2_p5,s2_p25,s2_p50,s2_p75,s2_p95,s4_p5,s4_p25,s4_p50,s4_p75,s4_p95,seconds\n"
    "over the query points with |x| <= R: g_rel_mse = sum |g_hat - g|^2 / sum |g|^2,\n"
    "s2_pP the P-th percentile of ||S2_hat - S2||_2 / ||S2||_2, s4_pP the same for\n"
    "the locally quadratic S_4 in the Frobenius norm; bandwidth 0 for methods\n"
    "without one, seconds the estimation's wall time. One output file holds one\n"
    "method's scores: several methods need --eval and no -o; with one method and\n"
    "--eval, -o is optional.",
    "scoreloss score --method llsfe,kde,gauss --dist gmm2 --input X.csv --eval",
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

/* Writes the scores as g_1..g_d, h_i_j (i <= j), in blocks of rows. */
static int write_scores(const cli_args *args, const char *path, const char *comment,
                        const sl_scores *s) {
    const size_t d = s->d, nq = s->n, cols = d + d * (d + 1) / 2;
    const size_t block = nq < WRITE_BLOCK ? nq : WRITE_BLOCK;
    char **names = score_names(d, cols);
    double *rows = cli_alloc_doubles(args, block, cols);
    sl_csv_writer *w = NULL;
    int status = 0;
    if (!rows) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if (!names) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    sl_status st = sl_csv_writer_open(path, comment, cols, (const char *const *)names, &w);
    for (size_t lo = 0; lo < nq && !st; lo += block) {
        const size_t m = nq - lo < block ? nq - lo : block;
        for (size_t r = 0; r < m; ++r) {
            const double *g = s->G + (lo + r) * d, *H = s->H + (lo + r) * d * d;
            double *row = rows + r * cols;
            size_t c = 0;
            for (size_t i = 0; i < d; ++i) row[c++] = g[i];
            for (size_t i = 0; i < d; ++i)
                for (size_t j = i; j < d; ++j) row[c++] = H[i * d + j];
        }
        st = sl_csv_writer_rows(w, m, rows, cols);
    }
    if (st)
        sl_csv_writer_abort(w);
    else
        st = sl_csv_writer_close(w);
    if (st) status = cli_lib_error(args, st);
done:
    free(names);
    free(rows);
    return status;
}

/* ---- the command line -------------------------------------------------------- */

/* The comma-separated --method list: each name known, none twice. */
static int parse_methods(const cli_args *args, const sl_score_type **types, size_t *count) {
    const char *text = cli_value(args, "method");
    *count = 0;
    for (const char *s = text;;) {
        size_t len = strcspn(s, ",");
        char name[64];
        if (len == 0)
            return cli_option_error(args, "method", "empty method name in '%s' (available: %s)",
                                    text, METHOD_NAMES);
        snprintf(name, sizeof name, "%.*s", (int)(len < 60 ? len : 60), s);
        const sl_score_type *type;
        if (len >= 60 || sl_score_type_from_name(name, &type) != SL_OK)
            return cli_option_error(args, "method", "unknown method '%s' (available: %s)", name,
                                    METHOD_NAMES);
        for (size_t i = 0; i < *count; ++i)
            if (types[i] == type)
                return cli_option_error(args, "method", "method '%s' listed twice", name);
        types[(*count)++] = type;
        if (!s[len]) break;
        s += len + 1;
    }
    return 0;
}

static int is_kernel(const sl_score_type *type) {
    return type == &sl_score_llsfe || type == &sl_score_kde;
}

/* Bandwidth, strategy, cutoff, knn-eps, shrink and seed into opt. */
static int parse_estimator_options(const cli_args *args, sl_score_options *opt) {
    int status;
    if (cli_given(args, "bw-const")) {
        if (cli_given(args, "bandwidth"))
            return cli_option_error(args, "bw-const",
                                    "conflicts with --bandwidth (give one of them; --bw-const C "
                                    "is --bandwidth const:C)");
        opt->bandwidth.kind = SL_BW_CONST;
        if ((status = cli_double(args, "bw-const", DBL_MIN, HUGE_VAL, "a number > 0",
                                 &opt->bandwidth.value)))
            return status;
    } else if (cli_given(args, "bandwidth")) {
        sl_status st = sl_bandwidth_parse(cli_value(args, "bandwidth"), &opt->bandwidth);
        if (st) return cli_option_lib_error(args, "bandwidth", st);
    }
    const char *strategy = cli_value(args, "strategy");
    if (strcmp(strategy, "auto") == 0)
        opt->strategy = SL_STRATEGY_AUTO;
    else if (strcmp(strategy, "allpairs") == 0)
        opt->strategy = SL_STRATEGY_ALLPAIRS;
    else if (strcmp(strategy, "neighbours") == 0)
        opt->strategy = SL_STRATEGY_NEIGHBOURS;
    else
        return cli_option_error(args, "strategy",
                                "unknown strategy '%s' (expected auto, allpairs or neighbours)",
                                strategy);
    if (opt->strategy == SL_STRATEGY_ALLPAIRS && opt->bandwidth.kind == SL_BW_KNN)
        return cli_option_error(args, "strategy",
                                "allpairs needs one bandwidth for all points, not knn:%.0f (use "
                                "neighbours or auto)",
                                opt->bandwidth.value);
    if ((status = cli_double(args, "cutoff", DBL_MIN, HUGE_VAL, "a number > 0", &opt->cutoff)) ||
        (status = cli_double(args, "knn-eps", 0.0, HUGE_VAL, "a number >= 0", &opt->knn_eps)) ||
        (status = cli_double(args, "shrink", 0.0, HUGE_VAL, "a number >= 0", &opt->shrink)) ||
        (status = cli_seed(args, "seed", &opt->seed)))
        return status;
    return 0;
}

/* ---- progress -------------------------------------------------------------------- */

/* The display never goes backwards: the automatic bandwidth reports its grid
 * search, then the final pass reports from its own beginning. */
typedef struct {
    cli_progress bar;
    double done;
} progress_state;

static void on_progress(double fraction, void *ctx) {
    progress_state *p = ctx;
    /* The estimators may report from inside their parallel loops. */
#ifdef _OPENMP
#pragma omp critical(scoreloss_score_progress)
#endif
    {
        if (fraction > p->done) {
            p->done = fraction;
            cli_progress_fraction(&p->bar, fraction);
        }
    }
}

/* ---- reports ---------------------------------------------------------------------- */

static const char *strategy_name(sl_strategy s) {
    return s == SL_STRATEGY_ALLPAIRS ? "allpairs" : "neighbours";
}

/* One line on what a method chose, for the output's comment and stderr. */
static void describe(const sl_score_type *type, const sl_score_options *opt, const sl_scores *s,
                     size_t n, const sl_dist *dist, char *buf, size_t len) {
    if (!is_kernel(type)) {
        if (type == &sl_score_gauss)
            snprintf(buf, len, "gauss: one Gaussian fitted to the %zu samples%s", n,
                     s->regularised ? "; its covariance is singular (the samples lie on a "
                                      "subspace, or nearly), so it took a ridge: every point "
                                      "regularised"
                                    : "");
        else if (type == &sl_score_hermite)
            snprintf(buf, len, "hermite: the scores of N(0, I), g = -x, H = -I");
        else if (type == &sl_score_indep)
            snprintf(buf, len,
                     "indep: per-coordinate local log-polynomial fits (independent coordinates), "
                     "%zu of %zu points regularised",
                     s->regularised, n);
        else
            snprintf(buf, len, "exact: the exact scores of %s", dist ? sl_dist_name(dist) : "?");
        return;
    }
    char how[160];
    switch (opt->bandwidth.kind) {
    case SL_BW_FIXED:
        snprintf(how, sizeof how, "fixed");
        break;
    case SL_BW_CONST:
        snprintf(how, sizeof how, "%g n^(-1/(d+6)) with n = %zu", opt->bandwidth.value, n);
        break;
    case SL_BW_KNN:
        snprintf(how, sizeof how, "knn:%.0f: distance to the K-th nearest sample",
                 opt->bandwidth.value);
        break;
    case SL_BW_AUTO:
        if (s->bw_ngrid > 0)
            snprintf(how, sizeof how,
                     "auto: held-out score matching over %zu values from %.3g to %.3g", s->bw_ngrid,
                     s->bw_grid[0], s->bw_grid[s->bw_ngrid - 1]);
        else
            snprintf(how, sizeof how, "auto");
        break;
    }
    char shrink[48] = "";
    if (isfinite(s->shrink))
        snprintf(shrink, sizeof shrink, ", shrink %g (%s)", s->shrink,
                 opt->shrink >= 0                    ? "given"
                 : opt->bandwidth.kind == SL_BW_AUTO ? "chosen with it"
                                                     : "default");
    snprintf(buf, len, "%s: %s %.6g (%s)%s, strategy %s, %zu of %zu points regularised", s->method,
             opt->bandwidth.kind == SL_BW_KNN ? "median bandwidth" : "bandwidth", s->bandwidth, how,
             shrink, strategy_name(s->strategy), s->regularised, s->n);
}

#define EVAL_HEADER                                                                                \
    "method,bandwidth,n,d,queries_in_radius,regularised,g_rel_mse,s2_p5,s2_p25,s2_p50,s2_p75,"     \
    "s2_p95,s4_p5,s4_p25,s4_p50,s4_p75,s4_p95,seconds"

/* One row of the --eval table. */
static void eval_row(const sl_scores *s, size_t n, const sl_score_eval *ev, double seconds,
                     char *buf, size_t len) {
    size_t used = (size_t)snprintf(buf, len, "%s,%.6g,%zu,%zu,%zu,%zu,%.6g", s->method,
                                   s->bandwidth, n, s->d, ev->count, s->regularised, ev->g_rel_mse);
    for (int k = 0; k < 5 && used < len; ++k)
        used += (size_t)snprintf(buf + used, len - used, ",%.6g", ev->s2_err[k]);
    for (int k = 0; k < 5 && used < len; ++k)
        used += (size_t)snprintf(buf + used, len - used, ",%.6g", ev->s4_err[k]);
    if (used < len) snprintf(buf + used, len - used, ",%.3f", seconds);
}

/* ---- the command ------------------------------------------------------------------- */

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_score, argc, argv, &args);
    if (status != CLI_RUN) return status;

    /* Every check of the command line comes before any file is read. */
    const sl_score_type *types[MAX_METHODS];
    size_t ntypes = 0;
    sl_score_options opt;
    sl_score_options_default(&opt);
    double radius = 0.0;
    if ((status = parse_methods(&args, types, &ntypes)) ||
        (status = parse_estimator_options(&args, &opt)) ||
        (status = cli_double(&args, "radius", DBL_MIN, HUGE_VAL, "a number > 0", &radius)))
        return status;
    const int eval = cli_given(&args, "eval");
    const char *spec = cli_value(&args, "dist");
    const char *output = cli_value(&args, "output");
    int need_kernel = 0, need_exact = 0;
    for (size_t i = 0; i < ntypes; ++i) {
        need_kernel |= is_kernel(types[i]);
        need_exact |= types[i] == &sl_score_exact;
    }
    if (need_exact && !spec)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --dist SPEC (--method exact needs the distribution)");
    if (eval && !spec)
        return cli_option_error(&args, "eval",
                                "needs --dist SPEC, a distribution with exact scores to compare "
                                "with");
    if (ntypes > 1 && output)
        return cli_option_error(&args, "output",
                                "one file holds one method's scores, but --method lists %zu; "
                                "use --eval without -o, or run once per method",
                                ntypes);
    if (ntypes > 1 && !eval)
        return cli_option_error(&args, "method",
                                "several methods need --eval (one output file holds one method's "
                                "scores)");
    if (!eval && !output)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --output S.csv (see scoreloss score --help)");
    if (eval && output && strcmp(output, "-") == 0)
        return cli_option_error(&args, "output",
                                "'-' (stdout) would mix the scores with the --eval table");

    const char *input = cli_value(&args, "input");
    const char *at = cli_value(&args, "at");
    size_t n = 0, d = 0, nq = 0, dq = 0;
    double *X = NULL, *Q = NULL;
    sl_dist *dist = NULL;
    sl_scores *scores = NULL;
    char *comment = NULL;
    char *table = NULL;
    sl_status st;
    if ((status = cli_read_x(&args, input, &n, &d, &X, NULL))) goto done;
    if (spec) {
        if ((st = sl_dist_from_spec(spec, d, &dist))) {
            status = cli_option_lib_error(&args, "dist", st);
            goto done;
        }
        const unsigned need = SL_DIST_GRAD | SL_DIST_HESS;
        if ((sl_dist_caps(dist) & need) != need) {
            status = cli_option_error(&args, "dist",
                                      "distribution '%s' is sample-only: it has no exact gradient "
                                      "and Hessian, which %s needs (a plug-in must export "
                                      "gradient and hessian callbacks)",
                                      sl_dist_name(dist), need_exact ? "--method exact" : "--eval");
            goto done;
        }
        opt.dist = dist;
    }
    if (need_kernel && opt.bandwidth.kind == SL_BW_KNN) {
        /* Scores at the samples leave each one out of its own neighbours.
         * Compared as doubles: K may exceed any size_t. */
        const double needed = opt.bandwidth.value + (at ? 0.0 : 1.0);
        if (needed > (double)n) {
            status = cli_option_error(&args, "bandwidth",
                                      "%s needs at least %.0f samples%s, but %s has %zu",
                                      cli_value(&args, "bandwidth"), needed,
                                      at ? "" : " (each sample is left out of its own)", input, n);
            goto done;
        }
    }
    if (at) {
        if ((status = cli_read_x(&args, at, &nq, &dq, &Q, NULL))) goto done;
        if (dq != d) {
            status = cli_error(&args, CLI_EXIT_FAILURE,
                               "the query points %s have d = %zu columns (x1..x%zu) but the "
                               "samples %s have d = %zu",
                               at, dq, dq, input, d);
            goto done;
        }
    } else {
        nq = n;
    }

    /* One table row per method, printed only once every method succeeded. */
    const size_t row_len = 512;
    if (eval && !(table = malloc(ntypes * row_len))) {
        status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (size_t m = 0; m < ntypes; ++m) {
        const sl_score_type *type = types[m];
        progress_state progress = {.done = 0};
        cli_progress_start(&progress.bar, &args, cli_given(&args, "progress"));
        opt.progress = on_progress;
        opt.progress_ctx = &progress;
        const double t0 = cli_now();
        st = sl_score_estimate(type, &opt, n, d, X, nq, Q, &scores);
        const double seconds = cli_now() - t0;
        cli_progress_finish(&progress.bar);
        if (st) {
            /* A numeric failure is the data's: name the file. */
            status = st == SL_ENUMERIC
                         ? cli_error(&args, cli_exit_status(st), "%s: %s", input, sl_last_error())
                         : cli_lib_error(&args, st);
            goto done;
        }
        /* Evaluate before reporting or writing: a failure leaves one message
         * and no file. */
        if (eval) {
            sl_score_eval ev;
            if ((st = sl_score_evaluate(dist, scores, Q ? Q : X, radius, &ev))) {
                /* Invalid here means no query point within the radius. */
                status = st == SL_EINVAL ? cli_option_lib_error(&args, "radius", st)
                                         : cli_lib_error(&args, st);
                goto done;
            }
            eval_row(scores, n, &ev, seconds, table + m * row_len, row_len);
        }
        char summary[512];
        describe(type, &opt, scores, n, dist, summary, sizeof summary);
        if (is_kernel(type) || scores->regularised)
            fprintf(stderr, "scoreloss score: %s\n", summary);
        if (output) {
            if (!(comment = cli_comment(&args, NULL, summary))) {
                status = CLI_EXIT_FAILURE;
                goto done;
            }
            if ((status = write_scores(&args, output, comment, scores))) goto done;
        }
        sl_scores_free(scores);
        scores = NULL;
    }
    if (eval) {
        printf("%s\n", EVAL_HEADER);
        for (size_t m = 0; m < ntypes; ++m) printf("%s\n", table + m * row_len);
        if (fflush(stdout) != 0) status = cli_error(&args, CLI_EXIT_FAILURE, "cannot write stdout");
    }
done:
    free(X);
    free(Q);
    free(comment);
    free(table);
    sl_scores_free(scores);
    sl_dist_free(dist);
    return status;
}
