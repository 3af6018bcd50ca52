/* stall_server: an HTTP peer that never answers, for shutdown tests.
 *
 *   stall_server PORT LOG
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port; the bound port is printed
 * on stdout), accepts every connection, reads and discards what arrives and
 * never writes a byte: a request to it hangs until the client gives up.
 * LOG receives one line per event: "C" for a connection accepted, and the
 * first line of each request ("PUT /metrics/job/..."), so tests can tell
 * which requests were sent. Runs until SIGINT or SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONN  64
#define LINE_MAX_ 512

static volatile sig_atomic_t done;

static void on_signal(int sig)
{
	(void)sig;
	done = 1;
}

struct conn {
	int fd;
	int logged; /* the request line of the current request was logged */
	char line[LINE_MAX_];
	size_t len;
};

static void log_request_lines(FILE *log, struct conn *c, const char *data, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = data[i];
		if (!c->logged) {
			if (ch == '\r' || ch == '\n') {
				if (c->len > 0 && strchr(c->line, ' ')) {
					c->line[c->len] = '\0';
					fprintf(log, "%s\n", c->line);
					fflush(log);
					c->logged = 1;
				}
				c->len = 0;
			} else if (c->len + 1 < sizeof c->line) {
				c->line[c->len++] = ch;
			}
		}
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: stall_server PORT LOG\n");
		return 2;
	}
	FILE *log = fopen(argv[2], "a");
	if (!log)
		return 1;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 16)) {
		fprintf(stderr, "stall_server: cannot listen: %s\n", strerror(errno));
		return 1;
	}
	socklen_t sl = sizeof sa;
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	printf("%u\n", (unsigned)ntohs(sa.sin_port));
	fflush(stdout);
	struct sigaction act;
	memset(&act, 0, sizeof act);
	act.sa_handler = on_signal;
	sigaction(SIGINT, &act, NULL);
	sigaction(SIGTERM, &act, NULL);

	static struct conn conns[MAX_CONN];
	size_t nconn = 0;
	while (!done) {
		struct pollfd p[MAX_CONN + 1];
		p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
		for (size_t i = 0; i < nconn; i++)
			p[i + 1] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
		if (poll(p, nconn + 1, 200) < 0)
			continue;
		for (size_t i = nconn; i > 0; i--) {
			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			char data[4096];
			ssize_t n = read(conns[i - 1].fd, data, sizeof data);
			if (n <= 0) {
				close(conns[i - 1].fd);
				conns[i - 1] = conns[--nconn];
				continue;
			}
			log_request_lines(log, &conns[i - 1], data, (size_t)n);
		}
		if ((p[0].revents & POLLIN) && nconn < MAX_CONN) {
			int fd = accept(lfd, NULL, NULL);
			if (fd >= 0) {
				conns[nconn++] = (struct conn){.fd = fd};
				fprintf(log, "C\n");
				fflush(log);
			}
		}
	}
	for (size_t i = 0; i < nconn; i++)
		close(conns[i].fd);
	close(lfd);
	fclose(log);
	return 0;
}
