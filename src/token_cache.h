/*
 * token_cache.h
 *		The shared-memory token cache (token_cache.c), used by oauth.c.
 */
#ifndef DCI_TOKEN_CACHE_H
#define DCI_TOKEN_CACHE_H

#include "dci_client.h"
#include "source.h"
#include "utils/timestamp.h"

/* how fresh a token must be (dci_token_get, dci_token_usable) */
#define DCI_TOKEN_CACHED	   0 /* a cached token while it is fresh */
#define DCI_TOKEN_FORCE		   1 /* a new one, unless the cached one is younger than token_min_interval_ms */
#define DCI_TOKEN_FORCE_ALWAYS 2 /* a new one (superusers) */

/* longest token kept in shared memory; longer ones stay per session */
#define DCI_SHARED_TOKEN_MAX 8192

typedef struct DciSharedToken
{
	char	   *token; /* palloc'd */
	TimestampTz obtained_at;
	TimestampTz expires_at;
	uint64		generation;
} DciSharedToken;

typedef struct DciTokenInfo
{
	int32		source_id;
	uint64		fingerprint;
	TimestampTz obtained_at;
	TimestampTz expires_at;
} DciTokenInfo;

typedef enum TokenCacheResult
{
	TOKEN_CACHE_HIT,		 /* *out holds a token valid past valid_until */
	TOKEN_CACHE_FETCH,		 /* the caller is the fetcher: store or abandon */
	TOKEN_CACHE_UNAVAILABLE, /* no slot: fetch without coordination */
	TOKEN_CACHE_TIMEOUT		 /* deadline passed waiting for another fetch */
} TokenCacheResult;

/* shmem hooks (called from dci_client.c) */
extern void dci_token_cache_shmem_request(void);
extern void dci_token_cache_shmem_startup(void);
/* true when shared memory is set up (library preloaded) */
extern bool dci_token_cache_enabled(void);

/*
 * May a token obtained and expiring at these times be used now?  It is
 * renewed token_refresh_margin_s before it expires, but never while more
 * than half its life is left (whatever margin a session sets), and never
 * when younger than token_min_interval_ms unless force is
 * DCI_TOKEN_FORCE_ALWAYS: no caller can make the extension flood a token
 * endpoint.  force (DCI_TOKEN_*): renewal asked for.
 */
extern bool dci_token_usable(TimestampTz obtained_at, TimestampTz expires_at, TimestampTz now,
							 int force);

/*
 * A usable token for the source, or the right to fetch one.  Waits while
 * another backend fetches, up to deadline; the token it fetched is then
 * taken whatever force says.
 */
extern TokenCacheResult dci_token_cache_acquire(const DciSource *src, int force,
												TimestampTz deadline, DciSharedToken *out);
/* the fetcher's result; wakes the waiters; *generation identifies it */
extern void dci_token_cache_store(const DciSource *src, const char *token,
								  TimestampTz obtained_at, TimestampTz expires_at,
								  uint64 *generation);
/* the fetcher failed: wake the waiters, one of them tries next */
extern void dci_token_cache_abandon(const DciSource *src);
/* forget the token of this generation (it was refused with 401) */
extern void dci_token_cache_drop(const DciSource *src, uint64 generation);
/* valid tokens of this database's dci_data_source (relid), for dci_token_status */
extern int dci_token_cache_list(Oid relid, DciTokenInfo *out, int max);

#endif /* DCI_TOKEN_CACHE_H */
