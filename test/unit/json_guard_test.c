/*
 * json_guard_test.c
 *		Unit tests of the guards run before PostgreSQL's JSON parser: nesting
 *		depth, and numbers numeric_in can store.
 */
#include "json_guard.h"

#include <time.h>

#include "unit.h"

static bool
deep(const char *s, int max)
{
	return json_nesting_exceeds(s, strlen(s), max);
}

static bool
fits(const char *s)
{
	return json_number_fits_numeric(s, strlen(s));
}

/* "[" * n, "1", "]" * n */
static char *
nested(size_t n, char open, char close)
{
	char *s = malloc(2 * n + 2);

	memset(s, open, n);
	s[n] = '1';
	memset(s + n + 1, close, n);
	s[2 * n + 1] = '\0';
	return s;
}

static void
test_nesting(void)
{
	char   *s;
	clock_t t0;

	CHECK(!deep("", 0), "empty text");
	CHECK(!deep("1", 0), "scalar at depth 0");
	CHECK(deep("[]", 0), "[] is depth 1");
	CHECK(!deep("[]", 1), "[] within 1");
	CHECK(deep("[[]]", 1), "depth 2 over 1");
	CHECK(!deep("[[]]", 2), "depth 2 within 2");
	CHECK(!deep("[[],[],[[]],{\"a\":1}]", 3), "siblings do not add up");
	CHECK(!deep("[[],[],{\"a\":[]}]", 3), "depth 3 in a member");
	CHECK(deep("[[],[],{\"a\":[]}]", 2), "depth 3 over 2");
	CHECK(!deep("{\"a\":{\"b\":1}}", 2), "objects");
	CHECK(deep("{\"a\":{\"b\":{}}}", 2), "objects over");
	CHECK(!deep("[\"[[[[[[\"]", 1), "brackets in strings do not count");
	CHECK(!deep("[\"{{{{\"]", 1), "braces in strings do not count");
	CHECK(!deep("[\"\\\"[[[[\"]", 1), "escaped quote does not end the string");
	CHECK(deep("[\"\\\\\",[[[]]]]", 2), "escaped backslash then end of string");
	CHECK(!deep("[\"\\\\\\\"[[[\"]", 1), "\\\\ then \\\" then brackets: still in the string");
	CHECK(!deep("[\"abc", 1), "unterminated string");
	CHECK(!deep("[\"\\", 1), "string ending in a backslash");
	CHECK(!deep("]]]]]][", 1), "stray closers do not go below zero");
	CHECK(deep("]]]]]][[", 1), "and do not give credit");
	CHECK(deep("[", -1), "negative max: any bracket");
	CHECK(!deep("1", -1), "negative max: no bracket");
	CHECK(!json_nesting_exceeds("[[[", 2, 2), "len is honoured");
	CHECK(json_nesting_exceeds("[\0[[", 4, 2), "NUL bytes do not stop the scan");

	s = nested(1000, '[', ']');
	CHECK(!deep(s, 1000), "1000 within 1000");
	CHECK(deep(s, 999), "1000 over 999");
	free(s);
	s = nested(1000, '{', '}');
	CHECK(deep(s, 999), "braces count too");
	free(s);

	/* 8 MB of brackets: linear, no recursion */
	t0 = clock();
	s = nested((size_t) 8 << 20, '[', ']');
	CHECK(deep(s, 10000), "8 M deep");
	CHECK(!deep(s, (int) (8 << 20)), "8 M within 8 M");
	free(s);
	CHECK((clock() - t0) < 2 * CLOCKS_PER_SEC, "8 MB in under 2 s");
}

/* "1" then n zeros (before an optional suffix), or "0." n zeros "1" */
static char *
digits(const char *prefix, size_t n, char fill, const char *suffix)
{
	size_t pl = strlen(prefix),
		   sl = strlen(suffix);
	char *s = malloc(pl + n + sl + 1);

	memcpy(s, prefix, pl);
	memset(s + pl, fill, n);
	memcpy(s + pl + n, suffix, sl + 1);
	return s;
}

static void
test_numbers(void)
{
	char *s;

	/* grammar */
	CHECK(fits("0"), "0");
	CHECK(fits("-0"), "-0");
	CHECK(fits("1"), "1");
	CHECK(fits("-12.5e3"), "-12.5e3");
	CHECK(fits("1E+2"), "1E+2");
	CHECK(fits("1e-2"), "1e-2");
	CHECK(fits("0.000"), "0.000");
	CHECK(fits("123456789012345678901234567890"), "long integer");
	CHECK(!fits(""), "empty");
	CHECK(!json_number_fits_numeric(NULL, 0), "NULL");
	CHECK(!fits("-"), "-");
	CHECK(!fits("+1"), "+1");
	CHECK(!fits("01"), "leading zero");
	CHECK(!fits("-01"), "-01");
	CHECK(!fits("1."), "1.");
	CHECK(!fits(".5"), ".5");
	CHECK(!fits("1e"), "1e");
	CHECK(!fits("1e+"), "1e+");
	CHECK(!fits("1.e5"), "1.e5");
	CHECK(!fits("1 "), "trailing space");
	CHECK(!fits(" 1"), "leading space");
	CHECK(!fits("1x"), "trailing junk");
	CHECK(!fits("NaN"), "NaN");
	CHECK(!fits("Infinity"), "Infinity");
	CHECK(!fits("0x10"), "hex");
	CHECK(!fits("1_000"), "underscore");
	CHECK(!fits("--1"), "--1");
	CHECK(!fits("1e5e5"), "two exponents");
	CHECK(!fits("1.2.3"), "two points");
	CHECK(json_number_fits_numeric("12x", 2), "len is honoured");
	CHECK(!json_number_fits_numeric("1\0", 2), "NUL inside the token");

	/* weight */
	CHECK(fits("1e131000"), "weight 131000");
	CHECK(!fits("1e131001"), "weight 131001");
	CHECK(fits("9.99e131000"), "weight 131000 with fraction");
	CHECK(fits("1000e130997"), "trailing zeros count in the weight");
	CHECK(!fits("1000e130998"), "weight 131001 by trailing zeros");
	CHECK(!fits("1e200000"), "1e200000");
	CHECK(!fits("-1e200000"), "-1e200000");
	CHECK(fits("1e-16000"), "weight -16000");
	CHECK(!fits("1e-16001"), "weight -16001");
	CHECK(fits("0.001e-15997"), "weight -16000 from leading fraction zeros");
	CHECK(!fits("0.001e-15998"), "weight -16001 from leading fraction zeros");
	CHECK(!fits("1e999999999999999999"), "huge exponent");
	CHECK(!fits("1e-999999999999999999"), "huge negative exponent");
	CHECK(!fits("1e99999999999999999999999999999999999999999"), "exponent beyond int64");
	CHECK(fits("1e000000000000000000000000000005"), "leading zeros of the exponent");
	s = digits("1", 131000, '0', "");
	CHECK(fits(s), "1 and 131000 zeros");
	free(s);
	s = digits("1", 131001, '0', "");
	CHECK(!fits(s), "1 and 131001 zeros");
	free(s);
	s = digits("1", 131001, '0', "e-1");
	CHECK(fits(s), "1 and 131001 zeros, e-1");
	free(s);
	s = digits("0.", 15999, '0', "1");
	CHECK(fits(s), "weight -16000 written out");
	free(s);
	s = digits("0.", 16000, '0', "1");
	CHECK(!fits(s), "weight -16001 written out");
	free(s);

	/* scale */
	s = digits("1.", 16383, '5', "");
	CHECK(fits(s), "scale 16383");
	free(s);
	s = digits("1.", 16384, '5', "");
	CHECK(!fits(s), "scale 16384");
	free(s);
	s = digits("1.", 16384, '0', "");
	CHECK(!fits(s), "scale 16384 of zeros (numeric keeps it)");
	free(s);
	s = digits("1.", 16384, '5', "e1");
	CHECK(fits(s), "scale 16384 - 1");
	free(s);
	s = digits("1.", 20000, '5', "e20000");
	CHECK(fits(s), "an exponent removes the scale");
	free(s);
	CHECK(fits("1e-16000"), "scale 16000");
	CHECK(fits("1.5e-15999"), "scale 16000 with fraction");
	CHECK(fits("12e-16001"), "scale 16001, weight -16000");
	CHECK(fits("1.2e-16000"), "scale 16001, weight -16000");
	CHECK(!fits("1e-16383"), "scale 16383 but weight -16383: refused, conservative");
}

static void
test_zero(void)
{
	char *s;

	CHECK(fits("0e999999999"), "zero, big exponent");
	CHECK(fits("0e131001"), "zero has no weight");
	CHECK(fits("-0.0e5"), "zero, exponent beyond its scale");
	CHECK(fits("0e-16383"), "zero, scale 16383");
	CHECK(!fits("0e-16384"), "zero, scale 16384");
	CHECK(fits("0.0e-16382"), "zero, scale 1 + 16382");
	CHECK(!fits("0.0e-16383"), "zero, scale 1 + 16383");
	CHECK(!fits("0e1000000000"), "zero, exponent numeric_in refuses");
	CHECK(!fits("0e-1000000000"), "zero, negative exponent numeric_in refuses");
	CHECK(!fits("0e999999999999999999"), "zero, huge exponent");
	s = digits("0.", 100000, '0', "e100000");
	CHECK(fits(s), "long zero fraction, exponent cancels it");
	free(s);
}

int
main(int argc, char **argv)
{
	(void) argc;
	(void) argv;
	test_nesting();
	test_numbers();
	test_zero();
	return unit_finish("json_guard");
}
