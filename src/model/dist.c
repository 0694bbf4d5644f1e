/* Distribution objects: construction from specifications, dispatch to the
 * type tables, block-parallel sampling, user callbacks and CSV samples. */
#include "model/dist_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"
#include <gsl/gsl_cblas.h>
#include "scoreloss/rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

sl_status sl_dist_wrap(const sl_dist_type *type, void *state, size_t d, unsigned caps,
                       const char *name, sl_dist **out) {
    *out = NULL;
    sl_dist *D = calloc(1, sizeof *D);
    char *nm = dup_string(name ? name : type->name);
    if (!D || !nm) {
        free(D);
        free(nm);
        if (type->free) type->free(state);
        return sl_error(SL_ENOMEM, "out of memory creating distribution '%s'", type->name);
    }
    D->type = type;
    D->state = state;
    D->d = d;
    D->caps = caps | SL_DIST_SAMPLE;
    D->name = nm;
    *out = D;
    return SL_OK;
}

void sl_dist_free(sl_dist *D) {
    if (!D) return;
    if (D->type->free) D->type->free(D->state);
    free(D->name);
    free(D);
}

size_t sl_dist_dim(const sl_dist *D) {
    return D->d;
}
const char *sl_dist_name(const sl_dist *D) {
    return D->name;
}
unsigned sl_dist_caps(const sl_dist *D) {
    return D->caps;
}

/* ---- specifications ---------------------------------------------------- */

static sl_status parse_positive(const char *text, const char *what, double *out) {
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno || !isfinite(v) || v <= 0)
        return sl_error(SL_EINVAL, "%s: expected a positive number, got '%s'", what, text);
    *out = v;
    return SL_OK;
}

sl_status sl_dist_from_spec(const char *spec, size_t d, sl_dist **out) {
    *out = NULL;
    if (!spec || !*spec) return sl_error(SL_EINVAL, "empty distribution specification");
    if (d == 0) return sl_error(SL_EINVAL, "distribution '%s': dimension must be at least 1", spec);
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *arg = colon ? colon + 1 : NULL;
#define IS(word) (nlen == strlen(word) && strncmp(spec, word, nlen) == 0)
    if (IS("gauss")) {
        if (arg && !*arg)
            return sl_error(SL_EINVAL, "distribution '%s': empty parameter file name", spec);
        return sl_dist_gauss_alloc(d, arg, out);
    }
    if (IS("gmm2")) {
        if (arg) return sl_error(SL_EINVAL, "distribution '%s': gmm2 takes no argument", spec);
        return sl_dist_gmm2_alloc(d, out);
    }
    if (IS("agmm")) {
        if (arg) return sl_error(SL_EINVAL, "distribution '%s': agmm takes no argument", spec);
        return sl_dist_agmm_alloc(d, out);
    }
    if (IS("gmm")) {
        if (!arg || !*arg)
            return sl_error(SL_EINVAL,
                            "distribution '%s': gmm needs a parameter file (gmm:FILE.csv)", spec);
        return sl_dist_gmm_alloc(d, arg, out);
    }
    if (IS("laplace")) {
        if (arg) return sl_error(SL_EINVAL, "distribution '%s': laplace takes no argument", spec);
        return sl_dist_laplace_alloc(d, out);
    }
    if (IS("logistic")) {
        if (arg) return sl_error(SL_EINVAL, "distribution '%s': logistic takes no argument", spec);
        return sl_dist_logistic_alloc(d, out);
    }
    if (IS("student")) {
        double nu = 5.0;
        if (arg) {
            const char *v = strncmp(arg, "nu=", 3) == 0 ? arg + 3 : arg;
            sl_status st = parse_positive(v, "student degrees of freedom", &nu);
            if (st) return sl_error_prefix(st, "distribution '%s': ", spec);
        }
        return sl_dist_student_alloc(d, nu, out);
    }
    if (IS("plugin")) {
        if (!arg || !*arg)
            return sl_error(SL_EINVAL, "distribution '%s': expected plugin:PATH.so[:ARGS]", spec);
        const char *c2 = strchr(arg, ':');
        size_t plen = c2 ? (size_t)(c2 - arg) : strlen(arg);
        char *path = malloc(plen + 1);
        if (!path) return sl_error(SL_ENOMEM, "out of memory");
        memcpy(path, arg, plen);
        path[plen] = '\0';
        sl_status st = sl_dist_plugin_alloc(path, c2 ? c2 + 1 : "", d, out);
        free(path);
        return st;
    }
#undef IS
    return sl_error(
        SL_EINVAL,
        "unknown distribution '%s' (expected gauss, gauss:FILE, gmm2, gmm:FILE, agmm, laplace, "
        "student[:NU], logistic or plugin:PATH.so[:ARGS])",
        spec);
}

/* ---- sampling and pointwise evaluation ------------------------------------ */

sl_status sl_dist_sample(const sl_dist *D, uint64_t seed, size_t n, double *X) {
    const size_t d = D->d;
    const size_t nblocks = (n + SL_RNG_BLOCK - 1) / SL_RNG_BLOCK;
    sl_status status = SL_OK;
    char message[1024] = "";
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) if (nblocks > 1)
#endif
    for (size_t b = 0; b < nblocks; ++b) {
        sl_status st;
        if (status != SL_OK) continue;
        size_t lo = b * SL_RNG_BLOCK;
        size_t m = n - lo < SL_RNG_BLOCK ? n - lo : SL_RNG_BLOCK;
        gsl_rng *r = sl_rng_alloc(seed, b);
        if (!r)
            st = SL_ENOMEM;
        else
            st = D->type->sample(D->state, d, m, r, X + lo * d);
        gsl_rng_free(r);
        if (st == SL_OK && !sl_all_finite(m * d, X + lo * d))
            st = sl_error(SL_ENUMERIC, "distribution '%s' drew a non-finite sample", D->name);
        if (st != SL_OK) {
#ifdef _OPENMP
#pragma omp critical(sl_dist_sample_error)
#endif
            if (status == SL_OK) {
                status = st;
                snprintf(message, sizeof message, "%s", sl_last_error());
            }
        }
    }
    /* The message was set on a worker thread: copy it to the caller's. */
    if (status != SL_OK) return sl_error(status, "%s", message);
    return SL_OK;
}

/* Runs f at every row of X in parallel, keeping the first failure's message. */
typedef sl_status (*point_fn)(const sl_dist *D, size_t i, const double *x, void *ctx);

static sl_status for_each_point(const sl_dist *D, size_t n, const double *X, point_fn f,
                                void *ctx) {
    sl_status status = SL_OK;
    char message[1024] = "";
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n > 64)
#endif
    for (size_t i = 0; i < n; ++i) {
        if (status != SL_OK) continue;
        sl_status st = f(D, i, X + i * D->d, ctx);
        if (st != SL_OK) {
#ifdef _OPENMP
#pragma omp critical(sl_dist_point_error)
#endif
            if (status == SL_OK) {
                status = st;
                snprintf(message, sizeof message, "%s", sl_last_error());
            }
        }
    }
    if (status != SL_OK) return sl_error(status, "%s", message);
    return SL_OK;
}

static sl_status logpdf_point(const sl_dist *D, size_t i, const double *x, void *ctx) {
    double *logp = ctx;
    sl_status st = D->type->log_density(D->state, D->d, x, &logp[i]);
    if (st == SL_OK && isnan(logp[i]))
        st = sl_error(SL_ENUMERIC, "distribution '%s': log-density is NaN at point %zu", D->name,
                      i + 1);
    return st;
}

sl_status sl_dist_log_density(const sl_dist *D, size_t n, const double *X, double *logp) {
    if (!(D->caps & SL_DIST_LOGPDF) || !D->type->log_density)
        return sl_error(SL_EUNSUPPORTED, "distribution '%s' has no log-density", D->name);
    return for_each_point(D, n, X, logpdf_point, logp);
}

typedef struct {
    double *G, *H;
} gh_ctx;

static sl_status gh_point(const sl_dist *D, size_t i, const double *x, void *vctx) {
    gh_ctx *c = vctx;
    const size_t d = D->d;
    double *g = c->G + i * d;
    double *H = c->H ? c->H + i * d * d : NULL;
    sl_status st = D->type->grad_hess(D->state, d, x, g, H);
    if (st) return st;
    if (!sl_all_finite(d, g) || (H && !sl_all_finite(d * d, H)))
        return sl_error(SL_ENUMERIC, "distribution '%s': non-finite score at point %zu", D->name,
                        i + 1);
    return SL_OK;
}

sl_status sl_dist_grad_hess(const sl_dist *D, size_t n, const double *X, double *G, double *H) {
    if (!(D->caps & SL_DIST_GRAD) || !D->type->grad_hess || (H && !(D->caps & SL_DIST_HESS)))
        return sl_error(
            SL_EUNSUPPORTED,
            "distribution '%s' is sample-only: it has no exact %s (give a built-in or a "
            "plug-in with gradient and hessian callbacks)",
            D->name, H ? "gradient and Hessian" : "gradient");
    gh_ctx c = {G, H};
    return for_each_point(D, n, X, gh_point, &c);
}

sl_status sl_dist_scores(const sl_dist *D, const double *x, size_t m, const double *V, double *S1,
                         double *S2, double *S3, double *S4) {
    const size_t d = D->d;
    double *eye = NULL;
    if (!V) {
        m = d;
        eye = calloc(d * d, sizeof *eye);
        if (!eye) return sl_error(SL_ENOMEM, "out of memory");
        for (size_t i = 0; i < d; ++i) eye[i * d + i] = 1.0;
        V = eye;
    }
    sl_status st;
    if ((S1 && !(D->caps & SL_DIST_GRAD)) || (S2 && !(D->caps & SL_DIST_HESS))) {
        st = sl_error(SL_EUNSUPPORTED, "distribution '%s' is sample-only: it has no exact %s",
                      D->name, (D->caps & SL_DIST_GRAD) ? "Hessian" : "scores");
    } else if ((S3 && !(D->caps & SL_DIST_SCORE3)) || (S4 && !(D->caps & SL_DIST_SCORE4))) {
        st = sl_error(SL_EUNSUPPORTED, "distribution '%s' has no exact %s-order score%s", D->name,
                      (S4 && !(D->caps & SL_DIST_SCORE4)) ? "fourth" : "third",
                      (D->caps & SL_DIST_HESS) ? " (only g and H are known)" : "");
    } else if (D->type->scores) {
        st = D->type->scores(D->state, d, x, m, V, S1, S2, S3, S4);
    } else {
        /* S1 and S2 from g and H alone: exact, they need nothing higher. */
        double *buf = malloc((d + d * d + d * m + m + m * m) * sizeof *buf);
        if (!buf) {
            free(eye);
            return sl_error(SL_ENOMEM, "out of memory");
        }
        double *g = buf, *H = g + d, *work = H + d * d, *gv = work + d * m, *Hv = gv + m;
        st = D->type->grad_hess(D->state, d, x, g, H);
        if (st == SL_OK) {
            sl_project_vec(d, m, V, g, gv);
            sl_project_sym(d, m, V, H, Hv, work);
            sl_scores_from_logderivs(m, gv, Hv, NULL, NULL, S1, S2, NULL, NULL);
        }
        free(buf);
    }
    free(eye);
    return st;
}

/* ---- marginals ------------------------------------------------------------- */

/* Largest |(U'U - I)_ab| accepted: a U from an orthogonalisation is
 * orthonormal to rounding (~1e-15); 1e-8 still catches an unnormalised or
 * non-orthogonal matrix, whose marginal would be of a different z. */
#define MARGINAL_ORTHO_TOL 1e-8

sl_status sl_dist_marginal(const sl_dist *D, size_t k, const double *U, sl_dist **out) {
    *out = NULL;
    const size_t d = D->d;
    if (k < 1 || k > d)
        return sl_error(SL_EINVAL,
                        "marginal of '%s': the number of directions k = %zu must be between 1 "
                        "and the dimension d = %zu",
                        D->name, k, d);
    if (!U) return sl_error(SL_EINVAL, "marginal of '%s': no direction matrix U", D->name);
    if (!sl_dist_is_gmm(D))
        return sl_error(SL_EUNSUPPORTED,
                        "distribution '%s' has no closed-form marginal (only gauss, "
                        "gauss:FILE, gmm2, gmm:FILE and agmm have one)",
                        D->name);
    if (!sl_all_finite(d * k, U))
        return sl_error(SL_EINVAL, "marginal of '%s': U has a non-finite entry", D->name);
    double *G = malloc(k * k * sizeof *G);
    if (!G) return sl_error(SL_ENOMEM, "out of memory");
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)k, (int)k, (int)d, 1.0, U, (int)k, U,
                (int)k, 0.0, G, (int)k);
    double worst = 0.0;
    size_t wa = 0, wb = 0;
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b) {
            const double e = fabs(G[a * k + b] - (a == b ? 1.0 : 0.0));
            if (e > worst) {
                worst = e;
                wa = a;
                wb = b;
            }
        }
    free(G);
    if (worst > MARGINAL_ORTHO_TOL)
        return sl_error(SL_EINVAL,
                        "marginal of '%s': the columns of U (%zu x %zu) are not orthonormal: "
                        "|(U'U - I)[%zu,%zu]| = %.3g (at most %g allowed)",
                        D->name, d, k, wa + 1, wb + 1, worst, MARGINAL_ORTHO_TOL);
    return sl_dist_gmm_marginal(D, k, U, out);
}

/* ---- the algebra of METHOD.md section 2 ----------------------------------- */

void sl_scores_from_logderivs(size_t m, const double *g, const double *H, const double *G3,
                              const double *G4, double *S1, double *S2, double *S3, double *S4) {
    const size_t m2 = m * m, m3 = m2 * m;
    if (S1)
        for (size_t a = 0; a < m; ++a) S1[a] = -g[a];
    if (S2)
        for (size_t a = 0; a < m; ++a)
            for (size_t b = 0; b < m; ++b) S2[a * m + b] = g[a] * g[b] + H[a * m + b];
    if (S3)
        for (size_t a = 0; a < m; ++a)
            for (size_t b = 0; b < m; ++b)
                for (size_t c = 0; c < m; ++c) {
                    double v = g[a] * g[b] * g[c] + g[a] * H[b * m + c] + g[b] * H[a * m + c] +
                               g[c] * H[a * m + b];
                    if (G3) v += G3[a * m2 + b * m + c];
                    S3[a * m2 + b * m + c] = -v;
                }
    if (S4)
        for (size_t a = 0; a < m; ++a)
            for (size_t b = 0; b < m; ++b)
                for (size_t c = 0; c < m; ++c)
                    for (size_t e = 0; e < m; ++e) {
                        const double ga = g[a], gb = g[b], gc = g[c], ge = g[e];
                        const double Hab = H[a * m + b], Hac = H[a * m + c], Hae = H[a * m + e];
                        const double Hbc = H[b * m + c], Hbe = H[b * m + e], Hce = H[c * m + e];
                        double v = ga * gb * gc * ge;
                        v += ga * gb * Hce + ga * gc * Hbe + ga * ge * Hbc + gb * gc * Hae +
                             gb * ge * Hac + gc * ge * Hab;
                        v += Hab * Hce + Hac * Hbe + Hae * Hbc;
                        if (G3)
                            v += ga * G3[b * m2 + c * m + e] + gb * G3[a * m2 + c * m + e] +
                                 gc * G3[a * m2 + b * m + e] + ge * G3[a * m2 + b * m + c];
                        if (G4) v += G4[a * m3 + b * m2 + c * m + e];
                        S4[a * m3 + b * m2 + c * m + e] = v;
                    }
}

void sl_project_vec(size_t d, size_t m, const double *V, const double *x, double *xv) {
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)m, 1.0, V, (int)m, x, 1, 0.0, xv, 1);
}

void sl_project_sym(size_t d, size_t m, const double *V, const double *A, double *VtAV,
                    double *work) {
    /* work = A V (d x m), then V' work. */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)m, (int)d, 1.0, A, (int)d,
                V, (int)m, 0.0, work, (int)m);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)m, (int)d, 1.0, V, (int)m,
                work, (int)m, 0.0, VtAV, (int)m);
}

/* ---- user callbacks ---------------------------------------------------- */

typedef struct {
    sl_dist_callbacks cb;
    char *name;
} cb_state;

static sl_status cb_fail(const cb_state *s, const char *what) {
    return sl_error(SL_ECALLBACK, "distribution '%s': the %s callback failed", s->name, what);
}

static sl_status cb_sample(const void *vs, size_t d, size_t n, gsl_rng *rng, double *X) {
    const cb_state *s = vs;
    return s->cb.sample(s->cb.data, d, n, rng, X) ? cb_fail(s, "sample") : SL_OK;
}

static sl_status cb_log_density(const void *vs, size_t d, const double *x, double *logp) {
    const cb_state *s = vs;
    return s->cb.log_density(s->cb.data, d, x, logp) ? cb_fail(s, "log_density") : SL_OK;
}

static sl_status cb_grad_hess(const void *vs, size_t d, const double *x, double *g, double *H) {
    const cb_state *s = vs;
    if (s->cb.gradient(s->cb.data, d, x, g)) return cb_fail(s, "gradient");
    if (H && s->cb.hessian(s->cb.data, d, x, H)) return cb_fail(s, "hessian");
    return SL_OK;
}

static sl_status cb_scores(const void *vs, size_t d, const double *x, size_t m, const double *V,
                           double *S1, double *S2, double *S3, double *S4) {
    const cb_state *s = vs;
    if (S1 || S2) {
        double *buf = malloc((d + d * d + d * m + m + m * m) * sizeof *buf);
        if (!buf) return sl_error(SL_ENOMEM, "out of memory");
        double *g = buf, *H = g + d, *work = H + d * d, *gv = work + d * m, *Hv = gv + m;
        sl_status st = cb_grad_hess(vs, d, x, g, S2 ? H : NULL);
        if (st == SL_OK) {
            sl_project_vec(d, m, V, g, gv);
            if (S2) sl_project_sym(d, m, V, H, Hv, work);
            sl_scores_from_logderivs(m, gv, Hv, NULL, NULL, S1, S2, NULL, NULL);
        }
        free(buf);
        if (st) return st;
    }
    if (S3 && s->cb.score3(s->cb.data, d, x, m, V, S3)) return cb_fail(s, "score3");
    if (S4 && s->cb.score4(s->cb.data, d, x, m, V, S4)) return cb_fail(s, "score4");
    return SL_OK;
}

static void cb_free(void *vs) {
    cb_state *s = vs;
    if (s->cb.destroy) s->cb.destroy(s->cb.data);
    free(s->name);
    free(s);
}

static const sl_dist_type cb_type = {"callbacks",  cb_sample, cb_log_density,
                                     cb_grad_hess, cb_scores, cb_free};

sl_status sl_dist_from_callbacks(const sl_dist_callbacks *cb, size_t d, sl_dist **out) {
    *out = NULL;
    const char *name = cb->name && *cb->name ? cb->name : "custom";
    sl_status st = SL_OK;
    if (d == 0)
        st = sl_error(SL_EINVAL, "distribution '%s': dimension must be at least 1", name);
    else if (!cb->sample)
        st = sl_error(SL_EINVAL, "distribution '%s': the sample callback is required", name);
    else if (cb->dim && cb->dim != d)
        st = sl_error(SL_EINVAL, "distribution '%s' supports only dimension %zu, not %zu", name,
                      cb->dim, d);
    else if (cb->hessian && !cb->gradient)
        st = sl_error(SL_EINVAL, "distribution '%s': a hessian callback needs a gradient callback",
                      name);
    else if ((cb->score3 || cb->score4) && !cb->hessian)
        st = sl_error(
            SL_EINVAL,
            "distribution '%s': score3/score4 callbacks need gradient and hessian callbacks", name);
    if (st) {
        if (cb->destroy) cb->destroy(cb->data);
        return st;
    }
    cb_state *s = calloc(1, sizeof *s);
    char *nm = dup_string(name);
    if (!s || !nm) {
        free(s);
        free(nm);
        if (cb->destroy) cb->destroy(cb->data);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    s->cb = *cb;
    s->cb.name = nm;
    s->name = nm;
    unsigned caps = SL_DIST_SAMPLE;
    if (cb->log_density) caps |= SL_DIST_LOGPDF;
    if (cb->gradient) caps |= SL_DIST_GRAD;
    if (cb->hessian) caps |= SL_DIST_HESS;
    if (cb->score3) caps |= SL_DIST_SCORE3;
    if (cb->score4) caps |= SL_DIST_SCORE4;
    if (cb->smooth) caps |= SL_DIST_SMOOTH;
    /* One type serves every combination: the dispatchers check caps before
     * calling a function whose callback is absent. */
    return sl_dist_wrap(&cb_type, s, d, caps, name, out);
}

/* ---- samples from a file ------------------------------------------------ */

typedef struct {
    size_t n;
    double *X;
} samples_state;

static sl_status samples_sample(const void *vs, size_t d, size_t n, gsl_rng *rng, double *X) {
    const samples_state *s = vs;
    for (size_t i = 0; i < n; ++i) {
        size_t j = (size_t)gsl_rng_uniform_int(rng, s->n);
        memcpy(X + i * d, s->X + j * d, d * sizeof *X);
    }
    return SL_OK;
}

static void samples_free(void *vs) {
    samples_state *s = vs;
    free(s->X);
    free(s);
}

static const sl_dist_type samples_type = {"samples", samples_sample, NULL,
                                          NULL,      NULL,           samples_free};

sl_status sl_dist_from_samples(const char *name, size_t n, size_t d, const double *X,
                               sl_dist **out) {
    *out = NULL;
    if (n == 0 || d == 0)
        return sl_error(SL_EINVAL, "samples '%s': need at least one row and one column",
                        name ? name : "");
    if (!sl_all_finite(n * d, X))
        return sl_error(SL_ENUMERIC, "samples '%s': non-finite value", name ? name : "");
    samples_state *s = malloc(sizeof *s);
    double *copy = malloc(n * d * sizeof *copy);
    if (!s || !copy) {
        free(s);
        free(copy);
        return sl_error(SL_ENOMEM, "out of memory copying %zu samples", n);
    }
    memcpy(copy, X, n * d * sizeof *copy);
    s->n = n;
    s->X = copy;
    return sl_dist_wrap(&samples_type, s, d, SL_DIST_SAMPLE, name ? name : "samples", out);
}
