/* Core: status messages, random streams, CSV input and output. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "core/linalg.h"
#include "scoreloss/csv.h"
#include "scoreloss/rng.h"
#include "scoreloss/status.h"
#include "testutil.h"

START_TEST(status_messages) {
    sl_error_clear();
    ck_assert_str_eq(sl_last_error(), "");
    ck_assert_int_eq(sl_error(SL_EINVAL, "bad %s %d", "thing", 3), SL_EINVAL);
    ck_assert_str_eq(sl_last_error(), "bad thing 3");
    sl_error_prefix(SL_EINVAL, "file.csv: ");
    ck_assert_str_eq(sl_last_error(), "file.csv: bad thing 3");
    sl_error(SL_EIO, "two\nlines");
    ck_assert_str_eq(sl_last_error(), "two lines");
    ck_assert_str_eq(sl_status_name(SL_OK), "ok");
    ck_assert_str_eq(sl_status_name(SL_EUNSUPPORTED), "unsupported");
}
END_TEST

START_TEST(rng_streams) {
    gsl_rng *a = sl_rng_alloc(42, 0), *b = sl_rng_alloc(42, 0), *c = sl_rng_alloc(42, 1),
            *e = sl_rng_alloc(43, 0);
    int same_c = 0, same_e = 0;
    for (int i = 0; i < 1000; ++i) {
        double x = gsl_rng_uniform(a), y = gsl_rng_uniform(b);
        ck_assert(x == y);
        ck_assert(x >= 0.0 && x < 1.0);
        same_c += x == gsl_rng_uniform(c);
        same_e += x == gsl_rng_uniform(e);
    }
    ck_assert_int_eq(same_c, 0);
    ck_assert_int_eq(same_e, 0);
    /* The uniform source feeds GSL's variates: a Gaussian mean and variance
     * on 10^5 draws within 5 standard errors. */
    double s = 0, s2 = 0;
    const int n = 100000;
    for (int i = 0; i < n; ++i) {
        double z = gsl_ran_gaussian(a, 1.0);
        s += z;
        s2 += z * z;
    }
    ck_assert_double_le(fabs(s / n), 5.0 / sqrt(n));
    ck_assert_double_le(fabs(s2 / n - 1.0), 5.0 * sqrt(2.0 / n));
    gsl_rng_free(a);
    gsl_rng_free(b);
    gsl_rng_free(c);
    gsl_rng_free(e);
    /* Distinct (seed, stream) pairs give distinct 64-bit seeds. */
    ck_assert(sl_rng_derive(1, 2) != sl_rng_derive(2, 1));
    ck_assert(sl_rng_derive(0, 0) != sl_rng_derive(0, 1));
}
END_TEST

/* ---- CSV ------------------------------------------------------------------ */

static int file_exists(const char *p) {
    FILE *f = fopen(p, "r");
    if (f) fclose(f);
    return f != NULL;
}

static char *slurp(const char *p) {
    FILE *f = fopen(p, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = 0;
    fclose(f);
    return b;
}

/* No temporary file may be left beside the outputs. */
static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) ++n;
    closedir(d);
    return n;
}

START_TEST(csv_round_trip_exact) {
    const char *path = sl_test_tmpfile("rt.csv");
    const size_t rows = 500, cols = 3;
    double *x = malloc(rows * cols * sizeof *x);
    gsl_rng *r = sl_rng_alloc(7, 0);
    for (size_t i = 0; i < rows * cols; ++i)
        x[i] = gsl_ran_gaussian(r, 1.0) * pow(10.0, (double)((int)(i % 41) - 20));
    x[0] = 0.0;
    x[1] = -3.0;
    x[2] = 1e-310; /* subnormal */
    gsl_rng_free(r);
    const char *names[] = {"x1", "x2", "y"};
    ck_assert_int_eq(sl_csv_write(path, "made by a test\nsecond line", rows, cols, names, x, cols),
                     SL_OK);
    sl_table *t;
    ck_assert_int_eq(sl_csv_read(path, &t), SL_OK);
    ck_assert_uint_eq(t->rows, rows);
    ck_assert_uint_eq(t->cols, cols);
    ck_assert_str_eq(t->names[2], "y");
    ck_assert_str_eq(t->comment, "made by a test\nsecond line");
    for (size_t i = 0; i < rows * cols; ++i) ck_assert(t->data[i] == x[i]);
    size_t d;
    double *X;
    ck_assert_int_eq(sl_table_prefixed(t, "x", &d, &X), SL_OK);
    ck_assert_uint_eq(d, 2);
    ck_assert(X[2 * 10 + 1] == x[10 * 3 + 1]);
    free(X);
    sl_table_free(t);
    free(x);
}
END_TEST

START_TEST(csv_tolerant_forms) {
    const char *path = sl_test_tmpfile("forms.csv");
    sl_test_write_text(
        path, "# a comment\r\n\r\n x1 , x2\r\n1, 2.5e0\r\n# mid comment\r\n\r\n-.5,+3\r\n  7 ,8  ");
    sl_table *t;
    ck_assert_int_eq(sl_csv_read(path, &t), SL_OK);
    ck_assert_uint_eq(t->rows, 3);
    ck_assert_str_eq(t->names[0], "x1");
    ck_assert_str_eq(t->names[1], "x2");
    double want[] = {1, 2.5, -0.5, 3, 7, 8};
    for (int i = 0; i < 6; ++i) ck_assert(t->data[i] == want[i]);
    sl_table_free(t);
}
END_TEST

typedef struct {
    const char *name;
    const char *text;  /* file contents */
    const char *needs; /* a substring the message must contain ("" = file path only) */
} bad_csv_case;

static const bad_csv_case bad_csv[] = {
    {"empty", "", "empty file"},
    {"comments_only", "# nothing\n\n", "empty file"},
    {"header_only", "x1,x2\n", "no data rows"},
    {"ragged_short", "x1,x2\n1,2\n3\n", "line 3: ragged row: 1 fields where the header has 2"},
    {"ragged_long", "x1,x2\n1,2,3\n", "line 2: ragged row: 3 fields"},
    {"not_number", "x1,x2\n1,2\n3,abc\n", "line 3, column 2 (x2): not a number 'abc'"},
    {"trailing_junk", "x1,x2\n1,2x\n", "line 2, column 2 (x2): not a number '2x'"},
    {"nan", "x1,x2\n1,NaN\n", "line 2, column 2 (x2): non-finite value 'NaN'"},
    {"inf", "x1,x2\n-inf,1\n", "line 2, column 1 (x1): non-finite value '-inf'"},
    {"overflow", "x1,x2\n1e400,1\n", "line 2, column 1 (x1): non-finite value"},
    {"hex", "x1,x2\n0x10,1\n", "not a number '0x10'"},
    {"empty_field", "x1,x2\n1,\n", "line 2, column 2 (x2): empty field"},
    {"numeric_header", "1,2\n3,4\n", "header row of column names is required"},
    {"duplicate_name", "x1,x1\n1,2\n", "duplicate column name 'x1'"},
    {"empty_name", "x1,,x3\n1,2,3\n", "column 2: empty column name"},
    {"binary", "x1,x2\n1,2\n\x01\x02\0\x03\n", "line 3: binary data"},
};

START_TEST(csv_bad_inputs) {
    const bad_csv_case *c = &bad_csv[_i];
    char fname[64];
    snprintf(fname, sizeof fname, "bad_%s.csv", c->name);
    const char *path = sl_test_tmpfile(fname);
    FILE *f = fopen(path, "wb");
    /* The binary case holds a NUL byte: write its full length. */
    size_t len = strcmp(c->name, "binary") == 0 ? 16 : strlen(c->text);
    fwrite(c->text, 1, len, f);
    fclose(f);
    sl_table *t = (sl_table *)1;
    sl_status st = sl_csv_read(path, &t);
    ck_assert_msg(st == SL_EFORMAT, "case %s: status %d (%s)", c->name, st, sl_last_error());
    ck_assert_ptr_null(t);
    ck_assert_msg(strstr(sl_last_error(), path) != NULL, "case %s: message lacks the path: %s",
                  c->name, sl_last_error());
    ck_assert_msg(strstr(sl_last_error(), c->needs) != NULL, "case %s: message '%s' lacks '%s'",
                  c->name, sl_last_error(), c->needs);
    ck_assert(strchr(sl_last_error(), '\n') == NULL);
}
END_TEST

START_TEST(csv_missing_things) {
    sl_table *t;
    ck_assert_int_eq(sl_csv_read("/nonexistent/file.csv", &t), SL_EIO);
    ck_assert(strstr(sl_last_error(), "/nonexistent/file.csv: cannot open") != NULL);
    ck_assert_int_eq(sl_csv_read("/tmp", &t), SL_EIO);
    ck_assert(strstr(sl_last_error(), "is a directory") != NULL);

    const char *path = sl_test_tmpfile("gap.csv");
    sl_test_write_text(path, "x1,x2,x4,y\n1,2,3,4\n");
    ck_assert_int_eq(sl_csv_read(path, &t), SL_OK);
    size_t d;
    double *X;
    ck_assert_int_eq(sl_table_prefixed(t, "x", &d, &X), SL_EFORMAT);
    ck_assert(strstr(sl_last_error(), "'x4' present but 'x3' missing") != NULL);
    ck_assert_int_eq(sl_table_prefixed(t, "w", &d, NULL), SL_EFORMAT);
    ck_assert(strstr(sl_last_error(), "missing columns w1") != NULL);
    const char *want[] = {"y", "z"};
    double out[2];
    ck_assert_int_eq(sl_table_extract(t, 2, want, out), SL_EFORMAT);
    ck_assert(strstr(sl_last_error(), "missing column 'z'") != NULL);
    ck_assert_int_eq(sl_table_extract(t, 1, want, out), SL_OK);
    ck_assert(out[0] == 4.0);
    sl_table_free(t);
}
END_TEST

START_TEST(csv_write_failures_leave_no_damage) {
    const char *path = sl_test_tmpfile("keep.csv");
    sl_test_write_text(path, "old,contents\n1,2\n");
    char *before = slurp(path);
    const char *names[] = {"a", "b"};
    double bad[] = {1.0, NAN};
    ck_assert_int_eq(sl_csv_write(path, NULL, 1, 2, names, bad, 2), SL_ENUMERIC);
    ck_assert(strstr(sl_last_error(), "non-finite") != NULL);
    char *after = slurp(path);
    ck_assert_str_eq(before, after);
    free(after);

    /* A streaming write that is aborted leaves the old file and no temporary. */
    sl_csv_writer *w;
    ck_assert_int_eq(sl_csv_writer_open(path, "c", 2, names, &w), SL_OK);
    double good[] = {3.0, 4.0};
    ck_assert_int_eq(sl_csv_writer_row(w, good), SL_OK);
    sl_csv_writer_abort(w);
    after = slurp(path);
    ck_assert_str_eq(before, after);
    free(after);
    free(before);

    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    ck_assert_int_eq(count_tmp_files(dir), 0);

    ck_assert_int_eq(sl_csv_write("/nonexistent/dir/out.csv", NULL, 1, 2, names, good, 2), SL_EIO);
    ck_assert(strstr(sl_last_error(), "/nonexistent/dir/out.csv") != NULL);
    ck_assert(!file_exists("/nonexistent/dir/out.csv"));

    /* A completed streaming write replaces the file. */
    ck_assert_int_eq(sl_csv_writer_open(path, NULL, 2, names, &w), SL_OK);
    ck_assert_int_eq(sl_csv_writer_row(w, good), SL_OK);
    ck_assert_int_eq(sl_csv_writer_close(w), SL_OK);
    char *now = slurp(path);
    ck_assert_str_eq(now, "a,b\n3,4\n");
    free(now);
    ck_assert_int_eq(count_tmp_files(dir), 0);
}
END_TEST

/* The symmetric eigen-solver on both of its paths (Jacobi up to 64, LAPACK's
 * dsyevr above): A V = V diag(w), V orthonormal, w descending, for a random
 * symmetric matrix with a repeated eigenvalue pair mixed in. */
START_TEST(sym_eigen_both_paths) {
    const size_t sizes[] = {5, 64, 65, 300};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; ++t) {
        const size_t d = sizes[t];
        double *A = malloc(d * d * sizeof *A), *V = malloc(d * d * sizeof *V);
        double *w = malloc(d * sizeof *w);
        ck_assert(A && V && w);
        gsl_rng *r = sl_rng_alloc(7, t);
        for (size_t i = 0; i < d; ++i)
            for (size_t j = 0; j <= i; ++j) A[i * d + j] = A[j * d + i] = gsl_ran_gaussian(r, 1.0);
        gsl_rng_free(r);
        ck_assert_int_eq(sl_sym_eigen(d, A, w, V), SL_OK);
        double scale = fabs(w[0]) + fabs(w[d - 1]), worst = 0.0, orth = 0.0;
        for (size_t i = 0; i + 1 < d; ++i) ck_assert(w[i] >= w[i + 1]);
        for (size_t i = 0; i < d; ++i)
            for (size_t c = 0; c < d; ++c) {
                double av = 0.0, vv = 0.0;
                for (size_t k = 0; k < d; ++k) {
                    av += A[i * d + k] * V[k * d + c];
                    vv += V[k * d + i] * V[k * d + c];
                }
                worst = fmax(worst, fabs(av - w[c] * V[i * d + c]));
                orth = fmax(orth, fabs(vv - (i == c ? 1.0 : 0.0)));
            }
        /* Backward-stable solvers: residuals of a few d eps |A|. */
        ck_assert_msg(worst < 1e-12 * scale * (double)d, "d = %zu: residual %g", d, worst);
        ck_assert_msg(orth < 1e-12 * (double)d, "d = %zu: V'V - I %g", d, orth);
        free(A);
        free(V);
        free(w);
    }
}
END_TEST

static Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, status_messages);
    tcase_add_test(tc, rng_streams);
    tcase_add_test(tc, csv_round_trip_exact);
    tcase_add_test(tc, csv_tolerant_forms);
    tcase_add_loop_test(tc, csv_bad_inputs, 0, (int)(sizeof bad_csv / sizeof bad_csv[0]));
    tcase_add_test(tc, csv_missing_things);
    tcase_add_test(tc, csv_write_failures_leave_no_damage);
    tcase_add_test(tc, sym_eigen_both_paths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return sl_test_run(core_suite());
}
