/* The baseline score sources: one global Gaussian, the standard Gaussian
 * (Hermite) and the exact scores of a known distribution. */
#include "score/score_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#include "core/linalg.h"

sl_status sl_gauss_fit_compute(size_t n, size_t d, const double *X, sl_gauss_fit *f) {
    memset(f, 0, sizeof *f);
    f->d = d;
    f->m = calloc(d, sizeof *f->m);
    f->C = calloc(d * d, sizeof *f->C);
    f->P = calloc(d * d, sizeof *f->P);
    double *Xc = calloc(n * d, sizeof *Xc);
    if (!f->m || !f->C || !f->P || !Xc) {
        free(Xc);
        sl_gauss_fit_release(f);
        return sl_error(SL_ENOMEM, "out of memory fitting a Gaussian");
    }
    for (size_t i = 0; i < n; ++i)
        for (size_t a = 0; a < d; ++a) f->m[a] += X[i * d + a];
    for (size_t a = 0; a < d; ++a) f->m[a] /= (double)n;
    for (size_t i = 0; i < n; ++i)
        for (size_t a = 0; a < d; ++a) Xc[i * d + a] = X[i * d + a] - f->m[a];
    /* C = Xc' Xc / (n - 1), by one BLAS rank-n update. */
    double denom = n > 1 ? (double)(n - 1) : 1.0;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)n, 1.0 / denom, Xc, (int)d, 0.0,
                f->C, (int)d);
    free(Xc);
    for (size_t a = 0; a < d; ++a)
        for (size_t b = 0; b < a; ++b) f->C[a * d + b] = f->C[b * d + a];
    double tr = 0;
    for (size_t a = 0; a < d; ++a) tr += f->C[a * d + a];
    if (!(tr > 0)) {
        sl_gauss_fit_release(f);
        return sl_error(SL_ENUMERIC,
                        "the samples are all identical: no spread to estimate scores from");
    }
    f->scale = sqrt(tr / (double)d);
    /* A degenerate sample (constant column, points on a subspace) gets a
     * ridge so the inverse exists and is reported; a healthy one is
     * untouched. Cholesky alone can succeed on a covariance singular to
     * rounding (eigenvalue ratio 1e-18) and return a precision of 1e18:
     * the eigenvalues decide (below 1e-12 of the largest: a ridge). */
    double *w = malloc(d * sizeof *w), *V = malloc(d * d * sizeof *V);
    sl_status st = w && V ? sl_sym_eigen(d, f->C, w, V) : sl_error(SL_ENOMEM, "out of memory");
    if (!st) {
        double lo = w[0], hi = w[0];
        for (size_t a = 1; a < d; ++a) {
            lo = fmin(lo, w[a]);
            hi = fmax(hi, w[a]);
        }
        if (!(lo > 1e-12 * hi)) {
            f->regularised = 1;
            for (size_t a = 0; a < d; ++a) f->C[a * d + a] += 1e-9 * tr / (double)d;
        }
        st = sl_spd_inverse(d, f->C, f->P, NULL, "sample covariance");
    }
    free(w);
    free(V);
    for (double ridge = 1e-7; st != SL_OK && ridge <= 1.0; ridge *= 100) {
        f->regularised = 1;
        for (size_t a = 0; a < d; ++a) f->C[a * d + a] += ridge * tr / (double)d;
        st = sl_spd_inverse(d, f->C, f->P, NULL, "sample covariance");
    }
    if (st) sl_gauss_fit_release(f);
    return st;
}

void sl_gauss_fit_release(sl_gauss_fit *f) {
    free(f->m);
    free(f->C);
    free(f->P);
    f->m = f->C = f->P = NULL;
}

static sl_status gauss_estimate(const sl_score_options *opt, size_t n, size_t d, const double *X,
                                size_t nq, const double *Q, sl_scores *out) {
    (void)opt;
    sl_gauss_fit fit;
    sl_status st = sl_gauss_fit_compute(n, d, X, &fit);
    if (st) return st;
    const double *Qp = Q ? Q : X;
    double *diff = malloc(d * sizeof *diff);
    if (!diff) {
        sl_gauss_fit_release(&fit);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nq; ++i) {
        for (size_t a = 0; a < d; ++a) diff[a] = Qp[i * d + a] - fit.m[a];
        cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, -1.0, fit.P, (int)d, diff, 1, 0.0,
                    out->G + i * d, 1);
        for (size_t k = 0; k < d * d; ++k) out->H[i * d * d + k] = -fit.P[k];
    }
    /* A ridge on the global covariance regularises every point's scores. */
    if (fit.regularised) out->regularised = nq;
    free(diff);
    sl_gauss_fit_release(&fit);
    return SL_OK;
}

static sl_status hermite_estimate(const sl_score_options *opt, size_t n, size_t d, const double *X,
                                  size_t nq, const double *Q, sl_scores *out) {
    (void)opt;
    (void)n;
    const double *Qp = Q ? Q : X;
    for (size_t i = 0; i < nq; ++i) {
        for (size_t a = 0; a < d; ++a) out->G[i * d + a] = -Qp[i * d + a];
        double *H = out->H + i * d * d;
        memset(H, 0, d * d * sizeof *H);
        for (size_t a = 0; a < d; ++a) H[a * d + a] = -1.0;
    }
    return SL_OK;
}

static sl_status exact_estimate(const sl_score_options *opt, size_t n, size_t d, const double *X,
                                size_t nq, const double *Q, sl_scores *out) {
    (void)n;
    if (!opt->dist)
        return sl_error(SL_EINVAL, "score method exact needs a distribution with exact scores");
    if (sl_dist_dim(opt->dist) != d)
        return sl_error(SL_EINVAL, "distribution '%s' has dimension %zu but the data have %zu",
                        sl_dist_name(opt->dist), sl_dist_dim(opt->dist), d);
    return sl_dist_grad_hess(opt->dist, nq, Q ? Q : X, out->G, out->H);
}

const sl_score_type sl_score_gauss = {"gauss", gauss_estimate};
const sl_score_type sl_score_hermite = {"hermite", hermite_estimate};
const sl_score_type sl_score_exact = {"exact", exact_estimate};
