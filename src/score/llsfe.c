/* The kernel score estimators: llsfe (local likelihood) and kde.
 *
 * Both start from the kernel moments around each query (K0, the local mean
 * offset mu and the local covariance Sig; score_internal.h) and differ only in
 * the map to (g, H):
 *   llsfe: g = Sig^{-1} mu,  H = h^{-2} I - Sig^{-1}   (METHOD.md section 3)
 *   kde:   g = mu / h^2,     H = Sig / h^4 - I / h^2   (grad and Hessian of log KDE)
 *
 * Regularisation of llsfe. With few samples under the kernel (high d, small
 * n) Sig is estimated from a handful of points and its inverse, the local
 * curvature, is mostly noise. Sig is therefore pooled with a target T as nu0
 * pseudo-samples against the K0 real ones, the mean offset left alone:
 *   Sig_s = (K0 Sig + nu0 T) / (K0 + nu0),  g = Sig_s^{-1} mu,  H = h^{-2} I - Sig_s^{-1}.
 * T is the pooled local covariance: the K0-weighted mean of the samples' own
 * leave-one-out local covariances at the same bandwidth (for knn, of Sig / h^2,
 * rescaled by each point's h^2), i.e. the average curvature of the data
 * instead of the curvature at this point. As n grows K0 grows and the prior
 * fades: the large-sample limit is the plain local fit. shrink = 0 is that
 * plain fit.
 *
 * Why this target (gmm2, d = 10, n = 1000, the samples in the box |x_j| <= 2,
 * relative MSE of g at the best fixed h, mean of seeds 31-33):
 *   plain local fit                                        0.18
 *   all moments pooled with the kernel-tilted global
 *     Gaussian (the former default, any nu0 up to 100)      0.18
 *   Sig alone pooled with the tilted global Gaussian        0.11 (nu0 -> inf)
 *   Sig pooled with a local fit at 2h or 3h                 0.13, 0.12
 *   Sig pooled with the pooled local covariance             0.057 (nu0 -> inf)
 *   the exact curvature H in g = (h^{-2} I - H) mu          0.046 (the floor)
 * The global Gaussian's curvature mixes the spread between the modes into
 * the curvature; the pool averages the local curvatures. Also pooling mu
 * with the tilted global Gaussian (1 pseudo-sample) made it worse (0.058 to
 * 0.069), and a per-point Ledoit-Wolf weight was not uniformly good (gmm2
 * d = 5 n = 10^4: 0.049 against 0.029 at nu0 = 1000).
 *
 * The weight nu0. No single value suits every input: at n = 10^4 the
 * anisotropic 3-component mixture (components of different shapes: the
 * local curvature is the point there) wants nu0 <= 10 at d = 5 (0.105;
 * 0.19 at 1000) and <= 3 at d = 10 (0.154 at 3, 0.165 plain, 0.203 at 10),
 * while gmm2 at d = 5 wants 1000 (0.029; 0.085 plain). So with the
 * automatic bandwidth and the default shrink, nu0 is chosen by the same
 * held-out score matching along SL_LLSFE_SHRINK_LADDER, jointly with h
 * (choose_bandwidth_and_shrink); the example above then gives 0.036 to
 * 0.077 over seeds 31-38. A given bandwidth (fixed, const:C, knn:K) takes
 * SL_LLSFE_DEFAULT_SHRINK = 3, the largest weight of the ladder that was
 * never worse than the plain fit at its best h in those measurements, and
 * stays as cheap as the plain fit. Beyond n = 10^4 the held-out objective
 * trains on a subset of the sample (bandwidth.c), so the weight is chosen
 * for that smaller sample; at n = 10^5, d = 2 that moved the g errors of
 * agmm, gmm2 and student (whose h stayed) by at most 3.3%, the largest
 * move a gain (student, over all samples, 0.0234 to 0.0226).
 *
 * knn:K: the moments' kernel is truncated at the K-th neighbour, so the map
 * uses the variance of that truncated kernel for h^2 (sl_kernel_scores).
 *
 * Points with no sample in reach (K0 = 0) take the global Gaussian's scores;
 * they and the points whose own Sig needed the prior or a ridge to be
 * positive definite are counted as regularised. */
#include "score/score_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>
#include <lapacke.h>

#include "core/linalg.h"
#include "scoreloss/rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* The ladder of prior weights (pseudo-samples) the automatic bandwidth
 * climbs, from SL_LLSFE_SHRINK_START; and the weight of a given bandwidth. */
#define SL_LLSFE_SHRINK_LADDER                                                                     \
    { 0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0 }
#define SL_LLSFE_SHRINK_START 4
#define SL_LLSFE_DEFAULT_SHRINK 3.0

/* At most this many samples estimate the pooled local covariance when the
 * queries are not the samples themselves. */
#define SL_POOL_MAX 1000

/* Problems with more query-sample pairs than this use neighbours. */
#define SL_ALLPAIRS_MAX_PAIRS 4.0e8

/* ... or when the neighbourhoods of radius cutoff * h hold at least this
 * share of the samples (reach_share): the neighbour search then visits
 * most of the sample anyway, at a higher cost per pair. Measured (release,
 * CPU seconds, llsfe at the samples): logistic d = 10, n = 3 10^4, h = 2.3:
 * all pairs 5.2, neighbours 39.0; d = 6, n = 5 10^4, h = 1.5: 8.8 against
 * 79.8; h = 0.6 (share 0.041): 8.9 against 6.1, i.e. about 3.6 ns per pair
 * against 60 per neighbour. */
#define SL_ALLPAIRS_MIN_SHARE 0.06

/* The share of sample-query pairs within distance r, estimated from up to
 * 64 evenly spaced queries against up to 4096 evenly spaced samples. */
static double reach_share(size_t n, size_t d, const double *X, size_t nq, const double *Q,
                          double r) {
    const size_t a = nq < 64 ? nq : 64, b = n < 4096 ? n : 4096;
    size_t inside = 0;
    for (size_t i = 0; i < a; ++i) {
        const double *q = Q + (i * nq / a) * d;
        for (size_t j = 0; j < b; ++j) {
            const double *x = X + (j * n / b) * d;
            double r2 = 0.0;
            for (size_t c = 0; c < d; ++c) r2 += (x[c] - q[c]) * (x[c] - q[c]);
            inside += r2 <= r * r;
        }
    }
    return a > 0 && b > 0 ? (double)inside / (double)(a * b) : 0.0;
}

/* Per-thread scratch for the map. */
typedef struct {
    double *Sg, *mug, *S, *T, *tmp;
} map_work;

static sl_status map_work_alloc(size_t d, map_work *w) {
    double *block = malloc((4 * d * d + 2 * d) * sizeof *block);
    if (!block) return sl_error(SL_ENOMEM, "out of memory");
    w->Sg = block;
    w->S = w->Sg + d * d;
    w->T = w->S + d * d;
    w->tmp = w->T + d * d;
    w->mug = w->tmp + d * d;
    return SL_OK;
}

/* The global Gaussian under the kernel at q: Sig_g and mu_g. With P = U
 * diag(p) U' precomputed, Sig_g = U diag(1 / (p + h^-2)) U'. */
static void gaussian_tilted(const sl_gauss_fit *fit, const double *Pevec, const double *Peval,
                            size_t d, const double *q, double h, double *Sg, double *mug,
                            double *tmp) {
    const double ih2 = 1.0 / (h * h);
    /* tmp = U diag(1 / (p + ih2)) */
    for (size_t a = 0; a < d; ++a)
        for (size_t c = 0; c < d; ++c) tmp[a * d + c] = Pevec[a * d + c] / (Peval[c] + ih2);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d, 1.0, tmp, (int)d,
                Pevec, (int)d, 0.0, Sg, (int)d);
    /* mu_g = Sig_g P (m - q) = Sig_g * g_gauss(q) with g_gauss = -P (q - m). */
    double *r = tmp, *gg = tmp + d;
    for (size_t a = 0; a < d; ++a) r[a] = fit->m[a] - q[a];
    cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, fit->P, (int)d, r, 1, 0.0, gg, 1);
    cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, Sg, (int)d, gg, 1, 0.0, mug, 1);
}

/* Cholesky of A into L succeeds with every pivot^2 above 1e-10 h^2: tiny
 * pivots would turn noise into huge scores. */
static int safely_positive_definite(size_t d, const double *A, double h, double *L) {
    memcpy(L, A, d * d * sizeof *L);
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', (lapack_int)d, L, (lapack_int)d) != 0) return 0;
    for (size_t a = 0; a < d; ++a)
        if (!(L[a * d + a] * L[a * d + a] > 1e-10 * h * h)) return 0;
    return 1;
}

/* In place: mu (d) and Sig (d x d) become the kde's g and H. Returns 1 if
 * the point had nothing in reach. */
static int map_kde(const sl_gauss_fit *fit, size_t d, const double *q, double h, double K0,
                   double *mu, double *Sig, double *tmp) {
    const double ih2 = 1.0 / (h * h);
    if (K0 <= 0) {
        /* Nothing in reach: the global Gaussian's scores. */
        for (size_t a = 0; a < d; ++a) tmp[a] = fit->m[a] - q[a];
        cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, fit->P, (int)d, tmp, 1, 0.0, mu, 1);
        for (size_t k = 0; k < d * d; ++k) Sig[k] = -fit->P[k];
        return 1;
    }
    for (size_t a = 0; a < d; ++a) mu[a] *= ih2;
    for (size_t k = 0; k < d * d; ++k)
        Sig[k] = (Sig[k] * ih2) * ih2; /* ih2 * ih2 overflows for h near 1e-151 */
    for (size_t a = 0; a < d; ++a) Sig[a * d + a] -= ih2;
    return 0;
}

/* The prior of llsfe's local covariance (see the top of the file). */
typedef struct {
    double nu0;       /* its weight in pseudo-samples, against K0 */
    const double *Tn; /* the pooled local covariance (over h^2 for knn), or NULL */
    double W;         /* the kernel mass K0 summed over the pool */
    int knn;          /* Tn is over h^2: scale it by each point's own h^2 */
    double kappa;     /* knn: the truncated kernel's variance over h^2 */
} llsfe_prior;

/* What the divergence of g needs from the map (sl_kernel_scores_div): the
 * target T and the weight a1 = K0 / (K0 + nu0) of the point's own Sig in
 * Sig_s = a1 Sig + (1 - a1) T; global = 1 when the point took the global
 * Gaussian's scores instead (g = P (m - q), div g = -tr P). */
typedef struct {
    double a1;
    double *T; /* d x d */
    int global;
} llsfe_deriv;

/* In place: mu (d) and Sig (d x d) become llsfe's g and H. Returns 1 if the
 * point was regularised. dv (may be NULL) receives what the divergence needs. */
static int map_llsfe(const sl_gauss_fit *fit, const double *Pevec, const double *Peval, size_t d,
                     const double *q, double h, double K0, const llsfe_prior *pr, double *mu,
                     double *Sig, map_work *w, llsfe_deriv *dv) {
    const double ih2 = 1.0 / (h * h);
    int regularised = 0;
    /* Counted as regularised when its own local covariance is singular or
     * ill-conditioned, whatever repairs it below (the prior or a ridge):
     * the answer there is not the plain local fit's. */
    if (K0 > 0 && pr->nu0 > 0 && !safely_positive_definite(d, Sig, h, w->S)) regularised = 1;
    if (K0 <= 0 || pr->nu0 > 0) gaussian_tilted(fit, Pevec, Peval, d, q, h, w->Sg, w->mug, w->tmp);
    if (K0 <= 0) {
        /* Nothing in reach: the global Gaussian's local moments. */
        memcpy(mu, w->mug, d * sizeof *mu);
        memcpy(Sig, w->Sg, d * d * sizeof *Sig);
        regularised = 1;
    } else if (pr->nu0 > 0) {
        /* The target: the pool, itself pulled toward the tilted global
         * Gaussian as d + 1 pseudo-samples against its mass W (which only
         * matters when the pool is nearly empty: tiny h, high d). */
        const double *T = w->Sg;
        if (pr->Tn) {
            const double s = pr->knn ? h * h / pr->kappa : 1.0;
            const double c1 = pr->W / (pr->W + (double)d + 1.0), c2 = 1.0 - c1;
            for (size_t k = 0; k < d * d; ++k) w->T[k] = c1 * s * pr->Tn[k] + c2 * w->Sg[k];
            T = w->T;
        }
        const double a1 = K0 / (K0 + pr->nu0), a2 = 1.0 - a1;
        for (size_t k = 0; k < d * d; ++k) Sig[k] = a1 * Sig[k] + a2 * T[k];
        if (dv) {
            dv->a1 = a1;
            memcpy(dv->T, T, d * d * sizeof *T);
        }
    } else if (dv) {
        dv->a1 = 1.0;
    }
    if (dv) dv->global = K0 <= 0;
    /* Sig^{-1} by Cholesky; a ridge in units of h^2 when it is not (safely)
     * positive definite: tiny pivots would turn noise into huge scores. */
    double ridge = 0.0;
    for (int attempt = 0;; ++attempt) {
        for (size_t a = 0; a < d; ++a) Sig[a * d + a] += ridge;
        if (safely_positive_definite(d, Sig, h, w->S)) break;
        for (size_t a = 0; a < d; ++a) Sig[a * d + a] -= ridge;
        regularised = 1;
        ridge = ridge == 0.0 ? 1e-8 * h * h : ridge * 100.0;
        if (attempt > 8) {
            /* A ridge of 10^8 h^2 did not help: Sig is beyond repair, so
             * the point takes the global Gaussian's local moments. */
            gaussian_tilted(fit, Pevec, Peval, d, q, h, Sig, mu, w->tmp);
            if (dv) dv->global = 1;
            if (!safely_positive_definite(d, Sig, h, w->S)) {
                for (size_t a = 0; a < d; ++a) Sig[a * d + a] += h * h;
                safely_positive_definite(d, Sig, h, w->S);
            }
            break;
        }
    }
    LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'U', (lapack_int)d, w->S, (lapack_int)d);
    for (size_t a = 0; a < d; ++a)
        for (size_t b = 0; b < a; ++b) w->S[a * d + b] = w->S[b * d + a];
    /* g = Sig^{-1} mu, H = h^{-2} I - Sig^{-1} */
    cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, w->S, (int)d, mu, 1, 0.0, w->tmp, 1);
    memcpy(mu, w->tmp, d * sizeof *mu);
    for (size_t k = 0; k < d * d; ++k) Sig[k] = -w->S[k];
    for (size_t a = 0; a < d; ++a) Sig[a * d + a] += ih2;
    return regularised;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Kernel moments at the nq rows of Q (or at the samples, leave-one-out, when
 * Q is NULL) by the chosen strategy. */
static sl_status moments(sl_strategy strategy, const sl_score_options *opt, sl_kdtree **tree,
                         size_t n, size_t d, const double *X, size_t nq, const double *Q, double h,
                         size_t K, double *hq, double *K0, double *mu, double *Sig, int report) {
    const int loo = Q == NULL;
    sl_progress_fn progress = report ? opt->progress : NULL;
    if (strategy == SL_STRATEGY_ALLPAIRS)
        return sl_moments_allpairs(n, d, X, nq, Q, loo, h, K0, mu, Sig, progress,
                                   opt->progress_ctx);
    if (!*tree) {
        sl_status st = sl_kdtree_build(n, d, X, tree);
        if (st) return st;
    }
    return sl_moments_neighbours(*tree, n, d, X, nq, Q, loo, h, K, opt->cutoff, hq, K0, mu, Sig,
                                 progress, opt->progress_ctx, opt->knn_eps);
}

/* The pooled local covariance: the K0-weighted mean of the samples' own
 * (leave-one-out) local covariances, each divided by its h^2 when the
 * bandwidth is adaptive. From the queries' moments when they are the samples
 * (Q = NULL), else from a seeded subset of at most SL_POOL_MAX samples,
 * whose own point is taken out of their moments afterwards. *have = 0 when
 * no sample had a neighbour in reach; *W is the kernel mass behind Tn. */
static sl_status pooled_covariance(sl_strategy strategy, const sl_score_options *opt,
                                   sl_kdtree **tree, size_t n, size_t d, const double *X, size_t nq,
                                   const double *Q, double h, size_t K, const double *hq,
                                   const double *K0, const double *Sig, double *Tn, int *have,
                                   double *W) {
    memset(Tn, 0, d * d * sizeof *Tn);
    *have = 0;
    double wsum = 0.0;
    if (!Q) {
        for (size_t i = 0; i < nq; ++i) {
            if (!(K0[i] > 0) || (K > 0 && !(hq[i] > 0))) continue;
            const double s = K > 0 ? 1.0 / (hq[i] * hq[i]) : 1.0;
            wsum += K0[i];
            for (size_t k = 0; k < d * d; ++k) Tn[k] += K0[i] * s * Sig[i * d * d + k];
        }
    } else {
        const size_t P = n < SL_POOL_MAX ? n : SL_POOL_MAX;
        size_t *all = malloc(n * sizeof *all), *pick = malloc(P * sizeof *pick);
        double *Xs = malloc(P * d * sizeof *Xs), *k0 = malloc(P * sizeof *k0);
        double *m1 = malloc(P * d * sizeof *m1), *m2 = malloc(P * d * d * sizeof *m2);
        double *hs = K > 0 ? malloc(P * sizeof *hs) : NULL;
        gsl_rng *r = sl_rng_alloc(opt->seed, 0xB1);
        sl_status st = SL_OK;
        if (!all || !pick || !Xs || !k0 || !m1 || !m2 || (K > 0 && !hs) || !r)
            st = sl_error(SL_ENOMEM, "out of memory");
        if (st == SL_OK) {
            for (size_t i = 0; i < n; ++i) all[i] = i;
            gsl_ran_choose(r, pick, P, all, n, sizeof *all);
            for (size_t i = 0; i < P; ++i) memcpy(Xs + i * d, X + pick[i] * d, d * sizeof *X);
            /* The K-th neighbour of a sample counts the sample itself: one
             * neighbour fewer than at other points, close enough for a pool. */
            st = moments(strategy, opt, tree, n, d, X, P, Xs, h, K, hs, k0, m1, m2, 0);
        }
        if (st == SL_OK) {
            for (size_t i = 0; i < P; ++i) {
                /* Take the sample's own unit weight at offset 0 out:
                 * raw sums S1 = K0 mu, S2 = K0 (Sig + mu mu') keep, K0 drops by 1. */
                const double kk = k0[i] - 1.0;
                if (!(kk > 1e-3) || (K > 0 && !(hs[i] > 0))) continue;
                const double s = K > 0 ? 1.0 / (hs[i] * hs[i]) : 1.0;
                const double *u = m1 + i * d, *S = m2 + i * d * d;
                const double c = k0[i] * k0[i] / kk;
                for (size_t a = 0; a < d; ++a)
                    for (size_t b = 0; b < d; ++b)
                        Tn[a * d + b] +=
                            s * (k0[i] * (S[a * d + b] + u[a] * u[b]) - c * u[a] * u[b]);
                wsum += kk;
            }
        }
        free(all);
        free(pick);
        free(Xs);
        free(k0);
        free(m1);
        free(m2);
        free(hs);
        if (r) gsl_rng_free(r);
        if (st) return st;
    }
    if (wsum > 0) {
        for (size_t k = 0; k < d * d; ++k) Tn[k] /= wsum;
        *have = 1;
    }
    *W = wsum;
    return SL_OK;
}

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#include <immintrin.h>
/* glibc's libmvec exp (as in moments_allpairs.c): gcc vectorises exp()
 * only under -fno-math-errno for the whole file. */
__attribute__((target("avx2"))) __m256d _ZGVdN4v_exp(__m256d x);

__attribute__((target("avx2"))) static void exp_row_avx2(size_t m, double *e) {
    const __m256d zero = _mm256_setzero_pd();
    size_t j = 0;
    for (; j + 4 <= m; j += 4)
        _mm256_storeu_pd(e + j, _ZGVdN4v_exp(_mm256_min_pd(_mm256_loadu_pd(e + j), zero)));
    for (; j < m; ++j) e[j] = exp(e[j] < 0.0 ? e[j] : 0.0);
}
#define SL_SKEW_AVX2 1
#endif

/* e[j] = exp(min(e[j], 0)) in place. */
static void exp_row(size_t m, double *e) {
#ifdef SL_SKEW_AVX2
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        exp_row_avx2(m, e);
        return;
    }
#endif
    for (size_t j = 0; j < m; ++j) e[j] = exp(e[j] < 0.0 ? e[j] : 0.0);
}

/* The skewness term of llsfe's divergence (sl_kernel_scores_div): for each
 * query i with centre c_i = q_i + mu_i, the lower Cholesky factor L_i of
 * P_i = Sig_s^{-1} and g_i,
 *   T3_i = sum_j w_ij (v' P_i v) (g_i' v) / sum_j w_ij,  v = x_j - c_i,
 * over every sample (w_ij the kernel weight at q_i). As matrix products over
 * a block of SKEW_QB queries and a tile of SKEW_NS samples, centred at the
 * block's mean centre b: Y = (X - b) [L_1 .. L_B, (Q - b)', G'] gives
 * L_i'(x_j - b), (x_j - b).(q_i - b) and g_i.(x_j - b) at once. Blocks and
 * tiles are fixed by the sizes, the sums of each query run in a fixed order:
 * the result does not depend on the thread count. skip[i] marks queries
 * without the term. */
#define SKEW_QB 16
#define SKEW_NS 256

static sl_status skew_term(size_t n, size_t d, const double *X, size_t nq, const double *Q,
                           double h, const double *L, const double *C, const double *G,
                           const unsigned char *skip, double *T3) {
    const size_t nb = (nq + SKEW_QB - 1) / SKEW_QB, ncol = SKEW_QB * (d + 2);
    const double i2h2 = 0.5 / (h * h);
    int failed = 0;
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#ifdef _OPENMP
#pragma omp parallel reduction(+ : failed)
#endif
    {
        double *R = malloc(d * ncol * sizeof *R), *Y = malloc(SKEW_NS * ncol * sizeof *Y);
        double *Xc = malloc(SKEW_NS * d * sizeof *Xc), *x2 = malloc(SKEW_NS * sizeof *x2);
        double *lc = malloc(SKEW_QB * d * sizeof *lc), *Wt = malloc(SKEW_QB * SKEW_NS * sizeof *Wt);
        double *b = malloc(d * sizeof *b), q2[SKEW_QB], gc[SKEW_QB], acc[SKEW_QB], wsum[SKEW_QB];
        if (!R || !Y || !Xc || !x2 || !lc || !Wt || !b) {
            failed = 1;
        } else {
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
            for (size_t blk = 0; blk < nb; ++blk) {
                const size_t i0 = blk * SKEW_QB, B = nq - i0 < SKEW_QB ? nq - i0 : SKEW_QB;
                for (size_t a = 0; a < d; ++a) {
                    b[a] = 0.0;
                    for (size_t i = 0; i < B; ++i) b[a] += C[(i0 + i) * d + a] / (double)B;
                }
                /* R = [L_1 .. L_B (d x d each), (q_i - b) columns, g_i columns] */
                memset(R, 0, d * ncol * sizeof *R);
                for (size_t i = 0; i < B; ++i) {
                    const double *Li = L + (i0 + i) * d * d, *q = Q + (i0 + i) * d,
                                 *g = G + (i0 + i) * d, *c = C + (i0 + i) * d;
                    q2[i] = 0.0;
                    gc[i] = 0.0;
                    for (size_t a = 0; a < d; ++a) {
                        for (size_t e = 0; e < d; ++e) R[a * ncol + i * d + e] = Li[a * d + e];
                        R[a * ncol + SKEW_QB * d + i] = q[a] - b[a];
                        R[a * ncol + SKEW_QB * (d + 1) + i] = g[a];
                        q2[i] += (q[a] - b[a]) * (q[a] - b[a]);
                        gc[i] += g[a] * (c[a] - b[a]);
                    }
                    /* lc = L_i' (c_i - b) */
                    for (size_t e = 0; e < d; ++e) {
                        double t = 0.0;
                        for (size_t a = 0; a < d; ++a) t += Li[a * d + e] * (c[a] - b[a]);
                        lc[i * d + e] = t;
                    }
                    acc[i] = wsum[i] = 0.0;
                }
                for (size_t j0 = 0; j0 < n; j0 += SKEW_NS) {
                    const size_t ns = n - j0 < SKEW_NS ? n - j0 : SKEW_NS;
                    for (size_t j = 0; j < ns; ++j) {
                        x2[j] = 0.0;
                        for (size_t a = 0; a < d; ++a) {
                            const double t = X[(j0 + j) * d + a] - b[a];
                            Xc[j * d + a] = t;
                            x2[j] += t * t;
                        }
                    }
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ns, (int)ncol,
                                (int)d, 1.0, Xc, (int)d, R, (int)ncol, 0.0, Y, (int)ncol);
                    for (size_t i = 0; i < B; ++i) {
                        double *e = Wt + i * SKEW_NS;
                        for (size_t j = 0; j < ns; ++j)
                            e[j] = -(x2[j] - 2.0 * Y[j * ncol + SKEW_QB * d + i] + q2[i]) * i2h2;
                        exp_row(ns, e);
                    }
                    for (size_t j = 0; j < ns; ++j) {
                        const double *y = Y + j * ncol;
                        for (size_t i = 0; i < B; ++i) {
                            const double w = Wt[i * SKEW_NS + j];
                            double z2 = 0.0;
                            for (size_t e = 0; e < d; ++e) {
                                const double z = y[i * d + e] - lc[i * d + e];
                                z2 += z * z;
                            }
                            acc[i] += w * z2 * (y[SKEW_QB * (d + 1) + i] - gc[i]);
                            wsum[i] += w;
                        }
                    }
                }
                for (size_t i = 0; i < B; ++i)
                    T3[i0 + i] = skip[i0 + i] || !(wsum[i] > 0) ? 0.0 : acc[i] / wsum[i];
            }
        }
        free(R);
        free(Y);
        free(Xc);
        free(x2);
        free(lc);
        free(Wt);
        free(b);
    }
    openblas_set_num_threads(blas_threads);
    return failed ? sl_error(SL_ENOMEM, "out of memory") : SL_OK;
}

/* The divergence of llsfe's g at one query, but for the skewness term
 * (sl_kernel_scores_div). With u = x - q, the kernel's local moments move
 * with q as cumulants under a tilt: d mu / dq = Sig / h^2 - I,
 * d Sig_bc / dq_a = C3_abc / h^2 (the local third central moment), and
 * d K0 / dq = K0 mu / h^2, so d a1 / dq = a1 a2 mu / h^2 (a2 = 1 - a1).
 * From g = P mu, P = Sig_s^{-1}, Sig_s = a1 Sig + a2 T (+ a constant ridge):
 *   div g = tr(P Sig) / h^2 - tr P - a1 a2 mu' P (Sig - T) g / h^2
 *           - a1 E_w[(v' P v)(g' v)] / h^2,  v = x - q - mu,
 * the last term (skew_term) from a second pass over the samples. Without
 * it this is tr H only when a1 = 1 and Sig is the covariance of the local
 * weights, i.e. never: tr H alone is a different function of h (see
 * bandwidth.c). Writes P's lower Cholesky factor into L, q + mu into c;
 * *skip = 1 when the skewness term does not apply. Returns 0. */
static int llsfe_divergence(const sl_gauss_fit *fit, size_t d, const double *q, double h,
                            const double *g, const double *H, const double *mu, const double *Sig,
                            const llsfe_deriv *dv, double *L, double *c, double *a1,
                            unsigned char *skip, double *div, double *tmp) {
    const double ih2 = 1.0 / (h * h);
    *skip = 1;
    *a1 = 0.0;
    if (dv->global) {
        *div = 0.0;
        for (size_t a = 0; a < d; ++a) *div -= fit->P[a * d + a];
        return 0;
    }
    for (size_t k = 0; k < d * d; ++k) L[k] = -H[k];
    for (size_t a = 0; a < d; ++a) L[a * d + a] += ih2;
    double trPS = 0.0, trP = 0.0;
    for (size_t k = 0; k < d * d; ++k) trPS += L[k] * Sig[k];
    for (size_t a = 0; a < d; ++a) trP += L[a * d + a];
    *div = trPS * ih2 - trP;
    const double a2 = 1.0 - dv->a1;
    if (a2 > 0) {
        double *u = tmp, *Pu = tmp + d;
        for (size_t a = 0; a < d; ++a) {
            u[a] = 0.0;
            for (size_t b = 0; b < d; ++b) u[a] += (Sig[a * d + b] - dv->T[a * d + b]) * g[b];
        }
        cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, L, (int)d, u, 1, 0.0, Pu, 1);
        double t = 0.0;
        for (size_t a = 0; a < d; ++a) t += mu[a] * Pu[a];
        *div -= dv->a1 * a2 * t * ih2;
    }
    for (size_t a = 0; a < d; ++a) c[a] = q[a] + mu[a];
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', (lapack_int)d, L, (lapack_int)d) != 0) return 0;
    for (size_t a = 0; a < d; ++a)
        for (size_t e = a + 1; e < d; ++e) L[a * d + e] = 0.0;
    *a1 = dv->a1;
    *skip = 0;
    return 0;
}

static sl_status kernel_scores(sl_kernel_map map, const sl_score_options *opt,
                               const sl_gauss_fit *fit, size_t n, size_t d, const double *X,
                               size_t nq, const double *Q, double h, size_t K, sl_scores *out,
                               double *div) {
    const int loo = Q == NULL;
    const double *Qp = Q ? Q : X;
    if (K > 0 && K + (size_t)loo > n)
        return sl_error(SL_EINVAL, "knn:%zu needs more than %zu samples", K, n);
    double *K0 = malloc(nq * sizeof *K0);
    if (!K0) return sl_error(SL_ENOMEM, "out of memory");
    if (K > 0 && !out->h && !(out->h = malloc(nq * sizeof *out->h))) {
        free(K0);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    sl_strategy strategy = opt->strategy;
    if (strategy == SL_STRATEGY_AUTO)
        strategy =
            (K == 0 && ((double)n * (double)nq <= SL_ALLPAIRS_MAX_PAIRS ||
                        reach_share(n, d, X, nq, Qp, opt->cutoff * h) >= SL_ALLPAIRS_MIN_SHARE))
                ? SL_STRATEGY_ALLPAIRS
                : SL_STRATEGY_NEIGHBOURS;
    if (strategy == SL_STRATEGY_ALLPAIRS && K > 0) {
        free(K0);
        return sl_error(SL_EINVAL, "the all-pairs strategy needs a fixed bandwidth, not knn:%zu",
                        K);
    }
    out->strategy = strategy;
    sl_kdtree *tree = NULL;
    sl_status st = moments(strategy, opt, &tree, n, d, X, nq, Q, h, K, K > 0 ? out->h : NULL, K0,
                           out->G, out->H, 1);
    /* knn: the kernel is truncated at the K-th neighbour (score_internal.h),
     * so the local fit sees a flat density with per-coordinate variance
     * kappa h^2, kappa = P(d/2 + 1, 1/2) / P(d/2, 1/2) (regularised
     * incomplete gamma), not h^2: the map takes the Gaussian kernel of that
     * variance (0.085 h^2 at d = 10). */
    const double knn_scale = sqrt(gsl_sf_gamma_inc_P(0.5 * (double)d + 1.0, 0.5) /
                                  gsl_sf_gamma_inc_P(0.5 * (double)d, 0.5));
    llsfe_prior prior = {0};
    prior.kappa = knn_scale * knn_scale;
    double *Tn = NULL;
    if (map == SL_KERNEL_LLSFE) {
        prior.nu0 = opt->shrink >= 0 ? opt->shrink : SL_LLSFE_DEFAULT_SHRINK;
        prior.knn = K > 0;
        if (st == SL_OK && prior.nu0 > 0) {
            int have = 0;
            if (!(Tn = malloc(d * d * sizeof *Tn))) st = sl_error(SL_ENOMEM, "out of memory");
            if (st == SL_OK)
                st = pooled_covariance(strategy, opt, &tree, n, d, X, nq, Q, h, K, out->h, K0,
                                       out->H, Tn, &have, &prior.W);
            if (have) prior.Tn = Tn;
        }
    }
    sl_kdtree_free(tree);
    if (st) {
        free(Tn);
        free(K0);
        return st;
    }
    /* Eigen-decomposition of the global precision, for the tilted Gaussian. */
    double *Pevec = malloc(d * d * sizeof *Pevec), *Peval = malloc(d * sizeof *Peval);
    if (!Pevec || !Peval || (st = sl_sym_eigen(d, fit->P, Peval, Pevec)) != SL_OK) {
        free(Pevec);
        free(Peval);
        free(Tn);
        free(K0);
        return st ? st : sl_error(SL_ENOMEM, "out of memory");
    }
    size_t regularised = 0;
    int failed = 0;
    /* The divergence of llsfe's g (sl_kernel_scores_div): per query the
     * Cholesky factor of P = Sig_s^{-1}, the centre q + mu, the weight a1
     * and whether the skewness term applies. */
    const int want_skew = div && map == SL_KERNEL_LLSFE;
    double *Lf = NULL, *Cq = NULL, *A1 = NULL;
    unsigned char *skip = NULL;
    if (want_skew) {
        /* Zeroed: llsfe_divergence leaves L and c unwritten where the term
         * does not apply, and skew_term centres each block of queries at the
         * mean of its c (skipped ones included) and reads its L. Unwritten,
         * that centre was whatever the heap held: measured, `scoreloss score
         * --method llsfe` on student, d = 2, n = 1000 (sample seed 31) chose
         * bandwidth 1.66 with MALLOC_PERTURB_=0 and 0.131 (g error 550 times
         * larger) with 145 or 7 (valgrind: uninitialised values in
         * skew_term). */
        Lf = calloc(nq * d * d, sizeof *Lf);
        Cq = calloc(nq * d, sizeof *Cq);
        A1 = malloc(nq * sizeof *A1);
        skip = malloc(nq);
        if (!Lf || !Cq || !A1 || !skip) failed = 1;
    }
    /* The map's small BLAS and LAPACK calls run inside the OpenMP loop:
     * OpenBLAS threads there oversubscribe the cores (measured: n = 1000,
     * d = 10, automatic bandwidth, 2 threads: 16.5 s against 1.5 s). */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#ifdef _OPENMP
#pragma omp parallel reduction(+ : regularised, failed)
#endif
    {
        map_work w = {0};
        double *Sig0 = want_skew ? malloc((2 * d * d + d) * sizeof *Sig0) : NULL;
        double *T0 = Sig0 ? Sig0 + d * d : NULL, *mu0 = T0 ? T0 + d * d : NULL;
        if (failed || map_work_alloc(d, &w) != SL_OK || (want_skew && !Sig0)) {
            failed = 1;
        } else {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t i = 0; i < nq; ++i) {
                double hi = K > 0 ? out->h[i] : h;
                double *g = out->G + i * d, *H = out->H + i * d * d;
                if (map == SL_KERNEL_LLSFE && K > 0) hi *= knn_scale;
                if (!(hi > 0)) {
                    /* The K nearest all sit on the query: no spread to fit. */
                    for (size_t a = 0; a < d; ++a) w.tmp[a] = Qp[i * d + a] - fit->m[a];
                    cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, -1.0, fit->P, (int)d, w.tmp, 1,
                                0.0, g, 1);
                    for (size_t k = 0; k < d * d; ++k) H[k] = -fit->P[k];
                    regularised += 1;
                    continue;
                }
                llsfe_deriv dv = {1.0, T0, 0};
                if (want_skew) {
                    memcpy(mu0, g, d * sizeof *mu0);
                    memcpy(Sig0, H, d * d * sizeof *Sig0);
                }
                regularised += (size_t)(map == SL_KERNEL_KDE
                                            ? map_kde(fit, d, Qp + i * d, hi, K0[i], g, H, w.tmp)
                                            : map_llsfe(fit, Pevec, Peval, d, Qp + i * d, hi, K0[i],
                                                        &prior, g, H, &w, want_skew ? &dv : NULL));
                if (div && !want_skew) {
                    /* kde's g is the gradient of log p_h, H its Hessian. */
                    div[i] = 0.0;
                    for (size_t a = 0; a < d; ++a) div[i] += H[a * d + a];
                } else if (want_skew) {
                    failed |= llsfe_divergence(fit, d, Qp + i * d, hi, g, H, mu0, Sig0, &dv,
                                               Lf + i * d * d, Cq + i * d, &A1[i], &skip[i],
                                               &div[i], w.tmp);
                }
            }
            free(w.Sg);
        }
        free(Sig0);
    }
    if (want_skew && !failed) {
        double *T3 = malloc(nq * sizeof *T3);
        if (!T3 || skew_term(n, d, X, nq, Qp, h, Lf, Cq, out->G, skip, T3)) {
            failed = 1;
        } else {
            for (size_t i = 0; i < nq; ++i) div[i] -= A1[i] * T3[i] / (h * h);
        }
        free(T3);
    }
    free(Lf);
    free(Cq);
    free(A1);
    free(skip);
    openblas_set_num_threads(blas_threads);
    free(Pevec);
    free(Peval);
    free(Tn);
    free(K0);
    if (failed) return sl_error(SL_ENOMEM, "out of memory");
    out->regularised = regularised;
    if (K > 0) {
        /* The median adaptive bandwidth, for reports. */
        double *tmp = malloc(nq * sizeof *tmp);
        if (tmp) {
            memcpy(tmp, out->h, nq * sizeof *tmp);
            size_t mid = nq / 2;
            qsort(tmp, nq, sizeof *tmp, compare_double);
            out->bandwidth = tmp[mid];
            free(tmp);
        }
    } else {
        out->bandwidth = h;
    }
    return SL_OK;
}

sl_status sl_kernel_scores(sl_kernel_map map, const sl_score_options *opt, const sl_gauss_fit *fit,
                           size_t n, size_t d, const double *X, size_t nq, const double *Q,
                           double h, size_t K, sl_scores *out) {
    return kernel_scores(map, opt, fit, n, d, X, nq, Q, h, K, out, NULL);
}

sl_status sl_kernel_scores_div(sl_kernel_map map, const sl_score_options *opt,
                               const sl_gauss_fit *fit, size_t n, size_t d, const double *X,
                               size_t nq, const double *Q, double h, sl_scores *out, double *div) {
    if (!Q) return sl_error(SL_EINVAL, "the divergence of g needs explicit query points");
    return kernel_scores(map, opt, fit, n, d, X, nq, Q, h, 0, out, div);
}

/* The held-out objective of one bandwidth and prior weight (bandwidth.c). */
static sl_status heldout_objective(const sl_score_options *opt, const sl_gauss_fit *fit, size_t n,
                                   size_t d, const double *X, double h, double nu0,
                                   sl_scores *probe, double *J) {
    sl_score_options o = *opt;
    o.progress = NULL;
    o.bandwidth.kind = SL_BW_FIXED;
    o.bandwidth.value = h;
    o.shrink = nu0;
    double unused;
    sl_status st = sl_bandwidth_auto(SL_KERNEL_LLSFE, &o, fit, n, d, X, &unused, probe);
    if (st == SL_OK) *J = probe->bw_objective[0];
    return st;
}

/* Differences of the held-out objective below this fraction of |J| are
 * taken as ties: about one standard error of the difference between
 * neighbouring grid bandwidths (measured 0.14% to 0.23% of |J| at
 * n = 10^4 to 1.6 10^4, d = 2; bandwidth.c applies the same rule with the
 * error itself on its grid). The error itself here too, from the paired
 * terms of the two points compared, measured worse: it let the second
 * line search widen h (gmm2, d = 2, n = 10^4: 0.56 to 0.70, g error
 * within r <= 2 0.044 to 0.070; student, d = 2, n = 1000: 1.66 to 2.10,
 * 0.043 to 0.055); of the other 13 inputs tried (gauss, gmm2, agmm,
 * student at d = 2, 5 and n = 10^3, 10^4, but student, d = 5, n = 10^4)
 * only student, d = 2, n = 10^4 moved, over all samples 0.040 to 0.039. */
#define SL_LLSFE_TIE 0.002

/* A line search on the held-out objective over the bandwidth grid (along_h)
 * or the weight ladder, from the current point: up while the objective stays
 * within the tie of the lowest seen, down while it improves; the result is
 * the largest value within the tie of the lowest (the wider bandwidth, the
 * stronger prior: the smoother estimate among equals). */
typedef struct {
    const sl_score_options *opt;
    const sl_gauss_fit *fit;
    size_t n, d;
    const double *X;
    sl_scores *probe;
    const double *hs, *nus; /* the bandwidth grid and the weight ladder */
    size_t ih, inu;         /* the current point */
    size_t nu_lo;           /* the lowest weight allowed (options.shrink_min) */
} climb_ctx;

static sl_status climb(climb_ctx *c, int along_h, size_t count, double *Jcur) {
    size_t *k = along_h ? &c->ih : &c->inu;
    double Js[32];
    size_t lo = *k, hi = *k;
    double Jmin = *Jcur;
    Js[*k] = *Jcur;
    sl_status st = SL_OK;
    for (int dir = 1; dir >= -1; dir -= 2) {
        size_t j = *k;
        const size_t floor = along_h ? 0 : c->nu_lo;
        while (dir > 0 ? j + 1 < count : j > floor) {
            j = dir > 0 ? j + 1 : j - 1;
            st = heldout_objective(c->opt, c->fit, c->n, c->d, c->X, c->hs[along_h ? j : c->ih],
                                   c->nus[along_h ? c->inu : j], c->probe, &Js[j]);
            if (st) return st;
            if (dir > 0)
                hi = j;
            else
                lo = j;
            const int keep_going =
                dir > 0 ? Js[j] <= Jmin + SL_LLSFE_TIE * fabs(Jmin) : Js[j] < Jmin;
            Jmin = fmin(Jmin, Js[j]);
            if (!keep_going) break;
        }
    }
    for (size_t j = lo; j <= hi; ++j)
        if (Js[j] <= Jmin + SL_LLSFE_TIE * fabs(Jmin)) {
            *k = j;
            *Jcur = Js[j];
        }
    return st;
}

/* llsfe's automatic bandwidth with the default prior weight: the bandwidth
 * grid at the starting weight, then the weight ladder at that bandwidth,
 * then, if the weight moved, the bandwidth grid again from there, each a
 * line search on the held-out objective (assumed unimodal along each line).
 * out keeps the record of the first grid. */
static sl_status choose_bandwidth_and_shrink(const sl_score_options *opt, const sl_gauss_fit *fit,
                                             size_t n, size_t d, const double *X, double *h,
                                             double *nu0, sl_scores *out) {
    static const double ladder[] = SL_LLSFE_SHRINK_LADDER;
    const size_t nladder = sizeof ladder / sizeof ladder[0];
    /* The lowest weight allowed (options.shrink_min), and where to start. */
    size_t nu_lo = 0;
    while (nu_lo + 1 < nladder && ladder[nu_lo] < opt->shrink_min) ++nu_lo;
    const size_t start = nu_lo > SL_LLSFE_SHRINK_START ? nu_lo : SL_LLSFE_SHRINK_START;
    sl_score_options o = *opt;
    o.shrink = ladder[start];
    sl_status st = sl_bandwidth_auto(SL_KERNEL_LLSFE, &o, fit, n, d, X, h, out);
    if (st) return st;
    climb_ctx c = {opt, fit, n, d, X, NULL, out->bw_grid, ladder, 0, start, nu_lo};
    while (c.ih + 1 < out->bw_ngrid && out->bw_grid[c.ih] < *h) ++c.ih;
    double J = out->bw_objective[c.ih];
    if ((st = sl_scores_alloc(1, d, &c.probe))) return st;
    st = climb(&c, 0, nladder, &J);
    if (st == SL_OK && c.inu != start) st = climb(&c, 1, out->bw_ngrid, &J);
    sl_scores_free(c.probe);
    if (st) return st;
    *h = out->bw_grid[c.ih];
    *nu0 = ladder[c.inu];
    return SL_OK;
}

static sl_status kernel_estimate(sl_kernel_map map, const sl_score_options *opt, size_t n, size_t d,
                                 const double *X, size_t nq, const double *Q, sl_scores *out) {
    if (n < 2) return sl_error(SL_EINVAL, "kernel score estimation needs at least 2 samples");
    sl_gauss_fit fit;
    sl_status st = sl_gauss_fit_compute(n, d, X, &fit);
    if (st) return st;
    sl_score_options o = *opt;
    double h = 0.0;
    size_t K = 0;
    switch (opt->bandwidth.kind) {
    case SL_BW_FIXED:
        h = opt->bandwidth.value;
        break;
    case SL_BW_CONST:
        h = opt->bandwidth.value * pow((double)n, -1.0 / ((double)d + 6.0));
        break;
    case SL_BW_KNN:
        K = (size_t)opt->bandwidth.value;
        break;
    case SL_BW_AUTO:
        if (map == SL_KERNEL_LLSFE && opt->shrink < 0)
            st = choose_bandwidth_and_shrink(opt, &fit, n, d, X, &h, &o.shrink, out);
        else
            st = sl_bandwidth_auto(map, opt, &fit, n, d, X, &h, out);
        break;
    }
    if (st == SL_OK && K == 0 && !(h > 0 && isfinite(h)))
        st = sl_error(SL_EINVAL, "bandwidth must be positive, got %g", h);
    if (st == SL_OK) st = sl_kernel_scores(map, &o, &fit, n, d, X, nq, Q, h, K, out);
    if (st == SL_OK && map == SL_KERNEL_LLSFE)
        out->shrink = o.shrink >= 0 ? o.shrink : SL_LLSFE_DEFAULT_SHRINK;
    sl_gauss_fit_release(&fit);
    return st;
}

static sl_status llsfe_estimate(const sl_score_options *opt, size_t n, size_t d, const double *X,
                                size_t nq, const double *Q, sl_scores *out) {
    return kernel_estimate(SL_KERNEL_LLSFE, opt, n, d, X, nq, Q, out);
}

static sl_status kde_estimate(const sl_score_options *opt, size_t n, size_t d, const double *X,
                              size_t nq, const double *Q, sl_scores *out) {
    return kernel_estimate(SL_KERNEL_KDE, opt, n, d, X, nq, Q, out);
}

const sl_score_type sl_score_llsfe = {"llsfe", llsfe_estimate};
const sl_score_type sl_score_kde = {"kde", kde_estimate};
