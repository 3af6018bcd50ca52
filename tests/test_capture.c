/* Specification of the capture module (src/capture.c): its lifecycle
 * (new opens everything or fails naming the problem, start, shutdown,
 * free), files read into their sources, a file that fails part way, an
 * interface waited for, threads without a handle (a file read, an
 * interface missing) ending idle keys and following reloads, and live
 * capture on loopback (as root). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "promacct/capture.h"
#include "fixture.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/promacct-test-capture.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

/* Writes `count` Ethernet IPv4/TCP frames src -> dst of `wire` bytes into
 * dir/name with link type dlt; returns the path (static buffer). */
static const char *write_pcap(const char *name, int dlt, int count, const char *src,
                              const char *dst, uint32_t wire)
{
	static char path[160];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	*slash = 0;
	mkdir(path, 0700);
	*slash = '/';
	pcap_t *dead = pcap_open_dead(dlt, 65535);
	pcap_dumper_t *d = pcap_dump_open(dead, path);
	assert_non_null(d);
	uint8_t b[64];
	size_t n = fr_eth(b, 0x0800);
	n += fr_ipv4(b + n, src, dst, 6);
	struct pcap_pkthdr h = {.caplen = (bpf_u_int32)n, .len = wire};
	for (int i = 0; i < count; i++) {
		h.ts.tv_sec = 1700000000 + i;
		pcap_dump((u_char *)d, &h, b);
	}
	pcap_dump_close(d);
	pcap_close(dead);
	return path;
}

static struct capture_opts file_opts(const char *const *files, size_t n)
{
	struct capture_opts o = {.threads = 1, .files = files, .nfiles = n};
	return o;
}

static void assert_on_page(struct registry *r, const char *line)
{
	char *page = fixture_render(r);
	if (!strstr(page, line))
		fail_msg("not on the page: %s\n%s", line, page);
	free(page);
}

static void test_files_are_read_into_their_sources(void **state)
{
	(void)state;
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	char *a1 = strdup(write_pcap("x/a.pcap", DLT_EN10MB, 10, "10.0.0.1", "10.0.0.2", 114));
	char *a2 = strdup(write_pcap("y/a.pcap", DLT_EN10MB, 5, "10.0.0.1", "10.0.0.3", 214));
	char *b = strdup(write_pcap("b.pcap", DLT_EN10MB, 7, "10.0.0.1", "10.0.0.2", 114));
	const char *files[] = {a1, a2, b};
	struct capture_opts o = file_opts(files, 3);
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	assert_int_equal(capture_wait_files(c), 0);
	capture_shutdown(c, time_monotonic() + 5);
	capture_free(c);
	/* files with one base name are one interface */
	assert_on_page(&f->reg, "promacct_packet_size_bytes_all_count{interface=\"a.pcap\"} 15\n");
	assert_on_page(&f->reg, "promacct_packet_size_bytes_all_sum{interface=\"a.pcap\"} 2000\n");
	assert_on_page(&f->reg, "promacct_pcap_received_packets_total{interface=\"a.pcap\"} 15\n");
	assert_on_page(&f->reg, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"a.pcap\","
	                        "ip=\"10.0.0.1\",protocol=\"tcp\"} 15\n");
	assert_on_page(&f->reg, "promacct_packet_size_bytes_all_count{interface=\"b.pcap\"} 7\n");
	/* a.pcap: 10.0.0.1-3; b.pcap: 10.0.0.1-2 */
	assert_int_equal(registry_tracked(&f->reg), 5);
	free(a1);
	free(a2);
	free(b);
	fixture_free(f);
}

/* Issue 13 item 6: what was read before the cut stays accounted, and the
 * failure is reported. */
static void test_a_truncated_file_keeps_what_was_read(void **state)
{
	(void)state;
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	const char *path = write_pcap("t.pcap", DLT_EN10MB, 60, "10.0.0.1", "10.0.0.2", 100);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(truncate(path, st.st_size - 30), 0);
	const char *files[] = {path};
	struct capture_opts o = file_opts(files, 1);
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	assert_int_equal(capture_wait_files(c), 1);
	capture_shutdown(c, time_monotonic() + 5);
	capture_free(c);
	assert_on_page(&f->reg, "promacct_packet_size_bytes_all_count{interface=\"t.pcap\"} 59\n");
	fixture_free(f);
}

static void expect_new_fails(struct capture_opts *o, const char *words)
{
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	struct capture *c = capture_new(o, &f->reg, err, sizeof err);
	if (c || !strstr(err, words))
		fail_msg("want a failure saying '%s', got %s: '%s'", words,
		         c ? "success" : "failure", err);
	fixture_free(f);
}

static void test_start_up_errors_name_the_problem(void **state)
{
	(void)state;
	char missing[128];
	snprintf(missing, sizeof missing, "%s/missing.pcap", dir);
	const char *files[] = {missing};
	struct capture_opts o = file_opts(files, 1);
	expect_new_fails(&o, "cannot read capture file");
	expect_new_fails(&o, missing);

	files[0] = write_pcap("wifi.pcap", DLT_IEEE802_11, 1, "10.0.0.1", "10.0.0.2", 100);
	expect_new_fails(&o, "unsupported link type IEEE802_11");

	files[0] = write_pcap("ok.pcap", DLT_EN10MB, 1, "10.0.0.1", "10.0.0.2", 100);
	o.filter = "tcp and and";
	expect_new_fails(&o, "invalid filter expression");

	if (geteuid() != 0)
		return; /* opening interfaces needs root */
	const char *ifs[] = {"pmnope0x", "lo", "lo"};
	struct capture_opts l = {.threads = 1, .interfaces = ifs, .ninterfaces = 1};
	expect_new_fails(&l, "interface pmnope0x: no such device");
	l.interfaces = ifs + 1;
	l.ninterfaces = 2;
	expect_new_fails(&l, "interface lo given twice");
}

/* With wait, a missing interface is not an error: it is down (interface_up
 * 0) and its thread waits to reopen it; a stop wakes that wait at once,
 * however long the reopen interval. */
static void test_a_waited_for_interface_is_down_and_a_stop_wakes_it(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	const char *ifs[] = {"pmnope1x"};
	struct capture_opts o = {
	    .threads = 2, .interfaces = ifs, .ninterfaces = 1, .reopen_interval = 60, .wait = 1};
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	int src = registry_source_find(&f->reg, "pmnope1x");
	assert_true(src >= 0);
	assert_false(registry_source_is_up(&f->reg, (size_t)src));
	assert_on_page(&f->reg, "promacct_interface_up{interface=\"pmnope1x\"} 0\n");
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	usleep(100000);
	double t0 = time_monotonic();
	capture_shutdown(c, t0 + 5);
	assert_true(time_monotonic() - t0 < 2.0);
	capture_free(c);
	fixture_free(f);
}

/* A table of ranges "PREFIX:label=value" (caller frees with table_free). */
static struct ranges *table_of(const char *const *specs, size_t n)
{
	char err[256];
	struct ranges *r = malloc(sizeof *r);
	assert_non_null(r);
	ranges_init(r);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ranges_add(r, specs[i], err, sizeof err), 0);
	assert_int_equal(ranges_build(r), 0);
	return r;
}

static void table_free(struct ranges *r)
{
	ranges_free(r);
	free(r);
}

/* What the main thread does for a reload, the fixture's own shard moved
 * as its (absent) capture thread would; returns the generation. */
static uint64_t reload_to(struct fixture *f, struct capture *c, struct ranges *fresh,
                          uint64_t *fixture_gen)
{
	assert_int_equal(registry_ranges_map(&f->reg, fresh), 0);
	uint64_t gen = registry_ranges_publish(&f->reg, fresh);
	(void)registry_shard_ranges(&f->reg, f->shard, NULL, fixture_gen);
	capture_ranges_changed(c);
	return gen;
}

/* Waits (up to 2 s) until every shard moved to generation gen (ended the
 * keys that reload changed); whether they did. */
static int wait_moved(struct registry *r, uint64_t gen)
{
	double t0 = time_monotonic();
	for (;;) {
		int all = 1;
		for (size_t i = 0; i < r->nsources; i++)
			for (size_t j = 0; j < r->sources[i].nshards; j++)
				all &= atomic_load(&r->sources[i].shards[j]->moved_gen) >= gen;
		if (all)
			return 1;
		if (time_monotonic() - t0 > 2)
			return 0;
		usleep(1000);
	}
}

/* Renders until the page no longer holds `text` (or `within` seconds
 * passed); returns the seconds it took from t0, or -1. */
static double wait_gone(struct registry *r, const char *text, double t0, double within)
{
	for (;;) {
		char *page = fixture_render(r);
		int there = strstr(page, text) != NULL;
		free(page);
		double now = time_monotonic();
		if (!there)
			return now - t0;
		if (now - t0 > within)
			return -1;
		usleep(10000);
	}
}

/* Issue 8 (idle expiry): the keys of a file read to its end, while the
 * agent runs on (no --once), end as those of an idle link do: off the
 * page between the timeout and the timeout plus two scan periods and a
 * wake-up, counted, their place in the caps free. The thread that read
 * the file is the only writer of its table throughout; a stop still ends
 * it at once. */
static void test_keys_of_a_read_file_end_when_idle(void **state)
{
	(void)state;
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	registry_set_idle_timeout(&f->reg, 1.0); /* for the shards added below */
	const char *files[] = {
	    write_pcap("idle.pcap", DLT_EN10MB, 10, "10.0.0.1", "10.0.0.2", 114)};
	struct capture_opts o = file_opts(files, 1);
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	double start = time_monotonic(); /* before the file's end */
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	assert_int_equal(capture_wait_files(c), 0);
	double t0 = time_monotonic(); /* after it */
	assert_on_page(&f->reg, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"idle.pcap\","
	                        "ip=\"10.0.0.1\",protocol=\"tcp\"} 10\n");
	assert_int_equal(registry_tracked(&f->reg), 2);
	double gone = wait_gone(&f->reg, "ip=\"10.0.0.", t0, 3.0);
	/* not before the timeout, and at most two periods and a wake-up late */
	if (gone < 0 || t0 + gone - start < 1.0 ||
	    gone > 1.0 + 2 * registry_expiry_period(&f->reg) + 0.5)
		fail_msg("the keys of the read file ended %.3f s after its end (timeout 1 s)",
		         gone);
	assert_on_page(&f->reg, "promacct_expired_keys_total{interface=\"idle.pcap\"} 2\n");
	assert_on_page(&f->reg, "promacct_tracked_keys{interface=\"idle.pcap\"} 0\n");
	assert_on_page(&f->reg, "promacct_tracked_addresses 0\n");
	/* the interface's own counts stay */
	assert_on_page(&f->reg,
	               "promacct_packet_size_bytes_all_count{interface=\"idle.pcap\"} 10\n");
	double t1 = time_monotonic();
	capture_shutdown(c, t1 + 5);
	assert_true(time_monotonic() - t1 < 0.5);
	capture_free(c);
	fixture_free(f);
}

/* With --once the output takes everything read: the keys of a file read
 * to its end do not expire before it. */
static void test_with_read_once_the_keys_of_a_read_file_stay(void **state)
{
	(void)state;
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	registry_set_idle_timeout(&f->reg, 1.0);
	const char *files[] = {write_pcap("once.pcap", DLT_EN10MB, 3, "10.0.0.1", "10.0.0.2", 114)};
	struct capture_opts o = file_opts(files, 1);
	o.read_once = 1;
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	assert_int_equal(capture_wait_files(c), 0);
	usleep(1500000);
	assert_on_page(&f->reg, "promacct_packet_size_bytes_ipv4_tx_count{interface=\"once.pcap\","
	                        "ip=\"10.0.0.1\",protocol=\"tcp\"} 3\n");
	assert_on_page(&f->reg, "promacct_expired_keys_total{interface=\"once.pcap\"} 0\n");
	capture_shutdown(c, time_monotonic() + 5);
	capture_free(c);
	fixture_free(f);
}

/* A reload reaches the keys of a file read to its end (its thread,
 * waiting for the stop, moves to the new table): a relabelled range's
 * series end at once; its label set, back, takes back its id. */
static void test_a_reload_reaches_the_keys_of_a_read_file(void **state)
{
	(void)state;
	char err[CAPTURE_ERR_MAX] = "";
	const char *a[] = {"10.0.0.0/8:c=a"}, *b[] = {"10.0.0.0/8:c=b"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, a, 1, 100);
	const char *files[] = {write_pcap("rl.pcap", DLT_EN10MB, 4, "10.0.0.1", "10.0.0.2", 114)};
	struct capture_opts o = file_opts(files, 1);
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	assert_int_equal(capture_wait_files(c), 0);
	assert_on_page(&f->reg, "ip=\"10.0.0.1\",protocol=\"tcp\",c=\"a\"} 4\n");
	uint64_t g = 0;
	struct ranges *t1 = table_of(b, 1);
	double t0 = time_monotonic();
	uint64_t gen = reload_to(f, c, t1, &g);
	assert_true(wait_gone(&f->reg, "c=\"a\"", t0, 2.0) >= 0);
	assert_true(wait_moved(&f->reg, gen));
	struct ranges *t2 = table_of(a, 1);
	reload_to(f, c, t2, &g);
	assert_int_equal(t2->v[0].id, 0); /* a's id, taken back */
	capture_shutdown(c, time_monotonic() + 5);
	capture_free(c);
	fixture_free(f);
	table_free(t1);
	table_free(t2);
}

/* Issue 8: a thread waiting for an interface that does not come back
 * follows reloads while it waits (a reload waits for it, briefly, and it
 * moves past the reload that retired a label set), so the set's id is
 * given back when its labels return. (It used to publish "no table" and
 * stay at the generation it had: every retired id was held back.) */
static void test_a_thread_waiting_for_its_interface_follows_reloads(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char err[CAPTURE_ERR_MAX] = "";
	const char *a[] = {"10.0.0.0/8:c=a"}, *b[] = {"10.0.0.0/8:c=b"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, a, 1, 100);
	const char *ifs[] = {"pmnope2x"};
	struct capture_opts o = {
	    .threads = 1, .interfaces = ifs, .ninterfaces = 1, .reopen_interval = 60, .wait = 1};
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	usleep(50000);
	uint64_t g = 0;
	struct ranges *t1 = table_of(b, 1);
	uint64_t gen = reload_to(f, c, t1, &g);
	assert_true(wait_moved(&f->reg, gen));
	struct ranges *t2 = table_of(a, 1);
	reload_to(f, c, t2, &g);
	assert_int_equal(t2->v[0].id, 0); /* not a new id */
	double t1s = time_monotonic();
	capture_shutdown(c, t1s + 5);
	assert_true(time_monotonic() - t1s < 0.5);
	capture_free(c);
	fixture_free(f);
	table_free(t1);
	table_free(t2);
}

/* Shutdown and free are safe whatever was started. */
static void test_shutdown_without_start(void **state)
{
	(void)state;
	char err[CAPTURE_ERR_MAX] = "";
	const char *ranges[] = {"10.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	const char *files[] = {write_pcap("s.pcap", DLT_EN10MB, 3, "10.0.0.1", "10.0.0.2", 100)};
	struct capture_opts o = file_opts(files, 1);
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	capture_shutdown(c, time_monotonic());
	capture_shutdown(c, time_monotonic());
	capture_free(c);
	capture_shutdown(NULL, 0);
	capture_free(NULL);
	fixture_free(f);
}

/* Live on loopback with two fanout threads: every datagram counted once,
 * the address held once. */
static void test_live_loopback_with_fanout(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	char err[CAPTURE_ERR_MAX] = "", filter[64];
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof a;
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0); /* a free port */
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
	snprintf(filter, sizeof filter, "udp and dst port %d", ntohs(a.sin_port));
	const char *ranges[] = {"127.0.0.0/8"};
	struct fixture *f = fixture_new(HISTOGRAM_DEFAULT_BUCKETS, ranges, 1, 100);
	const char *ifs[] = {"lo"};
	struct capture_opts o = {.threads = 2,
	                         .buffer_size = 1 << 20,
	                         .filter = filter,
	                         .interfaces = ifs,
	                         .ninterfaces = 1,
	                         .reopen_interval = 5};
	struct capture *c = capture_new(&o, &f->reg, err, sizeof err);
	assert_non_null(c);
	assert_int_equal(capture_start(c, err, sizeof err), 0);
	char payload[72] = {0};
	for (int i = 0; i < 50; i++) {
		int t = socket(AF_INET, SOCK_DGRAM, 0); /* a new flow each time */
		assert_true(sendto(t, payload, sizeof payload, 0, (struct sockaddr *)&a,
		                   sizeof a) == (ssize_t)sizeof payload);
		close(t);
	}
	/* 20 + 8 + 72 = 100 bytes of IP each */
	const char *want = "promacct_packet_size_bytes_ipv4_rx_count{interface=\"lo\","
	                   "ip=\"127.0.0.1\",protocol=\"udp\"} 50\n";
	char *page = NULL;
	for (int i = 0; i < 50; i++) {
		free(page);
		page = fixture_render(&f->reg);
		if (strstr(page, want))
			break;
		usleep(100000);
	}
	if (!strstr(page, want))
		fail_msg("not counted: %s\n%s", want, page);
	assert_non_null(strstr(page, "promacct_packet_size_bytes_ipv4_rx_sum{interface=\"lo\","
	                             "ip=\"127.0.0.1\",protocol=\"udp\"} 5000\n"));
	assert_non_null(strstr(page, "promacct_interface_up{interface=\"lo\"} 1\n"));
	free(page);
	assert_int_equal(registry_tracked(&f->reg), 1);
	capture_shutdown(c, time_monotonic() + 5);
	capture_free(c);
	close(s);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_files_are_read_into_their_sources),
	    cmocka_unit_test(test_a_truncated_file_keeps_what_was_read),
	    cmocka_unit_test(test_start_up_errors_name_the_problem),
	    cmocka_unit_test(test_a_waited_for_interface_is_down_and_a_stop_wakes_it),
	    cmocka_unit_test(test_keys_of_a_read_file_end_when_idle),
	    cmocka_unit_test(test_with_read_once_the_keys_of_a_read_file_stay),
	    cmocka_unit_test(test_a_reload_reaches_the_keys_of_a_read_file),
	    cmocka_unit_test(test_a_thread_waiting_for_its_interface_follows_reloads),
	    cmocka_unit_test(test_shutdown_without_start),
	    cmocka_unit_test(test_live_loopback_with_fanout),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
