/* `scoreloss recover`: recovers a planted network from data (x1..xd,y) with
 * the landscape-designed loss (or the sign-free one, or the plain squared
 * loss), writes the recovered network in the truth format (a,w1..wd) and
 * prints a summary: the recovery error against --truth, the spectrum of M2,
 * the signal coefficients, the held-out prediction error and the time per
 * phase. The pipeline is sl_recover (recover.h); this file parses, reads,
 * reports and writes. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_moments.h"
#include "cli/cli_util.h"
#include "scoreloss/csv.h"
#include "scoreloss/dist.h"
#include "scoreloss/network.h"
#include "scoreloss/recover.h"
#include "scoreloss/score.h"
#include "scoreloss/sgd.h"

#define REFIT_AUTO_TEXT CLI_TEXT(SL_REFIT_AUTO)
#define REFIT_MAX_TEXT CLI_TEXT(SL_REFIT_MAX)
#define SWAP_MAX_TEXT CLI_TEXT(SL_SWAP_MAX)
#define SWAP_PASSES_TEXT CLI_TEXT(SL_SWAP_PASSES)

static const cli_option options[] = {
    {"input", 0, CLI_VALUE | CLI_REQUIRED, "DATA.csv", NULL,
     "data, columns x1..xd and y (as scoreloss plant writes them)"},
    {"k", 0, CLI_VALUE | CLI_REQUIRED, "K", NULL, "hidden units to recover, 1 <= K <= d"},
    {"loss", 0, CLI_VALUE, "NAME", "landscape",
     "landscape (the landscape-designed loss, sign from the signal), signfree (- sum_j "
     "T(b_j,b_j,b_j,b_j)^2 over orthonormal columns, for mixed signs) or l2 (the plain squared "
     "loss over (W, a), no scores)"},
    {"score", 0, CLI_VALUE, "NAME", "llsfe",
     "score source: llsfe, kde, gauss, hermite or exact (needs --dist)"},
    {"dist", 0, CLI_VALUE, "SPEC", NULL,
     "the input distribution, for --score exact: " CLI_DIST_SPECS},
    {"route", 0, CLI_VALUE, "NAME", "auto",
     "where the fourth moment T comes from: full (the distribution's exact S_4; estimated "
     "scores: only with --assume independent), projected (the S_4 of the marginal of z = U'x: "
     "exact, or estimated from z by --s4), quadratic (S_4 from g and H only, the original "
     "method) or auto (exact scores: full when the distribution has an exact S_4, else "
     "projected when its marginal is known, else quadratic; llsfe and kde scores: projected, "
     "or full with --assume independent; gauss and hermite: quadratic)"},
#include "cli/cli_moment_options.inc"
    {"refine", 0, CLI_VALUE, "HOW", "auto",
     "after the landscape loss: cp refines its directions by a least-squares fit of the "
     "unwhitened T(U., U., U., U.), which whitening's division by small M2 eigenvalues has not "
     "made noisy; none keeps them; auto: cp when T comes from the exact S_4 or refit passes "
     "follow, else none"},
    {"refit", 0, CLI_VALUE, "N", "auto",
     "estimated scores, projected route: after the refinement, N passes (0.." REFIT_MAX_TEXT
     ") that estimate M2 and T again with the directions found as control variates (the labels "
     "minus their fit on the smoothed ReLUs of those directions, the fit's derivatives added "
     "back) and refine on them; each pass costs one S_4 estimation; auto: " REFIT_AUTO_TEXT
     " there (0 with --refine none), 0 elsewhere"},
    {"refit-scale", 0, CLI_VALUE, "S", "0.2",
     "the control variates' ReLUs smoothed on S standard deviations of w'x (softplus); smaller "
     "leaves less of the ReLU in the residual, larger averages the fourth derivative over more "
     "samples"},
    {"refit-rows", 0, CLI_VALUE, "N", "200000",
     "the rows (a seeded subset; 0 = all) whose S_4 estimates enter T in the refit passes"},
    {"swap", 0, CLI_VALUE, "R", "0",
     "after the refit passes, at most R rounds (0.." SWAP_MAX_TEXT
     ") that put the top eigenvector of the residual labels' M2 in place of each direction in "
     "turn, run " SWAP_PASSES_TEXT " passes from there and keep directions whose second layer "
     "fits better, ending the round at the first replacement that does; for passes that "
     "settled at a wrong point (a round costs up to k x " SWAP_PASSES_TEXT " passes)"},
    {"mode", 0, CLI_VALUE, "NAME", "auto",
     "tensor (every step on the whole tensor T), minibatch (per-sample minibatches) or auto "
     "(tensor when T is exact or the loss is signfree)"},
    {"truth", 0, CLI_VALUE, "TRUTH.csv", NULL,
     "the planted network (columns a,w1..wd, as plant writes it): report the recovery error and "
     "trace it"},
    {"act", 0, CLI_VALUE, "NAME", "relu",
     "activation: relu, sigmoid, tanh, erf, softplus, quadratic or cubic"},
    {"mu", 0, CLI_VALUE, "M", "0.5",
     "landscape weight of the diagonal terms (above 1 two columns can collapse onto one "
     "direction)"},
    {"lambda", 0, CLI_VALUE, "L", "0", "penalty lambda sum_j (|b_j|^2 - 1)^2, >= 0"},
    {"constraint", 0, CLI_VALUE, "NAME", "auto",
     "columns b_j kept orthonormal (QR retraction), on the sphere (unit columns) or none (needs "
     "--lambda); auto: orthonormal (on the sphere, mu > 1 lets columns collapse onto one "
     "direction, and the sign-free loss always does)"},
    {"lr", 0, CLI_VALUE, "RATE", "0.01", "Adam learning rate, > 0"},
    {"batch", 0, CLI_VALUE, "B", "256", "minibatch size (minibatch mode and l2)"},
    {"epochs", 0, CLI_VALUE, "E", "auto",
     "passes over the samples; auto: 20 in tensor mode (where an epoch is 100 steps on the "
     "whole tensor), else enough for 10000 minibatch steps"},
    {"restarts", 0, CLI_VALUE, "R", "4", "random initialisations; the lowest final loss wins"},
    {"seed", 0, CLI_VALUE, "S", "1",
     "random seed (the held-out split, the bandwidth choice and the SGD use separate streams)"},
    {"bandwidth", 0, CLI_VALUE, "SPEC", "auto",
     "llsfe and kde: auto, a fixed H > 0, knn:K or const:C (see scoreloss score --help)"},
    {"holdout", 0, CLI_VALUE, "FRAC", "0.1",
     "fraction of the rows held out for the prediction error, 0 <= FRAC < 1 (every other step "
     "sees only the rest)"},
    {"progress", 0, 0, NULL, NULL, "show progress on stderr even when it is not a terminal"},
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "W_HAT.csv", NULL,
     "the recovered network, columns a,w1..wd (the truth format)"},
    {"trace", 0, CLI_VALUE | CLI_OUTPUT, "TRACE.csv", NULL,
     "the optimiser's trace: restart,step,epoch,loss,grad_norm[,error],seconds,full (error: "
     "err_max against --truth)"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_recover = {
    "recover",
    "recover a planted network from data with the landscape-designed loss",
    "--input DATA.csv --k K [--loss landscape|signfree|l2]\n"
    "         [--score llsfe|kde|gauss|hermite|exact] [--dist SPEC]\n"
    "         [--route auto|full|projected|quadratic] [--mode auto|tensor|minibatch]\n"
    "         [--s4 kde|cumulant|quadratic] [--s4-bandwidth H] [--s4-reference M]\n"
    "         [--s4-thin t|gauss|zero] [--shrink NU0] [--shrink-min 3]\n"
    "         [--u-rows N] [--assume independent] [--detrend auto|0..4]\n"
    "         [--refine auto|cp|none] [--refit auto|N] [--refit-scale S] [--refit-rows N]\n"
    "         [--swap R]\n"
    "         [--truth TRUTH.csv] [--act NAME] [--mu M] [--lambda L]\n"
    "         [--constraint auto|sphere|orthonormal|none] [--lr RATE] [--batch B] [--epochs E]\n"
    "         [--restarts R] [--seed S] [--bandwidth SPEC] [--holdout FRAC] [--progress]\n"
    "         -o W_HAT.csv [--trace TRACE.csv]",
    "The pipeline: scores at the samples -> M2 = E[y S_2] and its top-k eigenpairs\n"
    "(U, Lambda) -> the whitened fourth moment and its signal coefficients -> Adam\n"
    "on the loss over k unit columns b_j in whitened space -> w_j proportional to\n"
    "U |Lambda|^(1/2) b_j -> (exact S_4: --refine) the w_j refined by a least-squares\n"
    "fit of the unwhitened fourth moment -> (estimated S_4: --refit) M2 and T\n"
    "estimated again with the w_j as control variates, the w_j refined again, a few\n"
    "times -> signs and second layer a by least squares. With --loss l2, Adam on\n"
    "the squared loss over (W, a) from a random start instead.\n"
    "The held-out rows are set aside first; every step fits on the others.\n"
    "\n"
    "The summary on stdout: the error in its max form (zero only when every true\n"
    "direction is found) with the number of distinct directions found, the min\n"
    "form beside it, the worst angle after optimal matching, the eigenvalues of M2\n"
    "(the k-th against the (k+1)-th), the signal coefficients and the sign used,\n"
    "the held-out relative prediction error sum (y - y_hat)^2 / sum (y - mean y)^2,\n"
    "the final loss of each restart and the seconds per phase. Warnings (mixed or\n"
    "weak signal, a weak unit, no spectral gap) go to stderr as they arise and are\n"
    "repeated in the summary. The output's comment lines record the command and\n"
    "the summary. For relu only a_j |w_j| is identified: rows are written unit\n"
    "(l2 writes the trained network as it is).",
    "scoreloss recover --input DATA.csv --k 3 --score exact --dist gauss --truth TRUTH.csv "
    "-o W_HAT.csv",
    options,
    sizeof options / sizeof options[0],
    run,
};

/* ---- progress and messages ---------------------------------------------------------- */

typedef struct {
    const cli_args *args;
    int forced;
    cli_progress bar;
    int active;
    char phase[16];
    char label[48];
    double done;
} reporter;

static void on_progress(const char *phase, double fraction, void *ctx) {
    reporter *r = ctx;
    /* The score estimators may report from inside their parallel loops. */
#ifdef _OPENMP
#pragma omp critical(scoreloss_recover_progress)
#endif
    {
        if (!r->active || strcmp(r->phase, phase) != 0) {
            if (r->active) cli_progress_finish(&r->bar);
            cli_progress_start(&r->bar, r->args, r->forced);
            snprintf(r->phase, sizeof r->phase, "%s", phase);
            snprintf(r->label, sizeof r->label, "%s: %s", r->args->cmd->name, phase);
            r->bar.label = r->label;
            r->active = 1;
            r->done = 0.0;
        }
        if (fraction > r->done) {
            r->done = fraction;
            cli_progress_fraction(&r->bar, fraction);
        }
    }
}

static void on_message(const char *msg, void *ctx) {
    reporter *r = ctx;
    if (r->active) cli_progress_finish(&r->bar);
    fprintf(stderr, "scoreloss %s: warning: %s\n", r->args->cmd->name, msg);
    fflush(stderr);
}

/* ---- the command line ---------------------------------------------------------------- */

typedef struct {
    sl_recover_options opt;
    const char *input, *output, *trace, *truth, *spec;
} settings;

/* One NAME from a list, or an option error naming the choices. */
static int choose(const cli_args *args, const char *option, const char *const *names, size_t count,
                  int *out) {
    const char *v = cli_value(args, option);
    for (size_t i = 0; i < count; ++i)
        if (strcmp(v, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    char list[160] = "";
    for (size_t i = 0; i < count; ++i) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s",
                 i == 0           ? ""
                 : i + 1 == count ? " or "
                                  : ", ",
                 names[i]);
    }
    return cli_option_error(args, option, "unknown %s '%s' (expected %s)", option, v, list);
}

static int parse(const cli_args *args, settings *s) {
    sl_recover_options *o = &s->opt;
    sl_recover_options_default(o);
    int status;
    static const char *const losses[] = {"landscape", "signfree", "l2"};
    static const char *const routes[] = {"auto", "full", "projected", "quadratic"};
    static const char *const modes[] = {"auto", "tensor", "minibatch"};
    static const char *const constraints[] = {"auto", "sphere", "orthonormal", "none"};
    static const char *const refines[] = {"auto", "cp", "none"};
    int loss = 0, route = 0, mode = 0, constraint = 0, refine = 0;
    if ((status = cli_size(args, "k", 1, SIZE_MAX, &o->k)) ||
        (status = choose(args, "loss", losses, 3, &loss)) ||
        (status = choose(args, "route", routes, 4, &route)) ||
        (status = choose(args, "mode", modes, 3, &mode)) ||
        (status = choose(args, "constraint", constraints, 4, &constraint)) ||
        (status = choose(args, "refine", refines, 3, &refine)))
        return status;
    o->refine = refine == 0 ? -1 : refine == 1 ? 1 : 0;
    if ((status =
             cli_double(args, "refit-scale", DBL_MIN, HUGE_VAL, "a number > 0", &o->s4.cv_scale)))
        return status;
    if ((status = cli_size(args, "refit-rows", 0, SIZE_MAX, &o->refit_rows))) return status;
    if ((status = cli_auto_or_count(args, "refit", SL_REFIT_MAX, &o->refit))) return status;
    size_t swap = 0;
    if ((status = cli_size(args, "swap", 0, SL_SWAP_MAX, &swap))) return status;
    o->swap = (int)swap;
    o->loss = (sl_recover_loss)loss;
    static const sl_recover_route route_of[] = {SL_ROUTE_AUTO, SL_ROUTE_FULL, SL_ROUTE_PROJECTED,
                                                SL_ROUTE_QUADRATIC};
    static const sl_recover_mode mode_of[] = {SL_MODE_AUTO, SL_MODE_TENSOR, SL_MODE_MINIBATCH};
    static const sl_projection proj_of[] = {SL_PROJ_ORTHONORMAL, SL_PROJ_SPHERE,
                                            SL_PROJ_ORTHONORMAL, SL_PROJ_NONE};
    o->route = route_of[route];
    o->mode = mode_of[mode];
    o->sgd.projection = proj_of[constraint];
    sl_status st = sl_score_type_from_name(cli_value(args, "score"), &o->score);
    if (st)
        return cli_option_error(args, "score",
                                "unknown score source '%s' (expected llsfe, kde, gauss, hermite "
                                "or exact)",
                                cli_value(args, "score"));
    if ((st = sl_act_from_name(cli_value(args, "act"), &o->act)))
        return cli_option_lib_error(args, "act", st);
    if ((status = cli_double(args, "mu", -HUGE_VAL, HUGE_VAL, "a number", &o->landscape.mu)) ||
        (status =
             cli_double(args, "lambda", 0.0, HUGE_VAL, "a number >= 0", &o->landscape.lambda)) ||
        (status = cli_double(args, "lr", DBL_MIN, HUGE_VAL, "a number > 0", &o->sgd.lr)) ||
        (status = cli_size(args, "batch", 1, SIZE_MAX, &o->sgd.batch)) ||
        (strcmp(cli_value(args, "epochs"), "auto") != 0 &&
         (status = cli_size(args, "epochs", 1, UINT32_MAX - 1, &o->sgd.epochs))) ||
        (status = cli_size(args, "restarts", 1, 100000, &o->sgd.restarts)) ||
        (status = cli_seed(args, "seed", &o->seed)) ||
        (status = cli_double(args, "holdout", 0.0, 1.0 - DBL_EPSILON, "a number in [0, 1)",
                             &o->holdout)))
        return status;
    if ((st = sl_bandwidth_parse(cli_value(args, "bandwidth"), &o->score_opt.bandwidth)))
        return cli_option_lib_error(args, "bandwidth", st);
    if ((status = cli_moment_options(args, o))) return status;
    s->input = cli_value(args, "input");
    s->output = cli_value(args, "output");
    s->trace = cli_value(args, "trace");
    s->truth = cli_value(args, "truth");
    s->spec = cli_value(args, "dist");

    /* Options that would be silently ignored are refused. */
    const int exact = o->score == &sl_score_exact;
    if (o->loss == SL_RECOVER_L2) {
        /* The moments' own options (cli_moments.h), then recover's others. */
        static const char *const unused[] = {
            "score",     "dist",   "route", "mode",        "mu",         "lambda", "constraint",
            "bandwidth", "refine", "refit", "refit-scale", "refit-rows", "swap"};
        const char *given = cli_moment_given(args);
        for (size_t i = 0; !given && i < sizeof unused / sizeof unused[0]; ++i)
            if (cli_given(args, unused[i])) given = unused[i];
        if (given)
            return cli_option_error(args, given,
                                    "the l2 loss uses no scores or moments: leave it out");
    } else {
        if (exact && !s->spec)
            return cli_error(args, CLI_EXIT_USAGE,
                             "missing option --dist SPEC (--score exact needs the distribution)");
        if (!exact && s->spec)
            return cli_option_error(args, "dist", "is used only with --score exact");
        static const char *const refit_options[] = {"refit", "refit-scale", "refit-rows", "swap"};
        if ((status = cli_moment_check(args, o, refit_options, 4))) return status;
        if (o->refit > 0 && o->refine == 0)
            return cli_option_error(args, "refit",
                                    "the passes refine the directions: leave out --refine none");
        if (o->swap > 0 && (o->refit == 0 || (o->refit < 0 && o->refine == 0)))
            return cli_option_error(args, "swap",
                                    "the rounds follow the refit passes and run passes: leave out "
                                    "--refit 0 and --refine none");
        if (o->loss == SL_RECOVER_SIGNFREE && o->mode == SL_MODE_MINIBATCH)
            return cli_option_error(args, "mode",
                                    "the signfree loss runs on the tensor T only, not on "
                                    "minibatches");
        if (o->sgd.projection == SL_PROJ_NONE && !(o->landscape.lambda > 0.0))
            return cli_option_error(args, "constraint",
                                    "none needs the norm penalty --lambda L > 0 (the loss is "
                                    "homogeneous in the columns)");
        if (cli_given(args, "bandwidth") && o->score != &sl_score_llsfe &&
            o->score != &sl_score_kde)
            return cli_option_error(args, "bandwidth", "applies to --score llsfe and kde only");
    }
    if (strcmp(s->output, "-") == 0)
        return cli_option_error(args, "output",
                                "'-' (stdout) would mix the network with the summary");
    if (s->trace && strcmp(s->trace, "-") == 0)
        return cli_option_error(args, "trace", "'-' (stdout) would mix the trace with the summary");
    if (s->trace && strcmp(s->trace, s->output) == 0)
        return cli_error(args, CLI_EXIT_USAGE, "-o and --trace name the same file '%s'", s->output);
    return 0;
}

/* ---- files ------------------------------------------------------------------------ */

/* The network through a writer held open while the trace is written, so a
 * failure of either leaves both targets as they were. */
static int write_outputs(const cli_args *args, const settings *s, const sl_recover_result *r,
                         const char *comment) {
    const size_t k = r->k, d = r->d;
    char **wnames = sl_names_numbered("w", d);
    const char **names = malloc((d + 1) * sizeof *names);
    double *row = malloc((d + 1) * sizeof *row);
    sl_csv_writer *w = NULL;
    int status = 0;
    if (!wnames || !names || !row) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    names[0] = "a";
    for (size_t j = 0; j < d; ++j) names[j + 1] = wnames[j];
    sl_status st = sl_csv_writer_open(s->output, comment, d + 1, names, &w);
    for (size_t i = 0; i < k && !st; ++i) {
        row[0] = r->a_hat[i];
        memcpy(row + 1, r->W_hat + i * d, d * sizeof *row);
        st = sl_csv_writer_row(w, row);
    }
    if (!st && s->trace) st = sl_trace_write(r->sgd, s->trace, comment);
    if (st)
        sl_csv_writer_abort(w);
    else
        st = sl_csv_writer_close(w);
    if (st) status = cli_lib_error(args, st);
done:
    free(wnames);
    free(names);
    free(row);
    return status;
}

/* ---- the summary ------------------------------------------------------------------ */

static const char *projection_name(sl_projection p) {
    return p == SL_PROJ_SPHERE ? "sphere" : p == SL_PROJ_ORTHONORMAL ? "orthonormal" : "none";
}

static void summarise(cli_text *t, const settings *s, const sl_recover_result *r, size_t n) {
    const sl_recover_options *o = &s->opt;
    const size_t k = r->k;
    cli_text_put(t, "data: %s, n = %zu (%zu fitted, %zu held out), d = %zu, k = %zu\n", s->input, n,
                 r->n_train, r->n_holdout, r->d, k);
    if (o->loss == SL_RECOVER_L2) {
        cli_text_put(t, "method: loss l2, activation %s, Adam over (W, a) from a random start\n",
                     sl_act_name(o->act));
    } else {
        cli_text_put(
            t, "method: loss %s, scores %s%s%s, route %s, %s mode, constraint %s, activation %s",
            sl_recover_loss_name(o->loss), o->score->name, s->spec ? " of " : "",
            s->spec ? s->spec : "", sl_recover_route_name(r->route),
            r->tensor_mode ? "tensor" : "minibatch", projection_name(o->sgd.projection),
            sl_act_name(o->act));
        if (o->loss == SL_RECOVER_LANDSCAPE) cli_text_put(t, ", mu %g", o->landscape.mu);
        cli_text_put(t, "\n");
        if (r->independent)
            cli_text_put(t, "S_4: independent coordinates, factorised 1-D log-density fits (G3, G4 "
                            "included)\n");
        else if (r->t_estimated) {
            char rule[96], how[64] = "";
            sl_s4_thin_describe(o->s4.thin, &r->s4_info, rule, sizeof rule);
            if (r->score_bandwidth > 0.0)
                snprintf(how, sizeof how, ", bandwidth %.3g", r->score_bandwidth);
            if (isfinite(r->score_shrink))
                snprintf(how + strlen(how), sizeof how - strlen(how), ", shrink %g",
                         r->score_shrink);
            cli_text_put(
                t,
                "S_4: %s estimator on z = U'x (U from the %s scores of %zu rows%s), bandwidth %.3g "
                "(standardised z), %zu reference samples, %.0f within reach and %.0f effective "
                "per point on average; %zu points with fewer than %zu effective took the thin "
                "rule (%s)\n",
                sl_s4_estimator_name(r->s4_estimator), o->score->name, r->u_rows, how, r->s4_info.h,
                r->s4_info.nref, r->s4_info.mean_neighbours, r->s4_info.mean_effective,
                r->s4_info.regularised, o->s4.min_neighbours, rule);
        } else if (r->route == SL_ROUTE_QUADRATIC)
            cli_text_put(
                t, "S_4: locally quadratic, from g and H only (third and fourth log-derivatives "
                   "dropped)\n");
        if (r->t_estimated && !r->independent && r->detrend > 0)
            cli_text_put(t,
                         "labels: minus their linear fit in x for M2 (U); the S_4 estimator "
                         "detrends them by degree %d in z%s\n",
                         r->detrend,
                         r->detrend == 4 ? " (the quartic's fourth derivative and the quadratic's "
                                           "Hessian added back)"
                                         : "");
        else if (r->detrend > 0)
            cli_text_put(t,
                         "labels: minus their %s in x for M2%s, minus their polynomial of "
                         "degree %d in z = U'x for T%s\n",
                         r->detrend_m2 == 2 ? "quadratic fit" : "linear fit",
                         r->detrend_m2 == 2 ? " (its Hessian added back)" : "", r->detrend,
                         r->detrend == 4 ? " (its fourth derivative added back)" : "");
    }
    if (r->refined)
        cli_text_put(t,
                     "refined: directions by a least-squares fit of the unwhitened T (residual "
                     "%.4g -> %.4g, %d BFGS iterations)\n",
                     sqrt(r->refine_info.f0), sqrt(r->refine_info.f), r->refine_info.iterations);
    if (r->refits > 0) {
        cli_text_put(t,
                     "refit: %d passes with the directions as control variates (M2, U and T "
                     "estimated again, then refined)",
                     r->refits);
        if (r->have_error) {
            cli_text_put(t, "; error after each:");
            for (int i = 0; i < r->refits; ++i) cli_text_put(t, " %.4g", r->refit_error[i]);
        }
        cli_text_put(t, "; kept %s%d (its second layer fits best)\n",
                     r->refit_kept ? "pass " : "the first estimate, pass ", r->refit_kept);
    }
    if (r->swaps > 0) {
        cli_text_put(t,
                     "swap: %d round%s (each direction in turn replaced by the residual's M2 "
                     "direction, %d passes from there, until one fits better)",
                     r->swaps, r->swaps == 1 ? "" : "s", SL_SWAP_PASSES);
        cli_text_put(t, "; replacements tried in each:");
        for (int i = 0; i < r->swaps; ++i) cli_text_put(t, " %d", r->swap_tried[i]);
        if (r->have_error) {
            cli_text_put(t, "; error after each:");
            for (int i = 0; i < r->swaps; ++i) cli_text_put(t, " %.4g", r->swap_error[i]);
        }
        if (r->swap_kept)
            cli_text_put(t, "; kept round %d's directions (their second layer fits best)\n",
                         r->swap_kept);
        else
            cli_text_put(t, "; no round fitted better than the passes\n");
    }
    if (r->refits > 0)
        cli_text_put(t,
                     "residual: the M2 of the labels minus their fit on the directions kept has "
                     "top eigenvalue %.3g (%.1f standard errors; M2's eigenvalue %zu, the weakest "
                     "signal kept: %.3g)\n",
                     r->residual_eig, fabs(r->residual_eig) / r->residual_se, r->k,
                     r->residual_scale);
    if (r->have_error) {
        cli_text_put(t, "error: %.4g (max form), %zu of %zu true directions found; min form %.4g\n",
                     r->error.err_max, r->error.distinct, o->truth->k, r->error.err_min);
        cli_text_put(t, "worst matched angle: %.3g degrees\n", r->error.worst_angle);
    } else {
        cli_text_put(t, "error: unknown (no --truth given)\n");
    }
    if (r->m2_evals) {
        cli_text_put(t, "M2 eigenvalues:");
        for (size_t i = 0; i < r->nevals; ++i)
            cli_text_put(t, "%s %.4g", i == k ? " |" : "", r->m2_evals[i]);
        cli_text_put(t, "%s\n", r->nevals > k ? " (after | : the largest outside the span)" : "");
        cli_text_put(t, "signal:");
        for (size_t i = 0; i < k; ++i) cli_text_put(t, " %.4g", r->signal[i]);
        if (r->sign)
            cli_text_put(t, " (sign used %+d)\n", r->sign);
        else
            cli_text_put(t, " (the sign-free loss uses none)\n");
        if (r->found_signal) {
            cli_text_put(t, "T(b,b,b,b) along the directions found:");
            for (size_t i = 0; i < k; ++i) {
                cli_text_put(t, " %.4g", r->found_signal[i]);
                if (r->found_signal_se) cli_text_put(t, " (se %.2g)", r->found_signal_se[i]);
            }
            cli_text_put(t, "\n");
        }
        if (r->truth_signal) {
            cli_text_put(t, "T(u,u,u,u) along the true whitened directions:");
            for (size_t i = 0; i < r->ntruth_signal; ++i)
                cli_text_put(t, " %.4g", r->truth_signal[i]);
            cli_text_put(t, "\n");
        }
        if (r->truth_coef) {
            cli_text_put(t, "the same in the population (p''(0) / (a |w| p(0)^2), the exact "
                            "marginals):");
            for (size_t i = 0; i < r->ntruth_coef; ++i) cli_text_put(t, " %.4g", r->truth_coef[i]);
            cli_text_put(t, "\n");
        }
    } else {
        cli_text_put(t, "M2 eigenvalues: none (the l2 loss uses no moments)\n");
    }
    if (r->n_holdout && isfinite(r->holdout_error))
        cli_text_put(
            t,
            "held-out prediction error: %.4g (relative MSE on %zu rows; %.4g on the fitted "
            "rows)\n",
            r->holdout_error, r->n_holdout, r->train_error);
    else
        cli_text_put(t, "held-out prediction error: none (%s; %.4g on the fitted rows)\n",
                     r->n_holdout ? "constant labels" : "--holdout 0", r->train_error);
    cli_text_put(t, "final loss: %.6g (restart %zu of %zu); restarts:", r->final_loss,
                 r->sgd->best_restart + 1, r->sgd->restarts);
    for (size_t i = 0; i < r->sgd->restarts; ++i) cli_text_put(t, " %.6g", r->sgd->restart_loss[i]);
    if (r->restart_error) {
        cli_text_put(t, "; their errors:");
        for (size_t i = 0; i < r->sgd->restarts; ++i) cli_text_put(t, " %.4g", r->restart_error[i]);
    }
    cli_text_put(t, "\n");
    cli_text_put(t, "sgd: %zu steps, stopped by %s\n", r->sgd->steps, r->sgd->stop_reason);
    cli_text_put(t, "seconds: scores %.3f, moments %.3f, sgd %.3f, second layer %.3f",
                 r->seconds_scores, r->seconds_moments, r->seconds_sgd, r->seconds_second_layer);
    if (r->t_estimated && !r->independent)
        cli_text_put(t, " (of the moments, S_4 %.3f)", r->seconds_s4);
    if (r->refits > 0) cli_text_put(t, ", refit passes %.3f", r->seconds_refit);
    if (r->swaps > 0) cli_text_put(t, " (of them, swap rounds %.3f)", r->seconds_swap);
    cli_text_put(t, "\n");
    if (r->warnings) {
        for (const char *p = r->warnings; *p;) {
            const size_t len = strcspn(p, "\n");
            cli_text_put(t, "warning: %.*s\n", (int)len, p);
            p += len + (p[len] == '\n');
        }
    }
}

/* ---- the command ------------------------------------------------------------------- */

static int run(int argc, char **argv) {
    cli_args args;
    int status = cli_parse(&cli_cmd_recover, argc, argv, &args);
    if (status != CLI_RUN) return status;
    settings s;
    if ((status = parse(&args, &s))) return status;
    sl_recover_options *o = &s.opt;

    size_t n = 0, d = 0;
    double *X = NULL, *y = NULL;
    sl_dist *dist = NULL;
    sl_network *truth = NULL;
    sl_recover_result *r = NULL;
    char *comment = NULL;
    cli_text summary = {0};
    reporter rep = {.args = &args, .forced = cli_given(&args, "progress")};
    sl_status st;
    if ((status = cli_read_xy(&args, s.input, &n, &d, &X, &y))) goto done;
    if (o->k > d) {
        status = cli_option_error(&args, "k",
                                  "k = %zu exceeds d = %zu, the number of columns x1..x%zu of %s "
                                  "(need k <= d)",
                                  o->k, d, d, s.input);
        goto done;
    }
    {
        /* The library's own check, here so the message names the file. */
        const size_t nho = (size_t)floor(o->holdout * (double)n + 0.5), ntr = n - nho;
        if (ntr < 2 * o->k + 2) {
            status = cli_error(&args, CLI_EXIT_FAILURE,
                               "%s: %zu samples leave %zu to fit after holding out %zu: too few "
                               "for k = %zu (need at least %zu)",
                               s.input, n, ntr, nho, o->k, 2 * o->k + 2);
            goto done;
        }
    }
    if (s.spec && o->loss != SL_RECOVER_L2) {
        if ((st = sl_dist_from_spec(s.spec, d, &dist))) {
            status = cli_option_lib_error(&args, "dist", st);
            goto done;
        }
        const unsigned need = SL_DIST_GRAD | SL_DIST_HESS;
        if ((sl_dist_caps(dist) & need) != need) {
            status = cli_option_error(&args, "dist",
                                      "distribution '%s' is sample-only: it has no exact gradient "
                                      "and Hessian, which --score exact needs",
                                      sl_dist_name(dist));
            goto done;
        }
        o->score_opt.dist = dist;
    }
    if (s.truth) {
        if ((st = sl_network_read(s.truth, o->act, &truth))) {
            status = cli_lib_error(&args, st);
            goto done;
        }
        if (truth->d != d) {
            status = cli_error(&args, CLI_EXIT_FAILURE,
                               "%s has %zu inputs (w1..w%zu) but %s has d = %zu columns x1..x%zu",
                               s.truth, truth->d, truth->d, s.input, d, d);
            goto done;
        }
        o->truth = truth;
    }
    if ((status = cli_check_writable(&args, s.output)) ||
        (s.trace && (status = cli_check_writable(&args, s.trace))))
        goto done;

    o->progress = on_progress;
    o->message = on_message;
    o->ctx = &rep;
    st = sl_recover(o, n, d, X, y, &r);
    if (rep.active) cli_progress_finish(&rep.bar);
    if (st) {
        status = cli_lib_error(&args, st);
        goto done;
    }
    summarise(&summary, &s, r, n);
    if (summary.failed) {
        status = cli_error(&args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    /* The summary without its trailing newline goes into the comment. */
    if (summary.len && summary.s[summary.len - 1] == '\n') summary.s[--summary.len] = '\0';
    if (!(comment = cli_comment(&args, NULL, summary.s))) {
        status = CLI_EXIT_FAILURE;
        goto done;
    }
    if ((status = write_outputs(&args, &s, r, comment))) goto done;
    printf("%s\n", summary.s);
    if (fflush(stdout) != 0) status = cli_error(&args, CLI_EXIT_FAILURE, "cannot write stdout");
done:
    free(X);
    free(y);
    free(comment);
    free(summary.s);
    sl_recover_result_free(r);
    sl_network_free(truth);
    sl_dist_free(dist);
    return status;
}
