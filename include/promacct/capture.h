/* Capture threads: live interfaces (TPACKET_V3, optional fanout) and files. */
#ifndef PROMACCT_CAPTURE_H
#define PROMACCT_CAPTURE_H

#include <stddef.h>

#include "promacct/common.h"
#include "promacct/registry.h"

#define CAPTURE_ERR_MAX 512

struct capture_opts {
	int promisc;
	int buffer_size;    /* bytes */
	const char *filter; /* BPF expression or NULL */
	int threads;        /* capture threads (fanout sockets) per interface */
};

struct capture;

/* Creates the capture set over the registry (not owned). Caller frees with
 * capture_free. NULL on out of memory. */
struct capture *capture_new(struct registry *reg, const struct capture_opts *opts);
void capture_free(struct capture *c);

/* Checks a BPF expression compiles (for a usage error before anything is
 * opened). Returns 0 or -EINVAL with pcap's message in err. */
int capture_check_filter(const char *filter, char *err, size_t errlen) MUST_CHECK;

/* Opens a live interface (registers its source and shards). Returns 0 or a
 * negative errno-like code with a message naming the problem in err. */
int capture_add_interface(struct capture *c, const char *ifname, char *err,
                          size_t errlen) MUST_CHECK;
/* Opens a pcap or pcapng file; its base name becomes the interface label
 * (files with the same base name share one). */
int capture_add_file(struct capture *c, const char *path, char *err, size_t errlen) MUST_CHECK;

/* Starts one thread per opened handle. */
int capture_start(struct capture *c, char *err, size_t errlen) MUST_CHECK;
/* Blocks until every file has been read to its end (or failed). Returns the
 * number of files that failed with a read error. */
int capture_wait_files(struct capture *c);
/* Asks all threads to stop and wakes capture_wait_files; does not wait.
 * Callable from any thread. */
void capture_request_stop(struct capture *c);
/* Stops all threads and joins them. */
void capture_stop(struct capture *c);

#endif
