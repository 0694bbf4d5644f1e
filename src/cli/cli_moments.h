/* The options of the moments M2 and T that `recover`, `landscape` and
 * `census` share: the S_4 estimate of the projected route, llsfe's shrink,
 * the rows that give U, the independence assumption and the detrending.
 * One table and one parser, so the three commands build T alike. */
#ifndef SL_CLI_MOMENTS_H
#define SL_CLI_MOMENTS_H

#include "cli/cli_util.h"
#include "scoreloss/recover.h"

/* The options' entries are in cli_moment_options.inc, for a command's
 * option table:
 *     static const cli_option options[] = {
 *         ...
 * #include "cli/cli_moment_options.inc"
 *         ...
 *     }; */

/* Reads those options into o. Prints the message and
 * returns 2 on a bad value, 0 otherwise. */
int cli_moment_options(const cli_args *args, sl_recover_options *o);

/* Refuses what would be silently ignored or refused later, for the score
 * source, route, bandwidth and assumption in o: --assume independent with
 * exact scores or on the projected route, route full with estimated scores
 * without it, the projected route's options (those and the caller's extra
 * ones, nextra names) elsewhere, llsfe's options with other
 * scores. Prints the message and returns 2, or returns 0. */
int cli_moment_check(const cli_args *args, const sl_recover_options *o, const char *const *extra,
                     size_t nextra);

/* The first of those options on the command line, or NULL (for
 * commands refusing them where no landscape loss runs). */
const char *cli_moment_given(const cli_args *args);

#endif
