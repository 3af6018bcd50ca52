/* DESIGN: the status page at `/`.
 *
 * A sampler thread of its own wakes every --web.status-interval (10 s) and reads the
 * registry once with a collector (registry_collect: the same lock-free walk
 * as a scrape, so it never blocks capture). From that one walk it keeps:
 *  - per interface (at most STATUS_PAGE_MAX_IFACES) the `_all` histogram's
 *    sum and count in a ring covering 15 minutes: the chart's bits/s and
 *    packets/s are the differences of neighbouring points;
 *  - pcap drops per interface and the push / remote-write self-metrics
 *    (last success, failures, queue) per target;
 *  - the top talkers: a bounded candidate set (STATUS_PAGE_CANDIDATES
 *    addresses or rollup prefixes per interface) whose cumulative bytes and
 *    packets in/out are kept at every sample for the last minute. A key
 *    outside the set is admitted when an upper bound of its rate beats the
 *    slowest candidate: a count-min style sketch (STATUS_PAGE_SKETCH
 *    buckets) holds, per hash bucket, the sum of the cumulative bytes of the
 *    keys hashing there; the growth of a bucket between two samples bounds
 *    the growth of each key in it from above. A new candidate shows once it
 *    has two samples of its own (after 10-20 s).
 * Trade-off: memory is fixed (about 3 MiB whatever the state), and the
 * page never walks the state; but the sampler walks the whole state once
 * per interval, like one scrape every 10 s, in a background thread (capture
 * is not slowed, a CPU core is shared); with a million addresses that is
 * about the cost of one scrape per interval. A heavy talker that appears
 * while the set is full of heavier ones waits until its bucket's growth
 * beats the slowest candidate; hash collisions only make admission
 * generous, never miss a key that beats the slowest candidate.
 *
 * Threads: the sampler owns the working state; at the end of a sample it
 * publishes a small copy (rings, top rows, targets) under `lock`; the page
 * render (an HTTP thread) reads only that copy under `lock`. Nothing here
 * is touched by a capture thread. */
#include "promacct/status_page.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promacct/buf.h"
#include "promacct/log.h"

#define IFNAME_MAX_LEN 64
#define IP_MAX_LEN     48
#define ROW_LABELS_MAX 192
#define WINDOW_POINTS  64   /* cap of samples per candidate (window / interval + 1) */
#define INDEX_SIZE     1024 /* candidate hash index slots (>= 2 x (candidates + admissions)) */
#define MAX_ADMIT      (STATUS_PAGE_CANDIDATES) /* admissions per sample */

struct iface {
	char name[IFNAME_MAX_LEN];
	double sum[STATUS_PAGE_MAX_POINTS], count[STATUS_PAGE_MAX_POINTS];
	double t[STATUS_PAGE_MAX_POINTS];
	unsigned n, head; /* points held; next slot */
	double drops, ifdrops, recv;
	int seen;
};

enum { TX_B, RX_B, TX_P, RX_P, NVAL };

struct cand {
	int used;
	uint64_t hash;
	char iface[IFNAME_MAX_LEN];
	char ip[IP_MAX_LEN];
	char labels[ROW_LABELS_MAX];
	double cur[NVAL]; /* this sample, summed over protocols */
	double hist[WINDOW_POINTS][NVAL];
	double ht[WINDOW_POINTS];
	unsigned n, head;
	int fresh; /* admitted during this walk: this sample is not whole */
	int seen;
	double rate; /* bytes/s over its window (or the estimate it came in with) */
};

struct target {
	char name[IP_MAX_LEN * 4];
	int push;
	double last_success, failures, queue, dropped;
};

struct row {
	char iface[IFNAME_MAX_LEN], ip[IP_MAX_LEN], labels[ROW_LABELS_MAX];
	double v[NVAL];
	double span;
};

/* What the page shows: published by the sampler, read by the render. */
struct published {
	struct iface ifaces[STATUS_PAGE_MAX_IFACES];
	unsigned nifaces, more_ifaces;
	struct row rows[STATUS_PAGE_TOP];
	unsigned nrows;
	size_t candidates;
	struct target targets[STATUS_PAGE_MAX_TARGETS];
	unsigned ntargets;
	double wall, took;
	unsigned samples;
};

enum fam {
	F_OTHER,
	F_ALL,
	F_ADDR_TX,
	F_ADDR_RX,
	F_DROP,
	F_IFDROP,
	F_RECV,
	F_PUSH_REQ,
	F_PUSH_LAST,
	F_RW_SAMPLES,
	F_RW_QUEUE,
	F_RW_LAST
};

struct status_page {
	struct registry *reg;
	double interval;
	unsigned points; /* ring points used */
	unsigned window; /* candidate points used */
	pthread_t thread;
	int started;
	int stop;             /* under lock (the sampler's wait) */
	_Atomic int stopping; /* the same, read by a walk in progress */
	pthread_mutex_t lock;
	pthread_cond_t cond;

	/* sampler state (the sampler thread only) */
	struct collector col;
	enum fam fam;
	struct iface ifaces[STATUS_PAGE_MAX_IFACES];
	unsigned nifaces, more_ifaces;
	struct iface *cur_if;
	struct cand cands[STATUS_PAGE_CANDIDATES];
	int16_t index[INDEX_SIZE];
	struct cand *cur_cand;
	uint64_t cur_bucket;
	int cur_addr; /* the current series is an address series */
	double min_rate;
	int min_idx;
	unsigned admitted;
	double *sk_now, *sk_prev, *sk_delta; /* STATUS_PAGE_SKETCH each */
	int have_delta;
	struct target targets[STATUS_PAGE_MAX_TARGETS];
	unsigned ntargets;
	struct target *cur_target;
	const char *cur_result;
	double now;
	unsigned samples;

	struct row rows[STATUS_PAGE_CANDIDATES]; /* sorting space */

	struct published pub; /* under lock */
};

static uint64_t key_hash(const char *iface, const char *ip)
{
	uint64_t h = 1469598103934665603ull;
	for (const char *p = iface; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	h = (h ^ 0xff) * 1099511628211ull;
	for (const char *p = ip; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	return h ^ (h >> 29);
}

static void copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strlen(src) : 0;
	if (n >= cap) { /* shown cut, ending in "..." */
		memcpy(dst, src, cap - 4);
		memcpy(dst + cap - 4, "...", 4);
		return;
	}
	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

static const char *label_value(const struct series_labels *l, const char *name)
{
	for (size_t i = 0; i < l->nfixed; i++)
		if (!strcmp(l->fixed[i].name, name))
			return l->fixed[i].value;
	return NULL;
}

/* ---- the candidate set ---------------------------------------------------- */

static void index_rebuild(struct status_page *p)
{
	memset(p->index, 0xff, sizeof p->index);
	for (int i = 0; i < STATUS_PAGE_CANDIDATES; i++) {
		if (!p->cands[i].used)
			continue;
		unsigned s = (unsigned)p->cands[i].hash & (INDEX_SIZE - 1);
		while (p->index[s] >= 0)
			s = (s + 1) & (INDEX_SIZE - 1);
		p->index[s] = (int16_t)i;
	}
}

static struct cand *cand_find(struct status_page *p, uint64_t h, const char *iface, const char *ip)
{
	unsigned s = (unsigned)h & (INDEX_SIZE - 1);
	for (; p->index[s] >= 0; s = (s + 1) & (INDEX_SIZE - 1)) {
		struct cand *c = &p->cands[p->index[s]];
		if (c->used && c->hash == h && !strcmp(c->iface, iface) && !strcmp(c->ip, ip))
			return c;
	}
	return NULL;
}

static void min_update(struct status_page *p)
{
	p->min_idx = -1;
	p->min_rate = 0;
	for (int i = 0; i < STATUS_PAGE_CANDIDATES; i++) {
		if (!p->cands[i].used) {
			p->min_idx = i;
			p->min_rate = -1; /* a free slot: anything gets in */
			return;
		}
		if (p->min_idx < 0 || p->cands[i].rate < p->min_rate) {
			p->min_idx = i;
			p->min_rate = p->cands[i].rate;
		}
	}
}

static void labels_text(char *dst, size_t cap, const struct series_labels *l)
{
	struct buf b;
	buf_init(&b, 4096);
	for (size_t i = 0; i < l->nextra; i++) {
		if (i)
			buf_append_str(&b, ", ");
		buf_append_str(&b, l->extra[i].name);
		buf_append_char(&b, '=');
		buf_append_str(&b, l->extra[i].value ? l->extra[i].value : "");
	}
	buf_append_char(&b, '\0');
	if (b.err || !b.data) /* over 4 KiB or out of memory */
		copy_text(dst, cap, b.err == -E2BIG ? "..." : "");
	else
		copy_text(dst, cap, b.data); /* cut to cap, ending in "..." */
	buf_free(&b);
}

/* An address series starts: find or admit its candidate. */
static void addr_series(struct status_page *p, const struct series_labels *l)
{
	const char *iface = label_value(l, "interface"), *ip = label_value(l, "ip");
	p->cur_cand = NULL;
	p->cur_addr = 1;
	if (!iface || !ip)
		return;
	uint64_t h = key_hash(iface, ip);
	p->cur_bucket = h & (STATUS_PAGE_SKETCH - 1);
	struct cand *c = cand_find(p, h, iface, ip);
	if (!c) {
		double est = p->have_delta ? p->sk_delta[p->cur_bucket] / p->interval : 0;
		if (p->admitted >= MAX_ADMIT || p->min_idx < 0 || !(est > p->min_rate))
			return;
		c = &p->cands[p->min_idx];
		memset(c, 0, sizeof *c);
		c->used = 1;
		c->hash = h;
		copy_text(c->iface, sizeof c->iface, iface);
		copy_text(c->ip, sizeof c->ip, ip);
		c->fresh = 1;
		c->rate = est > 0 ? est : 0;
		p->admitted++;
		/* into the index (the evicted entry's slot stays until the
		 * rebuild at the end of the sample; its key no longer matches) */
		unsigned s = (unsigned)h & (INDEX_SIZE - 1);
		while (p->index[s] >= 0 && &p->cands[p->index[s]] != c)
			s = (s + 1) & (INDEX_SIZE - 1);
		p->index[s] = (int16_t)(c - p->cands);
		min_update(p);
	}
	if (!c->seen) {
		memset(c->cur, 0, sizeof c->cur);
		c->seen = 1;
		labels_text(c->labels, sizeof c->labels, l);
	}
	p->cur_cand = c;
}

/* ---- the collector ------------------------------------------------------ */

static struct target *target_get(struct status_page *p, const char *name, int push)
{
	for (unsigned i = 0; i < p->ntargets; i++)
		if (p->targets[i].push == push && !strcmp(p->targets[i].name, name))
			return &p->targets[i];
	if (p->ntargets == STATUS_PAGE_MAX_TARGETS)
		return NULL;
	struct target *t = &p->targets[p->ntargets++];
	memset(t, 0, sizeof *t);
	copy_text(t->name, sizeof t->name, name);
	t->push = push;
	return t;
}

static void col_family(struct collector *c, const char *name, const char *help,
                       enum metric_type type)
{
	struct status_page *p =
	    (struct status_page *)((char *)c - offsetof(struct status_page, col));
	(void)help, (void)type;
	static const struct {
		const char *name;
		enum fam f;
	} fams[] = {
	    {"promacct_packet_size_bytes_all", F_ALL},
	    {"promacct_packet_size_bytes_ipv4_tx", F_ADDR_TX},
	    {"promacct_packet_size_bytes_ipv6_tx", F_ADDR_TX},
	    {"promacct_packet_size_bytes_ipv4_rx", F_ADDR_RX},
	    {"promacct_packet_size_bytes_ipv6_rx", F_ADDR_RX},
	    {"promacct_pcap_dropped_packets_total", F_DROP},
	    {"promacct_pcap_interface_dropped_packets_total", F_IFDROP},
	    {"promacct_pcap_received_packets_total", F_RECV},
	    {"promacct_push_requests_total", F_PUSH_REQ},
	    {"promacct_push_last_success_timestamp_seconds", F_PUSH_LAST},
	    {"promacct_remote_write_samples_total", F_RW_SAMPLES},
	    {"promacct_remote_write_queue_samples", F_RW_QUEUE},
	    {"promacct_remote_write_last_success_timestamp_seconds", F_RW_LAST},
	};
	p->fam = F_OTHER;
	for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++)
		if (!strcmp(name, fams[i].name))
			p->fam = fams[i].f;
	if (atomic_load_explicit(&p->stopping, memory_order_relaxed))
		c->stop = 1;
}

static struct iface *iface_get(struct status_page *p, const char *name, int add)
{
	if (!name)
		return NULL;
	for (unsigned i = 0; i < p->nifaces; i++)
		if (!strcmp(p->ifaces[i].name, name))
			return &p->ifaces[i];
	if (!add)
		return NULL;
	if (p->nifaces == STATUS_PAGE_MAX_IFACES) {
		p->more_ifaces++;
		return NULL;
	}
	struct iface *f = &p->ifaces[p->nifaces++];
	memset(f, 0, sizeof *f);
	copy_text(f->name, sizeof f->name, name);
	return f;
}

static void col_series(struct collector *c, const struct series_labels *l)
{
	struct status_page *p =
	    (struct status_page *)((char *)c - offsetof(struct status_page, col));
	p->cur_addr = 0;
	p->cur_cand = NULL;
	p->cur_if = NULL;
	p->cur_target = NULL;
	switch (p->fam) {
	case F_ALL:
	case F_DROP:
	case F_IFDROP:
	case F_RECV:
		/* interfaces come from the _all family (it comes first) */
		p->cur_if = iface_get(p, label_value(l, "interface"), p->fam == F_ALL);
		if (p->cur_if)
			p->cur_if->seen = 1;
		break;
	case F_ADDR_TX:
	case F_ADDR_RX:
		addr_series(p, l);
		break;
	case F_PUSH_REQ:
	case F_PUSH_LAST:
		p->cur_target = target_get(p, "Pushgateway", 1);
		p->cur_result = label_value(l, "result");
		break;
	case F_RW_SAMPLES:
	case F_RW_QUEUE:
	case F_RW_LAST: {
		const char *url = label_value(l, "url");
		p->cur_target = url ? target_get(p, url, 0) : NULL;
		p->cur_result = label_value(l, "result");
		break;
	}
	default:
		break;
	}
}

static void col_sample(struct collector *c, enum sample_kind kind, const char *le, double v)
{
	struct status_page *p =
	    (struct status_page *)((char *)c - offsetof(struct status_page, col));
	(void)le;
	if (p->cur_addr) {
		if (kind == SAMPLE_SUM)
			p->sk_now[p->cur_bucket] += v;
		if (!p->cur_cand || (kind != SAMPLE_SUM && kind != SAMPLE_COUNT))
			return;
		int tx = p->fam == F_ADDR_TX;
		int idx = kind == SAMPLE_SUM ? (tx ? TX_B : RX_B) : (tx ? TX_P : RX_P);
		p->cur_cand->cur[idx] += v;
		return;
	}
	struct iface *f = p->cur_if;
	struct target *t = p->cur_target;
	switch (p->fam) {
	case F_ALL:
		if (f && kind == SAMPLE_SUM)
			f->sum[f->head] = v;
		else if (f && kind == SAMPLE_COUNT)
			f->count[f->head] = v;
		break;
	case F_DROP:
		if (f)
			f->drops = v;
		break;
	case F_IFDROP:
		if (f)
			f->ifdrops = v;
		break;
	case F_RECV:
		if (f)
			f->recv = v;
		break;
	case F_PUSH_REQ:
		if (t && p->cur_result && strcmp(p->cur_result, "success"))
			t->failures += v;
		break;
	case F_PUSH_LAST:
	case F_RW_LAST:
		if (t)
			t->last_success = v;
		break;
	case F_RW_SAMPLES:
		if (t && p->cur_result && !strcmp(p->cur_result, "failed"))
			t->failures += v;
		else if (t && p->cur_result && !strcmp(p->cur_result, "dropped"))
			t->dropped += v;
		break;
	case F_RW_QUEUE:
		if (t)
			t->queue = v;
		break;
	default:
		break;
	}
}

/* ---- one sample ----------------------------------------------------------- */

static int cmp_rows(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	double sx = x->v[TX_B] + x->v[RX_B], sy = y->v[TX_B] + y->v[RX_B];
	if (sx != sy)
		return sx < sy ? 1 : -1;
	int r = strcmp(x->iface, y->iface);
	return r ? r : strcmp(x->ip, y->ip);
}

int status_page_sample(struct status_page *p, double now)
{
	double t0 = time_monotonic();
	p->now = now;
	for (unsigned i = 0; i < p->nifaces; i++)
		p->ifaces[i].seen = 0;
	p->more_ifaces = 0;
	for (int i = 0; i < STATUS_PAGE_CANDIDATES; i++)
		p->cands[i].seen = 0;
	memset(p->sk_now, 0, STATUS_PAGE_SKETCH * sizeof *p->sk_now);
	p->ntargets = 0;
	p->admitted = 0;
	min_update(p);
	memset(&p->col, 0, sizeof p->col);
	p->col.family = col_family;
	p->col.series = col_series;
	p->col.sample = col_sample;
	p->fam = F_OTHER;
	int rc = registry_collect(p->reg, &p->col);
	if (rc || p->col.stop)
		return rc ? rc : -ECANCELED;

	/* interfaces: close this point; ones no longer there leave */
	unsigned k = 0;
	for (unsigned i = 0; i < p->nifaces; i++) {
		struct iface *f = &p->ifaces[i];
		if (!f->seen)
			continue;
		f->t[f->head] = now;
		f->head = (f->head + 1) % p->points;
		if (f->n < p->points)
			f->n++;
		if (k != i)
			p->ifaces[k] = *f;
		k++;
	}
	p->nifaces = k;

	/* candidates: record whole samples, drop keys gone, rate over window */
	for (int i = 0; i < STATUS_PAGE_CANDIDATES; i++) {
		struct cand *c = &p->cands[i];
		if (!c->used)
			continue;
		if (!c->seen) {
			c->used = 0;
			continue;
		}
		if (c->fresh) { /* admitted mid-walk: start at the next sample */
			c->fresh = 0;
			continue;
		}
		memcpy(c->hist[c->head], c->cur, sizeof c->cur);
		c->ht[c->head] = now;
		c->head = (c->head + 1) % p->window;
		if (c->n < p->window)
			c->n++;
		if (c->n >= 2) {
			unsigned newest = (c->head + p->window - 1) % p->window;
			unsigned oldest = (c->head + p->window - c->n) % p->window;
			double span = c->ht[newest] - c->ht[oldest];
			double b = c->hist[newest][TX_B] + c->hist[newest][RX_B] -
			           c->hist[oldest][TX_B] - c->hist[oldest][RX_B];
			c->rate = span > 0 && b > 0 ? b / span : 0;
		}
	}
	index_rebuild(p);

	/* the sketch: growth per bucket since the last sample */
	for (size_t b = 0; b < STATUS_PAGE_SKETCH; b++) {
		double d = p->sk_now[b] - p->sk_prev[b];
		p->sk_delta[b] = d > 0 ? d : 0;
	}
	double *sw = p->sk_prev;
	p->sk_prev = p->sk_now;
	p->sk_now = sw;
	p->have_delta = p->samples > 0;
	p->samples++;

	/* the rows shown: candidates with two samples, by bytes */
	struct row *rows = p->rows;
	unsigned nr = 0;
	size_t ncand = 0;
	for (int i = 0; i < STATUS_PAGE_CANDIDATES; i++) {
		struct cand *c = &p->cands[i];
		if (!c->used)
			continue;
		ncand++;
		if (c->n < 2)
			continue;
		unsigned newest = (c->head + p->window - 1) % p->window;
		unsigned oldest = (c->head + p->window - c->n) % p->window;
		struct row *r = &rows[nr++];
		memcpy(r->iface, c->iface, sizeof r->iface);
		memcpy(r->ip, c->ip, sizeof r->ip);
		memcpy(r->labels, c->labels, sizeof r->labels);
		for (int v = 0; v < NVAL; v++) {
			double d = c->hist[newest][v] - c->hist[oldest][v];
			r->v[v] = d > 0 ? d : 0;
		}
		r->span = c->ht[newest] - c->ht[oldest];
	}
	if (nr)
		qsort(rows, nr, sizeof rows[0], cmp_rows);
	if (nr > STATUS_PAGE_TOP)
		nr = STATUS_PAGE_TOP;

	pthread_mutex_lock(&p->lock);
	memcpy(p->pub.ifaces, p->ifaces, p->nifaces * sizeof p->ifaces[0]);
	p->pub.nifaces = p->nifaces;
	p->pub.more_ifaces = p->more_ifaces;
	memcpy(p->pub.rows, rows, nr * sizeof rows[0]);
	p->pub.nrows = nr;
	p->pub.candidates = ncand;
	memcpy(p->pub.targets, p->targets, p->ntargets * sizeof p->targets[0]);
	p->pub.ntargets = p->ntargets;
	p->pub.wall = (double)time(NULL);
	p->pub.took = time_monotonic() - t0;
	p->pub.samples = p->samples;
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void *sampler_main(void *arg)
{
	struct status_page *p = arg;
	double next = time_monotonic();
	int failed = 0;
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		if (time_monotonic() < next) {
			cond_wait_until(&p->cond, &p->lock, next, &p->stop);
			continue;
		}
		pthread_mutex_unlock(&p->lock);
		int rc = status_page_sample(p, time_monotonic());
		if (rc && rc != -ECANCELED && !failed)
			log_warn("status page sample failed", "err=%s", strerror(-rc));
		failed = rc != 0;
		next += p->interval;
		double now = time_monotonic();
		if (next < now) /* a walk took longer than the interval: skip */
			next = now + p->interval;
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- the page --------------------------------------------------------------- */

static void html_text(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			buf_append_str(b, "&amp;");
			break;
		case '<':
			buf_append_str(b, "&lt;");
			break;
		case '>':
			buf_append_str(b, "&gt;");
			break;
		case '"':
			buf_append_str(b, "&quot;");
			break;
		case '\'':
			buf_append_str(b, "&#39;");
			break;
		default:
			buf_append_char(b, *s);
		}
	}
}

/* 1234567 -> "1.23 M" (SI), with unit */
static void human(struct buf *b, double v, const char *unit)
{
	static const char *pfx[] = {"", "k", "M", "G", "T", "P"};
	int i = 0;
	while (fabs(v) >= 999.5 && i < 5) { /* 999.7 k is 1 M, never 1e+03 k */
		v /= 1000;
		i++;
	}
	if (i == 0 && v == floor(v))
		buf_printf(b, "%.0f %s", v, unit);
	else
		buf_printf(b, "%.3g %s%s", v, pfx[i], unit);
}

static const char *palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                "#9467bd", "#8c564b", "#e377c2", "#17becf"};

#define CH_W 440
#define CH_H 180
#define CH_L 64 /* left margin for the axis text */

/* The rate at point j of interface f (j counts from the oldest point) */
static int iface_rate(const struct iface *f, unsigned points, unsigned j, int bits, double *t,
                      double *rate)
{
	unsigned a = (f->head + points - f->n + j - 1) % points, b = (a + 1) % points;
	double dt = f->t[b] - f->t[a];
	double d = bits ? (f->sum[b] - f->sum[a]) * 8 : f->count[b] - f->count[a];
	if (!(dt > 0))
		return 0;
	*t = f->t[b];
	*rate = d > 0 ? d / dt : 0;
	return 1;
}

static void chart(struct buf *b, const struct published *pub, unsigned points, int bits, double now)
{
	double max = 0, t, r;
	(void)now;
	now = 0; /* the right edge: the newest sample */
	for (unsigned i = 0; i < pub->nifaces; i++) {
		const struct iface *f = &pub->ifaces[i];
		if (f->n && f->t[(f->head + points - 1) % points] > now)
			now = f->t[(f->head + points - 1) % points];
	}
	for (unsigned i = 0; i < pub->nifaces; i++)
		for (unsigned j = 1; j < pub->ifaces[i].n; j++)
			if (iface_rate(&pub->ifaces[i], points, j, bits, &t, &r) && r > max)
				max = r;
	if (max <= 0)
		max = 1;
	buf_printf(b,
	           "<figure><figcaption>%s per interface, last 15 minutes</figcaption>\n"
	           "<svg class=\"chart\" id=\"chart-%s\" width=\"%d\" height=\"%d\" "
	           "viewBox=\"0 -8 %d %d\" role=\"img\">\n",
	           bits ? "Bits/s" : "Packets/s", bits ? "bits" : "packets", CH_W + CH_L, CH_H + 28,
	           CH_W + CH_L, CH_H + 28);
	buf_printf(b, "<rect x=\"%d\" y=\"0\" width=\"%d\" height=\"%d\" class=\"plot\"/>\n", CH_L,
	           CH_W, CH_H);
	for (int g = 0; g <= 4; g++) {
		double y = CH_H - CH_H * g / 4.0;
		buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>",
		           CH_L, CH_L + CH_W, y, y);
		buf_printf(b, "<text x=\"%d\" y=\"%.1f\" class=\"axis\">", CH_L - 4, y + 4);
		human(b, max * g / 4.0, bits ? "b/s" : "p/s");
		buf_append_str(b, "</text>\n");
	}
	buf_printf(b,
	           "<text x=\"%d\" y=\"%d\" class=\"axis\" text-anchor=\"start\">-15 min</text>"
	           "<text x=\"%d\" y=\"%d\" class=\"axis\">now</text>\n",
	           CH_L, CH_H + 16, CH_L + CH_W, CH_H + 16);
	for (unsigned i = 0; i < pub->nifaces; i++) {
		const struct iface *f = &pub->ifaces[i];
		if (f->n < 2)
			continue;
		buf_printf(b, "<polyline class=\"series\" stroke=\"%s\" data-interface=\"",
		           palette[i % 8]);
		html_text(b, f->name);
		buf_append_str(b, "\" points=\"");
		for (unsigned j = 1; j < f->n; j++) {
			if (!iface_rate(f, points, j, bits, &t, &r))
				continue;
			double x = CH_L + CH_W - (now - t) / STATUS_PAGE_HISTORY * CH_W;
			if (x < CH_L)
				x = CH_L;
			buf_printf(b, "%.1f,%.1f ", x, CH_H - r / max * CH_H);
		}
		buf_append_str(b, "\"/>\n");
	}
	buf_append_str(b, "</svg></figure>\n");
}

static void ago(struct buf *b, double wall, double ts)
{
	if (!(ts > 0)) {
		buf_append_str(b, "never");
		return;
	}
	double d = wall - ts;
	buf_printf(b, "%.0f s ago", d > 0 ? d : 0);
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width\">\n"
    "<title>promacct</title>\n<style>\n"
    "body{font:14px sans-serif;margin:1em 2em;color:#222}"
    "h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1em 0 .3em}"
    "table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;"
    "text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".charts{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}"
    "figcaption{font-weight:bold}.plot{fill:#fafafa;stroke:#ccc}.grid{stroke:#e4e4e4}"
    ".axis{font-size:10px;fill:#666;text-anchor:end}"
    ".series{fill:none;stroke-width:1.5}.bad{color:#c00;font-weight:bold}.key{display:"
    "inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}"
    "small{color:#666}\n</style>\n</head><body>\n";

int status_page_render(struct status_page *p, char **html, size_t *len)
{
	struct buf b;
	buf_init(&b, STATUS_PAGE_MAX_BYTES);
	pthread_mutex_lock(&p->lock);
	const struct published *pub = &p->pub;
	double now = time_monotonic();
	buf_append_str(&b, page_head);
	buf_printf(&b, "<h1>promacct</h1>\n<p><small>version ");
	html_text(&b, promacct_version);
	buf_printf(&b,
	           " &middot; <a href=\"/metrics\">metrics</a> &middot; sampled every %.0f s, "
	           "%u samples, last walk %.3f s &middot; this page reloads itself</small></p>\n",
	           p->interval, pub->samples, pub->took);

	buf_append_str(&b, "<h2>Throughput</h2>\n<p>");
	for (unsigned i = 0; i < pub->nifaces; i++) {
		buf_printf(&b, "<span class=\"key\" style=\"background:%s\"></span>",
		           palette[i % 8]);
		html_text(&b, pub->ifaces[i].name);
		buf_append_str(&b, " &nbsp; ");
	}
	if (pub->more_ifaces)
		buf_printf(&b, "<small>(%u more interfaces not charted)</small>", pub->more_ifaces);
	buf_append_str(&b, "</p>\n<div class=\"charts\">\n");
	chart(&b, pub, p->points, 1, now);
	chart(&b, pub, p->points, 0, now);
	buf_append_str(&b, "</div>\n");

	buf_printf(&b,
	           "<h2>Top talkers, last minute</h2>\n<p><small>The %d busiest of %zu tracked "
	           "addresses or rollup prefixes (a bounded candidate set, see the README).</small>"
	           "</p>\n<table id=\"talkers\">\n<thead><tr><th>interface</th><th>address</th>"
	           "<th>range labels</th><th>bytes in</th><th>bytes out</th><th>packets in</th>"
	           "<th>packets out</th><th>over</th></tr></thead>\n<tbody>\n",
	           STATUS_PAGE_TOP, pub->candidates);
	for (unsigned i = 0; i < pub->nrows; i++) {
		const struct row *r = &pub->rows[i];
		buf_append_str(&b, "<tr><td>");
		html_text(&b, r->iface);
		buf_append_str(&b, "</td><td class=\"addr\">");
		html_text(&b, r->ip);
		buf_append_str(&b, "</td><td>");
		html_text(&b, r->labels);
		buf_append_str(&b, "</td>");
		/* in = received by the address (rx), out = sent by it (tx) */
		static const int order[] = {RX_B, TX_B, RX_P, TX_P};
		for (int v = 0; v < 4; v++) {
			buf_append_str(&b, "<td class=\"n\">");
			human(&b, r->v[order[v]], v < 2 ? "B" : "");
			buf_append_str(&b, "</td>");
		}
		buf_printf(&b, "<td class=\"n\">%.0f s</td></tr>\n", r->span);
	}
	if (!pub->nrows)
		buf_append_str(&b, "<tr><td colspan=\"8\"><small>no traffic in tracked ranges yet"
		                   "</small></td></tr>\n");
	buf_append_str(&b, "</tbody></table>\n");

	buf_append_str(&b, "<h2>Capture</h2>\n<table id=\"capture\"><thead><tr><th>interface</th>"
	                   "<th>received packets</th><th>kernel drops</th><th>interface drops</th>"
	                   "</tr></thead>\n<tbody>\n");
	for (unsigned i = 0; i < pub->nifaces; i++) {
		const struct iface *f = &pub->ifaces[i];
		buf_append_str(&b, "<tr><td>");
		html_text(&b, f->name);
		buf_printf(&b,
		           "</td><td class=\"n\">%.0f</td><td class=\"n%s\">%.0f</td>"
		           "<td class=\"n%s\">%.0f</td></tr>\n",
		           f->recv, f->drops > 0 ? " bad" : "", f->drops,
		           f->ifdrops > 0 ? " bad" : "", f->ifdrops);
	}
	buf_append_str(&b, "</tbody></table>\n");

	buf_append_str(&b, "<h2>Delivery</h2>\n");
	if (!pub->ntargets)
		buf_append_str(&b, "<p><small>No Pushgateway or remote-write target configured."
		                   "</small></p>\n");
	else {
		buf_append_str(&b, "<table id=\"targets\"><thead><tr><th>target</th><th>kind</th>"
		                   "<th>last success</th><th>failures</th><th>queue (samples)</th>"
		                   "<th>dropped samples</th></tr></thead>\n<tbody>\n");
		for (unsigned i = 0; i < pub->ntargets; i++) {
			const struct target *t = &pub->targets[i];
			buf_append_str(&b, "<tr><td>");
			html_text(&b, t->name);
			buf_printf(&b, "</td><td>%s</td><td>", t->push ? "push" : "remote write");
			ago(&b, pub->wall, t->last_success);
			buf_printf(&b, "</td><td class=\"n%s\">%.0f</td>",
			           t->failures > 0 ? " bad" : "", t->failures);
			if (t->push)
				buf_append_str(&b, "<td class=\"n\">-</td><td class=\"n\">-</td>");
			else
				buf_printf(&b,
				           "<td class=\"n\">%.0f</td><td class=\"n%s\">%.0f</td>",
				           t->queue, t->dropped > 0 ? " bad" : "", t->dropped);
			buf_append_str(&b, "</tr>\n");
		}
		buf_append_str(&b, "</tbody></table>\n");
	}
	pthread_mutex_unlock(&p->lock);
	buf_printf(&b, "<script>setTimeout(function(){location.reload()},%.0f)</script>\n",
	           p->interval * 1000);
	buf_append_str(&b, "</body></html>\n");
	buf_append_char(&b, '\0'); /* a C string too (not counted in *len) */
	if (b.err) {
		int rc = b.err;
		buf_free(&b);
		return rc;
	}
	*html = buf_steal(&b, len);
	(*len)--;
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct status_page *status_page_new(const struct status_page_opts *opts, struct registry *reg,
                                    char *err, size_t errlen)
{
	struct status_page *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->reg = reg;
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->cond);
	p->interval = opts && opts->interval > 0 ? opts->interval : STATUS_PAGE_INTERVAL;
	double pts = ceil(STATUS_PAGE_HISTORY / p->interval) + 1;
	double win = ceil(STATUS_PAGE_WINDOW / p->interval) + 1;
	if (pts > STATUS_PAGE_MAX_POINTS || win > WINDOW_POINTS) {
		snprintf(err, errlen, "status page interval %g s too short (at least %g s)",
		         p->interval, STATUS_PAGE_HISTORY / (STATUS_PAGE_MAX_POINTS - 1.0));
		status_page_free(p);
		return NULL;
	}
	p->points = (unsigned)pts;
	p->window = (unsigned)(win < 2 ? 2 : win);
	p->sk_now = calloc(STATUS_PAGE_SKETCH, sizeof(double));
	p->sk_prev = calloc(STATUS_PAGE_SKETCH, sizeof(double));
	p->sk_delta = calloc(STATUS_PAGE_SKETCH, sizeof(double));
	if (!p->sk_now || !p->sk_prev || !p->sk_delta) {
		snprintf(err, errlen, "out of memory");
		status_page_free(p);
		return NULL;
	}
	memset(p->index, 0xff, sizeof p->index);
	return p;
}

int status_page_start(struct status_page *p, char *err, size_t errlen)
{
	int rc = pthread_create(&p->thread, NULL, sampler_main, p);
	if (rc) {
		snprintf(err, errlen, "cannot start the status page sampler: %s", strerror(rc));
		return -rc;
	}
	p->started = 1;
	return 0;
}

void status_page_shutdown(struct status_page *p, double deadline)
{
	(void)deadline; /* a walk stops at its next family; the join is short */
	if (!p || !p->started)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	atomic_store_explicit(&p->stopping, 1, memory_order_relaxed);
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->started = 0;
}

void status_page_free(struct status_page *p)
{
	if (!p)
		return;
	status_page_shutdown(p, time_monotonic());
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->sk_now);
	free(p->sk_prev);
	free(p->sk_delta);
	free(p);
}
