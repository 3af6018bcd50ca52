/* Fuzz target: the command line (config_parse).
 *
 * Input: argv[1..] separated by NUL bytes (at most 64 arguments; argv[0] is
 * "promacct"). Checks: the result is one of the three documented ones, a
 * usage error names the problem in one line, an accepted configuration is
 * consistent (capture sources given, positive intervals and caps), and
 * config_free releases everything (LeakSanitizer). Parsing twice in one
 * process must give the same answer (getopt state is reset). --help and
 * --version print to stdout, which goes to /dev/null here. */
#include <math.h>
#include <unistd.h>

#include "promacct/config.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!freopen("/dev/null", "w", stdout))
		abort();
	return 0;
}

static enum config_result parse(int argc, char **argv, char *err, size_t errlen)
{
	struct config c;
	/* getopt permutes argv: parse a copy of the pointer array */
	char *copy[66];
	memcpy(copy, argv, (size_t)(argc + 1) * sizeof *argv);
	enum config_result r = config_parse(&c, argc, copy, err, errlen);
	FUZZ_CHECK(r == CONFIG_OK || r == CONFIG_EXIT_OK || r == CONFIG_USAGE, "result %d", (int)r);
	if (r == CONFIG_USAGE) {
		FUZZ_CHECK(err[0] && memchr(err, '\0', errlen), "usage error without a message");
		FUZZ_CHECK(!strchr(err, '\n'), "usage error over several lines: %s", err);
	}
	if (r == CONFIG_OK) {
		FUZZ_CHECK(c.ninterfaces + c.nreads > 0, "accepted without a capture source");
		FUZZ_CHECK(c.layout != NULL, "no histogram layout");
		FUZZ_CHECK(c.max_addresses > 0, "max addresses 0");
		FUZZ_CHECK(c.capture_threads >= 1 &&
		               c.capture_threads <= CONFIG_MAX_CAPTURE_THREADS,
		           "capture threads %d", c.capture_threads);
		FUZZ_CHECK(isfinite(c.push_interval) && c.push_interval > 0, "push interval %g",
		           c.push_interval);
		FUZZ_CHECK(isfinite(c.rw_interval) && c.rw_interval > 0, "rw interval %g",
		           c.rw_interval);
		FUZZ_CHECK(c.rw_min_backoff >= 0 && c.rw_min_backoff <= c.rw_max_backoff,
		           "backoff %g..%g", c.rw_min_backoff, c.rw_max_backoff);
		FUZZ_CHECK(isfinite(c.push_http.timeout) && c.push_http.timeout > 0 &&
		               isfinite(c.rw_http.timeout) && c.rw_http.timeout > 0,
		           "timeouts");
	}
	config_free(&c);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *buf = malloc(size + 1);
	char *argv[66];
	int argc = 0;
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = "promacct";
	for (size_t i = 0; i < size && argc < 65;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;
	char err1[512], err2[512];
	enum config_result r1 = parse(argc, argv, err1, sizeof err1);
	enum config_result r2 = parse(argc, argv, err2, sizeof err2);
	FUZZ_CHECK(r1 == r2, "second parse answered %d, first %d", (int)r2, (int)r1);
	if (r1 == CONFIG_USAGE)
		FUZZ_CHECK(!strcmp(err1, err2), "second parse: '%s', first: '%s'", err2, err1);
	free(buf);
	return 0;
}
