/*
 * request_log.h
 *		The request log (dci_request_log) and per-source statistics
 *		(dci_source_stats): request_log.c and source_stats.c.
 */
#ifndef DCI_REQUEST_LOG_H
#define DCI_REQUEST_LOG_H

#include "dci_client.h"

/* dci_client.log_requests */
typedef enum DciLogLevel
{
	DCI_LOG_OFF,
	DCI_LOG_ERRORS,
	DCI_LOG_ALL
} DciLogLevel;

extern int	dci_log_requests;
extern int	dci_log_retention_days;

/*
 * One call being recorded.  dci_log_begin() starts it; dci_http_exchange()
 * fills status, bytes and attempts; dci_log_end() or dci_log_failed() (from
 * a PG_CATCH, with the error in flight) writes the record.
 */
extern void dci_log_begin(const DciSource *src, const char *method, const char *path);
extern void dci_log_exchange(long status, size_t bytes, int attempts);
extern void dci_log_end(void);
extern void dci_log_failed(void);
/* a token was fetched for this source (statistics only) */
extern void dci_log_token_fetch(const DciSource *src);

/* shared memory (both files), from dci_client.c's hooks */
extern void dci_request_log_shmem_request(void);
extern void dci_request_log_shmem_startup(void);

/* statistics (source_stats.c) */
extern void dci_stats_shmem_request(void);
extern void dci_stats_shmem_startup(void);
extern void dci_stats_count(Oid dbid, Oid relid, int32 source_id, bool error, double elapsed_ms);
extern void dci_stats_count_token(Oid dbid, Oid relid, int32 source_id);

#endif							/* DCI_REQUEST_LOG_H */
