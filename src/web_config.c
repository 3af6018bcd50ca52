/* DESIGN: --web.config.file, the exporter-toolkit web configuration (TLS,
 * basic auth, response headers of the scrape page; issue 9).
 *
 * Loaded on the main thread at start-up with the strict YAML reader (errors
 * name FILE:LINE:COLUMN); the certificate, key and CA files are read then
 * (relative paths are relative to the config file, as in exporter-toolkit)
 * because libmicrohttpd takes them as memory. After loading, a web_config
 * is read-only and shared by the server's threads.
 *
 * Basic auth: bcrypt hashes checked with libcrypt (crypt_rn, libxcrypt knows
 * $2a$/$2b$/$2y$). bcrypt is slow by design (cost 10: ~50 ms), so a check
 * for an unknown user runs the same work against a real hash, and a
 * successful check is remembered for CACHE_SECONDS in a small table keyed
 * by a fast salted SHA-256-crypt of user, password and hash (the salt is
 * random per process; no plain password is kept). The table has its own
 * mutex, held only around table reads and writes, never during crypt. */
#include "promacct/web_config.h"

#include <crypt.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "promacct/log.h"
#include "promacct/yaml_reader.h"

#define WEB_CONFIG_MAX_BYTES (1u << 20)
#define CACHE_SLOTS          32
#define CACHE_SECONDS        300.0
#define KEY_MAX              128

struct loader {
	struct yaml_reader y;
	struct web_config *c;
	char dir[4096]; /* of the config file, for relative paths */
};

#define fail_at(l, m, ...) yaml_reader_fail(&(l)->y, m, __VA_ARGS__)
#define EV(l)              ((l)->y.ev)
#define scalar(l)          yaml_reader_scalar(&(l)->y)

static int next(struct loader *l)
{
	return yaml_reader_next(&l->y);
}

/* A mapping's next key: 0 on a key, 1 at its end, negative on error. */
#define next_key(l) yaml_reader_next_key(&(l)->y, "a key")

static int read_pem(struct loader *l, yaml_mark_t m, const char *what, const char *file, char **out)
{
	FILE *fp = fopen(file, "rb");
	if (!fp)
		return fail_at(l, m, "cannot read %s %s: %s", what, file, strerror(errno));
	char *buf = malloc(WEB_CONFIG_PEM_MAX + 1);
	if (!buf) {
		fclose(fp);
		return -ENOMEM;
	}
	size_t n = fread(buf, 1, WEB_CONFIG_PEM_MAX + 1, fp);
	int bad = ferror(fp);
	fclose(fp);
	if (bad || n > WEB_CONFIG_PEM_MAX) {
		free(buf);
		return fail_at(l, m, "%s %s: %s", what, file,
		               bad ? "read error" : "larger than 1 MiB");
	}
	buf[n] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		free(buf);
		return fail_at(l, m, "%s %s is not PEM (no -----BEGIN line)", what, file);
	}
	*out = buf;
	return 0;
}

/* The path as given, or relative to the config file's directory. */
static int take_path(struct loader *l, char **out)
{
	const char *v = scalar(l);
	if (!*v)
		return fail_at(l, EV(l).start_mark, "empty file name");
	size_t n = strlen(l->dir) + strlen(v) + 2;
	char *p = malloc(n);
	if (!p)
		return -ENOMEM;
	if (v[0] == '/' || !l->dir[0])
		snprintf(p, n, "%s", v);
	else
		snprintf(p, n, "%s/%s", l->dir, v);
	free(*out);
	*out = p;
	return 0;
}

static int parse_version(struct loader *l, enum web_tls_version *out)
{
	static const struct {
		const char *name;
		enum web_tls_version v;
	} versions[] = {
	    {"TLS10", WEB_TLS10}, {"TLS11", WEB_TLS11}, {"TLS12", WEB_TLS12}, {"TLS13", WEB_TLS13}};
	for (size_t i = 0; i < ARRAY_LEN(versions); i++)
		if (!strcmp(scalar(l), versions[i].name)) {
			*out = versions[i].v;
			return 0;
		}
	return fail_at(l, EV(l).start_mark, "unknown TLS version '%s' (TLS10, TLS11, TLS12, TLS13)",
	               scalar(l));
}

static int parse_client_auth(struct loader *l, enum web_client_auth *out)
{
	static const struct {
		const char *name;
		enum web_client_auth v;
	} types[] = {{"NoClientCert", WEB_CLIENT_NONE},
	             {"RequestClientCert", WEB_CLIENT_REQUEST},
	             {"RequireAnyClientCert", WEB_CLIENT_REQUIRE_ANY},
	             {"VerifyClientCertIfGiven", WEB_CLIENT_VERIFY_IF_GIVEN},
	             {"RequireAndVerifyClientCert", WEB_CLIENT_REQUIRE_AND_VERIFY}};
	for (size_t i = 0; i < ARRAY_LEN(types); i++)
		if (!strcmp(scalar(l), types[i].name)) {
			*out = types[i].v;
			return 0;
		}
	return fail_at(l, EV(l).start_mark,
	               "unknown client_auth_type '%s' (NoClientCert, RequestClientCert, "
	               "RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert)",
	               scalar(l));
}

static int parse_bool(struct loader *l, int *out)
{
	const char *v = scalar(l);
	if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "TRUE"))
		*out = 1;
	else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "FALSE"))
		*out = 0;
	else
		return fail_at(l, EV(l).start_mark, "expected true or false, got '%s'", v);
	return 0;
}

static int parse_tls(struct loader *l)
{
	struct web_config *c = l->c;
	yaml_mark_t start = EV(l).start_mark, cert_m = start, key_m = start, ca_m = start;
	int rc, any = 0, b;
	if (yaml_reader_is_null(&l->y))
		return 0;
	if ((rc = yaml_reader_expect_mapping(&l->y, "tls_server_config")))
		return rc;
	while ((rc = next_key(l)) == 0) {
		char key[64];
		yaml_mark_t km = EV(l).start_mark;
		snprintf(key, sizeof key, "%s", scalar(l));
		if ((rc = next(l)))
			return rc;
		if (strcmp(key, "cipher_suites") && strcmp(key, "curve_preferences") &&
		    (rc = yaml_reader_expect_scalar(&l->y, key)))
			return rc;
		yaml_mark_t vm = EV(l).start_mark;
		any = 1;
		if (!strcmp(key, "cert_file")) {
			cert_m = vm;
			rc = take_path(l, &c->cert_file);
		} else if (!strcmp(key, "key_file")) {
			key_m = vm;
			rc = take_path(l, &c->key_file);
		} else if (!strcmp(key, "client_ca_file")) {
			ca_m = vm;
			rc = take_path(l, &c->client_ca_file);
		} else if (!strcmp(key, "client_auth_type")) {
			rc = parse_client_auth(l, &c->client_auth);
		} else if (!strcmp(key, "min_version")) {
			rc = parse_version(l, &c->min_version);
		} else if (!strcmp(key, "max_version")) {
			rc = parse_version(l, &c->max_version);
		} else if (!strcmp(key, "prefer_server_cipher_suites")) {
			rc = parse_bool(l, &b); /* GnuTLS's priority string decides */
		} else if (!strcmp(key, "cipher_suites") || !strcmp(key, "curve_preferences") ||
		           !strcmp(key, "cert") || !strcmp(key, "key") ||
		           !strcmp(key, "client_allowed_sans")) {
			return fail_at(l, km, "%s is not supported by promacct", key);
		} else {
			return fail_at(l, km,
			               "unknown key '%s' in tls_server_config (known: cert_file, "
			               "key_file, client_ca_file, client_auth_type, min_version, "
			               "max_version)",
			               key);
		}
		if (rc)
			return rc;
	}
	if (rc < 0)
		return rc;
	if (!any)
		return 0;
	if (!c->cert_file || !c->key_file)
		return fail_at(l, start, "tls_server_config needs both cert_file and key_file");
	if ((c->client_auth == WEB_CLIENT_VERIFY_IF_GIVEN ||
	     c->client_auth == WEB_CLIENT_REQUIRE_AND_VERIFY) &&
	    !c->client_ca_file)
		return fail_at(l, start, "client_auth_type %s needs client_ca_file",
		               c->client_auth == WEB_CLIENT_VERIFY_IF_GIVEN
		                   ? "VerifyClientCertIfGiven"
		                   : "RequireAndVerifyClientCert");
	if (c->client_auth != WEB_CLIENT_NONE && !c->client_ca_file)
		return fail_at(l, start,
		               "client_auth_type needs client_ca_file (libmicrohttpd asks clients "
		               "for certificates only with a list of trusted CAs)");
	if (c->client_ca_file && c->client_auth == WEB_CLIENT_NONE)
		return fail_at(l, ca_m,
		               "client_ca_file is given without a client_auth_type that asks for "
		               "client certificates");
	if (c->min_version && c->max_version && c->min_version > c->max_version)
		return fail_at(l, start, "min_version is above max_version");
	{
		/* exporter-toolkit's defaults: TLS 1.2 to 1.3. */
		int lo = c->min_version ? (int)c->min_version : WEB_TLS12;
		int hi = c->max_version ? (int)c->max_version : WEB_TLS13;
		size_t o = (size_t)snprintf(c->tls_priorities, sizeof c->tls_priorities,
		                            "NORMAL:-VERS-ALL");
		for (int v = lo; v <= hi; v++)
			o += (size_t)snprintf(c->tls_priorities + o, sizeof c->tls_priorities - o,
			                      ":+VERS-TLS1.%d", v - 10);
	}
	if ((rc = read_pem(l, cert_m, "certificate file", c->cert_file, &c->cert_pem)) ||
	    (rc = read_pem(l, key_m, "key file", c->key_file, &c->key_pem)))
		return rc;
	if (c->client_ca_file &&
	    (rc = read_pem(l, ca_m, "client CA file", c->client_ca_file, &c->client_ca_pem)))
		return rc;
	return 0;
}

/* exporter-toolkit's allowed headers, and the values it allows. */
static int check_header(struct loader *l, yaml_mark_t km, const char *name, const char *value,
                        const char **canon)
{
	static const char *const allowed[] = {"Strict-Transport-Security", "X-Content-Type-Options",
	                                      "X-Frame-Options", "X-XSS-Protection",
	                                      "Content-Security-Policy"};
	*canon = NULL;
	for (size_t i = 0; i < ARRAY_LEN(allowed); i++)
		if (!strcasecmp(name, allowed[i]))
			*canon = allowed[i];
	if (!*canon)
		return fail_at(l, km,
		               "header '%s' cannot be configured (Strict-Transport-Security, "
		               "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, "
		               "Content-Security-Policy)",
		               name);
	for (const char *p = value; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return fail_at(l, EV(l).start_mark,
			               "header %s: control characters in its value", *canon);
	if (!strcmp(*canon, "X-Content-Type-Options") && strcasecmp(value, "nosniff"))
		return fail_at(l, EV(l).start_mark, "X-Content-Type-Options must be nosniff");
	if (!strcmp(*canon, "X-Frame-Options") && strcasecmp(value, "deny") &&
	    strcasecmp(value, "sameorigin"))
		return fail_at(l, EV(l).start_mark, "X-Frame-Options must be deny or sameorigin");
	return 0;
}

static int parse_headers(struct loader *l)
{
	struct web_config *c = l->c;
	int rc;
	if (yaml_reader_is_null(&l->y))
		return 0;
	if ((rc = yaml_reader_expect_mapping(&l->y, "headers")))
		return rc;
	while ((rc = next_key(l)) == 0) {
		yaml_mark_t km = EV(l).start_mark;
		char *name = strdup(scalar(l));
		if (!name)
			return -ENOMEM;
		if ((rc = next(l)) || (rc = yaml_reader_expect_scalar(&l->y, "a header value"))) {
			free(name);
			return rc;
		}
		const char *canon;
		rc = check_header(l, km, name, scalar(l), &canon);
		free(name);
		if (rc)
			return rc;
		for (size_t i = 0; i < c->nheaders; i++)
			if (!strcmp(c->headers[i].name, canon))
				return fail_at(l, km, "header %s given twice", canon);
		struct web_header *nh = realloc(c->headers, (c->nheaders + 1) * sizeof *nh);
		if (!nh)
			return -ENOMEM;
		c->headers = nh;
		nh[c->nheaders].name = strdup(canon);
		nh[c->nheaders].value = strdup(scalar(l));
		c->nheaders++;
		if (!nh[c->nheaders - 1].name || !nh[c->nheaders - 1].value)
			return -ENOMEM;
	}
	return rc < 0 ? rc : 0;
}

static int parse_http(struct loader *l)
{
	int rc, b;
	if (yaml_reader_is_null(&l->y))
		return 0;
	if ((rc = yaml_reader_expect_mapping(&l->y, "http_server_config")))
		return rc;
	while ((rc = next_key(l)) == 0) {
		char key[64];
		yaml_mark_t km = EV(l).start_mark;
		snprintf(key, sizeof key, "%s", scalar(l));
		if ((rc = next(l)))
			return rc;
		if (!strcmp(key, "headers"))
			rc = parse_headers(l);
		else if (!strcmp(key, "http2")) /* promacct serves HTTP/1.1 either way */
			rc = yaml_reader_expect_scalar(&l->y, key) ? -EINVAL : parse_bool(l, &b);
		else
			return fail_at(
			    l, km, "unknown key '%s' in http_server_config (known: headers, http2)",
			    key);
		if (rc)
			return rc;
	}
	return rc < 0 ? rc : 0;
}

static int bcrypt_hash_valid(const char *h)
{
	if (strlen(h) != 60 || h[0] != '$' || h[1] != '2' || !strchr("aby", h[2]) || h[3] != '$')
		return 0;
	if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return 0;
	int cost = (h[4] - '0') * 10 + (h[5] - '0');
	if (cost < 4 || cost > 31)
		return 0;
	for (const char *p = h + 7; *p; p++)
		if (!strchr("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", *p))
			return 0;
	return 1;
}

static int parse_users(struct loader *l)
{
	struct web_config *c = l->c;
	int rc;
	if (yaml_reader_is_null(&l->y))
		return 0;
	if ((rc = yaml_reader_expect_mapping(&l->y, "basic_auth_users")))
		return rc;
	while ((rc = next_key(l)) == 0) {
		yaml_mark_t km = EV(l).start_mark;
		const char *user = scalar(l);
		if (!*user || strchr(user, ':'))
			return fail_at(l, km, "a user name must not be empty or hold ':'");
		for (const char *p = user; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				return fail_at(l, km, "control characters in a user name");
		for (size_t i = 0; i < c->nusers; i++)
			if (!strcmp(c->users[i].name, user))
				return fail_at(l, km, "user '%s' given twice", user);
		char *name = strdup(user);
		if (!name)
			return -ENOMEM;
		if ((rc = next(l)) || (rc = yaml_reader_expect_scalar(&l->y, "a password hash"))) {
			free(name);
			return rc;
		}
		if (!bcrypt_hash_valid(scalar(l))) {
			rc = fail_at(
			    l, EV(l).start_mark,
			    "the password of '%s' is not a bcrypt hash ($2y$10$... as made by "
			    "htpasswd -nBC 10)",
			    name);
			free(name);
			return rc;
		}
		struct web_user *nu = realloc(c->users, (c->nusers + 1) * sizeof *nu);
		char *hash = strdup(scalar(l));
		if (!nu || !hash) {
			free(name);
			free(hash);
			if (nu)
				c->users = nu;
			return -ENOMEM;
		}
		c->users = nu;
		nu[c->nusers++] = (struct web_user){name, hash};
	}
	return rc < 0 ? rc : 0;
}

static int parse_root(void *arg)
{
	struct loader *l = arg;
	int rc;
	int seen[3] = {0};
	static const char *const keys[] = {"tls_server_config", "http_server_config",
	                                   "basic_auth_users"};
	if ((rc = yaml_reader_expect_mapping(&l->y, "the web configuration")))
		return rc;
	while ((rc = next_key(l)) == 0) {
		yaml_mark_t km = EV(l).start_mark;
		size_t k;
		for (k = 0; k < ARRAY_LEN(keys); k++)
			if (!strcmp(scalar(l), keys[k]))
				break;
		if (k == ARRAY_LEN(keys))
			return fail_at(l, km,
			               "unknown key '%s' (known: tls_server_config, "
			               "http_server_config, basic_auth_users)",
			               scalar(l));
		if (seen[k]++)
			return fail_at(l, km, "key '%s' given twice", keys[k]);
		if ((rc = next(l)))
			return rc;
		rc = k == 0 ? parse_tls(l) : k == 1 ? parse_http(l) : parse_users(l);
		if (rc)
			return rc;
	}
	return rc < 0 ? rc : 0;
}

int web_config_load(const char *path, struct web_config *out, char *err, size_t errlen)
{
	struct loader l;

	memset(out, 0, sizeof *out);
	memset(&l, 0, sizeof l);
	l.c = out;
	const char *slash = strrchr(path, '/');
	if (slash && (size_t)(slash - path) < sizeof l.dir)
		snprintf(l.dir, sizeof l.dir, "%.*s", (int)(slash - path), path);
	if (slash == path)
		snprintf(l.dir, sizeof l.dir, "/");
	out->path = strdup(path);
	if (!out->path) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = yaml_reader_read(&l.y, path, WEB_CONFIG_MAX_BYTES, parse_root, &l, err, errlen);
	if (rc) {
		web_config_free(out);
		return rc;
	}
	log_debug("web config loaded", "file=%s tls=%s client_auth=%d users=%zu headers=%zu", path,
	          out->cert_pem ? "on" : "off", (int)out->client_auth, out->nusers, out->nheaders);
	return 0;
}

static void free_secret(char *s)
{
	if (s) {
		memset(s, 0, strlen(s));
		free(s);
	}
}

void web_config_free(struct web_config *c)
{
	free(c->path);
	free(c->cert_file);
	free(c->key_file);
	free(c->client_ca_file);
	free(c->cert_pem);
	free_secret(c->key_pem);
	free(c->client_ca_pem);
	for (size_t i = 0; i < c->nheaders; i++) {
		free(c->headers[i].name);
		free(c->headers[i].value);
	}
	free(c->headers);
	for (size_t i = 0; i < c->nusers; i++) {
		free(c->users[i].name);
		free(c->users[i].hash);
	}
	free(c->users);
	memset(c, 0, sizeof *c);
}

/* ---- basic auth ---- */

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t salt_once = PTHREAD_ONCE_INIT;
static char cache_setting[64]; /* "$5$rounds=1000$<random salt>$" */
static struct {
	char key[KEY_MAX];
	double expires;
} cache[CACHE_SLOTS];
static unsigned cache_next;

static void make_salt(void)
{
	static const char b64[] =
	    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	unsigned char r[16];
	char salt[17];
	if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
		unsigned long long t = (unsigned long long)(time_now() * 1e9);
		for (size_t i = 0; i < sizeof r; i++)
			r[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)(i * 131);
	}
	for (size_t i = 0; i < 16; i++)
		salt[i] = b64[r[i] & 63];
	salt[16] = '\0';
	snprintf(cache_setting, sizeof cache_setting, "$5$rounds=1000$%s$", salt);
}

/* The cache key of (user, password, hash), or 0 on failure. */
static int cache_key(const char *user, const char *password, const char *hash, char key[KEY_MAX])
{
	pthread_once(&salt_once, make_salt);
	size_t n = strlen(user) + strlen(password) + strlen(hash) + 3;
	char *in = malloc(n);
	if (!in)
		return 0;
	snprintf(in, n, "%s%c%s%c%s", user, 1, password, 1, hash);
	struct crypt_data *cd = calloc(1, sizeof *cd);
	const char *out = cd ? crypt_r(in, cache_setting, cd) : NULL;
	int ok = out && out[0] == '$' && strlen(out) < KEY_MAX;
	if (ok)
		snprintf(key, KEY_MAX, "%s", out);
	memset(in, 0, n);
	free(in);
	if (cd) {
		memset(cd, 0, sizeof *cd);
		free(cd);
	}
	return ok;
}

static int const_time_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char d = (unsigned char)(la != lb);
	for (size_t i = 0; i < la && i < lb; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

int web_config_check_basic_auth(const struct web_config *c, const char *user, const char *password)
{
	if (!c->nusers || !user || !password)
		return 0;
	const struct web_user *u = NULL;
	for (size_t i = 0; i < c->nusers; i++)
		if (!strcmp(c->users[i].name, user))
			u = &c->users[i];
	/* An unknown user costs the same bcrypt as a known one. */
	const char *hash = u ? u->hash : c->users[0].hash;
	char key[KEY_MAX];
	/* The key is computed for unknown users too: same work either way. */
	int have_key = cache_key(user, password, hash, key) && u;
	if (have_key) {
		double now = time_monotonic();
		pthread_mutex_lock(&cache_lock);
		for (size_t i = 0; i < CACHE_SLOTS; i++)
			if (cache[i].expires > now && const_time_equal(cache[i].key, key)) {
				pthread_mutex_unlock(&cache_lock);
				return 1;
			}
		pthread_mutex_unlock(&cache_lock);
	}
	struct crypt_data *cd = calloc(1, sizeof *cd);
	if (!cd)
		return 0;
	const char *out = crypt_r(password, hash, cd);
	int ok = u && out && out[0] == '$' && const_time_equal(out, hash);
	memset(cd, 0, sizeof *cd);
	free(cd);
	if (ok && have_key) {
		pthread_mutex_lock(&cache_lock);
		snprintf(cache[cache_next].key, KEY_MAX, "%s", key);
		cache[cache_next].expires = time_monotonic() + CACHE_SECONDS;
		cache_next = (cache_next + 1) % CACHE_SLOTS;
		pthread_mutex_unlock(&cache_lock);
	}
	return ok;
}

/* ---- libmicrohttpd glue ---- */

unsigned web_config_mhd_options(const struct web_config *c, struct MHD_OptionItem *opts)
{
	size_t n = 0;
	if (c->cert_pem) {
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, c->cert_pem};
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, c->key_pem};
		if (c->client_ca_pem)
			opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
			                                    c->client_ca_pem};
		opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
		                                    (void *)c->tls_priorities};
	}
	opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	return c->cert_pem ? MHD_USE_TLS : 0;
}

/* 0 when the connection's client certificate satisfies client_auth_type. */
static int check_client_cert(const struct web_config *c, struct MHD_Connection *conn)
{
	if (!c->cert_pem || c->client_auth == WEB_CLIENT_NONE ||
	    c->client_auth == WEB_CLIENT_REQUEST)
		return 0;
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return 403;
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	unsigned int ncerts = 0;
	const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &ncerts);
	int has_cert = certs && ncerts > 0;
	if (!has_cert)
		return c->client_auth == WEB_CLIENT_VERIFY_IF_GIVEN ? 0 : 403;
	if (c->client_auth == WEB_CLIENT_REQUIRE_ANY)
		return 0;
	unsigned int status = 0;
	if (gnutls_certificate_verify_peers2(s, &status) < 0 || status != 0)
		return 403;
	return 0;
}

int web_config_check_request(const struct web_config *c, struct MHD_Connection *conn)
{
	int rc = check_client_cert(c, conn);
	if (rc || !c->nusers)
		return rc;
	char *password = NULL;
	char *user = MHD_basic_auth_get_username_password(conn, &password);
	int ok = user && password && web_config_check_basic_auth(c, user, password);
	if (password) {
		memset(password, 0, strlen(password));
		MHD_free(password);
	}
	if (user)
		MHD_free(user);
	return ok ? 0 : 401;
}

int web_config_queue_denied(const struct web_config *c, struct MHD_Connection *conn, int status)
{
	static const char unauthorized[] = "Unauthorized\n";
	static const char forbidden[] = "Forbidden: a valid client certificate is required\n";
	const char *body = status == 401 ? unauthorized : forbidden;
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	web_config_add_headers(c, r);
	enum MHD_Result res = status == 401
	                          ? MHD_queue_basic_auth_fail_response(conn, "promacct", r)
	                          : MHD_queue_response(conn, MHD_HTTP_FORBIDDEN, r);
	MHD_destroy_response(r);
	return res;
}

void web_config_add_headers(const struct web_config *c, struct MHD_Response *r)
{
	for (size_t i = 0; i < c->nheaders; i++)
		MHD_add_response_header(r, c->headers[i].name, c->headers[i].value);
}
