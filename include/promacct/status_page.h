/* The status page at `/`: throughput chart, top talkers, drops, push and
 * remote-write health, from a small state a background sampler prepares. */
#ifndef PROMACCT_STATUS_PAGE_H
#define PROMACCT_STATUS_PAGE_H

#include <stddef.h>

#include "promacct/common.h"
#include "promacct/registry.h"

#define STATUS_PAGE_INTERVAL    10.0       /* default seconds between samples */
#define STATUS_PAGE_HISTORY     900        /* seconds of throughput history shown */
#define STATUS_PAGE_MAX_POINTS  901        /* ring points per interface (>= history/interval + 1) */
#define STATUS_PAGE_MAX_IFACES  16         /* interfaces charted (more are left out, said so) */
#define STATUS_PAGE_TOP         20         /* top-talker rows shown */
#define STATUS_PAGE_CANDIDATES  256        /* addresses tracked exactly for the table */
#define STATUS_PAGE_SKETCH      65536      /* buckets of the admission sketch (power of two) */
#define STATUS_PAGE_WINDOW      60.0       /* seconds the top-talker figures cover */
#define STATUS_PAGE_MAX_TARGETS 16         /* push/remote-write targets shown */
#define STATUS_PAGE_MAX_BYTES   (1u << 20) /* cap of one rendered page */

struct status_page_opts {
	double interval; /* seconds between samples; <= 0: STATUS_PAGE_INTERVAL */
};

struct status_page;

/* Allocates the sampler's bounded state (about 3 MiB, whatever the
 * number of addresses). No thread. NULL with a message in err. */
struct status_page *status_page_new(const struct status_page_opts *opts, struct registry *reg,
                                    char *err, size_t errlen);
/* Starts the sampler thread (first sample at once). */
int status_page_start(struct status_page *p, char *err, size_t errlen) MUST_CHECK;
/* Stops the sampler (it ends at its next check of the stop flag; a walk in
 * progress stops at its next series). */
void status_page_shutdown(struct status_page *p, double deadline);
void status_page_free(struct status_page *p);

/* Renders the page (HTML, UTF-8) from the prepared state: its work is
 * bounded by the shown rows, never by the number of addresses. *html is
 * malloc'd (caller frees). Returns 0, -ENOMEM or -E2BIG. Any thread. */
int status_page_render(struct status_page *p, char **html, size_t *len) MUST_CHECK;

/* Test hook: takes one sample now on the calling thread (not while the
 * sampler thread runs). now is the monotonic time of the sample. */
int status_page_sample(struct status_page *p, double now) MUST_CHECK;

#endif
