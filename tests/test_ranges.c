/* Specification of address ranges and their labels (src/ranges.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "promacct/ranges.h"

static char err[512];

static int lookup(const struct ranges *r, const char *addr)
{
	uint8_t a[16];
	if (inet_pton(AF_INET, addr, a) == 1)
		return ranges_lookup4(r, ntohl(*(uint32_t *)a));
	assert_int_equal(inet_pton(AF_INET6, addr, a), 1);
	return ranges_lookup6(r, a);
}

static void test_cidr_and_first_last(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.1.0.0/16:customer=acme", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "192.0.2.10-192.0.2.20", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "[2001:db8::1]-[2001:db8::ff]:site=ams", err, sizeof err),
	                 0);
	assert_int_equal(ranges_add(&r, "2001:db8:1::/48", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "[2001:db8:2::]/64:x=y", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	assert_int_equal(lookup(&r, "10.1.255.255"), 0);
	assert_int_equal(lookup(&r, "10.1.0.0"), 0);
	assert_int_equal(lookup(&r, "10.2.0.0"), -1);
	assert_int_equal(lookup(&r, "192.0.2.9"), -1);
	assert_int_equal(lookup(&r, "192.0.2.10"), 1);
	assert_int_equal(lookup(&r, "192.0.2.20"), 1);
	assert_int_equal(lookup(&r, "192.0.2.21"), -1);
	assert_int_equal(lookup(&r, "2001:db8::"), -1);
	assert_int_equal(lookup(&r, "2001:db8::1"), 2);
	assert_int_equal(lookup(&r, "2001:db8::ff"), 2);
	assert_int_equal(lookup(&r, "2001:db8::100"), -1);
	assert_int_equal(lookup(&r, "2001:db8:1:ffff::1"), 3);
	assert_int_equal(lookup(&r, "2001:db8:2::abcd"), 4);
	assert_string_equal(r.v[0].text, ",customer=\"acme\"");
	assert_string_equal(r.v[1].text, "");
	assert_string_equal(r.v[2].labels[0].name, "site");
	ranges_free(&r);
}

static void test_whole_space(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "0.0.0.0/0", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "::/0", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	assert_int_equal(lookup(&r, "0.0.0.0"), 0);
	assert_int_equal(lookup(&r, "255.255.255.255"), 0);
	assert_int_equal(lookup(&r, "::"), 1);
	assert_int_equal(lookup(&r, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 1);
	ranges_free(&r);
}

static void test_first_match_wins_in_command_line_order(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.128/25:who=small", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:who=big", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "10.0.0.200-10.0.1.5:who=never_for_200", err, sizeof err),
	                 0);
	assert_int_equal(ranges_build(&r), 0);
	assert_int_equal(lookup(&r, "10.0.0.127"), 1);
	assert_int_equal(lookup(&r, "10.0.0.128"), 0);
	assert_int_equal(lookup(&r, "10.0.0.200"), 0);
	assert_int_equal(lookup(&r, "10.0.0.255"), 0);
	assert_int_equal(lookup(&r, "10.0.1.0"), 1);
	assert_int_equal(lookup(&r, "11.0.0.0"), -1);
	ranges_free(&r);
}

static void test_label_values_may_hold_colons_and_are_escaped(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:url=http://x:80/:q=a\"b\\c", err, sizeof err),
	                 0);
	assert_int_equal(r.v[0].nlabels, 2);
	assert_string_equal(r.v[0].labels[0].value, "http://x:80/");
	assert_string_equal(r.v[0].text, ",url=\"http://x:80/\",q=\"a\\\"b\\\\c\"");
	ranges_free(&r);
}

static void test_bad_specs_are_rejected_with_a_reason(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "",
	    "10.0.0.0/33",
	    "10.0.0.0/",
	    "10.0.0.300/8",
	    "10.0.0.9-10.0.0.1",
	    "2001:db8::1-2001:db8::2",
	    "[2001:db8::1]-10.0.0.1",
	    "10.0.0.0/8:1abc=x",
	    "10.0.0.0/8:ip=x",
	    "10.0.0.0/8:interface=x",
	    "10.0.0.0/8:protocol=x",
	    "10.0.0.0/8:le=x",
	    "10.0.0.0/8:job=x",
	    "10.0.0.0/8:instance=x",
	    "10.0.0.0/8:__x=y",
	    "10.0.0.0/8:a=1:a=2",
	    "10.0.0.0/8:novalue",
	    "10.0.0.0/8x",
	    "[::1]/129",
	    "hello",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ranges r;
		ranges_init(&r);
		err[0] = '\0';
		int rc = ranges_add(&r, bad[i], err, sizeof err);
		if (rc == 0)
			fail_msg("accepted bad range '%s'", bad[i]);
		assert_true(strlen(err) > 0);
		ranges_free(&r);
	}
}

static void test_host_bits_are_cleared(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.1.2.3/24", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "192.0.2.5", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	assert_int_equal(lookup(&r, "10.1.2.0"), 0);
	assert_int_equal(lookup(&r, "10.1.2.255"), 0);
	assert_int_equal(lookup(&r, "192.0.2.5"), 1);
	assert_int_equal(lookup(&r, "192.0.2.6"), -1);
	ranges_free(&r);
}

/* The hinted lookup (capture threads) answers exactly like the plain one,
 * whatever the previous hit was. */
static void test_hinted_lookup_matches_plain_lookup(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.128/25", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "192.0.2.0-192.0.2.9", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "0.0.0.0/32", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	struct ranges_hint4 hint;
	ranges_hint4_init(&hint, &r);
	uint32_t x = 12345;
	for (int i = 0; i < 100000; i++) {
		x = x * 1103515245u + 12345u;
		uint32_t a = (i % 3 == 0)   ? (10u << 24) | (x & 0x3ff)
		             : (i % 3 == 1) ? x
		                            : 0xc0000200u + (x % 16);
		assert_int_equal(ranges_lookup4_hint(&r, a, &hint), ranges_lookup4(&r, a));
	}
	assert_int_equal(ranges_lookup4_hint(&r, 0, &hint), 3);
	ranges_free(&r);

	/* a fresh hint, with 0.0.0.0 in no range */
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	ranges_hint4_init(&hint, &r);
	assert_int_equal(ranges_lookup4_hint(&r, 0, &hint), -1);
	assert_int_equal(ranges_lookup4_hint(&r, 0x0a000001u, &hint), 0);
	assert_int_equal(ranges_lookup4_hint(&r, 0, &hint), -1);
	assert_int_equal(ranges_lookup4_hint(&r, 0x0b000000u, &hint), -1);
	assert_int_equal(ranges_lookup4_hint(&r, 0x0affffffu, &hint), 0);
	ranges_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr_and_first_last),
	    cmocka_unit_test(test_whole_space),
	    cmocka_unit_test(test_first_match_wins_in_command_line_order),
	    cmocka_unit_test(test_label_values_may_hold_colons_and_are_escaped),
	    cmocka_unit_test(test_bad_specs_are_rejected_with_a_reason),
	    cmocka_unit_test(test_host_bits_are_cleared),
	    cmocka_unit_test(test_hinted_lookup_matches_plain_lookup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
