/* DESIGN: growable output buffer with a hard cap.
 *
 * Used by one thread at a time (the renderer or sender that owns it). Appends
 * never truncate: a failed append leaves the buffer as it was and records the
 * error, so long render loops check once at the end. Integer and float
 * formatting is done here without printf for the render hot loop. */
#include "promacct/buf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void buf_init(struct buf *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max ? max : BUF_DEFAULT_MAX;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = 0;
}

char *buf_steal(struct buf *b, size_t *len)
{
	char *d = b->data;
	*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return d;
}

int buf_reserve(struct buf *b, size_t extra)
{
	if (extra > b->max || b->len > b->max - extra)
		return -E2BIG;
	size_t need = b->len + extra;
	if (need <= b->cap)
		return 0;
	size_t ncap = b->cap ? b->cap : 4096;
	while (ncap < need)
		ncap = ncap > b->max / 2 ? b->max : ncap * 2;
	/* The capacity never passes the cap: buf_append_char's fast path
	 * writes while len < cap. */
	if (ncap > b->max)
		ncap = b->max;
	char *nd = realloc(b->data, ncap);
	if (!nd)
		return -ENOMEM;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

void buf_append(struct buf *b, const void *data, size_t len)
{
	if (b->err)
		return;
	int rc = buf_reserve(b, len);
	if (rc) {
		b->err = rc;
		return;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
}

void buf_append_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_append_char(struct buf *b, char c)
{
	if (LIKELY(!b->err && b->len < b->cap)) {
		b->data[b->len++] = c;
		return;
	}
	buf_append(b, &c, 1);
}

size_t u64_to_dec(char *dst, uint64_t v)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		dst[i] = tmp[n - 1 - i];
	return n;
}

void buf_append_u64(struct buf *b, uint64_t v)
{
	char tmp[20];
	buf_append(b, tmp, u64_to_dec(tmp, v));
}

size_t double_to_text(char *dst, double v)
{
	if (isnan(v))
		return (size_t)sprintf(dst, "NaN");
	if (isinf(v))
		return (size_t)sprintf(dst, v > 0 ? "+Inf" : "-Inf");
	if (v == 0)
		return (size_t)sprintf(dst, signbit(v) ? "-0" : "0");
	/* Shortest digits that round-trip, laid out as Go's
	 * strconv.FormatFloat(v, 'g', -1, 64) does (what Prometheus and its
	 * client libraries print): exponent form when exp < -4 || exp >= 6. */
	char tmp[40];
	int prec;
	for (prec = 1; prec <= 17; prec++) {
		snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	int exp10 = atoi(strchr(tmp, 'e') + 1);
	if (exp10 < -4 || exp10 >= 6)
		return (size_t)sprintf(dst, "%s", tmp);
	int decimals = prec - 1 - exp10;
	if (decimals < 0)
		decimals = 0;
	return (size_t)sprintf(dst, "%.*f", decimals, v);
}

void buf_append_double(struct buf *b, double v)
{
	char tmp[40];
	buf_append(b, tmp, double_to_text(tmp, v));
}

void buf_printf(struct buf *b, const char *fmt, ...)
{
	if (b->err)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return;
	}
	int rc = buf_reserve(b, (size_t)n + 1);
	if (rc) {
		b->err = rc;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

int buf_gzip(struct buf *out, const void *src, size_t len, int level)
{
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	size_t cap = deflateBound(&zs, len);
	buf_reset(out);
	int rc = buf_reserve(out, cap ? cap : 1);
	if (rc) {
		deflateEnd(&zs);
		return rc;
	}
	zs.next_in = (Bytef *)src;
	zs.avail_in = (uInt)len;
	zs.next_out = (Bytef *)out->data;
	zs.avail_out = (uInt)cap;
	/* deflateBound guarantees one Z_FINISH call suffices; inputs are
	 * below 4 GiB (pages are capped at BUF_DEFAULT_MAX). */
	int zrc = deflate(&zs, Z_FINISH);
	deflateEnd(&zs);
	if (zrc != Z_STREAM_END)
		return -EIO;
	out->len = zs.total_out;
	return 0;
}
