/* DESIGN: the strict YAML reader shared by the configuration files.
 *
 * A thin layer over libyaml's event parser: one current event, errors with
 * FILE:LINE:COLUMN, anchors and aliases refused (no "billion laughs"), file
 * size bounded, only a regular file read (opened without blocking: a FIFO
 * named by mistake is an error, not a hang). Memory is one event; callers build what they need as
 * they read. Used on one thread at a time per reader; no shared state. */
#include "promacct/yaml_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int yaml_reader_fail(struct yaml_reader *r, yaml_mark_t m, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(r->err, r->errlen, "%s:%zu:%zu: %s", r->path, m.line + 1, m.column + 1, what);
	return -EINVAL;
}

/* Line and column (0-based) of a byte offset of the file. */
static yaml_mark_t mark_of_offset(const char *path, size_t offset)
{
	yaml_mark_t m = {offset, 0, 0};
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return m;
	for (size_t i = 0; i < offset; i++) {
		int c = getc(fp);
		if (c == EOF)
			break;
		if (c == '\n') {
			m.line++;
			m.column = 0;
		} else if ((c & 0xc0) != 0x80) { /* columns count characters */
			m.column++;
		}
	}
	fclose(fp);
	return m;
}

int yaml_reader_next(struct yaml_reader *r)
{
	if (r->have_ev)
		yaml_event_delete(&r->ev);
	r->have_ev = 0;
	if (!yaml_parser_parse(&r->parser, &r->ev)) {
		yaml_mark_t m = r->parser.problem_mark;
		if (r->parser.error == YAML_MEMORY_ERROR) {
			snprintf(r->err, r->errlen, "out of memory");
			return -ENOMEM;
		}
		if (r->parser.error == YAML_READER_ERROR) /* bad bytes: no mark, an offset */
			m = mark_of_offset(r->path, r->parser.problem_offset);
		/* in a flow mapping, an unquoted IPv6 address ending in "::" */
		int colon = r->parser.problem && strstr(r->parser.problem, "unexpected ':'");
		return yaml_reader_fail(r, m, "invalid YAML: %s%s%s%s",
		                        r->parser.problem ? r->parser.problem : "syntax error",
		                        r->parser.context ? " " : "",
		                        r->parser.context ? r->parser.context : "",
		                        colon ? " (quote a value that holds ':', e.g. an IPv6 "
		                                "address: \"2001:db8::\")"
		                              : "");
	}
	r->have_ev = 1;
	if (r->ev.type == YAML_ALIAS_EVENT)
		return yaml_reader_fail(r, r->ev.start_mark, "aliases (*name) are not supported");
	if ((r->ev.type == YAML_SCALAR_EVENT && r->ev.data.scalar.anchor) ||
	    (r->ev.type == YAML_SEQUENCE_START_EVENT && r->ev.data.sequence_start.anchor) ||
	    (r->ev.type == YAML_MAPPING_START_EVENT && r->ev.data.mapping_start.anchor))
		return yaml_reader_fail(r, r->ev.start_mark, "anchors (&name) are not supported");
	return 0;
}

const char *yaml_reader_scalar(const struct yaml_reader *r)
{
	return (const char *)r->ev.data.scalar.value;
}

int yaml_reader_is_null(const struct yaml_reader *r)
{
	if (r->ev.type != YAML_SCALAR_EVENT || r->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	const char *v = yaml_reader_scalar(r);
	return !*v || !strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "Null") ||
	       !strcmp(v, "NULL");
}

const char *yaml_reader_what(const struct yaml_reader *r)
{
	switch (r->ev.type) {
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_SCALAR_EVENT:
		return "a scalar";
	default:
		return "something else";
	}
}

int yaml_reader_next_key(struct yaml_reader *r, const char *what)
{
	int rc = yaml_reader_next(r);
	if (rc)
		return rc;
	if (r->ev.type == YAML_MAPPING_END_EVENT)
		return 1;
	return yaml_reader_expect_scalar(r, what);
}

int yaml_reader_expect_scalar(struct yaml_reader *r, const char *what)
{
	if (r->ev.type != YAML_SCALAR_EVENT)
		return yaml_reader_fail(r, r->ev.start_mark, "%s must be a scalar, got %s", what,
		                        yaml_reader_what(r));
	return 0;
}

int yaml_reader_expect_mapping(struct yaml_reader *r, const char *what)
{
	if (r->ev.type != YAML_MAPPING_START_EVENT)
		return yaml_reader_fail(r, r->ev.start_mark, "%s must be a mapping, got %s", what,
		                        yaml_reader_what(r));
	return 0;
}

static const char *file_kind(mode_t m)
{
	return S_ISDIR(m)    ? "a directory"
	       : S_ISFIFO(m) ? "a FIFO"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	                     : "not a file";
}

/* Opens path (at most max_bytes) and positions on the root node (the
 * current event). Returns 0 (*empty set when the file holds no document or
 * a null one), or negative errno with err set. Close in every case. */
static int reader_open(struct yaml_reader *r, const char *path, size_t max_bytes, int *empty,
                       char *err, size_t errlen)
{
	struct stat st;
	int rc;

	memset(r, 0, sizeof *r);
	r->path = path;
	r->err = err;
	r->errlen = errlen;
	*empty = 0;
	/* Without blocking: open() of a FIFO waits for a writer, and this runs
	 * on the main thread (a reload would hang it, and the shutdown with
	 * it). Only a regular file is read (a symbolic link to one is fine). */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file (%s)", path, file_kind(st.st_mode));
		close(fd);
		return -EINVAL;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || !(r->fp = fdopen(fd, "rb"))) {
		rc = -errno;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		close(fd);
		return rc;
	}
	if ((uintmax_t)st.st_size > max_bytes) {
		snprintf(err, errlen, "%s: larger than %zu bytes", path, max_bytes);
		return -EFBIG;
	}
	if (!yaml_parser_initialize(&r->parser)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r->parser_ok = 1;
	yaml_parser_set_input_file(&r->parser, r->fp);
	if ((rc = yaml_reader_next(r)))
		return rc;
	if (r->ev.type != YAML_STREAM_START_EVENT)
		return yaml_reader_fail(r, r->ev.start_mark, "not a YAML stream");
	if ((rc = yaml_reader_next(r)))
		return rc;
	if (r->ev.type == YAML_STREAM_END_EVENT) {
		*empty = 1; /* an empty file */
		return 0;
	}
	if ((rc = yaml_reader_next(r))) /* the root node */
		return rc;
	*empty = yaml_reader_is_null(r);
	return 0;
}

/* After the root node: checks the file holds nothing more. */
static int reader_finish(struct yaml_reader *r)
{
	int rc;
	if (r->have_ev && r->ev.type == YAML_STREAM_END_EVENT)
		return 0;               /* the file was empty */
	if ((rc = yaml_reader_next(r))) /* DOCUMENT_END */
		return rc;
	if ((rc = yaml_reader_next(r)))
		return rc;
	if (r->ev.type != YAML_STREAM_END_EVENT)
		return yaml_reader_fail(r, r->ev.start_mark, "more than one YAML document");
	if (ferror(r->fp)) {
		snprintf(r->err, r->errlen, "%s: read error", r->path);
		return -EIO;
	}
	return 0;
}

static void reader_close(struct yaml_reader *r)
{
	if (r->have_ev)
		yaml_event_delete(&r->ev);
	r->have_ev = 0;
	if (r->parser_ok)
		yaml_parser_delete(&r->parser);
	r->parser_ok = 0;
	if (r->fp)
		fclose(r->fp);
	r->fp = NULL;
}

int yaml_reader_read(struct yaml_reader *r, const char *path, size_t max_bytes,
                     int (*root)(void *arg), void *arg, char *err, size_t errlen)
{
	int empty = 0;
	int rc = reader_open(r, path, max_bytes, &empty, err, errlen);
	if (!rc && !empty)
		rc = root(arg);
	if (!rc)
		rc = reader_finish(r);
	reader_close(r);
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return rc;
}
