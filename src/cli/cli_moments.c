/* The options of the moments M2 and T shared by recover, landscape and
 * census (cli_moments.h). */
#include "cli/cli_moments.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "scoreloss/s4.h"
#include "scoreloss/score.h"

/* The names of cli_moment_options.inc, in its order. */
static const char *const moment_names[] = {"s4",      "s4-bandwidth", "s4-reference",
                                           "s4-thin", "shrink",       "shrink-min",
                                           "u-rows",  "assume",       "detrend"};
/* Those of the projected route's S_4 estimate and U. */
static const char *const projected_names[] = {"s4",      "s4-bandwidth", "s4-reference",
                                              "s4-thin", "shrink-min",   "u-rows"};

int cli_moment_options(const cli_args *args, sl_recover_options *o) {
    int status;
    sl_status st;
    if ((st = sl_s4_estimator_from_name(cli_value(args, "s4"), &o->s4.estimator)))
        return cli_option_lib_error(args, "s4", st);
    if ((st = sl_s4_thin_from_name(cli_value(args, "s4-thin"), &o->s4.thin)))
        return cli_option_lib_error(args, "s4-thin", st);
    if (cli_given(args, "shrink") &&
        (status = cli_double(args, "shrink", 0.0, HUGE_VAL, "a number >= 0", &o->score_opt.shrink)))
        return status;
    if ((status = cli_double(args, "shrink-min", 0.0, HUGE_VAL, "a number >= 0", &o->shrink_min)))
        return status;
    if (strcmp(cli_value(args, "s4-bandwidth"), "auto") != 0 &&
        (status =
             cli_double(args, "s4-bandwidth", DBL_MIN, HUGE_VAL, "a number > 0 or auto", &o->s4.h)))
        return status;
    if (strcmp(cli_value(args, "s4-reference"), "all") == 0)
        o->s4.reference = 0;
    else if (strcmp(cli_value(args, "s4-reference"), "auto") != 0 &&
             (status = cli_size(args, "s4-reference", 1, SIZE_MAX, &o->s4.reference)))
        return status;
    if ((status = cli_size(args, "u-rows", 0, SIZE_MAX, &o->u_rows))) return status;
    if (cli_given(args, "assume")) {
        if (strcmp(cli_value(args, "assume"), "independent") != 0)
            return cli_option_error(args, "assume",
                                    "unknown assumption '%s' (expected independent)",
                                    cli_value(args, "assume"));
        o->assume_independent = 1;
    }
    return cli_auto_or_count(args, "detrend", 4, &o->detrend);
}

static int projected_only(const cli_args *args, const char *name, int projected) {
    if (cli_given(args, name) && !projected)
        return cli_option_error(args, name,
                                "applies to estimated scores on the projected route only");
    return 0;
}

int cli_moment_check(const cli_args *args, const sl_recover_options *o, const char *const *extra,
                     size_t nextra) {
    const int exact = o->score == &sl_score_exact;
    int status;
    if (!exact && !o->assume_independent && o->route == SL_ROUTE_FULL)
        return cli_option_error(args, "route",
                                "full needs --score exact or --assume independent (estimated "
                                "scores take the projected or the quadratic route)");
    if (o->assume_independent && (exact || o->route == SL_ROUTE_PROJECTED))
        return cli_option_error(args, "assume",
                                "independent applies to estimated scores on route full or "
                                "quadratic (the factorised fit replaces the score estimator)");
    const int projected = !exact && !o->assume_independent && o->route != SL_ROUTE_QUADRATIC;
    for (size_t i = 0; i < sizeof projected_names / sizeof *projected_names; ++i)
        if ((status = projected_only(args, projected_names[i], projected))) return status;
    for (size_t i = 0; i < nextra; ++i)
        if ((status = projected_only(args, extra[i], projected))) return status;
    if (cli_given(args, "shrink") && o->score != &sl_score_llsfe)
        return cli_option_error(args, "shrink", "applies to llsfe scores only");
    if (cli_given(args, "shrink-min") && o->score != &sl_score_llsfe)
        return cli_option_error(args, "shrink-min", "applies to llsfe scores only");
    if (cli_given(args, "shrink-min") &&
        (cli_given(args, "shrink") || o->score_opt.bandwidth.kind != SL_BW_AUTO))
        return cli_option_error(args, "shrink-min",
                                "applies when the shrink is chosen with the automatic "
                                "bandwidth (leave out --shrink and --bandwidth)");
    return 0;
}

const char *cli_moment_given(const cli_args *args) {
    for (size_t i = 0; i < sizeof moment_names / sizeof *moment_names; ++i)
        if (cli_given(args, moment_names[i])) return moment_names[i];
    return NULL;
}
