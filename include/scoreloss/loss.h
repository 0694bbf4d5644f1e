/* Moments, whitening and the landscape-designed losses (METHOD.md section 4).
 *
 * From per-sample scores (g, H) and labels y:
 *   M2 = (1/n) sum_j y_j S_2(x_j),  S_2 = g g' + H,
 * its top-k eigenpairs (U, Lambda) by |eigenvalue|, the whitening
 * P = U |Lambda|^{-1/2} (d x k), and the whitened per-sample scores
 * P'g_j (k) and P'H_j P (k x k). The loss runs on candidate columns
 * b_1..b_k in R^k (the parameter matrix B is k x k, row-major, column j is
 * b_j), and never sees a d^4 or per-sample k^4 tensor: every contraction of
 * a sample's locally quadratic S_4 follows from B'g and B'HB (METHOD.md
 * section 2).
 *
 * The whitened fourth moment T = (1/n) sum_j y_j S_4(x_j)(P., P., P., P.)
 * (k^4 values, once for the whole sample) is computed on request: from the
 * per-sample (g, H) (locally quadratic S_4), or from a distribution's exact
 * projected S_4 (third and fourth log-derivatives included). Its k^2 x k^2
 * unfolding has the whitened signal coefficients c_i / D_i^2 as eigenvalues
 * (section 4, whitening), which is how the sign and the signal are
 * estimated before any optimisation. */
#ifndef SCORELOSS_LOSS_H
#define SCORELOSS_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_moments {
    size_t n, d, k;
    double *y;     /* n labels (copied) */
    double *M2;    /* d x d */
    double *evals; /* d eigenvalues of M2, by decreasing absolute value */
    double *U;     /* d x k, the top-k unit eigenvectors as columns */
    double *P;     /* d x k, U |Lambda_k|^{-1/2} */
    double *Gw;    /* n x k, P'g_j */
    double *Hw;    /* n x k x k, P'H_j P */
    double *T;     /* k^4, the whitened fourth moment; NULL until computed */
    int t_full;    /* 1 when T holds the exact S_4 (third and fourth log-derivatives) */
    /* The signal estimate (sl_moments_signal): the k eigenvalues of T's
     * unfolding largest in absolute value, in decreasing order of it; 0 until
     * computed. */
    double *signal; /* k */
    int have_signal;
} sl_moments;

/* Moments of the scores s (n points, the samples themselves) with labels y
 * (n) for k directions (1 <= k <= d). Fails with SL_ENUMERIC when the k-th
 * eigenvalue of M2 (by absolute value) is zero, not finite, or below 1e-12
 * of the first (no k-dimensional signal). Every result of this module
 * depends on the data only, not on the number of threads. */
sl_status sl_moments_compute(const sl_scores *s, const double *y, size_t k, sl_moments **out);
/* The same with M2 = (1/n) sum_j y_j S_2(x_j) + M2_add (d x d, symmetrised;
 * NULL for none): the correction of a control variate (sl_detrend_cv with
 * degree 2 gives y minus its quadratic fit and the fit's Hessian). m->y
 * holds y as given. */
sl_status sl_moments_compute_cv(const sl_scores *s, const double *y, const double *M2_add, size_t k,
                                sl_moments **out);
void sl_moments_free(sl_moments *m);

/* T from the per-sample whitened (g, H): the locally quadratic S_4,
 * accumulated as matrix products over the samples (O(n k^4) flops in three
 * dgemms). Sets t_full = 0. */
sl_status sl_moments_tensor(sl_moments *m);

/* T from exact scores: T = (1/n) sum_j y_j S_4^{dist}(Z_j)(V., V., V., V.)
 * with Z (n x dist's dimension) and V (dist's dimension x k). The full route
 * is dist = the input distribution, Z = X, V = P; the projected route is
 * dist = the marginal of z = U'x, Z = X U, V = |Lambda_k|^{-1/2}. Needs
 * SL_DIST_SCORE4. Sets t_full = 1. */
sl_status sl_moments_tensor_dist(sl_moments *m, const sl_dist *dist, const double *Z,
                                 const double *V);

/* The signal estimate from T (computed on demand from (g, H) when T is
 * NULL): fills m->signal. */
sl_status sl_moments_signal(sl_moments *m);

/* Least-squares fit of a symmetric k^4 tensor T (row-major) by
 * sum_i s_i b_i^(x4) over the r rows b_i of B (r x k; in: the start, out:
 * the fit, lengths free so |b_i|^4 is the coefficient's size), signs s_i
 * (+1 or -1) fixed: BFGS (GSL) on the squared Frobenius residual. recover
 * uses it to refine the landscape's directions on the unwhitened T
 * (src/loss/cp4.c has why and the measurements). info (may be NULL) gets
 * the objective before and after and the iterations. SL_ENUMERIC, B
 * untouched, when the fit does not improve on the start. */
typedef struct sl_cp4_info {
    double f0, f;
    int iterations;
} sl_cp4_info;
sl_status sl_cp4_fit(size_t k, size_t r, const double *T, const double *signs, double *B,
                     sl_cp4_info *info);

/* T(u, u, v, v) and friends for callers (tests, landscapes): the full
 * contraction of T with four k-vectors. T must be computed. */
double sl_moments_contract(const sl_moments *m, const double *a, const double *b, const double *c,
                           const double *e);

typedef enum sl_loss_kind {
    SL_LOSS_LANDSCAPE = 0, /* s [ sum_{j != l} T(b_j,b_j,b_l,b_l) - mu sum_j T(b_j^4) ]
                              + lambda sum_j (|b_j|^2 - 1)^2 */
    SL_LOSS_SIGNFREE       /* - sum_j T(b_j^4)^2 (JADE-style; use orthonormal columns);
                              tensor mode only */
} sl_loss_kind;

typedef struct sl_landscape_options {
    sl_loss_kind kind; /* default SL_LOSS_LANDSCAPE */
    double mu;         /* default 0.5 (below 1: METHOD.md section 4) */
    double lambda;     /* norm penalty, default 0 (the projection keeps columns unit) */
    int sign;          /* +1 or -1; 0 (default): the sign of the estimated signal's sum, i.e.
                          s = sign(c) (-1 for ReLU with a > 0 and unimodal marginals: the
                          -mu T(b^4) term must then reward |T(b^4)|); not used by SIGNFREE */
    int tensor;        /* 1: evaluate on T (full batch, the batch argument is ignored);
                          0 (default): per sample on the minibatch from (Gw, Hw) */
} sl_landscape_options;

void sl_landscape_options_default(sl_landscape_options *opt);

/* The landscape objective over B (k x k, nparam = k * k) for sl_sgd_minimize.
 * Workspace for minibatches up to max_batch samples is allocated here: no
 * allocation per call (a larger batch, such as the SGD's full-batch
 * evaluation, grows a small buffer of per-64-sample partial sums once).
 * With sign = 0 the signal is estimated (which computes T if needed); tensor
 * mode computes the locally quadratic T if m has none, and copies T as it is
 * at this call. m is borrowed and must outlive the landscape. The per-sample
 * mode's value over all samples equals the tensor mode's value on the
 * locally quadratic T. One landscape serves one caller at a time (its
 * workspace is shared by the calls). */
typedef struct sl_landscape sl_landscape;

sl_status sl_landscape_alloc(sl_moments *m, const sl_landscape_options *opt, size_t max_batch,
                             sl_landscape **out);
void sl_landscape_free(sl_landscape *L);
/* The sign s the landscape loss uses (+1 or -1); 0 for SL_LOSS_SIGNFREE. */
int sl_landscape_sign(const sl_landscape *L);
double sl_landscape_objective(size_t nparam, const double *x, double *grad, const size_t *batch,
                              size_t nbatch, void *data);

/* The plain squared loss on a student network of activation act:
 *   (1/2 |batch|) sum_j (y_j - sum_i a_i sigma(w_i . x_j))^2
 * over the parameters (W, a): W (k x d, row-major) then a (k); nparam = k d + k.
 * X (n x d) and y (n) are borrowed. */
typedef struct sl_l2 sl_l2;

sl_status sl_l2_alloc(size_t n, size_t d, const double *X, const double *y, size_t k, sl_act act,
                      size_t max_batch, sl_l2 **out);
void sl_l2_free(sl_l2 *L);
double sl_l2_objective(size_t nparam, const double *x, double *grad, const size_t *batch,
                       size_t nbatch, void *data);

#ifdef __cplusplus
}
#endif
#endif
