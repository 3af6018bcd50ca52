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

void labels_escape(struct buf *b, const char *v, int quotes)
{
	const char *run = v;
	for (const char *p = v; *p; p++) {
		const char *esc = NULL;
		if (*p == '\\')
			esc = "\\\\";
		else if (*p == '"' && quotes)
			esc = "\\\"";
		else if (*p == '\n')
			esc = "\\n";
		if (esc) {
			buf_append(b, run, (size_t)(p - run));
			buf_append(b, esc, 2);
			run = p + 1;
		}
	}
	buf_append_str(b, run);
}

void labels_escape_value(struct buf *b, const char *v)
{
	labels_escape(b, v, 1);
}
