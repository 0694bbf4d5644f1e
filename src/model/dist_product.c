/* Product densities p(x) = prod_i q(x_i) with one 1-D factor q per coordinate.
 *
 * With phi = log q, l(x) = sum_i phi(x_i): g_i = phi'(x_i) and H, G3, G4 are
 * diagonal with phi'', phi''', phi''''. Projected on the m columns of V (d x m):
 *
 *   gV_a       = sum_i phi'_i    V_ia
 *   HV_ab      = sum_i phi''_i   V_ia V_ib
 *   G3V_abc    = sum_i phi'''_i  V_ia V_ib V_ic
 *   G4V_abce   = sum_i phi''''_i V_ia V_ib V_ic V_ie
 *
 * and sl_scores_from_logderivs turns them into S1..S4. Everything here is
 * written once over a coord_family (sampler, log-density and the four
 * derivatives of one coordinate), so a new product density is one family. */
#include "model/dist_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

/* One coordinate's factor q. */
typedef struct coord_family {
    const char *name;
    unsigned caps;
    double (*sample)(gsl_rng *rng);
    /* log q(x), normalised. */
    double (*log_density)(double x);
    /* phi' .. phi'''' at x (phi = log q) into phi[0..3]. */
    void (*derivs)(double x, double phi[4]);
} coord_family;

typedef struct product_state {
    const coord_family *family;
} product_state;

/* ---- standard logistic: q(x) = e^{-x} / (1 + e^{-x})^2 ---------------- */

static double logistic_sample(gsl_rng *rng) {
    return gsl_ran_logistic(rng, 1.0);
}

static double logistic_log_density(double x) {
    /* Symmetric, and in terms of e^{-|x|} <= 1 nothing overflows. */
    const double a = fabs(x);
    return -a - 2.0 * log1p(exp(-a));
}

static void logistic_derivs(double x, double phi[4]) {
    /* With t = e^{-|x|} in (0, 1] (0 once it underflows, which is the right
     * limit): s(1-s) = t / (1+t)^2 and 1 - 2s = -tanh(x/2), with no
     * cancellation in the tails where s rounds to 0 or 1. */
    const double t = exp(-fabs(x));
    const double q = t / ((1.0 + t) * (1.0 + t)); /* s(1-s), in [0, 1/4] */
    const double one_minus_2s = -tanh(0.5 * x);
    phi[0] = one_minus_2s;
    phi[1] = -2.0 * q;
    phi[2] = -2.0 * q * one_minus_2s;
    phi[3] = -2.0 * q * (1.0 - 6.0 * q); /* 1 - 6s + 6s^2 = 1 - 6 s(1-s) */
}

static const coord_family logistic_family = {
    "logistic",
    SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD | SL_DIST_HESS | SL_DIST_SCORE3 |
        SL_DIST_SCORE4 | SL_DIST_SMOOTH,
    logistic_sample, logistic_log_density, logistic_derivs};

/* ---- Laplace: q(x) = e^{-|x|} / 2 --------------------------------------- */

static double laplace_sample(gsl_rng *rng) {
    return gsl_ran_laplace(rng, 1.0);
}

static double laplace_log_density(double x) {
    return -fabs(x) - M_LN2;
}

/* The derivatives almost everywhere (off the axes x_i = 0): phi' = -sign(x),
 * phi'' = phi''' = phi'''' = 0. In the sense of distributions phi' jumps by
 * -2 at 0, so phi'' = -2 delta(x_i) (and phi''' = -2 delta'(x_i), phi'''' =
 * -2 delta''(x_i)). Stein's identities need those terms: the true
 * S_2,ii = g_i^2 - 2 delta(x_i) has E[S_2]_ii = 1 - 2 q(0) = 0, while the
 * a.e. formula gives E[g_i^2] = 1; the missing term is -2 q(0) = -1, with
 * q(0) = 1/2. S_3 and S_4 miss delta terms at the axes the same way. So the
 * family is not SL_DIST_SMOOTH: its S1..S4 are exact off the axes, but
 * moment identities built from them are biased. */
static void laplace_derivs(double x, double phi[4]) {
    phi[0] = x > 0 ? -1.0 : (x < 0 ? 1.0 : 0.0);
    phi[1] = phi[2] = phi[3] = 0.0;
}

static const coord_family laplace_family = {"laplace",
                                            SL_DIST_SAMPLE | SL_DIST_LOGPDF | SL_DIST_GRAD |
                                                SL_DIST_HESS | SL_DIST_SCORE3 | SL_DIST_SCORE4,
                                            laplace_sample, laplace_log_density, laplace_derivs};

/* ---- the product, over any family ------------------------------------------ */

static sl_status product_sample(const void *vs, size_t d, size_t n, gsl_rng *rng, double *X) {
    const coord_family *f = ((const product_state *)vs)->family;
    for (size_t j = 0; j < n * d; ++j) X[j] = f->sample(rng);
    return SL_OK;
}

static sl_status product_log_density(const void *vs, size_t d, const double *x, double *logp) {
    const coord_family *f = ((const product_state *)vs)->family;
    double sum = 0.0;
    for (size_t i = 0; i < d; ++i) sum += f->log_density(x[i]);
    *logp = sum;
    return SL_OK;
}

static sl_status product_grad_hess(const void *vs, size_t d, const double *x, double *g,
                                   double *H) {
    const coord_family *f = ((const product_state *)vs)->family;
    if (H) memset(H, 0, d * d * sizeof *H);
    for (size_t i = 0; i < d; ++i) {
        double phi[4];
        f->derivs(x[i], phi);
        g[i] = phi[0];
        if (H) H[i * d + i] = phi[1];
    }
    return SL_OK;
}

/* The projected log-derivatives gV (m), HV (m^2) and, when not NULL, G3V
 * (m^3) and G4V (m^4). Zero entries of V are skipped at every level, so
 * V = I costs O(d m) rather than O(d m^4). */
static void product_project(const coord_family *f, size_t d, const double *x, size_t m,
                            const double *V, double *gV, double *HV, double *G3V, double *G4V) {
    const size_t m2 = m * m, m3 = m2 * m;
    memset(gV, 0, m * sizeof *gV);
    memset(HV, 0, m2 * sizeof *HV);
    if (G3V) memset(G3V, 0, m3 * sizeof *G3V);
    if (G4V) memset(G4V, 0, m3 * m * sizeof *G4V);
    for (size_t i = 0; i < d; ++i) {
        const double *v = V + i * m;
        double phi[4];
        f->derivs(x[i], phi);
        for (size_t a = 0; a < m; ++a) {
            if (v[a] == 0.0) continue;
            gV[a] += phi[0] * v[a];
            for (size_t b = 0; b < m; ++b) {
                if (v[b] == 0.0) continue;
                const double vab = v[a] * v[b];
                HV[a * m + b] += phi[1] * vab;
                if (!G3V) continue;
                for (size_t c = 0; c < m; ++c) {
                    if (v[c] == 0.0) continue;
                    const double vabc = vab * v[c];
                    G3V[a * m2 + b * m + c] += phi[2] * vabc;
                    if (!G4V) continue;
                    for (size_t e = 0; e < m; ++e)
                        G4V[a * m3 + b * m2 + c * m + e] += phi[3] * vabc * v[e];
                }
            }
        }
    }
}

/* Workspace that fits on the stack for the usual small m (up to 6 with S4),
 * so per-point score calls do not allocate. */
#define PRODUCT_STACK_DOUBLES 2048

static sl_status product_scores(const void *vs, size_t d, const double *x, size_t m,
                                const double *V, double *S1, double *S2, double *S3, double *S4) {
    const coord_family *f = ((const product_state *)vs)->family;
    const size_t m2 = m * m, m3 = m2 * m;
    /* S3 needs G3; S4 needs G3 and G4. */
    const int need3 = S3 || S4, need4 = S4 != NULL;
    const size_t nbuf = m + m2 + (need3 ? m3 : 0) + (need4 ? m3 * m : 0);
    double stack[PRODUCT_STACK_DOUBLES];
    double *buf = stack;
    if (nbuf > PRODUCT_STACK_DOUBLES) {
        buf = malloc(nbuf * sizeof *buf);
        if (!buf)
            return sl_error(SL_ENOMEM, "distribution '%s': out of memory for scores (m = %zu)",
                            f->name, m);
    }
    double *gV = buf, *HV = gV + m, *G3V = need3 ? HV + m2 : NULL;
    double *G4V = need4 ? G3V + m3 : NULL;
    product_project(f, d, x, m, V, gV, HV, G3V, G4V);
    sl_scores_from_logderivs(m, gV, HV, G3V, G4V, S1, S2, S3, S4);
    if (buf != stack) free(buf);
    return SL_OK;
}

/* One type for every family: the family travels in the state, its name in
 * the sl_dist. */
static const sl_dist_type product_type = {"product",         product_sample, product_log_density,
                                          product_grad_hess, product_scores, free};

static sl_status product_alloc(const coord_family *family, size_t d, sl_dist **out) {
    *out = NULL;
    if (d == 0)
        return sl_error(SL_EINVAL, "distribution '%s': dimension must be at least 1", family->name);
    product_state *s = malloc(sizeof *s);
    if (!s) return sl_error(SL_ENOMEM, "out of memory creating distribution '%s'", family->name);
    s->family = family;
    return sl_dist_wrap(&product_type, s, d, family->caps, family->name, out);
}

sl_status sl_dist_logistic_alloc(size_t d, sl_dist **out) {
    return product_alloc(&logistic_family, d, out);
}

sl_status sl_dist_laplace_alloc(size_t d, sl_dist **out) {
    return product_alloc(&laplace_family, d, out);
}
