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
#include <unistd.h>

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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_a_full_configuration_loads),
	    cmocka_unit_test(test_empty_files_configure_nothing),
	    cmocka_unit_test(test_unknown_and_unsupported_keys),
	    cmocka_unit_test(test_tls_settings_are_checked),
	    cmocka_unit_test(test_headers_are_those_exporter_toolkit_allows),
	    cmocka_unit_test(test_users_need_bcrypt_hashes),
	    cmocka_unit_test(test_basic_auth_checks_bcrypt),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
