/* bench_render: read-out throughput of a large state, in-process.
 *
 *   bench_render [ADDRESSES] [RUNS]
 *
 * Accounts synthetic frames until ADDRESSES IPv4 addresses each have three
 * histograms (tx tcp, rx tcp, tx udp: 3 x ADDRESSES histograms, 600k by
 * default), then times the text exposition (the /metrics body) and the
 * remote-write encoding (protobuf + snappy, 2000 samples per request, over
 * SHARDS shards, default 8) RUNS times each and prints the medians. The text exposition side by
 * side: rendered whole into one buffer (the page held in memory, as before streaming); streamed to
 * a sink that drops it (expo_text_write, one chunk held); the same with the read-out's batch as
 * large as the state (one sorting pass: what the bounded batches cost); and through a render stream
 * read in 64 KiB pieces as the scrape page does, plain and gzip. */
#include <arpa/inet.h>
#include <pcap/dlt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/account.h"
#include "promacct/expo_text.h"
#include "promacct/render.h"
#include "promacct/rw_encode.h"
#include "bench_util.h"

struct rw_count {
	size_t bytes, samples, requests;
};

static int count_body(void *ctx, size_t shard, char *body, size_t len, size_t n)
{
	(void)shard;
	struct rw_count *c = ctx;
	c->bytes += len;
	c->samples += n;
	c->requests++;
	free(body);
	return 0;
}

struct null_sink {
	struct expo_sink s;
	size_t bytes;
};

static int null_write(struct expo_sink *s, const char *data, size_t len)
{
	(void)data;
	((struct null_sink *)s)->bytes += len;
	return 0;
}

static void frame(uint8_t *f, uint32_t src, uint32_t dst, int proto)
{
	memset(f, 0, 34);
	f[12] = 0x08;
	f[14] = 0x45;
	f[23] = (uint8_t)proto;
	src = htonl(src);
	dst = htonl(dst);
	memcpy(f + 26, &src, 4);
	memcpy(f + 30, &dst, 4);
}

int main(int argc, char **argv)
{
	uint32_t naddr = argc > 1 ? (uint32_t)atoi(argv[1]) : 200000;
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	char err[256];
	static struct histogram_layout layout;
	struct ranges ranges;
	struct registry reg;
	if (runs < 1 || runs > 99 ||
	    histogram_layout_parse(&layout, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err))
		return 2;
	ranges_init(&ranges);
	if (ranges_add(&ranges, "10.0.0.0/8:customer=bench", err, sizeof err) ||
	    ranges_build(&ranges) || registry_init(&reg, &layout, &ranges, naddr + 16))
		return 1;
	int src = registry_add_source(&reg, "eth0");
	struct acct_shard *s = src < 0 ? NULL : registry_add_shard(&reg, src);
	if (!s)
		return 1;
	uint8_t f[64];
	/* a -> a+1 (tcp): tx tcp for a, rx tcp for a+1; a -> outside (udp) */
	for (uint32_t i = 0; i < naddr; i++) {
		uint32_t a = (10u << 24) + i, b = (10u << 24) + (i + 1) % naddr;
		for (int k = 0; k < 3; k++) {
			frame(f, a, b, 6);
			account_packet(s, &ranges, &layout, DLT_EN10MB, f, 34,
			               60 + (uint32_t)(k * 500));
		}
		frame(f, a, 0xC0000201u, 17);
		account_packet(s, &ranges, &layout, DLT_EN10MB, f, 34, 1000);
	}
	size_t hists = registry_address_histograms(&reg);
	printf("state: %u addresses, %zu address histograms\n", naddr, hists);

	double t[99], bytes = 0, lines = 0;
	struct buf b;
	buf_init(&b, 0);
	for (int r = 0; r < runs; r++) {
		buf_reset(&b);
		double t0 = time_monotonic();
		if (expo_text_render(&reg, &b))
			return 1;
		t[r] = time_monotonic() - t0;
		bytes = (double)b.len;
	}
	for (size_t i = 0; i < b.len; i++)
		lines += b.data[i] == '\n';
	double tm = median(t, runs);
	printf("scrape rendered into one buffer: %.1f MB in %.3f s median of %d: %.0f MB/s, %.2f M "
	       "lines/s, %.2f M "
	       "histograms/s\n",
	       bytes / 1e6, tm, runs, bytes / 1e6 / tm, lines / 1e6 / tm, (double)hists / 1e6 / tm);
	buf_free(&b);

	struct null_sink ns = {{null_write}, 0};
	for (int pass = 0; pass < 2; pass++) {
		size_t batch = reg.collect_batch;
		if (pass)
			reg.collect_batch = hists + 1;
		for (int r = 0; r < runs; r++) {
			double t0 = time_monotonic();
			if (expo_text_write(&reg, &ns.s, NULL))
				return 1;
			t[r] = time_monotonic() - t0;
		}
		reg.collect_batch = batch;
		tm = median(t, runs);
		printf("scrape streamed to a null sink%s: %.0f MB/s (%.3f s median of %d)\n",
		       pass ? " (one pass: batch = state)" : "", bytes / 1e6 / tm, tm, runs);
	}
	static char piece[64 * 1024];
	for (int gz = 0; gz < 2; gz++) {
		size_t out = 0;
		for (int r = 0; r < runs; r++) {
			struct render_opts ro = {.gzip = gz, .gzip_level = 1};
			double t0 = time_monotonic();
			struct render_stream *rs = render_stream_new(&reg, &ro);
			if (!rs || render_stream_start(rs))
				return 1;
			ssize_t n;
			out = 0;
			while ((n = render_stream_read(rs, piece, sizeof piece, 1)) > 0)
				out += (size_t)n;
			render_stream_free(rs);
			if (n != RENDER_EOF)
				return 1;
			t[r] = time_monotonic() - t0;
		}
		tm = median(t, runs);
		printf("scrape render stream%s, read in 64 KiB pieces: %.0f MB/s of text (%.1f MB "
		       "out, %.3f s median of %d)\n",
		       gz ? " gzip" : "", bytes / 1e6 / tm, (double)out / 1e6, tm, runs);
	}

	struct label ext[2] = {{"job", "promacct"}, {"instance", "bench"}};
	struct rw_label_set es = {ext, 2};
	struct rw_count c = {0, 0, 0};
	for (int r = 0; r < runs; r++) {
		memset(&c, 0, sizeof c);
		double t0 = time_monotonic();
		size_t nsh = getenv("SHARDS") ? (size_t)atoi(getenv("SHARDS")) : 8;
		struct rw_encode_opts eo = {&es, 1700000000000, 2000, nsh, 0,
		                            -1,  count_body,    &c,   0};
		if (rw_encode(&reg, &eo))
			return 1;
		t[r] = time_monotonic() - t0;
	}
	tm = median(t, runs);
	printf("remote-write encode+snappy: %zu samples in %zu requests (%.1f MB) in %.3f s median "
	       "of %d: %.2f M samples/s\n",
	       c.samples, c.requests, (double)c.bytes / 1e6, tm, runs,
	       (double)c.samples / 1e6 / tm);
	registry_free(&reg);
	ranges_free(&ranges);
	return 0;
}
