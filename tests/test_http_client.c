/* Specification of the HTTP client (src/http_client.c), against a
 * libmicrohttpd stub on a free loopback port: what goes on the wire, what
 * comes back, and what a transport error says. The stub is right here
 * because real servers do not answer with chosen statuses, Retry-After or
 * hangs on demand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "promacct/http_client.h"
#include "promacct/log.h"

/* What the stub saw of the last request, and what it answers; under
 * stub_lock (the stub runs on libmicrohttpd's thread). */
static pthread_mutex_t stub_lock = PTHREAD_MUTEX_INITIALIZER;
static struct stub {
	char method[16];
	char url[256];
	char auth[256];
	char org[64];
	char ct[64];
	char body[256];
	size_t body_len;
	int status;
	const char *answer;
	const char *retry_after;
	unsigned sleep_ms;
} stub;

static struct MHD_Daemon *daemon_;
static int port;
static char base[64];
static char tmpdir[64];

static void copy_header(struct MHD_Connection *c, const char *name, char *out, size_t cap)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
	snprintf(out, cap, "%s", v ? v : "");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)version;
	pthread_mutex_lock(&stub_lock);
	if (!*con_cls) { /* first call: headers only */
		*con_cls = &stub;
		stub.body_len = 0;
		pthread_mutex_unlock(&stub_lock);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t take = *upload_size;
		if (take > sizeof stub.body - 1 - stub.body_len)
			take = sizeof stub.body - 1 - stub.body_len;
		memcpy(stub.body + stub.body_len, upload, take);
		stub.body_len += take;
		stub.body[stub.body_len] = '\0';
		*upload_size = 0;
		pthread_mutex_unlock(&stub_lock);
		return MHD_YES;
	}
	snprintf(stub.method, sizeof stub.method, "%s", method);
	snprintf(stub.url, sizeof stub.url, "%s", url);
	copy_header(c, "Authorization", stub.auth, sizeof stub.auth);
	copy_header(c, "X-Scope-OrgID", stub.org, sizeof stub.org);
	copy_header(c, "Content-Type", stub.ct, sizeof stub.ct);
	unsigned sleep_ms = stub.sleep_ms;
	pthread_mutex_unlock(&stub_lock);
	if (sleep_ms)
		usleep(sleep_ms * 1000);
	pthread_mutex_lock(&stub_lock);
	const char *a = stub.answer ? stub.answer : "";
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(a), (void *)a, MHD_RESPMEM_MUST_COPY);
	if (stub.retry_after)
		MHD_add_response_header(r, "Retry-After", stub.retry_after);
	unsigned status = (unsigned)stub.status;
	pthread_mutex_unlock(&stub_lock);
	enum MHD_Result res = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return res;
}

static void write_file(const char *name, const char *content, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
	                           on_request, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	if (!daemon_)
		return -1;
	port = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT)->port;
	snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/promacct-http-client.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	MHD_stop_daemon(daemon_);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void reset_stub(int status, const char *answer, const char *retry_after, unsigned sleep_ms)
{
	pthread_mutex_lock(&stub_lock);
	memset(&stub, 0, sizeof stub);
	stub.status = status;
	stub.answer = answer;
	stub.retry_after = retry_after;
	stub.sleep_ms = sleep_ms;
	pthread_mutex_unlock(&stub_lock);
}

/* What the stub saw. */
static struct stub seen(void)
{
	pthread_mutex_lock(&stub_lock);
	struct stub s = stub;
	pthread_mutex_unlock(&stub_lock);
	return s;
}

static http_client *client(const struct http_client_opts *o)
{
	char err[256] = "";
	http_client *c = http_client_new(o, err, sizeof err);
	if (!c)
		fail_msg("http_client_new: %s", err);
	return c;
}

static void test_post_carries_body_headers_and_bearer_token(void **state)
{
	(void)state;
	char tok[256], err[256], url[128];
	write_file("token", "T0KEN\n", tok, sizeof tok);
	struct http_client_opts o = {.timeout = 5, .bearer_token_file = tok};
	http_client *c = client(&o);
	assert_int_equal(http_client_add_header(c, "X-Scope-OrgID: acme", NULL, err, sizeof err),
	                 0);
	reset_stub(204, "", NULL, 0);
	const char *hdrs[] = {"Content-Type: text/plain", NULL};
	struct http_response r;
	snprintf(url, sizeof url, "%s/api/v1/write", base);
	assert_int_equal(http_client_request(c, "POST", url, "hello", 5, hdrs, &r), 0);
	assert_int_equal(r.status, 204);
	assert_string_equal(seen().method, "POST");
	assert_string_equal(seen().url, "/api/v1/write");
	assert_string_equal(seen().body, "hello");
	assert_string_equal(seen().auth, "Bearer T0KEN"); /* trailing newline stripped */
	assert_string_equal(seen().org, "acme");
	assert_string_equal(seen().ct, "text/plain");
	assert_true(r.seconds >= 0 && r.seconds < 5);
	http_client_free(c);
}

static void test_basic_auth_password_comes_from_its_file(void **state)
{
	(void)state;
	char pw[256], url[128];
	write_file("pw", "S3CRET", pw, sizeof pw);
	struct http_client_opts o = {
	    .timeout = 5, .basic_user = "admin", .basic_password_file = pw};
	http_client *c = client(&o);
	reset_stub(200, "ok", NULL, 0);
	struct http_response r;
	snprintf(url, sizeof url, "%s/metrics/job/x", base);
	assert_int_equal(http_client_request(c, "PUT", url, "a", 1, NULL, &r), 0);
	assert_string_equal(seen().method, "PUT");
	assert_string_equal(seen().auth, "Basic YWRtaW46UzNDUkVU"); /* admin:S3CRET */
	assert_string_equal(r.body, "ok");
	http_client_free(c);
}

static void test_status_body_and_retry_after_come_back(void **state)
{
	(void)state;
	struct http_client_opts o = {.timeout = 5};
	http_client *c = client(&o);
	struct http_response r;
	reset_stub(429, "slow down", "7", 0);
	assert_int_equal(http_client_request(c, "POST", base, "x", 1, NULL, &r), 0);
	assert_int_equal(r.status, 429);
	assert_string_equal(r.body, "slow down");
	assert_true(r.retry_after == 7);

	reset_stub(503, "", "Wed, 21 Oct 2015 07:28:00 GMT", 0); /* in the past: now */
	assert_int_equal(http_client_request(c, "POST", base, "x", 1, NULL, &r), 0);
	assert_true(r.retry_after == 0);

	reset_stub(500, "", NULL, 0);
	assert_int_equal(http_client_request(c, "DELETE", base, NULL, 0, NULL, &r), 0);
	assert_string_equal(seen().method, "DELETE");
	assert_true(r.retry_after == -1);
	http_client_free(c);
}

static void test_long_bodies_are_cut_to_the_cap(void **state)
{
	(void)state;
	static char big[3 * HTTP_CLIENT_BODY_MAX];
	memset(big, 'b', sizeof big - 1);
	struct http_client_opts o = {.timeout = 5};
	http_client *c = client(&o);
	struct http_response r;
	reset_stub(400, big, NULL, 0);
	assert_int_equal(http_client_request(c, "POST", base, "x", 1, NULL, &r), 0);
	assert_int_equal(r.body_len, HTTP_CLIENT_BODY_MAX - 1);
	assert_int_equal(strlen(r.body), HTTP_CLIENT_BODY_MAX - 1);
	http_client_free(c);
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof sa;
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &l), 0);
	close(s); /* bound, never listened: connections are refused */
	return ntohs(sa.sin_port);
}

/* Issue 13 defect 11: transport errors said "Unsupported protocol" instead
 * of what happened. */
static void test_transport_errors_say_what_happened(void **state)
{
	(void)state;
	struct http_client_opts o = {.timeout = 0.5};
	http_client *c = client(&o);
	struct http_response r;
	char url[128];

	snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", closed_port());
	assert_int_equal(http_client_request(c, "POST", url, "x", 1, NULL, &r), -EIO);
	assert_int_equal(r.status, 0);
	if (!strstr(r.error, "127.0.0.1") || !strstr(r.error, "port"))
		fail_msg("refused connection reported as '%s'", r.error);

	reset_stub(200, "", NULL, 1500);
	assert_int_equal(http_client_request(c, "POST", base, "x", 1, NULL, &r), -EIO);
	if (!strstr(r.error, "imed out")) /* "Operation timed out after 500 milliseconds..." */
		fail_msg("timeout reported as '%s'", r.error);
	assert_true(r.seconds < 1.4);
	usleep(1200 * 1000); /* let the stub finish its sleep */

	snprintf(url, sizeof url, "https://127.0.0.1:%d/", port); /* TLS to a plain server */
	reset_stub(200, "", NULL, 0);
	assert_int_equal(http_client_request(c, "POST", url, "x", 1, NULL, &r), -EIO);
	if (!strstr(r.error, "SSL") && !strstr(r.error, "TLS"))
		fail_msg("TLS failure reported as '%s'", r.error);

	assert_int_equal(http_client_request(c, "POST", "ftp://127.0.0.1/", "x", 1, NULL, &r),
	                 -EIO);
	assert_non_null(strstr(r.error, "ftp"));
	http_client_free(c);
}

static void *set_after_200ms(void *arg)
{
	usleep(200 * 1000);
	atomic_store((atomic_int *)arg, 1);
	return NULL;
}

/* Issue 13 defect 8: at shutdown a request gets only the time left to the
 * deadline, and a request in flight is abandoned when the module's stop
 * flag is set, whatever the client's own timeout. */
static void test_request_until_is_bounded_by_the_deadline_and_the_abort_flag(void **state)
{
	(void)state;
	struct http_client_opts o = {.timeout = 30};
	http_client *c = client(&o);
	struct http_response r;
	atomic_int abort_flag = 0;

	/* the deadline, not the 30 s timeout, ends a request the server holds */
	reset_stub(200, "", NULL, 1200);
	double t0 = time_monotonic();
	assert_int_equal(
	    http_client_request_until(c, "PUT", base, "x", 1, NULL, t0 + 0.3, NULL, &r), -EIO);
	double took = time_monotonic() - t0;
	if (took < 0.25 || took > 1.0)
		fail_msg("bounded by a deadline 0.3 s away, took %.3f s", took);
	usleep(1200 * 1000); /* let the stub finish its sleep */

	/* no time left: nothing is sent */
	reset_stub(200, "", NULL, 0);
	assert_int_equal(http_client_request_until(c, "DELETE", base, NULL, 0, NULL,
	                                           time_monotonic() - 1, NULL, &r),
	                 -ETIMEDOUT);
	assert_string_equal(seen().method, "");

	/* abort already set: nothing is sent */
	atomic_store(&abort_flag, 1);
	assert_int_equal(
	    http_client_request_until(c, "PUT", base, "x", 1, NULL, INFINITY, &abort_flag, &r),
	    -ECANCELED);
	assert_string_equal(seen().method, "");

	/* abort set while the request is in flight: abandoned within ~1 s */
	atomic_store(&abort_flag, 0);
	reset_stub(200, "", NULL, 2500);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, set_after_200ms, &abort_flag), 0);
	t0 = time_monotonic();
	assert_int_equal(
	    http_client_request_until(c, "PUT", base, "x", 1, NULL, INFINITY, &abort_flag, &r),
	    -ECANCELED);
	took = time_monotonic() - t0;
	pthread_join(t, NULL);
	if (took > 1.8)
		fail_msg("abandoned %.3f s after the start, the flag was set at 0.2 s", took);
	usleep(2500 * 1000);
	http_client_free(c);
}

static void test_unreadable_files_fail_at_creation_naming_them(void **state)
{
	(void)state;
	char err[256];
	struct http_client_opts o = {.timeout = 1, .tls_ca_file = "/nonexistent/ca.pem"};
	assert_null(http_client_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "TLS CA file /nonexistent/ca.pem"));
	o = (struct http_client_opts){
	    .timeout = 1, .basic_user = "u", .basic_password_file = "/nonexistent/pw"};
	assert_null(http_client_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "password file /nonexistent/pw"));
	o = (struct http_client_opts){.timeout = 1, .bearer_token_file = "/nonexistent/tok"};
	assert_null(http_client_new(&o, err, sizeof err));
	assert_non_null(strstr(err, "/nonexistent/tok"));
}

static void test_headers_cannot_smuggle_or_override(void **state)
{
	(void)state;
	char err[256];
	struct http_client_opts o = {.timeout = 1};
	http_client *c = client(&o);
	static const char *const reserved[] = {"content-encoding", NULL};
	assert_int_not_equal(
	    http_client_add_header(c, "X-A: b\r\nX-Evil: 1", NULL, err, sizeof err), 0);
	assert_int_not_equal(http_client_add_header(c, "Authorization: x", NULL, err, sizeof err),
	                     0);
	assert_int_not_equal(
	    http_client_add_header(c, "content-Encoding: gzip", reserved, err, sizeof err), 0);
	assert_int_not_equal(http_client_add_header(c, "No colon", NULL, err, sizeof err), 0);
	assert_int_not_equal(http_client_add_header(c, "Bad Name: v", NULL, err, sizeof err), 0);
	assert_int_equal(http_client_add_header(c, "X-Scope-OrgID: a", reserved, err, sizeof err),
	                 0);
	http_client_free(c);
}

/* --log.level debug shows each request, without its secrets. */
static void test_debug_lines_show_requests_without_secrets(void **state)
{
	(void)state;
	int p[2];
	char url[160], out[4096];
	assert_int_equal(pipe(p), 0);
	log_set_fd(p[1]);
	log_set_level_value(LOG_DEBUG);
	struct http_client_opts o = {.timeout = 5};
	http_client *c = client(&o);
	struct http_response r;
	reset_stub(202, "accepted", NULL, 0);
	snprintf(url, sizeof url, "http://admin:S3CRET@127.0.0.1:%d/api/v1/write?token=T0KEN",
	         port);
	assert_int_equal(http_client_request(c, "POST", url, "abc", 3, NULL, &r), 0);
	assert_int_equal(r.status, 202);
	log_set_level_value(LOG_INFO);
	log_set_fd(2);
	close(p[1]);
	ssize_t n = read(p[0], out, sizeof out - 1);
	close(p[0]);
	out[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(out, "level=debug msg=\"http request\" method=POST "
	                            "url=http://admin:<secret>@127.0.0.1:"));
	assert_non_null(strstr(out, "/api/v1/write?<query> status=202 seconds="));
	assert_non_null(strstr(out, "sent_bytes=3 received_bytes=8"));
	assert_null(strstr(out, "S3CRET"));
	assert_null(strstr(out, "T0KEN"));
	http_client_free(c);
}

static void test_urls_are_shown_without_secrets(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
		int secret;
	} cases[] = {
	    {"http://admin:S3CRET@host/api/v1/write?token=T0KEN",
	     "http://admin:<secret>@host/api/v1/write?<query>", 1},
	    {"https://u:p@h:9091", "https://u:<secret>@h:9091", 1},
	    {"https://u:p@ss@h/x", "https://u:<secret>@h/x", 1},
	    {"http://user@h/x", "http://<secret>@h/x", 1},
	    {"https://T0KEN@h/x", "https://<secret>@h/x", 1},
	    {"http://admin%3AS3CRET@h/w", "http://<secret>@h/w", 1},
	    {"http://h:1/w;T0KEN", "http://h:1/w;<params>", 1},
	    {"http://u:p@h/w;k=T0KEN?t=1#f", "http://u:<secret>@h/w;<params>?<query>", 1},
	    {"http://@h/x", "http://@h/x", 0},
	    {"http://h/x?a=1#frag", "http://h/x?<query>", 1},
	    {"http://h/p@th?x", "http://h/p@th?<query>", 1},
	    {"http://h:9091/", "http://h:9091/", 0},
	    {"http://h/x#a?b", "http://h/x", 0},
	};
	char out[128];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(url_redact(cases[i].in, out, sizeof out), 0);
		assert_string_equal(out, cases[i].out);
		assert_int_equal(url_has_secret(cases[i].in), cases[i].secret);
	}
	char small[16];
	assert_int_equal(url_redact("http://a:b@verylonghost/x", small, sizeof small), -ENOSPC);
	assert_null(strstr(small, "b@"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_post_carries_body_headers_and_bearer_token),
	    cmocka_unit_test(test_basic_auth_password_comes_from_its_file),
	    cmocka_unit_test(test_status_body_and_retry_after_come_back),
	    cmocka_unit_test(test_long_bodies_are_cut_to_the_cap),
	    cmocka_unit_test(test_transport_errors_say_what_happened),
	    cmocka_unit_test(test_request_until_is_bounded_by_the_deadline_and_the_abort_flag),
	    cmocka_unit_test(test_unreadable_files_fail_at_creation_naming_them),
	    cmocka_unit_test(test_headers_cannot_smuggle_or_override),
	    cmocka_unit_test(test_debug_lines_show_requests_without_secrets),
	    cmocka_unit_test(test_urls_are_shown_without_secrets),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
