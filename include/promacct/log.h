/* logfmt (or JSON lines) logging to stderr: ts=... level=... msg="..." key=value ...
 *
 * Escaping is the logger's job: callers pass values from outside (file and
 * interface names, URLs, HTTP bodies, error texts) as they are, and every
 * logfmt line stays one line, every JSON line parses. */
#ifndef PROMACCT_LOG_H
#define PROMACCT_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_LOGFMT, LOG_JSON };

/* Returns 0 or -EINVAL for an unknown level / format name. Call before
 * threads start. */
int log_set_level(const char *name) __attribute__((warn_unused_result));
int log_set_format(const char *name) __attribute__((warn_unused_result));
void log_set_level_value(enum log_level level);
/* Where lines go (default 2, stderr); for tests. */
void log_set_fd(int fd);
/* Whether a line of this level would be written (skip costly set-up of
 * debug lines). */
int log_enabled(enum log_level level);

/* Writes one line. `kv` lists the fields as `key=VALUE` separated by
 * spaces, where VALUE is printf text (usually one conversion: `file=%s
 * packets=%llu`). The logger expands each VALUE and escapes it itself:
 * quotes, backslashes, control bytes and invalid UTF-8 can never break the
 * line, so pass outside strings unquoted and unescaped. A VALUE written in
 * double quotes in `kv` (`err="%s"`) is always quoted in logfmt; others are
 * quoted when they need it. A conversion without `key=` is logged as
 * `detail=`. Values longer than LOG_VALUE_MAX bytes are cut, marked "...". */
void log_write(enum log_level level, const char *msg, const char *kv, ...)
    __attribute__((format(printf, 3, 4)));
void log_vwrite(enum log_level level, const char *msg, const char *kv, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define LOG_VALUE_MAX 2048
#define LOG_LINE_MAX  8192

/* Copies len bytes that are not a C string (an HTTP body) into dst as one
 * for a %s value: at most cap - 1 bytes, cut with "...", NUL bytes shown as
 * spaces. No escaping: log_write does that. Returns dst. */
const char *log_bytes(char *dst, size_t cap, const char *src, size_t len);
/* Old name of log_bytes, from when callers quoted values themselves. */
#define log_quote log_bytes

#define log_debug(msg, ...) log_write(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_write(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

/* Repeated conditions (a queue that stays full, a receiver that keeps
 * failing) must not flood the log. Two helpers, both thread-safe:
 *
 * 1. Rate limit: at most one line per `interval` seconds per limiter; the
 *    lines suppressed in between are counted and the next line written
 *    carries `suppressed=N`.
 *
 *        static struct log_limit queue_full = LOG_LIMIT_INIT(10);
 *        log_limited(&queue_full, LOG_WARN, "queue full", "url=%s", url);
 *
 *    A limiter may live in a struct: log_limit_init(&ep->full_log, 10).
 *
 * 2. Change of state: log when a condition starts or ends, not on every
 *    occurrence.
 *
 *        if (log_state_changed(&ep->up_state, ok))
 *                log_warn(ok ? "endpoint back" : "endpoint down", ...);
 */
struct log_limit {
	pthread_mutex_t lock;
	double interval;     /* seconds between two lines */
	double next;         /* monotonic time from which the next line may go */
	uint64_t suppressed; /* lines not written since the last one */
};
#define LOG_LIMIT_INIT(seconds)                                                                    \
	{                                                                                          \
		PTHREAD_MUTEX_INITIALIZER, (seconds), 0, 0                                         \
	}
void log_limit_init(struct log_limit *l, double interval);
void log_limit_destroy(struct log_limit *l);
/* Returns 1 when the line was written, 0 when it was suppressed. */
int log_limited(struct log_limit *l, enum log_level level, const char *msg, const char *kv, ...)
    __attribute__((format(printf, 4, 5)));

struct log_state {
	_Atomic int state;
};
#define LOG_STATE_INIT(initial)                                                                    \
	{                                                                                          \
		(initial)                                                                          \
	}
/* Records `state`; returns 1 when it differs from the one recorded before
 * (the caller logs the change), 0 otherwise. */
int log_state_changed(struct log_state *s, int state);

#endif
