/* DESIGN: the YAML ranges file (--config.file, issue 8), parsed with
 * libyaml's event API.
 *
 * Runs on the thread that loads it (main at start-up, the reload path
 * later); no shared state. Events are consumed by a small recursive-descent
 * reader, so memory is the result plus one event, never a document tree (a
 * tree of 100,000 ranges would cost ~100 MB); anchors and aliases are
 * refused, which also rules out "billion laughs" expansion. Every problem is
 * reported as FILE:LINE:COLUMN (1-based, where the offending node starts)
 * and the whole load fails: a file is applied completely or not at all.
 * Checks: unknown keys, a range with both or neither of prefix and
 * first/last, bad addresses and prefixes (host bits set), IPv4 mixed with
 * IPv6, first after last, label names invalid, reserved or repeated, label
 * values null, empty, longer than LABELS_VALUE_MAX or not UTF-8, more range
 * labels than LABELS_MAX leaves, granularity outside 1-32 / 1-128, shorter
 * than the prefix or (first/last) with a rollup prefix that is not wholly
 * inside the range, numbers with leading zeros, max_addresses not a
 * positive integer. An address YAML cut at a ':' (unquoted IPv6 ending in
 * "::") gets a hint to quote it. The file must be a regular file
 * (yaml_reader: a FIFO is an error, never a blocked open). */
#include "promacct/config_file.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "promacct/log.h"
#include "promacct/yaml_reader.h"

struct loader {
	struct yaml_reader y;
	struct config_file *out;
	size_t cap;
	int root_seen; /* the file holds a document that is not null */
};

#define fail_at(l, m, ...)     yaml_reader_fail(&(l)->y, m, __VA_ARGS__)
#define next(l)                yaml_reader_next(&(l)->y)
#define scalar(l)              yaml_reader_scalar(&(l)->y)
#define is_null(l)             yaml_reader_is_null(&(l)->y)
#define expect_scalar(l, what) yaml_reader_expect_scalar(&(l)->y, what)
#define EV(l)                  ((l)->y.ev)

/* Strict unsigned decimal within [min, max], without leading zeros (YAML
 * 1.1 reads 010 as octal 8; Prometheus and iproute2 write /8, not /08). */
static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
	unsigned long long v = 0;
	if (!*s || (s[0] == '0' && s[1]))
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (max - (unsigned long long)(*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	if (v < min)
		return -ERANGE;
	*out = v;
	return 0;
}

struct range_draft {
	struct config_file_range r;
	struct label *labels;
	size_t nlabels;
	int has_prefix, has_first, has_last, has_gran, has_max;
	int prefix_len;
	uint8_t first_family, last_family;
	yaml_mark_t prefix_mark, first_mark, last_mark, gran_mark;
};

static void draft_free(struct range_draft *d)
{
	labels_free(d->labels, d->nlabels);
	free(d->labels);
	d->labels = NULL;
	d->nlabels = 0;
}

/* What is wrong with the current event as a label value, or NULL. An
 * empty value is refused: Prometheus reads a label with an empty value as
 * no label at all, so b="" would silently be another label set. */
static const char *label_value_problem(struct loader *l, char *tmp, size_t tmplen)
{
	if (is_null(l))
		return "has a null value (an empty label is the same as no label in "
		       "Prometheus: give a value, quoted if it is the word null, or leave the "
		       "label out)";
	const char *v = scalar(l);
	size_t len = EV(l).data.scalar.length;
	if (!len)
		return "has an empty value (an empty label is the same as no label in "
		       "Prometheus: give a value or leave the label out)";
	if (len > LABELS_VALUE_MAX) {
		snprintf(tmp, tmplen, "has a value longer than %d bytes (%zu)", LABELS_VALUE_MAX,
		         len);
		return tmp;
	}
	if (strlen(v) != len)
		return "has a value holding a NUL character";
	if (!labels_utf8_valid(v))
		return "has a value that is not valid UTF-8";
	return NULL;
}

static int parse_labels(struct loader *l, struct range_draft *d)
{
	int rc;
	if (is_null(l))
		return 0;
	if (EV(l).type != YAML_MAPPING_START_EVENT)
		return fail_at(l, EV(l).start_mark,
		               "labels must be a mapping of name: value, got %s",
		               yaml_reader_what(&l->y));
	while ((rc = yaml_reader_next_key(&l->y, "a label name")) == 0) {
		yaml_mark_t km = EV(l).start_mark;
		const char *name = scalar(l);
		if (!labels_name_valid(name))
			return fail_at(
			    l, km, "invalid label name '%s' (must match [a-zA-Z_][a-zA-Z0-9_]*)",
			    name);
		if (labels_name_reserved(name))
			return fail_at(
			    l, km,
			    "label name '%s' is reserved (ip, interface, protocol, le, job, "
			    "instance and names starting with __ are set by promacct)",
			    name);
		for (size_t i = 0; i < d->nlabels; i++)
			if (!strcmp(d->labels[i].name, name))
				return fail_at(l, km, "label '%s' given twice", name);
		if (d->nlabels >= LABELS_MAX - LABELS_FIXED)
			return fail_at(
			    l, km,
			    "more than %d labels on one range (a series carries at most %d "
			    "labels, %d of them set by promacct)",
			    LABELS_MAX - LABELS_FIXED, LABELS_MAX, LABELS_FIXED);
		char *n = strdup(name);
		if (!n)
			return -ENOMEM;
		if ((rc = next(l))) {
			free(n);
			return rc;
		}
		if (EV(l).type != YAML_SCALAR_EVENT) {
			rc = fail_at(l, EV(l).start_mark,
			             "the value of label '%s' must be a scalar", n);
			free(n);
			return rc;
		}
		char why[96];
		const char *problem = label_value_problem(l, why, sizeof why);
		if (problem) {
			rc = fail_at(l, EV(l).start_mark, "label '%s' %s", n, problem);
			free(n);
			return rc;
		}
		char *v = strdup(scalar(l));
		struct label *nl = v ? realloc(d->labels, (d->nlabels + 1) * sizeof *nl) : NULL;
		if (!nl) {
			free(n);
			free(v);
			return -ENOMEM;
		}
		d->labels = nl;
		d->labels[d->nlabels++] = (struct label){n, v};
	}
	return rc < 0 ? rc : 0;
}

/* For an address that did not parse: a hint when YAML cut an unquoted
 * IPv6 address at a ':' (2001:db8:: reads as the key '2001:db8:' of a
 * mapping), else "". */
static const char *ipv6_hint(struct loader *l, char *buf, size_t len)
{
	const char *t = scalar(l);
	size_t n = strlen(t);
	buf[0] = '\0';
	if (EV(l).data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n && t[n - 1] == ':')
		snprintf(buf, len, " (quote IPv6 addresses in YAML: \"%s:\")", t);
	return buf;
}

/* The value of prefix, first or last is a mapping: most likely an unquoted
 * IPv6 address ending in "::". */
static int fail_address_mapping(struct loader *l, const char *key)
{
	yaml_mark_t m = EV(l).start_mark;
	char example[96] = "2001:db8::";
	if (yaml_reader_next(&l->y) == 0 && EV(l).type == YAML_SCALAR_EVENT)
		snprintf(example, sizeof example, "%.80s:", scalar(l));
	return fail_at(l, m,
	               "%s must be an address, got a mapping (quote IPv6 addresses in YAML: "
	               "\"%s\")",
	               key, example);
}

static void addr_text(const uint8_t a[16], int family, char *buf, size_t len)
{
	if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static int parse_prefix(struct loader *l, struct range_draft *d)
{
	char hint[128];
	const char *text = scalar(l);
	const char *slash = strchr(text, '/');
	size_t alen = slash ? (size_t)(slash - text) : strlen(text);
	uint8_t fam = 0;
	if (ranges_parse_addr(text, alen, d->r.e.first, &fam))
		return fail_at(l, EV(l).start_mark,
		               "invalid prefix '%s' (expected ADDRESS/LENGTH, e.g. 198.51.100.0/24 "
		               "or 2001:db8::/48)%s",
		               text, ipv6_hint(l, hint, sizeof hint));
	int bits = fam == 4 ? 32 : 128;
	unsigned long long len = (unsigned long long)bits;
	if (slash && parse_uint(slash + 1, 0, (unsigned long long)bits, &len))
		return fail_at(
		    l, EV(l).start_mark,
		    "invalid prefix length in '%s' (0 to %d for IPv%d, no leading zeros)", text,
		    bits, fam);
	if (ranges_prefix_bounds(d->r.e.first, fam, (int)len, d->r.e.first, d->r.e.last))
		return fail_at(l, EV(l).start_mark,
		               "prefix '%s' has host bits set (the address must be the first of "
		               "the prefix)",
		               text);
	d->r.e.family = fam;
	d->prefix_len = (int)len;
	return 0;
}

static int parse_range(struct loader *l, struct range_draft *d)
{
	int rc;
	static const char *const keys = "prefix, first, last, labels, granularity, max_addresses";
	yaml_mark_t start = EV(l).start_mark;
	uint8_t last_addr[16];
	unsigned long long v;

	d->r.line = (unsigned)start.line + 1;
	d->r.column = (unsigned)start.column + 1;
	if (EV(l).type != YAML_MAPPING_START_EVENT)
		return fail_at(l, start, "a range must be a mapping (%s), got %s", keys,
		               yaml_reader_what(&l->y));
	while ((rc = yaml_reader_next_key(&l->y, "a key")) == 0) {
		yaml_mark_t km = EV(l).start_mark;
		char key[32];
		snprintf(key, sizeof key, "%s", scalar(l));
		int *seen = !strcmp(key, "prefix")          ? &d->has_prefix
		            : !strcmp(key, "first")         ? &d->has_first
		            : !strcmp(key, "last")          ? &d->has_last
		            : !strcmp(key, "granularity")   ? &d->has_gran
		            : !strcmp(key, "max_addresses") ? &d->has_max
		                                            : NULL;
		int is_labels = !strcmp(key, "labels");
		if (!seen && !is_labels)
			return fail_at(l, km, "unknown key '%s' in a range (known: %s)", scalar(l),
			               keys);
		if ((seen && *seen) || (is_labels && d->labels))
			return fail_at(l, km, "key '%s' given twice", key);
		if ((rc = next(l)))
			return rc;
		if (is_labels) {
			if ((rc = parse_labels(l, d)))
				return rc;
			continue;
		}
		*seen = 1;
		int is_addr =
		    !strcmp(key, "prefix") || !strcmp(key, "first") || !strcmp(key, "last");
		if (is_addr && EV(l).type == YAML_MAPPING_START_EVENT)
			return fail_address_mapping(l, key);
		if ((rc = expect_scalar(l, key)))
			return rc;
		yaml_mark_t vm = EV(l).start_mark;
		if (!strcmp(key, "prefix")) {
			d->prefix_mark = vm;
			if ((rc = parse_prefix(l, d)))
				return rc;
		} else if (!strcmp(key, "first") || !strcmp(key, "last")) {
			int first = key[0] == 'f';
			uint8_t *dst = first ? d->r.e.first : last_addr;
			uint8_t *fam = first ? &d->first_family : &d->last_family;
			char hint[128];
			if (ranges_parse_addr(scalar(l), strlen(scalar(l)), dst, fam))
				return fail_at(l, vm, "invalid address '%s' (IPv4 or IPv6)%s",
				               scalar(l), ipv6_hint(l, hint, sizeof hint));
			*(first ? &d->first_mark : &d->last_mark) = vm;
		} else if (!strcmp(key, "granularity")) {
			d->gran_mark = vm;
			if (parse_uint(scalar(l), 1, 128, &v))
				return fail_at(
				    l, vm,
				    "granularity must be a prefix length (1-32 for IPv4, "
				    "1-128 for IPv6, no leading zeros), got '%s'",
				    scalar(l));
			d->r.e.granularity = (int)v;
		} else { /* max_addresses */
			if (parse_uint(scalar(l), 1, UINT32_MAX, &v))
				return fail_at(
				    l, vm,
				    "max_addresses must be a whole number from 1 to %u (no "
				    "leading zeros), got '%s'",
				    (unsigned)UINT32_MAX, scalar(l));
			d->r.e.max_addresses = (size_t)v;
		}
	}
	if (rc < 0)
		return rc;

	/* The range as a whole. */
	if (d->has_prefix && (d->has_first || d->has_last))
		return fail_at(l, start, "give either prefix or first and last, not both");
	if (!d->has_prefix && !d->has_first && !d->has_last)
		return fail_at(l, start, "a range needs prefix, or first and last");
	if (!d->has_prefix && !(d->has_first && d->has_last))
		return fail_at(l, start, "'%s' needs '%s'", d->has_first ? "first" : "last",
		               d->has_first ? "last" : "first");
	if (!d->has_prefix) {
		if (d->first_family != d->last_family)
			return fail_at(l, d->last_mark, "first and last mix IPv4 and IPv6");
		d->r.e.family = d->first_family;
		memcpy(d->r.e.last, last_addr, 16);
		if (memcmp(d->r.e.first, d->r.e.last, 16) > 0)
			return fail_at(l, d->first_mark, "first is after last");
	}
	int bits = d->r.e.family == 4 ? 32 : 128;
	if (d->has_gran && d->r.e.granularity > bits)
		return fail_at(l, d->gran_mark, "granularity %d is outside 1-%d for IPv%d",
		               d->r.e.granularity, bits, d->r.e.family);
	if (d->has_gran && d->has_prefix && d->r.e.granularity < d->prefix_len)
		return fail_at(l, d->gran_mark,
		               "granularity /%d is shorter than the prefix /%d (its rollups would "
		               "name addresses outside the range)",
		               d->r.e.granularity, d->prefix_len);
	if (d->has_gran && !d->has_prefix && d->r.e.granularity < bits) {
		/* the same rule for first/last: every rollup prefix lies inside
		 * the range, so first starts one and last ends one */
		uint8_t pf[16], pl[16];
		char a[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN];
		int g = d->r.e.granularity, fam = d->r.e.family;
		const char *which = NULL;
		if (ranges_prefix_bounds(d->r.e.first, fam, g, pf, pl)) {
			which = "first";
			addr_text(d->r.e.first, fam, a, sizeof a);
			addr_text(pf, fam, p, sizeof p);
		} else {
			(void)ranges_prefix_bounds(d->r.e.last, fam, g, pf, pl);
			if (memcmp(pl, d->r.e.last, 16)) {
				which = "last";
				addr_text(d->r.e.last, fam, a, sizeof a);
				addr_text(pl, fam, p, sizeof p);
			}
		}
		if (which)
			return fail_at(
			    l, d->gran_mark,
			    "granularity /%d does not fit the range: %s %s is not the %s "
			    "address of its /%d (%s is; its rollups would name addresses "
			    "outside the range)",
			    g, which, a, which, g, p);
	}
	if (d->r.e.granularity == bits)
		d->r.e.granularity = 0; /* per address, as ranges.h writes it */
	return 0;
}

static int push_range(struct loader *l, struct range_draft *d)
{
	struct config_file *f = l->out;
	if (f->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct config_file_range *nv = realloc(f->v, ncap * sizeof *nv);
		if (!nv)
			return -ENOMEM;
		f->v = nv;
		l->cap = ncap;
	}
	d->r.e.labels = d->labels;
	d->r.e.nlabels = d->nlabels;
	f->v[f->n++] = d->r;
	if (d->nlabels > f->max_labels)
		f->max_labels = d->nlabels;
	d->labels = NULL; /* owned by f now */
	d->nlabels = 0;
	return 0;
}

static int parse_ranges(struct loader *l)
{
	int rc;
	if (is_null(l))
		return 0;
	if (EV(l).type != YAML_SEQUENCE_START_EVENT)
		return fail_at(l, EV(l).start_mark, "ranges must be a list, got %s",
		               yaml_reader_what(&l->y));
	for (;;) {
		if ((rc = next(l)))
			return rc;
		if (EV(l).type == YAML_SEQUENCE_END_EVENT)
			return 0;
		struct range_draft d;
		memset(&d, 0, sizeof d);
		rc = parse_range(l, &d);
		if (!rc)
			rc = push_range(l, &d);
		draft_free(&d);
		if (rc)
			return rc;
	}
}

static int parse_root(void *arg)
{
	struct loader *l = arg;
	int rc, seen_ranges = 0;
	l->root_seen = 1;
	if (EV(l).type != YAML_MAPPING_START_EVENT)
		return fail_at(l, EV(l).start_mark, "the file must be a mapping with key 'ranges'");
	while ((rc = yaml_reader_next_key(&l->y, "a key")) == 0) {
		if (strcmp(scalar(l), "ranges"))
			return fail_at(l, EV(l).start_mark, "unknown key '%s' (known: ranges)",
			               scalar(l));
		if (seen_ranges++)
			return fail_at(l, EV(l).start_mark, "key 'ranges' given twice");
		if ((rc = next(l)) || (rc = parse_ranges(l)))
			return rc;
	}
	return rc < 0 ? rc : 0;
}

int config_file_load(const char *path, struct config_file *out, char *err, size_t errlen)
{
	struct loader l;
	double t0 = time_monotonic();

	memset(out, 0, sizeof *out);
	memset(&l, 0, sizeof l);
	l.out = out;
	out->path = strdup(path);
	if (!out->path) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = yaml_reader_read(&l.y, path, CONFIG_FILE_MAX_BYTES, parse_root, &l, err, errlen);
	if (!rc && !l.root_seen) {
		/* an empty file is no configuration of "no ranges": it is what a
		 * reload sees of a file truncated to be written again */
		snprintf(err, errlen,
		         "%s: no configuration in it (an empty file, or a null document); "
		         "'ranges: []' configures no ranges",
		         path);
		rc = -EINVAL;
	}
	if (rc) {
		config_file_free(out);
		return rc;
	}
	log_debug("config file loaded", "file=%s ranges=%zu seconds=%.3f", path, out->n,
	          time_monotonic() - t0);
	return 0;
}

int config_file_add_ranges(const struct config_file *f, struct ranges *r, char *err, size_t errlen)
{
	char e[256];
	for (size_t i = 0; i < f->n; i++) {
		int rc = ranges_add_entry(r, &f->v[i].e, e, sizeof e);
		if (rc) {
			snprintf(err, errlen, "%s:%u:%u: %s", f->path, f->v[i].line, f->v[i].column,
			         rc == -ENOMEM ? "out of memory" : e);
			return rc;
		}
	}
	return 0;
}

void config_file_free(struct config_file *f)
{
	for (size_t i = 0; i < f->n; i++) {
		labels_free((struct label *)f->v[i].e.labels, f->v[i].e.nlabels);
		free((struct label *)f->v[i].e.labels);
	}
	free(f->v);
	free(f->path);
	memset(f, 0, sizeof *f);
}
