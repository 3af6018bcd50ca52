/* DESIGN: logfmt (or JSON lines) logging to stderr, escaping included.
 *
 * Any thread may log. A line is built in a stack buffer and written with
 * one write(2), so lines from different threads never interleave. Level and
 * format are set once at start-up, before threads exist.
 *
 * Escaping is done here, not by callers: the `kv` format is split into
 * `key=VALUE` fields, each VALUE is expanded with its own printf conversions
 * into a raw buffer, and the raw text is then written escaped for the
 * format. Quotes, backslashes and control bytes are escaped (\n, \t, \r,
 * \u00XX), and bytes that are not valid UTF-8 become \ufffd, so a logfmt
 * line is always one line and a JSON line is always valid JSON, whatever a
 * file name, URL, HTTP body or error text holds. Lines are bounded: a value
 * is cut at LOG_VALUE_MAX bytes, a line at LOG_LINE_MAX (the value that does
 * not fit is cut, the fields after it are dropped, `truncated=true` is
 * added), both marked with "...".
 *
 * Rate limiting: a log_limit holds its own mutex (taken only by the thread
 * that logs through it, never on a hot path); log_state_changed is one
 * atomic exchange. */
#include "promacct/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "promacct/common.h"

#define KEY_MAX 64

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_LOGFMT;
static int out_fd = STDERR_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_set_level(const char *name)
{
	for (unsigned i = 0; i < ARRAY_LEN(level_names); i++)
		if (!strcmp(name, level_names[i])) {
			min_level = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

void log_set_level_value(enum log_level level)
{
	min_level = level;
}

int log_set_format(const char *name)
{
	if (!strcmp(name, "logfmt"))
		format = LOG_LOGFMT;
	else if (!strcmp(name, "json"))
		format = LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

void log_set_fd(int fd)
{
	out_fd = fd;
}

int log_enabled(enum log_level level)
{
	return level >= min_level;
}

const char *log_bytes(char *dst, size_t cap, const char *src, size_t len)
{
	if (!cap)
		return dst;
	size_t n = len < cap - 1 ? len : cap - 1;
	int cut = n < len;
	if (cut && n >= 3)
		n -= 3;
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] ? src[i] : ' ';
	if (cut && cap > 3) {
		memcpy(dst + n, "...", 3);
		n += 3;
	}
	dst[n] = '\0';
	return dst;
}

/* A bounded output buffer. `cap` leaves room for the line's closing bytes. */
struct out {
	char *p;
	size_t len, cap;
	int full; /* something did not fit */
};

static int out_put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->full = 1;
		return -1;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	return 0;
}

static int out_str(struct out *o, const char *s)
{
	return out_put(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0; /* no overlong forms */
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f; /* nothing above U+10FFFF */
	} else
		return 0;
	if (n < need + 1)
		return 0;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return need + 1;
}

/* Whether a logfmt value can go without quotes. */
static int logfmt_bare(const char *v, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f)
			return 0;
	}
	return 1;
}

/* Writes v[0..n) as a quoted string for logfmt and JSON alike (the escapes
 * used are valid in both). When it does not fit, the string is cut at a
 * character boundary, ends with "..." and o->full is set. Returns -1 when
 * nothing was written (no room for even a short piece). */
static int out_quoted(struct out *o, const char *v, size_t n)
{
	const unsigned char *s = (const unsigned char *)v;
	if (o->len + 2 + 3 + 16 > o->cap) { /* not even a useful piece fits */
		o->full = 1;
		return -1;
	}
	o->cap -= 4; /* keep room for ..." */
	out_put(o, "\"", 1);
	for (size_t i = 0; i < n;) {
		char esc[8];
		const char *w = esc;
		size_t wl, step = 1;
		unsigned char c = s[i];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			wl = 2;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			esc[0] = '\\';
			esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			wl = 2;
		} else if (c < 0x20 || c == 0x7f) {
			wl = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
		} else if (c < 0x80) {
			w = (const char *)s + i;
			wl = 1;
		} else if ((step = utf8_len(s + i, n - i)) > 0) {
			w = (const char *)s + i;
			wl = step;
		} else {
			memcpy(esc, "\\ufffd", 6);
			wl = 6;
			step = 1;
		}
		if (out_put(o, w, wl)) {
			o->cap += 4;
			o->full = 0;
			out_put(o, "...\"", 4);
			o->full = 1; /* the line is cut */
			return 0;
		}
		i += step;
	}
	o->cap += 4;
	out_put(o, "\"", 1);
	return 0;
}

static void out_key(struct out *o, const char *k, size_t n)
{
	char key[KEY_MAX];
	if (n == 0)
		k = "detail", n = 6;
	if (n >= sizeof key)
		n = sizeof key - 1;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		         (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		key[i] = ok ? c : '_';
	}
	if (format == LOG_JSON) {
		out_put(o, ",\"", 2);
		out_put(o, key, n);
		out_put(o, "\":", 2);
	} else {
		out_put(o, " ", 1);
		out_put(o, key, n);
		out_put(o, "=", 1);
	}
}

/* One field. A value that does not fit is cut (quoted, ending in "...");
 * when not even the key and a short piece fit, nothing of the field is
 * written, so a line never ends in the middle of a field. */
static void out_field(struct out *o, const char *key, size_t kl, const char *v, size_t n, int quote)
{
	size_t mark = o->len;
	out_key(o, key, kl);
	if (o->full) {
		o->len = mark;
		return;
	}
	if (format == LOG_LOGFMT && !quote && logfmt_bare(v, n) && o->len + n <= o->cap) {
		out_put(o, v, n);
		return;
	}
	if (out_quoted(o, v, n))
		o->len = mark;
}

/* Appends to raw[*rl] (cap LOG_VALUE_MAX), marking a cut with "...". */
static void raw_put(char *raw, size_t *rl, const char *s, size_t n)
{
	size_t room = LOG_VALUE_MAX - *rl;
	if (n > room) {
		n = room;
		if (n >= 3) {
			memcpy(raw + *rl, s, n - 3);
			memcpy(raw + *rl + n - 3, "...", 3);
			*rl += n;
			return;
		}
	}
	memcpy(raw + *rl, s, n);
	*rl += n;
}

/* Expands the printf conversion that starts at *pp ('%') into raw, taking
 * its argument from ap; advances *pp past it. Returns -1 for a conversion
 * it does not know (its argument's type is unknown: the caller must stop
 * reading arguments), else 0. */
static int expand_conversion(const char **pp, va_list *ap, char *raw, size_t *rl)
{
	const char *p = *pp + 1;
	char spec[32];
	size_t sl = 0;
	int width = 0, prec = 0, has_width = 0, has_prec = 0;
	enum { L_NONE, L_HH, L_H, L_L, L_LL, L_Z, L_J, L_T, L_BIGL } len = L_NONE;
	char tmp[LOG_VALUE_MAX + 1];
	int n = 0;

	spec[sl++] = '%';
	while (*p && strchr("-+ #0", *p) && sl < 8)
		spec[sl++] = *p++;
	if (*p == '*') {
		width = va_arg(*ap, int);
		has_width = 1;
		spec[sl++] = '*';
		p++;
	} else
		while (*p >= '0' && *p <= '9' && sl < 16)
			spec[sl++] = *p++;
	if (*p == '.') {
		spec[sl++] = *p++;
		if (*p == '*') {
			prec = va_arg(*ap, int);
			has_prec = 1;
			spec[sl++] = '*';
			p++;
		} else
			while (*p >= '0' && *p <= '9' && sl < 24)
				spec[sl++] = *p++;
	}
	if (p[0] == 'h' && p[1] == 'h')
		len = L_HH, p += 2;
	else if (p[0] == 'h')
		len = L_H, p++;
	else if (p[0] == 'l' && p[1] == 'l')
		len = L_LL, p += 2;
	else if (p[0] == 'l')
		len = L_L, p++;
	else if (p[0] == 'z')
		len = L_Z, p++;
	else if (p[0] == 'j')
		len = L_J, p++;
	else if (p[0] == 't')
		len = L_T, p++;
	else if (p[0] == 'L')
		len = L_BIGL, p++;
	char conv = *p;
	if (!conv) {
		*pp = p;
		return -1;
	}
	p++;
	*pp = p;

#define FMT(value)                                                                                 \
	do {                                                                                       \
		if (has_width && has_prec)                                                         \
			n = snprintf(tmp, sizeof tmp, spec, width, prec, value);                   \
		else if (has_width)                                                                \
			n = snprintf(tmp, sizeof tmp, spec, width, value);                         \
		else if (has_prec)                                                                 \
			n = snprintf(tmp, sizeof tmp, spec, prec, value);                          \
		else                                                                               \
			n = snprintf(tmp, sizeof tmp, spec, value);                                \
	} while (0)

	switch (conv) {
	case 'd':
	case 'i':
		memcpy(spec + sl, "jd", 3);
		switch (len) {
		case L_L:
			FMT((intmax_t)va_arg(*ap, long));
			break;
		case L_LL:
			FMT((intmax_t)va_arg(*ap, long long));
			break;
		case L_Z:
		case L_T:
			FMT((intmax_t)va_arg(*ap, ptrdiff_t));
			break;
		case L_J:
			FMT(va_arg(*ap, intmax_t));
			break;
		default:
			FMT((intmax_t)va_arg(*ap, int));
			break;
		}
		break;
	case 'u':
	case 'x':
	case 'X':
	case 'o':
		spec[sl] = 'j';
		spec[sl + 1] = conv;
		spec[sl + 2] = '\0';
		switch (len) {
		case L_L:
			FMT((uintmax_t)va_arg(*ap, unsigned long));
			break;
		case L_LL:
			FMT((uintmax_t)va_arg(*ap, unsigned long long));
			break;
		case L_Z:
		case L_T:
			FMT((uintmax_t)va_arg(*ap, size_t));
			break;
		case L_J:
			FMT(va_arg(*ap, uintmax_t));
			break;
		default:
			FMT((uintmax_t)va_arg(*ap, unsigned));
			break;
		}
		break;
	case 'f':
	case 'F':
	case 'e':
	case 'E':
	case 'g':
	case 'G':
	case 'a':
	case 'A':
		if (len == L_BIGL) {
			spec[sl] = 'L';
			spec[sl + 1] = conv;
			spec[sl + 2] = '\0';
			FMT(va_arg(*ap, long double));
		} else {
			spec[sl] = conv;
			spec[sl + 1] = '\0';
			FMT(va_arg(*ap, double));
		}
		break;
	case 'c':
		spec[sl] = 'c';
		spec[sl + 1] = '\0';
		FMT(va_arg(*ap, int));
		break;
	case 's': {
		const char *s = va_arg(*ap, const char *);
		spec[sl] = 's';
		spec[sl + 1] = '\0';
		FMT(s ? s : "(null)");
		break;
	}
	case 'p':
		spec[sl] = 'p';
		spec[sl + 1] = '\0';
		FMT(va_arg(*ap, void *));
		break;
	case '%':
		tmp[0] = '%';
		n = 1;
		break;
	default: /* unsupported (%n, %m and friends) */
		return -1;
	}
#undef FMT
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof tmp) { /* longer than any value: raw_put cuts and marks */
		raw_put(raw, rl, tmp, sizeof tmp);
		return 0;
	}
	raw_put(raw, rl, tmp, (size_t)n);
	return 0;
}

/* Splits `kv` into fields and writes each one escaped. */
static void out_fields(struct out *o, const char *kv, va_list *ap)
{
	const char *p = kv;
	char raw[LOG_VALUE_MAX];
	while (p && *p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		const char *key = p;
		size_t kl = 0;
		const char *eq = p;
		while (*eq && *eq != '=' && *eq != ' ' && *eq != '%' && *eq != '"')
			eq++;
		if (*eq == '=') {
			kl = (size_t)(eq - p);
			p = eq + 1;
		}
		size_t rl = 0;
		int bad = 0;
		int quoted = *p == '"';
		if (quoted)
			p++;
		while (*p && !bad && (quoted ? *p != '"' : *p != ' ')) {
			if (*p == '%') {
				bad = expand_conversion(&p, ap, raw, &rl);
			} else if (quoted && *p == '\\' && p[1]) {
				raw_put(raw, &rl, p + 1, 1);
				p += 2;
			} else {
				raw_put(raw, &rl, p, 1);
				p++;
			}
		}
		if (quoted && *p == '"')
			p++;
		if (bad)
			raw_put(raw, &rl, "<bad format>", 12);
		else if (kl == 0 && rl == 0)
			continue; /* "%s" with "" */
		out_field(o, key, kl, raw, rl, quoted);
		if (o->full || bad)
			return;
	}
}

static void emit(enum log_level level, const char *msg, const char *extra_key, uint64_t extra,
                 const char *kv, va_list ap)
{
	char line[LOG_LINE_MAX];
	char ts[40];
	struct timespec now;
	struct tm tm;
	va_list aq;
	/* The closing bytes ("}\n" or "\n", truncated=true) always fit. */
	static const char trunc_json[] = ",\"truncated\":\"true\"";
	struct out o = {line, 0, sizeof line - sizeof trunc_json - 2, 0};

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", now.tv_nsec / 1000000);

	if (format == LOG_JSON) {
		out_str(&o, "{\"ts\":\"");
		out_str(&o, ts);
		out_str(&o, "\",\"level\":\"");
		out_str(&o, level_names[level]);
		out_str(&o, "\",\"msg\":");
	} else {
		out_str(&o, "ts=");
		out_str(&o, ts);
		out_str(&o, " level=");
		out_str(&o, level_names[level]);
		out_str(&o, " msg=");
	}
	out_quoted(&o, msg, strlen(msg));
	o.full = 0;
	va_copy(aq, ap);
	out_fields(&o, kv, &aq);
	va_end(aq);
	if (extra_key && !o.full) {
		char n[24];
		snprintf(n, sizeof n, "%" PRIu64, extra);
		out_field(&o, extra_key, strlen(extra_key), n, strlen(n), 0);
	}
	o.cap = sizeof line;
	if (o.full)
		out_str(&o, format == LOG_JSON ? trunc_json : " truncated=true");
	out_str(&o, format == LOG_JSON ? "}\n" : "\n");
	ssize_t w = write(out_fd, line, o.len);
	(void)w;
}

void log_vwrite(enum log_level level, const char *msg, const char *kv, va_list ap)
{
	if (level < min_level)
		return;
	emit(level, msg, NULL, 0, kv, ap);
}

void log_write(enum log_level level, const char *msg, const char *kv, ...)
{
	va_list ap;
	if (level < min_level)
		return;
	va_start(ap, kv);
	emit(level, msg, NULL, 0, kv, ap);
	va_end(ap);
}

void log_limit_init(struct log_limit *l, double interval)
{
	pthread_mutex_init(&l->lock, NULL);
	l->interval = interval;
	l->next = 0;
	l->suppressed = 0;
}

void log_limit_destroy(struct log_limit *l)
{
	pthread_mutex_destroy(&l->lock);
}

int log_limited(struct log_limit *l, enum log_level level, const char *msg, const char *kv, ...)
{
	if (level < min_level)
		return 0;
	double now = time_monotonic();
	uint64_t suppressed;
	pthread_mutex_lock(&l->lock);
	if (l->next != 0 && now < l->next) {
		l->suppressed++;
		pthread_mutex_unlock(&l->lock);
		return 0;
	}
	suppressed = l->suppressed;
	l->suppressed = 0;
	l->next = now + l->interval;
	pthread_mutex_unlock(&l->lock);
	va_list ap;
	va_start(ap, kv);
	emit(level, msg, suppressed ? "suppressed" : NULL, suppressed, kv, ap);
	va_end(ap);
	return 1;
}

int log_state_changed(struct log_state *s, int state)
{
	return atomic_exchange_explicit(&s->state, state, memory_order_relaxed) != state;
}
