/* DESIGN: the per-capture-thread address table.
 *
 * Owned by one capture thread, which is its only writer; the scrape and push
 * threads read it concurrently without locks. The hash index (slots, aslots)
 * is private to the writer and may be rehashed at will. Keys and histograms
 * live in fixed-size chunks that never move once allocated, so a reader that
 * loaded `count` with acquire can read entries [0, count) while the writer
 * appends. State grows with the addresses actually seen, never with the size
 * of a configured range: one entry of 24 bytes of key + 64 bytes of counters
 * (default buckets) + 16 to 32 bytes of index per (address, direction,
 * protocol) histogram.
 *
 * The slow path (a new key) allocates and may rehash; it runs once per new
 * histogram, never for known ones. */
#include "promacct/addrtable.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define INITIAL_SLOTS 1024
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
	return (size_t)ADDRTABLE_CHUNK * t->stride;
}

int addrtable_init(struct addrtable *t, unsigned words, size_t max_entries, _Atomic size_t *tracked,
                   size_t max_tracked)
{
	memset(t, 0, sizeof *t);
	t->words = words;
	if (max_entries > UINT32_MAX - 1)
		max_entries = UINT32_MAX - 1;
	t->max_entries = max_entries;
	t->max_chunks = (max_entries + ADDRTABLE_CHUNK - 1) / ADDRTABLE_CHUNK + 1;
	t->tracked = tracked;
	t->max_tracked = max_tracked;
	t->mask = INITIAL_SLOTS - 1; /* before the allocations: addrtable_free uses it */
	t->slots = big_alloc(INITIAL_SLOTS * sizeof *t->slots);
	t->aslots = calloc(INITIAL_SLOTS, sizeof *t->aslots);
	t->stride = sizeof(struct addr_key) + (size_t)words * sizeof(counter_t);
	t->chunks = calloc(t->max_chunks, sizeof *t->chunks);
	t->amask = INITIAL_SLOTS - 1;
	if (!t->slots || !t->aslots || !t->chunks) {
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
	memset(t, 0, sizeof *t);
}

static uint64_t addr_hash(const uint8_t *addr, uint8_t family)
{
	struct addr_key k;
	memset(&k, 0, sizeof k);
	memcpy(k.addr, addr, 16);
	k.family = family;
	return addrtable_hash(&k);
}

static int grow_slots(struct addrtable *t)
{
	size_t ncap = (t->mask + 1) * 2;
	uint64_t *ns = big_alloc(ncap * sizeof *ns);
	if (!ns)
		return -ENOMEM;
	size_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
	for (size_t idx = 0; idx < n; idx++) {
		uint64_t h = addrtable_hash(addrtable_key(t, idx));
		size_t i = (size_t)h & (ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = (h & 0xffffffff00000000ull) | (uint64_t)(idx + 1);
	}
	big_free(t->slots, (t->mask + 1) * sizeof *t->slots);
	t->slots = ns;
	t->mask = ncap - 1;
	return 0;
}

/* Address-set slots: (hash >> 32) << 32 | (entry index + 1); the slot
 * position comes from the upper hash half too, so growing needs no key. */
static int grow_aslots(struct addrtable *t)
{
	size_t ncap = (t->amask + 1) * 2;
	uint64_t *ns = calloc(ncap, sizeof *ns);
	if (!ns)
		return -ENOMEM;
	for (size_t j = 0; j <= t->amask; j++) {
		uint64_t v = t->aslots[j];
		if (!v)
			continue;
		size_t i = (size_t)(v >> 32) & (ncap - 1);
		while (ns[i])
			i = (i + 1) & (ncap - 1);
		ns[i] = v;
	}
	free(t->aslots);
	t->aslots = ns;
	t->amask = ncap - 1;
	return 0;
}

/* Finds the address in the address set; returns its slot, or the empty slot
 * where it would go (with *found = 0). */
static size_t aset_find(const struct addrtable *t, const struct addr_key *k, uint64_t tag,
                        int *found)
{
	size_t i = (size_t)(tag >> 32) & t->amask;
	for (;; i = (i + 1) & t->amask) {
		uint64_t v = t->aslots[i];
		if (!v) {
			*found = 0;
			return i;
		}
		if ((v & 0xffffffff00000000ull) != tag)
			continue;
		const struct addr_key *o = addrtable_key(t, (uint32_t)v - 1);
		if (o->family == k->family && !memcmp(o->addr, k->addr, 16)) {
			*found = 1;
			return i;
		}
	}
}

counter_t *addrtable_insert(struct addrtable *t, const struct addr_key *k, uint64_t h)
{
	size_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
	int found;
	size_t aslot;

	if (n >= t->max_entries)
		return NULL;
	/* Grow first, so a failure changes nothing and the index always keeps
	 * empty slots (probing relies on them). */
	if ((t->used + 1) * 2 > t->mask + 1 && grow_slots(t))
		return NULL;
	if ((t->aused + 1) * 2 > t->amask + 1 && grow_aslots(t))
		return NULL;
	uint64_t atag = addr_hash(k->addr, k->family) & 0xffffffff00000000ull;
	aslot = aset_find(t, k, atag, &found);
	if (!found) {
		size_t cur = atomic_load_explicit(t->tracked, memory_order_relaxed);
		do {
			if (cur >= t->max_tracked)
				return NULL;
		} while (!atomic_compare_exchange_weak_explicit(
		    t->tracked, &cur, cur + 1, memory_order_relaxed, memory_order_relaxed));
	}
	size_t chunk = n >> ADDRTABLE_CHUNK_SHIFT;
	if (!atomic_load_explicit(&t->chunks[chunk], memory_order_relaxed)) {
		unsigned char *c = big_alloc(chunk_bytes(t)); /* zeroed */
		if (!c) {
			if (!found)
				atomic_fetch_sub_explicit(t->tracked, 1, memory_order_relaxed);
			return NULL;
		}
		atomic_store_explicit(&t->chunks[chunk], c, memory_order_release);
	}
	*addrtable_key(t, n) = *k;
	atomic_store_explicit(&t->count, n + 1, memory_order_release);

	size_t i = (size_t)h & t->mask;
	while (t->slots[i])
		i = (i + 1) & t->mask;
	t->slots[i] = (h & 0xffffffff00000000ull) | (uint64_t)(n + 1);
	t->used++;
	if (!found) {
		t->aslots[aslot] = atag | (uint64_t)(n + 1);
		t->aused++;
	}
	return addrtable_hist(t, n);
}
