/* Helpers shared by the check suites. */
#ifndef SL_TESTUTIL_H
#define SL_TESTUTIL_H

#include <stddef.h>

#include <check.h>

/* Runs one suite with CK_NORMAL output and returns the process exit code. */
int sl_test_run(Suite *s);

/* A fresh path inside a per-process temporary directory (created on first
 * use, removed with its contents at exit). */
const char *sl_test_tmpfile(const char *name);

/* Writes text to path (for bad-input fixtures). */
void sl_test_write_text(const char *path, const char *text);

#endif
