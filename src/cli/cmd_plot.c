/* `scoreloss plot KIND IN.csv.. -o OUT.png`: a PNG from a CSV file that
 * another subcommand wrote, through gnuplot (plot.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "cli/plot.h"

static const cli_option options[] = {
    {"output", 'o', CLI_VALUE | CLI_REQUIRED | CLI_OUTPUT, "OUT.png", NULL, "the picture (PNG)"},
    {"title", 0, CLI_VALUE, "TEXT", NULL, "the picture's title (default: the input's name)"},
    {"where", 0, CLI_VALUE, "'KEY=V[,V..] ..'", NULL,
     "sweep: only the runs whose columns hold one of the values, for every condition (e.g. "
     "'dist=logistic refit=0,5')"},
};

static int run(int argc, char **argv);

const cli_command cli_cmd_plot = {
    "plot",
    "draw a PNG from a landscape, trace, census or sweep CSV (needs gnuplot)",
    "KIND IN.csv [IN2.csv ..] -o OUT.png [--title TEXT]",
    "KIND is one of:\n"
    "  landscape  heat map with contours of `scoreloss landscape` output (u,v,loss):\n"
    "             the grid's local minima circled, the marked points (truth, centre,\n"
    "             second point) crossed\n"
    "  trace      error against step from `scoreloss recover --trace` files, one line\n"
    "             per file (its best restart; the loss when there is no error column)\n"
    "  census     bars of `scoreloss census` output: each cluster's fraction of the\n"
    "             restarts, global minimum green, spurious red\n"
    "  sweep      error against n (log-log) from a sweep CSV (columns dist,d,k,n,loss,\n"
    "             score,seed,err_max, read by name): mean over seeds with standard-error\n"
    "             bars, one line per setting of the run parameters (n and seed aside),\n"
    "             labelled loss/score and the parameters that tell it from the other\n"
    "             lines of its loss and score; --where picks runs (at most 12 lines)\n"
    "KIND and the inputs come before the options. gnuplot runs as a child process\n"
    "($SL_GNUPLOT, else gnuplot on PATH; pngcairo, else png) on scripts/plot/KIND.gp,\n"
    "found in $SL_PLOT_DIR, $SL_SOURCE_ROOT/scripts/plot, or ../scripts/plot and\n"
    "../share/scoreloss/plot beside the executable. Without gnuplot the command fails\n"
    "with status 1 (the --png options of landscape and census only warn).",
    "scoreloss plot landscape LAND.csv -o LAND.png",
    options,
    sizeof options / sizeof options[0],
    run,
};

static int run(int argc, char **argv) {
    /* The leading words are KIND and the inputs; options follow. */
    int npos = 0;
    while (1 + npos < argc && argv[1 + npos][0] != '-') ++npos;
    char **rest = malloc((size_t)(argc - npos + 1) * sizeof *rest);
    if (!rest) {
        fprintf(stderr, "scoreloss plot: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    rest[0] = argv[0];
    for (int i = 1 + npos; i < argc; ++i) rest[i - npos] = argv[i];
    rest[argc - npos] = NULL;
    cli_args args;
    int status = cli_parse(&cli_cmd_plot, argc - npos, rest, &args);
    free(rest);
    if (status != CLI_RUN) return status;
    if (npos < 1)
        return cli_error(&args, CLI_EXIT_USAGE,
                         "missing KIND (landscape, trace, census or sweep) before the options");
    const char *kind = argv[1];
    if (!plot_kind_known(kind))
        return cli_error(&args, CLI_EXIT_USAGE,
                         "unknown KIND '%s' (expected landscape, trace, census or sweep)", kind);
    if (npos < 2) return cli_error(&args, CLI_EXIT_USAGE, "missing the input CSV after %s", kind);
    if (npos > 2 && strcmp(kind, "trace") != 0)
        return cli_error(&args, CLI_EXIT_USAGE, "%s takes one input CSV, got %d", kind, npos - 1);
    const char *out = cli_value(&args, "output");
    if (strcmp(out, "-") == 0) return cli_option_error(&args, "output", "cannot be stdout");
    const char *title = cli_value(&args, "title");
    const char *where = cli_value(&args, "where");
    if (where && strcmp(kind, "sweep") != 0)
        return cli_option_error(&args, "where", "applies to sweep pictures only");
    status =
        plot_render(&args, kind, (size_t)(npos - 1), (const char *const *)argv + 2, out,
                    title                         ? title
                    : strcmp(kind, "trace") == 0  ? "error against step"
                    : strcmp(kind, "sweep") == 0  ? "error against n"
                    : strcmp(kind, "census") == 0 ? "census: fraction of restarts per end point"
                                                  : argv[2],
                    where, 0);
    return status == PLOT_NO_GNUPLOT ? CLI_EXIT_FAILURE : status;
}
