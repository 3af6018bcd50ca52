/* Specification of address ranges and their labels (src/ranges.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

/* The range group a hinted lookup finds, or -1. */
static int hinted(const struct ranges *r, uint32_t a, struct ranges_hint4 *h)
{
	uint32_t v = ranges_val4_hint(r, a, h);
	return ranges_val_in(v) ? (int)ranges_val_group(v) : -1;
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
	/* the labels sorted by name: one set has one text */
	assert_string_equal(r.v[0].labels[1].value, "http://x:80/");
	assert_string_equal(r.v[0].text, ",q=\"a\\\"b\\\\c\",url=\"http://x:80/\"");
	ranges_free(&r);
}

/* Label sets are sets: the same labels in another order (a -r flag and
 * the file, or a file edited) are one label set, one group, one text
 * (before: two groups, two series with one Prometheus label set on the
 * page, a reload that only reordered them ended the series). */
static void test_label_order_does_not_make_another_set(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.0/24:b=2:a=1", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "10.0.1.0/24:a=1:b=2", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	assert_string_equal(r.v[0].text, ",a=\"1\",b=\"2\"");
	assert_string_equal(r.v[1].text, r.v[0].text);
	assert_int_equal(r.v[1].group, r.v[0].group);
	ranges_free(&r);
}

/* Found by fuzz_ranges: a label value that is not UTF-8 would make every
 * scrape of the page fail; it is a start-up error instead. */
static void test_label_values_must_be_utf8(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:customer=caf\xc3\xa9", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:customer=caf\xe9", err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "UTF-8"));
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:a=\xed\xa0\x80", err, sizeof err), -EINVAL);
	assert_int_equal(r.n, 1);
	ranges_free(&r);
}

/* The command line follows the config file's rules: no empty label value
 * (Prometheus reads it as no label), none longer than LABELS_VALUE_MAX, no
 * leading zero in a prefix length. */
static void test_empty_long_values_and_leading_zeros_are_refused(void **state)
{
	(void)state;
	static const struct {
		const char *spec, *needle;
	} bad[] = {
	    {"10.0.0.0/8:b=", "label 'b' has an empty value"},
	    {"10.0.0.0/8:a=x:b=", "label 'b' has an empty value"},
	    {"10.0.0.0/08", "no leading zeros"},
	    {"10.0.0.0/00", "no leading zeros"},
	    {"[2001:db8::]/064", "no leading zeros"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct ranges r;
		ranges_init(&r);
		err[0] = '\0';
		if (ranges_add(&r, bad[i].spec, err, sizeof err) != -EINVAL)
			fail_msg("'%s' accepted", bad[i].spec);
		if (!strstr(err, bad[i].needle))
			fail_msg("'%s': error '%s' lacks '%s'", bad[i].spec, err, bad[i].needle);
		assert_int_equal(r.n, 0);
		ranges_free(&r);
	}

	struct ranges r;
	ranges_init(&r);
	char spec[LABELS_VALUE_MAX + 32];
	int o = snprintf(spec, sizeof spec, "10.0.0.0/8:a=");
	memset(spec + o, 'x', LABELS_VALUE_MAX);
	spec[o + LABELS_VALUE_MAX] = '\0';
	assert_int_equal(ranges_add(&r, spec, err, sizeof err), 0); /* at the limit */
	assert_int_equal(ranges_add(&r, "0.0.0.0/0:a=x", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "[2001:db8::]/0", err, sizeof err), 0);
	char *big = malloc(5u << 20);
	assert_non_null(big);
	o = snprintf(big, 64, "10.0.0.0/8:a=");
	memset(big + o, 'x', (5u << 20) - (size_t)o - 1);
	big[(5u << 20) - 1] = '\0';
	assert_int_equal(ranges_add(&r, big, err, sizeof err), -EINVAL);
	free(big);
	if (!strstr(err, "label 'a': value longer than 4096 bytes"))
		fail_msg("5 MB value: '%s'", err);
	assert_int_equal(r.n, 3);
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
/* The address and prefix helpers shared with the config file loader. */
static void test_address_and_prefix_helpers(void **state)
{
	(void)state;
	uint8_t a[16], first[16], last[16], fam = 0;
	assert_int_equal(ranges_parse_addr("198.51.100.7/24", 12, a, &fam), 0);
	assert_int_equal(fam, 4);
	assert_int_equal(ranges_prefix_bounds(a, 4, 24, first, last), 1); /* host bits set */
	assert_memory_equal(first, ((uint8_t[16]){198, 51, 100, 0}), 16);
	assert_memory_equal(last, ((uint8_t[16]){198, 51, 100, 255}), 16);
	assert_int_equal(ranges_prefix_bounds(a, 4, 32, a, last), 0); /* in place */
	assert_memory_equal(a, ((uint8_t[16]){198, 51, 100, 7}), 16);
	assert_memory_equal(last, a, 16);
	assert_int_equal(ranges_prefix_bounds(a, 4, 0, first, last), 1);
	assert_memory_equal(first, ((uint8_t[16]){0}), 16);
	assert_memory_equal(last, ((uint8_t[16]){255, 255, 255, 255}), 16);

	assert_int_equal(ranges_parse_addr("2001:db8::", 10, a, &fam), 0);
	assert_int_equal(fam, 6);
	assert_int_equal(ranges_prefix_bounds(a, 6, 32, first, last), 0);
	assert_memory_equal(first, a, 16);
	assert_memory_equal(last,
	                    ((uint8_t[16]){0x20, 0x01, 0x0d, 0xb8, 255, 255, 255, 255, 255, 255,
	                                   255, 255, 255, 255, 255, 255}),
	                    16);
	assert_int_equal(ranges_prefix_bounds(a, 6, 0, first, last), 1);
	assert_memory_equal(first, ((uint8_t[16]){0}), 16);
	assert_memory_equal(last,
	                    ((uint8_t[16]){255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
	                                   255, 255, 255, 255, 255}),
	                    16);

	assert_int_equal(ranges_parse_addr("10.0.0.256", 10, a, &fam), -EINVAL);
	assert_int_equal(ranges_parse_addr("", 0, a, &fam), -EINVAL);
	char big[80];
	memset(big, '1', sizeof big);
	assert_int_equal(ranges_parse_addr(big, sizeof big, a, &fam), -EINVAL);
}

static void test_hinted_lookup_matches_plain_lookup(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.128/25:n=0", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:n=1", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "192.0.2.0-192.0.2.9:n=2", err, sizeof err), 0);
	assert_int_equal(ranges_add(&r, "0.0.0.0/32:n=3", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	struct ranges_hint4 hint;
	ranges_hint4_init(&hint, &r);
	uint32_t x = 12345;
	for (int i = 0; i < 100000; i++) {
		x = x * 1103515245u + 12345u;
		uint32_t a = (i % 3 == 0)   ? (10u << 24) | (x & 0x3ff)
		             : (i % 3 == 1) ? x
		                            : 0xc0000200u + (x % 16);
		assert_int_equal(hinted(&r, a, &hint), ranges_lookup4(&r, a));
	}
	assert_int_equal(hinted(&r, 0, &hint), 3);
	ranges_free(&r);

	/* a fresh hint, with 0.0.0.0 in no range */
	ranges_init(&r);
	assert_int_equal(ranges_add(&r, "10.0.0.0/8", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	ranges_hint4_init(&hint, &r);
	assert_int_equal(hinted(&r, 0, &hint), -1);
	assert_int_equal(hinted(&r, 0x0a000001u, &hint), 0);
	assert_int_equal(hinted(&r, 0, &hint), -1);
	assert_int_equal(hinted(&r, 0x0b000000u, &hint), -1);
	assert_int_equal(hinted(&r, 0x0affffffu, &hint), 0);
	ranges_free(&r);
}

/* The reference answer: the first range in the order given that holds a. */
static int naive4(const uint32_t *first, const uint32_t *last, int n, uint32_t a)
{
	for (int i = 0; i < n; i++)
		if (first[i] <= a && a <= last[i])
			return i;
	return -1;
}

static uint32_t rnd32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/* Random overlapping ranges (nested, crossing, repeated, touching the top
 * and bottom of the space): every lookup, at and around every boundary and
 * at random, answers like the first-match scan, with and without a hint. */
static void test_overlaps_answer_like_a_first_match_scan(void **state)
{
	(void)state;
	enum { N = 300 };
	uint32_t first[N], last[N], x = 2463534242u;
	for (int round = 0; round < 20; round++) {
		struct ranges r;
		ranges_init(&r);
		for (int i = 0; i < N; i++) {
			uint32_t a = rnd32(&x), b;
			switch (rnd32(&x) % 5) {
			case 0:
				b = a;
				break; /* one address */
			case 1:
				b = a + rnd32(&x) % 64;
				break; /* small */
			case 2:
				a &= 0xffff0000u;
				b = a + 0xffffu;
				break; /* a /16 */
			case 3:
				a = 0;
				b = rnd32(&x);
				break; /* from the bottom */
			default:
				b = 0xffffffffu - rnd32(&x) % 1024;
				break; /* to the top */
			}
			if (b < a)
				b = 0xffffffffu;
			if (i > 0 && rnd32(&x) % 10 == 0) { /* a repeat of an earlier one */
				int j = (int)(rnd32(&x) % (uint32_t)i);
				a = first[j];
				b = last[j];
			}
			first[i] = a;
			last[i] = b;
			struct range_entry e = {.family = 4};
			uint32_t fa = htonl(a), la = htonl(b);
			memcpy(e.first, &fa, 4);
			memcpy(e.last, &la, 4);
			assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
		}
		assert_int_equal(ranges_build(&r), 0);
		struct ranges_hint4 hint;
		ranges_hint4_init(&hint, &r);
		for (int i = 0; i < N; i++) {
			uint32_t probes[6] = {first[i], first[i] - 1, first[i] + 1,
			                      last[i],  last[i] + 1,  last[i] - 1};
			for (int k = 0; k < 6; k++) {
				int want = naive4(first, last, N, probes[k]);
				assert_int_equal(ranges_lookup4(&r, probes[k]), want);
				assert_int_equal(ranges_val4_hint(&r, probes[k], &hint),
				                 ranges_val4(&r, probes[k]));
			}
		}
		for (int i = 0; i < 2000; i++) {
			uint32_t a = rnd32(&x);
			assert_int_equal(ranges_lookup4(&r, a), naive4(first, last, N, a));
		}
		ranges_free(&r);
	}
}

/* The same for IPv6, with ranges differing in high and low words. */
static void test_ipv6_overlaps_answer_like_a_first_match_scan(void **state)
{
	(void)state;
	enum { N = 200 };
	uint8_t first[N][16], last[N][16];
	uint32_t x = 88172645u;
	struct ranges r;
	ranges_init(&r);
	for (int i = 0; i < N; i++) {
		memset(first[i], 0, 16);
		first[i][0] = 0x20;
		first[i][1] = 0x01;
		first[i][4] = (uint8_t)(rnd32(&x) % 4); /* few /40s: overlaps */
		first[i][7] = (uint8_t)(rnd32(&x) % 3);
		first[i][15] = (uint8_t)(rnd32(&x) % 200);
		memcpy(last[i], first[i], 16);
		if (rnd32(&x) % 2)
			memset(last[i] + 8, 0xff, 8); /* to the end of a /64 */
		else
			last[i][15] = (uint8_t)(first[i][15] + rnd32(&x) % 50);
		struct range_entry e = {.family = 6};
		memcpy(e.first, first[i], 16);
		memcpy(e.last, last[i], 16);
		assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
	}
	assert_int_equal(ranges_build(&r), 0);
	for (int t = 0; t < 5000; t++) {
		uint8_t a[16];
		memcpy(a, first[rnd32(&x) % N], 16);
		a[15] = (uint8_t)(a[15] + rnd32(&x) % 64 - 8);
		if (rnd32(&x) % 4 == 0)
			memcpy(a, last[rnd32(&x) % N], 16);
		int want = -1;
		for (int i = 0; i < N && want < 0; i++)
			if (memcmp(first[i], a, 16) <= 0 && memcmp(a, last[i], 16) <= 0)
				want = i;
		assert_int_equal(ranges_lookup6(&r, a), want);
		/* the capture threads' two-step lookup: window, then piece */
		assert_int_equal(ranges_val6_in(&r, a, ranges_prefetch6(&r, a)),
		                 ranges_val6(&r, a));
	}
	ranges_free(&r);
}

/* IPv6 boundaries spread over the whole space (no common top bits) and
 * packed in one /48: every lookup at and around each bound answers like the
 * first-match scan, through both lookups. */
static void test_ipv6_buckets(void **state)
{
	(void)state;
	enum { N = 400 };
	uint8_t first[N][16], last[N][16];
	uint32_t x = 4242;
	struct ranges r;
	ranges_init(&r);
	for (int i = 0; i < N; i++) {
		memset(first[i], 0, 16);
		if (i == 0) {
			memset(last[i], 0, 16);
			last[i][15] = 0xff; /* from :: */
		} else if (i == 1) {
			first[i][0] = 0x80; /* to the top */
			memset(last[i], 0xff, 16);
		} else if (i % 3 == 0) {
			for (int k = 0; k < 16; k++)
				first[i][k] = (uint8_t)rnd32(&x);
			memcpy(last[i], first[i], 16);
			last[i][3] = 0xff;
		} else {
			first[i][0] = 0x20, first[i][1] = 0x01, first[i][2] = 0x0d,
			first[i][3] = 0xb8;
			first[i][5] = 1;
			first[i][14] = (uint8_t)(rnd32(&x) % 8);
			first[i][15] = (uint8_t)rnd32(&x);
			memcpy(last[i], first[i], 16);
			last[i][15] = (uint8_t)(first[i][15] | (rnd32(&x) % 64));
		}
		if (memcmp(first[i], last[i], 16) > 0)
			memcpy(last[i], first[i], 16);
		struct range_entry e = {.family = 6};
		memcpy(e.first, first[i], 16);
		memcpy(e.last, last[i], 16);
		assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
	}
	assert_int_equal(ranges_build(&r), 0);
	for (int i = 0; i < N; i++)
		for (int k = 0; k < 4; k++) {
			uint8_t a[16];
			memcpy(a, k < 2 ? first[i] : last[i], 16);
			int d = k % 2 ? 1 : -1;
			for (int j = 15; j >= 0; j--) { /* a +/- 1 */
				uint8_t o = a[j];
				a[j] = (uint8_t)(a[j] + d);
				if ((d > 0 && a[j] > o) || (d < 0 && a[j] < o))
					break;
			}
			for (int m = 0; m < 2; m++) {
				const uint8_t *p = m ? a : (k < 2 ? first[i] : last[i]);
				int want = -1;
				for (int q = 0; q < N && want < 0; q++)
					if (memcmp(first[q], p, 16) <= 0 &&
					    memcmp(p, last[q], 16) <= 0)
						want = q;
				assert_int_equal(ranges_lookup6(&r, p), want);
				assert_int_equal(ranges_val6_in(&r, p, ranges_prefetch6(&r, p)),
				                 ranges_val6(&r, p));
			}
		}
	ranges_free(&r);
}

/* The class of each address's bucket (ranges_class4/6: the capture
 * threads make the key of an address in a bucket of one key length without
 * a lookup, and look up its range only for a key they do not hold) never
 * lies: with random ranges (holes, rollups of many lengths, aligned and
 * not, overlaps), for every address tried: EMPTY means in no range; a
 * length L means every address in a range there has key length L (the
 * address length: no rollup) and its prefix of length L holds only
 * addresses of the same val, or of none. */
static void check_class4(const struct ranges *r, uint32_t a, size_t *seen)
{
	unsigned c = ranges_class4(r, a);
	uint32_t v = ranges_val4(r, a);
	seen[c == RANGES_CLASS_EMPTY ? 0 : c == RANGES_CLASS_LOOKUP ? 1 : 2]++;
	if (c == RANGES_CLASS_EMPTY) {
		assert_false(ranges_val_in(v));
		return;
	}
	if (c == RANGES_CLASS_LOOKUP || !ranges_val_in(v))
		return;
	assert_int_equal(ranges_val_rollup(v) ? ranges_val_rollup(v) : 32, c);
	uint32_t lo = c == 32 ? a : a & ~(0xffffffffu >> c),
	         hi = c == 32 ? a : lo | 0xffffffffu >> c;
	size_t p0 = ranges_piece4(r, lo), p1 = ranges_piece4(r, hi);
	for (size_t p = p0; p <= p1; p++)
		assert_true(r->p4_val[p] == v || !ranges_val_in(r->p4_val[p]));
	if (ranges_val_rollup(v)) /* aligned: one piece */
		assert_int_equal(p0, p1);
}

static void test_bucket_classes_never_lie(void **state)
{
	(void)state;
	uint32_t x = 77;
	char name[] = "c", value[] = "v";
	size_t seen[3] = {0, 0, 0};
	for (int round = 0; round < 12; round++) {
		struct ranges r;
		ranges_init(&r);
		for (int i = 0; i < 300; i++) {
			uint32_t a = 0x0a000000u | (rnd32(&x) & 0x00ffffffu), b;
			int gran = 0;
			switch (rnd32(&x) % 5) {
			case 0:
				a &= 0xffff0000u;
				b = a + (rnd32(&x) % 4) * 0x10000u + 0xffffu; /* whole /16s */
				break;
			case 1:
				b = a + rnd32(&x) % 300; /* small */
				break;
			case 2: /* aligned /24s rolled up at 24 to 28 */
				gran = (int)(24 + rnd32(&x) % 5);
				a &= 0xffffff00u;
				b = a + (rnd32(&x) % 8) * 0x100u + 0xffu;
				break;
			default:
				b = a + rnd32(&x) % 0x30000u;
				if (rnd32(&x) % 4 == 0)
					gran = (int)(16 + rnd32(&x) % 17);
				break;
			}
			char v[8];
			snprintf(v, sizeof v, "%d", (int)(rnd32(&x) % 5));
			(void)value;
			struct label l = {name, v};
			struct range_entry e = {.family = 4, .labels = &l, .nlabels = 1};
			e.granularity = gran;
			uint32_t fa = htonl(a), la = htonl(b < a ? 0xffffffffu : b);
			memcpy(e.first, &fa, 4);
			memcpy(e.last, &la, 4);
			assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
		}
		assert_int_equal(ranges_build(&r), 0);
		for (uint32_t h = 0x0900; h <= 0x0c00; h++)
			for (uint32_t k = 0; k < 8; k++)
				check_class4(&r, h << 16 | (rnd32(&x) & 0xffffu), seen);
		for (int i = 0; i < 20000; i++)
			check_class4(&r, 0x0a000000u | (rnd32(&x) & 0x01ffffffu), seen);
		for (size_t p = 1; p < r.np4; p++) { /* every boundary and its neighbours */
			check_class4(&r, r.p4_first[p], seen);
			check_class4(&r, r.p4_first[p] - 1, seen);
		}
		ranges_free(&r);
	}
	assert_true(seen[0] > 1000 && seen[1] > 1000 && seen[2] > 1000);

	/* IPv6: a plain /32, a /48 inside it rolled up at /64 (its bucket,
	 * here a /46, has two key lengths: look up), a second /32 rolled up
	 * at /64 (one length, aligned), space in no range */
	struct ranges r;
	ranges_init(&r);
	const char *specs[] = {"2001:db8:1::/48:c=r", "2001:db8::/32:c=a", "2001:db9::/32:c=b"};
	for (int i = 0; i < 3; i++)
		assert_int_equal(ranges_add(&r, specs[i], err, sizeof err), 0);
	r.v[0].granularity = 64;
	r.v[2].granularity = 64;
	assert_int_equal(ranges_build(&r), 0);
	uint8_t a[16];
	struct {
		const char *text;
		unsigned class;
	} probes[] = {{"2001:db8:4::1", 128},
	              {"2001:db8:ffff::1", 128},
	              {"2001:db9:7::", 64},
	              {"2001:db9:ffff:ffff::1", 64},
	              {"2001:db8:1::1", RANGES_CLASS_LOOKUP},
	              {"2001:db8:2::1", RANGES_CLASS_LOOKUP},
	              {"2001:db7::1", RANGES_CLASS_EMPTY},
	              {"2001:dba::", RANGES_CLASS_EMPTY},
	              {"::", RANGES_CLASS_EMPTY},
	              {"ffff::1", RANGES_CLASS_EMPTY}};
	for (size_t i = 0; i < sizeof probes / sizeof probes[0]; i++) {
		assert_int_equal(inet_pton(AF_INET6, probes[i].text, a), 1);
		unsigned c = ranges_class6(&r, ranges_addr6(a));
		uint32_t v = ranges_val6(&r, a);
		if (c == RANGES_CLASS_EMPTY)
			assert_false(ranges_val_in(v));
		else if (c != RANGES_CLASS_LOOKUP)
			assert_int_equal(ranges_val_rollup(v) ? ranges_val_rollup(v) : 128, c);
		assert_int_equal(c, probes[i].class);
	}
	ranges_free(&r);
}

/* Initialises r with 3,000 small random ranges in 10.0.0.0/16 (a dense
 * /16), labelled n=0 to n=6. */
static void add_dense_ranges(struct ranges *r)
{
	uint32_t x = 977;
	ranges_init(r);
	for (int i = 0; i < 3000; i++) {
		char spec[64];
		uint32_t a = (10u << 24) + (rnd32(&x) & 0xffff), len = rnd32(&x) % 300;
		uint32_t b = a + len > 0x0a00ffffu ? 0x0a00ffffu : a + len;
		snprintf(spec, sizeof spec, "%u.%u.%u.%u-%u.%u.%u.%u:n=%d", a >> 24, a >> 16 & 255,
		         a >> 8 & 255, a & 255, b >> 24, b >> 16 & 255, b >> 8 & 255, b & 255,
		         i % 7);
		assert_int_equal(ranges_add(r, spec, err, sizeof err), 0);
	}
}

/* A dense /16 (a table of its /24s, up to three pieces inline): every
 * address of it, and of its neighbours, answers like the piece search. */
static void test_dense_blocks_answer_like_the_search(void **state)
{
	(void)state;
	struct ranges r;
	add_dense_ranges(&r);
	assert_int_equal(ranges_build(&r), 0);
	assert_non_null(ranges_dir4(&r, 0x0a000000u));
	assert_null(ranges_dir4(&r, 0x0b000000u));
	struct ranges_hint4 hint;
	ranges_hint4_init(&hint, &r);
	for (uint32_t a = 0x09ffff00u; a <= 0x0a010100u; a++) {
		uint32_t want = r.p4_val[ranges_piece4(&r, a)];
		assert_int_equal(ranges_val4_dir(&r, a), want);
		assert_int_equal(ranges_val4_hint(&r, a, &hint), want);
		assert_int_equal(ranges_val4(&r, a), want);
	}
	ranges_free(&r);
}

/* Stable ids (a reload's): every val names its owner's group by the id
 * given, in the pieces, the dense blocks and IPv6 alike; the rollup part
 * stays. */
static void test_ids_replace_the_group_in_every_val(void **state)
{
	(void)state;
	struct ranges r;
	add_dense_ranges(&r);
	assert_int_equal(ranges_add(&r, "2001:db8::/32:n=v6", err, sizeof err), 0);
	struct range_entry e = {.family = 4,
	                        .first = {192, 168, 0, 0},
	                        .last = {192, 168, 255, 255},
	                        .granularity = 24};
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	uint32_t *ids = calloc(r.n, sizeof *ids);
	assert_non_null(ids);
	for (size_t i = 0; i < r.n; i++)
		ids[i] = 1000 + 3 * (uint32_t)i; /* read for groups' first ranges only */
	uint32_t *before = malloc(sizeof *before * 0x20202);
	assert_non_null(before);
	size_t k = 0;
	for (uint32_t a = 0x09ffff00u; a <= 0x0a010100u; a++)
		before[k++] = ranges_val4(&r, a);
	ranges_set_ids(&r, ids);
	for (size_t i = 0; i < r.n; i++)
		assert_int_equal(r.v[i].id, ids[r.v[i].group]);
	k = 0;
	for (uint32_t a = 0x09ffff00u; a <= 0x0a010100u; a++, k++) {
		uint32_t v = ranges_val4_dir(&r, a), b = before[k];
		assert_int_equal(ranges_val4(&r, a), v);
		assert_int_equal(ranges_val_in(v), ranges_val_in(b));
		if (ranges_val_in(b))
			assert_int_equal(ranges_val_group(v), ids[ranges_val_group(b)]);
	}
	uint8_t a6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	assert_int_equal(ranges_val_group(ranges_val6(&r, a6)), ids[r.n - 2]);
	uint32_t v = ranges_val4(&r, 0xc0a80101u);
	assert_int_equal(ranges_val_group(v), ids[r.n - 1]);
	assert_int_equal(ranges_val_rollup(v), 24);
	free(before);
	free(ids);
	ranges_free(&r);
}

/* ISP scale: 100,000 ranges (a /26 each, in reverse order, under a /8 that
 * comes last) build and resolve; timing is the benchmark's job. */
static void test_hundred_thousand_ranges(void **state)
{
	(void)state;
	struct ranges r;
	ranges_init(&r);
	for (uint32_t i = 0; i < 100000; i++) {
		struct range_entry e = {.family = 4};
		uint32_t a = htonl((10u << 24) + (99999u - i) * 64), b = htonl(ntohl(a) + 63);
		memcpy(e.first, &a, 4);
		memcpy(e.last, &b, 4);
		assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
	}
	assert_int_equal(ranges_add(&r, "10.0.0.0/8:who=rest", err, sizeof err), 0);
	assert_int_equal(ranges_build(&r), 0);
	for (uint32_t i = 0; i < 100000; i += 7) {
		uint32_t a = (10u << 24) + i * 64;
		assert_int_equal(ranges_lookup4(&r, a), (int)(99999u - i));
		assert_int_equal(ranges_lookup4(&r, a + 63), (int)(99999u - i));
	}
	assert_int_equal(ranges_lookup4(&r, (10u << 24) + 100000u * 64), 100000);
	assert_int_equal(ranges_lookup4(&r, 0x0affffffu), 100000);
	assert_int_equal(ranges_lookup4(&r, 0x0b000000u), -1);
	ranges_free(&r);
}

/* Entries from a config source: labels are copied, granularity defaults to
 * the address length, and what is invalid is refused with a reason. */
static void test_entries_are_copied_and_checked(void **state)
{
	(void)state;
	struct ranges r;
	char n1[] = "customer", v1[] = "acme", n2[] = "plan", v2[] = "gold \"x\"";
	struct label l[2] = {{n1, v1}, {n2, v2}};
	struct range_entry e = {.family = 4, .labels = l, .nlabels = 2, .max_addresses = 1000};
	inet_pton(AF_INET, "198.51.100.0", e.first);
	inet_pton(AF_INET, "198.51.100.255", e.last);
	ranges_init(&r);
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
	e.granularity = 24;
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), 0);
	v1[0] = 'X'; /* copied: the caller's strings may go */
	assert_string_equal(r.v[0].labels[0].value, "acme");
	assert_string_equal(r.v[0].text, ",customer=\"acme\",plan=\"gold \\\"x\\\"\"");
	assert_int_equal(r.v[0].granularity, 32);
	assert_int_equal(r.v[1].granularity, 24);
	assert_int_equal(r.v[0].max_addresses, 1000);

	struct range_entry e6 = {.family = 6, .granularity = 64};
	inet_pton(AF_INET6, "2001:db8:100::", e6.first);
	inet_pton(AF_INET6, "2001:db8:1ff:ffff:ffff:ffff:ffff:ffff", e6.last);
	assert_int_equal(ranges_add_entry(&r, &e6, err, sizeof err), 0);
	assert_int_equal(r.v[2].granularity, 64);
	e6.granularity = 0;
	assert_int_equal(ranges_add_entry(&r, &e6, err, sizeof err), 0);
	assert_int_equal(r.v[3].granularity, 128);

	e.granularity = 33;
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "granularity 33"));
	e6.granularity = 129;
	assert_int_equal(ranges_add_entry(&r, &e6, err, sizeof err), -EINVAL);
	e.granularity = 0;
	char bad[] = "ip";
	l[1].name = bad;
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "reserved"));
	char dup[] = "customer";
	l[1].name = dup;
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "twice"));
	char inval[] = "1x";
	l[1].name = inval;
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), -EINVAL);
	e.nlabels = 0;
	inet_pton(AF_INET, "198.51.100.9", e.first);
	inet_pton(AF_INET, "198.51.100.8", e.last);
	assert_int_equal(ranges_add_entry(&r, &e, err, sizeof err), -EINVAL);
	assert_int_equal(r.n, 4);
	ranges_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cidr_and_first_last),
	    cmocka_unit_test(test_whole_space),
	    cmocka_unit_test(test_first_match_wins_in_command_line_order),
	    cmocka_unit_test(test_label_values_may_hold_colons_and_are_escaped),
	    cmocka_unit_test(test_label_order_does_not_make_another_set),
	    cmocka_unit_test(test_bad_specs_are_rejected_with_a_reason),
	    cmocka_unit_test(test_empty_long_values_and_leading_zeros_are_refused),
	    cmocka_unit_test(test_label_values_must_be_utf8),
	    cmocka_unit_test(test_host_bits_are_cleared),
	    cmocka_unit_test(test_address_and_prefix_helpers),
	    cmocka_unit_test(test_hinted_lookup_matches_plain_lookup),
	    cmocka_unit_test(test_overlaps_answer_like_a_first_match_scan),
	    cmocka_unit_test(test_ipv6_overlaps_answer_like_a_first_match_scan),
	    cmocka_unit_test(test_dense_blocks_answer_like_the_search),
	    cmocka_unit_test(test_bucket_classes_never_lie),
	    cmocka_unit_test(test_ids_replace_the_group_in_every_val),
	    cmocka_unit_test(test_ipv6_buckets),
	    cmocka_unit_test(test_hundred_thousand_ranges),
	    cmocka_unit_test(test_entries_are_copied_and_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
