/* A render of the registry on its own thread, read out by a consumer in
 * bounded chunks: the scrape page (pulled by libmicrohttpd), pushes (pulled
 * by libcurl). Memory per stream is bounded (RENDER_QUEUE chunks of at most
 * RENDER_SLOT bytes, one text chunk, a zlib state and the registry's read-out
 * batch), whatever the size of the page. */
#ifndef PROMACCT_RENDER_H
#define PROMACCT_RENDER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "promacct/common.h"
#include "promacct/expo_text.h"
#include "promacct/registry.h"

#define RENDER_QUEUE     2                   /* chunks ready for the consumer */
#define RENDER_SLOT      EXPO_TEXT_CHUNK_MAX /* bytes per queued chunk */
#define RENDER_GZIP_SLOT (64 * 1024)         /* bytes per queued gzip chunk */

/* render_stream_read: the render ended and everything was read. */
#define RENDER_EOF ((ssize_t)-1000000)

struct render_opts {
	int gzip;       /* the output is the gzip (RFC 1952) form of the text */
	int gzip_level; /* zlib level 1-9 (0: 1) */
	/* Called on the render thread, with no lock of the stream held,
	 * whenever output became readable or the stream ended. NULL for
	 * blocking readers. */
	void (*ready)(void *arg);
	/* Called first on the render thread: 0 to go on, or a negative errno
	 * to end the stream with that error before any output (e.g. -EBUSY:
	 * no render slot). stop becomes nonzero when the stream is being
	 * freed; a waiting admit must watch it. NULL: always admitted. */
	int (*admit)(void *arg, const _Atomic int *stop);
	/* Called on the render thread when an admitted render ends. */
	void (*done)(void *arg, int status, uint64_t text_bytes);
	void *arg; /* for ready, admit and done */
	/* Seconds the render waits for the consumer to take a chunk while the
	 * queue is full before it ends with -ETIMEDOUT; 0: no limit. */
	double stall_timeout;
};

struct render_stream;

/* Allocates a stream (no thread yet). NULL when out of memory. */
struct render_stream *render_stream_new(struct registry *r, const struct render_opts *o);
/* Starts the render thread. Returns 0 or a negative errno. */
int render_stream_start(struct render_stream *s) MUST_CHECK;
/* Copies up to max bytes of output to dst. Returns the count (> 0),
 * RENDER_EOF at the end, a negative errno when the render failed (-EBUSY
 * when admit refused it), or 0 when no output is ready yet: with block the
 * call waits instead; without, opts.ready is called once output is ready. */
ssize_t render_stream_read(struct render_stream *s, char *dst, size_t max, int block);
/* Whether the stream has output or ended: 0 not yet (opts.ready follows),
 * 1 output is ready or the stream ended cleanly, else the negative errno it
 * failed with before any output. Never blocks. */
int render_stream_poll(struct render_stream *s);
/* Whether the render thread has ended (or never started). Never blocks. */
int render_stream_ended(struct render_stream *s);
/* Text bytes rendered so far (the whole page once RENDER_EOF was read). */
uint64_t render_stream_text_bytes(struct render_stream *s);
/* Asks the render to stop (it ends with -ECANCELED within one chunk;
 * opts.ready is called); does not wait. Any thread. */
void render_stream_cancel(struct render_stream *s);
/* Stops the render (it ends within one chunk) and joins its thread, then
 * frees. Safe on a stream never started and on NULL. */
void render_stream_free(struct render_stream *s);

#endif
