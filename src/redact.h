/*
 * redact.h
 *		Find and replace our own credentials in text a registry hands back,
 *		whatever mix of URL and JSON encodings it echoes them in.
 *
 * Free of PostgreSQL headers so unit tests and fuzzers link it alone.
 * Allocation is malloc-based and never aborts; callers report -1.
 */
#ifndef DCI_REDACT_H
#define DCI_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define REDACT_MIN_LEN 4 /* shorter needles are ignored */
#define REDACT_MARK	   "[redacted]"
/* needle bytes tried between two calls of redact_text's stop() */
#define REDACT_STOP_EVERY ((size_t) 1 << 20)

typedef struct RedactNeedle
{
	const char *s;
	size_t		len;
} RedactNeedle;

/*
 * Bytes of text, from text[0], that spell needle in any mix of encodings, or 0: each needle
 * byte may appear raw, as %XX (hex any case), '+' for a space, or JSON-escaped: \uXXXX
 * (hex any case; a needle's multi-byte UTF-8 character matches one \uXXXX or a surrogate pair
 * \uD83D\uDE00 for its code point, or each of its bytes as %XX), \" \\ \/ \b \f \n \r \t.
 * When several spellings match (a needle holding '%' or '\\'), the longest.  0 also for an
 * empty needle, and when a needle of over 2048 bytes holding '%' or '\\' finds no memory.
 */
extern size_t redact_match(const char *needle, size_t nlen, const char *text, size_t tlen);

/*
 * Every occurrence of any needle (leftmost first; at one position the longest match) replaced
 * by REDACT_MARK.  Returns 0 with *out = NULL when nothing matched (the common case: no copy),
 * 1 with *out malloc'd (NUL-terminated; *outlen bytes), -1 when out of memory, -2 when stop
 * (if not NULL) returned true: it is asked every REDACT_STOP_EVERY needle bytes tried.  text may hold
 * NUL bytes.  Needles with len < REDACT_MIN_LEN or s == NULL are skipped.  *outlen is 0
 * unless 1 is returned.
 */
extern int redact_text(const RedactNeedle *needles, int nneedles, const char *text, size_t len,
					   char **out, size_t *outlen, bool (*stop)(void));

#endif /* DCI_REDACT_H */
