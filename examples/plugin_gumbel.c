/* A worked plug-in: a product of (scaled) standard Gumbel coordinates.
 *
 * WHAT A PLUG-IN IS
 *   A shared object exporting one function, sl_plugin_init, with the
 *   signature documented in include/scoreloss/dist.h. scoreloss loads it for
 *   the specification "plugin:PATH.so[:ARGS]", calls
 *
 *     sl_plugin_init(SL_PLUGIN_ABI, ARGS, d, &cb, err, errlen)
 *
 *   with cb zeroed, and wraps what the plug-in put in cb (see
 *   sl_dist_callbacks) as a distribution. The object stays loaded until the
 *   distribution is freed; cb.destroy runs just before it is unloaded.
 *   Only cb.sample is required. gradient + hessian give exact S_1 and S_2;
 *   score3/score4 give S_3/S_4; smooth = 1 says log p has no kinks, so the
 *   Stein identities hold with these scores. Callbacks return 0 on success,
 *   and must be safe to call from several threads at once (keep data
 *   read-only after init, as here).
 *
 * BUILD ONE
 *   cc -shared -fPIC -o my.so my.c $(pkg-config --cflags --libs gsl) -I<scoreloss include>
 *   (this file is built by meson as plugin_gumbel.so). A plug-in may call
 *   public sl_* functions such as sl_scores_from_logderivs when the host
 *   links libscoreloss dynamically; this one needs only the header, so it
 *   also loads into a statically linked host.
 *
 * USE IT
 *   scoreloss sample --dist plugin:./plugin_gumbel.so:scale=2 ...
 *   A path with a '/' is a file ("./" is the current directory); a bare name
 *   is searched on the library path like any shared library.
 *
 * THE DISTRIBUTION
 *   ARGS: "" or "scale=S" (S > 0, default 1). Per coordinate, u = x / S:
 *     log q = -u - e^{-u} - log S
 *     phi'  = (-1 + e^{-u}) / S        phi''   = -e^{-u} / S^2
 *     phi''' = e^{-u} / S^3            phi'''' = -e^{-u} / S^4
 *   For a product density the log-derivative tensors are diagonal, so their
 *   projections on the columns of V are sums over coordinates, and the
 *   scores follow from METHOD.md section 2 (score_tensors below). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "scoreloss/dist.h"

typedef struct gumbel {
    double scale;
    char name[64];
} gumbel;

static int gumbel_sample(void *data, size_t d, size_t n, gsl_rng *rng, double *X) {
    const gumbel *p = data;
    for (size_t j = 0; j < n * d; ++j) X[j] = gsl_ran_gumbel1(rng, 1.0, 1.0) * p->scale;
    return 0;
}

static int gumbel_log_density(void *data, size_t d, const double *x, double *logp) {
    const gumbel *p = data;
    double sum = 0.0;
    for (size_t i = 0; i < d; ++i) {
        const double u = x[i] / p->scale;
        sum += -u - exp(-u) - log(p->scale);
    }
    *logp = sum;
    return 0;
}

/* phi' .. phi'''' of one coordinate. */
static void gumbel_derivs(const gumbel *p, double x, double phi[4]) {
    const double S = p->scale, e = exp(-x / S);
    phi[0] = (-1.0 + e) / S;
    phi[1] = -e / (S * S);
    phi[2] = e / (S * S * S);
    phi[3] = -e / (S * S * S * S);
}

static int gumbel_gradient(void *data, size_t d, const double *x, double *g) {
    for (size_t i = 0; i < d; ++i) {
        double phi[4];
        gumbel_derivs(data, x[i], phi);
        g[i] = phi[0];
    }
    return 0;
}

static int gumbel_hessian(void *data, size_t d, const double *x, double *H) {
    memset(H, 0, d * d * sizeof *H);
    for (size_t i = 0; i < d; ++i) {
        double phi[4];
        gumbel_derivs(data, x[i], phi);
        H[i * d + i] = phi[1];
    }
    return 0;
}

/* S3 (m^3) or S4 (m^4) projected on V (d x m): project the diagonal
 * log-derivative tensors, then apply
 *   -S3 = g^3 + 3 sym(g H) + G3,
 *    S4 = g^4 + 6 sym(g g H) + 3 sym(H H) + 4 sym(g G3) + G4. */
static int score_tensors(const gumbel *p, size_t d, const double *x, size_t m, const double *V,
                         double *S3, double *S4) {
    const size_t m2 = m * m, m3 = m2 * m;
    double *g = calloc(m + m2 + m3 + m3 * m, sizeof *g);
    if (!g) return 1;
    double *H = g + m, *G3 = H + m2, *G4 = G3 + m3;
    for (size_t i = 0; i < d; ++i) {
        const double *v = V + i * m;
        double phi[4];
        gumbel_derivs(p, x[i], phi);
        for (size_t a = 0; a < m; ++a) {
            g[a] += phi[0] * v[a];
            for (size_t b = 0; b < m; ++b) {
                H[a * m + b] += phi[1] * v[a] * v[b];
                for (size_t c = 0; c < m; ++c) {
                    G3[a * m2 + b * m + c] += phi[2] * v[a] * v[b] * v[c];
                    for (size_t e = 0; e < m; ++e)
                        G4[a * m3 + b * m2 + c * m + e] += phi[3] * v[a] * v[b] * v[c] * v[e];
                }
            }
        }
    }
#define h(i, j) H[(i)*m + (j)]
#define G(i, j, k) G3[(i)*m2 + (j)*m + (k)]
    for (size_t a = 0; a < m; ++a)
        for (size_t b = 0; b < m; ++b)
            for (size_t c = 0; c < m; ++c) {
                if (S3)
                    S3[a * m2 + b * m + c] = -(g[a] * g[b] * g[c] + g[a] * h(b, c) +
                                               g[b] * h(a, c) + g[c] * h(a, b) + G(a, b, c));
                if (S4)
                    for (size_t e = 0; e < m; ++e)
                        S4[a * m3 + b * m2 + c * m + e] =
                            g[a] * g[b] * g[c] * g[e] + g[a] * g[b] * h(c, e) +
                            g[a] * g[c] * h(b, e) + g[a] * g[e] * h(b, c) + g[b] * g[c] * h(a, e) +
                            g[b] * g[e] * h(a, c) + g[c] * g[e] * h(a, b) + h(a, b) * h(c, e) +
                            h(a, c) * h(b, e) + h(a, e) * h(b, c) + g[a] * G(b, c, e) +
                            g[b] * G(a, c, e) + g[c] * G(a, b, e) + g[e] * G(a, b, c) +
                            G4[a * m3 + b * m2 + c * m + e];
            }
#undef h
#undef G
    free(g);
    return 0;
}

static int gumbel_score3(void *data, size_t d, const double *x, size_t m, const double *V,
                         double *S3) {
    return score_tensors(data, d, x, m, V, S3, NULL);
}

static int gumbel_score4(void *data, size_t d, const double *x, size_t m, const double *V,
                         double *S4) {
    return score_tensors(data, d, x, m, V, NULL, S4);
}

static void gumbel_destroy(void *data) {
    free(data);
}

/* ARGS is "" or "scale=S". */
static int parse_args(const char *args, double *scale, char *err, size_t errlen) {
    *scale = 1.0;
    if (!args || !*args) return 0;
    if (strncmp(args, "scale=", 6) != 0) {
        snprintf(err, errlen, "plugin_gumbel: unknown argument '%s' (expected scale=S)", args);
        return 1;
    }
    const char *text = args + 6;
    char *end;
    errno = 0;
    double s = strtod(text, &end);
    if (end == text || *end != '\0' || errno || !isfinite(s) || s <= 0) {
        snprintf(err, errlen, "plugin_gumbel: scale must be a positive number, got '%s'", text);
        return 1;
    }
    *scale = s;
    return 0;
}

int sl_plugin_init(int abi, const char *args, size_t d, sl_dist_callbacks *cb, char *err,
                   size_t errlen) {
    /* Refuse a host with another callback layout rather than crash in it. */
    if (abi != SL_PLUGIN_ABI) {
        snprintf(err, errlen, "plugin_gumbel: built for plug-in ABI %d, the host has ABI %d",
                 SL_PLUGIN_ABI, abi);
        return 1;
    }
    (void)d; /* any dimension */
    double scale;
    if (parse_args(args, &scale, err, errlen)) return 1;
    gumbel *p = malloc(sizeof *p);
    if (!p) {
        snprintf(err, errlen, "plugin_gumbel: out of memory");
        return 1;
    }
    p->scale = scale;
    snprintf(p->name, sizeof p->name, "gumbel(scale=%g)", scale);

    cb->name = p->name; /* copied by the host */
    cb->dim = 0;        /* any dimension */
    cb->sample = gumbel_sample;
    cb->log_density = gumbel_log_density;
    cb->gradient = gumbel_gradient;
    cb->hessian = gumbel_hessian;
    cb->score3 = gumbel_score3;
    cb->score4 = gumbel_score4;
    cb->destroy = gumbel_destroy;
    cb->data = p;
    cb->smooth = 1;
    return 0;
}
