/* How much noise the polynomial control variates of recover take out of M2
 * and T (sl_detrend_cv, recover --detrend): exact scores, a planted ReLU
 * network (W as `plant --w random --seed S` draws it, a = 1, no noise).
 *
 * For each choice of labels (raw; M2: minus the linear fit in x, minus the
 * quadratic fit in x plus its Hessian; T: minus the cubic fit in z = U'x,
 * minus the quartic plus its fourth derivative) it prints the estimate's
 * standard error, the root of the summed variances of its entries over n
 * (M2 in x, T in the whitened coordinates of the quadratic M2), and T along
 * each true whitened direction with its standard error. Markdown on stdout.
 *
 * usage: bench_cv [--dist SPEC] [--n N] [--d D] [--k K] [--seed S] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <lapacke.h>

#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/rng.h"
#include "scoreloss/s4.h"
#include "scoreloss/status.h"

static void die(const char *what) {
    fprintf(stderr, "bench_cv: %s: %s\n", what, sl_last_error());
    exit(1);
}

/* Mean and standard error of the mean of the products r_j * S_j[e], summed
 * over e for the total. */
typedef struct {
    double *sum, *sq;
} acc;

int main(int argc, char **argv) {
    const char *spec = "agmm";
    size_t n = 400000, d = 10, k = 5;
    unsigned long seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dist"))
            spec = argv[i + 1];
        else if (!strcmp(argv[i], "--n"))
            n = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--d"))
            d = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--k"))
            k = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--seed"))
            seed = strtoul(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_cv [--dist SPEC] [--n N] [--d D] [--k K] [--seed S]\n");
            return 2;
        }
    }
    if (k < 1 || k > d || n < 1000) {
        fprintf(stderr, "bench_cv: need 1 <= k <= d and n >= 1000\n");
        return 2;
    }
    sl_dist *dist = NULL;
    sl_network *net = NULL;
    if (sl_dist_from_spec(spec, d, &dist)) die(spec);
    const size_t dd = d * d, k4 = k * k * k * k;
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y);
    double *r[5], *S2 = malloc(dd * sizeof *S2), *S4 = malloc(k4 * sizeof *S4);
    double *hq = malloc(dd * sizeof *hq), *dq = malloc(k4 * sizeof *dq);
    for (int v = 0; v < 5; ++v) r[v] = malloc(n * sizeof *r[v]);
    if (!X || !y || !S2 || !S4 || !hq || !dq || !r[4]) die("memory");
    if (sl_dist_sample(dist, sl_rng_derive(seed, 100), n, X)) die("sample");
    if (sl_network_alloc(k, d, SL_ACT_RELU, &net) ||
        sl_network_set_w(net, "random", sl_rng_derive(seed, 1)) || sl_network_predict(net, n, X, y))
        die("network");
    const double *W = net->W;

    /* M2 three ways: labels y, y - linear, y - quadratic (+ its Hessian). */
    memcpy(r[0], y, n * sizeof *y);
    if (sl_detrend_cv(n, d, X, y, 1, r[1], NULL) || sl_detrend_cv(n, d, X, y, 2, r[2], hq))
        die("M2 fits");
    double *m2sum = calloc(3 * dd, sizeof *m2sum), *m2sq = calloc(3 * dd, sizeof *m2sq);
    fprintf(stderr, "bench_cv: M2 over %zu samples\n", n);
    for (size_t j = 0; j < n; ++j) {
        if (sl_dist_scores(dist, X + j * d, d, NULL, NULL, S2, NULL, NULL)) die("S_2");
        for (int v = 0; v < 3; ++v)
            for (size_t e = 0; e < dd; ++e) {
                const double p = r[v][j] * S2[e];
                m2sum[v * dd + e] += p;
                m2sq[v * dd + e] += p * p;
            }
    }
    static const char *m2name[3] = {"raw labels", "minus the linear fit in x",
                                    "minus the quadratic fit in x, plus its Hessian"};
    printf("%s, d = %zu, k = %zu, n = %zu, W random (seed %lu)\n\n", spec, d, k, n, seed);
    printf("| M2 from | standard error (root of summed variances) | eigenvalues %zu and %zu |\n", k,
           k + 1);
    printf("|---|---:|---|\n");
    double *M2 = malloc(dd * sizeof *M2), *ev = malloc(d * sizeof *ev);
    for (int v = 0; v < 3; ++v) {
        double tot = 0.0;
        for (size_t e = 0; e < dd; ++e) {
            const double mean = m2sum[v * dd + e] / (double)n;
            M2[e] = mean + (v == 2 ? hq[e] : 0.0);
            tot += (m2sq[v * dd + e] / (double)n - mean * mean) / (double)n;
        }
        if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, v == 2 ? 'V' : 'N', 'U', (lapack_int)d, M2,
                          (lapack_int)d, ev))
            die("eigen");
        printf("| %s | %.4g | %.4g, %.4g |\n", m2name[v], sqrt(tot), ev[d - k], ev[d - k - 1]);
    }
    /* The whitening of the quadratic M2 (eigenvectors in M2, ascending). */
    double *U = malloc(d * k * sizeof *U), *P = malloc(d * k * sizeof *P), *lam = ev + d - k;
    for (size_t a = 0; a < d; ++a)
        for (size_t c = 0; c < k; ++c) {
            U[a * k + c] = M2[a * d + (d - 1 - c)];
            P[a * k + c] = U[a * k + c] / sqrt(fabs(lam[k - 1 - c]));
        }
    /* The true whitened directions b_i ~ |Lambda|^-1/2 U'w_i. */
    double *B = malloc(k * k * sizeof *B);
    for (size_t i = 0; i < k; ++i) {
        double nrm = 0.0;
        for (size_t c = 0; c < k; ++c) {
            double s = 0.0;
            for (size_t a = 0; a < d; ++a) s += U[a * k + c] * W[i * d + a];
            B[i * k + c] = s / sqrt(fabs(lam[k - 1 - c]));
            nrm += B[i * k + c] * B[i * k + c];
        }
        for (size_t c = 0; c < k; ++c) B[i * k + c] /= sqrt(nrm);
    }
    double *Z = malloc(n * k * sizeof *Z);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0, X, (int)d,
                U, (int)k, 0.0, Z, (int)k);
    /* T three ways: raw, minus the cubic, minus the quartic (+ D^4). */
    if (sl_detrend_cv(n, k, Z, y, 3, r[3], NULL) || sl_detrend_cv(n, k, Z, y, 4, r[4], dq))
        die("T fits");
    const int tv[3] = {0, 3, 4};
    double *tsum = calloc(3 * k4, sizeof *tsum), *tsq = calloc(3 * k4, sizeof *tsq);
    double *usum = calloc(3 * k, sizeof *usum), *usq = calloc(3 * k, sizeof *usq);
    double *along = malloc(k * sizeof *along);
    fprintf(stderr, "bench_cv: T over %zu samples\n", n);
    for (size_t j = 0; j < n; ++j) {
        if (sl_dist_scores(dist, X + j * d, k, P, NULL, NULL, NULL, S4)) die("S_4");
        for (size_t i = 0; i < k; ++i) {
            const double *b = B + i * k;
            double s = 0.0;
            for (size_t e = 0; e < k4; ++e)
                s += S4[e] * b[e / (k * k * k)] * b[(e / (k * k)) % k] * b[(e / k) % k] * b[e % k];
            along[i] = s;
        }
        for (int v = 0; v < 3; ++v) {
            const double rj = r[tv[v]][j];
            for (size_t e = 0; e < k4; ++e) {
                const double p = rj * S4[e];
                tsum[v * k4 + e] += p;
                tsq[v * k4 + e] += p * p;
            }
            for (size_t i = 0; i < k; ++i) {
                usum[v * k + i] += rj * along[i];
                usq[v * k + i] += rj * rj * along[i] * along[i];
            }
        }
    }
    static const char *tname[3] = {"raw labels", "minus the cubic fit in z",
                                   "minus the quartic fit in z, plus its fourth derivative"};
    printf("\n| T (whitened) from | standard error (root of summed variances) | T along the "
           "true whitened directions (s.e.) |\n|---|---:|---|\n");
    for (int v = 0; v < 3; ++v) {
        double tot = 0.0;
        for (size_t e = 0; e < k4; ++e) {
            const double mean = tsum[v * k4 + e] / (double)n;
            tot += (tsq[v * k4 + e] / (double)n - mean * mean) / (double)n;
        }
        printf("| %s | %.4g |", tname[v], sqrt(tot));
        for (size_t i = 0; i < k; ++i) {
            const double mean = usum[v * k + i] / (double)n;
            const double se = sqrt((usq[v * k + i] / (double)n - mean * mean) / (double)n);
            double add = 0.0;
            if (v == 2) {
                const double *b = B + i * k;
                for (size_t e = 0; e < k4; ++e) {
                    const size_t i0 = e / (k * k * k), i1 = (e / (k * k)) % k, i2 = (e / k) % k,
                                 i3 = e % k;
                    add += dq[e] * b[i0] * b[i1] * b[i2] * b[i3] /
                           sqrt(fabs(lam[k - 1 - i0] * lam[k - 1 - i1] * lam[k - 1 - i2] *
                                     lam[k - 1 - i3]));
                }
            }
            printf(" %.3g (%.2g)", mean + add, se);
        }
        printf(" |\n");
    }
    for (int v = 0; v < 5; ++v) free(r[v]);
    free(X), free(y), free(S2), free(S4), free(hq), free(dq), free(m2sum), free(m2sq), free(M2);
    free(ev), free(U), free(P), free(B), free(Z), free(tsum), free(tsq), free(usum), free(usq);
    free(along);
    sl_network_free(net);
    sl_dist_free(dist);
    return 0;
}
