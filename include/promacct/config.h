/* Command-line configuration. */
#ifndef PROMACCT_CONFIG_H
#define PROMACCT_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "promacct/common.h"
#include "promacct/histogram.h"
#include "promacct/http_client.h"
#include "promacct/labels.h"
#include "promacct/ranges.h"
#include "promacct/web_config.h"

#define CONFIG_MAX_CAPTURE_THREADS 64
/* --push.interval and --remote-write.interval: below the floor is a usage
 * error (a typo like 1ms must not turn the agent into a load generator),
 * below CONFIG_WARN_INTERVAL a warning at start-up. */
#define CONFIG_MIN_INTERVAL  0.1
#define CONFIG_WARN_INTERVAL 1.0

enum config_result {
	CONFIG_OK,        /* run */
	CONFIG_EXIT_OK,   /* --help or --version was printed */
	CONFIG_USAGE = 2, /* a usage error, message in err */
};

struct config {
	const char **interfaces;
	size_t ninterfaces;
	const char **reads;
	size_t nreads;
	const char *filter;
	int once;
	struct ranges ranges;     /* the -r flags, then the ranges of config_file */
	const char *config_file;  /* --config.file, or NULL */
	const char **range_specs; /* the -r flags as given, for reloads */
	size_t nrange_specs;
	size_t max_addresses;
	double idle_timeout; /* --address.idle-timeout seconds, 0: never */
	struct histogram_layout *layout;
	int buffer_size;
	int promisc;
	int capture_threads;
	double interface_reopen_interval; /* seconds, 0: never reopen */
	int interface_wait;
	const char *user;  /* --user, or NULL */
	const char *group; /* --group, or NULL */
	char listen[300];  /* resolved from --web.listen-address or -p */
	int web_disable;
	const char *web_config_file;    /* --web.config.file */
	struct web_config *web;         /* loaded from it at start-up, or NULL */
	int web_max_requests;           /* renders of /metrics at once */
	int web_per_ip_limit;           /* connections per client address */
	double web_read_header_timeout; /* --web.read-header-timeout */
	double web_write_stall_timeout; /* --web.write-stall-timeout */
	double web_status_interval;     /* seconds between status page samples */
	int web_enable_lifecycle;       /* POST /-/reload */

	/* Values as given, resolved by config_parse's validation. */
	const char *buckets_arg;
	const char *listen_arg;
	const char *port_arg;

	/* Pushgateway */
	const char *push_gateway;
	double push_interval;
	const char *push_job;
	struct label *push_grouping;
	size_t npush_grouping;
	int push_post; /* 0: PUT, 1: POST */
	int push_delete_on_exit;
	struct http_client_opts push_http;

	/* Remote write */
	const char **rw_urls;
	size_t nrw_urls;
	double rw_interval;
	size_t rw_max_samples_per_send;
	size_t rw_max_shards;
	size_t rw_queue_max_bytes;
	size_t rw_queue_max_samples; /* 0: no bound in samples */
	const char *rw_queue_dir;    /* NULL: queues in memory only */
	const char **rw_headers;
	size_t nrw_headers;
	struct label *rw_labels; /* external labels, job and instance included */
	size_t nrw_labels;
	double rw_min_backoff, rw_max_backoff;
	struct http_client_opts rw_http;
};

/* Parses argv: every flag is defined once, in the flag table of config.c,
 * which drives getopt_long, the defaults, --help and per-flag validation.
 * On CONFIG_USAGE, err holds one line naming the problem. Caller frees with
 * config_free in every case. */
enum config_result config_parse(struct config *c, int argc, char **argv, char *err,
                                size_t errlen) MUST_CHECK;
void config_free(struct config *c);

/* For a reload (SIGHUP, POST /-/reload): c's ranges built anew, the -r
 * flags as given then c->config_file read again, checked against the one
 * label limit with c's outputs. Returns 0 with *out built (caller frees with
 * ranges_free), or negative errno with one line in err ("FILE:LINE:COLUMN:
 * ...") and *out empty. c is not changed: a bad file changes nothing. */
int config_reload_ranges(const struct config *c, struct ranges *out, char *err,
                         size_t errlen) MUST_CHECK;
void config_usage(FILE *out);

/* The host name (for instance labels). Returns a static buffer. */
const char *config_hostname(void);

#endif
