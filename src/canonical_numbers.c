/*
 * canonical_numbers.c
 *		Numbers of the canonical JSON (canonical_json.c): an int is printed
 *		as its exact digits, any other number as Python's repr(float(text))
 *		(shortest round-trip digits).  Free of PostgreSQL headers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "canonical_json.h"
#include "canonical_parser.h"

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
	char tmp[48];

	for (int prec = 1; prec <= 17; prec++)
	{
		char  d[24];
		int	  nd = 0;
		int	  exp10;
		char *e;

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
			int i = nd - 1;

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
	char digits[24];
	int	 nd,
		decpt;
	char *o = buf;

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
		int e = decpt - 1;

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
bool
cj_parse_number(Parser *ps, Buf *out)
{
	const unsigned char *s = ps->p;
	const unsigned char *q = s;
	const unsigned char *int_start;
	bool				 is_float = false;

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
		cj_fail(ps, "invalid value at offset %zu", cj_offset(ps));
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
		size_t ndig = q - int_start;

		if (ndig > CJ_MAX_INT_DIGITS)
		{
			cj_fail(ps, "integer with more than %d digits at offset %zu", CJ_MAX_INT_DIGITS,
					(size_t) (s - ps->base));
			return false;
		}
		/* -0 is the int 0 */
		if (ndig == 1 && *int_start == '0')
			return cj_buf_putc(out, '0');
		return cj_buf_append(out, (const char *) s, q - s);
	}
	else
	{
		char   small[64];
		char  *text = small;
		size_t n = q - s;
		char   repr[40];
		bool   ok;

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
		ok = cj_buf_append(out, repr, strlen(repr));
		return ok;
	}
}
