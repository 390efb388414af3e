/*
 * canonical_json_fuzz.c
 *		libFuzzer target for the canonical JSON writer: any input is either
 *		refused or canonicalised; the canonical form is a fixed point
 *		(canonicalising it again gives the same text) and plain ASCII; and
 *		cj_envelope agrees with it.
 */
#include "canonical_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char   err[128];
	size_t n,
		n2;
	char *c = cj_canonicalize((const char *) data, size, &n, err, sizeof(err));
	char *hm,
		*sig;
	size_t hm_len;

	if (c != NULL)
	{
		char *c2 = cj_canonicalize(c, n, &n2, err, sizeof(err));

		if (c2 == NULL || n2 != n || memcmp(c, c2, n) != 0)
			abort();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char) c[i] < 0x20 || (unsigned char) c[i] > 0x7E)
				abort();
		free(c2);
	}
	if (cj_envelope((const char *) data, size, &hm, &hm_len, &sig, err, sizeof(err)))
	{
		/* an envelope is valid JSON, and its {header, message} canonical */
		char *c3 = cj_canonicalize(hm, hm_len, &n2, err, sizeof(err));

		if (c == NULL || c3 == NULL || n2 != hm_len || memcmp(c3, hm, hm_len) != 0)
			abort();
		free(c3);
		free(hm);
		free(sig);
	}
	free(c);
	return 0;
}
