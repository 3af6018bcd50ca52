/* Specification of the command line (src/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "promacct/config.h"

static char err[1024];

static enum config_result parse(struct config *c, const char *line)
{
	static char copy[2048]; /* argv points into it after return */
	char *argv[64];
	int argc = 0;
	snprintf(copy, sizeof copy, "promacct %s", line);
	for (char *t = strtok(copy, " "); t && argc < 63; t = strtok(NULL, " "))
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
	                           "job=edge --push.interval 500ms --remote-write.interval 1m"),
	                 CONFIG_OK);
	assert_string_equal(c.rw_labels[0].value, "edge");
	assert_int_equal(c.nrw_labels, 2);
	assert_true(c.push_interval == 0.5);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_2017_short_flags_still_work),
	    cmocka_unit_test(test_long_flags),
	    cmocka_unit_test(test_push_and_remote_write_defaults),
	    cmocka_unit_test(test_usage_errors_name_the_problem),
	    cmocka_unit_test(test_help_and_version_exit_zero),
	    cmocka_unit_test(test_durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
