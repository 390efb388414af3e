/*
 * source_stats.h
 *		Per-source call statistics, dci_source_stats (source_stats.c).
 */
#ifndef DCI_SOURCE_STATS_H
#define DCI_SOURCE_STATS_H

#include "postgres.h"

/* shared memory, from dci_client.c's hooks */
extern void dci_stats_shmem_request(void);
extern void dci_stats_shmem_startup(void);

/* one call of a source ended; a token was fetched for it */
extern void dci_stats_count(Oid dbid, Oid relid, int32 source_id, bool error, double elapsed_ms);
extern void dci_stats_count_token(Oid dbid, Oid relid, int32 source_id);
/* a batched envelope carried this many search items */
extern void dci_stats_count_items(Oid dbid, Oid relid, int32 source_id, int items);

#endif /* DCI_SOURCE_STATS_H */
