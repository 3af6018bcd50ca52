/* Specification of histogram layouts and reads (src/histogram.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "promacct/histogram.h"

static char err[256];

static void test_default_buckets(void **state)
{
	(void)state;
	struct histogram_layout l;
	assert_int_equal(histogram_layout_parse(&l, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err), 0);
	assert_int_equal(l.nbuckets, 7);
	assert_int_equal(l.words, 8); /* sum + 7 buckets: one 64-byte cache line */
	assert_string_equal(l.le[0], "64");
	assert_string_equal(l.le[5], "2048");
	assert_string_equal(l.le[6], "+Inf");
	/* bounds are inclusive, as in Prometheus (le = less or equal) */
	assert_int_equal(histogram_bucket(&l, 0), 0);
	assert_int_equal(histogram_bucket(&l, 64), 0);
	assert_int_equal(histogram_bucket(&l, 65), 1);
	assert_int_equal(histogram_bucket(&l, 2048), 5);
	assert_int_equal(histogram_bucket(&l, 2049), 6);
	assert_int_equal(histogram_bucket(&l, 65535), 6);
	assert_int_equal(histogram_bucket(&l, 1u << 20), 6);
}

static void test_custom_buckets_and_le_text(void **state)
{
	(void)state;
	struct histogram_layout l;
	assert_int_equal(histogram_layout_parse(&l, "100, 1500,9000,1e6,+Inf", err, sizeof err), 0);
	assert_int_equal(l.nbuckets, 5);
	assert_string_equal(l.le[0], "100");
	assert_string_equal(l.le[2], "9000");
	assert_string_equal(l.le[3], "1e+06"); /* as Go's FormatFloat 'g' -1 spells it */
	assert_int_equal(histogram_bucket(&l, 100000), 3);
	assert_int_equal(histogram_bucket(&l, 1000001), 4);
	assert_int_equal(histogram_layout_parse(&l, "0.5,1.5", err, sizeof err), 0);
	assert_string_equal(l.le[0], "0.5");
	assert_int_equal(histogram_bucket(&l, 0), 0);
	assert_int_equal(histogram_bucket(&l, 1), 1);
}

static void test_bad_bucket_lists(void **state)
{
	(void)state;
	static const char *const bad[] = {"",  "64,32", "64,64",      "a,b", "64,,128", "-1,5",
	                                  "0", "64,x",  "1,2,+Inf,3", "nan", "inf",     "+Inf"};
	struct histogram_layout l;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		if (histogram_layout_parse(&l, bad[i], err, sizeof err) == 0)
			fail_msg("accepted bucket list '%s'", bad[i]);
		assert_true(strlen(err) > 0);
	}
}

static void test_observe_and_read_cumulative(void **state)
{
	(void)state;
	struct histogram_layout l;
	assert_int_equal(histogram_layout_parse(&l, "64,128", err, sizeof err), 0);
	counter_t h[4] = {0};
	histogram_observe(h, &l, 10);
	histogram_observe(h, &l, 100);
	histogram_observe(h, &l, 100);
	histogram_observe(h, &l, 5000);
	uint64_t cum[3], sum;
	histogram_read(h, &l, cum, &sum);
	assert_int_equal(cum[0], 1);
	assert_int_equal(cum[1], 3);
	assert_int_equal(cum[2], 4);
	assert_int_equal(sum, 5210);
	uint64_t acc[3] = {1, 1, 1}, asum = 7;
	histogram_merge(acc, &asum, cum, sum, 3);
	assert_int_equal(acc[2], 5);
	assert_int_equal(asum, 5217);
}

struct race {
	struct histogram_layout l;
	counter_t h[8];
	_Atomic int done;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	for (uint32_t i = 0; i < 2000000; i++)
		histogram_observe(r->h, &r->l, (i * 7919u) % 3000u);
	atomic_store(&r->done, 1);
	return NULL;
}

/* Every read taken while a writer runs is a valid histogram. A TSan driver
 * first: the bucket order holds by construction (cumulative sums of
 * counters). What can fail: a count that goes back between reads, and the
 * exact final count. */
static void test_reads_during_writes_are_valid_histograms(void **state)
{
	(void)state;
	static struct race r;
	memset(&r, 0, sizeof r);
	assert_int_equal(histogram_layout_parse(&r.l, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err),
	                 0);
	pthread_t t;
	pthread_create(&t, NULL, writer, &r);
	uint64_t prev_count = 0;
	int reads = 0;
	while (!atomic_load(&r.done) || reads < 10) {
		uint64_t cum[7], sum;
		histogram_read(r.h, &r.l, cum, &sum);
		for (int i = 1; i < 7; i++)
			assert_true(cum[i] >= cum[i - 1]);
		assert_true(cum[6] >= prev_count); /* counters never go back */
		prev_count = cum[6];
		reads++;
	}
	pthread_join(t, NULL);
	uint64_t cum[7], sum;
	histogram_read(r.h, &r.l, cum, &sum);
	assert_int_equal(cum[6], 2000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_buckets),
	    cmocka_unit_test(test_custom_buckets_and_le_text),
	    cmocka_unit_test(test_bad_bucket_lists),
	    cmocka_unit_test(test_observe_and_read_cumulative),
	    cmocka_unit_test(test_reads_during_writes_are_valid_histograms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
