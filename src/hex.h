/*
 * hex.h
 *		The value of a hexadecimal digit: one helper for the percent escapes
 *		(path_check.c, redact.c) and the key file (secrets.c).  Free of
 *		PostgreSQL headers.
 */
#ifndef DCI_HEX_H
#define DCI_HEX_H

/* 0..15, or -1 when c is not a hex digit (either case) */
static inline int
dci_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif /* DCI_HEX_H */
