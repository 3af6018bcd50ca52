/* The per-packet accounting step (capture thread hot path). */
#ifndef PROMACCT_ACCOUNT_H
#define PROMACCT_ACCOUNT_H

#include <string.h>

#include "promacct/parse.h"
#include "promacct/registry.h"

/* Batched accounting for the capture threads, a pipeline of three queues
 * so that each lookup's memory arrives while other packets are worked on.
 * Per frame, the interface histogram is counted at once and the two
 * addresses are queued as they are, with a prefetch of what their range
 * lookup reads (ranges_prefetch4). When the queue being filled is full, one
 * step of each stage runs, each on the queue the stage before worked on one
 * step earlier: (1) the range lookups of the queue filled one step ago -
 * dropping addresses in no range, masking rollups - and a prefetch of their
 * hash slots (an address in a /16 or IPv6 bucket of one key length, where
 * the key is the address or its prefix of that length whatever its range,
 * skips its lookup: only a key the table does not hold looks its range up,
 * in stage 3; an address in a bucket without ranges is not queued); (2) a prefetch of the entries
 * the slots name (key and counters); (3) counting, after which that queue is the one to fill. So a
 * range lookup, a slot and an entry each have a whole queue of packets' time to arrive from memory,
 * and the misses of many lookups overlap instead of following one another. Frame bytes are not
 * kept: only addresses are queued. */
#define ACCT_BATCH 32 /* address lookups per queue */
/* it->k.range of an address queued in a bucket of one key length
 * (ranges_class4/6): its key (the address, or its prefix of that length)
 * is known before its range, so only a key the table does not hold looks
 * its range up (when counting). An address table that holds the key
 * already knows it: with many ranges, traffic of known addresses reads no
 * range table at all. */
#define ACCT_RANGE_LATER UINT32_MAX
/* it->cidx of such an address until resolved: ACCT_FAST | the key length
 * (a window of a lookup is a piece index, below it). */
#define ACCT_FAST 0x80000000u

struct acct_item {
	struct addr_key k; /* the address as captured until resolved */
	uint64_t h;
	uint64_t id; /* addrtable_key_id */
	uint32_t size;
	uint32_t cidx; /* until resolved: an IPv6 range window; then the candidate's entry index */
	counter_t *cand; /* the counters the slot named at prefetch time, or NULL */
};

struct acct_queue {
	struct acct_item it[ACCT_BATCH];
	unsigned n;
};

struct acct_batch {
	/* q[cur] is being filled; q[(cur + 3) % 4] was filled one step ago,
	 * q[(cur + 2) % 4] resolved one step ago, q[(cur + 1) % 4] had its
	 * entries prefetched one step ago. */
	struct acct_queue q[4];
	unsigned cur;
	const struct ranges *ranges;
	struct ranges_hint4 hint4; /* IPv4 range piece of the previous lookup */
};

static inline void account_batch_init(struct acct_batch *b, const struct ranges *ranges)
{
	b->q[0].n = b->q[1].n = b->q[2].n = b->q[3].n = 0;
	b->cur = 0;
	b->ranges = ranges;
	ranges_hint4_init(&b->hint4, ranges);
}

/* The key words of an address rolled up at g (1 to 127): the IPv6 words
 * hold the address in memory order, masked big-endian. */
static inline void account_mask6(uint64_t *a, uint64_t *w, unsigned g)
{
	uint64_t hi = __builtin_bswap64(*a), lo = __builtin_bswap64(*w);
	hi = g >= 64 ? hi : hi & ~(~0ull >> g);
	lo = g >= 64 ? lo & ~(~0ull >> (g - 64)) : 0;
	*a = __builtin_bswap64(hi);
	*w = __builtin_bswap64(lo);
}

/* Stage 1: range lookups (the address words and meta in it->k as queued);
 * addresses in no range leave the queue. An address queued in a bucket of
 * one key length (ACCT_FAST | L in cidx) has its key made without a
 * lookup, its range left for a key the table does not hold. */
static inline void account_queue_resolve(struct acct_shard *s, struct acct_batch *b,
                                         struct acct_queue *q)
{
	const struct ranges *ranges = b->ranges;
	unsigned n = 0;
	for (unsigned i = 0; i < q->n; i++) {
		struct acct_item *it = &q->it[n];
		*it = q->it[i];
		uint64_t a = it->k.aw[0], w = it->k.aw[1], h;
		uint32_t v, meta = it->k.meta, range;
		unsigned g;
		/* Hash and id per family (the compiler folds the IPv4 zero word).
		 * A rollup key is the masked address with the granularity in meta
		 * and the range group in its identity, not in its hash
		 * (addrtable_hash_key). */
		if (LIKELY(it->cidx & ACCT_FAST)) {
			g = it->cidx & 0xff;
			range = ACCT_RANGE_LATER;
			if (it->k.family == 4) {
				g = g == 32 ? 0 : g;
				if (UNLIKELY(g))
					a = __builtin_bswap32(__builtin_bswap32((uint32_t)a) &
					                      ~(0xffffffffu >> g));
			} else {
				g = g == 128 ? 0 : g;
				if (UNLIKELY(g))
					account_mask6(&a, &w, g);
			}
		} else if (it->k.family == 4) {
			uint32_t host = __builtin_bswap32((uint32_t)a);
			v = ranges_val4_hint(ranges, host, &b->hint4);
			if (!ranges_val_in(v))
				continue;
			g = ranges_val_rollup(v);
			range = ranges_val_group(v);
			if (UNLIKELY(g))
				a = __builtin_bswap32(host & ~(0xffffffffu >> g));
		} else {
			v = ranges_val6_in(ranges, it->k.addr, it->cidx);
			if (!ranges_val_in(v))
				continue;
			g = ranges_val_rollup(v);
			range = ranges_val_group(v);
			if (UNLIKELY(g))
				account_mask6(&a, &w, g);
		}
		meta |= g << 24;
		h = addrtable_hash_key(a, w, meta, range);
		it->id = addrtable_id(g ? 6 : it->k.family, a, it->k.dir, it->k.proto, h);
		it->k.aw[0] = a;
		it->k.aw[1] = w;
		it->k.meta = meta;
		it->k.range = range;
		it->h = h;
		addrtable_prefetch_slot(&s->table, h);
		n++;
	}
	q->n = n;
}

/* Stage 2: the entries the slots name. */
static inline void account_queue_prefetch(struct acct_shard *s, struct acct_queue *q)
{
	for (unsigned i = 0; i < q->n; i++) {
		struct acct_item *it = &q->it[i];
		it->cand = addrtable_prefetch_entry(&s->table, it->h, it->id, &it->cidx);
		if (UNLIKELY(!it->cand) && (it->id & ADDRTABLE_V4))
			addrtable_prefetch_insert4(&s->table, it->id);
	}
}

/* The range of a new key queued with ACCT_RANGE_LATER (its address, or
 * its prefix's first one): 0 if it has none (an address in a hole of its
 * bucket). */
static inline int account_item_range(struct acct_batch *b, struct addr_key *k)
{
	uint32_t a, v;
	if (k->family == 4) {
		memcpy(&a, k->addr, 4);
		v = ranges_val4_hint(b->ranges, __builtin_bswap32(a), &b->hint4);
	} else {
		v = ranges_val6(b->ranges, k->addr);
	}
	if (UNLIKELY(!ranges_val_in(v) || ranges_val_rollup(v) != k->pad))
		return 0;
	k->range = ranges_val_group(v);
	return 1;
}

/* Stage 3: counting. */
static inline void account_queue_count(struct acct_shard *s, struct acct_batch *b,
                                       struct acct_queue *q, const struct histogram_layout *l)
{
	for (unsigned i = 0; i < q->n; i++) {
		struct acct_item *it = &q->it[i];
		counter_t *h;
		/* The common case: the slot held the key (IPv4) or its tag at
		 * prefetch time; entries never move, so the index stays valid. */
		if (LIKELY(it->cand &&
		           ((it->id & ADDRTABLE_V4) ||
		            addrtable_key_eq_as(addrtable_key(&s->table, it->cidx), &it->k,
		                                it->k.range == ACCT_RANGE_LATER))))
			h = it->cand;
		else if (UNLIKELY(it->k.range == ACCT_RANGE_LATER) &&
		         !account_item_range(b, &it->k))
			continue;
		else
			h = addrtable_get_hashed(&s->table, &it->k, it->h, it->id);
		if (UNLIKELY(!h))
			counter_add(&s->untracked, 1);
		else
			histogram_observe(h, l, it->size);
	}
	q->n = 0;
}

/* The queue being filled is full: one step of each stage. */
static inline void account_batch_step(struct acct_shard *s, struct acct_batch *b,
                                      const struct histogram_layout *l)
{
	unsigned c = b->cur;
	account_queue_resolve(s, b, &b->q[(c + 3) % 4]);
	account_queue_prefetch(s, &b->q[(c + 2) % 4]);
	account_queue_count(s, b, &b->q[(c + 1) % 4], l);
	b->cur = (c + 1) % 4;
}

/* Counts everything queued (end of each dispatch: counts are complete). */
static inline void account_batch_flush(struct acct_shard *s, struct acct_batch *b,
                                       const struct histogram_layout *l)
{
	unsigned c = b->cur;
	account_queue_count(s, b, &b->q[(c + 1) % 4], l);
	account_queue_prefetch(s, &b->q[(c + 2) % 4]);
	account_queue_count(s, b, &b->q[(c + 2) % 4], l);
	for (unsigned k = 3; k <= 4; k++) { /* filled one step ago, then now */
		struct acct_queue *q = &b->q[(c + k) % 4];
		account_queue_resolve(s, b, q);
		account_queue_prefetch(s, q);
		account_queue_count(s, b, q, l);
	}
}

/* Queues one address of a parsed frame, unless its bucket holds no range:
 * with the prefetch of its range lookup, or, in a bucket of one key length,
 * that length (ACCT_FAST | L: no lookup). */
static inline void account_batch_addr(struct acct_batch *b, const struct parsed_packet *p,
                                      const uint8_t *addr, enum direction dir)
{
	struct acct_queue *q = &b->q[b->cur];
	struct acct_item *it = &q->it[q->n];
	uint32_t a4;
	unsigned c;
	if (p->family == 4) {
		memcpy(&a4, addr, 4);
		c = ranges_class4(b->ranges, __builtin_bswap32(a4));
		if (c == RANGES_CLASS_EMPTY)
			return;
		it->k.aw[0] = a4;
		it->k.aw[1] = 0;
		it->cidx = ACCT_FAST | c;
		if (c == RANGES_CLASS_LOOKUP) {
			it->cidx = 0;
			ranges_prefetch4(b->ranges, __builtin_bswap32(a4));
		}
	} else {
		c = ranges_class6(b->ranges, ranges_addr6(addr));
		if (c == RANGES_CLASS_EMPTY)
			return;
		memcpy(it->k.aw, addr, 16);
		it->cidx = c == RANGES_CLASS_LOOKUP ? (uint32_t)ranges_prefetch6(b->ranges, addr)
		                                    : ACCT_FAST | c; /* the window, or the length */
	}
	q->n++;
	it->k.meta = addr_key_meta(p->family, (uint8_t)dir, p->proto);
	it->size = p->size;
}

/* Accounts one parsed frame: the interface histogram always, then queues
 * the source and destination address lookups when the frame is IP and in a
 * range. Counts are complete after account_batch_flush (the capture threads
 * flush at the end of each dispatch). No allocation, lock or syscall unless
 * an address is new. */
static inline void account_batch_parsed(struct acct_shard *s, struct acct_batch *b,
                                        const struct ranges *ranges,
                                        const struct histogram_layout *l,
                                        const struct parsed_packet *p, enum parse_status st)
{
	histogram_observe(s->all, l, p->size);
	if (UNLIKELY(st != PARSE_OK)) {
		counter_add(&s->parse[st], 1);
		return;
	}
	(void)ranges; /* b->ranges, given at account_batch_init */
	account_batch_addr(b, p, p->src, DIR_TX);
	account_batch_addr(b, p, p->dst, DIR_RX);
	if (b->q[b->cur].n > ACCT_BATCH - 2)
		account_batch_step(s, b, l);
}

/* The capture threads' per-packet step: the link type's parser, then the
 * batched accounting. */
static inline void account_batch_packet(struct acct_shard *s, struct acct_batch *b,
                                        const struct ranges *ranges,
                                        const struct histogram_layout *l, parse_fn parse,
                                        const uint8_t *bytes, uint32_t caplen, uint32_t wirelen)
{
	struct parsed_packet p;
	enum parse_status st = parse(bytes, caplen, wirelen, &p);
	account_batch_parsed(s, b, ranges, l, &p, st);
}

/* One frame through the same path, complete on return (tests, tools). */
static inline void account_packet(struct acct_shard *s, const struct ranges *ranges,
                                  const struct histogram_layout *l, int dlt, const uint8_t *bytes,
                                  uint32_t caplen, uint32_t wirelen)
{
	struct acct_batch b;
	struct parsed_packet p;
	account_batch_init(&b, ranges);
	enum parse_status st = parse_packet(dlt, bytes, caplen, wirelen, &p);
	account_batch_parsed(s, &b, ranges, l, &p, st);
	account_batch_flush(s, &b, l);
}

#endif
