/* Specification of the packet parser (src/parse.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include <pcap/dlt.h>

#include "promacct/parse.h"
#include "frames.h"

static uint8_t buf[512];

static void assert_v4(const struct parsed_packet *p, const char *src, const char *dst)
{
	char s[64], d[64];
	assert_int_equal(p->family, 4);
	inet_ntop(AF_INET, p->src, s, sizeof s);
	inet_ntop(AF_INET, p->dst, d, sizeof d);
	assert_string_equal(s, src);
	assert_string_equal(d, dst);
}

static void test_ethernet_ipv4_tcp(void **state)
{
	(void)state;
	struct parsed_packet p;
	size_t n = fr_eth(buf, 0x0800);
	n += fr_ipv4(buf + n, "10.0.0.1", "10.0.0.2", 6);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)n, 1514, &p), PARSE_OK);
	assert_v4(&p, "10.0.0.1", "10.0.0.2");
	assert_int_equal(p.proto, PROTO_TCP);
	assert_int_equal(p.size, 1500); /* wire length minus 14 */
}

static void test_vlan_tags_each_cost_four_bytes(void **state)
{
	(void)state;
	struct parsed_packet p;
	for (int tags = 1; tags <= 4; tags++) {
		size_t n = 12;
		memset(buf, 0, sizeof buf);
		for (int t = 0; t < tags; t++) {
			fr_put16(buf + n, t == 0 ? 0x88a8 : 0x8100);
			n += 4;
		}
		fr_put16(buf + n, 0x0800);
		n += 2;
		n += fr_ipv4(buf + n, "192.0.2.1", "198.51.100.7", 17);
		assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)n, 1000, &p), PARSE_OK);
		assert_int_equal(p.size, 1000 - 14 - 4 * tags);
		assert_int_equal(p.proto, PROTO_UDP);
		assert_v4(&p, "192.0.2.1", "198.51.100.7");
	}
}

static void test_too_many_vlan_tags_is_bad_link(void **state)
{
	(void)state;
	struct parsed_packet p;
	size_t n = 12;
	memset(buf, 0, sizeof buf);
	for (int t = 0; t < 9; t++) {
		fr_put16(buf + n, 0x8100);
		n += 4;
	}
	fr_put16(buf + n, 0x0800);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, 200, 200, &p), PARSE_BAD_LINK);
	assert_int_equal(p.family, 0);
}

static void test_pppoe_session(void **state)
{
	(void)state;
	struct parsed_packet p;
	size_t n = fr_eth(buf, 0x8864);
	buf[n] = 0x11;
	buf[n + 1] = 0;
	fr_put16(buf + n + 6, 0x0057); /* PPP IPv6 */
	n += 8;
	n += fr_ipv6(buf + n, "2001:db8::1", "2001:db8::2", 6);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)n, 200, &p), PARSE_OK);
	assert_int_equal(p.family, 6);
	assert_int_equal(p.size, 200 - 14 - 8);
	assert_int_equal(p.proto, PROTO_TCP);
	/* PPP LCP is not IP */
	fr_put16(buf + 14 + 6, 0xc021);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)n, 200, &p), PARSE_NON_IP);
	assert_int_equal(p.size, 200 - 22);
}

static void test_arp_is_non_ip_but_sized(void **state)
{
	(void)state;
	struct parsed_packet p;
	size_t n = fr_eth(buf, 0x0806);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)n + 28, 60, &p), PARSE_NON_IP);
	assert_int_equal(p.size, 46);
	assert_int_equal(p.family, 0);
}

/* A frame cut by the snapshot length inside the link header is truncated
 * (the wire length is real); a wire length below the link header is not a
 * frame at all. */
static void test_capture_cut_in_link_header_is_truncated(void **state)
{
	(void)state;
	struct parsed_packet p;
	assert_int_equal(parse_packet(DLT_EN10MB, buf, 10, 60, &p), PARSE_TRUNCATED);
	assert_int_equal(p.size, 46);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, 0, 60, &p), PARSE_TRUNCATED);
}

static void test_wire_length_below_link_header_is_bad_length_size_zero(void **state)
{
	(void)state;
	struct parsed_packet p;
	int dlts[] = {DLT_EN10MB, DLT_LINUX_SLL, 276, DLT_NULL, DLT_LOOP};
	uint32_t hlens[] = {14, 16, 20, 4, 4};
	for (size_t i = 0; i < sizeof dlts / sizeof dlts[0]; i++) {
		assert_int_equal(parse_packet(dlts[i], buf, hlens[i] - 1, hlens[i] - 1, &p),
		                 PARSE_BAD_LENGTH);
		assert_int_equal(p.size, 0);
		assert_int_equal(p.family, 0);
		assert_int_equal(parse_packet(dlts[i], buf, 0, 0, &p), PARSE_BAD_LENGTH);
	}
	assert_int_equal(parse_packet(DLT_EN10MB, buf, 10, 10, &p), PARSE_BAD_LENGTH);
	assert_int_equal(parse_packet(DLT_RAW, buf, 0, 0, &p), PARSE_TRUNCATED); /* no header */
}

/* An IPv4/TCP frame of 134 bytes on the wire, IP total length 120. */
static size_t frame134(uint8_t *b, int dlt)
{
	size_t off = 0;
	memset(b, 0, 200);
	if (dlt == DLT_EN10MB)
		off = fr_eth(b, 0x0800);
	else if (dlt == DLT_LINUX_SLL) {
		fr_put16(b + 14, 0x0800);
		off = 16;
	} else if (dlt == DLT_NULL) {
		b[0] = 2; /* AF_INET, host order */
		off = 4;
	}
	fr_ipv4(b + off, "10.0.0.1", "10.0.0.2", 6);
	fr_put16(b + off + 2, 120);
	return off + 120;
}

/* Issue 13 item 3: a record's wire length is bounded by what a frame can
 * be; beyond that it is invalid, counted with the bytes that existed and
 * never accounted per address. */
static void test_absurd_wire_lengths_are_bad_length(void **state)
{
	(void)state;
	struct parsed_packet p;
	int dlts[] = {DLT_EN10MB, DLT_LINUX_SLL, DLT_NULL, DLT_RAW};
	uint32_t wires[] = {0xffffffffu, 0x80000000u, 300000, PARSE_MAX_WIRELEN + 1};
	for (size_t d = 0; d < sizeof dlts / sizeof dlts[0]; d++) {
		uint32_t n = (uint32_t)frame134(buf, dlts[d]);
		uint32_t hlen = n - 120;
		assert_int_equal(parse_packet(dlts[d], buf, n, n, &p), PARSE_OK);
		assert_int_equal(p.size, 120);
		for (size_t w = 0; w < sizeof wires / sizeof wires[0]; w++) {
			assert_int_equal(parse_packet(dlts[d], buf, n, wires[w], &p),
			                 PARSE_BAD_LENGTH);
			assert_int_equal(p.size, n - hlen); /* what was captured */
			assert_int_equal(p.family, 0);
		}
		/* far more than the IP header says, though below the maximum */
		assert_int_equal(parse_packet(dlts[d], buf, n, n + PARSE_IP_LEN_SLACK + 1, &p),
		                 PARSE_BAD_LENGTH);
		assert_int_equal(p.size, 120);
		/* padding, a frame check sequence, a trailer: still the frame */
		assert_int_equal(parse_packet(dlts[d], buf, n, n + PARSE_IP_LEN_SLACK, &p),
		                 PARSE_OK);
		assert_int_equal(p.size, 120 + PARSE_IP_LEN_SLACK);
		/* cut by the snapshot length: the wire length is believed */
		assert_int_equal(parse_packet(dlts[d], buf, hlen + 20, n, &p), PARSE_OK);
		assert_int_equal(p.size, 120);
	}
}

/* The largest real frames: a GRO aggregate (IP length up to 65535) and a
 * BIG TCP one (IP length 0), up to libpcap's maximum. */
static void test_large_aggregates_are_accounted(void **state)
{
	(void)state;
	struct parsed_packet p;
	uint32_t n = (uint32_t)frame134(buf, DLT_EN10MB);
	fr_put16(buf + 14 + 2, 65535);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, n, 14 + 65535, &p), PARSE_OK);
	assert_int_equal(p.size, 65535);
	fr_put16(buf + 14 + 2, 0);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, n, PARSE_MAX_WIRELEN, &p), PARSE_OK);
	assert_int_equal(p.size, PARSE_MAX_WIRELEN - 14);
	/* IPv6: payload length + 40 */
	size_t m = fr_eth(buf, 0x86dd);
	m += fr_ipv6(buf + m, "2001:db8::1", "2001:db8::2", 17);
	fr_put16(buf + 14 + 4, 100);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)m, 14 + 140, &p), PARSE_OK);
	assert_int_equal(p.size, 140);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)m, 14 + 140 + 65, &p),
	                 PARSE_BAD_LENGTH);
	assert_string_equal(parse_status_name(PARSE_BAD_LENGTH), "bad_length");
}

static void test_linux_cooked_v1_and_v2(void **state)
{
	(void)state;
	struct parsed_packet p;
	memset(buf, 0, sizeof buf);
	fr_put16(buf + 14, 0x0800);
	fr_ipv4(buf + 16, "10.1.1.1", "10.2.2.2", 1);
	assert_int_equal(parse_packet(DLT_LINUX_SLL, buf, 36, 100, &p), PARSE_OK);
	assert_int_equal(p.size, 84);
	assert_int_equal(p.proto, PROTO_ICMP);
	memset(buf, 0, sizeof buf);
	fr_put16(buf, 0x86dd);
	fr_ipv6(buf + 20, "fe80::1", "ff02::1", 58);
	assert_int_equal(parse_packet(276, buf, 60, 100, &p), PARSE_OK);
	assert_int_equal(p.size, 80);
	assert_int_equal(p.proto, PROTO_ICMPV6);
}

static void test_raw_ip_links(void **state)
{
	(void)state;
	struct parsed_packet p;
	fr_ipv4(buf, "10.0.0.1", "10.0.0.2", 47);
	assert_int_equal(parse_packet(DLT_RAW, buf, 20, 300, &p), PARSE_OK);
	assert_int_equal(p.size, 300);
	assert_int_equal(p.proto, PROTO_GRE);
	assert_int_equal(parse_packet(228, buf, 20, 300, &p), PARSE_OK);
	assert_int_equal(parse_packet(229, buf, 40, 300, &p), PARSE_BAD_IPV6);
	assert_int_equal(parse_packet(229, buf, 20, 300, &p), PARSE_TRUNCATED);
	fr_ipv6(buf, "2001:db8::1", "2001:db8::2", 50);
	assert_int_equal(parse_packet(DLT_RAW, buf, 40, 300, &p), PARSE_OK);
	assert_int_equal(p.proto, PROTO_ESP);
	assert_int_equal(parse_packet(229, buf, 40, 300, &p), PARSE_OK);
	buf[0] = 0x50;
	assert_int_equal(parse_packet(DLT_RAW, buf, 40, 300, &p), PARSE_NON_IP);
}

static void test_bsd_null_all_af_inet6_values_both_orders(void **state)
{
	(void)state;
	struct parsed_packet p;
	const uint32_t afs[] = {10, 23, 24, 28, 30};
	for (size_t i = 0; i < sizeof afs / sizeof afs[0]; i++) {
		for (int order = 0; order < 2; order++) {
			memset(buf, 0, 4);
			if (order)
				buf[3] = (uint8_t)afs[i];
			else
				buf[0] = (uint8_t)afs[i];
			fr_ipv6(buf + 4, "2001:db8::1", "2001:db8::2", 17);
			assert_int_equal(parse_packet(DLT_NULL, buf, 44, 104, &p), PARSE_OK);
			assert_int_equal(p.family, 6);
			assert_int_equal(p.size, 100);
			assert_int_equal(parse_packet(DLT_LOOP, buf, 44, 104, &p), PARSE_OK);
		}
	}
	memset(buf, 0, 4);
	buf[0] = 2;
	fr_ipv4(buf + 4, "127.0.0.1", "127.0.0.1", 17);
	assert_int_equal(parse_packet(DLT_NULL, buf, 24, 60, &p), PARSE_OK);
	assert_int_equal(p.family, 4);
	buf[0] = 7; /* some other family */
	assert_int_equal(parse_packet(DLT_NULL, buf, 24, 60, &p), PARSE_NON_IP);
}

static void test_ipv6_extension_headers_walked(void **state)
{
	(void)state;
	struct parsed_packet p;
	/* hop-by-hop(8) -> routing(24) -> fragment(8) -> dstopts(16) -> sctp */
	size_t n = fr_ipv6(buf, "2001:db8::1", "2001:db8::2", 0);
	buf[n] = 43;
	buf[n + 1] = 0;
	n += 8;
	buf[n] = 44;
	buf[n + 1] = 2;
	n += 24;
	buf[n] = 60;
	buf[n + 1] = 99; /* ignored: fragment headers are always 8 bytes */
	n += 8;
	buf[n] = 132;
	buf[n + 1] = 1;
	n += 16;
	assert_int_equal(parse_packet(DLT_RAW, buf, (uint32_t)n, 1280, &p), PARSE_OK);
	assert_int_equal(p.proto, PROTO_SCTP);
	/* the chain cut short in the middle: truncated */
	assert_int_equal(parse_packet(DLT_RAW, buf, 60, 1280, &p), PARSE_TRUNCATED);
}

static void test_ipv4_validation(void **state)
{
	(void)state;
	struct parsed_packet p;
	fr_ipv4(buf, "10.0.0.1", "10.0.0.2", 6);
	buf[0] = 0x44; /* IHL 4 */
	assert_int_equal(parse_packet(DLT_IPV4, buf, 20, 20, &p), PARSE_BAD_IPV4);
	buf[0] = 0x65;
	assert_int_equal(parse_packet(DLT_IPV4, buf, 20, 20, &p), PARSE_BAD_IPV4);
	buf[0] = 0x45;
	assert_int_equal(parse_packet(DLT_IPV4, buf, 19, 20, &p), PARSE_TRUNCATED);
}

static void test_protocol_classes(void **state)
{
	(void)state;
	static const struct {
		int num;
		enum proto_class v4, v6;
	} cases[] = {
	    {1, PROTO_ICMP, PROTO_ICMP},     {2, PROTO_IGMP, PROTO_IGMP},
	    {6, PROTO_TCP, PROTO_TCP},       {17, PROTO_UDP, PROTO_UDP},
	    {98, PROTO_ENCAP, PROTO_ENCAP},  {47, PROTO_GRE, PROTO_GRE},
	    {50, PROTO_ESP, PROTO_ESP},      {88, PROTO_EIGRP, PROTO_EIGRP},
	    {89, PROTO_OSPF, PROTO_OSPF},    {132, PROTO_SCTP, PROTO_SCTP},
	    {58, PROTO_OTHER, PROTO_ICMPV6}, {41, PROTO_OTHER, PROTO_OTHER},
	    {255, PROTO_OTHER, PROTO_OTHER},
	};
	struct parsed_packet p;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fr_ipv4(buf, "10.0.0.1", "10.0.0.2", cases[i].num);
		assert_int_equal(parse_packet(DLT_RAW, buf, 20, 20, &p), PARSE_OK);
		assert_int_equal(p.proto, cases[i].v4);
		fr_ipv6(buf, "::1", "::2", cases[i].num);
		assert_int_equal(parse_packet(DLT_RAW, buf, 40, 40, &p), PARSE_OK);
		assert_int_equal(p.proto, cases[i].v6);
	}
	assert_string_equal(parse_proto_name(PROTO_ICMPV6), "icmpv6");
	assert_string_equal(parse_proto_name(PROTO_OTHER), "other");
}

/* Truncation at every byte of every supported frame kind: never a read
 * outside caplen (ASan checks this: the frame is copied to an exactly sized
 * heap block), never a crash, and always a size. */
static void test_truncation_at_every_byte(void **state)
{
	(void)state;
	uint8_t frames[6][128];
	size_t lens[6];
	int dlts[6] = {DLT_EN10MB, DLT_EN10MB, DLT_LINUX_SLL, 276, DLT_NULL, DLT_RAW};
	memset(frames, 0, sizeof frames);
	size_t n;

	n = fr_eth(frames[0], 0x8100);
	fr_put16(frames[0] + 14, 5);
	fr_put16(frames[0] + 16, 0x86dd);
	n = 18 + fr_ipv6(frames[0] + 18, "2001:db8::1", "2001:db8::2", 0);
	frames[0][n] = 6;
	lens[0] = n + 8;
	n = fr_eth(frames[1], 0x8864);
	frames[1][14] = 0x11;
	fr_put16(frames[1] + 20, 0x0021);
	lens[1] = 22 + fr_ipv4(frames[1] + 22, "10.0.0.1", "10.0.0.2", 6);
	memset(frames[2], 0, 16);
	fr_put16(frames[2] + 14, 0x0800);
	lens[2] = 16 + fr_ipv4(frames[2] + 16, "10.0.0.1", "10.0.0.2", 6);
	memset(frames[3], 0, 20);
	fr_put16(frames[3], 0x0800);
	lens[3] = 20 + fr_ipv4(frames[3] + 20, "10.0.0.1", "10.0.0.2", 6);
	memset(frames[4], 0, 4);
	frames[4][0] = 2;
	lens[4] = 4 + fr_ipv4(frames[4] + 4, "10.0.0.1", "10.0.0.2", 6);
	lens[5] = fr_ipv6(frames[5], "::1", "::2", 17);

	for (int f = 0; f < 6; f++) {
		struct parsed_packet p;
		assert_int_equal(parse_packet(dlts[f], frames[f], (uint32_t)lens[f], 1000, &p),
		                 PARSE_OK);
		for (size_t cut = 0; cut < lens[f]; cut++) {
			uint8_t *copy = malloc(cut ? cut : 1);
			memcpy(copy, frames[f], cut);
			enum parse_status st = parse_packet(dlts[f], copy, (uint32_t)cut, 1000, &p);
			assert_true(st == PARSE_TRUNCATED);
			assert_true(p.size <= 1000);
			free(copy);
		}
	}
}

static void test_caplen_larger_than_wirelen_is_bad_length(void **state)
{
	(void)state;
	struct parsed_packet p;
	size_t n = fr_eth(buf, 0x0800);
	n += fr_ipv4(buf + n, "10.0.0.1", "10.0.0.2", 6);
	assert_int_equal(parse_packet(DLT_EN10MB, buf, (uint32_t)n, 20, &p), PARSE_BAD_LENGTH);
	assert_int_equal(p.size, 6);
	assert_int_equal(parse_packet(DLT_RAW, buf + 14, 20, 19, &p), PARSE_BAD_LENGTH);
	assert_int_equal(p.size, 19);
}

static void test_unsupported_link_type(void **state)
{
	(void)state;
	struct parsed_packet p;
	assert_false(parse_linktype_supported(DLT_IEEE802_11));
	assert_int_equal(parse_packet(DLT_IEEE802_11, buf, 100, 100, &p), PARSE_BAD_LINK);
	assert_true(parse_linktype_supported(DLT_EN10MB));
	assert_true(parse_snaplen(DLT_EN10MB) >= 14 + 16 + 8 + 40);
	assert_true(parse_snaplen(DLT_RAW) >= 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ethernet_ipv4_tcp),
	    cmocka_unit_test(test_vlan_tags_each_cost_four_bytes),
	    cmocka_unit_test(test_too_many_vlan_tags_is_bad_link),
	    cmocka_unit_test(test_pppoe_session),
	    cmocka_unit_test(test_arp_is_non_ip_but_sized),
	    cmocka_unit_test(test_capture_cut_in_link_header_is_truncated),
	    cmocka_unit_test(test_wire_length_below_link_header_is_bad_length_size_zero),
	    cmocka_unit_test(test_absurd_wire_lengths_are_bad_length),
	    cmocka_unit_test(test_large_aggregates_are_accounted),
	    cmocka_unit_test(test_linux_cooked_v1_and_v2),
	    cmocka_unit_test(test_raw_ip_links),
	    cmocka_unit_test(test_bsd_null_all_af_inet6_values_both_orders),
	    cmocka_unit_test(test_ipv6_extension_headers_walked),
	    cmocka_unit_test(test_ipv4_validation),
	    cmocka_unit_test(test_protocol_classes),
	    cmocka_unit_test(test_truncation_at_every_byte),
	    cmocka_unit_test(test_caplen_larger_than_wirelen_is_bad_length),
	    cmocka_unit_test(test_unsupported_link_type),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
