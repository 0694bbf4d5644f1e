/* Speed of the loss module.
 *
 * 1. One epoch of the per-sample landscape loss with its gradient (every
 *    minibatch of a shuffled pass) at n = 10^5, d = k = 20, batch 256, on
 *    synthetic scores (Gaussian g, random symmetric H), as samples per
 *    second and effective GFLOP/s. The flops counted are the ones the
 *    method needs per sample: the five products (u = B'g, H B, B'HB and the
 *    two gradient products: 6 k^3 + 4 k^2) and the closed form on the pairs
 *    (about 16 per pair and 22 per column with the gradient); copies are not
 *    counted. Next to it, OpenBLAS dgemm timed in the same run on a shape
 *    like the batched products ((256 k) x k times k x k) and on 2000^3.
 * 2. sl_moments_compute, sl_moments_tensor and sl_moments_signal at
 *    n = 10^6, d = 10, k = 5 (the scores take 0.9 GB).
 *
 * Usage: bench_loss [N_EPOCH [N_MOMENTS]]. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "scoreloss/loss.h"
#include "scoreloss/rng.h"

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Gaussian g, symmetric H with N(0, 0.3^2) entries, y = 1 + N(0, 1): M2 is
 * close to the identity, so every direction is whitened stably. */
static sl_scores *random_scores(size_t n, size_t d, double **y) {
    sl_scores *s = NULL;
    if (sl_scores_alloc(n, d, &s)) return NULL;
    *y = malloc(n * sizeof **y);
    gsl_rng *r = sl_rng_alloc(7, 0);
    if (!*y || !r) {
        sl_scores_free(s);
        gsl_rng_free(r);
        return NULL;
    }
    for (size_t j = 0; j < n; ++j) {
        for (size_t a = 0; a < d; ++a) s->G[j * d + a] = gsl_ran_gaussian(r, 1.0);
        double *H = s->H + j * d * d;
        for (size_t a = 0; a < d; ++a)
            for (size_t b = a; b < d; ++b) H[a * d + b] = H[b * d + a] = gsl_ran_gaussian(r, 0.3);
        (*y)[j] = 1.0 + gsl_ran_gaussian(r, 1.0);
    }
    gsl_rng_free(r);
    return s;
}

/* GFLOP/s of C = A B (m x kk times kk x nn), best of reps after a warm-up,
 * on `threads` OpenBLAS threads (0: its default). */
static double dgemm_rate(size_t m, size_t kk, size_t nn, int reps, int threads) {
    const int saved = openblas_get_num_threads();
    if (threads > 0) openblas_set_num_threads(threads);
    double *A = malloc(m * kk * sizeof *A), *B = malloc(kk * nn * sizeof *B);
    double *C = malloc(m * nn * sizeof *C);
    if (!A || !B || !C) {
        free(A);
        free(B);
        free(C);
        return NAN;
    }
    for (size_t i = 0; i < m * kk; ++i) A[i] = (double)(i % 17) * 0.1 - 0.8;
    for (size_t i = 0; i < kk * nn; ++i) B[i] = (double)(i % 13) * 0.1 - 0.6;
    double best = INFINITY;
    for (int r = -1; r < reps; ++r) {
        double t0 = now();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)kk, 1.0, A,
                    (int)kk, B, (int)nn, 0.0, C, (int)nn);
        double t = now() - t0;
        if (r >= 0 && t < best) best = t;
    }
    free(A);
    free(B);
    free(C);
    openblas_set_num_threads(saved);
    return 2.0 * (double)m * (double)kk * (double)nn / best * 1e-9;
}

static int bench_epoch(size_t n) {
    const size_t d = 20, k = 20, batch = 256;
    double *y = NULL;
    sl_scores *s = random_scores(n, d, &y);
    if (!s) {
        fprintf(stderr, "bench_loss: out of memory for the scores\n");
        return 1;
    }
    sl_moments *m = NULL;
    sl_landscape *L = NULL;
    sl_landscape_options opt;
    sl_landscape_options_default(&opt);
    opt.sign = -1; /* synthetic scores have no planted signal to estimate a sign from */
    if (sl_moments_compute(s, y, k, &m) || sl_landscape_alloc(m, &opt, batch, &L)) {
        fprintf(stderr, "bench_loss: %s\n", sl_last_error());
        return 1;
    }
    sl_scores_free(s);
    free(y);

    size_t *perm = malloc(n * sizeof *perm);
    double *B = malloc(k * k * sizeof *B), *grad = malloc(k * k * sizeof *grad);
    gsl_rng *r = sl_rng_alloc(8, 0);
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    gsl_ran_shuffle(r, perm, n, sizeof *perm);
    for (size_t i = 0; i < k * k; ++i) B[i] = gsl_ran_gaussian(r, 1.0 / sqrt((double)k));
    gsl_rng_free(r);

    /* Warm-up batch, then the timed epoch (best of three passes). */
    double sink = sl_landscape_objective(k * k, B, grad, perm, batch, L), best = INFINITY;
    for (int rep = 0; rep < 3; ++rep) {
        double t0 = now();
        for (size_t lo = 0; lo < n; lo += batch) {
            const size_t nb = n - lo < batch ? n - lo : batch;
            sink += sl_landscape_objective(k * k, B, grad, perm + lo, nb, L);
        }
        double t = now() - t0;
        if (t < best) best = t;
    }
    if (!isfinite(sink)) {
        fprintf(stderr, "bench_loss: the objective failed: %s\n", sl_last_error());
        return 1;
    }
    const double kd = (double)k;
    const double flops_per_sample =
        6.0 * kd * kd * kd + 4.0 * kd * kd + 16.0 * kd * (kd - 1.0) / 2.0 + 22.0 * kd + 5.0;
    const double rate = flops_per_sample * (double)n / best * 1e-9;
    const double g_small = dgemm_rate(batch * k, k, k, 200, 0);
    const double g_small1 = dgemm_rate(batch * k, k, k, 200, 1);
    const double g_large = dgemm_rate(2000, 2000, 2000, 3, 0);
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("landscape epoch: n = %zu, d = k = %zu, batch %zu, %d thread(s): %.3f s, "
           "%.3g samples/s, %.0f flops/sample, %.2f GFLOP/s\n",
           n, k, batch, threads, best, (double)n / best, flops_per_sample, rate);
    printf("dgemm %zux%zu * %zux%zu: %.2f GFLOP/s (%d OpenBLAS threads), %.2f GFLOP/s (1 thread); "
           "dgemm 2000^3: %.2f GFLOP/s\n",
           batch * k, k, k, k, g_small, openblas_get_num_threads(), g_small1, g_large);
    const double g_best = g_small > g_small1 ? g_small : g_small1;
    printf("result: landscape %.2f GFLOP/s = %.2f of the small dgemm (its faster setting), %.2f of "
           "the large one (target >= 0.33)\n",
           rate, rate / g_best, rate / g_large);
    free(perm);
    free(B);
    free(grad);
    sl_landscape_free(L);
    sl_moments_free(m);
    return 0;
}

static int bench_moments(size_t n) {
    const size_t d = 10, k = 5;
    double *y = NULL;
    sl_scores *s = random_scores(n, d, &y);
    if (!s) {
        fprintf(stderr, "bench_loss: out of memory for the scores\n");
        return 1;
    }
    sl_moments *m = NULL;
    double t0 = now();
    if (sl_moments_compute(s, y, k, &m)) {
        fprintf(stderr, "bench_loss: %s\n", sl_last_error());
        return 1;
    }
    double t1 = now();
    if (sl_moments_tensor(m)) {
        fprintf(stderr, "bench_loss: %s\n", sl_last_error());
        return 1;
    }
    double t2 = now();
    if (sl_moments_signal(m)) {
        fprintf(stderr, "bench_loss: %s\n", sl_last_error());
        return 1;
    }
    double t3 = now();
    const double nd = (double)n, dd = (double)d, kd = (double)k;
    /* M2: 2 n d^2 (g g') + 2 n d^2 (H y); Gw: 2 n d k; Hw: 2 n d^2 k + 2 n d k^2. */
    const double f_mom =
        4.0 * nd * dd * dd + 2.0 * nd * dd * kd + 2.0 * nd * dd * dd * kd + 2.0 * nd * dd * kd * kd;
    const double f_tensor = 6.0 * nd * kd * kd * kd * kd;
    /* The Hessians are read twice (M2, then the whitening). */
    const double gbytes = 2.0 * nd * dd * dd * sizeof(double) * 1e-9;
    printf("moments: n = %zu, d = %zu, k = %zu: compute %.3f s (%.2f GFLOP/s, %.2f GB/s of H), "
           "tensor %.3f s (%.2f GFLOP/s), signal %.4f s\n",
           n, d, k, t1 - t0, f_mom / (t1 - t0) * 1e-9, gbytes / (t1 - t0), t2 - t1,
           f_tensor / (t2 - t1) * 1e-9, t3 - t2);
    sl_moments_free(m);
    sl_scores_free(s);
    free(y);
    return 0;
}

int main(int argc, char **argv) {
    const size_t n_epoch = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 100000;
    const size_t n_moments = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 1000000;
    if (n_epoch < 256 || n_moments < 10) {
        fprintf(stderr, "usage: bench_loss [N_EPOCH >= 256 [N_MOMENTS >= 10]]\n");
        return 2;
    }
    if (bench_epoch(n_epoch)) return 1;
    return bench_moments(n_moments);
}
