/* Packet-size histograms: bucket layout and the single-writer observe path. */
#ifndef PROMACCT_HISTOGRAM_H
#define PROMACCT_HISTOGRAM_H

#include <stdint.h>

#include "promacct/common.h"

#define HISTOGRAM_MAX_BUCKETS 32    /* finite bounds; +Inf comes on top */
#define HISTOGRAM_LUT_SIZE    65536 /* sizes below this map by table lookup */
#define HISTOGRAM_LE_TEXT     32

/* The default bounds, as in the 2017 tool. */
#define HISTOGRAM_DEFAULT_BUCKETS "64,128,256,512,1024,2048"

struct histogram_layout {
	unsigned nbuckets; /* including +Inf */
	unsigned words;    /* counter_t words per histogram: sum + buckets */
	double bounds[HISTOGRAM_MAX_BUCKETS + 1];
	char le[HISTOGRAM_MAX_BUCKETS + 1][HISTOGRAM_LE_TEXT]; /* "64", ..., "+Inf" */
	uint8_t lut[HISTOGRAM_LUT_SIZE];                       /* size -> bucket index */
};

/* Parses "64,128,256" (strictly increasing, finite, positive numbers). An
 * explicit trailing +Inf is accepted and ignored. Returns 0 or -EINVAL with a
 * reason in err. */
int histogram_layout_parse(struct histogram_layout *l, const char *list, char *err,
                           size_t errlen) MUST_CHECK;

static inline unsigned histogram_bucket(const struct histogram_layout *l, uint32_t size)
{
	if (LIKELY(size < HISTOGRAM_LUT_SIZE))
		return l->lut[size];
	unsigned i = 0;
	while (i + 1 < l->nbuckets && (double)size > l->bounds[i])
		i++;
	return i;
}

/* Storage: h[0] is the sum of sizes, h[1 + i] the non-cumulative count of
 * bucket i. Only the owning capture thread calls this. */
static inline void histogram_observe(counter_t *h, const struct histogram_layout *l, uint32_t size)
{
	counter_add(&h[0], size);
	counter_add(&h[1 + histogram_bucket(l, size)], 1);
}

/* Reads a histogram written concurrently: cumulative counts into cum[]
 * (nbuckets entries, the last is the total count) and the sum. The result is
 * always a valid histogram: non-decreasing, +Inf equal to the count. */
void histogram_read(const counter_t *h, const struct histogram_layout *l, uint64_t *cum,
                    uint64_t *sum);

/* Adds another reading (cumulative) into acc. */
void histogram_merge(uint64_t *acc_cum, uint64_t *acc_sum, const uint64_t *cum, uint64_t sum,
                     unsigned nbuckets);

#endif
