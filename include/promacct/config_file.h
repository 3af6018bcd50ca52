/* --config.file: the YAML file of ranges (issue 8), parsed with libyaml.
 *
 *   ranges:
 *     - prefix: 198.51.100.0/24        # or: first: 198.51.100.10  last: 198.51.100.99
 *       labels: {customer: acme, plan: gold}
 *       granularity: 32                # optional: rollup prefix length
 *       max_addresses: 1000            # optional: cap of this range's tracked keys
 *
 * Loading validates everything (unknown keys, bad prefixes or addresses,
 * reserved or invalid label names, granularity outside 1-32 / 1-128, first
 * after last, more labels than LABELS_MAX allows): an error names
 * FILE:LINE:COLUMN and the problem, and nothing is returned. The same call
 * serves start-up (config_parse: exit 2) and reload (SIGHUP, POST
 * /-/reload: the old state stays). */
#ifndef PROMACCT_CONFIG_FILE_H
#define PROMACCT_CONFIG_FILE_H

#include <stddef.h>

#include "promacct/common.h"
#include "promacct/labels.h"
#include "promacct/ranges.h"

#define CONFIG_FILE_MAX_BYTES (256u << 20) /* a larger file is an error */

/* One range of the file. e.labels points to storage owned by the
 * config_file (freed by config_file_free). e.granularity is 0 when the file
 * gives none (per address), e.max_addresses 0 when it gives none. */
struct config_file_range {
	struct range_entry e;
	unsigned line, column; /* where the entry starts (1-based), for messages */
};

struct config_file {
	char *path;                  /* as given */
	struct config_file_range *v; /* in file order: first match wins */
	size_t n;
	size_t max_labels; /* largest nlabels of any range */
};

/* Reads and validates path into *out (zeroed first). Returns 0, or
 * -EINVAL (file content), -ENOENT/-EACCES/... (opening), -ENOMEM, with one
 * line in err ("FILE:LINE:COLUMN: problem" for content errors). On error
 * *out holds nothing to free (config_file_free is harmless). */
int config_file_load(const char *path, struct config_file *out, char *err,
                     size_t errlen) MUST_CHECK;

/* Adds every range of f to r, in order, after what r holds (the -r flags
 * come first). Returns 0 or negative errno with err set. */
int config_file_add_ranges(const struct config_file *f, struct ranges *r, char *err,
                           size_t errlen) MUST_CHECK;

void config_file_free(struct config_file *f);

#endif
