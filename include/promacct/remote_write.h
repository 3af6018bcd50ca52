/* Prometheus remote write 1.0: a snapshot timer and, per endpoint, a queue
 * and several sender shards. Encoding is in rw_encode.h, the queue in
 * rw_queue.h. */
#ifndef PROMACCT_REMOTE_WRITE_H
#define PROMACCT_REMOTE_WRITE_H

#include <sys/types.h>

#include "promacct/common.h"
#include "promacct/http_client.h"
#include "promacct/labels.h"
#include "promacct/registry.h"
#include "promacct/rw_encode.h"

#define REMOTE_WRITE_MAX_SHARDS 64

struct remote_write_opts {
	const char *const *urls; /* copied */
	size_t nurls;
	double interval;             /* seconds between snapshots */
	size_t max_samples_per_send; /* samples per request */
	size_t max_shards;           /* requests in flight per endpoint */
	size_t queue_max_bytes;      /* per endpoint; 0: no bound in bytes */
	size_t queue_max_samples;    /* per endpoint; 0: no bound in samples */
	const char *const *headers;  /* "Name: value", copied */
	size_t nheaders;
	/* Labels of every series: job, instance, external labels. Borrowed:
	 * they must outlive the module. */
	const struct label *external_labels;
	size_t nexternal_labels;
	double min_backoff, max_backoff; /* seconds */
	/* An on-disk queue per endpoint under this directory (NULL: memory
	 * only): requests survive a restart and are sent then. Borrowed. */
	const char *queue_dir;
	/* The user the agent will run as (--user/--group): the queue
	 * directories are given to it when opened (as root, before the drop). */
	int queue_chown;
	uid_t queue_uid;
	gid_t queue_gid;
	struct http_client_opts http; /* timeout: one request */
};

struct remote_write;

/* Validates and allocates; registers the per-endpoint self-metrics. No
 * thread, no traffic. NULL with a message in err. */
struct remote_write *remote_write_new(const struct remote_write_opts *o, struct registry *reg,
                                      char *err, size_t errlen);
/* Starts the sender shards and the snapshot timer (first snapshot at
 * once). On failure nothing is left running and shutdown does no graceful
 * work. */
int remote_write_start(struct remote_write *rw, char *err, size_t errlen) MUST_CHECK;
/* --once (instead of start): one snapshot delivered to every endpoint by
 * the sender shards, retrying until the monotonic deadline. 0 when every
 * endpoint accepted everything, -1 (logged) if not. */
int remote_write_send_once(struct remote_write *rw, double deadline) MUST_CHECK;
/* Gives up now (a signal during --once): the deadline becomes the past, a
 * request in flight is abandoned within about a second, nothing more is
 * sent. Callable from any thread; send_once still returns and reports what
 * was not delivered. */
void remote_write_abandon(struct remote_write *rw);
/* Stops the timer; if start succeeded, queues the final values and stale
 * markers for every series and delivers what it can by the monotonic
 * deadline (every wait, request and retry is bounded by it); joins every
 * thread. Safe on a module that never started. */
void remote_write_shutdown(struct remote_write *rw, double deadline);
void remote_write_free(struct remote_write *rw);

#endif
