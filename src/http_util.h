/*
 * http_util.h
 *		libcurl helpers that need no transfer (http_util.c).
 */
#ifndef DCI_HTTP_UTIL_H
#define DCI_HTTP_UTIL_H

#include "postgres.h"

#include <curl/curl.h>

/* host[:port] of a URL, for messages: never the path or query string */
extern char *dci_url_origin(const char *url);
/* the host of a URL (IPv6 without brackets), NULL when it has none */
extern char *dci_url_host(const char *url);
/* URL-encode (application/x-www-form-urlencoded component), palloc'd */
extern char *dci_url_encode(const char *s);
/*
 * The request's "Name: value" lines (NULL-terminated) as a curl_slist, with
 * "Expect:" last; the same list as last time when the lines are equal.
 */
extern struct curl_slist *dci_header_slist(const char *const *lines);
/* the same, owned by the caller (several transfers at once); freed wiped */
extern struct curl_slist *dci_header_slist_new(const char *const *lines);
extern void				  dci_header_slist_free(struct curl_slist *list);

#endif /* DCI_HTTP_UTIL_H */
