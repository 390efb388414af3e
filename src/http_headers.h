/*
 * http_headers.h
 *		Response header collection and small HTTP text helpers.
 *
 * Free of PostgreSQL headers so unit tests and fuzzers link it alone.
 * Allocation is malloc-based and never aborts: callers run it inside
 * libcurl callbacks, where raising an error is not allowed.
 */
#ifndef DCI_HTTP_HEADERS_H
#define DCI_HTTP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

typedef struct DciHeaderList
{
	size_t n;
	size_t cap;
	char **names;		/* lower case */
	char **values;		/* repeated headers joined with ", " */
	size_t total_bytes; /* bytes fed for the current response */
} DciHeaderList;

/* results of header_list_feed */
#define HEADER_OK		 0
#define HEADER_NOMEM	 (-1)
#define HEADER_TOO_LARGE (-2)

extern void header_list_init(DciHeaderList *h);
/* forget all headers (a new response starts), keeping the allocations */
extern void header_list_clear(DciHeaderList *h);
extern void header_list_free(DciHeaderList *h);

/*
 * Feed one raw header line as libcurl's header callback delivers it
 * (status lines start a new response; the blank line ends it).  Limits:
 * max_bytes of header text and max_count distinct headers per response.
 */
extern int header_list_feed(DciHeaderList *h, const char *line, size_t len,
							size_t max_bytes, size_t max_count);

/* value of a header (name in lower case), NULL when absent */
extern const char *header_list_get(const DciHeaderList *h, const char *name);

/* RFC 9110 token characters only, non-empty */
extern bool header_name_valid(const char *name);
/* no control character but horizontal tab (the value is sent as one line) */
extern bool header_value_valid(const char *value);

/*
 * The charset parameter of a Content-Type value, copied into buf
 * (unquoted); false when there is none or it does not fit.
 */
extern bool content_type_charset(const char *content_type, char *buf, size_t buflen);

/*
 * Delay asked by a Retry-After value (delta-seconds or HTTP-date relative to
 * now), in milliseconds; -1 when the value is not understood.
 */
extern long retry_after_ms(const char *value, time_t now);

#endif /* DCI_HTTP_HEADERS_H */
