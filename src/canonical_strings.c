/*
 * canonical_strings.c
 *		Strings of the canonical JSON (canonical_json.c): read as Python's
 *		scanner reads them (escapes, surrogate pairs joined, lone surrogates
 *		kept, control characters and invalid UTF-8 refused) into generalized
 *		UTF-8, written as ensure_ascii writes them.  Free of PostgreSQL
 *		headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical_parser.h"

/* append code point cp (any value up to 0x10FFFF, surrogates too) */
static bool
put_utf8(Buf *b, uint32_t cp)
{
	char   s[4];
	size_t n;

	if (cp < 0x80)
	{
		s[0] = (char) cp;
		n = 1;
	}
	else if (cp < 0x800)
	{
		s[0] = (char) (0xC0 | (cp >> 6));
		s[1] = (char) (0x80 | (cp & 0x3F));
		n = 2;
	}
	else if (cp < 0x10000)
	{
		s[0] = (char) (0xE0 | (cp >> 12));
		s[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		s[2] = (char) (0x80 | (cp & 0x3F));
		n = 3;
	}
	else
	{
		s[0] = (char) (0xF0 | (cp >> 18));
		s[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		s[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		s[3] = (char) (0x80 | (cp & 0x3F));
		n = 4;
	}
	return cj_buf_append(b, s, n);
}

/*
 * Decode one code point of strict UTF-8 (what Python's decoder accepts: no
 * overlong forms, no encoded surrogates, nothing above U+10FFFF).  Returns
 * its length, 0 when invalid.
 */
static size_t
get_utf8(const unsigned char *p, const unsigned char *end, uint32_t *cp)
{
	unsigned char c = p[0];
	size_t		  n;
	uint32_t	  v;
	uint32_t	  min;

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF)
	{
		n = 2;
		v = c & 0x1F;
		min = 0x80;
	}
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		v = c & 0x0F;
		min = 0x800;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		v = c & 0x07;
		min = 0x10000;
	}
	else
		return 0;
	if ((size_t) (end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++)
	{
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

/* decode a generalized UTF-8 sequence of our own making (always valid) */
static size_t
get_wtf8(const unsigned char *p, uint32_t *cp)
{
	unsigned char c = p[0];

	if (c < 0x80)
	{
		*cp = c;
		return 1;
	}
	if (c < 0xE0)
	{
		*cp = ((uint32_t) (c & 0x1F) << 6) | (p[1] & 0x3F);
		return 2;
	}
	if (c < 0xF0)
	{
		*cp = ((uint32_t) (c & 0x0F) << 12) | ((uint32_t) (p[1] & 0x3F) << 6) | (p[2] & 0x3F);
		return 3;
	}
	*cp = ((uint32_t) (c & 0x07) << 18) | ((uint32_t) (p[1] & 0x3F) << 12) |
		  ((uint32_t) (p[2] & 0x3F) << 6) | (p[3] & 0x3F);
	return 4;
}

static int
hex4(const unsigned char *p, const unsigned char *end, uint32_t *v)
{
	uint32_t r = 0;

	if (end - p < 4)
		return 0;
	for (int i = 0; i < 4; i++)
	{
		unsigned char c = p[i];

		r <<= 4;
		if (c >= '0' && c <= '9')
			r |= c - '0';
		else if (c >= 'a' && c <= 'f')
			r |= c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			r |= c - 'A' + 10;
		else
			return 0;
	}
	*v = r;
	return 1;
}

/* parse a string (at its opening quote) into generalized UTF-8
 *
 * Long (~125 lines) for a reason: the escape grammar of Python's scanner as
 * one loop (escapes, surrogate pairs joined or kept, UTF-8 checked) with the
 * position in locals; it is compared with Python over random input.
 */
bool
cj_parse_string(Parser *ps, Buf *s)
{
	ps->p++; /* the opening quote */
	for (;;)
	{
		unsigned char c;

		if (ps->p >= ps->end)
		{
			cj_fail(ps, "unterminated string at offset %zu", cj_offset(ps));
			return false;
		}
		c = *ps->p;
		if (c == '"')
		{
			ps->p++;
			return true;
		}
		if (c < 0x20)
		{
			cj_fail(ps, "invalid control character in string at offset %zu", cj_offset(ps));
			return false;
		}
		if (c == '\\')
		{
			char simple = 0;

			if (ps->end - ps->p < 2)
			{
				cj_fail(ps, "unterminated string at offset %zu", cj_offset(ps));
				return false;
			}
			switch (ps->p[1])
			{
				case '"':
					simple = '"';
					break;
				case '\\':
					simple = '\\';
					break;
				case '/':
					simple = '/';
					break;
				case 'b':
					simple = '\b';
					break;
				case 'f':
					simple = '\f';
					break;
				case 'n':
					simple = '\n';
					break;
				case 'r':
					simple = '\r';
					break;
				case 't':
					simple = '\t';
					break;
				case 'u':
				{
					uint32_t cp,
						lo;

					if (!hex4(ps->p + 2, ps->end, &cp))
					{
						cj_fail(ps, "invalid \\uXXXX escape at offset %zu", cj_offset(ps));
						return false;
					}
					ps->p += 6;
					/* a high surrogate joins an escaped low one that follows */
					if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 &&
						ps->p[0] == '\\' && ps->p[1] == 'u')
					{
						if (!hex4(ps->p + 2, ps->end, &lo))
						{
							cj_fail(ps, "invalid \\uXXXX escape at offset %zu", cj_offset(ps));
							return false;
						}
						if (lo >= 0xDC00 && lo <= 0xDFFF)
						{
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
							ps->p += 6;
						}
					}
					if (!put_utf8(s, cp))
						goto oom;
					continue;
				}
				default:
					cj_fail(ps, "invalid escape at offset %zu", cj_offset(ps));
					return false;
			}
			if (!cj_buf_putc(s, simple))
				goto oom;
			ps->p += 2;
		}
		else if (c < 0x80)
		{
			const unsigned char *q = ps->p;

			/* a run of plain ASCII */
			while (q < ps->end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\')
				q++;
			if (!cj_buf_append(s, (const char *) ps->p, q - ps->p))
				goto oom;
			ps->p = q;
		}
		else
		{
			uint32_t cp;
			size_t	 n = get_utf8(ps->p, ps->end, &cp);

			if (n == 0)
			{
				cj_fail(ps, "invalid UTF-8 at offset %zu", cj_offset(ps));
				return false;
			}
			if (!cj_buf_append(s, (const char *) ps->p, n))
				goto oom;
			ps->p += n;
		}
	}
oom:
	cj_fail(ps, "out of memory");
	return false;
}

/* write generalized UTF-8 s as a JSON string the way ensure_ascii does */
bool
cj_emit_string(Buf *out, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;

	if (!cj_buf_putc(out, '"'))
		return false;
	while (p < end)
	{
		uint32_t cp;
		char	 esc[12];
		size_t	 n = 0;

		p += get_wtf8(p, &cp);
		switch (cp)
		{
			case '"':
				n = 2, esc[0] = '\\', esc[1] = '"';
				break;
			case '\\':
				n = 2, esc[0] = '\\', esc[1] = '\\';
				break;
			case '\n':
				n = 2, esc[0] = '\\', esc[1] = 'n';
				break;
			case '\r':
				n = 2, esc[0] = '\\', esc[1] = 'r';
				break;
			case '\t':
				n = 2, esc[0] = '\\', esc[1] = 't';
				break;
			case '\b':
				n = 2, esc[0] = '\\', esc[1] = 'b';
				break;
			case '\f':
				n = 2, esc[0] = '\\', esc[1] = 'f';
				break;
			default:
				if (cp >= 0x20 && cp < 0x7F)
				{
					esc[0] = (char) cp;
					n = 1;
				}
				else
				{
					uint32_t units[2];
					int		 nu = 0;

					if (cp >= 0x10000)
					{
						units[nu++] = 0xD800 + ((cp - 0x10000) >> 10);
						units[nu++] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
					}
					else
						units[nu++] = cp;
					for (int i = 0; i < nu; i++)
					{
						esc[n++] = '\\';
						esc[n++] = 'u';
						esc[n++] = hex[(units[i] >> 12) & 0xF];
						esc[n++] = hex[(units[i] >> 8) & 0xF];
						esc[n++] = hex[(units[i] >> 4) & 0xF];
						esc[n++] = hex[units[i] & 0xF];
					}
				}
		}
		if (!cj_buf_append(out, esc, n))
			return false;
	}
	return cj_buf_putc(out, '"');
}
