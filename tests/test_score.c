/* Score estimators: llsfe and kde against a direct transcription of their
 * formulas, the baselines against their closed forms, robustness on
 * degenerate data, determinism, and the automatic bandwidth against the best
 * fixed bandwidth of its own grid. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/linalg.h"
#include "scoreloss/dist.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"
#include "testutil.h"

static double *draw(const char *spec, size_t d, size_t n, unsigned long seed) {
    sl_dist *D;
    ck_assert_msg(sl_dist_from_spec(spec, d, &D) == SL_OK, "%s", sl_last_error());
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, seed, n, X), SL_OK);
    sl_dist_free(D);
    return X;
}

/* The formulas of METHOD.md section 3, one query at a time, two-pass. */
static void direct_kernel(int kde, size_t n, size_t d, const double *X, const double *q, long self,
                          double h, double *g, double *H) {
    double K0 = 0, mu[16] = {0}, Sig[256] = {0}, Si[256];
    for (size_t j = 0; j < n; ++j) {
        if ((long)j == self) continue;
        double r2 = 0;
        for (size_t a = 0; a < d; ++a) r2 += (X[j * d + a] - q[a]) * (X[j * d + a] - q[a]);
        double w = exp(-r2 / (2 * h * h));
        K0 += w;
        for (size_t a = 0; a < d; ++a) mu[a] += w * (X[j * d + a] - q[a]);
    }
    for (size_t a = 0; a < d; ++a) mu[a] /= K0;
    for (size_t j = 0; j < n; ++j) {
        if ((long)j == self) continue;
        double r2 = 0;
        for (size_t a = 0; a < d; ++a) r2 += (X[j * d + a] - q[a]) * (X[j * d + a] - q[a]);
        double w = exp(-r2 / (2 * h * h));
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b)
                Sig[a * d + b] += w * (X[j * d + a] - q[a] - mu[a]) * (X[j * d + b] - q[b] - mu[b]);
    }
    for (size_t k = 0; k < d * d; ++k) Sig[k] /= K0;
    if (kde) {
        for (size_t a = 0; a < d; ++a) g[a] = mu[a] / (h * h);
        for (size_t k = 0; k < d * d; ++k) H[k] = Sig[k] / (h * h * h * h);
        for (size_t a = 0; a < d; ++a) H[a * d + a] -= 1 / (h * h);
        return;
    }
    ck_assert_int_eq(sl_spd_inverse(d, Sig, Si, NULL, "Sig"), SL_OK);
    for (size_t a = 0; a < d; ++a) {
        g[a] = 0;
        for (size_t b = 0; b < d; ++b) g[a] += Si[a * d + b] * mu[b];
    }
    for (size_t k = 0; k < d * d; ++k) H[k] = -Si[k];
    for (size_t a = 0; a < d; ++a) H[a * d + a] += 1 / (h * h);
}

static double rel_diff(size_t n, const double *a, const double *b) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; ++i) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / fmax(den, 1e-300);
}

typedef struct {
    const char *method;
    sl_strategy strategy;
    size_t d;
    int at_samples; /* 1: leave-one-out at the samples, 0: at other points */
} transcription_case;

static const transcription_case transcription[] = {
    {"llsfe", SL_STRATEGY_ALLPAIRS, 1, 1},   {"llsfe", SL_STRATEGY_ALLPAIRS, 2, 1},
    {"llsfe", SL_STRATEGY_ALLPAIRS, 5, 0},   {"llsfe", SL_STRATEGY_NEIGHBOURS, 2, 1},
    {"llsfe", SL_STRATEGY_NEIGHBOURS, 3, 0}, {"kde", SL_STRATEGY_ALLPAIRS, 2, 1},
    {"kde", SL_STRATEGY_NEIGHBOURS, 3, 0},
};

/* llsfe and kde at a fixed bandwidth, with no shrinkage, equal the direct
 * O(n^2) transcription to 1e-9 relative (the neighbours strategy with a
 * cutoff of 40 h leaves out weights below exp(-800)). */
START_TEST(kernel_estimators_match_transcription) {
    const transcription_case *c = &transcription[_i];
    const size_t n = 300, nq = 40, d = c->d;
    double *X = draw("gmm2", d, n, 100 + (unsigned long)_i);
    double *Q = draw("gmm2", d, nq, 200 + (unsigned long)_i);
    sl_score_options opt;
    sl_score_options_default(&opt);
    opt.bandwidth.kind = SL_BW_FIXED;
    opt.bandwidth.value = 0.6;
    opt.strategy = c->strategy;
    opt.cutoff = 40;
    opt.shrink = 0;
    const sl_score_type *T;
    ck_assert_int_eq(sl_score_type_from_name(c->method, &T), SL_OK);
    sl_scores *s;
    size_t m = c->at_samples ? n : nq;
    ck_assert_msg(sl_score_estimate(T, &opt, n, d, X, m, c->at_samples ? NULL : Q, &s) == SL_OK,
                  "%s", sl_last_error());
    ck_assert_uint_eq(s->n, m);
    ck_assert_uint_eq(s->regularised, 0);
    double g[16], H[256];
    for (size_t i = 0; i < m; i += 7) {
        const double *q = c->at_samples ? X + i * d : Q + i * d;
        direct_kernel(strcmp(c->method, "kde") == 0, n, d, X, q, c->at_samples ? (long)i : -1, 0.6,
                      g, H);
        ck_assert_msg(rel_diff(d, s->G + i * d, g) < 1e-9, "%s d=%zu point %zu: g differs by %g",
                      c->method, d, i, rel_diff(d, s->G + i * d, g));
        ck_assert_msg(rel_diff(d * d, s->H + i * d * d, H) < 1e-9,
                      "%s d=%zu point %zu: H differs by %g", c->method, d, i,
                      rel_diff(d * d, s->H + i * d * d, H));
    }
    sl_scores_free(s);
    free(X);
    free(Q);
}
END_TEST

START_TEST(baselines_closed_forms) {
    const size_t n = 2000, d = 3;
    double *X = draw("gauss", d, n, 7);
    for (size_t i = 0; i < n; ++i) X[i * d + 1] = 2 * X[i * d + 1] + 1; /* N(1, 4) in x2 */
    const sl_score_type *T;
    sl_scores *s;
    ck_assert_int_eq(sl_score_type_from_name("hermite", &T), SL_OK);
    ck_assert_int_eq(sl_score_estimate(T, NULL, n, d, X, 5, X, &s), SL_OK);
    for (size_t i = 0; i < 5; ++i)
        for (size_t a = 0; a < d; ++a) {
            ck_assert(s->G[i * d + a] == -X[i * d + a]);
            for (size_t b = 0; b < d; ++b)
                ck_assert(s->H[i * d * d + a * d + b] == (a == b ? -1.0 : 0.0));
        }
    sl_scores_free(s);
    /* gauss: the fitted N(m, C) has m ~ (0, 1, 0) and C ~ diag(1, 4, 1), so at
     * x = (0, 3, 0), g ~ (0, -0.5, 0) and H ~ -diag(1, 0.25, 1), within the
     * sampling error of 2000 points (a few percent). */
    ck_assert_int_eq(sl_score_type_from_name("gauss", &T), SL_OK);
    double q[3] = {0, 3, 0};
    ck_assert_int_eq(sl_score_estimate(T, NULL, n, d, X, 1, q, &s), SL_OK);
    ck_assert_double_eq_tol(s->G[1], -0.5, 0.05);
    ck_assert_double_eq_tol(s->H[4], -0.25, 0.02);
    ck_assert_double_eq_tol(s->H[0], -1.0, 0.08);
    ck_assert_double_eq_tol(s->H[1], 0.0, 0.05);
    sl_scores_free(s);
    /* exact: the distribution's own, and a clear error without one. */
    ck_assert_int_eq(sl_score_type_from_name("exact", &T), SL_OK);
    ck_assert_int_eq(sl_score_estimate(T, NULL, n, d, X, 1, q, &s), SL_EINVAL);
    ck_assert(strstr(sl_last_error(), "needs a distribution") != NULL);
    ck_assert_int_eq(sl_score_type_from_name("nope", &T), SL_EINVAL);
    ck_assert(strstr(sl_last_error(), "unknown score method 'nope'") != NULL);
    free(X);
}
END_TEST

typedef struct {
    const char *name;
    const char *bandwidth;
    sl_strategy strategy;
} degenerate_case;

static const degenerate_case degenerate[] = {
    {"tiny h, all pairs", "0.001", SL_STRATEGY_ALLPAIRS},
    {"tiny h, neighbours", "0.001", SL_STRATEGY_NEIGHBOURS},
    {"knn:3", "knn:3", SL_STRATEGY_AUTO},
    {"auto", "auto", SL_STRATEGY_AUTO},
};

/* Duplicated points, a point far from the rest, and data on a plane in R^3:
 * every estimate is finite and the regularised points are counted. */
START_TEST(degenerate_data_stays_finite) {
    const degenerate_case *c = &degenerate[_i];
    const size_t n = 400, d = 3;
    double *X = draw("gauss", d, n, 9);
    for (size_t i = 0; i < n; ++i) X[i * d + 2] = X[i * d] + X[i * d + 1]; /* a plane */
    for (size_t i = 0; i < 50; ++i)
        memcpy(X + (200 + i) * d, X + i * d, d * sizeof *X); /* duplicates */
    X[(n - 1) * d] = 1e3;                                    /* a far outlier */
    const char *methods[] = {"llsfe", "kde"};
    for (int k = 0; k < 2; ++k) {
        sl_score_options opt;
        sl_score_options_default(&opt);
        ck_assert_int_eq(sl_bandwidth_parse(c->bandwidth, &opt.bandwidth), SL_OK);
        opt.strategy = c->strategy;
        const sl_score_type *T;
        ck_assert_int_eq(sl_score_type_from_name(methods[k], &T), SL_OK);
        sl_scores *s;
        sl_status st = sl_score_estimate(T, &opt, n, d, X, n, NULL, &s);
        ck_assert_msg(st == SL_OK, "%s %s: %s", methods[k], c->name, sl_last_error());
        ck_assert(sl_all_finite(n * d, s->G));
        ck_assert(sl_all_finite(n * d * d, s->H));
        if (k == 0) /* the local covariance is singular on a plane */
            ck_assert_msg(s->regularised > 0, "llsfe %s: no point reported regularised", c->name);
        sl_scores_free(s);
    }
    free(X);
}
END_TEST

START_TEST(thread_count_does_not_matter) {
#ifdef _OPENMP
    const size_t n = 3000, d = 3;
    double *X = draw("student", d, n, 21);
    const char *bws[] = {"auto", "knn:40", "0.5"};
    for (int b = 0; b < 3; ++b) {
        sl_score_options opt;
        sl_score_options_default(&opt);
        ck_assert_int_eq(sl_bandwidth_parse(bws[b], &opt.bandwidth), SL_OK);
        sl_scores *s1, *s2;
        omp_set_num_threads(1);
        ck_assert_int_eq(sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &s1), SL_OK);
        omp_set_num_threads(2);
        ck_assert_int_eq(sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &s2), SL_OK);
        ck_assert_msg(memcmp(s1->G, s2->G, n * d * sizeof *s1->G) == 0, "%s: g differs", bws[b]);
        ck_assert_msg(memcmp(s1->H, s2->H, n * d * d * sizeof *s1->H) == 0, "%s: H differs",
                      bws[b]);
        sl_scores_free(s1);
        sl_scores_free(s2);
    }
    free(X);
#endif
}
END_TEST

typedef struct {
    const char *spec;
    size_t d, n;
    unsigned long seed;
    int inside; /* 1: also within 1.25x over the samples with |x| <= 2 */
} auto_case;

/* Measured ratios auto / best fixed (all samples; |x| <= 2 where checked),
 * release build: gmm2 d = 2, n = 4000: 0.76, 1.05; student: 1.00; gauss:
 * 0.75, 0.88; logistic: 1.03; student d = 2, n = 1000: 1.00; gmm2 d = 2,
 * n = 1000, seeds 31 and 33: 0.91, 1.05 and 0.77, 0.78 (1.16, 1.73 and
 * 0.87, 1.61 when the widening ignored the centre). Inside |x| <= 2 the
 * two students and logistic are 2.91, 2.35 and 2.84 times the best there:
 * no bandwidth of the grid is within 1.25x of both bests on these inputs
 * (see bandwidth.c), so only the error over all samples is checked. */
static const auto_case auto_cases[] = {
    {"gmm2", 2, 4000, 31, 1},     {"student", 2, 4000, 32, 0}, {"gauss", 3, 4000, 33, 1},
    {"logistic", 2, 4000, 34, 0}, {"student", 2, 1000, 31, 0}, {"gmm2", 2, 1000, 31, 1},
    {"gmm2", 2, 1000, 33, 1},
};

/* The automatic bandwidth's g-error is within 1.25x of the best fixed
 * bandwidth on its own grid, measured against the exact scores at every
 * sample (the p-weighted error that held-out score matching estimates) and,
 * for the cases marked inside, over the samples with |x| <= 2 (what
 * `scoreloss score --eval` reports). Inside |x| <= 2 alone the best
 * bandwidth is smaller on heavy-tailed inputs, since the tails want more
 * smoothing than the centre. */
START_TEST(auto_bandwidth_near_best_fixed) {
    const auto_case *c = &auto_cases[_i];
    const size_t d = c->d, n = c->n;
    sl_dist *D;
    ck_assert_int_eq(sl_dist_from_spec(c->spec, d, &D), SL_OK);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, c->seed, n, X), SL_OK);
    sl_score_options opt;
    sl_score_options_default(&opt);
    sl_scores *a;
    ck_assert_int_eq(sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &a), SL_OK);
    ck_assert_uint_gt(a->bw_ngrid, 3);
    /* Radius INFINITY (all samples), then 2. */
    const double radius[2] = {INFINITY, 2.0};
    sl_score_eval ev;
    double auto_err[2], best[2] = {INFINITY, INFINITY}, best_h[2] = {0, 0};
    for (int r = 0; r < 2; ++r) {
        ck_assert_int_eq(sl_score_evaluate(D, a, X, radius[r], &ev), SL_OK);
        auto_err[r] = ev.g_rel_mse;
    }
    for (size_t k = 0; k < a->bw_ngrid; ++k) {
        opt.bandwidth.kind = SL_BW_FIXED;
        opt.bandwidth.value = a->bw_grid[k];
        sl_scores *f;
        ck_assert_int_eq(sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &f), SL_OK);
        for (int r = 0; r < 2; ++r) {
            ck_assert_int_eq(sl_score_evaluate(D, f, X, radius[r], &ev), SL_OK);
            if (ev.g_rel_mse < best[r]) {
                best[r] = ev.g_rel_mse;
                best_h[r] = a->bw_grid[k];
            }
        }
        sl_scores_free(f);
    }
    for (int r = 0; r < 1 + c->inside; ++r)
        ck_assert_msg(auto_err[r] <= 1.25 * best[r],
                      "%s d=%zu, radius %g: auto h=%.3g has g rel. MSE %.4g, best fixed h=%.3g "
                      "has %.4g",
                      c->spec, d, radius[r], a->bandwidth, auto_err[r], best_h[r], best[r]);
    sl_scores_free(a);
    free(X);
    sl_dist_free(D);
}
END_TEST

/* The shrink chosen with the automatic bandwidth is reported (sl_scores.
 * shrink), is one of llsfe's ladder, and respects options.shrink_min; kde
 * has none. Student t, d = 5, n = 1500 (where the choice goes low). */
START_TEST(auto_shrink_floor) {
    const size_t d = 5, n = 1500;
    sl_dist *D;
    ck_assert_int_eq(sl_dist_from_spec("student", d, &D), SL_OK);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, 3, n, X), SL_OK);
    sl_score_options opt;
    sl_score_options_default(&opt);
    sl_scores *a, *b, *c;
    ck_assert_int_eq(sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &a), SL_OK);
    const double ladder[] = {0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0};
    int on_ladder = 0;
    for (size_t i = 0; i < 8; ++i) on_ladder |= a->shrink == ladder[i];
    ck_assert_msg(on_ladder, "shrink %g", a->shrink);
    opt.shrink_min = 2.0 * a->shrink + 5.0; /* above the free choice: the next ladder weight up */
    ck_assert_int_eq(sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &b), SL_OK);
    ck_assert_msg(b->shrink >= opt.shrink_min, "shrink %g below the floor %g", b->shrink,
                  opt.shrink_min);
    ck_assert_int_eq(sl_score_estimate(&sl_score_kde, &opt, n, d, X, n, NULL, &c), SL_OK);
    ck_assert(isnan(c->shrink));
    fprintf(stderr, "auto shrink on student d = 5: %g (h %.3g); with floor %g: %g (h %.3g)\n",
            a->shrink, a->bandwidth, opt.shrink_min, b->shrink, b->bandwidth);
    sl_scores_free(a);
    sl_scores_free(b);
    sl_scores_free(c);
    free(X);
    sl_dist_free(D);
}
END_TEST

START_TEST(bandwidth_parsing) {
    sl_bandwidth b;
    ck_assert_int_eq(sl_bandwidth_parse("auto", &b), SL_OK);
    ck_assert_int_eq(b.kind, SL_BW_AUTO);
    ck_assert_int_eq(sl_bandwidth_parse("0.8", &b), SL_OK);
    ck_assert(b.kind == SL_BW_FIXED && b.value == 0.8);
    ck_assert_int_eq(sl_bandwidth_parse("knn:200", &b), SL_OK);
    ck_assert(b.kind == SL_BW_KNN && b.value == 200);
    ck_assert_int_eq(sl_bandwidth_parse("const:1.5", &b), SL_OK);
    ck_assert(b.kind == SL_BW_CONST && b.value == 1.5);
    const char *bad[] = {"", "-1", "0", "knn:1", "knn:x", "knn:-5", "abc", "nan", "inf", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        ck_assert_msg(sl_bandwidth_parse(bad[i], &b) == SL_EINVAL, "'%s' accepted", bad[i]);
        ck_assert(strlen(sl_last_error()) > 0);
    }
}
END_TEST

static Suite *score_suite(void) {
    Suite *s = suite_create("score");
    TCase *tc = tcase_create("score");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, kernel_estimators_match_transcription, 0,
                        (int)(sizeof transcription / sizeof transcription[0]));
    tcase_add_test(tc, baselines_closed_forms);
    tcase_add_loop_test(tc, degenerate_data_stays_finite, 0,
                        (int)(sizeof degenerate / sizeof degenerate[0]));
    tcase_add_test(tc, thread_count_does_not_matter);
    tcase_add_loop_test(tc, auto_bandwidth_near_best_fixed, 0,
                        (int)(sizeof auto_cases / sizeof auto_cases[0]));
    tcase_add_test(tc, auto_shrink_floor);
    tcase_add_test(tc, bandwidth_parsing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(score_suite());
}
