/* gnuplot runner and the data preparation of each picture (plot.h). */
#include "cli/plot.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/sweep_config.h"

/* ---- a CSV table of strings (the census and sweep files carry names) -------- */

typedef struct str_table {
    size_t rows, cols;
    char **names;  /* cols */
    char **cells;  /* rows x cols, pointers into buf */
    char *comment; /* '#' lines joined by '\n', without the '#' */
    char *buf;
} str_table;

static void str_table_free(str_table *t) {
    if (!t) return;
    free(t->names);
    free(t->cells);
    free(t->comment);
    free(t->buf);
    free(t);
}

/* Splits line at commas in place into at most max fields; returns the count. */
static size_t split(char *line, char **fields, size_t max) {
    size_t n = 0;
    char *p = line;
    for (;;) {
        char *e = strchr(p, ',');
        if (n < max) fields[n] = p;
        ++n;
        if (!e) break;
        *e = '\0';
        p = e + 1;
    }
    return n;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') ++s;
    size_t len = strlen(s);
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r')) s[--len] = '\0';
    return s;
}

/* Reads path; on failure prints a one-line message and returns NULL with
 * *status set. */
static str_table *str_table_read(const cli_args *args, const char *path, int *status) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *status = cli_error(args, CLI_EXIT_FAILURE, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    str_table *t = calloc(1, sizeof *t);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (t && buf) {
        if (len + 4096 > cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) break;
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    fclose(f);
    if (!t || !buf) {
        free(buf);
        free(t);
        *status = cli_error(args, CLI_EXIT_FAILURE, "out of memory reading %s", path);
        return NULL;
    }
    buf[len] = '\0';
    t->buf = buf;
    /* Lines. */
    size_t nlines = 1;
    for (size_t i = 0; i < len; ++i) nlines += buf[i] == '\n';
    char **lines = malloc(nlines * sizeof *lines);
    t->comment = calloc(len + 1, 1);
    if (!lines || !t->comment) {
        free(lines);
        str_table_free(t);
        *status = cli_error(args, CLI_EXIT_FAILURE, "out of memory reading %s", path);
        return NULL;
    }
    size_t nl = 0, clen = 0, lineno = 0, header_line = 0;
    char *header = NULL;
    for (char *p = buf; p && *p;) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        ++lineno;
        char *s = trim(p);
        if (*s == '#') {
            const char *c = s + 1 + (s[1] == ' ');
            memcpy(t->comment + clen, c, strlen(c));
            clen += strlen(c);
            t->comment[clen++] = '\n';
        } else if (*s) {
            if (!header) {
                header = s;
                header_line = lineno;
            } else {
                lines[nl++] = s;
            }
        }
        p = e ? e + 1 : NULL;
    }
    (void)header_line;
    if (!header) {
        free(lines);
        str_table_free(t);
        *status = cli_error(args, CLI_EXIT_FAILURE, "%s: no header line (an empty file?)", path);
        return NULL;
    }
    size_t cols = 1;
    for (const char *c = header; *c; ++c) cols += *c == ',';
    t->cols = cols;
    t->names = malloc(cols * sizeof *t->names);
    t->cells = malloc((nl ? nl : 1) * cols * sizeof *t->cells);
    if (!t->names || !t->cells) {
        free(lines);
        str_table_free(t);
        *status = cli_error(args, CLI_EXIT_FAILURE, "out of memory reading %s", path);
        return NULL;
    }
    split(header, t->names, cols);
    for (size_t j = 0; j < cols; ++j) t->names[j] = trim(t->names[j]);
    for (size_t i = 0; i < nl; ++i) {
        size_t got = split(lines[i], t->cells + i * cols, cols);
        if (got != cols) {
            free(lines);
            str_table_free(t);
            *status = cli_error(args, CLI_EXIT_FAILURE,
                                "%s: data row %zu has %zu fields, the header has %zu", path, i + 1,
                                got, cols);
            return NULL;
        }
        for (size_t j = 0; j < cols; ++j) t->cells[i * cols + j] = trim(t->cells[i * cols + j]);
    }
    t->rows = nl;
    free(lines);
    return t;
}

static long str_col(const str_table *t, const char *name) {
    for (size_t j = 0; j < t->cols; ++j)
        if (strcmp(t->names[j], name) == 0) return (long)j;
    return -1;
}

/* Column indices for names; prints the missing one. */
static int need_cols(const cli_args *args, const char *path, const str_table *t, size_t n,
                     const char *const *names, long *idx) {
    for (size_t i = 0; i < n; ++i)
        if ((idx[i] = str_col(t, names[i])) < 0)
            return cli_error(args, CLI_EXIT_FAILURE, "%s: no column '%s'", path, names[i]);
    return 0;
}

/* A number from a cell: 0 on success. NAN/empty give NAN. */
static int cell_number(const str_table *t, size_t row, long col, double *out) {
    const char *s = t->cells[row * t->cols + (size_t)col];
    if (!*s || strcmp(s, "nan") == 0 || strcmp(s, "NA") == 0) {
        *out = NAN;
        return 0;
    }
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *end != '\0' || errno == ERANGE ? -1 : 0;
}

static int bad_number(const cli_args *args, const char *path, const str_table *t, size_t row,
                      long col) {
    return cli_error(args, CLI_EXIT_FAILURE, "%s: data row %zu, column '%s': '%s' is not a number",
                     path, row + 1, t->names[col], t->cells[row * t->cols + (size_t)col]);
}

/* ---- locating programs and scripts ------------------------------------------------ */

static int is_file(const char *path, int exec) {
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) return 0;
    return !exec || access(path, X_OK) == 0;
}

static int find_gnuplot(char *out, size_t len) {
    const char *env = getenv("SL_GNUPLOT");
    if (env && *env) {
        if (strchr(env, '/')) {
            snprintf(out, len, "%s", env);
            return is_file(out, 1);
        }
    }
    const char *name = env && *env ? env : "gnuplot";
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n > 0 && (size_t)snprintf(out, len, "%.*s/%s", (int)n, path, name) < len &&
            is_file(out, 1))
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

static int find_script(const char *kind, char *out, size_t len) {
    const char *env = getenv("SL_PLOT_DIR");
    if (env && *env) {
        if (snprintf(out, len, "%s/%s.gp", env, kind) < (int)len && is_file(out, 0)) return 1;
    }
    env = getenv("SL_SOURCE_ROOT");
    if (env && *env) {
        if (snprintf(out, len, "%s/scripts/plot/%s.gp", env, kind) < (int)len && is_file(out, 0))
            return 1;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        static const char *const rel[] = {"../scripts/plot", "../share/scoreloss/plot"};
        for (size_t i = 0; i < 2; ++i) {
            if (snprintf(out, len, "%s/%s/%s.gp", exe, rel[i], kind) < (int)len && is_file(out, 0))
                return 1;
        }
    }
    return 0;
}

/* ---- the temporary directory ------------------------------------------------------- */

typedef struct workdir {
    char path[512];
    char files[8][600];
    size_t nfiles;
} workdir;

static int workdir_make(workdir *w) {
    const char *tmp = getenv("TMPDIR");
    snprintf(w->path, sizeof w->path, "%s/scoreloss-plot.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    w->nfiles = 0;
    return mkdtemp(w->path) ? 0 : -1;
}

/* A new file in the work directory, opened for writing. */
static FILE *workdir_open(workdir *w, const char *name, const char **path) {
    if (w->nfiles >= 8) return NULL;
    char dir[sizeof w->path];
    memcpy(dir, w->path, sizeof dir);
    if (snprintf(w->files[w->nfiles], sizeof w->files[0], "%s/%s", dir, name) >=
        (int)sizeof w->files[0])
        return NULL;
    FILE *f = fopen(w->files[w->nfiles], "w");
    if (f) *path = w->files[w->nfiles++];
    return f;
}

static void workdir_remove(workdir *w) {
    for (size_t i = 0; i < w->nfiles; ++i) remove(w->files[i]);
    rmdir(w->path);
}

/* Single quotes are the only thing to keep out of gnuplot string literals. */
static void gp_string(char *out, size_t len, const char *s) {
    size_t j = 0;
    for (; *s && j + 1 < len; ++s) out[j++] = *s == '\'' ? '`' : (*s == '\n' ? ' ' : *s);
    out[j] = '\0';
}

/* ---- the pictures' data ----------------------------------------------------------- */

/* Variables passed to gnuplot, "a='x'; b=3; ..." */
typedef struct vars {
    char s[8192];
    size_t len;
} vars;

static void var_str(vars *v, const char *name, const char *value) {
    char q[2048];
    gp_string(q, sizeof q, value ? value : "");
    int n = snprintf(v->s + v->len, sizeof v->s - v->len, "%s='%s'; ", name, q);
    if (n > 0 && v->len + (size_t)n < sizeof v->s) v->len += (size_t)n;
}

static void var_num(vars *v, const char *name, double value) {
    int n = snprintf(v->s + v->len, sizeof v->s - v->len, "%s=%.17g; ", name, value);
    if (n > 0 && v->len + (size_t)n < sizeof v->s) v->len += (size_t)n;
}

/* The grid of a landscape file: u fastest, blocks of constant v; local
 * minima of the grid (no smaller neighbour among the 8) and the marks of
 * the comment ("mark NAME U V"). */
static int prep_landscape(const cli_args *args, const char *path, workdir *w, vars *v) {
    int status = 0;
    str_table *t = str_table_read(args, path, &status);
    if (!t) return status;
    static const char *const cols[] = {"u", "v", "loss"};
    long idx[3];
    const char *gpath = NULL, *mpath = NULL, *kpath = NULL;
    double *u = NULL, *vv = NULL, *f = NULL;
    FILE *g = NULL, *m = NULL, *k = NULL;
    if ((status = need_cols(args, path, t, 3, cols, idx))) goto done;
    const size_t n = t->rows;
    if (n < 4) {
        status =
            cli_error(args, CLI_EXIT_FAILURE, "%s: %zu rows are too few for a picture", path, n);
        goto done;
    }
    u = malloc(n * sizeof *u);
    vv = malloc(n * sizeof *vv);
    f = malloc(n * sizeof *f);
    if (!u || !vv || !f) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (size_t r = 0; r < n; ++r) {
        double *dst[3] = {u + r, vv + r, f + r};
        for (int c = 0; c < 3; ++c)
            if (cell_number(t, r, idx[c], dst[c]) || !isfinite(*dst[c])) {
                status = bad_number(args, path, t, r, idx[c]);
                goto done;
            }
    }
    size_t nu = 1;
    while (nu < n && vv[nu] == vv[0]) ++nu;
    if (n % nu != 0 || nu < 2 || n / nu < 2) {
        status = cli_error(args, CLI_EXIT_FAILURE,
                           "%s: not a grid (rows with u fastest and v constant in blocks)", path);
        goto done;
    }
    const size_t nv = n / nu;
    g = workdir_open(w, "grid.dat", &gpath);
    m = workdir_open(w, "minima.dat", &mpath);
    k = workdir_open(w, "marks.dat", &kpath);
    if (!g || !m || !k) {
        status = cli_error(args, CLI_EXIT_FAILURE, "cannot write temporary files in %s", w->path);
        goto done;
    }
    for (size_t j = 0; j < nv; ++j) {
        for (size_t i = 0; i < nu; ++i)
            fprintf(g, "%.10g %.10g %.10g\n", u[j * nu + i], vv[j * nu + i], f[j * nu + i]);
        fputc('\n', g);
    }
    /* Grid minima: interior points no larger than any of their 8 neighbours
     * (and below the next one along u, so flat plateaus give no marks); the
     * 12 lowest are marked. */
    size_t nmin = 0, *cand = malloc(n * sizeof *cand);
    if (!cand) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (size_t j = 1; j + 1 < nv; ++j)
        for (size_t i = 1; i + 1 < nu; ++i) {
            const double c = f[j * nu + i];
            int ismin = f[j * nu + i + 1] > c;
            for (int dj = -1; dj <= 1 && ismin; ++dj)
                for (int di = -1; di <= 1; ++di)
                    if ((di || dj) && f[(j + (size_t)dj) * nu + i + (size_t)di] < c) ismin = 0;
            if (ismin) cand[nmin++] = j * nu + i;
        }
    /* A selection of the lowest: nmin is small in any picture worth drawing. */
    for (size_t a = 0; a < nmin && a < 12; ++a) {
        size_t best = a;
        for (size_t b = a + 1; b < nmin; ++b)
            if (f[cand[b]] < f[cand[best]]) best = b;
        const size_t tmp = cand[a];
        cand[a] = cand[best];
        cand[best] = tmp;
        fprintf(m, "%.10g %.10g\n", u[cand[a]], vv[cand[a]]);
    }
    free(cand);
    if (nmin > 12) nmin = 12;
    size_t nmark = 0;
    if (t->comment)
        for (char *p = t->comment; *p;) {
            char *e = strchr(p, '\n');
            if (e) *e = '\0';
            char name[64];
            double mu, mv;
            if (sscanf(p, "mark %63s %lf %lf", name, &mu, &mv) == 3 && isfinite(mu) &&
                isfinite(mv)) {
                fprintf(k, "%.10g %.10g %s\n", mu, mv, name);
                ++nmark;
            }
            if (!e) break;
            *e = '\n';
            p = e + 1;
        }
    var_str(v, "gridfile", gpath);
    var_str(v, "minfile", mpath);
    var_str(v, "markfile", kpath);
    var_num(v, "nmin", (double)nmin);
    var_num(v, "nmark", (double)nmark);
done:
    if (g && fclose(g) && !status) status = cli_error(args, CLI_EXIT_FAILURE, "write failed");
    if (m) fclose(m);
    if (k) fclose(k);
    free(u);
    free(vv);
    free(f);
    str_table_free(t);
    return status;
}

/* A name for a file's line: the --loss value recorded in its comment, else
 * the file's base name. */
static void trace_label(const str_table *t, const char *path, char *out, size_t len) {
    const char *p = t->comment ? strstr(t->comment, "--loss ") : NULL;
    if (p) {
        p += 7;
        size_t n = strcspn(p, " \n");
        const char *s = t->comment ? strstr(t->comment, "--score ") : NULL;
        if (s && strncmp(p, "l2", 2) != 0) {
            s += 8;
            snprintf(out, len, "%.*s (%.*s)", (int)n, p, (int)strcspn(s, " \n"), s);
        } else {
            snprintf(out, len, "%.*s", (int)n, p);
        }
        return;
    }
    const char *b = strrchr(path, '/');
    snprintf(out, len, "%s", b ? b + 1 : path);
}

/* Each trace's best restart (lowest final full loss): step against error
 * (or against the loss when the trace has no error column). */
static int prep_trace(const cli_args *args, size_t ninputs, const char *const *inputs, workdir *w,
                      vars *v) {
    if (ninputs > 6) return cli_error(args, CLI_EXIT_USAGE, "at most 6 trace files");
    char titles[2048] = "";
    int have_error = 1;
    for (size_t fi = 0; fi < ninputs; ++fi) {
        int status = 0;
        str_table *t = str_table_read(args, inputs[fi], &status);
        if (!t) return status;
        static const char *const cols[] = {"restart", "step", "loss", "full"};
        long idx[4];
        if ((status = need_cols(args, inputs[fi], t, 4, cols, idx))) {
            str_table_free(t);
            return status;
        }
        const long ecol = str_col(t, "error");
        if (ecol < 0) have_error = 0;
        /* The best restart. */
        double best = INFINITY, best_r = -1;
        for (size_t r = 0; r < t->rows; ++r) {
            double rs, loss, full;
            if (cell_number(t, r, idx[0], &rs) || cell_number(t, r, idx[2], &loss) ||
                cell_number(t, r, idx[3], &full)) {
                status = bad_number(args, inputs[fi], t, r, idx[2]);
                str_table_free(t);
                return status;
            }
            /* The last full row of a restart is its final loss: later rows
             * of the same restart replace earlier ones. */
            if (full == 1.0 && (r + 1 == t->rows || strcmp(t->cells[(r + 1) * t->cols + idx[0]],
                                                           t->cells[r * t->cols + idx[0]]) != 0)) {
                if (loss < best) {
                    best = loss;
                    best_r = rs;
                }
            }
        }
        if (best_r < 0) {
            str_table_free(t);
            return cli_error(args, CLI_EXIT_FAILURE, "%s: no full-batch rows (column full = 1)",
                             inputs[fi]);
        }
        char name[32];
        snprintf(name, sizeof name, "trace%zu.dat", fi + 1);
        const char *tp = NULL;
        FILE *f = workdir_open(w, name, &tp);
        if (!f) {
            str_table_free(t);
            return cli_error(args, CLI_EXIT_FAILURE, "cannot write temporary files in %s", w->path);
        }
        for (size_t r = 0; r < t->rows; ++r) {
            double rs, step, y;
            cell_number(t, r, idx[0], &rs);
            if (rs != best_r) continue;
            cell_number(t, r, idx[1], &step);
            if (cell_number(t, r, ecol >= 0 && have_error ? ecol : idx[2], &y)) continue;
            if (isfinite(y)) fprintf(f, "%.10g %.10g\n", step, y);
        }
        fclose(f);
        char label[256];
        trace_label(t, inputs[fi], label, sizeof label);
        for (char *c = label; *c; ++c)
            if (*c == '"') *c = '`';
        size_t used = strlen(titles);
        snprintf(titles + used, sizeof titles - used, "%s\"%s\"", fi ? " " : "", label);
        str_table_free(t);
    }
    var_str(v, "tracedir", w->path);
    var_num(v, "ntraces", (double)ninputs);
    var_str(v, "titles", titles);
    var_str(v, "ylabel", have_error ? "error (max form)" : "loss (full batch)");
    return 0;
}

/* One bar per cluster: its fraction of the restarts, global or spurious. */
static int prep_census(const cli_args *args, const char *path, workdir *w, vars *v) {
    int status = 0;
    str_table *t = str_table_read(args, path, &status);
    if (!t) return status;
    static const char *const cols[] = {"loss", "score", "cluster", "fraction", "global"};
    long idx[5];
    const char *bp = NULL;
    FILE *f = NULL;
    if ((status = need_cols(args, path, t, 5, cols, idx))) goto done;
    if (t->rows == 0) {
        status = cli_error(args, CLI_EXIT_FAILURE, "%s: no clusters to plot", path);
        goto done;
    }
    if (!(f = workdir_open(w, "bars.dat", &bp))) {
        status = cli_error(args, CLI_EXIT_FAILURE, "cannot write temporary files in %s", w->path);
        goto done;
    }
    for (size_t r = 0; r < t->rows; ++r) {
        double frac, glob;
        if (cell_number(t, r, idx[3], &frac)) {
            status = bad_number(args, path, t, r, idx[3]);
            goto done;
        }
        if (cell_number(t, r, idx[4], &glob)) {
            status = bad_number(args, path, t, r, idx[4]);
            goto done;
        }
        const char *score = t->cells[r * t->cols + idx[1]];
        fprintf(f, "%zu %.10g %d \"%s%s%s #%s\"\n", r, frac, glob == 1.0,
                t->cells[r * t->cols + idx[0]], strcmp(score, "none") ? "/" : "",
                strcmp(score, "none") ? score : "", t->cells[r * t->cols + idx[2]]);
    }
    var_str(v, "barfile", bp);
done:
    if (f) fclose(f);
    str_table_free(t);
    return status;
}

/* Sweep rows grouped by their parameters (every column of the sweep's own
 * parameter list present in the file, n aside): mean and standard error of
 * err_max over the rows (seeds) at each n. */
typedef struct sweep_row {
    size_t row, group;
    double n, err;
} sweep_row;

static int compare_sweep(const void *a, const void *b) {
    const sweep_row *x = a, *y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    return (x->n > y->n) - (x->n < y->n);
}

/* The parameter columns of a sweep results file are the sweep's own
 * (sweep_config.h, SWEEP_NPARAM of them), n and seed aside; loss and score
 * name a line, the others qualify it where they differ. */

/* Whether row r passes the --where conditions: space-separated KEY=V[,V..],
 * each a column that must hold one of the values. 0 = keep, 1 = drop, else
 * an exit status after the message. */
static int sweep_where(const cli_args *args, const char *path, const str_table *t, size_t r,
                       const char *where) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", where) >= (int)sizeof buf)
        return cli_option_error(args, "where", "too long");
    int drop = 0;
    for (char *save = NULL, *cond = strtok_r(buf, " \t", &save); cond;
         cond = strtok_r(NULL, " \t", &save)) {
        char *eq = strchr(cond, '=');
        if (!eq || eq == cond || !eq[1])
            return cli_option_error(args, "where", "expected KEY=VALUE[,VALUE..], got '%s'", cond);
        *eq = '\0';
        const long c = str_col(t, cond);
        if (c < 0) return cli_option_error(args, "where", "no column '%s' in %s", cond, path);
        const char *cell = t->cells[r * t->cols + (size_t)c];
        int match = 0;
        for (char *vsave = NULL, *val = strtok_r(eq + 1, ",", &vsave); val && !match;
             val = strtok_r(NULL, ",", &vsave))
            match = strcmp(cell, val) == 0;
        if (!match) drop = 1;
    }
    return drop;
}

/* Which of the np parameter columns pidx label group g: among the groups
 * with g's loss and score (columns cl, cs), a column is shown when two of
 * them agree on every column already shown but not on this one, taken in
 * the sweep's order. So noise and route are shown where they vary, and the
 * columns that follow from them (s4, u_rows, detrend after route) are not. */
static void sweep_label_columns(const str_table *t, const size_t *key, size_t ngroups, size_t g,
                                long cl, long cs, const long *pidx, size_t np, int *shown) {
    const char *const *cell = (const char *const *)t->cells;
    const size_t cols = t->cols, kg = key[g] * cols;
    for (size_t c = 0; c < np; ++c) {
        shown[c] = 0;
        if (pidx[c] == cl || pidx[c] == cs) continue;
        for (size_t a = 0; a < ngroups && !shown[c]; ++a)
            for (size_t b = a + 1; b < ngroups && !shown[c]; ++b) {
                const size_t ka = key[a] * cols, kb = key[b] * cols;
                int same = strcmp(cell[ka + cl], cell[kg + cl]) == 0 &&
                           strcmp(cell[ka + cs], cell[kg + cs]) == 0 &&
                           strcmp(cell[kb + cl], cell[kg + cl]) == 0 &&
                           strcmp(cell[kb + cs], cell[kg + cs]) == 0;
                for (size_t e = 0; e < c && same; ++e)
                    if (shown[e]) same = strcmp(cell[ka + pidx[e]], cell[kb + pidx[e]]) == 0;
                shown[c] = same && strcmp(cell[ka + pidx[c]], cell[kb + pidx[c]]) != 0;
            }
    }
}

static int prep_sweep(const cli_args *args, const char *path, const char *where, workdir *w,
                      vars *v) {
    int status = 0;
    str_table *t = str_table_read(args, path, &status);
    if (!t) return status;
    static const char *const cols[] = {"dist", "d", "k", "n", "loss", "score", "err_max"};
    long idx[7], pidx[SWEEP_NPARAM];
    int shown[SWEEP_NPARAM];
    sweep_row *rows = NULL;
    size_t *key = NULL; /* each group's first row */
    size_t np = 0, nrows = 0;
    FILE *f = NULL;
    const char *sp = NULL;
    if ((status = need_cols(args, path, t, 7, cols, idx))) goto done;
    for (int c = 0; c < SWEEP_NPARAM; ++c) {
        const char *name = sweep_param_name(c);
        if (strcmp(name, "n") == 0 || strcmp(name, "seed") == 0) continue;
        if ((pidx[np] = str_col(t, name)) >= 0) ++np;
    }
    rows = malloc((t->rows + 1) * sizeof *rows);
    key = malloc((t->rows + 1) * sizeof *key);
    if (!rows || !key) {
        status = cli_error(args, CLI_EXIT_FAILURE, "out of memory");
        goto done;
    }
    for (size_t r = 0; r < t->rows; ++r) {
        const int drop = where ? sweep_where(args, path, t, r, where) : 0;
        if (drop > 1) {
            status = drop;
            goto done;
        }
        if (!drop) rows[nrows++].row = r;
    }
    if (nrows == 0) {
        status =
            where ? cli_error(args, CLI_EXIT_FAILURE, "%s: no runs match --where '%s'", path, where)
                  : cli_error(args, CLI_EXIT_FAILURE, "%s: no runs to plot", path);
        goto done;
    }
    size_t ngroups = 0;
    for (size_t i = 0; i < nrows; ++i) {
        const size_t r = rows[i].row;
        size_t gi = ngroups;
        for (size_t g = 0; g < ngroups && gi == ngroups; ++g) {
            int same = 1;
            for (size_t c = 0; c < np && same; ++c)
                same = strcmp(t->cells[r * t->cols + (size_t)pidx[c]],
                              t->cells[key[g] * t->cols + (size_t)pidx[c]]) == 0;
            if (same) gi = g;
        }
        if (gi == ngroups) key[ngroups++] = r;
        rows[i].group = gi;
        if (cell_number(t, r, idx[3], &rows[i].n) || !(rows[i].n > 0)) {
            status = bad_number(args, path, t, r, idx[3]);
            goto done;
        }
        if (cell_number(t, r, idx[6], &rows[i].err)) {
            status = bad_number(args, path, t, r, idx[6]);
            goto done;
        }
    }
    if (ngroups > 12) {
        status = cli_error(args, CLI_EXIT_FAILURE,
                           "%s: %zu groups of runs (lines): at most 12 fit in one picture; choose "
                           "some with --where",
                           path, ngroups);
        goto done;
    }
    qsort(rows, nrows, sizeof *rows, compare_sweep);
    if (!(f = workdir_open(w, "sweep.dat", &sp))) {
        status = cli_error(args, CLI_EXIT_FAILURE, "cannot write temporary files in %s", w->path);
        goto done;
    }
    char titles[4096] = "";
    for (size_t g = 0; g < ngroups; ++g) {
        if (g) fprintf(f, "\n\n");
        for (size_t r = 0; r < nrows;) {
            size_t e = r;
            while (e < nrows && rows[e].group == rows[r].group && rows[e].n == rows[r].n) ++e;
            if (rows[r].group == g) {
                double sum = 0.0, ss = 0.0;
                size_t cnt = 0;
                for (size_t q = r; q < e; ++q)
                    if (isfinite(rows[q].err)) {
                        sum += rows[q].err;
                        ++cnt;
                    }
                if (cnt) {
                    const double mean = sum / (double)cnt;
                    for (size_t q = r; q < e; ++q)
                        if (isfinite(rows[q].err))
                            ss += (rows[q].err - mean) * (rows[q].err - mean);
                    const double se = cnt > 1 ? sqrt(ss / (double)(cnt - 1) / (double)cnt) : 0.0;
                    fprintf(f, "%.10g %.10g %.10g %zu\n", rows[r].n, mean, se, cnt);
                }
            }
            r = e;
        }
        /* The label: loss/score, then the parameters that tell the line
         * from the others of its loss and score (sweep_label_columns). */
        const size_t k0 = key[g] * t->cols;
        char label[256];
        int len =
            snprintf(label, sizeof label, "%s/%s", t->cells[k0 + idx[4]], t->cells[k0 + idx[5]]);
        sweep_label_columns(t, key, ngroups, g, idx[4], idx[5], pidx, np, shown);
        for (size_t c = 0; c < np; ++c) {
            const char *val = t->cells[k0 + (size_t)pidx[c]];
            if (!shown[c] || strcmp(val, "-") == 0 || len <= 0 || (size_t)len >= sizeof label)
                continue;
            len += pidx[c] == idx[0] ? snprintf(label + len, sizeof label - (size_t)len, " %s", val)
                                     : snprintf(label + len, sizeof label - (size_t)len, " %s=%s",
                                                t->names[pidx[c]], val);
        }
        for (char *c = label; *c; ++c)
            if (*c == '"' || *c == '\'') *c = '`';
        size_t used = strlen(titles);
        snprintf(titles + used, sizeof titles - used, "%s\"%s\"", g ? " " : "", label);
    }
    var_str(v, "sweepfile", sp);
    var_num(v, "ngroups", (double)ngroups);
    var_str(v, "titles", titles);
done:
    if (f) fclose(f);
    free(rows);
    free(key);
    str_table_free(t);
    return status;
}

/* ---- running gnuplot ---------------------------------------------------------------- */

int plot_check_target(const cli_args *args, const char *png) {
    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.png", png, (long)getpid()) >= (int)sizeof tmp)
        return cli_error(args, CLI_EXIT_FAILURE, "path too long: %.60s...", png);
    FILE *f = fopen(tmp, "w");
    if (!f) return cli_error(args, CLI_EXIT_FAILURE, "cannot write %s: %s", png, strerror(errno));
    fclose(f);
    remove(tmp);
    return 0;
}

int plot_kind_known(const char *kind) {
    static const char *const kinds[] = {"landscape", "trace", "census", "sweep"};
    for (size_t i = 0; i < 4; ++i)
        if (strcmp(kind, kinds[i]) == 0) return 1;
    return 0;
}

/* The first line of a file, for gnuplot's message. */
static void first_line(const char *path, char *out, size_t len) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (fgets(out, (int)len, f)) {
        out[strcspn(out, "\n")] = '\0';
        if (out[0]) break;
    }
    fclose(f);
}

int plot_render(const cli_args *args, const char *kind, size_t ninputs, const char *const *inputs,
                const char *png, const char *title, const char *where, int warn_only) {
    char gnuplot[4096], script[4096];
    if (!plot_kind_known(kind))
        return cli_error(args, CLI_EXIT_USAGE,
                         "unknown picture '%s' (expected landscape, trace, census or sweep)", kind);
    if (!find_gnuplot(gnuplot, sizeof gnuplot)) {
        if (warn_only)
            fprintf(stderr,
                    "scoreloss %s: warning: gnuplot not found (install gnuplot-nox): "
                    "wrote the CSV only, no PNG\n",
                    args->cmd->name);
        else
            fprintf(stderr, "scoreloss %s: gnuplot not found (install gnuplot-nox)\n",
                    args->cmd->name);
        return PLOT_NO_GNUPLOT;
    }
    if (!find_script(kind, script, sizeof script))
        return cli_error(args, CLI_EXIT_FAILURE,
                         "cannot find the plot script %s.gp (set SL_PLOT_DIR or SL_SOURCE_ROOT)",
                         kind);
    workdir w;
    if (workdir_make(&w) != 0)
        return cli_error(args, CLI_EXIT_FAILURE, "cannot create a temporary directory: %s",
                         strerror(errno));
    vars v = {.len = 0};
    v.s[0] = '\0';
    int status = 0;
    if (strcmp(kind, "landscape") == 0)
        status = prep_landscape(args, inputs[0], &w, &v);
    else if (strcmp(kind, "trace") == 0)
        status = prep_trace(args, ninputs, inputs, &w, &v);
    else if (strcmp(kind, "census") == 0)
        status = prep_census(args, inputs[0], &w, &v);
    else
        status = prep_sweep(args, inputs[0], where, &w, &v);
    /* The PNG goes to a temporary name beside the target. */
    char tmp_png[4200], errpath[700];
    snprintf(tmp_png, sizeof tmp_png, "%s.tmp.%ld.png", png, (long)getpid());
    snprintf(errpath, sizeof errpath, "%s/gnuplot.err", w.path);
    if (!status) {
        var_str(&v, "outfile", tmp_png);
        var_str(&v, "plottitle", title ? title : "");
        /* The scripts load common.gp from their own directory. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", script);
        char *slash = strrchr(dir, '/');
        if (slash) slash[1] = '\0';
        var_str(&v, "dir", slash ? dir : "./");
        if (v.len + 2 >= sizeof v.s)
            status = cli_error(args, CLI_EXIT_FAILURE, "plot variables too long");
    }
    if (!status) {
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            status = cli_error(args, CLI_EXIT_FAILURE, "cannot start gnuplot: %s", strerror(errno));
        } else if (pid == 0) {
            int devnull = open("/dev/null", O_RDWR);
            int err = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (devnull >= 0) {
                dup2(devnull, STDIN_FILENO);
                dup2(devnull, STDOUT_FILENO);
            }
            if (err >= 0) dup2(err, STDERR_FILENO);
            execl(gnuplot, "gnuplot", "-e", v.s, script, (char *)NULL);
            _exit(127);
        } else {
            int ws = 0;
            while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
            }
            char line[300];
            first_line(errpath, line, sizeof line);
            if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
                status = cli_error(args, CLI_EXIT_FAILURE, "gnuplot failed on %s%s%s", script,
                                   line[0] ? ": " : "", line);
            } else if (!is_file(tmp_png, 0)) {
                status = cli_error(args, CLI_EXIT_FAILURE, "gnuplot wrote no picture%s%s",
                                   line[0] ? ": " : "", line);
            } else if (rename(tmp_png, png) != 0) {
                status =
                    cli_error(args, CLI_EXIT_FAILURE, "cannot write %s: %s", png, strerror(errno));
            }
        }
    }
    remove(tmp_png);
    remove(errpath);
    workdir_remove(&w);
    return status;
}
