/* Pushing the state to a Prometheus Pushgateway from a timer thread. */
#ifndef PROMACCT_PUSHGATEWAY_H
#define PROMACCT_PUSHGATEWAY_H

#include "promacct/config.h"
#include "promacct/registry.h"

struct pushgateway;

/* Builds the group URL and the HTTP client, registers self-metrics. NULL
 * with a message in err. Caller frees with pushgateway_free. */
struct pushgateway *pushgateway_new(const struct config *cfg, struct registry *reg, char *err,
                                    size_t errlen);
/* Starts the timer thread (a push every --push.interval). */
int pushgateway_start(struct pushgateway *p) MUST_CHECK;
/* One push now, on the calling thread. 0 on success, -1 (logged) if not. */
int pushgateway_push_now(struct pushgateway *p) MUST_CHECK;
/* Stops the timer thread; pushes a final time, then deletes the group if
 * --push.delete-on-exit. */
void pushgateway_stop(struct pushgateway *p);
void pushgateway_free(struct pushgateway *p);

/* Builds the group path /metrics/job/<JOB>{/<NAME>/<VALUE>} (base64url for
 * values that are empty or hold '/', percent-escaping otherwise). Appends to
 * out. Exposed for tests. */
void pushgateway_group_path(struct buf *out, const char *job, const struct label *grouping,
                            size_t n);

#endif
