/* CSV throughput: writes and reads N rows x 10 columns of full-precision
 * doubles (default N = 10^6) and reports seconds and rows per second.
 * Target (issue 2): reading 10^6 x 10 in under 2 s on the 2-core machine.
 * Usage: bench_csv [ROWS] [PATH]; exit status 1 if the read target is missed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_randist.h>

#include "scoreloss/csv.h"
#include "scoreloss/rng.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t rows = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 1000000;
    const char *path = argc > 2 ? argv[2] : "bench_csv.tmp.csv";
    const size_t cols = 10;
    double *x = malloc(rows * cols * sizeof *x);
    if (!x) return 2;
    gsl_rng *r = sl_rng_alloc(1, 0);
    for (size_t i = 0; i < rows * cols; ++i) x[i] = gsl_ran_gaussian(r, 1.0);
    gsl_rng_free(r);
    char **names = sl_names_numbered("x", cols);

    double t0 = now();
    if (sl_csv_write(path, "bench", rows, cols, (const char *const *)names, x, cols)) {
        fprintf(stderr, "bench_csv: %s\n", sl_last_error());
        return 2;
    }
    double t1 = now();
    sl_table *t;
    if (sl_csv_read(path, &t)) {
        fprintf(stderr, "bench_csv: %s\n", sl_last_error());
        return 2;
    }
    double t2 = now();
    int exact = t->rows == rows && memcmp(t->data, x, rows * cols * sizeof *x) == 0;
    printf("csv write: %zu x %zu in %.3f s (%.0f rows/s)\n", rows, cols, t1 - t0,
           (double)rows / (t1 - t0));
    printf("csv read:  %zu x %zu in %.3f s (%.0f rows/s), round trip %s\n", rows, cols, t2 - t1,
           (double)rows / (t2 - t1), exact ? "exact" : "NOT EXACT");
    int ok = exact && (rows < 1000000 || t2 - t1 < 2.0);
    printf("target read 10^6 x 10 < 2 s: %s\n", ok ? "met" : "MISSED");
    sl_table_free(t);
    remove(path);
    free(names);
    free(x);
    return ok ? 0 : 1;
}
