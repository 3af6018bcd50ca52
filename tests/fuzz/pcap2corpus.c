/* pcap2corpus: turns the packets of a capture file into fuzz_parse inputs.
 * Usage: pcap2corpus FILE.pcap OUTDIR PREFIX
 * Each packet becomes OUTDIR/PREFIX-N: one byte naming the link type (its
 * index in fuzz_parse.c's table), one byte 0 (wire length = captured
 * length), then the captured bytes. Used by tests/fuzz/seed.sh. */
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

static const int links[] = {DLT_EN10MB, DLT_LINUX_SLL, 276,      DLT_RAW, 228,
                            229,        DLT_NULL,      DLT_LOOP, 105};

int main(int argc, char **argv)
{
	char err[PCAP_ERRBUF_SIZE];
	if (argc != 4) {
		fprintf(stderr, "usage: pcap2corpus FILE OUTDIR PREFIX\n");
		return 2;
	}
	pcap_t *p = pcap_open_offline(argv[1], err);
	if (!p) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	int dlt = pcap_datalink(p), idx = -1;
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (links[i] == dlt)
			idx = (int)i;
	if (idx < 0) {
		fprintf(stderr, "link type %d is not in the fuzz table\n", dlt);
		return 1;
	}
	struct pcap_pkthdr *h;
	const u_char *data;
	int n = 0, rc;
	while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s-%03d", argv[2], argv[3], n++);
		FILE *f = fopen(path, "wb");
		if (!f) {
			perror(path);
			return 1;
		}
		fputc(idx, f);
		fputc(0, f);
		fwrite(data, 1, h->caplen, f);
		fclose(f);
	}
	pcap_close(p);
	return rc == PCAP_ERROR_BREAK ? 0 : 1;
}
