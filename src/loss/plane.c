/* Losses on planes and on the angle square (plane.h).
 *
 * Every grid point is one call of the loss's own objective (tensor mode for
 * the landscape losses, a full pass for the squared loss), so the pictures
 * show exactly the function the optimiser minimises; the constraint and
 * the tangent projection of the gradient are applied here. */
#include "scoreloss/plane.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#include "core/linalg.h"
#include "scoreloss/rng.h"

/* ---- moments ----------------------------------------------------------------- */

sl_status sl_plane_moments(const sl_recover_options *opt, size_t n, size_t d, const double *X,
                           const double *y, sl_moments **out, sl_recover_route *route) {
    if (!out) return sl_error(SL_EINVAL, "plane moments: no output pointer");
    *out = NULL;
    if (!opt || !X || !y) return sl_error(SL_EINVAL, "plane moments: missing argument");
    return sl_recover_moments(opt, n, d, X, y, out, route, NULL);
}

/* ---- between input space and whitened space ----------------------------------- */

sl_status sl_plane_whiten(const sl_moments *m, const double *W, double *B) {
    if (!m || !W || !B) return sl_error(SL_EINVAL, "whiten: missing argument");
    const size_t k = m->k, d = m->d;
    double *b = malloc(k * sizeof *b);
    if (!b) return sl_error(SL_ENOMEM, "out of memory");
    sl_status st = SL_OK;
    for (size_t i = 0; i < k && !st; ++i) {
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)k, 1.0, m->P, (int)k, W + i * d, 1, 0.0,
                    b, 1);
        const double nrm = cblas_dnrm2((int)k, b, 1);
        if (!(nrm > 0.0) || !isfinite(nrm)) {
            st = sl_error(SL_ENUMERIC,
                          "row %zu has no component in the span of the top %zu eigenvectors of M2",
                          i + 1, k);
            break;
        }
        for (size_t a = 0; a < k; ++a) B[a * k + i] = b[a] / nrm;
    }
    free(b);
    return st;
}

sl_status sl_plane_unwhiten(const sl_moments *m, const double *B, double *W) {
    if (!m || !B || !W) return sl_error(SL_EINVAL, "unwhiten: missing argument");
    const size_t k = m->k, d = m->d;
    /* W = B' M' with M = U |Lambda|^{1/2} (d x k), as sl_recover maps back. */
    double *M = malloc(d * k * sizeof *M);
    if (!M) return sl_error(SL_ENOMEM, "out of memory");
    for (size_t j = 0; j < d; ++j)
        for (size_t a = 0; a < k; ++a) M[j * k + a] = m->U[j * k + a] * sqrt(fabs(m->evals[a]));
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)d, (int)k, 1.0, B, (int)k, M,
                (int)k, 0.0, W, (int)d);
    free(M);
    return SL_OK;
}

/* ---- the landscape losses ------------------------------------------------------ */

static sl_status check_grid(size_t nu, const double *u, size_t nv, const double *v,
                            const double *loss, const double *grad_norm) {
    if (!u || !v || !loss || !grad_norm) return sl_error(SL_EINVAL, "plane: missing grid array");
    if (nu == 0 || nv == 0) return sl_error(SL_EINVAL, "plane: empty grid (%zu x %zu)", nu, nv);
    if (nu > SIZE_MAX / nv) return sl_error(SL_EINVAL, "plane: grid too large");
    if (!sl_all_finite(nu, u) || !sl_all_finite(nv, v))
        return sl_error(SL_EINVAL, "plane: non-finite grid coordinates");
    return SL_OK;
}

static sl_status landscape_for(sl_moments *m, const sl_landscape_options *lo, sl_landscape **L) {
    if (!m || !lo) return sl_error(SL_EINVAL, "plane: missing argument");
    if (!m->T) return sl_error(SL_EINVAL, "plane: the moments have no tensor T");
    sl_landscape_options o = *lo;
    o.tensor = 1;
    return sl_landscape_alloc(m, &o, 1, L);
}

/* The gradient G (k x k) projected onto the tangent space of the constraint
 * at B; returns its norm. */
static double tangent_norm(size_t k, sl_projection proj, const double *B, double *G, double *S) {
    if (proj == SL_PROJ_SPHERE) {
        for (size_t j = 0; j < k; ++j) {
            double gb = 0.0;
            for (size_t a = 0; a < k; ++a) gb += G[a * k + j] * B[a * k + j];
            for (size_t a = 0; a < k; ++a) G[a * k + j] -= gb * B[a * k + j];
        }
    } else if (proj == SL_PROJ_ORTHONORMAL) {
        /* Stiefel (here the orthogonal group): G - B sym(B'G). */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)k, (int)k, 1.0, B, (int)k,
                    G, (int)k, 0.0, S, (int)k);
        for (size_t a = 0; a < k; ++a)
            for (size_t b = a; b < k; ++b) {
                const double s = 0.5 * (S[a * k + b] + S[b * k + a]);
                S[a * k + b] = S[b * k + a] = s;
            }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)k, (int)k, -1.0, B,
                    (int)k, S, (int)k, 1.0, G, (int)k);
    }
    return cblas_dnrm2((int)(k * k), G, 1);
}

sl_status sl_plane_landscape(sl_moments *m, const sl_landscape_options *lo, sl_projection proj,
                             const double *C, const double *D1, const double *D2, size_t nu,
                             const double *u, size_t nv, const double *v, double *loss,
                             double *grad_norm) {
    sl_status st = check_grid(nu, u, nv, v, loss, grad_norm);
    if (st) return st;
    if (!C || !D1 || !D2) return sl_error(SL_EINVAL, "plane: missing centre or direction");
    if ((int)proj < SL_PROJ_NONE || (int)proj > SL_PROJ_ORTHONORMAL)
        return sl_error(SL_EINVAL, "plane: unknown constraint %d", (int)proj);
    sl_landscape *L = NULL;
    if ((st = landscape_for(m, lo, &L))) return st;
    const size_t k = m->k, kk = k * k;
    double *B = malloc(kk * sizeof *B), *G = malloc(kk * sizeof *G), *S = malloc(kk * sizeof *S);
    if (!B || !G || !S) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    const size_t dummy = 0;
    for (size_t j = 0; j < nv; ++j)
        for (size_t i = 0; i < nu; ++i) {
            for (size_t p = 0; p < kk; ++p) B[p] = C[p] + u[i] * D1[p] + v[j] * D2[p];
            double f = NAN, gn = NAN;
            /* A point the constraint cannot take (a zero column, a singular
             * matrix for the QR) has no value: NAN, for the caller to see. */
            if (proj == SL_PROJ_NONE || sl_project_columns(proj, k, k, B) == SL_OK) {
                f = sl_landscape_objective(kk, B, G, &dummy, 1, L);
                gn = tangent_norm(k, proj, B, G, S);
            } else {
                sl_error_clear();
            }
            loss[j * nu + i] = f;
            grad_norm[j * nu + i] = gn;
        }
done:
    free(B);
    free(G);
    free(S);
    sl_landscape_free(L);
    return st;
}

sl_status sl_plane_landscape_angles(sl_moments *m, const sl_landscape_options *lo, size_t nu,
                                    const double *u, size_t nv, const double *v, double *loss,
                                    double *grad_norm) {
    sl_status st = check_grid(nu, u, nv, v, loss, grad_norm);
    if (st) return st;
    if (!m) return sl_error(SL_EINVAL, "plane: missing moments");
    if (m->k != 2)
        return sl_error(SL_EINVAL, "the angles parametrisation needs k = 2, got k = %zu", m->k);
    sl_landscape *L = NULL;
    if ((st = landscape_for(m, lo, &L))) return st;
    const size_t dummy = 0;
    double B[4], G[4];
    for (size_t j = 0; j < nv; ++j)
        for (size_t i = 0; i < nu; ++i) {
            const double c1 = cos(u[i]), s1 = sin(u[i]), c2 = cos(v[j]), s2 = sin(v[j]);
            B[0] = c1;
            B[2] = s1;
            B[1] = c2;
            B[3] = s2;
            const double f = sl_landscape_objective(4, B, G, &dummy, 1, L);
            const double du = -s1 * G[0] + c1 * G[2], dv = -s2 * G[1] + c2 * G[3];
            loss[j * nu + i] = f;
            grad_norm[j * nu + i] = hypot(du, dv);
        }
    sl_landscape_free(L);
    return SL_OK;
}

/* ---- the squared loss ----------------------------------------------------------- */

static size_t *all_rows(size_t n) {
    size_t *b = malloc(n * sizeof *b);
    if (b)
        for (size_t i = 0; i < n; ++i) b[i] = i;
    return b;
}

sl_status sl_plane_l2(size_t n, size_t d, const double *X, const double *y, size_t k, sl_act act,
                      const double *C, const double *D1, const double *D2, size_t nu,
                      const double *u, size_t nv, const double *v, double *loss,
                      double *grad_norm) {
    sl_status st = check_grid(nu, u, nv, v, loss, grad_norm);
    if (st) return st;
    if (!X || !y || !C || !D1 || !D2) return sl_error(SL_EINVAL, "plane: missing argument");
    if (n == 0 || d == 0 || k == 0) return sl_error(SL_EINVAL, "plane: empty problem");
    sl_l2 *L = NULL;
    if ((st = sl_l2_alloc(n, d, X, y, k, act, n, &L))) return st;
    const size_t np = k * d + k;
    size_t *rows = all_rows(n);
    double *x = malloc(np * sizeof *x), *g = malloc(np * sizeof *g);
    if (!rows || !x || !g) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < nv; ++j)
        for (size_t i = 0; i < nu; ++i) {
            for (size_t p = 0; p < np; ++p) x[p] = C[p] + u[i] * D1[p] + v[j] * D2[p];
            const double f = sl_l2_objective(np, x, g, rows, n, L);
            if (!isfinite(f)) {
                st = sl_error(SL_ENUMERIC, "the squared loss is not finite at (u, v) = (%g, %g)",
                              u[i], v[j]);
                goto done;
            }
            loss[j * nu + i] = f;
            grad_norm[j * nu + i] = cblas_dnrm2((int)np, g, 1);
        }
done:
    free(rows);
    free(x);
    free(g);
    sl_l2_free(L);
    return st;
}

sl_status sl_plane_l2_angles(const sl_moments *m, size_t n, const double *X, const double *y,
                             sl_act act, size_t nu, const double *u, size_t nv, const double *v,
                             double *loss, double *grad_norm) {
    sl_status st = check_grid(nu, u, nv, v, loss, grad_norm);
    if (st) return st;
    if (!m || !X || !y) return sl_error(SL_EINVAL, "plane: missing argument");
    if (m->k != 2)
        return sl_error(SL_EINVAL, "the angles parametrisation needs k = 2, got k = %zu", m->k);
    const size_t k = 2, d = m->d, np = k * d + k;
    if (n < 1) return sl_error(SL_EINVAL, "plane: no rows");
    sl_l2 *L = NULL;
    if ((st = sl_l2_alloc(n, d, X, y, k, act, n, &L))) return st;
    size_t *rows = all_rows(n);
    double *M = malloc(d * k * sizeof *M), *W = malloc(k * d * sizeof *W);
    double *x = malloc(np * sizeof *x), *g = malloc(np * sizeof *g), *q = malloc(d * sizeof *q);
    double *nrm = malloc(k * sizeof *nrm);
    if (!rows || !M || !W || !x || !g || !q || !nrm) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t a = 0; a < d; ++a)
        for (size_t c = 0; c < k; ++c) M[a * k + c] = m->U[a * k + c] * sqrt(fabs(m->evals[c]));
    for (size_t j = 0; j < nv; ++j)
        for (size_t i = 0; i < nu; ++i) {
            const double t[2] = {u[i], v[j]};
            for (size_t c = 0; c < k; ++c) {
                const double b[2] = {cos(t[c]), sin(t[c])};
                cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, 2, 1.0, M, 2, b, 1, 0.0, W + c * d,
                            1);
                nrm[c] = cblas_dnrm2((int)d, W + c * d, 1);
                cblas_dscal((int)d, 1.0 / nrm[c], W + c * d, 1);
            }
            if ((st = sl_second_layer_fit(n, d, X, y, k, act, W, x, x + k * d, NULL))) goto done;
            const double f = sl_l2_objective(np, x, g, rows, n, L);
            if (!isfinite(f)) {
                st = sl_error(SL_ENUMERIC, "the squared loss is not finite at angles (%g, %g)",
                              u[i], v[j]);
                goto done;
            }
            /* d/dt_c of s_c w_c(t), w_c = M b / |M b|: s_c (I - w w') M b' / |M b|. */
            double dt[2];
            for (size_t c = 0; c < k; ++c) {
                const double bp[2] = {-sin(t[c]), cos(t[c])};
                cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, 2, 1.0, M, 2, bp, 1, 0.0, q, 1);
                const double wq = cblas_ddot((int)d, W + c * d, 1, q, 1);
                cblas_daxpy((int)d, -wq, W + c * d, 1, q, 1);
                const double s = cblas_ddot((int)d, x + c * d, 1, W + c * d, 1) < 0.0 ? -1.0 : 1.0;
                dt[c] = s * cblas_ddot((int)d, g + c * d, 1, q, 1) / nrm[c];
            }
            loss[j * nu + i] = f;
            grad_norm[j * nu + i] = hypot(dt[0], dt[1]);
        }
done:
    free(rows);
    free(M);
    free(W);
    free(x);
    free(g);
    free(q);
    free(nrm);
    sl_l2_free(L);
    return st;
}

/* ---- directions ------------------------------------------------------------------ */

sl_status sl_plane_directions(size_t nparam, size_t k, sl_projection proj, const double *C,
                              uint64_t seed, int fixed, double *D1, double *D2) {
    if (!C || !D1 || !D2 || nparam == 0) return sl_error(SL_EINVAL, "directions: missing argument");
    const int tangent = proj != SL_PROJ_NONE && k * k == nparam;
    if (tangent && proj == SL_PROJ_ORTHONORMAL && k < 3)
        return sl_error(SL_EINVAL,
                        "directions: the orthonormal %zu x %zu matrices have a "
                        "tangent space of dimension %zu, no plane: use the sphere",
                        k, k, k * (k - 1) / 2);
    gsl_rng *rng = sl_rng_alloc(seed, 0);
    if (!rng) return sl_error(SL_ENOMEM, "out of memory");
    for (int which = fixed ? 1 : 0; which < 2; ++which) {
        double *D = which ? D2 : D1;
        for (size_t p = 0; p < nparam; ++p) D[p] = gsl_ran_gaussian(rng, 1.0);
        if (tangent && proj == SL_PROJ_ORTHONORMAL) {
            /* The tangent space of the orthonormal matrices at C (for C
             * orthonormal): D - C sym(C'D), i.e. C times a skew matrix. */
            double *S = malloc(k * k * sizeof *S);
            if (!S) {
                gsl_rng_free(rng);
                return sl_error(SL_ENOMEM, "out of memory");
            }
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)k, (int)k, 1.0, C,
                        (int)k, D, (int)k, 0.0, S, (int)k);
            for (size_t a = 0; a < k; ++a)
                for (size_t b = a; b < k; ++b)
                    S[a * k + b] = S[b * k + a] = 0.5 * (S[a * k + b] + S[b * k + a]);
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)k, (int)k, -1.0, C,
                        (int)k, S, (int)k, 1.0, D, (int)k);
            free(S);
        } else if (tangent)
            for (size_t j = 0; j < k; ++j) {
                double cc = 0.0, dc = 0.0;
                for (size_t a = 0; a < k; ++a) {
                    cc += C[a * k + j] * C[a * k + j];
                    dc += D[a * k + j] * C[a * k + j];
                }
                if (cc > 0.0)
                    for (size_t a = 0; a < k; ++a) D[a * k + j] -= dc / cc * C[a * k + j];
            }
    }
    gsl_rng_free(rng);
    const double n1 = cblas_dnrm2((int)nparam, D1, 1);
    if (!(n1 > 0.0))
        return sl_error(SL_EINVAL, "directions: the first direction is zero (the two points of "
                                   "the plane coincide)");
    const double d12 = cblas_ddot((int)nparam, D1, 1, D2, 1);
    const double n2_before = cblas_dnrm2((int)nparam, D2, 1);
    cblas_daxpy((int)nparam, -d12 / (n1 * n1), D1, 1, D2, 1);
    const double n2 = cblas_dnrm2((int)nparam, D2, 1);
    /* Nothing left but rounding: the tangent space is one-dimensional (the
     * orthonormal 2 x 2 matrices form a circle) or nparam is 1. */
    if (!(n2 > 1e-8 * n2_before))
        return sl_error(SL_EINVAL, "directions: no second direction orthogonal to the first (the "
                                   "constraint's tangent space is one-dimensional here: for k = 2 "
                                   "use the sphere)");
    double scale = fixed ? n1 : cblas_dnrm2((int)nparam, C, 1);
    if (!(scale > 0.0)) scale = 1.0;
    if (!fixed) cblas_dscal((int)nparam, scale / n1, D1, 1);
    cblas_dscal((int)nparam, scale / n2, D2, 1);
    return SL_OK;
}
