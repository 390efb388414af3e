/*
 * errors.h
 *		Errors carried out of code that must not raise (libcurl callbacks,
 *		dci_test_connection steps) and raised later; text cut safely (errors.c).
 */
#ifndef DCI_ERRORS_H
#define DCI_ERRORS_H

#include "postgres.h"

/* Registry text quoted in an error is cut to this many characters. */
#define DCI_QUOTE_MAX 300

typedef struct DciError
{
	int	 sqlstate; /* 0: no error */
	char message[256];
	char detail[768];
	char hint[256];
} DciError;

/* record an error (first one wins); message/detail/hint are printf formats */
extern void dci_error_set(DciError *err, int sqlstate, const char *fmt, ...) pg_attribute_printf(3, 4);
extern void dci_error_detail(DciError *err, const char *fmt, ...) pg_attribute_printf(2, 3);
extern void dci_error_hint(DciError *err, const char *fmt, ...) pg_attribute_printf(2, 3);
/* raise a recorded error as an ereport(ERROR) */
extern void dci_error_raise(const DciError *err) pg_attribute_noreturn();
/* the error as one line "message: detail", for test_connection and last_error */
extern char *dci_error_text(const DciError *err);
/* strlcpy that never cuts a character of the server encoding in half */
extern void dci_clip_copy(char *dst, const char *src, size_t size);
/* copy at most DCI_QUOTE_MAX characters of untrusted text, control chars blanked */
extern char *dci_quote_text(const char *text, size_t len);

#endif /* DCI_ERRORS_H */
