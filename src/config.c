/* DESIGN: command-line parsing.
 *
 * Runs once on the main thread before anything starts. Every problem is a
 * usage error with one line naming it (main exits 2). Flag names follow the
 * Prometheus ecosystem (dotted long names, --web.listen-address, --log.level)
 * and keep the 2017 tool's short flags (-i, -r, -p). The option table drives
 * both getopt_long and --help. */
#include "promacct/config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "promacct/capture.h"
#include "promacct/http_server.h"
#include "promacct/log.h"
#include "promacct/registry.h"

enum opt_id {
	O_INTERFACE = 'i',
	O_READ = 'R',
	O_FILTER = 'f',
	O_RANGE = 'r',
	O_PORT = 'p',
	O_HELP = 'h',
	O_ONCE = 256,
	O_MAX_ADDRESSES,
	O_BUCKETS,
	O_BUFFER_SIZE,
	O_PROMISC,
	O_CAPTURE_THREADS,
	O_LISTEN,
	O_WEB_DISABLE,
	O_LOG_LEVEL,
	O_LOG_FORMAT,
	O_VERSION,
	O_PUSH_GATEWAY,
	O_PUSH_INTERVAL,
	O_PUSH_JOB,
	O_PUSH_GROUPING,
	O_PUSH_METHOD,
	O_PUSH_DELETE,
	O_PUSH_TIMEOUT,
	O_PUSH_USER,
	O_PUSH_PASSWORD_FILE,
	O_PUSH_BEARER_FILE,
	O_PUSH_CA,
	O_PUSH_CERT,
	O_PUSH_KEY,
	O_PUSH_INSECURE,
	O_RW_URL,
	O_RW_INTERVAL,
	O_RW_MAX_SAMPLES,
	O_RW_QUEUE_MAX,
	O_RW_HEADER,
	O_RW_LABEL,
	O_RW_MIN_BACKOFF,
	O_RW_MAX_BACKOFF,
	O_RW_TIMEOUT,
	O_RW_USER,
	O_RW_PASSWORD_FILE,
	O_RW_BEARER_FILE,
	O_RW_CA,
	O_RW_CERT,
	O_RW_KEY,
	O_RW_INSECURE,
};

_Static_assert(O_PUSH_INSECURE - O_PUSH_TIMEOUT == 7 && O_RW_INSECURE - O_RW_TIMEOUT == 7,
               "HTTP client flags keep the order of enum http_flag");

struct opt_doc {
	const char *name;
	int has_arg;
	int id;
	const char *arg;
	const char *help;
};

static const struct opt_doc opts[] = {
    {"interface", 1, O_INTERFACE, "IFACE",
     "Capture live on IFACE (repeatable; one capture thread per interface)."},
    {"read", 1, O_READ, "FILE",
     "Read a pcap or pcapng file (repeatable); its base name is the interface label."},
    {"filter", 1, O_FILTER, "EXPR", "Only account packets matching this BPF filter."},
    {"once", 0, O_ONCE, NULL,
     "After all --read files are processed, emit once (stdout, or push) and exit."},
    {"range", 1, O_RANGE, "SPEC",
     "Account per address in FIRST-LAST or ADDRESS/LEN, then :name=value labels "
     "(repeatable; the first matching range wins). IPv6 FIRST-LAST in brackets."},
    {"max-addresses", 1, O_MAX_ADDRESSES, "N",
     "Track at most N (interface, address) pairs (default 100000)."},
    {"buckets", 1, O_BUCKETS, "LIST",
     "Histogram bucket bounds in bytes (default " HISTOGRAM_DEFAULT_BUCKETS ")."},
    {"buffer-size", 1, O_BUFFER_SIZE, "BYTES",
     "Kernel capture ring size per thread, K/M/G suffixes (default 32M)."},
    {"promisc", 0, O_PROMISC, NULL, "Put interfaces into promiscuous mode."},
    {"capture-threads", 1, O_CAPTURE_THREADS, "N",
     "Capture threads per interface, joined in a PACKET_FANOUT group (default 1)."},
    {"web.listen-address", 1, O_LISTEN, "[HOST]:PORT",
     "Address of the scrape page (default :9112)."},
    {"port", 1, O_PORT, "PORT", "Port of the scrape page (same as --web.listen-address :PORT)."},
    {"web.disable", 0, O_WEB_DISABLE, NULL, "Serve no scrape page (push-only agents)."},
    {"log.level", 1, O_LOG_LEVEL, "LEVEL", "debug, info, warn or error (default info)."},
    {"log.format", 1, O_LOG_FORMAT, "FORMAT", "logfmt or json (default logfmt)."},
    {"push.gateway", 1, O_PUSH_GATEWAY, "URL", "Push to this Pushgateway (http or https)."},
    {"push.interval", 1, O_PUSH_INTERVAL, "DURATION", "Time between pushes (default 15s)."},
    {"push.job", 1, O_PUSH_JOB, "JOB", "Job name of the pushed group (default promacct)."},
    {"push.grouping", 1, O_PUSH_GROUPING, "NAME=VALUE",
     "Grouping label of the pushed group (repeatable; instance defaults to the host name)."},
    {"push.method", 1, O_PUSH_METHOD, "put|post",
     "put replaces the whole group, post only the pushed families (default put)."},
    {"push.delete-on-exit", 0, O_PUSH_DELETE, NULL, "Delete the group on clean shutdown."},
    {"push.timeout", 1, O_PUSH_TIMEOUT, "DURATION", "Timeout of one push (default 10s)."},
    {"push.basic-auth-user", 1, O_PUSH_USER, "USER", "Basic auth user name."},
    {"push.basic-auth-password-file", 1, O_PUSH_PASSWORD_FILE, "FILE",
     "File holding the basic auth password."},
    {"push.bearer-token-file", 1, O_PUSH_BEARER_FILE, "FILE", "File holding a bearer token."},
    {"push.tls-ca-file", 1, O_PUSH_CA, "FILE", "CA certificates to verify the gateway."},
    {"push.tls-cert-file", 1, O_PUSH_CERT, "FILE", "Client certificate."},
    {"push.tls-key-file", 1, O_PUSH_KEY, "FILE", "Client certificate key."},
    {"push.tls-insecure-skip-verify", 0, O_PUSH_INSECURE, NULL,
     "Do not verify the gateway's certificate."},
    {"remote-write.url", 1, O_RW_URL, "URL",
     "Remote-write endpoint (repeatable; each has its own queue)."},
    {"remote-write.interval", 1, O_RW_INTERVAL, "DURATION",
     "Time between snapshots sent (default 15s)."},
    {"remote-write.max-samples-per-send", 1, O_RW_MAX_SAMPLES, "N",
     "Samples per request at most (default 2000)."},
    {"remote-write.queue-max-samples", 1, O_RW_QUEUE_MAX, "N",
     "Samples kept per endpoint while it is unreachable; the oldest are dropped beyond "
     "(default 4000000: 10 minutes of a 10k-series state every 15s)."},
    {"remote-write.header", 1, O_RW_HEADER, "\"NAME: VALUE\"",
     "Extra request header, e.g. X-Scope-OrgID (repeatable)."},
    {"remote-write.external-label", 1, O_RW_LABEL, "NAME=VALUE",
     "Label added to every series (repeatable; job defaults to promacct, instance to the "
     "host name)."},
    {"remote-write.min-backoff", 1, O_RW_MIN_BACKOFF, "DURATION",
     "First retry delay (default 30ms)."},
    {"remote-write.max-backoff", 1, O_RW_MAX_BACKOFF, "DURATION",
     "Largest retry delay (default 5s)."},
    {"remote-write.timeout", 1, O_RW_TIMEOUT, "DURATION", "Timeout of one request (default 30s)."},
    {"remote-write.basic-auth-user", 1, O_RW_USER, "USER", "Basic auth user name."},
    {"remote-write.basic-auth-password-file", 1, O_RW_PASSWORD_FILE, "FILE",
     "File holding the basic auth password."},
    {"remote-write.bearer-token-file", 1, O_RW_BEARER_FILE, "FILE", "File holding a bearer token."},
    {"remote-write.tls-ca-file", 1, O_RW_CA, "FILE", "CA certificates to verify endpoints."},
    {"remote-write.tls-cert-file", 1, O_RW_CERT, "FILE", "Client certificate."},
    {"remote-write.tls-key-file", 1, O_RW_KEY, "FILE", "Client certificate key."},
    {"remote-write.tls-insecure-skip-verify", 0, O_RW_INSECURE, NULL,
     "Do not verify the endpoints' certificates."},
    {"help", 0, O_HELP, NULL, "Show this help and exit."},
    {"version", 0, O_VERSION, NULL, "Show the version and exit."},
};

void config_usage(FILE *out)
{
	fprintf(out, "usage: promacct (-i IFACE | -R FILE)... [-r RANGE]... [options]\n\n"
	             "Network traffic accounting for Prometheus: packet size histograms per "
	             "interface\nand per address, served on /metrics, pushed to a Pushgateway or "
	             "remote-written.\n\nFlags:\n");
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		char left[80];
		const struct opt_doc *o = &opts[i];
		if (o->id < 256)
			snprintf(left, sizeof left, "-%c, --%s%s%s", o->id, o->name,
			         o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(left, sizeof left, "    --%s%s%s", o->name, o->arg ? " " : "",
			         o->arg ? o->arg : "");
		fprintf(out, "  %s\n        %s\n", left, o->help);
	}
	fprintf(out, "\nExamples:\n"
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

static int push_str(const char ***arr, size_t *n, const char *v)
{
	const char **na = realloc(*arr, (*n + 1) * sizeof *na);
	if (!na)
		return -ENOMEM;
	na[(*n)++] = v;
	*arr = na;
	return 0;
}

static int parse_size(const char *text, uint64_t max, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(text, &end, 10);
	if (errno || end == text || text[0] == '-')
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

static int parse_duration_opt(const char *text, const char *flag, double *out, char *err,
                              size_t errlen)
{
	if (duration_parse(text, out) || *out <= 0) {
		snprintf(err, errlen, "--%s: invalid duration '%s' (e.g. 500ms, 15s, 1m)", flag,
		         text);
		return -EINVAL;
	}
	return 0;
}

/* The HTTP client flags shared by --push.* and --remote-write.*, in enum
 * order from O_*_TIMEOUT. */
enum http_flag {
	H_TIMEOUT,
	H_USER,
	H_PASSWORD_FILE,
	H_BEARER_FILE,
	H_CA,
	H_CERT,
	H_KEY,
	H_INSECURE
};

static int http_opt(struct http_client_opts *h, int which, const char *flag, const char *arg,
                    char *err, size_t errlen)
{
	switch ((enum http_flag)which) {
	case H_TIMEOUT:
		return parse_duration_opt(arg, flag, &h->timeout, err, errlen);
	case H_USER:
		h->basic_user = arg;
		break;
	case H_PASSWORD_FILE:
		h->basic_password_file = arg;
		break;
	case H_BEARER_FILE:
		h->bearer_token_file = arg;
		break;
	case H_CA:
		h->tls_ca_file = arg;
		break;
	case H_CERT:
		h->tls_cert_file = arg;
		break;
	case H_KEY:
		h->tls_key_file = arg;
		break;
	case H_INSECURE:
		h->tls_insecure = 1;
		break;
	}
	return 0;
}

enum config_result config_parse(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	struct option lopts[ARRAY_LEN(opts) + 1];
	const char *buckets = HISTOGRAM_DEFAULT_BUCKETS;
	const char *port = NULL, *listen = NULL;
	char e[512];
	int rc;

	memset(c, 0, sizeof *c);
	ranges_init(&c->ranges);
	c->max_addresses = CONFIG_DEFAULT_MAX_ADDRESSES;
	c->buffer_size = CONFIG_DEFAULT_BUFFER_SIZE;
	c->capture_threads = 1;
	c->push_interval = 15;
	c->push_job = "promacct";
	c->push_http.timeout = 10;
	c->rw_interval = 15;
	c->rw_max_samples_per_send = 2000;
	c->rw_queue_max_samples = 4000000;
	c->rw_min_backoff = 0.03;
	c->rw_max_backoff = 5;
	c->rw_http.timeout = 30;

	for (size_t i = 0; i < ARRAY_LEN(opts); i++)
		lopts[i] =
		    (struct option){opts[i].name, opts[i].has_arg ? required_argument : no_argument,
		                    NULL, opts[i].id};
	memset(&lopts[ARRAY_LEN(opts)], 0, sizeof lopts[0]);

	optind = 1;
	opterr = 0;
	for (;;) {
		int longidx = -1;
		int o = getopt_long(argc, argv, ":i:R:f:r:p:h", lopts, &longidx);
		if (o == -1)
			break;
		uint64_t v;
		switch (o) {
		case '?':
			if (optopt && optopt < 256)
				snprintf(err, errlen, "unknown flag -%c", optopt);
			else
				snprintf(err, errlen, "unknown flag %s", argv[optind - 1]);
			return CONFIG_USAGE;
		case ':':
			snprintf(err, errlen, "flag %s needs a value", argv[optind - 1]);
			return CONFIG_USAGE;
		case O_HELP:
			config_usage(stdout);
			return CONFIG_EXIT_OK;
		case O_VERSION:
			printf("promacct, version %s\n", promacct_version);
			return CONFIG_EXIT_OK;
		case O_INTERFACE:
			if (push_str(&c->interfaces, &c->ninterfaces, optarg))
				goto oom;
			break;
		case O_READ:
			if (push_str(&c->reads, &c->nreads, optarg))
				goto oom;
			break;
		case O_FILTER:
			c->filter = optarg;
			break;
		case O_ONCE:
			c->once = 1;
			break;
		case O_RANGE:
			rc = ranges_add(&c->ranges, optarg, e, sizeof e);
			if (rc) {
				snprintf(err, errlen, "-r/--range: %s", e);
				return CONFIG_USAGE;
			}
			break;
		case O_MAX_ADDRESSES:
			if (parse_size(optarg, UINT32_MAX / 32, &v) || v == 0) {
				snprintf(err, errlen, "--max-addresses: invalid number '%s'",
				         optarg);
				return CONFIG_USAGE;
			}
			c->max_addresses = (size_t)v;
			break;
		case O_BUCKETS:
			buckets = optarg;
			break;
		case O_BUFFER_SIZE:
			if (parse_size(optarg, INT32_MAX, &v) || v < 65536) {
				snprintf(
				    err, errlen,
				    "--buffer-size: invalid size '%s' (at least 64K, at most 2G)",
				    optarg);
				return CONFIG_USAGE;
			}
			c->buffer_size = (int)v;
			break;
		case O_PROMISC:
			c->promisc = 1;
			break;
		case O_CAPTURE_THREADS:
			if (parse_size(optarg, CONFIG_MAX_CAPTURE_THREADS, &v) || v == 0) {
				snprintf(err, errlen,
				         "--capture-threads: must be 1 to %d, got '%s'",
				         CONFIG_MAX_CAPTURE_THREADS, optarg);
				return CONFIG_USAGE;
			}
			c->capture_threads = (int)v;
			break;
		case O_LISTEN:
			listen = optarg;
			break;
		case O_PORT:
			port = optarg;
			break;
		case O_WEB_DISABLE:
			c->web_disable = 1;
			break;
		case O_LOG_LEVEL:
			if (log_set_level(optarg)) {
				snprintf(
				    err, errlen,
				    "--log.level: unknown level '%s' (debug, info, warn, error)",
				    optarg);
				return CONFIG_USAGE;
			}
			break;
		case O_LOG_FORMAT:
			if (log_set_format(optarg)) {
				snprintf(err, errlen,
				         "--log.format: unknown format '%s' (logfmt, json)",
				         optarg);
				return CONFIG_USAGE;
			}
			break;
		case O_PUSH_GATEWAY:
			c->push_gateway = optarg;
			break;
		case O_PUSH_INTERVAL:
			if (parse_duration_opt(optarg, "push.interval", &c->push_interval, err,
			                       errlen))
				return CONFIG_USAGE;
			break;
		case O_PUSH_JOB:
			if (!*optarg) {
				snprintf(err, errlen, "--push.job: must not be empty");
				return CONFIG_USAGE;
			}
			c->push_job = optarg;
			break;
		case O_PUSH_GROUPING:
			if (add_label(&c->push_grouping, &c->npush_grouping, optarg,
			              "--push.grouping", err, errlen))
				return CONFIG_USAGE;
			if (!strcmp(c->push_grouping[c->npush_grouping - 1].name, "job")) {
				snprintf(err, errlen,
				         "--push.grouping: use --push.job for the job");
				return CONFIG_USAGE;
			}
			break;
		case O_PUSH_METHOD:
			if (!strcasecmp(optarg, "put"))
				c->push_post = 0;
			else if (!strcasecmp(optarg, "post"))
				c->push_post = 1;
			else {
				snprintf(err, errlen,
				         "--push.method: expected put or post, got '%s'", optarg);
				return CONFIG_USAGE;
			}
			break;
		case O_PUSH_DELETE:
			c->push_delete_on_exit = 1;
			break;
		case O_PUSH_TIMEOUT:
		case O_PUSH_USER:
		case O_PUSH_PASSWORD_FILE:
		case O_PUSH_BEARER_FILE:
		case O_PUSH_CA:
		case O_PUSH_CERT:
		case O_PUSH_KEY:
		case O_PUSH_INSECURE:
			if (http_opt(&c->push_http, o - O_PUSH_TIMEOUT, opts[longidx].name, optarg,
			             err, errlen))
				return CONFIG_USAGE;
			break;
		case O_RW_URL:
			if (push_str(&c->rw_urls, &c->nrw_urls, optarg))
				goto oom;
			break;
		case O_RW_INTERVAL:
			if (parse_duration_opt(optarg, "remote-write.interval", &c->rw_interval,
			                       err, errlen))
				return CONFIG_USAGE;
			break;
		case O_RW_MAX_SAMPLES:
			if (parse_size(optarg, 1000000, &v) || v == 0) {
				snprintf(err, errlen,
				         "--remote-write.max-samples-per-send: invalid number '%s'",
				         optarg);
				return CONFIG_USAGE;
			}
			c->rw_max_samples_per_send = (size_t)v;
			break;
		case O_RW_QUEUE_MAX:
			if (parse_size(optarg, (uint64_t)1 << 40, &v) || v == 0) {
				snprintf(err, errlen,
				         "--remote-write.queue-max-samples: invalid number '%s'",
				         optarg);
				return CONFIG_USAGE;
			}
			c->rw_queue_max_samples = (size_t)v;
			break;
		case O_RW_HEADER:
			if (!strchr(optarg, ':')) {
				snprintf(
				    err, errlen,
				    "--remote-write.header: expected \"Name: value\", got '%s'",
				    optarg);
				return CONFIG_USAGE;
			}
			if (push_str(&c->rw_headers, &c->nrw_headers, optarg))
				goto oom;
			break;
		case O_RW_LABEL:
			if (add_label(&c->rw_labels, &c->nrw_labels, optarg,
			              "--remote-write.external-label", err, errlen))
				return CONFIG_USAGE;
			if (!strncmp(c->rw_labels[c->nrw_labels - 1].name, "__", 2)) {
				snprintf(
				    err, errlen,
				    "--remote-write.external-label: names starting with __ are "
				    "reserved");
				return CONFIG_USAGE;
			}
			break;
		case O_RW_MIN_BACKOFF:
			if (parse_duration_opt(optarg, "remote-write.min-backoff",
			                       &c->rw_min_backoff, err, errlen))
				return CONFIG_USAGE;
			break;
		case O_RW_MAX_BACKOFF:
			if (parse_duration_opt(optarg, "remote-write.max-backoff",
			                       &c->rw_max_backoff, err, errlen))
				return CONFIG_USAGE;
			break;
		case O_RW_TIMEOUT:
		case O_RW_USER:
		case O_RW_PASSWORD_FILE:
		case O_RW_BEARER_FILE:
		case O_RW_CA:
		case O_RW_CERT:
		case O_RW_KEY:
		case O_RW_INSECURE:
			if (http_opt(&c->rw_http, o - O_RW_TIMEOUT, opts[longidx].name, optarg, err,
			             errlen))
				return CONFIG_USAGE;
			break;
		default:
			snprintf(err, errlen, "unknown flag %s", argv[optind - 1]);
			return CONFIG_USAGE;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return CONFIG_USAGE;
	}
	if (!c->ninterfaces && !c->nreads) {
		snprintf(err, errlen, "nothing to capture: give -i IFACE or -R FILE (see --help)");
		return CONFIG_USAGE;
	}
	if (c->once && !c->nreads) {
		snprintf(err, errlen, "--once needs -R FILE");
		return CONFIG_USAGE;
	}
	if (c->once && c->ninterfaces) {
		snprintf(err, errlen,
		         "--once cannot be combined with -i (live capture never ends)");
		return CONFIG_USAGE;
	}
	c->layout = malloc(sizeof *c->layout);
	if (!c->layout)
		goto oom;
	if (histogram_layout_parse(c->layout, buckets, e, sizeof e)) {
		snprintf(err, errlen, "--buckets: %s", e);
		return CONFIG_USAGE;
	}
	if (ranges_build(&c->ranges))
		goto oom;
	if (c->filter && capture_check_filter(c->filter, e, sizeof e)) {
		snprintf(err, errlen, "-f/--filter: %s", e);
		return CONFIG_USAGE;
	}
	if (port && listen) {
		snprintf(err, errlen, "give either -p/--port or --web.listen-address, not both");
		return CONFIG_USAGE;
	}
	if (port)
		snprintf(c->listen, sizeof c->listen, ":%s", port);
	else
		snprintf(c->listen, sizeof c->listen, "%s",
		         listen ? listen : CONFIG_DEFAULT_LISTEN);
	{
		char host[256];
		int p;
		if (http_server_parse_listen(c->listen, host, sizeof host, &p)) {
			snprintf(err, errlen, "invalid listen address '%s' (expected [HOST]:PORT)",
			         c->listen);
			return CONFIG_USAGE;
		}
	}
	if (c->push_gateway && strncmp(c->push_gateway, "http://", 7) &&
	    strncmp(c->push_gateway, "https://", 8)) {
		snprintf(err, errlen,
		         "--push.gateway: expected an http:// or https:// URL, got '%s'",
		         c->push_gateway);
		return CONFIG_USAGE;
	}
	for (size_t i = 0; i < c->nrw_urls; i++)
		if (strncmp(c->rw_urls[i], "http://", 7) && strncmp(c->rw_urls[i], "https://", 8)) {
			snprintf(
			    err, errlen,
			    "--remote-write.url: expected an http:// or https:// URL, got '%s'",
			    c->rw_urls[i]);
			return CONFIG_USAGE;
		}
	if (c->rw_min_backoff > c->rw_max_backoff) {
		snprintf(err, errlen, "--remote-write.min-backoff is larger than max-backoff");
		return CONFIG_USAGE;
	}
	if (c->push_http.basic_password_file && !c->push_http.basic_user) {
		snprintf(err, errlen,
		         "--push.basic-auth-password-file needs --push.basic-auth-user");
		return CONFIG_USAGE;
	}
	if (c->rw_http.basic_password_file && !c->rw_http.basic_user) {
		snprintf(err, errlen,
		         "--remote-write.basic-auth-password-file needs "
		         "--remote-write.basic-auth-user");
		return CONFIG_USAGE;
	}
	if (!!c->push_http.tls_cert_file != !!c->push_http.tls_key_file ||
	    !!c->rw_http.tls_cert_file != !!c->rw_http.tls_key_file) {
		snprintf(err, errlen, "a TLS client certificate needs both its cert and key file");
		return CONFIG_USAGE;
	}
	if (c->push_gateway) {
		const char *clash = push_grouping_clash(c);
		if (clash) {
			snprintf(
			    err, errlen,
			    "--push.grouping: promacct's metrics carry a label '%s' themselves; "
			    "a grouping label must not (the Pushgateway would reject the push)",
			    clash);
			return CONFIG_USAGE;
		}
		if (set_default_label(&c->push_grouping, &c->npush_grouping, "instance",
		                      config_hostname()))
			goto oom;
	}
	if (c->nrw_urls &&
	    (set_default_label(&c->rw_labels, &c->nrw_labels, "job", "promacct") ||
	     set_default_label(&c->rw_labels, &c->nrw_labels, "instance", config_hostname())))
		goto oom;
	return CONFIG_OK;
oom:
	snprintf(err, errlen, "out of memory");
	return CONFIG_USAGE;
}

void config_free(struct config *c)
{
	free(c->interfaces);
	free(c->reads);
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
