/* Configured address ranges with user labels; first match wins. */
#ifndef PROMACCT_RANGES_H
#define PROMACCT_RANGES_H

#include <stddef.h>
#include <stdint.h>

#include "promacct/common.h"
#include "promacct/labels.h"

struct range {
	uint8_t family; /* 4 or 6 */
	uint8_t first[16], last[16];
	struct label *labels; /* in the order given */
	size_t nlabels;
	char *text; /* the labels rendered for the text format: ,a="x",b="y" */
};

struct range_seg4 {
	uint32_t first, last;
	uint32_t index;
};

struct range_seg6 {
	unsigned __int128 first, last;
	uint32_t index;
};

struct ranges {
	struct range *v;
	size_t n;
	/* Disjoint sorted segments with the winning range index, built by
	 * ranges_build for O(log n) lookups. */
	struct range_seg4 *seg4;
	size_t nseg4;
	struct range_seg6 *seg6;
	size_t nseg6;
};

void ranges_init(struct ranges *r);
void ranges_free(struct ranges *r);
/* Parses one -r SPEC: FIRST-LAST or ADDRESS/LEN (IPv6 in brackets for
 * FIRST-LAST), then any number of :name=value. Returns 0 or -EINVAL/-ENOMEM
 * with a reason in err. */
int ranges_add(struct ranges *r, const char *spec, char *err, size_t errlen) MUST_CHECK;
/* Builds the lookup segments; call once after the last ranges_add. */
int ranges_build(struct ranges *r) MUST_CHECK;

/* Index of the first range (command-line order) holding the address, or -1;
 * on a hit *seg is the segment that holds it. */
static inline int ranges_lookup4_slow(const struct ranges *r, uint32_t addr_host, size_t *seg)
{
	size_t lo = 0, hi = r->nseg4;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->seg4[mid].last < addr_host)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < r->nseg4 && r->seg4[lo].first <= addr_host) {
		*seg = lo;
		return (int)r->seg4[lo].index;
	}
	return -1;
}

static inline int ranges_lookup4(const struct ranges *r, uint32_t addr_host)
{
	size_t seg;
	return ranges_lookup4_slow(r, addr_host, &seg);
}

/* A capture thread's copy of the segment of its previous IPv4 hit: while
 * traffic stays within one segment, a lookup is one subtraction and one
 * compare against the thread's own memory. It always holds an interval of
 * addresses that all map to `index` (at first [0, 0]). */
struct ranges_hint4 {
	uint32_t first, span; /* the interval [first, first + span] */
	int index;
};

static inline void ranges_hint4_init(struct ranges_hint4 *h, const struct ranges *r)
{
	h->first = 0;
	h->span = 0;
	h->index = ranges_lookup4(r, 0);
}

/* ranges_lookup4 through the hint, which a hit elsewhere updates. */
static inline int ranges_lookup4_hint(const struct ranges *r, uint32_t addr_host,
                                      struct ranges_hint4 *h)
{
	if (LIKELY(addr_host - h->first <= h->span))
		return h->index;
	size_t seg;
	int idx = ranges_lookup4_slow(r, addr_host, &seg);
	if (idx >= 0) {
		h->first = r->seg4[seg].first;
		h->span = r->seg4[seg].last - r->seg4[seg].first;
		h->index = idx;
	}
	return idx;
}

int ranges_lookup6_slow(const struct ranges *r, const uint8_t *addr);

static inline int ranges_lookup6(const struct ranges *r, const uint8_t *addr)
{
	return r->nseg6 ? ranges_lookup6_slow(r, addr) : -1;
}

#endif
