/* Specification of the remote-write encoding (src/remote_write.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <snappy-c.h>
#include <string.h>

#include "promacct/labels.h"
#include "promacct/remote_write.h"
#include "fixture.h"
#include "remote.pb-c.h"

struct collected {
	Prometheus__WriteRequest *req[256];
	size_t n;
	size_t samples[256];
};

static int collect(void *ctx, char *body, size_t len, size_t nsamples)
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
	assert_true(c->n < 256);
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

static struct fixture *sample_state(void)
{
	const char *ranges[] = {"10.0.0.0/8:Customer=acme:zone=", "::/0:site=ams"};
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
	struct label ext[] = {{"job", "promacct"}, {"instance", "h1"}, {"interface", "ignored"}};
	struct rw_label_set es = {ext, 3};
	struct collected c = {0};
	assert_int_equal(remote_write_encode(&f->reg, &es, 1700000000123, 2000, 0, collect, &c), 0);
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

static void test_values_and_le_match_the_text_page(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected c = {0};
	assert_int_equal(remote_write_encode(&f->reg, &es, 1, 2000, 0, collect, &c), 0);
	int found = 0;
	for (size_t i = 0; i < c.req[0]->n_timeseries; i++) {
		const Prometheus__TimeSeries *ts = c.req[0]->timeseries[i];
		const char *name = label(ts, "__name__");
		if (strcmp(name, "promacct_packet_size_bytes_all_bucket"))
			continue;
		const char *le = label(ts, "le");
		double v = ts->samples[0]->value;
		if (!strcmp(le, "100"))
			assert_true(v == 1), found++;
		else if (!strcmp(le, "1000"))
			assert_true(v == 2), found++;
		else if (!strcmp(le, "+Inf"))
			assert_true(v == 3), found++;
	}
	assert_int_equal(found, 3);
	collected_free(&c);
	fixture_free(f);
}

static void test_large_states_are_split_by_max_samples(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected all = {0}, split = {0};
	assert_int_equal(remote_write_encode(&f->reg, &es, 5, 100000, 0, collect, &all), 0);
	assert_int_equal(remote_write_encode(&f->reg, &es, 5, 7, 0, collect, &split), 0);
	size_t total = all.req[0]->n_timeseries, got = 0;
	assert_true(split.n > 1);
	for (size_t i = 0; i < split.n; i++) {
		assert_true(split.req[i]->n_timeseries <= 7);
		assert_int_equal(split.req[i]->n_timeseries, split.samples[i]);
		/* metadata only in the first request */
		assert_true(i == 0 ? split.req[i]->n_metadata > 0 : split.req[i]->n_metadata == 0);
		got += split.req[i]->n_timeseries;
	}
	assert_int_equal(got, total);
	collected_free(&all);
	collected_free(&split);
	fixture_free(f);
}

static void test_stale_markers_use_the_special_nan(void **state)
{
	(void)state;
	struct fixture *f = sample_state();
	struct rw_label_set es = {NULL, 0};
	struct collected c = {0};
	assert_int_equal(remote_write_encode(&f->reg, &es, 9, 2000, 1, collect, &c), 0);
	for (size_t i = 0; i < c.req[0]->n_timeseries; i++) {
		uint64_t bits;
		double v = c.req[0]->timeseries[i]->samples[0]->value;
		memcpy(&bits, &v, sizeof bits);
		assert_true(bits == 0x7ff0000000000002ull);
	}
	double n = remote_write_stale_nan();
	assert_true(isnan(n));
	collected_free(&c);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_series_are_valid_sorted_and_complete),
	    cmocka_unit_test(test_values_and_le_match_the_text_page),
	    cmocka_unit_test(test_large_states_are_split_by_max_samples),
	    cmocka_unit_test(test_stale_markers_use_the_special_nan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
