/* DESIGN: address ranges.
 *
 * Parsed once at start-up from -r options, then read-only: capture threads
 * call ranges_lookup4/6 concurrently without locking. Overlapping ranges are
 * resolved when building: the address space is cut into disjoint segments,
 * each carrying the index of the first range (command-line order) that holds
 * it, so a lookup is one binary search whatever the order or overlap. */
#include "promacct/ranges.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ADDR_TEXT_MAX 64

typedef unsigned __int128 u128;

void ranges_init(struct ranges *r)
{
	memset(r, 0, sizeof *r);
}

void ranges_free(struct ranges *r)
{
	for (size_t i = 0; i < r->n; i++) {
		labels_free(r->v[i].labels, r->v[i].nlabels);
		free(r->v[i].labels);
		free(r->v[i].text);
	}
	free(r->v);
	free(r->seg4);
	free(r->seg6);
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

/* Parses an address; family 0 means either. */
static int parse_addr(const char *text, size_t len, uint8_t *out, uint8_t *family)
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
		if (labels_name_reserved(l.name)) {
			snprintf(err, errlen,
			         "label name '%s' is reserved (ip, interface, protocol, le, job, "
			         "instance and names starting with __)",
			         l.name);
			labels_free(&l, 1);
			return -EINVAL;
		}
		for (size_t i = 0; i < rg->nlabels; i++)
			if (!strcmp(rg->labels[i].name, l.name)) {
				snprintf(err, errlen, "label '%s' given twice", l.name);
				labels_free(&l, 1);
				return -EINVAL;
			}
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
	while (*p >= '0' && *p <= '9' && digits < 4) {
		v = v * 10 + (*p - '0');
		p++;
		digits++;
	}
	if (!digits || v > (family == 4 ? 32 : 128))
		return -EINVAL;
	*len = v;
	*end = p;
	return 0;
}

/* first/last of ADDRESS/LEN: host bits cleared and set. */
static void apply_prefix(struct range *rg, int len)
{
	int bits = rg->family == 4 ? 32 : 128;
	u128 a = to_u128(rg->first, rg->family);
	int hostbits = bits - len;
	u128 host = hostbits >= 128 ? ~(u128)0 : (((u128)1 << hostbits) - 1);
	from_u128(rg->first, rg->family, a & ~host);
	from_u128(rg->last, rg->family, (a & ~host) | host);
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
	if (parse_addr(first, (size_t)(first_end - first), rg->first, &rg->family))
		return "invalid address (expected FIRST-LAST or ADDRESS/LEN; IPv6 FIRST-LAST "
		       "needs brackets: [2001:db8::1]-[2001:db8::ff])";
	if (last) {
		if (parse_addr(last, (size_t)(last_end - last), rg->last, &fam2))
			return "invalid last address";
		if (fam2 != rg->family)
			return "mixes IPv4 and IPv6";
	} else if (*p == '/') {
		if (parse_prefix_len(p + 1, &p, rg->family, &len))
			return "invalid prefix length";
		apply_prefix(rg, len);
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

	struct buf b;
	buf_init(&b, 1 << 20);
	for (size_t i = 0; i < rg.nlabels; i++) {
		buf_append_char(&b, ',');
		buf_append_str(&b, rg.labels[i].name);
		buf_append(&b, "=\"", 2);
		labels_escape_value(&b, rg.labels[i].value);
		buf_append_char(&b, '"');
	}
	buf_append_char(&b, '\0');
	if (b.err) {
		buf_free(&b);
		rc = -ENOMEM;
		goto out;
	}
	rg.text = b.data;

	struct range *nv = realloc(r->v, (r->n + 1) * sizeof *nv);
	if (!nv) {
		rc = -ENOMEM;
		goto out;
	}
	r->v = nv;
	r->v[r->n++] = rg;
	memset(&rg, 0, sizeof rg);
out:
	labels_free(rg.labels, rg.nlabels);
	free(rg.labels);
	free(rg.text);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}

static int cmp_u128(const void *a, const void *b)
{
	u128 x = *(const u128 *)a, y = *(const u128 *)b;
	return x < y ? -1 : x > y;
}

/* Cuts the space of one family into segments owned by the first matching
 * range. Boundaries are every first and last+1; within two consecutive
 * boundaries, ownership cannot change. */
static int build_family(struct ranges *r, int family, u128 **out_first, u128 **out_last,
                        uint32_t **out_idx, size_t *out_n)
{
	size_t nb = 0, cnt = 0;
	u128 *bounds = malloc(sizeof *bounds * (2 * r->n + 1));
	u128 *sf = NULL, *sl = NULL;
	uint32_t *si = NULL;
	u128 maxv = family == 4 ? (u128)0xffffffffu : ~(u128)0;
	if (!bounds)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++) {
		if (r->v[i].family != family)
			continue;
		bounds[nb++] = to_u128(r->v[i].first, family);
		u128 last = to_u128(r->v[i].last, family);
		if (last != maxv)
			bounds[nb++] = last + 1;
	}
	qsort(bounds, nb, sizeof *bounds, cmp_u128);
	sf = malloc(sizeof *sf * (nb + 1));
	sl = malloc(sizeof *sl * (nb + 1));
	si = malloc(sizeof *si * (nb + 1));
	if (!sf || !sl || !si) {
		free(bounds);
		free(sf);
		free(sl);
		free(si);
		return -ENOMEM;
	}
	for (size_t b = 0; b < nb; b++) {
		if (b > 0 && bounds[b] == bounds[b - 1])
			continue;
		u128 start = bounds[b];
		size_t nx = b + 1;
		while (nx < nb && bounds[nx] == start)
			nx++;
		u128 end = nx < nb ? bounds[nx] - 1 : maxv;
		long owner = -1;
		for (size_t i = 0; i < r->n && owner < 0; i++) {
			if (r->v[i].family != family)
				continue;
			if (to_u128(r->v[i].first, family) <= start &&
			    start <= to_u128(r->v[i].last, family))
				owner = (long)i;
		}
		if (owner < 0)
			continue;
		if (cnt > 0 && si[cnt - 1] == (uint32_t)owner && sl[cnt - 1] + 1 == start) {
			sl[cnt - 1] = end;
			continue;
		}
		sf[cnt] = start;
		sl[cnt] = end;
		si[cnt] = (uint32_t)owner;
		cnt++;
	}
	free(bounds);
	*out_first = sf;
	*out_last = sl;
	*out_idx = si;
	*out_n = cnt;
	return 0;
}

int ranges_build(struct ranges *r)
{
	u128 *f, *l;
	uint32_t *idx;
	size_t n;
	int rc;

	free(r->seg4);
	free(r->seg6);
	r->seg4 = NULL;
	r->seg6 = NULL;
	rc = build_family(r, 4, &f, &l, &idx, &n);
	if (rc)
		return rc;
	r->seg4 = calloc(n ? n : 1, sizeof *r->seg4);
	if (r->seg4)
		for (size_t i = 0; i < n; i++)
			r->seg4[i] = (struct range_seg4){(uint32_t)f[i], (uint32_t)l[i], idx[i]};
	r->nseg4 = n;
	free(f);
	free(l);
	free(idx);
	if (!r->seg4)
		return -ENOMEM;
	rc = build_family(r, 6, &f, &l, &idx, &n);
	if (rc)
		return rc;
	r->seg6 = calloc(n ? n : 1, sizeof *r->seg6);
	if (r->seg6)
		for (size_t i = 0; i < n; i++)
			r->seg6[i] = (struct range_seg6){f[i], l[i], idx[i]};
	r->nseg6 = n;
	free(f);
	free(l);
	free(idx);
	return r->seg6 ? 0 : -ENOMEM;
}

int ranges_lookup6_slow(const struct ranges *r, const uint8_t *addr)
{
	uint64_t hi64, lo64;
	memcpy(&hi64, addr, 8);
	memcpy(&lo64, addr + 8, 8);
	u128 a = (u128)__builtin_bswap64(hi64) << 64 | __builtin_bswap64(lo64);
	size_t lo = 0, hi = r->nseg6;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->seg6[mid].last < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < r->nseg6 && r->seg6[lo].first <= a)
		return (int)r->seg6[lo].index;
	return -1;
}
