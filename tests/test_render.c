/* render: a render streamed to a consumer that pulls, in bounded chunks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

#include <cmocka.h>

#include "promacct/render.h"
#include "fixture.h"

/* A page of about 2 MB: far more than the queue (two chunks) holds. */
static struct fixture *big_fixture(void)
{
	static const char *const r[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, r, 1, 100000);
	char a[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof a, "10.0.%d.%d", i / 256, i % 256);
		fixture_ip(f, NULL, a, "192.0.2.1", 6, 100);
	}
	return f;
}

static char *whole_read(struct render_stream *rs, size_t *len)
{
	struct buf b;
	buf_init(&b, 0);
	char piece[4096];
	ssize_t n;
	while ((n = render_stream_read(rs, piece, sizeof piece, 1)) > 0)
		buf_append(&b, piece, (size_t)n);
	assert_int_equal(n, RENDER_EOF);
	*len = b.len;
	return b.data;
}

/* Read in small pieces, the stream is the page render gives at once. */
static void test_stream_equals_page(void **state)
{
	(void)state;
	struct fixture *f = big_fixture();
	char *page = fixture_render(&f->reg);
	struct render_opts ro = {.gzip = 0, .stall_timeout = 0.5};
	struct render_stream *rs = render_stream_new(&f->reg, &ro);
	assert_non_null(rs);
	assert_int_equal(render_stream_start(rs), 0);
	size_t len;
	char *got = whole_read(rs, &len);
	assert_int_equal(len, strlen(page));
	assert_memory_equal(got, page, len);
	assert_true(len > 4 * RENDER_SLOT);
	free(got);
	free(page);
	render_stream_free(rs);
	fixture_free(f);
}

/* A consumer that takes nothing while the queue is full ends the render
 * with -ETIMEDOUT after stall_timeout: what it reads is the chunks queued
 * before, then the error (never an end of stream). */
static void test_a_stalled_consumer_ends_the_render(void **state)
{
	(void)state;
	struct fixture *f = big_fixture();
	struct render_opts ro = {.gzip = 0, .stall_timeout = 0.2};
	struct render_stream *rs = render_stream_new(&f->reg, &ro);
	assert_non_null(rs);
	double t0 = time_monotonic();
	assert_int_equal(render_stream_start(rs), 0);
	while (!render_stream_ended(rs) && time_monotonic() - t0 < 10)
		usleep(10000);
	assert_true(render_stream_ended(rs));
	assert_true(time_monotonic() - t0 >= 0.2);
	char piece[4096];
	ssize_t n;
	size_t got = 0;
	while ((n = render_stream_read(rs, piece, sizeof piece, 1)) > 0)
		got += (size_t)n;
	assert_int_equal(n, -ETIMEDOUT);
	assert_true(got > 0 && got <= RENDER_QUEUE * RENDER_SLOT);
	render_stream_free(rs);
	fixture_free(f);
}

/* Without stall_timeout the render waits for the consumer as long as it
 * takes. */
static void test_no_stall_timeout_waits(void **state)
{
	(void)state;
	struct fixture *f = big_fixture();
	struct render_opts ro = {.gzip = 0};
	struct render_stream *rs = render_stream_new(&f->reg, &ro);
	assert_non_null(rs);
	assert_int_equal(render_stream_start(rs), 0);
	usleep(300000);
	assert_false(render_stream_ended(rs));
	size_t len;
	char *got = whole_read(rs, &len);
	assert_true(len > 0);
	free(got);
	render_stream_free(rs);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stream_equals_page),
	    cmocka_unit_test(test_a_stalled_consumer_ends_the_render),
	    cmocka_unit_test(test_no_stall_timeout_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
