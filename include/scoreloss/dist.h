/* Input distributions: sampling and exact score functions.
 *
 * Conventions (METHOD.md section 2): l = log p, g = grad l, H = Hessian of l,
 * G3 and G4 the third and fourth derivative tensors of l. The m-th order score
 * is S_m(x) = (-1)^m grad^m p(x) / p(x), so S_1 = -g, S_2 = g g' + H, and S_4
 * involves g, H, G3 and G4. The library never forms a d^4 tensor: the higher
 * scores are returned projected onto the m columns of a d x m matrix V, as the
 * m^j tensors S_j(V, ..., V), with m small (2 for a contraction
 * S_4(u, u, v, v), k for a whitened loss).
 *
 * A distribution is built from a specification string
 *
 *   gauss               N(0, I)
 *   gauss:FILE.csv      N(m, C), one parameter row (see below)
 *   gmm2                1/2 N(1_d, I) + 1/2 N(-1_d, I)
 *   gmm:FILE.csv        general Gaussian mixture, one parameter row per component
 *   agmm                3 anisotropic, correlated Gaussians, weights .4/.35/.25 (dist_gauss.c)
 *   laplace             product of e^{-|x_i|}/2
 *   student[:NU]        multivariate t, identity scale, NU degrees of freedom (default 5)
 *   logistic            product of standard logistic densities
 *   plugin:PATH.so[:ARGS]  a shared object exporting sl_plugin_init (below); a PATH
 *                          without '/' is searched on the library path (./x.so: current directory)
 *
 * Parameter files are CSV with columns weight,m1..md,c1_1,c1_2,..,cd_d (the
 * covariance row-major, symmetric positive definite); the weights of a
 * mixture are normalised to sum to one.
 *
 * Samples from a CSV file are a distribution too (sl_dist_alloc_samples):
 * sample-only, it draws rows with replacement.
 *
 * Thread safety: a sl_dist is read-only after construction and its functions
 * may be called from several threads at once. User callbacks must allow that
 * too (or the caller must not use threads). */
#ifndef SCORELOSS_DIST_H
#define SCORELOSS_DIST_H

#include <stddef.h>
#include <stdint.h>

#include <gsl/gsl_rng.h>

#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_dist sl_dist;

/* Capabilities, as bit flags of sl_dist_caps(). */
enum {
    SL_DIST_SAMPLE = 1u << 0, /* can draw samples */
    SL_DIST_LOGPDF = 1u << 1, /* normalised log-density */
    SL_DIST_GRAD = 1u << 2,   /* g = grad log p */
    SL_DIST_HESS = 1u << 3,   /* H = Hessian of log p */
    SL_DIST_SCORE4 = 1u << 4, /* exact S_4 (third and fourth log-derivatives included) */
    SL_DIST_SMOOTH = 1u << 5, /* log p is smooth: Stein's identities hold with these formulas */
    SL_DIST_SCORE3 = 1u << 6  /* exact S_3 */
};

/* A user-defined distribution. Callbacks return 0 on success and non-zero on
 * failure. Only `sample` is required; without gradient and hessian the
 * distribution is sample-only and asking for its exact scores is an error.
 * Arrays are row-major. */
typedef struct sl_dist_callbacks {
    const char *name; /* shown in messages and outputs; copied */
    size_t dim;       /* the only dimension supported, or 0 for any */
    /* n samples into X (n x d), drawing only from rng. */
    int (*sample)(void *data, size_t d, size_t n, gsl_rng *rng, double *X);
    /* log p(x), normalised. Optional. */
    int (*log_density)(void *data, size_t d, const double *x, double *logp);
    /* g = grad log p(x) (d). Optional. */
    int (*gradient)(void *data, size_t d, const double *x, double *g);
    /* H = Hessian of log p(x) (d x d). Optional, needs gradient. */
    int (*hessian)(void *data, size_t d, const double *x, double *H);
    /* The third-order score projected on the m columns of V (d x m):
     * S3[a,b,c] = S_3(x)(v_a, v_b, v_c), m^3 values. Optional. */
    int (*score3)(void *data, size_t d, const double *x, size_t m, const double *V, double *S3);
    /* The fourth-order score projected on the m columns of V (d x m):
     * S4[a,b,c,e] = S_4(x)(v_a, v_b, v_c, v_e), m^4 values. Optional; without it
     * S_3 and S_4 are unavailable (they need third and fourth log-derivatives
     * that g and H do not carry). */
    int (*score4)(void *data, size_t d, const double *x, size_t m, const double *V, double *S4);
    /* Releases data when the distribution is freed. Optional. */
    void (*destroy)(void *data);
    void *data;
    /* Set to 1 when log p is smooth (no kinks), so Stein's identity holds. */
    int smooth;
} sl_dist_callbacks;

/* The one symbol a plug-in exports, with this signature:
 *
 *   int sl_plugin_init(int abi, const char *args, size_t d, sl_dist_callbacks *cb,
 *                      char *err, size_t errlen);
 *
 * abi is SL_PLUGIN_ABI as the host was built; a plug-in built against another
 * value must refuse (write a message, return non-zero). args is the text after
 * the second ':' of "plugin:PATH.so:ARGS" ("" if none). On success it fills cb
 * and returns 0; on failure it writes a one-line message into err (errlen
 * bytes) and returns non-zero; the host then does not call cb->destroy and
 * reports SL_EINVAL. */
#define SL_PLUGIN_SYMBOL "sl_plugin_init"
#define SL_PLUGIN_ABI 1
typedef int (*sl_plugin_init_fn)(int abi, const char *args, size_t d, sl_dist_callbacks *cb,
                                 char *err, size_t errlen);

/* Builds a distribution of dimension d from a specification (above). */
sl_status sl_dist_from_spec(const char *spec, size_t d, sl_dist **out);

/* Wraps user callbacks (copied; cb->data is owned by the distribution from
 * now on and released with cb->destroy, even when this call fails). */
sl_status sl_dist_from_callbacks(const sl_dist_callbacks *cb, size_t d, sl_dist **out);

/* A sample-only distribution that draws rows of X (n x d, copied) with
 * replacement; name is used in messages (e.g. the file name). */
sl_status sl_dist_from_samples(const char *name, size_t n, size_t d, const double *X,
                               sl_dist **out);

void sl_dist_free(sl_dist *dist);

size_t sl_dist_dim(const sl_dist *dist);
const char *sl_dist_name(const sl_dist *dist);
unsigned sl_dist_caps(const sl_dist *dist);

/* n samples into X (n x d). Rows are drawn in blocks of SL_RNG_BLOCK, block b
 * from stream b of seed, in parallel when OpenMP is on: the result depends on
 * the seed only. */
sl_status sl_dist_sample(const sl_dist *dist, uint64_t seed, size_t n, double *X);

/* log p at n points. */
sl_status sl_dist_log_density(const sl_dist *dist, size_t n, const double *X, double *logp);

/* g (n x d) and, if H is not NULL, the Hessian of log p (n x d x d) at n points. */
sl_status sl_dist_grad_hess(const sl_dist *dist, size_t n, const double *X, double *G, double *H);

/* The exact score tensors at one point x, projected on the m columns of V
 * (d x m, row-major; V = NULL means the identity, m = d):
 * S1 (m), S2 (m x m), S3 (m^3), S4 (m^4), each row-major; any may be NULL to
 * skip it. S1 and S2 need SL_DIST_HESS, S3 needs SL_DIST_SCORE3 and S4
 * needs SL_DIST_SCORE4. */
sl_status sl_dist_scores(const sl_dist *dist, const double *x, size_t m, const double *V,
                         double *S1, double *S2, double *S3, double *S4);

/* The distribution of z = U'x (U: d x k with orthonormal columns, row-major)
 * when it is known in closed form: for gauss and the Gaussian mixtures (gmm,
 * gmm2, agmm) it is the Gaussian mixture with means U'm_c and covariances
 * U'C_c U, with exact scores of every order. SL_EUNSUPPORTED for the others.
 * SL_EINVAL unless 1 <= k <= d and U'U = I to 1e-8 entrywise. The result is
 * a new distribution of dimension k (free it with sl_dist_free), independent
 * of dist and of U afterwards. */
sl_status sl_dist_marginal(const sl_dist *dist, size_t k, const double *U, sl_dist **out);

/* Score tensors from projected log-derivatives (METHOD.md section 2):
 * given g (m), H (m x m), G3 (m^3, or NULL for 0) and G4 (m^4, or NULL for 0)
 * of log p in some m directions, the tensors S1..S4 in those directions. Any
 * output may be NULL. This is how every built-in with a known log-density
 * derivative builds its exact scores, and how a locally quadratic estimate
 * (G3 = G4 = 0) builds its S_4. */
void sl_scores_from_logderivs(size_t m, const double *g, const double *H, const double *G3,
                              const double *G4, double *S1, double *S2, double *S3, double *S4);

#ifdef __cplusplus
}
#endif
#endif
