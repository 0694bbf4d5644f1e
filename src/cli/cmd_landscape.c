/* `scoreloss landscape`: a loss on a plane of its parameter space (or on
 * the angle square for k = 2), written as CSV u,v,loss,grad_norm with a
 * header comment recording every parameter, and drawn as a PNG on request.
 * The evaluation is plane.h's; this file parses, chooses the plane, reads
 * and writes. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>

#include "cli/cli_moments.h"
#include "cli/cli_util.h"
#include "cli/plot.h"
#include "scoreloss/csv.h"
#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/plane.h"
#include "scoreloss/recover.h"
#include "scoreloss/rng.h"
#include "scoreloss/score.h"

static const cli_option options[] = {
    {"input", 0, CLI_VALUE | CLI_REQUIRED, "DATA.csv", NULL, "data, columns x1..xd and y"},
    {"k", 0, CLI_VALUE | CLI_REQUIRED, "K", NULL, "hidden units, 1 <= K <= d"},
    {"loss", 0, CLI_VALUE, "LIST", "landscape",
     "comma-separated losses: landscape, signfree, l2 (several write one file each, "
     "OUT.NAME.csv)"},
    {"score", 0, CLI_VALUE, "NAME", "llsfe",
     "score source of the landscape losses: llsfe, kde, gauss, hermite or exact (needs --dist)"},
    {"dist", 0, CLI_VALUE, "SPEC", NULL,
     "the input distribution, for --score exact: " CLI_DIST_SPECS},
    {"route", 0, CLI_VALUE, "NAME", "auto",
     "where T comes from, as scoreloss recover: full, projected, quadratic or auto"},
#include "cli/cli_moment_options.inc"
    {"truth", 0, CLI_VALUE, "TRUTH.csv", NULL,
     "the planted network (a,w1..wd): the centre of the plane, and marked"},
    {"act", 0, CLI_VALUE, "NAME", "relu", "activation of the network (the l2 loss)"},
    {"mu", 0, CLI_VALUE, "M", "0.5", "landscape weight of the diagonal terms"},
    {"lambda", 0, CLI_VALUE, "L", "0", "norm penalty of the landscape losses, >= 0"},
    {"constraint", 0, CLI_VALUE, "NAME", "sphere",
     "landscape losses on a plane: each point's columns normalised (sphere) or made orthonormal "
     "by QR (orthonormal), or none"},
    {"plane", 0, CLI_VALUE, "SPEC", "auto",
     "angles (k = 2: the angles of both whitened columns on [0, pi)^2), random (through the "
     "centre along two random orthogonal directions), through:FILE.csv (through the centre, u = 1 "
     "at the network in FILE), auto (angles for k = 2, else random)"},
    {"grid", 0, CLI_VALUE, "G", "201", "grid points per axis, 3..2001"},
    {"span", 0, CLI_VALUE, "S", "auto",
     "planes: u and v run over [-S, S] in units of the centre's norm (random) or of the distance "
     "to the second point (through); auto: 1 (random), 1.5 (through)"},
    {"subsample", 0, CLI_VALUE, "N", "4000",
     "rows the l2 loss is evaluated on (a seeded random subset; every grid point is one pass)"},
    {"restarts", 0, CLI_VALUE, "R", "4",
     "without --truth the centre is the best of R recoveries with the same loss"},
    {"seed", 0, CLI_VALUE, "S", "1", "random seed (scores, directions, subsample, centre search)"},
    {"bandwidth", 0, CLI_VALUE, "SPEC", "auto", "llsfe and kde bandwidth (see scoreloss score)"},
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "LAND.csv", NULL,
     "the grid: columns u,v,loss,grad_norm"},
    {"png", 0, CLI_VALUE | CLI_OUTPUT, "LAND.png", NULL,
     "also draw it (gnuplot; several losses: LAND.NAME.png)"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_landscape = {
    "landscape",
    "evaluate losses on a plane or the angle square (CSV, PNG)",
    "--input DATA.csv --k K [--loss LIST] [--score NAME] [--dist SPEC]\n"
    "         [--truth TRUTH.csv] [--plane angles|random|through:FILE.csv] [--grid G]\n"
    "         [--span S] [--constraint sphere|orthonormal|none] [--subsample N] -o LAND.csv\n"
    "         [--png LAND.png]",
    "Writes the loss and the norm of its gradient at every grid point, u fastest.\n"
    "The landscape losses live in whitened space (B, k x k, as scoreloss recover\n"
    "minimises them) and are evaluated on the whole whitened fourth moment T (the\n"
    "exact one with --score exact, as recover's route; built with the options\n"
    "--s4 to --detrend as recover builds its first estimate, before its refit\n"
    "passes); each point is put on the constraint first and the gradient is\n"
    "projected onto its tangent space. The squared loss l2 lives in input space\n"
    "(W, a) and is evaluated on --subsample rows. The plane's centre is the truth\n"
    "(whitened: b_i = P'w_i/|P'w_i|), or without --truth the best point of\n"
    "--restarts recoveries with the same loss.\n"
    "angles (k = 2): b_j = (cos t_j, sin t_j), u = t_1, v = t_2; l2 there is the\n"
    "profiled squared loss (the second layer and signs fitted at each point).\n"
    "Several losses write OUT.NAME.csv (and OUT.NAME.png) each; one loss writes\n"
    "OUT. Comment lines 'mark NAME U V' record the points to mark (the truth, the\n"
    "centre, the second point). Timing: 201^2 points take about 0.02 s in tensor\n"
    "mode; l2 costs a pass over --subsample rows per point (about 0.1 ms CPU per\n"
    "point at 4000 rows, d = k = 2: some 5 s for 201^2; about 3 passes on angles).\n"
    "Without --truth the centre search runs the recovery (its scores included).",
    "scoreloss landscape --input DATA.csv --k 2 --score exact --dist gauss --truth TRUTH.csv "
    "--plane angles -o LAND.csv --png LAND.png",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* ---- reading -------------------------------------------------------------------- */

static int read_network(const cli_args *args, const char *path, sl_act act, size_t k, size_t d,
                        sl_network **out) {
    sl_status st = sl_network_read(path, act, out);
    if (st) return cli_lib_error(args, st);
    if ((*out)->d != d || (*out)->k != k) {
        int status = cli_error(args, CLI_EXIT_FAILURE,
                               "%s has %zu units of %zu inputs; the data and --k need %zu of %zu",
                               path, (*out)->k, (*out)->d, k, d);
        sl_network_free(*out);
        *out = NULL;
        return status;
    }
    return 0;
}

/* ---- helpers ---------------------------------------------------------------------- */

/* Orders and flips the k items (each of length len, item i at F + i * stride
 * with element step step) of F to match those of C best (optimal
 * assignment on 1 - |cos|); flips signs only when flip is set. tail (k
 * values, or NULL) is permuted along (the second layer a). */
static sl_status align(size_t k, size_t len, size_t stride, size_t step, const double *C, double *F,
                       double *tail, int flip) {
    const size_t total = (k - 1) * stride + (len - 1) * step + 1;
    double *cost = malloc(k * k * sizeof *cost), *copy = malloc(total * sizeof *copy);
    double *tcopy = malloc(k * sizeof *tcopy);
    size_t *assign = malloc(k * sizeof *assign);
    sl_status st = SL_OK;
    if (!cost || !copy || !tcopy || !assign) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < k; ++i)
        for (size_t j = 0; j < k; ++j) {
            double cf = 0.0, cc = 0.0, ff = 0.0;
            for (size_t e = 0; e < len; ++e) {
                const double a = C[i * stride + e * step], b = F[j * stride + e * step];
                cf += a * b;
                cc += a * a;
                ff += b * b;
            }
            const double cosv = cc > 0.0 && ff > 0.0 ? cf / sqrt(cc * ff) : 0.0;
            cost[i * k + j] = 1.0 - (flip ? fabs(cosv) : cosv);
        }
    if ((st = sl_assignment(k, cost, assign, NULL))) goto done;
    memcpy(copy, F, total * sizeof *copy);
    if (tail) memcpy(tcopy, tail, k * sizeof *tcopy);
    for (size_t i = 0; i < k; ++i) {
        const size_t j = assign[i];
        double cf = 0.0;
        for (size_t e = 0; e < len; ++e)
            cf += C[i * stride + e * step] * copy[j * stride + e * step];
        const double s = flip && cf < 0.0 ? -1.0 : 1.0;
        for (size_t e = 0; e < len; ++e) F[i * stride + e * step] = s * copy[j * stride + e * step];
        if (tail) tail[i] = tcopy[j];
    }
done:
    free(cost);
    free(copy);
    free(tcopy);
    free(assign);
    return st;
}

/* OUT with ".NAME" before its extension (several losses). */
static char *path_for(const char *out, const char *name, int several) {
    const size_t len = strlen(out) + strlen(name) + 2;
    char *p = malloc(len + 1);
    if (!p) return NULL;
    if (!several) {
        snprintf(p, len + 1, "%s", out);
        return p;
    }
    const char *slash = strrchr(out, '/');
    const char *dot = strrchr(out, '.');
    if (!dot || (slash && dot < slash) || dot == out || (slash && dot == slash + 1))
        snprintf(p, len + 1, "%s.%s", out, name);
    else
        snprintf(p, len + 1, "%.*s.%s%s", (int)(dot - out), out, name, dot);
    return p;
}

/* ---- the command -------------------------------------------------------------------- */

enum { PLANE_ANGLES, PLANE_RANDOM, PLANE_THROUGH };

typedef struct job {
    const cli_args *args;
    sl_recover_options ropt; /* scores, loss settings, seed */
    sl_projection proj;
    int plane;
    const char *through;
    double span;
    size_t grid, subsample, restarts;
    size_t n, d, k;
    double *X, *y;
    double *Xs, *ys; /* the l2 subsample */
    size_t ns;
    sl_network *truth, *second;
    sl_moments *m;
    sl_recover_route route;
} job;

static const char *const loss_names[] = {"landscape", "signfree", "l2"};

/* The centre of the plane for one loss: the truth, or the best recovery. */
static int find_centre(job *j, sl_recover_loss loss, double *C, char *what, size_t wlen) {
    const size_t k = j->k, d = j->d;
    const double *W = NULL, *a = NULL;
    sl_recover_result *r = NULL;
    sl_status st;
    if (j->truth) {
        W = j->truth->W;
        a = j->truth->a;
        snprintf(what, wlen, "truth");
    } else {
        sl_recover_options o = j->ropt;
        o.loss = loss;
        o.holdout = 0.0;
        o.sgd.restarts = j->restarts;
        if ((st = sl_recover(&o, j->n, d, j->X, j->y, &r))) return cli_lib_error(j->args, st);
        W = r->W_hat;
        a = r->a_hat;
        snprintf(what, wlen, "best");
    }
    if (loss == SL_RECOVER_L2) {
        memcpy(C, W, k * d * sizeof *C);
        memcpy(C + k * d, a, k * sizeof *C);
        st = SL_OK;
    } else {
        st = sl_plane_whiten(j->m, W, C);
    }
    sl_recover_result_free(r);
    return st ? cli_lib_error(j->args, st) : 0;
}

/* Evaluates one loss into loss/grad (grid x grid) and fills the marks. */
static int evaluate(job *j, sl_recover_loss loss, const double *u, const double *v, double *f,
                    double *g, char *marks, size_t mlen) {
    const size_t k = j->k, d = j->d, G = j->grid;
    sl_landscape_options lo = j->ropt.landscape;
    lo.kind = loss == SL_RECOVER_SIGNFREE ? SL_LOSS_SIGNFREE : SL_LOSS_LANDSCAPE;
    marks[0] = '\0';
    sl_status st = SL_OK;
    if (j->plane == PLANE_ANGLES) {
        if (loss == SL_RECOVER_L2)
            st = sl_plane_l2_angles(j->m, j->ns, j->Xs, j->ys, j->ropt.act, G, u, G, v, f, g);
        else
            st = sl_plane_landscape_angles(j->m, &lo, G, u, G, v, f, g);
        if (st) return cli_lib_error(j->args, st);
        if (j->truth) {
            double B[4], t[2];
            if ((st = sl_plane_whiten(j->m, j->truth->W, B))) return cli_lib_error(j->args, st);
            for (int c = 0; c < 2; ++c) {
                t[c] = atan2(B[2 + c], B[c]);
                if (t[c] < 0.0) t[c] += M_PI;
                if (t[c] >= M_PI) t[c] -= M_PI;
            }
            snprintf(marks, mlen, "mark truth %.10g %.10g\nmark truth %.10g %.10g", t[0], t[1],
                     t[1], t[0]);
        }
        return 0;
    }
    const size_t np = loss == SL_RECOVER_L2 ? k * d + k : k * k;
    double *C = malloc(np * sizeof *C), *D1 = malloc(np * sizeof *D1),
           *D2 = malloc(np * sizeof *D2);
    int status = 0;
    char what[16];
    if (!C || !D1 || !D2) {
        status = cli_error(j->args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    if ((status = find_centre(j, loss, C, what, sizeof what))) goto done;
    const sl_projection proj = loss == SL_RECOVER_L2 ? SL_PROJ_NONE : j->proj;
    int fixed = 0;
    if (j->plane == PLANE_THROUGH) {
        /* The second point, aligned with the centre (permutation, and the
         * sign of whitened columns, which the even losses ignore). */
        if (loss == SL_RECOVER_L2) {
            memcpy(D1, j->second->W, k * d * sizeof *D1);
            memcpy(D1 + k * d, j->second->a, k * sizeof *D1);
            st = align(k, d, d, 1, C, D1, D1 + k * d, 0);
        } else {
            st = sl_plane_whiten(j->m, j->second->W, D1);
            if (!st) st = align(k, k, 1, k, C, D1, NULL, 1);
        }
        if (st) {
            status = cli_lib_error(j->args, st);
            goto done;
        }
        for (size_t p = 0; p < np; ++p) D1[p] -= C[p];
        fixed = 1;
    }
    if ((st = sl_plane_directions(np, k, proj, C, sl_rng_derive(j->ropt.seed, 7), fixed, D1, D2))) {
        status = cli_lib_error(j->args, st);
        goto done;
    }
    if (loss == SL_RECOVER_L2)
        st = sl_plane_l2(j->ns, d, j->Xs, j->ys, k, j->ropt.act, C, D1, D2, G, u, G, v, f, g);
    else
        st = sl_plane_landscape(j->m, &lo, proj, C, D1, D2, G, u, G, v, f, g);
    if (st) {
        status = cli_lib_error(j->args, st);
        goto done;
    }
    int len = snprintf(marks, mlen, "mark %s 0 0", what);
    if (j->plane == PLANE_THROUGH && len > 0 && (size_t)len < mlen)
        snprintf(marks + len, mlen - (size_t)len, "\nmark second 1 0");
done:
    free(C);
    free(D1);
    free(D2);
    return status;
}

static int parse_losses(const cli_args *args, int *use, size_t *count) {
    const char *list = cli_value(args, "loss");
    use[0] = use[1] = use[2] = 0;
    *count = 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int i = 0; i < 3; ++i)
            if (strlen(loss_names[i]) == len && strncmp(p, loss_names[i], len) == 0) found = i;
        if (found < 0)
            return cli_option_error(args, "loss",
                                    "unknown loss '%.*s' (expected landscape, signfree or l2, "
                                    "comma-separated)",
                                    (int)(len < 40 ? len : 40), p);
        if (use[found])
            return cli_option_error(args, "loss", "'%s' is listed twice", loss_names[found]);
        use[found] = 1;
        ++*count;
        p += len + (p[len] == ',');
    }
    if (*count == 0) return cli_option_error(args, "loss", "no loss given");
    return 0;
}

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_landscape, argc, argv, &args);
    if (status != CLI_RUN) return status;
    job j;
    memset(&j, 0, sizeof j);
    j.args = &args;
    sl_recover_options *o = &j.ropt;
    sl_recover_options_default(o);
    int use[3];
    size_t nloss = 0;
    if ((status = parse_losses(&args, use, &nloss))) return status;
    if ((status = cli_size(&args, "k", 1, SIZE_MAX, &j.k)) ||
        (status = cli_size(&args, "grid", 3, 2001, &j.grid)) ||
        (status = cli_size(&args, "subsample", 10, SIZE_MAX, &j.subsample)) ||
        (status = cli_size(&args, "restarts", 1, 100000, &j.restarts)) ||
        (status = cli_seed(&args, "seed", &o->seed)) ||
        (status = cli_double(&args, "mu", -HUGE_VAL, HUGE_VAL, "a number", &o->landscape.mu)) ||
        (status =
             cli_double(&args, "lambda", 0.0, HUGE_VAL, "a number >= 0", &o->landscape.lambda)))
        return status;
    o->k = j.k;
    sl_status st = sl_score_type_from_name(cli_value(&args, "score"), &o->score);
    if (st)
        return cli_option_error(&args, "score",
                                "unknown score source '%s' (expected llsfe, kde, gauss, hermite "
                                "or exact)",
                                cli_value(&args, "score"));
    if ((st = sl_act_from_name(cli_value(&args, "act"), &o->act)))
        return cli_option_lib_error(&args, "act", st);
    if ((st = sl_bandwidth_parse(cli_value(&args, "bandwidth"), &o->score_opt.bandwidth)))
        return cli_option_lib_error(&args, "bandwidth", st);
    const char *route = cli_value(&args, "route");
    static const char *const routes[] = {"auto", "full", "projected", "quadratic"};
    static const sl_recover_route route_of[] = {SL_ROUTE_AUTO, SL_ROUTE_FULL, SL_ROUTE_PROJECTED,
                                                SL_ROUTE_QUADRATIC};
    int ri = -1;
    for (int i = 0; i < 4; ++i)
        if (strcmp(route, routes[i]) == 0) ri = i;
    if (ri < 0)
        return cli_option_error(&args, "route",
                                "unknown route '%s' (expected auto, full, projected or quadratic)",
                                route);
    o->route = route_of[ri];
    if ((status = cli_moment_options(&args, o))) return status;
    const char *cons = cli_value(&args, "constraint");
    if (strcmp(cons, "sphere") == 0)
        j.proj = SL_PROJ_SPHERE;
    else if (strcmp(cons, "orthonormal") == 0)
        j.proj = SL_PROJ_ORTHONORMAL;
    else if (strcmp(cons, "none") == 0)
        j.proj = SL_PROJ_NONE;
    else
        return cli_option_error(&args, "constraint",
                                "unknown constraint '%s' (expected sphere, orthonormal or none)",
                                cons);
    o->sgd.projection = j.proj == SL_PROJ_NONE ? SL_PROJ_ORTHONORMAL : j.proj;
    const char *plane = cli_value(&args, "plane");
    if (strcmp(plane, "auto") == 0)
        j.plane = j.k == 2 ? PLANE_ANGLES : PLANE_RANDOM;
    else if (strcmp(plane, "angles") == 0)
        j.plane = PLANE_ANGLES;
    else if (strcmp(plane, "random") == 0)
        j.plane = PLANE_RANDOM;
    else if (strncmp(plane, "through:", 8) == 0 && plane[8]) {
        j.plane = PLANE_THROUGH;
        j.through = plane + 8;
    } else
        return cli_option_error(&args, "plane",
                                "unknown plane '%s' (expected angles, random, through:FILE.csv "
                                "or auto)",
                                plane);
    if (j.plane == PLANE_ANGLES && j.k != 2)
        return cli_option_error(&args, "plane", "angles needs --k 2 (got %zu)", j.k);
    j.span = j.plane == PLANE_THROUGH ? 1.5 : 1.0;
    if (strcmp(cli_value(&args, "span"), "auto") != 0 &&
        (status = cli_double(&args, "span", DBL_MIN, 1e6, "a number > 0", &j.span)))
        return status;
    if (j.plane == PLANE_ANGLES && cli_given(&args, "span"))
        return cli_option_error(&args, "span", "the angles run over [0, pi): leave it out");
    const char *spec = cli_value(&args, "dist");
    const int exact = o->score == &sl_score_exact;
    const int need_moments = use[0] || use[1] || j.plane == PLANE_ANGLES;
    if (exact && !spec)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing option --dist SPEC (--score exact needs the distribution)");
    if (!exact && spec) return cli_option_error(&args, "dist", "is used only with --score exact");
    const char *unused = cli_given(&args, "score") ? "score"
                         : spec                    ? "dist"
                                                   : cli_moment_given(&args);
    if (!need_moments && unused)
        return cli_option_error(&args, unused,
                                "the l2 loss on a plane uses no scores: leave it out");
    if (need_moments && (status = cli_moment_check(&args, o, NULL, 0))) return status;
    const char *out = cli_value(&args, "output"), *png = cli_value(&args, "png");
    if (strcmp(out, "-") == 0) return cli_option_error(&args, "output", "cannot be stdout");
    if (png && strcmp(png, out) == 0)
        return cli_error(&args, CLI_EXIT_USAGE, "-o and --png name the same file '%s'", out);

    sl_dist *dist = NULL;
    char *comments[3] = {NULL, NULL, NULL};
    double *u = NULL, *v = NULL, *f = NULL, *g = NULL, *rows[3] = {NULL, NULL, NULL};
    char **paths = NULL, **pngs = NULL;
    if ((status = cli_read_xy(&args, cli_value(&args, "input"), &j.n, &j.d, &j.X, &j.y))) goto done;
    if (j.k > j.d) {
        status = cli_option_error(&args, "k", "k = %zu exceeds d = %zu of %s", j.k, j.d,
                                  cli_value(&args, "input"));
        goto done;
    }
    if (spec) {
        if ((st = sl_dist_from_spec(spec, j.d, &dist))) {
            status = cli_option_lib_error(&args, "dist", st);
            goto done;
        }
        const unsigned need = SL_DIST_GRAD | SL_DIST_HESS;
        if ((sl_dist_caps(dist) & need) != need) {
            status = cli_option_error(&args, "dist", "'%s' has no exact gradient and Hessian",
                                      sl_dist_name(dist));
            goto done;
        }
        o->score_opt.dist = dist;
    }
    if (cli_value(&args, "truth") &&
        (status = read_network(&args, cli_value(&args, "truth"), o->act, j.k, j.d, &j.truth)))
        goto done;
    if (j.through && (status = read_network(&args, j.through, o->act, j.k, j.d, &j.second)))
        goto done;
    /* The outputs, checked before the work. */
    paths = calloc(3, sizeof *paths);
    pngs = calloc(3, sizeof *pngs);
    if (!paths || !pngs) {
        status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (int l = 0; l < 3; ++l)
        if (use[l]) {
            paths[l] = path_for(out, loss_names[l], nloss > 1);
            if (png) pngs[l] = path_for(png, loss_names[l], nloss > 1);
            if (!paths[l] || (png && !pngs[l])) {
                status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory");
                goto done;
            }
            static const char *const name[] = {"a"};
            sl_csv_writer *w = NULL;
            if ((st = sl_csv_writer_open(paths[l], NULL, 1, name, &w))) {
                status = cli_lib_error(&args, st);
                goto done;
            }
            sl_csv_writer_abort(w);
            if (pngs[l] && (status = plot_check_target(&args, pngs[l]))) goto done;
        }

    double t0 = cli_now();
    if (need_moments && (st = sl_plane_moments(o, j.n, j.d, j.X, j.y, &j.m, &j.route))) {
        status = cli_lib_error(&args, st);
        goto done;
    }
    const double t_moments = cli_now() - t0;
    /* The l2 subsample: a seeded random subset, in the original order. */
    j.Xs = j.X;
    j.ys = j.y;
    j.ns = j.n;
    if (use[2] && j.n > j.subsample) {
        j.ns = j.subsample;
        size_t *all = malloc(j.n * sizeof *all), *pick = malloc(j.ns * sizeof *pick);
        j.Xs = malloc(j.ns * j.d * sizeof *j.Xs);
        j.ys = malloc(j.ns * sizeof *j.ys);
        gsl_rng *rng = sl_rng_alloc(o->seed, 8);
        if (!all || !pick || !j.Xs || !j.ys || !rng) {
            free(all);
            free(pick);
            gsl_rng_free(rng);
            status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < j.n; ++i) all[i] = i;
        gsl_ran_choose(rng, pick, j.ns, all, j.n, sizeof *all);
        for (size_t i = 0; i < j.ns; ++i) {
            memcpy(j.Xs + i * j.d, j.X + pick[i] * j.d, j.d * sizeof *j.X);
            j.ys[i] = j.y[pick[i]];
        }
        free(all);
        free(pick);
        gsl_rng_free(rng);
    }

    const size_t G = j.grid, npts = G * G;
    u = malloc(G * sizeof *u);
    v = malloc(G * sizeof *v);
    f = malloc(npts * sizeof *f);
    g = malloc(npts * sizeof *g);
    if (!u || !v || !f || !g) {
        status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory for a %zu x %zu grid", G, G);
        goto done;
    }
    for (size_t i = 0; i < G; ++i) {
        u[i] = j.plane == PLANE_ANGLES ? M_PI * (double)i / (double)G
                                       : -j.span + 2.0 * j.span * (double)i / (double)(G - 1);
        v[i] = u[i];
    }
    for (int l = 0; l < 3; ++l) {
        if (!use[l]) continue;
        char marks[256];
        t0 = cli_now();
        if ((status = evaluate(&j, (sl_recover_loss)l, u, v, f, g, marks, sizeof marks))) goto done;
        const double secs = cli_now() - t0;
        for (size_t p = 0; p < npts; ++p)
            if (!isfinite(f[p]) || !isfinite(g[p])) {
                status = cli_error(&args, CLI_EXIT_FAILURE,
                                   "the %s loss has no value at (u, v) = (%g, %g) (the constraint "
                                   "cannot take that point; try another --constraint or --seed)",
                                   loss_names[l], u[p % G], v[p / G]);
                goto done;
            }
        char extra[1024];
        const char *pname = j.plane == PLANE_ANGLES   ? "angles"
                            : j.plane == PLANE_RANDOM ? "random"
                                                      : "through";
        int len = snprintf(
            extra, sizeof extra,
            "loss %s; plane %s (%s); grid %zu x %zu; %s\n"
            "data: n = %zu, d = %zu, k = %zu%s; seconds: moments %.3f, grid %.3f\n%s",
            loss_names[l], pname,
            j.plane == PLANE_ANGLES
                ? "u, v = angles of the whitened columns b_1, b_2 in radians on [0, pi)"
                : (l == 2 ? "C + u D1 + v D2 over (W, a)" : "C + u D1 + v D2 over whitened B"),
            G, G,
            l == 2 ? (j.plane == PLANE_ANGLES ? "profiled over a and signs" : "plain gradient norm")
                   : (j.plane == PLANE_ANGLES ? "columns on the circle" : cons),
            l == 2 ? j.ns : j.n, j.d, j.k, l == 2 && j.ns < j.n ? " (subsample)" : "", t_moments,
            secs, marks);
        if (len > 0 && (size_t)len < sizeof extra && l != 2 && j.m) {
            len += snprintf(extra + len, sizeof extra - (size_t)len, "\nroute %s; signal",
                            sl_recover_route_name(j.route));
            for (size_t i = 0; i < j.k && len > 0 && (size_t)len < sizeof extra; ++i)
                len += snprintf(extra + len, sizeof extra - (size_t)len, " %.4g", j.m->signal[i]);
        }
        if (!(comments[l] = cli_comment(&args, NULL, extra))) {
            status = CLI_EXIT_FAILURE;
            goto done;
        }
        if (!(rows[l] = malloc(npts * 4 * sizeof *rows[l]))) {
            status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory for a %zu x %zu grid", G, G);
            goto done;
        }
        for (size_t p = 0; p < npts; ++p) {
            rows[l][p * 4] = u[p % G];
            rows[l][p * 4 + 1] = v[p / G];
            rows[l][p * 4 + 2] = f[p];
            rows[l][p * 4 + 3] = g[p];
        }
    }
    /* Every loss evaluated: now the files (a failed evaluation writes none). */
    for (int l = 0; l < 3; ++l) {
        if (!use[l]) continue;
        static const char *const names[] = {"u", "v", "loss", "grad_norm"};
        if ((status = cli_write_csv(&args, paths[l], comments[l], npts, 4, names, rows[l], 4)))
            goto done;
        if (pngs[l]) {
            const char *pname = j.plane == PLANE_ANGLES   ? "angles"
                                : j.plane == PLANE_RANDOM ? "random"
                                                          : "through";
            char title[200];
            snprintf(title, sizeof title, "%s loss, %s plane", loss_names[l], pname);
            const char *in[1] = {paths[l]};
            int ps = plot_render(&args, "landscape", 1, in, pngs[l], title, NULL, 1);
            if (ps == PLOT_NO_GNUPLOT) {
                free(pngs[0]);
                free(pngs[1]);
                free(pngs[2]);
                pngs[0] = pngs[1] = pngs[2] = NULL;
            } else if (ps) {
                status = ps;
                goto done;
            }
        }
    }
done:
    if (paths)
        for (int l = 0; l < 3; ++l) free(paths[l]);
    if (pngs)
        for (int l = 0; l < 3; ++l) free(pngs[l]);
    free(paths);
    free(pngs);
    for (int l = 0; l < 3; ++l) {
        free(comments[l]);
        free(rows[l]);
    }
    free(u);
    free(v);
    free(f);
    free(g);
    if (j.Xs != j.X) free(j.Xs);
    if (j.ys != j.y) free(j.ys);
    free(j.X);
    free(j.y);
    sl_moments_free(j.m);
    sl_network_free(j.truth);
    sl_network_free(j.second);
    sl_dist_free(dist);
    return status;
}
