/* Specification of the logger (src/log.c): values from outside never break
 * a line, every JSON line parses, repeated conditions are rate-limited. */
#define _GNU_SOURCE 1 /* F_SETPIPE_SZ */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "promacct/log.h"

static int pipe_fd[2];
static char got[4 * LOG_LINE_MAX];

/* What the logger wrote since the last call. */
static const char *output(void)
{
	ssize_t n = read(pipe_fd[0], got, sizeof got - 1);
	got[n > 0 ? n : 0] = '\0';
	return got;
}

static int setup(void **state)
{
	(void)state;
	if (pipe(pipe_fd))
		return -1;
	fcntl(pipe_fd[0], F_SETFL, O_NONBLOCK);
	fcntl(pipe_fd[1], F_SETPIPE_SZ, 1 << 20);
	log_set_fd(pipe_fd[1]);
	log_set_level_value(LOG_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_fd(2);
	close(pipe_fd[0]);
	close(pipe_fd[1]);
	return 0;
}

static void use_format(const char *f)
{
	assert_int_equal(log_set_format(f), 0);
	output();
}

/* ---- a small strict JSON checker (RFC 8259), independent of log.c ---- */

struct js {
	const char *p;
	int depth;
};

static void js_ws(struct js *j)
{
	while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
		j->p++;
}

static int js_value(struct js *j);

static int js_string(struct js *j)
{
	mbstate_t mb;
	memset(&mb, 0, sizeof mb);
	if (*j->p++ != '"')
		return 0;
	for (;;) {
		unsigned char c = (unsigned char)*j->p;
		if (c == '"') {
			j->p++;
			return 1;
		}
		if (c < 0x20) /* raw control bytes (and the end of the text) */
			return 0;
		if (c == '\\') {
			char e = j->p[1];
			if (e == 'u') {
				for (int i = 2; i < 6; i++)
					if (!strchr("0123456789abcdefABCDEF", j->p[i]) || !j->p[i])
						return 0;
				j->p += 6;
			} else if (e && strchr("\"\\/bfnrt", e)) {
				j->p += 2;
			} else {
				return 0;
			}
			continue;
		}
		if (c < 0x80) {
			j->p++;
			continue;
		}
		wchar_t wc;
		size_t n = mbrtowc(&wc, j->p, 4, &mb);
		if (n == (size_t)-1 || n == (size_t)-2 || n == 0)
			return 0; /* not UTF-8 */
		j->p += n;
	}
}

static int js_number(struct js *j)
{
	const char *s = j->p;
	if (*j->p == '-')
		j->p++;
	if (*j->p == '0')
		j->p++;
	else if (*j->p >= '1' && *j->p <= '9')
		while (*j->p >= '0' && *j->p <= '9')
			j->p++;
	else
		return 0;
	if (*j->p == '.') {
		j->p++;
		if (!(*j->p >= '0' && *j->p <= '9'))
			return 0;
		while (*j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (*j->p == 'e' || *j->p == 'E') {
		j->p++;
		if (*j->p == '+' || *j->p == '-')
			j->p++;
		if (!(*j->p >= '0' && *j->p <= '9'))
			return 0;
		while (*j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	return j->p > s;
}

static int js_object(struct js *j)
{
	if (++j->depth > 32)
		return 0;
	j->p++; /* { */
	js_ws(j);
	if (*j->p == '}') {
		j->p++;
		j->depth--;
		return 1;
	}
	for (;;) {
		js_ws(j);
		if (!js_string(j))
			return 0;
		js_ws(j);
		if (*j->p++ != ':')
			return 0;
		if (!js_value(j))
			return 0;
		js_ws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p++ != '}')
			return 0;
		j->depth--;
		return 1;
	}
}

static int js_array(struct js *j)
{
	if (++j->depth > 32)
		return 0;
	j->p++;
	js_ws(j);
	if (*j->p == ']') {
		j->p++;
		j->depth--;
		return 1;
	}
	for (;;) {
		if (!js_value(j))
			return 0;
		js_ws(j);
		if (*j->p == ',') {
			j->p++;
			continue;
		}
		if (*j->p++ != ']')
			return 0;
		j->depth--;
		return 1;
	}
}

static int js_value(struct js *j)
{
	js_ws(j);
	switch (*j->p) {
	case '{':
		return js_object(j);
	case '[':
		return js_array(j);
	case '"':
		return js_string(j);
	case 't':
		return !strncmp(j->p, "true", 4) ? (j->p += 4, 1) : 0;
	case 'f':
		return !strncmp(j->p, "false", 5) ? (j->p += 5, 1) : 0;
	case 'n':
		return !strncmp(j->p, "null", 4) ? (j->p += 4, 1) : 0;
	default:
		return js_number(j);
	}
}

/* Every line of text is one complete JSON object. */
static void assert_json_lines(const char *text)
{
	assert_true(*text);
	const char *line = text;
	while (*line) {
		const char *nl = strchr(line, '\n');
		assert_non_null(nl);
		char *one = strndup(line, (size_t)(nl - line));
		struct js j = {one, 0};
		js_ws(&j);
		if (*j.p != '{' || !js_object(&j) || (js_ws(&j), *j.p != '\0'))
			fail_msg("not one JSON object at offset %td: %s", j.p - one, one);
		free(one);
		line = nl + 1;
	}
}

static int count_lines(const char *text)
{
	int n = 0;
	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* ---- the specification ---- */

static void test_json_checker_rejects_what_it_must(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{\"a\":\"\x1b\"}", "{\"a\":\"x\\x1b\"}", "{\"a\":\"\xff\"}", "{\"a\":\"x}",
	    "{\"a\":1,}",       "{\"a\" \"b\"}",      "{\"a\":01}",       "{\"a\":\"\\u12\"}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct js j = {bad[i], 0};
		int ok = js_object(&j) && (js_ws(&j), *j.p == '\0');
		if (ok)
			fail_msg("checker accepted %s", bad[i]);
	}
	struct js j = {"{\"a\":[1,-2.5e3,true,null,{\"b\":\"\\u00e9\xc3\xa9\"}]}", 0};
	assert_true(js_object(&j));
}

static void test_logfmt_line_cannot_be_forged_by_a_file_name(void **state)
{
	(void)state;
	use_format("logfmt");
	/* Issue 13 defect 9: this name forged a whole logfmt line. */
	const char *name = "t\".pcap\nts=2099 level=error msg=\"INJECTED";
	log_error("error reading capture file", "file=\"%s\" err=%s", name, "bad\rthing");
	const char *out = output();
	assert_int_equal(count_lines(out), 1);
	assert_null(strstr(out, "\nts=2099"));
	assert_non_null(strstr(out, " level=error msg=\"error reading capture file\" "
	                            "file=\"t\\\".pcap\\nts=2099 level=error msg=\\\"INJECTED\" "
	                            "err=\"bad\\rthing\"\n"));
}

static void test_logfmt_quotes_only_what_needs_it(void **state)
{
	(void)state;
	use_format("logfmt");
	log_info("m", "iface=%s n=%d empty=%s sp=%s eq=%s q=\"%s\"", "eth0", 3, "", "a b", "a=b",
	         "x");
	assert_non_null(strstr(output(), "msg=\"m\" iface=eth0 n=3 empty=\"\" sp=\"a b\" "
	                                 "eq=\"a=b\" q=\"x\"\n"));
}

static void test_json_line_parses_with_hostile_values(void **state)
{
	(void)state;
	use_format("json");
	/* Defect 9: a reply body with control bytes made invalid JSON. */
	const char body[] = "\x1b[31mred\x00\x07\x7f\"quoted\"\\ \xff\xfe ok \xc3\xa9 \xed\xa0\x80";
	char b[256];
	log_error("push failed", "url=%s status=%ld body=%s", "http://g/x\"y", 500L,
	          log_bytes(b, sizeof b, body, sizeof body - 1));
	log_warn("x\ny\"z", "file=\"%s\" %s", "a\nb", "keyless\tvalue");
	const char *volatile null = NULL; /* the logger shows it as (null) */
	log_info("numbers", "a=%zu b=%llu c=%.3f d=%x e=%s f=%.*s", (size_t)7, 8ULL, 1.5, 255, null,
	         2, "abcdef");
	const char *out = output();
	assert_int_equal(count_lines(out), 3);
	assert_json_lines(out);
	assert_non_null(strstr(out, "\"body\":\"\\u001b[31mred \\u0007\\u007f\\\"quoted\\\"\\\\ "
	                            "\\ufffd\\ufffd ok \xc3\xa9 \\ufffd\\ufffd\\ufffd\""));
	assert_non_null(strstr(out, "\"detail\":\"keyless\\tvalue\""));
	assert_non_null(strstr(out, "\"a\":\"7\",\"b\":\"8\",\"c\":\"1.500\",\"d\":\"ff\","
	                            "\"e\":\"(null)\",\"f\":\"ab\"}\n"));
}

static void test_values_escaped_once_even_from_old_callers(void **state)
{
	(void)state;
	use_format("logfmt");
	/* Callers used to quote with log_quote; now the logger does it, once. */
	char q[64];
	log_warn("m", "err=%s", log_quote(q, sizeof q, "a \"b\"", 5));
	assert_non_null(strstr(output(), "msg=\"m\" err=\"a \\\"b\\\"\"\n"));
}

static void test_long_values_and_lines_are_cut_and_stay_valid(void **state)
{
	(void)state;
	static char big[3 * LOG_VALUE_MAX], ctl[LOG_VALUE_MAX];
	memset(big, '"', sizeof big - 1);
	memset(ctl, 0x1b, sizeof ctl - 1); /* each byte escapes to 6 */
	use_format("json");
	log_error("big", "a=%s b=%s c=%s d=%s e=%s", big, big, big, big, big);
	const char *out = output();
	assert_int_equal(count_lines(out), 1);
	assert_true(strlen(out) <= LOG_LINE_MAX);
	assert_json_lines(out);
	assert_non_null(strstr(out, "\"a\":\"\\\"\\\""));
	assert_non_null(strstr(out, "\"b\":\"\\\"")); /* cut, not dropped */
	assert_non_null(strstr(out, "...\",\"truncated\":\"true\"}\n"));
	assert_null(strstr(out, "\"e\":"));
	log_error("ctl", "body=%s after=%s", ctl, "x");
	out = output();
	assert_json_lines(out);
	assert_non_null(strstr(out, "\"body\":\"\\u001b\\u001b"));
	assert_non_null(strstr(out, "\\u001b...\",\"truncated\":\"true\"}\n"));

	use_format("logfmt");
	log_error("big", "a=%s b=%s c=%s d=%s e=%s", big, big, big, big, big);
	out = output();
	assert_int_equal(count_lines(out), 1);
	assert_true(strlen(out) <= LOG_LINE_MAX);
	assert_non_null(strstr(out, "...\" truncated=true\n"));

	char b[8];
	assert_string_equal(log_bytes(b, sizeof b, "0123456789", 10), "0123...");
	assert_string_equal(log_bytes(b, sizeof b, "a\0b", 3), "a b");
}

/* A conversion the logger does not know (its argument type is unknown)
 * stops the line there instead of reading arguments of the wrong type. */
static void test_unknown_conversions_stop_safely(void **state)
{
	(void)state;
	use_format("logfmt");
	const char *fmt = "a=%d b=%q c=%s"; /* not a literal: no compile-time check */
	log_write(LOG_INFO, "m", fmt, 1, "x", "y");
	assert_non_null(strstr(output(), "msg=\"m\" a=1 b=\"<bad format>\"\n"));
	log_info("m", "pct=%d%% s=%s", 50, "x");
	assert_non_null(strstr(output(), "msg=\"m\" pct=50% s=x\n"));
}

static void test_levels_filter(void **state)
{
	(void)state;
	use_format("logfmt");
	log_set_level_value(LOG_INFO);
	log_debug("hidden", "x=%d", 1);
	assert_false(log_enabled(LOG_DEBUG));
	assert_true(log_enabled(LOG_WARN));
	assert_string_equal(output(), "");
	log_set_level_value(LOG_DEBUG);
	log_debug("shown", "x=%d", 1);
	assert_non_null(strstr(output(), "level=debug msg=\"shown\" x=1\n"));
}

static void test_rate_limited_lines_carry_the_suppressed_count(void **state)
{
	(void)state;
	use_format("logfmt");
	struct log_limit l;
	log_limit_init(&l, 0.2);
	int written = 0;
	for (int i = 0; i < 1000; i++)
		written += log_limited(&l, LOG_WARN, "queue full", "url=%s", "http://x");
	assert_int_equal(written, 1);
	assert_int_equal(count_lines(output()), 1);
	usleep(250000);
	assert_int_equal(log_limited(&l, LOG_WARN, "queue full", "url=%s", "http://x"), 1);
	assert_non_null(strstr(output(), "url=http://x suppressed=999\n"));
	log_limit_destroy(&l);

	static struct log_limit s = LOG_LIMIT_INIT(60);
	assert_int_equal(log_limited(&s, LOG_WARN, "a", "%s", ""), 1);
	assert_int_equal(log_limited(&s, LOG_WARN, "a", "%s", ""), 0);
	output();
}

static void test_state_changes_are_reported_once(void **state)
{
	(void)state;
	struct log_state s = LOG_STATE_INIT(1);
	assert_false(log_state_changed(&s, 1));
	assert_true(log_state_changed(&s, 0));
	assert_false(log_state_changed(&s, 0));
	assert_false(log_state_changed(&s, 0));
	assert_true(log_state_changed(&s, 1));
}

int main(void)
{
	setlocale(LC_CTYPE, "C.UTF-8");
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_checker_rejects_what_it_must),
	    cmocka_unit_test(test_logfmt_line_cannot_be_forged_by_a_file_name),
	    cmocka_unit_test(test_logfmt_quotes_only_what_needs_it),
	    cmocka_unit_test(test_json_line_parses_with_hostile_values),
	    cmocka_unit_test(test_values_escaped_once_even_from_old_callers),
	    cmocka_unit_test(test_long_values_and_lines_are_cut_and_stay_valid),
	    cmocka_unit_test(test_unknown_conversions_stop_safely),
	    cmocka_unit_test(test_levels_filter),
	    cmocka_unit_test(test_rate_limited_lines_carry_the_suppressed_count),
	    cmocka_unit_test(test_state_changes_are_reported_once),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
