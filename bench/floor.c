/* floor: the cost of reading packets with libpcap and nothing else, with
 * a callback that touches each header and the first byte.
 *
 *   floor FILE                 read a capture file, print the read time
 *   floor -i IFACE SNAPLEN     capture live as promacct does (TPACKET_V3,
 *                              32 MiB buffer, 100 ms block timeout, not
 *                              promiscuous) until SIGTERM, print the count
 *
 * The benchmark measures the live floor's CPU time the same way as the
 * agent's, over the same replay. */
#include <pcap/pcap.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pcap_t *live;

static void on_term(int sig)
{
	(void)sig;
	pcap_breakloop(live);
}

static void cb(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	uint64_t *acc = (uint64_t *)user;
	acc[0]++;
	acc[1] += h->len + bytes[0];
}

static int floor_live(const char *iface, int snaplen)
{
	char err[PCAP_ERRBUF_SIZE] = "";
	live = pcap_create(iface, err);
	if (!live) {
		fprintf(stderr, "floor: %s\n", err);
		return 1;
	}
	pcap_set_snaplen(live, snaplen);
	pcap_set_promisc(live, 0);
	pcap_set_timeout(live, 100);
	pcap_set_buffer_size(live, 32 << 20);
	if (pcap_activate(live) < 0) {
		fprintf(stderr, "floor: %s: %s\n", iface, pcap_geterr(live));
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	uint64_t acc[2] = {0, 0};
	for (;;) {
		int n = pcap_dispatch(live, -1, cb, (u_char *)acc);
		if (n == PCAP_ERROR_BREAK)
			break;
		if (n == PCAP_ERROR) {
			fprintf(stderr, "floor: %s\n", pcap_geterr(live));
			return 1;
		}
	}
	struct pcap_stat st;
	memset(&st, 0, sizeof st);
	pcap_stats(live, &st);
	printf("msg=\"live capture ended\" packets=%llu dropped=%u checksum=%llu\n",
	       (unsigned long long)acc[0], st.ps_drop, (unsigned long long)acc[1]);
	pcap_close(live);
	return 0;
}

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	if (argc == 4 && !strcmp(argv[1], "-i"))
		return floor_live(argv[2], atoi(argv[3]));
	if (argc != 2) {
		fprintf(stderr, "usage: floor FILE | floor -i IFACE SNAPLEN\n");
		return 2;
	}
	pcap_t *p = pcap_open_offline(argv[1], err);
	if (!p) {
		fprintf(stderr, "floor: %s\n", err);
		return 1;
	}
	uint64_t acc[2] = {0, 0};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (pcap_loop(p, -1, cb, (u_char *)acc) < 0) {
		fprintf(stderr, "floor: %s\n", pcap_geterr(p));
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* the same words promacct logs for a file, so one parser reads both */
	printf("msg=\"capture file read\" packets=%llu seconds=%.3f checksum=%llu\n",
	       (unsigned long long)acc[0],
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
	       (unsigned long long)acc[1]);
	pcap_close(p);
	return 0;
}
