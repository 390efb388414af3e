/*
 * token_response.h
 *		Parsing of OAuth2 token endpoint answers (RFC 6749 §5.1/§5.2 and the
 *		DCI {"errors":[{code,message}]} form).  Free of PostgreSQL headers.
 */
#ifndef DCI_TOKEN_RESPONSE_H
#define DCI_TOKEN_RESPONSE_H

#include <stdbool.h>
#include <stddef.h>

#define TOKEN_DEFAULT_EXPIRES_IN 3600

typedef struct TokenResponse
{
	char  *access_token; /* NULL when absent or not a non-empty string */
	char  *token_type;
	double expires_in; /* seconds; TOKEN_DEFAULT_EXPIRES_IN when absent */
	bool   expires_in_given;
	char  *error;			  /* RFC 6749 "error", or DCI errors[0].code */
	char  *error_description; /* "error_description" or errors[0].message */
} TokenResponse;

/*
 * Parse body (len bytes, need not be NUL-terminated).  Returns false when it
 * is not a JSON object; fields that are missing stay NULL.  Strings are
 * malloc'd: release with token_response_free (which wipes the token).
 */
extern bool token_response_parse(const char *body, size_t len, TokenResponse *out);
extern void token_response_free(TokenResponse *tr);

#endif /* DCI_TOKEN_RESPONSE_H */
