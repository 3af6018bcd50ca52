/* Label names and values: validation, escaping, NAME=VALUE pairs. */
#ifndef PROMACCT_LABELS_H
#define PROMACCT_LABELS_H

#include <stddef.h>

#include "promacct/buf.h"
#include "promacct/common.h"

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

/* Text-format escaping: backslash and newline, and double quotes when
 * `quotes` (label values yes, HELP texts no). */
void labels_escape(struct buf *b, const char *v, int quotes);
/* Text-format label value escaping: backslash, double quote, newline. */
void labels_escape_value(struct buf *b, const char *v);

#endif
