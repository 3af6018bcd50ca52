/* floor: the cost of reading a capture with libpcap and nothing else.
 * pcap_loop over the file with a callback that touches each header. */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static void cb(u_char *user, const struct pcap_pkthdr *h, const u_char *bytes)
{
	uint64_t *acc = (uint64_t *)user;
	acc[0]++;
	acc[1] += h->len + bytes[0];
}

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	if (argc != 2) {
		fprintf(stderr, "usage: floor FILE\n");
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
