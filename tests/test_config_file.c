/* Specification of the YAML ranges file (src/config_file.c, issue 8):
 * what loads, and for every kind of mistake the FILE:LINE:COLUMN error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "promacct/config.h"
#include "promacct/config_file.h"

static char path[64];
static char err[1024];

static int setup(void **state)
{
	(void)state;
	snprintf(path, sizeof path, "/tmp/promacct-config-file.XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static int load(const char *yaml, struct config_file *f)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(yaml, fp);
	fclose(fp);
	err[0] = '\0';
	return config_file_load(path, f, err, sizeof err);
}

/* The file fails to load with "PATH:LINE:COLUMN: ..." holding needle. */
static void expect_error(const char *yaml, unsigned line, unsigned col, const char *needle)
{
	struct config_file f;
	char where[128];
	int rc = load(yaml, &f);
	if (rc == 0)
		fail_msg("accepted:\n%s", yaml);
	assert_int_equal(f.n, 0); /* nothing half-loaded */
	snprintf(where, sizeof where, "%s:%u:%u: ", path, line, col);
	if (strncmp(err, where, strlen(where)))
		fail_msg("error '%s' does not start with '%s'", err, where);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	config_file_free(&f);
}

static void write_yaml(const char *yaml);

static void ipv4(const uint8_t *a, const char *want)
{
	char text[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, a, text, sizeof text);
	assert_string_equal(text, want);
}

static void test_the_schema_of_the_issue_loads(void **state)
{
	(void)state;
	struct config_file f;
	assert_int_equal(load("ranges:\n"
	                      "  - prefix: 198.51.100.0/24          # or: first/last\n"
	                      "    labels: {customer: acme, plan: gold}\n"
	                      "    granularity: 32\n"
	                      "    max_addresses: 1000\n"
	                      "  - prefix: 2001:db8:100::/40\n"
	                      "    labels: {customer: initech}\n"
	                      "    granularity: 64\n"
	                      "  - first: 198.51.100.10\n"
	                      "    last: 198.51.100.99\n"
	                      "    labels:\n"
	                      "      customer: \"x: y\"\n"
	                      "      quoted: 'null'\n",
	                      &f),
	                 0);
	assert_int_equal(f.n, 3);
	assert_int_equal(f.max_labels, 2);
	const struct range_entry *e = &f.v[0].e;
	assert_int_equal(e->family, 4);
	ipv4(e->first, "198.51.100.0");
	ipv4(e->last, "198.51.100.255");
	assert_int_equal(e->nlabels, 2);
	assert_string_equal(e->labels[0].name, "customer");
	assert_string_equal(e->labels[0].value, "acme");
	assert_string_equal(e->labels[1].name, "plan");
	assert_int_equal(e->granularity, 0); /* 32 on IPv4: per address */
	assert_int_equal(e->max_addresses, 1000);
	assert_int_equal(f.v[0].line, 2);
	assert_int_equal(f.v[0].column, 5);

	e = &f.v[1].e;
	assert_int_equal(e->family, 6);
	assert_int_equal(e->granularity, 64);
	assert_int_equal(e->max_addresses, 0);
	assert_int_equal(e->first[5], 0x00);
	assert_int_equal(e->last[5], 0xff);
	assert_int_equal(e->last[4], 0x01);
	assert_int_equal(e->last[15], 0xff);

	e = &f.v[2].e;
	ipv4(e->first, "198.51.100.10");
	ipv4(e->last, "198.51.100.99");
	assert_string_equal(e->labels[0].value, "x: y");
	assert_string_equal(e->labels[1].value, "null");
	assert_int_equal(f.v[2].line, 9);
	config_file_free(&f);
}

static void test_empty_lists_hold_no_ranges(void **state)
{
	(void)state;
	static const char *const empty[] = {"ranges:\n", "ranges: []\n", "---\nranges: []\n...\n"};
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		struct config_file f;
		if (load(empty[i], &f))
			fail_msg("'%s' refused: %s", empty[i], err);
		assert_int_equal(f.n, 0);
		config_file_free(&f);
	}
}

/* A file with no document (0 bytes, blanks, comments) or a null one is
 * refused, not read as "no ranges": a file truncated while it is written
 * would otherwise end every series on reload. */
static void test_a_file_with_nothing_in_it_is_refused(void **state)
{
	(void)state;
	static const char *const nothing[] = {"", "\n  \n", "# nothing\n", "~\n", "---\n"};
	for (size_t i = 0; i < sizeof nothing / sizeof nothing[0]; i++) {
		struct config_file f;
		if (load(nothing[i], &f) == 0)
			fail_msg("'%s' accepted", nothing[i]);
		assert_int_equal(f.n, 0);
		if (strncmp(err, path, strlen(path)) || !strstr(err, "no configuration"))
			fail_msg("'%s': error '%s'", nothing[i], err);
		config_file_free(&f);
	}
}

static void test_unknown_keys(void **state)
{
	(void)state;
	expect_error("rangez:\n  - prefix: 10.0.0.0/8\n", 1, 1, "unknown key 'rangez'");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    lables: {a: b}\n", 3, 5,
	             "unknown key 'lables' in a range");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    prefix: 10.0.0.0/8\n", 3, 5,
	             "'prefix' given twice");
	expect_error("ranges: []\nranges: []\n", 2, 1, "'ranges' given twice");
}

static void test_bad_prefixes_and_addresses(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/33\n", 2, 13, "invalid prefix length");
	expect_error("ranges:\n  - prefix: 10.0.0/8\n", 2, 13, "invalid prefix '10.0.0/8'");
	expect_error("ranges:\n  - prefix: 10.0.0.1/24\n", 2, 13, "host bits set");
	expect_error("ranges:\n  - prefix: 2001:db8::1/64\n", 2, 13, "host bits set");
	expect_error("ranges:\n  - prefix: 2001:db8::/129\n", 2, 13, "invalid prefix length");
	expect_error("ranges:\n  - prefix: 10.0.0.0/-1\n", 2, 13, "invalid prefix length");
	expect_error("ranges:\n  - prefix: [10.0.0.0/8]\n", 2, 13, "prefix must be a scalar");
	expect_error("ranges:\n  - first: 10.0.0.300\n    last: 10.0.0.1\n", 2, 12,
	             "invalid address '10.0.0.300'");
	expect_error("ranges:\n  - first: 10.0.0.1\n    last: ::1\n", 3, 11, "mix IPv4 and IPv6");
}

static void test_first_after_last(void **state)
{
	(void)state;
	expect_error("ranges:\n  - first: 10.0.0.9\n    last: 10.0.0.1\n", 2, 12,
	             "first is after last");
	expect_error("ranges:\n  - first: 2001:db8::9\n    last: 2001:db8::1\n", 2, 12,
	             "first is after last");
}

static void test_a_range_needs_one_way_to_say_its_addresses(void **state)
{
	(void)state;
	expect_error("ranges:\n  - labels: {a: b}\n", 2, 5, "needs prefix, or first and last");
	expect_error("ranges:\n  - first: 10.0.0.1\n", 2, 5, "'first' needs 'last'");
	expect_error("ranges:\n  - last: 10.0.0.1\n", 2, 5, "'last' needs 'first'");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    first: 10.0.0.1\n    last: 10.0.0.2\n",
	             2, 5, "either prefix or first and last");
	expect_error("ranges:\n  - 10.0.0.0/8\n", 2, 5, "a range must be a mapping");
	expect_error("ranges: 10.0.0.0/8\n", 1, 9, "ranges must be a list");
	expect_error("- prefix: 10.0.0.0/8\n", 1, 1, "must be a mapping with key 'ranges'");
}

static void test_label_names(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {ip: x}\n", 3, 14,
	             "label name 'ip' is reserved");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {job: x}\n", 3, 14,
	             "'job' is reserved");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {__x: x}\n", 3, 14,
	             "'__x' is reserved");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {9x: x}\n", 3, 14,
	             "invalid label name '9x'");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {a-b: x}\n", 3, 14,
	             "invalid label name 'a-b'");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {a: x, a: y}\n", 3, 20,
	             "label 'a' given twice");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {a: [x]}\n", 3, 17,
	             "value of label 'a' must be a scalar");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: [a, b]\n", 3, 13,
	             "labels must be a mapping");
}

static void test_too_many_labels_on_one_range(void **state)
{
	(void)state;
	char yaml[4096];
	int o = snprintf(yaml, sizeof yaml, "ranges:\n  - prefix: 10.0.0.0/8\n    labels:\n");
	for (int i = 0; i < LABELS_MAX - LABELS_FIXED + 1; i++)
		o += snprintf(yaml + o, sizeof yaml - (size_t)o, "      l%d: v\n", i);
	expect_error(yaml, 4 + LABELS_MAX - LABELS_FIXED, 7, "more than 59 labels");
}

static void test_granularity_bounds(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    granularity: 33\n", 3, 18,
	             "granularity 33 is outside 1-32 for IPv4");
	expect_error("ranges:\n  - prefix: 2001:db8::/32\n    granularity: 129\n", 3, 18,
	             "granularity must be a prefix length");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    granularity: 0\n", 3, 18,
	             "granularity must be a prefix length");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    granularity: 0x10\n", 3, 18,
	             "granularity must be a prefix length");
	expect_error("ranges:\n  - prefix: 10.0.0.0/16\n    granularity: 8\n", 3, 18,
	             "shorter than the prefix /16");
	struct config_file f;
	assert_int_equal(load("ranges:\n  - first: 10.0.0.0\n    last: 10.0.9.255\n"
	                      "    granularity: 24\n",
	                      &f),
	                 0);
	assert_int_equal(f.v[0].e.granularity, 24);
	config_file_free(&f);
}

/* first/last follow the prefix rule: every rollup prefix lies inside the
 * range (172.16.0.10 - 172.16.1.20 at /24 would name 172.16.0.0/24, whose
 * addresses 172.16.0.0-9 are outside it). */
static void test_granularity_of_first_last_must_tile_the_range(void **state)
{
	(void)state;
	expect_error("ranges:\n  - first: 172.16.0.10\n    last: 172.16.1.20\n"
	             "    granularity: 24\n",
	             4, 18,
	             "granularity /24 does not fit the range: first 172.16.0.10 is not the "
	             "first address of its /24 (172.16.0.0 is; its rollups would name "
	             "addresses outside the range)");
	expect_error("ranges:\n  - first: 172.16.0.0\n    last: 172.16.1.20\n"
	             "    granularity: 24\n",
	             4, 18, "last 172.16.1.20 is not the last address of its /24 (172.16.1.255 is");
	expect_error("ranges:\n  - first: \"2001:db8:0:1::\"\n    last: \"2001:db8:0:2::\"\n"
	             "    granularity: 64\n",
	             4, 18, "last 2001:db8:0:2:: is not the last address of its /64");
	static const char *const fit[] = {
	    "ranges:\n  - first: 172.16.0.0\n    last: 172.16.1.255\n    granularity: 24\n",
	    "ranges:\n  - first: 172.16.0.10\n    last: 172.16.1.20\n    granularity: 32\n",
	    "ranges:\n  - first: 172.16.0.10\n    last: 172.16.1.20\n",
	    "ranges:\n  - first: \"2001:db8:0:1::\"\n    last: "
	    "\"2001:db8:0:2:ffff:ffff:ffff:ffff\"\n"
	    "    granularity: 64\n",
	};
	for (size_t i = 0; i < sizeof fit / sizeof fit[0]; i++) {
		struct config_file f;
		if (load(fit[i], &f))
			fail_msg("refused:\n%s\n%s", fit[i], err);
		assert_int_equal(f.n, 1);
		config_file_free(&f);
	}
}

/* YAML 1.1 reads 010 as octal 8: a number with a leading zero is refused
 * wherever the file takes one (Prometheus and iproute2 write /8). */
static void test_numbers_with_leading_zeros(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/08\n", 2, 13,
	             "invalid prefix length in '10.0.0.0/08' (0 to 32 for IPv4, no leading zeros)");
	expect_error("ranges:\n  - prefix: \"2001:db8::/048\"\n", 2, 13, "no leading zeros");
	expect_error("ranges:\n  - prefix: 10.0.0.0/16\n    granularity: 024\n", 3, 18,
	             "no leading zeros");
	expect_error("ranges:\n  - prefix: 10.0.0.0/16\n    max_addresses: 0100\n", 3, 20,
	             "no leading zeros");
	struct config_file f;
	assert_int_equal(load("ranges:\n  - prefix: 0.0.0.0/0\n", &f), 0);
	config_file_free(&f);
}

/* Prometheus reads a label with an empty value as no label: null and
 * empty values are refused, and values have a length limit. */
static void test_label_values_null_empty_and_too_long(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {a: x, b: null, d: ~}\n", 3, 23,
	             "label 'b' has a null value");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {d: ~}\n", 3, 17,
	             "label 'd' has a null value");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels:\n      d:\n", 4, 9,
	             "label 'd' has a null value");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {e: ''}\n", 3, 17,
	             "label 'e' has an empty value");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {e: \"a\\0b\"}\n", 3, 17,
	             "label 'e' has a value holding a NUL character");

	/* 4096 bytes load, one more does not; 5 MB is the same error, not
	 * "out of memory" */
	static const size_t sizes[] = {LABELS_VALUE_MAX, LABELS_VALUE_MAX + 1, 5u << 20};
	for (size_t i = 0; i < 3; i++) {
		size_t n = sizes[i];
		char *yaml = malloc(n + 128);
		assert_non_null(yaml);
		int o = snprintf(yaml, 128, "ranges:\n  - prefix: 10.0.0.0/8\n    labels: {big: ");
		memset(yaml + o, 'x', n);
		strcpy(yaml + o + n, "}\n");
		if (i == 0) {
			struct config_file f;
			if (load(yaml, &f))
				fail_msg("%zu bytes refused: %s", n, err);
			assert_int_equal(strlen(f.v[0].e.labels[0].value), n);
			config_file_free(&f);
		} else {
			char needle[96];
			snprintf(needle, sizeof needle,
			         "label 'big' has a value longer than 4096 bytes (%zu)", n);
			expect_error(yaml, 3, 19, needle);
		}
		free(yaml);
	}
}

/* An unquoted IPv6 address ending in "::" is cut by YAML at the ':' (a
 * mapping key): the error says to quote it. */
static void test_unquoted_ipv6_gets_a_hint(void **state)
{
	(void)state;
	expect_error("ranges:\n  - first: 2001:db9::\n    last: \"2001:db9::ff\"\n", 2, 12,
	             "invalid address '2001:db9:' (IPv4 or IPv6) (quote IPv6 addresses in YAML: "
	             "\"2001:db9::\")");
	expect_error("ranges:\n  - first: \"2001:db9::\"\n    last: 2001:db9::\n", 3, 11,
	             "(quote IPv6 addresses in YAML: \"2001:db9::\")");
	expect_error("ranges:\n  - prefix: 2001:db9::\n", 2, 13,
	             "(quote IPv6 addresses in YAML: \"2001:db9::\")");
	expect_error("ranges:\n  - first:\n      2001:db9::\n    last: \"2001:db9::ff\"\n", 3, 7,
	             "first must be an address, got a mapping (quote IPv6 addresses in YAML: "
	             "\"2001:db9::\")");
	/* in a flow mapping libyaml refuses the ':' itself */
	expect_error("ranges:\n  - {first: 2001:db9::, last: \"2001:db9::ff\"}\n", 2, 22,
	             "invalid YAML: found unexpected ':' while scanning a plain scalar (quote a "
	             "value that holds ':', e.g. an IPv6 address: \"2001:db8::\")");
	/* no hint where it cannot help */
	struct config_file f;
	assert_int_not_equal(load("ranges:\n  - first: 10.0.0.300\n    last: 10.0.0.1\n", &f), 0);
	assert_null(strstr(err, "quote"));
	assert_int_not_equal(load("ranges:\n  - first: \"2001:db9:\"\n    last: 10.0.0.1\n", &f),
	                     0);
	assert_null(strstr(err, "quote"));
	config_file_free(&f);
	/* quoted, or not ending in "::", loads */
	assert_int_equal(load("ranges:\n  - first: \"2001:db9::\"\n    last: 2001:db9::ff\n", &f),
	                 0);
	config_file_free(&f);
}

/* A FIFO (or a directory, a device) as the file is an error, not an
 * open() that waits for a writer (on reload: the main thread). */
static void test_only_a_regular_file_is_read(void **state)
{
	(void)state;
	char fifo[80];
	struct config_file f;
	snprintf(fifo, sizeof fifo, "%s.fifo", path);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10); /* before the fix: blocked in open() forever */
	int rc = config_file_load(fifo, &f, err, sizeof err);
	alarm(0);
	unlink(fifo);
	assert_int_equal(rc, -EINVAL);
	if (!strstr(err, ".fifo: not a regular file (a FIFO)"))
		fail_msg("%s", err);
	assert_int_equal(config_file_load("/tmp", &f, err, sizeof err), -EINVAL);
	assert_string_equal(err, "/tmp: not a regular file (a directory)");
	assert_int_equal(config_file_load("/dev/null", &f, err, sizeof err), -EINVAL);
	assert_string_equal(err, "/dev/null: not a regular file (a character device)");
	/* a symbolic link to a regular file is fine (a ConfigMap mount) */
	char link[80];
	snprintf(link, sizeof link, "%s.link", path);
	write_yaml("ranges: []\n");
	assert_int_equal(symlink(path, link), 0);
	rc = config_file_load(link, &f, err, sizeof err);
	unlink(link);
	assert_int_equal(rc, 0);
	config_file_free(&f);
}

static void test_max_addresses(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    max_addresses: 0\n", 3, 20,
	             "max_addresses must be a whole number");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    max_addresses: -5\n", 3, 20,
	             "max_addresses");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    max_addresses: 1e3\n", 3, 20,
	             "max_addresses");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    max_addresses: 99999999999\n", 3, 20,
	             "max_addresses");
}

static void test_yaml_syntax_and_features_refused(void **state)
{
	(void)state;
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n   labels: {a: b}\n", 3, 4, "invalid YAML");
	expect_error("ranges:\n  - prefix: \"10.0.0.0/8\n", 3, 1, "invalid YAML");
	expect_error("ranges:\n  - &r {prefix: 10.0.0.0/8}\n  - *r\n", 2, 5, "anchors");
	expect_error("ranges: []\n---\nranges: []\n", 2, 1, "more than one YAML document");
	expect_error("ranges:\n  - prefix: 10.0.0.0/8\n    labels: {a: \xff}\n", 3, 17,
	             "invalid YAML"); /* bytes that are not UTF-8 */
}

static void test_missing_file_names_it(void **state)
{
	(void)state;
	struct config_file f;
	assert_int_equal(config_file_load("/nonexistent/ranges.yml", &f, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/ranges.yml"));
	config_file_free(&f);
}

/* --config.file: -r flags first, then the file, in order; a bad file is a
 * usage error (exit 2) naming FILE:LINE:COLUMN. */
static void test_config_flag_appends_the_file_after_the_flags(void **state)
{
	(void)state;
	struct config c;
	char *argv[] = {"promacct",      "-R", "x.pcap", "-r", "192.0.2.0/24:src=flag",
	                "--config.file", path, NULL};
	FILE *fp = fopen(path, "w");
	fputs("ranges:\n  - prefix: 192.0.2.0/25\n    labels: {src: file}\n"
	      "  - prefix: 2001:db8::/32\n",
	      fp);
	fclose(fp);
	assert_int_equal(config_parse(&c, 7, argv, err, sizeof err), CONFIG_OK);
	assert_int_equal(c.ranges.n, 3);
	assert_string_equal(c.ranges.v[0].labels[0].value, "flag");
	assert_string_equal(c.ranges.v[1].labels[0].value, "file");
	config_free(&c);

	fp = fopen(path, "w");
	fputs("ranges:\n  - prefix: 192.0.2.0/24\n    labels: {plan: a, plan: b}\n", fp);
	fclose(fp);
	assert_int_equal(config_parse(&c, 7, argv, err, sizeof err), CONFIG_USAGE);
	if (!strstr(err, ":3:23: label 'plan' given twice"))
		fail_msg("%s", err);
	config_free(&c);
}

static void write_yaml(const char *yaml)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(yaml, fp);
	fclose(fp);
}

/* The reload path: -r flags again, the file read again; a bad file leaves
 * the caller's state alone; the label limit holds on reload too. */
static void test_reload_builds_the_ranges_anew(void **state)
{
	(void)state;
	struct config c;
	struct ranges r;
	char *argv[] = {
	    "promacct",           "-R",       "x.pcap",        "-r", "192.0.2.0/24:src=flag",
	    "--remote-write.url", "http://w", "--config.file", path, NULL};
	write_yaml("ranges:\n  - prefix: 198.51.100.0/24\n    labels: {customer: a}\n");
	assert_int_equal(config_parse(&c, 9, argv, err, sizeof err), CONFIG_OK);
	assert_int_equal(c.ranges.n, 2);

	write_yaml("ranges:\n  - prefix: 198.51.100.0/24\n    labels: {customer: b}\n"
	           "  - prefix: 203.0.113.0/24\n");
	assert_int_equal(config_reload_ranges(&c, &r, err, sizeof err), 0);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.v[0].labels[0].value, "flag");
	assert_string_equal(r.v[1].labels[0].value, "b");
	assert_int_equal(ranges_lookup4(&r, 0xcb007101), 2); /* 203.0.113.1 */
	ranges_free(&r);

	write_yaml("ranges:\n  - prefix: 198.51.100.1/24\n");
	assert_int_not_equal(config_reload_ranges(&c, &r, err, sizeof err), 0);
	assert_non_null(strstr(err, ":2:13: prefix '198.51.100.1/24' has host bits set"));
	assert_int_equal(r.n, 0);
	ranges_free(&r);

	/* 57 range labels + job + instance + 5 fixed = 64 fits; with the
	 * command line's external labels, 58 does not. */
	char yaml[2048];
	int o = snprintf(yaml, sizeof yaml, "ranges:\n  - prefix: 10.0.0.0/8\n    labels:\n");
	for (int i = 0; i < 58; i++)
		o += snprintf(yaml + o, sizeof yaml - (size_t)o, "      l%d: v\n", i);
	write_yaml(yaml);
	assert_int_not_equal(config_reload_ranges(&c, &r, err, sizeof err), 0);
	assert_non_null(strstr(err, "too many labels per series"));
	ranges_free(&r);
	assert_int_equal(c.ranges.n, 2); /* untouched */
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_the_schema_of_the_issue_loads),
	    cmocka_unit_test(test_empty_lists_hold_no_ranges),
	    cmocka_unit_test(test_a_file_with_nothing_in_it_is_refused),
	    cmocka_unit_test(test_unknown_keys),
	    cmocka_unit_test(test_bad_prefixes_and_addresses),
	    cmocka_unit_test(test_first_after_last),
	    cmocka_unit_test(test_a_range_needs_one_way_to_say_its_addresses),
	    cmocka_unit_test(test_label_names),
	    cmocka_unit_test(test_too_many_labels_on_one_range),
	    cmocka_unit_test(test_granularity_bounds),
	    cmocka_unit_test(test_max_addresses),
	    cmocka_unit_test(test_granularity_of_first_last_must_tile_the_range),
	    cmocka_unit_test(test_numbers_with_leading_zeros),
	    cmocka_unit_test(test_label_values_null_empty_and_too_long),
	    cmocka_unit_test(test_unquoted_ipv6_gets_a_hint),
	    cmocka_unit_test(test_only_a_regular_file_is_read),
	    cmocka_unit_test(test_yaml_syntax_and_features_refused),
	    cmocka_unit_test(test_missing_file_names_it),
	    cmocka_unit_test(test_config_flag_appends_the_file_after_the_flags),
	    cmocka_unit_test(test_reload_builds_the_ranges_anew),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
