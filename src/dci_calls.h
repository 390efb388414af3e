/*
 * dci_calls.h
 *		The DCI calls (dci_calls.c): what the batched search (batch.c)
 *		shares with the single search.
 */
#ifndef DCI_CALLS_H
#define DCI_CALLS_H

#include "dci_client.h"
#include "lib/stringinfo.h"
#include "source.h"
#include "utils/jsonb.h"

/* 22023 unless query_type is idtype-value, expression, predicate or graphql */
extern void dci_check_query_type(const char *query_type);
/* 22023 for options that are not an object of the known keys (README "DCI layer") */
extern void dci_check_search_options(Jsonb *options);
/* the message's transaction_id: the option's, or a fresh UUID */
extern char *dci_search_transaction_id(Jsonb *options);
/* one search_request item {reference_id, timestamp, search_criteria, locale} */
extern void dci_append_search_item(StringInfo m, DciSource *src, const char *ref,
								   const char *query_type, Jsonb *query, const char *reg_type,
								   Jsonb *options, int page_size, int page_number);

#endif /* DCI_CALLS_H */
