/* Stochastic optimisation over a generic objective (nothing here knows about
 * scores or losses).
 *
 * The objective follows nlopt's shape, with a minibatch: it returns the mean
 * loss over the samples listed in batch and, when grad is not NULL, writes
 * the gradient of that mean with respect to the nparam parameters. */
#ifndef SCORELOSS_SGD_H
#define SCORELOSS_SGD_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef double (*sl_objective_fn)(size_t nparam, const double *x, double *grad, const size_t *batch,
                                  size_t nbatch, void *data);

/* Optional: the recovery error of x when the truth is known (for traces). */
typedef double (*sl_monitor_fn)(size_t nparam, const double *x, void *data);

typedef enum sl_sgd_method { SL_SGD_PLAIN = 0, SL_SGD_MOMENTUM, SL_SGD_ADAM } sl_sgd_method;

typedef enum sl_lr_schedule {
    SL_LR_CONSTANT = 0, /* lr */
    SL_LR_INVTIME,      /* lr / (1 + decay * step) */
    SL_LR_COSINE        /* lr * (1 + cos(pi * step / total_steps)) / 2 */
} sl_lr_schedule;

/* Projections treat the parameters as a rows x cols matrix, row-major, and
 * act on its COLUMNS (each column one candidate direction b_j). */
typedef enum sl_projection {
    SL_PROJ_NONE = 0,
    SL_PROJ_SPHERE,     /* each column scaled to unit norm */
    SL_PROJ_ORTHONORMAL /* columns made orthonormal by a QR retraction (signs fixed by R's diagonal)
                         */
} sl_projection;

typedef struct sl_sgd_options {
    sl_sgd_method method;     /* default Adam */
    double lr;                /* default 1e-2 */
    sl_lr_schedule schedule;  /* step counts from 0 within a restart; total_steps =
                                 epochs * ceil(nsamples / batch) */
    double decay;             /* for SL_LR_INVTIME (default 1e-3) */
    double momentum;          /* for SL_SGD_MOMENTUM (default 0.9) */
    double beta1, beta2, eps; /* Adam (defaults 0.9, 0.999, 1e-8) */
    size_t batch;             /* minibatch size (default 256; >= nsamples means full batch) */
    size_t epochs;            /* passes over the shuffled samples (default 20) */
    double grad_tol;  /* stop when the full-batch gradient norm at an epoch end is below (0: off) */
    size_t patience;  /* stop after this many epochs without the epoch-end full loss
                         improving by min_delta (0: off) */
    double min_delta; /* an epoch improves when its full loss < best - min_delta */
    sl_projection projection;
    size_t rows, cols; /* the parameter matrix's shape for projections (rows * cols = nparam) */
    size_t restarts;   /* random initialisations (default 1); the best final full loss wins */
    uint64_t seed;     /* initialisations and shuffles */
    double init_scale; /* random initialisation: N(0, init_scale^2) entries, then projected (default
                          1) */
    size_t
        log_every; /* a trace row every this many steps, and at every epoch end (0: epochs only) */
    sl_monitor_fn monitor; /* must return finite values; a non-finite one fails the run
                              with SL_ECALLBACK */
    void *monitor_data;
    void (*progress)(double fraction, void *ctx);
    void *progress_ctx;
} sl_sgd_options;

void sl_sgd_options_default(sl_sgd_options *opt);

/* step = steps taken before this point in its restart; minibatch rows at
 * step 0, L, 2L, ... (the loss of the batch for step + 1); epoch is 1-based
 * (the epoch just completed for full rows). */
typedef struct sl_trace_row {
    size_t restart, step, epoch;
    double loss;      /* full-batch loss at epoch ends, minibatch loss otherwise */
    double grad_norm; /* norm of the gradient used for the step, projected onto the
                         constraint's tangent space when a projection is set (full-batch at
                         epoch ends); grad_tol compares with this */
    double error;     /* the monitor's value, NAN without a monitor */
    double seconds;   /* since the start of the run */
    int full;         /* 1 when loss and grad_norm are full-batch */
} sl_trace_row;

typedef struct sl_sgd_result {
    size_t nparam;
    double *x;   /* the best restart's final parameters */
    double loss; /* its full-batch loss */
    size_t best_restart;
    size_t restarts;
    double *restart_loss;    /* final full loss of every restart */
    double *restart_x;       /* every restart's final parameters (restarts x nparam) */
    size_t steps;            /* total steps taken */
    const char *stop_reason; /* "epochs", "gradient", "no progress" (of the best restart) */
    sl_trace_row *trace;
    size_t ntrace;
} sl_sgd_result;

/* Minimises f over nparam parameters from x0 (used for the first restart;
 * NULL: random for all) with nsamples samples, shuffled each epoch from
 * seeded streams: the result depends on the seed only. */
sl_status sl_sgd_minimize(const sl_sgd_options *opt, sl_objective_fn f, void *data, size_t nsamples,
                          size_t nparam, const double *x0, sl_sgd_result **out);
void sl_sgd_result_free(sl_sgd_result *r);

/* Applies a projection in place to a rows x cols matrix (columns). */
sl_status sl_project_columns(sl_projection p, size_t rows, size_t cols, double *x);

/* Writes the trace as CSV: restart,step,epoch,loss,grad_norm,error,seconds,full;
 * the error column only when the run had a monitor (CSV holds finite numbers only). */
sl_status sl_trace_write(const sl_sgd_result *r, const char *path, const char *comment);

#ifdef __cplusplus
}
#endif
#endif
