/*
 * signature.c
 *		DCI message signatures with OpenSSL 3 (README, "Signing").
 *
 * Every OpenSSL failure clears the thread's error queue before returning,
 * so that no stale error is later blamed on a TLS transfer by libcurl.
 * Free of PostgreSQL headers.
 */
#include "signature.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "canonical_json.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384

struct DciSigKey
{
	EVP_PKEY   *pkey;
	DciSigAlg	alg;
	bool		has_private;
};

static void set_err(char *err, size_t errlen, const char *fmt,...) __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

const char *
dci_sig_alg_name(DciSigAlg alg)
{
	switch (alg)
	{
		case DCI_SIG_ED25519:
			return "ed25519";
		case DCI_SIG_RSA_SHA256:
			return "rsa-sha256";
		default:
			return "unknown";
	}
}

DciSigAlg
dci_sig_alg_from_name(const char *name)
{
	if (name == NULL)
		return DCI_SIG_UNKNOWN;
	if (strcmp(name, "ed25519") == 0)
		return DCI_SIG_ED25519;
	if (strcmp(name, "rsa-sha256") == 0)
		return DCI_SIG_RSA_SHA256;
	return DCI_SIG_UNKNOWN;
}

/* ---- base64 ---- */

static char *
b64_encode(const unsigned char *data, size_t len, bool url)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char urlsafe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *alpha = url ? urlsafe : std;
	char	   *out = malloc(((len + 2) / 3) * 4 + 1);
	size_t		o = 0;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 3)
	{
		uint32_t	v = (uint32_t) data[i] << 16;
		size_t		n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (uint32_t) data[i + 1] << 8;
		if (n > 2)
			v |= data[i + 2];
		out[o++] = alpha[(v >> 18) & 63];
		out[o++] = alpha[(v >> 12) & 63];
		if (n > 1)
			out[o++] = alpha[(v >> 6) & 63];
		else if (!url)
			out[o++] = '=';
		if (n > 2)
			out[o++] = alpha[v & 63];
		else if (!url)
			out[o++] = '=';
	}
	out[o] = '\0';
	return out;
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* strict standard base64 with padding; malloc'd bytes, NULL when invalid */
static unsigned char *
b64_decode(const char *s, size_t *out_len)
{
	size_t		len = strlen(s);
	unsigned char *out;
	size_t		o = 0;

	if (len == 0 || len % 4 != 0)
		return NULL;
	out = malloc(len / 4 * 3);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += 4)
	{
		int			v[4];
		int			pad = 0;

		for (int j = 0; j < 4; j++)
		{
			char		c = s[i + j];

			if (c == '=' && i + 4 == len && j >= 2)
			{
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[j] = b64_value(c)) < 0)
			{
				free(out);
				return NULL;
			}
		}
		out[o++] = (unsigned char) ((v[0] << 2) | (v[1] >> 4));
		if (pad < 2)
			out[o++] = (unsigned char) (((v[1] & 15) << 4) | (v[2] >> 2));
		if (pad < 1)
			out[o++] = (unsigned char) (((v[2] & 3) << 6) | v[3]);
	}
	*out_len = o;
	return out;
}

/* ---- digest and signing string ---- */

void
dci_sig_digest(const char *data, size_t len, char out[45])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char	   *b;

	SHA256((const unsigned char *) data, len, md);
	b = b64_encode(md, sizeof(md), false);
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
	size_t		n = strlen(digest) + 80;
	char	   *s = malloc(n);

	if (s)
		snprintf(s, n, "(created): %" PRId64 "\n(expires): %" PRId64 "\ndigest: %s",
				 created, expires, digest);
	return s;
}

/* ---- the field ---- */

static bool
field_safe(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char) *s < 0x20 || *s == 0x7F)
			return false;
	return true;
}

char *
dci_sig_field_format(const char *sender_id, const char *key_id, const char *algorithm,
					 int64_t created, int64_t expires, const char *signature_b64)
{
	size_t		n;
	char	   *s;

	if (sender_id == NULL)
		sender_id = "";
	if (!field_safe(sender_id) || !field_safe(key_id) || !field_safe(algorithm) ||
		!field_safe(signature_b64))
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
	int64_t		r = 0;
	size_t		n = strlen(v);

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
		set_err(err, errlen, "signature field longer than %d bytes", DCI_SIG_FIELD_MAX);
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
			break;				/* empty: reported as missing parameters */
		first = false;
		name = p;
		while (p < end && (isalnum((unsigned char) *p) || *p == '_' || *p == '-'))
			p++;
		nlen = p - name;
		if (nlen == 0 || p + 1 >= end || p[0] != '=' || p[1] != '"')
		{
			set_err(err, errlen, "expected name=\"value\" at offset %zu", (size_t) (name - s));
			goto done;
		}
		p += 2;
		val = p;
		while (p < end && *p != '"')
		{
			if ((unsigned char) *p < 0x20 || *p == '\\' || *p == 0x7F)
			{
				set_err(err, errlen, "invalid character in a value at offset %zu", (size_t) (p - s));
				goto done;
			}
			p++;
		}
		if (p >= end)
		{
			set_err(err, errlen, "unterminated value at offset %zu", (size_t) (val - s));
			goto done;
		}
		vlen = p - val;
		p++;					/* closing quote */

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
				set_err(err, errlen, "parameter \"%.*s\" appears twice", (int) nlen, name);
				goto done;
			}
			*slot = malloc(vlen + 1);
			if (*slot == NULL)
			{
				set_err(err, errlen, "out of memory");
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
			set_err(err, errlen, "expected ',' at offset %zu", (size_t) (p - s));
			goto done;
		}
		p++;
	}

	if (f->algorithm == NULL || created == NULL || expires == NULL || f->signature == NULL)
	{
		set_err(err, errlen, "missing parameter \"%s\"",
				f->algorithm == NULL ? "algorithm" : created == NULL ? "created" :
				expires == NULL ? "expires" : "signature");
		goto done;
	}
	if (!parse_time(created, &f->created) || !parse_time(expires, &f->expires))
	{
		set_err(err, errlen, "created and expires must be Unix times in seconds");
		goto done;
	}
	if (f->namespace_ != NULL && strcmp(f->namespace_, "dci") != 0)
	{
		set_err(err, errlen, "namespace is not \"dci\"");
		goto done;
	}
	if (f->headers != NULL && strcmp(f->headers, DCI_SIG_HEADERS) != 0)
	{
		set_err(err, errlen, "headers is not \"" DCI_SIG_HEADERS "\"");
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

/* ---- keys ---- */

static int
no_password(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static DciSigKey *
wrap_key(EVP_PKEY *pkey, bool has_private, char *err, size_t errlen)
{
	DciSigKey  *key;
	DciSigAlg	alg;

	switch (EVP_PKEY_get_id(pkey))
	{
		case EVP_PKEY_ED25519:
			alg = DCI_SIG_ED25519;
			break;
		case EVP_PKEY_RSA:
			alg = DCI_SIG_RSA_SHA256;
			if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
			{
				set_err(err, errlen, "RSA key of %d bits: at least %d are needed",
						EVP_PKEY_get_bits(pkey), RSA_MIN_BITS);
				EVP_PKEY_free(pkey);
				return NULL;
			}
			break;
		default:
			set_err(err, errlen, "key type is neither Ed25519 nor RSA");
			EVP_PKEY_free(pkey);
			return NULL;
	}
	key = calloc(1, sizeof(DciSigKey));
	if (key == NULL)
	{
		set_err(err, errlen, "out of memory");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	key->pkey = pkey;
	key->alg = alg;
	key->has_private = has_private;
	return key;
}

DciSigKey *
dci_sigkey_load(const char *pem, bool private_key, char *err, size_t errlen)
{
	EVP_PKEY   *pkey = NULL;
	BIO		   *bio;

	if (pem == NULL || *pem == '\0')
	{
		set_err(err, errlen, "no key");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
	{
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (private_key)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	else if (strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL)
	{
		X509	   *cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);

		if (cert != NULL)
		{
			pkey = X509_get_pubkey(cert);
			X509_free(cert);
		}
	}
	else
	{
		/* SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY") */
		OSSL_DECODER_CTX *dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
															   EVP_PKEY_PUBLIC_KEY, NULL, NULL);

		if (dctx != NULL)
		{
			if (!OSSL_DECODER_from_bio(dctx, bio))
				pkey = NULL;
			OSSL_DECODER_CTX_free(dctx);
		}
	}
	BIO_free(bio);
	ERR_clear_error();
	if (pkey == NULL)
	{
		set_err(err, errlen, private_key ?
				"not an unencrypted PEM private key" :
				"not a PEM public key or certificate");
		return NULL;
	}
	return wrap_key(pkey, private_key, err, errlen);
}

void
dci_sigkey_free(DciSigKey *key)
{
	if (key == NULL)
		return;
	EVP_PKEY_free(key->pkey);
	free(key);
}

DciSigAlg
dci_sigkey_alg(const DciSigKey *key)
{
	return key->alg;
}

bool
dci_sigkey_has_private(const DciSigKey *key)
{
	return key->has_private;
}

bool
dci_sigkey_same_public(const DciSigKey *a, const DciSigKey *b)
{
	int			r = EVP_PKEY_eq(a->pkey, b->pkey);

	ERR_clear_error();
	return r == 1;
}

static char *
bio_to_string(BIO *bio)
{
	char	   *data;
	long		n = BIO_get_mem_data(bio, &data);
	char	   *s = malloc(n + 1);

	if (s)
	{
		memcpy(s, data, n);
		s[n] = '\0';
	}
	return s;
}

char *
dci_sigkey_public_pem(const DciSigKey *key)
{
	BIO		   *bio = BIO_new(BIO_s_mem());
	char	   *s = NULL;

	if (bio == NULL)
		return NULL;
	if (PEM_write_bio_PUBKEY(bio, key->pkey))
		s = bio_to_string(bio);
	BIO_free(bio);
	ERR_clear_error();
	return s;
}

/* the base64url members of the public JWK: x (Ed25519) or n and e (RSA) */
static bool
jwk_members(const DciSigKey *key, char **a, char **b)
{
	*a = *b = NULL;
	if (key->alg == DCI_SIG_ED25519)
	{
		unsigned char raw[64];
		size_t		n = sizeof(raw);

		if (!EVP_PKEY_get_raw_public_key(key->pkey, raw, &n))
		{
			ERR_clear_error();
			return false;
		}
		*a = b64_encode(raw, n, true);
		return *a != NULL;
	}
	else
	{
		BIGNUM	   *bn_n = NULL;
		BIGNUM	   *bn_e = NULL;
		bool		ok = false;

		if (EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_N, &bn_n) &&
			EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_E, &bn_e))
		{
			unsigned char *nb = malloc(BN_num_bytes(bn_n) + 1);
			unsigned char *eb = malloc(BN_num_bytes(bn_e) + 1);

			if (nb && eb)
			{
				int			nl = BN_bn2bin(bn_n, nb);
				int			el = BN_bn2bin(bn_e, eb);

				*a = b64_encode(nb, nl, true);
				*b = b64_encode(eb, el, true);
				ok = *a && *b;
			}
			free(nb);
			free(eb);
		}
		BN_free(bn_n);
		BN_free(bn_e);
		ERR_clear_error();
		if (!ok)
		{
			free(*a);
			free(*b);
			*a = *b = NULL;
		}
		return ok;
	}
}

char *
dci_sigkey_thumbprint(const DciSigKey *key)
{
	char	   *a,
			   *b;
	char	   *json;
	size_t		n;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char	   *r = NULL;

	if (!jwk_members(key, &a, &b))
		return NULL;
	/* RFC 7638: the required members, sorted, no whitespace */
	n = strlen(a) + (b ? strlen(b) : 0) + 64;
	json = malloc(n);
	if (json)
	{
		if (key->alg == DCI_SIG_ED25519)
			snprintf(json, n, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", a);
		else
			snprintf(json, n, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", b, a);
		SHA256((const unsigned char *) json, strlen(json), md);
		r = b64_encode(md, sizeof(md), true);
		free(json);
	}
	free(a);
	free(b);
	return r;
}

char *
dci_sigkey_jwk(const DciSigKey *key, const char *kid)
{
	char	   *a,
			   *b;
	char	   *json;
	size_t		n;

	if (kid == NULL || !field_safe(kid) || !jwk_members(key, &a, &b))
		return NULL;
	n = strlen(a) + (b ? strlen(b) : 0) + strlen(kid) + 128;
	json = malloc(n);
	if (json)
	{
		if (key->alg == DCI_SIG_ED25519)
			snprintf(json, n, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\","
					 "\"alg\":\"EdDSA\",\"use\":\"sig\"}", a, kid);
		else
			snprintf(json, n, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"%s\","
					 "\"alg\":\"RS256\",\"use\":\"sig\"}", a, b, kid);
	}
	free(a);
	free(b);
	return json;
}

bool
dci_sigkey_generate(DciSigAlg alg, int bits, char **private_pem, char **public_pem,
					char *err, size_t errlen)
{
	EVP_PKEY   *pkey = NULL;
	BIO		   *priv = NULL;
	BIO		   *pub = NULL;
	bool		ok = false;

	*private_pem = *public_pem = NULL;
	if (alg == DCI_SIG_ED25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (alg == DCI_SIG_RSA_SHA256)
	{
		if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
		{
			set_err(err, errlen, "RSA keys have %d to %d bits", RSA_MIN_BITS, RSA_MAX_BITS);
			return false;
		}
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) bits);
	}
	else
	{
		set_err(err, errlen, "unknown algorithm");
		return false;
	}
	if (pkey == NULL)
	{
		set_err(err, errlen, "key generation failed");
		goto done;
	}
	priv = BIO_new(BIO_s_secmem());
	pub = BIO_new(BIO_s_mem());
	if (priv == NULL || pub == NULL ||
		!PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) ||
		!PEM_write_bio_PUBKEY(pub, pkey))
	{
		set_err(err, errlen, "could not write the key as PEM");
		goto done;
	}
	*private_pem = bio_to_string(priv);
	*public_pem = bio_to_string(pub);
	ok = *private_pem && *public_pem;
	if (!ok)
		set_err(err, errlen, "out of memory");
done:
	BIO_free(priv);				/* a secure-memory BIO is wiped when freed */
	BIO_free(pub);
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	if (!ok)
	{
		if (*private_pem)
		{
			OPENSSL_cleanse(*private_pem, strlen(*private_pem));
			free(*private_pem);
		}
		free(*public_pem);
		*private_pem = *public_pem = NULL;
	}
	return ok;
}

/* the raw signature of msg (malloc'd, its length in *siglen) */
static unsigned char *
sign_raw(const DciSigKey *key, const char *msg, size_t len, size_t *siglen,
		 char *err, size_t errlen)
{
	EVP_MD_CTX *ctx;
	unsigned char *sig = NULL;

	*siglen = 0;
	if (!key->has_private)
	{
		set_err(err, errlen, "not a private key");
		return NULL;
	}
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL ||
		EVP_DigestSignInit(ctx, NULL, key->alg == DCI_SIG_ED25519 ? NULL : EVP_sha256(),
						   NULL, key->pkey) != 1 ||
		EVP_DigestSign(ctx, NULL, siglen, (const unsigned char *) msg, len) != 1 ||
		(sig = malloc(*siglen)) == NULL ||
		EVP_DigestSign(ctx, sig, siglen, (const unsigned char *) msg, len) != 1)
	{
		set_err(err, errlen, "signing failed");
		free(sig);
		sig = NULL;
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return sig;
}

/* does the raw signature verify over msg? */
static bool
verify_raw(const DciSigKey *key, const char *msg, size_t len, const unsigned char *sig,
		   size_t siglen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool		ok;

	ok = ctx != NULL &&
		EVP_DigestVerifyInit(ctx, NULL, key->alg == DCI_SIG_ED25519 ? NULL : EVP_sha256(),
							 NULL, key->pkey) == 1 &&
		EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *) msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

char *
dci_sigkey_sign(const DciSigKey *key, const char *msg, size_t len, char *err, size_t errlen)
{
	size_t		siglen;
	unsigned char *sig = sign_raw(key, msg, len, &siglen, err, errlen);
	char	   *r;

	if (sig == NULL)
		return NULL;
	r = b64_encode(sig, siglen, false);
	free(sig);
	return r;
}

bool
dci_sigkey_verify(const DciSigKey *key, const char *msg, size_t len, const char *sig_b64)
{
	size_t		siglen;
	unsigned char *sig = b64_decode(sig_b64, &siglen);
	bool		ok;

	if (sig == NULL)
		return false;
	ok = verify_raw(key, msg, len, sig, siglen);
	free(sig);
	return ok;
}

/* ---- the scheme ---- */

char *
dci_sig_sign(const DciSigKey *key, const char *sender_id, const char *key_id,
			 const char *hm, size_t hm_len, int64_t created, int64_t expires,
			 char *err, size_t errlen)
{
	char		digest[45];
	char	   *ss;
	char	   *sig;
	char	   *field;

	dci_sig_digest(hm, hm_len, digest);
	ss = dci_sig_signing_string(created, expires, digest);
	if (ss == NULL)
	{
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	sig = dci_sigkey_sign(key, ss, strlen(ss), err, errlen);
	free(ss);
	if (sig == NULL)
		return NULL;
	field = dci_sig_field_format(sender_id, key_id, dci_sig_alg_name(key->alg),
								 created, expires, sig);
	free(sig);
	if (field == NULL)
		set_err(err, errlen, "sender_id and key_id may not hold double quotes, backslashes or control characters");
	return field;
}

DciVerifyResult
dci_sig_verify(const DciSigKey *key, const char *field, const char *hm, size_t hm_len,
			   int64_t now)
{
	DciSigField f;
	char		digest[45];
	char	   *ss;
	DciVerifyResult r;

	if (field == NULL || *field == '\0')
		return DCI_VERIFY_MISSING;
	if (!dci_sig_field_parse(field, strlen(field), &f, NULL, 0))
		return DCI_VERIFY_MALFORMED;
	if (dci_sig_alg_from_name(f.algorithm) != key->alg)
		r = DCI_VERIFY_ALGORITHM;
	else if (now > f.expires)
		r = DCI_VERIFY_EXPIRED;
	else if (f.created > now + DCI_SIG_CLOCK_SKEW)
		r = DCI_VERIFY_FUTURE;
	else
	{
		dci_sig_digest(hm, hm_len, digest);
		ss = dci_sig_signing_string(f.created, f.expires, digest);
		r = ss != NULL && dci_sigkey_verify(key, ss, strlen(ss), f.signature) ?
			DCI_VERIFY_OK : DCI_VERIFY_BAD_SIGNATURE;
		free(ss);
	}
	dci_sig_field_free(&f);
	return r;
}

DciVerifyResult
dci_sig_verify_envelope(const DciSigKey *key, const char *text, size_t len, int64_t now)
{
	char	   *hm;
	size_t		hm_len;
	char	   *sig;
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


/* ---- compact JWS (RFC 7515) ---- */

char *
dci_b64url_encode(const unsigned char *data, size_t len)
{
	return b64_encode(data, len, true);
}

static int
b64url_value(char c)
{
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	if (c == '+' || c == '/')
		return -1;
	return b64_value(c);
}

unsigned char *
dci_b64url_decode(const char *s, size_t len, size_t *out_len)
{
	unsigned char *out;
	size_t		o = 0;
	uint32_t	acc = 0;
	int			bits = 0;

	*out_len = 0;
	if (len % 4 == 1)
		return NULL;
	out = malloc(len / 4 * 3 + 3);
	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++)
	{
		int			v = b64url_value(s[i]);

		if (v < 0)
		{
			free(out);
			return NULL;
		}
		acc = (acc << 6) | (uint32_t) v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[o++] = (unsigned char) (acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* the bits left over must be zero: one text per value */
	if (acc != 0)
	{
		free(out);
		return NULL;
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

/* past the JSON string at *pp (its opening quote) */
static bool
skip_string(const char **pp, const char *end)
{
	const char *p = *pp + 1;

	while (p < end && *p != '"')
	{
		if (*p == '\\')
			p++;
		p++;
	}
	if (p >= end)
		return false;
	*pp = p + 1;
	return true;
}

/* past the JSON value at *pp: up to the ',' or the '}' / ']' that follows it */
static bool
skip_value(const char **pp, const char *end)
{
	const char *p = *pp;
	int			depth = 0;

	while (p < end)
	{
		char		c = *p;

		if (c == '"')
		{
			if (!skip_string(&p, end))
				return false;
			continue;
		}
		if (c == '{' || c == '[')
			depth++;
		else if (c == '}' || c == ']')
		{
			if (depth == 0)
				break;
			depth--;
		}
		else if (c == ',' && depth == 0)
			break;
		p++;
	}
	*pp = p;
	return p < end;
}

/*
 * In a canonical JSON text (compact, no duplicate names, names unescaped
 * where ASCII): is it an object, and where is the value of member name
 * (*val NULL when absent)?
 */
static bool
object_member(const char *canon, size_t len, const char *name, const char **val, size_t *vlen)
{
	const char *p = canon;
	const char *end = canon + len;
	size_t		nlen = strlen(name);

	*val = NULL;
	*vlen = 0;
	if (len < 2 || *p != '{')
		return false;
	p++;
	if (*p == '}')
		return true;
	for (;;)
	{
		const char *k = p;
		const char *v;

		if (p >= end || *p != '"' || !skip_string(&p, end))
			return false;
		if (p >= end || *p != ':')
			return false;
		v = ++p;
		if (!skip_value(&p, end) || p == v)
			return false;
		/* the name is k[1 .. v - 2): v - 2 is its closing quote, v - 1 the colon */
		if ((size_t) (v - 2 - (k + 1)) == nlen && memcmp(k + 1, name, nlen) == 0)
		{
			*val = v;
			*vlen = p - v;
		}
		if (*p == '}')
			return true;
		if (*p != ',')
			return false;
		p++;
	}
}

/* a malloc'd copy of a member's string value, quotes removed (NULL: not a string) */
static char *
string_member(const char *val, size_t vlen)
{
	char	   *r;

	if (vlen < 2 || val[0] != '"' || val[vlen - 1] != '"')
		return NULL;
	r = malloc(vlen - 1);
	if (r)
	{
		memcpy(r, val + 1, vlen - 2);
		r[vlen - 2] = '\0';
	}
	return r;
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
	const char *end = s + len;
	const char *d1;
	const char *d2;
	char	   *canon = NULL;
	size_t		clen;
	const char *v;
	size_t		vlen;
	char		cerr[128];

	memset(j, 0, sizeof(*j));
	if (len > DCI_JWS_MAX)
	{
		set_err(err, errlen, "JWS longer than %zu bytes", DCI_JWS_MAX);
		return false;
	}
	d1 = memchr(s, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', end - d1 - 1) : NULL;
	if (d2 == NULL || memchr(d2 + 1, '.', end - d2 - 1) != NULL)
	{
		set_err(err, errlen, "not a compact JWS (three base64url parts separated by dots)");
		return false;
	}
	if (d1 == s || d2 + 1 == end)
	{
		set_err(err, errlen, "the JWS header or signature is empty");
		return false;
	}
	j->header = (char *) dci_b64url_decode(s, d1 - s, &j->header_len);
	j->payload = dci_b64url_decode(d1 + 1, d2 - d1 - 1, &j->payload_len);
	j->sig = dci_b64url_decode(d2 + 1, end - d2 - 1, &j->sig_len);
	if (j->header == NULL || j->payload == NULL || j->sig == NULL)
	{
		set_err(err, errlen, "a JWS part is not unpadded base64url");
		goto fail;
	}
	canon = cj_canonicalize(j->header, j->header_len, &clen, cerr, sizeof(cerr));
	if (canon == NULL || !object_member(canon, clen, "crit", &v, &vlen))
	{
		set_err(err, errlen, "the JWS header is not a JSON object");
		goto fail;
	}
	if (v != NULL)
	{
		set_err(err, errlen, "the JWS header names critical extensions (\"crit\")");
		goto fail;
	}
	(void) object_member(canon, clen, "alg", &v, &vlen);
	if (v == NULL || (j->alg = string_member(v, vlen)) == NULL)
	{
		set_err(err, errlen, "the JWS header has no string \"alg\"");
		goto fail;
	}
	(void) object_member(canon, clen, "kid", &v, &vlen);
	if (v != NULL && (j->kid = string_member(v, vlen)) == NULL)
	{
		set_err(err, errlen, "the JWS header's \"kid\" is not a string");
		goto fail;
	}
	free(canon);
	j->signing_input_len = d2 - s;
	return true;
fail:
	free(canon);
	dci_jws_free(j);
	return false;
}

char *
dci_jws_sign(const DciSigKey *key, const char *kid, const char *payload, size_t payload_len,
			 char *err, size_t errlen)
{
	char	   *header;
	char	   *h64;
	char	   *p64;
	char	   *input = NULL;
	char	   *s64 = NULL;
	char	   *r = NULL;
	unsigned char *sig = NULL;
	size_t		siglen;
	size_t		n;

	if (key->alg != DCI_SIG_RSA_SHA256)
	{
		set_err(err, errlen, "JWS signatures are RS256: the key must be RSA");
		return NULL;
	}
	if (kid != NULL && !field_safe(kid))
	{
		set_err(err, errlen, "kid may not hold double quotes, backslashes or control characters");
		return NULL;
	}
	n = (kid ? strlen(kid) : 0) + 32;
	header = malloc(n);
	if (header == NULL)
	{
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	/* the shape of OpenCRVS's dci-crvs-api (jose CompactSign) */
	if (kid)
		snprintf(header, n, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
	else
		snprintf(header, n, "{\"alg\":\"RS256\"}");
	h64 = b64_encode((const unsigned char *) header, strlen(header), true);
	p64 = b64_encode((const unsigned char *) payload, payload_len, true);
	free(header);
	if (h64 && p64 && (input = malloc(strlen(h64) + strlen(p64) + 2)) != NULL)
	{
		size_t		ilen;

		sprintf(input, "%s.%s", h64, p64);
		ilen = strlen(input);
		sig = sign_raw(key, input, ilen, &siglen, err, errlen);
		if (sig && (s64 = b64_encode(sig, siglen, true)) != NULL &&
			(r = malloc(ilen + strlen(s64) + 2)) != NULL)
			sprintf(r, "%s.%s", input, s64);
		else if (sig)
			set_err(err, errlen, "out of memory");
	}
	else
		set_err(err, errlen, "out of memory");
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
	DciJws		j;
	DciVerifyResult r;

	if (parsed)
		memset(parsed, 0, sizeof(*parsed));
	if (jws == NULL || len == 0)
		return DCI_VERIFY_MISSING;
	if (!dci_jws_parse(jws, len, &j, NULL, 0))
		return DCI_VERIFY_MALFORMED;
	if (strcmp(j.alg, "RS256") != 0 || key->alg != DCI_SIG_RSA_SHA256)
		r = DCI_VERIFY_ALGORITHM;
	else if (!verify_raw(key, jws, j.signing_input_len, j.sig, j.sig_len))
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
	char	   *hm;
	size_t		hm_len;
	char	   *sig;
	char	   *signed_hm;
	size_t		signed_len;
	DciJws		j;
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
