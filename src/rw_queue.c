/* DESIGN: the remote-write queue of one endpoint.
 *
 * Every request is on two doubly linked lists: its shard's FIFO (what that
 * shard's sender sends, in order) and the endpoint-wide list in push order
 * (what a full queue drops first). The bound covers all shards: bytes of
 * the compressed bodies and samples. The head of a shard may be in flight;
 * it is never dropped from under its sender. Bodies are shared between the
 * queues of all endpoints and counted once per queue that holds them. The
 * caller holds the endpoint's lock for every call; nothing here blocks. */
#include "promacct/rw_queue.h"

#include <errno.h>
#include <stdlib.h>

struct rw_item {
	struct rw_item *snext, *sprev; /* shard FIFO */
	struct rw_item *gnext, *gprev; /* push order */
	struct rw_body *body;
	size_t shard;
	int inflight;
};

struct rw_body *rw_body_new(char *data, size_t len, size_t nsamples)
{
	struct rw_body *b = malloc(sizeof *b);
	if (!b) {
		free(data);
		return NULL;
	}
	atomic_init(&b->refs, 1);
	b->data = data;
	b->len = len;
	b->nsamples = nsamples;
	b->disk = NULL;
	b->replayed = 0;
	return b;
}

struct rw_body *rw_body_new_disk(struct rw_disk *disk, const struct rw_disk_record *r, int replayed)
{
	struct rw_body *b = rw_body_new(NULL, r->len, r->nsamples);
	if (b) {
		b->disk = disk;
		b->rec = *r;
		b->replayed = replayed;
	}
	return b;
}

void rw_body_unref(struct rw_body *b)
{
	if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
		if (b->disk)
			rw_disk_done(b->disk, &b->rec);
		free(b->data);
		free(b);
	}
}

int rw_queue_init(struct rw_queue *q, size_t nshards, size_t max_bytes, size_t max_samples)
{
	q->nshards = nshards ? nshards : 1;
	q->shard = calloc(q->nshards, sizeof *q->shard);
	q->oldest = q->newest = NULL;
	q->bytes = q->samples = q->replayed = 0;
	q->max_bytes = max_bytes;
	q->max_samples = max_samples;
	return q->shard ? 0 : -ENOMEM;
}

static void unlink_item(struct rw_queue *q, struct rw_item *it)
{
	struct rw_list *l = &q->shard[it->shard];
	if (it->sprev)
		it->sprev->snext = it->snext;
	else
		l->head = it->snext;
	if (it->snext)
		it->snext->sprev = it->sprev;
	else
		l->tail = it->sprev;
	if (it->gprev)
		it->gprev->gnext = it->gnext;
	else
		q->oldest = it->gnext;
	if (it->gnext)
		it->gnext->gprev = it->gprev;
	else
		q->newest = it->gprev;
	q->bytes -= it->body->len;
	q->samples -= it->body->nsamples;
	q->replayed -= it->body->replayed ? 1 : 0;
	rw_body_unref(it->body);
	free(it);
}

void rw_queue_free(struct rw_queue *q)
{
	if (!q->shard)
		return;
	while (q->oldest) {
		q->oldest->body->disk = NULL; /* not done: it stays pending on disk */
		unlink_item(q, q->oldest);
	}
	free(q->shard);
	q->shard = NULL;
}

static int over(const struct rw_queue *q)
{
	return (q->max_bytes && q->bytes > q->max_bytes) ||
	       (q->max_samples && q->samples > q->max_samples);
}

int rw_queue_push(struct rw_queue *q, size_t shard, struct rw_body *body, struct rw_drop *drop)
{
	struct rw_item *it = calloc(1, sizeof *it);
	if (!it)
		return -ENOMEM;
	atomic_fetch_add_explicit(&body->refs, 1, memory_order_relaxed);
	it->body = body;
	it->shard = shard < q->nshards ? shard : shard % q->nshards;
	struct rw_list *l = &q->shard[it->shard];
	it->sprev = l->tail;
	if (l->tail)
		l->tail->snext = it;
	else
		l->head = it;
	l->tail = it;
	it->gprev = q->newest;
	if (q->newest)
		q->newest->gnext = it;
	else
		q->oldest = it;
	q->newest = it;
	q->bytes += body->len;
	q->samples += body->nsamples;
	q->replayed += body->replayed ? 1 : 0;
	struct rw_item *p = q->oldest;
	while (over(q) && p && p != it) {
		struct rw_item *next = p->gnext;
		if (!p->inflight) {
			drop->requests++;
			drop->samples += p->body->nsamples;
			unlink_item(q, p);
		}
		p = next;
	}
	return 0;
}

int rw_queue_drop_oldest(struct rw_queue *q, struct rw_drop *drop)
{
	for (struct rw_item *p = q->oldest; p; p = p->gnext)
		if (!p->inflight) {
			drop->requests++;
			drop->samples += p->body->nsamples;
			unlink_item(q, p);
			return 1;
		}
	return 0;
}

struct rw_body *rw_queue_begin(struct rw_queue *q, size_t shard)
{
	struct rw_item *it = q->shard[shard].head;
	if (!it)
		return NULL;
	it->inflight = 1;
	return it->body;
}

void rw_queue_end(struct rw_queue *q, size_t shard, int done)
{
	struct rw_item *it = q->shard[shard].head;
	if (!it)
		return;
	it->inflight = 0;
	if (done)
		unlink_item(q, it);
}

size_t rw_queue_shards_in_use(const struct rw_queue *q)
{
	size_t n = 0;
	for (size_t i = 0; i < q->nshards; i++)
		n += q->shard[i].head != NULL;
	return n;
}
