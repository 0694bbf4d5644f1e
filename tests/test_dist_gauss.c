/* Gaussians, Gaussian mixtures and the Student t: sampling moments,
 * log-densities against independent formulas, exact scores against finite
 * differences, projections, and rejection of bad parameters; the built-in
 * agmm against the same mixture from a file; marginals z = U'x of the
 * Gaussian family against the component formulas. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "core/linalg.h"
#include "model/dist_internal.h"
#include "scoreloss/dist.h"
#include "scoreloss/rng.h"
#include "testutil.h"

#define NSAMPLE 100000
/* Monte Carlo checks allow 5 standard errors. */
#define NSE 5.0

/* ---- fixtures ---------------------------------------------------------------- */

/* One Gaussian in d = 3 with a non-diagonal covariance. */
static const double gauss_mean[3] = {1.0, -2.0, 0.5};
static const double gauss_cov[9] = {2.0, 0.6, -0.4, 0.6, 1.0, 0.3, -0.4, 0.3, 0.5};

/* Three anisotropic full-covariance components in d = 3; the weights are
 * unnormalised (5:3:2) so that normalisation is exercised. */
#define GMM_K 3
static const double gmm_weight[GMM_K] = {5.0, 3.0, 2.0};
static const double gmm_mean[GMM_K * 3] = {1.0, 0.0, -1.0, -1.0, 1.0, 0.5, 0.0, -1.5, 1.0};
static const double gmm_cov[GMM_K * 9] = {
    1.5, 0.4,   0.2,  0.4,   0.6, -0.1, 0.2,  -0.1, 0.3, /* */
    0.4, -0.15, 0.0,  -0.15, 1.2, 0.3,  0.0,  0.3,  0.8, /* */
    0.8, 0.0,   0.25, 0.0,   0.3, 0.05, 0.25, 0.05, 1.0, /* */
};

/* Writes a parameter file; skip_col (or -1) drops one column. */
static void write_params(const char *path, size_t K, size_t d, const double *w, const double *m,
                         const double *C, long skip_col) {
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    const size_t ncol = 1 + d + d * d;
    int first = 1;
    for (size_t k = 0; k < ncol; ++k) {
        if ((long)k == skip_col) continue;
        if (!first) fputc(',', f);
        first = 0;
        if (k == 0)
            fprintf(f, "weight");
        else if (k <= d)
            fprintf(f, "m%zu", k);
        else
            fprintf(f, "c%zu_%zu", (k - 1 - d) / d + 1, (k - 1 - d) % d + 1);
    }
    fputc('\n', f);
    for (size_t c = 0; c < K; ++c) {
        first = 1;
        for (size_t k = 0; k < ncol; ++k) {
            if ((long)k == skip_col) continue;
            double v = k == 0 ? w[c] : k <= d ? m[c * d + k - 1] : C[c * d * d + k - 1 - d];
            fprintf(f, first ? "%.17g" : ",%.17g", v);
            first = 0;
        }
        fputc('\n', f);
    }
    fclose(f);
}

static sl_dist *make_gauss3(void) {
    const char *path = sl_test_tmpfile("gauss3.csv");
    const double w = 1.0;
    write_params(path, 1, 3, &w, gauss_mean, gauss_cov, -1);
    sl_dist *D = NULL;
    sl_status st = sl_dist_gauss_alloc(3, path, &D);
    ck_assert_msg(st == SL_OK, "gauss from %s: %s", path, sl_last_error());
    return D;
}

static sl_dist *make_gmm3(void) {
    const char *path = sl_test_tmpfile("gmm3.csv");
    write_params(path, GMM_K, 3, gmm_weight, gmm_mean, gmm_cov, -1);
    char spec[600];
    snprintf(spec, sizeof spec, "gmm:%s", path);
    sl_dist *D = NULL;
    sl_status st = sl_dist_from_spec(spec, 3, &D);
    ck_assert_msg(st == SL_OK, "%s: %s", spec, sl_last_error());
    return D;
}

static sl_dist *make_student(size_t d, double nu) {
    sl_dist *D = NULL;
    sl_status st = sl_dist_student_alloc(d, nu, &D);
    ck_assert_msg(st == SL_OK, "student nu=%g: %s", nu, sl_last_error());
    return D;
}

/* log N(x; m, C) by GSL's own implementation: independent of the library. */
static double gsl_gauss_logpdf(size_t d, const double *x, const double *m, const double *C) {
    gsl_matrix *L = gsl_matrix_alloc(d, d);
    gsl_vector *xv = gsl_vector_alloc(d), *mv = gsl_vector_alloc(d), *work = gsl_vector_alloc(d);
    for (size_t i = 0; i < d; ++i) {
        gsl_vector_set(xv, i, x[i]);
        gsl_vector_set(mv, i, m[i]);
        for (size_t j = 0; j < d; ++j) gsl_matrix_set(L, i, j, C[i * d + j]);
    }
    ck_assert_int_eq(gsl_linalg_cholesky_decomp1(L), 0);
    double r;
    ck_assert_int_eq(gsl_ran_multivariate_gaussian_log_pdf(xv, mv, L, &r, work), 0);
    gsl_matrix_free(L);
    gsl_vector_free(xv);
    gsl_vector_free(mv);
    gsl_vector_free(work);
    return r;
}

#define ASSERT_CLOSE(got, want, tol, ...)                                                          \
    do {                                                                                           \
        const double got_ = (got), want_ = (want), tol_ = (tol);                                   \
        if (!(fabs(got_ - want_) <= tol_)) {                                                       \
            char where_[256];                                                                      \
            snprintf(where_, sizeof where_, __VA_ARGS__);                                          \
            ck_abort_msg("%s: got %.17g, want %.17g (|diff| %.3g > tol %.3g)", where_, got_,       \
                         want_, fabs(got_ - want_), tol_);                                         \
        }                                                                                          \
    } while (0)

/* ---- finite-difference checks of the score chain ------------------------------ */

/* All four projected-on-identity scores at x (d <= 4). */
typedef struct {
    double S1[4], S2[16], S3[64], S4[256];
    double logp;
} scores4;

static void eval_scores(const sl_dist *D, const double *x, scores4 *s) {
    sl_status st = sl_dist_scores(D, x, 0, NULL, s->S1, s->S2, s->S3, s->S4);
    ck_assert_msg(st == SL_OK, "scores: %s", sl_last_error());
    st = sl_dist_log_density(D, 1, x, &s->logp);
    ck_assert_msg(st == SL_OK, "log-density: %s", sl_last_error());
}

static double max_abs(size_t n, const double *v) {
    double r = 0.0;
    for (size_t i = 0; i < n; ++i) r = fmax(r, fabs(v[i]));
    return r;
}

/* Checks, at x, the identity grad(S_j p) = -S_{j+1} p, i.e.
 * S_{j+1}[.., c] = -(d_c S_j + S_j g_c) with S_0 = 1, for j = 0..3, using
 * Richardson-extrapolated central differences (h = 1e-3: truncation
 * ~ h^4 |f^(5)| ~ 1e-12 and rounding ~ eps |f| / h ~ 1e-13 relative to the
 * scale of the tensor), and that grad_hess agrees with S1 and S2. tol is
 * relative to 1 + the largest entry of S_{j+1}. */
static void check_score_chain(const sl_dist *D, const double *x0, double tol) {
    const size_t d = sl_dist_dim(D);
    ck_assert(d <= 4);
    const size_t d2 = d * d, d3 = d2 * d;
    scores4 s0, sp, sm, sp2, sm2;
    eval_scores(D, x0, &s0);
    double g[4], H[16];
    for (size_t a = 0; a < d; ++a) g[a] = -s0.S1[a];

    /* grad_hess is a separate code path: it must match S1 = -g, S2 = g g' + H. */
    double gg[4], HH[16];
    ck_assert_msg(sl_dist_grad_hess(D, 1, x0, gg, HH) == SL_OK, "%s", sl_last_error());
    for (size_t a = 0; a < d; ++a) {
        ASSERT_CLOSE(gg[a], g[a], 1e-12 * (1 + fabs(g[a])), "grad_hess g[%zu]", a);
        for (size_t b = 0; b < d; ++b) {
            H[a * d + b] = s0.S2[a * d + b] - g[a] * g[b];
            ASSERT_CLOSE(HH[a * d + b], H[a * d + b], 1e-12 * (1 + max_abs(d2, s0.S2)),
                         "grad_hess H[%zu,%zu]", a, b);
        }
    }

    const double h = 1e-3;
    const double sc1 = 1 + max_abs(d, s0.S1), sc2 = 1 + max_abs(d2, s0.S2),
                 sc3 = 1 + max_abs(d3, s0.S3), sc4 = 1 + max_abs(d3 * d, s0.S4);
    for (size_t c = 0; c < d; ++c) {
        double x[4];
        memcpy(x, x0, d * sizeof *x);
        x[c] = x0[c] + h;
        eval_scores(D, x, &sp);
        x[c] = x0[c] - h;
        eval_scores(D, x, &sm);
        x[c] = x0[c] + h / 2;
        eval_scores(D, x, &sp2);
        x[c] = x0[c] - h / 2;
        eval_scores(D, x, &sm2);
#define DERIV(field, i)                                                                            \
    ((4.0 * (sp2.field[i] - sm2.field[i]) / h - (sp.field[i] - sm.field[i]) / (2 * h)) / 3.0)
        /* g_c = d_c log p */
        const double dl = (4.0 * (sp2.logp - sm2.logp) / h - (sp.logp - sm.logp) / (2 * h)) / 3.0;
        ASSERT_CLOSE(g[c], dl, tol * sc1, "g[%zu] vs d log p", c);
        for (size_t a = 0; a < d; ++a) {
            ASSERT_CLOSE(s0.S2[a * d + c], -(DERIV(S1, a) + s0.S1[a] * g[c]), tol * sc2,
                         "S2[%zu,%zu] vs FD of S1", a, c);
            for (size_t b = 0; b < d; ++b) {
                const size_t ab = a * d + b;
                ASSERT_CLOSE(s0.S3[ab * d + c], -(DERIV(S2, ab) + s0.S2[ab] * g[c]), tol * sc3,
                             "S3[%zu,%zu,%zu] vs FD of S2", a, b, c);
                for (size_t e = 0; e < d; ++e) {
                    const size_t abe = ab * d + e;
                    ASSERT_CLOSE(s0.S4[abe * d + c], -(DERIV(S3, abe) + s0.S3[abe] * g[c]),
                                 tol * sc4, "S4[%zu,%zu,%zu,%zu] vs FD of S3", a, b, e, c);
                }
            }
        }
#undef DERIV
    }
}

/* Points for the chain checks: draws from D (seeded) plus the given ones. */
static void check_chain_at_points(const sl_dist *D, size_t nfixed, const double *fixed,
                                  uint64_t seed, double tol) {
    const size_t d = sl_dist_dim(D), ndraw = 6;
    double X[6 * 4];
    ck_assert(sl_dist_sample(D, seed, ndraw, X) == SL_OK);
    for (size_t i = 0; i < ndraw; ++i) check_score_chain(D, X + i * d, tol);
    for (size_t i = 0; i < nfixed; ++i) check_score_chain(D, fixed + i * d, tol);
}

/* S_j(V, .., V) from the call with V equals the full tensor (V = NULL)
 * contracted with V, for a random d x m matrix V. */
static void check_projection(const sl_dist *D, const double *x, size_t m, uint64_t seed) {
    const size_t d = sl_dist_dim(D);
    ck_assert(d <= 4 && m <= 4);
    gsl_rng *rng = sl_rng_alloc(seed, 0);
    double V[16];
    for (size_t i = 0; i < d * m; ++i) V[i] = gsl_ran_gaussian(rng, 1.0);
    gsl_rng_free(rng);
    scores4 full, proj;
    ck_assert(sl_dist_scores(D, x, 0, NULL, full.S1, full.S2, full.S3, full.S4) == SL_OK);
    ck_assert(sl_dist_scores(D, x, m, V, proj.S1, proj.S2, proj.S3, proj.S4) == SL_OK);
    /* Also each output alone: NULL outputs must not change the others. */
    double only4[256], only3[64];
    ck_assert(sl_dist_scores(D, x, m, V, NULL, NULL, NULL, only4) == SL_OK);
    ck_assert(sl_dist_scores(D, x, m, V, NULL, NULL, only3, NULL) == SL_OK);
    /* The two routes round differently: allow 1e-12 relative to the sum of
     * the magnitudes of the contracted terms (at most d^4 = 81 of them). */
    for (size_t a = 0; a < m; ++a) {
        double s1 = 0, t1 = 0;
        for (size_t i = 0; i < d; ++i) {
            s1 += full.S1[i] * V[i * m + a];
            t1 += fabs(full.S1[i] * V[i * m + a]);
        }
        ASSERT_CLOSE(proj.S1[a], s1, 1e-12 * (1 + t1), "projected S1[%zu]", a);
        for (size_t b = 0; b < m; ++b) {
            double s2 = 0, t2 = 0;
            for (size_t i = 0; i < d; ++i)
                for (size_t j = 0; j < d; ++j) {
                    const double v = full.S2[i * d + j] * V[i * m + a] * V[j * m + b];
                    s2 += v;
                    t2 += fabs(v);
                }
            ASSERT_CLOSE(proj.S2[a * m + b], s2, 1e-12 * (1 + t2), "projected S2[%zu,%zu]", a, b);
            for (size_t c = 0; c < m; ++c) {
                double s3 = 0, t3 = 0;
                for (size_t i = 0; i < d; ++i)
                    for (size_t j = 0; j < d; ++j)
                        for (size_t k = 0; k < d; ++k) {
                            const double v = full.S3[(i * d + j) * d + k] * V[i * m + a] *
                                             V[j * m + b] * V[k * m + c];
                            s3 += v;
                            t3 += fabs(v);
                        }
                const size_t abc = (a * m + b) * m + c;
                ASSERT_CLOSE(proj.S3[abc], s3, 1e-12 * (1 + t3), "projected S3[%zu,%zu,%zu]", a, b,
                             c);
                ASSERT_CLOSE(only3[abc], proj.S3[abc], 0.0, "S3 alone [%zu]", abc);
                for (size_t e = 0; e < m; ++e) {
                    double s4 = 0, t4 = 0;
                    for (size_t i = 0; i < d; ++i)
                        for (size_t j = 0; j < d; ++j)
                            for (size_t k = 0; k < d; ++k)
                                for (size_t l = 0; l < d; ++l) {
                                    const double v = full.S4[((i * d + j) * d + k) * d + l] *
                                                     V[i * m + a] * V[j * m + b] * V[k * m + c] *
                                                     V[l * m + e];
                                    s4 += v;
                                    t4 += fabs(v);
                                }
                    ASSERT_CLOSE(proj.S4[abc * m + e], s4, 1e-12 * (1 + t4),
                                 "projected S4[%zu,%zu,%zu,%zu]", a, b, c, e);
                    ASSERT_CLOSE(only4[abc * m + e], proj.S4[abc * m + e], 0.0, "S4 alone");
                }
            }
        }
    }
}

/* ---- sample moments ------------------------------------------------------------ */

/* Sample mean against want_mean with the standard error from want_cov. */
static void check_sample_mean(size_t n, size_t d, const double *X, const double *want_mean,
                              const double *want_cov, const char *what) {
    for (size_t i = 0; i < d; ++i) {
        double s = 0;
        for (size_t r = 0; r < n; ++r) s += X[r * d + i];
        const double se = sqrt(want_cov[i * d + i] / (double)n);
        ASSERT_CLOSE(s / (double)n, want_mean[i], NSE * se, "%s: mean[%zu]", what, i);
    }
}

START_TEST(test_gauss_standard) {
    /* N(0, I): log-density, g = -x, H = -I and S4 = He_4 at a point. */
    sl_dist *D = NULL;
    ck_assert(sl_dist_from_spec("gauss", 3, &D) == SL_OK);
    ck_assert_str_eq(sl_dist_name(D), "gauss");
    const unsigned want = SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD | SL_DIST_HESS |
                          SL_DIST_SCORE3 | SL_DIST_SCORE4 | SL_DIST_SMOOTH;
    ck_assert_uint_eq(sl_dist_caps(D) & want, want);
    const double x[3] = {0.3, -1.2, 2.0};
    scores4 s;
    eval_scores(D, x, &s);
    ASSERT_CLOSE(s.logp, -1.5 * log(2 * M_PI) - 0.5 * (0.09 + 1.44 + 4.0), 1e-14, "log p");
    for (size_t a = 0; a < 3; ++a)
        for (size_t b = 0; b < 3; ++b)
            for (size_t c = 0; c < 3; ++c)
                for (size_t e = 0; e < 3; ++e) {
                    const double dab = a == b, dac = a == c, dae = a == e, dbc = b == c,
                                 dbe = b == e, dce = c == e;
                    const double he4 = x[a] * x[b] * x[c] * x[e] -
                                       (dab * x[c] * x[e] + dac * x[b] * x[e] + dae * x[b] * x[c] +
                                        dbc * x[a] * x[e] + dbe * x[a] * x[c] + dce * x[a] * x[b]) +
                                       dab * dce + dac * dbe + dae * dbc;
                    ASSERT_CLOSE(s.S4[((a * 3 + b) * 3 + c) * 3 + e], he4, 1e-13, "He4");
                }
    ASSERT_CLOSE(s.S1[1], -1.2, 0.0, "S1 = x");
    sl_dist_free(D);
}
END_TEST

START_TEST(test_gauss_file_moments) {
    sl_dist *D = make_gauss3();
    double *X = malloc(NSAMPLE * 3 * sizeof *X);
    ck_assert_ptr_nonnull(X);
    ck_assert(sl_dist_sample(D, 12345, NSAMPLE, X) == SL_OK);
    check_sample_mean(NSAMPLE, 3, X, gauss_mean, gauss_cov, "gauss file");
    /* E[(x-m)_i (x-m)_j] = C_ij with variance C_ii C_jj + C_ij^2 (Isserlis). */
    for (size_t i = 0; i < 3; ++i)
        for (size_t j = i; j < 3; ++j) {
            double s = 0;
            for (size_t r = 0; r < NSAMPLE; ++r)
                s += (X[r * 3 + i] - gauss_mean[i]) * (X[r * 3 + j] - gauss_mean[j]);
            const double cij = gauss_cov[i * 3 + j];
            const double se =
                sqrt((gauss_cov[i * 3 + i] * gauss_cov[j * 3 + j] + cij * cij) / NSAMPLE);
            ASSERT_CLOSE(s / NSAMPLE, cij, NSE * se, "gauss file: cov[%zu,%zu]", i, j);
        }
    free(X);
    sl_dist_free(D);
}
END_TEST

START_TEST(test_gauss_file_density_and_scores) {
    sl_dist *D = make_gauss3();
    ck_assert_msg(strstr(sl_dist_name(D), "gauss3.csv") != NULL, "name %s", sl_dist_name(D));
    const double pts[3 * 3] = {0.0, 0.0, 0.0, 1.0, -2.0, 0.5, 3.0, 1.0, -2.0};
    for (size_t i = 0; i < 3; ++i) {
        double lp;
        ck_assert(sl_dist_log_density(D, 1, pts + 3 * i, &lp) == SL_OK);
        const double want = gsl_gauss_logpdf(3, pts + 3 * i, gauss_mean, gauss_cov);
        ASSERT_CLOSE(lp, want, 1e-12 * (1 + fabs(want)), "gauss file log p at point %zu", i);
    }
    /* Quadratic log-density: g = -P (x - m) and H = -P, and H does not
     * depend on x; the chain check covers G3 = G4 = 0. */
    check_chain_at_points(D, 3, pts, 7, 1e-7);
    check_projection(D, pts + 6, 2, 99);
    sl_dist_free(D);
}
END_TEST

/* ---- mixtures --------------------------------------------------------------------- */

START_TEST(test_gmm2_responsibilities) {
    const size_t d = 10;
    sl_dist *D = NULL;
    ck_assert(sl_dist_from_spec("gmm2", d, &D) == SL_OK);
    ck_assert_str_eq(sl_dist_name(D), "gmm2");
    /* log N(x; 1, I) - log N(x; -1, I) = 2 * 1'x, so with t = 1'x the
     * responsibilities are (1 +- tanh t) / 2, g = -x + tanh(t) 1 and
     * H = -I + (1 - tanh^2 t) 1 1'. At x = 0 they are 1/2 each: g = 0 and
     * H = 1 1' - I. The far point tests the log-sum-exp (each component's
     * density underflows there). */
    double pts[3][10] = {{0}, {0}, {0}};
    for (size_t i = 0; i < d; ++i) {
        pts[1][i] = 0.05 * (double)i - 0.2;
        pts[2][i] = 40.0;
    }
    for (size_t p = 0; p < 3; ++p) {
        const double *x = pts[p];
        double t = 0, xx = 0;
        for (size_t i = 0; i < d; ++i) {
            t += x[i];
            xx += x[i] * x[i];
        }
        double g[10], H[100], lp;
        ck_assert(sl_dist_grad_hess(D, 1, x, g, H) == SL_OK);
        ck_assert(sl_dist_log_density(D, 1, x, &lp) == SL_OK);
        const double th = tanh(t);
        /* The mixture Hessian sum_c r_c g_c g_c' - g g' cancels terms of size
         * |g|^2: allow rounding relative to that. */
        double gmax = 0;
        for (size_t a = 0; a < d; ++a) gmax = fmax(gmax, fabs(g[a]));
        /* log cosh t, stably */
        const double logcosh = fabs(t) + log1p(exp(-2 * fabs(t))) - log(2.0);
        const double want_lp =
            -0.5 * (double)d * log(2 * M_PI) - 0.5 * xx - 0.5 * (double)d + logcosh;
        ASSERT_CLOSE(lp, want_lp, 1e-12 * (1 + fabs(want_lp)), "gmm2 log p at point %zu", p);
        for (size_t a = 0; a < d; ++a) {
            ASSERT_CLOSE(g[a], -x[a] + th, 1e-12 * (1 + fabs(x[a])), "gmm2 g[%zu] at point %zu", a,
                         p);
            for (size_t b = 0; b < d; ++b)
                ASSERT_CLOSE(H[a * d + b], (a == b ? -1.0 : 0.0) + (1 - th * th),
                             1e-14 * (1 + gmax * gmax), "gmm2 H[%zu,%zu] at point %zu", a, b, p);
        }
    }
    sl_dist_free(D);
}
END_TEST

START_TEST(test_gmm_density_and_moments) {
    sl_dist *D = make_gmm3();
    /* log p against GSL's Gaussian log-density with normalised weights. */
    double wsum = 0;
    for (size_t c = 0; c < GMM_K; ++c) wsum += gmm_weight[c];
    const double pts[3 * 3] = {0.0, 0.0, 0.0, 1.0, 0.0, -1.0, -3.0, 4.0, 2.0};
    for (size_t i = 0; i < 3; ++i) {
        double p = 0;
        for (size_t c = 0; c < GMM_K; ++c)
            p += gmm_weight[c] / wsum *
                 exp(gsl_gauss_logpdf(3, pts + 3 * i, gmm_mean + 3 * c, gmm_cov + 9 * c));
        double lp;
        ck_assert(sl_dist_log_density(D, 1, pts + 3 * i, &lp) == SL_OK);
        ASSERT_CLOSE(lp, log(p), 1e-12 * (1 + fabs(log(p))), "gmm log p at point %zu", i);
    }
    /* Sample mean sum_c pi_c m_c, standard error from the total covariance
     * sum_c pi_c (C_c + m_c m_c') - mu mu'. */
    double mu[3] = {0}, cov[9] = {0};
    for (size_t c = 0; c < GMM_K; ++c)
        for (size_t i = 0; i < 3; ++i) mu[i] += gmm_weight[c] / wsum * gmm_mean[3 * c + i];
    for (size_t c = 0; c < GMM_K; ++c)
        for (size_t i = 0; i < 3; ++i)
            for (size_t j = 0; j < 3; ++j)
                cov[i * 3 + j] +=
                    gmm_weight[c] / wsum *
                    (gmm_cov[9 * c + i * 3 + j] + gmm_mean[3 * c + i] * gmm_mean[3 * c + j]);
    for (size_t i = 0; i < 3; ++i)
        for (size_t j = 0; j < 3; ++j) cov[i * 3 + j] -= mu[i] * mu[j];
    double *X = malloc(NSAMPLE * 3 * sizeof *X);
    ck_assert_ptr_nonnull(X);
    ck_assert(sl_dist_sample(D, 2024, NSAMPLE, X) == SL_OK);
    check_sample_mean(NSAMPLE, 3, X, mu, cov, "gmm");
    /* Second moments against the total covariance, standard error estimated
     * from the sample itself (mixture fourth moments are tedious). */
    for (size_t i = 0; i < 3; ++i)
        for (size_t j = i; j < 3; ++j) {
            double s = 0, s2 = 0;
            for (size_t r = 0; r < NSAMPLE; ++r) {
                const double v = (X[r * 3 + i] - mu[i]) * (X[r * 3 + j] - mu[j]);
                s += v;
                s2 += v * v;
            }
            const double mean = s / NSAMPLE, se = sqrt((s2 / NSAMPLE - mean * mean) / NSAMPLE);
            ASSERT_CLOSE(mean, cov[i * 3 + j], NSE * se, "gmm cov[%zu,%zu]", i, j);
        }
    free(X);
    sl_dist_free(D);
}
END_TEST

START_TEST(test_gmm_scores_fd) {
    sl_dist *D = make_gmm3();
    /* Draws, the component means, midpoints where responsibilities mix, and
     * a point far in a tail. */
    const double fixed[6 * 3] = {1.0, 0.0, -1.0,  -1.0, 1.0,   0.5, 0.0, -1.5, 1.0,
                                 0.0, 0.5, -0.25, 0.5,  -0.75, 0.0, 2.5, 2.0,  -3.0};
    check_chain_at_points(D, 6, fixed, 31, 1e-7);
    check_projection(D, fixed + 9, 2, 5);
    check_projection(D, fixed + 15, 3, 6);
    sl_dist_free(D);
}
END_TEST

/* ---- Student t ---------------------------------------------------------------------- */

START_TEST(test_student_density) {
    /* d = 1 against GSL's t density. */
    sl_dist *D1 = make_student(1, 2.5);
    const double xs[4] = {0.0, 0.7, -3.0, 25.0};
    for (size_t i = 0; i < 4; ++i) {
        double lp;
        ck_assert(sl_dist_log_density(D1, 1, xs + i, &lp) == SL_OK);
        const double want = log(gsl_ran_tdist_pdf(xs[i], 2.5));
        ASSERT_CLOSE(lp, want, 1e-12 * (1 + fabs(want)), "student d=1 log p at %g", xs[i]);
    }
    sl_dist_free(D1);
    /* d = 3 against the formula with tgamma. */
    const double nu = 5.0;
    sl_dist *D = make_student(3, nu);
    const double x[3] = {0.5, -1.0, 2.0};
    const double s = 0.25 + 1.0 + 4.0;
    const double want = log(tgamma((nu + 3) / 2) / (tgamma(nu / 2) * pow(nu * M_PI, 1.5))) -
                        (nu + 3) / 2 * log(1 + s / nu);
    double lp;
    ck_assert(sl_dist_log_density(D, 1, x, &lp) == SL_OK);
    ASSERT_CLOSE(lp, want, 1e-12 * (1 + fabs(want)), "student d=3 log p");
    sl_dist_free(D);
}
END_TEST

START_TEST(test_student_scores_fd) {
    const double nus[2] = {5.0, 2.5};
    const double fixed[3 * 3] = {0.0, 0.0, 0.0, 0.3, -0.2, 0.1, 4.0, -3.0, 6.0};
    for (size_t k = 0; k < 2; ++k) {
        sl_dist *D = make_student(3, nus[k]);
        check_chain_at_points(D, 3, fixed, 41 + k, 1e-7);
        check_projection(D, fixed + 3, 2, 8 + k);
        check_projection(D, fixed + 6, 3, 10 + k);
        sl_dist_free(D);
    }
}
END_TEST

START_TEST(test_student_covariance) {
    /* x = z w with w^2 = nu / chi2_nu: E[x x'] = E[w^2] I = nu/(nu-2) I;
     * Var(x_i^2) = 3 E[w^4] - E[w^2]^2 and Var(x_i x_j) = E[w^4] (i != j),
     * E[w^4] = nu^2 / ((nu-2)(nu-4)). */
    const double nu = 7.0;
    const double ew2 = nu / (nu - 2), ew4 = nu * nu / ((nu - 2) * (nu - 4));
    sl_dist *D = make_student(3, nu);
    double *X = malloc(NSAMPLE * 3 * sizeof *X);
    ck_assert_ptr_nonnull(X);
    ck_assert(sl_dist_sample(D, 777, NSAMPLE, X) == SL_OK);
    for (size_t i = 0; i < 3; ++i) {
        double s = 0;
        for (size_t r = 0; r < NSAMPLE; ++r) s += X[r * 3 + i];
        ASSERT_CLOSE(s / NSAMPLE, 0.0, NSE * sqrt(ew2 / NSAMPLE), "student mean[%zu]", i);
        for (size_t j = i; j < 3; ++j) {
            double q = 0;
            for (size_t r = 0; r < NSAMPLE; ++r) q += X[r * 3 + i] * X[r * 3 + j];
            const double var = i == j ? 3 * ew4 - ew2 * ew2 : ew4;
            ASSERT_CLOSE(q / NSAMPLE, i == j ? ew2 : 0.0, NSE * sqrt(var / NSAMPLE),
                         "student cov[%zu,%zu]", i, j);
        }
    }
    free(X);
    sl_dist_free(D);
}
END_TEST

/* Large m takes the heap scratch path, small m the stack one: the full
 * tensors (V = NULL, m = d = 10) must agree with single-direction
 * projections (m = 1) and with grad_hess. */
static void check_large_m(const sl_dist *D, const double *x) {
    const size_t d = sl_dist_dim(D), d2 = d * d, d3 = d2 * d;
    double *S1 = malloc(d * sizeof *S1), *S2 = malloc(d2 * sizeof *S2);
    double *S3 = malloc(d3 * sizeof *S3), *S4 = malloc(d3 * d * sizeof *S4);
    double *g = malloc(d * sizeof *g), *H = malloc(d2 * sizeof *H), *u = calloc(d, sizeof *u);
    ck_assert(S1 && S2 && S3 && S4 && g && H && u);
    ck_assert_msg(sl_dist_scores(D, x, 0, NULL, S1, S2, S3, S4) == SL_OK, "%s", sl_last_error());
    ck_assert(sl_dist_grad_hess(D, 1, x, g, H) == SL_OK);
    for (size_t a = 0; a < d; ++a) {
        ASSERT_CLOSE(S1[a], -g[a], 1e-12 * (1 + fabs(g[a])), "large m: S1[%zu]", a);
        for (size_t b = 0; b < d; ++b)
            ASSERT_CLOSE(S2[a * d + b], g[a] * g[b] + H[a * d + b], 1e-12 * (1 + fabs(g[a] * g[b])),
                         "large m: S2[%zu,%zu]", a, b);
    }
    for (size_t a = 0; a < d; ++a) {
        double s3, s4;
        u[a] = 1.0;
        ck_assert(sl_dist_scores(D, x, 1, u, NULL, NULL, &s3, &s4) == SL_OK);
        u[a] = 0.0;
        const size_t aa = a * d + a, aaa = aa * d + a;
        ASSERT_CLOSE(S3[aaa], s3, 1e-12 * (1 + fabs(s3)), "large m: S3[%zu,%zu,%zu]", a, a, a);
        ASSERT_CLOSE(S4[aaa * d + a], s4, 1e-12 * (1 + fabs(s4)), "large m: S4[%zu x4]", a);
    }
    free(S1);
    free(S2);
    free(S3);
    free(S4);
    free(g);
    free(H);
    free(u);
}

START_TEST(test_large_m_scratch) {
    double x[10];
    for (size_t i = 0; i < 10; ++i) x[i] = 0.1 * (double)i - 0.3;
    sl_dist *D = NULL;
    ck_assert(sl_dist_from_spec("gmm2", 10, &D) == SL_OK);
    check_large_m(D, x);
    sl_dist_free(D);
    D = make_student(10, 3.5);
    check_large_m(D, x);
    sl_dist_free(D);
}
END_TEST

START_TEST(test_student_rejects_bad_nu) {
    const double bad[4] = {0.0, -1.0, NAN, INFINITY};
    for (size_t i = 0; i < 4; ++i) {
        sl_dist *D = (sl_dist *)1;
        ck_assert_int_eq(sl_dist_student_alloc(3, bad[i], &D), SL_EINVAL);
        ck_assert_ptr_null(D);
        ck_assert(strstr(sl_last_error(), "degrees of freedom") != NULL);
    }
    sl_dist *D = NULL;
    ck_assert_int_eq(sl_dist_from_spec("student:0", 3, &D), SL_EINVAL);
    ck_assert_int_eq(sl_dist_from_spec("student:-2", 3, &D), SL_EINVAL);
    ck_assert_int_eq(sl_dist_from_spec("student:7", 3, &D), SL_OK);
    ck_assert_str_eq(sl_dist_name(D), "student:7");
    sl_dist_free(D);
}
END_TEST

/* ---- bad parameter files ------------------------------------------------------------ */

/* Builds kind from path in dimension d; expects a failure whose status is
 * one of the input errors and whose message names the file and, when
 * detail is not NULL, contains detail. */
static void expect_bad(const char *kind, const char *path, size_t d, const char *detail) {
    sl_dist *D = NULL;
    sl_status st = strcmp(kind, "gauss") == 0 ? sl_dist_gauss_alloc(d, path, &D)
                                              : sl_dist_gmm_alloc(d, path, &D);
    ck_assert_msg(st == SL_EFORMAT || st == SL_EINVAL || st == SL_ENUMERIC,
                  "%s:%s accepted or wrong status %d (%s)", kind, path, (int)st, sl_last_error());
    ck_assert_ptr_null(D);
    ck_assert_msg(strstr(sl_last_error(), path) != NULL, "message does not name %s: %s", path,
                  sl_last_error());
    if (detail)
        ck_assert_msg(strstr(sl_last_error(), detail) != NULL, "message lacks '%s': %s", detail,
                      sl_last_error());
}

START_TEST(test_bad_parameter_files) {
    const double w1 = 1.0;
    /* Missing column c3_3 (the last one). */
    const char *p = sl_test_tmpfile("missing.csv");
    write_params(p, 1, 3, &w1, gauss_mean, gauss_cov, 1 + 3 + 8);
    expect_bad("gauss", p, 3, "c3_3");
    expect_bad("gmm", p, 3, "c3_3");

    /* Dimension 2 in the file, 3 asked for: the message gives both. */
    p = sl_test_tmpfile("dim2.csv");
    const double m2[2] = {0.0, 1.0}, C2[4] = {1.0, 0.2, 0.2, 1.0};
    write_params(p, 1, 2, &w1, m2, C2, -1);
    expect_bad("gauss", p, 3, "dimension 2");
    expect_bad("gauss", p, 3, "dimension 3");
    expect_bad("gmm", p, 3, "dimension 2");

    /* Non-symmetric covariance: c1_2 != c2_1. */
    p = sl_test_tmpfile("nonsym.csv");
    double Cn[9];
    memcpy(Cn, gauss_cov, sizeof Cn);
    Cn[1] += 1e-6;
    write_params(p, 1, 3, &w1, gauss_mean, Cn, -1);
    expect_bad("gauss", p, 3, "c1_2");

    /* Symmetric but not positive definite (an eigenvalue of -0.5). */
    p = sl_test_tmpfile("notpd.csv");
    const double Cnpd[9] = {1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -0.5};
    write_params(p, 1, 3, &w1, gauss_mean, Cnpd, -1);
    expect_bad("gauss", p, 3, "positive definite");
    /* ... in the second component of a mixture: named by row. */
    p = sl_test_tmpfile("notpd2.csv");
    double Cmix[18], mmix[6], wmix[2] = {1.0, 1.0};
    memcpy(Cmix, gauss_cov, 9 * sizeof *Cmix);
    memcpy(Cmix + 9, Cnpd, 9 * sizeof *Cmix);
    memcpy(mmix, gauss_mean, 3 * sizeof *mmix);
    memcpy(mmix + 3, gauss_mean, 3 * sizeof *mmix);
    write_params(p, 2, 3, wmix, mmix, Cmix, -1);
    expect_bad("gmm", p, 3, "component 2");

    /* Negative and zero weights. */
    p = sl_test_tmpfile("negw.csv");
    const double wneg[2] = {1.0, -0.5};
    memcpy(Cmix + 9, gauss_cov, 9 * sizeof *Cmix);
    write_params(p, 2, 3, wneg, mmix, Cmix, -1);
    expect_bad("gmm", p, 3, "weight");
    p = sl_test_tmpfile("zerow.csv");
    const double wzero = 0.0;
    write_params(p, 1, 3, &wzero, gauss_mean, gauss_cov, -1);
    expect_bad("gauss", p, 3, "weight");

    /* A Gaussian takes one row; the same file is a fine mixture. */
    p = sl_test_tmpfile("tworows.csv");
    write_params(p, 2, 3, wmix, mmix, Cmix, -1);
    expect_bad("gauss", p, 3, "row");
    sl_dist *D = NULL;
    ck_assert_msg(sl_dist_gmm_alloc(3, p, &D) == SL_OK, "%s", sl_last_error());
    sl_dist_free(D);

    /* No such file. */
    p = sl_test_tmpfile("absent.csv");
    D = NULL;
    sl_status st = sl_dist_gauss_alloc(3, p, &D);
    ck_assert_int_ne(st, SL_OK);
    ck_assert_ptr_null(D);
    ck_assert(strstr(sl_last_error(), p) != NULL);
}
END_TEST

/* ---- the built-in agmm ------------------------------------------------------------- */

/* The parameters of agmm in dimension d (w: 3, m: 3 x d, C: 3 x d x d),
 * written here from its definition in dist.h and dist_gauss.c. */
static void agmm_params(size_t d, double *w, double *m, double *C) {
    static const double w0[3] = {0.4, 0.35, 0.25};
    static const double m0[3][2] = {{-1.5, -0.5}, {1.5, -1.0}, {0.0, 1.8}};
    static const double sd[3][2] = {{1.0, 0.4}, {0.5, 0.9}, {0.7, 0.7}};
    static const double rho[3] = {0.7, -0.6, 0.3};
    for (size_t c = 0; c < 3; ++c) {
        w[c] = w0[c];
        for (size_t a = 0; a < d; ++a) m[c * d + a] = a < 2 ? m0[c][a] : 0.0;
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b)
                C[(c * d + a) * d + b] =
                    sd[c][a % 2] * sd[c][b % 2] * pow(rho[c], (double)(a > b ? a - b : b - a));
    }
}

static sl_dist *make_agmm(size_t d) {
    sl_dist *D = NULL;
    ck_assert_msg(sl_dist_from_spec("agmm", d, &D) == SL_OK, "agmm d=%zu: %s", d, sl_last_error());
    return D;
}

/* Exact equality of two arrays (bitwise for finite values). */
static void assert_same(size_t n, const double *a, const double *b, const char *what) {
    for (size_t i = 0; i < n; ++i)
        if (memcmp(a + i, b + i, sizeof *a) != 0)
            ck_abort_msg("%s[%zu]: %.17g != %.17g", what, i, a[i], b[i]);
}

START_TEST(test_agmm_equals_file) {
    /* agmm against gmm:FILE of the same parameters written with %.17g (the
     * file the accuracy test and bench used to write): the same samples for
     * the same seed and the same log-density, g, H and S1..S4, bit for bit. */
    static const size_t dims[4] = {1, 2, 5, 10};
    for (size_t t = 0; t < 4; ++t) {
        const size_t d = dims[t], dd = d * d;
        double w[3], *m = malloc(3 * d * sizeof *m), *C = malloc(3 * dd * sizeof *C);
        ck_assert(m && C);
        agmm_params(d, w, m, C);
        char name[32], spec[600];
        snprintf(name, sizeof name, "agmm%zu.csv", d);
        const char *path = sl_test_tmpfile(name);
        write_params(path, 3, d, w, m, C, -1);
        snprintf(spec, sizeof spec, "gmm:%s", path);
        sl_dist *F = NULL;
        ck_assert_msg(sl_dist_from_spec(spec, d, &F) == SL_OK, "%s", sl_last_error());
        sl_dist *A = make_agmm(d);
        ck_assert_str_eq(sl_dist_name(A), "agmm");
        ck_assert_uint_eq(sl_dist_caps(A), sl_dist_caps(F));

        const size_t n = 3000, np = 8, mm = d < 3 ? d : 3;
        double *XA = malloc(n * d * sizeof *XA), *XF = malloc(n * d * sizeof *XF);
        ck_assert(XA && XF);
        ck_assert(sl_dist_sample(A, 4242, n, XA) == SL_OK);
        ck_assert(sl_dist_sample(F, 4242, n, XF) == SL_OK);
        assert_same(n * d, XA, XF, "agmm samples");

        /* Scores at the first np samples, projected on the first mm axes. */
        double *V = calloc(d * mm, sizeof *V);
        double *bufA = malloc(2 * (1 + d + dd + mm + mm * mm + mm * mm * mm + mm * mm * mm * mm) *
                              sizeof *bufA);
        ck_assert(V && bufA);
        for (size_t a = 0; a < mm; ++a) V[a * mm + a] = 1.0;
        const size_t len = 1 + d + dd + mm + mm * mm + mm * mm * mm + mm * mm * mm * mm;
        double *bufF = bufA + len;
        for (size_t i = 0; i < np; ++i) {
            const double *x = XA + i * d;
            double *out[2] = {bufA, bufF};
            const sl_dist *Ds[2] = {A, F};
            for (size_t k = 0; k < 2; ++k) {
                double *o = out[k];
                ck_assert(sl_dist_log_density(Ds[k], 1, x, o) == SL_OK);
                ck_assert(sl_dist_grad_hess(Ds[k], 1, x, o + 1, o + 1 + d) == SL_OK);
                double *S1 = o + 1 + d + dd, *S2 = S1 + mm, *S3 = S2 + mm * mm,
                       *S4 = S3 + mm * mm * mm;
                ck_assert(sl_dist_scores(Ds[k], x, mm, V, S1, S2, S3, S4) == SL_OK);
            }
            assert_same(len, bufA, bufF, "agmm log p, g, H, S1..S4");
        }
        free(V);
        free(bufA);
        free(XA);
        free(XF);
        free(m);
        free(C);
        sl_dist_free(A);
        sl_dist_free(F);
    }
    sl_dist *D = (sl_dist *)1;
    ck_assert_int_eq(sl_dist_from_spec("agmm:3", 2, &D), SL_EINVAL);
    ck_assert_ptr_null(D);
    ck_assert_msg(strstr(sl_last_error(), "agmm takes no argument") != NULL, "%s", sl_last_error());
}
END_TEST

START_TEST(test_agmm_scores_fd) {
    /* The built-in through the finite-difference chain at d = 3, with one
     * point between the components and one in a tail. */
    sl_dist *D = make_agmm(3);
    const double fixed[2 * 3] = {0.0, 0.3, -0.2, 3.0, -2.5, 1.5};
    check_chain_at_points(D, 2, fixed, 51, 1e-7);
    sl_dist_free(D);
}
END_TEST

/* ---- marginals z = U'x ------------------------------------------------------------ */

#define MD 10 /* input dimension of the marginal tests */
#define MK 3  /* directions */

/* A Gaussian mixture by its parameters, K <= 3 components in dimension <= MD. */
typedef struct {
    size_t K, d;
    double w[3];           /* normalised */
    double m[3 * MD];      /* K x d */
    double C[3 * MD * MD]; /* K x d x d */
} mixture;

/* gauss:FILE in d = MD: mean 0.2 (i - 4), covariance B B' / MD + 0.3 I with
 * a fixed Gaussian B, and the parameters it was written from. */
static sl_dist *make_gauss_file10(mixture *mx) {
    mx->K = 1;
    mx->d = MD;
    mx->w[0] = 1.0;
    gsl_rng *rng = sl_rng_alloc(808, 0);
    double B[MD * MD];
    for (size_t i = 0; i < MD * MD; ++i) B[i] = gsl_ran_gaussian(rng, 1.0);
    gsl_rng_free(rng);
    for (size_t i = 0; i < MD; ++i) {
        mx->m[i] = 0.2 * ((double)i - 4.0);
        for (size_t j = 0; j < MD; ++j) {
            double v = i == j ? 0.3 : 0.0;
            for (size_t l = 0; l < MD; ++l) v += B[i * MD + l] * B[j * MD + l] / MD;
            mx->C[i * MD + j] = v;
        }
    }
    const char *path = sl_test_tmpfile("gauss10.csv");
    write_params(path, 1, MD, mx->w, mx->m, mx->C, -1);
    char spec[600];
    snprintf(spec, sizeof spec, "gauss:%s", path);
    sl_dist *D = NULL;
    ck_assert_msg(sl_dist_from_spec(spec, MD, &D) == SL_OK, "%s", sl_last_error());
    return D;
}

static sl_dist *make_agmm10(mixture *mx) {
    mx->K = 3;
    mx->d = MD;
    agmm_params(MD, mx->w, mx->m, mx->C);
    const double wsum = mx->w[0] + mx->w[1] + mx->w[2];
    for (size_t c = 0; c < 3; ++c) mx->w[c] /= wsum;
    return make_agmm(MD);
}

/* U (MD x MK) with orthonormal columns: the transpose of random orthonormal rows. */
static void random_u(uint64_t seed, double *U) {
    double Q[MK * MD];
    gsl_rng *rng = sl_rng_alloc(seed, 0);
    ck_assert(sl_random_orthonormal_rows(MK, MD, rng, Q) == SL_OK);
    gsl_rng_free(rng);
    for (size_t i = 0; i < MD; ++i)
        for (size_t a = 0; a < MK; ++a) U[i * MK + a] = Q[a * MD + i];
}

/* The marginal's parameters by plain sums: U'm_c and U'C_c U. */
static void project_mixture(const mixture *x, const double *U, mixture *z) {
    const size_t d = x->d;
    z->K = x->K;
    z->d = MK;
    for (size_t c = 0; c < x->K; ++c) {
        z->w[c] = x->w[c];
        for (size_t a = 0; a < MK; ++a) {
            double v = 0;
            for (size_t i = 0; i < d; ++i) v += U[i * MK + a] * x->m[c * d + i];
            z->m[c * MK + a] = v;
            for (size_t b = 0; b < MK; ++b) {
                double q = 0;
                for (size_t i = 0; i < d; ++i)
                    for (size_t j = 0; j < d; ++j)
                        q += U[i * MK + a] * x->C[(c * d + i) * d + j] * U[j * MK + b];
                z->C[(c * MK + a) * MK + b] = q;
            }
        }
    }
}

/* The k-dimensional mixture's log p, g, H and S_4 at z from the component
 * formulas: responsibilities r_c from GSL's Gaussian log-density, g_c =
 * -P_c (z - mu_c) with P_c from GSL's Cholesky inverse, g = sum r_c g_c,
 * H = sum r_c (g_c g_c' - P_c) - g g', and S_4 = sum_c r_c S_4^c with the
 * quadratic formula of METHOD.md section 2 written out term by term. */
static void brute_mixture(const mixture *z, const double *x, double *logp, double *g, double *H,
                          double *S4) {
    const size_t k = z->d, K = z->K;
    ck_assert(K >= 1 && K <= 3 && k == MK);
    double lc[3] = {0}, gc[3][MK] = {{0}}, P[3][MK * MK] = {{0}};
    for (size_t c = 0; c < K; ++c) {
        lc[c] = log(z->w[c]) + gsl_gauss_logpdf(k, x, z->m + c * k, z->C + c * k * k);
        gsl_matrix *L = gsl_matrix_alloc(k, k);
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b < k; ++b) gsl_matrix_set(L, a, b, z->C[(c * k + a) * k + b]);
        ck_assert_int_eq(gsl_linalg_cholesky_decomp1(L), 0);
        ck_assert_int_eq(gsl_linalg_cholesky_invert(L), 0);
        for (size_t a = 0; a < k; ++a) {
            gc[c][a] = 0;
            for (size_t b = 0; b < k; ++b) {
                P[c][a * k + b] = gsl_matrix_get(L, a, b);
                gc[c][a] -= P[c][a * k + b] * (x[b] - z->m[c * k + b]);
            }
        }
        gsl_matrix_free(L);
    }
    double top = lc[0];
    for (size_t c = 1; c < K; ++c) top = fmax(top, lc[c]);
    double r[3] = {0}, sum = 0;
    for (size_t c = 0; c < K; ++c) sum += r[c] = exp(lc[c] - top);
    for (size_t c = 0; c < K; ++c) r[c] /= sum;
    *logp = top + log(sum);
    for (size_t a = 0; a < k; ++a) {
        g[a] = 0;
        for (size_t c = 0; c < K; ++c) g[a] += r[c] * gc[c][a];
    }
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b) {
            double v = -g[a] * g[b];
            for (size_t c = 0; c < K; ++c) v += r[c] * (gc[c][a] * gc[c][b] - P[c][a * k + b]);
            H[a * k + b] = v;
        }
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b)
            for (size_t e = 0; e < k; ++e)
                for (size_t f = 0; f < k; ++f) {
                    double v = 0;
                    for (size_t c = 0; c < K; ++c) {
                        const double *q = gc[c], *Pc = P[c];
                        /* H_c = -P_c */
                        const double hab = -Pc[a * k + b], hae = -Pc[a * k + e],
                                     haf = -Pc[a * k + f], hbe = -Pc[b * k + e],
                                     hbf = -Pc[b * k + f], hef = -Pc[e * k + f];
                        v += r[c] *
                             (q[a] * q[b] * q[e] * q[f] + q[a] * q[b] * hef + q[a] * q[e] * hbf +
                              q[a] * q[f] * hbe + q[b] * q[e] * haf + q[b] * q[f] * hae +
                              q[e] * q[f] * hab + hab * hef + hae * hbf + haf * hbe);
                    }
                    S4[((a * k + b) * k + e) * k + f] = v;
                }
}

typedef sl_dist *(*mixture_maker)(mixture *mx);

static const struct {
    const char *name;
    mixture_maker make;
    uint64_t useed;
} marginal_cases[] = {
    {"gauss:FILE", make_gauss_file10, 61},
    {"agmm", make_agmm10, 62},
};

START_TEST(test_marginal_scores) {
    /* At z = U'x for draws x of the d = 10 distribution: the marginal's
     * log p, g and H against brute_mixture, its S_4 (V = NULL, all 81
     * entries) and its S_4 projected on a random 3 x 2 V against the same
     * tensor contracted by hand. The two routes differ only in rounding
     * (the library forms U'C U as (L'U)'(L'U) and solves with its Cholesky
     * factor). Differences relative to the scale of each quantity,
     * measured max over the 9 points (gauss:FILE / agmm): log p 3e-16 /
     * 2e-16, g 5e-16 / 7e-16, H 1e-16 / 3e-16, S4 3e-15 / 4e-15, projected
     * S4 2e-15 / 8e-15; allowed 1e-12. Then the finite-difference chain in
     * k = 3 (measured 2.4e-12 against its 1e-7). */
    const mixture_maker make = marginal_cases[_i].make;
    mixture mx, mz;
    sl_dist *D = make(&mx);
    double U[MD * MK];
    random_u(marginal_cases[_i].useed, U);
    project_mixture(&mx, U, &mz);
    sl_dist *M = (sl_dist *)1;
    ck_assert_msg(sl_dist_marginal(D, MK, U, &M) == SL_OK, "%s: %s", marginal_cases[_i].name,
                  sl_last_error());
    ck_assert_uint_eq(sl_dist_dim(M), MK);
    ck_assert_uint_eq(sl_dist_caps(M), sl_dist_caps(D));
    ck_assert_msg(strstr(sl_dist_name(M), sl_dist_name(D)) != NULL, "name %s", sl_dist_name(M));

    const size_t np = 8, k2 = MK * MK, k4 = k2 * k2;
    double X[8 * MD];
    ck_assert(sl_dist_sample(D, 99, np, X) == SL_OK);
    double V[MK * 2];
    gsl_rng *rng = sl_rng_alloc(marginal_cases[_i].useed + 100, 0);
    for (size_t i = 0; i < MK * 2; ++i) V[i] = gsl_ran_gaussian(rng, 1.0);
    gsl_rng_free(rng);
    for (size_t p = 0; p < np + 1; ++p) {
        /* The draws, then a point far out where the responsibilities are lopsided. */
        double z[MK];
        if (p < np) {
            for (size_t a = 0; a < MK; ++a) {
                z[a] = 0;
                for (size_t i = 0; i < MD; ++i) z[a] += U[i * MK + a] * X[p * MD + i];
            }
        } else {
            z[0] = 3.0;
            z[1] = -2.5;
            z[2] = 2.0;
        }
        double lp, g[MK], H[MK * MK], S4[MK * MK * MK * MK];
        double wlp, wg[MK], wH[MK * MK], wS4[MK * MK * MK * MK];
        brute_mixture(&mz, z, &wlp, wg, wH, wS4);
        ck_assert(sl_dist_log_density(M, 1, z, &lp) == SL_OK);
        ck_assert(sl_dist_grad_hess(M, 1, z, g, H) == SL_OK);
        ck_assert(sl_dist_scores(M, z, 0, NULL, NULL, NULL, NULL, S4) == SL_OK);
        const double tol = 1e-12;
        ASSERT_CLOSE(lp, wlp, tol * (1 + fabs(wlp)), "%s: log p at point %zu",
                     marginal_cases[_i].name, p);
        const double gs = 1 + max_abs(MK, wg), Hs = 1 + max_abs(k2, wH) + gs * gs,
                     S4s = 1 + max_abs(k4, wS4);
        for (size_t a = 0; a < MK; ++a) ASSERT_CLOSE(g[a], wg[a], tol * gs, "g[%zu] at %zu", a, p);
        for (size_t i = 0; i < k2; ++i) ASSERT_CLOSE(H[i], wH[i], tol * Hs, "H[%zu] at %zu", i, p);
        for (size_t i = 0; i < k4; ++i)
            ASSERT_CLOSE(S4[i], wS4[i], tol * S4s, "S4[%zu] at %zu", i, p);
        /* Projected on V (3 x 2). */
        double PS4[16];
        ck_assert(sl_dist_scores(M, z, 2, V, NULL, NULL, NULL, PS4) == SL_OK);
        for (size_t a = 0; a < 2; ++a)
            for (size_t b = 0; b < 2; ++b)
                for (size_t e = 0; e < 2; ++e)
                    for (size_t f = 0; f < 2; ++f) {
                        double v = 0, t = 0;
                        for (size_t i = 0; i < MK; ++i)
                            for (size_t j = 0; j < MK; ++j)
                                for (size_t l = 0; l < MK; ++l)
                                    for (size_t o = 0; o < MK; ++o) {
                                        const double u = wS4[((i * MK + j) * MK + l) * MK + o] *
                                                         V[i * 2 + a] * V[j * 2 + b] *
                                                         V[l * 2 + e] * V[o * 2 + f];
                                        v += u;
                                        t += fabs(u);
                                    }
                        ASSERT_CLOSE(PS4[((a * 2 + b) * 2 + e) * 2 + f], v, tol * (1 + t),
                                     "projected S4[%zu,%zu,%zu,%zu] at %zu", a, b, e, f, p);
                    }
    }
    /* The scores of every order hang together (finite differences in k = 3). */
    const double fixed[3] = {0.5, -0.5, 1.0};
    check_chain_at_points(M, 1, fixed, 71, 1e-7);
    sl_dist_free(M);
    sl_dist_free(D);
}
END_TEST

START_TEST(test_marginal_samples) {
    /* n = 10^5 draws of the marginal: mean against sum_c pi_c mu_c and
     * covariance against sum_c pi_c (S_c + mu_c mu_c') - mu mu', within 5
     * standard errors (for the covariance, estimated from the sample).
     * Measured worst: mean 2.1 / 2.0 standard errors, covariance 1.4 / 1.8
     * (gauss:FILE / agmm). */
    const mixture_maker make = marginal_cases[_i].make;
    mixture mx, mz;
    sl_dist *D = make(&mx);
    double U[MD * MK];
    random_u(marginal_cases[_i].useed, U);
    project_mixture(&mx, U, &mz);
    sl_dist *M = NULL;
    ck_assert_msg(sl_dist_marginal(D, MK, U, &M) == SL_OK, "%s", sl_last_error());
    double mu[MK] = {0}, cov[MK * MK] = {0};
    for (size_t c = 0; c < mz.K; ++c)
        for (size_t a = 0; a < MK; ++a) mu[a] += mz.w[c] * mz.m[c * MK + a];
    for (size_t c = 0; c < mz.K; ++c)
        for (size_t a = 0; a < MK; ++a)
            for (size_t b = 0; b < MK; ++b)
                cov[a * MK + b] +=
                    mz.w[c] * (mz.C[(c * MK + a) * MK + b] + mz.m[c * MK + a] * mz.m[c * MK + b]);
    for (size_t a = 0; a < MK; ++a)
        for (size_t b = 0; b < MK; ++b) cov[a * MK + b] -= mu[a] * mu[b];
    double *Z = malloc(NSAMPLE * MK * sizeof *Z);
    ck_assert_ptr_nonnull(Z);
    ck_assert(sl_dist_sample(M, 303, NSAMPLE, Z) == SL_OK);
    check_sample_mean(NSAMPLE, MK, Z, mu, cov, marginal_cases[_i].name);
    for (size_t a = 0; a < MK; ++a)
        for (size_t b = a; b < MK; ++b) {
            double s = 0, s2 = 0;
            for (size_t r = 0; r < NSAMPLE; ++r) {
                const double v = (Z[r * MK + a] - mu[a]) * (Z[r * MK + b] - mu[b]);
                s += v;
                s2 += v * v;
            }
            const double mean = s / NSAMPLE, se = sqrt((s2 / NSAMPLE - mean * mean) / NSAMPLE);
            ASSERT_CLOSE(mean, cov[a * MK + b], NSE * se, "%s: marginal cov[%zu,%zu]",
                         marginal_cases[_i].name, a, b);
        }
    free(Z);
    sl_dist_free(M);
    sl_dist_free(D);
}
END_TEST

START_TEST(test_marginal_special_cases) {
    /* N(0, I) projects to N(0, I_k): g = -z, H = -I. gmm2 with U = I (k = d)
     * is gmm2 again, and a marginal of a marginal is the marginal on the
     * product of the two U's. */
    sl_dist *D = NULL;
    ck_assert(sl_dist_from_spec("gauss", MD, &D) == SL_OK);
    double U[MD * MK];
    random_u(7, U);
    sl_dist *M = NULL;
    ck_assert_msg(sl_dist_marginal(D, MK, U, &M) == SL_OK, "%s", sl_last_error());
    const double z[MK] = {0.4, -1.1, 2.0};
    double g[MK], H[MK * MK];
    ck_assert(sl_dist_grad_hess(M, 1, z, g, H) == SL_OK);
    for (size_t a = 0; a < MK; ++a) {
        ASSERT_CLOSE(g[a], -z[a], 1e-14, "gauss marginal g[%zu]", a);
        for (size_t b = 0; b < MK; ++b)
            ASSERT_CLOSE(H[a * MK + b], a == b ? -1.0 : 0.0, 1e-14, "gauss marginal H");
    }
    sl_dist_free(M);
    sl_dist_free(D);

    const size_t d = 4;
    ck_assert(sl_dist_from_spec("gmm2", d, &D) == SL_OK);
    double I4[16] = {0};
    for (size_t i = 0; i < d; ++i) I4[i * d + i] = 1.0;
    ck_assert(sl_dist_marginal(D, d, I4, &M) == SL_OK);
    const double x[4] = {0.3, -0.2, 1.1, 0.0};
    scores4 a, b;
    eval_scores(D, x, &a);
    eval_scores(M, x, &b);
    ASSERT_CLOSE(b.logp, a.logp, 1e-14, "gmm2 U = I: log p");
    for (size_t i = 0; i < 256; ++i) ASSERT_CLOSE(b.S4[i], a.S4[i], 1e-13, "gmm2 U = I: S4");

    /* Nested: U1 (4 x 3), U2 (3 x 2); marginal(marginal(D, U1), U2) =
     * marginal(D, U1 U2). */
    double Q[12], U1[12], U2[6], U12[8];
    gsl_rng *rng = sl_rng_alloc(17, 0);
    ck_assert(sl_random_orthonormal_rows(3, 4, rng, Q) == SL_OK);
    for (size_t i = 0; i < 4; ++i)
        for (size_t c = 0; c < 3; ++c) U1[i * 3 + c] = Q[c * 4 + i];
    ck_assert(sl_random_orthonormal_rows(2, 3, rng, Q) == SL_OK);
    for (size_t i = 0; i < 3; ++i)
        for (size_t c = 0; c < 2; ++c) U2[i * 2 + c] = Q[c * 3 + i];
    gsl_rng_free(rng);
    sl_matmul(4, 3, 2, U1, U2, U12);
    sl_dist *M1 = NULL, *M12 = NULL, *Mdirect = NULL;
    ck_assert(sl_dist_marginal(D, 3, U1, &M1) == SL_OK);
    ck_assert(sl_dist_marginal(M1, 2, U2, &M12) == SL_OK);
    ck_assert(sl_dist_marginal(D, 2, U12, &Mdirect) == SL_OK);
    const double z2[2] = {0.7, -0.4};
    double s4a[16], s4b[16], la, lb;
    ck_assert(sl_dist_scores(M12, z2, 0, NULL, NULL, NULL, NULL, s4a) == SL_OK);
    ck_assert(sl_dist_scores(Mdirect, z2, 0, NULL, NULL, NULL, NULL, s4b) == SL_OK);
    ck_assert(sl_dist_log_density(M12, 1, z2, &la) == SL_OK);
    ck_assert(sl_dist_log_density(Mdirect, 1, z2, &lb) == SL_OK);
    ASSERT_CLOSE(la, lb, 1e-13, "nested marginal log p");
    for (size_t i = 0; i < 16; ++i) ASSERT_CLOSE(s4a[i], s4b[i], 1e-12, "nested marginal S4");
    sl_dist_free(M1);
    sl_dist_free(M12);
    sl_dist_free(Mdirect);
    sl_dist_free(M);
    sl_dist_free(D);
}
END_TEST

static int cb_sample_zero(void *data, size_t d, size_t n, gsl_rng *rng, double *X) {
    (void)data;
    (void)rng;
    memset(X, 0, n * d * sizeof *X);
    return 0;
}

/* sl_dist_marginal on D must fail with status want, leave *out NULL and say
 * detail (and name the distribution). */
static void expect_marginal_error(const sl_dist *D, size_t k, const double *U, sl_status want,
                                  const char *detail) {
    sl_dist *M = (sl_dist *)1;
    const sl_status st = sl_dist_marginal(D, k, U, &M);
    ck_assert_msg(st == want, "%s, k = %zu: status %d, want %d (%s)", sl_dist_name(D), k, (int)st,
                  (int)want, sl_last_error());
    ck_assert_ptr_null(M);
    ck_assert_msg(strstr(sl_last_error(), detail) != NULL, "message lacks '%s': %s", detail,
                  sl_last_error());
    ck_assert_msg(strstr(sl_last_error(), sl_dist_name(D)) != NULL,
                  "message does not name '%s': %s", sl_dist_name(D), sl_last_error());
}

START_TEST(test_marginal_errors) {
    sl_dist *D = make_agmm(MD);
    double U[MD * MK], bad[MD * MK];
    random_u(5, U);
    /* k out of range, no U. */
    expect_marginal_error(D, 0, U, SL_EINVAL, "between 1 and");
    expect_marginal_error(D, MD + 1, U, SL_EINVAL, "between 1 and");
    expect_marginal_error(D, MK, NULL, SL_EINVAL, "U");
    /* Columns off the unit length by 1e-6, a column tilted by 1e-6 rad
     * (still unit length to 1e-12, off-diagonal 1e-6), and a NaN. */
    for (size_t i = 0; i < MD * MK; ++i) bad[i] = U[i] * (i % MK == 1 ? 1 + 1e-6 : 1.0);
    expect_marginal_error(D, MK, bad, SL_EINVAL, "orthonormal");
    memcpy(bad, U, sizeof bad);
    for (size_t i = 0; i < MD; ++i) {
        const double c = cos(1e-6), s = sin(1e-6);
        bad[i * MK + 0] = c * U[i * MK + 0] + s * U[i * MK + 1];
    }
    expect_marginal_error(D, MK, bad, SL_EINVAL, "orthonormal");
    memcpy(bad, U, sizeof bad);
    bad[4] = NAN;
    expect_marginal_error(D, MK, bad, SL_EINVAL, "non-finite");
    /* A U orthonormal to rounding only (scaled by 1 + 1e-12) is accepted. */
    for (size_t i = 0; i < MD * MK; ++i) bad[i] = U[i] * (1 + 1e-12);
    sl_dist *M = NULL;
    ck_assert_msg(sl_dist_marginal(D, MK, bad, &M) == SL_OK, "%s", sl_last_error());
    sl_dist_free(M);
    sl_dist_free(D);

    /* No closed form: product densities, the t, callbacks (as plug-ins are
     * wrapped) and samples. */
    static const char *const unsupported[] = {"laplace", "logistic", "student", "student:3"};
    for (size_t i = 0; i < 4; ++i) {
        ck_assert(sl_dist_from_spec(unsupported[i], MD, &D) == SL_OK);
        expect_marginal_error(D, MK, U, SL_EUNSUPPORTED, "no closed-form marginal");
        sl_dist_free(D);
    }
    sl_dist_callbacks cb = {0};
    cb.name = "zeros";
    cb.sample = cb_sample_zero;
    ck_assert(sl_dist_from_callbacks(&cb, MD, &D) == SL_OK);
    expect_marginal_error(D, MK, U, SL_EUNSUPPORTED, "no closed-form marginal");
    sl_dist_free(D);
    const char *plugin = getenv("SL_PLUGIN_GUMBEL");
    if (plugin) {
        char spec[600];
        snprintf(spec, sizeof spec, "plugin:%s", plugin);
        ck_assert_msg(sl_dist_from_spec(spec, MD, &D) == SL_OK, "%s", sl_last_error());
        expect_marginal_error(D, MK, U, SL_EUNSUPPORTED, "no closed-form marginal");
        sl_dist_free(D);
    }
    double X[2 * MD] = {0};
    ck_assert(sl_dist_from_samples("rows.csv", 2, MD, X, &D) == SL_OK);
    expect_marginal_error(D, MK, U, SL_EUNSUPPORTED, "no closed-form marginal");
    sl_dist_free(D);
}
END_TEST

static Suite *dist_gauss_suite(void) {
    Suite *s = suite_create("dist_gauss");
    TCase *tc = tcase_create("gauss");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_gauss_standard);
    tcase_add_test(tc, test_gauss_file_moments);
    tcase_add_test(tc, test_gauss_file_density_and_scores);
    tcase_add_test(tc, test_gmm2_responsibilities);
    tcase_add_test(tc, test_gmm_density_and_moments);
    tcase_add_test(tc, test_gmm_scores_fd);
    tcase_add_test(tc, test_student_density);
    tcase_add_test(tc, test_student_scores_fd);
    tcase_add_test(tc, test_student_covariance);
    tcase_add_test(tc, test_large_m_scratch);
    tcase_add_test(tc, test_student_rejects_bad_nu);
    tcase_add_test(tc, test_bad_parameter_files);
    tcase_add_test(tc, test_agmm_equals_file);
    tcase_add_test(tc, test_agmm_scores_fd);
    const int ncase = (int)(sizeof marginal_cases / sizeof marginal_cases[0]);
    tcase_add_loop_test(tc, test_marginal_scores, 0, ncase);
    tcase_add_loop_test(tc, test_marginal_samples, 0, ncase);
    tcase_add_test(tc, test_marginal_special_cases);
    tcase_add_test(tc, test_marginal_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(dist_gauss_suite());
}
