/* DESIGN: address ranges.
 *
 * Given at start-up (-r options first, then any other source through
 * ranges_add_entry), then read-only: capture threads call ranges_lookup4/6
 * concurrently without locking. Overlapping ranges are resolved when
 * building, not when looking up: a sweep over the range boundaries in
 * address order, with a min-heap of the ranges that cover the sweep point,
 * cuts each family's address space into pieces, each carrying the index of
 * the first range given that holds it (O(n log n): 100,000 ranges build in
 * about 0.1 s). An IPv4 lookup goes through a direct index on the top 16
 * bits to the few pieces that meet the address's /16 and ends with a
 * branchless binary search among them; a /16 with many pieces has a table
 * of its /24s with up to three pieces inline (one 16-byte read). IPv6 does
 * the same with the 16 bits that follow the top bits all range bounds
 * share. The capture threads prefetch what a lookup will read a queue ahead
 * (account.h) and keep the piece of their previous IPv4 lookup
 * (ranges_hint4). Each /16 (IPv6 bucket) has a class (64 KiB per family):
 * no range in it, or one key length for all its addresses in ranges with
 * every range boundary aligned to it (the key of an address is known
 * before its range: the capture threads look it up in their address table
 * first, and in the ranges only for a key they do not hold, account.h), or
 * "look up". Memory: the ranges and their label texts, 12 bytes per
 * IPv4 piece, 24 per IPv6 piece, 256 KiB per family for the indexes once
 * built, and 4 KiB per dense /16 (at most one per RANGES_DENSE16 pieces).
 *
 * A piece's val names its owner's group by range.id: the group index,
 * until ranges_set_ids gives the stable ids of the registry's label sets
 * (a reload's table: keys of label sets that stay keep their identity). A
 * table is never changed once the capture threads use it; a reload builds
 * a new one. */
#include "promacct/ranges.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_TEXT_MAX 64

typedef unsigned __int128 u128;

/* The tables of a ranges value that holds no range (and of one not built
 * yet): every address is in no range. Shared, never written. */
static uint32_t empty_first4[1];
static int32_t empty_owner[1] = {-1};
static uint32_t empty_val[1];
static uint32_t empty_idx4[(1u << (32 - RANGES_IDX4_SHIFT)) + 1];
static u128 empty_first6[1];
static uint32_t empty_blk16[1u << (32 - RANGES_IDX4_SHIFT)];
static uint32_t empty_idx6[(1u << 16) + 1];
static uint8_t empty_class[1u << 16]; /* RANGES_CLASS_LOOKUP: an empty table answers "no range" */

static void tables_empty(struct ranges *r)
{
	r->p4_first = empty_first4;
	r->p4_owner = empty_owner;
	r->p4_val = empty_val;
	r->np4 = 1;
	r->idx4 = empty_idx4;
	r->blk16 = empty_blk16;
	r->dir = NULL;
	r->class4 = empty_class;
	r->class6 = empty_class;
	r->class6_lo = r->class6_hi = RANGES_CLASS_LOOKUP;
	r->p6_first = empty_first6;
	r->p6_owner = empty_owner;
	r->p6_val = empty_val;
	r->np6 = 1;
	r->idx6 = empty_idx6;
	r->lo6 = 1; /* empty: every address is below, in piece 0 */
	r->hi6 = 1;
	r->shift6 = 0;
}

static void tables_free(struct ranges *r)
{
	if (r->p4_first != empty_first4)
		free(r->p4_first);
	if (r->p4_owner != empty_owner)
		free(r->p4_owner);
	if (r->idx4 != empty_idx4)
		free(r->idx4);
	if (r->blk16 != empty_blk16)
		free(r->blk16);
	free(r->dir);
	if (r->class4 != empty_class)
		free(r->class4);
	if (r->class6 != empty_class)
		free(r->class6);
	if (r->p6_first != empty_first6)
		free(r->p6_first);
	if (r->p6_owner != empty_owner)
		free(r->p6_owner);
	if (r->idx6 != empty_idx6)
		free(r->idx6);
	if (r->p4_val != empty_val)
		free(r->p4_val);
	if (r->p6_val != empty_val)
		free(r->p6_val);
	tables_empty(r);
}

void ranges_init(struct ranges *r)
{
	memset(r, 0, sizeof *r);
	tables_empty(r);
}

void ranges_free(struct ranges *r)
{
	for (size_t i = 0; i < r->n; i++) {
		labels_free(r->v[i].labels, r->v[i].nlabels);
		free(r->v[i].labels);
		free(r->v[i].text);
	}
	free(r->v);
	free(r->other_of);
	tables_free(r);
	ranges_init(r);
}

static u128 to_u128(const uint8_t *a, int family)
{
	u128 v = 0;
	for (int i = 0; i < (family == 4 ? 4 : 16); i++)
		v = (v << 8) | a[i];
	return v;
}

static void from_u128(uint8_t *a, int family, u128 v)
{
	for (int i = (family == 4 ? 4 : 16) - 1; i >= 0; i--) {
		a[i] = (uint8_t)v;
		v >>= 8;
	}
}

int ranges_parse_addr(const char *text, size_t len, uint8_t out[16], uint8_t *family)
{
	char tmp[ADDR_TEXT_MAX];
	if (len == 0 || len >= sizeof tmp)
		return -EINVAL;
	memcpy(tmp, text, len);
	tmp[len] = '\0';
	memset(out, 0, 16);
	if (inet_pton(AF_INET, tmp, out) == 1) {
		*family = 4;
		return 0;
	}
	if (inet_pton(AF_INET6, tmp, out) == 1) {
		*family = 6;
		return 0;
	}
	return -EINVAL;
}

static int parse_labels(struct range *rg, const char *p, char *err, size_t errlen)
{
	/* ":a=1:b=x:y" -> a="1", b="x:y": a segment without '=' continues the
	 * previous value, so values may hold colons. */
	while (*p) {
		if (*p != ':') {
			snprintf(err, errlen, "expected ':name=value' after the address, got '%s'",
			         p);
			return -EINVAL;
		}
		p++;
		const char *end = p;
		for (;;) {
			end += strcspn(end, ":");
			if (*end == '\0')
				break;
			const char *nx = end + 1;
			const char *nc = nx + strcspn(nx, ":");
			if (memchr(nx, '=', (size_t)(nc - nx)))
				break;
			end = nc;
		}
		char *seg = strndup(p, (size_t)(end - p));
		if (!seg)
			return -ENOMEM;
		struct label l;
		int rc = labels_parse_pair(seg, &l, err, errlen);
		free(seg);
		if (rc)
			return rc;
		struct label *nl = realloc(rg->labels, (rg->nlabels + 1) * sizeof *nl);
		if (!nl) {
			labels_free(&l, 1);
			return -ENOMEM;
		}
		rg->labels = nl;
		rg->labels[rg->nlabels++] = l;
		p = end;
	}
	return 0;
}

static int parse_prefix_len(const char *p, const char **end, int family, int *len)
{
	int v = 0, digits = 0;
	const char *start = p;
	while (*p >= '0' && *p <= '9' && digits < 4) {
		v = v * 10 + (*p - '0');
		p++;
		digits++;
	}
	if (!digits || v > (family == 4 ? 32 : 128) || (digits > 1 && *start == '0'))
		return -EINVAL; /* no leading zeros, as Prometheus and iproute2 write it */
	*len = v;
	*end = p;
	return 0;
}

int ranges_prefix_bounds(const uint8_t addr[16], int family, int len, uint8_t first[16],
                         uint8_t last[16])
{
	int bits = family == 4 ? 32 : 128;
	u128 a = to_u128(addr, family);
	int hostbits = bits - len;
	u128 host = hostbits >= 128 ? ~(u128)0 : (((u128)1 << hostbits) - 1);
	memset(first, 0, 16);
	memset(last, 0, 16);
	from_u128(first, family, a & ~host);
	from_u128(last, family, (a & ~host) | host);
	return (a & host) != 0;
}

/* Parses the address part of a range spec (FIRST-LAST, [FIRST]-[LAST],
 * ADDRESS/LEN, [ADDRESS]/LEN or one address) into rg's family, first and
 * last; *rest points after it. Returns NULL, or what is wrong. */
static const char *parse_span(struct range *rg, const char *p, const char **rest)
{
	const char *first = p, *first_end, *last = NULL, *last_end = NULL;
	uint8_t fam2 = 0;
	int len;

	if (*p == '[') {
		first = p + 1;
		if (!(first_end = strchr(p, ']')))
			return "invalid address";
		p = first_end + 1;
		if (*p == '-') {
			if (p[1] != '[' || !(last_end = strchr(p + 1, ']')))
				return "invalid last address (IPv6 ranges are written "
				       "[FIRST]-[LAST])";
			last = p + 2;
			p = last_end + 1;
		}
	} else if (strchr(p, '/')) {
		first_end = strchr(p, '/'); /* the address may be IPv6, with colons */
		p = first_end;
	} else {
		first_end = p + strcspn(p, "-:");
		p = first_end;
		if (*p == '-') {
			last = p + 1;
			last_end = last + strcspn(last, ":");
			p = last_end;
		}
	}
	if (ranges_parse_addr(first, (size_t)(first_end - first), rg->first, &rg->family))
		return "invalid address (expected FIRST-LAST or ADDRESS/LEN; IPv6 FIRST-LAST "
		       "needs brackets: [2001:db8::1]-[2001:db8::ff])";
	if (last) {
		if (ranges_parse_addr(last, (size_t)(last_end - last), rg->last, &fam2))
			return "invalid last address";
		if (fam2 != rg->family)
			return "mixes IPv4 and IPv6";
	} else if (*p == '/') {
		if (parse_prefix_len(p + 1, &p, rg->family, &len))
			return "invalid prefix length (0 to 32 for IPv4, 0 to 128 for IPv6, no "
			       "leading zeros)";
		(void)ranges_prefix_bounds(rg->first, rg->family, len, rg->first, rg->last);
	} else {
		memcpy(rg->last, rg->first, 16);
	}
	*rest = p;
	return NULL;
}

int ranges_add(struct ranges *r, const char *spec, char *err, size_t errlen)
{
	struct range rg;
	int rc = 0;
	const char *rest = NULL;

	memset(&rg, 0, sizeof rg);
	const char *problem = parse_span(&rg, spec, &rest);
	if (problem) {
		snprintf(err, errlen, "invalid range '%s': %s", spec, problem);
		rc = -EINVAL;
		goto out;
	}
	if (memcmp(rg.first, rg.last, 16) > 0) {
		snprintf(err, errlen, "range '%s' ends before it starts", spec);
		rc = -EINVAL;
		goto out;
	}
	rc = parse_labels(&rg, rest, err, errlen);
	if (rc)
		goto out;
	struct range_entry e = {.family = rg.family, .labels = rg.labels, .nlabels = rg.nlabels};
	memcpy(e.first, rg.first, 16);
	memcpy(e.last, rg.last, 16);
	rc = ranges_add_entry(r, &e, err, errlen);
out:
	labels_free(rg.labels, rg.nlabels);
	free(rg.labels);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}

static int cmp_label_name(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* ,a="x",b="y" for the labels; NULL when out of memory. Allocated to size. */
static char *labels_text(const struct label *l, size_t n)
{
	struct buf b;
	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < n; i++) {
		buf_append_char(&b, ',');
		buf_append_str(&b, l[i].name);
		buf_append(&b, "=\"", 2);
		labels_escape_value(&b, l[i].value);
		buf_append_char(&b, '"');
	}
	buf_append_char(&b, '\0');
	char *text = b.err ? NULL : strdup(b.data);
	buf_free(&b);
	return text;
}

int ranges_add_entry(struct ranges *r, const struct range_entry *e, char *err, size_t errlen)
{
	struct range rg;
	int bits = e->family == 4 ? 32 : 128;
	int rc = -ENOMEM;

	memset(&rg, 0, sizeof rg);
	if (e->family != 4 && e->family != 6) {
		snprintf(err, errlen, "address family must be IPv4 or IPv6");
		return -EINVAL;
	}
	if (memcmp(e->first, e->last, 16) > 0) {
		snprintf(err, errlen, "range ends before it starts");
		return -EINVAL;
	}
	if (e->granularity < 0 || e->granularity > bits) {
		snprintf(err, errlen, "granularity %d is outside 1-%d (IPv%d)", e->granularity,
		         bits, e->family);
		return -EINVAL;
	}
	for (size_t i = 0; i < e->nlabels; i++) {
		const char *name = e->labels[i].name;
		if (!labels_name_valid(name)) {
			snprintf(err, errlen, "invalid label name '%s'", name);
			return -EINVAL;
		}
		if (labels_name_reserved(name)) {
			snprintf(err, errlen,
			         "label name '%s' is reserved (ip, interface, protocol, le, job, "
			         "instance and names starting with __)",
			         name);
			return -EINVAL;
		}
		const char *value = e->labels[i].value;
		if (!*value) {
			snprintf(err, errlen,
			         "label '%s' has an empty value (Prometheus reads an empty label "
			         "as no label: give a value or leave the label out)",
			         name);
			return -EINVAL;
		}
		if (strlen(value) > LABELS_VALUE_MAX) {
			snprintf(err, errlen, "label '%s': value longer than %d bytes", name,
			         LABELS_VALUE_MAX);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(e->labels[j].name, name)) {
				snprintf(err, errlen, "label '%s' given twice", name);
				return -EINVAL;
			}
	}
	if (r->n >= RANGES_MAX) {
		snprintf(err, errlen, "more than %u ranges", (unsigned)RANGES_MAX);
		return -EINVAL;
	}
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16;
		struct range *nv = realloc(r->v, ncap * sizeof *nv);
		if (!nv)
			goto out;
		r->v = nv;
		r->cap = ncap;
	}
	rg.family = e->family;
	rg.granularity = (uint8_t)(e->granularity ? e->granularity : bits);
	memcpy(rg.first, e->first, 16);
	memcpy(rg.last, e->last, 16);
	rg.max_addresses = e->max_addresses;
	if (e->nlabels) {
		rg.labels = calloc(e->nlabels, sizeof *rg.labels);
		if (!rg.labels)
			goto out;
	}
	for (size_t i = 0; i < e->nlabels; i++, rg.nlabels++) {
		rg.labels[i].name = strdup(e->labels[i].name);
		rg.labels[i].value = strdup(e->labels[i].value);
		if (!rg.labels[i].name || !rg.labels[i].value) {
			rg.nlabels++;
			goto out;
		}
	}
	/* one label set, one order: {a, b} and {b, a} (or a -r flag and the
	 * file) are the same set, its series and caps one (as Prometheus
	 * sorts label names) */
	if (rg.nlabels > 1)
		qsort(rg.labels, rg.nlabels, sizeof *rg.labels, cmp_label_name);
	rg.text = labels_text(rg.labels, rg.nlabels);
	if (!rg.text)
		goto out;
	r->v[r->n++] = rg;
	return 0;
out:
	labels_free(rg.labels, rg.nlabels);
	free(rg.labels);
	snprintf(err, errlen, "out of memory");
	return rc;
}

/* ---- building the lookup tables ----------------------------------------- */

struct span {
	u128 first, last;
	uint32_t idx; /* the range's place in the order given */
};

static int cmp_span_first(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

static int cmp_u128(const void *a, const void *b)
{
	u128 x = *(const u128 *)a, y = *(const u128 *)b;
	return x < y ? -1 : x > y;
}

/* A binary min-heap of spans by idx: the active ranges of the sweep. */
static void heap_push(struct span **h, size_t *n, struct span *s)
{
	size_t i = (*n)++;
	while (i > 0 && h[(i - 1) / 2]->idx > s->idx) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = s;
}

static void heap_pop(struct span **h, size_t *n)
{
	struct span *last = h[--(*n)];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= *n)
			break;
		if (c + 1 < *n && h[c + 1]->idx < h[c]->idx)
			c++;
		if (h[c]->idx >= last->idx)
			break;
		h[i] = h[c];
		i = c;
	}
	if (*n > 0)
		h[i] = last;
}

/* Cuts the space of one family into pieces owned by the first range (in the
 * order given) that holds them, by a sweep over the boundaries (every first
 * and last + 1) with a min-heap of the ranges that started: at a boundary,
 * the owner is the heap's least index once the ranges that ended are
 * dropped from its top (lazily: a range below the top that ended is dropped
 * when it surfaces). O(n log n). Pieces are complete (first[0] = 0, owner -1
 * where no range holds) and adjacent pieces have different owners. */
static int build_family(const struct ranges *r, int family, u128 **out_first, int32_t **out_owner,
                        size_t *out_n)
{
	u128 maxv = family == 4 ? (u128)0xffffffffu : ~(u128)0;
	size_t ns = 0, nb = 0, nheap = 0, np = 0;
	int rc = -ENOMEM;
	struct span *spans = malloc(sizeof *spans * (r->n + 1));
	struct span **heap = malloc(sizeof *heap * (r->n + 1));
	u128 *bounds = malloc(sizeof *bounds * (2 * r->n + 1));
	u128 *pf = NULL;
	int32_t *po = NULL;

	if (!spans || !heap || !bounds)
		goto out;
	bounds[nb++] = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (r->v[i].family != family)
			continue;
		struct span *s = &spans[ns++];
		s->first = to_u128(r->v[i].first, family);
		s->last = to_u128(r->v[i].last, family);
		s->idx = (uint32_t)i;
		bounds[nb++] = s->first;
		if (s->last != maxv)
			bounds[nb++] = s->last + 1;
	}
	qsort(spans, ns, sizeof *spans, cmp_span_first);
	qsort(bounds, nb, sizeof *bounds, cmp_u128);
	pf = malloc(sizeof *pf * nb);
	po = malloc(sizeof *po * nb);
	if (!pf || !po)
		goto out;
	size_t next = 0; /* the first span not pushed yet */
	for (size_t b = 0; b < nb; b++) {
		u128 at = bounds[b];
		if (b > 0 && at == bounds[b - 1])
			continue;
		while (next < ns && spans[next].first <= at)
			heap_push(heap, &nheap, &spans[next++]);
		while (nheap > 0 && heap[0]->last < at)
			heap_pop(heap, &nheap);
		int32_t owner = nheap ? (int32_t)heap[0]->idx : -1;
		if (np > 0 && po[np - 1] == owner)
			continue;
		pf[np] = at;
		po[np] = owner;
		np++;
	}
	*out_first = pf;
	*out_owner = po;
	*out_n = np;
	pf = NULL;
	po = NULL;
	rc = 0;
out:
	free(spans);
	free(heap);
	free(bounds);
	free(pf);
	free(po);
	return rc;
}

static uint64_t text_hash(const char *t, uint64_t seed)
{
	uint64_t h = 1469598103934665603ull ^ seed;
	for (; *t; t++)
		h = (h ^ (unsigned char)*t) * 1099511628211ull;
	return h;
}

/* range.group: the first range with the same family, labels and
 * granularity, and group_max;
 * other_of: the first range with the same labels (hash sets over the
 * ranges: O(n)). */
static int set_groups(struct ranges *r)
{
	size_t cap = 16;
	while (cap < 2 * r->n)
		cap *= 2;
	uint32_t *slots = calloc(cap, sizeof *slots), *oslots = calloc(cap, sizeof *oslots);
	uint32_t *other = malloc(sizeof *other * (r->n ? r->n : 1));
	if (!slots || !oslots || !other) {
		free(slots);
		free(oslots);
		free(other);
		return -ENOMEM;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct range *g = &r->v[i];
		uint64_t th = text_hash(g->text, 0);
		uint64_t h = text_hash(g->text, (uint64_t)g->granularity << 56 ^ g->family);
		size_t j = (size_t)h & (cap - 1);
		g->group = (uint32_t)i;
		g->id = (uint32_t)i;
		for (; slots[j]; j = (j + 1) & (cap - 1)) {
			const struct range *o = &r->v[slots[j] - 1];
			if (o->granularity == g->granularity && o->family == g->family &&
			    !strcmp(o->text, g->text)) {
				g->group = (uint32_t)(slots[j] - 1);
				g->id = g->group;
				break;
			}
		}
		if (!slots[j])
			slots[j] = (uint32_t)i + 1;
		other[i] = (uint32_t)i;
		for (j = (size_t)th & (cap - 1); oslots[j]; j = (j + 1) & (cap - 1))
			if (!strcmp(r->v[oslots[j] - 1].text, g->text)) {
				other[i] = oslots[j] - 1;
				break;
			}
		if (!oslots[j])
			oslots[j] = (uint32_t)i + 1;
	}
	/* a group's cap: the sum of its ranges' caps, none if one has none */
	for (size_t i = 0; i < r->n; i++) {
		struct range *g = &r->v[r->v[i].group];
		if (g == &r->v[i])
			g->group_max = g->max_addresses;
		else if (g->group_max && r->v[i].max_addresses)
			g->group_max += r->v[i].max_addresses;
		else
			g->group_max = 0;
	}
	free(slots);
	free(oslots);
	free(r->other_of);
	r->other_of = other;
	return 0;
}

/* The packed val of each piece (see RANGES_VAL_*). NULL on out of memory. */
static uint32_t *piece_vals(const struct ranges *r, const int32_t *owner, size_t n, int bits)
{
	uint32_t *v = malloc(sizeof *v * n);
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (owner[i] < 0) {
			v[i] = 0;
			continue;
		}
		const struct range *g = &r->v[owner[i]];
		v[i] = (g->group + 1) | (uint32_t)(g->granularity < bits ? g->granularity : 0)
		                            << 24;
	}
	return v;
}

/* The dir blocks of the dense /16s (see struct ranges_dir). */
static int build_dir(const uint32_t *first, const uint32_t *val, size_t n, const uint32_t *idx4,
                     uint32_t **out_blk, struct ranges_dir **out_dir)
{
	size_t nh = (size_t)1 << (32 - RANGES_IDX4_SHIFT), nb = 0;
	uint32_t *blk = calloc(nh, sizeof *blk);
	if (!blk)
		return -ENOMEM;
	for (size_t h = 0; h < nh; h++)
		if (idx4[h + 1] - idx4[h] + 1 >= RANGES_DENSE16)
			blk[h] = (uint32_t)++nb;
	struct ranges_dir *dir = nb ? calloc(nb << 8, sizeof *dir) : NULL;
	if (nb && !dir) {
		free(blk);
		return -ENOMEM;
	}
	for (size_t h = 0; h < nh; h++) {
		if (!blk[h])
			continue;
		size_t p = idx4[h]; /* the piece holding the /24's first address */
		for (uint32_t q = 0; q < 256; q++) {
			uint32_t base = (uint32_t)h << 16 | q << 8;
			while (p + 1 < n && first[p + 1] <= base)
				p++;
			struct ranges_dir *d = &dir[(size_t)(blk[h] - 1) << 8 | q];
			size_t k = 1;
			while (p + k < n && first[p + k] <= base + 255 && k <= 3)
				k++;
			if (k > 3)
				continue; /* n = 0: search */
			d->n = (uint8_t)k;
			for (size_t i = 0; i < k; i++) {
				d->val[i] = val[p + i];
				if (i)
					d->cut[i - 1] = (uint8_t)(first[p + i] & 255);
			}
		}
	}
	*out_blk = blk;
	*out_dir = dir;
	return 0;
}

/* The class (RANGES_CLASS_*) of pieces p to q (q included) over a bucket
 * of 2^shift addresses of width bits: the bucket's prefix is width - shift
 * bits long. */
static uint8_t bucket_class(const u128 *first, const uint32_t *val, size_t p, size_t q,
                            unsigned shift, unsigned width)
{
	unsigned len = 0;
	for (size_t i = p; i <= q; i++) {
		uint32_t v = val[i];
		if (!ranges_val_in(v))
			continue;
		unsigned l = ranges_val_rollup(v) ? ranges_val_rollup(v) : width;
		if (len && l != len)
			return RANGES_CLASS_LOOKUP;
		len = l;
	}
	if (!len)
		return RANGES_CLASS_EMPTY;
	if (len < width - shift)
		return RANGES_CLASS_LOOKUP; /* a prefix would reach past the bucket */
	u128 mask = len == width ? 0 : ((u128)1 << (width - len)) - 1;
	for (size_t i = p + 1; i <= q; i++)
		if (first[i] & mask)
			return RANGES_CLASS_LOOKUP; /* a boundary inside a prefix */
	return (uint8_t)len;
}

/* class4 or class6 (struct ranges) of the 65,536 buckets: bucket h starts
 * at base + (h << shift); idx[h] holds the piece of its first address. */
static uint8_t *build_class(const u128 *first, const uint32_t *val, size_t n, const uint32_t *idx,
                            u128 base, unsigned shift, unsigned width)
{
	uint8_t *c = malloc((size_t)1 << 16);
	if (!c)
		return NULL;
	for (size_t h = 0; h < ((size_t)1 << 16); h++) {
		u128 last = base + ((u128)h << shift) + (((u128)1 << shift) - 1);
		size_t p = idx[h], q = idx[h + 1];
		while (q > p && first[q] > last)
			q--;
		while (q + 1 < n && first[q + 1] <= last) /* idx[h + 1] short of the end */
			q++;
		c[h] = bucket_class(first, val, p, q, shift, width);
	}
	return c;
}

/* The class of an IPv6 piece alone (below lo6, from hi6 on). */
static uint8_t piece_class6(uint32_t v)
{
	if (!ranges_val_in(v))
		return RANGES_CLASS_EMPTY;
	return ranges_val_rollup(v) ? RANGES_CLASS_LOOKUP : 128;
}

int ranges_build(struct ranges *r)
{
	u128 *f4 = NULL, *f6 = NULL;
	int32_t *o4 = NULL, *o6 = NULL;
	uint32_t *first4 = NULL, *idx4 = NULL, *v4 = NULL, *v6 = NULL;
	size_t n4, n6;
	const size_t nidx = ((size_t)1 << (32 - RANGES_IDX4_SHIFT)) + 1;
	int rc = -ENOMEM;

	if (set_groups(r) || build_family(r, 4, &f4, &o4, &n4) || build_family(r, 6, &f6, &o6, &n6))
		goto out;
	first4 = malloc(sizeof *first4 * n4);
	idx4 = malloc(sizeof *idx4 * nidx);
	v4 = piece_vals(r, o4, n4, 32);
	v6 = piece_vals(r, o6, n6, 128);
	if (!first4 || !idx4 || !v4 || !v6)
		goto out;
	for (size_t i = 0; i < n4; i++)
		first4[i] = (uint32_t)f4[i];
	/* idx4[h]: the piece holding h << 16 (the last piece starting <= it) */
	size_t p = 0;
	for (size_t h = 0; h < nidx; h++) {
		uint64_t at = (uint64_t)h << RANGES_IDX4_SHIFT;
		if (at > 0xffffffffu)
			at = 0xffffffffu;
		while (p + 1 < n4 && first4[p + 1] <= at)
			p++;
		idx4[h] = (uint32_t)p;
	}
	uint32_t *blk16;
	struct ranges_dir *dir;
	/* idx6: the common top bits of every boundary, then 16 bits */
	u128 lo6 = n6 > 1 ? f6[1] : 1, hi6 = n6 > 1 ? f6[n6 - 1] : 1;
	unsigned common = 0;
	while (common < 112 && !(((lo6 ^ hi6) >> (127 - common)) & 1))
		common++;
	unsigned shift6 = 128 - common - 16;
	u128 base6 = common ? lo6 >> (128 - common) << (128 - common) : 0;
	uint32_t *idx6 = malloc(sizeof *idx6 * ((1u << 16) + 1));
	if (!idx6)
		goto out;
	for (size_t h = 0, q = 0; h <= (1u << 16); h++) {
		u128 at = base6 + ((u128)h << shift6);
		int past = h == (1u << 16) &&
		           (common == 0 || at >> (128 - common) != base6 >> (128 - common));
		while (q + 1 < n6 && (past || f6[q + 1] <= at))
			q++;
		idx6[h] = (uint32_t)q;
	}
	uint8_t *class4 = build_class(f4, v4, n4, idx4, 0, RANGES_IDX4_SHIFT, 32);
	uint8_t *class6 = build_class(f6, v6, n6, idx6, base6, shift6, 128);
	if (!class4 || !class6 || build_dir(first4, v4, n4, idx4, &blk16, &dir)) {
		free(class4);
		free(class6);
		free(idx6);
		goto out;
	}
	tables_free(r);
	r->class4 = class4;
	r->class6 = class6;
	r->class6_lo = piece_class6(v6[0]);
	r->class6_hi = piece_class6(v6[n6 - 1]);
	r->idx6 = idx6;
	r->lo6 = lo6;
	r->hi6 = hi6;
	r->shift6 = shift6;
	r->blk16 = blk16;
	r->dir = dir;
	r->p4_first = first4;
	r->p4_owner = o4;
	r->p4_val = v4;
	r->np4 = n4;
	r->idx4 = idx4;
	r->p6_first = f6;
	r->p6_owner = o6;
	r->p6_val = v6;
	r->np6 = n6;
	first4 = idx4 = v4 = v6 = NULL;
	o4 = o6 = NULL;
	f6 = NULL;
	rc = 0;
out:
	free(f4);
	free(o4);
	free(f6);
	free(o6);
	free(first4);
	free(idx4);
	free(v4);
	free(v6);
	return rc;
}

static uint32_t val_remap(const struct ranges *r, uint32_t v)
{
	if (!ranges_val_in(v))
		return v;
	return (v & ~RANGES_VAL_GROUP_MASK) | (r->v[ranges_val_group(v)].id + 1);
}

void ranges_set_ids(struct ranges *r, const uint32_t *ids)
{
	/* the vals hold group indexes until now (ranges_build) */
	for (size_t i = 0; i < r->n; i++)
		r->v[i].id = ids[r->v[i].group];
	if (r->p4_val != empty_val)
		for (size_t i = 0; i < r->np4; i++)
			r->p4_val[i] = val_remap(r, r->p4_val[i]);
	if (r->p6_val != empty_val)
		for (size_t i = 0; i < r->np6; i++)
			r->p6_val[i] = val_remap(r, r->p6_val[i]);
	size_t nb = 0;
	if (r->blk16 != empty_blk16)
		for (size_t h = 0; h < (size_t)1 << (32 - RANGES_IDX4_SHIFT); h++)
			nb = r->blk16[h] > nb ? r->blk16[h] : nb;
	for (size_t i = 0; i < nb << 8; i++)
		for (unsigned j = 0; j < r->dir[i].n; j++)
			r->dir[i].val[j] = val_remap(r, r->dir[i].val[j]);
}

int ranges_equal(const struct ranges *a, const struct ranges *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++) {
		const struct range *x = &a->v[i], *y = &b->v[i];
		if (x->family != y->family || x->granularity != y->granularity ||
		    memcmp(x->first, y->first, sizeof x->first) ||
		    memcmp(x->last, y->last, sizeof x->last) ||
		    x->max_addresses != y->max_addresses || x->nlabels != y->nlabels)
			return 0;
		for (size_t j = 0; j < x->nlabels; j++)
			if (strcmp(x->labels[j].name, y->labels[j].name) ||
			    strcmp(x->labels[j].value, y->labels[j].value))
				return 0;
	}
	return 1;
}
