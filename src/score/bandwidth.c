/* The automatic bandwidth: held-out score matching (METHOD.md section 3).
 *
 * J(h) = mean over held-out x of |g_h(x)|^2 / 2 + div g_h(x) equals the
 * expected squared error of g_h up to a constant that does not depend on h
 * (integration by parts, Hyvarinen 2005), so its minimiser over a grid is the
 * bandwidth whose scores are closest to the truth, found without knowing p.
 * div g is the divergence of g_h itself: at a fixed h from the estimator's
 * derivative in the query point (llsfe.c, sl_kernel_scores_div: one pass
 * for the moments, one more for a skewness term; for kde it is tr H), with
 * a knn:K bandwidth by central differences (step h / 4, 2d + 1 evaluations
 * per point). The two agree to the differences' O(step^2) error
 * (tests/test_accuracy.c). The estimator's own tr H is, for llsfe, a
 * different function of h (it lacks the skewness term and the prior's
 * share) and measured useless here: with the default shrinkage it chose
 * the smallest bandwidth of the grid on student, logistic, gmm2 and gauss
 * inputs (d = 2, n = 4000: g-errors 1.3 to 3.1 against 0.003 to 0.04 at the
 * best). A single held-out fifth was too noisy (student: 1.45 times the best
 * error); five folds brought every case tried within 1.15 times but gauss
 * (1.5 times, on a flat error curve). The
 * held-out points are a seeded random fifth of the sample (at most 800 up
 * to n = 10^4, see below for more); the scores there are estimated from the
 * other samples (or a seeded subset of them), with the bandwidth scaled by
 * (n / n_train)^{1/(d+6)} so that the grid refers to the full n.
 *
 * For llsfe the choice is not the bare minimiser but the widest bandwidth
 * whose J is within one standard error of the minimum (the error of the
 * difference, from the paired per-point terms), and whose centre-weighted
 * J is within one standard error of its own minimum too (see "The centre"
 * below): on a flat curve the minimiser is noise. Measured: gauss, d = 2,
 * n = 16000: the minimiser 0.59 gave S_2 medians of 0.078 (worse than
 * 0.048 at n = 4000), the rule 1.19 and 0.021; on gmm2, student and the
 * anisotropic mixture at d = 2, 5 it changed nothing. llsfe is exact for a
 * locally quadratic log-density, so its error grows slowly on the wide
 * side; kde's bias grows like h^2, and there the rule lost (agmm, d = 2,
 * n = 10^4: kde's error over all samples, what J measures, 0.093 became
 * 0.120): kde keeps the minimiser.
 *
 * Large n. With 4000 held-out points in all and every other sample
 * training, n = 10^5 went wrong: on gauss, d = 2, the heavy-tailed per-point
 * terms of a rough small-h estimate (paired differences up to 100 where
 * their mean is 0.06) put J(0.15) 0.068 +- 0.053 below J(0.6) where the
 * true difference is 0.083 above, the rule kept 0.15 and the g error
 * within r <= 2 was 0.019 (0.0005 at n = 10^4; S_2 median 0.84). The true
 * differences along the flat side are about one standard error of 4000
 * held-out points whatever n (gauss, d = 2, the 8th grid bandwidth against
 * the widest: 1.1 at n = 10^4, 0.7 at 10^5), so the held-out set has to
 * grow; each held-out point costs 2d + 1 evaluations at every training
 * sample per bandwidth, so beyond n = 10^4 (SL_AUTO_FULL) held-out and
 * training sets both grow like sqrt(n): 4000 sqrt(n / 10^4) held out in
 * all and at most 10^4 sqrt(n / 10^4) training samples per fold, a seeded
 * subset of the rest, at the former cost (about 4000 (2d + 1) n kernel
 * evaluations per bandwidth).
 * Measured at n = 10^5, d = 2, seed 31 (12645 held out, 31622 training),
 * llsfe, before -> after:
 *   gauss    h 0.149 -> 0.946, g error r <= 2 0.019 -> 0.00012, over all
 *            samples 0.080 -> 0.00023, S_2 median 0.84 -> 0.013
 *   agmm     h 0.212 both, g error 0.0177 -> 0.0175
 *   gmm2     h 0.422 both, g error 0.0141 both
 *   student  h 0.776 both, g error 0.0127 both (all samples 0.0234 -> 0.0226)
 * (the g errors above are relative MSEs), and kde, which takes the
 * minimiser, on gauss h 0.149 -> 0.298, g error 0.0174 -> 0.0076, S_2
 * median 0.90 -> 0.13 (agmm: h 0.133 both). The choice got faster: the
 * whole llsfe estimate on gauss took 307 s -> 226 s on two shared cores,
 * run back to back, though the final fit at h = 0.946 alone takes 121 s
 * (14 s at 0.149), so the choice itself went from about 290 s to 105 s;
 * kde on agmm 112 s -> 96 s. Up to n = 10^4 nothing changed, and at
 * n = 16000 (gauss, gmm2, d = 2) the choices stayed. Rejected on the
 * measurements (per-point terms of all n points held out at n = 10^4,
 * resampled 200 times to 4000): a wider preference at the old size (the
 * widest within 2 standard errors) lost elsewhere, gmm2, d = 2: error
 * over all samples 1.43 times the best on average against 1.17 with one
 * standard error, agmm 1.11 against 1.02; trimmed means discard the
 * signal, which is in the tails (1% trimmed on gauss, d = 2: a seventh
 * to a quarter of the true differences).
 *
 * Cost. Each grid bandwidth takes, per fold, the moments of the held-out
 * points against the training set, llsfe's pooled covariance (1000 samples
 * against it) and the skewness pass, all O(d^2) per pair; llsfe's prior
 * weight then climbs its ladder and the grid again, 4 to 8 more whole
 * objectives. With 2d + 1 evaluations per held-out point (central
 * differences) and the sqrt(n) growth above, logistic d = 6, n = 5 10^4
 * ran over 13 minutes (4.5 CPU minutes, unfinished) and d = 10, n = 10^4
 * took 99 CPU seconds; at n = 10^5, d = 10 the held-out x training pairs
 * were 21 x 12645 x 31622 per bandwidth, hours. Now:
 * - div g from the derivative (above): 2 passes instead of 2d + 1 (kde: 1);
 *   d = 10, n = 10^4: 99 -> 24 CPU seconds, the same bandwidth (2.57);
 *   bench_accuracy --quick (d = 2, 5; n = 10^3, 10^4, seed 31): every
 *   kde and llsfe choice the same but llsfe on student, d = 2, n = 1000
 *   (h 1.66 -> 2.10, g error within r <= 2 0.043 -> 0.055, where the best
 *   fixed h tried at the default weight, 0.93, gives 0.023: the
 *   objective, over all samples, weighs the heavy tails; the tie rule of
 *   llsfe.c flips on this input between the two, see there); kde's choice
 *   4 to 12 times faster.
 * - a cap: held-out x training pairs per bandwidth at most
 *   SL_AUTO_PAIRS_D2 / d^2 (work per pair ~ d^2), i.e. the sqrt(n) growth
 *   stops at n = 2.5 10^5 for d = 2 (so the measurements above stand), at
 *   4 10^4 for d = 5, 2.8 10^4 for d = 6, and at 10^4 for d = 10, where
 *   the choice then costs what it costs at n = 10^4 (about 30 CPU
 *   seconds) for any n. Measured at logistic, d = 10, n = 3 10^4:
 *   capped (800 held out per fold, 10^4 training) h 2.40, g error within
 *   r <= 2 0.0591, 29 CPU seconds; uncapped (1385, 17320) the same h in
 *   64. The fixed grid at the default weight gives 0.0387 (1.20), 0.0366
 *   (1.51), 0.0458 (1.90), 0.0592 (2.40), 0.0731 (3.02): the choice is
 *   1.6 times the best there with or without the cap (the objective weighs
 *   all samples, the one-standard-error rule the wide side), a question
 *   of the objective, not of its cost: see "The centre" below (no h of
 *   the grid is within 1.25 times both the best over all samples and the
 *   best within r <= 2 there).
 * - the final fit (llsfe.c): all pairs also beyond 4 10^8 pairs when the
 *   cutoff ball holds 6% of the sample or more.
 * Release build, two shared (heavily loaded) cores, CPU seconds, whole
 * estimate (choice + fit), logistic inputs, seed 1:
 *   d = 10, n = 10^4:    99 -> 24 (h 2.57 both)
 *   d = 6, n = 5 10^4:   over 270 unfinished -> 44 (choice 36, fit 8 at
 *                        h = 1.86 by all pairs; by neighbours about 80)
 *   d = 10, n = 10^5:    hours (21 x 12645 x 31622 pairs per bandwidth)
 *                        -> 87 (choice 30, fit 55 by all pairs)
 *   d = 2, n = 10^5:     92 (choice 72, fit 20; h 0.86)
 * At n = 10^6, d = 10 the choice costs what it costs at 10^5, but the fit
 * at the chosen fixed h (about 1.9, whose cutoff ball holds most of the
 * sample) is 10^12 pairs by any strategy: there knn:K is the bandwidth.
 *
 * The centre. J weighs every held-out point alike, i.e. it estimates the
 * error over the whole distribution (all samples); `scoreloss score --eval`
 * reports the error within |x| <= 2 first. llsfe's error at x is a bias
 * from the change of curvature of log p there plus a variance of order
 * 1 / (p(x) n h^(d+2)), so the tails, where p is small and the curvature
 * of log p changes little (logistic: log p nearly linear there; student),
 * want a wider h than the centre. Measured (seed 31, release, the original
 * rule: auto's g error over the best fixed h of the grid at the default
 * weight, all samples, then r <= 2):
 *            d = 2: n = 1000     4000        3 10^4     d = 5: 1000  4000
 *   gmm2     1.16 1.73  0.74 1.11  0.74 0.94          0.52 0.56  0.39 0.55
 *   agmm     0.88 0.96  0.91 1.07  1.02 0.97          1.00 1.44  1.00 1.11
 *   student  0.93 2.97  1.00 3.39  1.34 3.99          0.91 2.56  0.96 3.27
 *   logistic 1.18 1.26  1.10 1.10  1.05 2.07          1.02 1.56  1.04 1.60
 *   gauss    0.91 1.01  0.93 1.02  0.63 0.95          0.72 0.88  0.72 0.91
 *            d = 10: n = 1000    4000        3 10^4
 *   gmm2     0.41 1.30  0.27 1.42
 *   agmm     0.86 1.25  0.89 1.58
 *   student  0.98 2.44  0.95 3.05
 *   logistic 1.01 -     1.06 1.54  1.00 1.78    (- : no sample in r <= 2)
 *   gauss    0.74 0.98  0.69 0.92
 * (ratios below 1: the weight climb beats the default weight). Over all
 * samples every case is within 1.25x but student, d = 2, n = 3 10^4
 * (1.34: J has 0.905 best, -0.7547 against -0.7511 at 1.14, while the
 * error over all samples, carried by a few far points, is 0.068 against
 * 0.051 and not monotone in h: 0.14, 0.22, 0.11 at h = 0.45, 0.57, 0.72).
 * Within r <= 2 most student and logistic cases cannot reach 1.25x with
 * any one h of the grid: the best h over all samples and inside differ by
 * 2 to 2.5 times (student, d = 2, n = 1000: 1.66 and 0.66; logistic,
 * d = 10, n = 3 10^4: 2.40 and 1.20), and the h that minimises the larger
 * of the two ratios still leaves (all, inside) at student d = 2: (1.39,
 * 1.40), (1.39, 1.70), (2.22, 2.47) for n = 10^3, 4000, 3 10^4; d = 5:
 * (1.38, 1.28), (1.40, 1.71); d = 10: (1.26, 1.75), (1.66, 1.82);
 * logistic d = 2, n = 3 10^4: (1.28, 1.34); d = 10, n = 3 10^4: (1.13,
 * 1.35). There a single bandwidth has to give up one region, and the rule
 * keeps the error over all samples, which the loss's tensor averages.
 * What the centre can have without that cost it gets from the widening:
 * the one-standard-error rule widens only while the centre's own
 * objective, weighted by c(x) = exp(-|x - m|_P^2 / 2) with m, P the
 * fitted Gaussian's mean and precision (weighted score matching: terms
 * c (|g|^2 / 2 + div g) + grad c . g), also stays within one standard
 * error of its minimum. Measured, before -> after (ratios as above):
 * gmm2, d = 2, n = 1000: h 1.18 -> 0.745, all samples 1.16 -> 0.91,
 * r <= 2 1.73 -> 1.05 (seed 33: h 0.95 -> 0.60, 0.87 -> 0.77, 1.61 ->
 * 0.78); student, d = 2, n = 1000: h 2.10 -> 1.66, 0.93 -> 1.00, 2.97 ->
 * 2.35; gmm2, d = 2, n = 4000: h 0.625 both (another weight), 0.74 ->
 * 0.76, 1.11 -> 1.05; every other case of the table the same h and
 * errors, and so gauss, d = 2 at seed 41 (n = 1000, 4000) and at n = 16000
 * (h 1.19), and logistic, d = 2, n = 1000, seed 32 (1.16, 1.98: the best
 * h over all samples is 1.94, inside 1.22). The centre's terms cost
 * O(d) per held-out point and bandwidth beside the O(d^2) per pair of
 * the scores (logistic, d = 10, n = 4000, whole estimate, back to back:
 * 11.0 and 11.6 CPU seconds before, 11.4 and 11.6 after). Rejected on the
 * measurements:
 * - the centre-weighted objective itself (terms weighted 1 + c / mean c):
 *   r <= 2 gmm2 d = 2, n = 1000 1.73 -> 1.07, agmm d = 5, n = 1000 1.44 ->
 *   1.03, agmm d = 10 1.25 -> 0.94 and 1.58 -> 1.04, logistic d = 10,
 *   n = 4000 1.54 -> 1.28, student 2.97 -> 2.35; but noisier: gauss,
 *   d = 2, n = 4000, seed 41 took h 0.561 for 1.41 (J -1.5065 at 0.445
 *   against -1.5005 at 1.41 after the weight climbed to 1000; all samples
 *   0.00089 -> 0.0049, S_2 median 0.047 -> 0.102), and logistic d = 2,
 *   n = 3 10^4 went 1.05 -> 1.27 over all samples (the weight 300 for 100:
 *   0.14% of |J| against the 0.2% tie of llsfe.c); half that weight lost
 *   the gmm2 gain and kept the logistic loss;
 * - the centre's minimiser among the bandwidths within one standard error
 *   (instead of the widest): logistic d = 2, n = 4000 over all samples
 *   1.10 -> 1.36 (the set reaches h = 1.02: J's noise there is about a
 *   third of the error it measures).
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
#define SL_AUTO_HELDOUT 4000 /* held-out points in all folds, up to n = SL_AUTO_FULL */
#define SL_AUTO_FULL 10000   /* beyond it both sets grow like sqrt(n) (see above) */
#define SL_AUTO_FOLDS 5
#define SL_AUTO_PAIRS_D2 4.0e9 /* the cost cap: at most this / d^2 pairs per bandwidth */

/* The standard error of the mean of a - b over M paired held-out terms. */
static double paired_se(size_t M, const double *a, const double *b) {
    double mean = 0.0, var = 0.0;
    for (size_t i = 0; i < M; ++i) mean += (a[i] - b[i]) / (double)M;
    for (size_t i = 0; i < M; ++i) {
        const double t = a[i] - b[i] - mean;
        var += t * t / (double)(M - 1);
    }
    return sqrt(var / (double)M);
}

/* llsfe's centre weights (see the top of the file): for each held-out
 * point x, c(x) = exp(-|x - m|_P^2 / 2) (|.|_P the fitted Gaussian's
 * Mahalanobis norm), up to a common factor, and its gradient. */
static void centre_weights(const sl_gauss_fit *fit, size_t d, size_t M, const double *X,
                           const size_t *rows, double *c, double *grad) {
    double z2min = INFINITY;
    for (size_t i = 0; i < M; ++i) {
        const double *x = X + rows[i] * d;
        double z2 = 0.0;
        for (size_t a = 0; a < d; ++a) {
            double pz = 0.0;
            for (size_t b = 0; b < d; ++b) pz += fit->P[a * d + b] * (x[b] - fit->m[b]);
            grad[i * d + a] = -pz; /* the gradient of -|x - m|_P^2 / 2 */
            z2 += (x[a] - fit->m[a]) * pz;
        }
        c[i] = z2;
        z2min = fmin(z2min, z2);
    }
    /* Relative to the largest bump, so that it cannot underflow everywhere. */
    for (size_t i = 0; i < M; ++i) {
        c[i] = exp(-0.5 * (c[i] - z2min));
        for (size_t a = 0; a < d; ++a) grad[i * d + a] *= c[i];
    }
}

sl_status sl_bandwidth_auto(sl_kernel_map map, const sl_score_options *opt, const sl_gauss_fit *fit,
                            size_t n, size_t d, const double *X, double *h_out, sl_scores *record) {
    if (n < 10)
        return sl_error(SL_EINVAL, "automatic bandwidth needs at least 10 samples, got %zu", n);
    /* SL_AUTO_FOLDS folds of a seeded permutation; in fold f the rows
     * [f m, (f + 1) m) are held out, m = n / folds capped so that at most
     * SL_AUTO_HELDOUT sqrt(n / SL_AUTO_FULL) points are held out in all,
     * and the first nt permuted rows outside the fold train, at most
     * SL_AUTO_FULL sqrt(n / SL_AUTO_FULL) of them. */
    double grow = n > SL_AUTO_FULL ? sqrt((double)n / SL_AUTO_FULL) : 1.0;
    /* The cost cap: held out x training pairs per bandwidth at most
     * SL_AUTO_PAIRS_D2 / d^2 (the work per pair grows like d^2), never
     * below the sizes at n = SL_AUTO_FULL. */
    const double pairs_max = SL_AUTO_PAIRS_D2 / ((double)d * (double)d);
    if (grow > 1.0 && (double)SL_AUTO_HELDOUT * SL_AUTO_FULL * grow * grow > pairs_max)
        grow = fmax(1.0, sqrt(pairs_max / ((double)SL_AUTO_HELDOUT * SL_AUTO_FULL)));
    size_t m = n / SL_AUTO_FOLDS, nt;
    const size_t mcap = (size_t)(SL_AUTO_HELDOUT * grow) / SL_AUTO_FOLDS;
    const size_t tcap = (size_t)(SL_AUTO_FULL * grow);
    if (m > mcap) m = mcap;
    nt = n - m < tcap ? n - m : tcap;
    /* knn: x, then x +- eps e_a (central differences); a fixed h: x alone,
     * div g from the estimator's derivative. */
    const int fd = opt->bandwidth.kind == SL_BW_KNN;
    const size_t per = fd ? 2 * d + 1 : 1;
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
    /* llsfe on a grid: the centre-weighted terms too (cterms), from the
     * weights cw and their gradients cgrad at the held-out points. */
    const int centre = map == SL_KERNEL_LLSFE && ngrid > 1;
    const size_t Mc = centre ? m * SL_AUTO_FOLDS : 0;
    double *cterms = malloc((Mc * ngrid + 1) * sizeof *cterms);
    double *cw = malloc((Mc + 1) * sizeof *cw), *cgrad = malloc((Mc * d + 1) * sizeof *cgrad);
    sl_scores *s = NULL, *pilot = NULL;
    sl_status st = sl_scores_alloc(m * per, d, &s);
    if (st == SL_OK && K > 0) st = sl_scores_alloc(m, d, &pilot);
    if (!perm || !Xt || !Xq || !J || !eps || !terms || !cterms || !cw || !cgrad || st) {
        free(cterms);
        free(cw);
        free(cgrad);
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
    /* The held-out points of all folds are the first m * folds permuted rows. */
    if (centre) centre_weights(fit, d, Mc, X, perm, cw, cgrad);

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
            if (!fd) {
                /* eps receives div g at the held-out points. */
                st = sl_kernel_scores_div(map, &o, fit, nt, d, Xt, m, Xq, ht, s, eps);
                if (st) break;
                double sum = 0.0;
                for (size_t i = 0; i < m; ++i) {
                    const double *g = s->G + i * d;
                    const size_t p = f * m + i;
                    double term = eps[i], u = 0.0;
                    for (size_t a = 0; a < d; ++a) term += 0.5 * g[a] * g[a];
                    terms[k * m * SL_AUTO_FOLDS + p] = term;
                    if (centre) {
                        for (size_t a = 0; a < d; ++a) u += cgrad[p * d + a] * g[a];
                        cterms[k * Mc + p] = cw[p] * term + u;
                    }
                    sum += term;
                }
                J[k] += sum / (double)(m * SL_AUTO_FOLDS);
                if (opt->progress)
                    opt->progress(0.3 * (double)(f * ngrid + k + 1) /
                                      (double)(SL_AUTO_FOLDS * ngrid),
                                  opt->progress_ctx);
                continue;
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
                terms[k * m * SL_AUTO_FOLDS + f * m + i] = term;
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
    free(cw);
    free(cgrad);
    sl_scores_free(s);
    sl_scores_free(pilot);
    if (st) {
        free(cterms);
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
    size_t chosen = best, cbest = 0;
    /* The centre's minimiser (llsfe on a grid; otherwise no centre condition). */
    double Jc[SL_AUTO_GRID] = {0};
    for (size_t k = 0; centre && k < ngrid; ++k) {
        for (size_t i = 0; i < M; ++i) Jc[k] += cterms[k * M + i] / (double)M;
        if (Jc[k] < Jc[cbest]) cbest = k;
    }
    for (size_t k = best + 1; map == SL_KERNEL_LLSFE && k < ngrid; ++k)
        if (J[k] - J[best] <= paired_se(M, terms + k * M, terms + best * M) &&
            (!centre || Jc[k] - Jc[cbest] <= paired_se(M, cterms + k * M, cterms + cbest * M)))
            chosen = k;
    record->bw_ngrid = ngrid;
    for (size_t k = 0; k < ngrid; ++k) {
        record->bw_grid[k] = grid[k];
        record->bw_objective[k] = J[k];
    }
    free(J);
    free(terms);
    free(cterms);
    *h_out = grid[chosen];
    return SL_OK;
}
