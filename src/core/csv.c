/* CSV reading and writing (see include/scoreloss/csv.h).
 *
 * The reader takes the whole file into memory, finds the lines in one pass
 * and converts the fields of all rows in parallel; the first error in file
 * order is the one reported, so messages do not depend on the thread count. */
#include "scoreloss/csv.h"
#include "scoreloss/memlimit.h"

#include <ctype.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static char *dup_string(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void sl_table_free(sl_table *t) {
    if (!t) return;
    if (t->names)
        for (size_t j = 0; j < t->cols; ++j) free(t->names[j]);
    free(t->names);
    free(t->data);
    free(t->comment);
    free(t->path);
    free(t);
}

/* ---- reading the bytes ---------------------------------------------------- */

static sl_status read_all(const char *path, char **buf, size_t *len) {
    int is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) return sl_error(SL_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (!is_stdin && fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return sl_error(SL_EIO, "%s: is a directory, not a CSV file", path);
    }
    size_t cap = 1 << 16, n = 0;
    if (!is_stdin && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
        cap = (size_t)sb.st_size + 1;
        /* The text; the line table and the values are checked once counted. */
        sl_status st = sl_mem_check(cap, path);
        if (st) {
            fclose(f);
            return sl_error_prefix(st, "reading ");
        }
    }
    char *b = malloc(cap + 1);
    if (!b) {
        if (!is_stdin) fclose(f);
        return sl_error(SL_ENOMEM, "%s: out of memory reading %zu bytes", path, cap);
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2;
            char *nb = realloc(b, ncap + 1);
            if (!nb) {
                free(b);
                if (!is_stdin) fclose(f);
                return sl_error(SL_ENOMEM, "%s: out of memory reading the file", path);
            }
            b = nb;
            cap = ncap;
        }
        size_t got = fread(b + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    int err = ferror(f);
    if (!is_stdin) fclose(f);
    if (err) {
        free(b);
        return sl_error(SL_EIO, "%s: read error", path);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return SL_OK;
}

/* ---- parsing ---------------------------------------------------------------- */

static int is_blank(char c) {
    return c == ' ' || c == '\t';
}

/* Trimmed copy of [s, e) shortened for messages. */
static void field_excerpt(const char *s, const char *e, char *out, size_t outlen) {
    while (s < e && is_blank(*s)) ++s;
    while (e > s && is_blank(e[-1])) --e;
    size_t n = (size_t)(e - s);
    if (n + 1 > outlen) {
        size_t keep = outlen > 4 ? outlen - 4 : 0;
        memcpy(out, s, keep);
        memcpy(out + keep, "...", 4);
        return;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    for (char *p = out; *p; ++p)
        if (!isprint((unsigned char)*p)) *p = '?';
}

/* Converts one field [s, e). Returns 0 on success, else an error kind. */
enum { FIELD_OK, FIELD_EMPTY, FIELD_NOTNUM, FIELD_NONFINITE };

static int parse_field(const char *s, const char *e, double *out) {
    while (s < e && is_blank(*s)) ++s;
    while (e > s && is_blank(e[-1])) --e;
    if (s == e) return FIELD_EMPTY;
    /* strtod would accept hexadecimal floats, "nan", "inf" and leading
     * whitespace: only plain decimal numbers are data here. */
    const char *p = s;
    if (*p == '+' || *p == '-') ++p;
    if (p < e && !(isdigit((unsigned char)*p) || *p == '.')) {
        if ((e - p == 3 && strncasecmp(p, "nan", 3) == 0) ||
            (e - p >= 3 && strncasecmp(p, "inf", 3) == 0))
            return FIELD_NONFINITE;
        return FIELD_NOTNUM;
    }
    if (p + 1 < e && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) return FIELD_NOTNUM;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != e) return FIELD_NOTNUM;
    if (!isfinite(v)) return FIELD_NONFINITE;
    *out = v;
    return FIELD_OK;
}

typedef struct {
    size_t start, end; /* byte offsets of the line, without its newline */
    size_t lineno;     /* 1-based line number in the file */
} line_ref;

/* Splits buf into lines, dropping a trailing \r. */
static sl_status collect_lines(const char *path, const char *buf, size_t len, line_ref **lines,
                               size_t *nlines) {
    /* Counted first, so the table is allocated once and checked against the
     * memory limit: short lines make it larger than the text. */
    size_t cap = 1, n = 0;
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; ++p) ++cap;
    sl_status st = sl_mem_check(sl_mem_mul(cap, sizeof(line_ref)), "the line table");
    if (st) return sl_error_prefix(st, "%s: ", path);
    line_ref *L = malloc(cap * sizeof *L);
    if (!L) return sl_error(SL_ENOMEM, "%s: out of memory", path);
    size_t pos = 0, lineno = 0;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        ++lineno;
        size_t e = end;
        if (e > pos && buf[e - 1] == '\r') --e;
        if (n == cap) {
            cap *= 2;
            line_ref *nL = realloc(L, cap * sizeof *L);
            if (!nL) {
                free(L);
                return sl_error(SL_ENOMEM, "%s: out of memory", path);
            }
            L = nL;
        }
        L[n].start = pos;
        L[n].end = e;
        L[n].lineno = lineno;
        ++n;
        pos = end + 1;
    }
    *lines = L;
    *nlines = n;
    return SL_OK;
}

static int line_is_skipped(const char *buf, const line_ref *l, int *is_comment) {
    size_t i = l->start;
    while (i < l->end && is_blank(buf[i])) ++i;
    *is_comment = i < l->end && buf[i] == '#';
    return i == l->end || *is_comment;
}

/* Error found while converting a row: kept per row so the first in file order wins. */
typedef struct {
    size_t row;
    int kind;
    size_t col;   /* 1-based field number */
    size_t found; /* for ragged rows: fields found */
} row_error;

static void parse_row(const char *buf, const line_ref *l, size_t cols, double *dst, row_error *err,
                      size_t row) {
    const char *s = buf + l->start, *end = buf + l->end;
    size_t j = 0;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *fe = comma ? comma : end;
        if (j < cols) {
            int k = parse_field(s, fe, &dst[j]);
            if (k != FIELD_OK) {
                err->row = row;
                err->kind = k;
                err->col = j + 1;
                return;
            }
        }
        ++j;
        if (!comma) break;
        s = comma + 1;
    }
    if (j != cols) {
        err->row = row;
        err->kind = -1;
        err->col = j < cols ? j + 1 : cols + 1;
        err->found = j;
    }
}

static sl_status parse_header(sl_table *t, const char *buf, const line_ref *l) {
    const char *path = t->path;
    const char *s = buf + l->start, *end = buf + l->end;
    size_t n = 1;
    for (const char *p = s; p < end; ++p) n += *p == ',';
    t->names = calloc(n, sizeof *t->names);
    if (!t->names) return sl_error(SL_ENOMEM, "%s: out of memory", path);
    size_t numeric = 0;
    for (size_t j = 0; j < n; ++j) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *fe = comma ? comma : end;
        const char *a = s, *b = fe;
        while (a < b && is_blank(*a)) ++a;
        while (b > a && is_blank(b[-1])) --b;
        if (a == b) {
            t->cols = j;
            return sl_error(SL_EFORMAT, "%s line %zu, column %zu: empty column name in the header",
                            path, l->lineno, j + 1);
        }
        t->names[j] = malloc((size_t)(b - a) + 1);
        if (!t->names[j]) {
            t->cols = j;
            return sl_error(SL_ENOMEM, "%s: out of memory", path);
        }
        memcpy(t->names[j], a, (size_t)(b - a));
        t->names[j][b - a] = '\0';
        double dummy;
        if (parse_field(a, b, &dummy) == FIELD_OK) ++numeric;
        for (size_t i = 0; i < j; ++i)
            if (strcmp(t->names[i], t->names[j]) == 0) {
                t->cols = j + 1;
                return sl_error(SL_EFORMAT, "%s line %zu, column %zu: duplicate column name '%s'",
                                path, l->lineno, j + 1, t->names[j]);
            }
        s = fe + 1;
    }
    t->cols = n;
    if (numeric == n)
        return sl_error(SL_EFORMAT,
                        "%s line %zu: the first row is numbers; a header row of column names is "
                        "required",
                        path, l->lineno);
    return SL_OK;
}

static sl_status collect_comment(sl_table *t, const char *buf, const line_ref *L, size_t upto) {
    size_t total = 0;
    int dummy;
    for (size_t i = 0; i < upto; ++i)
        if (line_is_skipped(buf, &L[i], &dummy) && dummy) total += L[i].end - L[i].start + 1;
    if (total == 0) return SL_OK;
    t->comment = malloc(total + 1);
    if (!t->comment) return sl_error(SL_ENOMEM, "%s: out of memory", t->path);
    char *w = t->comment;
    for (size_t i = 0; i < upto; ++i) {
        if (!(line_is_skipped(buf, &L[i], &dummy) && dummy)) continue;
        const char *s = buf + L[i].start, *e = buf + L[i].end;
        while (s < e && is_blank(*s)) ++s;
        ++s; /* the '#' */
        if (s < e && *s == ' ') ++s;
        if (w != t->comment) *w++ = '\n';
        memcpy(w, s, (size_t)(e - s));
        w += e - s;
    }
    *w = '\0';
    return SL_OK;
}

sl_status sl_csv_read(const char *path, sl_table **out) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    sl_status st = read_all(path, &buf, &len);
    if (st) return st;
    const char *nul = memchr(buf, '\0', len);
    if (nul) {
        size_t lineno = 1;
        for (const char *p = buf; p < nul; ++p) lineno += *p == '\n';
        free(buf);
        return sl_error(SL_EFORMAT, "%s line %zu: binary data (NUL byte); expected a CSV text file",
                        path, lineno);
    }
    line_ref *L = NULL;
    size_t nl = 0;
    st = collect_lines(path, buf, len, &L, &nl);
    if (st) {
        free(buf);
        return st;
    }
    sl_table *t = calloc(1, sizeof *t);
    if (!t || !(t->path = dup_string(path))) {
        free(t);
        free(buf);
        free(L);
        return sl_error(SL_ENOMEM, "%s: out of memory", path);
    }
    /* Header: the first line that is neither blank nor a comment. */
    size_t h = 0;
    int is_comment;
    while (h < nl && line_is_skipped(buf, &L[h], &is_comment)) ++h;
    if (h == nl) {
        st = sl_error(SL_EFORMAT, "%s: empty file (no header row)", path);
        goto fail;
    }
    if ((st = collect_comment(t, buf, L, h)) || (st = parse_header(t, buf, &L[h]))) goto fail;
    /* Data lines: compact the rows in place. */
    size_t rows = 0;
    for (size_t i = h + 1; i < nl; ++i)
        if (!line_is_skipped(buf, &L[i], &is_comment)) L[rows++] = L[i];
    if (rows == 0) {
        st = sl_error(SL_EFORMAT, "%s: no data rows after the header", path);
        goto fail;
    }
    const size_t cols = t->cols;
    if (rows > SIZE_MAX / sizeof(double) / cols) {
        st = sl_error(SL_ENOMEM, "%s: too large", path);
        goto fail;
    }
    if ((st = sl_mem_check(sl_mem_doubles(rows * cols), "the values"))) {
        sl_error_prefix(st, "%s: %zu x %zu: ", path, rows, cols);
        goto fail;
    }
    t->data = malloc(rows * cols * sizeof *t->data);
    if (!t->data) {
        st = sl_error(SL_ENOMEM, "%s: out of memory for %zu x %zu values", path, rows, cols);
        goto fail;
    }
    t->rows = rows;
    row_error first = {SIZE_MAX, 0, 0, 0};
#ifdef _OPENMP
#pragma omp parallel
#endif
    {
        row_error mine = {SIZE_MAX, 0, 0, 0};
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (size_t r = 0; r < rows; ++r) {
            if (mine.row != SIZE_MAX) continue;
            parse_row(buf, &L[r], cols, t->data + r * cols, &mine, r);
        }
#ifdef _OPENMP
#pragma omp critical(sl_csv_first_error)
#endif
        if (mine.row < first.row) first = mine;
    }
    if (first.row != SIZE_MAX) {
        const line_ref *l = &L[first.row];
        if (first.kind < 0) {
            st =
                sl_error(SL_EFORMAT, "%s line %zu: ragged row: %zu fields where the header has %zu",
                         path, l->lineno, first.found, cols);
        } else {
            /* Find the field again for the message. */
            const char *s = buf + l->start, *end = buf + l->end;
            for (size_t j = 1; j < first.col; ++j)
                s = (const char *)memchr(s, ',', (size_t)(end - s)) + 1;
            const char *fe = memchr(s, ',', (size_t)(end - s));
            char ex[48];
            field_excerpt(s, fe ? fe : end, ex, sizeof ex);
            const char *why = first.kind == FIELD_EMPTY       ? "empty field"
                              : first.kind == FIELD_NONFINITE ? "non-finite value"
                                                              : "not a number";
            st = sl_error(SL_EFORMAT, "%s line %zu, column %zu (%s): %s '%s'", path, l->lineno,
                          first.col, t->names[first.col - 1], why, ex);
        }
        goto fail;
    }
    free(buf);
    free(L);
    *out = t;
    return SL_OK;
fail:
    free(buf);
    free(L);
    sl_table_free(t);
    return st;
}

long sl_table_find(const sl_table *t, const char *name) {
    for (size_t j = 0; j < t->cols; ++j)
        if (strcmp(t->names[j], name) == 0) return (long)j;
    return -1;
}

sl_status sl_table_extract(const sl_table *t, size_t ncols, const char *const *names, double *out) {
    long *idx = malloc((ncols ? ncols : 1) * sizeof *idx);
    if (!idx) return sl_error(SL_ENOMEM, "out of memory");
    for (size_t c = 0; c < ncols; ++c) {
        idx[c] = sl_table_find(t, names[c]);
        if (idx[c] < 0) {
            free(idx);
            return sl_error(SL_EFORMAT, "%s: missing column '%s'", t->path, names[c]);
        }
    }
    for (size_t r = 0; r < t->rows; ++r)
        for (size_t c = 0; c < ncols; ++c)
            out[r * ncols + c] = t->data[r * t->cols + (size_t)idx[c]];
    free(idx);
    return SL_OK;
}

sl_status sl_table_prefixed(const sl_table *t, const char *prefix, size_t *count, double **out) {
    char name[256];
    size_t n = 0;
    for (;;) {
        snprintf(name, sizeof name, "%s%zu", prefix, n + 1);
        if (sl_table_find(t, name) < 0) break;
        ++n;
    }
    if (n == 0)
        return sl_error(SL_EFORMAT, "%s: missing columns %s1, %s2, ... (found none)", t->path,
                        prefix, prefix);
    /* A gap (x1, x2, x4) is an error rather than a silently shorter input. */
    for (size_t j = 0; j < t->cols; ++j) {
        const char *nm = t->names[j];
        size_t pl = strlen(prefix);
        if (strncmp(nm, prefix, pl) != 0 || !nm[pl]) continue;
        char *end;
        unsigned long v = strtoul(nm + pl, &end, 10);
        if (*end == '\0' && isdigit((unsigned char)nm[pl]) && v > n)
            return sl_error(SL_EFORMAT, "%s: column '%s' present but '%s%zu' missing", t->path, nm,
                            prefix, n + 1);
    }
    *count = n;
    if (!out) return SL_OK;
    char **names = sl_names_numbered(prefix, n);
    double *X = malloc(t->rows * n * sizeof *X);
    if (!names || !X) {
        free(names);
        free(X);
        return sl_error(SL_ENOMEM, "%s: out of memory", t->path);
    }
    sl_status st = sl_table_extract(t, n, (const char *const *)names, X);
    free(names);
    if (st) {
        free(X);
        return st;
    }
    *out = X;
    return SL_OK;
}

char **sl_names_numbered(const char *prefix, size_t n) {
    size_t pl = strlen(prefix);
    size_t each = pl + 21;
    char **names = malloc(n * sizeof *names + n * each + 1);
    if (!names) return NULL;
    char *pool = (char *)(names + n);
    for (size_t i = 0; i < n; ++i) {
        names[i] = pool + i * each;
        snprintf(names[i], each, "%s%zu", prefix, i + 1);
    }
    return names;
}

/* ---- writing ------------------------------------------------------------------- */

struct sl_csv_writer {
    FILE *f;
    char *path;
    char *tmp; /* NULL when writing to standard output */
    size_t cols;
    int failed;
};

static sl_status open_temp(const char *path, char **tmp_out, FILE **f_out) {
    size_t n = strlen(path) + 64;
    char *tmp = malloc(n);
    if (!tmp) return sl_error(SL_ENOMEM, "out of memory");
    /* A fresh name beside the target, created exclusively so the umask applies. */
    uint64_t salt = (uint64_t)(uintptr_t)&n ^ (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    for (int attempt = 0; attempt < 100; ++attempt) {
        salt = salt * 6364136223846793005ULL + 1442695040888963407ULL;
        snprintf(tmp, n, "%s.tmp.%d.%08x", path, (int)getpid(), (unsigned)(salt >> 32));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0) {
            FILE *f = fdopen(fd, "w");
            if (!f) {
                close(fd);
                unlink(tmp);
                free(tmp);
                return sl_error(SL_EIO, "%s: cannot open for writing", path);
            }
            *tmp_out = tmp;
            *f_out = f;
            return SL_OK;
        }
        if (errno != EEXIST) {
            int e = errno;
            free(tmp);
            return sl_error(SL_EIO, "%s: cannot write: %s", path, strerror(e));
        }
    }
    free(tmp);
    return sl_error(SL_EIO, "%s: cannot create a temporary file beside it", path);
}

sl_status sl_csv_writer_open(const char *path, const char *comment, size_t cols,
                             const char *const *names, sl_csv_writer **out) {
    *out = NULL;
    if (cols == 0) return sl_error(SL_EINVAL, "%s: no columns to write", path);
    sl_csv_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = dup_string(path))) {
        free(w);
        return sl_error(SL_ENOMEM, "out of memory");
    }
    w->cols = cols;
    if (strcmp(path, "-") == 0) {
        w->f = stdout;
    } else {
        sl_status st = open_temp(path, &w->tmp, &w->f);
        if (st) {
            free(w->path);
            free(w);
            return st;
        }
    }
    if (comment && *comment) {
        const char *s = comment;
        for (;;) {
            const char *nl = strchr(s, '\n');
            size_t n = nl ? (size_t)(nl - s) : strlen(s);
            fprintf(w->f, "# %.*s\n", (int)n, s);
            if (!nl) break;
            s = nl + 1;
        }
    }
    for (size_t j = 0; j < cols; ++j) {
        if (strchr(names[j], ',') || strchr(names[j], '\n')) {
            sl_csv_writer_abort(w);
            return sl_error(SL_EINVAL, "%s: column name '%s' contains a comma or newline", path,
                            names[j]);
        }
        fprintf(w->f, "%s%s", j ? "," : "", names[j]);
    }
    fputc('\n', w->f);
    *out = w;
    return SL_OK;
}

/* Formats one row into buf (which must hold cols * 26 + 2 bytes); returns length. */
static size_t format_row(const double *row, size_t cols, char *buf) {
    size_t n = 0;
    for (size_t j = 0; j < cols; ++j) {
        if (j) buf[n++] = ',';
        double v = row[j];
        /* Exact small integers print as such; everything else with 17
         * significant digits, which reads back to the same double. */
        if (fabs(v) < 1e15 && v == (double)(long long)v) /* range first: the cast is UB beyond */
            n += (size_t)sprintf(buf + n, "%lld", (long long)v);
        else
            n += (size_t)sprintf(buf + n, "%.17g", v);
    }
    buf[n++] = '\n';
    return n;
}

sl_status sl_csv_writer_row(sl_csv_writer *w, const double *row) {
    for (size_t j = 0; j < w->cols; ++j)
        if (!isfinite(row[j])) {
            w->failed = 1;
            return sl_error(SL_ENUMERIC, "%s: refusing to write a non-finite value (column %zu)",
                            w->path, j + 1);
        }
    char stackbuf[4096];
    char *buf = w->cols * 26 + 2 <= sizeof stackbuf ? stackbuf : malloc(w->cols * 26 + 2);
    if (!buf) return sl_error(SL_ENOMEM, "out of memory");
    size_t n = format_row(row, w->cols, buf);
    size_t put = fwrite(buf, 1, n, w->f);
    if (buf != stackbuf) free(buf);
    if (put != n) {
        w->failed = 1;
        return sl_error(SL_EIO, "%s: write failed: %s", w->path, strerror(errno));
    }
    return SL_OK;
}

void sl_csv_writer_abort(sl_csv_writer *w) {
    if (!w) return;
    if (w->tmp) {
        fclose(w->f);
        unlink(w->tmp);
        free(w->tmp);
    } else {
        fflush(w->f);
    }
    free(w->path);
    free(w);
}

sl_status sl_csv_writer_close(sl_csv_writer *w) {
    if (w->failed) {
        sl_csv_writer_abort(w);
        return sl_error(SL_EIO, "output not written because of an earlier error");
    }
    sl_status st = SL_OK;
    if (!w->tmp) {
        if (fflush(w->f) != 0) st = sl_error(SL_EIO, "standard output: write failed");
        free(w->path);
        free(w);
        return st;
    }
    int bad = fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0;
    int e = errno;
    if (fclose(w->f) != 0) bad = 1;
    if (bad) {
        unlink(w->tmp);
        st = sl_error(SL_EIO, "%s: write failed: %s", w->path, strerror(e));
    } else if (rename(w->tmp, w->path) != 0) {
        e = errno;
        unlink(w->tmp);
        st = sl_error(SL_EIO, "%s: cannot move the output into place: %s", w->path, strerror(e));
    }
    free(w->tmp);
    free(w->path);
    free(w);
    return st;
}

sl_status sl_csv_writer_rows(sl_csv_writer *w, size_t rows, const double *data, size_t ld) {
    const size_t cols = w->cols;
    for (size_t r = 0; r < rows; ++r)
        for (size_t j = 0; j < cols; ++j)
            if (!isfinite(data[r * ld + j])) {
                w->failed = 1;
                return sl_error(SL_ENUMERIC,
                                "%s: refusing to write a non-finite value (row %zu, column %zu)",
                                w->path, r + 1, j + 1);
            }
    /* Formatting dominates the cost: format blocks of rows in parallel,
     * write them in order. */
    const size_t block = 4096, each = cols * 26 + 2;
    char *buf = malloc(block * each);
    size_t *lens = malloc(block * sizeof *lens);
    if (!buf || !lens) {
        free(buf);
        free(lens);
        return sl_error(SL_ENOMEM, "%s: out of memory", w->path);
    }
    sl_status st = SL_OK;
    for (size_t r0 = 0; r0 < rows && st == SL_OK; r0 += block) {
        size_t nb = rows - r0 < block ? rows - r0 : block;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nb * cols > 2048)
#endif
        for (size_t i = 0; i < nb; ++i)
            lens[i] = format_row(data + (r0 + i) * ld, cols, buf + i * each);
        for (size_t i = 0; i < nb; ++i)
            if (fwrite(buf + i * each, 1, lens[i], w->f) != lens[i]) {
                w->failed = 1;
                st = sl_error(SL_EIO, "%s: write failed: %s", w->path, strerror(errno));
                break;
            }
    }
    free(buf);
    free(lens);
    return st;
}

sl_status sl_csv_write(const char *path, const char *comment, size_t rows, size_t cols,
                       const char *const *names, const double *data, size_t ld) {
    sl_csv_writer *w;
    sl_status st = sl_csv_writer_open(path, comment, cols, names, &w);
    if (st) return st;
    st = sl_csv_writer_rows(w, rows, data, ld);
    if (st) {
        sl_csv_writer_abort(w);
        return st;
    }
    return sl_csv_writer_close(w);
}
