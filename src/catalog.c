/*
 * catalog.c
 *		Where the extension's objects are, and the privileged SPI that every
 *		module runs its SQL with.
 *
 * Nothing is resolved by name at call time in a way a role other than a
 * superuser could redirect: the schema is the extension's own (pg_extension,
 * which only superusers write), the tables are found in it by OID and named
 * schema-qualified in SQL text, and SPI runs with search_path pinned to
 * pg_catalog, pg_temp.  The OIDs are cached until the table changes.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "postmaster/bgworker.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "dci_client.h"

#include "catalog.h"

static Oid	schema_oid = InvalidOid;
static Oid	source_table = InvalidOid;
static Oid	signing_key_table = InvalidOid;
static bool callback_registered = false;

/* a re-created extension lives elsewhere: forget every OID */
static void
catalog_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == source_table || relid == signing_key_table)
	{
		schema_oid = InvalidOid;
		source_table = InvalidOid;
		signing_key_table = InvalidOid;
	}
}

/* pg_extension.extnamespace (PostgreSQL 15 does not export get_extension_schema) */
static Oid
extension_namespace(Oid ext)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

void
dci_catalog_forget(void)
{
	schema_oid = InvalidOid;
	source_table = InvalidOid;
	signing_key_table = InvalidOid;
}

Oid
dci_extension_schema(bool missing_ok)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(catalog_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (!OidIsValid(schema_oid))
	{
		Oid ext = get_extension_oid("dci_client", true);

		if (!OidIsValid(ext) && missing_ok)
			return InvalidOid;
		if (!OidIsValid(ext))
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("extension dci_client is not installed in this database")));
		schema_oid = extension_namespace(ext);
	}
	return schema_oid;
}

static Oid
table_in_schema(Oid *cache, const char *name)
{
	if (!OidIsValid(*cache))
	{
		*cache = get_relname_relid(name, dci_extension_schema(false));
		if (!OidIsValid(*cache))
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("table %s of extension dci_client is missing", name)));
	}
	return *cache;
}

Oid
dci_source_table_oid(void)
{
	return table_in_schema(&source_table, "dci_data_source");
}

Oid
dci_signing_key_table_oid(void)
{
	return table_in_schema(&signing_key_table, "dci_signing_key");
}

char *
dci_qualified_table_name(Oid table_oid)
{
	char *name = get_rel_name(table_oid);
	char *schema = name ? get_namespace_name(get_rel_namespace(table_oid)) : NULL;

	if (name == NULL || schema == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("a table of extension dci_client is missing"),
				 errhint("The extension may have been dropped meanwhile.")));
	return quote_qualified_identifier(schema, name);
}

void
dci_spi_begin_pinned(DciPinnedState *state)
{
	state->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void
dci_spi_end_pinned(DciPinnedState *state)
{
	SPI_finish();
	AtEOXact_GUC(true, state->nestlevel);
}

/*
 * Run SPI as the bootstrap superuser, restricted, with search_path pinned:
 * callers need EXECUTE only, and nothing a user put in their search_path can
 * stand in for an operator or function we use.
 */
void
dci_spi_begin_privileged(DciPrivilegedState *state)
{
	GetUserIdAndSecContext(&state->save_userid, &state->save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   state->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
	dci_spi_begin_pinned(&state->pinned);
}

void
dci_spi_end_privileged(DciPrivilegedState *state)
{
	dci_spi_end_pinned(&state->pinned);
	SetUserIdAndSecContext(state->save_userid, state->save_sec_context);
}

void
dci_bgworker_connect(Oid dbid)
{
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
}
