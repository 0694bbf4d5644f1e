/* k-d tree and neighbour moments: exact agreement with brute force (same
 * indices, same squared distances, ties by index), batched and approximate
 * kNN searches against their guarantees, error handling, and the kernel
 * moments against a direct transcription of score_internal.h. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "score/score_internal.h"
#include "scoreloss/rng.h"
#include "scoreloss/status.h"
#include "testutil.h"

/* Assertions inside loops over many results: check records every ck_assert
 * call (a write in no-fork mode), so test first and call it only on failure. */
#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) ck_abort_msg(__VA_ARGS__);                                                    \
    } while (0)

/* ---- data ----------------------------------------------------------------- */

typedef enum data_kind {
    DATA_GAUSS,   /* N(0, I) */
    DATA_CLUSTER, /* tight clusters of very different scales, some anisotropic */
    DATA_GRID,    /* integer coordinates in {0, 1, 2}: ties everywhere */
    DATA_DUPS     /* 50 distinct points, each repeated */
} data_kind;

static double *make_data(data_kind kind, size_t n, size_t d, uint64_t seed) {
    gsl_rng *r = sl_rng_alloc(seed, 0);
    double *X = malloc(n * d * sizeof *X);
    ck_assert_ptr_nonnull(X);
    switch (kind) {
    case DATA_GAUSS:
        for (size_t i = 0; i < n * d; ++i) X[i] = gsl_ran_gaussian(r, 1.0);
        break;
    case DATA_CLUSTER: {
        enum { NC = 8 };
        double centre[NC][32], scale[NC];
        for (size_t c = 0; c < NC; ++c) {
            for (size_t a = 0; a < d; ++a) centre[c][a] = gsl_ran_flat(r, -10, 10);
            scale[c] = pow(10.0, -(double)(c % 4)); /* 1 down to 1e-3 */
        }
        for (size_t i = 0; i < n; ++i) {
            size_t c = gsl_rng_uniform_int(r, NC);
            for (size_t a = 0; a < d; ++a) {
                double s = scale[c] * (a % 3 == 2 && c % 2 ? 1e-3 : 1.0);
                X[i * d + a] = centre[c][a] + s * gsl_ran_gaussian(r, 1.0);
            }
        }
        break;
    }
    case DATA_GRID:
        for (size_t i = 0; i < n * d; ++i) X[i] = (double)gsl_rng_uniform_int(r, 3);
        break;
    case DATA_DUPS: {
        enum { ND = 50 };
        double *base = malloc(ND * d * sizeof *base);
        for (size_t i = 0; i < ND * d; ++i) base[i] = gsl_ran_gaussian(r, 1.0);
        for (size_t i = 0; i < n; ++i) {
            size_t b = gsl_rng_uniform_int(r, ND);
            memcpy(X + i * d, base + b * d, d * sizeof *X);
        }
        free(base);
        break;
    }
    }
    gsl_rng_free(r);
    return X;
}

/* The squared distance as every query defines it: summed over coordinates in
 * order. */
static double dist2(size_t d, const double *x, const double *q) {
    double s = 0.0;
    for (size_t a = 0; a < d; ++a) {
        double t = x[a] - q[a];
        s += t * t;
    }
    return s;
}

typedef struct pair {
    double d2;
    size_t idx;
} pair;

static int pair_cmp(const void *pa, const void *pb) {
    const pair *a = pa, *b = pb;
    if (a->d2 != b->d2) return a->d2 < b->d2 ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* All samples but `exclude`, sorted by (squared distance, index); returns
 * their count. */
static size_t brute_sorted(size_t n, size_t d, const double *X, const double *q, size_t exclude,
                           pair *out) {
    size_t m = 0;
    for (size_t j = 0; j < n; ++j)
        if (j != exclude) out[m++] = (pair){dist2(d, X + j * d, q), j};
    qsort(out, m, sizeof *out, pair_cmp);
    return m;
}

/* ---- exact agreement with brute force --------------------------------------- */

typedef struct tree_case {
    const char *name;
    data_kind kind;
    size_t d, n, K;
    uint64_t seed;
} tree_case;

static const tree_case tree_cases[] = {
    {"gauss d1", DATA_GAUSS, 1, 2000, 10, 11},     {"gauss d2", DATA_GAUSS, 2, 5000, 30, 12},
    {"gauss d5", DATA_GAUSS, 5, 5000, 50, 13},     {"gauss d10", DATA_GAUSS, 10, 5000, 200, 14},
    {"gauss d20", DATA_GAUSS, 20, 3000, 20, 15},   {"cluster d2", DATA_CLUSTER, 2, 5000, 25, 21},
    {"cluster d5", DATA_CLUSTER, 5, 4000, 60, 22}, {"cluster d10", DATA_CLUSTER, 10, 4000, 100, 23},
    {"grid d1", DATA_GRID, 1, 3000, 50, 31},       {"grid d2", DATA_GRID, 2, 5000, 40, 32},
    {"grid d5", DATA_GRID, 5, 2000, 100, 33},      {"dups d3", DATA_DUPS, 3, 2000, 60, 41},
    {"dups d10", DATA_DUPS, 10, 1000, 25, 42},     {"one point", DATA_GAUSS, 3, 1, 1, 51},
    {"one leaf", DATA_GAUSS, 4, 5, 5, 52},         {"just over a leaf", DATA_GAUSS, 2, 33, 32, 53},
};

enum { N_SAMPLE_QUERIES = 150, N_NEW_QUERIES = 80 };

/* Checks kNN and radius queries at q against brute force. */
static void check_query(const tree_case *tc, const sl_kdtree *t, sl_kdtree_work *w,
                        unsigned char *seen, const double *X, const double *q, size_t exclude,
                        pair *brute, size_t *idx, double *d2) {
    const size_t n = tc->n, d = tc->d;
    size_t m = brute_sorted(n, d, X, q, exclude, brute);
    size_t K = tc->K <= m ? tc->K : m;
    EXPECT(sl_kdtree_knn(t, w, q, K, exclude, 0.0, idx, d2) == SL_OK, "%s: %s", tc->name,
           sl_last_error());
    for (size_t k = 0; k < K; ++k) {
        EXPECT(idx[k] == brute[k].idx && d2[k] == brute[k].d2,
               "%s: neighbour %zu is (%zu, %.17g), brute force (%zu, %.17g)", tc->name, k, idx[k],
               d2[k], brute[k].idx, brute[k].d2);
    }
    /* Radii: on the K-th neighbour (ties at the boundary), half, double,
     * zero (duplicates of q) and everything. */
    double rK = K ? sqrt(brute[K - 1].d2) : 1.0;
    const double radii[] = {rK, 0.5 * rK, 2.0 * rK, 0.0, INFINITY};
    for (size_t ir = 0; ir < sizeof radii / sizeof radii[0]; ++ir) {
        double r = radii[ir], r2 = r * r;
        size_t cnt;
        const size_t *ridx;
        const double *rd2;
        EXPECT(sl_kdtree_radius(t, w, q, r, exclude, &cnt, &ridx, &rd2) == SL_OK, "%s: %s",
               tc->name, sl_last_error());
        size_t c = 0;
        for (size_t j = 0; j < n; ++j) {
            if (j == exclude) continue;
            double e2 = dist2(d, X + j * d, q);
            if (!(e2 <= r2)) continue;
            EXPECT(c < cnt, "%s: radius %g misses sample %zu", tc->name, r, j);
            EXPECT(ridx[c] == j && rd2[c] == e2,
                   "%s: radius %g result %zu is (%zu, %.17g), brute force (%zu, %.17g)", tc->name,
                   r, c, ridx[c], rd2[c], j, e2);
            ++c;
        }
        EXPECT(c == cnt, "%s: radius %g returned %zu results, brute force %zu", tc->name, r, cnt,
               c);
        /* The row-returning variant finds the same set: as many samples,
         * distinct, each within r with the same squared distance, each at a
         * row of the tree's copy that holds it. */
        const size_t *order, *rows;
        const double *copy, *qd2;
        size_t rcnt;
        sl_kdtree_info(t, NULL, NULL, NULL, &order, &copy);
        EXPECT(sl_kdtree_radius_rows(t, w, q, r, exclude, &rcnt, &rows, &qd2) == SL_OK, "%s: %s",
               tc->name, sl_last_error());
        EXPECT(rcnt == c, "%s: radius %g by rows found %zu, brute force %zu", tc->name, r, rcnt, c);
        for (size_t k = 0; k < rcnt; ++k) {
            size_t j = order[rows[k]];
            EXPECT(!seen[j] && j != exclude && qd2[k] <= r2 && qd2[k] == dist2(d, X + j * d, q) &&
                       memcmp(copy + rows[k] * d, X + j * d, d * sizeof *X) == 0,
                   "%s: radius %g by rows: row %zu (sample %zu) is wrong or repeated", tc->name, r,
                   rows[k], j);
            seen[j] = 1;
        }
        for (size_t k = 0; k < rcnt; ++k) seen[order[rows[k]]] = 0;
    }
}

START_TEST(tree_matches_brute_force) {
    const tree_case *tc = &tree_cases[_i];
    const size_t n = tc->n, d = tc->d;
    double *X = make_data(tc->kind, n, d, tc->seed);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    sl_kdtree_work *w;
    ck_assert_int_eq(sl_kdtree_work_alloc(t, 8, &w), SL_OK); /* small: must grow */
    pair *brute = malloc(n * sizeof *brute);
    unsigned char *seen = calloc(n, 1);
    size_t *idx = malloc((tc->K + 1) * sizeof *idx);
    double *d2 = malloc((tc->K + 1) * sizeof *d2);
    double *q = malloc(d * sizeof *q);
    gsl_rng *r = sl_rng_alloc(tc->seed, 1);

    /* Samples as queries, themselves excluded (leave-one-out), and once
     * not excluded (the sample itself comes first, at distance 0). */
    for (size_t s = 0; s < N_SAMPLE_QUERIES; ++s) {
        size_t i = gsl_rng_uniform_int(r, n);
        check_query(tc, t, w, seen, X, X + i * d, i, brute, idx, d2);
        if (s % 4 == 0) check_query(tc, t, w, seen, X, X + i * d, (size_t)-1, brute, idx, d2);
    }
    /* New points: inside the data (perturbed samples, or other grid nodes
     * for grid data) and far outside it. */
    for (size_t s = 0; s < N_NEW_QUERIES; ++s) {
        size_t i = gsl_rng_uniform_int(r, n);
        for (size_t a = 0; a < d; ++a) {
            if (tc->kind == DATA_GRID)
                q[a] = (double)gsl_rng_uniform_int(r, 4) - 0.5 * (s % 2);
            else
                q[a] = X[i * d + a] + 0.1 * gsl_ran_gaussian(r, 1.0);
            if (s % 10 == 9) q[a] += 100.0;
        }
        check_query(tc, t, w, seen, X, q, (size_t)-1, brute, idx, d2);
    }
    gsl_rng_free(r);
    free(q);
    free(d2);
    free(idx);
    free(brute);
    free(seen);
    sl_kdtree_work_free(w);
    sl_kdtree_free(t);
    free(X);
}
END_TEST

START_TEST(tree_errors) {
    const size_t n = 40, d = 3;
    double *X = make_data(DATA_GAUSS, n, d, 7);
    sl_kdtree *t = NULL;
    ck_assert_int_eq(sl_kdtree_build(0, d, X, &t), SL_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_int_eq(sl_kdtree_build(n, 0, X, &t), SL_EINVAL);
    ck_assert_int_eq(sl_kdtree_build(n, d, NULL, &t), SL_EINVAL);
    X[5 * d + 1] = NAN;
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "point 5"));
    X[5 * d + 1] = 0.5;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    sl_kdtree_work *w;
    ck_assert_int_eq(sl_kdtree_work_alloc(t, 0, &w), SL_OK);
    size_t idx[64];
    double d2[64];
    /* K may reach n, or n - 1 when a sample is left out, and no further. */
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n, (size_t)-1, 0.0, idx, d2), SL_OK);
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n - 1, 0, 0.0, idx, d2), SL_OK);
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n, 0, 0.0, idx, d2), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "nearest neighbours"));
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n + 1, (size_t)-1, 0.0, idx, d2), SL_EINVAL);
    ck_assert_str_ne(sl_last_error(), "");
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, 0, 3, 0.0, idx, d2), SL_OK);
    /* eps must be a finite number >= 0 */
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, 3, 0, -0.1, idx, d2), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "eps"));
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, 3, 0, NAN, idx, d2), SL_EINVAL);
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, 3, 0, INFINITY, idx, d2), SL_EINVAL);
    /* A batch: K may reach n - 1 with every query excluding itself; a
     * non-finite query is named. */
    size_t excl[2] = {0, 1};
    size_t bidx[2 * 40];
    double bd2[2 * 40];
    ck_assert_int_eq(sl_kdtree_knn_batch(t, w, 2, X, excl, n - 1, 0.0, bidx, bd2), SL_OK);
    ck_assert_int_eq(sl_kdtree_knn_batch(t, w, 2, X, excl, n, 0.0, bidx, bd2), SL_EINVAL);
    ck_assert_int_eq(sl_kdtree_knn_batch(t, w, 0, NULL, NULL, 5, 0.0, NULL, NULL), SL_OK);

    double q[3] = {0.0, INFINITY, 0.0};
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, q, 3, (size_t)-1, 0.0, idx, d2), SL_EINVAL);
    ck_assert_str_ne(sl_last_error(), "");
    size_t cnt;
    const size_t *ridx;
    const double *rd2;
    ck_assert_int_eq(sl_kdtree_radius(t, w, q, 1.0, (size_t)-1, &cnt, &ridx, &rd2), SL_EINVAL);
    q[1] = 0.0;
    ck_assert_int_eq(sl_kdtree_radius(t, w, q, -1.0, (size_t)-1, &cnt, &ridx, &rd2), SL_EINVAL);
    ck_assert_int_eq(sl_kdtree_radius(t, w, q, NAN, (size_t)-1, &cnt, &ridx, &rd2), SL_EINVAL);
    ck_assert_int_eq(sl_kdtree_radius(t, w, q, 1.0, (size_t)-1, &cnt, &ridx, &rd2), SL_OK);

    /* A workspace belongs to trees of its dimension. */
    sl_kdtree *t2;
    ck_assert_int_eq(sl_kdtree_build(n / d, d - 1, X, &t2), SL_OK);
    ck_assert_int_eq(sl_kdtree_knn(t2, w, q, 1, (size_t)-1, 0.0, idx, d2), SL_EINVAL);
    sl_kdtree_free(t2);
    sl_kdtree_work_free(w);
    sl_kdtree_free(t);
    sl_kdtree_free(NULL);
    sl_kdtree_work_free(NULL);
    free(X);
}
END_TEST

/* ---- batched and approximate kNN ----------------------------------------- */

/* A kNN answer (K entries) sorted by (squared distance, index). */
static void sort_answer(size_t K, const size_t *idx, const double *d2, pair *out) {
    for (size_t k = 0; k < K; ++k) out[k] = (pair){d2[k], idx[k]};
    qsort(out, K, sizeof *out, pair_cmp);
}

/* Checks one answer (any order unless `sorted`) against the exact neighbours
 * `exact` of q: K distinct samples, none excluded, each with its own
 * squared distance computed as the search defines it, and rank by rank
 * within (1 + eps) of the exact distance (equal to it when eps = 0). In a
 * batch's answer the K-th comes first. */
static void check_answer(const char *what, size_t n, size_t d, const double *X, const double *q,
                         size_t exclude, size_t K, double eps, const size_t *idx, const double *d2,
                         int sorted, const pair *exact, pair *scratch, unsigned char *seen) {
    for (size_t k = 0; k < K; ++k) {
        EXPECT(idx[k] < n && idx[k] != exclude && !seen[idx[k]],
               "%s: neighbour %zu (sample %zu) is excluded, repeated or out of range", what, k,
               idx[k]);
        seen[idx[k]] = 1;
        EXPECT(d2[k] == dist2(d, X + idx[k] * d, q),
               "%s: neighbour %zu: squared distance %.17g, not sample %zu's", what, k, d2[k],
               idx[k]);
    }
    for (size_t k = 0; k < K; ++k) seen[idx[k]] = 0;
    sort_answer(K, idx, d2, scratch);
    if (sorted)
        for (size_t k = 0; k < K; ++k)
            EXPECT(scratch[k].idx == idx[k], "%s: the answer is not sorted at %zu", what, k);
    else
        EXPECT(scratch[K - 1].idx == idx[0], "%s: the K-th neighbour does not come first", what);
    const double bound = (1 + eps) * (1 + eps) * (1 + 1e-12);
    for (size_t k = 0; k < K; ++k) {
        if (eps == 0)
            EXPECT(scratch[k].idx == exact[k].idx && scratch[k].d2 == exact[k].d2,
                   "%s: neighbour %zu is (%zu, %.17g), brute force (%zu, %.17g)", what, k,
                   scratch[k].idx, scratch[k].d2, exact[k].idx, exact[k].d2);
        else
            EXPECT(scratch[k].d2 <= bound * exact[k].d2,
                   "%s: eps %g: neighbour %zu at squared distance %.17g, beyond (1 + eps)^2 "
                   "times the exact %.17g",
                   what, eps, k, scratch[k].d2, exact[k].d2);
    }
}

/* Batches of consecutive samples in leaf order (as the moments take them),
 * each excluding itself, and batches of new points (perturbed samples, some
 * far outside), for eps = 0 and eps > 0; single queries likewise. Then
 * determinism: the same batches again with another workspace, and from two
 * threads at once. */
START_TEST(knn_batch_and_approximate) {
    const tree_case *tc = &tree_cases[_i];
    const size_t n = tc->n, d = tc->d, K = tc->K < n ? tc->K : n - 1;
    if (K == 0) return;
    double *X = make_data(tc->kind, n, d, tc->seed);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    const size_t *order;
    sl_kdtree_info(t, NULL, NULL, NULL, &order, NULL);
    enum { M = 40, NBATCH = 4 };
    const size_t m = M < n ? M : n;
    sl_kdtree_work *w, *w2;
    ck_assert_int_eq(sl_kdtree_work_alloc(t, 4, &w), SL_OK);
    ck_assert_int_eq(sl_kdtree_work_alloc(t, K, &w2), SL_OK);
    pair *brute = malloc(n * sizeof *brute), *scratch = malloc(K * sizeof *scratch);
    pair *exact = malloc(m * K * sizeof *exact);
    unsigned char *seen = calloc(n, 1);
    double *Q = malloc(m * d * sizeof *Q);
    size_t *excl = malloc(m * sizeof *excl), *idx = malloc(m * K * sizeof *idx);
    size_t *idx2 = malloc(m * K * sizeof *idx2);
    double *d2 = malloc(m * K * sizeof *d2), *d2b = malloc(m * K * sizeof *d2b);
    gsl_rng *r = sl_rng_alloc(tc->seed, 2);
    const double epss[] = {0.0, 0.25, 1.0, 3.0};
    char what[160];
    size_t approximate = 0; /* answers whose K-th is beyond the exact K-th */
    for (size_t batch = 0; batch < 2 * NBATCH; ++batch) {
        const int is_new = batch >= NBATCH; /* new points, nothing excluded */
        const size_t r0 = gsl_rng_uniform_int(r, n - m + 1);
        for (size_t k = 0; k < m; ++k) {
            const size_t i = order[r0 + k];
            for (size_t a = 0; a < d; ++a) {
                Q[k * d + a] = X[i * d + a];
                if (is_new) Q[k * d + a] += 0.1 * gsl_ran_gaussian(r, 1.0) + (k % 8 == 7 ? 50 : 0);
            }
            excl[k] = is_new ? (size_t)-1 : i;
            brute_sorted(n, d, X, Q + k * d, excl[k], brute);
            memcpy(exact + k * K, brute, K * sizeof *exact);
        }
        for (size_t e = 0; e < sizeof epss / sizeof epss[0]; ++e) {
            const double eps = epss[e];
            EXPECT(sl_kdtree_knn_batch(t, w, m, Q, excl, K, eps, idx, d2) == SL_OK, "%s: %s",
                   tc->name, sl_last_error());
            for (size_t k = 0; k < m; ++k) {
                snprintf(what, sizeof what, "%s batch %zu query %zu", tc->name, batch, k);
                check_answer(what, n, d, X, Q + k * d, excl[k], K, eps, idx + k * K, d2 + k * K, 0,
                             exact + k * K, scratch, seen);
                approximate += d2[k * K] > exact[k * K + K - 1].d2;
            }
            /* Single queries, sorted. */
            for (size_t k = 0; k < m; k += 7) {
                EXPECT(sl_kdtree_knn(t, w2, Q + k * d, K, excl[k], eps, idx2, d2b) == SL_OK,
                       "%s: %s", tc->name, sl_last_error());
                snprintf(what, sizeof what, "%s single %zu", tc->name, k);
                check_answer(what, n, d, X, Q + k * d, excl[k], K, eps, idx2, d2b, 1, exact + k * K,
                             scratch, seen);
            }
            /* The same batch with the other workspace (which just served
             * other queries): the same answer, bit for bit. */
            EXPECT(sl_kdtree_knn_batch(t, w2, m, Q, excl, K, eps, idx2, d2b) == SL_OK, "%s: %s",
                   tc->name, sl_last_error());
            EXPECT(memcmp(idx, idx2, m * K * sizeof *idx) == 0 &&
                       memcmp(d2, d2b, m * K * sizeof *d2) == 0,
                   "%s: eps %g: the batch's answer depends on the workspace", tc->name, eps);
        }
    }
    /* In 5 dimensions and more the coarser eps really skip cells that hold
     * neighbours (so the bound is what was tested). */
    if (d >= 5 && n >= 1000) ck_assert_uint_gt(approximate, 0);
    gsl_rng_free(r);
    free(brute), free(scratch), free(exact), free(seen), free(Q), free(excl), free(idx);
    free(idx2), free(d2), free(d2b);
    sl_kdtree_work_free(w);
    sl_kdtree_work_free(w2);
    sl_kdtree_free(t);
    free(X);
}
END_TEST

/* Batches of samples in leaf order searched with 1 thread and with 2 (each
 * thread with its own workspace, the batches scheduled dynamically): the
 * same bits, exact and approximate. */
START_TEST(knn_thread_invariance) {
    const size_t n = 6000, d = 6, K = 40, m = 64, nb = (n + m - 1) / m;
    double *X = make_data(DATA_CLUSTER, n, d, 77);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    const size_t *order;
    const double *rows;
    sl_kdtree_info(t, NULL, NULL, NULL, &order, &rows);
    size_t *idx[2];
    double *d2[2];
    for (int e = 0; e < 2; ++e) {
        const double eps = e ? 0.75 : 0.0;
        for (int run = 0; run < 2; ++run) {
            idx[run] = malloc(n * K * sizeof *idx[run]);
            d2[run] = malloc(n * K * sizeof *d2[run]);
            int failed = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(run + 1) reduction(| : failed)
#endif
            {
                sl_kdtree_work *w = NULL;
                failed |= sl_kdtree_work_alloc(t, K, &w) != SL_OK;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
                for (size_t b = 0; b < nb; ++b) {
                    const size_t r0 = b * m, mb = r0 + m < n ? m : n - r0;
                    if (!failed)
                        failed |= sl_kdtree_knn_batch(t, w, mb, rows + r0 * d, order + r0, K, eps,
                                                      idx[run] + r0 * K, d2[run] + r0 * K) != SL_OK;
                }
                sl_kdtree_work_free(w);
            }
            ck_assert_int_eq(failed, 0);
        }
        ck_assert(memcmp(idx[0], idx[1], n * K * sizeof *idx[0]) == 0);
        ck_assert(memcmp(d2[0], d2[1], n * K * sizeof *d2[0]) == 0);
        for (int run = 0; run < 2; ++run) free(idx[run]), free(d2[run]);
    }
    sl_kdtree_free(t);
    free(X);
}
END_TEST

/* The query order is a permutation that puts the samples themselves in
 * leaf order, up to the samples that sit on a split value. */
START_TEST(query_order_permutation) {
    const size_t n = 3000, d = 4, nq = 2500;
    double *X = make_data(DATA_GAUSS, n, d, 88);
    double *Q = make_data(DATA_GAUSS, nq, d, 89);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    size_t *order = malloc((nq > n ? nq : n) * sizeof *order);
    unsigned char *seen = calloc(nq > n ? nq : n, 1);
    ck_assert_int_eq(sl_kdtree_query_order(t, nq, Q, order), SL_OK);
    for (size_t k = 0; k < nq; ++k) {
        EXPECT(order[k] < nq && !seen[order[k]], "order[%zu] = %zu repeated or out of range", k,
               order[k]);
        seen[order[k]] = 1;
    }
    /* The samples as queries (continuous data: none on the wrong side of
     * a split): each lands in the leaf that holds it, so the order follows
     * the tree's rows leaf by leaf, by index within a leaf: no sample moves
     * by a leaf's size or more from its row. */
    const size_t *rows_order;
    sl_kdtree_info(t, NULL, NULL, NULL, &rows_order, NULL);
    size_t *row_of = malloc(n * sizeof *row_of);
    for (size_t r = 0; r < n; ++r) row_of[rows_order[r]] = r;
    ck_assert_int_eq(sl_kdtree_query_order(t, n, X, order), SL_OK);
    memset(seen, 0, n);
    size_t moved = 0;
    for (size_t k = 0; k < n; ++k) {
        EXPECT(order[k] < n && !seen[order[k]], "order[%zu] = %zu repeated or out of range", k,
               order[k]);
        seen[order[k]] = 1;
        const size_t r = row_of[order[k]], dist = r > k ? r - k : k - r;
        moved = dist > moved ? dist : moved;
    }
    ck_assert_uint_lt(moved, 64);
    free(row_of);
    ck_assert_int_eq(sl_kdtree_query_order(t, 0, NULL, NULL), SL_OK);
    ck_assert_int_eq(sl_kdtree_query_order(t, 3, NULL, order), SL_EINVAL);
    free(order), free(seen);
    sl_kdtree_free(t);
    free(Q), free(X);
}
END_TEST

/* ---- kernel moments --------------------------------------------------------- */

/* Direct transcription of the formulas in score_internal.h over the
 * neighbourhood nb (m samples; NULL: every sample but the left-out one),
 * two passes, with bandwidth h. */
static void transcribe_moments(size_t n, size_t d, const double *X, const double *q, size_t self,
                               const size_t *nb, size_t m, double h, double *K0, double *mu,
                               double *Sig) {
    const size_t count = nb ? m : n;
    double k0 = 0.0;
    memset(mu, 0, d * sizeof *mu);
    memset(Sig, 0, d * d * sizeof *Sig);
    for (size_t s = 0; s < count; ++s) {
        const size_t j = nb ? nb[s] : s;
        if (j == self) continue;
        double w = exp(-dist2(d, X + j * d, q) / (2 * h * h));
        k0 += w;
        for (size_t a = 0; a < d; ++a) mu[a] += w * (X[j * d + a] - q[a]);
    }
    *K0 = k0;
    if (k0 == 0) return;
    for (size_t a = 0; a < d; ++a) mu[a] /= k0;
    for (size_t s = 0; s < count; ++s) {
        const size_t j = nb ? nb[s] : s;
        if (j == self) continue;
        double w = exp(-dist2(d, X + j * d, q) / (2 * h * h));
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b)
                Sig[a * d + b] += w * (X[j * d + a] - q[a] - mu[a]) * (X[j * d + b] - q[b] - mu[b]);
    }
    for (size_t a = 0; a < d * d; ++a) Sig[a] /= k0;
}

/* Fixed bandwidth: over every sample. Adaptive (K > 0): over the K nearest
 * by brute force (ties by index), h = the distance to the K-th; hq gets h. */
static void brute_moments(size_t n, size_t d, const double *X, size_t nq, const double *Q, int loo,
                          double h, size_t K, double *hq, double *K0, double *mu, double *Sig) {
    pair *p = malloc(n * sizeof *p);
    size_t *nb = malloc((K ? K : 1) * sizeof *nb);
    for (size_t i = 0; i < nq; ++i) {
        const double *q = Q + i * d;
        const size_t self = loo ? i : (size_t)-1;
        double hi = h;
        if (K) {
            brute_sorted(n, d, X, q, self, p);
            for (size_t k = 0; k < K; ++k) nb[k] = p[k].idx;
            hi = sqrt(p[K - 1].d2);
        }
        hq[i] = hi;
        transcribe_moments(n, d, X, q, self, K ? nb : NULL, K, hi, K0 + i, mu + i * d,
                           Sig + i * d * d);
    }
    free(nb);
    free(p);
}

typedef struct moments_case {
    const char *name;
    data_kind kind;
    size_t d, n, nq;
    int loo;
    double h; /* fixed bandwidth when K = 0 */
    size_t K;
    uint64_t seed;
} moments_case;

static const moments_case moments_cases[] = {
    {"fixed d1 loo", DATA_GAUSS, 1, 800, 800, 1, 0.2, 0, 101},
    {"fixed d2 loo", DATA_GAUSS, 2, 1500, 300, 1, 0.1, 0, 102},
    {"fixed d5 queries", DATA_GAUSS, 5, 1500, 200, 0, 0.6, 0, 103},
    {"knn d2 loo", DATA_GAUSS, 2, 1500, 300, 1, 0, 10, 104},
    {"knn d5 loo", DATA_CLUSTER, 5, 1500, 300, 1, 0, 20, 105},
    {"knn d10 queries", DATA_GAUSS, 10, 1000, 100, 0, 0, 30, 106},
    {"knn d10 loo all", DATA_GAUSS, 10, 1200, 1200, 1, 0, 200, 107},
    {"knn d3 grid loo", DATA_GRID, 3, 900, 900, 1, 0, 60, 108}, /* ties at the K-th */
};
enum { N_FIXED_CASES = 3 };

static double *moments_queries(const moments_case *mc) {
    if (mc->loo) return NULL;
    double *Q = make_data(DATA_GAUSS, mc->nq, mc->d, mc->seed + 1000);
    return Q;
}

/* Fixed h with cutoff 1e3 takes in every sample, and knn:K with eps = 0
 * takes the same K samples as the transcription: the result equals it to
 * rounding (the same sums; only the order and the weights' exponent are
 * rounded differently). */
START_TEST(moments_match_transcription) {
    const moments_case *mc = &moments_cases[_i];
    const size_t n = mc->n, d = mc->d, nq = mc->nq;
    double *X = make_data(mc->kind, n, d, mc->seed);
    double *Q = moments_queries(mc);
    const double *Qe = Q ? Q : X;
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    double *hq = calloc(nq, sizeof *hq), *hb = calloc(nq, sizeof *hb);
    double *K0 = malloc(nq * sizeof *K0), *Kb = malloc(nq * sizeof *Kb);
    double *mu = malloc(nq * d * sizeof *mu), *mb = malloc(nq * d * sizeof *mb);
    double *Sig = malloc(nq * d * d * sizeof *Sig), *Sb = malloc(nq * d * d * sizeof *Sb);
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, nq, Q, mc->loo, mc->h, mc->K, 1e3, hq, K0,
                                           mu, Sig, NULL, NULL, 0.0),
                     SL_OK);
    brute_moments(n, d, X, nq, Qe, mc->loo, mc->h, mc->K, hb, Kb, mb, Sb);
    const double tol = 1e-12;
    for (size_t i = 0; i < nq; ++i) {
        EXPECT(hq[i] == hb[i], "%s: h[%zu] = %.17g, brute force %.17g", mc->name, i, hq[i], hb[i]);
        EXPECT(Kb[i] > 0 && fabs(K0[i] - Kb[i]) <= tol * Kb[i],
               "%s: K0[%zu] = %.17g, brute force %.17g", mc->name, i, K0[i], Kb[i]);
        for (size_t a = 0; a < d; ++a) {
            double sa = sqrt(Sb[i * d * d + a * d + a]);
            EXPECT(fabs(mu[i * d + a] - mb[i * d + a]) <= tol * (fabs(mb[i * d + a]) + sa),
                   "%s: mu[%zu][%zu] = %.17g, brute force %.17g", mc->name, i, a, mu[i * d + a],
                   mb[i * d + a]);
            for (size_t b = 0; b < d; ++b) {
                double sb = sqrt(Sb[i * d * d + b * d + b]);
                size_t k = i * d * d + a * d + b;
                EXPECT(fabs(Sig[k] - Sb[k]) <= tol * sa * sb,
                       "%s: Sig[%zu][%zu][%zu] = %.17g, brute force %.17g", mc->name, i, a, b,
                       Sig[k], Sb[k]);
            }
        }
    }
    free(hq), free(hb), free(K0), free(Kb), free(mu), free(mb), free(Sig), free(Sb);
    sl_kdtree_free(t);
    free(Q);
    free(X);
}
END_TEST

/* Fixed bandwidth, cutoff 5: every left-out sample weighs less than
 * E = exp(-25/2), and its w r^m (m <= 2) is below E (5 h)^m, so with at most
 * n left out (E0 = n E): |dK0| <= E0, |dmu| <= E0 (5h + |mu|) / K0 and
 * |dSig_ab| <= E0 (25 h^2 + |M2_ab|) / K0 + |dmu| (2 |mu| + |dmu|), with
 * M2 = Sig + mu mu' (the derivation is in moments_neighbours.c's terms:
 * truncated sums plus the left-out remainder). */
START_TEST(moments_truncation_bound) {
    const moments_case *mc = &moments_cases[_i];
    const size_t n = mc->n, d = mc->d, nq = mc->nq;
    const double cutoff = 5.0;
    double *X = make_data(mc->kind, n, d, mc->seed);
    double *Q = moments_queries(mc);
    const double *Qe = Q ? Q : X;
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    double *hq = malloc(nq * sizeof *hq), *hb = malloc(nq * sizeof *hb);
    double *K0 = malloc(nq * sizeof *K0), *Kb = malloc(nq * sizeof *Kb);
    double *mu = malloc(nq * d * sizeof *mu), *mb = malloc(nq * d * sizeof *mb);
    double *Sig = malloc(nq * d * d * sizeof *Sig), *Sb = malloc(nq * d * d * sizeof *Sb);
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, nq, Q, mc->loo, mc->h, mc->K, cutoff, hq, K0,
                                           mu, Sig, NULL, NULL, 0.0),
                     SL_OK);
    brute_moments(n, d, X, nq, Qe, mc->loo, mc->h, 0, hb, Kb, mb, Sb);
    const double E0 = (double)n * exp(-0.5 * cutoff * cutoff), round = 1e-12;
    size_t truncated = 0;
    for (size_t i = 0; i < nq; ++i) {
        const double h = hq[i], *m = mu + i * d;
        EXPECT(h == mc->h, "%s: h[%zu] = %g, not the fixed %g", mc->name, i, h, mc->h);
        double mnorm = 0, dmnorm = 0;
        for (size_t a = 0; a < d; ++a) mnorm += m[a] * m[a];
        mnorm = sqrt(mnorm);
        const double dmu = E0 * (cutoff * h + mnorm) / Kb[i];
        EXPECT(fabs(K0[i] - Kb[i]) <= E0 + round * Kb[i], "%s: K0[%zu] = %.17g, brute force %.17g",
               mc->name, i, K0[i], Kb[i]);
        truncated += K0[i] != Kb[i];
        for (size_t a = 0; a < d; ++a) {
            double diff = m[a] - mb[i * d + a];
            dmnorm += diff * diff;
        }
        EXPECT(sqrt(dmnorm) <= dmu + round * (mnorm + h), "%s: mu[%zu] off by %.3g > bound %.3g",
               mc->name, i, sqrt(dmnorm), dmu + round * (mnorm + h));
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b) {
                size_t k = i * d * d + a * d + b;
                double M2 = fabs(Sig[k] + m[a] * m[b]);
                double bound = E0 * (cutoff * cutoff * h * h + M2) / Kb[i] +
                               dmu * (2 * mnorm + dmu) + round * h * h;
                EXPECT(fabs(Sig[k] - Sb[k]) <= bound,
                       "%s: Sig[%zu][%zu][%zu] off by %.3g > bound %.3g", mc->name, i, a, b,
                       fabs(Sig[k] - Sb[k]), bound);
            }
    }
    /* The cases are chosen so that the cutoff really leaves samples out for
     * some queries (the bound is then the thing tested). */
    ck_assert_uint_gt(truncated, 0);
    free(hq), free(hb), free(K0), free(Kb), free(mu), free(mb), free(Sig), free(Sb);
    sl_kdtree_free(t);
    free(Q);
    free(X);
}
END_TEST

/* knn:K with eps > 0: h_i is the distance of a sample, at least the exact
 * K-th distance and at most (1 + eps) times it; and the moments are those of
 * some K samples within that reach: K0 lies between K exp(-1/2) (all at
 * h_i) and K (all at the query), never above. */
START_TEST(moments_knn_approximate) {
    const moments_case *mc = &moments_cases[_i + N_FIXED_CASES];
    const size_t n = mc->n, d = mc->d, nq = mc->nq, K = mc->K;
    double *X = make_data(mc->kind, n, d, mc->seed);
    double *Q = moments_queries(mc);
    const double *Qe = Q ? Q : X;
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    double *hq = malloc(nq * sizeof *hq), *K0 = malloc(nq * sizeof *K0);
    double *mu = malloc(nq * d * sizeof *mu), *Sig = malloc(nq * d * d * sizeof *Sig);
    pair *p = malloc(n * sizeof *p);
    const double epss[] = {0.5, 2.0};
    for (size_t e = 0; e < 2; ++e) {
        const double eps = epss[e];
        ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, nq, Q, mc->loo, 0.0, K, 5.0, hq, K0, mu,
                                               Sig, NULL, NULL, eps),
                         SL_OK);
        size_t beyond = 0;
        for (size_t i = 0; i < nq; ++i) {
            brute_sorted(n, d, X, Qe + i * d, mc->loo ? i : (size_t)-1, p);
            const double exact = sqrt(p[K - 1].d2);
            EXPECT(hq[i] >= exact && hq[i] <= (1 + eps) * exact * (1 + 1e-12),
                   "%s: eps %g: h[%zu] = %.17g, exact %.17g", mc->name, eps, i, hq[i], exact);
            beyond += hq[i] > exact;
            const double lo = hq[i] > 0 ? (double)K * exp(-0.5) * (1 - 1e-12) : (double)K;
            EXPECT(K0[i] >= lo && K0[i] <= (double)K * (1 + 1e-12),
                   "%s: eps %g: K0[%zu] = %.17g outside [%g, %zu]", mc->name, eps, i, K0[i], lo, K);
            for (size_t k = 0; k < d + d * d; ++k)
                EXPECT(isfinite(k < d ? mu[i * d + k] : Sig[i * d * d + k - d]),
                       "%s: non-finite moment at query %zu", mc->name, i);
        }
        /* eps = 2 is coarse enough that some answers are approximate (the
         * bound is then what is tested). */
        if (eps == 2.0 && d >= 5) ck_assert_uint_gt(beyond, 0);
    }
    free(p), free(hq), free(K0), free(mu), free(Sig);
    sl_kdtree_free(t);
    free(Q);
    free(X);
}
END_TEST

typedef struct progress_log {
    int calls;
    double last;
    int monotone;
} progress_log;

static void log_progress(double f, void *ctx) {
    progress_log *p = ctx;
    if (f < p->last) p->monotone = 0;
    p->last = f;
    p->calls++;
}

/* 1 and 2 threads give the same bits: knn:K exact and approximate, and a
 * fixed bandwidth; with external queries too. */
START_TEST(moments_thread_invariance) {
    const size_t n = 3000, d = 5, K = 25, nq = 700;
    double *X = make_data(DATA_CLUSTER, n, d, 201);
    double *Qx = make_data(DATA_GAUSS, nq, d, 202);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    const struct {
        size_t K;
        double h, eps;
        int external;
    } runs[] = {{K, 0.0, 0.0, 0}, {K, 0.0, 0.5, 0}, {K, 0.0, 1.0, 1}, {0, 0.3, 0.0, 0}};
    for (size_t c = 0; c < sizeof runs / sizeof runs[0]; ++c) {
        const size_t m = runs[c].external ? nq : n;
        const double *Q = runs[c].external ? Qx : NULL;
        double *out[2][4];
        for (int r = 0; r < 2; ++r) {
            out[r][0] = malloc(m * sizeof(double));
            out[r][1] = malloc(m * sizeof(double));
            out[r][2] = malloc(m * d * sizeof(double));
            out[r][3] = malloc(m * d * d * sizeof(double));
#ifdef _OPENMP
            omp_set_num_threads(r + 1);
#endif
            progress_log log = {0, 0.0, 1};
            ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, m, Q, !runs[c].external, runs[c].h,
                                                   runs[c].K, 5.0, out[r][0], out[r][1], out[r][2],
                                                   out[r][3], log_progress, &log, runs[c].eps),
                             SL_OK);
            ck_assert_int_ge(log.calls, 1);
            ck_assert_int_le(log.calls, 100);
            ck_assert(log.monotone);
            ck_assert_double_eq(log.last, 1.0);
        }
#ifdef _OPENMP
        omp_set_num_threads(2);
#endif
        ck_assert(memcmp(out[0][0], out[1][0], m * sizeof(double)) == 0);
        ck_assert(memcmp(out[0][1], out[1][1], m * sizeof(double)) == 0);
        ck_assert(memcmp(out[0][2], out[1][2], m * d * sizeof(double)) == 0);
        ck_assert(memcmp(out[0][3], out[1][3], m * d * d * sizeof(double)) == 0);
        for (int r = 0; r < 2; ++r)
            for (int k = 0; k < 4; ++k) free(out[r][k]);
    }
    sl_kdtree_free(t);
    free(Qx);
    free(X);
}
END_TEST

START_TEST(moments_degenerate) {
    const size_t n = 200, d = 2;
    double *X = make_data(DATA_DUPS, n, d, 301);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    double hq[3], K0[3], mu[3 * 2], Sig[3 * 4];
    /* Far from every sample: with the cutoff nothing is in reach, without
     * it every weight underflows; both give K0 = mu = Sig = 0. */
    double Q[3 * 2] = {1e3, 1e3, -1e3, 0.0, 0.0, 1e4};
    for (int big = 0; big < 2; ++big) {
        ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, 3, Q, 0, 0.05, 0, big ? 1e6 : 5.0, hq,
                                               K0, mu, Sig, NULL, NULL, 0.0),
                         SL_OK);
        for (int i = 0; i < 3; ++i) {
            ck_assert_double_eq(hq[i], 0.05);
            ck_assert_double_eq(K0[i], 0.0);
        }
        for (int k = 0; k < 6; ++k) ck_assert_double_eq(mu[k], 0.0);
        for (int k = 0; k < 12; ++k) ck_assert_double_eq(Sig[k], 0.0);
    }
    /* Duplicates (200 draws of 50 points): a sample with at least K = 2
     * exact copies besides itself has h = 0, and the h -> 0 limit weighs
     * its K nearest, all at the query, by 1: K0 = K, mu = Sig = 0. The
     * others have h > 0. Exact and approximate alike. */
    const size_t K = 2;
    double *hq2 = malloc(n * sizeof *hq2), *K02 = malloc(n * sizeof *K02);
    double *mu2 = malloc(n * d * sizeof *mu2), *Sig2 = malloc(n * d * d * sizeof *Sig2);
    size_t with_h0 = 0;
    for (int e = 0; e < 2; ++e) {
        ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, K, 5.0, hq2, K02, mu2,
                                               Sig2, NULL, NULL, e ? 1.0 : 0.0),
                         SL_OK);
        for (size_t i = 0; i < n; ++i) {
            size_t copies = 0;
            for (size_t j = 0; j < n; ++j)
                copies += j != i && memcmp(X + j * d, X + i * d, d * sizeof *X) == 0;
            if (copies < K) {
                EXPECT(hq2[i] > 0.0, "h[%zu] = %g with %zu copies", i, hq2[i], copies);
                continue;
            }
            with_h0 += e == 0;
            EXPECT(hq2[i] == 0.0 && K02[i] == (double)K,
                   "sample %zu with %zu copies: h = %g, K0 = %g", i, copies, hq2[i], K02[i]);
            for (size_t a = 0; a < d; ++a) EXPECT(mu2[i * d + a] == 0.0, "mu[%zu] != 0", i);
            for (size_t a = 0; a < d * d; ++a)
                EXPECT(Sig2[i * d * d + a] == 0.0, "Sig[%zu] != 0", i);
        }
    }
    ck_assert_uint_gt(with_h0, n / 2);
    /* A fixed h so small that h^2 underflows: the coincident samples keep
     * weight 1, the rest 0, and nothing turns into NaN. */
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, NULL, 1, 1e-170, 0, 5.0, NULL, K02, mu2,
                                           Sig2, NULL, NULL, 0.0),
                     SL_OK);
    for (size_t i = 0; i < n; ++i) {
        size_t copies = 0;
        for (size_t j = 0; j < n; ++j)
            copies += j != i && memcmp(X + j * d, X + i * d, d * sizeof *X) == 0;
        EXPECT(K02[i] == (double)copies, "K0[%zu] = %g, %zu copies", i, K02[i], copies);
        for (size_t a = 0; a < d; ++a) EXPECT(mu2[i * d + a] == 0.0, "mu[%zu] != 0", i);
        for (size_t a = 0; a < d * d; ++a) EXPECT(Sig2[i * d * d + a] == 0.0, "Sig[%zu] != 0", i);
    }
    free(hq2), free(K02), free(mu2), free(Sig2);
    sl_kdtree_free(t);
    free(X);
}
END_TEST

START_TEST(moments_errors) {
    const size_t n = 600, d = 3;
    double *X = make_data(DATA_GAUSS, n, d, 401);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    double *K0 = malloc(n * sizeof *K0), *mu = malloc(n * d * sizeof *mu),
           *Sig = malloc(n * d * d * sizeof *Sig);
    sl_error_clear();
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, n, 5.0, NULL, K0, mu, Sig,
                                           NULL, NULL, 0.0),
                     SL_EINVAL);
    ck_assert_str_ne(sl_last_error(), "");
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, 10, NULL, 1, 0.0, n - 1, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL, 0.0),
                     SL_OK);
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, 0, 5.0, NULL, K0, mu, Sig,
                                           NULL, NULL, 0.0),
                     SL_EINVAL); /* fixed h must be > 0 */
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.5, 0, 0.0, NULL, K0, mu, Sig,
                                           NULL, NULL, 0.0),
                     SL_EINVAL); /* cutoff, with a fixed h */
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, 10, NULL, 1, 0.0, 5, 0.0, NULL, K0, mu, Sig,
                                           NULL, NULL, 0.0),
                     SL_OK); /* knn:K ignores the cutoff */
    sl_error_clear();
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, 10, NULL, 1, 0.0, 5, 5.0, NULL, K0, mu, Sig,
                                           NULL, NULL, -1.0),
                     SL_EINVAL); /* eps */
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "eps"));
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, 10, NULL, 1, 0.0, 5, 5.0, NULL, K0, mu, Sig,
                                           NULL, NULL, NAN),
                     SL_EINVAL);
    ck_assert_int_eq(sl_moments_neighbours(t, n - 1, d, X, n, NULL, 1, 0.5, 0, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL, 0.0),
                     SL_EINVAL); /* not the tree's sample */
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n + 1, NULL, 1, 0.5, 0, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL, 0.0),
                     SL_EINVAL);
    double *Xcopy = malloc(n * d * sizeof *Xcopy);
    memcpy(Xcopy, X, n * d * sizeof *Xcopy);
    sl_error_clear();
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, Xcopy, n, NULL, 1, 0.5, 0, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL, 0.0),
                     SL_EINVAL); /* the tree indexes X, not a copy */
    ck_assert_str_ne(sl_last_error(), "");
    free(Xcopy);
    /* Non-finite queries at 437 and 73: the lowest is reported, whatever the
     * threads' timing, for both neighbourhoods. */
    double *Q = malloc(n * d * sizeof *Q);
    memcpy(Q, X, n * d * sizeof *Q);
    Q[437 * d + 2] = NAN;
    Q[73 * d + 0] = INFINITY;
    for (int rep = 0; rep < 4; ++rep) {
        sl_error_clear();
        ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, Q, 0, rep % 2 ? 0.5 : 0.0,
                                               rep % 2 ? 0 : 5, 5.0, NULL, K0, mu, Sig, NULL, NULL,
                                               0.0),
                         SL_EINVAL);
        ck_assert_msg(strstr(sl_last_error(), "query 73:") != NULL, "message: %s", sl_last_error());
    }
    free(Q);
    free(K0), free(mu), free(Sig);
    sl_kdtree_free(t);
    free(X);
}
END_TEST

static Suite *kdtree_suite(void) {
    Suite *s = suite_create("kdtree");
    TCase *tc = tcase_create("tree");
    tcase_set_timeout(tc, 600);
    const int nt = (int)(sizeof tree_cases / sizeof tree_cases[0]);
    tcase_add_loop_test(tc, tree_matches_brute_force, 0, nt);
    tcase_add_test(tc, tree_errors);
    tcase_add_loop_test(tc, knn_batch_and_approximate, 0, nt);
    tcase_add_test(tc, knn_thread_invariance);
    tcase_add_test(tc, query_order_permutation);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("moments");
    tcase_set_timeout(tm, 600);
    const int nm = (int)(sizeof moments_cases / sizeof moments_cases[0]);
    tcase_add_loop_test(tm, moments_match_transcription, 0, nm);
    tcase_add_loop_test(tm, moments_truncation_bound, 0, N_FIXED_CASES);
    tcase_add_loop_test(tm, moments_knn_approximate, 0, nm - N_FIXED_CASES);
    tcase_add_test(tm, moments_thread_invariance);
    tcase_add_test(tm, moments_degenerate);
    tcase_add_test(tm, moments_errors);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) {
    return sl_test_run(kdtree_suite());
}
