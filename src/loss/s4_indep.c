/* The whitened fourth moment of the factorised S_4 (independent
 * coordinates; see scoreloss/logdens.h).
 *
 * With l = sum_i l_i(x_i), G3 = sum_i l_i''' e_i^(x)3 and G4 = sum_i
 * l_i'''' e_i^(x)4, so contracted with P (rows p_i):
 *   sum_j y_j G4(P.,P.,P.,P.)           = sum_i (sum_j y_j l_i''''(x_ji)) p_i^(x)4
 *   sum_j y_j [g (x) G3](P.,P.,P.,P.)   = sum_i (sum_j y_j l_i'''(x_ji) P'g_j) (x) p_i^(x)3
 * and the four placements of the k-vector in the second are the 4 sym(g G3)
 * of METHOD.md section 2 (each placement counted once, as
 * sl_scores_from_logderivs does). The per-sample work is O(d k); the k^4
 * work is once per coordinate. */
#include "scoreloss/logdens.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"

sl_status sl_moments_tensor_indep(sl_moments *m, size_t n, size_t d, const double *X,
                                  const sl_indep_fit *fit) {
    if (!m || !X || !fit)
        return sl_error(SL_EINVAL, "moments: the factorised T needs the moments, X and a fit");
    if (n != m->n || d != m->d || fit->d != d)
        return sl_error(SL_EINVAL,
                        "moments: the factorised T got %zu x %zu samples and a fit of dimension "
                        "%zu for moments of %zu x %zu",
                        n, d, fit->d, m->n, m->d);
    for (size_t i = 0; i < d; ++i)
        if (!fit->coord[i]) return sl_error(SL_EINVAL, "moments: coordinate %zu has no fit", i + 1);
    const size_t k = m->k, kk = k * k;
    double *v = calloc(d * k, sizeof *v), *c4 = calloc(d, sizeof *c4);
    if (!v || !c4) {
        free(v);
        free(c4);
        return sl_error(SL_ENOMEM, "out of memory for the factorised T");
    }
    /* One coordinate per iteration, each summed over the samples in order:
     * the result does not depend on the number of threads. */
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (size_t i = 0; i < d; ++i) {
        const sl_logdens1d *f = fit->coord[i];
        double *vi = v + i * k, q = 0.0;
        for (size_t j = 0; j < n; ++j) {
            double l[5];
            sl_logdens1d_eval(f, X[j * d + i], l);
            const double y = m->y[j], yt = y * l[3];
            q += y * l[4];
            const double *gw = m->Gw + j * k;
            for (size_t a = 0; a < k; ++a) vi[a] += yt * gw[a];
        }
        c4[i] = q;
    }
    sl_status st = sl_moments_tensor(m);
    if (!st) {
        const double inv = 1.0 / (double)n;
        for (size_t i = 0; i < d; ++i) {
            const double *p = m->P + i * k, *vi = v + i * k, ci = c4[i] * inv;
            for (size_t a = 0; a < k; ++a)
                for (size_t b = 0; b < k; ++b) {
                    const double pab = p[a] * p[b], vpab = (vi[a] * p[b] + p[a] * vi[b]) * inv;
                    for (size_t c = 0; c < k; ++c) {
                        double *row = m->T + (a * k + b) * kk + c * k;
                        const double pabc = pab * p[c];
                        /* v in slot a or b, then in c, then in e. */
                        const double head = vpab * p[c] + pab * vi[c] * inv;
                        for (size_t e = 0; e < k; ++e)
                            row[e] += ci * pabc * p[e] + head * p[e] + pabc * vi[e] * inv;
                    }
                }
        }
        if (!sl_all_finite(kk * kk, m->T))
            st = sl_error(SL_ENUMERIC, "the factorised T has non-finite entries");
        else
            m->t_full = 1;
    }
    free(v);
    free(c4);
    return st;
}
