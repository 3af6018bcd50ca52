/* DESIGN: logfmt (or JSON-lines) logging to stderr.
 *
 * Any thread may log. A line is formatted into a stack buffer and written
 * with one write(2), so lines from different threads never interleave. The
 * level is set once at start-up, before threads exist. */
#include "promacct/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_LOGFMT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int log_set_level(const char *name)
{
	for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (!strcmp(name, level_names[i])) {
			min_level = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

void log_set_level_value(enum log_level level)
{
	min_level = level;
}

int log_set_format(const char *name)
{
	if (!strcmp(name, "logfmt"))
		format = LOG_LOGFMT;
	else if (!strcmp(name, "json"))
		format = LOG_JSON;
	else
		return -EINVAL;
	return 0;
}

const char *log_quote(char *dst, size_t cap, const char *src, size_t len)
{
	size_t o = 0;
	if (cap < 8) {
		if (cap)
			dst[0] = '\0';
		return dst;
	}
	dst[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)src[i];
		char esc[8];
		size_t el;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			el = 2;
		} else if (c == '\n') {
			memcpy(esc, "\\n", 2);
			el = 2;
		} else if (c < 0x20 || c == 0x7f) {
			el = (size_t)snprintf(esc, sizeof esc, "\\x%02x", c);
		} else {
			esc[0] = (char)c;
			el = 1;
		}
		if (o + el + 5 > cap) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, esc, el);
		o += el;
	}
	dst[o++] = '"';
	dst[o] = '\0';
	return dst;
}

void log_write(enum log_level level, const char *msg, const char *kv, ...)
{
	if (level < min_level)
		return;
	char line[LOG_LINE_MAX];
	char ts[40];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t tl = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + tl, sizeof ts - tl, ".%03ldZ", now.tv_nsec / 1000000);

	char qmsg[1024];
	log_quote(qmsg, sizeof qmsg, msg, strlen(msg));
	char kvs[LOG_LINE_MAX];
	kvs[0] = '\0';
	if (kv && *kv) {
		va_list ap;
		va_start(ap, kv);
		vsnprintf(kvs, sizeof kvs, kv, ap);
		va_end(ap);
	}
	int n;
	if (format == LOG_JSON) {
		/* key=value pairs become JSON members; values were quoted by
		 * the caller where needed, bare tokens are quoted here. */
		n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":%s", ts,
		             level_names[level], qmsg);
		const char *p = kvs;
		while (*p && n > 0 && (size_t)n < sizeof line) {
			while (*p == ' ')
				p++;
			const char *eq = strchr(p, '=');
			if (!eq)
				break;
			const char *v = eq + 1, *ve;
			if (*v == '"') {
				ve = v + 1;
				while (*ve && *ve != '"')
					ve += (*ve == '\\' && ve[1]) ? 2 : 1;
				if (*ve)
					ve++;
				n += snprintf(line + n, sizeof line - (size_t)n, ",\"%.*s\":%.*s",
				              (int)(eq - p), p, (int)(ve - v), v);
			} else {
				ve = v + strcspn(v, " ");
				n += snprintf(line + n, sizeof line - (size_t)n,
				              ",\"%.*s\":\"%.*s\"", (int)(eq - p), p, (int)(ve - v),
				              v);
			}
			p = ve;
		}
		if (n > 0 && (size_t)n < sizeof line)
			n += snprintf(line + n, sizeof line - (size_t)n, "}\n");
	} else {
		n = snprintf(line, sizeof line, "ts=%s level=%s msg=%s%s%s\n", ts,
		             level_names[level], qmsg, kvs[0] ? " " : "", kvs);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line) {
		n = sizeof line - 1;
		line[n - 1] = '\n';
	}
	ssize_t w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
}
