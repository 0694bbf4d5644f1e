/* The recovery pipeline (recover.h): scores, moments and whitening, the
 * landscape loss minimised by SGD in whitened space, the directions mapped
 * back, signs and second layer by least squares, and the measures; or the
 * plain squared loss over (W, a) for comparison.
 *
 * Choices made here:
 * - The rows are split once (seeded) into a fitting part and a held-out
 *   part, and every step (scores, moments, SGD, second layer) sees only the
 *   fitting part, so the held-out prediction error is honest.
 * - The randomness of the split, the scores (automatic bandwidth) and the
 *   SGD come from separate streams of one seed.
 * - In tensor mode every step sees the whole of T; the optimiser is handed
 *   tensor_steps dummy "samples" with batch 1, so an epoch is tensor_steps
 *   steps and its end the full-batch evaluation of the trace. */
#include "scoreloss/recover.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#include "core/linalg.h"
#include "scoreloss/logdens.h"
#include "scoreloss/rng.h"
#include "scoreloss/s4.h"

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL.
 * The sums here (the second layer's Gram matrix over the rows, the
 * prediction errors) run with single-threaded BLAS: threaded kernels change
 * the last bits with the thread count. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

enum {
    STREAM_SPLIT = 1,
    STREAM_SCORES = 2,
    STREAM_SGD = 3,
    STREAM_U_ROWS = 4,
    STREAM_S4 = 5,
    STREAM_SE = 6,
    STREAM_REFIT_ROWS = 7
};

/* Queries whose per-sample terms y_j S_4(z_j)(b^4) give the standard errors
 * of the directional signal on the estimated projected route (a seeded
 * subset: the spread of the terms is then known to about 1 / sqrt(2 x
 * SE_QUERIES), and the full pass would cost as much as T itself). */
#define SE_QUERIES 20000

/* Queries whose per-sample y_j S_4(z_j)(b^4) estimate the standard errors of
 * the directional signal on the estimated projected route (a seeded subset:
 * the spread of those terms is known to about 1 / sqrt(2 SE_QUERIES)). */
#define SE_QUERIES 20000

/* Automatic epochs (sgd.epochs = 0): in tensor mode TENSOR_EPOCHS epochs of
 * tensor_steps steps; with minibatches enough epochs for MIN_STEPS steps
 * (the reference experiments took 10^4 steps; the squared loss at d = 2
 * needs about that many from some starts). */
#define TENSOR_EPOCHS 20
#define MIN_STEPS 10000

/* Rows per block of the second-layer passes (bounds their workspace). */
#define FIT_BLOCK 4096

/* Thresholds of the warnings. A signal coefficient below this fraction of
 * the largest one is "near zero". */
#define WEAK_SIGNAL 0.1
/* The k-th eigenvalue of M2 below this fraction of the first: whitening
 * multiplies that unit's noise by the inverse ratio squared. */
#define WEAK_UNIT 0.05
/* S_4 estimators: warn when more than this share of the points took the
 * thin rule's scores. */
#define THIN_WARN_FRACTION 0.25
/* The (k+1)-th eigenvalue above this fraction of the k-th: no clear gap. */
#define NO_GAP 0.5

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- names -------------------------------------------------------------------- */

static const char *const loss_names[] = {"landscape", "signfree", "l2"};

sl_status sl_recover_loss_from_name(const char *name, sl_recover_loss *out) {
    if (name)
        for (int i = 0; i < 3; ++i)
            if (strcmp(name, loss_names[i]) == 0) {
                *out = (sl_recover_loss)i;
                return SL_OK;
            }
    return sl_error(SL_EINVAL, "unknown loss '%s' (expected landscape, signfree or l2)",
                    name ? name : "(null)");
}

const char *sl_recover_loss_name(sl_recover_loss loss) {
    return (int)loss >= 0 && (int)loss < 3 ? loss_names[loss] : "unknown";
}

const char *sl_recover_route_name(sl_recover_route route) {
    switch (route) {
    case SL_ROUTE_AUTO:
        return "auto";
    case SL_ROUTE_FULL:
        return "full";
    case SL_ROUTE_PROJECTED:
        return "projected";
    case SL_ROUTE_QUADRATIC:
        return "quadratic";
    }
    return "unknown";
}

void sl_recover_options_default(sl_recover_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->loss = SL_RECOVER_LANDSCAPE;
    opt->score = &sl_score_llsfe;
    sl_score_options_default(&opt->score_opt);
    opt->route = SL_ROUTE_AUTO;
    sl_s4_options_default(&opt->s4);
    opt->u_rows = SL_RECOVER_U_ROWS;
    opt->shrink_min = SL_RECOVER_SHRINK_MIN;
    opt->refit_rows = SL_RECOVER_REFIT_ROWS;
    opt->assume_independent = 0;
    opt->detrend = -1;
    opt->refine = -1;
    opt->refit = -1;
    opt->mode = SL_MODE_AUTO;
    sl_landscape_options_default(&opt->landscape);
    sl_sgd_options_default(&opt->sgd);
    opt->sgd.epochs = 0;                       /* automatic */
    opt->sgd.projection = SL_PROJ_ORTHONORMAL; /* measured better: see README, census */
    opt->sgd.restarts = 4;
    opt->sgd.init_scale = 0.0; /* chosen per loss */
    opt->tensor_steps = 100;
    opt->act = SL_ACT_RELU;
    opt->holdout = 0.1;
    opt->seed = 1;
}

void sl_recover_result_free(sl_recover_result *r) {
    if (!r) return;
    free(r->W_hat);
    free(r->a_hat);
    free(r->restart_error);
    free(r->restart_W);
    free(r->m2_evals);
    free(r->signal);
    free(r->found_signal);
    free(r->found_signal_se);
    free(r->truth_signal);
    free(r->truth_coef);
    sl_sgd_result_free(r->sgd);
    free(r->warnings);
    free(r);
}

/* ---- second layer ------------------------------------------------------------------ */

/* sigma(-z) in terms of sigma(z): 1 odd, 2 even, 0 neither (a sign flip
 * changes the span of the features only in the last case). */
static int act_parity(sl_act act) {
    switch (act) {
    case SL_ACT_TANH:
    case SL_ACT_ERF:
    case SL_ACT_CUBIC:
        return 1;
    case SL_ACT_QUADRATIC:
        return 2;
    default:
        return 0;
    }
}

/* The sum of squared residuals of (W, a) on n rows and, if tss is not NULL,
 * the total sum of squares about the mean. Z is a FIT_BLOCK x k workspace. */
static void residuals(size_t n, size_t d, const double *X, const double *y, size_t k, sl_act act,
                      const double *W, const double *a, double *Z, double *rss, double *tss) {
    double sum = 0.0, mean = 0.0;
    for (size_t lo = 0; lo < n; lo += FIT_BLOCK) {
        const size_t m = n - lo < FIT_BLOCK ? n - lo : FIT_BLOCK;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)d, 1.0,
                    X + lo * d, (int)d, W, (int)d, 0.0, Z, (int)k);
        for (size_t j = 0; j < m; ++j) {
            double yhat = 0.0;
            for (size_t i = 0; i < k; ++i) yhat += a[i] * sl_act_eval(act, 0, Z[j * k + i]);
            const double r = y[lo + j] - yhat;
            sum += r * r;
        }
    }
    *rss = sum;
    if (!tss) return;
    for (size_t j = 0; j < n; ++j) mean += y[j];
    mean /= (double)n;
    double t = 0.0;
    for (size_t j = 0; j < n; ++j) t += (y[j] - mean) * (y[j] - mean);
    *tss = t;
}

static sl_status check_fit_args(size_t n, size_t d, const double *X, const double *y, size_t k,
                                sl_act act, const double *W, const char *what) {
    if (!X || !y || !W) return sl_error(SL_EINVAL, "%s: missing argument", what);
    if (n == 0 || d == 0 || k == 0)
        return sl_error(SL_EINVAL, "%s: empty problem (n = %zu, d = %zu, k = %zu)", what, n, d, k);
    if (n > INT_MAX || d > INT_MAX || k > INT_MAX || 2 * k > SIZE_MAX / sizeof(double) / FIT_BLOCK)
        return sl_error(SL_EINVAL, "%s: dimensions too large", what);
    if ((int)act < 0 || (int)act >= SL_ACT_COUNT)
        return sl_error(SL_EINVAL, "%s: unknown activation %d", what, (int)act);
    return SL_OK;
}

sl_status sl_prediction_error(size_t n, size_t d, const double *X, const double *y, size_t k,
                              sl_act act, const double *W, const double *a, double *out) {
    sl_status st = check_fit_args(n, d, X, y, k, act, W, "prediction error");
    if (st) return st;
    if (!a || !out) return sl_error(SL_EINVAL, "prediction error: missing argument");
    double *Z = malloc(FIT_BLOCK * k * sizeof *Z);
    if (!Z) return sl_error(SL_ENOMEM, "prediction error: out of memory");
    double rss, tss;
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    residuals(n, d, X, y, k, act, W, a, Z, &rss, &tss);
    openblas_set_num_threads(blas_threads);
    free(Z);
    if (!(tss > 0.0))
        return sl_error(SL_ENUMERIC, "prediction error: the %zu labels are all equal", n);
    *out = rss / tss;
    return SL_OK;
}

/* Least squares from the Gram matrix: a = G^+ c over the eigenvalues above
 * a relative floor (collinear features, e.g. two equal directions, get the
 * minimum-norm solution instead of a failure); returns c'a, the explained
 * sum of squares. ws holds 2 k^2 + 2 k doubles. */
static sl_status gram_solve(size_t k, const double *G, const double *c, double *a, double *ws,
                            double *explained) {
    double *w = ws, *V = ws + k, *t = V + k * k;
    sl_status st = sl_sym_eigen(k, G, w, V);
    if (st) return st;
    const double floor = 1e-13 * fmax(fabs(w[0]), 1e-300);
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)k, (int)k, 1.0, V, (int)k, c, 1, 0.0, t, 1);
    for (size_t i = 0; i < k; ++i) t[i] = w[i] > floor ? t[i] / w[i] : 0.0;
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)k, (int)k, 1.0, V, (int)k, t, 1, 0.0, a, 1);
    *explained = cblas_ddot((int)k, c, 1, a, 1);
    return SL_OK;
}

/* The Gram matrix and right-hand side of the 2k features sigma(z_i) and
 * sigma(-z_i) (or k features when flips are not tried). */
static void accumulate_gram(size_t n, size_t d, const double *X, const double *y, size_t k,
                            sl_act act, const double *W, size_t nf, double *Z, double *F,
                            double *G2, double *c2) {
    memset(G2, 0, nf * nf * sizeof *G2);
    memset(c2, 0, nf * sizeof *c2);
    for (size_t lo = 0; lo < n; lo += FIT_BLOCK) {
        const size_t m = n - lo < FIT_BLOCK ? n - lo : FIT_BLOCK;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)k, (int)d, 1.0,
                    X + lo * d, (int)d, W, (int)d, 0.0, Z, (int)k);
        for (size_t j = 0; j < m; ++j)
            for (size_t i = 0; i < k; ++i) {
                const double z = Z[j * k + i];
                F[j * nf + i] = sl_act_eval(act, 0, z);
                if (nf > k) F[j * nf + k + i] = sl_act_eval(act, 0, -z);
            }
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nf, (int)nf, (int)m, 1.0, F,
                    (int)nf, F, (int)nf, 1.0, G2, (int)nf);
        cblas_dgemv(CblasRowMajor, CblasTrans, (int)m, (int)nf, 1.0, F, (int)nf, y + lo, 1, 1.0, c2,
                    1);
    }
}

/* Up to this many units the second layer tries every sign pattern (2^k
 * solves of k x k); beyond, flips one at a time while one helps. Measured:
 * student, d = 10, k = 5, n = 10^5, seed 2, the fourth refit pass (every
 * direction within 0.0077 of the truth): the greedy flips stopped at a
 * residual sum of squares of 9912 and the pass was not kept, for the first
 * pass's 6284 (0.12 off); the best pattern gives 533 (numpy, all rows). */
#define SIGN_SEARCH_MAX_K 12

/* The Gram matrix G (k x k) and right-hand side c of the features under
 * the signs: unit i's feature is column i of G2 and c2 (sign +1) or k + i
 * (-1). */
static void gather(size_t k, size_t nf, const int *sign, const double *G2, const double *c2,
                   double *G, double *c) {
    for (size_t i = 0; i < k; ++i) {
        const size_t fi = sign[i] > 0 ? i : k + i;
        c[i] = c2[fi];
        for (size_t j = 0; j < k; ++j) G[i * k + j] = G2[fi * nf + (sign[j] > 0 ? j : k + j)];
    }
}

static sl_status second_layer(size_t n, size_t d, const double *X, const double *y, size_t k,
                              sl_act act, const double *W, double *W_out, double *a, double *rss) {
    sl_status st = SL_OK;
    const int flips = act_parity(act) == 0;
    const size_t nf = flips ? 2 * k : k;
    double *Z = malloc(FIT_BLOCK * k * sizeof *Z);
    double *F = malloc(FIT_BLOCK * nf * sizeof *F);
    double *G2 = malloc(nf * nf * sizeof *G2), *c2 = malloc(nf * sizeof *c2);
    double *G = malloc(k * k * sizeof *G), *c = malloc(k * sizeof *c);
    double *ws = malloc((2 * k * k + 2 * k) * sizeof *ws);
    int *sign = malloc(k * sizeof *sign);
    if (!Z || !F || !G2 || !c2 || !G || !c || !ws || !sign) {
        st = sl_error(SL_ENOMEM, "second layer: out of memory for k = %zu", k);
        goto done;
    }
    accumulate_gram(n, d, X, y, k, act, W, nf, Z, F, G2, c2);
    double yy = cblas_ddot((int)n, y, 1, y, 1);
    for (size_t i = 0; i < k; ++i) sign[i] = 1;

    double explained = 0.0;
    if (flips && k <= SIGN_SEARCH_MAX_K) {
        /* Every sign pattern: the Gram of all 2k features is in hand, so each
         * costs a k x k solve. The first best in the order of the binary
         * count (all +1 first); a later pattern must explain more beyond
         * rounding (noise-free data fit exactly by either sign of a
         * zero-weight unit). */
        unsigned long best_mask = 0;
        double best_e = 0.0;
        for (unsigned long mask = 0; mask < 1ul << k; ++mask) {
            for (size_t i = 0; i < k; ++i) sign[i] = (mask >> i & 1ul) ? -1 : 1;
            gather(k, nf, sign, G2, c2, G, c);
            double e;
            if ((st = gram_solve(k, G, c, a, ws, &e))) goto done;
            if (mask == 0 || e - best_e > 1e-12 * yy) {
                best_e = e;
                best_mask = mask;
            }
        }
        for (size_t i = 0; i < k; ++i) sign[i] = (best_mask >> i & 1ul) ? -1 : 1;
    }
    while (flips && k > SIGN_SEARCH_MAX_K) {
        /* The fit with the current signs, then every single flip. */
        double best_gain = 0.0;
        size_t best = SIZE_MAX;
        for (size_t f = 0; f <= k; ++f) {
            if (f > 0) sign[f - 1] = -sign[f - 1];
            gather(k, nf, sign, G2, c2, G, c);
            double e;
            st = gram_solve(k, G, c, a, ws, &e);
            if (f > 0) sign[f - 1] = -sign[f - 1];
            if (st) goto done;
            if (f == 0) {
                explained = e;
            } else if (e - explained > best_gain) {
                best_gain = e - explained;
                best = f - 1;
            }
        }
        /* Flips within rounding of the current fit are not progress (noise-
         * free data fit exactly by either sign of a zero-weight unit). */
        if (best == SIZE_MAX || best_gain <= 1e-12 * yy) break;
        sign[best] = -sign[best];
    }
    /* The final a from the chosen features (the loop ends after a fit with
     * the current signs, but that fit's a was overwritten by the flips). */
    gather(k, nf, sign, G2, c2, G, c);
    if ((st = gram_solve(k, G, c, a, ws, &explained))) goto done;
    for (size_t i = 0; i < k; ++i)
        for (size_t j = 0; j < d; ++j) W_out[i * d + j] = sign[i] * W[i * d + j];
    if (rss) residuals(n, d, X, y, k, act, W_out, a, Z, rss, NULL);
done:
    free(Z);
    free(F);
    free(G2);
    free(c2);
    free(G);
    free(c);
    free(ws);
    free(sign);
    return st;
}

sl_status sl_second_layer_fit(size_t n, size_t d, const double *X, const double *y, size_t k,
                              sl_act act, const double *W, double *W_out, double *a, double *rss) {
    sl_status st = check_fit_args(n, d, X, y, k, act, W, "second layer");
    if (st) return st;
    if (!W_out || !a) return sl_error(SL_EINVAL, "second layer: missing argument");
    if (!sl_all_finite(k * d, W))
        return sl_error(SL_EINVAL, "second layer: the directions have non-finite entries");
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    st = second_layer(n, d, X, y, k, act, W, W_out, a, rss);
    openblas_set_num_threads(blas_threads);
    return st;
}

/* ---- the pipeline ------------------------------------------------------------------- */

/* Everything one run owns, released in one place. */
typedef struct run {
    const sl_recover_options *opt;
    sl_recover_result *res;
    size_t n, d, k, ntr, nho;
    double *Xtr, *ytr, *Xho, *yho; /* the split (copies) */
    const double *truthW;          /* kt x d, or NULL */
    size_t kt;
    double *M;    /* d x k: U |Lambda|^{1/2}, maps whitened columns back */
    double *Wbuf; /* k x d workspace of the monitor */
    /* Kept for options.refit (estimated projected route; keep_scores: only
     * in sl_recover, which runs the passes): the rows of M2's scores and the
     * scores. */
    int keep_scores;
    sl_scores *scores;
    double *Xu, *yu;
    size_t nu;
    /* The rows of the refit passes' T: a seeded subset of options.refit_rows
     * rows, or the fitted rows themselves. */
    double *Xf, *yf;
    size_t nf;
    /* Warnings, one per line. */
    char *warn;
    size_t warn_len;
} run;

static void run_free(run *r) {
    free(r->Xtr);
    free(r->ytr);
    free(r->Xho);
    free(r->yho);
    free(r->M);
    free(r->Wbuf);
    free(r->warn);
    sl_scores_free(r->scores);
    if (r->Xf != r->Xtr) free(r->Xf);
    if (r->yf != r->ytr) free(r->yf);
    if (r->Xu != r->Xtr) free(r->Xu);
    if (r->yu != r->ytr) free(r->yu);
}

/* Records a warning and passes it to the caller's callback. */
static void warn(run *r, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void warn(run *r, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (r->opt->message) r->opt->message(line, r->opt->ctx);
    const size_t len = strlen(line);
    char *p = realloc(r->warn, r->warn_len + len + 2);
    if (!p) return; /* a lost warning is not worth failing the run */
    r->warn = p;
    memcpy(r->warn + r->warn_len, line, len);
    r->warn_len += len;
    r->warn[r->warn_len++] = '\n';
    r->warn[r->warn_len] = '\0';
}

static int compare_size(const void *a, const void *b) {
    const size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The seeded split: nho rows held out, the others fitted, each part in the
 * original row order. */
static sl_status split_rows(run *r, const double *X, const double *y) {
    const size_t n = r->n, d = r->d, nho = r->nho, ntr = r->ntr;
    size_t *perm = malloc(n * sizeof *perm);
    r->Xtr = malloc(ntr * d * sizeof *r->Xtr);
    r->ytr = malloc(ntr * sizeof *r->ytr);
    if (nho) {
        r->Xho = malloc(nho * d * sizeof *r->Xho);
        r->yho = malloc(nho * sizeof *r->yho);
    }
    if (!perm || !r->Xtr || !r->ytr || (nho && (!r->Xho || !r->yho))) {
        free(perm);
        return sl_error(SL_ENOMEM, "out of memory for %zu x %zu samples", n, d);
    }
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    if (nho) {
        gsl_rng *rng = sl_rng_alloc(r->opt->seed, STREAM_SPLIT);
        if (!rng) {
            free(perm);
            return SL_ENOMEM;
        }
        gsl_ran_shuffle(rng, perm, n, sizeof *perm);
        gsl_rng_free(rng);
        qsort(perm, nho, sizeof *perm, compare_size);
        qsort(perm + nho, ntr, sizeof *perm, compare_size);
    }
    for (size_t i = 0; i < nho; ++i) {
        memcpy(r->Xho + i * d, X + perm[i] * d, d * sizeof *X);
        r->yho[i] = y[perm[i]];
    }
    for (size_t i = 0; i < ntr; ++i) {
        memcpy(r->Xtr + i * d, X + perm[nho + i] * d, d * sizeof *X);
        r->ytr[i] = y[perm[nho + i]];
    }
    free(perm);
    return SL_OK;
}

/* err_max of k rows against the truth; 1 (the worst) for a degenerate
 * estimate, so a monitor never fails a run over a zero column. */
static double err_max_of(const run *r, const double *W) {
    sl_recovery_error e;
    if (sl_recovery_error_compute(r->k, r->kt, r->d, W, r->truthW, &e) != SL_OK) {
        sl_error_clear();
        return 1.0;
    }
    return e.err_max;
}

/* Whitened columns B (k x k, column j = b_j) to rows W = B' M' (k x d). */
static void map_back(const run *r, const double *B, double *W) {
    const int k = (int)r->k, d = (int)r->d;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, k, d, k, 1.0, B, k, r->M, k, 0.0, W, d);
}

static double monitor_landscape(size_t nparam, const double *x, void *data) {
    run *r = data;
    (void)nparam;
    map_back(r, x, r->Wbuf);
    return err_max_of(r, r->Wbuf);
}

static double monitor_l2(size_t nparam, const double *x, void *data) {
    (void)nparam;
    return err_max_of(data, x);
}

static void scores_progress(double fraction, void *ctx) {
    const sl_recover_options *opt = ctx;
    opt->progress("scores", fraction, opt->ctx);
}

static void sgd_progress(double fraction, void *ctx) {
    const sl_recover_options *opt = ctx;
    opt->progress("sgd", fraction, opt->ctx);
}

/* The optimiser's options for this run: the caller's, with the seed, the
 * monitor and the progress of this run. */
static void sgd_options_for(run *r, sl_sgd_options *so, sl_monitor_fn monitor, size_t nsamples,
                            int tensor) {
    *so = r->opt->sgd;
    if (tensor) so->batch = 1;
    if (so->epochs == 0 && so->batch > 0) {
        const size_t batch = so->batch < nsamples ? so->batch : nsamples;
        const size_t per_epoch = (nsamples + batch - 1) / batch;
        so->epochs = tensor ? TENSOR_EPOCHS : (MIN_STEPS + per_epoch - 1) / per_epoch;
    }
    so->seed = sl_rng_derive(r->opt->seed, STREAM_SGD);
    so->monitor = r->truthW ? monitor : NULL;
    so->monitor_data = r->truthW ? r : NULL;
    so->progress = r->opt->progress ? sgd_progress : NULL;
    so->progress_ctx = (void *)r->opt;
}

static sl_status run_l2(run *r) {
    const size_t k = r->k, d = r->d, np = k * d + k;
    sl_recover_result *res = r->res;
    sl_sgd_options so;
    sgd_options_for(r, &so, monitor_l2, r->ntr, 0);
    so.projection = SL_PROJ_NONE;
    so.rows = so.cols = 0;
    if (!(so.init_scale > 0.0)) so.init_scale = 1.0 / sqrt((double)d);
    sl_l2 *L = NULL;
    sl_status st = sl_l2_alloc(r->ntr, d, r->Xtr, r->ytr, k, r->opt->act,
                               so.batch < r->ntr ? so.batch : r->ntr, &L);
    if (st) return st;
    double t0 = now_seconds();
    st = sl_sgd_minimize(&so, sl_l2_objective, L, r->ntr, np, NULL, &res->sgd);
    res->seconds_sgd = now_seconds() - t0;
    sl_l2_free(L);
    if (st) return st;
    memcpy(res->W_hat, res->sgd->x, k * d * sizeof *res->W_hat);
    memcpy(res->a_hat, res->sgd->x + k * d, k * sizeof *res->a_hat);
    const size_t R = res->sgd->restarts;
    res->restart_W = malloc(R * k * d * sizeof *res->restart_W);
    if (!res->restart_W) return sl_error(SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < R; ++i)
        memcpy(res->restart_W + i * k * d, res->sgd->restart_x + i * np,
               k * d * sizeof *res->restart_W);
    if (r->truthW) {
        res->restart_error = malloc(R * sizeof *res->restart_error);
        if (!res->restart_error) return sl_error(SL_ENOMEM, "out of memory");
        for (size_t i = 0; i < R; ++i)
            res->restart_error[i] = err_max_of(r, res->restart_W + i * k * d);
    }
    return SL_OK;
}

/* The warnings about M2 and the signal: before any optimisation, or with
 * refit passes, about the kept pass's moments. */
static void check_moments(run *r, const sl_moments *m) {
    const size_t k = r->k;
    const double *ev = m->evals;
    if (fabs(ev[k - 1]) < WEAK_UNIT * fabs(ev[0]))
        warn(r,
             "weak unit: eigenvalue %zu of M2 is %.3g, %.3g of the largest (%.3g); whitening "
             "multiplies its noise by the square of the inverse ratio",
             k, ev[k - 1], fabs(ev[k - 1] / ev[0]), ev[0]);
    if (k < r->d && fabs(ev[k]) > NO_GAP * fabs(ev[k - 1]))
        warn(r,
             "no clear gap in the spectrum of M2: eigenvalue %zu is %.3g, eigenvalue %zu is %.3g; "
             "the span of W is poorly determined (too few samples, or k too large)",
             k + 1, ev[k], k, ev[k - 1]);
    size_t pos = 0, neg = 0;
    double top = 0.0;
    for (size_t i = 0; i < k; ++i) {
        pos += m->signal[i] > 0.0;
        neg += m->signal[i] < 0.0;
        top = fmax(top, fabs(m->signal[i]));
    }
    const char *hint = r->opt->loss == SL_RECOVER_LANDSCAPE ? "; try the sign-free loss" : "";
    if (pos && neg && r->opt->loss == SL_RECOVER_LANDSCAPE)
        warn(r,
             "mixed signs: %zu of the %zu signal coefficients are positive and %zu negative, so "
             "the single-sign landscape loss cannot fit every unit on the sphere (with k "
             "orthonormal columns the last is forced onto the remaining direction), unless the "
             "minority sign is noise in T: compare T along the directions found%s",
             pos, k, neg, hint);
    /* One line however many are weak (k can be 50). */
    size_t weak = 0, first = k;
    double wmin = INFINITY, wmax = 0.0;
    for (size_t i = 0; i < k; ++i)
        if (fabs(m->signal[i]) < WEAK_SIGNAL * top) {
            if (first == k) first = i;
            ++weak;
            wmin = fmin(wmin, fabs(m->signal[i]));
            wmax = fmax(wmax, fabs(m->signal[i]));
        }
    if (weak == 1 && top > 0.0)
        warn(r,
             "weak signal: coefficient %zu of the fourth-order signal is %.3g, %.3g of the "
             "largest; its direction may not be found%s",
             first + 1, m->signal[first], fabs(m->signal[first]) / top, hint);
    else if (weak > 1 && top > 0.0)
        warn(r,
             "weak signal: %zu of the %zu coefficients of the fourth-order signal are below %g of "
             "the largest (|c| from %.3g to %.3g against %.3g); their directions may not be "
             "found%s",
             weak, k, WEAK_SIGNAL, wmin, wmax, top, hint);
    if (!(top > 0.0)) warn(r, "no fourth-order signal: every coefficient is zero%s", hint);
}

/* T from exact scores along the chosen route. */
static sl_status exact_tensor(run *r, sl_moments *m, sl_recover_route route) {
    const sl_dist *dist = r->opt->score_opt.dist;
    const size_t k = r->k, d = r->d, n = r->ntr;
    if (route == SL_ROUTE_FULL) return sl_moments_tensor_dist(m, dist, r->Xtr, m->P);
    sl_dist *marg = NULL;
    sl_status st = sl_dist_marginal(dist, k, m->U, &marg);
    if (st) return st;
    double *Z = malloc(n * k * sizeof *Z), *V = calloc(k * k, sizeof *V);
    if (!Z || !V) {
        st = sl_error(SL_ENOMEM, "out of memory for the %zu x %zu projected samples", n, k);
    } else {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0, r->Xtr,
                    (int)d, m->U, (int)k, 0.0, Z, (int)k);
        for (size_t i = 0; i < k; ++i) V[i * k + i] = 1.0 / sqrt(fabs(m->evals[i]));
        st = sl_moments_tensor_dist(m, marg, Z, V);
    }
    free(Z);
    free(V);
    sl_dist_free(marg);
    return st;
}

/* Which route T takes; warns where the automatic choice falls back. */
static sl_status choose_route(run *r, sl_recover_route *route) {
    const sl_recover_options *opt = r->opt;
    const int exact = opt->score == &sl_score_exact;
    if (!exact) {
        if (opt->assume_independent) {
            if (opt->route == SL_ROUTE_PROJECTED)
                return sl_error(SL_EINVAL, "with independent coordinates T comes from the "
                                           "factorised fit (route full or quadratic), not the "
                                           "projected route");
            *route = opt->route == SL_ROUTE_QUADRATIC ? SL_ROUTE_QUADRATIC : SL_ROUTE_FULL;
            return SL_OK;
        }
        if (opt->route == SL_ROUTE_FULL)
            return sl_error(SL_EINVAL,
                            "route full needs exact scores (score method exact with a "
                            "distribution) or independent coordinates; %s scores take the "
                            "projected or the quadratic route",
                            opt->score->name);
        /* The model-based baselines (gauss, hermite) define their S_4 by their
         * model: the Gaussian-designed loss stays the locally quadratic one
         * unless the projected route is asked for. */
        const int nonparametric = opt->score == &sl_score_llsfe || opt->score == &sl_score_kde;
        *route = opt->route == SL_ROUTE_QUADRATIC || (opt->route == SL_ROUTE_AUTO && !nonparametric)
                     ? SL_ROUTE_QUADRATIC
                     : SL_ROUTE_PROJECTED;
        return SL_OK;
    }
    const sl_dist *dist = opt->score_opt.dist;
    const unsigned caps = sl_dist_caps(dist);
    if (!(caps & SL_DIST_SMOOTH))
        warn(r,
             "%s is not smooth: Stein's identities need a smooth density, so the moments are "
             "biased at its kinks",
             sl_dist_name(dist));
    switch (opt->route) {
    case SL_ROUTE_FULL:
        if (!(caps & SL_DIST_SCORE4))
            return sl_error(SL_EINVAL,
                            "route full needs the exact S_4 of the input distribution, which %s "
                            "does not provide (try route projected)",
                            sl_dist_name(dist));
        *route = SL_ROUTE_FULL;
        return SL_OK;
    case SL_ROUTE_PROJECTED:
    case SL_ROUTE_QUADRATIC:
        *route = opt->route;
        return SL_OK;
    case SL_ROUTE_AUTO:
        break;
    }
    if (caps & SL_DIST_SCORE4) {
        *route = SL_ROUTE_FULL;
        return SL_OK;
    }
    /* Is the marginal known? Asked with the first k coordinate axes. */
    double *E = calloc(r->d * r->k, sizeof *E);
    if (!E) return sl_error(SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->k; ++i) E[i * r->k + i] = 1.0;
    sl_dist *marg = NULL;
    sl_status st = sl_dist_marginal(dist, r->k, E, &marg);
    free(E);
    sl_dist_free(marg);
    if (st == SL_OK) {
        *route = SL_ROUTE_PROJECTED;
        return SL_OK;
    }
    if (st != SL_EUNSUPPORTED) return st;
    sl_error_clear();
    warn(r,
         "%s has no exact S_4 and no known marginal: T uses the locally quadratic S_4 from "
         "(g, H), which drops the third and fourth log-derivatives",
         sl_dist_name(dist));
    *route = SL_ROUTE_QUADRATIC;
    return SL_OK;
}

/* T(b, b, b, b) for unit b: along the columns of the best restart and the
 * whitened true directions P'w_i / |P'w_i|. */
static sl_status directional_signal(run *r, const sl_moments *m, const double *X) {
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d;
    free(res->found_signal);
    free(res->truth_signal);
    res->truth_signal = NULL;
    res->found_signal = malloc(k * sizeof *res->found_signal);
    double *b = malloc(k * sizeof *b);
    if (!res->found_signal || !b) {
        free(b);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < k; ++j) {
        for (size_t i = 0; i < k; ++i) b[i] = X[i * k + j];
        const double nrm = cblas_dnrm2((int)k, b, 1);
        if (nrm > 0.0) cblas_dscal((int)k, 1.0 / nrm, b, 1);
        res->found_signal[j] = sl_moments_contract(m, b, b, b, b);
    }
    if (r->truthW) {
        res->truth_signal = malloc(r->kt * sizeof *res->truth_signal);
        if (!res->truth_signal) {
            free(b);
            return sl_error(SL_ENOMEM, "out of memory");
        }
        res->ntruth_signal = r->kt;
        for (size_t i = 0; i < r->kt; ++i) {
            cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)k, 1.0, m->P, (int)k,
                        r->truthW + i * d, 1, 0.0, b, 1);
            const double nrm = cblas_dnrm2((int)k, b, 1);
            if (nrm > 0.0) cblas_dscal((int)k, 1.0 / nrm, b, 1);
            res->truth_signal[i] = nrm > 0.0 ? sl_moments_contract(m, b, b, b, b) : 0.0;
        }
    }
    free(b);
    return SL_OK;
}

/* res->truth_coef (recover.h) from the exact one-dimensional marginals of
 * score_opt.dist along the true units; nothing when there is no truth, the
 * units are not ReLUs or the marginals are not known. With units of both
 * signs the single-sign landscape loss gets a warning: unlike the one from
 * T's estimated signal (check_moments), this one is not noise. */
static sl_status truth_coefficients(run *r) {
    const sl_network *t = r->opt->truth;
    const sl_dist *D = r->opt->score_opt.dist;
    sl_recover_result *res = r->res;
    if (!t || !D || t->act != SL_ACT_RELU || sl_dist_dim(D) != r->d) return SL_OK;
    const size_t kt = t->k, d = r->d;
    double *c = malloc(kt * sizeof *c), *u = malloc(d * sizeof *u);
    sl_status st = c && u ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    size_t pos = 0, neg = 0;
    for (size_t i = 0; !st && i < kt; ++i) {
        const double nrm = cblas_dnrm2((int)d, t->W + i * d, 1);
        if (!(nrm > 0.0) || t->a[i] == 0.0) {
            c[i] = NAN; /* a unit that adds nothing */
            continue;
        }
        for (size_t a = 0; a < d; ++a) u[a] = t->W[i * d + a] / nrm;
        sl_dist *m1 = NULL;
        if ((st = sl_dist_marginal(D, 1, u, &m1))) break;
        const double zero = 0.0;
        double logp = 0.0, g = 0.0, h = 0.0;
        st = sl_dist_log_density(m1, 1, &zero, &logp);
        if (!st) st = sl_dist_grad_hess(m1, 1, &zero, &g, &h);
        sl_dist_free(m1);
        /* p''/p = (log p)'' + (log p)'^2. */
        if (!st) c[i] = (h + g * g) / (t->a[i] * nrm * exp(logp));
        if (!st) pos += c[i] > 0.0, neg += c[i] < 0.0;
    }
    free(u);
    if (st) {
        free(c);
        if (st != SL_EUNSUPPORTED) return st;
        sl_error_clear(); /* marginals not known: no coefficients */
        return SL_OK;
    }
    res->truth_coef = c;
    res->ntruth_coef = kt;
    if (pos && neg && r->opt->loss == SL_RECOVER_LANDSCAPE)
        warn(r,
             "the true units' whitened fourth-order coefficients have both signs in the "
             "population (%zu positive, %zu negative, from the exact marginals of %s): the "
             "single-sign landscape loss seeks units of one sign (on orthonormal columns one "
             "unit of the other sign is left the remaining direction, more are not determined "
             "by it); try the sign-free loss",
             pos, neg, sl_dist_name(D));
    return SL_OK;
}

/* The standard errors of found_signal: per-sample terms y_j S_4(x_j)(b^4)
 * of the S_4 behind T (the locally quadratic one from P'g and P'HP, or the
 * distribution's or its marginal's exact one), summed in sample order. A
 * significance test of each coefficient against zero: the tool's own check
 * that a direction carries signal (gmm2 with W = I has none, METHOD.md
 * section 2). */
static void significance_check(run *r);

static sl_status directional_se(run *r, const sl_moments *m, sl_recover_route route,
                                const double *X) {
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d, n = r->ntr;
    const sl_dist *dist = r->opt->score_opt.dist;
    sl_dist *marg = NULL;
    sl_status st = SL_OK;
    if (route == SL_ROUTE_PROJECTED) st = sl_dist_marginal(dist, k, m->U, &marg);
    const size_t dv = route == SL_ROUTE_PROJECTED ? k : d; /* the S_4's dimension */
    free(res->found_signal_se);
    res->found_signal_se = malloc(k * sizeof *res->found_signal_se);
    double *vals = malloc(n * sizeof *vals), *b = malloc(k * sizeof *b),
           *v = malloc(dv * sizeof *v);
    if (!st && (!res->found_signal_se || !vals || !b || !v))
        st = sl_error(SL_ENOMEM, "out of memory");
    for (size_t j = 0; j < k && st == SL_OK; ++j) {
        for (size_t i = 0; i < k; ++i) b[i] = X[i * k + j];
        const double nrm = cblas_dnrm2((int)k, b, 1);
        if (nrm > 0.0) cblas_dscal((int)k, 1.0 / nrm, b, 1);
        /* The direction in the S_4's own coordinates. */
        if (route == SL_ROUTE_FULL)
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)k, 1.0, m->P, (int)k, b, 1, 0.0,
                        v, 1);
        else if (route == SL_ROUTE_PROJECTED)
            for (size_t i = 0; i < k; ++i) v[i] = b[i] / sqrt(fabs(m->evals[i]));
        int failed = 0;
#ifdef _OPENMP
#pragma omp parallel
#endif
        {
            double *z = route == SL_ROUTE_PROJECTED ? malloc(k * sizeof *z) : NULL;
            if (route == SL_ROUTE_PROJECTED && !z) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                failed = 1;
            }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (size_t s = 0; s < n; ++s) {
                double s4 = 0.0;
                if (route == SL_ROUTE_QUADRATIC) {
                    double u = 0.0, q = 0.0;
                    const double *g = m->Gw + s * k, *H = m->Hw + s * k * k;
                    for (size_t a = 0; a < k; ++a) {
                        u += g[a] * b[a];
                        double hb = 0.0;
                        for (size_t c = 0; c < k; ++c) hb += H[a * k + c] * b[c];
                        q += b[a] * hb;
                    }
                    s4 = u * u * u * u + 6.0 * q * u * u + 3.0 * q * q;
                } else if (route == SL_ROUTE_FULL) {
                    if (sl_dist_scores(dist, r->Xtr + s * d, 1, v, NULL, NULL, NULL, &s4))
                        failed = 1;
                } else if (z) {
                    for (size_t a = 0; a < k; ++a)
                        z[a] = cblas_ddot((int)d, r->Xtr + s * d, 1, m->U + a, (int)k);
                    if (sl_dist_scores(marg, z, 1, v, NULL, NULL, NULL, &s4)) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                        failed = 1;
                    }
                }
                vals[s] = m->y[s] * s4; /* the labels T saw */
            }
            free(z);
        }
        if (failed) {
            st = sl_error(SL_ECALLBACK, "the exact S_4 along direction %zu failed on a sample",
                          j + 1);
            break;
        }
        double mean = 0.0, var = 0.0;
        for (size_t s = 0; s < n; ++s) mean += vals[s];
        mean /= (double)n;
        for (size_t s = 0; s < n; ++s) var += (vals[s] - mean) * (vals[s] - mean);
        res->found_signal_se[j] = n > 1 ? sqrt(var / (double)(n - 1) / (double)n) : NAN;
    }
    free(vals);
    free(b);
    free(v);
    sl_dist_free(marg);
    return st;
}

/* The standard errors of found_signal when T came from estimated third and
 * fourth log-derivatives: on the projected route the per-sample terms
 * y_j S_4^z(z_j)(v^4), v = |Lambda|^{-1/2} b, of the same estimator at a
 * seeded subset of SE_QUERIES samples (their spread, over sqrt(n)); with
 * independent coordinates the factorised S_4 at every sample, from the 1-D
 * fits (v = P b). */
static sl_status directional_se_estimated(run *r, const sl_moments *m, const double *Z,
                                          const sl_s4_options *s4o, const sl_indep_fit *fit,
                                          const double *X, size_t n, const double *y) {
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d;
    const size_t nq = fit ? n : (n < SE_QUERIES ? n : SE_QUERIES);
    sl_status st = SL_OK;
    free(res->found_signal_se);
    res->found_signal_se = malloc(k * sizeof *res->found_signal_se);
    double *vals = malloc(nq * k * sizeof *vals), *B = malloc((fit ? d : k) * k * sizeof *B);
    size_t *qidx = fit ? NULL : malloc(nq * sizeof *qidx);
    if (!res->found_signal_se || !vals || !B || (!fit && !qidx)) {
        free(vals);
        free(B);
        free(qidx);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    /* The directions: column j of B, in z (projected) or x (independent). */
    for (size_t j = 0; j < k; ++j) {
        double nrm = 0.0;
        for (size_t i = 0; i < k; ++i) nrm += X[i * k + j] * X[i * k + j];
        nrm = nrm > 0.0 ? 1.0 / sqrt(nrm) : 0.0;
        if (fit)
            for (size_t a = 0; a < d; ++a) {
                double v = 0.0;
                for (size_t i = 0; i < k; ++i) v += m->P[a * k + i] * X[i * k + j] * nrm;
                B[a * k + j] = v;
            }
        else
            for (size_t i = 0; i < k; ++i)
                B[i * k + j] = X[i * k + j] * nrm / sqrt(fabs(m->evals[i]));
    }
    if (fit) {
        /* S_4(v^4) = (g.v)^4 + 6 (g.v)^2 q + 3 q^2 + 4 (g.v) c3 + c4 with the
         * diagonal H, G3, G4: q = sum l_i'' v_i^2, c3 = sum l_i''' v_i^3,
         * c4 = sum l_i'''' v_i^4. */
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
        for (size_t s = 0; s < n; ++s) {
            double acc[4 * 64] = {0};
            for (size_t a = 0; a < d; ++a) {
                double l[5];
                sl_logdens1d_eval(fit->coord[a], r->Xtr[s * d + a], l);
                for (size_t j = 0; j < k && j < 64; ++j) {
                    const double v = B[a * k + j], v2 = v * v;
                    acc[4 * j] += l[1] * v;
                    acc[4 * j + 1] += l[2] * v2;
                    acc[4 * j + 2] += l[3] * v2 * v;
                    acc[4 * j + 3] += l[4] * v2 * v2;
                }
            }
            for (size_t j = 0; j < k && j < 64; ++j) {
                const double gv = acc[4 * j], q = acc[4 * j + 1], c3 = acc[4 * j + 2],
                             c4 = acc[4 * j + 3];
                vals[s * k + j] = y[s] * (gv * gv * gv * gv + 6.0 * gv * gv * q + 3.0 * q * q +
                                          4.0 * gv * c3 + c4);
            }
        }
    } else {
        if (nq == n) {
            for (size_t i = 0; i < n; ++i) qidx[i] = i;
        } else {
            size_t *all = malloc(n * sizeof *all);
            gsl_rng *rng = sl_rng_alloc(r->opt->seed, STREAM_SE);
            if (!all || !rng) st = sl_error(SL_ENOMEM, "out of memory");
            if (!st) {
                for (size_t i = 0; i < n; ++i) all[i] = i;
                gsl_ran_choose(rng, qidx, nq, all, n, sizeof *all);
            }
            free(all);
            if (rng) gsl_rng_free(rng);
        }
        if (!st) st = sl_s4_directional(s4o, n, k, Z, y, nq, qidx, k, B, vals);
    }
    for (size_t j = 0; j < k && !st; ++j) {
        double mean = 0.0, var = 0.0;
        for (size_t s = 0; s < nq; ++s) mean += vals[s * k + j];
        mean /= (double)nq;
        for (size_t s = 0; s < nq; ++s) var += (vals[s * k + j] - mean) * (vals[s * k + j] - mean);
        res->found_signal_se[j] = nq > 1 ? sqrt(var / (double)(nq - 1) / (double)n) : NAN;
    }
    free(vals);
    free(B);
    free(qidx);
    return st;
}

/* Warns when the signal along some direction found is within 3 standard
 * errors of zero. */
static void significance_check(run *r) {
    sl_recover_result *res = r->res;
    const size_t k = r->k;
    size_t none = 0;
    for (size_t j = 0; j < k; ++j)
        none += !(fabs(res->found_signal[j]) > 3.0 * res->found_signal_se[j]);
    if (none)
        warn(r,
             "no significant signal: along %zu of the %zu directions found T(b,b,b,b) is within "
             "3 standard errors of zero; those directions are fitted noise (or the signal is too "
             "weak for n)",
             none, k);
}

/* The S_4 estimator's options as recover runs it: its own seed stream, and
 * a detrend degree given to recover passed on. */
static sl_s4_options s4_options(const sl_recover_options *opt) {
    sl_s4_options s4o = opt->s4;
    s4o.seed = sl_rng_derive(opt->seed, STREAM_S4);
    if (opt->detrend >= 0) s4o.detrend = opt->detrend;
    return s4o;
}

/* T[i0 i1 i2 i3] *= f[i0] f[i1] f[i2] f[i3] over a k^4 tensor: between
 * the whitened coordinates (P = U |Lambda|^-1/2) and z = U'x each index
 * scales by |lambda_i|^-1/2 one way and |lambda_i|^1/2 the other. */
static void scale4(size_t k, const double *f, double *T) {
    const size_t k2 = k * k, k4 = k2 * k2;
    for (size_t e = 0; e < k4; ++e)
        T[e] *= f[e / (k2 * k)] * f[(e / k2) % k] * f[(e / k) % k] * f[e % k];
}

/* The degree of the polynomial control variate (sl_detrend_cv) in k
 * variables over n rows: the largest up to max whose fit has at most 300
 * terms (its cost is n terms^2) and at most n / 10 of them (fewer, and the
 * fit absorbs the labels' noise). */
static int cv_degree(size_t k, size_t n, int max) {
    int deg = max;
    while (deg > 0 && (sl_detrend_terms(k, deg) > 300 || 10 * sl_detrend_terms(k, deg) > n)) --deg;
    return deg;
}

/* The refit passes options.refit asks for on this route. */
static int refit_count(const sl_recover_options *opt, int proj_est) {
    if (!proj_est) return 0;
    return opt->refit >= 0 ? opt->refit : opt->refine == 0 ? 0 : SL_REFIT_AUTO;
}

/* A seeded subset of nsub of the fitted rows, in their order. */
static sl_status pick_rows(run *r, size_t nsub, int stream, double **X, double **y, size_t *n) {
    const size_t d = r->d;
    size_t *pick = malloc(nsub * sizeof *pick), *all = malloc(r->ntr * sizeof *all);
    *X = malloc(nsub * d * sizeof **X);
    *y = malloc(nsub * sizeof **y);
    gsl_rng *rng = sl_rng_alloc(r->opt->seed, stream);
    sl_status st = SL_OK;
    if (pick && all && *X && *y && rng) {
        for (size_t i = 0; i < r->ntr; ++i) all[i] = i;
        gsl_ran_choose(rng, pick, nsub, all, r->ntr, sizeof *all);
        for (size_t i = 0; i < nsub; ++i) {
            memcpy(*X + i * d, r->Xtr + pick[i] * d, d * sizeof **X);
            (*y)[i] = r->ytr[pick[i]];
        }
        *n = nsub;
    } else {
        st = sl_error(SL_ENOMEM, "out of memory for %zu rows", nsub);
        free(*X);
        free(*y);
        *X = *y = NULL;
    }
    free(pick);
    free(all);
    if (rng) gsl_rng_free(rng);
    return st;
}

/* M2, the whitening and T over the rows r->Xtr, r->ytr: the route, the
 * scores (of a seeded subset on the estimated projected route), the labels
 * detrended as options.detrend says, T from the exact, estimated projected,
 * factorised or locally quadratic S_4, and the signal. Fills the route and
 * phase fields of r->res (route, detrend, t_estimated, independent,
 * s4_estimator, u_rows, s4_info, seconds). *fit_out gets the factorised fit
 * with independent coordinates (else NULL). sl_recover and
 * sl_recover_moments both come here, so the landscape pictures show the T
 * that recover minimises. */
static sl_status run_moments(run *r, sl_moments **m_out, sl_indep_fit **fit_out) {
    const sl_recover_options *opt = r->opt;
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d;
    *m_out = NULL;
    *fit_out = NULL;
    sl_recover_route route = SL_ROUTE_QUADRATIC;
    sl_status st = choose_route(r, &route);
    if (st) return st;
    res->route = route;
    /* Activations whose moments carry no signal. By Stein's identity the
     * coefficients of M2 and T are E[f''(w'x)] and E[f''''(w'x)]: zero for
     * the quadratic's and the cubic's fourth derivative whatever the input,
     * and for tanh, sigmoid and erf, whose even derivatives are odd, on every
     * input symmetric about zero. Measured: tanh, product-logistic input,
     * d = 10, k = 5, W random:10, n = 10^5, 3 seeds: err_max 0.54 to 0.78
     * with or without the refit passes (softplus: 0.0047 to 0.079 with them). */
    if (opt->act == SL_ACT_QUADRATIC || opt->act == SL_ACT_CUBIC)
        warn(r,
             "activation %s: its fourth derivative is zero, so T carries none of its signal "
             "and the %s loss cannot find its directions",
             sl_act_name(opt->act), opt->loss == SL_RECOVER_SIGNFREE ? "sign-free" : "landscape");
    else if (opt->act == SL_ACT_TANH || opt->act == SL_ACT_SIGMOID || opt->act == SL_ACT_ERF)
        warn(r,
             "activation %s: its second and fourth derivatives are odd, so on an input "
             "symmetric about zero M2 and T carry none of its signal (E[f''(w'x)] = "
             "E[f''''(w'x)] = 0); relu and softplus keep theirs",
             sl_act_name(opt->act));
    const int exact = opt->score == &sl_score_exact;
    const int exact_s4 = exact && route != SL_ROUTE_QUADRATIC;
    const int indep = !exact && opt->assume_independent;
    /* The estimated projected route: U from the d-dimensional scores of at
     * most u_rows rows, then T and the whitening from z = U'x alone. */
    const int proj_est = !exact && !indep && route == SL_ROUTE_PROJECTED;
    /* Automatic: with the exact S_4 the quartic and its fourth derivative
     * (or the cubic in minibatch mode, where T is never formed), none on the
     * quadratic route (the original method, also with exact g and H: its S_4
     * does not satisfy Stein's identity). The estimated projected route
     * passes a given degree to its S_4 estimator (s4.detrend). */
    const int dt = opt->detrend >= 0 ? opt->detrend
                   : exact_s4        ? cv_degree(k, r->ntr, opt->mode == SL_MODE_MINIBATCH ? 3 : 4)
                                     : 0;
    res->detrend = route == SL_ROUTE_QUADRATIC || exact ? dt : 0;
    if (opt->detrend > 0 && indep)
        return sl_error(SL_EINVAL, "detrend applies to exact scores, the quadratic route and the "
                                   "projected route, not to the factorised fit of independent "
                                   "coordinates");
    if (dt == 4 && !proj_est && (!exact_s4 || opt->mode == SL_MODE_MINIBATCH))
        return sl_error(SL_EINVAL,
                        "detrend 4 adds the fitted quartic's fourth derivative back to T, which "
                        "needs the exact S_4 (exact scores, route full or projected) and tensor "
                        "mode, or an S_4 estimator (the projected route)");
    res->independent = indep && route == SL_ROUTE_FULL;
    res->t_estimated = proj_est || res->independent;
    const sl_s4_options s4o = s4_options(opt);
    if (proj_est) res->detrend = s4o.detrend;
    if (proj_est) res->s4_estimator = s4o.estimator;
    if (opt->refit > 0 && !proj_est)
        return sl_error(SL_EINVAL, "refit passes re-estimate T with an S_4 estimator: they need "
                                   "estimated scores on the projected route");
    if (opt->swap > 0 && refit_count(opt, proj_est) == 0)
        return sl_error(SL_EINVAL, "swap rounds follow the refit passes and run passes "
                                   "themselves: they need refit passes (estimated scores, the "
                                   "projected route, refit not 0)");
    if (proj_est && opt->mode == SL_MODE_MINIBATCH)
        return sl_error(SL_EINVAL, "the projected route with estimated scores runs on the tensor "
                                   "T only, not on per-sample minibatches (use route quadratic)");

    if (!(opt->shrink_min >= 0.0 && isfinite(opt->shrink_min)))
        return sl_error(SL_EINVAL, "the lowest automatic shrink must be a number >= 0, got %g",
                        opt->shrink_min);
    /* Rows whose d-dimensional scores give M2 (all, or a seeded subset on
     * the estimated projected route). */
    size_t nu = r->ntr;
    double *Xu = r->Xtr, *yu = r->ytr;
    if (proj_est && opt->u_rows > 0 && opt->u_rows < r->ntr) {
        nu = opt->u_rows < 2 * k + 2 ? 2 * k + 2 : opt->u_rows;
        if ((st = pick_rows(r, nu, STREAM_U_ROWS, &Xu, &yu, &nu))) return st;
    }
    res->u_rows = nu;

    /* Scores at those rows. */
    sl_score_options sopt = opt->score_opt;
    if (proj_est) sopt.shrink_min = opt->shrink_min;
    sopt.seed = sl_rng_derive(opt->seed, STREAM_SCORES);
    sopt.progress = opt->progress ? scores_progress : NULL;
    sopt.progress_ctx = (void *)opt;
    sl_scores *scores = NULL;
    sl_indep_fit *fit = NULL;
    double t0 = now_seconds();
    if (indep) {
        /* The factorised fit gives the scores and, on route full, T. */
        sl_logdens_options lopt;
        sl_logdens_options_default(&lopt);
        lopt.seed = sopt.seed;
        st = sl_indep_fit_compute(&lopt, nu, d, Xu, &fit);
        if (!st) st = sl_scores_alloc(nu, d, &scores);
        if (!st) st = sl_indep_fit_scores(fit, nu, Xu, scores);
        if (!st) snprintf(scores->method, sizeof scores->method, "indep");
    } else {
        st = sl_score_estimate(opt->score, &sopt, nu, d, Xu, nu, NULL, &scores);
    }
    res->seconds_scores = now_seconds() - t0;
    if (st) {
        sl_scores_free(scores);
        sl_indep_fit_free(fit);
        if (Xu != r->Xtr) free(Xu);
        if (yu != r->ytr) free(yu);
        return sl_error_prefix(st, "scores: ");
    }
    res->score_bandwidth = scores->bandwidth;
    res->score_shrink = scores->shrink;
    if (scores->regularised)
        warn(r, "%s: %zu of %zu points needed regularisation of their local fit", scores->method,
             scores->regularised, scores->n);

    /* Moments, T and the signal. */
    sl_moments *m = NULL;
    double *dq4 = NULL; /* D^4 of the labels' quartic fit in z (detrend 4) */
    t0 = now_seconds();
    /* With exact scores M2 takes the quadratic control variate (its Hessian
     * added back) when T's degree is 2 or more and the fit is cheap. */
    const int dm = exact && dt >= 2 ? cv_degree(d, nu, 2) : 1;
    res->detrend_m2 = res->detrend > 0 || (proj_est && s4o.detrend > 0) ? dm : 0;
    if (res->detrend_m2 > 1) {
        /* E[S_2 q] = E[D^2 q] for the exact S_2 (Stein): M2 = E[(y - q) S_2]
         * plus the fitted quadratic's Hessian. Measured by bench/bench_cv
         * (agmm, d = 10, W of plant seed 1, n = 4 x 10^5, the root of the
         * summed variances of M2's entries): raw labels 0.196, linear fit
         * 0.078, quadratic 0.025. */
        double *yl = malloc(nu * sizeof *yl), *hq = malloc(d * d * sizeof *hq);
        st = yl && hq ? sl_detrend_cv(nu, d, Xu, yu, 2, yl, hq)
                      : sl_error(SL_ENOMEM, "out of memory");
        if (!st) st = sl_moments_compute_cv(scores, yl, hq, k, &m);
        free(yl);
        free(hq);
    } else if (res->detrend_m2 == 1) {
        /* E[S_2(x) p(x)] = 0 for the exact S_2 and every p of degree <= 1:
         * M2 from the labels minus their linear fit in x has the same target
         * and less noise (a ReLU's linear part is half of it). Estimated S_2
         * satisfy the identity only approximately; measured on the projected
         * route (logistic, d = 10, k = 5, W random, n = 10^6, U from 2 x 10^4
         * rows): M2's 5th / 6th eigenvalues 0.061 / -0.052 (no gap) became
         * 0.143 / 0.031, the held-out prediction error 0.66 -> 0.18.
         * Exact scores, N(0, I), W random with condition number 10, n = 10^6,
         * this and the cubic below: error 0.42 -> 0.004 and 0.48 -> 0.008. */
        double *yl = malloc(nu * sizeof *yl);
        st = yl ? sl_s4_detrend(nu, d, Xu, yu, 1, yl) : sl_error(SL_ENOMEM, "out of memory");
        if (!st) st = sl_moments_compute(scores, yl, k, &m);
        free(yl);
    } else {
        st = sl_moments_compute(scores, yu, k, &m);
    }
    const int keep = r->keep_scores && refit_count(opt, proj_est) > 0 && !r->scores;
    if (keep)
        r->scores = scores;
    else
        sl_scores_free(scores);
    if (!st && (route == SL_ROUTE_QUADRATIC || exact) && dt > 0) {
        /* T and the per-sample loss see y minus its polynomial in z = U'x. */
        double *Z = malloc(m->n * k * sizeof *Z);
        if (!Z) {
            st = sl_error(SL_ENOMEM, "out of memory");
        } else {
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m->n, (int)k, (int)d, 1.0,
                        Xu, (int)d, m->U, (int)k, 0.0, Z, (int)k);
            if (dt == 4) {
                dq4 = malloc(k * k * k * k * sizeof *dq4);
                if (!dq4) st = sl_error(SL_ENOMEM, "out of memory");
            }
            if (!st) st = sl_detrend_cv(m->n, k, Z, m->y, dt, m->y, dq4);
            free(Z);
        }
    }
    if (keep) {
        r->Xu = Xu;
        r->yu = yu;
        r->nu = nu;
    } else {
        if (Xu != r->Xtr) free(Xu);
        if (yu != r->ytr) free(yu);
    }
    if (!st && proj_est) {
        /* T and the whitening from z = U0'x at every fitted row. */
        sl_moments *m0 = m;
        m = NULL;
        const double t1 = now_seconds();
        st = sl_moments_projected(&s4o, r->ntr, d, r->Xtr, r->ytr, k, m0->U, m0->evals, &m,
                                  &res->s4_info);
        res->seconds_s4 = now_seconds() - t1;
        sl_moments_free(m0);
        /* The summary's S_4 line always gives the count; a warning only when
         * the thin rule's parametric scores stand for a large share of the
         * points. Measured at the defaults (10^4 reference samples, d = 10,
         * k = 5, the sweep's inputs at n = 10^5 and 10^6): 8 to 15%. */
        if (!st && res->s4_info.regularised > THIN_WARN_FRACTION * (double)r->ntr) {
            char rule[96];
            sl_s4_thin_describe(s4o.thin, &res->s4_info, rule, sizeof rule);
            warn(r,
                 "S_4 (%s): %zu of %zu points had fewer than %zu effective neighbours and took "
                 "the thin rule's scores (%s); more reference samples or a wider S_4 bandwidth "
                 "leave fewer",
                 sl_s4_estimator_name(s4o.estimator), res->s4_info.regularised, r->ntr,
                 s4o.min_neighbours, rule);
        }
    } else if (!st && res->independent) {
        st = sl_moments_tensor_indep(m, r->ntr, d, r->Xtr, fit);
    } else if (!st && route != SL_ROUTE_QUADRATIC) {
        st = exact_tensor(r, m, route);
        if (!st && dq4) {
            /* T = E[(y - q) S_4] + D^4 q, D^4 q taken from z to the
             * whitened coordinates. */
            double *f = malloc(k * sizeof *f);
            if (!f) {
                st = sl_error(SL_ENOMEM, "out of memory");
            } else {
                for (size_t i = 0; i < k; ++i) f[i] = 1.0 / sqrt(fabs(m->evals[i]));
                scale4(k, f, dq4);
                cblas_daxpy((int)(k * k * k * k), 1.0, dq4, 1, m->T, 1);
                free(f);
            }
        }
    }
    free(dq4);
    if (!st) st = sl_moments_signal(m);
    res->seconds_moments = now_seconds() - t0;
    if (st) {
        sl_moments_free(m);
        sl_indep_fit_free(fit);
        return st;
    }
    *m_out = m;
    *fit_out = fit;
    return SL_OK;
}

/* Start rows for the fit from directions W (k x d): b_i = |t_i|^1/4 u_i,
 * u_i = U'w_i normalised, t_i = T_z(u_i^4) = T_w(v^4) with v = sq u (sq:
 * |lambda|^1/2; v is scratch, k), its sign into s. Returns 0, or -1 when a
 * direction has no part in span(U). */
static int cp_start(const sl_moments *m, const double *sq, size_t d, const double *W, double *B,
                    double *s, double *v) {
    const size_t k = m->k;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)k, (int)d, 1.0, W, (int)d,
                m->U, (int)k, 0.0, B, (int)k);
    for (size_t i = 0; i < k; ++i) {
        double *b = B + i * k;
        const double nrm = cblas_dnrm2((int)k, b, 1);
        if (!(nrm > 0.0)) return -1;
        cblas_dscal((int)k, 1.0 / nrm, b, 1);
        for (size_t a = 0; a < k; ++a) v[a] = sq[a] * b[a];
        const double t = sl_moments_contract(m, v, v, v, v);
        s[i] = t < 0.0 ? -1.0 : 1.0;
        const double len = pow(fabs(t), 0.25);
        if (len > 0.0) cblas_dscal((int)k, len, b, 1);
    }
    return 0;
}

/* The landscape's directions W (k x d, unit rows) refined by the
 * least-squares fit of the unwhitened T_z = T_w scaled by |lambda|^1/2 per
 * index (sl_cp4_fit), started from W; then w_i = U b_i normalised. When
 * the fit does not improve on its start, W stays (res->refined 0). Starting
 * from every restart's end point instead changed nothing measured (agmm,
 * exact scores, seeds 1-3, both routes: the restarts end at the same
 * point), nor did ten random starts beside it (the same residuals to 1%;
 * projected route, seed 1: residual 0.439 and error 0.16 from the
 * landscape's start, 0.435 and 0.12 with 4 of 5 from the best random one:
 * the projected T's own noise on that sample), so one start it is. */
static sl_status refine_directions(run *r, const sl_moments *m, double *W) {
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d, k2 = k * k, k4 = k2 * k2;
    double *Tz = malloc(k4 * sizeof *Tz), *B = malloc(k2 * sizeof *B), *s = malloc(k * sizeof *s),
           *sq = malloc(2 * k * sizeof *sq);
    sl_status st = Tz && B && s && sq ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    if (!st) {
        for (size_t i = 0; i < k; ++i) sq[i] = sqrt(fabs(m->evals[i]));
        memcpy(Tz, m->T, k4 * sizeof *Tz);
        scale4(k, sq, Tz);
        if (cp_start(m, sq, d, W, B, s, sq + k))
            st = sl_error(SL_ENUMERIC, "a direction found has no part in span(U)");
    }
    if (!st) {
        const sl_status fst = sl_cp4_fit(k, k, Tz, s, B, &res->refine_info);
        if (fst == SL_OK) {
            res->refined = 1;
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)d, (int)k, 1.0, B,
                        (int)k, m->U, (int)k, 0.0, W, (int)d);
            for (size_t i = 0; i < k; ++i) {
                const double nrm = cblas_dnrm2((int)d, W + i * d, 1);
                cblas_dscal((int)d, 1.0 / nrm, W + i * d, 1);
            }
        } else if (fst == SL_ENUMERIC) {
            warn(r, "the refinement on the unwhitened T did not improve on the landscape's "
                    "directions; they are kept");
        } else {
            st = fst;
        }
    }
    free(Tz);
    free(B);
    free(s);
    free(sq);
    return st;
}

/* The U-rows' labels minus their least-squares fit on x and the smoothed
 * ReLUs of the directions W (kinks at w'x = 0) into yl (nu), the fit's
 * Hessian into hq (d x d): the ridge control variate for M2. */
static sl_status ridge_residual(run *r, const double *W, double *yl, double *hq) {
    double *c = calloc(r->k, sizeof *c);
    if (!c) return sl_error(SL_ENOMEM, "out of memory");
    const sl_status st = sl_detrend_ridge_cv(r->nu, r->d, r->Xu, r->yu, 1, 2, r->k, W, c,
                                             s4_options(r->opt).cv_scale, yl, hq, NULL);
    free(c);
    return st;
}

/* The estimated projected route's moments again, with the directions W
 * (k x d, unit rows) as ridge control variates: M2 from the kept scores
 * and the labels minus their fit on x and the smoothed ReLUs of W (the
 * fit's Hessian added back), then U, T and the whitening as before, T's
 * labels minus their fit on the cubic in z and the ReLUs of U'w_j. */
static sl_status ridge_moments(run *r, const double *W, sl_moments **out) {
    const size_t k = r->k, d = r->d, nu = r->nu;
    sl_s4_options s4o = s4_options(r->opt);
    double *yl = malloc(nu * sizeof *yl), *hq = malloc(d * d * sizeof *hq),
           *V = malloc(k * k * sizeof *V);
    sl_moments *m0 = NULL;
    sl_status st = yl && hq && V ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    if (!st) st = ridge_residual(r, W, yl, hq);
    if (!st) st = sl_moments_compute_cv(r->scores, yl, hq, k, &m0);
    if (!st) {
        /* v_j = U'w_j */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)k, (int)d, 1.0, W,
                    (int)d, m0->U, (int)k, 0.0, V, (int)k);
        s4o.cv_ridges = k;
        s4o.cv_dirs = V;
        st = sl_moments_projected(&s4o, r->nf, d, r->Xf, r->yf, k, m0->U, m0->evals, out, NULL);
    }
    sl_moments_free(m0);
    free(yl);
    free(hq);
    free(V);
    return st;
}

/* The residual sum of squares of the second layer fitted on the fitted
 * rows to the directions W (ws: k x d + k). */
static sl_status fit_rss(run *r, const double *W, double *ws, double *rss) {
    const size_t k = r->k, d = r->d;
    return sl_second_layer_fit(r->ntr, r->d, r->Xtr, r->ytr, k, r->opt->act, W, ws, ws + k * d,
                               rss);
}

/* Whether two of the k unit rows of W (k x d) are within about 8 degrees
 * of each other (or of each other's negative): directions that collapsed
 * onto one. */
static int collapsed(size_t k, size_t d, const double *W) {
    for (size_t i = 0; i < k; ++i)
        for (size_t j = i + 1; j < k; ++j)
            if (fabs(cblas_ddot((int)d, W + i * d, 1, W + j * d, 1)) > 0.99) return 1;
    return 0;
}

/* B (k x k): column j is direction w_j (row j of W, k x d) in the whitened
 * frame of m, |Lambda|^-1/2 U'w_j (the columns of the landscape's B map
 * back to rows U |Lambda|^1/2 b_j). */
static void whitened_dirs(const sl_moments *m, size_t k, size_t d, const double *W, double *B) {
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)k, (int)k, (int)d, 1.0, m->U, (int)k, W,
                (int)d, 0.0, B, (int)k);
    for (size_t i = 0; i < k; ++i) cblas_dscal((int)k, 1.0 / sqrt(fabs(m->evals[i])), B + i * k, 1);
}

/* The fourth moment along the kept pass's directions W (k x d, unit rows)
 * and its standard errors, on that pass's T: m its moments, Win the
 * directions its ridges came from. In m's whitened frame a direction w is
 * |Lambda|^-1/2 U'w, and the ridge v_j'z with z = U'x is v_j = U'w_j. */
static sl_status kept_pass_signal(run *r, sl_moments *m, const double *Win, const double *W) {
    const size_t k = r->k, d = r->d;
    const size_t n = r->nf;
    const double *X = r->Xf, *y = r->yf;
    double *B = malloc(k * k * sizeof *B), *V = malloc(k * k * sizeof *V),
           *Z = malloc(n * k * sizeof *Z);
    sl_status st = B && V && Z ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    if (!st) {
        whitened_dirs(m, k, d, W, B);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)k, (int)d, 1.0, Win,
                    (int)d, m->U, (int)k, 0.0, V, (int)k);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0, X,
                    (int)d, m->U, (int)k, 0.0, Z, (int)k);
        st = directional_signal(r, m, B);
    }
    if (!st) {
        sl_s4_options s4o = s4_options(r->opt);
        s4o.cv_ridges = k;
        s4o.cv_dirs = V;
        st = directional_se_estimated(r, m, Z, &s4o, NULL, B, n, y);
    }
    if (!st) st = sl_moments_signal(m);
    if (!st) {
        memcpy(r->res->signal, m->signal, k * sizeof *m->signal);
        check_moments(r, m);
    }
    free(B);
    free(V);
    free(Z);
    return st;
}

/* The best directions so far (W, refined from win on the moments m, their
 * second layer's residual sum of squares rss) and the M2 eigenvalues to
 * report with them. */
typedef struct kept_dirs {
    double *W, *win, *evals;
    double rss;
    sl_moments *m;
} kept_dirs;

/* Keeps W (refined from win on *m) when its second layer fits the fitted
 * rows better than the kept one's and its directions have not collapsed
 * onto each other; *m is then taken over (set to NULL). */
static int keep_if_better(run *r, kept_dirs *kd, sl_moments **m, const double *win, const double *W,
                          double rss) {
    const size_t k = r->k, d = r->d;
    if (!(rss < kd->rss) || collapsed(k, d, W)) return 0;
    kd->rss = rss;
    memcpy(kd->W, W, k * d * sizeof *W);
    memcpy(kd->win, win, k * d * sizeof *win);
    memcpy(kd->evals, (*m)->evals, r->res->nevals * sizeof *kd->evals);
    sl_moments_free(kd->m);
    kd->m = *m;
    *m = NULL;
    return 1;
}

/* One refit pass from W (in: its start, out: refined); win gets the start
 * and rss the second layer's residual sum of squares. */
static sl_status one_pass(run *r, double *W, double *win, double *ws, sl_moments **m, double *rss) {
    memcpy(win, W, r->k * r->d * sizeof *W);
    sl_status st = ridge_moments(r, W, m);
    if (!st) st = refine_directions(r, *m, W);
    if (!st) st = fit_rss(r, W, ws, rss);
    return st;
}

/* e (d): the top eigenvector (by |eigenvalue|) of the M2 of the labels
 * minus their least-squares fit on x and the smoothed ReLUs of W, from the
 * kept d-dimensional scores: where the directions found leave signal.
 * With eig not NULL, that eigenvalue and its standard error along e from
 * the per-row terms yl_j ((g_j'e)^2 + e'H_j e) (M2's own, sl_moments). */
static sl_status residual_direction(run *r, const double *W, double *e, double *eig, double *se) {
    const size_t d = r->d, nu = r->nu;
    double *yl = malloc(nu * sizeof *yl), *hq = malloc(d * d * sizeof *hq),
           *He = malloc(d * sizeof *He);
    sl_moments *m = NULL;
    sl_status st = yl && hq && He ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    if (!st) st = ridge_residual(r, W, yl, hq);
    if (!st) st = sl_moments_compute(r->scores, yl, 1, &m);
    if (!st)
        for (size_t a = 0; a < d; ++a) e[a] = m->U[a];
    if (!st && eig) {
        /* Welford's running mean and sum of squares of the per-row terms. */
        double mean = 0.0, ss = 0.0;
        for (size_t j = 0; j < nu; ++j) {
            const double ge = cblas_ddot((int)d, r->scores->G + j * d, 1, e, 1);
            cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)d, 1.0, r->scores->H + j * d * d,
                        (int)d, e, 1, 0.0, He, 1);
            const double t = yl[j] * (ge * ge + cblas_ddot((int)d, e, 1, He, 1));
            const double delta = t - mean;
            mean += delta / (double)(j + 1);
            ss += delta * (t - mean);
        }
        *eig = m->evals[0];
        *se = nu > 1 ? sqrt(ss / (double)(nu - 1) / (double)nu) : NAN;
    }
    sl_moments_free(m);
    free(yl);
    free(hq);
    free(He);
    return st;
}

/* options.swap rounds after the passes, for passes that settled at a wrong
 * fixed point (README, agmm with w random, seed 2: every true direction
 * within 0.04-0.15 of span(U), yet err_max 0.37; started at the truth the
 * passes stay there). A round puts the residual's direction
 * (residual_direction) in place of each direction in turn and runs
 * SL_SWAP_PASSES passes from there, keeping directions whose second layer
 * fits better, as the passes do; the round ends at the first replacement
 * whose passes kept something, and the next round starts from the kept
 * directions with their own residual (measured against trying every
 * replacement each round: agmm, w random, 10^4 to 10^6, README, --swap
 * under recover). A round that keeps nothing ends them (the next would
 * repeat it). */
static sl_status swap_rounds(run *r, kept_dirs *kd, double *ws) {
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d;
    double *W0 = malloc(k * d * sizeof *W0), *Wc = malloc(k * d * sizeof *Wc),
           *win = malloc(k * d * sizeof *win), *e = malloc(d * sizeof *e);
    sl_status st = W0 && Wc && win && e ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    for (int round = 0; !st && round < r->opt->swap; ++round) {
        int improved = 0;
        memcpy(W0, kd->W, k * d * sizeof *W0);
        st = residual_direction(r, W0, e, NULL, NULL);
        size_t i = 0; /* after the loop: the replacements tried */
        for (; !st && !improved && i < k; ++i) {
            memcpy(Wc, W0, k * d * sizeof *Wc);
            memcpy(Wc + i * d, e, d * sizeof *e);
            for (int p = 0; !st && p < SL_SWAP_PASSES; ++p) {
                sl_moments *m = NULL;
                double rss = 0.0;
                st = one_pass(r, Wc, win, ws, &m, &rss);
                if (!st && keep_if_better(r, kd, &m, win, Wc, rss)) improved = 1;
                sl_moments_free(m);
            }
        }
        if (!st) {
            res->swaps = round + 1;
            res->swap_error[round] = r->truthW ? err_max_of(r, kd->W) : NAN;
            res->swap_tried[round] = (int)i;
            if (!improved) break;
            res->swap_kept = round + 1;
        }
    }
    free(W0);
    free(Wc);
    free(win);
    free(e);
    return st;
}

/* options.refit passes: the moments again with the directions W as ridge
 * control variates, then the refinement from W on them. The directions
 * kept are those of the pass (the first estimate included) whose second
 * layer fits the fitted rows best: a pass can move away from the truth
 * when the control variate's fourth derivative, an average over few
 * samples near the kinks, is noisy (measured: logistic, d = k = 2,
 * n = 2 x 10^4, smoothing 0.1: err_max 0.029, then 0.052, 0.21, 0.13 over
 * three passes; with the cumulant estimator a pass ended with both
 * directions on one true one). A pass whose directions collapsed onto
 * each other is never kept. The reported M2 eigenvalues, signal
 * coefficients and the fourth moment along the directions found (with its
 * standard errors) are the kept pass's. Then options.swap rounds
 * (swap_rounds), kept by the same rule. */
static sl_status refit_passes(run *r, int passes, double *W) {
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d;
    kept_dirs kd = {.W = malloc(k * d * sizeof *kd.W),
                    .win = malloc(k * d * sizeof *kd.win),
                    .evals = malloc(res->nevals * sizeof *kd.evals)};
    double *ws = malloc((k * d + k) * sizeof *ws), *win = malloc(k * d * sizeof *win);
    sl_status st =
        kd.W && kd.win && kd.evals && ws && win ? SL_OK : sl_error(SL_ENOMEM, "out of memory");
    if (!st) st = fit_rss(r, W, ws, &kd.rss);
    if (!st) {
        memcpy(kd.W, W, k * d * sizeof *W);
        memcpy(kd.evals, res->m2_evals, res->nevals * sizeof *kd.evals);
    }
    res->refit_kept = 0;
    r->Xf = r->Xtr;
    r->yf = r->ytr;
    r->nf = r->ntr;
    if (!st && r->opt->refit_rows > 0 && r->opt->refit_rows < r->ntr)
        st = pick_rows(r, r->opt->refit_rows, STREAM_REFIT_ROWS, &r->Xf, &r->yf, &r->nf);
    for (int pass = 0; !st && pass < passes; ++pass) {
        sl_moments *m = NULL;
        double rss = 0.0;
        st = one_pass(r, W, win, ws, &m, &rss);
        if (!st) {
            res->refits = pass + 1;
            res->refit_error[pass] = r->truthW ? err_max_of(r, W) : NAN;
            if (keep_if_better(r, &kd, &m, win, W, rss)) res->refit_kept = pass + 1;
        }
        sl_moments_free(m);
    }
    if (!st && r->opt->swap > 0) {
        const double t0 = now_seconds();
        st = swap_rounds(r, &kd, ws);
        res->seconds_swap = now_seconds() - t0;
    }
    if (!st) {
        /* The signal the kept directions leave (reported; the swap rounds'
         * direction is its eigenvector). */
        double *e = malloc(d * sizeof *e);
        st = e ? residual_direction(r, kd.W, e, &res->residual_eig, &res->residual_se)
               : sl_error(SL_ENOMEM, "out of memory");
        res->residual_scale = kd.evals[k - 1];
        free(e);
    }
    if (!st) {
        memcpy(W, kd.W, k * d * sizeof *W);
        memcpy(res->m2_evals, kd.evals, res->nevals * sizeof *kd.evals);
        if (kd.m) st = kept_pass_signal(r, kd.m, kd.win, W);
    }
    sl_moments_free(kd.m);
    free(kd.W);
    free(kd.win);
    free(kd.evals);
    free(ws);
    free(win);
    return st;
}

static sl_status run_landscape(run *r) {
    const sl_recover_options *opt = r->opt;
    sl_recover_result *res = r->res;
    const size_t k = r->k, d = r->d;
    sl_moments *m = NULL;
    sl_landscape *L = NULL;
    sl_indep_fit *fit = NULL;
    double *Z = NULL, *Bw = NULL, t0;
    sl_status st = run_moments(r, &m, &fit);
    if (st) goto done;
    const sl_recover_route route = res->route;
    const int proj_est = res->t_estimated && !res->independent;
    const sl_s4_options s4o = s4_options(opt);
    res->nevals = k + 1 < d ? k + 1 : d;
    res->m2_evals = malloc(res->nevals * sizeof *res->m2_evals);
    res->signal = malloc(k * sizeof *res->signal);
    r->M = malloc(d * k * sizeof *r->M);
    r->Wbuf = malloc(k * d * sizeof *r->Wbuf);
    if (!res->m2_evals || !res->signal || !r->M || !r->Wbuf) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(res->m2_evals, m->evals, res->nevals * sizeof *m->evals);
    memcpy(res->signal, m->signal, k * sizeof *m->signal);
    for (size_t i = 0; i < d; ++i)
        for (size_t j = 0; j < k; ++j) r->M[i * k + j] = m->U[i * k + j] * sqrt(fabs(m->evals[j]));
    /* With refit passes, the warnings wait for the moments whose directions
     * are kept. */
    const int refit = refit_count(opt, proj_est);
    if (refit == 0) check_moments(r, m);

    /* The mode and the loss. */
    int tensor;
    switch (opt->mode) {
    case SL_MODE_TENSOR:
        tensor = 1;
        break;
    case SL_MODE_MINIBATCH:
        if (opt->loss == SL_RECOVER_SIGNFREE) {
            st = sl_error(SL_EINVAL, "the sign-free loss runs on the tensor T only, not on "
                                     "minibatches");
            goto done;
        }
        if (route != SL_ROUTE_QUADRATIC)
            warn(r,
                 "minibatch mode uses the locally quadratic S_4 of (g, H), not the exact T of "
                 "the %s route (which gave the sign and the signal only)",
                 sl_recover_route_name(route));
        tensor = 0;
        break;
    default:
        tensor = route != SL_ROUTE_QUADRATIC || opt->loss == SL_RECOVER_SIGNFREE;
    }
    res->tensor_mode = tensor;
    if (opt->loss == SL_RECOVER_SIGNFREE && opt->sgd.projection != SL_PROJ_ORTHONORMAL)
        warn(r, "the sign-free loss without the orthonormal constraint rewards columns that "
                "collapse onto the strongest direction; use the orthonormal constraint");
    sl_landscape_options lo = opt->landscape;
    lo.kind = opt->loss == SL_RECOVER_SIGNFREE ? SL_LOSS_SIGNFREE : SL_LOSS_LANDSCAPE;
    lo.tensor = tensor;
    const size_t nsamples = tensor ? opt->tensor_steps : r->ntr;
    sl_sgd_options so;
    sgd_options_for(r, &so, monitor_landscape, nsamples, tensor);
    so.rows = so.cols = k;
    if (!(so.init_scale > 0.0)) so.init_scale = 1.0;
    const size_t max_batch = so.batch < nsamples ? so.batch : nsamples;
    if ((st = sl_landscape_alloc(m, &lo, max_batch, &L))) goto done;
    res->sign = lo.kind == SL_LOSS_LANDSCAPE ? sl_landscape_sign(L) : 0;

    t0 = now_seconds();
    st = sl_sgd_minimize(&so, sl_landscape_objective, L, nsamples, k * k, NULL, &res->sgd);
    res->seconds_sgd = now_seconds() - t0;
    if (st) goto done;
    /* Every restart's end point in input space (the census clusters them). */
    res->restart_W = malloc(res->sgd->restarts * k * d * sizeof *res->restart_W);
    if (!res->restart_W) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < res->sgd->restarts; ++i)
        map_back(r, res->sgd->restart_x + i * k * k, res->restart_W + i * k * d);
    if (r->truthW) {
        res->restart_error = malloc(res->sgd->restarts * sizeof *res->restart_error);
        if (!res->restart_error) {
            st = sl_error(SL_ENOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < res->sgd->restarts; ++i)
            res->restart_error[i] = err_max_of(r, res->restart_W + i * k * d);
    }

    /* Directions, then signs and the second layer on the fitted rows. */
    map_back(r, res->sgd->x, res->W_hat);
    for (size_t i = 0; i < k; ++i) {
        const double nrm = cblas_dnrm2((int)d, res->W_hat + i * d, 1);
        if (!(nrm > 0.0)) {
            st = sl_error(SL_ENUMERIC, "direction %zu came out zero (column %zu of B vanished)",
                          i + 1, i + 1);
            goto done;
        }
        cblas_dscal((int)d, 1.0 / nrm, res->W_hat + i * d, 1);
    }
    const int exact_t = opt->score == &sl_score_exact && route != SL_ROUTE_QUADRATIC;
    if (m->T && (opt->refine > 0 || (opt->refine < 0 && exact_t) || refit > 0)) {
        if ((st = refine_directions(r, m, res->W_hat))) goto done;
    }
    if (refit > 0) {
        t0 = now_seconds();
        st = refit_passes(r, refit, res->W_hat);
        res->seconds_refit = now_seconds() - t0;
        if (st) goto done;
    }
    /* The fourth moment along the directions found (after the refinement)
     * and, with a truth, along the true ones: whether a unit was missed for
     * want of signal shows here. A kept refit pass did this on its own T. */
    if (res->refit_kept == 0 && res->swap_kept == 0) {
        if (refit > 0) check_moments(r, m);
        if (!(Bw = malloc(k * k * sizeof *Bw))) {
            st = sl_error(SL_ENOMEM, "out of memory");
            goto done;
        }
        whitened_dirs(m, k, d, res->W_hat, Bw);
        if ((st = directional_signal(r, m, Bw))) goto done;
        if (res->t_estimated) {
            if (proj_est) {
                Z = malloc(r->ntr * k * sizeof *Z);
                if (!Z) {
                    st = sl_error(SL_ENOMEM, "out of memory");
                    goto done;
                }
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)r->ntr, (int)k, (int)d,
                            1.0, r->Xtr, (int)d, m->U, (int)k, 0.0, Z, (int)k);
            }
            if ((st = directional_se_estimated(r, m, Z, &s4o, res->independent ? fit : NULL, Bw,
                                               r->ntr, r->ytr)))
                goto done;
        } else if ((st = directional_se(r, m, route, Bw))) {
            goto done;
        }
    }
    /* After the passes, so that it judges the T the kept directions came
     * from. */
    significance_check(r);
    t0 = now_seconds();
    st = sl_second_layer_fit(r->ntr, d, r->Xtr, r->ytr, k, opt->act, res->W_hat, res->W_hat,
                             res->a_hat, NULL);
    res->seconds_second_layer = now_seconds() - t0;
done:
    free(Bw);
    sl_landscape_free(L);
    sl_moments_free(m);
    sl_indep_fit_free(fit);
    free(Z);
    return st;
}

static sl_status check_recover_options(const sl_recover_options *opt, size_t n, size_t d,
                                       const double *X, const double *y) {
    if (!X || !y) return sl_error(SL_EINVAL, "no samples given");
    if (n == 0 || d == 0) return sl_error(SL_EINVAL, "no samples (n = %zu, d = %zu)", n, d);
    if (d > INT_MAX || n > INT_MAX)
        return sl_error(SL_EINVAL, "%zu samples of dimension %zu are too many", n, d);
    if (opt->k == 0 || opt->k > d)
        return sl_error(SL_EINVAL, "k = %zu hidden units: need 1 <= k <= d = %zu", opt->k, d);
    if ((int)opt->loss < 0 || (int)opt->loss > SL_RECOVER_L2)
        return sl_error(SL_EINVAL, "unknown loss %d", (int)opt->loss);
    if ((int)opt->act < 0 || (int)opt->act >= SL_ACT_COUNT)
        return sl_error(SL_EINVAL, "unknown activation %d", (int)opt->act);
    if (!(opt->holdout >= 0.0 && opt->holdout < 1.0))
        return sl_error(SL_EINVAL, "held-out fraction must be in [0, 1), got %g", opt->holdout);
    if (opt->loss != SL_RECOVER_L2) {
        if (!opt->score) return sl_error(SL_EINVAL, "no score method given");
        if (opt->score == &sl_score_exact && !opt->score_opt.dist)
            return sl_error(SL_EINVAL, "score method exact needs a distribution");
        if ((int)opt->route < SL_ROUTE_AUTO || (int)opt->route > SL_ROUTE_QUADRATIC)
            return sl_error(SL_EINVAL, "unknown route %d", (int)opt->route);
        if (opt->refit < -1 || opt->refit > SL_REFIT_MAX)
            return sl_error(SL_EINVAL, "refit passes %d (0..%d, or -1 for automatic)", opt->refit,
                            SL_REFIT_MAX);
        if (opt->refit > 0 && opt->refine == 0)
            return sl_error(SL_EINVAL, "refit passes refine the directions: they need refine "
                                       "on or automatic");
        if (opt->swap < 0 || opt->swap > SL_SWAP_MAX)
            return sl_error(SL_EINVAL, "swap rounds %d (0..%d)", opt->swap, SL_SWAP_MAX);
        if (opt->detrend < -1 || opt->detrend > 4)
            return sl_error(SL_EINVAL, "detrend degree %d (0..4, or -1 for automatic)",
                            opt->detrend);
        if ((int)opt->mode < SL_MODE_AUTO || (int)opt->mode > SL_MODE_MINIBATCH)
            return sl_error(SL_EINVAL, "unknown mode %d", (int)opt->mode);
        if (opt->tensor_steps == 0) return sl_error(SL_EINVAL, "tensor_steps must be at least 1");
        /* The loss is homogeneous of degree 4 in B: unconstrained and
         * unpenalised, its columns run off to zero or infinity. */
        if (opt->sgd.projection == SL_PROJ_NONE && !(opt->landscape.lambda > 0.0))
            return sl_error(SL_EINVAL, "without a constraint on the columns the loss needs the "
                                       "norm penalty lambda > 0");
    }
    if (opt->truth) {
        const sl_network *t = opt->truth;
        if (!t->W || t->k == 0) return sl_error(SL_EINVAL, "the truth network has no hidden units");
        if (t->d != d)
            return sl_error(SL_EINVAL, "the truth has %zu inputs but the samples have d = %zu",
                            t->d, d);
    }
    if (!sl_all_finite(n * d, X) || !sl_all_finite(n, y))
        return sl_error(SL_ENUMERIC, "the samples contain a non-finite value");
    return SL_OK;
}

sl_status sl_recover(const sl_recover_options *opt, size_t n, size_t d, const double *X,
                     const double *y, sl_recover_result **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = NULL;
    if (!opt) return sl_error(SL_EINVAL, "no options given");
    sl_status st = check_recover_options(opt, n, d, X, y);
    if (st) return st;
    const size_t k = opt->k;
    run r = {.opt = opt, .n = n, .d = d, .k = k, .keep_scores = 1};
    r.nho = (size_t)floor(opt->holdout * (double)n + 0.5);
    r.ntr = n - r.nho;
    if (r.ntr < 2 * k + 2 || r.ntr < 2)
        return sl_error(SL_EINVAL,
                        "%zu samples leave %zu to fit after holding out %zu: too few for k = %zu",
                        n, r.ntr, r.nho, k);
    if (opt->truth) {
        r.truthW = opt->truth->W;
        r.kt = opt->truth->k;
    }
    sl_recover_result *res = calloc(1, sizeof *res);
    if (!res) return sl_error(SL_ENOMEM, "out of memory");
    r.res = res;
    res->k = k;
    res->d = d;
    res->n_train = r.ntr;
    res->n_holdout = r.nho;
    res->holdout_error = NAN;
    res->score_shrink = NAN;
    res->train_error = NAN;
    res->residual_eig = res->residual_se = res->residual_scale = NAN;
    res->route = SL_ROUTE_QUADRATIC;
    res->W_hat = malloc(k * d * sizeof *res->W_hat);
    res->a_hat = malloc(k * sizeof *res->a_hat);
    if (!res->W_hat || !res->a_hat) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    if ((st = split_rows(&r, X, y))) goto done;
    /* Every module restores the thread count it finds; one BLAS thread here
     * keeps the small products of this file (mapping back, the monitor)
     * independent of the thread count too. */
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    st = opt->loss == SL_RECOVER_L2 ? run_l2(&r) : run_landscape(&r);
    openblas_set_num_threads(blas_threads);
    if (st) goto done;
    res->final_loss = res->sgd->loss;
    if (r.truthW) {
        if ((st = sl_recovery_error_compute(k, r.kt, d, res->W_hat, r.truthW, &res->error)))
            goto done;
        res->have_error = 1;
        if ((st = truth_coefficients(&r))) goto done;
    }
    /* Prediction errors; constant labels leave them undefined (NAN). */
    if (sl_prediction_error(r.ntr, d, r.Xtr, r.ytr, k, opt->act, res->W_hat, res->a_hat,
                            &res->train_error) != SL_OK)
        res->train_error = NAN;
    if (r.nho && sl_prediction_error(r.nho, d, r.Xho, r.yho, k, opt->act, res->W_hat, res->a_hat,
                                     &res->holdout_error) != SL_OK)
        res->holdout_error = NAN;
    sl_error_clear();
    res->warnings = r.warn;
    r.warn = NULL;
done:
    run_free(&r);
    if (st) {
        sl_recover_result_free(res);
        return st;
    }
    *out = res;
    return SL_OK;
}

sl_status sl_recover_moments(const sl_recover_options *opt, size_t n, size_t d, const double *X,
                             const double *y, sl_moments **out, sl_recover_route *route,
                             char **warnings) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = NULL;
    if (warnings) *warnings = NULL;
    if (!opt) return sl_error(SL_EINVAL, "no options given");
    if (opt->loss == SL_RECOVER_L2)
        return sl_error(SL_EINVAL, "the squared loss has no moments (loss landscape or signfree)");
    sl_status st = check_recover_options(opt, n, d, X, y);
    if (st) return st;
    if (n < 2 * opt->k + 2)
        return sl_error(SL_EINVAL, "%zu samples: too few for k = %zu", n, opt->k);
    sl_recover_result res = {.route = SL_ROUTE_QUADRATIC};
    /* Every row is fitted; run_moments only reads the rows, which here are
     * the caller's (sl_recover's run owns copies). */
    run r = {.opt = opt,
             .res = &res,
             .n = n,
             .d = d,
             .k = opt->k,
             .ntr = n,
             .Xtr = (double *)X,
             .ytr = (double *)y};
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    sl_indep_fit *fit = NULL;
    st = run_moments(&r, out, &fit);
    openblas_set_num_threads(blas_threads);
    sl_indep_fit_free(fit);
    if (!st && route) *route = res.route;
    if (!st && warnings) {
        *warnings = r.warn;
        r.warn = NULL;
    }
    free(r.warn);
    return st;
}
