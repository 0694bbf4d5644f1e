/* Accuracy of the score estimators against exact scores (issue 3), on fixed
 * seeds. Each bound comes from a measurement (quoted beside it) with room
 * for the seed; bench/bench_accuracy prints the full table. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "score/score_internal.h"
#include "scoreloss/dist.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"
#include "testutil.h"

/* Distributions by specification; "agmm" is the built-in anisotropic
 * 3-component mixture (weights 0.4, 0.35, 0.25; components of different
 * shapes and orientations, where the local covariance differs from place to
 * place). */
static sl_dist *make_dist(const char *name, size_t d) {
    sl_dist *D;
    ck_assert_msg(sl_dist_from_spec(name, d, &D) == SL_OK, "%s: %s", name, sl_last_error());
    return D;
}

static double *draw(const sl_dist *D, size_t d, size_t n, unsigned long seed) {
    double *X = malloc(n * d * sizeof *X);
    ck_assert_ptr_nonnull(X);
    ck_assert_int_eq(sl_dist_sample(D, seed, n, X), SL_OK);
    return X;
}

/* Scores at the samples (leave-one-out) by method with the given bandwidth
 * ("auto", "const:C", ...) and shrink (< 0: the default). */
static sl_scores *estimate(const char *method, const char *bandwidth, double shrink, size_t n,
                           size_t d, const double *X) {
    sl_score_options opt;
    sl_score_options_default(&opt);
    ck_assert_int_eq(sl_bandwidth_parse(bandwidth, &opt.bandwidth), SL_OK);
    if (shrink >= 0) opt.shrink = shrink;
    const sl_score_type *T;
    ck_assert_int_eq(sl_score_type_from_name(method, &T), SL_OK);
    sl_scores *s;
    ck_assert_msg(sl_score_estimate(T, &opt, n, d, X, n, NULL, &s) == SL_OK, "%s: %s", method,
                  sl_last_error());
    return s;
}

static sl_score_eval evaluate(const sl_dist *D, const sl_scores *s, const double *X) {
    sl_score_eval ev;
    ck_assert_msg(sl_score_evaluate(D, s, X, 2.0, &ev) == SL_OK, "%s", sl_last_error());
    return ev;
}

/* Relative MSE of g over the samples in the box |x_j| <= 2. */
static double box_error(const sl_dist *D, const sl_scores *s, const double *X) {
    const size_t n = s->n, d = s->d;
    double num = 0, den = 0, g[16];
    for (size_t i = 0; i < n; ++i) {
        int inside = 1;
        for (size_t a = 0; a < d; ++a) inside &= fabs(X[i * d + a]) <= 2;
        if (!inside) continue;
        ck_assert_int_eq(sl_dist_grad_hess(D, 1, X + i * d, g, NULL), SL_OK);
        for (size_t a = 0; a < d; ++a) {
            num += (s->G[i * d + a] - g[a]) * (s->G[i * d + a] - g[a]);
            den += g[a] * g[a];
        }
    }
    return num / den;
}

/* The bandwidth s n^{-1/(d+6)} of the sample X (s = sqrt(tr cov / d)), as
 * text for sl_bandwidth_parse. */
static void middle_bandwidth(size_t n, size_t d, const double *X, char *out, size_t len) {
    double mean[16] = {0}, var = 0;
    for (size_t i = 0; i < n; ++i)
        for (size_t a = 0; a < d; ++a) mean[a] += X[i * d + a] / (double)n;
    for (size_t i = 0; i < n; ++i)
        for (size_t a = 0; a < d; ++a)
            var += (X[i * d + a] - mean[a]) * (X[i * d + a] - mean[a]) / (double)((n - 1) * d);
    snprintf(out, len, "%.17g", sqrt(var) * pow((double)n, -1.0 / ((double)d + 6.0)));
}

/* Few samples in high dimension: gmm2, d = 10, n = 1000. The raw closed
 * form (shrink 0) at h = C n^{-1/16} has a relative MSE of g of 1599 at
 * C = 1 and 0.18 at its best C (2.4); the default llsfe 0.069 (seeds 31-38:
 * 0.036 to 0.077). Bound: the 0.10, and under 0.6 times the raw
 * form's best (0.38 measured). */
START_TEST(few_samples_high_dimension) {
    const size_t n = 1000, d = 10;
    sl_dist *D = make_dist("gmm2", d);
    double *X = draw(D, d, n, 31);
    sl_scores *s = estimate("llsfe", "const:1", 0, n, d, X);
    const double raw_c1 = box_error(D, s, X);
    sl_scores_free(s);
    ck_assert_msg(raw_c1 > 100, "raw closed form at C = 1: %g (measured 1599)", raw_c1);
    double raw_best = INFINITY;
    const char *consts[] = {"const:2", "const:2.4", "const:2.8"};
    for (size_t k = 0; k < 3; ++k) {
        s = estimate("llsfe", consts[k], 0, n, d, X);
        raw_best = fmin(raw_best, box_error(D, s, X));
        sl_scores_free(s);
    }
    s = estimate("llsfe", "auto", -1, n, d, X);
    const double err = box_error(D, s, X);
    ck_assert_msg(err <= 0.10, "default llsfe: g rel. MSE %.4g in the box (measured 0.069)", err);
    ck_assert_msg(err <= 0.6 * raw_best, "default llsfe %.4g against the raw form's best %.4g", err,
                  raw_best);
    sl_scores_free(s);
    free(X);
    sl_dist_free(D);
}
END_TEST

typedef struct {
    const char *dist;
    size_t d;
    double min_ratio; /* kde's g error over llsfe's, at least */
} ratio_case;

/* kde / llsfe g relative MSE within radius 2 at n = 10^4, seed 31, both at
 * the same bandwidth h = s n^{-1/(d+6)} (s = sqrt(tr cov / d), the middle of
 * the automatic grid), llsfe with its default shrink. Measured:
 *   gmm2 d=2 1.38, student d=2 2.33, agmm d=2 4.17,
 *   gmm2 d=5 1.19, student d=5 3.65, agmm d=5 5.12.
 * The factor 2 holds but on gmm2, where the log-density's third
 * derivative between the modes biases the local quadratic about as much as
 * the neglected curvature biases kde: there llsfe is only asserted better. */
static const ratio_case ratio_cases[] = {
    {"gmm2", 2, 1.1}, {"student", 2, 2.0}, {"agmm", 2, 3.0},
    {"gmm2", 5, 1.0}, {"student", 5, 2.5}, {"agmm", 5, 3.5},
};

START_TEST(llsfe_beats_kde) {
    const ratio_case *c = &ratio_cases[_i];
    const size_t n = 10000, d = c->d;
    sl_dist *D = make_dist(c->dist, d);
    double *X = draw(D, d, n, 31);
    char bw[64];
    middle_bandwidth(n, d, X, bw, sizeof bw);
    sl_scores *s = estimate("llsfe", bw, -1, n, d, X);
    const double e_llsfe = evaluate(D, s, X).g_rel_mse;
    sl_scores_free(s);
    s = estimate("kde", bw, -1, n, d, X);
    const double e_kde = evaluate(D, s, X).g_rel_mse;
    sl_scores_free(s);
    ck_assert_msg(e_kde >= c->min_ratio * e_llsfe,
                  "%s d=%zu h=%s: llsfe %.4g, kde %.4g: ratio %.2f below %.2f", c->dist, d, bw,
                  e_llsfe, e_kde, e_kde / e_llsfe, c->min_ratio);
    free(X);
    sl_dist_free(D);
}
END_TEST

/* At d = 2 the g error falls as n grows 1000, 4000, 16000 (seed 31, the
 * bandwidth s n^{-1/8}, default shrink). Measured errors and the ratios of
 * consecutive ones:
 *   gmm2     0.1035 0.0565 0.0243 (0.55, 0.43)
 *   agmm     0.2328 0.1527 0.1006 (0.66, 0.66)
 *   student  0.0217 0.0120 0.0078 (0.55, 0.65)
 *   gauss    0.0677 0.0287 0.0124 (0.42, 0.43)
 * Bound: each ratio at most 0.85. (The automatic bandwidth's table is
 * bench_accuracy's; it costs too much for this suite at n = 16000.) */
static const char *const falls_dists[] = {"gmm2", "agmm", "student", "gauss"};

START_TEST(error_falls_with_n) {
    const char *dist = falls_dists[_i];
    const size_t d = 2, ns[3] = {1000, 4000, 16000};
    sl_dist *D = make_dist(dist, d);
    double err[3];
    for (size_t k = 0; k < 3; ++k) {
        double *X = draw(D, d, ns[k], 31);
        char bw[64];
        middle_bandwidth(ns[k], d, X, bw, sizeof bw);
        sl_scores *s = estimate("llsfe", bw, -1, ns[k], d, X);
        err[k] = evaluate(D, s, X).g_rel_mse;
        sl_scores_free(s);
        free(X);
    }
    for (size_t k = 1; k < 3; ++k)
        ck_assert_msg(err[k] <= 0.85 * err[k - 1], "%s: g rel. MSE %.4g at n = %zu, %.4g at %zu",
                      dist, err[k - 1], ns[k - 1], err[k], ns[k]);
    sl_dist_free(D);
}
END_TEST

/* On gauss the default llsfe's S_2 and S_4 approach the exact (Hermite)
 * scores: seed 41, d = 2, medians within radius 2, measured
 *   n = 1000: S2 0.090, S4 0.124;  n = 4000: S2 0.047, S4 0.059
 * (and 0.021, 0.034 at n = 16000 in bench_accuracy's setting). Bounds: at
 * n = 4000 under 0.1, and at most 0.75 times the n = 1000 value. */
START_TEST(gauss_scores_approach_exact) {
    const size_t d = 2, ns[2] = {1000, 4000};
    sl_dist *D = make_dist("gauss", d);
    double s2[2], s4[2];
    for (size_t k = 0; k < 2; ++k) {
        double *X = draw(D, d, ns[k], 41);
        sl_scores *s = estimate("llsfe", "auto", -1, ns[k], d, X);
        sl_score_eval ev = evaluate(D, s, X);
        s2[k] = ev.s2_err[2];
        s4[k] = ev.s4_err[2];
        sl_scores_free(s);
        free(X);
    }
    ck_assert_msg(s2[1] < 0.1 && s4[1] < 0.1, "n = 4000: S2 %.3g, S4 %.3g", s2[1], s4[1]);
    ck_assert_msg(s2[1] <= 0.75 * s2[0], "S2 median %.3g at n = 1000, %.3g at 4000", s2[0], s2[1]);
    ck_assert_msg(s4[1] <= 0.75 * s4[0], "S4 median %.3g at n = 1000, %.3g at 4000", s4[0], s4[1]);
    sl_dist_free(D);
}
END_TEST

/* The automatic bandwidth's div g comes from the estimator's derivative in
 * the query point (llsfe.c: the moments move as cumulants under a tilt,
 * plus a skewness term from a second pass), not from 2d + 1 evaluations by
 * central differences. Both at 40 points drawn apart from the n = 1500
 * samples, at a fixed h, differences with step h / 80. Measured max
 * |analytic - differences| / (1 + |differences|) per case below: 1.8e-4,
 * 2.0e-4, 1.8e-5, 2.8e-4, 1.0e-4; with step h / 20 2.9e-3, 3.2e-3, 2.9e-4,
 * 4.5e-3, 1.6e-3, i.e. 16 times more: the difference is the O(step^2)
 * error of the central differences. Bound 1e-3. */
typedef struct {
    const char *dist;
    size_t d;
    sl_kernel_map map;
    double shrink, h;
} div_case;

static const div_case div_cases[] = {
    {"gmm2", 3, SL_KERNEL_LLSFE, 0.0, 0.5},      {"gmm2", 3, SL_KERNEL_LLSFE, 3.0, 0.5},
    {"logistic", 5, SL_KERNEL_LLSFE, 10.0, 1.2}, {"agmm", 2, SL_KERNEL_LLSFE, 1000.0, 0.25},
    {"student", 4, SL_KERNEL_KDE, 0.0, 0.6},
};

START_TEST(divergence_matches_differences) {
    const div_case *c = &div_cases[_i];
    const size_t n = 1500, m = 40, d = c->d, per = 2 * d + 1;
    sl_dist *D = make_dist(c->dist, d);
    double *X = draw(D, d, n, 5), *Q = draw(D, d, m, 6);
    double *Qf = malloc(m * per * d * sizeof *Qf), *div = malloc(m * sizeof *div);
    ck_assert_ptr_nonnull(Qf);
    ck_assert_ptr_nonnull(div);
    const double eps = c->h / 80;
    for (size_t i = 0; i < m; ++i)
        for (size_t p = 0; p < per; ++p) {
            double *q = Qf + (i * per + p) * d;
            memcpy(q, Q + i * d, d * sizeof *q);
            if (p > 0) q[(p - 1) / 2] += p % 2 ? eps : -eps;
        }
    sl_score_options opt;
    sl_score_options_default(&opt);
    opt.shrink = c->shrink;
    sl_gauss_fit fit;
    ck_assert_int_eq(sl_gauss_fit_compute(n, d, X, &fit), SL_OK);
    sl_scores *s, *f;
    ck_assert_int_eq(sl_scores_alloc(m, d, &s), SL_OK);
    ck_assert_int_eq(sl_scores_alloc(m * per, d, &f), SL_OK);
    ck_assert_msg(sl_kernel_scores_div(c->map, &opt, &fit, n, d, X, m, Q, c->h, s, div) == SL_OK,
                  "%s", sl_last_error());
    ck_assert_msg(sl_kernel_scores(c->map, &opt, &fit, n, d, X, m * per, Qf, c->h, 0, f) == SL_OK,
                  "%s", sl_last_error());
    double worst = 0.0;
    for (size_t i = 0; i < m; ++i) {
        const double *g = f->G + i * per * d;
        double fd = 0.0;
        for (size_t a = 0; a < d; ++a)
            fd += (g[(2 * a + 1) * d + a] - g[(2 * a + 2) * d + a]) / (2 * eps);
        for (size_t a = 0; a < d; ++a) ck_assert_double_eq_tol(s->G[i * d + a], g[a], 1e-12);
        worst = fmax(worst, fabs(div[i] - fd) / (1.0 + fabs(fd)));
    }
    ck_assert_msg(worst < 1e-3, "%s, d = %zu: analytic div g off by %.3g", c->dist, d, worst);
    sl_scores_free(s);
    sl_scores_free(f);
    sl_gauss_fit_release(&fit);
    free(X);
    free(Q);
    free(Qf);
    free(div);
    sl_dist_free(D);
}
END_TEST

static Suite *accuracy_suite(void) {
    Suite *s = suite_create("accuracy");
    TCase *tc = tcase_create("accuracy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, few_samples_high_dimension);
    tcase_add_loop_test(tc, llsfe_beats_kde, 0, (int)(sizeof ratio_cases / sizeof ratio_cases[0]));
    tcase_add_loop_test(tc, error_falls_with_n, 0,
                        (int)(sizeof falls_dists / sizeof falls_dists[0]));
    tcase_add_test(tc, gauss_scores_approach_exact);
    tcase_add_loop_test(tc, divergence_matches_differences, 0,
                        (int)(sizeof div_cases / sizeof div_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(accuracy_suite());
}
