/* The plain squared loss on a student network (METHOD.md section 4, the
 * baseline everyone uses):
 *
 *   L(W, a) = (1/2 |batch|) sum_j (y_j - sum_i a_i sigma(w_i . x_j))^2,
 *
 * with the analytic gradient
 *
 *   dL/da_i = (1/|batch|) sum_j r_j sigma(z_ji),
 *   dL/dw_i = (1/|batch|) sum_j r_j a_i sigma'(z_ji) x_j,     r_j = yhat_j - y_j.
 *
 * The batch is cut into sub-chunks of SUB rows, gathered into contiguous
 * blocks so that Z = X_b W' and the gradient E' X_b are single dgemms. Each
 * sub-chunk's sums go to a slot of their own and the slots are added in
 * order, with single-threaded BLAS: the result depends on the batch only,
 * never on the number of threads (OpenMP runs the sub-chunks in parallel
 * when the batch is large, e.g. the optimiser's full-batch evaluations). */
#include "scoreloss/loss.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Rows per sub-chunk: the unit of work and of the reduction (fixed, so the
 * sums do not depend on max_batch or the thread count). */
#define SUB 256

/* Below this many multiply-adds (nbatch k d) a call runs on one thread. */
#define PAR_WORK (1u << 18)

typedef struct l2_ws {
    double *Xb; /* SUB x d, the gathered rows */
    double *Z;  /* SUB x k, X_b W', then sigma(Z) */
    double *E;  /* SUB x k, r_j a_i sigma'(z_ji) */
    double *r;  /* SUB residuals */
} l2_ws;

struct sl_l2 {
    size_t n, d, k;
    const double *X, *y;
    sl_act act;
    size_t nthreads;
    l2_ws *ws;        /* nthreads workspaces */
    double *parts;    /* parts_cap slots of 1 + k d + k: a sub-chunk's loss and gradient sums */
    size_t parts_cap; /* grown once for batches beyond max_batch */
};

static void ws_free(l2_ws *w) {
    free(w->Xb);
    free(w->Z);
    free(w->E);
    free(w->r);
}

void sl_l2_free(sl_l2 *L) {
    if (!L) return;
    if (L->ws)
        for (size_t t = 0; t < L->nthreads; ++t) ws_free(&L->ws[t]);
    free(L->ws);
    free(L->parts);
    free(L);
}

sl_status sl_l2_alloc(size_t n, size_t d, const double *X, const double *y, size_t k, sl_act act,
                      size_t max_batch, sl_l2 **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = NULL;
    if (!X || !y) return sl_error(SL_EINVAL, "squared loss: no data given");
    if (n == 0 || d == 0)
        return sl_error(SL_EINVAL, "squared loss: no data (n = %zu, d = %zu)", n, d);
    if (k == 0) return sl_error(SL_EINVAL, "squared loss: k must be at least 1");
    if ((int)act < 0 || (int)act >= SL_ACT_COUNT)
        return sl_error(SL_EINVAL, "squared loss: unknown activation %d", (int)act);
    if (max_batch == 0) return sl_error(SL_EINVAL, "squared loss: max_batch must be at least 1");
    /* BLAS takes int dimensions; a slot holds 1 + k d + k numbers. */
    if (d > INT_MAX / SUB || k > INT_MAX / SUB || k > (SIZE_MAX / sizeof(double) - 2) / (d + 1))
        return sl_error(SL_EINVAL, "squared loss: %zu x %zu weights are too many", k, d);
    const size_t stride = 1 + k * d + k;
    const size_t batch = max_batch < n ? max_batch : n;
    const size_t nsub = (batch + SUB - 1) / SUB;
    if (nsub > SIZE_MAX / sizeof(double) / stride)
        return sl_error(SL_ENOMEM, "squared loss: a batch of %zu rows does not fit", batch);
    size_t nthreads = 1;
#ifdef _OPENMP
    nthreads = (size_t)omp_get_max_threads();
    if (nthreads < 1) nthreads = 1;
#endif
    sl_l2 *L = calloc(1, sizeof *L);
    int ok = L != NULL;
    if (ok) {
        L->nthreads = nthreads;
        L->ws = calloc(nthreads, sizeof *L->ws);
        L->parts = malloc(nsub * stride * sizeof *L->parts);
        L->parts_cap = nsub;
        ok = L->ws && L->parts;
    }
    for (size_t t = 0; ok && t < nthreads; ++t) {
        l2_ws *w = &L->ws[t];
        w->Xb = malloc(SUB * d * sizeof *w->Xb);
        w->Z = malloc(SUB * k * sizeof *w->Z);
        w->E = malloc(SUB * k * sizeof *w->E);
        w->r = malloc(SUB * sizeof *w->r);
        ok = w->Xb && w->Z && w->E && w->r;
    }
    if (!ok) {
        sl_l2_free(L);
        return sl_error(SL_ENOMEM, "squared loss: out of memory for a batch of %zu rows", batch);
    }
    L->n = n;
    L->d = d;
    L->k = k;
    L->X = X;
    L->y = y;
    L->act = act;
    *out = L;
    return SL_OK;
}

/* One sub-chunk of m rows (indices idx): the sum of squared residuals in
 * part[0] and, when grad, the unscaled gradient sums in part[1..]. */
static void sub_chunk(const sl_l2 *L, l2_ws *w, const double *W, const double *a, const size_t *idx,
                      size_t m, int grad, double *part) {
    const size_t d = L->d, k = L->k;
    for (size_t j = 0; j < m; ++j) memcpy(w->Xb + j * d, L->X + idx[j] * d, d * sizeof *w->Xb);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)d, 1.0, w->Xb, (int)d,
                W, (int)d, 0.0, w->Z, (int)k);
    double sum = 0.0;
    for (size_t j = 0; j < m; ++j) {
        double *z = w->Z + j * k, *e = w->E + j * k;
        double yhat = 0.0;
        for (size_t i = 0; i < k; ++i) {
            if (grad) e[i] = a[i] * sl_act_eval(L->act, 1, z[i]);
            z[i] = sl_act_eval(L->act, 0, z[i]);
            yhat += a[i] * z[i];
        }
        const double r = yhat - L->y[idx[j]];
        w->r[j] = r;
        sum += r * r;
        if (grad)
            for (size_t i = 0; i < k; ++i) e[i] *= r;
    }
    part[0] = sum;
    if (grad) {
        /* dW = E' X_b, da = sigma(Z)' r */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)d, (int)m, 1.0, w->E,
                    (int)k, w->Xb, (int)d, 0.0, part + 1, (int)d);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)k, 1.0, w->Z, (int)k, w->r, 1, 0.0,
                    part + 1 + k * d, 1);
    }
}

double sl_l2_objective(size_t nparam, const double *x, double *grad, const size_t *batch,
                       size_t nbatch, void *data) {
    sl_l2 *L = data;
    if (!L || !x) {
        sl_error(SL_EINVAL, "squared loss: no loss or no parameters");
        return NAN;
    }
    const size_t k = L->k, d = L->d, stride = 1 + k * d + k;
    /* A caller's bug: NaN makes the optimiser stop with a message instead of
     * reading out of bounds. */
    if (nparam != k * d + k) {
        sl_error(SL_EINVAL, "squared loss: expected %zu parameters (k d + k), got %zu", k * d + k,
                 nparam);
        return NAN;
    }
    if (!batch || nbatch == 0) {
        sl_error(SL_EINVAL, "squared loss: empty minibatch");
        return NAN;
    }
    for (size_t j = 0; j < nbatch; ++j)
        if (batch[j] >= L->n) {
            sl_error(SL_EINVAL, "squared loss: sample index %zu out of range (n = %zu)", batch[j],
                     L->n);
            return NAN;
        }
    const size_t nsub = (nbatch + SUB - 1) / SUB;
    if (nsub > L->parts_cap) {
        if (nsub > SIZE_MAX / sizeof(double) / stride) {
            sl_error(SL_ENOMEM, "squared loss: a batch of %zu rows does not fit", nbatch);
            return NAN;
        }
        double *p = realloc(L->parts, nsub * stride * sizeof *p);
        if (!p) {
            sl_error(SL_ENOMEM, "squared loss: out of memory for a batch of %zu rows", nbatch);
            return NAN;
        }
        L->parts = p;
        L->parts_cap = nsub;
    }
    const double *W = x, *a = x + k * d;
    const int parallel = nsub > 1 && (double)nbatch * (double)k * (double)d >= (double)PAR_WORK;
    (void)parallel; /* used by the OpenMP pragma only */
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#ifdef _OPENMP
#pragma omp parallel for num_threads((int)L->nthreads) schedule(static) if (parallel)
#endif
    for (size_t i = 0; i < nsub; ++i) {
        size_t tid = 0;
#ifdef _OPENMP
        tid = (size_t)omp_get_thread_num();
#endif
        const size_t lo = i * SUB, m = nbatch - lo < SUB ? nbatch - lo : SUB;
        sub_chunk(L, &L->ws[tid], W, a, batch + lo, m, grad != NULL, L->parts + i * stride);
    }
    openblas_set_num_threads(blas_threads);
    double sum = 0.0;
    if (grad) memset(grad, 0, nparam * sizeof *grad);
    for (size_t i = 0; i < nsub; ++i) {
        const double *part = L->parts + i * stride;
        sum += part[0];
        if (grad)
            for (size_t p = 0; p < nparam; ++p) grad[p] += part[1 + p];
    }
    if (grad)
        for (size_t p = 0; p < nparam; ++p) grad[p] /= (double)nbatch;
    return 0.5 * sum / (double)nbatch;
}
