/* Check suite for the planted network (src/model/act.c, network.c). */
#include "scoreloss/network.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/linalg.h"
#include "scoreloss/csv.h"
#include "scoreloss/rng.h"
#include "testutil.h"

static const sl_act all_acts[SL_ACT_COUNT] = {SL_ACT_RELU, SL_ACT_SIGMOID,  SL_ACT_TANH,
                                              SL_ACT_ERF,  SL_ACT_SOFTPLUS, SL_ACT_QUADRATIC,
                                              SL_ACT_CUBIC};

/* A network with W from spec and a from a_spec, asserting success. */
static sl_network *make_net(size_t k, size_t d, sl_act act, const char *w_spec, const char *a_spec,
                            uint64_t seed) {
    sl_network *net = NULL;
    ck_assert_int_eq(sl_network_alloc(k, d, act, &net), SL_OK);
    ck_assert_msg(sl_network_set_w(net, w_spec, seed) == SL_OK, "%s", sl_last_error());
    ck_assert_msg(sl_network_set_a(net, a_spec, seed) == SL_OK, "%s", sl_last_error());
    return net;
}

/* n x d standard Gaussian inputs from (seed, 0). */
static double *gaussian_inputs(size_t n, size_t d, uint64_t seed) {
    double *X = malloc(n * d * sizeof *X);
    ck_assert_ptr_nonnull(X);
    gsl_rng *r = sl_rng_alloc(seed, 0);
    for (size_t i = 0; i < n * d; ++i) X[i] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    return X;
}

static void assert_message_has(const char *needle) {
    ck_assert_msg(strstr(sl_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                  sl_last_error(), needle);
}

/* ---- activations ---- */

START_TEST(test_act_names) {
    for (int i = 0; i < SL_ACT_COUNT; ++i) {
        sl_act act;
        const char *name = sl_act_name(all_acts[i]);
        ck_assert_int_eq(sl_act_from_name(name, &act), SL_OK);
        ck_assert_int_eq(act, all_acts[i]);
    }
    ck_assert_str_eq(sl_act_name(SL_ACT_RELU), "relu");
    ck_assert_str_eq(sl_act_name(SL_ACT_CUBIC), "cubic");
    sl_act act = SL_ACT_TANH;
    ck_assert_int_eq(sl_act_from_name("leaky_relu", &act), SL_EINVAL);
    ck_assert_int_eq(act, SL_ACT_TANH); /* untouched on failure */
    assert_message_has("leaky_relu");
    static const char *const valid[] = {"relu",     "sigmoid",   "tanh", "erf",
                                        "softplus", "quadratic", "cubic"};
    for (int i = 0; i < SL_ACT_COUNT; ++i) assert_message_has(valid[i]);
    ck_assert_int_eq(sl_act_from_name("ReLU", &act), SL_EINVAL);
    ck_assert_int_eq(sl_act_from_name(NULL, &act), SL_EINVAL);
}
END_TEST

START_TEST(test_act_known_values) {
    const double tol = 1e-15;
    const double two_sqrtpi = 2.0 / sqrt(M_PI);
    struct {
        sl_act act;
        int order;
        double z, want;
    } cases[] = {
        {SL_ACT_RELU, 0, 2.5, 2.5},
        {SL_ACT_RELU, 0, -1.0, 0.0},
        {SL_ACT_RELU, 1, 0.3, 1.0},
        {SL_ACT_RELU, 1, -0.3, 0.0},
        {SL_ACT_RELU, 2, 0.3, 0.0},
        {SL_ACT_RELU, 4, -0.3, 0.0},
        {SL_ACT_SIGMOID, 0, 0.0, 0.5},
        {SL_ACT_SIGMOID, 1, 0.0, 0.25},
        {SL_ACT_SIGMOID, 2, 0.0, 0.0},
        {SL_ACT_SIGMOID, 3, 0.0, -0.125},
        {SL_ACT_SIGMOID, 4, 0.0, 0.0},
        {SL_ACT_SIGMOID, 0, log(3.0), 0.75},
        {SL_ACT_SIGMOID, 1, log(3.0), 0.1875},
        {SL_ACT_TANH, 0, 0.0, 0.0},
        {SL_ACT_TANH, 1, 0.0, 1.0},
        {SL_ACT_TANH, 2, 0.0, 0.0},
        {SL_ACT_TANH, 3, 0.0, -2.0},
        {SL_ACT_TANH, 4, 0.0, 0.0},
        {SL_ACT_ERF, 0, 0.0, 0.0},
        {SL_ACT_ERF, 1, 0.0, two_sqrtpi},
        {SL_ACT_ERF, 2, 0.0, 0.0},
        {SL_ACT_ERF, 3, 0.0, -2.0 * two_sqrtpi},
        {SL_ACT_ERF, 4, 0.0, 0.0},
        {SL_ACT_ERF, 1, 1.0, two_sqrtpi * exp(-1.0)},
        {SL_ACT_SOFTPLUS, 0, 0.0, log(2.0)},
        {SL_ACT_SOFTPLUS, 1, 0.0, 0.5},
        {SL_ACT_SOFTPLUS, 2, 0.0, 0.25},
        {SL_ACT_SOFTPLUS, 3, 0.0, 0.0},
        {SL_ACT_SOFTPLUS, 4, 0.0, -0.125},
        {SL_ACT_QUADRATIC, 0, 3.0, 9.0},
        {SL_ACT_QUADRATIC, 1, 3.0, 6.0},
        {SL_ACT_QUADRATIC, 2, 3.0, 2.0},
        {SL_ACT_QUADRATIC, 3, 3.0, 0.0},
        {SL_ACT_QUADRATIC, 4, 3.0, 0.0},
        {SL_ACT_CUBIC, 0, 2.0, 8.0},
        {SL_ACT_CUBIC, 1, 2.0, 12.0},
        {SL_ACT_CUBIC, 2, 2.0, 12.0},
        {SL_ACT_CUBIC, 3, 2.0, 6.0},
        {SL_ACT_CUBIC, 4, 2.0, 0.0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {
        double got = sl_act_eval(cases[c].act, cases[c].order, cases[c].z);
        ck_assert_msg(fabs(got - cases[c].want) <= tol * (1.0 + fabs(cases[c].want)),
                      "%s order %d at %g: %.17g, want %.17g", sl_act_name(cases[c].act),
                      cases[c].order, cases[c].z, got, cases[c].want);
    }
    for (int i = 0; i < SL_ACT_COUNT; ++i) {
        ck_assert(isnan(sl_act_eval(all_acts[i], -1, 0.5)));
        ck_assert(isnan(sl_act_eval(all_acts[i], 5, 0.5)));
        ck_assert(isnan(sl_act_eval(all_acts[i], 0, NAN)));
    }
}
END_TEST

/* Derivative of order m against the central difference of order m - 1.
 * With step h the truncation error is h^2/6 |f^(m+2)| and the rounding
 * error about eps |f^(m-1)| / h; on |z| <= 4 every f^(j) here is O(10), so
 * h = 1e-4 gives errors ~1e-8 and 1e-6 relative to the values' scale has a
 * margin of 100 while a wrong coefficient is off by O(1). */
START_TEST(test_act_finite_differences) {
    const double h = 1e-4, tol = 1e-6;
    for (int i = 0; i < SL_ACT_COUNT; ++i) {
        sl_act act = all_acts[i];
        for (double z = -3.95; z <= 4.0; z += 0.1) {
            /* The grid never hits relu's kink at 0: |z| >= 0.05 > h. */
            for (int m = 1; m <= 4; ++m) {
                double fd =
                    (sl_act_eval(act, m - 1, z + h) - sl_act_eval(act, m - 1, z - h)) / (2.0 * h);
                double exact = sl_act_eval(act, m, z);
                double scale = fmax(1.0, fmax(fabs(exact), fabs(sl_act_eval(act, m - 1, z))));
                ck_assert_msg(fabs(fd - exact) <= tol * scale,
                              "%s order %d at z = %g: analytic %.12g, finite difference %.12g",
                              sl_act_name(act), m, z, exact, fd);
            }
        }
    }
}
END_TEST

/* In the tails the derivatives are tiny and must keep their relative
 * accuracy (a naive 1 - tanh^2 or s (1 - s) gives 0 there). The references
 * are the leading asymptotics, whose own relative error is O(e^-40). */
START_TEST(test_act_tails) {
    const double tol = 1e-13;
    double e40 = exp(-40.0);
    for (int m = 1; m <= 4; ++m) {
        /* sigmoid(z) = e^z - e^2z + ... for z -> -inf; odd/even symmetry
         * sigmoid(-z) = 1 - sigmoid(z) gives the other tail. */
        double lo = sl_act_eval(SL_ACT_SIGMOID, m, -40.0);
        double hi = sl_act_eval(SL_ACT_SIGMOID, m, 40.0);
        ck_assert_msg(fabs(lo - e40) <= tol * e40, "sigmoid order %d at -40: %g", m, lo);
        double want_hi = (m % 2 ? 1.0 : -1.0) * e40;
        ck_assert_msg(fabs(hi - want_hi) <= tol * e40, "sigmoid order %d at 40: %g", m, hi);
        /* tanh(z) = 1 - 2 e^-2z + ... for z -> +inf, odd. */
        double want_t = (m % 2 ? 1.0 : -1.0) * ldexp(e40, m + 1);
        double t_hi = sl_act_eval(SL_ACT_TANH, m, 20.0);
        double t_lo = sl_act_eval(SL_ACT_TANH, m, -20.0);
        ck_assert_msg(fabs(t_hi - want_t) <= tol * fabs(want_t), "tanh order %d at 20: %g", m,
                      t_hi);
        double want_tlo = (m % 2 ? 1.0 : -1.0) * want_t;
        ck_assert_msg(fabs(t_lo - want_tlo) <= tol * fabs(want_t), "tanh order %d at -20: %g", m,
                      t_lo);
    }
    for (int m = 0; m <= 4; ++m) {
        /* softplus(z) = e^z - e^2z/2 + ... for z -> -inf. */
        double sp = sl_act_eval(SL_ACT_SOFTPLUS, m, -40.0);
        ck_assert_msg(fabs(sp - e40) <= tol * e40, "softplus order %d at -40: %g", m, sp);
    }
    ck_assert_double_eq(sl_act_eval(SL_ACT_SOFTPLUS, 0, 40.0), 40.0);
    ck_assert_double_eq(sl_act_eval(SL_ACT_SOFTPLUS, 0, 800.0), 800.0);
    ck_assert_double_eq(sl_act_eval(SL_ACT_SOFTPLUS, 1, 40.0), 1.0);
    ck_assert_double_eq(sl_act_eval(SL_ACT_SIGMOID, 0, -800.0), 0.0);
    ck_assert_double_eq(sl_act_eval(SL_ACT_SIGMOID, 0, 800.0), 1.0);

    /* Far tails: finite, no NaN from inf * 0 or overflow in exp. */
    const double far[] = {-1e300, -1e103, -800.0, -40.0, 40.0, 800.0, 1e103, 1e300};
    const sl_act smooth[] = {SL_ACT_SIGMOID, SL_ACT_TANH, SL_ACT_ERF, SL_ACT_SOFTPLUS};
    for (size_t i = 0; i < sizeof smooth / sizeof smooth[0]; ++i)
        for (size_t j = 0; j < sizeof far / sizeof far[0]; ++j)
            for (int m = 0; m <= 4; ++m) {
                double v = sl_act_eval(smooth[i], m, far[j]);
                ck_assert_msg(isfinite(v), "%s order %d at %g is %g", sl_act_name(smooth[i]), m,
                              far[j], v);
                if (m >= 2 || (m == 1 && smooth[i] != SL_ACT_SOFTPLUS))
                    if (fabs(far[j]) >= 800.0) ck_assert_double_eq(v, 0.0);
            }
    ck_assert_double_eq(sl_act_eval(SL_ACT_ERF, 0, 1e300), 1.0);
    ck_assert_double_eq(sl_act_eval(SL_ACT_ERF, 0, -1e300), -1.0);
}
END_TEST

/* ---- allocation and W ---- */

START_TEST(test_alloc) {
    sl_network *net = NULL;
    ck_assert_int_eq(sl_network_alloc(3, 5, SL_ACT_RELU, &net), SL_OK);
    ck_assert_uint_eq(net->k, 3);
    ck_assert_uint_eq(net->d, 5);
    ck_assert_int_eq(net->act, SL_ACT_RELU);
    for (size_t i = 0; i < 15; ++i) ck_assert_double_eq(net->W[i], 0.0);
    for (size_t i = 0; i < 3; ++i) ck_assert_double_eq(net->a[i], 1.0);
    sl_network_free(net);
    sl_network_free(NULL);

    sl_network dummy;
    net = &dummy; /* must be reset to NULL on failure */
    ck_assert_int_eq(sl_network_alloc(0, 5, SL_ACT_RELU, &net), SL_EINVAL);
    ck_assert_ptr_null(net);
    assert_message_has("k >= 1");
    ck_assert_int_eq(sl_network_alloc(6, 5, SL_ACT_RELU, &net), SL_EINVAL);
    ck_assert_ptr_null(net);
    assert_message_has("k = 6");
    ck_assert_int_eq(sl_network_alloc(1, 0, SL_ACT_RELU, &net), SL_EINVAL);
    ck_assert_int_eq(sl_network_alloc(1, 2, (sl_act)SL_ACT_COUNT, &net), SL_EINVAL);
}
END_TEST

/* max |W W' - I| over the k x k Gram matrix. */
static double gram_defect(const sl_network *net) {
    double worst = 0.0;
    for (size_t i = 0; i < net->k; ++i)
        for (size_t j = 0; j < net->k; ++j) {
            double s = 0.0;
            for (size_t l = 0; l < net->d; ++l)
                s += net->W[i * net->d + l] * net->W[j * net->d + l];
            worst = fmax(worst, fabs(s - (i == j ? 1.0 : 0.0)));
        }
    return worst;
}

START_TEST(test_w_orthonormal) {
    const size_t shapes[][2] = {{1, 1}, {1, 4}, {3, 7}, {5, 5}, {10, 50}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s) {
        sl_network *net =
            make_net(shapes[s][0], shapes[s][1], SL_ACT_RELU, "orthonormal", "ones", 7);
        ck_assert_msg(gram_defect(net) <= 1e-12, "k=%zu d=%zu: |WW'-I| = %g", net->k, net->d,
                      gram_defect(net));
        sl_network *same = make_net(net->k, net->d, SL_ACT_RELU, "orthonormal", "ones", 7);
        sl_network *other = make_net(net->k, net->d, SL_ACT_RELU, "orthonormal", "ones", 8);
        ck_assert_mem_eq(net->W, same->W, net->k * net->d * sizeof(double));
        /* A 1 x 1 orthonormal matrix is +-1: two seeds agree half the time. */
        if (net->d > 1) ck_assert(memcmp(net->W, other->W, net->k * net->d * sizeof(double)) != 0);
        sl_network_free(net);
        sl_network_free(same);
        sl_network_free(other);
    }
}
END_TEST

START_TEST(test_w_identity) {
    sl_network *net = make_net(3, 5, SL_ACT_RELU, "identity", "ones", 1);
    for (size_t i = 0; i < 3; ++i)
        for (size_t j = 0; j < 5; ++j) ck_assert_double_eq(net->W[i * 5 + j], i == j ? 1.0 : 0.0);
    sl_network_free(net);
}
END_TEST

START_TEST(test_w_random) {
    sl_network *net = make_net(4, 6, SL_ACT_RELU, "random", "ones", 3);
    for (size_t i = 0; i < 4; ++i) {
        double s = 0.0;
        for (size_t j = 0; j < 6; ++j) s += net->W[i * 6 + j] * net->W[i * 6 + j];
        ck_assert_double_eq_tol(s, 1.0, 1e-14);
    }
    /* Not orthonormal: random rows are not orthogonal. */
    ck_assert(gram_defect(net) > 1e-3);
    sl_network_free(net);
}
END_TEST

/* random:COND: singular values exactly geometric from 1 to 1/COND. LAPACK's
 * SVD is backward stable, so singular values of a well-scaled matrix carry
 * absolute error ~ k eps |W|; relative to 1/COND that is k eps COND, far
 * below 1e-8 for COND <= 1e4. */
START_TEST(test_w_random_cond) {
    const double conds[] = {1.0, 10.0, 1000.0, 1e4};
    const size_t shapes[][2] = {{2, 2}, {4, 9}, {6, 6}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; ++s)
        for (size_t c = 0; c < sizeof conds / sizeof conds[0]; ++c) {
            size_t k = shapes[s][0], d = shapes[s][1];
            char spec[64];
            snprintf(spec, sizeof spec, "random:%g", conds[c]);
            sl_network *net = make_net(k, d, SL_ACT_RELU, spec, "ones", 11 + c);
            double sv[16];
            ck_assert_int_eq(sl_svd(k, d, net->W, sv, NULL, NULL), SL_OK);
            double cond = sv[0] / sv[k - 1];
            ck_assert_msg(fabs(cond - conds[c]) <= 1e-8 * conds[c], "%s k=%zu d=%zu: cond %.15g",
                          spec, k, d, cond);
            for (size_t i = 0; i < k; ++i) {
                double want = pow(conds[c], -(double)i / (double)(k - 1));
                ck_assert_msg(fabs(sv[i] - want) <= 1e-10 * want * conds[c],
                              "%s: singular value %zu is %.15g, want %.15g", spec, i, sv[i], want);
            }
            sl_network_free(net);
        }
    /* COND 1 with k = 1 is the only single-row case that can be honoured. */
    sl_network *one = make_net(1, 3, SL_ACT_RELU, "random:1", "ones", 2);
    ck_assert_double_eq_tol(gram_defect(one), 0.0, 1e-14);
    sl_network_free(one);
}
END_TEST

START_TEST(test_w_bad_specs) {
    const char *bad[] = {"foo",          "Orthonormal",
                         "random:",      "random:0.5",
                         "random:0",     "random:-3",
                         "random:abc",   "random:10x",
                         "random:inf",   "random:nan",
                         "random:1e999", "identity ",
                         "random;10",    ""};
    sl_network *net = make_net(3, 5, SL_ACT_RELU, "identity", "ones", 1);
    double before[15];
    memcpy(before, net->W, sizeof before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        sl_error_clear();
        ck_assert_msg(sl_network_set_w(net, bad[i], 1) == SL_EINVAL, "spec '%s' accepted", bad[i]);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        assert_message_has(quoted);
        ck_assert(strchr(sl_last_error(), '\n') == NULL);
        ck_assert_mem_eq(net->W, before, sizeof before); /* untouched */
    }
    ck_assert_int_eq(sl_network_set_w(net, NULL, 1), SL_EINVAL);
    sl_network_free(net);

    /* A single row cannot have condition number 10. */
    sl_network *one = NULL;
    ck_assert_int_eq(sl_network_alloc(1, 4, SL_ACT_RELU, &one), SL_OK);
    ck_assert_int_eq(sl_network_set_w(one, "random:10", 1), SL_EINVAL);
    assert_message_has("'random:10'");
    sl_network_free(one);

    /* The struct is public; a hand-built one with k > d is refused, not
     * written past its end. */
    double W[6] = {0}, a[3] = {1, 1, 1};
    sl_network hand = {.k = 3, .d = 2, .act = SL_ACT_RELU, .W = W, .a = a};
    ck_assert_int_eq(sl_network_set_w(&hand, "identity", 1), SL_EINVAL);
    assert_message_has("'identity'");
    assert_message_has("k = 3");
    ck_assert_int_eq(sl_network_set_w(&hand, "orthonormal", 1), SL_EINVAL);
    hand.k = 0;
    ck_assert_int_eq(sl_network_set_w(&hand, "identity", 1), SL_EINVAL);
    assert_message_has("k >= 1");
    ck_assert_int_eq(sl_network_set_a(&hand, "ones", 1), SL_EINVAL);
}
END_TEST

/* ---- a ---- */

START_TEST(test_a_specs) {
    sl_network *net = NULL;
    ck_assert_int_eq(sl_network_alloc(3, 4, SL_ACT_RELU, &net), SL_OK);
    ck_assert_int_eq(sl_network_set_a(net, "1,-2.5,3e-1", 1), SL_OK);
    ck_assert_double_eq(net->a[0], 1.0);
    ck_assert_double_eq(net->a[1], -2.5);
    ck_assert_double_eq(net->a[2], 0.3);
    ck_assert_int_eq(sl_network_set_a(net, " 0.125 , 4,-0 ", 1), SL_OK);
    ck_assert_double_eq(net->a[0], 0.125);
    ck_assert_double_eq(net->a[1], 4.0);
    ck_assert_double_eq(net->a[2], 0.0);
    ck_assert_int_eq(sl_network_set_a(net, "ones", 1), SL_OK);
    for (size_t i = 0; i < 3; ++i) ck_assert_double_eq(net->a[i], 1.0);
    sl_network_free(net);

    /* positive: uniform on [0.5, 1.5]; with k = 200 the sample mean is
     * within 5 standard errors (sqrt(1/12/200) = 0.02) of 1. */
    ck_assert_int_eq(sl_network_alloc(200, 200, SL_ACT_RELU, &net), SL_OK);
    ck_assert_int_eq(sl_network_set_a(net, "positive", 5), SL_OK);
    double mean = 0.0, lo = 2.0, hi = 0.0;
    for (size_t i = 0; i < 200; ++i) {
        mean += net->a[i] / 200.0;
        lo = fmin(lo, net->a[i]);
        hi = fmax(hi, net->a[i]);
    }
    ck_assert(lo >= 0.5 && hi <= 1.5);
    ck_assert(hi - lo > 0.9); /* spread over the interval, not constant */
    ck_assert_double_eq_tol(mean, 1.0, 5.0 * sqrt(1.0 / 12.0 / 200.0));
    double first[200];
    memcpy(first, net->a, sizeof first);
    ck_assert_int_eq(sl_network_set_a(net, "positive", 5), SL_OK);
    ck_assert_mem_eq(first, net->a, sizeof first);
    ck_assert_int_eq(sl_network_set_a(net, "positive", 6), SL_OK);
    ck_assert(memcmp(first, net->a, sizeof first) != 0);
    sl_network_free(net);
}
END_TEST

START_TEST(test_a_bad_specs) {
    const char *bad[] = {"1,2",   "1,2,3,4",   "1,,3",     "1,2,", ",1,2",  "1,nan,3", "1,inf,3",
                         "1,2,x", "1e999,1,1", "negative", "",     "1;2;3", "1 2 3",   "Ones"};
    sl_network *net = NULL;
    ck_assert_int_eq(sl_network_alloc(3, 4, SL_ACT_RELU, &net), SL_OK);
    ck_assert_int_eq(sl_network_set_a(net, "1,2,3", 1), SL_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        sl_error_clear();
        ck_assert_msg(sl_network_set_a(net, bad[i], 1) == SL_EINVAL, "spec '%s' accepted", bad[i]);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "'%s'", bad[i]);
        assert_message_has(quoted);
        for (size_t j = 0; j < 3; ++j) ck_assert_double_eq(net->a[j], (double)(j + 1));
    }
    ck_assert_int_eq(sl_network_set_a(net, "1,2", 1), SL_EINVAL);
    assert_message_has("gives 2 values");
    ck_assert_int_eq(sl_network_set_a(net, NULL, 1), SL_EINVAL);
    sl_network_free(net);
}
END_TEST

/* ---- predict and label ---- */

/* Rows spanning three blocks with a partial last one. */
#define N_ROWS (2 * SL_RNG_BLOCK + 123)

START_TEST(test_predict_direct) {
    const size_t k = 4, d = 7, n = N_ROWS;
    double *X = gaussian_inputs(n, d, 21);
    double *y = malloc(n * sizeof *y);
    for (int ai = 0; ai < SL_ACT_COUNT; ++ai) {
        sl_network *net = make_net(k, d, all_acts[ai], "random:5", "0.7,-1.3,2,0.25", 4);
        ck_assert_int_eq(sl_network_predict(net, n, X, y), SL_OK);
        for (size_t j = 0; j < n; ++j) {
            /* The library's sums run in BLAS order; bound the difference by
             * the rounding of each z (d eps sum |x w|) times |a sigma'|. */
            double want = 0.0, bound = 0.0;
            for (size_t i = 0; i < k; ++i) {
                double z = 0.0, zabs = 0.0;
                for (size_t l = 0; l < d; ++l) {
                    z += X[j * d + l] * net->W[i * d + l];
                    zabs += fabs(X[j * d + l] * net->W[i * d + l]);
                }
                double term = net->a[i] * sl_act_eval(net->act, 0, z);
                want += term;
                bound += fabs(term) + fabs(net->a[i] * sl_act_eval(net->act, 1, z)) * zabs;
            }
            double tol = 8.0 * (double)(d + k) * DBL_EPSILON * bound + DBL_MIN;
            ck_assert_msg(fabs(y[j] - want) <= tol, "%s row %zu: %.17g vs %.17g",
                          sl_act_name(net->act), j, y[j], want);
        }
        sl_network_free(net);
    }
    /* n = 0 is fine and touches nothing. */
    sl_network *net = make_net(k, d, SL_ACT_RELU, "identity", "ones", 1);
    ck_assert_int_eq(sl_network_predict(net, 0, NULL, NULL), SL_OK);
    ck_assert_int_eq(sl_network_predict(net, 5, NULL, y), SL_EINVAL);
    sl_network_free(net);
    free(X);
    free(y);
}
END_TEST

START_TEST(test_label_noise_free) {
    const size_t k = 3, d = 5, n = N_ROWS;
    double *X = gaussian_inputs(n, d, 31);
    double *y0 = malloc(n * sizeof *y0), *y1 = malloc(n * sizeof *y1);
    sl_network *net = make_net(k, d, SL_ACT_TANH, "orthonormal", "positive", 9);
    ck_assert_int_eq(sl_network_predict(net, n, X, y0), SL_OK);
    ck_assert_int_eq(sl_network_label(net, n, X, 0.0, 77, y1), SL_OK);
    ck_assert_mem_eq(y0, y1, n * sizeof *y0);
    ck_assert_int_eq(sl_network_label(net, n, X, -0.1, 77, y1), SL_EINVAL);
    assert_message_has("noise");
    ck_assert_int_eq(sl_network_label(net, n, X, NAN, 77, y1), SL_EINVAL);
    ck_assert_int_eq(sl_network_label(net, n, X, INFINITY, 77, y1), SL_EINVAL);
    sl_network_free(net);
    free(X);
    free(y0);
    free(y1);
}
END_TEST

/* Residuals y - predict are N(0, sigma^2): the sample standard deviation
 * has standard error sigma / sqrt(2(n - 1)), the mean sigma / sqrt(n). */
START_TEST(test_label_noise_level) {
    const size_t k = 2, d = 3, n = 100000;
    const double sigmas[] = {0.3, 2.0};
    double *X = gaussian_inputs(n, d, 41);
    double *y0 = malloc(n * sizeof *y0), *y = malloc(n * sizeof *y);
    sl_network *net = make_net(k, d, SL_ACT_RELU, "random", "ones", 3);
    ck_assert_int_eq(sl_network_predict(net, n, X, y0), SL_OK);
    for (size_t s = 0; s < sizeof sigmas / sizeof sigmas[0]; ++s) {
        double sigma = sigmas[s];
        ck_assert_int_eq(sl_network_label(net, n, X, sigma, 100 + s, y), SL_OK);
        double mean = 0.0, ss = 0.0;
        for (size_t j = 0; j < n; ++j) mean += (y[j] - y0[j]) / (double)n;
        for (size_t j = 0; j < n; ++j) ss += (y[j] - y0[j] - mean) * (y[j] - y0[j] - mean);
        double sd = sqrt(ss / (double)(n - 1));
        double se_sd = sigma / sqrt(2.0 * (double)(n - 1));
        ck_assert_msg(fabs(sd - sigma) <= 5.0 * se_sd, "sigma %g: residual sd %g (se %g)", sigma,
                      sd, se_sd);
        ck_assert_msg(fabs(mean) <= 5.0 * sigma / sqrt((double)n), "sigma %g: residual mean %g",
                      sigma, mean);
    }
    sl_network_free(net);
    free(X);
    free(y0);
    free(y);
}
END_TEST

START_TEST(test_label_deterministic) {
    const size_t k = 3, d = 4, n = 3 * SL_RNG_BLOCK + 77;
    double *X = gaussian_inputs(n, d, 51);
    double *y1 = malloc(n * sizeof *y1), *y2 = malloc(n * sizeof *y2);
    double *y3 = malloc(n * sizeof *y3);
    sl_network *net = make_net(k, d, SL_ACT_SIGMOID, "random:3", "positive", 5);
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    ck_assert_int_eq(sl_network_label(net, n, X, 0.5, 1234, y1), SL_OK);
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    ck_assert_int_eq(sl_network_label(net, n, X, 0.5, 1234, y2), SL_OK);
    ck_assert_mem_eq(y1, y2, n * sizeof *y1);
#ifdef _OPENMP
    omp_set_num_threads(3);
    ck_assert_int_eq(sl_network_label(net, n, X, 0.5, 1234, y3), SL_OK);
    ck_assert_mem_eq(y1, y3, n * sizeof *y1);
    omp_set_num_threads(saved);
#endif
    /* Same seed again: identical; another seed: every row's noise differs. */
    ck_assert_int_eq(sl_network_label(net, n, X, 0.5, 1234, y3), SL_OK);
    ck_assert_mem_eq(y1, y3, n * sizeof *y1);
    ck_assert_int_eq(sl_network_label(net, n, X, 0.5, 1235, y3), SL_OK);
    size_t same = 0;
    for (size_t j = 0; j < n; ++j) same += y1[j] == y3[j];
    ck_assert_uint_eq(same, 0);
    sl_network_free(net);
    free(X);
    free(y1);
    free(y2);
    free(y3);
}
END_TEST

/* ---- truth files ---- */

START_TEST(test_truth_round_trip) {
    const char *path = sl_test_tmpfile("truth.csv");
    sl_network *net = make_net(4, 6, SL_ACT_SOFTPLUS, "random:7", "positive", 13);
    net->a[2] = -1.0 / 3.0; /* a value with no short decimal form */
    ck_assert_msg(sl_network_write(net, path, "activation=softplus noise=0.1") == SL_OK, "%s",
                  sl_last_error());
    sl_network *back = NULL;
    ck_assert_msg(sl_network_read(path, SL_ACT_SOFTPLUS, &back) == SL_OK, "%s", sl_last_error());
    ck_assert_uint_eq(back->k, 4);
    ck_assert_uint_eq(back->d, 6);
    ck_assert_int_eq(back->act, SL_ACT_SOFTPLUS);
    ck_assert_mem_eq(back->W, net->W, 24 * sizeof(double));
    ck_assert_mem_eq(back->a, net->a, 4 * sizeof(double));

    /* The file has the documented layout: a, w1..wd and the comment. */
    sl_table *t = NULL;
    ck_assert_int_eq(sl_csv_read(path, &t), SL_OK);
    ck_assert_uint_eq(t->cols, 7);
    ck_assert_str_eq(t->names[0], "a");
    ck_assert_str_eq(t->names[1], "w1");
    ck_assert_str_eq(t->names[6], "w6");
    ck_assert_ptr_nonnull(t->comment);
    ck_assert(strstr(t->comment, "activation=softplus") != NULL);
    sl_table_free(t);

    sl_network_free(net);
    sl_network_free(back);
}
END_TEST

START_TEST(test_truth_bad_files) {
    sl_network dummy, *net = &dummy; /* each failure must reset it to NULL */
    /* More units than inputs. */
    const char *wide = sl_test_tmpfile("k_gt_d.csv");
    sl_test_write_text(wide, "a,w1,w2\n1,1,0\n1,0,1\n1,1,1\n");
    ck_assert_int_eq(sl_network_read(wide, SL_ACT_RELU, &net), SL_EFORMAT);
    ck_assert_ptr_null(net);
    assert_message_has(wide);
    assert_message_has("k <= d");
    /* No a column. */
    const char *noa = sl_test_tmpfile("no_a.csv");
    sl_test_write_text(noa, "b,w1,w2\n1,1,0\n");
    ck_assert_int_ne(sl_network_read(noa, SL_ACT_RELU, &net), SL_OK);
    ck_assert_ptr_null(net);
    assert_message_has(noa);
    net = &dummy;
    /* No w columns. */
    const char *now = sl_test_tmpfile("no_w.csv");
    sl_test_write_text(now, "a,v1\n1,1\n");
    net = &dummy;
    ck_assert_int_ne(sl_network_read(now, SL_ACT_RELU, &net), SL_OK);
    ck_assert_ptr_null(net);
    /* Missing file. */
    net = &dummy;
    ck_assert_int_ne(sl_network_read(sl_test_tmpfile("absent.csv"), SL_ACT_RELU, &net), SL_OK);
    ck_assert_ptr_null(net);

    /* A network the reader could not read back is not written. */
    sl_network *bad = make_net(2, 2, SL_ACT_RELU, "identity", "ones", 1);
    bad->W[1] = NAN;
    const char *out = sl_test_tmpfile("nan.csv");
    ck_assert_int_eq(sl_network_write(bad, out, NULL), SL_ENUMERIC);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_null(f);
    sl_network_free(bad);
}
END_TEST

static Suite *network_suite(void) {
    Suite *s = suite_create("network");
    TCase *act = tcase_create("activations");
    tcase_add_test(act, test_act_names);
    tcase_add_test(act, test_act_known_values);
    tcase_add_test(act, test_act_finite_differences);
    tcase_add_test(act, test_act_tails);
    suite_add_tcase(s, act);
    TCase *par = tcase_create("parameters");
    tcase_add_test(par, test_alloc);
    tcase_add_test(par, test_w_orthonormal);
    tcase_add_test(par, test_w_identity);
    tcase_add_test(par, test_w_random);
    tcase_add_test(par, test_w_random_cond);
    tcase_add_test(par, test_w_bad_specs);
    tcase_add_test(par, test_a_specs);
    tcase_add_test(par, test_a_bad_specs);
    suite_add_tcase(s, par);
    TCase *out = tcase_create("outputs");
    tcase_add_test(out, test_predict_direct);
    tcase_add_test(out, test_label_noise_free);
    tcase_add_test(out, test_label_noise_level);
    tcase_add_test(out, test_label_deterministic);
    tcase_set_timeout(out, 120);
    suite_add_tcase(s, out);
    TCase *io = tcase_create("truth files");
    tcase_add_test(io, test_truth_round_trip);
    tcase_add_test(io, test_truth_bad_files);
    suite_add_tcase(s, io);
    return s;
}

int main(void) {
    return sl_test_run(network_suite());
}
