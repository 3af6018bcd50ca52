/* One HTTP client for the Pushgateway and remote-write senders (libcurl). */
#ifndef PROMACCT_HTTP_CLIENT_H
#define PROMACCT_HTTP_CLIENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "promacct/buf.h"
#include "promacct/common.h"

#define HTTP_CLIENT_MAX_HEADERS 32
#define HTTP_CLIENT_BODY_MAX    4096 /* response body kept for error messages */

/* Command-line settings of one sender. Secrets are file paths. */
struct http_client_opts {
	double timeout; /* seconds */
	const char *basic_user;
	const char *basic_password_file;
	const char *bearer_token_file;
	const char *tls_ca_file;
	const char *tls_cert_file;
	const char *tls_key_file;
	int tls_insecure;
};

typedef struct http_client http_client;

struct http_response {
	long status;                     /* 0 when no HTTP answer was received */
	char error[256];                 /* transport error text when status == 0 */
	char body[HTTP_CLIENT_BODY_MAX]; /* first bytes of the answer body */
	size_t body_len;
	double retry_after; /* seconds from Retry-After, or -1 */
	double seconds;     /* request duration */
};

/* Creates a client; reads the secret files now (their content is never
 * logged). Returns NULL with a message in err. Caller frees with
 * http_client_free. */
http_client *http_client_new(const struct http_client_opts *o, char *err, size_t errlen);
void http_client_free(http_client *c);

/* Adds a header sent with every request ("Name: value"). Returns 0 or
 * -EINVAL when it names a header the protocol owns (listed in `reserved`,
 * NULL-terminated, compared case-insensitively). */
int http_client_add_header(http_client *c, const char *header, const char *const *reserved,
                           char *err, size_t errlen) MUST_CHECK;

/* One request. body may be NULL. extra_headers: NULL-terminated list of
 * "Name: value" for this request (the protocol's own headers). Returns 0
 * when an HTTP status was received (see resp->status), -EIO otherwise. */
int http_client_request(http_client *c, const char *method, const char *url, const char *body,
                        size_t body_len, const char *const *extra_headers,
                        struct http_response *resp) MUST_CHECK;

/* The same request, bounded further for shutdown: it gets at most the time
 * left until the monotonic `deadline` (when less than the client's timeout;
 * none left: no request, -ETIMEDOUT), and is abandoned within about a
 * second once *abort is nonzero (abort may be NULL; -ECANCELED). Returns
 * like http_client_request otherwise. */
int http_client_request_until(http_client *c, const char *method, const char *url, const char *body,
                              size_t body_len, const char *const *extra_headers, double deadline,
                              const atomic_int *abort, struct http_response *resp) MUST_CHECK;

/* A request body produced while it is sent (chunked transfer encoding):
 * read copies up to max bytes to dst and returns the count, 0 at the end,
 * or a negative errno that abandons the request. */
struct http_body_reader {
	ssize_t (*read)(void *arg, char *dst, size_t max);
	void *arg;
};

/* http_client_request_until with a streamed body (POST or PUT). A reader
 * error fails the request (-EIO, resp->error names it). */
int http_client_request_stream(http_client *c, const char *method, const char *url,
                               const struct http_body_reader *body,
                               const char *const *extra_headers, double deadline,
                               const atomic_int *abort, struct http_response *resp) MUST_CHECK;

/* The seconds a Retry-After header value (delay-seconds or an HTTP date,
 * taken relative to `now`) asks to wait: >= 0, or -1 when the value is not
 * one. Pure: used by the response handler and fuzzed on its own. */
double http_retry_after_parse(const char *value, time_t now);

#endif
