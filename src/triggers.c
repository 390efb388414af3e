/*
 * triggers.c
 *		Row triggers of dci_data_source and dci_signing_key: validation with
 *		messages that name the column, encryption of write-only secrets, the
 *		rule that secrets do not survive a change of origin or trust, and the
 *		invalidation of every backend's data source cache.
 */
#include "dci_client.h"

#include <curl/curl.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "errors.h"
#include "json.h"
#include "path_check.h"
#include "secrets.h"
#include "sig_keys.h"
#include "source.h"

/* one write-only secret column and its ciphertext companion */
typedef struct SecretColumn
{
	const char *plain;
	const char *encrypted;
} SecretColumn;

static const SecretColumn source_secrets[] = {
	{"client_secret", "client_secret_encrypted"},
	{"bearer_token", "bearer_token_encrypted"},
	{"client_key", "client_key_encrypted"},
	/* 0.2: absent while the schema is still 0.1 */
	{"callback_token", "callback_token_encrypted"},
};

static const SecretColumn signing_key_secrets[] = {
	{"private_key", "private_key_encrypted"},
};

/* the columns that say where credentials go and how the server is trusted */
static const char *const trust_columns[] = {
	"base_url",
	"auth_url",
	"credential_location",
	"verify_ssl",
	"ca_cert",
};

/* tuple being built: column values with replacements */
typedef struct RowEdit
{
	Relation  rel;
	TupleDesc tupdesc;
	HeapTuple newtuple;
	HeapTuple oldtuple; /* NULL on INSERT */
	int		  ncols;
	/* replacements: at most one per column of the table */
	int	  *cols;
	Datum *values;
	bool  *nulls;
} RowEdit;

static int
attnum(RowEdit *e, const char *name)
{
	int n = SPI_fnumber(e->tupdesc, name);

	if (n <= 0)
		elog(ERROR, "column \"%s\" of \"%s\" is missing", name,
			 RelationGetRelationName(e->rel));
	return n;
}

/* the new row's value, taking replacements made so far into account */
static Datum
get_new(RowEdit *e, const char *name, bool *isnull)
{
	int n = attnum(e, name);

	for (int i = 0; i < e->ncols; i++)
		if (e->cols[i] == n)
		{
			*isnull = e->nulls[i];
			return e->values[i];
		}
	return heap_getattr(e->newtuple, n, e->tupdesc, isnull);
}

static char *
get_new_text(RowEdit *e, const char *name)
{
	bool  isnull;
	Datum d = get_new(e, name, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static void
set_new(RowEdit *e, const char *name, Datum value, bool isnull)
{
	int n = attnum(e, name);

	for (int i = 0; i < e->ncols; i++)
		if (e->cols[i] == n)
		{
			e->values[i] = value;
			e->nulls[i] = isnull;
			return;
		}
	if (e->ncols >= e->tupdesc->natts)
		elog(ERROR, "too many replaced columns in \"%s\"", RelationGetRelationName(e->rel));
	e->cols[e->ncols] = n;
	e->values[e->ncols] = value;
	e->nulls[e->ncols] = isnull;
	e->ncols++;
}

/* did the UPDATE change this column (compared as text) */
static bool
column_changed(RowEdit *e, const char *name)
{
	int	  n = attnum(e, name);
	char *oldv;
	char *newv;
	bool  changed;

	if (e->oldtuple == NULL)
		return false;
	oldv = SPI_getvalue(e->oldtuple, e->tupdesc, n);
	newv = SPI_getvalue(e->newtuple, e->tupdesc, n);
	if (oldv == NULL || newv == NULL)
		changed = (oldv != newv);
	else
		changed = strcmp(oldv, newv) != 0;
	return changed;
}

static void
invalid_column(RowEdit *e, const char *column, int sqlstate, const char *detail)
{
	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("invalid value for column \"%s\" of \"%s\"", column,
					RelationGetRelationName(e->rel)),
			 errdetail_internal("%s", detail),
			 errtablecol(e->rel, attnum(e, column))));
}

static void
check_one_of(RowEdit *e, const char *column, const char *const *allowed, int n,
			 bool nullable)
{
	char		  *v = get_new_text(e, column);
	StringInfoData list;

	if (v == NULL)
		return; /* NULL: allowed, or the NOT NULL constraint reports it */
	for (int i = 0; i < n; i++)
		if (strcmp(v, allowed[i]) == 0)
			return;
	initStringInfo(&list);
	for (int i = 0; i < n; i++)
		appendStringInfo(&list, "%s\"%s\"", i ? ", " : "", allowed[i]);
	invalid_column(e, column, ERRCODE_CHECK_VIOLATION,
				   psprintf("%s must be one of %s%s.", column, list.data,
							nullable ? ", or NULL" : ""));
}

/*
 * Check an absolute http(s) URL with libcurl's parser; returns it without
 * trailing slashes.  Query strings are allowed only where allow_query.
 */
static char *
check_url(RowEdit *e, const char *column, const char *url, bool allow_query)
{
	CURLU	   *u = curl_url();
	char	   *scheme = NULL;
	char	   *host = NULL;
	char	   *user = NULL;
	char	   *password = NULL;
	char	   *query = NULL;
	char	   *fragment = NULL;
	const char *problem = NULL;
	char	   *result;
	size_t		len;

	if (u == NULL)
		elog(ERROR, "out of memory");
	if (strpbrk(url, " \t\r\n") != NULL ||
		curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		problem = "must be an absolute http:// or https:// URL";
	else
	{
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
		curl_url_get(u, CURLUPART_HOST, &host, 0);
		curl_url_get(u, CURLUPART_USER, &user, 0);
		curl_url_get(u, CURLUPART_PASSWORD, &password, 0);
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
		if (scheme == NULL || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) ||
			(pg_strncasecmp(url, "http://", 7) != 0 && pg_strncasecmp(url, "https://", 8) != 0))
			problem = "must be an absolute http:// or https:// URL";
		else if (host == NULL || *host == '\0')
			problem = "must name a host";
		else if (user != NULL || password != NULL)
			problem = "must not carry a user name or password (credentials belong in the secret columns)";
		else if (fragment != NULL)
			problem = "must not have a fragment";
		else if (query != NULL && !allow_query)
			problem = "must not have a query string";
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(u);
	if (problem)
		invalid_column(e, column, ERRCODE_CHECK_VIOLATION,
					   psprintf("%s %s.", column, problem));

	result = pstrdup(url);
	len = strlen(result);
	while (!allow_query && len > 0 && result[len - 1] == '/')
		result[--len] = '\0';
	return result;
}

/* an endpoint path: the one validator dci_request uses too */
static void
check_path(RowEdit *e, const char *column)
{
	char	   *v = get_new_text(e, column);
	const char *problem;

	if (v == NULL)
		return;
	problem = dci_path_problem(v, true);
	if (problem != NULL)
		invalid_column(e, column, ERRCODE_CHECK_VIOLATION,
					   psprintf("%s %s; it must be a path starting with \"/\" (see the README, \"Columns of dci_data_source\").",
								column, problem));
}

/* a value that goes into an HTTP header line: no control characters at all */
static void
check_header_value(RowEdit *e, const char *column)
{
	char *v = get_new_text(e, column);

	if (v == NULL)
		return;
	for (const char *p = v; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
		{
			explicit_bzero(v, strlen(v));
			invalid_column(e, column, ERRCODE_CHECK_VIOLATION,
						   psprintf("%s must not contain control characters (it is sent in an HTTP header).", column));
		}
	explicit_bzero(v, strlen(v));
}

/* ns:org:RegistryType:<Name>, <Name> a letter then letters, digits or '_' */
static bool
valid_registry_type(const char *v)
{
	const char *prefix = "ns:org:RegistryType:";
	const char *p;

	if (strncmp(v, prefix, strlen(prefix)) != 0)
		return false;
	p = v + strlen(prefix);
	if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
		return false;
	for (; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

static void
check_pem(RowEdit *e, const char *column, const char *value)
{
	if (value != NULL && *value != '\0' && strstr(value, "-----BEGIN ") == NULL)
		invalid_column(e, column, ERRCODE_CHECK_VIOLATION,
					   psprintf("%s must be PEM text (\"-----BEGIN ...\").", column));
}

static void
validate_source(RowEdit *e)
{
	static const char *const auth_types[] = {"none", "bearer", "oauth2"};
	static const char *const locations[] = {"body", "basic", "query"};
	static const char *const states[] = {"draft", "testing", "active", "error"};
	static const char *const signature_formats[] = {"dci", "jws"};
	static const char *const dialects[] = {"dci", "opencrvs", "openg2p"};
	char					*code = get_new_text(e, "code");
	char					*url;
	char					*auth_type;
	bool					 isnull;
	Datum					 d;

	if (code != NULL)
	{
		bool ok = (code[0] >= 'a' && code[0] <= 'z');

		for (const char *p = code; ok && *p; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
		if (!ok)
			invalid_column(e, "code", ERRCODE_CHECK_VIOLATION,
						   "code must match ^[a-z][a-z0-9_]*$ (a lower-case letter, then lower-case letters, digits and underscores).");
	}

	url = get_new_text(e, "base_url");
	if (url != NULL)
		set_new(e, "base_url", CStringGetTextDatum(check_url(e, "base_url", url, false)), false);

	check_one_of(e, "auth_type", auth_types, lengthof(auth_types), false);
	check_one_of(e, "credential_location", locations, lengthof(locations), false);
	check_one_of(e, "state", states, lengthof(states), false);
	url = get_new_text(e, "registry_type");
	if (url != NULL && !valid_registry_type(url))
		invalid_column(e, "registry_type", ERRCODE_CHECK_VIOLATION,
					   "registry_type must be ns:org:RegistryType:<Name> (e.g. ns:org:RegistryType:CRVS), or NULL.");
	check_one_of(e, "signature_format", signature_formats, lengthof(signature_formats), false);

	url = get_new_text(e, "auth_url");
	if (url != NULL)
		check_url(e, "auth_url", url, true);
	auth_type = get_new_text(e, "auth_type");
	if (auth_type != NULL && strcmp(auth_type, "oauth2") == 0 && url == NULL)
		invalid_column(e, "auth_url", ERRCODE_CHECK_VIOLATION,
					   "auth_url (the OAuth2 token endpoint) is required when auth_type is \"oauth2\".");

	check_path(e, "search_endpoint");
	check_path(e, "ping_endpoint");

	/* registries POST callbacks here: an absolute http(s) URL */
	url = get_new_text(e, "callback_uri");
	if (url != NULL)
		(void) check_url(e, "callback_uri", url, true);

	check_header_value(e, "bearer_token");
	if (SPI_fnumber(e->tupdesc, "callback_token") > 0)
		check_header_value(e, "callback_token");

	d = get_new(e, "timeout_ms", &isnull);
	if (!isnull && DatumGetInt32(d) <= 0)
		invalid_column(e, "timeout_ms", ERRCODE_CHECK_VIOLATION,
					   "timeout_ms must be greater than zero, or NULL for dci_client.timeout_ms.");

	/* columns of 0.2: absent while the schema is still 0.1 (before ALTER EXTENSION UPDATE) */
	isnull = true;
	if (SPI_fnumber(e->tupdesc, "batch_size") > 0)
		d = get_new(e, "batch_size", &isnull);
	if (!isnull && (DatumGetInt32(d) <= 0 || DatumGetInt32(d) > DCI_MAX_BATCH_SIZE))
		invalid_column(e, "batch_size", ERRCODE_CHECK_VIOLATION,
					   psprintf("batch_size must be between 1 and %d.", DCI_MAX_BATCH_SIZE));
	isnull = true;
	if (SPI_fnumber(e->tupdesc, "max_concurrency") > 0)
		d = get_new(e, "max_concurrency", &isnull);
	if (!isnull && (DatumGetInt32(d) <= 0 || DatumGetInt32(d) > DCI_MAX_CONCURRENCY))
		invalid_column(e, "max_concurrency", ERRCODE_CHECK_VIOLATION,
					   psprintf("max_concurrency must be between 1 and %d.", DCI_MAX_CONCURRENCY));

	/* the dialect column (issue 14): absent before the schema has it */
	if (SPI_fnumber(e->tupdesc, "dialect") > 0)
		check_one_of(e, "dialect", dialects, lengthof(dialects), false);

	/* registry keys from JWKS (issue 13): a column of 0.2, absent before the update */
	if (SPI_fnumber(e->tupdesc, "registry_jwks_url") > 0)
	{
		url = get_new_text(e, "registry_jwks_url");
		if (url != NULL)
		{
			char *pk = get_new_text(e, "registry_public_key");

			(void) check_url(e, "registry_jwks_url", url, true);
			if (pk != NULL && *pk != '\0')
				invalid_column(e, "registry_jwks_url", ERRCODE_CHECK_VIOLATION,
							   "Set either registry_public_key or registry_jwks_url, not both: which would verify is ambiguous.");
		}
	}

	check_pem(e, "ca_cert", get_new_text(e, "ca_cert"));
	check_pem(e, "client_cert", get_new_text(e, "client_cert"));
	check_pem(e, "client_key", get_new_text(e, "client_key"));

	d = get_new(e, "extra_headers", &isnull);
	if (!isnull)
		(void) dci_jsonb_to_headers(DatumGetJsonbP(d), "extra_headers");
}

static void
validate_signing_key(RowEdit *e)
{
	static const char *const algorithms[] = {"ed25519", "rsa-sha256"};
	static const char *const states[] = {"draft", "active", "revoked"};

	check_one_of(e, "algorithm", algorithms, lengthof(algorithms), false);
	check_one_of(e, "state", states, lengthof(states), false);
	/* kid_format (issue 14) is of 0.2: absent before the update */
	if (SPI_fnumber(e->tupdesc, "kid_format") > 0)
	{
		static const char *const kid_formats[] = {"thumbprint", "openspp"};
		char				   *kf = get_new_text(e, "kid_format");
		char				   *key_id = get_new_text(e, "key_id");

		check_one_of(e, "kid_format", kid_formats, lengthof(kid_formats), false);
		if (kf != NULL && strcmp(kf, "openspp") == 0 && key_id != NULL &&
			(strchr(key_id, '|') != NULL || !dci_sig_field_safe(key_id)))
			invalid_column(e, "key_id", ERRCODE_CHECK_VIOLATION,
						   "key_id of a kid_format 'openspp' key must not hold \"|\", a double quote, a backslash or a control character (the kid is sender_id|key_id|algorithm).");
	}
	check_pem(e, "public_key", get_new_text(e, "public_key"));
	check_pem(e, "private_key", get_new_text(e, "private_key"));
}

/*
 * The stored ciphertext of an inbound secret (callback_token: presented to
 * us, never sent), encrypted again under the row's new binding; NULL when
 * there is none or it cannot be decrypted (then it is removed, as before).
 */
static bytea *
rebind_secret(RowEdit *e, const SecretColumn *col, const char *table, int32 row_id,
			  const char *old_binding, const char *binding)
{
	bool		isnull;
	Datum		d = heap_getattr(e->oldtuple, attnum(e, col->encrypted), e->tupdesc, &isnull);
	DciError	err;
	char	   *plain;
	bytea	   *ct;

	if (isnull)
		return NULL;
	memset(&err, 0, sizeof(err));
	plain = dci_secret_decrypt(DatumGetByteaPP(d), table, col->plain, row_id, old_binding,
							   "the row", &err);
	if (plain == NULL)
		return NULL;
	ct = dci_secret_encrypt(plain, table, col->plain, row_id, binding);
	dci_secret_free(plain);
	return ct;
}

/*
 * Encrypt the write-only columns: a non-NULL value is encrypted into its
 * companion and the column set to NULL; '' removes the stored secret; NULL
 * keeps it, unless the origin or trust changed (then it is removed, but
 * callback_token, which goes nowhere, is kept: re-encrypted under the new
 * binding, or a CA rotation would open the callback route unauthenticated).
 */
static void
process_secrets(RowEdit *e, const SecretColumn *cols, int ncols, int32 row_id,
				const char *binding, bool trust_changed, const char *old_binding)
{
	const char *table = RelationGetRelationName(e->rel);

	for (int i = 0; i < ncols; i++)
	{
		bool  isnull;
		Datum plain = get_new(e, cols[i].plain, &isnull);

		if (!isnull)
		{
			char *value = TextDatumGetCString(plain);

			if (*value == '\0')
				set_new(e, cols[i].encrypted, (Datum) 0, true);
			else
			{
				bytea *ct = dci_secret_encrypt(value, table, cols[i].plain, row_id, binding);

				set_new(e, cols[i].encrypted, PointerGetDatum(ct), false);
				explicit_bzero(value, strlen(value));
			}
			set_new(e, cols[i].plain, (Datum) 0, true);
		}
		else if (trust_changed && !column_changed(e, cols[i].encrypted))
		{
			bytea	   *ct = NULL;

			if (old_binding && strcmp(cols[i].plain, "callback_token") == 0)
				ct = rebind_secret(e, &cols[i], table, row_id, old_binding, binding);
			set_new(e, cols[i].encrypted, PointerGetDatum(ct), ct == NULL);
		}
	}
}

/* after: an AFTER trigger that only checks the row as it is stored */
static RowEdit *
begin_edit(FunctionCallInfo fcinfo, const char *fname, bool after)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	RowEdit		*e;

	if (!CALLED_AS_TRIGGER(fcinfo) ||
		(after ? !TRIGGER_FIRED_AFTER(td->tg_event) : !TRIGGER_FIRED_BEFORE(td->tg_event)) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		!(TRIGGER_FIRED_BY_INSERT(td->tg_event) || TRIGGER_FIRED_BY_UPDATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be fired %s INSERT OR UPDATE FOR EACH ROW", fname,
						after ? "AFTER" : "BEFORE")));
	e = palloc0(sizeof(RowEdit));
	e->rel = td->tg_relation;
	e->tupdesc = RelationGetDescr(td->tg_relation);
	e->cols = palloc(sizeof(int) * e->tupdesc->natts);
	e->values = palloc(sizeof(Datum) * e->tupdesc->natts);
	e->nulls = palloc(sizeof(bool) * e->tupdesc->natts);
	if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
	{
		e->newtuple = td->tg_newtuple;
		e->oldtuple = td->tg_trigtuple;
	}
	else
		e->newtuple = td->tg_trigtuple;
	return e;
}

static int32
row_id(RowEdit *e)
{
	bool  isnull;
	Datum id = heap_getattr(e->newtuple, attnum(e, "id"), e->tupdesc, &isnull);

	if (isnull)
		elog(ERROR, "id of \"%s\" is NULL", RelationGetRelationName(e->rel));
	if (e->oldtuple && column_changed(e, "id"))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column \"id\" of \"%s\" cannot be changed", RelationGetRelationName(e->rel)),
				 errdetail("Stored secrets are bound to the row id.")));
	return DatumGetInt32(id);
}

static Datum
finish_edit(RowEdit *e)
{
	HeapTuple result;

	if (e->ncols == 0)
		return PointerGetDatum(e->newtuple);
	result = heap_modify_tuple_by_cols(e->newtuple, e->tupdesc, e->ncols,
									   e->cols, e->values, e->nulls);
	return PointerGetDatum(result);
}

/* the binding of the row before the UPDATE (what its secrets were encrypted for) */
static char *
old_binding(RowEdit *e)
{
	const char *names[] = {"base_url", "auth_url", "credential_location", "ca_cert"};
	char	   *v[lengthof(names)];
	bool		isnull;
	Datum		verify;

	for (int i = 0; i < lengthof(names); i++)
	{
		Datum		d = heap_getattr(e->oldtuple, attnum(e, names[i]), e->tupdesc, &isnull);

		v[i] = isnull ? NULL : TextDatumGetCString(d);
	}
	verify = heap_getattr(e->oldtuple, attnum(e, "verify_ssl"), e->tupdesc, &isnull);
	return dci_secret_binding(v[0], v[1], v[2], isnull ? true : DatumGetBool(verify), v[3]);
}

PG_FUNCTION_INFO_V1(dci_data_source_trigger);

Datum
dci_data_source_trigger(PG_FUNCTION_ARGS)
{
	RowEdit *e = begin_edit(fcinfo, "dci_data_source_trigger", false);
	int32	 id = row_id(e);
	bool	 trust_changed = false;
	bool	 isnull;
	Datum	 verify;
	char	*binding;

	validate_source(e);

	if (e->oldtuple != NULL)
	{
		for (int i = 0; i < lengthof(trust_columns); i++)
			if (column_changed(e, trust_columns[i]))
				trust_changed = true;
		set_new(e, "updated_at", TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()), false);
	}
	/* base_url as normalised above, so the binding matches what is stored */
	verify = get_new(e, "verify_ssl", &isnull);
	binding = dci_secret_binding(get_new_text(e, "base_url"), get_new_text(e, "auth_url"),
								 get_new_text(e, "credential_location"),
								 isnull ? true : DatumGetBool(verify),
								 get_new_text(e, "ca_cert"));
	{
		SecretColumn present[lengthof(source_secrets)];
		int			 n = 0;

		for (int i = 0; i < lengthof(source_secrets); i++)
			if (SPI_fnumber(e->tupdesc, source_secrets[i].plain) > 0)
				present[n++] = source_secrets[i];
		process_secrets(e, present, n, id, binding, trust_changed,
						trust_changed ? old_binding(e) : NULL);
	}
	return finish_edit(e);
}

PG_FUNCTION_INFO_V1(dci_signing_key_trigger);

Datum
dci_signing_key_trigger(PG_FUNCTION_ARGS)
{
	RowEdit *e = begin_edit(fcinfo, "dci_signing_key_trigger", false);
	int32	 id = row_id(e);
	bool	 changed = false;
	char	*binding;

	validate_signing_key(e);
	if (e->oldtuple != NULL)
		changed = column_changed(e, "key_id") || column_changed(e, "algorithm");
	binding = dci_secret_binding(get_new_text(e, "key_id"), get_new_text(e, "algorithm"),
								 NULL, true, NULL);
	process_secrets(e, signing_key_secrets, lengthof(signing_key_secrets), id, binding, changed, NULL);
	return finish_edit(e);
}

PG_FUNCTION_INFO_V1(dci_data_source_check_trigger);

/*
 * AFTER INSERT OR UPDATE FOR EACH ROW: the rules once more, on the row as
 * stored.  A BEFORE trigger that sorts after ours (whoever may create
 * triggers on the table) could change the row after it was checked; the
 * rules live here and in dci_data_source_trigger only, not in CHECKs.
 */
Datum
dci_data_source_check_trigger(PG_FUNCTION_ARGS)
{
	validate_source(begin_edit(fcinfo, "dci_data_source_check_trigger", true));
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(dci_signing_key_check_trigger);

/* the same for dci_signing_key */
Datum
dci_signing_key_check_trigger(PG_FUNCTION_ARGS)
{
	validate_signing_key(begin_edit(fcinfo, "dci_signing_key_check_trigger", true));
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(dci_invalidate_trigger);

/*
 * AFTER ... FOR EACH STATEMENT: tell every backend (at commit) and this one
 * (at the next command) that cached data sources are stale.  A relcache
 * invalidation of the table is the message; source.c listens for it.
 */
Datum
dci_invalidate_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("dci_invalidate_trigger must be called as a trigger")));
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(dci_clear_secret);

/*
 * dci_clear_secret(source text|integer, column_name text): remove a stored
 * secret.  Runs as the caller (it needs UPDATE on the table, as writing ''
 * does); the table is the extension's, found by OID, and search_path is
 * pinned, so nothing the caller or the schema's owner plants is run.
 */
Datum
dci_clear_secret(PG_FUNCTION_ARGS)
{
	bool		   by_id = get_fn_expr_argtype(fcinfo->flinfo, 0) == INT4OID;
	char		  *column = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	const char	  *secret = NULL;
	char		  *query;
	Oid			   argtype = by_id ? INT4OID : TEXTOID;
	Datum		   arg;
	uint64		   updated;
	DciPinnedState pinned;

	for (int i = 0; column && i < lengthof(source_secrets); i++)
		if (strcmp(column, source_secrets[i].plain) == 0)
			secret = source_secrets[i].plain;
	if (secret == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("column \"%s\" is not a secret of dci_data_source",
						column ? dci_quote_text(column, strlen(column)) : "<NULL>"),
				 errhint("The secrets are client_secret, bearer_token, client_key and callback_token.")));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("data source must not be NULL")));
	arg = PG_GETARG_DATUM(0);

	query = psprintf("UPDATE %s SET %s = '' WHERE %s OPERATOR(pg_catalog.=) $1",
					 dci_qualified_table_name(dci_source_table_oid()), secret, by_id ? "id" : "code");

	dci_spi_begin_pinned(&pinned);
	if (SPI_execute_with_args(query, 1, &argtype, &arg, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_with_args failed: %s", query);
	updated = SPI_processed;
	dci_spi_end_pinned(&pinned);

	if (updated == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("data source \"%s\" does not exist",
						by_id ? psprintf("%d", DatumGetInt32(arg)) : TextDatumGetCString(arg))));
	PG_RETURN_VOID();
}
