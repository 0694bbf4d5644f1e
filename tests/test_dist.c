/* Every built-in distribution (and the example plug-in) against the
 * mathematics: exact g and H against finite differences of the log-density,
 * and Stein's identities E[S_2] = 0, E[S_4(u,u,v,v)] = 0, E[x g'] = -I on
 * 10^6 samples within 5 Monte Carlo standard errors. Table-driven: a case
 * names its distribution, dimension, sample size and seed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scoreloss/dist.h"
#include "scoreloss/status.h"
#include "testutil.h"

typedef struct {
    const char *spec; /* "@gmm3" and "@plugin" are filled in at run time */
    size_t d;
    size_t n;
    unsigned long seed;
} dist_case;

static const dist_case cases[] = {
    {"gauss", 3, 1000000, 11},       {"gmm2", 3, 1000000, 12},     {"student", 3, 1000000, 13},
    {"student:3", 3, 1000000, 14},   {"logistic", 3, 1000000, 15}, {"@gmm3", 3, 1000000, 16},
    {"@gauss_file", 3, 1000000, 17}, {"@plugin", 3, 1000000, 18},
};
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

/* An anisotropic 3-component mixture with full covariances, d = 3. */
static const char *gmm3_file(void) {
    const char *p = sl_test_tmpfile("gmm3.csv");
    sl_test_write_text(p, "weight,m1,m2,m3,c1_1,c1_2,c1_3,c2_1,c2_2,c2_3,c3_1,c3_2,c3_3\n"
                          "0.5,1.5,0,-0.5,1.0,0.3,0.0,0.3,0.5,0.1,0.0,0.1,0.8\n"
                          "0.3,-1.0,1.0,0.5,0.4,-0.1,0.05,-0.1,1.2,0.0,0.05,0.0,0.3\n"
                          "0.2,0.0,-1.5,1.0,2.0,0.5,0.5,0.5,1.0,0.2,0.5,0.2,1.5\n");
    return p;
}

static const char *gauss_file(void) {
    const char *p = sl_test_tmpfile("gauss3.csv");
    sl_test_write_text(p, "weight,m1,m2,m3,c1_1,c1_2,c1_3,c2_1,c2_2,c2_3,c3_1,c3_2,c3_3\n"
                          "1,0.5,-1,2,2.0,0.6,-0.3,0.6,1.0,0.2,-0.3,0.2,0.5\n");
    return p;
}

/* The case's specification, or NULL when it cannot run here. */
static const char *resolve(const dist_case *c, char *buf, size_t len) {
    if (strcmp(c->spec, "@gmm3") == 0) {
        snprintf(buf, len, "gmm:%s", gmm3_file());
    } else if (strcmp(c->spec, "@gauss_file") == 0) {
        snprintf(buf, len, "gauss:%s", gauss_file());
    } else if (strcmp(c->spec, "@plugin") == 0) {
        const char *p = getenv("SL_PLUGIN_GUMBEL");
        if (!p) return NULL;
        snprintf(buf, len, "plugin:%s", p);
    } else {
        snprintf(buf, len, "%s", c->spec);
    }
    return buf;
}

static sl_dist *make(const dist_case *c) {
    char buf[600];
    const char *spec = resolve(c, buf, sizeof buf);
    ck_assert_msg(spec != NULL, "SL_PLUGIN_GUMBEL is not set (tests/meson.build sets it)");
    sl_dist *D = NULL;
    sl_status st = sl_dist_from_spec(spec, c->d, &D);
    ck_assert_msg(st == SL_OK, "%s: %s", spec, sl_last_error());
    return D;
}

/* g against central differences of log p, H against central differences of
 * g, at 20 sampled points. The step h = 1e-5 leaves a truncation error of
 * about h^2 |l'''| ~ 1e-10 and a rounding error of about eps |l| / h ~ 1e-10,
 * far below the 1e-6 asked for. */
START_TEST(derivatives_match_finite_differences) {
    const dist_case *c = &cases[_i];
    sl_dist *D = make(c);
    const size_t d = c->d, npts = 20;
    ck_assert(sl_dist_caps(D) & SL_DIST_LOGPDF);
    double *X = malloc(npts * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, c->seed, npts, X), SL_OK);
    double g[16], H[256], gp[16], gm[16], xp[16], lp, lm;
    const double h = 1e-5;
    for (size_t p = 0; p < npts; ++p) {
        const double *x = X + p * d;
        ck_assert_int_eq(sl_dist_grad_hess(D, 1, x, g, H), SL_OK);
        for (size_t i = 0; i < d; ++i) {
            memcpy(xp, x, d * sizeof *xp);
            xp[i] = x[i] + h;
            ck_assert_int_eq(sl_dist_log_density(D, 1, xp, &lp), SL_OK);
            ck_assert_int_eq(sl_dist_grad_hess(D, 1, xp, gp, NULL), SL_OK);
            xp[i] = x[i] - h;
            ck_assert_int_eq(sl_dist_log_density(D, 1, xp, &lm), SL_OK);
            ck_assert_int_eq(sl_dist_grad_hess(D, 1, xp, gm, NULL), SL_OK);
            double fd = (lp - lm) / (2 * h);
            ck_assert_msg(fabs(fd - g[i]) <= 1e-6 * fmax(1.0, fabs(g[i])),
                          "%s: g_%zu = %.12g, finite difference %.12g", c->spec, i + 1, g[i], fd);
            for (size_t j = 0; j < d; ++j) {
                double fdh = (gp[j] - gm[j]) / (2 * h);
                ck_assert_msg(fabs(fdh - H[j * d + i]) <= 1e-6 * fmax(1.0, fabs(H[j * d + i])),
                              "%s: H_%zu%zu = %.12g, finite difference %.12g", c->spec, j + 1,
                              i + 1, H[j * d + i], fdh);
            }
        }
        /* S_1 and S_2 from sl_dist_scores agree with g and H. */
        double S1[16], S2[256];
        ck_assert_int_eq(sl_dist_scores(D, x, 0, NULL, S1, S2, NULL, NULL), SL_OK);
        for (size_t i = 0; i < d; ++i) {
            ck_assert_double_eq_tol(S1[i], -g[i], 1e-12 * fmax(1.0, fabs(g[i])));
            for (size_t j = 0; j < d; ++j)
                ck_assert_double_eq_tol(S2[i * d + j], g[i] * g[j] + H[i * d + j],
                                        1e-10 * fmax(1.0, fabs(S2[i * d + j])));
        }
    }
    free(X);
    sl_dist_free(D);
}
END_TEST

/* Running sums for a mean and its standard error. */
typedef struct {
    double s, s2;
} moment;

static void add(moment *m, double v) {
    m->s += v;
    m->s2 += v * v;
}

static void assert_zero_mean(const moment *m, double n, double target, const char *spec,
                             const char *what) {
    double mean = m->s / n;
    double var = m->s2 / n - mean * mean;
    double se = sqrt(fmax(var, 0.0) / n);
    ck_assert_msg(fabs(mean - target) <= 5.0 * se + 1e-12,
                  "%s: %s = %.6g, expected %g within 5 standard errors (se %.3g)", spec, what, mean,
                  target, se);
}

START_TEST(stein_identities_hold) {
    const dist_case *c = &cases[_i];
    sl_dist *D = make(c);
    const size_t d = c->d, n = c->n;
    ck_assert(sl_dist_caps(D) & SL_DIST_SMOOTH);
    ck_assert(sl_dist_caps(D) & SL_DIST_SCORE4);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_int_eq(sl_dist_sample(D, c->seed, n, X), SL_OK);
    /* Directions for S_4(u,u,v,v): (e1, e2), (e1, e1), and two generic unit vectors. */
    const double s3 = 1.0 / sqrt(3.0), s2 = 1.0 / sqrt(2.0);
    double V[3][3 * 2] = {
        {1, 0, 0, 1, 0, 0},
        {1, 1, 0, 0, 0, 0},
        {s3, s2, s3, -s2, s3, 0},
    };
    moment mS2[9] = {{0}}, mS4[3] = {{0}}, mXG[9] = {{0}};
    double S2[9], S4[16], g[3];
    /* Checked once after the loop: a check assertion per sample costs more
     * than the arithmetic. */
    int failures = 0;
    for (size_t p = 0; p < n; ++p) {
        const double *x = X + p * d;
        failures += sl_dist_scores(D, x, 0, NULL, NULL, S2, NULL, NULL) != SL_OK;
        failures += sl_dist_grad_hess(D, 1, x, g, NULL) != SL_OK;
        for (size_t i = 0; i < 9; ++i) add(&mS2[i], S2[i]);
        for (size_t i = 0; i < d; ++i)
            for (size_t j = 0; j < d; ++j) add(&mXG[i * d + j], x[i] * g[j]);
        for (int v = 0; v < 3; ++v) {
            failures += sl_dist_scores(D, x, 2, V[v], NULL, NULL, NULL, S4) != SL_OK;
            add(&mS4[v], S4[0 * 8 + 0 * 4 + 1 * 2 + 1]); /* S4[0,0,1,1] */
        }
    }
    ck_assert_msg(failures == 0, "%s: %d score evaluations failed (last: %s)", c->spec, failures,
                  sl_last_error());
    char what[64];
    for (size_t i = 0; i < d; ++i)
        for (size_t j = 0; j < d; ++j) {
            snprintf(what, sizeof what, "E[S_2]_%zu%zu", i + 1, j + 1);
            assert_zero_mean(&mS2[i * d + j], (double)n, 0.0, c->spec, what);
            snprintf(what, sizeof what, "E[x g']_%zu%zu", i + 1, j + 1);
            assert_zero_mean(&mXG[i * d + j], (double)n, i == j ? -1.0 : 0.0, c->spec, what);
        }
    for (int v = 0; v < 3; ++v) {
        snprintf(what, sizeof what, "E[S_4(u,u,v,v)] for direction pair %d", v);
        assert_zero_mean(&mS4[v], (double)n, 0.0, c->spec, what);
    }
    free(X);
    sl_dist_free(D);
}
END_TEST

/* Sampling is a function of the seed alone: the same seed gives the same
 * bits, another seed other bits, whatever the thread count (the test binary
 * runs with OMP_NUM_THREADS=2; the CLI tests compare 1 and 2 threads). */
START_TEST(sampling_is_seeded) {
    const dist_case *c = &cases[_i];
    sl_dist *D = make(c);
    const size_t n = 10000, d = c->d; /* spans several blocks of SL_RNG_BLOCK rows */
    double *A = malloc(n * d * sizeof *A), *B = malloc(n * d * sizeof *B),
           *C = malloc(n * d * sizeof *C);
    ck_assert_int_eq(sl_dist_sample(D, 5, n, A), SL_OK);
    ck_assert_int_eq(sl_dist_sample(D, 5, n, B), SL_OK);
    ck_assert_int_eq(sl_dist_sample(D, 6, n, C), SL_OK);
    ck_assert(memcmp(A, B, n * d * sizeof *A) == 0);
    size_t same = 0;
    for (size_t i = 0; i < n * d; ++i) same += A[i] == C[i];
    ck_assert_uint_lt(same, n * d / 100);
    /* The first rows do not depend on how many are drawn. */
    ck_assert_int_eq(sl_dist_sample(D, 5, 7, C), SL_OK);
    ck_assert(memcmp(A, C, 7 * d * sizeof *A) == 0);
    free(A);
    free(B);
    free(C);
    sl_dist_free(D);
}
END_TEST

typedef struct {
    const char *spec;
    sl_status status;
    const char *needs;
} bad_spec;

static const bad_spec bad_specs[] = {
    {"", SL_EINVAL, "empty distribution"},
    {"normal", SL_EINVAL, "unknown distribution 'normal'"},
    {"student:-1", SL_EINVAL, "positive number"},
    {"student:abc", SL_EINVAL, "positive number, got 'abc'"},
    {"gmm", SL_EINVAL, "needs a parameter file"},
    {"gmm2:3", SL_EINVAL, "takes no argument"},
    {"laplace:1", SL_EINVAL, "takes no argument"},
    {"plugin:", SL_EINVAL, "plugin:PATH.so"},
    {"gauss:/nonexistent/params.csv", SL_EIO, "/nonexistent/params.csv"},
    {"plugin:/nonexistent/x.so", SL_EIO, "/nonexistent/x.so"},
};

START_TEST(bad_specifications) {
    const bad_spec *b = &bad_specs[_i];
    sl_dist *D = (sl_dist *)1;
    sl_status st = sl_dist_from_spec(b->spec, 3, &D);
    ck_assert_msg(st == b->status, "'%s': status %d, expected %d (%s)", b->spec, st, b->status,
                  sl_last_error());
    ck_assert_ptr_null(D);
    ck_assert_msg(strstr(sl_last_error(), b->needs) != NULL, "'%s': message '%s' lacks '%s'",
                  b->spec, sl_last_error(), b->needs);
}
END_TEST

/* The algebra of METHOD.md section 2: for N(0, I), g = -x and H = -I, and S_4
 * is the fourth Hermite tensor; its (u,u,v,v) contraction for orthonormal
 * u, v is (u.x)^2 (v.x)^2 - (u.x)^2 - (v.x)^2 + 1. */
START_TEST(hermite_special_case) {
    double x[2] = {0.7, -1.3};
    double g[2] = {-0.7, 1.3}, H[4] = {-1, 0, 0, -1};
    double S4[16], S2[4];
    sl_scores_from_logderivs(2, g, H, NULL, NULL, NULL, S2, NULL, S4);
    double a = x[0], b = x[1];
    ck_assert_double_eq_tol(S4[0 * 8 + 0 * 4 + 1 * 2 + 1], a * a * b * b - a * a - b * b + 1,
                            1e-14);
    ck_assert_double_eq_tol(S4[0], a * a * a * a - 6 * a * a + 3, 1e-14);
    ck_assert_double_eq_tol(S2[0], a * a - 1, 1e-15);
    ck_assert_double_eq_tol(S2[1], a * b, 1e-15);
}
END_TEST

static Suite *dist_suite(void) {
    Suite *s = suite_create("dist");
    TCase *tc = tcase_create("dist");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, derivatives_match_finite_differences, 0, NCASES);
    tcase_add_loop_test(tc, stein_identities_hold, 0, NCASES);
    tcase_add_loop_test(tc, sampling_is_seeded, 0, NCASES);
    tcase_add_loop_test(tc, bad_specifications, 0, (int)(sizeof bad_specs / sizeof bad_specs[0]));
    tcase_add_test(tc, hermite_special_case);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(dist_suite());
}
