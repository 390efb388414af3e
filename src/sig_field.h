/*
 * sig_field.h
 *		The DCI message signature (README, "Signing"): digest, signing
 *		string, the signature field, signing and verifying {header, message}
 *		(sig_field.c).  Free of PostgreSQL headers.  Strings returned are
 *		malloc'd (free()).
 */
#ifndef DCI_SIG_FIELD_H
#define DCI_SIG_FIELD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sig_keys.h"

/* a signature is valid this long; a peer's clock may be this far ahead */
#define DCI_SIG_LIFETIME   300
#define DCI_SIG_CLOCK_SKEW 60
/* the only "headers" the scheme signs */
#define DCI_SIG_HEADERS "(created) (expires) digest"
/* longest signature field accepted by the parser */
#define DCI_SIG_FIELD_MAX 8192

/* base64(SHA-256(data)) into out (45 bytes with the NUL) */
extern void dci_sig_digest(const char *data, size_t len, char out[45]);
/* "(created): C\n(expires): E\ndigest: D" */
extern char *dci_sig_signing_string(int64_t created, int64_t expires, const char *digest);

typedef struct DciSigField
{
	char   *namespace_; /* NULL when absent */
	char   *kid_id;
	char   *algorithm;
	char   *headers;
	char   *signature; /* base64 */
	int64_t created;
	int64_t expires;
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

/*
 * The signature field for the canonical {header, message} text hm (the
 * steps 1-4 of the README's "Signing"), with the given times.  NULL with err set on failure.
 */
extern char *dci_sig_sign(const DciSigKey *key, const char *sender_id, const char *key_id,
						  const char *hm, size_t hm_len, int64_t created, int64_t expires,
						  char *err, size_t errlen);
/* the same with the algorithm spelled alg_name ("rs256" for OpenSPP's registries) */
extern char *dci_sig_sign_as(const DciSigKey *key, const char *sender_id, const char *key_id,
							 const char *alg_name, const char *hm, size_t hm_len, int64_t created,
							 int64_t expires, char *err, size_t errlen);

typedef enum DciVerifyResult
{
	DCI_VERIFY_OK = 0,
	DCI_VERIFY_MISSING,		  /* no signature, or "" */
	DCI_VERIFY_MALFORMED,	  /* the envelope or the field cannot be parsed */
	DCI_VERIFY_ALGORITHM,	  /* the field's algorithm is not the key's */
	DCI_VERIFY_EXPIRED,		  /* now > expires */
	DCI_VERIFY_FUTURE,		  /* created > now + DCI_SIG_CLOCK_SKEW */
	DCI_VERIFY_BAD_SIGNATURE, /* does not verify over the recomputed digest */
	DCI_VERIFY_PAYLOAD		  /* JWS: the payload is not the envelope's header and message */
} DciVerifyResult;

/* step 5 of the README's "Signing": the field against the canonical {header, message} hm */
extern DciVerifyResult dci_sig_verify(const DciSigKey *key, const char *field,
									  const char *hm, size_t hm_len, int64_t now);
/* the same for a whole envelope text {signature, header, message} */
extern DciVerifyResult dci_sig_verify_envelope(const DciSigKey *key, const char *text,
											   size_t len, int64_t now);
/* a sentence saying why (for error details) */
extern const char *dci_verify_result_text(DciVerifyResult r);

#endif /* DCI_SIG_FIELD_H */
