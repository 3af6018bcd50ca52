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

/* Opens path (at most max_bytes) and positions on the root node (the
 * current event). Returns 0 (*empty set when the file holds no document or
 * a null one), or negative errno with err set. Close in every case. */
int yaml_reader_open(struct yaml_reader *r, const char *path, size_t max_bytes, int *empty,
                     char *err, size_t errlen) MUST_CHECK;
/* After the root node: checks the file holds nothing more. */
int yaml_reader_finish(struct yaml_reader *r) MUST_CHECK;
void yaml_reader_close(struct yaml_reader *r);

/* Moves to the next event. */
int yaml_reader_next(struct yaml_reader *r) MUST_CHECK;
/* Sets err to "FILE:LINE:COLUMN: ..." and returns -EINVAL. */
int yaml_reader_fail(struct yaml_reader *r, yaml_mark_t m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
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
