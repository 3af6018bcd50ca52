/* DESIGN: label name rules and value escaping, shared by ranges, the text
 * exposition, Pushgateway grouping and remote-write external labels.
 * Stateless. */
#include "promacct/labels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_alpha_(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int labels_name_valid(const char *name)
{
	if (!name || !is_alpha_(name[0]))
		return 0;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p))
			return 0;
	return 1;
}

int labels_metric_name_valid(const char *name)
{
	if (!name || !(is_alpha_(name[0]) || name[0] == ':'))
		return 0;
	for (const char *p = name + 1; *p; p++)
		if (!is_alpha_(*p) && !is_digit(*p) && *p != ':')
			return 0;
	return 1;
}

int labels_name_reserved(const char *name)
{
	static const char *const reserved[] = {"ip", "interface", "protocol",
	                                       "le", "job",       "instance"};
	if (!strncmp(name, "__", 2))
		return 1;
	for (size_t i = 0; i < ARRAY_LEN(reserved); i++)
		if (!strcmp(name, reserved[i]))
			return 1;
	return 0;
}

int labels_parse_pair(const char *text, struct label *out, char *err, size_t errlen)
{
	const char *eq = strchr(text, '=');
	if (!eq) {
		snprintf(err, errlen, "expected NAME=VALUE, got '%s'", text);
		return -EINVAL;
	}
	char *name = strndup(text, (size_t)(eq - text));
	char *value = strdup(eq + 1);
	if (!name || !value) {
		free(name);
		free(value);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (!labels_name_valid(name)) {
		snprintf(err, errlen, "invalid label name '%s' (must match [a-zA-Z_][a-zA-Z0-9_]*)",
		         name);
		free(name);
		free(value);
		return -EINVAL;
	}
	if (!labels_utf8_valid(value)) {
		snprintf(err, errlen, "label %s: value is not valid UTF-8", name);
		free(name);
		free(value);
		return -EINVAL;
	}
	out->name = name;
	out->value = value;
	return 0;
}

void labels_free(struct label *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(l[i].name);
		free(l[i].value);
	}
}

int labels_check_limit(size_t range_labels, size_t extra_labels, char *err, size_t errlen)
{
	size_t total = LABELS_FIXED + range_labels + extra_labels;
	if (total <= LABELS_MAX)
		return 0;
	snprintf(err, errlen,
	         "too many labels per series: %zu range labels + %zu external/grouping labels + "
	         "%d fixed (__name__, interface, ip, protocol, le) = %zu, at most %d",
	         range_labels, extra_labels, LABELS_FIXED, total, LABELS_MAX);
	return -E2BIG;
}

/* Length of the well-formed UTF-8 sequence at p (1 to 4 bytes; no overlong
 * forms, surrogates or code points above U+10FFFF), 0 when there is none. */
static size_t utf8_seq_len(const unsigned char *p)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80
		           ? 4
		           : 0;
	}
	return 0;
}

int labels_utf8_valid(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		size_t n = utf8_seq_len(p);
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

void labels_escape(struct buf *b, const char *v, int quotes)
{
	const char *run = v;
	for (const char *p = v; *p; p++) {
		const char *esc = NULL;
		size_t esc_len = 2;
		if (*p == '\\') {
			esc = "\\\\";
		} else if (*p == '"' && quotes) {
			esc = "\\\"";
		} else if (*p == '\n') {
			esc = "\\n";
		} else if ((unsigned char)*p >= 0x80) {
			size_t n = utf8_seq_len((const unsigned char *)p);
			if (n) {
				p += n - 1;
				continue;
			}
			/* The format is UTF-8 (Prometheus rejects the whole page
			 * otherwise): a stray byte becomes U+FFFD. */
			esc = "\xef\xbf\xbd";
			esc_len = 3;
		}
		if (esc) {
			buf_append(b, run, (size_t)(p - run));
			buf_append(b, esc, esc_len);
			run = p + 1;
		}
	}
	buf_append_str(b, run);
}

void labels_escape_value(struct buf *b, const char *v)
{
	labels_escape(b, v, 1);
}
