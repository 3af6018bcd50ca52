/* Specification of the batched per-packet accounting (account.h): the
 * capture threads queue address lookups ACCT_BATCH at a time, prefetch one
 * queue while counting the other, and flush at the end of each dispatch.
 * Whatever the queueing, the result is the one-packet-at-a-time result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

/* A deterministic mix of frames: IPv4 and IPv6, addresses seen before and
 * new ones, one new address several times within one queue, addresses
 * outside every range, non-IP frames and broken ones. */
struct frame {
	uint8_t b[80];
	uint32_t len, wire;
};

static size_t make_frame(struct frame *f, unsigned i)
{
	char s[64], d[64];
	size_t n;
	memset(f, 0, sizeof *f);
	switch (i % 7) {
	case 0: /* a few hot IPv4 addresses */
	case 1:
		snprintf(s, sizeof s, "10.0.0.%u", i % 5);
		snprintf(d, sizeof d, "10.1.%u.%u", (i / 7) % 3, i % 2);
		n = fr_eth(f->b, 0x0800);
		n += fr_ipv4(f->b + n, s, d, i % 3 ? 6 : 17);
		break;
	case 2: /* many new IPv4 addresses, each repeated 3 times in a row */
		snprintf(s, sizeof s, "10.2.%u.%u", (i / 21) / 256, (i / 21) % 256);
		n = fr_eth(f->b, 0x0800);
		n += fr_ipv4(f->b + n, s, "192.0.2.9", 6); /* destination outside */
		break;
	case 3: /* IPv6, new and known */
		snprintf(s, sizeof s, "2001:db8::%x", (i / 7) % 40);
		snprintf(d, sizeof d, "2001:db8:1::%x", (i / 7) % 3);
		n = fr_eth(f->b, 0x86dd);
		n += fr_ipv6(f->b + n, s, d, (i / 7) % 2 ? 6 : 58);
		break;
	case 4: /* non-IP */
		n = fr_eth(f->b, 0x0806) + 28;
		break;
	case 5: /* broken IPv4 header */
		n = fr_eth(f->b, 0x0800);
		n += fr_ipv4(f->b + n, "10.0.0.1", "10.0.0.2", 6);
		f->b[14] = 0x44;
		break;
	default: /* both outside the ranges */
		n = fr_eth(f->b, 0x0800);
		n += fr_ipv4(f->b + n, "192.0.2.1", "198.51.100.1", 17);
		break;
	}
	f->len = (uint32_t)n;
	f->wire = (uint32_t)n + (i * 37) % 1400;
	return n;
}

#define NFRAMES 20000

static char *run(int batched, size_t max_addresses)
{
	static struct frame f;
	const char *ranges[] = {"10.0.0.0/8:net=ten", "2001:db8::/32"};
	struct fixture *fx = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 2, max_addresses);
	struct acct_batch b;
	account_batch_init(&b, &fx->ranges);
	parse_fn parse = parse_for_linktype(DLT_EN10MB);
	for (unsigned i = 0; i < NFRAMES; i++) {
		make_frame(&f, i);
		if (batched) {
			account_batch_packet(fx->shard, &b, &fx->ranges, &fx->layout, parse, f.b,
			                     f.len, f.wire);
			if (i % 1000 == 999) /* a dispatch ends */
				account_batch_flush(fx->shard, &b, &fx->layout);
		} else {
			account_packet(fx->shard, &fx->ranges, &fx->layout, DLT_EN10MB, f.b, f.len,
			               f.wire);
		}
	}
	if (batched)
		account_batch_flush(fx->shard, &b, &fx->layout);
	char *page = fixture_render(&fx->reg);
	fixture_free(fx);
	return page;
}

/* Many packets per queue (20000 frames, queues of ACCT_BATCH lookups,
 * flushed every 1000 frames): the page equals the one-at-a-time page. */
static void test_batched_path_equals_one_at_a_time(void **state)
{
	(void)state;
	char *one = run(0, 100000), *many = run(1, 100000);
	assert_string_equal(one, many);
	/* and it has the numbers: 10.0.0.1 sent frames i % 7 in {0,1}, i % 5 == 1 */
	unsigned tcp = 0, udp = 0;
	for (unsigned i = 0; i < NFRAMES; i++)
		if (i % 7 <= 1 && i % 5 == 1) {
			if (i % 3)
				tcp++;
			else
				udp++;
		}
	char want[256];
	snprintf(want, sizeof want,
	         "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\",ip=\"10.0.0.1\","
	         "protocol=\"tcp\",net=\"ten\"} %u\n",
	         tcp);
	assert_non_null(strstr(many, want));
	snprintf(want, sizeof want,
	         "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\",ip=\"10.0.0.1\","
	         "protocol=\"udp\",net=\"ten\"} %u\n",
	         udp);
	assert_non_null(strstr(many, want));
	assert_non_null(strstr(many, "promacct_packet_size_bytes_all_count{interface=\"eth0\"} "
	                             "20000\n"));
	free(one);
	free(many);
}

/* At the cap the batched path refuses the same addresses and counts the
 * same untracked observations. */
static void test_batched_path_at_the_cap_equals_one_at_a_time(void **state)
{
	(void)state;
	char *one = run(0, 50), *many = run(1, 50);
	assert_string_equal(one, many);
	assert_non_null(strstr(many, "\npromacct_tracked_addresses 50\n"));
	free(one);
	free(many);
}

/* A new address repeated within one queue gets one histogram, counted
 * once per packet. */
static void test_new_address_repeated_within_one_queue(void **state)
{
	(void)state;
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *fx = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	struct acct_batch b;
	account_batch_init(&b, &fx->ranges);
	uint8_t p[64];
	size_t n = fr_eth(p, 0x0800);
	n += fr_ipv4(p + n, "10.9.9.9", "192.0.2.1", 6);
	for (int i = 0; i < ACCT_BATCH / 2 + 3; i++)
		account_batch_packet(fx->shard, &b, &fx->ranges, &fx->layout,
		                     parse_for_linktype(DLT_EN10MB), p, (uint32_t)n, 114);
	/* the interface histogram is counted at once; addresses at the flush */
	uint64_t cum[7], sum;
	histogram_read(fx->shard->all, &fx->layout, cum, &sum);
	assert_int_equal(cum[6], ACCT_BATCH / 2 + 3);
	account_batch_flush(fx->shard, &b, &fx->layout);
	assert_int_equal(registry_address_histograms(&fx->reg), 1);
	histogram_read(addrtable_hist(&fx->shard->table, 0), &fx->layout, cum, &sum);
	assert_int_equal(cum[6], ACCT_BATCH / 2 + 3);
	assert_int_equal(sum, 100 * (ACCT_BATCH / 2 + 3));
	fixture_free(fx);
}

/* Keys made without a range lookup (an address in a /16 or IPv6 bucket
 * of one key length, ranges_class4/6) count exactly as through the lookup:
 * random ranges (per address and rolled up, aligned to their length or
 * not, holes, overlaps, shared labels, caps with ip="other") and random
 * traffic give the same page with the classes on and with every bucket
 * forced to "look up". */
static uint32_t xs32(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static char *run_mixed(int force_lookup, uint32_t seed)
{
	char err[256], name[] = "c", values[6][4] = {"a", "b", "c", "d", "e", "f"};
	uint32_t x = seed;
	struct fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	assert_int_equal(
	    histogram_layout_parse(&f->layout, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err), 0);
	ranges_init(&f->ranges);
	/* one rollup length in 10.15/16 but a boundary inside a /24: look up
	 * (first: it shadows the random ranges there) */
	for (int i = 0; i < 2; i++) {
		struct label l = {name, values[i]};
		struct range_entry e = {.family = 4,
		                        .first = {10, 15, i ? 127 : 0, i ? 100 : 0},
		                        .last = {10, 15, i ? 255 : 127, i ? 255 : 99},
		                        .labels = &l,
		                        .nlabels = 1,
		                        .granularity = 24};
		assert_int_equal(ranges_add_entry(&f->ranges, &e, err, sizeof err), 0);
	}
	for (int i = 0; i < 400; i++) {
		unsigned lv = xs32(&x) % 6;
		struct label l = {name, values[lv]};
		struct range_entry e = {.labels = &l, .nlabels = 1};
		unsigned kind = xs32(&x) % 4;
		if (i % 3 == 2) { /* IPv6 in 2001:db8::/40 */
			e.family = 6;
			unsigned k = (unsigned)i / 3;
			kind =
			    (k + k / 4) % 4; /* /48 number k % 4 first: /64, other, part, address */
			uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0, (uint8_t)(k % 4)};
			memcpy(e.first, a, 16);
			memcpy(e.last, a, 16);
			memset(e.last + 6, 0xff, 10);
			if (kind == 0)
				e.granularity = 64; /* a /48 at /64 */
			else if (kind == 1)
				e.granularity = (int)(49 + xs32(&x) % 40);
			if (kind == 2) { /* part of a /48, unaligned */
				e.first[7] = (uint8_t)xs32(&x);
				e.last[6] = e.last[7] = (uint8_t)(e.first[7] | 0x0f);
			}
		} else {
			e.family = 4;
			uint32_t a = 0x0a000000u | (xs32(&x) & 0x000fff00u), b;
			if (kind == 0) { /* aligned /24s rolled up at 24 to 30 */
				b = a + (xs32(&x) % 4) * 256 + 255;
				e.granularity = (int)(24 + xs32(&x) % 7);
			} else if (kind == 1) { /* unaligned, rolled up */
				a += xs32(&x) % 256;
				b = a + xs32(&x) % 2000;
				e.granularity = (int)(20 + xs32(&x) % 12);
			} else { /* per address, with holes between */
				a += xs32(&x) % 256;
				b = a + xs32(&x) % 3000;
			}
			uint32_t fa = htonl(a), la = htonl(b);
			memcpy(e.first, &fa, 4);
			memcpy(e.last, &la, 4);
		}
		e.max_addresses = lv == 5 ? 3 : 0; /* c="f": capped */
		assert_int_equal(ranges_add_entry(&f->ranges, &e, err, sizeof err), 0);
	}
	assert_int_equal(ranges_build(&f->ranges), 0);
	if (force_lookup) {
		memset(f->ranges.class4, RANGES_CLASS_LOOKUP, (size_t)1 << 16);
		memset(f->ranges.class6, RANGES_CLASS_LOOKUP, (size_t)1 << 16);
		f->ranges.class6_lo = f->ranges.class6_hi = RANGES_CLASS_LOOKUP;
	}
	assert_int_equal(registry_init(&f->reg, &f->layout, &f->ranges, 100000), 0);
	int src = registry_add_source(&f->reg, "eth0");
	assert_true(src >= 0);
	assert_non_null(f->shard = registry_add_shard(&f->reg, src));
	f->reg.start_time = 1700000000.5;
	struct acct_batch b;
	account_batch_init(&b, &f->ranges);
	parse_fn parse = parse_for_linktype(DLT_EN10MB);
	x = 12345;
	for (unsigned i = 0; i < 30000; i++) {
		uint8_t p[128];
		char sa[64], da[64];
		size_t n = 0;
		uint32_t pick = xs32(&x) % 1500, other = xs32(&x) % 1500;
		if (i % 50 == 1) { /* both sides of the unaligned boundary */
			snprintf(sa, sizeof sa, "10.15.127.%u", i % 100 == 1 ? 50 : 200);
			snprintf(da, sizeof da, "10.15.127.%u", i % 100 == 1 ? 201 : 51);
			n = fr_eth(p, 0x0800);
			n += fr_ipv4(p + n, sa, da, 6);
		} else if (i % 2) {
			snprintf(sa, sizeof sa, "10.%u.%u.%u", pick % 16, (pick * 7) % 256,
			         pick % 256);
			snprintf(da, sizeof da, "10.%u.%u.%u", other % 17, other % 256,
			         (other * 3) % 256);
			n = fr_eth(p, 0x0800);
			n += fr_ipv4(p + n, sa, da, pick % 3 ? 6 : 17);
		} else {
			snprintf(sa, sizeof sa, "2001:db8:%x:%x::%x", pick % 5, pick % 300, pick);
			snprintf(da, sizeof da, "2001:db8:%x:%x:1::%x", other % 4, other % 50,
			         other);
			n = fr_eth(p, 0x86dd);
			n += fr_ipv6(p + n, sa, da, pick % 3 ? 6 : 17);
		}
		account_batch_packet(f->shard, &b, &f->ranges, &f->layout, parse, p, (uint32_t)n,
		                     (uint32_t)n + i % 1000);
		if (i % 997 == 996)
			account_batch_flush(f->shard, &b, &f->layout);
	}
	account_batch_flush(f->shard, &b, &f->layout);
	char *page = fixture_render(&f->reg);
	fixture_free(f);
	return page;
}

static void test_keys_made_without_a_lookup_count_as_through_it(void **state)
{
	(void)state;
	size_t fast = 0;
	for (uint32_t seed = 1; seed <= 6; seed++) {
		char *with = run_mixed(0, seed * 2654435761u),
		     *without = run_mixed(1, seed * 2654435761u);
		assert_string_equal(with, without);
		assert_non_null(strstr(with, "ip=\"other\""));
		assert_non_null(strstr(with, "/64\""));
		assert_non_null(strstr(with, "ip=\"10.15.127.0/24\",protocol=\"tcp\",c=\"b\"} "));
		fast += strlen(with);
		free(with);
		free(without);
	}
	assert_true(fast > 100000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batched_path_equals_one_at_a_time),
	    cmocka_unit_test(test_batched_path_at_the_cap_equals_one_at_a_time),
	    cmocka_unit_test(test_new_address_repeated_within_one_queue),
	    cmocka_unit_test(test_keys_made_without_a_lookup_count_as_through_it),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
