/* Estimated fourth-order scores of the projected marginal (s4.h).
 *
 * For each query point (every sample), the Gaussian-kernel-weighted raw
 * moments of the offsets v = (zeta_i - zeta_j) / h to the reference samples
 * within cutoff * h (a k-d tree over the standardised reference set) are
 * summed up to order 4: the 1 + k + 15 + 35 + 70 = 126 distinct monomials
 * at k = 5, each neighbour's formed one from another by one multiply.
 *
 * How, for speed (this is most of the recovery's time at large n): the
 * queries go in the leaf order of a k-d tree over them, in runs of QRUN
 * near each other; one tree query per run gives the candidates, the
 * reference samples within reach of the run's bounding box
 * (block_candidates); each query's neighbours are the candidates within
 * cutoff * h, their squared distances summed as the tree sums them, so the
 * neighbours and their weights are exactly a radius query's
 * (select_within); the monomials are summed in vector lanes
 * (accumulate_lanes). Measured at n = 10^6, d = 10, k = 5 (9 10^5 queries,
 * 10^4 references, 1559 neighbours each), against one radius query and
 * one scalar pass over the monomials per query, back to back on a loaded
 * machine (load average 9 to 11 on 2 cores): the S_4 phase of recover
 * 300 s -> 85 s wall, the whole recover 364 s -> 146 s wall and 179 s ->
 * 72 s of CPU, its output the same to 4e-15. tests/test_s4.c checks T
 * against a direct transcription.
 *
 * The estimator maps the moments to (g, H, G3, G4) (or directly to S_4),
 * and the sample's y_j (g^4 + 6 g g H + 3 H H + 4 g G3 + G4), not yet
 * symmetrised, is added to its block's k^4 partial sum; the symmetrisation
 * (the average over the 24 placements) is applied once at the end, which
 * turns each product into the sum over its distinct placements with the
 * weights of METHOD.md section 2. No per-sample k^4 tensor is kept.
 *
 * The cumulant map, in units of h (u = h v, so g_v = h g, H_v = h^2 H,
 * G3_v = h^3 G3, G4_v = h^4 G4). The tilted local density is
 *   q(v) ~ exp(g'v - v'(I - H)v / 2 + G3 v^3 / 6 + G4 v^4 / 24),
 * a Gaussian N(m, S), S = (I - H)^-1, m = S g, perturbed by
 * f(v) = G3 v^3 / 6 + G4 v^4 / 24. To first order in f its cumulant
 * generating function is K(t) = t'm + t'S t / 2 + F(m + S t) - F(m) with
 * F(mu) = E_{N(mu, S)} f, so the cumulants are
 *   kappa1 = m + S grad F(m),   grad F = G3[m,m]/2 + G3[S]/2 + G4[m,m,m]/6
 *                                        + G4[m,S]/2
 *   kappa2 = S + S B S,         B = G3[m] + G4[m,m]/2 + G4[S]/2
 *   kappa3 = S^(x)3 (G3 + G4[m]),   kappa4 = S^(x)4 G4
 * (G3[m] contracts one slot with m, G3[S] two slots with S). The map back:
 * G4 = S^-(x)4 kappa4, G3 = S^-(x)3 kappa3 - G4[m], and with the
 * correction (options.corrected) S and m solved from kappa2 and kappa1 by
 * fixed-point steps from S = kappa2, m = kappa1 (without it: llsfe's map,
 * whose g is biased by O(h^2) G3 terms). Then g = S^-1 m, H = I - S^-1.
 * Measured: the correction's fixed-point steps diverge where the
 * neighbourhood is thin (G4[m,m,m] is cubic in the mean offset): d = 10,
 * k = 5, n = 10^4, gauss, the corrected T had relative errors of 10^6 to
 * 10^12 over three seeds, so it is off by default (options.corrected).
 *
 * Which estimator (measured, relative Frobenius error of T against the
 * exact T of the same sample; scripts/s4_tables.sh has the d = 10 table):
 * k = 2, n = 10^4, product logistic, labels relu(z1 + z2/2) + relu(z2 -
 * 0.4 z1), h = 0.43, raw labels: kde 4.09, cumulant 9.29 (1e11 and more at
 * k = 5), quadratic (k-dimensional llsfe) 6.39, the locally quadratic T
 * from the exact g and H 3.02; on N(0, I): kde 1.28, cumulant 15.9. With
 * the labels detrended (options.detrend, below): kde 1.60, cumulant 1.79,
 * quadratic 1.44; N(0, I): kde 0.53, cumulant 1.53 (against the exact T
 * with raw labels, whose own polynomial-part noise is in these numbers).
 * The cumulant map divides noisy local fourth cumulants by the fourth power
 * of a noisy local covariance and is unstable in k = 5; kde's estimate is
 * linear in the local moments. kde is the default.
 *
 * The kde estimator needs only the raw moments about the query: grad^4 of
 * the kernel is K(v) He_4(v) / h^4 with He_4(v) = v^4 - 6 sym(v v I)
 * + 3 sym(I I), so S_4 = (m4 - 6 sym(m2 (x) I) + 3 sym(I (x) I)) / h^4 and
 * S_2 = (m2 - I) / h^2.
 *
 * Thin neighbourhoods (fewer than min_neighbours effective neighbours, 10
 * to 15% of the points at d = 10, k = 5, n = 10^5 with 10^4 references)
 * take the scores of a global model (options.thin). The standard Gaussian's
 * S_4 grows like |z|^4 where a heavy-tailed density's decays; nothing at
 * all is wrong where the tails are Gaussian. The default fits an isotropic
 * Student t to the standardised reference samples (fit_t; nu from a grid
 * that ends at the Gaussian) and takes its exact scores there (thin_model).
 * Measured, bench_s4, d = 10, k = 5, n = 10^5, 3 seeds, relative bias of
 * T with the ridge control variates at the truth (s = 0.05), gauss rule /
 * zero / t: gauss 0.005 / 0.006 / 0.005, logistic 0.015 / 0.007 / 0.006,
 * student 0.48 / 0.012 / 0.013, agmm 0.033 / 0.028 / 0.029; without the
 * ridges (the first estimate's T): 0.75 / 1.09 / 0.73, 3.4 / 1.9 / 1.7,
 * 102 / 3.2 / 3.1, 1.07 / 1.04 / 1.01. The fitted nu: 400, 25, 5 (Student's
 * own) and 50.
 *
 * Truncation: the fourth moments weight the kernel's tail; in k = 5 the
 * share of E|v|^4 K beyond c h is P(chi2_9 > c^2): 0.016 at c = 4.5, 0.003
 * at c = 5.
 *
 * Determinism: queries in the query tree's leaf order, in blocks of
 * QBLOCK, each block's partial sums kept and added in block order; within
 * a query, the lanes' sums added in a fixed order. */
#include "scoreloss/s4.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>
#include <lapacke.h>

#include "core/linalg.h"
#include "score/score_internal.h"
#include "scoreloss/rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS's own cblas.h declares these; it cannot be included beside GSL. */
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

#define QBLOCK 256     /* queries per independently summed block */
#define QRUN 128       /* queries sharing one candidate list (block_candidates) */
#define MAX_K 8        /* the moment tables are sized for k <= MAX_K */
#define MAX_MONO 495   /* monomials of order <= 4 in MAX_K variables: C(MAX_K + 4, 4) */
#define DEFAULT_BW 1.0 /* h = DEFAULT_BW nref^(-1/(k+8)) in standardised units */
#define DEFAULT_CUTOFF 4.0
#define DEFAULT_REFERENCE 10000
#define DEFAULT_MIN_NEIGHBOURS 30

static const char *const estimator_names[] = {"cumulant", "kde", "quadratic"};
static const char *const thin_names[] = {"gauss", "zero", "t"};

/* *out = the index of name among the count names, or an error naming what
 * was expected. */
static sl_status name_index(const char *const *names, int count, const char *name, const char *what,
                            const char *expected, int *out) {
    for (int i = 0; name && i < count; ++i)
        if (strcmp(name, names[i]) == 0) {
            *out = i;
            return SL_OK;
        }
    return sl_error(SL_EINVAL, "unknown %s '%s' (expected %s)", what, name ? name : "(null)",
                    expected);
}

sl_status sl_s4_estimator_from_name(const char *name, sl_s4_estimator *out) {
    int i = 0;
    sl_status st =
        name_index(estimator_names, 3, name, "S_4 estimator", "cumulant, kde or quadratic", &i);
    if (!st) *out = (sl_s4_estimator)i;
    return st;
}

const char *sl_s4_estimator_name(sl_s4_estimator e) {
    return (int)e >= 0 && (int)e < 3 ? estimator_names[e] : "unknown";
}

sl_status sl_s4_thin_from_name(const char *name, sl_s4_thin *out) {
    int i = 0;
    sl_status st =
        name_index(thin_names, 3, name, "rule for thin neighbourhoods", "gauss, zero or t", &i);
    if (!st) *out = (sl_s4_thin)i;
    return st;
}

const char *sl_s4_thin_name(sl_s4_thin t) {
    return (int)t >= 0 && (int)t < 3 ? thin_names[t] : "unknown";
}

void sl_s4_thin_describe(sl_s4_thin t, const sl_s4_info *info, char *buf, size_t len) {
    if (!buf || len == 0) return;
    if (t != SL_S4_THIN_T || !info)
        snprintf(buf, len, "%s", sl_s4_thin_name(t));
    else if (isfinite(info->thin_nu))
        snprintf(buf, len, "t, nu %g, scale %.3g", info->thin_nu, info->thin_scale);
    else
        snprintf(buf, len, "the Gaussian, scale %.3g", info->thin_scale);
}

void sl_s4_options_default(sl_s4_options *opt) {
    if (!opt) return;
    memset(opt, 0, sizeof *opt);
    opt->estimator = SL_S4_KDE;
    opt->h = 0.0;
    opt->bw_const = DEFAULT_BW;
    opt->cutoff = DEFAULT_CUTOFF;
    opt->reference = DEFAULT_REFERENCE;
    opt->detrend = 3;
    opt->corrected = 0; /* the correction diverges on thin neighbourhoods: see the top */
    opt->thin = SL_S4_THIN_T;
    opt->min_neighbours = DEFAULT_MIN_NEIGHBOURS;
    opt->seed = 1;
    opt->cv_scale = 0.2;
}

/* ---- small tensor algebra ------------------------------------------------------ */

/* out = T contracted with A (k x m) in every slot; ws holds 2 max(k,m)^4. */
static void contract4(size_t k, const double *T, size_t m, const double *A, double *out,
                      double *ws) {
    /* Four mode products, each moving the contracted slot to the back:
     * X[q r s | p] -> Y[r s a | q] ... so the last pass gives [a b c e]. */
    const double *src = T;
    size_t dims[4] = {k, k, k, k};
    double *bufs[2] = {ws,
                       ws + (k > m ? k : m) * (k > m ? k : m) * (k > m ? k : m) * (k > m ? k : m)};
    for (int pass = 0; pass < 4; ++pass) {
        double *dst = pass == 3 ? out : bufs[pass % 2];
        const size_t n0 = dims[0], rest = dims[1] * dims[2] * dims[3];
        /* dst[rest][a] = sum_p src[p][rest] A[p][a] */
        for (size_t r = 0; r < rest; ++r)
            for (size_t a = 0; a < m; ++a) {
                double s = 0.0;
                for (size_t p = 0; p < n0; ++p) s += src[p * rest + r] * A[p * m + a];
                dst[r * m + a] = s;
            }
        dims[0] = dims[1];
        dims[1] = dims[2];
        dims[2] = dims[3];
        dims[3] = m;
        src = dst;
    }
}

void sl_s4_contract(size_t k, const double *T, size_t m, const double *A, double *out) {
    const size_t big = k > m ? k : m;
    double *ws = malloc(2 * big * big * big * big * sizeof *ws);
    if (!ws) return;
    contract4(k, T, m, A, out, ws);
    free(ws);
}

/* The average of X (k^4) over the 24 permutations of its slots, in place. */
static void symmetrise4(size_t k, double *X) {
    const size_t k2 = k * k, k3 = k2 * k, k4 = k3 * k;
    double *Y = malloc(k4 * sizeof *Y);
    if (!Y) return;
    static const int perms[24][4] = {
        {0, 1, 2, 3}, {0, 1, 3, 2}, {0, 2, 1, 3}, {0, 2, 3, 1}, {0, 3, 1, 2}, {0, 3, 2, 1},
        {1, 0, 2, 3}, {1, 0, 3, 2}, {1, 2, 0, 3}, {1, 2, 3, 0}, {1, 3, 0, 2}, {1, 3, 2, 0},
        {2, 0, 1, 3}, {2, 0, 3, 1}, {2, 1, 0, 3}, {2, 1, 3, 0}, {2, 3, 0, 1}, {2, 3, 1, 0},
        {3, 0, 1, 2}, {3, 0, 2, 1}, {3, 1, 0, 2}, {3, 1, 2, 0}, {3, 2, 0, 1}, {3, 2, 1, 0}};
    const size_t stride[4] = {k3, k2, k, 1};
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b)
            for (size_t c = 0; c < k; ++c)
                for (size_t e = 0; e < k; ++e) {
                    const size_t i[4] = {a, b, c, e};
                    double s = 0.0;
                    for (int p = 0; p < 24; ++p)
                        s += X[i[perms[p][0]] * stride[0] + i[perms[p][1]] * stride[1] +
                               i[perms[p][2]] * stride[2] + i[perms[p][3]] * stride[3]];
                    Y[a * k3 + b * k2 + c * k + e] = s / 24.0;
                }
    memcpy(X, Y, k4 * sizeof *X);
    free(Y);
}

/* ---- the per-query local fit ----------------------------------------------------- */

typedef struct s4_ctx {
    const sl_s4_options *opt;
    size_t n, k, nref;
    const double *zeta;   /* n x k standardised samples */
    const size_t *refpos; /* n: position in the reference set, or SIZE_MAX */
    const sl_kdtree *tree;
    const double *rows; /* the tree's copy of the reference rows */
    const size_t *tord; /* the reference sample at each of the tree's rows */
    double h;
    double thin_nu, thin_s2; /* the thin rule's model (thin_model) */
    /* Unique-monomial positions of the full index tuples. */
    size_t n2, n3, n4;
    size_t idx2[MAX_K * MAX_K], idx3[MAX_K * MAX_K * MAX_K], idx4[MAX_K * MAX_K * MAX_K * MAX_K];
    /* The raw sums' layout 1, v (k), then the unique monomials of orders 2,
     * 3, 4 (nS in all): monomial m > 0 is monomial par[m] times v[var[m]]. */
    size_t nS;
    unsigned short par[MAX_MONO], var[MAX_MONO];
} s4_ctx;

static void build_tables(s4_ctx *c) {
    const size_t k = c->k, k2 = k * k, k3 = k2 * k;
    size_t i2 = 0, i3 = 0, i4 = 0;
    /* Where orders 2, 3 and 4 start in the raw sums. */
    const size_t o2 = 1 + k, o3 = o2 + k * (k + 1) / 2, o4 = o3 + k * (k + 1) * (k + 2) / 6;
    for (size_t a = 0; a < k; ++a) {
        c->par[1 + a] = 0;
        c->var[1 + a] = (unsigned short)a;
    }
    /* The enumeration order: a <= b <= c <= e. */
    for (size_t a = 0; a < k; ++a)
        for (size_t b = a; b < k; ++b) {
            const size_t p2 = i2++;
            c->idx2[a * k + b] = c->idx2[b * k + a] = p2;
            c->par[o2 + p2] = (unsigned short)(1 + a);
            c->var[o2 + p2] = (unsigned short)b;
            for (size_t e3 = b; e3 < k; ++e3) {
                const size_t p3 = i3++;
                c->par[o3 + p3] = (unsigned short)(o2 + p2);
                c->var[o3 + p3] = (unsigned short)e3;
                const size_t t3[3] = {a, b, e3};
                /* every permutation of (a, b, e3) */
                static const int P3[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                             {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
                for (int p = 0; p < 6; ++p)
                    c->idx3[t3[P3[p][0]] * k2 + t3[P3[p][1]] * k + t3[P3[p][2]]] = p3;
                for (size_t e4 = e3; e4 < k; ++e4) {
                    const size_t p4 = i4++;
                    c->par[o4 + p4] = (unsigned short)(o3 + p3);
                    c->var[o4 + p4] = (unsigned short)e4;
                    const size_t t4[4] = {a, b, e3, e4};
                    for (size_t x = 0; x < 4; ++x)
                        for (size_t y = 0; y < 4; ++y)
                            for (size_t z = 0; z < 4; ++z)
                                for (size_t w = 0; w < 4; ++w)
                                    if (x != y && x != z && x != w && y != z && y != w && z != w)
                                        c->idx4[t4[x] * k3 + t4[y] * k2 + t4[z] * k + t4[w]] = p4;
                }
            }
        }
    c->n2 = i2;
    c->n3 = i3;
    c->n4 = i4;
    c->nS = o4 + i4;
}

/* Failure codes of the per-item work (s4_parallel). */
enum { FAIL_NOMEM = 1, FAIL_QUERY = 2 };

/* Neighbours are summed lane by lane, LANES lanes, two groups of LANES
 * neighbours at a time (accumulate_lanes); neighbour lists are padded to a
 * multiple of GROUP. */
#define LANES 8
#define GROUP (2 * LANES)

/* Per-thread workspace. */
typedef struct s4_work {
    sl_kdtree_work *kw;
    double *S;                       /* 1 + k + n2 + n3 + n4 raw sums */
    double *m1, *m2, *m3, *m4;       /* full normalised moments */
    double *c2, *c3, *k4;            /* central moments and cumulants */
    double *g, *H, *G3, *G4;         /* the fit */
    double *Si, *Sg, *L, *t4a, *t4b; /* scratch */
    double *B, *gF;
    double *acc;  /* (nS + 1) x LANES: the lanes' sums (accumulate_lanes) */
    double *mono; /* nS x GROUP: monomials (accumulate_lanes without vector types) */
    /* The candidates of a run of queries and one query's neighbours, cap
     * long (a multiple of GROUP; the arrays of k rows have row stride cap). */
    size_t cap;
    double *ux;   /* k x cap: candidate coordinates, coordinate-major */
    size_t *uref; /* the candidates' reference indices */
    double *dd;   /* their squared distances to the query */
    double *nv;   /* k x cap: the neighbours' offsets v = (x - q) / h, zero-padded */
    double *nw;   /* their kernel weights, zero-padded */
} s4_work;

static void s4_work_free(s4_work *w) {
    if (!w) return;
    sl_kdtree_work_free(w->kw);
    free(w->S);
    free(w->acc);
    free(w->ux);
    free(w->uref);
    free(w->dd);
    free(w->nv);
    free(w->nw);
    free(w);
}

/* Room for `need` candidates or neighbours plus a GROUP of padding; the
 * old contents are not kept. Returns 0 when out of memory. */
static int s4_work_reserve(s4_work *w, size_t k, size_t need) {
    if (need + GROUP <= w->cap) return 1;
    size_t cap = need + need / 2 + GROUP;
    cap += GROUP - cap % GROUP;
    free(w->ux);
    free(w->uref);
    free(w->dd);
    free(w->nv);
    free(w->nw);
    w->ux = malloc(k * cap * sizeof *w->ux);
    w->uref = malloc(cap * sizeof *w->uref);
    w->dd = malloc(cap * sizeof *w->dd);
    w->nv = malloc(k * cap * sizeof *w->nv);
    w->nw = malloc(cap * sizeof *w->nw);
    w->cap = cap;
    if (w->ux && w->uref && w->dd && w->nv && w->nw) return 1;
    w->cap = 0;
    return 0;
}

static s4_work *s4_work_alloc(const s4_ctx *c) {
    const size_t k = c->k, k2 = k * k, k3 = k2 * k, k4 = k3 * k;
    s4_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    const size_t nS = c->nS;
    const size_t total =
        nS + k + k2 + k3 + k4 + k2 + k3 + k4 + k + k2 + k3 + k4 + 3 * k2 + 2 * k4 + k2 + k;
    w->S = calloc(total, sizeof *w->S);
    /* acc and mono, aligned for the lane vectors (the size is a multiple of
     * the alignment, as aligned_alloc requires) */
    w->acc = aligned_alloc(LANES * sizeof(double), (3 * nS + 1) * LANES * sizeof(double));
    w->mono = w->acc ? w->acc + (nS + 1) * LANES : NULL;
    if (!w->S || !w->acc || !s4_work_reserve(w, k, 1024) ||
        sl_kdtree_work_alloc(c->tree, 1024, &w->kw) != SL_OK) {
        s4_work_free(w);
        return NULL;
    }
    double *p = w->S + nS;
    w->m1 = p, p += k;
    w->m2 = p, p += k2;
    w->m3 = p, p += k3;
    w->m4 = p, p += k4;
    w->c2 = p, p += k2;
    w->c3 = p, p += k3;
    w->k4 = p, p += k4;
    w->g = p, p += k;
    w->H = p, p += k2;
    w->G3 = p, p += k3;
    w->G4 = p, p += k4;
    w->Si = p, p += k2;
    w->Sg = p, p += k2;
    w->L = p, p += k2;
    w->t4a = p, p += k4;
    w->t4b = p, p += k4;
    w->B = p, p += k2;
    w->gF = p;
    return w;
}

/* select_within and accumulate_lanes are plain C (with GNU vector types
 * where the compiler has them) that the compiler turns into vector code; on
 * x86-64 they are also built for AVX2 and AVX-512, the version picked at
 * load time by what the CPU has. Nothing is reassociated, and GCC in ISO C
 * mode fuses no multiply-add, so every version gives the same bits (checked:
 * the plain-array accumulate_lanes too). */
#if defined(__GNUC__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef VECTOR_CLONES
#define VECTOR_CLONES
#endif

/* The index of the lowest set bit of mask != 0. */
static inline unsigned lowest_set(unsigned mask) {
#if defined(__GNUC__)
    return (unsigned)__builtin_ctz(mask);
#else
    unsigned p = 0;
    while (!(mask & 1u)) mask >>= 1, ++p;
    return p;
#endif
}

/* Squared distances from q to the U candidates (ux: k x stride) into dd,
 * each summed over the coordinates in order as the k-d tree sums them, so
 * the neighbours found are exactly the tree's. The m candidates within r2,
 * other than the reference sample `self`, go to nv (k x stride, their
 * offsets (x - q) ih) and nd2 (their squared distances), in candidate
 * order. Returns m. */
VECTOR_CLONES static size_t select_within(size_t k, size_t U, size_t stride,
                                          const double *restrict ux, const size_t *restrict uref,
                                          const double *restrict q, double r2, size_t self,
                                          double ih, double *restrict dd, double *restrict nv,
                                          double *restrict nd2) {
    for (size_t i = 0; i < U; ++i) dd[i] = 0.0;
    for (size_t a = 0; a < k; ++a) {
        const double qa = q[a], *restrict col = ux + a * stride;
        for (size_t i = 0; i < U; ++i) {
            const double diff = col[i] - qa;
            dd[i] += diff * diff;
        }
    }
    /* Eight candidates at a time: they come leaf by leaf, so whole runs of
     * them are out of (or within) reach together. */
    size_t m = 0;
    for (size_t i0 = 0; i0 < U; i0 += 8) {
        const unsigned len = U - i0 < 8 ? (unsigned)(U - i0) : 8u;
        unsigned mask = 0;
        for (unsigned l = 0; l < len; ++l)
            mask |= (unsigned)((dd[i0 + l] <= r2) & (uref[i0 + l] != self)) << l;
        for (; mask; mask &= mask - 1) {
            const size_t i = i0 + lowest_set(mask);
            nd2[m] = dd[i];
            for (size_t a = 0; a < k; ++a) nv[a * stride + m] = (ux[a * stride + i] - q[a]) * ih;
            ++m;
        }
    }
    return m;
}

/* LANES doubles at once: a GNU vector (the compiler's vector code on every
 * target, no intrinsics), else a plain array the loops below go over. */
#if defined(__GNUC__)
#define LANE_VECTORS 1
typedef double lanes_t __attribute__((vector_size(LANES * sizeof(double))));
#endif

/* Sums of w v^(x)r over `count` neighbours, r = 0..4, in the layout of
 * c->par (nS sums) into S; returns the sum of w^2. nv (k x stride) and nw
 * hold the offsets and weights, zero past count up to a multiple of GROUP
 * (padding adds exact zeros). Each of the LANES lanes of acc ((nS + 1) x
 * LANES, the last row for w^2; aligned to LANES doubles) sums every
 * LANES-th neighbour, two groups of LANES neighbours at a time, the two
 * terms added together first (half the traffic to acc); the lanes are
 * added in order at the end. The monomials are formed as the nested loops
 * a <= b <= c <= e form them, each the product of one of lower order and a
 * coordinate. Without vector types, the same arithmetic on plain arrays
 * (mono: nS x GROUP). */
VECTOR_CLONES static double accumulate_lanes(size_t nS, const unsigned short *restrict par,
                                             const unsigned short *restrict var, size_t k,
                                             size_t count, size_t stride, const double *restrict nv,
                                             const double *restrict nw, double *restrict acc,
                                             double *restrict mono, double *restrict S) {
    memset(acc, 0, (nS + 1) * LANES * sizeof *acc);
#ifdef LANE_VECTORS
    /* The nested loops keep each monomial's factor in a register; the
     * order-4 sums, the bulk, cost two multiplies and two adds per two
     * groups. */
    lanes_t *A = (lanes_t *)(void *)acc;
    (void)mono;
    (void)par;
    (void)var;
    const size_t o2 = 1 + k, o3 = o2 + k * (k + 1) / 2, o4 = o3 + k * (k + 1) * (k + 2) / 6;
    for (size_t t = 0; t < count; t += GROUP) {
        lanes_t v[MAX_K], u[MAX_K], w0, w1;
        memcpy(&w0, nw + t, sizeof w0);
        memcpy(&w1, nw + t + LANES, sizeof w1);
        for (size_t a = 0; a < k; ++a) {
            memcpy(&v[a], nv + a * stride + t, sizeof w0);
            memcpy(&u[a], nv + a * stride + t + LANES, sizeof w0);
        }
        A[0] += w0 + w1;
        A[nS] += w0 * w0 + w1 * w1;
        size_t i2 = o2, i3 = o3, i4 = o4;
        for (size_t a = 0; a < k; ++a) {
            const lanes_t wa = w0 * v[a], xa = w1 * u[a];
            A[1 + a] += wa + xa;
            for (size_t b = a; b < k; ++b) {
                const lanes_t wab = wa * v[b], xab = xa * u[b];
                A[i2++] += wab + xab;
                for (size_t e3 = b; e3 < k; ++e3) {
                    const lanes_t wabc = wab * v[e3], xabc = xab * u[e3];
                    A[i3++] += wabc + xabc;
                    for (size_t e4 = e3; e4 < k; ++e4) A[i4++] += wabc * v[e4] + xabc * u[e4];
                }
            }
        }
    }
#else
    (void)k;
    for (size_t t = 0; t < count; t += GROUP) {
        for (size_t l = 0; l < GROUP; ++l) mono[l] = nw[t + l];
        for (size_t m = 1; m < nS; ++m)
            for (size_t l = 0; l < GROUP; ++l)
                mono[m * GROUP + l] = mono[par[m] * GROUP + l] * nv[var[m] * stride + t + l];
        for (size_t l = 0; l < LANES; ++l) {
            const double w0 = mono[l], w1 = mono[LANES + l];
            acc[nS * LANES + l] += w0 * w0 + w1 * w1;
        }
        for (size_t m = 0; m < nS; ++m)
            for (size_t l = 0; l < LANES; ++l)
                acc[m * LANES + l] += mono[m * GROUP + l] + mono[m * GROUP + LANES + l];
    }
#endif
    for (size_t i = 0; i < nS; ++i) {
        double s = 0.0;
        for (size_t l = 0; l < LANES; ++l) s += acc[i * LANES + l];
        S[i] = s;
    }
    double ww2 = 0.0;
    for (size_t l = 0; l < LANES; ++l) ww2 += acc[nS * LANES + l];
    return ww2;
}

/* Zeroes the neighbour lists from position m up to the next multiple of
 * GROUP. */
static void pad_neighbours(const s4_ctx *c, s4_work *w, size_t m) {
    for (size_t t = m; t % GROUP != 0; ++t) {
        w->nw[t] = 0.0;
        for (size_t a = 0; a < c->k; ++a) w->nv[a * w->cap + t] = 0.0;
    }
}

/* The kernel-weighted raw moments at q (into w->S, the sum of the squared
 * weights into *wsum2) of the m neighbours select_within chose (their
 * squared distances in w->nw, turned into weights here). */
static void moments_selected(const s4_ctx *c, s4_work *w, size_t m, double *wsum2) {
    const double ih = 1.0 / c->h, ih2h = 0.5 * ih * ih;
    for (size_t t = 0; t < m; ++t) w->nw[t] = exp(-w->nw[t] * ih2h);
    pad_neighbours(c, w, m);
    *wsum2 = accumulate_lanes(c->nS, c->par, c->var, c->k, m, w->cap, w->nv, w->nw, w->acc, w->mono,
                              w->S);
}

/* The same from the result of a tree query (rows of c->rows, squared
 * distances d2). Returns 0 when out of memory. */
static int moments_rows(const s4_ctx *c, s4_work *w, const double *q, size_t count,
                        const size_t *rows, const double *d2, double *wsum2) {
    const size_t k = c->k;
    if (!s4_work_reserve(w, k, count)) return 0;
    const size_t cap = w->cap;
    const double ih = 1.0 / c->h, ih2h = 0.5 * ih * ih;
    for (size_t t = 0; t < count; ++t) {
        const double *x = c->rows + rows[t] * k;
        w->nw[t] = exp(-d2[t] * ih2h);
        for (size_t a = 0; a < k; ++a) w->nv[a * cap + t] = (x[a] - q[a]) * ih;
    }
    pad_neighbours(c, w, count);
    *wsum2 =
        accumulate_lanes(c->nS, c->par, c->var, k, count, cap, w->nv, w->nw, w->acc, w->mono, w->S);
    return 1;
}

/* The candidates of the queries order[lo..hi) into w->ux and w->uref (*U
 * of them): the reference samples within radius of the queries' bounding
 * box, a superset of every query's neighbourhood. The tree gives those
 * within radius plus the box's half-diagonal of its centre; the ones
 * farther than radius from the box are dropped (the margins of 1e-9 cover
 * the rounding of the distances). Returns 0, FAIL_NOMEM or FAIL_QUERY. */
static int block_candidates(const s4_ctx *c, s4_work *w, const size_t *order, size_t lo, size_t hi,
                            double radius, size_t *U) {
    const size_t k = c->k;
    double mn[MAX_K], mx[MAX_K], ctr[MAX_K];
    for (size_t a = 0; a < k; ++a) mn[a] = mx[a] = c->zeta[order[lo] * k + a];
    for (size_t t = lo + 1; t < hi; ++t)
        for (size_t a = 0; a < k; ++a) {
            const double x = c->zeta[order[t] * k + a];
            mn[a] = fmin(mn[a], x);
            mx[a] = fmax(mx[a], x);
        }
    double rb2 = 0.0;
    for (size_t a = 0; a < k; ++a) {
        ctr[a] = 0.5 * (mn[a] + mx[a]);
        const double half = fmax(mx[a] - ctr[a], ctr[a] - mn[a]);
        rb2 += half * half;
    }
    const double reach = (radius + sqrt(rb2)) * (1.0 + 1e-9);
    const double box2 = radius * radius * (1.0 + 1e-9);
    size_t count = 0;
    const size_t *rows = NULL;
    const double *d2 = NULL;
    if (sl_kdtree_radius_rows(c->tree, w->kw, ctr, reach, SIZE_MAX, &count, &rows, &d2) != SL_OK)
        return FAIL_QUERY;
    if (!s4_work_reserve(w, k, count)) return FAIL_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < count; ++i) {
        const double *x = c->rows + rows[i] * k;
        double e2 = 0.0;
        for (size_t a = 0; a < k; ++a) {
            const double out = fmax(fmax(mn[a] - x[a], x[a] - mx[a]), 0.0);
            e2 += out * out;
        }
        if (e2 > box2) continue;
        w->uref[m] = c->tord[rows[i]];
        for (size_t a = 0; a < k; ++a) w->ux[a * w->cap + m] = x[a];
        ++m;
    }
    *U = m;
    return 0;
}

/* The local covariance C (units of h^2) is (I - h^2 H)^-1 for the tilted
 * model: near I for small h. Its eigenvalues are clamped to
 * [C_MIN_EIG, C_MAX_EIG] (C rewritten, Ci = C^-1): a nearly singular C
 * from a thin neighbourhood otherwise turns into an enormous curvature, and
 * the cumulant map raises C^-1 to the fourth power (measured: one such
 * point took T to 1e19 at n = 10^5). Returns 0 when C is not finite. */
#define C_MIN_EIG 0.3
#define C_MAX_EIG 2.0
static int clamped_inverse(size_t k, double *C, double *Ci, double *V, double *scratch) {
    double w[MAX_K];
    if (!sl_all_finite(k * k, C)) return 0;
    memcpy(scratch, C, k * k * sizeof *C);
    if (LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)k, scratch, (lapack_int)k, w) != 0)
        return 0;
    memcpy(V, scratch, k * k * sizeof *V);
    for (size_t i = 0; i < k; ++i) w[i] = fmin(fmax(w[i], C_MIN_EIG), C_MAX_EIG);
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b < k; ++b) {
            double c = 0.0, ci = 0.0;
            for (size_t i = 0; i < k; ++i) {
                const double vv = V[a * k + i] * V[b * k + i];
                c += vv * w[i];
                ci += vv / w[i];
            }
            C[a * k + b] = c;
            Ci[a * k + b] = ci;
        }
    return 1;
}

/* Y = X (k^r) with A (k x k) applied in every slot: Y = A^(x)r X, i.e.
 * Y[a..] = sum A[a p] ... X[p..]. A symmetric here, so the orientation does
 * not matter. ws: k^r. */
static void apply_all(size_t k, int r, const double *A, const double *X, double *Y, double *ws) {
    size_t len = 1;
    for (int i = 0; i < r; ++i) len *= k;
    const size_t rest = len / k;
    const double *src = X;
    for (int pass = 0; pass < r; ++pass) {
        double *dst = ((r - pass) % 2 == 1) ? Y : ws;
        /* Contract the first slot and move the new index to the back. */
        for (size_t t = 0; t < rest; ++t)
            for (size_t a = 0; a < k; ++a) {
                double s = 0.0;
                for (size_t p = 0; p < k; ++p) s += A[a * k + p] * src[p * rest + t];
                dst[t * k + a] = s;
            }
        src = dst;
    }
}

/* The thin rule's model at the standardised point q: log p = phi(u) with
 * u = |q|^2, phi(u) = -u / (2 s2) for the Gaussian (thin_nu infinite; the
 * gauss rule has s2 = 1) and -(nu + k)/2 log(nu s2 + u) for the t. As u is
 * quadratic in q (Faa di Bruno), with p1..p4 the derivatives of phi in u:
 * g = 2 p1 q, H = 4 p2 q q' + 2 p1 I, G3 = 8 p3 q^3 + 12 p2 I q,
 * G4 = 16 p4 q^4 + 48 p3 I q q + 12 p2 I I, where each term with I stands
 * for the sum over its 3, 6 or 3 placements, which the symmetrisation at
 * the end restores. */
static void thin_model(const s4_ctx *c, const double *q, double *g, double *H, double *G3,
                       double *G4) {
    const size_t k = c->k, k2 = k * k;
    double u = 0.0;
    for (size_t a = 0; a < k; ++a) u += q[a] * q[a];
    double p1 = -0.5 / c->thin_s2, p2 = 0.0, p3 = 0.0, p4 = 0.0;
    if (isfinite(c->thin_nu)) {
        const double half = 0.5 * (c->thin_nu + (double)k);
        const double iu = 1.0 / (c->thin_nu * c->thin_s2 + u);
        p1 = -half * iu;
        p2 = half * iu * iu;
        p3 = -2.0 * p2 * iu;
        p4 = -3.0 * p3 * iu;
    }
    for (size_t a = 0; a < k; ++a) g[a] = 2.0 * p1 * q[a];
    for (size_t ab = 0; ab < k2; ++ab) {
        const size_t a = ab / k, b = ab % k;
        const double I_ab = a == b ? 1.0 : 0.0, qq = q[a] * q[b];
        H[ab] = 4.0 * p2 * qq + 2.0 * p1 * I_ab;
        for (size_t e = 0; e < k; ++e) G3[ab * k + e] = (8.0 * p3 * qq + 12.0 * p2 * I_ab) * q[e];
        for (size_t ce = 0; ce < k2; ++ce) {
            const size_t cc = ce / k, e = ce % k;
            const double I_ce = cc == e ? 1.0 : 0.0;
            G4[ab * k2 + ce] =
                (16.0 * p4 * qq + 48.0 * p3 * I_ab) * q[cc] * q[e] + 12.0 * p2 * I_ab * I_ce;
        }
    }
}

/* The t rule's fit: an isotropic Student t centred at 0 (the data are
 * standardised), density proportional to (1 + |q|^2 / (nu s2))^(-(nu + k)/2),
 * by maximum likelihood on the m reference samples: for each nu of a grid,
 * s2 by EM (the weights (nu + k) / (nu + |q|^2 / s2)), then the nu of the
 * largest likelihood, the Gaussian N(0, s2 I) (nu = INFINITY) included.
 * A grid, not a continuous nu: the rule needs the tail's rough shape
 * (|S_4| decaying like |q|^-4 or growing like |q|^4), and a grid is
 * deterministic and cannot wander. */
static const double t_nu_grid[] = {1.0,  1.5,  2.0,  2.5,  3.0,   3.5,   4.0,   5.0,  6.0,
                                   8.0,  10.0, 13.0, 16.0, 20.0,  25.0,  32.0,  40.0, 50.0,
                                   64.0, 80.0, 100., 150., 200.0, 400.0, 1000.0};
static sl_status fit_t(size_t m, size_t k, const double *ref, double *nu, double *s2) {
    double *r2 = malloc(m * sizeof *r2);
    if (!r2) return sl_error(SL_ENOMEM, "out of memory for %zu reference samples", m);
    const double dk = (double)k, dm = (double)m;
    double mean_r2 = 0.0;
    for (size_t i = 0; i < m; ++i) {
        double v = 0.0;
        for (size_t a = 0; a < k; ++a) v += ref[i * k + a] * ref[i * k + a];
        r2[i] = v;
        mean_r2 += v;
    }
    mean_r2 /= dm;
    /* The Gaussian: s2 = E|q|^2 / k; mean log-likelihoods throughout. */
    double best_nu = INFINITY, best_s2 = mean_r2 / dk;
    double best = -0.5 * dk * (log(2.0 * M_PI * best_s2) + 1.0);
    for (size_t t = 0; t < sizeof t_nu_grid / sizeof *t_nu_grid; ++t) {
        const double v = t_nu_grid[t];
        double sc = mean_r2 / dk;
        for (int it = 0; it < 500; ++it) {
            double acc = 0.0;
            for (size_t i = 0; i < m; ++i) acc += (v + dk) * r2[i] / (v + r2[i] / sc);
            const double next = acc / (dm * dk);
            const int done = fabs(next - sc) <= 1e-12 * sc;
            sc = next;
            if (done) break;
        }
        double lsum = 0.0;
        for (size_t i = 0; i < m; ++i) lsum += log1p(r2[i] / (v * sc));
        const double ll = lgamma(0.5 * (v + dk)) - lgamma(0.5 * v) - 0.5 * dk * log(v * M_PI * sc) -
                          0.5 * (v + dk) * lsum / dm;
        if (ll > best) {
            best = ll;
            best_nu = v;
            best_s2 = sc;
        }
    }
    free(r2);
    if (!(best_s2 > 0.0 && isfinite(best_s2)))
        return sl_error(SL_ENUMERIC, "S_4 estimation: the t fit of the thin rule failed");
    *nu = best_nu;
    *s2 = best_s2;
    return SL_OK;
}

/* The fit at one query: fills w->g, w->H, w->G3, w->G4 (zeta coordinates,
 * not units of h) and returns 0, or 1 when the point took the thin rule's
 * scores (thin_model, or none). For kde, G3 and G4 are not used: w->G4
 * receives the whole S_4 and w->H the S_2 (see add_point). */
static int fit_point(const s4_ctx *c, s4_work *w, const double *q, double K0, double wsum2) {
    const size_t k = c->k, k2 = k * k, k3 = k2 * k, k4 = k3 * k;
    const sl_s4_estimator est = c->opt->estimator;
    const double h = c->h;
    const double neff = K0 > 0.0 ? K0 * K0 / wsum2 : 0.0;
    const double *S = w->S, *S1 = S + 1, *S2 = S1 + k, *S3 = S2 + c->n2, *S4 = S3 + c->n3;
    int ok = K0 > 0.0 && neff >= (double)c->opt->min_neighbours;
    if (ok) {
        const double i0 = 1.0 / K0;
        for (size_t a = 0; a < k; ++a) w->m1[a] = S1[a] * i0;
        for (size_t i = 0; i < k2; ++i) w->m2[i] = S2[c->idx2[i]] * i0;
        if (est != SL_S4_QUADRATIC) {
            for (size_t i = 0; i < k3; ++i) w->m3[i] = S3[c->idx3[i]] * i0;
            for (size_t i = 0; i < k4; ++i) w->m4[i] = S4[c->idx4[i]] * i0;
        }
    }
    if (ok && est == SL_S4_KDE) {
        /* S_4 = (m4 - 6 m2 (x) I + 3 I (x) I) / h^4 before symmetrisation;
         * S_2 = (m2 - I) / h^2; g = m1 / h. */
        const double ih2 = 1.0 / (h * h), ih4 = ih2 * ih2;
        for (size_t a = 0; a < k; ++a) w->g[a] = w->m1[a] / h;
        for (size_t ab = 0; ab < k2; ++ab) {
            const double I_ab = (ab / k == ab % k) ? 1.0 : 0.0;
            w->H[ab] = (w->m2[ab] - I_ab) * ih2;
            for (size_t ce = 0; ce < k2; ++ce) {
                const double I_ce = (ce / k == ce % k) ? 1.0 : 0.0;
                w->G4[ab * k2 + ce] =
                    (w->m4[ab * k2 + ce] - 6.0 * w->m2[ab] * I_ce + 3.0 * I_ab * I_ce) * ih4;
            }
        }
        return 0;
    }
    if (ok) {
        /* Central moments (units of h). */
        const double *mu = w->m1;
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b < k; ++b) w->c2[a * k + b] = w->m2[a * k + b] - mu[a] * mu[b];
        ok = clamped_inverse(k, w->c2, w->Si, w->L, w->B);
    }
    if (!ok && c->opt->thin == SL_S4_THIN_ZERO) {
        /* Too few neighbours, or a degenerate neighbourhood: no
         * contribution (S_2 = S_4 = 0; for kde, add_point reads S_4 from
         * G4 and S_2 from H). */
        memset(w->g, 0, k * sizeof *w->g);
        memset(w->H, 0, k2 * sizeof *w->H);
        memset(w->G3, 0, k3 * sizeof *w->G3);
        memset(w->G4, 0, k4 * sizeof *w->G4);
        return 1;
    }
    if (!ok) {
        /* Too few neighbours, or a degenerate neighbourhood: the global
         * model's scores (thin_model). */
        thin_model(c, q, w->g, w->H, w->G3, w->G4);
        if (est == SL_S4_KDE) {
            /* add_point reads the kde's S_4 from G4 and S_2 from H:
             * S_4 = g^4 + 6 g g H + 3 H H + 4 g G3 + G4, S_2 = H + g g
             * (unsymmetrised; the sum is symmetrised at the end). */
            const double *g = w->g, *Hq = w->H, *G3 = w->G3;
            for (size_t ab = 0; ab < k2; ++ab) {
                const size_t a = ab / k, b = ab % k;
                for (size_t ce = 0; ce < k2; ++ce) {
                    const size_t cc = ce / k, e = ce % k;
                    w->G4[ab * k2 + ce] += g[a] * g[b] * g[cc] * g[e] + 6.0 * g[a] * g[b] * Hq[ce] +
                                           3.0 * Hq[ab] * Hq[ce] + 4.0 * g[a] * G3[b * k2 + ce];
                }
            }
            for (size_t ab = 0; ab < k2; ++ab) w->H[ab] += g[ab / k] * g[ab % k];
        }
        return 1;
    }
    double *m = w->gF; /* the tilted mean (units of h), reused below */
    (void)m;
    double mean[MAX_K];
    memcpy(mean, w->m1, k * sizeof *mean);
    if (est == SL_S4_CUMULANT) {
        const double *mu = w->m1;
        /* c3 = E (v - mu)^3, k4 = E (v - mu)^4 - 3 sym(c2 c2). */
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b < k; ++b)
                for (size_t e = 0; e < k; ++e) {
                    const size_t i = (a * k + b) * k + e;
                    w->c3[i] = w->m3[i] - mu[a] * w->m2[b * k + e] - mu[b] * w->m2[a * k + e] -
                               mu[e] * w->m2[a * k + b] + 2.0 * mu[a] * mu[b] * mu[e];
                }
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b < k; ++b)
                for (size_t cc = 0; cc < k; ++cc)
                    for (size_t e = 0; e < k; ++e) {
                        const size_t i = ((a * k + b) * k + cc) * k + e;
                        /* E (v-mu)^4 from raw moments. */
                        double v = w->m4[i];
                        v -= mu[a] * w->m3[(b * k + cc) * k + e] +
                             mu[b] * w->m3[(a * k + cc) * k + e] +
                             mu[cc] * w->m3[(a * k + b) * k + e] +
                             mu[e] * w->m3[(a * k + b) * k + cc];
                        v += mu[a] * mu[b] * w->m2[cc * k + e] + mu[a] * mu[cc] * w->m2[b * k + e] +
                             mu[a] * mu[e] * w->m2[b * k + cc] + mu[b] * mu[cc] * w->m2[a * k + e] +
                             mu[b] * mu[e] * w->m2[a * k + cc] + mu[cc] * mu[e] * w->m2[a * k + b];
                        v -= 3.0 * mu[a] * mu[b] * mu[cc] * mu[e];
                        const double *C = w->c2;
                        v -= C[a * k + b] * C[cc * k + e] + C[a * k + cc] * C[b * k + e] +
                             C[a * k + e] * C[b * k + cc];
                        w->k4[i] = v;
                    }
        /* S (units of h) starts at c2, the mean at mu; w->Si = c2^-1. */
        memcpy(w->Sg, w->c2, k2 * sizeof *w->Sg);
        const int steps = c->opt->corrected ? 2 : 0;
        for (int it = 0;; ++it) {
            /* G4 = Si^(x)4 k4, G3 = Si^(x)3 c3 - G4[mean] (units of h). */
            apply_all(k, 4, w->Si, w->k4, w->G4, w->t4a);
            apply_all(k, 3, w->Si, w->c3, w->G3, w->t4a);
            for (size_t i = 0; i < k3; ++i) {
                double s = 0.0;
                for (size_t e = 0; e < k; ++e) s += w->G4[i * k + e] * mean[e];
                w->G3[i] -= s;
            }
            if (it >= steps) break;
            /* B = G3[m] + G4[m,m]/2 + G4[S]/2; grad F = G3[m,m]/2 + G3[S]/2
             * + G4[m,m,m]/6 + G4[m,S]/2; then S = c2 - S B S, m = mu - S grad F. */
            const double *Sg = w->Sg;
            for (size_t a = 0; a < k; ++a) {
                double gf = 0.0;
                for (size_t b = 0; b < k; ++b) {
                    double bb = 0.0;
                    for (size_t e = 0; e < k; ++e) {
                        const double g3 = w->G3[(a * k + b) * k + e];
                        bb += g3 * mean[e];
                        gf += 0.5 * g3 * (mean[b] * mean[e] + Sg[b * k + e]);
                        for (size_t f = 0; f < k; ++f) {
                            const double g4 = w->G4[((a * k + b) * k + e) * k + f];
                            bb += 0.5 * g4 * (mean[e] * mean[f] + Sg[e * k + f]);
                            gf += g4 * mean[b] * (mean[e] * mean[f] / 6.0 + 0.5 * Sg[e * k + f]);
                        }
                    }
                    w->B[a * k + b] = bb;
                }
                w->gF[a] = gf;
            }
            /* t4b (k^2) = S B S, new mean. */
            double SB[MAX_K * MAX_K], newS[MAX_K * MAX_K], newm[MAX_K];
            for (size_t a = 0; a < k; ++a)
                for (size_t b = 0; b < k; ++b) {
                    double s = 0.0;
                    for (size_t e = 0; e < k; ++e) s += Sg[a * k + e] * w->B[e * k + b];
                    SB[a * k + b] = s;
                }
            for (size_t a = 0; a < k; ++a) {
                double s = 0.0;
                for (size_t e = 0; e < k; ++e) s += Sg[a * k + e] * w->gF[e];
                newm[a] = w->m1[a] - s;
                for (size_t b = 0; b < k; ++b) {
                    double t = 0.0;
                    for (size_t e = 0; e < k; ++e) t += SB[a * k + e] * Sg[e * k + b];
                    newS[a * k + b] = w->c2[a * k + b] - t;
                }
            }
            for (size_t a = 0; a < k; ++a)
                for (size_t b = a; b < k; ++b)
                    newS[a * k + b] = newS[b * k + a] = 0.5 * (newS[a * k + b] + newS[b * k + a]);
            double newSi[MAX_K * MAX_K];
            if (!clamped_inverse(k, newS, newSi, w->L, w->t4b)) break; /* keep the last fit */
            memcpy(w->Sg, newS, k2 * sizeof *newS);
            memcpy(w->Si, newSi, k2 * sizeof *newSi);
            memcpy(mean, newm, k * sizeof *mean);
        }
    }
    /* g = S^-1 m, H = I - S^-1 (units of h), then to zeta units. */
    const double ih = 1.0 / h, ih2 = ih * ih;
    for (size_t a = 0; a < k; ++a) {
        double s = 0.0;
        for (size_t b = 0; b < k; ++b) s += w->Si[a * k + b] * mean[b];
        w->g[a] = s * ih;
    }
    for (size_t ab = 0; ab < k2; ++ab)
        w->H[ab] = (((ab / k) == (ab % k) ? 1.0 : 0.0) - w->Si[ab]) * ih2;
    if (est == SL_S4_CUMULANT) {
        const double ih3 = ih2 * ih, ih4 = ih2 * ih2;
        for (size_t i = 0; i < k3; ++i) w->G3[i] *= ih3;
        for (size_t i = 0; i < k4; ++i) w->G4[i] *= ih4;
    } else {
        memset(w->G3, 0, k3 * sizeof *w->G3);
        memset(w->G4, 0, k4 * sizeof *w->G4);
    }
    return 0;
}

/* Adds y (g^4 + 6 g g H + 3 H H + 4 g G3 + G4) (unsymmetrised) to X and
 * yM (g g' + H) to M2; for kde, y S_4 (in G4) and yM S_2 (in H). */
static void add_point(const s4_ctx *c, const s4_work *w, double y, double yM, double *X,
                      double *M2) {
    const size_t k = c->k, k2 = k * k;
    const double *g = w->g, *H = w->H, *G3 = w->G3, *G4 = w->G4;
    if (c->opt->estimator == SL_S4_KDE) {
        cblas_daxpy((int)(k2 * k2), y, G4, 1, X, 1);
        cblas_daxpy((int)k2, yM, H, 1, M2, 1);
        return;
    }
    double gg[MAX_K * MAX_K], q[MAX_K * MAX_K];
    for (size_t ab = 0; ab < k2; ++ab) {
        gg[ab] = g[ab / k] * g[ab % k];
        q[ab] = gg[ab] + 6.0 * H[ab];
        M2[ab] += yM * (gg[ab] + H[ab]);
    }
    for (size_t ab = 0; ab < k2; ++ab) {
        const double ga = g[ab / k], al = gg[ab], be = 3.0 * H[ab];
        const double *g3 = G3 + (ab % k) * k2, *g4 = G4 + ab * k2;
        double *x = X + ab * k2;
        for (size_t ce = 0; ce < k2; ++ce)
            x[ce] += y * (al * q[ce] + be * H[ce] + 4.0 * ga * g3[ce] + g4[ce]);
    }
}

/* ---- setup shared by the tensor and the directional values ----------------------- */

typedef struct s4_setup {
    size_t k, nref;
    double mean[MAX_K];
    double L[MAX_K * MAX_K], Linv[MAX_K * MAX_K]; /* Cov(z) = L L', lower */
    double *zeta;                                 /* n x k */
    double *ref;                                  /* nref x k (standardised) */
    size_t *refpos;                               /* n */
    sl_kdtree *tree;
    const double *rows;
    const size_t *tord; /* the reference sample at each row of rows */
    double h;
    double thin_nu, thin_s2; /* the thin rule's model (thin_model) */
} s4_setup;

static void setup_free(s4_setup *s) {
    free(s->zeta);
    free(s->ref);
    free(s->refpos);
    sl_kdtree_free(s->tree);
}

static sl_status setup(const sl_s4_options *opt, size_t n, size_t k, const double *Z, s4_setup *s) {
    memset(s, 0, sizeof *s);
    s->k = k;
    if (k < 1 || k > MAX_K)
        return sl_error(SL_EINVAL, "S_4 estimation: k = %zu directions (1..%d supported)", k,
                        MAX_K);
    if (n < 4 * k + 4)
        return sl_error(SL_EINVAL, "S_4 estimation: %zu samples are too few for k = %zu", n, k);
    if (!sl_all_finite(n * k, Z))
        return sl_error(SL_ENUMERIC, "S_4 estimation: the projected samples are not finite");
    /* Mean and covariance, then L and L^-1. */
    double C[MAX_K * MAX_K] = {0};
    for (size_t j = 0; j < n; ++j)
        for (size_t a = 0; a < k; ++a) s->mean[a] += Z[j * k + a];
    for (size_t a = 0; a < k; ++a) s->mean[a] /= (double)n;
    for (size_t j = 0; j < n; ++j)
        for (size_t a = 0; a < k; ++a)
            for (size_t b = 0; b <= a; ++b)
                C[a * k + b] += (Z[j * k + a] - s->mean[a]) * (Z[j * k + b] - s->mean[b]);
    for (size_t a = 0; a < k; ++a)
        for (size_t b = 0; b <= a; ++b)
            C[a * k + b] = C[b * k + a] = C[a * k + b] / (double)(n - 1);
    sl_status st = sl_cholesky(k, C, s->L, "the covariance of the projected samples");
    if (st) return st;
    /* L^-1 by forward substitution on the identity. */
    for (size_t col = 0; col < k; ++col)
        for (size_t a = 0; a < k; ++a) {
            double v = a == col ? 1.0 : 0.0;
            for (size_t b = 0; b < a; ++b) v -= s->L[a * k + b] * s->Linv[b * k + col];
            s->Linv[a * k + col] = v / s->L[a * k + a];
        }
    s->zeta = malloc(n * k * sizeof *s->zeta);
    s->refpos = malloc(n * sizeof *s->refpos);
    if (!s->zeta || !s->refpos) return sl_error(SL_ENOMEM, "out of memory for %zu samples", n);
    for (size_t j = 0; j < n; ++j)
        for (size_t a = 0; a < k; ++a) {
            double v = 0.0;
            for (size_t b = 0; b <= a; ++b) v += s->Linv[a * k + b] * (Z[j * k + b] - s->mean[b]);
            s->zeta[j * k + a] = v;
        }
    /* The reference set: all samples, or a seeded subset in index order. */
    s->nref = opt->reference > 0 && opt->reference < n ? opt->reference : n;
    s->ref = malloc(s->nref * k * sizeof *s->ref);
    if (!s->ref) return sl_error(SL_ENOMEM, "out of memory for %zu reference samples", s->nref);
    for (size_t j = 0; j < n; ++j) s->refpos[j] = s->nref == n ? j : SIZE_MAX;
    if (s->nref == n) {
        memcpy(s->ref, s->zeta, n * k * sizeof *s->ref);
    } else {
        size_t *all = malloc(n * sizeof *all), *pick = malloc(s->nref * sizeof *pick);
        gsl_rng *r = sl_rng_alloc(opt->seed, 0x54);
        if (!all || !pick || !r) {
            free(all);
            free(pick);
            if (r) gsl_rng_free(r);
            return sl_error(SL_ENOMEM, "out of memory");
        }
        for (size_t j = 0; j < n; ++j) all[j] = j;
        gsl_ran_choose(r, pick, s->nref, all, n, sizeof *all);
        for (size_t i = 0; i < s->nref; ++i) {
            s->refpos[pick[i]] = i;
            memcpy(s->ref + i * k, s->zeta + pick[i] * k, k * sizeof *s->ref);
        }
        free(all);
        free(pick);
        gsl_rng_free(r);
    }
    s->thin_nu = INFINITY;
    s->thin_s2 = 1.0;
    if (opt->thin == SL_S4_THIN_T) {
        sl_status ft = fit_t(s->nref, k, s->ref, &s->thin_nu, &s->thin_s2);
        if (ft) return ft;
    }
    s->h = opt->h > 0.0 ? opt->h : opt->bw_const * pow((double)s->nref, -1.0 / ((double)k + 8.0));
    if (!(s->h > 0.0 && isfinite(s->h)))
        return sl_error(SL_EINVAL, "S_4 estimation: bandwidth must be positive, got %g", s->h);
    if (!(opt->cutoff > 0.0))
        return sl_error(SL_EINVAL, "S_4 estimation: cutoff must be positive, got %g", opt->cutoff);
    st = sl_kdtree_build(s->nref, k, s->ref, &s->tree);
    if (!st) st = sl_kdtree_info(s->tree, NULL, NULL, NULL, &s->tord, &s->rows);
    return st;
}

static void ctx_init(s4_ctx *c, const sl_s4_options *opt, size_t n, const s4_setup *s) {
    memset(c, 0, sizeof *c);
    c->opt = opt;
    c->n = n;
    c->k = s->k;
    c->nref = s->nref;
    c->zeta = s->zeta;
    c->refpos = s->refpos;
    c->tree = s->tree;
    c->rows = s->rows;
    c->tord = s->tord;
    c->h = s->h;
    c->thin_nu = s->thin_nu;
    c->thin_s2 = s->thin_s2;
    build_tables(c);
}

/* ---- the parallel frame ------------------------------------------------------------- */

/* Work on item `item` with workspace w; returns 0, or FAIL_NOMEM /
 * FAIL_QUERY. */
typedef int (*s4_item_fn)(const s4_ctx *c, s4_work *w, size_t item, void *arg);

/* Runs fn over the items 0..nitems-1 on the OpenMP threads (dynamic
 * schedule, `chunk` items at a time), each thread with its own workspace
 * and BLAS single-threaded inside: the threads are the parallelism, and
 * LAPACK calls in the fits must not start threads of their own. The items
 * write only their own outputs, so the result does not depend on the
 * schedule. Returns SL_OK or the error of a failed item. */
static sl_status s4_parallel(const s4_ctx *c, size_t nitems, int chunk, s4_item_fn fn, void *arg) {
    int failed = 0;
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        s4_work *w = s4_work_alloc(c);
        if (!w) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
            failed = FAIL_NOMEM;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, chunk)
#endif
        for (size_t i = 0; i < nitems; ++i) {
            int f;
#ifdef _OPENMP
#pragma omp atomic read
#endif
            f = failed;
            if (!w || f) continue;
            f = fn(c, w, i, arg);
            if (f) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                failed = f;
            }
        }
        s4_work_free(w);
    }
    (void)chunk;
    openblas_set_num_threads(blas_threads);
    if (failed == FAIL_NOMEM) return sl_error(SL_ENOMEM, "out of memory for the S_4 workspaces");
    if (failed == FAIL_QUERY)
        return sl_error(SL_ENOMEM, "S_4 estimation: a neighbour query failed");
    return SL_OK;
}

/* The queries in the leaf order of a k-d tree built over them: runs of
 * consecutive queries are then compact (a leaf holds at most a few dozen),
 * so the candidates of a run of QRUN (block_candidates) are not many more
 * than one query's neighbours. */
static sl_status query_order(size_t n, size_t k, const double *zeta, size_t *order) {
    sl_kdtree *qt = NULL;
    const size_t *o = NULL;
    sl_status st = sl_kdtree_build(n, k, zeta, &qt);
    if (!st) st = sl_kdtree_info(qt, NULL, NULL, NULL, &o, NULL);
    if (!st) memcpy(order, o, n * sizeof *order);
    sl_kdtree_free(qt);
    return st;
}

/* One block of the tensor's queries: order[b QBLOCK ..), in runs of QRUN
 * sharing their candidates. The block's partial sums: k^4 of y S_4, k^2 of
 * yM S_2, then the neighbour count, the effective count and the number of
 * regularised queries. */
typedef struct tensor_job {
    size_t n, plen;
    const size_t *order;
    const double *yT, *yM;
    double radius;
    double *parts;
} tensor_job;

static int tensor_block(const s4_ctx *c, s4_work *w, size_t b, void *arg) {
    const tensor_job *job = arg;
    const size_t k = c->k, k2 = k * k, k4 = k2 * k2;
    double *part = job->parts + b * job->plen, *X = part, *m2 = part + k4, *cnt = m2 + k2;
    const size_t lo = b * QBLOCK, hi = lo + QBLOCK < job->n ? lo + QBLOCK : job->n;
    const double r2 = job->radius * job->radius; /* as the tree squares it */
    const double ih = 1.0 / c->h;
    for (size_t run = lo; run < hi; run += QRUN) {
        const size_t end = run + QRUN < hi ? run + QRUN : hi;
        size_t U = 0;
        const int f = block_candidates(c, w, job->order, run, end, job->radius, &U);
        if (f) return f;
        for (size_t t = run; t < end; ++t) {
            const size_t j = job->order[t];
            const double *q = c->zeta + j * k;
            const size_t count = select_within(k, U, w->cap, w->ux, w->uref, q, r2, c->refpos[j],
                                               ih, w->dd, w->nv, w->nw);
            double wsum2 = 0.0;
            moments_selected(c, w, count, &wsum2);
            const double K0 = w->S[0];
            const int reg = fit_point(c, w, q, K0, wsum2);
            add_point(c, w, job->yT[j], job->yM[j], X, m2);
            cnt[0] += (double)count;
            cnt[1] += K0 > 0.0 ? K0 * K0 / wsum2 : 0.0;
            cnt[2] += reg;
        }
    }
    return 0;
}

/* ---- the tensor --------------------------------------------------------------------- */

/* The ridge control variates' directions in zeta: v'z = (L'v)'zeta +
 * v'mean, into *out (cv_ridges x k, then the cv_ridges offsets; free it). */
static sl_status zeta_ridges(const sl_s4_options *opt, size_t k, const s4_setup *s, double **out) {
    const size_t nr = opt->cv_ridges;
    *out = NULL;
    if (!opt->cv_dirs)
        return sl_error(SL_EINVAL, "S_4 estimation: ridge control variates without directions");
    double *U = malloc(nr * (k + 1) * sizeof *U);
    if (!U) return sl_error(SL_ENOMEM, "out of memory");
    double *c = U + nr * k;
    for (size_t j = 0; j < nr; ++j) {
        const double *v = opt->cv_dirs + j * k;
        double *u = U + j * k;
        c[j] = 0.0;
        for (size_t a = 0; a < k; ++a) {
            double t = 0.0;
            for (size_t b = a; b < k; ++b) t += s->L[b * k + a] * v[b];
            u[a] = t;
            c[j] += v[a] * s->mean[a];
        }
    }
    *out = U;
    return SL_OK;
}

sl_status sl_s4_tensor(const sl_s4_options *opt_in, size_t n, size_t k, const double *Z,
                       const double *y, double *T, double *M2, sl_s4_info *info) {
    if (!Z || !y || !T) return sl_error(SL_EINVAL, "S_4 estimation: missing argument");
    sl_s4_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        sl_s4_options_default(&opt);
    if ((int)opt.estimator < 0 || (int)opt.estimator > SL_S4_QUADRATIC)
        return sl_error(SL_EINVAL, "S_4 estimation: unknown estimator %d", (int)opt.estimator);
    if ((int)opt.thin < 0 || (int)opt.thin > SL_S4_THIN_T)
        return sl_error(SL_EINVAL, "S_4 estimation: unknown rule for thin neighbourhoods %d",
                        (int)opt.thin);
    if (!sl_all_finite(n, y)) return sl_error(SL_EINVAL, "S_4 estimation: non-finite labels");
    if (opt.detrend < 0 || opt.detrend > 4)
        return sl_error(SL_EINVAL, "S_4 estimation: detrend degree %d (0..4)", opt.detrend);
    s4_setup s;
    sl_status st = setup(&opt, n, k, Z, &s);
    s4_ctx *c = NULL;
    size_t *order = NULL;
    double *parts = NULL;
    /* Labels with the polynomials removed: yT for T (degree detrend), yM for
     * M2 (degree min(detrend, 1), or 2 when detrend is 4). With detrend 4 the
     * fits' derivatives are added back (dq4 to T, dq2 to M2, in zeta), the
     * correction Stein's identity gives for exact scores; for estimated ones
     * the bias left is E[(S_4 estimate - S_4)(y - q)], from the residual
     * only. */
    double *yT = NULL, *yM = NULL, *dq4 = NULL, dq2[MAX_K * MAX_K];
    const int mdeg = opt.detrend == 4 ? 2 : opt.detrend < 1 ? opt.detrend : 1;
    if (!st) {
        yT = malloc(n * sizeof *yT);
        yM = malloc(n * sizeof *yM);
        dq4 = opt.detrend == 4 ? malloc(k * k * k * k * sizeof *dq4) : NULL;
        if (!yT || !yM || (opt.detrend == 4 && !dq4))
            st = sl_error(SL_ENOMEM, "out of memory for %zu labels", n);
    }
    if (!st && opt.cv_ridges > 0) {
        double *U = NULL;
        if (!dq4) dq4 = malloc(k * k * k * k * sizeof *dq4);
        st = dq4 ? zeta_ridges(&opt, k, &s, &U) : sl_error(SL_ENOMEM, "out of memory");
        if (!st)
            st = sl_detrend_ridge_cv(n, k, s.zeta, y, opt.detrend, 4, opt.cv_ridges, U,
                                     U + opt.cv_ridges * k, opt.cv_scale, yT, dq4, NULL);
        free(U);
    } else if (!st) {
        st = sl_detrend_cv(n, k, s.zeta, y, opt.detrend, yT, dq4);
    }
    if (!st) st = sl_detrend_cv(n, k, s.zeta, y, mdeg, yM, mdeg == 2 ? dq2 : NULL);
    const size_t k2 = k * k, k4 = k2 * k2, plen = k4 + k2 + 3;
    const size_t nblocks = (n + QBLOCK - 1) / QBLOCK;
    if (!st) {
        c = malloc(sizeof *c);
        order = malloc(n * sizeof *order);
        parts = calloc(nblocks * plen, sizeof *parts);
        if (!c || !order || !parts) st = sl_error(SL_ENOMEM, "out of memory for the S_4 blocks");
    }
    if (!st) st = query_order(n, k, s.zeta, order);
    if (!st) {
        ctx_init(c, &opt, n, &s);
        tensor_job job = {.n = n,
                          .plen = plen,
                          .order = order,
                          .yT = yT,
                          .yM = yM,
                          .radius = opt.cutoff * s.h,
                          .parts = parts};
        st = s4_parallel(c, nblocks, 1, tensor_block, &job);
    }
    if (!st) {
        /* Block sums in block order, then symmetrise and map to z. */
        double *X = calloc(k4 + k2 + 3, sizeof *X);
        double *ws = malloc(2 * k4 * sizeof *ws);
        if (!X || !ws) {
            free(X);
            free(ws);
            st = sl_error(SL_ENOMEM, "out of memory");
        } else {
            for (size_t b = 0; b < nblocks; ++b)
                for (size_t i = 0; i < plen; ++i) X[i] += parts[b * plen + i];
            for (size_t i = 0; i < k4 + k2; ++i) X[i] /= (double)n;
            if (dq4)
                for (size_t i = 0; i < k4; ++i) X[i] += dq4[i];
            if (mdeg == 2)
                for (size_t i = 0; i < k2; ++i) X[k4 + i] += dq2[i];
            symmetrise4(k, X);
            /* T_z = T_zeta(A, A, A, A), A = L^-1 (zeta = A (z - mean)). */
            contract4(k, X, k, s.Linv, T, ws);
            if (M2) {
                double tmp[MAX_K * MAX_K];
                double *m2 = X + k4;
                for (size_t a = 0; a < k; ++a)
                    for (size_t b = a; b < k; ++b)
                        m2[a * k + b] = m2[b * k + a] = 0.5 * (m2[a * k + b] + m2[b * k + a]);
                /* M2_z = A' M2_zeta A */
                for (size_t a = 0; a < k; ++a)
                    for (size_t b = 0; b < k; ++b) {
                        double v = 0.0;
                        for (size_t e = 0; e < k; ++e) v += m2[a * k + e] * s.Linv[e * k + b];
                        tmp[a * k + b] = v;
                    }
                for (size_t a = 0; a < k; ++a)
                    for (size_t b = 0; b < k; ++b) {
                        double v = 0.0;
                        for (size_t e = 0; e < k; ++e) v += s.Linv[e * k + a] * tmp[e * k + b];
                        M2[a * k + b] = v;
                    }
                for (size_t a = 0; a < k; ++a)
                    for (size_t b = a; b < k; ++b)
                        M2[a * k + b] = M2[b * k + a] = 0.5 * (M2[a * k + b] + M2[b * k + a]);
            }
            if (info) {
                info->h = s.h;
                info->nref = s.nref;
                info->mean_neighbours = X[k4 + k2] / (double)n;
                info->mean_effective = X[k4 + k2 + 1] / (double)n;
                info->regularised = (size_t)X[k4 + k2 + 2];
                info->thin_nu = opt.thin == SL_S4_THIN_ZERO ? NAN : s.thin_nu;
                info->thin_scale = opt.thin == SL_S4_THIN_ZERO ? NAN : sqrt(s.thin_s2);
            }
            if (!sl_all_finite(k4, T))
                st = sl_error(SL_ENUMERIC, "S_4 estimation: the tensor has non-finite entries");
            free(X);
            free(ws);
        }
    }
    free(c);
    free(order);
    free(parts);
    free(yT);
    free(yM);
    free(dq4);
    setup_free(&s);
    return st;
}

/* One query of sl_s4_directional: vals[i, :] = yT S_4(b_c, b_c, b_c, b_c)
 * for the columns b_c of Bz (zeta coordinates, k x nb). */
typedef struct directional_job {
    const size_t *qidx;
    size_t nb;
    const double *Bz, *yT;
    double radius;
    double *vals;
} directional_job;

static int directional_query(const s4_ctx *c, s4_work *w, size_t i, void *arg) {
    const directional_job *job = arg;
    const size_t k = c->k, k2 = k * k, k3 = k2 * k, nb = job->nb;
    const size_t j = job->qidx[i];
    const double *q = c->zeta + j * k;
    size_t count = 0;
    const size_t *rows = NULL;
    const double *d2 = NULL;
    if (sl_kdtree_radius_rows(c->tree, w->kw, q, job->radius, c->refpos[j], &count, &rows, &d2) !=
        SL_OK)
        return FAIL_QUERY;
    double wsum2 = 0.0;
    if (!moments_rows(c, w, q, count, rows, d2, &wsum2)) return FAIL_NOMEM;
    fit_point(c, w, q, w->S[0], wsum2);
    for (size_t col = 0; col < nb; ++col) {
        double b[MAX_K];
        for (size_t a = 0; a < k; ++a) b[a] = job->Bz[a * nb + col];
        double s4 = 0.0;
        if (c->opt->estimator == SL_S4_KDE) {
            for (size_t a = 0; a < k; ++a)
                for (size_t bb = 0; bb < k; ++bb)
                    for (size_t cc = 0; cc < k; ++cc)
                        for (size_t e = 0; e < k; ++e)
                            s4 += w->G4[((a * k + bb) * k + cc) * k + e] * b[a] * b[bb] * b[cc] *
                                  b[e];
            /* kde's unsymmetrised S_4 has the same full contraction. */
        } else {
            double gb = 0.0, hb = 0.0, g3 = 0.0, g4 = 0.0;
            for (size_t a = 0; a < k; ++a) {
                gb += w->g[a] * b[a];
                for (size_t bb = 0; bb < k; ++bb) {
                    hb += w->H[a * k + bb] * b[a] * b[bb];
                    for (size_t cc = 0; cc < k; ++cc) {
                        const double bbb = b[a] * b[bb] * b[cc];
                        g3 += w->G3[a * k2 + bb * k + cc] * bbb;
                        for (size_t e = 0; e < k; ++e)
                            g4 += w->G4[a * k3 + bb * k2 + cc * k + e] * bbb * b[e];
                    }
                }
            }
            s4 = gb * gb * gb * gb + 6.0 * gb * gb * hb + 3.0 * hb * hb + 4.0 * gb * g3 + g4;
        }
        job->vals[i * nb + col] = job->yT[j] * s4;
    }
    return 0;
}

sl_status sl_s4_directional(const sl_s4_options *opt_in, size_t n, size_t k, const double *Z,
                            const double *y, size_t nq, const size_t *qidx, size_t nb,
                            const double *B, double *vals) {
    if (!Z || !y || !qidx || !B || !vals || nb == 0)
        return sl_error(SL_EINVAL, "S_4 directional values: missing argument");
    sl_s4_options opt;
    if (opt_in)
        opt = *opt_in;
    else
        sl_s4_options_default(&opt);
    for (size_t i = 0; i < nq; ++i)
        if (qidx[i] >= n) return sl_error(SL_EINVAL, "S_4 directional values: bad query index");
    s4_setup s;
    sl_status st = setup(&opt, n, k, Z, &s);
    s4_ctx *c = NULL;
    double *Bz = NULL, *yT = NULL;
    if (!st) {
        c = malloc(sizeof *c);
        Bz = malloc(k * nb * sizeof *Bz);
        yT = malloc(n * sizeof *yT);
        if (!c || !Bz || !yT) st = sl_error(SL_ENOMEM, "out of memory");
    }
    /* The same labels as sl_s4_tensor's T; with ridge control variates,
     * also their coefficients, for the per-row fourth derivatives. */
    const int deg = opt.detrend < 0 || opt.detrend > 4 ? 3 : opt.detrend;
    const size_t nr = opt.cv_ridges;
    double *U = NULL, *coef = NULL, *extra = NULL;
    if (!st && nr > 0) {
        st = zeta_ridges(&opt, k, &s, &U);
        coef = malloc(nr * sizeof *coef);
        extra = malloc(nq * nb * sizeof *extra);
        if (!st && (!coef || !extra)) st = sl_error(SL_ENOMEM, "out of memory");
        if (!st)
            st = sl_detrend_ridge_cv(n, k, s.zeta, y, deg, 4, nr, U, U + nr * k, opt.cv_scale, yT,
                                     NULL, coef);
    } else if (!st) {
        st = sl_detrend_cv(n, k, s.zeta, y, deg, yT, NULL);
    }
    if (!st) {
        ctx_init(c, &opt, n, &s);
        /* The directions in zeta coordinates: b_zeta = L' b_z, since
         * S_z(b) = S_zeta(L^-1 ... ) -- see below. */
        /* S_4^z(b, b, b, b) = S_4^zeta(A b, ...) with A = L^-1 as a map of
         * the slots: T_z[abce] = sum T_zeta[pqrs] A[pa] A[qb] ..., so the
         * zeta-direction is A b (A[p][a] b[a] summed over a). */
        for (size_t p = 0; p < k; ++p)
            for (size_t col = 0; col < nb; ++col) {
                double v = 0.0;
                for (size_t a = 0; a < k; ++a) v += s.Linv[p * k + a] * B[a * nb + col];
                Bz[p * nb + col] = v;
            }
        directional_job job = {
            .qidx = qidx, .nb = nb, .Bz = Bz, .yT = yT, .radius = opt.cutoff * s.h, .vals = vals};
        st = s4_parallel(c, nq, 16, directional_query, &job);
    }
    /* Under the ridge control variate the per-sample term of T(b^4) is
     * r_j S_4(b^4) plus the fit's fourth derivative along b at row j. */
    if (!st && nr > 0)
        st = sl_detrend_ridge_rows(n, k, s.zeta, 4, nr, U, U + nr * k, opt.cv_scale, coef, nq, qidx,
                                   nb, Bz, extra);
    if (!st && nr > 0)
        for (size_t i = 0; i < nq * nb; ++i) vals[i] += extra[i];
    free(U);
    free(coef);
    free(extra);
    free(c);
    free(Bz);
    free(yT);
    setup_free(&s);
    return st;
}

/* ---- the recovery pipeline's moments ------------------------------------------------ */

sl_status sl_moments_projected(const sl_s4_options *opt, size_t n, size_t d, const double *X,
                               const double *y, size_t k, const double *U0, const double *evals_d,
                               sl_moments **out, sl_s4_info *info) {
    if (!out) return sl_error(SL_EINVAL, "projected moments: no output pointer");
    *out = NULL;
    if (!X || !y || !U0) return sl_error(SL_EINVAL, "projected moments: missing argument");
    if (k < 1 || k > d || k > MAX_K)
        return sl_error(SL_EINVAL, "projected moments: k = %zu (need 1 <= k <= min(d, %d))", k,
                        MAX_K);
    const size_t k2 = k * k, k4 = k2 * k2;
    sl_moments *m = calloc(1, sizeof *m);
    double *Z = malloc(n * k * sizeof *Z), *Tz = malloc(k4 * sizeof *Tz);
    double M2z[MAX_K * MAX_K], w[MAX_K], V[MAX_K * MAX_K], Wh[MAX_K * MAX_K];
    sl_status st = SL_OK;
    if (!m || !Z || !Tz) st = sl_error(SL_ENOMEM, "out of memory for the projected moments");
    if (!st) {
        m->n = n;
        m->d = d;
        m->k = k;
        m->y = malloc(n * sizeof *m->y);
        m->M2 = calloc(d * d, sizeof *m->M2);
        m->evals = calloc(d, sizeof *m->evals);
        m->U = malloc(d * k * sizeof *m->U);
        m->P = malloc(d * k * sizeof *m->P);
        m->T = malloc(k4 * sizeof *m->T);
        m->signal = calloc(k, sizeof *m->signal);
        if (!m->y || !m->M2 || !m->evals || !m->U || !m->P || !m->T || !m->signal)
            st = sl_error(SL_ENOMEM, "out of memory for the projected moments");
    }
    if (!st) {
        memcpy(m->y, y, n * sizeof *y);
        const int blas_threads = openblas_get_num_threads();
        openblas_set_num_threads(1);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)k, (int)d, 1.0, X,
                    (int)d, U0, (int)k, 0.0, Z, (int)k);
        openblas_set_num_threads(blas_threads);
        st = sl_s4_tensor(opt, n, k, Z, y, Tz, M2z, info);
    }
    if (!st) st = sl_sym_eigen(k, M2z, w, V);
    if (!st) {
        /* Order by decreasing |eigenvalue|; fix each column's sign by its
         * largest entry in input space. */
        size_t order[MAX_K];
        for (size_t i = 0; i < k; ++i) {
            size_t j = i;
            while (j > 0 && fabs(w[order[j - 1]]) < fabs(w[i])) {
                order[j] = order[j - 1];
                --j;
            }
            order[j] = i;
        }
        const double first = fabs(w[order[0]]), kth = fabs(w[order[k - 1]]);
        if (!isfinite(first) || !(kth > 1e-12 * first))
            st = sl_error(SL_ENUMERIC,
                          "the projected M2 has no %zu-dimensional signal: eigenvalue %g against "
                          "%g",
                          k, w[order[k - 1]], w[order[0]]);
        for (size_t cidx = 0; cidx < k && !st; ++cidx) {
            const size_t src = order[cidx];
            m->evals[cidx] = w[src];
            double col[64];
            double *u = d <= 64 ? col : NULL;
            size_t imax = 0;
            double vmax = -1.0;
            for (size_t a = 0; a < d; ++a) {
                double v = 0.0;
                for (size_t e = 0; e < k; ++e) v += U0[a * k + e] * V[e * k + src];
                if (u) u[a] = v;
                m->U[a * k + cidx] = v;
                if (fabs(v) > vmax) {
                    vmax = fabs(v);
                    imax = a;
                }
            }
            const double flip = m->U[imax * k + cidx] < 0.0 ? -1.0 : 1.0;
            const double scale = 1.0 / sqrt(fabs(w[src]));
            for (size_t e = 0; e < k; ++e) Wh[e * k + cidx] = flip * V[e * k + src] * scale;
            for (size_t a = 0; a < d; ++a) {
                m->U[a * k + cidx] *= flip;
                m->P[a * k + cidx] = m->U[a * k + cidx] * scale;
            }
        }
    }
    if (!st) {
        /* The rest of the spectrum from the d-dimensional M2, on the scale
         * of the projected one. */
        if (evals_d && k < d && evals_d[0] != 0.0) {
            const double s = m->evals[0] / evals_d[0];
            for (size_t i = k; i < d; ++i) m->evals[i] = evals_d[i] * s;
        }
        /* M2 = U0 M2_z U0'. */
        for (size_t a = 0; a < d; ++a)
            for (size_t b = 0; b < d; ++b) {
                double v = 0.0;
                for (size_t e = 0; e < k; ++e)
                    for (size_t f = 0; f < k; ++f)
                        v += U0[a * k + e] * M2z[e * k + f] * U0[b * k + f];
                m->M2[a * d + b] = v;
            }
        sl_s4_contract(k, Tz, k, Wh, m->T);
        m->t_full = 1;
    }
    free(Z);
    free(Tz);
    if (st) {
        sl_moments_free(m);
        return st;
    }
    *out = m;
    return SL_OK;
}
