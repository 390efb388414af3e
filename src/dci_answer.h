/*
 * dci_answer.h
 *		Reading DCI answers (dci_answer.c).
 */
#ifndef DCI_ANSWER_H
#define DCI_ANSWER_H

#include "dci_client.h"
#include "http.h"
#include "source.h"
#include "utils/jsonb.h"

/* members of a jsonb object (NULL when c is not an object or the key is absent) */
extern JsonbValue *dci_jget(JsonbContainer *c, const char *key);
/* the value as an object / a palloc'd string, NULL when it is not one */
extern JsonbContainer *dci_jobject(JsonbValue *v);
extern char			  *dci_jstring(JsonbValue *v);
/* a count given as a number or a numeric string; -1 when absent or not a count */
extern int64 dci_jcount(JsonbValue *v);
/* "code: message" of an error object, quoted and redacted; NULL when it has neither */
extern char *dci_reason_text(const DciSource *src, JsonbContainer *c, const char *code_key,
							 const char *msg_key);

/*
 * The answer to "what" (a request description for messages) as jsonb:
 * 401/403 → DC002, 429 and 5xx → DC009, other non-2xx, rjct, NACK/ERR →
 * DC007, not JSON / too deep / numbers out of range → DC006, a bad signature
 * → DC008.  need_header: a DCI envelope (header and message) is required.
 * Registry text in the result has the source's credentials redacted.
 */
extern Jsonb *dci_parse_answer(DciSource *src, const char *what, const DciHttpResponse *resp,
							   bool need_header);

/* a search_response item in the lenient normal form (README, "DCI layer") */
extern Jsonb *dci_normalize_item(JsonbValue *value);

#endif /* DCI_ANSWER_H */
