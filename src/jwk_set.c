/*
 * jwk_set.c
 *		A registry's JWK Set as verification keys, parsed with json-c.
 *
 * The document comes from the network: it is bounded (bytes, keys, kid
 * length, nesting), and a set that carries private key material is refused
 * whole, since a registry that publishes its private key has none left to
 * trust.  Error texts name members, never their values.  Free of
 * PostgreSQL headers.
 */
#include "jwk_set.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "base64.h"

#define JWKS_MAX_DEPTH 8

static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};

void
dci_jwkset_free(DciJwkSet *set)
{
	if (set == NULL)
		return;
	for (int i = 0; i < set->nkeys; i++)
	{
		free(set->keys[i].kid);
		free(set->keys[i].thumbprint);
		dci_sigkey_free(set->keys[i].key);
	}
	free(set->keys);
	free(set);
}

/*
 * A string member: 1 with *out set, 0 when absent, -1 when of another type
 * or holding a NUL.
 */
static int
string_member(struct json_object *jwk, const char *name, const char **out)
{
	struct json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(jwk, name, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string) ||
		(size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)))
		return -1;
	*out = json_object_get_string(v);
	return 1;
}

/* a required base64url member, decoded (malloc'd); NULL with err set */
static unsigned char *
b64_member(struct json_object *jwk, int i, const char *name, size_t *len, char *err, size_t errlen)
{
	const char	  *s;
	unsigned char *raw;
	size_t		   n;

	if (string_member(jwk, name, &s) != 1)
	{
		dci_sig_set_err(err, errlen, "key %d: \"%s\" is missing or not a string", i, name);
		return NULL;
	}
	n = strlen(s);
	/* RFC 7518 wants no padding; some publishers pad anyway, which changes nothing */
	while (n > 0 && s[n - 1] == '=' && strlen(s) - n < 2)
		n--;
	raw = dci_b64_decode(s, n, true, len);
	if (raw == NULL)
		dci_sig_set_err(err, errlen, "key %d: \"%s\" is not base64url", i, name);
	return raw;
}

/*
 * One JWK: 1 with *key set, 0 when skipped (not a key we verify with), -1
 * with err set when the document must be refused.
 */
static int
parse_key(struct json_object *jwk, int i, DciSigKey **key, char *err, size_t errlen)
{
	const char *kty;
	const char *use;
	const char *alg;
	const char *crv;
	char		why[160] = "";

	*key = NULL;
	if (!json_object_is_type(jwk, json_type_object))
	{
		dci_sig_set_err(err, errlen, "key %d is not a JSON object", i);
		return -1;
	}
	for (size_t m = 0; m < sizeof(private_members) / sizeof(private_members[0]); m++)
		if (json_object_object_get_ex(jwk, private_members[m], NULL))
		{
			dci_sig_set_err(err, errlen, "key %d holds private key material (\"%s\"): a JWKS publishes public keys only",
							i, private_members[m]);
			return -1;
		}
	if (string_member(jwk, "kty", &kty) != 1)
	{
		dci_sig_set_err(err, errlen, "key %d: \"kty\" is missing or not a string", i);
		return -1;
	}
	if (string_member(jwk, "use", &use) < 0 || string_member(jwk, "alg", &alg) < 0 ||
		string_member(jwk, "crv", &crv) < 0)
	{
		dci_sig_set_err(err, errlen, "key %d: \"use\", \"alg\" or \"crv\" is not a string", i);
		return -1;
	}
	if (use != NULL && strcmp(use, "sig") != 0)
		return 0;
	if (strcmp(kty, "OKP") == 0)
	{
		unsigned char *x;
		size_t		   xlen;

		if (crv == NULL || strcmp(crv, "Ed25519") != 0 ||
			(alg != NULL && strcmp(alg, "EdDSA") != 0 && strcmp(alg, "Ed25519") != 0))
			return 0;
		if ((x = b64_member(jwk, i, "x", &xlen, err, errlen)) == NULL)
			return -1;
		*key = dci_sigkey_from_ed25519_x(x, xlen, why, sizeof(why));
		free(x);
	}
	else if (strcmp(kty, "RSA") == 0)
	{
		unsigned char *n;
		unsigned char *e;
		size_t		   nlen,
					   elen;

		if (alg != NULL && strcmp(alg, "RS256") != 0)
			return 0;
		if ((n = b64_member(jwk, i, "n", &nlen, err, errlen)) == NULL)
			return -1;
		if ((e = b64_member(jwk, i, "e", &elen, err, errlen)) == NULL)
		{
			free(n);
			return -1;
		}
		*key = dci_sigkey_from_rsa_ne(n, nlen, e, elen, why, sizeof(why));
		free(n);
		free(e);
	}
	else
		return 0;
	if (*key == NULL)
	{
		dci_sig_set_err(err, errlen, "key %d: %s", i, why);
		return -1;
	}
	return 1;
}

DciJwkSet *
dci_jwkset_parse(const char *text, size_t len, char *err, size_t errlen)
{
	struct json_tokener *tok;
	struct json_object	*doc = NULL;
	struct json_object	*keys;
	DciJwkSet			*set = NULL;
	size_t				 n;

	if (len > DCI_JWKS_MAX_BYTES)
	{
		dci_sig_set_err(err, errlen, "the key set is %zu bytes, more than %d", len, DCI_JWKS_MAX_BYTES);
		return NULL;
	}
	tok = json_tokener_new_ex(JWKS_MAX_DEPTH);
	if (tok == NULL)
	{
		dci_sig_set_err(err, errlen, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc = json_tokener_parse_ex(tok, text, (int) len);
	if (doc == NULL || json_tokener_get_error(tok) != json_tokener_success ||
		json_tokener_get_parse_end(tok) != len)
	{
		dci_sig_set_err(err, errlen, "the key set is not JSON (or nests deeper than %d levels)", JWKS_MAX_DEPTH);
		goto done;
	}
	if (!json_object_is_type(doc, json_type_object) || !json_object_object_get_ex(doc, "keys", &keys) ||
		!json_object_is_type(keys, json_type_array))
	{
		dci_sig_set_err(err, errlen, "the key set is not an object with a \"keys\" array");
		goto done;
	}
	n = json_object_array_length(keys);
	if (n > DCI_JWKS_MAX_KEYS)
	{
		dci_sig_set_err(err, errlen, "the key set has %zu keys, more than %d", n, DCI_JWKS_MAX_KEYS);
		goto done;
	}
	set = calloc(1, sizeof(DciJwkSet));
	if (set == NULL || (n > 0 && (set->keys = calloc(n, sizeof(DciJwkEntry))) == NULL))
	{
		dci_sig_set_err(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++)
	{
		struct json_object *jwk = json_object_array_get_idx(keys, i);
		DciSigKey		   *key;
		const char		   *kid = NULL;
		DciJwkEntry		   *e;
		int					r = parse_key(jwk, (int) i, &key, err, errlen);

		if (r < 0)
			goto fail;
		if (r == 0)
		{
			set->skipped++;
			continue;
		}
		if (string_member(jwk, "kid", &kid) < 0 || (kid != NULL && (strlen(kid) > DCI_JWKS_MAX_KID || *kid == '\0')))
		{
			dci_sig_set_err(err, errlen, "key %zu: \"kid\" is not a non-empty string of at most %d bytes",
							i, DCI_JWKS_MAX_KID);
			dci_sigkey_free(key);
			goto fail;
		}
		for (int j = 0; kid != NULL && j < set->nkeys; j++)
			if (set->keys[j].kid != NULL && strcmp(set->keys[j].kid, kid) == 0)
			{
				/* which of the two would be meant is anyone's guess: neither */
				dci_sig_set_err(err, errlen, "keys %d and %zu have the same kid", j, i);
				dci_sigkey_free(key);
				goto fail;
			}
		e = &set->keys[set->nkeys++];
		e->key = key;
		e->kid = kid ? strdup(kid) : NULL;
		e->thumbprint = dci_sigkey_thumbprint(key);
		if ((kid != NULL && e->kid == NULL) || e->thumbprint == NULL)
		{
			dci_sig_set_err(err, errlen, "out of memory");
			goto fail;
		}
	}
	goto done;

fail:
	dci_jwkset_free(set);
	set = NULL;
done:
	if (doc != NULL)
		json_object_put(doc);
	json_tokener_free(tok);
	return set;
}

/* the n-th '|'-separated part of a three-part kid (start, length); false when not three parts */
static bool
kid_parts(const char *kid, const char *part[3], size_t plen[3])
{
	const char *p = kid;

	for (int i = 0; i < 3; i++)
	{
		const char *bar = strchr(p, '|');

		if ((i < 2) != (bar != NULL))
			return false;
		part[i] = p;
		plen[i] = bar ? (size_t) (bar - p) : strlen(p);
		p = bar ? bar + 1 : p;
	}
	return true;
}

static bool
part_is(const char *part, size_t len, const char *s)
{
	return s != NULL && strlen(s) == len && memcmp(part, s, len) == 0;
}

/* how well e matches kid: 0 not at all, higher is better */
static int
match_rank(const DciJwkEntry *e, const char *kid)
{
	const char *sp[3],
			   *ep[3];
	size_t		sl[3],
				el[3];
	bool		three = kid_parts(kid, sp, sl);

	if (e->kid != NULL && strcmp(e->kid, kid) == 0)
		return 5;
	if (three && e->kid != NULL && kid_parts(e->kid, ep, el) && sl[0] == el[0] &&
		memcmp(sp[0], ep[0], sl[0]) == 0 && sl[1] == el[1] && memcmp(sp[1], ep[1], sl[1]) == 0)
	{
		char a[32],
			 b[32];

		if (sl[2] < sizeof(a) && el[2] < sizeof(b))
		{
			memcpy(a, sp[2], sl[2]);
			a[sl[2]] = '\0';
			memcpy(b, ep[2], el[2]);
			b[el[2]] = '\0';
			if (dci_sig_alg_from_any_name(a) != DCI_SIG_UNKNOWN &&
				dci_sig_alg_from_any_name(a) == dci_sig_alg_from_any_name(b))
				return 4;
		}
	}
	if (three && part_is(sp[1], sl[1], e->kid))
		return 3;
	if (strcmp(e->thumbprint, kid) == 0)
		return 2;
	if (three && part_is(sp[1], sl[1], e->thumbprint))
		return 1;
	return 0;
}

const DciJwkEntry *
dci_jwkset_find(const DciJwkSet *set, const char *kid, DciSigAlg alg)
{
	const DciJwkEntry *best = NULL;
	int				   best_rank = 0;
	int				   candidates = 0;

	if (set == NULL)
		return NULL;
	for (int i = 0; i < set->nkeys; i++)
	{
		const DciJwkEntry *e = &set->keys[i];
		int				   r;

		if (alg != DCI_SIG_UNKNOWN && dci_sigkey_alg(e->key) != alg)
			continue;
		if (kid == NULL || *kid == '\0')
		{
			/* a signature that names no key: only a set with one key of its kind answers */
			candidates++;
			best = e;
			continue;
		}
		r = match_rank(e, kid);
		if (r > best_rank)
		{
			best = e;
			best_rank = r;
		}
	}
	if ((kid == NULL || *kid == '\0') && candidates != 1)
		return NULL;
	return best;
}

long
dci_cache_control_max_age(const char *value)
{
	const char *p = value;
	long		max_age = -1;

	if (value == NULL)
		return -1;
	while (*p)
	{
		const char *start;
		size_t		n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		start = p;
		while (*p && *p != ',' && *p != '=' && *p != ' ' && *p != '\t')
			p++;
		n = (size_t) (p - start);
		if ((n == 8 && strncasecmp(start, "no-store", 8) == 0) ||
			(n == 8 && strncasecmp(start, "no-cache", 8) == 0))
			return 0;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '=')
		{
			const char *v;
			bool		quoted;
			long		num = 0;
			bool		digits = false;

			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			quoted = *p == '"';
			if (quoted)
				p++;
			v = p;
			while (*p >= '0' && *p <= '9')
			{
				digits = true;
				if (num < 100000000L)
					num = num * 10 + (*p - '0');
				p++;
			}
			if (quoted && *p == '"')
				p++;
			if (n == 7 && strncasecmp(start, "max-age", 7) == 0 && digits && p > v)
				max_age = num;
			while (*p && *p != ',')
				p++;
		}
		else
			while (*p && *p != ',')
				p++;
	}
	return max_age;
}
