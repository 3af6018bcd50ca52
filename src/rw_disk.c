/* DESIGN: the on-disk remote-write queue of one endpoint.
 *
 * Layout: DIR/<16 hex digits: FNV-1a 64 of the endpoint URL>/ holds
 * `format` (RW_DISK_FORMAT and the URL shown without secrets), `lock` (an
 * exclusive flock while an agent uses the queue) and segment files
 * `<20-digit number>.seg`. A segment is a sequence of records: a 32-byte
 * header (magic, body length, samples, shard and the run's shard count
 * (16 bits each), snapshot timestamp, crc32 of
 * the body, crc32 of the header; little-endian) and the body (a
 * snappy-compressed WriteRequest). Records are appended by the timer thread
 * under the endpoint's lock; each run writes a new segment, and a segment
 * beyond its size (a fraction of the queue's bound) is closed for a new one.
 * d->bytes is the bytes of every file of the directory (format, timestamp,
 * segments, .done lists), which the caller keeps within its bound before each append
 * (rw_disk_bytes_needed reserves the .done entry of every pending record, so
 * nothing grows past it between appends). rw_disk_sync
 * (fdatasync) after each snapshot bounds what a power cut can lose to the
 * snapshot being written. A segment is deleted once every record in it is
 * done (accepted, or dropped by the byte bound), unless it is being
 * written. At open, segments are read oldest first: a record whose body
 * fails its checksum is skipped; a header with a bad magic, a bad checksum
 * or a length beyond the file (a torn tail after a crash, a damaged length)
 * skips the bytes up to the next valid header (magic, header checksum, a
 * body that fits), so records after a damaged one are kept. Each is
 * counted, and never stops the agent.
 * Records done in a segment that stays (other records of it are pending)
 * are listed by offset in `<number>.done`, so a restart skips them.
 * `timestamp` (RW_DISK_TS_BYTES, created at open, counted in d->bytes like
 * the format file) holds the last snapshot timestamp handed to the queue,
 * so a restart after the queue was sent whole (no record left to read it
 * from) still stamps after it: two 16-byte slots (magic, timestamp, crc32),
 * rw_disk_store_ts overwrites the older one in place (pwrite; made durable
 * by the next rw_disk_sync), so a torn write leaves the other: the stored
 * value is the largest valid slot. No rename, no new block: one small
 * write per snapshot, also on a full disk.
 * Only senders read records (pread on the segment's descriptor, which stays
 * open while any of its records is pending). */
#define _GNU_SOURCE
#include "promacct/rw_disk.h"

#include "promacct/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define REC_MAGIC   0x51575250u /* "PRWQ" */
#define TS_MAGIC    0x54575250u /* "PRWT" */
#define TS_SLOT     16
#define REC_HEADER  RW_DISK_RECORD_HEADER
#define REC_MAX_LEN ((size_t)256 << 20)

struct segment {
	uint64_t id;
	int fd;
	int done_fd;       /* <id>.done: offsets of the records done, appended; -1 until needed */
	size_t bytes;      /* of the segment file */
	size_t done_bytes; /* of its .done list */
	size_t pending;    /* records not done */
};

struct rw_disk {
	char *path; /* the endpoint's directory: for messages */
	int dir_fd; /* the endpoint's directory, opened before a privilege drop:
	             * every file is reached relative to it (openat), so the
	             * user dropped to needs no access to the directories above */
	int lock_fd;
	struct segment *seg;
	size_t nseg, cap;
	uint64_t next_id;
	int writing;    /* seg[nseg - 1] takes appends */
	size_t bytes;   /* of every file in the directory: format, segments, .done lists */
	size_t pending; /* records not done, over all segments */
	size_t format_bytes;
	int ts_fd;         /* `timestamp`: the last timestamp stored */
	int ts_slot;       /* the slot rw_disk_store_ts writes next */
	int ts_dirty;      /* written since the last sync */
	int64_t stored_ts; /* 0: none */
	size_t max_bytes;  /* rw_disk_set_bound: replay cuts the queue to it */
	size_t segment_max;
	size_t nshards; /* rw_disk_set_shards: written in each record */
	uint64_t *ids;  /* segments found at open, until rw_disk_replay */
	size_t nids;
	/* file errors, logged once per change of state */
	struct log_state remove_err, done_err, sync_err;
};

/* Logs a file error when it starts (not on every occurrence). */
static void file_error(struct log_state *st, const struct rw_disk *d, const char *what, int err)
{
	if (log_state_changed(st, 1))
		log_error("remote-write queue: file error", "dir=\"%s\" op=%s err=\"%s\"", d->path,
		          what, strerror(err));
}

void rw_disk_dirname(const char *url, char *out)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (const char *p = url; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void put32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t body_crc(const char *body, size_t len)
{
	uLong c = crc32(0L, Z_NULL, 0);
	while (len > 0) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;
		c = crc32(c, (const Bytef *)body, n);
		body += n;
		len -= n;
	}
	return (uint32_t)c;
}

static void encode_header(unsigned char *h, const struct rw_disk_record *r)
{
	uint64_t ts = (uint64_t)r->ts_ms;
	put32(h, REC_MAGIC);
	put32(h + 4, (uint32_t)r->len);
	put32(h + 8, (uint32_t)r->nsamples);
	put32(h + 12, (uint32_t)(r->shard & 0xffff) | (uint32_t)(r->nshards & 0xffff) << 16);
	put32(h + 16, (uint32_t)ts);
	put32(h + 20, (uint32_t)(ts >> 32));
	put32(h + 24, r->crc);
	put32(h + 28, (uint32_t)crc32(0L, h, 28));
}

/* 0 and *r filled, or -1: not a valid header. */
static int decode_header(const unsigned char *h, struct rw_disk_record *r)
{
	if (get32(h) != REC_MAGIC || get32(h + 28) != (uint32_t)crc32(0L, h, 28))
		return -1;
	r->len = get32(h + 4);
	r->nsamples = get32(h + 8);
	r->shard = get32(h + 12) & 0xffff;
	r->nshards = get32(h + 12) >> 16;
	r->ts_ms = (int64_t)((uint64_t)get32(h + 16) | (uint64_t)get32(h + 20) << 32);
	r->crc = get32(h + 24);
	return r->len > REC_MAX_LEN ? -1 : 0;
}

static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static int read_full(int fd, void *p, size_t n, off_t off)
{
	char *c = p;
	while (n > 0) {
		ssize_t r = pread(fd, c, n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		c += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* File names, relative to d->dir_fd. */
static void seg_path(const struct rw_disk *d, uint64_t id, char *out, size_t cap)
{
	(void)d;
	snprintf(out, cap, "%020llu.seg", (unsigned long long)id);
}

static void done_path(const struct rw_disk *d, uint64_t id, char *out, size_t cap)
{
	(void)d;
	snprintf(out, cap, "%020llu.done", (unsigned long long)id);
}

/* fsync of the directory: new and renamed names survive a power cut. */
static int sync_dir(const struct rw_disk *d)
{
	return fsync(d->dir_fd) ? -errno : 0;
}

static struct segment *seg_find(struct rw_disk *d, uint64_t id)
{
	for (size_t i = 0; i < d->nseg; i++)
		if (d->seg[i].id == id)
			return &d->seg[i];
	return NULL;
}

static struct segment *seg_add(struct rw_disk *d, uint64_t id, int fd)
{
	if (d->nseg == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 16;
		struct segment *ns = realloc(d->seg, ncap * sizeof *ns);
		if (!ns)
			return NULL;
		d->seg = ns;
		d->cap = ncap;
	}
	struct segment *s = &d->seg[d->nseg++];
	*s = (struct segment){id, fd, -1, 0, 0, 0};
	return s;
}

static void seg_remove(struct rw_disk *d, size_t i)
{
	char p[4096];
	seg_path(d, d->seg[i].id, p, sizeof p);
	close(d->seg[i].fd);
	if (unlinkat(d->dir_fd, p, 0) && errno != ENOENT)
		file_error(&d->remove_err, d, "unlink", errno);
	else
		(void)log_state_changed(&d->remove_err, 0);
	if (d->seg[i].done_fd >= 0)
		close(d->seg[i].done_fd);
	done_path(d, d->seg[i].id, p, sizeof p);
	(void)unlinkat(d->dir_fd, p, 0);
	d->bytes -= d->seg[i].bytes + d->seg[i].done_bytes;
	d->pending -= d->seg[i].pending;
	memmove(&d->seg[i], &d->seg[i + 1], (d->nseg - i - 1) * sizeof *d->seg);
	d->nseg--;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Opens a file of the queue's directory: never through a symbolic link
 * (O_NOFOLLOW: the directory belongs to the user dropped to with --user,
 * who must not make root open another file), never blocking on a FIFO
 * (O_NONBLOCK), and only a regular file with one link (a hard link could
 * name another file). The descriptor, or -ELOOP (a symbolic link) or
 * -EFTYPE_Q (another kind of file), or a negative errno. */
#define EFTYPE_Q ENOTSUP
static int open_file(const struct rw_disk *d, const char *name, int flags, mode_t mode)
{
	int fd = openat(d->dir_fd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
	if (fd < 0)
		return errno == ENXIO ? -EFTYPE_Q : -errno; /* ENXIO: a FIFO without reader */
	struct stat sb;
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode) || sb.st_nlink > 1) {
		close(fd);
		return -EFTYPE_Q;
	}
	return fd;
}

/* What open_file's error means, for messages. */
static const char *open_strerror(int rc)
{
	if (rc == -ELOOP)
		return "a symbolic link: refused (the queue's files must be regular files; "
		       "remove it)";
	if (rc == -EFTYPE_Q)
		return "not a regular file with one link: refused (remove it)";
	return strerror(-rc);
}

/* Encodes a timestamp slot. */
static void encode_ts(unsigned char *h, int64_t ts)
{
	put32(h, TS_MAGIC);
	put32(h + 4, (uint32_t)(uint64_t)ts);
	put32(h + 8, (uint32_t)((uint64_t)ts >> 32));
	put32(h + 12, (uint32_t)crc32(0L, h, 12));
}

/* Opens (creating it) the timestamp file and reads the stored timestamp:
 * the largest valid slot. A file of another size is set to
 * RW_DISK_TS_BYTES (its valid slots kept). 0 or a negative errno (-ELOOP,
 * -EFTYPE_Q: not a regular file of one link). */
static int open_ts(struct rw_disk *d)
{
	int fd = open_file(d, "timestamp", O_RDWR, 0);
	int created = 0;
	if (fd == -ENOENT) {
		fd = open_file(d, "timestamp", O_RDWR | O_CREAT | O_EXCL, 0600);
		created = 1;
	}
	if (fd < 0)
		return fd;
	unsigned char b[RW_DISK_TS_BYTES] = {0};
	ssize_t n = pread(fd, b, sizeof b, 0);
	int64_t best = 0;
	int best_slot = -1;
	for (int i = 0; n > 0 && i < RW_DISK_TS_BYTES / TS_SLOT; i++) {
		const unsigned char *h = b + i * TS_SLOT;
		if ((i + 1) * TS_SLOT > n || get32(h) != TS_MAGIC ||
		    get32(h + 12) != (uint32_t)crc32(0L, h, 12))
			continue;
		int64_t ts = (int64_t)((uint64_t)get32(h + 4) | (uint64_t)get32(h + 8) << 32);
		if (best_slot < 0 || ts > best) {
			best = ts;
			best_slot = i;
		}
	}
	struct stat sb;
	int rc = 0;
	if (fstat(fd, &sb))
		rc = -errno;
	else if (sb.st_size != RW_DISK_TS_BYTES && ftruncate(fd, RW_DISK_TS_BYTES))
		rc = -errno;
	else if (created || sb.st_size != RW_DISK_TS_BYTES)
		rc = fdatasync(fd) ? -errno : sync_dir(d);
	if (rc) {
		close(fd);
		return rc;
	}
	d->ts_fd = fd;
	d->stored_ts = best_slot >= 0 ? best : 0;
	d->ts_slot = best_slot == 0 ? 1 : 0; /* the other one */
	return 0;
}

/* Checks or writes the format file. A new one is written whole or not at
 * all: format.tmp, fsync, rename, fsync of the directory (a crash never
 * leaves a short format file that would refuse the queue). */
static int check_format(struct rw_disk *d, const char *shown, char *err, size_t errlen)
{
	char p[] = "format", buf[512];
	int fd = open_file(d, p, O_RDONLY, 0);
	if (fd == -ENOENT) {
		/* a new file (O_EXCL): whatever has the name is removed first */
		if (unlinkat(d->dir_fd, "format.tmp", 0) && errno != ENOENT) {
			fd = -errno;
			goto io;
		}
		fd = open_file(d, "format.tmp", O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (fd < 0)
			goto io;
		snprintf(buf, sizeof buf, "%s\nurl=%s\n", RW_DISK_FORMAT, shown);
		int rc = write_all(fd, buf, strlen(buf));
		if (!rc && fsync(fd))
			rc = -errno;
		close(fd);
		if (!rc && renameat(d->dir_fd, "format.tmp", d->dir_fd, p))
			rc = -errno;
		if (!rc)
			rc = sync_dir(d);
		if (rc) {
			(void)unlinkat(d->dir_fd, "format.tmp", 0);
			fd = rc;
			goto io;
		}
		return 0;
	}
	if (fd < 0)
		goto io;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int rerr = -errno;
	close(fd);
	if (n < 0) {
		fd = rerr;
		goto io;
	}
	buf[n] = '\0';
	size_t fl = strlen(RW_DISK_FORMAT);
	if (strncmp(buf, RW_DISK_FORMAT, fl) || buf[fl] != '\n') {
		snprintf(err, errlen,
		         "remote-write queue %s was written by an incompatible version "
		         "(format \"%.*s\", this version reads \"%s\"): move it away or delete it",
		         d->path, (int)strcspn(buf, "\n"), buf, RW_DISK_FORMAT);
		return -EINVAL;
	}
	return 0;
io: /* fd: the negative errno */
	snprintf(err, errlen, "remote-write queue %s/%s: %s", d->path, p, open_strerror(fd));
	return -EIO;
}

/* The header of a record at off in a segment of size bytes whose body fits
 * in the segment: 0 and *r filled, or -1. */
static int read_header(int fd, off_t off, off_t size, struct rw_disk_record *r)
{
	unsigned char h[REC_HEADER];
	if (size - off < REC_HEADER || read_full(fd, h, REC_HEADER, off) || decode_header(h, r) ||
	    (off_t)r->len > size - off - REC_HEADER)
		return -1;
	return 0;
}

/* The offset of the first valid record header at or after from (the magic,
 * then a header whose checksum holds and whose body fits), or size. */
static off_t resync(int fd, off_t from, off_t size)
{
	enum { WIN = 65536 };
	unsigned char *win = malloc(WIN);
	off_t found = size;
	if (!win)
		return size;
	for (off_t pos = from; pos + REC_HEADER <= size && found == size;) {
		size_t n = (size_t)(size - pos < WIN ? size - pos : WIN);
		if (n < 4 || read_full(fd, win, n, pos))
			break;
		for (size_t i = 0; i + 4 <= n; i++) {
			struct rw_disk_record r;
			if (get32(win + i) == REC_MAGIC &&
			    !read_header(fd, pos + (off_t)i, size, &r)) {
				found = pos + (off_t)i;
				break;
			}
		}
		pos += (off_t)n - 3; /* a magic across the window's end is seen next */
	}
	free(win);
	return found;
}

struct recs {
	struct rw_disk_record *r;
	size_t n, cap;
};

/* Reads one segment's records, oldest first, adding those pending to *out. */
static int scan_segment(struct rw_disk *d, uint64_t id, struct recs *out, struct rw_disk_stats *st,
                        char *err, size_t errlen)
{
	char p[4096];
	seg_path(d, id, p, sizeof p);
	int fd = open_file(d, p, O_RDONLY, 0);
	if (fd == -ELOOP || fd == -EFTYPE_Q) {
		/* not a segment this agent wrote (a FIFO would block the start
		 * forever): left alone, counted and logged */
		st->skipped_files++;
		log_warn("remote-write queue: a file that is not a segment skipped",
		         "dir=\"%s\" file=\"%s\" err=\"%s\"", d->path, p, open_strerror(fd));
		return 0;
	}
	if (fd < 0) {
		snprintf(err, errlen, "remote-write queue %s/%s: %s", d->path, p, strerror(-fd));
		return -EIO;
	}
	struct stat sb;
	if (fstat(fd, &sb)) {
		close(fd);
		snprintf(err, errlen, "remote-write queue %s/%s: %s", d->path, p, strerror(errno));
		return -EIO;
	}
	struct segment *s = seg_add(d, id, fd);
	if (!s) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->bytes = (size_t)sb.st_size;
	d->bytes += s->bytes;
	off_t off = 0;
	char *body = NULL;
	size_t body_cap = 0;
	int rc = 0;
	/* offsets of the records already done (accepted or dropped) */
	uint64_t *done = NULL;
	size_t ndone = 0;
	done_path(d, id, p, sizeof p);
	int dfd = open_file(d, p, O_RDONLY, 0);
	if (dfd == -ELOOP || dfd == -EFTYPE_Q) { /* its records are sent again */
		st->skipped_files++;
		log_warn("remote-write queue: a file that is not a .done list skipped",
		         "dir=\"%s\" file=\"%s\" err=\"%s\"", d->path, p, open_strerror(dfd));
	}
	if (dfd >= 0) {
		struct stat db;
		if (!fstat(dfd, &db)) {
			s->done_bytes = (size_t)db.st_size;
			d->bytes += s->done_bytes;
		}
		if (!fstat(dfd, &db) && db.st_size >= 8) {
			ndone = (size_t)db.st_size / 8;
			done = malloc(ndone * 8);
			if (!done || read_full(dfd, done, ndone * 8, 0))
				ndone = 0;
			else
				qsort(done, ndone, sizeof *done, cmp_u64);
		}
		close(dfd);
	}
	while (off < sb.st_size) {
		struct rw_disk_record r;
		if (read_header(fd, off, sb.st_size, &r)) {
			/* A torn tail, or a damaged header (its length cannot be
			 * trusted): skipped up to the next valid header, if any. */
			off_t next = resync(fd, off + 1, sb.st_size);
			st->corrupt++;
			st->corrupt_bytes += (size_t)(next - off);
			off = next;
			continue;
		}
		if (r.len > body_cap) {
			char *nb = realloc(body, r.len);
			if (!nb) {
				rc = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				break;
			}
			body = nb;
			body_cap = r.len;
		}
		if (read_full(fd, body, r.len, off + REC_HEADER) ||
		    body_crc(body, r.len) != r.crc) {
			st->corrupt++; /* the body is damaged: skip it, go on */
			st->corrupt_bytes += REC_HEADER + r.len;
			off += REC_HEADER + (off_t)r.len;
			continue;
		}
		r.seg = id;
		r.off = (uint64_t)(off + REC_HEADER);
		off += REC_HEADER + (off_t)r.len;
		if (r.ts_ms > st->max_ts_ms) /* sent or not: new snapshots come after */
			st->max_ts_ms = r.ts_ms;
		if (ndone && bsearch(&r.off, done, ndone, sizeof *done, cmp_u64))
			continue; /* accepted (or dropped) before the restart */
		s = seg_find(d, id);
		s->pending++;
		d->pending++;
		if (out->n == out->cap) {
			size_t nc = out->cap ? out->cap * 2 : 64;
			struct rw_disk_record *nr = realloc(out->r, nc * sizeof *nr);
			if (!nr) {
				rc = -ENOMEM;
				snprintf(err, errlen, "out of memory");
				break;
			}
			out->r = nr;
			out->cap = nc;
		}
		out->r[out->n++] = r;
	}
	free(body);
	free(done);
	s = seg_find(d, id);
	if (!rc && s->pending == 0)
		seg_remove(d, (size_t)(s - d->seg)); /* nothing left in it */
	return rc;
}

struct rw_disk *rw_disk_open(const char *dir, const char *url, const char *shown_url,
                             size_t segment_max, char *err, size_t errlen)
{
	char name[17];
	uint64_t *ids = NULL;
	size_t nids = 0, idcap = 0;
	DIR *dh = NULL;
	struct rw_disk *d = calloc(1, sizeof *d);
	if (!d)
		goto oom;
	d->lock_fd = -1;
	d->dir_fd = -1;
	d->ts_fd = -1;
	d->segment_max = segment_max ? segment_max : RW_DISK_SEGMENT_MAX;
	rw_disk_dirname(url, name);
	size_t pl = strlen(dir) + 1 + sizeof name;
	if (!(d->path = malloc(pl)))
		goto oom;
	snprintf(d->path, pl, "%s/%s", dir, name);
	if (mkdir(dir, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "--remote-write.queue-dir %s: %s", dir, strerror(errno));
		goto fail;
	}
	if (mkdir(d->path, 0700) && errno != EEXIST) {
		snprintf(err, errlen, "remote-write queue %s: %s", d->path, strerror(errno));
		goto fail;
	}
	d->dir_fd = open(d->path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (d->dir_fd < 0) {
		snprintf(err, errlen, "remote-write queue %s: %s", d->path, strerror(errno));
		goto fail;
	}
	d->lock_fd = open_file(d, "lock", O_RDWR | O_CREAT, 0600);
	if (d->lock_fd < 0) {
		snprintf(err, errlen, "remote-write queue %s/lock: %s", d->path,
		         open_strerror(d->lock_fd));
		d->lock_fd = -1;
		goto fail;
	}
	if (flock(d->lock_fd, LOCK_EX | LOCK_NB)) {
		snprintf(err, errlen,
		         "remote-write queue %s is in use by another agent (locked): two agents "
		         "cannot share a queue directory",
		         d->path);
		goto fail;
	}
	if (check_format(d, shown_url, err, errlen))
		goto fail;
	(void)unlinkat(d->dir_fd, "format.tmp", 0); /* left by a crash mid-write */
	struct stat fsb;
	if (!fstatat(d->dir_fd, "format", &fsb, AT_SYMLINK_NOFOLLOW))
		d->format_bytes = (size_t)fsb.st_size;
	d->bytes += d->format_bytes;
	int trc = open_ts(d);
	if (trc) {
		snprintf(err, errlen, "remote-write queue %s/timestamp: %s", d->path,
		         open_strerror(trc));
		goto fail;
	}
	d->bytes += RW_DISK_TS_BYTES;
	int lfd = dup(d->dir_fd); /* fdopendir takes it */
	if (lfd < 0 || !(dh = fdopendir(lfd))) {
		if (lfd >= 0)
			close(lfd);
		snprintf(err, errlen, "remote-write queue %s: %s", d->path, strerror(errno));
		goto fail;
	}
	rewinddir(dh);
	struct dirent *de;
	while ((de = readdir(dh))) {
		char *end;
		unsigned long long id = strtoull(de->d_name, &end, 10);
		if (end == de->d_name || strcmp(end, ".seg"))
			continue;
		if (nids == idcap) {
			size_t nc = idcap ? idcap * 2 : 16;
			uint64_t *ni = realloc(ids, nc * sizeof *ni);
			if (!ni)
				goto oom;
			ids = ni;
			idcap = nc;
		}
		ids[nids++] = id;
	}
	closedir(dh);
	dh = NULL;
	if (nids)
		qsort(ids, nids, sizeof *ids, cmp_u64);
	d->ids = ids;
	d->nids = nids;
	if (nids)
		d->next_id = ids[nids - 1] + 1;
	return d;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	if (dh)
		closedir(dh);
	free(ids);
	rw_disk_close(d);
	return NULL;
}

/* Moves the records of segment s listed in r[0..n) (pending, in file
 * order) to its start, one after the other, and cuts the file after them:
 * what was done or cut in between leaves the disk. The .done list goes
 * first (and durably): a crash while moving then leaves whole records and
 * one torn region, which a replay skips; records seen twice are sent twice,
 * never lost. The offsets in r are updated. */
static int seg_compact(struct rw_disk *d, struct segment *s, struct rw_disk_record *r, size_t n)
{
	char p[64];
	int rc = 0;
	if (s->done_fd >= 0)
		close(s->done_fd);
	s->done_fd = -1;
	done_path(d, s->id, p, sizeof p);
	if (unlinkat(d->dir_fd, p, 0) && errno != ENOENT)
		return -errno;
	d->bytes -= s->done_bytes;
	s->done_bytes = 0;
	if ((rc = sync_dir(d)))
		return rc;
	seg_path(d, s->id, p, sizeof p);
	int fd = open_file(d, p, O_RDWR, 0);
	if (fd < 0)
		return fd;
	enum { CHUNK = 65536 };
	char *buf = malloc(CHUNK);
	off_t w = 0;
	for (size_t i = 0; i < n && buf && !rc; i++) {
		off_t src = (off_t)r[i].off - REC_HEADER;
		size_t left = REC_HEADER + r[i].len;
		r[i].off = (uint64_t)(w + REC_HEADER);
		if (src == w) {
			w += (off_t)left;
			continue;
		}
		while (left > 0 && !rc) { /* forward: w < src, chunks never overlap badly */
			size_t k = left < CHUNK ? left : CHUNK;
			if (read_full(fd, buf, k, src) || pwrite(fd, buf, k, w) != (ssize_t)k)
				rc = -EIO;
			src += (off_t)k;
			w += (off_t)k;
			left -= k;
		}
	}
	if (!buf)
		rc = -ENOMEM;
	free(buf);
	if (!rc && (fdatasync(fd) || ftruncate(fd, w) || fdatasync(fd)))
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	close(s->fd);
	s->fd = fd;
	d->bytes -= s->bytes - (size_t)w;
	s->bytes = (size_t)w;
	return 0;
}

/* A queue over the bound (left under a larger one): the oldest records are
 * cut until the rest fits the bound less one segment (the room new
 * appends need before an old segment, perhaps as large as the old bound
 * made it, goes whole), as rw_disk_bytes_needed counts, once the segments
 * hold only pending records; then segments that hold other bytes are
 * compacted, oldest first, until it does. Returns the index of the first
 * record kept. */
static size_t trim_to_bound(struct rw_disk *d, struct recs *rs, struct rw_disk_stats *st, int *rc)
{
	*rc = 0;
	if (!d->max_bytes || rw_disk_bytes_needed(d, 0) <= d->max_bytes)
		return 0;
	size_t target =
	    d->max_bytes > 2 * d->segment_max ? d->max_bytes - d->segment_max : d->max_bytes / 2;
	size_t need = d->format_bytes + RW_DISK_TS_BYTES + REC_HEADER + RW_DISK_DONE_ENTRY,
	       first = rs->n;
	while (first > 0) {
		size_t cost = REC_HEADER + rs->r[first - 1].len + RW_DISK_DONE_ENTRY;
		if (need + cost > target)
			break;
		need += cost;
		first--;
	}
	for (size_t i = 0; i < first; i++) {
		st->trimmed++;
		st->trimmed_samples += rs->r[i].nsamples;
		rw_disk_done(d, &rs->r[i]);
	}
	for (size_t i = first; i < rs->n && rw_disk_bytes_needed(d, 0) > target;) {
		uint64_t id = rs->r[i].seg;
		size_t j = i, kept = 0;
		while (j < rs->n && rs->r[j].seg == id)
			kept += REC_HEADER + rs->r[j++].len;
		struct segment *s = seg_find(d, id);
		if (s && s->bytes + s->done_bytes > kept &&
		    (*rc = seg_compact(d, s, rs->r + i, j - i)))
			break;
		i = j;
	}
	return first;
}

int rw_disk_replay(struct rw_disk *d, int (*replay)(void *ctx, const struct rw_disk_record *r),
                   void *ctx, struct rw_disk_stats *st, char *err, size_t errlen)
{
	int rc = 0;
	struct recs rs = {NULL, 0, 0};
	memset(st, 0, sizeof *st);
	for (size_t i = 0; i < d->nids && !rc; i++)
		rc = scan_segment(d, d->ids[i], &rs, st, err, errlen);
	st->stored_ts_ms = d->stored_ts;
	if (d->stored_ts > st->max_ts_ms)
		st->max_ts_ms = d->stored_ts; /* the queue was sent whole before */
	size_t first = 0;
	st->bytes_found = d->bytes;
	if (!rc) {
		first = trim_to_bound(d, &rs, st, &rc);
		if (rc)
			snprintf(err, errlen, "remote-write queue %s: cutting it to the bound: %s",
			         d->path, strerror(-rc));
	}
	/* A series is on shard hash % nshards of the run that wrote it: records
	 * of runs with another shard count than this one would put a series on
	 * two shards that send at once, its older samples after newer ones. Then
	 * every record is replayed on shard 0, one after another, oldest first. */
	for (size_t i = first; i < rs.n && !st->serial; i++)
		if (rs.r[i].nshards != d->nshards)
			st->serial = 1;
	for (size_t i = first; i < rs.n && !rc; i++) {
		st->replayed++;
		if (st->serial)
			rs.r[i].shard = 0;
		if ((rc = replay(ctx, &rs.r[i])))
			snprintf(err, errlen, "remote-write queue replay: %s", strerror(-rc));
	}
	free(rs.r);
	free(d->ids);
	d->ids = NULL;
	d->nids = 0;
	return rc;
}

void rw_disk_set_bound(struct rw_disk *d, size_t max_bytes)
{
	d->max_bytes = max_bytes;
}

void rw_disk_set_shards(struct rw_disk *d, size_t nshards)
{
	d->nshards = nshards;
}

/* Opens a new segment for appends. */
static int seg_new(struct rw_disk *d)
{
	char p[4096];
	seg_path(d, d->next_id, p, sizeof p);
	int fd = open_file(d, p, O_RDWR | O_CREAT | O_EXCL | O_APPEND, 0600);
	if (fd < 0)
		return fd;
	if (!seg_add(d, d->next_id, fd)) {
		close(fd);
		unlinkat(d->dir_fd, p, 0);
		return -ENOMEM;
	}
	d->next_id++;
	d->writing = 1;
	int rc = sync_dir(d); /* the new name survives a power cut */
	if (rc)
		file_error(&d->sync_err, d, "fsync of the directory", -rc);
	return 0;
}

/* The segment being written takes no more appends; deleted now if nothing
 * in it is pending. */
static void seg_close_writing(struct rw_disk *d)
{
	if (!d->writing)
		return;
	d->writing = 0;
	if (d->seg[d->nseg - 1].pending == 0)
		seg_remove(d, d->nseg - 1);
}

int rw_disk_append(struct rw_disk *d, size_t shard, int64_t ts_ms, const char *body, size_t len,
                   size_t nsamples, struct rw_disk_record *out)
{
	int rc;
	if (len > REC_MAX_LEN)
		return -E2BIG;
	int retried = 0;
again:;
	struct segment *s = d->writing ? &d->seg[d->nseg - 1] : NULL;
	if (s && s->bytes + REC_HEADER + len > d->segment_max && s->bytes > 0) {
		if ((rc = rw_disk_sync(d)))
			file_error(&d->sync_err, d, "fdatasync", -rc);
		seg_close_writing(d);
		s = NULL;
	}
	if (!s) {
		if ((rc = seg_new(d)))
			return rc;
		s = &d->seg[d->nseg - 1];
	}
	struct rw_disk_record r = {s->id, s->bytes + REC_HEADER, len, nsamples, shard, d->nshards,
	                           ts_ms, body_crc(body, len)};
	unsigned char h[REC_HEADER];
	encode_header(h, &r);
	if ((rc = write_all(s->fd, h, REC_HEADER)) || (rc = write_all(s->fd, body, len))) {
		/* a partial record: cut it off, the file stays readable */
		if (ftruncate(s->fd, (off_t)s->bytes)) {
			struct stat sb; /* what is on disk now counts */
			if (!fstat(s->fd, &sb) && (size_t)sb.st_size > s->bytes) {
				d->bytes += (size_t)sb.st_size - s->bytes;
				s->bytes = (size_t)sb.st_size;
			}
		}
		/* A full disk (or any write error): no more appends to this
		 * segment, so it is deleted once its records are done and the
		 * space comes back; the next append starts a new one. An empty
		 * segment stays the one written (nothing to give back). */
		if (s->bytes > 0) {
			/* A segment holding only done records (an idle queue) is
			 * deleted by the close: on a disk smaller than a segment
			 * its space is what the append lacked, so it is tried
			 * once more, in a new segment. */
			int idle = s->pending == 0;
			seg_close_writing(d);
			if (idle && !retried) {
				retried = 1;
				goto again;
			}
		}
		return rc;
	}
	s->bytes += REC_HEADER + len;
	d->bytes += REC_HEADER + len;
	s->pending++;
	d->pending++;
	*out = r;
	return 0;
}

int rw_disk_store_ts(struct rw_disk *d, int64_t ts_ms)
{
	if (ts_ms <= d->stored_ts)
		return 0;
	unsigned char h[TS_SLOT];
	encode_ts(h, ts_ms);
	ssize_t w = pwrite(d->ts_fd, h, sizeof h, (off_t)d->ts_slot * TS_SLOT);
	if (w != (ssize_t)sizeof h)
		return w < 0 ? -errno : -EIO; /* the other slot holds the previous one */
	d->stored_ts = ts_ms;
	d->ts_slot ^= 1;
	d->ts_dirty = 1;
	return 0;
}

int64_t rw_disk_stored_ts(const struct rw_disk *d)
{
	return d->stored_ts;
}

int rw_disk_sync(struct rw_disk *d)
{
	int trc = 0;
	if (d->ts_dirty) {
		if (fdatasync(d->ts_fd))
			trc = -errno;
		else
			d->ts_dirty = 0;
	}
	if (!d->writing)
		return trc;
	if (!fdatasync(d->seg[d->nseg - 1].fd))
		return trc;
	int rc = -errno;
	/* what failed to reach the disk may be gone (the error is reported
	 * once): the segment takes no more appends */
	seg_close_writing(d);
	return rc;
}

int rw_disk_fd(struct rw_disk *d, const struct rw_disk_record *r)
{
	struct segment *s = seg_find(d, r->seg);
	return s ? s->fd : -1;
}

int rw_disk_pread(int fd, const struct rw_disk_record *r, char *buf)
{
	if (fd < 0 || read_full(fd, buf, r->len, (off_t)r->off))
		return -EIO;
	return body_crc(buf, r->len) == r->crc ? 0 : -EBADMSG;
}

void rw_disk_done(struct rw_disk *d, const struct rw_disk_record *r)
{
	struct segment *s = seg_find(d, r->seg);
	if (!s || s->pending == 0)
		return;
	s->pending--;
	d->pending--;
	size_t i = (size_t)(s - d->seg);
	if (s->pending == 0 && !(d->writing && i == d->nseg - 1)) {
		seg_remove(d, i);
		return;
	}
	/* Remembered in the segment's .done file, so a restart does not send it
	 * again (written, not synced: it survives kill -9; a power cut may lose
	 * the last ones, which are then sent twice). */
	char p[4096];
	if (s->done_fd < 0) {
		done_path(d, s->id, p, sizeof p);
		int fd = open_file(d, p, O_WRONLY | O_CREAT | O_APPEND, 0600);
		s->done_fd = fd < 0 ? -1 : fd;
		if (fd < 0)
			errno = -fd;
	}
	uint64_t off = r->off;
	int rc = s->done_fd < 0 ? -errno : write_all(s->done_fd, &off, sizeof off);
	if (rc) { /* after a restart it is sent again */
		if (s->done_fd >= 0 && ftruncate(s->done_fd, (off_t)s->done_bytes)) {
			/* a partial entry stays: the list is not read again */
			close(s->done_fd);
			s->done_fd = -1;
			done_path(d, s->id, p, sizeof p);
			(void)unlinkat(d->dir_fd, p, 0);
			d->bytes -= s->done_bytes;
			s->done_bytes = 0;
		}
		file_error(&d->done_err, d, "record a done request", -rc);
	} else {
		(void)log_state_changed(&d->done_err, 0);
		s->done_bytes += sizeof off;
		d->bytes += sizeof off;
	}
}

int rw_disk_chown(struct rw_disk *d, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	int rc = 0;
	if (fchown(d->dir_fd, uid, gid)) {
		rc = -errno;
		snprintf(err, errlen, "remote-write queue %s: chown: %s", d->path, strerror(errno));
		return rc;
	}
	int lfd = dup(d->dir_fd);
	DIR *dh = lfd >= 0 ? fdopendir(lfd) : NULL;
	if (!dh) {
		rc = -errno;
		if (lfd >= 0)
			close(lfd);
		snprintf(err, errlen, "remote-write queue %s: %s", d->path, strerror(-rc));
		return rc;
	}
	rewinddir(dh); /* the offset is shared with d->dir_fd */
	struct dirent *de;
	while ((de = readdir(dh)) && !rc) {
		if (de->d_name[0] == '.')
			continue;
		/* through the opened file, never a name: a symbolic link, a
		 * hard link or another kind of file is left alone */
		int fd = open_file(d, de->d_name, O_RDONLY, 0);
		if (fd < 0)
			continue;
		if (fchown(fd, uid, gid)) {
			rc = -errno;
			snprintf(err, errlen, "remote-write queue %s/%s: chown: %s", d->path,
			         de->d_name, strerror(errno));
		}
		close(fd);
	}
	closedir(dh);
	return rc;
}

size_t rw_disk_bytes(const struct rw_disk *d)
{
	return d->bytes;
}

size_t rw_disk_bytes_needed(const struct rw_disk *d, size_t len)
{
	/* every pending record may still add its entry to a .done list */
	return d->bytes + (d->pending + 1) * RW_DISK_DONE_ENTRY + RW_DISK_RECORD_HEADER + len;
}

int rw_disk_release_idle(struct rw_disk *d)
{
	if (!d->writing || d->seg[d->nseg - 1].pending > 0)
		return 0;
	seg_close_writing(d);
	return 1;
}

void rw_disk_close(struct rw_disk *d)
{
	if (!d)
		return;
	int rc = d->writing || d->ts_dirty ? rw_disk_sync(d) : 0;
	if (rc)
		file_error(&d->sync_err, d, "fdatasync", -rc);
	for (size_t i = 0; i < d->nseg; i++) {
		struct segment *s = &d->seg[i];
		/* an empty segment of this run holds nothing: remove it */
		if (s->pending == 0 && d->writing && i == d->nseg - 1)
			seg_remove(d, i--);
		else {
			close(s->fd);
			if (s->done_fd >= 0)
				close(s->done_fd);
		}
	}
	free(d->seg);
	free(d->ids);
	if (d->ts_fd >= 0)
		close(d->ts_fd);
	if (d->dir_fd >= 0)
		close(d->dir_fd);
	if (d->lock_fd >= 0)
		close(d->lock_fd); /* releases the lock */
	free(d->path);
	free(d);
}
