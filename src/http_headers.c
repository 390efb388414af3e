/*
 * http_headers.c
 *		Response header collection without regular expressions: each line is
 *		split at its first colon, the name lower-cased, the value trimmed.
 */
#include "http_headers.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

void
header_list_init(DciHeaderList *h)
{
	memset(h, 0, sizeof(*h));
}

void
header_list_clear(DciHeaderList *h)
{
	for (size_t i = 0; i < h->n; i++)
	{
		free(h->names[i]);
		free(h->values[i]);
	}
	h->n = 0;
	h->total_bytes = 0;
}

void
header_list_free(DciHeaderList *h)
{
	header_list_clear(h);
	free(h->names);
	free(h->values);
	header_list_init(h);
}

static char *
copy_span(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p)
	{
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

/* append ", value" (or the continuation of a folded line) to header i */
static int
append_value(DciHeaderList *h, size_t i, const char *sep, const char *v, size_t vlen)
{
	size_t old = strlen(h->values[i]);
	size_t seplen = strlen(sep);
	char  *p = realloc(h->values[i], old + seplen + vlen + 1);

	if (!p)
		return HEADER_NOMEM;
	memcpy(p + old, sep, seplen);
	memcpy(p + old + seplen, v, vlen);
	p[old + seplen + vlen] = '\0';
	h->values[i] = p;
	return HEADER_OK;
}

int
header_list_feed(DciHeaderList *h, const char *line, size_t len,
				 size_t max_bytes, size_t max_count)
{
	const char *colon;
	const char *v;
	const char *end;
	size_t		namelen;
	char	   *name;

	/* a status line starts a new response (100-continue, proxy CONNECT) */
	if (len >= 5 && memcmp(line, "HTTP/", 5) == 0)
	{
		header_list_clear(h);
		h->total_bytes = len;
		return HEADER_OK;
	}

	h->total_bytes += len;
	if (h->total_bytes > max_bytes)
		return HEADER_TOO_LARGE;

	end = line + len;
	while (end > line && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	if (end == line)
		return HEADER_OK; /* the blank line ending the headers */

	/* obsolete line folding: the line continues the previous value */
	if (*line == ' ' || *line == '\t')
	{
		if (h->n == 0)
			return HEADER_OK;
		while (line < end && (*line == ' ' || *line == '\t'))
			line++;
		return append_value(h, h->n - 1, " ", line, end - line);
	}

	colon = memchr(line, ':', end - line);
	if (colon == NULL || colon == line)
		return HEADER_OK; /* not a header: ignore, as browsers do */
	namelen = colon - line;
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;

	name = copy_span(line, namelen);
	if (!name)
		return HEADER_NOMEM;
	for (size_t i = 0; i < namelen; i++)
		name[i] = (char) tolower((unsigned char) name[i]);

	for (size_t i = 0; i < h->n; i++)
	{
		if (strcmp(h->names[i], name) == 0)
		{
			free(name);
			return append_value(h, i, ", ", v, end - v);
		}
	}

	if (h->n >= max_count)
	{
		free(name);
		return HEADER_TOO_LARGE;
	}
	if (h->n == h->cap)
	{
		size_t cap = h->cap ? h->cap * 2 : 16;
		char **names = realloc(h->names, cap * sizeof(char *));
		char **values;

		if (!names)
		{
			free(name);
			return HEADER_NOMEM;
		}
		h->names = names;
		values = realloc(h->values, cap * sizeof(char *));
		if (!values)
		{
			free(name);
			return HEADER_NOMEM;
		}
		h->values = values;
		h->cap = cap;
	}
	h->values[h->n] = copy_span(v, end - v);
	if (!h->values[h->n])
	{
		free(name);
		return HEADER_NOMEM;
	}
	h->names[h->n++] = name;
	return HEADER_OK;
}

const char *
header_list_get(const DciHeaderList *h, const char *name)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->names[i], name) == 0)
			return h->values[i];
	return NULL;
}

bool
header_name_valid(const char *name)
{
	if (name == NULL || *name == '\0')
		return false;
	for (const unsigned char *p = (const unsigned char *) name; *p; p++)
	{
		if (isalnum(*p))
			continue;
		if (strchr("!#$%&'*+-.^_`|~", *p) == NULL)
			return false;
	}
	return true;
}

bool
header_value_valid(const char *value)
{
	/* field-value of RFC 9110: no control character but horizontal tab */
	if (value == NULL)
		return false;
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return false;
	return true;
}

bool
content_type_charset(const char *ct, char *buf, size_t buflen)
{
	const char *p;

	if (ct == NULL)
		return false;
	for (p = strchr(ct, ';'); p != NULL; p = strchr(p + 1, ';'))
	{
		const char *q = p + 1;
		size_t		n = 0;

		while (*q == ' ' || *q == '\t')
			q++;
		if (strncasecmp(q, "charset", 7) != 0)
			continue;
		q += 7;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q != '=')
			continue;
		q++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '"')
			q++;
		while (q[n] && q[n] != '"' && q[n] != ';' && q[n] != ' ' && q[n] != '\t')
			n++;
		if (n == 0 || n >= buflen)
			return false;
		memcpy(buf, q, n);
		buf[n] = '\0';
		return true;
	}
	return false;
}

long
retry_after_ms(const char *value, time_t now)
{
	char  *end;
	long   secs;
	time_t when;

	if (value == NULL)
		return -1;
	while (*value == ' ')
		value++;
	if (isdigit((unsigned char) *value))
	{
		secs = strtol(value, &end, 10);
		while (*end == ' ')
			end++;
		if (*end != '\0' || secs < 0 || secs > 86400 * 7)
			return -1;
		return secs * 1000;
	}
	/* an HTTP-date; libcurl has the parser */
	when = curl_getdate(value, NULL);
	if (when == (time_t) -1)
		return -1;
	return when <= now ? 0 : (long) (when - now) * 1000;
}
