/* Per-capture-thread store of address histograms, keyed by
 * (address, direction, transport class). */
#ifndef PROMACCT_ADDRTABLE_H
#define PROMACCT_ADDRTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "promacct/common.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "addr_key meta packing");

/* 32768 entries per storage chunk (~2.9 MiB with the default buckets), on
 * transparent huge pages, so random lookups do not miss the TLB as well. */
#define ADDRTABLE_CHUNK_SHIFT 15
#define ADDRTABLE_CHUNK       (1u << ADDRTABLE_CHUNK_SHIFT)

enum direction { DIR_TX = 0, DIR_RX = 1 };

/* Identity is the address words and meta (20 bytes); range is derived from
 * the address. The words let the hot path build and hash a key from
 * registers, with no narrow stores read back as wide loads. */
struct addr_key {
	union {
		uint8_t addr[16]; /* IPv4 in the first 4 bytes, rest zero */
		uint64_t aw[2];
	};
	union {
		struct {
			uint8_t family; /* 4 or 6 */
			uint8_t dir;    /* enum direction */
			uint8_t proto;  /* enum proto_class */
			uint8_t pad;
		};
		uint32_t meta;
	};
	uint32_t range; /* index into the ranges */
};

static inline uint32_t addr_key_meta(uint8_t family, uint8_t dir, uint8_t proto)
{
	/* the byte layout of family, dir, proto, pad on a little-endian CPU */
	return (uint32_t)family | (uint32_t)dir << 8 | (uint32_t)proto << 16;
}

struct addrtable {
	unsigned words;     /* counter words per histogram */
	size_t max_entries; /* histograms this table may hold */
	size_t max_chunks;
	/* Shared by all tables of the process: addresses tracked so far and
	 * the cap (--max-addresses). */
	_Atomic size_t *tracked;
	size_t max_tracked;

	/* Writer-only index: open addressing, linear probing. A slot holds
	 * (hash >> 32) << 32 | (entry index + 1), 0 when empty. */
	uint64_t *slots;
	size_t mask;
	size_t used;
	/* Writer-only set of distinct addresses: the address hash's upper half
	 * << 32 | entry index + 1 of the first histogram of the address. */
	uint64_t *aslots;
	size_t amask;
	size_t aused;

	/* Published storage: entries of `stride` bytes (the key, then the
	 * histogram's counters, so one lookup touches one place), in chunks
	 * that never move; `count` is stored with release after an entry is
	 * complete, readers load it with acquire. */
	size_t stride;
	unsigned char *_Atomic *chunks;
	_Atomic size_t count;
};

int addrtable_init(struct addrtable *t, unsigned words, size_t max_entries, _Atomic size_t *tracked,
                   size_t max_tracked) MUST_CHECK;
void addrtable_free(struct addrtable *t);

static inline uint64_t addrtable_hash_words(uint64_t a, uint64_t b, uint32_t meta)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + meta) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

static inline uint64_t addrtable_hash(const struct addr_key *k)
{
	return addrtable_hash_words(k->aw[0], k->aw[1], k->meta);
}

static inline int addrtable_key_eq(const struct addr_key *a, const struct addr_key *b)
{
	return a->aw[0] == b->aw[0] && a->aw[1] == b->aw[1] && a->meta == b->meta;
}

static inline unsigned char *addrtable_entry(const struct addrtable *t, size_t i)
{
	unsigned char *c =
	    atomic_load_explicit(&t->chunks[i >> ADDRTABLE_CHUNK_SHIFT], memory_order_acquire);
	return c + (i & (ADDRTABLE_CHUNK - 1)) * t->stride;
}

static inline struct addr_key *addrtable_key(const struct addrtable *t, size_t i)
{
	return (struct addr_key *)addrtable_entry(t, i);
}

static inline counter_t *addrtable_hist(const struct addrtable *t, size_t i)
{
	return (counter_t *)(addrtable_entry(t, i) + sizeof(struct addr_key));
}

/* Slow path: inserts the key. NULL when a cap is reached or memory is out. */
counter_t *addrtable_insert(struct addrtable *t, const struct addr_key *k, uint64_t h);

/* Writer only. The histogram of key k (whose addrtable_hash is h), created
 * on first sight; NULL when the address cannot be tracked (cap reached). */
static inline counter_t *addrtable_get_hashed(struct addrtable *t, const struct addr_key *k,
                                              uint64_t h)
{
	uint64_t tag = h & 0xffffffff00000000ull;
	for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
		uint64_t s = t->slots[i];
		if (s == 0)
			return addrtable_insert(t, k, h);
		if ((s & 0xffffffff00000000ull) == tag) {
			size_t idx = (size_t)(uint32_t)s - 1;
			if (LIKELY(addrtable_key_eq(addrtable_key(t, idx), k)))
				return addrtable_hist(t, idx);
		}
	}
}

static inline counter_t *addrtable_get(struct addrtable *t, const struct addr_key *k)
{
	return addrtable_get_hashed(t, k, addrtable_hash(k));
}

/* Writer only: hints the caches for a lookup of hash h that will follow
 * (the slot), or for the entry the slot names (key and histogram). */
static inline void addrtable_prefetch_slot(const struct addrtable *t, uint64_t h)
{
	__builtin_prefetch(&t->slots[h & t->mask]);
}

/* Returns the entry the slot names when its tag matches (a candidate the
 * caller still compares: entries never move, so it stays valid), else NULL. */
static inline unsigned char *addrtable_prefetch_entry(const struct addrtable *t, uint64_t h)
{
	uint64_t s = t->slots[h & t->mask];
	if (s && (s & 0xffffffff00000000ull) == (h & 0xffffffff00000000ull)) {
		unsigned char *e = addrtable_entry(t, (size_t)(uint32_t)s - 1);
		__builtin_prefetch(e, 1);
		__builtin_prefetch(e + t->stride - 1, 1);
		return e;
	}
	return NULL;
}

/* Readers: number of complete entries. */
static inline size_t addrtable_count(const struct addrtable *t)
{
	return atomic_load_explicit((_Atomic size_t *)&t->count, memory_order_acquire);
}

#endif
