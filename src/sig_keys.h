/*
 * sig_keys.h
 *		Signing keys (sig_keys.c): Ed25519 and RSA with OpenSSL, raw
 *		signatures, RFC 7638 thumbprints and RFC 7517 JWKs.  Free of
 *		PostgreSQL headers.  Strings returned are malloc'd (free()).
 */
#ifndef DCI_SIG_KEYS_H
#define DCI_SIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum DciSigAlg
{
	DCI_SIG_UNKNOWN = 0,
	DCI_SIG_ED25519,
	DCI_SIG_RSA_SHA256
} DciSigAlg;

/* "ed25519" / "rsa-sha256" and back (DCI_SIG_UNKNOWN for anything else) */
extern const char *dci_sig_alg_name(DciSigAlg alg);
extern DciSigAlg   dci_sig_alg_from_name(const char *name);
/* OpenSPP's spelling: "ed25519" / "rs256" */
extern const char *dci_sig_alg_openspp_name(DciSigAlg alg);
/* either spelling, as a signature's algorithm or a kidId's last part may carry it */
extern DciSigAlg dci_sig_alg_from_any_name(const char *name);

typedef struct DciSigKey DciSigKey;

/*
 * A key from PEM text: a private key (PKCS#8 or traditional, unencrypted)
 * when private_key, else a public key (SubjectPublicKeyInfo, PKCS#1 RSA
 * public key, or an X.509 certificate).  Only Ed25519 and RSA of 2048 bits
 * or more.  NULL with err set otherwise.
 */
extern DciSigKey *dci_sigkey_load(const char *pem, bool private_key, char *err, size_t errlen);
extern void		  dci_sigkey_free(DciSigKey *key);

/*
 * A public key from the members of a JWK (RFC 8037 / RFC 7518 §6.3),
 * already base64url-decoded: Ed25519 from x (32 bytes), RSA from n and e
 * (big-endian; n of 2048 to 16384 bits, e odd, 3 or more, at most 8
 * bytes).  NULL with err set otherwise.
 */
extern DciSigKey *dci_sigkey_from_ed25519_x(const unsigned char *x, size_t xlen,
											char *err, size_t errlen);
extern DciSigKey *dci_sigkey_from_rsa_ne(const unsigned char *n, size_t nlen,
										 const unsigned char *e, size_t elen,
										 char *err, size_t errlen);
extern DciSigAlg  dci_sigkey_alg(const DciSigKey *key);
extern bool		  dci_sigkey_has_private(const DciSigKey *key);
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

/* raw signature bytes of msg (malloc'd, *siglen) / do they verify over msg? */
extern unsigned char *dci_sigkey_sign_bytes(const DciSigKey *key, const char *msg, size_t len,
											size_t *siglen, char *err, size_t errlen);
extern bool			  dci_sigkey_verify_bytes(const DciSigKey *key, const char *msg, size_t len,
											  const unsigned char *sig, size_t siglen);

/* may s be written unescaped into a JSON string or a signature field (no '"', '\\', control character) */
extern bool dci_sig_field_safe(const char *s);

/* vsnprintf into err (NULL-safe): the error text of every signature module */
extern void dci_sig_set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif /* DCI_SIG_KEYS_H */
