/* Option tables, number parsing, CSV helpers, messages and progress lines
 * shared by the subcommands (see cli_util.h). A small table parser instead
 * of getopt_long: it keeps no state outside the caller's cli_args, reports
 * repeated options, and its messages name the subcommand. */
#include "cli/cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "scoreloss/csv.h"
#include "scoreloss/memlimit.h"

#ifndef SL_VERSION
#define SL_VERSION "unknown"
#endif

/* ---- messages -------------------------------------------------------------- */

/* Text from the command line made safe to echo in a one-line message:
 * control characters become '?', long text is cut. */
static const char *shown(const char *text, char *buf, size_t len) {
    size_t n = 0;
    for (const char *p = text; *p && n + 1 < len; ++p)
        buf[n++] = (unsigned char)*p < 0x20 ? '?' : *p;
    buf[n] = '\0';
    if (text[n] && len > 4) memcpy(buf + len - 4, "...", 4);
    return buf;
}

/* Prints "scoreloss CMD: [option --OPT: ]MESSAGE" as one line and returns
 * status. */
static int verror_line(const char *cmd, const char *opt, int status, const char *fmt, va_list ap) {
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *p = msg; *p; ++p)
        if (*p == '\n' || *p == '\r') *p = ' ';
    if (opt)
        fprintf(stderr, "scoreloss %s: option --%s: %s\n", cmd, opt, msg);
    else
        fprintf(stderr, "scoreloss %s: %s\n", cmd, msg);
    return status;
}

static int error_line(const char *cmd, const char *opt, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_line(cmd, opt, status, fmt, ap);
    va_end(ap);
    return status;
}

int cli_error(const cli_args *args, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_line(args->cmd->name, NULL, status, fmt, ap);
    va_end(ap);
    return status;
}

int cli_option_error(const cli_args *args, const char *name, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_line(args->cmd->name, name, CLI_EXIT_USAGE, fmt, ap);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_exit_status(sl_status st) {
    return st == SL_EINVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAILURE;
}

/* The library's message, or the status name if it left none. */
static const char *library_message(sl_status st) {
    const char *msg = sl_last_error();
    return *msg ? msg : sl_status_name(st);
}

int cli_lib_error(const cli_args *args, sl_status st) {
    return error_line(args->cmd->name, NULL, cli_exit_status(st), "%s", library_message(st));
}

int cli_option_lib_error(const cli_args *args, const char *name, sl_status st) {
    return error_line(args->cmd->name, name, cli_exit_status(st), "%s", library_message(st));
}

/* ---- the option table ------------------------------------------------------- */

static long find_long(const cli_command *cmd, const char *name, size_t len) {
    for (size_t i = 0; i < cmd->noptions; ++i)
        if (strlen(cmd->options[i].name) == len && strncmp(cmd->options[i].name, name, len) == 0)
            return (long)i;
    return -1;
}

static long find_short(const cli_command *cmd, char c) {
    for (size_t i = 0; i < cmd->noptions; ++i)
        if (c && cmd->options[i].short_name == c) return (long)i;
    return -1;
}

static long find_option(const cli_args *args, const char *name) {
    long i = find_long(args->cmd, name, strlen(name));
    if (i < 0) {
        /* A name missing from the table is a bug in the subcommand. */
        fprintf(stderr, "scoreloss %s: internal error: no option --%s\n", args->cmd->name, name);
        abort();
    }
    return i;
}

/* Whether a word after an option that takes a value is another option rather
 * than the value: "--word" or a known short option such as "-o". Values such
 * as "-1" or "-" are left to be values. */
static int looks_like_option(const cli_command *cmd, const char *s) {
    if (s[0] != '-') return 0;
    if (s[1] == '-' && s[2]) return 1;
    return s[1] && !s[2] && (s[1] == 'h' || find_short(cmd, s[1]) >= 0);
}

static void option_label(const cli_option *o, char *buf, size_t len) {
    const char *mv = (o->flags & CLI_VALUE) ? (o->metavar ? o->metavar : "VALUE") : NULL;
    if (o->short_name)
        snprintf(buf, len, "-%c, --%s%s%s", o->short_name, o->name, mv ? " " : "", mv ? mv : "");
    else
        snprintf(buf, len, "    --%s%s%s", o->name, mv ? " " : "", mv ? mv : "");
}

#define HELP_COLUMNS 80

/* Prints text from column `indent` (where the cursor is), breaking lines at
 * blanks before `columns`; continuation lines are indented the same. */
static void print_wrapped(const char *text, size_t indent, size_t columns) {
    size_t room = columns > indent + 20 ? columns - indent : 20;
    const char *s = text;
    while (*s) {
        size_t len = strlen(s);
        if (len <= room) {
            printf("%s", s);
            break;
        }
        size_t cut = room;
        while (cut > 0 && s[cut] != ' ') --cut;
        if (cut == 0) cut = strcspn(s, " ");
        printf("%.*s\n%*s", (int)cut, s, (int)indent, "");
        s += cut;
        while (*s == ' ') ++s;
    }
    printf("\n");
}

void cli_print_help(const cli_command *cmd) {
    printf("usage: scoreloss %s %s\n\n", cmd->name, cmd->usage);
    printf("%s\n", cmd->summary);
    if (cmd->description) printf("\n%s\n", cmd->description);
    printf("\noptions:\n");
    char label[128];
    size_t width = strlen("    --version");
    for (size_t i = 0; i < cmd->noptions; ++i) {
        option_label(&cmd->options[i], label, sizeof label);
        if (strlen(label) > width) width = strlen(label);
    }
    for (size_t i = 0; i < cmd->noptions; ++i) {
        const cli_option *o = &cmd->options[i];
        char text[512];
        if (o->flags & CLI_REQUIRED)
            snprintf(text, sizeof text, "%s (required)", o->help);
        else if (o->default_value)
            snprintf(text, sizeof text, "%s (default %s)", o->help, o->default_value);
        else
            snprintf(text, sizeof text, "%s", o->help);
        option_label(o, label, sizeof label);
        printf("  %-*s  ", (int)width, label);
        print_wrapped(text, width + 4, HELP_COLUMNS);
    }
    printf("  %-*s  ", (int)width, "    --mem-limit SIZE");
    print_wrapped("refuse a job needing more memory than SIZE (2G, 512M, none; default: the "
                  "memory available; also the environment variable " SL_MEM_LIMIT_ENV ")",
                  width + 4, HELP_COLUMNS);
    printf("  %-*s  %s\n", (int)width, "-h, --help", "show this help and exit");
    printf("  %-*s  %s\n", (int)width, "    --version", "show the version and exit");
    printf("\nexample:\n  %s\n", cmd->example);
}

/* --mem-limit SIZE, which every subcommand takes: the library reads the limit
 * from the environment (memlimit.h), so the option sets it there for this
 * process. Returns 0 or the exit status of a message. */
static int mem_limit_option(const cli_args *args, const char *value, int *seen) {
    if (*seen) return cli_option_error(args, "mem-limit", "given more than once");
    *seen = 1;
    if (!value)
        return cli_option_error(args, "mem-limit", "missing value (expected SIZE, e.g. 2G)");
    size_t bytes;
    if (sl_mem_parse(value, &bytes) != SL_OK)
        return cli_option_error(args, "mem-limit", "%s", sl_last_error());
    if (setenv(SL_MEM_LIMIT_ENV, value, 1) != 0)
        return cli_error(args, CLI_EXIT_FAILURE, "cannot set %s", SL_MEM_LIMIT_ENV);
    return 0;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, cli_args *args) {
    memset(args, 0, sizeof *args);
    args->cmd = cmd;
    if (cmd->noptions > CLI_MAX_OPTIONS) {
        fprintf(stderr, "scoreloss %s: internal error: too many options\n", cmd->name);
        abort();
    }
    char buf[128];
    int mem_limit_seen = 0;
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        if (strncmp(arg, "--mem-limit", 11) == 0 && (arg[11] == '\0' || arg[11] == '=') &&
            find_long(cmd, "mem-limit", 9) < 0) {
            const char *value = NULL;
            if (arg[11] == '=')
                value = arg + 12;
            else if (i + 1 < argc && !looks_like_option(cmd, argv[i + 1]))
                value = argv[++i];
            int status = mem_limit_option(args, value && *value ? value : NULL, &mem_limit_seen);
            if (status) return status;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            cli_print_help(cmd);
            return CLI_EXIT_OK;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("scoreloss %s\n", SL_VERSION);
            return CLI_EXIT_OK;
        }
        long idx = -1;
        const char *inline_value = NULL;
        if (arg[0] == '-' && arg[1] == '-' && arg[2]) {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            idx = find_long(cmd, name, len);
            if (idx < 0) {
                char nm[128];
                snprintf(nm, sizeof nm, "%.*s", (int)(len < 60 ? len : 60), name);
                return cli_error(args, CLI_EXIT_USAGE,
                                 "unknown option '--%s' (see scoreloss %s --help)",
                                 shown(nm, buf, sizeof buf), cmd->name);
            }
            if (eq) inline_value = eq + 1;
        } else if (arg[0] == '-' && arg[1] && arg[1] != '-') {
            idx = find_short(cmd, arg[1]);
            if (idx < 0 || (arg[2] && !(cmd->options[idx].flags & CLI_VALUE)))
                return cli_error(args, CLI_EXIT_USAGE,
                                 "unknown option '%s' (see scoreloss %s --help)",
                                 shown(arg, buf, sizeof buf), cmd->name);
            if (arg[2]) inline_value = arg + 2;
        } else {
            return cli_error(args, CLI_EXIT_USAGE,
                             "unexpected argument '%s' (options start with --; see scoreloss %s "
                             "--help)",
                             shown(arg, buf, sizeof buf), cmd->name);
        }
        const cli_option *o = &cmd->options[idx];
        if (args->given[idx]) return cli_option_error(args, o->name, "given more than once");
        const char *value = NULL;
        if (o->flags & CLI_VALUE) {
            if (inline_value)
                value = inline_value;
            else if (i + 1 < argc && !looks_like_option(cmd, argv[i + 1]))
                value = argv[++i];
            else
                return cli_option_error(args, o->name, "missing value (expected %s)",
                                        o->metavar ? o->metavar : "a value");
            if (!*value) return cli_option_error(args, o->name, "empty value");
        } else if (inline_value) {
            return cli_option_error(args, o->name, "takes no value");
        }
        args->given[idx] = 1;
        args->value[idx] = value;
    }
    /* A malformed limit in the environment is a usage error before any work. */
    size_t limit;
    if (sl_mem_limit(&limit, NULL) != SL_OK)
        return cli_error(args, CLI_EXIT_USAGE, "%s", sl_last_error());
    for (size_t i = 0; i < cmd->noptions; ++i)
        if ((cmd->options[i].flags & CLI_REQUIRED) && !args->given[i])
            return cli_error(args, CLI_EXIT_USAGE,
                             "missing option --%s%s%s (see scoreloss %s --help)",
                             cmd->options[i].name, cmd->options[i].metavar ? " " : "",
                             cmd->options[i].metavar ? cmd->options[i].metavar : "", cmd->name);
    return CLI_RUN;
}

const char *cli_value(const cli_args *args, const char *name) {
    long i = find_option(args, name);
    return args->given[i] ? args->value[i] : args->cmd->options[i].default_value;
}

int cli_given(const cli_args *args, const char *name) {
    return args->given[find_option(args, name)];
}

/* ---- numbers ----------------------------------------------------------------- */

/* A non-negative integer: plain digits, or an exact integer in exponent or
 * decimal notation below 2^53 (1e6, 2.5e3). */
static int parse_uint(const char *s, uint64_t *out) {
    if (!(s[0] >= '0' && s[0] <= '9')) return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end == '\0') {
        if (errno == ERANGE) return 0;
        *out = (uint64_t)v;
        return 1;
    }
    if (*end != 'e' && *end != 'E' && *end != '.') return 0;
    errno = 0;
    double dv = strtod(s, &end);
    if (*end != '\0' || errno || !isfinite(dv) || dv != floor(dv) || dv > 9007199254740992.0)
        return 0;
    *out = (uint64_t)dv;
    return 1;
}

int cli_size(const cli_args *args, const char *name, size_t min, size_t max, size_t *out) {
    const char *text = cli_value(args, name);
    if (!text) return 0;
    uint64_t v;
    if (parse_uint(text, &v) && v >= min && v <= max && v <= SIZE_MAX) {
        *out = (size_t)v;
        return 0;
    }
    char expected[96], buf[96];
    if (min == 1 && max == SIZE_MAX)
        snprintf(expected, sizeof expected, "a positive integer");
    else if (min == 0 && max == SIZE_MAX)
        snprintf(expected, sizeof expected, "a non-negative integer");
    else if (max == SIZE_MAX)
        snprintf(expected, sizeof expected, "an integer >= %zu", min);
    else
        snprintf(expected, sizeof expected, "an integer from %zu to %zu", min, max);
    return cli_option_error(args, name, "expected %s, got '%s'", expected,
                            shown(text, buf, sizeof buf));
}

int cli_auto_or_count(const cli_args *args, const char *name, size_t hi, int *out) {
    if (strcmp(cli_value(args, name), "auto") == 0) return 0;
    size_t v = 0;
    const int status = cli_size(args, name, 0, hi, &v);
    if (!status) *out = (int)v;
    return status;
}

int cli_seed(const cli_args *args, const char *name, uint64_t *out) {
    const char *text = cli_value(args, name);
    if (!text) return 0;
    uint64_t v;
    if (parse_uint(text, &v)) {
        *out = v;
        return 0;
    }
    char buf[96];
    return cli_option_error(args, name, "expected a non-negative integer below 2^64, got '%s'",
                            shown(text, buf, sizeof buf));
}

int cli_double(const cli_args *args, const char *name, double lo, double hi, const char *expected,
               double *out) {
    const char *text = cli_value(args, name);
    if (!text) return 0;
    char *end;
    errno = 0;
    /* strtod alone would accept leading blanks, hexadecimal, "inf" and "nan". */
    int ok = !(text[0] == ' ' || text[0] == '\t') && !strpbrk(text, "xX");
    double v = ok ? strtod(text, &end) : 0.0;
    if (ok && end != text && *end == '\0' && errno != ERANGE && isfinite(v) && v >= lo && v <= hi) {
        *out = v;
        return 0;
    }
    char buf[96];
    return cli_option_error(args, name, "expected %s, got '%s'", expected,
                            shown(text, buf, sizeof buf));
}

/* ---- files ------------------------------------------------------------------- */

double *cli_alloc_doubles(const cli_args *args, size_t rows, size_t cols) {
    if (cols != 0 && rows > SIZE_MAX / sizeof(double) / cols) {
        cli_error(args, CLI_EXIT_FAILURE, "%zu x %zu values do not fit in memory", rows, cols);
        return NULL;
    }
    size_t n = rows * cols;
    char what[96];
    snprintf(what, sizeof what, "an array of %zu x %zu values", rows, cols);
    if (sl_mem_check(sl_mem_doubles(n), what) != SL_OK) {
        cli_lib_error(args, SL_ENOMEM);
        return NULL;
    }
    double *p = malloc((n ? n : 1) * sizeof *p);
    if (!p)
        cli_error(args, CLI_EXIT_FAILURE, "out of memory for %zu x %zu values (%.3g GB)", rows,
                  cols, (double)n * sizeof(double) / 1e9);
    return p;
}

int cli_read_x(const cli_args *args, const char *path, size_t *rows, size_t *d, double **X,
               char **comment) {
    sl_table *t = NULL;
    *X = NULL;
    if (comment) *comment = NULL;
    sl_status st = sl_csv_read(path, &t);
    if (!st) st = sl_table_prefixed(t, "x", d, X);
    if (st) {
        sl_table_free(t);
        return cli_lib_error(args, st);
    }
    *rows = t->rows;
    if (comment && t->comment) {
        size_t n = strlen(t->comment) + 1;
        *comment = malloc(n);
        if (!*comment) {
            sl_table_free(t);
            free(*X);
            *X = NULL;
            return cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        }
        memcpy(*comment, t->comment, n);
    }
    sl_table_free(t);
    return 0;
}

int cli_read_xy(const cli_args *args, const char *path, size_t *n, size_t *d, double **X,
                double **y) {
    sl_table *t = NULL;
    *X = *y = NULL;
    sl_status st = sl_csv_read(path, &t);
    if (!st) st = sl_table_prefixed(t, "x", d, X);
    if (!st) {
        *n = t->rows;
        *y = malloc((t->rows ? t->rows : 1) * sizeof **y);
        if (!*y) st = sl_error(SL_ENOMEM, "%s: out of memory", path);
    }
    if (!st) {
        static const char *const yname[] = {"y"};
        st = sl_table_extract(t, 1, yname, *y);
    }
    sl_table_free(t);
    if (st) {
        free(*X);
        free(*y);
        *X = *y = NULL;
        return cli_lib_error(args, st);
    }
    return 0;
}

int cli_check_writable(const cli_args *args, const char *path) {
    static const char *const name[] = {"a"};
    sl_csv_writer *w = NULL;
    sl_status st = sl_csv_writer_open(path, NULL, 1, name, &w);
    if (st) return cli_lib_error(args, st);
    sl_csv_writer_abort(w);
    return 0;
}

int cli_write_csv(const cli_args *args, const char *path, const char *comment, size_t rows,
                  size_t cols, const char *const *names, const double *data, size_t ld) {
    sl_status st = sl_csv_write(path, comment, rows, cols, names, data, ld);
    return st ? cli_lib_error(args, st) : 0;
}

/* ---- the recorded command line ------------------------------------------------ */

typedef struct {
    char *s;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

/* A value as a shell word: plain words as they are, anything else in single
 * quotes; control characters become '?' so the comment stays one line. */
static void sb_word(strbuf *b, const char *s) {
    int plain = *s != '\0';
    for (const char *p = s; *p; ++p)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=,+-@%", *p))
            plain = 0;
    if (plain) {
        sb_str(b, s);
        return;
    }
    sb_str(b, "'");
    for (const char *p = s; *p; ++p) {
        if (*p == '\'')
            sb_str(b, "'\\''");
        else if ((unsigned char)*p < 0x20)
            sb_str(b, "?");
        else
            sb_put(b, p, 1);
    }
    sb_str(b, "'");
}

char *cli_comment(const cli_args *args, const char *extra_prefix, const char *extra) {
    strbuf b = {0};
    sb_str(&b, "scoreloss ");
    sb_str(&b, args->cmd->name);
    for (size_t i = 0; i < args->cmd->noptions; ++i) {
        const cli_option *o = &args->cmd->options[i];
        /* Flags (such as --progress) do not change the results. */
        if ((o->flags & CLI_OUTPUT) || !(o->flags & CLI_VALUE)) continue;
        const char *v = args->given[i] ? args->value[i] : o->default_value;
        if (!v) continue;
        sb_str(&b, " --");
        sb_str(&b, o->name);
        sb_str(&b, " ");
        sb_word(&b, v);
    }
    if (extra) {
        const char *s = extra;
        for (;;) {
            const char *nl = strchr(s, '\n');
            size_t n = nl ? (size_t)(nl - s) : strlen(s);
            sb_str(&b, "\n");
            if (extra_prefix) sb_str(&b, extra_prefix);
            sb_put(&b, s, n);
            if (!nl) break;
            s = nl + 1;
        }
    }
    if (b.failed || !b.s) {
        free(b.s);
        cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        return NULL;
    }
    return b.s;
}

/* ---- progress ------------------------------------------------------------------- */

void cli_text_put(cli_text *t, const char *fmt, ...) {
    if (t->failed) return;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (n >= 0 && cap < t->len + (size_t)n + 1) cap *= 2;
        char *p = n < 0 ? NULL : realloc(t->s, cap);
        if (!p) {
            t->failed = 1;
            va_end(ap2);
            return;
        }
        t->s = p;
        t->cap = cap;
    }
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap2);
    va_end(ap2);
    t->len += (size_t)n;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const cli_args *args, int forced) {
    memset(p, 0, sizeof *p);
    p->label = args->cmd->name;
    p->tty = isatty(STDERR_FILENO);
    p->enabled = p->tty || forced;
    p->last_percent = -1;
    p->start = cli_now();
}

/* Shows done of total; counts (when `counts`) follow the percentage in logs. */
static void progress_show(cli_progress *p, size_t done, size_t total, int counts) {
    if (!p->enabled || total == 0) return;
    double t = cli_now();
    if (t - p->start < 1.0) return;
    int percent = (int)((double)done * 100.0 / (double)total);
    if (p->tty) {
        if (percent == p->last_percent) return;
        fprintf(stderr, "\rscoreloss %s: %3d%%", p->label, percent);
    } else {
        /* Whole lines for logs, at most one per 10%. */
        if (p->shown && percent < p->last_percent + 10 && done < total) return;
        if (counts)
            fprintf(stderr, "scoreloss %s: %d%% (%zu of %zu)\n", p->label, percent, done, total);
        else
            fprintf(stderr, "scoreloss %s: %d%%\n", p->label, percent);
    }
    fflush(stderr);
    p->shown = 1;
    p->last_percent = percent;
}

void cli_progress_update(cli_progress *p, size_t done, size_t total) {
    progress_show(p, done, total, 1);
}

void cli_progress_fraction(cli_progress *p, double fraction) {
    const size_t steps = 1000;
    size_t done = fraction >= 1.0 ? steps : fraction > 0.0 ? (size_t)(fraction * steps) : 0;
    progress_show(p, done, steps, 0);
}

void cli_progress_finish(cli_progress *p) {
    if (!p->enabled || !p->shown) return;
    if (p->tty) fprintf(stderr, "\n");
    fflush(stderr);
    p->shown = 0;
}
