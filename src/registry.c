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
 * set of its distinct addresses (struct addrset): a shard's slow path (an
 * address new to that shard) looks it up without a lock; only an address
 * new to the whole source takes the source's lock to be counted and added.
 * Over the cap, a refusal takes no lock either. The per-packet path never
 * gets here. When an interface goes away its addresses leave the count;
 * when it comes back they rejoin it (its state is kept: series continue). */
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

int registry_init(struct registry *r, struct histogram_layout *layout, struct ranges *ranges,
                  size_t max_addresses)
{
	memset(r, 0, sizeof *r);
	r->layout = layout;
	r->ranges = ranges;
	r->max_addresses = max_addresses;
	r->start_time = time_now();
	r->collect_batch = COLLECT_BATCH;
	addrtable_grace_init(&r->grace);
	for (size_t i = 0; i < ranges->n && !r->range_held; i++)
		if (ranges->v[i].group_max) {
			r->range_held = calloc(ranges->n, sizeof *r->range_held);
			if (!r->range_held)
				return -ENOMEM;
		}
	return 0;
}

struct source_cap {
	struct registry *reg;
	pthread_mutex_t lock; /* shared-set admissions, up/down transitions */
	int shared;           /* more than one shard: `set` is in use */
	struct addrset set;   /* distinct addresses over the shards */
	_Atomic size_t held;  /* distinct addresses of the source */
	_Atomic int down;     /* held is not in reg->tracked */
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

/* The cap of the key's range group, 0 when it has none. */
static size_t group_cap(const struct registry *r, const struct addr_key *k)
{
	return r->range_held ? r->ranges->v[k->range].group_max : 0;
}

/* One more key of its range group against the group's cap (gcap > 0); 0
 * when it is reached. */
static int group_inc(struct registry *r, const struct addr_key *k, size_t gcap)
{
	_Atomic size_t *held = &r->range_held[k->range];
	size_t cur = atomic_load_explicit(held, memory_order_relaxed);
	do {
		if (cur >= gcap)
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
		if (gcap && !group_inc(r, k, gcap))
			return 0;
		if (!atomic_load_explicit(&sc->down, memory_order_relaxed) && !tracked_inc(r)) {
			if (gcap)
				atomic_fetch_sub_explicit(&r->range_held[k->range], 1,
				                          memory_order_relaxed);
			return 0;
		}
		atomic_fetch_add_explicit(&sc->held, 1, memory_order_relaxed);
		return 1;
	}
	if (addrset_contains(&sc->set, k))
		return 1; /* another shard holds it: counted once */
	/* refusals take no lock */
	if (gcap && atomic_load_explicit(&r->range_held[k->range], memory_order_relaxed) >= gcap)
		return 0;
	if (atomic_load_explicit(&r->tracked, memory_order_relaxed) >= r->max_addresses &&
	    !atomic_load_explicit(&sc->down, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&sc->lock);
	int down = atomic_load_explicit(&sc->down, memory_order_relaxed);
	if (addrset_contains(&sc->set, k)) {
		ok = 1;
	} else if (gcap && !group_inc(r, k, gcap)) {
		ok = 0;
	} else if (down || tracked_inc(r)) {
		if (addrset_add(&sc->set, k) == 0) {
			atomic_fetch_add_explicit(&sc->held, 1, memory_order_relaxed);
			ok = 1;
		} else {
			if (!down)
				atomic_fetch_sub_explicit(&r->tracked, 1, memory_order_relaxed);
			if (gcap)
				atomic_fetch_sub_explicit(&r->range_held[k->range], 1,
				                          memory_order_relaxed);
		}
	} else if (gcap) {
		atomic_fetch_sub_explicit(&r->range_held[k->range], 1, memory_order_relaxed);
	}
	pthread_mutex_unlock(&sc->lock);
	return ok;
}

/* The last key of an address expired in a shard (its writer's scan): the
 * address leaves the caps it was counted in by shard_admit. Only sources
 * with one shard expire keys (registry_shard_expire). */
static void shard_release(struct addrtable_admit *a, const struct addr_key *k)
{
	struct acct_shard *sh =
	    (struct acct_shard *)((char *)a - offsetof(struct acct_shard, admit));
	struct source_cap *sc = sh->cap;
	struct registry *r = sc->reg;
	if (sc->shared)
		return;
	if (group_cap(r, k))
		atomic_fetch_sub_explicit(&r->range_held[k->range], 1, memory_order_relaxed);
	if (!atomic_load_explicit(&sc->down, memory_order_relaxed))
		atomic_fetch_sub_explicit(&r->tracked, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&sc->held, 1, memory_order_relaxed);
}

static struct source_cap *source_cap_new(struct registry *r)
{
	struct source_cap *sc = calloc(1, sizeof *sc);
	if (!sc)
		return NULL;
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
 * starting with what its first shard holds. */
static int source_cap_share(struct source_cap *sc, const struct acct_shard *first)
{
	if (addrset_init(&sc->set, sc->reg->max_addresses))
		return -ENOMEM;
	const struct addrtable *t = &first->table;
	for (size_t i = 0, n = addrtable_count(t); i < n; i++)
		if (addrset_add(&sc->set, addrtable_key(t, i)) < 0) {
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
	return r->ranges;
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
	free(r->range_held);
	r->range_held = NULL;
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
	sh->table.other_of = r->ranges->other_of;
	sh->admit.release = shard_release;
	if (r->idle_timeout > 0 &&
	    addrtable_set_expiry(&sh->table, &r->grace, r->idle_timeout, ENDED_RING)) {
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
		const struct range *rg = &r->ranges->v[k->range];
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
						const struct range *rg = &r->ranges->v[k->range];
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
	const struct ranges *rs = r->ranges;
	if (!r->range_held || !rs->other_of)
		return;
	size_t *sum = calloc(2 * rs->n, sizeof *sum);
	if (!sum)
		return; /* the walk goes on without these two families */
	for (size_t i = 0; i < rs->n; i++) {
		const struct range *g = &rs->v[i];
		if (!g->group_max || g->group != i)
			continue;
		size_t o = rs->other_of[i];
		sum[2 * o] += atomic_load_explicit(&r->range_held[i], memory_order_relaxed);
		sum[2 * o + 1] += g->group_max;
	}
	for (int m = 0; m < 2 && !c->stop; m++) {
		c->family(c, names[m], help[m], METRIC_GAUGE);
		for (size_t i = 0; i < rs->n; i++) {
			const struct range *g = &rs->v[i];
			if (!sum[2 * i + 1] || rs->other_of[i] != i)
				continue;
			struct series_labels sl = {NULL, 0, g->labels, g->nlabels, g->text};
			c->series(c, &sl);
			c->sample(c, SAMPLE_PLAIN, NULL, (double)sum[2 * i + (size_t)m]);
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
