/* DESIGN: remote-write encoding (Prometheus remote write 1.0).
 *
 * rw_encode is a registry collector: it walks the state once and emits
 * requests as it goes. Each series goes to one of nshards batches, chosen
 * by a hash of its labels; a batch that reaches max_samples samples is
 * packed by protobuf-c into a buffer of exactly its packed size (summed as
 * the batch fills from protobuf-c's sizes of each label and sample), snappy
 * block compressed and handed to emit, then
 * reused. So memory is nshards batches of max_samples series plus one packed
 * and one compressed buffer, whatever the size of the state.
 *
 * Labels of a series are merged from the series labels and the external
 * labels (series labels win), empty values dropped, sorted by name with
 * __name__ and le inserted in place. A series with more than RW_MAX_LABELS
 * labels fails the walk (-E2BIG, logged): start-up validation makes that
 * impossible, and cutting labels would merge series silently.
 *
 * Strings and protobuf-c structs of a batch live in the batch's arena, so
 * the registry walk never has to outlive a batch. Runs on the caller's
 * thread (the remote-write timer); takes no lock. */
#include "promacct/rw_encode.h"

#include <errno.h>
#include <snappy-c.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/buf.h"
#include "promacct/log.h"
#include "remote.pb-c.h"

#define ARENA_BLOCK (1024 * 1024)
#define RW_MAX_LE   (HISTOGRAM_MAX_BUCKETS + 1)

typedef Prometheus__TimeSeries TimeSeries;
typedef Prometheus__Label Label;
typedef Prometheus__Sample Sample;
typedef Prometheus__MetricMetadata MetricMetadata;

/* Packed sizes: each message's own size comes from protobuf-c
 * (get_packed_size of a Label, a Sample, a MetricMetadata), computed once
 * per label and reused by every series that carries it; only the framing of
 * an embedded message as a field (one tag byte: every field number here is
 * below 16; the length as a varint) is added here. enc_flush checks that
 * pack writes exactly the sum, so a wrong size can never go unnoticed. */
static size_t varint_size(size_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static size_t field_size(size_t msg)
{
	return 1 + varint_size(msg) + msg;
}

double rw_stale_nan(void)
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

/* Keeps the newest block (emptied), frees the rest. */
static void arena_reset(struct arena *a)
{
	struct arena_block *b = a->head;
	if (!b)
		return;
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

/* ---- batches ------------------------------------------------------------ */

/* The series of one shard waiting to be packed, and the labels they share. */
struct batch {
	struct arena arena;
	TimeSeries **series; /* max_samples entries */
	size_t n;
	size_t bytes; /* packed size of the series so far (see field_size) */
	/* the four __name__ labels (plain, _bucket, _sum, _count) of family */
	const char *family;
	Label *names[4];
	size_t names_size[4];
	/* le labels, keyed by the (stable) le string pointer */
	const char *le_key[RW_MAX_LE];
	Label *le_label[RW_MAX_LE];
	size_t le_size[RW_MAX_LE];
	size_t nle;
};

struct encoder {
	struct collector c;
	const struct rw_encode_opts *o;
	int err;

	struct batch *b; /* o->nshards */
	/* metadata of the families met since the last emitted request */
	MetricMetadata **meta;
	size_t nmeta, meta_cap;
	const char *family;

	/* the current series: its shard, its labels sorted by name without
	 * __name__ and le (in its batch's arena), and where those two go */
	const struct series_labels *cur;
	size_t shard;
	Label *tmpl[RW_MAX_LABELS];
	size_t ntmpl;
	size_t tmpl_size; /* packed size of the template's labels as fields */
	size_t pos_name, pos_le;
	int tmpl_valid;

	struct buf packed;
	struct buf compressed; /* both reused: fresh large buffers cost page faults */
};

static void enc_fail(struct encoder *e, int err)
{
	if (!e->err)
		e->err = err;
	e->c.stop = 1;
}

static void batch_reset(struct encoder *e, struct batch *b)
{
	b->n = 0;
	b->bytes = 0;
	b->family = NULL;
	b->nle = 0;
	arena_reset(&b->arena);
	if (b == &e->b[e->shard])
		e->tmpl_valid = 0; /* the current template lived in this arena */
}

static void meta_clear(struct encoder *e)
{
	for (size_t i = 0; i < e->nmeta; i++)
		free(e->meta[i]);
	e->nmeta = 0;
}

/* Packs, compresses and emits batch `shard` with the pending metadata. */
static int enc_flush(struct encoder *e, size_t shard)
{
	struct batch *b = &e->b[shard];
	if (b->n == 0 && e->nmeta == 0)
		return 0;
	Prometheus__WriteRequest req = PROMETHEUS__WRITE_REQUEST__INIT;
	req.n_timeseries = b->n;
	req.timeseries = b->series;
	req.n_metadata = e->nmeta;
	req.metadata = e->meta;
	size_t plen = b->bytes;
	for (size_t i = 0; i < e->nmeta; i++)
		plen += field_size(prometheus__metric_metadata__get_packed_size(e->meta[i]));
	buf_reset(&e->packed);
	if (buf_reserve(&e->packed, plen ? plen : 1))
		return -ENOMEM;
	if (prometheus__write_request__pack(&req, (uint8_t *)e->packed.data) != plen) {
		log_error("remote write: protobuf size mismatch, request not sent",
		          "expected_bytes=%zu", plen);
		return -EIO;
	}
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
	size_t n = b->n;
	meta_clear(e);
	batch_reset(e, b);
	return e->o->emit(e->o->ctx, shard, out, clen, n);
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
	if (!help)
		return;
	if (e->nmeta == e->meta_cap) {
		size_t ncap = e->meta_cap ? e->meta_cap * 2 : 16;
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

static Label *new_label(struct arena *a, const char *name, const char *value)
{
	Label *lb = arena_alloc(a, sizeof *lb);
	if (lb) {
		prometheus__label__init(lb);
		lb->name = (char *)name;
		lb->value = (char *)value;
	}
	return lb;
}

/* The four __name__ labels of the current family in batch b. */
static int batch_names(struct encoder *e, struct batch *b)
{
	static const char *const suffix[] = {"", "_bucket", "_sum", "_count"};
	size_t n1 = strlen(e->family);
	for (int k = 0; k < 4; k++) {
		size_t n2 = strlen(suffix[k]);
		char *s = arena_alloc(&b->arena, n1 + n2 + 1);
		if (!s)
			return -ENOMEM;
		memcpy(s, e->family, n1);
		memcpy(s + n1, suffix[k], n2 + 1);
		if (!(b->names[k] = new_label(&b->arena, "__name__", s)))
			return -ENOMEM;
		b->names_size[k] = field_size(prometheus__label__get_packed_size(b->names[k]));
	}
	b->family = e->family;
	return 0;
}

/* The le label of this bound in batch b (and its size as a field). */
static Label *batch_le(struct batch *b, const char *le, size_t *size)
{
	for (size_t i = 0; i < b->nle; i++)
		if (b->le_key[i] == le) {
			*size = b->le_size[i];
			return b->le_label[i];
		}
	if (b->nle == RW_MAX_LE)
		return NULL;
	Label *lb = new_label(&b->arena, "le", le); /* le texts live in the layout */
	if (lb) {
		b->le_key[b->nle] = le;
		b->le_size[b->nle] = *size = field_size(prometheus__label__get_packed_size(lb));
		b->le_label[b->nle++] = lb;
	}
	return lb;
}

static void log_too_many(const struct series_labels *l, size_t n)
{
	log_error("remote write: a series has more labels than the limit; snapshot not sent",
	          "labels=%zu limit=%d series_labels=%zu", n, RW_MAX_LABELS, l->nfixed + l->nextra);
}

/* Builds the sorted label template of the current series in its batch's
 * arena. Label names and the extra (range) values are stable for the whole
 * walk; the fixed values may not be (the ip text), so those are copied. */
static int enc_build_template(struct encoder *e)
{
	const struct series_labels *l = e->cur;
	const struct rw_label_set *ext = e->o->ext;
	struct arena *a = &e->b[e->shard].arena;
	size_t total = l->nfixed + l->nextra + (ext ? ext->n : 0);
	e->ntmpl = 0;
	e->tmpl_size = 0;
	for (size_t i = 0; i < total; i++) {
		const struct label *lab;
		int copy = 0;
		if (i < l->nfixed) {
			lab = &l->fixed[i];
			copy = 1;
		} else if (i < l->nfixed + l->nextra) {
			lab = &l->extra[i - l->nfixed];
		} else {
			lab = &ext->labels[i - l->nfixed - l->nextra];
			int dup = 0; /* a series label wins over an external one */
			for (size_t j = 0; j < l->nfixed + l->nextra && !dup; j++)
				dup = !strcmp(j < l->nfixed ? l->fixed[j].name
				                            : l->extra[j - l->nfixed].name,
				              lab->name);
			if (dup)
				continue;
		}
		if (!lab->value || !lab->value[0])
			continue; /* empty label values are dropped */
		/* + __name__ + le */
		if (e->ntmpl + 2 >= RW_MAX_LABELS) {
			log_too_many(l, total + 2);
			return -E2BIG;
		}
		const char *v = lab->value;
		if (copy && !(v = arena_strdup(a, v)))
			return -ENOMEM;
		Label *lb = new_label(a, lab->name, v);
		if (!lb)
			return -ENOMEM;
		e->tmpl_size += field_size(prometheus__label__get_packed_size(lb));
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

/* FNV-1a over names and values, with separators. */
static uint64_t hash_str(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	h ^= 0xff;
	h *= 0x100000001b3ull;
	return h;
}

size_t rw_series_shard(const struct series_labels *l, size_t nshards)
{
	if (nshards <= 1)
		return 0;
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < l->nfixed; i++)
		h = hash_str(hash_str(h, l->fixed[i].name), l->fixed[i].value);
	for (size_t i = 0; i < l->nextra; i++)
		h = hash_str(hash_str(h, l->extra[i].name), l->extra[i].value);
	h ^= h >> 33; /* the low bits of FNV are weak */
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)(h % nshards);
}

static void enc_series(struct collector *c, const struct series_labels *l)
{
	struct encoder *e = (struct encoder *)c;
	e->cur = l;
	e->shard = rw_series_shard(l, e->o->nshards);
	e->tmpl_valid = 0;
}

static void enc_sample(struct collector *c, enum sample_kind kind, const char *le, double value)
{
	struct encoder *e = (struct encoder *)c;
	struct batch *b = &e->b[e->shard];
	int rc;

	if (b->family != e->family && (rc = batch_names(e, b))) {
		enc_fail(e, rc);
		return;
	}
	if (!e->tmpl_valid && (rc = enc_build_template(e))) {
		enc_fail(e, rc);
		return;
	}
	Label *name = b->names[kind];
	size_t le_size = 0;
	Label *lel = le ? batch_le(b, le, &le_size) : NULL;
	size_t nl = e->ntmpl + 1 + (le ? 1 : 0);
	Label **labels = arena_alloc(&b->arena, nl * sizeof *labels);
	TimeSeries *ts = arena_alloc(&b->arena, sizeof *ts + sizeof(Sample) + sizeof(Sample *));
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
	s->value = e->o->stale ? rw_stale_nan() : value;
	s->timestamp = e->o->ts_ms;
	*sp = s;
	prometheus__time_series__init(ts);
	ts->n_labels = nl;
	ts->labels = labels;
	ts->n_samples = 1;
	ts->samples = sp;
	b->series[b->n++] = ts;
	b->bytes += field_size(e->tmpl_size + b->names_size[kind] + le_size +
	                       field_size(prometheus__sample__get_packed_size(s)));
	if (b->n == e->o->max_samples && (rc = enc_flush(e, e->shard)))
		enc_fail(e, rc);
}

int rw_encode(struct registry *reg, const struct rw_encode_opts *o)
{
	struct encoder e;
	int rc = 0;
	size_t nshards = o->nshards ? o->nshards : 1;
	struct rw_encode_opts oo = *o;
	oo.nshards = nshards;
	if (!oo.max_samples)
		oo.max_samples = 1;
	memset(&e, 0, sizeof e);
	e.c.family = enc_family;
	e.c.series = enc_series;
	e.c.sample = enc_sample;
	e.o = &oo;
	buf_init(&e.packed, BUF_DEFAULT_MAX);
	buf_init(&e.compressed, BUF_DEFAULT_MAX);
	e.b = calloc(nshards, sizeof *e.b);
	if (!e.b) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nshards; i++)
		if (!(e.b[i].series = malloc(oo.max_samples * sizeof *e.b[i].series))) {
			rc = -ENOMEM;
			goto out;
		}
	rc = oo.ended        ? registry_collect_ended(reg, &e.c)
	     : oo.source < 0 ? registry_collect(reg, &e.c)
	                     : registry_collect_source(reg, (size_t)oo.source, &e.c);
	if (!rc)
		rc = e.err;
	for (size_t i = 0; i < nshards && !rc; i++)
		if (e.b[i].n)
			rc = enc_flush(&e, i);
	if (!rc && e.nmeta) /* metadata of families without series */
		rc = enc_flush(&e, 0);
out:
	meta_clear(&e);
	free(e.meta);
	if (e.b)
		for (size_t i = 0; i < nshards; i++) {
			free(e.b[i].series);
			arena_free(&e.b[i].arena);
		}
	free(e.b);
	buf_free(&e.packed);
	buf_free(&e.compressed);
	return rc;
}
