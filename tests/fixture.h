/* A registry with one source and shard, for unit tests. */
#ifndef PROMACCT_TEST_FIXTURE_H
#define PROMACCT_TEST_FIXTURE_H

#include <pcap/dlt.h>
#include <stdlib.h>

#include "promacct/account.h"
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

/* Accounts one Ethernet/IPv4 frame of the given wire length. */
static inline void fixture_v4(struct fixture *f, struct acct_shard *s, const char *src,
                              const char *dst, int proto, uint32_t wirelen)
{
	uint8_t b[64];
	size_t n = fr_eth(b, 0x0800);
	n += fr_ipv4(b + n, src, dst, proto);
	account_packet(s ? s : f->shard, &f->ranges, &f->layout, DLT_EN10MB, b, (uint32_t)n,
	               wirelen);
}

static inline void fixture_v6(struct fixture *f, struct acct_shard *s, const char *src,
                              const char *dst, int proto, uint32_t wirelen)
{
	uint8_t b[64];
	size_t n = fr_eth(b, 0x86dd);
	n += fr_ipv6(b + n, src, dst, proto);
	account_packet(s ? s : f->shard, &f->ranges, &f->layout, DLT_EN10MB, b, (uint32_t)n,
	               wirelen);
}

#endif
