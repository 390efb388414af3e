/*
 * http.h
 *		HTTP transfers with libcurl inside a backend (http.c).
 */
#ifndef DCI_HTTP_H
#define DCI_HTTP_H

#include "postgres.h"
#include "errors.h"
#include "source.h"
#include "http_util.h"
#include "utils/timestamp.h"

typedef struct DciHttpRequest
{
	const char		  *method; /* upper case */
	const char		  *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated */
	const char		  *body;	/* NULL: no body */
	size_t			   body_len;
	const DciSource	  *source; /* TLS settings */
	TimestampTz		   deadline;
	bool			   idempotent; /* may be resent after a reset */
	bool			   no_client_cert; /* not the source's origin: no mutual TLS */
} DciHttpRequest;

typedef struct DciHttpResponse
{
	long				  status; /* 0: no HTTP answer (see error) */
	char				 *body;	  /* palloc'd, NUL-terminated */
	size_t				  body_len;
	struct DciHeaderList *headers; /* valid until the next transfer */
	int					  attempts;
	double				  elapsed_ms;
	DciError			  error; /* transport failure when status == 0 */
} DciHttpResponse;

/*
 * One exchange with the retry rules of the README's "Errors" (backoff,
 * Retry-After) inside the request's deadline.  Returns false with resp->error set when no usable
 * HTTP answer came; the last HTTP answer is returned as it is otherwise.
 */
extern bool dci_http_exchange(const DciHttpRequest *req, DciHttpResponse *resp);

/* end every transfer in flight (an error left the call that started them) */
extern void dci_http_abort_all(void);

/* most transfers dci_http_run_many keeps in flight at once */
#define DCI_HTTP_MAX_PARALLEL 64

/*
 * dci_http_run_many's callbacks.  next: the next request to send (it and
 * what it points to stay valid until done is called for it), false when
 * there is none left.  done: a request ended after its retries, as
 * dci_http_exchange would have ended it; resp->body and resp->headers are
 * valid only during the call.  done may run other calls (a token fetch)
 * and may raise: an error ends every transfer.
 */
typedef bool (*DciHttpNextFn)(void *arg, DciHttpRequest **req, void **tag);
typedef void (*DciHttpDoneFn)(void *arg, DciHttpRequest *req, void *tag, bool ok,
							  DciHttpResponse *resp);

/*
 * Run the requests next() gives, up to concurrency (at most
 * DCI_HTTP_MAX_PARALLEL) in flight at once over the backend's multi handle
 * (connections kept alive and shared with dci_http_exchange), each with
 * the retry rules and its own deadline.  Interruptible like
 * dci_http_exchange.
 */
extern void dci_http_run_many(int concurrency, DciHttpNextFn next, DciHttpDoneFn done, void *arg);

#endif /* DCI_HTTP_H */
