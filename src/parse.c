/* DESIGN: the packet parser.
 *
 * One pure function over (bytes, caplen, wirelen): no allocation, no global
 * state, no I/O, safe to call from any number of capture threads at once.
 * Packets are hostile: every read is preceded by a bounds check against
 * caplen, and nothing about a frame ever asserts or aborts; what cannot be
 * parsed comes back as a status the caller counts.
 *
 * Size rule (kept from the 2017 tool): the accounted size is the wire length
 * minus the link-layer header actually present (Ethernet 14 + 4 per VLAN tag
 * + 8 for PPPoE session, Linux cooked 16 or 20, BSD null 4, raw IP 0). When
 * the header cannot be fully seen, the minimal header length of the link type
 * is subtracted.
 *
 * Bounds (a record's wire length comes from a file or a peer, and one
 * forged record must not add gigabytes to a bill): a record is invalid,
 * PARSE_BAD_LENGTH, when its wire length is
 *   - above PARSE_MAX_WIRELEN (262144, libpcap's MAXIMUM_SNAPLEN),
 *   - below its captured length,
 *   - below the link-layer header, or
 *   - for IP, more than PARSE_IP_LEN_SLACK (64) bytes above link header +
 *     the IP header's length (IPv4 total length, IPv6 payload length + 40;
 *     a length field of 0, as GSO/BIG TCP aggregates carry, is not checked).
 * Such a record is counted in the interface histogram with the bytes that
 * certainly existed (min(caplen, wirelen) minus the link-layer header) and
 * is never accounted per address. */
#include "promacct/parse.h"

#include <pcap/dlt.h>
#include <stddef.h>
#include <string.h>

#define ETH_HLEN             14
#define VLAN_TAG_LEN         4
#define PPPOE_HLEN           8 /* 6 bytes PPPoE session header + 2 bytes PPP protocol */
#define SLL_HLEN             16
#define SLL2_HLEN            20
#define NULL_HLEN            4
#define MAX_VLAN_TAGS        8  /* deeper stacks are treated as malformed */
#define MAX_IPV6_EXT_HEADERS 16 /* more is treated as malformed */

#define ETHERTYPE_IPV4          0x0800
#define ETHERTYPE_IPV6          0x86dd
#define ETHERTYPE_VLAN          0x8100
#define ETHERTYPE_QINQ          0x88a8
#define ETHERTYPE_QINQ_OLD      0x9100
#define ETHERTYPE_PPPOE_SESSION 0x8864
#define PPP_IPV4                0x0021
#define PPP_IPV6                0x0057

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif
#ifndef DLT_IPV4
#define DLT_IPV4 228
#endif
#ifndef DLT_IPV6
#define DLT_IPV6 229
#endif

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t rd32be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Transport class by IP protocol number, for IPv4 and IPv6 (icmpv6 is a
 * class of its own only in IPv6). Filled once before main runs. */
static uint8_t class_v4[256], class_v6[256];

__attribute__((constructor)) static void classify_init(void)
{
	static const struct {
		uint8_t num, cls;
	} known[] = {{1, PROTO_ICMP},   {2, PROTO_IGMP},  {6, PROTO_TCP},  {17, PROTO_UDP},
	             {98, PROTO_ENCAP}, {47, PROTO_GRE},  {50, PROTO_ESP}, {88, PROTO_EIGRP},
	             {89, PROTO_OSPF},  {132, PROTO_SCTP}};
	memset(class_v4, PROTO_OTHER, sizeof class_v4);
	memset(class_v6, PROTO_OTHER, sizeof class_v6);
	for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
		class_v4[known[i].num] = class_v6[known[i].num] = known[i].cls;
	class_v6[58] = PROTO_ICMPV6;
}

static enum parse_status parse_ipv4(const uint8_t *p, uint32_t len, struct parsed_packet *out)
{
	if (len < 20)
		return PARSE_TRUNCATED;
	if ((p[0] >> 4) != 4)
		return PARSE_BAD_IPV4;
	if ((p[0] & 0x0f) < 5)
		return PARSE_BAD_IPV4;
	out->family = 4;
	out->proto = class_v4[p[9]];
	out->src = p + 12;
	out->dst = p + 16;
	return PARSE_OK;
}

static enum parse_status parse_ipv6(const uint8_t *p, uint32_t len, struct parsed_packet *out)
{
	if (len < 40)
		return PARSE_TRUNCATED;
	if ((p[0] >> 4) != 6)
		return PARSE_BAD_IPV6;
	uint8_t next = p[6];
	uint32_t off = 40;
	for (int n = 0;; n++) {
		if (next != 0 && next != 43 && next != 44 && next != 60)
			break;
		if (n == MAX_IPV6_EXT_HEADERS)
			return PARSE_BAD_IPV6;
		if (len - off < 8) /* off <= len holds: checked below each step */
			return PARSE_TRUNCATED;
		uint32_t ext_len = next == 44 ? 8 : ((uint32_t)p[off + 1] + 1) * 8;
		next = p[off];
		if (ext_len > len - off) {
			/* The next protocol is known already; the rest of this
			 * header is not needed unless the chain goes on. */
			if (next == 0 || next == 43 || next == 44 || next == 60)
				return PARSE_TRUNCATED;
			break;
		}
		off += ext_len;
	}
	out->family = 6;
	out->proto = class_v6[next];
	out->src = p + 8;
	out->dst = p + 24;
	return PARSE_OK;
}

/* By IP version nibble, for raw IP links. */
static enum parse_status parse_ip_any(const uint8_t *p, uint32_t len, struct parsed_packet *out)
{
	if (len < 1)
		return PARSE_TRUNCATED;
	switch (p[0] >> 4) {
	case 4:
		return parse_ipv4(p, len, out);
	case 6:
		return parse_ipv6(p, len, out);
	default:
		return PARSE_NON_IP;
	}
}

static inline uint32_t sub_hdr(uint32_t wirelen, uint32_t hlen)
{
	return wirelen > hlen ? wirelen - hlen : 0;
}

/* A record whose wire length no real frame has (see DESIGN). */
static enum parse_status bad_length(uint32_t caplen, uint32_t wirelen, uint32_t hlen,
                                    struct parsed_packet *out)
{
	uint32_t seen = caplen < wirelen ? caplen : wirelen;
	if (seen > PARSE_MAX_WIRELEN)
		seen = PARSE_MAX_WIRELEN;
	out->size = sub_hdr(seen, hlen);
	out->family = 0;
	out->src = out->dst = NULL;
	return PARSE_BAD_LENGTH;
}

static inline int wire_impossible(uint32_t caplen, uint32_t wirelen)
{
	return wirelen > PARSE_MAX_WIRELEN || caplen > wirelen;
}

/* Nonzero when a parsed IP packet's own length field says it is far
 * shorter than size (the wire length minus the link-layer header). The
 * parser checked the IP header is captured. */
static inline int ip_len_exceeded(const struct parsed_packet *out, uint32_t size)
{
	uint32_t iplen;
	if (out->family == 4) {
		iplen = rd16(out->src - 12 + 2); /* total length */
	} else {
		iplen = rd16(out->src - 8 + 4); /* payload length */
		if (iplen)
			iplen += 40;
	}
	return iplen != 0 && size > iplen + PARSE_IP_LEN_SLACK;
}

/* From an ethertype at p[off-2..off): VLAN tags, PPPoE, then IP.
 * *hlen accumulates the link header length. */
static enum parse_status parse_ethertype(const uint8_t *p, uint32_t caplen, uint32_t off,
                                         uint16_t type, uint32_t *hlen, struct parsed_packet *out)
{
	for (int tags = 0;
	     type == ETHERTYPE_VLAN || type == ETHERTYPE_QINQ || type == ETHERTYPE_QINQ_OLD;
	     tags++) {
		if (tags == MAX_VLAN_TAGS)
			return PARSE_BAD_LINK;
		if (caplen - off < VLAN_TAG_LEN)
			return PARSE_TRUNCATED;
		type = rd16(p + off + 2);
		off += VLAN_TAG_LEN;
		*hlen += VLAN_TAG_LEN;
	}
	if (type == ETHERTYPE_PPPOE_SESSION) {
		if (caplen - off < PPPOE_HLEN)
			return PARSE_TRUNCATED;
		/* version 1, type 1, code 0 (session data) */
		if (p[off] != 0x11 || p[off + 1] != 0)
			return PARSE_BAD_LINK;
		uint16_t ppp = rd16(p + off + 6);
		off += PPPOE_HLEN;
		*hlen += PPPOE_HLEN;
		if (ppp == PPP_IPV4)
			return parse_ipv4(p + off, caplen - off, out);
		if (ppp == PPP_IPV6)
			return parse_ipv6(p + off, caplen - off, out);
		return PARSE_NON_IP;
	}
	if (type == ETHERTYPE_IPV4)
		return parse_ipv4(p + off, caplen - off, out);
	if (type == ETHERTYPE_IPV6)
		return parse_ipv6(p + off, caplen - off, out);
	return PARSE_NON_IP;
}

/* BSD null/loopback: 4-byte address family, host order of the capturing
 * machine (DLT_NULL) or network order (DLT_LOOP). Accept both orders. */
static enum parse_status parse_null(const uint8_t *p, uint32_t caplen, struct parsed_packet *out)
{
	if (caplen < NULL_HLEN)
		return PARSE_TRUNCATED;
	uint32_t af = rd32be(p);
	if (af > 0xffff)
		af = ((af >> 24) & 0xff) | ((af >> 8) & 0xff00) | ((af << 8) & 0xff0000) |
		     (af << 24);
	switch (af) {
	case 2: /* AF_INET everywhere */
		return parse_ipv4(p + NULL_HLEN, caplen - NULL_HLEN, out);
	case 10: /* Linux */
	case 23: /* Windows/Winsock */
	case 24: /* NetBSD, OpenBSD, BSD/OS */
	case 28: /* FreeBSD, DragonFly */
	case 30: /* Darwin */
		return parse_ipv6(p + NULL_HLEN, caplen - NULL_HLEN, out);
	default:
		return PARSE_NON_IP;
	}
}

/* Each link type has its own entry point, chosen once per capture handle,
 * so the per-packet path has no branch on the link type. */

static inline void parse_reset(struct parsed_packet *out)
{
	out->family = 0;
	out->proto = PROTO_OTHER;
	out->src = out->dst = NULL;
}

static inline enum parse_status parse_done(enum parse_status st, uint32_t caplen, uint32_t wirelen,
                                           uint32_t hlen, struct parsed_packet *out)
{
	if (UNLIKELY(wirelen < hlen))
		return bad_length(caplen, wirelen, hlen, out);
	out->size = wirelen - hlen;
	if (st != PARSE_OK) {
		out->family = 0;
		return st;
	}
	if (UNLIKELY(ip_len_exceeded(out, out->size)))
		return bad_length(caplen, wirelen, hlen, out);
	return st;
}

/* Ethernet-like links: the ethertype at type_off, then tags, PPPoE, IP. */
static inline enum parse_status parse_cooked(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                             struct parsed_packet *out, uint32_t hlen,
                                             uint32_t type_off)
{
	parse_reset(out);
	if (UNLIKELY(wire_impossible(caplen, wirelen)))
		return bad_length(caplen, wirelen, hlen, out);
	uint32_t h = hlen;
	enum parse_status st = caplen < hlen
	                           ? PARSE_TRUNCATED
	                           : parse_ethertype(p, caplen, hlen, rd16(p + type_off), &h, out);
	return parse_done(st, caplen, wirelen, h, out);
}

/* Ethernet. The common case (untagged IPv4 without options) is checked
 * first; everything else goes through the general ethertype walk. */
static enum parse_status parse_en10mb(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                      struct parsed_packet *out)
{
	if (LIKELY(caplen <= wirelen && wirelen <= PARSE_MAX_WIRELEN && caplen >= ETH_HLEN + 20 &&
	           p[12] == 0x08 && p[13] == 0x00 && p[14] == 0x45)) {
		uint32_t size = wirelen - ETH_HLEN, tot = rd16(p + ETH_HLEN + 2);
		if (LIKELY(size <= tot + PARSE_IP_LEN_SLACK || tot == 0)) {
			out->family = 4;
			out->proto = class_v4[p[ETH_HLEN + 9]];
			out->src = p + ETH_HLEN + 12;
			out->dst = p + ETH_HLEN + 16;
			out->size = size;
			return PARSE_OK;
		}
	}
	return parse_cooked(p, caplen, wirelen, out, ETH_HLEN, 12);
}

static enum parse_status parse_sll(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                   struct parsed_packet *out)
{
	return parse_cooked(p, caplen, wirelen, out, SLL_HLEN, 14);
}

static enum parse_status parse_sll2(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                    struct parsed_packet *out)
{
	return parse_cooked(p, caplen, wirelen, out, SLL2_HLEN, 0);
}

/* Links with a fixed header (raw IP: none; BSD null: 4 bytes) that `inner`
 * parses from the start of the frame. */
static inline enum parse_status parse_fixed(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                            struct parsed_packet *out, uint32_t hlen,
                                            enum parse_status (*inner)(const uint8_t *, uint32_t,
                                                                       struct parsed_packet *))
{
	parse_reset(out);
	if (UNLIKELY(wire_impossible(caplen, wirelen)))
		return bad_length(caplen, wirelen, hlen, out);
	return parse_done(inner(p, caplen, out), caplen, wirelen, hlen, out);
}

static enum parse_status parse_raw(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                   struct parsed_packet *out)
{
	return parse_fixed(p, caplen, wirelen, out, 0, parse_ip_any);
}

static enum parse_status parse_raw4(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                    struct parsed_packet *out)
{
	return parse_fixed(p, caplen, wirelen, out, 0, parse_ipv4);
}

static enum parse_status parse_raw6(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                    struct parsed_packet *out)
{
	return parse_fixed(p, caplen, wirelen, out, 0, parse_ipv6);
}

static enum parse_status parse_bsd_null(const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                                        struct parsed_packet *out)
{
	return parse_fixed(p, caplen, wirelen, out, NULL_HLEN, parse_null);
}

parse_fn parse_for_linktype(int dlt)
{
	switch (dlt) {
	case DLT_EN10MB:
		return parse_en10mb;
	case DLT_LINUX_SLL:
		return parse_sll;
	case DLT_LINUX_SLL2:
		return parse_sll2;
	case DLT_RAW:
		return parse_raw;
	case DLT_IPV4:
		return parse_raw4;
	case DLT_IPV6:
		return parse_raw6;
	case DLT_NULL:
	case DLT_LOOP:
		return parse_bsd_null;
	default:
		return NULL;
	}
}

enum parse_status parse_packet(int dlt, const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                               struct parsed_packet *out)
{
	parse_fn fn = parse_for_linktype(dlt);
	if (fn)
		return fn(p, caplen, wirelen, out);
	parse_reset(out);
	out->size = wirelen;
	return PARSE_BAD_LINK;
}

int parse_linktype_supported(int dlt)
{
	return parse_for_linktype(dlt) != NULL;
}

/* IPv6 header plus room for a few extension headers before the transport
 * protocol is known. */
#define IP_SNAP 128

int parse_snaplen(int dlt)
{
	switch (dlt) {
	case DLT_EN10MB:
		return ETH_HLEN + 4 * VLAN_TAG_LEN + PPPOE_HLEN + IP_SNAP;
	case DLT_LINUX_SLL:
		return SLL_HLEN + 2 * VLAN_TAG_LEN + PPPOE_HLEN + IP_SNAP;
	case DLT_LINUX_SLL2:
		return SLL2_HLEN + 2 * VLAN_TAG_LEN + PPPOE_HLEN + IP_SNAP;
	case DLT_NULL:
	case DLT_LOOP:
		return NULL_HLEN + IP_SNAP;
	default:
		return IP_SNAP;
	}
}

static const char *const proto_names[PROTO_COUNT] = {
    "icmp", "igmp", "tcp", "udp", "encap", "gre", "esp", "eigrp", "ospf", "sctp", "icmpv6", "other",
};

const char *parse_proto_name(enum proto_class p)
{
	return (unsigned)p < PROTO_COUNT ? proto_names[p] : "other";
}

static const char *const status_names[PARSE_STATUS_COUNT] = {
    "ok", "non_ip", "truncated", "bad_link", "bad_ipv4", "bad_ipv6", "bad_length",
};

const char *parse_status_name(enum parse_status s)
{
	return (unsigned)s < PARSE_STATUS_COUNT ? status_names[s] : "unknown";
}
