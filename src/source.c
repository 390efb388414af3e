/*
 * source.c
 *		The per-backend cache of data sources.
 *
 * Like postgres_fdw's connection cache: rows are loaded once (SPI, as the
 * bootstrap superuser, so callers need EXECUTE only), their secrets
 * decrypted once, and kept until the table changes.  Any change to the
 * table fires a statement trigger that sends a relcache invalidation of the
 * table; the callback below marks every entry stale, and the next call
 * reloads.  The warm path does no SPI, no catalog access and no decryption.
 */
#include "dci_client.h"

#include <openssl/sha.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/sinval.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "catalog.h"
#include "errors.h"
#include "json.h"
#include "path_check.h"
#include "secrets.h"
#include "source.h"

#define SOURCE_COLUMNS                                                                   \
	"id, code, registry_type, base_url, auth_type, auth_url, client_id, "                \
	"client_secret_encrypted, credential_location, scope, bearer_token_encrypted, "      \
	"sender_id, receiver_id, callback_uri, search_endpoint, ping_endpoint, timeout_ms, " \
	"verify_ssl, ca_cert, client_cert, client_key_encrypted, extra_headers, "            \
	"signing_key_id, registry_public_key, active, signature_format"
/* columns of 0.2, read when the schema has them (an 0.1 schema before its update has not) */
#define SOURCE_COLUMNS_0_2 ", batch_size, max_concurrency"
#define SOURCE_COLUMNS_0_1 ", NULL::integer, NULL::integer"
/* the dialect column (issue 14), read when the schema has it */
#define SOURCE_COLUMNS_DIALECT ", dialect"
#define SOURCE_COLUMNS_NO_DIALECT ", NULL::text"
/* registry keys from JWKS (issue 13): read as column 30 when the schema has it */
#define SOURCE_COLUMNS_JWKS	   ", registry_jwks_url"
#define SOURCE_COLUMNS_NO_JWKS ", NULL::text"
/* the callback token (issue 13, inbound): column 31 when the schema has it */
#define SOURCE_COLUMNS_CALLBACK	   ", callback_token_encrypted"
#define SOURCE_COLUMNS_NO_CALLBACK ", NULL::bytea"

typedef struct CacheEntry
{
	DciSource *source;
	bool	   stale;
} CacheEntry;

static CacheEntry *entries = NULL;
static int		   nentries = 0;
static int		   maxentries = 0;
static bool		   any_stale = false;
static bool		   callback_registered = false;
static uint64	   load_serial = 0;
static Oid		   cached_table = InvalidOid; /* dci_data_source when the entries were loaded */

/* the context's reset callback wipes the secrets (build_source) */
static void
free_source(DciSource *src)
{
	MemoryContextDelete(src->cxt);
}

static void
relcache_callback(Datum arg, Oid relid)
{
	/*
	 * Only marks: an entry may be in use by the running call.  Stale entries
	 * are freed at the start of the next lookup.
	 */
	if (relid == InvalidOid || relid == cached_table)
	{
		for (int i = 0; i < nentries; i++)
			entries[i].stale = true;
		any_stale = nentries > 0;
	}
}

static void
purge_stale(void)
{
	int kept = 0;

	if (!any_stale)
		return;
	for (int i = 0; i < nentries; i++)
	{
		if (entries[i].stale)
			free_source(entries[i].source);
		else
			entries[kept++] = entries[i];
	}
	nentries = kept;
	any_stale = false;
}

static char *
copy_text(SPITupleTable *tt, HeapTuple tup, int col)
{
	char *v = SPI_getvalue(tup, tt->tupdesc, col);

	return v ? pstrdup(v) : NULL;
}

static uint64
credential_fingerprint(const DciSource *src)
{
	SHA256_CTX	  ctx;
	unsigned char md[SHA256_DIGEST_LENGTH];
	const char	 *parts[] = {
		  src->auth_url,
		  src->client_id,
		  src->client_secret,
		  src->scope,
		  src->bearer_token,
		  src->base_url,
	  };
	uint64 fp;

	SHA256_Init(&ctx);
	/* a re-created extension's source 1 is not the old source 1 */
	SHA256_Update(&ctx, &src->table_oid, sizeof(src->table_oid));
	SHA256_Update(&ctx, &src->auth_type, sizeof(src->auth_type));
	SHA256_Update(&ctx, &src->cred_location, sizeof(src->cred_location));
	for (int i = 0; i < lengthof(parts); i++)
	{
		if (parts[i])
			SHA256_Update(&ctx, parts[i], strlen(parts[i]) + 1);
		else
			SHA256_Update(&ctx, "\xff", 1);
	}
	SHA256_Final(md, &ctx);
	memcpy(&fp, md, sizeof(fp));
	explicit_bzero(&ctx, sizeof(ctx));
	return fp;
}

static char *
decrypt_column(DciSource *src, SPITupleTable *tt, HeapTuple tup, int col,
			   const char *column, const char *binding)
{
	bool  isnull;
	Datum d = SPI_getbinval(tup, tt->tupdesc, col, &isnull);
	char *desc;

	if (isnull)
		return NULL;
	desc = psprintf("data source \"%s\"", src->code);
	return dci_secret_decrypt(DatumGetByteaPP(d), "dci_data_source", column, src->id,
							  binding, desc, &src->secret_error);
}

/*
 * A NOT NULL column that is NULL anyway (a superuser dropped the constraint
 * or disabled the trigger): the row is damaged, the call refused.
 */
static void
damaged_row(SPITupleTable *tt, HeapTuple tup, int col)
{
	bool  isnull;
	Datum code = SPI_getbinval(tup, tt->tupdesc, 2, &isnull);

	ereport(ERROR,
			(errcode(ERRCODE_DCI_CONFIG),
			 errmsg("data source \"%s\" is damaged: column \"%s\" is NULL",
					isnull ? "?" : TextDatumGetCString(code),
					SPI_fname(tt->tupdesc, col)),
			 errhint("Restore the column's value and its NOT NULL constraint.")));
}

static char *
required_text(SPITupleTable *tt, HeapTuple tup, int col)
{
	char *v = copy_text(tt, tup, col);

	if (v == NULL)
		damaged_row(tt, tup, col);
	return v;
}

static Datum
required_datum(SPITupleTable *tt, HeapTuple tup, int col)
{
	bool  isnull;
	Datum d = SPI_getbinval(tup, tt->tupdesc, col, &isnull);

	if (isnull)
		damaged_row(tt, tup, col);
	return d;
}

/* wipe the decrypted secrets whenever the source's memory goes */
static void
wipe_source_secrets(void *arg)
{
	DciSource *src = (DciSource *) arg;

	if (src->client_secret)
		explicit_bzero(src->client_secret, strlen(src->client_secret));
	if (src->bearer_token)
		explicit_bzero(src->bearer_token, strlen(src->bearer_token));
	if (src->client_key)
		explicit_bzero(src->client_key, strlen(src->client_key));
	if (src->callback_token)
		explicit_bzero(src->callback_token, strlen(src->callback_token));
}

/*
 * Build a DciSource from the current SPI row, in its own memory context.
 * The context starts under the caller's, so an error half-way frees it
 * (secrets wiped); only a complete source is moved under CacheMemoryContext.
 */
static DciSource *
build_source(SPITupleTable *tt, HeapTuple tup)
{
	MemoryContext		   cxt = AllocSetContextCreate(CurrentMemoryContext, "dci_client data source",
													   ALLOCSET_SMALL_SIZES);
	MemoryContext		   old = MemoryContextSwitchTo(cxt);
	DciSource			  *src = palloc0(sizeof(DciSource));
	MemoryContextCallback *wipe = palloc0(sizeof(MemoryContextCallback));
	bool				   isnull;
	Datum				   d;
	char				  *s;
	char				  *location;
	char				  *binding;

	src->cxt = cxt;
	wipe->func = wipe_source_secrets;
	wipe->arg = src;
	MemoryContextRegisterResetCallback(cxt, wipe);
	src->serial = ++load_serial;
	src->table_oid = cached_table;
	src->id = DatumGetInt32(required_datum(tt, tup, 1));
	src->code = required_text(tt, tup, 2);
	MemoryContextSetIdentifier(cxt, src->code);
	src->registry_type = copy_text(tt, tup, 3);
	src->base_url = required_text(tt, tup, 4);
	s = required_text(tt, tup, 5);
	src->auth_type = strcmp(s, "none") == 0 ? DCI_AUTH_NONE : strcmp(s, "bearer") == 0 ? DCI_AUTH_BEARER
																					   : DCI_AUTH_OAUTH2;
	src->auth_url = copy_text(tt, tup, 6);
	src->client_id = copy_text(tt, tup, 7);
	location = required_text(tt, tup, 9);
	src->cred_location = strcmp(location, "basic") == 0 ? DCI_CRED_BASIC : strcmp(location, "query") == 0 ? DCI_CRED_QUERY
																										  : DCI_CRED_BODY;
	src->scope = copy_text(tt, tup, 10);
	src->sender_id = copy_text(tt, tup, 12);
	src->receiver_id = copy_text(tt, tup, 13);
	src->callback_uri = copy_text(tt, tup, 14);
	src->search_endpoint = required_text(tt, tup, 15);
	src->ping_endpoint = required_text(tt, tup, 16);
	d = SPI_getbinval(tup, tt->tupdesc, 17, &isnull);
	src->timeout_ms = isnull ? 0 : DatumGetInt32(d);
	src->verify_ssl = DatumGetBool(required_datum(tt, tup, 18));
	src->ca_cert = copy_text(tt, tup, 19);
	src->client_cert = copy_text(tt, tup, 20);
	src->extra_headers = dci_jsonb_to_headers(DatumGetJsonbP(required_datum(tt, tup, 22)),
											  "extra_headers");
	d = SPI_getbinval(tup, tt->tupdesc, 23, &isnull);
	src->signing_key_id = isnull ? 0 : DatumGetInt32(d);
	src->registry_public_key = copy_text(tt, tup, 24);
	src->active = DatumGetBool(required_datum(tt, tup, 25));
	s = required_text(tt, tup, 26);
	src->signature_format = strcmp(s, "jws") == 0 ? DCI_SIG_FORMAT_JWS : DCI_SIG_FORMAT_DCI;
	d = SPI_getbinval(tup, tt->tupdesc, 27, &isnull);
	src->batch_size = isnull ? DCI_DEFAULT_BATCH_SIZE : DatumGetInt32(d);
	d = SPI_getbinval(tup, tt->tupdesc, 28, &isnull);
	src->max_concurrency = isnull ? DCI_DEFAULT_MAX_CONCURRENCY : DatumGetInt32(d);
	s = copy_text(tt, tup, 29);
	src->dialect = s == NULL					 ? DCI_DIALECT_DCI
				   : strcmp(s, "opencrvs") == 0 ? DCI_DIALECT_OPENCRVS
				   : strcmp(s, "openg2p") == 0	 ? DCI_DIALECT_OPENG2P
												 : DCI_DIALECT_DCI;
	src->registry_jwks_url = copy_text(tt, tup, 30);
	if (src->auth_type == DCI_AUTH_OAUTH2 && src->auth_url == NULL)
		damaged_row(tt, tup, 6);
	/* the trigger checked them, unless a superuser wrote around it */
	for (int col = 15; col <= 16; col++)
	{
		const char *path = col == 15 ? src->search_endpoint : src->ping_endpoint;
		const char *problem = dci_path_problem(path, true);

		if (problem != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("data source \"%s\" is damaged: column \"%s\" %s",
							src->code, SPI_fname(tt->tupdesc, col), problem)));
	}

	binding = dci_secret_binding(src->base_url, src->auth_url, location,
								 src->verify_ssl, src->ca_cert);
	src->client_secret = decrypt_column(src, tt, tup, 8, "client_secret", binding);
	src->bearer_token = decrypt_column(src, tt, tup, 11, "bearer_token", binding);
	src->client_key = decrypt_column(src, tt, tup, 21, "client_key", binding);
	src->callback_token = decrypt_column(src, tt, tup, 31, "callback_token", binding);
	src->credential_fingerprint = credential_fingerprint(src);
	if (src->client_cert && src->client_key)
	{
		/*
		 * libcurl reuses a TLS connection when the client certificate
		 * matches, without comparing the key.  A PEM comment line carrying
		 * a digest of the key (text before "-----BEGIN" is ignored by PEM
		 * readers) makes another key another configuration.
		 */
		unsigned char md[SHA256_DIGEST_LENGTH];
		char		  hex[17];

		SHA256((const unsigned char *) src->client_key, strlen(src->client_key), md);
		for (int i = 0; i < 8; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		src->client_cert_tls = psprintf("dci_client key %s\n%s", hex, src->client_cert);
	}

	MemoryContextSwitchTo(old);
	MemoryContextSetParent(cxt, CacheMemoryContext);
	return src;
}

/* load one row by code or id; NULL when there is none */
static DciSource *
load_source(const char *code, int32 id)
{
	DciPrivilegedState priv;
	char			  *query;
	Oid				   argtype = code ? TEXTOID : INT4OID;
	Datum			   arg = code ? CStringGetTextDatum(code) : Int32GetDatum(id);
	DciSource		  *src = NULL;

	cached_table = dci_source_table_oid();
	query = psprintf("SELECT " SOURCE_COLUMNS "%s%s%s%s FROM %s WHERE %s OPERATOR(pg_catalog.=) $1",
					 get_attnum(cached_table, "max_concurrency") != InvalidAttrNumber ? SOURCE_COLUMNS_0_2 : SOURCE_COLUMNS_0_1,
					 get_attnum(cached_table, "dialect") != InvalidAttrNumber ? SOURCE_COLUMNS_DIALECT : SOURCE_COLUMNS_NO_DIALECT,
					 get_attnum(cached_table, "registry_jwks_url") != InvalidAttrNumber ? SOURCE_COLUMNS_JWKS : SOURCE_COLUMNS_NO_JWKS,
					 get_attnum(cached_table, "callback_token_encrypted") != InvalidAttrNumber ? SOURCE_COLUMNS_CALLBACK : SOURCE_COLUMNS_NO_CALLBACK,
					 dci_qualified_table_name(cached_table), code ? "code" : "id");

	/* read as the bootstrap superuser: callers need EXECUTE, not SELECT */
	dci_spi_begin_privileged(&priv);
	if (SPI_execute_with_args(query, 1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", query);
	if (SPI_processed == 1)
		src = build_source(SPI_tuptable, SPI_tuptable->vals[0]);
	dci_spi_end_privileged(&priv);

	if (src != NULL)
	{
		if (nentries == maxentries)
		{
			maxentries = maxentries ? maxentries * 2 : 8;
			entries = entries ? repalloc(entries, maxentries * sizeof(CacheEntry)) : MemoryContextAlloc(CacheMemoryContext, maxentries * sizeof(CacheEntry));
		}
		entries[nentries].source = src;
		/* a secret that did not decrypt may be fixed by a new key file: retry next call */
		entries[nentries].stale = src->secret_error.sqlstate != 0;
		any_stale |= entries[nentries].stale;
		nentries++;
	}
	return src;
}

static void
begin_lookup(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	/* see committed changes of other sessions on the very next call */
	AcceptInvalidationMessages();
	purge_stale();
}

static DciSource *
finish_lookup(DciSource *src, const char *name, bool require_active)
{
	if (src == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("data source \"%s\" does not exist", name)));
	if (require_active && !src->active)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("data source \"%s\" is not active", src->code),
				 errhint("Set active = true, after checking it with dci_test_connection().")));
	return src;
}

static DciSource *
dci_source_by_code(const char *code, bool require_active)
{
	DciSource *src = NULL;

	begin_lookup();
	for (int i = 0; i < nentries; i++)
		if (strcmp(entries[i].source->code, code) == 0)
		{
			src = entries[i].source;
			break;
		}
	if (src == NULL)
		src = load_source(code, 0);
	return finish_lookup(src, code, require_active);
}

DciSource *
dci_source_by_id(int32 id, bool require_active)
{
	DciSource *src = NULL;

	begin_lookup();
	for (int i = 0; i < nentries; i++)
		if (entries[i].source->id == id)
		{
			src = entries[i].source;
			break;
		}
	if (src == NULL)
		src = load_source(NULL, id);
	return finish_lookup(src, psprintf("%d", id), require_active);
}

DciSource *
dci_source_from_arg(FunctionCallInfo fcinfo, bool require_active)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("data source must not be NULL")));
	if (get_fn_expr_argtype(fcinfo->flinfo, 0) == INT4OID)
		return dci_source_by_id(PG_GETARG_INT32(0), require_active);
	return dci_source_by_code(text_to_cstring(PG_GETARG_TEXT_PP(0)), require_active);
}

bool
dci_source_check_complete(const DciSource *src, DciError *err)
{
	if (src->secret_error.sqlstate != 0)
	{
		*err = src->secret_error;
		return false;
	}
	if (src->auth_type == DCI_AUTH_OAUTH2 && (src->client_id == NULL || *src->client_id == '\0'))
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "data source \"%s\" has no client_id", src->code);
		dci_error_hint(err, "auth_type \"oauth2\" needs client_id and client_secret.");
		return false;
	}
	if (src->auth_type == DCI_AUTH_OAUTH2 && src->client_secret == NULL)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "data source \"%s\" has no client_secret", src->code);
		dci_error_hint(err, "auth_type \"oauth2\" needs client_id and client_secret.");
		return false;
	}
	if (src->auth_type == DCI_AUTH_BEARER && src->bearer_token == NULL)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "data source \"%s\" has no bearer_token", src->code);
		dci_error_hint(err, "auth_type \"bearer\" needs bearer_token.");
		return false;
	}
	if ((src->client_cert == NULL) != (src->client_key == NULL))
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "data source \"%s\" has %s without %s", src->code,
					  src->client_cert ? "client_cert" : "client_key",
					  src->client_cert ? "client_key" : "client_cert");
		dci_error_hint(err, "Mutual TLS needs both client_cert and client_key.");
		return false;
	}
	return true;
}

void
dci_source_record_test(int32 id, bool ok, const char *error)
{
	DciPrivilegedState priv;
	char			  *query;
	Oid				   argtypes[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum			   values[3];
	char			   nulls[3] = {' ', error ? ' ' : 'n', ' '};

	/* on a standby or in a read-only transaction the test only reports */
	if (RecoveryInProgress() || XactReadOnly)
		return;

	query = psprintf("UPDATE %s SET state = $1, last_test_at = pg_catalog.clock_timestamp(), last_error = $2 WHERE id OPERATOR(pg_catalog.=) $3",
					 dci_qualified_table_name(dci_source_table_oid()));
	values[0] = CStringGetTextDatum(ok ? "active" : "error");
	values[1] = error ? CStringGetTextDatum(error) : (Datum) 0;
	values[2] = Int32GetDatum(id);

	dci_spi_begin_privileged(&priv);
	if (SPI_execute_with_args(query, 3, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "SPI_execute_with_args failed: %s", query);
	dci_spi_end_privileged(&priv);
}
