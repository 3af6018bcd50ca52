/* bench_expiry: what --address.idle-timeout costs.
 *
 *   bench_expiry [RUNS]      (default 7)
 *
 * 1. Per packet, side by side in one process: the same traffic (2^20
 *    in-memory Ethernet frames between 65,536 IPv4 addresses of one range,
 *    random order) through the capture threads' batched accounting path,
 *    with expiry off, with a 1 s timeout (the shortest: every key is
 *    looked at every 62.5 ms, the most scanning) and with 60 s (every
 *    3.75 s), registry_shard_expire
 *    called every 4096 frames as a capture thread does after a dispatch;
 *    every key stays active, so the figure is the scan's share. Median
 *    ns/packet of RUNS passes, alternating.
 * 2. The scan itself on 1M IPv4 keys: a pass that retires nothing, one
 *    that retires every key (index deletion, address set, caps), and the
 *    inserts that reuse the retired entries against inserts into a fresh
 *    table, in ns per key (best of RUNS). */
#include <arpa/inet.h>
#include <pcap/dlt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/account.h"
#include "bench_util.h"

#define FRAMES   (1u << 20)
#define FRAME    64
#define ADDRS    65536u
#define DISPATCH 4096u /* frames between two expiry slices */
#define KEYS     1000000u

static void addr4(uint32_t i, uint8_t *out)
{
	uint32_t a = htonl(10u << 24 | i << 8 | (i * 37u & 0xff));
	memcpy(out, &a, 4);
}

static uint8_t *make_frames(void)
{
	uint8_t *f = calloc(FRAMES, FRAME);
	if (!f)
		abort();
	for (uint32_t n = 0; n < FRAMES; n++) {
		uint8_t *p = f + (size_t)n * FRAME;
		p[12] = 0x08;
		p[14] = 0x45;
		p[14 + 8] = 64;
		p[14 + 9] = 6;
		addr4((uint32_t)(rnd() % ADDRS), p + 14 + 12);
		addr4((uint32_t)(rnd() % ADDRS), p + 14 + 16);
	}
	return f;
}

struct setup {
	struct registry reg;
	struct acct_shard *shard;
	struct acct_batch batch;
	double pass[64];
};

static double run_pass(struct setup *s, const struct ranges *r, const struct histogram_layout *l,
                       parse_fn parse, const uint8_t *frames)
{
	double t0 = time_monotonic();
	for (uint32_t n = 0; n < FRAMES; n++) {
		account_batch_packet(s->shard, &s->batch, r, l, parse, frames + (size_t)n * FRAME,
		                     FRAME, 594);
		if ((n + 1) % DISPATCH == 0) {
			account_batch_flush(s->shard, &s->batch, l);
			registry_shard_expire(&s->reg, s->shard, time_monotonic());
		}
	}
	account_batch_flush(s->shard, &s->batch, l);
	return time_monotonic() - t0;
}

static struct addr_key key_of(uint32_t i)
{
	struct addr_key k;
	memset(&k, 0, sizeof k);
	uint32_t a = i * 2654435761u;
	memcpy(k.addr, &a, 4);
	k.meta = addr_key_meta(4, DIR_RX, PROTO_TCP);
	return k;
}

/* Inserts keys [from, from + KEYS) with one packet each; seconds. */
static double insert_keys(struct addrtable *t, uint32_t from)
{
	double t0 = time_monotonic();
	for (uint32_t i = from; i < from + KEYS; i++) {
		struct addr_key k = key_of(i);
		counter_t *h = addrtable_get(t, &k);
		if (!h)
			abort();
		counter_add(h, 100);
	}
	return time_monotonic() - t0;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 7;
	struct histogram_layout layout;
	struct ranges ranges;
	char err[256];
	if (runs < 1 || runs > 64 ||
	    histogram_layout_parse(&layout, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err))
		return 2;
	ranges_init(&ranges);
	if (ranges_add(&ranges, "10.0.0.0/8", err, sizeof err) || ranges_build(&ranges))
		return 2;
	parse_fn parse = parse_for_linktype(DLT_EN10MB);
	uint8_t *frames = make_frames();
	static struct setup s[3];
	static const double timeouts[3] = {0, 1.0, 60.0};
	for (int k = 0; k < 3; k++) {
		if (registry_init(&s[k].reg, &layout, &ranges, 10 * ADDRS))
			abort();
		registry_set_idle_timeout(&s[k].reg, timeouts[k]);
		int src = registry_add_source(&s[k].reg, "bench");
		if (src < 0 || !(s[k].shard = registry_add_shard(&s[k].reg, src)))
			abort();
		account_batch_init(&s[k].batch, &ranges);
		run_pass(&s[k], &ranges, &layout, parse, frames); /* creates the histograms */
	}
	for (int i = 0; i < runs; i++)
		for (int k = 0; k < 3; k++)
			s[k].pass[i] = run_pass(&s[k], &ranges, &layout, parse, frames);
	double ns[3];
	for (int k = 0; k < 3; k++) {
		ns[k] = median(s[k].pass, runs) / FRAMES * 1e9;
		if (counter_read(&s[k].shard->expired) || counter_read(&s[k].shard->untracked)) {
			fprintf(stderr,
			        "bench_expiry: a key of the traffic ended or went untracked\n");
			return 1;
		}
	}
	printf("1. per packet, %u frames between %u IPv4 addresses, %d runs (medians):\n"
	       "   expiry off %.1f ns/packet; 1 s timeout %.1f ns/packet, ratio %.3f; 60 s timeout "
	       "%.1f ns/packet, ratio %.3f\n",
	       FRAMES, ADDRS, runs, ns[0], ns[1], ns[1] / ns[0], ns[2], ns[2] / ns[0]);
	for (int k = 0; k < 3; k++)
		registry_free(&s[k].reg);

	/* 2. the scan on its own */
	double scan = 1e9, retire = 1e9, reuse = 1e9, fresh = 1e9;
	for (int i = 0; i < runs && i < 3; i++) {
		static struct addrtable t, f;
		static _Atomic size_t tracked, ftracked;
		struct addrtable_grace g;
		addrtable_grace_init(&g);
		atomic_store(&tracked, 0);
		atomic_store(&ftracked, 0);
		if (addrtable_init(&t, layout.words, 2 * KEYS, &tracked, 2 * KEYS) ||
		    addrtable_set_expiry(&t, &g, 1.0, 0) ||
		    addrtable_init(&f, layout.words, 2 * KEYS, &ftracked, 2 * KEYS))
			abort();
		insert_keys(&t, 0);
		(void)addrtable_expire(&t, 1000, KEYS); /* first look at each key */
		double t0 = time_monotonic();
		size_t x = addrtable_expire(&t, 1500, KEYS); /* none idle long enough */
		double d = time_monotonic() - t0;
		scan = d < scan ? d : scan;
		t0 = time_monotonic();
		x += addrtable_expire(&t, 2500, KEYS); /* all idle for 1.5 s */
		d = time_monotonic() - t0;
		retire = d < retire ? d : retire;
		(void)addrtable_expire(&t, 2600, 0); /* no reader: the grace passes */
		(void)addrtable_expire(&t, 2700, 0);
		if (x != KEYS || t.nfree != KEYS)
			abort();
		d = insert_keys(&t, KEYS);
		reuse = d < reuse ? d : reuse;
		if (addrtable_count(&t) != KEYS)
			abort(); /* every insert took a retired entry */
		d = insert_keys(&f, KEYS);
		fresh = d < fresh ? d : fresh;
		addrtable_free(&t);
		addrtable_free(&f);
	}
	printf("2. %u IPv4 keys (best of %d): a scan pass %.1f ns/key, a pass retiring every key "
	       "%.1f ns/key;\n   inserts reusing retired entries %.1f ns/key, into a fresh table "
	       "%.1f ns/key\n",
	       KEYS, runs < 3 ? runs : 3, scan / KEYS * 1e9, retire / KEYS * 1e9,
	       reuse / KEYS * 1e9, fresh / KEYS * 1e9);
	free(frames);
	ranges_free(&ranges);
	return 0;
}
