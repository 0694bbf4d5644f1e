/* Internals of the score estimators: the neighbour index and the kernel
 * moments that llsfe and kde share (internal). */
#ifndef SL_SCORE_INTERNAL_H
#define SL_SCORE_INTERNAL_H

#include <stddef.h>

#include "scoreloss/score.h"

/* ---- k-d tree (kdtree.c) -------------------------------------------------
 * Nearest-neighbour and fixed-radius queries over n points in R^d. The tree
 * keeps a pointer to X (n x d, row-major), which must outlive it, and its
 * own copies of the points. Built once, read-only afterwards: queries from
 * several threads at once are safe, each thread with its own workspace. */
typedef struct sl_kdtree sl_kdtree;
typedef struct sl_kdtree_work sl_kdtree_work;

sl_status sl_kdtree_build(size_t n, size_t d, const double *X, sl_kdtree **out);
void sl_kdtree_free(sl_kdtree *t);

/* The tree's shape and the sample array it was built over (to check them
 * against a caller's), the samples in leaf order (order[r] = the sample at
 * row r: consecutive samples in this order are near each other, and
 * queries taken in it search the same part of the tree) and the tree's
 * row-major copy of the samples in that order (rows: n x d). Any output
 * pointer may be NULL. */
sl_status sl_kdtree_info(const sl_kdtree *t, size_t *n, size_t *d, const double **X,
                         const size_t **order, const double **rows);

/* A per-thread workspace for queries returning up to `capacity` results
 * (it grows on demand). */
sl_status sl_kdtree_work_alloc(const sl_kdtree *t, size_t capacity, sl_kdtree_work **out);
void sl_kdtree_work_free(sl_kdtree_work *w);

/* The K nearest samples to q, nearest first, excluding sample `exclude`
 * (pass (size_t)-1 to exclude none): indices into idx, squared distances
 * into dist2 (both K long; the caller's arrays). Ties are broken by index,
 * so the exact result does not depend on the build or the thread.
 * eps >= 0 makes the search (1 + eps)-approximate: a cell is skipped when its
 * squared distance exceeds the current K-th squared distance over
 * (1 + eps)^2, so for every k the k-th distance returned is at most
 * (1 + eps) times the exact k-th. Each returned distance is that of the
 * returned sample, as the exact search computes it. eps = 0 is exact. The
 * result depends only on the tree, q, K, exclude and eps. */
sl_status sl_kdtree_knn(const sl_kdtree *t, sl_kdtree_work *w, const double *q, size_t K,
                        size_t exclude, double eps, size_t *idx, double *dist2);

/* The same for m queries at once (Q: m x d, row-major; exclude: m sample
 * indices, or NULL to exclude none): row r of idx and dist2 (m x K) holds
 * query r's K neighbours, the farthest (the K-th) first and the others in
 * no particular order (sorting them would cost more than the moments that
 * use them). One traversal serves the batch, each leaf read once for all
 * the queries that reach it, which pays when they are near each other (a
 * run of samples in leaf order). With eps = 0 each row is the set
 * sl_kdtree_knn finds; with eps > 0 a query's answer can depend on the rest
 * of its batch (the cells are visited in the batch's order), within the
 * same bound. Either way the result is a function of the tree and the
 * arguments alone. */
sl_status sl_kdtree_knn_batch(const sl_kdtree *t, sl_kdtree_work *w, size_t m, const double *Q,
                              const size_t *exclude, size_t K, double eps, size_t *idx,
                              double *dist2);

/* All samples within distance r of q (squared distance <= r^2), excluding
 * `exclude`, in increasing index order: *count results, whose indices and
 * squared distances stay valid in w until its next query. */
sl_status sl_kdtree_radius(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                           size_t exclude, size_t *count, const size_t **idx, const double **dist2);

/* sl_kdtree_radius, but returning rows of the tree's copy of the samples
 * (sl_kdtree_info's `rows`; the sample is order[row]) in the search's own
 * order, unsorted: a fixed order for a given tree and query, read
 * contiguously leaf by leaf. */
sl_status sl_kdtree_radius_rows(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                                size_t exclude, size_t *count, const size_t **rows,
                                const double **dist2);

/* A permutation `order` (nq) of the query points Q (nq x d, finite) that
 * groups them by the leaf whose cell holds them, leaves in the tree's order,
 * ties by query index: consecutive queries in it are near each other. */
sl_status sl_kdtree_query_order(const sl_kdtree *t, size_t nq, const double *Q, size_t *order);

/* ---- kernel moments (moments_allpairs.c, moments_neighbours.c) -----------
 * For each query q_i with bandwidth h_i and weights w_ij = exp(-|x_j - q_i|^2
 * / (2 h_i^2)) over the samples j of its neighbourhood N_i (the query itself
 * left out when it is a sample, leave_one_out = 1, i.e. j != i):
 *   K0[i]        = sum_j w_ij
 *   K1[i*d + a]  = sum_j w_ij (x_j - q_i)_a                 / K0[i]   (= mu)
 *   K2[i*d*d + a*d + b] = sum_j w_ij (x_j - q_i - mu)_a (x_j - q_i - mu)_b / K0[i] (= Sig)
 * i.e. K1 and K2 are returned NORMALISED: the local mean offset mu and the
 * local covariance Sig. When K0[i] underflows to 0 (no sample within reach)
 * mu and Sig are set to 0 and K0[i] = 0 tells the caller. Results are
 * identical for any thread count. sl_moments_allpairs takes every sample
 * (N_i = all, a fixed h). */
sl_status sl_moments_allpairs(size_t n, size_t d, const double *X, size_t nq, const double *Q,
                              int leave_one_out, double h, double *K0, double *mu, double *Sig,
                              sl_progress_fn progress, void *progress_ctx);

/* The moments over a neighbourhood from the k-d tree `tree`, which must
 * have been built over X itself (this array, n x d; checked).
 * - K = 0: a fixed bandwidth h_i = h > 0, N_i = the samples within
 *   cutoff * h (cutoff > 0; each sample left out weighs under
 *   exp(-cutoff^2 / 2), see moments_neighbours.c for the error bound).
 * - K > 0: adaptive, N_i = the K nearest samples (ties by index), h_i = the
 *   distance to the K-th of them: the kernel truncated at the K-th
 *   neighbour, which itself weighs exp(-1/2). h and cutoff are ignored.
 *   knn_eps >= 0 (finite) makes the search (1 + knn_eps)-approximate (see
 *   sl_kdtree_knn): N_i is then K samples whose k-th distance is within
 *   (1 + knn_eps) of the exact k-th, so h_i lies between the exact value
 *   and 1 + knn_eps times it; 0 is exact. The queries are searched in
 *   batches fixed by the tree and the queries, so an approximate answer
 *   does not depend on the thread count either. With h_i = 0 (the K-th
 *   nearest coincides with the query) the kernel's h -> 0 limit: K0 = K,
 *   mu = Sig = 0.
 * hq (nq, may be NULL) receives h_i. With leave_one_out, Q may be NULL (the
 * samples) and nq <= n: query i is sample i, left out of its own
 * neighbourhood. Progress (may be NULL) is reported from one thread. */
sl_status sl_moments_neighbours(const sl_kdtree *tree, size_t n, size_t d, const double *X,
                                size_t nq, const double *Q, int leave_one_out, double h, size_t K,
                                double cutoff, double *hq, double *K0, double *mu, double *Sig,
                                sl_progress_fn progress, void *progress_ctx, double knn_eps);

/* ---- shared by the estimators (baselines.c, llsfe.c, bandwidth.c) ------- */

/* A Gaussian fitted to the sample: mean m (d), covariance C (d x d) and its
 * inverse P, regularised (C + 1e-9 tr(C)/d I) when the sample is degenerate. */
typedef struct sl_gauss_fit {
    size_t d;
    double *m, *C, *P;
    double scale;    /* sqrt(tr(C) / d), the typical coordinate spread */
    int regularised; /* 1 when C was singular or nearly so and took a ridge */
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

/* sl_kernel_scores at a fixed h and explicit queries Q (not NULL), with the
 * divergence of g at each query (nq) from the estimator's derivative in q
 * (llsfe.c): the held-out score-matching objective's div g. */
sl_status sl_kernel_scores_div(sl_kernel_map map, const sl_score_options *opt,
                               const sl_gauss_fit *fit, size_t n, size_t d, const double *X,
                               size_t nq, const double *Q, double h, sl_scores *out, double *div);

/* The automatic bandwidth: minimises the held-out score-matching objective
 * J(h) = mean over held-out x of |g(x)|^2 / 2 + div g(x) over a grid, and
 * returns h for the full sample; records the grid and J in out. */
sl_status sl_bandwidth_auto(sl_kernel_map map, const sl_score_options *opt, const sl_gauss_fit *fit,
                            size_t n, size_t d, const double *X, double *h, sl_scores *record);

#endif
