/* Recovering a planted network from samples (x_j, y_j): the whole pipeline
 * of METHOD.md sections 4 and 5, and the measures of how well it did.
 *
 *   scores at the samples -> moments, whitening -> signal and sign
 *   -> SGD on the landscape loss (or the sign-free one) in whitened space
 *   -> directions mapped back, w_i proportional to U |Lambda|^{1/2} b_i
 *   -> signs and second layer by least squares -> recovery error
 *
 * or, for comparison, SGD on the plain squared loss over (W, a) directly.
 *
 * Recovery error (section 5): with unit-normalised true rows w_i and
 * estimates w_hat_i, Q = |W_hat W'| (entries are |cosines|, rows the
 * estimates, columns the true directions):
 *   err_max  = max(1 - min over rows of max Q, 1 - min over columns of max Q),
 *              zero only when every true direction is found (the headline);
 *   err_min  = the same with min for the outer max (the reference
 *              experiments' form; zero when every estimate lies on some true
 *              direction, even all on the same one: report it only beside
 *              err_max);
 *   distinct = the number of true directions that are some estimate's best
 *              match;
 *   worst_angle = the largest angle in degrees between matched pairs after
 *              the optimal matching of estimates to true directions (the
 *              Hungarian algorithm on 1 - Q). */
#ifndef SCORELOSS_RECOVER_H
#define SCORELOSS_RECOVER_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/dist.h"
#include "scoreloss/loss.h"
#include "scoreloss/network.h"
#include "scoreloss/s4.h"
#include "scoreloss/score.h"
#include "scoreloss/sgd.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- measuring recovery -------------------------------------------------------- */

typedef struct sl_recovery_error {
    double err_max;     /* the headline */
    double err_min;     /* the reference's form, only ever reported beside err_max */
    size_t distinct;    /* true directions that are some estimate's best match */
    double worst_angle; /* degrees, after optimal matching */
} sl_recovery_error;

/* The errors of the kh estimates W_hat (kh x d) against the k true rows W
 * (k x d); rows need not be normalised but must be non-zero. With kh != k
 * the matching pairs min(kh, k) of them. */
sl_status sl_recovery_error_compute(size_t kh, size_t k, size_t d, const double *W_hat,
                                    const double *W, sl_recovery_error *out);

/* The assignment of minimal total cost for an n x n cost matrix (row-major,
 * finite): row i goes to column assign[i]. O(n^3) (the Hungarian algorithm
 * with potentials). Returns the total cost in *total if not NULL. */
sl_status sl_assignment(size_t n, const double *cost, size_t *assign, double *total);

/* ---- after the directions: signs and second layer -------------------------------- */

/* Given k unit directions (k x d rows), fits signs s_i in {+1, -1} and a by
 * least squares of y on sigma(s_i w_i . x) over n rows of X: for k <= 12
 * the best of all 2^k sign patterns (ties to the first in binary order, all
 * +1 first); beyond, signs start all +1, then the single flip that lowers
 * the residual most is taken while one does (for odd and even activations
 * a flip is absorbed in a_i or changes nothing, so none is tried). Writes the signed rows into
 * W_out (k x d; may alias W) and a (k); rss, if not NULL, gets
 * sum (y - y_hat)^2. For positively homogeneous activations (relu) only
 * a_i |w_i| is identifiable, which unit rows express. */
sl_status sl_second_layer_fit(size_t n, size_t d, const double *X, const double *y, size_t k,
                              sl_act act, const double *W, double *W_out, double *a, double *rss);

/* The relative prediction error sum (y - y_hat)^2 / sum (y - mean y)^2 of the
 * network (W, a) on n rows (NAN-free; SL_ENUMERIC when y is constant). */
sl_status sl_prediction_error(size_t n, size_t d, const double *X, const double *y, size_t k,
                              sl_act act, const double *W, const double *a, double *out);

/* ---- the pipeline ------------------------------------------------------------------ */

typedef enum sl_recover_loss {
    SL_RECOVER_LANDSCAPE = 0, /* the landscape-designed loss (sign from the signal) */
    SL_RECOVER_SIGNFREE,      /* - sum_j T(b_j^4)^2 over the whitened tensor */
    SL_RECOVER_L2             /* the plain squared loss over (W, a), no scores */
} sl_recover_loss;

/* "landscape", "signfree", "l2". */
sl_status sl_recover_loss_from_name(const char *name, sl_recover_loss *out);
const char *sl_recover_loss_name(sl_recover_loss loss);

/* Where the whitened fourth moment T comes from. */
typedef enum sl_recover_route {
    SL_ROUTE_AUTO = 0,  /* exact scores: full when the distribution has SL_DIST_SCORE4, else
                           projected when its marginal is known, else quadratic; llsfe and
                           kde scores: projected (full with assume_independent); the
                           model-based gauss and hermite: quadratic */
    SL_ROUTE_FULL,      /* T from the d-dimensional exact S_4, V = P; or, with
                           assume_independent, from the factorised fit (logdens.h) */
    SL_ROUTE_PROJECTED, /* T from the S_4 of the marginal of z = U'x, V = |Lambda|^{-1/2}
                           (METHOD.md section 4b): exact, or estimated from z alone by
                           options.s4 (s4.h), U from the d-dimensional scores of at most
                           u_rows rows and the whitening from M2 of z */
    SL_ROUTE_QUADRATIC  /* T from the per-sample (g, H): the locally quadratic S_4 */
} sl_recover_route;

const char *sl_recover_route_name(sl_recover_route route);

/* How the landscape loss is evaluated. */
typedef enum sl_recover_mode {
    SL_MODE_AUTO = 0, /* tensor when T is exact (full or projected route) or the loss is
                         sign-free, else per-sample minibatches */
    SL_MODE_TENSOR,   /* every step on the whole tensor T */
    SL_MODE_MINIBATCH /* per-sample minibatches of (P'g, P'HP): the locally quadratic S_4 */
} sl_recover_mode;

/* Messages and progress while the pipeline runs. */
typedef void (*sl_recover_message_fn)(const char *text, void *ctx);
typedef void (*sl_recover_progress_fn)(const char *phase, double fraction, void *ctx);

typedef struct sl_recover_options {
    size_t k;             /* hidden units to recover (1 <= k <= d); required */
    sl_recover_loss loss; /* default landscape */
    /* Scores: the method (default &sl_score_llsfe) and its options; exact
     * needs score_opt.dist (the input distribution, with gradient and
     * Hessian). score_opt.seed is replaced by a stream of seed. */
    const sl_score_type *score;
    sl_score_options score_opt;
    sl_recover_route route; /* default auto */
    /* The projected route with estimated scores: the S_4 estimator of z's
     * marginal (default kde; its seed is set here), and the rows whose
     * d-dimensional scores give M2 and U (a seeded subset; 0 = all; default
     * SL_RECOVER_U_ROWS). */
    sl_s4_options s4;
    size_t u_rows;
    /* llsfe's shrink chosen with the automatic bandwidth at those rows is at
     * least this (score_opt.shrink_min there; default SL_RECOVER_SHRINK_MIN;
     * other routes keep score_opt's). */
    double shrink_min;
    /* The coordinates of x are independent (ICA setting): T from 1-D
     * log-density fits of every coordinate (logdens.h), route full. */
    int assume_independent;
    /* The labels minus their least-squares polynomial of this degree in
     * z = U'x before the fourth moment (sl_detrend_cv; 0..4), on the
     * quadratic route and with exact scores. Stein's identity
     * E[S_4 q] = E[D^4 q] makes it an unbiased control variate with the exact
     * S_4: for degree <= 3 the correction is zero, for 4 the quartic's
     * fourth derivative is added back to T (tensor mode only). M2 sees the
     * labels minus their linear fit in x, or with exact scores and degree
     * >= 2 their quadratic fit with its Hessian added back (when that fit
     * has at most 300 terms and n >= 10 times as many rows). -1, the
     * default, is automatic: with the exact S_4 (routes full and projected
     * with exact scores) 4 in tensor mode and 3 in minibatch mode, lowered
     * to keep the fit within those bounds; 0 on the quadratic route, the
     * original method. On the estimated projected route a degree given here
     * replaces s4.detrend (the S_4 estimator's own, default 3). */
    int detrend;
    /* After the landscape loss: refine its directions by a least-squares fit
     * of the unwhitened T_z = T(U., U., U., U.) (sl_cp4_fit), whose noise
     * whitening has not amplified. 1 on, 0 off, -1 (the default) automatic:
     * on when T comes from the exact S_4 (tensor mode) or refit passes
     * follow (they refine after each pass); else off. */
    int refine;
    /* On the estimated projected route, after the refinement: this many
     * passes that estimate M2 and T again with the directions found as ridge
     * control variates and refine on them (SL_REFIT_MAX at most). The labels
     * lose their least-squares fit on the smoothed ReLUs of those directions
     * (beside the linear fit in x for M2, the cubic in z for T) and the
     * fit's second or fourth derivative is added back. The kinks are at
     * w_i'x = 0 (a network without biases, as plant makes it) and the
     * ridges are ReLUs whatever the activation: elsewhere the control
     * variate stays unbiased but removes less. With exact scores this
     * changes nothing in expectation whatever the directions (Stein's
     * identity); with estimated ones the estimator's error multiplies only
     * what the fit leaves, which shrinks as the directions approach the true
     * ones. Each pass costs one S_4 estimation; the d-dimensional scores are
     * kept from the first. -1 (the default): SL_REFIT_AUTO passes on that
     * route (needs refine not 0), none elsewhere; 0 none. */
    int refit;
    /* The rows whose S_4 estimates enter T in those passes: a seeded subset
     * of the fitted rows (0 = all; default SL_RECOVER_REFIT_ROWS). The
     * passes' labels have lost most of y, so T needs fewer rows than the
     * first estimate; the estimator's cost is proportional to them. */
    size_t refit_rows;
    /* After the refit passes, at most this many rounds of swaps (default 0,
     * at most SL_SWAP_MAX; needs refit passes): a round puts the top
     * eigenvector of the M2 of the labels minus their fit on x and on the
     * smoothed ReLUs of the kept directions (the kept d-dimensional scores)
     * in place of each direction in turn, runs SL_SWAP_PASSES passes from
     * there and keeps directions whose second layer fits better (as the
     * passes do), ending the round at the first replacement that does; a
     * round that keeps nothing ends them. For passes settled at a wrong
     * fixed point: measured on agmm, W random, n = 10^4 to 10^6 (README,
     * "agmm and the first layer's conditioning"). A round costs up to
     * k * SL_SWAP_PASSES S_4 estimations. */
    int swap;
    sl_recover_mode mode; /* default auto */
    /* The loss: kind is set from loss; sign 0 estimates it. */
    sl_landscape_options landscape;
    /* The optimiser. For the landscape losses projection (default orthonormal;
     * the sign-free loss wants orthonormal and warns otherwise; none needs
     * landscape.lambda > 0), rows and cols (k x k) are set here; in tensor mode every step sees the
     * whole tensor, batch is ignored and an epoch is tensor_steps steps. For
     * l2: no projection, the parameters (W, a) start N(0, init_scale^2)
     * (init_scale 0, the default, means 1/sqrt(d)). restarts default 4: the
     * lowest final loss wins. epochs 0 (the default) is automatic: 20 in
     * tensor mode (2000 steps), else enough for 10000 steps. seed, the
     * monitor and progress are set here. */
    sl_sgd_options sgd;
    size_t tensor_steps;     /* steps per epoch in tensor mode (default 100) */
    sl_act act;              /* the network's activation (default relu) */
    double holdout;          /* fraction of rows held out for the prediction error (default 0.1;
                                0 fits on all rows and reports no prediction error) */
    const sl_network *truth; /* optional: errors, and err_max in the trace */
    uint64_t seed;           /* the split, the scores' randomness and the SGD (default 1) */
    sl_recover_message_fn message; /* warnings as they arise (also kept in the result) */
    sl_recover_progress_fn progress;
    void *ctx;
} sl_recover_options;

#define SL_RECOVER_U_ROWS 20000
/* Measured (README, "Recovery from samples alone"; the sweep's runs with
 * the t thin rule, without and with this floor, seeds 1-3): on Student t
 * inputs (d = 10, 2 x 10^4 U-rows) the choice took shrink 0 or 1, and at
 * isolated tail points the unshrunk local fits gave |g| up to 3900 where
 * the exact is 0.3, enough to turn M2 into noise. With the floor, student
 * at n = 10^5 went from 0.45, 0.0079, 0.70 to 0.059, 0.0086, 0.028 (noise
 * 0.1: 0.63, 0.0074, 0.69 to 0.062, 0.012, 0.031), but at 10^4 with noise
 * 0.1 from 0.025, 0.055, 0.020 to 0.031, 0.085, 0.079. gauss and logistic
 * chose 3 or more anyway (the same results); agmm moved both ways (10^5:
 * 0.020, 0.48, 0.50 to 0.019, 0.67, 0.75; with noise 0.33 to 0.042 on
 * seed 1), failing on seeds 2 and 3 either way. */
#define SL_RECOVER_SHRINK_MIN 3.0
#define SL_RECOVER_REFIT_ROWS 200000

void sl_recover_options_default(sl_recover_options *opt);

#define SL_REFIT_MAX 20
/* Measured (README, "Recovery from samples alone"; docs/sweep_estimated.csv,
 * 72 runs with eight passes beside the same runs with five, d = 10, k = 5,
 * n = 10^4 to 10^6, seeds 1-3): no run lost issue 5's standard, the
 * largest worsening was +0.013 (student, 10^4, 0.031 to 0.043), student
 * with noise 0.1 passed from 10^4 instead of 10^6 and agmm with noise at
 * 10^6 on seed 1 (0.22 to 0.040). The cost: 1.2 to 2.7 times the run time
 * at 10^4 and 10^5; recover at 10^6 on logistic 72 s instead of 55. */
#define SL_REFIT_AUTO 8
#define SL_SWAP_MAX 10
#define SL_SWAP_PASSES 3

typedef struct sl_recover_result {
    size_t k, d;
    size_t n_train, n_holdout; /* rows fitted and held out */
    /* The recovered network: for the landscape losses unit rows with the
     * fitted signs and the least-squares a; for l2 the trained (W, a). */
    double *W_hat; /* k x d */
    double *a_hat; /* k */
    int have_error;
    sl_recovery_error error; /* when a truth was given */
    double *restart_error;   /* err_max of every restart's final point (sgd->restarts), or NULL */
    /* Every restart's final point in input space (sgd->restarts x k x d): for
     * the landscape losses the whitened columns mapped back, rows proportional
     * to U |Lambda|^{1/2} b_i (not normalised; before signs and the second
     * layer), for l2 the trained W. */
    double *restart_W;
    /* Moments (landscape losses; NULL / 0 for l2). */
    size_t nevals;
    double *m2_evals; /* the top min(k + 1, d) eigenvalues of M2 by absolute value */
    double *signal;   /* k whitened signal coefficients (eigenvalues of T's unfolding) */
    /* T(b, b, b, b) along each recovered direction w (the rows of W_hat,
     * after the refinement; b = P'w normalised), and, with a truth, along
     * each true one (P'w_i normalised; kt values): the whitened
     * coefficients c_i / D_i^2 where the recovery ended and where it should
     * have. After refit passes that kept a pass, these (and
     * signal, m2_evals) are that pass's T along its directions, with the
     * standard errors of its control-variate labels. NULL for l2. */
    double *found_signal; /* k */
    /* The standard error of each found_signal value, from the per-sample
     * terms y_j S_4(x_j)(b, b, b, b) of the same S_4 the loss used: a value
     * within a few of these of zero is no signal, whatever the optimiser
     * returned. */
    double *found_signal_se; /* k */
    double *truth_signal;    /* truth's k, or NULL */
    size_t ntruth_signal;
    /* With a truth of ReLU units and score_opt.dist a distribution whose
     * one-dimensional marginals are known (sl_dist_marginal: gauss and the
     * Gaussian mixtures): each true unit's whitened fourth-order coefficient
     * in the population, p''(0) / (a |w| p(0)^2), p the exact density of u'x,
     * u = w / |w| (Stein: the unit adds a |w| p(0) u u' to M2 and
     * a |w| p''(0) u^(x4) to T; whitening divides the second by the square
     * of the first). What truth_signal estimates. The single-sign landscape
     * loss seeks units of one sign, so units of both get a warning. NULL
     * otherwise (kt values). */
    double *truth_coef;
    size_t ntruth_coef;
    int sign;                /* the landscape sign used (+1 or -1); 0 for signfree and l2 */
    sl_recover_route route;  /* where T came from */
    int detrend;             /* the degree the labels were detrended by before T (0: none;
                                4: the quartic's fourth derivative added back to T) */
    int detrend_m2;          /* the same before M2, in x (0, 1, or 2: the quadratic's
                                Hessian added back to M2) */
    int refined;             /* 1 when the directions were refined on the unwhitened T */
    sl_cp4_info refine_info; /* that fit's objective before and after, its iterations */
    int refits;              /* ridge control-variate passes run (options.refit) */
    /* With a truth, err_max after each of those passes (refits values). */
    double refit_error[SL_REFIT_MAX];
    /* The pass whose directions were kept (0: the first estimate's): the one
     * whose least-squares second layer fits the fitted rows best. */
    int refit_kept;
    int swaps; /* swap rounds run (options.swap) */
    /* With a truth, err_max of the kept directions after each round. */
    double swap_error[SL_SWAP_MAX];
    int swap_kept; /* the last round that kept directions (0: none) */
    /* Replacements tried in each round (1..k): a round ends at the first
     * whose passes kept something, so one that kept nothing tried all k. */
    int swap_tried[SL_SWAP_MAX];
    /* After the refit passes (and swap rounds), at the directions kept: the
     * top eigenvalue by |value| of the M2 of the labels minus their fit on
     * x and the smoothed ReLUs of those directions (the signal they leave;
     * the swap rounds' direction is its eigenvector), its standard error
     * along that eigenvector (from the per-row terms), and M2's k-th
     * eigenvalue as the scale of the signal found. NAN without passes. */
    double residual_eig, residual_se, residual_scale;
    int t_estimated;              /* 1 when T came from estimated third and fourth log-derivatives
                                     (projected route with an S_4 estimator, or independent) */
    int independent;              /* 1 when T came from the factorised fit */
    sl_s4_estimator s4_estimator; /* the projected route's estimator (when t_estimated) */
    sl_s4_info s4_info;           /* its bandwidth, reference set and neighbourhoods */
    size_t u_rows;                /* rows whose d-dimensional scores gave U (projected) */
    double score_bandwidth;       /* those scores' bandwidth (sl_scores.bandwidth) */
    double score_shrink;          /* and llsfe's prior weight (sl_scores.shrink; NAN else) */
    int tensor_mode;              /* 1 when the loss ran on T */
    double holdout_error;         /* relative MSE on the held-out rows, NAN without them */
    double train_error;           /* the same on the fitted rows */
    double final_loss;            /* the best restart's final full loss */
    sl_sgd_result *sgd;           /* restart losses, trace, steps, stop reason */
    double seconds_scores, seconds_moments, seconds_sgd, seconds_second_layer;
    double seconds_s4;    /* the projected S_4 estimate (part of seconds_moments) */
    double seconds_refit; /* the refit passes (options.refit); not part of the others */
    double seconds_swap;  /* the swap rounds (options.swap); part of seconds_refit */
    char *warnings;       /* one warning per line, or NULL */
} sl_recover_result;

void sl_recover_result_free(sl_recover_result *r);

/* Runs the pipeline on n rows of X (n x d) with labels y. */
sl_status sl_recover(const sl_recover_options *opt, size_t n, size_t d, const double *X,
                     const double *y, sl_recover_result **out);

/* The moments sl_recover would minimise over, on all n rows (no hold-out):
 * the same route, scores, seeds, label detrending and T (exact, estimated
 * projected, factorised or locally quadratic), with the signal computed.
 * For pictures and diagnostics of the loss recover sees (plane.h). *route
 * and *warnings (one per line, free() it; NULL when none) are optional;
 * the warnings also go to opt->message. Free *out with sl_moments_free. */
sl_status sl_recover_moments(const sl_recover_options *opt, size_t n, size_t d, const double *X,
                             const double *y, sl_moments **out, sl_recover_route *route,
                             char **warnings);

#ifdef __cplusplus
}
#endif
#endif
