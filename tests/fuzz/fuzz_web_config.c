/* Fuzz target: the --web.config.file loader (exporter-toolkit format).
 *
 * Input: the file's bytes (given to web_config_load as /proc/self/fd/N of
 * a memfd). Inputs that name /dev, /proc or /sys are skipped: the loader
 * reads the certificate files a config names, and a device could block.
 * Checks: 0 or a negative errno with error text; an accepted
 * config has cert and key together, a client CA where the auth type
 * verifies, bcrypt hashes only, header names and values without line
 * breaks; web_config_free releases everything (LSan). */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <unistd.h>

#include "promacct/web_config.h"
#include "fuzz.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = memfd_create("web_config", 0);
	if (fd < 0)
		abort();
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 65536 || memmem(data, size, "dev", 3) || memmem(data, size, "proc", 4) ||
	    memmem(data, size, "sys", 3))
		return 0;
	if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	struct web_config c;
	char err[1024];
	err[0] = '\0';
	int rc = web_config_load(path, &c, err, sizeof err);
	if (rc) {
		FUZZ_CHECK(rc < 0, "rc %d", rc);
		FUZZ_CHECK(err[0] && memchr(err, '\0', sizeof err), "no error text");
		web_config_free(&c);
		return 0;
	}
	FUZZ_CHECK(!c.cert_pem == !c.key_pem, "certificate without key or key without certificate");
	if (c.client_auth == WEB_CLIENT_VERIFY_IF_GIVEN ||
	    c.client_auth == WEB_CLIENT_REQUIRE_AND_VERIFY)
		FUZZ_CHECK(c.client_ca_pem != NULL, "verifying client auth without a CA");
	for (size_t i = 0; i < c.nusers; i++)
		FUZZ_CHECK(!strncmp(c.users[i].hash, "$2a$", 4) ||
		               !strncmp(c.users[i].hash, "$2b$", 4) ||
		               !strncmp(c.users[i].hash, "$2y$", 4),
		           "user %s with a non-bcrypt hash", c.users[i].name);
	for (size_t i = 0; i < c.nheaders; i++)
		FUZZ_CHECK(!strpbrk(c.headers[i].name, "\r\n:") &&
		               !strpbrk(c.headers[i].value, "\r\n"),
		           "header with a line break: %s", c.headers[i].name);
	web_config_free(&c);
	return 0;
}
