/* Polynomial control variates for the moments (s4.h).
 *
 * Stein's identity for an exact score S_m = D^m p / p: E[S_m(x) q(x)] =
 * E[D^m q(x)] for every smooth q of polynomial growth. With q the
 * least-squares polynomial of degree deg of the labels,
 *   E[S_m y] = E[S_m (y - q)] + E[D^m q],
 * and when deg = m the last term is a constant tensor known exactly from
 * q's leading coefficients. The residual y - q no longer carries the smooth,
 * large part of y (the mean label, a ReLU's linear growth and its curvature
 * on the scale of the data), which is most of the estimator's noise. With
 * deg < m the correction is zero. The fit's normal equations are summed over
 * blocks of rows by dsyrk in sample order, BLAS single-threaded, so the
 * result does not depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <lapacke.h>

#include "scoreloss/s4.h"
#include "scoreloss/status.h"

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

/* Rows per block of the normal equations. */
#define ROWS 256

size_t sl_detrend_terms(size_t k, int deg) {
    /* C(k + j - 1, j) monomials of degree j, summed over j = 0..deg. */
    size_t total = 0, c = 1;
    for (int j = 0; j <= deg; ++j) {
        total += c;
        c = c * (k + (size_t)j) / (size_t)(j + 1);
    }
    return total;
}

/* The monomials of degree 0..deg (<= 4) at z, in the order 1; z_a;
 * z_a z_b (a <= b); z_a z_b z_c (a <= b <= c); z_a z_b z_c z_e. */
static void monomials(size_t k, int deg, const double *z, double *phi) {
    size_t p = 0;
    phi[p++] = 1.0;
    if (deg >= 1)
        for (size_t a = 0; a < k; ++a) phi[p++] = z[a];
    if (deg >= 2)
        for (size_t a = 0; a < k; ++a)
            for (size_t b = a; b < k; ++b) phi[p++] = z[a] * z[b];
    if (deg >= 3)
        for (size_t a = 0; a < k; ++a)
            for (size_t b = a; b < k; ++b)
                for (size_t c = b; c < k; ++c) phi[p++] = z[a] * z[b] * z[c];
    if (deg >= 4)
        for (size_t a = 0; a < k; ++a)
            for (size_t b = a; b < k; ++b)
                for (size_t c = b; c < k; ++c) {
                    const double zabc = z[a] * z[b] * z[c];
                    for (size_t e = c; e < k; ++e) phi[p++] = zabc * z[e];
                }
}

/* dq = D^deg q for q = sum beta_t phi_t: the monomial with the sorted
 * indices (i_1..i_deg) contributes beta times the product of the factorials
 * of its index multiplicities at every ordering of those indices. The
 * leading monomials are the last C(k + deg - 1, deg) of phi, in the
 * lexicographic order of their sorted indices. */
static void derivative(size_t k, int deg, const double *beta, double *dq) {
    size_t len = 1;
    for (int t = 0; t < deg; ++t) len *= k;
    const double *lead = beta + sl_detrend_terms(k, deg - 1);
    size_t idx[4] = {0, 0, 0, 0};
    for (size_t e = 0; e < len; ++e) {
        size_t rest = e, s[4];
        for (int t = deg - 1; t >= 0; --t) {
            idx[t] = rest % k;
            rest /= k;
        }
        memcpy(s, idx, sizeof s);
        for (int i = 1; i < deg; ++i) /* sort the (at most four) indices */
            for (int j = i; j > 0 && s[j - 1] > s[j]; --j) {
                const size_t tmp = s[j];
                s[j] = s[j - 1];
                s[j - 1] = tmp;
            }
        /* Rank of the sorted tuple among sorted tuples of length deg,
         * lexicographic: count the tuples before it position by position. */
        size_t rank = 0, lo = 0;
        for (int t = 0; t < deg; ++t) {
            const int left = deg - t - 1; /* positions after this one */
            for (size_t v = lo; v < s[t]; ++v) {
                /* tuples with this position = v and the rest >= v, sorted */
                size_t c = 1;
                for (int j = 0; j < left; ++j) c = c * (k - v + (size_t)j) / (size_t)(j + 1);
                rank += c;
            }
            lo = s[t];
        }
        double mult = 1.0;
        for (int i = 0; i < deg;) {
            int j = i;
            while (j < deg && s[j] == s[i]) ++j;
            for (int f = 2; f <= j - i; ++f) mult *= f;
            i = j;
        }
        dq[e] = lead[rank] * mult;
    }
}

sl_status sl_detrend_cv(size_t n, size_t k, const double *Z, const double *y, int deg, double *r,
                        double *dq) {
    if (!Z || !y || !r || n == 0 || k == 0) return sl_error(SL_EINVAL, "detrend: empty input");
    if (deg < 0 || deg > 4) return sl_error(SL_EINVAL, "detrend: degree %d (0..4)", deg);
    const size_t np = sl_detrend_terms(k, deg);
    double *G = calloc(np * np + np + ROWS * np, sizeof *G);
    if (!G) return sl_error(SL_ENOMEM, "detrend: out of memory for %zu terms", np);
    double *b = G + np * np, *Phi = b + np;
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (size_t lo = 0; lo < n; lo += ROWS) {
        const size_t nb = n - lo < ROWS ? n - lo : ROWS;
        for (size_t j = 0; j < nb; ++j) monomials(k, deg, Z + (lo + j) * k, Phi + j * np);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)np, (int)nb, 1.0, Phi, (int)np, 1.0,
                    G, (int)np);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)nb, (int)np, 1.0, Phi, (int)np, y + lo, 1, 1.0,
                    b, 1);
    }
    for (size_t u = 0; u < np; ++u) G[u * np + u] *= 1.0 + 1e-10; /* against exact collinearity */
    sl_status st = SL_OK;
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)np, 1, G, (lapack_int)np, b, 1) != 0)
        st = sl_error(SL_ENUMERIC,
                      "detrend: the polynomial fit of degree %d of the labels is singular (%zu "
                      "terms, %zu rows)",
                      deg, np, n);
    for (size_t lo = 0; !st && lo < n; lo += ROWS) {
        const size_t nb = n - lo < ROWS ? n - lo : ROWS;
        double f[ROWS];
        for (size_t j = 0; j < nb; ++j) monomials(k, deg, Z + (lo + j) * k, Phi + j * np);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nb, (int)np, 1.0, Phi, (int)np, b, 1, 0.0, f,
                    1);
        for (size_t j = 0; j < nb; ++j) r[lo + j] = y[lo + j] - f[j];
    }
    openblas_set_num_threads(blas_threads);
    if (!st && dq) {
        if (deg == 0)
            dq[0] = b[0];
        else
            derivative(k, deg, b, dq);
    }
    free(G);
    return st;
}

sl_status sl_s4_detrend(size_t n, size_t k, const double *Z, const double *y, int deg, double *r) {
    if (deg < 0 || deg > 3) return sl_error(SL_EINVAL, "detrend: degree %d (0..3)", deg);
    return sl_detrend_cv(n, k, Z, y, deg, r, NULL);
}
