/* Shared by the fuzz targets: the libFuzzer entry points and a reader that
 * cuts the input into pieces. A target checks its invariants with
 * FUZZ_CHECK, which aborts (libFuzzer and the replay driver both report an
 * abort as a finding). */
#ifndef PROMACCT_FUZZ_H
#define PROMACCT_FUZZ_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* Consumes the input front to back. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline unsigned fuzz_byte(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* A NUL-terminated copy of the next piece: up to the next byte `sep` (not
 * included, consumed) or the end. NUL bytes inside are kept as they are
 * (they end the C string early). Caller frees. NULL at the end of input. */
static inline char *fuzz_piece(struct fuzz_in *in, uint8_t sep)
{
	if (!in->n)
		return NULL;
	const uint8_t *e = memchr(in->p, sep, in->n);
	size_t len = e ? (size_t)(e - in->p) : in->n;
	char *s = malloc(len + 1);
	if (!s)
		abort();
	memcpy(s, in->p, len);
	s[len] = '\0';
	in->p += len + (e ? 1 : 0);
	in->n -= len + (e ? 1 : 0);
	return s;
}

#endif
