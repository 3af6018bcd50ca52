/* Specification of the periodic timer (src/timer.c) shared by the pusher
 * and remote write. Timing bounds are loose on purpose (2 shared cores):
 * each test checks an order of magnitude (a stop takes milliseconds, not
 * the interval), not exact figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <unistd.h>

#include "promacct/timer.h"

struct counter {
	atomic_int ticks;
	double slow;            /* seconds each tick sleeps */
	atomic_int *stop_after; /* set this flag after the 2nd tick */
};

static void count_tick(void *arg)
{
	struct counter *c = arg;
	int n = atomic_fetch_add(&c->ticks, 1) + 1;
	if (c->slow > 0)
		usleep((useconds_t)(c->slow * 1e6));
	if (c->stop_after && n == 2)
		atomic_store(c->stop_after, 1);
}

static void wait_for_ticks(struct counter *c, int n, double max_seconds)
{
	double until = time_monotonic() + max_seconds;
	while (atomic_load(&c->ticks) < n && time_monotonic() < until)
		usleep(1000);
}

static void test_first_tick_at_once_then_every_interval(void **state)
{
	(void)state;
	struct counter c = {0};
	struct timer t;
	timer_init(&t, &(struct timer_opts){.interval = 0.05, .tick = count_tick, .arg = &c});
	double t0 = time_monotonic();
	assert_int_equal(timer_start(&t), 0);
	wait_for_ticks(&c, 1, 5);
	assert_true(time_monotonic() - t0 < 1.0); /* not after an interval of an hour */
	wait_for_ticks(&c, 4, 10);
	double elapsed = time_monotonic() - t0;
	timer_stop(&t);
	assert_true(atomic_load(&c.ticks) >= 4);
	/* 4 ticks at 50 ms: the 4th is 150 ms after the first, not earlier */
	assert_true(elapsed >= 0.14);
	timer_destroy(&t);
}

static void test_first_delay_postpones_the_first_tick(void **state)
{
	(void)state;
	struct counter c = {0};
	struct timer t;
	timer_init(&t, &(struct timer_opts){
	                   .interval = 0.01, .first_delay = 3600, .tick = count_tick, .arg = &c});
	assert_int_equal(timer_start(&t), 0);
	usleep(50000);
	timer_stop(&t);
	assert_int_equal(atomic_load(&c.ticks), 0);
	timer_destroy(&t);
}

static void test_stop_wakes_a_long_wait_at_once(void **state)
{
	(void)state;
	struct counter c = {0};
	struct timer t;
	timer_init(&t, &(struct timer_opts){.interval = 3600, .tick = count_tick, .arg = &c});
	assert_int_equal(timer_start(&t), 0);
	wait_for_ticks(&c, 1, 5);
	double t0 = time_monotonic();
	timer_stop(&t);
	assert_true(time_monotonic() - t0 < 1.0);
	assert_int_equal(atomic_load(&c.ticks), 1);
	assert_true(timer_started(&t)); /* graceful work is due after a stop */
	timer_destroy(&t);
}

static void test_owner_stop_flag_ends_the_timer(void **state)
{
	(void)state;
	atomic_int stop = 0;
	struct counter c = {.stop_after = &stop};
	struct timer t;
	timer_init(&t, &(struct timer_opts){
	                   .interval = 0.001, .tick = count_tick, .arg = &c, .stop = &stop});
	assert_int_equal(timer_start(&t), 0);
	usleep(100000);
	/* the tick that set the owner's flag was the last one */
	assert_int_equal(atomic_load(&c.ticks), 2);
	timer_stop(&t);
	timer_destroy(&t);
}

static void test_slow_ticks_skip_missed_ticks(void **state)
{
	(void)state;
	struct counter c = {.slow = 0.1};
	struct timer t;
	timer_init(&t, &(struct timer_opts){.interval = 0.01, .tick = count_tick, .arg = &c});
	assert_int_equal(timer_start(&t), 0);
	usleep(350000);
	timer_stop(&t);
	/* ~4 ticks of 100 ms fit in 350 ms; a burst to catch up would be 35 */
	assert_true(atomic_load(&c.ticks) <= 6);
	timer_destroy(&t);
}

static void test_never_started_timer_is_not_started(void **state)
{
	(void)state;
	struct counter c = {0};
	struct timer t;
	timer_init(&t, &(struct timer_opts){.interval = 1, .tick = count_tick, .arg = &c});
	timer_stop(&t); /* harmless */
	assert_false(timer_started(&t));
	timer_destroy(&t);
	assert_int_equal(atomic_load(&c.ticks), 0);
}

static void test_timer_wait_returns_at_the_deadline_or_on_stop(void **state)
{
	(void)state;
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	atomic_int stop = 0;
	cond_init_monotonic(&cv);
	pthread_mutex_lock(&m);
	double t0 = time_monotonic();
	assert_int_equal(timer_wait(&cv, &m, t0 + 0.05, &stop), 0);
	double waited = time_monotonic() - t0;
	assert_true(waited >= 0.05 && waited < 1.0);
	atomic_store(&stop, 1);
	t0 = time_monotonic();
	assert_int_equal(timer_wait(&cv, &m, t0 + 3600, &stop), 1);
	assert_true(time_monotonic() - t0 < 0.1);
	pthread_mutex_unlock(&m);
	pthread_cond_destroy(&cv);
}

static void test_deadline_left_is_never_negative(void **state)
{
	(void)state;
	assert_true(deadline_left(time_monotonic() - 10) == 0);
	double left = deadline_left(time_monotonic() + 10);
	assert_true(left > 9 && left <= 10);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_tick_at_once_then_every_interval),
	    cmocka_unit_test(test_first_delay_postpones_the_first_tick),
	    cmocka_unit_test(test_stop_wakes_a_long_wait_at_once),
	    cmocka_unit_test(test_owner_stop_flag_ends_the_timer),
	    cmocka_unit_test(test_slow_ticks_skip_missed_ticks),
	    cmocka_unit_test(test_never_started_timer_is_not_started),
	    cmocka_unit_test(test_timer_wait_returns_at_the_deadline_or_on_stop),
	    cmocka_unit_test(test_deadline_left_is_never_negative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
