/*
 * path_fuzz.c
 *		libFuzzer target for dci_path_problem, with and without a query
 *		allowed: no crash or overread, a path accepted without a query is
 *		accepted with one, and an accepted path shows none of the refused
 *		spellings as written.
 */
#include "path_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* case-insensitive substring within s[0..n) */
static int
has(const char *s, size_t n, const char *sub)
{
	size_t k = strlen(sub);

	for (size_t i = 0; i + k <= n; i++)
		if (strncasecmp(s + i, sub, k) == 0)
			return 1;
	return 0;
}

/* "." or "..", written as is or with "%2e" */
static int
is_dots(const char *seg, size_t n)
{
	size_t dots = 0;

	for (size_t i = 0; i < n; dots++)
	{
		if (seg[i] == '.')
			i++;
		else if (i + 3 <= n && strncasecmp(seg + i, "%2e", 3) == 0)
			i += 3;
		else
			return 0;
	}
	return dots == 1 || dots == 2;
}

/* what an accepted path must not show, checked without decoding */
static void
check_accepted(const char *s)
{
	const char *q = strchr(s, '?');
	size_t		plen = q ? (size_t) (q - s) : strlen(s);

	if (s[0] != '/')
		abort();
	for (const char *p = s; *p; p++)
		if ((unsigned char) *p <= 0x20 || *p == 0x7f || *p == '#' || *p == '\\')
			abort();
	if (has(s, plen, "%2f") || has(s, plen, "%5c") || has(s, plen, "%00") ||
		has(s, plen, "%252f") || has(s, plen, "%255c"))
		abort();
	for (size_t start = 1; start <= plen;)
	{
		const char *seg = s + start;
		const char *slash = memchr(seg, '/', plen - start);
		size_t		n = slash ? (size_t) (slash - seg) : plen - start;
		const char *semi = memchr(seg, ';', n);
		size_t		m = semi ? (size_t) (semi - seg) : n;

		if (is_dots(seg, m))
			abort();
		start += n + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);
	const char *without;
	const char *with;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	without = dci_path_problem(s, false);
	with = dci_path_problem(s, true);
	if (without == NULL && with != NULL)
		abort();
	if (without != NULL && with == NULL && strchr(s, '?') == NULL)
		abort();
	if ((without && without[0] == '\0') || (with && with[0] == '\0'))
		abort();
	if (with == NULL)
		check_accepted(s);
	if (without == NULL && strchr(s, '?') != NULL)
		abort();
	free(s);
	return 0;
}
