/* DESIGN: command-line parsing, driven by one table of flag definitions.
 *
 * Runs once on the main thread before anything starts. Each flag is defined
 * once, in `flags[]` below: its long and short name, argument, default, help
 * text, parser and target field in struct config. That table drives
 * getopt_long, the defaults (the default text is parsed like a value given
 * on the command line), --help (which prints the same default text) and the
 * per-flag validation (the parser, with the flag's bounds). Checks that
 * involve several flags live in validate(). Every problem is a usage error
 * with one line naming it (main exits 2). Flag names follow the Prometheus
 * ecosystem (dotted long names, --web.listen-address, --log.level) and keep
 * the 2017 tool's short flags (-i, -r, -p). */
#include "promacct/config.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "promacct/capture.h"
#include "promacct/config_file.h"
#include "promacct/expo_text.h"
#include "promacct/http_server.h"
#include "promacct/log.h"
#include "promacct/registry.h"

struct flag;
/* Parses one value of flag f into c. Returns 0, or -EINVAL / -ENOMEM with
 * one line in err. */
typedef int (*flag_parse_fn)(const struct flag *f, const char *arg, struct config *c, char *err,
                             size_t errlen);

struct flag {
	const char *name; /* long name, without the dashes */
	char short_name;  /* 0: none */
	const char *arg;  /* metavariable in --help; NULL: a switch without value */
	const char *def;  /* default, in the syntax of a value; NULL: none */
	const char *help; /* one sentence; "(default X)" is added from def */
	flag_parse_fn parse;
	size_t off;      /* target field in struct config */
	size_t off_n;    /* count field, for flags that collect a list */
	double min, max; /* bounds of numbers and durations (max 0: none) */
};

#define FIELD(f)        offsetof(struct config, f)
#define LIST(f, n)      offsetof(struct config, f), offsetof(struct config, n)
#define TARGET(c, f, T) ((T *)((char *)(c) + (f)->off))
#define COUNT(c, f)     ((size_t *)((char *)(c) + (f)->off_n))

static int parse_size(const char *text, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-' || text[0] == '+' || text[0] == ' ')
		return -EINVAL;
	uint64_t mult = 1;
	if (*end == 'K' || *end == 'k')
		mult = 1024, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1024 * 1024, end++;
	else if (*end == 'G' || *end == 'g')
		mult = 1024ull * 1024 * 1024, end++;
	if (*end == 'i' && mult > 1)
		end++;
	if (*end == 'B' && mult > 1)
		end++;
	if (*end || v > max / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}

static int flag_switch(const struct flag *f, const char *arg, struct config *c, char *err,
                       size_t errlen)
{
	*TARGET(c, f, int) = 1;
	return 0;
}

static int flag_string(const struct flag *f, const char *arg, struct config *c, char *err,
                       size_t errlen)
{
	if (!*arg) {
		snprintf(err, errlen, "--%s: must not be empty", f->name);
		return -EINVAL;
	}
	*TARGET(c, f, const char *) = arg;
	return 0;
}

static int flag_strings(const struct flag *f, const char *arg, struct config *c, char *err,
                        size_t errlen)
{
	const char ***arr = TARGET(c, f, const char **);
	size_t *n = COUNT(c, f);
	if (!*arg) {
		snprintf(err, errlen, "--%s: must not be empty", f->name);
		return -EINVAL;
	}
	const char **na = realloc(*arr, (*n + 1) * sizeof *na);
	if (!na) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	na[(*n)++] = arg;
	*arr = na;
	return 0;
}

static int flag_url(const struct flag *f, const char *arg, struct config *c, char *err,
                    size_t errlen)
{
	if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8)) {
		/* No echo of the value: it may hold a password. */
		snprintf(err, errlen, "--%s: expected an http:// or https:// URL", f->name);
		return -EINVAL;
	}
	/* libcurl's own parser: a URL it would refuse at every request (port
	 * out of range, unbalanced IPv6 brackets, control characters, bad
	 * percent-encoding of the host) is a usage error now, not a retry
	 * loop later. */
	CURLU *u = curl_url();
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, arg, 0);
	char *port = NULL;
	if (uc == CURLUE_OK && curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK && port &&
	    !strcmp(port, "0"))
		uc = CURLUE_BAD_PORT_NUMBER;
	curl_free(port);
	curl_url_cleanup(u);
	if (uc != CURLUE_OK) {
		snprintf(err, errlen, "--%s: not a usable URL: %s", f->name, curl_url_strerror(uc));
		return -EINVAL;
	}
	return f->off_n ? flag_strings(f, arg, c, err, errlen)
	                : flag_string(f, arg, c, err, errlen);
}

/* A duration within [min, max] seconds (min > 0 always). */
static int flag_duration(const struct flag *f, const char *arg, struct config *c, char *err,
                         size_t errlen)
{
	double v;
	if (duration_parse(arg, &v) || v <= 0) {
		snprintf(err, errlen, "--%s: invalid duration '%s' (e.g. 500ms, 15s, 1m)", f->name,
		         arg);
		return -EINVAL;
	}
	if (v < f->min || (f->max > 0 && v > f->max)) {
		if (f->max > 0)
			snprintf(err, errlen, "--%s: %s is out of range (%gs to %gs)", f->name, arg,
			         f->min, f->max);
		else
			snprintf(err, errlen, "--%s: %s is below the minimum of %gms", f->name, arg,
			         f->min * 1000);
		return -EINVAL;
	}
	*TARGET(c, f, double) = v;
	return 0;
}

/* A duration, or 0 (written "0" or "0s") for "never". */
static int flag_duration_or_zero(const struct flag *f, const char *arg, struct config *c, char *err,
                                 size_t errlen)
{
	if (!strcmp(arg, "0") || !strcmp(arg, "0s")) {
		*TARGET(c, f, double) = 0;
		return 0;
	}
	return flag_duration(f, arg, c, err, errlen);
}

static int parse_bounded(const struct flag *f, const char *arg, uint64_t *v, char *err,
                         size_t errlen)
{
	if (parse_size(arg, (uint64_t)f->max, v) || (double)*v < f->min) {
		snprintf(err, errlen, "--%s: invalid value '%s' (%.0f to %.0f)", f->name, arg,
		         f->min, f->max);
		return -EINVAL;
	}
	return 0;
}

/* A count (size_t) or byte size (int) within [min, max]; K/M/G suffixes. */
static int flag_count(const struct flag *f, const char *arg, struct config *c, char *err,
                      size_t errlen)
{
	uint64_t v;
	if (parse_bounded(f, arg, &v, err, errlen))
		return -EINVAL;
	*TARGET(c, f, size_t) = (size_t)v;
	return 0;
}

static int flag_int(const struct flag *f, const char *arg, struct config *c, char *err,
                    size_t errlen)
{
	uint64_t v;
	if (parse_bounded(f, arg, &v, err, errlen))
		return -EINVAL;
	*TARGET(c, f, int) = (int)v;
	return 0;
}

static int add_label(struct label **arr, size_t *n, const char *text, const char *what, char *err,
                     size_t errlen)
{
	struct label l;
	char e[256];
	if (labels_parse_pair(text, &l, e, sizeof e)) {
		snprintf(err, errlen, "%s: %s", what, e);
		return -EINVAL;
	}
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*arr)[i].name, l.name)) { /* later wins */
			free((*arr)[i].value);
			(*arr)[i].value = l.value;
			free(l.name);
			return 0;
		}
	struct label *na = realloc(*arr, (*n + 1) * sizeof *na);
	if (!na) {
		labels_free(&l, 1);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	na[(*n)++] = l;
	*arr = na;
	return 0;
}

static int set_default_label(struct label **arr, size_t *n, const char *name, const char *value)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*arr)[i].name, name))
			return 0;
	char text[512];
	char err[64];
	snprintf(text, sizeof text, "%s=%s", name, value);
	return add_label(arr, n, text, name, err, sizeof err);
}

static int flag_grouping(const struct flag *f, const char *arg, struct config *c, char *err,
                         size_t errlen)
{
	if (!strncmp(arg, "job=", 4)) {
		snprintf(err, errlen, "--%s: use --push.job for the job", f->name);
		return -EINVAL;
	}
	char what[64];
	snprintf(what, sizeof what, "--%s", f->name);
	return add_label(TARGET(c, f, struct label *), COUNT(c, f), arg, what, err, errlen);
}

static int flag_external_label(const struct flag *f, const char *arg, struct config *c, char *err,
                               size_t errlen)
{
	if (!strncmp(arg, "__", 2)) {
		snprintf(err, errlen, "--%s: names starting with __ are reserved", f->name);
		return -EINVAL;
	}
	char what[64];
	snprintf(what, sizeof what, "--%s", f->name);
	return add_label(TARGET(c, f, struct label *), COUNT(c, f), arg, what, err, errlen);
}

static int flag_header(const struct flag *f, const char *arg, struct config *c, char *err,
                       size_t errlen)
{
	if (!strchr(arg, ':')) {
		snprintf(err, errlen, "--%s: expected \"Name: value\", got '%s'", f->name, arg);
		return -EINVAL;
	}
	return flag_strings(f, arg, c, err, errlen);
}

static int flag_range(const struct flag *f, const char *arg, struct config *c, char *err,
                      size_t errlen)
{
	char e[512];
	int rc = ranges_add(&c->ranges, arg, e, sizeof e);
	if (rc) {
		snprintf(err, errlen, "-r/--range: %s", e);
		return rc;
	}
	/* Kept for config_reload_ranges. */
	const char **na = realloc(c->range_specs, (c->nrange_specs + 1) * sizeof *na);
	if (!na) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	na[c->nrange_specs++] = arg;
	c->range_specs = na;
	return 0;
}

static int flag_log_level(const struct flag *f, const char *arg, struct config *c, char *err,
                          size_t errlen)
{
	if (log_set_level(arg)) {
		snprintf(err, errlen, "--%s: unknown level '%s' (debug, info, warn, error)",
		         f->name, arg);
		return -EINVAL;
	}
	return 0;
}

static int flag_log_format(const struct flag *f, const char *arg, struct config *c, char *err,
                           size_t errlen)
{
	if (log_set_format(arg)) {
		snprintf(err, errlen, "--%s: unknown format '%s' (logfmt, json)", f->name, arg);
		return -EINVAL;
	}
	return 0;
}

static int flag_push_method(const struct flag *f, const char *arg, struct config *c, char *err,
                            size_t errlen)
{
	if (!strcasecmp(arg, "put"))
		c->push_post = 0;
	else if (!strcasecmp(arg, "post"))
		c->push_post = 1;
	else {
		snprintf(err, errlen, "--%s: expected put or post, got '%s'", f->name, arg);
		return -EINVAL;
	}
	return 0;
}

/* --help and --version are handled by config_parse itself. */
static int flag_exit(const struct flag *f, const char *arg, struct config *c, char *err,
                     size_t errlen)
{
	return 0;
}

/* Flags shared by the Pushgateway and remote-write HTTP clients. */
#define HTTP_CLIENT_FLAGS(P, F, WHOM, TIMEOUT)                                                     \
	{P ".timeout",     0, "DURATION", TIMEOUT, "Timeout of one request.", flag_duration,       \
	 FIELD(F.timeout), 0, 0.001,      3600},                                                   \
	    {P ".basic-auth-user", 0, "USER", NULL, "Basic auth user name.", flag_string,          \
	     FIELD(F.basic_user),  0, 0,      0},                                                  \
	    {P ".basic-auth-password-file",                                                        \
	     0,                                                                                    \
	     "FILE",                                                                               \
	     NULL,                                                                                 \
	     "File holding the basic auth password (passwords only come from files).",             \
	     flag_string,                                                                          \
	     FIELD(F.basic_password_file),                                                         \
	     0,                                                                                    \
	     0,                                                                                    \
	     0},                                                                                   \
	    {P ".bearer-token-file",                                                               \
	     0,                                                                                    \
	     "FILE",                                                                               \
	     NULL,                                                                                 \
	     "File holding a bearer token.",                                                       \
	     flag_string,                                                                          \
	     FIELD(F.bearer_token_file),                                                           \
	     0,                                                                                    \
	     0,                                                                                    \
	     0},                                                                                   \
	    {P ".tls-ca-file",                                                                     \
	     0,                                                                                    \
	     "FILE",                                                                               \
	     NULL,                                                                                 \
	     "CA certificates to verify " WHOM ".",                                                \
	     flag_string,                                                                          \
	     FIELD(F.tls_ca_file),                                                                 \
	     0,                                                                                    \
	     0,                                                                                    \
	     0},                                                                                   \
	    {P ".tls-cert-file",     0, "FILE", NULL, "Client certificate (PEM).", flag_string,    \
	     FIELD(F.tls_cert_file), 0, 0,      0},                                                \
	    {P ".tls-key-file",                                                                    \
	     0,                                                                                    \
	     "FILE",                                                                               \
	     NULL,                                                                                 \
	     "Key of the client certificate (PEM).",                                               \
	     flag_string,                                                                          \
	     FIELD(F.tls_key_file),                                                                \
	     0,                                                                                    \
	     0,                                                                                    \
	     0},                                                                                   \
	{                                                                                          \
		P ".tls-insecure-skip-verify", 0, NULL, NULL,                                      \
		    "Do not verify the certificate of " WHOM ".", flag_switch,                     \
		    FIELD(F.tls_insecure), 0, 0, 0                                                 \
	}

static const struct flag flags[] = {
    {"interface", 'i', "IFACE", NULL,
     "Capture live on IFACE (repeatable; one capture thread per interface).", flag_strings,
     LIST(interfaces, ninterfaces), 0, 0},
    {"read", 'R', "FILE", NULL,
     "Read a pcap or pcapng file (repeatable); its base name is the interface label.", flag_strings,
     LIST(reads, nreads), 0, 0},
    {"filter", 'f', "EXPR", NULL, "Only account packets matching this BPF filter.", flag_string,
     FIELD(filter), 0, 0, 0},
    {"once", 0, NULL, NULL,
     "After all --read files are processed, emit once (stdout, or push) and exit.", flag_switch,
     FIELD(once), 0, 0, 0},
    {"range", 'r', "SPEC", NULL,
     "Account per address in FIRST-LAST or ADDRESS/LEN, then :name=value labels "
     "(repeatable; the first matching range wins). IPv6 FIRST-LAST in brackets.",
     flag_range, 0, 0, 0, 0},
    {"config.file", 0, "FILE", NULL,
     "YAML file of ranges (ranges: - prefix or first/last, labels, granularity, "
     "max_addresses), accounted after the -r flags. See README.",
     flag_string, FIELD(config_file), 0, 0, 0},
    {"max-addresses", 0, "N", "100000", "Track at most N (interface, address) pairs.", flag_count,
     FIELD(max_addresses), 0, 1, UINT32_MAX / 32},
    {"address.idle-timeout", 0, "DURATION", "0",
     "A key (address or rollup prefix, per interface, direction, protocol) that saw no packet "
     "for this long ends: it leaves the page, gets remote-write stale markers and frees its "
     "place in the caps; back, it starts from zero. 0: never. Needs --capture-threads 1.",
     flag_duration_or_zero, FIELD(idle_timeout), 0, 1, 0},
    {"buckets", 0, "LIST", HISTOGRAM_DEFAULT_BUCKETS,
     "Histogram bucket bounds in bytes, strictly increasing, at most 32 (+Inf is added).",
     flag_string, FIELD(buckets_arg), 0, 0, 0},
    {"buffer-size", 0, "BYTES", "32M",
     "Kernel capture ring size per thread, K/M/G suffixes (64K to 2047M).", flag_int,
     FIELD(buffer_size), 0, 65536, INT32_MAX},
    {"promisc", 0, NULL, NULL, "Put interfaces into promiscuous mode.", flag_switch, FIELD(promisc),
     0, 0, 0},
    {"capture-threads", 0, "N", "1",
     "Capture threads per interface, joined in a PACKET_FANOUT group (1 to 64).", flag_int,
     FIELD(capture_threads), 0, 1, CONFIG_MAX_CAPTURE_THREADS},
    {"interface.reopen-interval", 0, "DURATION", "5s",
     "Reopen a captured interface that disappeared this often until it is back (its series "
     "continue); 0: never, its series end and with no capture source left the agent exits 1.",
     flag_duration_or_zero, FIELD(interface_reopen_interval), 0, CONFIG_MIN_INTERVAL, 0},
    {"interface.wait", 0, NULL, NULL,
     "An interface missing at start is waited for (reopened as above) instead of an error.",
     flag_switch, FIELD(interface_wait), 0, 0, 0},
    {"user", 0, "NAME", NULL,
     "After opening the capture handles and the listening socket, run as this user (name or "
     "id; needs root) with no capability left except CAP_NET_RAW in the capture threads when "
     "interfaces are reopened.",
     flag_string, FIELD(user), 0, 0, 0},
    {"group", 0, "NAME", NULL, "With --user: run as this group (default: the user's group).",
     flag_string, FIELD(group), 0, 0, 0},
    {"web.listen-address", 0, "[HOST]:PORT", ":9112", "Address of the scrape page.", flag_string,
     FIELD(listen_arg), 0, 0, 0},
    {"port", 'p', "PORT", NULL, "Port of the scrape page (same as --web.listen-address :PORT).",
     flag_string, FIELD(port_arg), 0, 0, 0},
    {"web.config.file", 0, "FILE", NULL,
     "TLS, client certificates, basic auth and headers of the scrape page, in the "
     "exporter-toolkit web configuration format (see README).",
     flag_string, FIELD(web_config_file), 0, 0, 0},
    {"web.disable", 0, NULL, NULL, "Serve no scrape page (push-only agents).", flag_switch,
     FIELD(web_disable), 0, 0, 0},
    {"web.max-requests", 0, "N", "4",
     "/metrics renders at once (1 to 64); a further scrape waits for one to end (up to 10s, or "
     "its scrape timeout if Prometheus sends a shorter one), then gets 503 with Retry-After; one "
     "client (IPv4 address or IPv6 /64) holds at most half of them.",
     flag_int, FIELD(web_max_requests), 0, 1, 64},
    {"web.max-connections-per-ip", 0, "N", "64",
     "Connections one client address may hold (1 to 512, the total); more are refused at "
     "once.",
     flag_int, FIELD(web_per_ip_limit), 0, 1, 512},
    {"web.read-header-timeout", 0, "DURATION", "10s",
     "Time a connection has to send complete request headers (then it is closed).", flag_duration,
     FIELD(web_read_header_timeout), 0, 0.1, 3600},
    {"web.write-stall-timeout", 0, "DURATION", "30s",
     "A scrape whose client takes none of the next chunk of the page (at most 160 KiB) for this "
     "long is cut, freeing its render slot for others (a client trickling a few bytes at a time "
     "counts as stalled).",
     flag_duration, FIELD(web_write_stall_timeout), 0, 1, 3600},
    {"web.enable-lifecycle", 0, NULL, NULL,
     "Reload the configuration on POST or PUT /-/reload, as SIGHUP does (without it: 403).",
     flag_switch, FIELD(web_enable_lifecycle), 0, 0, 0},
    {"web.status-interval", 0, "DURATION", "10s",
     "Time between the status page's samples (1s to 60s): its chart and top-talkers table.",
     flag_duration, FIELD(web_status_interval), 0, 1, 60},
    {"log.level", 0, "LEVEL", "info", "debug, info, warn or error.", flag_log_level, 0, 0, 0, 0},
    {"log.format", 0, "FORMAT", "logfmt", "logfmt or json.", flag_log_format, 0, 0, 0, 0},
    {"push.gateway", 0, "URL", NULL, "Push to this Pushgateway (http or https).", flag_url,
     FIELD(push_gateway), 0, 0, 0},
    {"push.interval", 0, "DURATION", "15s",
     "Time between pushes (at least 100ms; below 1s is logged as a warning).", flag_duration,
     FIELD(push_interval), 0, CONFIG_MIN_INTERVAL, 0},
    {"push.job", 0, "JOB", "promacct", "Job name of the pushed group.", flag_string,
     FIELD(push_job), 0, 0, 0},
    {"push.grouping", 0, "NAME=VALUE", NULL,
     "Grouping label of the pushed group (repeatable; instance defaults to the host name).",
     flag_grouping, LIST(push_grouping, npush_grouping), 0, 0},
    {"push.method", 0, "put|post", "put",
     "put replaces the whole group, post only the pushed families.", flag_push_method, 0, 0, 0, 0},
    {"push.delete-on-exit", 0, NULL, NULL, "Delete the group on clean shutdown.", flag_switch,
     FIELD(push_delete_on_exit), 0, 0, 0},
    HTTP_CLIENT_FLAGS("push", push_http, "the gateway", "10s"),
    {"remote-write.url", 0, "URL", NULL,
     "Remote-write endpoint (repeatable; each has its own queue).", flag_url,
     LIST(rw_urls, nrw_urls), 0, 0},
    {"remote-write.interval", 0, "DURATION", "15s",
     "Time between snapshots sent (at least 100ms; below 1s is logged as a warning).",
     flag_duration, FIELD(rw_interval), 0, CONFIG_MIN_INTERVAL, 0},
    {"remote-write.max-samples-per-send", 0, "N", "2000",
     "Samples per request at most (1 to 1000000).", flag_count, FIELD(rw_max_samples_per_send), 0,
     1, 1000000},
    {"remote-write.max-shards", 0, "N", "8",
     "Requests in flight per endpoint (1 to 64); series are spread over shards by hash.",
     flag_count, FIELD(rw_max_shards), 0, 1, 64},
    {"remote-write.queue-max-bytes", 0, "BYTES", "512M",
     "Compressed requests kept per endpoint, K/M/G suffixes; the oldest are dropped beyond "
     "(the default holds 3 snapshots of a 1M-histogram state). With --remote-write.queue-dir: "
     "the bytes of the endpoint's queue files on disk, never more.",
     flag_count, FIELD(rw_queue_max_bytes), 0, 65536, (double)((uint64_t)1 << 40)},
    {"remote-write.queue-dir", 0, "DIR", NULL,
     "Keep each endpoint's queue on disk under DIR (one directory per endpoint URL), so "
     "queued requests survive a restart; off: memory only.",
     flag_string, FIELD(rw_queue_dir), 0, 0, 0},
    {"remote-write.queue-max-samples", 0, "N", "0",
     "Samples kept per endpoint, besides the byte bound (0: no bound in samples).", flag_count,
     FIELD(rw_queue_max_samples), 0, 0, (double)((uint64_t)1 << 40)},
    {"remote-write.header", 0, "\"NAME: VALUE\"", NULL,
     "Extra request header, e.g. X-Scope-OrgID (repeatable).", flag_header,
     LIST(rw_headers, nrw_headers), 0, 0},
    {"remote-write.external-label", 0, "NAME=VALUE", NULL,
     "Label added to every series (repeatable; job defaults to promacct, instance to the "
     "host name).",
     flag_external_label, LIST(rw_labels, nrw_labels), 0, 0},
    {"remote-write.min-backoff", 0, "DURATION", "30ms", "First retry delay.", flag_duration,
     FIELD(rw_min_backoff), 0, 0.001, 0},
    {"remote-write.max-backoff", 0, "DURATION", "5s", "Largest retry delay.", flag_duration,
     FIELD(rw_max_backoff), 0, 0.001, 0},
    HTTP_CLIENT_FLAGS("remote-write", rw_http, "the endpoints", "30s"),
    {"help", 'h', NULL, NULL, "Show this help and exit.", flag_exit, 0, 0, 0, 0},
    {"version", 0, NULL, NULL, "Show the version and exit.", flag_exit, 0, 0, 0, 0},
};

#define NFLAGS         ARRAY_LEN(flags)
#define SHORT_OPT_BASE 256 /* getopt value of flags without a short name: base + index */

static const struct flag *flag_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < NFLAGS; i++)
		if (strlen(flags[i].name) == len && !strncmp(flags[i].name, name, len))
			return &flags[i];
	return NULL;
}

static const struct flag *flag_by_getopt(int o)
{
	if (o >= SHORT_OPT_BASE && (size_t)(o - SHORT_OPT_BASE) < NFLAGS)
		return &flags[o - SHORT_OPT_BASE];
	for (size_t i = 0; i < NFLAGS; i++)
		if (flags[i].short_name && flags[i].short_name == o)
			return &flags[i];
	return NULL;
}

/* Prints text indented, broken at spaces before `width` columns. */
static void print_wrapped(FILE *out, const char *text, int indent, int width)
{
	const char *p = text;
	while (*p) {
		int room = width - indent;
		int n = (int)strlen(p);
		if (n > room) {
			n = room;
			while (n > 0 && p[n] != ' ')
				n--;
			if (n == 0)
				n = (int)strcspn(p, " ");
		}
		fprintf(out, "%*s%.*s\n", indent, "", n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
}

void config_usage(FILE *out)
{
	fprintf(out, "usage: promacct (-i IFACE | -R FILE)... [-r RANGE]... [options]\n\n"
	             "Network traffic accounting for Prometheus: packet size histograms per "
	             "interface\nand per address, served on /metrics, pushed to a Pushgateway or "
	             "remote-written.\n\nFlags:\n");
	for (size_t i = 0; i < NFLAGS; i++) {
		const struct flag *f = &flags[i];
		char shortn[8] = "    ";
		if (f->short_name)
			snprintf(shortn, sizeof shortn, "-%c, ", f->short_name);
		char help[512];
		snprintf(help, sizeof help, "%s%s%s%s", f->help, f->def ? " (default " : "",
		         f->def ? f->def : "", f->def ? ")" : "");
		fprintf(out, "  %s--%s%s%s\n", shortn, f->name, f->arg ? " " : "",
		        f->arg ? f->arg : "");
		print_wrapped(out, help, 8, 80);
	}
	fprintf(out, "\nDurations: 500ms, 15s, 1m, 1h30m. Sizes and counts take K/M/G suffixes.\n"
	             "\nExamples:\n"
	             "  promacct -i eth0 -r 192.0.2.0/24:customer=acme\n"
	             "  promacct -R trace.pcap --once -r 0.0.0.0/0 -r ::/0\n"
	             "  promacct -i eth0 --web.disable --push.gateway http://pushgw:9091\n"
	             "  promacct -i eth0 --remote-write.url http://mimir:9009/api/v1/push "
	             "--remote-write.header 'X-Scope-OrgID: acme'\n");
}

const char *config_hostname(void)
{
	static char host[256];
	if (!host[0] && gethostname(host, sizeof host - 1))
		strcpy(host, "localhost");
	return host;
}

/* A grouping label name that pushed metrics carry themselves, or NULL. */
static const char *push_grouping_clash(const struct config *c)
{
	static const char *const carried[] = {"interface", "ip",      "protocol", "le", "reason",
	                                      "libpcap",   "version", "result",   "url"};
	for (size_t g = 0; g < c->npush_grouping; g++) {
		const char *n = c->push_grouping[g].name;
		for (size_t i = 0; i < ARRAY_LEN(carried); i++)
			if (!strcmp(n, carried[i]))
				return n;
		for (size_t r = 0; r < c->ranges.n; r++)
			for (size_t l = 0; l < c->ranges.v[r].nlabels; l++)
				if (!strcmp(n, c->ranges.v[r].labels[l].name))
					return n;
	}
	return NULL;
}

/* Labels of the widest series any output sends (see LABELS_MAX). */
static int check_label_limit(const struct config *c, const struct ranges *rs, char *err,
                             size_t errlen)
{
	size_t range_labels = 0, extra = 0;
	for (size_t r = 0; r < rs->n; r++) {
		if (rs->v[r].nlabels > range_labels)
			range_labels = rs->v[r].nlabels;
		size_t len = rs->v[r].text ? strlen(rs->v[r].text) : 0;
		if (len > EXPO_TEXT_SERIES_LABELS_MAX - EXPO_TEXT_FIXED_LABELS_MAX) {
			snprintf(
			    err, errlen,
			    "range %zu: its labels take %zu bytes rendered, at most %d per series",
			    r + 1, len, EXPO_TEXT_SERIES_LABELS_MAX - EXPO_TEXT_FIXED_LABELS_MAX);
			return -E2BIG;
		}
	}
	if (c->push_gateway && c->npush_grouping + 1 > extra)
		extra = c->npush_grouping + 1; /* + job */
	if (c->nrw_urls && c->nrw_labels > extra)
		extra = c->nrw_labels;
	return labels_check_limit(range_labels, extra, err, errlen);
}

/* Adds the ranges of c->config_file (if any) to r, after what r holds,
 * then builds r. */
static int add_file_and_build(const struct config *c, struct ranges *r, char *err, size_t errlen)
{
	if (c->config_file) {
		struct config_file cf;
		int rc = config_file_load(c->config_file, &cf, err, errlen);
		if (!rc)
			rc = config_file_add_ranges(&cf, r, err, errlen);
		config_file_free(&cf);
		if (rc)
			return rc;
	}
	double t0 = time_monotonic();
	if (ranges_build(r)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	log_debug("ranges built", "ranges=%zu ipv4_pieces=%zu ipv6_pieces=%zu seconds=%.3f", r->n,
	          r->np4, r->np6, time_monotonic() - t0);
	return 0;
}

int config_reload_ranges(const struct config *c, struct ranges *out, char *err, size_t errlen)
{
	char e[512];
	int rc = 0;
	ranges_init(out);
	for (size_t i = 0; i < c->nrange_specs && !rc; i++)
		if ((rc = ranges_add(out, c->range_specs[i], e, sizeof e)))
			snprintf(err, errlen, "-r/--range: %s", e);
	if (!rc)
		rc = add_file_and_build(c, out, err, errlen);
	if (!rc)
		rc = check_label_limit(c, out, err, errlen);
	if (rc) {
		ranges_free(out);
		ranges_init(out);
	}
	return rc;
}

/* A password or token in a URL is visible in the process list and in shell
 * history: promacct redacts it everywhere it shows the URL, and says how to
 * keep it out of the command line. */
static void warn_url_secrets(const struct config *c)
{
	char shown[512];
	for (size_t i = 0; i <= c->nrw_urls; i++) {
		const char *url = i < c->nrw_urls ? c->rw_urls[i] : c->push_gateway;
		if (!url || !url_has_secret(url))
			continue;
		if (url_redact(url, shown, sizeof shown)) {
			/* shown: <url too long> */
		}
		log_warn("URL with a password, user info, path parameters or a query on the "
		         "command line: other local users "
		         "can read it in the process list; prefer the basic-auth-password-file "
		         "and bearer-token-file flags",
		         "url=%s", shown);
	}
}

/* Checks that involve more than one flag, and resolves values given as text. */
static int validate(struct config *c, const unsigned char *given, char *err, size_t errlen)
{
	char e[512];
	const struct flag *listen = flag_by_name("web.listen-address", 18);
	const struct flag *port = flag_by_name("port", 4);

	if (!c->ninterfaces && !c->nreads) {
		snprintf(err, errlen, "nothing to capture: give -i IFACE or -R FILE (see --help)");
		return -EINVAL;
	}
	if (c->once && !c->nreads) {
		snprintf(err, errlen, "--once needs -R FILE");
		return -EINVAL;
	}
	if (c->once && c->ninterfaces) {
		snprintf(err, errlen,
		         "--once cannot be combined with -i (live capture never ends)");
		return -EINVAL;
	}
	c->layout = malloc(sizeof *c->layout);
	if (!c->layout) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (histogram_layout_parse(c->layout, c->buckets_arg, e, sizeof e)) {
		snprintf(err, errlen, "--buckets: %s", e);
		return -EINVAL;
	}
	if (add_file_and_build(c, &c->ranges, err, errlen))
		return -EINVAL;
	if (c->idle_timeout > 0 && c->capture_threads > 1) {
		/* the keys of one address on several threads would have to end
		 * together (their sum is the series): not built */
		snprintf(err, errlen, "--address.idle-timeout needs --capture-threads 1");
		return -EINVAL;
	}
	if (c->filter && capture_check_filter(c->filter, e, sizeof e)) {
		snprintf(err, errlen, "-f/--filter: %s", e);
		return -EINVAL;
	}
	if (given[port - flags] && given[listen - flags]) {
		snprintf(err, errlen, "give either -p/--port or --web.listen-address, not both");
		return -EINVAL;
	}
	if (c->port_arg)
		snprintf(c->listen, sizeof c->listen, ":%s", c->port_arg);
	else
		snprintf(c->listen, sizeof c->listen, "%s", c->listen_arg);
	{
		char host[256];
		int p;
		if (http_server_parse_listen(c->listen, host, sizeof host, &p)) {
			snprintf(err, errlen, "invalid listen address '%s' (expected [HOST]:PORT)",
			         c->listen);
			return -EINVAL;
		}
	}
	if (c->web_config_file) {
		c->web = calloc(1, sizeof *c->web);
		if (!c->web) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		int rc = web_config_load(c->web_config_file, c->web, err, errlen);
		if (rc) {
			free(c->web);
			c->web = NULL;
			return rc;
		}
	}
	if (c->rw_min_backoff > c->rw_max_backoff) {
		snprintf(err, errlen, "--remote-write.min-backoff is larger than max-backoff");
		return -EINVAL;
	}
	if (c->push_http.basic_password_file && !c->push_http.basic_user) {
		snprintf(err, errlen,
		         "--push.basic-auth-password-file needs --push.basic-auth-user");
		return -EINVAL;
	}
	if (c->rw_http.basic_password_file && !c->rw_http.basic_user) {
		snprintf(err, errlen,
		         "--remote-write.basic-auth-password-file needs "
		         "--remote-write.basic-auth-user");
		return -EINVAL;
	}
	if (!!c->push_http.tls_cert_file != !!c->push_http.tls_key_file) {
		snprintf(err, errlen, "--push.tls-cert-file and --push.tls-key-file go together");
		return -EINVAL;
	}
	if (!!c->rw_http.tls_cert_file != !!c->rw_http.tls_key_file) {
		snprintf(
		    err, errlen,
		    "--remote-write.tls-cert-file and --remote-write.tls-key-file go together");
		return -EINVAL;
	}
	if (c->push_gateway) {
		const char *clash = push_grouping_clash(c);
		if (clash) {
			snprintf(
			    err, errlen,
			    "--push.grouping: promacct's metrics carry a label '%s' themselves; "
			    "a grouping label must not (the Pushgateway would reject the push)",
			    clash);
			return -EINVAL;
		}
		if (set_default_label(&c->push_grouping, &c->npush_grouping, "instance",
		                      config_hostname()))
			goto oom;
	}
	for (size_t i = 0; i < c->nrw_urls; i++)
		for (size_t j = 0; j < i; j++)
			if (!strcmp(c->rw_urls[i], c->rw_urls[j])) {
				/* No echo of the value: it may hold a password. */
				snprintf(err, errlen,
				         "--remote-write.url: endpoint %zu is the same URL as "
				         "endpoint %zu "
				         "(every sample would be sent twice)",
				         i + 1, j + 1);
				return -EINVAL;
			}
	if (c->nrw_urls &&
	    (set_default_label(&c->rw_labels, &c->nrw_labels, "job", "promacct") ||
	     set_default_label(&c->rw_labels, &c->nrw_labels, "instance", config_hostname())))
		goto oom;
	if (c->push_gateway && c->push_interval < CONFIG_WARN_INTERVAL)
		log_warn("push interval below 1s: expect that many requests per second",
		         "interval_seconds=%g", c->push_interval);
	if (c->nrw_urls && c->rw_interval < CONFIG_WARN_INTERVAL)
		log_warn("remote-write interval below 1s: expect that many requests per second",
		         "interval_seconds=%g", c->rw_interval);
	if (check_label_limit(c, &c->ranges, err, errlen))
		return -EINVAL;
	warn_url_secrets(c);
	if (log_enabled(LOG_DEBUG)) {
		char shown[512] = "none";
		if (c->push_gateway && url_redact(c->push_gateway, shown, sizeof shown)) {
			/* shown: <url too long> */
		}
		log_debug(
		    "configuration parsed",
		    "interfaces=%zu files=%zu ranges=%zu buckets=%s listen=%s push_gateway=%s "
		    "remote_write_urls=%zu",
		    c->ninterfaces, c->nreads, c->ranges.n, c->buckets_arg,
		    c->web_disable ? "disabled" : c->listen, shown, c->nrw_urls);
	}
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -ENOMEM;
}

/* The one line for a flag getopt_long refused (argv[optind - 1]). */
static void explain_refused(const char *word, int optopt_, int missing, char *err, size_t errlen)
{
	if (!strncmp(word, "--", 2)) {
		const char *name = word + 2;
		size_t len = strcspn(name, "=");
		const struct flag *f = flag_by_name(name, len);
		size_t nmatch = 0;
		for (size_t i = 0; !f && i < NFLAGS; i++)
			if (!strncmp(flags[i].name, name, len))
				nmatch++;
		for (size_t i = 0; !f && nmatch == 1 && i < NFLAGS; i++)
			if (!strncmp(flags[i].name, name, len))
				f = &flags[i]; /* getopt takes unique abbreviations */
		if (missing)
			snprintf(err, errlen, "flag --%.*s needs a value", (int)len, name);
		else if (f && !f->arg && name[len] == '=')
			snprintf(err, errlen, "flag --%s takes no value, got '%s'", f->name, word);
		else if (nmatch > 1)
			snprintf(err, errlen, "ambiguous flag --%.*s (%zu flags start so)",
			         (int)len, name, nmatch);
		else
			snprintf(err, errlen, "unknown flag --%.*s", (int)len, name);
	} else if (missing) {
		snprintf(err, errlen, "flag -%c needs a value", optopt_);
	} else if (optopt_ > 0 && optopt_ < 256) {
		snprintf(err, errlen, "unknown flag -%c", optopt_);
	} else {
		snprintf(err, errlen, "unknown flag %s", word);
	}
}

static enum config_result parse_argv(struct config *c, int argc, char **argv, char *err,
                                     size_t errlen);

/* Usage errors echo values as given: control bytes are shown as \xNN so the
 * message stays one line. */
static void one_line(char *err, size_t errlen)
{
	char tmp[1024];
	size_t o = 0;
	for (const char *p = err; *p && o + 5 < sizeof tmp; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch < 0x20 || ch == 0x7f)
			o += (size_t)snprintf(tmp + o, sizeof tmp - o, "\\x%02x", ch);
		else
			tmp[o++] = (char)ch;
	}
	tmp[o] = '\0';
	snprintf(err, errlen, "%s", tmp);
}

enum config_result config_parse(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	enum config_result r = parse_argv(c, argc, argv, err, errlen);
	if (r == CONFIG_USAGE)
		one_line(err, errlen);
	return r;
}

static enum config_result parse_argv(struct config *c, int argc, char **argv, char *err,
                                     size_t errlen)
{
	struct option lopts[NFLAGS + 1];
	char shortopts[2 + 2 * NFLAGS + 1];
	unsigned char given[NFLAGS] = {0};
	size_t sl = 0;

	memset(c, 0, sizeof *c);
	ranges_init(&c->ranges);
	shortopts[sl++] = ':';
	for (size_t i = 0; i < NFLAGS; i++) {
		const struct flag *f = &flags[i];
		lopts[i] = (struct option){f->name, f->arg ? required_argument : no_argument, NULL,
		                           f->short_name ? f->short_name : SHORT_OPT_BASE + (int)i};
		if (f->short_name) {
			shortopts[sl++] = f->short_name;
			if (f->arg)
				shortopts[sl++] = ':';
		}
		if (f->def && f->parse(f, f->def, c, err, errlen)) {
			/* A default that does not parse is a bug in the table. */
			snprintf(err, errlen, "internal error: default of --%s", f->name);
			return CONFIG_USAGE;
		}
	}
	shortopts[sl] = '\0';
	memset(&lopts[NFLAGS], 0, sizeof lopts[0]);

	optind = 0; /* glibc: full re-initialisation, config_parse may run again */
	opterr = 0;
	for (;;) {
		int o = getopt_long(argc, argv, shortopts, lopts, NULL);
		if (o == -1)
			break;
		if (o == '?' || o == ':') {
			explain_refused(argv[optind - 1], optopt, o == ':', err, errlen);
			return CONFIG_USAGE;
		}
		const struct flag *f = flag_by_getopt(o);
		if (!f) {
			snprintf(err, errlen, "unknown flag %s", argv[optind - 1]);
			return CONFIG_USAGE;
		}
		if (!strcmp(f->name, "help")) {
			config_usage(stdout);
			return CONFIG_EXIT_OK;
		}
		if (!strcmp(f->name, "version")) {
			printf("promacct, version %s\n", promacct_version);
			return CONFIG_EXIT_OK;
		}
		given[f - flags] = 1;
		if (f->parse(f, optarg, c, err, errlen))
			return CONFIG_USAGE;
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return CONFIG_USAGE;
	}
	if (validate(c, given, err, errlen))
		return CONFIG_USAGE;
	return CONFIG_OK;
}

void config_free(struct config *c)
{
	free(c->interfaces);
	free(c->reads);
	free(c->range_specs);
	if (c->web) {
		web_config_free(c->web);
		free(c->web);
	}
	ranges_free(&c->ranges);
	free(c->layout);
	labels_free(c->push_grouping, c->npush_grouping);
	free(c->push_grouping);
	free(c->rw_urls);
	free(c->rw_headers);
	labels_free(c->rw_labels, c->nrw_labels);
	free(c->rw_labels);
	memset(c, 0, sizeof *c);
}
