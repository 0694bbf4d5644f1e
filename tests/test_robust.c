/* Numerical robustness of the score estimators on hostile samples: query
 * points far in the tails, near-duplicate clusters, nearly singular local
 * covariances, heavy tails and extreme scales. Whatever the data, an estimate
 * either succeeds with every g and H finite, or fails with a message (never
 * a NaN passed off as a number), and the points whose local fit needed
 * regularisation are counted in sl_scores.regularised. The moments built on
 * such scores stay finite too. Last, the memory limits (memlimit.h): sizes
 * parse, and a job over the limit is refused with a message before it
 * allocates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"
#include "scoreloss/dist.h"
#include "scoreloss/loss.h"
#include "scoreloss/memlimit.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"
#include "testutil.h"

enum { D = 3, N = 300 };

static double *draw(const char *spec, size_t d, size_t n, unsigned long seed) {
    sl_dist *dist;
    ck_assert_msg(sl_dist_from_spec(spec, d, &dist) == SL_OK, "%s", sl_last_error());
    double *X = malloc(n * d * sizeof *X);
    ck_assert_ptr_nonnull(X);
    ck_assert_int_eq(sl_dist_sample(dist, seed, n, X), SL_OK);
    sl_dist_free(dist);
    return X;
}

/* ---- the hostile samples ---------------------------------------------------- */

/* N(0, I) samples. */
static double *plain(void) {
    return draw("gauss", D, N, 11);
}

/* Half the samples in three clusters of near-duplicates (jitter 1e-12 around
 * three sample points), plus exact duplicates. */
static double *clusters(void) {
    double *X = draw("gauss", D, N, 12);
    double *J = draw("gauss", D, N, 13);
    for (size_t i = N / 2; i < N; ++i) {
        const size_t c = i % 3; /* the centre: sample c */
        for (size_t a = 0; a < D; ++a) X[i * D + a] = X[c * D + a] + 1e-12 * J[i * D + a];
        /* and 30 exact copies of sample 0 */
    }
    for (size_t i = N / 2 - 30; i < N / 2; ++i) memcpy(X + i * D, X, D * sizeof *X);

    free(J);
    return X;
}

/* Nearly singular: the third coordinate is x1 - x2 plus noise of size 1e-9,
 * so every local covariance has one eigenvalue ~1e-18 of the others. */
static double *thin(void) {
    double *X = draw("gauss", D, N, 14);
    double *J = draw("gauss", D, N, 15);
    for (size_t i = 0; i < N; ++i) X[i * D + 2] = X[i * D] - X[i * D + 1] + 1e-9 * J[i * D];
    free(J);
    return X;
}

/* Cauchy-like tails (multivariate t with 1 degree of freedom): a few points
 * hundreds of units out, among a dense core. */
static double *cauchy(void) {
    return draw("student:1", D, N, 16);
}

/* The same Gaussian samples scaled to 1e-150 and 1e150: squared distances
 * near the bottom and the top of the double range. */
static double *tiny_scale(void) {
    double *X = plain();
    for (size_t i = 0; i < (size_t)N * D; ++i) X[i] *= 1e-150;
    return X;
}

static double *huge_scale(void) {
    double *X = plain();
    for (size_t i = 0; i < (size_t)N * D; ++i) X[i] *= 1e150;
    return X;
}

/* Query points along the diagonal and the axes, from the bulk out to 1e6
 * standard deviations, where every kernel weight underflows. */
enum { NQ = 12 };
static double *far_queries(void) {
    static const double radius[NQ / 2] = {0.5, 5, 12, 40, 1e3, 1e6};
    double *Q = calloc(NQ * D, sizeof *Q);
    ck_assert_ptr_nonnull(Q);
    for (size_t r = 0; r < NQ / 2; ++r) {
        for (size_t a = 0; a < D; ++a) Q[2 * r * D + a] = radius[r] / sqrt((double)D);
        Q[(2 * r + 1) * D + r % D] = -radius[r];
    }
    return Q;
}

/* ---- the table ----------------------------------------------------------------- */

typedef struct {
    const char *name;
    double *(*samples)(void);
    int far; /* query the far points instead of the samples themselves */
    const char *method;
    const char *bandwidth;
    sl_strategy strategy;
    /* The fewest points that must be reported regularised (0: no claim). */
    size_t min_regularised;
    int may_fail; /* a clean failure (message, no output) is acceptable */
} robust_case;

/* min_regularised, where a count can be argued for:
 *   - thin data: every local covariance is singular to 1e-18, below any
 *     tolerance, so every llsfe fit is regularised (measured N of N for each
 *     bandwidth), and so is the global Gaussian's (all N reported);
 *   - far queries with a global bandwidth: the four at radius 1e3 and 1e6 have
 *     no kernel mass within reach of any sample (measured, N = 300: 4 with
 *     auto, 6 with 0.5 on all pairs, 10 with 0.5 on neighbours, whose cutoff
 *     drops the radius-5 and -12 ones too);
 *   - clusters with knn:5: the 30 exact copies of sample 0 have their 5
 *     nearest at distance zero (measured 46 of 300 regularised for llsfe,
 *     31 for kde). With a global bandwidth the clusters' local covariances
 *     include their surroundings (measured 1 of 300 regularised).
 * Elsewhere no claim (0): knn bandwidths grow with the distance to the data,
 * and kde has no covariance to invert. */
static const robust_case cases[] = {
    {"far queries, llsfe auto", plain, 1, "llsfe", "auto", SL_STRATEGY_AUTO, 4, 0},
    {"far queries, llsfe fixed, all pairs", plain, 1, "llsfe", "0.5", SL_STRATEGY_ALLPAIRS, 4, 0},
    {"far queries, llsfe fixed, neighbours", plain, 1, "llsfe", "0.5", SL_STRATEGY_NEIGHBOURS, 4,
     0},
    {"far queries, llsfe knn:20", plain, 1, "llsfe", "knn:20", SL_STRATEGY_AUTO, 0, 0},
    {"far queries, kde fixed, all pairs", plain, 1, "kde", "0.5", SL_STRATEGY_ALLPAIRS, 0, 0},
    {"far queries, kde fixed, neighbours", plain, 1, "kde", "0.5", SL_STRATEGY_NEIGHBOURS, 0, 0},
    {"far queries, kde knn:20", plain, 1, "kde", "knn:20", SL_STRATEGY_AUTO, 0, 0},
    {"far queries, gauss", plain, 1, "gauss", "auto", SL_STRATEGY_AUTO, 0, 0},
    {"near-duplicate clusters, llsfe knn:5", clusters, 0, "llsfe", "knn:5", SL_STRATEGY_AUTO, 1, 0},
    {"near-duplicate clusters, llsfe fixed", clusters, 0, "llsfe", "0.3", SL_STRATEGY_ALLPAIRS, 0,
     0},
    {"near-duplicate clusters, kde knn:5", clusters, 0, "kde", "knn:5", SL_STRATEGY_AUTO, 0, 0},
    {"near-duplicate clusters, kde fixed", clusters, 0, "kde", "0.3", SL_STRATEGY_NEIGHBOURS, 0, 0},
    {"nearly singular, llsfe auto", thin, 0, "llsfe", "auto", SL_STRATEGY_AUTO, N, 0},
    {"nearly singular, llsfe fixed", thin, 0, "llsfe", "0.5", SL_STRATEGY_ALLPAIRS, N, 0},
    {"nearly singular, llsfe knn:30", thin, 0, "llsfe", "knn:30", SL_STRATEGY_NEIGHBOURS, N, 0},
    {"nearly singular, kde fixed", thin, 0, "kde", "0.5", SL_STRATEGY_ALLPAIRS, 0, 0},
    {"nearly singular, gauss", thin, 0, "gauss", "auto", SL_STRATEGY_AUTO, N, 0},
    {"cauchy tails, llsfe const:1", cauchy, 0, "llsfe", "const:1", SL_STRATEGY_AUTO, 0, 0},
    {"cauchy tails, llsfe knn:20", cauchy, 0, "llsfe", "knn:20", SL_STRATEGY_AUTO, 0, 0},
    {"cauchy tails, kde knn:20", cauchy, 0, "kde", "knn:20", SL_STRATEGY_AUTO, 0, 0},
    {"scale 1e-150, llsfe knn:20", tiny_scale, 0, "llsfe", "knn:20", SL_STRATEGY_AUTO, 0, 1},
    {"scale 1e-150, kde knn:20", tiny_scale, 0, "kde", "knn:20", SL_STRATEGY_AUTO, 0, 0},
    {"scale 1e150, llsfe auto", huge_scale, 0, "llsfe", "auto", SL_STRATEGY_AUTO, 0, 1},
    {"scale 1e150, llsfe knn:20", huge_scale, 0, "llsfe", "knn:20", SL_STRATEGY_AUTO, 0, 1},
    {"scale 1e150, gauss", huge_scale, 0, "gauss", "auto", SL_STRATEGY_AUTO, 0, 1},
};

START_TEST(scores_stay_finite) {
    const robust_case *c = &cases[_i];
    double *X = c->samples();
    double *Q = c->far ? far_queries() : NULL;
    const size_t nq = c->far ? NQ : N;
    sl_score_options opt;
    sl_score_options_default(&opt);
    ck_assert_int_eq(sl_bandwidth_parse(c->bandwidth, &opt.bandwidth), SL_OK);
    opt.strategy = c->strategy;
    opt.seed = 5;
    const sl_score_type *T;
    ck_assert_int_eq(sl_score_type_from_name(c->method, &T), SL_OK);
    sl_scores *s = NULL;
    sl_error_clear();
    sl_status st = sl_score_estimate(T, &opt, N, D, X, nq, Q, &s);
    if (st != SL_OK) {
        /* A refusal must say why, on one line, and return nothing. */
        ck_assert_msg(c->may_fail, "%s: failed: %s", c->name, sl_last_error());
        ck_assert_ptr_null(s);
        ck_assert_msg(*sl_last_error() != '\0', "%s: failed without a message", c->name);
        ck_assert(strchr(sl_last_error(), '\n') == NULL);
        fprintf(stderr, "robust: %s: refused (%s): %s\n", c->name, sl_status_name(st),
                sl_last_error());
    } else {
        ck_assert_msg(sl_all_finite(nq * D, s->G), "%s: non-finite g", c->name);
        ck_assert_msg(sl_all_finite(nq * D * D, s->H), "%s: non-finite H", c->name);
        ck_assert_msg(s->regularised <= nq, "%s: %zu regularised of %zu", c->name, s->regularised,
                      nq);
        ck_assert_msg(s->regularised >= c->min_regularised,
                      "%s: %zu points reported regularised, expected at least %zu", c->name,
                      s->regularised, c->min_regularised);
        /* H symmetric, as every consumer assumes. */
        for (size_t q = 0; q < nq; ++q)
            for (size_t a = 0; a < D; ++a)
                for (size_t b = 0; b < a; ++b) {
                    const double hab = s->H[q * D * D + a * D + b];
                    const double hba = s->H[q * D * D + b * D + a];
                    ck_assert_msg(fabs(hab - hba) <= 1e-9 * (fabs(hab) + fabs(hba)) || hab == hba,
                                  "%s: H not symmetric at point %zu", c->name, q);
                }
        if (!c->far) {
            /* The moments on these scores, labels y = x1^2 - 1. */
            double y[N];
            for (size_t i = 0; i < N; ++i) y[i] = X[i * D] * X[i * D] - 1.0;
            if (sl_all_finite(N, y)) {
                sl_moments *m = NULL;
                sl_status ms = sl_moments_compute(s, y, 2, &m);
                if (ms == SL_OK) {
                    ck_assert_msg(sl_all_finite(D * D, m->M2), "%s: non-finite M2", c->name);
                    ck_assert_msg(sl_all_finite(N * 2, m->Gw), "%s: non-finite whitened g",
                                  c->name);
                } else {
                    ck_assert(*sl_last_error() != '\0');
                }
                sl_moments_free(m);
            }
        }
        fprintf(stderr, "robust: %s: %zu of %zu regularised\n", c->name, s->regularised, nq);
    }
    sl_scores_free(s);
    free(X);
    free(Q);
}
END_TEST

/* Non-finite samples or queries are refused up front with a message. */
START_TEST(non_finite_input_is_refused) {
    double *X = plain();
    double *Q = far_queries();
    const sl_score_type *T;
    ck_assert_int_eq(sl_score_type_from_name("llsfe", &T), SL_OK);
    sl_scores *s = NULL;
    X[7] = NAN;
    ck_assert_int_eq(sl_score_estimate(T, NULL, N, D, X, N, NULL, &s), SL_ENUMERIC);
    ck_assert_ptr_null(s);
    X[7] = 0.0;
    Q[4] = INFINITY;
    ck_assert_int_eq(sl_score_estimate(T, NULL, N, D, X, NQ, Q, &s), SL_ENUMERIC);
    ck_assert_ptr_null(s);
    ck_assert(strstr(sl_last_error(), "query points") != NULL);
    free(X);
    free(Q);
}
END_TEST

/* ---- memory limits ------------------------------------------------------------ */

typedef struct {
    const char *text;
    int ok;
    size_t bytes;
} size_case;

static const size_case sizes[] = {
    {"2G", 1, (size_t)2 << 30},
    {"512M", 1, (size_t)512 << 20},
    {"64k", 1, 65536},
    {"1.5g", 1, (size_t)3 << 29},
    {"3GB", 1, (size_t)3 << 30},
    {"1000000", 1, 1000000},
    {"none", 1, 0},
    {"", 0, 0},
    {"abc", 0, 0},
    {"-1G", 0, 0},
    {"0", 0, 0},
    {"1e9", 0, 0},
    {"1.5.5", 0, 0},
    {"2X", 0, 0},
    {"inf", 0, 0},
    {"0x10", 0, 0},
    {"99999999999T", 0, 0},
    {"1GBB", 0, 0},
};

START_TEST(memory_sizes_parse) {
    const size_case *c = &sizes[_i];
    size_t bytes = 12345;
    sl_status st = sl_mem_parse(c->text, &bytes);
    if (c->ok) {
        ck_assert_msg(st == SL_OK, "'%s': %s", c->text, sl_last_error());
        ck_assert_msg(bytes == c->bytes, "'%s': %zu bytes, expected %zu", c->text, bytes, c->bytes);
    } else {
        ck_assert_msg(st == SL_EINVAL, "'%s' accepted as %zu bytes", c->text, bytes);
        ck_assert(strstr(sl_last_error(), "memory limit") != NULL);
    }
}
END_TEST

START_TEST(memory_limit_refuses_clearly) {
    ck_assert_uint_eq(sl_mem_mul(SIZE_MAX / 2, 3), SIZE_MAX);
    ck_assert_uint_eq(sl_mem_add(SIZE_MAX - 1, 2), SIZE_MAX);
    ck_assert_uint_eq(sl_mem_doubles(10), 80);
    /* The default limit (available memory) refuses what no machine has. */
    unsetenv(SL_MEM_LIMIT_ENV);
    ck_assert_int_eq(sl_mem_check(1000, "a small step"), SL_OK);
    ck_assert_int_eq(sl_mem_check(SIZE_MAX / 2, "a huge step"), SL_ENOMEM);
    ck_assert(strstr(sl_last_error(), "a huge step needs") != NULL);
    /* An explicit limit bounds the whole process; "none" lifts every limit. */
    setenv(SL_MEM_LIMIT_ENV, "1k", 1);
    ck_assert_int_eq(sl_mem_check(1 << 20, "one megabyte"), SL_ENOMEM);
    ck_assert(strstr(sl_last_error(), SL_MEM_LIMIT_ENV) != NULL);
    setenv(SL_MEM_LIMIT_ENV, "none", 1);
    ck_assert_int_eq(sl_mem_check(SIZE_MAX / 2, "a huge step"), SL_OK);
    setenv(SL_MEM_LIMIT_ENV, "lots", 1);
    ck_assert_int_eq(sl_mem_check(1, "a byte"), SL_EINVAL);
    /* The score estimators check before allocating (20000 x 20: 67 MB of
     * results) and return no scores. */
    const size_t n = 20000, d = 20;
    double *X = calloc(n * d, sizeof *X);
    ck_assert_ptr_nonnull(X);
    for (size_t i = 0; i < n * d; ++i) X[i] = (double)(i % 7) - 3.0;
    setenv(SL_MEM_LIMIT_ENV, "32M", 1);
    const sl_score_type *T;
    ck_assert_int_eq(sl_score_type_from_name("llsfe", &T), SL_OK);
    sl_scores *s = NULL;
    ck_assert_int_eq(sl_score_estimate(T, NULL, n, d, X, n, NULL, &s), SL_ENOMEM);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(sl_last_error(), "llsfe scores of 20000 points in dimension 20 needs") !=
                      NULL,
                  "%s", sl_last_error());
    unsetenv(SL_MEM_LIMIT_ENV);
    free(X);
}
END_TEST

static Suite *robust_suite(void) {
    Suite *s = suite_create("robust");
    TCase *tc = tcase_create("scores");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, scores_stay_finite, 0, (int)(sizeof cases / sizeof cases[0]));
    tcase_add_test(tc, non_finite_input_is_refused);
    suite_add_tcase(s, tc);
    TCase *mem = tcase_create("memlimit");
    tcase_add_loop_test(mem, memory_sizes_parse, 0, (int)(sizeof sizes / sizeof sizes[0]));
    tcase_add_test(mem, memory_limit_refuses_clearly);
    suite_add_tcase(s, mem);
    return s;
}

int main(void) {
    return sl_test_run(robust_suite());
}
