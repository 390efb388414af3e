/*
 * redaction.h
 *		What the extension hands back never holds a credential: registry
 *		text (bodies, headers, quoted errors) with the source's secrets, its
 *		current access token and its Basic credentials redacted, in any
 *		encoding redact.c recognises.
 */
#ifndef DCI_REDACTION_H
#define DCI_REDACTION_H

#include "dci_client.h"

/*
 * text with every credential of src replaced by "[redacted]": text itself
 * when nothing matched, else a palloc'd copy; *outlen is its length.
 */
extern char *dci_redact(const DciSource *src, char *text, size_t len, size_t *outlen);

/*
 * The signature of the envelope about to be sent (its text as
 * dci_build_envelope made it): redacted too from what its answer hands back,
 * until the next envelope's, so that sending is no signing oracle through a
 * registry that echoes its request (README "Privileges").
 */
extern void dci_redact_sent_signature(const char *envelope, size_t len);

/* base64 of a string (base64.c), palloc'd */
extern char *dci_base64(const char *s);

/* copy at most DCI_QUOTE_MAX characters of registry text, redacted, control chars blanked */
extern char *dci_quote_registry_text(const DciSource *src, const char *text, size_t len);

#endif /* DCI_REDACTION_H */
