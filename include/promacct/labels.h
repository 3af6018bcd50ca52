/* Label names and values: validation, escaping, NAME=VALUE pairs. */
#ifndef PROMACCT_LABELS_H
#define PROMACCT_LABELS_H

#include <stddef.h>

#include "promacct/buf.h"
#include "promacct/common.h"

/* One limit on the labels of a series, the same for every output (scrape
 * page, Pushgateway, remote write), counting every label a series carries on
 * the wire: __name__, interface, ip, protocol and le (LABELS_FIXED), the
 * range's labels, and the Pushgateway grouping labels (job included) or the
 * remote-write external labels (job and instance included). Checked once at
 * start-up (and on reload) with labels_check_limit: a usage error, never a
 * silent drop. */
#define LABELS_MAX   64
#define LABELS_FIXED 5

/* The longest value of a range label, in bytes (-r and --config.file; a
 * longer one is a usage error naming it). A series' rendered labels have
 * their own, larger, bound (EXPO_TEXT_SERIES_LABELS_MAX). */
#define LABELS_VALUE_MAX 4096

struct label {
	char *name;
	char *value;
};

/* [a-zA-Z_][a-zA-Z0-9_]* */
int labels_name_valid(const char *name);
/* [a-zA-Z_:][a-zA-Z0-9_:]* */
int labels_metric_name_valid(const char *name);
/* Names promacct sets itself on its series (interface, ip, protocol, le,
 * job, instance) and everything starting with "__". */
int labels_name_reserved(const char *name);

/* Splits "NAME=VALUE" into freshly allocated strings (caller frees both).
 * Checks the name is valid. Returns 0 or -EINVAL with a reason in err. */
int labels_parse_pair(const char *text, struct label *out, char *err, size_t errlen) MUST_CHECK;
void labels_free(struct label *l, size_t n);
/* Nonzero when s is well-formed UTF-8 (label values must be). */
int labels_utf8_valid(const char *s);

/* 0 when a series with `range_labels` range labels and `extra_labels`
 * output labels (grouping or external, whichever is larger) fits in
 * LABELS_MAX; else -E2BIG with one line in err naming the counts. */
int labels_check_limit(size_t range_labels, size_t extra_labels, char *err,
                       size_t errlen) MUST_CHECK;

/* Text-format escaping: backslash and newline, and double quotes when
 * `quotes` (label values yes, HELP texts no). Bytes that are not
 * well-formed UTF-8 are written as U+FFFD (the format is UTF-8). */
void labels_escape(struct buf *b, const char *v, int quotes);
/* Text-format label value escaping: backslash, double quote, newline. */
void labels_escape_value(struct buf *b, const char *v);

#endif
