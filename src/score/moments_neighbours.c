/* Kernel moments from the neighbours only (score_internal.h).
 *
 * Two neighbourhoods:
 * - fixed bandwidth h (K = 0): every sample within cutoff * h, from a radius
 *   query on the k-d tree;
 * - adaptive (K > 0): the K nearest samples, h_i = the distance to the K-th,
 *   from batched kNN searches ((1 + eps)-approximate when eps > 0). The
 *   kernel is truncated at the K-th neighbour: this is the neighbourhood
 *   issue 3 specifies (O(n K) work, where 5 h_i would take in most of the
 *   sample in high dimension: 99.98% of it at n = 10^6, d = 10, K = 200).
 * Then two passes over the neighbours: the weights, K0 and the mean offset
 * mu; then the covariance of the offsets about mu, as dsyrk rank-k updates
 * on blocks of weight-scaled centred offsets (13 ns per neighbour at d = 10
 * against 19 for a loop over the upper triangle). Offsets are taken from
 * the query (x_j - q), which the kernel keeps within a few h, and the
 * covariance is accumulated already centred, so Sig never suffers the
 * cancellation of "second raw moment minus mu mu'".
 *
 * Fixed bandwidth: the neighbours are read from the tree's own row-major
 * copy of the samples, leaf by leaf in the search's order, not from X by
 * index: at n = 10^6 the scattered reads of X rows cost more than
 * everything else together. Truncation: each left-out sample has weight
 * below exp(-cutoff^2 / 2) (3.7e-6 at the default cutoff 5), so with N
 * samples beyond the radius, |K0 error| <= N exp(-cutoff^2 / 2), and mu and
 * Sig move by at most that over K0 times (cutoff h)^m, m = 1, 2 (plus |mu|^m
 * terms); tests/test_kdtree.c checks this bound. In high dimension N is
 * most of the sample and the bound is loose: the share of the kernel weight
 * beyond c h is what matters (for locally uniform data the chi-square tail
 * P(chi2_d > c^2): 5.3e-3 at d = 10, c = 5).
 *
 * Adaptive: the K neighbours are read from X by index; the rows of the next
 * query's neighbours are prefetched while one query's moments are summed
 * (the profile at n = 10^6, d = 10, K = 200: the moments' share of the time
 * fell from 13% to 6-8%).
 *
 * Degenerate queries: h_i = 0 (the K-th nearest sample coincides with the
 * query) is the kernel's h -> 0 limit: weight 1 at distance 0, so the K
 * nearest, all at the query, give K0 = K and mu = Sig = 0. With a fixed h
 * whose square underflows, the samples at distance 0 weigh 1 and the rest
 * 0. When every weight underflows, K0 = mu = Sig = 0.
 *
 * Parallel: the queries are taken in the tree's leaf order (the samples by
 * their rows; other points by the leaf whose cell holds them), in fixed
 * chunks scheduled dynamically over the OpenMP threads, one workspace per
 * thread. The kNN chunks are searched as one batch (each leaf read once for
 * all the chunk's queries that reach it: about 2x faster than one query at
 * a time at n = 10^6, d = 10).
 * The chunks depend only on the tree and the queries, so results are
 * bit-identical for any number of threads. The error reported is the one
 * of the lowest failing query, whatever the timing. */
#include "score/score_internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include <gsl/gsl_cblas.h>

#include "scoreloss/status.h"

#define RADIUS_CHUNK 32 /* fixed-bandwidth queries per scheduling chunk */
#define KNN_BATCH 512   /* kNN queries per batch (and scheduling chunk), at most */
#define KNN_BATCH_ENTRIES (KNN_BATCH * 256) /* batch x K, at most, for larger K */
#define PROGRESS_STEPS 100
#define MOMENT_BLOCK 256 /* neighbours per dsyrk update */

typedef struct moments_work {
    size_t d, K, batch;
    sl_kdtree_work *kw;
    double *q;       /* batch x d: the batch's query points */
    size_t *exclude; /* batch */
    size_t *knn_idx; /* batch x K */
    double *knn_d2;  /* batch x K */
    double *weight;  /* grows with the neighbour count */
    size_t weight_cap;
    double *upper; /* d x d, upper triangle accumulated */
    double *block; /* MOMENT_BLOCK x d weight-scaled centred offsets */
} moments_work;

static void moments_work_free(moments_work *mw) {
    if (!mw) return;
    sl_kdtree_work_free(mw->kw);
    free(mw->q);
    free(mw->exclude);
    free(mw->knn_idx);
    free(mw->knn_d2);
    free(mw->weight);
    free(mw->upper);
    free(mw->block);
    free(mw);
}

/* Queries per kNN batch: KNN_BATCH (measured at n = 10^6, d = 10, K = 200:
 * 512 beat 256 by 7% and 128 by 20%; 1024 and more gained nothing), fewer
 * for large K so that a batch's neighbours (batch x K) stay within bounds. */
static size_t knn_batch_size(size_t K) {
    size_t batch = KNN_BATCH;
    while (batch > 1 && batch * K > KNN_BATCH_ENTRIES) batch /= 2;
    return batch;
}

static moments_work *moments_work_alloc(const sl_kdtree *tree, size_t d, size_t K) {
    moments_work *mw = calloc(1, sizeof *mw);
    if (!mw) return NULL;
    mw->d = d;
    mw->K = K;
    mw->batch = knn_batch_size(K);
    const size_t k = K ? K : 1;
    mw->q = malloc(mw->batch * d * sizeof *mw->q);
    mw->exclude = malloc(mw->batch * sizeof *mw->exclude);
    mw->knn_idx = malloc(mw->batch * k * sizeof *mw->knn_idx);
    mw->knn_d2 = malloc(mw->batch * k * sizeof *mw->knn_d2);
    mw->upper = malloc(d * d * sizeof *mw->upper);
    mw->block = malloc(MOMENT_BLOCK * d * sizeof *mw->block);
    if (!mw->q || !mw->exclude || !mw->knn_idx || !mw->knn_d2 || !mw->upper || !mw->block ||
        sl_kdtree_work_alloc(tree, K ? K : 256, &mw->kw) != SL_OK) {
        moments_work_free(mw);
        return NULL;
    }
    return mw;
}

static sl_status grow_weights(moments_work *mw, size_t need) {
    if (need <= mw->weight_cap) return SL_OK;
    size_t cap = mw->weight_cap ? mw->weight_cap : 256;
    while (cap < need) cap *= 2;
    double *w = realloc(mw->weight, cap * sizeof *w);
    if (!w) return sl_error(SL_ENOMEM, "out of memory for %zu neighbour weights", need);
    mw->weight = w;
    mw->weight_cap = cap;
    return SL_OK;
}

/* The moments of query q over m neighbours with squared distances d2 and
 * weights exp(-d2 / (2 h^2)), the neighbour j's point at `base + row[j] *
 * d` (rows of the tree's copy, or sample indices into X). */
static void weighted_moments(moments_work *mw, const double *base, const size_t *row,
                             const double *d2, size_t m, const double *q, double h, double *K0_out,
                             double *mu, double *Sig) {
    const size_t d = mw->d;
    memset(mu, 0, d * sizeof *mu);
    memset(Sig, 0, d * d * sizeof *Sig);
    /* Pass 1: weights, K0 and the mean offset. */
    double *w = mw->weight, K0 = 0.0;
    const double scale = 0.5 / (h * h);
    for (size_t j = 0; j < m; ++j) {
        /* d2 = 0 separately: scale is +inf when h^2 underflows */
        w[j] = d2[j] > 0 ? exp(-d2[j] * scale) : 1.0;
        K0 += w[j];
    }
    *K0_out = K0;
    if (!(K0 > 0)) return;
    for (size_t j = 0; j < m; ++j) {
        if (w[j] == 0) continue;
        const double *x = base + row[j] * d;
        for (size_t a = 0; a < d; ++a) mu[a] += w[j] * (x[a] - q[a]);
    }
    for (size_t a = 0; a < d; ++a) mu[a] /= K0;

    /* Pass 2: covariance of the offsets about mu, upper triangle. */
    double *S = mw->upper, *B = mw->block;
    memset(S, 0, d * d * sizeof *S);
    size_t rows = 0;
    for (size_t j = 0; j < m; ++j) {
        if (w[j] == 0) continue;
        const double *x = base + row[j] * d;
        const double s = sqrt(w[j]);
        double *brow = B + rows * d;
        for (size_t a = 0; a < d; ++a) brow[a] = s * ((x[a] - q[a]) - mu[a]);
        if (++rows == MOMENT_BLOCK) {
            cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)rows, 1.0, B, (int)d,
                        1.0, S, (int)d);
            rows = 0;
        }
    }
    if (rows)
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)rows, 1.0, B, (int)d, 1.0,
                    S, (int)d);
    for (size_t a = 0; a < d; ++a)
        for (size_t b = a; b < d; ++b) Sig[a * d + b] = Sig[b * d + a] = S[a * d + b] / K0;
}

/* Fixed bandwidth: the samples within cutoff * h of q (P = the tree's copy
 * of the samples, read by row). */
static sl_status radius_moments(const sl_kdtree *tree, moments_work *mw, const double *P,
                                const double *q, size_t self, double h, double cutoff, double *K0,
                                double *mu, double *Sig) {
    size_t m;
    const size_t *row;
    const double *d2;
    sl_status st = sl_kdtree_radius_rows(tree, mw->kw, q, cutoff * h, self, &m, &row, &d2);
    if (st) return st;
    st = grow_weights(mw, m);
    if (st) return st;
    weighted_moments(mw, P, row, d2, m, q, h, K0, mu, Sig);
    return SL_OK;
}

/* Adaptive: the K nearest samples (idx, d2: the K-th first, as
 * sl_kdtree_knn_batch returns them), h = the distance to the K-th. */
static sl_status knn_moments(moments_work *mw, const double *X, const double *q, const size_t *idx,
                             const double *d2, double *h_out, double *K0, double *mu, double *Sig) {
    const size_t K = mw->K, d = mw->d;
    const double h = sqrt(d2[0]);
    if (!isfinite(h))
        return sl_error(SL_ENUMERIC, "the squared distance to the %zu-th neighbour overflows", K);
    if (h_out) *h_out = h;
    if (h == 0) {
        *K0 = (double)K;
        memset(mu, 0, d * sizeof *mu);
        memset(Sig, 0, d * d * sizeof *Sig);
        return SL_OK;
    }
    sl_status st = grow_weights(mw, K);
    if (st) return st;
    weighted_moments(mw, X, idx, d2, K, q, h, K0, mu, Sig);
    return SL_OK;
}

/* Asks the CPU to fetch rows idx[0, m) of X (d columns) into the cache. */
static void prefetch_rows(const double *X, size_t d, const size_t *idx, size_t m) {
#if defined(__GNUC__)
    for (size_t j = 0; j < m; ++j) {
        const double *x = X + idx[j] * d;
        __builtin_prefetch(x);
        __builtin_prefetch(x + d - 1);
    }
#else
    (void)X, (void)d, (void)idx, (void)m;
#endif
}

/* The lowest failing query and its message, shared by the threads. */
typedef struct failure {
    size_t query; /* SIZE_MAX: none */
    sl_status status;
    char msg[512];
} failure;

static void record_failure(failure *f, size_t query, sl_status st) {
#pragma omp critical(sl_moments_neighbours_error)
    {
        if (query < f->query) {
            snprintf(f->msg, sizeof f->msg, "moments: query %zu: %s", query, sl_last_error());
            f->status = st;
            f->query = query;
        }
    }
}

sl_status sl_moments_neighbours(const sl_kdtree *tree, size_t n, size_t d, const double *X,
                                size_t nq, const double *Q, int leave_one_out, double h, size_t K,
                                double cutoff, double *hq, double *K0, double *mu, double *Sig,
                                sl_progress_fn progress, void *progress_ctx, double knn_eps) {
    size_t tree_n, tree_d;
    const double *tree_X;
    const size_t *tree_order;
    const double *P;
    if (!tree) return sl_error(SL_EINVAL, "moments: no k-d tree given");
    sl_kdtree_info(tree, &tree_n, &tree_d, &tree_X, &tree_order, &P);
    if (tree_n != n || tree_d != d)
        return sl_error(SL_EINVAL,
                        "moments: the k-d tree indexes %zu x %zu points, not the %zu x %zu "
                        "samples given",
                        tree_n, tree_d, n, d);
    if (!X || tree_X != X)
        return sl_error(SL_EINVAL, "moments: the k-d tree was built over another sample array");
    if (leave_one_out) {
        if (!Q) Q = X;
        if (nq > n)
            return sl_error(SL_EINVAL,
                            "moments: leave-one-out queries are the samples, but %zu queries "
                            "exceed the %zu samples",
                            nq, n);
    } else if (!Q && nq > 0) {
        return sl_error(SL_EINVAL, "moments: no query points given");
    }
    if (K == 0 && !(h > 0 && isfinite(h)))
        return sl_error(SL_EINVAL, "moments: bandwidth %g is not a positive finite number", h);
    if (K > n - (leave_one_out ? 1 : 0))
        return sl_error(SL_EINVAL, "moments: K = %zu nearest neighbours asked of %zu samples%s", K,
                        n, leave_one_out ? " (the query itself left out)" : "");
    if (K == 0 && !(cutoff > 0))
        return sl_error(SL_EINVAL, "moments: kernel cutoff %g is not positive", cutoff);
    if (!(knn_eps >= 0) || !isfinite(knn_eps))
        return sl_error(SL_EINVAL,
                        "moments: kNN approximation eps = %g is not a finite number >= 0", knn_eps);
    if (d > INT_MAX) return sl_error(SL_EINVAL, "moments: d = %zu is too large", d);
    if (nq > 0 && (!K0 || !mu || !Sig))
        return sl_error(SL_EINVAL, "moments: no output arrays given");
    if (nq == 0) return SL_OK;
    /* Non-finite queries fail before any work, the lowest first. */
    for (size_t i = 0; i < nq; ++i)
        for (size_t a = 0; a < d; ++a)
            if (!isfinite(Q[i * d + a]))
                return sl_error(SL_EINVAL, "moments: query %zu: non-finite coordinate %zu", i, a);

    /* The queries in the tree's leaf order: the samples by their rows, other
     * points by the leaf that holds them (no result depends on it). */
    size_t *order = malloc(nq * sizeof *order);
    if (!order) return sl_error(SL_ENOMEM, "moments: out of memory for %zu queries", nq);
    if (Q == X) {
        size_t m = 0;
        for (size_t r = 0; r < n; ++r)
            if (tree_order[r] < nq) order[m++] = tree_order[r];
    } else {
        sl_status st = sl_kdtree_query_order(tree, nq, Q, order);
        if (st) {
            free(order);
            return st;
        }
    }

    const size_t chunk = K ? knn_batch_size(K) : RADIUS_CHUNK;
    const size_t nchunks = (nq + chunk - 1) / chunk;
    failure fail = {.query = SIZE_MAX, .status = SL_OK, .msg = ""};
    size_t done = 0;
    int alloc_failed = 0;
    unsigned progress_step = 0;

#pragma omp parallel
    {
        moments_work *mw = moments_work_alloc(tree, d, K);
        if (!mw) {
#pragma omp atomic write
            alloc_failed = 1;
        }
        int master = 1;
#ifdef _OPENMP
        master = omp_get_thread_num() == 0;
#endif
#pragma omp for schedule(dynamic, 1)
        for (size_t c = 0; c < nchunks; ++c) {
            const size_t p0 = c * chunk, p1 = p0 + chunk < nq ? p0 + chunk : nq;
            if (mw && K > 0) {
                const size_t m = p1 - p0;
                for (size_t k = 0; k < m; ++k) {
                    const size_t i = order[p0 + k];
                    memcpy(mw->q + k * d, Q + i * d, d * sizeof *mw->q);
                    mw->exclude[k] = leave_one_out ? i : (size_t)-1;
                }
                sl_status st = sl_kdtree_knn_batch(tree, mw->kw, m, mw->q, mw->exclude, K, knn_eps,
                                                   mw->knn_idx, mw->knn_d2);
                if (st) {
                    size_t lowest = SIZE_MAX;
                    for (size_t k = 0; k < m; ++k)
                        lowest = order[p0 + k] < lowest ? order[p0 + k] : lowest;
                    record_failure(&fail, lowest, st);
                } else {
                    prefetch_rows(X, d, mw->knn_idx, K);
                    for (size_t k = 0; k < m; ++k) {
                        const size_t i = order[p0 + k];
                        /* the next query's neighbours, scattered over X,
                         * on their way while this one's are summed */
                        if (k + 1 < m) prefetch_rows(X, d, mw->knn_idx + (k + 1) * K, K);
                        st = knn_moments(mw, X, mw->q + k * d, mw->knn_idx + k * K,
                                         mw->knn_d2 + k * K, hq ? hq + i : NULL, K0 + i, mu + i * d,
                                         Sig + i * d * d);
                        if (st) record_failure(&fail, i, st);
                    }
                }
            } else if (mw) {
                for (size_t p = p0; p < p1; ++p) {
                    const size_t i = order[p];
                    if (hq) hq[i] = h;
                    sl_status st =
                        radius_moments(tree, mw, P, Q + i * d, leave_one_out ? i : (size_t)-1, h,
                                       cutoff, K0 + i, mu + i * d, Sig + i * d * d);
                    if (st) record_failure(&fail, i, st);
                }
            }
            size_t now;
#pragma omp atomic capture
            now = done += p1 - p0;
            if (progress && master) {
                unsigned step = (unsigned)((double)now / (double)nq * PROGRESS_STEPS);
                if (step > progress_step) {
                    progress_step = step;
                    progress((double)step / PROGRESS_STEPS, progress_ctx);
                }
            }
        }
        moments_work_free(mw);
    }
    free(order);
    if (alloc_failed)
        return sl_error(SL_ENOMEM, "moments: out of memory for the per-thread workspaces");
    if (fail.query != SIZE_MAX) return sl_error(fail.status, "%s", fail.msg);
    if (progress && progress_step < PROGRESS_STEPS) progress(1.0, progress_ctx);
    return SL_OK;
}
