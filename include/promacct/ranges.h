/* Configured address ranges with user labels; first match wins. */
#ifndef PROMACCT_RANGES_H
#define PROMACCT_RANGES_H

#include <stddef.h>
#include <stdint.h>

#include "promacct/common.h"
#include "promacct/labels.h"

struct range {
	uint8_t family;      /* 4 or 6 */
	uint8_t granularity; /* rollup prefix length; 32 (IPv4) or 128 (IPv6): per address */
	uint8_t first[16], last[16];
	struct label *labels; /* in the order given */
	size_t nlabels;
	char *text;           /* the labels rendered for the text format: ,a="x",b="y" */
	size_t max_addresses; /* cap of this range's tracked keys; 0: none of its own */
	/* The first range with the same family, labels and granularity:
	 * ranges alike are one accounting group (one set of series, one cap),
	 * set by ranges_build. */
	uint32_t group;
	/* The group's stable id (what piece vals and keys carry): the group
	 * index until ranges_set_ids gives the ids of a longer-lived table
	 * (the registry's label sets, which outlive a reload). */
	uint32_t id;
	/* On a group's first range: the group's cap, the sum of its ranges'
	 * max_addresses, 0 (none) when any of them has none. */
	size_t group_max;
};

/* One range as a configuration source gives it (the -r parser, the config
 * file loader): ranges_add_entry copies everything. */
struct range_entry {
	uint8_t family;              /* 4 or 6 */
	uint8_t first[16], last[16]; /* network byte order, unused bytes zero */
	const struct label *labels;
	size_t nlabels;
	int granularity;      /* 0: the address length (per address) */
	size_t max_addresses; /* 0: no cap of its own */
};

/* The lookup tables, built by ranges_build. The address space of each family
 * is cut into pieces that cover it completely: piece i is [first[i],
 * first[i + 1] - 1] (the last piece ends at the top of the space) and owner[i]
 * is the index of the first range given that holds it, or -1. first[0] is
 * 0. For IPv4, idx4[h] is the piece holding address h << 16 (65537 entries:
 * idx4[65536] is the last piece), so a lookup searches only the pieces that
 * meet the address's /16. val[i] is what the capture threads need of the
 * owner, packed in one word (RANGES_VAL_*). */
/* One /24 of a dense /16 (RANGES_DENSE16 pieces or more): up to three
 * pieces inline, so a lookup there reads one 16-byte entry. n is the number
 * of pieces (0: more than three, search the pieces); piece i > 0 starts at
 * low byte cut[i - 1]; val as p4_val. */
struct ranges_dir {
	uint8_t n;
	uint8_t cut[3];
	uint32_t val[3];
};

#define RANGES_DENSE16 64

struct ranges {
	struct range *v;
	size_t n, cap;
	/* other_of[i]: the first range with range i's labels (the ranges
	 * with the same labels have the same other_of; the registry gives
	 * their overflow series, ip="other", to the oldest id among them). */
	uint32_t *other_of;
	uint32_t *p4_first;
	int32_t *p4_owner;
	uint32_t *p4_val;
	size_t np4;
	uint32_t *idx4;
	/* blk16[h]: 0, or 1 + the block of dir (256 entries, one per /24) of
	 * the dense /16 h. Bounded: 4 KiB per RANGES_DENSE16 pieces. */
	uint32_t *blk16;
	struct ranges_dir *dir;
	/* class4[h]: the class of the /16 h (RANGES_CLASS_*, ranges_class4).
	 * 64 KiB. */
	uint8_t *class4;
	unsigned __int128 *p6_first;
	int32_t *p6_owner;
	uint32_t *p6_val;
	size_t np6;
	/* Every boundary (p6_first[1..]) lies in [lo6, hi6] (the first and the
	 * last), which share their top bits: below lo6 is piece 0, from hi6 on
	 * the last piece; in between, idx6[h] is the piece holding the address
	 * of those top bits followed by the 16 bits h (at shift6) and zeros
	 * (65537 entries), so a lookup searches only the pieces of its bucket,
	 * as idx4 does for IPv4. */
	uint32_t *idx6;
	unsigned __int128 lo6, hi6;
	unsigned shift6;
	/* As class4 for IPv6 (ranges_class6): class6[h] for the addresses of
	 * idx6's bucket h, class6_lo below lo6, class6_hi from hi6 on. */
	uint8_t *class6;
	uint8_t class6_lo, class6_hi;
};

/* The class of a bucket of addresses (a /16, an IPv6 bucket of idx6):
 * RANGES_CLASS_EMPTY when none of its addresses is in a range;
 * RANGES_CLASS_LOOKUP when its keys need the range lookup; else the one
 * key length L (1 to 32 or 128) of all its addresses in ranges, where the
 * prefix of length L of any of its addresses lies in one range's piece
 * (every range boundary inside it is a multiple of that prefix, and L is
 * no shorter than the bucket's own prefix): the key of an address is
 * known before its range, and one key has one range. L is the address
 * length when they do not roll up. */
#define RANGES_CLASS_LOOKUP 0
#define RANGES_CLASS_EMPTY  255

#define RANGES_IDX4_SHIFT 16
/* A piece's val: the owner's group id (range.id) + 1 in the low 24 bits (0: no range),
 * and its granularity in the top 8 when it rolls addresses up (shorter than
 * the address), else 0. Hence at most RANGES_MAX ranges. */
#define RANGES_VAL_GROUP_MASK 0xffffffu
#define RANGES_MAX            (RANGES_VAL_GROUP_MASK - 1)
static inline int ranges_val_in(uint32_t v)
{
	return (v & RANGES_VAL_GROUP_MASK) != 0;
}
static inline uint32_t ranges_val_group(uint32_t v)
{
	return (v & RANGES_VAL_GROUP_MASK) - 1;
}
static inline unsigned ranges_val_rollup(uint32_t v)
{
	return v >> 24;
}

void ranges_init(struct ranges *r);
void ranges_free(struct ranges *r);
/* Parses one -r SPEC: FIRST-LAST or ADDRESS/LEN (IPv6 in brackets for
 * FIRST-LAST; LEN without leading zeros), then any number of :name=value
 * (values not empty). Returns 0 or -EINVAL/-ENOMEM
 * with a reason in err. */
int ranges_add(struct ranges *r, const char *spec, char *err, size_t errlen) MUST_CHECK;
/* Adds a range from its parts (copied): validates first <= last, the label
 * names (valid, not reserved, not twice), the label values (not empty, at
 * most LABELS_VALUE_MAX bytes) and the granularity. Returns 0 or
 * -EINVAL/-ENOMEM with a reason in err. Amortised O(1). */
int ranges_add_entry(struct ranges *r, const struct range_entry *e, char *err,
                     size_t errlen) MUST_CHECK;
/* Parses an IPv4 or IPv6 address from the len bytes at text (no NUL
 * needed) into out (16 bytes, network byte order, unused bytes zero) and
 * its family (4 or 6). Returns 0 or -EINVAL. */
int ranges_parse_addr(const char *text, size_t len, uint8_t out[16], uint8_t *family) MUST_CHECK;
/* The prefix of length len (0 to the address length) that holds addr:
 * its first address (host bits cleared) and last (host bits set), 16 bytes
 * each; first may be addr itself. Returns whether addr has host bits set
 * (is not the first of its prefix). */
int ranges_prefix_bounds(const uint8_t addr[16], int family, int len, uint8_t first[16],
                         uint8_t last[16]);
/* Builds the lookup tables; call after the last ranges_add. O(n log n) in
 * the number of ranges. Returns 0 or -ENOMEM. */
int ranges_build(struct ranges *r) MUST_CHECK;
/* Gives the groups stable ids: ids[g] for the group whose first range is
 * g (ids of other ranges are not read; each < RANGES_MAX). Sets range.id
 * and rewrites the pieces' vals. Once, after ranges_build. */
void ranges_set_ids(struct ranges *r, const uint32_t *ids);
/* Whether a and b hold the same ranges in the same order (bounds, labels,
 * granularity, caps): what a reload compares. */
int ranges_equal(const struct ranges *a, const struct ranges *b);

/* The piece of p4_first holding addr_host (host byte order). */
static inline size_t ranges_piece4(const struct ranges *r, uint32_t addr_host)
{
	uint32_t h = addr_host >> RANGES_IDX4_SHIFT;
	size_t base = r->idx4[h], n = (size_t)r->idx4[h + 1] - base + 1;
	/* branchless: the last piece in [base, base + n) starting <= addr */
	while (n > 1) {
		size_t half = n / 2;
		base = r->p4_first[base + half] <= addr_host ? base + half : base;
		n -= half;
	}
	return base;
}

/* Index of the first range (in the order given) holding the address, or -1. */
static inline int ranges_lookup4(const struct ranges *r, uint32_t addr_host)
{
	return r->p4_owner[ranges_piece4(r, addr_host)];
}

/* The val (RANGES_VAL_*) of the piece holding the address. */
static inline uint32_t ranges_val4(const struct ranges *r, uint32_t addr_host)
{
	return r->p4_val[ranges_piece4(r, addr_host)];
}

/* The dir entry of the address, or NULL (not a dense /16). */
static inline const struct ranges_dir *ranges_dir4(const struct ranges *r, uint32_t addr_host)
{
	uint32_t b = r->blk16[addr_host >> RANGES_IDX4_SHIFT];
	return b ? &r->dir[(size_t)(b - 1) << 8 | (addr_host >> 8 & 255)] : NULL;
}

/* The class of addr_host's /16 (RANGES_CLASS_*). */
static inline unsigned ranges_class4(const struct ranges *r, uint32_t addr_host)
{
	return r->class4[addr_host >> RANGES_IDX4_SHIFT];
}

/* Hints the caches for a lookup of the address that will follow. */
static inline void ranges_prefetch4(const struct ranges *r, uint32_t addr_host)
{
	const struct ranges_dir *d = ranges_dir4(r, addr_host);
	const char *p = d ? (const char *)d
	                  : (const char *)&r->p4_first[r->idx4[addr_host >> RANGES_IDX4_SHIFT]];
#if defined(__x86_64__)
	/* gcc 12 drops __builtin_prefetch here (the whole function compiled
	 * to a return) */
	__asm__ volatile("prefetcht0 %0" : : "m"(*p));
#else
	__builtin_prefetch(p);
#endif
}

/* ranges_val4 through the dir of dense /16s. */
static inline uint32_t ranges_val4_dir(const struct ranges *r, uint32_t addr_host)
{
	const struct ranges_dir *d = ranges_dir4(r, addr_host);
	if (d && d->n) {
		unsigned lo = addr_host & 255;
		uint32_t v = d->val[0];
		v = d->n > 1 && lo >= d->cut[0] ? d->val[1] : v;
		v = d->n > 2 && lo >= d->cut[1] ? d->val[2] : v;
		return v;
	}
	return ranges_val4(r, addr_host);
}

/* A capture thread's copy of the piece of its previous IPv4 lookup: while
 * traffic stays within one piece, a lookup is one subtraction and one
 * compare against the thread's own memory. It always holds an interval of
 * addresses that all have `val` (at first [0, 0]). */
struct ranges_hint4 {
	uint32_t first, span; /* the interval [first, first + span] */
	uint32_t val;
};

static inline void ranges_hint4_init(struct ranges_hint4 *h, const struct ranges *r)
{
	h->first = 0;
	h->span = 0;
	h->val = ranges_val4(r, 0);
}

/* ranges_val4 through the hint, which a lookup elsewhere updates. */
static inline uint32_t ranges_val4_hint(const struct ranges *r, uint32_t addr_host,
                                        struct ranges_hint4 *h)
{
	if (LIKELY(addr_host - h->first <= h->span))
		return h->val;
	const struct ranges_dir *d = ranges_dir4(r, addr_host);
	if (d && d->n)
		return ranges_val4_dir(r, addr_host); /* the hint stays */
	size_t p = ranges_piece4(r, addr_host);
	h->first = r->p4_first[p];
	h->span = (p + 1 < r->np4 ? r->p4_first[p + 1] - 1 : 0xffffffffu) - h->first;
	h->val = r->p4_val[p];
	return h->val;
}

static inline unsigned __int128 ranges_addr6(const uint8_t *addr)
{
	uint64_t hi64, lo64;
	__builtin_memcpy(&hi64, addr, 8);
	__builtin_memcpy(&lo64, addr + 8, 8);
	return (unsigned __int128)__builtin_bswap64(hi64) << 64 | __builtin_bswap64(lo64);
}

/* The first piece of the window holding a (see idx6). */
static inline size_t ranges_window6(const struct ranges *r, unsigned __int128 a)
{
	if (a < r->lo6)
		return 0;
	if (a >= r->hi6)
		return r->np6 - 1;
	return r->idx6[(size_t)(a >> r->shift6) & 0xffff];
}

/* The piece holding a, searching from window w. */
static inline size_t ranges_piece6_in(const struct ranges *r, unsigned __int128 a, size_t w)
{
	size_t end =
	    a < r->lo6 || a >= r->hi6 ? w : r->idx6[((size_t)(a >> r->shift6) & 0xffff) + 1];
	size_t base = w, n = end - w + 1;
	while (n > 1) {
		size_t half = n / 2;
		base = r->p6_first[base + half] <= a ? base + half : base;
		n -= half;
	}
	return base;
}

/* The class of the bucket of a (ranges_addr6; RANGES_CLASS_*). */
static inline unsigned ranges_class6(const struct ranges *r, unsigned __int128 a)
{
	if (a < r->lo6)
		return r->class6_lo;
	if (a >= r->hi6)
		return r->class6_hi;
	return r->class6[(size_t)(a >> r->shift6) & 0xffff];
}

/* IPv6 (the address in network byte order, 16 bytes): the piece. */
static inline size_t ranges_piece6(const struct ranges *r, const uint8_t *addr)
{
	unsigned __int128 a = ranges_addr6(addr);
	return ranges_piece6_in(r, a, ranges_window6(r, a));
}

static inline int ranges_lookup6(const struct ranges *r, const uint8_t *addr)
{
	return r->np6 == 1 ? r->p6_owner[0] : r->p6_owner[ranges_piece6(r, addr)];
}

static inline uint32_t ranges_val6(const struct ranges *r, const uint8_t *addr)
{
	return r->np6 == 1 ? r->p6_val[0] : r->p6_val[ranges_piece6(r, addr)];
}

/* The window of an IPv6 lookup that will follow (stored by the caller,
 * then given to ranges_val6_in), with its cache lines prefetched. */
static inline size_t ranges_prefetch6(const struct ranges *r, const uint8_t *addr)
{
	if (r->np6 == 1)
		return 0;
	size_t w = ranges_window6(r, ranges_addr6(addr));
	for (int i = 0; i < 256; i += 64)
		__builtin_prefetch((const char *)&r->p6_first[w] + i);
	__builtin_prefetch(&r->p6_val[w]);
	return w;
}

static inline uint32_t ranges_val6_in(const struct ranges *r, const uint8_t *addr, size_t w)
{
	return r->np6 == 1 ? r->p6_val[0] : r->p6_val[ranges_piece6_in(r, ranges_addr6(addr), w)];
}

#endif
