/* Remote-write delivery queue of one endpoint: one FIFO per shard, bounded
 * in bytes and samples over all shards, oldest dropped first. Not
 * thread-safe: the endpoint's lock guards it. */
#ifndef PROMACCT_RW_QUEUE_H
#define PROMACCT_RW_QUEUE_H

#include <stdatomic.h>
#include <stddef.h>

#include "promacct/common.h"
#include "promacct/rw_disk.h"

/* An encoded request, shared by the queues of every endpoint (reference
 * counted; the last rw_body_unref frees it). With an on-disk queue the body
 * is on disk only (data NULL): each endpoint has its own, and the last
 * unref marks its record done (under the endpoint's lock). */
struct rw_body {
	atomic_size_t refs;
	char *data; /* snappy-compressed WriteRequest, or NULL: on disk */
	size_t len;
	size_t nsamples;
	struct rw_disk *disk; /* not owned */
	struct rw_disk_record rec;
	int replayed; /* read back from disk at start-up */
};

/* Takes ownership of data; one reference. NULL on out of memory (data is
 * freed then). */
struct rw_body *rw_body_new(char *data, size_t len, size_t nsamples);
/* A body whose bytes are the record r of disk. */
struct rw_body *rw_body_new_disk(struct rw_disk *disk, const struct rw_disk_record *r,
                                 int replayed);
void rw_body_unref(struct rw_body *b);

struct rw_item;

struct rw_queue {
	size_t nshards;
	struct rw_list {
		struct rw_item *head, *tail;
	} * shard;
	struct rw_item *oldest, *newest; /* every item, in push order */
	size_t bytes, samples;           /* queued, in flight included */
	size_t replayed;                 /* replayed requests still queued */
	size_t max_bytes, max_samples;   /* bounds; 0: none */
};

/* What a push pushed out of a full queue. */
struct rw_drop {
	size_t requests, samples;
};

int rw_queue_init(struct rw_queue *q, size_t nshards, size_t max_bytes,
                  size_t max_samples) MUST_CHECK;
/* Frees every queued request (in flight ones too: stop the senders first);
 * requests on disk stay there, not done, for the next start. */
void rw_queue_free(struct rw_queue *q);

/* Appends body to the shard's FIFO (takes a new reference). While the queue
 * is over a bound, the oldest requests that are not in flight are dropped,
 * never the new one; their counts are added to *drop. -ENOMEM: nothing
 * queued. */
int rw_queue_push(struct rw_queue *q, size_t shard, struct rw_body *body,
                  struct rw_drop *drop) MUST_CHECK;
/* Drops the oldest request that is not in flight (its counts are added to
 * *drop). 1 if one was dropped, 0 if none could be. */
int rw_queue_drop_oldest(struct rw_queue *q, struct rw_drop *drop);
/* The oldest request of the shard, now in flight (a push never drops it), or
 * NULL when the shard's FIFO is empty. */
struct rw_body *rw_queue_begin(struct rw_queue *q, size_t shard);
/* Ends the shard's request in flight: done (accepted or rejected) removes
 * it; otherwise it stays at the head for a retry. */
void rw_queue_end(struct rw_queue *q, size_t shard, int done);
/* Shards with requests queued or in flight. */
size_t rw_queue_shards_in_use(const struct rw_queue *q);

#endif
