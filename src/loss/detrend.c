/* Control variates for the moments: polynomials and ridges (s4.h).
 *
 * Stein's identity for an exact score S_m = D^m p / p: E[S_m(x) q(x)] =
 * E[D^m q(x)] for every smooth q of polynomial growth. With q the
 * least-squares polynomial of degree deg of the labels,
 *   E[S_m y] = E[S_m (y - q)] + E[D^m q],
 * and when deg = m the last term is a constant tensor known exactly from
 * q's leading coefficients. The residual y - q no longer carries the smooth,
 * large part of y (the mean label, a ReLU's linear growth and its curvature
 * on the scale of the data), which is most of the estimator's noise. With
 * deg < m the correction is zero. The identity holds for any smooth q, so
 * sl_detrend_ridge_cv adds columns shaped like the network: smoothed ReLUs
 * of given directions, whose derivatives are averaged over the rows (the
 * refit passes of recover.c). The fit's normal equations are summed over
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

/* phi_s(t) = s log(1 + e^(t/s)): a ReLU smoothed on the scale s. */
static double softplus(double t, double s) {
    const double u = t / s;
    return s * (u > 0.0 ? u + log1p(exp(-u)) : log1p(exp(u)));
}

/* The logistic function sigma(u) = phi_1'(u), without overflow. */
static double logistic(double u) {
    return u >= 0.0 ? 1.0 / (1.0 + exp(-u)) : exp(u) / (1.0 + exp(u));
}

/* phi_s''(t) = sigma'(t/s) / s, sigma' = sigma(1 - sigma). */
static double softplus2(double t, double s) {
    const double sg = logistic(t / s);
    return sg * (1.0 - sg) / s;
}

/* phi_s''''(t) = sigma'''(t/s) / s^3, sigma''' = sigma'(1 - 6 sigma + 6 sigma^2). */
static double softplus4(double t, double s) {
    const double sg = logistic(t / s);
    return sg * (1.0 - sg) * (1.0 - 6.0 * sg + 6.0 * sg * sg) / (s * s * s);
}

/* The ridge columns phi_s(u_j'z + c_j) for the r rows u_j of U (r x k). */
typedef struct ridge_cols {
    size_t r;
    const double *U, *c;
    double s;
} ridge_cols;

static void design_row(size_t k, int deg, const ridge_cols *rc, const double *z, double *phi) {
    monomials(k, deg, z, phi);
    if (!rc) return;
    double *col = phi + sl_detrend_terms(k, deg);
    for (size_t j = 0; j < rc->r; ++j)
        col[j] = softplus(cblas_ddot((int)k, rc->U + j * k, 1, z, 1) + rc->c[j], rc->s);
}

/* Least squares of y on the design (the monomials of degree 0..deg, then
 * the ridge columns): the residual into r, the np coefficients into b. */
static sl_status fit(size_t n, size_t k, const double *Z, const double *y, int deg,
                     const ridge_cols *rc, double *r, double *b, size_t np) {
    double *G = calloc(np * np + ROWS * np, sizeof *G);
    if (!G) return sl_error(SL_ENOMEM, "detrend: out of memory for %zu terms", np);
    double *Phi = G + np * np;
    memset(b, 0, np * sizeof *b);
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (size_t lo = 0; lo < n; lo += ROWS) {
        const size_t nb = n - lo < ROWS ? n - lo : ROWS;
        for (size_t j = 0; j < nb; ++j) design_row(k, deg, rc, Z + (lo + j) * k, Phi + j * np);
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)np, (int)nb, 1.0, Phi, (int)np, 1.0,
                    G, (int)np);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)nb, (int)np, 1.0, Phi, (int)np, y + lo, 1, 1.0,
                    b, 1);
    }
    for (size_t u = 0; u < np; ++u) G[u * np + u] *= 1.0 + 1e-10; /* against exact collinearity */
    sl_status st = SL_OK;
    if (LAPACKE_dposv(LAPACK_ROW_MAJOR, 'U', (lapack_int)np, 1, G, (lapack_int)np, b, 1) != 0)
        st = sl_error(SL_ENUMERIC,
                      "detrend: the fit of degree %d of the labels is singular (%zu terms, %zu "
                      "rows)",
                      deg, np, n);
    for (size_t lo = 0; !st && lo < n; lo += ROWS) {
        const size_t nb = n - lo < ROWS ? n - lo : ROWS;
        double f[ROWS];
        for (size_t j = 0; j < nb; ++j) design_row(k, deg, rc, Z + (lo + j) * k, Phi + j * np);
        cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)nb, (int)np, 1.0, Phi, (int)np, b, 1, 0.0, f,
                    1);
        for (size_t j = 0; j < nb; ++j) r[lo + j] = y[lo + j] - f[j];
    }
    openblas_set_num_threads(blas_threads);
    free(G);
    return st;
}

sl_status sl_detrend_cv(size_t n, size_t k, const double *Z, const double *y, int deg, double *r,
                        double *dq) {
    if (!Z || !y || !r || n == 0 || k == 0) return sl_error(SL_EINVAL, "detrend: empty input");
    if (deg < 0 || deg > 4) return sl_error(SL_EINVAL, "detrend: degree %d (0..4)", deg);
    const size_t np = sl_detrend_terms(k, deg);
    double *b = malloc(np * sizeof *b);
    if (!b) return sl_error(SL_ENOMEM, "detrend: out of memory for %zu terms", np);
    sl_status st = fit(n, k, Z, y, deg, NULL, r, b, np);
    if (!st && dq) {
        if (deg == 0)
            dq[0] = b[0];
        else
            derivative(k, deg, b, dq);
    }
    free(b);
    return st;
}

/* Us, cs: the ridges u_j, c_j (nr x k, nr) divided by the standard
 * deviation of u_j'z over the n rows of Z, so that u_j'z + c_j has unit
 * spread. */
static sl_status scale_ridges(size_t n, size_t k, const double *Z, size_t nr, const double *U,
                              const double *c, double *Us, double *cs) {
    for (size_t j = 0; j < nr; ++j) {
        double sum = 0.0, sum2 = 0.0;
        for (size_t i = 0; i < n; ++i) {
            const double t = cblas_ddot((int)k, U + j * k, 1, Z + i * k, 1);
            sum += t;
            sum2 += t * t;
        }
        const double mean = sum / (double)n,
                     var = (sum2 - (double)n * mean * mean) / (double)(n - 1);
        if (!(var > 0.0) || !isfinite(var))
            return sl_error(SL_EINVAL, "detrend: ridge direction %zu is constant on the rows",
                            j + 1);
        const double f = 1.0 / sqrt(var);
        for (size_t a = 0; a < k; ++a) Us[j * k + a] = U[j * k + a] * f;
        cs[j] = c[j] * f;
    }
    return SL_OK;
}

sl_status sl_detrend_ridge_cv(size_t n, size_t k, const double *Z, const double *y, int deg,
                              int order, size_t nr, const double *U, const double *c, double s,
                              double *r, double *dq, double *coef) {
    if (!Z || !y || !r || n < 2 || k == 0 || (nr > 0 && (!U || !c)))
        return sl_error(SL_EINVAL, "detrend: empty input");
    if (deg < 0 || deg > 4) return sl_error(SL_EINVAL, "detrend: degree %d (0..4)", deg);
    if (order != 2 && order != 4)
        return sl_error(SL_EINVAL, "detrend: derivative of order %d (2 or 4)", order);
    if (!(s > 0.0 && isfinite(s)))
        return sl_error(SL_EINVAL, "detrend: smoothing scale of the ridge columns %g (need > 0)",
                        s);
    const size_t npoly = sl_detrend_terms(k, deg), np = npoly + nr;
    size_t len = 1;
    for (int t = 0; t < order; ++t) len *= k;
    /* b: the coefficients; Us, cs: the ridges scaled so that u'z + c has
     * unit standard deviation over the rows; mo: the mean of phi^(order). */
    double *b = malloc((np + nr * (k + 2)) * sizeof *b);
    if (!b) return sl_error(SL_ENOMEM, "detrend: out of memory for %zu terms", np);
    double *Us = b + np, *cs = Us + nr * k, *mo = cs + nr;
    sl_status st = scale_ridges(n, k, Z, nr, U, c, Us, cs);
    const ridge_cols rc = {.r = nr, .U = Us, .c = cs, .s = s};
    if (!st) st = fit(n, k, Z, y, deg, &rc, r, b, np);
    if (!st && coef) memcpy(coef, b + npoly, nr * sizeof *coef);
    if (!st && dq) {
        /* D^order q: the polynomial's leading coefficients when deg =
         * order, and per ridge a_j mean(phi_s^(order)(u_j'z + c_j)) u_j^(x order). */
        if (deg == order)
            derivative(k, order, b, dq);
        else
            memset(dq, 0, len * sizeof *dq);
        for (size_t j = 0; j < nr; ++j) {
            double acc = 0.0;
            for (size_t i = 0; i < n; ++i) {
                const double t = cblas_ddot((int)k, Us + j * k, 1, Z + i * k, 1) + cs[j];
                acc += order == 4 ? softplus4(t, s) : softplus2(t, s);
            }
            mo[j] = acc / (double)n;
        }
        for (size_t j = 0; j < nr; ++j) {
            const double *u = Us + j * k, f = b[npoly + j] * mo[j];
            for (size_t e = 0; e < len; ++e) {
                double v = f;
                for (size_t rest = e, t = 0; t < (size_t)order; ++t, rest /= k) v *= u[rest % k];
                dq[e] += v;
            }
        }
    }
    free(b);
    return st;
}

sl_status sl_detrend_ridge_rows(size_t n, size_t k, const double *Z, int order, size_t nr,
                                const double *U, const double *c, double s, const double *coef,
                                size_t nq, const size_t *qidx, size_t nb, const double *B,
                                double *out) {
    if (!Z || !out || n < 2 || k == 0 || (nr > 0 && (!U || !c || !coef)) || (nq > 0 && !qidx) ||
        (nb > 0 && !B))
        return sl_error(SL_EINVAL, "detrend: empty input");
    if (order != 2 && order != 4)
        return sl_error(SL_EINVAL, "detrend: derivative of order %d (2 or 4)", order);
    if (!(s > 0.0 && isfinite(s)))
        return sl_error(SL_EINVAL, "detrend: smoothing scale of the ridge columns %g (need > 0)",
                        s);
    for (size_t i = 0; i < nq; ++i)
        if (qidx[i] >= n) return sl_error(SL_EINVAL, "detrend: row index %zu of %zu", qidx[i], n);
    if (nr == 0 || nb == 0) {
        memset(out, 0, nq * nb * sizeof *out);
        return SL_OK;
    }
    /* Us, cs as the fit had them; ub[j * nb + col] = a_j (u_j'b_col)^order. */
    double *Us = malloc((nr * (k + 1) + nr * nb) * sizeof *Us);
    if (!Us) return sl_error(SL_ENOMEM, "detrend: out of memory for %zu ridges", nr);
    double *cs = Us + nr * k, *ub = cs + nr;
    sl_status st = scale_ridges(n, k, Z, nr, U, c, Us, cs);
    for (size_t j = 0; !st && j < nr; ++j)
        for (size_t col = 0; col < nb; ++col) {
            double t = 0.0;
            for (size_t a = 0; a < k; ++a) t += Us[j * k + a] * B[a * nb + col];
            ub[j * nb + col] = coef[j] * (order == 4 ? t * t * t * t : t * t);
        }
    for (size_t i = 0; !st && i < nq; ++i) {
        const double *z = Z + qidx[i] * k;
        double *o = out + i * nb;
        memset(o, 0, nb * sizeof *o);
        for (size_t j = 0; j < nr; ++j) {
            const double t = cblas_ddot((int)k, Us + j * k, 1, z, 1) + cs[j];
            const double f = order == 4 ? softplus4(t, s) : softplus2(t, s);
            for (size_t col = 0; col < nb; ++col) o[col] += f * ub[j * nb + col];
        }
    }
    free(Us);
    return st;
}

sl_status sl_s4_detrend(size_t n, size_t k, const double *Z, const double *y, int deg, double *r) {
    if (deg < 0 || deg > 3) return sl_error(SL_EINVAL, "detrend: degree %d (0..3)", deg);
    return sl_detrend_cv(n, k, Z, y, deg, r, NULL);
}
