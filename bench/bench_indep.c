/* The factorised fourth-order score of independent coordinates: accuracy
 * and time (METHOD.md section 4b).
 *
 * 1. The 1-D local log-polynomial fit of one logistic coordinate: relative
 *    RMS errors of l', l'', l''', l'''' at the samples against the exact
 *    values (all samples, and those inside the central 99%), the chosen
 *    bandwidth, the fit time.
 * 2. Product logistic, d = 10, k = 5, random W, ReLU, a = 1: the whitened
 *    fourth moment T from the factorised fit (sl_moments_tensor_indep)
 *    against the exact T in the same whitening (sl_moments_tensor_dist with
 *    V = the fit's P), as a relative Frobenius error, and beside it the
 *    locally quadratic T from the exact g and H against the exact T in the
 *    exact scores' whitening (the best any (g, H) estimator can do), and
 *    the exact (g, H) with the fit's third and fourth derivatives.
 * 3. Recovery by the landscape loss on each T (orthonormal columns, 4
 *    restarts of 2000 steps), mapped back with U |Lambda|^{1/2}: the
 *    factorised T, the locally quadratic T from the exact (g, H), the exact T.
 *
 * Usage: bench_indep [N [SEED [H_SCALE [RIDGE [NGRID [all|1d [DEGREE [W]]]]]]]]
 * (defaults 1e5, 1, 0.4, 20, 1024, all, 5, random: the library defaults; 1d: part 1 only; W as
 * sl_network_set_w takes it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scoreloss/logdens.h"
#include "scoreloss/network.h"
#include "scoreloss/recover.h"
#include "scoreloss/sgd.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void logistic_derivs(double x, double phi[4]) {
    const double t = exp(-fabs(x)), q = t / ((1.0 + t) * (1.0 + t)), s = -tanh(0.5 * x);
    phi[0] = s;
    phi[1] = -2.0 * q;
    phi[2] = -2.0 * q * s;
    phi[3] = -2.0 * q * (1.0 - 6.0 * q);
}

static double frob_rel(size_t len, const double *A, const double *B) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < len; ++i) {
        num += (A[i] - B[i]) * (A[i] - B[i]);
        den += B[i] * B[i];
    }
    return sqrt(num / den);
}

#define CHECK(call)                                                                                \
    do {                                                                                           \
        sl_status st_ = (call);                                                                    \
        if (st_) {                                                                                 \
            fprintf(stderr, "bench_indep: %s\n", sl_last_error());                                 \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Recovery from the moments m whose T is set: the landscape loss on T
 * (orthonormal columns, 4 restarts, 2000 steps each), mapped back with
 * U |Lambda|^{1/2}, against the planted rows. */
static sl_status recover_from(sl_moments *m, const sl_network *net, uint64_t seed,
                              sl_recovery_error *err) {
    const size_t k = m->k, d = m->d;
    sl_landscape_options lo;
    sl_landscape_options_default(&lo);
    lo.tensor = 1;
    sl_landscape *L = NULL;
    sl_status st = sl_landscape_alloc(m, &lo, 1, &L);
    if (st) return st;
    sl_sgd_options so;
    sl_sgd_options_default(&so);
    so.projection = SL_PROJ_ORTHONORMAL;
    so.rows = so.cols = k;
    so.batch = 1;
    so.epochs = 20;
    so.restarts = 4;
    so.seed = seed;
    sl_sgd_result *r = NULL;
    st = sl_sgd_minimize(&so, sl_landscape_objective, L, 100, k * k, NULL, &r);
    if (!st) {
        double *W = malloc(k * d * sizeof *W);
        if (!W) st = sl_error(SL_ENOMEM, "out of memory");
        /* w_p = U |Lambda|^{1/2} b_p (b_p: column p of B). */
        for (size_t p = 0; !st && p < k; ++p)
            for (size_t a = 0; a < d; ++a) {
                double v = 0.0;
                for (size_t c = 0; c < k; ++c)
                    v += m->U[a * k + c] * sqrt(fabs(m->evals[c])) * r->x[c * k + p];
                W[p * d + a] = v;
            }
        if (!st) st = sl_recovery_error_compute(k, k, d, W, net->W, err);
        free(W);
    }
    sl_sgd_result_free(r);
    sl_landscape_free(L);
    return st;
}

int main(int argc, char **argv) {
    const size_t n = argc > 1 ? (size_t)atof(argv[1]) : 100000;
    const uint64_t seed = argc > 2 ? (uint64_t)atoi(argv[2]) : 1;
    sl_logdens_options lo;
    sl_logdens_options_default(&lo);
    if (argc > 3) lo.h_scale = atof(argv[3]);
    if (argc > 4) lo.ridge = atof(argv[4]);
    if (argc > 5) lo.ngrid = (size_t)atoi(argv[5]);
    if (argc > 7) lo.degree = (size_t)atoi(argv[7]);
    const char *wspec = argc > 8 ? argv[8] : "random";
    const size_t d = 10, k = 5;

    sl_dist *dist;
    CHECK(sl_dist_from_spec("logistic", d, &dist));
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y);
    if (!X || !y) return 1;
    CHECK(sl_dist_sample(dist, seed, n, X));

    /* 1. One coordinate. */
    double t0 = now();
    sl_logdens1d *f;
    CHECK(sl_logdens1d_fit(&lo, n, X, d, &f));
    const double t_fit = now() - t0;
    double num[2][4] = {{0}}, den[2][4] = {{0}};
    for (size_t j = 0; j < n; ++j) {
        const double x = X[j * d];
        double v[5], e[4];
        sl_logdens1d_eval(f, x, v);
        logistic_derivs(x, e);
        const int inner = fabs(x) < 5.3; /* the central 99% of the logistic */
        for (int m = 0; m < 4; ++m) {
            const double r = v[m + 1] - e[m];
            num[0][m] += r * r;
            den[0][m] += e[m] * e[m];
            if (inner) {
                num[1][m] += r * r;
                den[1][m] += e[m] * e[m];
            }
        }
    }
    printf("1-D logistic n=%zu degree %zu: h=%.4g (scale %.3g) ridge %.3g ngrid %zu thin %zu "
           "newton<=%zu "
           "time %.3f s\n",
           n, lo.degree, f->h, lo.h_scale, lo.ridge, lo.ngrid, f->thin, f->newton_max, t_fit);
    for (int part = 0; part < 2; ++part)
        printf("  %-12s rel RMS l' %.4f  l'' %.4f  l''' %.4f  l'''' %.4f\n",
               part ? "|x| < 5.3" : "all", sqrt(num[part][0] / den[part][0]),
               sqrt(num[part][1] / den[part][1]), sqrt(num[part][2] / den[part][2]),
               sqrt(num[part][3] / den[part][3]));
    sl_logdens1d_free(f);
    if (argc > 6 && strcmp(argv[6], "1d") == 0) {
        free(X);
        free(y);
        sl_dist_free(dist);
        return 0;
    }

    /* 2. The whitened fourth moment. */
    sl_network *net;
    CHECK(sl_network_alloc(k, d, SL_ACT_RELU, &net));
    CHECK(sl_network_set_w(net, wspec, seed + 1));
    CHECK(sl_network_predict(net, n, X, y));

    t0 = now();
    sl_indep_fit *fit;
    CHECK(sl_indep_fit_compute(&lo, n, d, X, &fit));
    const double t_fits = now() - t0;
    sl_scores *s;
    CHECK(sl_scores_alloc(n, d, &s));
    t0 = now();
    CHECK(sl_indep_fit_scores(fit, n, X, s));
    const double t_scores = now() - t0;
    sl_moments *m;
    t0 = now();
    CHECK(sl_moments_compute(s, y, k, &m));
    const double t_mom = now() - t0;
    t0 = now();
    CHECK(sl_moments_tensor_indep(m, n, d, X, fit));
    const double t_tensor = now() - t0;
    sl_recovery_error rec_indep, rec_quad;
    CHECK(recover_from(m, net, seed, &rec_indep));
    const size_t k4 = k * k * k * k;
    double *T_est = malloc(k4 * sizeof *T_est), *T_quad = malloc(k4 * sizeof *T_quad);
    memcpy(T_est, m->T, k4 * sizeof *T_est);
    CHECK(sl_moments_tensor(m));
    memcpy(T_quad, m->T, k4 * sizeof *T_quad);
    CHECK(sl_moments_tensor_dist(m, dist, X, m->P));
    const double e_indep = frob_rel(k4, T_est, m->T), e_quad_fit = frob_rel(k4, T_quad, m->T);
    double hmin = INFINITY, hmax = 0.0;
    size_t thin = 0;
    for (size_t i = 0; i < d; ++i) {
        if (fit->coord[i]->h < hmin) hmin = fit->coord[i]->h;
        if (fit->coord[i]->h > hmax) hmax = fit->coord[i]->h;
        thin += fit->coord[i]->thin;
    }

    /* The exact scores' M2 and whitening, and the locally quadratic T there. */
    sl_scores *se;
    CHECK(sl_scores_alloc(n, d, &se));
    CHECK(sl_dist_grad_hess(dist, n, X, se->G, se->H));
    sl_moments *me;
    CHECK(sl_moments_compute(se, y, k, &me));
    CHECK(sl_moments_tensor(me));
    memcpy(T_quad, me->T, k4 * sizeof *T_quad);
    CHECK(recover_from(me, net, seed, &rec_quad));
    CHECK(sl_moments_tensor_indep(me, n, d, X, fit));
    memcpy(T_est, me->T, k4 * sizeof *T_est);
    CHECK(sl_moments_tensor_dist(me, dist, X, me->P));
    const double e_quad_exact = frob_rel(k4, T_quad, me->T);
    const double e_hybrid = frob_rel(k4, T_est, me->T);
    sl_recovery_error rec_exact;
    CHECK(recover_from(me, net, seed, &rec_exact));
    /* The estimated whitening against the exact one: the subspaces' largest
     * principal angle, as 1 - the smallest singular value of U_est' U_exact
     * bounded by the Frobenius residual of the projection. */
    double resid = 0.0;
    for (size_t a = 0; a < d; ++a)
        for (size_t c = 0; c < k; ++c) {
            double proj = 0.0;
            for (size_t b = 0; b < d; ++b) {
                double uu = 0.0;
                for (size_t e = 0; e < k; ++e) uu += me->U[a * k + e] * me->U[b * k + e];
                proj += uu * m->U[b * k + c];
            }
            resid += (m->U[a * k + c] - proj) * (m->U[a * k + c] - proj);
        }

    printf(
        "T product logistic d=%zu k=%zu n=%zu W %s seed %llu: fits h in [%.3g, %.3g], thin samples "
        "%zu (over all coordinates)\n",
        d, k, n, wspec, (unsigned long long)seed, hmin, hmax, thin);
    printf("  factorised T vs exact T (same whitening): rel Frobenius %.4f\n", e_indep);
    printf("  quadratic T from the fit's (g, H) vs exact T: %.4f\n", e_quad_fit);
    printf("  quadratic T from the exact (g, H) vs exact T: %.4f\n", e_quad_exact);
    printf("  exact (g, H), the fit's third and fourth derivatives vs exact T: %.4f\n", e_hybrid);
    printf("  span(U) of the fit's M2 vs the exact scores' M2: |U - U_ex U_ex' U|_F = %.4f\n",
           sqrt(resid));
    printf("  recovery (landscape on T, orthonormal): factorised err_max %.4f (distinct %zu), "
           "quadratic T from the exact (g, H) err_max %.4f (distinct %zu)\n",
           rec_indep.err_max, rec_indep.distinct, rec_quad.err_max, rec_quad.distinct);
    printf("  recovery from the exact T (exact scores' whitening): err_max %.4f (distinct %zu)\n",
           rec_exact.err_max, rec_exact.distinct);
    printf("  M2 eigenvalues (fit | exact scores):");
    for (size_t i = 0; i <= k; ++i) printf(" %.4g|%.4g", m->evals[i], me->evals[i]);
    printf("\n");
    printf("  seconds: fits %.3f (%.3f per coordinate), scores %.3f, moments %.3f, T %.3f\n",
           t_fits, t_fits / (double)d, t_scores, t_mom, t_tensor);

    sl_moments_free(me);
    sl_scores_free(se);
    sl_moments_free(m);
    sl_scores_free(s);
    sl_indep_fit_free(fit);
    sl_network_free(net);
    sl_dist_free(dist);
    free(T_est);
    free(T_quad);
    free(X);
    free(y);
    return 0;
}
