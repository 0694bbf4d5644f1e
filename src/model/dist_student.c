/* Multivariate Student t with nu degrees of freedom and identity scale:
 *
 *   p(x) = Gamma((nu+d)/2) / (Gamma(nu/2) (nu pi)^{d/2}) (1 + |x|^2/nu)^{-(nu+d)/2}.
 *
 * log p is radial, l(x) = F(s) with s = x'x and F(s) = -alpha log(1 + s/nu)
 * + const, alpha = (nu+d)/2, so every log-derivative tensor is a sum of
 * products of x and the identity; projected on V, x becomes V'x and the
 * identity V'V, which gives G3 and G4 (and so the exact S_3 and S_4) at
 * O(d m^2 + m^4) cost. */
#include "model/dist_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

/* Per-call scratch up to this many doubles lives on the stack (16 KiB). */
#define SCRATCH_STACK 2048

typedef struct {
    double nu;
    double alpha;    /* (nu + d) / 2 */
    double log_norm; /* log of the normalising constant */
} student_state;

static sl_status student_sample(const void *vs, size_t d, size_t n, gsl_rng *rng, double *X) {
    const student_state *s = vs;
    for (size_t i = 0; i < n; ++i) {
        double *x = X + i * d;
        for (size_t j = 0; j < d; ++j) x[j] = gsl_ran_gaussian(rng, 1.0);
        /* u == 0 (underflow, possible only for tiny nu) would put the point
         * at infinity, which no double represents: draw again. */
        double u;
        do u = gsl_ran_chisq(rng, s->nu);
        while (!(u > 0.0));
        /* sqrt(nu) / sqrt(u) rather than sqrt(nu / u): finite for any u > 0. */
        cblas_dscal((int)d, sqrt(s->nu) / sqrt(u), x, 1);
    }
    return SL_OK;
}

static sl_status student_log_density(const void *vs, size_t d, const double *x, double *logp) {
    const student_state *s = vs;
    const double r2 = cblas_ddot((int)d, x, 1, x, 1);
    *logp = s->log_norm - s->alpha * log1p(r2 / s->nu);
    return SL_OK;
}

static sl_status student_grad_hess(const void *vs, size_t d, const double *x, double *g,
                                   double *H) {
    const student_state *s = vs;
    const double nus = s->nu + cblas_ddot((int)d, x, 1, x, 1);
    const double F1 = -s->alpha / nus, F2 = s->alpha / (nus * nus);
    /* g = 2F' x;  H = 4F'' x x' + 2F' I */
    for (size_t a = 0; a < d; ++a) g[a] = 2.0 * F1 * x[a];
    if (H) {
        memset(H, 0, d * d * sizeof *H);
        cblas_dger(CblasRowMajor, (int)d, (int)d, 4.0 * F2, x, 1, x, 1, H, (int)d);
        for (size_t a = 0; a < d; ++a) H[a * d + a] += 2.0 * F1;
    }
    return SL_OK;
}

static sl_status student_scores(const void *vs, size_t d, const double *x, size_t m,
                                const double *V, double *S1, double *S2, double *S3, double *S4) {
    const student_state *s = vs;
    if (m == 0) return SL_OK;
    const size_t m2 = m * m, m3 = m2 * m;
    const int need3 = S3 || S4, need4 = S4 != NULL;
    const size_t nbuf = m + m2 + m + m2 + (need3 ? m3 : 0) + (need4 ? m3 * m : 0);
    double stack[SCRATCH_STACK], *heap = NULL, *buf = stack;
    if (nbuf > SCRATCH_STACK) {
        buf = heap = malloc(nbuf * sizeof *buf);
        if (!buf) return sl_error(SL_ENOMEM, "out of memory for Student-t scores");
    }
    double *xv = buf, *Q = xv + m, *g = Q + m2, *H = g + m;
    double *G3 = need3 ? H + m2 : NULL;
    double *G4 = need4 ? G3 + m3 : NULL;

    const double nus = s->nu + cblas_ddot((int)d, x, 1, x, 1), al = s->alpha;
    const double F1 = -al / nus, F2 = al / (nus * nus), F3 = -2.0 * al / (nus * nus * nus),
                 F4 = 6.0 * al / (nus * nus * nus * nus);
    /* xv = V'x stands for x and Q = V'V for the identity. */
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)m, 1.0, V, (int)m, x, 1, 0.0, xv, 1);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m, (int)d, 1.0, V, (int)m, V,
                (int)m, 0.0, Q, (int)m);

    for (size_t a = 0; a < m; ++a) {
        g[a] = 2.0 * F1 * xv[a];
        for (size_t b = 0; b < m; ++b)
            H[a * m + b] = 4.0 * F2 * xv[a] * xv[b] + 2.0 * F1 * Q[a * m + b];
    }
    if (G3)
        for (size_t a = 0; a < m; ++a)
            for (size_t b = 0; b < m; ++b)
                for (size_t c = 0; c < m; ++c)
                    G3[(a * m + b) * m + c] =
                        8.0 * F3 * xv[a] * xv[b] * xv[c] +
                        4.0 * F2 *
                            (Q[a * m + b] * xv[c] + Q[a * m + c] * xv[b] + Q[b * m + c] * xv[a]);
    if (G4)
        for (size_t a = 0; a < m; ++a)
            for (size_t b = 0; b < m; ++b)
                for (size_t c = 0; c < m; ++c)
                    for (size_t e = 0; e < m; ++e) {
                        const double xa = xv[a], xb = xv[b], xc = xv[c], xe = xv[e];
                        const double Qab = Q[a * m + b], Qac = Q[a * m + c], Qae = Q[a * m + e];
                        const double Qbc = Q[b * m + c], Qbe = Q[b * m + e], Qce = Q[c * m + e];
                        G4[((a * m + b) * m + c) * m + e] =
                            16.0 * F4 * xa * xb * xc * xe +
                            8.0 * F3 *
                                (Qab * xc * xe + Qac * xb * xe + Qae * xb * xc + Qbc * xa * xe +
                                 Qbe * xa * xc + Qce * xa * xb) +
                            4.0 * F2 * (Qab * Qce + Qac * Qbe + Qae * Qbc);
                    }
    sl_scores_from_logderivs(m, g, H, G3, G4, S1, S2, S3, S4);
    free(heap);
    return SL_OK;
}

static void student_free(void *vs) {
    free(vs);
}

static const sl_dist_type student_type = {"student",         student_sample, student_log_density,
                                          student_grad_hess, student_scores, student_free};

sl_status sl_dist_student_alloc(size_t d, double nu, sl_dist **out) {
    *out = NULL;
    if (d == 0) return sl_error(SL_EINVAL, "student: dimension must be at least 1");
    if (!(nu > 0.0) || !isfinite(nu))
        return sl_error(SL_EINVAL,
                        "student: degrees of freedom must be positive and finite, got %g", nu);
    student_state *s = malloc(sizeof *s);
    if (!s) return sl_error(SL_ENOMEM, "student: out of memory");
    s->nu = nu;
    s->alpha = 0.5 * (nu + (double)d);
    s->log_norm = lgamma(s->alpha) - lgamma(0.5 * nu) - 0.5 * (double)d * log(nu * M_PI);
    char name[64];
    snprintf(name, sizeof name, "student:%g", nu);
    const unsigned caps = SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD | SL_DIST_HESS |
                          SL_DIST_SCORE3 | SL_DIST_SCORE4 | SL_DIST_SMOOTH;
    return sl_dist_wrap(&student_type, s, d, caps, name, out);
}
