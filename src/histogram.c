/* DESIGN: histogram bucket layout and reading.
 *
 * A histogram is `words` counter_t values: the sum, then one non-cumulative
 * count per bucket. The owning capture thread is its only writer (see
 * histogram_observe in the header: a relaxed load+store per word, no lock).
 * Readers (scrape, push, remote write) load each word relaxed and make the
 * counts cumulative; the count is derived from the buckets, so +Inf always
 * equals _count and buckets never decrease, whatever the writer is doing.
 * The bucket for a size comes from a 64 KiB lookup table built once. */
#include "promacct/histogram.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/buf.h"

int histogram_layout_parse(struct histogram_layout *l, const char *list, char *err, size_t errlen)
{
	unsigned n = 0;
	const char *p = list;

	memset(l, 0, sizeof *l);
	if (!list || !*list) {
		snprintf(err, errlen, "empty bucket list");
		return -EINVAL;
	}
	for (;;) {
		while (*p == ' ')
			p++;
		char *end;
		if (!strncmp(p, "+Inf", 4) && (p[4] == '\0' || p[4] == ' ')) {
			end = (char *)p + 4;
			while (*end == ' ')
				end++;
			if (*end != '\0') {
				snprintf(err, errlen, "+Inf must be the last bucket");
				return -EINVAL;
			}
			break;
		}
		errno = 0;
		double v = strtod(p, &end);
		if (end == p || errno || !isfinite(v) || v <= 0) {
			snprintf(err, errlen, "bucket bound must be a positive number: '%.*s'",
			         (int)strcspn(p, ","), p);
			return -EINVAL;
		}
		while (*end == ' ')
			end++;
		if (*end != ',' && *end != '\0') {
			snprintf(err, errlen, "bucket bound must be a positive number: '%.*s'",
			         (int)strcspn(p, ","), p);
			return -EINVAL;
		}
		if (n > 0 && v <= l->bounds[n - 1]) {
			snprintf(err, errlen,
			         "bucket bounds must be strictly increasing (%g after %g)", v,
			         l->bounds[n - 1]);
			return -EINVAL;
		}
		if (n == HISTOGRAM_MAX_BUCKETS) {
			snprintf(err, errlen, "at most %d buckets", HISTOGRAM_MAX_BUCKETS);
			return -EINVAL;
		}
		l->bounds[n++] = v;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	if (n == 0) {
		snprintf(err, errlen, "at least one finite bucket bound is needed");
		return -EINVAL;
	}
	l->bounds[n] = INFINITY;
	l->nbuckets = n + 1;
	l->words = 1 + l->nbuckets;
	for (unsigned i = 0; i < n; i++)
		double_to_text(l->le[i], l->bounds[i]);
	strcpy(l->le[n], "+Inf");
	unsigned b = 0;
	for (uint32_t s = 0; s < HISTOGRAM_LUT_SIZE; s++) {
		while (b < n && (double)s > l->bounds[b])
			b++;
		l->lut[s] = (uint8_t)b;
	}
	return 0;
}

void histogram_read(const counter_t *h, const struct histogram_layout *l, uint64_t *cum,
                    uint64_t *sum)
{
	uint64_t acc = 0;
	*sum = counter_read(&h[0]);
	for (unsigned i = 0; i < l->nbuckets; i++) {
		acc += counter_read(&h[1 + i]);
		cum[i] = acc;
	}
}

void histogram_merge(uint64_t *acc_cum, uint64_t *acc_sum, const uint64_t *cum, uint64_t sum,
                     unsigned nbuckets)
{
	*acc_sum += sum;
	for (unsigned i = 0; i < nbuckets; i++)
		acc_cum[i] += cum[i];
}
