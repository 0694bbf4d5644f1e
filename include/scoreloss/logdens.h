/* Independent coordinates: 1-D local log-polynomial density fits and the
 * factorised fourth-order score (METHOD.md section 4b).
 *
 * When the coordinates of x are independent, log p(x) = sum_i l_i(x_i), so H,
 * G3 and G4 are diagonal and S_4 follows from the first four derivatives of
 * the d one-dimensional log-densities l_i. Each l_i is estimated by local
 * likelihood (Loader): at a point x0 the polynomial
 *
 *   P(u) = a0 + a1 u + a2 u^2/2 + a3 u^3/6 + a4 u^4/24 [+ a5 u^5/5! + a6 u^6/6!]
 *
 * (u = x - x0; degree 4, 5 or 6) maximises
 *
 *   sum_j K_h(x_j - x0) P(x_j - x0) - n int K_h(u) exp(P(u)) du
 *   - (rho / 2) sum_{m >= 2} (h^m a_m - r_m)^2 / m!
 *
 * with the Gaussian kernel K_h(u) = exp(-u^2 / (2 h^2)), and a_m estimates
 * l^(m)(x0). The integral is a Gauss-Hermite rule on the kernel; the penalty
 * is the information of rho pseudo-samples in the Hermite basis (He_m has
 * E[He_m^2] = m!), pulling a3 and a4 toward 0 and a2 toward the global
 * Gaussian's -1/var (r_2 = -h^2/var, r_m = 0 for m > 2) where the kernel-weighted
 * count of samples is comparable to rho or smaller (the tails), and a
 * negligible pull where it is large. a1 is not penalised: in the tails the
 * data fix the slope of log p well, and a global reference slope would be
 * wrong there (a logistic's l' tends to -+1, a Gaussian's to -+infinity).
 *
 * The data enter through linear binning onto a grid spanning the sample, so
 * a fit costs O(grid) whatever n; the fits are made at every grid point and
 * linearly interpolated in between (the grid is much finer than h: the
 * interpolation error, step^2/8 times a second derivative, is far below the
 * estimator's own error, and linear interpolation cannot overshoot where
 * the fit changes quickly). Beyond the grid a fit is extended by its
 * quadratic part (l' linear, l'' constant and clamped to <= 0, l''' = l'''' = 0).
 *
 * The bandwidth, per coordinate, maximises the held-out log-likelihood of
 * the normalised fitted density over a geometric grid of h, times h_scale.
 * Where the data thin out (K0 (h/s)^4 < min_info) h grows locally, which
 * caps the variance of the tails' fits. */
#ifndef SCORELOSS_LOGDENS_H
#define SCORELOSS_LOGDENS_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/loss.h"
#include "scoreloss/score.h"
#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SL_LOGDENS_MAX_BW 32

typedef struct sl_logdens_options {
    double h;              /* bandwidth > 0, or 0 (the default): chosen per coordinate */
    double h_scale;        /* the automatically chosen h is multiplied by this (default 0.4; see
                              sl_logdens_options_default in logdens1d.c for why) */
    size_t degree;         /* the local polynomial's degree: 4, 5 or 6 (default 5) */
    size_t ngrid;          /* fit points spanning the data, at least 16 (default 1024) */
    double ridge;          /* rho, pseudo-samples of the penalty (>= 0; default 20) */
    double min_info;       /* where the kernel-weighted count K0 has K0 (h/s)^4 below this
                              (s: the robust spread), h is raised by factors of 1.25 until it
                              does not (0: off; default 30): the tails' fits are smoother */
    size_t nquad;          /* Gauss-Hermite nodes, 8..64 (default 20) */
    double holdout;        /* fraction of samples held out for the bandwidth (default 0.25) */
    size_t nbw;            /* bandwidths tried, 2..SL_LOGDENS_MAX_BW (default 14) */
    double bw_min, bw_max; /* the tried range in units of the coordinate's robust
                              spread min(sd, IQR/1.349) (defaults 0.05 and 1.6) */
    uint64_t seed;         /* the held-out split */
} sl_logdens_options;

void sl_logdens_options_default(sl_logdens_options *opt);

/* One coordinate's fit, tabulated on the grid x_g = lo + g step. */
typedef struct sl_logdens1d {
    size_t ngrid;
    double lo, step;
    double h;     /* the bandwidth used */
    double *coef; /* ngrid x 5: log p (normalised), l', l'', l''', l'''' at x_g */
    double *k0;   /* ngrid: the kernel-weighted count of samples near x_g (NULL for a table) */
    double *hx;   /* ngrid: the bandwidth used at x_g (NULL for a table) */
    double ridge; /* rho of the fit (0 for a table) */
    size_t thin;  /* samples whose nearest grid point has k0 < rho: there the penalty
                     weighs as much as the data or more */
    /* The bandwidth search (nbw = 0 when h was given): h tried and the
     * held-out mean log-likelihood of each. */
    size_t nbw;
    double bw_grid[SL_LOGDENS_MAX_BW];
    double bw_loglik[SL_LOGDENS_MAX_BW];
    size_t newton_max; /* most Newton steps any grid point took */
} sl_logdens1d;

/* Fits the log-density of the n values x[0], x[stride], ... (finite, not all
 * equal; n >= 10). */
sl_status sl_logdens1d_fit(const sl_logdens_options *opt, size_t n, const double *x, size_t stride,
                           sl_logdens1d **out);

/* A fit from a table of log-derivatives (ngrid x 5, as coef above) on the
 * grid lo + g step: known densities in tests and comparisons. */
sl_status sl_logdens1d_from_table(size_t ngrid, double lo, double step, const double *coef,
                                  sl_logdens1d **out);

void sl_logdens1d_free(sl_logdens1d *f);

/* log p, l', l'', l''', l'''' at x into out[0..4]. */
void sl_logdens1d_eval(const sl_logdens1d *f, double x, double out[5]);

/* The d coordinates' fits. */
typedef struct sl_indep_fit {
    size_t d;
    sl_logdens1d **coord; /* d fits */
} sl_indep_fit;

/* An empty fit for d coordinates (coord[i] NULL, to be set by the caller,
 * who hands their ownership to it). */
sl_status sl_indep_fit_alloc(size_t d, sl_indep_fit **out);

/* Fits every column of X (n x d) with sl_logdens1d_fit. */
sl_status sl_indep_fit_compute(const sl_logdens_options *opt, size_t n, size_t d, const double *X,
                               sl_indep_fit **out);

void sl_indep_fit_free(sl_indep_fit *f);

/* g and the diagonal H of the factorised log-density at the nq rows of Q
 * into out->G and out->H (out: nq x d scores, d = fit->d). out->regularised
 * counts the points with some coordinate in a thin region (see thin);
 * out->bandwidth is the geometric mean of the coordinates' h (0 when some
 * coordinate is a table). */
sl_status sl_indep_fit_scores(const sl_indep_fit *fit, size_t nq, const double *Q, sl_scores *out);

/* The score method "indep": the factorised fit above (default options,
 * the held-out split from opt->seed) at the query points. Bandwidth: auto
 * (per coordinate, as above) or a fixed h for every coordinate (used as
 * given); knn:K and const:C are refused (SL_EUNSUPPORTED). The samples are not left
 * out of their own fits: a 1-D fit over n samples changes by O(1/(n h))
 * without one of them. */
extern const sl_score_type sl_score_indep;

/* The whitened fourth moment of the factorised S_4:
 *   T = (1/n) sum_j y_j S_4(x_j)(P., P., P., P.)
 * with S_4 = g^4 + 6 sym(g g H) + 3 sym(H H) + 4 sym(g G3) + G4 (METHOD.md
 * section 2, each placement counted once). The locally quadratic part comes
 * from m->Gw and m->Hw exactly as sl_moments_tensor computes it; with H, G3,
 * G4 diagonal and p_i the i-th row of P (k), the other two are
 *   4 sym(g G3): the four placements of v_i in sum_i v_i (x) p_i (x) p_i (x) p_i,
 *                v_i = (1/n) sum_j y_j l_i'''(x_ji) P'g_j,
 *   G4:          sum_i (1/n) sum_j y_j l_i''''(x_ji) p_i^(x)4,
 * O(n d k + d k^4), no d^4 or per-sample k^4 tensor. m must come from
 * sl_moments_compute on n samples X (n x d) whose scores are the fit's own
 * (sl_indep_fit_scores) for a consistent S_4; with other scores (g, H) the
 * quadratic part and P'g are theirs. Sets m->t_full = 1. */
sl_status sl_moments_tensor_indep(sl_moments *m, size_t n, size_t d, const double *X,
                                  const sl_indep_fit *fit);

#ifdef __cplusplus
}
#endif
#endif
