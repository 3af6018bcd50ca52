/* Fuzz target: the packet parser, every link type, and the accounting step
 * behind it.
 *
 * Input: byte 0 picks the link type (index into `links`, modulo), byte 1
 * the wire length (0: the captured length; 1..127: that many 64-byte units
 * more; 128..255: byte - 128, possibly less than the captured length as a
 * hostile savefile may claim); the rest is the captured frame.
 * Checks: the parser reads only inside the frame (ASan, on an exact-size
 * copy), its result is a valid status; on PARSE_OK the addresses lie inside
 * the frame and the family and protocol are valid; the size never exceeds
 * the wire length; accounting the frame keeps the address cap. */
#include <pcap/dlt.h>

#include "promacct/parse.h"
#include "fixture.h"
#include "fuzz.h"

static const int links[] = {DLT_EN10MB, DLT_LINUX_SLL,  276 /* LINUX_SLL2 */,
                            DLT_RAW,    228 /* IPV4 */, 229 /* IPV6 */,
                            DLT_NULL,   DLT_LOOP,       105 /* unsupported: 802.11 */};

#define MAX_ADDRESSES 64

static struct fixture *fix;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	static const char *const ranges[] = {"0.0.0.0/0:all=v4", "::/0:all=v6",
	                                     "10.0.0.0/8:customer=a"};
	fix = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 3, MAX_ADDRESSES);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2 || size > 70000)
		return 0;
	int dlt = links[data[0] % ARRAY_LEN(links)];
	uint32_t caplen = (uint32_t)(size - 2);
	uint32_t wirelen = caplen;
	if (data[1] >= 128)
		wirelen = data[1] - 128u;
	else if (data[1])
		wirelen = caplen + data[1] * 64u;
	const uint8_t *frame = data + 2; /* ends where the input ends */

	struct parsed_packet p;
	memset(&p, 0xa5, sizeof p);
	enum parse_status st = parse_packet(dlt, frame, caplen, wirelen, &p);
	FUZZ_CHECK(st < PARSE_STATUS_COUNT, "status %d", (int)st);
	FUZZ_CHECK(parse_status_name(st) != NULL, "no status name");
	FUZZ_CHECK(p.size <= wirelen, "size %u > wire length %u", p.size, wirelen);
	if (!parse_linktype_supported(dlt))
		FUZZ_CHECK(st == PARSE_BAD_LINK, "unsupported link type parsed: %d", (int)st);
	else
		FUZZ_CHECK(parse_snaplen(dlt) > 0, "snaplen of %d", dlt);
	if (st == PARSE_OK) {
		size_t alen = p.family == 4 ? 4 : 16;
		FUZZ_CHECK(p.family == 4 || p.family == 6, "family %u", p.family);
		FUZZ_CHECK(p.proto < PROTO_COUNT, "proto %u", p.proto);
		FUZZ_CHECK(parse_proto_name(p.proto) != NULL, "no proto name");
		FUZZ_CHECK(p.src >= frame && p.src + alen <= frame + caplen,
		           "src outside the frame");
		FUZZ_CHECK(p.dst >= frame && p.dst + alen <= frame + caplen,
		           "dst outside the frame");
	}

	/* The same frame through the capture threads' accounting step. */
	account_packet(fix->shard, &fix->ranges, &fix->layout, dlt, frame, caplen, wirelen);
	size_t tracked = atomic_load(&fix->reg.tracked);
	FUZZ_CHECK(tracked <= MAX_ADDRESSES, "%zu addresses tracked, cap %d", tracked,
	           MAX_ADDRESSES);
	return 0;
}
