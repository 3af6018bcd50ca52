/* Shared macros and small helpers used by every module. */
#ifndef PROMACCT_COMMON_H
#define PROMACCT_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define MUST_CHECK   __attribute__((warn_unused_result))
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define LIKELY(x)    __builtin_expect(!!(x), 1)
#define UNLIKELY(x)  __builtin_expect(!!(x), 0)

/* A counter written by exactly one thread and read by any number of others.
 * The writer uses a relaxed load + store (a plain add on x86, no lock prefix);
 * readers use relaxed loads. */
typedef _Atomic uint64_t counter_t;

static inline void counter_add(counter_t *c, uint64_t v)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
	                      memory_order_relaxed);
}

static inline uint64_t counter_read(const counter_t *c)
{
	return atomic_load_explicit((counter_t *)c, memory_order_relaxed);
}

/* Doubles shared between threads are stored as their bit pattern. */
typedef _Atomic uint64_t gauge_t;

static inline void gauge_set(gauge_t *g, double v)
{
	uint64_t bits;
	__builtin_memcpy(&bits, &v, sizeof bits);
	atomic_store_explicit(g, bits, memory_order_relaxed);
}

static inline double gauge_read(const gauge_t *g)
{
	uint64_t bits = atomic_load_explicit((gauge_t *)g, memory_order_relaxed);
	double v;
	__builtin_memcpy(&v, &bits, sizeof v);
	return v;
}

/* Wall clock in seconds / milliseconds since the epoch, monotonic seconds. */
double time_now(void);
int64_t time_now_ms(void);
double time_monotonic(void);

/* Parses a Prometheus-style duration ("500ms", "15s", "1m", "1h30m").
 * Returns 0 and stores seconds, or -EINVAL. */
int duration_parse(const char *text, double *seconds) MUST_CHECK;

/* Initialises a condition variable whose timed waits use CLOCK_MONOTONIC
 * (timers must not jump with the wall clock). */
void cond_init_monotonic(pthread_cond_t *c);
/* With m held: waits on c (made by cond_init_monotonic) until the monotonic
 * time `until`, or until *stop becomes nonzero when stop is not NULL. */
void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, double until, const int *stop);
/* With m held: one wait on c (made by cond_init_monotonic) that ends when c
 * is signalled or at the monotonic time `until` (or spuriously): the caller
 * re-checks its condition. until = +inf: only a signal ends it. Returns
 * pthread_cond_timedwait's result (ETIMEDOUT once `until` passed). */
int cond_wait_signal_until(pthread_cond_t *c, pthread_mutex_t *m, double until);
/* The next tick of a fixed-rate schedule after `now`: ticks missed while a
 * slow job ran are skipped, not run in a burst. */
double tick_next(double next, double interval, double now);

/* Reads a whole small file (secrets, tokens) with trailing newlines
 * stripped. Caller frees *out. Returns 0 or negative errno. */
int file_read_secret(const char *path, char **out) MUST_CHECK;

/* Copies url into out (cap bytes) for a label or a log line: the password
 * of its user info becomes <secret> (the whole user info when it has no ':',
 * as a token used as user name or a percent-encoded "user%3Apassword"),
 * path parameters after ';' become <params>, the query <query>, and the
 * fragment is dropped (http://admin:<secret>@host/api/v1/write?<query>).
 * Returns 0, or -ENOSPC with out set to "<url too long>". */
int url_redact(const char *url, char *out, size_t cap) MUST_CHECK;
/* Whether url carries user info, path parameters or a query. */
int url_has_secret(const char *url);

#endif
