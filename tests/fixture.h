/* A registry with one source and shard, for unit tests. */
#ifndef PROMACCT_TEST_FIXTURE_H
#define PROMACCT_TEST_FIXTURE_H

#include <pcap/dlt.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/account.h"
#include "promacct/expo_text.h"
#include "promacct/registry.h"
#include "frames.h"

struct fixture {
	struct histogram_layout layout;
	struct ranges ranges;
	struct registry reg;
	struct acct_shard *shard;
};

static inline struct fixture *fixture_new(const char *buckets, const char *const *ranges,
                                          size_t nranges, size_t max_addresses)
{
	char err[256];
	struct fixture *f = calloc(1, sizeof *f);
	if (!f || histogram_layout_parse(&f->layout, buckets, err, sizeof err))
		abort();
	ranges_init(&f->ranges);
	for (size_t i = 0; i < nranges; i++)
		if (ranges_add(&f->ranges, ranges[i], err, sizeof err))
			abort();
	if (ranges_build(&f->ranges) ||
	    registry_init(&f->reg, &f->layout, &f->ranges, max_addresses))
		abort();
	int src = registry_add_source(&f->reg, "eth0");
	if (src < 0)
		abort();
	f->shard = registry_add_shard(&f->reg, src);
	if (!f->shard)
		abort();
	f->reg.start_time = 1700000000.5;
	return f;
}

static inline void fixture_free(struct fixture *f)
{
	registry_free(&f->reg);
	ranges_free(&f->ranges);
	free(f);
}

/* Accounts one Ethernet frame carrying IPv4 or IPv6 (by the address text)
 * of the given wire length, on shard s (NULL: the fixture's shard). */
static inline void fixture_ip(struct fixture *f, struct acct_shard *s, const char *src,
                              const char *dst, int proto, uint32_t wirelen)
{
	uint8_t b[64];
	int v6 = strchr(src, ':') != NULL;
	size_t n = fr_eth(b, v6 ? 0x86dd : 0x0800);
	n += v6 ? fr_ipv6(b + n, src, dst, proto) : fr_ipv4(b + n, src, dst, proto);
	account_packet(s ? s : f->shard, &f->ranges, &f->layout, DLT_EN10MB, b, (uint32_t)n,
	               wirelen);
}

/* The registry rendered as text; caller frees. */
static inline char *fixture_render(struct registry *r)
{
	struct buf b;
	buf_init(&b, 0);
	if (expo_text_render(r, &b))
		abort();
	buf_append_char(&b, '\0');
	return b.data;
}

#endif
