/* libFuzzer target: the CSV reader (scoreloss/csv.h).
 *
 * Any bytes are a file. The reader must either fail with a message or return
 * a table whose shape is consistent; a table it accepts must survive being
 * written and read back value for value (the writer's 17 digits). */
#include <math.h>

#include "fuzz_common.h"
#include "scoreloss/csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char in[512], out[512];
    fuzz_path(in, sizeof in, "csv_in");
    fuzz_path(out, sizeof out, "csv_out");
    if (fuzz_write(in, data, size) != 0) return 0;
    sl_table *t = NULL;
    sl_status st = sl_csv_read(in, &t);
    if (st != SL_OK) {
        FUZZ_ASSERT(t == NULL, "a failed read returns no table");
        FUZZ_ASSERT(*sl_last_error() != '\0', "a failed read leaves a message");
        FUZZ_ASSERT(strchr(sl_last_error(), '\n') == NULL, "the message is one line");
        unlink(in);
        return 0;
    }
    FUZZ_ASSERT(t->rows >= 1 && t->cols >= 1, "a table has rows and columns");
    for (size_t i = 0; i < t->rows * t->cols; ++i)
        FUZZ_ASSERT(isfinite(t->data[i]), "every value is finite");
    size_t d = 0;
    double *X = NULL;
    if (sl_table_prefixed(t, "x", &d, &X) == SL_OK) {
        FUZZ_ASSERT(d >= 1 && d <= t->cols, "x1..xd are columns of the table");
        free(X);
    }
    /* Round trip, when the names read back as written: no comma or newline
     * can be in a name read from a file, but a name may start with '#' (a
     * comment when it comes first) or end in a '\r' (dropped before '\n'). */
    int writable = 1;
    for (size_t j = 0; j < t->cols; ++j)
        for (const char *c = t->names[j]; *c; ++c)
            if ((unsigned char)*c < 0x20 || (c == t->names[j] && *c == '#')) writable = 0;
    if (writable && sl_csv_write(out, t->comment, t->rows, t->cols, (const char *const *)t->names,
                                 t->data, t->cols) == SL_OK) {
        sl_table *u = NULL;
        st = sl_csv_read(out, &u);
        FUZZ_ASSERT(st == SL_OK, "a written table reads back");
        FUZZ_ASSERT(u->rows == t->rows && u->cols == t->cols, "same shape after a round trip");
        for (size_t j = 0; j < t->cols; ++j)
            FUZZ_ASSERT(strcmp(u->names[j], t->names[j]) == 0, "same names after a round trip");
        /* Equal as numbers: -0 is written as 0. */
        for (size_t i = 0; i < t->rows * t->cols; ++i)
            FUZZ_ASSERT(u->data[i] == t->data[i], "same values after a round trip");
        sl_table_free(u);
        unlink(out);
    }
    sl_table_free(t);
    unlink(in);
    return 0;
}
