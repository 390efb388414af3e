/*
 * json_guard.c
 *		Nesting depth and numeric range checks on untrusted JSON text.
 *
 * Both are single forward scans without recursion or allocation, so they
 * are safe on any input size (answers reach 16 MB).
 */
#include "json_guard.h"

#include <stdint.h>

/* PostgreSQL's limits (numeric.c), with a margin on the weight */
#define WEIGHT_MAX	 131000	   /* NUMERIC_WEIGHT_MAX 32767 base-10000 digits */
#define WEIGHT_MIN	 (-16000)  /* any lower also breaks the scale limit */
#define DSCALE_MAX	 16383	   /* NUMERIC_DSCALE_MAX */
#define EXPONENT_MAX 999999999 /* numeric_in refuses INT_MAX/2 and above */
/* longer tokens cannot reach numeric_in (1 GB varlena limit) */
#define TOKEN_MAX ((size_t) 1 << 30)

bool
json_nesting_exceeds(const char *text, size_t len, int max_depth)
{
	long depth = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++)
	{
		char c = text[i];

		if (in_string)
		{
			/* skip the escaped byte: "\"" and "\\" do not end the string */
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > max_depth)
				return true;
		}
		else if ((c == ']' || c == '}') && depth > 0)
			depth--;
	}
	return false;
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

bool
json_number_fits_numeric(const char *token, size_t len)
{
	size_t i = 0;
	size_t int_start,
		int_digits,
		frac_digits = 0;
	size_t	first_sig = SIZE_MAX; /* index in the digit string */
	int64_t exponent = 0;
	int64_t weight,
		dscale;

	if (token == NULL || len == 0 || len > TOKEN_MAX)
		return false;
	if (token[i] == '-')
		i++;

	/* int: "0" or a non-zero digit followed by digits */
	int_start = i;
	if (i >= len || !is_digit(token[i]))
		return false;
	if (token[i] == '0')
		i++;
	else
		while (i < len && is_digit(token[i]))
		{
			if (first_sig == SIZE_MAX && token[i] != '0')
				first_sig = i - int_start;
			i++;
		}
	int_digits = i - int_start;

	/* frac */
	if (i < len && token[i] == '.')
	{
		i++;
		if (i >= len || !is_digit(token[i]))
			return false;
		while (i < len && is_digit(token[i]))
		{
			if (first_sig == SIZE_MAX && token[i] != '0')
				first_sig = int_digits + frac_digits;
			frac_digits++;
			i++;
		}
	}

	/* exp: saturate instead of overflowing; leading zeros are harmless */
	if (i < len && (token[i] == 'e' || token[i] == 'E'))
	{
		bool neg = false;

		i++;
		if (i < len && (token[i] == '+' || token[i] == '-'))
			neg = token[i++] == '-';
		if (i >= len || !is_digit(token[i]))
			return false;
		while (i < len && is_digit(token[i]))
		{
			if (exponent <= EXPONENT_MAX)
				exponent = exponent * 10 + (token[i] - '0');
			i++;
		}
		if (exponent > EXPONENT_MAX)
			return false;
		if (neg)
			exponent = -exponent;
	}
	if (i != len)
		return false;

	/* all within int64: digits < 2^30, |exponent| < 1e9 */
	dscale = (int64_t) frac_digits - exponent;
	if (dscale < 0)
		dscale = 0;
	if (dscale > DSCALE_MAX)
		return false;
	if (first_sig == SIZE_MAX)
		return true; /* zero: numeric_in keeps no weight */
	weight = (int64_t) int_digits - 1 - (int64_t) first_sig + exponent;
	return weight <= WEIGHT_MAX && weight >= WEIGHT_MIN;
}
