/* Neighbours-only kernel moments at scale (issue 3's target): n = 10^6
 * standard Gaussian samples in d = 10, adaptive bandwidth h_i = distance to
 * the K = 200-th neighbour, leave-one-out, kernel cutoff 5 h_i.
 *
 * Reports: the tree build; a kNN pass over the samples (in the tree's leaf
 * order, as the moments pass takes them); the neighbourhoods that decide the
 * moments' cost (mean number of samples within c h_i for c = 1..cutoff, and
 * the share of the full kernel weight they hold, by brute force on 100
 * queries); and the moments pass (sl_moments_neighbours, which repeats the
 * kNN search for its bandwidths). Total = build + moments pass.
 *
 * The kNN and moments passes run on m queries, m doubling until a pass takes
 * over a third of its budget or m = n; when m < n the full time is
 * extrapolated linearly and marked so. (The moments pass then takes the
 * first m samples in index order, a random subset; the full pass uses the
 * leaf order, which is somewhat faster.)
 *
 * Usage: bench_neighbours [n [d [K|h=H [cutoff [threads]]]]] (h=H: a fixed
 * bandwidth H instead of the K-th neighbour distance)
 * Exit status 1 if the total exceeds 60 s or the peak resident memory 2 GB;
 * 2 on errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_sort.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "score/score_internal.h"
#include "scoreloss/rng.h"

/* Defined in kdtree.c (proposed for score_internal.h). */
sl_status sl_kdtree_info(const sl_kdtree *t, size_t *n, size_t *d, const double **X,
                         const size_t **order);

#define KNN_BUDGET 30.0     /* seconds spent measuring the kNN pass (at most about) */
#define MOMENTS_BUDGET 30.0 /* and the moments pass */
#define COUNT_QUERIES 100   /* queries whose neighbourhoods are counted */
#define TARGET_SECONDS 60.0
#define TARGET_BYTES (2.0 * 1024 * 1024 * 1024)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double peak_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return 1024.0 * (double)ru.ru_maxrss; /* kilobytes on Linux */
}

static int fail(const char *what) {
    fprintf(stderr, "bench_neighbours: %s: %s\n", what, sl_last_error());
    return 2;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtod(argv[1], NULL) : 1000000;
    size_t d = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 10;
    /* K, or "h=VALUE" for a fixed bandwidth (K = 0) */
    size_t K = 200;
    double fixed_h = 0.0;
    if (argc > 3 && strncmp(argv[3], "h=", 2) == 0) {
        K = 0;
        fixed_h = strtod(argv[3] + 2, NULL);
    } else if (argc > 3) {
        K = (size_t)strtoul(argv[3], NULL, 10);
    }
    const size_t Kalloc = K ? K : 1;
    double cutoff = argc > 4 ? strtod(argv[4], NULL) : 5.0;
#ifdef _OPENMP
    if (argc > 5) omp_set_num_threads(atoi(argv[5]));
    int threads = omp_get_max_threads();
#else
    int threads = 1;
#endif
    if (n < 2 || d < 1 || K > n - 1 || (K == 0 && !(fixed_h > 0)) || !(cutoff > 0)) {
        fprintf(stderr, "usage: bench_neighbours [n [d [K|h=H [cutoff [threads]]]]] with 1 <= K "
                        "< n or H > 0\n");
        return 2;
    }
    if (K)
        printf("neighbours: n = %zu, d = %zu, K = %zu (h_i = distance to the K-th neighbour), "
               "cutoff = %g, leave-one-out, %d thread(s)\n",
               n, d, K, cutoff, threads);
    else
        printf("neighbours: n = %zu, d = %zu, fixed h = %g, cutoff = %g, leave-one-out, %d "
               "thread(s)\n",
               n, d, fixed_h, cutoff, threads);

    double *X = malloc(n * d * sizeof *X);
    if (!X) return 2;
    gsl_rng *r = sl_rng_alloc(1, 0);
    for (size_t i = 0; i < n * d; ++i) X[i] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);

    /* Tree build. */
    double t0 = now();
    sl_kdtree *tree;
    if (sl_kdtree_build(n, d, X, &tree)) return fail("build");
    double t_build = now() - t0;
    printf("build:   %8.3f s\n", t_build);

    /* kNN pass: the samples in the tree's leaf order (as the moments pass
     * takes them), doubling the count until the budget is spent. */
    const size_t *order;
    sl_kdtree_info(tree, NULL, NULL, NULL, &order);
    double *h = malloc(n * sizeof *h);
    size_t mk = 1024 < n ? 1024 : n;
    double t_k = 0;
    for (; K > 0;) {
        int knn_failed = 0;
        t0 = now();
#pragma omp parallel
        {
            sl_kdtree_work *w = NULL;
            size_t *idx = malloc(Kalloc * sizeof *idx);
            double *d2 = malloc(Kalloc * sizeof *d2);
            if (sl_kdtree_work_alloc(tree, Kalloc, &w) || !idx || !d2) knn_failed = 1;
#pragma omp for schedule(dynamic, 64)
            for (size_t p = 0; p < mk; ++p) {
                size_t i = order[p];
                if (knn_failed) continue;
                if (sl_kdtree_knn(tree, w, X + i * d, K, i, idx, d2))
                    knn_failed = 1;
                else
                    h[i] = sqrt(d2[K - 1]);
            }
            sl_kdtree_work_free(w);
            free(idx);
            free(d2);
        }
        if (knn_failed) return fail("knn");
        t_k = now() - t0;
        if (mk == n || t_k > KNN_BUDGET / 3) break;
        mk = 2 * mk < n ? 2 * mk : n;
    }
    if (K > 0) {
        double t_knn = t_k / (double)mk * (double)n;
        double *hs = malloc(mk * sizeof *hs);
        for (size_t p = 0; p < mk; ++p) hs[p] = h[order[p]];
        gsl_sort(hs, 1, mk);
        printf("knn:     %8.3f s%s  (%zu queries in %.3f s, %.3g ms per query; h = distance to "
               "the %zu-th neighbour: 5%% %.3f, median %.3f, 95%% %.3f)\n",
               t_knn, mk < n ? " extrapolated" : "", mk, t_k, 1e3 * t_k / (double)mk, K,
               hs[mk / 20], hs[mk / 2], hs[mk - 1 - mk / 20]);
        free(hs);
    }

    /* Neighbourhood sizes and kernel weight captured, on COUNT_QUERIES
     * samples spread over the index range: samples within c h_i, and the
     * share of the full kernel sum sum_j exp(-|x_j - q|^2 / (2 h^2)) they
     * hold (the truncation error that matters: many small weights add up). */
    enum { NC = 8 };
    double cuts[NC];
    int nc = 0;
    for (double c = 1; c < cutoff && nc < NC - 1; c += 1) cuts[nc++] = c;
    cuts[nc++] = cutoff;
    double count_sum[NC] = {0}, share_sum[NC] = {0};
    const size_t nqc = n < COUNT_QUERIES ? n : COUNT_QUERIES;
    int count_failed = 0;
#pragma omp parallel
    {
        sl_kdtree_work *w = NULL;
        size_t *idx = malloc(Kalloc * sizeof *idx);
        double *d2 = malloc(Kalloc * sizeof *d2);
        if (sl_kdtree_work_alloc(tree, Kalloc, &w) || !idx || !d2) count_failed = 1;
        double my_count[NC] = {0}, my_share[NC] = {0};
#pragma omp for schedule(dynamic, 1)
        for (size_t s = 0; s < nqc; ++s) {
            size_t i = s * (n / nqc);
            const double *q = X + i * d;
            if (count_failed || (K && sl_kdtree_knn(tree, w, q, K, i, idx, d2))) {
                count_failed = 1;
                continue;
            }
            const double h2 = K ? d2[K - 1] : fixed_h * fixed_h;
            double total = 0, inside[NC] = {0};
            for (size_t j = 0; j < n; ++j) {
                if (j == i) continue;
                double e2 = 0;
                for (size_t a = 0; a < d; ++a) {
                    double t = X[j * d + a] - q[a];
                    e2 += t * t;
                }
                double wgt = exp(-0.5 * e2 / h2);
                total += wgt;
                for (int c = 0; c < nc; ++c)
                    if (e2 <= cuts[c] * cuts[c] * h2) {
                        inside[c] += wgt;
                        my_count[c] += 1;
                    }
            }
            for (int c = 0; c < nc; ++c) my_share[c] += total > 0 ? inside[c] / total : 1.0;
        }
#pragma omp critical(bench_counts)
        for (int c = 0; c < nc; ++c) {
            count_sum[c] += my_count[c];
            share_sum[c] += my_share[c];
        }
        sl_kdtree_work_free(w);
        free(idx);
        free(d2);
    }
    if (count_failed) return fail("knn for the counts");
    printf("neighbourhoods over %zu queries (mean count within c h_i; mean share of the kernel "
           "weight):\n",
           nqc);
    for (int c = 0; c < nc; ++c)
        printf("  c = %-4g %10.0f samples (%.4f of n), weight share %.6f (lost %.2e)\n", cuts[c],
               count_sum[c] / (double)nqc, count_sum[c] / (double)nqc / (double)n,
               share_sum[c] / (double)nqc, 1.0 - share_sum[c] / (double)nqc);

    /* Moments pass, doubling the number of queries within the budget. */
    double *K0 = malloc(n * sizeof *K0), *mu = malloc(n * d * sizeof *mu),
           *Sig = malloc(n * d * d * sizeof *Sig), *hq = malloc(n * sizeof *hq);
    if (!K0 || !mu || !Sig || !hq) return 2;
    size_t m = 64 < n ? 64 : n;
    double t_m = 0;
    for (;;) {
        t0 = now();
        if (sl_moments_neighbours(tree, n, d, X, m, NULL, 1, fixed_h, K, cutoff, hq, K0, mu, Sig,
                                  NULL, NULL))
            return fail("moments");
        t_m = now() - t0;
        if (m == n || t_m > MOMENTS_BUDGET / 3) break;
        m = 2 * m < n ? 2 * m : n;
    }
    double t_moments = t_m / (double)m * (double)n;
    printf("moments: %8.3f s%s  (%zu queries in %.3f s, %.3g ms per query%s)\n", t_moments,
           m < n ? " extrapolated" : "", m, t_m, 1e3 * t_m / (double)m, K ? ", incl. its kNN" : "");
    double total = t_build + t_moments;
    /* Output pages of the queries not run were never touched: add them. */
    double peak = peak_bytes() + (double)(n - m) * (double)(d * d + d + 2) * sizeof(double);
    printf("total (build + moments): %.3f s%s, peak memory %.0f MB%s\n", total,
           m < n ? " extrapolated" : "", peak / 1048576.0,
           m < n ? " (measured, plus the outputs of the queries not run)" : "");
    int ok = total <= TARGET_SECONDS && peak <= TARGET_BYTES;
    printf("target (< %.0f s, < 2 GB): %s\n", TARGET_SECONDS, ok ? "met" : "MISSED");

    free(K0), free(mu), free(Sig), free(hq), free(h);
    sl_kdtree_free(tree);
    free(X);
    return ok ? 0 : 1;
}
