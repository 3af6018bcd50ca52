/* Prometheus text exposition format 0.0.4. */
#ifndef PROMACCT_EXPO_TEXT_H
#define PROMACCT_EXPO_TEXT_H

#include "promacct/buf.h"
#include "promacct/registry.h"

/* The rendered labels of one series ({a="x",b="y"...) are built in a buffer
 * of this size: a longer series is an error, so configured labels are
 * checked against it at start-up (EXPO_TEXT_FIXED_LABELS_MAX is what
 * interface, ip, protocol and le may take of it, a 255-byte file name
 * escaped included). */
#define EXPO_TEXT_SERIES_LABELS_MAX 8192
#define EXPO_TEXT_FIXED_LABELS_MAX  640

#define EXPO_TEXT_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Rendered text is handed to a sink in chunks of about EXPO_TEXT_CHUNK
 * bytes (never more than EXPO_TEXT_CHUNK_MAX); a render holds one chunk,
 * whatever the size of the page. */
#define EXPO_TEXT_CHUNK     (128 * 1024)
#define EXPO_TEXT_CHUNK_MAX (EXPO_TEXT_CHUNK + 32 * 1024)

struct expo_sink {
	/* Takes len bytes (the data is only valid during the call). Returns
	 * 0, or a negative errno that stops the render and is returned by
	 * expo_text_write. */
	int (*write)(struct expo_sink *s, const char *data, size_t len);
};

/* Streams the whole registry to the sink. Returns 0, -ENOMEM, -E2BIG (a
 * series whose labels exceed the label bound) or the sink's error; *bytes
 * (if not NULL) gets the bytes handed to the sink. */
int expo_text_write(struct registry *r, struct expo_sink *sink, uint64_t *bytes) MUST_CHECK;

/* expo_text_write to a file descriptor (--once to stdout). Returns 0 or a
 * negative errno (a write error: EPIPE, ENOSPC, ...). */
int expo_text_write_fd(struct registry *r, int fd, uint64_t *bytes) MUST_CHECK;

/* Renders the whole registry into out (appended): for small states and
 * tests; outputs stream with expo_text_write. Returns 0, -ENOMEM or -E2BIG
 * when the page would exceed out->max. */
int expo_text_render(struct registry *r, struct buf *out) MUST_CHECK;

/* Writes a HELP text escaped (backslash, newline). */
void expo_text_escape_help(struct buf *b, const char *help);

#endif
