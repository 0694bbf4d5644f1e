/* Memory limits: refuse a job that would not fit, before allocating it.
 *
 * A large step (reading a file, estimating scores, forming moments) first
 * estimates the bytes it is about to allocate and asks sl_mem_check whether
 * they fit. A refusal is SL_ENOMEM with a one-line message giving the need,
 * the limit and where the limit came from, instead of the process being
 * killed by the kernel half-way (Linux overcommits: malloc succeeds and the
 * out-of-memory killer strikes later, when the pages are touched).
 *
 * The limit:
 *   - SCORELOSS_MEM_LIMIT in the environment (a size: 2G, 512M, 1.5G,
 *     64k, or plain bytes; suffixes are powers of 1024, case-insensitive, an
 *     optional trailing B is allowed; "none" turns the check off). Then the
 *     process's resident memory plus the new bytes must stay within it, so
 *     the limit bounds the whole job. The command line's --mem-limit sets it.
 *   - otherwise MemAvailable from /proc/meminfo: the new bytes must fit in
 *     what the machine has free now (what the job already holds is already
 *     subtracted there). Steps below 16 MiB are not checked in this mode.
 *   - where neither is known (no /proc), every request passes.
 *
 * The state read is the environment and /proc; nothing is cached, so the
 * functions are reentrant. */
#ifndef SCORELOSS_MEMLIMIT_H
#define SCORELOSS_MEMLIMIT_H

#include <stddef.h>

#include "scoreloss/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The environment variable holding an explicit limit. */
#define SL_MEM_LIMIT_ENV "SCORELOSS_MEM_LIMIT"

/* Parses a size ("2G", "512M", "1.5g", "64k", "1000000", "3GB"; "none" = no
 * limit, returned as 0). SL_EINVAL with a message quoting the text when it is
 * not a size or does not fit a size_t. */
sl_status sl_mem_parse(const char *text, size_t *bytes);

/* Overflow-safe arithmetic for estimates: saturate at SIZE_MAX, which no
 * limit admits. */
size_t sl_mem_mul(size_t a, size_t b);
size_t sl_mem_add(size_t a, size_t b);
/* count doubles, in bytes. */
size_t sl_mem_doubles(size_t count);

/* The limit in force: *bytes (0 when there is none) and a short phrase for
 * messages in *source (may be NULL): "SCORELOSS_MEM_LIMIT" or "available
 * memory". SL_EINVAL when the environment variable is malformed. */
sl_status sl_mem_limit(size_t *bytes, const char **source);

/* SL_OK when a step that is about to allocate `bytes` fits the limit, else
 * SL_ENOMEM (or SL_EINVAL for a malformed SCORELOSS_MEM_LIMIT) with a message
 * "WHAT needs N GB, more than ...". what names the step ("scores of 1000
 * points in dimension 50"). */
sl_status sl_mem_check(size_t bytes, const char *what);

/* Writes a size for messages ("1.5 GB", "12 MB", "800 bytes") into buf. */
const char *sl_mem_format(size_t bytes, char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
