/* SGD: optimisers on objectives with known minima, projections, restarts,
 * stopping rules, determinism, errors and the trace file. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_poly.h>
#include <gsl/gsl_randist.h>
#include <lapacke.h>

#include "core/linalg.h"
#include "scoreloss/csv.h"
#include "scoreloss/rng.h"
#include "scoreloss/sgd.h"
#include "testutil.h"

/* ---- least squares: f = mean over the batch of (a_i . x - y_i)^2 / 2 ------ */

#define LS_N 2000
#define LS_D 5

typedef struct ls_problem {
    size_t n, d;
    double *A, *y;         /* n x d design, n responses */
    double H[LS_D * LS_D]; /* Hessian A'A / n */
    double xhat[LS_D];     /* normal-equations solution */
    double lmin, lmax;     /* extreme eigenvalues of H */
    double sigma;          /* residual standard deviation at xhat */
} ls_problem;

static double ls_objective(size_t np, const double *x, double *grad, const size_t *batch, size_t nb,
                           void *data) {
    const ls_problem *p = data;
    double loss = 0.0;
    if (grad) memset(grad, 0, np * sizeof *grad);
    for (size_t k = 0; k < nb; ++k) {
        const double *a = p->A + batch[k] * p->d;
        double r = cblas_ddot((int)np, a, 1, x, 1) - p->y[batch[k]];
        loss += 0.5 * r * r;
        if (grad) cblas_daxpy((int)np, r, a, 1, grad, 1);
    }
    if (grad) cblas_dscal((int)np, 1.0 / (double)nb, grad, 1);
    return loss / (double)nb;
}

/* Columns of the design scaled by (1, 0.8, 0.6, 0.4, 0.3), so H is far from
 * the identity (condition number about 11) and plain GD has work to do. */
static ls_problem *ls_make(uint64_t seed, double noise) {
    static const double scale[LS_D] = {1.0, 0.8, 0.6, 0.4, 0.3};
    static const double truth[LS_D] = {1.0, -0.5, 0.25, 2.0, -1.0};
    ls_problem *p = calloc(1, sizeof *p);
    p->n = LS_N;
    p->d = LS_D;
    p->A = malloc(LS_N * LS_D * sizeof *p->A);
    p->y = malloc(LS_N * sizeof *p->y);
    gsl_rng *rng = sl_rng_alloc(seed, 0);
    for (size_t i = 0; i < LS_N; ++i) {
        double yi = 0.0;
        for (size_t j = 0; j < LS_D; ++j) {
            p->A[i * LS_D + j] = scale[j] * gsl_ran_gaussian(rng, 1.0);
            yi += p->A[i * LS_D + j] * truth[j];
        }
        p->y[i] = yi + gsl_ran_gaussian(rng, noise);
    }
    gsl_rng_free(rng);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, LS_D, LS_D, LS_N, 1.0 / LS_N, p->A, LS_D,
                p->A, LS_D, 0.0, p->H, LS_D);
    cblas_dgemv(CblasRowMajor, CblasTrans, LS_N, LS_D, 1.0 / LS_N, p->A, LS_D, p->y, 1, 0.0,
                p->xhat, 1);
    double chol[LS_D * LS_D];
    memcpy(chol, p->H, sizeof chol);
    ck_assert_int_eq(LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', LS_D, 1, chol, LS_D, p->xhat, 1), 0);
    double w[LS_D], V[LS_D * LS_D];
    ck_assert_int_eq(sl_sym_eigen(LS_D, p->H, w, V), SL_OK);
    p->lmax = w[0];
    p->lmin = w[LS_D - 1];
    double rss = 0.0;
    for (size_t i = 0; i < LS_N; ++i) {
        double r = cblas_ddot(LS_D, p->A + i * LS_D, 1, p->xhat, 1) - p->y[i];
        rss += r * r;
    }
    p->sigma = sqrt(rss / (LS_N - LS_D));
    return p;
}

static void ls_free(ls_problem *p) {
    free(p->A);
    free(p->y);
    free(p);
}

static double dist(size_t n, const double *a, const double *b) {
    double s = 0.0;
    for (size_t i = 0; i < n; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

static double ls_monitor(size_t np, const double *x, void *data) {
    const ls_problem *p = data;
    return dist(np, x, p->xhat);
}

/* Full-batch plain GD, cosine schedule. For a quadratic, the error after
 * step t is multiplied by (I - lr_t H), so ||x_T - xhat|| <= prod_t max_i
 * |1 - lr_t lambda_i| * ||x_0 - xhat||: the bound, computed from H's
 * eigenvalues, must itself be below 1e-6 and the run must meet it. */
START_TEST(ls_full_batch_plain) {
    ls_problem *p = ls_make(101, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_PLAIN;
    opt.schedule = SL_LR_COSINE;
    opt.lr = 1.0 / p->lmax; /* the fastest stable constant step for the stiffest direction */
    opt.batch = LS_N;
    opt.epochs = 400;
    double x0[LS_D] = {0};
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, x0, &r), SL_OK);
    double bound = dist(LS_D, x0, p->xhat);
    for (size_t t = 0; t < opt.epochs; ++t) {
        double lr = opt.lr * 0.5 * (1.0 + cos(M_PI * (double)t / (double)opt.epochs));
        double f1 = fabs(1.0 - lr * p->lmin), f2 = fabs(1.0 - lr * p->lmax);
        bound *= f1 > f2 ? f1 : f2;
    }
    ck_assert_double_lt(bound, 1e-6);
    double err = dist(LS_D, r->x, p->xhat);
    /* Rounding in the gradient sums: ~ n eps |g terms| / lambda_min. */
    ck_assert_double_le(err, bound + 1e-12);
    ck_assert_str_eq(r->stop_reason, "epochs");
    ck_assert_uint_eq(r->steps, opt.epochs);
    ck_assert_uint_eq(r->ntrace, opt.epochs); /* log_every = 0: epoch rows only */
    sl_sgd_result_free(r);
    ls_free(p);
}
END_TEST

/* Heavy ball with lr = 1 and sqrt(momentum) >= 1 - sqrt(lambda_min): every
 * mode then contracts at rate sqrt(momentum) per step (Polyak), so 400 steps
 * take the error far below 1e-6 whatever the (modest) constant. */
START_TEST(ls_full_batch_momentum) {
    ls_problem *p = ls_make(102, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_MOMENTUM;
    opt.lr = 1.0;
    double root = 1.0 - 0.9 * sqrt(p->lmin);
    opt.momentum = root * root;
    ck_assert_double_lt(p->lmax, (1.0 + root) * (1.0 + root)); /* inside the stable band */
    opt.batch = LS_N;
    opt.epochs = 400;
    ck_assert_double_lt(pow(root, (double)opt.epochs) * 1e3, 1e-6);
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &r), SL_OK);
    ck_assert_double_lt(dist(LS_D, r->x, p->xhat), 1e-6);
    sl_sgd_result_free(r);
    ls_free(p);
}
END_TEST

/* Minibatch Adam at a constant lr ends at a random point near xhat. Near the
 * optimum Adam's second moment tracks the per-coordinate gradient noise
 * sigma^2 H_ii / B, so it acts as SGD with step p_i = lr sqrt(B) / (sigma
 * sqrt(H_ii)) (the beta1 average changes the dynamics, not the stationary
 * spread to first order). With-replacement SGD then has stationary variance
 * p_i sigma^2 / (2 B) = lr sigma / (2 sqrt(B H_ii)) per coordinate; random
 * reshuffling is no noisier (measured over 20 seeds: the rms deviation is
 * 0.12 to 0.26 of this sd). Each coordinate must be within 5 of those
 * standard deviations of xhat. */
START_TEST(ls_minibatch_adam) {
    ls_problem *p = ls_make(103, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_ADAM;
    opt.lr = 1e-3;
    opt.batch = 50;
    opt.epochs = 200; /* 8000 steps: see the check on the transient below */
    opt.seed = 7;
    double x0[LS_D] = {0};
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, x0, &r), SL_OK);
    for (size_t i = 0; i < LS_D; ++i) {
        double hii = p->H[i * LS_D + i];
        /* The transient: Adam moves a coordinate by about lr per step while
         * the mean gradient dominates the noise, so reaching xhat takes
         * |xhat_i - x0_i| / lr steps; then the linear regime relaxes at rate
         * p_i H_ii per step. Leave at least 10 relaxation times. */
        double relax = opt.lr * sqrt((double)opt.batch * hii) / p->sigma;
        ck_assert_double_gt((double)r->steps, fabs(p->xhat[i] - x0[i]) / opt.lr + 10.0 / relax);
        double sd = sqrt(opt.lr * p->sigma / (2.0 * sqrt((double)opt.batch * hii)));
        ck_assert_msg(fabs(r->x[i] - p->xhat[i]) < 5.0 * sd, "coordinate %zu: %g from xhat, sd %g",
                      i, fabs(r->x[i] - p->xhat[i]), sd);
    }
    ck_assert_uint_eq(r->steps, opt.epochs * (LS_N / opt.batch));
    sl_sgd_result_free(r);
    ls_free(p);
}
END_TEST

/* ---- trace(B'AB) over the sphere / Stiefel manifold --------------------- */

typedef struct quad_problem {
    size_t rows, cols;
    double A[36];
    double w[6], V[36]; /* sl_sym_eigen: descending eigenvalues, eigenvectors in columns */
} quad_problem;

static double quad_objective(size_t np, const double *x, double *grad, const size_t *batch,
                             size_t nb, void *data) {
    (void)np;
    (void)batch;
    (void)nb;
    const quad_problem *q = data;
    const int r = (int)q->rows, c = (int)q->cols;
    double AB[36];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, c, r, 1.0, q->A, r, x, c, 0.0, AB, c);
    if (grad)
        for (int i = 0; i < r * c; ++i) grad[i] = 2.0 * AB[i];
    return cblas_ddot(r * c, x, 1, AB, 1);
}

/* A = Q diag(1..6) Q' with a fixed random rotation: eigen-gaps of 1. */
static void quad_make(quad_problem *q, size_t cols) {
    q->rows = 6;
    q->cols = cols;
    double Q[36], QD[36];
    gsl_rng *rng = sl_rng_alloc(2024, 0);
    ck_assert_int_eq(sl_random_orthonormal_rows(6, 6, rng, Q), SL_OK);
    gsl_rng_free(rng);
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 6; ++j) QD[i * 6 + j] = Q[i * 6 + j] * (double)(j + 1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 6, 6, 6, 1.0, QD, 6, Q, 6, 0.0, q->A, 6);
    for (int i = 0; i < 6; ++i)
        for (int j = 0; j < i; ++j)
            q->A[i * 6 + j] = q->A[j * 6 + i] = 0.5 * (q->A[i * 6 + j] + q->A[j * 6 + i]);
    ck_assert_int_eq(sl_sym_eigen(6, q->A, q->w, q->V), SL_OK);
    for (int i = 0; i < 6; ++i) ck_assert_double_lt(fabs(q->w[i] - (6.0 - i)), 1e-12);
}

/* Riemannian GD on the sphere near the bottom eigenvector v1 multiplies the
 * v_k component by 1 - 2 lr (lambda_k - lambda_1): with lr = 0.1 and gaps
 * 1..5 that is at most 0.8 per step, so 500 steps leave nothing. */
START_TEST(rayleigh_sphere) {
    quad_problem q;
    quad_make(&q, 1);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_PLAIN;
    opt.lr = 0.1;
    opt.batch = 1;
    opt.epochs = 500;
    opt.projection = SL_PROJ_SPHERE;
    opt.rows = 6;
    opt.cols = 1;
    opt.seed = 3;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, quad_objective, &q, 1, 6, NULL, &r), SL_OK);
    double c = 0.0;
    for (int i = 0; i < 6; ++i) c += r->x[i] * q.V[i * 6 + 5];
    ck_assert_double_gt(fabs(c), 1.0 - 1e-8);
    ck_assert_double_lt(fabs(cblas_dnrm2(6, r->x, 1) - 1.0), 1e-14);
    ck_assert_double_lt(fabs(r->loss - q.w[5]), 1e-12);
    /* The recorded gradient is the tangent one, which vanishes at the minimum. */
    ck_assert_double_lt(r->trace[r->ntrace - 1].grad_norm, 1e-10);
    sl_sgd_result_free(r);
}
END_TEST

/* Orthonormal 6 x 3: trace(B'AB) is smallest on the bottom-3 eigenspace.
 * The sines of the principal angles between span(B) and that space are the
 * singular values of V_top' B (V_top the top-3 eigenvectors); the slowest
 * mode contracts by 1 - 2 lr (lambda_4 - lambda_3) = 0.8 per step. */
START_TEST(trace_stiefel) {
    quad_problem q;
    quad_make(&q, 3);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_PLAIN;
    opt.lr = 0.1;
    opt.batch = 1;
    opt.epochs = 500;
    opt.projection = SL_PROJ_ORTHONORMAL;
    opt.rows = 6;
    opt.cols = 3;
    opt.seed = 5;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, quad_objective, &q, 1, 18, NULL, &r), SL_OK);
    double BtB[9];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 3, 3, 6, 1.0, r->x, 3, r->x, 3, 0.0, BtB,
                3);
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) ck_assert_double_lt(fabs(BtB[i * 3 + j] - (i == j)), 1e-14);
    double C[9], s[3];
    /* C = V_top' B, V_top = the first three columns of V. */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 3, 3, 6, 1.0, q.V, 6, r->x, 3, 0.0, C, 3);
    ck_assert_int_eq(sl_svd(3, 3, C, s, NULL, NULL), SL_OK);
    ck_assert_double_lt(asin(s[0] < 1.0 ? s[0] : 1.0), 1e-6);
    ck_assert_double_lt(fabs(r->loss - (q.w[3] + q.w[4] + q.w[5])), 1e-10);
    sl_sgd_result_free(r);
}
END_TEST

/* ---- projections ------------------------------------------------------- */

static void random_matrix(uint64_t seed, size_t n, double *x) {
    gsl_rng *rng = sl_rng_alloc(seed, 0);
    for (size_t i = 0; i < n; ++i) x[i] = gsl_ran_gaussian(rng, 1.0);
    gsl_rng_free(rng);
}

START_TEST(project_sphere) {
    enum { R = 7, C = 4 };
    double x[R * C], y[R * C];
    random_matrix(11, R * C, x);
    memcpy(y, x, sizeof x);
    ck_assert_int_eq(sl_project_columns(SL_PROJ_SPHERE, R, C, y), SL_OK);
    for (int j = 0; j < C; ++j) {
        double norm = cblas_dnrm2(R, y + j, C), orig = cblas_dnrm2(R, x + j, C);
        ck_assert_double_lt(fabs(norm - 1.0), 1e-14);
        /* Same direction: only the length changes. */
        ck_assert_double_lt(fabs(cblas_ddot(R, y + j, C, x + j, C) / orig - 1.0), 1e-14);
    }
    double zero[R * C];
    memcpy(zero, x, sizeof x);
    for (int i = 0; i < R; ++i) zero[i * C + 2] = 0.0;
    ck_assert_int_eq(sl_project_columns(SL_PROJ_SPHERE, R, C, zero), SL_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "column 3"));
    /* NONE leaves the matrix alone. */
    memcpy(y, x, sizeof x);
    ck_assert_int_eq(sl_project_columns(SL_PROJ_NONE, R, C, y), SL_OK);
    ck_assert_int_eq(memcmp(x, y, sizeof x), 0);
}
END_TEST

static double max_offdiag_identity(size_t r, size_t c, const double *q) {
    double g[64], worst = 0.0;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)c, (int)c, (int)r, 1.0, q, (int)c, q,
                (int)c, 0.0, g, (int)c);
    for (size_t i = 0; i < c; ++i)
        for (size_t j = 0; j < c; ++j) {
            double e = fabs(g[i * c + j] - (i == j ? 1.0 : 0.0));
            if (e > worst) worst = e;
        }
    return worst;
}

START_TEST(project_orthonormal) {
    enum { R = 7, C = 4 };
    double x[R * C], q[R * C];
    random_matrix(12, R * C, x);
    memcpy(q, x, sizeof x);
    ck_assert_int_eq(sl_project_columns(SL_PROJ_ORTHONORMAL, R, C, q), SL_OK);
    ck_assert_double_lt(max_offdiag_identity(R, C, q), 1e-14);
    /* It is THE Q of x = QR with R's diagonal positive: R = Q'x is upper
     * triangular with a positive diagonal (which makes Q unique). */
    double Rm[C * C];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, C, R, 1.0, q, C, x, C, 0.0, Rm, C);
    for (int i = 0; i < C; ++i) {
        ck_assert_double_gt(Rm[i * C + i], 0.0);
        for (int j = 0; j < i; ++j) ck_assert_double_lt(fabs(Rm[i * C + j]), 1e-13);
    }
    /* An orthonormal matrix is a fixed point, whatever its columns' signs:
     * no column flips (LAPACK's Householder signs alone would flip some). */
    double s[R * C];
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j) s[i * C + j] = (j % 2 ? -1.0 : 1.0) * q[i * C + j];
    double fixed[R * C];
    memcpy(fixed, s, sizeof s);
    ck_assert_int_eq(sl_project_columns(SL_PROJ_ORTHONORMAL, R, C, fixed), SL_OK);
    ck_assert_double_lt(dist(R * C, fixed, s), 1e-14);
    /* Continuity: at an orthonormal X, the Q factor of X + eps E moves by
     * dQ = (I - XX')E + X Omega, Omega skew with lower part that of X'E, so
     * ||dQ||_F <= sqrt(2) ||E||_F to first order. */
    double e[R * C], moved[R * C];
    random_matrix(13, R * C, e);
    const double eps = 1e-7;
    for (int i = 0; i < R * C; ++i) moved[i] = s[i] + eps * e[i];
    ck_assert_int_eq(sl_project_columns(SL_PROJ_ORTHONORMAL, R, C, moved), SL_OK);
    double enorm = cblas_dnrm2(R * C, e, 1);
    ck_assert_double_le(dist(R * C, moved, s), sqrt(2.0) * eps * enorm + 1e-13);
    /* Errors. */
    double wide[12];
    random_matrix(14, 12, wide);
    ck_assert_int_eq(sl_project_columns(SL_PROJ_ORTHONORMAL, 3, 4, wide), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "cols <= rows"));
    ck_assert_int_eq(sl_project_columns(SL_PROJ_SPHERE, 0, 4, wide), SL_EINVAL);
}
END_TEST

/* ---- restarts on a tilted double well ----------------------------------- */

static double well_objective(size_t np, const double *x, double *grad, const size_t *batch,
                             size_t nb, void *data) {
    (void)np;
    (void)batch;
    (void)nb;
    (void)data;
    double u = x[0] * x[0] - 1.0;
    if (grad) grad[0] = 4.0 * x[0] * u + 0.3;
    return u * u + 0.3 * x[0];
}

/* f' = 4 (x^3 - x + 0.075): the global minimum is the smallest root, the
 * local one the largest. Restart 0 starts at x0 = 1, inside the local basin;
 * the random restarts must find the global one. Stopping on the gradient,
 * |x - x*| <= grad_tol / f''(x*) to first order, f''(x*) = 12 x*^2 - 4
 * (the second-order term is ~1e-21 here). */
START_TEST(restarts_double_well) {
    double roots[3];
    ck_assert_int_eq(gsl_poly_solve_cubic(0.0, -1.0, 0.075, &roots[0], &roots[1], &roots[2]), 3);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_PLAIN;
    opt.lr = 0.01;
    opt.batch = 1;
    opt.epochs = 10000;
    opt.grad_tol = 1e-10;
    opt.restarts = 10;
    opt.seed = 21;
    const double x0 = 1.0;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, well_objective, NULL, 1, 1, &x0, &r), SL_OK);
    const double curv_global = 12.0 * roots[0] * roots[0] - 4.0,
                 curv_local = 12.0 * roots[2] * roots[2] - 4.0;
    ck_assert_double_lt(fabs(r->x[0] - roots[0]), opt.grad_tol / curv_global + 1e-15);
    ck_assert_uint_ne(r->best_restart, 0);
    ck_assert_double_lt(fabs(r->restart_x[0] - roots[2]), opt.grad_tol / curv_local + 1e-15);
    ck_assert_str_eq(r->stop_reason, "gradient");
    size_t in_global = 0;
    for (size_t i = 0; i < r->restarts; ++i) {
        ck_assert_double_ge(r->restart_loss[i], r->loss);
        in_global += fabs(r->restart_x[i] - roots[0]) < 1e-6;
    }
    ck_assert_uint_ge(in_global, 1);
    ck_assert(r->x[0] == r->restart_x[r->best_restart]);
    ck_assert(r->loss == r->restart_loss[r->best_restart]);
    sl_sgd_result_free(r);
}
END_TEST

/* ---- determinism -------------------------------------------------------- */

static sl_sgd_result *run_ls(const ls_problem *p, uint64_t seed, const double *x0) {
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.lr = 0.01;
    opt.batch = 64;
    opt.epochs = 5;
    opt.restarts = 3;
    opt.log_every = 7;
    opt.seed = seed;
    opt.monitor = ls_monitor;
    opt.monitor_data = (void *)p;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, (void *)p, LS_N, LS_D, x0, &r), SL_OK);
    return r;
}

START_TEST(determinism) {
    ls_problem *p = ls_make(104, 0.5);
    const double x0[LS_D] = {0.1, 0.2, 0.3, 0.4, 0.5};
    sl_sgd_result *a = run_ls(p, 31, x0), *b = run_ls(p, 31, x0), *c = run_ls(p, 32, x0);
    ck_assert_int_eq(memcmp(a->x, b->x, LS_D * sizeof *a->x), 0);
    ck_assert_int_eq(memcmp(a->restart_x, b->restart_x, 3 * LS_D * sizeof *a->x), 0);
    ck_assert_int_eq(memcmp(a->restart_loss, b->restart_loss, 3 * sizeof *a->x), 0);
    ck_assert(a->loss == b->loss);
    ck_assert_uint_eq(a->best_restart, b->best_restart);
    ck_assert_uint_eq(a->steps, b->steps);
    ck_assert_uint_eq(a->ntrace, b->ntrace);
    for (size_t i = 0; i < a->ntrace; ++i) {
        const sl_trace_row *s = &a->trace[i], *t = &b->trace[i];
        ck_assert(s->restart == t->restart && s->step == t->step && s->epoch == t->epoch);
        ck_assert(s->loss == t->loss && s->grad_norm == t->grad_norm && s->error == t->error);
        ck_assert_int_eq(s->full, t->full);
    }
    /* Another seed shuffles differently: different points, different trace. */
    ck_assert(memcmp(a->x, c->x, LS_D * sizeof *a->x) != 0);
    ck_assert(a->trace[1].loss != c->trace[1].loss);
    /* Restart 0 starts from x0 under either seed (its first minibatch row has
     * the same monitor value), the others from seeded random points. */
    ck_assert(a->trace[0].error == c->trace[0].error);
    ck_assert_double_eq_tol(a->trace[0].error, dist(LS_D, x0, p->xhat), 1e-15);
    ck_assert_str_eq(a->stop_reason, "epochs");
    ck_assert_uint_eq(a->steps, 3 * 5 * ((LS_N + 63) / 64));
    sl_sgd_result_free(a);
    sl_sgd_result_free(b);
    sl_sgd_result_free(c);
    ls_free(p);
}
END_TEST

/* ---- stopping rules ----------------------------------------------------- */

/* Gradient rule: the first epoch whose full gradient norm is below grad_tol
 * ends the run, and then ||x - xhat|| <= ||g|| / lambda_min. */
START_TEST(stop_gradient) {
    ls_problem *p = ls_make(105, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.method = SL_SGD_PLAIN;
    opt.lr = 1.0 / p->lmax;
    opt.batch = LS_N;
    opt.epochs = 100000;
    opt.grad_tol = 1e-9;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &r), SL_OK);
    ck_assert_str_eq(r->stop_reason, "gradient");
    ck_assert_uint_lt(r->steps, opt.epochs);
    const sl_trace_row *last = &r->trace[r->ntrace - 1], *before = last - 1;
    ck_assert_int_eq(last->full, 1);
    ck_assert_double_lt(last->grad_norm, opt.grad_tol);
    ck_assert_double_ge(before->grad_norm, opt.grad_tol);
    ck_assert_double_le(dist(LS_D, r->x, p->xhat), last->grad_norm / p->lmin + 1e-12);
    sl_sgd_result_free(r);
    ls_free(p);
}
END_TEST

/* No-progress rule, checked against the trace: the run stops at the first
 * epoch that ends `patience` epochs without beating the best epoch-end loss
 * by more than min_delta. */
START_TEST(stop_no_progress) {
    ls_problem *p = ls_make(106, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.lr = 0.02;
    opt.batch = 100;
    opt.epochs = 1000;
    opt.patience = 3;
    opt.min_delta = 1e-4;
    opt.seed = 9;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &r), SL_OK);
    ck_assert_str_eq(r->stop_reason, "no progress");
    ck_assert_uint_lt(r->steps, opt.epochs * (LS_N / opt.batch));
    double best = INFINITY;
    size_t stale = 0, fired_at = 0, epochs_seen = 0;
    for (size_t i = 0; i < r->ntrace; ++i) {
        const sl_trace_row *t = &r->trace[i];
        ck_assert_int_eq(t->full, 1);
        ++epochs_seen;
        ck_assert_uint_eq(t->epoch, epochs_seen);
        if (t->loss < best - opt.min_delta) {
            best = t->loss;
            stale = 0;
        } else if (++stale >= opt.patience && !fired_at) {
            fired_at = t->epoch;
        }
    }
    ck_assert_uint_eq(fired_at, epochs_seen);
    ck_assert_uint_eq(r->steps, epochs_seen * (LS_N / opt.batch));
    ck_assert(r->loss == r->trace[r->ntrace - 1].loss);
    sl_sgd_result_free(r);
    ls_free(p);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

typedef struct nan_objective {
    size_t calls, bad_call;
    int bad_gradient; /* 1: an infinite gradient entry instead of a NaN loss */
} nan_objective;

static double nan_fn(size_t np, const double *x, double *grad, const size_t *batch, size_t nb,
                     void *data) {
    (void)batch;
    (void)nb;
    nan_objective *o = data;
    ck_assert(isfinite(x[0]) && isfinite(x[1])); /* never handed a NaN point */
    double loss = 0.5 * (x[0] * x[0] + x[1] * x[1]);
    for (size_t i = 0; i < np; ++i) grad[i] = x[i];
    if (++o->calls == o->bad_call) {
        if (o->bad_gradient)
            grad[1] = INFINITY;
        else
            loss = NAN;
    }
    return loss;
}

START_TEST(nonfinite_objective) {
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.batch = 10;
    opt.epochs = 3;
    opt.restarts = 2;
    const double x0[2] = {1.0, 2.0};
    /* 10 steps per epoch plus one full evaluation: call 16 is step 15 of
     * epoch 2; restart 1 starts after 33 calls. */
    nan_objective o = {.bad_call = 16};
    sl_sgd_result *r = (sl_sgd_result *)1;
    ck_assert_int_eq(sl_sgd_minimize(&opt, nan_fn, &o, 100, 2, x0, &r), SL_ENUMERIC);
    ck_assert_ptr_null(r);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "non-finite loss"));
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "restart 0, epoch 2, step 15"));
    nan_objective g = {.bad_call = 33 + 11, .bad_gradient = 1};
    ck_assert_int_eq(sl_sgd_minimize(&opt, nan_fn, &g, 100, 2, x0, &r), SL_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "non-finite gradient"));
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "full-batch evaluation at restart 1, epoch 1"));
    ck_assert_uint_eq(g.calls, g.bad_call); /* stopped at once */
}
END_TEST

START_TEST(invalid_arguments) {
    ls_problem *p = ls_make(107, 0.5);
    sl_sgd_options base;
    sl_sgd_options_default(&base);
    sl_sgd_result *r = NULL;
    const struct {
        const char *what;
        size_t nsamples, nparam;
        double lr;
        sl_projection proj;
        size_t rows, cols, batch;
        const char *message;
    } cases[] = {
        {"nparam 0", LS_N, 0, 0.01, SL_PROJ_NONE, 0, 0, 256, "nparam = 0"},
        {"nsamples 0", 0, LS_D, 0.01, SL_PROJ_NONE, 0, 0, 256, "nsamples = 0"},
        {"lr 0", LS_N, LS_D, 0.0, SL_PROJ_NONE, 0, 0, 256, "learning rate"},
        {"lr < 0", LS_N, LS_D, -1.0, SL_PROJ_NONE, 0, 0, 256, "learning rate"},
        {"lr NaN", LS_N, LS_D, NAN, SL_PROJ_NONE, 0, 0, 256, "learning rate"},
        {"shape", LS_N, LS_D, 0.01, SL_PROJ_SPHERE, 2, 2, 256, "does not match nparam = 5"},
        {"shape orth", LS_N, 6, 0.01, SL_PROJ_ORTHONORMAL, 2, 3, 256, "cols <= rows"},
        {"batch 0", LS_N, LS_D, 0.01, SL_PROJ_NONE, 0, 0, 0, "minibatch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        sl_sgd_options opt = base;
        opt.lr = cases[i].lr;
        opt.projection = cases[i].proj;
        opt.rows = cases[i].rows;
        opt.cols = cases[i].cols;
        opt.batch = cases[i].batch;
        sl_status st =
            sl_sgd_minimize(&opt, ls_objective, p, cases[i].nsamples, cases[i].nparam, NULL, &r);
        ck_assert_msg(st == SL_EINVAL, "%s: status %d", cases[i].what, (int)st);
        ck_assert_ptr_null(r);
        ck_assert_msg(strstr(sl_last_error(), cases[i].message) != NULL, "%s: message '%s'",
                      cases[i].what, sl_last_error());
    }
    /* A non-finite initial point. */
    double bad[LS_D] = {0, 0, NAN, 0, 0};
    ck_assert_int_eq(sl_sgd_minimize(&base, ls_objective, p, LS_N, LS_D, bad, &r), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "initial point"));
    /* A zero column cannot be put on the sphere. */
    sl_sgd_options opt = base;
    opt.projection = SL_PROJ_SPHERE;
    opt.rows = 1;
    opt.cols = 5;
    double zero[LS_D] = {1, 1, 0, 1, 1};
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, zero, &r), SL_ENUMERIC);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "restart 0, initial point"));
    ck_assert_int_eq(sl_sgd_minimize(&base, NULL, p, LS_N, LS_D, NULL, &r), SL_EINVAL);
    ck_assert_int_eq(sl_sgd_minimize(NULL, ls_objective, p, LS_N, LS_D, NULL, &r), SL_EINVAL);
    ls_free(p);
}
END_TEST

/* ---- batches ------------------------------------------------------------ */

typedef struct batch_log {
    size_t n, batch, calls, full_calls;
    size_t counts[103];
    size_t sizes[64];
    size_t first[3][10]; /* each epoch's first minibatch */
} batch_log;

static double batch_objective(size_t np, const double *x, double *grad, const size_t *batch,
                              size_t nb, void *data) {
    batch_log *l = data;
    if (nb == l->n) {
        /* The full-batch evaluation: every index, in order. */
        for (size_t i = 0; i < nb; ++i) ck_assert_uint_eq(batch[i], i);
        ++l->full_calls;
    } else {
        for (size_t i = 0; i < nb; ++i) {
            ck_assert_uint_lt(batch[i], l->n);
            ++l->counts[batch[i]];
        }
        if (l->calls < 64) l->sizes[l->calls] = nb;
        if (l->calls % 12 == 0 && l->calls / 12 < 3 && nb == 10)
            memcpy(l->first[l->calls / 12], batch, sizeof l->first[0]);
    }
    ++l->calls;
    for (size_t i = 0; i < np; ++i) grad[i] = x[i];
    return 0.5 * x[0] * x[0];
}

/* Each epoch's minibatches partition the samples (sizes 10, ..., 10, 3 for
 * n = 103), so after 3 epochs every sample was seen exactly 3 times; each
 * epoch ends with one full-batch call over 0..n-1 in order (12 calls an
 * epoch). */
START_TEST(batches_partition_epochs) {
    batch_log l = {.n = 103, .batch = 10};
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.batch = 10;
    opt.epochs = 3;
    sl_sgd_result *r = NULL;
    const double x0[1] = {1.0};
    ck_assert_int_eq(sl_sgd_minimize(&opt, batch_objective, &l, l.n, 1, x0, &r), SL_OK);
    for (size_t i = 0; i < l.n; ++i) ck_assert_uint_eq(l.counts[i], 3);
    ck_assert_uint_eq(l.full_calls, 3);
    ck_assert_uint_eq(l.calls, 3 * 12);
    for (size_t k = 0; k < 11; ++k) ck_assert_uint_eq(l.sizes[k], k < 10 ? 10 : 3);
    ck_assert_uint_eq(r->steps, 3 * 11);
    /* A fresh permutation every epoch. */
    ck_assert(memcmp(l.first[0], l.first[1], sizeof l.first[0]) != 0);
    ck_assert(memcmp(l.first[1], l.first[2], sizeof l.first[0]) != 0);
    sl_sgd_result_free(r);
}
END_TEST

/* ---- trace file and progress -------------------------------------------- */

typedef struct progress_log {
    size_t calls;
    double last;
    int monotone;
} progress_log;

static void on_progress(double fraction, void *ctx) {
    progress_log *l = ctx;
    if (fraction < l->last) l->monotone = 0;
    l->last = fraction;
    ++l->calls;
}

START_TEST(trace_csv) {
    ls_problem *p = ls_make(108, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.lr = 0.01;
    opt.batch = 128; /* 16 steps per epoch, the last one 80 samples */
    opt.epochs = 4;
    opt.restarts = 2;
    opt.log_every = 5;
    opt.monitor = ls_monitor;
    opt.monitor_data = p;
    progress_log prog = {.monotone = 1};
    opt.progress = on_progress;
    opt.progress_ctx = &prog;
    sl_sgd_result *r = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &r), SL_OK);
    /* Per restart: minibatch rows at steps 0, 5, ..., < 64 (13 of them) and
     * 4 epoch rows. */
    const size_t per_epoch = (LS_N + 127) / 128, planned = per_epoch * opt.epochs;
    const size_t per_restart = (planned + opt.log_every - 1) / opt.log_every + opt.epochs;
    ck_assert_uint_eq(r->ntrace, opt.restarts * per_restart);
    size_t full = 0;
    for (size_t i = 0; i < r->ntrace; ++i) {
        const sl_trace_row *t = &r->trace[i];
        if (t->full) {
            ++full;
            ck_assert_uint_eq(t->step, t->epoch * per_epoch);
        } else {
            ck_assert_uint_eq(t->step % opt.log_every, 0);
            ck_assert_uint_eq(t->epoch, t->step / per_epoch + 1);
        }
        ck_assert(isfinite(t->error) && t->seconds >= 0.0);
    }
    ck_assert_uint_eq(full, opt.restarts * opt.epochs);
    ck_assert(prog.monotone);
    ck_assert_uint_le(prog.calls, 101);
    ck_assert_uint_ge(prog.calls, 50); /* 128 steps: most percentages are reached */
    ck_assert_double_eq(prog.last, 1.0);

    const char *path = sl_test_tmpfile("trace.csv");
    ck_assert_int_eq(sl_trace_write(r, path, "sgd trace test"), SL_OK);
    sl_table *t = NULL;
    ck_assert_int_eq(sl_csv_read(path, &t), SL_OK);
    static const char *names[] = {"restart",   "step",  "epoch",   "loss",
                                  "grad_norm", "error", "seconds", "full"};
    ck_assert_uint_eq(t->cols, 8);
    for (size_t j = 0; j < 8; ++j) ck_assert_str_eq(t->names[j], names[j]);
    ck_assert_uint_eq(t->rows, r->ntrace);
    for (size_t i = 0; i < r->ntrace; ++i) {
        const double *row = t->data + i * 8;
        const sl_trace_row *s = &r->trace[i];
        ck_assert(row[0] == (double)s->restart && row[1] == (double)s->step &&
                  row[2] == (double)s->epoch);
        ck_assert(row[3] == s->loss && row[4] == s->grad_norm && row[5] == s->error);
        ck_assert(row[6] == s->seconds && row[7] == (double)s->full);
    }
    ck_assert_ptr_nonnull(strstr(t->comment, "sgd trace test"));
    sl_table_free(t);
    sl_sgd_result_free(r);

    /* Without a monitor the error column is left out (CSV holds finite
     * numbers only). */
    opt.monitor = NULL;
    opt.progress = NULL;
    opt.restarts = 1;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &r), SL_OK);
    for (size_t i = 0; i < r->ntrace; ++i) ck_assert(isnan(r->trace[i].error));
    ck_assert_int_eq(sl_trace_write(r, path, NULL), SL_OK);
    ck_assert_int_eq(sl_csv_read(path, &t), SL_OK);
    ck_assert_uint_eq(t->cols, 7);
    ck_assert_int_eq(sl_table_find(t, "error"), -1);
    ck_assert_int_eq(sl_table_find(t, "seconds"), 5);
    ck_assert_uint_eq(t->rows, per_restart);
    sl_table_free(t);
    sl_sgd_result_free(r);
    ls_free(p);
}
END_TEST

START_TEST(options_default) {
    sl_sgd_options opt;
    memset(&opt, 0xff, sizeof opt);
    sl_sgd_options_default(&opt);
    ck_assert_int_eq(opt.method, SL_SGD_ADAM);
    ck_assert_double_eq(opt.lr, 1e-2);
    ck_assert_int_eq(opt.schedule, SL_LR_CONSTANT);
    ck_assert_double_eq(opt.decay, 1e-3);
    ck_assert_double_eq(opt.momentum, 0.9);
    ck_assert_double_eq(opt.beta1, 0.9);
    ck_assert_double_eq(opt.beta2, 0.999);
    ck_assert_double_eq(opt.eps, 1e-8);
    ck_assert_uint_eq(opt.batch, 256);
    ck_assert_uint_eq(opt.epochs, 20);
    ck_assert_uint_eq(opt.restarts, 1);
    ck_assert_double_eq(opt.init_scale, 1.0);
    ck_assert_int_eq(opt.projection, SL_PROJ_NONE);
    ck_assert(opt.monitor == NULL && opt.monitor_data == NULL);
    ck_assert(opt.progress == NULL && opt.progress_ctx == NULL);
    sl_sgd_result_free(NULL);
}
END_TEST

/* Inverse-time decay: with decay = 0 it is the constant schedule, bit for bit. */
START_TEST(schedules) {
    ls_problem *p = ls_make(109, 0.5);
    sl_sgd_options opt;
    sl_sgd_options_default(&opt);
    opt.batch = 100;
    opt.epochs = 3;
    opt.seed = 4;
    sl_sgd_result *a = NULL, *b = NULL, *c = NULL;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &a), SL_OK);
    opt.schedule = SL_LR_INVTIME;
    opt.decay = 0.0;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &b), SL_OK);
    opt.decay = 0.05;
    ck_assert_int_eq(sl_sgd_minimize(&opt, ls_objective, p, LS_N, LS_D, NULL, &c), SL_OK);
    ck_assert_int_eq(memcmp(a->x, b->x, LS_D * sizeof *a->x), 0);
    ck_assert(memcmp(a->x, c->x, LS_D * sizeof *a->x) != 0);
    sl_sgd_result_free(a);
    sl_sgd_result_free(b);
    sl_sgd_result_free(c);
    ls_free(p);
}
END_TEST

static Suite *sgd_suite(void) {
    Suite *s = suite_create("sgd");
    TCase *tc = tcase_create("sgd");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, options_default);
    tcase_add_test(tc, ls_full_batch_plain);
    tcase_add_test(tc, ls_full_batch_momentum);
    tcase_add_test(tc, ls_minibatch_adam);
    tcase_add_test(tc, rayleigh_sphere);
    tcase_add_test(tc, trace_stiefel);
    tcase_add_test(tc, project_sphere);
    tcase_add_test(tc, project_orthonormal);
    tcase_add_test(tc, restarts_double_well);
    tcase_add_test(tc, determinism);
    tcase_add_test(tc, stop_gradient);
    tcase_add_test(tc, stop_no_progress);
    tcase_add_test(tc, batches_partition_epochs);
    tcase_add_test(tc, nonfinite_objective);
    tcase_add_test(tc, invalid_arguments);
    tcase_add_test(tc, trace_csv);
    tcase_add_test(tc, schedules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(sgd_suite());
}
