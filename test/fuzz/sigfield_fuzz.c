/*
 * sigfield_fuzz.c
 *		libFuzzer target for the signature-field parser: any input is either
 *		refused or parsed; a parsed field formats back into a field that
 *		parses to the same values.
 */
#include "sig_field.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	DciSigField f,
		g;
	char  err[128];
	char *s;

	if (!dci_sig_field_parse((const char *) data, size, &f, err, sizeof(err)))
		return 0;
	if (f.algorithm == NULL || f.signature == NULL || f.created < 0 || f.expires < 0)
		abort();
	s = dci_sig_field_format("sender", "key", f.algorithm, f.created, f.expires, f.signature);
	if (s == NULL)
		abort(); /* parsed values never hold what cannot be written */
	if (!dci_sig_field_parse(s, strlen(s), &g, err, sizeof(err)) ||
		!same(f.algorithm, g.algorithm) || !same(f.signature, g.signature) ||
		f.created != g.created || f.expires != g.expires)
		abort();
	dci_sig_field_free(&g);
	dci_sig_field_free(&f);
	free(s);
	return 0;
}
