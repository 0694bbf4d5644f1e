/* Score estimation from samples (METHOD.md section 3).
 *
 * Every score source produces the same per-point representation, sl_scores:
 * g = grad log p (d) and H = the Hessian of log p (d x d, symmetric, stored
 * in full) at each query point. S_2 = g g' + H, and the locally quadratic S_4
 * follows from (g, H) by sl_scores_from_logderivs (dist.h).
 *
 * Methods (sl_score_type, chosen by name):
 *   llsfe    local-likelihood fit of a quadratic log-density with a Gaussian
 *            kernel: g = Sig^{-1} mu, H = h^{-2} I - Sig^{-1}, with mu and Sig
 *            the kernel-weighted mean offset and covariance around the query
 *            (the query itself left out when it is a sample)
 *   kde      gradient and Hessian of the log of a Gaussian kernel density
 *            estimate: g = mu / h^2, H = Sig / h^4 - I / h^2
 *   gauss    one Gaussian fitted to the whole sample: g = -C^{-1}(x - m), H = -C^{-1}
 *   hermite  N(0, I) whatever the data: g = -x, H = -I (the Gaussian-designed loss)
 *   exact    the distribution's own scores (needs options.dist with exact scores)
 *
 * Bandwidths (llsfe and kde): fixed h; h = C n^{-1/(d+6)}; adaptive
 * h(x) = distance to the K-th nearest sample; or automatic, minimising a
 * held-out score-matching objective over a grid. */
#ifndef SCORELOSS_SCORE_H
#define SCORELOSS_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/dist.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_bw_kind {
    SL_BW_AUTO = 0, /* held-out score matching over a grid (the default) */
    SL_BW_FIXED,    /* value = h */
    SL_BW_CONST,    /* value = C: h = C n^{-1/(d+6)} */
    SL_BW_KNN       /* value = K: h(x) = distance to the K-th nearest sample */
} sl_bw_kind;

typedef struct sl_bandwidth {
    sl_bw_kind kind;
    double value;
} sl_bandwidth;

/* "auto", "0.8" (fixed), "knn:K", "const:C". */
sl_status sl_bandwidth_parse(const char *text, sl_bandwidth *out);

typedef enum sl_strategy {
    SL_STRATEGY_AUTO =
        0, /* all pairs when n * nq is small enough and h is fixed, else neighbours */
    SL_STRATEGY_ALLPAIRS,  /* every query against every sample, as matrix products (fixed h only) */
    SL_STRATEGY_NEIGHBOURS /* a k-d tree gathers the samples within cutoff * h, or the K nearest */
} sl_strategy;

/* Progress callback: fraction done in [0, 1]. */
typedef void (*sl_progress_fn)(double fraction, void *ctx);

typedef struct sl_score_options {
    sl_bandwidth bandwidth; /* default auto */
    sl_strategy strategy;   /* default auto */
    double cutoff;          /* kernel support in units of h for neighbours (default 5:
                               weights beyond are below exp(-12.5) = 3.7e-6) */
    double knn_eps;         /* knn:K bandwidths with the neighbours strategy: the K nearest are
                               found (1 + knn_eps)-approximately (each k-th distance within
                               1 + knn_eps of the exact one; faster); default 0 = exact */
    double shrink;          /* llsfe regularisation strength (>= 0; see llsfe.c); < 0 = default */
    double shrink_min;      /* llsfe, the strength chosen with the automatic bandwidth: the
                               ladder's weights from the first at or above this (its largest,
                               1000, when none is; default 0: any of the ladder) */
    uint64_t seed;          /* held-out split of the automatic bandwidth */
    const sl_dist *dist;    /* for method exact */
    sl_progress_fn progress;
    void *progress_ctx;
} sl_score_options;

void sl_score_options_default(sl_score_options *opt);

typedef struct sl_scores {
    size_t n, d;
    double *G;          /* n x d */
    double *H;          /* n x d x d */
    double *h;          /* bandwidth used at each point (n), or NULL when none applies */
    double bandwidth;   /* the global bandwidth (fixed/auto), or the median of h (knn); 0 if none */
    size_t regularised; /* points whose local covariance needed regularisation */
    double shrink;      /* llsfe: the prior weight nu0 used (given or chosen); NAN for others */
    sl_strategy strategy; /* how the kernel sums were evaluated (llsfe, kde); AUTO for others */
    char method[16];
    /* The automatic bandwidth's grid and held-out objective (bw_ngrid = 0
     * when the bandwidth was not chosen automatically). */
    size_t bw_ngrid;
    double bw_grid[32];
    double bw_objective[32];
} sl_scores;

sl_status sl_scores_alloc(size_t n, size_t d, sl_scores **out);
void sl_scores_free(sl_scores *s);

typedef struct sl_score_type {
    const char *name;
    /* Scores at the nq rows of Q, or at the samples themselves (leave-one-out)
     * when Q is NULL (then nq must equal n). */
    sl_status (*estimate)(const sl_score_options *opt, size_t n, size_t d, const double *X,
                          size_t nq, const double *Q, sl_scores *out);
} sl_score_type;

extern const sl_score_type sl_score_llsfe;
extern const sl_score_type sl_score_kde;
extern const sl_score_type sl_score_gauss;
extern const sl_score_type sl_score_hermite;
extern const sl_score_type sl_score_exact;

/* "llsfe", "kde", "gauss", "hermite", "exact". */
sl_status sl_score_type_from_name(const char *name, const sl_score_type **out);

/* Estimates scores from the n samples X (n x d) at the nq rows of Q, or at
 * the samples (Q = NULL). No NaN or Inf leaves: a point the method cannot
 * fit is regularised and counted in out->regularised. */
sl_status sl_score_estimate(const sl_score_type *type, const sl_score_options *opt, size_t n,
                            size_t d, const double *X, size_t nq, const double *Q, sl_scores **out);

/* Accuracy against exact scores, over the query points with |x| <= radius. */
typedef struct sl_score_eval {
    size_t count;     /* query points inside the radius */
    double g_rel_mse; /* sum |g_hat - g|^2 / sum |g|^2 */
    double s2_err[5]; /* percentiles 5/25/50/75/95 of ||S2_hat - S2||_2 / ||S2||_2 */
    double s4_err[5]; /* percentiles of ||S4q_hat - S4q||_F / ||S4q||_F, locally quadratic S_4 */
} sl_score_eval;

sl_status sl_score_evaluate(const sl_dist *dist, const sl_scores *s, const double *Q, double radius,
                            sl_score_eval *out);

#ifdef __cplusplus
}
#endif
#endif
