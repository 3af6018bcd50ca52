/* Pure packet parser: link layer -> IP addresses, transport class, size. */
#ifndef PROMACCT_PARSE_H
#define PROMACCT_PARSE_H

#include <stdint.h>

#include "promacct/common.h"

enum parse_status {
	PARSE_OK = 0,    /* an IPv4 or IPv6 packet, addresses filled in */
	PARSE_NON_IP,    /* well-formed link frame carrying something else */
	PARSE_TRUNCATED, /* captured bytes end before the headers we need */
	PARSE_BAD_LINK,  /* malformed link-layer header */
	PARSE_BAD_IPV4,  /* wrong version or header length */
	PARSE_BAD_IPV6,  /* wrong version or broken extension header chain */
	/* a wire length no real frame has: above PARSE_MAX_WIRELEN, below the
	 * captured length or the link-layer header, or far above the IP
	 * header's own length (see parse.c) */
	PARSE_BAD_LENGTH,
	PARSE_STATUS_COUNT
};

/* Transport classes, in the order of the `protocol` label values. */
enum proto_class {
	PROTO_ICMP,
	PROTO_IGMP,
	PROTO_TCP,
	PROTO_UDP,
	PROTO_ENCAP,
	PROTO_GRE,
	PROTO_ESP,
	PROTO_EIGRP,
	PROTO_OSPF,
	PROTO_SCTP,
	PROTO_ICMPV6,
	PROTO_OTHER,
	PROTO_COUNT
};

/* The largest wire length accounted: libpcap's MAXIMUM_SNAPLEN, the
 * largest frame any link it captures carries (GRO/GSO aggregates
 * included). */
#define PARSE_MAX_WIRELEN 262144
/* How far the wire length may exceed link header + IP length: Ethernet
 * padding to its 60-byte minimum, a frame check sequence, a capture
 * trailer. */
#define PARSE_IP_LEN_SLACK 64

struct parsed_packet {
	uint32_t size;      /* wire length minus the link-layer header */
	uint8_t family;     /* 4 or 6 when PARSE_OK, else 0 */
	uint8_t proto;      /* enum proto_class */
	const uint8_t *src; /* 4 or 16 bytes inside the packet */
	const uint8_t *dst;
};

/* A parser for one link type: (bytes, caplen, wirelen) -> out. */
typedef enum parse_status (*parse_fn)(const uint8_t *bytes, uint32_t caplen, uint32_t wirelen,
                                      struct parsed_packet *out);

/* The parser of a DLT_ value, NULL when unsupported. Chosen once per
 * capture handle, so packets never branch on the link type. */
parse_fn parse_for_linktype(int dlt);

/* Nonzero when the parser understands this DLT_ value. */
int parse_linktype_supported(int dlt);
/* Bytes worth capturing for this link type: its largest header we parse
 * plus IP and extension headers. */
int parse_snaplen(int dlt);
/* Parses one frame. Never reads outside bytes[0, caplen). out->size is
 * always set (also for failures) so the frame can still be counted; for
 * PARSE_BAD_LENGTH it is the bytes that certainly existed: the smaller of
 * caplen and wirelen, minus the link-layer header.
 * Same as parse_for_linktype(dlt)(...); unsupported types: PARSE_BAD_LINK. */
enum parse_status parse_packet(int dlt, const uint8_t *bytes, uint32_t caplen, uint32_t wirelen,
                               struct parsed_packet *out);

const char *parse_proto_name(enum proto_class p);
const char *parse_status_name(enum parse_status s);

#endif
