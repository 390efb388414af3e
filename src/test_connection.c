/*
 * test_connection.c
 *		dci_test_connection(): configuration, token, reachability and
 *		authorization, step by step, never raising for network or auth
 *		failures; the outcome is recorded in the row.
 */
#include "dci_client.h"

#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "deadline.h"
#include "errors.h"
#include "http.h"
#include "oauth.h"
#include "request.h"
#include "source.h"
#include "token_cache.h"

typedef struct StepWriter
{
	ReturnSetInfo *rsinfo;
	TimestampTz	   started;
	bool		   any_false;
	char		  *first_error;
} StepWriter;

static void
emit(StepWriter *w, const char *step, int ok, const char *detail)
{
	Datum		values[4];
	bool		nulls[4] = {false, ok < 0, detail == NULL, false};
	TimestampTz now = GetCurrentTimestamp();

	values[0] = CStringGetTextDatum(step);
	values[1] = BoolGetDatum(ok > 0);
	values[2] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	values[3] = Float8GetDatum((now - w->started) / 1000.0);
	tuplestore_putvalues(w->rsinfo->setResult, w->rsinfo->setDesc, values, nulls);
	if (ok == 0)
	{
		w->any_false = true;
		if (w->first_error == NULL && detail)
			w->first_error = psprintf("%s: %s", step, detail);
	}
	w->started = now;
}

PG_FUNCTION_INFO_V1(dci_test_connection);

/* ok: 1 true, 0 false, -1 NULL */
Datum
dci_test_connection(PG_FUNCTION_ARGS)
{
	StepWriter		w = {0};
	DciSource	   *src;
	DciError		err = {0};
	TimestampTz		deadline;
	DciHttpResponse resp;
	bool			config_ok;
	bool			auth_ok = false;
	uint64			generation;

	InitMaterializedSRF(fcinfo, 0);
	w.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	w.started = GetCurrentTimestamp();

	/* an unknown source is the one thing that raises */
	src = dci_source_from_arg(fcinfo, false);
	deadline = dci_call_deadline(src);

	config_ok = dci_source_check_complete(src, &err);
	emit(&w, "config", config_ok ? 1 : 0,
		 config_ok ? (src->active ? "configuration complete" : "configuration complete (source is inactive)") : dci_error_text(&err));
	if (!config_ok)
	{
		emit(&w, "auth", -1, "skipped: configuration incomplete");
		emit(&w, "reachable", -1, "skipped: configuration incomplete");
		emit(&w, "authorized", -1, "skipped: configuration incomplete");
		dci_source_record_test(src->id, false, w.first_error);
		return (Datum) 0;
	}

	switch (src->auth_type)
	{
		case DCI_AUTH_NONE:
			emit(&w, "auth", -1, "auth_type is none: no token needed");
			break;
		case DCI_AUTH_BEARER:
			emit(&w, "auth", 1, "bearer token is set");
			auth_ok = true;
			break;
		case DCI_AUTH_OAUTH2:
			memset(&err, 0, sizeof(err));
			if (dci_token_get(src, DCI_TOKEN_CACHED, deadline, &generation, &err) != NULL)
			{
				emit(&w, "auth", 1, "access token obtained");
				auth_ok = true;
			}
			else
				emit(&w, "auth", 0, dci_error_text(&err));
			break;
	}

	memset(&err, 0, sizeof(err));
	if (!dci_call(src, "GET", src->ping_endpoint, NULL, 0, NULL, deadline, true,
				  auth_ok, &resp, &err))
	{
		emit(&w, "reachable", 0, dci_error_text(&err));
		emit(&w, "authorized", -1, "skipped: not reachable");
	}
	else
	{
		char *what = psprintf("HTTP %ld from %s", resp.status, src->ping_endpoint);

		emit(&w, "reachable", 1, what);
		if (resp.status >= 200 && resp.status <= 299)
			emit(&w, "authorized", 1, what);
		else if (resp.status == 404 || resp.status == 405)
			emit(&w, "authorized", -1, psprintf("%s: reachable, but the endpoint cannot verify the credentials", what));
		else
			emit(&w, "authorized", 0, what);
	}

	/*
	 * A source that names a callback_uri takes callbacks: without a token or
	 * a registry key anyone may post them.  A warning, not a failure: ok
	 * NULL, the source's state unaffected.
	 */
	if (src->callback_uri != NULL && src->callback_token == NULL &&
		(src->registry_public_key == NULL || *src->registry_public_key == '\0') &&
		(src->registry_jwks_url == NULL || *src->registry_jwks_url == '\0'))
		emit(&w, "callbacks", -1,
			 "warning: callbacks are accepted unauthenticated (set callback_token, registry_public_key or registry_jwks_url)");
	dci_source_record_test(src->id, !w.any_false, w.first_error);
	return (Datum) 0;
}
