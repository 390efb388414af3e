/*
 * canonical_json.h
 *		Canonical JSON as the DCI signature scheme defines it: exactly what
 *		Python prints for json.dumps(json.loads(text), sort_keys=True,
 *		separators=(",", ":")).  Free of PostgreSQL headers.
 */
#ifndef DCI_CANONICAL_JSON_H
#define DCI_CANONICAL_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* deeper nesting than this is refused (Python would recurse; we do not) */
#define CJ_MAX_DEPTH 128

/*
 * Canonical form of the JSON text (len bytes, UTF-8, need not be
 * NUL-terminated).  Returns a malloc'd NUL-terminated string (its length in
 * *out_len when not NULL), or NULL with a message in err (errlen bytes)
 * when the text is not JSON that Python's json module would accept.
 */
extern char *cj_canonicalize(const char *text, size_t len, size_t *out_len,
							 char *err, size_t errlen);

/*
 * For an envelope {signature, header, message, ...}: the canonical form of
 * {"header": header, "message": message} (malloc'd, the text that is
 * hashed), and the envelope's "signature" when it is a string (malloc'd,
 * else NULL).  Returns false with err set when the text is not a JSON
 * object with both "header" and "message".  Duplicate keys: the last wins.
 */
extern bool cj_envelope(const char *text, size_t len, char **hm_canonical,
						size_t *hm_len, char **signature, char *err, size_t errlen);

/*
 * Python's repr() of a double as json.dumps prints it ("1e-07", "100.0",
 * "Infinity", "NaN"); buf needs 32 bytes.
 */
extern void cj_format_double(double d, char *buf);

#endif /* DCI_CANONICAL_JSON_H */
