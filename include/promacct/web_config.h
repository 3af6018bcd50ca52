/* --web.config.file: TLS, basic auth and response headers of the scrape
 * page, in the exporter-toolkit format every Prometheus exporter uses
 * (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md):
 *
 *   tls_server_config:
 *     cert_file: server.crt          # both, or neither (no TLS)
 *     key_file: server.key
 *     client_ca_file: ca.crt         # needed by the two "Verify" auth types
 *     client_auth_type: RequireAndVerifyClientCert
 *     min_version: TLS12             # TLS10 TLS11 TLS12 TLS13
 *     max_version: TLS13
 *   http_server_config:
 *     headers:                       # the five headers exporter-toolkit allows
 *       Strict-Transport-Security: max-age=31536000
 *   basic_auth_users:
 *     alice: $2y$10$...              # bcrypt hashes only
 *
 * Loading reads the certificate, key and CA files too (libmicrohttpd takes
 * them as memory) and checks everything; a problem is one line naming
 * FILE:LINE:COLUMN or the file that cannot be read, and a start-up error.
 * Unknown keys are errors (exporter-toolkit is strict too); cipher_suites
 * and curve_preferences are refused as unsupported rather than ignored. */
#ifndef PROMACCT_WEB_CONFIG_H
#define PROMACCT_WEB_CONFIG_H

#include <stddef.h>

#include "promacct/common.h"

#define WEB_CONFIG_PEM_MAX (1u << 20) /* a larger certificate/key/CA file is an error */

/* exporter-toolkit's client_auth_type values, same meaning as Go's tls. */
enum web_client_auth {
	WEB_CLIENT_NONE,               /* NoClientCert (the default) */
	WEB_CLIENT_REQUEST,            /* RequestClientCert: asked, not checked */
	WEB_CLIENT_REQUIRE_ANY,        /* RequireAnyClientCert: required, not checked */
	WEB_CLIENT_VERIFY_IF_GIVEN,    /* VerifyClientCertIfGiven */
	WEB_CLIENT_REQUIRE_AND_VERIFY, /* RequireAndVerifyClientCert */
};

enum web_tls_version {
	WEB_TLS_ANY = 0, /* not given */
	WEB_TLS10 = 10,
	WEB_TLS11 = 11,
	WEB_TLS12 = 12,
	WEB_TLS13 = 13,
};

struct web_header {
	char *name; /* canonical spelling, e.g. "X-Frame-Options" */
	char *value;
};

struct web_user {
	char *name;
	char *hash; /* bcrypt: $2a$, $2b$ or $2y$ */
};

struct web_config {
	char *path; /* as given */

	/* TLS: on when cert_pem is set. The *_pem buffers hold the files'
	 * contents, NUL-terminated; the paths are kept for messages. */
	char *cert_file, *key_file, *client_ca_file;
	char *cert_pem, *key_pem, *client_ca_pem;
	enum web_client_auth client_auth;
	enum web_tls_version min_version; /* WEB_TLS_ANY: TLS12, as exporter-toolkit */
	enum web_tls_version max_version; /* WEB_TLS_ANY: TLS13 */

	struct web_header *headers; /* added to every response */
	size_t nheaders;

	struct web_user *users; /* basic auth on when nusers > 0 */
	size_t nusers;

	char tls_priorities[128]; /* GnuTLS priority string for min/max_version */
};

/* Reads and validates path into *out (zeroed first). Returns 0, or
 * negative errno with one line in err. On error *out holds nothing. */
int web_config_load(const char *path, struct web_config *out, char *err, size_t errlen) MUST_CHECK;
void web_config_free(struct web_config *c);

/* 1 when user and password match a basic_auth_users entry (bcrypt through
 * libcrypt; the comparison costs the same whether the user exists or not),
 * 0 otherwise. Thread-safe. A successful check is remembered for a while so
 * that a scrape every few seconds does not pay bcrypt's cost each time. */
int web_config_check_basic_auth(const struct web_config *c, const char *user, const char *password);

/* ---- libmicrohttpd glue, for the scrape server ----
 *
 * Daemon start (TLS):
 *     struct MHD_OptionItem tls[WEB_CONFIG_MHD_OPTIONS];
 *     unsigned flags = web_config_mhd_options(wc, tls);
 *     MHD_start_daemon(base_flags | flags, ..., MHD_OPTION_ARRAY, tls, ...);
 * Each request, before answering:
 *     int denied = web_config_check_request(wc, conn);
 *     if (denied)
 *             return web_config_queue_denied(wc, conn, denied);
 * Each response: web_config_add_headers(wc, response).
 * libmicrohttpd asks clients for a certificate only when it has a trust
 * list, so every client_auth_type but NoClientCert needs client_ca_file. */
struct MHD_OptionItem;
struct MHD_Connection;
struct MHD_Response;

#define WEB_CONFIG_MHD_OPTIONS 5 /* entries web_config_mhd_options may fill, END included */

/* Fills opts (WEB_CONFIG_MHD_OPTIONS entries, ended by MHD_OPTION_END)
 * with the certificate, key, client CA and priorities of c, and returns the
 * daemon flags to add (MHD_USE_TLS), or 0 (opts then holds just the END)
 * when c configures no TLS. opts points into c: c must outlive the daemon. */
unsigned web_config_mhd_options(const struct web_config *c, struct MHD_OptionItem *opts);

/* 0 when the request may be answered; else the status to refuse it with:
 * 403 when client_auth_type wants a (verified) client certificate that the
 * connection lacks, 401 when basic auth is configured and the request's
 * user and password do not match. Thread-safe; bcrypt runs here. */
int web_config_check_request(const struct web_config *c, struct MHD_Connection *conn);

/* Queues the refusal (401 with WWW-Authenticate: Basic realm="promacct",
 * or 403) and returns libmicrohttpd's result as an int (enum MHD_Result). */
int web_config_queue_denied(const struct web_config *c, struct MHD_Connection *conn, int status);

/* Adds the configured headers to a response. */
void web_config_add_headers(const struct web_config *c, struct MHD_Response *r);

#endif
