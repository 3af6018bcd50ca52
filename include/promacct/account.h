/* The per-packet accounting step (capture thread hot path). */
#ifndef PROMACCT_ACCOUNT_H
#define PROMACCT_ACCOUNT_H

#include <string.h>

#include "promacct/parse.h"
#include "promacct/registry.h"

static inline void account_addr(struct acct_shard *s, const struct ranges *ranges,
				const struct histogram_layout *l, const struct parsed_packet *p,
				const uint8_t *addr, enum direction dir)
{
	int idx;
	if (p->family == 4) {
		uint32_t a = ((uint32_t)addr[0] << 24) | ((uint32_t)addr[1] << 16) |
			     ((uint32_t)addr[2] << 8) | addr[3];
		idx = ranges_lookup4(ranges, a);
	} else {
		idx = ranges_lookup6(ranges, addr);
	}
	if (idx < 0)
		return;
	struct addr_key k;
	memset(&k, 0, sizeof k);
	memcpy(k.addr, addr, p->family == 4 ? 4 : 16);
	k.family = p->family;
	k.dir = (uint8_t)dir;
	k.proto = p->proto;
	k.range = (uint32_t)idx;
	counter_t *h = addrtable_get(&s->table, &k);
	if (UNLIKELY(!h)) {
		counter_add(&s->untracked, 1);
		return;
	}
	histogram_observe(h, l, p->size);
}

/* Accounts one frame: the interface histogram always, then the source and
 * destination address histograms when the frame is IP and in a range. No
 * allocation, lock or syscall unless an address is new. */
static inline void account_packet(struct acct_shard *s, const struct ranges *ranges,
				  const struct histogram_layout *l, int dlt, const uint8_t *bytes,
				  uint32_t caplen, uint32_t wirelen)
{
	struct parsed_packet p;
	enum parse_status st = parse_packet(dlt, bytes, caplen, wirelen, &p);
	histogram_observe(s->all, l, p.size);
	if (UNLIKELY(st != PARSE_OK)) {
		counter_add(&s->parse[st], 1);
		return;
	}
	account_addr(s, ranges, l, &p, p.src, DIR_TX);
	account_addr(s, ranges, l, &p, p.dst, DIR_RX);
}

#endif
