/* Fuzz target: the senders' HTTP response handling, end to end through
 * the real client (http_client_request: libcurl, the header and body
 * callbacks, Retry-After) and the log quoting of the answer body.
 *
 * Input: the raw bytes a server answers (status line, headers, body). A
 * server thread in this process serves them on a loopback port: it reads
 * the request, writes the input, closes its sending side and waits for the
 * client to finish. Checks: the request returns 0 (an HTTP status) or -EIO
 * (with an error text); a status is 100-999 (odd status lines are transport
 * errors); the kept body is at most HTTP_CLIENT_BODY_MAX - 1 bytes and
 * NUL-terminated; Retry-After is -1 or a finite number of seconds >= 0 (also
 * from http_retry_after_parse on each line of the input); the log line about
 * the answer (body included) is one line without raw control bytes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "promacct/http_client.h"
#include "promacct/log.h"
#include "fuzz.h"

static int listen_fd;
static char url[64];
static http_client *client;
static int log_fd; /* where log lines go (a memfd) */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const uint8_t *answer; /* the current input, read under mu */
static size_t answer_len;
static unsigned long gen, done_gen; /* requests started, finished */
static uint8_t served[65536];       /* the server thread's copy */

/* Reads the request head (the client sends no body) with a deadline. */
static void read_request(int fd)
{
	char b[8192];
	size_t n = 0;
	while (n < sizeof b) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 2000) <= 0)
			return;
		ssize_t r = read(fd, b + n, sizeof b - n);
		if (r <= 0)
			return;
		n += (size_t)r;
		if (n >= 4 && memmem(b, n, "\r\n\r\n", 4))
			return;
	}
}

static void *server(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(listen_fd, NULL, NULL);
		if (fd < 0)
			continue;
		read_request(fd);
		pthread_mutex_lock(&mu);
		size_t len = answer ? answer_len : 0;
		if (len)
			memcpy(served, answer, len);
		unsigned long mine = gen;
		pthread_mutex_unlock(&mu);
		for (size_t off = 0; off < len;) {
			ssize_t w = send(fd, served + off, len - off, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		shutdown(fd, SHUT_WR);
		/* Close only when the client is done: closing with unread
		 * bytes would reset the connection under the client. */
		pthread_mutex_lock(&mu);
		while (done_gen < mine)
			pthread_cond_wait(&cv, &mu);
		pthread_mutex_unlock(&mu);
		close(fd);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) ||
	    listen(listen_fd, 16) || getsockname(listen_fd, (struct sockaddr *)&a, &alen))
		abort();
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/write", ntohs(a.sin_port));
	pthread_t t;
	if (pthread_create(&t, NULL, server, NULL))
		abort();
	pthread_detach(t);
	struct http_client_opts o = {.timeout = 5};
	char err[256];
	client = http_client_new(&o, err, sizeof err);
	if (!client)
		abort();
	log_fd = memfd_create("log", 0);
	if (log_fd < 0)
		abort();
	log_set_fd(log_fd);
	return 0;
}

/* The log line about this answer, as the senders write it: one line. */
static void check_log_line(const struct http_response *r)
{
	char body[1024];
	if (ftruncate(log_fd, 0) || lseek(log_fd, 0, SEEK_SET))
		abort();
	log_warn("remote write failed, retrying", "url=%s status=%ld err=\"%s\" body=%s", url,
	         r->status, r->error, log_bytes(body, sizeof body, r->body, r->body_len));
	char line[LOG_LINE_MAX + 2];
	ssize_t n = pread(log_fd, line, sizeof line, 0);
	FUZZ_CHECK(n > 0 && line[n - 1] == '\n', "log line missing or not ended");
	for (ssize_t i = 0; i + 1 < n; i++) {
		unsigned char c = (unsigned char)line[i];
		FUZZ_CHECK(c >= 0x20 && c != 0x7f, "raw control byte 0x%02x in the log line: %.*s",
		           c, (int)n, line);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	/* The pure part: every input line as a Retry-After value. */
	struct fuzz_in in = {data, size};
	char *line;
	for (int i = 0; i < 16 && (line = fuzz_piece(&in, '\n')); i++) {
		double ra = http_retry_after_parse(line, (time_t)1700000000);
		FUZZ_CHECK(ra == -1 || (isfinite(ra) && ra >= 0), "Retry-After '%s' -> %g", line,
		           ra);
		free(line);
	}

	pthread_mutex_lock(&mu);
	answer = data;
	answer_len = size;
	gen++;
	pthread_mutex_unlock(&mu);
	static const char *const headers[] = {"Connection: close", NULL};
	struct http_response resp;
	int rc = http_client_request(client, "POST", url, "", 0, headers, &resp);
	pthread_mutex_lock(&mu);
	done_gen = gen;
	answer = NULL;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);

	FUZZ_CHECK(rc == 0 || rc == -EIO, "request returned %d", rc);
	if (rc == 0)
		FUZZ_CHECK(resp.status >= 100 && resp.status <= 999, "status %ld", resp.status);
	else
		FUZZ_CHECK(resp.error[0] && memchr(resp.error, '\0', sizeof resp.error),
		           "no error text");
	FUZZ_CHECK(resp.body_len < sizeof resp.body && resp.body[resp.body_len] == '\0',
	           "body length %zu", resp.body_len);
	FUZZ_CHECK(resp.retry_after == -1 || (isfinite(resp.retry_after) && resp.retry_after >= 0),
	           "retry_after %g", resp.retry_after);
	check_log_line(&resp);
	return 0;
}
