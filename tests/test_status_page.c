/* The status page: what its sampler keeps and what the page shows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "promacct/status_page.h"
#include "fixture.h"

/* not inlined: gcc 12 at -O3 then takes the pointers into the page for
 * pointers to this function's local (-Wdangling-pointer false positive) */
__attribute__((noinline)) static char *page(struct status_page *p)
{
	char *html = NULL;
	size_t len = 0;
	assert_int_equal(status_page_render(p, &html, &len), 0);
	assert_int_equal(strlen(html), len);
	return html;
}

static struct status_page *sampler(struct fixture *f)
{
	char err[256];
	struct status_page *p =
	    status_page_new(&(struct status_page_opts){1.0}, &f->reg, err, sizeof err);
	assert_non_null(p);
	return p;
}

/* n packets of `size` bytes from src to dst */
static void traffic(struct fixture *f, const char *src, const char *dst, int n, uint32_t size)
{
	for (int i = 0; i < n; i++)
		fixture_ip(f, NULL, src, dst, 17, size);
}

/* The row of an address in the top-talkers table, or NULL. */
static const char *row_of(const char *html, const char *ip)
{
	char needle[96];
	snprintf(needle, sizeof needle, "<td class=\"addr\">%s</td>", ip);
	return strstr(html, needle);
}

static void test_top_talkers_busiest_first_with_bytes_and_packets(void **state)
{
	(void)state;
	const char *r[] = {"10.0.0.0/8:customer=acme"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, r, 1, 1000);
	struct status_page *p = sampler(f);
	traffic(f, "10.0.0.1", "192.0.2.1", 1, 100);
	traffic(f, "10.0.0.2", "192.0.2.1", 1, 100);
	assert_int_equal(status_page_sample(p, 100), 0); /* admitted */
	assert_int_equal(status_page_sample(p, 101), 0); /* first sample of their own */
	char *html = page(p);
	assert_null(row_of(html, "10.0.0.1")); /* one sample: no rate yet */
	free(html);
	traffic(f, "10.0.0.1", "192.0.2.1", 10, 1000);
	traffic(f, "10.0.0.2", "192.0.2.1", 30, 1000);
	traffic(f, "192.0.2.1", "10.0.0.2", 5, 200);
	assert_int_equal(status_page_sample(p, 102), 0);
	html = page(p);
	const char *a = row_of(html, "10.0.0.1"), *b = row_of(html, "10.0.0.2");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(b < a); /* the busier first */
	/* 10.0.0.2: in 5 x 186 B, out 30 x 986 B (IP lengths of the frames),
	 * 5 packets in, 30 out, over the 1 s it has been a candidate */
	assert_non_null(strstr(b, "<td>customer=acme</td><td class=\"n\">930 B</td>"
	                          "<td class=\"n\">29.6 kB</td><td class=\"n\">5 </td>"
	                          "<td class=\"n\">30 </td><td class=\"n\">1 s</td>"));
	free(html);
	status_page_free(p);
	fixture_free(f);
}

static void test_chart_has_a_line_per_interface_with_its_rate(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, NULL, 0, 1000);
	struct status_page *p = sampler(f);
	assert_int_equal(status_page_sample(p, 10), 0);
	char *html = page(p);
	assert_null(strstr(html, "<polyline")); /* one point: no rate to draw */
	free(html);
	traffic(f, "10.0.0.1", "192.0.2.1", 100, 1264); /* 1 Mbit of IP packets */
	assert_int_equal(status_page_sample(p, 11), 0);
	traffic(f, "10.0.0.1", "192.0.2.1", 100, 1264);
	assert_int_equal(status_page_sample(p, 12), 0);
	html = page(p);
	const char *line = strstr(html, "<polyline class=\"series\" stroke=\"#1f77b4\" "
	                                "data-interface=\"eth0\" points=\"");
	assert_non_null(line);
	/* two rates at the right edge (x 503.5: 1 s of 15 min before 504), at
	 * the top of the chart (y 0: the maximum) */
	assert_non_null(strstr(line, "points=\"503.5,0.0 504.0,0.0 \""));
	/* the bits/s chart's axis tops at the 1 Mb/s the line reaches */
	assert_non_null(strstr(html, ">1 Mb/s</text>"));
	assert_non_null(strstr(html, ">100 p/s</text>"));
	assert_non_null(strstr(html, ">750 kb/s</text>")); /* the grid lines */
	assert_null(strstr(html, "e+"));                   /* never 1e+03 kb/s */
	free(html);
	status_page_free(p);
	fixture_free(f);
}

static void test_outside_text_is_escaped(void **state)
{
	(void)state;
	const char *r[] = {"10.0.0.0/8:customer=<script>alert(1)</script>&\"'"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, r, 1, 1000);
	struct status_page *p = sampler(f);
	for (int t = 0; t < 3; t++) {
		traffic(f, "10.0.0.1", "192.0.2.1", 1, 100);
		assert_int_equal(status_page_sample(p, t), 0);
	}
	char *html = page(p);
	assert_non_null(row_of(html, "10.0.0.1"));
	assert_null(strstr(html, "<script>alert"));
	assert_non_null(
	    strstr(html, "customer=&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"));
	free(html);
	status_page_free(p);
	fixture_free(f);
}

/* Thousands of addresses: the set stays at its bound, and a heavy talker
 * that starts late gets in and on top within a few samples. */
static void test_candidate_set_is_bounded_and_admits_a_new_heavy_talker(void **state)
{
	(void)state;
	const char *r[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, r, 1, 100000);
	struct status_page *p = sampler(f);
	char a[32];
	for (int t = 0; t < 3; t++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(a, sizeof a, "10.1.%d.%d", i / 250, i % 250 + 1);
			traffic(f, a, "192.0.2.1", 1, 100 + (uint32_t)(i % 7));
		}
		assert_int_equal(status_page_sample(p, t), 0);
	}
	char *html = page(p);
	char bound[64];
	snprintf(bound, sizeof bound, "of %d tracked", STATUS_PAGE_CANDIDATES);
	assert_non_null(strstr(html, bound));
	assert_null(row_of(html, "10.9.9.9"));
	free(html);
	for (int t = 3; t < 7; t++) {
		for (int i = 0; i < 5000; i++) {
			snprintf(a, sizeof a, "10.1.%d.%d", i / 250, i % 250 + 1);
			traffic(f, a, "192.0.2.1", 1, 100);
		}
		traffic(f, "10.9.9.9", "192.0.2.1", 200, 1500);
		assert_int_equal(status_page_sample(p, t), 0);
	}
	html = page(p);
	const char *first = strstr(html, "<td class=\"addr\">");
	assert_non_null(first);
	assert_ptr_equal(first, row_of(html, "10.9.9.9"));
	assert_non_null(strstr(html, bound));
	free(html);
	status_page_free(p);
	fixture_free(f);
}

/* Push and remote-write health from the self-metrics, one row per target. */
static void test_delivery_targets_show_last_success_failures_and_queue(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, NULL, 0, 10);
	struct registry *r = &f->reg;
	const char *url = "https://mimir.example/api/v1/push?a=1&b=<2>";
	gauge_t *ok = registry_self_add(r, "promacct_push_requests_total", "", METRIC_COUNTER,
	                                "result", "success", NULL, NULL);
	gauge_t *bad = registry_self_add(r, "promacct_push_requests_total", "", METRIC_COUNTER,
	                                 "result", "failure", NULL, NULL);
	gauge_t *plast = registry_self_add(r, "promacct_push_last_success_timestamp_seconds", "",
	                                   METRIC_GAUGE, NULL, NULL, NULL, NULL);
	gauge_t *failed = registry_self_add(r, "promacct_remote_write_samples_total", "",
	                                    METRIC_COUNTER, "url", url, "result", "failed");
	gauge_t *dropped = registry_self_add(r, "promacct_remote_write_samples_total", "",
	                                     METRIC_COUNTER, "url", url, "result", "dropped");
	gauge_t *queue = registry_self_add(r, "promacct_remote_write_queue_samples", "",
	                                   METRIC_GAUGE, "url", url, NULL, NULL);
	assert_true(ok && bad && plast && failed && dropped && queue);
	self_inc(ok, 7);
	self_inc(bad, 2);
	gauge_set(plast, (double)time(NULL) - 30);
	self_inc(failed, 1500);
	self_inc(dropped, 12);
	gauge_set(queue, 4242);
	struct status_page *p = sampler(f);
	assert_int_equal(status_page_sample(p, 1), 0);
	char *html = page(p);
	const char *push = strstr(html, "<tr><td>Pushgateway</td><td>push</td><td>");
	assert_non_null(push);
	assert_non_null(strstr(push, "<td class=\"n bad\">2</td>"));
	assert_true(strstr(push, " s ago</td>") != NULL);
	const char *rw =
	    strstr(html, "<tr><td>https://mimir.example/api/v1/push?a=1&amp;b=&lt;2&gt;"
	                 "</td><td>remote write</td><td>never</td>"
	                 "<td class=\"n bad\">1500</td><td class=\"n\">4242</td>"
	                 "<td class=\"n bad\">12</td></tr>");
	assert_non_null(rw);
	free(html);
	status_page_free(p);
	fixture_free(f);
}

static void test_too_short_an_interval_is_refused(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, NULL, 0, 10);
	char err[256] = "";
	assert_null(status_page_new(&(struct status_page_opts){0.5}, &f->reg, err, sizeof err));
	assert_non_null(strstr(err, "too short"));
	fixture_free(f);
}

static void test_sampler_thread_starts_and_stops(void **state)
{
	(void)state;
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, NULL, 0, 10);
	struct status_page *p = sampler(f);
	char err[256];
	assert_int_equal(status_page_start(p, err, sizeof err), 0);
	char *html = NULL;
	for (int i = 0; i < 200; i++) { /* the first sample is taken at once */
		free(html);
		html = page(p);
		if (strstr(html, ", 1 samples"))
			break;
		struct timespec ts = {0, 10000000};
		nanosleep(&ts, NULL);
	}
	assert_non_null(strstr(html, ", 1 samples"));
	free(html);
	double t0 = time_monotonic();
	status_page_shutdown(p, t0 + 1);
	assert_true(time_monotonic() - t0 < 0.5); /* not a whole interval */
	status_page_free(p);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_top_talkers_busiest_first_with_bytes_and_packets),
	    cmocka_unit_test(test_chart_has_a_line_per_interface_with_its_rate),
	    cmocka_unit_test(test_outside_text_is_escaped),
	    cmocka_unit_test(test_candidate_set_is_bounded_and_admits_a_new_heavy_talker),
	    cmocka_unit_test(test_delivery_targets_show_last_success_failures_and_queue),
	    cmocka_unit_test(test_too_short_an_interval_is_refused),
	    cmocka_unit_test(test_sampler_thread_starts_and_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
