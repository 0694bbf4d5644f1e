/* Gaussians and Gaussian mixtures (METHOD.md section 2): N(0, I), N(m, C) and
 * sum_c pi_c N(m_c, C_c) from a parameter file, the symmetric two-bump
 * mixture gmm2 and the anisotropic three-component mixture agmm. Every
 * component's log-density is exactly quadratic, so the exact scores are
 * responsibility-weighted sums of the quadratic formula; and every linear
 * projection z = U'x of a Gaussian mixture is again one (sl_dist_marginal). */
#include "model/dist_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#include "core/linalg.h"
#include "scoreloss/csv.h"

/* Per-call scratch up to this many doubles lives on the stack (16 KiB);
 * beyond it one allocation per call serves every component. */
#define SCRATCH_STACK 2048

typedef struct {
    size_t K, d;
    int standard;             /* N(0, I): skip the matrix algebra */
    double *weight;           /* K, summing to one */
    double *mean;             /* K x d */
    double *chol;             /* K x d x d, lower Cholesky factors of the covariances */
    double *prec;             /* K x d x d, precisions P_c = C_c^{-1} */
    double *log_norm;         /* K: log pi_c - (d/2) log(2 pi) - (1/2) log det C_c */
    gsl_ran_discrete_t *pick; /* component sampler, NULL when K == 1; read-only when sampling */
} gmm_state;

static void gmm_free(void *vs) {
    gmm_state *s = vs;
    if (!s) return;
    free(s->weight);
    free(s->mean);
    free(s->chol);
    free(s->prec);
    free(s->log_norm);
    if (s->pick) gsl_ran_discrete_free(s->pick);
    free(s);
}

static gmm_state *gmm_state_alloc(size_t K, size_t d) {
    gmm_state *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->K = K;
    s->d = d;
    s->weight = malloc(K * sizeof *s->weight);
    s->mean = malloc(K * d * sizeof *s->mean);
    s->chol = malloc(K * d * d * sizeof *s->chol);
    s->prec = malloc(K * d * d * sizeof *s->prec);
    s->log_norm = malloc(K * sizeof *s->log_norm);
    if (!s->weight || !s->mean || !s->chol || !s->prec || !s->log_norm) {
        gmm_free(s);
        return NULL;
    }
    return s;
}

/* Fills chol, prec and log_norm from the covariances (K x d x d, read from
 * prec and overwritten) and the normalised weights; builds the component
 * sampler. source names the parameters in messages. */
static sl_status gmm_finish(gmm_state *s, const char *source) {
    const size_t d = s->d, dd = d * d;
    for (size_t c = 0; c < s->K; ++c) {
        char what[600];
        snprintf(what, sizeof what, "%s: covariance of component %zu", source, c + 1);
        double *L = s->chol + c * dd, *P = s->prec + c * dd;
        sl_status st = sl_cholesky(d, P, L, what);
        if (st) return st;
        double logdet = 0.0;
        for (size_t i = 0; i < d; ++i) logdet += 2.0 * log(L[i * d + i]);
        st = sl_spd_inverse(d, P, P, NULL, what);
        if (st) return st;
        if (!sl_all_finite(dd, P) || !isfinite(logdet))
            return sl_error(SL_ENUMERIC, "%s is too ill-conditioned to invert", what);
        s->log_norm[c] = log(s->weight[c]) - 0.5 * (double)d * log(2.0 * M_PI) - 0.5 * logdet;
    }
    if (s->K > 1) {
        s->pick = gsl_ran_discrete_preproc(s->K, s->weight);
        if (!s->pick)
            return sl_error(SL_ENOMEM, "%s: out of memory for the component sampler", source);
    }
    return SL_OK;
}

/* ---- sampling --------------------------------------------------------------- */

static sl_status gmm_sample(const void *vs, size_t d, size_t n, gsl_rng *rng, double *X) {
    const gmm_state *s = vs;
    for (size_t i = 0; i < n; ++i) {
        double *x = X + i * d;
        size_t c = s->pick ? gsl_ran_discrete(rng, s->pick) : 0;
        for (size_t j = 0; j < d; ++j) x[j] = gsl_ran_gaussian(rng, 1.0);
        if (s->standard) continue;
        /* x = m_c + L_c z */
        cblas_dtrmv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, (int)d,
                    s->chol + c * d * d, (int)d, x, 1);
        cblas_daxpy((int)d, 1.0, s->mean + c * d, 1, x, 1);
    }
    return SL_OK;
}

/* ---- pointwise quantities ---------------------------------------------------- */

/* Component c at x: returns log(pi_c N(x; m_c, C_c)) and, when gc is not
 * NULL, g_c = -P_c (x - m_c), both through the Cholesky factor (solves are
 * better conditioned than products with P_c). y is d scratch; gc may be y. */
static double component_eval(const gmm_state *s, size_t c, const double *x, double *y, double *gc) {
    const size_t d = s->d;
    if (s->standard) {
        double q = cblas_ddot((int)d, x, 1, x, 1);
        if (gc)
            for (size_t j = 0; j < d; ++j) gc[j] = -x[j];
        return s->log_norm[c] - 0.5 * q;
    }
    const double *L = s->chol + c * d * d, *m = s->mean + c * d;
    for (size_t j = 0; j < d; ++j) y[j] = x[j] - m[j];
    /* y = L^{-1} (x - m), q = |y|^2 */
    cblas_dtrsv(CblasRowMajor, CblasLower, CblasNoTrans, CblasNonUnit, (int)d, L, (int)d, y, 1);
    double q = cblas_ddot((int)d, y, 1, y, 1);
    if (gc) {
        /* C^{-1} (x - m) = L^{-T} y */
        if (gc != y) memcpy(gc, y, d * sizeof *gc);
        cblas_dtrsv(CblasRowMajor, CblasLower, CblasTrans, CblasNonUnit, (int)d, L, (int)d, gc, 1);
        cblas_dscal((int)d, -1.0, gc, 1);
    }
    return s->log_norm[c] - 0.5 * q;
}

/* Posterior responsibilities r (K) at x from the per-component logs lc (K,
 * overwritten by r) by log-sum-exp; returns log p(x). */
static double responsibilities(size_t K, double *lc) {
    double top = -INFINITY;
    for (size_t c = 0; c < K; ++c)
        if (lc[c] > top) top = lc[c];
    if (!isfinite(top)) return top; /* every component underflowed to -inf, or NaN */
    double sum = 0.0;
    for (size_t c = 0; c < K; ++c) {
        lc[c] = exp(lc[c] - top);
        sum += lc[c];
    }
    for (size_t c = 0; c < K; ++c) lc[c] /= sum;
    return top + log(sum);
}

/* Every component's log-density is -inf (or NaN) at x: no responsibilities. */
static sl_status far_point_error(const double *x) {
    return sl_error(SL_ENUMERIC,
                    "Gaussian mixture: every component's density underflows at the point "
                    "(x1 = %g): no responsibilities",
                    x[0]);
}

/* Scratch for one call: a stack buffer when small enough, else one malloc. */
typedef struct {
    double stack[SCRATCH_STACK];
    double *heap;
} scratch;

static double *scratch_get(scratch *sc, size_t n) {
    sc->heap = NULL;
    if (n <= SCRATCH_STACK) return sc->stack;
    sc->heap = malloc(n * sizeof *sc->heap);
    return sc->heap;
}

static sl_status gmm_log_density(const void *vs, size_t d, const double *x, double *logp) {
    const gmm_state *s = vs;
    const size_t K = s->K;
    scratch sc;
    double *buf = scratch_get(&sc, d + K);
    if (!buf) return sl_error(SL_ENOMEM, "out of memory evaluating a Gaussian mixture");
    double *y = buf, *lc = y + d;
    for (size_t c = 0; c < K; ++c) lc[c] = component_eval(s, c, x, y, NULL);
    *logp = responsibilities(K, lc);
    free(sc.heap);
    return SL_OK;
}

static sl_status gmm_grad_hess(const void *vs, size_t d, const double *x, double *g, double *H) {
    const gmm_state *s = vs;
    const size_t K = s->K, dd = d * d;
    if (K == 1) {
        /* One component: H = -P exactly, without the mixture's cancellation. */
        component_eval(s, 0, x, g, g);
        if (H)
            for (size_t i = 0; i < dd; ++i) H[i] = -s->prec[i];
        return SL_OK;
    }
    scratch sc;
    double *buf = scratch_get(&sc, d + K + K * d);
    if (!buf) return sl_error(SL_ENOMEM, "out of memory evaluating a Gaussian mixture");
    double *y = buf, *r = y + d, *gc = r + K;
    for (size_t c = 0; c < K; ++c) r[c] = component_eval(s, c, x, y, gc + c * d);
    if (!isfinite(responsibilities(K, r))) {
        free(sc.heap);
        return far_point_error(x);
    }
    /* g = sum_c r_c g_c */
    memset(g, 0, d * sizeof *g);
    for (size_t c = 0; c < K; ++c)
        if (r[c] != 0.0) cblas_daxpy((int)d, r[c], gc + c * d, 1, g, 1);
    if (H) {
        /* H = sum_c r_c (g_c g_c' - P_c) - g g' */
        memset(H, 0, dd * sizeof *H);
        for (size_t c = 0; c < K; ++c) {
            if (r[c] == 0.0) continue;
            cblas_dger(CblasRowMajor, (int)d, (int)d, r[c], gc + c * d, 1, gc + c * d, 1, H,
                       (int)d);
            cblas_daxpy((int)dd, -r[c], s->prec + c * dd, 1, H, 1);
        }
        cblas_dger(CblasRowMajor, (int)d, (int)d, -1.0, g, 1, g, 1, H, (int)d);
    }
    free(sc.heap);
    return SL_OK;
}

/* grad^j p / p = sum_c r_c grad^j p_c / p_c, so each S_j is the
 * responsibility-weighted sum of the components' quadratic-formula scores. */
static sl_status gmm_scores(const void *vs, size_t d, const double *x, size_t m, const double *V,
                            double *S1, double *S2, double *S3, double *S4) {
    const gmm_state *s = vs;
    if (m == 0) return SL_OK;
    const size_t K = s->K, m2 = m * m, m3 = m2 * m, m4 = m3 * m;
    /* Per-component outputs go to temporaries only when there is a sum. */
    const size_t ntmp = K > 1 ? (S1 ? m : 0) + (S2 ? m2 : 0) + (S3 ? m3 : 0) + (S4 ? m4 : 0) : 0;
    scratch sc;
    double *buf = scratch_get(&sc, d + K + K * d + d * m + m + m2 + ntmp);
    if (!buf) return sl_error(SL_ENOMEM, "out of memory for Gaussian-mixture scores");
    double *y = buf, *r = y + d, *gc = r + K, *work = gc + K * d, *gv = work + d * m, *Hv = gv + m;
    /* T1..T4: where component scores go (the outputs themselves when K == 1). */
    double *T1 = S1, *T2 = S2, *T3 = S3, *T4 = S4;
    if (K > 1) {
        double *t = Hv + m2;
        if (S1) {
            T1 = t;
            t += m;
        }
        if (S2) {
            T2 = t;
            t += m2;
        }
        if (S3) {
            T3 = t;
            t += m3;
        }
        if (S4) T4 = t;
    }

    for (size_t c = 0; c < K; ++c) r[c] = component_eval(s, c, x, y, gc + c * d);
    if (K == 1) {
        r[0] = 1.0;
    } else {
        if (!isfinite(responsibilities(K, r))) {
            free(sc.heap);
            return far_point_error(x);
        }
        if (S1) memset(S1, 0, m * sizeof *S1);
        if (S2) memset(S2, 0, m2 * sizeof *S2);
        if (S3) memset(S3, 0, m3 * sizeof *S3);
        if (S4) memset(S4, 0, m4 * sizeof *S4);
    }
    for (size_t c = 0; c < K; ++c) {
        if (r[c] == 0.0) continue;
        sl_project_vec(d, m, V, gc + c * d, gv);
        if (s->standard) {
            /* V'(-I)V */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m, (int)d, -1.0, V,
                        (int)m, V, (int)m, 0.0, Hv, (int)m);
        } else {
            sl_project_sym(d, m, V, s->prec + c * d * d, Hv, work);
            cblas_dscal((int)m2, -1.0, Hv, 1);
        }
        sl_scores_from_logderivs(m, gv, Hv, NULL, NULL, T1, T2, T3, T4);
        if (K == 1) break;
        if (S1) cblas_daxpy((int)m, r[c], T1, 1, S1, 1);
        if (S2) cblas_daxpy((int)m2, r[c], T2, 1, S2, 1);
        if (S3) cblas_daxpy((int)m3, r[c], T3, 1, S3, 1);
        if (S4) cblas_daxpy((int)m4, r[c], T4, 1, S4, 1);
    }
    free(sc.heap);
    return SL_OK;
}

static const sl_dist_type gauss_type = {"gauss",       gmm_sample, gmm_log_density,
                                        gmm_grad_hess, gmm_scores, gmm_free};
static const sl_dist_type gmm_type = {"gmm",         gmm_sample, gmm_log_density,
                                      gmm_grad_hess, gmm_scores, gmm_free};

static const unsigned gmm_caps = SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD | SL_DIST_HESS |
                                 SL_DIST_SCORE3 | SL_DIST_SCORE4 | SL_DIST_SMOOTH;

/* ---- parameter files --------------------------------------------------------- */

/* Column names weight, m1..md, c1_1..cd_d in one allocation. */
static char **param_names(size_t d) {
    const size_t ncol = 1 + d + d * d;
    /* Generous per-name room: "c" + two size_t's + "_" + NUL. */
    const size_t room = 48;
    char **names = malloc(ncol * sizeof *names + ncol * room);
    if (!names) return NULL;
    char *text = (char *)(names + ncol);
    for (size_t k = 0; k < ncol; ++k) names[k] = text + k * room;
    snprintf(names[0], room, "weight");
    for (size_t i = 0; i < d; ++i) snprintf(names[1 + i], room, "m%zu", i + 1);
    for (size_t i = 0; i < d; ++i)
        for (size_t j = 0; j < d; ++j)
            snprintf(names[1 + d + i * d + j], room, "c%zu_%zu", i + 1, j + 1);
    return names;
}

/* Reads and validates a parameter file for dimension d; single requires
 * exactly one row (a Gaussian rather than a mixture). */
static sl_status read_params(const char *path, size_t d, int single, gmm_state **out) {
    *out = NULL;
    sl_table *t = NULL;
    char **names = NULL;
    double *params = NULL;
    gmm_state *s = NULL;
    sl_status st = sl_csv_read(path, &t);
    if (st) return st;

    size_t filedim = 0;
    st = sl_table_prefixed(t, "m", &filedim, NULL);
    if (st) {
        st = sl_error(SL_EFORMAT,
                      "%s: no mean columns m1..md (expected columns weight,m1..m%zu,"
                      "c1_1..c%zu_%zu)",
                      path, d, d, d);
        goto done;
    }
    if (filedim != d) {
        st = sl_error(SL_EINVAL,
                      "%s: the means have dimension %zu (columns m1..m%zu) but the "
                      "distribution has dimension %zu",
                      path, filedim, filedim, d);
        goto done;
    }
    if (t->rows == 0) {
        st = sl_error(SL_EFORMAT, "%s: no parameter rows", path);
        goto done;
    }
    if (single && t->rows != 1) {
        st = sl_error(SL_EFORMAT,
                      "%s: a Gaussian takes exactly one parameter row, found %zu (use "
                      "gmm:FILE for a mixture)",
                      path, t->rows);
        goto done;
    }
    const size_t K = t->rows, ncol = 1 + d + d * d, dd = d * d;
    names = param_names(d);
    params = malloc(K * ncol * sizeof *params);
    s = gmm_state_alloc(K, d);
    if (!names || !params || !s) {
        st = sl_error(SL_ENOMEM, "%s: out of memory reading %zu components", path, K);
        goto done;
    }
    st = sl_table_extract(t, ncol, (const char *const *)names, params);
    if (st) goto done;

    double wsum = 0.0;
    for (size_t c = 0; c < K; ++c) {
        const double *row = params + c * ncol;
        if (!(row[0] > 0.0) || !isfinite(row[0])) {
            st = sl_error(SL_EFORMAT, "%s: row %zu: weight %g must be positive and finite", path,
                          c + 1, row[0]);
            goto done;
        }
        wsum += row[0];
        memcpy(s->mean + c * d, row + 1, d * sizeof *s->mean);
        const double *C = row + 1 + d;
        double *Cs = s->prec + c * dd; /* the covariance until gmm_finish inverts it */
        for (size_t i = 0; i < d; ++i)
            for (size_t j = 0; j < d; ++j) {
                const double a = C[i * d + j], b = C[j * d + i];
                const double scale =
                    fmax(fmax(fabs(a), fabs(b)), sqrt(fabs(C[i * d + i] * C[j * d + j])));
                if (j > i && fabs(a - b) > 1e-10 * scale) {
                    st = sl_error(SL_EFORMAT,
                                  "%s: row %zu: covariance is not symmetric: "
                                  "c%zu_%zu = %.16g but c%zu_%zu = %.16g",
                                  path, c + 1, i + 1, j + 1, a, j + 1, i + 1, b);
                    goto done;
                }
                Cs[i * d + j] = 0.5 * (a + b);
            }
    }
    if (!isfinite(wsum)) {
        st = sl_error(SL_EFORMAT, "%s: the weights sum to infinity", path);
        goto done;
    }
    for (size_t c = 0; c < K; ++c) s->weight[c] = params[c * ncol] / wsum;
    st = gmm_finish(s, path);

done:
    if (st == SL_OK) {
        *out = s;
    } else {
        gmm_free(s);
    }
    free(params);
    free(names);
    sl_table_free(t);
    return st;
}

static char *spec_name(const char *kind, const char *path) {
    size_t n = strlen(kind) + 1 + strlen(path) + 1;
    char *name = malloc(n);
    if (name) snprintf(name, n, "%s:%s", kind, path);
    return name;
}

static sl_status wrap_named(const sl_dist_type *type, gmm_state *s, size_t d, const char *kind,
                            const char *path, sl_dist **out) {
    char *name = spec_name(kind, path);
    if (!name) {
        gmm_free(s);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    sl_status st = sl_dist_wrap(type, s, d, gmm_caps, name, out);
    free(name);
    return st;
}

/* ---- constructors ------------------------------------------------------------ */

sl_status sl_dist_gauss_alloc(size_t d, const char *param_file, sl_dist **out) {
    *out = NULL;
    if (d == 0) return sl_error(SL_EINVAL, "gauss: dimension must be at least 1");
    if (param_file) {
        gmm_state *s;
        sl_status st = read_params(param_file, d, 1, &s);
        if (st) return st;
        return wrap_named(&gauss_type, s, d, "gauss", param_file, out);
    }
    gmm_state *s = gmm_state_alloc(1, d);
    if (!s) return sl_error(SL_ENOMEM, "gauss: out of memory");
    s->standard = 1;
    s->weight[0] = 1.0;
    memset(s->mean, 0, d * sizeof *s->mean);
    memset(s->prec, 0, d * d * sizeof *s->prec);
    for (size_t i = 0; i < d; ++i) s->prec[i * d + i] = 1.0;
    sl_status st = gmm_finish(s, "gauss");
    if (st) {
        gmm_free(s);
        return st;
    }
    return sl_dist_wrap(&gauss_type, s, d, gmm_caps, "gauss", out);
}

sl_status sl_dist_gmm_alloc(size_t d, const char *param_file, sl_dist **out) {
    *out = NULL;
    if (d == 0) return sl_error(SL_EINVAL, "gmm: dimension must be at least 1");
    if (!param_file || !*param_file)
        return sl_error(SL_EINVAL, "gmm: a parameter file is required (gmm:FILE.csv)");
    gmm_state *s;
    sl_status st = read_params(param_file, d, 0, &s);
    if (st) return st;
    return wrap_named(&gmm_type, s, d, "gmm", param_file, out);
}

sl_status sl_dist_gmm2_alloc(size_t d, sl_dist **out) {
    *out = NULL;
    if (d == 0) return sl_error(SL_EINVAL, "gmm2: dimension must be at least 1");
    gmm_state *s = gmm_state_alloc(2, d);
    if (!s) return sl_error(SL_ENOMEM, "gmm2: out of memory");
    const size_t dd = d * d;
    for (size_t c = 0; c < 2; ++c) {
        s->weight[c] = 0.5;
        for (size_t i = 0; i < d; ++i) s->mean[c * d + i] = c == 0 ? 1.0 : -1.0;
        memset(s->prec + c * dd, 0, dd * sizeof *s->prec);
        for (size_t i = 0; i < d; ++i) s->prec[c * dd + i * d + i] = 1.0;
    }
    sl_status st = gmm_finish(s, "gmm2");
    if (st) {
        gmm_free(s);
        return st;
    }
    return sl_dist_wrap(&gmm_type, s, d, gmm_caps, "gmm2", out);
}

/* The anisotropic mixture: weights 0.4, 0.35, 0.25; means in the first two
 * coordinates (only the first when d = 1); component c has standard
 * deviations alternating sd[c][0], sd[c][1] over the coordinates and AR(1)
 * correlations rho[c]^|a - b|, so the components differ in shape and
 * orientation and the local covariance changes from place to place. The
 * arithmetic is that of read_params on the same values written with %.17g
 * (weights normalised by their sum in order, covariance entries
 * sd * sd * pow(rho, |a - b|)), so agmm and gmm:FILE of that file are the
 * same distribution bit for bit. */
sl_status sl_dist_agmm_alloc(size_t d, sl_dist **out) {
    static const double w[3] = {0.4, 0.35, 0.25};
    static const double m[3][2] = {{-1.5, -0.5}, {1.5, -1.0}, {0.0, 1.8}};
    static const double sd[3][2] = {{1.0, 0.4}, {0.5, 0.9}, {0.7, 0.7}};
    static const double rho[3] = {0.7, -0.6, 0.3};
    *out = NULL;
    if (d == 0) return sl_error(SL_EINVAL, "agmm: dimension must be at least 1");
    gmm_state *s = gmm_state_alloc(3, d);
    if (!s) return sl_error(SL_ENOMEM, "agmm: out of memory");
    const size_t dd = d * d;
    double wsum = 0.0;
    for (size_t c = 0; c < 3; ++c) wsum += w[c];
    for (size_t c = 0; c < 3; ++c) {
        s->weight[c] = w[c] / wsum;
        for (size_t a = 0; a < d; ++a) s->mean[c * d + a] = a < 2 ? m[c][a] : 0.0;
        double *C = s->prec + c * dd; /* the covariance until gmm_finish inverts it */
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b)
                C[a * d + b] =
                    sd[c][a % 2] * sd[c][b % 2] * pow(rho[c], (double)(a > b ? a - b : b - a));
    }
    sl_status st = gmm_finish(s, "agmm");
    if (st) {
        gmm_free(s);
        return st;
    }
    return sl_dist_wrap(&gmm_type, s, d, gmm_caps, "agmm", out);
}

/* ---- marginals --------------------------------------------------------------- */

int sl_dist_is_gmm(const sl_dist *D) {
    return D->type == &gauss_type || D->type == &gmm_type;
}

/* z = U'x with x ~ sum_c pi_c N(m_c, C_c) is sum_c pi_c N(U'm_c, U'C_c U):
 * the same weights, projected means and covariances. U'C_c U is formed as
 * A'A with A = L_c'U from the stored Cholesky factor, so it is symmetric
 * positive semi-definite by construction rather than up to rounding of
 * L L'. */
sl_status sl_dist_gmm_marginal(const sl_dist *D, size_t k, const double *U, sl_dist **out) {
    *out = NULL;
    const gmm_state *s = D->state;
    const size_t d = s->d, K = s->K, dd = d * d, kk = k * k;
    const char *src = sl_dist_name(D);
    const size_t nlen = strlen(src) + 48;
    char *name = malloc(nlen);
    gmm_state *t = gmm_state_alloc(K, k);
    double *A = malloc(d * k * sizeof *A);
    if (!name || !t || !A) {
        free(name);
        gmm_free(t);
        free(A);
        return sl_error(SL_ENOMEM, "marginal of '%s': out of memory", src);
    }
    snprintf(name, nlen, "marginal(%s,%zu)", src, k);
    for (size_t c = 0; c < K; ++c) {
        t->weight[c] = s->weight[c];
        sl_project_vec(d, k, U, s->mean + c * d, t->mean + c * k);
        memcpy(A, U, d * k * sizeof *A);
        cblas_dtrmm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, (int)d, (int)k,
                    1.0, s->chol + c * dd, (int)d, A, (int)k);
        double *C = t->prec + c * kk; /* the covariance until gmm_finish inverts it */
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)k, (int)d, 1.0, A, (int)k,
                    A, (int)k, 0.0, C, (int)k);
        for (size_t a = 0; a < k; ++a)
            for (size_t b = a + 1; b < k; ++b) {
                const double v = 0.5 * (C[a * k + b] + C[b * k + a]);
                C[a * k + b] = C[b * k + a] = v;
            }
    }
    free(A);
    sl_status st = gmm_finish(t, name);
    if (st) {
        gmm_free(t);
    } else {
        st = sl_dist_wrap(D->type, t, k, gmm_caps, name, out);
    }
    free(name);
    return st;
}
