/* DESIGN: text exposition renderer.
 *
 * A collector (see registry.h) that writes the 0.0.4 text format into one
 * chunk of EXPO_TEXT_CHUNK bytes and hands each full chunk to a sink (the
 * scrape stream, stdout, a test's buffer), so a render holds one chunk
 * whatever the size of the page. Runs on the thread that asked (a render
 * thread of the scrape page, the push thread, main for --once); holds no
 * state between calls. The label part of a series is rendered once per
 * series and reused for each of its bucket, sum and count lines; numbers are
 * formatted without printf. A sample line is never split across a check of
 * the chunk: lines are appended whole, and the chunk is flushed after a
 * line once it holds EXPO_TEXT_CHUNK bytes. */
#include "promacct/expo_text.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#define PREFIX_MAX EXPO_TEXT_SERIES_LABELS_MAX

struct text_collector {
	struct collector c;
	struct buf *out;
	struct expo_sink *sink; /* NULL: render into out as a whole */
	uint64_t flushed;       /* bytes handed to the sink */
	const char *name;
	size_t name_len;
	char prefix[PREFIX_MAX]; /* {a="x",b="y" without the closing brace */
	size_t prefix_len;
};

void expo_text_escape_help(struct buf *b, const char *help)
{
	labels_escape(b, help, 0);
}

/* Hands the chunk to the sink once it is full (always when last). */
static void text_flush(struct text_collector *t, int last)
{
	struct buf *o = t->out;
	if (!t->sink || o->err || (!last && o->len < EXPO_TEXT_CHUNK) || o->len == 0)
		return;
	int rc = t->sink->write(t->sink, o->data, o->len);
	t->flushed += o->len;
	buf_reset(o);
	if (rc) {
		o->err = rc;
		t->c.stop = 1;
	}
}

static void text_family(struct collector *c, const char *name, const char *help,
                        enum metric_type type)
{
	struct text_collector *t = (struct text_collector *)c;
	static const char *const types[] = {"counter", "gauge", "histogram"};
	t->name = name;
	t->name_len = strlen(name);
	buf_append(t->out, "# HELP ", 7);
	buf_append(t->out, name, t->name_len);
	buf_append_char(t->out, ' ');
	expo_text_escape_help(t->out, help);
	buf_append(t->out, "\n# TYPE ", 8);
	buf_append(t->out, name, t->name_len);
	buf_append_char(t->out, ' ');
	buf_append_str(t->out, types[type]);
	buf_append_char(t->out, '\n');
	if (t->out->err)
		c->stop = 1;
	text_flush(t, 0);
}

static void text_series(struct collector *c, const struct series_labels *l)
{
	struct text_collector *t = (struct text_collector *)c;
	struct buf pb;
	/* Render into a bounded scratch buffer; an over-long label set stops
	 * the render with an error rather than being cut. */
	buf_init(&pb, PREFIX_MAX);
	pb.data = t->prefix;
	pb.cap = PREFIX_MAX;
	for (size_t i = 0; i < l->nfixed; i++) {
		buf_append_char(&pb, i ? ',' : '{');
		buf_append_str(&pb, l->fixed[i].name);
		buf_append(&pb, "=\"", 2);
		labels_escape_value(&pb, l->fixed[i].value);
		buf_append_char(&pb, '"');
	}
	if (l->extra_text) {
		/* pre-escaped, starts with ',' */
		if (l->nfixed)
			buf_append_str(&pb, l->extra_text);
		else if (l->extra_text[0]) {
			buf_append_char(&pb, '{');
			buf_append_str(&pb, l->extra_text + 1);
		}
	} else {
		for (size_t i = 0; i < l->nextra; i++) {
			buf_append_char(&pb, (i || l->nfixed) ? ',' : '{');
			buf_append_str(&pb, l->extra[i].name);
			buf_append(&pb, "=\"", 2);
			labels_escape_value(&pb, l->extra[i].value);
			buf_append_char(&pb, '"');
		}
	}
	if (pb.err) {
		t->out->err = -E2BIG;
		c->stop = 1;
	}
	t->prefix_len = pb.len;
}

static void append_value(struct buf *b, double v)
{
	if (v >= 0 && v < 18446744073709551616.0 && v == floor(v))
		buf_append_u64(b, (uint64_t)v);
	else
		buf_append_double(b, v);
}

static void text_sample(struct collector *c, enum sample_kind kind, const char *le, double value)
{
	struct text_collector *t = (struct text_collector *)c;
	struct buf *o = t->out;
	static const char *const suffix[] = {"", "_bucket", "_sum", "_count"};
	static const size_t suffix_len[] = {0, 7, 4, 6};

	if (buf_reserve(o, t->name_len + t->prefix_len + 64 + (le ? strlen(le) : 0))) {
		o->err = -E2BIG;
		c->stop = 1;
		return;
	}
	buf_append(o, t->name, t->name_len);
	buf_append(o, suffix[kind], suffix_len[kind]);
	if (t->prefix_len) {
		buf_append(o, t->prefix, t->prefix_len);
		if (le) {
			buf_append(o, ",le=\"", 5);
			buf_append_str(o, le);
			buf_append_char(o, '"');
		}
		buf_append_char(o, '}');
	} else if (le) {
		buf_append(o, "{le=\"", 5);
		buf_append_str(o, le);
		buf_append(o, "\"}", 2);
	}
	buf_append_char(o, ' ');
	append_value(o, value);
	buf_append_char(o, '\n');
	if (o->err)
		c->stop = 1;
	text_flush(t, 0);
}

static int render(struct registry *r, struct buf *out, struct expo_sink *sink, uint64_t *bytes)
{
	struct text_collector t;
	memset(&t.c, 0, sizeof t.c);
	t.c.family = text_family;
	t.c.series = text_series;
	t.c.sample = text_sample;
	t.out = out;
	t.sink = sink;
	t.flushed = 0;
	t.name = "";
	t.name_len = 0;
	t.prefix_len = 0;
	int rc = registry_collect(r, &t.c);
	if (!rc)
		text_flush(&t, 1);
	if (bytes)
		*bytes = sink ? t.flushed : out->len;
	return rc ? rc : out->err;
}

int expo_text_render(struct registry *r, struct buf *out)
{
	return render(r, out, NULL, NULL);
}

int expo_text_write(struct registry *r, struct expo_sink *sink, uint64_t *bytes)
{
	struct buf chunk;
	buf_init(&chunk, EXPO_TEXT_CHUNK_MAX);
	if (buf_reserve(&chunk, EXPO_TEXT_CHUNK_MAX)) {
		if (bytes)
			*bytes = 0;
		return -ENOMEM;
	}
	int rc = render(r, &chunk, sink, bytes);
	buf_free(&chunk);
	return rc;
}

struct fd_sink {
	struct expo_sink s;
	int fd;
};

static int fd_write(struct expo_sink *s, const char *data, size_t len)
{
	int fd = ((struct fd_sink *)s)->fd;
	while (len) {
		ssize_t w = write(fd, data, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

int expo_text_write_fd(struct registry *r, int fd, uint64_t *bytes)
{
	struct fd_sink s = {{fd_write}, fd};
	return expo_text_write(r, &s.s, bytes);
}
