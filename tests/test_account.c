/* Specification of the batched per-packet accounting (account.h): the
 * capture threads queue address lookups ACCT_BATCH at a time, prefetch one
 * queue while counting the other, and flush at the end of each dispatch.
 * Whatever the queueing, the result is the one-packet-at-a-time result. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batched_path_equals_one_at_a_time),
	    cmocka_unit_test(test_batched_path_at_the_cap_equals_one_at_a_time),
	    cmocka_unit_test(test_new_address_repeated_within_one_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
