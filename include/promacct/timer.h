/* A fixed-rate periodic timer thread, shared by the Pushgateway pusher and
 * the remote-write snapshot timer (one implementation of "wake every
 * interval, skip missed ticks, wake at once on stop").
 *
 * Use from a module with the standard lifecycle (new/start/shutdown/free),
 * whose one stop flag is an atomic_int in its own struct:
 *
 *   X_new:      timer_init(&x->timer, &(struct timer_opts){
 *                   .interval = o->interval, .tick = x_tick, .arg = x, .stop = &x->stop});
 *               (no thread yet)
 *   X_start:    if (timer_start(&x->timer)) fail;   first tick at once (.first_delay 0)
 *   X_shutdown: atomic_store(&x->stop, 1);
 *               timer_stop(&x->timer);   wakes the wait, joins the thread. A tick
 *                                        in progress finishes first: make its waits
 *                                        (HTTP requests, backoff sleeps) check x->stop,
 *                                        e.g. with timer_wait() below.
 *               then the graceful work, only if started (timer_started()).
 *   X_free:     timer_destroy(&x->timer);  (stops it first if still running)
 *
 * Ticks run on the timer thread, one at a time, never overlapping. A tick
 * slower than the interval makes the timer skip the ticks it missed (fixed
 * rate, no burst to catch up). */
#ifndef PROMACCT_TIMER_H
#define PROMACCT_TIMER_H

#include <pthread.h>
#include <stdatomic.h>

#include "promacct/common.h"

struct timer_opts {
	double interval;         /* seconds between ticks, > 0 */
	double first_delay;      /* seconds from timer_start to the first tick (0: at once) */
	void (*tick)(void *arg); /* runs on the timer thread */
	void *arg;
	/* The owning module's stop flag (nonzero: stop), read with atomic
	 * loads; NULL: only timer_stop stops the timer. */
	const atomic_int *stop;
};

/* Embed in the owning module's struct; fields are private to timer.c. */
struct timer {
	struct timer_opts o;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_int stopping; /* set by timer_stop */
	int started;         /* the thread was created and not yet joined */
	int ever_started;    /* timer_start succeeded once */
};

/* Prepares the timer; starts no thread. */
void timer_init(struct timer *t, const struct timer_opts *o);
/* Starts the timer thread. 0, or -EAGAIN (no thread was made). */
int timer_start(struct timer *t) MUST_CHECK;
/* Wakes the timer's wait and joins its thread (after the tick in progress,
 * if any, returns). Idempotent; harmless on a timer never started. Call it
 * from one thread (the one that runs the module's shutdown). */
void timer_stop(struct timer *t);
/* Nonzero if timer_start succeeded (even if stopped since): the module's
 * graceful shutdown work is due. */
int timer_started(const struct timer *t);
/* Stops the timer if needed and frees its resources. */
void timer_destroy(struct timer *t);

/* With m held: waits on c (made by cond_init_monotonic) until the monotonic
 * time `until` or until *stop is nonzero (stop may be NULL). Whoever sets
 * *stop must then broadcast c with m held, or the wait lasts to `until`.
 * Returns nonzero if it returned because of *stop. */
int timer_wait(pthread_cond_t *c, pthread_mutex_t *m, double until, const atomic_int *stop);

/* Seconds left until the monotonic deadline, never below 0. */
double deadline_left(double deadline);

#endif
