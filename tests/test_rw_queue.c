/* Specification of the remote-write queue of one endpoint (src/rw_queue.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "promacct/rw_queue.h"

/* A body of `len` bytes and n samples whose first byte is `tag`. */
static struct rw_body *body(char tag, size_t len, size_t n)
{
	char *d = malloc(len ? len : 1);
	assert_non_null(d);
	memset(d, 0, len ? len : 1);
	d[0] = tag;
	struct rw_body *b = rw_body_new(d, len, n);
	assert_non_null(b);
	return b;
}

/* Pushes a fresh body and drops the caller's reference. */
static void push(struct rw_queue *q, size_t shard, char tag, size_t len, size_t n,
                 struct rw_drop *d)
{
	struct rw_body *b = body(tag, len, n);
	assert_int_equal(rw_queue_push(q, shard, b, d), 0);
	rw_body_unref(b);
}

static char pop(struct rw_queue *q, size_t shard)
{
	struct rw_body *b = rw_queue_begin(q, shard);
	assert_non_null(b);
	char tag = b->data[0];
	rw_queue_end(q, shard, 1);
	return tag;
}

static void test_each_shard_is_a_fifo(void **state)
{
	(void)state;
	struct rw_queue q;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q, 3, 0, 0), 0);
	push(&q, 0, 'a', 10, 1, &d);
	push(&q, 1, 'b', 10, 1, &d);
	push(&q, 0, 'c', 10, 1, &d);
	push(&q, 2, 'd', 10, 1, &d);
	push(&q, 1, 'e', 10, 1, &d);
	assert_int_equal(q.bytes, 50);
	assert_int_equal(q.samples, 5);
	assert_int_equal(rw_queue_shards_in_use(&q), 3);
	assert_int_equal(pop(&q, 1), 'b');
	assert_int_equal(pop(&q, 0), 'a');
	assert_int_equal(pop(&q, 0), 'c');
	assert_null(rw_queue_begin(&q, 0));
	assert_int_equal(pop(&q, 1), 'e');
	assert_int_equal(rw_queue_shards_in_use(&q), 1);
	assert_int_equal(pop(&q, 2), 'd');
	assert_int_equal(q.bytes, 0);
	assert_int_equal(q.samples, 0);
	assert_int_equal(d.requests, 0);
	rw_queue_free(&q);
}

static void test_a_failed_request_stays_at_the_head(void **state)
{
	(void)state;
	struct rw_queue q;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q, 1, 0, 0), 0);
	push(&q, 0, 'a', 10, 1, &d);
	push(&q, 0, 'b', 10, 1, &d);
	struct rw_body *b = rw_queue_begin(&q, 0);
	assert_int_equal(b->data[0], 'a');
	rw_queue_end(&q, 0, 0); /* retry */
	assert_int_equal(pop(&q, 0), 'a');
	assert_int_equal(pop(&q, 0), 'b');
	rw_queue_free(&q);
}

/* Over the byte bound the oldest requests of any shard go first, counted;
 * the newest is always kept. */
static void test_full_queue_drops_the_oldest_across_shards(void **state)
{
	(void)state;
	struct rw_queue q;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q, 2, 100, 0), 0);
	push(&q, 0, 'a', 40, 4, &d);
	push(&q, 1, 'b', 40, 5, &d);
	assert_int_equal(d.requests, 0);
	push(&q, 1, 'c', 40, 6, &d); /* 120 > 100: 'a' goes */
	assert_int_equal(d.requests, 1);
	assert_int_equal(d.samples, 4);
	assert_int_equal(q.bytes, 80);
	assert_null(rw_queue_begin(&q, 0));
	push(&q, 0, 'd', 200, 7, &d); /* alone over the bound: kept, the rest goes */
	assert_int_equal(d.requests, 3);
	assert_int_equal(d.samples, 4 + 5 + 6);
	assert_int_equal(q.bytes, 200);
	assert_int_equal(pop(&q, 0), 'd');
	rw_queue_free(&q);
}

static void test_sample_bound(void **state)
{
	(void)state;
	struct rw_queue q;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q, 1, 0, 10), 0);
	push(&q, 0, 'a', 1, 6, &d);
	push(&q, 0, 'b', 1, 4, &d);
	assert_int_equal(d.requests, 0);
	push(&q, 0, 'c', 1, 1, &d);
	assert_int_equal(d.requests, 1);
	assert_int_equal(q.samples, 5);
	assert_int_equal(pop(&q, 0), 'b');
	rw_queue_free(&q);
}

/* A request in flight is never dropped from under its sender. */
static void test_in_flight_requests_are_never_dropped(void **state)
{
	(void)state;
	struct rw_queue q;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q, 2, 100, 0), 0);
	push(&q, 0, 'a', 40, 1, &d);
	push(&q, 1, 'b', 40, 1, &d);
	struct rw_body *inflight = rw_queue_begin(&q, 0);
	assert_int_equal(inflight->data[0], 'a');
	push(&q, 1, 'c', 40, 1, &d); /* 'b' goes, not 'a' */
	assert_int_equal(d.requests, 1);
	assert_int_equal(inflight->data[0], 'a');
	rw_queue_end(&q, 0, 1);
	assert_int_equal(pop(&q, 1), 'c');
	rw_queue_free(&q);
}

/* rw_queue_drop_oldest (making room on disk) takes the oldest request not
 * in flight, whatever its shard, and says when there is none. */
static void test_drop_oldest_skips_the_one_in_flight(void **state)
{
	(void)state;
	struct rw_queue q;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q, 2, 0, 0), 0);
	push(&q, 0, 'a', 10, 3, &d);
	push(&q, 1, 'b', 10, 4, &d);
	assert_non_null(rw_queue_begin(&q, 0)); /* 'a' in flight */
	assert_int_equal(rw_queue_drop_oldest(&q, &d), 1);
	assert_int_equal(d.requests, 1);
	assert_int_equal(d.samples, 4); /* 'b' */
	assert_int_equal(rw_queue_drop_oldest(&q, &d), 0);
	assert_int_equal(q.bytes, 10);
	rw_queue_end(&q, 0, 0); /* back at the head: droppable again */
	assert_int_equal(rw_queue_drop_oldest(&q, &d), 1);
	assert_int_equal(q.bytes, 0);
	assert_null(rw_queue_begin(&q, 0));
	rw_queue_free(&q);
}

/* A body shared by two endpoints' queues lives until both are done. */
static void test_bodies_are_shared_between_queues(void **state)
{
	(void)state;
	struct rw_queue q1, q2;
	struct rw_drop d = {0, 0};
	assert_int_equal(rw_queue_init(&q1, 1, 0, 0), 0);
	assert_int_equal(rw_queue_init(&q2, 1, 0, 0), 0);
	struct rw_body *b = body('x', 10, 1);
	assert_int_equal(rw_queue_push(&q1, 0, b, &d), 0);
	assert_int_equal(rw_queue_push(&q2, 0, b, &d), 0);
	rw_body_unref(b);
	assert_int_equal(atomic_load(&b->refs), 2);
	assert_int_equal(pop(&q1, 0), 'x');
	assert_int_equal(atomic_load(&b->refs), 1);
	assert_int_equal(pop(&q2, 0), 'x'); /* freed here (ASan would see a leak or reuse) */
	rw_queue_free(&q1);
	rw_queue_free(&q2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_each_shard_is_a_fifo),
	    cmocka_unit_test(test_a_failed_request_stays_at_the_head),
	    cmocka_unit_test(test_full_queue_drops_the_oldest_across_shards),
	    cmocka_unit_test(test_sample_bound),
	    cmocka_unit_test(test_in_flight_requests_are_never_dropped),
	    cmocka_unit_test(test_bodies_are_shared_between_queues),
	    cmocka_unit_test(test_drop_oldest_skips_the_one_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
