/* The planted one-hidden-layer network (METHOD.md section 1):
 *
 *   y = sum_{i=1..k} a_i sigma(w_i . x) + xi,   xi ~ N(0, noise^2).
 *
 * W is k x d (row i is w_i), row-major. */
#ifndef SCORELOSS_NETWORK_H
#define SCORELOSS_NETWORK_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_act {
    SL_ACT_RELU,
    SL_ACT_SIGMOID,
    SL_ACT_TANH,
    SL_ACT_ERF,
    SL_ACT_SOFTPLUS,
    SL_ACT_QUADRATIC,
    SL_ACT_CUBIC
} sl_act;

#define SL_ACT_COUNT 7

/* "relu", "sigmoid", "tanh", "erf", "softplus", "quadratic", "cubic". */
sl_status sl_act_from_name(const char *name, sl_act *out);
const char *sl_act_name(sl_act act);

/* The order-th derivative (0..4) of the activation at z, analytic. For relu
 * the derivatives are the almost-everywhere ones (1{z>0}, then 0): the delta
 * terms at the kink are not representable pointwise. */
double sl_act_eval(sl_act act, int order, double z);

typedef struct sl_network {
    size_t k, d;
    sl_act act;
    double *W; /* k x d, row-major */
    double *a; /* k */
} sl_network;

/* A network with W = 0 and a = 1. */
sl_status sl_network_alloc(size_t k, size_t d, sl_act act, sl_network **out);
void sl_network_free(sl_network *net);

/* Sets W from a specification:
 *   "orthonormal"   random k x d with orthonormal rows (QR of a Gaussian matrix)
 *   "identity"      the first k rows of the identity
 *   "random"        Gaussian rows scaled to unit norm
 *   "random:COND"   U diag(s) V' with U, V random orthonormal and singular
 *                   values geometrically spaced from 1 down to 1/COND
 *                   (COND >= 1), so cond(W) = COND. */
sl_status sl_network_set_w(sl_network *net, const char *spec, uint64_t seed);

/* Sets a from a specification:
 *   "ones"          all ones
 *   "positive"      independent uniform on [0.5, 1.5]
 *   "A1,A2,...,Ak"  the k values given */
sl_status sl_network_set_a(sl_network *net, const char *spec, uint64_t seed);

/* Noise-free outputs: y[j] = sum_i a_i sigma(w_i . x_j) for the n rows of X. */
sl_status sl_network_predict(const sl_network *net, size_t n, const double *X, double *y);

/* Labels with Gaussian noise of standard deviation noise (0 allowed), drawn
 * in blocks of SL_RNG_BLOCK rows from streams of seed: same result whatever
 * the thread count. */
sl_status sl_network_label(const sl_network *net, size_t n, const double *X, double noise,
                           uint64_t seed, double *y);

/* Truth files: CSV with one row per hidden unit and columns a,w1..wd (the
 * activation and noise recorded in a comment line). */
sl_status sl_network_read(const char *path, sl_act act, sl_network **out);
sl_status sl_network_write(const sl_network *net, const char *path, const char *comment);

#ifdef __cplusplus
}
#endif
#endif
