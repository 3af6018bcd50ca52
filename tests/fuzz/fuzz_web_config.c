/* Fuzz target: the --web.config.file loader (exporter-toolkit format).
 *
 * Input: the file's bytes, written to web.yml in a private empty directory
 * (relative certificate paths resolve there, to nothing). The loader opens
 * the certificate files a config names, and a FIFO or a device would block
 * it: inputs that could name one (holding "dev", "proc", "sys", "run", "tmp"
 * or a backslash, which YAML escapes could turn into any of them) are
 * skipped.
 * Checks: 0 or a negative errno with error text; an accepted
 * config has cert and key together, a client CA where the auth type
 * verifies, bcrypt hashes only, header names and values without line
 * breaks; web_config_free releases everything (LSan). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "promacct/web_config.h"
#include "fuzz.h"

static char dir[] = "/tmp/promacct-fuzz-web.XXXXXX";
static char path[4096];

static void remove_dir(void)
{
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof path, "%s/web.yml", dir);
	atexit(remove_dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const risky[] = {"dev", "proc", "sys", "run", "tmp", "\\"};
	if (size > 65536)
		return 0;
	for (size_t i = 0; i < ARRAY_LEN(risky); i++)
		if (memmem(data, size, risky[i], strlen(risky[i])))
			return 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd))
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
