/*
 * base64.h
 *		Base64 (RFC 4648 §4) and base64url without padding (§5), with
 *		OpenSSL's encoder and decoder, for the whole extension.  Free of
 *		PostgreSQL headers; results are malloc'd (free()).
 */
#ifndef DCI_BASE64_H
#define DCI_BASE64_H

#include <stdbool.h>
#include <stddef.h>

/* the text of len bytes: standard alphabet with padding, or url: URL alphabet without */
extern char *dci_b64_encode(const unsigned char *data, size_t len, bool url);

/*
 * Strict decoding of exactly len characters: the alphabet asked for (url:
 * no padding, unused trailing bits zero, so that each value has one
 * encoding; standard: padding to a multiple of 4), no whitespace.  The bytes have
 * a NUL after them (not counted in *out_len); NULL when invalid.
 */
extern unsigned char *dci_b64_decode(const char *s, size_t len, bool url, size_t *out_len);

#endif /* DCI_BASE64_H */
