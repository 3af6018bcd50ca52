/* rw_receiver: a strict remote-write receiver for the tests.
 *
 * Checks every request against the Remote-Write 1.0 rules (method, headers,
 * snappy block body, protobuf, label order/uniqueness/validity, timestamps)
 * and answers from a fault plan, so tests can see retries and back-off.
 *
 *   rw_receiver [-d MS] [-q] PORT LOG [PLAN]
 *
 * PORT 0 picks a free port; the bound port is printed on stdout. PLAN is a
 * comma-separated list of answers for the first requests, e.g.
 * "500,503,429:1,400" (429:1 adds Retry-After: 1); later requests get 200.
 * An answer ending in '+' is repeated for every later request ("429:60+");
 * "hang" never answers (the request waits until the receiver exits).
 * -d MS answers every request MS milliseconds after it arrived (a receiver
 * one WAN round trip away); requests are served concurrently, one thread
 * per connection, so the delay does not serialise them. -q logs requests
 * only (no S lines): for benchmarks with millions of samples.
 * LOG receives one line per event:
 *   R <status> <series> <user-agent-ok>   a request and its answer
 *   S<TAB><series-key><TAB><timestamp><TAB><value>   an accepted sample
 *   V <reason>                            a rule violation (answered 400)
 *   H <name>: <value>                     extra headers seen (X-Scope-OrgID) */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "remote.pb-c.h"

#define BODY_MAX (64 << 20)

static FILE *logf_;
static char *plan[256];
static int nplan, served, quiet;
static long delay_ms;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct req {
	char *body;
	size_t len;
};

static int name_ok(const char *n, int metric)
{
	if (!n || !*n)
		return 0;
	for (const char *p = n; *p; p++) {
		int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
		            (metric && *p == ':');
		if (!alpha && !(p > n && *p >= '0' && *p <= '9'))
			return 0;
	}
	return 1;
}

static const char *check(struct MHD_Connection *c, struct req *r, Prometheus__WriteRequest **out)
{
	const char *ce = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Encoding");
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *ver =
	    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Prometheus-Remote-Write-Version");
	const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
	if (!ce || strcmp(ce, "snappy"))
		return "content-encoding";
	if (!ct || strcmp(ct, "application/x-protobuf"))
		return "content-type";
	if (!ver || strcmp(ver, "0.1.0"))
		return "version-header";
	if (!ua || strncmp(ua, "promacct/", 9))
		return "user-agent";
	if (r->len >= 10 && !memcmp(r->body, "\xff\x06\x00\x00sNaPpY", 10))
		return "framed-snappy";
	size_t ulen;
	if (snappy_uncompressed_length(r->body, r->len, &ulen) != SNAPPY_OK)
		return "snappy";
	char *raw = malloc(ulen ? ulen : 1);
	if (snappy_uncompress(r->body, r->len, raw, &ulen) != SNAPPY_OK) {
		free(raw);
		return "snappy";
	}
	Prometheus__WriteRequest *w =
	    prometheus__write_request__unpack(NULL, ulen, (const uint8_t *)raw);
	free(raw);
	if (!w)
		return "protobuf";
	*out = w;
	for (size_t i = 0; i < w->n_timeseries; i++) {
		Prometheus__TimeSeries *ts = w->timeseries[i];
		int has_name = 0;
		if (ts->n_samples == 0)
			return "no-samples";
		for (size_t k = 0; k < ts->n_labels; k++) {
			const char *n = ts->labels[k]->name, *v = ts->labels[k]->value;
			if (!n[0] || !v[0])
				return "empty-label";
			if (!strcmp(n, "__name__")) {
				has_name = 1;
				if (!name_ok(v, 1))
					return "metric-name";
			} else if (!name_ok(n, 0) || !strncmp(n, "__", 2)) {
				return "label-name";
			}
			if (k > 0 && strcmp(ts->labels[k - 1]->name, n) >= 0)
				return "label-order";
		}
		if (!has_name)
			return "no-name";
		for (size_t s = 0; s < ts->n_samples; s++)
			if (ts->samples[s]->timestamp < 1500000000000LL)
				return "timestamp";
	}
	return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
	(void)cls;
	(void)url;
	(void)version;
	struct req *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof *r);
		*con_cls = r;
		return MHD_YES;
	}
	if (*size) {
		if (r->len + *size <= BODY_MAX) {
			r->body = realloc(r->body, r->len + *size);
			memcpy(r->body + r->len, data, *size);
			r->len += *size;
		}
		*size = 0;
		return MHD_YES;
	}
	unsigned status = 200;
	char retry_after[32] = "";
	Prometheus__WriteRequest *w = NULL;
	const char *bad = strcmp(method, "POST") ? "method" : check(c, r, &w);
	pthread_mutex_lock(&lock);
	const char *answer = NULL;
	if (served < nplan)
		answer = plan[served];
	else if (nplan > 0 && plan[nplan - 1][strlen(plan[nplan - 1]) - 1] == '+')
		answer = plan[nplan - 1];
	served++;
	if (bad) {
		fprintf(logf_, "V %s\n", bad);
		status = 400;
	} else if (answer && !strncmp(answer, "hang", 4)) {
		fprintf(logf_, "R hang %zu\n", w ? w->n_timeseries : 0);
		fflush(logf_);
		pthread_mutex_unlock(&lock);
		for (;;)
			pause(); /* until the receiver exits */
	} else if (answer) {
		status = (unsigned)atoi(answer);
		const char *colon = strchr(answer, ':');
		if (colon)
			snprintf(retry_after, sizeof retry_after, "%.*s",
			         (int)strcspn(colon + 1, "+"), colon + 1);
	}
	pthread_mutex_unlock(&lock);
	if (delay_ms > 0) {
		struct timespec d = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
		while (nanosleep(&d, &d))
			;
	}
	pthread_mutex_lock(&lock);
	const char *org = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Scope-OrgID");
	if (org)
		fprintf(logf_, "H X-Scope-OrgID: %s\n", org);
	fprintf(logf_, "R %u %zu\n", status, w ? w->n_timeseries : 0);
	if (status == 200 && w && !quiet)
		for (size_t i = 0; i < w->n_timeseries; i++) {
			Prometheus__TimeSeries *ts = w->timeseries[i];
			fputs("S\t", logf_);
			for (size_t k = 0; k < ts->n_labels; k++)
				fprintf(logf_, "%s%s=%s", k ? "," : "", ts->labels[k]->name,
				        ts->labels[k]->value);
			for (size_t s = 0; s < ts->n_samples; s++) {
				uint64_t bits;
				memcpy(&bits, &ts->samples[s]->value, sizeof bits);
				if (bits == 0x7ff0000000000002ull)
					fprintf(logf_, "\t%lld\tstale",
					        (long long)ts->samples[s]->timestamp);
				else
					fprintf(logf_, "\t%lld\t%.17g",
					        (long long)ts->samples[s]->timestamp,
					        ts->samples[s]->value);
			}
			fputc('\n', logf_);
		}
	fflush(logf_);
	pthread_mutex_unlock(&lock);
	if (w)
		prometheus__write_request__free_unpacked(w, NULL);
	const char *msg = status == 200 ? "" : "injected or rule violation\n";
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(msg), (void *)msg, MHD_RESPMEM_PERSISTENT);
	if (retry_after[0])
		MHD_add_response_header(resp, "Retry-After", retry_after);
	enum MHD_Result res = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return res;
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct req *r = *con_cls;
	if (r) {
		free(r->body);
		free(r);
	}
}

int main(int argc, char **argv)
{
	int opt;
	while ((opt = getopt(argc, argv, "d:q")) != -1) {
		if (opt == 'd')
			delay_ms = atol(optarg);
		else if (opt == 'q')
			quiet = 1;
		else
			return 2;
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 3) {
		fprintf(stderr, "usage: rw_receiver [-d MS] [-q] PORT LOG [PLAN]\n");
		return 2;
	}
	logf_ = fopen(argv[2], "a");
	if (!logf_)
		return 1;
	if (argc > 3)
		for (char *t = strtok(argv[3], ","); t && nplan < 256; t = strtok(NULL, ","))
			plan[nplan++] = t;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	struct MHD_Daemon *d = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO, 0, NULL,
	    NULL, on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, on_done,
	    NULL, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "rw_receiver: cannot listen\n");
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("%u\n", (unsigned)info->port);
	fflush(stdout);
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGTERM);
	sigprocmask(SIG_BLOCK, &s, NULL);
	int sig;
	sigwait(&s, &sig);
	/* Hanging requests never return: leave without joining their threads. */
	pthread_mutex_lock(&lock);
	fflush(logf_);
	_exit(0);
}
