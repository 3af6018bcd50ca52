/* rwq_shift: moves an on-disk remote-write queue through time, for the
 * tests. Reads every pending record of the queue of URL under SRC (as an
 * agent's replay would: rw_disk_open + rw_disk_replay), adds OFFSET_MS to
 * each record's snapshot timestamp and to every sample timestamp in its
 * body (snappy WriteRequest, decoded and encoded again), and appends it to
 * the queue of URL under DST, same shard and shard count; the last
 * timestamp SRC stored (rw_disk_store_ts: kept also when every record was
 * sent) is stored in DST moved by OFFSET_MS too. SRC is left as it was (its
 * records are not marked done).
 *
 *   rwq_shift SRC DST URL OFFSET_MS
 *
 * A queue written by an agent whose clock was OFFSET_MS ahead, without
 * preloading a fake clock into the agent (libfaketime hung the agent at
 * start-up on some machines). Prints the number of records moved. */
#include <errno.h>
#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/rw_disk.h"
#include "remote.pb-c.h"

struct shift {
	struct rw_disk *src, *dst;
	int64_t offset;
	size_t moved;
};

static int none(void *ctx, const struct rw_disk_record *r)
{
	(void)ctx;
	(void)r;
	return 0;
}

static int shift_one(void *ctx, const struct rw_disk_record *r)
{
	struct shift *s = ctx;
	int rc = -EIO;
	char *body = malloc(r->len ? r->len : 1), *raw = NULL, *out = NULL;
	uint8_t *packed = NULL;
	Prometheus__WriteRequest *w = NULL;
	size_t ulen = 0;
	int fd = rw_disk_fd(s->src, r);
	if (!body || fd < 0 || rw_disk_pread(fd, r, body))
		goto out;
	if (snappy_uncompressed_length(body, r->len, &ulen) != SNAPPY_OK ||
	    !(raw = malloc(ulen ? ulen : 1)) ||
	    snappy_uncompress(body, r->len, raw, &ulen) != SNAPPY_OK)
		goto out;
	if (!(w = prometheus__write_request__unpack(NULL, ulen, (const uint8_t *)raw)))
		goto out;
	for (size_t i = 0; i < w->n_timeseries; i++)
		for (size_t j = 0; j < w->timeseries[i]->n_samples; j++)
			w->timeseries[i]->samples[j]->timestamp += s->offset;
	size_t plen = prometheus__write_request__get_packed_size(w);
	size_t olen = snappy_max_compressed_length(plen);
	if (!(packed = malloc(plen ? plen : 1)) || !(out = malloc(olen)))
		goto out;
	prometheus__write_request__pack(w, packed);
	if (snappy_compress((const char *)packed, plen, out, &olen) != SNAPPY_OK)
		goto out;
	rw_disk_set_shards(s->dst, r->nshards);
	struct rw_disk_record rec;
	if ((rc = rw_disk_append(s->dst, r->shard, r->ts_ms + s->offset, out, olen, r->nsamples,
	                         &rec)))
		goto out;
	s->moved++;
out:
	if (w)
		prometheus__write_request__free_unpacked(w, NULL);
	free(body);
	free(raw);
	free(packed);
	free(out);
	return rc;
}

int main(int argc, char **argv)
{
	char err[512] = "";
	int rc = 1;
	struct rw_disk_stats st;
	if (argc != 5) {
		fprintf(stderr, "usage: rwq_shift SRC DST URL OFFSET_MS\n");
		return 2;
	}
	struct shift s = {NULL, NULL, strtoll(argv[4], NULL, 10), 0};
	if (!(s.src = rw_disk_open(argv[1], argv[3], argv[3], 0, err, sizeof err)) ||
	    !(s.dst = rw_disk_open(argv[2], argv[3], argv[3], 0, err, sizeof err)))
		goto out;
	if (rw_disk_replay(s.dst, none, NULL, &st, err, sizeof err) || st.replayed) {
		if (!*err)
			snprintf(err, sizeof err, "%s: the destination queue is not empty",
			         argv[2]);
		goto out;
	}
	if (rw_disk_replay(s.src, shift_one, &s, &st, err, sizeof err) ||
	    (st.stored_ts_ms && rw_disk_store_ts(s.dst, st.stored_ts_ms + s.offset)) ||
	    rw_disk_sync(s.dst)) {
		if (!*err)
			snprintf(err, sizeof err, "writing the destination failed");
		goto out;
	}
	printf("%zu\n", s.moved);
	rc = 0;
out:
	if (rc)
		fprintf(stderr, "rwq_shift: %s\n", err);
	if (s.src)
		rw_disk_close(s.src);
	if (s.dst)
		rw_disk_close(s.dst);
	return rc;
}
