/*
 * oauth.c
 *		Access token lifecycle: OAuth2 client credentials (RFC 6749 §4.4),
 *		the per-session token cache, and dci_get_token().
 *
 * Each session keeps its tokens in TopMemoryContext (never on disk, never
 * in a table: read-only transactions and standbys behave the same).  With
 * the library preloaded, the session copy is backed by token_cache.c, which
 * makes one fetch serve every session of the cluster.
 */
#include "dci_client.h"

#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "deadline.h"
#include "errors.h"
#include "http.h"
#include "oauth.h"
#include "redaction.h"
#include "request_log.h"
#include "secrets.h"
#include "settings.h"
#include "source.h"
#include "token_cache.h"
#include "token_response.h"

typedef struct LocalToken
{
	Oid			relid;
	int32		source_id;
	uint64		fingerprint;
	char	   *token; /* TopMemoryContext; NULL: none */
	TimestampTz obtained_at;
	TimestampTz expires_at;
	uint64		generation;
} LocalToken;

static LocalToken *local_tokens = NULL;
static int		   nlocal = 0;
static int		   maxlocal = 0;
static uint64	   local_generation = 0;

static LocalToken *
local_token(const DciSource *src)
{
	for (int i = 0; i < nlocal; i++)
		if (local_tokens[i].source_id == src->id && local_tokens[i].relid == src->table_oid)
			return &local_tokens[i];
	if (nlocal == maxlocal)
	{
		maxlocal = maxlocal ? maxlocal * 2 : 8;
		local_tokens = local_tokens ? repalloc(local_tokens, maxlocal * sizeof(LocalToken)) : MemoryContextAlloc(TopMemoryContext, maxlocal * sizeof(LocalToken));
	}
	memset(&local_tokens[nlocal], 0, sizeof(LocalToken));
	local_tokens[nlocal].source_id = src->id;
	local_tokens[nlocal].relid = src->table_oid;
	return &local_tokens[nlocal++];
}

static void
local_forget(LocalToken *lt)
{
	if (lt->token)
	{
		explicit_bzero(lt->token, strlen(lt->token));
		pfree(lt->token);
		lt->token = NULL;
	}
}

static void
local_set(LocalToken *lt, uint64 fingerprint, const char *token, TimestampTz obtained,
		  TimestampTz expires, uint64 generation)
{
	local_forget(lt);
	lt->fingerprint = fingerprint;
	lt->token = MemoryContextStrdup(TopMemoryContext, token);
	lt->obtained_at = obtained;
	lt->expires_at = expires;
	lt->generation = generation;
}

/* "error: description" of a token endpoint refusal, cut and cleaned */
static char *
refusal_text(const DciSource *src, const DciHttpResponse *resp)
{
	TokenResponse tr;
	char		 *text;

	if (token_response_parse(resp->body, resp->body_len, &tr) && (tr.error || tr.error_description))
		text = psprintf("%s%s%s", tr.error ? tr.error : "",
						tr.error && tr.error_description ? ": " : "",
						tr.error_description ? tr.error_description : "");
	else
		text = pstrdup("");
	token_response_free(&tr);
	return dci_quote_registry_text(src, text, strlen(text));
}

/* the token of a token endpoint's answer and its lifetime; NULL with err set */
static char *
token_from_answer(DciSource *src, DciHttpResponse *resp_p, TimestampTz *obtained,
				  TimestampTz *expires, DciError *err)
{
	DciHttpResponse resp = *resp_p;
	TokenResponse	tr;
	char		   *token;

	if (resp.status < 200 || resp.status > 299)
	{
		char *why = refusal_text(src, &resp);

		dci_error_set(err, ERRCODE_DCI_AUTH, "could not obtain an access token for data source \"%s\"", src->code);
		dci_error_detail(err, "The token endpoint answered HTTP %ld%s%s.", resp.status,
						 *why ? ": " : "", why);
		if (resp.status == 400 || resp.status == 401 || resp.status == 403)
			dci_error_hint(err, "Check client_id, client_secret, scope and credential_location of data source \"%s\".", src->code);
		return NULL;
	}
	if (!token_response_parse(resp.body, resp.body_len, &tr))
	{
		token_response_free(&tr);
		dci_error_set(err, ERRCODE_DCI_BAD_JSON, "token endpoint of data source \"%s\" did not answer with a JSON object", src->code);
		dci_error_detail(err, "HTTP %ld, %zu bytes that are not JSON.", resp.status, resp.body_len);
		return NULL;
	}
	if (tr.access_token == NULL)
	{
		char *why = (tr.error || tr.error_description) ? refusal_text(src, &resp) : pstrdup("");

		token_response_free(&tr);
		dci_error_set(err, ERRCODE_DCI_AUTH, "token endpoint of data source \"%s\" answered without access_token", src->code);
		if (*why)
			dci_error_detail(err, "It said: %s.", why);
		return NULL;
	}
	/* it goes into an Authorization line: a hostile token server must not add headers */
	for (const char *p = tr.access_token; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
		{
			token_response_free(&tr);
			explicit_bzero(resp.body, resp.body_len);
			dci_error_set(err, ERRCODE_DCI_AUTH, "token endpoint of data source \"%s\" answered with an access_token holding control characters", src->code);
			dci_error_detail(err, "A token is sent in an HTTP header; it must not contain carriage returns, line feeds or other control characters.");
			return NULL;
		}
	token = pstrdup(tr.access_token);
	*obtained = GetCurrentTimestamp();
	*expires = *obtained + (TimestampTz) (tr.expires_in * USECS_PER_SEC);
	token_response_free(&tr);
	explicit_bzero(resp.body, resp.body_len);
	return token;
}

/*
 * POST grant_type=client_credentials to the token endpoint.  On success
 * returns the token (palloc'd) and its lifetime; else NULL with err set.
 */
static char *
fetch_token(DciSource *src, TimestampTz deadline, TimestampTz *obtained,
			TimestampTz *expires, DciError *err)
{
	StringInfoData	body;
	StringInfoData	url;
	char		   *id_enc = dci_url_encode(src->client_id);
	char		   *secret_enc = dci_url_encode(src->client_secret);
	char		   *basic = NULL;
	const char	   *headers[4];
	DciHttpRequest	req = {0};
	DciHttpResponse resp;
	bool			ok;

	initStringInfo(&body);
	appendStringInfoString(&body, "grant_type=client_credentials");
	if (src->scope && *src->scope)
		appendStringInfo(&body, "&scope=%s", dci_url_encode(src->scope));
	initStringInfo(&url);
	appendStringInfoString(&url, src->auth_url);

	headers[0] = "Content-Type: application/x-www-form-urlencoded";
	headers[1] = "Accept: application/json";
	headers[2] = NULL;
	headers[3] = NULL;
	switch (src->cred_location)
	{
		case DCI_CRED_BODY:
			appendStringInfo(&body, "&client_id=%s&client_secret=%s", id_enc, secret_enc);
			break;
		case DCI_CRED_BASIC:
		{
			/* RFC 6749 §2.3.1: form-encode each part, then Basic */
			char *pair = psprintf("%s:%s", id_enc, secret_enc);

			basic = psprintf("Authorization: Basic %s", dci_base64(pair));
			dci_secret_free(pair);
			headers[2] = basic;
			break;
		}
		case DCI_CRED_QUERY:
			appendStringInfo(&url, "%sclient_id=%s&client_secret=%s",
							 strchr(src->auth_url, '?') ? "&" : "?", id_enc, secret_enc);
			break;
	}

	req.method = "POST";
	req.url = url.data;
	req.headers = headers;
	req.body = body.data;
	req.body_len = body.len;
	req.source = src;
	req.deadline = deadline;
	req.idempotent = false;
	dci_log_token_fetch(src);
	ok = dci_http_exchange(&req, &resp);

	/* the request held the secret: wipe every copy we made */
	explicit_bzero(body.data, body.len);
	explicit_bzero(url.data, url.len);
	dci_secret_free(id_enc);
	dci_secret_free(secret_enc);
	if (basic)
		dci_secret_free(basic);

	if (!ok)
	{
		*err = resp.error;
		return NULL;
	}
	return token_from_answer(src, &resp, obtained, expires, err);
}

char *
dci_token_get(DciSource *src, int force_refresh, TimestampTz deadline,
			  uint64 *generation, DciError *err)
{
	LocalToken		*lt;
	TimestampTz		 now;
	TimestampTz		 obtained;
	TimestampTz		 expires;
	char			*token;
	bool			 shared = dci_token_cache_enabled();
	TokenCacheResult r = TOKEN_CACHE_UNAVAILABLE;

	*generation = 0;
	if (!dci_source_check_complete(src, err))
		return NULL;
	if (src->auth_type == DCI_AUTH_NONE)
		return NULL;
	if (src->auth_type == DCI_AUTH_BEARER)
		return src->bearer_token;

	/* a superuser may renew at will; anyone else within the rate limit */
	if (force_refresh && superuser())
		force_refresh = DCI_TOKEN_FORCE_ALWAYS;
	now = GetCurrentTimestamp();
	lt = local_token(src);
	src->access_token = NULL;
	if (lt->token && lt->fingerprint != src->credential_fingerprint)
		local_forget(lt);
	if (lt->token && dci_token_usable(lt->obtained_at, lt->expires_at, now, force_refresh))
	{
		*generation = lt->generation;
		src->access_token = lt->token;
		return lt->token;
	}

	if (shared)
	{
		DciSharedToken st;

		r = dci_token_cache_acquire(src, force_refresh, deadline, &st);
		if (r == TOKEN_CACHE_HIT)
		{
			local_set(lt, src->credential_fingerprint, st.token, st.obtained_at,
					  st.expires_at, st.generation);
			dci_secret_free(st.token);
			*generation = lt->generation;
			src->access_token = lt->token;
			return lt->token;
		}
		if (r == TOKEN_CACHE_TIMEOUT)
		{
			dci_error_set(err, ERRCODE_DCI_TIMEOUT, "call to data source \"%s\" ran out of time waiting for an access token", src->code);
			dci_error_detail(err, "Another session was fetching the token.");
			return NULL;
		}
	}

	if (r == TOKEN_CACHE_FETCH)
	{
		/* whatever happens, the waiting sessions must be woken */
		PG_TRY();
		{
			token = fetch_token(src, deadline, &obtained, &expires, err);
		}
		PG_CATCH();
		{
			dci_token_cache_abandon(src);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (token == NULL)
		{
			dci_token_cache_abandon(src);
			return NULL;
		}
		dci_token_cache_store(src, token, obtained, expires, generation);
	}
	else
	{
		token = fetch_token(src, deadline, &obtained, &expires, err);
		if (token == NULL)
			return NULL;
		*generation = ++local_generation;
	}
	local_set(lt, src->credential_fingerprint, token, obtained, expires, *generation);
	dci_secret_free(token);
	src->access_token = lt->token;
	return lt->token;
}

bool
dci_token_renewable(DciSource *src, uint64 generation)
{
	LocalToken *lt = local_token(src);

	if (superuser() || lt->token == NULL || lt->generation != generation)
		return true;
	return GetCurrentTimestamp() - lt->obtained_at >= (int64) dci_token_min_interval_ms * 1000;
}

void
dci_token_drop(DciSource *src, uint64 generation)
{
	LocalToken *lt = local_token(src);

	if (lt->token && lt->generation == generation)
	{
		/* still redacted from the answer that refused it */
		local_forget(lt);
		src->access_token = NULL;
	}
	if (dci_token_cache_enabled())
		dci_token_cache_drop(src, generation);
}

PG_FUNCTION_INFO_V1(dci_get_token);

/* dci_get_token(source text|integer, force_refresh boolean) returns text */
Datum
dci_get_token(PG_FUNCTION_ARGS)
{
	DciSource *src = dci_source_from_arg(fcinfo, true);
	int		   force = (!PG_ARGISNULL(1) && PG_GETARG_BOOL(1)) ? DCI_TOKEN_FORCE : DCI_TOKEN_CACHED;
	DciError   err = {0};
	uint64	   generation;
	char	  *token;

	token = dci_token_get(src, force, dci_call_deadline(src), &generation, &err);
	if (err.sqlstate != 0)
		dci_error_raise(&err);
	if (token == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(token));
}

PG_FUNCTION_INFO_V1(dci_token_status_entries);

/*
 * dci_token_status_entries() returns (source_id, obtained_at, expires_at,
 * shared): the tokens this session holds and, when preloaded, the ones in
 * shared memory for this database.  Never the token.
 */
Datum
dci_token_status_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DciTokenInfo  *shared = NULL;
	int			   nshared = 0;
	Datum		   values[4];
	bool		   nulls[4] = {false, false, false, false};

	Oid relid = dci_source_table_oid();

	InitMaterializedSRF(fcinfo, 0);
	if (dci_token_cache_enabled())
	{
		shared = palloc(sizeof(DciTokenInfo) * dci_shared_token_slots);
		nshared = dci_token_cache_list(relid, shared, dci_shared_token_slots);
	}
	for (int i = 0; i < nshared; i++)
	{
		values[0] = Int32GetDatum(shared[i].source_id);
		values[1] = TimestampTzGetDatum(shared[i].obtained_at);
		values[2] = TimestampTzGetDatum(shared[i].expires_at);
		values[3] = BoolGetDatum(true);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (int i = 0; i < nlocal; i++)
	{
		bool in_shared = false;

		if (local_tokens[i].token == NULL || local_tokens[i].relid != relid)
			continue;
		for (int j = 0; j < nshared; j++)
			if (shared[j].source_id == local_tokens[i].source_id)
				in_shared = true;
		if (in_shared)
			continue;
		values[0] = Int32GetDatum(local_tokens[i].source_id);
		values[1] = TimestampTzGetDatum(local_tokens[i].obtained_at);
		values[2] = TimestampTzGetDatum(local_tokens[i].expires_at);
		values[3] = BoolGetDatum(false);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
