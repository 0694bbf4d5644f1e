/* The accuracy table of issue 3: score estimators against the exact scores,
 * method x distribution x d x n, printed as Markdown on stdout (progress on
 * stderr).
 *
 * Every estimate is taken at the samples themselves (leave-one-out) with the
 * default options (bandwidth auto; llsfe's default prior weight), sample seed
 * 31. Columns: the chosen bandwidth; the relative MSE of g over the samples
 * within radius 2 of the origin (sl_score_evaluate) and over all of them;
 * the medians of the relative S_2 (spectral) and S_4 (Frobenius, locally
 * quadratic) errors within radius 2; the number of samples within radius 2.
 * Then, per distribution at d = 2, the least-squares slope of log(g error)
 * against log(n) for llsfe, and the kde / llsfe error ratios at n = 10^4.
 * A last table: gmm2 at d = 10, n = 1000 over the samples in the box
 * |x_j| <= 2, llsfe by default against the raw closed form (shrink 0) at
 * h = C n^{-1/(d+6)}.
 *
 * Distributions: gauss; gmm2; agmm, a 3-component mixture of anisotropic,
 * differently shaped and correlated Gaussians (the built-in spec agmm); student
 * (nu = 5). Full run: d = 2 at n = 10^3, 10^4, 10^5 and d = 5, 10 at
 * n = 10^3, 10^4 (and gauss at d = 5, n = 10^5). --quick: d = 2 and 5,
 * n = 10^3 and 10^4, no box table. Usage: bench_accuracy [--quick]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scoreloss/dist.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"

#define SEED 31
#define MAX_N 6

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double h, g_r2, g_all, s2, s4, seconds;
    size_t count;
} result;

static int run(const char *method, const sl_dist *D, size_t n, size_t d, const double *X,
               result *r) {
    const sl_score_type *T;
    sl_score_options opt;
    sl_score_options_default(&opt);
    sl_scores *s = NULL;
    double t0 = now();
    if (sl_score_type_from_name(method, &T) || sl_score_estimate(T, &opt, n, d, X, n, NULL, &s)) {
        fprintf(stderr, "bench_accuracy: %s: %s\n", method, sl_last_error());
        return -1;
    }
    r->seconds = now() - t0;
    sl_score_eval in, all;
    if (sl_score_evaluate(D, s, X, 2.0, &in) || sl_score_evaluate(D, s, X, INFINITY, &all)) {
        fprintf(stderr, "bench_accuracy: evaluation: %s\n", sl_last_error());
        sl_scores_free(s);
        return -1;
    }
    r->h = s->bandwidth;
    r->g_r2 = in.g_rel_mse;
    r->g_all = all.g_rel_mse;
    r->s2 = in.s2_err[2];
    r->s4 = in.s4_err[2];
    r->count = in.count;
    sl_scores_free(s);
    return 0;
}

/* Relative MSE of g over the samples in the box |x_j| <= 2. */
static double box_error(const sl_dist *D, const sl_scores *s, size_t n, size_t d, const double *X) {
    double num = 0, den = 0, *g = malloc(d * sizeof *g);
    if (!g) return NAN;
    for (size_t i = 0; i < n; ++i) {
        int inside = 1;
        for (size_t a = 0; a < d; ++a) inside &= fabs(X[i * d + a]) <= 2;
        if (!inside || sl_dist_grad_hess(D, 1, X + i * d, g, NULL)) continue;
        for (size_t a = 0; a < d; ++a) {
            num += (s->G[i * d + a] - g[a]) * (s->G[i * d + a] - g[a]);
            den += g[a] * g[a];
        }
    }
    free(g);
    return num / den;
}

static int box_table(void) {
    const size_t d = 10, n = 1000;
    sl_dist *D;
    if (sl_dist_from_spec("gmm2", d, &D)) return -1;
    double *X = malloc(n * d * sizeof *X);
    if (!X || sl_dist_sample(D, SEED, n, X)) return -1;
    printf("\n### gmm2, d = 10, n = 1000, samples in the box |x_j| <= 2\n\n");
    printf("| estimator | h | g rel. MSE |\n|---|---:|---:|\n");
    static const double C[] = {1.0, 1.4, 2.0, 2.4, 2.8, 4.0};
    for (size_t k = 0; k <= sizeof C / sizeof C[0]; ++k) {
        sl_score_options opt;
        sl_score_options_default(&opt);
        char name[64];
        if (k < sizeof C / sizeof C[0]) {
            opt.bandwidth.kind = SL_BW_CONST;
            opt.bandwidth.value = C[k];
            opt.shrink = 0;
            snprintf(name, sizeof name, "llsfe, shrink 0, const:%g", C[k]);
        } else {
            snprintf(name, sizeof name, "llsfe, default (auto)");
        }
        sl_scores *s;
        if (sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &s)) {
            fprintf(stderr, "bench_accuracy: %s\n", sl_last_error());
            return -1;
        }
        printf("| %s | %.3f | %.4g |\n", name, s->bandwidth, box_error(D, s, n, d, X));
        fflush(stdout);
        sl_scores_free(s);
    }
    free(X);
    sl_dist_free(D);
    return 0;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    if (argc > 2 || (argc == 2 && !quick)) {
        fprintf(stderr, "usage: bench_accuracy [--quick]\n");
        return 2;
    }
    static const char *dists[] = {"gauss", "gmm2", "agmm", "student"};
    static const char *methods[] = {"llsfe", "kde", "gauss"};
    const size_t dims[] = {2, 5, 10};
    const size_t ndims = quick ? 2 : 3, nmethods = sizeof methods / sizeof methods[0];

    printf("| method | distribution | d | n | h | g rel. MSE, r <= 2 | g rel. MSE, all | "
           "S2 median, r <= 2 | S4 median, r <= 2 | points r <= 2 | seconds |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    /* Slopes and ratios, kept per distribution at d = 2 and per (dist, d). */
    double slope_x[4][MAX_N], slope_y[4][MAX_N];
    size_t slope_k[4] = {0};
    double ratio[4][3], ratio_all[4][3];
    for (size_t i = 0; i < 4; ++i)
        for (size_t j = 0; j < 3; ++j) ratio[i][j] = ratio_all[i][j] = NAN;
    for (size_t di = 0; di < ndims; ++di) {
        const size_t d = dims[di];
        for (size_t k = 0; k < 4; ++k) {
            sl_dist *D;
            if (sl_dist_from_spec(dists[k], d, &D)) {
                fprintf(stderr, "bench_accuracy: %s\n", sl_last_error());
                return 1;
            }
            size_t ns[MAX_N], nn = 0;
            ns[nn++] = 1000;
            ns[nn++] = 10000;
            if (!quick && (d == 2 || (d == 5 && k == 0))) ns[nn++] = 100000;
            for (size_t t = 0; t < nn; ++t) {
                const size_t n = ns[t];
                double *X = malloc(n * d * sizeof *X);
                if (!X || sl_dist_sample(D, SEED, n, X)) {
                    fprintf(stderr, "bench_accuracy: sampling failed\n");
                    return 1;
                }
                double err[3] = {NAN, NAN, NAN}, err_all[3] = {NAN, NAN, NAN};
                for (size_t mi = 0; mi < nmethods; ++mi) {
                    fprintf(stderr, "%s %s d=%zu n=%zu ...\n", methods[mi], dists[k], d, n);
                    result r;
                    if (run(methods[mi], D, n, d, X, &r)) return 1;
                    err[mi] = r.g_r2;
                    err_all[mi] = r.g_all;
                    printf("| %s | %s | %zu | %zu | %.3g | %.4g | %.4g | %.3g | %.3g | %zu | "
                           "%.1f |\n",
                           methods[mi], dists[k], d, n, r.h, r.g_r2, r.g_all, r.s2, r.s4, r.count,
                           r.seconds);
                    fflush(stdout);
                }
                if (d == 2) {
                    slope_x[k][slope_k[k]] = log((double)n);
                    slope_y[k][slope_k[k]++] = log(err[0]);
                }
                if (n == 10000) {
                    ratio[k][di] = err[1] / err[0];
                    ratio_all[k][di] = err_all[1] / err_all[0];
                }
                free(X);
            }
            sl_dist_free(D);
        }
    }

    printf("\n### llsfe at d = 2: least-squares slope of log(g rel. MSE, r <= 2) on log n\n\n");
    printf("| distribution | slope |\n|---|---:|\n");
    for (size_t k = 0; k < 4; ++k) {
        const size_t m = slope_k[k];
        double mx = 0, my = 0, sxy = 0, sxx = 0;
        for (size_t t = 0; t < m; ++t) {
            mx += slope_x[k][t] / (double)m;
            my += slope_y[k][t] / (double)m;
        }
        for (size_t t = 0; t < m; ++t) {
            sxy += (slope_x[k][t] - mx) * (slope_y[k][t] - my);
            sxx += (slope_x[k][t] - mx) * (slope_x[k][t] - mx);
        }
        printf("| %s | %.3f |\n", dists[k], sxy / sxx);
    }
    printf("\n### kde / llsfe g rel. MSE at n = 10^4, both with bandwidth auto: within r <= 2 "
           "/ over all samples\n\n");
    printf("| distribution |");
    for (size_t di = 0; di < ndims; ++di) printf(" d = %zu |", dims[di]);
    printf("\n|---|");
    for (size_t di = 0; di < ndims; ++di) printf("---:|");
    printf("\n");
    for (size_t k = 0; k < 4; ++k) {
        printf("| %s |", dists[k]);
        for (size_t di = 0; di < ndims; ++di)
            printf(" %.2f / %.2f |", ratio[k][di], ratio_all[k][di]);
        printf("\n");
    }
    if (!quick && box_table()) return 1;
    return 0;
}
