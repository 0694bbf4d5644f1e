/* Fourth-order scores of a low-dimensional marginal, estimated from samples
 * (METHOD.md section 4b): the projected route with estimated scores.
 *
 * y depends on x only through z = U'x (U: d x k, the top-k eigenvectors of
 * M2), so the fourth moment needs only the fourth-order score of the
 * k-dimensional marginal of z:
 *   T_z = (1/n) sum_j y_j S_4^z(z_j),   S_4 = g^4 + 6 sym(g g H) + 3 sym(H H)
 *                                             + 4 sym(g G3) + G4,
 * third and fourth log-derivatives included. It is estimated at every
 * sample from the kernel-weighted neighbourhood (Gaussian kernel, bandwidth
 * h, the sample itself left out) of a reference set (the samples, or a
 * seeded subset of them), with the local raw moments of the offsets up to
 * order 4 accumulated per query and never stored: only the k^4 sum over
 * the samples is kept. Estimators (sl_s4_estimator):
 *   cumulant   the kernel-tilted local density q(u) ~ p(z + u) K_h(u) has,
 *              to first order in the cubic and quartic terms of log p,
 *              covariance Sigma = (h^-2 I - H)^-1, mean m = Sigma g (plus a
 *              correction from G3 and G4), third cumulant
 *              Sigma^(x)3 (G3 + G4 m) and fourth cumulant Sigma^(x)4 G4; the
 *              local cumulants are mapped back to g, H, G3, G4 (s4_project.c)
 *   kde        S_4 = grad^4 p_hat / p_hat of the leave-one-out Gaussian kernel
 *              density estimate: (m4 - 6 sym(m2 (x) I) + 3 sym(I (x) I)) / h^4
 *              with m2, m4 the kernel-weighted raw moments of the offsets in
 *              units of h (the S_4 of p smoothed by the kernel: bias O(h^2))
 *   quadratic  the local quadratic fit (llsfe's map) in k dimensions: g and H
 *              only, G3 = G4 = 0 (the original method's S_4, on z)
 * The samples are first standardised (zeta = L^-1 (z - mean), Cov(z) = L L'),
 * so the kernel is isotropic in units of the data's spread; results are
 * mapped back to z exactly (S_4 transforms with L^-1 in every slot).
 *
 * Results depend on the data and options only, never on the number of
 * threads (fixed blocks of queries, reduced in a fixed order). */
#ifndef SCORELOSS_S4_H
#define SCORELOSS_S4_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/loss.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_s4_estimator {
    SL_S4_CUMULANT = 0, /* local cumulants up to order 4 mapped to g, H, G3, G4 */
    SL_S4_KDE,          /* grad^4 p_hat / p_hat of the Gaussian KDE */
    SL_S4_QUADRATIC     /* the local quadratic fit: g and H only */
} sl_s4_estimator;

/* "cumulant", "kde", "quadratic". */
sl_status sl_s4_estimator_from_name(const char *name, sl_s4_estimator *out);
const char *sl_s4_estimator_name(sl_s4_estimator e);

/* What a point with too few effective neighbours contributes. */
typedef enum sl_s4_thin {
    SL_S4_THIN_GAUSS = 0, /* the standard Gaussian's scores of the standardised data */
    SL_S4_THIN_ZERO,      /* nothing: its S_2 and S_4 are taken as zero */
    SL_S4_THIN_T          /* the scores of an isotropic Student t fitted to the standardised
                             data by maximum likelihood (degrees of freedom from a grid that
                             ends at the Gaussian, the scale free; default): see s4_project.c */
} sl_s4_thin;

/* "gauss", "zero", "t". */
sl_status sl_s4_thin_from_name(const char *name, sl_s4_thin *out);
const char *sl_s4_thin_name(sl_s4_thin t);

typedef struct sl_s4_options {
    sl_s4_estimator estimator; /* default kde (measured more stable: see s4_project.c) */
    /* The bandwidth in standardised units: h > 0 as given, else the rule
     * h = bw_const * nref^(-1/(k + 8)) (bw_const default: see s4_project.c). */
    double h;
    double bw_const;
    double cutoff;         /* neighbours within cutoff * h (default 4) */
    size_t reference;      /* at most this many reference samples (a seeded subset; default
                              10000, for speed: see s4_project.c); 0 = all */
    int corrected;         /* cumulant: 1 applies the first-order corrections of the local
                              mean and covariance by G3 and G4; 0 (default: the correction
                              diverges on thin neighbourhoods) uses llsfe's g and H */
    size_t min_neighbours; /* effective neighbours (K0^2 / sum w^2) below which a point takes
                              the rule below (default 30) */
    /* Those points' scores (default t). The Gaussian's S_4 grows as |z|^4
     * where a heavy-tailed density's decays: on Student t (nu = 5, d = 10,
     * k = 5, 15% of the points thin) zero cut the first estimate's bias from
     * 102 to 3.2 and, with ridge control variates at the truth (s = 0.05),
     * from 0.48 to 0.012, but on gauss it raised the first estimate's from
     * 0.75 to 1.09. The fitted t (nu 5 on Student, 400 on gauss) was as good
     * as the better of the two on all four inputs of the README's table, and
     * better on logistic (bench_s4 --thin; s4_project.c). */
    sl_s4_thin thin;
    int detrend;   /* y minus its least-squares polynomial of this degree in z (0..4, default
                      3) enters T, and minus its linear fit enters M2: the targets are unchanged
                      (E[S_4 h] = E[grad^4 h] = 0 for cubic h) but the smooth, large parts of y
                      no longer multiply the estimator's errors. 4: T from y minus its quartic
                      plus the quartic's fourth derivative, M2 from y minus its quadratic plus
                      the quadratic's Hessian (sl_detrend_cv); the bias left is the estimator's
                      error times the residual only */
    uint64_t seed; /* the reference subset */
    /* Ridge control variates (sl_detrend_ridge_cv): with cv_ridges > 0, T's
     * labels are y minus its joint least-squares fit on the polynomial of
     * degree detrend and the smoothed ReLUs phi(v_j'z), v_j the rows of
     * cv_dirs (cv_ridges x k, in the coordinates of z, the kink at v_j'z = 0),
     * and the fit's fourth derivative is added back. Unbiased for exact
     * scores whatever the directions; for estimated ones the bias left is the
     * estimator's error times the residual, which is small when the v_j are
     * near the true directions. cv_scale: the smoothing in units of the
     * standard deviation of v_j'z (default 0.2). */
    size_t cv_ridges;
    const double *cv_dirs;
    double cv_scale;
} sl_s4_options;

void sl_s4_options_default(sl_s4_options *opt);

typedef struct sl_s4_info {
    double h;               /* the bandwidth used (standardised units) */
    size_t nref;            /* reference samples */
    double mean_neighbours; /* reference samples within cutoff * h, mean over queries */
    double mean_effective;  /* K0^2 / sum w^2, mean over queries */
    size_t regularised;     /* queries that took the rule for thin neighbourhoods */
    double thin_nu;         /* that rule's degrees of freedom: INFINITY for gauss (and for t
                               when the Gaussian fits best), NAN for zero */
    double thin_scale;      /* its scale in standardised units (1 for gauss, NAN for zero) */
} sl_s4_info;

/* The thin rule as it was applied, for reports: "zero", "gauss", "the
 * Gaussian, scale S" or "t, nu V, scale S" (t's fit in info). */
void sl_s4_thin_describe(sl_s4_thin t, const sl_s4_info *info, char *buf, size_t len);

/* The estimated T_z = (1/n) sum_j y_j S_4^z(z_j) (k^4, row-major) and
 * M2_z = (1/n) sum_j y_j S_2^z(z_j) (k x k; may be NULL) from n samples Z
 * (n x k) and labels y (n), in the coordinates of z. info may be NULL. */
sl_status sl_s4_tensor(const sl_s4_options *opt, size_t n, size_t k, const double *Z,
                       const double *y, double *T, double *M2, sl_s4_info *info);

/* The per-sample values y_j S_4^z(z_j)(b_c, b_c, b_c, b_c) for the nb
 * columns b_c of B (k x nb) at the nq rows of Q (a subset of the samples:
 * qidx[i] is row i's index among the n samples, so it is left out of its own
 * neighbourhood) into vals (nq x nb), with the same reference set,
 * bandwidth, estimator and label detrending as sl_s4_tensor on (Z, y). For
 * standard errors. */
sl_status sl_s4_directional(const sl_s4_options *opt, size_t n, size_t k, const double *Z,
                            const double *y, size_t nq, const size_t *qidx, size_t nb,
                            const double *B, double *vals);

/* out (m^4) = T (k^4) contracted with A (k x m) in every slot:
 * out[abce] = sum T[pqrs] A[pa] A[qb] A[rc] A[se]. */
void sl_s4_contract(size_t k, const double *T, size_t m, const double *A, double *out);

/* The moments of the projected route for the recovery pipeline: z = X U0
 * (U0: d x k orthonormal columns, from M2 of d-dimensional scores), T_z and
 * M2_z by sl_s4_tensor, then the whitening in k dimensions: M2_z = R Lambda
 * R' (by decreasing |eigenvalue|), U = U0 R, P = U |Lambda|^-1/2, and
 * T = T_z(R |Lambda|^-1/2, ...) (t_full = 1). evals_d (d values, may be
 * NULL) are the d-dimensional M2's eigenvalues: evals[k..d-1] are taken
 * from them (scaled by Lambda_1 / evals_d[0]) for the spectral-gap check.
 * M2 is U0 M2_z U0'. Gw and Hw are NULL: the loss must run in tensor mode. */
sl_status sl_moments_projected(const sl_s4_options *opt, size_t n, size_t d, const double *X,
                               const double *y, size_t k, const double *U0, const double *evals_d,
                               sl_moments **out, sl_s4_info *info);

/* r = y minus its least-squares polynomial of degree deg (0..3) in the n
 * rows of Z (n x k). For the exact S_4, E[S_4(z) h(z)] = 0 for every
 * polynomial h of degree 3 or less, so the residual has the same fourth
 * moment as y, while a biased S_4 (the locally quadratic one) no longer
 * multiplies the smooth, large part of y. r may alias y. */
sl_status sl_s4_detrend(size_t n, size_t k, const double *Z, const double *y, int deg, double *r);

/* The control variate with its correction: r = y minus its least-squares
 * polynomial q of degree deg (0..4) in the n rows of Z (n x k); r may alias
 * y. dq (k^deg entries, row-major; may be NULL) gets D^deg q, a constant
 * symmetric tensor. For an exact score of order m = deg (S_2 = D^2 p / p,
 * S_4 = D^4 p / p), Stein's identity E[S_m q] = E[D^m q] gives
 *   E[y S_m] = E[r S_m] + dq,
 * the same target with the smooth part of y removed from the noise (for
 * deg < m the correction is zero and r alone has the target: that is
 * sl_s4_detrend). The normal equations are summed in blocks by dsyrk: cost
 * n t^2 with t = sl_detrend_terms(k, deg) terms (126 at k = 5, deg = 4;
 * 66 at k = 10, deg = 2). Results do not depend on the thread count.
 * src/loss/detrend.c has the measurements. */
sl_status sl_detrend_cv(size_t n, size_t k, const double *Z, const double *y, int deg, double *r,
                        double *dq);

/* The control variate with ridge columns: r = y minus its joint
 * least-squares fit q on the monomials of degree 0..deg (0..4) in the n
 * rows of Z (n x k) and the nr smoothed ReLUs phi_s(t_j), t_j = u_j'z + c_j
 * (u_j the rows of U, nr x k; c: nr) divided by its standard deviation over
 * the rows, phi_s(t) = s log(1 + e^(t/s)), s > 0: a ReLU with its kink at
 * u_j'z + c_j = 0 smoothed on s standard deviations. dq (k^order entries,
 * order 2 or 4; may be NULL) gets D^order q averaged over the rows: the
 * polynomial's part when deg = order, plus each ridge's a_j
 * mean(phi_s^(order)) along its direction. coef (nr, may be NULL) gets the
 * a_j. As for sl_detrend_cv, E[y S_m] = E[r S_m] + E[D^m q] for the exact
 * score of order m, here up to the sampling error of the average over the
 * rows; r may alias y. */
sl_status sl_detrend_ridge_cv(size_t n, size_t k, const double *Z, const double *y, int deg,
                              int order, size_t nr, const double *U, const double *c, double s,
                              double *r, double *dq, double *coef);

/* The per-row values behind the ridge part of sl_detrend_ridge_cv's dq:
 * out[i * nb + col] = sum_j a_j phi_s^(order)(t_j) (u_j'b_col)^order at
 * row qidx[i] of Z (nq rows), for the nb columns b_col of B (k x nb), with
 * the ridges scaled over the n rows exactly as sl_detrend_ridge_cv scales
 * them and coef its a_j. Their mean over all rows is dq's ridge part along
 * b; their spread is that average's sampling noise (the polynomial's
 * D^order is a constant). For standard errors of T(b, b, b, b) under the
 * ridge control variate. */
sl_status sl_detrend_ridge_rows(size_t n, size_t k, const double *Z, int order, size_t nr,
                                const double *U, const double *c, double s, const double *coef,
                                size_t nq, const size_t *qidx, size_t nb, const double *B,
                                double *out);

/* The number of monomials of degree 0..deg in k variables. */
size_t sl_detrend_terms(size_t k, int deg);

#ifdef __cplusplus
}
#endif
#endif
