/* DESIGN: the HTTP client shared by the Pushgateway and remote-write
 * senders (one module, libcurl easy API).
 *
 * A client belongs to one sender thread at a time (curl handles are not
 * thread-safe); each remote-write endpoint and the pusher own one. Requests
 * block the calling sender thread only, bounded by the timeout; capture and
 * the scrape page never wait on them. Secrets are read from files when the
 * client is created and never logged; URLs are logged with their password
 * and query replaced (url_redact). A transport error is reported with
 * libcurl's own detailed message (its error buffer: which address, which
 * step failed), not just the generic text of its error code. Every request
 * is logged at debug level with its status, duration and sizes. Proxies come from the usual
 * environment variables (libcurl reads http_proxy/https_proxy/no_proxy). */
#include "promacct/http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "promacct/log.h"
#include "promacct/registry.h"

struct http_client {
	/* Connections, DNS answers and TLS sessions live in the share and outlast
	 * each request's easy handle (used by one thread at a time: no locks). */
	CURLSH *share;
	struct curl_slist *headers; /* user headers */
	struct http_client_opts o;
	char *password;
	char *bearer_header;
	char user_agent[64];
	char curl_err[CURL_ERROR_SIZE];
};

/* Files named by the options must be readable now, not at the first
 * request minutes later. */
static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (path && access(path, R_OK)) {
		snprintf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

http_client *http_client_new(const struct http_client_opts *o, char *err, size_t errlen)
{
	char *token = NULL;
	int rc;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc) {
		snprintf(err, errlen, "libcurl initialisation failed");
		return NULL;
	}
	http_client *c = calloc(1, sizeof *c);
	if (!c)
		goto oom;
	c->o = *o;
	if (check_readable("TLS CA file", o->tls_ca_file, err, errlen) ||
	    check_readable("TLS certificate file", o->tls_cert_file, err, errlen) ||
	    check_readable("TLS key file", o->tls_key_file, err, errlen))
		goto fail;
	snprintf(c->user_agent, sizeof c->user_agent, "promacct/%s", promacct_version);
	if (o->basic_password_file) {
		rc = file_read_secret(o->basic_password_file, &c->password);
		if (rc) {
			snprintf(err, errlen, "cannot read password file %s: %s",
			         o->basic_password_file, strerror(-rc));
			goto fail;
		}
		log_debug("read the basic auth password", "file=%s", o->basic_password_file);
	}
	if (o->bearer_token_file) {
		rc = file_read_secret(o->bearer_token_file, &token);
		if (rc) {
			snprintf(err, errlen, "cannot read bearer token file %s: %s",
			         o->bearer_token_file, strerror(-rc));
			goto fail;
		}
		size_t n = strlen(token) + sizeof "Authorization: Bearer ";
		c->bearer_header = malloc(n);
		if (!c->bearer_header)
			goto oom;
		snprintf(c->bearer_header, n, "Authorization: Bearer %s", token);
		memset(token, 0, strlen(token));
		free(token);
		token = NULL;
		log_debug("read the bearer token", "file=%s", o->bearer_token_file);
	}
	c->share = curl_share_init();
	if (!c->share)
		goto oom;
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return c;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	free(token);
	http_client_free(c);
	return NULL;
}

void http_client_free(http_client *c)
{
	if (!c)
		return;
	if (c->share)
		curl_share_cleanup(c->share);
	curl_slist_free_all(c->headers);
	if (c->password) {
		memset(c->password, 0, strlen(c->password));
		free(c->password);
	}
	if (c->bearer_header) {
		memset(c->bearer_header, 0, strlen(c->bearer_header));
		free(c->bearer_header);
	}
	free(c);
}

/* Headers promacct always sets itself. */
static const char *const always_reserved[] = {
    "host",       "content-length",    "connection", "authorization",
    "user-agent", "transfer-encoding", NULL};

int http_client_add_header(http_client *c, const char *header, const char *const *reserved,
                           char *err, size_t errlen)
{
	const char *colon = strchr(header, ':');
	if (!colon || colon == header) {
		snprintf(err, errlen, "header '%s' is not \"Name: value\"", header);
		return -EINVAL;
	}
	size_t nl = (size_t)(colon - header);
	for (const char *p = header; p < colon; p++)
		if (*p <= ' ' || *p >= 127) {
			snprintf(err, errlen, "header name in '%s' is not a token", header);
			return -EINVAL;
		}
	if (strpbrk(colon, "\r\n")) {
		snprintf(err, errlen, "header '%.*s' value holds a line break", (int)nl, header);
		return -EINVAL;
	}
	for (int pass = 0; pass < 2; pass++) {
		const char *const *list = pass ? reserved : always_reserved;
		for (size_t i = 0; list && list[i]; i++)
			if (strlen(list[i]) == nl && !strncasecmp(list[i], header, nl)) {
				snprintf(err, errlen,
				         "header %.*s is set by promacct and cannot be overridden",
				         (int)nl, header);
				return -EINVAL;
			}
	}
	struct curl_slist *n = curl_slist_append(c->headers, header);
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->headers = n;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_response *r = arg;
	size_t n = size * nmemb;
	size_t room = sizeof r->body - 1 - r->body_len;
	size_t take = n < room ? n : room;
	memcpy(r->body + r->body_len, data, take);
	r->body_len += take;
	r->body[r->body_len] = '\0';
	return n;
}

/* Pure: no state, no I/O (curl_getdate only parses). */
double http_retry_after_parse(const char *value, time_t now)
{
	char v[128];
	while (*value == ' ' || *value == '\t')
		value++;
	snprintf(v, sizeof v, "%s", value);
	v[strcspn(v, "\r\n")] = '\0';
	char *end;
	double secs = strtod(v, &end);
	if (end != v && *end == '\0' && secs >= 0)
		return secs;
	time_t when = curl_getdate(v, NULL);
	if (when > 0) {
		double d = difftime(when, now);
		return d > 0 ? d : 0;
	}
	return -1;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *arg)
{
	struct http_response *r = arg;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";
	if (n > sizeof name - 1 && !strncasecmp(data, name, sizeof name - 1)) {
		char v[128];
		size_t vl = n - (sizeof name - 1);
		if (vl >= sizeof v)
			vl = sizeof v - 1;
		memcpy(v, data + sizeof name - 1, vl);
		v[vl] = '\0';
		double secs = http_retry_after_parse(v, time(NULL));
		if (secs >= 0)
			r->retry_after = secs;
	}
	return n;
}

/* libcurl's progress callback: a nonzero return abandons the transfer. */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	const atomic_int *abort = arg;
	return atomic_load(abort) != 0;
}

int http_client_request(http_client *c, const char *method, const char *url, const char *body,
                        size_t body_len, const char *const *extra_headers,
                        struct http_response *resp)
{
	return http_client_request_until(c, method, url, body, body_len, extra_headers, INFINITY,
	                                 NULL, resp);
}

/* libcurl pulls a streamed body (see http_client_request_stream). */
struct body_pull {
	const struct http_body_reader *r;
	size_t sent;
	int err; /* the reader's error, 0 if none */
};

static size_t on_read(char *dst, size_t size, size_t n, void *arg)
{
	struct body_pull *b = arg;
	ssize_t got = b->r->read(b->r->arg, dst, size * n);
	if (got < 0) {
		b->err = (int)got;
		return CURL_READFUNC_ABORT;
	}
	b->sent += (size_t)got;
	return (size_t)got;
}

static int request(http_client *c, const char *method, const char *url, const char *body,
                   size_t body_len, struct body_pull *pull, const char *const *extra_headers,
                   double deadline, const atomic_int *abort, struct http_response *resp);

int http_client_request_until(http_client *c, const char *method, const char *url, const char *body,
                              size_t body_len, const char *const *extra_headers, double deadline,
                              const atomic_int *abort, struct http_response *resp)
{
	return request(c, method, url, body, body_len, NULL, extra_headers, deadline, abort, resp);
}

int http_client_request_stream(http_client *c, const char *method, const char *url,
                               const struct http_body_reader *body,
                               const char *const *extra_headers, double deadline,
                               const atomic_int *abort, struct http_response *resp)
{
	struct body_pull pull = {body, 0, 0};
	int rc = request(c, method, url, NULL, 0, &pull, extra_headers, deadline, abort, resp);
	if (pull.err && rc != -ECANCELED) {
		snprintf(resp->error, sizeof resp->error, "producing the body failed: %s",
		         strerror(-pull.err));
		resp->status = 0;
		rc = -EIO;
	}
	return rc;
}

static int request(http_client *c, const char *method, const char *url, const char *body,
                   size_t body_len, struct body_pull *pull, const char *const *extra_headers,
                   double deadline, const atomic_int *abort, struct http_response *resp)
{
	struct curl_slist *hdrs = NULL, *n;
	int rc = 0;
	memset(resp, 0, sizeof *resp);
	resp->retry_after = -1;
	double timeout = c->o.timeout;
	if (deadline - time_monotonic() < timeout)
		timeout = deadline - time_monotonic();
	if (timeout < 0.001) {
		snprintf(resp->error, sizeof resp->error,
		         "no time left before the shutdown deadline");
		return -ETIMEDOUT;
	}
	if (abort && atomic_load(abort)) {
		snprintf(resp->error, sizeof resp->error, "abandoned: shutting down");
		return -ECANCELED;
	}
	/* A fresh easy handle per request: libcurl 7.88 keeps a pointer to the
	 * previous transfer's last header in a reused handle, and a folded
	 * first header line in the next answer reads it after it was freed
	 * (found by fuzz_http; curl issue 11620). The share keeps connections. */
	CURL *h = curl_easy_init();
	if (!h)
		goto oom;
	for (size_t i = 0; extra_headers && extra_headers[i]; i++) {
		if (!(n = curl_slist_append(hdrs, extra_headers[i])))
			goto oom;
		hdrs = n;
	}
	for (struct curl_slist *u = c->headers; u; u = u->next) {
		if (!(n = curl_slist_append(hdrs, u->data)))
			goto oom;
		hdrs = n;
	}
	if (c->bearer_header) {
		if (!(n = curl_slist_append(hdrs, c->bearer_header)))
			goto oom;
		hdrs = n;
	}
	if (!(n = curl_slist_append(hdrs, "Expect:"))) /* no 100-continue round trip */
		goto oom;
	hdrs = n;
	if (pull) { /* a body of unknown length: chunked */
		if (!(n = curl_slist_append(hdrs, "Transfer-Encoding: chunked")))
			goto oom;
		hdrs = n;
	}

	curl_easy_setopt(h, CURLOPT_SHARE, c->share);
	c->curl_err[0] = '\0';
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->curl_err);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout * 1000));
	if (abort) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)abort);
	}
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (!strcmp(method, "POST") || !strcmp(method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		if (pull) {
			curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
			curl_easy_setopt(h, CURLOPT_READDATA, pull);
		} else {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		}
		if (!strcmp(method, "PUT"))
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "PUT");
	} else if (strcmp(method, "GET")) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	if (c->o.basic_user) {
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(h, CURLOPT_USERNAME, c->o.basic_user);
		curl_easy_setopt(h, CURLOPT_PASSWORD, c->password ? c->password : "");
	}
	if (c->o.tls_ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->o.tls_ca_file);
	if (c->o.tls_cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->o.tls_cert_file);
	if (c->o.tls_key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->o.tls_key_file);
	if (c->o.tls_insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}

	double t0 = time_monotonic();
	CURLcode cc = curl_easy_perform(h);
	resp->seconds = time_monotonic() - t0;
	if (cc == CURLE_ABORTED_BY_CALLBACK) {
		snprintf(resp->error, sizeof resp->error, "abandoned: shutting down");
		rc = -ECANCELED;
	} else if (cc != CURLE_OK) {
		/* The error buffer says what happened ("Failed to connect to
		 * 127.0.0.1 port 9 after 0 ms: Connection refused"); the code's
		 * text is the fallback. */
		size_t el = strlen(c->curl_err);
		while (el > 0 && (c->curl_err[el - 1] == '\n' || c->curl_err[el - 1] == ' '))
			c->curl_err[--el] = '\0';
		snprintf(resp->error, sizeof resp->error, "%s",
		         el ? c->curl_err : curl_easy_strerror(cc));
		rc = -EIO;
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
		/* libcurl passes odd status lines through ("HTTP/2222...", "HTTP/1.1 41"):
		 * not an HTTP answer the senders can classify (found by fuzz_http). */
		if (resp->status < 100 || resp->status > 999) {
			snprintf(resp->error, sizeof resp->error,
			         "invalid HTTP status line (status %ld)", resp->status);
			resp->status = 0;
			rc = -EIO;
		}
	}
	if (log_enabled(LOG_DEBUG)) {
		char shown[512];
		curl_off_t got = 0;
		if (url_redact(url, shown, sizeof shown) != 0) {
			/* shown says "<url too long>" */
		}
		if (!rc)
			curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &got);
		if (rc)
			log_debug("http request failed", "method=%s url=%s seconds=%.3f err=%s",
			          method, shown, resp->seconds, resp->error);
		else
			log_debug("http request",
			          "method=%s url=%s status=%ld seconds=%.3f "
			          "sent_bytes=%zu received_bytes=%zu",
			          method, shown, resp->status, resp->seconds,
			          pull ? pull->sent : body_len, (size_t)got);
	}
	goto out;
oom:
	snprintf(resp->error, sizeof resp->error, "out of memory");
	rc = -ENOMEM;
out:
	if (h)
		curl_easy_cleanup(h);
	curl_slist_free_all(hdrs);
	return rc;
}
