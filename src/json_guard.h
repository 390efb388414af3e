/*
 * json_guard.h
 *		Checks run on untrusted JSON text before PostgreSQL's JSON parser
 *		sees it, so that hostile input gets our own clear error instead of
 *		"stack depth limit exceeded" (deep nesting) or "value overflows
 *		numeric format" (huge numbers).
 *
 * Free of PostgreSQL headers so unit tests and fuzzers link it alone.
 */
#ifndef DCI_JSON_GUARD_H
#define DCI_JSON_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/*
 * true when arrays/objects nest deeper than max_depth ("[]" is depth 1;
 * brackets inside strings, with escapes, do not count); linear, no
 * recursion.  The text need not be valid JSON.
 */
extern bool json_nesting_exceeds(const char *text, size_t len, int max_depth);

/*
 * true when the JSON number token (-?int frac? exp?, nothing else) can be
 * stored as a PostgreSQL numeric: decimal weight of the first significant
 * digit (after the exponent) in [-16000, 131000], display scale (digits
 * after the point, after the exponent) at most 16383.  Exponents of any
 * length are handled without overflow; |exponent| >= 1e9 is refused even
 * for zero (numeric_in refuses it from INT_MAX/2 on).  false for anything
 * that is not a JSON number.
 */
extern bool json_number_fits_numeric(const char *token, size_t len);

#endif /* DCI_JSON_GUARD_H */
