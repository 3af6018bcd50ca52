/* Specification of --web.config.file (src/web_config.c): the
 * exporter-toolkit format, its errors with FILE:LINE:COLUMN, and bcrypt
 * basic auth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <microhttpd.h>

#include <sys/stat.h>

#include "promacct/web_config.h"

static char dir[64], path[128], err[1024];

static void write_file(const char *name, const char *content)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/promacct-web-config.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path, sizeof path, "%s/web.yml", dir);
	write_file("server.crt", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
	write_file("server.key", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
	write_file("ca.crt", "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
	write_file("not.pem", "hello\n");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int load(const char *yaml, struct web_config *c)
{
	write_file("web.yml", yaml);
	err[0] = '\0';
	return web_config_load(path, c, err, sizeof err);
}

/* Like --config.file (shared reader): a FIFO is refused, never waited on
 * (open() of a FIFO blocks until a writer comes). */
static void test_a_fifo_is_refused_without_blocking(void **state)
{
	(void)state;
	struct web_config c;
	char fifo[160];
	snprintf(fifo, sizeof fifo, "%s/fifo.yml", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10);
	int rc = web_config_load(fifo, &c, err, sizeof err);
	alarm(0);
	assert_int_not_equal(rc, 0);
	if (!strstr(err, "fifo.yml: not a regular file (a FIFO)"))
		fail_msg("%s", err);
	web_config_free(&c);
}

static void expect_error(const char *yaml, unsigned line, unsigned col, const char *needle)
{
	struct web_config c;
	char where[160];
	if (load(yaml, &c) == 0)
		fail_msg("accepted:\n%s", yaml);
	snprintf(where, sizeof where, "%s:%u:%u: ", path, line, col);
	if (strncmp(err, where, strlen(where)))
		fail_msg("error '%s' does not start with '%s'", err, where);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	web_config_free(&c);
}

/* A bcrypt hash of password at the lowest cost (fast tests). */
static void bcrypt(const char *password, char *out, size_t cap)
{
	char setting[64];
	struct crypt_data cd;
	memset(&cd, 0, sizeof cd);
	assert_non_null(crypt_gensalt_rn("$2y$", 4, NULL, 0, setting, sizeof setting));
	const char *h = crypt_r(password, setting, &cd);
	assert_non_null(h);
	snprintf(out, cap, "%s", h);
}

static void test_a_full_configuration_loads(void **state)
{
	(void)state;
	struct web_config c;
	char yaml[1024], hash[128];
	bcrypt("s3cret", hash, sizeof hash);
	snprintf(yaml, sizeof yaml,
	         "tls_server_config:\n"
	         "  cert_file: server.crt\n" /* relative to the config file */
	         "  key_file: %s/server.key\n"
	         "  client_ca_file: ca.crt\n"
	         "  client_auth_type: RequireAndVerifyClientCert\n"
	         "  min_version: TLS12\n"
	         "  max_version: TLS13\n"
	         "  prefer_server_cipher_suites: true\n"
	         "http_server_config:\n"
	         "  http2: false\n"
	         "  headers:\n"
	         "    strict-transport-security: max-age=31536000\n"
	         "    X-Frame-Options: deny\n"
	         "basic_auth_users:\n"
	         "  alice: %s\n",
	         dir, hash);
	if (load(yaml, &c))
		fail_msg("%s", err);
	assert_non_null(strstr(c.cert_pem, "BEGIN CERTIFICATE"));
	assert_non_null(strstr(c.key_pem, "BEGIN PRIVATE KEY"));
	assert_non_null(strstr(c.client_ca_pem, "MIIC"));
	assert_int_equal(strncmp(c.cert_file, dir, strlen(dir)), 0);
	assert_int_equal(c.client_auth, WEB_CLIENT_REQUIRE_AND_VERIFY);
	assert_int_equal(c.min_version, WEB_TLS12);
	assert_int_equal(c.max_version, WEB_TLS13);
	assert_int_equal(c.nheaders, 2);
	assert_string_equal(c.headers[0].name, "Strict-Transport-Security");
	assert_string_equal(c.headers[0].value, "max-age=31536000");
	assert_int_equal(c.nusers, 1);
	assert_string_equal(c.users[0].name, "alice");
	web_config_free(&c);
}

static void test_empty_files_configure_nothing(void **state)
{
	(void)state;
	static const char *const empty[] = {"", "{}\n", "tls_server_config:\n",
	                                    "basic_auth_users: {}\n"};
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		struct web_config c;
		if (load(empty[i], &c))
			fail_msg("'%s': %s", empty[i], err);
		assert_null(c.cert_pem);
		assert_int_equal(c.nusers, 0);
		web_config_free(&c);
	}
}

static void test_unknown_and_unsupported_keys(void **state)
{
	(void)state;
	expect_error("tls_config:\n  cert_file: x\n", 1, 1, "unknown key 'tls_config'");
	expect_error("tls_server_config:\n  certfile: x\n", 2, 3,
	             "unknown key 'certfile' in tls_server_config");
	expect_error("tls_server_config:\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", 2, 3,
	             "cipher_suites is not supported");
	expect_error("http_server_config:\n  header: {}\n", 2, 3,
	             "unknown key 'header' in http_server_config");
	expect_error("basic_auth_users: {}\nbasic_auth_users: {}\n", 2, 1, "given twice");
}

static void test_tls_settings_are_checked(void **state)
{
	(void)state;
	expect_error("tls_server_config:\n  cert_file: server.crt\n", 2, 3,
	             "needs both cert_file and key_file");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	             "  client_auth_type: VerifyClientCertIfGiven\n",
	             2, 3, "needs client_ca_file");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	             "  client_ca_file: ca.crt\n",
	             4, 19, "without a client_auth_type");
	expect_error("tls_server_config:\n  client_auth_type: Always\n", 2, 21,
	             "unknown client_auth_type 'Always'");
	expect_error("tls_server_config:\n  min_version: TLS14\n", 2, 16,
	             "unknown TLS version 'TLS14'");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
	             "  min_version: TLS13\n  max_version: TLS12\n",
	             2, 3, "min_version is above max_version");
	expect_error("tls_server_config:\n  cert_file: missing.crt\n  key_file: server.key\n", 2,
	             14, "cannot read certificate file");
	expect_error("tls_server_config:\n  cert_file: server.crt\n  key_file: not.pem\n", 3, 13,
	             "is not PEM");
}

static void test_headers_are_those_exporter_toolkit_allows(void **state)
{
	(void)state;
	expect_error("http_server_config:\n  headers:\n    Set-Cookie: a=b\n", 3, 5,
	             "header 'Set-Cookie' cannot be configured");
	expect_error("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", 3, 22,
	             "deny or sameorigin");
	expect_error("http_server_config:\n  headers:\n    X-Content-Type-Options: yes\n", 3, 29,
	             "must be nosniff");
	expect_error("http_server_config:\n  headers:\n    X-XSS-Protection: \"1\\r\\nX: y\"\n", 3,
	             23, "control characters");
}

static void test_users_need_bcrypt_hashes(void **state)
{
	(void)state;
	expect_error("basic_auth_users:\n  alice: s3cret\n", 2, 10, "not a bcrypt hash");
	expect_error("basic_auth_users:\n  alice: $1$abc$def\n", 2, 10, "not a bcrypt hash");
	expect_error("basic_auth_users:\n  \"a:b\": "
	             "$2y$10$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234\n",
	             2, 3, "must not be empty or hold ':'");
}

static void test_basic_auth_checks_bcrypt(void **state)
{
	(void)state;
	struct web_config c;
	char yaml[512], ha[128], hb[128];
	bcrypt("s3cret", ha, sizeof ha);
	bcrypt("other", hb, sizeof hb);
	snprintf(yaml, sizeof yaml, "basic_auth_users:\n  alice: %s\n  bob: '%s'\n", ha, hb);
	if (load(yaml, &c))
		fail_msg("%s", err);
	assert_true(web_config_check_basic_auth(&c, "alice", "s3cret"));
	assert_true(web_config_check_basic_auth(&c, "alice", "s3cret")); /* from the cache */
	assert_false(web_config_check_basic_auth(&c, "alice", "s3cret "));
	assert_false(web_config_check_basic_auth(&c, "alice", ""));
	assert_false(web_config_check_basic_auth(&c, "bob", "s3cret"));
	assert_true(web_config_check_basic_auth(&c, "bob", "other"));
	assert_false(web_config_check_basic_auth(&c, "carol", "s3cret"));
	assert_false(web_config_check_basic_auth(&c, NULL, "s3cret"));
	web_config_free(&c);
	/* A new file with another hash for alice: the old password stops working. */
	bcrypt("new", ha, sizeof ha);
	snprintf(yaml, sizeof yaml, "basic_auth_users:\n  alice: %s\n", ha);
	if (load(yaml, &c))
		fail_msg("%s", err);
	assert_false(web_config_check_basic_auth(&c, "alice", "s3cret"));
	assert_true(web_config_check_basic_auth(&c, "alice", "new"));
	web_config_free(&c);
}

/* ---- the libmicrohttpd glue against a real TLS daemon and libcurl ---- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	(void)url, (void)method, (void)version, (void)upload, (void)upload_size, (void)con_cls;
	const struct web_config *wc = cls;
	int denied = web_config_check_request(wc, conn);
	if (denied)
		return (enum MHD_Result)web_config_queue_denied(wc, conn, denied);
	static const char body[] = "promacct_up 1\n";
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	web_config_add_headers(wc, r);
	enum MHD_Result res = MHD_queue_response(conn, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return res;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	char *seen = arg;
	if (!strncasecmp(data, "X-Frame-Options: deny", 21))
		strcpy(seen, "yes");
	return size * n;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	(void)data, (void)arg;
	return size * n;
}

/* One request; returns the status, 0 when TLS or the transfer failed. */
static long get(int port, const char *userpwd, const char *client, const char *tls_max,
                char *header_seen)
{
	char url[64], cert[256], key[256], ca[256];
	snprintf(url, sizeof url, "https://127.0.0.1:%d/metrics", port);
	snprintf(ca, sizeof ca, "%s/ca.crt", dir);
	CURL *h = curl_easy_init();
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CAINFO, ca);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	if (header_seen) {
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, header_seen);
	}
	if (userpwd)
		curl_easy_setopt(h, CURLOPT_USERPWD, userpwd);
	if (client) {
		snprintf(cert, sizeof cert, "%s/%s.crt", dir, client);
		snprintf(key, sizeof key, "%s/%s.key", dir, client);
		curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, key);
	}
	if (tls_max && !strcmp(tls_max, "1.2"))
		curl_easy_setopt(h, CURLOPT_SSLVERSION,
		                 (long)(CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2));
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

static int make_certs(void)
{
	char cmd[2048];
	snprintf(cmd, sizeof cmd,
	         "cd %s && (K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
	         "openssl req -x509 $K -keyout ca.key -out ca.crt -days 2 -subj /CN=test-ca && "
	         "printf 'subjectAltName=IP:127.0.0.1\\n' >san.ext && "
	         "openssl req $K -keyout tls.key -out tls.csr -subj /CN=127.0.0.1 && "
	         "openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	         "-out tls.crt -days 2 -extfile san.ext && "
	         "openssl req $K -keyout client.key -out client.csr -subj /CN=client && "
	         "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
	         "-out client.crt -days 2 && "
	         "openssl req -x509 $K -keyout stranger.key -out stranger.crt -days 2 "
	         "-subj /CN=stranger) >/dev/null 2>&1",
	         dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_tls_basic_auth_and_client_certificates_through_mhd(void **state)
{
	(void)state;
	if (system("command -v openssl >/dev/null 2>&1") != 0)
		skip();
	assert_int_equal(make_certs(), 0);
	char yaml[1024], hash[128];
	bcrypt("s3cret", hash, sizeof hash);
	struct web_config c;

	/* TLS 1.3 only, basic auth, a header. */
	snprintf(yaml, sizeof yaml,
	         "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
	         "  min_version: TLS13\n"
	         "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
	         "basic_auth_users:\n  alice: %s\n",
	         hash);
	if (load(yaml, &c))
		fail_msg("%s", err);
	assert_string_equal(c.tls_priorities, "NORMAL:-VERS-ALL:+VERS-TLS1.3");
	struct MHD_OptionItem tls[WEB_CONFIG_MHD_OPTIONS];
	unsigned flags = web_config_mhd_options(&c, tls);
	assert_int_equal(flags, MHD_USE_TLS);
	struct MHD_Daemon *d =
	    MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | flags, 0, NULL, NULL,
	                     on_request, &c, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	assert_non_null(d);
	int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	char seen[8] = "";
	assert_int_equal(get(port, NULL, NULL, NULL, seen), 401);
	assert_string_equal(seen, "yes"); /* headers on refusals too */
	assert_int_equal(get(port, "alice:wrong", NULL, NULL, NULL), 401);
	assert_int_equal(get(port, "mallory:s3cret", NULL, NULL, NULL), 401);
	assert_int_equal(get(port, "alice:s3cret", NULL, NULL, NULL), 200);
	assert_int_equal(get(port, "alice:s3cret", NULL, "1.2", NULL), 0); /* below min_version */
	MHD_stop_daemon(d);
	web_config_free(&c);

	/* Client certificates signed by the CA, required and verified. */
	if (load("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
	         "  client_ca_file: ca.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
	         &c))
		fail_msg("%s", err);
	flags = web_config_mhd_options(&c, tls);
	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | flags, 0, NULL, NULL,
	                     on_request, &c, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
	assert_non_null(d);
	port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
	assert_int_equal(get(port, NULL, "client", NULL, NULL), 200);
	long s = get(port, NULL, NULL, NULL, NULL);
	assert_true(s == 403 || s == 0); /* no certificate */
	s = get(port, NULL, "stranger", NULL, NULL);
	assert_true(s == 403 || s == 0); /* not signed by the CA */
	MHD_stop_daemon(d);
	web_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_full_configuration_loads),
	    cmocka_unit_test(test_a_fifo_is_refused_without_blocking),
	    cmocka_unit_test(test_empty_files_configure_nothing),
	    cmocka_unit_test(test_unknown_and_unsupported_keys),
	    cmocka_unit_test(test_tls_settings_are_checked),
	    cmocka_unit_test(test_headers_are_those_exporter_toolkit_allows),
	    cmocka_unit_test(test_users_need_bcrypt_hashes),
	    cmocka_unit_test(test_basic_auth_checks_bcrypt),
	    cmocka_unit_test(test_tls_basic_auth_and_client_certificates_through_mhd),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
