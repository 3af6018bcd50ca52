/* Per-capture-thread store of address histograms, keyed by
 * (address, direction, transport class). */
#ifndef PROMACCT_ADDRTABLE_H
#define PROMACCT_ADDRTABLE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "promacct/common.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "addr_key meta packing");

/* 32768 entries per storage chunk: their counters first (2 MiB with the
 * default buckets: one transparent huge page, so random lookups do not miss
 * the TLB as well), then their keys. */
#define ADDRTABLE_CHUNK_SHIFT 15
#define ADDRTABLE_CHUNK       (1u << ADDRTABLE_CHUNK_SHIFT)
#define ADDRTABLE_LINE        64 /* each histogram's counters start on a cache line */

/* A slot of the index is id << ADDRTABLE_IDX_BITS | (entry index + 1), 0
 * when empty. The id (38 bits) is, for IPv4, the whole key: ADDRTABLE_V4 |
 * address << 5 | direction << 4 | protocol class; so an IPv4 lookup touches
 * the slot and the counters, never the key. Otherwise it is 37 bits of the
 * hash and the key is compared. Hence at most ADDRTABLE_MAX_ENTRIES
 * histograms per capture thread (67 million). */
#define ADDRTABLE_IDX_BITS    26
#define ADDRTABLE_IDX_MASK    ((1ull << ADDRTABLE_IDX_BITS) - 1)
#define ADDRTABLE_MAX_ENTRIES ((size_t)ADDRTABLE_IDX_MASK - 1)
#define ADDRTABLE_V4          (1ull << 37)

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
			uint8_t pad;    /* 0, a rollup's prefix length, or ADDRTABLE_PAD_OTHER */
		};
		uint32_t meta;
	};
	uint32_t range; /* the range group (ranges.h): part of a rollup key's identity */
};

/* pad of a range's overflow key (`ip="other"`): address zero, range the
 * range group whose cap was reached; it is never counted against a cap. */
#define ADDRTABLE_PAD_OTHER 0xff

static inline uint32_t addr_key_meta(uint8_t family, uint8_t dir, uint8_t proto)
{
	/* the byte layout of family, dir, proto, pad on a little-endian CPU */
	return (uint32_t)family | (uint32_t)dir << 8 | (uint32_t)proto << 16;
}

/* Admission of an address new to a table (slow path only, called by the
 * table's writer): the process-wide --max-addresses cap. Nonzero admits.
 * When a table has none, it counts in `tracked` against `max_tracked`. */
struct addrtable_admit {
	int (*admit)(struct addrtable_admit *self, const struct addr_key *k);
	/* The last key of an admitted address expired (addrtable_expire): it
	 * leaves the caps. May be NULL. */
	void (*release)(struct addrtable_admit *self, const struct addr_key *k);
	/* The range group whose overflow series (`ip="other"`) takes the
	 * refused keys of group `range`. May be NULL (then the table's
	 * other_of, or the group itself). */
	uint32_t (*other)(struct addrtable_admit *self, uint32_t range);
};

/* Grace periods for reusing expired entries under lock-free readers (an
 * epoch with two reader counts, see addrtable.c). One per process, shared
 * by the tables; readers bracket every walk of entries with
 * addrtable_read_begin/end. */
struct addrtable_grace {
	_Atomic uint64_t epoch;
	_Atomic uint64_t readers[2]; /* walks in progress, by epoch parity */
};

void addrtable_grace_init(struct addrtable_grace *g);
/* Any thread: a walk starts; returns the token for addrtable_read_end. */
uint64_t addrtable_read_begin(struct addrtable_grace *g);
void addrtable_read_end(struct addrtable_grace *g, uint64_t token);
/* Any writer: ends the current epoch when no walk of the one before is
 * left. Returns the epoch now. */
uint64_t addrtable_grace_advance(struct addrtable_grace *g);

/* Keys of expired entries on their way to one consumer (the remote-write
 * stale markers): a single-producer (the table's writer), single-consumer
 * ring; when it is full, keys are dropped and counted in `lost`. */
struct addrtable_ended {
	struct addr_key *keys;
	size_t cap; /* a power of two */
	_Atomic size_t head, tail;
	_Atomic uint64_t lost;
	_Atomic int enabled; /* a consumer exists: keys are kept */
};

/* Writer-private per entry when expiry is on: the activity signature
 * (sum + first bucket: any packet changes it) and when it last changed. */
struct addrtable_seen {
	uint64_t sig;
	uint64_t tick_ms; /* 0: not looked at yet */
};

/* A retired entry, reusable once the grace epoch reaches tag + 2. */
struct addrtable_limbo {
	uint32_t idx;
	uint64_t tag;
};

struct addrtable {
	unsigned words;                /* counter words per histogram */
	struct addrtable_admit *admit; /* or NULL, see above */
	/* The range group whose overflow key takes a refused key of group g:
	 * other_of[g] (the first range with the same labels), or g itself when
	 * NULL. Not owned. */
	const uint32_t *other_of;
	size_t max_entries; /* histograms of addresses this table may hold */
	/* Overflow histograms (ip="other", one per label set, family,
	 * direction and protocol) held now, ended ones until their entry is
	 * free again: they take no place among
	 * max_entries, so a full table still counts a capped range's traffic
	 * in its ip="other" (up to ADDRTABLE_MAX_ENTRIES in all). */
	size_t nother;
	size_t max_chunks;
	/* Shared by all tables of the process: addresses tracked so far and
	 * the cap (--max-addresses). */
	_Atomic size_t *tracked;
	size_t max_tracked;

	/* Writer-only index: open addressing, linear probing; slots as
	 * described above, placed by the key's hash. */
	uint64_t *slots;
	size_t mask;
	size_t used;
	/* Writer-only set of distinct addresses, slots of the same form: the
	 * address's id (IPv4: ADDRTABLE_V4 | address; else 37 bits of its
	 * hash) and the entry index + 1 of one of its histograms, whose key
	 * is compared (not for IPv4 ids: there it may name an entry retired
	 * since). arefs counts the address's entries. */
	uint64_t *aslots;
	size_t amask;
	size_t aused;

	/* Published storage, in chunks that never move: per entry `stride`
	 * bytes of counters (a multiple of ADDRTABLE_LINE) and, after the
	 * chunk's counters, its key. `count` is stored with release after an
	 * entry is complete; readers load it with acquire. */
	size_t stride;
	unsigned char *_Atomic *chunks;
	_Atomic size_t count;
	/* Entries holding a key now (count less those expired, not reused). */
	_Atomic size_t live;
	/* Insert sequence: seq (writer) numbers every insert, seq_pub is the
	 * last one published, stored with release after its entry. */
	uint64_t seq;
	_Atomic uint64_t seq_pub;

	/* Idle expiry (addrtable_set_expiry, addrtable_expire); writer only
	 * unless said otherwise. Off while timeout_ms is 0. */
	uint64_t timeout_ms;
	struct addrtable_grace *grace;
	struct addrtable_seen **seen;  /* per chunk */
	uint32_t *arefs;               /* per address-set slot: its address's entries */
	struct addrtable_limbo *limbo; /* retired, oldest first */
	size_t nlimbo, limbo_cap;
	uint32_t *freel; /* reusable entries */
	size_t nfree, free_cap;
	size_t cursor;                 /* of the scan */
	struct addrtable_ended *ended; /* or NULL; the consumer reads it */
};

int addrtable_init(struct addrtable *t, unsigned words, size_t max_entries, _Atomic size_t *tracked,
                   size_t max_tracked) MUST_CHECK;
void addrtable_free(struct addrtable *t);
/* Turns idle expiry on (before the first insert): an entry whose counters
 * did not change for timeout seconds is retired by addrtable_expire; its
 * memory is reused after a grace period of g. ended_cap > 0 (a power of
 * two) keeps the keys of retired entries for addrtable_ended_pop. */
int addrtable_set_expiry(struct addrtable *t, struct addrtable_grace *g, double timeout,
                         size_t ended_cap) MUST_CHECK;
/* Entries can end (addrtable_retire_if) without idle expiry: their memory
 * is reused after a grace period of g; ended_cap > 0 (a power of two) keeps
 * their keys for addrtable_ended_pop. Before the first insert. */
int addrtable_set_grace(struct addrtable *t, struct addrtable_grace *g,
                        size_t ended_cap) MUST_CHECK;
/* Writer only, never while a lookup candidate is pending: retires every
 * live entry whose key gone() says is gone, as idle expiry does (index
 * slots deleted, caps released, key to the ended ring, memory reused after
 * a grace period). One pass over the entries. Needs addrtable_set_grace
 * (else does nothing). Returns the entries retired. */
size_t addrtable_retire_if(struct addrtable *t, int (*gone)(void *ctx, const struct addr_key *k),
                           void *ctx);
/* Writer only, never while a lookup candidate is pending (the capture
 * threads call it between batches): looks at up to `budget` entries from
 * where the last call stopped, retires those idle for the timeout (their
 * index slots are deleted, their address leaves the caps when it was its
 * last key), moves retired entries past their grace period to the free
 * list. now_ms is monotonic milliseconds. Returns the entries retired. */
size_t addrtable_expire(struct addrtable *t, uint64_t now_ms, size_t budget);
/* The one consumer announces itself (any thread): from now on keys of
 * retired entries are kept for it (until then they are not). */
void addrtable_ended_enable(struct addrtable *t);
/* The one consumer: moves up to max keys of retired entries into out. */
size_t addrtable_ended_pop(struct addrtable *t, struct addr_key *out, size_t max);
/* Entries holding a key (any thread). */
static inline size_t addrtable_live_count(const struct addrtable *t)
{
	return atomic_load_explicit((_Atomic size_t *)&t->live, memory_order_relaxed);
}

/* Distinct addresses in the table (writer only). */
static inline size_t addrtable_addresses(const struct addrtable *t)
{
	return t->aused;
}

/* The distinct keys held by several writers (the shards of one source),
 * each with the number of writers that hold it: an address (with its range
 * group: a relabelled address is another entry) or a rollup prefix. Every
 * call but addrset_maybe_contains is made under the owner's lock. Bounded
 * by max entries; a removed entry's storage is reused. */
struct addrset_key {
	uint64_t aw[2];
	uint32_t family; /* family | rollup prefix length (pad) << 8 */
	uint32_t range;  /* the range group */
	uint32_t refs;   /* writers that hold it; 0: free (next_free used) */
	uint32_t next_free;
};
struct addrset {
	uint64_t *slot; /* hash tag << 32 | (entry + 1), 0 empty */
	size_t mask;
	struct addrset_key **chunks;
	size_t max_entries, max_chunks;
	size_t count;       /* entries held */
	size_t top;         /* entries ever made (free or held) */
	uint32_t free_head; /* first free entry + 1, 0: none */
	/* entries per hash bucket, for lock-free "surely absent" answers */
	_Atomic uint8_t *hint;
	size_t hint_mask;
};
int addrset_init(struct addrset *s, size_t max_entries) MUST_CHECK;
void addrset_free(struct addrset *s);
/* Any thread, no lock. 0: the key was not in the set at some moment during
 * the call; nonzero: it may be. */
int addrset_maybe_contains(const struct addrset *s, const struct addr_key *k);
/* Nonzero when the key is in the set: one more writer holds it now. */
int addrset_hold(struct addrset *s, const struct addr_key *k);
/* 0 added (one writer holds it), 1 present already (unchanged), -ENOSPC
 * full, -ENOMEM. */
int addrset_add(struct addrset *s, const struct addr_key *k) MUST_CHECK;
/* One writer less holds the key: 1 none does any more (it left the set), 0
 * others still do, -ENOENT it was not in the set. */
int addrset_release(struct addrset *s, const struct addr_key *k);
static inline size_t addrset_count(const struct addrset *s)
{
	return s->count;
}

static inline uint64_t addrtable_hash_words(uint64_t a, uint64_t b, uint32_t meta)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + meta) * 0xc2b2ae3d27d4eb4full;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 32;
	return h;
}

/* A key's hash: a rollup key (pad != 0) also hashes its range group, since
 * ranges alike but apart may roll up into the same prefix. */
/* The range is in the hash of an overflow key only: a rollup key's hash
 * is known from its prefix before its range (account.h). */
static inline uint64_t addrtable_hash_key(uint64_t a, uint64_t b, uint32_t meta, uint32_t range)
{
	return addrtable_hash_words(
	    a, b ^ (meta >> 24 == ADDRTABLE_PAD_OTHER ? (uint64_t)(range + 1) << 40 : 0), meta);
}

static inline uint64_t addrtable_hash(const struct addr_key *k)
{
	return addrtable_hash_key(k->aw[0], k->aw[1], k->meta, k->range);
}

static inline int addrtable_key_eq(const struct addr_key *a, const struct addr_key *b)
{
	return a->aw[0] == b->aw[0] && a->aw[1] == b->aw[1] && a->meta == b->meta &&
	       (!a->pad || a->range == b->range);
}

/* addrtable_key_eq, or, when any_range, equal in address and meta (b's
 * range is not known yet: in its bucket one prefix has one range). */
static inline int addrtable_key_eq_as(const struct addr_key *a, const struct addr_key *b,
                                      int any_range)
{
	return a->aw[0] == b->aw[0] && a->aw[1] == b->aw[1] && a->meta == b->meta &&
	       (!a->pad || any_range || a->range == b->range);
}

/* The id of an IPv4 key (addr4 as loaded from the packet, in memory
 * order) or of any key with hash h. */
static inline uint64_t addrtable_id4(uint32_t addr4, uint8_t dir, uint8_t proto)
{
	return ADDRTABLE_V4 | (uint64_t)addr4 << 5 | (uint64_t)(dir & 1) << 4 | (proto & 15);
}

/* The address of an IPv4 id, and the address-set id of an IPv4 address. */
static inline uint32_t addrtable_id4_addr(uint64_t id)
{
	return (uint32_t)(id >> 5);
}

static inline uint64_t addrtable_aid4(uint32_t addr4)
{
	return ADDRTABLE_V4 | addr4;
}

/* The id of a key from its parts: aw0 is its first address word, h its
 * hash. */
static inline uint64_t addrtable_id(uint8_t family, uint64_t aw0, uint8_t dir, uint8_t proto,
                                    uint64_t h)
{
	return family == 4 ? addrtable_id4((uint32_t)aw0, dir, proto) : h >> 27;
}

/* A rollup key is never an IPv4 id (it is compared whole). */
static inline uint64_t addrtable_key_id(const struct addr_key *k, uint64_t h)
{
	return addrtable_id(k->pad ? 6 : k->family, k->aw[0], k->dir, k->proto, h);
}

static inline unsigned char *addrtable_chunk(const struct addrtable *t, size_t i)
{
	return atomic_load_explicit(&t->chunks[i >> ADDRTABLE_CHUNK_SHIFT], memory_order_acquire);
}

static inline struct addr_key *addrtable_key(const struct addrtable *t, size_t i)
{
	return (struct addr_key *)(addrtable_chunk(t, i) + (size_t)ADDRTABLE_CHUNK * t->stride +
	                           (i & (ADDRTABLE_CHUNK - 1)) * sizeof(struct addr_key));
}

static inline counter_t *addrtable_hist(const struct addrtable *t, size_t i)
{
	return (counter_t *)(addrtable_chunk(t, i) + (i & (ADDRTABLE_CHUNK - 1)) * t->stride);
}

/* The live words of a chunk's entries, after its keys: while the entry
 * holds its key, the table's insert sequence number of that insert (its
 * birth, from 1); 0 once it expired (until it is reused). */
static inline _Atomic uint64_t *addrtable_chunk_live(const struct addrtable *t,
                                                     const unsigned char *chunk)
{
	return (_Atomic uint64_t *)(chunk + (size_t)ADDRTABLE_CHUNK *
	                                        (t->stride + sizeof(struct addr_key)));
}

/* Readers, inside addrtable_read_begin/end: entry i's birth, 0 when it
 * holds no key (seq_cst: see the grace-period argument in addrtable.c). A
 * walk takes the entries whose birth is not past the addrtable_seq it read
 * at its start: so every pass of it sees the same keys, less those that
 * expire meanwhile (a reused entry is born after it). */
static inline uint64_t addrtable_live_at(const struct addrtable *t, const unsigned char *chunk,
                                         size_t i)
{
	return atomic_load_explicit(&addrtable_chunk_live(t, chunk)[i & (ADDRTABLE_CHUNK - 1)],
	                            memory_order_seq_cst);
}

static inline uint64_t addrtable_live(const struct addrtable *t, size_t i)
{
	return addrtable_live_at(t, addrtable_chunk(t, i), i);
}

/* Readers: the birth of the newest entry published (acquire; load it
 * before addrtable_count). */
static inline uint64_t addrtable_seq(const struct addrtable *t)
{
	return atomic_load_explicit((_Atomic uint64_t *)&t->seq_pub, memory_order_acquire);
}

/* Slow path: inserts the key (hash h, id). A key refused by a cap (the
 * admission or max_tracked) gets its range group's overflow histogram
 * instead (ADDRTABLE_PAD_OTHER); NULL when the table is full or memory is
 * out. */
counter_t *addrtable_insert(struct addrtable *t, const struct addr_key *k, uint64_t h, uint64_t id);

/* Writer only. The histogram of key k (hash h, id as addrtable_key_id),
 * created on first sight; NULL when the address cannot be tracked. */
static inline counter_t *addrtable_get_hashed(struct addrtable *t, const struct addr_key *k,
                                              uint64_t h, uint64_t id)
{
	for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
		uint64_t s = t->slots[i];
		if (s == 0)
			return addrtable_insert(t, k, h, id);
		if ((s >> ADDRTABLE_IDX_BITS) == id) {
			size_t idx = (size_t)(s & ADDRTABLE_IDX_MASK) - 1;
			if (LIKELY((id & ADDRTABLE_V4) ||
			           addrtable_key_eq(addrtable_key(t, idx), k)))
				return addrtable_hist(t, idx);
		}
	}
}

static inline counter_t *addrtable_get(struct addrtable *t, const struct addr_key *k)
{
	uint64_t h = addrtable_hash(k);
	return addrtable_get_hashed(t, k, h, addrtable_key_id(k, h));
}

/* Writer only: hints the caches for a lookup of hash h that will follow. */
static inline void addrtable_prefetch_slot(const struct addrtable *t, uint64_t h)
{
	__builtin_prefetch(&t->slots[h & t->mask]);
}

/* A candidate for the lookup of (h, id): the counters of the entry the
 * slot names when its id matches, else NULL; *idx is its index. For IPv4
 * the match is exact; otherwise the caller compares the key at *idx (both
 * are prefetched). Entries never move, so the candidate stays valid. */
static inline counter_t *addrtable_prefetch_entry(const struct addrtable *t, uint64_t h,
                                                  uint64_t id, uint32_t *idx)
{
	uint64_t s;
	size_t j = (size_t)h & t->mask;
	while ((s = t->slots[j]) != 0 && (s >> ADDRTABLE_IDX_BITS) != id)
		j = (j + 1) & t->mask;
	if (!s)
		return NULL;
	size_t i = (size_t)(s & ADDRTABLE_IDX_MASK) - 1;
	counter_t *c = addrtable_hist(t, i);
	__builtin_prefetch(c, 1);
	if (t->stride > ADDRTABLE_LINE)
		__builtin_prefetch((unsigned char *)c + t->stride - 1, 1);
	if (!(id & ADDRTABLE_V4))
		__builtin_prefetch(addrtable_key(t, i));
	*idx = (uint32_t)i;
	return c;
}

/* The address-set slot of an address id (see aslots). */
static inline size_t addrtable_aset_pos(uint64_t aid, size_t mask)
{
	return (size_t)addrtable_hash_words(aid, 0, 0) & mask;
}

/* Writer only: a lookup of IPv4 key id found nothing at prefetch time, so
 * an insert is likely: hints the caches for the address-set slot of its
 * address (the insert's only other cache miss). */
static inline void addrtable_prefetch_insert4(const struct addrtable *t, uint64_t id)
{
	__builtin_prefetch(
	    &t->aslots[addrtable_aset_pos(addrtable_aid4(addrtable_id4_addr(id)), t->amask)]);
}

/* Readers: number of entries ever made; those of [0, count) that are not
 * addrtable_live are expired (or being reused); load it after
 * addrtable_seq. */
static inline size_t addrtable_count(const struct addrtable *t)
{
	return atomic_load_explicit((_Atomic size_t *)&t->count, memory_order_acquire);
}

#endif
