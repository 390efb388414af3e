/*
 * dialect.h
 *		What a data source's dialect (dci_data_source.dialect) changes in
 *		what is sent and how answers are read (dialect.c).  Each rule and
 *		its source is listed in README "Any endpoint, domain endpoints and
 *		dialects".
 */
#ifndef DCI_DIALECT_H
#define DCI_DIALECT_H

#include "dci_client.h"
#include "lib/stringinfo.h"
#include "source.h"
#include "utils/jsonb.h"

/*
 * An idtype-value query {"type": T, "value": V} in the dialect's form for
 * by-id lookups: the query text, with *query_type set to what is sent and
 * *id_type to T.  NULL when the query is sent as given.  event_option_json:
 * the reg_event_type option (compact JSON or NULL), which decides the person
 * whose national id OpenCRVS looks at.
 */
extern char *dci_dialect_id_query(const DciSource *src, const char **query_type, Jsonb *query,
								  const char *event_option_json, char **id_type);

/*
 * The reg_event_type the dialect sends (palloc'd), given the option's value
 * (compact JSON text or NULL) and the id type of a by-id lookup (or NULL);
 * NULL: none.  The standard sends the option as given.
 */
extern char *dci_dialect_event_type(const DciSource *src, const char *option_json,
									const char *id_type);

/* a consent or authorize block the dialect requires when none is given (palloc'd JSON), or NULL */
extern char *dci_dialect_default_block(const DciSource *src, const char *which, const char *ts);

/* an answer item that means "no record" in the dialect (rather than a rejection) */
extern bool dci_dialect_not_found(const DciSource *src, JsonbContainer *item);

#endif /* DCI_DIALECT_H */
