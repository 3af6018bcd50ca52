/* Frame builders for the unit tests. */
#ifndef PROMACCT_TEST_FRAMES_H
#define PROMACCT_TEST_FRAMES_H

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

static inline void fr_put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* IPv4 header at p; returns 20. */
static inline size_t fr_ipv4(uint8_t *p, const char *src, const char *dst, int proto)
{
	memset(p, 0, 20);
	p[0] = 0x45;
	p[8] = 64;
	p[9] = (uint8_t)proto;
	inet_pton(AF_INET, src, p + 12);
	inet_pton(AF_INET, dst, p + 16);
	return 20;
}

/* IPv6 header at p with the given next header; returns 40. */
static inline size_t fr_ipv6(uint8_t *p, const char *src, const char *dst, int next)
{
	memset(p, 0, 40);
	p[0] = 0x60;
	p[6] = (uint8_t)next;
	p[7] = 64;
	inet_pton(AF_INET6, src, p + 8);
	inet_pton(AF_INET6, dst, p + 24);
	return 40;
}

/* Ethernet header with ethertype; returns 14. */
static inline size_t fr_eth(uint8_t *p, unsigned type)
{
	memset(p, 0, 12);
	p[0] = 2;
	p[6] = 2;
	fr_put16(p + 12, type);
	return 14;
}

#endif
