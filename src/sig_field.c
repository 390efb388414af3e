/*
 * sig_field.c
 *		The DCI signature field (README, "Signing"): digest, signing string,
 *		the field's format and parser, signing and verifying envelopes.
 *		Free of PostgreSQL headers.
 */
#include "sig_field.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "base64.h"
#include "canonical_json.h"

/* ---- digest and signing string ---- */

void
dci_sig_digest(const char *data, size_t len, char out[45])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char		 *b;

	SHA256((const unsigned char *) data, len, md);
	b = dci_b64_encode(md, sizeof(md), false);
	if (b == NULL)
	{
		out[0] = '\0';
		return;
	}
	memcpy(out, b, 45);
	free(b);
}

char *
dci_sig_signing_string(int64_t created, int64_t expires, const char *digest)
{
	size_t n = strlen(digest) + 80;
	char  *s = malloc(n);

	if (s)
		snprintf(s, n, "(created): %" PRId64 "\n(expires): %" PRId64 "\ndigest: %s",
				 created, expires, digest);
	return s;
}

/* ---- the field ---- */

char *
dci_sig_field_format(const char *sender_id, const char *key_id, const char *algorithm,
					 int64_t created, int64_t expires, const char *signature_b64)
{
	size_t n;
	char  *s;

	if (sender_id == NULL)
		sender_id = "";
	if (!dci_sig_field_safe(sender_id) || !dci_sig_field_safe(key_id) || !dci_sig_field_safe(algorithm) ||
		!dci_sig_field_safe(signature_b64))
		return NULL;
	n = strlen(sender_id) + strlen(key_id) + 2 * strlen(algorithm) +
		strlen(signature_b64) + 200;
	s = malloc(n);
	if (s)
		snprintf(s, n,
				 "namespace=\"dci\", kidId=\"%s|%s|%s\", algorithm=\"%s\", "
				 "created=\"%" PRId64 "\", expires=\"%" PRId64 "\", "
				 "headers=\"" DCI_SIG_HEADERS "\", signature=\"%s\"",
				 sender_id, key_id, algorithm, algorithm, created, expires, signature_b64);
	return s;
}

void
dci_sig_field_free(DciSigField *f)
{
	free(f->namespace_);
	free(f->kid_id);
	free(f->algorithm);
	free(f->headers);
	free(f->signature);
	memset(f, 0, sizeof(*f));
}

static bool
parse_time(const char *v, int64_t *out)
{
	int64_t r = 0;
	size_t	n = strlen(v);

	if (n == 0 || n > 18)
		return false;
	for (const char *p = v; *p; p++)
	{
		if (*p < '0' || *p > '9')
			return false;
		r = r * 10 + (*p - '0');
	}
	*out = r;
	return true;
}

/*
 * Long (~130 lines) for a reason: one scanner over name="value" pairs whose
 * cases share the cursor and the seen-once checks; it is unit-tested and
 * fuzzed as one piece.
 */
bool
dci_sig_field_parse(const char *s, size_t len, DciSigField *f, char *err, size_t errlen)
{
	const char *p = s;
	const char *end = s + len;
	char	   *created = NULL;
	char	   *expires = NULL;
	bool		ok = false;
	bool		first = true;

	memset(f, 0, sizeof(*f));
	if (len > DCI_SIG_FIELD_MAX)
	{
		dci_sig_set_err(err, errlen, "signature field longer than %d bytes", DCI_SIG_FIELD_MAX);
		return false;
	}
	for (;;)
	{
		const char *name;
		size_t		nlen;
		const char *val;
		size_t		vlen;
		char	  **slot = NULL;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= end && first)
			break; /* empty: reported as missing parameters */
		first = false;
		name = p;
		while (p < end && (isalnum((unsigned char) *p) || *p == '_' || *p == '-'))
			p++;
		nlen = p - name;
		if (nlen == 0 || p + 1 >= end || p[0] != '=' || p[1] != '"')
		{
			dci_sig_set_err(err, errlen, "expected name=\"value\" at offset %zu", (size_t) (name - s));
			goto done;
		}
		p += 2;
		val = p;
		while (p < end && *p != '"')
		{
			if ((unsigned char) *p < 0x20 || *p == '\\' || *p == 0x7F)
			{
				dci_sig_set_err(err, errlen, "invalid character in a value at offset %zu", (size_t) (p - s));
				goto done;
			}
			p++;
		}
		if (p >= end)
		{
			dci_sig_set_err(err, errlen, "unterminated value at offset %zu", (size_t) (val - s));
			goto done;
		}
		vlen = p - val;
		p++; /* closing quote */

#define NAME_IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, nlen) == 0)
		if (NAME_IS("namespace"))
			slot = &f->namespace_;
		else if (NAME_IS("kidId"))
			slot = &f->kid_id;
		else if (NAME_IS("algorithm"))
			slot = &f->algorithm;
		else if (NAME_IS("created"))
			slot = &created;
		else if (NAME_IS("expires"))
			slot = &expires;
		else if (NAME_IS("headers"))
			slot = &f->headers;
		else if (NAME_IS("signature"))
			slot = &f->signature;
#undef NAME_IS
		if (slot != NULL)
		{
			if (*slot != NULL)
			{
				dci_sig_set_err(err, errlen, "parameter \"%.*s\" appears twice", (int) nlen, name);
				goto done;
			}
			*slot = malloc(vlen + 1);
			if (*slot == NULL)
			{
				dci_sig_set_err(err, errlen, "out of memory");
				goto done;
			}
			memcpy(*slot, val, vlen);
			(*slot)[vlen] = '\0';
		}

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= end)
			break;
		if (*p != ',')
		{
			dci_sig_set_err(err, errlen, "expected ',' at offset %zu", (size_t) (p - s));
			goto done;
		}
		p++;
	}

	if (f->algorithm == NULL || created == NULL || expires == NULL || f->signature == NULL)
	{
		dci_sig_set_err(err, errlen, "missing parameter \"%s\"",
						f->algorithm == NULL ? "algorithm" : created == NULL ? "created"
														 : expires == NULL	 ? "expires"
																			 : "signature");
		goto done;
	}
	if (!parse_time(created, &f->created) || !parse_time(expires, &f->expires))
	{
		dci_sig_set_err(err, errlen, "created and expires must be Unix times in seconds");
		goto done;
	}
	if (f->namespace_ != NULL && strcmp(f->namespace_, "dci") != 0)
	{
		dci_sig_set_err(err, errlen, "namespace is not \"dci\"");
		goto done;
	}
	if (f->headers != NULL && strcmp(f->headers, DCI_SIG_HEADERS) != 0)
	{
		dci_sig_set_err(err, errlen, "headers is not \"" DCI_SIG_HEADERS "\"");
		goto done;
	}
	ok = true;
done:
	free(created);
	free(expires);
	if (!ok)
		dci_sig_field_free(f);
	return ok;
}

/* ---- the scheme ---- */

char *
dci_sig_sign(const DciSigKey *key, const char *sender_id, const char *key_id,
			 const char *hm, size_t hm_len, int64_t created, int64_t expires,
			 char *err, size_t errlen)
{
	return dci_sig_sign_as(key, sender_id, key_id, dci_sig_alg_name(dci_sigkey_alg(key)), hm, hm_len,
						   created, expires, err, errlen);
}

char *
dci_sig_sign_as(const DciSigKey *key, const char *sender_id, const char *key_id,
				const char *alg_name, const char *hm, size_t hm_len, int64_t created,
				int64_t expires, char *err, size_t errlen)
{
	char  digest[45];
	char *ss;
	char *sig;
	char *field;

	dci_sig_digest(hm, hm_len, digest);
	ss = dci_sig_signing_string(created, expires, digest);
	if (ss == NULL)
	{
		dci_sig_set_err(err, errlen, "out of memory");
		return NULL;
	}
	sig = dci_sigkey_sign(key, ss, strlen(ss), err, errlen);
	free(ss);
	if (sig == NULL)
		return NULL;
	field = dci_sig_field_format(sender_id, key_id, alg_name, created, expires, sig);
	free(sig);
	if (field == NULL)
		dci_sig_set_err(err, errlen, "sender_id and key_id may not hold double quotes, backslashes or control characters");
	return field;
}

DciVerifyResult
dci_sig_verify(const DciSigKey *key, const char *field, const char *hm, size_t hm_len,
			   int64_t now)
{
	DciSigField		f;
	char			digest[45];
	char		   *ss;
	DciVerifyResult r;

	if (field == NULL || *field == '\0')
		return DCI_VERIFY_MISSING;
	if (!dci_sig_field_parse(field, strlen(field), &f, NULL, 0))
		return DCI_VERIFY_MALFORMED;
	/* "rsa-sha256" as the README spells it, or "rs256" as OpenSPP does */
	if (dci_sig_alg_from_any_name(f.algorithm) != dci_sigkey_alg(key))
		r = DCI_VERIFY_ALGORITHM;
	else if (now > f.expires)
		r = DCI_VERIFY_EXPIRED;
	else if (f.created > now + DCI_SIG_CLOCK_SKEW)
		r = DCI_VERIFY_FUTURE;
	else
	{
		dci_sig_digest(hm, hm_len, digest);
		ss = dci_sig_signing_string(f.created, f.expires, digest);
		r = ss != NULL && dci_sigkey_verify(key, ss, strlen(ss), f.signature) ? DCI_VERIFY_OK : DCI_VERIFY_BAD_SIGNATURE;
		free(ss);
	}
	dci_sig_field_free(&f);
	return r;
}

DciVerifyResult
dci_sig_verify_envelope(const DciSigKey *key, const char *text, size_t len, int64_t now)
{
	char		   *hm;
	size_t			hm_len;
	char		   *sig;
	DciVerifyResult r;

	if (!cj_envelope(text, len, &hm, &hm_len, &sig, NULL, 0))
		return DCI_VERIFY_MALFORMED;
	r = dci_sig_verify(key, sig, hm, hm_len, now);
	free(hm);
	free(sig);
	return r;
}

const char *
dci_verify_result_text(DciVerifyResult r)
{
	switch (r)
	{
		case DCI_VERIFY_OK:
			return "The signature is valid.";
		case DCI_VERIFY_MISSING:
			return "The envelope carries no signature.";
		case DCI_VERIFY_MALFORMED:
			return "The envelope or its signature field cannot be parsed.";
		case DCI_VERIFY_ALGORITHM:
			return "The signature's algorithm is not that of the key.";
		case DCI_VERIFY_EXPIRED:
			return "The signature has expired.";
		case DCI_VERIFY_FUTURE:
			return "The signature was created in the future.";
		case DCI_VERIFY_BAD_SIGNATURE:
			return "The signature does not match the message.";
		case DCI_VERIFY_PAYLOAD:
			return "The JWS payload is not the envelope's header and message.";
	}
	return "Unknown result.";
}
