/* An exact k-d tree for nearest-neighbour and fixed-radius queries.
 *
 * Build: median split along the widest side of each node's bounding box, by
 * an nth_element selection (Hoare partition, median-of-three pivot) that
 * moves whole rows of a private copy of the points, so every node's points
 * end up contiguous. Nodes are split until they hold at most LEAF_MAX points
 * (leaves then hold LEAF_MAX / 2 to LEAF_MAX). Each leaf's block of the copy
 * is stored dimension-major (coordinate a of point p at a * count + p), so
 * the squared distances of a whole leaf are computed by a loop over points
 * that the compiler vectorises, each one still summed over the coordinates
 * in order 0..d-1: the same rounding as the plain loop
 *     d2 = 0; for (a = 0; a < d; ++a) d2 += (x_a - q_a)^2,
 * which is the definition of the squared distance every query returns.
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
 *
 * kNN keeps a bounded max-heap ordered by (squared distance, index), so ties
 * are broken by index and the answer does not depend on the tree's shape.
 * Radius queries collect (index, squared distance) pairs in the workspace
 * and sort them by index (LSD radix sort), so a sum over them has a fixed
 * order. Workspace buffers grow geometrically: no allocation per query once
 * they have reached the largest size needed. */
#include "score/score_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scoreloss/status.h"

#define LEAF_MAX 16
#define PRUNE_SLACK (1.0 + 1e-12)
#define SORT_SMALL 48 /* insertion sort below this many radius results */
#define RADIX_BITS 8
#define RADIX_SIZE (1u << RADIX_BITS)

/* Internal accessor for moments_neighbours.c (proposed for
 * score_internal.h): the shape and sample array the tree was built over, to
 * check them against the caller's, and the samples in leaf order (order[r]
 * = the sample at row r of the permuted copy), the query order that keeps
 * consecutive searches in the same part of the tree. Any pointer may be
 * NULL. */
sl_status sl_kdtree_info(const sl_kdtree *t, size_t *n, size_t *d, const double **X,
                         const size_t **order);

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
    double *P;       /* the points, permuted, each leaf block dimension-major */
    size_t *perm;    /* perm[r] = original index of permuted row r */
    kd_node *nodes;
    size_t nnodes;
    double *box_lo, *box_hi; /* bounding box of all points */
};

struct sl_kdtree_work {
    size_t d;
    double *off; /* per-coordinate distance from q to the current cell */
    /* kNN heap */
    size_t heap_cap;
    double *heap_d2;
    size_t *heap_idx;
    /* radius results and the radix sort's scratch */
    size_t cap;
    size_t *idx, *idx_tmp;
    double *d2, *d2_tmp;
};

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

/* Rewrites rows [b, e) of W dimension-major in place (tmp: LEAF_MAX * d). */
static void store_leaf(double *W, size_t d, size_t b, size_t e, double *tmp) {
    size_t cnt = e - b;
    double *blk = W + b * d;
    memcpy(tmp, blk, cnt * d * sizeof *tmp);
    for (size_t p = 0; p < cnt; ++p)
        for (size_t a = 0; a < d; ++a) blk[a * cnt + p] = tmp[p * d + a];
}

typedef struct build_ctx {
    sl_kdtree *t;
    double *W;   /* becomes t->P */
    double *tmp; /* LEAF_MAX * d */
    double *lo, *hi;
} build_ctx;

static void build_node(build_ctx *c, size_t node) {
    sl_kdtree *t = c->t;
    const size_t d = t->d;
    size_t b = t->nodes[node].begin, e = t->nodes[node].end;
    if (e - b <= LEAF_MAX) {
        t->nodes[node].child = 0;
        store_leaf(c->W, d, b, e, c->tmp);
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
    build_node(c, left);
    build_node(c, left + 1);
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
    double *tmp = malloc((LEAF_MAX * d + 2 * d) * sizeof *tmp);
    if (!t || !tmp) goto nomem;
    t->n = n;
    t->d = d;
    t->X = X;
    t->P = malloc(n * d * sizeof *t->P);
    t->perm = malloc(n * sizeof *t->perm);
    t->nodes = malloc(max_nodes * sizeof *t->nodes);
    t->box_lo = malloc(2 * d * sizeof *t->box_lo);
    if (!t->P || !t->perm || !t->nodes || !t->box_lo) goto nomem;
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
    build_ctx c = {.t = t, .W = t->P, .tmp = tmp, .lo = tmp + LEAF_MAX * d};
    c.hi = c.lo + d;
    build_node(&c, 0);
    free(tmp);
    *out = t;
    return SL_OK;
nomem:
    free(tmp);
    sl_kdtree_free(t);
    return sl_error(SL_ENOMEM, "kdtree: out of memory for %zu x %zu points", n, d);
}

void sl_kdtree_free(sl_kdtree *t) {
    if (!t) return;
    free(t->P);
    free(t->perm);
    free(t->nodes);
    free(t->box_lo);
    free(t);
}

sl_status sl_kdtree_info(const sl_kdtree *t, size_t *n, size_t *d, const double **X,
                         const size_t **order) {
    if (!t) return sl_error(SL_EINVAL, "kdtree: no tree given");
    if (n) *n = t->n;
    if (d) *d = t->d;
    if (X) *X = t->X;
    if (order) *order = t->perm;
    return SL_OK;
}

/* ---- workspace ------------------------------------------------------------ */

static int grow_heap(sl_kdtree_work *w, size_t need) {
    if (need <= w->heap_cap) return 1;
    size_t cap = w->heap_cap ? w->heap_cap : 16;
    while (cap < need) cap *= 2;
    double *d2 = realloc(w->heap_d2, cap * sizeof *d2);
    if (d2) w->heap_d2 = d2;
    size_t *idx = realloc(w->heap_idx, cap * sizeof *idx);
    if (idx) w->heap_idx = idx;
    if (!d2 || !idx) return 0;
    w->heap_cap = cap;
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
    if (w) {
        w->d = t->d;
        w->off = malloc(t->d * sizeof *w->off);
    }
    if (!w || !w->off || !grow_heap(w, capacity) || !grow_results(w, capacity)) {
        sl_kdtree_work_free(w);
        return sl_error(SL_ENOMEM, "kdtree: out of memory for a workspace of %zu results",
                        capacity);
    }
    return *out = w, SL_OK;
}

void sl_kdtree_work_free(sl_kdtree_work *w) {
    if (!w) return;
    free(w->off);
    free(w->heap_d2);
    free(w->heap_idx);
    free(w->idx);
    free(w->idx_tmp);
    free(w->d2);
    free(w->d2_tmp);
    free(w);
}

/* ---- queries -------------------------------------------------------------- */

/* Squared distances from q to the points of a leaf, each summed over the
 * coordinates in order (see the top of the file). Four points at a time,
 * their sums kept in registers: the compiler pairs them into vector lanes. */
static void leaf_dist2(const sl_kdtree *t, const kd_node *nd, const double *q, double *acc) {
    const size_t cnt = nd->end - nd->begin, d = t->d;
    const double *blk = t->P + nd->begin * d;
    size_t p = 0;
    for (; p + 4 <= cnt; p += 4) {
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        const double *col = blk + p;
        for (size_t a = 0; a < d; ++a, col += cnt) {
            const double qa = q[a];
            const double t0 = col[0] - qa, t1 = col[1] - qa, t2 = col[2] - qa, t3 = col[3] - qa;
            s0 += t0 * t0;
            s1 += t1 * t1;
            s2 += t2 * t2;
            s3 += t3 * t3;
        }
        acc[p] = s0;
        acc[p + 1] = s1;
        acc[p + 2] = s2;
        acc[p + 3] = s3;
    }
    for (; p < cnt; ++p) {
        double s = 0.0;
        const double *col = blk + p;
        for (size_t a = 0; a < d; ++a, col += cnt) {
            const double diff = *col - q[a];
            s += diff * diff;
        }
        acc[p] = s;
    }
}

/* Distance from q to the tree's bounding box, per coordinate into off;
 * returns the squared distance. */
static double root_offsets(const sl_kdtree *t, const double *q, double *off) {
    double rd = 0.0;
    for (size_t a = 0; a < t->d; ++a) {
        double o = 0.0;
        if (q[a] < t->box_lo[a])
            o = t->box_lo[a] - q[a];
        else if (q[a] > t->box_hi[a])
            o = q[a] - t->box_hi[a];
        off[a] = o;
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
    return d2 < e2 || (d2 == e2 && i < j);
}

typedef struct knn_ctx {
    const sl_kdtree *t;
    const double *q;
    size_t K, exclude, count;
    double *hd2; /* max-heap by (d2, idx): the worst kept neighbour at 0 */
    size_t *hidx;
    double *off;
} knn_ctx;

static void heap_sift_down(double *hd2, size_t *hidx, size_t count, size_t i) {
    double d2 = hd2[i];
    size_t idx = hidx[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= count) break;
        if (c + 1 < count && pair_less(hd2[c], hidx[c], hd2[c + 1], hidx[c + 1])) ++c;
        if (!pair_less(d2, idx, hd2[c], hidx[c])) break;
        hd2[i] = hd2[c];
        hidx[i] = hidx[c];
        i = c;
    }
    hd2[i] = d2;
    hidx[i] = idx;
}

static void heap_push(double *hd2, size_t *hidx, size_t count, double d2, size_t idx) {
    size_t i = count;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!pair_less(hd2[p], hidx[p], d2, idx)) break;
        hd2[i] = hd2[p];
        hidx[i] = hidx[p];
        i = p;
    }
    hd2[i] = d2;
    hidx[i] = idx;
}

static inline double knn_bound(const knn_ctx *c) {
    return c->count < c->K ? INFINITY : c->hd2[0];
}

static void knn_leaf(knn_ctx *c, const kd_node *nd) {
    double acc[LEAF_MAX];
    leaf_dist2(c->t, nd, c->q, acc);
    const size_t cnt = nd->end - nd->begin;
    if (c->count == c->K) {
        /* Most leaves reached late in a search hold nothing nearer than the
         * current K-th neighbour: one vectorisable pass rules them out. */
        double nearest = acc[0];
        for (size_t p = 1; p < cnt; ++p) nearest = acc[p] < nearest ? acc[p] : nearest;
        if (nearest > c->hd2[0]) return;
    }
    const size_t *perm = c->t->perm + nd->begin;
    for (size_t p = 0; p < cnt; ++p) {
        double d2 = acc[p];
        size_t idx = perm[p];
        if (idx == c->exclude) continue;
        if (c->count < c->K) {
            heap_push(c->hd2, c->hidx, c->count, d2, idx);
            c->count++;
        } else if (pair_less(d2, idx, c->hd2[0], c->hidx[0])) {
            c->hd2[0] = d2;
            c->hidx[0] = idx;
            heap_sift_down(c->hd2, c->hidx, c->count, 0);
        }
    }
}

static void knn_node(knn_ctx *c, size_t node, double rd) {
    const kd_node *nd = &c->t->nodes[node];
    if (!nd->child) {
        knn_leaf(c, nd);
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
    knn_node(c, near, rd);
    double old = c->off[dim];
    double far_rd = rd + (cut * cut - old * old);
    if (far_rd <= knn_bound(c) * PRUNE_SLACK) {
        c->off[dim] = cut;
        knn_node(c, far, far_rd);
        c->off[dim] = old;
    }
}

sl_status sl_kdtree_knn(const sl_kdtree *t, sl_kdtree_work *w, const double *q, size_t K,
                        size_t exclude, size_t *idx, double *dist2) {
    sl_status st = check_query(t, w, q);
    if (st) return st;
    size_t available = t->n - (exclude < t->n ? 1 : 0);
    if (K > available)
        return sl_error(SL_EINVAL,
                        "kdtree: %zu nearest neighbours asked of %zu points (%zu after excluding "
                        "the query)",
                        K, t->n, available);
    if (K == 0) return SL_OK;
    if (!idx || !dist2) return sl_error(SL_EINVAL, "kdtree: no output arrays given");
    if (!grow_heap(w, K))
        return sl_error(SL_ENOMEM, "kdtree: out of memory for %zu nearest neighbours", K);
    knn_ctx c = {.t = t,
                 .q = q,
                 .K = K,
                 .exclude = exclude,
                 .count = 0,
                 .hd2 = w->heap_d2,
                 .hidx = w->heap_idx,
                 .off = w->off};
    knn_node(&c, 0, root_offsets(t, q, w->off));
    /* Pop the max-heap from the back: nearest first, ties by index. */
    for (size_t m = K; m-- > 0;) {
        dist2[m] = c.hd2[0];
        idx[m] = c.hidx[0];
        c.hd2[0] = c.hd2[m];
        c.hidx[0] = c.hidx[m];
        heap_sift_down(c.hd2, c.hidx, m, 0);
    }
    return SL_OK;
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
    leaf_dist2(c->t, nd, c->q, acc);
    const size_t *perm = c->t->perm + nd->begin;
    const size_t cnt = nd->end - nd->begin;
    if (!grow_results(c->w, c->count + cnt)) {
        c->nomem = 1;
        return;
    }
    size_t *out_idx = c->w->idx;
    double *out_d2 = c->w->d2;
    size_t m = c->count;
    for (size_t p = 0; p < cnt; ++p)
        if (acc[p] <= c->r2 && perm[p] != c->exclude) {
            out_idx[m] = perm[p];
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

sl_status sl_kdtree_radius(const sl_kdtree *t, sl_kdtree_work *w, const double *q, double r,
                           size_t exclude, size_t *count, const size_t **idx,
                           const double **dist2) {
    sl_status st = check_query(t, w, q);
    if (st) return st;
    if (!count || !idx || !dist2) return sl_error(SL_EINVAL, "kdtree: no output pointers given");
    *count = 0;
    *idx = NULL;
    *dist2 = NULL;
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
    double rd = root_offsets(t, q, w->off);
    if (rd <= c.bound) radius_node(&c, 0, rd);
    if (c.nomem)
        return sl_error(SL_ENOMEM, "kdtree: out of memory for %zu radius query results",
                        c.count + LEAF_MAX);
    sort_by_index(w, c.count, t->n);
    *count = c.count;
    *idx = w->idx;
    *dist2 = w->d2;
    return SL_OK;
}
