/* Specification of the on-disk remote-write queue (src/rw_disk.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "promacct/rw_disk.h"

#define URL "http://127.0.0.1:9/api/v1/write"

struct seen {
	struct rw_disk_record r[64];
	size_t n;
};

static int collect(void *ctx, const struct rw_disk_record *r)
{
	struct seen *s = ctx;
	assert_true(s->n < 64);
	s->r[s->n++] = *r;
	return 0;
}

static char *tmpdir(void)
{
	char *t = strdup("/tmp/promacct-rwdisk.XXXXXX");
	assert_non_null(mkdtemp(t));
	return t;
}

static void rm_rf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void write_file(const char *path, const char *bytes, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, n), (ssize_t)n);
	close(fd);
}

static struct rw_disk *open_q(const char *dir, struct seen *s, struct rw_disk_stats *st)
{
	char err[512] = "";
	memset(s, 0, sizeof *s);
	struct rw_disk *d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
	if (!d)
		fail_msg("open: %s", err);
	if (rw_disk_replay(d, collect, s, st, err, sizeof err))
		fail_msg("replay: %s", err);
	return d;
}

static void append(struct rw_disk *d, size_t shard, int64_t ts, const char *text,
                   struct rw_disk_record *r)
{
	assert_int_equal(rw_disk_append(d, shard, ts, text, strlen(text), 7, r), 0);
}

static void check_body(struct rw_disk *d, const struct rw_disk_record *r, const char *want)
{
	char buf[256];
	assert_int_equal(r->len, strlen(want));
	assert_int_equal(rw_disk_pread(rw_disk_fd(d, r), r, buf), 0);
	assert_memory_equal(buf, want, r->len);
}

/* What was appended and not done comes back after a reopen, oldest first,
 * with its shard, timestamp and samples. */
static void test_records_survive_a_restart_in_order(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b, c;
	struct rw_disk *d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 0);
	append(d, 0, 1000, "first", &a);
	append(d, 3, 1000, "second", &b);
	append(d, 1, 2000, "third", &c);
	check_body(d, &b, "second");
	rw_disk_done(d, &a); /* accepted */
	assert_int_equal(rw_disk_sync(d), 0);
	rw_disk_close(d);

	d = open_q(dir, &s, &st);
	assert_int_equal(st.replayed, 2); /* the accepted one is not sent again */
	assert_int_equal(s.r[0].shard, 3);
	assert_int_equal(s.r[0].ts_ms, 1000);
	assert_int_equal(s.r[0].nsamples, 7);
	check_body(d, &s.r[0], "second");
	assert_int_equal(s.r[1].shard, 1);
	assert_int_equal(s.r[1].ts_ms, 2000);
	check_body(d, &s.r[1], "third");
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* A segment whose records are all done is deleted; the queue's bytes
 * follow. */
static void test_done_segments_are_deleted(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b;
	struct rw_disk *d = open_q(dir, &s, &st);
	size_t empty = rw_disk_bytes(d); /* the format file */
	append(d, 0, 1, "aaaa", &a);
	append(d, 0, 2, "bbbb", &b);
	assert_int_equal(rw_disk_bytes(d), empty + 2 * (RW_DISK_RECORD_HEADER + 4));
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.r[0].ts_ms, 1);
	assert_int_equal(s.r[1].ts_ms, 2);
	check_body(d, &s.r[0], "aaaa");
	check_body(d, &s.r[1], "bbbb");
	assert_int_equal(st.max_ts_ms, 2);
	rw_disk_done(d, &s.r[0]);
	rw_disk_done(d, &s.r[1]);
	assert_int_equal(rw_disk_bytes(d), empty);
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 0);
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

static char *segment_file(const char *dir)
{
	char sub[17], path[512];
	rw_disk_dirname(URL, sub);
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	DIR *dh = opendir(path);
	assert_non_null(dh);
	struct dirent *de;
	char *found = NULL;
	while ((de = readdir(dh)))
		if (strstr(de->d_name, ".seg")) {
			found = malloc(1024);
			snprintf(found, 1024, "%s/%s", path, de->d_name);
		}
	closedir(dh);
	assert_non_null(found);
	return found;
}

/* A torn tail (a crash in the middle of a write) and a damaged body are
 * skipped and counted; the good records before them are kept. */
static void test_torn_and_corrupt_records_are_skipped_and_counted(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b, c;
	struct rw_disk *d = open_q(dir, &s, &st);
	append(d, 0, 1, "good-one", &a);
	append(d, 0, 2, "damaged!", &b);
	append(d, 0, 3, "good-two", &c);
	rw_disk_close(d);
	char *seg = segment_file(dir);
	int fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, (off_t)b.off + 2), 1); /* a flipped body byte */
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal(ftruncate(fd, sb.st_size - 3), 0); /* a torn last record */
	close(fd);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 1);
	check_body(d, &s.r[0], "good-one");
	assert_int_equal(st.corrupt, 2);
	rw_disk_close(d);
	free(seg);
	rm_rf(dir);
	free(dir);
}

/* A damaged length in the middle of a segment (its header checksum fails)
 * loses only that record: the next valid header is found and the records
 * after it are kept; the bytes skipped are counted. */
static void test_a_damaged_header_mid_segment_loses_only_its_record(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[4];
	const char *text[4] = {"one-one", "two-PRWQ-two", "three", "four"};
	struct rw_disk *d = open_q(dir, &s, &st);
	for (int i = 0; i < 4; i++)
		append(d, 0, i + 1, text[i], &r[i]);
	rw_disk_close(d);
	char *seg = segment_file(dir);
	int fd = open(seg, O_RDWR);
	assert_true(fd >= 0);
	/* the length field (bytes 4-7 of the header) of the second record */
	assert_int_equal(pwrite(fd, "\xff\xff", 2, (off_t)r[1].off - RW_DISK_RECORD_HEADER + 4), 2);
	close(fd);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 3);
	check_body(d, &s.r[0], "one-one");
	check_body(d, &s.r[1], "three"); /* the magic in the damaged body is not a header */
	check_body(d, &s.r[2], "four");
	assert_int_equal(st.corrupt, 1);
	assert_int_equal(st.corrupt_bytes, RW_DISK_RECORD_HEADER + strlen("two-PRWQ-two"));
	rw_disk_close(d);
	free(seg);
	rm_rf(dir);
	free(dir);
}

/* A power cut keeps any prefix of what was written but not synced: the
 * segment cut at every offset (and the .done list cut mid-entry) opens
 * without a crash, gives back exactly the records wholly before the cut,
 * bodies intact, less the ones listed done, and counts a cut inside a
 * record as one corrupt record. */
static void test_a_power_cut_at_any_offset_keeps_the_records_before_it(void **state)
{
	(void)state;
	enum { N = 12 };
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[N];
	char text[N][64];
	struct rw_disk *d = open_q(dir, &s, &st);
	for (int i = 0; i < N; i++) {
		int len = snprintf(text[i], sizeof text[i], "record-%d-", i);
		for (int k = 0; k < i * 3; k++) /* varying lengths */
			text[i][len++] = (char)('a' + k % 26);
		text[i][len] = '\0';
		append(d, (size_t)i, 1000 + i, text[i], &r[i]);
	}
	rw_disk_done(d, &r[1]); /* a .done list with 2 entries */
	rw_disk_done(d, &r[4]);
	rw_disk_close(d);
	char *seg = segment_file(dir);
	char done[1100];
	snprintf(done, sizeof done, "%.*s.done", (int)(strlen(seg) - 4), seg);
	struct stat sb;
	assert_int_equal(stat(seg, &sb), 0);
	size_t size = (size_t)sb.st_size;
	char *full = malloc(size);
	int fd = open(seg, O_RDONLY);
	assert_int_equal(read(fd, full, size), (ssize_t)size);
	close(fd);
	uint64_t done_offs[2] = {r[1].off, r[4].off};
	for (size_t cut = 0; cut <= size; cut++) {
		write_file(seg, full, cut);
		/* the .done list is cut too: whole, one entry and a half, none */
		size_t dcut = cut % 3 == 0 ? 16 : cut % 3 == 1 ? 12 : 0;
		write_file(done, (const char *)done_offs, dcut);
		size_t whole = 0, want = 0;
		while (whole < N && r[whole].off + r[whole].len <= cut)
			whole++;
		int at_boundary = cut == size || cut == r[whole].off - RW_DISK_RECORD_HEADER;
		d = open_q(dir, &s, &st);
		for (size_t i = 0; i < whole; i++) {
			if ((i == 1 && dcut >= 8) || (i == 4 && dcut >= 16))
				continue; /* listed done */
			assert_true(want < s.n);
			assert_int_equal(s.r[want].ts_ms, 1000 + (int64_t)i);
			check_body(d, &s.r[want], text[i]);
			want++;
		}
		assert_int_equal(s.n, want);
		assert_int_equal(st.corrupt, at_boundary ? 0 : 1);
		rw_disk_close(d);
	}
	free(full);
	free(seg);
	rm_rf(dir);
	free(dir);
}

static void test_a_second_agent_is_refused(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s, s2;
	struct rw_disk_stats st;
	char err[512] = "";
	struct rw_disk *d = open_q(dir, &s, &st);
	(void)s2;
	assert_null(rw_disk_open(dir, URL, URL, 0, err, sizeof err));
	assert_non_null(strstr(err, "in use by another agent"));
	rw_disk_close(d);
	d = open_q(dir, &s, &st); /* the lock goes with the first */
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

static void test_another_format_is_refused(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	char err[512] = "", sub[17], path[600];
	rw_disk_close(open_q(dir, &s, &st));
	rw_disk_dirname(URL, sub);
	snprintf(path, sizeof path, "%s/%s/format", dir, sub);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("promacct-remote-write-queue 99\n", f);
	fclose(f);
	assert_null(rw_disk_open(dir, URL, URL, 0, err, sizeof err));
	assert_non_null(strstr(err, "incompatible version"));
	rm_rf(dir);
	free(dir);
}

/* Another URL, another directory. */
static void test_the_directory_name_is_a_hash_of_the_url(void **state)
{
	(void)state;
	char a[17], b[17], c[17];
	rw_disk_dirname("http://a/api/v1/write", a);
	rw_disk_dirname("http://a/api/v1/write", b);
	rw_disk_dirname("http://b/api/v1/write", c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), 16);
}

/* Apparent bytes of every file under dir (what the bound is about). */
static size_t dir_bytes(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd,
	         "find '%s' -type f -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'", dir);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	unsigned long long n = 0;
	assert_int_equal(fscanf(f, "%llu", &n), 1);
	pclose(f);
	return (size_t)n;
}

/* rw_disk_bytes is what the queue's files take, exactly: the format file,
 * the segments with their record headers and done records, the .done
 * lists; and rw_disk_bytes_needed, taken before any record is done, is
 * never passed while they are done. */
static void test_bytes_are_the_files_and_needed_bounds_them(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[5];
	struct rw_disk *d = open_q(dir, &s, &st);
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir)); /* the format file */
	size_t before = rw_disk_bytes(d);
	assert_int_equal(rw_disk_bytes_needed(d, 100),
	                 before + RW_DISK_RECORD_HEADER + 100 + RW_DISK_DONE_ENTRY);
	for (int i = 0; i < 5; i++)
		append(d, (size_t)i, i, "0123456789", &r[i]);
	assert_int_equal(rw_disk_bytes(d), before + 5 * (RW_DISK_RECORD_HEADER + 10));
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
	size_t bound = rw_disk_bytes_needed(d, 0) - RW_DISK_RECORD_HEADER - RW_DISK_DONE_ENTRY;
	for (int i = 0; i < 4; i++) {
		rw_disk_done(d, &r[i]); /* listed in the .done file: the segment stays */
		assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
		assert_true(dir_bytes(dir) <= bound);
	}
	rw_disk_close(d);
	d = open_q(dir, &s, &st); /* the same figure after a restart */
	assert_int_equal(s.n, 1);
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
	rw_disk_done(d, &s.r[0]); /* the last one: the segment goes */
	assert_int_equal(rw_disk_bytes(d), before);
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* The segment being written goes once nothing in it is pending, only
 * then. */
static void test_an_idle_segment_being_written_can_be_released(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b;
	struct rw_disk *d = open_q(dir, &s, &st);
	size_t empty = rw_disk_bytes(d);
	append(d, 0, 1, "aaaa", &a);
	append(d, 0, 2, "bbbb", &b);
	rw_disk_done(d, &a);
	assert_int_equal(rw_disk_release_idle(d), 0); /* b is pending */
	rw_disk_done(d, &b);
	assert_true(rw_disk_bytes(d) > empty); /* done, in the segment being written */
	assert_int_equal(rw_disk_release_idle(d), 1);
	assert_int_equal(rw_disk_bytes(d), empty);
	assert_int_equal(dir_bytes(dir), empty);
	append(d, 0, 3, "cccc", &a); /* a new segment */
	check_body(d, &a, "cccc");
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].ts_ms, 3);
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* A write error on the segment being written (here EFBIG from a file size
 * limit; ENOSPC on a full disk behaves the same) closes it: once its
 * records are done it is deleted, so the space it took comes back, and the
 * next append starts a new segment. */
static void test_a_write_error_closes_the_segment_so_its_space_comes_back(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[4], x;
	struct rw_disk *d = open_q(dir, &s, &st);
	size_t empty = rw_disk_bytes(d);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 4 * (RW_DISK_RECORD_HEADER + 10) + 20; /* room for 4 records per file */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (int i = 0; i < 4; i++)
		append(d, 0, i, "0123456789", &r[i]);
	int rc = rw_disk_append(d, 0, 4, "0123456789", 10, 7, &x);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, -EFBIG);
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir)); /* the partial record is cut off */
	for (int i = 0; i < 4; i++)
		rw_disk_done(d, &r[i]); /* sent: the full segment goes */
	assert_int_equal(rw_disk_bytes(d), empty);
	assert_int_equal(dir_bytes(dir), empty);
	append(d, 0, 5, "again", &x);
	check_body(d, &x, "again");
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].ts_ms, 5);
	assert_int_equal(st.corrupt, 0);
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* A disk smaller than one segment: the segment being written holds only
 * done records (all sent) when an append fails for room (ENOSPC; here a
 * file size limit): it is deleted and the append tried once more in a new
 * segment, instead of dropping the request while the receiver is fine. */
static void test_a_failed_append_retries_once_after_deleting_an_idle_segment(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[4], x;
	struct rw_disk *d = open_q(dir, &s, &st);
	size_t empty = rw_disk_bytes(d);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 4 * (RW_DISK_RECORD_HEADER + 10) + 20; /* room for 4 records per file */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (int i = 0; i < 4; i++)
		append(d, 0, i, "0123456789", &r[i]);
	for (int i = 0; i < 4; i++)
		rw_disk_done(d, &r[i]); /* sent: the segment being written holds only done ones */
	int rc = rw_disk_append(d, 0, 4, "0123456789", 10, 7, &x);
	/* a record that fits no file fails after its one retry */
	char big[200];
	memset(big, 'x', sizeof big);
	struct rw_disk_record y;
	int rc2 = rw_disk_append(d, 0, 5, big, sizeof big, 7, &y);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(rc, 0);
	check_body(d, &x, "0123456789");
	assert_int_equal(rc2, -EFBIG);
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
	assert_int_equal(rw_disk_bytes(d), empty + RW_DISK_RECORD_HEADER + 10);
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.r[0].ts_ms, 4);
	assert_int_equal(st.corrupt, 0);
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* A format file that could not be written whole (here a file size limit
 * cuts it; a crash does the same) is not left behind short: the next open
 * writes it and takes the queue, instead of refusing it as another
 * version's. */
static void test_the_format_file_is_written_whole_or_not_at_all(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char err[512] = "";
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 10; /* shorter than the format line */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	struct rw_disk *d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_null(d);
	d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
	if (!d)
		fail_msg("the second open failed: %s", err);
	rw_disk_close(d);
	char sub[17], path[600];
	rw_disk_dirname(URL, sub);
	snprintf(path, sizeof path, "%s/%s/format.tmp", dir, sub);
	assert_int_equal(access(path, F_OK), -1); /* no temporary file left */
	write_file(path, "promacct-rem", 12);     /* one a crash left behind */
	d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
	assert_non_null(d);
	assert_int_equal(access(path, F_OK), -1); /* removed: it is no queue file */
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* Before a privilege drop (--user), the directory and every file of the
 * queue are given to the user the agent will run as. */
static void test_chown_gives_the_directory_and_its_files_away(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b;
	char err[512] = "", sub[17], path[600];
	struct rw_disk *d = open_q(dir, &s, &st);
	append(d, 0, 1, "aaaa", &a);
	append(d, 0, 2, "bbbb", &b);
	rw_disk_done(d, &a); /* a .done list */
	assert_int_equal(rw_disk_chown(d, 65534, 65534, err, sizeof err), 0);
	rw_disk_dirname(URL, sub);
	snprintf(path, sizeof path, "%s/%s", dir, sub);
	DIR *dh = opendir(path);
	assert_non_null(dh);
	struct dirent *de;
	int files = 0;
	while ((de = readdir(dh))) {
		if (!strcmp(de->d_name, ".."))
			continue;
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s/%s", dir, sub, de->d_name);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_uid, 65534);
		assert_int_equal(sb.st_gid, 65534);
		files++;
	}
	closedir(dh);
	assert_int_equal(files, 6); /* ., format, lock, timestamp, a segment, its .done list */
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* A queue left under a larger bound (one big segment) is cut to a smaller
 * one at open: the newest records that fit the bound less one segment (room
 * for the next appends) are kept, the oldest cut and counted, the segment
 * compacted so its files fit; the cut queue reads back the same after
 * another restart. */
static void test_a_smaller_bound_at_open_keeps_the_newest_that_fit(void **state)
{
	(void)state;
	enum { N = 20, LEN = 100 };
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[N];
	char text[N][LEN + 1];
	struct rw_disk *d = open_q(dir, &s, &st);
	size_t empty = rw_disk_bytes(d);
	for (int i = 0; i < N; i++) {
		memset(text[i], 'a' + i, LEN);
		text[i][LEN] = '\0';
		append(d, 0, 100 + i, text[i], &r[i]);
	}
	rw_disk_done(d, &r[15]); /* done in the middle of what is kept */
	rw_disk_close(d);
	size_t per = RW_DISK_RECORD_HEADER + LEN + RW_DISK_DONE_ENTRY;
	size_t bound = empty + RW_DISK_RECORD_HEADER + RW_DISK_DONE_ENTRY + 6 * per + per / 2;
	char err[512] = "";
	for (int round = 0; round < 2; round++) {
		memset(&s, 0, sizeof s);
		d = rw_disk_open(dir, URL, URL, per, err, sizeof err); /* segments of one record */
		assert_non_null(d);
		rw_disk_set_bound(d, bound);
		assert_int_equal(rw_disk_replay(d, collect, &s, &st, err, sizeof err), 0);
		assert_int_equal(s.n, 5); /* 5.5 records fit the bound less a segment */
		int want[5] = {14, 16, 17, 18, 19};
		for (int i = 0; i < 5; i++) {
			assert_int_equal(s.r[i].ts_ms, 100 + want[i]);
			check_body(d, &s.r[i], text[want[i]]);
		}
		assert_int_equal(st.trimmed, round == 0 ? 14 : 0);
		assert_int_equal(st.trimmed_samples, round == 0 ? 14 * 7 : 0);
		assert_true(rw_disk_bytes_needed(d, 0) <= bound - per);
		assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
		assert_int_equal(st.max_ts_ms, 119);
		rw_disk_close(d);
	}
	rm_rf(dir);
	free(dir);
}

/* A queue cut at open where the cut falls inside one segment: the segment
 * is compacted, its file rewritten and truncated to the records kept, and
 * rw_disk_bytes is what the files take (before and after another restart). */
static void test_a_cut_inside_a_segment_truncates_its_file(void **state)
{
	(void)state;
	enum { N = 20, LEN = 100 };
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r[N];
	char text[N][LEN + 1];
	char err[512] = "";
	struct rw_disk *d = open_q(dir, &s, &st);
	size_t empty = rw_disk_bytes(d);
	for (int i = 0; i < N; i++) {
		memset(text[i], 'a' + i, LEN);
		text[i][LEN] = '\0';
		append(d, 0, 100 + i, text[i], &r[i]);
	}
	rw_disk_done(d, &r[17]); /* a .done list in the segment kept */
	rw_disk_close(d);
	size_t rec = RW_DISK_RECORD_HEADER + LEN;
	assert_int_equal(dir_bytes(dir), empty + N * rec + RW_DISK_DONE_ENTRY);
	size_t bound = 2 * (empty + 8 * (rec + RW_DISK_DONE_ENTRY));
	for (int round = 0; round < 2; round++) {
		memset(&s, 0, sizeof s);
		d = rw_disk_open(dir, URL, URL, 1 << 20, err, sizeof err); /* one segment */
		assert_non_null(d);
		rw_disk_set_bound(d, bound);
		assert_int_equal(rw_disk_replay(d, collect, &s, &st, err, sizeof err), 0);
		assert_true(s.n > 0 && s.n < N - 1);
		assert_int_equal(s.r[s.n - 1].ts_ms, 100 + N - 1);
		for (size_t i = 0; i < s.n; i++)
			check_body(d, &s.r[i], text[s.r[i].ts_ms - 100]);
		/* the segment holds the records kept and nothing else */
		assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
		assert_int_equal(dir_bytes(dir), empty + s.n * rec);
		assert_true(rw_disk_bytes_needed(d, 0) <= bound);
		rw_disk_close(d);
	}
	rm_rf(dir);
	free(dir);
}

/* The last timestamp handed to the queue survives a restart after every
 * record was sent (no record is left to read it from): the next run stamps
 * after it, also when the clock went back meanwhile. A smaller one never
 * replaces it. */
static void test_the_last_timestamp_survives_a_queue_sent_whole(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b;
	struct rw_disk *d = open_q(dir, &s, &st);
	assert_int_equal(st.max_ts_ms, 0); /* a new queue: nothing stored */
	assert_int_equal(rw_disk_stored_ts(d), 0);
	append(d, 0, 1000, "aaaa", &a);
	append(d, 0, 2000, "bbbb", &b);
	assert_int_equal(rw_disk_store_ts(d, 2001), 0);
	assert_int_equal(rw_disk_store_ts(d, 1500), 0); /* ignored */
	assert_int_equal(rw_disk_stored_ts(d), 2001);
	assert_int_equal(rw_disk_sync(d), 0);
	rw_disk_done(d, &a);
	rw_disk_done(d, &b); /* all sent */
	rw_disk_close(d);
	for (int round = 0; round < 2; round++) {
		d = open_q(dir, &s, &st);
		assert_int_equal(st.replayed, 0);
		assert_int_equal(st.stored_ts_ms, 2001);
		assert_int_equal(st.max_ts_ms, 2001);
		assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
		rw_disk_close(d); /* stores nothing: the value stays */
	}
	/* a record newer than the stored value wins (written, not stored) */
	d = open_q(dir, &s, &st);
	append(d, 0, 3000, "cccc", &a);
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(st.stored_ts_ms, 2001);
	assert_int_equal(st.max_ts_ms, 3000);
	rw_disk_close(d);
	rm_rf(dir);
	free(dir);
}

/* The timestamp file is two slots overwritten in turn: a torn or damaged
 * write loses only the value being written, the previous one stays; a file
 * of another size is set right; the queue opens in every case, and its
 * bytes stay what the files take. A symbolic link in its place is refused
 * (root must not write through it before dropping privileges). */
static void test_a_damaged_timestamp_slot_keeps_the_previous_value(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	char sub[17], path[600], err[512] = "";
	rw_disk_dirname(URL, sub);
	snprintf(path, sizeof path, "%s/%s/timestamp", dir, sub);
	struct rw_disk *d = open_q(dir, &s, &st);
	assert_int_equal(rw_disk_store_ts(d, 5000), 0);
	assert_int_equal(rw_disk_sync(d), 0);
	assert_int_equal(rw_disk_store_ts(d, 6000), 0);
	assert_int_equal(rw_disk_sync(d), 0);
	rw_disk_close(d);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, RW_DISK_TS_BYTES);
	/* damage the slot holding 6000 (the second one written) */
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c;
	assert_int_equal(pread(fd, &c, 1, 16 + 5), 1);
	c ^= 0xff;
	assert_int_equal(pwrite(fd, &c, 1, 16 + 5), 1);
	close(fd);
	d = open_q(dir, &s, &st);
	assert_int_equal(st.max_ts_ms, 5000);
	assert_int_equal(rw_disk_store_ts(d, 7000), 0); /* into the damaged slot */
	rw_disk_close(d);
	d = open_q(dir, &s, &st);
	assert_int_equal(st.max_ts_ms, 7000);
	rw_disk_close(d);
	/* a short file (a crash right after it was created): nothing stored */
	assert_int_equal(truncate(path, 7), 0);
	d = open_q(dir, &s, &st);
	assert_int_equal(st.max_ts_ms, 0);
	assert_int_equal(rw_disk_bytes(d), dir_bytes(dir));
	rw_disk_close(d);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, RW_DISK_TS_BYTES);
	/* a symbolic link: refused, the file it names untouched */
	char target[640];
	snprintf(target, sizeof target, "%s/elsewhere", dir);
	write_file(target, "x", 1);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(target, path), 0);
	assert_null(rw_disk_open(dir, URL, URL, 0, err, sizeof err));
	assert_non_null(strstr(err, "timestamp"));
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 1);
	/* a hard link (another name of a file of someone else's): the same */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(link(target, path), 0);
	assert_null(rw_disk_open(dir, URL, URL, 0, err, sizeof err));
	assert_non_null(strstr(err, "timestamp"));
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 1);
	rm_rf(dir);
	free(dir);
}

/* Records keep the shard of the run that wrote them. A run with another
 * shard count (--remote-write.max-shards changed between restarts) would
 * put one series on two shards sending at once, older samples after newer
 * ones: then every record is replayed on shard 0, oldest first; with the
 * same count each keeps its shard. */
static void test_another_shard_count_replays_everything_on_one_shard_in_order(void **state)
{
	(void)state;
	char *dir = tmpdir();
	char err[512] = "";
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record r;
	struct rw_disk *d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
	assert_non_null(d);
	rw_disk_set_shards(d, 1);
	memset(&s, 0, sizeof s);
	assert_int_equal(rw_disk_replay(d, collect, &s, &st, err, sizeof err), 0);
	append(d, 0, 1000, "run1-a", &r); /* every series on shard 0 of 1 */
	append(d, 0, 2000, "run1-b", &r);
	rw_disk_close(d);

	for (int run = 2; run <= 4; run++) {
		d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
		assert_non_null(d);
		rw_disk_set_shards(d, 8);
		memset(&s, 0, sizeof s);
		assert_int_equal(rw_disk_replay(d, collect, &s, &st, err, sizeof err), 0);
		if (run == 2) { /* a run of 8 shards appends on shards 5 and 2 */
			assert_int_equal(st.serial, 1);
			assert_int_equal(s.n, 2);
			append(d, 5, 3000, "run2-a", &r);
			append(d, 2, 4000, "run2-b", &r);
		} else if (run == 3) { /* the queue holds runs of 1 and 8 shards */
			assert_int_equal(st.serial, 1);
			assert_int_equal(s.n, 4);
			const char *want[4] = {"run1-a", "run1-b", "run2-a", "run2-b"};
			for (size_t i = 0; i < 4; i++) {
				assert_int_equal(s.r[i].shard, 0);
				assert_int_equal(s.r[i].ts_ms, 1000 * (int64_t)(i + 1));
				check_body(d, &s.r[i], want[i]);
				rw_disk_done(d, &s.r[i]);
			}
			append(d, 5, 5000, "run3-a", &r);
			append(d, 2, 6000, "run3-b", &r);
		} else { /* only records of 8 shards left: each on its own */
			assert_int_equal(st.serial, 0);
			assert_int_equal(s.n, 2);
			assert_int_equal(s.r[0].shard, 5);
			assert_int_equal(s.r[0].nshards, 8);
			assert_int_equal(s.r[1].shard, 2);
		}
		rw_disk_close(d);
	}
	rm_rf(dir);
	free(dir);
}

static void read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, cap - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

/* The endpoint's directory belongs to the user dropped to (--user): a name
 * in it that is a symbolic link must never make root write, truncate or
 * chown another file. format.tmp is made anew (O_EXCL), other files are
 * opened with O_NOFOLLOW and must be regular files: a link as `lock` is
 * refused with a clear message, as a .done list it is skipped (its records
 * are sent again), never written through. */
static void test_symbolic_links_in_the_queue_are_never_followed(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a, b;
	char err[512] = "", sub[17], path[600], victim[600], buf[256];
	rw_disk_dirname(URL, sub);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	write_file(victim, "precious", 8);
	struct rw_disk *d = open_q(dir, &s, &st);
	append(d, 0, 1, "aaaa", &a);
	append(d, 0, 2, "bbbb", &b);
	rw_disk_close(d);

	/* format removed, format.tmp a link to the victim */
	snprintf(path, sizeof path, "%s/%s/format", dir, sub);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof path, "%s/%s/format.tmp", dir, sub);
	assert_int_equal(symlink(victim, path), 0);
	/* the .done list of the segment: a link to the victim */
	snprintf(path, sizeof path, "%s/%s/%020llu.done", dir, sub, (unsigned long long)a.seg);
	assert_int_equal(symlink(victim, path), 0);
	d = open_q(dir, &s, &st);
	assert_int_equal(s.n, 2);
	assert_int_equal(st.skipped_files, 1);
	rw_disk_done(d, &s.r[0]); /* a .done entry is not written through the link */
	if (geteuid() == 0)
		assert_int_equal(rw_disk_chown(d, 65534, 65534, err, sizeof err), 0);
	rw_disk_close(d);
	read_file(victim, buf, sizeof buf);
	assert_string_equal(buf, "precious");
	struct stat sb;
	assert_int_equal(stat(victim, &sb), 0);
	assert_int_equal(sb.st_uid, geteuid()); /* not given away */
	snprintf(path, sizeof path, "%s/%s/format", dir, sub);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode)); /* written anew */

	/* the lock a link: refused, said so */
	snprintf(path, sizeof path, "%s/%s/lock", dir, sub);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(victim, path), 0);
	d = rw_disk_open(dir, URL, URL, 0, err, sizeof err);
	assert_null(d);
	assert_non_null(strstr(err, "/lock: a symbolic link: refused"));
	rm_rf(dir);
	free(dir);
}

static void on_alarm(int sig)
{
	(void)sig;
	fail_msg("the queue's open blocked (a FIFO?)");
}

/* A name that looks like a segment but is a FIFO (or a directory) would
 * block the start-up forever on open or read: it is skipped, counted and
 * left alone; the real segments are read. */
static void test_a_segment_that_is_not_a_regular_file_is_skipped(void **state)
{
	(void)state;
	char *dir = tmpdir();
	struct seen s;
	struct rw_disk_stats st;
	struct rw_disk_record a;
	char sub[17], path[600];
	rw_disk_dirname(URL, sub);
	struct rw_disk *d = open_q(dir, &s, &st);
	append(d, 0, 1, "aaaa", &a);
	rw_disk_close(d);
	snprintf(path, sizeof path, "%s/%s/00000000000000000099.seg", dir, sub);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(path, sizeof path, "%s/%s/00000000000000000098.seg", dir, sub);
	assert_int_equal(mkdir(path, 0700), 0);
	signal(SIGALRM, on_alarm);
	alarm(10);
	d = open_q(dir, &s, &st);
	alarm(0);
	assert_int_equal(s.n, 1);
	check_body(d, &s.r[0], "aaaa");
	assert_int_equal(st.skipped_files, 2);
	append(d, 0, 2, "bbbb", &a); /* appends go on, in a new segment */
	rw_disk_close(d);
	snprintf(path, sizeof path, "%s/%s/00000000000000000099.seg", dir, sub);
	struct stat sb;
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISFIFO(sb.st_mode)); /* left alone */
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_records_survive_a_restart_in_order),
	    cmocka_unit_test(test_another_shard_count_replays_everything_on_one_shard_in_order),
	    cmocka_unit_test(test_done_segments_are_deleted),
	    cmocka_unit_test(test_torn_and_corrupt_records_are_skipped_and_counted),
	    cmocka_unit_test(test_a_damaged_header_mid_segment_loses_only_its_record),
	    cmocka_unit_test(test_a_power_cut_at_any_offset_keeps_the_records_before_it),
	    cmocka_unit_test(test_a_smaller_bound_at_open_keeps_the_newest_that_fit),
	    cmocka_unit_test(test_a_cut_inside_a_segment_truncates_its_file),
	    cmocka_unit_test(test_the_last_timestamp_survives_a_queue_sent_whole),
	    cmocka_unit_test(test_a_damaged_timestamp_slot_keeps_the_previous_value),
	    cmocka_unit_test(test_a_second_agent_is_refused),
	    cmocka_unit_test(test_another_format_is_refused),
	    cmocka_unit_test(test_the_directory_name_is_a_hash_of_the_url),
	    cmocka_unit_test(test_bytes_are_the_files_and_needed_bounds_them),
	    cmocka_unit_test(test_an_idle_segment_being_written_can_be_released),
	    cmocka_unit_test(test_a_write_error_closes_the_segment_so_its_space_comes_back),
	    cmocka_unit_test(test_a_failed_append_retries_once_after_deleting_an_idle_segment),
	    cmocka_unit_test(test_the_format_file_is_written_whole_or_not_at_all),
	    cmocka_unit_test(test_chown_gives_the_directory_and_its_files_away),
	    cmocka_unit_test(test_symbolic_links_in_the_queue_are_never_followed),
	    cmocka_unit_test(test_a_segment_that_is_not_a_regular_file_is_skipped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
