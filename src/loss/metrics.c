/* Recovery errors (METHOD.md section 5) and the optimal assignment behind
 * the matched angle. */
#include "scoreloss/recover.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "core/linalg.h"

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* The Hungarian algorithm with row and column potentials (the shortest
 * augmenting path form): rows are added one at a time, each by a Dijkstra-like
 * search over the reduced costs a[i][j] - u[i] - v[j] >= 0, so the total
 * work is O(n^3). Arrays are 1-based with index 0 a virtual column. */
sl_status sl_assignment(size_t n, const double *cost, size_t *assign, double *total) {
    if (n == 0) {
        if (total) *total = 0.0;
        return SL_OK;
    }
    if (!cost || !assign) return sl_error(SL_EINVAL, "assignment: no cost matrix or output given");
    if (n > SIZE_MAX / sizeof(double) / n - 1)
        return sl_error(SL_EINVAL, "assignment: %zu x %zu costs are too many", n, n);
    if (!sl_all_finite(n * n, cost))
        return sl_error(SL_EINVAL, "assignment: the cost matrix has non-finite entries");
    double *u = calloc(n + 1, sizeof *u), *v = calloc(n + 1, sizeof *v);
    double *minv = malloc((n + 1) * sizeof *minv);
    size_t *p = calloc(n + 1, sizeof *p), *way = calloc(n + 1, sizeof *way);
    char *used = malloc(n + 1);
    if (!u || !v || !minv || !p || !way || !used) {
        free(u), free(v), free(minv), free(p), free(way), free(used);
        return sl_error(SL_ENOMEM, "assignment: out of memory for n = %zu", n);
    }
    for (size_t i = 1; i <= n; ++i) {
        p[0] = i;
        size_t j0 = 0;
        for (size_t j = 0; j <= n; ++j) {
            minv[j] = INFINITY;
            used[j] = 0;
        }
        do {
            used[j0] = 1;
            const size_t i0 = p[j0];
            double delta = INFINITY;
            size_t j1 = 0;
            for (size_t j = 1; j <= n; ++j) {
                if (used[j]) continue;
                const double cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (size_t j = 0; j <= n; ++j) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            const size_t j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0 != 0);
    }
    double sum = 0.0;
    for (size_t j = 1; j <= n; ++j) {
        assign[p[j] - 1] = j - 1;
        sum += cost[(p[j] - 1) * n + (j - 1)];
    }
    if (total) *total = sum;
    free(u), free(v), free(minv), free(p), free(way), free(used);
    return SL_OK;
}

/* Copies the r rows of A (r x d) into B scaled to unit norm. */
static sl_status unit_rows(size_t r, size_t d, const double *A, double *B, const char *what) {
    for (size_t i = 0; i < r; ++i) {
        const double nrm = cblas_dnrm2((int)d, A + i * d, 1);
        if (!(nrm > 0.0) || !isfinite(nrm))
            return sl_error(SL_EINVAL, "recovery error: row %zu of %s has norm %g", i + 1, what,
                            nrm);
        for (size_t j = 0; j < d; ++j) B[i * d + j] = A[i * d + j] / nrm;
    }
    return SL_OK;
}

sl_status sl_recovery_error_compute(size_t kh, size_t k, size_t d, const double *W_hat,
                                    const double *W, sl_recovery_error *out) {
    if (!out || !W_hat || !W) return sl_error(SL_EINVAL, "recovery error: missing argument");
    if (kh == 0 || k == 0 || d == 0)
        return sl_error(
            SL_EINVAL, "recovery error: empty matrices (%zu and %zu rows of length %zu)", kh, k, d);
    if (d > INT_MAX || kh > INT_MAX || k > INT_MAX)
        return sl_error(SL_EINVAL, "recovery error: dimensions too large");
    const size_t m = kh > k ? kh : k;
    double *A = malloc(kh * d * sizeof *A), *B = malloc(k * d * sizeof *B);
    double *Q = malloc(kh * k * sizeof *Q), *C = malloc(m * m * sizeof *C);
    size_t *assign = malloc(m * sizeof *assign);
    char *hit = calloc(k, 1);
    sl_status st = SL_OK;
    if (!A || !B || !Q || !C || !assign || !hit) {
        st = sl_error(SL_ENOMEM, "recovery error: out of memory");
        goto done;
    }
    if ((st = unit_rows(kh, d, W_hat, A, "the estimate")) ||
        (st = unit_rows(k, d, W, B, "the truth")))
        goto done;
    /* One BLAS thread: the cosines' bits must not depend on the thread count. */
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)kh, (int)k, (int)d, 1.0, A, (int)d, B,
                (int)d, 0.0, Q, (int)k);
    openblas_set_num_threads(blas_threads);
    /* |cosines|, clipped to 1 against rounding. */
    for (size_t i = 0; i < kh * k; ++i) Q[i] = fmin(fabs(Q[i]), 1.0);
    double min_row = INFINITY, min_col = INFINITY;
    for (size_t i = 0; i < kh; ++i) {
        size_t best = 0;
        for (size_t j = 1; j < k; ++j)
            if (Q[i * k + j] > Q[i * k + best]) best = j;
        hit[best] = 1;
        min_row = fmin(min_row, Q[i * k + best]);
    }
    for (size_t j = 0; j < k; ++j) {
        double best = 0.0;
        for (size_t i = 0; i < kh; ++i) best = fmax(best, Q[i * k + j]);
        min_col = fmin(min_col, best);
    }
    out->err_max = fmax(1.0 - min_row, 1.0 - min_col);
    out->err_min = fmin(1.0 - min_row, 1.0 - min_col);
    out->distinct = 0;
    for (size_t j = 0; j < k; ++j) out->distinct += hit[j] != 0;
    /* Square cost 1 - Q, padded with zeros for unmatched rows or columns:
     * the padding costs the same in every assignment, so the real pairs are
     * matched optimally. */
    for (size_t i = 0; i < m; ++i)
        for (size_t j = 0; j < m; ++j) C[i * m + j] = i < kh && j < k ? 1.0 - Q[i * k + j] : 0.0;
    if ((st = sl_assignment(m, C, assign, NULL))) goto done;
    double worst = 0.0;
    for (size_t i = 0; i < kh; ++i)
        if (assign[i] < k) worst = fmax(worst, acos(Q[i * k + assign[i]]) * 180.0 / M_PI);
    out->worst_angle = worst;
done:
    free(A);
    free(B);
    free(Q);
    free(C);
    free(assign);
    free(hit);
    return st;
}
