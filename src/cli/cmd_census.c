/* `scoreloss census`: SGD from many random starts, the end points clustered
 * up to permutation and sign (census.h), per loss and score source: the
 * fraction reaching the global minimum and every distinct spurious minimum,
 * as a printed table and a CSV (one row per cluster). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_moments.h"
#include "cli/cli_util.h"
#include "cli/plot.h"
#include "scoreloss/census.h"
#include "scoreloss/csv.h"
#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/recover.h"
#include "scoreloss/score.h"

static const cli_option options[] = {
    {"input", 0, CLI_VALUE | CLI_REQUIRED, "DATA.csv", NULL, "data, columns x1..xd and y"},
    {"k", 0, CLI_VALUE | CLI_REQUIRED, "K", NULL, "hidden units, 1 <= K <= d"},
    {"loss", 0, CLI_VALUE, "LIST", "landscape", "comma-separated losses: landscape, signfree, l2"},
    {"score", 0, CLI_VALUE, "LIST", "llsfe",
     "comma-separated score sources of the landscape losses: llsfe, kde, gauss, hermite, exact "
     "(needs --dist)"},
    {"dist", 0, CLI_VALUE, "SPEC", NULL, "the input distribution, for exact: " CLI_DIST_SPECS},
    {"route", 0, CLI_VALUE, "NAME", "auto",
     "where T comes from, as scoreloss recover: full, projected, quadratic or auto"},
#include "cli/cli_moment_options.inc"
    {"truth", 0, CLI_VALUE, "TRUTH.csv", NULL,
     "the planted network: the global minimum is err_max < --global-tol against it (without: "
     "the lowest-loss cluster)"},
    {"act", 0, CLI_VALUE, "NAME", "relu", "activation of the network"},
    {"mu", 0, CLI_VALUE, "M", "0.5", "landscape weight of the diagonal terms"},
    {"lambda", 0, CLI_VALUE, "L", "0", "norm penalty of the landscape losses, >= 0"},
    {"constraint", 0, CLI_VALUE, "NAME", "orthonormal",
     "landscape losses: orthonormal, sphere, or none (needs --lambda)"},
    {"lr", 0, CLI_VALUE, "RATE", "0.01", "Adam learning rate"},
    {"batch", 0, CLI_VALUE, "B", "256", "minibatch size (minibatch mode and l2)"},
    {"epochs", 0, CLI_VALUE, "E", "auto", "as scoreloss recover"},
    {"restarts", 0, CLI_VALUE, "R", "200", "random initialisations per loss and score source"},
    {"seed", 0, CLI_VALUE, "S", "1", "random seed"},
    {"bandwidth", 0, CLI_VALUE, "SPEC", "auto", "llsfe and kde bandwidth"},
    {"same-tol", 0, CLI_VALUE, "E", "0.02",
     "two end points are one critical point when err_max between them is below E"},
    {"global-tol", 0, CLI_VALUE, "E", "0.1",
     "with --truth: a cluster is the global minimum when its err_max is below E"},
    {"progress", 0, 0, NULL, NULL, "a line on stderr per (loss, score) run"},
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "CENSUS.csv", NULL,
     "one row per cluster: loss,score,cluster,count,fraction,objective,objective_spread,err_max,"
     "distinct,global,seconds"},
    {"png", 0, CLI_VALUE | CLI_OUTPUT, "CENSUS.png", NULL, "also draw the bars (gnuplot)"},
    {"minima", 0, CLI_VALUE | CLI_OUTPUT, "PREFIX", NULL,
     "write each cluster's representative as a network (a,w1..wd) to PREFIX-LOSS-SCORE-C.csv, "
     "for scoreloss landscape --plane through:FILE"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_census = {
    "census",
    "cluster SGD end points from many starts: global vs spurious minima",
    "--input DATA.csv --k K [--loss LIST] [--score LIST] [--dist SPEC]\n"
    "         [--truth TRUTH.csv] [--restarts R] [--same-tol E] [--global-tol E] ...\n"
    "         -o CENSUS.csv [--png CENSUS.png]",
    "For each loss and score source (l2 uses no scores: score 'none'), one\n"
    "recovery with R restarts on all rows (as scoreloss recover --holdout 0, the\n"
    "options --s4 to --detrend as recover takes them, each refused unless it\n"
    "applies to every score source listed); the end points are clustered up to\n"
    "permutation and sign of their rows (err_max between two end points below\n"
    "--same-tol), in order of increasing final loss.\n"
    "A cluster is the global minimum when err_max against --truth is below\n"
    "--global-tol; without a truth the lowest-loss cluster is. The table lists\n"
    "each cluster's count, its loss (the lowest of its members, and the spread),\n"
    "its error against the truth and the number of true directions it finds.\n"
    "CSV columns: loss and score are names, err_max is 'nan' without a truth,\n"
    "global is 1 or 0, seconds is the run's time (repeated on its rows). Runs go\n"
    "in the order landscape, signfree, l2 and llsfe, kde, gauss, hermite, exact.\n"
    "--minima writes the representatives: for l2 the trained (W, a), for the\n"
    "landscape losses unit rows with signs and a fitted by least squares.",
    "scoreloss census --input DATA.csv --k 3 --loss landscape,l2 --score exact --dist gauss "
    "--truth TRUTH.csv --restarts 200 -o CENSUS.csv",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* Names from a comma-separated list, each checked by valid(); at most max. */
static int parse_list(const cli_args *args, const char *option, const char *const *known,
                      size_t nknown, int *use) {
    const char *list = cli_value(args, option);
    size_t count = 0;
    for (size_t i = 0; i < nknown; ++i) use[i] = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        long found = -1;
        for (size_t i = 0; i < nknown; ++i)
            if (strlen(known[i]) == len && strncmp(p, known[i], len) == 0) found = (long)i;
        if (found < 0)
            return cli_option_error(args, option, "unknown name '%.*s' in '%s'",
                                    (int)(len < 40 ? len : 40), p, list);
        if (use[found]) return cli_option_error(args, option, "'%s' is listed twice", known[found]);
        use[found] = 1;
        ++count;
        p += len + (p[len] == ',');
    }
    if (!count) return cli_option_error(args, option, "empty list");
    return 0;
}

typedef struct census_run {
    const char *loss, *score;
    sl_census *c;
    sl_recover_result *r;
    double seconds;
} census_run;

/* Each cluster's representative as a network file PREFIX-LOSS-SCORE-C.csv. */
static int write_minima(const cli_args *args, const char *prefix, const census_run *run, size_t n,
                        size_t d, const double *X, const double *y, sl_act act) {
    const sl_census *c = run->c;
    const sl_recover_result *r = run->r;
    const size_t k = r->k;
    sl_network *net = NULL;
    sl_status st = sl_network_alloc(k, d, act, &net);
    if (st) return cli_lib_error(args, st);
    int status = 0;
    const int l2 = strcmp(run->loss, "l2") == 0;
    for (size_t i = 0; i < c->nclusters && !status; ++i) {
        const size_t rep = c->representative[i];
        const double *W = r->restart_W + rep * k * d;
        if (l2) {
            memcpy(net->W, W, k * d * sizeof *W);
            memcpy(net->a, r->sgd->restart_x + rep * r->sgd->nparam + k * d, k * sizeof *W);
        } else {
            for (size_t q = 0; q < k; ++q) {
                double nrm = 0.0;
                for (size_t e = 0; e < d; ++e) nrm += W[q * d + e] * W[q * d + e];
                nrm = sqrt(nrm);
                for (size_t e = 0; e < d; ++e)
                    net->W[q * d + e] = nrm > 0.0 ? W[q * d + e] / nrm : 0.0;
            }
            st = sl_second_layer_fit(n, d, X, y, k, act, net->W, net->W, net->a, NULL);
        }
        char path[4200], note[160];
        snprintf(path, sizeof path, "%s-%s-%s-%zu.csv", prefix, run->loss, run->score, i + 1);
        snprintf(note, sizeof note,
                 "census cluster %zu of the %s loss (scores %s): %zu end points, loss %.6g", i + 1,
                 run->loss, run->score, c->count[i], c->loss[i]);
        if (!st) st = sl_network_write(net, path, note);
        if (st) status = cli_lib_error(args, st);
    }
    sl_network_free(net);
    return status;
}

/* The CSV, with names in two columns: written here (sl_csv_write takes
 * numbers only), to a temporary file renamed into place. */
static int write_census(const cli_args *args, const char *path, const char *comment,
                        const census_run *runs, size_t nruns) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return cli_error(args, CLI_EXIT_FAILURE, "cannot write %s: %s", path, strerror(errno));
    for (const char *p = comment; p && *p;) {
        size_t len = strcspn(p, "\n");
        fprintf(f, "# %.*s\n", (int)len, p);
        p += len + (p[len] == '\n');
    }
    fprintf(f, "loss,score,cluster,count,fraction,objective,objective_spread,err_max,distinct,"
               "global,seconds\n");
    for (size_t r = 0; r < nruns; ++r) {
        const sl_census *c = runs[r].c;
        for (size_t i = 0; i < c->nclusters; ++i) {
            fprintf(f, "%s,%s,%zu,%zu,%.6g,%.17g,%.6g,", runs[r].loss, runs[r].score, i + 1,
                    c->count[i], (double)c->count[i] / (double)c->npoints, c->loss[i],
                    c->loss_spread[i]);
            if (c->have_truth)
                fprintf(f, "%.6g,%zu,", c->error[i], c->distinct[i]);
            else
                fprintf(f, "nan,0,");
            fprintf(f, "%d,%.3f\n", c->global[i], runs[r].seconds);
        }
    }
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return cli_error(args, CLI_EXIT_FAILURE, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

static void print_run(const census_run *r, size_t R) {
    const sl_census *c = r->c;
    printf("%s loss, scores %s: %zu restarts, %zu distinct end points, %.1f%% at the global "
           "minimum (%.2f s)\n",
           r->loss, r->score, R, c->nclusters, 100.0 * c->global_fraction, r->seconds);
    printf("  %-7s %6s %8s %14s %10s %9s %8s  %s\n", "cluster", "count", "fraction", "loss",
           "spread", "err_max", "found", "kind");
    for (size_t i = 0; i < c->nclusters; ++i) {
        char err[32] = "-", found[32] = "-";
        if (c->have_truth) {
            snprintf(err, sizeof err, "%.4f", c->error[i]);
            snprintf(found, sizeof found, "%zu", c->distinct[i]);
        }
        printf("  %-7zu %6zu %8.3f %14.6g %10.2g %9s %8s  %s\n", i + 1, c->count[i],
               (double)c->count[i] / (double)c->npoints, c->loss[i], c->loss_spread[i], err, found,
               c->global[i] ? "global" : "spurious");
    }
}

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_census, argc, argv, &args);
    if (status != CLI_RUN) return status;
    static const char *const losses[] = {"landscape", "signfree", "l2"};
    static const char *const scores[] = {"llsfe", "kde", "gauss", "hermite", "exact"};
    int use_loss[3], use_score[5];
    if ((status = parse_list(&args, "loss", losses, 3, use_loss)) ||
        (status = parse_list(&args, "score", scores, 5, use_score)))
        return status;
    sl_recover_options o;
    sl_recover_options_default(&o);
    sl_census_options co;
    sl_census_options_default(&co);
    if ((status = cli_size(&args, "k", 1, SIZE_MAX, &o.k)) ||
        (status = cli_size(&args, "restarts", 1, 100000, &o.sgd.restarts)) ||
        (status = cli_seed(&args, "seed", &o.seed)) ||
        (status = cli_double(&args, "mu", -HUGE_VAL, HUGE_VAL, "a number", &o.landscape.mu)) ||
        (status =
             cli_double(&args, "lambda", 0.0, HUGE_VAL, "a number >= 0", &o.landscape.lambda)) ||
        (status = cli_double(&args, "lr", DBL_MIN, HUGE_VAL, "a number > 0", &o.sgd.lr)) ||
        (status = cli_size(&args, "batch", 1, SIZE_MAX, &o.sgd.batch)) ||
        (strcmp(cli_value(&args, "epochs"), "auto") != 0 &&
         (status = cli_size(&args, "epochs", 1, UINT32_MAX - 1, &o.sgd.epochs))) ||
        (status = cli_double(&args, "same-tol", 0.0, 1.0, "a number in [0, 1]", &co.same_tol)) ||
        (status = cli_double(&args, "global-tol", 0.0, 1.0, "a number in [0, 1]", &co.global_tol)))
        return status;
    o.holdout = 0.0;
    sl_status st;
    if ((st = sl_act_from_name(cli_value(&args, "act"), &o.act)))
        return cli_option_lib_error(&args, "act", st);
    if ((st = sl_bandwidth_parse(cli_value(&args, "bandwidth"), &o.score_opt.bandwidth)))
        return cli_option_lib_error(&args, "bandwidth", st);
    const char *route = cli_value(&args, "route");
    static const char *const routes[] = {"auto", "full", "projected", "quadratic"};
    static const sl_recover_route route_of[] = {SL_ROUTE_AUTO, SL_ROUTE_FULL, SL_ROUTE_PROJECTED,
                                                SL_ROUTE_QUADRATIC};
    int ri = -1;
    for (int i = 0; i < 4; ++i)
        if (strcmp(route, routes[i]) == 0) ri = i;
    if (ri < 0) return cli_option_error(&args, "route", "unknown route '%s'", route);
    o.route = route_of[ri];
    if ((status = cli_moment_options(&args, &o))) return status;
    const char *cons = cli_value(&args, "constraint");
    if (strcmp(cons, "orthonormal") == 0)
        o.sgd.projection = SL_PROJ_ORTHONORMAL;
    else if (strcmp(cons, "sphere") == 0)
        o.sgd.projection = SL_PROJ_SPHERE;
    else if (strcmp(cons, "none") == 0)
        o.sgd.projection = SL_PROJ_NONE;
    else
        return cli_option_error(&args, "constraint",
                                "unknown constraint '%s' (expected orthonormal, sphere or none)",
                                cons);
    if (o.sgd.projection == SL_PROJ_NONE && !(o.landscape.lambda > 0.0) &&
        (use_loss[0] || use_loss[1]))
        return cli_option_error(&args, "constraint", "none needs --lambda L > 0");
    const char *spec = cli_value(&args, "dist");
    const int landscape = use_loss[0] || use_loss[1];
    if (landscape && use_score[4] && !spec)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --dist SPEC (--score exact needs the distribution)");
    if (spec && !(landscape && use_score[4]))
        return cli_option_error(&args, "dist", "is used only with --score exact");
    /* The moments' options must fit every score source listed (as for
     * recover with each); none runs without a landscape loss. */
    if (!landscape && cli_moment_given(&args))
        return cli_option_error(&args, cli_moment_given(&args),
                                "the l2 loss uses no scores or moments: leave it out");
    for (int s = 0; s < 5 && landscape; ++s) {
        sl_recover_options so = o;
        if (!use_score[s]) continue;
        if ((st = sl_score_type_from_name(scores[s], &so.score))) return cli_lib_error(&args, st);
        if ((status = cli_moment_check(&args, &so, NULL, 0))) return status;
    }
    const char *out = cli_value(&args, "output"), *png = cli_value(&args, "png");
    if (strcmp(out, "-") == 0)
        return cli_option_error(&args, "output", "'-' would mix the CSV with the table");
    if (png && strcmp(png, out) == 0)
        return cli_error(&args, CLI_EXIT_USAGE, "-o and --png name the same file '%s'", out);

    size_t n = 0, d = 0, nruns = 0;
    double *X = NULL, *y = NULL;
    sl_dist *dist = NULL;
    sl_network *truth = NULL;
    census_run runs[3 * 5];
    char *comment = NULL;
    memset(runs, 0, sizeof runs);
    if ((status = cli_read_xy(&args, cli_value(&args, "input"), &n, &d, &X, &y))) goto done;
    if (o.k > d) {
        status = cli_option_error(&args, "k", "k = %zu exceeds d = %zu", o.k, d);
        goto done;
    }
    if (spec) {
        if ((st = sl_dist_from_spec(spec, d, &dist))) {
            status = cli_option_lib_error(&args, "dist", st);
            goto done;
        }
        const unsigned need = SL_DIST_GRAD | SL_DIST_HESS;
        if ((sl_dist_caps(dist) & need) != need) {
            status = cli_option_error(&args, "dist", "'%s' has no exact gradient and Hessian",
                                      sl_dist_name(dist));
            goto done;
        }
        o.score_opt.dist = dist;
    }
    if (cli_value(&args, "truth")) {
        if ((st = sl_network_read(cli_value(&args, "truth"), o.act, &truth))) {
            status = cli_lib_error(&args, st);
            goto done;
        }
        if (truth->d != d) {
            status = cli_error(&args, CLI_EXIT_FAILURE, "%s has %zu inputs but the data d = %zu",
                               cli_value(&args, "truth"), truth->d, d);
            goto done;
        }
        o.truth = truth;
    }
    {
        /* Fail before the long runs when the output cannot be written. */
        static const char *const name[] = {"a"};
        sl_csv_writer *w = NULL;
        if ((st = sl_csv_writer_open(out, NULL, 1, name, &w))) {
            status = cli_lib_error(&args, st);
            goto done;
        }
        sl_csv_writer_abort(w);
        if (png && (status = plot_check_target(&args, png))) goto done;
    }
    for (int l = 0; l < 3; ++l) {
        if (!use_loss[l]) continue;
        for (int s = 0; s < 5; ++s) {
            if (!use_score[s]) continue;
            if (l == 2 && nruns && strcmp(runs[nruns - 1].loss, "l2") == 0) break;
            sl_recover_options ro = o;
            ro.loss = (sl_recover_loss)l;
            census_run *r = &runs[nruns];
            r->loss = losses[l];
            r->score = l == 2 ? "none" : scores[s];
            if (l != 2 && (st = sl_score_type_from_name(scores[s], &ro.score))) {
                status = cli_lib_error(&args, st);
                goto done;
            }
            if (l == 2 || s != 4) ro.score_opt.dist = NULL;
            if (cli_given(&args, "progress"))
                fprintf(stderr, "scoreloss census: %s loss, scores %s, %zu restarts...\n", r->loss,
                        r->score, ro.sgd.restarts);
            const double t0 = cli_now();
            st = sl_census_run(&ro, &co, n, d, X, y, &r->c,
                               cli_value(&args, "minima") ? &r->r : NULL);
            r->seconds = cli_now() - t0;
            if (st) {
                status = cli_lib_error(&args, st);
                goto done;
            }
            ++nruns;
        }
    }
    char extra[256];
    snprintf(extra, sizeof extra, "data: n = %zu, d = %zu, k = %zu; %s", n, d, o.k,
             truth ? "global: err_max against the truth below --global-tol"
                   : "global: the lowest-loss cluster (no truth)");
    if (!(comment = cli_comment(&args, NULL, extra))) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    for (size_t r = 0; r < nruns && cli_value(&args, "minima"); ++r)
        if ((status = write_minima(&args, cli_value(&args, "minima"), &runs[r], n, d, X, y, o.act)))
            goto done;
    if ((status = write_census(&args, out, comment, runs, nruns))) goto done;
    for (size_t r = 0; r < nruns; ++r) print_run(&runs[r], o.sgd.restarts);
    fflush(stdout);
    if (png) {
        const char *in[1] = {out};
        int ps = plot_render(&args, "census", 1, in, png,
                             "census: fraction of restarts per end point", NULL, 1);
        if (ps && ps != PLOT_NO_GNUPLOT) status = ps;
    }
done:
    for (size_t r = 0; r < nruns; ++r) {
        sl_census_free(runs[r].c);
        sl_recover_result_free(runs[r].r);
    }
    free(comment);
    free(X);
    free(y);
    sl_network_free(truth);
    sl_dist_free(dist);
    return status;
}
