/* Runs a fuzz target's entry point on files, without libFuzzer: each
 * argument is a file or a directory of files (the seed corpus and the
 * regression inputs under tests/fuzz_regress/). A crash or a broken property
 * aborts, failing the test; otherwise prints how many inputs ran. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    size_t ran = 0;
    int bad = 0;
    for (int i = 1; i < argc; ++i) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0) {
            fprintf(stderr, "%s: not found\n", argv[i]);
            bad = 1;
            continue;
        }
        if (!S_ISDIR(sb.st_mode)) {
            bad |= run_file(argv[i]) != 0;
            ran += 1;
            continue;
        }
        DIR *dir = opendir(argv[i]);
        if (!dir) {
            bad = 1;
            continue;
        }
        /* In name order, so a failure is reproducible by position. */
        char **names = NULL;
        size_t count = 0;
        for (struct dirent *e; (e = readdir(dir));) {
            if (e->d_name[0] == '.') continue;
            char **nn = realloc(names, (count + 1) * sizeof *names);
            if (!nn) break;
            names = nn;
            size_t len = strlen(argv[i]) + strlen(e->d_name) + 2;
            names[count] = malloc(len);
            if (!names[count]) break;
            snprintf(names[count], len, "%s/%s", argv[i], e->d_name);
            ++count;
        }
        closedir(dir);
        if (count) qsort(names, count, sizeof *names, cmp_names);
        for (size_t k = 0; k < count; ++k) {
            bad |= run_file(names[k]) != 0;
            ++ran;
            free(names[k]);
        }
        free(names);
    }
    printf("%zu inputs ran\n", ran);
    return bad ? 1 : 0;
}
