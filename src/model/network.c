/* The planted one-hidden-layer network: parameters from specifications,
 * outputs and noisy labels, truth files. */
#include "scoreloss/network.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* GSL's CBLAS header, not OpenBLAS's cblas.h (which clashes with the GSL
 * headers); the symbols are OpenBLAS's. */
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_randist.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/linalg.h"
#include "scoreloss/csv.h"
#include "scoreloss/rng.h"

/* Parameter draws use streams far above the block indices that labelling
 * uses, so one seed passed to set_w, set_a and label gives three unrelated
 * sequences instead of reusing stream 0. */
#define STREAM_W (UINT64_C(1) << 63)
#define STREAM_A ((UINT64_C(1) << 63) + 1)

/* The shape rules every entry point enforces: the struct is public, so a
 * caller-built one is checked as carefully as an allocated one. BLAS takes
 * int dimensions, hence the INT_MAX bound. */
static sl_status check_shape(size_t k, size_t d) {
    if (k == 0) return sl_error(SL_EINVAL, "a planted network needs k >= 1 hidden units");
    if (d == 0) return sl_error(SL_EINVAL, "a planted network needs d >= 1 inputs");
    if (k > d)
        return sl_error(SL_EINVAL, "k = %zu hidden units exceed d = %zu inputs (need k <= d)", k,
                        d);
    if (d > INT_MAX) return sl_error(SL_EINVAL, "d = %zu inputs is too large", d);
    if (k > SIZE_MAX / sizeof(double) / d)
        return sl_error(SL_ENOMEM, "a %zu x %zu weight matrix does not fit in memory", k, d);
    return SL_OK;
}

static sl_status check_net(const sl_network *net) {
    if (!net) return sl_error(SL_EINVAL, "no network given");
    sl_status st = check_shape(net->k, net->d);
    if (st) return st;
    if (!net->W || !net->a) return sl_error(SL_EINVAL, "network without weight arrays");
    if ((int)net->act < 0 || (int)net->act >= SL_ACT_COUNT)
        return sl_error(SL_EINVAL, "network with unknown activation %d", (int)net->act);
    return SL_OK;
}

sl_status sl_network_alloc(size_t k, size_t d, sl_act act, sl_network **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = NULL;
    sl_status st = check_shape(k, d);
    if (st) return st;
    if ((int)act < 0 || (int)act >= SL_ACT_COUNT)
        return sl_error(SL_EINVAL, "unknown activation %d", (int)act);
    sl_network *net = malloc(sizeof *net);
    double *W = calloc(k * d, sizeof *W);
    double *a = malloc(k * sizeof *a);
    if (!net || !W || !a) {
        free(net);
        free(W);
        free(a);
        return sl_error(SL_ENOMEM, "out of memory for a %zu x %zu network", k, d);
    }
    for (size_t i = 0; i < k; ++i) a[i] = 1.0;
    net->k = k;
    net->d = d;
    net->act = act;
    net->W = W;
    net->a = a;
    *out = net;
    return SL_OK;
}

void sl_network_free(sl_network *net) {
    if (!net) return;
    free(net->W);
    free(net->a);
    free(net);
}

/* A finite number filling s[0..len) exactly, blanks around it allowed
 * (strtod alone would accept trailing junk, "nan" and "inf"). */
static int parse_finite(const char *s, size_t len, double *v) {
    char buf[64];
    while (len > 0 && (*s == ' ' || *s == '\t')) ++s, --len;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) --len;
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    *v = strtod(buf, &end);
    return *end == '\0' && isfinite(*v);
}

/* W = U diag(s) V' with U (k x k) and V' (k x d) Haar orthonormal and s
 * geometric from 1 to 1/cond, written into W. */
static sl_status w_conditioned(size_t k, size_t d, double cond, gsl_rng *r, double *W) {
    double *U = malloc(k * k * sizeof *U);
    double *Vt = malloc(k * d * sizeof *Vt);
    sl_status st = SL_OK;
    if (!U || !Vt) st = sl_error(SL_ENOMEM, "out of memory for a %zu x %zu matrix", k, d);
    if (!st) st = sl_random_orthonormal_rows(k, k, r, U);
    if (!st) st = sl_random_orthonormal_rows(k, d, r, Vt);
    if (!st) {
        /* The last value is set exactly so cond(W) = cond up to the SVD's
         * rounding, not pow's. */
        for (size_t i = 0; i < k; ++i) {
            double s = (i + 1 == k && k > 1) ? 1.0 / cond
                       : i == 0              ? 1.0
                                             : pow(cond, -(double)i / (double)(k - 1));
            cblas_dscal((int)d, s, Vt + i * d, 1);
        }
        sl_matmul(k, k, d, U, Vt, W);
    }
    free(U);
    free(Vt);
    return st;
}

sl_status sl_network_set_w(sl_network *net, const char *spec, uint64_t seed) {
    if (!spec) return sl_error(SL_EINVAL, "no W spec given");
    sl_status st = check_net(net);
    if (st) return sl_error_prefix(st, "W spec '%s': ", spec);
    size_t k = net->k, d = net->d;

    enum { W_ORTHONORMAL, W_IDENTITY, W_RANDOM, W_RANDOM_COND } kind;
    double cond = 1.0;
    if (strcmp(spec, "orthonormal") == 0)
        kind = W_ORTHONORMAL;
    else if (strcmp(spec, "identity") == 0)
        kind = W_IDENTITY;
    else if (strcmp(spec, "random") == 0)
        kind = W_RANDOM;
    else if (strncmp(spec, "random:", 7) == 0) {
        kind = W_RANDOM_COND;
        if (!parse_finite(spec + 7, strlen(spec + 7), &cond) || !(cond >= 1.0))
            return sl_error(SL_EINVAL, "W spec '%s': COND must be a finite number >= 1", spec);
        /* One row always has condition number 1: refuse rather than
         * silently deliver a different conditioning than asked for. */
        if (k == 1 && cond != 1.0)
            return sl_error(SL_EINVAL,
                            "W spec '%s': a single hidden unit has condition number 1, so "
                            "COND must be 1",
                            spec);
    } else
        return sl_error(SL_EINVAL,
                        "unknown W spec '%s' (expected orthonormal, identity, random or "
                        "random:COND)",
                        spec);

    if (kind == W_IDENTITY) {
        memset(net->W, 0, k * d * sizeof *net->W);
        for (size_t i = 0; i < k; ++i) net->W[i * d + i] = 1.0;
        return SL_OK;
    }

    /* Build into a copy so a failure leaves the network as it was. */
    double *Wnew = malloc(k * d * sizeof *Wnew);
    gsl_rng *r = sl_rng_alloc(seed, STREAM_W);
    if (!Wnew || !r) {
        free(Wnew);
        if (r) gsl_rng_free(r);
        return sl_error(SL_ENOMEM, "W spec '%s': out of memory", spec);
    }
    switch (kind) {
    case W_ORTHONORMAL:
        st = sl_random_orthonormal_rows(k, d, r, Wnew);
        break;
    case W_RANDOM:
        for (size_t i = 0; i < k && !st; ++i) {
            double *row = Wnew + i * d;
            for (size_t j = 0; j < d; ++j) row[j] = gsl_ran_gaussian(r, 1.0);
            double norm = cblas_dnrm2((int)d, row, 1);
            if (!(norm > 0.0))
                st = sl_error(SL_ENUMERIC, "W spec '%s': drew a zero row", spec);
            else
                cblas_dscal((int)d, 1.0 / norm, row, 1);
        }
        break;
    case W_RANDOM_COND:
        st = w_conditioned(k, d, cond, r, Wnew);
        break;
    case W_IDENTITY:
        break;
    }
    gsl_rng_free(r);
    if (st)
        sl_error_prefix(st, "W spec '%s': ", spec);
    else
        memcpy(net->W, Wnew, k * d * sizeof *Wnew);
    free(Wnew);
    return st;
}

sl_status sl_network_set_a(sl_network *net, const char *spec, uint64_t seed) {
    if (!spec) return sl_error(SL_EINVAL, "no a spec given");
    sl_status st = check_net(net);
    if (st) return sl_error_prefix(st, "a spec '%s': ", spec);
    size_t k = net->k;

    if (strcmp(spec, "ones") == 0) {
        for (size_t i = 0; i < k; ++i) net->a[i] = 1.0;
        return SL_OK;
    }
    if (strcmp(spec, "positive") == 0) {
        gsl_rng *r = sl_rng_alloc(seed, STREAM_A);
        if (!r) return sl_error_prefix(SL_ENOMEM, "a spec '%s': ", spec);
        for (size_t i = 0; i < k; ++i) net->a[i] = gsl_ran_flat(r, 0.5, 1.5);
        gsl_rng_free(r);
        return SL_OK;
    }

    /* A comma list: parsed in full into a copy first, so a bad item or a
     * wrong count leaves a unchanged. */
    double *vals = malloc(k * sizeof *vals);
    if (!vals) return sl_error(SL_ENOMEM, "a spec '%s': out of memory", spec);
    size_t count = 0;
    const char *p = spec;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        double v;
        if (!parse_finite(p, len, &v)) {
            free(vals);
            if (count == 0 && !comma)
                return sl_error(SL_EINVAL,
                                "unknown a spec '%s' (expected ones, positive or k = %zu "
                                "comma-separated numbers)",
                                spec, k);
            return sl_error(SL_EINVAL, "a spec '%s': item %zu ('%.*s') is not a finite number",
                            spec, count + 1, (int)(len < 40 ? len : 40), p);
        }
        if (count < k) vals[count] = v;
        ++count;
        if (!comma) break;
        p = comma + 1;
    }
    if (count != k) {
        free(vals);
        return sl_error(SL_EINVAL, "a spec '%s' gives %zu values but the network has k = %zu", spec,
                        count, k);
    }
    memcpy(net->a, vals, k * sizeof *vals);
    free(vals);
    return SL_OK;
}

/* Outputs of `rows` rows of X: Z = X W' by dgemm, sigma applied in place,
 * then y = sigma(Z) a by dgemv. Z is rows x k scratch. */
static void predict_rows(const sl_network *net, size_t rows, const double *X, double *Z,
                         double *y) {
    int k = (int)net->k, d = (int)net->d;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, k, d, 1.0, X, d, net->W, d, 0.0,
                Z, k);
    for (size_t i = 0; i < rows * net->k; ++i) Z[i] = sl_act_eval(net->act, 0, Z[i]);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)rows, k, 1.0, Z, k, net->a, 1, 0.0, y, 1);
}

/* predict and label share this loop, so noise 0 reproduces predict bit for
 * bit. Rows go in fixed blocks of SL_RNG_BLOCK, block b drawing its noise
 * from stream b: the BLAS calls and the draws are the same whatever the
 * number of threads, and so is the result. */
static sl_status run_blocks(const sl_network *net, size_t n, const double *X, double noise,
                            uint64_t seed, double *y) {
    if (n == 0) return SL_OK;
    size_t nblocks = (n + SL_RNG_BLOCK - 1) / SL_RNG_BLOCK;
    size_t nthreads = 1;
#ifdef _OPENMP
    nthreads = (size_t)omp_get_max_threads();
    if (nthreads > nblocks) nthreads = nblocks;
#endif
    /* One scratch block per thread, allocated once up front. */
    size_t zsize = (size_t)SL_RNG_BLOCK * net->k;
    if (zsize > SIZE_MAX / sizeof(double) / nthreads)
        return sl_error(SL_ENOMEM, "scratch for %zu hidden units does not fit in memory", net->k);
    double *Z = malloc(nthreads * zsize * sizeof *Z);
    if (!Z) return sl_error(SL_ENOMEM, "out of memory for network outputs");
    int rng_failed = 0;

#ifdef _OPENMP
#pragma omp parallel for num_threads((int)nthreads) schedule(dynamic)
#endif
    for (size_t b = 0; b < nblocks; ++b) {
        size_t tid = 0;
#ifdef _OPENMP
        tid = (size_t)omp_get_thread_num();
#endif
        size_t lo = b * SL_RNG_BLOCK;
        size_t rows = n - lo < SL_RNG_BLOCK ? n - lo : SL_RNG_BLOCK;
        predict_rows(net, rows, X + lo * net->d, Z + tid * zsize, y + lo);
        if (noise > 0.0) {
            gsl_rng *r = sl_rng_alloc(seed, b);
            if (!r) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
                rng_failed = 1;
                continue;
            }
            for (size_t j = 0; j < rows; ++j) y[lo + j] += gsl_ran_gaussian(r, noise);
            gsl_rng_free(r);
        }
    }
    free(Z);
    /* Messages are thread-local: a worker's message is lost, so record one
     * here on the calling thread. */
    if (rng_failed) return sl_error(SL_ENOMEM, "cannot allocate the random streams for labels");
    return SL_OK;
}

static sl_status check_io(const sl_network *net, size_t n, const double *X, const double *y) {
    sl_status st = check_net(net);
    if (st) return st;
    if (n > 0 && (!X || !y)) return sl_error(SL_EINVAL, "no input or output array given");
    if (n > 0 && net->d > SIZE_MAX / n / sizeof(double))
        return sl_error(SL_EINVAL, "%zu rows of %zu inputs exceed the address space", n, net->d);
    return SL_OK;
}

sl_status sl_network_predict(const sl_network *net, size_t n, const double *X, double *y) {
    sl_status st = check_io(net, n, X, y);
    if (st) return st;
    return run_blocks(net, n, X, 0.0, 0, y);
}

sl_status sl_network_label(const sl_network *net, size_t n, const double *X, double noise,
                           uint64_t seed, double *y) {
    sl_status st = check_io(net, n, X, y);
    if (st) return st;
    if (!(noise >= 0.0) || !isfinite(noise))
        return sl_error(SL_EINVAL, "noise standard deviation %g must be finite and >= 0", noise);
    return run_blocks(net, n, X, noise, seed, y);
}

sl_status sl_network_read(const char *path, sl_act act, sl_network **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = NULL;
    if (!path) return sl_error(SL_EINVAL, "no truth file given");
    sl_table *t = NULL;
    sl_status st = sl_csv_read(path, &t);
    if (st) return st;
    size_t d = 0, k = t->rows;
    double *W = NULL;
    sl_network *net = NULL;
    st = sl_table_prefixed(t, "w", &d, &W);
    if (!st && k == 0) st = sl_error(SL_EFORMAT, "%s: no hidden units (no data rows)", path);
    if (!st && k > d)
        st = sl_error(SL_EFORMAT,
                      "%s: %zu hidden units (rows) but %zu inputs (w1..w%zu); a planted network "
                      "needs k <= d",
                      path, k, d, d);
    if (!st) {
        st = sl_network_alloc(k, d, act, &net);
        if (st) sl_error_prefix(st, "%s: ", path);
    }
    if (!st) {
        static const char *const a_name[] = {"a"};
        st = sl_table_extract(t, 1, a_name, net->a);
    }
    if (!st) memcpy(net->W, W, k * d * sizeof *W);
    free(W);
    sl_table_free(t);
    if (st) {
        sl_network_free(net);
        return st;
    }
    *out = net;
    return SL_OK;
}

sl_status sl_network_write(const sl_network *net, const char *path, const char *comment) {
    sl_status st = check_net(net);
    if (st) return st;
    if (!path) return sl_error(SL_EINVAL, "no truth file given");
    size_t k = net->k, d = net->d;
    /* The reader rejects NaN and Inf, so never write a file it cannot read
     * back. */
    if (!sl_all_finite(k * d, net->W) || !sl_all_finite(k, net->a))
        return sl_error(SL_ENUMERIC, "%s: the network has non-finite weights", path);
    char **wnames = sl_names_numbered("w", d);
    const char **names = malloc((d + 1) * sizeof *names);
    double *data = malloc(k * (d + 1) * sizeof *data);
    if (!wnames || !names || !data) {
        st = sl_error(SL_ENOMEM, "%s: out of memory", path);
    } else {
        names[0] = "a";
        for (size_t j = 0; j < d; ++j) names[j + 1] = wnames[j];
        for (size_t i = 0; i < k; ++i) {
            data[i * (d + 1)] = net->a[i];
            memcpy(data + i * (d + 1) + 1, net->W + i * d, d * sizeof *data);
        }
        st = sl_csv_write(path, comment, k, d + 1, names, data, d + 1);
    }
    free(wnames);
    free(names);
    free(data);
    return st;
}
