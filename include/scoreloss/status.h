/* Status codes and error messages.
 *
 * Every fallible call returns an sl_status (0 success, negative failure) and,
 * on failure, leaves a one-line message for the calling thread that
 * sl_last_error() returns. The message names the file, line and column when
 * the failure comes from bad input. */
#ifndef SCORELOSS_STATUS_H
#define SCORELOSS_STATUS_H

#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sl_status {
    SL_OK = 0,
    SL_EINVAL = -1,       /* invalid argument, option or specification */
    SL_EIO = -2,          /* a file could not be opened, read or written */
    SL_EFORMAT = -3,      /* malformed input data */
    SL_ENOMEM = -4,       /* allocation failed or would exceed the memory limit */
    SL_ENUMERIC = -5,     /* singular or non-finite numbers */
    SL_EUNSUPPORTED = -6, /* the object cannot do what was asked (e.g. no exact scores) */
    SL_ECALLBACK = -7     /* a user callback or plug-in reported failure */
} sl_status;

/* The message of the last failure on this thread ("" if none). */
const char *sl_last_error(void);

/* A short name for a status code ("ok", "invalid argument", ...). */
const char *sl_status_name(sl_status status);

/* Records a message for this thread and returns status, so that a failing
 * call can `return sl_error(SL_EINVAL, "...", ...);`. */
sl_status sl_error(sl_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
sl_status sl_verror(sl_status status, const char *fmt, va_list ap);

/* Prepends context ("file.csv: ") to this thread's current message and
 * returns status unchanged. */
sl_status sl_error_prefix(sl_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Clears this thread's message. */
void sl_error_clear(void);

#ifdef __cplusplus
}
#endif
#endif
