/* A strict reader of small YAML configuration files on libyaml's event
 * API, shared by --config.file and --web.config.file. Errors are one line,
 * "FILE:LINE:COLUMN: problem" (1-based, where the offending node starts).
 * Anchors and aliases are refused; one document per file. */
#ifndef PROMACCT_YAML_READER_H
#define PROMACCT_YAML_READER_H

#include <stddef.h>
#include <stdio.h>
#include <yaml.h>

#include "promacct/common.h"

struct yaml_reader {
	yaml_parser_t parser;
	yaml_event_t ev; /* the current event, valid when have_ev */
	int have_ev;
	int parser_ok;
	FILE *fp;
	const char *path;
	char *err;
	size_t errlen;
};

/* Reads the file path (at most max_bytes) with r: calls root(arg) with the
 * root node as the current event, unless the file holds no document or a
 * null one; then checks the file holds nothing more, and closes it. root
 * reads the node to its end through r. Returns 0, or negative errno with
 * err set ("FILE:LINE:COLUMN: ...", "out of memory" for -ENOMEM). */
int yaml_reader_read(struct yaml_reader *r, const char *path, size_t max_bytes,
                     int (*root)(void *arg), void *arg, char *err, size_t errlen) MUST_CHECK;

/* Moves to the next event. */
int yaml_reader_next(struct yaml_reader *r) MUST_CHECK;
/* Sets err to "FILE:LINE:COLUMN: ..." and returns -EINVAL. */
int yaml_reader_fail(struct yaml_reader *r, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* In a mapping: moves to its next key. Returns 0 on a key (a scalar, the
 * current event; else an error naming it as `what`), 1 at the mapping's
 * end, negative errno on error. */
int yaml_reader_next_key(struct yaml_reader *r, const char *what) MUST_CHECK;
/* The current event must be a scalar. */
int yaml_reader_expect_scalar(struct yaml_reader *r, const char *what) MUST_CHECK;
/* The current event must start a mapping (or be null when null_ok). */
int yaml_reader_expect_mapping(struct yaml_reader *r, const char *what) MUST_CHECK;
const char *yaml_reader_scalar(const struct yaml_reader *r);
/* A null value: empty, ~ or null, unquoted. */
int yaml_reader_is_null(const struct yaml_reader *r);
/* "a list", "a mapping", "a scalar" */
const char *yaml_reader_what(const struct yaml_reader *r);

#endif
