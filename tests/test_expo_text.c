/* Specification of the text exposition (src/expo_text.c, registry walk). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "promacct/expo_text.h"
#include "fixture.h"

static void test_exact_page_for_a_small_state(void **state)
{
	(void)state;
	const char *ranges[] = {"10.0.0.0/24:customer=acme"};
	struct fixture *f = fixture_new("100,1000", ranges, 1, 10);
	fixture_ip(f, NULL, "10.0.0.1", "192.0.2.1", 6, 114);   /* size 100 */
	fixture_ip(f, NULL, "192.0.2.1", "10.0.0.1", 17, 1514); /* size 1500 */
	char *page = fixture_render(&f->reg);
	const char *want =
	    "# HELP promacct_packet_size_bytes_all Size of all packets seen on the interface, in "
	    "bytes without the link-layer header.\n"
	    "# TYPE promacct_packet_size_bytes_all histogram\n"
	    "promacct_packet_size_bytes_all_bucket{interface=\"eth0\",le=\"100\"} 1\n"
	    "promacct_packet_size_bytes_all_bucket{interface=\"eth0\",le=\"1000\"} 1\n"
	    "promacct_packet_size_bytes_all_bucket{interface=\"eth0\",le=\"+Inf\"} 2\n"
	    "promacct_packet_size_bytes_all_sum{interface=\"eth0\"} 1600\n"
	    "promacct_packet_size_bytes_all_count{interface=\"eth0\"} 2\n"
	    "# HELP promacct_packet_size_bytes_ipv4_tx Size of IPv4 packets sent by the address "
	    "(its source), in bytes without the link-layer header.\n"
	    "# TYPE promacct_packet_size_bytes_ipv4_tx histogram\n"
	    "promacct_packet_size_bytes_ipv4_tx_bucket{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"tcp\",customer=\"acme\",le=\"100\"} 1\n"
	    "promacct_packet_size_bytes_ipv4_tx_bucket{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"tcp\",customer=\"acme\",le=\"1000\"} 1\n"
	    "promacct_packet_size_bytes_ipv4_tx_bucket{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"tcp\",customer=\"acme\",le=\"+Inf\"} 1\n"
	    "promacct_packet_size_bytes_ipv4_tx_sum{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"tcp\",customer=\"acme\"} 100\n"
	    "promacct_packet_size_bytes_ipv4_tx_count{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"tcp\",customer=\"acme\"} 1\n"
	    "# HELP promacct_packet_size_bytes_ipv4_rx Size of IPv4 packets received by the "
	    "address (its destination), in bytes without the link-layer header.\n"
	    "# TYPE promacct_packet_size_bytes_ipv4_rx histogram\n"
	    "promacct_packet_size_bytes_ipv4_rx_bucket{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"udp\",customer=\"acme\",le=\"100\"} 0\n"
	    "promacct_packet_size_bytes_ipv4_rx_bucket{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"udp\",customer=\"acme\",le=\"1000\"} 0\n"
	    "promacct_packet_size_bytes_ipv4_rx_bucket{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"udp\",customer=\"acme\",le=\"+Inf\"} 1\n"
	    "promacct_packet_size_bytes_ipv4_rx_sum{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"udp\",customer=\"acme\"} 1500\n"
	    "promacct_packet_size_bytes_ipv4_rx_count{interface=\"eth0\",ip=\"10.0.0.1\","
	    "protocol=\"udp\",customer=\"acme\"} 1\n"
	    "# HELP promacct_pcap_received_packets_total";
	if (strncmp(page, want, strlen(want)))
		fail_msg("page differs:\n%s", page);
	assert_non_null(strstr(page, "\npromacct_start_time_seconds 1.7000000005e+09\n"));
	assert_non_null(strstr(page, "\npromacct_tracked_addresses 1\n"));
	assert_non_null(strstr(page, "promacct_build_info{libpcap=\""));
	assert_int_equal(page[strlen(page) - 1], '\n');
	free(page);
	fixture_free(f);
}

static void test_every_family_has_help_and_type_once_and_contiguous(void **state)
{
	(void)state;
	const char *ranges[] = {"0.0.0.0/0", "::/0"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 2, 100);
	fixture_ip(f, NULL, "10.0.0.1", "10.0.0.2", 6, 100);
	fixture_ip(f, NULL, "2001:db8::1", "2001:db8::2", 17, 100);
	char *page = fixture_render(&f->reg);
	char seen[64][128];
	int nseen = 0;
	char current[128] = "";
	for (char *line = strtok(page, "\n"); line; line = strtok(NULL, "\n")) {
		if (!strncmp(line, "# HELP ", 7)) {
			char name[128];
			sscanf(line + 7, "%127s", name);
			for (int i = 0; i < nseen; i++)
				assert_string_not_equal(seen[i], name);
			strcpy(seen[nseen++], name);
			strcpy(current, name);
			continue;
		}
		if (!strncmp(line, "# TYPE ", 7)) {
			assert_int_equal(strncmp(line + 7, current, strlen(current)), 0);
			continue;
		}
		/* a sample belongs to the current family */
		assert_int_equal(strncmp(line, current, strlen(current)), 0);
	}
	assert_true(nseen >= 12);
	free(page);
	fixture_free(f);
}

static void test_label_values_and_help_are_escaped(void **state)
{
	(void)state;
	const char *ranges[] = {"10.0.0.0/8:note=a\\b\"c"};
	struct fixture *f = fixture_new("64", ranges, 1, 10);
	free(f->reg.sources[0].name);
	f->reg.sources[0].name = strdup("we\"ird\\if\nname");
	fixture_ip(f, NULL, "10.0.0.1", "1.1.1.1", 6, 80);
	char *page = fixture_render(&f->reg);
	assert_non_null(strstr(page, "interface=\"we\\\"ird\\\\if\\nname\""));
	assert_non_null(strstr(page, "note=\"a\\\\b\\\"c\""));
	free(page);
	struct buf b;
	buf_init(&b, 0);
	expo_text_escape_help(&b, "a\\b\nc\"d");
	buf_append_char(&b, '\0');
	assert_string_equal(b.data, "a\\\\b\\nc\"d");
	buf_free(&b);
	fixture_free(f);
}

/* Found by fuzz_expo: the format is UTF-8 and Prometheus rejects the whole
 * page over one bad byte; a name from outside (a capture file path, a URL)
 * keeps its valid characters and shows U+FFFD for each stray byte. */
static void test_bytes_that_are_not_utf8_become_replacement_characters(void **state)
{
	(void)state;
	struct fixture *f = fixture_new("64", NULL, 0, 10);
	free(f->reg.sources[0].name);
	f->reg.sources[0].name = strdup("caf\xc3\xa9-\xff\xc3(.pcap");
	fixture_ip(f, NULL, "10.0.0.1", "1.1.1.1", 6, 80);
	char *page = fixture_render(&f->reg);
	assert_non_null(strstr(page, "interface=\"caf\xc3\xa9-\xef\xbf\xbd\xef\xbf\xbd(.pcap\""));
	free(page);
	fixture_free(f);
}

static void test_page_cap_is_an_error(void **state)
{
	(void)state;
	struct fixture *f = fixture_new("64", NULL, 0, 10);
	struct buf b;
	buf_init(&b, 100);
	assert_int_equal(expo_text_render(&f->reg, &b), -E2BIG);
	buf_free(&b);
	fixture_free(f);
}

struct collect_sink {
	struct expo_sink s;
	struct buf all;
	size_t calls, max_chunk;
	size_t fail_after; /* calls before returning -EPIPE, 0: never */
};

static int collect_write(struct expo_sink *s, const char *data, size_t len)
{
	struct collect_sink *c = (struct collect_sink *)s;
	if (c->fail_after && c->calls == c->fail_after)
		return -EPIPE;
	c->calls++;
	if (len > c->max_chunk)
		c->max_chunk = len;
	buf_append(&c->all, data, len);
	return 0;
}

static struct fixture *big_state(void)
{
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100000);
	char a[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(a, sizeof a, "10.0.%d.%d", i >> 8, i & 255);
		fixture_ip(f, NULL, a, "10.9.9.9", 6, 100 + (uint32_t)i);
	}
	return f;
}

/* A streamed page is the same bytes as the page rendered whole, handed over
 * in chunks no larger than EXPO_TEXT_CHUNK_MAX (a render holds one chunk). */
static void test_streamed_page_equals_whole_page_in_bounded_chunks(void **state)
{
	(void)state;
	struct fixture *f = big_state();
	char *whole = fixture_render(&f->reg);
	struct collect_sink c = {{collect_write}, {0}, 0, 0, 0};
	buf_init(&c.all, 0);
	uint64_t bytes = 0;
	assert_int_equal(expo_text_write(&f->reg, &c.s, &bytes), 0);
	assert_int_equal(bytes, strlen(whole));
	assert_int_equal(c.all.len, strlen(whole));
	assert_memory_equal(c.all.data, whole, c.all.len);
	assert_true(c.calls > 5); /* ~1.3 MB page */
	assert_true(c.max_chunk <= EXPO_TEXT_CHUNK_MAX);
	buf_free(&c.all);
	free(whole);
	fixture_free(f);
}

/* A sink error (a client gone, a full disk) stops the walk and is returned. */
static void test_sink_error_stops_the_render(void **state)
{
	(void)state;
	struct fixture *f = big_state();
	struct collect_sink c = {{collect_write}, {0}, 0, 0, 2};
	buf_init(&c.all, 0);
	assert_int_equal(expo_text_write(&f->reg, &c.s, NULL), -EPIPE);
	assert_int_equal(c.calls, 2);
	buf_free(&c.all);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exact_page_for_a_small_state),
	    cmocka_unit_test(test_every_family_has_help_and_type_once_and_contiguous),
	    cmocka_unit_test(test_label_values_and_help_are_escaped),
	    cmocka_unit_test(test_bytes_that_are_not_utf8_become_replacement_characters),
	    cmocka_unit_test(test_page_cap_is_an_error),
	    cmocka_unit_test(test_streamed_page_equals_whole_page_in_bounded_chunks),
	    cmocka_unit_test(test_sink_error_stops_the_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
