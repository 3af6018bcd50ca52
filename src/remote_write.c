/* DESIGN: remote-write delivery (Prometheus remote write 1.0).
 *
 * Threads: one snapshot timer (timer.c) and, per endpoint, max-shards sender
 * threads. Every --remote-write.interval the timer walks the registry once
 * (rw_encode: no lock that capture waits on, requests emitted as the walk
 * goes) and appends each request to every endpoint's queue (rw_queue: the
 * body is shared, not copied), into the FIFO of the shard its series hash
 * to. Each sender thread owns one shard of one endpoint and its own libcurl
 * handle, and sends its FIFO oldest first, one request at a time: 2xx pops
 * it; 5xx, 429 and transport errors keep it and retry after an exponential
 * backoff with jitter (Retry-After honoured, capped); other 4xx drop it
 * (logged, counted). A series always hashes to the same shard and every
 * snapshot has a strictly larger timestamp, so per-series timestamps
 * increase strictly on the wire while up to max-shards requests per
 * endpoint are in flight. While an endpoint is down its queue grows to the
 * byte (and sample) bound; beyond it the oldest requests are dropped and
 * counted, and the log says so once when it starts and once, with counts,
 * when it ends. Endpoints never wait for each other.
 *
 * Locks: each endpoint has one mutex guarding its queue, log state and the
 * busy count, and one condition variable (queue changes, stop). The
 * encoder takes an endpoint's lock only to append.
 *
 * Stopping: one stop flag (rw->stop) and one deadline. Stop ends the
 * periodic snapshots (one in progress is abandoned); senders then deliver
 * what is queued, plus the final snapshot and stale markers that shutdown
 * queues (only after a successful start), until the queues are empty or the
 * deadline passes. Every wait (idle, backoff, Retry-After) and every HTTP
 * request ends at the deadline: requests get only the time left
 * (http_client_request_until), and one in flight when the deadline passes
 * is abandoned within about a second (rw->abandon, set by the thread
 * joining the senders; not at stop, when it could still be accepted and
 * would then be sent twice). With a disk queue, shutdown ends a shard at
 * its first failed request instead of retrying (rw->disk_shutdown: what is
 * left is on disk, sent at the next start); while the endpoint accepts,
 * delivery goes on until the queue is empty or the same deadline.
 *
 * Timestamps: every snapshot is stamped after the previous one (rw->last_ts)
 * and, with a disk queue, after every record found at start and the last
 * timestamp the previous run stored there (rw_disk_store_ts, each
 * snapshot), so a clock set back across a restart never stamps a series
 * before what the receiver holds. */
#include "promacct/remote_write.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promacct/log.h"
#include "promacct/rw_disk.h"
#include "promacct/rw_queue.h"
#include "promacct/timer.h"

#define RW_LOG_4XX_INTERVAL 10.0 /* seconds between logged rejections */
#define RW_RETRY_AFTER_MAX  300.0

struct rw_endpoint;

struct rw_shard {
	struct rw_endpoint *ep;
	size_t idx;
	http_client *http;
	pthread_t thread;
	int started;
	unsigned int seed;
	char *buf; /* a body read from disk */
	size_t buf_cap;
};

struct rw_endpoint {
	struct remote_write *rw;
	char *url;
	char *shown; /* url without password and query (url_redact): label, logs */
	struct rw_shard *shards;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* queue changes, stop, closed */
	/* under lock */
	struct rw_queue q;
	size_t busy;      /* shards with a request in flight */
	int last_ok;      /* -1 unknown, 0 failing, 1 succeeding */
	int disk_failing; /* appends to the disk queue fail (an errno), since: */
	double disk_failing_since;
	struct rw_drop disk_drop; /* requests dropped since */
	int sync_failing;         /* fdatasync of the disk queue fails (an errno) */
	size_t failed_requests;   /* since it last succeeded */
	int full;                 /* dropping from a full queue since full_since */
	double full_since;
	struct rw_drop full_drop;
	double last_reject_log;
	struct rw_drop rejected_unlogged;
	gauge_t *sent, *failed, *dropped, *queue, *queue_bytes, *shards_max, *shards_in_use,
	    *last_success, *duration;
	/* --remote-write.queue-dir: the on-disk queue (under lock) */
	struct rw_disk *disk;
	struct rw_drop open_drop; /* dropped at open: over a smaller bound */
	gauge_t *disk_bytes, *replayed, *corrupt;
};

struct remote_write {
	struct registry *reg;
	struct rw_label_set ext;
	struct rw_endpoint *ep;
	size_t nep;
	size_t nshards;
	double interval, min_backoff, max_backoff;
	size_t max_samples;
	const char *queue_dir; /* NULL: queues in memory only */
	int queue_chown;       /* give the queue directories to: */
	uid_t queue_uid;
	gid_t queue_gid;
	int64_t last_ts;      /* timer / shutdown thread only */
	unsigned char *ended; /* per source: its stale markers were queued */
	struct timer timer;

	atomic_int stop;   /* the one stop flag: no more periodic snapshots */
	gauge_t deadline;  /* monotonic; set before stop */
	atomic_int closed; /* no more requests will be queued */
	/* Set when the deadline passed with senders still running: requests in
	 * flight are abandoned (not at stop: one accepted meanwhile would be
	 * sent twice). */
	atomic_int abandon;
	/* Shutting down with a disk queue: what is queued is safe on disk, so
	 * senders end at the first attempt that fails instead of retrying. */
	atomic_int disk_shutdown;
	pthread_mutex_t run_lock;
	pthread_cond_t run_cond; /* a sender ended */
	size_t running;          /* sender threads not ended, under run_lock */
	int started;             /* start succeeded: graceful work is due */
};

static const char *const rw_reserved_headers[] = {"content-encoding", "content-type",
                                                  "x-prometheus-remote-write-version", NULL};

/* ---- stop and deadline -------------------------------------------------- */

/* Seconds senders may still work: unbounded until stop, then until the
 * deadline. */
static double time_left(struct remote_write *rw)
{
	if (!atomic_load(&rw->stop))
		return INFINITY;
	return gauge_read(&rw->deadline) - time_monotonic();
}

static int expired(struct remote_write *rw)
{
	return time_left(rw) <= 0;
}

/* Sets the deadline and the stop flag, wakes every wait. */
static void rw_request_stop(struct remote_write *rw, double deadline)
{
	/* after remote_write_abandon the deadline stays in the past, also when
	 * it raced with this call */
	gauge_set(&rw->deadline, atomic_load(&rw->abandon) ? 0 : deadline);
	if (atomic_load(&rw->abandon))
		gauge_set(&rw->deadline, 0);
	atomic_store(&rw->stop, 1);
	for (size_t i = 0; i < rw->nep; i++) {
		pthread_mutex_lock(&rw->ep[i].lock);
		pthread_cond_broadcast(&rw->ep[i].cond);
		pthread_mutex_unlock(&rw->ep[i].lock);
	}
}

/* No more requests: senders end when their FIFO is empty. */
static void rw_close(struct remote_write *rw)
{
	atomic_store(&rw->closed, 1);
	for (size_t i = 0; i < rw->nep; i++) {
		pthread_mutex_lock(&rw->ep[i].lock);
		pthread_cond_broadcast(&rw->ep[i].cond);
		pthread_mutex_unlock(&rw->ep[i].lock);
	}
}

/* One wait on ep->cond (lock held) until `until` or the deadline, whichever
 * comes first; at once if that has passed. Callers loop on their
 * condition: broadcasts (pushes, stop, close) wake it early. */
static void ep_wait(struct rw_endpoint *ep, double until)
{
	double left = time_left(ep->rw);
	double now = time_monotonic();
	if (now + left < until)
		until = now + left;
	if (until <= now)
		return;
	cond_wait_signal_until(&ep->cond, &ep->lock, until);
}

/* ---- queueing ----------------------------------------------------------- */

static void ep_gauges_locked(struct rw_endpoint *ep)
{
	if (ep->disk)
		gauge_set(ep->disk_bytes, (double)rw_disk_bytes(ep->disk));
	gauge_set(ep->queue, (double)ep->q.samples);
	gauge_set(ep->queue_bytes, (double)ep->q.bytes);
	gauge_set(ep->shards_in_use, (double)rw_queue_shards_in_use(&ep->q));
}

/* The queue-full state changes: logged once each way, with counts. The
 * state ends when a push finds the queue below half its bound (not at the
 * first push with room, which comes right after every drop). */
static void ep_note_push_locked(struct rw_endpoint *ep, const struct rw_drop *d)
{
	if (d->requests) {
		self_inc(ep->dropped, (double)d->samples);
		if (!ep->full) {
			ep->full = 1;
			ep->full_since = time_monotonic();
			ep->full_drop = (struct rw_drop){0, 0};
			log_warn("remote-write queue full, dropping the oldest requests",
			         "url=\"%s\" queued_bytes=%zu queued_samples=%zu disk_bytes=%zu "
			         "max_bytes=%zu max_samples=%zu",
			         ep->shown, ep->q.bytes, ep->q.samples,
			         ep->disk ? rw_disk_bytes(ep->disk) : 0, ep->q.max_bytes,
			         ep->q.max_samples);
		}
		ep->full_drop.requests += d->requests;
		ep->full_drop.samples += d->samples;
	} else if (ep->full &&
	           (!ep->q.max_bytes ||
	            (ep->disk ? rw_disk_bytes(ep->disk) : ep->q.bytes) <= ep->q.max_bytes / 2) &&
	           (!ep->q.max_samples || ep->q.samples <= ep->q.max_samples / 2)) {
		/* below half the bound: the senders keep up again */
		ep->full = 0;
		log_info("remote-write queue has room again",
		         "url=\"%s\" dropped_requests=%zu dropped_samples=%zu seconds=%.1f",
		         ep->shown, ep->full_drop.requests, ep->full_drop.samples,
		         time_monotonic() - ep->full_since);
	}
}

/* Makes room on disk for a request of len bytes, so that the queue's files
 * never take more than --remote-write.queue-max-bytes, counted as they may
 * be once every pending request is done (rw_disk_bytes_needed: record
 * headers, done records of segments still in use and .done entries
 * included). The segment being written goes first if nothing in it is
 * pending, then the oldest requests not in flight are dropped (added to *d).
 * -EFBIG: it cannot fit (the request alone is larger than the bound, or what
 * is left is in flight). */
static int ep_disk_room_locked(struct rw_endpoint *ep, size_t len, struct rw_drop *d)
{
	size_t max = ep->q.max_bytes;
	while (max && rw_disk_bytes_needed(ep->disk, len) > max) {
		if (rw_disk_release_idle(ep->disk))
			continue;
		if (!rw_queue_drop_oldest(&ep->q, d))
			return -EFBIG;
	}
	return 0;
}

/* An append to the disk queue failed (a full disk, an I/O error): the
 * request is dropped and counted; logged once when it starts (and when the
 * error changes), with the error. */
static void ep_disk_append_failed_locked(struct rw_endpoint *ep, int rc, size_t samples)
{
	self_inc(ep->dropped, (double)samples);
	if (!ep->disk_failing) {
		ep->disk_failing_since = time_monotonic();
		ep->disk_drop = (struct rw_drop){0, 0};
	}
	if (ep->disk_failing != -rc)
		log_error("remote-write queue: cannot write to disk, new requests dropped until it "
		          "can",
		          "url=\"%s\" err=\"%s\" disk_bytes=%zu", ep->shown, strerror(-rc),
		          rw_disk_bytes(ep->disk));
	ep->disk_failing = -rc;
	ep->disk_drop.requests++;
	ep->disk_drop.samples += samples;
}

/* An append succeeded: the end of a failing state is logged, with what it
 * dropped. */
static void ep_disk_append_ok_locked(struct rw_endpoint *ep)
{
	if (!ep->disk_failing)
		return;
	ep->disk_failing = 0;
	log_info("remote-write queue: writing to disk again",
	         "url=\"%s\" dropped_requests=%zu dropped_samples=%zu seconds=%.1f", ep->shown,
	         ep->disk_drop.requests, ep->disk_drop.samples,
	         time_monotonic() - ep->disk_failing_since);
}

struct snap_ctx {
	struct remote_write *rw;
	int64_t ts;
	int periodic; /* abandoned when stop is set */
	size_t requests, samples, bytes;
};

static int emit_to_queues(void *arg, size_t shard, char *data, size_t len, size_t n)
{
	struct snap_ctx *s = arg;
	struct remote_write *rw = s->rw;
	if ((s->periodic && atomic_load(&rw->stop)) || expired(rw)) {
		free(data);
		return -ECANCELED;
	}
	struct rw_body *b = NULL;
	if (!rw->queue_dir && !(b = rw_body_new(data, len, n)))
		return -ENOMEM;
	s->requests++;
	s->samples += n;
	s->bytes += len;
	for (size_t i = 0; i < rw->nep; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		struct rw_drop d = {0, 0};
		pthread_mutex_lock(&ep->lock);
		struct rw_body *eb = b;
		if (ep->disk) {
			/* on disk before it counts as queued */
			struct rw_disk_record rec;
			int rc = ep_disk_room_locked(ep, len, &d);
			if (!rc)
				rc = rw_disk_append(ep->disk, shard, s->ts, data, len, n, &rec);
			if (rc && rc != -EFBIG) {
				/* the disk failed, not the bound: dropped, not "full" */
				ep_disk_append_failed_locked(ep, rc, n);
				ep_gauges_locked(ep);
				pthread_mutex_unlock(&ep->lock);
				continue;
			}
			if (!rc) { /* else: does not fit the bound, dropped as when full */
				ep_disk_append_ok_locked(ep);
				eb = rw_body_new_disk(ep->disk, &rec, 0);
				if (!eb)
					rw_disk_done(ep->disk, &rec);
			}
		}
		if (!eb || rw_queue_push(&ep->q, shard, eb, &d)) {
			d.requests++;
			d.samples += n;
		}
		if (ep->disk && eb)
			rw_body_unref(eb); /* the queue holds it */
		ep_note_push_locked(ep, &d);
		ep_gauges_locked(ep);
		pthread_cond_broadcast(&ep->cond);
		pthread_mutex_unlock(&ep->lock);
	}
	if (b)
		rw_body_unref(b);
	else
		free(data);
	return 0;
}

/* Encodes one snapshot into every endpoint's queue. Timer or shutdown
 * thread. */
static int snapshot(struct remote_write *rw, int stale, int periodic)
{
	int64_t ts = time_now_ms();
	if (ts <= rw->last_ts)
		ts = rw->last_ts + 1; /* strictly increasing per series, always */
	rw->last_ts = ts;
	struct snap_ctx s = {rw, ts, periodic, 0, 0, 0};
	double t0 = time_monotonic();
	struct rw_encode_opts o = {
	    &rw->ext, ts, rw->max_samples, rw->nshards, 0, -1, emit_to_queues, &s, 0};
	/* Sources whose interface disappeared: their series end with stale
	 * markers, once per disappearance; registry_collect leaves them out
	 * until the interface comes back. */
	for (size_t i = 0; i < registry_nsources(rw->reg); i++) {
		if (registry_source_is_up(rw->reg, i)) {
			rw->ended[i] = 0;
			continue;
		}
		if (rw->ended[i])
			continue;
		rw->ended[i] = 1;
		log_info("interface gone, ending its remote-write series", "interface=%s",
		         registry_source_name(rw->reg, i));
		o.stale = 1;
		o.source = (int)i;
		if (rw_encode(rw->reg, &o))
			log_error("remote-write stale markers failed", "interface=%s",
			          registry_source_name(rw->reg, i));
	}
	/* Keys ended by idle expiry: stale markers at ts, the snapshot one
	 * millisecond later (a key that came back since then restarts after
	 * its marker, never two samples at one timestamp). */
	o.stale = 1;
	o.source = -1;
	o.ended = 1;
	if (rw_encode(rw->reg, &o))
		log_error("remote-write stale markers of expired keys failed", "%s", "");
	o.ended = 0;
	o.ts_ms = s.ts = rw->last_ts = ++ts;
	o.stale = stale;
	int rc = rw_encode(rw->reg, &o);
	for (size_t i = 0; i < rw->nep; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		if (!ep->disk)
			continue;
		pthread_mutex_lock(&ep->lock);
		/* the last timestamp, for a restart after the queue was sent
		 * whole (one 16-byte write, synced with the segment) */
		int trc = rw_disk_store_ts(ep->disk, rw->last_ts);
		int src = rw_disk_sync(ep->disk);
		if (!src)
			src = trc;
		if (src && ep->sync_failing != -src)
			log_error(
			    "remote-write queue: fdatasync failed: what this snapshot wrote may "
			    "not survive a power cut",
			    "url=\"%s\" err=\"%s\"", ep->shown, strerror(-src));
		else if (!src && ep->sync_failing)
			log_info("remote-write queue: fdatasync works again", "url=\"%s\"",
			         ep->shown);
		ep->sync_failing = -src;
		pthread_mutex_unlock(&ep->lock);
	}
	log_debug("remote-write snapshot queued",
	          "ts_ms=%lld stale=%d samples=%zu requests=%zu bytes=%zu seconds=%.3f complete=%d",
	          (long long)ts, stale, s.samples, s.requests, s.bytes, time_monotonic() - t0,
	          rc == 0);
	if (rc == -ECANCELED)
		log_debug("remote-write snapshot abandoned: stopping", "stale=%d", stale);
	else if (rc)
		log_error("remote-write snapshot failed", "err=\"%s\"", strerror(-rc));
	return rc;
}

static void rw_tick(void *arg)
{
	(void)snapshot(arg, 0, 1);
}

/* ---- sending ------------------------------------------------------------ */

static double backoff_delay(struct rw_shard *sh, int attempt, double retry_after)
{
	struct remote_write *rw = sh->ep->rw;
	double d = rw->min_backoff;
	for (int i = 0; i < attempt && d < rw->max_backoff; i++)
		d *= 2;
	if (d > rw->max_backoff)
		d = rw->max_backoff;
	d = d / 2 + d / 2 * ((double)rand_r(&sh->seed) / RAND_MAX); /* jitter */
	if (retry_after >= 0)
		d = retry_after > RW_RETRY_AFTER_MAX ? RW_RETRY_AFTER_MAX : retry_after;
	return d;
}

enum attempt_result { SENT, RETRY, REJECTED, CANCELED };

static enum attempt_result send_one(struct rw_shard *sh, const struct rw_body *b,
                                    double *retry_after)
{
	static const char *const headers[] = {"Content-Encoding: snappy",
	                                      "Content-Type: application/x-protobuf",
	                                      "X-Prometheus-Remote-Write-Version: 0.1.0", NULL};
	struct rw_endpoint *ep = sh->ep;
	struct http_response resp;
	char q[HTTP_CLIENT_BODY_MAX + 1];
	/* Bounded by the timeout, and after stop by the deadline; one in flight
	 * when the deadline passes is abandoned. */
	struct remote_write *rw = ep->rw;
	int stopping = atomic_load(&rw->stop);
	const char *data = b->disk ? sh->buf : b->data;
	int rc = http_client_request_until(sh->http, "POST", ep->url, data, b->len, headers,
	                                   stopping ? gauge_read(&rw->deadline) : INFINITY,
	                                   &rw->abandon, &resp);
	*retry_after = resp.retry_after;
	if (rc == -ECANCELED || rc == -ETIMEDOUT)
		return CANCELED;
	gauge_set(ep->duration, resp.seconds);
	enum attempt_result res;
	pthread_mutex_lock(&ep->lock);
	if (rc == 0 && resp.status >= 200 && resp.status < 300) {
		self_inc(ep->sent, (double)b->nsamples);
		gauge_set(ep->last_success, time_now());
		if (ep->last_ok != 1)
			log_info("remote write succeeded", "url=\"%s\" failed_requests_before=%zu",
			         ep->shown, ep->failed_requests);
		ep->last_ok = 1;
		ep->failed_requests = 0;
		res = SENT;
	} else if (rc == 0 && resp.status >= 400 && resp.status < 500 && resp.status != 429) {
		self_inc(ep->dropped, (double)b->nsamples);
		double now = time_monotonic();
		if (now - ep->last_reject_log >= RW_LOG_4XX_INTERVAL || ep->last_reject_log == 0) {
			log_error("remote write rejected, samples dropped",
			          "url=\"%s\" status=%ld samples=%zu body=%s "
			          "unlogged_rejected_requests=%zu unlogged_rejected_samples=%zu",
			          ep->shown, resp.status, b->nsamples,
			          log_bytes(q, sizeof q, resp.body, resp.body_len),
			          ep->rejected_unlogged.requests, ep->rejected_unlogged.samples);
			ep->last_reject_log = now;
			ep->rejected_unlogged = (struct rw_drop){0, 0};
		} else {
			ep->rejected_unlogged.requests++;
			ep->rejected_unlogged.samples += b->nsamples;
		}
		ep->last_ok = 0;
		res = REJECTED;
	} else {
		self_inc(ep->failed, (double)b->nsamples);
		if (ep->last_ok != 0) {
			if (rc)
				log_warn("remote write failed, retrying", "url=\"%s\" err=\"%s\"",
				         ep->shown, resp.error);
			else
				log_warn("remote write failed, retrying",
				         "url=\"%s\" status=%ld body=%s", ep->shown, resp.status,
				         log_bytes(q, sizeof q, resp.body, resp.body_len));
		}
		ep->last_ok = 0;
		ep->failed_requests++;
		res = RETRY;
	}
	pthread_mutex_unlock(&ep->lock);
	return res;
}

/* Reads an on-disk body into the shard's buffer (b->data stays NULL: the
 * queue's bodies hold no bytes in memory). */
static int shard_read_disk(struct rw_shard *sh, const struct rw_body *b, int fd)
{
	struct rw_endpoint *ep = sh->ep;
	if (b->len > sh->buf_cap) {
		char *nb = realloc(sh->buf, b->len);
		if (!nb)
			return -ENOMEM;
		sh->buf = nb;
		sh->buf_cap = b->len;
	}
	int rc = rw_disk_pread(fd, &b->rec, sh->buf);
	if (rc) {
		pthread_mutex_lock(&ep->lock);
		self_inc(ep->corrupt, 1);
		self_inc(ep->dropped, (double)b->nsamples);
		log_error("remote-write queue: a request on disk is unreadable, dropped",
		          "url=\"%s\" samples=%zu err=\"%s\"", ep->shown, b->nsamples,
		          strerror(-rc));
		pthread_mutex_unlock(&ep->lock);
	}
	return rc;
}

/* One shard of one endpoint: sends its FIFO in order until the queues are
 * closed and it is empty, or the deadline passes. */
static void *sender_thread(void *arg)
{
	struct rw_shard *sh = arg;
	struct rw_endpoint *ep = sh->ep;
	struct remote_write *rw = ep->rw;
	int attempt = 0;
	pthread_mutex_lock(&ep->lock);
	while (!expired(rw)) {
		struct rw_body *b = rw_queue_begin(&ep->q, sh->idx);
		if (b && !b->replayed && ep->q.replayed) {
			/* requests from before a restart go first, in every shard:
			 * a series may hash to another shard than it did then */
			rw_queue_end(&ep->q, sh->idx, 0);
			b = NULL;
			ep_wait(ep, INFINITY);
			continue;
		}
		if (!b) {
			if (atomic_load(&rw->closed))
				break;
			ep_wait(ep, INFINITY);
			continue;
		}
		ep->busy++;
		int fd = b->disk ? rw_disk_fd(b->disk, &b->rec) : -1;
		pthread_mutex_unlock(&ep->lock);
		double retry_after = -1;
		enum attempt_result res;
		if (!b->disk || shard_read_disk(sh, b, fd) == 0)
			res = send_one(sh, b, &retry_after);
		else
			res = REJECTED; /* unreadable on disk: dropped, counted, logged */
		pthread_mutex_lock(&ep->lock);
		ep->busy--;
		if (res == RETRY || res == CANCELED) {
			rw_queue_end(&ep->q, sh->idx, 0);
			if (atomic_load(&rw->disk_shutdown))
				break; /* on disk: sent at the next start */
			if (res == CANCELED)
				continue; /* stop came (send again) or the deadline passed */
			double until = time_monotonic() + backoff_delay(sh, attempt++, retry_after);
			while (!expired(rw) && time_monotonic() < until &&
			       !atomic_load(&rw->disk_shutdown))
				ep_wait(ep, until);
			continue;
		}
		attempt = 0;
		int replayed = b->replayed;
		rw_queue_end(&ep->q, sh->idx, 1);
		ep_gauges_locked(ep);
		if (replayed && ep->q.replayed == 0)
			pthread_cond_broadcast(&ep->cond); /* shards waiting for the replay */
	}
	pthread_mutex_unlock(&ep->lock);
	pthread_mutex_lock(&rw->run_lock);
	rw->running--;
	pthread_cond_broadcast(&rw->run_cond);
	pthread_mutex_unlock(&rw->run_lock);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int replay_one(void *ctx, const struct rw_disk_record *r)
{
	struct rw_endpoint *ep = ctx;
	struct rw_body *b = rw_body_new_disk(ep->disk, r, 1);
	if (!b)
		return -ENOMEM;
	int rc = rw_queue_push(&ep->q, r->shard % ep->rw->nshards, b, &ep->open_drop);
	rw_body_unref(b);
	return rc;
}

/* Opens the endpoint's on-disk queue and puts what it holds back into the
 * memory queue (the bodies stay on disk). */
static int ep_open_disk(struct rw_endpoint *ep, char *err, size_t errlen)
{
	struct remote_write *rw = ep->rw;
	struct rw_disk_stats st;
	/* segments of 1/8 of the bound: done records count against the bound
	 * until their segment is deleted whole, so a full queue frees space in
	 * steps of at most 1/8 */
	size_t seg = ep->q.max_bytes ? ep->q.max_bytes / 8 : RW_DISK_SEGMENT_MAX;
	if (seg < 16384)
		seg = 16384;
	if (seg > RW_DISK_SEGMENT_MAX)
		seg = RW_DISK_SEGMENT_MAX;
	ep->disk = rw_disk_open(rw->queue_dir, ep->url, ep->shown, seg, err, errlen);
	if (!ep->disk)
		return -1;
	/* files are reached from the directory opened now, so after the drop
	 * only the endpoint's directory and files must belong to the user */
	if (rw->queue_chown && rw_disk_chown(ep->disk, rw->queue_uid, rw->queue_gid, err, errlen))
		return -1;
	pthread_mutex_lock(&ep->lock);
	/* A queue left under a larger bound is cut to the bound as it is now,
	 * oldest first (the segment where the cut falls is compacted); the
	 * room check after it is the same as before an append (nothing is in
	 * flight yet, so it always succeeds; it drops nothing after a cut). */
	rw_disk_set_bound(ep->disk, ep->q.max_bytes);
	rw_disk_set_shards(ep->disk, rw->nshards);
	int rc = rw_disk_replay(ep->disk, replay_one, ep, &st, err, errlen);
	if (!rc)
		(void)ep_disk_room_locked(ep, 0, &ep->open_drop);
	struct rw_drop trimmed = ep->open_drop;
	trimmed.requests += st.trimmed;
	trimmed.samples += st.trimmed_samples;
	ep_gauges_locked(ep);
	pthread_mutex_unlock(&ep->lock);
	if (rc)
		return -1;
	if (trimmed.requests) {
		self_inc(ep->dropped, (double)trimmed.samples);
		log_warn(
		    "remote-write queue on disk over --remote-write.queue-max-bytes: the oldest "
		    "requests dropped",
		    "url=\"%s\" dropped_requests=%zu dropped_samples=%zu bytes_found=%zu "
		    "bytes=%zu max_bytes=%zu",
		    ep->shown, trimmed.requests, trimmed.samples, st.bytes_found,
		    rw_disk_bytes(ep->disk), ep->q.max_bytes);
	}
	self_inc(ep->replayed, (double)st.replayed);
	self_inc(ep->corrupt, (double)st.corrupt);
	/* new snapshots come after the replayed and after the last one queued
	 * before (stored: the queue may have been sent whole) */
	if (st.max_ts_ms > rw->last_ts)
		rw->last_ts = st.max_ts_ms;
	char dn[17];
	rw_disk_dirname(ep->url, dn);
	log_info("remote-write queue on disk",
	         "url=\"%s\" dir=\"%s/%s\" requests=%zu samples=%zu "
	         "bytes=%zu corrupt_records=%zu corrupt_bytes=%zu last_ts_ms=%lld",
	         ep->shown, rw->queue_dir, dn, st.replayed, ep->q.samples, rw_disk_bytes(ep->disk),
	         st.corrupt, st.corrupt_bytes, (long long)st.max_ts_ms);
	int64_t now = time_now_ms();
	if (st.max_ts_ms > now + (int64_t)(rw->interval * 1000))
		log_warn("remote-write queue: the clock is behind the last timestamp queued "
		         "before: new snapshots are stamped 1 ms apart after it until the clock "
		         "passes it",
		         "url=\"%s\" last_ts_ms=%lld behind_ms=%lld", ep->shown,
		         (long long)st.max_ts_ms, (long long)(st.max_ts_ms - now));
	if (st.serial)
		log_info(
		    "remote-write queue on disk written with another --remote-write.max-shards: "
		    "replayed on one shard, oldest first (a series keeps its order)",
		    "url=\"%s\" requests=%zu max_shards=%zu", ep->shown, st.replayed, rw->nshards);
	if (st.corrupt)
		log_warn("remote-write queue: damaged records skipped (a torn tail after a crash, "
		         "or a damaged file)",
		         "url=\"%s\" dir=\"%s/%s\" corrupt_records=%zu corrupt_bytes=%zu",
		         ep->shown, rw->queue_dir, dn, st.corrupt, st.corrupt_bytes);
	return 0;
}

/* Queues under --remote-write.queue-dir whose endpoint is not configured
 * any more are left alone, and said so. */
static void log_stray_queues(struct remote_write *rw)
{
	DIR *dh = opendir(rw->queue_dir);
	if (!dh)
		return;
	struct dirent *de;
	while ((de = readdir(dh))) {
		if (strlen(de->d_name) != 16 || strspn(de->d_name, "0123456789abcdef") != 16)
			continue;
		int known = 0;
		for (size_t i = 0; i < rw->nep && !known; i++) {
			char dn[17];
			rw_disk_dirname(rw->ep[i].url, dn);
			known = !strcmp(dn, de->d_name);
		}
		if (!known)
			log_info(
			    "remote-write queue of an endpoint no longer configured: left alone",
			    "dir=\"%s/%s\"", rw->queue_dir, de->d_name);
	}
	closedir(dh);
}

struct remote_write *remote_write_new(const struct remote_write_opts *o, struct registry *reg,
                                      char *err, size_t errlen)
{
	struct remote_write *rw = calloc(1, sizeof *rw);
	if (!rw)
		goto oom;
	rw->reg = reg;
	rw->ext.labels = o->external_labels;
	rw->ext.n = o->nexternal_labels;
	rw->interval = o->interval;
	rw->min_backoff = o->min_backoff;
	rw->max_backoff = o->max_backoff;
	rw->max_samples = o->max_samples_per_send ? o->max_samples_per_send : 1;
	rw->nshards = o->max_shards ? o->max_shards : 1;
	rw->queue_dir = o->queue_dir;
	rw->queue_chown = o->queue_chown;
	rw->queue_uid = o->queue_uid;
	rw->queue_gid = o->queue_gid;
	atomic_init(&rw->stop, 0);
	atomic_init(&rw->closed, 0);
	atomic_init(&rw->abandon, 0);
	atomic_init(&rw->disk_shutdown, 0);
	pthread_mutex_init(&rw->run_lock, NULL);
	cond_init_monotonic(&rw->run_cond);
	timer_init(&rw->timer,
	           &(struct timer_opts){
	               .interval = o->interval, .tick = rw_tick, .arg = rw, .stop = &rw->stop});
	if (rw->nshards > REMOTE_WRITE_MAX_SHARDS) {
		snprintf(err, errlen, "at most %d shards per endpoint", REMOTE_WRITE_MAX_SHARDS);
		goto fail;
	}
	if (o->interval <= 0) {
		snprintf(err, errlen, "the interval must be positive");
		goto fail;
	}
	rw->ep = calloc(o->nurls ? o->nurls : 1, sizeof *rw->ep);
	size_t nsrc = registry_nsources(reg); /* sources are fixed by now */
	rw->ended = calloc(nsrc ? nsrc : 1, 1);
	if (!rw->ep || !rw->ended)
		goto oom;
	registry_keep_ended(reg); /* keys ended by idle expiry: their stale markers */
	for (size_t i = 0; i < o->nurls; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		rw->nep = i + 1;
		ep->rw = rw;
		ep->last_ok = -1;
		pthread_mutex_init(&ep->lock, NULL);
		cond_init_monotonic(&ep->cond);
		if (rw_queue_init(&ep->q, rw->nshards, o->queue_max_bytes, o->queue_max_samples))
			goto oom;
		ep->url = strdup(o->urls[i]);
		char shown[512];
		if (url_redact(o->urls[i], shown, sizeof shown)) {
			/* shown: <url too long> */
		}
		/* Two endpoints that differ only in what redaction hides (a
		 * query, a password) or past the length shown would share one
		 * url label, and the self-metrics would hold duplicate series:
		 * the second and later get "#N" (N their place on the command
		 * line; a fragment is never shown, so this cannot be one). */
		for (size_t j = 0; j < i; j++)
			if (!strncmp(rw->ep[j].shown, shown, strlen(shown)) &&
			    (rw->ep[j].shown[strlen(shown)] == '\0' ||
			     rw->ep[j].shown[strlen(shown)] == '#')) {
				char tagged[sizeof shown + 32];
				snprintf(tagged, sizeof tagged, "%s#%zu", shown, i + 1);
				ep->shown = strdup(tagged);
				break;
			}
		if (!ep->shown)
			ep->shown = strdup(shown);
		ep->shards = calloc(rw->nshards, sizeof *ep->shards);
		if (!ep->url || !ep->shown || !ep->shards)
			goto oom;
		for (size_t s = 0; s < rw->nshards; s++) {
			struct rw_shard *sh = &ep->shards[s];
			sh->ep = ep;
			sh->idx = s;
			sh->seed = (unsigned)(time_now_ms() ^ (int64_t)(i * 131 + s) * 7919);
			sh->http = http_client_new(&o->http, err, errlen);
			if (!sh->http)
				goto fail;
			for (size_t h = 0; h < o->nheaders; h++)
				if (http_client_add_header(sh->http, o->headers[h],
				                           rw_reserved_headers, err, errlen))
					goto fail;
		}
		const char *u = ep->shown;
#define RW_SELF(field, name, help, type, l2, v2)                                                   \
	do {                                                                                       \
		ep->field = registry_self_add(reg, name, help, type, "url", u, l2, v2);            \
		if (!ep->field) {                                                                  \
			snprintf(err, errlen, "too many self-metrics");                            \
			goto fail;                                                                 \
		}                                                                                  \
	} while (0)
		RW_SELF(sent, "promacct_remote_write_samples_total",
		        "Samples by outcome: sent (accepted), failed (a request that will be "
		        "retried), dropped (rejected with a 4xx or pushed out of a full queue).",
		        METRIC_COUNTER, "result", "sent");
		RW_SELF(failed, "promacct_remote_write_samples_total", NULL, METRIC_COUNTER,
		        "result", "failed");
		RW_SELF(dropped, "promacct_remote_write_samples_total", NULL, METRIC_COUNTER,
		        "result", "dropped");
		RW_SELF(queue, "promacct_remote_write_queue_samples",
		        "Samples pending for the endpoint: queued or in flight.", METRIC_GAUGE,
		        NULL, NULL);
		RW_SELF(queue_bytes, "promacct_remote_write_queue_bytes",
		        "Bytes of compressed requests pending for the endpoint (bounded by "
		        "--remote-write.queue-max-bytes).",
		        METRIC_GAUGE, NULL, NULL);
		RW_SELF(shards_max, "promacct_remote_write_shards_max",
		        "Sender shards of the endpoint (--remote-write.max-shards).", METRIC_GAUGE,
		        NULL, NULL);
		RW_SELF(shards_in_use, "promacct_remote_write_shards_in_use",
		        "Sender shards with requests queued or in flight.", METRIC_GAUGE, NULL,
		        NULL);
		RW_SELF(last_success, "promacct_remote_write_last_success_timestamp_seconds",
		        "Time of the last accepted request since the Unix epoch, in seconds.",
		        METRIC_GAUGE, NULL, NULL);
		RW_SELF(duration, "promacct_remote_write_request_duration_seconds",
		        "Duration of the last request to the endpoint, in seconds.", METRIC_GAUGE,
		        NULL, NULL);
		if (rw->queue_dir) {
			RW_SELF(disk_bytes, "promacct_remote_write_disk_bytes",
			        "Bytes of the endpoint's on-disk queue (--remote-write.queue-dir).",
			        METRIC_GAUGE, NULL, NULL);
			RW_SELF(replayed, "promacct_remote_write_disk_replayed_requests_total",
			        "Requests read back from the on-disk queue at start-up.",
			        METRIC_COUNTER, NULL, NULL);
			RW_SELF(corrupt, "promacct_remote_write_disk_corrupt_records_total",
			        "Records of the on-disk queue skipped as torn or damaged.",
			        METRIC_COUNTER, NULL, NULL);
			if (ep_open_disk(ep, err, errlen))
				goto fail;
		}
#undef RW_SELF
		gauge_set(ep->shards_max, (double)rw->nshards);
	}
	if (rw->queue_dir)
		log_stray_queues(rw);
	return rw;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	remote_write_free(rw);
	return NULL;
}

static int start_senders(struct remote_write *rw)
{
	for (size_t i = 0; i < rw->nep; i++)
		for (size_t s = 0; s < rw->nshards; s++) {
			struct rw_shard *sh = &rw->ep[i].shards[s];
			pthread_mutex_lock(&rw->run_lock);
			rw->running++;
			pthread_mutex_unlock(&rw->run_lock);
			if (pthread_create(&sh->thread, NULL, sender_thread, sh)) {
				pthread_mutex_lock(&rw->run_lock);
				rw->running--;
				pthread_mutex_unlock(&rw->run_lock);
				return -EAGAIN;
			}
			sh->started = 1;
		}
	return 0;
}

/* Joins the senders (after stop or close) and logs what is left unsent.
 * Returns the samples not accepted. */
static size_t join_senders(struct remote_write *rw)
{
	size_t lost = 0;
	/* until they end or the deadline passes; then requests in flight are
	 * abandoned */
	pthread_mutex_lock(&rw->run_lock);
	while (rw->running > 0) {
		double left = time_left(rw);
		if (left <= 0) {
			atomic_store(&rw->abandon, 1);
			break;
		}
		cond_wait_signal_until(&rw->run_cond, &rw->run_lock, time_monotonic() + left);
	}
	pthread_mutex_unlock(&rw->run_lock);
	for (size_t i = 0; i < rw->nep; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		int joined = 0;
		for (size_t s = 0; s < rw->nshards; s++)
			if (ep->shards[s].started) {
				pthread_join(ep->shards[s].thread, NULL);
				ep->shards[s].started = 0;
				joined = 1;
			}
		if (!joined)
			continue; /* never started, or said already */
		pthread_mutex_lock(&ep->lock);
		if (ep->q.samples && ep->disk)
			log_info(
			    "remote write stopped: the samples unsent stay on disk, sent at the "
			    "next start",
			    "url=\"%s\" samples=%zu requests_bytes=%zu disk_bytes=%zu", ep->shown,
			    ep->q.samples, ep->q.bytes, rw_disk_bytes(ep->disk));
		else if (ep->q.samples)
			log_warn("remote write stopped with samples unsent",
			         "url=\"%s\" samples=%zu requests_bytes=%zu", ep->shown,
			         ep->q.samples, ep->q.bytes);
		if (ep->full)
			log_warn("remote-write queue was full until the end",
			         "url=\"%s\" dropped_requests=%zu dropped_samples=%zu", ep->shown,
			         ep->full_drop.requests, ep->full_drop.samples);
		lost += ep->q.samples;
		pthread_mutex_unlock(&ep->lock);
	}
	return lost;
}

int remote_write_start(struct remote_write *rw, char *err, size_t errlen)
{
	if (start_senders(rw) || timer_start(&rw->timer)) {
		snprintf(err, errlen, "cannot start the remote-write threads");
		rw_request_stop(rw, time_monotonic());
		rw_close(rw);
		(void)join_senders(rw);
		return -EAGAIN;
	}
	rw->started = 1;
	return 0;
}

int remote_write_send_once(struct remote_write *rw, double deadline)
{
	/* stop (no periodic snapshots), then deliver until the deadline */
	rw_request_stop(rw, deadline);
	int rc = start_senders(rw) ? -1 : 0;
	if (!rc && snapshot(rw, 0, 0))
		rc = -1;
	rw_close(rw);
	size_t lost = join_senders(rw);
	for (size_t i = 0; i < rw->nep; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		double dropped = gauge_read(ep->dropped);
		if (ep->q.samples || dropped > 0) {
			log_error("remote write incomplete",
			          "url=\"%s\" samples_unsent=%zu samples_dropped=%.0f", ep->shown,
			          ep->q.samples, dropped);
			rc = -1;
		}
	}
	(void)lost;
	return rc;
}

void remote_write_abandon(struct remote_write *rw)
{
	atomic_store(&rw->abandon, 1);
	rw_request_stop(rw, 0);
	pthread_mutex_lock(&rw->run_lock);
	pthread_cond_broadcast(&rw->run_cond);
	pthread_mutex_unlock(&rw->run_lock);
}

void remote_write_shutdown(struct remote_write *rw, double deadline)
{
	if (!rw)
		return;
	/* With a disk queue every request is safe on disk once appended: the
	 * senders stop retrying now (a failed request ends its shard), and go
	 * on delivering while the endpoint accepts, until the queue is empty or
	 * the deadline passes; what is left is sent at the next start. */
	if (rw->queue_dir)
		atomic_store(&rw->disk_shutdown, 1);
	rw_request_stop(rw, deadline);
	timer_stop(&rw->timer);
	if (rw->started) {
		/* The final values, then stale markers: the series end here. */
		if (!snapshot(rw, 0, 0))
			(void)snapshot(rw, 1, 0);
		rw->started = 0;
	}
	rw_close(rw);
	(void)join_senders(rw);
}

void remote_write_free(struct remote_write *rw)
{
	if (!rw)
		return;
	rw->started = 0; /* no graceful work from here: shutdown was not called */
	remote_write_shutdown(rw, time_monotonic());
	timer_destroy(&rw->timer);
	for (size_t i = 0; i < rw->nep; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		rw_queue_free(&ep->q); /* before the disk; what is queued stays on disk */
		rw_disk_close(ep->disk);
		if (ep->shards)
			for (size_t s = 0; s < rw->nshards; s++) {
				http_client_free(ep->shards[s].http);
				free(ep->shards[s].buf);
			}
		free(ep->shards);
		free(ep->url);
		free(ep->shown);
		pthread_mutex_destroy(&ep->lock);
		pthread_cond_destroy(&ep->cond);
	}
	free(rw->ep);
	free(rw->ended);
	pthread_mutex_destroy(&rw->run_lock);
	pthread_cond_destroy(&rw->run_cond);
	free(rw);
}
