/* bench_rwdisk: sustained write rate of the on-disk remote-write queue
 * against the in-memory one, side by side in one process.
 *
 *   bench_rwdisk DIR [SNAPSHOTS] [RUNS]
 *
 * One snapshot of the 1.18M-histogram benchmark state is 5,314 requests of
 * ~29 KB (10.6M samples, 156 MB). Queues SNAPSHOTS (default 3) such
 * snapshots of incompressible bodies into (a) the memory queue (each body
 * copied, as the encoder hands over a fresh one) and (b) the disk queue
 * under DIR (appended, fdatasync after each snapshot, as remote write does),
 * then marks them done; RUNS times (default 3), medians. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/rw_disk.h"
#include "promacct/rw_queue.h"
#include "bench_util.h"

#define REQS_PER_SNAPSHOT 5314
#define REQ_BYTES         29400
#define REQ_SAMPLES       2000

static int no_replay(void *ctx, const struct rw_disk_record *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: bench_rwdisk DIR [SNAPSHOTS] [RUNS]\n");
		return 2;
	}
	int snaps = argc > 2 ? atoi(argv[2]) : 3;
	int runs = argc > 3 ? atoi(argv[3]) : 3;
	size_t n = (size_t)snaps * REQS_PER_SNAPSHOT;
	char *src = malloc(REQ_BYTES);
	if (!src)
		return 1;
	unsigned s = 12345;
	for (size_t i = 0; i < REQ_BYTES; i++)
		src[i] = (char)(rand_r(&s) & 0xff);
	double tm[16], td[16];
	if (runs > 16)
		runs = 16;
	for (int r = 0; r < runs; r++) {
		struct rw_queue q;
		struct rw_drop drop = {0, 0};
		if (rw_queue_init(&q, 8, 0, 0))
			return 1;
		double t0 = time_monotonic();
		for (size_t i = 0; i < n; i++) {
			char *b = malloc(REQ_BYTES);
			if (!b)
				return 1;
			memcpy(b, src, REQ_BYTES);
			struct rw_body *body = rw_body_new(b, REQ_BYTES, REQ_SAMPLES);
			if (!body || rw_queue_push(&q, i % 8, body, &drop))
				return 1;
			rw_body_unref(body);
		}
		tm[r] = time_monotonic() - t0;
		rw_queue_free(&q);

		char err[512];
		struct rw_disk_stats st;
		struct rw_disk *d =
		    rw_disk_open(argv[1], "http://bench/", "http://bench/", 0, err, sizeof err);
		if (!d || rw_disk_replay(d, no_replay, NULL, &st, err, sizeof err)) {
			fprintf(stderr, "bench_rwdisk: %s\n", err);
			return 1;
		}
		struct rw_disk_record *recs = malloc(n * sizeof *recs);
		if (!recs)
			return 1;
		t0 = time_monotonic();
		for (size_t i = 0; i < n; i++) {
			if (rw_disk_append(d, i % 8, 1, src, REQ_BYTES, REQ_SAMPLES, &recs[i]))
				return 1;
			if ((i + 1) % REQS_PER_SNAPSHOT == 0 && rw_disk_sync(d))
				return 1;
		}
		td[r] = time_monotonic() - t0;
		for (size_t i = 0; i < n; i++)
			rw_disk_done(d, &recs[i]);
		free(recs);
		rw_disk_close(d);
	}
	qsort(tm, (size_t)runs, sizeof *tm, cmp_double);
	qsort(td, (size_t)runs, sizeof *td, cmp_double);
	double mb = (double)n * REQ_BYTES / 1e6;
	double mm = tm[runs / 2], md = td[runs / 2];
	printf("queue %d snapshots (%zu requests, %.0f MB, %.1f M samples), median of %d:\n", snaps,
	       n, mb, (double)n * REQ_SAMPLES / 1e6, runs);
	printf("  memory: %.3f s, %.0f MB/s, %.1f M samples/s\n", mm, mb / mm,
	       (double)n * REQ_SAMPLES / 1e6 / mm);
	printf("  disk:   %.3f s, %.0f MB/s, %.1f M samples/s (fdatasync per snapshot; %.2fx the "
	       "memory time)\n",
	       md, mb / md, (double)n * REQ_SAMPLES / 1e6 / md, md / mm);
	free(src);
	return 0;
}
