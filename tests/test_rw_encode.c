/* Specification of the remote-write encoding (src/rw_encode.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <snappy-c.h>
#include <stdio.h>
#include <string.h>

#include "promacct/labels.h"
#include "promacct/rw_encode.h"
#include "fixture.h"
#include "remote.pb-c.h"

#define MAX_REQ 1024

struct collected {
	Prometheus__WriteRequest *req[MAX_REQ];
	size_t n;
	size_t samples[MAX_REQ];
	size_t shard[MAX_REQ];
};

static int collect(void *ctx, size_t shard, char *body, size_t len, size_t nsamples)
{
	struct collected *c = ctx;
	size_t ulen;
	/* block format: never the framed stream identifier */
	assert_false(len >= 10 && !memcmp(body, "\xff\x06\x00\x00sNaPpY", 10));
	assert_int_equal(snappy_uncompressed_length(body, len, &ulen), SNAPPY_OK);
	char *raw = malloc(ulen ? ulen : 1);
	assert_int_equal(snappy_uncompress(body, len, raw, &ulen), SNAPPY_OK);
	Prometheus__WriteRequest *r =
	    prometheus__write_request__unpack(NULL, ulen, (const uint8_t *)raw);
	assert_non_null(r);
	/* the bytes are exactly protobuf-c's own packing of the request */
	size_t plen = prometheus__write_request__get_packed_size(r);
	assert_int_equal(plen, ulen);
	uint8_t *again = malloc(plen ? plen : 1);
	assert_int_equal(prometheus__write_request__pack(r, again), plen);
	assert_memory_equal(again, raw, plen);
	free(again);
	assert_true(c->n < MAX_REQ);
	c->shard[c->n] = shard;
	c->samples[c->n] = nsamples;
	c->req[c->n++] = r;
	free(raw);
	free(body);
	return 0;
}

static void collected_free(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++)
		prometheus__write_request__free_unpacked(c->req[i], NULL);
}

static const char *label(const Prometheus__TimeSeries *ts, const char *name)
{
	for (size_t i = 0; i < ts->n_labels; i++)
		if (!strcmp(ts->labels[i]->name, name))
			return ts->labels[i]->value;
	return NULL;
}

/* rw_encode with the common options. */
static int encode(struct registry *reg, const struct rw_label_set *ext, int64_t ts,
                  size_t max_samples, size_t nshards, int stale, struct collected *c)
{
	struct rw_encode_opts o = {ext, ts, max_samples, nshards, stale, -1, collect, c, 0};
	return rw_encode(reg, &o);
}

static struct fixture *sample_state(void)
{
	const char *ranges[] = {"10.0.0.0/8:Customer=acme", "::/0:site=ams"};
	struct fixture *f = fixture_new("100,1000", ranges, 2, 100);
	fixture_ip(f, NULL, "10.0.0.1", "10.0.0.2", 6, 114);
	fixture_ip(f, NULL, "10.0.0.2", "10.0.0.1", 17, 1514);
	fixture_ip(f, NULL, "2001:db8::1", "2001:db8::2", 58, 200);
	return f;
}

static void test_series_are_valid_sorted_and_complete(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	/* an empty value (range labels cannot have one) is dropped */
	struct label ext[] = {
	    {"job", "promacct"}, {"instance", "h1"}, {"interface", "ignored"}, {"zone", ""}};
	struct rw_label_set es = {ext, 4};
	struct collected c = {0};
	assert_int_equal(encode(&f->reg, &es, 1700000000123, 2000, 1, 0, &c), 0);
	assert_int_equal(c.n, 1);
	Prometheus__WriteRequest *r = c.req[0];
	assert_true(r->n_metadata >= 10);
	size_t hist_series = 0;
	for (size_t i = 0; i < r->n_timeseries; i++) {
		const Prometheus__TimeSeries *ts = r->timeseries[i];
		assert_int_equal(ts->n_samples, 1);
		assert_int_equal(ts->samples[0]->timestamp, 1700000000123);
		for (size_t k = 0; k < ts->n_labels; k++) {
			const char *n = ts->labels[k]->name;
			assert_true(k == 0 || !strcmp(n, "__name__") || labels_name_valid(n));
			assert_true(ts->labels[k]->value[0] != '\0'); /* empty labels dropped */
			if (k > 0) /* strictly ascending byte order: sorted and unique */
				assert_true(strcmp(ts->labels[k - 1]->name, n) < 0);
		}
		const char *name = label(ts, "__name__");
		assert_non_null(name);
		assert_true(labels_metric_name_valid(name));
		assert_string_equal(label(ts, "job"), "promacct");
		assert_string_equal(label(ts, "instance"), "h1");
		assert_null(label(ts, "zone"));
		if (!strncmp(name, "promacct_packet_size_bytes_ipv4_tx", 34)) {
			hist_series++;
			assert_string_equal(label(ts, "interface"), "eth0"); /* series wins */
			assert_string_equal(label(ts, "Customer"), "acme");
			/* "Customer" sorts before "__name__" in byte order */
			assert_string_equal(ts->labels[0]->name, "Customer");
		}
	}
	/* 2 tx series x (3 buckets + sum + count) */
	assert_int_equal(hist_series, 10);
	collected_free(&c);
	fixture_free(f);
}

/* A sample as "name{a=x,b=y}" with labels sorted and empty values left out,
 * so the text page and the protobuf series compare as strings. */
struct keyed {
	char key[512];
	double value;
};

static int keyed_cmp(const void *a, const void *b)
{
	return strcmp(((const struct keyed *)a)->key, ((const struct keyed *)b)->key);
}

static int pair_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void make_key(char *out, size_t cap, const char *name, char **pairs, size_t n)
{
	qsort(pairs, n, sizeof *pairs, pair_cmp);
	size_t o = (size_t)snprintf(out, cap, "%s{", name);
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", pairs[i]);
	snprintf(out + o, cap - o, "}");
}

/* Parses the sample lines of a text page (values in the fixture hold no
 * escapes, commas or spaces). Returns the count. */
static size_t parse_page(char *page, struct keyed *out, size_t cap)
{
	size_t n = 0;
	for (char *line = strtok(page, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#')
			continue;
		assert_true(n < cap);
		char *sp = strrchr(line, ' ');
		assert_non_null(sp);
		*sp = '\0';
		out[n].value = strtod(sp + 1, NULL);
		char *brace = strchr(line, '{');
		char *pairs[64];
		size_t np = 0;
		char pbuf[64][128];
		if (brace) {
			*brace = '\0';
			char *end = strrchr(brace + 1, '}');
			*end = '\0';
			for (char *p = strtok_r(brace + 1, ",", &end); p;
			     p = strtok_r(NULL, ",", &end)) {
				char *eq = strchr(p, '=');
				if (!strcmp(eq + 1, "\"\""))
					continue; /* remote write drops empty values */
				*eq = '\0';
				snprintf(pbuf[np], sizeof pbuf[np], "%s=%.*s", p,
				         (int)strlen(eq + 2) - 1, eq + 2);
				pairs[np] = pbuf[np];
				np++;
			}
		}
		make_key(out[n].key, sizeof out[n].key, line, pairs, np);
		n++;
	}
	return n;
}

static size_t keyed_requests(const struct collected *c, struct keyed *out, size_t cap)
{
	size_t n = 0;
	for (size_t r = 0; r < c->n; r++)
		for (size_t i = 0; i < c->req[r]->n_timeseries; i++) {
			const Prometheus__TimeSeries *ts = c->req[r]->timeseries[i];
			char pbuf[64][128], *pairs[64];
			size_t np = 0;
			for (size_t k = 0; k < ts->n_labels; k++) {
				if (!strcmp(ts->labels[k]->name, "__name__"))
					continue;
				snprintf(pbuf[np], sizeof pbuf[np], "%s=%s", ts->labels[k]->name,
				         ts->labels[k]->value);
				pairs[np] = pbuf[np];
				np++;
			}
			assert_true(n < cap);
			make_key(out[n].key, sizeof out[n].key, label(ts, "__name__"), pairs, np);
			out[n].value = ts->samples[0]->value;
			n++;
		}
	return n;
}

static void test_every_sample_matches_the_text_page(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected c = {0};
	assert_int_equal(encode(&f->reg, &es, 1, 7, 3, 0, &c), 0);
	char *page = fixture_render(&f->reg);
	static struct keyed want[512], got[512];
	size_t nw = parse_page(page, want, 512);
	size_t ng = keyed_requests(&c, got, 512);
	free(page);
	assert_true(nw > 30);
	assert_int_equal(ng, nw); /* the same series, no more, no fewer */
	qsort(want, nw, sizeof *want, keyed_cmp);
	qsort(got, ng, sizeof *got, keyed_cmp);
	for (size_t i = 0; i < nw; i++) {
		assert_string_equal(got[i].key, want[i].key);
		assert_true(got[i].value == want[i].value);
	}
	collected_free(&c);
	fixture_free(f);
}

static void test_large_states_are_split_by_max_samples(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected all = {0}, split = {0};
	assert_int_equal(encode(&f->reg, &es, 5, 100000, 1, 0, &all), 0);
	assert_int_equal(encode(&f->reg, &es, 5, 7, 1, 0, &split), 0);
	size_t total = all.req[0]->n_timeseries, got = 0, meta = 0;
	assert_true(split.n > 1);
	for (size_t i = 0; i < split.n; i++) {
		assert_true(split.req[i]->n_timeseries <= 7);
		assert_int_equal(split.req[i]->n_timeseries, split.samples[i]);
		got += split.req[i]->n_timeseries;
		meta += split.req[i]->n_metadata;
	}
	assert_int_equal(got, total);
	/* each family's metadata once, whichever request carries it */
	assert_int_equal(meta, all.req[0]->n_metadata);
	collected_free(&all);
	collected_free(&split);
	fixture_free(f);
}

/* Metadata of a family goes with a request no later than the family's
 * first series (the old encoder sent only the families met before the
 * first request). */
static void test_metadata_precedes_or_accompanies_its_series(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected c = {0};
	assert_int_equal(encode(&f->reg, &es, 5, 3, 4, 0, &c), 0);
	for (size_t r = 0; r < c.n; r++)
		for (size_t i = 0; i < c.req[r]->n_timeseries; i++) {
			const char *name = label(c.req[r]->timeseries[i], "__name__");
			int seen = 0;
			for (size_t q = 0; q <= r && !seen; q++)
				for (size_t m = 0; m < c.req[q]->n_metadata; m++) {
					const char *fam = c.req[q]->metadata[m]->metric_family_name;
					if (!strncmp(name, fam, strlen(fam)))
						seen = 1;
				}
			assert_true(seen);
		}
	collected_free(&c);
	fixture_free(f);
}

/* Shards: every series of a histogram (buckets, sum, count) lands in one
 * shard, the same one in every snapshot, and no request mixes shards. */
static void test_a_series_always_lands_in_the_same_shard(void **state)
{
	(void)state;
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new("100,1000", ranges, 1, 1000);
	char a[32], b[32];
	for (int i = 0; i < 200; i++) {
		snprintf(a, sizeof a, "10.0.%d.%d", i / 250, i % 250 + 1);
		snprintf(b, sizeof b, "10.1.%d.%d", i / 250, i % 250 + 1);
		fixture_ip(f, NULL, a, b, 6, 100 + (uint32_t)i);
	}
	struct rw_label_set es = {NULL, 0};
	struct collected c1 = {0}, c2 = {0};
	assert_int_equal(encode(&f->reg, &es, 5, 50, 4, 0, &c1), 0);
	assert_int_equal(encode(&f->reg, &es, 6, 50, 4, 0, &c2), 0);
	/* ip+direction -> shard, over both snapshots */
	static char keys[2048][64];
	static size_t shard_of[2048];
	size_t nk = 0, used[4] = {0};
	struct collected *cs[2] = {&c1, &c2};
	for (int k = 0; k < 2; k++)
		for (size_t r = 0; r < cs[k]->n; r++) {
			assert_true(cs[k]->shard[r] < 4);
			used[cs[k]->shard[r]]++;
			for (size_t i = 0; i < cs[k]->req[r]->n_timeseries; i++) {
				const Prometheus__TimeSeries *ts = cs[k]->req[r]->timeseries[i];
				const char *ip = label(ts, "ip");
				if (!ip)
					continue;
				char key[64];
				snprintf(key, sizeof key, "%s/%s", ip,
				         strstr(label(ts, "__name__"), "_tx") ? "tx" : "rx");
				size_t j = 0;
				while (j < nk && strcmp(keys[j], key))
					j++;
				if (j == nk) {
					assert_true(nk < 2048);
					snprintf(keys[nk], sizeof keys[nk], "%s", key);
					shard_of[nk++] = cs[k]->shard[r];
				}
				assert_int_equal(shard_of[j], cs[k]->shard[r]);
			}
		}
	assert_int_equal(nk, 400);
	for (int s = 0; s < 4; s++)
		assert_true(used[s] > 0); /* the hash spreads them */
	collected_free(&c1);
	collected_free(&c2);
	fixture_free(f);
}

static void test_stale_markers_use_the_special_nan(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected c = {0};
	assert_int_equal(encode(&f->reg, &es, 9, 2000, 1, 1, &c), 0);
	for (size_t i = 0; i < c.req[0]->n_timeseries; i++) {
		uint64_t bits;
		double v = c.req[0]->timeseries[i]->samples[0]->value;
		memcpy(&bits, &v, sizeof bits);
		assert_true(bits == 0x7ff0000000000002ull);
	}
	double n = rw_stale_nan();
	assert_true(isnan(n));
	collected_free(&c);
	fixture_free(f);
}

/* Defect 5 of issue 13: labels beyond the limit were cut silently (job and
 * instance included). Now the snapshot fails with -E2BIG and nothing of it
 * is emitted with labels missing. */
static void test_too_many_labels_fail_loudly_never_cut(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	static char names[RW_MAX_LABELS][16];
	struct label ext[RW_MAX_LABELS];
	for (int i = 0; i < RW_MAX_LABELS; i++) {
		snprintf(names[i], sizeof names[i], "x%02d", i);
		ext[i].name = names[i];
		ext[i].value = (char *)"v";
	}
	struct collected c = {0};
	struct rw_label_set fits = {ext, RW_MAX_LABELS - 8}; /* + interface, ip, ... */
	assert_int_equal(encode(&f->reg, &fits, 1, 2000, 1, 0, &c), 0);
	for (size_t i = 0; i < c.req[0]->n_timeseries; i++)
		assert_true(c.req[0]->timeseries[i]->n_labels <= RW_MAX_LABELS);
	collected_free(&c);
	struct collected c2 = {0};
	struct rw_label_set too_many = {ext, RW_MAX_LABELS};
	assert_int_equal(encode(&f->reg, &too_many, 1, 2000, 1, 0, &c2), -E2BIG);
	for (size_t r = 0; r < c2.n; r++)
		for (size_t i = 0; i < c2.req[r]->n_timeseries; i++)
			assert_non_null(label(c2.req[r]->timeseries[i], names[RW_MAX_LABELS - 1]));
	collected_free(&c2);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_series_are_valid_sorted_and_complete),
	    cmocka_unit_test(test_every_sample_matches_the_text_page),
	    cmocka_unit_test(test_large_states_are_split_by_max_samples),
	    cmocka_unit_test(test_metadata_precedes_or_accompanies_its_series),
	    cmocka_unit_test(test_a_series_always_lands_in_the_same_shard),
	    cmocka_unit_test(test_stale_markers_use_the_special_nan),
	    cmocka_unit_test(test_too_many_labels_fail_loudly_never_cut),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
