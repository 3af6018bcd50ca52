/* DESIGN: the scrape page.
 *
 * libmicrohttpd runs its own small pool of threads (epoll); promacct binds
 * the listening socket itself (in http_server_start) so bind errors are
 * exact. A /metrics request is rendered on a render thread of its own (a
 * render stream, render.c) into a queue of two bounded chunks, plain or
 * gzip-deflated as it goes; the response is a libmicrohttpd callback
 * response that copies out of that queue, so a scrape holds a few hundred
 * KiB whatever the size of the page, and a slow client slows its render
 * rather than growing memory. While no chunk is ready the connection is
 * suspended; the render thread resumes it (ready hook) when one is.
 *
 * At most max_renders renders run at once, and at most half of them (at
 * least one) for one client address, since a render lasts as long as its
 * client takes to read the page: a further scrape waits up to
 * render_wait seconds (less if X-Prometheus-Scrape-Timeout-Seconds says the
 * scraper gives up sooner) for a slot (on its render thread, its connection
 * suspended), then gets 503 with Retry-After; beyond HTTP_SERVER_MAX_WAITING
 * waiting scrapes, 503 at once. The status line is sent once the first
 * chunk is ready (200), or the render failed before any output (500/503); a
 * render that fails later cuts the response (the chunked body never ends
 * properly), so a client never takes a partial page for a whole one.
 *
 * Threads: MHD's threads run the handlers below; `lock` guards the slot
 * counts and the list of live scrapes; each scrape's `lock` guards its
 * suspended flag against the render thread's resume. Rendering takes no lock
 * a capture thread waits on, so a slow or huge scrape never stalls capture.
 * Idle and slow clients: connections are non-blocking and limited in number
 * (HTTP_SERVER_CONNECTION_LIMIT in all, per_ip_limit per client address, far
 * below the total, so one client cannot take them all); idle ones are closed
 * after HTTP_SERVER_CONNECTION_TIMEOUT; and a connection must complete its
 * request headers within read_header_timeout (libmicrohttpd's idle timeout
 * restarts with every byte, so a client trickling header lines would keep a
 * connection forever): the reaper thread shuts down the socket of any
 * connection past that deadline, and libmicrohttpd closes it. A client
 * that stops reading a page (or reads it a few bytes at a time) would hold
 * its render slot as long as it stays connected: a render that waits longer
 * than write_stall_timeout for its client to take a chunk ends, and the
 * response is cut.
 *
 * POST /-/reload (--web.enable-lifecycle) never reloads here: the request
 * is listed in `reloads` (under `lock`) with its connection suspended, the
 * agent is asked (opts.reload), and the agent's main thread answers every
 * request listed when its reload began (http_server_reload_begin/_end), so
 * reloads run one at a time and no MHD thread waits for one; shutdown
 * answers what is still listed with 503. */
#include "promacct/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "promacct/expo_text.h"
#include "promacct/log.h"
#include "promacct/render.h"
#include "promacct/status_page.h"
#include "promacct/web_config.h"

#define HOST_MAX 256

/* Render failures repeat with every scrape while their cause lasts (a page
 * over its cap, memory): one line per 10 s, with the count left out. */
static struct log_limit render_fail_log = LOG_LIMIT_INIT(10);
/* Scrapes cut by --web.write-stall-timeout: one line per 10 s. */
static struct log_limit stall_log = LOG_LIMIT_INIT(10);

struct scrape;

/* One client connection: its socket and the time by which its request
 * headers must be complete (0 while a request is handled). Under tlock. */
struct conn_track {
	int fd;
	double deadline;
	int killed;
	struct conn_track *next, *prev;
};

struct http_server {
	struct http_server_opts o;
	char listen[HOST_MAX + 16];
	char host[HOST_MAX];
	int want_port;
	struct MHD_Daemon *daemon;
	struct registry *reg;
	int fd;
	int port;
	int started;
	_Atomic int stopping;

	pthread_mutex_t lock;
	pthread_cond_t slot_cond; /* a render slot freed, or stopping */
	unsigned active;          /* renders holding a slot */
	unsigned streams;         /* render threads (holding or waiting for a slot) */
	struct scrape *live;      /* scrapes with a render stream */
	/* Scrapes whose connection is suspended or whose resume libmicrohttpd
	 * has not processed yet (it must be none at MHD_stop_daemon). */
	_Atomic unsigned suspended;
	struct reload_req *reloads; /* POST /-/reload waiting for a result */

	/* Connections and their header deadlines (reaper thread). */
	pthread_mutex_t tlock;
	pthread_cond_t tcond;
	struct conn_track *tracked;
	int reaper_stop; /* under tlock */
	pthread_t reaper;
	int reaper_started;

	gauge_t *header_timeouts, *write_stalls;
	gauge_t *scrapes, *scrape_errors, *scrape_seconds, *page_bytes, *rendered_bytes;
	gauge_t *renders, *render_waits, *render_rejections;
};

/* Per request: `kind` tells a /metrics scrape from the rest. */
enum req_kind { REQ_OTHER, REQ_SCRAPE, REQ_RELOAD };

/* A POST /-/reload: its connection is suspended from the request until
 * the reload that began after it has ended (or none will run). Every field
 * past `conn` is under s->lock. */
struct reload_req {
	enum req_kind kind; /* first: REQ_RELOAD */
	struct http_server *s;
	struct MHD_Connection *conn;
	struct reload_req *next, *prev; /* in s->reloads until answered */
	int taken;                      /* the reload begun last answers it */
	unsigned status;                /* 0 until answered */
	int parked; /* counted in s->suspended: until its callback after the resume */
	char msg[HTTP_SERVER_RELOAD_MSG_MAX + 32];
};

struct scrape {
	enum req_kind kind; /* first: a request's context starts with its kind */
	struct http_server *s;
	struct MHD_Connection *conn;
	struct render_stream *rs;
	struct scrape *next, *prev; /* in s->live */
	pthread_mutex_t lock;
	int suspended; /* under lock: suspended, not yet resumed */
	int parked;    /* under lock: suspended, or resumed and not yet called back */
	int queued;    /* a response was queued (MHD thread only) */
	int gzip, failed;
	double t0;
	double wait;                         /* seconds it may wait for a render slot */
	uint8_t client[HTTP_CLIENT_KEY_LEN]; /* http_client_budget_key */
	int holding;                         /* under s->lock: holds a render slot */
};

static enum req_kind other_request = REQ_OTHER;

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

/* The q value of one Accept-Encoding element's parameters (";q=0.5"):
 * 1 when absent, 0 for q=0 (refused). */
static double coding_q(const char *p, const char *end)
{
	while (p < end) {
		p += strspn(p, " \t;");
		if (end - p >= 2 && (*p == 'q' || *p == 'Q') && p[1] == '=')
			return strtod(p + 2, NULL);
		p += strcspn(p, ";");
	}
	return 1;
}

int http_accepts_gzip(const char *ae)
{
	int gzip = -1, any = -1; /* -1: not named */
	while (ae && *ae) {
		ae += strspn(ae, " \t,");
		size_t len = strcspn(ae, ",");
		const char *end = ae + len, *semi = memchr(ae, ';', len);
		size_t nlen = strcspn(ae, " \t;,");
		int ok = coding_q(semi ? semi : end, end) > 0;
		if ((nlen == 4 && !strncasecmp(ae, "gzip", 4)) ||
		    (nlen == 6 && !strncasecmp(ae, "x-gzip", 6)))
			gzip = ok;
		else if (nlen == 1 && *ae == '*')
			any = ok;
		ae = end;
	}
	return gzip >= 0 ? gzip : any > 0;
}

static int accepts_gzip(struct MHD_Connection *conn)
{
	return http_accepts_gzip(
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
}

/* The --web.config.file headers, on every response. */
static void add_web_headers(const struct http_server *s, struct MHD_Response *resp)
{
	if (s->o.web)
		web_config_add_headers(s->o.web, resp);
}

static enum MHD_Result reply_static(const struct http_server *s, struct MHD_Connection *conn,
                                    unsigned status, const char *ctype, const char *body)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	add_web_headers(s, resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_SERVER_RETRY_AFTER);
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static ssize_t head_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)cls, (void)pos, (void)buf, (void)max;
	return MHD_CONTENT_READER_END_OF_STREAM;
}

/* HEAD /metrics: the headers a GET gets (a streamed body of unknown
 * length), without rendering. */
static enum MHD_Result reply_head(const struct http_server *s, struct MHD_Connection *conn)
{
	struct MHD_Response *resp =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, head_read, NULL, NULL);
	if (!resp)
		return MHD_NO;
	add_web_headers(s, resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, EXPO_TEXT_CONTENT_TYPE);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

/* ---- connections and the header deadline -------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *s = cls;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct conn_track *t = calloc(1, sizeof *t);
		if (!t || !ci) { /* untracked: the idle timeout still applies */
			free(t);
			return;
		}
		t->fd = ci->connect_fd;
		t->deadline = time_monotonic() + s->o.read_header_timeout;
		pthread_mutex_lock(&s->tlock);
		t->next = s->tracked;
		if (s->tracked)
			s->tracked->prev = t;
		s->tracked = t;
		pthread_mutex_unlock(&s->tlock);
		*socket_context = t;
		return;
	}
	/* closed: called before libmicrohttpd closes the socket, so the
	 * reaper (under tlock) never shuts down a reused descriptor */
	struct conn_track *t = *socket_context;
	if (!t)
		return;
	pthread_mutex_lock(&s->tlock);
	if (t->prev)
		t->prev->next = t->next;
	else
		s->tracked = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&s->tlock);
	free(t);
	*socket_context = NULL;
}

/* A request's headers are complete (deadline 0), or it ended: the next
 * one's headers are due after the idle timeout plus the header timeout. */
static void track_request(struct http_server *s, struct MHD_Connection *conn, int done)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	struct conn_track *t = ci ? ci->socket_context : NULL;
	if (!t)
		return;
	pthread_mutex_lock(&s->tlock);
	t->deadline =
	    done ? time_monotonic() + HTTP_SERVER_CONNECTION_TIMEOUT + s->o.read_header_timeout : 0;
	pthread_mutex_unlock(&s->tlock);
}

static void *reaper_main(void *arg)
{
	struct http_server *s = arg;
	pthread_mutex_lock(&s->tlock);
	while (!s->reaper_stop) {
		double now = time_monotonic();
		for (struct conn_track *t = s->tracked; t; t = t->next)
			if (t->deadline && now > t->deadline && !t->killed) {
				/* counted first: the client may see the close at
				 * once; libmicrohttpd sees the end of the stream
				 * and closes the connection */
				self_inc(s->header_timeouts, 1);
				shutdown(t->fd, SHUT_RDWR);
				t->killed = 1;
			}
		cond_wait_until(&s->tcond, &s->tlock, now + 0.25, &s->reaper_stop);
	}
	pthread_mutex_unlock(&s->tlock);
	return NULL;
}

/* ---- render slots (on render threads) ----------------------------------- */

/* The render slots one client address may hold: half of them (at least
 * one), so clients that ask for the page and read it slowly, or never, from
 * one address cannot hold every slot and lock other scrapers out. */
static unsigned per_client_renders(const struct http_server *s)
{
	return s->o.max_renders > 1 ? s->o.max_renders / 2 : 1;
}

/* s->lock held: the slots held by sc's client address. Walks the live
 * scrapes (at most max_renders + HTTP_SERVER_MAX_WAITING). */
static unsigned client_renders(const struct http_server *s, const struct scrape *sc)
{
	unsigned n = 0;
	for (const struct scrape *o = s->live; o; o = o->next)
		n += o->holding && !memcmp(o->client, sc->client, sizeof o->client);
	return n;
}

/* s->lock held: whether sc may take a render slot now. */
static int slot_free(const struct http_server *s, const struct scrape *sc)
{
	return s->active < s->o.max_renders && client_renders(s, sc) < per_client_renders(s);
}

void http_client_budget_key(const struct sockaddr *sa, uint8_t out[HTTP_CLIENT_KEY_LEN])
{
	memset(out, 0, HTTP_CLIENT_KEY_LEN);
	if (sa && sa->sa_family == AF_INET) {
		out[0] = AF_INET;
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) { /* an IPv4 client of a dual-stack socket */
			out[0] = AF_INET;
			memcpy(out + 1, a->s6_addr + 12, 4);
		} else {
			/* the /64: one host, or one attacker, has all of it */
			out[0] = AF_INET6;
			memcpy(out + 1, a->s6_addr, 8);
		}
	}
}

static void client_key(struct MHD_Connection *conn, uint8_t out[HTTP_CLIENT_KEY_LEN])
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	http_client_budget_key(ci ? ci->client_addr : NULL, out);
}

static int render_admit(void *arg, const _Atomic int *stop)
{
	struct scrape *sc = arg;
	struct http_server *s = sc->s;
	int rc = 0, waited = 0;
	double deadline = time_monotonic() + sc->wait;
	pthread_mutex_lock(&s->lock);
	while (!slot_free(s, sc) && !atomic_load(stop) && !atomic_load(&s->stopping)) {
		double now = time_monotonic();
		if (now >= deadline)
			break;
		if (!waited) {
			waited = 1;
			self_inc(s->render_waits, 1);
		}
		/* woken when a slot frees; short slices, since the stop flags
		 * are not signalled on slot_cond (a wait that ignored the signal
		 * and slept whole slices left scrapes queued behind free slots:
		 * wrk -c 64 saw 5 s latencies and timeouts under ASan) */
		cond_wait_signal_until(&s->slot_cond, &s->lock,
		                       now + 0.05 < deadline ? now + 0.05 : deadline);
	}
	if (atomic_load(stop) || atomic_load(&s->stopping))
		rc = -ECANCELED;
	else if (!slot_free(s, sc))
		rc = -EBUSY;
	else {
		s->active++;
		sc->holding = 1;
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == -EBUSY)
		self_inc(s->render_rejections, 1);
	else if (rc == 0)
		self_inc(s->renders, 1);
	return rc;
}

static void render_done(void *arg, int status, uint64_t text_bytes)
{
	struct scrape *sc = arg;
	struct http_server *s = sc->s;
	pthread_mutex_lock(&s->lock);
	s->active--;
	sc->holding = 0;
	/* a waiter of another address may be the one that can go now */
	pthread_cond_broadcast(&s->slot_cond);
	pthread_mutex_unlock(&s->lock);
	self_inc(s->renders, -1);
	self_inc(s->rendered_bytes, (double)text_bytes);
	if (status == 0)
		gauge_set(s->page_bytes, (double)text_bytes);
	if (status == -ETIMEDOUT) {
		self_inc(s->write_stalls, 1);
		log_limited(&stall_log, LOG_WARN, "scrape cut: the client stopped reading",
		            "stall_timeout_seconds=%g bytes_rendered=%llu",
		            s->o.write_stall_timeout, (unsigned long long)text_bytes);
	}
}

/* Render thread: output is ready or the render ended; resume the
 * connection if it waits for that. */
static void render_ready(void *arg)
{
	struct scrape *sc = arg;
	pthread_mutex_lock(&sc->lock);
	if (sc->suspended) {
		sc->suspended = 0;
		MHD_resume_connection(sc->conn);
	}
	pthread_mutex_unlock(&sc->lock);
}

/* MHD thread, sc->lock held: park the connection until render_ready. */
static void scrape_suspend(struct scrape *sc)
{
	sc->suspended = 1;
	if (!sc->parked) {
		sc->parked = 1;
		atomic_fetch_add(&sc->s->suspended, 1);
	}
	MHD_suspend_connection(sc->conn);
}

/* MHD thread, sc->lock held, in a callback of the scrape: libmicrohttpd has
 * processed its resume. */
static void scrape_unpark(struct scrape *sc)
{
	if (sc->parked && !sc->suspended) {
		sc->parked = 0;
		atomic_fetch_sub(&sc->s->suspended, 1);
	}
}

/* ---- the /metrics response ---------------------------------------------- */

static ssize_t scrape_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct scrape *sc = cls;
	(void)pos;
	pthread_mutex_lock(&sc->lock);
	scrape_unpark(sc);
	ssize_t n = render_stream_read(sc->rs, buf, max, 0);
	if (n == 0)
		scrape_suspend(sc);
	pthread_mutex_unlock(&sc->lock);
	if (n >= 0)
		return n;
	if (n == RENDER_EOF)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (!sc->failed) {
		sc->failed = 1;
		if (n != -ECANCELED && n != -ETIMEDOUT) /* a stall is logged by render_done */
			log_limited(&render_fail_log, LOG_ERROR, "rendering metrics failed",
			            "err=%s", strerror((int)-n));
	}
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

static void scrape_free(struct scrape *sc)
{
	struct http_server *s = sc->s;
	if (sc->parked) /* completed while a resume was pending */
		atomic_fetch_sub(&s->suspended, 1);
	if (sc->rs) {
		/* Out of the live list before its stream is freed: shutdown
		 * walks that list (under s->lock) and touches each stream. */
		pthread_mutex_lock(&s->lock);
		if (sc->prev)
			sc->prev->next = sc->next;
		else
			s->live = sc->next;
		if (sc->next)
			sc->next->prev = sc->prev;
		pthread_mutex_unlock(&s->lock);
		render_stream_free(sc->rs); /* joins its render thread */
		pthread_mutex_lock(&s->lock);
		s->streams--;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_destroy(&sc->lock);
	free(sc);
}

/* First handler call for a /metrics GET: starts its render. */
static enum MHD_Result scrape_begin(struct http_server *s, struct MHD_Connection *conn,
                                    void **req_cls)
{
	self_inc(s->scrapes, 1);
	struct scrape *sc = calloc(1, sizeof *sc);
	if (!sc)
		return MHD_NO;
	sc->kind = REQ_SCRAPE;
	sc->s = s;
	sc->conn = conn;
	sc->gzip = accepts_gzip(conn);
	sc->t0 = time_monotonic();
	client_key(conn, sc->client);
	/* Wait for a slot at most the configured time, or until half a second
	 * before the scraper gives up, when it says when that is. */
	sc->wait = s->o.render_wait;
	const char *st = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
	                                             "X-Prometheus-Scrape-Timeout-Seconds");
	double timeout = st ? strtod(st, NULL) : 0;
	if (timeout > 0 && timeout - 0.5 < sc->wait)
		sc->wait = timeout - 0.5 > 0.1 ? timeout - 0.5 : 0.1;
	pthread_mutex_init(&sc->lock, NULL);
	*req_cls = sc;

	pthread_mutex_lock(&s->lock);
	int full = s->streams >= s->o.max_renders + HTTP_SERVER_MAX_WAITING;
	pthread_mutex_unlock(&s->lock);
	if (full) {
		self_inc(s->render_rejections, 1);
		sc->queued = 1;
		return reply_static(s, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
		                    "too many scrapes at once, retry later\n");
	}
	struct render_opts ro = {
	    sc->gzip, HTTP_SERVER_GZIP_LEVEL,  render_ready, render_admit, render_done,
	    sc,       s->o.write_stall_timeout};
	sc->rs = render_stream_new(s->reg, &ro);
	if (!sc->rs)
		goto fail;
	pthread_mutex_lock(&s->lock);
	s->streams++;
	sc->next = s->live;
	if (s->live)
		s->live->prev = sc;
	s->live = sc;
	pthread_mutex_unlock(&s->lock);
	if (render_stream_start(sc->rs) == 0)
		return MHD_YES;
fail:
	self_inc(s->scrape_errors, 1);
	log_limited(&render_fail_log, LOG_ERROR, "cannot start a render", "err=%s",
	            strerror(ENOMEM));
	sc->queued = 1;
	return reply_static(s, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
	                    "rendering metrics failed\n");
}

/* GET / with a status page: rendered here from its prepared state (small,
 * bounded), holding a render slot (503 at once when none is free). */
static enum MHD_Result reply_status(struct http_server *s, struct MHD_Connection *conn)
{
	char *html = NULL;
	size_t len = 0;
	pthread_mutex_lock(&s->lock);
	int slot = s->active < s->o.max_renders;
	s->active += (unsigned)slot;
	pthread_mutex_unlock(&s->lock);
	if (!slot)
		return reply_static(s, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
		                    "too many requests at once, retry later\n");
	int rc = status_page_render(s->o.status, &html, &len);
	pthread_mutex_lock(&s->lock);
	s->active--;
	pthread_cond_signal(&s->slot_cond);
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return reply_static(s, conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
		                    "rendering the status page failed\n");
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(len, html, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(html);
		return MHD_NO;
	}
	add_web_headers(s, resp);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

/* Later handler calls of a scrape: the status once the render has output
 * or failed, else park the connection until it has. */
static enum MHD_Result scrape_continue(struct scrape *sc)
{
	struct http_server *s = sc->s;
	if (sc->queued)
		return MHD_YES;
	pthread_mutex_lock(&sc->lock);
	scrape_unpark(sc);
	int st = render_stream_poll(sc->rs);
	if (st == 0)
		scrape_suspend(sc);
	pthread_mutex_unlock(&sc->lock);
	if (st == 0)
		return MHD_YES;
	sc->queued = 1;
	if (st == -EBUSY)
		return reply_static(s, sc->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
		                    "too many scrapes at once, retry later\n");
	if (st < 0) {
		sc->failed = 1;
		if (st != -ECANCELED)
			log_limited(&render_fail_log, LOG_ERROR, "rendering metrics failed",
			            "err=%s", strerror(-st));
		return reply_static(s, sc->conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
		                    "rendering metrics failed\n");
	}
	struct MHD_Response *resp =
	    MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, scrape_read, sc, NULL);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, EXPO_TEXT_CONTENT_TYPE);
	if (sc->gzip)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept-Encoding");
	add_web_headers(s, resp);
	enum MHD_Result r = MHD_queue_response(sc->conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

/* ---- POST /-/reload (--web.enable-lifecycle) ----------------------------- */

/* s->lock held: r leaves the list of waiting requests with this status. */
static void reload_unlink(struct reload_req *r, unsigned status)
{
	r->status = status;
	if (r->prev)
		r->prev->next = r->next;
	else
		r->s->reloads = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

/* s->lock held: answers r (once) and resumes its connection. */
static void reload_answer(struct reload_req *r, unsigned status, const char *msg)
{
	if (r->status)
		return;
	reload_unlink(r, status);
	snprintf(r->msg, sizeof r->msg, "%s", msg);
	MHD_resume_connection(r->conn);
}

void http_server_reload_begin(struct http_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	for (struct reload_req *r = s->reloads; r; r = r->next)
		r->taken = 1;
	pthread_mutex_unlock(&s->lock);
}

void http_server_reload_end(struct http_server *s, int ok, const char *err)
{
	if (!s)
		return;
	char msg[sizeof((struct reload_req *)0)->msg];
	snprintf(msg, sizeof msg, "failed to reload config: %.*s\n", HTTP_SERVER_RELOAD_MSG_MAX,
	         err ? err : "");
	pthread_mutex_lock(&s->lock);
	for (struct reload_req *r = s->reloads, *next; r; r = next) {
		next = r->next;
		if (r->taken)
			reload_answer(r, ok ? MHD_HTTP_OK : MHD_HTTP_INTERNAL_SERVER_ERROR,
			              ok ? "" : msg);
	}
	pthread_mutex_unlock(&s->lock);
}

/* s->lock held. */
static void reload_abort_locked(struct http_server *s)
{
	while (s->reloads)
		reload_answer(s->reloads, MHD_HTTP_SERVICE_UNAVAILABLE,
		              "shutting down: no reload will run\n");
}

void http_server_reload_abort(struct http_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	reload_abort_locked(s);
	pthread_mutex_unlock(&s->lock);
}

/* POST or PUT /-/reload (Prometheus' lifecycle API): 405 for another
 * method, 403 without --web.enable-lifecycle; else the connection is
 * suspended, the agent asked for a reload, and the answer (200, 500 with
 * the error) queued when it has run (reload_continue). */
static enum MHD_Result reply_reload(struct http_server *s, struct MHD_Connection *conn,
                                    const char *method, void **req_cls)
{
	if (strcmp(method, "POST") && strcmp(method, "PUT")) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    sizeof "Only POST or PUT requests allowed\n" - 1,
		    (void *)"Only POST or PUT requests allowed\n", MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST, PUT");
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
		add_web_headers(s, resp);
		enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
		MHD_destroy_response(resp);
		return r;
	}
	if (!s->o.enable_lifecycle)
		return reply_static(s, conn, MHD_HTTP_FORBIDDEN, "text/plain",
		                    "Lifecycle API is not enabled.\n");
	struct reload_req *r = calloc(1, sizeof *r);
	if (!r)
		return MHD_NO;
	r->kind = REQ_RELOAD;
	r->s = s;
	r->conn = conn;
	pthread_mutex_lock(&s->lock);
	if (atomic_load(&s->stopping)) {
		pthread_mutex_unlock(&s->lock);
		free(r);
		return reply_static(s, conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain",
		                    "shutting down: no reload will run\n");
	}
	/* listed (and suspended) before the agent is asked: the reload that
	 * takes the request answers it */
	MHD_suspend_connection(conn);
	r->parked = 1;
	atomic_fetch_add(&s->suspended, 1);
	r->next = s->reloads;
	if (s->reloads)
		s->reloads->prev = r;
	s->reloads = r;
	pthread_mutex_unlock(&s->lock);
	*req_cls = r;
	if (!s->o.reload || s->o.reload(s->o.reload_arg)) {
		pthread_mutex_lock(&s->lock);
		reload_answer(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		              "shutting down: no reload will run\n");
		pthread_mutex_unlock(&s->lock);
	}
	return MHD_YES;
}

/* The handler call after a reload request was answered (resumed). */
static enum MHD_Result reload_continue(struct reload_req *r)
{
	struct http_server *s = r->s;
	pthread_mutex_lock(&s->lock);
	unsigned status = r->status;
	if (status && r->parked) {
		r->parked = 0;
		atomic_fetch_sub(&s->suspended, 1);
	}
	pthread_mutex_unlock(&s->lock);
	if (!status) /* not answered: cannot happen (resumed only once answered) */
		return MHD_NO;
	struct MHD_Response *resp =
	    MHD_create_response_from_buffer(strlen(r->msg), r->msg, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, HTTP_SERVER_RETRY_AFTER);
	add_web_headers(s, resp);
	enum MHD_Result ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void reload_free(struct reload_req *r)
{
	struct http_server *s = r->s;
	pthread_mutex_lock(&s->lock);
	if (!r->status) /* still listed (closed before an answer) */
		reload_unlink(r, MHD_HTTP_SERVICE_UNAVAILABLE);
	if (r->parked)
		atomic_fetch_sub(&s->suspended, 1);
	pthread_mutex_unlock(&s->lock);
	free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct http_server *s = cls;
	track_request(s, conn, 1);
	if (*req_cls && *(enum req_kind *)*req_cls == REQ_RELOAD) {
		reload_free(*req_cls);
		*req_cls = NULL;
		return;
	}
	if (!*req_cls || *(enum req_kind *)*req_cls != REQ_SCRAPE)
		return;
	struct scrape *sc = *req_cls;
	*req_cls = NULL;
	if (sc->rs) {
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || sc->failed)
			self_inc(s->scrape_errors, 1);
		gauge_set(s->scrape_seconds, time_monotonic() - sc->t0);
	}
	scrape_free(sc);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **req_cls)
{
	struct http_server *s = cls;
	(void)version;
	(void)upload;
	if (*req_cls && *(enum req_kind *)*req_cls == REQ_SCRAPE)
		return scrape_continue(*req_cls);
	if (*req_cls && *(enum req_kind *)*req_cls == REQ_RELOAD)
		return reload_continue(*req_cls);
	if (*req_cls == NULL) { /* headers only so far; answer on the next call */
		track_request(s, conn, 0);
		*req_cls = &other_request;
		return MHD_YES;
	}
	if (*upload_size) { /* ignore request bodies */
		*upload_size = 0;
		return MHD_YES;
	}
	if (s->o.web) { /* client certificate, then basic auth */
		int denied = web_config_check_request(s->o.web, conn);
		if (denied)
			return (enum MHD_Result)web_config_queue_denied(s->o.web, conn, denied);
	}
	if (!strcmp(url, "/-/reload"))
		return reply_reload(s, conn, method, req_cls);
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		struct MHD_Response *resp = MHD_create_response_from_buffer(
		    sizeof "method not allowed\n" - 1, (void *)"method not allowed\n",
		    MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
		add_web_headers(s, resp);
		enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
		MHD_destroy_response(resp);
		return r;
	}
	if (!strcmp(url, "/metrics")) {
		if (!strcmp(method, "HEAD")) /* the headers of a page, no render */
			return reply_head(s, conn);
		enum MHD_Result r = scrape_begin(s, conn, req_cls);
		if (r == MHD_YES && !((struct scrape *)*req_cls)->queued)
			return scrape_continue(*req_cls);
		return r;
	}
	if (!strcmp(url, "/") && s->o.status)
		return reply_status(s, conn);
	if (!strcmp(url, "/"))
		return reply_static(s, conn, MHD_HTTP_OK, "text/html; charset=utf-8", landing_page);
	if (!strcmp(url, "/-/healthy") || !strcmp(url, "/-/ready"))
		return reply_static(s, conn, MHD_HTTP_OK, "text/plain", "OK\n");
	return reply_static(s, conn, MHD_HTTP_NOT_FOUND, "text/plain", "404 page not found\n");
}

/* ---- lifecycle ----------------------------------------------------------- */

struct http_server *http_server_new(const struct http_server_opts *opts, struct registry *reg,
                                    char *err, size_t errlen)
{
	struct http_server *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->o = *opts;
	s->reg = reg;
	s->fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	cond_init_monotonic(&s->slot_cond);
	pthread_mutex_init(&s->tlock, NULL);
	cond_init_monotonic(&s->tcond);
	if (!s->o.per_ip_limit)
		s->o.per_ip_limit = HTTP_SERVER_PER_IP_LIMIT;
	if (!(s->o.read_header_timeout > 0))
		s->o.read_header_timeout = HTTP_SERVER_READ_HEADER_TIMEOUT;
	if (!(s->o.write_stall_timeout > 0))
		s->o.write_stall_timeout = HTTP_SERVER_WRITE_STALL_TIMEOUT;
	if (!s->o.max_renders)
		s->o.max_renders = HTTP_SERVER_MAX_RENDERS;
	if (!(s->o.render_wait > 0))
		s->o.render_wait = HTTP_SERVER_RENDER_WAIT;
	if (!opts->listen || strlen(opts->listen) >= sizeof s->listen ||
	    http_server_parse_listen(opts->listen, s->host, sizeof s->host, &s->want_port)) {
		snprintf(err, errlen, "invalid listen address '%s' (expected [HOST]:PORT)",
		         opts->listen ? opts->listen : "");
		goto fail;
	}
	strcpy(s->listen, opts->listen);
	s->o.listen = s->listen;
	s->scrapes =
	    registry_self_add(reg, "promacct_http_scrapes_total", "Requests of /metrics served.",
	                      METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->scrape_errors = registry_self_add(
	    reg, "promacct_http_scrape_errors_total",
	    "Requests of /metrics that failed to render or were cut (client gone, render error).",
	    METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->scrape_seconds = registry_self_add(reg, "promacct_http_scrape_duration_seconds",
	                                      "Time the last /metrics request took, render and "
	                                      "sending (they overlap: the page is streamed).",
	                                      METRIC_GAUGE, NULL, NULL, NULL, NULL);
	s->page_bytes = registry_self_add(reg, "promacct_http_scrape_page_bytes",
	                                  "Text bytes of the last complete /metrics render (before "
	                                  "gzip).",
	                                  METRIC_GAUGE, NULL, NULL, NULL, NULL);
	s->rendered_bytes = registry_self_add(reg, "promacct_http_rendered_bytes_total",
	                                      "Text bytes rendered for /metrics (before gzip).",
	                                      METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->renders = registry_self_add(reg, "promacct_http_renders_in_progress",
	                               "Renders of /metrics running now (at most "
	                               "--web.max-requests).",
	                               METRIC_GAUGE, NULL, NULL, NULL, NULL);
	s->render_waits = registry_self_add(reg, "promacct_http_render_waits_total",
	                                    "Requests of /metrics that waited for a render slot "
	                                    "(--web.max-requests were running).",
	                                    METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->render_rejections = registry_self_add(
	    reg, "promacct_http_render_rejections_total",
	    "Requests of /metrics answered 503 because no render slot became free in time.",
	    METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->header_timeouts = registry_self_add(
	    reg, "promacct_http_header_timeouts_total",
	    "Connections closed because their request headers were not complete within "
	    "--web.read-header-timeout.",
	    METRIC_COUNTER, NULL, NULL, NULL, NULL);
	s->write_stalls = registry_self_add(
	    reg, "promacct_http_write_stalls_total",
	    "Requests of /metrics cut because the client took no chunk of the page within "
	    "--web.write-stall-timeout.",
	    METRIC_COUNTER, NULL, NULL, NULL, NULL);
	if (!s->header_timeouts || !s->write_stalls || !s->scrapes || !s->scrape_errors ||
	    !s->scrape_seconds || !s->page_bytes || !s->rendered_bytes || !s->renders ||
	    !s->render_waits || !s->render_rejections) {
		snprintf(err, errlen, "too many self-metrics");
		goto fail;
	}
	return s;
fail:
	http_server_free(s);
	return NULL;
}

int http_server_start(struct http_server *s, char *err, size_t errlen)
{
	int rc = bind_listen(s->host, s->want_port, &s->fd, &s->port, err, errlen);
	if (rc)
		return rc;
	struct MHD_OptionItem tls[WEB_CONFIG_MHD_OPTIONS] = {{MHD_OPTION_END, 0, NULL}};
	unsigned tls_flags = s->o.web ? web_config_mhd_options(s->o.web, tls) : 0;
	s->daemon = MHD_start_daemon(
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | tls_flags,
	    0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, tls, MHD_OPTION_LISTEN_SOCKET, s->fd,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_SERVER_THREADS, MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned)HTTP_SERVER_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)HTTP_SERVER_CONNECTION_TIMEOUT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    s->o.per_ip_limit, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
	if (!s->daemon) {
		snprintf(err, errlen, "cannot start the HTTP server on %s%s", s->listen,
		         tls_flags ? " (TLS: check the certificate and key of --web.config.file)"
		                   : "");
		close(s->fd);
		s->fd = -1;
		s->port = 0;
		return -EIO;
	}
	s->started = 1;
	if (pthread_create(&s->reaper, NULL, reaper_main, s) == 0)
		s->reaper_started = 1;
	else
		log_warn("no header deadline: cannot start its thread", "%s", "");
	return 0;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

void http_server_shutdown(struct http_server *s, double deadline)
{
	if (!s || !s->started)
		return;
	atomic_store(&s->stopping, 1);
	MHD_quiesce_daemon(s->daemon); /* no new connections */
	/* End every render: its parked connection is resumed (a suspended
	 * connection must not outlive the daemon). */
	pthread_mutex_lock(&s->lock);
	for (struct scrape *sc = s->live; sc; sc = sc->next)
		render_stream_cancel(sc->rs);
	pthread_cond_broadcast(&s->slot_cond);
	reload_abort_locked(s); /* waiting reload requests: 503 */
	pthread_mutex_unlock(&s->lock);
	/* Wait for every render to end (then no connection parks again: a
	 * read of an ended stream never waits), then for libmicrohttpd to
	 * have processed every resume (the scrape's next callback). */
	for (;;) {
		int running = 0;
		pthread_mutex_lock(&s->lock);
		for (struct scrape *sc = s->live; sc && !running; sc = sc->next)
			running = !render_stream_ended(sc->rs);
		pthread_mutex_unlock(&s->lock);
		if ((!running && !atomic_load(&s->suspended)) || time_monotonic() >= deadline)
			break;
		nanosleep(&(struct timespec){0, 5000000}, NULL);
	}
	if (atomic_load(&s->suspended))
		log_warn("scrapes still suspended at shutdown", "count=%u",
		         atomic_load(&s->suspended));
	if (s->reaper_started) {
		pthread_mutex_lock(&s->tlock);
		s->reaper_stop = 1;
		pthread_cond_broadcast(&s->tcond);
		pthread_mutex_unlock(&s->tlock);
		pthread_join(s->reaper, NULL);
		s->reaper_started = 0;
	}
	/* Whatever is still parked gets its resume requested now:
	 * libmicrohttpd processes pending resumes when it stops, but a
	 * connection suspended without one makes it abort. */
	pthread_mutex_lock(&s->lock);
	for (struct scrape *sc = s->live; sc; sc = sc->next)
		render_ready(sc);
	pthread_mutex_unlock(&s->lock);
	MHD_stop_daemon(s->daemon); /* closes connections: their scrapes are freed */
	s->daemon = NULL;
	close(s->fd);
	s->fd = -1;
	s->started = 0;
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	http_server_shutdown(s, time_monotonic() + 1);
	if (s->fd >= 0)
		close(s->fd);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->slot_cond);
	pthread_mutex_destroy(&s->tlock);
	pthread_cond_destroy(&s->tcond);
	free(s);
}
