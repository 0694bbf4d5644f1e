/* Kernel moments of every query against every sample, as matrix products
 * (score_internal.h). For a block of queries and a tile of samples, both
 * centred at the block's centre c:
 *   E = Qc Xc' / h^2 - |xc|^2 / (2h^2) - |qc|^2 / (2h^2)   (one dgemm, K = d)
 *   W = exp(min(E, 0))                                      (vectorised exp)
 *   S += W F,  F = [1, xc, upper(xc xc')]                   (one dgemm, N = p)
 * and then mu = S1/S0 - qc, Sig = S2/S0 - (S1/S0)(S1/S0)'.
 *
 * Numerical safety. Raw moments about c lose digits to cancellation: with
 * m_i the local weighted mean, the entries of S2/S0 are of size
 * |Sig| + |m_i - c|^2, so Sig has an absolute error of a few
 * eps (|Sig| + |m_i - c|^2), a relative error of about
 *   eps (1 + |m_i - c|^2 / |Sig|) ~ eps (|q_i - c| + h)^2 / h^2
 * where samples populate the kernel (|Sig| ~ h^2; larger where one or two
 * samples dominate and |Sig| << h^2), and the exponent E, built from |xc|^2 and |qc|^2 rather than
 * |x - q|^2, has an absolute error of the same size, eps (|q_i - c| + 6h)^2 / h^2 for the samples
 * that carry weight (the rest contribute below exp(-18)). So c must sit near every query of its
 * block: queries are grouped into blocks by recursive bisection along their widest coordinate (a
 * balanced k-d partition), each block centred at its mean. The bound then involves the block
 * radius, not the position of the data: a shift of the whole data set costs nothing, and a block of
 * NB queries out of nq spread over a region of diameter L has radius about L (NB / nq)^{1/d}.
 *
 * The exponential is glibc's libmvec (_ZGVeN8v_exp with AVX-512,
 * _ZGVdN4v_exp with AVX2; measured at most 3.1 ulp from expl over
 * [-708, 0], i.e. relative error below 7e-16) called directly: gcc
 * vectorises exp() only under -fno-math-errno for the whole translation
 * unit, which neither a per-function optimize attribute nor a pragma gives.
 * Without AVX2 (or off x86-64 Linux) the scalar exp() is used.
 *
 * Threads: OpenMP over query blocks with OpenBLAS single-threaded inside.
 * Blocks and tiles are fixed by the sizes below, never by the thread count,
 * and each block's sums run in a fixed order, so the results are identical
 * for any number of threads. OpenBLAS's thread count is process-wide: it is
 * 1 for the duration of a call and restored afterwards, so concurrent calls
 * from several threads of the caller may restore it in the wrong order. */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* GSL's CBLAS header, not OpenBLAS's cblas.h (which clashes with the GSL
 * headers); the symbols are OpenBLAS's. */
#include <gsl/gsl_cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__)
#define SL_HAVE_LIBMVEC 1
#include <immintrin.h>
#endif

#include "score/score_internal.h"

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Queries per block and samples per tile: the NB x NS weight tile (1 MB)
 * stays in a core's L2 cache between the two products. */
#define NB 256
#define NS 512

/* ---- the weight kernel: W = exp(min(G - a_j - b, 0)) over one row ------- */

typedef void (*weights_fn)(size_t m, const double *a, double b, double *g);

static void weights_scalar(size_t m, const double *a, double b, double *g) {
    for (size_t j = 0; j < m; ++j) {
        double e = g[j] - a[j] - b;
        g[j] = exp(e < 0.0 ? e : 0.0);
    }
}

#ifdef SL_HAVE_LIBMVEC
/* The vector variants of exp in libmvec (x86_64 vector function ABI). */
__attribute__((target("avx512f"))) __m512d _ZGVeN8v_exp(__m512d x);
__attribute__((target("avx2"))) __m256d _ZGVdN4v_exp(__m256d x);

__attribute__((target("avx512f"))) static void weights_avx512(size_t m, const double *a, double b,
                                                              double *g) {
    const __m512d vb = _mm512_set1_pd(b), zero = _mm512_setzero_pd();
    size_t j = 0;
    for (; j + 8 <= m; j += 8) {
        __m512d e =
            _mm512_sub_pd(_mm512_sub_pd(_mm512_loadu_pd(g + j), _mm512_loadu_pd(a + j)), vb);
        _mm512_storeu_pd(g + j, _ZGVeN8v_exp(_mm512_min_pd(e, zero)));
    }
    if (j < m) {
        __mmask8 k = (__mmask8)((1u << (m - j)) - 1u);
        __m512d e = _mm512_sub_pd(
            _mm512_sub_pd(_mm512_maskz_loadu_pd(k, g + j), _mm512_maskz_loadu_pd(k, a + j)), vb);
        _mm512_mask_storeu_pd(g + j, k, _ZGVeN8v_exp(_mm512_min_pd(e, zero)));
    }
}

__attribute__((target("avx2"))) static void weights_avx2(size_t m, const double *a, double b,
                                                         double *g) {
    const __m256d vb = _mm256_set1_pd(b), zero = _mm256_setzero_pd();
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        __m256d e =
            _mm256_sub_pd(_mm256_sub_pd(_mm256_loadu_pd(g + j), _mm256_loadu_pd(a + j)), vb);
        _mm256_storeu_pd(g + j, _ZGVdN4v_exp(_mm256_min_pd(e, zero)));
    }
    if (j < m) {
        double gt[4] = {0}, at[4] = {0};
        memcpy(gt, g + j, (m - j) * sizeof *gt);
        memcpy(at, a + j, (m - j) * sizeof *at);
        weights_avx2(4, at, b, gt);
        memcpy(g + j, gt, (m - j) * sizeof *gt);
    }
}
#endif

static weights_fn pick_weights(void) {
#ifdef SL_HAVE_LIBMVEC
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return weights_avx512;
    if (__builtin_cpu_supports("avx2")) return weights_avx2;
#endif
    return weights_scalar;
}

/* ---- spatial grouping of the queries ------------------------------------ */

typedef struct keyed {
    double key;
    size_t idx;
} keyed;

static int keyed_cmp(const void *pa, const void *pb) {
    const keyed *a = pa, *b = pb;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Reorders idx[0..m) so that every run of NB consecutive entries (from the
 * start) is a compact cell: split at a multiple of NB near the median of the
 * widest coordinate, recursively. Ties broken by index: deterministic. */
static void bisect(size_t d, const double *Q, size_t *idx, size_t m, keyed *scratch) {
    while (m > NB) {
        size_t axis = 0;
        double widest = -1.0;
        for (size_t a = 0; a < d; ++a) {
            double lo = Q[idx[0] * d + a], hi = lo;
            for (size_t r = 1; r < m; ++r) {
                double v = Q[idx[r] * d + a];
                if (v < lo) lo = v;
                if (v > hi) hi = v;
            }
            if (hi - lo > widest) widest = hi - lo, axis = a;
        }
        for (size_t r = 0; r < m; ++r) scratch[r] = (keyed){Q[idx[r] * d + axis], idx[r]};
        qsort(scratch, m, sizeof *scratch, keyed_cmp);
        for (size_t r = 0; r < m; ++r) idx[r] = scratch[r].idx;
        size_t blocks = (m + NB - 1) / NB;
        size_t left = NB * ((blocks + 1) / 2);
        bisect(d, Q, idx, left, scratch);
        idx += left;
        m -= left;
    }
}

/* ---- one block of queries against all samples ---------------------------- */

typedef struct workspace {
    double *Qc; /* NB x d, queries minus the centre */
    double *b;  /* NB: |qc|^2 / (2h^2) */
    double *Xc; /* NS x d */
    double *a;  /* NS: |xc|^2 / (2h^2) */
    double *F;  /* NS x p */
    double *W;  /* NB x NS: exponents, then weights */
    double *S;  /* NB x p: raw moments */
    double *c;  /* d */
} workspace;

typedef struct job {
    size_t n, d, p;
    const double *X, *Q;
    const size_t *order; /* query rows by block */
    int leave_one_out;
    double inv_h2;
    weights_fn weights;
    double *K0, *mu, *Sig;
} job;

static void run_block(const job *jb, workspace *ws, size_t lo, size_t rows) {
    const size_t n = jb->n, d = jb->d, p = jb->p;
    const size_t *rowq = jb->order + lo;
    const double half = 0.5 * jb->inv_h2;

    for (size_t k = 0; k < d; ++k) ws->c[k] = 0.0;
    for (size_t r = 0; r < rows; ++r)
        for (size_t k = 0; k < d; ++k) ws->c[k] += jb->Q[rowq[r] * d + k];
    for (size_t k = 0; k < d; ++k) ws->c[k] /= (double)rows;
    for (size_t r = 0; r < rows; ++r) {
        double s = 0.0;
        for (size_t k = 0; k < d; ++k) {
            double v = jb->Q[rowq[r] * d + k] - ws->c[k];
            ws->Qc[r * d + k] = v;
            s += v * v;
        }
        ws->b[r] = s * half;
    }

    for (size_t t0 = 0; t0 < n; t0 += NS) {
        size_t cols = n - t0 < NS ? n - t0 : NS;
        for (size_t j = 0; j < cols; ++j) {
            const double *x = jb->X + (t0 + j) * d;
            double *xc = ws->Xc + j * d, *f = ws->F + j * p;
            double s = 0.0;
            f[0] = 1.0;
            for (size_t k = 0; k < d; ++k) {
                xc[k] = x[k] - ws->c[k];
                f[1 + k] = xc[k];
                s += xc[k] * xc[k];
            }
            ws->a[j] = s * half;
            double *quad = f + 1 + d;
            for (size_t k = 0; k < d; ++k)
                for (size_t l = k; l < d; ++l) *quad++ = xc[k] * xc[l];
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)d,
                    jb->inv_h2, ws->Qc, (int)d, ws->Xc, (int)d, 0.0, ws->W, NS);
        for (size_t r = 0; r < rows; ++r) jb->weights(cols, ws->a, ws->b[r], ws->W + r * NS);
        if (jb->leave_one_out)
            for (size_t r = 0; r < rows; ++r)
                if (rowq[r] >= t0 && rowq[r] < t0 + cols) ws->W[r * NS + (rowq[r] - t0)] = 0.0;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)p, (int)cols, 1.0,
                    ws->W, NS, ws->F, (int)p, t0 == 0 ? 0.0 : 1.0, ws->S, (int)p);
    }

    for (size_t r = 0; r < rows; ++r) {
        size_t i = rowq[r];
        const double *s = ws->S + r * p;
        double *mu = jb->mu + i * d, *Sig = jb->Sig + i * d * d;
        jb->K0[i] = s[0];
        if (!(s[0] > 0.0)) {
            jb->K0[i] = 0.0;
            memset(mu, 0, d * sizeof *mu);
            memset(Sig, 0, d * d * sizeof *Sig);
            continue;
        }
        /* mu holds the local mean minus c until the covariance is done. */
        for (size_t k = 0; k < d; ++k) mu[k] = s[1 + k] / s[0];
        const double *quad = s + 1 + d;
        for (size_t k = 0; k < d; ++k)
            for (size_t l = k; l < d; ++l) {
                double v = *quad++ / s[0] - mu[k] * mu[l];
                if (l == k && v < 0.0) v = 0.0; /* a variance; rounding only */
                Sig[k * d + l] = Sig[l * d + k] = v;
            }
        for (size_t k = 0; k < d; ++k) mu[k] -= ws->Qc[r * d + k];
    }
}

static void workspace_free(workspace *ws) {
    free(ws->Qc);
}

static sl_status workspace_alloc(size_t d, size_t p, workspace *ws) {
    size_t total = NB * d + NB + NS * d + NS + NS * p + (size_t)NB * NS + NB * p + d;
    double *mem = malloc(total * sizeof *mem);
    if (!mem) return sl_error(SL_ENOMEM, "out of memory for the all-pairs moment workspace");
    ws->Qc = mem;
    ws->b = ws->Qc + NB * d;
    ws->Xc = ws->b + NB;
    ws->a = ws->Xc + NS * d;
    ws->F = ws->a + NS;
    ws->W = ws->F + NS * p;
    ws->S = ws->W + (size_t)NB * NS;
    ws->c = ws->S + NB * p;
    return SL_OK;
}

/* Squared diagonal of the bounding box of samples and queries, for the
 * overflow check: every |x - c|^2 and |q - c|^2 is at most this. */
static double squared_diameter(size_t n, size_t d, const double *X, size_t nq, const double *Q) {
    double total = 0.0;
    for (size_t k = 0; k < d; ++k) {
        double lo = X[k], hi = X[k];
        for (size_t j = 0; j < n; ++j) {
            double v = X[j * d + k];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        for (size_t j = 0; j < nq; ++j) {
            double v = Q[j * d + k];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        total += (hi - lo) * (hi - lo);
    }
    return total;
}

sl_status sl_moments_allpairs(size_t n, size_t d, const double *X, size_t nq, const double *Q,
                              int leave_one_out, double h, double *K0, double *mu, double *Sig,
                              sl_progress_fn progress, void *progress_ctx) {
    if (!Q) {
        if (nq != n)
            return sl_error(SL_EINVAL, "queries at the %zu samples cannot number %zu", n, nq);
        Q = X;
    }
    if (d == 0) return sl_error(SL_EINVAL, "all-pairs moments need dimension d >= 1");
    if (!(h > 0.0) || !isfinite(h))
        return sl_error(SL_EINVAL, "all-pairs moments need a finite bandwidth h > 0, got %g", h);
    if (leave_one_out && nq != n)
        return sl_error(SL_EINVAL,
                        "leave-one-out moments need the queries to be the %zu samples, got %zu", n,
                        nq);
    if (nq == 0) return SL_OK;
    if (!K0 || !mu || !Sig || (n > 0 && !X))
        return sl_error(SL_EINVAL, "all-pairs moments: missing input or output array");
    size_t p = 1 + d + d * (d + 1) / 2;
    if (n > INT_MAX || d > 4096 || p > INT_MAX || nq > SIZE_MAX / (d * d * sizeof(double)))
        return sl_error(SL_EINVAL, "all-pairs moments: %zu samples or %zu dimensions too many", n,
                        d);
    if (n == 0) {
        memset(K0, 0, nq * sizeof *K0);
        memset(mu, 0, nq * d * sizeof *mu);
        memset(Sig, 0, nq * d * d * sizeof *Sig);
        return SL_OK;
    }
    for (size_t i = 0; i < n * d; ++i)
        if (!isfinite(X[i])) return sl_error(SL_EINVAL, "sample %zu is not finite", i / d + 1);
    for (size_t i = 0; i < nq * d; ++i)
        if (!isfinite(Q[i])) return sl_error(SL_EINVAL, "query %zu is not finite", i / d + 1);
    /* Every exponent is bounded by the squared diameter / h^2: keep it finite. */
    double inv_h2 = 1.0 / (h * h);
    if (!isfinite(inv_h2) || !(squared_diameter(n, d, X, nq, Q) * inv_h2 < 0.25 * DBL_MAX))
        return sl_error(SL_EINVAL, "bandwidth %g is too small for the range of the data", h);

    size_t nblocks = (nq + NB - 1) / NB;
    size_t nthreads = 1;
#ifdef _OPENMP
    nthreads = (size_t)omp_get_max_threads();
    if (nthreads > nblocks) nthreads = nblocks;
#endif

    sl_status st = SL_OK;
    size_t *order = malloc(nq * sizeof *order);
    keyed *scratch = malloc(nq * sizeof *scratch);
    workspace *ws = calloc(nthreads, sizeof *ws);
    if (!order || !scratch || !ws) {
        st = sl_error(SL_ENOMEM, "out of memory for %zu all-pairs queries", nq);
        goto done;
    }
    for (size_t t = 0; t < nthreads && !st; ++t) st = workspace_alloc(d, p, &ws[t]);
    if (st) goto done;
    for (size_t i = 0; i < nq; ++i) order[i] = i;
    bisect(d, Q, order, nq, scratch);

    job jb = {n, d, p, X, Q, order, leave_one_out, inv_h2, pick_weights(), K0, mu, Sig};
    /* OpenBLAS threads inside the OpenMP loop would oversubscribe the cores
     * (measured: 6x slower), and its threaded dgemm partitions the products
     * differently from the single-threaded one, so it runs single-threaded
     * whatever the OpenMP thread count. This is OpenBLAS's process-wide
     * setting, restored on return. */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    size_t done_blocks = 0;
    int reported = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads((int)nthreads) schedule(dynamic)
#endif
    for (size_t blk = 0; blk < nblocks; ++blk) {
        size_t tid = 0;
#ifdef _OPENMP
        tid = (size_t)omp_get_thread_num();
#endif
        size_t lo = blk * NB;
        run_block(&jb, &ws[tid], lo, nq - lo < NB ? nq - lo : NB);
        size_t now;
#ifdef _OPENMP
#pragma omp atomic capture
#endif
        now = ++done_blocks;
        /* Thread 0 is the calling thread; at most one call per percent. */
        if (progress && tid == 0) {
            int percent = (int)(100.0 * (double)now / (double)nblocks);
            if (percent > reported) {
                reported = percent;
                progress((double)now / (double)nblocks, progress_ctx);
            }
        }
    }
    openblas_set_num_threads(blas_threads);
    if (progress && reported < 100) progress(1.0, progress_ctx);

done:
    if (ws)
        for (size_t t = 0; t < nthreads; ++t) workspace_free(&ws[t]);
    free(ws);
    free(scratch);
    free(order);
    return st;
}
