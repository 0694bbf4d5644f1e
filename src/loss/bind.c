/* Options and results by name (bind.h). The option names, the accepted
 * values and the messages follow the command line's, so a binding reports
 * what `scoreloss score` and `scoreloss recover` would. */
#include "scoreloss/bind.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing ------------------------------------------------------------------- */

/* A finite decimal number in [lo, hi]; as the command line, without leading
 * blanks, hexadecimal, "inf" or "nan". */
static sl_status parse_double(const char *what, const char *text, double lo, double hi,
                              const char *expected, double *out) {
    char *end = NULL;
    errno = 0;
    int ok = text && *text && !(text[0] == ' ' || text[0] == '\t') && !strpbrk(text, "xX");
    double v = ok ? strtod(text, &end) : 0.0;
    if (ok && end != text && *end == '\0' && errno != ERANGE && isfinite(v) && v >= lo && v <= hi) {
        *out = v;
        return SL_OK;
    }
    return sl_error(SL_EINVAL, "option %s: expected %s, got '%.60s'", what, expected,
                    text ? text : "");
}

/* Decimal digits only (no sign, no blanks), below 2^64. */
static int parse_u64(const char *text, uint64_t *out) {
    if (!text || !*text) return 0;
    uint64_t v = 0;
    for (const char *p = text; *p; ++p) {
        if (*p < '0' || *p > '9') return 0;
        const uint64_t digit = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - digit) / 10) return 0;
        v = v * 10 + digit;
    }
    *out = v;
    return 1;
}

static sl_status parse_size(const char *what, const char *text, size_t lo, size_t hi, size_t *out) {
    uint64_t v;
    if (parse_u64(text, &v) && v >= lo && v <= hi && v <= SIZE_MAX) {
        *out = (size_t)v;
        return SL_OK;
    }
    if (hi == SIZE_MAX)
        return sl_error(SL_EINVAL, "option %s: expected an integer >= %zu, got '%.60s'", what, lo,
                        text ? text : "");
    return sl_error(SL_EINVAL, "option %s: expected an integer from %zu to %zu, got '%.60s'", what,
                    lo, hi, text ? text : "");
}

/* "auto" (-1) or an integer from 0 to hi (<= INT_MAX). */
static sl_status parse_auto_count(const char *what, const char *text, size_t hi, int *out) {
    if (text && strcmp(text, "auto") == 0) {
        *out = -1;
        return SL_OK;
    }
    size_t v = 0;
    const sl_status st = parse_size(what, text, 0, hi, &v);
    if (!st) *out = (int)v;
    return st;
}

static sl_status parse_seed(const char *what, const char *text, uint64_t *out) {
    if (parse_u64(text, out)) return SL_OK;
    return sl_error(SL_EINVAL, "option %s: expected a non-negative integer below 2^64, got '%.60s'",
                    what, text ? text : "");
}

/* The index of text in names (count of them), or an error listing them. */
static sl_status parse_choice(const char *what, const char *text, const char *const *names,
                              size_t count, int *out) {
    for (size_t i = 0; text && i < count; ++i)
        if (strcmp(text, names[i]) == 0) {
            *out = (int)i;
            return SL_OK;
        }
    char list[160] = "";
    for (size_t i = 0; i < count; ++i) {
        const size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, "%s%s",
                 i == 0           ? ""
                 : i + 1 == count ? " or "
                                  : ", ",
                 names[i]);
    }
    return sl_error(SL_EINVAL, "option %s: unknown %s '%.60s' (expected %s)", what, what,
                    text ? text : "", list);
}

/* ---- score options ------------------------------------------------------------- */

sl_status sl_score_options_alloc(sl_score_options **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = malloc(sizeof **out);
    if (!*out) return sl_error(SL_ENOMEM, "out of memory");
    sl_score_options_default(*out);
    return SL_OK;
}

void sl_score_options_free(sl_score_options *opt) {
    free(opt);
}

/* The options shared by score and recover; *known = 0 when name is none of
 * them. Values go into a copy, so a failure leaves opt as it was. */
static sl_status score_option(sl_score_options *opt, const char *name, const char *value,
                              int *known) {
    sl_score_options o = *opt;
    sl_status st = SL_OK;
    *known = 1;
    if (strcmp(name, "bandwidth") == 0) {
        st = sl_bandwidth_parse(value, &o.bandwidth);
        if (st) st = sl_error_prefix(st, "option bandwidth: ");
    } else if (strcmp(name, "bw-const") == 0) {
        o.bandwidth.kind = SL_BW_CONST;
        st = parse_double(name, value, DBL_MIN, HUGE_VAL, "a number > 0", &o.bandwidth.value);
    } else if (strcmp(name, "strategy") == 0) {
        static const char *const names[] = {"auto", "allpairs", "neighbours"};
        static const sl_strategy of[] = {SL_STRATEGY_AUTO, SL_STRATEGY_ALLPAIRS,
                                         SL_STRATEGY_NEIGHBOURS};
        int i = 0;
        st = parse_choice(name, value, names, 3, &i);
        o.strategy = of[i];
    } else if (strcmp(name, "cutoff") == 0) {
        st = parse_double(name, value, DBL_MIN, HUGE_VAL, "a number > 0", &o.cutoff);
    } else if (strcmp(name, "knn-eps") == 0) {
        st = parse_double(name, value, 0.0, HUGE_VAL, "a number >= 0", &o.knn_eps);
    } else if (strcmp(name, "shrink") == 0) {
        st = parse_double(name, value, 0.0, HUGE_VAL, "a number >= 0", &o.shrink);
    } else {
        *known = 0;
    }
    if (st == SL_OK && *known) *opt = o;
    return st;
}

sl_status sl_score_options_set(sl_score_options *opt, const char *name, const char *value) {
    if (!opt || !name) return sl_error(SL_EINVAL, "score options: missing argument");
    int known = 0;
    sl_status st = score_option(opt, name, value, &known);
    if (known) return st;
    if (strcmp(name, "seed") == 0) return parse_seed(name, value, &opt->seed);
    return sl_error(SL_EINVAL,
                    "unknown score option '%.60s' (expected bandwidth, bw-const, strategy, cutoff, "
                    "knn-eps, shrink or seed)",
                    name);
}

void sl_score_options_set_dist(sl_score_options *opt, const sl_dist *dist) {
    if (opt) opt->dist = dist;
}

/* ---- scores ---------------------------------------------------------------------- */

sl_status sl_scores_array(const sl_scores *s, const char *name, const double **data, size_t *len) {
    if (!s || !name || !data || !len) return sl_error(SL_EINVAL, "scores: missing argument");
    if (strcmp(name, "G") == 0) {
        *data = s->G;
        *len = s->n * s->d;
    } else if (strcmp(name, "H") == 0) {
        *data = s->H;
        *len = s->n * s->d * s->d;
    } else if (strcmp(name, "h") == 0) {
        *data = s->h;
        *len = s->h ? s->n : 0;
    } else {
        return sl_error(SL_EINVAL, "scores: unknown array '%.60s' (expected G, H or h)", name);
    }
    if (!*data) *len = 0;
    return SL_OK;
}

sl_status sl_scores_number(const sl_scores *s, const char *name, double *value) {
    if (!s || !name || !value) return sl_error(SL_EINVAL, "scores: missing argument");
    if (strcmp(name, "n") == 0)
        *value = (double)s->n;
    else if (strcmp(name, "d") == 0)
        *value = (double)s->d;
    else if (strcmp(name, "bandwidth") == 0)
        *value = s->bandwidth;
    else if (strcmp(name, "regularised") == 0)
        *value = (double)s->regularised;
    else if (strcmp(name, "bw_ngrid") == 0)
        *value = (double)s->bw_ngrid;
    else
        return sl_error(SL_EINVAL,
                        "scores: unknown number '%.60s' (expected n, d, bandwidth, regularised or "
                        "bw_ngrid)",
                        name);
    return SL_OK;
}

const char *sl_scores_text(const sl_scores *s, const char *name) {
    if (!s || !name) return NULL;
    if (strcmp(name, "method") == 0) return s->method;
    if (strcmp(name, "strategy") == 0)
        return s->strategy == SL_STRATEGY_ALLPAIRS     ? "allpairs"
               : s->strategy == SL_STRATEGY_NEIGHBOURS ? "neighbours"
                                                       : "auto";
    return NULL;
}

/* ---- recover options ------------------------------------------------------------- */

sl_status sl_recover_options_alloc(size_t k, sl_recover_options **out) {
    if (!out) return sl_error(SL_EINVAL, "no output pointer given");
    *out = malloc(sizeof **out);
    if (!*out) return sl_error(SL_ENOMEM, "out of memory");
    sl_recover_options_default(*out);
    (*out)->k = k;
    return SL_OK;
}

void sl_recover_options_free(sl_recover_options *opt) {
    free(opt);
}

/* Every option of `scoreloss recover` that sets the options (not files). */
static sl_status recover_option(sl_recover_options *o, const char *name, const char *value) {
    static const char *const losses[] = {"landscape", "signfree", "l2"};
    static const char *const routes[] = {"auto", "full", "projected", "quadratic"};
    static const sl_recover_route route_of[] = {SL_ROUTE_AUTO, SL_ROUTE_FULL, SL_ROUTE_PROJECTED,
                                                SL_ROUTE_QUADRATIC};
    static const char *const modes[] = {"auto", "tensor", "minibatch"};
    static const sl_recover_mode mode_of[] = {SL_MODE_AUTO, SL_MODE_TENSOR, SL_MODE_MINIBATCH};
    /* auto is orthonormal, as on the command line. */
    static const char *const constraints[] = {"auto", "sphere", "orthonormal", "none"};
    static const sl_projection proj_of[] = {SL_PROJ_ORTHONORMAL, SL_PROJ_SPHERE,
                                            SL_PROJ_ORTHONORMAL, SL_PROJ_NONE};
    int i = 0;
    sl_status st;
    if (strcmp(name, "k") == 0) return parse_size(name, value, 1, SIZE_MAX, &o->k);
    if (strcmp(name, "loss") == 0) {
        if ((st = parse_choice(name, value, losses, 3, &i))) return st;
        o->loss = (sl_recover_loss)i;
        /* sl_recover sets the kind from the loss itself; the plane functions
         * take the landscape options as they are. */
        o->landscape.kind = o->loss == SL_RECOVER_SIGNFREE ? SL_LOSS_SIGNFREE : SL_LOSS_LANDSCAPE;
        return SL_OK;
    }
    if (strcmp(name, "score") == 0) {
        if (sl_score_type_from_name(value, &o->score) == SL_OK) return SL_OK;
        return sl_error(SL_EINVAL,
                        "option score: unknown score source '%.60s' (expected llsfe, kde, gauss, "
                        "hermite or exact)",
                        value ? value : "");
    }
    if (strcmp(name, "route") == 0) {
        if ((st = parse_choice(name, value, routes, 4, &i))) return st;
        o->route = route_of[i];
        return SL_OK;
    }
    if (strcmp(name, "refine") == 0) {
        static const char *const refines[] = {"auto", "cp", "none"};
        if ((st = parse_choice(name, value, refines, 3, &i))) return st;
        o->refine = i == 0 ? -1 : i == 1 ? 1 : 0;
        return SL_OK;
    }
    if (strcmp(name, "mode") == 0) {
        if ((st = parse_choice(name, value, modes, 3, &i))) return st;
        o->mode = mode_of[i];
        return SL_OK;
    }
    if (strcmp(name, "constraint") == 0) {
        if ((st = parse_choice(name, value, constraints, 4, &i))) return st;
        o->sgd.projection = proj_of[i];
        return SL_OK;
    }
    if (strcmp(name, "act") == 0) {
        sl_act act;
        if ((st = sl_act_from_name(value, &act))) return sl_error_prefix(st, "option act: ");
        o->act = act;
        return SL_OK;
    }
    if (strcmp(name, "mu") == 0)
        return parse_double(name, value, -HUGE_VAL, HUGE_VAL, "a number", &o->landscape.mu);
    if (strcmp(name, "lambda") == 0)
        return parse_double(name, value, 0.0, HUGE_VAL, "a number >= 0", &o->landscape.lambda);
    if (strcmp(name, "lr") == 0)
        return parse_double(name, value, DBL_MIN, HUGE_VAL, "a number > 0", &o->sgd.lr);
    if (strcmp(name, "batch") == 0) return parse_size(name, value, 1, SIZE_MAX, &o->sgd.batch);
    if (strcmp(name, "epochs") == 0) {
        if (value && strcmp(value, "auto") == 0) {
            o->sgd.epochs = 0;
            return SL_OK;
        }
        return parse_size(name, value, 1, UINT32_MAX - 1, &o->sgd.epochs);
    }
    if (strcmp(name, "restarts") == 0) return parse_size(name, value, 1, 100000, &o->sgd.restarts);
    if (strcmp(name, "seed") == 0) return parse_seed(name, value, &o->seed);
    if (strcmp(name, "holdout") == 0)
        return parse_double(name, value, 0.0, 1.0 - DBL_EPSILON, "a number in [0, 1)", &o->holdout);
    if (strcmp(name, "tensor-steps") == 0)
        return parse_size(name, value, 1, SIZE_MAX, &o->tensor_steps);
    if (strcmp(name, "s4") == 0) {
        if ((st = sl_s4_estimator_from_name(value, &o->s4.estimator)))
            return sl_error_prefix(st, "option s4: ");
        return SL_OK;
    }
    if (strcmp(name, "s4-thin") == 0) {
        if ((st = sl_s4_thin_from_name(value, &o->s4.thin)))
            return sl_error_prefix(st, "option s4-thin: ");
        return SL_OK;
    }
    if (strcmp(name, "s4-bandwidth") == 0 || strcmp(name, "s4-reference") == 0) {
        /* auto: the library's default, whatever it is. */
        sl_s4_options def;
        sl_s4_options_default(&def);
        const int bw = name[3] == 'b';
        if (value && strcmp(value, "auto") == 0) {
            if (bw)
                o->s4.h = def.h;
            else
                o->s4.reference = def.reference;
            return SL_OK;
        }
        if (bw)
            return parse_double(name, value, DBL_MIN, HUGE_VAL, "a number > 0 or auto", &o->s4.h);
        if (value && strcmp(value, "all") == 0) {
            o->s4.reference = 0;
            return SL_OK;
        }
        return parse_size(name, value, 1, SIZE_MAX, &o->s4.reference);
    }
    if (strcmp(name, "u-rows") == 0) return parse_size(name, value, 0, SIZE_MAX, &o->u_rows);
    if (strcmp(name, "shrink-min") == 0)
        return parse_double(name, value, 0.0, HUGE_VAL, "a number >= 0", &o->shrink_min);
    if (strcmp(name, "detrend") == 0) return parse_auto_count(name, value, 4, &o->detrend);
    if (strcmp(name, "refit") == 0) return parse_auto_count(name, value, SL_REFIT_MAX, &o->refit);
    if (strcmp(name, "refit-rows") == 0)
        return parse_size(name, value, 0, SIZE_MAX, &o->refit_rows);
    if (strcmp(name, "refit-scale") == 0)
        return parse_double(name, value, DBL_MIN, HUGE_VAL, "a number > 0", &o->s4.cv_scale);
    if (strcmp(name, "swap") == 0) {
        size_t swap = 0;
        if ((st = parse_size(name, value, 0, SL_SWAP_MAX, &swap))) return st;
        o->swap = (int)swap;
        return SL_OK;
    }
    if (strcmp(name, "assume") == 0) {
        static const char *const what[] = {"none", "independent"};
        if ((st = parse_choice(name, value, what, 2, &i))) return st;
        o->assume_independent = i;
        return SL_OK;
    }
    int known = 0;
    st = score_option(&o->score_opt, name, value, &known);
    if (known) return st;
    return sl_error(
        SL_EINVAL,
        "unknown recover option '%.60s' (expected k, loss, score, route, mode, act, "
        "mu, lambda, constraint, lr, batch, epochs, restarts, seed, holdout, "
        "tensor-steps, s4, s4-bandwidth, s4-reference, s4-thin, u-rows, assume, detrend, refine, "
        "refit, "
        "refit-scale, refit-rows, swap, bandwidth, bw-const, strategy, cutoff, knn-eps, shrink or "
        "shrink-min)",
        name);
}

sl_status sl_recover_options_set(sl_recover_options *opt, const char *name, const char *value) {
    if (!opt || !name) return sl_error(SL_EINVAL, "recover options: missing argument");
    /* On a copy, so that a bad value leaves the options as they were. */
    sl_recover_options o = *opt;
    sl_status st = recover_option(&o, name, value);
    if (st == SL_OK) *opt = o;
    return st;
}

void sl_recover_options_set_dist(sl_recover_options *opt, const sl_dist *dist) {
    if (opt) opt->score_opt.dist = dist;
}

void sl_recover_options_set_truth(sl_recover_options *opt, const sl_network *truth) {
    if (opt) opt->truth = truth;
}

const sl_landscape_options *sl_recover_options_landscape(const sl_recover_options *opt) {
    return opt ? &opt->landscape : NULL;
}

sl_projection sl_recover_options_projection(const sl_recover_options *opt) {
    return opt ? opt->sgd.projection : SL_PROJ_NONE;
}

/* ---- recover results ----------------------------------------------------------------- */

sl_status sl_recover_result_array(const sl_recover_result *r, const char *name, const double **data,
                                  size_t *len) {
    if (!r || !name || !data || !len) return sl_error(SL_EINVAL, "result: missing argument");
    const size_t k = r->k, d = r->d, restarts = r->sgd ? r->sgd->restarts : 0;
    const double *p = NULL;
    size_t n = 0;
    if (strcmp(name, "W_hat") == 0)
        p = r->W_hat, n = k * d;
    else if (strcmp(name, "a_hat") == 0)
        p = r->a_hat, n = k;
    else if (strcmp(name, "restart_error") == 0)
        p = r->restart_error, n = restarts;
    else if (strcmp(name, "restart_W") == 0)
        p = r->restart_W, n = restarts * k * d;
    else if (strcmp(name, "restart_loss") == 0)
        p = r->sgd ? r->sgd->restart_loss : NULL, n = restarts;
    else if (strcmp(name, "m2_evals") == 0)
        p = r->m2_evals, n = r->nevals;
    else if (strcmp(name, "signal") == 0)
        p = r->signal, n = k;
    else if (strcmp(name, "found_signal") == 0)
        p = r->found_signal, n = k;
    else if (strcmp(name, "found_signal_se") == 0)
        p = r->found_signal_se, n = k;
    else if (strcmp(name, "truth_signal") == 0)
        p = r->truth_signal, n = r->ntruth_signal;
    else if (strcmp(name, "truth_coef") == 0)
        p = r->truth_coef, n = r->ntruth_coef;
    else if (strcmp(name, "refit_error") == 0)
        p = r->have_error && r->refits > 0 ? r->refit_error : NULL, n = (size_t)r->refits;
    else if (strcmp(name, "swap_error") == 0)
        p = r->have_error && r->swaps > 0 ? r->swap_error : NULL, n = (size_t)r->swaps;
    else
        return sl_error(SL_EINVAL,
                        "result: unknown array '%.60s' (expected W_hat, a_hat, restart_error, "
                        "restart_W, restart_loss, m2_evals, signal, found_signal, found_signal_se, "
                        "truth_signal, truth_coef, refit_error or swap_error)",
                        name);
    *data = p;
    *len = p ? n : 0;
    return SL_OK;
}

sl_status sl_recover_result_number(const sl_recover_result *r, const char *name, double *value) {
    if (!r || !name || !value) return sl_error(SL_EINVAL, "result: missing argument");
    const double no_error = NAN;
    const sl_sgd_result *s = r->sgd;
    struct {
        const char *name;
        double value;
    } const table[] = {
        {"k", (double)r->k},
        {"d", (double)r->d},
        {"n_train", (double)r->n_train},
        {"n_holdout", (double)r->n_holdout},
        {"have_error", (double)r->have_error},
        {"err_max", r->have_error ? r->error.err_max : no_error},
        {"err_min", r->have_error ? r->error.err_min : no_error},
        {"distinct", r->have_error ? (double)r->error.distinct : no_error},
        {"worst_angle", r->have_error ? r->error.worst_angle : no_error},
        {"sign", (double)r->sign},
        {"tensor_mode", (double)r->tensor_mode},
        {"holdout_error", r->holdout_error},
        {"train_error", r->train_error},
        {"final_loss", r->final_loss},
        {"seconds_scores", r->seconds_scores},
        {"seconds_moments", r->seconds_moments},
        {"seconds_sgd", r->seconds_sgd},
        {"seconds_second_layer", r->seconds_second_layer},
        {"seconds_s4", r->seconds_s4},
        {"seconds_refit", r->seconds_refit},
        {"seconds_swap", r->seconds_swap},
        {"detrend", (double)r->detrend},
        {"detrend_m2", (double)r->detrend_m2},
        {"refined", (double)r->refined},
        {"refine_residual", r->refined ? sqrt(r->refine_info.f) : NAN},
        {"refits", (double)r->refits},
        {"refit_kept", (double)r->refit_kept},
        {"swaps", (double)r->swaps},
        {"swap_kept", (double)r->swap_kept},
        {"residual_eig", r->residual_eig},
        {"residual_se", r->residual_se},
        {"residual_scale", r->residual_scale},
        {"t_estimated", (double)r->t_estimated},
        {"independent", (double)r->independent},
        {"u_rows", (double)r->u_rows},
        {"s4_h", r->t_estimated ? r->s4_info.h : NAN},
        {"s4_nref", r->t_estimated ? (double)r->s4_info.nref : NAN},
        {"s4_mean_neighbours", r->t_estimated ? r->s4_info.mean_neighbours : NAN},
        {"s4_mean_effective", r->t_estimated ? r->s4_info.mean_effective : NAN},
        {"s4_regularised", r->t_estimated ? (double)r->s4_info.regularised : NAN},
        {"steps", s ? (double)s->steps : 0.0},
        {"restarts", s ? (double)s->restarts : 0.0},
        {"best_restart", s ? (double)s->best_restart : 0.0},
        {"ntrace", s ? (double)s->ntrace : 0.0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
        if (strcmp(name, table[i].name) == 0) {
            *value = table[i].value;
            return SL_OK;
        }
    return sl_error(SL_EINVAL, "result: unknown number '%.60s'", name);
}

const char *sl_recover_result_text(const sl_recover_result *r, const char *name) {
    if (!r || !name) return NULL;
    if (strcmp(name, "route") == 0) return sl_recover_route_name(r->route);
    if (strcmp(name, "stop_reason") == 0)
        return r->sgd && r->sgd->stop_reason ? r->sgd->stop_reason : "";
    if (strcmp(name, "warnings") == 0) return r->warnings ? r->warnings : "";
    if (strcmp(name, "s4_estimator") == 0)
        return r->t_estimated && !r->independent ? sl_s4_estimator_name(r->s4_estimator) : "";
    return NULL;
}

void sl_recover_result_trace(const sl_recover_result *r, double *out) {
    if (!r || !r->sgd || !out) return;
    for (size_t i = 0; i < r->sgd->ntrace; ++i) {
        const sl_trace_row *t = r->sgd->trace + i;
        double *row = out + 8 * i;
        row[0] = (double)t->restart;
        row[1] = (double)t->step;
        row[2] = (double)t->epoch;
        row[3] = t->loss;
        row[4] = t->grad_norm;
        row[5] = t->error;
        row[6] = t->seconds;
        row[7] = (double)t->full;
    }
}

/* ---- moments --------------------------------------------------------------------------- */

sl_status sl_moments_array(const sl_moments *m, const char *name, const double **data,
                           size_t *len) {
    if (!m || !name || !data || !len) return sl_error(SL_EINVAL, "moments: missing argument");
    const size_t d = m->d, k = m->k;
    const double *p = NULL;
    size_t n = 0;
    if (strcmp(name, "M2") == 0)
        p = m->M2, n = d * d;
    else if (strcmp(name, "evals") == 0)
        p = m->evals, n = d;
    else if (strcmp(name, "U") == 0)
        p = m->U, n = d * k;
    else if (strcmp(name, "P") == 0)
        p = m->P, n = d * k;
    else if (strcmp(name, "T") == 0)
        p = m->T, n = k * k * k * k;
    else if (strcmp(name, "signal") == 0)
        p = m->have_signal ? m->signal : NULL, n = k;
    else
        return sl_error(SL_EINVAL,
                        "moments: unknown array '%.60s' (expected M2, evals, U, P, T or signal)",
                        name);
    *data = p;
    *len = p ? n : 0;
    return SL_OK;
}

/* ---- layouts ------------------------------------------------------------------------- */

#define FIELD(T, F)                                                                                \
    { #T, #F, (long)offsetof(T, F) }

long sl_bind_layout(const char *type, const char *field) {
    static const struct {
        const char *type, *field;
        long value;
    } table[] = {
        FIELD(sl_dist_callbacks, name),
        FIELD(sl_dist_callbacks, dim),
        FIELD(sl_dist_callbacks, sample),
        FIELD(sl_dist_callbacks, log_density),
        FIELD(sl_dist_callbacks, gradient),
        FIELD(sl_dist_callbacks, hessian),
        FIELD(sl_dist_callbacks, score3),
        FIELD(sl_dist_callbacks, score4),
        FIELD(sl_dist_callbacks, destroy),
        FIELD(sl_dist_callbacks, data),
        FIELD(sl_dist_callbacks, smooth),
        FIELD(sl_network, k),
        FIELD(sl_network, d),
        FIELD(sl_network, act),
        FIELD(sl_network, W),
        FIELD(sl_network, a),
    };
    if (!type) return -1;
    if (!field) {
        if (strcmp(type, "sl_dist_callbacks") == 0) return (long)sizeof(sl_dist_callbacks);
        if (strcmp(type, "sl_network") == 0) return (long)sizeof(sl_network);
        return -1;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; ++i)
        if (strcmp(type, table[i].type) == 0 && strcmp(field, table[i].field) == 0)
            return table[i].value;
    return -1;
}
