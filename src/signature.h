/*
 * signature.h
 *		The DCI message signature (README, "Signing"): digest, signing
 *		string, the signature field, Ed25519 and RSA-SHA256 (PKCS#1 v1.5)
 *		with OpenSSL, RFC 7638 thumbprints and RFC 7517 JWKs.  Free of
 *		PostgreSQL headers.  Strings returned are malloc'd (free()).
 */
#ifndef DCI_SIGNATURE_H
#define DCI_SIGNATURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* a signature is valid this long; a peer's clock may be this far ahead */
#define DCI_SIG_LIFETIME 300
#define DCI_SIG_CLOCK_SKEW 60
/* the only "headers" the scheme signs */
#define DCI_SIG_HEADERS "(created) (expires) digest"
/* longest signature field accepted by the parser */
#define DCI_SIG_FIELD_MAX 8192

typedef enum DciSigAlg
{
	DCI_SIG_UNKNOWN = 0,
	DCI_SIG_ED25519,
	DCI_SIG_RSA_SHA256
} DciSigAlg;

/* "ed25519" / "rsa-sha256" and back (DCI_SIG_UNKNOWN for anything else) */
extern const char *dci_sig_alg_name(DciSigAlg alg);
extern DciSigAlg dci_sig_alg_from_name(const char *name);

/* base64(SHA-256(data)) into out (45 bytes with the NUL) */
extern void dci_sig_digest(const char *data, size_t len, char out[45]);
/* "(created): C\n(expires): E\ndigest: D" */
extern char *dci_sig_signing_string(int64_t created, int64_t expires, const char *digest);

/* ---- the signature field ---- */
typedef struct DciSigField
{
	char	   *namespace_;		/* NULL when absent */
	char	   *kid_id;
	char	   *algorithm;
	char	   *headers;
	char	   *signature;		/* base64 */
	int64_t		created;
	int64_t		expires;
} DciSigField;

/*
 * The field as README "Signing" step 4 writes it; NULL when a part holds a double
 * quote, a backslash or a control character (it could not be parsed back).
 */
extern char *dci_sig_field_format(const char *sender_id, const char *key_id,
								  const char *algorithm, int64_t created,
								  int64_t expires, const char *signature_b64);

/*
 * Parse a field: comma-separated name="value" pairs in any order.
 * algorithm, created, expires and signature are required; namespace (if
 * present) must be "dci", headers (if present) DCI_SIG_HEADERS; unknown
 * names are ignored, repeated ones refused.  False with err set otherwise.
 */
extern bool dci_sig_field_parse(const char *s, size_t len, DciSigField *f,
								char *err, size_t errlen);
extern void dci_sig_field_free(DciSigField *f);

/* ---- keys ---- */
typedef struct DciSigKey DciSigKey;

/*
 * A key from PEM text: a private key (PKCS#8 or traditional, unencrypted)
 * when private_key, else a public key (SubjectPublicKeyInfo, PKCS#1 RSA
 * public key, or an X.509 certificate).  Only Ed25519 and RSA of 2048 bits
 * or more.  NULL with err set otherwise.
 */
extern DciSigKey *dci_sigkey_load(const char *pem, bool private_key, char *err, size_t errlen);
extern void dci_sigkey_free(DciSigKey *key);
extern DciSigAlg dci_sigkey_alg(const DciSigKey *key);
extern bool dci_sigkey_has_private(const DciSigKey *key);
/* true when both hold the same public key */
extern bool dci_sigkey_same_public(const DciSigKey *a, const DciSigKey *b);
/* PEM of the public key */
extern char *dci_sigkey_public_pem(const DciSigKey *key);
/* RFC 7638 thumbprint (base64url SHA-256 of the required JWK members) */
extern char *dci_sigkey_thumbprint(const DciSigKey *key);
/* RFC 7517 JWK (JSON text) of the public key, with kid, alg and use */
extern char *dci_sigkey_jwk(const DciSigKey *key, const char *kid);

/* a new key pair (bits: RSA modulus size, 2048..16384); PEM texts */
extern bool dci_sigkey_generate(DciSigAlg alg, int bits, char **private_pem,
								char **public_pem, char *err, size_t errlen);

/* base64 signature of msg (Ed25519, or RSA PKCS#1 v1.5 over SHA-256) */
extern char *dci_sigkey_sign(const DciSigKey *key, const char *msg, size_t len,
							 char *err, size_t errlen);
/* does sig_b64 verify over msg? */
extern bool dci_sigkey_verify(const DciSigKey *key, const char *msg, size_t len,
							  const char *sig_b64);

/* ---- the scheme ---- */

/*
 * The signature field for the canonical {header, message} text hm (the
 * steps 1-4 of the README's "Signing"), with the given times.  NULL with err set on failure.
 */
extern char *dci_sig_sign(const DciSigKey *key, const char *sender_id, const char *key_id,
						  const char *hm, size_t hm_len, int64_t created, int64_t expires,
						  char *err, size_t errlen);

typedef enum DciVerifyResult
{
	DCI_VERIFY_OK = 0,
	DCI_VERIFY_MISSING,			/* no signature, or "" */
	DCI_VERIFY_MALFORMED,		/* the envelope or the field cannot be parsed */
	DCI_VERIFY_ALGORITHM,		/* the field's algorithm is not the key's */
	DCI_VERIFY_EXPIRED,			/* now > expires */
	DCI_VERIFY_FUTURE,			/* created > now + DCI_SIG_CLOCK_SKEW */
	DCI_VERIFY_BAD_SIGNATURE,	/* does not verify over the recomputed digest */
	DCI_VERIFY_PAYLOAD			/* JWS: the payload is not the envelope's header and message */
} DciVerifyResult;

/* step 5 of the README's "Signing": the field against the canonical {header, message} hm */
extern DciVerifyResult dci_sig_verify(const DciSigKey *key, const char *field,
									  const char *hm, size_t hm_len, int64_t now);
/* the same for a whole envelope text {signature, header, message} */
extern DciVerifyResult dci_sig_verify_envelope(const DciSigKey *key, const char *text,
											   size_t len, int64_t now);
/* a sentence saying why (for error details) */
extern const char *dci_verify_result_text(DciVerifyResult r);

/*
 * ---- the second format: compact JWS (RFC 7515), as OpenCRVS signs ----
 *
 * BASE64URL(protected header) "." BASE64URL(payload) "." BASE64URL(signature)
 * with the protected header {"alg":"RS256","kid":"<RFC 7638 thumbprint>"}
 * (the shape of OpenCRVS's dci-crvs-api) and, as payload, the exact bytes of
 * the body without "signature".  RS256 only (RSASSA-PKCS1-v1_5 with
 * SHA-256): an Ed25519 key neither signs nor verifies this format.  The JWS
 * carries no time: unlike the DCI field, it does not expire.
 */
/* longest JWS the parser takes (a signed answer may be large) */
#define DCI_JWS_MAX ((size_t) 256 * 1024 * 1024)

/* RFC 4648 §5 base64url without padding */
extern char *dci_b64url_encode(const unsigned char *data, size_t len);
/*
 * Strict decoding: the URL alphabet, no padding, no whitespace, unused
 * trailing bits zero (so each value has one encoding).  malloc'd bytes
 * with a NUL after them (not counted in *out_len); NULL when invalid.
 */
extern unsigned char *dci_b64url_decode(const char *s, size_t len, size_t *out_len);

typedef struct DciJws
{
	char	   *header;			/* the decoded protected header (JSON text) */
	size_t		header_len;
	char	   *alg;			/* its "alg", as written (JSON escapes kept) */
	char	   *kid;			/* its "kid" as written, NULL when absent */
	unsigned char *payload;		/* decoded (NUL after it, not counted) */
	size_t		payload_len;
	unsigned char *sig;			/* decoded signature */
	size_t		sig_len;
	size_t		signing_input_len;	/* header and payload segments with their dot */
} DciJws;

/*
 * Parse a compact JWS: exactly three non-empty-header, non-empty-signature
 * base64url segments; the header a JSON object (as Python's json would
 * read it) with a string "alg", a string "kid" if any, and no "crit" (we
 * understand no extension).  The payload may be empty.  False with err set
 * otherwise.  The signing input is s[0 .. signing_input_len).
 */
extern bool dci_jws_parse(const char *s, size_t len, DciJws *j, char *err, size_t errlen);
extern void dci_jws_free(DciJws *j);

/* the compact JWS of payload, RS256 with kid in the header; RSA keys only */
extern char *dci_jws_sign(const DciSigKey *key, const char *kid, const char *payload,
						  size_t payload_len, char *err, size_t errlen);
/* does the compact JWS verify under key with alg RS256? (payload not examined) */
extern DciVerifyResult dci_jws_verify(const DciSigKey *key, const char *jws, size_t len,
									  DciJws *parsed);

/*
 * An envelope text {signature, header, message}: its "signature" is a
 * compact JWS that verifies under key (RS256), and its payload is JSON
 * whose {header, message} have the same canonical form as the envelope's.
 */
extern DciVerifyResult dci_jws_verify_envelope(const DciSigKey *key, const char *text,
											   size_t len);

#endif							/* DCI_SIGNATURE_H */
