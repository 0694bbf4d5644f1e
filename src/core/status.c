#include "scoreloss/status.h"

#include <stdio.h>
#include <string.h>

#define SL_MSG_MAX 1024

/* Thread-local, so the library stays reentrant: each thread sees only the
 * message of its own last failure. */
static _Thread_local char sl_message[SL_MSG_MAX];

const char *sl_last_error(void) {
    return sl_message;
}

const char *sl_status_name(sl_status status) {
    switch (status) {
    case SL_OK:
        return "ok";
    case SL_EINVAL:
        return "invalid argument";
    case SL_EIO:
        return "input/output error";
    case SL_EFORMAT:
        return "malformed input";
    case SL_ENOMEM:
        return "out of memory";
    case SL_ENUMERIC:
        return "numerical failure";
    case SL_EUNSUPPORTED:
        return "unsupported";
    case SL_ECALLBACK:
        return "callback failed";
    }
    return "unknown status";
}

sl_status sl_verror(sl_status status, const char *fmt, va_list ap) {
    vsnprintf(sl_message, sizeof sl_message, fmt, ap);
    /* Messages are one line: fold any newline a caller let through. */
    for (char *p = sl_message; *p; ++p)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return status;
}

sl_status sl_error(sl_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sl_verror(status, fmt, ap);
    va_end(ap);
    return status;
}

sl_status sl_error_prefix(sl_status status, const char *fmt, ...) {
    char prefix[SL_MSG_MAX], old[SL_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, sl_message, sizeof old);
    /* Truncation of an over-long message is acceptable; build it piecewise
     * so the compiler sees bounded copies. */
    size_t np = strnlen(prefix, sizeof sl_message - 1);
    memcpy(sl_message, prefix, np);
    size_t no = strnlen(old, sizeof sl_message - 1 - np);
    memcpy(sl_message + np, old, no);
    sl_message[np + no] = '\0';
    return status;
}

void sl_error_clear(void) {
    sl_message[0] = '\0';
}
