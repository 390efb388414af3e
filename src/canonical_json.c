/*
 * canonical_json.c
 *		The canonical JSON of the DCI signature scheme (README, "Signing").
 *
 * The peer computes json.dumps(json.loads(text), sort_keys=True,
 * separators=(",", ":")) in Python, so this file mirrors Python's json
 * module, parse and print, rule by rule:
 *
 *	- the grammar of Python's scanner, including its extensions NaN,
 *	  Infinity and -Infinity, and its refusals (control characters inside
 *	  strings, invalid UTF-8, anything after the value but whitespace);
 *	- a number without fraction or exponent is an int, printed as its exact
 *	  digits ("-0" is 0); any other number is float(text) printed as repr()
 *	  (shortest round-trip digits, ".0" on integral values, exponent form
 *	  when the decimal exponent is < -4 or >= 16), inf as "Infinity";
 *	- strings are escaped as ensure_ascii does: \" \\ \n \r \t \b \f, any
 *	  other character outside ' '..'~' as \uxxxx (lower-case hex), surrogate
 *	  pairs above U+FFFF; an escaped surrogate pair is joined on input, a
 *	  lone escaped surrogate is kept;
 *	- object keys sorted by code point; of duplicate keys the last one wins.
 *
 * It is a small tokenizer over the raw text rather than json-c, because
 * json-c loses what the canonical form depends on: integers beyond 64 bits
 * (it clamps or converts them), duplicate keys, lone surrogates, and NaN /
 * Infinity.  Strings are held internally as "generalized UTF-8" (lone
 * surrogates encoded like other code points), whose byte order is code
 * point order, so keys sort with memcmp.
 *
 * Each value is written in canonical form as soon as it is parsed; an
 * object's members are then reordered in place.  Nesting is bounded by
 * CJ_MAX_DEPTH, so the recursion is too.  Free of PostgreSQL headers.
 */
#include "canonical_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python 3.11's int() refuses more digits than this (sys.int_info) */
#define CJ_MAX_INT_DIGITS 4300

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
} Buf;

typedef struct Parser
{
	const unsigned char *base;	/* start of the whole text, for offsets */
	const unsigned char *p;
	const unsigned char *end;
	int			depth;
	bool		failed;
	char	   *err;
	size_t		errlen;
} Parser;

typedef struct Member
{
	char	   *key;			/* generalized UTF-8, malloc'd */
	size_t		klen;
	size_t		voff;			/* canonical value text in the output buffer */
	size_t		vlen;
	size_t		index;			/* order of appearance, for "last wins" */
} Member;

typedef struct Members
{
	Member	   *m;
	size_t		n;
	size_t		cap;
} Members;

static bool parse_value(Parser *ps, Buf *out);

static void fail(Parser *ps, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
fail(Parser *ps, const char *fmt,...)
{
	va_list		ap;

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

static size_t
offset(Parser *ps)
{
	return (size_t) (ps->p - ps->base);
}

static bool
buf_reserve(Buf *b, size_t more)
{
	if (b->len + more + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 256;
		char	   *d;

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

static bool
buf_append(Buf *b, const char *s, size_t n)
{
	if (!buf_reserve(b, n))
		return false;
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return true;
}

static bool
buf_putc(Buf *b, char c)
{
	return buf_append(b, &c, 1);
}

static void
skip_ws(Parser *ps)
{
	while (ps->p < ps->end &&
		   (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
		ps->p++;
}

static bool
literal(Parser *ps, const char *word)
{
	size_t		n = strlen(word);

	if ((size_t) (ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0)
	{
		ps->p += n;
		return true;
	}
	return false;
}

/* ---- strings ---- */

/* append code point cp (any value up to 0x10FFFF, surrogates too) */
static bool
put_utf8(Buf *b, uint32_t cp)
{
	char		s[4];
	size_t		n;

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
	return buf_append(b, s, n);
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
	size_t		n;
	uint32_t	v;
	uint32_t	min;

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
	uint32_t	r = 0;

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

/* parse a string (at its opening quote) into generalized UTF-8 */
static bool
parse_string(Parser *ps, Buf *s)
{
	ps->p++;					/* the opening quote */
	for (;;)
	{
		unsigned char c;

		if (ps->p >= ps->end)
		{
			fail(ps, "unterminated string at offset %zu", offset(ps));
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
			fail(ps, "invalid control character in string at offset %zu", offset(ps));
			return false;
		}
		if (c == '\\')
		{
			char		simple = 0;

			if (ps->end - ps->p < 2)
			{
				fail(ps, "unterminated string at offset %zu", offset(ps));
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
						uint32_t	cp,
									lo;

						if (!hex4(ps->p + 2, ps->end, &cp))
						{
							fail(ps, "invalid \\uXXXX escape at offset %zu", offset(ps));
							return false;
						}
						ps->p += 6;
						/* a high surrogate joins an escaped low one that follows */
						if (cp >= 0xD800 && cp <= 0xDBFF && ps->end - ps->p >= 6 &&
							ps->p[0] == '\\' && ps->p[1] == 'u')
						{
							if (!hex4(ps->p + 2, ps->end, &lo))
							{
								fail(ps, "invalid \\uXXXX escape at offset %zu", offset(ps));
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
					fail(ps, "invalid escape at offset %zu", offset(ps));
					return false;
			}
			if (!buf_putc(s, simple))
				goto oom;
			ps->p += 2;
		}
		else if (c < 0x80)
		{
			const unsigned char *q = ps->p;

			/* a run of plain ASCII */
			while (q < ps->end && *q >= 0x20 && *q < 0x80 && *q != '"' && *q != '\\')
				q++;
			if (!buf_append(s, (const char *) ps->p, q - ps->p))
				goto oom;
			ps->p = q;
		}
		else
		{
			uint32_t	cp;
			size_t		n = get_utf8(ps->p, ps->end, &cp);

			if (n == 0)
			{
				fail(ps, "invalid UTF-8 at offset %zu", offset(ps));
				return false;
			}
			if (!buf_append(s, (const char *) ps->p, n))
				goto oom;
			ps->p += n;
		}
	}
oom:
	fail(ps, "out of memory");
	return false;
}

/* write generalized UTF-8 s as a JSON string the way ensure_ascii does */
static bool
emit_string(Buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;

	if (!buf_putc(out, '"'))
		return false;
	while (p < end)
	{
		uint32_t	cp;
		char		esc[12];
		size_t		n = 0;

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
					uint32_t	units[2];
					int			nu = 0;

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
		if (!buf_append(out, esc, n))
			return false;
	}
	return buf_putc(out, '"');
}

/* ---- numbers ---- */

/*
 * The shortest digits that read back as x (x finite, > 0): digits without
 * a point, and decpt such that x = 0.DIGITS * 10^decpt.  Correctly rounded
 * digits of increasing precision are tried; when the rounded candidate
 * misses (only possible just below a power of two, where the interval of
 * values that round to x is narrower below x), the next decimal up is
 * tried too.  This is what Python's repr (David Gay's mode 0) produces.
 */
static void
shortest_digits(double x, char *digits, int *ndigits, int *decpt)
{
	char		tmp[48];

	for (int prec = 1; prec <= 17; prec++)
	{
		char		d[24];
		int			nd = 0;
		int			exp10;
		char	   *e;

		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, x);
		for (char *q = tmp; *q && *q != 'e'; q++)
			if (*q >= '0' && *q <= '9')
				d[nd++] = *q;
		e = strchr(tmp, 'e');
		exp10 = atoi(e + 1);
		d[nd] = '\0';
		if (strtod(tmp, NULL) != x && prec < 17)
		{
			/* the next decimal of the same length, upwards */
			int			i = nd - 1;

			while (i >= 0 && d[i] == '9')
				d[i--] = '0';
			if (i < 0)
			{
				d[0] = '1';
				exp10++;
			}
			else
				d[i]++;
			snprintf(tmp, sizeof(tmp), "%c.%se%d", d[0], nd > 1 ? d + 1 : "0", exp10);
			if (strtod(tmp, NULL) != x)
				continue;
		}
		while (nd > 1 && d[nd - 1] == '0')
			nd--;
		memcpy(digits, d, nd);
		digits[nd] = '\0';
		*ndigits = nd;
		*decpt = exp10 + 1;
		return;
	}
	/* not reached: 17 significant digits always round-trip */
	snprintf(tmp, sizeof(tmp), "%.16e", x);
	digits[0] = tmp[0];
	memcpy(digits + 1, tmp + 2, 16);
	digits[17] = '\0';
	*ndigits = 17;
	*decpt = atoi(strchr(tmp, 'e') + 1) + 1;
}

void
cj_format_double(double d, char *buf)
{
	char		digits[24];
	int			nd,
				decpt;
	char	   *o = buf;

	if (isnan(d))
	{
		strcpy(buf, "NaN");
		return;
	}
	if (isinf(d))
	{
		strcpy(buf, d > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (signbit(d))
		*o++ = '-';
	if (d == 0)
	{
		strcpy(o, "0.0");
		return;
	}
	shortest_digits(fabs(d), digits, &nd, &decpt);
	if (decpt <= -4 || decpt > 16)
	{
		int			e = decpt - 1;

		*o++ = digits[0];
		if (nd > 1)
		{
			*o++ = '.';
			memcpy(o, digits + 1, nd - 1);
			o += nd - 1;
		}
		sprintf(o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
	}
	else if (decpt <= 0)
	{
		*o++ = '0';
		*o++ = '.';
		for (int i = 0; i < -decpt; i++)
			*o++ = '0';
		memcpy(o, digits, nd);
		o[nd] = '\0';
	}
	else if (decpt < nd)
	{
		memcpy(o, digits, decpt);
		o += decpt;
		*o++ = '.';
		memcpy(o, digits + decpt, nd - decpt);
		o[nd - decpt] = '\0';
	}
	else
	{
		memcpy(o, digits, nd);
		o += nd;
		for (int i = nd; i < decpt; i++)
			*o++ = '0';
		strcpy(o, ".0");
	}
}

static bool
is_digit(const unsigned char *p, const unsigned char *end)
{
	return p < end && *p >= '0' && *p <= '9';
}

/* a number as Python's scanner reads it: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)? */
static bool
parse_number(Parser *ps, Buf *out)
{
	const unsigned char *s = ps->p;
	const unsigned char *q = s;
	const unsigned char *int_start;
	bool		is_float = false;

	if (*q == '-')
		q++;
	int_start = q;
	if (is_digit(q, ps->end) && *q != '0')
	{
		while (is_digit(q, ps->end))
			q++;
	}
	else if (q < ps->end && *q == '0')
		q++;
	else
	{
		fail(ps, "invalid value at offset %zu", offset(ps));
		return false;
	}
	if (q < ps->end && *q == '.' && is_digit(q + 1, ps->end))
	{
		q++;
		while (is_digit(q, ps->end))
			q++;
		is_float = true;
	}
	if (q < ps->end && (*q == 'e' || *q == 'E'))
	{
		const unsigned char *r = q + 1;

		if (r < ps->end && (*r == '+' || *r == '-'))
			r++;
		if (is_digit(r, ps->end))
		{
			while (is_digit(r, ps->end))
				r++;
			q = r;
			is_float = true;
		}
	}
	ps->p = q;

	if (!is_float)
	{
		size_t		ndig = q - int_start;

		if (ndig > CJ_MAX_INT_DIGITS)
		{
			fail(ps, "integer with more than %d digits at offset %zu", CJ_MAX_INT_DIGITS,
				 (size_t) (s - ps->base));
			return false;
		}
		/* -0 is the int 0 */
		if (ndig == 1 && *int_start == '0')
			return buf_putc(out, '0');
		return buf_append(out, (const char *) s, q - s);
	}
	else
	{
		char		small[64];
		char	   *text = small;
		size_t		n = q - s;
		char		repr[40];
		bool		ok;

		if (n >= sizeof(small))
		{
			text = malloc(n + 1);
			if (text == NULL)
				return false;
		}
		memcpy(text, s, n);
		text[n] = '\0';
		/* strtod: correctly rounded; overflow gives inf, like float() */
		cj_format_double(strtod(text, NULL), repr);
		if (text != small)
			free(text);
		ok = buf_append(out, repr, strlen(repr));
		return ok;
	}
}

/* ---- containers ---- */

static int
member_cmp(const void *a, const void *b)
{
	const Member *x = a;
	const Member *y = b;
	size_t		n = x->klen < y->klen ? x->klen : y->klen;
	int			c = memcmp(x->key, y->key, n);

	if (c != 0)
		return c;
	if (x->klen != y->klen)
		return x->klen < y->klen ? -1 : 1;
	return x->index < y->index ? -1 : (x->index > y->index ? 1 : 0);
}

static void
members_free(Members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		free(ms->m[i].key);
	free(ms->m);
	ms->m = NULL;
	ms->n = ms->cap = 0;
}

/*
 * Parse an object (at '{'): each member's value is written in canonical
 * form to out, and the members are listed in ms (unsorted).
 */
static bool
parse_members(Parser *ps, Buf *out, Members *ms)
{
	ps->p++;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == '}')
	{
		ps->p++;
		return true;
	}
	for (;;)
	{
		Buf			key = {0};
		Member	   *m;

		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != '"')
		{
			fail(ps, "expected a property name in double quotes at offset %zu", offset(ps));
			return false;
		}
		if (!parse_string(ps, &key))
		{
			free(key.data);
			return false;
		}
		if (ms->n == ms->cap)
		{
			size_t		cap = ms->cap ? ms->cap * 2 : 8;
			Member	   *nm = realloc(ms->m, cap * sizeof(Member));

			if (nm == NULL)
			{
				free(key.data);
				fail(ps, "out of memory");
				return false;
			}
			ms->m = nm;
			ms->cap = cap;
		}
		m = &ms->m[ms->n++];
		m->key = key.data ? key.data : strdup("");
		m->klen = key.len;
		m->index = ms->n - 1;
		m->voff = out->len;
		m->vlen = 0;
		if (m->key == NULL)
		{
			ms->n--;
			fail(ps, "out of memory");
			return false;
		}
		skip_ws(ps);
		if (ps->p >= ps->end || *ps->p != ':')
		{
			fail(ps, "expected ':' at offset %zu", offset(ps));
			return false;
		}
		ps->p++;
		skip_ws(ps);
		if (!parse_value(ps, out))
			return false;
		m = &ms->m[ms->n - 1];
		m->vlen = out->len - m->voff;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',')
		{
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == '}')
		{
			ps->p++;
			return true;
		}
		fail(ps, "expected ',' or '}' at offset %zu", offset(ps));
		return false;
	}
}

/* replace out[from..] (the member values) with the sorted object */
static bool
emit_sorted(Buf *out, size_t from, Members *ms)
{
	Buf			obj = {0};
	bool		first = true;
	bool		ok = true;

	if (ms->n > 1)
		qsort(ms->m, ms->n, sizeof(Member), member_cmp);
	ok = buf_putc(&obj, '{');
	for (size_t i = 0; ok && i < ms->n; i++)
	{
		Member	   *m = &ms->m[i];

		/* of equal keys only the last one (highest index) counts */
		if (i + 1 < ms->n && m->klen == ms->m[i + 1].klen &&
			memcmp(m->key, ms->m[i + 1].key, m->klen) == 0)
			continue;
		if (!first)
			ok = buf_putc(&obj, ',');
		first = false;
		ok = ok && emit_string(&obj, m->key, m->klen) && buf_putc(&obj, ':') &&
			buf_append(&obj, out->data + m->voff, m->vlen);
	}
	ok = ok && buf_putc(&obj, '}');
	if (ok)
	{
		out->len = from;
		ok = buf_append(out, obj.data, obj.len);
	}
	free(obj.data);
	return ok;
}

static bool
parse_value(Parser *ps, Buf *out)
{
	skip_ws(ps);
	if (ps->p >= ps->end)
	{
		fail(ps, "unexpected end of JSON text");
		return false;
	}
	switch (*ps->p)
	{
		case '{':
			{
				Members		ms = {0};
				size_t		from = out->len;
				bool		ok;

				if (++ps->depth > CJ_MAX_DEPTH)
				{
					fail(ps, "JSON nested deeper than %d levels", CJ_MAX_DEPTH);
					return false;
				}
				ok = parse_members(ps, out, &ms);
				if (ok && !emit_sorted(out, from, &ms))
				{
					fail(ps, "out of memory");
					ok = false;
				}
				members_free(&ms);
				ps->depth--;
				return ok;
			}
		case '[':
			{
				if (++ps->depth > CJ_MAX_DEPTH)
				{
					fail(ps, "JSON nested deeper than %d levels", CJ_MAX_DEPTH);
					return false;
				}
				ps->p++;
				if (!buf_putc(out, '['))
					goto oom;
				skip_ws(ps);
				if (ps->p < ps->end && *ps->p == ']')
					ps->p++;
				else
				{
					for (;;)
					{
						if (!parse_value(ps, out))
							return false;
						skip_ws(ps);
						if (ps->p < ps->end && *ps->p == ',')
						{
							ps->p++;
							if (!buf_putc(out, ','))
								goto oom;
							continue;
						}
						if (ps->p < ps->end && *ps->p == ']')
						{
							ps->p++;
							break;
						}
						fail(ps, "expected ',' or ']'");
						return false;
					}
				}
				ps->depth--;
				if (!buf_putc(out, ']'))
					goto oom;
				return true;
			}
		case '"':
			{
				Buf			s = {0};
				bool		ok = parse_string(ps, &s) &&
					emit_string(out, s.data ? s.data : "", s.len);

				free(s.data);
				if (!ok)
					fail(ps, "out of memory");
				return ok;
			}
		case 'n':
			if (literal(ps, "null"))
				return buf_append(out, "null", 4) || (fail(ps, "out of memory"), false);
			break;
		case 't':
			if (literal(ps, "true"))
				return buf_append(out, "true", 4) || (fail(ps, "out of memory"), false);
			break;
		case 'f':
			if (literal(ps, "false"))
				return buf_append(out, "false", 5) || (fail(ps, "out of memory"), false);
			break;
		case 'N':
			if (literal(ps, "NaN"))
				return buf_append(out, "NaN", 3) || (fail(ps, "out of memory"), false);
			break;
		case 'I':
			if (literal(ps, "Infinity"))
				return buf_append(out, "Infinity", 8) || (fail(ps, "out of memory"), false);
			break;
		case '-':
			if (literal(ps, "-Infinity"))
				return buf_append(out, "-Infinity", 9) || (fail(ps, "out of memory"), false);
			/* FALLTHROUGH */
		default:
			if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9'))
			{
				if (!parse_number(ps, out))
				{
					fail(ps, "out of memory");
					return false;
				}
				return true;
			}
			break;
	}
	fail(ps, "invalid JSON value");
	return false;
oom:
	fail(ps, "out of memory");
	return false;
}

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", msg);
}

char *
cj_canonicalize(const char *text, size_t len, size_t *out_len, char *err, size_t errlen)
{
	Parser		ps = {0};
	Buf			out = {0};

	ps.base = ps.p = (const unsigned char *) text;
	ps.end = ps.p + len;
	ps.err = err;
	ps.errlen = errlen;
	if (!parse_value(&ps, &out))
	{
		free(out.data);
		return NULL;
	}
	skip_ws(&ps);
	if (ps.p != ps.end)
	{
		free(out.data);
		set_err(err, errlen, "extra data after the JSON value");
		return NULL;
	}
	if (out.data == NULL)
	{
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (out_len)
		*out_len = out.len;
	return out.data;
}

/*
 * The string value of a canonical JSON string (our own escaped ASCII text),
 * or NULL when it holds anything a signature field cannot: only ASCII and
 * the simple escapes are decoded.
 */
static char *
unescape_ascii(const char *s, size_t len)
{
	char	   *r;
	size_t		o = 0;

	if (len < 2 || s[0] != '"' || s[len - 1] != '"')
		return NULL;
	r = malloc(len);
	if (r == NULL)
		return NULL;
	for (size_t i = 1; i < len - 1; i++)
	{
		char		c = s[i];

		if (c == '\\')
		{
			c = s[++i];
			switch (c)
			{
				case '"':
				case '\\':
					break;
				case 'n':
					c = '\n';
					break;
				case 't':
					c = '\t';
					break;
				case 'r':
					c = '\r';
					break;
				case 'b':
					c = '\b';
					break;
				case 'f':
					c = '\f';
					break;
				default:
					/* \uxxxx: not in a signature field; refuse it */
					free(r);
					return NULL;
			}
		}
		r[o++] = c;
	}
	r[o] = '\0';
	return r;
}

bool
cj_envelope(const char *text, size_t len, char **hm_canonical, size_t *hm_len,
			char **signature, char *err, size_t errlen)
{
	Parser		ps = {0};
	Buf			out = {0};
	Members		ms = {0};
	Member	   *header = NULL;
	Member	   *message = NULL;
	Member	   *sig = NULL;
	Buf			hm = {0};
	bool		ok;

	*hm_canonical = NULL;
	if (signature)
		*signature = NULL;
	ps.base = ps.p = (const unsigned char *) text;
	ps.end = ps.p + len;
	ps.err = err;
	ps.errlen = errlen;
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p != '{')
	{
		set_err(err, errlen, "the envelope is not a JSON object");
		return false;
	}
	ps.depth = 1;
	ok = parse_members(&ps, &out, &ms);
	if (ok)
	{
		skip_ws(&ps);
		if (ps.p != ps.end)
		{
			set_err(err, errlen, "extra data after the JSON value");
			ok = false;
		}
	}
	if (ok)
	{
		/* of duplicate keys the last wins */
		for (size_t i = 0; i < ms.n; i++)
		{
			Member	   *m = &ms.m[i];

			if (m->klen == 6 && memcmp(m->key, "header", 6) == 0)
				header = m;
			else if (m->klen == 7 && memcmp(m->key, "message", 7) == 0)
				message = m;
			else if (m->klen == 9 && memcmp(m->key, "signature", 9) == 0)
				sig = m;
		}
		if (header == NULL || message == NULL)
		{
			set_err(err, errlen, header == NULL ? "the envelope has no \"header\"" :
					"the envelope has no \"message\"");
			ok = false;
		}
	}
	if (ok)
	{
		ok = buf_append(&hm, "{\"header\":", 10) &&
			buf_append(&hm, out.data + header->voff, header->vlen) &&
			buf_append(&hm, ",\"message\":", 11) &&
			buf_append(&hm, out.data + message->voff, message->vlen) &&
			buf_putc(&hm, '}');
		if (!ok)
			set_err(err, errlen, "out of memory");
	}
	if (ok && signature && sig != NULL && sig->vlen > 0 && out.data[sig->voff] == '"')
		*signature = unescape_ascii(out.data + sig->voff, sig->vlen);
	members_free(&ms);
	free(out.data);
	if (!ok)
	{
		free(hm.data);
		return false;
	}
	*hm_canonical = hm.data;
	if (hm_len)
		*hm_len = hm.len;
	return true;
}
