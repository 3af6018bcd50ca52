/* DESIGN: a render of the registry streamed to a consumer that pulls.
 *
 * The registry walk pushes text (expo_text_write calls a sink per chunk);
 * libmicrohttpd and libcurl pull their bodies. A render stream joins the two
 * with one thread per render and a queue of RENDER_QUEUE chunks: the render
 * thread fills the chunk after the published ones (copying a text chunk, or
 * deflating into it for gzip) and publishes it; it waits while the queue is
 * full, so a slow reader slows the render instead of growing memory. The
 * consumer copies out of the oldest published chunk and frees it.
 *
 * Threads: the render thread owns the chunk being filled and the zlib state;
 * `lock` guards head/count/ended/status, which both sides read. The render
 * thread calls opts.ready with no lock held (the consumer's resume hook);
 * render_stream_free sets `stop`, which every wait of the render thread
 * checks, and joins it: the render ends within one chunk.
 *
 * A consumer that stops taking output holds the render (and whatever slot
 * the caller's admit gave it) for as long as it stays connected: with
 * opts.stall_timeout, a render that finds the queue full and sees no chunk
 * taken for that long ends with -ETIMEDOUT (a client reading a few bytes at
 * a time is as stalled as one reading none). */
#include "promacct/render.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* The render thread's stack: the walk and the text collector need ~20 KiB. */
#define RENDER_STACK (256 * 1024)

struct slot {
	char *data;
	size_t len; /* bytes in it */
	size_t off; /* bytes the consumer has read */
};

struct render_stream {
	struct expo_sink sink; /* first: the sink callback gets the stream */
	struct registry *reg;
	struct render_opts o;
	pthread_t thread;
	int started; /* under lock; the starting thread reads it without */
	_Atomic int stop;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* a chunk published or freed, the end, stop */
	struct slot q[RENDER_QUEUE];
	size_t slot_cap;
	size_t head, count; /* published chunks: q[head], ... (count of them) */
	int ended, status;

	z_stream zs; /* render thread only */
	int zinit;
	_Atomic uint64_t text_bytes;
};

static void notify(struct render_stream *s)
{
	if (s->o.ready)
		s->o.ready(s->o.arg);
}

/* The chunk the render thread fills (after the published ones); waits
 * while the queue is full, at most opts.stall_timeout when set. NULL when
 * the stream is stopped (*err -ECANCELED) or the consumer stalled (*err
 * -ETIMEDOUT). */
static struct slot *fill_slot(struct render_stream *s, int *err)
{
	struct slot *sl = NULL;
	double deadline = 0;
	*err = -ECANCELED;
	pthread_mutex_lock(&s->lock);
	while (s->count == RENDER_QUEUE && !atomic_load(&s->stop)) {
		if (s->o.stall_timeout <= 0) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		double now = time_monotonic();
		if (deadline == 0)
			deadline = now + s->o.stall_timeout;
		if (now >= deadline) {
			*err = -ETIMEDOUT;
			goto out;
		}
		cond_wait_signal_until(&s->cond, &s->lock, deadline);
	}
	if (!atomic_load(&s->stop))
		sl = &s->q[(s->head + s->count) % RENDER_QUEUE];
out:
	pthread_mutex_unlock(&s->lock);
	return sl;
}

static void publish(struct render_stream *s)
{
	pthread_mutex_lock(&s->lock);
	s->count++;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	notify(s);
}

static int plain_write(struct expo_sink *k, const char *data, size_t len)
{
	struct render_stream *s = (struct render_stream *)k;
	atomic_fetch_add_explicit(&s->text_bytes, len, memory_order_relaxed);
	while (len) {
		int err;
		struct slot *sl = fill_slot(s, &err);
		if (!sl)
			return err;
		size_t n = len < s->slot_cap ? len : s->slot_cap;
		memcpy(sl->data, data, n);
		sl->len = n;
		sl->off = 0;
		publish(s);
		data += n;
		len -= n;
	}
	return 0;
}

/* Deflates what is in zs (flush Z_NO_FLUSH or Z_FINISH) into chunks,
 * publishing each full one (and the last one at Z_FINISH). */
static int deflate_out(struct render_stream *s, int flush)
{
	for (;;) {
		int err;
		struct slot *sl = fill_slot(s, &err);
		if (!sl)
			return err;
		s->zs.next_out = (Bytef *)sl->data + sl->len;
		s->zs.avail_out = (uInt)(s->slot_cap - sl->len);
		int zrc = deflate(&s->zs, flush);
		if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
			return -EIO;
		sl->len = s->slot_cap - s->zs.avail_out;
		sl->off = 0;
		int full = sl->len == s->slot_cap;
		if (full || (zrc == Z_STREAM_END && sl->len))
			publish(s);
		if (zrc == Z_STREAM_END)
			return 0;
		if (flush == Z_NO_FLUSH && s->zs.avail_in == 0 && !full)
			return 0;
	}
}

static int gzip_write(struct expo_sink *k, const char *data, size_t len)
{
	struct render_stream *s = (struct render_stream *)k;
	atomic_fetch_add_explicit(&s->text_bytes, len, memory_order_relaxed);
	s->zs.next_in = (Bytef *)data;
	s->zs.avail_in = (uInt)len; /* chunks are far below 4 GiB */
	return deflate_out(s, Z_NO_FLUSH);
}

/* The chunks and the zlib state, allocated once admitted (a render waiting
 * for a slot holds only its thread). */
static int render_alloc(struct render_stream *s)
{
	for (int i = 0; i < RENDER_QUEUE; i++) {
		s->q[i].data = malloc(s->slot_cap);
		if (!s->q[i].data)
			return -ENOMEM;
	}
	if (s->o.gzip) {
		int level = s->o.gzip_level >= 1 && s->o.gzip_level <= 9 ? s->o.gzip_level : 1;
		if (deflateInit2(&s->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return -ENOMEM;
		s->zinit = 1;
	}
	return 0;
}

static void *render_main(void *arg)
{
	struct render_stream *s = arg;
	int rc = s->o.admit ? s->o.admit(s->o.arg, &s->stop) : 0;
	if (rc == 0 && (rc = render_alloc(s)) != 0 && s->o.done)
		s->o.done(s->o.arg, rc, 0);
	if (rc == 0) {
		uint64_t bytes = 0;
		rc = expo_text_write(s->reg, &s->sink, &bytes);
		if (rc == 0 && s->o.gzip) {
			s->zs.next_in = NULL;
			s->zs.avail_in = 0;
			rc = deflate_out(s, Z_FINISH);
		}
		if (s->o.done)
			s->o.done(s->o.arg, rc, bytes);
	}
	pthread_mutex_lock(&s->lock);
	s->ended = 1;
	s->status = rc;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	notify(s);
	return NULL;
}

struct render_stream *render_stream_new(struct registry *r, const struct render_opts *o)
{
	struct render_stream *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->reg = r;
	s->o = *o;
	s->sink.write = o->gzip ? gzip_write : plain_write;
	s->slot_cap = o->gzip ? RENDER_GZIP_SLOT : RENDER_SLOT;
	pthread_mutex_init(&s->lock, NULL);
	cond_init_monotonic(&s->cond); /* fill_slot's deadline */
	return s;
}

int render_stream_start(struct render_stream *s)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, RENDER_STACK);
	/* `started` under the lock: other threads ask render_stream_ended
	 * while the thread starts (a server shutting down). */
	pthread_mutex_lock(&s->lock);
	int rc = pthread_create(&s->thread, &attr, render_main, s);
	s->started = rc == 0;
	pthread_mutex_unlock(&s->lock);
	pthread_attr_destroy(&attr);
	return -rc;
}

ssize_t render_stream_read(struct render_stream *s, char *dst, size_t max, int block)
{
	ssize_t n = 0;
	pthread_mutex_lock(&s->lock);
	while (s->count == 0 && !s->ended && block)
		pthread_cond_wait(&s->cond, &s->lock);
	if (s->count > 0) {
		struct slot *sl = &s->q[s->head];
		size_t k = sl->len - sl->off < max ? sl->len - sl->off : max;
		memcpy(dst, sl->data + sl->off, k);
		sl->off += k;
		if (sl->off == sl->len) {
			sl->len = sl->off = 0;
			s->head = (s->head + 1) % RENDER_QUEUE;
			s->count--;
			pthread_cond_broadcast(&s->cond);
		}
		n = (ssize_t)k;
	} else if (s->ended) {
		n = s->status ? s->status : RENDER_EOF;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

int render_stream_poll(struct render_stream *s)
{
	pthread_mutex_lock(&s->lock);
	int r = s->count > 0 || (s->ended && !s->status) ? 1 : s->ended ? s->status : 0;
	pthread_mutex_unlock(&s->lock);
	return r;
}

int render_stream_ended(struct render_stream *s)
{
	pthread_mutex_lock(&s->lock);
	int r = s->ended || !s->started;
	pthread_mutex_unlock(&s->lock);
	return r;
}

uint64_t render_stream_text_bytes(struct render_stream *s)
{
	return atomic_load_explicit(&s->text_bytes, memory_order_relaxed);
}

void render_stream_cancel(struct render_stream *s)
{
	pthread_mutex_lock(&s->lock);
	atomic_store(&s->stop, 1);
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void render_stream_free(struct render_stream *s)
{
	if (!s)
		return;
	render_stream_cancel(s);
	if (s->started)
		pthread_join(s->thread, NULL);
	if (s->zinit)
		deflateEnd(&s->zs);
	for (int i = 0; i < RENDER_QUEUE; i++)
		free(s->q[i].data);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}
