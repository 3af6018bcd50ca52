/* A strict checker of the Prometheus text exposition format 0.0.4, as the
 * fuzz targets expect promacct to write it (stricter than Prometheus' own
 * parser where promacct promises more):
 *  - every line ends with \n, no empty lines, no NUL bytes;
 *  - "# HELP name text" and "# TYPE name type" at most once per family,
 *    TYPE before the family's samples; HELP text escapes only \\ and \n;
 *  - sample lines: valid metric name, optional {labels}, one space, a value
 *    (a float strtod reads whole, or +Inf, -Inf, NaN), nothing after;
 *  - labels: valid names, no name twice, values in double quotes with only
 *    \\, \" and \n escapes, valid UTF-8; le only on _bucket samples;
 *  - a family's lines are contiguous (a family never comes back);
 *  - histograms: samples are name_bucket (with le), name_sum, name_count;
 *    per series the buckets are non-decreasing with rising le, the last is
 *    le="+Inf" and equals _count; no series twice.
 * text_check() returns NULL or a static description of the first problem
 * (line number in *line). */
#ifndef PROMACCT_FUZZ_TEXTCHECK_H
#define PROMACCT_FUZZ_TEXTCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Valid UTF-8 without overlong forms, surrogates or code points > 10FFFF. */
static inline int tc_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t len;
		unsigned cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (i + len > n)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += len;
	}
	return 1;
}

static inline int tc_name_char(int c, int first, int colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

/* Length of a valid (metric or label) name at s, 0 if none. */
static inline size_t tc_name(const char *s, int colon)
{
	size_t i = 0;
	while (tc_name_char((unsigned char)s[i], i == 0, colon))
		i++;
	return i;
}

/* A quoted label value starting at s (at the opening quote): returns the
 * length including both quotes, 0 when invalid. The unescaped value goes to
 * out (cap bytes, cut silently: used for le only). */
static inline size_t tc_quoted(const char *s, const char *end, char *out, size_t cap)
{
	if (s >= end || *s != '"')
		return 0;
	const char *p = s + 1;
	size_t o = 0;
	const char *raw_start = p;
	while (p < end && *p != '"') {
		if (*p == '\\') {
			if (p + 1 >= end || (p[1] != '\\' && p[1] != '"' && p[1] != 'n'))
				return 0;
			p += 2;
			if (o + 1 < cap)
				out[o++] = p[-1] == 'n' ? '\n' : p[-1];
			continue;
		}
		if (*p == '\n')
			return 0;
		if (o + 1 < cap)
			out[o++] = *p;
		p++;
	}
	if (p >= end)
		return 0;
	if (!tc_utf8_valid((const unsigned char *)raw_start, (size_t)(p - raw_start)))
		return 0;
	if (cap)
		out[o < cap ? o : cap - 1] = '\0';
	return (size_t)(p + 1 - s);
}

static inline int tc_value(const char *s, size_t n, double *v)
{
	char tmp[64];
	if (n == 0 || n >= sizeof tmp)
		return 0;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (!strcmp(tmp, "+Inf")) {
		*v = INFINITY;
		return 1;
	}
	if (!strcmp(tmp, "-Inf")) {
		*v = -INFINITY;
		return 1;
	}
	if (!strcmp(tmp, "NaN")) {
		*v = NAN;
		return 1;
	}
	/* strtod takes "inf", "nan", hex and leading blanks: not the format */
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789+-.eE", tmp[i]))
			return 0;
	char *e;
	*v = strtod(tmp, &e);
	return *e == '\0';
}

struct tc_family {
	char name[256];
	int type; /* 0 none, 1 counter, 2 gauge, 3 histogram, 4 summary, 5 untyped */
	int help, samples;
};

/* One histogram series being read: its label text without le. */
struct tc_hist {
	char key[8192];
	double prev_le, prev_count;
	int nbuckets, inf_seen, have_count, have_sum;
	double inf_count;
};

struct tc_state {
	char **done; /* families already left */
	size_t ndone;
	char **series; /* series keys of the current family */
	size_t nseries;
	struct tc_family cur;
	struct tc_hist h;
};

static inline void tc_strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static inline int tc_strs_has(char **v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i], s))
			return 1;
	return 0;
}

static inline void tc_strs_add(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 1) * sizeof **v);
	if (!nv || !(nv[*n] = strdup(s)))
		abort();
	*v = nv;
	(*n)++;
}

/* Ends the histogram series in st->h; NULL or the problem. */
static inline const char *tc_hist_end(struct tc_state *st)
{
	if (!st->h.key[0] && !st->h.nbuckets && !st->h.have_count && !st->h.have_sum)
		return NULL;
	if (!st->h.inf_seen)
		return "histogram series without a le=\"+Inf\" bucket";
	if (!st->h.have_count || !st->h.have_sum)
		return "histogram series without _sum or _count";
	memset(&st->h, 0, sizeof st->h);
	return NULL;
}

static inline const char *tc_enter_family(struct tc_state *st, const char *name, size_t n)
{
	if (n >= sizeof st->cur.name)
		return "metric name too long for the checker";
	if (strlen(st->cur.name) == n && !memcmp(st->cur.name, name, n))
		return NULL;
	const char *p = tc_hist_end(st);
	if (p)
		return p;
	if (st->cur.name[0])
		tc_strs_add(&st->done, &st->ndone, st->cur.name);
	tc_strs_free(st->series, st->nseries);
	st->series = NULL;
	st->nseries = 0;
	memset(&st->cur, 0, sizeof st->cur);
	memcpy(st->cur.name, name, n);
	st->cur.name[n] = '\0';
	if (tc_strs_has(st->done, st->ndone, st->cur.name))
		return "family comes back after other families";
	return NULL;
}

static inline const char *tc_comment(struct tc_state *st, const char *s, const char *end)
{
	int help = 0;
	if ((size_t)(end - s) > 7 && !memcmp(s, "# HELP ", 7))
		help = 1;
	else if ((size_t)(end - s) > 7 && !memcmp(s, "# TYPE ", 7))
		help = 0;
	else
		return "comment that is neither HELP nor TYPE";
	s += 7;
	size_t n = tc_name(s, 1);
	if (!n)
		return "invalid metric name in HELP/TYPE";
	const char *p = tc_enter_family(st, s, n);
	if (p)
		return p;
	s += n;
	if (s >= end || *s != ' ')
		return "HELP/TYPE without text";
	s++;
	if (help) {
		if (st->cur.help++)
			return "HELP twice";
		if (st->cur.samples)
			return "HELP after samples";
		for (; s < end; s++)
			if (*s == '\\' && (s + 1 >= end || (s[1] != '\\' && s[1] != 'n')))
				return "invalid escape in HELP";
			else if (*s == '\\')
				s++;
		return NULL;
	}
	static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
	if (st->cur.type)
		return "TYPE twice";
	if (st->cur.samples)
		return "TYPE after samples";
	for (int i = 0; i < 5; i++)
		if ((size_t)(end - s) == strlen(types[i]) &&
		    !memcmp(s, types[i], (size_t)(end - s)))
			st->cur.type = i + 1;
	return st->cur.type ? NULL : "unknown TYPE";
}

static inline const char *tc_sample(struct tc_state *st, const char *s, const char *end)
{
	size_t n = tc_name(s, 1);
	if (!n)
		return "invalid metric name";
	const char *name = s;
	const char *suffix = "";
	size_t fam_len = n;
	if (st->cur.type == 3) {
		static const char *const sfx[] = {"_bucket", "_sum", "_count"};
		for (int i = 0; i < 3; i++) {
			size_t l = strlen(sfx[i]);
			if (n > l && !memcmp(name + n - l, sfx[i], l) &&
			    strlen(st->cur.name) == n - l && !memcmp(st->cur.name, name, n - l)) {
				suffix = sfx[i];
				fam_len = n - l;
			}
		}
		if (!*suffix && strlen(st->cur.name) == n && !memcmp(st->cur.name, name, n))
			return "histogram sample without _bucket/_sum/_count";
	}
	const char *p = tc_enter_family(st, name, fam_len);
	if (p)
		return p;
	st->cur.samples++;
	s += n;
	char key[8192];
	size_t klen = 0;
	char names[64][128];
	size_t nnames = 0;
	char le[64] = "";
	int has_le = 0;
	if (s < end && *s == '{') {
		s++;
		while (s < end && *s != '}') {
			size_t ln = tc_name(s, 0);
			if (!ln)
				return "invalid label name";
			if (ln >= sizeof names[0] || nnames == 64)
				return "label set too large for the checker";
			for (size_t i = 0; i < nnames; i++)
				if (strlen(names[i]) == ln && !memcmp(names[i], s, ln))
					return "label name twice in one series";
			memcpy(names[nnames], s, ln);
			names[nnames++][ln] = '\0';
			int is_le = ln == 2 && !memcmp(s, "le", 2);
			const char *lname = s;
			s += ln;
			if (s >= end || *s != '=')
				return "label without =";
			s++;
			char val[64];
			size_t q = tc_quoted(s, end, val, sizeof val);
			if (!q)
				return "invalid quoted label value (escape, newline or UTF-8)";
			if (is_le) {
				has_le = 1;
				memcpy(le, val, sizeof le);
			} else {
				size_t add = ln + 1 + q + 1;
				if (klen + add >= sizeof key)
					return "series too long for the checker";
				memcpy(key + klen, lname, ln + 1 + q);
				klen += ln + 1 + q;
				key[klen++] = ',';
			}
			s += q;
			if (s < end && *s == ',')
				s++;
			else if (s >= end || *s != '}')
				return "labels not separated by ,";
		}
		if (s >= end)
			return "unterminated label set";
		s++;
	}
	key[klen] = '\0';
	if (s >= end || *s != ' ')
		return "no space before the value";
	s++;
	double v;
	if (!tc_value(s, (size_t)(end - s), &v))
		return "invalid sample value (or trailing text)";
	if (has_le && strcmp(suffix, "_bucket"))
		return "le label outside a histogram bucket";
	if (st->cur.type == 3) {
		if (strcmp(st->h.key, key)) {
			const char *e = tc_hist_end(st);
			if (e)
				return e;
			snprintf(st->h.key, sizeof st->h.key, "%s", key);
		}
		if (!strcmp(suffix, "_bucket")) {
			double bound;
			if (!has_le || !tc_value(le, strlen(le), &bound) || isnan(bound))
				return "bucket without a valid le";
			if (st->h.inf_seen || st->h.have_sum || st->h.have_count)
				return "bucket after +Inf, _sum or _count";
			if (st->h.nbuckets && bound <= st->h.prev_le)
				return "le not increasing";
			if (st->h.nbuckets && v < st->h.prev_count)
				return "bucket counts not cumulative";
			if (v < 0 || v != floor(v))
				return "bucket count not a non-negative integer";
			st->h.prev_le = bound;
			st->h.prev_count = v;
			st->h.nbuckets++;
			if (isinf(bound)) {
				st->h.inf_seen = 1;
				st->h.inf_count = v;
			}
		} else if (!strcmp(suffix, "_count")) {
			if (st->h.have_count++)
				return "_count twice";
			if (!st->h.inf_seen || v != st->h.inf_count)
				return "_count differs from the +Inf bucket";
		} else {
			if (st->h.have_sum++)
				return "_sum twice";
		}
	}
	/* no series twice (name + labels incl. le) */
	char full[8192 + 512];
	snprintf(full, sizeof full, "%.*s{%s}%s", (int)n, name, key, le);
	if (tc_strs_has(st->series, st->nseries, full))
		return "series twice";
	tc_strs_add(&st->series, &st->nseries, full);
	return NULL;
}

/* A range's rendered label text (,name="value"...): NULL or the problem. */
static inline const char *tc_label_text(const char *t)
{
	const char *end = t + strlen(t);
	while (t < end) {
		if (*t != ',')
			return "label text does not start with ,";
		t++;
		size_t n = tc_name(t, 0);
		if (!n)
			return "invalid label name";
		t += n;
		if (*t != '=')
			return "no = after the label name";
		t++;
		char v[8];
		size_t q = tc_quoted(t, end, v, sizeof v);
		if (!q)
			return "label value not strictly escaped UTF-8";
		t += q;
	}
	return NULL;
}

static inline const char *text_check(const char *text, size_t len, size_t *line_no)
{
	struct tc_state st;
	const char *problem = NULL;
	memset(&st, 0, sizeof st);
	*line_no = 0;
	if (len && text[len - 1] != '\n')
		return "does not end with a newline";
	const char *s = text, *end = text + len;
	while (s < end && !problem) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		(*line_no)++;
		if (nl == s)
			problem = "empty line";
		else if (memchr(s, '\0', (size_t)(nl - s)))
			problem = "NUL in a line";
		else if (*s == '#')
			problem = tc_comment(&st, s, nl);
		else
			problem = tc_sample(&st, s, nl);
		s = nl + 1;
	}
	if (!problem)
		problem = tc_hist_end(&st);
	tc_strs_free(st.done, st.ndone);
	tc_strs_free(st.series, st.nseries);
	return problem;
}

#endif
