/* DESIGN: small process-wide helpers (clocks, durations, secret files,
 * URLs shown without their secrets).
 * Stateless and thread-safe. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "promacct/common.h"

#define SECRET_MAX 65536 /* a password or token file larger than this is an error */

double time_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t time_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double time_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int duration_parse(const char *text, double *seconds)
{
	static const struct {
		const char *unit;
		double mult;
	} units[] = {{"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}};
	double total = 0;
	const char *p = text;

	if (!p || !*p)
		return -EINVAL;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (errno || end == p)
			return -EINVAL;
		p = end;
		size_t i;
		for (i = 0; i < ARRAY_LEN(units); i++) {
			size_t ul = strlen(units[i].unit);
			if (!strncmp(p, units[i].unit, ul) &&
			    !(ul == 1 && p[0] == 'm' && p[1] == 's')) {
				total += v * units[i].mult;
				p += ul;
				break;
			}
		}
		if (i == ARRAY_LEN(units))
			return -EINVAL;
	}
	*seconds = total;
	return 0;
}

void cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* The monotonic time `until` (finite) as the deadline of a timed wait. */
static struct timespec mono_timespec(double until)
{
	struct timespec ts;
	ts.tv_sec = (time_t)until;
	ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L)
		ts.tv_nsec = 999999999L;
	if (ts.tv_nsec < 0)
		ts.tv_nsec = 0;
	return ts;
}

void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, double until, const int *stop)
{
	struct timespec ts = mono_timespec(until);
	while (!(stop && *stop) && time_monotonic() < until &&
	       pthread_cond_timedwait(c, m, &ts) != ETIMEDOUT)
		;
}

int cond_wait_signal_until(pthread_cond_t *c, pthread_mutex_t *m, double until)
{
	if (isinf(until))
		return pthread_cond_wait(c, m);
	struct timespec ts = mono_timespec(until);
	return pthread_cond_timedwait(c, m, &ts);
}

double tick_next(double next, double interval, double now)
{
	do
		next += interval;
	while (next <= now);
	return next;
}

int file_read_secret(const char *path, char **out)
{
	int rc = 0;
	char *data = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	data = malloc(SECRET_MAX + 1);
	if (!data) {
		rc = -ENOMEM;
		goto out;
	}
	size_t n = fread(data, 1, SECRET_MAX + 1, f);
	if (ferror(f)) {
		rc = -EIO;
		goto out;
	}
	if (n > SECRET_MAX) {
		rc = -EFBIG;
		goto out;
	}
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	data[n] = '\0';
	*out = data;
	data = NULL;
out:
	free(data);
	fclose(f);
	return rc;
}

/* The parts of a URL that may hold secrets, each [start, end) or NULL. */
struct url_parts {
	const char *pw, *pw_end;         /* password of the user info; the whole
	                                  * user info when it has no ':' (a token
	                                  * as user name, or a percent-encoded
	                                  * "user%3Apassword") */
	const char *params, *params_end; /* path parameters from the first ';' */
	const char *query, *query_end;   /* after '?' */
	const char *frag;                /* '#' */
};

static void url_split(const char *url, struct url_parts *u)
{
	memset(u, 0, sizeof *u);
	const char *auth = strstr(url, "://");
	auth = auth ? auth + 3 : url;
	const char *auth_end = auth + strcspn(auth, "/?#");
	/* The user info ends at the last '@' of the authority. */
	const char *at = NULL;
	for (const char *p = auth; p < auth_end; p++)
		if (*p == '@')
			at = p;
	if (at && at > auth) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));
		u->pw = colon ? colon + 1 : auth;
		u->pw_end = at;
	}
	const char *q = auth_end + strcspn(auth_end, "?#");
	const char *semi = memchr(auth_end, ';', (size_t)(q - auth_end));
	if (semi) {
		u->params = semi + 1;
		u->params_end = q;
	}
	if (*q == '?') {
		u->query = q + 1;
		u->query_end = q + 1 + strcspn(q + 1, "#");
	}
	u->frag = strchr(q, '#');
}

int url_has_secret(const char *url)
{
	struct url_parts u;
	url_split(url, &u);
	return u.pw != NULL || u.params != NULL || u.query != NULL;
}

int url_redact(const char *url, char *out, size_t cap)
{
	struct url_parts u;
	url_split(url, &u);
	/* The secret parts in URL order, each replaced by its placeholder; the
	 * fragment and what follows it are dropped. */
	const struct {
		const char *start, *end, *shown;
	} cut[] = {
	    {u.pw, u.pw_end, "<secret>"},
	    {u.params, u.params_end, "<params>"},
	    {u.query, u.query_end, "<query>"},
	};
	const char *p = url, *end = u.frag ? u.frag : url + strlen(url);
	size_t n = 0;
	int over = 0;
	for (size_t i = 0; i <= ARRAY_LEN(cut); i++) {
		const char *upto = i < ARRAY_LEN(cut) ? cut[i].start : end;
		if (!upto)
			continue;
		int w = snprintf(out + n, cap > n ? cap - n : 0, "%.*s%s", (int)(upto - p), p,
		                 i < ARRAY_LEN(cut) ? cut[i].shown : "");
		if (w < 0 || (size_t)w >= (cap > n ? cap - n : 0)) {
			over = 1;
			break;
		}
		n += (size_t)w;
		if (i < ARRAY_LEN(cut))
			p = cut[i].end;
	}
	if (over) {
		snprintf(out, cap, "%s", "<url too long>");
		return -ENOSPC;
	}
	return 0;
}
