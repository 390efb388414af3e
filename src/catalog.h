/*
 * catalog.h
 *		Where the extension's objects are (by OID, never by a name another
 *		role could redirect) and the SPI every module runs its SQL with
 *		(catalog.c).
 */
#ifndef DCI_CATALOG_H
#define DCI_CATALOG_H

#include "postgres.h"

/* the extension's schema (from pg_extension); InvalidOid if missing_ok and not installed */
extern Oid dci_extension_schema(bool missing_ok);
/* forget the cached OIDs (the request-log writer, before each batch) */
extern void dci_catalog_forget(void);
/* dci_data_source / dci_signing_key (they change when the extension is re-created) */
extern Oid dci_source_table_oid(void);
extern Oid dci_signing_key_table_oid(void);
/*
 * A background worker's connection to its database, as the bootstrap
 * superuser with search_path pinned: nothing from a user's schema resolves
 * in what it runs.
 */
extern void dci_bgworker_connect(Oid dbid);
/* "schema"."table" for SQL text (DC001 when the table is gone) */
extern char *dci_qualified_table_name(Oid table_oid);

/* SPI as the caller, search_path pinned to pg_catalog, pg_temp */
typedef struct DciPinnedState
{
	int nestlevel;
} DciPinnedState;
extern void dci_spi_begin_pinned(DciPinnedState *state);
extern void dci_spi_end_pinned(DciPinnedState *state);

/* SPI as the bootstrap superuser, restricted, search_path pinned */
typedef struct DciPrivilegedState
{
	Oid			   save_userid;
	int			   save_sec_context;
	DciPinnedState pinned;
} DciPrivilegedState;
extern void dci_spi_begin_privileged(DciPrivilegedState *state);
extern void dci_spi_end_privileged(DciPrivilegedState *state);

#endif /* DCI_CATALOG_H */
