/* The census (clustering of end points) and the planes (losses on grids). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#include "core/linalg.h"
#include "scoreloss/census.h"
#include "scoreloss/plane.h"
#include "scoreloss/rng.h"
#include "testutil.h"

/* ---- census on synthetic end points ------------------------------------------------ */

#define CK 3
#define CD 4

/* Rows of W permuted by perm, each flipped by sign, plus N(0, noise^2). */
static void perturbed(const double *W, const int *perm, const int *sign, double noise, gsl_rng *r,
                      double *out) {
    for (int i = 0; i < CK; ++i)
        for (int j = 0; j < CD; ++j)
            out[i * CD + j] = sign[i] * W[perm[i] * CD + j] + gsl_ran_gaussian(r, noise);
}

/* Three known critical points: the truth (50 end points, any permutation
 * and sign), a collapsed one with rows 1 and 2 on the same direction (30)
 * and another with a row off every true direction (20), their losses
 * interleaved in the input order. Noise 1e-3 moves err_max by about 1e-6,
 * far below same_tol 0.02; the clusters are 0.3 and more apart. */
START_TEST(census_known_clusters) {
    const double T[CK * CD] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    const double A[CK * CD] = {1, 0, 0, 0, 0.99, 0.1, 0, 0, 0, 0, 1, 0};
    const double B[CK * CD] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0.6, 0.8};
    const size_t R = 100;
    double *W = malloc(R * CK * CD * sizeof *W), *loss = malloc(R * sizeof *loss);
    int *want = malloc(R * sizeof *want);
    gsl_rng *r = sl_rng_alloc(11, 0);
    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                    {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (size_t i = 0; i < R; ++i) {
        const int which = i % 2 == 0 ? 0 : (i % 4 == 1 && i < 80 ? 1 : (i < 80 ? 2 : 1));
        want[i] = which;
        int sign[3];
        for (int a = 0; a < 3; ++a) sign[a] = gsl_rng_uniform(r) < 0.5 ? -1 : 1;
        const double *base = which == 0 ? T : which == 1 ? A : B;
        perturbed(base, perms[i % 6], sign, 1e-3, r, W + i * CK * CD);
        loss[i] = (double)which + 1e-3 * gsl_rng_uniform(r);
    }
    gsl_rng_free(r);
    size_t count[3] = {0, 0, 0};
    for (size_t i = 0; i < R; ++i) count[want[i]]++;
    ck_assert_uint_eq(count[0], 50);

    for (int with_truth = 0; with_truth < 2; ++with_truth) {
        sl_census *c = NULL;
        ck_assert_int_eq(sl_census_compute(NULL, R, CK, CD, W, loss, with_truth ? T : NULL, CK, &c),
                         SL_OK);
        ck_assert_uint_eq(c->npoints, R);
        ck_assert_uint_eq(c->nclusters, 3);
        for (size_t cl = 0; cl < 3; ++cl) {
            ck_assert_uint_eq(c->count[cl], count[cl]);
            ck_assert_int_eq(c->global[cl], cl == 0);
            ck_assert(c->loss[cl] >= (double)cl && c->loss[cl] < (double)cl + 1e-3);
            ck_assert(c->loss_spread[cl] >= 0.0 && c->loss_spread[cl] < 1e-3);
        }
        for (size_t i = 0; i < R; ++i) ck_assert_uint_eq(c->assign[i], (size_t)want[i]);
        ck_assert_uint_eq(c->nglobal, 50);
        ck_assert_double_eq_tol(c->global_fraction, 0.5, 1e-15);
        ck_assert_int_eq(c->have_truth, with_truth);
        if (with_truth) {
            /* err_max of the collapsed point: the second true direction's
             * best |cosine| is 0.1 / |(0.99, 0.1)|; of B: 1 - 0.6 = 0.4;
             * the noise moves them by about 1e-3. */
            ck_assert_double_lt(c->error[0], 1e-4);
            ck_assert_double_lt(fabs(c->error[1] - (1.0 - 0.1 / hypot(0.99, 0.1))), 1e-2);
            ck_assert_double_lt(fabs(c->error[2] - 0.4), 1e-2);
            ck_assert_uint_eq(c->distinct[0], 3);
            ck_assert_uint_eq(c->distinct[1], 2);
        } else {
            ck_assert(isnan(c->error[0]));
        }
        sl_census_free(c);
    }
    /* A global tolerance of 0.5 takes B's cluster (0.4) as global too. */
    sl_census_options o;
    sl_census_options_default(&o);
    o.global_tol = 0.5;
    sl_census *c = NULL;
    ck_assert_int_eq(sl_census_compute(&o, R, CK, CD, W, loss, T, CK, &c), SL_OK);
    ck_assert_uint_eq(c->nglobal, 50 + count[2]);
    sl_census_free(c);
    free(W);
    free(loss);
    free(want);
}
END_TEST

START_TEST(census_invalid) {
    double W[CK * CD] = {0}, loss[1] = {0.0};
    sl_census *c = (sl_census *)&c;
    ck_assert_int_eq(sl_census_compute(NULL, 0, CK, CD, W, loss, NULL, 0, &c), SL_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_int_eq(sl_census_compute(NULL, 1, CK, CD, NULL, loss, NULL, 0, &c), SL_EINVAL);
    loss[0] = NAN;
    W[0] = W[5] = W[10] = 1.0;
    ck_assert_int_eq(sl_census_compute(NULL, 1, CK, CD, W, loss, NULL, 0, &c), SL_ENUMERIC);
    sl_census_options o = {2.0, 0.05};
    loss[0] = 0.0;
    ck_assert_int_eq(sl_census_compute(&o, 1, CK, CD, W, loss, NULL, 0, &c), SL_EINVAL);
    sl_census_free(NULL);
}
END_TEST

/* ---- planes on a known tensor --------------------------------------------------------- */

/* Moments of k = d (2 or 3) with T = c sum_i u_i^(x)4, U = I and unit
 * eigenvalues (so P = I and b = w). The true rows u_i (Utrue, k x k): for
 * k = 2 the axes rotated by angle, for k = 3 random orthonormal rows (seed
 * 5). */
static sl_moments *known_moments_k(size_t k, double c, double angle, double *Utrue) {
    const size_t n = 8, d = k;
    sl_scores *s = NULL;
    ck_assert_int_eq(sl_scores_alloc(n, d, &s), SL_OK);
    double y[8];
    gsl_rng *r = sl_rng_alloc(5, 0);
    for (size_t j = 0; j < n; ++j) {
        y[j] = 1.0;
        for (size_t a = 0; a < d; ++a) s->G[j * d + a] = gsl_ran_gaussian(r, 1.0);
        for (size_t a = 0; a < d * d; ++a) s->H[j * d * d + a] = 0.0;
    }
    sl_moments *m = NULL;
    ck_assert_int_eq(sl_moments_compute(s, y, k, &m), SL_OK);
    sl_scores_free(s);
    /* Overwrite the whitening with the identity and T with the known one. */
    for (size_t a = 0; a < d * k; ++a) m->U[a] = m->P[a] = (a % (k + 1) == 0) ? 1.0 : 0.0;
    for (size_t a = 0; a < k; ++a) m->evals[a] = 1.0;
    if (k == 2) {
        Utrue[0] = cos(angle);
        Utrue[1] = sin(angle);
        Utrue[2] = -sin(angle);
        Utrue[3] = cos(angle);
    } else {
        ck_assert_int_eq(sl_random_orthonormal_rows(k, k, r, Utrue), SL_OK);
    }
    gsl_rng_free(r);
    free(m->T);
    m->T = calloc(k * k * k * k, sizeof *m->T);
    for (size_t i = 0; i < k; ++i) {
        const double *u = Utrue + i * k;
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b < k; ++b)
                for (size_t e = 0; e < k; ++e)
                    for (size_t f = 0; f < k; ++f)
                        m->T[((a * k + b) * k + e) * k + f] += c * u[a] * u[b] * u[e] * u[f];
    }
    ck_assert_int_eq(sl_moments_signal(m), SL_OK);
    return m;
}

static sl_moments *known_moments(double c, double angle, double *Utrue) {
    return known_moments_k(2, c, angle, Utrue);
}

/* On the angle square the landscape loss (mu 0.5, sign -1) is smallest at
 * the true angles (0.4, 0.4 + pi/2) and their swap, where its value is
 * s (-mu sum_j c) = -mu * 2 * |c| = -2 and its angular gradient vanishes;
 * the grid's minimum is the grid point nearest to them. The gradient norm
 * is checked against central differences of the loss (h = 1e-5: error
 * about h^2 times the third derivative, measured below 1e-8). */
START_TEST(plane_angles_truth_is_minimum) {
    double Ut[4];
    const double angle = 0.4;
    sl_moments *m = known_moments(-2.0, angle, Ut);
    sl_landscape_options lo;
    sl_landscape_options_default(&lo);
    lo.sign = -1;
    const size_t G = 60;
    double u[60], f[3600], g[3600];
    for (size_t i = 0; i < G; ++i) u[i] = M_PI * (double)i / (double)G;
    ck_assert_int_eq(sl_plane_landscape_angles(m, &lo, G, u, G, u, f, g), SL_OK);
    size_t best = 0;
    for (size_t p = 1; p < G * G; ++p)
        if (f[p] < f[best]) best = p;
    const double t1 = u[best % G], t2 = u[best / G];
    const double step = M_PI / (double)G;
    const double a1 = angle, a2 = angle + M_PI / 2;
    const int at = (fabs(t1 - a1) <= step / 2 && fabs(t2 - a2) <= step / 2) ||
                   (fabs(t1 - a2) <= step / 2 && fabs(t2 - a1) <= step / 2);
    ck_assert_msg(at, "grid minimum at (%g, %g), truth (%g, %g)", t1, t2, a1, a2);

    /* Exactly at the truth. */
    double fa, ga;
    ck_assert_int_eq(sl_plane_landscape_angles(m, &lo, 1, &a1, 1, &a2, &fa, &ga), SL_OK);
    ck_assert_double_lt(fabs(fa + 2.0), 1e-12);
    ck_assert_double_lt(ga, 1e-12);
    ck_assert_double_lt(fa, f[best] + 1e-15);

    /* Gradient norm against central differences at a generic point. */
    const double p1 = 1.1, p2 = 2.3, h = 1e-5;
    double fp[4], gp[4], f0, g0;
    const double us[2] = {p1 - h, p1 + h}, vs[2] = {p2 - h, p2 + h};
    ck_assert_int_eq(sl_plane_landscape_angles(m, &lo, 1, &p1, 1, &p2, &f0, &g0), SL_OK);
    ck_assert_int_eq(sl_plane_landscape_angles(m, &lo, 2, us, 1, &p2, fp, gp), SL_OK);
    ck_assert_int_eq(sl_plane_landscape_angles(m, &lo, 1, &p1, 2, vs, fp + 2, gp + 2), SL_OK);
    const double du = (fp[1] - fp[0]) / (2 * h), dv = (fp[3] - fp[2]) / (2 * h);
    ck_assert_double_lt(fabs(g0 - hypot(du, dv)), 1e-8);
    sl_moments_free(m);
}
END_TEST

/* Through the truth on a random tangent plane: the centre is the grid's
 * minimum, with loss -mu k |c| and zero tangent gradient, on the sphere
 * (k = 2 and 3) and on the orthonormal matrices (k = 3; for k = 2 they
 * form a circle, which has no plane). */
START_TEST(plane_random_centre_is_minimum) {
    for (size_t k = 2; k <= 3; ++k) {
        double Ut[9], C[9], D1[9], D2[9];
        const size_t kk = k * k;
        sl_moments *m = known_moments_k(k, -2.0, 0.4, Ut);
        sl_landscape_options lo;
        sl_landscape_options_default(&lo);
        lo.sign = -1;
        /* Whitening the true rows gives them as columns (P = I). */
        ck_assert_int_eq(sl_plane_whiten(m, Ut, C), SL_OK);
        for (size_t i = 0; i < k; ++i)
            for (size_t a = 0; a < k; ++a)
                ck_assert_double_lt(fabs(C[a * k + i] - Ut[i * k + a]), 1e-15);
        if (k == 2)
            ck_assert_int_eq(sl_plane_directions(kk, k, SL_PROJ_ORTHONORMAL, C, 3, 0, D1, D2),
                             SL_EINVAL);
        const sl_projection projs[2] = {SL_PROJ_SPHERE, SL_PROJ_ORTHONORMAL};
        for (int pi = 0; pi < (k == 2 ? 1 : 2); ++pi) {
            ck_assert_int_eq(sl_plane_directions(kk, k, projs[pi], C, 3, 0, D1, D2), SL_OK);
            ck_assert_double_lt(fabs(cblas_ddot((int)kk, D1, 1, D2, 1)), 1e-12);
            ck_assert_double_lt(fabs(cblas_dnrm2((int)kk, D1, 1) - sqrt((double)k)), 1e-12);
            const size_t G = 21; /* odd: the centre is a grid point */
            double u[21], f[441], g[441];
            for (size_t i = 0; i < G; ++i) u[i] = -0.5 + (double)i / (double)(G - 1);
            ck_assert_int_eq(sl_plane_landscape(m, &lo, projs[pi], C, D1, D2, G, u, G, u, f, g),
                             SL_OK);
            const size_t centre = (G / 2) * G + G / 2;
            ck_assert_double_lt(fabs(f[centre] + 0.5 * (double)k * 2.0), 1e-12);
            ck_assert_double_lt(g[centre], 1e-12);
            for (size_t p = 0; p < G * G; ++p) {
                ck_assert(isfinite(f[p]) && isfinite(g[p]));
                if (p != centre) ck_assert_double_gt(f[p], f[centre]);
            }
        }
        sl_moments_free(m);
    }
}
END_TEST

/* The squared loss through the planted network (no noise): zero with zero
 * gradient at the centre, positive elsewhere; the profiled loss on the
 * angle square is zero at the true angles. Relu, d = k = 2, n = 500. */
START_TEST(plane_l2_truth) {
    const size_t n = 500, d = 2, k = 2, np = k * d + k;
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y);
    double Ut[4];
    sl_moments *m = known_moments(-2.0, 0.4, Ut);
    gsl_rng *r = sl_rng_alloc(9, 0);
    for (size_t j = 0; j < n; ++j) {
        y[j] = 0.0;
        for (size_t a = 0; a < d; ++a) X[j * d + a] = gsl_ran_gaussian(r, 1.0);
        for (size_t i = 0; i < k; ++i)
            y[j] += fmax(0.0, cblas_ddot(2, Ut + i * 2, 1, X + j * d, 1));
    }
    gsl_rng_free(r);
    double C[6] = {Ut[0], Ut[1], Ut[2], Ut[3], 1.0, 1.0}, D1[6], D2[6];
    ck_assert_int_eq(sl_plane_directions(np, k, SL_PROJ_NONE, C, 4, 0, D1, D2), SL_OK);
    double u[5] = {-0.4, -0.2, 0.0, 0.2, 0.4}, f[25], g[25];
    ck_assert_int_eq(sl_plane_l2(n, d, X, y, k, SL_ACT_RELU, C, D1, D2, 5, u, 5, u, f, g), SL_OK);
    ck_assert_double_lt(f[12], 1e-28);
    ck_assert_double_lt(g[12], 1e-14);
    for (size_t p = 0; p < 25; ++p)
        if (p != 12) ck_assert_double_gt(f[p], 1e-4);
    /* Profiled on the angles (the whitening is the identity, so the angles
     * of the rows are those of the columns). */
    const double a1 = 0.4, a2 = 0.4 + M_PI / 2, off = 1.0;
    double fa, ga, fo, go;
    ck_assert_int_eq(sl_plane_l2_angles(m, n, X, y, SL_ACT_RELU, 1, &a1, 1, &a2, &fa, &ga), SL_OK);
    ck_assert_double_lt(fa, 1e-24);
    ck_assert_double_lt(ga, 1e-10);
    ck_assert_int_eq(sl_plane_l2_angles(m, n, X, y, SL_ACT_RELU, 1, &a1, 1, &off, &fo, &go), SL_OK);
    ck_assert_double_gt(fo, 1e-3);
    sl_moments_free(m);
    free(X);
    free(y);
}
END_TEST

/* sl_plane_moments on data: the automatic route of exact Gaussian scores is
 * the full one, T is computed, and whitening then unwhitening the truth
 * gives rows parallel to it (rounding only). Gauss d = k = 2, n = 4000. */
START_TEST(plane_moments_pipeline) {
    const size_t n = 4000, d = 2;
    sl_dist *dist = NULL;
    ck_assert_int_eq(sl_dist_from_spec("gauss", d, &dist), SL_OK);
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y);
    ck_assert_int_eq(sl_dist_sample(dist, 21, n, X), SL_OK);
    sl_network *net = NULL;
    ck_assert_int_eq(sl_network_alloc(2, d, SL_ACT_RELU, &net), SL_OK);
    ck_assert_int_eq(sl_network_set_w(net, "orthonormal", 21), SL_OK);
    ck_assert_int_eq(sl_network_set_a(net, "ones", 21), SL_OK);
    ck_assert_int_eq(sl_network_predict(net, n, X, y), SL_OK);
    sl_recover_options o;
    sl_recover_options_default(&o);
    o.k = 2;
    o.score = &sl_score_exact;
    o.score_opt.dist = dist;
    sl_moments *m = NULL;
    sl_recover_route route;
    ck_assert_int_eq(sl_plane_moments(&o, n, d, X, y, &m, &route), SL_OK);
    ck_assert_int_eq(route, SL_ROUTE_FULL);
    ck_assert_ptr_nonnull(m->T);
    double B[4], W[4];
    ck_assert_int_eq(sl_plane_whiten(m, net->W, B), SL_OK);
    ck_assert_int_eq(sl_plane_unwhiten(m, B, W), SL_OK);
    for (size_t i = 0; i < 2; ++i) {
        const double c = cblas_ddot(2, W + i * 2, 1, net->W + i * 2, 1) /
                         (cblas_dnrm2(2, W + i * 2, 1) * cblas_dnrm2(2, net->W + i * 2, 1));
        ck_assert_double_lt(fabs(c - 1.0), 1e-12);
    }
    sl_moments_free(m);
    sl_network_free(net);
    sl_dist_free(dist);
    free(X);
    free(y);
}
END_TEST

/* End to end: one recovery with 12 restarts on Gaussian d = k = 2 (exact
 * scores, landscape loss, orthonormal columns) clusters into one global
 * minimum (measured: all 12 restarts at err_max 0.006). */
START_TEST(census_run_gauss) {
    const size_t n = 4000, d = 2;
    sl_dist *dist = NULL;
    ck_assert_int_eq(sl_dist_from_spec("gauss", d, &dist), SL_OK);
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y);
    ck_assert_int_eq(sl_dist_sample(dist, 22, n, X), SL_OK);
    sl_network *net = NULL;
    ck_assert_int_eq(sl_network_alloc(2, d, SL_ACT_RELU, &net), SL_OK);
    ck_assert_int_eq(sl_network_set_w(net, "orthonormal", 22), SL_OK);
    ck_assert_int_eq(sl_network_set_a(net, "ones", 22), SL_OK);
    ck_assert_int_eq(sl_network_predict(net, n, X, y), SL_OK);
    sl_recover_options o;
    sl_recover_options_default(&o);
    o.k = 2;
    o.score = &sl_score_exact;
    o.score_opt.dist = dist;
    o.sgd.restarts = 12;
    o.holdout = 0.0;
    o.truth = net;
    sl_census *c = NULL;
    sl_recover_result *res = NULL;
    ck_assert_int_eq(sl_census_run(&o, NULL, n, d, X, y, &c, &res), SL_OK);
    ck_assert_uint_eq(c->npoints, 12);
    ck_assert_uint_eq(c->nclusters, 1);
    ck_assert_double_eq(c->global_fraction, 1.0);
    ck_assert_double_lt(c->error[0], 0.05);
    ck_assert_ptr_nonnull(res);
    sl_recover_result_free(res);
    sl_census_free(c);
    sl_network_free(net);
    sl_dist_free(dist);
    free(X);
    free(y);
}
END_TEST

START_TEST(plane_invalid) {
    double Ut[4];
    sl_moments *m = known_moments(-2.0, 0.4, Ut);
    sl_landscape_options lo;
    sl_landscape_options_default(&lo);
    lo.sign = -1;
    double u[2] = {0, 1}, f[4], g[4], C[4] = {1, 0, 0, 1}, D[4] = {0};
    ck_assert_int_eq(sl_plane_landscape_angles(m, &lo, 0, u, 2, u, f, g), SL_EINVAL);
    ck_assert_int_eq(sl_plane_landscape(m, &lo, SL_PROJ_SPHERE, C, D, D, 2, u, 2, NULL, f, g),
                     SL_EINVAL);
    /* Directions through two equal points. */
    double D1[4] = {0}, D2[4];
    ck_assert_int_eq(sl_plane_directions(4, 2, SL_PROJ_SPHERE, C, 1, 1, D1, D2), SL_EINVAL);
    sl_moments_free(m);
}
END_TEST

static Suite *census_suite(void) {
    Suite *s = suite_create("census");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, census_known_clusters);
    tcase_add_test(tc, census_invalid);
    tcase_add_test(tc, plane_angles_truth_is_minimum);
    tcase_add_test(tc, plane_random_centre_is_minimum);
    tcase_add_test(tc, plane_l2_truth);
    tcase_add_test(tc, plane_moments_pipeline);
    tcase_add_test(tc, census_run_gauss);
    tcase_add_test(tc, plane_invalid);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(census_suite());
}
