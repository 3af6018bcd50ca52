/* Specification of the command line (src/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/config.h"

static char err[1024];

static enum config_result parse(struct config *c, const char *line)
{
	static char copy[32768]; /* argv points into it after return */
	char *argv[128];
	int argc = 0;
	snprintf(copy, sizeof copy, "promacct %s", line);
	for (char *t = strtok(copy, " "); t && argc < 127; t = strtok(NULL, " "))
		argv[argc++] = t;
	argv[argc] = NULL;
	err[0] = '\0';
	return config_parse(c, argc, argv, err, sizeof err);
}

static void expect_usage(const char *line, const char *needle)
{
	struct config c;
	enum config_result r = parse(&c, line);
	if (r != CONFIG_USAGE)
		fail_msg("'%s' was accepted", line);
	if (!strstr(err, needle))
		fail_msg("'%s': message '%s' does not mention '%s'", line, err, needle);
	config_free(&c);
}

/* Range labels longer than one series' rendered labels may take are a usage
 * error at start-up (regression: a 16,000-byte value was accepted, then every
 * scrape answered 500 and --once exited 1 with no output). */
static void test_range_labels_fit_one_series(void **state)
{
	(void)state;
	static char line[20000];
	int n = snprintf(line, sizeof line, "-i eth0 -r 10.0.0.0/8:c=");
	memset(line + n, 'a', 16000);
	line[n + 16000] = '\0';
	expect_usage(line, "label 'c': value longer than 4096 bytes"); /* LABELS_VALUE_MAX */
	/* two values within LABELS_VALUE_MAX, together too long for a series */
	memset(line + n, 'a', 4000);
	n += 4000;
	n += snprintf(line + n, sizeof line - (size_t)n, ":d=");
	memset(line + n, 'a', 4000);
	line[n + 4000] = '\0';
	expect_usage(line, "at most 7552 per series");
	line[n + 3000] = '\0';
	struct config c;
	assert_int_equal(parse(&c, line), CONFIG_OK);
	config_free(&c);
}

static void test_defaults(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c, "-i eth0"), CONFIG_OK);
	assert_int_equal(c.ninterfaces, 1);
	assert_string_equal(c.interfaces[0], "eth0");
	assert_string_equal(c.listen, ":9112");
	assert_int_equal(c.max_addresses, 100000);
	assert_int_equal(c.buffer_size, 32 << 20);
	assert_int_equal(c.capture_threads, 1);
	assert_int_equal(c.layout->nbuckets, 7);
	assert_int_equal(c.promisc, 0);
	config_free(&c);
}

static void test_2017_short_flags_still_work(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c, "-i eth0 -i eth1 -r 10.0.0.0/8 -p 9100"), CONFIG_OK);
	assert_int_equal(c.ninterfaces, 2);
	assert_int_equal(c.ranges.n, 1);
	assert_string_equal(c.listen, ":9100");
	config_free(&c);
}

static void test_long_flags(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c,
	                       "--read a.pcap --read=b.pcap --once --buckets 100,200 "
	                       "--max-addresses 5 --buffer-size 4M --promisc --capture-threads 2 "
	                       "--web.listen-address 127.0.0.1:0 -f tcp --log.level warn"),
	                 CONFIG_OK);
	assert_int_equal(c.nreads, 2);
	assert_int_equal(c.once, 1);
	assert_int_equal(c.layout->nbuckets, 3);
	assert_int_equal(c.max_addresses, 5);
	assert_int_equal(c.buffer_size, 4 << 20);
	assert_int_equal(c.capture_threads, 2);
	assert_string_equal(c.listen, "127.0.0.1:0");
	assert_string_equal(c.filter, "tcp");
	config_free(&c);
	assert_int_equal(parse(&c, "--log.level info -i x"), CONFIG_OK);
	config_free(&c);
}

static void test_push_and_remote_write_defaults(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c,
	                       "-i eth0 --push.gateway http://127.0.0.1:9091 "
	                       "--push.grouping site=ams --remote-write.url http://x/api/v1/write "
	                       "--remote-write.external-label dc=1"),
	                 CONFIG_OK);
	assert_string_equal(c.push_job, "promacct");
	assert_int_equal(c.npush_grouping, 2);
	assert_string_equal(c.push_grouping[1].name, "instance");
	assert_string_equal(c.push_grouping[1].value, config_hostname());
	assert_true(c.push_interval == 15);
	assert_int_equal(c.rw_max_samples_per_send, 2000);
	assert_int_equal(c.nrw_labels, 3);
	assert_string_equal(c.rw_labels[1].name, "job");
	assert_string_equal(c.rw_labels[1].value, "promacct");
	config_free(&c);
	assert_int_equal(parse(&c, "-i e --remote-write.url http://x --remote-write.external-label "
	                           "job=edge --push.interval 1500ms --remote-write.interval 1m"),
	                 CONFIG_OK);
	assert_string_equal(c.rw_labels[0].value, "edge");
	assert_int_equal(c.nrw_labels, 2);
	assert_true(c.push_interval == 1.5);
	assert_true(c.rw_interval == 60);
	config_free(&c);
}

static void test_usage_errors_name_the_problem(void **state)
{
	(void)state;
	expect_usage("", "-i IFACE or -R FILE");
	expect_usage("-i eth0 --bogus", "--bogus");
	expect_usage("-i eth0 -x", "-x");
	expect_usage("-i", "needs a value");
	expect_usage("-i eth0 --buckets 128,64", "increasing");
	expect_usage("-i eth0 --buckets 64,abc", "number");
	expect_usage(
	    "-i eth0 --buckets 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,"
	    "24,25,26,27,28,29,30,31,32,33",
	    "at most 32"); /* documented in --help and README */
	expect_usage("-i eth0 -r 10.0.0.0/40", "range");
	expect_usage("-i eth0 -r 10.0.0.0/8:ip=x", "reserved");
	expect_usage("-i eth0 -f tcp)", "filter");
	expect_usage("-i eth0 -p 99999", "listen address");
	expect_usage("-i eth0 --web.listen-address nonsense", "listen address");
	expect_usage("-i eth0 --once", "--once");
	expect_usage("--once", "-i IFACE or -R FILE");
	expect_usage("-i eth0 --max-addresses 0", "max-addresses");
	expect_usage("-i eth0 --capture-threads 0", "capture-threads");
	expect_usage("-i eth0 --push.gateway ftp://x", "push.gateway");
	/* URLs libcurl would refuse at every request are refused at start-up
	 * (they were retried until the timeout). */
	expect_usage("-i eth0 --remote-write.url http://h:99999/x", "not a usable URL");
	expect_usage("-i eth0 --remote-write.url http://h:0/x", "not a usable URL");
	expect_usage("-i eth0 --remote-write.url http://h/x --remote-write.url http://h/x",
	             "endpoint 2 is the same URL as endpoint 1");
	expect_usage("-i eth0 --push.gateway http://admin:x@[::1/x", "not a usable URL");
	expect_usage("-i eth0 --push.interval 10", "duration");
	expect_usage("-i eth0 --push.method patch", "put or post");
	expect_usage("-i eth0 --push.grouping 1x=y", "label name");
	expect_usage("-i eth0 --push.grouping job=y", "push.job");
	expect_usage("-i e --push.gateway http://g --push.grouping interface=x", "'interface'");
	expect_usage(
	    "-i e -r 10.0.0.0/8:customer=a --push.gateway http://g --push.grouping customer=b",
	    "'customer'");
	expect_usage("-i eth0 --remote-write.header NoColon", "Name: value");
	expect_usage("-i eth0 --remote-write.external-label __x=y", "reserved");
	expect_usage("-i eth0 --log.level loud", "log.level");
	expect_usage("-i eth0 extra", "unexpected argument");
	expect_usage("-i eth0 -p 1 --web.listen-address :2", "not both");
}

/* Every HTTP-client flag lands in its own field of its own sender: two
 * swapped (ca/cert/key, user/password-file) or a push flag setting the
 * remote-write client would fail here. */
static void check_http(const struct http_client_opts *h, const char *p)
{
	char want[64];
#define CHECK_FIELD(field, suffix)                                                                 \
	snprintf(want, sizeof want, "%s-" suffix, p);                                              \
	assert_non_null(h->field);                                                                 \
	assert_string_equal(h->field, want)
	CHECK_FIELD(basic_user, "user");
	CHECK_FIELD(basic_password_file, "pw");
	CHECK_FIELD(bearer_token_file, "bearer");
	CHECK_FIELD(tls_ca_file, "ca");
	CHECK_FIELD(tls_cert_file, "cert");
	CHECK_FIELD(tls_key_file, "key");
#undef CHECK_FIELD
	assert_int_equal(h->tls_insecure, 1);
}

static void test_http_client_flags_land_in_their_own_fields(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c,
	                       "-i e --push.gateway http://g --remote-write.url http://w "
	                       "--push.timeout 7s --push.basic-auth-user push-user "
	                       "--push.basic-auth-password-file push-pw "
	                       "--push.bearer-token-file push-bearer --push.tls-ca-file push-ca "
	                       "--push.tls-cert-file push-cert --push.tls-key-file push-key "
	                       "--push.tls-insecure-skip-verify "
	                       "--remote-write.timeout 9s --remote-write.basic-auth-user rw-user "
	                       "--remote-write.basic-auth-password-file rw-pw "
	                       "--remote-write.bearer-token-file rw-bearer "
	                       "--remote-write.tls-ca-file rw-ca "
	                       "--remote-write.tls-cert-file rw-cert "
	                       "--remote-write.tls-key-file rw-key "
	                       "--remote-write.tls-insecure-skip-verify"),
	                 CONFIG_OK);
	check_http(&c.push_http, "push");
	check_http(&c.rw_http, "rw");
	assert_true(c.push_http.timeout == 7);
	assert_true(c.rw_http.timeout == 9);
	config_free(&c);

	/* One sender's flags leave the other's client at its defaults. */
	assert_int_equal(parse(&c, "-i e --push.tls-ca-file x --push.basic-auth-user u"),
	                 CONFIG_OK);
	assert_null(c.rw_http.tls_ca_file);
	assert_null(c.rw_http.basic_user);
	assert_null(c.push_http.tls_cert_file);
	assert_int_equal(c.rw_http.tls_insecure, 0);
	assert_true(c.push_http.timeout == 10);
	assert_true(c.rw_http.timeout == 30);
	config_free(&c);
}

static void test_defaults_come_from_the_flag_table(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c, "-R x.pcap"), CONFIG_OK);
	assert_true(c.push_interval == 15);
	assert_string_equal(c.push_job, "promacct");
	assert_int_equal(c.push_post, 0);
	assert_true(c.rw_interval == 15);
	assert_int_equal(c.rw_queue_max_samples, 0);
	assert_int_equal(c.rw_queue_max_bytes, 512u << 20);
	assert_int_equal(c.rw_max_shards, 8);
	assert_true(c.rw_min_backoff == 0.03);
	assert_true(c.rw_max_backoff == 5);
	assert_string_equal(c.buckets_arg, "64,128,256,512,1024,2048");
	config_free(&c);
}

static void test_help_shows_each_default_once_from_the_table(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	config_usage(f);
	fclose(f);
	assert_non_null(strstr(text, "--push.interval DURATION\n"));
	assert_non_null(strstr(text, "(default 15s)"));
	assert_non_null(strstr(text, "(default :9112)"));
	assert_non_null(strstr(text, "(default 64,128,256,512,1024,2048)"));
	assert_non_null(strstr(text, "at most 32"));
	assert_non_null(strstr(text, "-h, --help"));
	const char *end = strstr(text, "\nDurations");
	assert_non_null(end);
	for (const char *p = strstr(text, "Flags:"); p < end; p++) /* wrapped to 80 columns */
		if (*p == '\n')
			assert_in_range(strcspn(p + 1, "\n"), 0, 80);
	free(text);
}

static void test_intervals_have_a_floor(void **state)
{
	(void)state;
	/* 1ms sent ~1,000 pushes a second (issue 13 defect 11). */
	expect_usage("-i e --push.gateway http://g --push.interval 1ms", "minimum of 100ms");
	expect_usage("-i e --remote-write.url http://w --remote-write.interval 99ms",
	             "minimum of 100ms");
	struct config c;
	assert_int_equal(parse(&c, "-i e --push.interval 100ms --remote-write.interval 100ms"),
	                 CONFIG_OK);
	config_free(&c);
}

static void test_refused_flags_are_named(void **state)
{
	(void)state;
	/* Used to say "unknown flag -h". */
	expect_usage("-i e --help=foo", "flag --help takes no value");
	expect_usage("-i e --promisc=yes", "flag --promisc takes no value");
	expect_usage("-i e --push", "ambiguous flag --push");
	expect_usage("-i e --push.gateway", "flag --push.gateway needs a value");
	expect_usage("-i e -r", "flag -r needs a value");
	expect_usage("-i e -Z", "unknown flag -Z");
	expect_usage("-i e --nope=1", "unknown flag --nope");
}

/* Builds "-i e" plus n range labels and e external labels. */
static enum config_result parse_with_labels(struct config *c, int nrange, int next)
{
	static char line[2048];
	int o = snprintf(line, sizeof line, "-i e --remote-write.url http://w -r 10.0.0.0/8");
	for (int i = 0; i < nrange; i++)
		o += snprintf(line + o, sizeof line - (size_t)o, ":r%d=v", i);
	for (int i = 0; i < next; i++)
		o += snprintf(line + o, sizeof line - (size_t)o,
		              " --remote-write.external-label x%d=v", i);
	return parse(c, line);
}

static void test_one_label_limit_checked_at_start_up(void **state)
{
	(void)state;
	struct config c;
	/* 5 fixed + 2 (job, instance) + 57 range labels = 64: fits. */
	assert_int_equal(parse_with_labels(&c, 57, 0), CONFIG_OK);
	config_free(&c);
	/* One more used to be dropped silently by remote write (defect 5). */
	expect_usage("-i e --remote-write.url http://w -r 10.0.0.0/8"
	             ":a0=v:a1=v:a2=v:a3=v:a4=v:a5=v:a6=v:a7=v:a8=v:a9=v:b0=v:b1=v:b2=v:b3=v:b4=v"
	             ":b5=v:b6=v:b7=v:b8=v:b9=v:c0=v:c1=v:c2=v:c3=v:c4=v:c5=v:c6=v:c7=v:c8=v:c9=v"
	             ":d0=v:d1=v:d2=v:d3=v:d4=v:d5=v:d6=v:d7=v:d8=v:d9=v:e0=v:e1=v:e2=v:e3=v:e4=v"
	             ":e5=v:e6=v:e7=v:e8=v:e9=v:f0=v:f1=v:f2=v:f3=v:f4=v:f5=v:f6=v:f7=v",
	             "too many labels per series");
	assert_int_equal(parse_with_labels(&c, 50, 7), CONFIG_OK);
	config_free(&c);
	assert_int_equal(parse_with_labels(&c, 50, 8), CONFIG_USAGE);
	assert_non_null(strstr(err, "at most 64"));
	config_free(&c);
	/* The text page alone has the same limit. */
	char e[256];
	assert_int_equal(labels_check_limit(LABELS_MAX - LABELS_FIXED, 0, e, sizeof e), 0);
	assert_int_not_equal(labels_check_limit(LABELS_MAX - LABELS_FIXED + 1, 0, e, sizeof e), 0);
}

/* Found by fuzz_config: a parse that stopped inside a group of short flags
 * (-yw) left getopt pointing into the old argv; the next parse (a test, a
 * reload) went on from there. */
static void test_a_second_parse_starts_afresh(void **state)
{
	(void)state;
	expect_usage("-i eth0 -yw", "-y");
	expect_usage("-i eth0 -xz", "-x");
}

static void test_help_and_version_exit_zero(void **state)
{
	(void)state;
	struct config c;
	FILE *saved = stdout;
	stdout = fopen("/dev/null", "w");
	assert_int_equal(parse(&c, "--help"), CONFIG_EXIT_OK);
	config_free(&c);
	assert_int_equal(parse(&c, "--version"), CONFIG_EXIT_OK);
	config_free(&c);
	fclose(stdout);
	stdout = saved;
}

static void test_durations(void **state)
{
	(void)state;
	double s;
	assert_int_equal(duration_parse("15s", &s), 0);
	assert_true(s == 15);
	assert_int_equal(duration_parse("1h30m", &s), 0);
	assert_true(s == 5400);
	assert_int_equal(duration_parse("250ms", &s), 0);
	assert_true(s == 0.25);
	assert_int_equal(duration_parse("1m500ms", &s), 0);
	assert_true(s == 60.5);
	assert_int_not_equal(duration_parse("", &s), 0);
	assert_int_not_equal(duration_parse("5", &s), 0);
	assert_int_not_equal(duration_parse("5x", &s), 0);
	assert_int_not_equal(duration_parse("-5s", &s), 0);
}

static void test_idle_timeout(void **state)
{
	(void)state;
	struct config c;
	assert_int_equal(parse(&c, "-i eth0"), CONFIG_OK);
	assert_true(c.idle_timeout == 0); /* never, by default */
	config_free(&c);
	assert_int_equal(parse(&c, "-i eth0 --address.idle-timeout 5m"), CONFIG_OK);
	assert_true(c.idle_timeout == 300);
	config_free(&c);
	assert_int_equal(parse(&c, "-i eth0 --address.idle-timeout 0"), CONFIG_OK);
	assert_true(c.idle_timeout == 0);
	config_free(&c);
	expect_usage("-i eth0 --address.idle-timeout 500ms", "address.idle-timeout");
	expect_usage("-i eth0 --address.idle-timeout soon", "address.idle-timeout");
	/* one key on several fanout threads would have to end on all at once */
	expect_usage("-i eth0 --address.idle-timeout 1m --capture-threads 2",
	             "--capture-threads 1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_range_labels_fit_one_series),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_2017_short_flags_still_work),
	    cmocka_unit_test(test_long_flags),
	    cmocka_unit_test(test_push_and_remote_write_defaults),
	    cmocka_unit_test(test_usage_errors_name_the_problem),
	    cmocka_unit_test(test_a_second_parse_starts_afresh),
	    cmocka_unit_test(test_help_and_version_exit_zero),
	    cmocka_unit_test(test_http_client_flags_land_in_their_own_fields),
	    cmocka_unit_test(test_defaults_come_from_the_flag_table),
	    cmocka_unit_test(test_help_shows_each_default_once_from_the_table),
	    cmocka_unit_test(test_intervals_have_a_floor),
	    cmocka_unit_test(test_refused_flags_are_named),
	    cmocka_unit_test(test_one_label_limit_checked_at_start_up),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_idle_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
