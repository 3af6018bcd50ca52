/* Pushing the state to a Prometheus Pushgateway from a timer thread. */
#ifndef PROMACCT_PUSHGATEWAY_H
#define PROMACCT_PUSHGATEWAY_H

#include "promacct/buf.h"
#include "promacct/http_client.h"
#include "promacct/labels.h"
#include "promacct/registry.h"

/* What the pusher needs from the command line (main.c maps the config).
 * Pointers are borrowed and must outlive the pusher. */
struct pushgateway_opts {
	const char *gateway; /* http(s)://host:port[/prefix][?query] */
	const char *job;
	const struct label *grouping; /* instance included */
	size_t ngrouping;
	double interval; /* seconds between pushes, > 0 */
	int post;        /* 0: PUT (replace the group), 1: POST */
	int delete_on_exit;
	struct http_client_opts http;
};

struct pushgateway;

/* Validates the options, builds the group URL and the HTTP client,
 * registers self-metrics. No thread, no network traffic. NULL with a message
 * in err. Caller frees with pushgateway_free. */
struct pushgateway *pushgateway_new(const struct pushgateway_opts *opts, struct registry *reg,
                                    char *err, size_t errlen);
/* Starts the timer thread: a push at once, then every interval. Only after
 * this succeeded does pushgateway_shutdown do its graceful work. */
int pushgateway_start(struct pushgateway *p, char *err, size_t errlen) MUST_CHECK;
/* One push now on the calling thread (--once, no timer thread), bounded by
 * the timeout. 0 on success, -1 (logged) if not. */
int pushgateway_push_now(struct pushgateway *p) MUST_CHECK;
/* Asks the pusher to stop: a push in flight (also pushgateway_push_now's)
 * is abandoned within about a second, the timer ends at its next tick. Callable from
 * any thread (a signal thread); pushgateway_shutdown is still to be called.
 * No effect on the final push and DELETE of pushgateway_shutdown. */
void pushgateway_request_stop(struct pushgateway *p);
/* Stops the timer thread (a push in flight is abandoned within about a
 * second); then, only if pushgateway_start had succeeded, pushes the final
 * state and DELETEs the group if delete_on_exit, each bounded by the
 * monotonic deadline (what has no time left is skipped and logged). */
void pushgateway_shutdown(struct pushgateway *p, double deadline);
/* Stops the thread if still running (no graceful work) and frees. NULL ok. */
void pushgateway_free(struct pushgateway *p);

/* Builds the group path /metrics/job/<JOB>{/<NAME>/<VALUE>} (base64url for
 * values that are empty or hold '/', percent-escaping otherwise). Appends to
 * out. Exposed for tests. */
void pushgateway_group_path(struct buf *out, const char *job, const struct label *grouping,
                            size_t n);
/* The whole group URL: the gateway URL's path (trailing slashes dropped),
 * then the group path, then the gateway URL's query string if any. Writes
 * a NUL-terminated string to out. 0, or -EINVAL with a message in err (not
 * http(s), a fragment, too long). Exposed for tests. */
int pushgateway_url(struct buf *out, const char *gateway, const char *job,
                    const struct label *grouping, size_t n, char *err, size_t errlen) MUST_CHECK;

#endif
