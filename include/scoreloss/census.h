/* The critical-point census: where does SGD end from many random starts?
 *
 * End points (each k rows in input space, as sl_recover_result's
 * restart_W) are clustered up to permutation and sign of their rows: two
 * end points are the same critical point when the recovery error err_max of
 * one against the other (recover.h: 1 - |cosine| of the worst-matched row,
 * in both directions) is below same_tol. Clustering is greedy in order of
 * increasing final loss: each end point joins the first cluster whose
 * representative (its lowest-loss member) is within same_tol, else starts a
 * new one, so the result does not depend on the order of the restarts.
 *
 * A cluster is the global minimum when its representative's err_max against
 * the truth is below global_tol; without a truth, the lowest-loss cluster
 * is. Every other cluster is a spurious minimum (or a saddle the optimiser
 * stalled on: the census reports where SGD ends, which is what a user
 * meets). Arrays only, so a binding in another language can read them. */
#ifndef SCORELOSS_CENSUS_H
#define SCORELOSS_CENSUS_H

#include <stddef.h>

#include "scoreloss/recover.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_census_options {
    double same_tol;   /* default 0.02 (about 11 degrees between matched rows) */
    double global_tol; /* default 0.1 (about 26 degrees): sample noise moves the global
                          minimum itself (measured 0.04 to 0.06 at n = 2e4, d = k = 3),
                          spurious minima sit at 0.5 and beyond */
} sl_census_options;

void sl_census_options_default(sl_census_options *opt);

typedef struct sl_census {
    size_t npoints;   /* end points clustered */
    size_t nclusters; /* distinct critical points found */
    size_t *assign;   /* npoints: the cluster of each end point */
    /* Per cluster, in order of increasing loss (cluster 0 has the lowest): */
    size_t *count;          /* end points in it */
    size_t *representative; /* index of its lowest-loss end point */
    double *loss;           /* the representative's loss */
    double *loss_spread;    /* largest minus smallest loss of its members */
    double *error;          /* representative's err_max against the truth (NAN without) */
    size_t *distinct;       /* true directions the representative finds (0 without a truth) */
    int *global;            /* 1 for the global minimum */
    int have_truth;
    size_t nglobal;         /* end points in global clusters */
    double global_fraction; /* nglobal / npoints */
} sl_census;

/* Clusters R end points W (R x k x d) with final losses loss (R). truth
 * (kt x d) may be NULL (kt ignored). */
sl_status sl_census_compute(const sl_census_options *opt, size_t R, size_t k, size_t d,
                            const double *W, const double *loss, const double *truth, size_t kt,
                            sl_census **out);
void sl_census_free(sl_census *c);

/* One recovery with opt->sgd.restarts restarts, its end points clustered.
 * opt->truth, if set, gives the truth. The recovery's result is handed back
 * in *result when result is not NULL (free with sl_recover_result_free). */
sl_status sl_census_run(const sl_recover_options *opt, const sl_census_options *copt, size_t n,
                        size_t d, const double *X, const double *y, sl_census **out,
                        sl_recover_result **result);

#ifdef __cplusplus
}
#endif
#endif
