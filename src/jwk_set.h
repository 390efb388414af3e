/*
 * jwk_set.h
 *		A registry's JWK Set (RFC 7517 §5) as verification keys (jwk_set.c):
 *		parsing with bounds, and finding the key a signature names.  Free of
 *		PostgreSQL headers.  Strings and sets are malloc'd.
 */
#ifndef DCI_JWK_SET_H
#define DCI_JWK_SET_H

#include <stdbool.h>
#include <stddef.h>

#include "sig_keys.h"

/* bounds of a document: its bytes, its keys, a kid's length */
#define DCI_JWKS_MAX_BYTES (256 * 1024)
#define DCI_JWKS_MAX_KEYS  64
#define DCI_JWKS_MAX_KID   512

typedef struct DciJwkEntry
{
	char	  *kid;		   /* NULL when the JWK has none */
	char	  *thumbprint; /* RFC 7638 */
	DciSigKey *key;
} DciJwkEntry;

typedef struct DciJwkSet
{
	int			 nkeys;
	DciJwkEntry *keys;
	int			 skipped; /* JWKs of another type, curve, use or alg */
} DciJwkSet;

/*
 * Parse {"keys": [...]}: Ed25519 (kty OKP, crv Ed25519, x) and RSA (kty
 * RSA, n, e) public keys become entries; keys of other types or curves, or
 * with "use" other than "sig", or an "alg" that is not theirs (EdDSA,
 * RS256), are skipped.  The whole document is refused (NULL, err set;
 * err never quotes a member's value) when it is larger than
 * DCI_JWKS_MAX_BYTES, not JSON, not an object with a "keys" array, holds
 * more than DCI_JWKS_MAX_KEYS keys, a member of the wrong type, private key
 * material (d, p, q, dp, dq, qi, oth, k), a key that cannot be built, or
 * two keys with the same kid.
 */
extern DciJwkSet *dci_jwkset_parse(const char *text, size_t len, char *err, size_t errlen);
extern void		  dci_jwkset_free(DciJwkSet *set);

/*
 * The entry a signature's key identifier names: the DCI field's kidId
 * ("sender_id|key_id|algorithm") or a JWS header's kid.  A JWK matches,
 * best first: its kid is the whole identifier; its kid is the same
 * sender_id|key_id|algorithm with the algorithm spelled either way
 * ("rsa-sha256" / "rs256"); its kid is the key_id part; its thumbprint is
 * the identifier or its key_id part.  Only keys of alg when it is known.
 * NULL when none.
 */
extern const DciJwkEntry *dci_jwkset_find(const DciJwkSet *set, const char *kid, DciSigAlg alg);

/*
 * Seconds a Cache-Control value lets a response be kept: its max-age
 * (s-maxage ignored: we are no shared cache), 0 for no-store or no-cache,
 * -1 when it says neither (or value is NULL).
 */
extern long dci_cache_control_max_age(const char *value);

#endif /* DCI_JWK_SET_H */
