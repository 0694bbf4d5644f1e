/* Check suite for the by-name options and result accessors (src/loss/bind.c),
 * which language bindings use instead of mirroring the large structs. */
#include "scoreloss/bind.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scoreloss/rng.h"
#include "testutil.h"

static void assert_message_has(const char *needle) {
    ck_assert_msg(strstr(sl_last_error(), needle) != NULL, "message '%s' lacks '%s'",
                  sl_last_error(), needle);
}

/* ---- score options ---- */

START_TEST(test_score_options_good) {
    sl_score_options *o = NULL;
    ck_assert_int_eq(sl_score_options_alloc(&o), SL_OK);
    sl_score_options def;
    sl_score_options_default(&def);
    ck_assert(o->bandwidth.kind == def.bandwidth.kind);
    ck_assert_double_eq(o->cutoff, def.cutoff);
    static const struct {
        const char *name, *value;
    } cases[] = {{"bandwidth", "0.75"}, {"strategy", "neighbours"},
                 {"cutoff", "4.5"},     {"knn-eps", "0.25"},
                 {"shrink", "3"},       {"seed", "18446744073709551615"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        ck_assert_msg(sl_score_options_set(o, cases[i].name, cases[i].value) == SL_OK, "%s: %s",
                      cases[i].name, sl_last_error());
    ck_assert(o->bandwidth.kind == SL_BW_FIXED);
    ck_assert_double_eq(o->bandwidth.value, 0.75);
    ck_assert(o->strategy == SL_STRATEGY_NEIGHBOURS);
    ck_assert_double_eq(o->cutoff, 4.5);
    ck_assert_double_eq(o->knn_eps, 0.25);
    ck_assert_double_eq(o->shrink, 3.0);
    ck_assert(o->seed == UINT64_MAX);
    ck_assert_int_eq(sl_score_options_set(o, "bw-const", "1.5"), SL_OK);
    ck_assert(o->bandwidth.kind == SL_BW_CONST);
    ck_assert_double_eq(o->bandwidth.value, 1.5);
    sl_score_options_free(o);
    sl_score_options_free(NULL);
}
END_TEST

/* Each bad value fails with a message naming the option and leaves the
 * options as they were. */
START_TEST(test_score_options_bad) {
    static const struct {
        const char *name, *value, *message;
    } cases[] = {
        {"bandwidth", "knn:x", "option bandwidth"},
        {"bw-const", "0", "option bw-const: expected a number > 0, got '0'"},
        {"bw-const", "nan", "option bw-const"},
        {"cutoff", " 2", "option cutoff"},
        {"cutoff", "0x10", "option cutoff"},
        {"knn-eps", "-1", "option knn-eps: expected a number >= 0"},
        {"strategy", "fast", "unknown strategy 'fast' (expected auto, allpairs or neighbours)"},
        {"seed", "-3", "option seed"},
        {"seed", "18446744073709551616", "below 2^64"},
        {"nosuch", "1", "unknown score option 'nosuch'"},
        {"shrink", NULL, "option shrink"},
    };
    sl_score_options *o = NULL;
    ck_assert_int_eq(sl_score_options_alloc(&o), SL_OK);
    sl_score_options before = *o;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        ck_assert_int_eq(sl_score_options_set(o, cases[i].name, cases[i].value), SL_EINVAL);
        assert_message_has(cases[i].message);
        ck_assert(memcmp(o, &before, sizeof before) == 0);
    }
    sl_score_options_free(o);
}
END_TEST

/* ---- recover options ---- */

START_TEST(test_recover_options_good) {
    sl_recover_options *o = NULL;
    ck_assert_int_eq(sl_recover_options_alloc(3, &o), SL_OK);
    ck_assert_uint_eq(o->k, 3);
    ck_assert(o->sgd.projection == SL_PROJ_ORTHONORMAL);
    ck_assert_uint_eq(o->sgd.epochs, 0);
    static const struct {
        const char *name, *value;
    } cases[] = {{"loss", "signfree"},
                 {"score", "hermite"},
                 {"route", "projected"},
                 {"mode", "tensor"},
                 {"act", "tanh"},
                 {"mu", "-0.25"},
                 {"lambda", "0.5"},
                 {"constraint", "sphere"},
                 {"lr", "0.003"},
                 {"batch", "64"},
                 {"epochs", "7"},
                 {"restarts", "2"},
                 {"seed", "99"},
                 {"holdout", "0"},
                 {"tensor-steps", "50"},
                 {"bandwidth", "knn:9"},
                 {"shrink", "2"},
                 {"k", "2"},
                 {"s4", "kde"},
                 {"s4-bandwidth", "0.7"},
                 {"s4-reference", "all"},
                 {"u-rows", "0"},
                 {"assume", "independent"},
                 {"detrend", "3"},
                 {"refit", "2"},
                 {"refit-scale", "0.3"},
                 {"refit-rows", "1000"},
                 {"s4-thin", "zero"},
                 {"swap", "3"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i)
        ck_assert_msg(sl_recover_options_set(o, cases[i].name, cases[i].value) == SL_OK, "%s: %s",
                      cases[i].name, sl_last_error());
    ck_assert(o->loss == SL_RECOVER_SIGNFREE);
    ck_assert(sl_recover_options_landscape(o)->kind == SL_LOSS_SIGNFREE);
    ck_assert(o->score == &sl_score_hermite);
    ck_assert(o->route == SL_ROUTE_PROJECTED);
    ck_assert(o->mode == SL_MODE_TENSOR);
    ck_assert(o->act == SL_ACT_TANH);
    ck_assert_double_eq(o->landscape.mu, -0.25);
    ck_assert_double_eq(o->landscape.lambda, 0.5);
    ck_assert(sl_recover_options_projection(o) == SL_PROJ_SPHERE);
    ck_assert_double_eq(o->sgd.lr, 0.003);
    ck_assert_uint_eq(o->sgd.batch, 64);
    ck_assert_uint_eq(o->sgd.epochs, 7);
    ck_assert_uint_eq(o->sgd.restarts, 2);
    ck_assert(o->seed == 99);
    ck_assert_double_eq(o->holdout, 0.0);
    ck_assert_uint_eq(o->tensor_steps, 50);
    ck_assert(o->score_opt.bandwidth.kind == SL_BW_KNN);
    ck_assert_double_eq(o->score_opt.bandwidth.value, 9.0);
    ck_assert_double_eq(o->score_opt.shrink, 2.0);
    ck_assert_uint_eq(o->k, 2);
    ck_assert(o->s4.estimator == SL_S4_KDE);
    ck_assert_int_eq(o->detrend, 3);
    ck_assert_double_eq(o->s4.h, 0.7);
    ck_assert_uint_eq(o->s4.reference, 0);
    ck_assert_uint_eq(o->u_rows, 0);
    ck_assert_int_eq(o->assume_independent, 1);
    ck_assert_int_eq(o->refit, 2);
    ck_assert_double_eq(o->s4.cv_scale, 0.3);
    ck_assert_uint_eq(o->refit_rows, 1000);
    ck_assert_int_eq(o->s4.thin, SL_S4_THIN_ZERO);
    ck_assert_int_eq(o->swap, 3);
    ck_assert_int_eq(sl_recover_options_set(o, "refit", "auto"), SL_OK);
    ck_assert_int_eq(o->refit, -1);
    sl_s4_options s4def;
    sl_s4_options_default(&s4def);
    ck_assert_int_eq(sl_recover_options_set(o, "s4-bandwidth", "auto"), SL_OK);
    ck_assert_double_eq(o->s4.h, s4def.h);
    ck_assert_int_eq(sl_recover_options_set(o, "s4-reference", "auto"), SL_OK);
    ck_assert_uint_eq(o->s4.reference, s4def.reference);
    ck_assert_int_eq(sl_recover_options_set(o, "assume", "none"), SL_OK);
    ck_assert_int_eq(o->assume_independent, 0);
    ck_assert_int_eq(sl_recover_options_set(o, "epochs", "auto"), SL_OK);
    ck_assert_uint_eq(o->sgd.epochs, 0);
    ck_assert_int_eq(sl_recover_options_set(o, "constraint", "auto"), SL_OK);
    ck_assert(o->sgd.projection == SL_PROJ_ORTHONORMAL);
    sl_recover_options_free(o);
    sl_recover_options_free(NULL);
}
END_TEST

START_TEST(test_recover_options_bad) {
    static const struct {
        const char *name, *value, *message;
    } cases[] = {
        {"k", "0", "option k: expected an integer >= 1, got '0'"},
        {"loss", "l3", "unknown loss 'l3' (expected landscape, signfree or l2)"},
        {"score", "nn", "unknown score source 'nn'"},
        {"route", "x", "option route"},
        {"act", "step", "option act:"},
        {"lr", "0", "option lr: expected a number > 0"},
        {"lambda", "-1", "option lambda"},
        {"restarts", "100001", "option restarts: expected an integer from 1 to 100000"},
        {"holdout", "1", "option holdout: expected a number in [0, 1)"},
        {"epochs", "0", "option epochs"},
        {"batch", "1.5", "option batch"},
        {"seed", "", "option seed"},
        {"cutoff", "-2", "option cutoff"},
        {"s4", "spline", "option s4:"},
        {"s4-bandwidth", "0", "option s4-bandwidth: expected a number > 0 or auto"},
        {"s4-reference", "0", "option s4-reference"},
        {"u-rows", "-1", "option u-rows"},
        {"detrend", "5", "option detrend"},
        {"refine", "als", "unknown refine 'als' (expected auto, cp or none)"},
        {"refit", "21", "option refit: expected an integer from 0 to 20"},
        {"refit-scale", "0", "option refit-scale: expected a number > 0"},
        {"refit-rows", "x", "option refit-rows"},
        {"swap", "11", "option swap: expected an integer from 0 to 10"},
        {"s4-thin", "none", "option s4-thin: unknown rule for thin neighbourhoods 'none'"},
        {"assume", "gaussian", "unknown assume 'gaussian' (expected none or independent)"},
        {"nosuch", "1", "unknown recover option 'nosuch'"},
    };
    sl_recover_options *o = NULL;
    ck_assert_int_eq(sl_recover_options_alloc(2, &o), SL_OK);
    sl_recover_options before = *o;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        ck_assert_int_eq(sl_recover_options_set(o, cases[i].name, cases[i].value), SL_EINVAL);
        assert_message_has(cases[i].message);
        ck_assert(memcmp(o, &before, sizeof before) == 0);
    }
    sl_recover_options_free(o);
}
END_TEST

/* ---- results ---- */

/* A small run read back through the accessors, against the struct. */
START_TEST(test_recover_result_accessors) {
    const size_t n = 600, d = 3, k = 2;
    sl_dist *dist = NULL;
    sl_network *net = NULL;
    double *X = malloc(n * d * sizeof *X), *y = malloc(n * sizeof *y);
    ck_assert_ptr_nonnull(X);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(sl_dist_from_spec("gauss", d, &dist), SL_OK);
    ck_assert_int_eq(sl_dist_sample(dist, 4, n, X), SL_OK);
    ck_assert_int_eq(sl_network_alloc(k, d, SL_ACT_RELU, &net), SL_OK);
    ck_assert_int_eq(sl_network_set_w(net, "orthonormal", 4), SL_OK);
    ck_assert_int_eq(sl_network_label(net, n, X, 0.0, 4, y), SL_OK);
    sl_recover_options *o = NULL;
    ck_assert_int_eq(sl_recover_options_alloc(k, &o), SL_OK);
    ck_assert_int_eq(sl_recover_options_set(o, "score", "hermite"), SL_OK);
    ck_assert_int_eq(sl_recover_options_set(o, "epochs", "1"), SL_OK);
    ck_assert_int_eq(sl_recover_options_set(o, "restarts", "2"), SL_OK);
    sl_recover_options_set_truth(o, net);
    sl_recover_result *r = NULL;
    ck_assert_msg(sl_recover(o, n, d, X, y, &r) == SL_OK, "%s", sl_last_error());

    const double *p = NULL;
    size_t len = 0;
    ck_assert_int_eq(sl_recover_result_array(r, "W_hat", &p, &len), SL_OK);
    ck_assert_ptr_eq(p, r->W_hat);
    ck_assert_uint_eq(len, k * d);
    ck_assert_int_eq(sl_recover_result_array(r, "restart_W", &p, &len), SL_OK);
    ck_assert_uint_eq(len, 2 * k * d);
    ck_assert_int_eq(sl_recover_result_array(r, "restart_loss", &p, &len), SL_OK);
    ck_assert_ptr_eq(p, r->sgd->restart_loss);
    ck_assert_int_eq(sl_recover_result_array(r, "nosuch", &p, &len), SL_EINVAL);
    double v = 0.0;
    ck_assert_int_eq(sl_recover_result_number(r, "err_max", &v), SL_OK);
    ck_assert_double_eq(v, r->error.err_max);
    ck_assert_int_eq(sl_recover_result_number(r, "ntrace", &v), SL_OK);
    ck_assert_double_eq(v, (double)r->sgd->ntrace);
    ck_assert_int_eq(sl_recover_result_number(r, "nosuch", &v), SL_EINVAL);
    ck_assert_str_eq(sl_recover_result_text(r, "route"), sl_recover_route_name(r->route));
    ck_assert_str_eq(sl_recover_result_text(r, "stop_reason"), r->sgd->stop_reason);
    ck_assert_ptr_nonnull(sl_recover_result_text(r, "warnings"));
    ck_assert_ptr_null(sl_recover_result_text(r, "nosuch"));
    double *trace = malloc(r->sgd->ntrace * 8 * sizeof *trace);
    ck_assert_ptr_nonnull(trace);
    sl_recover_result_trace(r, trace);
    for (size_t i = 0; i < r->sgd->ntrace; ++i) {
        ck_assert_double_eq(trace[8 * i + 1], (double)r->sgd->trace[i].step);
        ck_assert_double_eq(trace[8 * i + 3], r->sgd->trace[i].loss);
    }
    free(trace);
    sl_recover_result_free(r);
    sl_recover_options_free(o);
    sl_network_free(net);
    sl_dist_free(dist);
    free(X);
    free(y);
}
END_TEST

START_TEST(test_scores_accessors) {
    const size_t n = 40, d = 2;
    double *X = malloc(n * d * sizeof *X);
    ck_assert_ptr_nonnull(X);
    for (size_t i = 0; i < n * d; ++i) X[i] = sin((double)i);
    sl_score_options *o = NULL;
    ck_assert_int_eq(sl_score_options_alloc(&o), SL_OK);
    sl_scores *s = NULL;
    ck_assert_int_eq(sl_score_estimate(&sl_score_hermite, o, n, d, X, n, NULL, &s), SL_OK);
    const double *p = NULL;
    size_t len = 7;
    ck_assert_int_eq(sl_scores_array(s, "G", &p, &len), SL_OK);
    ck_assert_ptr_eq(p, s->G);
    ck_assert_uint_eq(len, n * d);
    ck_assert_int_eq(sl_scores_array(s, "H", &p, &len), SL_OK);
    ck_assert_uint_eq(len, n * d * d);
    ck_assert_int_eq(sl_scores_array(s, "h", &p, &len), SL_OK);
    ck_assert_ptr_null(p);
    ck_assert_uint_eq(len, 0);
    ck_assert_int_eq(sl_scores_array(s, "x", &p, &len), SL_EINVAL);
    double v = -1.0;
    ck_assert_int_eq(sl_scores_number(s, "regularised", &v), SL_OK);
    ck_assert_double_eq(v, 0.0);
    ck_assert_int_eq(sl_scores_number(s, "x", &v), SL_EINVAL);
    ck_assert_str_eq(sl_scores_text(s, "method"), "hermite");
    ck_assert_ptr_null(sl_scores_text(s, "x"));
    sl_scores_free(s);
    sl_score_options_free(o);
    free(X);
}
END_TEST

START_TEST(test_layout) {
    ck_assert_int_eq(sl_bind_layout("sl_dist_callbacks", NULL), (long)sizeof(sl_dist_callbacks));
    ck_assert_int_eq(sl_bind_layout("sl_dist_callbacks", "smooth"),
                     (long)offsetof(sl_dist_callbacks, smooth));
    ck_assert_int_eq(sl_bind_layout("sl_network", "a"), (long)offsetof(sl_network, a));
    ck_assert_int_eq(sl_bind_layout("sl_network", "nosuch"), -1);
    ck_assert_int_eq(sl_bind_layout("nosuch", NULL), -1);
    ck_assert_int_eq(sl_bind_layout(NULL, NULL), -1);
}
END_TEST

static Suite *bind_suite(void) {
    Suite *s = suite_create("bind");
    TCase *opt = tcase_create("options");
    tcase_add_test(opt, test_score_options_good);
    tcase_add_test(opt, test_score_options_bad);
    tcase_add_test(opt, test_recover_options_good);
    tcase_add_test(opt, test_recover_options_bad);
    suite_add_tcase(s, opt);
    TCase *res = tcase_create("results");
    tcase_add_test(res, test_recover_result_accessors);
    tcase_add_test(res, test_scores_accessors);
    tcase_add_test(res, test_layout);
    tcase_set_timeout(res, 120);
    suite_add_tcase(s, res);
    return s;
}

int main(void) {
    return sl_test_run(bind_suite());
}
