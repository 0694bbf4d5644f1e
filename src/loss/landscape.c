/* The landscape-designed losses (METHOD.md section 4) over B (k x k,
 * row-major, column p is b_p).
 *
 * Per-sample mode. For sample j let u = B'g_j (k) and M = B'H_j B (k x k).
 * With v_p = u_p^2 + M_pp and w_pq = 1 (p != q), -mu (p = q), the locally
 * quadratic S_4(b_p, b_p, b_q, b_q) of METHOD.md section 2 summed with the
 * weights w is
 *   sum_pq w_pq S_4(p,p,q,q) = v'Wv + sum_pq w_pq (4 M_pq u_p u_q + 2 M_pq^2),
 * with v'Wv = (sum_p v_p)^2 - (1 + mu) |v|^2: O(k^2) per sample once u and M
 * are known. The chunk's u and M come from three dgemms over the gathered
 * minibatch (the same stacking trick as the whitening in moments.c):
 *   U  = B' Xb'              k x nb           U[p][j]    = u_p of sample j
 *   C  = B' [H_1 ... H_nb]   k x (nb k)       C[p][j][a] = (H_j B)[a][p]
 *   Mt = B' C'  (C as (k nb) x k rows)        Mt[q][p][j] = M_j[q][p] = M_j[p][q]
 * so the closed form runs with samples innermost, over contiguous arrays.
 * The gradient goes back the same way: with Du = dL/du (k x nb) and
 * D_j = dL/dM_j (symmetric, stored [p][q][j]),
 *   dL/dB = Xb' Du' + 2 sum_j H_j B D_j = Xb' Du' + 2 C' D'
 * (C read as (k nb) x k, D as k x (k nb)): two more dgemms, no k^4 anywhere.
 *
 * Tensor mode. With Q_p = vec(b_p b_p') (the columns of Qm, k^2 x k), R = T Qm
 * and K = Qm' R, K_pq = T(b_p, b_p, b_q, b_q); a loss F(K) has
 * dF/dQ_p = sum_q Omega_pq R_q with Omega = 2 dF/dK (T's unfolding made
 * symmetric once), and dF/db_p = (G_p + G_p') b_p with G_p the k x k
 * reshape of dF/dQ_p. */
#include "scoreloss/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "core/linalg.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Samples per sub-chunk of the per-sample loss: the unit of work and of
 * the reduction, fixed so that the result does not depend on the number of
 * threads; large enough for the dgemms (k x 64 k by k x k and up). */
#define SUB 64

/* Below this much work (nbatch k^3, about a sixth of the flops) a call runs
 * on the calling thread: a parallel region per minibatch costs more than it
 * saves (measured: one epoch at n = 10^5, k = 20, batch 256 took 0.24 s on
 * one thread and 3.0 s with a region per call on two shared, loaded cores,
 * the spinning workers fighting other processes). Full-batch evaluations
 * are large enough to share out. */
#define PAR_WORK (1u << 24)

/* One thread's workspace for a sub-chunk of up to SUB samples. */
typedef struct chunk_ws {
    double *Xb, *Hb; /* gathered Gw rows (nb x k) and Hw blocks (nb k x k) */
    double *U, *C, *M, *D, *Du, *V;
    double *S, *Q, *P2, *c; /* nb-vectors: see persample_chunk */
} chunk_ws;

struct sl_landscape {
    sl_moments *m; /* borrowed */
    sl_landscape_options opt;
    int sign; /* s of the landscape loss; 0 for the sign-free one */
    size_t k;
    /* tensor mode */
    double *Ts; /* T's k^2 x k^2 unfolding, symmetrised */
    double *Qm, *R, *Kq, *Om, *Gq;
    /* per-sample mode */
    size_t nthreads;
    chunk_ws *ws;     /* nthreads workspaces */
    double *wsbuf;    /* their storage */
    double *parts;    /* per sub-chunk: loss, then gradient (1 + k^2 each) */
    size_t parts_cap; /* sub-chunks parts has room for */
};

void sl_landscape_options_default(sl_landscape_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->kind = SL_LOSS_LANDSCAPE;
    opt->mu = 0.5;
    opt->lambda = 0.0;
    opt->sign = 0;
    opt->tensor = 0;
}

void sl_landscape_free(sl_landscape *L) {
    if (!L) return;
    free(L->Ts);
    free(L->Qm);
    free(L->R);
    free(L->Kq);
    free(L->Om);
    free(L->Gq);
    free(L->ws);
    free(L->wsbuf);
    free(L->parts);
    free(L);
}

int sl_landscape_sign(const sl_landscape *L) {
    return L ? L->sign : 0;
}

static sl_status check_options(const sl_moments *m, const sl_landscape_options *o,
                               size_t max_batch) {
    if (o->kind != SL_LOSS_LANDSCAPE && o->kind != SL_LOSS_SIGNFREE)
        return sl_error(SL_EINVAL, "landscape: unknown loss kind %d", (int)o->kind);
    if (!isfinite(o->mu)) return sl_error(SL_EINVAL, "landscape: mu must be finite, got %g", o->mu);
    if (!(o->lambda >= 0.0) || !isfinite(o->lambda))
        return sl_error(SL_EINVAL, "landscape: lambda must be >= 0 and finite, got %g", o->lambda);
    if (o->sign < -1 || o->sign > 1)
        return sl_error(SL_EINVAL, "landscape: sign must be -1, 0 (estimate) or +1, got %d",
                        o->sign);
    if (o->tensor != 0 && o->tensor != 1)
        return sl_error(SL_EINVAL, "landscape: tensor must be 0 or 1, got %d", o->tensor);
    if (o->kind == SL_LOSS_SIGNFREE && !o->tensor)
        return sl_error(SL_EINVAL, "landscape: the sign-free loss runs in tensor mode only "
                                   "(set tensor = 1)");
    if (!o->tensor && max_batch == 0)
        return sl_error(SL_EINVAL, "landscape: max_batch must be at least 1 in per-sample mode");
    const size_t k = m->k;
    if (k > 200) return sl_error(SL_EINVAL, "landscape: k = %zu is too large (at most 200)", k);
    return SL_OK;
}

/* s = the sign of the signal coefficients c_i (estimated by their sum):
 * with c < 0 the loss's -mu sum T(b_p^4) term must reward |T(b_p^4)|, so
 * s = -1 (METHOD.md section 4; ReLU with unimodal marginals). */
static sl_status estimate_sign(sl_moments *m, int *sign) {
    if (!m->have_signal) {
        sl_status st = sl_moments_signal(m);
        if (st) return sl_error_prefix(st, "landscape sign estimate: ");
    }
    double sum = 0.0;
    for (size_t i = 0; i < m->k; ++i) sum += m->signal[i];
    if (!isfinite(sum) || sum == 0.0)
        return sl_error(SL_ENUMERIC,
                        "landscape: the estimated signal sums to %g, so its sign is unknown; "
                        "set the sign explicitly",
                        sum);
    *sign = sum < 0.0 ? -1 : 1;
    return SL_OK;
}

sl_status sl_landscape_alloc(sl_moments *m, const sl_landscape_options *opt, size_t max_batch,
                             sl_landscape **out) {
    if (!out) return sl_error(SL_EINVAL, "landscape: no output pointer");
    *out = NULL;
    if (!m) return sl_error(SL_EINVAL, "landscape: no moments");
    sl_landscape_options o;
    if (opt)
        o = *opt;
    else
        sl_landscape_options_default(&o);
    sl_status st = check_options(m, &o, max_batch);
    if (st) return st;

    const size_t k = m->k, kk = k * k, nb = max_batch;
    int sign = 0;
    if (o.kind == SL_LOSS_LANDSCAPE) {
        sign = o.sign;
        if (sign == 0) st = estimate_sign(m, &sign);
        if (st) return st;
    }
    if (o.tensor && !m->T) {
        st = sl_moments_tensor(m);
        if (st) return st;
    }

    sl_landscape *L = calloc(1, sizeof *L);
    if (!L) return sl_error(SL_ENOMEM, "out of memory for the landscape");
    L->m = m;
    L->opt = o;
    L->sign = sign;
    L->k = k;
    int ok = 1;
    if (o.tensor) {
        L->Ts = malloc(kk * kk * sizeof *L->Ts);
        L->Qm = malloc(kk * k * sizeof *L->Qm);
        L->R = malloc(kk * k * sizeof *L->R);
        L->Kq = malloc(kk * sizeof *L->Kq);
        L->Om = malloc(kk * sizeof *L->Om);
        L->Gq = malloc(kk * k * sizeof *L->Gq);
        ok = L->Ts && L->Qm && L->R && L->Kq && L->Om && L->Gq;
        if (ok) {
            /* Symmetric unfolding: the gradient formula assumes it, and the
             * value (a contraction with symmetric Q_p) is unchanged. */
            for (size_t r = 0; r < kk; ++r)
                for (size_t c = r; c < kk; ++c)
                    L->Ts[r * kk + c] = L->Ts[c * kk + r] =
                        0.5 * (m->T[r * kk + c] + m->T[c * kk + r]);
        }
    } else {
        size_t nthreads = 1;
#ifdef _OPENMP
        nthreads = (size_t)omp_get_max_threads();
#endif
        const size_t per = SUB * (4 * k + 4 * kk + 4); /* doubles per workspace */
        L->nthreads = nthreads;
        L->ws = calloc(nthreads, sizeof *L->ws);
        L->wsbuf = malloc(nthreads * per * sizeof *L->wsbuf);
        L->parts_cap = (nb + SUB - 1) / SUB;
        L->parts = malloc(L->parts_cap * (1 + kk) * sizeof *L->parts);
        ok = L->ws && L->wsbuf && L->parts;
        for (size_t t = 0; ok && t < nthreads; ++t) {
            double *p = L->wsbuf + t * per;
            chunk_ws *w = &L->ws[t];
            w->Xb = p, p += SUB * k;
            w->Hb = p, p += SUB * kk;
            w->U = p, p += SUB * k;
            w->C = p, p += SUB * kk;
            w->M = p, p += SUB * kk;
            w->D = p, p += SUB * kk;
            w->Du = p, p += SUB * k;
            w->V = p, p += SUB * k;
            w->S = p, p += SUB;
            w->Q = p, p += SUB;
            w->P2 = p, p += SUB;
            w->c = p;
        }
    }
    if (!ok) {
        sl_landscape_free(L);
        return sl_error(SL_ENOMEM, "out of memory for the landscape workspace (k = %zu, batch %zu)",
                        k, nb);
    }
    *out = L;
    return SL_OK;
}

/* One sub-chunk of nb samples, gathered into w (with the weights
 * c_j = s y_j / nbatch in w->c): returns its loss and writes its gradient
 * into grad (when not NULL). */
static double persample_chunk(const sl_landscape *L, chunk_ws *w, const double *B, double *grad,
                              size_t nb) {
    const size_t k = L->k, knb = k * nb;
    const double mu = L->opt.mu, mu1 = 1.0 + mu;
    double *U = w->U, *C = w->C, *M = w->M, *D = w->D, *Du = w->Du, *V = w->V;
    double *S = w->S, *Q = w->Q, *P2 = w->P2;
    const double *cj = w->c;

    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)nb, (int)k, 1.0, B, (int)k,
                w->Xb, (int)k, 0.0, U, (int)nb);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)knb, (int)k, 1.0, B, (int)k,
                w->Hb, (int)k, 0.0, C, (int)knb);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)knb, (int)k, 1.0, B, (int)k, C,
                (int)k, 0.0, M, (int)knb);

    /* Diagonal terms: v_p, S = sum v, Q = sum v^2, and -mu (4 M_pp u_p^2 + 2 M_pp^2). */
    memset(S, 0, nb * sizeof *S);
    memset(Q, 0, nb * sizeof *Q);
    memset(P2, 0, nb * sizeof *P2);
    for (size_t p = 0; p < k; ++p) {
        const double *up = U + p * nb, *Mpp = M + (p * k + p) * nb;
        double *vp = V + p * nb;
        for (size_t j = 0; j < nb; ++j) {
            const double u2 = up[j] * up[j], mpp = Mpp[j], v = u2 + mpp;
            vp[j] = v;
            S[j] += v;
            Q[j] += v * v;
            P2[j] -= mu * (4.0 * mpp * u2 + 2.0 * mpp * mpp);
        }
    }
    if (grad) {
        /* dL/du_p = c (4 (Wv)_p u_p - 8 mu M_pp u_p), dL/dM_pp = c (2 (Wv)_p - 4 mu v_p),
         * with (Wv)_p = S - (1 + mu) v_p; the pairs below add their parts. */
        for (size_t p = 0; p < k; ++p) {
            const double *up = U + p * nb, *Mpp = M + (p * k + p) * nb, *vp = V + p * nb;
            double *dup = Du + p * nb, *Dpp = D + (p * k + p) * nb;
            for (size_t j = 0; j < nb; ++j) {
                const double wv = S[j] - mu1 * vp[j];
                dup[j] = cj[j] * (4.0 * wv - 8.0 * mu * Mpp[j]) * up[j];
                Dpp[j] = cj[j] * (2.0 * wv - 4.0 * mu * vp[j]);
            }
        }
    }
    /* Pairs p < q, counted twice: 2 (4 M_pq u_p u_q + 2 M_pq^2). */
    for (size_t p = 0; p < k; ++p)
        for (size_t q = p + 1; q < k; ++q) {
            const double *up = U + p * nb, *uq = U + q * nb, *Mpq = M + (p * k + q) * nb;
            if (grad) {
                double *dup = Du + p * nb, *duq = Du + q * nb;
                double *Dpq = D + (p * k + q) * nb, *Dqp = D + (q * k + p) * nb;
                for (size_t j = 0; j < nb; ++j) {
                    const double m = Mpq[j], uu = up[j] * uq[j];
                    P2[j] += 8.0 * m * uu + 4.0 * m * m;
                    const double c8m = 8.0 * cj[j] * m;
                    dup[j] += c8m * uq[j];
                    duq[j] += c8m * up[j];
                    Dpq[j] = Dqp[j] = 4.0 * cj[j] * (uu + m);
                }
            } else {
                for (size_t j = 0; j < nb; ++j) {
                    const double m = Mpq[j], uu = up[j] * uq[j];
                    P2[j] += 8.0 * m * uu + 4.0 * m * m;
                }
            }
        }
    double loss = 0.0;
    for (size_t j = 0; j < nb; ++j) loss += cj[j] * (S[j] * S[j] - mu1 * Q[j] + P2[j]);

    if (grad) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)k, (int)nb, 1.0, w->Xb,
                    (int)k, Du, (int)nb, 0.0, grad, (int)k);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)k, (int)knb, 2.0, C, (int)k,
                    D, (int)knb, 1.0, grad, (int)k);
    }
    return loss;
}

/* The per-sample loss over the batch, in sub-chunks of SUB samples whose
 * partial losses and gradients are added in order. */
static double persample(sl_landscape *L, const double *B, double *grad, const size_t *batch,
                        size_t nbatch) {
    const sl_moments *m = L->m;
    const size_t k = L->k, kk = k * k, stride = 1 + kk;
    if (!batch || nbatch == 0) {
        sl_error(SL_EINVAL, "landscape: empty minibatch");
        return NAN;
    }
    for (size_t j = 0; j < nbatch; ++j)
        if (batch[j] >= m->n) {
            sl_error(SL_EINVAL, "landscape: sample index %zu out of range (n = %zu)", batch[j],
                     m->n);
            return NAN;
        }
    const size_t nsub = (nbatch + SUB - 1) / SUB;
    if (nsub > L->parts_cap) {
        /* A batch beyond max_batch (the full-batch evaluations): grow once. */
        double *p = realloc(L->parts, nsub * stride * sizeof *p);
        if (!p) {
            sl_error(SL_ENOMEM, "out of memory for a batch of %zu samples", nbatch);
            return NAN;
        }
        L->parts = p;
        L->parts_cap = nsub;
    }
    const double scale = (double)L->sign / (double)nbatch;
    const int parallel = nsub > 1 && (double)nbatch * (double)(kk * k) >= (double)PAR_WORK;
    (void)parallel; /* used by the OpenMP pragma only */
    /* Single-threaded BLAS: the threaded kernels' bits depend on the thread
     * count, and the parallelism is over sub-chunks here. */
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
        chunk_ws *w = &L->ws[tid];
        const size_t lo = i * SUB, nb = nbatch - lo < SUB ? nbatch - lo : SUB;
        for (size_t j = 0; j < nb; ++j) {
            const size_t r = batch[lo + j];
            memcpy(w->Xb + j * k, m->Gw + r * k, k * sizeof *w->Xb);
            memcpy(w->Hb + j * kk, m->Hw + r * kk, kk * sizeof *w->Hb);
            w->c[j] = scale * m->y[r];
        }
        double *part = L->parts + i * stride;
        part[0] = persample_chunk(L, w, B, grad ? part + 1 : NULL, nb);
    }
    openblas_set_num_threads(blas_threads);
    double loss = 0.0;
    for (size_t i = 0; i < nsub; ++i) {
        const double *part = L->parts + i * stride;
        loss += part[0];
        if (grad)
            for (size_t a = 0; a < kk; ++a) grad[a] += part[1 + a];
    }
    return loss;
}

static double tensor_loss(sl_landscape *L, const double *B, double *grad) {
    const size_t k = L->k, kk = k * k;
    double *Qm = L->Qm, *R = L->R, *K = L->Kq, *Om = L->Om, *Gq = L->Gq;
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b)
            for (size_t p = 0; p < k; ++p) Qm[(a * k + b) * k + p] = B[a * k + p] * B[b * k + p];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kk, (int)k, (int)kk, 1.0, L->Ts,
                (int)kk, Qm, (int)k, 0.0, R, (int)k);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)k, (int)kk, 1.0, Qm, (int)k,
                R, (int)k, 0.0, K, (int)k);
    double loss = 0.0;
    if (L->opt.kind == SL_LOSS_LANDSCAPE) {
        /* F = s sum_pq w_pq K_pq, Omega = 2 s W. */
        const double s = (double)L->sign, mu = L->opt.mu;
        for (size_t p = 0; p < k; ++p)
            for (size_t q = 0; q < k; ++q) {
                const double w = p == q ? -mu : 1.0;
                loss += s * w * K[p * k + q];
                Om[p * k + q] = 2.0 * s * w;
            }
    } else {
        /* F = -sum_p K_pp^2, Omega = diag(-4 K_pp). */
        memset(Om, 0, kk * sizeof *Om);
        for (size_t p = 0; p < k; ++p) {
            loss -= K[p * k + p] * K[p * k + p];
            Om[p * k + p] = -4.0 * K[p * k + p];
        }
    }
    if (grad) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)kk, (int)k, (int)k, 1.0, R,
                    (int)k, Om, (int)k, 0.0, Gq, (int)k);
        for (size_t p = 0; p < k; ++p)
            for (size_t a = 0; a < k; ++a) {
                double g = 0.0;
                for (size_t b = 0; b < k; ++b)
                    g += (Gq[(a * k + b) * k + p] + Gq[(b * k + a) * k + p]) * B[b * k + p];
                grad[a * k + p] = g;
            }
    }
    return loss;
}

/* T's contractions with single-threaded BLAS (thread-count independent bits). */
static double tensor_loss_serial(sl_landscape *L, const double *B, double *grad) {
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    const double loss = tensor_loss(L, B, grad);
    openblas_set_num_threads(blas_threads);
    return loss;
}

double sl_landscape_objective(size_t nparam, const double *x, double *grad, const size_t *batch,
                              size_t nbatch, void *data) {
    sl_landscape *L = data;
    if (!L || !x) {
        sl_error(SL_EINVAL, "landscape objective: no landscape or no parameters");
        return NAN;
    }
    const size_t k = L->k;
    if (nparam != k * k) {
        sl_error(SL_EINVAL, "landscape objective: expected %zu parameters (k x k), got %zu", k * k,
                 nparam);
        return NAN;
    }
    double loss;
    if (L->opt.tensor) {
        loss = tensor_loss_serial(L, x, grad);
    } else {
        if (grad) memset(grad, 0, nparam * sizeof *grad);
        loss = persample(L, x, grad, batch, nbatch);
    }
    if (L->opt.lambda > 0.0 && isfinite(loss)) {
        /* lambda sum_p (|b_p|^2 - 1)^2, for runs without the sphere projection. */
        for (size_t p = 0; p < k; ++p) {
            double r = -1.0;
            for (size_t a = 0; a < k; ++a) r += x[a * k + p] * x[a * k + p];
            loss += L->opt.lambda * r * r;
            if (grad)
                for (size_t a = 0; a < k; ++a)
                    grad[a * k + p] += 4.0 * L->opt.lambda * r * x[a * k + p];
        }
    }
    return loss;
}
