/* Helpers shared by the in-process benchmarks (bench_ranges, bench_expiry):
 * the median of timed runs and a deterministic xorshift generator, so that
 * both programs draw the same traffic run after run. */
#ifndef PROMACCT_BENCH_UTIL_H
#define PROMACCT_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of the n values of v (sorts v). */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

/* xorshift64: the same sequence on every run. */
static inline uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

#endif
