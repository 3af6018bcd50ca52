/* The on-disk remote-write queue of one endpoint (--remote-write.queue-dir):
 * encoded requests appended to segment files, read back oldest first,
 * removed once the endpoint accepted them (or they were dropped). Not
 * thread-safe: the endpoint's lock guards every call but rw_disk_pread. */
#ifndef PROMACCT_RW_DISK_H
#define PROMACCT_RW_DISK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "promacct/common.h"

#define RW_DISK_FORMAT        "promacct-remote-write-queue 1"
#define RW_DISK_SEGMENT_MAX   ((size_t)64 << 20) /* bytes per segment file at most */
#define RW_DISK_RECORD_HEADER 32                 /* bytes before each record's body */
#define RW_DISK_DONE_ENTRY    8  /* bytes a done record may add to its segment's .done list */
#define RW_DISK_TS_BYTES      32 /* the `timestamp` file: two slots */

struct rw_disk;

/* Where a request lives on disk. */
struct rw_disk_record {
	uint64_t seg; /* segment number */
	uint64_t off; /* of the body in the segment file */
	size_t len;   /* body bytes */
	size_t nsamples;
	size_t shard;   /* of the run that wrote it; replay: the shard to send it on */
	size_t nshards; /* the shard count of the run that wrote it (0: unknown) */
	int64_t ts_ms;  /* the timestamp of the snapshot it belongs to */
	uint32_t crc;   /* of the body (zlib crc32) */
};

struct rw_disk_stats {
	size_t replayed;                 /* valid records found at open */
	size_t corrupt;                  /* records skipped at open: torn or failing the checksum (a
	                                  * damaged header: the bytes up to the next valid one) */
	size_t corrupt_bytes;            /* bytes they took */
	size_t trimmed, trimmed_samples; /* cut to the bound (rw_disk_set_bound) */
	size_t skipped_files;            /* .seg/.done names that are no regular file: left alone */
	size_t bytes_found;              /* rw_disk_bytes before the cut */
	int64_t stored_ts_ms;            /* rw_disk_store_ts of an earlier run (0: none) */
	int64_t max_ts_ms;               /* of the records read (done or not) and stored_ts_ms */
	int serial;                      /* records of a run with another shard count than
	                                  * rw_disk_set_shards: every record replayed on shard 0 */
};

/* The directory of an endpoint under dir: a hash of the full URL (so a
 * changed URL gets its own queue), 16 hex digits. out needs 17 bytes. */
void rw_disk_dirname(const char *url, char *out);

/* Opens (creating it if needed) the endpoint's queue under dir: takes an
 * exclusive lock (a second agent is refused), checks the format (another
 * version is refused) and lists the segments. A segment file is closed for a
 * new one beyond segment_max bytes (0: RW_DISK_SEGMENT_MAX). NULL with a
 * message in err. */
struct rw_disk *rw_disk_open(const char *dir, const char *url, const char *shown_url,
                             size_t segment_max, char *err, size_t errlen);
/* The queue's bound (--remote-write.queue-max-bytes; 0: none), for
 * rw_disk_replay: a queue left under a larger bound is cut to it, oldest
 * first, and the segment where the cut falls is compacted. */
void rw_disk_set_bound(struct rw_disk *d, size_t max_bytes);
/* The shard count of this run (--remote-write.max-shards; 0 by default):
 * written in each record appended. At replay, if any record to replay was
 * written with another count, every record is given shard 0 (one sender,
 * oldest first: a series never sits on two shards), else its own shard. */
void rw_disk_set_shards(struct rw_disk *d, size_t nshards);
/* Reads every segment found at open, oldest first, calling replay(ctx,
 * record) for each valid record not done before. A damaged body skips its
 * record; a damaged header (or a torn tail) skips the bytes up to the next
 * valid header in the segment (found by its magic and checksum), so the
 * records after it are kept; each is counted once in st->corrupt. Once, before the first append. 0,
 * or replay's error. */
int rw_disk_replay(struct rw_disk *d, int (*replay)(void *ctx, const struct rw_disk_record *r),
                   void *ctx, struct rw_disk_stats *st, char *err, size_t errlen) MUST_CHECK;
/* Appends one request (written, not yet synced). 0 or a negative errno. */
int rw_disk_append(struct rw_disk *d, size_t shard, int64_t ts_ms, const char *body, size_t len,
                   size_t nsamples, struct rw_disk_record *out) MUST_CHECK;
/* Stores the timestamp of the last snapshot handed to the queue (written
 * in place, durable at the next rw_disk_sync; a smaller one than stored
 * is ignored), so that the next run stamps after it even when every record
 * was sent and nothing else holds it: rw_disk_replay's max_ts_ms includes
 * it. 0 or a negative errno (the previous value stays). */
int rw_disk_store_ts(struct rw_disk *d, int64_t ts_ms) MUST_CHECK;
/* The timestamp stored (by this run or, until it stores one, an earlier
 * run); 0: none. */
int64_t rw_disk_stored_ts(const struct rw_disk *d);
/* fdatasync of the stored timestamp (if written since) and of the segment
 * being written: what was appended survives a power cut. */
int rw_disk_sync(struct rw_disk *d) MUST_CHECK;
/* The file descriptor to read a record's body with pread (valid until the
 * record is done). -1 if unknown. */
int rw_disk_fd(struct rw_disk *d, const struct rw_disk_record *r);
/* Reads a record's body (r->len bytes) from fd; checks its checksum. 0,
 * -EIO or -EBADMSG. Needs no lock. */
int rw_disk_pread(int fd, const struct rw_disk_record *r, char *buf) MUST_CHECK;
/* A record is accepted or dropped: a segment whose records are all done is
 * deleted (not the one being written). */
void rw_disk_done(struct rw_disk *d, const struct rw_disk_record *r);
/* Gives the queue's directory and every file in it to uid:gid (-1: keep),
 * so that an agent that drops privileges after opening it (--user) can go
 * on appending, recording and deleting. Call as root, after rw_disk_open.
 * 0 or a negative errno with a message. */
int rw_disk_chown(struct rw_disk *d, uid_t uid, gid_t gid, char *err, size_t errlen) MUST_CHECK;
/* Bytes of the queue's files: format, timestamp, segments (record headers
 * and done records included), .done lists. */
size_t rw_disk_bytes(const struct rw_disk *d);
/* What the queue's files may take once a record of len body bytes is
 * appended and every record is done: rw_disk_bytes, the new record with its
 * header, and a .done entry for each pending record and the new one. The
 * files never grow beyond it until the next append. */
size_t rw_disk_bytes_needed(const struct rw_disk *d, size_t len);
/* Deletes the segment being written if none of its records is pending (the
 * next append starts a new one). 1 if it did, 0 otherwise. */
int rw_disk_release_idle(struct rw_disk *d);
/* Closes the files and releases the lock; the queue stays on disk. */
void rw_disk_close(struct rw_disk *d);

#endif
