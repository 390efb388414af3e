/*
 * json.h
 *		jsonb in and out: compact wire text, header objects (json.c).
 */
#ifndef DCI_JSON_H
#define DCI_JSON_H

#include "dci_client.h"
#include "utils/jsonb.h"

/* compact JSON text of a jsonb value (no spaces), as sent on the wire */
extern char *dci_jsonb_to_compact(Jsonb *jb, size_t *len);
/*
 * An object of string header values as DciHeaders; raises 22023 naming
 * "what" for anything else, a CR/LF, or a name callers may not set.
 */
extern DciHeaders *dci_jsonb_to_headers(Jsonb *jb, const char *what);
/* jsonb object of response headers */
struct DciHeaderList;
extern Jsonb *dci_header_list_to_jsonb(const struct DciHeaderList *headers);

#endif /* DCI_JSON_H */
