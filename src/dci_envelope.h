/*
 * dci_envelope.h
 *		Writing DCI envelopes (dci_envelope.c).
 */
#ifndef DCI_ENVELOPE_H
#define DCI_ENVELOPE_H

#include "dci_client.h"
#include "lib/stringinfo.h"
#include "source.h"
#include "utils/jsonb.h"

/* the DCI version written in headers and search criteria */
#define DCI_VERSION_STRING "1.0.0"

/* a version 4 UUID (37 bytes with the NUL) / the wall clock as ISO 8601 UTC with milliseconds */
extern void dci_uuid_v4(char *out);
extern void dci_timestamp_now(char *out, size_t len);

/* compact JSON members: "key": then a string or a jsonb value; *first: no comma yet */
extern void dci_append_key(StringInfo buf, const char *key, bool *first);
extern void dci_append_str(StringInfo buf, const char *key, const char *value, bool *first);
extern void dci_append_jsonb(StringInfo buf, const char *key, Jsonb *value, bool *first);

/*
 * The envelope text {"header":{...},"message":<message>,"signature":"..."}
 * for message (compact JSON text), signed with the source's key; DC001 when
 * the source has no sender_id.  *len: its length.
 */
extern char *dci_build_envelope(DciSource *src, const char *action, const char *message,
								int total_count, size_t *len);
/* the same; the header's message_id is copied to message_id_out (37 bytes) unless NULL */
extern char *dci_build_envelope_id(DciSource *src, const char *action, const char *message,
								   int total_count, size_t *len, char *message_id_out);
/* the same with the callback header (status, completed_count) when callback_status is not NULL */
extern char *dci_build_envelope_as(DciSource *src, const char *action, const char *message,
								   int total_count, const char *callback_status, size_t *len);
/* requests in a message (the header's total_count) */
extern int dci_count_requests(Jsonb *message);

#endif /* DCI_ENVELOPE_H */
