/* Options and results by name, for callers that reach the library through a
 * foreign-function interface (the Python package in python/scoreloss).
 *
 * sl_score_options and sl_recover_options are large structs that grow as the
 * library does; a binding that mirrored their layout would silently read and
 * write the wrong fields after any change. Here they live on the heap behind
 * a pointer and are set by name, with the values written as text, exactly
 * as the command line takes them (`scoreloss score --help`,
 * `scoreloss recover --help`), so a binding and the command line configure a
 * run the same way and report the same messages. Results are read by name
 * too: arrays as views into the result (valid until it is freed), numbers as
 * doubles, texts as strings.
 *
 * The two small structs a binding does mirror (sl_dist_callbacks, whose
 * layout is the plug-in ABI, and sl_network) can be checked against
 * sl_bind_layout. */
#ifndef SCORELOSS_BIND_H
#define SCORELOSS_BIND_H

#include <stddef.h>

#include "scoreloss/dist.h"
#include "scoreloss/loss.h"
#include "scoreloss/network.h"
#include "scoreloss/recover.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- score options ------------------------------------------------------------ */

/* A new sl_score_options with sl_score_options_default's values. */
sl_status sl_score_options_alloc(sl_score_options **out);
void sl_score_options_free(sl_score_options *opt);

/* Sets one option from text, with the names and values of `scoreloss score`:
 *   bandwidth  auto | H | knn:K | const:C     bw-const  C > 0 (bandwidth const:C)
 *   strategy   auto | allpairs | neighbours   cutoff    R > 0
 *   knn-eps    E >= 0                         shrink    NU0 >= 0
 *   seed       a non-negative integer
 * SL_EINVAL with a message naming the option for an unknown name or a bad
 * value; opt is unchanged then. */
sl_status sl_score_options_set(sl_score_options *opt, const char *name, const char *value);

/* The distribution of method exact (borrowed: it must outlive the options'
 * use; NULL clears it). */
void sl_score_options_set_dist(sl_score_options *opt, const sl_dist *dist);

/* Views into scores: "G" (n x d), "H" (n x d x d), "h" (n; absent for methods
 * without a per-point bandwidth). An absent array gives *data = NULL and
 * *len = 0; an unknown name is SL_EINVAL. */
sl_status sl_scores_array(const sl_scores *s, const char *name, const double **data, size_t *len);

/* "n", "d", "bandwidth", "regularised", "bw_ngrid". */
sl_status sl_scores_number(const sl_scores *s, const char *name, double *value);

/* "method", "strategy" (auto, allpairs or neighbours); NULL for an unknown
 * name. */
const char *sl_scores_text(const sl_scores *s, const char *name);

/* ---- recover options ------------------------------------------------------------ */

/* A new sl_recover_options with sl_recover_options_default's values and k
 * hidden units. */
sl_status sl_recover_options_alloc(size_t k, sl_recover_options **out);
void sl_recover_options_free(sl_recover_options *opt);

/* Sets one option from text, with the names and values of `scoreloss recover`:
 *   k, loss, score, route, mode, act, mu, lambda, constraint, lr, batch,
 *   epochs (a positive integer or auto), restarts, seed, holdout, bandwidth,
 *   s4 (cumulant, kde or quadratic), s4-bandwidth (H > 0 or auto),
 *   s4-reference (M >= 1, all or auto), u-rows (N >= 0), assume
 *   (independent, or none to clear it), detrend (0..4 or auto), refine
 *   (auto, cp or none),
 * and besides them tensor-steps and the score options of
 * sl_score_options_set other than seed (bw-const, strategy, cutoff, knn-eps,
 * shrink), which go to score_opt. SL_EINVAL with a message naming the
 * option for an unknown name or a bad value; opt is unchanged then. */
sl_status sl_recover_options_set(sl_recover_options *opt, const char *name, const char *value);

/* The input distribution for score exact, and the planted network for the
 * errors (both borrowed; NULL clears). */
void sl_recover_options_set_dist(sl_recover_options *opt, const sl_dist *dist);
void sl_recover_options_set_truth(sl_recover_options *opt, const sl_network *truth);

/* The landscape loss's options and the constraint on its columns as the
 * options set them (loss sets the kind, mu and lambda their fields,
 * constraint the projection), for the plane functions (plane.h). */
const sl_landscape_options *sl_recover_options_landscape(const sl_recover_options *opt);
sl_projection sl_recover_options_projection(const sl_recover_options *opt);

/* ---- recover results -------------------------------------------------------------- */

/* Views into a result: "W_hat" (k x d), "a_hat" (k), "restart_error"
 * (restarts), "restart_W" (restarts x k x d), "restart_loss" (restarts),
 * "m2_evals" (nevals), "signal" (k), "found_signal" (k), "found_signal_se"
 * (k), "truth_signal" (ntruth_signal). An absent array gives *data = NULL
 * and *len = 0; an unknown name is SL_EINVAL. */
sl_status sl_recover_result_array(const sl_recover_result *r, const char *name, const double **data,
                                  size_t *len);

/* "k", "d", "n_train", "n_holdout", "have_error", "err_max", "err_min",
 * "distinct", "worst_angle", "sign", "tensor_mode", "holdout_error",
 * "train_error", "final_loss", "seconds_scores", "seconds_moments",
 * "seconds_sgd", "seconds_second_layer", "seconds_s4", "detrend", "detrend_m2",
 * "refined", "refine_residual", "t_estimated", "independent", "u_rows", "s4_h",
 * "s4_nref", "s4_mean_neighbours", "s4_mean_effective", "s4_regularised",
 * "steps", "restarts", "best_restart" (0-based), "ntrace". Error fields are
 * NAN without a truth, the s4_ fields without an estimated S_4 (t_estimated
 * 0), refine_residual (the refined fit's root residual) without a
 * refinement. */
sl_status sl_recover_result_number(const sl_recover_result *r, const char *name, double *value);

/* "route", "stop_reason", "warnings" (one per line, "" when none),
 * "s4_estimator" (the projected route's S_4 estimator, "" when none); NULL
 * for an unknown name. */
const char *sl_recover_result_text(const sl_recover_result *r, const char *name);

/* The optimiser's trace as ntrace x 8 numbers (row-major), the columns of
 * sl_trace_write: restart, step, epoch, loss, grad_norm, error (NAN without
 * a truth), seconds, full. out must hold ntrace * 8 values. */
void sl_recover_result_trace(const sl_recover_result *r, double *out);

/* ---- moments ----------------------------------------------------------------------- */

/* Views into moments (loss.h): "M2" (d x d), "evals" (d), "U" (d x k), "P"
 * (d x k), "T" (k^4, absent until computed), "signal" (k, absent until
 * estimated). An absent array gives *data = NULL and *len = 0; an unknown
 * name is SL_EINVAL. */
sl_status sl_moments_array(const sl_moments *m, const char *name, const double **data, size_t *len);

/* ---- layouts ----------------------------------------------------------------------- */

/* The byte offset of field in type, or the size of type when field is NULL,
 * for the structs a binding mirrors: "sl_dist_callbacks" and "sl_network".
 * -1 for an unknown type or field. */
long sl_bind_layout(const char *type, const char *field);

#ifdef __cplusplus
}
#endif
#endif
