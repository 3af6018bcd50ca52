/* Specification of the output buffer and number formatting (src/buf.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "promacct/buf.h"

static void check_double(double v, const char *want)
{
	char out[40];
	size_t n = double_to_text(out, v);
	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64), as Prometheus prints values. */
static void test_go_float_format(void **state)
{
	(void)state;
	check_double(0, "0");
	check_double(1, "1");
	check_double(64, "64");
	check_double(0.5, "0.5");
	check_double(123456, "123456");
	check_double(1e6, "1e+06");
	check_double(1.5e6, "1.5e+06");
	check_double(0.0001, "0.0001");
	check_double(0.00001, "1e-05");
	check_double(-2.5, "-2.5");
	check_double(1700000000.5, "1.7000000005e+09");
	check_double(INFINITY, "+Inf");
	check_double(-INFINITY, "-Inf");
	check_double(NAN, "NaN");
	check_double(0.1, "0.1");
}

static void test_u64(void **state)
{
	(void)state;
	char out[24];
	out[u64_to_dec(out, 0)] = '\0';
	assert_string_equal(out, "0");
	out[u64_to_dec(out, 18446744073709551615ull)] = '\0';
	assert_string_equal(out, "18446744073709551615");
}

static void test_cap_is_an_error_not_a_truncation(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 10);
	buf_append_str(&b, "12345");
	buf_append_str(&b, "67890");
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, 10);
	buf_append_str(&b, "x");
	assert_int_equal(b.err, -E2BIG);
	assert_int_equal(b.len, 10);
	buf_append_u64(&b, 5); /* still failing, still unchanged */
	assert_int_equal(b.len, 10);
	buf_reset(&b);
	buf_printf(&b, "%d-%s", 42, "x");
	assert_int_equal(b.err, 0);
	assert_memory_equal(b.data, "42-x", 4);
	buf_free(&b);
}

/* Regression (fuzz_expo, CI at c59a9b7): a cap below the first allocation
 * (4096) let byte-at-a-time appends run past the cap. */
static void test_cap_below_first_allocation_holds_for_single_bytes(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 100);
	for (int i = 0; i < 200; i++)
		buf_append_char(&b, 'x');
	assert_int_equal(b.err, -E2BIG);
	assert_int_equal(b.len, 100);
	assert_true(b.cap <= 100);
	buf_free(&b);
}

static void test_gzip_round_trip_and_cap(void **state)
{
	(void)state;
	static char page[100000];
	for (size_t i = 0; i < sizeof page; i++)
		page[i] = (char)('a' + i % 7);
	struct buf z;
	buf_init(&z, 0);
	assert_int_equal(buf_gzip(&z, page, sizeof page, 1), 0);
	assert_true(z.len > 18 && z.len < sizeof page / 10);
	assert_int_equal((unsigned char)z.data[0], 0x1f); /* gzip magic */
	assert_int_equal((unsigned char)z.data[1], 0x8b);
	static char back[sizeof page];
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
	zs.next_in = (Bytef *)z.data;
	zs.avail_in = (uInt)z.len;
	zs.next_out = (Bytef *)back;
	zs.avail_out = sizeof back;
	assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
	inflateEnd(&zs);
	assert_int_equal(zs.total_out, sizeof page);
	assert_memory_equal(back, page, sizeof page);
	buf_free(&z);
	buf_init(&z, 16); /* too small for the compressed form: an error */
	assert_int_equal(buf_gzip(&z, page, sizeof page, 6), -E2BIG);
	buf_free(&z);
}

static void test_tick_next_skips_missed_ticks(void **state)
{
	(void)state;
	assert_true(tick_next(10, 5, 12) == 15);
	assert_true(tick_next(10, 5, 15) == 20); /* never a tick at `now` */
	assert_true(tick_next(10, 5, 33) == 35); /* 15..30 were missed */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_go_float_format),
	    cmocka_unit_test(test_u64),
	    cmocka_unit_test(test_cap_is_an_error_not_a_truncation),
	    cmocka_unit_test(test_cap_below_first_allocation_holds_for_single_bytes),
	    cmocka_unit_test(test_gzip_round_trip_and_cap),
	    cmocka_unit_test(test_tick_next_skips_missed_ticks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
