/*
 * canonical_parser.h
 *		Internals shared by the canonicaliser's files (canonical_json.c:
 *		values and containers; canonical_strings.c; canonical_numbers.c).
 *		Not part of its interface (canonical_json.h).  Free of PostgreSQL
 *		headers.
 */
#ifndef DCI_CANONICAL_PARSER_H
#define DCI_CANONICAL_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Python 3.11's int() refuses more digits than this (sys.int_info) */
#define CJ_MAX_INT_DIGITS 4300

typedef struct Buf
{
	char  *data;
	size_t len;
	size_t cap;
} Buf;

typedef struct Parser
{
	const unsigned char *base; /* start of the whole text, for offsets */
	const unsigned char *p;
	const unsigned char *end;
	int					 depth;
	bool				 failed;
	char				*err;
	size_t				 errlen;
} Parser;

/* record the first failure (printf format) */
extern void cj_fail(Parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* byte offset of the parser in the text, for messages */
extern size_t cj_offset(Parser *ps);
/* append to an output buffer (NUL kept after the text); false when out of memory */
extern bool cj_buf_append(Buf *b, const char *s, size_t n);
extern bool cj_buf_putc(Buf *b, char c);

/* a string at ps->p (its opening quote) into s as generalized UTF-8 (canonical_strings.c) */
extern bool cj_parse_string(Parser *ps, Buf *s);
/* a generalized UTF-8 string as canonical JSON (ensure_ascii escapes) */
extern bool cj_emit_string(Buf *out, const char *s, size_t len);
/* a number at ps->p in canonical form: ints exactly, floats as repr() (canonical_numbers.c) */
extern bool cj_parse_number(Parser *ps, Buf *out);

#endif /* DCI_CANONICAL_PARSER_H */
