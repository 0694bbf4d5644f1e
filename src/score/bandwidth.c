/* The automatic bandwidth: held-out score matching (METHOD.md section 3).
 *
 * J(h) = mean over held-out x of |g_h(x)|^2 / 2 + div g_h(x) equals the
 * expected squared error of g_h up to a constant that does not depend on h
 * (integration by parts, Hyvarinen 2005), so its minimiser over a grid is the
 * bandwidth whose scores are closest to the truth, found without knowing p.
 * div g is taken by central differences of g_h itself (step h / 4): the
 * estimator's own tr H, which would be 2d + 1 times cheaper, is a different
 * function of h and measured useless here: with the default shrinkage it chose
 * the smallest bandwidth of the grid on student, logistic, gmm2 and gauss
 * inputs (d = 2, n = 4000: g-errors 1.3 to 3.1 against 0.003 to 0.04 at the
 * best). A single held-out fifth was too noisy (student: 1.45 times the best
 * error); five folds brought every case tried within 1.15 times but gauss
 * (1.5 times, on a flat error curve). The
 * held-out points are a seeded random fifth of the sample (at most 800);
 * the scores there are estimated from the other samples, with the bandwidth
 * scaled by (n / n_train)^{1/(d+6)} so that the grid refers to the full n.
 *
 * For llsfe the choice is not the bare minimiser but the widest bandwidth
 * whose J is within one standard error of the minimum (the error of the
 * difference, from the paired per-point terms): on a flat curve the
 * minimiser is noise. Measured: gauss, d = 2, n = 16000: the minimiser 0.59
 * gave S_2 medians of 0.078 (worse than 0.048 at n = 4000), the rule 1.19
 * and 0.021; on gmm2, student and the anisotropic mixture at d = 2, 5 it
 * changed nothing. llsfe is exact for a locally quadratic log-density, so
 * its error grows slowly on the wide side; kde's bias grows like h^2, and
 * there the rule lost (agmm, d = 2, n = 10^4: kde's error over all samples,
 * what J measures, 0.093 became 0.120): kde keeps the minimiser. At
 * n = 10^5 the 800 held-out points per fold are too few: on gauss, d = 2,
 * the heavy-tailed per-point terms of a rough small-h estimate put J(0.15)
 * 0.068 +- 0.053 below J(0.6) where the true difference is 0.083 above, and
 * the rule keeps 0.15 (see the accuracy table).
 *
 * With a bandwidth that is not automatic (fixed, const:C or knn:K) the grid is
 * that one bandwidth: its held-out objective, which is how llsfe.c chooses
 * its prior weight. A knn:K bandwidth becomes knn:K n_train / n in the
 * folds, the same neighbourhood size in probability. */
#include "score/score_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "scoreloss/rng.h"

#define SL_AUTO_GRID 13      /* C from 2^-2 to 2^2 in steps of 2^(1/3) */
#define SL_AUTO_HELDOUT 4000 /* at most this many held-out points in all folds */
#define SL_AUTO_FOLDS 5

sl_status sl_bandwidth_auto(sl_kernel_map map, const sl_score_options *opt, const sl_gauss_fit *fit,
                            size_t n, size_t d, const double *X, double *h_out, sl_scores *record) {
    if (n < 10)
        return sl_error(SL_EINVAL, "automatic bandwidth needs at least 10 samples, got %zu", n);
    /* SL_AUTO_FOLDS folds of a seeded permutation; in fold f the rows
     * [f m, (f + 1) m) are held out, m = n / folds capped so that at most
     * SL_AUTO_HELDOUT points are held out in all. */
    size_t m = n / SL_AUTO_FOLDS;
    if (m * SL_AUTO_FOLDS > SL_AUTO_HELDOUT) m = SL_AUTO_HELDOUT / SL_AUTO_FOLDS;
    const size_t nt = n - m, per = 2 * d + 1; /* x, then x +- eps e_a */
    const double base = fit->scale * pow((double)n, -1.0 / ((double)d + 6.0));
    const double to_train = pow((double)n / (double)nt, 1.0 / ((double)d + 6.0));
    /* The grid: bandwidths for the full sample (K = 0), or one knn:K. */
    size_t ngrid = SL_AUTO_GRID, K = 0;
    double grid[SL_AUTO_GRID];
    switch (opt->bandwidth.kind) {
    case SL_BW_AUTO:
        for (size_t k = 0; k < SL_AUTO_GRID; ++k) grid[k] = pow(2.0, -2.0 + (double)k / 3.0) * base;
        break;
    case SL_BW_FIXED:
        ngrid = 1;
        grid[0] = opt->bandwidth.value;
        break;
    case SL_BW_CONST:
        ngrid = 1;
        grid[0] = opt->bandwidth.value * pow((double)n, -1.0 / ((double)d + 6.0));
        break;
    case SL_BW_KNN:
        ngrid = 1;
        grid[0] = 0.0;
        K = (size_t)lround(opt->bandwidth.value * (double)nt / (double)n);
        if (K < 2) K = 2;
        if (K >= nt) return sl_error(SL_EINVAL, "knn:%g needs more samples", opt->bandwidth.value);
        break;
    }
    size_t *perm = malloc(n * sizeof *perm);
    double *Xt = malloc(nt * d * sizeof *Xt), *Xq = malloc(m * per * d * sizeof *Xq);
    double *J = calloc(ngrid, sizeof *J), *eps = malloc(m * sizeof *eps);
    double *terms = malloc(m * SL_AUTO_FOLDS * ngrid * sizeof *terms);
    sl_scores *s = NULL, *pilot = NULL;
    sl_status st = sl_scores_alloc(m * per, d, &s);
    if (st == SL_OK && K > 0) st = sl_scores_alloc(m, d, &pilot);
    if (!perm || !Xt || !Xq || !J || !eps || !terms || st) {
        free(terms);
        free(perm);
        free(Xt);
        free(Xq);
        free(J);
        free(eps);
        sl_scores_free(s);
        sl_scores_free(pilot);
        return st ? st : sl_error(SL_ENOMEM, "out of memory");
    }
    gsl_rng *r = sl_rng_alloc(opt->seed, 0xB0);
    for (size_t i = 0; i < n; ++i) perm[i] = i;
    gsl_ran_shuffle(r, perm, n, sizeof *perm);
    gsl_rng_free(r);

    sl_score_options o = *opt;
    o.progress = NULL;
    for (size_t f = 0; f < SL_AUTO_FOLDS && st == SL_OK; ++f) {
        /* Training rows: every permuted row outside the fold. */
        size_t t = 0;
        for (size_t i = 0; i < n && t < nt; ++i)
            if (i < f * m || i >= (f + 1) * m) memcpy(Xt + t++ * d, X + perm[i] * d, d * sizeof *X);
        for (size_t k = 0; k < ngrid && st == SL_OK; ++k) {
            const double ht = grid[k] * to_train;
            /* Finite-difference steps: h / 4, or each point's own knn
             * bandwidth / 4, found by a first pass at the points alone. */
            for (size_t i = 0; i < m; ++i) {
                eps[i] = 0.25 * ht;
                memcpy(Xq + i * d, X + perm[f * m + i] * d, d * sizeof *Xq);
            }
            if (K > 0) {
                st = sl_kernel_scores(map, &o, fit, nt, d, Xt, m, Xq, ht, K, pilot);
                if (st) break;
                for (size_t i = 0; i < m; ++i) eps[i] = 0.25 * pilot->h[i];
            }
            for (size_t i = m; i-- > 0;)
                for (size_t p = 0; p < per; ++p) {
                    double *q = Xq + (i * per + p) * d;
                    memcpy(q, Xq + i * d, d * sizeof *q);
                    if (p > 0) q[(p - 1) / 2] += (p % 2 ? eps[i] : -eps[i]);
                }
            st = sl_kernel_scores(map, &o, fit, nt, d, Xt, m * per, Xq, ht, K, s);
            if (st) break;
            double sum = 0.0;
            for (size_t i = 0; i < m; ++i) {
                const double *g = s->G + i * per * d;
                double term = 0.0;
                for (size_t a = 0; a < d; ++a) {
                    const double *gp = g + (2 * a + 1) * d, *gm = g + (2 * a + 2) * d;
                    term += 0.5 * g[a] * g[a] + (gp[a] - gm[a]) / (2 * eps[i]);
                }
                terms[(f * m + i) * ngrid + k] = term;
                sum += term;
            }
            J[k] += sum / (double)(m * SL_AUTO_FOLDS);
            if (opt->progress)
                opt->progress(0.3 * (double)(f * ngrid + k + 1) / (double)(SL_AUTO_FOLDS * ngrid),
                              opt->progress_ctx);
        }
    }
    free(perm);
    free(Xt);
    free(Xq);
    free(eps);
    sl_scores_free(s);
    sl_scores_free(pilot);
    if (st) {
        free(terms);
        free(J);
        return st;
    }
    /* The minimiser, then for llsfe the one-standard-error rule: the widest
     * bandwidth whose objective is within one standard error of the
     * minimum's, the error of the difference from the paired held-out terms. */
    size_t best = 0;
    for (size_t k = 1; k < ngrid; ++k)
        if (J[k] < J[best]) best = k;
    const size_t M = m * SL_AUTO_FOLDS;
    size_t chosen = best;
    for (size_t k = best + 1; map == SL_KERNEL_LLSFE && k < ngrid; ++k) {
        double mean = 0.0, var = 0.0;
        for (size_t i = 0; i < M; ++i)
            mean += (terms[i * ngrid + k] - terms[i * ngrid + best]) / (double)M;
        for (size_t i = 0; i < M; ++i) {
            const double t = terms[i * ngrid + k] - terms[i * ngrid + best] - mean;
            var += t * t / (double)(M - 1);
        }
        if (J[k] - J[best] <= sqrt(var / (double)M)) chosen = k;
    }
    free(terms);
    record->bw_ngrid = ngrid;
    for (size_t k = 0; k < ngrid; ++k) {
        record->bw_grid[k] = grid[k];
        record->bw_objective[k] = J[k];
    }
    free(J);
    *h_out = grid[chosen];
    return SL_OK;
}
