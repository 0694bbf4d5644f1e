/* Accuracy of estimated scores against a distribution's exact ones. */
#include "score/score_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>

#include "core/linalg.h"

static void percentiles(double *v, size_t n, double out[5]) {
    static const double q[5] = {0.05, 0.25, 0.5, 0.75, 0.95};
    gsl_sort(v, 1, n);
    for (int k = 0; k < 5; ++k) out[k] = gsl_stats_quantile_from_sorted_data(v, 1, n, q[k]);
}

/* Spectral norm of a symmetric matrix: its largest |eigenvalue|. */
static double spectral_norm(size_t d, const double *A, double *w, double *V) {
    if (sl_sym_eigen(d, A, w, V)) return NAN;
    return fmax(fabs(w[0]), fabs(w[d - 1]));
}

sl_status sl_score_evaluate(const sl_dist *dist, const sl_scores *s, const double *Q, double radius,
                            sl_score_eval *out) {
    memset(out, 0, sizeof *out);
    const size_t d = s->d, n = s->n;
    if (sl_dist_dim(dist) != d)
        return sl_error(SL_EINVAL, "distribution '%s' has dimension %zu but the scores have %zu",
                        sl_dist_name(dist), sl_dist_dim(dist), d);
    if (!(radius > 0)) return sl_error(SL_EINVAL, "evaluation radius must be positive");
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx) return sl_error(SL_ENOMEM, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; ++i) {
        double r2 = 0;
        for (size_t a = 0; a < d; ++a) r2 += Q[i * d + a] * Q[i * d + a];
        if (r2 <= radius * radius) idx[m++] = i;
    }
    if (m == 0) {
        free(idx);
        return sl_error(SL_EINVAL, "no query point lies within radius %g of the origin", radius);
    }
    const size_t d4 = d * d * d * d;
    double *gerr = malloc(m * sizeof *gerr), *gnorm = malloc(m * sizeof *gnorm);
    double *s2 = malloc(m * sizeof *s2), *s4 = malloc(m * sizeof *s4);
    sl_status status = (gerr && gnorm && s2 && s4) ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    int failed = 0;
#ifdef _OPENMP
#pragma omp parallel if (m > 16) reduction(| : failed)
#endif
    {
        double *buf = status ? NULL : malloc((2 * d + 6 * d * d + 2 * d4) * sizeof *buf);
        if (!buf) failed = 1;
        double *g = buf, *H = g + d, *A = H + d * d, *B = A + d * d, *w = B + d * d, *V = w + d * d,
               *T1 = V + d * d, *T2 = T1 + d4, *tmp = T2 + d4;
        (void)tmp;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 16)
#endif
        for (size_t k = 0; k < m; ++k) {
            if (failed) continue;
            const size_t i = idx[k];
            if (sl_dist_grad_hess(dist, 1, Q + i * d, g, H)) {
                failed = 1;
                continue;
            }
            const double *gh = s->G + i * d, *Hh = s->H + i * d * d;
            double e = 0, nn = 0;
            for (size_t a = 0; a < d; ++a) {
                e += (gh[a] - g[a]) * (gh[a] - g[a]);
                nn += g[a] * g[a];
            }
            gerr[k] = e;
            gnorm[k] = nn;
            /* S2 = g g' + H for both. */
            sl_scores_from_logderivs(d, g, H, NULL, NULL, NULL, A, NULL, NULL);
            sl_scores_from_logderivs(d, gh, Hh, NULL, NULL, NULL, B, NULL, NULL);
            double ref = spectral_norm(d, A, w, V);
            for (size_t t = 0; t < d * d; ++t) B[t] -= A[t];
            s2[k] = spectral_norm(d, B, w, V) / fmax(ref, 1e-300);
            /* Locally quadratic S4 from each (g, H): Frobenius norms. */
            sl_scores_from_logderivs(d, g, H, NULL, NULL, NULL, NULL, NULL, T1);
            sl_scores_from_logderivs(d, gh, Hh, NULL, NULL, NULL, NULL, NULL, T2);
            double num = 0, den = 0;
            for (size_t t = 0; t < d4; ++t) {
                num += (T2[t] - T1[t]) * (T2[t] - T1[t]);
                den += T1[t] * T1[t];
            }
            s4[k] = sqrt(num) / fmax(sqrt(den), 1e-300);
        }
        free(buf);
    }
    if (status == SL_OK && failed)
        status =
            sl_error(SL_ENUMERIC, "evaluating exact scores of '%s' failed", sl_dist_name(dist));
    if (status == SL_OK) {
        double se = 0, sn = 0;
        for (size_t k = 0; k < m; ++k) {
            se += gerr[k];
            sn += gnorm[k];
        }
        out->count = m;
        out->g_rel_mse = se / fmax(sn, 1e-300);
        percentiles(s2, m, out->s2_err);
        percentiles(s4, m, out->s4_err);
    }
    free(idx);
    free(gerr);
    free(gnorm);
    free(s2);
    free(s4);
    return status;
}
