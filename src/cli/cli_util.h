/* Shared machinery of the `scoreloss` subcommands: option tables and their
 * parser, number parsing with ranges, CSV input and output, error messages and
 * progress lines.
 *
 * Exit statuses: 0 success, 1 a failure while running (files, data,
 * numerics), 2 a wrong command line (unknown or repeated options, missing
 * values, malformed numbers, bad specifications). Every message is one line
 * on stderr of the form "scoreloss SUB: ...". */
#ifndef SL_CLI_UTIL_H
#define SL_CLI_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "scoreloss/status.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2
/* Returned by cli_parse when the command should go on and run. */
#define CLI_RUN (-1)

/* A macro's value as a string literal (a default named in a help text). */
#define CLI_TEXT_(x) #x
#define CLI_TEXT(x) CLI_TEXT_(x)

/* Option flags. */
enum {
    CLI_VALUE = 1u << 0,    /* takes a value (otherwise a flag) */
    CLI_REQUIRED = 1u << 1, /* must be given */
    CLI_OUTPUT = 1u << 2    /* names a file written: left out of the recorded parameters */
};

typedef struct cli_option {
    const char *name;          /* long name without the dashes */
    char short_name;           /* e.g. 'o' for -o, or 0 */
    unsigned flags;            /* CLI_VALUE, CLI_REQUIRED, CLI_OUTPUT */
    const char *metavar;       /* the value's placeholder in the help ("N", "SPEC") */
    const char *default_value; /* used when the option is absent, or NULL */
    const char *help;          /* one line */
} cli_option;

typedef struct cli_command {
    const char *name;        /* "sample" */
    const char *summary;     /* one line for `scoreloss --help` */
    const char *usage;       /* the part after "scoreloss NAME " */
    const char *description; /* a few lines of explanation, or NULL */
    const char *example;     /* one complete command line */
    const cli_option *options;
    size_t noptions;
    /* Runs the command on argv (argv[0] is the subcommand's name); returns
     * the exit status. */
    int (*run)(int argc, char **argv);
} cli_command;

#define CLI_MAX_OPTIONS 48

/* The parsed command line: one slot per option of the table. */
typedef struct cli_args {
    const cli_command *cmd;
    const char *value[CLI_MAX_OPTIONS]; /* the value given, or NULL */
    int given[CLI_MAX_OPTIONS];
} cli_args;

/* The subcommands (cmd_*.c), for main.c's dispatch table. */
extern const cli_command cli_cmd_sample;
extern const cli_command cli_cmd_plant;
extern const cli_command cli_cmd_score;
extern const cli_command cli_cmd_recover;
extern const cli_command cli_cmd_demo;
extern const cli_command cli_cmd_sweep;
extern const cli_command cli_cmd_landscape;
extern const cli_command cli_cmd_census;
extern const cli_command cli_cmd_plot;

/* Parses argv[1..argc) against cmd's option table. Accepts --name VALUE,
 * --name=VALUE and -X VALUE for options with a short name. Prints the help
 * (--help, -h) or the version (--version) and returns 0, prints a one-line
 * message and returns 2 on an error, and returns CLI_RUN otherwise. */
int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *args);

/* Prints the help of cmd to stdout. */
void cli_print_help(const cli_command *cmd);

/* The value of an option: as given, else its default, else NULL. */
const char *cli_value(const cli_args *args, const char *name);
/* 1 if the option was on the command line. */
int cli_given(const cli_args *args, const char *name);

/* Numbers from option values. Each returns 0 and sets *out, leaves *out as it
 * is when the option has no value, or prints
 *   scoreloss SUB: option --NAME: expected ..., got 'TEXT'
 * and returns 2. Integers accept plain digits and exact forms like 1e6. */
int cli_size(const cli_args *args, const char *name, size_t min, size_t max, size_t *out);
int cli_seed(const cli_args *args, const char *name, uint64_t *out);
/* A finite number in [lo, hi]; expected describes the range in the message
 * ("a number >= 0"). */
int cli_double(const cli_args *args, const char *name, double lo, double hi, const char *expected,
               double *out);

/* Option name: "auto" leaves *out as it is (a library's automatic value),
 * else an integer from 0 to hi into *out; 2 and the message on a bad value. */
int cli_auto_or_count(const cli_args *args, const char *name, size_t hi, int *out);

/* Messages. Each prints one line and returns the exit status to use. */
int cli_error(const cli_args *args, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* "scoreloss SUB: option --NAME: ..." with status 2. */
int cli_option_error(const cli_args *args, const char *name, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The library's message for st: "scoreloss SUB: <sl_last_error()>". */
int cli_lib_error(const cli_args *args, sl_status st);
/* The same, about the value of one option: "scoreloss SUB: option --NAME: <message>". */
int cli_option_lib_error(const cli_args *args, const char *name, sl_status st);
/* Exit status for a library status: 2 for SL_EINVAL (an invalid argument,
 * option or specification), 1 for the others. */
int cli_exit_status(sl_status st);

/* Reads the columns x1..xd of a CSV file: *rows x *d values in *X (free with
 * free()) and, if comment is not NULL, the file's comment lines in *comment
 * (NULL if none; free with free()). Prints the message and returns the exit
 * status on failure, 0 on success. */
int cli_read_x(const cli_args *args, const char *path, size_t *rows, size_t *d, double **X,
               char **comment);

/* Reads plant's data file: the columns x1..xd into *X (*n x *d) and y into
 * *y (free both with free()). Prints the message and returns the exit
 * status on failure, 0 on success. */
int cli_read_xy(const cli_args *args, const char *path, size_t *n, size_t *d, double **X,
                double **y);

/* Fails early, before a long run, when path cannot be written: a writer's
 * temporary file is created beside it and dropped at once. Prints the
 * message and returns the exit status on failure, 0 on success. */
int cli_check_writable(const cli_args *args, const char *path);

/* Text built piece by piece (summaries, CSV rows): printf-style appends to a
 * growing buffer; on allocation failure `failed` is set and later appends do
 * nothing. Start from {0}; free s with free(). */
typedef struct cli_text {
    char *s;
    size_t len, cap;
    int failed;
} cli_text;

void cli_text_put(cli_text *t, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Seconds on a monotonic clock, for timings. */
double cli_now(void);

/* rows x cols doubles, or NULL after printing an out-of-memory message
 * (also when the size overflows). */
double *cli_alloc_doubles(const cli_args *args, size_t rows, size_t cols);

/* The command as run, for the comment line of outputs:
 * "scoreloss SUB --opt VALUE ..." with every option that has a value (given
 * or default) in table order, output paths left out. Values that are not
 * plain words are single-quoted. NULL when out of memory. If extra is not
 * NULL, its lines follow on lines of their own, each behind `extra_prefix`. */
char *cli_comment(const cli_args *args, const char *extra_prefix, const char *extra);

/* Writes a CSV file with sl_csv_write; prints the message on failure.
 * Returns the exit status (0 on success). */
int cli_write_csv(const cli_args *args, const char *path, const char *comment, size_t rows,
                  size_t cols, const char *const *names, const double *data, size_t ld);

/* A percentage on stderr for long runs: shown only after about a second, and
 * only when stderr is a terminal (updated in place with \r) or when forced
 * (--progress; then whole lines at most every 10%, so logs stay readable). */
typedef struct cli_progress {
    const char *label; /* "scoreloss SUB" */
    int enabled, tty, shown, last_percent;
    double start;
} cli_progress;

void cli_progress_start(cli_progress *p, const cli_args *args, int forced);
void cli_progress_update(cli_progress *p, size_t done, size_t total);
/* The same from a fraction in [0, 1] (a library's progress callback), shown
 * as a percentage alone. */
void cli_progress_fraction(cli_progress *p, double fraction);
/* Ends the progress line if one was shown; call before any later message. */
void cli_progress_finish(cli_progress *p);

/* The distribution specifications, for help texts. */
#define CLI_DIST_SPECS                                                                             \
    "gauss, gauss:FILE.csv, gmm2, gmm:FILE.csv, agmm, laplace, student[:NU], logistic, "           \
    "plugin:PATH.so[:ARGS]"

#endif
