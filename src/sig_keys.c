/*
 * sig_keys.c
 *		Signing keys with OpenSSL 3: Ed25519 and RSA (2048 bits or more)
 *		from PEM, generation, raw signatures (Ed25519, RSA PKCS#1 v1.5 over
 *		SHA-256), RFC 7638 thumbprints and RFC 7517 JWKs.
 *
 * Every OpenSSL failure clears the thread's error queue before returning,
 * so that no stale error is later blamed on a TLS transfer by libcurl.
 * Free of PostgreSQL headers.
 */
#include "sig_keys.h"

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
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "base64.h"

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384

struct DciSigKey
{
	EVP_PKEY *pkey;
	DciSigAlg alg;
	bool	  has_private;
};

void
dci_sig_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool
dci_sig_field_safe(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char) *s < 0x20 || *s == 0x7F)
			return false;
	return true;
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

const char *
dci_sig_alg_openspp_name(DciSigAlg alg)
{
	switch (alg)
	{
		case DCI_SIG_ED25519:
			return "ed25519";
		case DCI_SIG_RSA_SHA256:
			return "rs256";
		default:
			return "unknown";
	}
}

DciSigAlg
dci_sig_alg_from_any_name(const char *name)
{
	if (name != NULL && strcmp(name, "rs256") == 0)
		return DCI_SIG_RSA_SHA256;
	return dci_sig_alg_from_name(name);
}

static int
no_password(char *buf, int size, int rwflag, void *u)
{
	return 0;
}

static DciSigKey *
wrap_key(EVP_PKEY *pkey, bool has_private, char *err, size_t errlen)
{
	DciSigKey *key;
	DciSigAlg  alg;

	switch (EVP_PKEY_get_id(pkey))
	{
		case EVP_PKEY_ED25519:
			alg = DCI_SIG_ED25519;
			break;
		case EVP_PKEY_RSA:
			alg = DCI_SIG_RSA_SHA256;
			if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
			{
				dci_sig_set_err(err, errlen, "RSA key of %d bits: at least %d are needed",
								EVP_PKEY_get_bits(pkey), RSA_MIN_BITS);
				EVP_PKEY_free(pkey);
				return NULL;
			}
			break;
		default:
			dci_sig_set_err(err, errlen, "key type is neither Ed25519 nor RSA");
			EVP_PKEY_free(pkey);
			return NULL;
	}
	key = calloc(1, sizeof(DciSigKey));
	if (key == NULL)
	{
		dci_sig_set_err(err, errlen, "out of memory");
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
	EVP_PKEY *pkey = NULL;
	BIO		 *bio;

	if (pem == NULL || *pem == '\0')
	{
		dci_sig_set_err(err, errlen, "no key");
		return NULL;
	}
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
	{
		dci_sig_set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (private_key)
		pkey = PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL);
	else if (strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL)
	{
		X509 *cert = PEM_read_bio_X509(bio, NULL, no_password, NULL);

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
		dci_sig_set_err(err, errlen, private_key ? "not an unencrypted PEM private key" : "not a PEM public key or certificate");
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

DciSigKey *
dci_sigkey_from_ed25519_x(const unsigned char *x, size_t xlen, char *err, size_t errlen)
{
	EVP_PKEY *pkey;

	if (xlen != 32)
	{
		dci_sig_set_err(err, errlen, "Ed25519 key of %zu bytes: x must be 32", xlen);
		return NULL;
	}
	pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xlen);
	ERR_clear_error();
	if (pkey == NULL)
	{
		dci_sig_set_err(err, errlen, "not a valid Ed25519 public key");
		return NULL;
	}
	return wrap_key(pkey, false, err, errlen);
}

DciSigKey *
dci_sigkey_from_rsa_ne(const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen,
					   char *err, size_t errlen)
{
	BIGNUM		   *bn_n = NULL;
	BIGNUM		   *bn_e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM	   *params = NULL;
	EVP_PKEY_CTX   *ctx = NULL;
	EVP_PKEY	   *pkey = NULL;
	int				bits;

	/* leading zero bytes are not allowed in a JWK, and would fake the size */
	if (nlen == 0 || n[0] == 0 || elen == 0 || e[0] == 0)
	{
		dci_sig_set_err(err, errlen, "RSA n and e must be non-empty, without leading zero bytes");
		return NULL;
	}
	if (nlen > RSA_MAX_BITS / 8)
	{
		dci_sig_set_err(err, errlen, "RSA key of more than %d bits", RSA_MAX_BITS);
		return NULL;
	}
	if (elen > 8 || (e[elen - 1] & 1) == 0 || (elen == 1 && e[0] < 3))
	{
		dci_sig_set_err(err, errlen, "RSA exponent e must be odd, 3 or more, and at most 64 bits");
		return NULL;
	}
	bn_n = BN_bin2bn(n, (int) nlen, NULL);
	bn_e = BN_bin2bn(e, (int) elen, NULL);
	bits = bn_n ? BN_num_bits(bn_n) : 0;
	if (bn_n != NULL && bn_e != NULL && bits >= RSA_MIN_BITS && BN_is_odd(bn_n) &&
		(bld = OSSL_PARAM_BLD_new()) != NULL &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
		OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) &&
		(params = OSSL_PARAM_BLD_to_param(bld)) != NULL &&
		(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL &&
		EVP_PKEY_fromdata_init(ctx) == 1)
	{
		if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
			pkey = NULL;
	}
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn_n);
	BN_free(bn_e);
	ERR_clear_error();
	if (pkey == NULL)
	{
		if (bits > 0 && bits < RSA_MIN_BITS)
			dci_sig_set_err(err, errlen, "RSA key of %d bits: at least %d are needed", bits, RSA_MIN_BITS);
		else
			dci_sig_set_err(err, errlen, "not a valid RSA public key");
		return NULL;
	}
	return wrap_key(pkey, false, err, errlen);
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
	int r = EVP_PKEY_eq(a->pkey, b->pkey);

	ERR_clear_error();
	return r == 1;
}

static char *
bio_to_string(BIO *bio)
{
	char *data;
	long  n = BIO_get_mem_data(bio, &data);
	char *s = malloc(n + 1);

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
	BIO	 *bio = BIO_new(BIO_s_mem());
	char *s = NULL;

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
		size_t		  n = sizeof(raw);

		if (!EVP_PKEY_get_raw_public_key(key->pkey, raw, &n))
		{
			ERR_clear_error();
			return false;
		}
		*a = dci_b64_encode(raw, n, true);
		return *a != NULL;
	}
	else
	{
		BIGNUM *bn_n = NULL;
		BIGNUM *bn_e = NULL;
		bool	ok = false;

		if (EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_N, &bn_n) &&
			EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_E, &bn_e))
		{
			unsigned char *nb = malloc(BN_num_bytes(bn_n) + 1);
			unsigned char *eb = malloc(BN_num_bytes(bn_e) + 1);

			if (nb && eb)
			{
				int nl = BN_bn2bin(bn_n, nb);
				int el = BN_bn2bin(bn_e, eb);

				*a = dci_b64_encode(nb, nl, true);
				*b = dci_b64_encode(eb, el, true);
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
	char *a,
		*b;
	char		 *json;
	size_t		  n;
	unsigned char md[SHA256_DIGEST_LENGTH];
	char		 *r = NULL;

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
		r = dci_b64_encode(md, sizeof(md), true);
		free(json);
	}
	free(a);
	free(b);
	return r;
}

char *
dci_sigkey_jwk(const DciSigKey *key, const char *kid)
{
	char *a,
		*b;
	char  *json;
	size_t n;

	if (kid == NULL || !dci_sig_field_safe(kid) || !jwk_members(key, &a, &b))
		return NULL;
	n = strlen(a) + (b ? strlen(b) : 0) + strlen(kid) + 128;
	json = malloc(n);
	if (json)
	{
		if (key->alg == DCI_SIG_ED25519)
			snprintf(json, n, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\","
							  "\"alg\":\"EdDSA\",\"use\":\"sig\"}",
					 a, kid);
		else
			snprintf(json, n, "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"%s\","
							  "\"alg\":\"RS256\",\"use\":\"sig\"}",
					 a, b, kid);
	}
	free(a);
	free(b);
	return json;
}

bool
dci_sigkey_generate(DciSigAlg alg, int bits, char **private_pem, char **public_pem,
					char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	BIO		 *priv = NULL;
	BIO		 *pub = NULL;
	bool	  ok = false;

	*private_pem = *public_pem = NULL;
	if (alg == DCI_SIG_ED25519)
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (alg == DCI_SIG_RSA_SHA256)
	{
		if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
		{
			dci_sig_set_err(err, errlen, "RSA keys have %d to %d bits", RSA_MIN_BITS, RSA_MAX_BITS);
			return false;
		}
		pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) bits);
	}
	else
	{
		dci_sig_set_err(err, errlen, "unknown algorithm");
		return false;
	}
	if (pkey == NULL)
	{
		dci_sig_set_err(err, errlen, "key generation failed");
		goto done;
	}
	priv = BIO_new(BIO_s_secmem());
	pub = BIO_new(BIO_s_mem());
	if (priv == NULL || pub == NULL ||
		!PEM_write_bio_PrivateKey(priv, pkey, NULL, NULL, 0, NULL, NULL) ||
		!PEM_write_bio_PUBKEY(pub, pkey))
	{
		dci_sig_set_err(err, errlen, "could not write the key as PEM");
		goto done;
	}
	*private_pem = bio_to_string(priv);
	*public_pem = bio_to_string(pub);
	ok = *private_pem && *public_pem;
	if (!ok)
		dci_sig_set_err(err, errlen, "out of memory");
done:
	BIO_free(priv); /* a secure-memory BIO is wiped when freed */
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
unsigned char *
dci_sigkey_sign_bytes(const DciSigKey *key, const char *msg, size_t len, size_t *siglen,
					  char *err, size_t errlen)
{
	EVP_MD_CTX	  *ctx;
	unsigned char *sig = NULL;

	*siglen = 0;
	if (!key->has_private)
	{
		dci_sig_set_err(err, errlen, "not a private key");
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
		dci_sig_set_err(err, errlen, "signing failed");
		free(sig);
		sig = NULL;
	}
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return sig;
}

/* does the raw signature verify over msg? */
bool
dci_sigkey_verify_bytes(const DciSigKey *key, const char *msg, size_t len, const unsigned char *sig,
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
	size_t		   siglen;
	unsigned char *sig = dci_sigkey_sign_bytes(key, msg, len, &siglen, err, errlen);
	char		  *r;

	if (sig == NULL)
		return NULL;
	r = dci_b64_encode(sig, siglen, false);
	free(sig);
	return r;
}

bool
dci_sigkey_verify(const DciSigKey *key, const char *msg, size_t len, const char *sig_b64)
{
	size_t		   siglen;
	unsigned char *sig = dci_b64_decode(sig_b64, strlen(sig_b64), false, &siglen);
	bool		   ok;

	if (sig == NULL)
		return false;
	ok = dci_sigkey_verify_bytes(key, msg, len, sig, siglen);
	free(sig);
	return ok;
}
