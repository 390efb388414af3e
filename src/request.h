/*
 * request.h
 *		Authenticated calls to a data source: dci_call, the one path every
 *		call takes, and dci_request (request.c).
 */
#ifndef DCI_REQUEST_H
#define DCI_REQUEST_H

#include "dci_client.h"
#include "http.h"
#include "source.h"

/*
 * One call to base_url || path with the source's headers and token (when
 * with_auth); a 401 on OAuth2 renews the token and resends once.  False with
 * err set when there was no HTTP answer or no token.
 */
extern bool dci_call(DciSource *src, const char *method, const char *path,
					 const char *body, size_t body_len, const DciHeaders *headers,
					 TimestampTz deadline, bool idempotent, bool with_auth,
					 DciHttpResponse *resp, DciError *err);
/* the request lines of a call without call headers: extra_headers, defaults, authorization */
extern const char **dci_call_headers(const DciSource *src, bool has_body, const char *authorization);
/* the body as a string of the server encoding (22021 when invalid) */
extern char *dci_body_to_cstring(const DciSource *src, const DciHttpResponse *resp);

#endif /* DCI_REQUEST_H */
