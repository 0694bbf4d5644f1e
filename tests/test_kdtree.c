/* k-d tree and neighbour moments: exact agreement with brute force (same
 * indices, same squared distances, ties by index), error handling, and the
 * kernel moments against a direct transcription of score_internal.h. */
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

enum { N_SAMPLE_QUERIES = 60, N_NEW_QUERIES = 40 };

/* Checks kNN and radius queries at q against brute force. */
static void check_query(const tree_case *tc, const sl_kdtree *t, sl_kdtree_work *w, const double *X,
                        const double *q, size_t exclude, pair *brute, size_t *idx, double *d2) {
    const size_t n = tc->n, d = tc->d;
    size_t m = brute_sorted(n, d, X, q, exclude, brute);
    size_t K = tc->K <= m ? tc->K : m;
    EXPECT(sl_kdtree_knn(t, w, q, K, exclude, idx, d2) == SL_OK, "%s: %s", tc->name,
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
    size_t *idx = malloc((tc->K + 1) * sizeof *idx);
    double *d2 = malloc((tc->K + 1) * sizeof *d2);
    double *q = malloc(d * sizeof *q);
    gsl_rng *r = sl_rng_alloc(tc->seed, 1);

    /* Samples as queries, themselves excluded (leave-one-out), and once
     * not excluded (the sample itself comes first, at distance 0). */
    for (size_t s = 0; s < N_SAMPLE_QUERIES; ++s) {
        size_t i = gsl_rng_uniform_int(r, n);
        check_query(tc, t, w, X, X + i * d, i, brute, idx, d2);
        if (s % 4 == 0) check_query(tc, t, w, X, X + i * d, (size_t)-1, brute, idx, d2);
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
        check_query(tc, t, w, X, q, (size_t)-1, brute, idx, d2);
    }
    gsl_rng_free(r);
    free(q);
    free(d2);
    free(idx);
    free(brute);
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
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n, (size_t)-1, idx, d2), SL_OK);
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n - 1, 0, idx, d2), SL_OK);
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n, 0, idx, d2), SL_EINVAL);
    ck_assert_ptr_nonnull(strstr(sl_last_error(), "nearest neighbours"));
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, n + 1, (size_t)-1, idx, d2), SL_EINVAL);
    ck_assert_str_ne(sl_last_error(), "");
    ck_assert_int_eq(sl_kdtree_knn(t, w, X, 0, 3, idx, d2), SL_OK);

    double q[3] = {0.0, INFINITY, 0.0};
    sl_error_clear();
    ck_assert_int_eq(sl_kdtree_knn(t, w, q, 3, (size_t)-1, idx, d2), SL_EINVAL);
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
    ck_assert_int_eq(sl_kdtree_knn(t2, w, q, 1, (size_t)-1, idx, d2), SL_EINVAL);
    sl_kdtree_free(t2);
    sl_kdtree_work_free(w);
    sl_kdtree_free(t);
    sl_kdtree_free(NULL);
    sl_kdtree_work_free(NULL);
    free(X);
}
END_TEST

/* ---- kernel moments --------------------------------------------------------- */

/* Direct transcription of the formulas in score_internal.h. hq: the
 * bandwidths to use per query. */
static void brute_moments(size_t n, size_t d, const double *X, size_t nq, const double *Q, int loo,
                          const double *hq, double *K0, double *mu, double *Sig) {
    for (size_t i = 0; i < nq; ++i) {
        const double *q = Q + i * d;
        double h = hq[i], k0 = 0.0, *m = mu + i * d, *S = Sig + i * d * d;
        memset(m, 0, d * sizeof *m);
        memset(S, 0, d * d * sizeof *S);
        for (size_t j = 0; j < n; ++j) {
            if (loo && j == i) continue;
            double w = exp(-dist2(d, X + j * d, q) / (2 * h * h));
            k0 += w;
            for (size_t a = 0; a < d; ++a) m[a] += w * (X[j * d + a] - q[a]);
        }
        K0[i] = k0;
        if (k0 == 0) continue;
        for (size_t a = 0; a < d; ++a) m[a] /= k0;
        for (size_t j = 0; j < n; ++j) {
            if (loo && j == i) continue;
            double w = exp(-dist2(d, X + j * d, q) / (2 * h * h));
            for (size_t a = 0; a < d; ++a)
                for (size_t b = 0; b < d; ++b)
                    S[a * d + b] += w * (X[j * d + a] - q[a] - m[a]) * (X[j * d + b] - q[b] - m[b]);
        }
        for (size_t a = 0; a < d * d; ++a) S[a] /= k0;
    }
}

/* Brute-force adaptive bandwidths: distance to the K-th nearest sample. */
static void brute_knn_bandwidths(size_t n, size_t d, const double *X, size_t nq, const double *Q,
                                 int loo, size_t K, double *hq) {
    pair *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < nq; ++i) {
        brute_sorted(n, d, X, Q + i * d, loo ? i : (size_t)-1, p);
        hq[i] = sqrt(p[K - 1].d2);
    }
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
};

static double *moments_queries(const moments_case *mc) {
    if (mc->loo) return NULL;
    double *Q = make_data(DATA_GAUSS, mc->nq, mc->d, mc->seed + 1000);
    return Q;
}

/* cutoff 1e3 takes in every sample: the result equals the transcription to
 * rounding (the same sums in the same order; only the weights' exponent is
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
                                           mu, Sig, NULL, NULL),
                     SL_OK);
    if (mc->K)
        brute_knn_bandwidths(n, d, X, nq, Qe, mc->loo, mc->K, hb);
    else
        for (size_t i = 0; i < nq; ++i) hb[i] = mc->h;
    brute_moments(n, d, X, nq, Qe, mc->loo, hb, Kb, mb, Sb);
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

/* cutoff 5: every left-out sample weighs less than E = exp(-25/2), and its
 * w r^m (m <= 2) is below E (5 h)^m, so with at most n left out
 * (E0 = n E): |dK0| <= E0, |dmu| <= E0 (5h + |mu|) / K0 and
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
    double *hq = malloc(nq * sizeof *hq);
    double *K0 = malloc(nq * sizeof *K0), *Kb = malloc(nq * sizeof *Kb);
    double *mu = malloc(nq * d * sizeof *mu), *mb = malloc(nq * d * sizeof *mb);
    double *Sig = malloc(nq * d * d * sizeof *Sig), *Sb = malloc(nq * d * d * sizeof *Sb);
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, nq, Q, mc->loo, mc->h, mc->K, cutoff, hq, K0,
                                           mu, Sig, NULL, NULL),
                     SL_OK);
    brute_moments(n, d, X, nq, Qe, mc->loo, hq, Kb, mb, Sb);
    const double E0 = (double)n * exp(-0.5 * cutoff * cutoff), round = 1e-12;
    size_t truncated = 0;
    for (size_t i = 0; i < nq; ++i) {
        const double h = hq[i], *m = mu + i * d;
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
    /* The case set is chosen so that the cutoff really leaves samples out
     * for some queries (the bound is then the thing tested). Not so for the
     * d = 10 knn case, where 5 h covers the whole sample. */
    if (d < 10) ck_assert_uint_gt(truncated, 0);
    free(hq), free(K0), free(Kb), free(mu), free(mb), free(Sig), free(Sb);
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

START_TEST(moments_thread_invariance) {
    const size_t n = 3000, d = 5, K = 25;
    double *X = make_data(DATA_CLUSTER, n, d, 201);
    sl_kdtree *t;
    ck_assert_int_eq(sl_kdtree_build(n, d, X, &t), SL_OK);
    double *out[2][4];
    for (int r = 0; r < 2; ++r) {
        out[r][0] = malloc(n * sizeof(double));
        out[r][1] = malloc(n * sizeof(double));
        out[r][2] = malloc(n * d * sizeof(double));
        out[r][3] = malloc(n * d * d * sizeof(double));
#ifdef _OPENMP
        omp_set_num_threads(r + 1);
#endif
        progress_log log = {0, 0.0, 1};
        ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, K, 5.0, out[r][0],
                                               out[r][1], out[r][2], out[r][3], log_progress, &log),
                         SL_OK);
        ck_assert_int_ge(log.calls, 1);
        ck_assert_int_le(log.calls, 100);
        ck_assert(log.monotone);
        ck_assert_double_eq(log.last, 1.0);
    }
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    ck_assert(memcmp(out[0][0], out[1][0], n * sizeof(double)) == 0);
    ck_assert(memcmp(out[0][1], out[1][1], n * sizeof(double)) == 0);
    ck_assert(memcmp(out[0][2], out[1][2], n * d * sizeof(double)) == 0);
    ck_assert(memcmp(out[0][3], out[1][3], n * d * d * sizeof(double)) == 0);
    for (int r = 0; r < 2; ++r)
        for (int k = 0; k < 4; ++k) free(out[r][k]);
    sl_kdtree_free(t);
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
                                               K0, mu, Sig, NULL, NULL),
                         SL_OK);
        for (int i = 0; i < 3; ++i) {
            ck_assert_double_eq(hq[i], 0.05);
            ck_assert_double_eq(K0[i], 0.0);
        }
        for (int k = 0; k < 6; ++k) ck_assert_double_eq(mu[k], 0.0);
        for (int k = 0; k < 12; ++k) ck_assert_double_eq(Sig[k], 0.0);
    }
    /* Duplicates: every sample has at least K = 2 exact copies besides
     * itself (200 draws of 50 points; checked below), so h = 0 and K0 counts
     * the coincident samples, mu = Sig = 0. */
    double *hq2 = malloc(n * sizeof *hq2), *K02 = malloc(n * sizeof *K02);
    double *mu2 = malloc(n * d * sizeof *mu2), *Sig2 = malloc(n * d * d * sizeof *Sig2);
    ck_assert_int_eq(
        sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, 1, 5.0, hq2, K02, mu2, Sig2, NULL, NULL),
        SL_OK);
    for (size_t i = 0; i < n; ++i) {
        size_t copies = 0;
        for (size_t j = 0; j < n; ++j)
            copies += j != i && memcmp(X + j * d, X + i * d, d * sizeof *X) == 0;
        if (copies == 0) {
            ck_assert_double_gt(hq2[i], 0.0);
            continue;
        }
        ck_assert_double_eq(hq2[i], 0.0);
        ck_assert_double_eq(K02[i], (double)copies);
        for (size_t a = 0; a < d; ++a) ck_assert_double_eq(mu2[i * d + a], 0.0);
        for (size_t a = 0; a < d * d; ++a) ck_assert_double_eq(Sig2[i * d * d + a], 0.0);
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
    ck_assert_int_eq(
        sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, n, 5.0, NULL, K0, mu, Sig, NULL, NULL),
        SL_EINVAL);
    ck_assert_str_ne(sl_last_error(), "");
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, 10, NULL, 1, 0.0, n - 1, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL),
                     SL_OK);
    ck_assert_int_eq(
        sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.0, 0, 5.0, NULL, K0, mu, Sig, NULL, NULL),
        SL_EINVAL); /* fixed h must be > 0 */
    ck_assert_int_eq(
        sl_moments_neighbours(t, n, d, X, n, NULL, 1, 0.5, 0, 0.0, NULL, K0, mu, Sig, NULL, NULL),
        SL_EINVAL); /* cutoff */
    ck_assert_int_eq(sl_moments_neighbours(t, n - 1, d, X, n, NULL, 1, 0.5, 0, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL),
                     SL_EINVAL); /* not the tree's sample */
    ck_assert_int_eq(sl_moments_neighbours(t, n, d, X, n + 1, NULL, 1, 0.5, 0, 5.0, NULL, K0, mu,
                                           Sig, NULL, NULL),
                     SL_EINVAL);
    /* Non-finite queries at 437 and 73: the lowest is reported, whatever the
     * threads' timing. */
    double *Q = malloc(n * d * sizeof *Q);
    memcpy(Q, X, n * d * sizeof *Q);
    Q[437 * d + 2] = NAN;
    Q[73 * d + 0] = INFINITY;
    for (int rep = 0; rep < 5; ++rep) {
        sl_error_clear();
        ck_assert_int_eq(
            sl_moments_neighbours(t, n, d, X, n, Q, 0, 0.0, 5, 5.0, NULL, K0, mu, Sig, NULL, NULL),
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
    tcase_add_loop_test(tc, tree_matches_brute_force, 0,
                        (int)(sizeof tree_cases / sizeof tree_cases[0]));
    tcase_add_test(tc, tree_errors);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("moments");
    tcase_set_timeout(tm, 600);
    int nm = (int)(sizeof moments_cases / sizeof moments_cases[0]);
    tcase_add_loop_test(tm, moments_match_transcription, 0, nm);
    tcase_add_loop_test(tm, moments_truncation_bound, 0, nm);
    tcase_add_test(tm, moments_thread_invariance);
    tcase_add_test(tm, moments_degenerate);
    tcase_add_test(tm, moments_errors);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) {
    return sl_test_run(kdtree_suite());
}
