/* gen: deterministic capture generator for the benchmarks.
 *
 *   gen OUT PACKETS ADDRESSES [SNAPLEN] [V6ADDRESSES]
 *
 * Writes PACKETS Ethernet frames: 82% IPv4, 10% IPv6, 6% 802.1Q-tagged
 * IPv4, 2% ARP; IMIX-like wire sizes (7:4:1 of 64, 594, 1514 bytes); TCP,
 * UDP and ICMP. Sources and destinations are drawn from ADDRESSES IPv4
 * addresses in 10.0.0.0/8 (the first 65536 fill 10.1.0.0/16, as the
 * `-r 10.1.0.0/16` benchmark expects) and V6ADDRESSES IPv6 addresses in
 * 2001:db8::/64 (default ADDRESSES/8). Same arguments, same bytes. */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void v4addr(uint8_t *p, uint32_t i)
{
	/* 0..65535 -> 10.1.x.y; beyond -> 10.2.0.0 onwards */
	uint32_t a =
	    i < 65536 ? (10u << 24 | 1u << 16 | i) : (10u << 24 | (2u << 16)) + (i - 65536);
	p[0] = (uint8_t)(a >> 24);
	p[1] = (uint8_t)(a >> 16);
	p[2] = (uint8_t)(a >> 8);
	p[3] = (uint8_t)a;
}

static void v6addr(uint8_t *p, uint32_t i)
{
	static const uint8_t prefix[8] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0};
	memcpy(p, prefix, 8);
	memset(p + 8, 0, 4);
	p[12] = (uint8_t)(i >> 24);
	p[13] = (uint8_t)(i >> 16);
	p[14] = (uint8_t)(i >> 8);
	p[15] = (uint8_t)i;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: gen OUT PACKETS ADDRESSES [SNAPLEN] [V6ADDRESSES]\n");
		return 2;
	}
	uint64_t packets = strtoull(argv[2], NULL, 10);
	uint32_t naddr = (uint32_t)strtoul(argv[3], NULL, 10);
	int snaplen = argc > 4 ? atoi(argv[4]) : 64;
	uint32_t n6 = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : naddr / 8 + 1;
	if (naddr == 0 || n6 == 0)
		return 2;
	pcap_t *dead = pcap_open_dead(DLT_EN10MB, snaplen);
	pcap_dumper_t *d = pcap_dump_open(dead, argv[1]);
	if (!d) {
		fprintf(stderr, "gen: %s\n", pcap_geterr(dead));
		return 1;
	}
	static const uint32_t sizes[12] = {64, 64, 64, 64, 64, 64, 64, 594, 594, 594, 594, 1514};
	static const uint8_t protos[8] = {6, 6, 6, 6, 6, 17, 17, 1};
	uint8_t f[128];
	struct pcap_pkthdr h;
	for (uint64_t n = 0; n < packets; n++) {
		uint64_t r = rnd();
		unsigned kind = (unsigned)(r % 100);
		uint32_t wire = sizes[(r >> 8) % 12];
		uint8_t proto = protos[(r >> 16) % 8];
		memset(f, 0, sizeof f);
		f[0] = 2;
		f[6] = 2;
		size_t off = 12;
		if (kind >= 82 && kind < 88) {
			put16(f + off, 0x8100);
			put16(f + off + 2, 42);
			off += 4;
		}
		if (kind >= 98) {
			put16(f + off, 0x0806);
			wire = 60;
		} else if (kind >= 88 && kind < 98) {
			put16(f + off, 0x86dd);
			off += 2;
			f[off] = 0x60;
			f[off + 6] = proto == 1 ? 58 : proto;
			f[off + 7] = 64;
			v6addr(f + off + 8, (uint32_t)(rnd() % n6));
			v6addr(f + off + 24, (uint32_t)(rnd() % n6));
			if (wire < 78)
				wire = 78;
		} else {
			put16(f + off, 0x0800);
			off += 2;
			f[off] = 0x45;
			f[off + 8] = 64;
			f[off + 9] = proto;
			v4addr(f + off + 12, (uint32_t)(rnd() % naddr));
			v4addr(f + off + 16, (uint32_t)(rnd() % naddr));
		}
		h.ts.tv_sec = (long)(1700000000 + n / 100000);
		h.ts.tv_usec = (long)(n % 100000) * 10;
		h.len = wire;
		h.caplen = wire < (uint32_t)snaplen ? wire : (uint32_t)snaplen;
		pcap_dump((u_char *)d, &h, f);
	}
	pcap_dump_close(d);
	pcap_close(dead);
	return 0;
}
