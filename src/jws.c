/*
 * jws.c
 *		The second signature format: compact JWS (RFC 7515), RS256, as
 *		OpenCRVS signs.  The protected header is read with json-c; the
 *		envelope comparison uses the canonicaliser.  Free of PostgreSQL
 *		headers.
 */
#include "jws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "base64.h"
#include "canonical_json.h"
#include "sig_field.h"

/* a malloc'd copy of a string member of a json-c object, NULL when absent or not a string */
static char *
string_member(struct json_object *obj, const char *name, bool *present)
{
	struct json_object *v;

	*present = json_object_object_get_ex(obj, name, &v);
	if (!*present || !json_object_is_type(v, json_type_string))
		return NULL;
	/* "RS256\u0000junk" is not "RS256" */
	if ((size_t) json_object_get_string_len(v) != strlen(json_object_get_string(v)))
		return NULL;
	return strdup(json_object_get_string(v));
}

void
dci_jws_free(DciJws *j)
{
	free(j->header);
	free(j->alg);
	free(j->kid);
	free(j->payload);
	free(j->sig);
	memset(j, 0, sizeof(*j));
}

bool
dci_jws_parse(const char *s, size_t len, DciJws *j, char *err, size_t errlen)
{
	const char			*end = s + len;
	const char			*d1;
	const char			*d2;
	struct json_tokener *tok = NULL;
	struct json_object	*hdr = NULL;
	bool				 present;
	char				*canon = NULL;
	size_t				 clen = 0;

	memset(j, 0, sizeof(*j));
	if (len > DCI_JWS_MAX)
	{
		dci_sig_set_err(err, errlen, "JWS longer than %zu bytes", DCI_JWS_MAX);
		return false;
	}
	d1 = memchr(s, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', end - d1 - 1) : NULL;
	if (d2 == NULL || memchr(d2 + 1, '.', end - d2 - 1) != NULL)
	{
		dci_sig_set_err(err, errlen, "not a compact JWS (three base64url parts separated by dots)");
		return false;
	}
	if (d1 == s || d2 + 1 == end)
	{
		dci_sig_set_err(err, errlen, "the JWS header or signature is empty");
		return false;
	}
	j->header = (char *) dci_b64_decode(s, d1 - s, true, &j->header_len);
	j->payload = dci_b64_decode(d1 + 1, d2 - d1 - 1, true, &j->payload_len);
	j->sig = dci_b64_decode(d2 + 1, end - d2 - 1, true, &j->sig_len);
	if (j->header == NULL || j->payload == NULL || j->sig == NULL)
	{
		dci_sig_set_err(err, errlen, "a JWS part is not unpadded base64url");
		goto fail;
	}
	/*
	 * The grammar is Python's json (the canonicaliser: no comments, single
	 * quotes, trailing commas or raw control characters, and it keeps the
	 * last of repeated names, as RFC 7515 §4 allows); its canonical text is
	 * then read with json-c in strict mode for the members.
	 */
	canon = cj_canonicalize(j->header, j->header_len, &clen, NULL, 0);
	tok = canon ? json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH) : NULL;
	if (tok)
		json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	hdr = tok ? json_tokener_parse_ex(tok, canon, (int) clen) : NULL;
	if (hdr == NULL || json_tokener_get_error(tok) != json_tokener_success ||
		json_tokener_get_parse_end(tok) != clen ||
		!json_object_is_type(hdr, json_type_object))
	{
		dci_sig_set_err(err, errlen, "the JWS header is not a JSON object");
		goto fail;
	}
	if (json_object_object_get_ex(hdr, "crit", NULL))
	{
		dci_sig_set_err(err, errlen, "the JWS header names critical extensions (\"crit\")");
		goto fail;
	}
	if ((j->alg = string_member(hdr, "alg", &present)) == NULL)
	{
		dci_sig_set_err(err, errlen, "the JWS header has no string \"alg\"");
		goto fail;
	}
	j->kid = string_member(hdr, "kid", &present);
	if (present && j->kid == NULL)
	{
		dci_sig_set_err(err, errlen, "the JWS header's \"kid\" is not a string");
		goto fail;
	}
	json_object_put(hdr);
	json_tokener_free(tok);
	free(canon);
	j->signing_input_len = d2 - s;
	return true;
fail:
	free(canon);
	if (hdr)
		json_object_put(hdr);
	if (tok)
		json_tokener_free(tok);
	dci_jws_free(j);
	return false;
}

char *
dci_jws_sign(const DciSigKey *key, const char *kid, const char *payload, size_t payload_len,
			 char *err, size_t errlen)
{
	char		  *header;
	char		  *h64;
	char		  *p64;
	char		  *input = NULL;
	char		  *s64 = NULL;
	char		  *r = NULL;
	unsigned char *sig = NULL;
	size_t		   siglen;
	size_t		   n;

	if (dci_sigkey_alg(key) != DCI_SIG_RSA_SHA256)
	{
		dci_sig_set_err(err, errlen, "JWS signatures are RS256: the key must be RSA");
		return NULL;
	}
	if (kid != NULL && !dci_sig_field_safe(kid))
	{
		dci_sig_set_err(err, errlen, "kid may not hold double quotes, backslashes or control characters");
		return NULL;
	}
	n = (kid ? strlen(kid) : 0) + 32;
	header = malloc(n);
	if (header == NULL)
	{
		dci_sig_set_err(err, errlen, "out of memory");
		return NULL;
	}
	/* the shape of OpenCRVS's dci-crvs-api (jose CompactSign) */
	if (kid)
		snprintf(header, n, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
	else
		snprintf(header, n, "{\"alg\":\"RS256\"}");
	h64 = dci_b64_encode((const unsigned char *) header, strlen(header), true);
	p64 = dci_b64_encode((const unsigned char *) payload, payload_len, true);
	free(header);
	if (h64 && p64 && (input = malloc(strlen(h64) + strlen(p64) + 2)) != NULL)
	{
		size_t ilen;

		sprintf(input, "%s.%s", h64, p64);
		ilen = strlen(input);
		sig = dci_sigkey_sign_bytes(key, input, ilen, &siglen, err, errlen);
		if (sig && (s64 = dci_b64_encode(sig, siglen, true)) != NULL &&
			(r = malloc(ilen + strlen(s64) + 2)) != NULL)
			sprintf(r, "%s.%s", input, s64);
		else if (sig)
			dci_sig_set_err(err, errlen, "out of memory");
	}
	else
		dci_sig_set_err(err, errlen, "out of memory");
	free(h64);
	free(p64);
	free(input);
	free(sig);
	free(s64);
	return r;
}

DciVerifyResult
dci_jws_verify(const DciSigKey *key, const char *jws, size_t len, DciJws *parsed)
{
	DciJws			j;
	DciVerifyResult r;

	if (parsed)
		memset(parsed, 0, sizeof(*parsed));
	if (jws == NULL || len == 0)
		return DCI_VERIFY_MISSING;
	if (!dci_jws_parse(jws, len, &j, NULL, 0))
		return DCI_VERIFY_MALFORMED;
	if (strcmp(j.alg, "RS256") != 0 || dci_sigkey_alg(key) != DCI_SIG_RSA_SHA256)
		r = DCI_VERIFY_ALGORITHM;
	else if (!dci_sigkey_verify_bytes(key, jws, j.signing_input_len, j.sig, j.sig_len))
		r = DCI_VERIFY_BAD_SIGNATURE;
	else
		r = DCI_VERIFY_OK;
	if (parsed && r == DCI_VERIFY_OK)
		*parsed = j;
	else
		dci_jws_free(&j);
	return r;
}

DciVerifyResult
dci_jws_verify_envelope(const DciSigKey *key, const char *text, size_t len)
{
	char		   *hm;
	size_t			hm_len;
	char		   *sig;
	char		   *signed_hm;
	size_t			signed_len;
	DciJws			j;
	DciVerifyResult r;

	if (!cj_envelope(text, len, &hm, &hm_len, &sig, NULL, 0))
		return DCI_VERIFY_MALFORMED;
	r = dci_jws_verify(key, sig, sig ? strlen(sig) : 0, &j);
	if (r == DCI_VERIFY_OK)
	{
		/* what was signed is this header and message, whatever its spelling */
		if (!cj_envelope((const char *) j.payload, j.payload_len, &signed_hm, &signed_len,
						 NULL, NULL, 0))
			r = DCI_VERIFY_PAYLOAD;
		else
		{
			if (signed_len != hm_len || memcmp(signed_hm, hm, hm_len) != 0)
				r = DCI_VERIFY_PAYLOAD;
			free(signed_hm);
		}
		dci_jws_free(&j);
	}
	free(hm);
	free(sig);
	return r;
}
