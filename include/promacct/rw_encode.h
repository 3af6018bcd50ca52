/* Remote-write encoding: the registry as snappy-compressed WriteRequest
 * protobufs, streamed (requests are emitted while the registry is walked). */
#ifndef PROMACCT_RW_ENCODE_H
#define PROMACCT_RW_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "promacct/common.h"
#include "promacct/labels.h"
#include "promacct/registry.h"

/* Labels added to every series (job, instance, --remote-write.external-label).
 * A series' own label of the same name wins. */
struct rw_label_set {
	const struct label *labels;
	size_t n;
};

/* Most labels one series may carry on the wire, __name__, le and the
 * external labels included. Start-up validation keeps every series below
 * it; a series beyond it fails the snapshot loudly, it is never cut. */
#define RW_MAX_LABELS LABELS_MAX

/* Receives one encoded request: a snappy block-compressed WriteRequest of
 * nsamples samples (one sample per series) for shard `shard`. The callee
 * takes ownership of body (malloc'd). A nonzero return stops the walk, and
 * rw_encode returns it. */
typedef int (*rw_emit_fn)(void *ctx, size_t shard, char *body, size_t len, size_t nsamples);

struct rw_encode_opts {
	const struct rw_label_set *ext;
	int64_t ts_ms;      /* the timestamp of every sample */
	size_t max_samples; /* per request (>= 1) */
	/* Series are spread over nshards shards (>= 1) by a hash of their
	 * labels: a series always lands in the same shard, so requests of one
	 * shard sent in order keep every series' timestamps in order. */
	size_t nshards;
	int stale;  /* every value is the stale marker */
	int source; /* -1: every live source; else only this source (gone or not) */
	rw_emit_fn emit;
	void *ctx;
	/* Only the address series ended by idle expiry since the last such
	 * walk (registry_collect_ended; with stale, their stale markers). */
	int ended;
};

/* Walks the registry once and emits requests as shard batches fill up,
 * then the partial ones. Memory is bounded by nshards x max_samples, never
 * by the state. Metadata (TYPE/HELP) of each family travels in the first
 * request emitted after the family was met. Returns 0, a negative errno
 * (-ENOMEM; -E2BIG: a series with more than RW_MAX_LABELS labels, logged),
 * or emit's nonzero return. */
int rw_encode(struct registry *reg, const struct rw_encode_opts *o) MUST_CHECK;

/* The shard of a series: a hash of its labels modulo nshards. */
size_t rw_series_shard(const struct series_labels *l, size_t nshards);

/* The stale-marker NaN, 0x7ff0000000000002. */
double rw_stale_nan(void);

#endif
