/* logfmt logging to stderr: ts=... level=... msg="..." key=value ... */
#ifndef PROMACCT_LOG_H
#define PROMACCT_LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

/* Returns 0 or -EINVAL for an unknown level / format name. */
int log_set_level(const char *name) __attribute__((warn_unused_result));
int log_set_format(const char *name) __attribute__((warn_unused_result));
void log_set_level_value(enum log_level level);

/* `kv` is a printf format producing space-separated key=value pairs; values
 * that come from outside must go through log_quote(). */
void log_write(enum log_level level, const char *msg, const char *kv, ...)
    __attribute__((format(printf, 3, 4)));

/* Quotes and escapes `src` for a logfmt value into dst (cap bytes, always
 * NUL-terminated; long input is cut and marked with "..."). Returns dst. */
const char *log_quote(char *dst, size_t cap, const char *src, size_t len);

#define log_debug(msg, ...) log_write(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif
