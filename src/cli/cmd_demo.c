/* `scoreloss demo`: the planted world on built-in defaults, in process.
 * Samples a non-Gaussian input, plants a network, and prints moments, Stein
 * checks of the exact scores, the spectrum of M2 = E[y S_2(x)] against the
 * row span of W, and the fourth-order signal coefficients c_i. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cli/cli_util.h"
#include "core/linalg.h"
#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/rng.h"

/* The same streams as `scoreloss plant`, so the demo's data equal
 * `sample --seed S` followed by `plant --seed S`. */
enum { STREAM_W = 1, STREAM_A = 2, STREAM_NOISE = 3 };

/* Samples per accumulation block: sums are formed per fixed block and the
 * blocks added in order, so the result does not depend on the thread count.
 * Blocks are processed in rounds to bound the memory of the partial sums. */
#define DEMO_BLOCK_MAX 4096
#define DEMO_BLOCK_DOUBLES ((size_t)1 << 22)
#define DEMO_ROUND 64

static const cli_option options[] = {
    {"dist", 0, CLI_VALUE, "SPEC", "logistic", "input distribution: " CLI_DIST_SPECS},
    {"d", 0, CLI_VALUE, "D", "10", "input dimension"},
    {"k", 0, CLI_VALUE, "K", "5", "hidden units (k <= d)"},
    {"n", 0, CLI_VALUE, "N", "100000", "number of samples (at least 2)"},
    {"seed", 0, CLI_VALUE, "S", "1", "random seed"},
    {"act", 0, CLI_VALUE, "NAME", "relu",
     "activation: relu, sigmoid, tanh, erf, softplus, quadratic or cubic"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_demo = {
    "demo",
    "sample an input, plant a network and summarise moments and exact-score statistics",
    "[--dist SPEC] [--d D] [--k K] [--n N] [--seed S] [--act NAME]",
    "W is random orthonormal, a = ones, no label noise. The printout depends on the\n"
    "seed only, never on the number of threads.",
    "scoreloss demo --dist logistic --d 10 --k 5 --n 100000 --seed 1",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* Offsets of the running sums inside one accumulator array. */
typedef struct {
    size_t d, k, size;
    size_t sx, sxx, sy, syy; /* x (d), x^2 (d), y, y^2 */
    size_t s2, s2sq;         /* S_2 entries and their squares (d x d) */
    size_t xg, xgsq;         /* (x g' + I) entries and their squares (d x d) */
    size_t m2, m2sq;         /* y S_2 entries and their squares (d x d) */
    size_t t4, t4sq;         /* y S_4(u_i, u_i, u_i, u_i) and squares (k) */
} acc_layout;

static acc_layout make_layout(size_t d, size_t k) {
    acc_layout L;
    size_t o = 0, d2 = d * d;
    L.d = d;
    L.k = k;
    L.sx = o, o += d;
    L.sxx = o, o += d;
    L.sy = o, o += 1;
    L.syy = o, o += 1;
    L.s2 = o, o += d2;
    L.s2sq = o, o += d2;
    L.xg = o, o += d2;
    L.xgsq = o, o += d2;
    L.m2 = o, o += d2;
    L.m2sq = o, o += d2;
    L.t4 = o, o += k;
    L.t4sq = o, o += k;
    L.size = o;
    return L;
}

typedef struct {
    const sl_dist *dist;
    const double *X, *y, *U; /* U: k x d unit rows of W */
    size_t n, block;
    int want4;
    acc_layout L;
} demo_job;

/* Sums over the samples of block b into acc (zeroed here). G and H are
 * workspaces of block x d and block x d x d. */
static sl_status accumulate_block(const demo_job *job, size_t b, double *acc, double *G,
                                  double *H) {
    const size_t d = job->L.d, k = job->L.k;
    const acc_layout *L = &job->L;
    const size_t lo = b * job->block;
    const size_t m = job->n - lo < job->block ? job->n - lo : job->block;
    memset(acc, 0, L->size * sizeof *acc);
    sl_status st = sl_dist_grad_hess(job->dist, m, job->X + lo * d, G, H);
    if (st) return st;
    for (size_t r = 0; r < m; ++r) {
        const double *x = job->X + (lo + r) * d, *g = G + r * d, *h = H + r * d * d;
        const double y = job->y[lo + r];
        for (size_t i = 0; i < d; ++i) {
            acc[L->sx + i] += x[i];
            acc[L->sxx + i] += x[i] * x[i];
        }
        acc[L->sy] += y;
        acc[L->syy] += y * y;
        for (size_t i = 0; i < d; ++i)
            for (size_t j = 0; j < d; ++j) {
                const size_t ij = i * d + j;
                const double s2 = g[i] * g[j] + h[ij];
                const double xg = x[i] * g[j] + (i == j ? 1.0 : 0.0);
                acc[L->s2 + ij] += s2;
                acc[L->s2sq + ij] += s2 * s2;
                acc[L->xg + ij] += xg;
                acc[L->xgsq + ij] += xg * xg;
                acc[L->m2 + ij] += y * s2;
                acc[L->m2sq + ij] += y * s2 * y * s2;
            }
        if (!job->want4) continue;
        for (size_t i = 0; i < k; ++i) {
            /* The row u_i is the d x 1 matrix V of the contraction. */
            double s4;
            st = sl_dist_scores(job->dist, x, 1, job->U + i * d, NULL, NULL, NULL, &s4);
            if (st) return st;
            acc[L->t4 + i] += y * s4;
            acc[L->t4sq + i] += y * s4 * y * s4;
        }
    }
    return SL_OK;
}

/* Sums over all samples into total: blocks in parallel, added in block order. */
static int accumulate(const cli_args *args, const demo_job *job, double *total) {
    const size_t d = job->L.d, asize = job->L.size;
    const size_t nblocks = (job->n + job->block - 1) / job->block;
    size_t nthreads = 1;
#ifdef _OPENMP
    nthreads = (size_t)omp_get_max_threads();
#endif
    if (nthreads > DEMO_ROUND) nthreads = DEMO_ROUND;
    const size_t ws_each = job->block * (d + d * d);
    double *partial = cli_alloc_doubles(args, DEMO_ROUND, asize);
    double *ws = partial ? cli_alloc_doubles(args, nthreads, ws_each) : NULL;
    if (!partial || !ws) {
        free(partial);
        return CLI_EXIT_FAILURE;
    }
    memset(total, 0, asize * sizeof *total);
    sl_status status = SL_OK;
    char message[1024] = "";
    for (size_t b0 = 0; b0 < nblocks && status == SL_OK; b0 += DEMO_ROUND) {
        const size_t nr = nblocks - b0 < DEMO_ROUND ? nblocks - b0 : DEMO_ROUND;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads((int)nthreads)
#endif
        for (size_t r = 0; r < nr; ++r) {
            size_t tid = 0;
#ifdef _OPENMP
            tid = (size_t)omp_get_thread_num();
#endif
            double *G = ws + tid * ws_each, *H = G + job->block * d;
            sl_status st = accumulate_block(job, b0 + r, partial + r * asize, G, H);
            if (st != SL_OK) {
                /* Messages are per thread: keep the first for the caller. */
#ifdef _OPENMP
#pragma omp critical(sl_demo_error)
#endif
                if (status == SL_OK) {
                    status = st;
                    snprintf(message, sizeof message, "%s", sl_last_error());
                }
            }
        }
        for (size_t r = 0; r < nr && status == SL_OK; ++r)
            cblas_daxpy((int)asize, 1.0, partial + r * asize, 1, total, 1);
    }
    free(partial);
    free(ws);
    if (status != SL_OK) return cli_error(args, cli_exit_status(status), "%s", message);
    return 0;
}

/* Mean and standard error of the mean from a sum and a sum of squares. */
static void mean_se(double sum, double sumsq, size_t n, double *mean, double *se) {
    double m = sum / (double)n;
    double var = (sumsq - (double)n * m * m) / (double)(n - 1);
    *mean = m;
    *se = sqrt(var > 0.0 ? var / (double)n : 0.0);
}

/* Every result line: an indented label in a fixed column, then the text. */
#define LABEL "  %-30s "

/* The Stein check over the upper triangle of a d x d mean: the largest
 * |mean|, the standard error of that entry, and the largest |mean| / SE. */
static void stein_line(const char *label, const double *sum, const double *sumsq, size_t d,
                       size_t n) {
    double worst = -1.0, worst_se = 0.0, zmax = 0.0;
    for (size_t i = 0; i < d; ++i)
        for (size_t j = i; j < d; ++j) {
            double m, se;
            mean_se(sum[i * d + j], sumsq[i * d + j], n, &m, &se);
            if (fabs(m) > worst) worst = fabs(m), worst_se = se;
            if (se > 0.0 && fabs(m) / se > zmax) zmax = fabs(m) / se;
        }
    printf(LABEL "%.3g +- %.2g  (largest |entry| / standard error over the %zu entries: %.2f)\n",
           label, worst, worst_se, d * (d + 1) / 2, zmax);
}

/* Prints the spectrum of M2 (d x d, symmetric) and its relation to the row
 * span of the unit rows U (k x d); m2_se is the largest standard error of an
 * entry of M2. */
static int report_m2(const cli_args *args, const double *M2, double m2_se, const double *U,
                     size_t d, size_t k) {
    double *w = malloc(d * sizeof *w), *V = malloc(d * d * sizeof *V);
    size_t *order = malloc(d * sizeof *order);
    double *Uk = malloc(d * k * sizeof *Uk), *Q = malloc(k * d * sizeof *Q);
    double *C = malloc(k * k * sizeof *C), *s = malloc(k * sizeof *s);
    double *Wl = malloc(k * k * sizeof *Wl), *sw = malloc(k * sizeof *sw);
    double *tmp = malloc(d * sizeof *tmp);
    int status = 0;
    sl_status st = SL_OK;
    char label[64];
    if (!w || !V || !order || !Uk || !Q || !C || !s || !Wl || !sw || !tmp) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    if ((st = sl_sym_eigen(d, M2, w, V))) goto done;
    /* Rank by |eigenvalue|: with mixed signs of a_i E[act''] the signal can be
     * negative. Insertion sort, stable, d is small. */
    for (size_t i = 0; i < d; ++i) {
        size_t j = i;
        while (j > 0 && fabs(w[order[j - 1]]) < fabs(w[i])) order[j] = order[j - 1], --j;
        order[j] = i;
    }
    snprintf(label, sizeof label, "top %zu eigenvalues", k);
    printf(LABEL, label);
    for (size_t i = 0; i < k; ++i) printf("%s%.4g", i ? " " : "", w[order[i]]);
    printf("\n");
    printf(LABEL, "w_i' M2 w_i");
    for (size_t i = 0; i < k; ++i) {
        cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, M2, (int)d, U + i * d, 1, 0.0, tmp, 1);
        printf("%s%.4g", i ? " " : "", cblas_ddot((int)d, U + i * d, 1, tmp, 1));
    }
    printf("\n");
    if (k == d) {
        printf(LABEL "none: k = d, every direction is in the row span of W\n", "eigenvalue k+1");
        goto done;
    }
    snprintf(label, sizeof label, "eigenvalue %zu", k + 1);
    printf(LABEL "%.3g  (%.3g times eigenvalue %zu; entries of M2 have standard errors up to "
                 "%.2g)\n",
           label, w[order[k]], fabs(w[order[k]]) / fabs(w[order[k - 1]]), k, m2_se);
    /* Principal angles: singular values of Q Uk, with Q an orthonormal basis
     * of the rows of W and Uk the top-k eigenvectors. */
    for (size_t r = 0; r < d; ++r)
        for (size_t c = 0; c < k; ++c) Uk[r * k + c] = V[r * d + order[c]];
    if ((st = sl_svd(k, d, U, sw, Wl, Q))) goto done;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)k, (int)k, (int)d, 1.0, Q, (int)d,
                Uk, (int)k, 0.0, C, (int)k);
    if ((st = sl_svd(k, k, C, s, NULL, NULL))) goto done;
    double cmin = s[k - 1] < 1.0 ? s[k - 1] : 1.0;
    printf(LABEL "%.3g degrees (1 - min cosine = %.2g)\n", "largest principal angle",
           acos(cmin) * 180.0 / M_PI, 1.0 - cmin);
    printf("  (between the span of the top-%zu eigenvectors and the row span of W)\n", k);
done:
    if (st) status = cli_lib_error(args, st);
    free(w);
    free(V);
    free(order);
    free(Uk);
    free(Q);
    free(C);
    free(s);
    free(Wl);
    free(sw);
    free(tmp);
    return status;
}

/* The coefficients c_i with their standard errors and what their signs
 * allow; the sign conclusion only for smooth densities, whose exact S_4
 * carries the whole signal. */
static void report_t4(const double *sum, const double *sumsq, size_t k, size_t n, int smooth) {
    size_t neg = 0, pos = 0, weak = 0;
    char label[64];
    for (size_t i = 0; i < k; ++i) {
        double c, se;
        mean_se(sum[i], sumsq[i], n, &c, &se);
        double z = se > 0.0 ? fabs(c) / se : HUGE_VAL;
        snprintf(label, sizeof label, "c_%zu", i + 1);
        printf(LABEL "%+.4g +- %.2g  ", label, c, se);
        if (z < 3.0) {
            ++weak;
            printf("within 3 standard errors of 0\n");
        } else {
            printf("%s, %.1f standard errors from 0\n", c < 0.0 ? "negative" : "positive", z);
            c < 0.0 ? (void)++neg : (void)++pos;
        }
    }
    if (weak)
        printf("  %zu of %zu coefficients are within 3 standard errors of 0 at n = %zu: the "
               "fourth-order\n  signal of those units is weak or absent\n",
               weak, k, n);
    if (!smooth) return;
    if (neg && pos)
        printf("  signs are mixed (%zu negative, %zu positive): no single sign s of the landscape "
               "loss fits all units\n",
               neg, pos);
    else if (neg == k)
        printf("  all %zu negative: the landscape loss (METHOD.md section 4) applies with s = -1\n",
               k);
    else if (pos == k)
        printf("  all %zu positive: the landscape loss (METHOD.md section 4) applies with s = +1\n",
               k);
}

static int report(const cli_args *args, const demo_job *job, const double *acc, const char *spec,
                  uint64_t seed, const char *act_name) {
    const acc_layout *L = &job->L;
    const size_t d = L->d, k = L->k, n = job->n;
    const unsigned caps = sl_dist_caps(job->dist);
    const unsigned long long seed_ull = (unsigned long long)seed;
    const int smooth = (caps & SL_DIST_SMOOTH) != 0;
    const char *not_smooth =
        "from the a.e. scores of a density with kinks: the delta terms are "
        "missing,\n  so the theory above does not apply (METHOD.md section 5)\n";
    printf("scoreloss demo: a planted network on a non-Gaussian input, with exact scores\n\n");
    printf(LABEL "%s, d = %zu, n = %zu, seed %llu\n", "input", sl_dist_name(job->dist), d, n,
           seed_ull);
    printf(LABEL "k = %zu %s units, W random orthonormal, a = ones, no noise\n", "network", k,
           act_name);
    printf("  (the data of `scoreloss sample --dist %s --d %zu --n %zu --seed %llu -o X.csv` then\n"
           "   `scoreloss plant --input X.csv --k %zu --act %s --seed %llu -o DATA.csv --truth "
           "TRUTH.csv`)\n\n",
           spec, d, n, seed_ull, k, act_name, seed_ull);

    double mmin = HUGE_VAL, mmax = -HUGE_VAL, smin = HUGE_VAL, smax = -HUGE_VAL;
    for (size_t i = 0; i < d; ++i) {
        double m, se;
        mean_se(acc[L->sx + i], acc[L->sxx + i], n, &m, &se);
        double sd = se * sqrt((double)n);
        mmin = fmin(mmin, m);
        mmax = fmax(mmax, m);
        smin = fmin(smin, sd);
        smax = fmax(smax, sd);
    }
    double my, sey;
    mean_se(acc[L->sy], acc[L->syy], n, &my, &sey);
    printf("moments\n");
    printf(LABEL "%.4g to %.4g\n", "mean of x_i, range over i", mmin, mmax);
    printf(LABEL "%.4g to %.4g\n", "std of x_i, range over i", smin, smax);
    printf(LABEL "mean %.4g, std %.4g\n\n", "y", my, sey * sqrt((double)n));

    printf("Stein checks of the exact scores (each 0 up to Monte Carlo error)\n");
    stein_line("max_ij |E[S_2]_ij|", acc + L->s2, acc + L->s2sq, d, n);
    stein_line("max_ij |(E[x g'] + I)_ij|", acc + L->xg, acc + L->xgsq, d, n);
    if (!smooth)
        printf("  '%s' is not smooth: S_2 from the a.e. g and H misses the delta terms at the "
               "kinks,\n  so E[S_2] = 0 need not hold; E[x g'] = -I still does\n",
               sl_dist_name(job->dist));
    printf("\n");

    printf("second-order moment M2 = (1/n) sum_j y_j S_2(x_j)\n"
           "  (theory: W' D W with D_i = a_i E[act''(w_i . x)], so rank k inside the row span of "
           "W)\n");
    double *M2 = malloc(d * d * sizeof *M2);
    if (!M2) return cli_error(args, CLI_EXIT_FAILURE, "out of memory");
    double m2_se = 0.0;
    for (size_t i = 0; i < d; ++i)
        for (size_t j = 0; j < d; ++j) {
            double m, se;
            mean_se(acc[L->m2 + i * d + j], acc[L->m2sq + i * d + j], n, &m, &se);
            m2_se = fmax(m2_se, se);
            M2[i * d + j] = 0.5 * (acc[L->m2 + i * d + j] + acc[L->m2 + j * d + i]) / (double)n;
        }
    int status = report_m2(args, M2, m2_se, job->U, d, k);
    free(M2);
    if (status) return status;
    if (!smooth) printf("  %s", not_smooth);
    printf("\n");

    printf("fourth-order signal c_i = (1/n) sum_j y_j S_4(x_j)(w_i, w_i, w_i, w_i), unit w_i\n"
           "  (theory: c_i = a_i E[act''''(w_i . x)]; the loss needs them away from 0)\n");
    if (job->want4)
        report_t4(acc + L->t4, acc + L->t4sq, k, n, smooth);
    else
        printf("  not available: '%s' has no exact fourth-order score\n", sl_dist_name(job->dist));
    if (!smooth) printf("  %s", not_smooth);
    return 0;
}

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_demo, argc, argv, &args);
    if (status != CLI_RUN) return status;

    size_t d = 10, k = 5, n = 100000;
    uint64_t seed = 1;
    if ((status = cli_size(&args, "d", 1, SIZE_MAX, &d)) ||
        (status = cli_size(&args, "k", 1, SIZE_MAX, &k)) ||
        (status = cli_size(&args, "n", 2, SIZE_MAX, &n)) ||
        (status = cli_seed(&args, "seed", &seed)))
        return status;
    if (k > d) return cli_option_error(&args, "k", "k = %zu exceeds d = %zu (need k <= d)", k, d);
    const char *spec = cli_value(&args, "dist");
    sl_act act;
    sl_status st = sl_act_from_name(cli_value(&args, "act"), &act);
    if (st) return cli_option_lib_error(&args, "act", st);

    sl_dist *dist = NULL;
    sl_network *net = NULL;
    double *X = NULL, *y = NULL, *U = NULL, *acc = NULL;
    if ((st = sl_dist_from_spec(spec, d, &dist))) {
        status = cli_option_lib_error(&args, "dist", st);
        goto done;
    }
    const unsigned caps = sl_dist_caps(dist), need = SL_DIST_GRAD | SL_DIST_HESS;
    if ((caps & need) != need) {
        status = cli_option_error(&args, "dist",
                                  "distribution '%s' is sample-only: the demo needs its exact "
                                  "gradient and Hessian",
                                  sl_dist_name(dist));
        goto done;
    }
    if (!(X = cli_alloc_doubles(&args, n, d)) || !(y = cli_alloc_doubles(&args, n, 1)) ||
        !(U = cli_alloc_doubles(&args, k, d))) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((st = sl_dist_sample(dist, seed, n, X)) || (st = sl_network_alloc(k, d, act, &net)) ||
        (st = sl_network_set_w(net, "orthonormal", sl_rng_derive(seed, STREAM_W))) ||
        (st = sl_network_set_a(net, "ones", sl_rng_derive(seed, STREAM_A))) ||
        (st = sl_network_label(net, n, X, 0.0, sl_rng_derive(seed, STREAM_NOISE), y))) {
        status = cli_lib_error(&args, st);
        goto done;
    }
    /* Unit rows: T_4(u_i, u_i, u_i, u_i) = c_i needs unit directions. */
    for (size_t i = 0; i < k; ++i) {
        double norm = cblas_dnrm2((int)d, net->W + i * d, 1);
        for (size_t j = 0; j < d; ++j) U[i * d + j] = net->W[i * d + j] / norm;
    }
    demo_job job = {dist, X, y, U, n, 0, (caps & SL_DIST_SCORE4) != 0, make_layout(d, k)};
    job.block = DEMO_BLOCK_DOUBLES / (d * d);
    if (job.block > DEMO_BLOCK_MAX) job.block = DEMO_BLOCK_MAX;
    if (job.block < 1) job.block = 1;
    if (!(acc = cli_alloc_doubles(&args, 1, job.L.size))) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((status = accumulate(&args, &job, acc))) goto done;
    status = report(&args, &job, acc, spec, seed, sl_act_name(act));
done:
    sl_dist_free(dist);
    sl_network_free(net);
    free(X);
    free(y);
    free(U);
    free(acc);
    return status;
}
