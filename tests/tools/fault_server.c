/* fault_server: a hostile HTTP peer for the fault tests (issue 10), in place
 * of a Pushgateway or a remote-write receiver.
 *
 *   fault_server MODE PORT LOG
 *
 * Listens on 127.0.0.1:PORT, reads each request whole (headers and a
 * Content-Length body) and answers according to MODE:
 *   hang     never answers (keeps reading)
 *   garbage  4 KiB of bytes that are not HTTP, then closes
 *   big500   "500" with a 50 MB body, sent as fast as the client reads
 *   close    "200" announcing 1000 body bytes, sends 7, closes
 *   429      "429" with Retry-After: 3600 (connection kept)
 *   trickle  a valid "200" one byte a second
 * LOG gets one line per request ("REQ <request line>") and per connection
 * ("CONN"), flushed, so a test can count attempts. Serves any number of
 * connections at once (up to MAX_CONN) in one poll loop. Runs until SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN  256
#define HEAD_MAX  16384
#define BIG_BODY  (50u * 1000 * 1000)
#define GARBAGE_N 4096

enum mode { M_HANG, M_GARBAGE, M_BIG500, M_CLOSE, M_429, M_TRICKLE };

struct conn {
	int fd;
	char head[HEAD_MAX];
	size_t hlen;
	size_t body_left; /* request body bytes still to read */
	int in_body;
	/* answer */
	const char *out; /* fixed bytes to send */
	size_t out_len, out_off;
	size_t big_left; /* big500: body bytes still to send */
	int close_after; /* close once out is sent */
	int answering;
	double next_byte; /* trickle: monotonic time of the next byte */
};

static volatile sig_atomic_t done;
static enum mode mode;
static FILE *logf_;
static struct conn conns[MAX_CONN];
static char garbage[GARBAGE_N];
static char filler[65536];

static const char big_head[] = "HTTP/1.1 500 Internal Server Error\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 50000000\r\n\r\n";
static const char close_answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial";
static const char answer_429[] = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\n"
                                 "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nslow\n";
static const char trickle_answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static void on_signal(int sig)
{
	(void)sig;
	done = 1;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void drop(struct conn *c)
{
	close(c->fd);
	memset(c, 0, sizeof *c);
	c->fd = -1;
}

/* A whole request arrived: log it and set up the answer. */
static void answer(struct conn *c)
{
	size_t l = strcspn(c->head, "\r\n");
	fprintf(logf_, "REQ %.*s\n", (int)(l < 200 ? l : 200), c->head);
	fflush(logf_);
	c->answering = 1;
	c->out_off = 0;
	switch (mode) {
	case M_HANG:
		c->answering = 0; /* keep reading, never answer */
		break;
	case M_GARBAGE:
		c->out = garbage;
		c->out_len = sizeof garbage;
		c->close_after = 1;
		break;
	case M_BIG500:
		c->out = big_head;
		c->out_len = sizeof big_head - 1;
		c->big_left = BIG_BODY;
		break;
	case M_CLOSE:
		c->out = close_answer;
		c->out_len = sizeof close_answer - 1;
		c->close_after = 1;
		break;
	case M_429:
		c->out = answer_429;
		c->out_len = sizeof answer_429 - 1;
		break;
	case M_TRICKLE:
		c->out = trickle_answer;
		c->out_len = sizeof trickle_answer - 1;
		c->next_byte = now_mono();
		break;
	}
}

/* Consumes request bytes: headers up to the blank line, then the body. */
static void take(struct conn *c, const char *p, size_t n)
{
	while (n) {
		if (c->in_body) {
			size_t k = n < c->body_left ? n : c->body_left;
			c->body_left -= k;
			p += k;
			n -= k;
			if (!c->body_left) {
				c->in_body = 0;
				c->hlen = 0;
				if (!c->answering)
					answer(c);
			}
			continue;
		}
		if (c->answering)
			return; /* pipelined bytes while answering: ignore */
		size_t room = HEAD_MAX - 1 - c->hlen;
		size_t k = n < room ? n : room;
		memcpy(c->head + c->hlen, p, k);
		c->hlen += k;
		c->head[c->hlen] = '\0';
		char *end = strstr(c->head, "\r\n\r\n");
		if (!end) {
			if (c->hlen == HEAD_MAX - 1)
				c->hlen = 0; /* absurd header: forget it */
			return;
		}
		size_t used = (size_t)(end + 4 - c->head) - (c->hlen - k);
		p += used;
		n -= used;
		c->body_left = 0;
		for (char *h = c->head; (h = strchr(h, '\n'));) {
			h++;
			if (!strncasecmp(h, "content-length:", 15))
				c->body_left = strtoul(h + 15, NULL, 10);
		}
		c->in_body = 1;
		if (!c->body_left) {
			c->in_body = 0;
			c->hlen = 0;
			answer(c);
		}
	}
}

/* Sends what the answer allows now; 0 when the connection stays. */
static int pump(struct conn *c)
{
	if (!c->answering || mode == M_HANG)
		return 0;
	if (mode == M_TRICKLE) {
		if (now_mono() < c->next_byte || c->out_off >= c->out_len)
			return 0;
		if (send(c->fd, c->out + c->out_off, 1, MSG_NOSIGNAL) == 1) {
			c->out_off++;
			c->next_byte += 1.0;
		}
		if (c->out_off == c->out_len)
			c->answering = 0;
		return 0;
	}
	while (c->out_off < c->out_len) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		                 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->out_off += (size_t)w;
	}
	while (c->big_left) {
		size_t k = c->big_left < sizeof filler ? c->big_left : sizeof filler;
		ssize_t w = send(c->fd, filler, k, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->big_left -= (size_t)w;
	}
	if (c->close_after)
		return -1;
	c->answering = 0;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"hang", "garbage", "big500", "close", "429", "trickle"};
	if (argc != 4) {
		fprintf(stderr,
		        "usage: fault_server hang|garbage|big500|close|429|trickle PORT LOG\n");
		return 2;
	}
	int m = -1;
	for (int i = 0; i < 6; i++)
		if (!strcmp(argv[1], names[i]))
			m = i;
	if (m < 0) {
		fprintf(stderr, "fault_server: unknown mode %s\n", argv[1]);
		return 2;
	}
	mode = (enum mode)m;
	logf_ = fopen(argv[3], "a");
	if (!logf_) {
		perror(argv[3]);
		return 1;
	}
	srand(1);
	for (size_t i = 0; i < sizeof garbage; i++)
		garbage[i] = (char)(rand() & 0xff);
	memcpy(garbage, "\x00\xff\r\n\r\n", 6);
	memset(filler, 'x', sizeof filler);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);

	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)atoi(argv[2])),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 64)) {
		perror("fault_server: listen");
		return 1;
	}
	fcntl(ls, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < MAX_CONN; i++)
		conns[i].fd = -1;

	while (!done) {
		struct pollfd pf[MAX_CONN + 1];
		int idx[MAX_CONN + 1], n = 0;
		pf[n] = (struct pollfd){ls, POLLIN, 0};
		idx[n++] = -1;
		for (int i = 0; i < MAX_CONN; i++) {
			struct conn *c = &conns[i];
			if (c->fd < 0)
				continue;
			short ev = POLLIN;
			if (c->answering && mode != M_TRICKLE && mode != M_HANG)
				ev |= POLLOUT;
			pf[n] = (struct pollfd){c->fd, ev, 0};
			idx[n++] = i;
		}
		if (poll(pf, (nfds_t)n, 200) < 0 && errno != EINTR)
			break;
		for (int k = 0; k < n; k++) {
			if (idx[k] < 0) {
				if (!(pf[k].revents & POLLIN))
					continue;
				int fd;
				while ((fd = accept(ls, NULL, NULL)) >= 0) {
					int slot = -1;
					for (int i = 0; i < MAX_CONN && slot < 0; i++)
						if (conns[i].fd < 0)
							slot = i;
					if (slot < 0) {
						close(fd);
						continue;
					}
					fcntl(fd, F_SETFL, O_NONBLOCK);
					memset(&conns[slot], 0, sizeof conns[slot]);
					conns[slot].fd = fd;
					fprintf(logf_, "CONN\n");
					fflush(logf_);
				}
				continue;
			}
			struct conn *c = &conns[idx[k]];
			if (pf[k].revents & (POLLIN | POLLHUP | POLLERR)) {
				char buf[65536];
				ssize_t r = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
				if (r == 0 || (r < 0 && errno != EAGAIN)) {
					drop(c);
					continue;
				}
				if (r > 0)
					take(c, buf, (size_t)r);
			}
			if (pump(c))
				drop(c);
		}
		/* trickle answers advance with time, not with poll events */
		for (int i = 0; i < MAX_CONN; i++)
			if (conns[i].fd >= 0 && mode == M_TRICKLE && pump(&conns[i]))
				drop(&conns[i]);
	}
	for (int i = 0; i < MAX_CONN; i++)
		if (conns[i].fd >= 0)
			close(conns[i].fd);
	close(ls);
	fclose(logf_);
	return 0;
}
