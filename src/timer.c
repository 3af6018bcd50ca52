/* DESIGN: the periodic timer shared by the pusher and remote write.
 *
 * One thread per timer. It sleeps on its own condition variable (clock
 * CLOCK_MONOTONIC: wall-clock jumps do not move ticks) until the next tick
 * of a fixed-rate schedule, then calls the tick function without holding any
 * lock. It stops when timer_stop sets its own flag or when the owner's stop
 * flag (opts.stop) is set; timer_stop broadcasts under the timer's lock, so
 * a stop is never missed between the check and the wait. Only the tick
 * function may block, and only as long as the owner lets it (its waits
 * check the owner's stop flag). */
#include "promacct/timer.h"

#include <errno.h>
#include <time.h>

static int stop_requested(const struct timer *t)
{
	return atomic_load(&t->stopping) || (t->o.stop && atomic_load(t->o.stop));
}

int timer_wait(pthread_cond_t *c, pthread_mutex_t *m, double until, const atomic_int *stop)
{
	for (;;) {
		if (stop && atomic_load(stop))
			return 1;
		if (time_monotonic() >= until)
			return 0;
		if (cond_wait_signal_until(c, m, until) == ETIMEDOUT)
			return stop && atomic_load(stop);
	}
}

double deadline_left(double deadline)
{
	double left = deadline - time_monotonic();
	return left > 0 ? left : 0;
}

static void *timer_thread(void *arg)
{
	struct timer *t = arg;
	double next = time_monotonic() + t->o.first_delay;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!stop_requested(t) && time_monotonic() < next)
			(void)timer_wait(&t->cond, &t->lock, next, &t->stopping);
		if (stop_requested(t))
			break;
		pthread_mutex_unlock(&t->lock);
		t->o.tick(t->o.arg);
		pthread_mutex_lock(&t->lock);
		next = tick_next(next, t->o.interval, time_monotonic());
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

void timer_init(struct timer *t, const struct timer_opts *o)
{
	t->o = *o;
	atomic_init(&t->stopping, 0);
	t->started = 0;
	t->ever_started = 0;
	pthread_mutex_init(&t->lock, NULL);
	cond_init_monotonic(&t->cond);
}

int timer_start(struct timer *t)
{
	if (t->started)
		return 0;
	atomic_store(&t->stopping, 0);
	if (pthread_create(&t->thread, NULL, timer_thread, t))
		return -EAGAIN;
	t->started = 1;
	t->ever_started = 1;
	return 0;
}

void timer_stop(struct timer *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	atomic_store(&t->stopping, 1);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->started = 0;
}

int timer_started(const struct timer *t)
{
	return t->ever_started;
}

void timer_destroy(struct timer *t)
{
	timer_stop(t);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
}
