/*
 * jwks_fuzz.c
 *		libFuzzer target for a registry's JWK Set (src/jwk_set.c), the text a
 *		registry's registry_jwks_url answers: any input is refused with an
 *		error or parsed into at most DCI_JWKS_MAX_KEYS usable keys, each with
 *		a thumbprint; a set holding private key material is never accepted;
 *		finding a kid never crashes and only returns an entry of the set.
 *		An input with a newline is "kid\ndocument"; the Cache-Control parser
 *		takes the whole input too.
 */
#include "jwk_set.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	  *s = malloc(size + 1);
	char	   err[256] = "";
	DciJwkSet *set;
	char	  *nl;
	const char *doc;
	const char *kid = NULL;

	memcpy(s, data, size);
	s[size] = '\0';
	(void) dci_cache_control_max_age(s);
	nl = memchr(s, '\n', size);
	doc = s;
	if (nl != NULL)
	{
		*nl = '\0';
		kid = s;
		doc = nl + 1;
	}
	set = dci_jwkset_parse(doc, size - (doc - s), err, sizeof(err));
	if (set == NULL)
	{
		if (err[0] == '\0')
			abort(); /* a refusal says why */
	}
	else
	{
		if (set->nkeys > DCI_JWKS_MAX_KEYS || set->nkeys < 0)
			abort();
		/* json-c keeps the last of repeated names: a "d" anywhere in a key's members refuses it */
		for (int i = 0; i < set->nkeys; i++)
			if (set->keys[i].key == NULL || set->keys[i].thumbprint == NULL || dci_sigkey_has_private(set->keys[i].key))
				abort();
		for (int a = DCI_SIG_UNKNOWN; a <= DCI_SIG_RSA_SHA256; a++)
		{
			const DciJwkEntry *e = dci_jwkset_find(set, kid, (DciSigAlg) a);

			if (e != NULL && (e < set->keys || e >= set->keys + set->nkeys))
				abort();
			e = dci_jwkset_find(set, NULL, (DciSigAlg) a);
			if (e != NULL && (e < set->keys || e >= set->keys + set->nkeys))
				abort();
		}
		dci_jwkset_free(set);
	}
	free(s);
	return 0;
}
