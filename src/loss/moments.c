/* Moments, whitening and the whitened fourth moment (METHOD.md section 4).
 *
 * Everything that touches all n samples is a matrix product over blocks of
 * samples, so memory beyond the inputs and outputs stays O(block d k) and
 * the flops run at dgemm speed:
 * - M2 = G' diag(y) G + sum_j y_j H_j (one dgemm and one dgemv per block);
 * - Hw_j = P' H_j P for a block at once: the stacked symmetric H_j
 *   (nb d x d, row-major) read transposed is the horizontal concatenation
 *   [H_1 ... H_nb] (d x nb d), so P' [H_1 ... H_nb] is one dgemm, and its
 *   result read as (k nb) x d rows times P is a second;
 * - the locally quadratic T from three (k^2 x nb)(nb x k^2) products.
 * Blocks have a fixed size and their partial sums are added in block order
 * (reduce_blocks), so the results depend on the data only, never on the
 * number of threads. */
#include "scoreloss/loss.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "core/linalg.h"
#include "scoreloss/memlimit.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Samples per block in the whitening and the tensor products: large enough
 * for dgemm to run at full speed, small enough for the block's scratch to
 * stay in cache (k^2 x block doubles). */
#define BLOCK 512

/* Samples per independently summed block of the exact-score tensor. */
#define DIST_BLOCK 64

/* Budget (doubles) for the partial sums of one round of blocks. */
#define SCRATCH (1u << 22)

/* Relative size below which the k-th |eigenvalue| of M2 counts as zero: the
 * whitening would amplify rounding by more than 1e6. */
#define EIG_RTOL 1e-12

/* One block of samples [lo, lo + nb): writes its partial sum (len doubles)
 * into part, using scratch (this thread's) freely. */
typedef sl_status (*block_fn)(const void *ctx, size_t lo, size_t nb, double *part, double *scratch);

/* sum (len doubles; NULL when len = 0) = the sum over blocks of `block`
 * samples of fn's partials, added in block order.
 * - OpenBLAS's threaded kernels change the last bits with the thread count
 *   (measured: dgemv over samples, and dgemm of 10^5 x 10 by 10 x 5), so
 *   BLAS runs single-threaded here and the parallelism is over blocks of a
 *   fixed size, reduced in a fixed order: the result depends on the data
 *   only, never on the number of threads.
 * - Rounds are as large as the scratch budget allows: every round ends in
 *   a barrier, and barriers are expensive on shared, oversubscribed cores
 *   (measured: 400 rounds of 4 small blocks took 2 s instead of 0.03 s). */
static sl_status reduce_blocks(size_t n, size_t block, size_t len, size_t scratch_len, block_fn fn,
                               const void *ctx, double *sum) {
    const size_t nblocks = (n + block - 1) / block;
    size_t nthreads = 1;
#ifdef _OPENMP
    nthreads = (size_t)omp_get_max_threads();
    if (nthreads > nblocks) nthreads = nblocks;
#endif
    size_t slots = len ? SCRATCH / len : nblocks;
    if (slots < 1) slots = 1;
    if (slots > nblocks) slots = nblocks;
    double *parts = malloc((slots * len + nthreads * scratch_len) * sizeof *parts);
    if (!parts) return sl_error(SL_ENOMEM, "out of memory for %zu scratch blocks", slots);
    double *scratch = parts + slots * len;
    if (sum) memset(sum, 0, len * sizeof *sum);
    sl_status status = SL_OK;
    char message[1024] = "";
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (size_t first = 0; status == SL_OK && first < nblocks; first += slots) {
        const size_t count = nblocks - first < slots ? nblocks - first : slots;
#ifdef _OPENMP
#pragma omp parallel for num_threads((int)nthreads) schedule(dynamic, 1) if (count > 1)
#endif
        for (size_t i = 0; i < count; ++i) {
            if (status != SL_OK) continue;
            size_t tid = 0;
#ifdef _OPENMP
            tid = (size_t)omp_get_thread_num();
#endif
            const size_t lo = (first + i) * block, nb = n - lo < block ? n - lo : block;
            sl_status st = fn(ctx, lo, nb, parts + i * len, scratch + tid * scratch_len);
            if (st != SL_OK) {
#ifdef _OPENMP
#pragma omp critical(sl_moments_block_error)
#endif
                if (status == SL_OK) {
                    status = st;
                    snprintf(message, sizeof message, "%s", sl_last_error());
                }
            }
        }
        if (status == SL_OK && len > 0)
            for (size_t i = 0; i < count; ++i)
                cblas_daxpy((int)len, 1.0, parts + i * len, 1, sum, 1);
    }
    openblas_set_num_threads(blas_threads);
    free(parts);
    /* A message set on a worker thread: copy it to the caller's. */
    if (status != SL_OK) return sl_error(status, "%s", message);
    return SL_OK;
}

void sl_moments_free(sl_moments *m) {
    if (!m) return;
    free(m->y);
    free(m->M2);
    free(m->evals);
    free(m->U);
    free(m->P);
    free(m->Gw);
    free(m->Hw);
    free(m->T);
    free(m->signal);
    free(m);
}

typedef struct {
    const sl_scores *s;
    const double *y;
} s2_ctx;

/* A block's sum_j y_j (g_j g_j' + H_j): G' diag(y) G by one dgemm and the
 * H_j as an nb x d^2 matrix times y. Scratch: d^2 + BLOCK d. */
static sl_status s2_block(const void *vctx, size_t lo, size_t nb, double *part, double *scratch) {
    const s2_ctx *c = vctx;
    const size_t d = c->s->d, dd = d * d;
    const double *G = c->s->G + lo * d, *y = c->y + lo;
    double *Hs = scratch, *Gy = scratch + dd;
    for (size_t j = 0; j < nb; ++j)
        for (size_t a = 0; a < d; ++a) Gy[j * d + a] = y[j] * G[j * d + a];
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)nb, 1.0, G, (int)d,
                Gy, (int)d, 0.0, part, (int)d);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)nb, (int)dd, 1.0, c->s->H + lo * dd, (int)dd, y, 1,
                0.0, Hs, 1);
    for (size_t i = 0; i < dd; ++i) part[i] += Hs[i];
    return SL_OK;
}

/* M2 = (1/n) sum_j y_j (g_j g_j' + H_j), exactly symmetric. */
static sl_status second_moment(const sl_scores *s, const double *y, double *M2) {
    const size_t n = s->n, d = s->d;
    s2_ctx ctx = {s, y};
    sl_status st = reduce_blocks(n, BLOCK, d * d, d * d + BLOCK * d, s2_block, &ctx, M2);
    if (st) return st;
    const double inv = 1.0 / (double)n;
    for (size_t a = 0; a < d; ++a)
        for (size_t b = a; b < d; ++b)
            M2[a * d + b] = M2[b * d + a] = 0.5 * inv * (M2[a * d + b] + M2[b * d + a]);
    return SL_OK;
}

/* Eigenpairs of M2 by decreasing |value| into m->evals, the top-k unit
 * eigenvectors into m->U (sign fixed: largest entry positive, so the
 * whitened coordinates do not flip between platforms), and P. */
static sl_status whitening(sl_moments *m) {
    const size_t d = m->d, k = m->k;
    double *w = malloc(d * sizeof *w), *V = malloc(d * d * sizeof *V);
    size_t *order = malloc(d * sizeof *order);
    sl_status st = SL_OK;
    if (!w || !V || !order) st = sl_error(SL_ENOMEM, "out of memory for the eigenvectors of M2");
    if (!st) st = sl_sym_eigen(d, m->M2, w, V);
    if (!st) {
        /* Insertion sort by |value| (stable: ties keep the descending order). */
        for (size_t i = 0; i < d; ++i) {
            size_t j = i;
            while (j > 0 && fabs(w[order[j - 1]]) < fabs(w[i])) {
                order[j] = order[j - 1];
                --j;
            }
            order[j] = i;
        }
        for (size_t i = 0; i < d; ++i) m->evals[i] = w[order[i]];
        const double first = fabs(m->evals[0]), kth = fabs(m->evals[k - 1]);
        if (!isfinite(first) || !isfinite(kth) || kth == 0.0 || kth < EIG_RTOL * first)
            st = sl_error(SL_ENUMERIC,
                          "M2 has no %zu-dimensional signal: its %zu-th eigenvalue by absolute "
                          "value is %g against %g for the first (below %g of it); use fewer "
                          "directions or check the labels",
                          k, k, m->evals[k - 1], m->evals[0], EIG_RTOL);
    }
    if (!st) {
        for (size_t c = 0; c < k; ++c) {
            const size_t src = order[c];
            size_t imax = 0;
            for (size_t a = 1; a < d; ++a)
                if (fabs(V[a * d + src]) > fabs(V[imax * d + src])) imax = a;
            const double flip = V[imax * d + src] < 0.0 ? -1.0 : 1.0;
            const double scale = 1.0 / sqrt(fabs(m->evals[c]));
            for (size_t a = 0; a < d; ++a) {
                m->U[a * k + c] = flip * V[a * d + src];
                m->P[a * k + c] = m->U[a * k + c] * scale;
            }
        }
    }
    free(w);
    free(V);
    free(order);
    return st;
}

typedef struct {
    const sl_scores *s;
    sl_moments *m;
} whiten_ctx;

/* A block's whitened scores, written in place: Gw = G P, and Hw_j = P'H_j P
 * by two dgemms (see the file comment). Scratch: k BLOCK d + k BLOCK k. */
static sl_status whiten_block(const void *vctx, size_t lo, size_t nb, double *part,
                              double *scratch) {
    (void)part;
    const whiten_ctx *c = vctx;
    sl_moments *m = c->m;
    const size_t d = m->d, k = m->k, kk = k * k;
    double *C = scratch;              /* P' [H_1 ... H_nb]: k x (nb d) */
    double *O = scratch + k * nb * d; /* (P' H_j P)[c][c'] at [c][j][c'] */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)k, (int)d, 1.0,
                c->s->G + lo * d, (int)d, m->P, (int)k, 0.0, m->Gw + lo * k, (int)k);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)(nb * d), (int)d, 1.0, m->P,
                (int)k, c->s->H + lo * d * d, (int)d, 0.0, C, (int)(nb * d));
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(k * nb), (int)k, (int)d, 1.0, C,
                (int)d, m->P, (int)k, 0.0, O, (int)k);
    /* Reorder to [j][c][c'], averaging the two triangles so Hw_j is exactly
     * symmetric (the loss's gradient relies on it). */
    for (size_t j = 0; j < nb; ++j) {
        double *Hw = m->Hw + (lo + j) * kk;
        for (size_t a = 0; a < k; ++a)
            for (size_t e = a; e < k; ++e)
                Hw[a * k + e] = Hw[e * k + a] =
                    0.5 * (O[(a * nb + j) * k + e] + O[(e * nb + j) * k + a]);
    }
    return SL_OK;
}

sl_status sl_moments_compute(const sl_scores *s, const double *y, size_t k, sl_moments **out) {
    return sl_moments_compute_cv(s, y, NULL, k, out);
}

sl_status sl_moments_compute_cv(const sl_scores *s, const double *y, const double *M2_add, size_t k,
                                sl_moments **out) {
    if (!out) return sl_error(SL_EINVAL, "moments: no output pointer");
    *out = NULL;
    if (!s || !y || !s->G || !s->H)
        return sl_error(SL_EINVAL, "moments: scores (with g and H) and labels are required");
    const size_t n = s->n, d = s->d;
    if (n == 0 || d == 0)
        return sl_error(SL_EINVAL, "moments: no samples (n = %zu, d = %zu)", n, d);
    if (k < 1 || k > d)
        return sl_error(SL_EINVAL,
                        "moments: the number of directions k = %zu must be in 1..d = %zu", k, d);
    if (n > INT_MAX || d * d > INT_MAX / BLOCK || k * k > INT_MAX / BLOCK ||
        n > SIZE_MAX / sizeof(double) / (k * k))
        return sl_error(SL_EINVAL, "moments: sizes n = %zu, d = %zu, k = %zu are too large", n, d,
                        k);
    if (!sl_all_finite(n, y))
        return sl_error(SL_EINVAL, "moments: the labels contain non-finite values");
    /* y, the whitened g and H (n (1 + k + k^2)) and the d x d, d x k pieces. */
    const size_t need =
        sl_mem_doubles(sl_mem_add(sl_mem_mul(n, 1 + k + k * k), sl_mem_mul(d, d + 1 + 2 * k)));
    char what[128];
    snprintf(what, sizeof what, "the moments of %zu samples (d = %zu, k = %zu)", n, d, k);
    sl_status mst = sl_mem_check(need, what);
    if (mst) return mst;

    sl_moments *m = calloc(1, sizeof *m);
    if (!m) return sl_error(SL_ENOMEM, "out of memory for the moments");
    m->n = n;
    m->d = d;
    m->k = k;
    m->y = malloc(n * sizeof *m->y);
    m->M2 = malloc(d * d * sizeof *m->M2);
    m->evals = malloc(d * sizeof *m->evals);
    m->U = malloc(d * k * sizeof *m->U);
    m->P = malloc(d * k * sizeof *m->P);
    m->Gw = malloc(n * k * sizeof *m->Gw);
    m->Hw = malloc(n * k * k * sizeof *m->Hw);
    m->signal = calloc(k, sizeof *m->signal);
    if (!m->y || !m->M2 || !m->evals || !m->U || !m->P || !m->Gw || !m->Hw || !m->signal) {
        sl_moments_free(m);
        return sl_error(SL_ENOMEM, "out of memory for the moments (n = %zu, k = %zu)", n, k);
    }
    memcpy(m->y, y, n * sizeof *y);

    sl_status st = second_moment(s, y, m->M2);
    if (!st && M2_add)
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b)
                m->M2[a * d + b] += 0.5 * (M2_add[a * d + b] + M2_add[b * d + a]);
    if (!st && !sl_all_finite(d * d, m->M2))
        st = sl_error(SL_ENUMERIC, "moments: M2 has non-finite entries (check the scores)");
    if (!st) st = whitening(m);
    if (!st) {
        whiten_ctx ctx = {s, m};
        st = reduce_blocks(n, BLOCK, 0, k * BLOCK * (d + k), whiten_block, &ctx, NULL);
    }
    if (st) {
        sl_moments_free(m);
        return st;
    }
    *out = m;
    return SL_OK;
}

/* A block's A1 = sum y F F', A2 = sum y h F', A3 = sum y h h' (each
 * k^2 x k^2, one after the other in part) with F = vec(g g'), h = vec(H):
 * the locally quadratic S_4 is a sum of their entries. Scratch: 3 BLOCK k^2. */
static sl_status tensor_block(const void *vctx, size_t lo, size_t nb, double *part,
                              double *scratch) {
    const sl_moments *m = vctx;
    const size_t k = m->k, kk = k * k;
    const double *Hb = m->Hw + lo * kk;
    double *F = scratch, *yF = F + nb * kk, *yH = yF + nb * kk;
    for (size_t j = 0; j < nb; ++j) {
        const double *g = m->Gw + (lo + j) * k, yj = m->y[lo + j];
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b < k; ++b) {
                const double f = g[a] * g[b];
                F[j * kk + a * k + b] = f;
                yF[j * kk + a * k + b] = yj * f;
            }
        for (size_t i = 0; i < kk; ++i) yH[j * kk + i] = yj * Hb[j * kk + i];
    }
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)kk, (int)nb, 1.0, F, (int)kk,
                yF, (int)kk, 0.0, part, (int)kk);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)kk, (int)nb, 1.0, Hb,
                (int)kk, yF, (int)kk, 0.0, part + kk * kk, (int)kk);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kk, (int)kk, (int)nb, 1.0, Hb,
                (int)kk, yH, (int)kk, 0.0, part + 2 * kk * kk, (int)kk);
    return SL_OK;
}

/* A fresh T buffer (k^4) for m, reusing the old one. */
static sl_status tensor_buffer(sl_moments *m) {
    const size_t k = m->k, k4 = k * k * k * k;
    if (!m->T) m->T = malloc(k4 * sizeof *m->T);
    if (!m->T) return sl_error(SL_ENOMEM, "out of memory for the fourth moment (k = %zu)", k);
    m->have_signal = 0;
    memset(m->signal, 0, k * sizeof *m->signal);
    return SL_OK;
}

sl_status sl_moments_tensor(sl_moments *m) {
    if (!m) return sl_error(SL_EINVAL, "moments: NULL");
    const size_t n = m->n, k = m->k, kk = k * k;
    double *A = malloc(3 * kk * kk * sizeof *A);
    if (!A) return sl_error(SL_ENOMEM, "out of memory for the fourth moment (k = %zu)", k);
    sl_status st = reduce_blocks(n, BLOCK, 3 * kk * kk, 3 * BLOCK * kk, tensor_block, m, A);
    if (!st) st = tensor_buffer(m);
    if (st) {
        free(A);
        return st;
    }
    const double *A1 = A, *A2 = A + kk * kk, *A3 = A + 2 * kk * kk;
    /* S_4[abce] = g^4 + (six g g H placements) + (three H H pairings). */
    const double inv = 1.0 / (double)n;
#define IX(p, q, r, s) (((p)*k + (q)) * kk + (r)*k + (s))
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b)
            for (size_t c = 0; c < k; ++c)
                for (size_t e = 0; e < k; ++e) {
                    double v = A1[IX(a, b, c, e)];
                    v += A2[IX(a, b, c, e)] + A2[IX(a, c, b, e)] + A2[IX(a, e, b, c)] +
                         A2[IX(b, c, a, e)] + A2[IX(b, e, a, c)] + A2[IX(c, e, a, b)];
                    v += A3[IX(a, b, c, e)] + A3[IX(a, c, b, e)] + A3[IX(a, e, b, c)];
                    m->T[IX(a, b, c, e)] = v * inv;
                }
#undef IX
    m->t_full = 0;
    free(A);
    return SL_OK;
}

typedef struct {
    const sl_moments *m;
    const sl_dist *dist;
    const double *Z, *V;
    size_t dim;
} dist_ctx;

/* A block's sum_j y_j S_4(Z_j)(V, V, V, V). Scratch: one S_4 (k^4). */
static sl_status dist_block(const void *vctx, size_t lo, size_t nb, double *part, double *scratch) {
    const dist_ctx *c = vctx;
    const size_t k = c->m->k, k4 = k * k * k * k;
    memset(part, 0, k4 * sizeof *part);
    for (size_t j = lo; j < lo + nb; ++j) {
        sl_status st =
            sl_dist_scores(c->dist, c->Z + j * c->dim, k, c->V, NULL, NULL, NULL, scratch);
        if (st) return st;
        cblas_daxpy((int)k4, c->m->y[j], scratch, 1, part, 1);
    }
    return SL_OK;
}

sl_status sl_moments_tensor_dist(sl_moments *m, const sl_dist *dist, const double *Z,
                                 const double *V) {
    if (!m || !dist || !Z || !V)
        return sl_error(SL_EINVAL, "moments: the exact T needs the moments, a distribution, Z, V");
    if (!(sl_dist_caps(dist) & SL_DIST_SCORE4))
        return sl_error(SL_EUNSUPPORTED,
                        "distribution '%s' has no exact fourth-order score (SL_DIST_SCORE4); use "
                        "the locally quadratic T (sl_moments_tensor) or a distribution with third "
                        "and fourth log-derivatives",
                        sl_dist_name(dist));
    const size_t k = m->k, k4 = k * k * k * k;
    double *sum = malloc(k4 * sizeof *sum);
    if (!sum) return sl_error(SL_ENOMEM, "out of memory for the exact T (k = %zu)", k);
    dist_ctx ctx = {m, dist, Z, V, sl_dist_dim(dist)};
    sl_status st = reduce_blocks(m->n, DIST_BLOCK, k4, k4, dist_block, &ctx, sum);
    if (!st && !sl_all_finite(k4, sum))
        st = sl_error(SL_ENUMERIC, "the exact T from '%s' has non-finite entries",
                      sl_dist_name(dist));
    if (!st) st = tensor_buffer(m);
    if (!st) {
        for (size_t i = 0; i < k4; ++i) m->T[i] = sum[i] / (double)m->n;
        m->t_full = 1;
    }
    free(sum);
    return st;
}

sl_status sl_moments_signal(sl_moments *m) {
    if (!m) return sl_error(SL_EINVAL, "moments: NULL");
    if (!m->T) {
        sl_status st = sl_moments_tensor(m);
        if (st) return st;
    }
    const size_t k = m->k, kk = k * k;
    double *A = malloc(kk * kk * sizeof *A), *w = malloc(kk * sizeof *w);
    double *V = malloc(kk * kk * sizeof *V);
    sl_status st = SL_OK;
    if (!A || !w || !V) st = sl_error(SL_ENOMEM, "out of memory for the signal estimate");
    if (!st && !sl_all_finite(kk * kk, m->T))
        st = sl_error(SL_ENUMERIC, "the fourth moment T has non-finite entries");
    if (!st) {
        /* The unfolding T[(a,b),(c,e)], symmetrised against rounding. */
        for (size_t r = 0; r < kk; ++r)
            for (size_t c = r; c < kk; ++c)
                A[r * kk + c] = A[c * kk + r] = 0.5 * (m->T[r * kk + c] + m->T[c * kk + r]);
        st = sl_sym_eigen(kk, A, w, V);
    }
    if (!st) {
        /* The k largest in |value|: w is in descending order, so they are
         * the ends; merge from both sides. */
        size_t lo = 0, hi = kk;
        for (size_t i = 0; i < k; ++i) {
            if (fabs(w[lo]) >= fabs(w[hi - 1]))
                m->signal[i] = w[lo++];
            else
                m->signal[i] = w[--hi];
        }
        m->have_signal = 1;
    }
    free(A);
    free(w);
    free(V);
    return st;
}

double sl_moments_contract(const sl_moments *m, const double *a, const double *b, const double *c,
                           const double *e) {
    if (!m || !m->T || !a || !b || !c || !e) return NAN;
    const size_t k = m->k;
    const double *T = m->T;
    double total = 0.0;
    for (size_t p = 0; p < k; ++p) {
        double sp = 0.0;
        for (size_t q = 0; q < k; ++q) {
            double sq = 0.0;
            for (size_t r = 0; r < k; ++r) {
                const double *row = T + ((p * k + q) * k + r) * k;
                double sr = 0.0;
                for (size_t s = 0; s < k; ++s) sr += row[s] * e[s];
                sq += sr * c[r];
            }
            sp += sq * b[q];
        }
        total += sp * a[p];
    }
    return total;
}
