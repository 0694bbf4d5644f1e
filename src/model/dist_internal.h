/* The inside of sl_dist (internal): a type table of functions, as GSL's
 * algorithm types are, and the state it works on. */
#ifndef SL_MODEL_DIST_INTERNAL_H
#define SL_MODEL_DIST_INTERNAL_H

#include <stddef.h>

#include <gsl/gsl_rng.h>

#include "scoreloss/dist.h"

typedef struct sl_dist_type {
    const char *name;
    /* n rows into X (n x d) from rng. Required. */
    sl_status (*sample)(const void *state, size_t d, size_t n, gsl_rng *rng, double *X);
    /* Normalised log p(x). NULL when unknown. */
    sl_status (*log_density)(const void *state, size_t d, const double *x, double *logp);
    /* g = grad log p (d) and, when H != NULL, its Hessian (d x d). NULL when unknown. */
    sl_status (*grad_hess)(const void *state, size_t d, const double *x, double *g, double *H);
    /* Exact score tensors projected on the m columns of V (d x m, never NULL
     * here: the dispatcher passes the identity for V = NULL). Outputs S1 (m),
     * S2 (m^2), S3 (m^3), S4 (m^4); each may be NULL. NULL when S3 and S4 are
     * unknown: the dispatcher then serves S1 and S2 from grad_hess. */
    sl_status (*scores)(const void *state, size_t d, const double *x, size_t m, const double *V,
                        double *S1, double *S2, double *S3, double *S4);
    /* Releases state. May be NULL. */
    void (*free)(void *state);
} sl_dist_type;

struct sl_dist {
    const sl_dist_type *type;
    void *state;
    size_t d;
    unsigned caps;
    char *name;
};

/* Wraps state in a new sl_dist. On failure the state is released with
 * type->free. caps must include what the type's non-NULL functions give. */
sl_status sl_dist_wrap(const sl_dist_type *type, void *state, size_t d, unsigned caps,
                       const char *name, sl_dist **out);

/* Built-in constructors (dist_gauss.c, dist_product.c, dist_student.c,
 * plugin.c). Each validates its arguments and sets a message on failure. */
sl_status sl_dist_gauss_alloc(size_t d, const char *param_file, sl_dist **out);
sl_status sl_dist_gmm_alloc(size_t d, const char *param_file, sl_dist **out);
sl_status sl_dist_gmm2_alloc(size_t d, sl_dist **out);
sl_status sl_dist_agmm_alloc(size_t d, sl_dist **out);
sl_status sl_dist_laplace_alloc(size_t d, sl_dist **out);
sl_status sl_dist_logistic_alloc(size_t d, sl_dist **out);
sl_status sl_dist_student_alloc(size_t d, double nu, sl_dist **out);
sl_status sl_dist_plugin_alloc(const char *path, const char *args, size_t d, sl_dist **out);

/* Marginals (dist_gauss.c): 1 when D is a Gaussian or a Gaussian mixture,
 * and its marginal z = U'x for U (d x k) already checked by sl_dist_marginal. */
int sl_dist_is_gmm(const sl_dist *D);
sl_status sl_dist_gmm_marginal(const sl_dist *D, size_t k, const double *U, sl_dist **out);

/* Projections used by the built-ins: xv = V' x (m), VtAV = V' A V (m x m). */
void sl_project_vec(size_t d, size_t m, const double *V, const double *x, double *xv);
void sl_project_sym(size_t d, size_t m, const double *V, const double *A, double *VtAV,
                    double *work /* d x m */);

#endif
