/* Minibatch stochastic optimisation over a generic objective: plain SGD,
 * heavy-ball momentum and Adam, learning-rate schedules, projections onto
 * the sphere or the Stiefel manifold, early stopping, seeded restarts and a
 * trace. Nothing here knows what the objective computes.
 *
 * Conventions chosen here (the header leaves them open):
 * - With a projection the gradient is first projected onto the tangent space
 *   of the constraint at x (sphere: remove each column's radial part;
 *   Stiefel: G - X sym(X'G)). That tangent gradient is the one the step uses,
 *   the one whose norm the trace records and the one grad_tol compares with:
 *   the Euclidean gradient at a constrained minimum is not zero (x'Ax on the
 *   sphere has gradient 2 lambda x there), so its norm could never stop a run.
 * - Every trace row describes one point x_s, s = the steps taken so far in
 *   that restart. Minibatch rows at s = 0, L, 2L, ... (L = log_every) hold the
 *   loss and gradient of the minibatch used for step s + 1; epoch is the
 *   1-based epoch that step belongs to. Epoch-end rows (full = 1) hold the
 *   full-batch loss and gradient after the epoch; epoch is the epoch just
 *   completed. The monitor is evaluated at the same x_s.
 * - Stream (restart r, 0) draws r's random start; stream (r, 1 + e) shuffles
 *   epoch e of restart r, so every draw depends on the seed alone.
 * - A full batch (batch >= nsamples) is the index array 0..n-1 in order, not
 *   shuffled: shuffling would only reorder the sum. */
#include "scoreloss/sgd.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <lapacke.h>

#include "core/linalg.h"
#include "scoreloss/csv.h"
#include "scoreloss/rng.h"

void sl_sgd_options_default(sl_sgd_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->method = SL_SGD_ADAM;
    opt->lr = 1e-2;
    opt->schedule = SL_LR_CONSTANT;
    opt->decay = 1e-3;
    opt->momentum = 0.9;
    opt->beta1 = 0.9;
    opt->beta2 = 0.999;
    opt->eps = 1e-8;
    opt->batch = 256;
    opt->epochs = 20;
    opt->grad_tol = 0.0;
    opt->patience = 0;
    opt->min_delta = 0.0;
    opt->projection = SL_PROJ_NONE;
    opt->restarts = 1;
    opt->seed = 0;
    opt->init_scale = 1.0;
    opt->log_every = 0;
}

/* ---- projections ---------------------------------------------------------- */

/* Everything a projection and its tangent map need, allocated once per run. */
typedef struct proj_workspace {
    sl_projection kind;
    size_t rows, cols;
    double *qr;   /* rows x cols, column-major: LAPACKE's row-major path would
                     allocate a transposed copy on every call */
    double *tau;  /* cols Householder scalars */
    double *work; /* lwork doubles for dgeqrf and dorgqr */
    double *sym;  /* cols x cols, X'G for the Stiefel tangent projection */
    lapack_int lwork;
} proj_workspace;

static void proj_workspace_free(proj_workspace *pw) {
    free(pw->qr);
    free(pw->tau);
    free(pw->work);
    free(pw->sym);
    memset(pw, 0, sizeof *pw);
}

static sl_status check_projection(sl_projection kind, size_t rows, size_t cols) {
    if ((int)kind < SL_PROJ_NONE || (int)kind > SL_PROJ_ORTHONORMAL)
        return sl_error(SL_EINVAL, "unknown projection %d", (int)kind);
    if (kind == SL_PROJ_NONE) return SL_OK;
    if (rows == 0 || cols == 0)
        return sl_error(SL_EINVAL, "a projection needs a rows x cols shape, got %zu x %zu", rows,
                        cols);
    /* BLAS and LAPACK take int dimensions. */
    if (rows > INT_MAX || cols > INT_MAX || rows > SIZE_MAX / sizeof(double) / cols)
        return sl_error(SL_EINVAL, "a %zu x %zu parameter matrix is too large", rows, cols);
    if (kind == SL_PROJ_ORTHONORMAL && cols > rows)
        return sl_error(SL_EINVAL,
                        "orthonormal projection needs cols <= rows, got %zu columns of length %zu",
                        cols, rows);
    return SL_OK;
}

static sl_status proj_workspace_init(proj_workspace *pw, sl_projection kind, size_t rows,
                                     size_t cols) {
    memset(pw, 0, sizeof *pw);
    pw->kind = kind;
    pw->rows = rows;
    pw->cols = cols;
    if (kind != SL_PROJ_ORTHONORMAL) return SL_OK;
    pw->qr = malloc(rows * cols * sizeof *pw->qr);
    pw->tau = malloc(cols * sizeof *pw->tau);
    pw->sym = malloc(cols * cols * sizeof *pw->sym);
    if (!pw->qr || !pw->tau || !pw->sym) {
        proj_workspace_free(pw);
        return sl_error(SL_ENOMEM, "out of memory for a %zu x %zu QR workspace", rows, cols);
    }
    /* Workspace queries (lwork = -1) for both LAPACK calls; the larger wins. */
    const lapack_int m = (lapack_int)rows, n = (lapack_int)cols;
    double q1 = 0.0, q2 = 0.0;
    lapack_int info = LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, m, n, pw->qr, m, pw->tau, &q1, -1);
    if (info == 0)
        info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, m, n, n, pw->qr, m, pw->tau, &q2, -1);
    if (info != 0) {
        proj_workspace_free(pw);
        return sl_error(SL_ENUMERIC, "QR workspace query failed (info %d)", (int)info);
    }
    double q = q1 > q2 ? q1 : q2;
    pw->lwork = q > 1.0 ? (lapack_int)q : 1;
    pw->work = malloc((size_t)pw->lwork * sizeof *pw->work);
    if (!pw->work) {
        proj_workspace_free(pw);
        return sl_error(SL_ENOMEM, "out of memory for a QR workspace");
    }
    return SL_OK;
}

/* Projects the row-major rows x cols matrix x in place. */
static sl_status project(proj_workspace *pw, double *x) {
    const size_t rows = pw->rows, cols = pw->cols;
    if (pw->kind == SL_PROJ_NONE) return SL_OK;
    if (pw->kind == SL_PROJ_SPHERE) {
        for (size_t j = 0; j < cols; ++j) {
            double norm = cblas_dnrm2((int)rows, x + j, (int)cols);
            if (!(norm > 0.0) || !isfinite(norm))
                return sl_error(SL_ENUMERIC, "cannot scale column %zu to unit norm (norm %g)",
                                j + 1, norm);
            cblas_dscal((int)rows, 1.0 / norm, x + j, (int)cols);
        }
        return SL_OK;
    }
    /* Orthonormal: Q of x = QR, with column j times sign(R_jj) so that an
     * orthonormal x maps to itself and the retraction is continuous (LAPACK's
     * Householder convention alone may flip a column's sign). */
    const lapack_int m = (lapack_int)rows, n = (lapack_int)cols;
    double *a = pw->qr;
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < cols; ++j) a[j * rows + i] = x[i * cols + j];
    if (!sl_all_finite(rows * cols, a))
        return sl_error(SL_ENUMERIC, "cannot orthonormalise a matrix with non-finite entries");
    lapack_int info =
        LAPACKE_dgeqrf_work(LAPACK_COL_MAJOR, m, n, a, m, pw->tau, pw->work, pw->lwork);
    if (info != 0) return sl_error(SL_ENUMERIC, "QR decomposition failed (info %d)", (int)info);
    /* The signs of R's diagonal, kept in sym's first row until dorgqr is done. */
    double *sign = pw->sym;
    for (size_t j = 0; j < cols; ++j) sign[j] = a[j * rows + j] < 0.0 ? -1.0 : 1.0;
    info = LAPACKE_dorgqr_work(LAPACK_COL_MAJOR, m, n, n, a, m, pw->tau, pw->work, pw->lwork);
    if (info != 0) return sl_error(SL_ENUMERIC, "forming Q failed (info %d)", (int)info);
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < cols; ++j) x[i * cols + j] = sign[j] * a[j * rows + i];
    return SL_OK;
}

/* Projects the gradient g onto the tangent space of the constraint at the
 * (already projected) point x. */
static void tangent(proj_workspace *pw, const double *x, double *g) {
    const int rows = (int)pw->rows, cols = (int)pw->cols;
    if (pw->kind == SL_PROJ_SPHERE) {
        for (int j = 0; j < cols; ++j) {
            double radial = cblas_ddot(rows, x + j, cols, g + j, cols);
            cblas_daxpy(rows, -radial, x + j, cols, g + j, cols);
        }
    } else if (pw->kind == SL_PROJ_ORTHONORMAL) {
        double *s = pw->sym;
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cols, cols, rows, 1.0, x, cols, g,
                    cols, 0.0, s, cols);
        for (int i = 0; i < cols; ++i)
            for (int j = i + 1; j < cols; ++j) {
                double m = 0.5 * (s[i * cols + j] + s[j * cols + i]);
                s[i * cols + j] = s[j * cols + i] = m;
            }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, cols, -1.0, x, cols, s,
                    cols, 1.0, g, cols);
    }
}

sl_status sl_project_columns(sl_projection p, size_t rows, size_t cols, double *x) {
    sl_status st = check_projection(p, rows, cols);
    if (st) return st;
    if (p == SL_PROJ_NONE) return SL_OK;
    if (!x) return sl_error(SL_EINVAL, "no matrix given to project");
    proj_workspace pw;
    st = proj_workspace_init(&pw, p, rows, cols);
    if (st) return st;
    st = project(&pw, x);
    proj_workspace_free(&pw);
    return st;
}

/* ---- the optimiser ------------------------------------------------------- */

static const char *const STOP_EPOCHS = "epochs";
static const char *const STOP_GRADIENT = "gradient";
static const char *const STOP_NO_PROGRESS = "no progress";

/* Streams: the high 32 bits name the restart, the low ones the draw. */
static uint64_t stream_of(size_t restart, size_t draw) {
    return ((uint64_t)restart << 32) | (uint64_t)draw;
}

/* The whole run's memory, allocated once. */
typedef struct run_workspace {
    double *x, *g, *m, *v; /* point, gradient, first and second moments */
    size_t *perm, *all;    /* shuffled order; 0..n-1 for full-batch evaluations */
    proj_workspace pw;
} run_workspace;

static void run_workspace_free(run_workspace *w) {
    free(w->x);
    free(w->g);
    free(w->m);
    free(w->v);
    free(w->perm);
    free(w->all);
    proj_workspace_free(&w->pw);
}

typedef struct run_state {
    const sl_sgd_options *opt;
    sl_objective_fn f;
    void *data;
    size_t n, nparam, steps_per_epoch, planned; /* planned steps per restart */
    sl_sgd_result *res;
    size_t trace_cap;
    struct timespec start;
    int progress_pct; /* last percentage reported */
} run_state;

static double seconds_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static sl_status add_row(run_state *s, size_t restart, size_t step, size_t epoch, double loss,
                         double grad_norm, const double *x, int full) {
    sl_sgd_result *r = s->res;
    double error = NAN;
    if (s->opt->monitor) {
        error = s->opt->monitor(s->nparam, x, s->opt->monitor_data);
        if (!isfinite(error))
            return sl_error(SL_ECALLBACK,
                            "the monitor returned a non-finite value at restart %zu, epoch %zu, "
                            "step %zu",
                            restart, epoch, step);
    }
    if (r->ntrace == s->trace_cap) {
        /* Geometric growth: O(log rows) reallocations per run, none per step
         * in the amortised sense. */
        size_t cap = s->trace_cap ? 2 * s->trace_cap : 256;
        sl_trace_row *t = realloc(r->trace, cap * sizeof *t);
        if (!t) return sl_error(SL_ENOMEM, "out of memory for %zu trace rows", cap);
        r->trace = t;
        s->trace_cap = cap;
    }
    r->trace[r->ntrace++] = (sl_trace_row){.restart = restart,
                                           .step = step,
                                           .epoch = epoch,
                                           .loss = loss,
                                           .grad_norm = grad_norm,
                                           .error = error,
                                           .seconds = seconds_since(&s->start),
                                           .full = full};
    return SL_OK;
}

static void report_progress(run_state *s, size_t done) {
    if (!s->opt->progress) return;
    size_t total = s->planned * s->opt->restarts;
    int pct = (int)((double)done / (double)total * 100.0);
    if (pct > 100) pct = 100;
    if (pct > s->progress_pct) {
        s->progress_pct = pct;
        s->opt->progress(pct == 100 ? 1.0 : (double)done / (double)total, s->opt->progress_ctx);
    }
}

static double learning_rate(const sl_sgd_options *opt, size_t step, size_t planned) {
    switch (opt->schedule) {
    case SL_LR_INVTIME:
        return opt->lr / (1.0 + opt->decay * (double)step);
    case SL_LR_COSINE:
        return opt->lr * 0.5 * (1.0 + cos(M_PI * (double)step / (double)planned));
    case SL_LR_CONSTANT:
        break;
    }
    return opt->lr;
}

/* Evaluates f on a batch into w->g, rejects non-finite numbers, projects the
 * gradient onto the tangent space and returns its norm in *gnorm. */
static sl_status evaluate(run_state *s, run_workspace *w, const size_t *batch, size_t nbatch,
                          size_t restart, size_t epoch, size_t step, int full, double *loss,
                          double *gnorm) {
    const size_t np = s->nparam;
    *loss = s->f(np, w->x, w->g, batch, nbatch, s->data);
    const char *where = full ? "in the full-batch evaluation at" : "at";
    if (!isfinite(*loss))
        return sl_error(SL_ENUMERIC,
                        "the objective returned a non-finite loss (%g) %s restart %zu, epoch %zu, "
                        "step %zu",
                        *loss, where, restart, epoch, step);
    if (!sl_all_finite(np, w->g))
        return sl_error(SL_ENUMERIC,
                        "the objective returned a non-finite gradient %s restart %zu, epoch %zu, "
                        "step %zu",
                        where, restart, epoch, step);
    tangent(&w->pw, w->x, w->g);
    *gnorm = cblas_dnrm2((int)np, w->g, 1);
    return SL_OK;
}

/* One step from w->x along the (tangent) gradient in w->g; t is the 1-based
 * step count of this restart (Adam's bias correction). */
static void update(const sl_sgd_options *opt, run_workspace *w, size_t np, double lr, size_t t) {
    double *x = w->x, *g = w->g, *m = w->m, *v = w->v;
    switch (opt->method) {
    case SL_SGD_PLAIN:
        cblas_daxpy((int)np, -lr, g, 1, x, 1);
        break;
    case SL_SGD_MOMENTUM:
        /* Polyak's heavy ball: velocity m = momentum m - lr g, x += m. */
        for (size_t i = 0; i < np; ++i) {
            m[i] = opt->momentum * m[i] - lr * g[i];
            x[i] += m[i];
        }
        break;
    case SL_SGD_ADAM: {
        const double b1 = opt->beta1, b2 = opt->beta2;
        const double c1 = 1.0 - pow(b1, (double)t), c2 = 1.0 - pow(b2, (double)t);
        for (size_t i = 0; i < np; ++i) {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            x[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + opt->eps);
        }
        break;
    }
    }
}

/* Runs restart r from the point already in w->x; fills the restart's final
 * loss and parameters into the result. */
static sl_status run_restart(run_state *s, run_workspace *w, size_t r, size_t *done) {
    const sl_sgd_options *opt = s->opt;
    const size_t n = s->n, np = s->nparam, batch = opt->batch < n ? opt->batch : n;
    sl_sgd_result *res = s->res;
    sl_status st = project(&w->pw, w->x);
    if (st) return sl_error_prefix(st, "restart %zu, initial point: ", r);
    if (!sl_all_finite(np, w->x))
        return sl_error(SL_ENUMERIC, "restart %zu: the initial point has non-finite entries", r);
    memset(w->m, 0, np * sizeof *w->m);
    memset(w->v, 0, np * sizeof *w->v);

    size_t t = 0; /* steps taken in this restart */
    double best = INFINITY, loss = NAN, gnorm = NAN;
    size_t stale = 0;
    const char *reason = STOP_EPOCHS;
    for (size_t e = 0; e < opt->epochs; ++e) {
        const size_t *order = w->all;
        if (batch < n) {
            gsl_rng *rng = sl_rng_alloc(opt->seed, stream_of(r, 1 + e));
            if (!rng) return SL_ENOMEM;
            for (size_t i = 0; i < n; ++i) w->perm[i] = i;
            gsl_ran_shuffle(rng, w->perm, n, sizeof *w->perm);
            gsl_rng_free(rng);
            order = w->perm;
        }
        for (size_t b = 0; b < s->steps_per_epoch; ++b) {
            const size_t first = b * batch, count = n - first < batch ? n - first : batch;
            st = evaluate(s, w, order + first, count, r, e + 1, t + 1, 0, &loss, &gnorm);
            if (st) return st;
            if (opt->log_every && t % opt->log_every == 0) {
                st = add_row(s, r, t, e + 1, loss, gnorm, w->x, 0);
                if (st) return st;
            }
            update(opt, w, np, learning_rate(opt, t, s->planned), t + 1);
            ++t;
            st = project(&w->pw, w->x);
            if (st) return sl_error_prefix(st, "restart %zu, epoch %zu, step %zu: ", r, e + 1, t);
            if (!sl_all_finite(np, w->x))
                return sl_error(SL_ENUMERIC,
                                "the step overflowed at restart %zu, epoch %zu, step %zu", r, e + 1,
                                t);
            report_progress(s, ++*done);
        }
        st = evaluate(s, w, w->all, n, r, e + 1, t, 1, &loss, &gnorm);
        if (st) return st;
        st = add_row(s, r, t, e + 1, loss, gnorm, w->x, 1);
        if (st) return st;
        if (opt->grad_tol > 0.0 && gnorm < opt->grad_tol) {
            reason = STOP_GRADIENT;
            break;
        }
        if (opt->patience > 0) {
            if (loss < best - opt->min_delta) {
                best = loss;
                stale = 0;
            } else if (++stale >= opt->patience) {
                reason = STOP_NO_PROGRESS;
                break;
            }
        }
    }
    /* Progress counts the planned steps, so skip what an early stop saved. */
    *done = (r + 1) * s->planned;
    report_progress(s, *done);
    res->steps += t;
    res->restart_loss[r] = loss;
    memcpy(res->restart_x + r * np, w->x, np * sizeof *w->x);
    if (r == 0 || loss < res->loss) {
        res->loss = loss;
        res->best_restart = r;
        res->stop_reason = reason;
        memcpy(res->x, w->x, np * sizeof *w->x);
    }
    return SL_OK;
}

static sl_status check_options(const sl_sgd_options *opt, size_t nsamples, size_t nparam,
                               const double *x0) {
    if (nparam == 0) return sl_error(SL_EINVAL, "nothing to optimise: nparam = 0");
    if (nsamples == 0) return sl_error(SL_EINVAL, "no samples to optimise over: nsamples = 0");
    if (nparam > INT_MAX) return sl_error(SL_EINVAL, "nparam = %zu is too large", nparam);
    if ((int)opt->method < SL_SGD_PLAIN || (int)opt->method > SL_SGD_ADAM)
        return sl_error(SL_EINVAL, "unknown SGD method %d", (int)opt->method);
    if ((int)opt->schedule < SL_LR_CONSTANT || (int)opt->schedule > SL_LR_COSINE)
        return sl_error(SL_EINVAL, "unknown learning-rate schedule %d", (int)opt->schedule);
    if (!(opt->lr > 0.0) || !isfinite(opt->lr))
        return sl_error(SL_EINVAL, "learning rate must be positive and finite, got %g", opt->lr);
    if (opt->schedule == SL_LR_INVTIME && (!(opt->decay >= 0.0) || !isfinite(opt->decay)))
        return sl_error(SL_EINVAL, "decay must be >= 0 and finite, got %g", opt->decay);
    if (opt->method == SL_SGD_MOMENTUM && !(opt->momentum >= 0.0 && opt->momentum < 1.0))
        return sl_error(SL_EINVAL, "momentum must be in [0, 1), got %g", opt->momentum);
    if (opt->method == SL_SGD_ADAM) {
        if (!(opt->beta1 >= 0.0 && opt->beta1 < 1.0))
            return sl_error(SL_EINVAL, "Adam beta1 must be in [0, 1), got %g", opt->beta1);
        if (!(opt->beta2 >= 0.0 && opt->beta2 < 1.0))
            return sl_error(SL_EINVAL, "Adam beta2 must be in [0, 1), got %g", opt->beta2);
        if (!(opt->eps > 0.0) || !isfinite(opt->eps))
            return sl_error(SL_EINVAL, "Adam eps must be positive and finite, got %g", opt->eps);
    }
    if (opt->batch == 0) return sl_error(SL_EINVAL, "minibatch size must be at least 1");
    if (opt->epochs == 0) return sl_error(SL_EINVAL, "epochs must be at least 1");
    if (opt->restarts == 0) return sl_error(SL_EINVAL, "restarts must be at least 1");
    /* The restart and the epoch share one 64-bit stream number. */
    if (opt->restarts > UINT32_MAX || opt->epochs >= UINT32_MAX)
        return sl_error(SL_EINVAL, "%zu restarts of %zu epochs exceed the stream numbering",
                        opt->restarts, opt->epochs);
    if (!(opt->grad_tol >= 0.0))
        return sl_error(SL_EINVAL, "grad_tol must be >= 0, got %g", opt->grad_tol);
    if (!(opt->min_delta >= 0.0) || !isfinite(opt->min_delta))
        return sl_error(SL_EINVAL, "min_delta must be >= 0 and finite, got %g", opt->min_delta);
    if ((opt->restarts > 1 || !x0) && (!(opt->init_scale > 0.0) || !isfinite(opt->init_scale)))
        return sl_error(SL_EINVAL, "init_scale must be positive and finite, got %g",
                        opt->init_scale);
    sl_status st = check_projection(opt->projection, opt->rows, opt->cols);
    if (st) return st;
    if (opt->projection != SL_PROJ_NONE && opt->rows * opt->cols != nparam)
        return sl_error(SL_EINVAL,
                        "the projection's shape %zu x %zu does not match nparam = %zu parameters",
                        opt->rows, opt->cols, nparam);
    if (x0 && !sl_all_finite(nparam, x0))
        return sl_error(SL_EINVAL, "the initial point has non-finite entries");
    if (nsamples > SIZE_MAX / sizeof(size_t) || opt->restarts > SIZE_MAX / sizeof(double) / nparam)
        return sl_error(SL_ENOMEM, "%zu samples or %zu restarts of %zu parameters do not fit",
                        nsamples, opt->restarts, nparam);
    return SL_OK;
}

void sl_sgd_result_free(sl_sgd_result *r) {
    if (!r) return;
    free(r->x);
    free(r->restart_loss);
    free(r->restart_x);
    free(r->trace);
    free(r);
}

sl_status sl_sgd_minimize(const sl_sgd_options *opt, sl_objective_fn f, void *data, size_t nsamples,
                          size_t nparam, const double *x0, sl_sgd_result **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = NULL;
    if (!opt) return sl_error(SL_EINVAL, "no options given");
    if (!f) return sl_error(SL_EINVAL, "no objective function given");
    sl_status st = check_options(opt, nsamples, nparam, x0);
    if (st) return st;

    const size_t n = nsamples, np = nparam, batch = opt->batch < n ? opt->batch : n;
    run_state s = {.opt = opt, .f = f, .data = data, .n = n, .nparam = np};
    s.steps_per_epoch = (n + batch - 1) / batch;
    if (opt->epochs > SIZE_MAX / s.steps_per_epoch / opt->restarts)
        return sl_error(SL_EINVAL, "%zu epochs of %zu steps overflow the step count", opt->epochs,
                        s.steps_per_epoch);
    s.planned = opt->epochs * s.steps_per_epoch;
    clock_gettime(CLOCK_MONOTONIC, &s.start);

    run_workspace w = {0};
    sl_sgd_result *res = calloc(1, sizeof *res);
    st = proj_workspace_init(&w.pw, opt->projection, opt->rows, opt->cols);
    if (st) {
        free(res);
        return st;
    }
    w.x = malloc(np * sizeof *w.x);
    w.g = malloc(np * sizeof *w.g);
    w.m = malloc(np * sizeof *w.m);
    w.v = malloc(np * sizeof *w.v);
    w.all = malloc(n * sizeof *w.all);
    w.perm = batch < n ? malloc(n * sizeof *w.perm) : NULL;
    if (res) {
        res->x = malloc(np * sizeof *res->x);
        res->restart_loss = malloc(opt->restarts * sizeof *res->restart_loss);
        res->restart_x = malloc(opt->restarts * np * sizeof *res->restart_x);
    }
    if (!res || !w.x || !w.g || !w.m || !w.v || !w.all || (batch < n && !w.perm) || !res->x ||
        !res->restart_loss || !res->restart_x) {
        run_workspace_free(&w);
        sl_sgd_result_free(res);
        return sl_error(SL_ENOMEM, "out of memory for an SGD run on %zu samples, %zu parameters", n,
                        np);
    }
    for (size_t i = 0; i < n; ++i) w.all[i] = i;
    res->nparam = np;
    res->restarts = opt->restarts;
    res->loss = INFINITY;
    s.res = res;

    size_t done = 0;
    for (size_t r = 0; r < opt->restarts && st == SL_OK; ++r) {
        if (r == 0 && x0) {
            memcpy(w.x, x0, np * sizeof *w.x);
        } else {
            gsl_rng *rng = sl_rng_alloc(opt->seed, stream_of(r, 0));
            if (!rng) {
                st = SL_ENOMEM;
                break;
            }
            for (size_t i = 0; i < np; ++i) w.x[i] = gsl_ran_gaussian(rng, opt->init_scale);
            gsl_rng_free(rng);
        }
        st = run_restart(&s, &w, r, &done);
    }
    run_workspace_free(&w);
    if (st) {
        sl_sgd_result_free(res);
        return st;
    }
    *out = res;
    return SL_OK;
}

/* ---- trace output -------------------------------------------------------- */

sl_status sl_trace_write(const sl_sgd_result *r, const char *path, const char *comment) {
    if (!r) return sl_error(SL_EINVAL, "no SGD result given");
    if (!path) return sl_error(SL_EINVAL, "no trace path given");
    /* The CSV format admits finite numbers only, and a run either had a
     * monitor (every row has a finite error) or not (every row NaN): the
     * error column is written exactly when the run had a monitor. */
    const int monitored = r->ntrace > 0 && !isnan(r->trace[0].error);
    static const char *const with_error[] = {"restart",   "step",  "epoch",   "loss",
                                             "grad_norm", "error", "seconds", "full"};
    static const char *const without_error[] = {"restart",   "step",    "epoch", "loss",
                                                "grad_norm", "seconds", "full"};
    const size_t cols = monitored ? 8 : 7;
    sl_csv_writer *w;
    sl_status st =
        sl_csv_writer_open(path, comment, cols, monitored ? with_error : without_error, &w);
    if (st) return st;
    for (size_t i = 0; i < r->ntrace; ++i) {
        const sl_trace_row *t = &r->trace[i];
        if ((isnan(t->error) != 0) == monitored) {
            sl_csv_writer_abort(w);
            return sl_error(SL_EINVAL, "%s: trace row %zu %s a monitor value unlike row 1", path,
                            i + 1, monitored ? "lacks" : "has");
        }
        double row[8];
        size_t c = 0;
        row[c++] = (double)t->restart;
        row[c++] = (double)t->step;
        row[c++] = (double)t->epoch;
        row[c++] = t->loss;
        row[c++] = t->grad_norm;
        if (monitored) row[c++] = t->error;
        row[c++] = t->seconds;
        row[c++] = (double)t->full;
        st = sl_csv_writer_row(w, row);
        if (st) {
            sl_csv_writer_abort(w);
            return st;
        }
    }
    return sl_csv_writer_close(w);
}
