/*
 * path_check.h
 *		The one validator of request paths appended to a data source's
 *		base_url: dci_request's path and the endpoint columns.
 *
 * Free of PostgreSQL headers so unit tests and fuzzers link it alone.
 */
#ifndef DCI_PATH_CHECK_H
#define DCI_PATH_CHECK_H

#include <stdbool.h>

/*
 * NULL when path is acceptable as a request path under a data source's base_url, else a
 * short static English reason (for an error detail).  allow_query: whether a "?query" part is
 * accepted (dci_request: yes; the endpoint columns search_endpoint/ping_endpoint: no).
 */
extern const char *dci_path_problem(const char *path, bool allow_query);

#endif /* DCI_PATH_CHECK_H */
