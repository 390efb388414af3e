/*
 * http_failure.h
 *		What an attempt's outcome means: the SQLSTATE and message of a
 *		failed transfer, classified from a table of libcurl's codes, and the
 *		retry rules of the README's "Errors" (http_failure.c).
 */
#ifndef DCI_HTTP_FAILURE_H
#define DCI_HTTP_FAILURE_H

#include "postgres.h"

#include <curl/curl.h>

#include "errors.h"
#include "utils/timestamp.h"

/* what happened to one attempt */
typedef enum DciOutcome
{
	DCI_OUTCOME_HTTP,		   /* an HTTP answer */
	DCI_OUTCOME_NOT_CONNECTED, /* no connection: nothing reached the server */
	DCI_OUTCOME_RESET,		   /* failed after the request may have been sent */
	DCI_OUTCOME_FAILED		   /* no answer, not to be retried */
} DciOutcome;

/* what the transfer's callbacks and libcurl saw, besides its result code */
typedef struct DciTransferFacts
{
	const char *source_code; /* "?" without a source */
	const char *origin;		 /* host:port, never the path or query */
	const char *curl_error;	 /* libcurl's error buffer or its code's text */
	bool		blocked_address;
	const char *blocked; /* the refused address */
	bool		too_large;
	int			max_response_bytes;
	bool		headers_too_large;
	int			max_header_bytes;
	int			max_header_count;
	bool		resent; /* libcurl tried to send the request twice */
	bool		socket_overflow;
	int			max_sockets;
	bool		deadline_passed;
	long		verify_result; /* X509 verification result, 0: none */
	double		dns_ms,
		connect_ms,
		tls_ms,
		total_ms;
} DciTransferFacts;

/* the outcome of a failed transfer (rc != CURLE_OK), described in err */
extern DciOutcome dci_describe_failure(CURLcode rc, const DciTransferFacts *facts, DciError *err);

/* may an attempt with this outcome (and HTTP status) be retried? */
extern bool dci_retryable(DciOutcome o, long status, bool idempotent);
/* exponential backoff with jitter, or what retry_after (a Retry-After value, or NULL) asks */
extern long dci_retry_delay_ms(int attempt_no, const char *retry_after);

#endif /* DCI_HTTP_FAILURE_H */
