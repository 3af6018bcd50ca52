/* Specification of the address table (src/addrtable.c): one histogram per
 * (address, direction, protocol class), found again after any number of
 * index growths; IPv4 keys live whole in their index slots, IPv6 keys are
 * compared; every distinct address counts once against the cap; counters
 * start on a cache line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/addrtable.h"
#include "promacct/parse.h"

#define WORDS 8 /* sum + 7 buckets: the default layout */

static struct addr_key key4(uint32_t a, uint8_t dir, uint8_t proto)
{
	struct addr_key k;
	memset(&k, 0, sizeof k);
	memcpy(k.addr, &a, 4);
	k.meta = addr_key_meta(4, dir, proto);
	k.range = a & 7;
	return k;
}

static struct addr_key key6(uint32_t i, uint8_t dir, uint8_t proto)
{
	struct addr_key k;
	memset(&k, 0, sizeof k);
	k.addr[0] = 0x20;
	k.addr[1] = 0x01;
	k.addr[2] = 0x0d;
	k.addr[3] = 0xb8;
	memcpy(k.addr + 12, &i, 4);
	k.meta = addr_key_meta(6, dir, proto);
	k.range = 9;
	return k;
}

/* Three IPv4 histograms of one address and one IPv6 histogram. */
static void four_keys(uint32_t i, struct addr_key k[4])
{
	k[0] = key4(0x0a000000u + i, DIR_TX, PROTO_TCP);
	k[1] = key4(0x0a000000u + i, DIR_RX, PROTO_TCP);
	k[2] = key4(0x0a000000u + i, DIR_TX, PROTO_UDP);
	k[3] = key6(i, DIR_RX, PROTO_ICMPV6);
}

struct table {
	struct addrtable t;
	_Atomic size_t tracked;
};

static struct table *table_new(size_t max_entries, size_t max_addresses)
{
	struct table *tb = calloc(1, sizeof *tb);
	assert_non_null(tb);
	assert_int_equal(addrtable_init(&tb->t, WORDS, max_entries, &tb->tracked, max_addresses),
	                 0);
	return tb;
}

static void table_free(struct table *tb)
{
	addrtable_free(&tb->t);
	free(tb);
}

static void test_every_key_keeps_its_histogram_across_growth(void **state)
{
	(void)state;
	enum { N = 40000 };
	struct table *tb = table_new(1000000, 1000000);
	counter_t **first = calloc(4 * N, sizeof *first);
	assert_non_null(first);
	for (uint32_t i = 0; i < N; i++) {
		struct addr_key k[4];
		four_keys(i, k);
		for (int j = 0; j < 4; j++) {
			first[4 * i + (uint32_t)j] = addrtable_get(&tb->t, &k[j]);
			assert_non_null(first[4 * i + (uint32_t)j]);
		}
	}
	/* 4 histograms per i, 2 distinct addresses (one IPv4, one IPv6) */
	assert_int_equal(addrtable_count(&tb->t), 4 * N);
	assert_int_equal(atomic_load(&tb->tracked), 2 * N);
	for (uint32_t i = 0; i < N; i++) {
		struct addr_key k[4];
		four_keys(i, k);
		for (int j = 0; j < 4; j++)
			assert_ptr_equal(addrtable_get(&tb->t, &k[j]), first[4 * i + (uint32_t)j]);
	}
	assert_int_equal(addrtable_count(&tb->t), 4 * N);
	/* Readers find each key, whole, beside its counters. */
	for (size_t e = 0; e < addrtable_count(&tb->t); e++) {
		const struct addr_key *k = addrtable_key(&tb->t, e);
		assert_ptr_equal(addrtable_get(&tb->t, k), addrtable_hist(&tb->t, e));
		assert_int_equal(k->range, k->family == 4 ? (k->aw[0] & 7) : 9);
	}
	free(first);
	table_free(tb);
}

static void test_ipv4_keys_differing_in_one_field_are_distinct(void **state)
{
	(void)state;
	struct table *tb = table_new(1000, 1000);
	uint32_t addrs[] = {0, 1, 0x80000000u, 0xffffffffu, 0x0100000au};
	size_t n = 0;
	for (size_t a = 0; a < sizeof addrs / sizeof addrs[0]; a++)
		for (uint8_t dir = 0; dir < 2; dir++)
			for (uint8_t p = 0; p < PROTO_COUNT; p++) {
				struct addr_key k = key4(addrs[a], dir, p);
				counter_t *h = addrtable_get(&tb->t, &k);
				assert_non_null(h);
				h[0] += 1;
				n++;
			}
	assert_int_equal(addrtable_count(&tb->t), n);
	for (size_t e = 0; e < n; e++)
		assert_int_equal(addrtable_hist(&tb->t, e)[0], 1);
	/* the same IPv4 value as the first words of an IPv6 key is another key */
	struct addr_key k6 = key6(0, DIR_TX, PROTO_TCP);
	memset(k6.addr, 0, 16);
	assert_non_null(addrtable_get(&tb->t, &k6));
	assert_int_equal(addrtable_count(&tb->t), n + 1);
	table_free(tb);
}

static void test_counters_start_on_a_cache_line(void **state)
{
	(void)state;
	struct table *tb = table_new(100000, 100000);
	for (uint32_t i = 0; i < 40000; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		counter_t *h = addrtable_get(&tb->t, &k);
		assert_non_null(h);
		assert_int_equal((uintptr_t)h % ADDRTABLE_LINE, 0);
	}
	table_free(tb);
}

static void test_caps_on_entries_and_addresses(void **state)
{
	(void)state;
	struct table *tb = table_new(10, 3);
	for (uint32_t i = 0; i < 3; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		assert_non_null(addrtable_get(&tb->t, &k));
	}
	/* a fourth and fifth address: refused by the cap, they share their
	 * range's overflow histogram (key4: range a & 7) */
	struct addr_key k = key4(3, DIR_TX, PROTO_TCP), k5 = key4(11, DIR_TX, PROTO_TCP);
	counter_t *other = addrtable_get(&tb->t, &k);
	assert_non_null(other);
	assert_ptr_equal(addrtable_get(&tb->t, &k5), other);
	assert_int_equal(addrtable_key(&tb->t, 3)->pad, ADDRTABLE_PAD_OTHER);
	assert_int_equal(addrtable_addresses(&tb->t), 3);
	k = key4(2, DIR_RX, PROTO_UDP);
	assert_non_null(addrtable_get(&tb->t, &k)); /* a known address */
	for (uint8_t p = 0; p < PROTO_COUNT; p++) {
		k = key4(1, DIR_RX, p);
		(void)addrtable_get(&tb->t, &k);
	}
	assert_int_equal(addrtable_count(&tb->t), 10); /* the entry cap */
	k = key4(0, DIR_RX, PROTO_ICMP);
	assert_null(addrtable_get(&tb->t, &k));
	assert_int_equal(atomic_load(&tb->tracked), 3);
	table_free(tb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_key_keeps_its_histogram_across_growth),
	    cmocka_unit_test(test_ipv4_keys_differing_in_one_field_are_distinct),
	    cmocka_unit_test(test_counters_start_on_a_cache_line),
	    cmocka_unit_test(test_caps_on_entries_and_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
