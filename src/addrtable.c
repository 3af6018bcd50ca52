/* DESIGN: the per-capture-thread address table.
 *
 * Owned by one capture thread, which is its only writer; the scrape and push
 * threads read it concurrently without locks. The hash index (slots, aslots)
 * is private to the writer and may be rehashed at will. Keys and histograms
 * live in fixed-size chunks that never move once allocated, so a reader that
 * loaded `count` with acquire can read entries [0, count) while the writer
 * appends. State grows with the addresses actually seen, never with the size
 * of a configured range: one entry of 64 bytes of counters (default buckets,
 * one cache line) + 24 bytes of key + 8 bytes of live word (idle expiry)
 * + 16 to 32 bytes of index per (address,
 * direction, protocol) histogram. The counters and the keys sit apart, and
 * an IPv4 key is held whole in its index slot, so the per-packet lookup of
 * an IPv4 address touches two cache lines: the slot and the counters.
 *
 * The slow path (a new key) allocates and may rehash; it runs once per new
 * histogram, never for known ones.
 *
 * Idle expiry (addrtable_expire, off unless addrtable_set_expiry): the
 * writer itself scans its entries in slices between packet batches. Nothing
 * is added to the per-packet path: an entry's activity signature is its sum
 * plus its first bucket (any packet changes one of them), compared with the
 * one the scan saw last time (writer-private, per entry); an entry whose
 * signature did not change for the timeout is retired: its index slot is
 * deleted by backward shifting (linear probing stays tombstone-free), its
 * address's count of entries drops (at zero the address leaves the address
 * set and the caps), its key goes to the `ended` ring (stale markers), and
 * its live word is cleared. Readers skip entries that are not live. The
 * live word of an entry holding a key is its birth, the table's insert
 * sequence number; a walk reads the last one published at its start and
 * skips entries born later, so an entry reused during a walk stays out of
 * all its passes (their key sets agree, less keys that expire meanwhile).
 *
 * Its memory is reused only after a grace period, so a reader never sees a
 * key or counters change under it. Readers bracket each walk with
 * addrtable_read_begin/end, which count them in readers[epoch & 1] (a
 * reader that saw the epoch move while registering retries). The writer
 * tags a retired entry with the epoch it loads after clearing the flag;
 * the epoch advances from e to e + 1 only when readers[(e + 1) & 1] - the
 * walks of epoch e - 1 - is zero. An entry of tag T is reused once the
 * epoch is T + 2: every walk registered at an epoch <= T has ended. A walk
 * that could still see the entry live registered before the flag was
 * cleared, so at an epoch <= T (all these accesses are seq_cst, hence one
 * total order); a walk registered later sees the flag cleared and never
 * touches the entry. The reader's release on leaving and the writer's
 * acquire of the epoch order the reader's last read of an entry before its
 * reuse (what TSan checks). A walk that lasts only delays reuse; then new
 * keys take new entries, up to max_entries, so memory stays bounded.
 *
 * addrtable_retire_if retires entries the same way by a predicate (a
 * reload that removed or changed their range), in one pass; it needs only
 * the grace periods (addrtable_set_grace), not idle expiry. */
#include "promacct/addrtable.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define INITIAL_SLOTS 1024
#define SCAN_AHEAD    8 /* entries the expiry scan prefetches ahead */
#define HUGE_PAGE     (2u << 20)

/* Zeroed memory for large arrays: mmap'd (pages become resident only when
 * touched) and, from 2 MiB on, backed by transparent huge pages where the
 * kernel allows it. NULL on failure. Free with big_free(p, size). */
static void *big_alloc(size_t size)
{
	if (size < HUGE_PAGE) {
		void *p =
		    mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		return p == MAP_FAILED ? NULL : p;
	}
	/* Huge pages need 2 MiB-aligned extents: map more, trim to alignment. */
	size_t span = size + HUGE_PAGE;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	char *p = (char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~((uintptr_t)HUGE_PAGE - 1));
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	size_t tail = (size_t)(raw + span - (p + size));
	if (tail)
		munmap(p + size, tail);
	(void)madvise(p, size, MADV_HUGEPAGE);
	return p;
}

static void big_free(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

static size_t chunk_bytes(const struct addrtable *t)
{
	return (size_t)ADDRTABLE_CHUNK * (t->stride + sizeof(struct addr_key) + sizeof(uint64_t));
}

/* ---- grace periods ------------------------------------------------------- */

void addrtable_grace_init(struct addrtable_grace *g)
{
	atomic_init(&g->epoch, 2);
	atomic_init(&g->readers[0], 0);
	atomic_init(&g->readers[1], 0);
}

uint64_t addrtable_read_begin(struct addrtable_grace *g)
{
	for (;;) {
		uint64_t e = atomic_load(&g->epoch);
		atomic_fetch_add(&g->readers[e & 1], 1);
		if (atomic_load(&g->epoch) == e)
			return e;
		atomic_fetch_sub(&g->readers[e & 1], 1); /* it moved: register again */
	}
}

void addrtable_read_end(struct addrtable_grace *g, uint64_t token)
{
	atomic_fetch_sub_explicit(&g->readers[token & 1], 1, memory_order_release);
}

uint64_t addrtable_grace_advance(struct addrtable_grace *g)
{
	uint64_t e = atomic_load(&g->epoch);
	if (atomic_load(&g->readers[(e + 1) & 1]) == 0 &&
	    atomic_compare_exchange_strong(&g->epoch, &e, e + 1))
		return e + 1;
	return e; /* or what another writer made it */
}

int addrtable_init(struct addrtable *t, unsigned words, size_t max_entries, _Atomic size_t *tracked,
                   size_t max_tracked)
{
	memset(t, 0, sizeof *t);
	t->words = words;
	if (max_entries > ADDRTABLE_MAX_ENTRIES)
		max_entries = ADDRTABLE_MAX_ENTRIES;
	t->max_entries = max_entries;
	/* room for the overflow keys beyond max_entries: 8 bytes of chunk
	 * pointer per 32,768 entries up to the index's limit (16 KiB) */
	t->max_chunks = (ADDRTABLE_MAX_ENTRIES + ADDRTABLE_CHUNK - 1) / ADDRTABLE_CHUNK + 1;
	t->tracked = tracked;
	t->max_tracked = max_tracked;
	t->mask = INITIAL_SLOTS - 1; /* before the allocations: addrtable_free uses it */
	t->slots = big_alloc(INITIAL_SLOTS * sizeof *t->slots);
	t->aslots = calloc(INITIAL_SLOTS, sizeof *t->aslots);
	t->arefs = calloc(INITIAL_SLOTS, sizeof *t->arefs);
	t->stride = ((size_t)words * sizeof(counter_t) + ADDRTABLE_LINE - 1) &
	            ~(size_t)(ADDRTABLE_LINE - 1);
	t->chunks = calloc(t->max_chunks, sizeof *t->chunks);
	t->amask = INITIAL_SLOTS - 1;
	if (!t->slots || !t->aslots || !t->arefs || !t->chunks) {
		addrtable_free(t);
		return -ENOMEM;
	}
	return 0;
}

void addrtable_free(struct addrtable *t)
{
	if (t->chunks)
		for (size_t i = 0; i < t->max_chunks; i++)
			big_free(atomic_load_explicit(&t->chunks[i], memory_order_relaxed),
			         chunk_bytes(t));
	free(t->chunks);
	if (t->slots)
		big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
	free(t->aslots);
	free(t->arefs);
	if (t->seen)
		for (size_t i = 0; i < t->max_chunks; i++)
			free(t->seen[i]);
	free(t->seen);
	free(t->limbo);
	free(t->freel);
	if (t->ended) {
		big_free(t->ended->keys, t->ended->cap * sizeof *t->ended->keys);
		free(t->ended);
	}
	memset(t, 0, sizeof *t);
}

/* The hash of a slot's key: for IPv4 rebuilt from the id, else from the
 * key the slot names (growing the index reads no IPv4 key). */
static uint64_t slot_hash(const struct addrtable *t, uint64_t s)
{
	uint64_t id = s >> ADDRTABLE_IDX_BITS;
	if (id & ADDRTABLE_V4)
		return addrtable_hash_words(addrtable_id4_addr(id), 0,
		                            addr_key_meta(4, (id >> 4) & 1, id & 15));
	return addrtable_hash(addrtable_key(t, (size_t)(s & ADDRTABLE_IDX_MASK) - 1));
}

/* Address-set ids: IPv4 ADDRTABLE_V4 | address, else 37 bits of a hash of
 * the address. The position of an id is a hash of it (addrtable_aset_pos). */
static uint64_t addr_id(const struct addr_key *k)
{
	if (k->family == 4 && !k->pad)
		return addrtable_aid4((uint32_t)k->aw[0]);
	return addrtable_hash_key(k->aw[0], k->aw[1], (uint32_t)k->pad << 24 | k->family,
	                          k->range) >>
	       27;
}

static int grow_slots(struct addrtable *t)
{
	size_t ncap = (t->mask + 1) * 2;
	uint64_t *ns = big_alloc(ncap * sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t j = 0; j <= t->mask; j++) {
		uint64_t v = t->slots[j];
		if (!v)
			continue;
		size_t i = (size_t)slot_hash(t, v) & (ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = v;
	}
	big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
	t->slots = ns;
	t->mask = ncap - 1;
	return 0;
}

static int grow_aslots(struct addrtable *t)
{
	size_t ncap = (t->amask + 1) * 2;
	uint64_t *ns = calloc(ncap, sizeof *ns);
	uint32_t *nr = calloc(ncap, sizeof *nr);
	if (!ns || !nr) {
		free(ns);
		free(nr);
		return -ENOMEM;
	}
	for (size_t j = 0; j <= t->amask; j++) {
		uint64_t v = t->aslots[j];
		if (!v)
			continue;
		size_t i = addrtable_aset_pos(v >> ADDRTABLE_IDX_BITS, ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = v;
		nr[i] = t->arefs[j];
	}
	free(t->aslots);
	free(t->arefs);
	t->aslots = ns;
	t->arefs = nr;
	t->amask = ncap - 1;
	return 0;
}

/* Finds the address in the address set; returns its slot, or the empty slot
 * where it would go (with *found = 0). */
static size_t aset_find(const struct addrtable *t, const struct addr_key *k, uint64_t id,
                        int *found)
{
	for (size_t i = addrtable_aset_pos(id, t->amask);; i = (i + 1) & t->amask) {
		uint64_t v = t->aslots[i];
		if (!v) {
			*found = 0;
			return i;
		}
		if ((v >> ADDRTABLE_IDX_BITS) != id)
			continue;
		if (id & ADDRTABLE_V4) {
			*found = 1;
			return i;
		}
		const struct addr_key *o = addrtable_key(t, (size_t)(v & ADDRTABLE_IDX_MASK) - 1);
		if (o->family == k->family && o->aw[0] == k->aw[0] && o->aw[1] == k->aw[1] &&
		    o->pad == k->pad && (!k->pad || o->range == k->range)) {
			*found = 1;
			return i;
		}
	}
}

/* The overflow histogram (`ip="other"`) of a refused key's range group. */
static counter_t *overflow(struct addrtable *t, const struct addr_key *k)
{
	struct addr_key o;
	memset(&o, 0, sizeof o);
	o.family = k->family;
	o.dir = k->dir;
	o.proto = k->proto;
	o.pad = ADDRTABLE_PAD_OTHER;
	o.range = t->admit && t->admit->other ? t->admit->other(t->admit, k->range)
	          : t->other_of               ? t->other_of[k->range]
	                                      : k->range;
	return addrtable_get(t, &o);
}

/* Retired entries past their grace period become reusable (the free list
 * has room for all of them: see retire). */
static void drain_limbo(struct addrtable *t)
{
	if (!t->nlimbo)
		return;
	uint64_t e = atomic_load_explicit(&t->grace->epoch, memory_order_acquire);
	size_t m = 0;
	while (m < t->nlimbo && t->limbo[m].tag + 2 <= e) {
		uint32_t idx = t->limbo[m++].idx;
		/* an overflow entry holds its place beyond max_entries until
		 * it is free (then any key may take it) */
		if (addrtable_key(t, idx)->pad == ADDRTABLE_PAD_OTHER)
			t->nother--;
		t->freel[t->nfree++] = idx;
	}
	if (m) {
		memmove(t->limbo, t->limbo + m, (t->nlimbo - m) * sizeof *t->limbo);
		t->nlimbo -= m;
	}
}

/* The writer-private activity record of entry i; the chunk's records are
 * allocated on first use. NULL when memory is out. */
static struct addrtable_seen *seen_of(struct addrtable *t, size_t i)
{
	struct addrtable_seen **c = &t->seen[i >> ADDRTABLE_CHUNK_SHIFT];
	if (!*c && !(*c = calloc(ADDRTABLE_CHUNK, sizeof **c)))
		return NULL;
	return &(*c)[i & (ADDRTABLE_CHUNK - 1)];
}

counter_t *addrtable_insert(struct addrtable *t, const struct addr_key *k, uint64_t h, uint64_t id)
{
	size_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
	int found = 1, other = k->pad == ADDRTABLE_PAD_OTHER;
	size_t aslot = 0;
	uint64_t aid = 0;

	if (!t->nfree && t->nlimbo) {
		/* entries retired by a reload wait for the epoch to move two
		 * steps; with no expiry scanning, new keys move it */
		addrtable_grace_advance(t->grace);
		drain_limbo(t);
	}
	int reuse = t->nfree > 0;
	if (!reuse && n >= (other ? ADDRTABLE_MAX_ENTRIES : t->max_entries + t->nother))
		return other ? NULL : overflow(t, k);
	/* Grow first, so a failure changes nothing and the index always keeps
	 * empty slots (probing relies on them). */
	if ((t->used + 1) * 2 > t->mask + 1 && grow_slots(t))
		return NULL;
	if ((t->aused + 1) * 2 > t->amask + 1 && grow_aslots(t))
		return NULL;
	size_t chunk = n >> ADDRTABLE_CHUNK_SHIFT;
	if (!reuse && !atomic_load_explicit(&t->chunks[chunk], memory_order_relaxed)) {
		unsigned char *c = big_alloc(chunk_bytes(t)); /* zeroed */
		if (!c)
			return NULL;
		atomic_store_explicit(&t->chunks[chunk], c, memory_order_release);
	}
	if (t->timeout_ms && !seen_of(t, reuse ? t->freel[t->nfree - 1] : n))
		return NULL;
	if (!other) { /* an overflow key is no address: never capped */
		aid = addr_id(k);
		aslot = aset_find(t, k, aid, &found);
	}
	if (!found) {
		if (t->admit) {
			if (!t->admit->admit(t->admit, k))
				return overflow(t, k);
		} else {
			size_t cur = atomic_load_explicit(t->tracked, memory_order_relaxed);
			do {
				if (cur >= t->max_tracked)
					return overflow(t, k);
			} while (!atomic_compare_exchange_weak_explicit(
			    t->tracked, &cur, cur + 1, memory_order_relaxed, memory_order_relaxed));
		}
	}
	size_t e = reuse ? t->freel[--t->nfree] : n;
	*addrtable_key(t, e) = *k;
	if (t->timeout_ms)
		*seen_of(t, e) = (struct addrtable_seen){0, 0}; /* allocated above */
	_Atomic uint64_t *live =
	    &addrtable_chunk_live(t, addrtable_chunk(t, e))[e & (ADDRTABLE_CHUNK - 1)];
	uint64_t birth = ++t->seq;
	if (reuse) {
		/* no reader can see this entry (grace period): start from zero,
		 * then publish key and counters with its birth */
		counter_t *c = addrtable_hist(t, e);
		for (unsigned w = 0; w < t->words; w++)
			atomic_store_explicit(&c[w], 0, memory_order_relaxed);
		atomic_store_explicit(live, birth, memory_order_release);
	} else {
		atomic_store_explicit(live, birth, memory_order_relaxed);
		atomic_store_explicit(&t->count, n + 1, memory_order_release);
	}
	atomic_store_explicit(&t->seq_pub, birth, memory_order_release);
	t->nother += (size_t)other;
	atomic_store_explicit(&t->live, atomic_load_explicit(&t->live, memory_order_relaxed) + 1,
	                      memory_order_relaxed);

	size_t i = (size_t)h & t->mask;
	while (t->slots[i])
		i = (i + 1) & t->mask;
	t->slots[i] = id << ADDRTABLE_IDX_BITS | (uint64_t)(e + 1);
	t->used++;
	if (!found) {
		t->aslots[aslot] = aid << ADDRTABLE_IDX_BITS | (uint64_t)(e + 1);
		t->arefs[aslot] = 1;
		t->aused++;
	} else if (!other) {
		t->arefs[aslot]++;
	}
	return addrtable_hist(t, e);
}

/* ---- idle expiry --------------------------------------------------------- */

int addrtable_set_grace(struct addrtable *t, struct addrtable_grace *g, size_t ended_cap)
{
	if (ended_cap && !t->ended) {
		t->ended = calloc(1, sizeof *t->ended);
		if (!t->ended)
			return -ENOMEM;
		t->ended->keys = big_alloc(ended_cap * sizeof *t->ended->keys);
		if (!t->ended->keys) {
			free(t->ended);
			t->ended = NULL;
			return -ENOMEM;
		}
		t->ended->cap = ended_cap;
	}
	t->grace = g;
	return 0;
}

int addrtable_set_expiry(struct addrtable *t, struct addrtable_grace *g, double timeout,
                         size_t ended_cap)
{
	t->seen = calloc(t->max_chunks, sizeof *t->seen);
	if (!t->seen)
		return -ENOMEM;
	if (addrtable_set_grace(t, g, ended_cap))
		return -ENOMEM;
	t->timeout_ms = (uint64_t)(timeout * 1000 + 0.5);
	if (!t->timeout_ms)
		t->timeout_ms = 1;
	return 0;
}

/* The entry holding key k, or -1 (a lookup that never inserts). */
static ptrdiff_t find_entry(const struct addrtable *t, const struct addr_key *k)
{
	uint64_t h = addrtable_hash(k), id = addrtable_key_id(k, h);
	for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
		uint64_t s = t->slots[i];
		if (!s)
			return -1;
		if ((s >> ADDRTABLE_IDX_BITS) != id)
			continue;
		size_t e = (size_t)(s & ADDRTABLE_IDX_MASK) - 1;
		if ((id & ADDRTABLE_V4) || addrtable_key_eq(addrtable_key(t, e), k))
			return (ptrdiff_t)e;
	}
}

/* Whether slot j may take the value at home position `home` on the way
 * from hole i: its home is not cyclically in (i, j]. */
static int shift_ok(size_t home, size_t i, size_t j, size_t mask)
{
	return ((j - home) & mask) >= ((j - i) & mask);
}

/* Deletes index slot value v (placed by hash h) by backward shifting: the
 * slots after it that could not sit in the hole move back, so probing
 * never meets a hole inside a run and needs no tombstones. */
static void slot_delete(struct addrtable *t, uint64_t h, uint64_t v)
{
	size_t i = (size_t)h & t->mask;
	while (t->slots[i] != v)
		i = (i + 1) & t->mask;
	for (size_t j = (i + 1) & t->mask; t->slots[j]; j = (j + 1) & t->mask)
		if (shift_ok((size_t)slot_hash(t, t->slots[j]) & t->mask, i, j, t->mask)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	t->slots[i] = 0;
	t->used--;
}

/* The same for the address set (with its entry counts). */
static void aset_delete(struct addrtable *t, size_t i)
{
	for (size_t j = (i + 1) & t->amask; t->aslots[j]; j = (j + 1) & t->amask)
		if (shift_ok(addrtable_aset_pos(t->aslots[j] >> ADDRTABLE_IDX_BITS, t->amask), i, j,
		             t->amask)) {
			t->aslots[i] = t->aslots[j];
			t->arefs[i] = t->arefs[j];
			i = j;
		}
	t->aslots[i] = 0;
	t->arefs[i] = 0;
	t->aused--;
}

/* Entry e (key k, its index slot deleted already) leaves its address. */
static void aset_release(struct addrtable *t, const struct addr_key *k, size_t e)
{
	int found;
	uint64_t aid = addr_id(k);
	size_t p = aset_find(t, k, aid, &found);
	if (!found)
		return; /* cannot be: every key held has its address in the set */
	if (--t->arefs[p] == 0) {
		aset_delete(t, p);
		if (t->admit) {
			if (t->admit->release)
				t->admit->release(t->admit, k);
		} else {
			atomic_fetch_sub_explicit(t->tracked, 1, memory_order_relaxed);
		}
		return;
	}
	if ((aid & ADDRTABLE_V4) || (size_t)(t->aslots[p] & ADDRTABLE_IDX_MASK) - 1 != e)
		return;
	/* e was the entry the set compares with (not IPv4): another entry of
	 * the address takes its place */
	struct addr_key o = *k;
	for (uint8_t dir = 0; dir < 2; dir++)
		for (uint8_t proto = 0; proto < 16; proto++) {
			o.dir = dir;
			o.proto = proto;
			ptrdiff_t x = find_entry(t, &o);
			if (x >= 0) {
				t->aslots[p] = aid << ADDRTABLE_IDX_BITS | (uint64_t)(x + 1);
				return;
			}
		}
}

void addrtable_ended_enable(struct addrtable *t)
{
	if (t->ended)
		atomic_store_explicit(&t->ended->enabled, 1, memory_order_relaxed);
}

static void ended_push(struct addrtable_ended *r, const struct addr_key *k)
{
	if (!atomic_load_explicit(&r->enabled, memory_order_relaxed))
		return;
	size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	if (head - atomic_load_explicit(&r->tail, memory_order_acquire) >= r->cap) {
		atomic_fetch_add_explicit(&r->lost, 1, memory_order_relaxed);
		return;
	}
	r->keys[head & (r->cap - 1)] = *k;
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
}

size_t addrtable_ended_pop(struct addrtable *t, struct addr_key *out, size_t max)
{
	struct addrtable_ended *r = t->ended;
	if (!r)
		return 0;
	size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	size_t n = head - tail < max ? head - tail : max;
	for (size_t i = 0; i < n; i++)
		out[i] = r->keys[(tail + i) & (r->cap - 1)];
	atomic_store_explicit(&r->tail, tail + n, memory_order_release);
	return n;
}

/* Retires live entry e. -ENOMEM (nothing changed) when the lists cannot
 * grow. */
static int retire(struct addrtable *t, size_t e)
{
	/* room in limbo, and in the free list for all of limbo (drain_limbo
	 * must not fail) */
	if (t->nlimbo == t->limbo_cap) {
		size_t ncap = t->limbo_cap ? t->limbo_cap * 2 : 256;
		struct addrtable_limbo *nl = realloc(t->limbo, ncap * sizeof *nl);
		if (!nl)
			return -ENOMEM;
		t->limbo = nl;
		t->limbo_cap = ncap;
	}
	if (t->nfree + t->nlimbo + 1 > t->free_cap) {
		size_t ncap = t->free_cap ? t->free_cap * 2 : 256;
		uint32_t *nf = realloc(t->freel, ncap * sizeof *nf);
		if (!nf)
			return -ENOMEM;
		t->freel = nf;
		t->free_cap = ncap;
	}
	struct addr_key k = *addrtable_key(t, e);
	uint64_t h = addrtable_hash(&k);
	slot_delete(t, h, addrtable_key_id(&k, h) << ADDRTABLE_IDX_BITS | (uint64_t)(e + 1));
	if (k.pad != ADDRTABLE_PAD_OTHER)
		aset_release(t, &k, e);
	if (t->ended)
		ended_push(t->ended, &k);
	atomic_store_explicit(
	    &addrtable_chunk_live(t, addrtable_chunk(t, e))[e & (ADDRTABLE_CHUNK - 1)], 0,
	    memory_order_seq_cst);
	uint64_t tag = atomic_load_explicit(&t->grace->epoch, memory_order_seq_cst);
	t->limbo[t->nlimbo++] = (struct addrtable_limbo){(uint32_t)e, tag};
	atomic_store_explicit(&t->live, atomic_load_explicit(&t->live, memory_order_relaxed) - 1,
	                      memory_order_relaxed);
	return 0;
}

size_t addrtable_expire(struct addrtable *t, uint64_t now_ms, size_t budget)
{
	size_t n = atomic_load_explicit(&t->count, memory_order_relaxed), retired = 0;
	if (!t->timeout_ms)
		return 0;
	if (now_ms == 0)
		now_ms = 1; /* 0 means "not looked at" */
	for (size_t v = 0; v < budget && v < n; v++) {
		if (t->cursor >= n)
			t->cursor = 0;
		size_t e = t->cursor++;
		const unsigned char *chunk = addrtable_chunk(t, e);
		/* the entry looked at a few steps on (its counters and record):
		 * slices are short runs, too short for the hardware prefetcher */
		size_t ahead = e + SCAN_AHEAD;
		if ((ahead & (ADDRTABLE_CHUNK - 1)) >= SCAN_AHEAD && ahead < n) {
			__builtin_prefetch(chunk + (ahead & (ADDRTABLE_CHUNK - 1)) * t->stride);
			if (t->seen[ahead >> ADDRTABLE_CHUNK_SHIFT])
				__builtin_prefetch(&t->seen[ahead >> ADDRTABLE_CHUNK_SHIFT]
				                           [ahead & (ADDRTABLE_CHUNK - 1)],
				                   1);
		}
		if (!atomic_load_explicit(
		        &addrtable_chunk_live(t, chunk)[e & (ADDRTABLE_CHUNK - 1)],
		        memory_order_relaxed))
			continue;
		struct addrtable_seen *s = seen_of(t, e);
		if (!s)
			break;
		const counter_t *c = addrtable_hist(t, e);
		uint64_t sig = counter_read(&c[0]) + counter_read(&c[1]);
		if (!s->tick_ms || sig != s->sig) {
			s->sig = sig;
			s->tick_ms = now_ms;
			continue;
		}
		if (now_ms - s->tick_ms < t->timeout_ms)
			continue;
		if (retire(t, e))
			break;
		retired++;
	}
	if (t->nlimbo) {
		addrtable_grace_advance(t->grace);
		drain_limbo(t);
	}
	return retired;
}

size_t addrtable_retire_if(struct addrtable *t, int (*gone)(void *ctx, const struct addr_key *k),
                           void *ctx)
{
	size_t n = atomic_load_explicit(&t->count, memory_order_relaxed), retired = 0;
	if (!t->grace)
		return 0;
	for (size_t e = 0; e < n; e++) {
		if (!atomic_load_explicit(
		        &addrtable_chunk_live(t, addrtable_chunk(t, e))[e & (ADDRTABLE_CHUNK - 1)],
		        memory_order_relaxed))
			continue;
		if (!gone(ctx, addrtable_key(t, e)))
			continue;
		if (retire(t, e))
			break;
		retired++;
	}
	if (t->nlimbo) {
		addrtable_grace_advance(t->grace);
		drain_limbo(t);
	}
	return retired;
}

/* ---- the shared address set ---------------------------------------------- */

/* Caller-serialized (the owner's lock) but for the hint counts, which
 * readers load without it: linear probing with backward-shift deletion, so
 * no tombstones pile up; removed entries go to a free list. The hints are
 * entries per hash bucket (a counting Bloom filter: two buckets per key, from
 * two halves of its hash, 8 buckets per entry: when full, about 1 key in 20
 * that is not in the set has both nonzero), one byte each: a bucket that
 * reaches 255 stays there (it only answers "maybe" for good). */

#define ASET_CHUNK_SHIFT 12
#define ASET_CHUNK       (1u << ASET_CHUNK_SHIFT)
#define ASET_HINTS_MAX   ((size_t)1 << 24) /* 16 MiB of hint counts at most */
#define ASET_HINT_STUCK  255

/* Address (or rollup prefix), prefix length and range group. */
static uint64_t aset_hash(const struct addr_key *k)
{
	return addrtable_hash_words(k->aw[0], k->aw[1] ^ (uint64_t)k->range * 0x9e3779b97f4a7c15ull,
	                            (uint32_t)k->pad << 24 | k->family);
}

static struct addrset_key *aset_entry(const struct addrset *s, size_t i)
{
	return &s->chunks[i >> ASET_CHUNK_SHIFT][i & (ASET_CHUNK - 1)];
}

int addrset_init(struct addrset *s, size_t max_entries)
{
	memset(s, 0, sizeof *s);
	s->max_entries = max_entries;
	s->max_chunks = max_entries / ASET_CHUNK + 1;
	size_t hints = 64;
	while (hints < max_entries * 8 && hints < ASET_HINTS_MAX)
		hints *= 2;
	s->hint_mask = hints - 1;
	s->mask = 63;
	s->chunks = calloc(s->max_chunks, sizeof *s->chunks);
	s->slot = calloc(s->mask + 1, sizeof *s->slot);
	s->hint = calloc(hints, sizeof *s->hint);
	if (!s->chunks || !s->slot || !s->hint) {
		free(s->chunks);
		free(s->slot);
		free(s->hint);
		memset(s, 0, sizeof *s);
		return -ENOMEM;
	}
	return 0;
}

void addrset_free(struct addrset *s)
{
	if (s->chunks)
		for (size_t i = 0; i < s->max_chunks; i++)
			free(s->chunks[i]);
	free(s->chunks);
	free(s->slot);
	free(s->hint);
	memset(s, 0, sizeof *s);
}

static int aset_key_eq(const struct addrset_key *e, const struct addr_key *k)
{
	return e->family == ((uint32_t)k->pad << 8 | k->family) && e->aw[0] == k->aw[0] &&
	       e->aw[1] == k->aw[1] && e->range == k->range;
}

/* The slot of the key, or of the empty slot where it would go. */
static size_t aset_probe(const struct addrset *s, uint64_t h, const struct addr_key *k, int *found)
{
	uint64_t tag = h & 0xffffffffu;
	for (size_t i = (size_t)h & s->mask;; i = (i + 1) & s->mask) {
		uint64_t v = s->slot[i];
		if (!v) {
			*found = 0;
			return i;
		}
		if ((v >> 32) == tag &&
		    aset_key_eq(aset_entry(s, (size_t)(v & 0xffffffffu) - 1), k)) {
			*found = 1;
			return i;
		}
	}
}

/* The two hint buckets of a key's hash. */
static size_t aset_hint1(const struct addrset *s, uint64_t h)
{
	return (size_t)h & s->hint_mask;
}

static size_t aset_hint2(const struct addrset *s, uint64_t h)
{
	return (size_t)(h >> 32 ^ h >> 7) & s->hint_mask;
}

static void aset_hint_add(struct addrset *s, size_t i, int d)
{
	_Atomic uint8_t *c = &s->hint[i];
	uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
	if (v != ASET_HINT_STUCK)
		atomic_store_explicit(c, (uint8_t)(v + d), memory_order_relaxed);
}

int addrset_maybe_contains(const struct addrset *s, const struct addr_key *k)
{
	uint64_t h = aset_hash(k);
	return atomic_load_explicit(&s->hint[aset_hint1(s, h)], memory_order_relaxed) &&
	       atomic_load_explicit(&s->hint[aset_hint2(s, h)], memory_order_relaxed);
}

int addrset_hold(struct addrset *s, const struct addr_key *k)
{
	int found;
	size_t i = aset_probe(s, aset_hash(k), k, &found);
	if (found)
		aset_entry(s, (size_t)(s->slot[i] & 0xffffffffu) - 1)->refs++;
	return found;
}

/* The index twice as large (slots hold their hash tag: mask < 2^32). */
static int aset_grow(struct addrset *s)
{
	size_t nmask = (s->mask + 1) * 2 - 1;
	uint64_t *ns = calloc(nmask + 1, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t j = 0; j <= s->mask; j++) {
		uint64_t v = s->slot[j];
		if (!v)
			continue;
		size_t i = (size_t)(v >> 32) & nmask;
		while (ns[i])
			i = (i + 1) & nmask;
		ns[i] = v;
	}
	free(s->slot);
	s->slot = ns;
	s->mask = nmask;
	return 0;
}

int addrset_add(struct addrset *s, const struct addr_key *k)
{
	int found;
	uint64_t h = aset_hash(k);
	size_t pos = aset_probe(s, h, k, &found);
	if (found)
		return 1;
	if (s->count >= s->max_entries)
		return -ENOSPC;
	if ((s->count + 1) * 2 > s->mask + 1) {
		if (aset_grow(s))
			return -ENOMEM;
		pos = aset_probe(s, h, k, &found);
	}
	size_t n;
	if (s->free_head) {
		n = s->free_head - 1;
	} else {
		n = s->top;
		struct addrset_key **c = &s->chunks[n >> ASET_CHUNK_SHIFT];
		if (!*c && !(*c = calloc(ASET_CHUNK, sizeof **c)))
			return -ENOMEM;
		s->top++;
	}
	struct addrset_key *e = aset_entry(s, n);
	if (s->free_head)
		s->free_head = e->next_free;
	e->aw[0] = k->aw[0];
	e->aw[1] = k->aw[1];
	e->family = (uint32_t)k->pad << 8 | k->family;
	e->range = k->range;
	e->refs = 1;
	e->next_free = 0;
	s->slot[pos] = (h & 0xffffffffu) << 32 | (uint64_t)(n + 1);
	s->count++;
	aset_hint_add(s, aset_hint1(s, h), 1);
	aset_hint_add(s, aset_hint2(s, h), 1);
	return 0;
}

int addrset_release(struct addrset *s, const struct addr_key *k)
{
	int found;
	uint64_t h = aset_hash(k);
	size_t i = aset_probe(s, h, k, &found);
	if (!found)
		return -ENOENT;
	size_t n = (size_t)(s->slot[i] & 0xffffffffu) - 1;
	struct addrset_key *e = aset_entry(s, n);
	if (--e->refs)
		return 0;
	/* backward-shift deletion: an entry after the hole that may move
	 * back (its home is not in the cyclic range (i, j]) fills it */
	for (size_t j = (i + 1) & s->mask; s->slot[j]; j = (j + 1) & s->mask) {
		size_t home = (size_t)(s->slot[j] >> 32) & s->mask;
		if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
			s->slot[i] = s->slot[j];
			i = j;
		}
	}
	s->slot[i] = 0;
	e->next_free = s->free_head;
	s->free_head = (uint32_t)(n + 1);
	s->count--;
	aset_hint_add(s, aset_hint1(s, h), -1);
	aset_hint_add(s, aset_hint2(s, h), -1);
	return 1;
}
