/*
 * dci_calls.h
 *		The DCI calls (dci_calls.c): what the batched search (batch.c)
 *		shares with the single search.
 */
#ifndef DCI_CALLS_H
#define DCI_CALLS_H

#include "dci_client.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "source.h"
#include "utils/jsonb.h"

/* 22023 unless query_type is idtype-value, expression, predicate or graphql */
extern void dci_check_query_type(const char *query_type);
/* response_entity is Group or Member (22023) */
extern void dci_check_response_entity(const char *response_entity);
/* 22023 for options that are not an object of the known keys (README "DCI layer") */
extern void dci_check_search_options(Jsonb *options);
/* the message's transaction_id: the option's, or a fresh UUID */
extern char *dci_search_transaction_id(Jsonb *options);
/* one search_request item {reference_id, timestamp, search_criteria, locale} */
extern void dci_append_search_item(StringInfo m, DciSource *src, const char *ref,
								   const char *query_type, Jsonb *query, const char *reg_type,
								   Jsonb *options, int page_size, int page_number);

/*
 * POST an envelope to a DCI endpoint and parse the answer (dci_parse_answer);
 * logged.  callback_status: NULL for the request header, else the callback
 * header's status.  read_only: retried like a read (README "Retries").
 */
extern Jsonb *dci_exchange(DciSource *src, const char *path, const char *action, const char *message,
						   int total_count, const char *callback_status, bool read_only,
						   const char *what, bool need_header);
/* the answer of an asynchronous call must be an ACK: NACK/ERR → DC007, none → DC006 */
extern void dci_check_ack(DciSource *src, const char *what, Jsonb *answer);
/* {"status":"succ","data":{"reg_records":[]}}: a dialect's "no record" in normal form */
extern Jsonb *dci_no_records_item(void);

/*
 * What a transaction status request asks about (txnstatus_request): the
 * txn_type, and one attribute_type with its attribute_value (compact JSON).
 * Read from the trailing arguments of dci_txn_status and its async form.
 */
typedef struct DciTxnStatusQuery
{
	const char *txn_type;
	const char *attribute_type;
	char	   *attribute_value;
} DciTxnStatusQuery;

/*
 * The query from arguments first.. of fcinfo: transaction_id, then (when the
 * function has them) txn_type, reference_ids text[], correlation_id,
 * subscription_codes text[]; exactly one attribute must be given (22023).
 */
extern void dci_txn_status_args(FunctionCallInfo fcinfo, int first, DciTxnStatusQuery *q);
/* the txn-status message for q; *txn receives its fresh transaction_id */
extern char *dci_txn_status_message(const DciTxnStatusQuery *q, char **txn);

#endif /* DCI_CALLS_H */
