/* DESIGN: Prometheus remote write 1.0.
 *
 * Threads: one snapshot timer, one sender per endpoint. Every
 * --remote-write.interval the timer walks the registry once (no lock that
 * capture waits on) and encodes it into WriteRequest protobufs of at most
 * max-samples-per-send samples, snappy block compressed; each body is copied
 * into every endpoint's queue. A sender owns its endpoint's HTTP client and
 * sends its queue oldest first, one request at a time: 2xx pops it; 5xx,
 * 429 and transport errors keep it and retry after an exponential backoff
 * with jitter (Retry-After honoured); other 4xx drop it (logged, counted).
 * Because requests of one endpoint go out in snapshot order and every
 * snapshot has a strictly larger timestamp, per-series timestamps increase
 * strictly on the wire and nothing accepted is ever resent. While an
 * endpoint is down, its queue grows up to --remote-write.queue-max-samples;
 * beyond that the oldest queued requests are dropped and counted, so memory
 * stays bounded. Endpoints never wait for each other.
 *
 * Encoding: labels of a series are merged from the series labels and the
 * external labels (series labels win), empty values dropped, sorted by name
 * with __name__ and le inserted in place. Strings are copied into a per-batch
 * arena, so the registry walk never has to outlive a batch. */
#include "promacct/remote_write.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promacct/http_client.h"
#include "promacct/log.h"
#include "remote.pb-c.h"

#define ARENA_BLOCK         (4 * 1024 * 1024) /* one block holds a 2000-sample batch */
#define RW_MAX_LABELS       64                /* labels per series, external ones included */
#define RW_LOG_4XX_INTERVAL 10.0              /* seconds between logged rejections */
#define RW_RETRY_AFTER_MAX  300.0

typedef Prometheus__TimeSeries TimeSeries;
typedef Prometheus__Label Label;
typedef Prometheus__Sample Sample;
typedef Prometheus__MetricMetadata MetricMetadata;

double remote_write_stale_nan(void)
{
	uint64_t bits = 0x7ff0000000000002ull;
	double d;
	memcpy(&d, &bits, sizeof d);
	return d;
}

/* ---- arena -------------------------------------------------------------- */

struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct arena_block *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct arena_block *b = a->head;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
		b = malloc(sizeof *b + cap);
		if (!b)
			return NULL;
		b->next = a->head;
		b->used = 0;
		b->cap = cap;
		a->head = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

static char *arena_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = arena_alloc(a, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static void arena_reset(struct arena *a)
{
	struct arena_block *b = a->head;
	if (!b)
		return;
	/* keep the newest block, free the rest */
	struct arena_block *rest = b->next;
	b->next = NULL;
	b->used = 0;
	while (rest) {
		struct arena_block *n = rest->next;
		free(rest);
		rest = n;
	}
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_block *n = a->head->next;
		free(a->head);
		a->head = n;
	}
}

/* ---- encoder (a registry collector) ------------------------------------- */

#define RW_MAX_LE (HISTOGRAM_MAX_BUCKETS + 1)

struct encoder {
	struct collector c;
	const struct rw_label_set *ext;
	int64_t ts;
	size_t max_samples;
	int stale;
	int (*emit)(void *ctx, char *body, size_t len, size_t nsamples);
	void *ctx;
	int err;

	struct arena arena; /* everything of the current batch */
	TimeSeries **series;
	size_t nseries;
	size_t bound; /* upper bound of the batch's packed size */
	MetricMetadata **meta;
	size_t nmeta, meta_cap;
	int meta_sent;

	/* the current family: its four __name__ labels (plain, _bucket, _sum,
	 * _count), built once per family and batch */
	const char *family;
	Label *names[4];
	/* le labels of this batch, keyed by the (stable) le string pointer */
	const char *le_key[RW_MAX_LE];
	Label *le_label[RW_MAX_LE];
	size_t nle;

	/* the current series: its labels sorted by name, without __name__ and
	 * le; where those two go; the packed size of the labels */
	const struct series_labels *cur;
	Label *tmpl[RW_MAX_LABELS];
	size_t ntmpl;
	size_t pos_name, pos_le;
	size_t tmpl_bytes;
	int tmpl_valid;

	struct buf packed;
	struct buf compressed; /* reused: fresh large buffers cost page faults */
};

/* Packed size bound of a Label with these string lengths: tag + length of
 * the Label itself, then two tagged, length-prefixed strings. */
static size_t label_bound(size_t nl, size_t vl)
{
	return 1 + 5 + 1 + 5 + nl + 1 + 5 + vl;
}

/* A TimeSeries wrapper (tag + length) and its one Sample (tag + length,
 * double, int64 varint). */
#define SERIES_BOUND (1 + 5 + 1 + 5 + 1 + 8 + 1 + 10)

static void enc_fail(struct encoder *e, int err)
{
	if (!e->err)
		e->err = err;
	e->c.stop = 1;
}

static void enc_new_batch(struct encoder *e)
{
	e->nseries = 0;
	e->bound = 0;
	arena_reset(&e->arena);
	e->tmpl_valid = 0;
	e->names[0] = NULL;
	e->nle = 0;
}

static int enc_flush(struct encoder *e)
{
	if (e->nseries == 0 && (e->meta_sent || e->nmeta == 0))
		return 0;
	Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
	req.n_timeseries = e->nseries;
	req.timeseries = e->series;
	size_t bound = e->bound + 16;
	if (!e->meta_sent) {
		req.n_metadata = e->nmeta;
		req.metadata = e->meta;
		for (size_t i = 0; i < e->nmeta; i++)
			bound += 1 + 5 + 1 + 5 +
			         label_bound(strlen(e->meta[i]->metric_family_name),
			                     strlen(e->meta[i]->help)) +
			         2;
	}
	/* The bound replaces a get_packed_size pass over every series. */
	buf_reset(&e->packed);
	if (buf_reserve(&e->packed, bound))
		return -ENOMEM;
	size_t plen = prometheus__write_request__pack(&req, (uint8_t *)e->packed.data);
	if (plen > bound)
		abort(); /* the bound is wrong: memory is already corrupt */
	size_t clen = snappy_max_compressed_length(plen);
	buf_reset(&e->compressed);
	if (buf_reserve(&e->compressed, clen ? clen : 1))
		return -ENOMEM;
	if (snappy_compress(e->packed.data, plen, e->compressed.data, &clen) != SNAPPY_OK)
		return -EIO;
	char *out = malloc(clen ? clen : 1);
	if (!out)
		return -ENOMEM;
	memcpy(out, e->compressed.data, clen);
	size_t n = e->nseries;
	e->meta_sent = 1;
	enc_new_batch(e);
	return e->emit(e->ctx, out, clen, n);
}

static Prometheus__MetricMetadata__MetricType meta_type(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER:
		return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER;
	case METRIC_GAUGE:
		return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE;
	default:
		return PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM;
	}
}

static void enc_family(struct collector *c, const char *name, const char *help,
                       enum metric_type type)
{
	struct encoder *e = (struct encoder *)c;
	e->family = name;
	e->names[0] = NULL;
	if (e->meta_sent || !help)
		return;
	/* Metadata goes with the first request of a snapshot; it lives in
	 * malloc'd memory (not the arena) until then. */
	if (e->nmeta == e->meta_cap) {
		size_t ncap = e->meta_cap ? e->meta_cap * 2 : 32;
		MetricMetadata **nm = realloc(e->meta, ncap * sizeof *nm);
		if (!nm) {
			enc_fail(e, -ENOMEM);
			return;
		}
		e->meta = nm;
		e->meta_cap = ncap;
	}
	MetricMetadata *m = malloc(sizeof *m);
	if (!m) {
		enc_fail(e, -ENOMEM);
		return;
	}
	prometheus__metric_metadata__init(m);
	m->type = meta_type(type);
	m->metric_family_name = (char *)name; /* static strings */
	m->help = (char *)help;
	m->unit = (char *)"";
	e->meta[e->nmeta++] = m;
}

static Label *new_label(struct encoder *e, const char *name, const char *value)
{
	Label *lb = arena_alloc(&e->arena, sizeof *lb);
	if (lb) {
		prometheus__label__init(lb);
		lb->name = (char *)name;
		lb->value = (char *)value;
	}
	return lb;
}

/* The four __name__ labels of the current family, once per batch. */
static int enc_build_names(struct encoder *e)
{
	static const char *const suffix[] = {"", "_bucket", "_sum", "_count"};
	size_t n1 = strlen(e->family);
	for (int k = 0; k < 4; k++) {
		size_t n2 = strlen(suffix[k]);
		char *s = arena_alloc(&e->arena, n1 + n2 + 1);
		if (!s)
			return -ENOMEM;
		memcpy(s, e->family, n1);
		memcpy(s + n1, suffix[k], n2 + 1);
		if (!(e->names[k] = new_label(e, "__name__", s)))
			return -ENOMEM;
	}
	return 0;
}

static Label *enc_le_label(struct encoder *e, const char *le)
{
	for (size_t i = 0; i < e->nle; i++)
		if (e->le_key[i] == le)
			return e->le_label[i];
	if (e->nle == RW_MAX_LE)
		return NULL;
	Label *lb = new_label(e, "le", le); /* le texts live in the layout */
	if (lb) {
		e->le_key[e->nle] = le;
		e->le_label[e->nle++] = lb;
	}
	return lb;
}

/* Builds the sorted label template of the current series. Label names and
 * the extra (range) values are stable for the whole walk; the fixed values
 * may not be (the ip text), so those are copied. */
static int enc_build_template(struct encoder *e)
{
	const struct series_labels *l = e->cur;
	struct label all[RW_MAX_LABELS];
	int copy[RW_MAX_LABELS];
	size_t n = 0;
	for (size_t i = 0; i < l->nfixed && n < RW_MAX_LABELS; i++, n++) {
		all[n] = l->fixed[i];
		copy[n] = 1;
	}
	for (size_t i = 0; i < l->nextra && n < RW_MAX_LABELS; i++, n++) {
		all[n] = l->extra[i];
		copy[n] = 0;
	}
	size_t nseries = n;
	for (size_t i = 0; i < e->ext->n && n < RW_MAX_LABELS; i++) {
		int dup = 0; /* a series label wins over an external one */
		for (size_t j = 0; j < nseries && !dup; j++)
			dup = !strcmp(all[j].name, e->ext->labels[i].name);
		if (!dup) {
			all[n] = e->ext->labels[i];
			copy[n++] = 0;
		}
	}
	e->ntmpl = 0;
	e->tmpl_bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (!all[i].value || !all[i].value[0])
			continue; /* empty label values are dropped */
		const char *v = all[i].value;
		if (copy[i] && !(v = arena_strdup(&e->arena, v)))
			return -ENOMEM;
		Label *lb = new_label(e, all[i].name, v);
		if (!lb)
			return -ENOMEM;
		e->tmpl_bytes += label_bound(strlen(lb->name), strlen(v));
		size_t k = e->ntmpl; /* insertion sort by name */
		while (k > 0 && strcmp(e->tmpl[k - 1]->name, lb->name) > 0) {
			e->tmpl[k] = e->tmpl[k - 1];
			k--;
		}
		e->tmpl[k] = lb;
		e->ntmpl++;
	}
	/* where __name__ and le go in byte order */
	e->pos_name = e->pos_le = e->ntmpl;
	for (size_t k = e->ntmpl; k > 0; k--) {
		if (strcmp(e->tmpl[k - 1]->name, "__name__") > 0)
			e->pos_name = k - 1;
		if (strcmp(e->tmpl[k - 1]->name, "le") > 0)
			e->pos_le = k - 1;
	}
	e->tmpl_valid = 1;
	return 0;
}

static void enc_series(struct collector *c, const struct series_labels *l)
{
	struct encoder *e = (struct encoder *)c;
	e->cur = l;
	e->tmpl_valid = 0;
}

static void enc_sample(struct collector *c, enum sample_kind kind, const char *le, double value)
{
	struct encoder *e = (struct encoder *)c;
	int rc;

	if (!e->names[0] && (rc = enc_build_names(e))) {
		enc_fail(e, rc);
		return;
	}
	if (!e->tmpl_valid && (rc = enc_build_template(e))) {
		enc_fail(e, rc);
		return;
	}
	Label *name = e->names[kind];
	Label *lel = le ? enc_le_label(e, le) : NULL;
	size_t nl = e->ntmpl + 1 + (le ? 1 : 0);
	Label **labels = arena_alloc(&e->arena, nl * sizeof *labels);
	TimeSeries *ts = arena_alloc(&e->arena, sizeof *ts + sizeof(Sample) + sizeof(Sample *));
	if (!labels || !ts || (le && !lel)) {
		enc_fail(e, -ENOMEM);
		return;
	}
	Sample *s = (Sample *)(ts + 1);
	Sample **sp = (Sample **)(s + 1);
	/* the template with __name__ (and le) inserted at their places */
	size_t o = 0;
	for (size_t t = 0; t <= e->ntmpl; t++) {
		if (t == e->pos_name)
			labels[o++] = name;
		if (le && t == e->pos_le)
			labels[o++] = lel;
		if (t < e->ntmpl)
			labels[o++] = e->tmpl[t];
	}
	prometheus__sample__init(s);
	s->value = e->stale ? remote_write_stale_nan() : value;
	s->timestamp = e->ts;
	*sp = s;
	prometheus__time_series__init(ts);
	ts->n_labels = nl;
	ts->labels = labels;
	ts->n_samples = 1;
	ts->samples = sp;
	e->series[e->nseries++] = ts;
	e->bound += SERIES_BOUND + e->tmpl_bytes + label_bound(8, strlen(name->value)) +
	            (le ? label_bound(2, strlen(le)) : 0);
	if (e->nseries == e->max_samples) {
		rc = enc_flush(e);
		if (rc)
			enc_fail(e, rc);
	}
}

/* remote_write_encode over every live source (source < 0) or over one
 * source only. */
static int encode(struct registry *reg, const struct rw_label_set *ext, int64_t ts_ms,
                  size_t max_samples, int stale, int source,
                  int (*emit)(void *ctx, char *body, size_t len, size_t nsamples), void *ctx)
{
	struct encoder e;
	int rc;
	memset(&e, 0, sizeof e);
	e.c.family = enc_family;
	e.c.series = enc_series;
	e.c.sample = enc_sample;
	e.ext = ext;
	e.ts = ts_ms;
	e.max_samples = max_samples ? max_samples : 1;
	e.stale = stale;
	e.emit = emit;
	e.ctx = ctx;
	buf_init(&e.packed, BUF_DEFAULT_MAX);
	buf_init(&e.compressed, BUF_DEFAULT_MAX);
	e.series = malloc(e.max_samples * sizeof *e.series);
	if (!e.series) {
		rc = -ENOMEM;
		goto out;
	}
	rc = source < 0 ? registry_collect(reg, &e.c)
	                : registry_collect_source(reg, (size_t)source, &e.c);
	if (!rc)
		rc = e.err;
	if (!rc)
		rc = enc_flush(&e);
out:
	for (size_t i = 0; i < e.nmeta; i++)
		free(e.meta[i]);
	free(e.meta);
	free(e.series);
	arena_free(&e.arena);
	buf_free(&e.packed);
	buf_free(&e.compressed);
	return rc;
}

int remote_write_encode(struct registry *reg, const struct rw_label_set *ext, int64_t ts_ms,
                        size_t max_samples, int stale,
                        int (*emit)(void *ctx, char *body, size_t len, size_t nsamples), void *ctx)
{
	return encode(reg, ext, ts_ms, max_samples, stale, -1, emit, ctx);
}

/* ---- delivery ----------------------------------------------------------- */

struct rw_request {
	struct rw_request *next;
	char *body;
	size_t len;
	size_t nsamples;
};

struct rw_endpoint {
	struct remote_write *rw;
	char *url;
	char *shown; /* url without password and query (url_redact): label, logs */
	http_client *http;
	pthread_t thread;
	int started;
	/* queue, under rw->lock */
	struct rw_request *head, *tail;
	size_t queued; /* samples */
	int sending;   /* head is in flight: never dropped from under it */
	unsigned int seed;
	int last_ok;
	double last_reject_log;
	gauge_t *sent, *failed, *dropped, *queue, *last_success, *duration;
};

struct remote_write {
	struct registry *reg;
	struct rw_label_set ext;
	struct rw_endpoint *ep;
	size_t nep;
	double interval, min_backoff, max_backoff, timeout;
	size_t max_samples, queue_max;
	int64_t last_ts;
	unsigned char *ended; /* per source: its stale markers were sent */

	pthread_mutex_t lock;
	pthread_cond_t cond; /* queue changes, stop */
	int stop;            /* timer: stop now */
	int draining;        /* senders: finish by drain_deadline */
	double drain_deadline;
	pthread_t timer;
	int timer_started;
};

static const char *const rw_reserved_headers[] = {"content-encoding", "content-type",
                                                  "x-prometheus-remote-write-version", NULL};

struct remote_write *remote_write_new(const struct config *cfg, struct registry *reg, char *err,
                                      size_t errlen)
{
	struct remote_write *rw = calloc(1, sizeof *rw);
	if (!rw)
		goto oom;
	rw->reg = reg;
	rw->ext.labels = cfg->rw_labels;
	rw->ext.n = cfg->nrw_labels;
	rw->interval = cfg->rw_interval;
	rw->min_backoff = cfg->rw_min_backoff;
	rw->max_backoff = cfg->rw_max_backoff;
	rw->timeout = cfg->rw_http.timeout;
	rw->max_samples = cfg->rw_max_samples_per_send;
	rw->queue_max = cfg->rw_queue_max_samples;
	pthread_mutex_init(&rw->lock, NULL);
	cond_init_monotonic(&rw->cond);
	rw->ep = calloc(cfg->nrw_urls, sizeof *rw->ep);
	rw->ended = calloc(reg->nsources ? reg->nsources : 1, 1); /* sources are fixed by now */
	if (!rw->ep || !rw->ended)
		goto oom;
	for (size_t i = 0; i < cfg->nrw_urls; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		rw->nep = i + 1;
		ep->rw = rw;
		ep->last_ok = -1;
		ep->seed = (unsigned)(time_now_ms() ^ (int64_t)i * 7919);
		ep->url = strdup(cfg->rw_urls[i]);
		char shown[512];
		if (url_redact(cfg->rw_urls[i], shown, sizeof shown)) {
			/* shown: <url too long> */
		}
		ep->shown = strdup(shown);
		if (!ep->url || !ep->shown)
			goto oom;
		ep->http = http_client_new(&cfg->rw_http, err, errlen);
		if (!ep->http)
			goto fail;
		for (size_t h = 0; h < cfg->nrw_headers; h++)
			if (http_client_add_header(ep->http, cfg->rw_headers[h],
			                           rw_reserved_headers, err, errlen))
				goto fail;
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
		        "Samples waiting to be sent to the endpoint.", METRIC_GAUGE, NULL, NULL);
		RW_SELF(last_success, "promacct_remote_write_last_success_timestamp_seconds",
		        "Time of the last accepted request since the Unix epoch, in seconds.",
		        METRIC_GAUGE, NULL, NULL);
		RW_SELF(duration, "promacct_remote_write_request_duration_seconds",
		        "Duration of the last request to the endpoint, in seconds.", METRIC_GAUGE,
		        NULL, NULL);
#undef RW_SELF
	}
	return rw;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	remote_write_free(rw);
	return NULL;
}

/* Appends to one endpoint's queue (rw->lock held), dropping the oldest
 * requests beyond the bound. Takes ownership of body. */
static void enqueue_locked(struct rw_endpoint *ep, char *body, size_t len, size_t n)
{
	struct remote_write *rw = ep->rw;
	struct rw_request *r = malloc(sizeof *r);
	if (!r) {
		free(body);
		self_inc(ep->dropped, (double)n);
		return;
	}
	*r = (struct rw_request){NULL, body, len, n};
	if (ep->tail)
		ep->tail->next = r;
	else
		ep->head = r;
	ep->tail = r;
	ep->queued += n;
	size_t dropped = 0;
	struct rw_request **pp = ep->sending ? &ep->head->next : &ep->head;
	while (ep->queued > rw->queue_max && *pp && *pp != r) {
		struct rw_request *old = *pp;
		*pp = old->next;
		if (ep->tail == old)
			ep->tail = NULL; /* cannot happen: r is behind it */
		ep->queued -= old->nsamples;
		dropped += old->nsamples;
		free(old->body);
		free(old);
	}
	if (dropped) {
		self_inc(ep->dropped, (double)dropped);
		log_warn("remote-write queue full, dropped the oldest samples",
		         "url=\"%s\" samples=%zu", ep->shown, dropped);
	}
	gauge_set(ep->queue, (double)ep->queued);
}

struct fanout_ctx {
	struct remote_write *rw;
};

static int emit_to_queues(void *arg, char *body, size_t len, size_t n)
{
	struct fanout_ctx *f = arg;
	struct remote_write *rw = f->rw;
	pthread_mutex_lock(&rw->lock);
	for (size_t i = 0; i < rw->nep; i++) {
		char *copy = body;
		if (i + 1 < rw->nep) {
			copy = malloc(len ? len : 1);
			if (!copy) {
				self_inc(rw->ep[i].dropped, (double)n);
				continue;
			}
			memcpy(copy, body, len);
		}
		enqueue_locked(&rw->ep[i], copy, len, n);
	}
	if (rw->nep == 0)
		free(body);
	pthread_cond_broadcast(&rw->cond);
	pthread_mutex_unlock(&rw->lock);
	return 0;
}

/* Encodes one snapshot into every endpoint's queue. */
static int snapshot(struct remote_write *rw, int stale)
{
	int64_t ts = time_now_ms();
	if (ts <= rw->last_ts)
		ts = rw->last_ts + 1; /* strictly increasing per series, always */
	rw->last_ts = ts;
	struct fanout_ctx f = {rw};
	/* Sources whose interface disappeared: their series end with stale
	 * markers, once; registry_collect leaves them out from now on. */
	for (size_t i = 0; i < rw->reg->nsources; i++) {
		if (rw->ended[i] ||
		    !atomic_load_explicit(&rw->reg->sources[i].gone, memory_order_acquire))
			continue;
		rw->ended[i] = 1;
		log_info("interface gone, ending its remote-write series", "interface=%s",
		         rw->reg->sources[i].name);
		if (encode(rw->reg, &rw->ext, ts, rw->max_samples, 1, (int)i, emit_to_queues, &f))
			log_error("remote-write stale markers failed", "interface=%s",
			          rw->reg->sources[i].name);
	}
	int rc = encode(rw->reg, &rw->ext, ts, rw->max_samples, stale, -1, emit_to_queues, &f);
	if (rc)
		log_error("remote-write snapshot failed", "err=\"%s\"", strerror(-rc));
	return rc;
}

static double backoff_delay(struct rw_endpoint *ep, int attempt, double retry_after)
{
	struct remote_write *rw = ep->rw;
	double d = rw->min_backoff;
	for (int i = 0; i < attempt && d < rw->max_backoff; i++)
		d *= 2;
	if (d > rw->max_backoff)
		d = rw->max_backoff;
	d = d / 2 + d / 2 * ((double)rand_r(&ep->seed) / RAND_MAX); /* jitter */
	if (retry_after >= 0)
		d = retry_after > RW_RETRY_AFTER_MAX ? RW_RETRY_AFTER_MAX : retry_after;
	return d;
}

enum attempt_result { SENT, RETRY, REJECTED };

static enum attempt_result send_one(struct rw_endpoint *ep, const struct rw_request *r,
                                    double *retry_after)
{
	static const char *const headers[] = {"Content-Encoding: snappy",
	                                      "Content-Type: application/x-protobuf",
	                                      "X-Prometheus-Remote-Write-Version: 0.1.0", NULL};
	struct http_response resp;
	char q[HTTP_CLIENT_BODY_MAX + 64];
	int rc = http_client_request(ep->http, "POST", ep->url, r->body, r->len, headers, &resp);
	gauge_set(ep->duration, resp.seconds);
	*retry_after = resp.retry_after;
	if (rc == 0 && resp.status >= 200 && resp.status < 300) {
		self_inc(ep->sent, (double)r->nsamples);
		gauge_set(ep->last_success, time_now());
		if (ep->last_ok != 1)
			log_info("remote write succeeded", "url=\"%s\"", ep->shown);
		ep->last_ok = 1;
		return SENT;
	}
	if (rc == 0 && resp.status >= 400 && resp.status < 500 && resp.status != 429) {
		self_inc(ep->dropped, (double)r->nsamples);
		double now = time_monotonic();
		if (now - ep->last_reject_log >= RW_LOG_4XX_INTERVAL || ep->last_reject_log == 0) {
			log_error("remote write rejected, samples dropped",
			          "url=\"%s\" status=%ld samples=%zu body=%s", ep->shown,
			          resp.status, r->nsamples,
			          log_quote(q, sizeof q, resp.body, resp.body_len));
			ep->last_reject_log = now;
		}
		ep->last_ok = 0;
		return REJECTED;
	}
	self_inc(ep->failed, (double)r->nsamples);
	if (ep->last_ok != 0) {
		if (rc)
			log_warn("remote write failed, retrying", "url=\"%s\" err=%s", ep->shown,
			         log_quote(q, sizeof q, resp.error, strlen(resp.error)));
		else
			log_warn("remote write failed, retrying", "url=\"%s\" status=%ld body=%s",
			         ep->shown, resp.status,
			         log_quote(q, sizeof q, resp.body, resp.body_len));
	}
	ep->last_ok = 0;
	return RETRY;
}

/* Sends the queue until it is empty (drain) or the deadline passes, or, in
 * the background mode, until stop. Returns the number of samples dropped or
 * left unsent. Called by the sender thread, or by --once on the main thread
 * while no sender thread runs. */
static size_t run_queue(struct rw_endpoint *ep, int background)
{
	struct remote_write *rw = ep->rw;
	int attempt = 0;
	size_t lost = 0;
	pthread_mutex_lock(&rw->lock);
	for (;;) {
		if (rw->draining && time_monotonic() >= rw->drain_deadline)
			break;
		if (!ep->head) {
			if (!background || rw->draining)
				break;
			pthread_cond_wait(&rw->cond, &rw->lock);
			continue;
		}
		struct rw_request *r = ep->head;
		ep->sending = 1;
		pthread_mutex_unlock(&rw->lock);
		double retry_after;
		enum attempt_result res = send_one(ep, r, &retry_after);
		pthread_mutex_lock(&rw->lock);
		ep->sending = 0;
		if (res == RETRY) {
			double d = backoff_delay(ep, attempt++, retry_after);
			double until = time_monotonic() + d;
			if (rw->draining && until > rw->drain_deadline)
				until = rw->drain_deadline;
			cond_wait_until(&rw->cond, &rw->lock, until, NULL);
			continue;
		}
		attempt = 0;
		if (res == REJECTED)
			lost += r->nsamples;
		ep->head = r->next;
		if (!ep->head)
			ep->tail = NULL;
		ep->queued -= r->nsamples;
		gauge_set(ep->queue, (double)ep->queued);
		free(r->body);
		free(r);
	}
	lost += ep->queued;
	pthread_mutex_unlock(&rw->lock);
	return lost;
}

static void *sender_thread(void *arg)
{
	(void)run_queue(arg, 1);
	return NULL;
}

static void *timer_thread(void *arg)
{
	struct remote_write *rw = arg;
	double next = time_monotonic();
	pthread_mutex_lock(&rw->lock);
	while (!rw->stop) {
		pthread_mutex_unlock(&rw->lock);
		(void)snapshot(rw, 0);
		pthread_mutex_lock(&rw->lock);
		next = tick_next(next, rw->interval, time_monotonic());
		cond_wait_until(&rw->cond, &rw->lock, next, &rw->stop);
	}
	pthread_mutex_unlock(&rw->lock);
	return NULL;
}

int remote_write_start(struct remote_write *rw)
{
	for (size_t i = 0; i < rw->nep; i++) {
		if (pthread_create(&rw->ep[i].thread, NULL, sender_thread, &rw->ep[i]))
			return -EAGAIN;
		rw->ep[i].started = 1;
	}
	if (pthread_create(&rw->timer, NULL, timer_thread, rw))
		return -EAGAIN;
	rw->timer_started = 1;
	return 0;
}

int remote_write_send_once(struct remote_write *rw)
{
	if (snapshot(rw, 0))
		return -1;
	pthread_mutex_lock(&rw->lock);
	rw->draining = 1;
	rw->drain_deadline = time_monotonic() + rw->timeout;
	pthread_mutex_unlock(&rw->lock);
	int rc = 0;
	for (size_t i = 0; i < rw->nep; i++) {
		size_t lost = run_queue(&rw->ep[i], 0);
		if (lost) {
			log_error("remote write incomplete", "url=\"%s\" samples_not_accepted=%zu",
			          rw->ep[i].shown, lost);
			rc = -1;
		}
	}
	return rc;
}

void remote_write_stop(struct remote_write *rw)
{
	if (!rw->timer_started)
		return;
	pthread_mutex_lock(&rw->lock);
	rw->stop = 1;
	pthread_cond_broadcast(&rw->cond);
	pthread_mutex_unlock(&rw->lock);
	pthread_join(rw->timer, NULL);
	rw->timer_started = 0;
	/* The final values, then stale markers: the series end here. */
	(void)snapshot(rw, 0);
	(void)snapshot(rw, 1);
	pthread_mutex_lock(&rw->lock);
	rw->draining = 1;
	rw->drain_deadline = time_monotonic() + rw->timeout;
	pthread_cond_broadcast(&rw->cond);
	pthread_mutex_unlock(&rw->lock);
	for (size_t i = 0; i < rw->nep; i++)
		if (rw->ep[i].started) {
			pthread_join(rw->ep[i].thread, NULL);
			rw->ep[i].started = 0;
			if (rw->ep[i].queued)
				log_warn("remote write stopped with samples unsent",
				         "url=\"%s\" samples=%zu", rw->ep[i].shown,
				         rw->ep[i].queued);
		}
}

void remote_write_free(struct remote_write *rw)
{
	if (!rw)
		return;
	for (size_t i = 0; i < rw->nep; i++) {
		struct rw_endpoint *ep = &rw->ep[i];
		while (ep->head) {
			struct rw_request *n = ep->head->next;
			free(ep->head->body);
			free(ep->head);
			ep->head = n;
		}
		http_client_free(ep->http);
		free(ep->url);
		free(ep->shown);
	}
	free(rw->ep);
	free(rw->ended);
	pthread_mutex_destroy(&rw->lock);
	pthread_cond_destroy(&rw->cond);
	free(rw);
}
