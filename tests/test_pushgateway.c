/* Specification of the Pushgateway group URL (src/pushgateway.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "promacct/expo_text.h"
#include "promacct/pushgateway.h"

static void check(const char *job, struct label *g, size_t n, const char *want)
{
	struct buf b;
	buf_init(&b, 0);
	pushgateway_group_path(&b, job, g, n);
	buf_append_char(&b, '\0');
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_plain_values_are_path_segments(void **state)
{
	(void)state;
	struct label g[] = {{"instance", "host-1.example"}, {"site", "ams"}};
	check("promacct", g, 2, "/metrics/job/promacct/instance/host-1.example/site/ams");
}

static void test_slash_and_empty_values_use_base64(void **state)
{
	(void)state;
	struct label g[] = {{"path", "/var/tmp"}, {"empty", ""}};
	check("a/b", g, 2, "/metrics/job@base64/YS9i/path@base64/L3Zhci90bXA=/empty@base64/=");
}

static void test_other_characters_are_percent_escaped(void **state)
{
	(void)state;
	struct label g[] = {{"name", "a b?c%d"}};
	check("job x", g, 1, "/metrics/job/job%20x/name/a%20b%3Fc%25d");
}

static void test_base64url_alphabet(void **state)
{
	(void)state;
	/* bytes that map to + and / in standard base64 map to - and _ */
	struct label g[] = {{"v", "/\xfb\xff"}};
	check("j", g, 1, "/metrics/job/j/v@base64/L_v_");
}

static void check_url(const char *gateway, const char *want)
{
	struct buf b;
	char err[256] = "";
	struct label g[] = {{"instance", "h1"}};
	buf_init(&b, 0);
	assert_int_equal(pushgateway_url(&b, gateway, "promacct", g, 1, err, sizeof err), 0);
	assert_string_equal(b.data, want);
	buf_free(&b);
}

static void test_url_group_path_follows_the_gateway_path(void **state)
{
	(void)state;
	check_url("http://gw:9091", "http://gw:9091/metrics/job/promacct/instance/h1");
	check_url("http://gw:9091//", "http://gw:9091/metrics/job/promacct/instance/h1");
	check_url("https://proxy/pushgw/", "https://proxy/pushgw/metrics/job/promacct/instance/h1");
}

/* Issue 13 item 11: the query string was mangled into the path
 * ("...?x=1/metrics/job/..."). */
static void test_url_query_string_stays_after_the_group_path(void **state)
{
	(void)state;
	check_url("http://gw:9091/?x=1", "http://gw:9091/metrics/job/promacct/instance/h1?x=1");
	check_url("http://gw:9091?x=1&y=/a",
	          "http://gw:9091/metrics/job/promacct/instance/h1?x=1&y=/a");
	check_url("http://gw:9091/p/?", "http://gw:9091/p/metrics/job/promacct/instance/h1?");
}

static void test_url_fragment_and_other_schemes_are_refused(void **state)
{
	(void)state;
	struct buf b;
	char err[256] = "";
	buf_init(&b, 0);
	assert_int_equal(pushgateway_url(&b, "http://gw:9091/#x", "j", NULL, 0, err, sizeof err),
	                 -EINVAL);
	assert_non_null(strstr(err, "fragment"));
	assert_int_equal(pushgateway_url(&b, "ftp://gw/", "j", NULL, 0, err, sizeof err), -EINVAL);
	buf_free(&b);
}

/* A pusher that was made but never started sends nothing when shut down
 * (issue 13 item 2): its gateway is a port nobody listens on, and a DELETE
 * or final push attempt would be counted as a failure. */
static void test_shutdown_without_start_sends_nothing(void **state)
{
	(void)state;
	struct registry reg;
	struct ranges ranges = {0};
	char err[256] = "";
	static struct histogram_layout layout;
	assert_int_equal(
	    histogram_layout_parse(&layout, HISTOGRAM_DEFAULT_BUCKETS, err, sizeof err), 0);
	assert_int_equal(registry_init(&reg, &layout, &ranges, 10), 0);
	struct label g[] = {{"instance", "h1"}};
	struct pushgateway_opts o = {.gateway = "http://127.0.0.1:9",
	                             .job = "promacct",
	                             .grouping = g,
	                             .ngrouping = 1,
	                             .interval = 1,
	                             .delete_on_exit = 1,
	                             .http = {.timeout = 1}};
	struct pushgateway *p = pushgateway_new(&o, &reg, err, sizeof err);
	assert_non_null(p);
	pushgateway_shutdown(p, time_monotonic() + 5);
	pushgateway_free(p);
	struct buf page;
	buf_init(&page, 0);
	assert_int_equal(expo_text_render(&reg, &page), 0);
	buf_append_char(&page, '\0');
	assert_non_null(strstr(page.data, "promacct_push_requests_total{result=\"failure\"} 0\n"));
	buf_free(&page);
	registry_free(&reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_values_are_path_segments),
	    cmocka_unit_test(test_slash_and_empty_values_use_base64),
	    cmocka_unit_test(test_other_characters_are_percent_escaped),
	    cmocka_unit_test(test_base64url_alphabet),
	    cmocka_unit_test(test_url_group_path_follows_the_gateway_path),
	    cmocka_unit_test(test_url_query_string_stays_after_the_group_path),
	    cmocka_unit_test(test_url_fragment_and_other_schemes_are_refused),
	    cmocka_unit_test(test_shutdown_without_start_sends_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
