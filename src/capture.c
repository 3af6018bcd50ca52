/* DESIGN: capture threads.
 *
 * One thread per pcap handle: a live interface gets --capture-threads
 * handles joined in one PACKET_FANOUT group, a file gets one. Each thread
 * owns one acct_shard of the registry and is its only writer. It blocks in
 * pcap_dispatch (TPACKET_V3 ring, a 100 ms block timeout so that idle links
 * still publish pcap_stats and notice a stop request); there is no
 * sleep-and-poll loop. Per packet the callback parses and accounts, nothing
 * else: no lock, allocation, syscall or formatting (a new address takes the
 * table's slow path). pcap_stats runs on the capture thread at most once a
 * second, between dispatch calls, because pcap handles are not thread-safe.
 * With --address.idle-timeout a live thread also runs a slice of its
 * table's idle-expiry scan after each dispatch (registry_shard_expire), and
 * waits for a ready block in poll() with a 50 ms timeout before each
 * dispatch: an idle TPACKET_V3 ring never wakes a blocked pcap_dispatch,
 * and the keys of an idle link must end too.
 *
 * A thread without a handle - a file read to its end (not with --once),
 * an interface missing or gone for good - stays the only writer of its
 * shard until the stop: it waits on the capture's condition variable
 * (worker_idle), which a stop request and a reload wake, follows reloads
 * (worker_ranges) and, with idle expiry, runs a slice of the scan every
 * EXPIRY_WAIT_MS as a live thread waiting for traffic does, so the keys of
 * a read file or of a missing interface end as live ones do. No other
 * thread ever writes a shard's table.
 *
 * An interface that disappears (pcap_dispatch fails) is closed and, every
 * reopen_interval, opened again by its own thread (same snap length rules,
 * filter and fanout group), waiting in worker_idle between attempts. The
 * source is down (registry_source_set_up 0: series not exported, addresses
 * out of the cap, interface_up 0) from the first of its threads that fails
 * until the last one is back; each change is logged once. Its shards are
 * kept, so its series continue (less the keys that ended meanwhile). The
 * handle of a worker changes only on its own thread, under the worker's
 * lock that capture_request_stop takes for pcap_breakloop (libpcap >= 1.10
 * wakes a blocked poll).
 *
 * Reload of the ranges: a worker takes the registry's ranges table between
 * batches (worker_ranges -> registry_shard_ranges: one load per batch; when
 * a reload published a new one, the keys it changed end first).
 * capture_ranges_changed wakes live workers blocked in pcap_dispatch
 * (pcap_breakloop with `woken` set, which the loop tells from a stop) and
 * the threads in worker_idle (the condition variable; they look at the
 * generation under the capture lock, so no wake-up is lost). A thread
 * about to open its interface (which may block) publishes that it uses no
 * table (registry_shard_ranges_idle) until it looks again.
 *
 * Lock order: capture lock, then a worker's lock. */
#define _GNU_SOURCE
#include "promacct/capture.h"

#include <errno.h>
#include <libgen.h>
#include <linux/if_packet.h>
#include <math.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "promacct/account.h"
#include "promacct/log.h"

#define BLOCK_TIMEOUT_MS 100
#define STATS_INTERVAL   1.0  /* seconds between pcap_stats calls */
#define EXPIRY_WAIT_MS   50   /* longest wait for traffic with idle expiry on */
#define FILE_BATCH       4096 /* packets per pcap_dispatch on a file */

struct worker {
	struct capture *cap;
	struct acct_shard *shard;
	size_t src;                  /* index of its source in the registry */
	const struct ranges *ranges; /* the table it uses (registry_shard_ranges) */
	uint64_t ranges_gen;         /* its generation */
	_Atomic int woken;           /* pcap_breakloop by capture_ranges_changed */
	const struct histogram_layout *layout;
	pthread_mutex_t lock; /* pcap changes vs pcap_breakloop from other threads */
	pcap_t *pcap;         /* NULL while the interface is missing */
	int dlt;
	parse_fn parse; /* the parser of dlt */
	int is_file;
	int fanout_group;
	const char *name; /* interface or file path, for messages (not owned) */
	pthread_t thread;
	int started;
	/* thread-private */
	uint64_t file_pkts;                         /* packets read from a file */
	uint64_t base_recv, base_drop, base_ifdrop; /* pcap_stats of closed handles */
	struct acct_batch batch;                    /* queued address lookups */
};

struct capture {
	struct registry *reg;
	struct capture_opts opts;
	struct worker *w;
	size_t nw, wcap;
	_Atomic int stopping; /* the stop flag, for the dispatch loops */
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;  /* stop requests, files done, reloads */
	int stop;             /* the stop flag, under lock (cond_wait_until) */
	size_t files_pending;
	int files_failed;
	int *src_down; /* per registry source: its workers without a handle */
	size_t nsrc;
	size_t live_sources, live_down, live_ended; /* live interfaces: all, down, ended */
	int no_source_told;
};

int capture_check_filter(const char *filter, char *err, size_t errlen)
{
	struct bpf_program prog;
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN);
	if (rc) {
		snprintf(err, errlen, "invalid filter expression '%s': %s", filter, pcap_geterr(p));
		pcap_close(p);
		return -EINVAL;
	}
	pcap_freecode(&prog);
	pcap_close(p);
	return 0;
}

static int apply_filter(pcap_t *p, const char *filter, const char *name, char *err, size_t errlen)
{
	struct bpf_program prog;
	if (!filter)
		return 0;
	if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN)) {
		snprintf(err, errlen, "%s: invalid filter expression '%s': %s", name, filter,
		         pcap_geterr(p));
		return -EINVAL;
	}
	int rc = pcap_setfilter(p, &prog);
	pcap_freecode(&prog);
	if (rc) {
		snprintf(err, errlen, "%s: cannot set filter: %s", name, pcap_geterr(p));
		return -EINVAL;
	}
	return 0;
}

/* 0 when the handle's link type is one we parse, else -ENOTSUP with a
 * message naming it. */
static int check_linktype(pcap_t *p, const char *what, const char *name, char *err, size_t errlen)
{
	int dlt = pcap_datalink(p);
	if (parse_linktype_supported(dlt))
		return 0;
	const char *dn = pcap_datalink_val_to_name(dlt);
	snprintf(err, errlen, "%s %s: unsupported link type %s (%d)", what, name,
	         dn ? dn : "unknown", dlt);
	return -ENOTSUP;
}

static int activate_error(pcap_t *p, int rc, const char *ifname, char *err, size_t errlen)
{
	switch (rc) {
	case PCAP_ERROR_NO_SUCH_DEVICE:
		snprintf(err, errlen, "interface %s: no such device", ifname);
		return -ENODEV;
	case PCAP_ERROR_PERM_DENIED:
		snprintf(err, errlen,
		         "interface %s: permission denied (run as root or grant CAP_NET_RAW "
		         "and CAP_NET_ADMIN): %s",
		         ifname, pcap_geterr(p));
		return -EPERM;
	case PCAP_ERROR_IFACE_NOT_UP:
		snprintf(err, errlen, "interface %s: interface is not up", ifname);
		return -ENETDOWN;
	default:
		snprintf(err, errlen, "interface %s: %s: %s", ifname, pcap_statustostr(rc),
		         pcap_geterr(p));
		return -EIO;
	}
}

/* Creates and activates one live handle with the given snap length. */
static int open_live(struct capture *c, const char *ifname, int snaplen, pcap_t **out, char *err,
                     size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_create(ifname, ebuf);
	if (!p) {
		snprintf(err, errlen, "interface %s: %s", ifname, ebuf);
		return -EIO;
	}
	pcap_set_snaplen(p, snaplen);
	pcap_set_promisc(p, c->opts.promisc);
	pcap_set_timeout(p, BLOCK_TIMEOUT_MS);
	pcap_set_buffer_size(p, c->opts.buffer_size);
	int rc = pcap_activate(p);
	if (rc < 0) {
		rc = activate_error(p, rc, ifname, err, errlen);
		pcap_close(p);
		return rc;
	}
	if (rc > 0)
		log_warn("capture activated with a warning", "interface=%s warning=%s", ifname,
		         pcap_statustostr(rc));
	*out = p;
	return 0;
}

static int set_fanout(pcap_t *p, int group, const char *ifname, char *err, size_t errlen)
{
	int fd = pcap_get_selectable_fd(p);
	uint32_t arg = ((uint32_t)group & 0xffffu) |
	               ((uint32_t)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16);
	if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg)) {
		int e = fd < 0 ? EBADF : errno;
		snprintf(err, errlen, "interface %s: PACKET_FANOUT: %s", ifname, strerror(e));
		return -e;
	}
	return 0;
}

/* Opens w's interface ready to capture: the snap length of its link type,
 * the filter, the fanout group. 0, or a negative errno with err set. */
static int worker_open(struct worker *w, pcap_t **out, char *err, size_t errlen)
{
	struct capture *c = w->cap;
	int guess = parse_snaplen(DLT_EN10MB);
	pcap_t *p = NULL;
	int rc = open_live(c, w->name, guess, &p, err, errlen);
	if (rc)
		return rc;
	rc = check_linktype(p, "interface", w->name, err, errlen);
	if (!rc && parse_snaplen(pcap_datalink(p)) != guess) {
		/* Re-open with the snap length of this link type. */
		int snap = parse_snaplen(pcap_datalink(p));
		pcap_close(p);
		p = NULL;
		rc = open_live(c, w->name, snap, &p, err, errlen);
	}
	if (!rc)
		rc = apply_filter(p, c->opts.filter, w->name, err, errlen);
	if (!rc && c->opts.threads > 1)
		rc = set_fanout(p, w->fanout_group, w->name, err, errlen);
	if (rc) {
		if (p)
			pcap_close(p);
		return rc;
	}
	log_debug("capture opened",
	          "interface=%s linktype=%s snaplen=%d buffer_bytes=%d promisc=%d threads=%d",
	          w->name, pcap_datalink_val_to_name(pcap_datalink(p)), pcap_snapshot(p),
	          c->opts.buffer_size, c->opts.promisc, c->opts.threads);
	*out = p;
	return 0;
}

/* Installs (or, with NULL, closes) w's handle. The worker's thread only,
 * or capture_new before threads run. */
static void worker_set_pcap(struct worker *w, pcap_t *p)
{
	pthread_mutex_lock(&w->lock);
	pcap_t *old = w->pcap;
	w->pcap = p;
	if (p) {
		w->dlt = pcap_datalink(p);
		w->parse = parse_for_linktype(w->dlt);
	}
	pthread_mutex_unlock(&w->lock);
	if (old)
		pcap_close(old);
}

static struct worker *worker_add(struct capture *c, size_t src, struct acct_shard *shard,
                                 const char *name)
{
	if (c->nw == c->wcap)
		return NULL; /* sized in capture_new */
	struct worker *w = &c->w[c->nw++];
	memset(w, 0, sizeof *w);
	w->cap = c;
	w->src = src;
	w->shard = shard;
	w->name = name;
	w->ranges = registry_ranges(c->reg);
	w->layout = registry_layout(c->reg);
	pthread_mutex_init(&w->lock, NULL);
	account_batch_init(&w->batch, w->ranges);
	return w;
}

/* With c->lock held: source src lost (down = 1) or regained (down = 0) the
 * handle of one of its workers. The first loss and the last return change
 * the source's state, and are logged. */
static void source_worker_change(struct capture *c, size_t src, int down, const char *name,
                                 const char *why)
{
	int before = c->src_down[src];
	c->src_down[src] += down ? 1 : -1;
	if (before == 0 && down) {
		(void)registry_source_set_up(c->reg, src, 0);
		c->live_down++;
		if (c->opts.reopen_interval > 0)
			log_warn("interface gone, reopening it until it is back",
			         "interface=%s err=%s "
			         "reopen_interval=%gs",
			         name, why, c->opts.reopen_interval);
		else
			log_error("capture failed, the interface's series end",
			          "interface=%s err=%s", name, why);
		if (c->live_down == c->live_sources && c->opts.nfiles == 0 &&
		    c->opts.reopen_interval > 0)
			log_error("no capture source is up", "interfaces=%zu", c->live_sources);
	} else if (before == 1 && !down) {
		(void)registry_source_set_up(c->reg, src, 1);
		c->live_down--;
		log_info("interface back, capturing again", "interface=%s", name);
	}
}

static int add_interface(struct capture *c, const char *ifname, char *err, size_t errlen)
{
	if (registry_source_find(c->reg, ifname) >= 0) {
		snprintf(err, errlen, "interface %s given twice", ifname);
		return -EINVAL;
	}
	int src = registry_add_source(c->reg, ifname);
	if (src < 0) {
		snprintf(err, errlen, "out of memory");
		return src;
	}
	registry_source_set_live(c->reg, src);
	c->live_sources++;
	int group = (int)((getpid() * 31 + (int)c->live_sources) & 0xffff);
	for (int t = 0; t < c->opts.threads; t++) {
		struct acct_shard *shard = registry_add_shard(c->reg, src);
		struct worker *w = shard ? worker_add(c, (size_t)src, shard, ifname) : NULL;
		if (!w) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		w->fanout_group = group;
		pcap_t *p = NULL;
		int rc = worker_open(w, &p, err, errlen);
		if (rc == -ENODEV && c->opts.wait) {
			/* Waited for: its thread opens it when it appears. */
			if (t == 0)
				log_warn("interface not there yet, waiting for it", "interface=%s",
				         ifname);
			c->src_down[src]++;
			if (c->src_down[src] == 1) {
				(void)registry_source_set_up(c->reg, (size_t)src, 0);
				c->live_down++;
			}
			continue;
		}
		if (rc)
			return rc;
		worker_set_pcap(w, p);
	}
	return 0;
}

/* libpcap's words for a pcapng file whose interfaces have different link
 * types (it reads one link type per file). */
static int is_mixed_linktypes(const char *pcap_err)
{
	return strstr(pcap_err, "different from the type of the first interface") != NULL;
}

static int add_file(struct capture *c, const char *path, char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_open_offline(path, ebuf);
	if (!p) {
		if (is_mixed_linktypes(ebuf))
			snprintf(err, errlen,
			         "capture file %s: unsupported: its interfaces have different link "
			         "types (%s); split it per interface first",
			         path, ebuf);
		else
			snprintf(err, errlen, "cannot read capture file %s: %s", path, ebuf);
		return -EIO;
	}
	int rc = check_linktype(p, "capture file", path, err, errlen);
	if (!rc)
		rc = apply_filter(p, c->opts.filter, path, err, errlen);
	if (rc) {
		pcap_close(p);
		return rc;
	}
	char *copy = strdup(path);
	if (!copy) {
		pcap_close(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	/* Files with the same base name share one source, one shard each. */
	int src = registry_add_source(c->reg, basename(copy));
	free(copy);
	struct acct_shard *shard = src < 0 ? NULL : registry_add_shard(c->reg, src);
	struct worker *w = shard ? worker_add(c, (size_t)src, shard, path) : NULL;
	if (!w) {
		pcap_close(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	w->is_file = 1;
	log_debug("capture file opened", "file=%s linktype=%s snaplen=%d", path,
	          pcap_datalink_val_to_name(pcap_datalink(p)), pcap_snapshot(p));
	worker_set_pcap(w, p);
	c->files_pending++;
	return 0;
}

struct capture *capture_new(const struct capture_opts *opts, struct registry *reg, char *err,
                            size_t errlen)
{
	struct capture *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->reg = reg;
	c->opts = *opts;
	if (c->opts.threads < 1)
		c->opts.threads = 1;
	if (c->opts.reopen_interval < 0)
		c->opts.reopen_interval = 0;
	pthread_mutex_init(&c->lock, NULL);
	cond_init_monotonic(&c->cond);
	if (c->opts.filter && capture_check_filter(c->opts.filter, err, errlen))
		goto fail;
	c->wcap = opts->ninterfaces * (size_t)c->opts.threads + opts->nfiles;
	c->w = calloc(c->wcap ? c->wcap : 1, sizeof *c->w);
	/* Sources: the registry's so far plus at most one per handle. */
	c->nsrc = registry_nsources(reg) + c->wcap;
	c->src_down = calloc(c->nsrc ? c->nsrc : 1, sizeof *c->src_down);
	if (!c->w || !c->src_down) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < opts->ninterfaces; i++)
		if (add_interface(c, opts->interfaces[i], err, errlen))
			goto fail;
	for (size_t i = 0; i < opts->nfiles; i++)
		if (add_file(c, opts->files[i], err, errlen))
			goto fail;
	return c;
fail:
	capture_free(c);
	return NULL;
}

void capture_free(struct capture *c)
{
	if (!c)
		return;
	capture_shutdown(c, time_monotonic()); /* threads still running */
	for (size_t i = 0; i < c->nw; i++) {
		if (c->w[i].pcap)
			pcap_close(c->w[i].pcap);
		pthread_mutex_destroy(&c->w[i].lock);
	}
	free(c->w);
	free(c->src_down);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

/* Between batches (no lookup pending): moves to the ranges table of the
 * last reload, if it changed (the keys it changed end first). */
static void worker_ranges(struct worker *w)
{
	const struct ranges *r =
	    registry_shard_ranges(w->cap->reg, w->shard, w->ranges, &w->ranges_gen);
	if (UNLIKELY(r != w->ranges)) {
		w->ranges = r;
		account_batch_init(&w->batch, r);
	}
}

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct worker *w = (struct worker *)user;
	account_batch_packet(w->shard, &w->batch, w->ranges, w->layout, w->parse, bytes, h->caplen,
	                     h->len);
}

static void on_file_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	struct worker *w = (struct worker *)user;
	w->file_pkts++;
	account_batch_packet(w->shard, &w->batch, w->ranges, w->layout, w->parse, bytes, h->caplen,
	                     h->len);
}

/* The totals of this handle plus those of the handles it replaced. */
static void publish_stats(struct worker *w, int closing)
{
	struct pcap_stat st;
	if (pcap_stats(w->pcap, &st))
		return;
	uint64_t recv = w->base_recv + st.ps_recv, drop = w->base_drop + st.ps_drop,
	         ifdrop = w->base_ifdrop + st.ps_ifdrop;
	atomic_store_explicit(&w->shard->pcap_recv, recv, memory_order_relaxed);
	atomic_store_explicit(&w->shard->pcap_drop, drop, memory_order_relaxed);
	atomic_store_explicit(&w->shard->pcap_ifdrop, ifdrop, memory_order_relaxed);
	if (closing) {
		w->base_recv = recv;
		w->base_drop = drop;
		w->base_ifdrop = ifdrop;
	}
}

static void file_done(struct worker *w, int failed)
{
	struct capture *c = w->cap;
	pthread_mutex_lock(&c->lock);
	c->files_pending--;
	c->files_failed += failed;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* With c->lock held: whether w's thread has to look up from its wait (a
 * stop, or a reload published after the table it uses). */
static int worker_woken(const struct worker *w)
{
	return w->cap->stop || registry_ranges_gen(w->cap->reg) != w->ranges_gen;
}

/* The thread of a worker without a handle (a file read to its end, an
 * interface missing), until the monotonic time `until` (INFINITY: until a
 * stop): it follows reloads and, with idle expiry, runs a slice of its
 * table's scan every EXPIRY_WAIT_MS, so that its keys end as those of a
 * live thread waiting for traffic. Without idle expiry it sleeps until a
 * reload, a stop or `until`. Returns 0 when a stop was requested, else 1
 * (at `until`). */
static int worker_idle(struct worker *w, double until)
{
	struct capture *c = w->cap;
	int expiry = registry_idle_timeout(c->reg) > 0;
	for (;;) {
		worker_ranges(w);
		double now = time_monotonic();
		if (expiry)
			registry_shard_expire(c->reg, w->shard, now);
		double next = until;
		if (expiry && now + EXPIRY_WAIT_MS / 1000.0 < until)
			next = now + EXPIRY_WAIT_MS / 1000.0;
		pthread_mutex_lock(&c->lock);
		while (!worker_woken(w) && time_monotonic() < next)
			if (cond_wait_signal_until(&c->cond, &c->lock, next) == ETIMEDOUT)
				break;
		int stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			return 0;
		if (time_monotonic() >= until)
			return 1;
	}
}

static void *file_thread(void *arg)
{
	struct worker *w = arg;
	struct capture *c = w->cap;
	pthread_setname_np(pthread_self(), "capture");
	int failed = 0;
	double t0 = time_monotonic();
	for (;;) {
		worker_ranges(w);
		int n = pcap_dispatch(w->pcap, FILE_BATCH, on_file_packet, (u_char *)w);
		account_batch_flush(w->shard, &w->batch, w->layout);
		atomic_store_explicit(&w->shard->pcap_recv, w->file_pkts, memory_order_relaxed);
		if (n == 0 || n == PCAP_ERROR_BREAK)
			break;
		if (n == PCAP_ERROR) {
			/* What was read before stays accounted. */
			const char *e = pcap_geterr(w->pcap);
			if (is_mixed_linktypes(e))
				log_error("capture file not read to its end: unsupported: its "
				          "interfaces have different link types (libpcap reads one "
				          "link type per file); split it per interface first",
				          "file=%s packets_read=%llu err=%s", w->name,
				          (unsigned long long)w->file_pkts, e);
			else
				log_error("capture file not read to its end",
				          "file=%s "
				          "packets_read=%llu err=%s",
				          w->name, (unsigned long long)w->file_pkts, e);
			failed = 1;
			break;
		}
	}
	if (!failed)
		log_info("capture file read", "file=%s packets=%llu seconds=%.3f", w->name,
		         (unsigned long long)w->file_pkts, time_monotonic() - t0);
	worker_set_pcap(w, NULL); /* read: its descriptor and buffer go */
	if (c->opts.read_once) {
		/* what it read stays as it is for the one output */
		registry_shard_ranges_idle(w->shard);
		file_done(w, failed);
		return NULL;
	}
	file_done(w, failed);
	/* its keys end when idle, and reloads apply to them, until the stop */
	(void)worker_idle(w, INFINITY);
	return NULL;
}

/* w has no handle: opens its interface again every reopen_interval until
 * it is there (1) or a stop is requested (0). */
static int worker_reopen(struct worker *w)
{
	struct capture *c = w->cap;
	char err[CAPTURE_ERR_MAX];
	while (worker_idle(w, time_monotonic() + c->opts.reopen_interval)) {
		pcap_t *p = NULL;
		/* opening may block: meanwhile a reload does not wait for it */
		registry_shard_ranges_idle(w->shard);
		int rc = worker_open(w, &p, err, sizeof err);
		if (rc) {
			log_debug("interface still missing", "interface=%s err=%s", w->name, err);
			continue;
		}
		worker_set_pcap(w, p);
		/* A stop requested before the handle was installed did not
		 * break it: look again. */
		if (atomic_load(&c->stopping))
			return 0;
		pthread_mutex_lock(&c->lock);
		source_worker_change(c, w->src, 0, w->name, NULL);
		pthread_mutex_unlock(&c->lock);
		return 1;
	}
	return 0;
}

/* w's handle failed: close it, mark it (and maybe its source) down. */
static void worker_lost(struct worker *w)
{
	struct capture *c = w->cap;
	char why[PCAP_ERRBUF_SIZE];
	snprintf(why, sizeof why, "%s", pcap_geterr(w->pcap));
	publish_stats(w, 1);
	worker_set_pcap(w, NULL);
	pthread_mutex_lock(&c->lock);
	source_worker_change(c, w->src, 1, w->name, why);
	pthread_mutex_unlock(&c->lock);
}

/* With reopening off, a worker that lost its handle ends; the last live
 * one without files left tells the owner. Its thread then waits for the
 * stop in worker_idle (its keys end when idle). */
static void worker_ended(struct worker *w)
{
	struct capture *c = w->cap;
	int tell = 0;
	pthread_mutex_lock(&c->lock);
	c->live_ended++;
	if (c->live_ended == c->nw && !c->no_source_told && !c->stop) {
		c->no_source_told = 1;
		tell = 1;
	}
	pthread_mutex_unlock(&c->lock);
	if (tell) {
		log_error("no capture source is left", "interfaces=%zu", c->live_sources);
		if (c->opts.on_no_source)
			c->opts.on_no_source(c->opts.arg);
	}
}

/* Waits up to EXPIRY_WAIT for the capture socket to have a ready block
 * (or an error, which pcap_dispatch then reports). 0 on a timeout. */
static int ring_ready(struct worker *w)
{
	struct pollfd p = {.fd = pcap_get_selectable_fd(w->pcap), .events = POLLIN};
	if (p.fd < 0)
		return 1;
	return poll(&p, 1, EXPIRY_WAIT_MS) != 0;
}

static void *live_thread(void *arg)
{
	struct worker *w = arg;
	pthread_setname_np(pthread_self(), "capture");
	struct capture *c = w->cap;
	double last = 0;
	int expiry = registry_idle_timeout(c->reg) > 0;
	if (!w->pcap) {
		if (!worker_reopen(w))
			return NULL; /* waited for, and stopped before it appeared */
	}
	for (;;) {
		/* a reload's table, here where no lookup is pending */
		worker_ranges(w);
		/* With idle expiry, wait for a ready block here with a timeout: a
		 * blocking pcap_dispatch on TPACKET_V3 sleeps until traffic comes
		 * (the kernel's block timer does not wake an empty ring), and the
		 * keys of an idle link must still end. */
		if (expiry && !ring_ready(w)) {
			if (atomic_load_explicit(&c->stopping, memory_order_relaxed))
				break;
			registry_shard_expire(c->reg, w->shard, time_monotonic());
			continue;
		}
		int n = pcap_dispatch(w->pcap, -1, on_packet, (u_char *)w);
		account_batch_flush(w->shard, &w->batch, w->layout);
		if (atomic_load(&c->stopping))
			break;
		if (n == PCAP_ERROR_BREAK) {
			/* woken for a reload (capture_ranges_changed), else a stop */
			if (atomic_exchange(&w->woken, 0) && !atomic_load(&c->stopping))
				continue;
			break;
		}
		if (n == PCAP_ERROR) {
			/* Typically the interface was removed. */
			worker_lost(w);
			if (c->opts.reopen_interval <= 0) {
				worker_ended(w);
				(void)worker_idle(w, INFINITY);
				return NULL;
			}
			if (!worker_reopen(w))
				return NULL;
			last = 0;
			continue;
		}
		double now = time_monotonic();
		/* idle expiry (--address.idle-timeout): a slice of the scan, here
		 * where no lookup is pending */
		registry_shard_expire(c->reg, w->shard, now);
		if (now - last >= STATS_INTERVAL) {
			publish_stats(w, 0);
			last = now;
		}
	}
	publish_stats(w, 0);
	return NULL;
}

int capture_start(struct capture *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->nw; i++) {
		struct worker *w = &c->w[i];
		int rc =
		    pthread_create(&w->thread, NULL, w->is_file ? file_thread : live_thread, w);
		if (rc) {
			snprintf(err, errlen, "cannot start capture thread: %s", strerror(rc));
			return -rc;
		}
		w->started = 1;
	}
	return 0;
}

int capture_wait_files(struct capture *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->files_pending > 0 && !c->stop)
		pthread_cond_wait(&c->cond, &c->lock);
	int failed = c->files_failed;
	pthread_mutex_unlock(&c->lock);
	return failed;
}

void capture_request_stop(struct capture *c)
{
	atomic_store(&c->stopping, 1);
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < c->nw; i++) {
		pthread_mutex_lock(&c->w[i].lock);
		if (c->w[i].pcap)
			pcap_breakloop(c->w[i].pcap);
		pthread_mutex_unlock(&c->w[i].lock);
	}
}

void capture_ranges_changed(struct capture *c)
{
	if (!c)
		return;
	/* the threads without a handle (worker_idle) */
	pthread_mutex_lock(&c->lock);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < c->nw; i++) {
		struct worker *w = &c->w[i];
		if (w->is_file)
			continue; /* reads on: it looks between batches */
		pthread_mutex_lock(&w->lock);
		if (w->pcap) {
			atomic_store(&w->woken, 1);
			pcap_breakloop(w->pcap);
		}
		pthread_mutex_unlock(&w->lock);
	}
}

void capture_shutdown(struct capture *c, double deadline)
{
	(void)deadline; /* every thread wakes at once: see capture.h */
	if (!c)
		return;
	capture_request_stop(c);
	for (size_t i = 0; i < c->nw; i++)
		if (c->w[i].started) {
			pthread_join(c->w[i].thread, NULL);
			c->w[i].started = 0;
		}
}
