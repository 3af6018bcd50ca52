/* The accounting state of the process and the one way to read it out. */
#ifndef PROMACCT_REGISTRY_H
#define PROMACCT_REGISTRY_H

#include <pthread.h>
#include <stddef.h>

#include "promacct/addrtable.h"
#include "promacct/common.h"
#include "promacct/histogram.h"
#include "promacct/labels.h"
#include "promacct/parse.h"
#include "promacct/ranges.h"

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct source_cap;

/* The state one capture thread writes (it is the only writer). */
struct acct_shard {
	struct addrtable table;
	struct addrtable_admit admit; /* the cap, for table (see registry.c) */
	struct source_cap *cap;       /* its source's cap bookkeeping */
	counter_t *all;               /* the interface histogram, layout->words words */
	counter_t parse[PARSE_STATUS_COUNT];
	counter_t untracked;
	counter_t expired;      /* keys ended by idle expiry */
	counter_t reload_ended; /* keys ended by reloads (registry_shard_ranges) */
	/* The generation of the ranges table its capture thread uses
	 * (registry_shard_ranges), UINT64_MAX while it uses none. */
	_Atomic uint64_t ranges_gen;
	/* The last generation it moved to (its keys that table does not hold
	 * ended), kept while it uses none: a retired label set's id is given
	 * again only once every shard moved past its retirement. */
	_Atomic uint64_t moved_gen;
	/* idle expiry pacing (the capture thread's) */
	double expire_last, expire_owed;
	/* pcap_stats totals, stored (not added) by the capture thread */
	counter_t pcap_recv, pcap_drop, pcap_ifdrop;
};

/* An interface or a capture file: the `interface` label. */
struct source {
	char *name;
	struct acct_shard **shards;
	size_t nshards;
	/* Set (release) by registry_source_set_up when the interface
	 * disappeared: the source's series are not exported meanwhile. Read it
	 * with registry_source_is_up. */
	_Atomic int gone;
	int live;               /* a live interface (promacct_interface_up) */
	struct source_cap *cap; /* owned; see registry.c */
};

/* A self-metric: one series with a double value, written by one thread. */
struct self_metric {
	const char *name; /* static strings */
	const char *help;
	enum metric_type type;
	struct label labels[2]; /* up to two labels, unused ones have NULL name */
	gauge_t value;
};

#define REGISTRY_MAX_SELF 256

/* A label set ever configured, by its stable id: the family, granularity
 * and labels of ranges alike (one accounting group, ranges.h). Ids are
 * given by registry_ranges_map; a retired set's id goes back only to the
 * same labels (registry.c); an entry never moves or changes its labels, so
 * readers resolve a key's labels through it without a lock. */
struct range_set {
	uint8_t family, granularity;
	struct label *labels;
	size_t nlabels;
	char *text; /* as range.text */
	/* the group's keys held (per interface; counted on every admission
	 * whether capped or not) and its cap now (0: none) */
	_Atomic size_t held;
	_Atomic size_t cap;
	_Atomic uint32_t other; /* the id whose ip="other" series takes its refused keys */
	/* Some configured set's `other` is this id (it may itself be left
	 * out: its overflow series goes on while sets with its labels stay). */
	_Atomic int owns_other;
	uint64_t omark;         /* main thread: the last configuration it owned other in */
	_Atomic int configured; /* in the ranges table now */
	uint64_t mark;          /* main thread: the last configuration holding it */
	/* main thread: the generation that configured it last (since) and the
	 * one that last left it out (retired; 0: never) */
	uint64_t since, retired;
};

#define REGISTRY_SETS_SHIFT 12 /* label sets per chunk of the table */

struct registry {
	struct histogram_layout *layout; /* not owned */
	/* The ranges table the capture threads use (not owned; replaced by
	 * registry_ranges_publish) and its generation. */
	const struct ranges *_Atomic ranges;
	_Atomic uint64_t ranges_gen;
	size_t max_addresses;
	_Atomic size_t tracked;
	/* The label sets by id, in chunks that never move; nsets ids given. */
	struct range_set *_Atomic *sets;
	_Atomic uint32_t nsets;
	_Atomic int any_cap; /* a range ever had a max_addresses cap */
	uint64_t sets_mark;  /* main thread: configurations applied */
	struct source *sources;
	size_t nsources;
	double start_time;
	/* Address histograms per pass of a read-out (its memory: 48 bytes
	 * each); set by registry_init, tests make it small. */
	size_t collect_batch;
	/* --address.idle-timeout (0: never), set before the shards are added;
	 * the grace periods of entry reuse (addrtable.h). */
	double idle_timeout;
	struct addrtable_grace grace;
	/* Self-metrics are registered during start-up only (before any
	 * reader thread runs); their values change at any time. */
	struct self_metric self[REGISTRY_MAX_SELF];
	size_t nself;
};

int registry_init(struct registry *r, struct histogram_layout *layout, struct ranges *ranges,
                  size_t max_addresses) MUST_CHECK;
void registry_free(struct registry *r);
/* Finds or adds the source with this name; returns its index or -ENOMEM. */
int registry_add_source(struct registry *r, const char *name) MUST_CHECK;
/* Marks source src a live interface: it gets promacct_interface_up. */
void registry_source_set_live(struct registry *r, int src);
/* The index of the source with this name, or -1. */
int registry_source_find(const struct registry *r, const char *name);
size_t registry_nsources(const struct registry *r);
const char *registry_source_name(const struct registry *r, size_t src);
/* Whether the source's series are exported (its interface is there). */
int registry_source_is_up(const struct registry *r, size_t src);
/* Records that the source's interface went away (up = 0) or came back
 * (up = 1): its series leave or rejoin the read-out, and its distinct
 * addresses leave or rejoin the --max-addresses count (the cap counts the
 * (interface, address) pairs currently held by interfaces that are up).
 * Called by the source's capture threads, never while they count (any
 * thread for a source with more than one shard). Returns 1 when the state
 * changed, 0 when it was so already. */
int registry_source_set_up(struct registry *r, size_t src, int up);
/* Idle expiry of address keys (before registry_add_shard): a key whose
 * histogram saw no packet for `seconds` ends; 0 turns it off. */
void registry_set_idle_timeout(struct registry *r, double seconds);
double registry_idle_timeout(const struct registry *r);
/* The capture thread of shard s, between batches (no lookup pending),
 * also while it has no capture handle (a file read, an interface gone:
 * the source may be down): one slice of the idle-expiry scan, paced so
 * that every key is looked at every registry_expiry_period. now is
 * time_monotonic(). Does nothing unless idle expiry is on and the shard
 * is its source's only one. */
void registry_shard_expire(struct registry *r, struct acct_shard *s, double now);
/* Seconds between two looks at one key: timeout / 16, within 0.05 to 5 s;
 * a key ends between the timeout and the timeout plus two periods (and a
 * capture wake-up, 50 ms) after its last packet. */
double registry_expiry_period(const struct registry *r);
/* Distinct (interface, address) pairs counted against --max-addresses. */
size_t registry_tracked(const struct registry *r);
/* The ranges table now (any thread). */
const struct ranges *registry_ranges(const struct registry *r);
/* Its generation (any thread): a capture thread whose generation differs
 * has a reload to follow (registry_shard_ranges). */
uint64_t registry_ranges_gen(const struct registry *r);
/* The label set of id (a key's range): any thread, for ids of keys. */
const struct range_set *registry_range_set(const struct registry *r, uint32_t id);

/* ---- reload of the ranges (main thread) ---------------------------------
 * registry_ranges_map gives a freshly built table the stable ids of its
 * label sets (same family, granularity and labels as a set configured now:
 * that id, so its keys continue; else a retired set's with those labels
 * once every shard moved past its retirement; else a new one) and
 * rewrites its vals;
 * registry_ranges_publish makes it the table of the capture threads
 * (caps and overflow series follow it) and returns its generation; each
 * capture thread moves to it between batches (registry_shard_ranges),
 * ending its keys that the new table does not hold as they are. The old
 * table may be freed once registry_ranges_quiescent(gen). */
int registry_ranges_map(struct registry *r, struct ranges *fresh) MUST_CHECK;
uint64_t registry_ranges_publish(struct registry *r, const struct ranges *fresh);
int registry_ranges_quiescent(const struct registry *r, uint64_t gen);
/* The capture thread of shard s, between batches: the table to use now
 * (*gen: the generation the thread has, updated). When it changed, the
 * shard's keys of ranges removed or changed end first (stale markers,
 * caps released). */
const struct ranges *registry_shard_ranges(struct registry *r, struct acct_shard *s,
                                           const struct ranges *cur, uint64_t *gen);
/* Keys ended by reloads so far, and stale markers lost (the ended ring
 * was full), over every shard (any thread; the main thread logs what a
 * reload ended once every shard moved). */
void registry_reload_ended(const struct registry *r, uint64_t *keys, uint64_t *lost);
/* The capture thread of s uses no table until its next
 * registry_shard_ranges (it is about to block opening its interface, or
 * it is done: --once). */
void registry_shard_ranges_idle(struct acct_shard *s);
const struct histogram_layout *registry_layout(const struct registry *r);
/* Adds an empty shard (one capture thread's state) to source src, at
 * start-up (before the capture threads run). The shards of one source
 * share its address cap: an address seen by several counts once. NULL on
 * out of memory. */
struct acct_shard *registry_add_shard(struct registry *r, int src) MUST_CHECK;
/* Registers a self-metric (start-up only: before any thread that reads the
 * registry, the scrape server included, starts). The label values are copied.
 * Returns the value cell, or NULL when the table is full. */
gauge_t *registry_self_add(struct registry *r, const char *name, const char *help,
                           enum metric_type type, const char *l1, const char *v1, const char *l2,
                           const char *v2);
/* Adds to a self-metric; safe with several writers (not for hot paths). */
static inline void self_inc(gauge_t *g, double v)
{
	uint64_t old = atomic_load_explicit(g, memory_order_relaxed), nb;
	do {
		double d;
		__builtin_memcpy(&d, &old, sizeof d);
		d += v;
		__builtin_memcpy(&nb, &d, sizeof nb);
	} while (!atomic_compare_exchange_weak_explicit(g, &old, nb, memory_order_relaxed,
	                                                memory_order_relaxed));
}

/* ---- reading out -------------------------------------------------------- */

struct series_labels {
	const struct label *fixed; /* interface, ip, protocol, ... (unescaped) */
	size_t nfixed;
	const struct label *extra; /* user labels of the range, if any */
	size_t nextra;
	const char *extra_text; /* extra rendered as ,a="x" (escaped), or NULL */
};

enum sample_kind { SAMPLE_PLAIN, SAMPLE_BUCKET, SAMPLE_SUM, SAMPLE_COUNT };

/* A sink for the state: a text renderer, a remote-write encoder. Calls come
 * in order: family, then per series: series, then its samples. */
struct collector {
	void (*family)(struct collector *c, const char *name, const char *help,
	               enum metric_type type);
	void (*series)(struct collector *c, const struct series_labels *l);
	/* le is the bucket bound text for SAMPLE_BUCKET, else NULL */
	void (*sample)(struct collector *c, enum sample_kind kind, const char *le, double value);
	/* Set by the collector to stop the walk early (an error). */
	int stop;
};

/* Walks the whole state into the collector without stopping capture: no
 * lock is taken that a capture thread could wait on. Series come in a stable
 * order (families in a fixed order, series sorted by interface, address,
 * protocol). Returns 0, or -ENOMEM. */
int registry_collect(struct registry *r, struct collector *c) MUST_CHECK;

/* The series of one source only (also when it is gone): the remote-write
 * sender uses it to end them with stale markers. */
int registry_collect_source(struct registry *r, size_t src, struct collector *c) MUST_CHECK;

/* The consumer of registry_collect_ended (the remote-write sender, at
 * start-up, after the shards): until it is called, ended keys are not
 * kept. */
void registry_keep_ended(struct registry *r);
/* The address series ended by idle expiry since the last call (their
 * samples are zeros; the remote-write sender sends them as stale markers).
 * One consumer per process. Returns 0 or -ENOMEM. */
int registry_collect_ended(struct registry *r, struct collector *c) MUST_CHECK;

/* Counts the series registry_collect would emit for address histograms. */
size_t registry_address_histograms(struct registry *r);

/* Version text, e.g. "0.1.0". */
extern const char promacct_version[];

#endif
