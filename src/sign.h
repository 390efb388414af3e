/*
 * sign.h
 *		Signing of outgoing DCI envelopes and verification of answers
 *		(README "Signing"), for the DCI layer.  The scheme itself is in sig_field.h, jws.h
 *		and canonical_json.h, free of PostgreSQL headers.
 */
#ifndef DCI_SIGN_H
#define DCI_SIGN_H

#include "sig_field.h"
#include "source.h"

/*
 * The signature field for hm_text, the exact compact JSON text
 * {"header":...,"message":...} that will be sent (palloc'd); "" when the
 * source has no signing key.  With signature_format 'jws': the compact JWS
 * (RS256, kid = the key's thumbprint) whose payload is hm_text itself; an
 * Ed25519 key then raises DC001.  Raises DC001 when the key is missing, not
 * active, revoked, or its private key cannot be decrypted: a source with a
 * key never sends unsigned.
 */
extern char *dci_signature_for_source(DciSource *src, const char *hm_text, size_t len);

/*
 * When the source names registry_public_key: the answer (an envelope text)
 * must carry a valid signature over its {header, message} as received,
 * else DC008.  With signature_format 'jws': a compact RS256 JWS whose
 * payload holds the same header and message (canonical forms compared).  Does nothing when the source names no key.
 */
extern void dci_verify_response(DciSource *src, const char *body, size_t len);

/* what dci_registry_verify found */
typedef enum DciRegistryVerify
{
	DCI_REGISTRY_NO_KEY,		/* the source names no registry key: nothing to check */
	DCI_REGISTRY_OK,			/* signed, and the signature verifies */
	DCI_REGISTRY_MISSING,		/* a key is set and the body carries no signature */
	DCI_REGISTRY_BAD,			/* a signature that does not verify (reason in *detail) */
	DCI_REGISTRY_KEY_UNUSABLE	/* no usable key could be had (reason in err) */
} DciRegistryVerify;

/*
 * The non-raising core of dci_verify_response, over the body's exact bytes
 * (dci_receive checks callbacks with it; what names the text: "answer",
 * "callback"): which case applies; *detail the verifier's reason; err the
 * key's own error when there is one (an unusable key, a JWKS fetch that
 * failed, a kid the key set lacks).
 */
extern DciRegistryVerify dci_registry_verify(DciSource *src, const char *body, size_t len,
											 const char *what, DciVerifyResult *detail, DciError *err);

/*
 * May the current user have envelopes signed for it and handed back
 * (dci_envelope)?  Yes with EXECUTE on this extension's dci_sign(jsonb,
 * text), or dci_sign_jws(jsonb, text) for the JWS format.
 */
extern bool dci_may_sign(DciSigFormat format);

#endif /* DCI_SIGN_H */
