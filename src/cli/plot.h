/* PNG pictures through gnuplot, for `scoreloss plot` and the --png options.
 *
 * The CSV files are read here (columns by header name), the data a picture
 * needs is written to whitespace-separated files in a temporary directory,
 * and gnuplot runs as a child process on scripts/plot/KIND.gp with the file
 * names passed as variables. The PNG goes to a temporary name beside the
 * target and is renamed into place when gnuplot succeeded.
 *
 * The scripts are looked up in, in order: $SL_PLOT_DIR; $SL_SOURCE_ROOT/scripts/plot;
 * DIR/../scripts/plot and DIR/../share/scoreloss/plot where DIR holds the
 * running executable (a build directory inside the source tree, or an
 * installed bin/). gnuplot is $SL_GNUPLOT if set, else `gnuplot` on PATH. */
#ifndef SL_CLI_PLOT_H
#define SL_CLI_PLOT_H

#include <stddef.h>

#include "cli/cli_util.h"

/* Returned by plot_render when there is no gnuplot (a message was printed). */
#define PLOT_NO_GNUPLOT (-1)

/* Renders the picture KIND ("landscape", "trace", "census", "sweep") from
 * the ninputs CSV files (trace takes several, the others one) into png.
 * Returns 0 on success, PLOT_NO_GNUPLOT when gnuplot is absent (after a
 * one-line message "scoreloss SUB: ..."; warn_only chooses between
 * "warning: ... wrote the CSV only" and an error), or an exit status after
 * a one-line message. title may be NULL. where (sweep only; NULL: every
 * run) keeps the runs whose columns match: space-separated KEY=V[,V..]
 * conditions, as `scoreloss plot --where` takes them. */
int plot_render(const cli_args *args, const char *kind, size_t ninputs, const char *const *inputs,
                const char *png, const char *title, const char *where, int warn_only);

/* Checks, before any work, that png can be written (a temporary file is
 * created beside it and removed); prints the message and returns the exit
 * status on failure, 0 otherwise. */
int plot_check_target(const cli_args *args, const char *png);

/* 1 when KIND names a picture. */
int plot_kind_known(const char *kind);

#endif
