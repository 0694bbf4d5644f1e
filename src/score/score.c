/* The score-estimator registry, options, results and dispatch. */
#include "score/score_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/linalg.h"
#include "scoreloss/logdens.h"
#include "scoreloss/memlimit.h"

void sl_score_options_default(sl_score_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->bandwidth.kind = SL_BW_AUTO;
    opt->strategy = SL_STRATEGY_AUTO;
    opt->cutoff = 5.0;
    opt->knn_eps = 0.0;
    opt->shrink = -1.0;
    opt->seed = 1;
}

sl_status sl_bandwidth_parse(const char *text, sl_bandwidth *out) {
    char *end;
    if (!text || !*text) return sl_error(SL_EINVAL, "empty bandwidth");
    if (strcmp(text, "auto") == 0) {
        out->kind = SL_BW_AUTO;
        out->value = 0;
        return SL_OK;
    }
    if (strncmp(text, "knn:", 4) == 0) {
        errno = 0;
        unsigned long long k = strtoull(text + 4, &end, 10);
        if (end == text + 4 || *end || errno || k < 2 || text[4] == '-')
            return sl_error(SL_EINVAL, "bandwidth '%s': knn:K needs a whole number K >= 2", text);
        out->kind = SL_BW_KNN;
        out->value = (double)k;
        return SL_OK;
    }
    int is_const = strncmp(text, "const:", 6) == 0;
    const char *num = is_const ? text + 6 : text;
    errno = 0;
    double v = strtod(num, &end);
    if (end == num || *end || errno || !isfinite(v) || v <= 0)
        return sl_error(SL_EINVAL,
                        "bandwidth '%s': expected auto, a positive number, knn:K or const:C", text);
    out->kind = is_const ? SL_BW_CONST : SL_BW_FIXED;
    out->value = v;
    return SL_OK;
}

sl_status sl_scores_alloc(size_t n, size_t d, sl_scores **out) {
    *out = NULL;
    if (n == 0 || d == 0)
        return sl_error(SL_EINVAL, "scores need at least one point and one dimension");
    sl_scores *s = calloc(1, sizeof *s);
    if (!s) return sl_error(SL_ENOMEM, "out of memory");
    s->n = n;
    s->d = d;
    s->shrink = NAN;
    if (n > SIZE_MAX / sizeof(double) / d / d) {
        sl_scores_free(s);
        return sl_error(SL_ENOMEM, "scores of %zu points in dimension %zu do not fit in memory", n,
                        d);
    }
    s->G = malloc(n * d * sizeof *s->G);
    s->H = malloc(n * d * d * sizeof *s->H);
    if (!s->G || !s->H) {
        sl_scores_free(s);
        return sl_error(SL_ENOMEM, "out of memory for scores of %zu points in dimension %zu", n, d);
    }
    return SL_OK + (*out = s, 0);
}

void sl_scores_free(sl_scores *s) {
    if (!s) return;
    free(s->G);
    free(s->H);
    free(s->h);
    free(s);
}

static const sl_score_type *const registry[] = {&sl_score_llsfe, &sl_score_kde,
                                                &sl_score_gauss, &sl_score_hermite,
                                                &sl_score_exact, &sl_score_indep};

sl_status sl_score_type_from_name(const char *name, const sl_score_type **out) {
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; ++i)
        if (strcmp(registry[i]->name, name) == 0) {
            *out = registry[i];
            return SL_OK;
        }
    return sl_error(SL_EINVAL,
                    "unknown score method '%s' (expected llsfe, kde, gauss, hermite, exact or "
                    "indep)",
                    name);
}

sl_status sl_score_estimate(const sl_score_type *type, const sl_score_options *opt, size_t n,
                            size_t d, const double *X, size_t nq, const double *Q,
                            sl_scores **out) {
    *out = NULL;
    sl_score_options defaults;
    if (!opt) {
        sl_score_options_default(&defaults);
        opt = &defaults;
    }
    if (n == 0 || d == 0) return sl_error(SL_EINVAL, "no samples to estimate scores from");
    if (!Q) nq = n;
    if (nq == 0) return sl_error(SL_EINVAL, "no query points");
    if (!sl_all_finite(n * d, X))
        return sl_error(SL_ENUMERIC, "samples contain a non-finite value");
    if (Q && !sl_all_finite(nq * d, Q))
        return sl_error(SL_ENUMERIC, "query points contain a non-finite value");
    if (!(opt->cutoff > 0) || !isfinite(opt->cutoff))
        return sl_error(SL_EINVAL, "kernel cutoff must be positive, got %g", opt->cutoff);
    /* The results (g, H and a bandwidth per query) and the estimators' own
     * copies of the samples (a neighbour index, a held-out split): about two
     * more n x d arrays and one n. */
    const size_t per_query = sl_mem_add(sl_mem_mul(d, d), d + 1);
    const size_t need = sl_mem_doubles(
        sl_mem_add(sl_mem_mul(nq, per_query), sl_mem_mul(n, sl_mem_add(sl_mem_mul(2, d), 1))));
    char what[128];
    snprintf(what, sizeof what, "%s scores of %zu points in dimension %zu", type->name, nq, d);
    sl_status st = sl_mem_check(need, what);
    if (st) return st;
    sl_scores *s;
    st = sl_scores_alloc(nq, d, &s);
    if (st) return st;
    snprintf(s->method, sizeof s->method, "%s", type->name);
    st = type->estimate(opt, n, d, X, nq, Q, s);
    if (st == SL_OK && (!sl_all_finite(nq * d, s->G) || !sl_all_finite(nq * d * d, s->H)))
        st = sl_error(SL_ENUMERIC, "score method %s produced a non-finite value", type->name);
    if (st) {
        sl_scores_free(s);
        return st;
    }
    *out = s;
    return SL_OK;
}
