/* Memory limits (see include/scoreloss/memlimit.h). */
#include "scoreloss/memlimit.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Below this, the default (available-memory) mode does not read /proc: small
 * steps cannot be what pushes a machine over. */
#define SMALL_STEP ((size_t)16 << 20)

size_t sl_mem_mul(size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) return SIZE_MAX;
    return a * b;
}

size_t sl_mem_add(size_t a, size_t b) {
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t sl_mem_doubles(size_t count) {
    return sl_mem_mul(count, sizeof(double));
}

const char *sl_mem_format(size_t bytes, char *buf, size_t len) {
    const double b = (double)bytes;
    if (bytes == SIZE_MAX)
        snprintf(buf, len, "more than the address space");
    else if (b >= 1e12)
        snprintf(buf, len, "%.3g TB", b / 1e12);
    else if (b >= 1e9)
        snprintf(buf, len, "%.3g GB", b / 1e9);
    else if (b >= 1e6)
        snprintf(buf, len, "%.3g MB", b / 1e6);
    else if (b >= 1e3)
        snprintf(buf, len, "%.3g kB", b / 1e3);
    else
        snprintf(buf, len, "%zu bytes", bytes);
    return buf;
}

sl_status sl_mem_parse(const char *text, size_t *bytes) {
    if (!text || !*text) return sl_error(SL_EINVAL, "memory limit: empty size");
    if (strcasecmp(text, "none") == 0) {
        *bytes = 0;
        return SL_OK;
    }
    /* Plain decimal only: strtod would also take "inf", "nan", hex and exponents. */
    const char *p = text;
    while (isdigit((unsigned char)*p) || *p == '.') ++p;
    char *end = NULL;
    errno = 0;
    double v = p > text ? strtod(text, &end) : -1.0;
    int ok = p > text && end == p && !errno && isfinite(v) && v > 0;
    double scale = 1.0;
    if (ok) {
        switch (toupper((unsigned char)*p)) {
        case 'K':
            scale = 1024.0;
            ++p;
            break;
        case 'M':
            scale = 1048576.0;
            ++p;
            break;
        case 'G':
            scale = 1073741824.0;
            ++p;
            break;
        case 'T':
            scale = 1099511627776.0;
            ++p;
            break;
        default:
            break;
        }
        if (toupper((unsigned char)*p) == 'B') ++p;
        ok = *p == '\0';
    }
    if (!ok)
        return sl_error(SL_EINVAL,
                        "memory limit '%s': expected a positive size such as 2G, 512M or 1000000 "
                        "(or none)",
                        text);
    const double b = v * scale;
    if (!(b < 18446744073709551616.0) || (double)SIZE_MAX < b)
        return sl_error(SL_EINVAL, "memory limit '%s': too large", text);
    if (b < 1.0) return sl_error(SL_EINVAL, "memory limit '%s': less than one byte", text);
    *bytes = (size_t)b;
    return SL_OK;
}

/* A "Key:   N kB" line of /proc/meminfo, in bytes; 0 if absent. */
static size_t meminfo_field(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key), out = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) != 0 || line[klen] != ':') continue;
        unsigned long long kb = 0;
        if (sscanf(line + klen + 1, "%llu", &kb) == 1) out = sl_mem_mul((size_t)kb, 1024);
        break;
    }
    fclose(f);
    return out;
}

/* The process's resident memory in bytes (0 if unknown). */
static size_t resident_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size = 0, resident = 0;
    int ok = fscanf(f, "%llu %llu", &size, &resident) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? sl_mem_mul((size_t)resident, (size_t)page) : 0;
}

sl_status sl_mem_limit(size_t *bytes, const char **source) {
    const char *env = getenv(SL_MEM_LIMIT_ENV);
    if (env && *env) {
        if (source) *source = SL_MEM_LIMIT_ENV;
        sl_status st = sl_mem_parse(env, bytes);
        return st ? sl_error_prefix(st, "%s: ", SL_MEM_LIMIT_ENV) : SL_OK;
    }
    if (source) *source = "available memory";
    *bytes = meminfo_field("MemAvailable");
    return SL_OK;
}

sl_status sl_mem_check(size_t bytes, const char *what) {
    const char *env = getenv(SL_MEM_LIMIT_ENV);
    const int explicit_limit = env && *env;
    if (!explicit_limit && bytes < SMALL_STEP) return SL_OK;
    size_t limit = 0;
    const char *source = NULL;
    sl_status st = sl_mem_limit(&limit, &source);
    if (st) return st;
    if (limit == 0) return SL_OK; /* none set, or unknown */
    char need[48], lim[48], held[48];
    if (explicit_limit) {
        const size_t used = resident_bytes();
        if (sl_mem_add(used, bytes) <= limit) return SL_OK;
        return sl_error(SL_ENOMEM,
                        "%s needs %s, over the memory limit of %s set by %s (--mem-limit) with %s "
                        "already in use",
                        what, sl_mem_format(bytes, need, sizeof need),
                        sl_mem_format(limit, lim, sizeof lim), source,
                        sl_mem_format(used, held, sizeof held));
    }
    if (bytes <= limit) return SL_OK;
    return sl_error(SL_ENOMEM,
                    "%s needs %s, more than the %s available (MemAvailable); set %s or "
                    "--mem-limit to override",
                    what, sl_mem_format(bytes, need, sizeof need),
                    sl_mem_format(limit, lim, sizeof lim), SL_MEM_LIMIT_ENV);
}
