/* Accuracy of the estimated projected fourth moment (s4.h) against the
 * exact one, split into bias and noise over seeds.
 *
 *   bench_s4 --dist SPEC --n N [--seeds 1,2,3] [--d 10] [--k 5] [--wseed 1]
 *            [--est cumulant,kde,quadratic] [--h H1,H2,..] [--ref M] [--cutoff C]
 *            [--uncorrected] [--minnb K] [--ridges S] [--tilt DEG] [--thin gauss|zero|t]
 *
 * Fixed across seeds: W (random, seed --wseed; ReLU, a = 1, no noise), the
 * projection U0 (an orthonormal basis of W's row span) and the whitening
 * V (from the exact projected M2 of the first seed), so every T lives in the
 * same basis and the differences average. Per seed: x ~ SPEC, z = U0'x, the
 * exact T (the marginal's exact S_4 when SPEC has a closed-form marginal,
 * else the input's full S_4 along P = U0 V: equal in expectation by the
 * projected Stein identity), the locally quadratic T from the exact (g, H)
 * (the best the original method can do; also with y detrended by its cubic
 * fit in z, the control variate s4_project.c uses), and each estimator's T from z and
 * y alone. Errors are relative Frobenius norms against the exact T of the
 * same sample and the same labels (the raw-y row against the exact T with
 * y, the detrended rows and the estimators against the exact T with y
 * detrended: same target, but the raw-y exact T carries the sampling noise
 * of the polynomial part of y, which the control variate removes): bias = |mean over seeds of
 * (T_hat - T)| / mean |T|, noise = the standard deviation over seeds of T_hat - T (Frobenius) /
 * mean |T|. One Markdown row per estimator and bandwidth.
 *
 * --ridges S gives the estimators the ridge control variates of the refit
 * passes (sl_detrend_ridge_cv through cv_ridges, smoothing S) at the true
 * directions, each turned by DEG degrees (--tilt, a seeded random turn
 * within z's span) to stand for directions found by a pass: the bias left
 * is then the estimator's error times the residual only. --thin: what the
 * points with too few neighbours contribute (sl_s4_options.thin). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#include "core/linalg.h"
#include "scoreloss/dist.h"
#include "scoreloss/loss.h"
#include "scoreloss/network.h"
#include "scoreloss/rng.h"
#include "scoreloss/s4.h"

#define MAXS 16
#define MAXH 16

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what) {
    fprintf(stderr, "bench_s4: %s: %s\n", what, sl_last_error());
    exit(1);
}

static size_t parse_list(const char *s, double *out, size_t max) {
    size_t n = 0;
    char *end;
    while (*s && n < max) {
        out[n++] = strtod(s, &end);
        s = *end == ',' ? end + 1 : end;
        if (end == s && *s) break;
    }
    return n;
}

/* y minus its least-squares cubic polynomial in z (n x k): the control
 * variate of s4_project.c (E[S_4 h] = 0 for cubic h), for the detrended
 * quadratic-exact row. */
static void detrend3(size_t n, size_t k, const double *Z, const double *y, double *r) {
    const size_t np = 1 + k + k * (k + 1) / 2 + k * (k + 1) * (k + 2) / 6;
    double *G = calloc(np * np, sizeof *G), *b = calloc(np, sizeof *b), *phi = malloc(np * 8);
    double *L = malloc(np * np * sizeof *L);
    for (int pass = 0; pass < 2; ++pass) {
        for (size_t j = 0; j < n; ++j) {
            const double *z = Z + j * k;
            size_t p = 0;
            phi[p++] = 1.0;
            for (size_t a = 0; a < k; ++a) phi[p++] = z[a];
            for (size_t a = 0; a < k; ++a)
                for (size_t c = a; c < k; ++c) phi[p++] = z[a] * z[c];
            for (size_t a = 0; a < k; ++a)
                for (size_t c = a; c < k; ++c)
                    for (size_t e = c; e < k; ++e) phi[p++] = z[a] * z[c] * z[e];
            if (pass == 0) {
                for (size_t u = 0; u < np; ++u) {
                    b[u] += phi[u] * y[j];
                    for (size_t v = 0; v < np; ++v) G[u * np + v] += phi[u] * phi[v];
                }
            } else {
                double f = 0.0;
                for (size_t u = 0; u < np; ++u) f += phi[u] * b[u];
                r[j] = y[j] - f;
            }
        }
        if (pass == 0) {
            /* Solve G x = b by Cholesky (sl_cholesky, then two triangular solves). */
            if (sl_cholesky(np, G, L, "Gram")) die("detrend");
            for (size_t u = 0; u < np; ++u) {
                double v = b[u];
                for (size_t w = 0; w < u; ++w) v -= L[u * np + w] * b[w];
                b[u] = v / L[u * np + u];
            }
            for (size_t u = np; u-- > 0;) {
                double v = b[u];
                for (size_t w = u + 1; w < np; ++w) v -= L[w * np + u] * b[w];
                b[u] = v / L[u * np + u];
            }
        }
    }
    free(G);
    free(b);
    free(phi);
    free(L);
}

static double frob(size_t len, const double *a) {
    return sqrt(cblas_ddot((int)len, a, 1, a, 1));
}

/* A stub of moments that sl_moments_tensor_dist can fill. */
static sl_moments *stub(size_t n, size_t d, size_t k, const double *y) {
    sl_moments *m = calloc(1, sizeof *m);
    m->n = n;
    m->d = d;
    m->k = k;
    m->y = malloc(n * sizeof *m->y);
    memcpy(m->y, y, n * sizeof *y);
    m->signal = calloc(k, sizeof *m->signal);
    return m;
}

int main(int argc, char **argv) {
    const char *spec = "logistic", *ests = "cumulant,kde,quadratic";
    size_t n = 10000, d = 10, k = 5, ref = 0, minnb = 0;
    double seedsd[MAXS] = {1, 2, 3}, hs[MAXH] = {0};
    size_t nseeds = 3, nh = 1;
    double cutoff = 0.0;
    int uncorrected = 0;
    double ridges = 0.0, tilt = 0.0;
    sl_s4_options dflt;
    sl_s4_options_default(&dflt);
    sl_s4_thin thin = dflt.thin;
    uint64_t wseed = 1;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--dist"))
            spec = v, ++i;
        else if (!strcmp(a, "--n"))
            n = (size_t)atof(v), ++i;
        else if (!strcmp(a, "--d"))
            d = (size_t)atoi(v), ++i;
        else if (!strcmp(a, "--k"))
            k = (size_t)atoi(v), ++i;
        else if (!strcmp(a, "--ref"))
            ref = (size_t)atof(v), ++i;
        else if (!strcmp(a, "--wseed"))
            wseed = (uint64_t)atof(v), ++i;
        else if (!strcmp(a, "--minnb"))
            minnb = (size_t)atof(v), ++i;
        else if (!strcmp(a, "--cutoff"))
            cutoff = atof(v), ++i;
        else if (!strcmp(a, "--est"))
            ests = v, ++i;
        else if (!strcmp(a, "--seeds"))
            nseeds = parse_list(v, seedsd, MAXS), ++i;
        else if (!strcmp(a, "--h"))
            nh = parse_list(v, hs, MAXH), ++i;
        else if (!strcmp(a, "--ridges"))
            ridges = atof(v), ++i;
        else if (!strcmp(a, "--tilt"))
            tilt = atof(v), ++i;
        else if (!strcmp(a, "--thin")) {
            if (sl_s4_thin_from_name(v, &thin)) die("--thin");
            ++i;
        } else if (!strcmp(a, "--uncorrected"))
            uncorrected = 1;
        else {
            fprintf(stderr, "bench_s4: unknown argument %s\n", a);
            return 2;
        }
    }
    sl_s4_estimator elist[3];
    size_t ne = 0;
    {
        char buf[256];
        snprintf(buf, sizeof buf, "%s", ests);
        for (char *t = strtok(buf, ","); t && ne < 3; t = strtok(NULL, ","))
            if (sl_s4_estimator_from_name(t, &elist[ne++])) die("--est");
    }
    const size_t k2 = k * k, k4 = k2 * k2;
    sl_dist *dist = NULL;
    if (sl_dist_from_spec(spec, d, &dist)) die("dist");
    sl_network *net = NULL;
    if (sl_network_alloc(k, d, SL_ACT_RELU, &net) || sl_network_set_w(net, "random", wseed) ||
        sl_network_set_a(net, "ones", 1))
        die("network");
    /* U0: the right singular vectors of W. */
    double *U0 = malloc(d * k * sizeof *U0), *sv = malloc(k * sizeof *sv),
           *Vt = malloc(k * d * sizeof *Vt);
    if (sl_svd(k, d, net->W, sv, NULL, Vt)) die("svd");
    for (size_t a = 0; a < d; ++a)
        for (size_t c = 0; c < k; ++c) U0[a * k + c] = Vt[c * d + a];
    /* The ridge directions in z: v_i = U0'w_i, turned by tilt degrees
     * towards a seeded random unit vector orthogonal to v_i. */
    double *Vr = malloc(k * k * sizeof *Vr);
    {
        gsl_rng *rng = sl_rng_alloc(wseed, 7);
        if (!rng) die("rng");
        for (size_t i = 0; i < k; ++i) {
            double *v = Vr + i * k, r[8], nv = 0.0, nr = 0.0, dot = 0.0;
            for (size_t c = 0; c < k; ++c) {
                double s = 0.0;
                for (size_t a = 0; a < d; ++a) s += U0[a * k + c] * net->W[i * d + a];
                v[c] = s;
                nv += s * s;
            }
            for (size_t c = 0; c < k; ++c) v[c] /= sqrt(nv);
            for (size_t c = 0; c < k; ++c) r[c] = gsl_ran_gaussian(rng, 1.0);
            for (size_t c = 0; c < k; ++c) dot += r[c] * v[c];
            for (size_t c = 0; c < k; ++c) r[c] -= dot * v[c], nr += r[c] * r[c];
            const double th = tilt * acos(-1.0) / 180.0;
            for (size_t c = 0; c < k; ++c) v[c] = cos(th) * v[c] + sin(th) * r[c] / sqrt(nr);
        }
        gsl_rng_free(rng);
    }
    sl_dist *marg = NULL;
    if (sl_dist_marginal(dist, k, U0, &marg) != SL_OK) {
        sl_error_clear();
        marg = NULL;
    }
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y),
           *Z = malloc(n * k * sizeof *Z);
    double *G = malloc(4096 * d * sizeof *G), *H = malloc(4096 * d * d * sizeof *H);
    double Vw[64], P[640];
    /* exact, quadratic-exact (raw y); exact, quadratic-exact (y detrended);
     * estimators (y detrended inside sl_s4_tensor) */
    /* ... and with --ridges, last, the exact T of the estimators' labels: y
     * minus its fit on the cubic and the ridges, plus the fit's D^4. */
    const size_t nT = 4 + ne * nh + (ridges > 0);
    double *Ts = calloc(nseeds * nT * k4, sizeof *Ts);
    double *M2err = calloc(nseeds * ne * nh, sizeof *M2err);
    double *secs = calloc(ne * nh, sizeof *secs);
    sl_s4_info *infos = calloc(ne * nh, sizeof *infos);
    double *Tz = malloc(k4 * sizeof *Tz), *S4 = malloc(k4 * sizeof *S4);
    double M2ex[64], M2est[64];
    /* The fixed whitening: the exact projected M2 of a separate large sample
     * (seed 1000, at least 2e5 rows), so that every n and seed share it. */
    {
        const size_t nw = n > 200000 ? n : 200000;
        double *Xw = malloc(nw * d * sizeof *Xw), *yw = malloc(nw * sizeof *yw);
        if (sl_dist_sample(dist, 1000, nw, Xw) || sl_network_label(net, nw, Xw, 0.0, 1000, yw))
            die("whitening sample");
        memset(M2ex, 0, sizeof M2ex);
        for (size_t lo = 0; lo < nw; lo += 4096) {
            const size_t nb = nw - lo < 4096 ? nw - lo : 4096;
            if (sl_dist_grad_hess(dist, nb, Xw + lo * d, G, H)) die("grad_hess");
            for (size_t j = 0; j < nb; ++j) {
                double gz[8], Hz[64], tmp[640];
                const double *g = G + j * d, *Hj = H + j * d * d;
                for (size_t c = 0; c < k; ++c) {
                    double s = 0.0;
                    for (size_t a = 0; a < d; ++a) s += U0[a * k + c] * g[a];
                    gz[c] = s;
                }
                for (size_t a = 0; a < d; ++a)
                    for (size_t c = 0; c < k; ++c) {
                        double s = 0.0;
                        for (size_t b = 0; b < d; ++b) s += Hj[a * d + b] * U0[b * k + c];
                        tmp[a * k + c] = s;
                    }
                for (size_t c = 0; c < k; ++c)
                    for (size_t e = 0; e < k; ++e) {
                        double s = 0.0;
                        for (size_t a = 0; a < d; ++a) s += U0[a * k + c] * tmp[a * k + e];
                        Hz[c * k + e] = s;
                    }
                for (size_t c = 0; c < k2; ++c)
                    M2ex[c] += yw[lo + j] * (gz[c / k] * gz[c % k] + Hz[c]) / (double)nw;
            }
        }
        double w[8], R[64];
        if (sl_sym_eigen(k, M2ex, w, R)) die("eigen");
        for (size_t a = 0; a < k; ++a)
            for (size_t c = 0; c < k; ++c) Vw[a * k + c] = R[a * k + c] / sqrt(fabs(w[c]));
        sl_matmul(d, k, k, U0, Vw, P);
        fprintf(stderr, "# M2_z eigenvalues (exact scores, %zu rows):", nw);
        for (size_t c = 0; c < k; ++c) fprintf(stderr, " %.4g", w[c]);
        fprintf(stderr, "\n");
        free(Xw);
        free(yw);
    }
    for (size_t si = 0; si < nseeds; ++si) {
        const uint64_t seed = (uint64_t)seedsd[si];
        if (sl_dist_sample(dist, seed, n, X)) die("sample");
        if (sl_network_label(net, n, X, 0.0, seed, y)) die("label");
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0, X,
                    (int)d, U0, (int)k, 0.0, Z, (int)k);
        /* Exact projected M2 (and on the first seed, the whitening). */
        memset(M2ex, 0, sizeof M2ex);
        double *Tq = Ts + (si * nT + 1) * k4, *Tqd = Ts + (si * nT + 3) * k4;
        double *yd = malloc(n * sizeof *yd);
        detrend3(n, k, Z, y, yd);
        double gz[8], Hz[64], gw[8], Hw[64], tmp[640];
        for (int pass = 0; pass < 2; ++pass) {
            for (size_t lo = 0; lo < n; lo += 4096) {
                const size_t nb = n - lo < 4096 ? n - lo : 4096;
                if (sl_dist_grad_hess(dist, nb, X + lo * d, G, H)) die("grad_hess");
                for (size_t j = 0; j < nb; ++j) {
                    const double *g = G + j * d, *Hj = H + j * d * d;
                    const double *B = pass == 0 ? U0 : P;
                    for (size_t c = 0; c < k; ++c) {
                        double s = 0.0;
                        for (size_t a = 0; a < d; ++a) s += B[a * k + c] * g[a];
                        gz[c] = s;
                    }
                    for (size_t a = 0; a < d; ++a)
                        for (size_t c = 0; c < k; ++c) {
                            double s = 0.0;
                            for (size_t b = 0; b < d; ++b) s += Hj[a * d + b] * B[b * k + c];
                            tmp[a * k + c] = s;
                        }
                    for (size_t c = 0; c < k; ++c)
                        for (size_t e = 0; e < k; ++e) {
                            double s = 0.0;
                            for (size_t a = 0; a < d; ++a) s += B[a * k + c] * tmp[a * k + e];
                            Hz[c * k + e] = s;
                        }
                    const double yj = y[lo + j];
                    if (pass == 0) {
                        for (size_t c = 0; c < k2; ++c)
                            M2ex[c] += yj * (gz[c / k] * gz[c % k] + Hz[c]) / (double)n;
                    } else {
                        memcpy(gw, gz, k * sizeof *gw);
                        memcpy(Hw, Hz, k2 * sizeof *Hw);
                        sl_scores_from_logderivs(k, gw, Hw, NULL, NULL, NULL, NULL, NULL, S4);
                        cblas_daxpy((int)k4, yj / (double)n, S4, 1, Tq, 1);
                        cblas_daxpy((int)k4, yd[lo + j] / (double)n, S4, 1, Tqd, 1);
                    }
                }
            }
            if (0) {
                double w[8], R[64];
                if (sl_sym_eigen(k, M2ex, w, R)) die("eigen");
                for (size_t a = 0; a < k; ++a)
                    for (size_t c = 0; c < k; ++c) Vw[a * k + c] = R[a * k + c] / sqrt(fabs(w[c]));
                sl_matmul(d, k, k, U0, Vw, P);
                fprintf(stderr, "# M2_z eigenvalues:");
                for (size_t c = 0; c < k; ++c) fprintf(stderr, " %.4g", w[c]);
                fprintf(stderr, "\n");
            }
        }
        /* The exact T, with y and with y detrended. */
        for (int dt = 0; dt < 2; ++dt) {
            sl_moments *m = stub(n, d, k, dt ? yd : y);
            sl_status st = marg ? sl_moments_tensor_dist(m, marg, Z, Vw)
                                : sl_moments_tensor_dist(m, dist, X, P);
            if (st) die("exact T");
            memcpy(Ts + (si * nT + 2 * dt) * k4, m->T, k4 * sizeof *Ts);
            sl_moments_free(m);
        }
        if (ridges > 0) {
            double *dq = malloc(k4 * sizeof *dq), *zero = calloc(k, sizeof *zero);
            if (!dq || !zero ||
                sl_detrend_ridge_cv(n, k, Z, y, 3, 4, k, Vr, zero, ridges, yd, dq, NULL))
                die("ridge control variate");
            sl_moments *m = stub(n, d, k, yd);
            sl_status st = marg ? sl_moments_tensor_dist(m, marg, Z, Vw)
                                : sl_moments_tensor_dist(m, dist, X, P);
            if (st) die("exact T");
            double *Tr = Ts + (si * nT + nT - 1) * k4;
            sl_s4_contract(k, dq, k, Vw, Tr);
            cblas_daxpy((int)k4, 1.0, m->T, 1, Tr, 1);
            sl_moments_free(m);
            free(dq);
            free(zero);
        }
        free(yd);
        /* Estimators. */
        for (size_t e = 0; e < ne; ++e)
            for (size_t ih = 0; ih < nh; ++ih) {
                sl_s4_options o;
                sl_s4_options_default(&o);
                o.estimator = elist[e];
                o.h = hs[ih];
                o.reference = ref;
                o.seed = seed;
                if (cutoff > 0) o.cutoff = cutoff;
                if (minnb > 0) o.min_neighbours = minnb;
                o.corrected = !uncorrected;
                o.thin = thin;
                if (ridges > 0) {
                    o.cv_ridges = k;
                    o.cv_dirs = Vr;
                    o.cv_scale = ridges;
                }
                const double t0 = now();
                if (sl_s4_tensor(&o, n, k, Z, y, Tz, M2est, &infos[e * nh + ih])) die("s4");
                secs[e * nh + ih] += now() - t0;
                sl_s4_contract(k, Tz, k, Vw, Ts + (si * nT + 4 + e * nh + ih) * k4);
                /* The whitened M2 error: V'(M2_hat - M2)V against V'M2V. */
                double D[64], A1[64], A2[64];
                for (size_t c = 0; c < k2; ++c) D[c] = M2est[c] - M2ex[c];
                sl_matmul(k, k, k, D, Vw, A1);
                for (size_t a = 0; a < k; ++a)
                    for (size_t c = 0; c < k; ++c) {
                        double s = 0.0;
                        for (size_t b = 0; b < k; ++b) s += Vw[b * k + a] * A1[b * k + c];
                        A2[a * k + c] = s;
                    }
                sl_matmul(k, k, k, M2ex, Vw, A1);
                double ref2[64];
                for (size_t a = 0; a < k; ++a)
                    for (size_t c = 0; c < k; ++c) {
                        double s = 0.0;
                        for (size_t b = 0; b < k; ++b) s += Vw[b * k + a] * A1[b * k + c];
                        ref2[a * k + c] = s;
                    }
                M2err[si * ne * nh + e * nh + ih] = frob(k2, A2) / frob(k2, ref2);
            }
    }
    /* Summary rows. */
    /* The estimators' reference: the exact T of their labels. */
    const size_t eref = ridges > 0 ? nT - 1 : 2;
    double normT = 0.0, normTd = 0.0, normE = 0.0;
    for (size_t si = 0; si < nseeds; ++si) {
        normT += frob(k4, Ts + si * nT * k4) / (double)nseeds;
        normTd += frob(k4, Ts + (si * nT + 2) * k4) / (double)nseeds;
        normE += frob(k4, Ts + (si * nT + eref) * k4) / (double)nseeds;
    }
    double *mean = malloc(k4 * sizeof *mean), *D = malloc(k4 * sizeof *D);
    for (size_t t = 1; t < 4 + ne * nh; ++t) {
        if (t == 2) continue; /* a reference */
        /* Rows after the raw-y pair compare with the detrended exact T, the
         * estimators with the exact T of their own labels. */
        const size_t ref = t == 1 ? 0 : t == 3 ? 2 : eref;
        const double nrm = t == 1 ? normT : t == 3 ? normTd : normE;
        memset(mean, 0, k4 * sizeof *mean);
        double per[MAXS], ss = 0.0, m2e = 0.0;
        for (size_t si = 0; si < nseeds; ++si) {
            for (size_t i = 0; i < k4; ++i)
                D[i] = Ts[(si * nT + t) * k4 + i] - Ts[(si * nT + ref) * k4 + i];
            per[si] = frob(k4, D) / frob(k4, Ts + (si * nT + ref) * k4);
            cblas_daxpy((int)k4, 1.0 / (double)nseeds, D, 1, mean, 1);
            if (t >= 4) m2e += M2err[si * ne * nh + (t - 4)] / (double)nseeds;
        }
        for (size_t si = 0; si < nseeds; ++si) {
            for (size_t i = 0; i < k4; ++i)
                D[i] = Ts[(si * nT + t) * k4 + i] - Ts[(si * nT + ref) * k4 + i] - mean[i];
            ss += cblas_ddot((int)k4, D, 1, D, 1);
        }
        const double bias = frob(k4, mean) / nrm;
        const double noise = nseeds > 1 ? sqrt(ss / (double)(nseeds - 1)) / nrm : NAN;
        char name[128], hcol[32] = "-", extra[128] = "- | - | - | -";
        if (t == 1) {
            snprintf(name, sizeof name, "quadratic, exact (g, H)");
        } else if (t == 3) {
            snprintf(name, sizeof name, "quadratic, exact (g, H), y detrended");
        } else {
            const size_t e = (t - 4) / nh, ih = (t - 4) % nh;
            const sl_s4_info *inf = &infos[e * nh + ih];
            char rtxt[96] = "";
            if (ridges > 0)
                snprintf(rtxt, sizeof rtxt, ", ridges (s %g, %g deg off)", ridges, tilt);
            snprintf(rtxt + strlen(rtxt), sizeof rtxt - strlen(rtxt), ", thin %s",
                     sl_s4_thin_name(thin));
            if (thin == SL_S4_THIN_T) /* the last seed's fit */
                snprintf(rtxt + strlen(rtxt), sizeof rtxt - strlen(rtxt), " (nu %g, scale %.3g)",
                         inf->thin_nu, inf->thin_scale);
            snprintf(name, sizeof name, "%s%s%s", sl_s4_estimator_name(elist[e]),
                     elist[e] == SL_S4_CUMULANT && uncorrected ? " (uncorrected)" : "", rtxt);
            snprintf(hcol, sizeof hcol, "%.3g", inf->h);
            snprintf(extra, sizeof extra, "%.0f | %.0f | %zu | %.1f", inf->mean_neighbours,
                     inf->mean_effective, inf->regularised, secs[e * nh + ih] / (double)nseeds);
        }
        printf("| %s | %zu | %s | %s | %.3f | %.3f | %.3f | ", spec, n, name, hcol, bias, noise,
               t >= 4 ? m2e : NAN);
        for (size_t si = 0; si < nseeds; ++si) printf("%s%.3f", si ? " " : "", per[si]);
        printf(" | %s |\n", extra);
        fflush(stdout);
    }
    free(mean);
    free(D);
    free(Ts);
    free(M2err);
    free(secs);
    free(infos);
    free(Tz);
    free(S4);
    free(X);
    free(y);
    free(Z);
    free(G);
    free(H);
    free(U0);
    free(Vr);
    free(sv);
    free(Vt);
    sl_dist_free(marg);
    sl_dist_free(dist);
    sl_network_free(net);
    return 0;
}
