/* Specification of the Pushgateway group URL (src/pushgateway.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_values_are_path_segments),
	    cmocka_unit_test(test_slash_and_empty_values_use_base64),
	    cmocka_unit_test(test_other_characters_are_percent_escaped),
	    cmocka_unit_test(test_base64url_alphabet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
