/* The critical-point census (census.h): greedy clustering of end points in
 * order of increasing loss, with err_max between two end points as the
 * distance (invariant to permutation and sign of rows, recover.h). */
#include "scoreloss/census.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void sl_census_options_default(sl_census_options *opt) {
    if (!opt) return;
    opt->same_tol = 0.02;
    opt->global_tol = 0.1;
}

void sl_census_free(sl_census *c) {
    if (!c) return;
    free(c->assign);
    free(c->count);
    free(c->representative);
    free(c->loss);
    free(c->loss_spread);
    free(c->error);
    free(c->distinct);
    free(c->global);
    free(c);
}

/* Sorting end points by loss, ties by index (a stable, seed-free order). */
typedef struct {
    double loss;
    size_t index;
} keyed;

static int compare_keyed(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->loss < y->loss) return -1;
    if (x->loss > y->loss) return 1;
    return (x->index > y->index) - (x->index < y->index);
}

sl_status sl_census_compute(const sl_census_options *opt, size_t R, size_t k, size_t d,
                            const double *W, const double *loss, const double *truth, size_t kt,
                            sl_census **out) {
    if (!out) return sl_error(SL_EINVAL, "census: no output pointer");
    *out = NULL;
    sl_census_options o;
    sl_census_options_default(&o);
    if (opt) o = *opt;
    if (!W || !loss) return sl_error(SL_EINVAL, "census: missing end points or losses");
    if (R == 0 || k == 0 || d == 0)
        return sl_error(SL_EINVAL, "census: empty (%zu end points, k = %zu, d = %zu)", R, k, d);
    if (!(o.same_tol >= 0.0 && o.same_tol <= 1.0) || !(o.global_tol >= 0.0 && o.global_tol <= 1.0))
        return sl_error(SL_EINVAL, "census: tolerances must lie in [0, 1] (got %g and %g)",
                        o.same_tol, o.global_tol);
    if (truth && kt == 0) return sl_error(SL_EINVAL, "census: the truth has no rows");
    for (size_t i = 0; i < R; ++i)
        if (!isfinite(loss[i]))
            return sl_error(SL_ENUMERIC, "census: end point %zu has a non-finite loss", i + 1);

    sl_census *c = calloc(1, sizeof *c);
    keyed *order = malloc(R * sizeof *order);
    if (!c || !order) {
        free(c);
        free(order);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    c->npoints = R;
    c->have_truth = truth != NULL;
    c->assign = malloc(R * sizeof *c->assign);
    c->count = calloc(R, sizeof *c->count);
    c->representative = malloc(R * sizeof *c->representative);
    c->loss = malloc(R * sizeof *c->loss);
    c->loss_spread = malloc(R * sizeof *c->loss_spread);
    c->error = malloc(R * sizeof *c->error);
    c->distinct = calloc(R, sizeof *c->distinct);
    c->global = calloc(R, sizeof *c->global);
    sl_status st = SL_OK;
    if (!c->assign || !c->count || !c->representative || !c->loss || !c->loss_spread || !c->error ||
        !c->distinct || !c->global) {
        st = sl_error(SL_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < R; ++i) order[i] = (keyed){loss[i], i};
    qsort(order, R, sizeof *order, compare_keyed);

    /* Representatives are visited in order of creation, which is the order
     * of increasing loss. */
    size_t nc = 0;
    for (size_t s = 0; s < R; ++s) {
        const size_t i = order[s].index;
        size_t found = nc;
        for (size_t cl = 0; cl < nc; ++cl) {
            sl_recovery_error e;
            st = sl_recovery_error_compute(k, k, d, W + i * k * d,
                                           W + c->representative[cl] * k * d, &e);
            if (st) {
                st = sl_error_prefix(st, "census: end point %zu: ", i + 1);
                goto done;
            }
            if (e.err_max < o.same_tol) {
                found = cl;
                break;
            }
        }
        if (found == nc) {
            c->representative[nc] = i;
            c->loss[nc] = loss[i];
            ++nc;
        }
        c->assign[i] = found;
        c->count[found]++;
        c->loss_spread[found] = loss[i] - c->loss[found];
    }
    c->nclusters = nc;
    for (size_t cl = 0; cl < nc; ++cl) {
        c->error[cl] = NAN;
        if (truth) {
            sl_recovery_error e;
            st = sl_recovery_error_compute(k, kt, d, W + c->representative[cl] * k * d, truth, &e);
            if (st) goto done;
            c->error[cl] = e.err_max;
            c->distinct[cl] = e.distinct;
            c->global[cl] = e.err_max < o.global_tol;
        } else {
            c->global[cl] = cl == 0;
        }
        if (c->global[cl]) c->nglobal += c->count[cl];
    }
    c->global_fraction = (double)c->nglobal / (double)R;
done:
    free(order);
    if (st) {
        sl_census_free(c);
        return st;
    }
    *out = c;
    return SL_OK;
}

sl_status sl_census_run(const sl_recover_options *opt, const sl_census_options *copt, size_t n,
                        size_t d, const double *X, const double *y, sl_census **out,
                        sl_recover_result **result) {
    if (!out) return sl_error(SL_EINVAL, "census: no output pointer");
    *out = NULL;
    if (result) *result = NULL;
    if (!opt) return sl_error(SL_EINVAL, "census: no options");
    sl_recover_result *r = NULL;
    sl_status st = sl_recover(opt, n, d, X, y, &r);
    if (st) return st;
    if (!r->restart_W || !r->sgd || !r->sgd->restart_loss) {
        sl_recover_result_free(r);
        return sl_error(SL_EINVAL, "census: the recovery kept no end points");
    }
    const sl_network *t = opt->truth;
    st = sl_census_compute(copt, r->sgd->restarts, r->k, r->d, r->restart_W, r->sgd->restart_loss,
                           t ? t->W : NULL, t ? t->k : 0, out);
    if (st || !result)
        sl_recover_result_free(r);
    else
        *result = r;
    return st;
}
