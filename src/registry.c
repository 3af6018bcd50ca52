/* DESIGN: the registry - all accounting state and its read-out.
 *
 * Built at start-up (sources, shards, self-metrics) by the main thread;
 * afterwards its shape is fixed. Capture threads write their own shards.
 * registry_collect runs on any reader thread (scrape, push timer, remote
 * write) and may run on several at once: it only loads published counts and
 * relaxed counters, allocates its own scratch, and takes no lock a capture
 * thread could wait on. Shards of one source (fanout threads) are merged
 * here, key by key, so each series is emitted once.
 *
 * The address cap (--max-addresses) counts distinct (interface, address)
 * pairs held by interfaces that are up. A source with one shard counts
 * its table's new addresses with a compare-and-swap on `tracked`. A source
 * with several shards (fanout threads, files with one base name) shares a
 * set of its distinct addresses (struct addrset; per-address keys and
 * rollup prefixes alike, each with its range group: a relabelled address
 * is a new entry, counted in its new group), each entry with the number of
 * shards that hold it. A shard's slow path (an address new to that shard)
 * and its release (the address's last key left that shard: idle expiry or
 * a reload) take the source's lock; an entry is counted in its group's
 * held, `tracked` and the source's held when it enters the set and leaves
 * them when its last shard lets it go (its storage is reused). Over a cap,
 * a key surely absent from the set (the set's lock-free hint counts) is
 * refused without the lock. The per-packet path never gets here. When an
 * interface goes away its addresses leave the count; when it comes back
 * they rejoin it (its state is kept: series continue).
 *
 * Label sets and reload. A key's `range` is the stable id of its label set
 * (family, granularity, labels: one accounting group), an index into a
 * table of struct range_set (chunks that never move; an entry's labels
 * never change) that lives as long as the registry: readers take a key's
 * labels from there, caps (held, cap) and the overflow set live there too.
 * The main thread alone adds sets and changes caps and configured flags
 * (relaxed atomics: a reader may see a reload half way, never a torn
 * value). The first table's ids are its group indexes; a reload's table
 * gets the ids of the sets configured now with the same family,
 * granularity and labels (registry_ranges_map), else the id of a retired
 * set with those labels once every shard has moved past the reload that
 * retired it (each shard's moved_gen: its keys all ended, stale markers
 * still queued resolve the same labels), else new ones, and is
 * published as a pointer and a generation (registry_ranges_publish). Each
 * capture thread compares the generation once per batch
 * (registry_shard_ranges); when it moved, it ends its keys that the new
 * table does not hold as they are (addrtable_retire_if: the idle-expiry
 * machinery, so stale markers, caps released, memory reused after a grace
 * period) and then looks up in the new table. It publishes the generation
 * it uses (UINT64_MAX: none, while it opens its interface or is done;
 * on its way back it stores which one before it looks: seq_cst both sides;
 * a thread without a handle - a file read, an interface missing - keeps
 * following reloads while it waits),
 * and the main thread frees a replaced table only when every shard's
 * generation passed it (registry_ranges_quiescent). */
#include "promacct/registry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Refs gathered at a time by the sorted read-out of address histograms (48
 * bytes each: 3 MiB per concurrent reader, plus 768 KiB of bucket counts per
 * level of the cut, see collect_addresses). */
#define COLLECT_BATCH 65536

/* Keys of expired entries kept per shard for the remote-write stale
 * markers (24 bytes each, pages touched as used): expirations beyond it
 * between two snapshots end without a marker, counted. */
#define ENDED_RING 65536

/* Most entries one expiry slice looks at (a bound on the pause it makes in
 * capture: about a millisecond). */
#define EXPIRE_SLICE_MAX 65536

/* Histogram slots per address: 2 directions x PROTO_COUNT classes. */
#define HISTS_PER_ADDRESS (2 * PROTO_COUNT)

/* ---- label sets by stable id --------------------------------------------- */

#define SETS_CHUNK   (1u << REGISTRY_SETS_SHIFT)
#define SETS_NCHUNKS (((size_t)RANGES_MAX >> REGISTRY_SETS_SHIFT) + 1)

/* What a key of an id no table gave has (cannot be: a defence). */
static const struct range_set no_set;

const struct range_set *registry_range_set(const struct registry *r, uint32_t id)
{
	if (id >= atomic_load_explicit((_Atomic uint32_t *)&r->nsets, memory_order_acquire))
		return &no_set;
	struct range_set *c =
	    atomic_load_explicit(&r->sets[id >> REGISTRY_SETS_SHIFT], memory_order_acquire);
	return c ? &c[id & (SETS_CHUNK - 1)] : &no_set;
}

/* Main thread: the entry of id (its chunk allocated), NULL on out of
 * memory. */
static struct range_set *set_slot(struct registry *r, uint32_t id)
{
	_Atomic(struct range_set *) *cp = &r->sets[id >> REGISTRY_SETS_SHIFT];
	struct range_set *c = atomic_load_explicit(cp, memory_order_relaxed);
	if (!c) {
		if (!(c = calloc(SETS_CHUNK, sizeof *c)))
			return NULL;
		atomic_store_explicit(cp, c, memory_order_release);
	}
	return &c[id & (SETS_CHUNK - 1)];
}

/* Main thread: set id takes the family, granularity and labels of range g
 * (copied). */
static int set_fill(struct registry *r, uint32_t id, const struct range *g)
{
	struct range_set *s = set_slot(r, id);
	if (!s)
		return -ENOMEM;
	s->family = g->family;
	s->granularity = g->granularity;
	s->text = strdup(g->text ? g->text : "");
	s->labels = g->nlabels ? calloc(g->nlabels, sizeof *s->labels) : NULL;
	if (!s->text || (g->nlabels && !s->labels))
		return -ENOMEM;
	for (size_t j = 0; j < g->nlabels; j++) {
		s->labels[j].name = strdup(g->labels[j].name);
		s->labels[j].value = strdup(g->labels[j].value);
		s->nlabels = j + 1;
		if (!s->labels[j].name || !s->labels[j].value)
			return -ENOMEM;
	}
	return 0;
}

static void sets_free(struct registry *r)
{
	if (!r->sets)
		return;
	for (size_t c = 0; c < SETS_NCHUNKS; c++) {
		struct range_set *v = atomic_load_explicit(&r->sets[c], memory_order_relaxed);
		if (!v)
			continue;
		for (size_t i = 0; i < SETS_CHUNK; i++) {
			labels_free(v[i].labels, v[i].nlabels);
			free(v[i].labels);
			free(v[i].text);
		}
		free(v);
	}
	free(r->sets);
	r->sets = NULL;
}

/* Main thread: caps, overflow series and configured flags follow table
 * rs (its ids given), published as generation gen. A set configured now
 * and not before is configured since gen; one configured before and not
 * now is retired at gen. The overflow series of some labels belongs to the
 * set with those labels configured the longest (then the smallest id), not
 * to the first range: reordering ranges, or adding one with those labels
 * in front, moves no overflow series; and it stays with that set while any
 * set with its labels is configured, even once the set itself is left out
 * (owns_other): changing or removing one of several sets with those labels
 * does not restart it. Without memory for that, to the first range's set. */
static void sets_configure(struct registry *r, const struct ranges *rs, uint64_t gen)
{
	uint64_t mark = ++r->sets_mark;
	for (size_t i = 0; i < rs->n; i++) {
		const struct range *g = &rs->v[i];
		if (g->group != i)
			continue;
		struct range_set *s = set_slot(r, g->id); /* allocated by map */
		s->mark = mark;
		if (!atomic_load_explicit(&s->configured, memory_order_relaxed))
			s->since = gen;
	}
	/* oldest[o]: the set configured the longest among the ranges whose
	 * other_of is o */
	uint32_t *oldest = rs->other_of ? malloc(sizeof *oldest * (rs->n ? rs->n : 1)) : NULL;
	if (oldest) {
		for (size_t i = 0; i < rs->n; i++)
			oldest[i] = UINT32_MAX;
		/* the owner so far keeps the series while any set with its
		 * labels stays, configured or not itself: a set with those
		 * labels changed or removed does not restart it */
		uint32_t *keep = malloc(sizeof *keep * (rs->n ? rs->n : 1));
		for (size_t i = 0; keep && i < rs->n; i++)
			keep[i] = UINT32_MAX;
		for (size_t i = 0; keep && i < rs->n; i++) {
			const struct range_set *s = set_slot(r, rs->v[i].id);
			if (!atomic_load_explicit(&s->configured, memory_order_relaxed))
				continue; /* new: its `other` means nothing yet */
			uint32_t p = atomic_load_explicit(&s->other, memory_order_relaxed);
			if (atomic_load_explicit(&set_slot(r, p)->owns_other, memory_order_relaxed))
				keep[rs->other_of[i]] = p;
		}
		for (size_t i = 0; i < rs->n; i++) {
			uint32_t o = rs->other_of[i], id = rs->v[i].id, cur = oldest[o];
			if (cur == UINT32_MAX)
				oldest[o] = id;
			else if (set_slot(r, id)->since < set_slot(r, cur)->since ||
			         (set_slot(r, id)->since == set_slot(r, cur)->since && id < cur))
				oldest[o] = id;
		}
		for (size_t i = 0; keep && i < rs->n; i++)
			if (keep[i] != UINT32_MAX)
				oldest[i] = keep[i];
		free(keep);
	}
	for (size_t i = 0; i < rs->n; i++) {
		const struct range *g = &rs->v[i];
		if (g->group != i)
			continue;
		struct range_set *s = set_slot(r, g->id);
		atomic_store_explicit(&s->cap, g->group_max, memory_order_relaxed);
		uint32_t other = oldest         ? oldest[rs->other_of[i]]
		                 : rs->other_of ? rs->v[rs->other_of[i]].id
		                                : g->id;
		atomic_store_explicit(&s->other, other, memory_order_relaxed);
		set_slot(r, other)->omark = mark;
		atomic_store_explicit(&s->configured, 1, memory_order_relaxed);
		if (g->group_max)
			atomic_store_explicit(&r->any_cap, 1, memory_order_relaxed);
	}
	uint32_t n = atomic_load_explicit(&r->nsets, memory_order_relaxed);
	for (uint32_t id = 0; id < n; id++) {
		struct range_set *c =
		    atomic_load_explicit(&r->sets[id >> REGISTRY_SETS_SHIFT], memory_order_relaxed);
		struct range_set *x = c ? &c[id & (SETS_CHUNK - 1)] : NULL;
		if (!x)
			continue;
		atomic_store_explicit(&x->owns_other, x->omark == mark, memory_order_relaxed);
		if (x->mark == mark)
			continue;
		if (atomic_load_explicit(&x->configured, memory_order_relaxed))
			x->retired = gen;
		atomic_store_explicit(&x->configured, 0, memory_order_relaxed);
	}
	free(oldest);
}

int registry_init(struct registry *r, struct histogram_layout *layout, struct ranges *ranges,
                  size_t max_addresses)
{
	memset(r, 0, sizeof *r);
	r->layout = layout;
	atomic_store_explicit(&r->ranges, ranges, memory_order_relaxed);
	r->max_addresses = max_addresses;
	r->start_time = time_now();
	r->collect_batch = COLLECT_BATCH;
	addrtable_grace_init(&r->grace);
	r->sets = calloc(SETS_NCHUNKS, sizeof *r->sets);
	if (!r->sets)
		return -ENOMEM;
	/* the first table's ids are its group indexes (the vals hold them) */
	for (size_t i = 0; i < ranges->n; i++)
		if (ranges->v[i].group == i && set_fill(r, (uint32_t)i, &ranges->v[i]))
			return -ENOMEM;
	atomic_store_explicit(&r->nsets, (uint32_t)ranges->n, memory_order_release);
	sets_configure(r, ranges, 0);
	return 0;
}

static uint64_t set_hash(const char *text, unsigned family, unsigned granularity)
{
	uint64_t h = 1469598103934665603ull ^ ((uint64_t)granularity << 56 ^ family);
	for (; *text; text++)
		h = (h ^ (unsigned char)*text) * 1099511628211ull;
	return h;
}

/* The generation every shard has moved to (a capture thread follows
 * reloads also while it waits for its interface or for the stop). */
static uint64_t shards_moved_gen(const struct registry *r)
{
	uint64_t m = UINT64_MAX;
	for (size_t i = 0; i < r->nsources; i++)
		for (size_t j = 0; j < r->sources[i].nshards; j++) {
			uint64_t g = atomic_load_explicit(&r->sources[i].shards[j]->moved_gen,
			                                  memory_order_seq_cst);
			m = g < m ? g : m;
		}
	return m;
}

/* Whether the retired set s may take its labels back under its id: every
 * shard moved past the reload that retired it, so each ended its keys
 * (their series start again from zero) and none admits new ones. Its
 * labels never change: stale markers of its ended keys still waiting in a
 * ring resolve them right. (A source with several shards keeps its
 * addresses counted in the set's held, as in --max-addresses.) */
static int set_reusable(const struct range_set *s, uint64_t moved)
{
	/* an id never filled (the first table's ids are group indexes: the
	 * ids of the other ranges of a group are gaps) holds no labels */
	return s->text && !atomic_load_explicit(&s->configured, memory_order_relaxed) &&
	       s->retired <= moved;
}

int registry_ranges_map(struct registry *r, struct ranges *fresh)
{
	uint32_t n = atomic_load_explicit(&r->nsets, memory_order_relaxed), next = n;
	uint64_t moved = shards_moved_gen(r);
	size_t cap = 16, nput = 0;
	int rc = -ENOMEM;
	for (uint32_t id = 0; id < n; id++) {
		const struct range_set *s = registry_range_set(r, id);
		nput += atomic_load_explicit(&s->configured, memory_order_relaxed) ||
		        set_reusable(s, moved);
	}
	while (cap < 2 * nput + 2)
		cap *= 2;
	/* id + 1 of the sets configured and of those reusable */
	uint32_t *slots = calloc(cap, sizeof *slots);
	uint32_t *ids = calloc(fresh->n ? fresh->n : 1, sizeof *ids);
	if (!slots || !ids)
		goto out;
	for (uint32_t id = 0; id < n; id++) {
		const struct range_set *s = registry_range_set(r, id);
		if (!atomic_load_explicit(&s->configured, memory_order_relaxed) &&
		    !set_reusable(s, moved))
			continue;
		size_t j = (size_t)set_hash(s->text, s->family, s->granularity) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = id + 1;
	}
	for (size_t i = 0; i < fresh->n; i++) {
		const struct range *g = &fresh->v[i];
		if (g->group != i)
			continue;
		/* the set configured now with these labels (its keys continue),
		 * else a retired one that may take them back (from zero), else
		 * a new id */
		uint32_t found = 0;
		size_t j = (size_t)set_hash(g->text, g->family, g->granularity) & (cap - 1);
		for (; slots[j]; j = (j + 1) & (cap - 1)) {
			const struct range_set *s = registry_range_set(r, slots[j] - 1);
			if (s->family != g->family || s->granularity != g->granularity ||
			    strcmp(s->text, g->text))
				continue;
			if (atomic_load_explicit(&s->configured, memory_order_relaxed)) {
				found = slots[j];
				break;
			}
			if (!found)
				found = slots[j];
		}
		if (found) {
			ids[i] = found - 1;
			continue;
		}
		if (next >= RANGES_MAX) {
			rc = -ENOSPC;
			goto out;
		}
		if (set_fill(r, next, g))
			goto out;
		ids[i] = next++;
	}
	ranges_set_ids(fresh, ids);
	rc = 0;
out:
	/* sets filled stay (unconfigured, reusable) even on failure */
	atomic_store_explicit(&r->nsets, next, memory_order_release);
	free(slots);
	free(ids);
	return rc;
}

uint64_t registry_ranges_publish(struct registry *r, const struct ranges *fresh)
{
	uint64_t gen = atomic_load_explicit(&r->ranges_gen, memory_order_relaxed) + 1;
	sets_configure(r, fresh, gen);
	atomic_store_explicit(&r->ranges, fresh, memory_order_seq_cst);
	atomic_store_explicit(&r->ranges_gen, gen, memory_order_seq_cst);
	return gen;
}

int registry_ranges_quiescent(const struct registry *r, uint64_t gen)
{
	for (size_t i = 0; i < r->nsources; i++)
		for (size_t j = 0; j < r->sources[i].nshards; j++)
			if (atomic_load_explicit(&r->sources[i].shards[j]->ranges_gen,
			                         memory_order_seq_cst) < gen)
				return 0;
	return 1;
}

/* Whether key k is not held as it is by table rs (a reload changed or
 * removed its range): a plain address key must be in the piece of a range
 * of its id that does not roll up; a rollup key's set must still roll up
 * some address of its prefix at its length; an overflow key's set must
 * still own the overflow series of a configured set (owns_other). */
struct gone_ctx {
	struct registry *r;
	const struct ranges *rs;
};

/* Whether table rs still rolls some address of rollup key k's prefix up
 * into k: a piece meeting the prefix with k's set and prefix length. */
static int rollup_held(const struct ranges *rs, const struct addr_key *k)
{
	unsigned g = k->pad;
	if (k->family == 4) {
		uint32_t a;
		memcpy(&a, k->addr, 4);
		uint32_t first = ntohl(a), last = first | (g >= 32 ? 0 : 0xffffffffu >> g);
		for (size_t p = ranges_piece4(rs, first); p < rs->np4 && rs->p4_first[p] <= last;
		     p++) {
			uint32_t v = rs->p4_val[p];
			if (ranges_val_in(v) && ranges_val_group(v) == k->range &&
			    ranges_val_rollup(v) == g)
				return 1;
		}
		return 0;
	}
	unsigned __int128 first = ranges_addr6(k->addr),
	                  last = first | (g >= 128 ? 0 : ~(unsigned __int128)0 >> g);
	for (size_t p = ranges_piece6(rs, k->addr); p < rs->np6 && rs->p6_first[p] <= last; p++) {
		uint32_t v = rs->p6_val[p];
		if (ranges_val_in(v) && ranges_val_group(v) == k->range &&
		    ranges_val_rollup(v) == g)
			return 1;
	}
	return 0;
}

static int key_gone(void *arg, const struct addr_key *k)
{
	struct gone_ctx *g = arg;
	const struct range_set *s = registry_range_set(g->r, k->range);
	if (k->pad == ADDRTABLE_PAD_OTHER)
		return !atomic_load_explicit(&s->owns_other, memory_order_relaxed);
	if (k->pad)
		return !atomic_load_explicit(&s->configured, memory_order_relaxed) ||
		       !rollup_held(g->rs, k);
	uint32_t v;
	if (k->family == 4) {
		uint32_t a;
		memcpy(&a, k->addr, 4);
		v = ranges_val4(g->rs, ntohl(a));
	} else {
		v = ranges_val6(g->rs, k->addr);
	}
	return !ranges_val_in(v) || ranges_val_group(v) != k->range || ranges_val_rollup(v);
}

const struct ranges *registry_shard_ranges(struct registry *r, struct acct_shard *s,
                                           const struct ranges *cur, uint64_t *gen)
{
	/* back from using none: say which one before looking (the main thread
	 * frees a table only when every shard says a later one) */
	if (UNLIKELY(atomic_load_explicit(&s->ranges_gen, memory_order_relaxed) == UINT64_MAX))
		atomic_store_explicit(&s->ranges_gen, *gen, memory_order_seq_cst);
	uint64_t g = atomic_load_explicit(&r->ranges_gen, memory_order_seq_cst);
	if (LIKELY(g == *gen))
		return cur;
	const struct ranges *rs = atomic_load_explicit(&r->ranges, memory_order_acquire);
	struct gone_ctx ctx = {r, rs};
	size_t x = addrtable_retire_if(&s->table, key_gone, &ctx);
	if (x)
		counter_add(&s->reload_ended, x);
	*gen = g;
	atomic_store_explicit(&s->ranges_gen, g, memory_order_seq_cst);
	atomic_store_explicit(&s->moved_gen, g, memory_order_seq_cst);
	return rs;
}

void registry_reload_ended(const struct registry *r, uint64_t *keys, uint64_t *lost)
{
	*keys = *lost = 0;
	for (size_t i = 0; i < r->nsources; i++)
		for (size_t j = 0; j < r->sources[i].nshards; j++) {
			const struct acct_shard *s = r->sources[i].shards[j];
			*keys += counter_read(&s->reload_ended);
			if (s->table.ended)
				*lost += atomic_load_explicit(&s->table.ended->lost,
				                              memory_order_relaxed);
		}
}

void registry_shard_ranges_idle(struct acct_shard *s)
{
	atomic_store_explicit(&s->ranges_gen, UINT64_MAX, memory_order_seq_cst);
}

struct source_cap {
	struct registry *reg;
	int shared;          /* more than one shard: `set` is in use */
	struct addrset set;  /* distinct keys held by the shards (under lock) */
	_Atomic size_t held; /* distinct addresses of the source */
	_Atomic int down;    /* held is not in reg->tracked */
	/* shared-set admissions and releases, up/down transitions; on a line
	 * of its own (the lock-free refusals read the fields above) */
	_Alignas(64) pthread_mutex_t lock;
};

/* One more pair against the cap; 0 when it is reached. */
static int tracked_inc(struct registry *r)
{
	size_t cur = atomic_load_explicit(&r->tracked, memory_order_relaxed);
	do {
		if (cur >= r->max_addresses)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(
	    &r->tracked, &cur, cur + 1, memory_order_relaxed, memory_order_relaxed));
	return 1;
}

/* The key's label set (its range group). */
static struct range_set *group_of(const struct registry *r, const struct addr_key *k)
{
	return (struct range_set *)registry_range_set(r, k->range);
}

/* The cap of the key's range group, 0 when it has none. */
static size_t group_cap(const struct registry *r, const struct addr_key *k)
{
	return atomic_load_explicit(&group_of(r, k)->cap, memory_order_relaxed);
}

/* One more key of its range group, against the group's cap (gcap, 0:
 * none); 0 when it is reached. */
static int group_inc(struct registry *r, const struct addr_key *k, size_t gcap)
{
	_Atomic size_t *held = &group_of(r, k)->held;
	size_t cur = atomic_load_explicit(held, memory_order_relaxed);
	do {
		if (gcap && cur >= gcap)
			return 0;
	} while (!atomic_compare_exchange_weak_explicit(held, &cur, cur + 1, memory_order_relaxed,
	                                                memory_order_relaxed));
	return 1;
}

/* Admission of an address new to one shard (its writer's slow path): the
 * range group's own cap, then --max-addresses. A refused key goes to its
 * range's overflow histogram (addrtable_insert). */
static int shard_admit(struct addrtable_admit *a, const struct addr_key *k)
{
	struct acct_shard *sh =
	    (struct acct_shard *)((char *)a - offsetof(struct acct_shard, admit));
	struct source_cap *sc = sh->cap;
	struct registry *r = sc->reg;
	size_t gcap = group_cap(r, k);
	int ok = 0;

	if (!sc->shared) {
		/* The only writer, which also makes the transitions. */
		if (!group_inc(r, k, gcap))
			return 0;
		if (!atomic_load_explicit(&sc->down, memory_order_relaxed) && !tracked_inc(r)) {
			atomic_fetch_sub_explicit(&group_of(r, k)->held, 1, memory_order_relaxed);
			return 0;
		}
		atomic_fetch_add_explicit(&sc->held, 1, memory_order_relaxed);
		return 1;
	}
	/* refused without the lock: no shard holds the key (surely) and a cap
	 * is reached */
	if (!addrset_maybe_contains(&sc->set, k) &&
	    ((gcap && atomic_load_explicit(&group_of(r, k)->held, memory_order_relaxed) >= gcap) ||
	     (atomic_load_explicit(&r->tracked, memory_order_relaxed) >= r->max_addresses &&
	      !atomic_load_explicit(&sc->down, memory_order_relaxed))))
		return 0;
	pthread_mutex_lock(&sc->lock);
	int down = atomic_load_explicit(&sc->down, memory_order_relaxed);
	if (addrset_hold(&sc->set, k)) {
		ok = 1; /* another shard holds it: counted once */
	} else if (!down &&
	           atomic_load_explicit(&r->tracked, memory_order_relaxed) >= r->max_addresses) {
		ok = 0;
	} else if (!group_inc(r, k, gcap)) {
		ok = 0;
	} else if (down || tracked_inc(r)) {
		if (addrset_add(&sc->set, k) == 0) {
			atomic_fetch_add_explicit(&sc->held, 1, memory_order_relaxed);
			ok = 1;
		} else {
			if (!down)
				atomic_fetch_sub_explicit(&r->tracked, 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&group_of(r, k)->held, 1, memory_order_relaxed);
		}
	} else {
		atomic_fetch_sub_explicit(&group_of(r, k)->held, 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&sc->lock);
	return ok;
}

/* The last key of an address left a shard (idle expiry, or a reload that
 * changed its range): the shard lets the address go; it leaves the caps it
 * was counted in by shard_admit when no shard of the source holds it. */
static void shard_release(struct addrtable_admit *a, const struct addr_key *k)
{
	struct acct_shard *sh =
	    (struct acct_shard *)((char *)a - offsetof(struct acct_shard, admit));
	struct source_cap *sc = sh->cap;
	struct registry *r = sc->reg;
	if (sc->shared) {
		pthread_mutex_lock(&sc->lock);
		if (addrset_release(&sc->set, k) == 1) {
			atomic_fetch_sub_explicit(&group_of(r, k)->held, 1, memory_order_relaxed);
			if (!atomic_load_explicit(&sc->down, memory_order_relaxed))
				atomic_fetch_sub_explicit(&r->tracked, 1, memory_order_relaxed);
			atomic_fetch_sub_explicit(&sc->held, 1, memory_order_relaxed);
		}
		pthread_mutex_unlock(&sc->lock);
		return;
	}
	atomic_fetch_sub_explicit(&group_of(r, k)->held, 1, memory_order_relaxed);
	if (!atomic_load_explicit(&sc->down, memory_order_relaxed))
		atomic_fetch_sub_explicit(&r->tracked, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&sc->held, 1, memory_order_relaxed);
}

/* The overflow series of a refused key's group: the set with its labels
 * configured first. */
static uint32_t shard_other(struct addrtable_admit *a, uint32_t range)
{
	struct acct_shard *sh =
	    (struct acct_shard *)((char *)a - offsetof(struct acct_shard, admit));
	return atomic_load_explicit(&registry_range_set(sh->cap->reg, range)->other,
	                            memory_order_relaxed);
}

static struct source_cap *source_cap_new(struct registry *r)
{
	struct source_cap *sc = aligned_alloc(_Alignof(struct source_cap), sizeof *sc);
	if (!sc)
		return NULL;
	memset(sc, 0, sizeof *sc);
	sc->reg = r;
	pthread_mutex_init(&sc->lock, NULL);
	return sc;
}

static void source_cap_free(struct source_cap *sc)
{
	if (!sc)
		return;
	if (sc->shared)
		addrset_free(&sc->set);
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* A second shard: the source's distinct addresses go into a shared set,
 * starting with what its first shard holds (each held by it once). Made
 * before the second shard's thread starts. */
static int source_cap_share(struct source_cap *sc, const struct acct_shard *first)
{
	if (addrset_init(&sc->set, sc->reg->max_addresses))
		return -ENOMEM;
	const struct addrtable *t = &first->table;
	for (size_t i = 0, n = addrtable_count(t); i < n; i++)
		if (addrtable_live(t, i) && addrtable_key(t, i)->pad != ADDRTABLE_PAD_OTHER &&
		    addrset_add(&sc->set, addrtable_key(t, i)) < 0) {
			addrset_free(&sc->set);
			return -ENOMEM;
		}
	sc->shared = 1;
	return 0;
}

int registry_source_set_up(struct registry *r, size_t src, int up)
{
	struct source *s = &r->sources[src];
	struct source_cap *sc = s->cap;
	int changed;
	pthread_mutex_lock(&sc->lock);
	changed = atomic_load_explicit(&sc->down, memory_order_relaxed) == !!up;
	if (changed) {
		size_t held = atomic_load_explicit(&sc->held, memory_order_relaxed);
		if (up)
			atomic_fetch_add_explicit(&r->tracked, held, memory_order_relaxed);
		else
			atomic_fetch_sub_explicit(&r->tracked, held, memory_order_relaxed);
		atomic_store_explicit(&sc->down, !up, memory_order_relaxed);
		atomic_store_explicit(&s->gone, !up, memory_order_release);
	}
	pthread_mutex_unlock(&sc->lock);
	return changed;
}

void registry_set_idle_timeout(struct registry *r, double seconds)
{
	r->idle_timeout = seconds > 0 ? seconds : 0;
}

double registry_idle_timeout(const struct registry *r)
{
	return r->idle_timeout;
}

double registry_expiry_period(const struct registry *r)
{
	double p = r->idle_timeout / 16;
	return p < 0.05 ? 0.05 : p > 5 ? 5 : p;
}

void registry_shard_expire(struct registry *r, struct acct_shard *s, double now)
{
	if (!s->table.timeout_ms || s->cap->shared)
		return;
	size_t n = addrtable_count(&s->table);
	double dt = s->expire_last > 0 ? now - s->expire_last : 0;
	s->expire_last = now;
	/* the share of one pass (every entry) due since the last slice */
	s->expire_owed += (double)n * dt / registry_expiry_period(r);
	if (s->expire_owed > (double)n)
		s->expire_owed = (double)n;
	size_t budget = (size_t)s->expire_owed;
	if (budget > EXPIRE_SLICE_MAX)
		budget = EXPIRE_SLICE_MAX;
	s->expire_owed -= (double)budget;
	size_t x = addrtable_expire(&s->table, (uint64_t)(now * 1000), budget);
	if (x)
		counter_add(&s->expired, x);
}

int registry_source_is_up(const struct registry *r, size_t src)
{
	return !atomic_load_explicit(&r->sources[src].gone, memory_order_acquire);
}

void registry_source_set_live(struct registry *r, int src)
{
	r->sources[src].live = 1;
}

int registry_source_find(const struct registry *r, const char *name)
{
	for (size_t i = 0; i < r->nsources; i++)
		if (!strcmp(r->sources[i].name, name))
			return (int)i;
	return -1;
}

size_t registry_nsources(const struct registry *r)
{
	return r->nsources;
}

const char *registry_source_name(const struct registry *r, size_t src)
{
	return r->sources[src].name;
}

size_t registry_tracked(const struct registry *r)
{
	return atomic_load_explicit((_Atomic size_t *)&r->tracked, memory_order_relaxed);
}

const struct ranges *registry_ranges(const struct registry *r)
{
	return atomic_load_explicit((const struct ranges *_Atomic *)&r->ranges,
	                            memory_order_acquire);
}

uint64_t registry_ranges_gen(const struct registry *r)
{
	return atomic_load_explicit((_Atomic uint64_t *)&r->ranges_gen, memory_order_seq_cst);
}

const struct histogram_layout *registry_layout(const struct registry *r)
{
	return r->layout;
}

static void shard_free(struct acct_shard *s)
{
	if (!s)
		return;
	addrtable_free(&s->table);
	free(s->all);
	free(s);
}

void registry_free(struct registry *r)
{
	for (size_t i = 0; i < r->nsources; i++) {
		for (size_t j = 0; j < r->sources[i].nshards; j++)
			shard_free(r->sources[i].shards[j]);
		free(r->sources[i].shards);
		free(r->sources[i].name);
		source_cap_free(r->sources[i].cap);
	}
	free(r->sources);
	sets_free(r);
	for (size_t i = 0; i < r->nself; i++)
		for (int j = 0; j < 2; j++) {
			free(r->self[i].labels[j].name);
			free(r->self[i].labels[j].value);
		}
	r->sources = NULL;
	r->nsources = 0;
	r->nself = 0;
}

int registry_add_source(struct registry *r, const char *name)
{
	int found = registry_source_find(r, name);
	if (found >= 0)
		return found;
	struct source *ns = realloc(r->sources, (r->nsources + 1) * sizeof *ns);
	if (!ns)
		return -ENOMEM;
	r->sources = ns;
	struct source *s = &r->sources[r->nsources];
	memset(s, 0, sizeof *s);
	s->name = strdup(name);
	s->cap = source_cap_new(r);
	if (!s->name || !s->cap) {
		free(s->name);
		source_cap_free(s->cap);
		return -ENOMEM;
	}
	return (int)r->nsources++;
}

struct acct_shard *registry_add_shard(struct registry *r, int src)
{
	struct source *s = &r->sources[src];
	struct acct_shard **ns = realloc(s->shards, (s->nshards + 1) * sizeof *ns);
	if (!ns)
		return NULL;
	s->shards = ns;
	if (s->nshards == 1 && !s->cap->shared && source_cap_share(s->cap, s->shards[0]))
		return NULL;
	struct acct_shard *sh = calloc(1, sizeof *sh);
	if (!sh)
		return NULL;
	sh->cap = s->cap;
	sh->admit.admit = shard_admit;
	sh->all = calloc(r->layout->words, sizeof *sh->all);
	if (!sh->all ||
	    addrtable_init(&sh->table, r->layout->words, r->max_addresses * HISTS_PER_ADDRESS,
	                   &r->tracked, r->max_addresses)) {
		free(sh->all);
		free(sh);
		return NULL;
	}
	sh->table.admit = &sh->admit;
	sh->admit.release = shard_release;
	sh->admit.other = shard_other;
	/* keys end by idle expiry, or when a reload changes their range */
	if (r->idle_timeout > 0
	        ? addrtable_set_expiry(&sh->table, &r->grace, r->idle_timeout, ENDED_RING)
	        : addrtable_set_grace(&sh->table, &r->grace, ENDED_RING)) {
		shard_free(sh);
		return NULL;
	}
	s->shards[s->nshards++] = sh;
	return sh;
}

gauge_t *registry_self_add(struct registry *r, const char *name, const char *help,
                           enum metric_type type, const char *l1, const char *v1, const char *l2,
                           const char *v2)
{
	if (r->nself == REGISTRY_MAX_SELF)
		return NULL;
	struct self_metric *m = &r->self[r->nself];
	memset(m, 0, sizeof *m);
	m->name = name;
	m->help = help;
	m->type = type;
	const char *ln[2] = {l1, l2}, *lv[2] = {v1, v2};
	for (int j = 0; j < 2; j++) {
		if (!ln[j])
			continue;
		m->labels[j].name = strdup(ln[j]);
		m->labels[j].value = strdup(lv[j] ? lv[j] : "");
		if (!m->labels[j].name || !m->labels[j].value) {
			for (int k = 0; k <= j; k++) {
				free(m->labels[k].name);
				free(m->labels[k].value);
			}
			return NULL;
		}
	}
	r->nself++;
	return &m->value;
}

/* ---- read-out ----------------------------------------------------------- */

/* One address histogram in a read-out, with its sort key: family and
 * direction, source, address bytes and protocol, packed big-endian into three
 * words so that comparing the words compares in that order. */
struct ref {
	uint64_t k0, k1, k2;
	const struct addr_key *key;
	const counter_t *hist;
	uint32_t src;
};

static inline int fam_dir(const struct addr_key *k)
{
	return (k->family == 4 ? 0 : 2) + k->dir;
}

static inline uint64_t load_be64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, sizeof v);
	return __builtin_bswap64(v);
}

static inline uint32_t load_be32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof v);
	return __builtin_bswap32(v);
}

static inline void ref_fill(struct ref *r, const struct addr_key *k, const counter_t *h,
                            uint32_t src)
{
	r->k0 = (uint64_t)fam_dir(k) << 56 | (uint64_t)(src & 0xffffff) << 32 | load_be32(k->addr);
	r->k1 = load_be64(k->addr + 4);
	r->k2 = (uint64_t)load_be32(k->addr + 12) << 16 | (uint64_t)k->pad << 8 | k->proto;
	r->key = k;
	r->hist = h;
	r->src = src;
}

static inline int ref_cmp(const struct ref *x, const struct ref *y)
{
	if (x->k0 != y->k0)
		return x->k0 < y->k0 ? -1 : 1;
	if (x->k1 != y->k1)
		return x->k1 < y->k1 ? -1 : 1;
	if (x->k2 != y->k2)
		return x->k2 < y->k2 ? -1 : 1;
	/* rollups of ranges apart into one prefix (their labels differ) */
	if (x->key->pad && x->key->range != y->key->range)
		return x->key->range < y->key->range ? -1 : 1;
	return 0;
}

/* Sorts refs ascending: quicksort (median of three) down to short runs,
 * then insertion sort. */
static void refs_sort(struct ref *a, size_t n)
{
	while (n > 16) {
		size_t m = n / 2;
		if (ref_cmp(&a[m], &a[0]) < 0) {
			struct ref t = a[m];
			a[m] = a[0];
			a[0] = t;
		}
		if (ref_cmp(&a[n - 1], &a[m]) < 0) {
			struct ref t = a[n - 1];
			a[n - 1] = a[m];
			a[m] = t;
			if (ref_cmp(&a[m], &a[0]) < 0) {
				t = a[m];
				a[m] = a[0];
				a[0] = t;
			}
		}
		struct ref pivot = a[m];
		size_t i = 0, j = n - 1;
		for (;;) {
			while (ref_cmp(&a[i], &pivot) < 0)
				i++;
			while (ref_cmp(&pivot, &a[j]) < 0)
				j--;
			if (i >= j)
				break;
			struct ref t = a[i];
			a[i] = a[j];
			a[j] = t;
			i++;
			j--;
		}
		/* [0, j] <= pivot <= [j + 1, n): recurse into the smaller side */
		size_t left = j + 1;
		if (left < n - left) {
			refs_sort(a, left);
			a += left;
			n -= left;
		} else {
			refs_sort(a + left, n - left);
			n = left;
		}
	}
	for (size_t i = 1; i < n; i++) {
		struct ref v = a[i];
		size_t j = i;
		for (; j > 0 && ref_cmp(&v, &a[j - 1]) < 0; j--)
			a[j] = a[j - 1];
		a[j] = v;
	}
}

/* The `ip` label: the address, or a rollup's prefix in CIDR form;
 * inet_ntop without its sprintf for IPv4 (one call per series). len is at
 * least INET6_ADDRSTRLEN + 4. */
static void addr_text(const struct addr_key *k, char *out, size_t len)
{
	char *p = out;
	if (k->pad == ADDRTABLE_PAD_OTHER) {
		memcpy(out, "other", 6); /* a range's overflow series */
		return;
	}
	if (k->family != 4) {
		inet_ntop(AF_INET6, k->addr, out, (socklen_t)len);
		p += strlen(out);
	} else {
		for (int i = 0; i < 4; i++) {
			unsigned v = k->addr[i];
			if (v >= 100)
				*p++ = (char)('0' + v / 100);
			if (v >= 10)
				*p++ = (char)('0' + v / 10 % 10);
			*p++ = (char)('0' + v % 10);
			if (i < 3)
				*p++ = '.';
		}
	}
	if (k->pad) {
		unsigned g = k->pad;
		*p++ = '/';
		if (g >= 100)
			*p++ = (char)('0' + g / 100);
		if (g >= 10)
			*p++ = (char)('0' + g / 10 % 10);
		*p++ = (char)('0' + g % 10);
	}
	*p = '\0';
}

static void emit_hist(struct collector *c, const struct histogram_layout *l, const uint64_t *cum,
                      uint64_t sum)
{
	for (unsigned i = 0; i < l->nbuckets; i++)
		c->sample(c, SAMPLE_BUCKET, l->le[i], (double)cum[i]);
	c->sample(c, SAMPLE_SUM, NULL, (double)sum);
	c->sample(c, SAMPLE_COUNT, NULL, (double)cum[l->nbuckets - 1]);
}

static const char *const addr_family_names[4] = {
    "promacct_packet_size_bytes_ipv4_tx",
    "promacct_packet_size_bytes_ipv4_rx",
    "promacct_packet_size_bytes_ipv6_tx",
    "promacct_packet_size_bytes_ipv6_rx",
};

static const char *const addr_family_help[4] = {
    "Size of IPv4 packets sent by the address (its source), in bytes without the link-layer "
    "header.",
    "Size of IPv4 packets received by the address (its destination), in bytes without the "
    "link-layer header.",
    "Size of IPv6 packets sent by the address (its source), in bytes without the link-layer "
    "header.",
    "Size of IPv6 packets received by the address (its destination), in bytes without the "
    "link-layer header.",
};

size_t registry_address_histograms(struct registry *r)
{
	size_t n = 0;
	for (size_t i = 0; i < r->nsources; i++)
		for (size_t j = 0; j < r->sources[i].nshards; j++)
			n += addrtable_live_count(&r->sources[i].shards[j]->table);
	return n;
}

/* Whether source i belongs in a walk (see collect()). */
static int selected(const struct registry *r, size_t i, int only)
{
	if (only >= 0)
		return i == (size_t)only;
	return !atomic_load_explicit(&r->sources[i].gone, memory_order_acquire);
}

/* The shards of one walk, with their entry counts taken once at its start
 * (entries added during the walk wait for the next one). */
struct walk_table {
	const struct addrtable *t;
	size_t count;
	uint64_t seq; /* entries born later (reused meanwhile) wait too */
	uint32_t src;
};

/* ---- the sorted walk of address histograms --------------------------------
 *
 * Memory is bounded (COLLECT_BATCH refs per reader, whatever the state), so
 * the histograms cannot be sorted in one array. The sort key (ref: k0, k1,
 * k2, 176 significant bits) is cut instead, most significant bits first, into
 * groups of at most a batch that are gathered (a pass over the keys: 24 bytes
 * per histogram, read sequentially), sorted and emitted in order:
 *   - a region is the set of keys sharing their first P bits with a given
 *     key; the whole state is the region P = 0;
 *   - a pass over a region finds how many keys it holds and their least and
 *     greatest; all of them share the first P' >= P bits (the common prefix
 *     of the two), so the 16 bits at P' cut the region into 65,536 buckets
 *     whose order is the keys' order; a second pass counts each bucket;
 *   - consecutive buckets are gathered while their sum fits in a batch (each
 *     ref placed at its bucket's offset, then each bucket's run sorted); a
 *     bucket larger than a batch is a region of its own (P' + 16), cut the
 *     same way.
 * Passes are about histograms / COLLECT_BATCH plus two per region, and no
 * ref is compared with more than its bucket's neighbours: a heap selection
 * per pass (the former walk) spent half a scrape's CPU in sifting. Equal
 * keys (one address in several shards of a source) share every bucket, so
 * they are always gathered together and merged into one series. */

#define WALK_BUCKET_BITS 16
#define WALK_BUCKETS     (1u << WALK_BUCKET_BITS)
#define WALK_KEY_BITS    176 /* k0, k1, and the low 48 bits of k2 */

/* A region: the keys whose first `bits` bits equal those of p0, p1, p2
 * (the mask words m0, m1, m2 select them). */
struct walk_region {
	unsigned bits;
	uint64_t p0, p1, p2, m0, m1, m2;
};

static uint64_t top_mask(unsigned bits) /* the first `bits` bits of a word */
{
	return bits == 0 ? 0 : bits >= 64 ? ~0ull : ~0ull << (64 - bits);
}

static void region_set(struct walk_region *g, const struct ref *k, unsigned bits)
{
	g->bits = bits;
	g->m0 = top_mask(bits);
	g->m1 = top_mask(bits > 64 ? bits - 64 : 0);
	/* k2's significant bits are its low 48: bit 128 of the key is k2's
	 * bit 47 */
	g->m2 = bits > 128 ? top_mask(bits - 128) >> 16 : 0;
	g->p0 = k->k0 & g->m0;
	g->p1 = k->k1 & g->m1;
	g->p2 = k->k2 & g->m2;
}

static inline int region_has(const struct walk_region *g, const struct ref *k)
{
	return ((k->k0 & g->m0) ^ g->p0) == 0 && ((k->k1 & g->m1) ^ g->p1) == 0 &&
	       ((k->k2 & g->m2) ^ g->p2) == 0;
}

/* The WALK_BUCKET_BITS bits of the key at bit p (p <= WALK_KEY_BITS - 16). */
static inline uint32_t key_bits(const struct ref *k, unsigned p)
{
	uint64_t w0, w1;
	unsigned o;
	if (p < 64) {
		w0 = k->k0, w1 = k->k1, o = p;
	} else if (p < 128) {
		w0 = k->k1, w1 = k->k2 << 16, o = p - 64;
	} else {
		w0 = k->k2 << 16, w1 = 0, o = p - 128;
	}
	uint64_t v = w0 << o;
	if (o > 64 - WALK_BUCKET_BITS)
		v |= w1 >> (64 - o);
	return (uint32_t)(v >> (64 - WALK_BUCKET_BITS));
}

/* The length of the common prefix of two keys (WALK_KEY_BITS when equal). */
static unsigned common_bits(const struct ref *a, const struct ref *b)
{
	uint64_t x = a->k0 ^ b->k0;
	if (x)
		return (unsigned)__builtin_clzll(x);
	x = a->k1 ^ b->k1;
	if (x)
		return 64 + (unsigned)__builtin_clzll(x);
	x = (a->k2 ^ b->k2) << 16;
	if (x)
		return 128 + (unsigned)__builtin_clzll(x);
	return WALK_KEY_BITS;
}

/* The bucket arrays of one level of regions (see walk_region). */
struct walk_level {
	uint32_t count[WALK_BUCKETS]; /* keys per bucket */
	uint32_t at[WALK_BUCKETS];    /* gathering: where the bucket's next ref goes */
	uint32_t end[WALK_BUCKETS];   /* gathering: the end of the bucket's run */
};

#define WALK_DEPTH (WALK_KEY_BITS / WALK_BUCKET_BITS + 1)

/* One read-out of the address histograms (collect_addresses). */
struct walk {
	struct registry *r;
	struct collector *c;
	const struct walk_table *wt; /* the shards, with counts taken at the start */
	size_t nwt;
	size_t batch;
	struct ref *refs;                     /* batch of them */
	struct walk_level *level[WALK_DEPTH]; /* allocated when a region needs it */
	int cur_fd;                           /* the family being emitted, -1 first */
	char iptext[INET6_ADDRSTRLEN + 4];
};

/* Runs `body` with `ref` filled for every histogram of the walk (`continue`
 * skips to the next one). */
#define WALK_EACH(w, ref, body)                                                                    \
	for (size_t w_ = 0; w_ < (w)->nwt; w_++) {                                                 \
		const struct addrtable *t_ = (w)->wt[w_].t;                                        \
		for (size_t c0_ = 0; c0_ < (w)->wt[w_].count; c0_ += ADDRTABLE_CHUNK) {            \
			/* one chunk: its keys are contiguous after its counters */                \
			const unsigned char *base_ = addrtable_chunk(t_, c0_);                     \
			const struct addr_key *keys_ =                                             \
			    (const struct addr_key *)(base_ +                                      \
			                              (size_t)ADDRTABLE_CHUNK * t_->stride);       \
			size_t ce_ = (w)->wt[w_].count - c0_ < ADDRTABLE_CHUNK                     \
			                 ? (w)->wt[w_].count - c0_                                 \
			                 : ADDRTABLE_CHUNK;                                        \
			for (size_t e_ = 0; e_ < ce_; e_++) {                                      \
				uint64_t born_ = addrtable_live_at(t_, base_, e_);                 \
				if (!born_ || born_ > (w)->wt[w_].seq)                             \
					continue; /* expired, or reused after the start */         \
				ref_fill(&(ref), &keys_[e_],                                       \
				         (const counter_t *)(base_ + e_ * t_->stride),             \
				         (w)->wt[w_].src);                                         \
				body                                                               \
			}                                                                          \
		}                                                                                  \
	}

/* Emits n sorted refs, merging equal keys into one series. */
static void walk_emit(struct walk *w, const struct ref *refs, size_t n)
{
	struct registry *r = w->r;
	struct collector *c = w->c;
	const struct histogram_layout *l = r->layout;
	uint64_t cum[HISTOGRAM_MAX_BUCKETS + 1], acc[HISTOGRAM_MAX_BUCKETS + 1], sum, accsum;
	struct label fixed[3] = {{"interface", NULL}, {"ip", w->iptext}, {"protocol", NULL}};
	for (size_t i = 0; i < n && !c->stop;) {
		const struct addr_key *k = refs[i].key;
		int fd = fam_dir(k);
		if (fd != w->cur_fd) {
			c->family(c, addr_family_names[fd], addr_family_help[fd], METRIC_HISTOGRAM);
			w->cur_fd = fd;
		}
		histogram_read(refs[i].hist, l, acc, &accsum);
		size_t e = i + 1;
		while (e < n && !ref_cmp(&refs[i], &refs[e])) {
			histogram_read(refs[e].hist, l, cum, &sum);
			histogram_merge(acc, &accsum, cum, sum, l->nbuckets);
			e++;
		}
		addr_text(k, w->iptext, sizeof w->iptext);
		fixed[0].value = r->sources[refs[i].src].name;
		fixed[2].value = (char *)parse_proto_name(k->proto);
		const struct range_set *rg = registry_range_set(r, k->range);
		struct series_labels sl = {fixed, 3, rg->labels, rg->nlabels, rg->text};
		c->series(c, &sl);
		emit_hist(c, l, acc, accsum);
		i = e;
	}
}

/* Gathers the keys of region g in buckets [b0, b1] of bit p (their counts,
 * in lv, add up to at most a batch), each at its bucket's place, then sorts
 * and emits each bucket's run. */
static void walk_gather(struct walk *w, const struct walk_region *g, unsigned p,
                        struct walk_level *lv, uint32_t b0, uint32_t b1)
{
	uint32_t n = 0;
	for (uint32_t b = b0; b <= b1; b++) {
		lv->at[b] = n;
		n += lv->count[b];
		lv->end[b] = n;
	}
	struct ref k;
	WALK_EACH(w, k, {
		if (!region_has(g, &k))
			continue;
		uint32_t b = key_bits(&k, p);
		/* the counts are of these same keys (the walk's entry counts are
		 * fixed and keys never change); the check keeps a bucket in its run
		 * whatever happens */
		if (b < b0 || b > b1 || lv->at[b] == lv->end[b])
			continue;
		w->refs[lv->at[b]++] = k;
	})
	uint32_t start = 0;
	for (uint32_t b = b0; b <= b1 && !w->c->stop; b++) {
		size_t len = lv->at[b] - start;
		refs_sort(w->refs + start, len);
		walk_emit(w, w->refs + start, len);
		start = lv->end[b];
	}
}

static void key_set_bit(struct ref *k, unsigned pos, int v)
{
	uint64_t *word = pos < 64 ? &k->k0 : pos < 128 ? &k->k1 : &k->k2;
	unsigned bit = pos < 64 ? 63 - pos : pos < 128 ? 127 - pos : 175 - pos;
	*word = (*word & ~(1ull << bit)) | (uint64_t)(v != 0) << bit;
}

/* Emits region g (the keys sharing g->bits first bits) in order, at depth
 * d of the cut. 0 or -ENOMEM. */
/* Gathers region g whole (at most a batch of keys), sorts and emits it:
 * one pass, no buckets. */
static void walk_whole(struct walk *w, const struct walk_region *g)
{
	size_t n = 0;
	struct ref k;
	WALK_EACH(w, k, {
		if (n < w->batch && region_has(g, &k))
			w->refs[n++] = k;
	})
	refs_sort(w->refs, n);
	walk_emit(w, w->refs, n);
}

static int walk_region(struct walk *w, const struct walk_region *g, unsigned d)
{
	size_t n = 0;
	struct ref k, lo, hi;
	memset(&lo, 0, sizeof lo);
	memset(&hi, 0, sizeof hi);
	WALK_EACH(w, k, {
		if (!region_has(g, &k))
			continue;
		if (n++ == 0)
			lo = hi = k;
		else if (ref_cmp(&k, &lo) < 0)
			lo = k;
		else if (ref_cmp(&k, &hi) > 0)
			hi = k;
	})
	if (n == 0)
		return 0;
	if (n <= w->batch) { /* keys only leave a walk: n is an upper bound */
		walk_whole(w, g);
		return 0;
	}
	unsigned p = common_bits(&lo, &hi);
	if (p > WALK_KEY_BITS - WALK_BUCKET_BITS)
		p = WALK_KEY_BITS - WALK_BUCKET_BITS; /* the bits before p are shared too */
	if (d >= WALK_DEPTH)
		return -EINVAL; /* cannot be: each level cuts 16 more bits */
	if (!w->level[d] && !(w->level[d] = malloc(sizeof *w->level[d])))
		return -ENOMEM;
	struct walk_level *lv = w->level[d];
	memset(lv->count, 0, sizeof lv->count);
	WALK_EACH(w, k, {
		if (region_has(g, &k))
			lv->count[key_bits(&k, p)]++;
	})
	uint32_t b = 0;
	while (b < WALK_BUCKETS && !w->c->stop) {
		if (lv->count[b] > w->batch) {
			/* a region of its own: the keys with these 16 bits at p */
			struct ref rep = lo;
			for (unsigned i = 0; i < WALK_BUCKET_BITS; i++)
				key_set_bit(&rep, p + i,
				            (int)(b >> (WALK_BUCKET_BITS - 1 - i) & 1));
			int rc;
			if (p + WALK_BUCKET_BITS >= WALK_KEY_BITS) {
				/* keys alike in every bit: copies of one key (one per
				 * shard of its source) or rollups of ranges apart into
				 * one prefix (one per range group): their number is
				 * bounded by the configuration, not the state */
				struct ref *batch = w->refs;
				if (!(w->refs = malloc(lv->count[b] * sizeof *w->refs))) {
					w->refs = batch;
					return -ENOMEM;
				}
				walk_gather(w, g, p, lv, b, b);
				free(w->refs);
				w->refs = batch;
				b++;
				continue;
			}
			struct walk_region sub;
			region_set(&sub, &rep, p + WALK_BUCKET_BITS);
			if ((rc = walk_region(w, &sub, d + 1)))
				return rc;
			b++;
			continue;
		}
		uint32_t b0 = b;
		size_t sum = 0;
		while (b < WALK_BUCKETS && lv->count[b] <= w->batch - sum) {
			sum += lv->count[b];
			b++;
		}
		if (sum)
			walk_gather(w, g, p, lv, b0, b - 1);
	}
	return 0;
}

/* The address histograms in sorted order with bounded memory (see the
 * sorted walk above). */
static int collect_addresses(struct registry *r, struct collector *c, int only)
{
	size_t nwt = 0, total = 0;
	struct walk_table *wt;
	int rc = 0;

	for (size_t i = 0; i < r->nsources; i++)
		nwt += r->sources[i].nshards;
	if (nwt == 0)
		return 0;
	wt = calloc(nwt, sizeof *wt);
	if (!wt)
		return -ENOMEM;
	/* no entry read in this walk is reused before its end (keys never
	 * change during a walk; expired ones may only leave it) */
	uint64_t grace = addrtable_read_begin(&r->grace);
	nwt = 0;
	for (size_t i = 0; i < r->nsources; i++)
		for (size_t j = 0; selected(r, i, only) && j < r->sources[i].nshards; j++) {
			const struct addrtable *t = &r->sources[i].shards[j]->table;
			uint64_t seq = addrtable_seq(t); /* before the count */
			size_t cnt = addrtable_count(t);
			if (!cnt)
				continue;
			wt[nwt++] = (struct walk_table){t, cnt, seq, (uint32_t)i};
			total += cnt;
		}
	struct walk w = {.r = r, .c = c, .wt = wt, .nwt = nwt, .cur_fd = -1};
	if (total == 0)
		goto out;
	w.batch = r->collect_batch >= 64 ? r->collect_batch : 64;
	if (w.batch > total)
		w.batch = total;
	w.refs = malloc(w.batch * sizeof *w.refs);
	if (!w.refs) {
		rc = -ENOMEM;
		goto out;
	}
	struct walk_region all;
	struct ref zero;
	memset(&zero, 0, sizeof zero);
	region_set(&all, &zero, 0);
	/* the usual small state: one pass */
	if (total <= w.batch)
		walk_whole(&w, &all);
	else
		rc = walk_region(&w, &all, 0);
out:
	addrtable_read_end(&r->grace, grace);
	for (unsigned d = 0; d < WALK_DEPTH; d++)
		free(w.level[d]);
	free(w.refs);
	free(wt);
	return rc;
}

void registry_keep_ended(struct registry *r)
{
	for (size_t i = 0; i < r->nsources; i++)
		for (size_t j = 0; j < r->sources[i].nshards; j++)
			addrtable_ended_enable(&r->sources[i].shards[j]->table);
}

int registry_collect_ended(struct registry *r, struct collector *c)
{
	enum { BATCH = 1024 };
	const struct histogram_layout *l = r->layout;
	uint64_t zero[HISTOGRAM_MAX_BUCKETS + 1] = {0};
	char iptext[INET6_ADDRSTRLEN + 4];
	struct label fixed[3] = {{"interface", NULL}, {"ip", iptext}, {"protocol", NULL}};
	int met[4] = {0, 0, 0, 0};
	struct addr_key *keys = NULL;

	for (size_t i = 0; i < r->nsources && !c->stop; i++)
		for (size_t j = 0; j < r->sources[i].nshards && !c->stop; j++) {
			struct addrtable *t = &r->sources[i].shards[j]->table;
			if (!t->ended)
				continue;
			if (!keys && !(keys = malloc(BATCH * sizeof *keys)))
				return -ENOMEM;
			size_t n;
			while (!c->stop && (n = addrtable_ended_pop(t, keys, BATCH)) > 0)
				for (int fd = 0; fd < 4; fd++) {
					int first = 1;
					for (size_t e = 0; e < n && !c->stop; e++) {
						const struct addr_key *k = &keys[e];
						if (fam_dir(k) != fd)
							continue;
						if (first)
							c->family(c, addr_family_names[fd],
							          met[fd] ? NULL
							                  : addr_family_help[fd],
							          METRIC_HISTOGRAM);
						first = 0;
						met[fd] = 1;
						addr_text(k, iptext, sizeof iptext);
						fixed[0].value = r->sources[i].name;
						fixed[2].value = (char *)parse_proto_name(k->proto);
						const struct range_set *rg =
						    registry_range_set(r, k->range);
						struct series_labels sl = {fixed, 3, rg->labels,
						                           rg->nlabels, rg->text};
						c->series(c, &sl);
						emit_hist(c, l, zero, 0);
					}
				}
		}
	free(keys);
	return 0;
}

static void collect_counter_per_source(struct registry *r, struct collector *c, int only,
                                       const char *name, const char *help, size_t offset)
{
	struct label lab = {"interface", NULL};
	c->family(c, name, help, METRIC_COUNTER);
	for (size_t i = 0; i < r->nsources; i++) {
		if (!selected(r, i, only))
			continue;
		uint64_t v = 0;
		for (size_t j = 0; j < r->sources[i].nshards; j++)
			v += counter_read(
			    (const counter_t *)((const char *)r->sources[i].shards[j] + offset));
		lab.value = r->sources[i].name;
		struct series_labels sl = {&lab, 1, NULL, 0, NULL};
		c->series(c, &sl);
		c->sample(c, SAMPLE_PLAIN, NULL, (double)v);
	}
}

/* Per label set with a cap of its own (ranges with max_addresses; groups
 * with the same labels - e.g. a customer's IPv4 and IPv6 ranges - add up
 * into one series): the keys held and the caps, with the range's labels.
 * Only capped ranges, so 100,000 plain ranges add no series. */
static void collect_range_caps(struct registry *r, struct collector *c)
{
	static const char *const names[2] = {"promacct_range_tracked_keys",
	                                     "promacct_range_max_keys"};
	static const char *const help[2] = {
	    "Keys (addresses or rollup prefixes, per interface) held by the ranges with these "
	    "labels that have a max_addresses cap.",
	    "The max_addresses caps of the ranges with these labels, added up."};
	if (!atomic_load_explicit(&r->any_cap, memory_order_relaxed))
		return;
	uint32_t n = atomic_load_explicit(&r->nsets, memory_order_acquire);
	size_t *sum = calloc(2 * (size_t)n + 2, sizeof *sum);
	if (!sum)
		return; /* the walk goes on without these two families */
	for (uint32_t id = 0; id < n; id++) {
		const struct range_set *g = registry_range_set(r, id);
		size_t cap = atomic_load_explicit(&g->cap, memory_order_relaxed);
		uint32_t o = atomic_load_explicit(&g->other, memory_order_relaxed);
		if (!cap || !atomic_load_explicit(&g->configured, memory_order_relaxed) || o >= n)
			continue;
		sum[2 * (size_t)o] += atomic_load_explicit(&g->held, memory_order_relaxed);
		sum[2 * (size_t)o + 1] += cap;
	}
	for (int m = 0; m < 2 && !c->stop; m++) {
		c->family(c, names[m], help[m], METRIC_GAUGE);
		for (uint32_t id = 0; id < n; id++) {
			if (!sum[2 * (size_t)id + 1])
				continue;
			const struct range_set *g = registry_range_set(r, id);
			struct series_labels sl = {NULL, 0, g->labels, g->nlabels, g->text};
			c->series(c, &sl);
			c->sample(c, SAMPLE_PLAIN, NULL, (double)sum[2 * (size_t)id + (size_t)m]);
		}
	}
	free(sum);
}

/* A family of one unlabelled gauge. */
static void collect_gauge(struct collector *c, const char *name, const char *help, double v)
{
	struct series_labels none = {NULL, 0, NULL, 0, NULL};
	c->family(c, name, help, METRIC_GAUGE);
	c->series(c, &none);
	c->sample(c, SAMPLE_PLAIN, NULL, v);
}

static void collect_self(struct registry *r, struct collector *c)
{
	/* Grouped by name, in first-registration order. */
	for (size_t i = 0; i < r->nself && !c->stop; i++) {
		int seen = 0;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(r->self[j].name, r->self[i].name);
		if (seen)
			continue;
		c->family(c, r->self[i].name, r->self[i].help, r->self[i].type);
		for (size_t j = i; j < r->nself; j++) {
			const struct self_metric *m = &r->self[j];
			if (strcmp(m->name, r->self[i].name))
				continue;
			size_t nl = (m->labels[0].name != NULL) + (m->labels[1].name != NULL);
			struct series_labels sl = {m->labels, nl, NULL, 0, NULL};
			c->series(c, &sl);
			c->sample(c, SAMPLE_PLAIN, NULL, gauge_read(&m->value));
		}
	}
}

/* The walk behind registry_collect (only < 0: every source still
 * capturing, and the process-wide families) and registry_collect_source
 * (only = a source: just its series). */
static int collect(struct registry *r, struct collector *c, int only)
{
	const struct histogram_layout *l = r->layout;
	uint64_t cum[HISTOGRAM_MAX_BUCKETS + 1], acc[HISTOGRAM_MAX_BUCKETS + 1], sum, accsum;
	struct label lab = {"interface", NULL};
	int rc;

	c->family(c, "promacct_packet_size_bytes_all",
	          "Size of all packets seen on the interface, in bytes without the link-layer "
	          "header.",
	          METRIC_HISTOGRAM);
	for (size_t i = 0; i < r->nsources; i++) {
		if (!selected(r, i, only))
			continue;
		memset(acc, 0, sizeof acc);
		accsum = 0;
		for (size_t j = 0; j < r->sources[i].nshards; j++) {
			histogram_read(r->sources[i].shards[j]->all, l, cum, &sum);
			histogram_merge(acc, &accsum, cum, sum, l->nbuckets);
		}
		lab.value = r->sources[i].name;
		struct series_labels sl = {&lab, 1, NULL, 0, NULL};
		c->series(c, &sl);
		emit_hist(c, l, acc, accsum);
	}
	rc = collect_addresses(r, c, only);
	if (rc)
		return rc;

	collect_counter_per_source(
	    r, c, only, "promacct_pcap_received_packets_total",
	    "Packets received by the capture (pcap_stats ps_recv; packets read "
	    "for capture files).",
	    offsetof(struct acct_shard, pcap_recv));
	collect_counter_per_source(
	    r, c, only, "promacct_pcap_dropped_packets_total",
	    "Packets dropped by the kernel because the capture buffer was full "
	    "(pcap_stats ps_drop).",
	    offsetof(struct acct_shard, pcap_drop));
	collect_counter_per_source(r, c, only, "promacct_pcap_interface_dropped_packets_total",
	                           "Packets dropped by the network interface or its driver "
	                           "(pcap_stats ps_ifdrop).",
	                           offsetof(struct acct_shard, pcap_ifdrop));
	collect_counter_per_source(
	    r, c, only, "promacct_non_ip_packets_total",
	    "Frames that carry neither IPv4 nor IPv6 (counted in the interface "
	    "histogram only).",
	    offsetof(struct acct_shard, parse[PARSE_NON_IP]));

	c->family(c, "promacct_parse_failures_total",
	          "Frames that could not be parsed to IP addresses, by reason (counted in the "
	          "interface histogram only).",
	          METRIC_COUNTER);
	struct label fl[2] = {{"interface", NULL}, {"reason", NULL}};
	for (size_t i = 0; i < r->nsources; i++)
		for (int st = PARSE_TRUNCATED; selected(r, i, only) && st < PARSE_STATUS_COUNT;
		     st++) {
			uint64_t v = 0;
			for (size_t j = 0; j < r->sources[i].nshards; j++)
				v += counter_read(&r->sources[i].shards[j]->parse[st]);
			fl[0].value = r->sources[i].name;
			fl[1].value = (char *)parse_status_name((enum parse_status)st);
			struct series_labels sl = {fl, 2, NULL, 0, NULL};
			c->series(c, &sl);
			c->sample(c, SAMPLE_PLAIN, NULL, (double)v);
		}

	if (r->idle_timeout > 0) {
		collect_counter_per_source(r, c, only, "promacct_expired_keys_total",
		                           "Address keys (address or rollup prefix, direction, "
		                           "protocol) ended by --address.idle-timeout.",
		                           offsetof(struct acct_shard, expired));
		c->family(c, "promacct_expired_keys_unmarked_total",
		          "Ended keys whose remote-write stale markers were not sent (more ended "
		          "between two snapshots than the ring of ended keys holds).",
		          METRIC_COUNTER);
		struct label ul = {"interface", NULL};
		for (size_t i = 0; i < r->nsources; i++) {
			if (!selected(r, i, only))
				continue;
			uint64_t v = 0;
			for (size_t j = 0; j < r->sources[i].nshards; j++) {
				const struct addrtable *t = &r->sources[i].shards[j]->table;
				if (t->ended)
					v += atomic_load_explicit(&t->ended->lost,
					                          memory_order_relaxed);
			}
			ul.value = r->sources[i].name;
			struct series_labels sl = {&ul, 1, NULL, 0, NULL};
			c->series(c, &sl);
			c->sample(c, SAMPLE_PLAIN, NULL, (double)v);
		}
		c->family(c, "promacct_tracked_keys",
		          "Address keys (address or rollup prefix, direction, protocol) with a "
		          "histogram now.",
		          METRIC_GAUGE);
		struct label kl = {"interface", NULL};
		for (size_t i = 0; i < r->nsources; i++) {
			if (!selected(r, i, only))
				continue;
			size_t v = 0;
			for (size_t j = 0; j < r->sources[i].nshards; j++)
				v += addrtable_live_count(&r->sources[i].shards[j]->table);
			kl.value = r->sources[i].name;
			struct series_labels sl = {&kl, 1, NULL, 0, NULL};
			c->series(c, &sl);
			c->sample(c, SAMPLE_PLAIN, NULL, (double)v);
		}
	}
	collect_counter_per_source(r, c, only, "promacct_untracked_packets_total",
	                           "Address observations (a packet counts once for its source and "
	                           "once for its destination) in a range but in no series: a "
	                           "capture thread's table was full or out of memory (a cap "
	                           "sends them to the range's ip=\"other\" series instead).",
	                           offsetof(struct acct_shard, untracked));

	if (only >= 0)
		return 0; /* the rest is process-wide */
	collect_gauge(c, "promacct_tracked_addresses",
	              "Distinct (interface, address) pairs with histograms, held by interfaces "
	              "that are up (what --max-addresses caps).",
	              (double)atomic_load_explicit(&r->tracked, memory_order_relaxed));
	int have_live = 0;
	for (size_t i = 0; i < r->nsources; i++)
		have_live |= r->sources[i].live;
	if (have_live)
		c->family(c, "promacct_interface_up",
		          "1 while the interface is captured, 0 while it is gone (reopened every "
		          "--interface.reopen-interval) or waited for.",
		          METRIC_GAUGE);
	for (size_t i = 0; i < r->nsources; i++) {
		if (!r->sources[i].live)
			continue;
		struct label ul = {"interface", r->sources[i].name};
		struct series_labels usl = {&ul, 1, NULL, 0, NULL};
		c->series(c, &usl);
		c->sample(c, SAMPLE_PLAIN, NULL, registry_source_is_up(r, i));
	}
	collect_gauge(c, "promacct_max_addresses",
	              "The --max-addresses limit of tracked (interface, address) pairs.",
	              (double)r->max_addresses);
	collect_range_caps(r, c);

	c->family(c, "promacct_build_info",
	          "A metric with a constant '1' value labeled by the version of promacct and of "
	          "libpcap.",
	          METRIC_GAUGE);
	struct label bl[2] = {{"libpcap", (char *)pcap_lib_version()},
	                      {"version", (char *)promacct_version}};
	struct series_labels bsl = {bl, 2, NULL, 0, NULL};
	c->series(c, &bsl);
	c->sample(c, SAMPLE_PLAIN, NULL, 1);

	collect_gauge(c, "promacct_start_time_seconds",
	              "Start time of the promacct process since the Unix epoch, in seconds.",
	              r->start_time);

	collect_self(r, c);
	return 0;
}

int registry_collect(struct registry *r, struct collector *c)
{
	return collect(r, c, -1);
}

int registry_collect_source(struct registry *r, size_t src, struct collector *c)
{
	return collect(r, c, (int)src);
}
