/* The scrape page: /metrics and a landing page, served by libmicrohttpd. */
#ifndef PROMACCT_HTTP_SERVER_H
#define PROMACCT_HTTP_SERVER_H

#include <stddef.h>

#include "promacct/common.h"
#include "promacct/registry.h"

#define HTTP_SERVER_CONNECTION_LIMIT   512
#define HTTP_SERVER_CONNECTION_TIMEOUT 30 /* seconds an idle connection is kept */
#define HTTP_SERVER_THREADS            2
#define HTTP_SERVER_MAX_RENDERS        4 /* default --web.max-requests */
/* Seconds a scrape waits for a render slot at most (less when Prometheus
 * says its scrape times out sooner: X-Prometheus-Scrape-Timeout-Seconds). */
#define HTTP_SERVER_RENDER_WAIT 10.0
/* Scrapes waiting for a render slot (each holds a connection and an idle
 * thread, no buffers); beyond this, 503 at once. */
#define HTTP_SERVER_MAX_WAITING HTTP_SERVER_CONNECTION_LIMIT
#define HTTP_SERVER_RETRY_AFTER "1" /* seconds, in a 503's Retry-After */
#define HTTP_SERVER_GZIP_LEVEL  1   /* fast: pages are large and compress well anyway */

#define HTTP_SERVER_PER_IP_LIMIT        64   /* default --web.max-connections-per-ip */
#define HTTP_SERVER_READ_HEADER_TIMEOUT 10.0 /* default --web.read-header-timeout */
#define HTTP_SERVER_WRITE_STALL_TIMEOUT 30.0 /* default --web.write-stall-timeout */
#define HTTP_SERVER_RELOAD_MSG_MAX      1024 /* a failed reload's error text in its 500 */

struct web_config;
struct status_page;

struct http_server_opts {
	const char *listen;   /* [HOST]:PORT */
	unsigned max_renders; /* /metrics renders at once; 0: HTTP_SERVER_MAX_RENDERS */
	double render_wait;   /* seconds a scrape waits for a slot; <= 0: the default */
	/* --web.config.file: TLS, client certificates, basic auth, headers;
	 * NULL: plain HTTP. Must outlive the server. */
	const struct web_config *web;
	/* Connections one client address may hold (0: the default); the
	 * global limit (HTTP_SERVER_CONNECTION_LIMIT) stays above it. */
	unsigned per_ip_limit;
	/* Seconds a connection has to send complete request headers (from
	 * its start, or from the end of its previous request plus the idle
	 * timeout); then it is closed. <= 0: the default. */
	double read_header_timeout;
	/* Seconds a /metrics render waits for its client to take a chunk of
	 * output (the render queue being full) before the scrape is cut
	 * (promacct_http_write_stalls_total). <= 0: the default. */
	double write_stall_timeout;
	/* The status page served at `/` (NULL: a static landing page). Must
	 * outlive the server. */
	struct status_page *status;
	/* --web.enable-lifecycle: POST or PUT /-/reload asks for a
	 * configuration reload; without it /-/reload answers 403. */
	int enable_lifecycle;
	/* Asks the agent for a reload (an MHD thread; must not block): 0
	 * when one will run, begun and ended with http_server_reload_begin
	 * and _end; negative when none will (the agent stops): 503. The
	 * request's connection waits, suspended, for the result. */
	int (*reload)(void *arg);
	void *reload_arg;
};

struct http_server;

/* Parses "[HOST]:PORT" (":9112", "127.0.0.1:9112", "[::1]:9112",
 * "localhost:9112"). Returns 0 or -EINVAL. */
int http_server_parse_listen(const char *text, char *host, size_t hostlen, int *port) MUST_CHECK;

/* Validates the options and registers the server's self-metrics (start-up
 * only: before any reader of the registry runs). No socket, no thread.
 * NULL with a message in err. */
struct http_server *http_server_new(const struct http_server_opts *opts, struct registry *reg,
                                    char *err, size_t errlen);
/* Binds the listening socket and starts serving. Returns 0, or a negative
 * errno with a message in err (address in use, permission denied, bad
 * address). */
int http_server_start(struct http_server *s, char *err, size_t errlen) MUST_CHECK;
/* Whether an Accept-Encoding header value asks for gzip: "gzip" or
 * "x-gzip" in any case with a q value above 0, or "*" when gzip is not
 * named; NULL: no. */
int http_accepts_gzip(const char *accept_encoding);

/* A reload begins (any thread): every POST /-/reload received by now is
 * answered by its result. NULL is fine. */
void http_server_reload_begin(struct http_server *s);
/* The reload begun last ended: ok answers 200, else 500 with err. NULL is
 * fine. */
void http_server_reload_end(struct http_server *s, int ok, const char *err);
/* No reload will run any more (the agent stops): every POST /-/reload
 * waiting is answered 503. NULL is fine. Shutdown does it too. */
void http_server_reload_abort(struct http_server *s);

/* The client a render-slot budget belongs to (half the slots at most): the
 * address family, then the IPv4 address (also when mapped into IPv6) or the
 * IPv6 /64 (one host, or one attacker, has all of it); zeroes when sa is
 * NULL or of another family (such clients share one budget). */
#define HTTP_CLIENT_KEY_LEN 17
struct sockaddr;
void http_client_budget_key(const struct sockaddr *sa, uint8_t out[HTTP_CLIENT_KEY_LEN]);

/* The bound port (useful with port 0); 0 before a successful start. */
int http_server_port(const struct http_server *s);
/* Stops accepting, ends renders in progress (their clients see a cut
 * response) and stops the server, waiting at most until the monotonic time
 * deadline for renders to let go. Nothing to do when start failed. */
void http_server_shutdown(struct http_server *s, double deadline);
/* Frees (shuts down first, at once, if that was not done). NULL is fine. */
void http_server_free(struct http_server *s);

#endif
