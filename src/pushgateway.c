/* DESIGN: the Pushgateway pusher.
 *
 * A timer thread wakes every --push.interval (a condition variable wait on
 * CLOCK_MONOTONIC, so a stop request wakes it at once), renders the registry
 * into a text-format body with the same renderer as the scrape page, and
 * PUTs or POSTs it to the group URL. Rendering reads counters without
 * stopping capture; the HTTP request blocks only this thread, bounded by
 * --push.timeout. Counters are cumulative, so a failed push loses nothing:
 * the next interval sends the current state. Failures are logged once per
 * change of state (not every interval) and counted. pushgateway_stop pushes
 * a final time and optionally DELETEs the group. */
#include "promacct/pushgateway.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promacct/expo_text.h"
#include "promacct/http_client.h"
#include "promacct/log.h"

#define GZIP_MIN_BYTES 1024 /* smaller bodies go uncompressed */
#define GZIP_LEVEL     6
#define URL_MAX        8192

struct pushgateway {
	struct registry *reg;
	http_client *http;
	char *url;
	int post;
	int delete_on_exit;
	double interval;
	size_t last_size;

	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int stop;

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

struct pushgateway *pushgateway_new(const struct config *cfg, struct registry *reg, char *err,
                                    size_t errlen)
{
	struct pushgateway *p = calloc(1, sizeof *p);
	struct buf u;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	p->reg = reg;
	p->post = cfg->push_post;
	p->delete_on_exit = cfg->push_delete_on_exit;
	p->interval = cfg->push_interval;
	p->last_ok = -1;
	pthread_mutex_init(&p->lock, NULL);
	cond_init_monotonic(&p->cond);

	buf_init(&u, URL_MAX);
	size_t gl = strlen(cfg->push_gateway);
	while (gl > 0 && cfg->push_gateway[gl - 1] == '/')
		gl--;
	buf_append(&u, cfg->push_gateway, gl);
	pushgateway_group_path(&u, cfg->push_job, cfg->push_grouping, cfg->npush_grouping);
	buf_append_char(&u, '\0');
	if (u.err) {
		snprintf(err, errlen, "push URL too long");
		buf_free(&u);
		goto fail;
	}
	p->url = u.data;
	p->http = http_client_new(&cfg->push_http, err, errlen);
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
			log_info("push succeeded", "url=%s", p->url);
	} else {
		self_inc(p->failed, 1);
		if (p->last_ok != 0) {
			if (r)
				log_failure(LOG_ERROR, "push failed", p->url, r);
			else
				log_error("push failed", "url=%s err=%s", p->url, what);
		}
	}
	p->last_ok = ok;
}

/* One push; failures are logged and counted (the caller may ignore them). */
static int push_once(struct pushgateway *p)
{
	struct buf text, gz;
	struct http_response resp;
	char what[300];
	int rc;

	buf_init(&text, BUF_DEFAULT_MAX);
	buf_init(&gz, BUF_DEFAULT_MAX);
	if (p->last_size && buf_reserve(&text, p->last_size + p->last_size / 8))
		buf_reset(&text);
	rc = expo_text_render(p->reg, &text);
	if (rc) {
		snprintf(what, sizeof what, "rendering failed: %s", strerror(-rc));
		note_result(p, 0, NULL, what);
		rc = -1;
		goto out;
	}
	p->last_size = text.len;
	const char *body = text.data;
	size_t body_len = text.len;
	const char *headers[3] = {"Content-Type: " EXPO_TEXT_CONTENT_TYPE, NULL, NULL};
	if (text.len >= GZIP_MIN_BYTES && buf_gzip(&gz, text.data, text.len, GZIP_LEVEL) == 0) {
		body = gz.data;
		body_len = gz.len;
		headers[1] = "Content-Encoding: gzip";
	}
	rc = http_client_request(p->http, p->post ? "POST" : "PUT", p->url, body, body_len, headers,
	                         &resp);
	gauge_set(p->duration, resp.seconds);
	if (rc == 0 && resp.status >= 200 && resp.status < 300) {
		note_result(p, 1, NULL, NULL);
		rc = 0;
	} else {
		note_result(p, 0, &resp, NULL);
		rc = -1;
	}
out:
	buf_free(&text);
	buf_free(&gz);
	return rc;
}

int pushgateway_push_now(struct pushgateway *p)
{
	return push_once(p);
}

static void *push_thread(void *arg)
{
	struct pushgateway *p = arg;
	double next = time_monotonic();
	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		pthread_mutex_unlock(&p->lock);
		push_once(p);
		pthread_mutex_lock(&p->lock);
		next = tick_next(next, p->interval, time_monotonic());
		cond_wait_until(&p->cond, &p->lock, next, &p->stop);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int pushgateway_start(struct pushgateway *p)
{
	if (pthread_create(&p->thread, NULL, push_thread, p))
		return -EAGAIN;
	p->started = 1;
	return 0;
}

void pushgateway_stop(struct pushgateway *p)
{
	if (p->started) {
		pthread_mutex_lock(&p->lock);
		p->stop = 1;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->thread, NULL);
		p->started = 0;
		/* The final state, bounded by --push.timeout. */
		push_once(p);
	}
	if (p->delete_on_exit) {
		struct http_response resp;
		int rc = http_client_request(p->http, "DELETE", p->url, NULL, 0, NULL, &resp);
		if (rc == 0 && resp.status >= 200 && resp.status < 300) {
			log_info("deleted the pushed group", "url=%s", p->url);
		} else {
			log_failure(LOG_ERROR, "deleting the pushed group failed", p->url, &resp);
		}
		p->delete_on_exit = 0;
	}
}

void pushgateway_free(struct pushgateway *p)
{
	if (!p)
		return;
	http_client_free(p->http);
	free(p->url);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}
