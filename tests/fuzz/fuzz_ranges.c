/* Fuzz target: the range spec parser (-r FIRST-LAST / ADDRESS/LEN with
 * :name=value labels), the label pair parser, and the range lookup.
 *
 * Input: newline-separated lines, each given to ranges_add and to
 * labels_parse_pair (at most 64 lines). Checks: accepted ranges have
 * first <= last and a valid family; their rendered label text is
 * ,name="value"... with valid names and strictly escaped UTF-8 values (what
 * the page needs); a pair's name is a valid label name; after ranges_build,
 * the lookup of every range bound and its neighbours (and of addresses made
 * from the input) answers the first matching range in command-line order,
 * as a linear scan does. */
#include "promacct/labels.h"
#include "promacct/ranges.h"
#include "fuzz.h"
#include "textcheck.h"

typedef unsigned __int128 u128;

static u128 addr_val(const uint8_t *a, int family)
{
	u128 v = 0;
	for (int i = 0; i < (family == 4 ? 4 : 16); i++)
		v = (v << 8) | a[i];
	return v;
}

static void val_addr(uint8_t *a, int family, u128 v)
{
	memset(a, 0, 16);
	for (int i = (family == 4 ? 4 : 16) - 1; i >= 0; i--) {
		a[i] = (uint8_t)v;
		v >>= 8;
	}
}

static int linear(const struct ranges *r, int family, u128 a)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->v[i].family == family && addr_val(r->v[i].first, family) <= a &&
		    a <= addr_val(r->v[i].last, family))
			return (int)i;
	return -1;
}

static void check_lookup(const struct ranges *r, int family, u128 a)
{
	int want = linear(r, family, a);
	int got;
	if (family == 4) {
		got = ranges_lookup4(r, (uint32_t)a);
		/* the capture threads' lookup: the owner's group, through a hint */
		uint32_t wantv = ranges_val4(r, (uint32_t)a);
		FUZZ_CHECK(ranges_val_in(wantv) == (want >= 0) &&
		               (want < 0 || ranges_val_group(wantv) == r->v[want].group),
		           "val %#x for range %d", wantv, want);
		struct ranges_hint4 h;
		ranges_hint4_init(&h, r);
		uint32_t hinted = ranges_val4_hint(r, (uint32_t)a, &h);
		FUZZ_CHECK(hinted == wantv, "hinted lookup %#x, want %#x", hinted, wantv);
		hinted = ranges_val4_hint(r, (uint32_t)a, &h); /* through the hint */
		FUZZ_CHECK(hinted == wantv, "second hinted lookup %#x, want %#x", hinted, wantv);
	} else {
		uint8_t b[16];
		val_addr(b, 6, a);
		got = ranges_lookup6(r, b);
	}
	FUZZ_CHECK(got == want, "IPv%d lookup %d, want %d", family, got, want);
}

static void check_label_text(const char *t)
{
	const char *end = t + strlen(t);
	while (t < end) {
		FUZZ_CHECK(*t == ',', "label text does not start with ,: %s", t);
		t++;
		size_t n = tc_name(t, 0);
		FUZZ_CHECK(n > 0, "invalid label name in %s", t);
		t += n;
		FUZZ_CHECK(*t == '=', "no = after the label name: %s", t);
		t++;
		char v[8];
		size_t q = tc_quoted(t, end, v, sizeof v);
		FUZZ_CHECK(q > 0, "label value not strictly escaped UTF-8: %s", t);
		t += q;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 8192)
		return 0;
	struct fuzz_in in = {data, size};
	struct ranges r;
	char err[512];
	char *line;
	int lines = 0;
	ranges_init(&r);
	while (lines++ < 64 && (line = fuzz_piece(&in, '\n'))) {
		size_t before = r.n;
		int rc = ranges_add(&r, line, err, sizeof err);
		FUZZ_CHECK(rc == 0 || rc == -EINVAL, "ranges_add: %d", rc);
		if (rc == 0) {
			FUZZ_CHECK(r.n == before + 1, "range not added");
			const struct range *g = &r.v[r.n - 1];
			FUZZ_CHECK(g->family == 4 || g->family == 6, "family %u", g->family);
			FUZZ_CHECK(addr_val(g->first, g->family) <= addr_val(g->last, g->family),
			           "first > last");
			FUZZ_CHECK(g->text != NULL, "no label text");
			check_label_text(g->text);
			for (size_t i = 0; i < g->nlabels; i++)
				FUZZ_CHECK(labels_name_valid(g->labels[i].name) &&
				               !labels_name_reserved(g->labels[i].name),
				           "label name '%s' accepted", g->labels[i].name);
		} else {
			FUZZ_CHECK(r.n == before, "failed ranges_add changed the set");
			FUZZ_CHECK(memchr(err, '\0', sizeof err) && err[0], "no error text");
		}
		struct label l = {0};
		rc = labels_parse_pair(line, &l, err, sizeof err);
		FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM, "labels_parse_pair: %d", rc);
		if (rc == 0) {
			FUZZ_CHECK(labels_name_valid(l.name), "pair name '%s' accepted", l.name);
			labels_free(&l, 1);
		}
		free(line);
	}
	FUZZ_CHECK(ranges_build(&r) == 0, "ranges_build");
	for (size_t i = 0; i < r.n; i++) {
		int f = r.v[i].family;
		u128 lo = addr_val(r.v[i].first, f), hi = addr_val(r.v[i].last, f);
		u128 max = f == 4 ? (u128)0xffffffffu : ~(u128)0;
		check_lookup(&r, f, lo);
		check_lookup(&r, f, hi);
		check_lookup(&r, f, lo + (hi - lo) / 2);
		if (lo > 0)
			check_lookup(&r, f, lo - 1);
		if (hi < max)
			check_lookup(&r, f, hi + 1);
	}
	for (size_t i = 0; i + 4 <= size && i < 64; i += 4) {
		uint32_t a = (uint32_t)data[i] << 24 | (uint32_t)data[i + 1] << 16 |
		             (uint32_t)data[i + 2] << 8 | data[i + 3];
		check_lookup(&r, 4, a);
		check_lookup(&r, 6, (u128)a << 96);
	}
	ranges_free(&r);
	return 0;
}
