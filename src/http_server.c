/* DESIGN: the scrape page.
 *
 * libmicrohttpd runs its own small pool of threads (epoll); promacct binds
 * the listening socket itself so bind errors are exact. Each /metrics request
 * renders the registry on the serving thread into a fresh buffer (sized from
 * the previous page), optionally gzips it, and hands the buffer to MHD, which
 * frees it. Rendering takes no lock a capture thread waits on, so a slow or
 * huge scrape never stalls capture. Idle and slow clients cannot block
 * scrapes: connections are non-blocking, limited in number and closed after
 * an idle timeout. */
#include "promacct/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "promacct/expo_text.h"
#include "promacct/log.h"

#define HOST_MAX   256
#define GZIP_LEVEL 1 /* fast: pages are large and very compressible anyway */

struct http_server {
	struct MHD_Daemon *daemon;
	struct registry *reg;
	int fd;
	int port;
	_Atomic size_t last_size; /* previous page size, to size the next buffer */
	gauge_t *scrapes, *scrape_errors, *scrape_seconds;
};

static const char landing_page[] =
    "<!DOCTYPE html>\n<html><head><title>promacct</title></head>\n<body>\n"
    "<h1>promacct</h1>\n<p>Network traffic accounting for Prometheus.</p>\n"
    "<p><a href=\"/metrics\">Metrics</a></p>\n</body></html>\n";

int http_server_parse_listen(const char *text, char *host, size_t hostlen, int *port)
{
	const char *colon;
	size_t hl;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || close[1] != ':')
			return -EINVAL;
		hl = (size_t)(close - text - 1);
		if (hl >= hostlen)
			return -EINVAL;
		memcpy(host, text + 1, hl);
		host[hl] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - text);
		if (hl >= hostlen || memchr(text, ':', hl))
			return -EINVAL;
		memcpy(host, text, hl);
		host[hl] = '\0';
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || p < 0 || p > 65535)
		return -EINVAL;
	*port = (int)p;
	return 0;
}

static int bind_listen(const char *host, int port, int *out_fd, int *out_port, char *err,
                       size_t errlen)
{
	struct addrinfo hints, *res = NULL;
	char portstr[16];
	int fd = -1, rc = 0;
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	hints.ai_family = *host ? AF_UNSPEC : AF_INET6;
	snprintf(portstr, sizeof portstr, "%d", port);
	int gai = getaddrinfo(*host ? host : NULL, portstr, &hints, &res);
	if (gai && !*host) { /* no IPv6 at all: plain IPv4 any */
		hints.ai_family = AF_INET;
		gai = getaddrinfo(NULL, portstr, &hints, &res);
	}
	if (gai) {
		snprintf(err, errlen, "listen address %s:%d: %s", host, port, gai_strerror(gai));
		return -EINVAL;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0 && !*host && res->ai_family == AF_INET6) {
		freeaddrinfo(res);
		res = NULL;
		hints.ai_family = AF_INET;
		if (getaddrinfo(NULL, portstr, &hints, &res) == 0)
			fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	}
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "listen on %s:%d: socket: %s", host, port, strerror(errno));
		goto out;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (res->ai_family == AF_INET6 && !*host)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
	if (bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 128)) {
		rc = -errno;
		snprintf(err, errlen, "listen on %s:%d: %s", *host ? host : "", port,
		         strerror(errno));
		goto out;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*out_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                           : ((struct sockaddr_in *)&ss)->sin_port);
	*out_fd = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return rc;
}

static int accepts_gzip(struct MHD_Connection *conn)
{
	const char *ae =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
	return ae && strstr(ae, "gzip");
}

static enum MHD_Result reply_static(struct MHD_Connection *conn, unsigned status, const char *ctype,
                                    const char *body)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result serve_metrics(struct http_server *s, struct MHD_Connection *conn)
{
	struct buf b;
	double t0 = time_monotonic();
	buf_init(&b, BUF_DEFAULT_MAX);
	size_t hint = atomic_load_explicit(&s->last_size, memory_order_relaxed);
	if (hint && buf_reserve(&b, hint + hint / 8))
		buf_reset(&b);
	self_inc(s->scrapes, 1);
	int rc = expo_text_render(s->reg, &b);
	if (rc) {
		buf_free(&b);
		self_inc(s->scrape_errors, 1);
		log_error("rendering metrics failed", "err=\"%s\"", strerror(-rc));
		return reply_static(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
		                    "rendering metrics failed\n");
	}
	atomic_store_explicit(&s->last_size, b.len, memory_order_relaxed);
	size_t len;
	char *data = buf_steal(&b, &len);
	int gz = 0;
	if (accepts_gzip(conn)) {
		struct buf z;
		buf_init(&z, BUF_DEFAULT_MAX);
		if (buf_gzip(&z, data, len, GZIP_LEVEL) == 0) {
			free(data);
			data = buf_steal(&z, &len);
			gz = 1;
		}
		buf_free(&z);
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer_with_free_callback(len, data, free);
	if (!resp) {
		free(data);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, EXPO_TEXT_CONTENT_TYPE);
	if (gz)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	gauge_set(s->scrape_seconds, time_monotonic() - t0);
	return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
	struct http_server *s = cls;
	(void)version;
	(void)upload;
	if (*req_cls == NULL) { /* headers only so far; answer on the next call */
		*req_cls = s;
		return MHD_YES;
	}
	if (*upload_size) { /* ignore request bodies */
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    sizeof "method not allowed\n" - 1, (void *)"method not allowed\n",
		    MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
		MHD_destroy_response(resp);
		return r;
	}
	if (!strcmp(url, "/metrics"))
		return serve_metrics(s, conn);
	if (!strcmp(url, "/"))
		return reply_static(conn, MHD_HTTP_OK, "text/html; charset=utf-8", landing_page);
	if (!strcmp(url, "/-/healthy") || !strcmp(url, "/-/ready"))
		return reply_static(conn, MHD_HTTP_OK, "text/plain", "OK\n");
	return reply_static(conn, MHD_HTTP_NOT_FOUND, "text/plain", "404 page not found\n");
}

struct http_server *http_server_start(const char *listen, struct registry *reg, char *err,
                                      size_t errlen)
{
	char host[HOST_MAX];
	int port;
	if (http_server_parse_listen(listen, host, sizeof host, &port)) {
		snprintf(err, errlen, "invalid listen address '%s' (expected [HOST]:PORT)", listen);
		return NULL;
	}
	struct http_server *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->reg = reg;
	s->fd = -1;
	if (bind_listen(host, port, &s->fd, &s->port, err, errlen))
		goto fail;
	s->scrapes =
	    registry_self_add(reg, "promacct_http_scrapes_total", "Requests of /metrics served.",
	                      METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->scrape_errors = registry_self_add(reg, "promacct_http_scrape_errors_total",
	                                     "Requests of /metrics that failed to render.",
	                                     METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->scrape_seconds = registry_self_add(reg, "promacct_http_scrape_duration_seconds",
	                                      "Time the last /metrics request took to render.",
	                                      METRIC_GAUGE, NULL, NULL, NULL, NULL);
	if (!s->scrapes || !s->scrape_errors || !s->scrape_seconds) {
		snprintf(err, errlen, "too many self-metrics");
		goto fail;
	}
	s->daemon = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC, 0, NULL, NULL, on_request,
	    s, MHD_OPTION_LISTEN_SOCKET, s->fd, MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned)HTTP_SERVER_THREADS, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)HTTP_SERVER_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)HTTP_SERVER_CONNECTION_TIMEOUT, MHD_OPTION_END);
	if (!s->daemon) {
		snprintf(err, errlen, "cannot start the HTTP server on %s", listen);
		goto fail;
	}
	return s;
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	return NULL;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	MHD_stop_daemon(s->daemon);
	close(s->fd);
	free(s);
}
