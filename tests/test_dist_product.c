/* Product densities (logistic, Laplace), plug-ins and user callbacks.
 *
 * Derivatives are checked against Richardson-extrapolated central
 * differences (error O(h^4) plus rounding ~1e-13 at h = 1e-3), the higher
 * scores through the recursions
 *   S3_abc  = -(d_c S2_ab + S2_ab g_c),
 *   S4_abce = -(d_e S3_abc + S3_abc g_e),
 * which follow from S_m = (-1)^m grad^m p / p. Monte Carlo checks use fixed
 * seeds and 5 standard errors computed from the known variances. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_math.h>
#include <gsl/gsl_randist.h>

#include "scoreloss/dist.h"
#include "scoreloss/rng.h"
#include "testutil.h"

#define EULER_GAMMA 0.57721566490153286061

static double max_abs(size_t n, const double *a) {
    double m = 0.0;
    for (size_t i = 0; i < n; ++i) m = fmax(m, fabs(a[i]));
    return m;
}

/* max |approx - exact| / max |exact|: relative to the tensor's size, so an
 * entry that is exactly zero does not make the ratio meaningless. */
static double rel_err(size_t n, const double *approx, const double *exact) {
    double e = 0.0;
    for (size_t i = 0; i < n; ++i) e = fmax(e, fabs(approx[i] - exact[i]));
    const double s = max_abs(n, exact);
    return s > 0 ? e / s : e;
}

static sl_dist *make(const char *spec, size_t d) {
    sl_dist *D = NULL;
    sl_status st = sl_dist_from_spec(spec, d, &D);
    ck_assert_msg(st == SL_OK, "%s: %s", spec, sl_last_error());
    return D;
}

static double logp_at(const sl_dist *D, const double *x) {
    double l;
    ck_assert_int_eq(sl_dist_log_density(D, 1, x, &l), SL_OK);
    return l;
}

/* l at x + s e_i + t e_j. */
static double logp_shift(const sl_dist *D, const double *x, size_t i, double s, size_t j,
                         double t) {
    double y[16];
    const size_t d = sl_dist_dim(D);
    memcpy(y, x, d * sizeof *y);
    y[i] += s;
    y[j] += t;
    return logp_at(D, y);
}

static double fd_first(const sl_dist *D, const double *x, size_t i, double h) {
    return (logp_shift(D, x, i, h, i, 0) - logp_shift(D, x, i, -h, i, 0)) / (2 * h);
}

static double fd_second(const sl_dist *D, const double *x, size_t i, size_t j, double h) {
    if (i == j)
        return (logp_shift(D, x, i, h, i, 0) - 2 * logp_at(D, x) + logp_shift(D, x, i, -h, i, 0)) /
               (h * h);
    return (logp_shift(D, x, i, h, j, h) - logp_shift(D, x, i, h, j, -h) -
            logp_shift(D, x, i, -h, j, h) + logp_shift(D, x, i, -h, j, -h)) /
           (4 * h * h);
}

/* Gradient and Hessian of the log-density by differences, Richardson
 * extrapolated: (4 D(h/2) - D(h)) / 3 cancels the h^2 term. */
static void fd_grad_hess(const sl_dist *D, const double *x, double h, double *g, double *H) {
    const size_t d = sl_dist_dim(D);
    for (size_t i = 0; i < d; ++i) {
        g[i] = (4 * fd_first(D, x, i, h / 2) - fd_first(D, x, i, h)) / 3;
        for (size_t j = 0; j < d; ++j)
            H[i * d + j] = (4 * fd_second(D, x, i, j, h / 2) - fd_second(D, x, i, j, h)) / 3;
    }
}

/* The full (V = identity) score tensor of the given order at x. */
static void full_scores(const sl_dist *D, const double *x, double *S1, double *S2, double *S3,
                        double *S4) {
    sl_status st = sl_dist_scores(D, x, 0, NULL, S1, S2, S3, S4);
    ck_assert_msg(st == SL_OK, "%s", sl_last_error());
}

/* d_c of the order-k score (k = 2 or 3) by central differences, Richardson
 * extrapolated as above, into dS[(tensor index) * d + c]. */
static void fd_score_derivative(const sl_dist *D, const double *x, int k, double h, double *dS) {
    const size_t d = sl_dist_dim(D), n = k == 2 ? d * d : d * d * d;
    double y[16], *plus = malloc(n * sizeof *plus), *minus = malloc(n * sizeof *minus);
    for (size_t c = 0; c < d; ++c) {
        for (size_t t = 0; t < n; ++t) dS[t * d + c] = 0.0;
        const double steps[2] = {h, h / 2}, weights[2] = {-1.0 / 3, 4.0 / 3};
        for (int r = 0; r < 2; ++r) {
            memcpy(y, x, d * sizeof *y);
            y[c] += steps[r];
            full_scores(D, y, NULL, k == 2 ? plus : NULL, k == 3 ? plus : NULL, NULL);
            y[c] -= 2 * steps[r];
            full_scores(D, y, NULL, k == 2 ? minus : NULL, k == 3 ? minus : NULL, NULL);
            for (size_t t = 0; t < n; ++t)
                dS[t * d + c] += weights[r] * (plus[t] - minus[t]) / (2 * steps[r]);
        }
    }
    free(plus);
    free(minus);
}

/* g, H against differences of log p; S3 and S4 against differences of S2
 * and S3; all to relative error tol. */
static void check_derivatives(const sl_dist *D, const double *x, double tol) {
    const size_t d = sl_dist_dim(D), d2 = d * d, d3 = d2 * d, d4 = d3 * d;
    double g[16], H[256], gfd[16], Hfd[256];
    double *S1 = malloc(d * sizeof *S1), *S2 = malloc(d2 * sizeof *S2);
    double *S3 = malloc(d3 * sizeof *S3), *S4 = malloc(d4 * sizeof *S4);
    double *dS2 = malloc(d3 * sizeof *dS2), *dS3 = malloc(d4 * sizeof *dS3);
    /* calloc: -O2 cannot see that the loops below fill all d^3 and d^4 entries. */
    double *S3fd = calloc(d3, sizeof *S3fd), *S4fd = calloc(d4, sizeof *S4fd);

    ck_assert_int_eq(sl_dist_grad_hess(D, 1, x, g, H), SL_OK);
    fd_grad_hess(D, x, 1e-3, gfd, Hfd);
    ck_assert_msg(rel_err(d, gfd, g) < tol, "%s: gradient rel. error %g", sl_dist_name(D),
                  rel_err(d, gfd, g));
    ck_assert_msg(rel_err(d2, Hfd, H) < tol, "%s: Hessian rel. error %g", sl_dist_name(D),
                  rel_err(d2, Hfd, H));

    full_scores(D, x, S1, S2, S3, S4);
    for (size_t i = 0; i < d; ++i) ck_assert_double_eq(S1[i], -g[i]);
    fd_score_derivative(D, x, 2, 1e-3, dS2);
    for (size_t ab = 0; ab < d2; ++ab)
        for (size_t c = 0; c < d; ++c) S3fd[ab * d + c] = -(dS2[ab * d + c] + S2[ab] * g[c]);
    ck_assert_msg(rel_err(d3, S3fd, S3) < tol, "%s: S3 rel. error %g", sl_dist_name(D),
                  rel_err(d3, S3fd, S3));
    fd_score_derivative(D, x, 3, 1e-3, dS3);
    for (size_t abc = 0; abc < d3; ++abc)
        for (size_t e = 0; e < d; ++e) S4fd[abc * d + e] = -(dS3[abc * d + e] + S3[abc] * g[e]);
    ck_assert_msg(rel_err(d4, S4fd, S4) < tol, "%s: S4 rel. error %g", sl_dist_name(D),
                  rel_err(d4, S4fd, S4));

    free(S1);
    free(S2);
    free(S3);
    free(S4);
    free(dS2);
    free(dS3);
    free(S3fd);
    free(S4fd);
}

/* Projected scores on V (d x m) against the full tensors contracted with V. */
static void check_projection(const sl_dist *D, const double *x, size_t m, const double *V) {
    const size_t d = sl_dist_dim(D), d2 = d * d, d3 = d2 * d, m2 = m * m, m3 = m2 * m;
    double *F = malloc((d + d2 + d3 + d3 * d) * sizeof *F);
    double *P = malloc((m + m2 + m3 + m3 * m) * sizeof *P);
    double *C = calloc(m + m2 + m3 + m3 * m, sizeof *C);
    double *F1 = F, *F2 = F1 + d, *F3 = F2 + d2, *F4 = F3 + d3;
    double *P1 = P, *P2 = P1 + m, *P3 = P2 + m2, *P4 = P3 + m3;
    double *C1 = C, *C2 = C1 + m, *C3 = C2 + m2, *C4 = C3 + m3;
    full_scores(D, x, F1, F2, F3, F4);
    ck_assert_int_eq(sl_dist_scores(D, x, m, V, P1, P2, P3, P4), SL_OK);
#define v(i, a) V[(i)*m + (a)]
    for (size_t a = 0; a < m; ++a)
        for (size_t i = 0; i < d; ++i) {
            C1[a] += F1[i] * v(i, a);
            for (size_t b = 0; b < m; ++b)
                for (size_t j = 0; j < d; ++j) {
                    C2[a * m + b] += F2[i * d + j] * v(i, a) * v(j, b);
                    for (size_t c = 0; c < m; ++c)
                        for (size_t k = 0; k < d; ++k) {
                            const double w3 = v(i, a) * v(j, b) * v(k, c);
                            C3[a * m2 + b * m + c] += F3[i * d2 + j * d + k] * w3;
                            for (size_t e = 0; e < m; ++e)
                                for (size_t l = 0; l < d; ++l)
                                    C4[a * m3 + b * m2 + c * m + e] +=
                                        F4[i * d3 + j * d2 + k * d + l] * w3 * v(l, e);
                        }
                }
        }
#undef v
    ck_assert_msg(rel_err(m, P1, C1) < 1e-12, "S1 projection %g", rel_err(m, P1, C1));
    ck_assert_msg(rel_err(m2, P2, C2) < 1e-12, "S2 projection %g", rel_err(m2, P2, C2));
    ck_assert_msg(rel_err(m3, P3, C3) < 1e-12, "S3 projection %g", rel_err(m3, P3, C3));
    ck_assert_msg(rel_err(m3 * m, P4, C4) < 1e-12, "S4 projection %g", rel_err(m3 * m, P4, C4));
    free(F);
    free(P);
    free(C);
}

/* Per-coordinate sample mean and variance against the truth, 5 SE each;
 * the variance's SE is sqrt((mu4 - sigma^4) / n) with mu4 = kurt sigma^4. */
static void check_moments(const char *spec, size_t d, size_t n, uint64_t seed, double mean,
                          double var, double kurtosis) {
    sl_dist *D = make(spec, d);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, seed, n, X), SL_OK);
    const double se_mean = sqrt(var / n), se_var = sqrt((kurtosis - 1) * var * var / n);
    for (size_t i = 0; i < d; ++i) {
        double s = 0, s2 = 0;
        for (size_t j = 0; j < n; ++j) s += X[j * d + i];
        const double mu = s / n;
        for (size_t j = 0; j < n; ++j) s2 += (X[j * d + i] - mu) * (X[j * d + i] - mu);
        const double v = s2 / (n - 1);
        ck_assert_msg(fabs(mu - mean) < 5 * se_mean, "%s coord %zu: mean %g, expected %g (SE %g)",
                      spec, i, mu, mean, se_mean);
        ck_assert_msg(fabs(v - var) < 5 * se_var, "%s coord %zu: variance %g, expected %g (SE %g)",
                      spec, i, v, var, se_var);
    }
    free(X);
    sl_dist_free(D);
}

/* Random points from N(0, sd^2 I), one per row. */
static void random_points(uint64_t seed, size_t n, size_t d, double sd, double *X) {
    gsl_rng *r = sl_rng_alloc(seed, 0);
    for (size_t j = 0; j < n * d; ++j) X[j] = gsl_ran_gaussian(r, sd);
    gsl_rng_free(r);
}

/* ---- logistic ------------------------------------------------------------ */

START_TEST(logistic_moments) {
    /* variance pi^2/3, kurtosis 3 + 6/5 */
    check_moments("logistic", 3, 100000, 11, 0.0, M_PI * M_PI / 3, 4.2);
}
END_TEST

START_TEST(logistic_caps_and_density) {
    sl_dist *D = make("logistic", 3);
    ck_assert_str_eq(sl_dist_name(D), "logistic");
    const unsigned want = SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD | SL_DIST_HESS |
                          SL_DIST_SCORE3 | SL_DIST_SCORE4 | SL_DIST_SMOOTH;
    ck_assert_uint_eq(sl_dist_caps(D), want);
    /* q(0) = 1/4 per coordinate; q(x) = e^{-x}/(1+e^{-x})^2 at x = 1.5 */
    const double x0[3] = {0, 0, 1.5};
    const double expect = 2 * log(0.25) + (-1.5 - 2 * log1p(exp(-1.5)));
    ck_assert_double_eq_tol(logp_at(D, x0), expect, 1e-14);
    sl_dist_free(D);
}
END_TEST

START_TEST(logistic_derivatives_fd) {
    sl_dist *D = make("logistic", 3);
    double X[5 * 3];
    random_points(21, 5, 3, 2.0, X);
    for (size_t j = 0; j < 5; ++j) check_derivatives(D, X + j * 3, 1e-6);
    sl_dist_free(D);
}
END_TEST

START_TEST(logistic_projection) {
    sl_dist *D = make("logistic", 3);
    double X[4 * 3], V[3 * 2];
    random_points(31, 4, 3, 2.0, X);
    random_points(32, 1, 6, 1.0, V);
    V[3] = 0.0; /* a zero entry: the projection skips it */
    for (size_t j = 0; j < 4; ++j) check_projection(D, X + j * 3, 2, V);
    /* m = 4 > d: columns need not be independent */
    double W[3 * 4];
    random_points(33, 1, 12, 1.0, W);
    check_projection(D, X, 4, W);
    sl_dist_free(D);

    /* d = m = 8: the workspace no longer fits the stack buffer */
    D = make("logistic", 8);
    double x8[8], V8[8 * 2];
    random_points(34, 1, 8, 2.0, x8);
    random_points(35, 1, 16, 1.0, V8);
    check_projection(D, x8, 2, V8);
    double I8[64] = {0};
    for (size_t i = 0; i < 8; ++i) I8[i * 8 + i] = 1.0;
    double *S4a = malloc(4096 * sizeof *S4a), *S4b = malloc(4096 * sizeof *S4b);
    ck_assert_int_eq(sl_dist_scores(D, x8, 0, NULL, NULL, NULL, NULL, S4a), SL_OK);
    ck_assert_int_eq(sl_dist_scores(D, x8, 8, I8, NULL, NULL, NULL, S4b), SL_OK);
    ck_assert_double_eq_tol(rel_err(4096, S4b, S4a), 0.0, 1e-15);
    free(S4a);
    free(S4b);
    sl_dist_free(D);
}
END_TEST

START_TEST(logistic_tails_finite) {
    sl_dist *D = make("logistic", 3);
    const double x[3] = {700.0, -700.0, 1e5};
    double g[3], H[9], S1[3], S2[9], S3[27], S4[81];
    const double l = logp_at(D, x);
    ck_assert_double_eq_tol(l, -(700.0 + 700.0 + 1e5), 1e-9);
    ck_assert_int_eq(sl_dist_grad_hess(D, 1, x, g, H), SL_OK);
    ck_assert_double_eq_tol(g[0], -1.0, 1e-15);
    ck_assert_double_eq_tol(g[1], 1.0, 1e-15);
    ck_assert_double_eq_tol(g[2], -1.0, 1e-15);
    for (size_t i = 0; i < 9; ++i) ck_assert(isfinite(H[i]));
    /* phi'' = -2 e^{-700} (1 + O(e^{-700})): tiny but represented, not NaN */
    ck_assert_double_eq_tol(H[0] / (-2 * exp(-700.0)), 1.0, 1e-12);
    full_scores(D, x, S1, S2, S3, S4);
    for (size_t i = 0; i < 81; ++i) ck_assert(isfinite(S4[i]));
    for (size_t i = 0; i < 27; ++i) ck_assert(isfinite(S3[i]));
    /* far in the tails g -> -sign(x) and the rest vanishes: S4 -> g^4 */
    for (size_t i = 0; i < 81; ++i) {
        const double want = g[i / 27] * g[(i / 9) % 3] * g[(i / 3) % 3] * g[i % 3];
        ck_assert_double_eq_tol(S4[i], want, 1e-12);
    }
    sl_dist_free(D);
}
END_TEST

/* ---- Laplace ------------------------------------------------------------ */

START_TEST(laplace_moments) {
    /* variance 2, kurtosis 6 */
    check_moments("laplace", 3, 100000, 12, 0.0, 2.0, 6.0);
}
END_TEST

START_TEST(laplace_caps_and_scores) {
    sl_dist *D = make("laplace", 2);
    /* a.e. S1..S4 but not smooth: the kink at 0 */
    const unsigned want = SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD | SL_DIST_HESS |
                          SL_DIST_SCORE3 | SL_DIST_SCORE4;
    ck_assert_uint_eq(sl_dist_caps(D), want);
    const double x[2] = {0.7, -2.5};
    ck_assert_double_eq_tol(logp_at(D, x), -3.2 - 2 * M_LN2, 1e-14);
    double S1[2], S2[4], S3[8], S4[16];
    full_scores(D, x, S1, S2, S3, S4);
    const double g[2] = {-1.0, 1.0};
    for (size_t i = 0; i < 16; ++i) {
        const size_t a = i / 8, b = (i / 4) % 2, c = (i / 2) % 2, e = i % 2;
        ck_assert_double_eq(S4[i], g[a] * g[b] * g[c] * g[e]);
        if (i < 8) ck_assert_double_eq(S3[i], -g[i / 4] * g[(i / 2) % 2] * g[i % 2]);
    }
    for (size_t i = 0; i < 4; ++i) ck_assert_double_eq(S2[i], g[i / 2] * g[i % 2]);
    sl_dist_free(D);
}
END_TEST

/* Stein's identities that need only g hold: E[g] = 0 and E[x g'] = -I
 * (first order, no derivative of g involved), and the off-diagonal of
 * E[S_2] = E[g_i g_j] is 0. The diagonal does not: phi'' = -2 delta(x_i) in
 * the sense of distributions, so the true S_2,ii = g_i^2 - 2 delta(x_i) has
 * mean 1 - 2 q(0) = 0, while the a.e. S_2,ii = g_i^2 is 1 at every sample.
 * The density at the kink, which weighs the missing term, is checked through
 * P(|x_i| < h), whose expectation (1 - e^{-h}) is known exactly. */
START_TEST(laplace_stein_and_delta_term) {
    const size_t d = 3, n = 1000000;
    sl_dist *D = make("laplace", d);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, 13, n, X), SL_OK);
    const double I[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
    const double h = 0.05;
    double sum_g[3] = {0}, sum_xg[9] = {0}, sum_S2[9] = {0}, near0[3] = {0};
    /* Counted, asserted after the loop: a passing ck_assert costs a write. */
    size_t failed_calls = 0, diag_not_one = 0;
    for (size_t j = 0; j < n; ++j) {
        const double *x = X + j * d;
        double S1[3], S2[9];
        failed_calls += sl_dist_scores(D, x, d, I, S1, S2, NULL, NULL) != SL_OK;
        for (size_t a = 0; a < d; ++a) {
            sum_g[a] += -S1[a];
            near0[a] += fabs(x[a]) < h;
            for (size_t b = 0; b < d; ++b) {
                sum_xg[a * d + b] += x[a] * -S1[b];
                sum_S2[a * d + b] += S2[a * d + b];
            }
            diag_not_one += S2[a * d + a] != 1.0; /* g_a^2 = 1 off the axes */
        }
    }
    ck_assert_uint_eq(failed_calls, 0);
    ck_assert_uint_eq(diag_not_one, 0);
    const double se_g = 1 / sqrt((double)n); /* var g_i = 1 */
    for (size_t a = 0; a < d; ++a) {
        ck_assert_msg(fabs(sum_g[a] / n) < 5 * se_g, "E[g_%zu] = %g", a, sum_g[a] / n);
        for (size_t b = 0; b < d; ++b) {
            const double m = sum_xg[a * d + b] / n;
            /* x_a g_b: var 1 on the diagonal (-|x|), E[x^2] = 2 off it */
            const double se = sqrt((a == b ? 1.0 : 2.0) / n);
            const double want = a == b ? -1.0 : 0.0;
            ck_assert_msg(fabs(m - want) < 5 * se, "E[x g']_%zu%zu = %g", a, b, m);
            const double s2 = sum_S2[a * d + b] / n;
            if (a == b)
                ck_assert_double_eq(s2, 1.0); /* not the true 0: the delta term is missing */
            else
                ck_assert_msg(fabs(s2) < 5 * se_g, "E[S2]_%zu%zu = %g", a, b, s2);
        }
        /* P(|x| < h) / (2h) = (1 - e^{-h}) / (2h) -> q(0) = 1/2; binomial SE */
        const double p = 1 - exp(-h), qhat = near0[a] / n / (2 * h);
        const double se_q = sqrt(p * (1 - p) / n) / (2 * h);
        ck_assert_msg(fabs(qhat - p / (2 * h)) < 5 * se_q, "q(0) estimate %g", qhat);
    }
    free(X);
    sl_dist_free(D);
}
END_TEST

/* ---- the plug-in --------------------------------------------------------- */

static const char *gumbel_path(void) {
    const char *p = getenv("SL_PLUGIN_GUMBEL");
    ck_assert_msg(p && *p, "SL_PLUGIN_GUMBEL is not set (tests/meson.build sets it)");
    return p;
}

static sl_dist *gumbel(const char *args, size_t d) {
    char spec[1024];
    snprintf(spec, sizeof spec, "plugin:%s%s%s", gumbel_path(), args ? ":" : "", args ? args : "");
    return make(spec, d);
}

static int plugin_is_loaded(void) {
    void *h = dlopen(gumbel_path(), RTLD_NOW | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}

START_TEST(plugin_gumbel_mean) {
    const size_t d = 3, n = 100000;
    const double scale = 2.0;
    sl_dist *D = gumbel("scale=2", d);
    ck_assert_str_eq(sl_dist_name(D), "gumbel(scale=2)");
    ck_assert_uint_eq(sl_dist_caps(D), SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD |
                                           SL_DIST_HESS | SL_DIST_SCORE3 | SL_DIST_SCORE4 |
                                           SL_DIST_SMOOTH);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, 14, n, X), SL_OK);
    const double se = scale * M_PI / sqrt(6.0) / sqrt((double)n); /* sd pi S / sqrt 6 */
    for (size_t i = 0; i < d; ++i) {
        double s = 0;
        for (size_t j = 0; j < n; ++j) s += X[j * d + i];
        ck_assert_msg(fabs(s / n - EULER_GAMMA * scale) < 5 * se, "gumbel mean %g, expected %g",
                      s / n, EULER_GAMMA * scale);
    }
    free(X);
    sl_dist_free(D);

    /* no ARGS: scale 1 */
    D = gumbel(NULL, 1);
    double x[1] = {0.0};
    ck_assert_double_eq_tol(logp_at(D, x), -1.0, 1e-15); /* -0 - e^0 - log 1 */
    sl_dist_free(D);
}
END_TEST

START_TEST(plugin_gumbel_derivatives_fd) {
    sl_dist *D = gumbel("scale=2", 3);
    double X[4 * 3];
    ck_assert_int_eq(sl_dist_sample(D, 15, 4, X), SL_OK);
    for (size_t j = 0; j < 4; ++j) check_derivatives(D, X + j * 3, 1e-6);
    double V[3 * 2];
    random_points(36, 1, 6, 1.0, V);
    check_projection(D, X, 2, V);
    sl_dist_free(D);
}
END_TEST

START_TEST(plugin_lifecycle) {
    /* the object stays loaded while any distribution from it lives */
    sl_dist *A = gumbel("scale=1", 2), *B = gumbel("scale=3", 2);
    ck_assert(plugin_is_loaded());
    sl_dist_free(A);
    ck_assert(plugin_is_loaded());
    double X[10 * 2];
    ck_assert_int_eq(sl_dist_sample(B, 16, 10, X), SL_OK);
    sl_dist_free(B);
    ck_assert_msg(!plugin_is_loaded(), "plug-in still loaded after its last distribution");
}
END_TEST

START_TEST(plugin_bad_args) {
    const char *path = gumbel_path();
    sl_dist *D = NULL;
    char spec[1024];
    snprintf(spec, sizeof spec, "plugin:%s:scale=-1", path);
    ck_assert_int_eq(sl_dist_from_spec(spec, 2, &D), SL_EINVAL);
    ck_assert_ptr_null(D);
    ck_assert_msg(strstr(sl_last_error(), path) &&
                      strstr(sl_last_error(), "scale must be a positive number"),
                  "message: %s", sl_last_error());
    snprintf(spec, sizeof spec, "plugin:%s:shape=2", path);
    ck_assert_int_eq(sl_dist_from_spec(spec, 2, &D), SL_EINVAL);
    ck_assert_msg(strstr(sl_last_error(), "unknown argument 'shape=2'"), "message: %s",
                  sl_last_error());
    ck_assert(!plugin_is_loaded()); /* a refused init unloads the object */

    /* ABI: the plug-in refuses a host with another SL_PLUGIN_ABI */
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(h != NULL, "%s", dlerror());
    void *sym = dlsym(h, SL_PLUGIN_SYMBOL);
    ck_assert_ptr_nonnull(sym);
    sl_plugin_init_fn init;
    memcpy(&init, &sym, sizeof init);
    sl_dist_callbacks cb;
    memset(&cb, 0, sizeof cb);
    char err[256] = "";
    ck_assert_int_ne(init(SL_PLUGIN_ABI + 1, "", 2, &cb, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "ABI"), "ABI message: %s", err);
    ck_assert_ptr_null(cb.data);
    dlclose(h);
}
END_TEST

START_TEST(plugin_load_errors) {
    sl_dist *D = NULL;
    const char *missing = "/nonexistent-dir/plugin_missing.so";
    ck_assert_int_eq(sl_dist_from_spec("plugin:/nonexistent-dir/plugin_missing.so", 2, &D), SL_EIO);
    ck_assert_ptr_null(D);
    ck_assert_msg(strstr(sl_last_error(), missing), "message: %s", sl_last_error());

    /* no '/': searched on the library path, and not found there */
    ck_assert_int_eq(sl_dist_from_spec("plugin:no_such_plugin_xyz.so", 2, &D), SL_EIO);
    ck_assert_msg(strstr(sl_last_error(), "no_such_plugin_xyz.so"), "message: %s", sl_last_error());

    /* a real library without the symbol, found on the library path */
    ck_assert_int_eq(sl_dist_from_spec("plugin:libm.so.6:x=1", 2, &D), SL_EINVAL);
    ck_assert_str_eq(sl_last_error(), "libm.so.6 does not export sl_plugin_init");

    /* a file that is not a shared object */
    const char *text = sl_test_tmpfile("not_a_library.so");
    sl_test_write_text(text, "hello\n");
    char spec[1024];
    snprintf(spec, sizeof spec, "plugin:%s", text);
    ck_assert_int_eq(sl_dist_from_spec(spec, 2, &D), SL_EIO);
    ck_assert_msg(strstr(sl_last_error(), text), "message: %s", sl_last_error());
    ck_assert_ptr_null(D);
}
END_TEST

/* ---- user callbacks ------------------------------------------------------ */

typedef struct {
    int destroyed;
} cb_counter;

static int failing_sample(void *data, size_t d, size_t n, gsl_rng *rng, double *X) {
    (void)data, (void)d, (void)n, (void)rng, (void)X;
    return 1;
}

static int normal_sample(void *data, size_t d, size_t n, gsl_rng *rng, double *X) {
    (void)data;
    for (size_t j = 0; j < n * d; ++j) X[j] = gsl_ran_gaussian(rng, 1.0);
    return 0;
}

static void count_destroy(void *data) {
    ((cb_counter *)data)->destroyed++;
}

START_TEST(callbacks_failure_and_sample_only) {
    cb_counter counter = {0};
    sl_dist_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.name = "broken";
    cb.sample = failing_sample;
    cb.destroy = count_destroy;
    cb.data = &counter;
    sl_dist *D = NULL;
    ck_assert_int_eq(sl_dist_from_callbacks(&cb, 2, &D), SL_OK);
    double X[4];
    ck_assert_int_eq(sl_dist_sample(D, 1, 2, X), SL_ECALLBACK);
    ck_assert_msg(strstr(sl_last_error(), "broken") && strstr(sl_last_error(), "sample"),
                  "message: %s", sl_last_error());
    sl_dist_free(D);
    ck_assert_int_eq(counter.destroyed, 1);

    cb.name = "only-samples";
    cb.sample = normal_sample;
    ck_assert_int_eq(sl_dist_from_callbacks(&cb, 2, &D), SL_OK);
    ck_assert_uint_eq(sl_dist_caps(D), SL_DIST_SAMPLE);
    ck_assert_int_eq(sl_dist_sample(D, 1, 2, X), SL_OK);
    const double x[2] = {0.1, 0.2};
    double S2[4], S4[16], g[2];
    ck_assert_int_eq(sl_dist_scores(D, x, 0, NULL, NULL, S2, NULL, NULL), SL_EUNSUPPORTED);
    ck_assert_msg(strstr(sl_last_error(), "only-samples") && strstr(sl_last_error(), "sample-only"),
                  "message: %s", sl_last_error());
    ck_assert_int_eq(sl_dist_scores(D, x, 0, NULL, NULL, NULL, NULL, S4), SL_EUNSUPPORTED);
    ck_assert_msg(strstr(sl_last_error(), "fourth-order"), "message: %s", sl_last_error());
    ck_assert_int_eq(sl_dist_grad_hess(D, 1, x, g, NULL), SL_EUNSUPPORTED);
    sl_dist_free(D);
    ck_assert_int_eq(counter.destroyed, 2);
}
END_TEST

static Suite *dist_product_suite(void) {
    Suite *s = suite_create("dist_product");
    TCase *t = tcase_create("logistic");
    tcase_add_test(t, logistic_moments);
    tcase_add_test(t, logistic_caps_and_density);
    tcase_add_test(t, logistic_derivatives_fd);
    tcase_add_test(t, logistic_projection);
    tcase_add_test(t, logistic_tails_finite);
    suite_add_tcase(s, t);
    t = tcase_create("laplace");
    tcase_add_test(t, laplace_moments);
    tcase_add_test(t, laplace_caps_and_scores);
    tcase_add_test(t, laplace_stein_and_delta_term);
    suite_add_tcase(s, t);
    t = tcase_create("plugin");
    tcase_add_test(t, plugin_gumbel_mean);
    tcase_add_test(t, plugin_gumbel_derivatives_fd);
    tcase_add_test(t, plugin_lifecycle);
    tcase_add_test(t, plugin_bad_args);
    tcase_add_test(t, plugin_load_errors);
    suite_add_tcase(s, t);
    t = tcase_create("callbacks");
    tcase_add_test(t, callbacks_failure_and_sample_only);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    return sl_test_run(dist_product_suite());
}
