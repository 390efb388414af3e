/*
 * canonical_parser.c
 *		The parser state and output buffers shared by the canonicaliser's
 *		files (canonical_parser.h).  Free of PostgreSQL headers.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical_parser.h"

void
cj_fail(Parser *ps, const char *fmt, ...)
{
	va_list ap;

	if (ps->failed)
		return;
	ps->failed = true;
	if (ps->err && ps->errlen)
	{
		va_start(ap, fmt);
		vsnprintf(ps->err, ps->errlen, fmt, ap);
		va_end(ap);
	}
}

size_t
cj_offset(Parser *ps)
{
	return (size_t) (ps->p - ps->base);
}

static bool
cj_buf_reserve(Buf *b, size_t more)
{
	if (b->len + more + 1 > b->cap)
	{
		size_t cap = b->cap ? b->cap : 256;
		char  *d;

		while (cap < b->len + more + 1)
		{
			if (cap > SIZE_MAX / 2)
				return false;
			cap *= 2;
		}
		d = realloc(b->data, cap);
		if (d == NULL)
			return false;
		b->data = d;
		b->cap = cap;
	}
	return true;
}

bool
cj_buf_append(Buf *b, const char *s, size_t n)
{
	if (!cj_buf_reserve(b, n))
		return false;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

bool
cj_buf_putc(Buf *b, char c)
{
	return cj_buf_append(b, &c, 1);
}
