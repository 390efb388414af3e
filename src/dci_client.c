/*
 * dci_client.c
 *		The module's entry: _PG_init defines the settings (settings.c),
 *		initialises libcurl and, when preloaded, wires the shared-memory
 *		hooks of the token cache, the request log, the statistics, the
 *		running batches and the transaction writers (txn_record.c).
 */
#include "dci_client.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "storage/ipc.h"

#include "batch_slots.h"
#include "dci_client.h"
#include "request_log.h"
#include "secrets.h"
#include "settings.h"
#include "source_stats.h"
#include "token_cache.h"
#include "txn_record.h"

PG_MODULE_MAGIC;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void _PG_init(void);

static void
dci_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	dci_token_cache_shmem_request();
	dci_request_log_shmem_request();
	dci_stats_shmem_request();
	dci_batch_slots_shmem_request();
	dci_txn_record_shmem_request();
}

static void
dci_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	dci_token_cache_shmem_startup();
	dci_request_log_shmem_startup();
	dci_stats_shmem_startup();
	dci_batch_slots_shmem_startup();
	dci_txn_record_shmem_startup();
}

void
_PG_init(void)
{
	/*
	 * libcurl's global init is not thread-safe and must precede any handle;
	 * doing it at load time keeps it out of the call path.
	 */
	if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialize libcurl")));

	dci_define_settings();

	if (process_shared_preload_libraries_in_progress)
	{
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = dci_shmem_request;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = dci_shmem_startup;
		dci_secrets_preload();
	}
}
