/*
 * registry_keys.h
 *		A registry's verification keys from its JWK Set
 *		(dci_data_source.registry_jwks_url), fetched through the HTTP path of
 *		every call and cached per session (registry_keys.c; README "Signing").
 */
#ifndef DCI_REGISTRY_KEYS_H
#define DCI_REGISTRY_KEYS_H

#include "errors.h"
#include "sig_keys.h"
#include "source.h"

/*
 * The key of src's registry that kid names (the DCI field's kidId or a JWS
 * header's kid; NULL or "" when the signature names none), of algorithm alg
 * (DCI_SIG_UNKNOWN: any).  The key set is fetched when there is none yet or
 * it expired, and once more for a kid it does not hold, in both cases at
 * most once per dci_client.jwks_refetch_interval_s.  NULL with err set when
 * there is no such key (DC008) or no key set could be had (the fetch's
 * class: DC001, DC003, DC004, DC005, DC006, DC009).  Never raises for what
 * the registry or the network did.  The key belongs to the cache: valid
 * until the next call of this module.
 */
extern const DciSigKey *dci_registry_key(DciSource *src, const char *kid, DciSigAlg alg,
										 DciError *err);

/*
 * The key for the signature of an envelope text {signature, header,
 * message} in src's signature format; what names the text in messages
 * ("answer", "callback").  NULL with err set (DC008 when the envelope
 * carries no signature or one that cannot be parsed).  The signature must
 * then be verified under the key, over the same text.
 */
extern const DciSigKey *dci_registry_key_for_envelope(DciSource *src, const char *text, size_t len,
													  const char *what, DciError *err);

#endif /* DCI_REGISTRY_KEYS_H */
