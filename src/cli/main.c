/* The `scoreloss` command: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli/cli_util.h"

#ifndef SL_VERSION
#define SL_VERSION "unknown"
#endif

static const cli_command *const commands[] = {&cli_cmd_sample,    &cli_cmd_plant,  &cli_cmd_score,
                                              &cli_cmd_recover,   &cli_cmd_demo,   &cli_cmd_sweep,
                                              &cli_cmd_landscape, &cli_cmd_census, &cli_cmd_plot};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(FILE *f) {
    fprintf(f, "usage: scoreloss SUBCOMMAND [options]\n\n"
               "Planted one-hidden-layer networks on non-Gaussian inputs, and their score "
               "functions.\n\nsubcommands:\n");
    for (size_t i = 0; i < NCOMMANDS; ++i)
        fprintf(f, "  %-9s  %s\n", commands[i]->name, commands[i]->summary);
    fprintf(f, "\n'scoreloss SUBCOMMAND --help' describes the options of one subcommand;\n"
               "'scoreloss --version' prints the version.\n");
}

/* "sample, plant, score or demo", from the table. */
static void command_list(char *buf, size_t len) {
    buf[0] = '\0';
    for (size_t i = 0; i < NCOMMANDS; ++i) {
        const char *sep = i == 0 ? "" : i + 1 == NCOMMANDS ? " or " : ", ";
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", sep, commands[i]->name);
    }
}

static const cli_command *find_command(const char *name) {
    for (size_t i = 0; i < NCOMMANDS; ++i)
        if (strcmp(commands[i]->name, name) == 0) return commands[i];
    return NULL;
}

int main(int argc, char **argv) {
    char list[256];
    command_list(list, sizeof list);
    if (argc < 2) {
        fprintf(stderr, "scoreloss: missing subcommand (%s; see scoreloss --help)\n", list);
        return CLI_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        print_usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(sub, "--version") == 0) {
        printf("scoreloss %s\n", SL_VERSION);
        return CLI_EXIT_OK;
    }
    /* `scoreloss help SUB` is `scoreloss SUB --help`. */
    if (strcmp(sub, "help") == 0 && argc <= 3) {
        if (argc == 2) {
            print_usage(stdout);
            return CLI_EXIT_OK;
        }
        sub = argv[2];
        const cli_command *cmd = find_command(sub);
        if (cmd) {
            cli_print_help(cmd);
            return CLI_EXIT_OK;
        }
    }
    const cli_command *cmd = find_command(sub);
    if (!cmd) {
        /* Echo at most a short, printable excerpt. */
        char shown[64];
        size_t n = 0;
        for (const char *p = sub; *p && n + 1 < sizeof shown; ++p)
            shown[n++] = (unsigned char)*p < 0x20 ? '?' : *p;
        shown[n] = '\0';
        fprintf(stderr, "scoreloss: unknown subcommand '%s' (expected %s; see scoreloss --help)\n",
                shown, list);
        return CLI_EXIT_USAGE;
    }
    return cmd->run(argc - 1, argv + 1);
}
