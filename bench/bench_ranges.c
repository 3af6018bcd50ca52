/* bench_ranges: range load time and per-packet cost, 1 range against many.
 *
 *   bench_ranges [RANGES] [RUNS] [LAYOUT]   (defaults 100000, 7, tiled)
 *
 * Two configurations account the same traffic side by side in one process:
 * one range (10.0.0.0/8, 2001:db8::/32) and RANGES ranges that cut the same
 * space into equal pieces, each with its own customer label (so every
 * address is accounted in both, and only the range lookup differs). LAYOUT
 * tiled: the ranges cover the space; holes: an address of every /16 (a /64
 * of every range's first /48) is in no range, where no traffic goes;
 * rollup: both configurations roll up, IPv4 at /28 (the ranges aligned to
 * it), IPv6 at /64. Load: the ranges parsed from -r SPEC text and built,
 * median of RUNS. Per
 * packet: 2^20 in-memory Ethernet frames between 65,536 IPv4 addresses (one
 * in each /24 of 10/8, in random order: with many ranges nearly every
 * lookup lands in another range than the previous one, the worst case for
 * the capture thread's hint), or the same over IPv6 /48s, through the
 * capture threads' batched accounting path (parse, range lookup, address
 * table, histogram) after a warm-up pass has created every histogram;
 * median ns/packet of RUNS passes, the two configurations alternating. */
#include <arpa/inet.h>
#include <pcap/dlt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/account.h"
#include "bench_util.h"

#define FRAMES (1u << 20)
#define FRAME  64
#define ADDRS  65536u

/* The address of traffic address i: one per /24 of 10/8 (v4), one per /48
 * of 2001:db8::/32 (v6). */
static void traffic_addr(int v6, uint32_t i, uint8_t *out)
{
	if (!v6) {
		uint32_t a = htonl(10u << 24 | i << 8 | (i * 37u & 0xff));
		memcpy(out, &a, 4);
		return;
	}
	memset(out, 0, 16);
	out[0] = 0x20, out[1] = 0x01, out[2] = 0x0d, out[3] = 0xb8;
	out[4] = (uint8_t)(i >> 8);
	out[5] = (uint8_t)i;
	out[15] = (uint8_t)(i * 37u);
}

static uint8_t *make_frames(int v6)
{
	uint8_t *f = calloc(FRAMES, FRAME);
	uint32_t *perm = malloc(ADDRS * sizeof *perm);
	if (!f || !perm)
		abort();
	for (uint32_t i = 0; i < ADDRS; i++)
		perm[i] = i;
	for (uint32_t i = ADDRS - 1; i > 0; i--) {
		uint32_t j = (uint32_t)(rnd() % (i + 1)), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	for (uint32_t n = 0; n < FRAMES; n++) {
		uint8_t *p = f + (size_t)n * FRAME;
		p[12] = v6 ? 0x86 : 0x08;
		p[13] = v6 ? 0xdd : 0x00;
		uint32_t s = perm[n % ADDRS], d = perm[(uint32_t)(rnd() % ADDRS)];
		if (v6) {
			p[14] = 0x60;
			p[14 + 6] = 6; /* TCP */
			p[14 + 7] = 64;
			traffic_addr(1, s, p + 14 + 8);
			traffic_addr(1, d, p + 14 + 24);
		} else {
			p[14] = 0x45;
			p[14 + 8] = 64;
			p[14 + 9] = 6;
			traffic_addr(0, s, p + 14 + 12);
			traffic_addr(0, d, p + 14 + 16);
		}
	}
	free(perm);
	return f;
}

enum layout { TILED, HOLES, ROLLUP };
static enum layout layout_kind = TILED;

/* Appends one -r spec (grows *specs). */
static void push_spec(char ***specs, size_t *n, size_t *cap, const char *text)
{
	if (*n == *cap) {
		*cap = *cap ? 2 * *cap : 1024;
		*specs = realloc(*specs, *cap * sizeof **specs);
		if (!*specs)
			abort();
	}
	if (!((*specs)[(*n)++] = strdup(text)))
		abort();
}

static void push4(char ***specs, size_t *n, size_t *cap, uint32_t a, uint32_t b, size_t i)
{
	char buf[160];
	snprintf(buf, sizeof buf, "%u.%u.%u.%u-%u.%u.%u.%u:customer=c%zu", a >> 24, a >> 16 & 255,
	         a >> 8 & 255, a & 255, b >> 24, b >> 16 & 255, b >> 8 & 255, b & 255, i);
	push_spec(specs, n, cap, buf);
}

/* The -r specs of n ranges cutting 10/8 (v4) or 2001:db8::/32 (v6), one
 * label each (*count: the specs made). HOLES: without the address
 * x.y.255.220 of every /16 (IPv4) and the second /64 of the first /48 of
 * every range (IPv6), where no traffic goes (the ranges around them keep
 * the label). ROLLUP: IPv4 ranges aligned to /28 (they roll up at 28). */
static char **make_specs(int v6, size_t n, size_t *count)
{
	char **specs = NULL;
	size_t cnt = 0, cap = 0;
	for (size_t i = 0; i < n; i++) {
		char buf[160];
		if (n == 1) {
			snprintf(buf, sizeof buf, "%s:customer=all",
			         v6 ? "2001:db8::/32" : "10.0.0.0/8");
			push_spec(&specs, &cnt, &cap, buf);
		} else if (!v6) {
			uint32_t span = (1u << 24) / (uint32_t)n;
			if (layout_kind == ROLLUP)
				span &= ~15u;
			uint32_t a = (10u << 24) + (uint32_t)i * span;
			uint32_t b = i + 1 == n ? (11u << 24) - 1 : a + span - 1;
			while (layout_kind == HOLES) {
				uint32_t hole = (a & 0xffff0000u) | 0xffdcu;
				if (hole < a)
					hole += 0x10000u;
				if (hole > b)
					break;
				if (hole > a)
					push4(&specs, &cnt, &cap, a, hole - 1, i);
				a = hole + 1;
				if (a > b)
					break;
			}
			if (a <= b)
				push4(&specs, &cnt, &cap, a, b, i);
		} else {
			uint32_t span = 65536u / (uint32_t)n ? 65536u / (uint32_t)n : 1;
			uint32_t a = (uint32_t)i * span % 65536u, b = a + span - 1;
			if (layout_kind == HOLES) {
				snprintf(buf, sizeof buf,
				         "[2001:db8:%x::]-[2001:db8:%x:0:ffff:ffff:ffff:ffff]:"
				         "customer=c%zu",
				         a, a, i);
				push_spec(&specs, &cnt, &cap, buf);
				snprintf(buf, sizeof buf,
				         "[2001:db8:%x:2::]-[2001:db8:%x:ffff:ffff:ffff:ffff:ffff]:"
				         "customer=c%zu",
				         a, b, i);
			} else {
				snprintf(buf, sizeof buf,
				         "[2001:db8:%x::]-[2001:db8:%x:ffff:ffff:ffff:ffff:ffff]:"
				         "customer=c%zu",
				         a, b, i);
			}
			push_spec(&specs, &cnt, &cap, buf);
		}
	}
	*count = cnt;
	return specs;
}

static double load(struct ranges *r, char **specs, size_t n, int v6)
{
	char err[256];
	double t0 = time_monotonic();
	ranges_init(r);
	for (size_t i = 0; i < n; i++) {
		if (ranges_add(r, specs[i], err, sizeof err)) {
			fprintf(stderr, "bench_ranges: %s\n", err);
			exit(1);
		}
		if (layout_kind == ROLLUP) /* -r has no granularity: as a file's */
			r->v[r->n - 1].granularity = v6 ? 64 : 28;
	}
	if (ranges_build(r))
		abort();
	return time_monotonic() - t0;
}

struct setup {
	struct ranges ranges;
	struct registry reg;
	struct acct_shard *shard;
	struct acct_batch batch;
	double load[64], pass[64];
};

static double run_pass(struct setup *s, const struct histogram_layout *l, parse_fn parse,
                       const uint8_t *frames)
{
	double t0 = time_monotonic();
	for (uint32_t n = 0; n < FRAMES; n++)
		account_batch_packet(s->shard, &s->batch, &s->ranges, l, parse,
		                     frames + (size_t)n * FRAME, FRAME, 594);
	account_batch_flush(s->shard, &s->batch, l);
	return time_monotonic() - t0;
}

int main(int argc, char **argv)
{
	size_t many = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	int runs = argc > 2 ? atoi(argv[2]) : 7;
	const char *kind = argc > 3 ? argv[3] : "tiled";
	if (!strcmp(kind, "holes"))
		layout_kind = HOLES;
	else if (!strcmp(kind, "rollup"))
		layout_kind = ROLLUP;
	else if (strcmp(kind, "tiled"))
		return 2;
	struct histogram_layout layout;
	char err[256];
	if (many < 1 || runs < 1 || runs > 64 ||
	    histogram_layout_parse(&layout, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err))
		return 2;
	parse_fn parse = parse_for_linktype(DLT_EN10MB);
	printf("ranges: 1 vs %zu, layout %s, %d runs, medians; %u frames per pass between %u "
	       "addresses\n",
	       many, kind, runs, FRAMES, ADDRS);
	for (int v6 = 0; v6 <= 1; v6++) {
		uint8_t *frames = make_frames(v6);
		size_t counts[2];
		char **specs[2] = {make_specs(v6, 1, &counts[0]), make_specs(v6, many, &counts[1])};
		static struct setup s[2];
		for (int k = 0; k < 2; k++) {
			for (int i = 0; i < runs; i++) {
				s[k].load[i] = load(&s[k].ranges, specs[k], counts[k], v6);
				if (i + 1 < runs)
					ranges_free(&s[k].ranges);
			}
			if (registry_init(&s[k].reg, &layout, &s[k].ranges, 10 * ADDRS))
				abort();
			int src = registry_add_source(&s[k].reg, "bench");
			if (src < 0 || !(s[k].shard = registry_add_shard(&s[k].reg, src)))
				abort();
			account_batch_init(&s[k].batch, &s[k].ranges);
			run_pass(&s[k], &layout, parse, frames); /* creates the histograms */
		}
		for (int i = 0; i < runs; i++)
			for (int k = 0; k < 2; k++)
				s[k].pass[i] = run_pass(&s[k], &layout, parse, frames);
		double ns[2], ld[2];
		for (int k = 0; k < 2; k++) {
			ns[k] = median(s[k].pass, runs) / FRAMES * 1e9;
			ld[k] = median(s[k].load, runs);
			if (addrtable_count(&s[k].shard->table) != (size_t)ADDRS * 2 ||
			    counter_read(&s[k].shard->untracked)) {
				fprintf(stderr, "bench_ranges: not every address was accounted\n");
				return 1;
			}
		}
		printf("IPv%d: load %.1f ms (1 range) vs %.1f ms (%zu ranges); "
		       "%.1f vs %.1f ns/packet, ratio %.3f\n",
		       v6 ? 6 : 4, ld[0] * 1e3, ld[1] * 1e3, many, ns[0], ns[1], ns[1] / ns[0]);
		for (int k = 0; k < 2; k++) {
			registry_free(&s[k].reg);
			ranges_free(&s[k].ranges);
			for (size_t i = 0; i < counts[k]; i++)
				free(specs[k][i]);
			free(specs[k]);
		}
		free(frames);
	}
	return 0;
}
