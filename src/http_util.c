/*
 * http_util.c
 *		libcurl helpers that need no transfer: URL parts for messages and
 *		checks, URL encoding, and the request's header list (kept between
 *		calls, wiped when dropped: it holds the Authorization line).
 */
#include "postgres.h"

#include <curl/curl.h>

#include "http_util.h"

/* host[:port] of a URL, for messages: never the path or query string */
char *
dci_url_origin(const char *url)
{
	CURLU *u = curl_url();
	char  *host = NULL;
	char  *port = NULL;
	char  *result;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
	{
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
	}
	result = psprintf("%s%s%s", host ? host : "?", port ? ":" : "", port ? port : "");
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return result;
}

char *
dci_url_host(const char *url)
{
	CURLU *u = curl_url();
	char  *host = NULL;
	char  *result = NULL;

	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
	{
		size_t len = strlen(host);

		/* IPv6 literals come bracketed */
		if (len > 2 && host[0] == '[' && host[len - 1] == ']')
			result = pnstrdup(host + 1, len - 2);
		else
			result = pstrdup(host);
	}
	curl_free(host);
	curl_url_cleanup(u);
	return result;
}

char *
dci_url_encode(const char *s)
{
	char *enc;
	char *result;

	/* libcurl ignores the handle since 7.82 */
	enc = curl_easy_escape(NULL, s, 0);
	if (enc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	result = pstrdup(enc);
	explicit_bzero(enc, strlen(enc));
	curl_free(enc);
	return result;
}

/*
 * The request's header lines as a curl_slist.  Successive calls of a source
 * send the same lines (the token changes rarely), so the last list is kept
 * and reused when the lines are equal: no allocation on the warm path.
 */
static struct curl_slist *cached_slist = NULL;

/* the Authorization line is a credential: wipe every line before freeing */
static void
free_slist_wiped(struct curl_slist *list)
{
	for (struct curl_slist *item = list; item; item = item->next)
		explicit_bzero(item->data, strlen(item->data));
	curl_slist_free_all(list);
}

struct curl_slist *
dci_header_slist(const char *const *lines)
{
	struct curl_slist *item = cached_slist;
	const char *const *h = lines;

	for (; h && *h && item; h++, item = item->next)
		if (strcmp(item->data, *h) != 0)
			break;
	/* all lines equal, and only "Expect:" left in the cached list */
	if ((h == NULL || *h == NULL) && item && item->next == NULL && cached_slist != NULL)
		return cached_slist;

	if (cached_slist)
	{
		free_slist_wiped(cached_slist);
		cached_slist = NULL;
	}
	cached_slist = dci_header_slist_new(lines);
	return cached_slist;
}

struct curl_slist *
dci_header_slist_new(const char *const *lines)
{
	struct curl_slist *list = NULL;

	/* the last line: no 100-continue round trip for large bodies */
	for (const char *const *h = lines;; h++)
	{
		struct curl_slist *n = curl_slist_append(list, (h && *h) ? *h : "Expect:");

		if (n == NULL)
		{
			free_slist_wiped(list);
			ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
		}
		list = n;
		if (h == NULL || *h == NULL)
			break;
	}
	return list;
}

void
dci_header_slist_free(struct curl_slist *list)
{
	free_slist_wiped(list);
}
