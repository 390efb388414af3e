/*
 * path_check.c
 *		Refuse request paths that could climb out of base_url's path, or that
 *		a server decoding them (once or more) would read as another path.
 *
 * The path is sent as written; decoding here is for checking only.  The
 * path part is percent-decoded up to MAX_ROUNDS times, since "%252e" is "."
 * to a server (or proxy chain) that decodes twice.  Each segment is cut at
 * its first ';' before the dot check: Tomcat drops ";params", so "..;" is
 * ".." there.  "..." and longer runs of dots are accepted: RFC 3986 gives
 * them no meaning and no server we know of climbs on them.
 *
 * Beyond the rules asked for, invalid UTF-8 lead bytes and overlong forms
 * are refused too (raw or decoded): "%c0%ae" is "." to a lenient decoder.
 */
#include "path_check.h"

#include "hex.h"

#include <stdlib.h>
#include <string.h>

/* decoding rounds checked; a path still encoded after them is refused */
#define MAX_ROUNDS 3

#define R_START		"must start with \"/\""
#define R_BYTES		"has a control character, space, \"#\" or backslash"
#define R_QUERY		"has a query string"
#define R_MALFORMED "has a malformed percent escape"
#define R_NUL		"has an encoded NUL"
#define R_SLASH		"has an encoded slash or backslash"
#define R_DEEP		"has too many levels of percent-encoding"
#define R_UTF8		"has an overlong or invalid UTF-8 byte"
#define R_DOT		"has a \"..\" or \".\" segment (also percent-encoded or with \";\" parameters)"
#define R_NOMEM		"cannot be checked (out of memory)"

/*
 * One round of percent-decoding of buf[0..*len) in place.  In the first
 * round (the text as written) every '%' must start an escape; in later ones
 * a lone '%' is a literal one (it came from "%25"), except IIS's "%uXXXX".
 */
static const char *
decode_round(unsigned char *buf, size_t *len, bool first, bool *changed)
{
	size_t w = 0;

	*changed = false;
	for (size_t r = 0; r < *len; r++)
	{
		unsigned char c = buf[r];

		if (c == '%')
		{
			int hi = r + 2 < *len ? dci_hex_value(buf[r + 1]) : -1;
			int lo = r + 2 < *len ? dci_hex_value(buf[r + 2]) : -1;

			if (hi >= 0 && lo >= 0)
			{
				c = (unsigned char) (hi * 16 + lo);
				if (c == '\0')
					return R_NUL;
				if (c == '/' || c == '\\')
					return R_SLASH;
				r += 2;
				*changed = true;
			}
			else if (first || (r + 1 < *len && (buf[r + 1] == 'u' || buf[r + 1] == 'U')))
				return R_MALFORMED;
		}
		buf[w++] = c;
	}
	*len = w;
	return NULL;
}

/* bytes that never occur in UTF-8, and the overlong 3- and 4-byte forms */
static bool
bad_utf8(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
	{
		if (s[i] == 0xC0 || s[i] == 0xC1 || s[i] >= 0xF5)
			return true;
		if (i + 1 < n && s[i] == 0xE0 && s[i + 1] >= 0x80 && s[i + 1] < 0xA0)
			return true;
		if (i + 1 < n && s[i] == 0xF0 && s[i + 1] >= 0x80 && s[i + 1] < 0x90)
			return true;
	}
	return false;
}

/* one segment (no raw '/'), decoded in buf, which has room for n bytes */
static const char *
check_segment(const char *seg, size_t n, unsigned char *buf)
{
	const char	  *problem;
	unsigned char *semi;

	memcpy(buf, seg, n);
	for (int round = 1; memchr(buf, '%', n) != NULL; round++)
	{
		bool changed;

		problem = decode_round(buf, &n, round == 1, &changed);
		if (problem != NULL)
			return problem;
		if (!changed)
			break;
		if (round > MAX_ROUNDS)
			return R_DEEP;
	}
	if (bad_utf8(buf, n))
		return R_UTF8;
	semi = memchr(buf, ';', n);
	if (semi != NULL)
		n = semi - buf;
	if ((n == 1 && buf[0] == '.') || (n == 2 && buf[0] == '.' && buf[1] == '.'))
		return R_DOT;
	return NULL;
}

const char *
dci_path_problem(const char *path, bool allow_query)
{
	const char	  *q;
	size_t		   plen;
	unsigned char *buf;
	const char	  *problem = NULL;

	if (path == NULL || path[0] != '/')
		return R_START;
	for (const char *p = path; *p; p++)
	{
		unsigned char c = (unsigned char) *p;

		if (c <= 0x20 || c == 0x7f || c == '#' || c == '\\')
			return R_BYTES;
	}
	q = strchr(path, '?');
	if (q != NULL && !allow_query)
		return R_QUERY;
	plen = q != NULL ? (size_t) (q - path) : strlen(path);

	buf = malloc(plen + 1);
	if (buf == NULL)
		return R_NOMEM;
	/* the segments after each '/'; the one before the first is empty */
	for (size_t start = 1; start <= plen && problem == NULL;)
	{
		const char *seg = path + start;
		const char *slash = memchr(seg, '/', plen - start);
		size_t		n = slash != NULL ? (size_t) (slash - seg) : plen - start;

		problem = check_segment(seg, n, buf);
		start += n + 1;
	}
	free(buf);
	return problem;
}
