/* A k-d tree for nearest-neighbour and fixed-radius queries.
 *
 * Build: median split along the widest side of each node's bounding box, by
 * an nth_element selection (Hoare partition, median-of-three pivot) that
 * moves whole rows of a private copy of the points, so every node's points
 * end up contiguous (row-major, in leaf order). Nodes are split until they
 * hold at most LEAF_MAX points, so leaves hold LEAF_MAX / 2 to LEAF_MAX.
 * Median splits bound the depth by log2 n whatever the data (duplicates
 * included). A second copy B holds each leaf's points coordinate-major, for
 * the vector kernels (leaf_dist2).
 *
 * Squared distances are always computed as the plain loop
 *     d2 = 0; for (a = 0; a < d; ++a) d2 += (x_a - q_a)^2,
 * which is the definition every query returns (a brute force written the
 * same way agrees bit for bit, whatever kernel the CPU runs).
 *
 * Search: depth first, nearer child first, pruning a subtree when the lower
 * bound rd on its squared distance exceeds the current bound. rd is kept
 * incrementally as in Arya and Mount (and nanoflann): off[a] holds the
 * distance from q to the current cell along coordinate a, and entering the
 * far child of a split on coordinate a replaces off[a] by the distance to
 * that child's nearest coordinate (the child's exact extreme value, not the
 * split value), so rd += cut^2 - off[a]^2. Rounding can make rd exceed a
 * point's computed squared distance by a few ulps; the prune test carries a
 * relative slack of PRUNE_SLACK so no tie or boundary point is ever lost.
 * The (1 + eps)-approximate kNN search divides the bound by (1 + eps)^2,
 * the rule of Arya et al. (1998).
 *
 * kNN searches run in batches: one traversal for m queries, each with its
 * own bound and offsets, visiting a child for the queries that pass its
 * test, so a leaf is read once for every query of the batch that reaches it
 * (sl_kdtree_knn is a batch of one). Each query keeps candidates ordered by
 * (squared distance, index), so ties are broken by index and the exact
 * answer does not depend on the tree's shape or the batch.
 *
 * Measured at n = 10^6, d = 10, K = 200 (Gaussian data, leave-one-out,
 * queries in leaf order, one thread of a shared 2-core AVX-512 machine;
 * milliseconds per query, exact / eps = 0.5 / eps = 1): the one-query
 * search with a binary heap and leaves of 16 it replaces, 1.5 / 0.26 /
 * 0.13; now 0.21 / 0.078 / 0.044. The steps: batches of 512 queries (2x),
 * leaves of 32 (fewer nodes per point examined; 16, 32 and 64 gave the same
 * time, 32 and 64 a smaller error at equal eps), vector kernels that also
 * return the mask of the points within the threshold, and the candidate
 * buffer with bucketed compaction in place of the heap. Exact per-leaf
 * boxes pruned more leaves but cost as much as the distances they saved,
 * and with eps > 0 gave a worse error for the time.
 *
 * Radius queries collect (row, squared distance) pairs in the workspace;
 * the public query maps rows to indices and sorts them (LSD radix sort), so
 * a sum over them has a fixed order. Workspace buffers grow geometrically:
 * no allocation per query once they have reached the largest size needed. */
#include "score/score_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scoreloss/status.h"

#ifndef LEAF_MAX
#define LEAF_MAX 32
#endif
#if LEAF_MAX > 64 || LEAF_MAX % 8 != 0
#error "LEAF_MAX must be a multiple of 8 up to 64 (leaf masks are 64-bit)"
#endif
#define PRUNE_SLACK (1.0 + 1e-12)
#define SORT_SMALL 48 /* insertion sort below this many radius results */
#define RADIX_BITS 8
#define RADIX_SIZE (1u << RADIX_BITS)

/* A kNN candidate: a sample and its squared distance to the query. */
typedef struct candidate {
    double d2;
    size_t idx;
} candidate;

typedef uint64_t (*leaf_dist2_fn)(const double *blk, size_t cnt, size_t d, const double *q,
                                  double limit, double *acc);

typedef struct kd_node {
    size_t begin, end; /* rows [begin, end) of the permuted copy */
    size_t child;      /* left child (the right one is child + 1); 0 for a leaf */
    size_t dim;        /* split coordinate */
    double lo_max;     /* largest coordinate `dim` in the left child */
    double hi_min;     /* smallest coordinate `dim` in the right child */
} kd_node;

struct sl_kdtree {
    size_t n, d;
    const double *X; /* the caller's points */
    double *P;       /* the points, row-major, permuted into leaf order */
    double *B;       /* the same, each leaf's block coordinate-major (leaf_dist2) */
    size_t *perm;    /* perm[r] = original index of row r of P */
    kd_node *nodes;
    size_t nnodes;
    size_t depth;             /* of the deepest leaf (the root at 0) */
    leaf_dist2_fn leaf_dist2; /* the kernel for this CPU */
    double *box_lo, *box_hi;  /* bounding box of all points */
};

struct sl_kdtree_work {
    size_t d;
    double *off; /* distance from q to the current cell, per coordinate */
    /* kNN (struct knn_batch), for batches of up to batch_cap queries with
     * up to cand_cap candidates each: per query its candidates, threshold,
     * count, compaction limit, bound, offsets off and coordinates qt (d
     * each, stored coordinate-major); per tree level the active queries'
     * frames (query, lower bound; moved query, saved offset), (depth + 2) x
     * batch_cap; the batch's centre (d), a leaf's distances acc (LEAF_MAX)
     * and the compaction's scratch (cand_cap). Radius queries use off's
     * first d entries. */
    size_t cand_cap, batch_cap, depth_cap;
    candidate *cand, *thr, *cand_tmp;
    unsigned char *cand_bucket;
    size_t *count, *limit;
    double *bound, *acc;
    double *centre, *qt;
    size_t *frame_q, *frame_moved;
    double *frame_rd, *frame_saved;
    /* radius results (rows of P, then indices) and the radix sort's scratch */
    size_t cap;
    size_t *idx, *idx_tmp;
    double *d2, *d2_tmp;
};

/* ---- leaf distances ------------------------------------------------------ */

/* Squared distances from q to the points of a leaf into acc (LEAF_MAX;
 * only the first cnt are meaningful), each summed over the coordinates in
 * order: the plain loop's sum, bit for bit (vector lanes are separate
 * points; nothing is fused or reassociated). Returns the mask of the points
 * p < cnt with acc[p] <= limit, the ones a search goes on to look at. The
 * leaf's block is coordinate-major, so each coordinate is one contiguous run
 * of values; LEAF_MAX of them are read whatever the leaf's size (the excess
 * belongs to the next column or leaf, or to the padding, and is masked
 * out): a fixed trip count, straight vector code. Besides the portable
 * version there are AVX2 and AVX-512 ones, chosen when the tree is built
 * by what the CPU has (all three agree bit for bit). Measured at n = 10^6,
 * d = 10, K = 200, eps = 0.5: 0.126 ms per query with the portable code
 * (SSE2), 0.088 with AVX2, 0.079 with AVX-512. */
static uint64_t leaf_dist2_plain(const double *restrict blk, size_t cnt, size_t d,
                                 const double *restrict q, double limit, double *restrict acc) {
    double s[LEAF_MAX] = {0.0};
    for (size_t a = 0; a < d; ++a) {
        const double qa = q[a], *restrict col = blk + a * cnt;
        for (size_t p = 0; p < LEAF_MAX; ++p) {
            const double diff = col[p] - qa;
            s[p] += diff * diff;
        }
    }
    memcpy(acc, s, sizeof s);
    uint64_t mask = 0;
    for (size_t p = 0; p < cnt; ++p) mask |= (uint64_t)(s[p] <= limit) << p;
    return mask;
}

#if defined(__GNUC__) && defined(__x86_64__) && LEAF_MAX % 8 == 0
#include <immintrin.h>
#define HAVE_LEAF_SIMD 1

__attribute__((target("avx2"))) static uint64_t leaf_dist2_avx2(const double *blk, size_t cnt,
                                                                size_t d, const double *q,
                                                                double limit, double *acc) {
    __m256d s[LEAF_MAX / 4];
    for (size_t v = 0; v < LEAF_MAX / 4; ++v) s[v] = _mm256_setzero_pd();
    for (size_t a = 0; a < d; ++a) {
        const double *col = blk + a * cnt;
        const __m256d qa = _mm256_set1_pd(q[a]);
        for (size_t v = 0; v < LEAF_MAX / 4; ++v) {
            const __m256d x = _mm256_sub_pd(_mm256_loadu_pd(col + 4 * v), qa);
            s[v] = _mm256_add_pd(s[v], _mm256_mul_pd(x, x));
        }
    }
    const __m256d lim = _mm256_set1_pd(limit);
    uint64_t mask = 0;
    for (size_t v = 0; v < LEAF_MAX / 4; ++v) {
        _mm256_storeu_pd(acc + 4 * v, s[v]);
        mask |= (uint64_t)_mm256_movemask_pd(_mm256_cmp_pd(s[v], lim, _CMP_LE_OQ)) << (4 * v);
    }
    return cnt < 64 ? mask & ((UINT64_C(1) << cnt) - 1) : mask;
}

__attribute__((target("avx512f"))) static uint64_t leaf_dist2_avx512(const double *blk, size_t cnt,
                                                                     size_t d, const double *q,
                                                                     double limit, double *acc) {
    __m512d s[LEAF_MAX / 8];
    for (size_t v = 0; v < LEAF_MAX / 8; ++v) s[v] = _mm512_setzero_pd();
    for (size_t a = 0; a < d; ++a) {
        const double *col = blk + a * cnt;
        const __m512d qa = _mm512_set1_pd(q[a]);
        for (size_t v = 0; v < LEAF_MAX / 8; ++v) {
            const __m512d x = _mm512_sub_pd(_mm512_loadu_pd(col + 8 * v), qa);
            s[v] = _mm512_add_pd(s[v], _mm512_mul_pd(x, x));
        }
    }
    const __m512d lim = _mm512_set1_pd(limit);
    uint64_t mask = 0;
    for (size_t v = 0; v < LEAF_MAX / 8; ++v) {
        _mm512_storeu_pd(acc + 8 * v, s[v]);
        mask |= (uint64_t)_mm512_cmp_pd_mask(s[v], lim, _CMP_LE_OQ) << (8 * v);
    }
    return cnt < 64 ? mask & ((UINT64_C(1) << cnt) - 1) : mask;
}
#endif

/* The fastest leaf_dist2 the CPU runs. */
static leaf_dist2_fn pick_leaf_dist2(void) {
#ifdef HAVE_LEAF_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return leaf_dist2_avx512;
    if (__builtin_cpu_supports("avx2")) return leaf_dist2_avx2;
#endif
    return leaf_dist2_plain;
}

/* The index of the lowest set bit of mask != 0. */
static inline unsigned lowest_bit(uint64_t mask) {
#if defined(__GNUC__)
    return (unsigned)__builtin_ctzll(mask);
#else
    unsigned p = 0;
    while (!(mask & 1)) mask >>= 1, ++p;
    return p;
#endif
}

/* ---- build ---------------------------------------------------------------- */

static void swap_rows(double *W, size_t *perm, size_t d, size_t i, size_t j) {
    double *a = W + i * d, *b = W + j * d;
    for (size_t c = 0; c < d; ++c) {
        double t = a[c];
        a[c] = b[c];
        b[c] = t;
    }
    size_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
}

/* nth_element over rows [lo, hi) of W by coordinate dim: afterwards row k
 * holds the k-th smallest key, rows before it keys <= it and rows after it
 * keys >= it. Hoare's partition stops on keys equal to the pivot from both
 * sides, so heavy duplication still splits evenly. */
static void select_rows(double *W, size_t *perm, size_t d, size_t dim, size_t lo, size_t hi,
                        size_t k) {
#define KEY(r) W[(r)*d + dim]
    while (hi - lo > 8) {
        /* Median of three moved to lo: the pivot is then an element of the
         * range, which guarantees both parts are non-empty. */
        size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (KEY(mid) < KEY(lo)) swap_rows(W, perm, d, mid, lo);
        if (KEY(last) < KEY(lo)) swap_rows(W, perm, d, last, lo);
        if (KEY(last) < KEY(mid)) swap_rows(W, perm, d, last, mid);
        swap_rows(W, perm, d, lo, mid);
        double pivot = KEY(lo);
        size_t i = lo, j = hi - 1;
        for (;;) {
            while (KEY(i) < pivot) ++i;
            while (KEY(j) > pivot) --j;
            if (i >= j) break;
            swap_rows(W, perm, d, i, j);
            ++i;
            --j;
        }
        /* [lo, j] <= pivot <= [j + 1, hi), both non-empty */
        if (k <= j)
            hi = j + 1;
        else
            lo = j + 1;
    }
    for (size_t i = lo + 1; i < hi; ++i)
        for (size_t j = i; j > lo && KEY(j) < KEY(j - 1); --j) swap_rows(W, perm, d, j, j - 1);
#undef KEY
}

typedef struct build_ctx {
    sl_kdtree *t;
    double *W; /* t->P */
    double *lo, *hi;
} build_ctx;

static void build_node(build_ctx *c, size_t node, size_t depth) {
    sl_kdtree *t = c->t;
    const size_t d = t->d;
    size_t b = t->nodes[node].begin, e = t->nodes[node].end;
    if (e - b <= LEAF_MAX) {
        t->nodes[node].child = 0;
        if (depth > t->depth) t->depth = depth;
        return;
    }
    /* Widest side of the exact bounding box (lowest coordinate on ties). */
    const double *row = c->W + b * d;
    for (size_t a = 0; a < d; ++a) c->lo[a] = c->hi[a] = row[a];
    for (size_t r = b + 1; r < e; ++r) {
        row = c->W + r * d;
        for (size_t a = 0; a < d; ++a) {
            if (row[a] < c->lo[a]) c->lo[a] = row[a];
            if (row[a] > c->hi[a]) c->hi[a] = row[a];
        }
    }
    size_t dim = 0;
    double widest = -1.0;
    for (size_t a = 0; a < d; ++a)
        if (c->hi[a] - c->lo[a] > widest) {
            widest = c->hi[a] - c->lo[a];
            dim = a;
        }
    size_t mid = b + (e - b) / 2;
    select_rows(c->W, t->perm, d, dim, b, e, mid);
    double lo_max = c->W[b * d + dim];
    for (size_t r = b + 1; r < mid; ++r)
        if (c->W[r * d + dim] > lo_max) lo_max = c->W[r * d + dim];

    size_t left = t->nnodes;
    t->nnodes += 2;
    kd_node *nd = &t->nodes[node];
    nd->child = left;
    nd->dim = dim;
    nd->lo_max = lo_max;
    nd->hi_min = c->W[mid * d + dim];
    t->nodes[left] = (kd_node){.begin = b, .end = mid};
    t->nodes[left + 1] = (kd_node){.begin = mid, .end = e};
    build_node(c, left, depth + 1);
    build_node(c, left + 1, depth + 1);
}

sl_status sl_kdtree_build(size_t n, size_t d, const double *X, sl_kdtree **out) {
    if (!out) return sl_error(SL_EINVAL, "kdtree: no output pointer given");
    *out = NULL;
    if (n == 0) return sl_error(SL_EINVAL, "kdtree: no points to index (n = 0)");
    if (d == 0) return sl_error(SL_EINVAL, "kdtree: points need d >= 1 coordinates");
    if (!X) return sl_error(SL_EINVAL, "kdtree: no point array given");
    if (n > SIZE_MAX / sizeof(double) / d)
        return sl_error(SL_ENOMEM, "kdtree: %zu x %zu points do not fit in memory", n, d);
    for (size_t i = 0; i < n; ++i)
        for (size_t a = 0; a < d; ++a)
            if (!isfinite(X[i * d + a]))
                return sl_error(SL_EINVAL, "kdtree: point %zu has a non-finite coordinate %zu", i,
                                a);

    /* Leaves hold at least LEAF_MAX / 2 points (or all n), so there are at
     * most 2 n / LEAF_MAX + 1 of them and fewer than twice as many nodes. */
    size_t max_nodes = 2 * (2 * n / LEAF_MAX + 1);
    sl_kdtree *t = calloc(1, sizeof *t);
    double *box = malloc(2 * d * sizeof *box);
    if (!t || !box) goto nomem;
    t->n = n;
    t->d = d;
    t->X = X;
    t->leaf_dist2 = pick_leaf_dist2();
    t->P = malloc(n * d * sizeof *t->P);
    /* LEAF_MAX more: leaf_dist2 reads LEAF_MAX values of every column */
    t->B = calloc(n * d + LEAF_MAX, sizeof *t->B);
    t->perm = malloc(n * sizeof *t->perm);
    t->nodes = malloc(max_nodes * sizeof *t->nodes);
    t->box_lo = malloc(2 * d * sizeof *t->box_lo);
    if (!t->P || !t->B || !t->perm || !t->nodes || !t->box_lo) goto nomem;
    t->box_hi = t->box_lo + d;

    memcpy(t->P, X, n * d * sizeof *t->P);
    for (size_t i = 0; i < n; ++i) t->perm[i] = i;
    for (size_t a = 0; a < d; ++a) t->box_lo[a] = t->box_hi[a] = X[a];
    for (size_t i = 1; i < n; ++i)
        for (size_t a = 0; a < d; ++a) {
            double v = X[i * d + a];
            if (v < t->box_lo[a]) t->box_lo[a] = v;
            if (v > t->box_hi[a]) t->box_hi[a] = v;
        }
    t->nodes[0] = (kd_node){.begin = 0, .end = n};
    t->nnodes = 1;
    build_ctx c = {.t = t, .W = t->P, .lo = box, .hi = box + d};
    build_node(&c, 0, 0);
    for (size_t k = 0; k < t->nnodes; ++k) {
        const kd_node *nd = &t->nodes[k];
        if (nd->child) continue;
        const size_t cnt = nd->end - nd->begin;
        double *blk = t->B + nd->begin * d;
        for (size_t p = 0; p < cnt; ++p)
            for (size_t a = 0; a < d; ++a) blk[a * cnt + p] = t->P[(nd->begin + p) * d + a];
    }
    free(box);
    *out = t;
    return SL_OK;
nomem:
    free(box);
    sl_kdtree_free(t);
    return sl_error(SL_ENOMEM, "kdtree: out of memory for %zu x %zu points", n, d);
}

void sl_kdtree_free(sl_kdtree *t) {
    if (!t) return;
    free(t->P);
    free(t->B);
    free(t->perm);
    free(t->nodes);
    free(t->box_lo);
    free(t);
}

sl_status sl_kdtree_info(const sl_kdtree *t, size_t *n, size_t *d, const double **X,
                         const size_t **order, const double **rows) {
    if (!t) return sl_error(SL_EINVAL, "kdtree: no tree given");
    if (n) *n = t->n;
    if (d) *d = t->d;
    if (X) *X = t->X;
    if (order) *order = t->perm;
    if (rows) *rows = t->P;
    return SL_OK;
}

/* ---- workspace ------------------------------------------------------------ */

static void free_batch(sl_kdtree_work *w) {
    free(w->cand);
    free(w->thr);
    free(w->cand_tmp);
    free(w->cand_bucket);
    free(w->count);
    free(w->limit);
    free(w->bound);
    free(w->acc);
    free(w->off);
    free(w->centre);
    free(w->qt);
    free(w->frame_q);
    free(w->frame_moved);
    free(w->frame_rd);
    free(w->frame_saved);
    w->cand = w->thr = w->cand_tmp = NULL;
    w->cand_bucket = NULL;
    w->count = w->limit = w->frame_q = w->frame_moved = NULL;
    w->bound = w->acc = w->off = w->centre = w->qt = w->frame_rd = w->frame_saved = NULL;
    w->batch_cap = w->cand_cap = w->depth_cap = 0;
}

/* Room for a batch of m queries of `cap` candidates in a tree of the given
 * depth. The contents need not survive: buffers are replaced, not grown. */
static int grow_batch(sl_kdtree_work *w, size_t m, size_t cap, size_t depth) {
    if (m <= w->batch_cap && cap <= w->cand_cap && depth <= w->depth_cap) return 1;
    size_t mc = m > w->batch_cap ? m : w->batch_cap, kc = cap > w->cand_cap ? cap : w->cand_cap;
    size_t dc = depth > w->depth_cap ? depth : w->depth_cap;
    if (mc == 0) mc = 1;
    if (kc == 0) kc = 1;
    free_batch(w);
    const size_t limit = SIZE_MAX / sizeof(candidate);
    if (kc > limit / mc || dc + 2 > limit / mc || w->d > limit / mc || LEAF_MAX > limit / mc)
        return 0;
    w->cand = malloc(mc * kc * sizeof *w->cand);
    w->cand_tmp = malloc(kc * sizeof *w->cand_tmp);
    w->cand_bucket = malloc(kc * sizeof *w->cand_bucket);
    w->thr = malloc(mc * sizeof *w->thr);
    w->count = malloc(mc * sizeof *w->count);
    w->limit = malloc(mc * sizeof *w->limit);
    w->bound = malloc(mc * sizeof *w->bound);
    w->acc = malloc(LEAF_MAX * sizeof *w->acc);
    w->off = malloc(mc * w->d * sizeof *w->off);
    w->qt = malloc(mc * w->d * sizeof *w->qt);
    w->centre = malloc(w->d * sizeof *w->centre);
    w->frame_q = malloc((dc + 2) * mc * sizeof *w->frame_q);
    w->frame_moved = malloc((dc + 2) * mc * sizeof *w->frame_moved);
    w->frame_rd = malloc((dc + 2) * mc * sizeof *w->frame_rd);
    w->frame_saved = malloc((dc + 2) * mc * sizeof *w->frame_saved);
    if (!w->cand || !w->cand_tmp || !w->cand_bucket || !w->thr || !w->count || !w->limit ||
        !w->bound || !w->acc || !w->off || !w->qt || !w->centre || !w->frame_q || !w->frame_moved ||
        !w->frame_rd || !w->frame_saved) {
        free_batch(w);
        return 0;
    }
    w->batch_cap = mc, w->cand_cap = kc, w->depth_cap = dc;
    return 1;
}

static int grow_results(sl_kdtree_work *w, size_t need) {
    if (need <= w->cap) return 1;
    size_t cap = w->cap ? w->cap : 64;
    while (cap < need) cap *= 2;
    size_t *idx = realloc(w->idx, cap * sizeof *idx);
    if (idx) w->idx = idx;
    size_t *idx_tmp = realloc(w->idx_tmp, cap * sizeof *idx_tmp);
    if (idx_tmp) w->idx_tmp = idx_tmp;
    double *d2 = realloc(w->d2, cap * sizeof *d2);
    if (d2) w->d2 = d2;
    double *d2_tmp = realloc(w->d2_tmp, cap * sizeof *d2_tmp);
    if (d2_tmp) w->d2_tmp = d2_tmp;
    if (!idx || !idx_tmp || !d2 || !d2_tmp) return 0;
    w->cap = cap;
    return 1;
}

sl_status sl_kdtree_work_alloc(const sl_kdtree *t, size_t capacity, sl_kdtree_work **out) {
    if (!out) return sl_error(SL_EINVAL, "kdtree: no output pointer given");
    *out = NULL;
    if (!t) return sl_error(SL_EINVAL, "kdtree: no tree given");
    if (capacity > t->n) capacity = t->n;
    sl_kdtree_work *w = calloc(1, sizeof *w);
    if (w) w->d = t->d;
    if (!w || !grow_batch(w, 1, capacity, t->depth) || !grow_results(w, capacity)) {
        sl_kdtree_work_free(w);
        return sl_error(SL_ENOMEM, "kdtree: out of memory for a workspace of %zu results",
                        capacity);
    }
    return *out = w, SL_OK;
}

void sl_kdtree_work_free(sl_kdtree_work *w) {
    if (!w) return;
    free_batch(w);
    free(w->idx);
    free(w->idx_tmp);
    free(w->d2);
    free(w->d2_tmp);
    free(w);
}

/* ---- queries -------------------------------------------------------------- */

static inline uint64_t leaf_dist2(const sl_kdtree *t, const kd_node *nd, const double *q,
                                  double limit, double *acc) {
    return t->leaf_dist2(t->B + nd->begin * t->d, nd->end - nd->begin, t->d, q, limit, acc);
}

/* Distance from q to the tree's bounding box, per coordinate into
 * off[a * stride]; returns the squared distance. */
static double root_offsets(const sl_kdtree *t, const double *q, double *off, size_t stride) {
    double rd = 0.0;
    for (size_t a = 0; a < t->d; ++a) {
        double o = 0.0;
        if (q[a] < t->box_lo[a])
            o = t->box_lo[a] - q[a];
        else if (q[a] > t->box_hi[a])
            o = q[a] - t->box_hi[a];
        off[a * stride] = o;
        rd += o * o;
    }
    return rd;
}

static sl_status check_query(const sl_kdtree *t, const sl_kdtree_work *w, const double *q) {
    if (!t || !w) return sl_error(SL_EINVAL, "kdtree: no tree or workspace given");
    if (w->d != t->d)
        return sl_error(SL_EINVAL, "kdtree: workspace for d = %zu used with a tree of d = %zu",
                        w->d, t->d);
    if (!q) return sl_error(SL_EINVAL, "kdtree: no query point given");
    for (size_t a = 0; a < t->d; ++a)
        if (!isfinite(q[a]))
            return sl_error(SL_EINVAL, "kdtree: query has a non-finite coordinate %zu", a);
    return SL_OK;
}

/* (d2, i) before (e2, j) in the (distance, index) order. */
static inline int pair_less(double d2, size_t i, double e2, size_t j) {
    return (d2 < e2) | ((d2 == e2) & (i < j));
}

static inline int candidate_less(candidate a, candidate b) {
    return pair_less(a.d2, a.idx, b.d2, b.idx);
}

/* Rearranges e[0, count) so that e[k] is the entry of rank k by (d2, idx),
 * those before it smaller and those after larger (nth_element). Lomuto
 * partitions around a median of three, written without branches on the
 * data: a compare of random distances is a coin flip for the branch
 * predictor. */
static void select_candidates(candidate *e, size_t count, size_t k) {
    size_t lo = 0, hi = count;
    candidate t;
#define SWAP(i, j) (t = e[i], e[i] = e[j], e[j] = t)
    while (hi - lo > 8) {
        const size_t mid = lo + (hi - lo) / 2, last = hi - 1;
        if (candidate_less(e[mid], e[lo])) SWAP(mid, lo);
        if (candidate_less(e[last], e[lo])) SWAP(last, lo);
        if (candidate_less(e[mid], e[last])) SWAP(mid, last);
        /* the median is now at last: the pivot */
        const candidate pivot = e[last];
        size_t store = lo;
        for (size_t i = lo; i < last; ++i) {
            const candidate x = e[i];
            const size_t less = (size_t)candidate_less(x, pivot);
            e[i] = e[store];
            e[store] = x;
            store += less;
        }
        SWAP(store, last);
        if (k == store) return;
        if (k < store)
            hi = store;
        else
            lo = store + 1;
    }
#undef SWAP
    for (size_t i = lo + 1; i < hi; ++i) {
        const candidate v = e[i];
        size_t j = i;
        for (; j > lo && candidate_less(v, e[j - 1]); --j) e[j] = e[j - 1];
        e[j] = v;
    }
}

static int candidate_cmp(const void *pa, const void *pb) {
    const candidate *a = pa, *b = pb;
    return candidate_less(*a, *b) ? -1 : candidate_less(*b, *a);
}

/* A query's candidate buffer holds up to cand_cap(K) entries: the K best
 * so far plus the ones found since, compacted back to K when full. A heap
 * of the K best cost more: every insertion walked its 4 to 8 levels, which
 * miss the cache once a batch's heaps outgrow L1 (the profile put 30% of
 * the kNN time in the heap); the buffer appends, and a compaction every
 * K / 2 insertions costs a few passes over it (9% of the time). */
static inline size_t cand_cap(size_t K) {
    return K + (K / 2 > 16 ? K / 2 : 16);
}

/* A batch of m queries searched together. Query b: its point Q + b d, the
 * sample it excludes, its candidates cand + b cand_cap(K) (count[b] of
 * them), thr[b], the K-th best candidate at the last compaction ((inf,
 * SIZE_MAX) before K were found), and limit[b], the count that triggers
 * the next compaction; bound[b] = thr[b].d2 (1 + eps)^-2 PRUNE_SLACK, the
 * squared distance beyond which it skips a cell; and off[a m + b], its
 * distance to the current cell along coordinate a (coordinate-major, as Qt,
 * so a node's test reads one contiguous row). The threshold lags
 * the exact K-th by at most the candidates since the last compaction: the
 * pruning is a little weaker than with a heap, never wrong. */
typedef struct knn_batch {
    const sl_kdtree *t;
    size_t m, K, d, cap;
    const double *Q;       /* m x d, the queries */
    double *Qt;            /* d x m, the same transposed */
    const size_t *exclude; /* NULL: none */
    double shrink;         /* PRUNE_SLACK / (1 + eps)^2 */
    candidate *cand, *thr;
    size_t *count, *limit;
    double *bound, *off;
    double *acc;           /* LEAF_MAX: distances to the current leaf's points */
    double *centre;        /* d: the mean of the batch's queries */
    candidate *tmp;        /* cap: compaction scratch */
    unsigned char *bucket; /* cap: compaction scratch */
    size_t *frame_q, *frame_moved;
    double *frame_rd, *frame_saved;
} knn_batch;

#define COMPACT_BUCKETS 256

/* e[0, count): the K smallest by (d2, idx) to the front, the K-th at
 * K - 1, given that none is above the threshold thr. When thr.d2 is finite
 * and positive, a counting pass over COMPACT_BUCKETS buckets of d2 / thr.d2
 * (monotone in d2) finds the bucket of the K-th, and only that bucket's few
 * entries are ordered by (d2, idx) (the profile: about 4x cheaper than a
 * quickselect over all of them). tmp: room for count entries, bucket: for
 * count bytes. */
static void keep_smallest(candidate *e, size_t count, size_t K, candidate thr, candidate *tmp,
                          unsigned char *bucket) {
    if (count == K) {
        /* the first K found: the K-th is their largest */
        size_t top = 0;
        for (size_t i = 1; i < K; ++i) top = candidate_less(e[top], e[i]) ? i : top;
        const candidate t = e[top];
        e[top] = e[K - 1];
        e[K - 1] = t;
        return;
    }
    if (!(thr.d2 > 0) || !isfinite(thr.d2)) {
        select_candidates(e, count, K - 1);
        return;
    }
    const double scale = COMPACT_BUCKETS / thr.d2;
    size_t hist[COMPACT_BUCKETS] = {0};
    for (size_t i = 0; i < count; ++i) {
        const double f = e[i].d2 * scale; /* in [0, COMPACT_BUCKETS] */
        const unsigned k = f < COMPACT_BUCKETS - 1 ? (unsigned)f : COMPACT_BUCKETS - 1;
        bucket[i] = (unsigned char)k;
        hist[k]++;
    }
    size_t below = 0, kb = 0;
    while (below + hist[kb] < K) below += hist[kb++];
    /* entries of lower buckets to the front (in place: the write never
     * passes the read), those of bucket kb aside */
    size_t front = 0, side = 0;
    for (size_t i = 0; i < count; ++i) {
        const candidate x = e[i];
        e[front] = x;
        tmp[side] = x;
        front += bucket[i] < kb;
        side += bucket[i] == kb;
    }
    select_candidates(tmp, side, K - below - 1);
    memcpy(e + below, tmp, (K - below) * sizeof *e);
}

/* Keeps query b's K best candidates, the K-th at position K - 1. */
static void compact(knn_batch *c, size_t b) {
    candidate *e = c->cand + b * c->cap;
    keep_smallest(e, c->count[b], c->K, c->thr[b], c->tmp, c->bucket);
    c->count[b] = c->K;
    c->thr[b] = e[c->K - 1];
    c->limit[b] = c->cap;
    c->bound[b] = c->thr[b].d2 * c->shrink;
}

/* The active queries (the first na of frame `level`) at a leaf: the points
 * within each one's threshold join its candidates. */
static void batch_leaf(knn_batch *c, const kd_node *nd, size_t level, size_t na) {
    const sl_kdtree *t = c->t;
    const size_t *fq = c->frame_q + level * c->m;
    const size_t cnt = nd->end - nd->begin, d = c->d;
    const double *blk = t->B + nd->begin * d;
    const size_t *perm = t->perm + nd->begin;
    double *acc = c->acc;
    for (size_t k = 0; k < na; ++k) {
        const size_t b = fq[k];
        candidate thr = c->thr[b];
        /* Most points reached late in a search lie beyond the threshold:
         * the kernel's mask leaves only the others. */
        uint64_t mask = t->leaf_dist2(blk, cnt, d, c->Q + b * d, thr.d2, acc);
        if (!mask) continue;
        const size_t exclude = c->exclude ? c->exclude[b] : (size_t)-1;
        candidate *e = c->cand + b * c->cap;
        size_t count = c->count[b];
        for (; mask; mask &= mask - 1) {
            const unsigned p = lowest_bit(mask);
            const double d2 = acc[p];
            const size_t idx = perm[p];
            if (idx == exclude || !pair_less(d2, idx, thr.d2, thr.idx)) continue;
            e[count++] = (candidate){d2, idx};
            if (count == c->limit[b]) {
                c->count[b] = count;
                compact(c, b);
                count = c->count[b];
                thr = c->thr[b];
            }
        }
        c->count[b] = count;
    }
}

/* Visits `node` for the na active queries of frame `level` (their indices
 * and lower bounds on their squared distance to the node's cell). Each
 * query enters a child only while the child's bound passes its pruning
 * test, entering its far child with off and the bound updated as in the
 * header comment, restored afterwards. */
static void batch_node(knn_batch *c, size_t node, size_t level, size_t na) {
    const kd_node *nd = &c->t->nodes[node];
    if (!nd->child) {
        batch_leaf(c, nd, level, na);
        return;
    }
    const size_t m = c->m, dim = nd->dim;
    const double lo = nd->lo_max, hi = nd->hi_min;
    /* coordinate dim of every query, and its offset: contiguous rows */
    const double *qt = c->Qt + dim * m;
    double *offt = c->off + dim * m;
    const size_t *fq = c->frame_q + level * m;
    const double *frd = c->frame_rd + level * m;
    /* Children in the order that is near-first for the batch's centre (one
     * test, where a vote of the queries would loop over them). */
    const double cd = c->centre[dim];
    const unsigned char left_first = (cd - lo) + (cd - hi) < 0;
    size_t *cq = c->frame_q + (level + 1) * m;
    double *crd = c->frame_rd + (level + 1) * m;
    /* The queries whose offset along dim changed in the child: their index
     * and old offset, restored on return. */
    size_t *moved = c->frame_moved + (level + 1) * m;
    double *saved = c->frame_saved + (level + 1) * m;
    for (int pass = 0; pass < 2; ++pass) {
        const unsigned char left = pass == 0 ? left_first : !left_first;
        size_t nc = 0, nm = 0;
        for (size_t k = 0; k < na; ++k) {
            const size_t b = fq[k];
            const double qd = qt[b];
            const unsigned char left_near = (qd - lo) + (qd - hi) < 0;
            double rd = frd[k];
            if (left_near != left) {
                const double cut = left ? qd - lo : hi - qd, old = offt[b];
                rd += cut * cut - old * old;
                if (!(rd <= c->bound[b])) continue;
                moved[nm] = b;
                saved[nm++] = old;
                offt[b] = cut;
            } else if (!(rd <= c->bound[b])) {
                continue;
            }
            cq[nc] = b;
            crd[nc++] = rd;
        }
        if (nc) batch_node(c, nd->child + (left ? 0 : 1), level + 1, nc);
        for (size_t k = 0; k < nm; ++k) offt[moved[k]] = saved[k];
    }
}

/* The batched search; sorted: each row nearest first, else the K-th first
 * and the rest as the candidates lie. */
static sl_status knn_batch_search(const sl_kdtree *t, sl_kdtree_work *w, size_t m, const double *Q,
                                  const size_t *exclude, size_t K, double eps, int sorted,
                                  size_t *idx, double *dist2) {
    if (!t || !w) return sl_error(SL_EINVAL, "kdtree: no tree or workspace given");
    if (w->d != t->d)
        return sl_error(SL_EINVAL, "kdtree: workspace for d = %zu used with a tree of d = %zu",
                        w->d, t->d);
    if (!(eps >= 0.0) || !isfinite(eps))
        return sl_error(SL_EINVAL, "kdtree: approximation eps = %g is not a finite number >= 0",
                        eps);
    if (m == 0) return SL_OK;
    if (!Q) return sl_error(SL_EINVAL, "kdtree: no query point given");
    const size_t d = t->d;
    for (size_t b = 0; b < m; ++b) {
        for (size_t a = 0; a < d; ++a)
            if (!isfinite(Q[b * d + a]))
                return sl_error(SL_EINVAL, "kdtree: query %zu has a non-finite coordinate %zu", b,
                                a);
        const size_t excl = exclude ? exclude[b] : (size_t)-1;
        const size_t available = t->n - (excl < t->n ? 1 : 0);
        if (K > available)
            return sl_error(SL_EINVAL,
                            "kdtree: %zu nearest neighbours asked of %zu points (%zu after "
                            "excluding the query)",
                            K, t->n, available);
    }
    if (K == 0) return SL_OK;
    if (!idx || !dist2) return sl_error(SL_EINVAL, "kdtree: no output arrays given");
    if (!grow_batch(w, m, cand_cap(K), t->depth))
        return sl_error(SL_ENOMEM, "kdtree: out of memory for %zu x %zu nearest neighbours", m, K);
    knn_batch c = {.t = t,
                   .m = m,
                   .K = K,
                   .d = d,
                   .cap = cand_cap(K),
                   .Q = Q,
                   .Qt = w->qt,
                   .exclude = exclude,
                   .shrink = PRUNE_SLACK / ((1.0 + eps) * (1.0 + eps)),
                   .cand = w->cand,
                   .thr = w->thr,
                   .count = w->count,
                   .limit = w->limit,
                   .bound = w->bound,
                   .off = w->off,
                   .acc = w->acc,
                   .centre = w->centre,
                   .tmp = w->cand_tmp,
                   .bucket = w->cand_bucket,
                   .frame_q = w->frame_q,
                   .frame_moved = w->frame_moved,
                   .frame_rd = w->frame_rd,
                   .frame_saved = w->frame_saved};
    for (size_t a = 0; a < d; ++a) c.centre[a] = 0.0;
    for (size_t b = 0; b < m; ++b)
        for (size_t a = 0; a < d; ++a) c.centre[a] += Q[b * d + a];
    for (size_t a = 0; a < d; ++a) c.centre[a] /= (double)m;
    for (size_t b = 0; b < m; ++b) {
        c.count[b] = 0;
        c.limit[b] = K;
        c.thr[b] = (candidate){INFINITY, SIZE_MAX};
        c.bound[b] = INFINITY;
        c.frame_q[b] = b;
        c.frame_rd[b] = root_offsets(t, Q + b * d, c.off + b, m);
        for (size_t a = 0; a < d; ++a) c.Qt[a * m + b] = Q[b * d + a];
    }
    batch_node(&c, 0, 0, m);
    for (size_t b = 0; b < m; ++b) {
        /* Every cell was searched while fewer than K were found, and there
         * are at least K samples: count >= K. */
        if (c.count[b] > K) compact(&c, b);
        candidate *e = c.cand + b * c.cap;
        double *out_d2 = dist2 + b * K;
        size_t *out_idx = idx + b * K;
        if (sorted) {
            qsort(e, K, sizeof *e, candidate_cmp);
            for (size_t r = 0; r < K; ++r) out_d2[r] = e[r].d2, out_idx[r] = e[r].idx;
        } else {
            /* the K-th first, then the others as they are */
            out_d2[0] = e[K - 1].d2, out_idx[0] = e[K - 1].idx;
            for (size_t r = 0; r + 1 < K; ++r) out_d2[r + 1] = e[r].d2, out_idx[r + 1] = e[r].idx;
        }
    }
    return SL_OK;
}

sl_status sl_kdtree_knn(const sl_kdtree *t, sl_kdtree_work *w, const double *q, size_t K,
                        size_t exclude, double eps, size_t *idx, double *dist2) {
    return knn_batch_search(t, w, 1, q, &exclude, K, eps, 1, idx, dist2);
}

sl_status sl_kdtree_knn_batch(const sl_kdtree *t, sl_kdtree_work *w, size_t m, const double *Q,
                              const size_t *exclude, size_t K, double eps, size_t *idx,
                              double *dist2) {
    return knn_batch_search(t, w, m, Q, exclude, K, eps, 0, idx, dist2);
}

typedef struct radius_ctx {
    const sl_kdtree *t;
    sl_kdtree_work *w;
    const double *q;
    double r2, bound;
    size_t exclude, count;
    int nomem;
} radius_ctx;

static void radius_leaf(radius_ctx *c, const kd_node *nd) {
    double acc[LEAF_MAX];
    uint64_t mask = leaf_dist2(c->t, nd, c->q, c->r2, acc);
    const size_t *perm = c->t->perm + nd->begin;
    const size_t cnt = nd->end - nd->begin;
    if (!grow_results(c->w, c->count + cnt)) {
        c->nomem = 1;
        return;
    }
    size_t *out_row = c->w->idx;
    double *out_d2 = c->w->d2;
    size_t m = c->count;
    for (; mask; mask &= mask - 1) {
        const unsigned p = lowest_bit(mask);
        if (perm[p] == c->exclude) continue;
        out_row[m] = nd->begin + p;
        out_d2[m] = acc[p];
        ++m;
    }
    c->count = m;
}

static void radius_node(radius_ctx *c, size_t node, double rd) {
    const kd_node *nd = &c->t->nodes[node];
    if (!nd->child) {
        radius_leaf(c, nd);
        return;
    }
    const size_t dim = nd->dim;
    const double qd = c->q[dim];
    size_t near, far;
    double cut;
    if ((qd - nd->lo_max) + (qd - nd->hi_min) < 0) {
        near = nd->child;
        far = nd->child + 1;
        cut = nd->hi_min - qd;
    } else {
        near = nd->child + 1;
        far = nd->child;
        cut = qd - nd->lo_max;
    }
    radius_node(c, near, rd);
    if (c->nomem) return;
    double *off = c->w->off, old = off[dim];
    double far_rd = rd + (cut * cut - old * old);
    if (far_rd <= c->bound) {
        off[dim] = cut;
        radius_node(c, far, far_rd);
        off[dim] = old;
    }
}

/* Sorts the m results by index: insertion sort when few, else an LSD radix
 * sort on RADIX_BITS-bit digits of the index (as many passes as n needs). */
static void sort_by_index(sl_kdtree_work *w, size_t m, size_t n) {
    size_t *idx = w->idx;
    double *d2 = w->d2;
    if (m < SORT_SMALL) {
        for (size_t i = 1; i < m; ++i) {
            size_t ki = idx[i];
            double vi = d2[i];
            size_t j = i;
            for (; j > 0 && idx[j - 1] > ki; --j) {
                idx[j] = idx[j - 1];
                d2[j] = d2[j - 1];
            }
            idx[j] = ki;
            d2[j] = vi;
        }
        return;
    }
    size_t *src_i = idx, *dst_i = w->idx_tmp;
    double *src_d = d2, *dst_d = w->d2_tmp;
    for (unsigned shift = 0; shift < 8 * sizeof(size_t) && ((n - 1) >> shift) != 0;
         shift += RADIX_BITS) {
        size_t count[RADIX_SIZE] = {0};
        for (size_t i = 0; i < m; ++i) count[(src_i[i] >> shift) & (RADIX_SIZE - 1)]++;
        size_t sum = 0;
        for (unsigned b = 0; b < RADIX_SIZE; ++b) {
            size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < m; ++i) {
            size_t pos = count[(src_i[i] >> shift) & (RADIX_SIZE - 1)]++;
            dst_i[pos] = src_i[i];
            dst_d[pos] = src_d[i];
        }
        size_t *ti = src_i;
        src_i = dst_i;
        dst_i = ti;
        double *td = src_d;
        src_d = dst_d;
        dst_d = td;
    }
    if (src_i != idx) {
        /* An odd number of passes left the result in the scratch buffers. */
        w->idx_tmp = w->idx;
        w->idx = src_i;
        w->d2_tmp = w->d2;
        w->d2 = src_d;
    }
}

/* Rows within r of q into w->idx / w->d2 (search order); returns the count
 * through *count. */
static sl_status radius_search(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                               size_t exclude, size_t *count) {
    sl_status st = check_query(t, w, q);
    if (st) return st;
    if (!(r >= 0.0)) return sl_error(SL_EINVAL, "kdtree: query radius %g is not >= 0", r);
    double r2 = r * r;
    radius_ctx c = {.t = t,
                    .w = w,
                    .q = q,
                    .r2 = r2,
                    .bound = r2 * PRUNE_SLACK,
                    .exclude = exclude,
                    .count = 0,
                    .nomem = 0};
    if (!grow_batch(w, 1, 0, 0))
        return sl_error(SL_ENOMEM, "kdtree: out of memory for a query workspace");
    double rd = root_offsets(t, q, w->off, 1);
    if (rd <= c.bound) radius_node(&c, 0, rd);
    if (c.nomem)
        return sl_error(SL_ENOMEM, "kdtree: out of memory for %zu radius query results",
                        c.count + LEAF_MAX);
    *count = c.count;
    return SL_OK;
}

sl_status sl_kdtree_radius_rows(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                                size_t exclude, size_t *count, const size_t **rows,
                                const double **dist2) {
    if (!count || !rows || !dist2) return sl_error(SL_EINVAL, "kdtree: no output pointers given");
    *count = 0;
    *rows = NULL;
    *dist2 = NULL;
    size_t m = 0;
    sl_status st = radius_search(t, w, q, r, exclude, &m);
    if (st) return st;
    *count = m;
    *rows = w->idx;
    *dist2 = w->d2;
    return SL_OK;
}

sl_status sl_kdtree_radius(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                           size_t exclude, size_t *count, const size_t **idx,
                           const double **dist2) {
    if (!count || !idx || !dist2) return sl_error(SL_EINVAL, "kdtree: no output pointers given");
    *count = 0;
    *idx = NULL;
    *dist2 = NULL;
    size_t m = 0;
    sl_status st = radius_search(t, w, q, r, exclude, &m);
    if (st) return st;
    for (size_t k = 0; k < m; ++k) w->idx[k] = t->perm[w->idx[k]];
    sort_by_index(w, m, t->n);
    *count = m;
    *idx = w->idx;
    *dist2 = w->d2;
    return SL_OK;
}

/* ---- query order ---------------------------------------------------------- */

typedef struct keyed_query {
    size_t leaf_row; /* first row of the leaf whose cell holds the query */
    size_t query;
} keyed_query;

static int keyed_query_cmp(const void *pa, const void *pb) {
    const keyed_query *a = pa, *b = pb;
    if (a->leaf_row != b->leaf_row) return a->leaf_row < b->leaf_row ? -1 : 1;
    return a->query < b->query ? -1 : a->query > b->query;
}

sl_status sl_kdtree_query_order(const sl_kdtree *t, size_t nq, const double *Q, size_t *order) {
    if (!t) return sl_error(SL_EINVAL, "kdtree: no tree given");
    if (nq == 0) return SL_OK;
    if (!Q || !order) return sl_error(SL_EINVAL, "kdtree: no query points or output given");
    if (nq > SIZE_MAX / sizeof(keyed_query))
        return sl_error(SL_ENOMEM, "kdtree: %zu queries do not fit in memory", nq);
    keyed_query *key = malloc(nq * sizeof *key);
    if (!key) return sl_error(SL_ENOMEM, "kdtree: out of memory for ordering %zu queries", nq);
    const size_t d = t->d;
    for (size_t i = 0; i < nq; ++i) {
        const double *q = Q + i * d;
        size_t node = 0;
        while (t->nodes[node].child) {
            const kd_node *nd = &t->nodes[node];
            const double qd = q[nd->dim];
            /* the nearer child, as the searches choose it (NaN goes right) */
            node = nd->child + ((qd - nd->lo_max) + (qd - nd->hi_min) < 0 ? 0 : 1);
        }
        key[i] = (keyed_query){t->nodes[node].begin, i};
    }
    qsort(key, nq, sizeof *key, keyed_query_cmp);
    for (size_t i = 0; i < nq; ++i) order[i] = key[i].query;
    free(key);
    return SL_OK;
}
