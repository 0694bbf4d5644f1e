/* Internals of the score estimators: the neighbour index and the kernel
 * moments that llsfe and kde share (internal). */
#ifndef SL_SCORE_INTERNAL_H
#define SL_SCORE_INTERNAL_H

#include <stddef.h>

#include "scoreloss/score.h"

/* ---- k-d tree (kdtree.c) -------------------------------------------------
 * Exact nearest-neighbour and fixed-radius queries over n points in R^d. The
 * tree keeps a pointer to X (n x d, row-major), which must outlive it. Built
 * once, read-only afterwards: queries from several threads at once are safe,
 * each thread with its own workspace. */
typedef struct sl_kdtree sl_kdtree;
typedef struct sl_kdtree_work sl_kdtree_work;

sl_status sl_kdtree_build(size_t n, size_t d, const double *X, sl_kdtree **out);
void sl_kdtree_free(sl_kdtree *t);

/* A per-thread workspace for queries returning up to `capacity` results
 * (it grows on demand for radius queries). */
sl_status sl_kdtree_work_alloc(const sl_kdtree *t, size_t capacity, sl_kdtree_work **out);
void sl_kdtree_work_free(sl_kdtree_work *w);

/* The K nearest samples to q, nearest first, excluding sample `exclude`
 * (pass (size_t)-1 to exclude none): indices into idx, squared distances
 * into dist2 (both K long; the caller's arrays). Ties are broken by index,
 * so the result does not depend on the build or the thread. */
sl_status sl_kdtree_knn(const sl_kdtree *t, sl_kdtree_work *w, const double *q, size_t K,
                        size_t exclude, size_t *idx, double *dist2);

/* All samples within distance r of q (squared distance <= r^2), excluding
 * `exclude`, in increasing index order: *count results, whose indices and
 * squared distances stay valid in w until its next query. */
sl_status sl_kdtree_radius(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                           size_t exclude, size_t *count, const size_t **idx, const double **dist2);

/* ---- kernel moments (moments_allpairs.c, moments_neighbours.c) -----------
 * For each query q_i with bandwidth h_i and weights w_ij = exp(-|x_j - q_i|^2
 * / (2 h_i^2)) over the samples (the query itself left out when Q is the
 * sample, leave_one_out = 1, i.e. j != i):
 *   K0[i]        = sum_j w_ij
 *   K1[i*d + a]  = sum_j w_ij (x_j - q_i)_a                 / K0[i]   (= mu)
 *   K2[i*d*d + a*d + b] = sum_j w_ij (x_j - q_i - mu)_a (x_j - q_i - mu)_b / K0[i] (= Sig)
 * i.e. K1 and K2 are returned NORMALISED: the local mean offset mu and the
 * local covariance Sig. When K0[i] underflows to 0 (no sample within reach)
 * mu and Sig are set to 0 and K0[i] = 0 tells the caller. Results are
 * identical for any thread count. */
sl_status sl_moments_allpairs(size_t n, size_t d, const double *X, size_t nq, const double *Q,
                              int leave_one_out, double h, double *K0, double *mu, double *Sig,
                              sl_progress_fn progress, void *progress_ctx);

/* Same moments from the neighbours only: with hq = NULL and K = 0, a fixed
 * bandwidth h and the samples within cutoff * h; with K > 0, h_i = distance
 * to the K-th nearest sample (written to hq[i] if hq is not NULL) and the
 * samples within cutoff * h_i. */
sl_status sl_moments_neighbours(const sl_kdtree *tree, size_t n, size_t d, const double *X,
                                size_t nq, const double *Q, int leave_one_out, double h, size_t K,
                                double cutoff, double *hq, double *K0, double *mu, double *Sig,
                                sl_progress_fn progress, void *progress_ctx);

/* ---- shared by the estimators (baselines.c, llsfe.c, bandwidth.c) ------- */

/* A Gaussian fitted to the sample: mean m (d), covariance C (d x d) and its
 * inverse P, regularised (C + 1e-9 tr(C)/d I) when the sample is degenerate. */
typedef struct sl_gauss_fit {
    size_t d;
    double *m, *C, *P;
    double scale; /* sqrt(tr(C) / d), the typical coordinate spread */
} sl_gauss_fit;

sl_status sl_gauss_fit_compute(size_t n, size_t d, const double *X, sl_gauss_fit *out);
void sl_gauss_fit_release(sl_gauss_fit *f);

/* The kernel estimators share everything but the last step. */
typedef enum { SL_KERNEL_LLSFE, SL_KERNEL_KDE } sl_kernel_map;

/* Kernel-moment scores at fixed h (K = 0) or adaptive h (K > 0): moments by
 * the strategy in opt, then the map. Writes out->G, out->H, out->h (when
 * adaptive) and out->regularised. */
sl_status sl_kernel_scores(sl_kernel_map map, const sl_score_options *opt, const sl_gauss_fit *fit,
                           size_t n, size_t d, const double *X, size_t nq, const double *Q,
                           double h, size_t K, sl_scores *out);

/* The automatic bandwidth: minimises the held-out score-matching objective
 * J(h) = mean over held-out x of |g(x)|^2 / 2 + tr H(x) over a grid, and
 * returns h for the full sample; records the grid and J in out. */
sl_status sl_bandwidth_auto(sl_kernel_map map, const sl_score_options *opt, const sl_gauss_fit *fit,
                            size_t n, size_t d, const double *X, double *h, sl_scores *record);

#endif
