/*
 * json_guard_fuzz.c
 *		libFuzzer target for the JSON guards: no crash or overread; nesting
 *		limits are monotonic; a number accepted is a JSON number, and a
 *		short plain one is always accepted.
 */
#include "json_guard.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* longer inputs (the fixtures) are cut: more runs find more */
#define MAX_INPUT 8192

static bool
digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * The JSON number grammar, checked apart from json_guard.c; also counts
 * the mantissa digits and exponent digits (-1 without an exponent).
 */
static bool
is_json_number(const char *s, size_t n, size_t *mant, long *expdigits)
{
	size_t i = 0;
	size_t start;

	*mant = 0;
	*expdigits = -1;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || !digit(s[i]) || (s[i] == '0' && i + 1 < n && digit(s[i + 1])))
		return false;
	start = i;
	while (i < n && digit(s[i]))
		i++;
	*mant = i - start;
	if (i < n && s[i] == '.')
	{
		start = ++i;
		while (i < n && digit(s[i]))
			i++;
		if (i == start)
			return false;
		*mant += i - start;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E'))
	{
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		start = i;
		while (i < n && digit(s[i]))
			i++;
		if (i == start)
			return false;
		*expdigits = (long) (i - start);
	}
	return i == n;
}

static void
check_number(const char *s, size_t n)
{
	size_t mant;
	long   expdigits;
	bool   fits = json_number_fits_numeric(s, n);
	bool   valid = is_json_number(s, n, &mant, &expdigits);

	if (fits && !valid)
		abort();
	/* weight and scale both stay under 1100 */
	if (valid && mant <= 100 && expdigits <= 3 && !fits)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*s = (const char *) data;
	static const int depths[] = {-1, 0, 1, 2, 3, 8, 64, 1000};
	bool			 prev = true;

	if (size > MAX_INPUT)
		size = MAX_INPUT;
	for (size_t k = 0; k < sizeof(depths) / sizeof(depths[0]); k++)
	{
		bool over = json_nesting_exceeds(s, size, depths[k]);

		/* deeper limits never exceed where shallower ones did not */
		if (over && !prev)
			abort();
		prev = over;
	}
	if (json_nesting_exceeds(s, size, (int) size))
		abort();

	check_number(s, size);
	/* every run of number characters, as a token */
	for (size_t i = 0; i < size;)
	{
		size_t j = i;

		while (j < size && (digit(s[j]) || strchr("-+.eE", s[j]) != NULL) && s[j] != '\0')
			j++;
		if (j > i)
			check_number(s + i, j - i);
		i = j + 1;
	}
	return 0;
}
