/*
 * jws.h
 *		The second signature format: compact JWS (RFC 7515), as OpenCRVS
 *		signs (jws.c).  Free of PostgreSQL headers.
 */
#ifndef DCI_JWS_H
#define DCI_JWS_H

#include <stdbool.h>
#include <stddef.h>

#include "sig_field.h"

/*
 * BASE64URL(protected header) "." BASE64URL(payload) "." BASE64URL(signature)
 * with the protected header {"alg":"RS256","kid":"<RFC 7638 thumbprint>"}
 * (the shape of OpenCRVS's dci-crvs-api) and, as payload, the exact bytes of
 * the body without "signature".  RS256 only (RSASSA-PKCS1-v1_5 with
 * SHA-256): an Ed25519 key neither signs nor verifies this format.  The JWS
 * carries no time: unlike the DCI field, it does not expire.
 */
/* longest JWS the parser takes (a signed answer may be large) */
#define DCI_JWS_MAX ((size_t) 256 * 1024 * 1024)

typedef struct DciJws
{
	char		  *header; /* the decoded protected header (JSON text) */
	size_t		   header_len;
	char		  *alg;		/* its "alg" */
	char		  *kid;		/* its "kid", NULL when absent */
	unsigned char *payload; /* decoded (NUL after it, not counted) */
	size_t		   payload_len;
	unsigned char *sig; /* decoded signature */
	size_t		   sig_len;
	size_t		   signing_input_len; /* header and payload segments with their dot */
} DciJws;

/*
 * Parse a compact JWS: exactly three non-empty-header, non-empty-signature
 * base64url segments; the header a JSON object (the last of repeated
 * names counts) with a string "alg", a string "kid" if any, and no "crit" (we
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

#endif /* DCI_JWS_H */
