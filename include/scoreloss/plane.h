/* Losses on two-dimensional slices of their parameter space: the pictures
 * behind "does this loss have a good landscape on this distribution".
 *
 * A plane is a centre C and two directions D1, D2 in a loss's parameter
 * space; the grid point (u, v) is C + u D1 + v D2. Every function takes the
 * grid as two plain arrays (u of length nu, v of length nv) and fills
 * nv x nu arrays (row-major, v the slow index, u the fast one) with the loss
 * and the norm of its gradient, so a binding in another language needs no
 * more than arrays and the opaque sl_moments pointer.
 *
 * The landscape losses (landscape, signfree) live in whitened space: B is
 * k x k with columns b_j (as in loss.h). They are evaluated on the whole
 * whitened fourth moment T (tensor mode), and each grid point is first put
 * on the constraint the optimiser keeps: the columns normalised (sphere) or
 * made orthonormal by the same QR retraction as the SGD (orthonormal). The
 * gradient norm is the norm of the gradient projected onto the constraint's
 * tangent space there, so it vanishes at the constrained critical points.
 * A point of input space (rows w_i, k x d) enters whitened space as
 * b_i = P'w_i / |P'w_i|, the inverse of sl_recover's mapping back
 * (w_i proportional to U |Lambda|^{1/2} b_i).
 *
 * The squared loss (l2) lives in input space: its parameters are (W, a),
 * W k x d row-major then a (k), nparam = k d + k, exactly as sl_l2_objective
 * takes them, and its gradient norm is the plain Euclidean one. Each grid
 * point is one full pass over the rows given: pass a subsample for large
 * grids on large data.
 *
 * The angles parametrisation (k = 2): b_j = (cos t_j, sin t_j) in whitened
 * space with both angles on [0, pi) (b and -b are the same direction for
 * these even losses), so every minimum of the landscape loss on the circle,
 * collapsed ones included (t_1 = t_2), shows in one square picture. The
 * squared loss on the same square is profiled: w_j = M b_j / |M b_j| mapped
 * back to input space (M = U |Lambda|^{1/2}), the signs and a fitted by
 * least squares (sl_second_layer_fit), so the value is the best squared loss
 * with hidden directions at those angles; its gradient norm is that of the
 * profiled loss with respect to the two angles (the envelope theorem: the
 * partial derivative at the fitted a). */
#ifndef SCORELOSS_PLANE_H
#define SCORELOSS_PLANE_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/loss.h"
#include "scoreloss/network.h"
#include "scoreloss/recover.h"
#include "scoreloss/sgd.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The moments sl_recover would use, on all n rows: sl_recover_moments
 * (recover.h) with the same options, so the route, scores, seeds, label
 * detrending and T are those of a recovery with holdout 0. On return T and
 * the signal are computed; *route (if not NULL) says which route was taken.
 * Free with sl_moments_free. */
sl_status sl_plane_moments(const sl_recover_options *opt, size_t n, size_t d, const double *X,
                           const double *y, sl_moments **out, sl_recover_route *route);

/* Whitened columns from input-space rows: B (k x k, column i) = P'w_i / |P'w_i|
 * for the k rows of W (k x m->d). Fails with SL_ENUMERIC when some P'w_i is
 * zero (a row orthogonal to the span of M2's top eigenvectors). */
sl_status sl_plane_whiten(const sl_moments *m, const double *W, double *B);

/* Input-space rows from whitened columns: W (k x d) row i = U |Lambda|^{1/2} b_i
 * (sl_recover's mapping back, not normalised). */
sl_status sl_plane_unwhiten(const sl_moments *m, const double *B, double *W);

/* The landscape loss lo (kind landscape or signfree; lo->tensor is ignored,
 * the evaluation is on T) over the plane C + u D1 + v D2 of k x k matrices,
 * each point put on the constraint proj (SL_PROJ_SPHERE or
 * SL_PROJ_ORTHONORMAL; SL_PROJ_NONE evaluates the raw point and reports the
 * plain gradient norm). loss and grad_norm are nv x nu. m needs T (see
 * sl_plane_moments). */
sl_status sl_plane_landscape(sl_moments *m, const sl_landscape_options *lo, sl_projection proj,
                             const double *C, const double *D1, const double *D2, size_t nu,
                             const double *u, size_t nv, const double *v, double *loss,
                             double *grad_norm);

/* The landscape loss over the angles of the two whitened columns (k = 2):
 * b_1 = (cos u_i, sin u_i), b_2 = (cos v_j, sin v_j); the gradient norm is
 * that with respect to the two angles. loss and grad_norm are nv x nu. */
sl_status sl_plane_landscape_angles(sl_moments *m, const sl_landscape_options *lo, size_t nu,
                                    const double *u, size_t nv, const double *v, double *loss,
                                    double *grad_norm);

/* The squared loss of a student network of activation act over the plane
 * C + u D1 + v D2 of parameter vectors (W, a) (k d + k each), on the n rows
 * of X (n x d) and y. loss and grad_norm are nv x nu. */
sl_status sl_plane_l2(size_t n, size_t d, const double *X, const double *y, size_t k, sl_act act,
                      const double *C, const double *D1, const double *D2, size_t nu,
                      const double *u, size_t nv, const double *v, double *loss, double *grad_norm);

/* The profiled squared loss over the angles of the two whitened columns
 * (k = 2; see the top of this file), on the n rows of X (n x m->d) and y.
 * loss and grad_norm are nv x nu. */
sl_status sl_plane_l2_angles(const sl_moments *m, size_t n, const double *X, const double *y,
                             sl_act act, size_t nu, const double *u, size_t nv, const double *v,
                             double *loss, double *grad_norm);

/* Two random directions for a plane through C (nparam values): Gaussian,
 * made tangent to the constraint at C when C is a k x k matrix (nparam =
 * k * k): for SL_PROJ_SPHERE each column orthogonal to C's column, for
 * SL_PROJ_ORTHONORMAL D - C sym(C'D) (C times a skew matrix, the tangent
 * space of the orthonormal matrices when C is one); then made orthogonal to
 * each other and each scaled to the Frobenius norm of C (of 1 when C is
 * zero). With D1 given (not NULL on entry, *fixed = 1) only D2 is drawn,
 * orthogonal to D1 and of D1's norm: the plane through C and a second
 * point C + D1. Seeded; the stream is sl_rng_alloc(seed, 0). */
sl_status sl_plane_directions(size_t nparam, size_t k, sl_projection proj, const double *C,
                              uint64_t seed, int fixed, double *D1, double *D2);

#ifdef __cplusplus
}
#endif
#endif
