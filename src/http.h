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

#endif /* DCI_HTTP_H */
