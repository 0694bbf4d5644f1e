/* CSV input and output.
 *
 * Files have a header row of column names, then rows of numbers separated by
 * commas. Lines starting with '#' are comments (the writer uses them to record
 * parameters); blank lines are skipped. Every field must be a finite number:
 * ragged rows, non-numeric fields, NaN or Inf, empty files and missing
 * columns are errors whose message names the file, line and column. Writers
 * go to a temporary file in the target's directory that is renamed into place
 * only when complete, so a failed write never leaves a damaged file. */
#ifndef SCORELOSS_CSV_H
#define SCORELOSS_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sl_table {
    size_t rows, cols;
    char **names;  /* cols column names */
    double *data;  /* rows x cols, row-major */
    char *comment; /* the '#' lines before the header, joined by '\n' (without '#'), or NULL */
    char *path;    /* the file it came from, for messages */
} sl_table;

/* Reads a whole CSV file ("-" reads standard input). */
sl_status sl_csv_read(const char *path, sl_table **out);
void sl_table_free(sl_table *t);

/* Index of the column called name, or -1. */
long sl_table_find(const sl_table *t, const char *name);

/* Copies the named columns, in the order given, into out (rows x ncols,
 * row-major). A missing column is an error naming the file and the column. */
sl_status sl_table_extract(const sl_table *t, size_t ncols, const char *const *names, double *out);

/* The columns prefix1, prefix2, ... (e.g. x1..xd): their number in *count
 * (counting from 1 while the names exist, at least 1 or it is an error) and,
 * if out is not NULL, a new rows x count array in *out (free with free()). */
sl_status sl_table_prefixed(const sl_table *t, const char *prefix, size_t *count, double **out);

/* Writes rows x cols numbers (row-major, leading dimension ld >= cols) under
 * a header of names, after the optional comment lines (each line of comment
 * is written behind "# "). Numbers are written with 17 significant digits so
 * they read back exactly. The file appears only when complete. */
sl_status sl_csv_write(const char *path, const char *comment, size_t rows, size_t cols,
                       const char *const *names, const double *data, size_t ld);

/* Streaming writer for outputs produced piece by piece. */
typedef struct sl_csv_writer sl_csv_writer;
sl_status sl_csv_writer_open(const char *path, const char *comment, size_t cols,
                             const char *const *names, sl_csv_writer **out);
sl_status sl_csv_writer_row(sl_csv_writer *w, const double *row);
/* Appends rows x cols numbers (row-major, leading dimension ld >= cols):
 * blocks of rows are formatted in parallel and written in order. */
sl_status sl_csv_writer_rows(sl_csv_writer *w, size_t rows, const double *data, size_t ld);
/* Flushes, checks for errors and renames the file into place. */
sl_status sl_csv_writer_close(sl_csv_writer *w);
/* Drops the temporary file; the target is left as it was. Accepts NULL. */
void sl_csv_writer_abort(sl_csv_writer *w);

/* Column names "prefix1".."prefixN" in one allocation (free with free()). */
char **sl_names_numbered(const char *prefix, size_t n);

#ifdef __cplusplus
}
#endif
#endif
