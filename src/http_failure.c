/*
 * http_failure.c
 *		A failed transfer as an error a DBA understands, and the retry
 *		rules (README, "Errors").
 *
 * libcurl's result codes are classified by one table: SQLSTATE, whether
 * the request may have reached the server (it decides the retries), the
 * message and a hint.  The few classifications that depend on more than
 * the code (what the callbacks saw, the time budget, a certificate
 * verification result) come first.
 */
#include "postgres.h"

#include <time.h>

#include <openssl/x509.h>

#include "common/pg_prng.h"

#include "dci_client.h"
#include "http_failure.h"
#include "http_headers.h"

typedef struct CurlFailure
{
	CURLcode	code;
	int			sqlstate;
	DciOutcome	outcome;
	const char *message; /* printf: data source, origin */
	const char *hint;	 /* NULL: none */
} CurlFailure;

static const CurlFailure curl_failures[] = {
	{CURLE_COULDNT_RESOLVE_HOST, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_NOT_CONNECTED,
	 "could not resolve the host of data source \"%s\" (\"%s\")", NULL},
	{CURLE_COULDNT_RESOLVE_PROXY, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_NOT_CONNECTED,
	 "could not resolve the host of data source \"%s\" (\"%s\")", NULL},
	{CURLE_COULDNT_CONNECT, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_NOT_CONNECTED,
	 "could not connect to data source \"%s\" (\"%s\")", NULL},
	/* a timeout before the budget ran out is the connect timeout */
	{CURLE_OPERATION_TIMEDOUT, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_NOT_CONNECTED,
	 "timed out connecting to data source \"%s\" (\"%s\")", NULL},
	{CURLE_SSL_CONNECT_ERROR, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_FAILED,
	 "TLS handshake with data source \"%s\" (\"%s\") failed", NULL},
	{CURLE_SSL_CERTPROBLEM, ERRCODE_DCI_CONFIG, DCI_OUTCOME_FAILED,
	 "TLS settings of data source \"%s\" could not be used for \"%s\"",
	 "Check ca_cert, client_cert and client_key of the data source."},
	{CURLE_SSL_CIPHER, ERRCODE_DCI_CONFIG, DCI_OUTCOME_FAILED,
	 "TLS settings of data source \"%s\" could not be used for \"%s\"",
	 "Check ca_cert, client_cert and client_key of the data source."},
	{CURLE_SSL_CACERT_BADFILE, ERRCODE_DCI_CONFIG, DCI_OUTCOME_FAILED,
	 "TLS settings of data source \"%s\" could not be used for \"%s\"",
	 "Check ca_cert, client_cert and client_key of the data source."},
	{CURLE_SEND_ERROR, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_RESET,
	 "connection to data source \"%s\" (\"%s\") was closed before a complete answer", NULL},
	{CURLE_RECV_ERROR, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_RESET,
	 "connection to data source \"%s\" (\"%s\") was closed before a complete answer", NULL},
	{CURLE_GOT_NOTHING, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_RESET,
	 "connection to data source \"%s\" (\"%s\") was closed before a complete answer", NULL},
	{CURLE_PARTIAL_FILE, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_RESET,
	 "connection to data source \"%s\" (\"%s\") was closed before a complete answer", NULL},
	{CURLE_HTTP2, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_RESET,
	 "connection to data source \"%s\" (\"%s\") was closed before a complete answer", NULL},
	{CURLE_HTTP2_STREAM, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_RESET,
	 "connection to data source \"%s\" (\"%s\") was closed before a complete answer", NULL},
	{CURLE_WEIRD_SERVER_REPLY, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_FAILED,
	 "protocol error talking to data source \"%s\" (\"%s\")", NULL},
	{CURLE_BAD_CONTENT_ENCODING, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_FAILED,
	 "protocol error talking to data source \"%s\" (\"%s\")", NULL},
	{CURLE_UNSUPPORTED_PROTOCOL, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_FAILED,
	 "protocol error talking to data source \"%s\" (\"%s\")", NULL},
};

static const CurlFailure other_failure = {
	CURLE_OK, ERRCODE_DCI_TRANSPORT, DCI_OUTCOME_FAILED,
	"HTTP transfer to data source \"%s\" (\"%s\") failed", NULL};

DciOutcome
dci_describe_failure(CURLcode rc, const DciTransferFacts *f, DciError *err)
{
	const CurlFailure *c = &other_failure;

	/* what the callbacks saw decides before libcurl's code */
	if (f->blocked_address)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "address %s of \"%s\" (data source \"%s\") is not allowed by dci_client.allowed_hosts",
					  f->blocked, f->origin, f->source_code);
		dci_error_detail(err, "Loopback, private and link-local addresses must be listed as IP addresses or CIDR ranges.");
		return DCI_OUTCOME_FAILED;
	}
	if (f->too_large || rc == CURLE_FILESIZE_EXCEEDED)
	{
		dci_error_set(err, ERRCODE_DCI_TOO_LARGE, "response from data source \"%s\" (\"%s\") exceeds dci_client.max_response_bytes (%d bytes)",
					  f->source_code, f->origin, f->max_response_bytes);
		return DCI_OUTCOME_FAILED;
	}
	if (f->headers_too_large)
	{
		dci_error_set(err, ERRCODE_DCI_TOO_LARGE, "response headers from data source \"%s\" (\"%s\") exceed %d bytes or %d fields",
					  f->source_code, f->origin, f->max_header_bytes, f->max_header_count);
		return DCI_OUTCOME_FAILED;
	}
	if (f->resent)
	{
		dci_error_set(err, ERRCODE_DCI_TRANSPORT, "connection to data source \"%s\" (\"%s\") was closed before a complete answer",
					  f->source_code, f->origin);
		dci_error_detail(err, "The reused connection failed after the request was sent.");
		return DCI_OUTCOME_RESET;
	}
	if (f->socket_overflow)
	{
		dci_error_set(err, ERRCODE_DCI_TRANSPORT, "HTTP transfer to data source \"%s\" (\"%s\") needed more than %d sockets at once",
					  f->source_code, f->origin, f->max_sockets);
		return DCI_OUTCOME_FAILED;
	}
	if (rc == CURLE_OPERATION_TIMEDOUT && f->deadline_passed)
	{
		dci_error_set(err, ERRCODE_DCI_TIMEOUT, "call to data source \"%s\" (\"%s\") ran out of time",
					  f->source_code, f->origin);
		dci_error_hint(err, "The budget is the data source's timeout_ms, or dci_client.timeout_ms.");
		c = NULL;
	}
	else if (rc == CURLE_PEER_FAILED_VERIFICATION)
	{
		dci_error_set(err, ERRCODE_DCI_TRANSPORT, "TLS certificate of data source \"%s\" (\"%s\") is not trusted: %s",
					  f->source_code, f->origin,
					  f->verify_result ? X509_verify_cert_error_string(f->verify_result) : "verification failed");
		dci_error_hint(err, "Check ca_cert and verify_ssl of the data source, and the server's certificate.");
		c = NULL;
	}
	else
	{
		for (int i = 0; i < lengthof(curl_failures); i++)
			if (curl_failures[i].code == rc)
				c = &curl_failures[i];
		dci_error_set(err, c->sqlstate, c->message, f->source_code, f->origin);
		if (c->hint)
			dci_error_hint(err, "%s", c->hint);
	}
	/* libcurl's own words (a certificate's subject, a refused connect) and the timings */
	dci_error_detail(err, "%s (DNS %.1f ms, connect %.1f ms, TLS %.1f ms, total %.1f ms).",
					 f->curl_error, f->dns_ms, f->connect_ms, f->tls_ms, f->total_ms);
	return c ? c->outcome : DCI_OUTCOME_FAILED;
}

bool
dci_retryable(DciOutcome o, long status, bool idempotent)
{
	switch (o)
	{
		case DCI_OUTCOME_NOT_CONNECTED:
			return true;
		case DCI_OUTCOME_RESET:
			return idempotent;
		case DCI_OUTCOME_HTTP:
			return status == 429 || status == 503 ||
				   (idempotent && (status == 502 || status == 504));
		default:
			return false;
	}
}

long
dci_retry_delay_ms(int attempt_no, const char *retry_after)
{
	long base = 100L << Min(attempt_no - 1, 10);
	long asked = retry_after ? retry_after_ms(retry_after, time(NULL)) : -1;

	if (asked >= 0)
		return asked;
	base = Min(base, 5000L);
	return base / 2 + (long) (pg_prng_double(&pg_global_prng_state) * (base / 2));
}
