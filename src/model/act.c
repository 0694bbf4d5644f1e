/* Activations of the planted network and their derivatives up to order 4.
 *
 * Conventions where the header leaves a choice: "quadratic" is z^2 and
 * "cubic" is z^3 (no 1/2 or 1/6 factors). The smooth activations are written
 * through quantities that keep their relative accuracy in the tails (sigmoid
 * of both signs, sech^2 from exp(-2|z|)), because the moment coefficients
 * E[sigma''''(w.x)] are averages in which tail values must not turn into
 * cancellation noise or NaN. */
#include "scoreloss/network.h"

#include <math.h>
#include <string.h>

static const char *const act_names[SL_ACT_COUNT] = {
    [SL_ACT_RELU] = "relu",  [SL_ACT_SIGMOID] = "sigmoid",   [SL_ACT_TANH] = "tanh",
    [SL_ACT_ERF] = "erf",    [SL_ACT_SOFTPLUS] = "softplus", [SL_ACT_QUADRATIC] = "quadratic",
    [SL_ACT_CUBIC] = "cubic"};

sl_status sl_act_from_name(const char *name, sl_act *out) {
    if (name)
        for (int i = 0; i < SL_ACT_COUNT; ++i)
            if (strcmp(name, act_names[i]) == 0) {
                *out = (sl_act)i;
                return SL_OK;
            }
    return sl_error(SL_EINVAL,
                    "unknown activation '%s' (expected relu, sigmoid, tanh, erf, softplus, "
                    "quadratic or cubic)",
                    name ? name : "(null)");
}

const char *sl_act_name(sl_act act) {
    if ((int)act < 0 || (int)act >= SL_ACT_COUNT) return "unknown";
    return act_names[act];
}

/* sigmoid(z) without overflow: exp is only taken of a non-positive number. */
static double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

/* Derivatives of the sigmoid s with t = 1 - s computed as sigmoid(-z), so
 * that s t keeps full relative accuracy for large |z|; t - s = -tanh(z/2)
 * is accurate near 0 where the difference of s and t would cancel. */
static double sigmoid_deriv(int order, double z) {
    if (order == 0) return sigmoid(z);
    double s = sigmoid(z), t = sigmoid(-z);
    double st = s * t;
    double tms = -tanh(0.5 * z);
    switch (order) {
    case 1:
        return st;
    case 2:
        return st * tms;
    case 3:
        return st * (1.0 - 6.0 * st);
    case 4:
        return st * tms * (1.0 - 12.0 * st);
    default:
        return NAN;
    }
}

/* tanh^(m) as polynomials in T = tanh z and u = sech^2 z; u comes from
 * exp(-2|z|) directly, since 1 - T^2 is pure cancellation for large |z|. */
static double tanh_deriv(int order, double z) {
    double T = tanh(z);
    if (order == 0) return T;
    double e = exp(-2.0 * fabs(z));
    double u = 4.0 * e / ((1.0 + e) * (1.0 + e));
    switch (order) {
    case 1:
        return u;
    case 2:
        return -2.0 * T * u;
    case 3:
        return u * (4.0 - 6.0 * u);
    case 4:
        return -8.0 * T * u * (1.0 - 3.0 * u);
    default:
        return NAN;
    }
}

/* erf^(m+1)(z) = (2/sqrt(pi)) (-1)^m H_m(z) exp(-z^2) with physicists'
 * Hermite polynomials. Where the Gaussian factor underflows the polynomial
 * may overflow (|z| ~ 1e103 gives inf * 0), so return the limit 0 first. */
static double erf_deriv(int order, double z) {
    if (order == 0) return erf(z);
    double g = exp(-z * z);
    if (g == 0.0) return 0.0;
    g *= M_2_SQRTPI;
    double z2 = z * z;
    switch (order) {
    case 1:
        return g;
    case 2:
        return -2.0 * z * g;
    case 3:
        return (4.0 * z2 - 2.0) * g;
    case 4:
        return z * (12.0 - 8.0 * z2) * g;
    default:
        return NAN;
    }
}

/* softplus = log(1 + e^z), written so exp never overflows and small values
 * keep relative accuracy (log1p); its derivatives are the sigmoid's. */
static double softplus_deriv(int order, double z) {
    if (order == 0) return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    return sigmoid_deriv(order - 1, z);
}

double sl_act_eval(sl_act act, int order, double z) {
    if (order < 0 || order > 4) return NAN;
    if (isnan(z)) return z; /* relu's comparisons would turn NaN into 0 */
    switch (act) {
    case SL_ACT_RELU:
        /* The a.e. derivatives: the kink's delta terms are not pointwise. */
        if (order == 0) return z > 0 ? z : 0.0;
        if (order == 1) return z > 0 ? 1.0 : 0.0;
        return 0.0;
    case SL_ACT_SIGMOID:
        return sigmoid_deriv(order, z);
    case SL_ACT_TANH:
        return tanh_deriv(order, z);
    case SL_ACT_ERF:
        return erf_deriv(order, z);
    case SL_ACT_SOFTPLUS:
        return softplus_deriv(order, z);
    case SL_ACT_QUADRATIC:
        switch (order) {
        case 0:
            return z * z;
        case 1:
            return 2.0 * z;
        case 2:
            return 2.0;
        default:
            return 0.0;
        }
    case SL_ACT_CUBIC:
        switch (order) {
        case 0:
            return z * z * z;
        case 1:
            return 3.0 * z * z;
        case 2:
            return 6.0 * z;
        case 3:
            return 6.0;
        default:
            return 0.0;
        }
    }
    return NAN;
}
