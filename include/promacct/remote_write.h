/* Prometheus remote write 1.0 senders, one queue per endpoint. */
#ifndef PROMACCT_REMOTE_WRITE_H
#define PROMACCT_REMOTE_WRITE_H

#include "promacct/buf.h"
#include "promacct/config.h"
#include "promacct/registry.h"

struct remote_write;

struct remote_write *remote_write_new(const struct config *cfg, struct registry *reg, char *err,
                                      size_t errlen);
/* Starts the snapshot timer and one sender thread per endpoint. */
int remote_write_start(struct remote_write *rw) MUST_CHECK;
/* --once: snapshot now and deliver it to every endpoint, retrying within the
 * timeout. 0 when every endpoint accepted everything, -1 (logged) if not. */
int remote_write_send_once(struct remote_write *rw) MUST_CHECK;
/* Takes a last snapshot plus stale markers for every series, delivers what
 * it can within the timeout, stops the threads. */
void remote_write_stop(struct remote_write *rw);
void remote_write_free(struct remote_write *rw);

/* Encoding, exposed for tests and the benchmark. */
struct rw_label_set {
	const struct label *labels; /* external labels (job, instance, ...) */
	size_t n;
};

/* Encodes the registry into snappy-compressed WriteRequest bodies of at most
 * max_samples samples each; calls emit(ctx, body, len, nsamples) per body
 * (the callee takes ownership of body). stale: every value is the stale
 * marker. Returns 0 or a negative errno. */
int remote_write_encode(struct registry *reg, const struct rw_label_set *ext, int64_t ts_ms,
                        size_t max_samples, int stale,
                        int (*emit)(void *ctx, char *body, size_t len, size_t nsamples),
                        void *ctx) MUST_CHECK;

/* The stale-marker NaN, 0x7ff0000000000002. */
double remote_write_stale_nan(void);

#endif
