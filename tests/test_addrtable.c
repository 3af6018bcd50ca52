/* Specification of the address table (src/addrtable.c): one histogram per
 * (address, direction, protocol class), found again after any number of
 * index growths; IPv4 keys live whole in their index slots, IPv6 keys are
 * compared; every distinct address counts once against the cap; counters
 * start on a cache line. Idle expiry: idle keys leave the index (backward
 * shift, no tombstones), their address leaves the cap with its last key,
 * and their memory is reused only after every walk that could see it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
	/* the entry cap holds the addresses' keys; overflow keys take no
	 * place in it: a key past it counts in its range's overflow histogram
	 * (address 1: range 1), never nowhere */
	size_t plain = 0, others = 0;
	for (size_t i = 0; i < addrtable_count(&tb->t); i++) {
		if (addrtable_key(&tb->t, i)->pad == ADDRTABLE_PAD_OTHER)
			others++;
		else
			plain++;
	}
	assert_int_equal(plain, 10);
	assert_int_equal(others,
	                 1 + PROTO_COUNT - 6); /* range 3 TX tcp; range 1 RX, per protocol */
	k = key4(0, DIR_RX, PROTO_ICMP);
	counter_t *o0 = addrtable_get(&tb->t, &k);
	assert_non_null(o0);
	struct addr_key ok = {.family = 4,
	                      .dir = DIR_RX,
	                      .proto = PROTO_ICMP,
	                      .pad = ADDRTABLE_PAD_OTHER,
	                      .range = 0};
	assert_ptr_equal(addrtable_get(&tb->t, &ok), o0);
	assert_int_equal(atomic_load(&tb->tracked), 3);
	table_free(tb);
}

/* ---- idle expiry --------------------------------------------------------- */

struct xtable {
	struct table *tb;
	struct addrtable_grace g;
};

/* A table with idle expiry after 1 s (the grace is in x: x must stay put). */
static void xtable_init(struct xtable *x, size_t max_entries, size_t max_addresses, size_t ended)
{
	x->tb = table_new(max_entries, max_addresses);
	addrtable_grace_init(&x->g);
	assert_int_equal(addrtable_set_expiry(&x->tb->t, &x->g, 1.0, ended), 0);
	addrtable_ended_enable(&x->tb->t);
}

/* The index invariant of linear probing: every key is reachable from its
 * home slot without crossing an empty one, and `used` counts the slots. */
static void assert_index_sound(const struct addrtable *t)
{
	size_t used = 0;
	for (size_t j = 0; j <= t->mask; j++) {
		uint64_t s = t->slots[j];
		if (!s)
			continue;
		used++;
		size_t e = (size_t)(s & ADDRTABLE_IDX_MASK) - 1;
		assert_true(addrtable_live(t, e));
		const struct addr_key *k = addrtable_key(t, e);
		uint64_t h = addrtable_hash(k);
		assert_int_equal(s >> ADDRTABLE_IDX_BITS, addrtable_key_id(k, h));
		for (size_t i = (size_t)h & t->mask; i != j; i = (i + 1) & t->mask)
			assert_true(t->slots[i] != 0);
	}
	assert_int_equal(used, t->used);
	/* the address set likewise; its entry counts add up to the live
	 * entries of addresses (overflow keys are none) */
	size_t aused = 0, refs = 0, addr_entries = 0;
	for (size_t j = 0; j <= t->amask; j++) {
		uint64_t v = t->aslots[j];
		if (!v) {
			assert_int_equal(t->arefs[j], 0);
			continue;
		}
		aused++;
		assert_true(t->arefs[j] > 0);
		refs += t->arefs[j];
		/* the entry it compares with (an IPv4 id is the whole address:
		 * never compared, it may name an entry since retired) */
		size_t e = (size_t)(v & ADDRTABLE_IDX_MASK) - 1;
		if (!((v >> ADDRTABLE_IDX_BITS) & ADDRTABLE_V4))
			assert_true(addrtable_live(t, e));
		for (size_t i = addrtable_aset_pos(v >> ADDRTABLE_IDX_BITS, t->amask); i != j;
		     i = (i + 1) & t->amask)
			assert_true(t->aslots[i] != 0);
	}
	for (size_t e = 0; e < addrtable_count(t); e++)
		addr_entries +=
		    addrtable_live(t, e) && addrtable_key(t, e)->pad != ADDRTABLE_PAD_OTHER;
	assert_int_equal(aused, t->aused);
	assert_int_equal(refs, addr_entries);
}

/* The key of the entry whose counters are h. */
static const struct addr_key *key_of(const struct addrtable *t, const counter_t *h)
{
	for (size_t e = 0; e < addrtable_count(t); e++)
		if (addrtable_hist(t, e) == h)
			return addrtable_key(t, e);
	fail();
	return NULL;
}

/* A scan of the whole table at now_ms. */
static size_t expire_all(struct addrtable *t, uint64_t now_ms)
{
	return addrtable_expire(t, now_ms, addrtable_count(t));
}

static void test_idle_keys_leave_the_index_and_the_others_stay(void **state)
{
	(void)state;
	enum { N = 6000 };
	struct xtable x;
	xtable_init(&x, 1000000, 1000000, 0);
	struct addrtable *t = &x.tb->t;
	counter_t **h = calloc(4 * N, sizeof *h);
	assert_non_null(h);
	for (uint32_t i = 0; i < N; i++) {
		struct addr_key k[4];
		four_keys(i, k);
		for (int j = 0; j < 4; j++) {
			h[4 * i + (uint32_t)j] = addrtable_get(t, &k[j]);
			counter_add(h[4 * i + (uint32_t)j], 100);
		}
	}
	assert_int_equal(expire_all(t, 1000), 0); /* first look */
	/* every third key sees a packet; the others stay idle */
	for (uint32_t e = 0; e < 4 * N; e += 3)
		counter_add(h[e], 60);
	assert_int_equal(expire_all(t, 1999), 0); /* not a whole second yet */
	for (uint32_t e = 0; e < 4 * N; e += 3)
		counter_add(h[e], 60);
	size_t gone = expire_all(t, 2000);
	assert_int_equal(gone, 4 * N - (4 * N + 2) / 3);
	assert_int_equal(addrtable_live_count(t), 4 * N - gone);
	assert_index_sound(t);
	/* the active keys are found where they were, nothing is added */
	size_t count = addrtable_count(t);
	for (uint32_t i = 0; i < N; i++) {
		struct addr_key k[4];
		four_keys(i, k);
		for (uint32_t j = 0; j < 4; j++)
			if ((4 * i + j) % 3 == 0)
				assert_ptr_equal(addrtable_get(t, &k[j]), h[4 * i + j]);
	}
	assert_int_equal(addrtable_count(t), count);
	assert_int_equal(addrtable_live_count(t), 4 * N - gone);
	/* an expired key that comes back starts from zero */
	struct addr_key k[4];
	four_keys(1, k);
	counter_t *back = addrtable_get(t, &k[0]); /* entry 4: idle, expired */
	assert_non_null(back);
	assert_int_equal(counter_read(&back[0]), 0);
	assert_index_sound(t);
	free(h);
	table_free(x.tb);
}

static void test_backward_shift_keeps_probe_runs_whole(void **state)
{
	(void)state;
	/* A small index, nearly half full, so runs are long and wrap; keys are
	 * retired in every position of their runs, a few at a time. */
	struct xtable x;
	xtable_init(&x, 100000, 100000, 0);
	struct addrtable *t = &x.tb->t;
	enum { N = 500 };
	counter_t *h[N];
	for (uint32_t i = 0; i < N; i++) {
		struct addr_key k =
		    i % 2 ? key4(i * 2654435761u, DIR_TX, PROTO_TCP) : key6(i, DIR_RX, PROTO_UDP);
		h[i] = addrtable_get(t, &k);
		counter_add(h[i], 1);
	}
	assert_int_equal(t->mask + 1, 1024);
	uint64_t now = 1000;
	expire_all(t, now);
	for (uint32_t round = 1; round <= 7; round++) {
		/* keys with i % 7 >= round stay active */
		for (uint32_t i = 0; i < N; i++)
			if (i % 7 >= round)
				counter_add(h[i], 1);
		now += 1000;
		expire_all(t, now);
		assert_index_sound(t);
		for (uint32_t i = 0; i < N; i++) {
			if (i % 7 < round)
				continue;
			struct addr_key k = i % 2 ? key4(i * 2654435761u, DIR_TX, PROTO_TCP)
			                          : key6(i, DIR_RX, PROTO_UDP);
			size_t count = addrtable_count(t);
			assert_ptr_equal(addrtable_get(t, &k), h[i]);
			assert_int_equal(addrtable_count(t), count);
		}
	}
	assert_int_equal(addrtable_live_count(t), 0);
	assert_int_equal(t->used, 0);
	assert_int_equal(addrtable_addresses(t), 0);
	assert_int_equal(atomic_load(&x.tb->tracked), 0);
	table_free(x.tb);
}

static void test_an_address_leaves_the_cap_with_its_last_key(void **state)
{
	(void)state;
	struct xtable x;
	xtable_init(&x, 1000, 2, 0);
	struct addrtable *t = &x.tb->t;
	struct addr_key a_tx = key6(1, DIR_TX, PROTO_TCP), a_rx = key6(1, DIR_RX, PROTO_UDP);
	struct addr_key b = key4(7, DIR_TX, PROTO_TCP), c = key4(9, DIR_TX, PROTO_TCP);
	counter_t *ha = addrtable_get(t, &a_tx); /* the entry the set compares with */
	counter_t *hrx = addrtable_get(t, &a_rx);
	counter_t *hb = addrtable_get(t, &b);
	counter_add(ha, 1);
	counter_add(hrx, 1);
	counter_add(hb, 1);
	assert_int_equal(atomic_load(&x.tb->tracked), 2);
	/* full: c goes to its range's overflow */
	counter_t *hc = addrtable_get(t, &c);
	assert_int_equal(addrtable_key(t, 3)->pad, ADDRTABLE_PAD_OTHER);
	counter_add(hc, 1);
	expire_all(t, 1000);
	counter_add(hrx, 1); /* a's receive side and b stay active */
	counter_add(hb, 1);
	assert_int_equal(expire_all(t, 2000), 2); /* a_tx and the overflow key */
	/* a still holds its place (one key left), b too */
	assert_int_equal(atomic_load(&x.tb->tracked), 2);
	assert_int_equal(addrtable_addresses(t), 2);
	/* the set still knows a (it compares with a_rx now): a new key of a
	 * takes no new place, c is still refused */
	struct addr_key a_icmp = key6(1, DIR_TX, PROTO_ICMPV6);
	counter_t *hi = addrtable_get(t, &a_icmp);
	assert_non_null(hi);
	assert_int_equal(atomic_load(&x.tb->tracked), 2);
	counter_add(hi, 1);
	assert_int_equal(key_of(t, addrtable_get(t, &c))->pad, ADDRTABLE_PAD_OTHER);
	/* b has been idle since 2000: a second later its place is free, and c
	 * gets it */
	counter_add(hrx, 1);
	counter_add(hi, 1);
	assert_int_equal(expire_all(t, 3000), 1);
	assert_int_equal(atomic_load(&x.tb->tracked), 1);
	hc = addrtable_get(t, &c);
	assert_int_equal(atomic_load(&x.tb->tracked), 2);
	assert_int_equal(key_of(t, hc)->pad, 0);
	assert_int_equal(counter_read(&hc[0]), 0);
	assert_index_sound(t);
	table_free(x.tb);
}

static void test_memory_is_reused_only_after_the_walks_that_saw_it(void **state)
{
	(void)state;
	struct xtable x;
	xtable_init(&x, 1000, 1000, 0);
	struct addrtable *t = &x.tb->t;
	for (uint32_t i = 0; i < 10; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		counter_add(addrtable_get(t, &k), 1);
	}
	uint64_t walk = addrtable_read_begin(&x.g); /* a reader is walking */
	expire_all(t, 1000);
	assert_int_equal(expire_all(t, 2000), 10);
	expire_all(t, 2100);
	expire_all(t, 2200);
	/* the reader may still read those 10 entries: new keys take new ones */
	for (uint32_t i = 100; i < 105; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		assert_non_null(addrtable_get(t, &k));
	}
	assert_int_equal(addrtable_count(t), 15);
	addrtable_read_end(&x.g, walk);
	/* a walk that starts now never sees them live */
	uint64_t later = addrtable_read_begin(&x.g);
	for (size_t e = 0; e < 10; e++)
		assert_false(addrtable_live(t, e));
	expire_all(t, 2300); /* epoch moves on: the later walk cannot stop reuse */
	expire_all(t, 2400);
	for (uint32_t i = 200; i < 210; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		counter_t *h = addrtable_get(t, &k);
		assert_non_null(h);
		assert_int_equal(counter_read(&h[0]), 0);
	}
	assert_int_equal(addrtable_count(t), 15); /* all ten reused */
	addrtable_read_end(&x.g, later);
	assert_index_sound(t);
	table_free(x.tb);
}

static void test_a_walk_never_sees_an_entry_reused_after_its_start(void **state)
{
	(void)state;
	struct xtable x;
	xtable_init(&x, 1000, 1000, 0);
	struct addrtable *t = &x.tb->t;
	for (uint32_t i = 0; i < 10; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		counter_add(addrtable_get(t, &k), 1);
	}
	expire_all(t, 1000);
	assert_int_equal(expire_all(t, 2000), 10);
	expire_all(t, 2100); /* no walk: the grace passes */
	assert_int_equal(t->nfree, 10);
	/* a walk starts, then the entries are reused */
	uint64_t g = addrtable_read_begin(&x.g);
	uint64_t seq = addrtable_seq(t);
	for (uint32_t i = 100; i < 110; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		assert_non_null(addrtable_get(t, &k));
	}
	assert_int_equal(addrtable_count(t), 10);
	for (size_t e = 0; e < 10; e++) {
		assert_true(addrtable_live(t, e) != 0);
		assert_true(addrtable_live(t, e) > seq); /* born after: not in this walk */
	}
	addrtable_read_end(&x.g, g);
	/* the next walk takes them */
	for (size_t e = 0; e < 10; e++)
		assert_true(addrtable_live(t, e) <= addrtable_seq(t));
	table_free(x.tb);
}

static void test_an_address_scan_stays_within_bounded_memory(void **state)
{
	(void)state;
	/* 100 rounds of 1000 new addresses, each idle after its round */
	struct xtable x;
	xtable_init(&x, 1000000, 1000000, 0);
	struct addrtable *t = &x.tb->t;
	for (uint32_t round = 0; round < 100; round++) {
		for (uint32_t i = 0; i < 1000; i++) {
			struct addr_key k = key4(round * 1000 + i, DIR_RX, PROTO_TCP);
			counter_add(addrtable_get(t, &k), 1);
		}
		expire_all(t, 1000 + round * 1000);
	}
	assert_true(addrtable_count(t) <= 3000);
	assert_true(t->mask + 1 <= 8192);
	assert_int_equal(atomic_load(&x.tb->tracked), addrtable_addresses(t));
	table_free(x.tb);
}

static void test_ended_keys_are_kept_for_their_stale_markers(void **state)
{
	(void)state;
	struct xtable x;
	xtable_init(&x, 1000, 1000, 4);
	struct addrtable *t = &x.tb->t;
	for (uint32_t i = 0; i < 6; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		counter_add(addrtable_get(t, &k), 1);
	}
	expire_all(t, 1000);
	assert_int_equal(expire_all(t, 2000), 6);
	struct addr_key out[8];
	assert_int_equal(addrtable_ended_pop(t, out, 8), 4); /* the ring holds 4 */
	assert_int_equal(atomic_load(&t->ended->lost), 2);
	for (uint32_t i = 0; i < 4; i++) {
		struct addr_key k = key4(i, DIR_TX, PROTO_TCP);
		assert_memory_equal(&out[i], &k, sizeof k);
	}
	assert_int_equal(addrtable_ended_pop(t, out, 8), 0);
	table_free(x.tb);
}

/* A reader walking the entries (as the read-out does) while the writer
 * expires and reuses them: a live entry's counters always belong to its
 * key (the writer stores the address in them). Run under TSan in CI. */
struct walker {
	struct xtable *x;
	atomic_int stop;
	atomic_size_t walks, mismatches;
};

static void *walker_run(void *arg)
{
	struct walker *w = arg;
	struct addrtable *t = &w->x->tb->t;
	while (!atomic_load(&w->stop)) {
		uint64_t g = addrtable_read_begin(&w->x->g);
		uint64_t seq = addrtable_seq(t);
		size_t n = addrtable_count(t);
		for (size_t e = 0; e < n; e++) {
			uint64_t born = addrtable_live(t, e);
			if (!born || born > seq)
				continue;
			const struct addr_key *k = addrtable_key(t, e);
			uint32_t a;
			memcpy(&a, k->addr, 4);
			uint64_t v = counter_read(&addrtable_hist(t, e)[2]);
			if (v && v != (uint64_t)a + 1)
				atomic_fetch_add(&w->mismatches, 1);
		}
		addrtable_read_end(&w->x->g, g);
		atomic_fetch_add(&w->walks, 1);
	}
	return NULL;
}

static void test_reuse_under_concurrent_readers(void **state)
{
	(void)state;
	struct xtable x;
	xtable_init(&x, 100000, 100000, 64);
	struct addrtable *t = &x.tb->t;
	struct walker w = {.x = &x};
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, walker_run, &w), 0);
	struct addr_key out[64];
	uint64_t now = 1000;
	for (uint32_t round = 0; round < 300; round++) {
		for (uint32_t i = 0; i < 200; i++) {
			uint32_t a = round * 200 + i;
			struct addr_key k = key4(a, DIR_TX, PROTO_TCP);
			counter_t *h = addrtable_get(t, &k);
			assert_non_null(h);
			counter_add(&h[0], 1);
			atomic_store_explicit(&h[2], (uint64_t)a + 1, memory_order_relaxed);
		}
		now += 600;
		expire_all(t, now);
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL); /* walks end meanwhile: epochs move */
		while (addrtable_ended_pop(t, out, 64))
			;
	}
	atomic_store(&w.stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&w.mismatches), 0);
	assert_true(atomic_load(&w.walks) > 0);
	/* entries were reused (how soon depends on the walks' overlap) */
	assert_true(addrtable_count(t) < 300 * 200); /* entries were reused */
	table_free(x.tb);
}

/* The shared set of a fanout source (struct addrset): random holds and
 * releases of 300 keys (a relabelled address is another key) through a set
 * of 128, checked against a plain array of holder counts after every step:
 * removal keeps every other key findable (backward shift), a full set
 * refuses, and freed entries are reused. */
static void test_addrset_holds_and_releases_exactly(void **state)
{
	(void)state;
	enum { KEYS = 300, MAX = 128 };
	static unsigned refs[KEYS];
	memset(refs, 0, sizeof refs);
	struct addrset s;
	assert_int_equal(addrset_init(&s, MAX), 0);
	struct addr_key k[KEYS];
	for (unsigned i = 0; i < KEYS; i++) {
		memset(&k[i], 0, sizeof k[i]);
		k[i].family = 4;
		k[i].aw[0] = 0x0a000000u + i / 2; /* two range groups per address */
		k[i].range = i % 2;
	}
	uint64_t x = 88172645463325252ull;
	size_t held = 0;
	for (int step = 0; step < 200000; step++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		unsigned i = (unsigned)(x % KEYS);
		if ((x >> 32) % 2) {
			if (addrset_hold(&s, &k[i])) {
				assert_true(refs[i] > 0);
				refs[i]++;
			} else {
				assert_int_equal(refs[i], 0);
				int rc = addrset_add(&s, &k[i]);
				if (held == MAX) {
					assert_int_equal(rc, -ENOSPC);
				} else {
					assert_int_equal(rc, 0);
					refs[i] = 1;
					held++;
				}
			}
		} else {
			int rc = addrset_release(&s, &k[i]);
			if (!refs[i]) {
				assert_int_equal(rc, -ENOENT);
			} else {
				assert_int_equal(rc, --refs[i] == 0);
				held -= refs[i] == 0;
			}
		}
		assert_int_equal(addrset_count(&s), held);
		if (step % 1000 == 0)
			for (unsigned j = 0; j < KEYS; j++) {
				assert_int_equal(addrset_maybe_contains(&s, &k[j]) || !refs[j], 1);
				assert_int_equal(addrset_add(&s, &k[j]) == 1, refs[j] > 0);
				if (!refs[j] && addrset_count(&s) > held) /* added: take it back */
					assert_int_equal(addrset_release(&s, &k[j]), 1);
			}
	}
	assert_true(s.top <= MAX);
	addrset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_key_keeps_its_histogram_across_growth),
	    cmocka_unit_test(test_ipv4_keys_differing_in_one_field_are_distinct),
	    cmocka_unit_test(test_counters_start_on_a_cache_line),
	    cmocka_unit_test(test_caps_on_entries_and_addresses),
	    cmocka_unit_test(test_idle_keys_leave_the_index_and_the_others_stay),
	    cmocka_unit_test(test_backward_shift_keeps_probe_runs_whole),
	    cmocka_unit_test(test_an_address_leaves_the_cap_with_its_last_key),
	    cmocka_unit_test(test_memory_is_reused_only_after_the_walks_that_saw_it),
	    cmocka_unit_test(test_a_walk_never_sees_an_entry_reused_after_its_start),
	    cmocka_unit_test(test_an_address_scan_stays_within_bounded_memory),
	    cmocka_unit_test(test_ended_keys_are_kept_for_their_stale_markers),
	    cmocka_unit_test(test_reuse_under_concurrent_readers),
	    cmocka_unit_test(test_addrset_holds_and_releases_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
