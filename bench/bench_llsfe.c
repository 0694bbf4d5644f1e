/* The all-pairs speed target of issue 3: llsfe at n = 16384, d = 10, fixed
 * bandwidth h = n^{-1/(d+6)}, leave-one-out at the samples, within 2x of
 * ONE OpenBLAS dgemm of the shape the formulation needs: the n x n weights
 * times the n x p moment features, p = 1 + d + d(d+1)/2 (66 at d = 10).
 * Times the kernel moments alone (sl_moments_allpairs) and the full
 * estimator (sl_score_estimate with llsfe, all pairs) beside that dgemm in
 * the same run, with the same number of threads (OpenMP's count; OpenBLAS
 * gets the same count for the reference dgemm). Best of REPS runs each.
 * Usage: bench_llsfe [N [D [REPS]]]; exit status 1 if a ratio exceeds 2. */
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

#include "score/score_internal.h"
#include "scoreloss/rng.h"
#include "scoreloss/score.h"

/* OpenBLAS's cblas.h declares it; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 16384;
    size_t d = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 10;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (n < 2 || d < 1 || reps < 1) {
        fprintf(stderr, "usage: bench_llsfe [N [D [REPS]]]\n");
        return 2;
    }
    size_t p = 1 + d + d * (d + 1) / 2;
    double h = pow((double)n, -1.0 / (double)(d + 6));
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif

    double *X = malloc(n * d * sizeof *X);
    double *K0 = malloc(n * sizeof *K0), *mu = malloc(n * d * sizeof *mu);
    double *Sig = malloc(n * d * d * sizeof *Sig);
    double *A = malloc(n * n * sizeof *A), *B = malloc(n * p * sizeof *B);
    double *C = malloc(n * p * sizeof *C);
    if (!X || !K0 || !mu || !Sig || !A || !B || !C) {
        fprintf(stderr, "bench_llsfe: out of memory (the reference needs %.1f GB)\n",
                (double)(n * n * sizeof *A) / 1e9);
        return 2;
    }
    gsl_rng *r = sl_rng_alloc(1, 0);
    for (size_t i = 0; i < n * d; ++i) X[i] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    /* Weights in (0, 1] and features of order 1, as in the real product. */
    for (size_t i = 0; i < n * n; ++i) A[i] = exp(-(double)(i % 977) / 100.0);
    for (size_t i = 0; i < n * p; ++i) B[i] = X[i % (n * d)];

    sl_score_options opt;
    sl_score_options_default(&opt);
    opt.bandwidth.kind = SL_BW_FIXED;
    opt.bandwidth.value = h;
    opt.strategy = SL_STRATEGY_ALLPAIRS;

    printf("all pairs: n = %zu, d = %zu, p = %zu, h = %.4f, leave-one-out, %d thread(s)\n", n, d, p,
           h, threads);
    double t_gemm = INFINITY, t_mom = INFINITY, t_llsfe = INFINITY;
    int llsfe_ok = 1;
    for (int rep = 0; rep < reps; ++rep) {
        openblas_set_num_threads(threads);
        double t0 = now();
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)p, (int)n, 1.0, A,
                    (int)n, B, (int)p, 0.0, C, (int)p);
        double t1 = now();
        if (t1 - t0 < t_gemm) t_gemm = t1 - t0;

        if (sl_moments_allpairs(n, d, X, n, X, 1, h, K0, mu, Sig, NULL, NULL) != SL_OK) {
            fprintf(stderr, "bench_llsfe: moments: %s\n", sl_last_error());
            return 2;
        }
        double t2 = now();
        if (t2 - t1 < t_mom) t_mom = t2 - t1;

        if (llsfe_ok) {
            sl_scores *s = NULL;
            double t3 = now();
            sl_status st = sl_score_estimate(&sl_score_llsfe, &opt, n, d, X, n, NULL, &s);
            double t4 = now();
            if (st != SL_OK) {
                printf("llsfe: skipped (%s: %s)\n", sl_status_name(st), sl_last_error());
                llsfe_ok = 0;
            } else if (t4 - t3 < t_llsfe) {
                t_llsfe = t4 - t3;
            }
            sl_scores_free(s);
        }
    }
    /* Keep the results alive so that no call can be optimised away. */
    double check = C[0] + K0[0] + mu[0] + Sig[0];

    double ratio_mom = t_mom / t_gemm;
    printf("dgemm %zux%zu * %zux%zu:  %.3f s (%.1f GFLOP/s)\n", n, n, n, p, t_gemm,
           2.0 * (double)n * (double)n * (double)p / t_gemm / 1e9);
    printf("moments (all pairs):     %.3f s   ratio %.2f\n", t_mom, ratio_mom);
    int ok = ratio_mom <= 2.0;
    if (llsfe_ok) {
        double ratio = t_llsfe / t_gemm;
        printf("llsfe (all pairs):       %.3f s   ratio %.2f\n", t_llsfe, ratio);
        ok = ok && ratio <= 2.0;
    }
    printf("target within 2x of the dgemm: %s%s\n", ok ? "met" : "MISSED",
           llsfe_ok ? "" : " (moments only; llsfe not available)");
    if (!isfinite(check)) printf("(non-finite result)\n");

    free(X);
    free(K0);
    free(mu);
    free(Sig);
    free(A);
    free(B);
    free(C);
    return ok ? 0 : 1;
}
