/*
 * token_response.c
 *		OAuth2 token answers, parsed with json-c.
 */
#include "token_response.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* token answers are small; deeper nesting is hostile */
#define TOKEN_JSON_MAX_DEPTH 16

static char *
dup_string_member(struct json_object *obj, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return strdup(json_object_get_string(v));
}

/* expires_in as a number or a numeric string; false when unusable */
static bool
parse_expires_in(struct json_object *v, double *out)
{
	double d;

	if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
		d = json_object_get_double(v);
	else if (json_object_is_type(v, json_type_string))
	{
		const char *s = json_object_get_string(v);
		char	   *end;

		errno = 0;
		d = strtod(s, &end);
		if (end == s || *end != '\0' || errno != 0)
			return false;
	}
	else
		return false;
	if (!isfinite(d) || d < 0)
		return false;
	*out = d > 1e9 ? 1e9 : d;
	return true;
}

bool
token_response_parse(const char *body, size_t len, TokenResponse *out)
{
	struct json_tokener *tok;
	struct json_object	*root;
	struct json_object	*v;
	bool				 ok = false;

	memset(out, 0, sizeof(*out));
	out->expires_in = TOKEN_DEFAULT_EXPIRES_IN;
	if (len > (size_t) 0x7fffffff)
		return false;

	tok = json_tokener_new_ex(TOKEN_JSON_MAX_DEPTH);
	if (tok == NULL)
		return false;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, body, (int) len);
	/* trailing bytes other than whitespace make it not JSON */
	if (root != NULL && json_tokener_get_error(tok) == json_tokener_success)
	{
		size_t used = json_tokener_get_parse_end(tok);

		while (used < len && (body[used] == ' ' || body[used] == '\n' ||
							  body[used] == '\r' || body[used] == '\t'))
			used++;
		ok = (used == len) && json_object_is_type(root, json_type_object);
	}
	json_tokener_free(tok);

	if (ok)
	{
		out->access_token = dup_string_member(root, "access_token");
		if (out->access_token && out->access_token[0] == '\0')
		{
			free(out->access_token);
			out->access_token = NULL;
		}
		out->token_type = dup_string_member(root, "token_type");
		if (json_object_object_get_ex(root, "expires_in", &v) && !json_object_is_type(v, json_type_null))
			out->expires_in_given = parse_expires_in(v, &out->expires_in);
		if (!out->expires_in_given)
			out->expires_in = TOKEN_DEFAULT_EXPIRES_IN;
		out->error = dup_string_member(root, "error");
		out->error_description = dup_string_member(root, "error_description");
		if (out->error == NULL && json_object_object_get_ex(root, "errors", &v) &&
			json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0)
		{
			struct json_object *first = json_object_array_get_idx(v, 0);

			if (json_object_is_type(first, json_type_object))
			{
				out->error = dup_string_member(first, "code");
				if (out->error_description == NULL)
					out->error_description = dup_string_member(first, "message");
			}
		}
	}
	json_object_put(root);
	return ok;
}

void
token_response_free(TokenResponse *tr)
{
	if (tr->access_token)
	{
		/* the token is a credential: do not leave it in freed memory */
		volatile char *p = tr->access_token;

		while (*p)
			*p++ = '\0';
		free(tr->access_token);
	}
	free(tr->token_type);
	free(tr->error);
	free(tr->error_description);
	memset(tr, 0, sizeof(*tr));
}
