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

/* The state one capture thread writes (it is the only writer). */
struct acct_shard {
	struct addrtable table;
	counter_t *all; /* the interface histogram, layout->words words */
	counter_t parse[PARSE_STATUS_COUNT];
	counter_t untracked;
	/* pcap_stats totals, stored (not added) by the capture thread */
	counter_t pcap_recv, pcap_drop, pcap_ifdrop;
};

/* An interface or a capture file: the `interface` label. */
struct source {
	char *name;
	struct acct_shard **shards;
	size_t nshards;
	/* Set (release) by a capture thread when its interface disappeared:
	 * the source's series are no longer exported (they end). */
	_Atomic int gone;
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

struct registry {
	struct histogram_layout *layout; /* not owned */
	struct ranges *ranges;           /* not owned */
	size_t max_addresses;
	_Atomic size_t tracked;
	struct source *sources;
	size_t nsources;
	double start_time;
	/* Address histograms per pass of a read-out (its memory: 48 bytes
	 * each); set by registry_init, tests make it small. */
	size_t collect_batch;
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
/* Adds an empty shard (one capture thread's state) to source src. NULL on
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

/* Counts the series registry_collect would emit for address histograms. */
size_t registry_address_histograms(struct registry *r);

/* Version text, e.g. "0.1.0". */
extern const char promacct_version[];

#endif
