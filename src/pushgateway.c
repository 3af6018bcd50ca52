/* DESIGN: the Pushgateway pusher.
 *
 * Lifecycle: pushgateway_new (validates, builds the URL and the HTTP client;
 * no thread, no traffic) / pushgateway_start (the timer thread) /
 * pushgateway_shutdown(deadline) / pushgateway_free. The one stop flag is
 * `stop`: the timer's wait and a push in flight both watch it.
 *
 * The timer thread (timer.c) wakes every interval and PUTs or POSTs the
 * registry to the group URL as a gzip text-format body streamed while it is
 * rendered (a render stream, as the scrape page's, read by libcurl's read
 * callback: chunked, a few hundred KiB held whatever the state's size). Rendering reads counters
 * without stopping capture; the HTTP request blocks only this thread, bounded by the timeout and
 * abandoned when stop is set. Counters are cumulative, so a failed push loses nothing: the next
 * interval sends the current state. Failures are logged once per change of state (not every
 * interval) and counted.
 *
 * Graceful work (the final push, DELETE with delete_on_exit) happens in
 * pushgateway_shutdown, on the caller's thread after the timer thread has
 * ended, only if pushgateway_start succeeded, each request bounded by the
 * shutdown deadline. A pusher that never started (say, another module failed
 * to start) sends nothing: it must not touch the group of an agent that is
 * running with the same grouping. */
#include "promacct/pushgateway.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/expo_text.h"
#include "promacct/log.h"
#include "promacct/render.h"
#include "promacct/timer.h"

#define GZIP_LEVEL 1 /* fast: bodies are deflated while they are rendered */
#define URL_MAX    8192

struct pushgateway {
	struct registry *reg;
	http_client *http;
	char *url;
	char shown[512]; /* url without password and query (url_redact): logs */
	int post;
	int delete_on_exit;

	struct timer timer;
	atomic_int stop; /* the one stop flag */

	int last_ok; /* -1 unknown, 0 failing, 1 ok: log on change only */
	gauge_t *ok, *failed, *last_success, *duration;
};

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void append_base64url(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		buf_append_char(b, b64url[(v >> 18) & 63]);
		buf_append_char(b, b64url[(v >> 12) & 63]);
		buf_append_char(b, i + 1 < n ? b64url[(v >> 6) & 63] : '=');
		buf_append_char(b, i + 2 < n ? b64url[v & 63] : '=');
	}
}

static void append_escaped(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			buf_append_char(b, (char)*p);
		} else {
			buf_append_char(b, '%');
			buf_append_char(b, hex[*p >> 4]);
			buf_append_char(b, hex[*p & 15]);
		}
	}
}

static void append_segment(struct buf *b, const char *name, const char *value)
{
	buf_append_char(b, '/');
	buf_append_str(b, name);
	if (!*value) {
		buf_append_str(b, "@base64/=");
	} else if (strchr(value, '/')) {
		buf_append_str(b, "@base64/");
		append_base64url(b, value);
	} else {
		buf_append_char(b, '/');
		append_escaped(b, value);
	}
}

void pushgateway_group_path(struct buf *out, const char *job, const struct label *grouping,
                            size_t n)
{
	buf_append_str(out, "/metrics");
	append_segment(out, "job", job);
	for (size_t i = 0; i < n; i++)
		append_segment(out, grouping[i].name, grouping[i].value);
}

int pushgateway_url(struct buf *out, const char *gateway, const char *job,
                    const struct label *grouping, size_t n, char *err, size_t errlen)
{
	if (strncmp(gateway, "http://", 7) && strncmp(gateway, "https://", 8)) {
		snprintf(err, errlen, "expected an http:// or https:// URL");
		return -EINVAL;
	}
	if (strchr(gateway, '#')) {
		snprintf(err, errlen, "a URL fragment ('#') has no meaning here");
		return -EINVAL;
	}
	/* The path part ends at the query; the group path goes between. */
	size_t pl = strcspn(gateway, "?");
	size_t gl = pl;
	while (gl > 0 && gateway[gl - 1] == '/')
		gl--;
	buf_append(out, gateway, gl);
	pushgateway_group_path(out, job, grouping, n);
	buf_append_str(out, gateway + pl);
	buf_append_char(out, '\0');
	if (out->err) {
		snprintf(err, errlen, "push URL too long");
		return -EINVAL;
	}
	return 0;
}

static void push_tick(void *arg);

struct pushgateway *pushgateway_new(const struct pushgateway_opts *o, struct registry *reg,
                                    char *err, size_t errlen)
{
	struct buf u;
	char why[256];
	if (!o->gateway || !o->job || !*o->job) {
		snprintf(err, errlen, "a gateway URL and a job name are needed");
		return NULL;
	}
	if (!(o->interval > 0)) {
		snprintf(err, errlen, "push interval must be positive");
		return NULL;
	}
	struct pushgateway *p = calloc(1, sizeof *p);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->reg = reg;
	p->post = o->post;
	p->delete_on_exit = o->delete_on_exit;
	p->last_ok = -1;
	atomic_init(&p->stop, 0);
	timer_init(&p->timer,
	           &(struct timer_opts){
	               .interval = o->interval, .tick = push_tick, .arg = p, .stop = &p->stop});

	buf_init(&u, URL_MAX);
	if (pushgateway_url(&u, o->gateway, o->job, o->grouping, o->ngrouping, why, sizeof why)) {
		char shown[512];
		if (url_redact(o->gateway, shown, sizeof shown)) {
			/* shown: <url too long> */
		}
		snprintf(err, errlen, "gateway URL '%s': %s", shown, why);
		buf_free(&u);
		goto fail;
	}
	p->url = u.data;
	if (url_redact(p->url, p->shown, sizeof p->shown)) {
		/* shown: <url too long> */
	}
	p->http = http_client_new(&o->http, err, errlen);
	if (!p->http)
		goto fail;
	p->ok = registry_self_add(reg, "promacct_push_requests_total",
	                          "Pushes to the Pushgateway, by result.", METRIC_COUNTER, "result",
	                          "success", NULL, NULL);
	p->failed = registry_self_add(reg, "promacct_push_requests_total",
	                              "Pushes to the Pushgateway, by result.", METRIC_COUNTER,
	                              "result", "failure", NULL, NULL);
	p->last_success =
	    registry_self_add(reg, "promacct_push_last_success_timestamp_seconds",
	                      "Time of the last successful push since the Unix epoch, in seconds.",
	                      METRIC_GAUGE, NULL, NULL, NULL, NULL);
	p->duration = registry_self_add(reg, "promacct_push_duration_seconds",
	                                "Duration of the last push request, in seconds.",
	                                METRIC_GAUGE, NULL, NULL, NULL, NULL);
	if (!p->ok || !p->failed || !p->last_success || !p->duration) {
		snprintf(err, errlen, "too many self-metrics");
		goto fail;
	}
	return p;
fail:
	pushgateway_free(p);
	return NULL;
}

/* Logs a failed request: the transport error, or the status and body. */
static void log_failure(enum log_level level, const char *msg, const char *url,
                        const struct http_response *r)
{
	char b[600];
	if (r->status == 0)
		log_write(level, msg, "url=%s err=%s", url, r->error);
	else
		log_write(level, msg, "url=%s status=%ld body=%s", url, r->status,
		          log_bytes(b, sizeof b, r->body, r->body_len));
}

/* r: the failed request's response, or NULL with the reason in `what`. */
static void note_result(struct pushgateway *p, int ok, const struct http_response *r,
                        const char *what)
{
	if (ok) {
		self_inc(p->ok, 1);
		gauge_set(p->last_success, time_now());
		if (p->last_ok != 1)
			log_info("push succeeded", "url=%s", p->shown);
	} else {
		self_inc(p->failed, 1);
		if (p->last_ok != 0) {
			if (r)
				log_failure(LOG_ERROR, "push failed", p->shown, r);
			else
				log_error("push failed", "url=%s err=%s", p->shown, what);
		}
	}
	p->last_ok = ok;
}

/* One push, bounded by the client's timeout, the deadline and (when not
 * NULL) the abort flag. Failures are logged and counted; an abandoned push
 * (shutting down) is neither. 0 on success, -1 if not. */
static ssize_t body_read(void *arg, char *dst, size_t max)
{
	ssize_t n = render_stream_read(arg, dst, max, 1);
	return n == RENDER_EOF ? 0 : n;
}

static int push_once(struct pushgateway *p, double deadline, const atomic_int *abort)
{
	struct http_response resp;
	int rc;

	/* The body is rendered while it is sent: a render thread fills a queue
	 * of two gzip chunks that libcurl's read callback empties (render.c),
	 * so a push holds a few hundred KiB whatever the size of the state. */
	struct render_opts ro = {.gzip = 1, .gzip_level = GZIP_LEVEL};
	struct render_stream *rs = render_stream_new(p->reg, &ro);
	if (!rs || render_stream_start(rs)) {
		render_stream_free(rs);
		note_result(p, 0, NULL, "rendering failed: out of memory");
		return -1;
	}
	const char *headers[] = {"Content-Type: " EXPO_TEXT_CONTENT_TYPE, "Content-Encoding: gzip",
	                         NULL};
	struct http_body_reader body = {body_read, rs};
	rc = http_client_request_stream(p->http, p->post ? "POST" : "PUT", p->url, &body, headers,
	                                deadline, abort, &resp);
	render_stream_free(rs);
	gauge_set(p->duration, resp.seconds);
	if (rc == -ECANCELED) {
		log_debug("push abandoned: shutting down", "url=%s", p->shown);
		rc = -1;
	} else if (rc == 0 && resp.status >= 200 && resp.status < 300) {
		note_result(p, 1, NULL, NULL);
		rc = 0;
	} else {
		note_result(p, 0, &resp, NULL);
		rc = -1;
	}
	return rc;
}

static void push_tick(void *arg)
{
	struct pushgateway *p = arg;
	(void)push_once(p, INFINITY, &p->stop);
}

int pushgateway_push_now(struct pushgateway *p)
{
	return push_once(p, INFINITY, &p->stop);
}

int pushgateway_start(struct pushgateway *p, char *err, size_t errlen)
{
	int rc = timer_start(&p->timer);
	if (rc)
		snprintf(err, errlen, "cannot start the push thread: %s", strerror(-rc));
	return rc;
}

void pushgateway_request_stop(struct pushgateway *p)
{
	atomic_store(&p->stop, 1);
}

static void delete_group(struct pushgateway *p, double deadline)
{
	struct http_response resp;
	int rc = http_client_request_until(p->http, "DELETE", p->url, NULL, 0, NULL, deadline, NULL,
	                                   &resp);
	if (rc == 0 && resp.status >= 200 && resp.status < 300) {
		log_info("deleted the pushed group", "url=%s", p->shown);
	} else {
		log_failure(LOG_ERROR, "deleting the pushed group failed", p->shown, &resp);
	}
}

void pushgateway_shutdown(struct pushgateway *p, double deadline)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	timer_stop(&p->timer);
	if (!timer_started(&p->timer))
		return; /* never started: no graceful work */
	/* The final state, then the group's end; each bounded by the deadline. */
	if (deadline_left(deadline) > 0)
		(void)push_once(p, deadline, NULL);
	else
		log_warn("no time left for the final push", "url=%s", p->shown);
	if (p->delete_on_exit) {
		if (deadline_left(deadline) > 0)
			delete_group(p, deadline);
		else
			log_error("no time left to delete the pushed group", "url=%s", p->shown);
		p->delete_on_exit = 0;
	}
}

void pushgateway_free(struct pushgateway *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, 1);
	timer_destroy(&p->timer);
	http_client_free(p->http);
	free(p->url);
	free(p);
}
