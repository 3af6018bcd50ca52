/* Specification of subnet rollups (a range's granularity): the `ip` label
 * is the prefix in CIDR form, every address inside it is accounted in it,
 * and the sums are exactly those of the per-address series of the same
 * traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

struct rspec {
	const char *first, *last;
	int granularity;
	const char *name, *value; /* one label, or NULL */
	size_t max_addresses;
};

/* A fixture whose ranges come as entries (as from a config file). */
static struct fixture *rollup_fixture_cap(const struct rspec *rs, size_t n, int per_address,
                                          size_t max_addresses)
{
	char err[256];
	struct fixture *f = calloc(1, sizeof *f);
	if (!f || histogram_layout_parse(&f->layout, "100,500", err, sizeof err))
		abort();
	ranges_init(&f->ranges);
	for (size_t i = 0; i < n; i++) {
		char name[64], value[64];
		struct label l = {name, value};
		struct range_entry e = {.family = strchr(rs[i].first, ':') ? 6 : 4,
		                        .granularity = per_address ? 0 : rs[i].granularity,
		                        .max_addresses = per_address ? 0 : rs[i].max_addresses};
		int af = e.family == 4 ? AF_INET : AF_INET6;
		if (inet_pton(af, rs[i].first, e.first) != 1 ||
		    inet_pton(af, rs[i].last, e.last) != 1)
			abort();
		if (rs[i].name) {
			snprintf(name, sizeof name, "%s", rs[i].name);
			snprintf(value, sizeof value, "%s", rs[i].value);
			e.labels = &l;
			e.nlabels = 1;
		}
		if (ranges_add_entry(&f->ranges, &e, err, sizeof err))
			fail_msg("%s", err);
	}
	if (ranges_build(&f->ranges) ||
	    registry_init(&f->reg, &f->layout, &f->ranges, max_addresses))
		abort();
	int src = registry_add_source(&f->reg, "eth0");
	if (src < 0 || !(f->shard = registry_add_shard(&f->reg, src)))
		abort();
	f->reg.start_time = 1700000000.5;
	return f;
}

static struct fixture *rollup_fixture(const struct rspec *rs, size_t n, int per_address)
{
	return rollup_fixture_cap(rs, n, per_address, 100000);
}

static char *line_of(char *page, const char *prefix)
{
	char *p = strstr(page, prefix);
	if (!p)
		fail_msg("no line starting '%s' in:\n%s", prefix, page);
	return p;
}

static void expect_line(char *page, const char *line)
{
	char *p = strstr(page, line);
	if (!p || (p != page && p[-1] != '\n'))
		fail_msg("no line '%s' in:\n%s", line, page);
}

static const struct rspec isp[] = {
    {"198.51.100.0", "198.51.100.255", 24, "customer", "acme", 0},
    {"2001:db8:100::", "2001:db8:1ff:ffff:ffff:ffff:ffff:ffff", 64, "customer", "initech", 0},
    {"192.0.2.0", "192.0.2.255", 0, "customer", "globex", 0},
};

static void test_rollup_series_are_prefixes_in_cidr_form(void **state)
{
	(void)state;
	struct fixture *f = rollup_fixture(isp, 3, 0);
	fixture_ip(f, NULL, "198.51.100.7", "192.0.2.1", 6, 114);
	fixture_ip(f, NULL, "198.51.100.200", "192.0.2.1", 6, 614);
	fixture_ip(f, NULL, "2001:db8:100:7::1", "2001:db8:100:7::2", 17, 94);
	fixture_ip(f, NULL, "2001:db8:100:7:abcd::1", "2001:db8:100:8::99", 17, 1014);
	char *page = fixture_render(&f->reg);
	/* two sources in one /24: one series */
	expect_line(page,
	            "promacct_packet_size_bytes_ipv4_tx_bucket{interface=\"eth0\","
	            "ip=\"198.51.100.0/24\",protocol=\"tcp\",customer=\"acme\",le=\"100\"} 1");
	expect_line(page,
	            "promacct_packet_size_bytes_ipv4_tx_bucket{interface=\"eth0\","
	            "ip=\"198.51.100.0/24\",protocol=\"tcp\",customer=\"acme\",le=\"+Inf\"} 2");
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_sum{interface=\"eth0\","
	                  "ip=\"198.51.100.0/24\",protocol=\"tcp\",customer=\"acme\"} 700");
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\","
	                  "ip=\"198.51.100.0/24\",protocol=\"tcp\",customer=\"acme\"} 2");
	/* a range at full length: per address, as before */
	expect_line(page, "promacct_packet_size_bytes_ipv4_rx_count{interface=\"eth0\","
	                  "ip=\"192.0.2.1\",protocol=\"tcp\",customer=\"globex\"} 2");
	/* IPv6 /64: both temporary addresses of 2001:db8:100:7::/64 in one */
	expect_line(page, "promacct_packet_size_bytes_ipv6_tx_count{interface=\"eth0\","
	                  "ip=\"2001:db8:100:7::/64\",protocol=\"udp\",customer=\"initech\"} 2");
	expect_line(page, "promacct_packet_size_bytes_ipv6_tx_sum{interface=\"eth0\","
	                  "ip=\"2001:db8:100:7::/64\",protocol=\"udp\",customer=\"initech\"} 1080");
	expect_line(page, "promacct_packet_size_bytes_ipv6_rx_sum{interface=\"eth0\","
	                  "ip=\"2001:db8:100:7::/64\",protocol=\"udp\",customer=\"initech\"} 80");
	expect_line(page, "promacct_packet_size_bytes_ipv6_rx_sum{interface=\"eth0\","
	                  "ip=\"2001:db8:100:8::/64\",protocol=\"udp\",customer=\"initech\"} 1000");
	/* no per-address series of rolled-up ranges */
	assert_null(strstr(page, "ip=\"198.51.100.7\""));
	assert_null(strstr(page, "ip=\"2001:db8:100:7::1\""));
	/* one key per (prefix, direction, protocol): 1 + 1 + 3 */
	assert_int_equal(registry_address_histograms(&f->reg), 5);
	free(page);
	fixture_free(f);
}

/* Sum of the `_sum` (or `_count`) samples of family `fam` per customer. */
static double customer_total(const char *page, const char *fam, const char *what,
                             const char *customer)
{
	char pre[128], lab[64];
	double total = 0;
	snprintf(pre, sizeof pre, "promacct_packet_size_bytes_%s_%s{", fam, what);
	snprintf(lab, sizeof lab, "customer=\"%s\"}", customer);
	for (const char *p = page; (p = strstr(p, pre)) != NULL; p++) {
		const char *end = strchr(p, '\n');
		const char *l = strstr(p, lab);
		if (l && l < end)
			total += strtod(l + strlen(lab), NULL);
	}
	return total;
}

/* The same random traffic through rollups and through per-address ranges:
 * per customer, family, direction, the sums and counts are equal. */
static void test_rollup_sums_equal_per_address_sums(void **state)
{
	(void)state;
	struct fixture *roll = rollup_fixture(isp, 3, 0), *each = rollup_fixture(isp, 3, 1);
	uint32_t x = 12345;
	for (int i = 0; i < 5000; i++) {
		char a[64], b[64];
		x = x * 1103515245u + 12345u;
		uint32_t len = 60 + (x >> 8) % 1400;
		if (i % 2) {
			snprintf(a, sizeof a, "198.51.100.%u", (x >> 3) & 255);
			snprintf(b, sizeof b, "192.0.2.%u", (x >> 13) & 255);
		} else {
			snprintf(a, sizeof a, "2001:db8:1%02x:%x::%x", (x >> 3) & 255,
			         (x >> 11) & 15, (x >> 15) & 0xffff);
			snprintf(b, sizeof b, "2001:db8:100:%x:1::%x", (x >> 19) & 7,
			         (x >> 22) & 255);
		}
		int proto = x & 1 ? 6 : 17;
		fixture_ip(roll, NULL, a, b, proto, len);
		fixture_ip(each, NULL, a, b, proto, len);
	}
	char *pr = fixture_render(&roll->reg), *pe = fixture_render(&each->reg);
	static const char *const fams[] = {"ipv4_tx", "ipv4_rx", "ipv6_tx", "ipv6_rx"};
	static const char *const custs[] = {"acme", "initech", "globex"};
	double all = 0;
	for (int fi = 0; fi < 4; fi++)
		for (int c = 0; c < 3; c++)
			for (int w = 0; w < 2; w++) {
				const char *what = w ? "count" : "sum";
				double r = customer_total(pr, fams[fi], what, custs[c]);
				double e = customer_total(pe, fams[fi], what, custs[c]);
				if (r != e)
					fail_msg("%s %s %s: rollup %.0f, per address %.0f",
					         fams[fi], what, custs[c], r, e);
				all += r;
			}
	assert_true(all > 0);
	/* and fewer series */
	assert_true(registry_address_histograms(&roll->reg) <
	            registry_address_histograms(&each->reg));
	free(pr);
	free(pe);
	fixture_free(roll);
	fixture_free(each);
}

/* Ranges apart that roll up into one prefix keep their own series (their
 * labels differ); ranges alike (same labels, granularity, cap) share one;
 * a rollup prefix and an address with the same bits stay apart. */
static void test_rollup_identity(void **state)
{
	(void)state;
	/* (the last two are alike: one group, so one series for 10.0.1.0/24,
	 * whatever their caps) */
	static const struct rspec rs[] = {
	    {"10.0.0.0", "10.0.0.0", 0, "c", "exact", 0},
	    {"10.0.0.0", "10.0.0.127", 24, "c", "a", 0},
	    {"10.0.0.128", "10.0.0.255", 24, "c", "b", 0},
	    {"10.0.1.0", "10.0.1.127", 24, "c", "a", 5},
	    {"10.0.1.128", "10.0.1.255", 24, "c", "a", 7},
	};
	struct fixture *f = rollup_fixture(rs, 5, 0);
	fixture_ip(f, NULL, "10.0.0.0", "192.0.2.1", 6, 114);
	fixture_ip(f, NULL, "10.0.0.1", "192.0.2.1", 6, 214);
	fixture_ip(f, NULL, "10.0.0.200", "192.0.2.1", 6, 314);
	fixture_ip(f, NULL, "10.0.1.1", "192.0.2.1", 6, 414);
	fixture_ip(f, NULL, "10.0.1.201", "192.0.2.1", 6, 514);
	char *page = fixture_render(&f->reg);
	const char *pre = "promacct_packet_size_bytes_ipv4_tx_sum{interface=\"eth0\",";
	char want[256];
	static const char *const lines[] = {
	    "ip=\"10.0.0.0\",protocol=\"tcp\",c=\"exact\"} 100",
	    "ip=\"10.0.0.0/24\",protocol=\"tcp\",c=\"a\"} 200",
	    "ip=\"10.0.0.0/24\",protocol=\"tcp\",c=\"b\"} 300",
	    "ip=\"10.0.1.0/24\",protocol=\"tcp\",c=\"a\"} 900",
	};
	for (size_t i = 0; i < 4; i++) {
		snprintf(want, sizeof want, "%s%s", pre, lines[i]);
		expect_line(page, want);
	}
	char *first = line_of(page, "promacct_packet_size_bytes_ipv4_tx_sum");
	int n = 0;
	for (char *p = first; (p = strstr(p, "_ipv4_tx_sum{")) != NULL; p++)
		n++;
	assert_int_equal(n, 4);
	free(page);
	fixture_free(f);
}

/* The read-out gathers a bounded batch at a time by cutting the sort key
 * into buckets; keys alike in every bit (rollups of ranges apart into one
 * prefix: 200 here, more than a batch of 64) and a skewed state (most keys
 * in one /24, a few far apart) come out as in one pass: every series once,
 * in order. */
static void test_batched_read_out_of_keys_alike(void **state)
{
	(void)state;
	enum { N = 200 };
	static char first[N][32], value[N][16];
	static struct rspec rs[N + 1];
	for (int i = 0; i < N; i++) {
		snprintf(first[i], sizeof first[i], "10.0.%d.%d", i / 100, i % 100);
		snprintf(value[i], sizeof value[i], "c%03d", i);
		rs[i] = (struct rspec){first[i], first[i], 8, "c", value[i], 0};
	}
	rs[N] = (struct rspec){"0.0.0.0", "255.255.255.255", 0, NULL, NULL, 0};
	struct fixture *f = rollup_fixture(rs, N + 1, 0);
	char a[32];
	for (int i = 0; i < N; i++) {
		fixture_ip(f, NULL, first[i], "192.0.2.1", 6, (uint32_t)(114 + i));
		snprintf(a, sizeof a, "192.0.2.%d", i);
		fixture_ip(f, NULL, a, "203.0.113.1", 17, 200);
	}
	fixture_ip(f, NULL, "1.2.3.4", "254.0.0.1", 6, 100);
	f->reg.collect_batch = 1u << 20;
	char *one = fixture_render(&f->reg);
	for (size_t batch = 64; batch <= 1024; batch *= 4) {
		f->reg.collect_batch = batch;
		char *many = fixture_render(&f->reg);
		assert_string_equal(one, many);
		free(many);
	}
	int n = 0;
	for (char *p = one; (p = strstr(p, "ip=\"10.0.0.0/8\",protocol=\"tcp\",c=\"c")) != NULL;
	     p++)
		n++;
	assert_int_equal(n, 5 * N); /* 3 bucket lines (100, 500, +Inf), _sum, _count */
	free(one);
	fixture_free(f);
}

/* --max-addresses counts a rollup prefix once, whatever the addresses in
 * it and the capture threads that saw them. */
static void test_cap_counts_prefixes(void **state)
{
	(void)state;
	static const struct rspec rs[] = {{"10.0.0.0", "10.0.255.255", 24, "c", "a", 0}};
	struct fixture *f = rollup_fixture_cap(rs, 1, 0, 2);
	struct acct_shard *s2 = registry_add_shard(&f->reg, 0);
	assert_non_null(s2);
	fixture_ip(f, NULL, "10.0.0.1", "192.0.2.1", 6, 114);
	fixture_ip(f, s2, "10.0.0.2", "192.0.2.1", 6, 114);
	fixture_ip(f, NULL, "10.0.1.1", "192.0.2.1", 6, 114);
	fixture_ip(f, s2, "10.0.1.9", "192.0.2.1", 6, 114);
	fixture_ip(f, NULL, "10.0.2.1", "192.0.2.1", 6, 114); /* a third prefix: the cap */
	assert_int_equal(counter_read(&f->shard->untracked) + counter_read(&s2->untracked), 0);
	char *page = fixture_render(&f->reg);
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\","
	                  "ip=\"other\",protocol=\"tcp\",c=\"a\"} 1");
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\","
	                  "ip=\"10.0.0.0/24\",protocol=\"tcp\",c=\"a\"} 2");
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\","
	                  "ip=\"10.0.1.0/24\",protocol=\"tcp\",c=\"a\"} 2");
	assert_null(strstr(page, "10.0.2.0/24"));
	free(page);
	fixture_free(f);
}

/* A range's max_addresses bounds its keys; what it refuses is accounted in
 * its overflow series (ip="other", its labels), so the sums per customer are
 * those of an uncapped run. Ranges alike share the cap. */
static void test_range_caps_overflow_keeps_customer_sums_exact(void **state)
{
	(void)state;
	static const struct rspec rs[] = {
	    {"10.0.0.0", "10.0.0.127", 0, "customer", "acme", 1},
	    {"10.0.0.128", "10.0.0.255", 0, "customer", "acme", 1}, /* alike: one cap, 2 */
	    {"10.0.1.0", "10.0.1.255", 0, "customer", "globex", 0},
	    {"2001:db8::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", 64, "customer", "acme", 1},
	};
	struct fixture *capped = rollup_fixture(rs, 4, 0), *free_run = rollup_fixture(rs, 4, 1);
	struct fixture *both[2] = {capped, free_run};
	for (int k = 0; k < 2; k++) {
		struct fixture *f = both[k];
		fixture_ip(f, NULL, "10.0.0.1", "10.0.1.1", 6, 114);
		fixture_ip(f, NULL, "10.0.0.200", "10.0.1.2", 6, 214);
		fixture_ip(f, NULL, "10.0.0.3", "10.0.1.3", 6, 314); /* acme's third key */
		fixture_ip(f, NULL, "10.0.0.201", "10.0.1.4", 6, 414);
		fixture_ip(f, NULL, "10.0.0.1", "10.0.1.5", 6, 514); /* held: its own */
		fixture_ip(f, NULL, "2001:db8:0:1::1", "2001:db8:0:1::2", 17, 94);
		fixture_ip(f, NULL, "2001:db8:0:2::1", "2001:db8:0:1::2", 17, 194); /* 2nd /64 */
	}
	char *page = fixture_render(&capped->reg), *free_page = fixture_render(&free_run->reg);
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_sum{interface=\"eth0\","
	                  "ip=\"10.0.0.1\",protocol=\"tcp\",customer=\"acme\"} 600");
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_sum{interface=\"eth0\","
	                  "ip=\"10.0.0.200\",protocol=\"tcp\",customer=\"acme\"} 200");
	expect_line(page, "promacct_packet_size_bytes_ipv4_tx_sum{interface=\"eth0\","
	                  "ip=\"other\",protocol=\"tcp\",customer=\"acme\"} 700");
	expect_line(page, "promacct_packet_size_bytes_ipv6_tx_sum{interface=\"eth0\","
	                  "ip=\"2001:db8:0:1::/64\",protocol=\"udp\",customer=\"acme\"} 80");
	expect_line(page, "promacct_packet_size_bytes_ipv6_tx_sum{interface=\"eth0\","
	                  "ip=\"other\",protocol=\"udp\",customer=\"acme\"} 180");
	/* acme's IPv4 (cap 2) and IPv6 (cap 1) ranges: one series each */
	expect_line(page, "promacct_range_tracked_keys{customer=\"acme\"} 3");
	expect_line(page, "promacct_range_max_keys{customer=\"acme\"} 3");
	assert_null(strstr(strstr(page, "promacct_range_tracked_keys{customer=\"acme\"}") + 1,
	                   "promacct_range_tracked_keys{customer=\"acme\"}"));
	assert_null(strstr(page, "ip=\"10.0.0.3\""));
	assert_null(strstr(page, "promacct_range_tracked_keys{customer=\"globex\"}"));
	assert_null(strstr(free_page, "ip=\"other\",protocol"));
	static const char *const fams[] = {"ipv4_tx", "ipv4_rx", "ipv6_tx", "ipv6_rx"};
	for (int fi = 0; fi < 4; fi++)
		for (int c = 0; c < 2; c++) {
			const char *cust = c ? "globex" : "acme";
			assert_true(customer_total(page, fams[fi], "sum", cust) ==
			            customer_total(free_page, fams[fi], "sum", cust));
			assert_true(customer_total(page, fams[fi], "count", cust) ==
			            customer_total(free_page, fams[fi], "count", cust));
		}
	assert_int_equal(counter_read(&capped->shard->untracked), 0);
	free(page);
	free(free_page);
	fixture_free(capped);
	fixture_free(free_run);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rollup_series_are_prefixes_in_cidr_form),
	    cmocka_unit_test(test_rollup_sums_equal_per_address_sums),
	    cmocka_unit_test(test_rollup_identity),
	    cmocka_unit_test(test_batched_read_out_of_keys_alike),
	    cmocka_unit_test(test_cap_counts_prefixes),
	    cmocka_unit_test(test_range_caps_overflow_keeps_customer_sums_exact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
