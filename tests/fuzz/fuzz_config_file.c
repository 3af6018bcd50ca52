/* Fuzz target: the --config.file loader (YAML ranges, issue 8).
 *
 * Input: the file's bytes (given to config_file_load as /proc/self/fd/N of
 * a memfd). Checks: the result is 0 or a negative errno with error text
 * (it may quote a multi-line YAML scalar: config_parse and the logger make
 * it one line), content errors (-EINVAL) name the file; an accepted file's
 * ranges all add to a range set (config_file_add_ranges) that builds, with
 * valid, unreserved label names, UTF-8 label values (not empty, at most
 * LABELS_VALUE_MAX bytes), rollup prefixes inside their range, and a
 * rendered label
 * text the page can carry; config_file_free releases everything (LSan). */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "promacct/config_file.h"
#include "promacct/ranges.h"
#include "fuzz.h"
#include "textcheck.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = memfd_create("config_file", 0);
	if (fd < 0)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536)
		return 0;
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	struct config_file f;
	char err[1024];
	err[0] = '\0';
	int rc = config_file_load(path, &f, err, sizeof err);
	if (rc) {
		FUZZ_CHECK(rc < 0, "rc %d", rc);
		FUZZ_CHECK(err[0] && memchr(err, '\0', sizeof err), "no error text");
		if (rc == -EINVAL)
			FUZZ_CHECK(!strncmp(err, path, strlen(path)),
			           "error does not name the file: %s", err);
		config_file_free(&f);
		return 0;
	}
	for (size_t i = 0; i < f.n; i++) {
		const struct range_entry *e = &f.v[i].e;
		FUZZ_CHECK(e->family == 4 || e->family == 6, "family %u", e->family);
		FUZZ_CHECK(memcmp(e->first, e->last, 16) <= 0, "first after last");
		FUZZ_CHECK(e->nlabels <= f.max_labels, "max_labels %zu < %zu", f.max_labels,
		           e->nlabels);
		for (size_t k = 0; k < e->nlabels; k++) {
			FUZZ_CHECK(labels_name_valid(e->labels[k].name) &&
			               !labels_name_reserved(e->labels[k].name),
			           "label name '%s' accepted", e->labels[k].name);
			FUZZ_CHECK(labels_utf8_valid(e->labels[k].value), "label value not UTF-8");
			size_t vlen = strlen(e->labels[k].value);
			FUZZ_CHECK(vlen > 0 && vlen <= LABELS_VALUE_MAX, "label value of %zu bytes",
			           vlen);
		}
		if (e->granularity) { /* every rollup prefix inside the range */
			uint8_t pf[16], pl[16];
			FUZZ_CHECK(
			    !ranges_prefix_bounds(e->first, e->family, e->granularity, pf, pl),
			    "first not aligned to /%d", e->granularity);
			(void)ranges_prefix_bounds(e->last, e->family, e->granularity, pf, pl);
			FUZZ_CHECK(!memcmp(pl, e->last, 16), "last not aligned to /%d",
			           e->granularity);
		}
	}
	struct ranges r;
	ranges_init(&r);
	rc = config_file_add_ranges(&f, &r, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == -ENOMEM, "config_file_add_ranges: %d %s", rc, err);
	if (rc == 0) {
		FUZZ_CHECK(r.n == f.n, "%zu ranges added of %zu", r.n, f.n);
		FUZZ_CHECK(ranges_build(&r) == 0, "ranges_build");
		for (size_t i = 0; i < r.n; i++) {
			const char *problem = tc_label_text(r.v[i].text);
			FUZZ_CHECK(!problem, "range %zu label text %s: %s", i, r.v[i].text,
			           problem);
		}
	}
	ranges_free(&r);
	config_file_free(&f);
	return 0;
}
