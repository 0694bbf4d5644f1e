/* Shared by the fuzz targets: a scratch file per process for entry points
 * that read paths, and an abort that names the broken property. */
#ifndef SL_FUZZ_COMMON_H
#define SL_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A path in the temporary directory unique to this process and tag. */
static inline const char *fuzz_path(char *buf, size_t len, const char *tag) {
    const char *dir = getenv("TMPDIR");
    snprintf(buf, len, "%s/sl_fuzz_%s_%ld.csv", dir && *dir ? dir : "/tmp", tag, (long)getpid());
    return buf;
}

/* Writes size bytes to path; 0 on success. */
static inline int fuzz_write(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t put = size ? fwrite(data, 1, size, f) : 0;
    return fclose(f) != 0 || put != size ? -1 : 0;
}

#define FUZZ_ASSERT(cond, what)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz property broken: %s (%s:%d)\n", what, __FILE__, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
