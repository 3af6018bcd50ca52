/* pcapgen: writes capture files with known contents, for the end-to-end
 * tests. Reads one packet description per line from stdin:
 *
 *   ip4|ip6 SRC DST PROTO WIRELEN [count N] [vlan N] [pppoe] [ext LIST]
 *           [caplen N] [badver] [ihl N] [wire N]
 *   arp WIRELEN [count N]
 *   runt WIRELEN                        (a frame cut inside the link header)
 *   iface LINKTYPE                      (pcapng: a new interface; later frames
 *                                        are built for it and name it)
 *
 * WIRELEN is the length on the wire including the link-layer header; the
 * IP payload is zero-filled. `wire N` writes N (0 to 4294967295) as the
 * record's wire length instead, around the same frame (a forged record). `ext 0,43,44,60` puts IPv6
 * extension headers before PROTO. Usage: pcapgen LINKTYPE OUT [FORMAT] < spec with LINKTYPE one of
 * en10mb, linux_sll, linux_sll2, raw, ipv4, ipv6, null, loop, or dlt=N (any number, the frames are
 * then Ethernet-built), and FORMAT pcap (default, written by pcap_dump), pcap-swapped (big-endian
 * headers), pcapng or pcapng-swapped (written here block by block). */
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXPKT 65600

static int dlt_by_name(const char *n)
{
	if (!strcmp(n, "en10mb"))
		return DLT_EN10MB;
	if (!strcmp(n, "linux_sll"))
		return DLT_LINUX_SLL;
	if (!strcmp(n, "linux_sll2"))
		return 276;
	if (!strcmp(n, "raw"))
		return DLT_RAW;
	if (!strcmp(n, "ipv4"))
		return 228;
	if (!strcmp(n, "ipv6"))
		return 229;
	if (!strcmp(n, "null"))
		return DLT_NULL;
	if (!strcmp(n, "loop"))
		return DLT_LOOP;
	if (!strncmp(n, "dlt=", 4))
		return atoi(n + 4);
	return -1;
}

/* Hand-written savefile formats, to test what pcap_dump cannot write. */
static int fmt_swapped, fmt_ng;
static FILE *out;

static void w32(uint32_t v)
{
	unsigned char b[4];
	if (fmt_swapped) {
		b[0] = (unsigned char)(v >> 24);
		b[1] = (unsigned char)(v >> 16);
		b[2] = (unsigned char)(v >> 8);
		b[3] = (unsigned char)v;
	} else {
		memcpy(b, &v, 4); /* this machine is little-endian (x86_64) */
	}
	fwrite(b, 1, 4, out);
}

static void w16(uint16_t v)
{
	unsigned char b[2];
	if (fmt_swapped) {
		b[0] = (unsigned char)(v >> 8);
		b[1] = (unsigned char)v;
	} else {
		memcpy(b, &v, 2);
	}
	fwrite(b, 1, 2, out);
}

static uint32_t ng_iface; /* the interface later packets name */

static void write_idb(int dlt)
{
	w32(1);
	w32(20);
	w16((uint16_t)dlt);
	w16(0);
	w32(MAXPKT);
	w32(20);
}

static void write_header(int dlt)
{
	if (!fmt_ng) {
		w32(0xa1b2c3d4);
		w16(2);
		w16(4);
		w32(0);
		w32(0);
		w32(MAXPKT);
		w32((uint32_t)dlt);
		return;
	}
	/* Section Header Block, then one Interface Description Block */
	w32(0x0a0d0d0a);
	w32(28);
	w32(0x1a2b3c4d);
	w16(1);
	w16(0);
	w32(0xffffffff);
	w32(0xffffffff);
	w32(28);
	write_idb(dlt);
}

static void write_packet(uint32_t sec, const unsigned char *data, uint32_t caplen, uint32_t wirelen)
{
	if (!fmt_ng) {
		w32(sec);
		w32(0);
		w32(caplen);
		w32(wirelen);
		fwrite(data, 1, caplen, out);
		return;
	}
	uint32_t padded = (caplen + 3) & ~3u;
	uint32_t total = 32 + padded;
	uint64_t usec = (uint64_t)sec * 1000000;
	w32(6); /* Enhanced Packet Block */
	w32(total);
	w32(ng_iface);
	w32((uint32_t)(usec >> 32));
	w32((uint32_t)usec);
	w32(caplen);
	w32(wirelen);
	fwrite(data, 1, caplen, out);
	static const unsigned char zero[4];
	fwrite(zero, 1, padded - caplen, out);
	w32(total);
}

static void put16(unsigned char *p, unsigned v)
{
	p[0] = (unsigned char)(v >> 8);
	p[1] = (unsigned char)v;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: pcapgen LINKTYPE OUT.pcap < spec\n");
		return 2;
	}
	int dlt = dlt_by_name(argv[1]);
	if (dlt < 0) {
		fprintf(stderr, "pcapgen: unknown link type %s\n", argv[1]);
		return 2;
	}
	const char *fmt = argc > 3 ? argv[3] : "pcap";
	pcap_t *dead = pcap_open_dead(dlt, MAXPKT);
	pcap_dumper_t *d = NULL;
	if (!strcmp(fmt, "pcap")) {
		d = pcap_dump_open(dead, argv[2]);
		if (!d) {
			fprintf(stderr, "pcapgen: %s\n", pcap_geterr(dead));
			return 1;
		}
	} else {
		fmt_swapped = strstr(fmt, "swapped") != NULL;
		fmt_ng = !strncmp(fmt, "pcapng", 6);
		if (!fmt_ng && strcmp(fmt, "pcap-swapped")) {
			fprintf(stderr, "pcapgen: unknown format %s\n", fmt);
			return 2;
		}
		out = fopen(argv[2], "wb");
		if (!out) {
			perror(argv[2]);
			return 1;
		}
		write_header(dlt);
	}
	char line[1024];
	static unsigned char pkt[MAXPKT];
	unsigned long ts = 1700000000;
	int lineno = 0;
	while (fgets(line, sizeof line, stdin)) {
		lineno++;
		char *tok[32];
		int nt = 0;
		for (char *t = strtok(line, " \t\r\n"); t && nt < 32; t = strtok(NULL, " \t\r\n"))
			tok[nt++] = t;
		if (nt == 0 || tok[0][0] == '#')
			continue;
		memset(pkt, 0, sizeof pkt);
		int family = 0, proto = 0, count = 1, vlans = 0, pppoe = 0, badver = 0, ihl = 5;
		long caplen = -1, wirelen, wire = -1;
		int ext[16], next = 0;
		unsigned char src[16] = {0}, dst[16] = {0};
		int i = 0;
		if (!strcmp(tok[0], "ip4") || !strcmp(tok[0], "ip6")) {
			family = tok[0][2] == '4' ? 4 : 6;
			if (nt < 5)
				goto bad;
			int af = family == 4 ? AF_INET : AF_INET6;
			if (inet_pton(af, tok[1], src) != 1 || inet_pton(af, tok[2], dst) != 1)
				goto bad;
			proto = atoi(tok[3]);
			wirelen = atol(tok[4]);
			i = 5;
		} else if (!strcmp(tok[0], "iface")) {
			if (nt < 2 || !fmt_ng || dlt_by_name(tok[1]) < 0)
				goto bad;
			dlt = dlt_by_name(tok[1]);
			write_idb(dlt);
			ng_iface++;
			continue;
		} else if (!strcmp(tok[0], "arp") || !strcmp(tok[0], "runt")) {
			if (nt < 2)
				goto bad;
			wirelen = atol(tok[1]);
			i = 2;
		} else {
			goto bad;
		}
		for (; i < nt; i++) {
			if (!strcmp(tok[i], "count") && i + 1 < nt)
				count = atoi(tok[++i]);
			else if (!strcmp(tok[i], "vlan") && i + 1 < nt)
				vlans = atoi(tok[++i]);
			else if (!strcmp(tok[i], "pppoe"))
				pppoe = 1;
			else if (!strcmp(tok[i], "badver"))
				badver = 1;
			else if (!strcmp(tok[i], "ihl") && i + 1 < nt)
				ihl = atoi(tok[++i]);
			else if (!strcmp(tok[i], "caplen") && i + 1 < nt)
				caplen = atol(tok[++i]);
			else if (!strcmp(tok[i], "wire") && i + 1 < nt)
				wire = strtol(tok[++i], NULL, 0);
			else if (!strcmp(tok[i], "ext") && i + 1 < nt) {
				for (char *e = strtok(tok[++i], ","); e && next < 16;
				     e = strtok(NULL, ","))
					ext[next++] = atoi(e);
			} else
				goto bad;
		}
		/* link header */
		size_t off = 0;
		unsigned ethertype = family == 4 ? 0x0800 : family == 6 ? 0x86dd : 0x0806;
		if (!strcmp(tok[0], "runt"))
			ethertype = 0x0800;
		switch (dlt) {
		case DLT_EN10MB:
			memcpy(pkt, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
			off = 12;
			for (int v = 0; v < vlans; v++) {
				put16(pkt + off, v == 0 && vlans > 1 ? 0x88a8 : 0x8100);
				put16(pkt + off + 2, (unsigned)(100 + v));
				off += 4;
			}
			if (pppoe) {
				put16(pkt + off, 0x8864);
				off += 2;
				pkt[off] = 0x11;
				pkt[off + 1] = 0;
				put16(pkt + off + 2, 1);
				put16(pkt + off + 4,
				      (unsigned)(wirelen > (long)off + 8 ? wirelen - (long)off - 6
				                                         : 0));
				put16(pkt + off + 6, family == 4 ? 0x0021 : 0x0057);
				off += 8;
			} else {
				put16(pkt + off, ethertype);
				off += 2;
			}
			break;
		case DLT_LINUX_SLL:
			put16(pkt, 0);
			put16(pkt + 2, 1);
			put16(pkt + 4, 6);
			put16(pkt + 14, ethertype);
			off = 16;
			break;
		case 276:
			put16(pkt, ethertype);
			pkt[8] = 0;
			pkt[9] = 1;
			off = 20;
			break;
		case DLT_NULL:
		case DLT_LOOP: {
			unsigned af = family == 6 ? 10 : 2;
			if (dlt == DLT_LOOP) {
				pkt[3] = (unsigned char)af;
			} else {
				memcpy(pkt, &af, 4); /* host order, as the capturing machine */
			}
			off = 4;
			break;
		}
		default:
			off = 0;
		}
		if (family == 4) {
			pkt[off] = (unsigned char)(((badver ? 5 : 4) << 4) | (ihl & 15));
			put16(pkt + off + 2, (unsigned)(wirelen - (long)off));
			pkt[off + 8] = 64;
			pkt[off + 9] = (unsigned char)proto;
			memcpy(pkt + off + 12, src, 4);
			memcpy(pkt + off + 16, dst, 4);
		} else if (family == 6) {
			pkt[off] = badver ? 0x40 : 0x60;
			pkt[off + 6] = (unsigned char)(next ? ext[0] : proto);
			pkt[off + 7] = 64;
			memcpy(pkt + off + 8, src, 16);
			memcpy(pkt + off + 24, dst, 16);
			size_t eo = off + 40;
			for (int e = 0; e < next; e++) {
				pkt[eo] = (unsigned char)(e + 1 < next ? ext[e + 1] : proto);
				pkt[eo + 1] = 0; /* 8 bytes */
				eo += 8;
			}
		}
		if (wirelen > MAXPKT)
			goto bad;
		struct pcap_pkthdr h;
		h.len = (bpf_u_int32)wirelen;
		h.caplen = (bpf_u_int32)(caplen >= 0 && caplen < wirelen ? caplen : wirelen);
		if (wire >= 0) {
			if (wire > 0xffffffffL)
				goto bad;
			h.len = (bpf_u_int32)wire;
		}
		for (int c = 0; c < count; c++) {
			h.ts.tv_sec = (long)ts++;
			h.ts.tv_usec = 0;
			if (d)
				pcap_dump((u_char *)d, &h, pkt);
			else
				write_packet((uint32_t)h.ts.tv_sec, pkt, h.caplen, h.len);
		}
		continue;
	bad:
		fprintf(stderr, "pcapgen: bad line %d\n", lineno);
		return 2;
	}
	if (d)
		pcap_dump_close(d);
	else if (fclose(out))
		return 1;
	pcap_close(dead);
	return 0;
}
