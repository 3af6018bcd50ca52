/* Growable byte buffer with a hard cap; every append can fail and says so. */
#ifndef PROMACCT_BUF_H
#define PROMACCT_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "promacct/common.h"

/* Default cap for rendered pages and request bodies. */
#define BUF_DEFAULT_MAX ((size_t)2 << 30)

struct buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max; /* appends beyond this fail with -E2BIG */
	int err;    /* first error of an append since buf_reset, 0 if none */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Empties the buffer, keeps its memory. */
void buf_reset(struct buf *b);
/* Hands the data to the caller (caller frees), leaves the buffer empty. */
char *buf_steal(struct buf *b, size_t *len);

int buf_reserve(struct buf *b, size_t extra) MUST_CHECK;
/* Appends; on failure the error is remembered in b->err and the buffer is
 * unchanged, so a caller can append many pieces and check b->err once. */
void buf_append(struct buf *b, const void *data, size_t len);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_append_u64(struct buf *b, uint64_t v);
/* Go-compatible float text: +Inf, -Inf, NaN, shortest round-trip form. */
void buf_append_double(struct buf *b, double v);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Replaces the content of out with the gzip (RFC 1952) form of src at zlib
 * level 1-9. Returns 0, -ENOMEM, -E2BIG (over out->max) or -EIO. */
int buf_gzip(struct buf *out, const void *src, size_t len, int level) MUST_CHECK;

/* Writes the decimal form of v at dst (needs 20 bytes), returns length. */
size_t u64_to_dec(char *dst, uint64_t v);
/* Formats a double like Go's strconv.FormatFloat(v, 'g', -1, 64) as used by
 * Prometheus' text format. dst needs 32 bytes. Returns length. */
size_t double_to_text(char *dst, double v);

#endif
