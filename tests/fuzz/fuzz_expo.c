/* Fuzz target: the text exposition writer over random registry contents.
 * The page must pass the strict text-format check of textcheck.h.
 *
 * Input, front to back: one byte picks the bucket layout and the page cap;
 * then newline-separated pieces: two source names (the interface label),
 * two range label sets ("name=value[:name=value]...", given to the -r
 * parser after an address range), two self-metric label values (URL labels
 * of the senders); one 8-byte self-metric value; the rest is packets, 8
 * bytes each: flags (bit 0 IPv6, bit 1 second source, bit 2 second range,
 * bit 3 source gone), protocol, size (2 bytes), source and destination
 * address low bytes (2 + 2). */
#include <pcap/dlt.h>

#include "promacct/expo_text.h"
#include "fixture.h"
#include "fuzz.h"
#include "textcheck.h"

static const char *const layouts[] = {HISTOGRAM_DEFAULT_BUCKETS, "100", "0.5,1,1e3,1e9",
                                      "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16"};

#define MAX_ADDRESSES 32

static size_t ip_frame(uint8_t *b, int v6, int net2, unsigned proto, const uint8_t *lo)
{
	if (v6) {
		memset(b, 0, 40);
		b[0] = 0x60;
		b[6] = (uint8_t)proto;
		const uint8_t pre[4] = {0x20, 0x01, 0x0d, 0xb8};
		memcpy(b + 8, pre, 4);
		memcpy(b + 24, pre, 4);
		b[12] = b[28] = (uint8_t)net2;
		memcpy(b + 22, lo, 2);
		memcpy(b + 38, lo + 2, 2);
		return 40;
	}
	memset(b, 0, 20);
	b[0] = 0x45;
	b[9] = (uint8_t)proto;
	b[12] = b[16] = 10;
	b[13] = b[17] = (uint8_t)net2;
	memcpy(b + 14, lo, 2);
	memcpy(b + 18, lo + 2, 2);
	return 20;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 20000)
		return 0;
	struct fuzz_in in = {data, size};
	unsigned sel = fuzz_byte(&in);
	char err[256];
	struct histogram_layout *layout = malloc(sizeof *layout);
	struct ranges ranges;
	struct registry reg;
	char *piece[6] = {0};
	if (!layout)
		abort();
	if (histogram_layout_parse(layout, layouts[sel % ARRAY_LEN(layouts)], err, sizeof err))
		abort();
	for (int i = 0; i < 6; i++)
		piece[i] = fuzz_piece(&in, '\n');

	ranges_init(&ranges);
	static const char *const nets[] = {"10.0.0.0/16", "2001:db8::/32", "10.1.0.0/16",
	                                   "2001:db8:100::/40"};
	for (int i = 0; i < 4; i++) {
		char spec[4096];
		const char *ls = piece[2 + i / 2] ? piece[2 + i / 2] : "";
		snprintf(spec, sizeof spec, "%s%s%s", nets[i], *ls ? ":" : "", ls);
		if (ranges_add(&ranges, spec, err, sizeof err))
			FUZZ_CHECK(ranges_add(&ranges, nets[i], err, sizeof err) == 0, "%s", err);
	}
	FUZZ_CHECK(ranges_build(&ranges) == 0, "ranges_build");
	FUZZ_CHECK(registry_init(&reg, layout, &ranges, MAX_ADDRESSES) == 0, "registry_init");
	reg.start_time = 1700000000.25;

	struct acct_shard *shard[2];
	int srcidx[2];
	for (int i = 0; i < 2; i++) {
		const char *name = piece[i] ? piece[i] : "eth0";
		int src = registry_add_source(&reg, name); /* the same name: the same source */
		FUZZ_CHECK(src >= 0, "registry_add_source");
		srcidx[i] = src;
		shard[i] = registry_add_shard(&reg, src);
		FUZZ_CHECK(shard[i] != NULL, "registry_add_shard");
	}
	gauge_t *g1 = registry_self_add(&reg, "promacct_fuzz_gauge", "A gauge\\ with\nHELP.",
	                                METRIC_GAUGE, "url", piece[4] ? piece[4] : "", NULL, NULL);
	gauge_t *g2 =
	    registry_self_add(&reg, "promacct_fuzz_total", "A counter.", METRIC_COUNTER, "url",
	                      piece[4] ? piece[4] : "", "reason", piece[5] ? piece[5] : "");
	FUZZ_CHECK(g1 && g2, "registry_self_add");
	double v = 0;
	if (in.n >= 8) {
		memcpy(&v, in.p, 8);
		in.p += 8;
		in.n -= 8;
	}
	gauge_set(g1, v);
	self_inc(g2, v == v && v > 0 ? v : 1);

	while (in.n >= 8) {
		const uint8_t *r = in.p;
		uint8_t b[64];
		size_t n = ip_frame(b, r[0] & 1, r[0] & 4 ? 1 : 0, r[1], r + 4);
		uint32_t wirelen = (uint32_t)r[2] | (uint32_t)r[3] << 8;
		if (wirelen < n)
			wirelen = (uint32_t)n;
		account_packet(shard[(r[0] >> 1) & 1], &ranges, layout, DLT_RAW, b, (uint32_t)n,
		               wirelen);
		if (r[0] & 8)
			atomic_store(&reg.sources[srcidx[(r[0] >> 1) & 1]].gone, 1);
		in.p += 8;
		in.n -= 8;
	}

	struct buf page;
	buf_init(&page, sel & 0x80 ? (size_t)(sel & 0x7f) * 64 : 0);
	int rc = expo_text_render(&reg, &page);
	if (sel & 0x80) {
		FUZZ_CHECK(rc == 0 || rc == -E2BIG, "render with a cap: %d", rc);
		FUZZ_CHECK(page.len <= page.max, "page over its cap");
	} else {
		FUZZ_CHECK(rc == 0, "render: %d", rc);
		size_t line;
		const char *problem = text_check(page.data, page.len, &line);
		FUZZ_CHECK(!problem, "line %zu: %s\n%.*s", line, problem, (int)page.len, page.data);
	}
	buf_free(&page);
	registry_free(&reg);
	ranges_free(&ranges);
	free(layout);
	for (int i = 0; i < 6; i++)
		free(piece[i]);
	return 0;
}
