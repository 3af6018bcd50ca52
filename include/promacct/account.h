/* The per-packet accounting step (capture thread hot path). */
#ifndef PROMACCT_ACCOUNT_H
#define PROMACCT_ACCOUNT_H

#include <string.h>

#include "promacct/parse.h"
#include "promacct/registry.h"

/* Batched accounting for the capture threads. Per frame, the interface
 * histogram is counted at once and the address lookups are queued with a
 * prefetch of their hash slot. When a queue is full, the entries its slots
 * name (key and counters) are prefetched, and the *other* queue - whose
 * entries were prefetched one queue earlier - is counted. So each entry has
 * a whole queue of packets' time to arrive from memory, and the misses of
 * many lookups overlap instead of following one another. Frame bytes are
 * not kept: only parsed keys are queued. */
#define ACCT_BATCH 32 /* address lookups per queue */

struct acct_item {
	struct addr_key k;
	uint64_t h;
	uint64_t id; /* addrtable_key_id */
	uint32_t size;
	uint32_t cidx;   /* the candidate's entry index */
	counter_t *cand; /* the counters the slot named at prefetch time, or NULL */
};

struct acct_queue {
	struct acct_item it[ACCT_BATCH];
	unsigned n;
};

struct acct_batch {
	struct acct_queue q[2];
	unsigned cur;              /* the queue being filled; the other waits to be counted */
	struct ranges_hint4 hint4; /* IPv4 range segment of the previous hit */
};

static inline void account_batch_init(struct acct_batch *b, const struct ranges *ranges)
{
	b->q[0].n = b->q[1].n = 0;
	b->cur = 0;
	ranges_hint4_init(&b->hint4, ranges);
}

static inline void account_queue_prefetch(struct acct_shard *s, struct acct_queue *q)
{
	for (unsigned i = 0; i < q->n; i++) {
		struct acct_item *it = &q->it[i];
		it->cand = addrtable_prefetch_entry(&s->table, it->h, it->id, &it->cidx);
		if (UNLIKELY(!it->cand) && (it->id & ADDRTABLE_V4))
			addrtable_prefetch_insert4(&s->table, it->id);
	}
}

static inline void account_queue_count(struct acct_shard *s, struct acct_queue *q,
                                       const struct histogram_layout *l)
{
	for (unsigned i = 0; i < q->n; i++) {
		const struct acct_item *it = &q->it[i];
		counter_t *h;
		/* The common case: the slot held the key (IPv4) or its tag at
		 * prefetch time; entries never move, so the index stays valid. */
		if (LIKELY(it->cand &&
		           ((it->id & ADDRTABLE_V4) ||
		            addrtable_key_eq(addrtable_key(&s->table, it->cidx), &it->k))))
			h = it->cand;
		else
			h = addrtable_get_hashed(&s->table, &it->k, it->h, it->id);
		if (UNLIKELY(!h))
			counter_add(&s->untracked, 1);
		else
			histogram_observe(h, l, it->size);
	}
	q->n = 0;
}

/* The current queue is full: prefetch its entries, count the other one. */
static inline void account_batch_step(struct acct_shard *s, struct acct_batch *b,
                                      const struct histogram_layout *l)
{
	account_queue_prefetch(s, &b->q[b->cur]);
	b->cur ^= 1;
	account_queue_count(s, &b->q[b->cur], l);
}

/* Counts everything queued (end of each dispatch: counts are complete). */
static inline void account_batch_flush(struct acct_shard *s, struct acct_batch *b,
                                       const struct histogram_layout *l)
{
	account_queue_count(s, &b->q[b->cur ^ 1], l);
	account_queue_prefetch(s, &b->q[b->cur]);
	account_queue_count(s, &b->q[b->cur], l);
}

static inline void account_batch_addr(struct acct_shard *s, struct acct_batch *b,
                                      const struct ranges *ranges, const struct parsed_packet *p,
                                      const uint8_t *addr, enum direction dir)
{
	uint32_t v;
	uint64_t a = 0, w = 0, h, id;
	uint32_t meta = addr_key_meta(p->family, (uint8_t)dir, p->proto);
	/* Hash and id per family (the compiler folds the IPv4 zero word), and
	 * only for addresses in a range. A rollup key is the masked address
	 * with the granularity in meta and the range group in its identity
	 * (addrtable_hash_key). */
	if (p->family == 4) {
		uint32_t a4;
		memcpy(&a4, addr, 4);
		uint32_t host = __builtin_bswap32(a4);
		v = ranges_val4_hint(ranges, host, &b->hint4);
		if (!ranges_val_in(v))
			return;
		unsigned g = ranges_val_rollup(v);
		if (UNLIKELY(g)) {
			a = __builtin_bswap32(host & ~(0xffffffffu >> g));
			meta |= g << 24;
			h = addrtable_hash_key(a, 0, meta, ranges_val_group(v));
			id = h >> 27;
		} else {
			a = a4;
			h = addrtable_hash_words(a, 0, meta);
			id = addrtable_id(4, a, (uint8_t)dir, p->proto, h);
		}
	} else {
		memcpy(&a, addr, 8);
		memcpy(&w, addr + 8, 8);
		v = ranges_val6(ranges, addr);
		if (!ranges_val_in(v))
			return;
		unsigned g = ranges_val_rollup(v);
		if (UNLIKELY(g)) {
			/* the words hold the address in memory order: mask big-endian */
			uint64_t hi = __builtin_bswap64(a), lo = __builtin_bswap64(w);
			hi = g >= 64 ? hi : hi & ~(~0ull >> g);
			lo = g >= 64 ? lo & ~(~0ull >> (g - 64)) : 0;
			a = __builtin_bswap64(hi);
			w = __builtin_bswap64(lo);
			meta |= g << 24;
			h = addrtable_hash_key(a, w, meta, ranges_val_group(v));
		} else {
			h = addrtable_hash_words(a, w, meta);
		}
		id = addrtable_id(6, a, (uint8_t)dir, p->proto, h);
	}
	struct acct_queue *q = &b->q[b->cur];
	struct acct_item *it = &q->it[q->n++];
	it->k.aw[0] = a;
	it->k.aw[1] = w;
	it->k.meta = meta;
	it->k.range = ranges_val_group(v);
	it->h = h;
	it->id = id;
	it->size = p->size;
	addrtable_prefetch_slot(&s->table, it->h);
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
	account_batch_addr(s, b, ranges, p, p->src, DIR_TX);
	account_batch_addr(s, b, ranges, p, p->dst, DIR_RX);
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
