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
 * capture_stop calls pcap_breakloop, which wakes a blocked poll (libpcap >=
 * 1.10). */
#include "promacct/capture.h"

#include <errno.h>
#include <libgen.h>
#include <linux/if_packet.h>
#include <pcap/pcap.h>
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
#define FILE_BATCH       4096 /* packets per pcap_dispatch on a file */

struct worker {
	struct capture *cap;
	struct acct_shard *shard;
	size_t src; /* index of its source in the registry */
	const struct ranges *ranges;
	const struct histogram_layout *layout;
	pcap_t *pcap;
	int dlt;
	parse_fn parse; /* the parser of dlt */
	int is_file;
	char *name; /* interface or file path, for messages */
	pthread_t thread;
	_Atomic int started;
	uint64_t file_pkts;      /* packets read from a file (thread-private) */
	struct acct_batch batch; /* queued address lookups (thread-private) */
};

struct capture {
	struct registry *reg;
	struct capture_opts opts;
	struct worker *w;
	size_t nw;
	_Atomic int stopping;
	pthread_mutex_t files_lock;
	pthread_cond_t files_cond;
	size_t files_pending;
	int files_failed;
	int fanout_seq;
};

struct capture *capture_new(struct registry *reg, const struct capture_opts *opts)
{
	struct capture *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->reg = reg;
	c->opts = *opts;
	if (c->opts.threads < 1)
		c->opts.threads = 1;
	pthread_mutex_init(&c->files_lock, NULL);
	pthread_cond_init(&c->files_cond, NULL);
	return c;
}

void capture_free(struct capture *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nw; i++) {
		if (c->w[i].pcap)
			pcap_close(c->w[i].pcap);
		free(c->w[i].name);
	}
	free(c->w);
	pthread_mutex_destroy(&c->files_lock);
	pthread_cond_destroy(&c->files_cond);
	free(c);
}

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

static struct worker *worker_add(struct capture *c)
{
	struct worker *nw = realloc(c->w, (c->nw + 1) * sizeof *nw);
	if (!nw)
		return NULL;
	c->w = nw;
	memset(&c->w[c->nw], 0, sizeof c->w[c->nw]);
	c->w[c->nw].cap = c;
	c->w[c->nw].ranges = registry_ranges(c->reg);
	c->w[c->nw].layout = registry_layout(c->reg);
	account_batch_init(&c->w[c->nw].batch, c->w[c->nw].ranges);
	return &c->w[c->nw++];
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
		log_warn("capture activated with a warning", "interface=%s warning=\"%s\"", ifname,
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
		snprintf(err, errlen, "interface %s: PACKET_FANOUT: %s", ifname, strerror(errno));
		return -errno;
	}
	return 0;
}

int capture_add_interface(struct capture *c, const char *ifname, char *err, size_t errlen)
{
	int rc, src;
	int guess = parse_snaplen(DLT_EN10MB);

	if (registry_source_find(c->reg, ifname) >= 0) {
		snprintf(err, errlen, "interface %s given twice", ifname);
		return -EINVAL;
	}
	src = registry_add_source(c->reg, ifname);
	if (src < 0) {
		snprintf(err, errlen, "out of memory");
		return src;
	}
	registry_source_set_live(c->reg, src);
	int group = (int)((getpid() * 31 + ++c->fanout_seq) & 0xffff);
	for (int t = 0; t < c->opts.threads; t++) {
		pcap_t *p = NULL;
		rc = open_live(c, ifname, guess, &p, err, errlen);
		if (rc)
			return rc;
		int dlt = pcap_datalink(p);
		if (check_linktype(p, "interface", ifname, err, errlen)) {
			pcap_close(p);
			return -ENOTSUP;
		}
		if (parse_snaplen(dlt) != guess) {
			/* Re-open with the snap length of this link type. */
			pcap_close(p);
			p = NULL;
			rc = open_live(c, ifname, parse_snaplen(dlt), &p, err, errlen);
			if (rc)
				return rc;
		}
		struct worker *w = worker_add(c);
		if (!w) {
			pcap_close(p);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		w->pcap = p;
		w->dlt = pcap_datalink(p);
		w->parse = parse_for_linktype(w->dlt);
		w->shard = registry_add_shard(c->reg, src);
		w->src = (size_t)src;
		w->name = strdup(ifname);
		if (!w->name || !w->shard) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		rc = apply_filter(p, c->opts.filter, ifname, err, errlen);
		if (rc)
			return rc;
		if (c->opts.threads > 1) {
			rc = set_fanout(p, group, ifname, err, errlen);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int capture_add_file(struct capture *c, const char *path, char *err, size_t errlen)
{
	char ebuf[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p = pcap_open_offline(path, ebuf);
	if (!p) {
		snprintf(err, errlen, "cannot read capture file %s: %s", path, ebuf);
		return -EIO;
	}
	int dlt = pcap_datalink(p);
	if (check_linktype(p, "capture file", path, err, errlen)) {
		pcap_close(p);
		return -ENOTSUP;
	}
	int rc = apply_filter(p, c->opts.filter, path, err, errlen);
	if (rc) {
		pcap_close(p);
		return rc;
	}
	char *copy = strdup(path);
	if (!copy) {
		pcap_close(p);
		return -ENOMEM;
	}
	/* Files with the same base name share one source, one shard each. */
	int src = registry_add_source(c->reg, basename(copy));
	struct acct_shard *shard = src < 0 ? NULL : registry_add_shard(c->reg, src);
	if (!shard) {
		free(copy);
		pcap_close(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	free(copy);
	struct worker *w = worker_add(c);
	if (!w) {
		pcap_close(p);
		return -ENOMEM;
	}
	w->pcap = p;
	w->dlt = dlt;
	w->parse = parse_for_linktype(dlt);
	w->is_file = 1;
	w->shard = shard;
	w->name = strdup(path);
	c->files_pending++;
	return w->name ? 0 : -ENOMEM;
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

static void publish_stats(struct worker *w)
{
	struct pcap_stat st;
	if (pcap_stats(w->pcap, &st))
		return;
	atomic_store_explicit(&w->shard->pcap_recv, st.ps_recv, memory_order_relaxed);
	atomic_store_explicit(&w->shard->pcap_drop, st.ps_drop, memory_order_relaxed);
	atomic_store_explicit(&w->shard->pcap_ifdrop, st.ps_ifdrop, memory_order_relaxed);
}

static void file_done(struct worker *w, int failed)
{
	struct capture *c = w->cap;
	pthread_mutex_lock(&c->files_lock);
	c->files_pending--;
	c->files_failed += failed;
	pthread_cond_broadcast(&c->files_cond);
	pthread_mutex_unlock(&c->files_lock);
}

static void *file_thread(void *arg)
{
	struct worker *w = arg;
	int failed = 0;
	double t0 = time_monotonic();
	for (;;) {
		int n = pcap_dispatch(w->pcap, FILE_BATCH, on_file_packet, (u_char *)w);
		account_batch_flush(w->shard, &w->batch, w->layout);
		atomic_store_explicit(&w->shard->pcap_recv, w->file_pkts, memory_order_relaxed);
		if (n == 0 || n == PCAP_ERROR_BREAK)
			break;
		if (n == PCAP_ERROR) {
			log_error("error reading capture file", "file=\"%s\" err=\"%s\"", w->name,
			          pcap_geterr(w->pcap));
			failed = 1;
			break;
		}
	}
	log_info("capture file read", "file=\"%s\" packets=%llu seconds=%.3f", w->name,
	         (unsigned long long)w->file_pkts, time_monotonic() - t0);
	file_done(w, failed);
	return NULL;
}

static void *live_thread(void *arg)
{
	struct worker *w = arg;
	double last = 0;
	for (;;) {
		int n = pcap_dispatch(w->pcap, -1, on_packet, (u_char *)w);
		account_batch_flush(w->shard, &w->batch, w->layout);
		if (n == PCAP_ERROR_BREAK ||
		    atomic_load_explicit(&w->cap->stopping, memory_order_relaxed))
			break;
		if (n == PCAP_ERROR) {
			/* Typically the interface was removed. Its series end (the
			 * scrape page drops them, remote write sends stale markers);
			 * the agent goes on with its other sources. */
			log_error("capture failed, the interface's series end",
			          "interface=%s err=\"%s\"", w->name, pcap_geterr(w->pcap));
			(void)registry_source_set_up(w->cap->reg, w->src, 0);
			break;
		}
		double now = time_monotonic();
		if (now - last >= STATS_INTERVAL) {
			publish_stats(w);
			last = now;
		}
	}
	publish_stats(w);
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
	pthread_mutex_lock(&c->files_lock);
	while (c->files_pending > 0 && !atomic_load(&c->stopping))
		pthread_cond_wait(&c->files_cond, &c->files_lock);
	int failed = c->files_failed;
	pthread_mutex_unlock(&c->files_lock);
	return failed;
}

void capture_request_stop(struct capture *c)
{
	atomic_store(&c->stopping, 1);
	for (size_t i = 0; i < c->nw; i++)
		if (atomic_load(&c->w[i].started))
			pcap_breakloop(c->w[i].pcap);
	pthread_mutex_lock(&c->files_lock);
	pthread_cond_broadcast(&c->files_cond);
	pthread_mutex_unlock(&c->files_lock);
}

void capture_stop(struct capture *c)
{
	capture_request_stop(c);
	for (size_t i = 0; i < c->nw; i++)
		if (c->w[i].started) {
			pthread_join(c->w[i].thread, NULL);
			c->w[i].started = 0;
		}
}
