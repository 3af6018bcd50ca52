/* The scrape page: /metrics and a landing page, served by libmicrohttpd. */
#ifndef PROMACCT_HTTP_SERVER_H
#define PROMACCT_HTTP_SERVER_H

#include <stddef.h>

#include "promacct/common.h"
#include "promacct/registry.h"

#define HTTP_SERVER_CONNECTION_LIMIT   512
#define HTTP_SERVER_CONNECTION_TIMEOUT 30 /* seconds an idle connection is kept */
#define HTTP_SERVER_THREADS            2

struct http_server;

/* Parses "[HOST]:PORT" (":9112", "127.0.0.1:9112", "[::1]:9112",
 * "localhost:9112"). Returns 0 or -EINVAL. */
int http_server_parse_listen(const char *text, char *host, size_t hostlen, int *port) MUST_CHECK;

/* Binds and starts serving. Returns NULL with a message in err (address in
 * use, permission denied, bad address). */
struct http_server *http_server_start(const char *listen, struct registry *reg, char *err,
                                      size_t errlen);
/* The bound port (useful with port 0). */
int http_server_port(const struct http_server *s);
void http_server_stop(struct http_server *s);

#endif
