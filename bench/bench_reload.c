/* bench_reload: what applying changed ranges costs a capture thread.
 *
 *   bench_reload [RUNS]      (default 5)
 *
 * A registry with two ranges (10.0.0.0/9 c=a, 10.128.0.0/9 c=b) and one
 * shard holding 1M IPv4 keys spread over both. Per run, the capture
 * thread's move to a reload's table (registry_shard_ranges: the pause it
 * makes in capture) is timed twice: a new table with the same label sets
 * (nothing ends: one lookup per key) and one that relabels the second
 * range (half the keys end: index deletion, address set, caps, ended
 * ring). Median of RUNS, in ms and ns per key. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/registry.h"
#include "bench_util.h"

#define KEYS 1000000u

static struct ranges *table(const char *a, const char *b)
{
	char err[256];
	struct ranges *r = malloc(sizeof *r);
	if (!r)
		abort();
	ranges_init(r);
	if (ranges_add(r, a, err, sizeof err) || ranges_add(r, b, err, sizeof err) ||
	    ranges_build(r))
		abort();
	return r;
}

static void table_free(struct ranges *r)
{
	ranges_free(r);
	free(r);
}

/* The seconds the shard's thread takes to move to table t. */
static double move_to(struct registry *reg, struct acct_shard *sh, struct ranges *t, uint64_t *gen)
{
	if (registry_ranges_map(reg, t))
		abort();
	registry_ranges_publish(reg, t);
	double t0 = time_monotonic();
	(void)registry_shard_ranges(reg, sh, NULL, gen);
	return time_monotonic() - t0;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 5;
	struct histogram_layout layout;
	char err[256];
	if (runs < 1 || runs > 64 ||
	    histogram_layout_parse(&layout, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err))
		return 2;
	double same[64], half[64];
	for (int run = 0; run < runs; run++) {
		struct ranges *t0 = table("10.0.0.0/9:c=a", "10.128.0.0/9:c=b");
		struct registry reg;
		if (registry_init(&reg, &layout, t0, 4 * KEYS))
			abort();
		int src = registry_add_source(&reg, "eth0");
		struct acct_shard *sh = src < 0 ? NULL : registry_add_shard(&reg, src);
		if (!sh)
			abort();
		for (uint32_t i = 0; i < KEYS; i++) {
			struct addr_key k;
			memset(&k, 0, sizeof k);
			uint32_t a = 10u << 24 | (i * 7919u & 0xffffff); /* distinct */
			uint32_t n = htonl(a);
			memcpy(k.addr, &n, 4);
			k.meta = addr_key_meta(4, DIR_RX, PROTO_TCP);
			k.range = ranges_val_group(ranges_val4(t0, a));
			counter_t *h = addrtable_get(&sh->table, &k);
			if (!h)
				abort();
			counter_add(h, 100);
		}
		uint64_t gen = 0;
		struct ranges *t1 = table("10.0.0.0/9:c=a", "10.128.0.0/9:c=b");
		struct ranges *t2 = table("10.0.0.0/9:c=a", "10.128.0.0/9:c=z");
		same[run] = move_to(&reg, sh, t1, &gen);
		size_t live = addrtable_live_count(&sh->table);
		half[run] = move_to(&reg, sh, t2, &gen);
		size_t ended = live - addrtable_live_count(&sh->table);
		if (live != KEYS || ended < KEYS / 2 - KEYS / 100 || ended > KEYS / 2 + KEYS / 100)
			abort();
		registry_free(&reg);
		table_free(t0);
		table_free(t1);
		table_free(t2);
	}
	double ms = median(same, runs), mh = median(half, runs);
	printf("1M keys, median of %d: move to a table with the same label sets %.1f ms (%.1f "
	       "ns/key); relabel half (500k keys end) %.1f ms (%.0f ns/ended key)\n",
	       runs, ms * 1e3, ms * 1e9 / KEYS, mh * 1e3, mh * 1e9 / (KEYS / 2));
	return 0;
}
