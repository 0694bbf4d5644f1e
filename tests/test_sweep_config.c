/* The sweep configuration parser and the plan of runs (src/cli/sweep_config.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/sweep_config.h"
#include "scoreloss/recover.h"
#include "testutil.h"

/* The minimal valid configuration, which the cases extend. */
#define BASE "dist = gauss\nd = 4\nk = 2\nn = 1000\n"

static int parse(const char *text, sweep_config *c, char *err, size_t errlen) {
    return sweep_config_parse(text, strlen(text), "t.conf", c, err, errlen);
}

static const char *value(const sweep_config *c, int param, size_t i) {
    ck_assert_uint_lt(i, c->param[param].count);
    return c->param[param].values[i].text;
}

START_TEST(lists_ranges_comments_defaults) {
    const char *text = "# a sweep\n"
                       "\n"
                       "dist = gauss, logistic   # two inputs\n"
                       "d=4\r\n"
                       "  k = 1..3\n"
                       "n = 1e3, 2.5e3 ,10000\n"
                       "seeds = 7 .. 9, 20\n"
                       "a = \"1, 2.50,-3\", ones\n"
                       "noise = 0.10\n"
                       "w = random:10, identity\n"
                       "epochs = auto, 5\n"
                       "bandwidth = knn:10, 0.8\n"
                       "output = \"res,ults.csv\"\n";
    sweep_config c;
    char err[256];
    ck_assert_msg(parse(text, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c.param[SWEEP_DIST].count, 2);
    ck_assert_str_eq(value(&c, SWEEP_DIST, 1), "logistic");
    ck_assert_str_eq(value(&c, SWEEP_D, 0), "4");
    ck_assert_uint_eq(c.param[SWEEP_K].count, 3);
    ck_assert_str_eq(value(&c, SWEEP_K, 2), "3");
    /* Integers in exponent form are written out. */
    ck_assert_str_eq(value(&c, SWEEP_N, 0), "1000");
    ck_assert_str_eq(value(&c, SWEEP_N, 1), "2500");
    ck_assert_str_eq(value(&c, SWEEP_N, 2), "10000");
    ck_assert_uint_eq(c.param[SWEEP_SEED].count, 4);
    ck_assert_str_eq(value(&c, SWEEP_SEED, 0), "7");
    ck_assert_str_eq(value(&c, SWEEP_SEED, 2), "9");
    ck_assert_str_eq(value(&c, SWEEP_SEED, 3), "20");
    /* Numbers in canonical form, quotes keeping commas inside a value. */
    ck_assert_str_eq(value(&c, SWEEP_A, 0), "1,2.5,-3");
    ck_assert_str_eq(value(&c, SWEEP_NOISE, 0), "0.1");
    ck_assert_str_eq(value(&c, SWEEP_W, 0), "random:10");
    ck_assert_str_eq(value(&c, SWEEP_EPOCHS, 1), "5");
    ck_assert_str_eq(value(&c, SWEEP_BANDWIDTH, 1), "0.8");
    ck_assert_str_eq(c.output, "res,ults.csv");
    /* Where each value was written (line 5, column 7 for "1..3"). */
    ck_assert_uint_eq(c.param[SWEEP_K].values[0].line, 5);
    ck_assert_uint_eq(c.param[SWEEP_K].values[0].col, 7);
    /* Defaults: those of scoreloss recover and plant. */
    ck_assert_str_eq(value(&c, SWEEP_LOSS, 0), "landscape");
    ck_assert_str_eq(value(&c, SWEEP_SCORE, 0), "llsfe");
    ck_assert_str_eq(value(&c, SWEEP_MU, 0), "0.5");
    ck_assert_str_eq(value(&c, SWEEP_LR, 0), "0.01");
    ck_assert_str_eq(value(&c, SWEEP_RESTARTS, 0), "4");
    ck_assert_str_eq(value(&c, SWEEP_HOLDOUT, 0), "0.1");
    ck_assert_uint_eq(c.param[SWEEP_LOSS].line, 0);
    /* 2 dists x 3 k x 3 n x 4 seeds x 2 a x 2 w x 2 epochs x 2 bandwidths. */
    ck_assert_uint_eq(c.combinations, 2u * 3 * 3 * 4 * 2 * 2 * 2 * 2);
    sweep_config_free(&c);
    sweep_config_free(&c); /* emptied: a second free is harmless */
}
END_TEST

/* Every error, with the line and column it names. */
static const struct {
    const char *text;
    const char *message; /* the whole message */
} bad[] = {
    {BASE "x = 1\n",
     "t.conf:5:1: unknown key 'x' (expected dist, d, k, n, act, noise, w, a, loss, "
     "score, route, s4, s4-reference, u-rows, assume, detrend, refit, s4-thin, "
     "shrink-min, swap, mode, bandwidth, mu, lambda, constraint, lr, batch, epochs, "
     "restarts, holdout, seeds or output)"},
    {BASE "u-rows = 1\nu_rows = 2\n", "t.conf:6:1: key 'u-rows' given twice (first on line 5)"},
    {BASE "s4 = kde, cumulnt\n", "t.conf:5:11: key 's4': unknown s4 'cumulnt' (expected kde, "
                                 "cumulant or quadratic)"},
    {BASE "s4-reference = 0\n", "t.conf:5:16: key 's4-reference': expected auto, all or a "
                                "positive integer, got '0'"},
    {BASE "u-rows = -1\n", "t.conf:5:10: key 'u-rows': expected a non-negative integer (0: all "
                           "rows), got '-1'"},
    {BASE "assume = gauss\n", "t.conf:5:10: key 'assume': unknown assume 'gauss' (expected none "
                              "or independent)"},
    {BASE "detrend = 0..4\n", "t.conf:5:11: key 'detrend': unknown detrend '0..4' (expected auto, "
                              "0, 1, 2, 3 or 4)"},
    {BASE "u--rows = 1\n",
     "t.conf:5:1: unknown key 'u--rows' (expected dist, d, k, n, act, noise, "
     "w, a, loss, score, route, s4, s4-reference, u-rows, assume, detrend, "
     "refit, s4-thin, shrink-min, swap, mode, bandwidth, mu, lambda, constraint, "
     "lr, batch, epochs, restarts, holdout, seeds or output)"},
    {BASE "refit = 21\n", "t.conf:5:9: key 'refit': expected auto or an integer from 0 to 20, got "
                          "'21'"},
    {BASE "swap = 0, 11\n", "t.conf:5:11: key 'swap': expected an integer from 0 to 10, got "
                            "'11'"},
    {BASE "s4-thin = t, none\n", "t.conf:5:14: key 's4-thin': unknown s4-thin 'none' (expected "
                                 "auto, t, gauss or zero)"},
    {BASE "shrink-min = 2\n", "t.conf:5:14: key 'shrink-min': unknown shrink-min '2' (expected "
                              "auto, 0, 1, 3, 10, 30, 100, 300 or 1000)"},
    {BASE "  9 = 1\n", "t.conf:5:3: expected a key such as n or seeds, got '9'"},
    {BASE "mu 0.5\n", "t.conf:5:4: expected '=' after key 'mu'"},
    {BASE "mu =\n", "t.conf:5:5: missing value after 'mu ='"},
    {BASE "mu = # none\n", "t.conf:5:6: missing value after 'mu ='"},
    {BASE "seeds = 1,,2\n", "t.conf:5:11: empty value in the list of 'seeds'"},
    {BASE "seeds = 1, 2,\n", "t.conf:5:14: empty value in the list of 'seeds'"},
    {BASE "n = 5\n", "t.conf:5:1: key 'n' given twice (first on line 4)"},
    {BASE "seed = 1\nseeds = 2\n", "t.conf:6:1: key 'seeds' given twice (first on line 5)"},
    {BASE "a = \"1,2\n", "t.conf:5:5: unterminated quote"},
    {BASE "a = \"\"\n", "t.conf:5:5: empty value in the list of 'a'"},
    {BASE "a = \"1,2\" x\n", "t.conf:5:11: expected ',' or the end of the line after a value"},
    {BASE "act = re\"lu\n", "t.conf:5:9: quote inside a value (quote the whole value: \"...\")"},
    {BASE "restarts = 0\n", "t.conf:5:12: key 'restarts': expected an integer from 1 to 100000, "
                            "got '0'"},
    {BASE "batch = 1.5e1x\n", "t.conf:5:9: key 'batch': expected a positive integer, got '1.5e1x'"},
    {BASE "seeds = 1, -2\n", "t.conf:5:12: key 'seeds': expected a non-negative integer, got '-2'"},
    {BASE "seeds = 1..x\n", "t.conf:5:12: key 'seeds': expected a non-negative integer, got 'x'"},
    {BASE "seeds = 5..1\n", "t.conf:5:9: key 'seeds': the range 5..1 is empty"},
    {BASE "seeds = 1..\n", "t.conf:5:12: key 'seeds': a range needs the form A..B"},
    {BASE "seeds = ..3\n", "t.conf:5:9: key 'seeds': a range needs the form A..B"},
    {BASE "seeds = 0..2000000\n", "t.conf:5:9: key 'seeds': the range 0..2000000 holds more than "
                                  "1000000 values"},
    {BASE "seeds = 1..3, 2\n", "t.conf:5:15: key 'seeds': the value 2 is listed twice"},
    {"dist = gauss\nd = 4\nk = 2\nn = 1e4, 10000\n",
     "t.conf:4:10: key 'n': the value 10000 is listed twice"},
    {BASE "noise = -1\n", "t.conf:5:9: key 'noise': expected a number >= 0, got '-1'"},
    {BASE "lr = 0\n", "t.conf:5:6: key 'lr': expected a number > 0, got '0'"},
    {BASE "lr = nan\n", "t.conf:5:6: key 'lr': expected a number > 0, got 'nan'"},
    {BASE "holdout = 1\n", "t.conf:5:11: key 'holdout': expected a number in [0, 1), got '1'"},
    {BASE "mu = 0x1p3\n", "t.conf:5:6: key 'mu': expected a number, got '0x1p3'"},
    {BASE "act = relu, swish\n", "t.conf:5:13: key 'act': unknown act 'swish' (expected relu, "
                                 "sigmoid, tanh, erf, softplus, quadratic or cubic)"},
    {BASE "loss = l1\n", "t.conf:5:8: key 'loss': unknown loss 'l1' (expected landscape, "
                         "signfree or l2)"},
    {BASE "score = exakt\n", "t.conf:5:9: key 'score': unknown score 'exakt' (expected llsfe, "
                             "kde, gauss, hermite or exact)"},
    {BASE "w = random:0.5\n", "t.conf:5:5: key 'w': expected orthonormal, identity, random or "
                              "random:COND (COND >= 1), got 'random:0.5'"},
    {BASE "a = \"1,x\"\n",
     "t.conf:5:6: key 'a': expected ones, positive or \"A1,..,Ak\" (quoted numbers), got '1,x'"},
    {BASE "bandwidth = knn:0\n", "t.conf:5:13: key 'bandwidth': expected auto, a number H > 0, "
                                 "knn:K or const:C, got 'knn:0'"},
    {BASE "epochs = 0\n",
     "t.conf:5:10: key 'epochs': expected auto or a positive integer, got '0'"},
    {BASE "output = a.csv, b.csv\n", "t.conf:5:17: key 'output' takes one file name, not a list"},
    {"dist = gauss\nd = 4\nk = 2\n", "t.conf: missing key 'n' (dist, d, k and n are required)"},
    {"d = 4\n", "t.conf: missing key 'dist' (dist, d, k and n are required)"},
    {BASE "seeds = 1..1000\nlr = 0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,2,3,4,5,6,7,8,9,10,11,12,"
          "13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40\n"
          "mu = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26\n",
     "t.conf:5:1: the sweep grows beyond 1000000 combinations at key 'seeds'"},
};

START_TEST(errors_name_line_and_column) {
    sweep_config c;
    char err[512];
    ck_assert_int_eq(parse(bad[_i].text, &c, err, sizeof err), -1);
    ck_assert_str_eq(err, bad[_i].message);
    /* A failed parse leaves nothing to free. */
    ck_assert_uint_eq(c.param[SWEEP_DIST].count, 0);
    ck_assert_ptr_null(c.output);
}
END_TEST

START_TEST(bytes_the_text_functions_would_miss) {
    sweep_config c;
    char err[256];
    /* A NUL inside the buffer, and a buffer without a final NUL or newline. */
    static const char with_nul[] = BASE "mu = 1\0\n";
    ck_assert_int_eq(
        sweep_config_parse(with_nul, sizeof with_nul - 1, "t.conf", &c, err, sizeof err), -1);
    ck_assert_str_eq(err, "t.conf:5:7: NUL byte in the configuration");
    char exact[sizeof BASE + 8];
    memcpy(exact, BASE "mu = 2", sizeof BASE + 5);
    ck_assert_int_eq(sweep_config_parse(exact, sizeof BASE + 5, "t.conf", &c, err, sizeof err), 0);
    ck_assert_str_eq(value(&c, SWEEP_MU, 0), "2");
    sweep_config_free(&c);
    /* A message cut to a short buffer is still terminated; errlen 0 is allowed. */
    char tiny[8];
    ck_assert_int_eq(parse(BASE "x = 1\n", &c, tiny, sizeof tiny), -1);
    ck_assert_str_eq(tiny, "t.conf:");
    ck_assert_int_eq(parse(BASE "x = 1\n", &c, NULL, 0), -1);
    /* Nothing but comments and blanks: the first required key is missing. */
    ck_assert_int_eq(parse("# only\n\n   \n", &c, err, sizeof err), -1);
    ck_assert_str_eq(err, "t.conf: missing key 'dist' (dist, d, k and n are required)");
}
END_TEST

static const char *run_value(const sweep_plan *p, size_t r, int param) {
    return p->runs[r].value[param];
}

START_TEST(plan_order_normalisation_and_left_out) {
    const char *text = "dist = gauss\nd = 3\nk = 2, 4\nn = 100\n"
                       "loss = landscape, l2\nscore = hermite, llsfe\nseeds = 1..2\n";
    sweep_config c;
    sweep_plan p;
    char err[256];
    ck_assert_msg(parse(text, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(c.combinations, 16);
    ck_assert_int_eq(sweep_plan_make(&c, &p, err, sizeof err), 0);
    /* k = 4 > d = 3 leaves 8; l2 uses no scores, so its hermite and llsfe
     * runs are one: 2 landscape cells + 1 l2 cell, 2 seeds each. */
    ck_assert_uint_eq(p.left_out, 8);
    ck_assert_str_eq(p.left_out_reason, "k > d");
    ck_assert_uint_eq(p.duplicates, 2);
    ck_assert_uint_eq(p.nruns, 6);
    /* Seeds innermost, then the configuration's order. */
    ck_assert_str_eq(run_value(&p, 0, SWEEP_SEED), "1");
    ck_assert_str_eq(run_value(&p, 1, SWEEP_SEED), "2");
    ck_assert_str_eq(run_value(&p, 0, SWEEP_SCORE), "hermite");
    ck_assert_str_eq(run_value(&p, 2, SWEEP_SCORE), "llsfe");
    ck_assert_str_eq(run_value(&p, 4, SWEEP_LOSS), "l2");
    ck_assert_str_eq(run_value(&p, 4, SWEEP_SCORE), SWEEP_NOT_APPLICABLE);
    ck_assert_str_eq(run_value(&p, 4, SWEEP_MU), SWEEP_NOT_APPLICABLE);
    /* hermite has no bandwidth, llsfe has; every landscape run has a route. */
    ck_assert_str_eq(run_value(&p, 0, SWEEP_ROUTE), "auto");
    ck_assert_str_eq(run_value(&p, 0, SWEEP_BANDWIDTH), SWEEP_NOT_APPLICABLE);
    ck_assert_str_eq(run_value(&p, 2, SWEEP_BANDWIDTH), "auto");
    ck_assert_str_eq(p.keys[0],
                     "gauss,3,2,100,relu,0,orthonormal,ones,landscape,hermite,auto,-,-,-,"
                     "none,auto,-,-,-,-,auto,-,0.5,0,auto,0.01,256,auto,4,0.1,1");
    /* llsfe takes the projected route: its refit auto is recorded as the
     * count, SL_REFIT_AUTO, its s4-thin auto as the rule, t; hermite
     * (quadratic) has neither. */
    char want[32];
    ck_assert_str_eq(run_value(&p, 0, SWEEP_REFIT), SWEEP_NOT_APPLICABLE);
    snprintf(want, sizeof want, "%d", SL_REFIT_AUTO);
    ck_assert_str_eq(run_value(&p, 2, SWEEP_REFIT), want);
    ck_assert_str_eq(run_value(&p, 0, SWEEP_S4_THIN), SWEEP_NOT_APPLICABLE);
    ck_assert_str_eq(run_value(&p, 2, SWEEP_S4_THIN), "t");
    /* shrink-min auto: recover's default, as text. */
    snprintf(want, sizeof want, "%g", SL_RECOVER_SHRINK_MIN);
    ck_assert_str_eq(run_value(&p, 0, SWEEP_SHRINK_MIN), SWEEP_NOT_APPLICABLE);
    ck_assert_str_eq(run_value(&p, 2, SWEEP_SHRINK_MIN), want);
    /* swap: 0 (the default) where the passes apply, '-' elsewhere. */
    ck_assert_str_eq(run_value(&p, 0, SWEEP_SWAP), SWEEP_NOT_APPLICABLE);
    ck_assert_str_eq(run_value(&p, 2, SWEEP_SWAP), "0");
    ck_assert_str_eq(run_value(&p, 4, SWEEP_SWAP), SWEEP_NOT_APPLICABLE);
    sweep_plan_free(&p);
    sweep_config_free(&c);

    /* Swap rounds need refit passes: llsfe with refit 0 and exact scores
     * (no passes) run only swap 0. Kept: llsfe refit 0 swap 0, refit 2
     * swap 0 and 3, exact swap 0 (its refit 2 is refused first). */
    text = "dist = gauss\nd = 3\nk = 2\nn = 100\nscore = llsfe, exact\nrefit = 0, 2\n"
           "swap = 0, 3\n";
    ck_assert_msg(parse(text, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sweep_plan_make(&c, &p, err, sizeof err), 0);
    ck_assert_uint_eq(p.nruns, 4);
    ck_assert_uint_eq(p.left_out, 4);
    ck_assert_str_eq(p.left_out_reason, "swap rounds without refit passes");
    const char *want_swap[][3] = {
        {"llsfe", "0", "0"}, {"llsfe", "2", "0"}, {"llsfe", "2", "3"}, {"exact", "-", "-"}};
    for (size_t r = 0; r < p.nruns; ++r) {
        ck_assert_str_eq(run_value(&p, r, SWEEP_SCORE), want_swap[r][0]);
        ck_assert_str_eq(run_value(&p, r, SWEEP_REFIT), want_swap[r][1]);
        ck_assert_str_eq(run_value(&p, r, SWEEP_SWAP), want_swap[r][2]);
    }
    sweep_plan_free(&p);
    sweep_config_free(&c);

    /* Refused by recover: the sign-free loss on minibatches, constraint
     * none without a penalty, an a list of the wrong length. */
    text = "dist = gauss\nd = 3\nk = 2\nn = 100\nloss = signfree, landscape\n"
           "mode = minibatch\nconstraint = none, sphere\nlambda = 0, 1\na = \"1,2\", \"1,2,3\"\n";
    ck_assert_msg(parse(text, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(sweep_plan_make(&c, &p, err, sizeof err), 0);
    ck_assert_str_eq(p.left_out_reason, "the signfree loss on minibatches");
    /* Kept: landscape with (none, 1) and (sphere, 0) and (sphere, 1), a = 1,2. */
    ck_assert_uint_eq(p.nruns, 3);
    ck_assert_uint_eq(p.left_out, 16 - 3);
    for (size_t r = 0; r < p.nruns; ++r) {
        ck_assert_str_eq(run_value(&p, r, SWEEP_LOSS), "landscape");
        ck_assert_str_eq(run_value(&p, r, SWEEP_A), "1,2");
    }
    /* A value with a comma is quoted in the row. */
    ck_assert_ptr_nonnull(strstr(p.keys[0], ",\"1,2\","));
    sweep_plan_free(&p);
    sweep_config_free(&c);
}
END_TEST

/* The keys of the S_4 estimate, detrending and independence: recorded where
 * they apply, '-' elsewhere, refused combinations left out. */
START_TEST(plan_s4_detrend_assume) {
    const char *text = "dist = gauss\nd = 4\nk = 2\nn = 100\n"
                       "loss = landscape, l2\nscore = llsfe, hermite, exact\n"
                       "route = auto, projected, quadratic\ns4 = kde, cumulant\n"
                       "s4-reference = all, 500\nu_rows = 0\nassume = none, independent\n"
                       "detrend = auto, 2\n";
    sweep_config c;
    sweep_plan p;
    char err[256];
    ck_assert_msg(parse(text, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_str_eq(value(&c, SWEEP_U_ROWS, 0), "0"); /* the column name as a key */
    ck_assert_str_eq(value(&c, SWEEP_S4_REFERENCE, 1), "500");
    ck_assert_uint_eq(c.combinations, 2u * 3 * 3 * 2 * 2 * 2 * 2);
    ck_assert_int_eq(sweep_plan_make(&c, &p, err, sizeof err), 0);
    /* The runs, by hand (columns 9..16: loss, score, route, s4,
     * s4_reference, u_rows, assume, detrend):
     *   l2                                       1
     *   llsfe projected (auto = projected):      s4 2 x reference 2 x detrend 2 = 8
     *   llsfe quadratic: detrend auto, 2         2
     *   hermite quadratic (auto = quadratic)     2 (detrend), projected 8
     *   exact, routes auto/projected/quadratic:  3 x 2 (detrend) = 6
     *   independent (score '-'), full (auto):    1; quadratic: 2 (detrend)
     * = 30; left out: exact with independent, independent on the projected
     * route, detrend 2 with the factorised fit (route auto). */
    ck_assert_uint_eq(p.nruns, 30);
    ck_assert_str_eq(p.left_out_reason,
                     "detrend 1..4 with independent coordinates off the quadratic route");
    size_t quad = 0, proj = 0, indep = 0, l2 = 0;
    for (size_t r = 0; r < p.nruns; ++r) {
        const char *score = run_value(&p, r, SWEEP_SCORE), *route = run_value(&p, r, SWEEP_ROUTE);
        const char *s4 = run_value(&p, r, SWEEP_S4), *dt = run_value(&p, r, SWEEP_DETREND);
        if (strcmp(run_value(&p, r, SWEEP_LOSS), "l2") == 0) {
            ++l2;
            for (int i = SWEEP_SCORE; i < SWEEP_LR; ++i)
                ck_assert_str_eq(run_value(&p, r, i), SWEEP_NOT_APPLICABLE);
            continue;
        }
        if (strcmp(run_value(&p, r, SWEEP_ASSUME), "independent") == 0) {
            ++indep;
            ck_assert_str_eq(score, SWEEP_NOT_APPLICABLE);
            ck_assert_str_eq(s4, SWEEP_NOT_APPLICABLE);
            ck_assert(strcmp(route, "auto") == 0 || strcmp(route, "quadratic") == 0);
            ck_assert_str_eq(dt, strcmp(route, "auto") == 0 ? SWEEP_NOT_APPLICABLE : dt);
            continue;
        }
        if (strcmp(score, "exact") == 0) {
            ck_assert_str_eq(run_value(&p, r, SWEEP_ASSUME), SWEEP_NOT_APPLICABLE);
            ck_assert_str_eq(s4, SWEEP_NOT_APPLICABLE);
            ck_assert_str_ne(dt, SWEEP_NOT_APPLICABLE);
            continue;
        }
        ck_assert_str_eq(run_value(&p, r, SWEEP_ASSUME), "none");
        const int is_proj = strcmp(s4, SWEEP_NOT_APPLICABLE) != 0;
        proj += is_proj;
        quad += !is_proj;
        /* Projected: the estimator's keys and detrend (passed to the S_4
         * estimator; its own default, auto, written '-' as in files from
         * before); quadratic: detrend only. */
        ck_assert_str_ne(dt, is_proj ? "auto" : SWEEP_NOT_APPLICABLE);
        ck_assert_str_eq(run_value(&p, r, SWEEP_U_ROWS), is_proj ? "0" : SWEEP_NOT_APPLICABLE);
        /* The route auto picks is written auto. */
        if (strcmp(score, "llsfe") == 0)
            ck_assert_str_eq(route, is_proj ? "auto" : "quadratic");
        else
            ck_assert_str_eq(route, is_proj ? "projected" : "auto");
    }
    ck_assert_uint_eq(l2, 1);
    ck_assert_uint_eq(indep, 3);
    ck_assert_uint_eq(proj, 16);
    ck_assert_uint_eq(quad, 4);
    ck_assert_uint_eq(p.nruns - l2 - indep - proj - quad, 6); /* exact */
    /* Every kept or left-out combination is accounted for. */
    ck_assert_uint_eq(p.nruns + p.duplicates + p.left_out, c.combinations);
    sweep_plan_free(&p);
    sweep_config_free(&c);
}
END_TEST

START_TEST(csv_join_quotes_what_needs_it) {
    const char *f[] = {"plain", "a,b", "say \"hi\"", ""};
    char *s = sweep_csv_join(f, 4);
    ck_assert_str_eq(s, "plain,\"a,b\",\"say \"\"hi\"\"\",");
    free(s);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("sweep_config");
    TCase *tc = tcase_create("sweep_config");
    tcase_add_test(tc, lists_ranges_comments_defaults);
    tcase_add_loop_test(tc, errors_name_line_and_column, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, bytes_the_text_functions_would_miss);
    tcase_add_test(tc, plan_order_normalisation_and_left_out);
    tcase_add_test(tc, plan_s4_detrend_assume);
    tcase_add_test(tc, csv_join_quotes_what_needs_it);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(suite());
}
