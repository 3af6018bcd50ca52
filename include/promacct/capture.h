/* Capture threads: live interfaces (TPACKET_V3, optional fanout) and files.
 *
 * Lifecycle (as every module that owns threads):
 *   capture_new      opens every interface and file, registers their sources
 *                    and shards; no thread runs, nothing is sent
 *   capture_start    one thread per handle
 *   capture_shutdown asks every thread to stop and joins them
 *   capture_free     closes the handles
 * Usage:
 *   struct capture *c = capture_new(&opts, reg, err, sizeof err);
 *   if (!c || capture_start(c, err, sizeof err)) ... log err, capture_free(c)
 *   ... capture_wait_files(c) (with --once) or wait for a signal ...
 *   capture_shutdown(c, time_monotonic() + 5); capture_free(c);
 */
#ifndef PROMACCT_CAPTURE_H
#define PROMACCT_CAPTURE_H

#include <stddef.h>

#include "promacct/common.h"
#include "promacct/registry.h"

#define CAPTURE_ERR_MAX 512
/* Default of --interface.reopen-interval, seconds. */
#define CAPTURE_REOPEN_INTERVAL 5.0

struct capture_opts {
	int promisc;
	int buffer_size;               /* bytes */
	const char *filter;            /* BPF expression or NULL */
	int threads;                   /* capture threads (fanout sockets) per interface */
	const char *const *interfaces; /* live interfaces (not owned) */
	size_t ninterfaces;
	const char *const *files; /* pcap/pcapng files (not owned) */
	size_t nfiles;
	/* Seconds between attempts to reopen an interface that disappeared
	 * (its series continue when it is back); 0: never reopen, its series
	 * end for good. */
	double reopen_interval;
	/* An interface missing at start is waited for (reopened every
	 * reopen_interval, promacct_interface_up 0) instead of an error. */
	int wait;
	/* --once: a file's thread ends at the file's end, what it read stays
	 * as it is for the one output. Otherwise it stays until the stop: its
	 * keys end when idle (--address.idle-timeout), reloads apply to them. */
	int read_once;
	/* Called once, from a capture thread, when no capture source is left
	 * for good (every interface vanished with reopen_interval 0, and no
	 * files): the agent should exit non-zero. May be NULL. */
	void (*on_no_source)(void *arg);
	void *arg;
};

struct capture;

/* Validates opts, opens every interface and file (each registers its
 * source and shards in reg, which is not owned and must outlive the
 * capture). Returns NULL with a message naming the problem in err (no such
 * interface, permission denied, unreadable file, unsupported link type,
 * bad filter, out of memory). Caller frees with capture_free. */
struct capture *capture_new(const struct capture_opts *opts, struct registry *reg, char *err,
                            size_t errlen);
/* Starts one thread per handle. On failure the threads started are
 * stopped by capture_shutdown as usual. */
int capture_start(struct capture *c, char *err, size_t errlen) MUST_CHECK;
/* Blocks until every file has been read to its end or failed (or a stop is
 * requested). Returns the number of files that failed with a read error;
 * what they had read before is accounted. */
int capture_wait_files(struct capture *c);
/* Asks all threads to stop and wakes capture_wait_files; does not wait.
 * Callable from any thread, also before capture_start. */
void capture_request_stop(struct capture *c);
/* Stops all threads and joins them. Threads notice at once (pcap_breakloop
 * and the stop flag wake them; a blocked poll returns within the 100 ms
 * block timeout), so the deadline (time_monotonic() seconds) is not
 * waited for. */
/* After registry_ranges_publish (any thread): wakes the capture threads
 * waiting for traffic, for their interface or for the stop (files read),
 * so each moves to the new ranges table (and ends the keys it changed)
 * now, not at its next packet. */
void capture_ranges_changed(struct capture *c);
void capture_shutdown(struct capture *c, double deadline);
/* Stops threads still running (as capture_shutdown), closes the handles. */
void capture_free(struct capture *c);

/* Checks a BPF expression compiles (for a usage error before anything is
 * opened). Returns 0 or -EINVAL with pcap's message in err. */
int capture_check_filter(const char *filter, char *err, size_t errlen) MUST_CHECK;

#endif
