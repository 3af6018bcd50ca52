/* Specification of label names, NAME=VALUE pairs, text-format escaping and
 * the one label limit (src/labels.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "promacct/labels.h"

static void test_label_names_follow_prometheus(void **state)
{
	(void)state;
	assert_true(labels_name_valid("customer"));
	assert_true(labels_name_valid("_x9"));
	assert_true(labels_name_valid("A_b"));
	assert_false(labels_name_valid(""));
	assert_false(labels_name_valid(NULL));
	assert_false(labels_name_valid("9x"));
	assert_false(labels_name_valid("a-b"));
	assert_false(labels_name_valid("a:b")); /* colons: metric names only */
	assert_false(labels_name_valid("caf\xc3\xa9"));
	assert_true(labels_metric_name_valid("job:rate5m"));
	assert_true(labels_metric_name_valid(":x"));
	assert_false(labels_metric_name_valid("1x"));
	assert_false(labels_metric_name_valid("a b"));
}

static void test_names_promacct_sets_are_reserved(void **state)
{
	(void)state;
	static const char *const reserved[] = {"ip",  "interface", "protocol", "le",
	                                       "job", "instance",  "__name__", "__x"};
	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
		if (!labels_name_reserved(reserved[i]))
			fail_msg("%s is not reserved", reserved[i]);
	assert_false(labels_name_reserved("customer"));
	assert_false(labels_name_reserved("_ip"));
	assert_false(labels_name_reserved("ips"));
}

static void test_pairs_split_at_the_first_equals_sign(void **state)
{
	(void)state;
	struct label l;
	char err[128];
	assert_int_equal(labels_parse_pair("plan=gold=x", &l, err, sizeof err), 0);
	assert_string_equal(l.name, "plan");
	assert_string_equal(l.value, "gold=x");
	labels_free(&l, 1);
	assert_int_equal(labels_parse_pair("empty=", &l, err, sizeof err), 0);
	assert_string_equal(l.value, "");
	labels_free(&l, 1);
	assert_int_equal(labels_parse_pair("novalue", &l, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "NAME=VALUE"));
	assert_int_equal(labels_parse_pair("bad-name=x", &l, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "invalid label name 'bad-name'"));
	assert_int_equal(labels_parse_pair("=x", &l, err, sizeof err), -EINVAL);
}

static void test_text_format_escaping(void **state)
{
	(void)state;
	struct buf b;
	buf_init(&b, 1 << 20);
	labels_escape_value(&b, "a\\b\"c\nd");
	assert_int_equal(b.len, strlen("a\\\\b\\\"c\\nd"));
	assert_memory_equal(b.data, "a\\\\b\\\"c\\nd", b.len);
	buf_reset(&b);
	labels_escape(&b, "help \"quoted\"\n", 0); /* HELP texts keep their quotes */
	assert_memory_equal(b.data, "help \"quoted\"\\n", b.len);
	buf_free(&b);
}

static void test_one_label_limit_for_every_output(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(LABELS_MAX, 64);
	assert_int_equal(labels_check_limit(0, 0, err, sizeof err), 0);
	assert_int_equal(labels_check_limit(LABELS_MAX - LABELS_FIXED - 2, 2, err, sizeof err), 0);
	assert_int_equal(labels_check_limit(LABELS_MAX - LABELS_FIXED - 2, 3, err, sizeof err),
	                 -E2BIG);
	assert_non_null(strstr(err, "57 range labels + 3 external/grouping labels + 5 fixed"));
	assert_non_null(strstr(err, "= 65, at most 64"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_label_names_follow_prometheus),
	    cmocka_unit_test(test_names_promacct_sets_are_reserved),
	    cmocka_unit_test(test_pairs_split_at_the_first_equals_sign),
	    cmocka_unit_test(test_text_format_escaping),
	    cmocka_unit_test(test_one_label_limit_for_every_output),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
