/* The sweep configuration parser and the plan of runs (sweep_config.h). A
 * hand-written line scanner: the format is small, and every error must name
 * its line and column. */
#include "cli/sweep_config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "scoreloss/recover.h"
#include "scoreloss/score.h"

/* ---- the parameters --------------------------------------------------------------- */

typedef enum {
    T_TEXT,      /* any text (distribution specifications, checked when runs start) */
    T_UINT,      /* an integer in [lo, hi]; ranges allowed */
    T_WORD_UINT, /* one of names, or an integer in [lo, hi]; ranges allowed */
    T_DOUBLE,    /* a finite number in its interval */
    T_NAME,      /* one of names */
    T_BANDWIDTH, /* as sl_bandwidth_parse reads it */
    T_WSPEC,     /* orthonormal, identity, random, random:COND */
    T_ASPEC      /* ones, positive, A1,..,Ak */
} value_type;

typedef struct {
    const char *key, *column;
    value_type type;
    const char *def;          /* default (canonical), or NULL when required */
    double lo, hi;            /* T_UINT bounds; T_DOUBLE interval */
    int lo_open;              /* T_DOUBLE: lo excluded */
    int hi_open;              /* T_DOUBLE: hi excluded */
    const char *const *names; /* T_NAME: the values; T_WORD_UINT: the words */
    const char *expected;     /* for messages */
} param_info;

static const char *const acts[] = {"relu",     "sigmoid",   "tanh",  "erf",
                                   "softplus", "quadratic", "cubic", NULL};
static const char *const losses[] = {"landscape", "signfree", "l2", NULL};
static const char *const scores[] = {"llsfe", "kde", "gauss", "hermite", "exact", NULL};
static const char *const routes[] = {"auto", "full", "projected", "quadratic", NULL};
static const char *const modes[] = {"auto", "tensor", "minibatch", NULL};
static const char *const constraints[] = {"auto", "sphere", "orthonormal", "none", NULL};
static const char *const s4s[] = {"kde", "cumulant", "quadratic", NULL};
static const char *const assumes[] = {"none", "independent", NULL};
static const char *const detrends[] = {"auto", "0", "1", "2", "3", "4", NULL};
static const char *const auto_word[] = {"auto", NULL};
static const char *const reference_words[] = {"auto", "all", NULL};
static const char *const thins[] = {"auto", "t", "gauss", "zero", NULL};
static const char *const shrink_mins[] = {"auto", "0",   "1",   "3",    "10",
                                          "30",   "100", "300", "1000", NULL};

#define SWEEP_REFIT_AUTO_TEXT CLI_TEXT(SL_REFIT_AUTO)
/* SL_RECOVER_SHRINK_MIN as the sweep records it (a test checks they agree). */
#define SWEEP_SHRINK_MIN_AUTO_TEXT "3"

#define BIG 9007199254740992.0 /* 2^53: integers above are not exact in a double */

static const param_info params[SWEEP_NPARAM] = {
    [SWEEP_DIST] = {"dist", "dist", T_TEXT, NULL, 0, 0, 0, 0, NULL, "a distribution specification"},
    [SWEEP_D] = {"d", "d", T_UINT, NULL, 1, BIG, 0, 0, NULL, "a positive integer"},
    [SWEEP_K] = {"k", "k", T_UINT, NULL, 1, BIG, 0, 0, NULL, "a positive integer"},
    [SWEEP_N] = {"n", "n", T_UINT, NULL, 1, BIG, 0, 0, NULL,
                 "a positive integer (such as 1000 or 1e4)"},
    [SWEEP_ACT] = {"act", "act", T_NAME, "relu", 0, 0, 0, 0, acts, "an activation"},
    [SWEEP_NOISE] = {"noise", "noise", T_DOUBLE, "0", 0, HUGE_VAL, 0, 1, NULL, "a number >= 0"},
    [SWEEP_W] = {"w", "w", T_WSPEC, "orthonormal", 0, 0, 0, 0, NULL,
                 "orthonormal, identity, random or random:COND (COND >= 1)"},
    [SWEEP_A] = {"a", "a", T_ASPEC, "ones", 0, 0, 0, 0, NULL,
                 "ones, positive or \"A1,..,Ak\" (quoted numbers)"},
    [SWEEP_LOSS] = {"loss", "loss", T_NAME, "landscape", 0, 0, 0, 0, losses, "a loss"},
    [SWEEP_SCORE] = {"score", "score", T_NAME, "llsfe", 0, 0, 0, 0, scores, "a score source"},
    [SWEEP_ROUTE] = {"route", "route", T_NAME, "auto", 0, 0, 0, 0, routes, "a route"},
    [SWEEP_S4] = {"s4", "s4", T_NAME, "kde", 0, 0, 0, 0, s4s, "an S_4 estimator"},
    [SWEEP_S4_REFERENCE] = {"s4-reference", "s4_reference", T_WORD_UINT, "auto", 1, BIG, 0, 0,
                            reference_words, "auto, all or a positive integer"},
    [SWEEP_U_ROWS] = {"u-rows", "u_rows", T_UINT, "20000", 0, BIG, 0, 0, NULL,
                      "a non-negative integer (0: all rows)"},
    [SWEEP_ASSUME] = {"assume", "assume", T_NAME, "none", 0, 0, 0, 0, assumes, "an assumption"},
    [SWEEP_DETREND] = {"detrend", "detrend", T_NAME, "auto", 0, 0, 0, 0, detrends,
                       "a detrend degree"},
    [SWEEP_REFIT] = {"refit", "refit", T_WORD_UINT, "auto", 0, SL_REFIT_MAX, 0, 0, auto_word,
                     "auto or an integer from 0 to " CLI_TEXT(SL_REFIT_MAX)},
    [SWEEP_S4_THIN] = {"s4-thin", "s4_thin", T_NAME, "auto", 0, 0, 0, 0, thins,
                       "auto, t, gauss or zero"},
    [SWEEP_SHRINK_MIN] = {"shrink-min", "shrink_min", T_NAME, "auto", 0, 0, 0, 0, shrink_mins,
                          "auto or a weight of llsfe's ladder"},
    [SWEEP_SWAP] = {"swap", "swap", T_UINT, "0", 0, SL_SWAP_MAX, 0, 0, NULL,
                    "an integer from 0 to " CLI_TEXT(SL_SWAP_MAX)},
    [SWEEP_MODE] = {"mode", "mode", T_NAME, "auto", 0, 0, 0, 0, modes, "a mode"},
    [SWEEP_BANDWIDTH] = {"bandwidth", "bandwidth", T_BANDWIDTH, "auto", 0, 0, 0, 0, NULL,
                         "auto, a number H > 0, knn:K or const:C"},
    [SWEEP_MU] = {"mu", "mu", T_DOUBLE, "0.5", -HUGE_VAL, HUGE_VAL, 1, 1, NULL, "a number"},
    [SWEEP_LAMBDA] = {"lambda", "lambda", T_DOUBLE, "0", 0, HUGE_VAL, 0, 1, NULL, "a number >= 0"},
    [SWEEP_CONSTRAINT] = {"constraint", "constraint", T_NAME, "auto", 0, 0, 0, 0, constraints,
                          "a constraint"},
    [SWEEP_LR] = {"lr", "lr", T_DOUBLE, "0.01", 0, HUGE_VAL, 1, 1, NULL, "a number > 0"},
    [SWEEP_BATCH] = {"batch", "batch", T_UINT, "256", 1, BIG, 0, 0, NULL, "a positive integer"},
    [SWEEP_EPOCHS] = {"epochs", "epochs", T_WORD_UINT, "auto", 1, 4294967294.0, 0, 0, auto_word,
                      "auto or a positive integer"},
    [SWEEP_RESTARTS] = {"restarts", "restarts", T_UINT, "4", 1, 100000, 0, 0, NULL,
                        "an integer from 1 to 100000"},
    [SWEEP_HOLDOUT] = {"holdout", "holdout", T_DOUBLE, "0.1", 0, 1, 0, 1, NULL,
                       "a number in [0, 1)"},
    [SWEEP_SEED] = {"seeds", "seed", T_UINT, "1", 0, BIG, 0, 0, NULL, "a non-negative integer"},
};

#define KEY_LIST                                                                                   \
    "dist, d, k, n, act, noise, w, a, loss, score, route, s4, s4-reference, u-rows, assume, "      \
    "detrend, refit, s4-thin, shrink-min, swap, mode, bandwidth, mu, lambda, constraint, lr, "     \
    "batch, epochs, restarts, holdout, seeds or output"

const char *sweep_param_name(int param) {
    return param >= 0 && param < SWEEP_NPARAM ? params[param].column : "?";
}

const char *sweep_param_key(int param) {
    return param >= 0 && param < SWEEP_NPARAM ? params[param].key : "?";
}

/* ---- the scanner ------------------------------------------------------------------- */

#define KEY_OUTPUT SWEEP_NPARAM /* the one key that is not a parameter */

typedef struct {
    const char *buf;
    size_t len;
    const char *name;
    char *err;
    size_t errlen;
    unsigned line;
    size_t line_start;
    sweep_config *cfg;
    size_t cap[SWEEP_NPARAM];
} parser;

/* Text from the file made safe to echo: control bytes become '?', long text
 * is cut. */
static const char *shown(const char *s, size_t n, char *out, size_t outlen) {
    size_t m = 0;
    for (size_t i = 0; i < n && m + 1 < outlen; ++i)
        out[m++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[m] = '\0';
    if (m < n && outlen > 4) memcpy(out + outlen - 4, "...", 4);
    return out;
}

static unsigned column_of(const parser *p, size_t pos) {
    return (unsigned)(pos - p->line_start + 1);
}

static int fail(parser *p, size_t pos, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(parser *p, size_t pos, const char *fmt, ...) {
    if (p->errlen == 0) return -1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(p->err, p->errlen, "%s:%u:%u: %s", p->name, p->line, column_of(p, pos), msg);
    return -1;
}

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

static size_t skip_blanks(const parser *p, size_t i, size_t end) {
    while (i < end && is_blank(p->buf[i])) ++i;
    return i;
}

static int is_key_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_key_char(char c) {
    return is_key_start(c) || (c >= '0' && c <= '9') || c == '-';
}

/* ---- values ---------------------------------------------------------------------- */

/* An integer: plain digits, or an exact integer in exponent or decimal form
 * (1e6, 2.5e3), as the command-line options read them. */
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
    if (*end != '\0' || errno || !isfinite(dv) || dv != floor(dv) || dv > BIG) return 0;
    *out = (uint64_t)dv;
    return 1;
}

/* A finite number in plain decimal or exponent form (no hexadecimal, inf or
 * nan, no blanks). */
static int parse_double(const char *s, double *out) {
    if (!*s || strpbrk(s, "xX \t") || !strpbrk(s, "0123456789")) return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

/* The shortest of 15, 16 or 17 significant digits that reads back exactly. */
static void format_double(double v, char *buf, size_t len) {
    for (int prec = 15; prec <= 17; ++prec) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static int in_interval(const param_info *pi, double v) {
    if (pi->lo_open ? !(v > pi->lo) : !(v >= pi->lo)) return 0;
    if (pi->hi_open ? !(v < pi->hi) : !(v <= pi->hi)) return 0;
    return 1;
}

static int push(parser *p, int param, const char *text, size_t pos) {
    sweep_list *l = &p->cfg->param[param];
    if (l->count >= SWEEP_MAX_LIST)
        return fail(p, pos, "key '%s' holds more than %u values", params[param].key,
                    SWEEP_MAX_LIST);
    if (l->count == p->cap[param]) {
        size_t cap = p->cap[param] ? 2 * p->cap[param] : 4;
        sweep_value *v = realloc(l->values, cap * sizeof *v);
        if (!v) return fail(p, pos, "out of memory");
        l->values = v;
        p->cap[param] = cap;
    }
    size_t n = strlen(text) + 1;
    char *copy = malloc(n);
    if (!copy) return fail(p, pos, "out of memory");
    memcpy(copy, text, n);
    l->values[l->count].text = copy;
    l->values[l->count].line = p->line;
    l->values[l->count].col = column_of(p, pos);
    ++l->count;
    return 0;
}

static int bad_value(parser *p, int param, const char *text, size_t pos) {
    char buf[64];
    const param_info *pi = &params[param];
    if (pi->type == T_NAME) {
        char list[160] = "";
        for (size_t i = 0; pi->names[i]; ++i) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s",
                     i == 0             ? ""
                     : pi->names[i + 1] ? ", "
                                        : " or ",
                     pi->names[i]);
        }
        return fail(p, pos, "key '%s': unknown %s '%s' (expected %s)", pi->key, pi->key,
                    shown(text, strlen(text), buf, sizeof buf), list);
    }
    return fail(p, pos, "key '%s': expected %s, got '%s'", pi->key, pi->expected,
                shown(text, strlen(text), buf, sizeof buf));
}

/* An integer of an integer key, in its bounds. */
static int integer_value(const parser *p, int param, const char *text, uint64_t *v) {
    (void)p;
    const param_info *pi = &params[param];
    return parse_uint(text, v) && (double)*v >= pi->lo && (double)*v <= pi->hi;
}

/* An integer key's value: one integer or a range A..B. */
static int add_integers(parser *p, int param, const char *text, size_t pos) {
    const char *dots = strstr(text, "..");
    char num[32];
    uint64_t a, b;
    if (!dots) {
        if (!integer_value(p, param, text, &a)) return bad_value(p, param, text, pos);
        snprintf(num, sizeof num, "%" PRIu64, a);
        return push(p, param, num, pos);
    }
    size_t alen = (size_t)(dots - text);
    char first[64];
    if (alen == 0 || alen >= sizeof first)
        return fail(p, pos, "key '%s': a range needs the form A..B", params[param].key);
    memcpy(first, text, alen);
    first[alen] = '\0';
    const char *second = dots + 2;
    /* Blanks around ".." are allowed: "1 .. 10". */
    while (alen > 0 && is_blank(first[alen - 1])) first[--alen] = '\0';
    size_t skip = 0;
    while (is_blank(second[skip])) ++skip;
    const size_t bpos = pos + (size_t)(second + skip - text);
    if (!integer_value(p, param, first, &a)) return bad_value(p, param, first, pos);
    if (!*(second + skip))
        return fail(p, bpos, "key '%s': a range needs the form A..B", params[param].key);
    if (!integer_value(p, param, second + skip, &b))
        return bad_value(p, param, second + skip, bpos);
    if (a > b)
        return fail(p, pos, "key '%s': the range %" PRIu64 "..%" PRIu64 " is empty",
                    params[param].key, a, b);
    if (b - a >= SWEEP_MAX_LIST)
        return fail(p, pos,
                    "key '%s': the range %" PRIu64 "..%" PRIu64 " holds more than %u values",
                    params[param].key, a, b, SWEEP_MAX_LIST);
    for (uint64_t v = a;; ++v) {
        snprintf(num, sizeof num, "%" PRIu64, v);
        if (push(p, param, num, pos)) return -1;
        if (v == b) break;
    }
    return 0;
}

static int add_value(parser *p, int param, const char *text, size_t pos) {
    const param_info *pi = &params[param];
    char num[64];
    double v;
    switch (pi->type) {
    case T_TEXT:
        return push(p, param, text, pos);
    case T_WORD_UINT:
        for (size_t i = 0; pi->names[i]; ++i)
            if (strcmp(text, pi->names[i]) == 0) return push(p, param, text, pos);
        return add_integers(p, param, text, pos);
    case T_UINT:
        return add_integers(p, param, text, pos);
    case T_DOUBLE:
        if (!parse_double(text, &v) || !in_interval(pi, v)) return bad_value(p, param, text, pos);
        format_double(v, num, sizeof num);
        return push(p, param, num, pos);
    case T_NAME:
        for (size_t i = 0; pi->names[i]; ++i)
            if (strcmp(text, pi->names[i]) == 0) return push(p, param, text, pos);
        return bad_value(p, param, text, pos);
    case T_BANDWIDTH: {
        sl_bandwidth bw;
        if (sl_bandwidth_parse(text, &bw)) return bad_value(p, param, text, pos);
        return push(p, param, text, pos);
    }
    case T_WSPEC:
        if (strcmp(text, "orthonormal") == 0 || strcmp(text, "identity") == 0 ||
            strcmp(text, "random") == 0)
            return push(p, param, text, pos);
        if (strncmp(text, "random:", 7) == 0 && parse_double(text + 7, &v) && v >= 1.0) {
            memcpy(num, "random:", 7);
            format_double(v, num + 7, sizeof num - 7);
            return push(p, param, num, pos);
        }
        return bad_value(p, param, text, pos);
    case T_ASPEC: {
        if (strcmp(text, "ones") == 0 || strcmp(text, "positive") == 0)
            return push(p, param, text, pos);
        /* Numbers separated by commas, written back canonically. */
        size_t n = strlen(text);
        char *canon = malloc(n * 2 + 64), *item = malloc(n + 1);
        if (!canon || !item) {
            free(canon);
            free(item);
            return fail(p, pos, "out of memory");
        }
        size_t used = 0;
        int ok = 1;
        for (const char *s = text; ok;) {
            size_t m = strcspn(s, ",");
            memcpy(item, s, m);
            item[m] = '\0';
            char *b = item;
            while (is_blank(*b)) ++b;
            size_t bl = strlen(b);
            while (bl > 0 && is_blank(b[bl - 1])) b[--bl] = '\0';
            ok = parse_double(b, &v);
            if (ok) {
                format_double(v, num, sizeof num);
                used +=
                    (size_t)snprintf(canon + used, n * 2 + 64 - used, "%s%s", used ? "," : "", num);
            }
            if (!s[m]) break;
            s += m + 1;
        }
        int status = ok ? push(p, param, canon, pos) : bad_value(p, param, text, pos);
        free(canon);
        free(item);
        return status;
    }
    }
    return bad_value(p, param, text, pos);
}

/* ---- lines --------------------------------------------------------------------------- */

static int find_key(const char *s, size_t n) {
    /* The results' column names (seed, u_rows, ...) are accepted as keys too. */
    for (int i = 0; i < SWEEP_NPARAM; ++i)
        if ((strlen(params[i].key) == n && strncmp(params[i].key, s, n) == 0) ||
            (strlen(params[i].column) == n && strncmp(params[i].column, s, n) == 0))
            return i;
    if (n == 6 && strncmp(s, "output", 6) == 0) return KEY_OUTPUT;
    return -1;
}

/* One value, [s, e) of the line, into the key's list (or the output). */
static int take_value(parser *p, int key, size_t s, size_t e) {
    size_t n = e - s;
    char *text = malloc(n + 1);
    if (!text) return fail(p, s, "out of memory");
    memcpy(text, p->buf + s, n);
    text[n] = '\0';
    int status = 0;
    if (key == KEY_OUTPUT) {
        if (p->cfg->output)
            status = fail(p, s, "key 'output' takes one file name, not a list");
        else
            p->cfg->output = text, text = NULL;
    } else {
        status = add_value(p, key, text, s);
    }
    free(text);
    return status;
}

static int parse_line(parser *p, size_t i, size_t end) {
    const char *b = p->buf;
    const void *nul = memchr(b + i, '\0', end - i);
    if (nul) return fail(p, (size_t)((const char *)nul - b), "NUL byte in the configuration");
    size_t j = skip_blanks(p, i, end);
    if (j == end || b[j] == '#') return 0;
    char buf[64];
    if (!is_key_start(b[j]))
        return fail(p, j, "expected a key such as n or seeds, got '%s'",
                    shown(b + j, 1, buf, sizeof buf));
    const size_t ks = j;
    while (j < end && is_key_char(b[j])) ++j;
    const size_t klen = j - ks;
    int key = find_key(b + ks, klen);
    if (key < 0)
        return fail(p, ks, "unknown key '%s' (expected %s)", shown(b + ks, klen, buf, sizeof buf),
                    KEY_LIST);
    const char *kname = key == KEY_OUTPUT ? "output" : params[key].key;
    j = skip_blanks(p, j, end);
    if (j == end || b[j] != '=') return fail(p, j, "expected '=' after key '%s'", kname);
    ++j;
    unsigned *kline = key == KEY_OUTPUT ? &p->cfg->output_line : &p->cfg->param[key].line;
    unsigned *kcol = key == KEY_OUTPUT ? &p->cfg->output_col : &p->cfg->param[key].col;
    if (*kline) return fail(p, ks, "key '%s' given twice (first on line %u)", kname, *kline);
    *kline = p->line;
    *kcol = column_of(p, ks);
    for (int first = 1;; first = 0) {
        j = skip_blanks(p, j, end);
        if (j == end || b[j] == '#' || b[j] == ',')
            return fail(p, j,
                        first ? "missing value after '%s ='" : "empty value in the list of '%s'",
                        kname);
        size_t vs, ve;
        if (b[j] == '"') {
            const char *q = memchr(b + j + 1, '"', end - j - 1);
            if (!q) return fail(p, j, "unterminated quote");
            vs = j + 1;
            ve = (size_t)(q - b);
            if (ve == vs) return fail(p, j, "empty value in the list of '%s'", kname);
            j = ve + 1;
            if (take_value(p, key, vs, ve)) return -1;
        } else {
            vs = j;
            while (j < end && b[j] != ',' && b[j] != '#') {
                if (b[j] == '"')
                    return fail(p, j, "quote inside a value (quote the whole value: \"...\")");
                ++j;
            }
            ve = j;
            while (ve > vs && is_blank(b[ve - 1])) --ve;
            if (take_value(p, key, vs, ve)) return -1;
        }
        j = skip_blanks(p, j, end);
        if (j == end || b[j] == '#') return 0;
        if (b[j] != ',') return fail(p, j, "expected ',' or the end of the line after a value");
        ++j;
    }
}

/* ---- after the lines ------------------------------------------------------------------- */

typedef struct {
    const char *text;
    size_t index;
} sorted_value;

static int compare_sorted(const void *a, const void *b) {
    const sorted_value *x = a, *y = b;
    int c = strcmp(x->text, y->text);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* A value listed twice (after canonical forms: 1e4 and 10000 are the same)
 * would repeat runs. */
static int check_repeats(parser *p, int param) {
    const sweep_list *l = &p->cfg->param[param];
    if (l->count < 2) return 0;
    sorted_value *s = malloc(l->count * sizeof *s);
    if (!s) return fail(p, 0, "out of memory");
    for (size_t i = 0; i < l->count; ++i) s[i] = (sorted_value){l->values[i].text, i};
    qsort(s, l->count, sizeof *s, compare_sorted);
    int status = 0;
    for (size_t i = 1; i < l->count; ++i)
        if (strcmp(s[i].text, s[i - 1].text) == 0) {
            const sweep_value *v = &l->values[s[i].index];
            p->line = v->line;
            p->line_start = 0;
            char buf[64];
            status = fail(p, v->col - 1, "key '%s': the value %s is listed twice",
                          params[param].key, shown(v->text, strlen(v->text), buf, sizeof buf));
            break;
        }
    free(s);
    return status;
}

static int finish(parser *p) {
    sweep_config *c = p->cfg;
    for (int i = 0; i < SWEEP_NPARAM; ++i) {
        if (c->param[i].count) continue;
        if (!params[i].def) {
            if (p->errlen)
                snprintf(p->err, p->errlen, "%s: missing key '%s' (dist, d, k and n are required)",
                         p->name, params[i].key);
            return -1;
        }
        c->param[i].values = malloc(sizeof *c->param[i].values);
        char *text = malloc(strlen(params[i].def) + 1);
        if (!c->param[i].values || !text) {
            free(text);
            if (p->errlen) snprintf(p->err, p->errlen, "%s: out of memory", p->name);
            return -1;
        }
        strcpy(text, params[i].def);
        c->param[i].values[0] = (sweep_value){text, 0, 0};
        c->param[i].count = 1;
    }
    for (int i = 0; i < SWEEP_NPARAM; ++i)
        if (check_repeats(p, i)) return -1;
    size_t total = 1;
    for (int i = 0; i < SWEEP_NPARAM; ++i) {
        const sweep_list *l = &c->param[i];
        if (l->count > SWEEP_MAX_COMBINATIONS / total) {
            p->line = l->line;
            p->line_start = 0;
            return fail(p, l->col - 1, "the sweep grows beyond %u combinations at key '%s'",
                        SWEEP_MAX_COMBINATIONS, params[i].key);
        }
        total *= l->count;
    }
    c->combinations = total;
    return 0;
}

int sweep_config_parse(const char *buf, size_t len, const char *name, sweep_config *out, char *err,
                       size_t errlen) {
    memset(out, 0, sizeof *out);
    if (errlen) err[0] = '\0';
    parser p = {.buf = buf,
                .len = len,
                .name = name ? name : "config",
                .err = err,
                .errlen = errlen,
                .cfg = out};
    int status = 0;
    for (size_t i = 0; i < len && !status;) {
        const char *nl = memchr(buf + i, '\n', len - i);
        size_t eol = nl ? (size_t)(nl - buf) : len;
        size_t end = eol;
        if (end > i && buf[end - 1] == '\r') --end;
        ++p.line;
        p.line_start = i;
        status = parse_line(&p, i, end);
        i = eol + 1;
    }
    if (!status) status = finish(&p);
    if (status) {
        sweep_config_free(out);
        return -1;
    }
    return 0;
}

void sweep_config_free(sweep_config *cfg) {
    if (!cfg) return;
    for (int i = 0; i < SWEEP_NPARAM; ++i) {
        for (size_t j = 0; j < cfg->param[i].count; ++j) free(cfg->param[i].values[j].text);
        free(cfg->param[i].values);
    }
    free(cfg->output);
    memset(cfg, 0, sizeof *cfg);
}

/* ---- the plan ------------------------------------------------------------------------ */

char *sweep_csv_join(const char *const *fields, size_t count) {
    size_t need = 1;
    for (size_t i = 0; i < count; ++i) {
        need += strlen(fields[i]) + 1;
        if (strpbrk(fields[i], ",\"\r\n"))
            for (const char *s = fields[i]; *s; ++s) need += 1 + (*s == '"');
        need += 2;
    }
    char *out = malloc(need), *o = out;
    if (!out) return NULL;
    for (size_t i = 0; i < count; ++i) {
        if (i) *o++ = ',';
        const char *f = fields[i];
        if (strpbrk(f, ",\"\r\n")) {
            *o++ = '"';
            for (; *f; ++f) {
                if (*f == '"') *o++ = '"';
                *o++ = *f;
            }
            *o++ = '"';
        } else {
            size_t n = strlen(f);
            memcpy(o, f, n);
            o += n;
        }
    }
    *o = '\0';
    return out;
}

static int is(const char *a, const char *b) {
    return strcmp(a, b) == 0;
}

/* Sets the parameters that do not apply to SWEEP_NOT_APPLICABLE; returns
 * NULL, or why recover would refuse the run. */
static const char *normalise(sweep_run *r, char *why, size_t whylen) {
    const char **v = r->value;
    const uint64_t d = strtoull(v[SWEEP_D], NULL, 10), k = strtoull(v[SWEEP_K], NULL, 10);
    if (k > d) return "k > d";
    if (strpbrk(v[SWEEP_A], ",") || !(is(v[SWEEP_A], "ones") || is(v[SWEEP_A], "positive"))) {
        uint64_t na = 1;
        for (const char *s = v[SWEEP_A]; *s; ++s) na += *s == ',';
        if (na != k) {
            snprintf(why, whylen, "a lists %" PRIu64 " values but k = %" PRIu64, na, k);
            return why;
        }
    }
    if (is(v[SWEEP_LOSS], "l2")) {
        static const int unused[] = {
            SWEEP_SCORE,     SWEEP_ROUTE,   SWEEP_S4,         SWEEP_S4_REFERENCE,
            SWEEP_U_ROWS,    SWEEP_ASSUME,  SWEEP_DETREND,    SWEEP_MODE,
            SWEEP_BANDWIDTH, SWEEP_MU,      SWEEP_LAMBDA,     SWEEP_CONSTRAINT,
            SWEEP_REFIT,     SWEEP_S4_THIN, SWEEP_SHRINK_MIN, SWEEP_SWAP};
        for (size_t i = 0; i < sizeof unused / sizeof unused[0]; ++i)
            v[unused[i]] = SWEEP_NOT_APPLICABLE;
        return NULL;
    }
    /* Where T comes from, as far as the configuration tells (recover.c's
     * choose_route): exact scores decide by the distribution, so only
     * "exact" is known; the sample's scores go projected (llsfe, kde) or
     * quadratic (gauss, hermite) on route auto, and full with independent
     * coordinates. */
    const int exact = is(v[SWEEP_SCORE], "exact");
    const int indep = is(v[SWEEP_ASSUME], "independent");
    /* projected: the sample's scores on the projected route (never with
     * exact scores, whose route is not known here). */
    int projected = 0, quadratic = 0;
    if (exact) {
        if (indep) return "assume independent with exact scores";
        v[SWEEP_ASSUME] = SWEEP_NOT_APPLICABLE;
    } else if (indep) {
        if (is(v[SWEEP_ROUTE], "projected")) return "assume independent on the projected route";
        quadratic = is(v[SWEEP_ROUTE], "quadratic");
        if (is(v[SWEEP_ROUTE], "full")) v[SWEEP_ROUTE] = "auto";
        /* The factorised fit replaces the score estimator. */
        v[SWEEP_SCORE] = SWEEP_NOT_APPLICABLE;
        v[SWEEP_BANDWIDTH] = SWEEP_NOT_APPLICABLE;
    } else {
        const int nonparametric = is(v[SWEEP_SCORE], "llsfe") || is(v[SWEEP_SCORE], "kde");
        quadratic =
            is(v[SWEEP_ROUTE], "quadratic") || (is(v[SWEEP_ROUTE], "auto") && !nonparametric);
        projected =
            is(v[SWEEP_ROUTE], "projected") || (is(v[SWEEP_ROUTE], "auto") && nonparametric);
        /* The route auto picks is recorded as auto: route = auto, quadratic
         * over score = llsfe, hermite runs hermite once. */
        if ((nonparametric && projected) || (!nonparametric && quadratic)) v[SWEEP_ROUTE] = "auto";
    }
    if (!projected) {
        v[SWEEP_S4] = SWEEP_NOT_APPLICABLE;
        v[SWEEP_S4_REFERENCE] = SWEEP_NOT_APPLICABLE;
        v[SWEEP_U_ROWS] = SWEEP_NOT_APPLICABLE;
    }
    if (indep && !quadratic) {
        /* The factorised fit takes no detrending; degree 0 and auto are the
         * same run there. */
        if (!is(v[SWEEP_DETREND], "auto") && !is(v[SWEEP_DETREND], "0"))
            return "detrend 1..4 with independent coordinates off the quadratic route";
        v[SWEEP_DETREND] = SWEEP_NOT_APPLICABLE;
    }
    /* On the projected route with estimated scores, auto is the S_4
     * estimator's own degree (3), recorded '-' as before that route took
     * the key, so earlier results files resume. */
    if (projected && is(v[SWEEP_DETREND], "auto")) v[SWEEP_DETREND] = SWEEP_NOT_APPLICABLE;
    /* Degree 4 adds the quartic's fourth derivative back: the exact S_4 in
     * tensor mode or an S_4 estimator (projected), not the quadratic route. */
    if (is(v[SWEEP_DETREND], "4") && (quadratic || (exact && is(v[SWEEP_MODE], "minibatch"))))
        return "detrend 4 on the quadratic route or in minibatch mode";
    /* Refit passes re-estimate T with an S_4 estimator: estimated scores on
     * the projected route only. There auto is recorded as its count, so a
     * later change of the default makes new runs, not matches. */
    if (projected) {
        if (is(v[SWEEP_REFIT], "auto")) v[SWEEP_REFIT] = SWEEP_REFIT_AUTO_TEXT;
    } else {
        if (!is(v[SWEEP_REFIT], "auto") && !is(v[SWEEP_REFIT], "0"))
            return "refit passes off the projected route with estimated scores";
        v[SWEEP_REFIT] = SWEEP_NOT_APPLICABLE;
    }
    /* Swap rounds follow the refit passes: with none (refit 0) or off that
     * route, only 0 is a run ("0" and "-" there). */
    if (!is(v[SWEEP_SWAP], "0") && (!projected || is(v[SWEEP_REFIT], "0")))
        return "swap rounds without refit passes";
    if (!projected) v[SWEEP_SWAP] = SWEEP_NOT_APPLICABLE;
    /* The S_4 estimator's thin rule, likewise: auto is recorded as the
     * rule it stands for; elsewhere every rule is the same run. */
    if (projected) {
        if (is(v[SWEEP_S4_THIN], "auto")) {
            sl_s4_options dflt;
            sl_s4_options_default(&dflt);
            v[SWEEP_S4_THIN] = sl_s4_thin_name(dflt.thin);
        }
    } else {
        v[SWEEP_S4_THIN] = SWEEP_NOT_APPLICABLE;
    }
    /* llsfe's lowest automatic shrink on that route, likewise. */
    if (projected && is(v[SWEEP_SCORE], "llsfe")) {
        if (is(v[SWEEP_SHRINK_MIN], "auto")) v[SWEEP_SHRINK_MIN] = SWEEP_SHRINK_MIN_AUTO_TEXT;
    } else {
        v[SWEEP_SHRINK_MIN] = SWEEP_NOT_APPLICABLE;
    }
    if (!is(v[SWEEP_SCORE], "llsfe") && !is(v[SWEEP_SCORE], "kde"))
        v[SWEEP_BANDWIDTH] = SWEEP_NOT_APPLICABLE;
    if (is(v[SWEEP_LOSS], "signfree")) {
        v[SWEEP_MU] = SWEEP_NOT_APPLICABLE;
        if (is(v[SWEEP_MODE], "minibatch")) return "the signfree loss on minibatches";
    }
    if (is(v[SWEEP_CONSTRAINT], "none") && !(strtod(v[SWEEP_LAMBDA], NULL) > 0.0))
        return "constraint none without lambda > 0";
    return NULL;
}

typedef struct {
    const char *key;
    size_t index;
} sorted_key;

static int compare_keys(const void *a, const void *b) {
    const sorted_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

int sweep_plan_make(const sweep_config *cfg, sweep_plan *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    const size_t total = cfg->combinations;
    sweep_run *runs = malloc((total ? total : 1) * sizeof *runs);
    char **keys = calloc(total ? total : 1, sizeof *keys);
    sorted_key *sorted = malloc((total ? total : 1) * sizeof *sorted);
    unsigned char *drop = calloc(total ? total : 1, 1);
    size_t idx[SWEEP_NPARAM] = {0};
    size_t n = 0;
    int status = 0;
    if (!runs || !keys || !sorted || !drop) goto oom;
    for (size_t c = 0; c < total; ++c) {
        sweep_run r;
        for (int i = 0; i < SWEEP_NPARAM; ++i) r.value[i] = cfg->param[i].values[idx[i]].text;
        char why[160];
        const char *refused = normalise(&r, why, sizeof why);
        if (refused) {
            if (!out->left_out++)
                snprintf(out->left_out_reason, sizeof out->left_out_reason, "%s", refused);
        } else {
            if (!(keys[n] = sweep_csv_join(r.value, SWEEP_NPARAM))) goto oom;
            runs[n] = r;
            sorted[n] = (sorted_key){keys[n], n};
            ++n;
        }
        /* The next combination: the last parameter (the seed) counts fastest. */
        for (int i = SWEEP_NPARAM - 1; i >= 0; --i) {
            if (++idx[i] < cfg->param[i].count) break;
            idx[i] = 0;
        }
    }
    qsort(sorted, n, sizeof *sorted, compare_keys);
    for (size_t i = 1; i < n; ++i)
        if (strcmp(sorted[i].key, sorted[i - 1].key) == 0) drop[sorted[i].index] = 1;
    size_t m = 0;
    for (size_t i = 0; i < n; ++i) {
        if (drop[i]) {
            free(keys[i]);
            ++out->duplicates;
            continue;
        }
        runs[m] = runs[i];
        keys[m] = keys[i];
        ++m;
    }
    out->nruns = m;
    out->runs = runs;
    out->keys = keys;
    goto done;
oom:
    for (size_t i = 0; keys && i < n; ++i) free(keys[i]);
    free(runs);
    free(keys);
    memset(out, 0, sizeof *out);
    if (errlen) snprintf(err, errlen, "out of memory for the plan of %zu runs", total);
    status = -1;
done:
    free(sorted);
    free(drop);
    return status;
}

void sweep_plan_free(sweep_plan *plan) {
    if (!plan) return;
    for (size_t i = 0; i < plan->nruns; ++i) free(plan->keys[i]);
    free(plan->keys);
    free(plan->runs);
    memset(plan, 0, sizeof *plan);
}
