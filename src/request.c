/*
 * request.c
 *		Authenticated calls to a data source: dci_request().
 *
 * dci_call() is the one path every API call takes (dci_request, the
 * connection test, the DCI layer): merge headers, attach the token, run the
 * exchange with its retries, and on a 401 renew the token and resend once,
 * all inside the call's one time budget.
 */
#include "dci_client.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "deadline.h"
#include "errors.h"
#include "http.h"
#include "http_headers.h"
#include "json.h"
#include "oauth.h"
#include "path_check.h"
#include "redaction.h"
#include "request.h"
#include "request_log.h"
#include "secrets.h"
#include "source.h"
#include "token_cache.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};

/* the method in upper case, or 22023 */
static const char *
dci_check_method(const char *method)
{
	for (int i = 0; i < lengthof(methods); i++)
		if (pg_strcasecmp(method, methods[i]) == 0)
			return methods[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unsupported HTTP method \"%s\"", dci_quote_text(method, strlen(method))),
			 errhint("Use GET, POST, PUT, PATCH, DELETE or HEAD.")));
	return NULL;
}

/* a path under base_url: the one validator (path_check.c), with a query allowed */
static void
dci_check_path(const char *path)
{
	const char *problem = dci_path_problem(path, true);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid path \"%s\"", dci_quote_text(path, strlen(path))),
				 errdetail("The path %s. A path starts with \"/\", may carry a query string, and has no \".\" or \"..\" segment (also percent-encoded), encoded slash, space, control character or fragment.",
						   problem)));
}

/* "Name: value" lines: extra_headers, then the call's, then our defaults */
static const char **
build_headers(const DciSource *src, const DciHeaders *call_headers, bool has_body,
			  const char *authorization)
{
	int max = 4 + (src->extra_headers ? src->extra_headers->n : 0) +
			  (call_headers ? call_headers->n : 0);
	const char		**lines = palloc0(sizeof(char *) * (max + 1));
	int				  n = 0;
	bool			  have_accept = false;
	bool			  have_type = false;
	const DciHeaders *sets[2] = {src->extra_headers, call_headers};

	for (int s = 0; s < 2; s++)
	{
		const DciHeaders *h = sets[s];

		for (int i = 0; h && i < h->n; i++)
		{
			CHECK_FOR_INTERRUPTS();
			/* a call header replaces an extra header of the same name */
			if (s == 0 && call_headers)
			{
				bool replaced = false;

				for (int j = 0; j < call_headers->n; j++)
					if (pg_strcasecmp(call_headers->names[j], h->names[i]) == 0)
						replaced = true;
				if (replaced)
					continue;
			}
			if (pg_strcasecmp(h->names[i], "accept") == 0)
				have_accept = true;
			if (pg_strcasecmp(h->names[i], "content-type") == 0)
				have_type = true;
			lines[n++] = psprintf("%s: %s", h->names[i], h->values[i]);
		}
	}
	if (!have_accept)
		lines[n++] = "Accept: application/json";
	if (has_body && !have_type)
		lines[n++] = "Content-Type: application/json";
	if (authorization)
		lines[n++] = authorization;
	lines[n] = NULL;
	return lines;
}

const char **
dci_call_headers(const DciSource *src, bool has_body, const char *authorization)
{
	return build_headers(src, NULL, has_body, authorization);
}

bool
dci_call(DciSource *src, const char *method, const char *path, const char *body,
		 size_t body_len, const DciHeaders *headers, TimestampTz deadline,
		 bool idempotent, bool with_auth, DciHttpResponse *resp, DciError *err)
{
	DciHttpRequest req = {0};
	uint64		   generation = 0;
	char		  *token = NULL;
	char		  *authorization = NULL;

	if (with_auth)
	{
		token = dci_token_get(src, DCI_TOKEN_CACHED, deadline, &generation, err);
		if (err->sqlstate != 0)
			return false;
	}
	if (token)
		authorization = psprintf("Authorization: Bearer %s", token);

	req.method = method;
	req.url = psprintf("%s%s", src->base_url, path);
	req.body = body;
	req.body_len = body_len;
	req.source = src;
	req.deadline = deadline;
	req.idempotent = idempotent;
	req.headers = build_headers(src, headers, body != NULL, authorization);

	if (!dci_http_exchange(&req, resp))
	{
		dci_log_exchange(0, 0, resp->attempts);
		*err = resp->error;
		dci_secret_free(authorization);
		return false;
	}
	dci_log_exchange(resp->status, resp->body_len, resp->attempts);

	/* a refused OAuth2 token: renew it and resend once (not a brand-new one) */
	if (resp->status == 401 && with_auth && src->auth_type == DCI_AUTH_OAUTH2 &&
		dci_token_renewable(src, generation))
	{
		double first_ms = resp->elapsed_ms;
		int	   first_attempts = resp->attempts;

		dci_token_drop(src, generation);
		dci_secret_free(authorization);
		authorization = NULL;
		token = dci_token_get(src, DCI_TOKEN_CACHED, deadline, &generation, err);
		if (err->sqlstate != 0)
			return false;
		authorization = psprintf("Authorization: Bearer %s", token);
		req.headers = build_headers(src, headers, body != NULL, authorization);
		if (!dci_http_exchange(&req, resp))
		{
			dci_log_exchange(0, 0, resp->attempts);
			*err = resp->error;
			dci_secret_free(authorization);
			return false;
		}
		dci_log_exchange(resp->status, resp->body_len, resp->attempts);
		resp->elapsed_ms += first_ms;
		resp->attempts += first_attempts;
	}
	dci_secret_free(authorization);
	return true;
}

/*
 * The response body as a string of the server encoding: converted from its
 * charset (UTF-8 unless Content-Type says otherwise); 22021 when it is not
 * valid in that charset or holds a NUL byte.  Not copied when no conversion
 * is needed.
 */
char *
dci_body_to_cstring(const DciSource *src, const DciHttpResponse *resp)
{
	const char *ctype = header_list_get(resp->headers, "content-type");
	char		charset[64];
	int			encoding = PG_UTF8;

	if (content_type_charset(ctype, charset, sizeof(charset)))
	{
		int e = pg_char_to_encoding(charset);

		if (e >= 0 && PG_VALID_ENCODING(e))
			encoding = e;
	}
	if (memchr(resp->body, '\0', resp->body_len) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("response body from data source \"%s\" contains a NUL byte", src->code)));
	if (!pg_verify_mbstr(encoding, resp->body, (int) resp->body_len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("response body from data source \"%s\" is not valid %s",
						src->code, pg_encoding_to_char(encoding)),
				 errdetail("HTTP status %ld, Content-Type \"%s\".", resp->status,
						   ctype ? dci_quote_text(ctype, strlen(ctype)) : "")));
	/* already verified: only a different charset needs converting */
	if (encoding == GetDatabaseEncoding() || GetDatabaseEncoding() == PG_SQL_ASCII)
		return resp->body;
	return pg_any_to_server(resp->body, (int) resp->body_len, encoding);
}

/* does a (lower-cased) header name hold one of the source's credentials? */
static bool
name_holds_credential(const DciSource *src, const char *name)
{
	const char *creds[] = {src->client_secret, src->bearer_token, src->access_token};

	for (int i = 0; i < lengthof(creds); i++)
	{
		size_t n = creds[i] ? strlen(creds[i]) : 0;

		if (n < 4)
			continue;
		for (const char *p = name; strlen(p) >= n; p++)
			if (pg_strncasecmp(p, creds[i], n) == 0)
				return true;
	}
	return false;
}

/* a registry may echo what it was sent: no credential goes back to the caller */
static const DciHeaderList *
redacted_headers(const DciSource *src, const DciHeaderList *headers)
{
	DciHeaderList *copy = NULL;

	for (size_t i = 0; headers && i < headers->n; i++)
	{
		size_t len;
		char  *value = dci_redact(src, headers->values[i], strlen(headers->values[i]), &len);
		bool   bad_name = name_holds_credential(src, headers->names[i]);

		if (value == headers->values[i] && !bad_name)
			continue;
		if (copy == NULL)
		{
			copy = palloc(sizeof(DciHeaderList));
			*copy = *headers;
			copy->names = palloc(sizeof(char *) * headers->n);
			memcpy(copy->names, headers->names, sizeof(char *) * headers->n);
			copy->values = palloc(sizeof(char *) * headers->n);
			memcpy(copy->values, headers->values, sizeof(char *) * headers->n);
		}
		copy->values[i] = value;
		if (bad_name)
			copy->names[i] = psprintf("x-dci-redacted-%zu", i);
	}
	return copy ? copy : headers;
}

static text *
redacted_body(const DciSource *src, const DciHttpResponse *resp)
{
	char  *s = dci_body_to_cstring(src, resp);
	size_t len = (s == resp->body) ? resp->body_len : strlen(s);

	s = dci_redact(src, s, len, &len);
	return cstring_to_text_with_len(s, (int) len);
}

PG_FUNCTION_INFO_V1(dci_request);

/*
 * dci_request(source, method, path, body jsonb, headers jsonb)
 * returns dci_response (status, headers, body, elapsed_ms)
 */
Datum
dci_request(PG_FUNCTION_ARGS)
{
	TimestampTz		start = GetCurrentTimestamp();
	DciSource	   *src;
	const char	   *method;
	char		   *path;
	char		   *body = NULL;
	size_t			body_len = 0;
	DciHeaders	   *headers = NULL;
	DciHttpResponse resp;
	DciError		err = {0};
	TupleDesc		tupdesc;
	Datum			values[4];
	bool			nulls[4] = {false, false, false, false};
	bool			idempotent;

	/* the blessed result descriptor, looked up once per query */
	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;
	if (tupdesc == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "dci_request must return a composite type");
		tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		fcinfo->flinfo->fn_extra = tupdesc;
		MemoryContextSwitchTo(old);
	}
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("method and path must not be NULL")));
	src = dci_source_from_arg(fcinfo, true);
	method = dci_check_method(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	path = text_to_cstring(PG_GETARG_TEXT_PP(2));
	dci_check_path(path);
	if (!PG_ARGISNULL(3))
		body = dci_jsonb_to_compact(PG_GETARG_JSONB_P(3), &body_len);
	if (!PG_ARGISNULL(4))
		headers = dci_jsonb_to_headers(PG_GETARG_JSONB_P(4), "headers");
	idempotent = strcmp(method, "POST") != 0 && strcmp(method, "PATCH") != 0;

	dci_log_begin(src, method, path);
	PG_TRY();
	{
		if (!dci_call(src, method, path, body, body_len, headers, dci_call_deadline(src),
					  idempotent, true, &resp, &err))
			dci_error_raise(&err);
		values[0] = Int32GetDatum((int32) resp.status);
		values[1] = JsonbPGetDatum(dci_header_list_to_jsonb(redacted_headers(src, resp.headers)));
		values[2] = PointerGetDatum(redacted_body(src, &resp));
	}
	PG_CATCH();
	{
		dci_log_failed();
		PG_RE_THROW();
	}
	PG_END_TRY();
	dci_log_end();

	values[3] = Float8GetDatum((GetCurrentTimestamp() - start) / 1000.0);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
