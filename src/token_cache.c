/*
 * token_cache.c
 *		Access tokens shared by all sessions through shared memory.
 *
 * Only with the library in shared_preload_libraries.  One slot per
 * (database, data source, credential fingerprint).  A session that needs a
 * new token either becomes the one fetcher of its slot or sleeps on a
 * condition variable until the fetch in progress ends (single flight), so
 * eight sessions starting at once on a cold source cause one token request.
 * A slot whose fetcher died is taken over.  The warm path of a call never
 * comes here: each session keeps its own copy (oauth.c) and consults shared
 * memory only when that copy is missing or due for renewal.
 */
#include "dci_client.h"

#include <signal.h>

#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/wait_event.h"

#include "deadline.h"
#include "settings.h"
#include "source.h"
#include "token_cache.h"

typedef struct TokenSlot
{
	bool		used;
	bool		valid; /* token holds a usable value */
	Oid			dbid;
	Oid			relid; /* dci_data_source: ids restart when it is re-created */
	int32		source_id;
	uint64		fingerprint;
	int			fetcher_pid; /* 0: nobody is fetching */
	TimestampTz obtained_at;
	TimestampTz expires_at;
	TimestampTz last_used;
	uint64		generation;
	int			len;
	char		token[DCI_SHARED_TOKEN_MAX];
} TokenSlot;

typedef struct TokenCache
{
	LWLock			 *lock;
	ConditionVariable cv;
	uint64			  next_generation;
	int				  nslots;
	TokenSlot		  slots[FLEXIBLE_ARRAY_MEMBER];
} TokenCache;

static TokenCache *cache = NULL;
static bool		   exit_callback_registered = false;

static Size
cache_size(void)
{
	return add_size(offsetof(TokenCache, slots),
					mul_size(sizeof(TokenSlot), dci_shared_token_slots));
}

void
dci_token_cache_shmem_request(void)
{
	RequestAddinShmemSpace(cache_size());
	RequestNamedLWLockTranche("dci_client", 1);
}

void
dci_token_cache_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	cache = ShmemInitStruct("dci_client token cache", cache_size(), &found);
	if (!found)
	{
		memset(cache, 0, cache_size());
		cache->lock = &(GetNamedLWLockTranche("dci_client"))->lock;
		ConditionVariableInit(&cache->cv);
		cache->next_generation = 1;
		cache->nslots = dci_shared_token_slots;
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
dci_token_cache_enabled(void)
{
	return cache != NULL;
}

/* a fetch whose backend is gone must not block the others forever */
static bool
fetcher_alive(int pid)
{
	return pid != 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* if this backend exits while fetching, let the others go on */
static void
release_own_slots(int code, Datum arg)
{
	bool any = false;

	if (cache == NULL)
		return;
	LWLockAcquire(cache->lock, LW_EXCLUSIVE);
	for (int i = 0; i < cache->nslots; i++)
		if (cache->slots[i].used && cache->slots[i].fetcher_pid == MyProcPid)
		{
			cache->slots[i].fetcher_pid = 0;
			any = true;
		}
	LWLockRelease(cache->lock);
	if (any)
		ConditionVariableBroadcast(&cache->cv);
}

/* the slot of a source in this database; caller holds the lock exclusively */
static TokenSlot *
find_slot(const DciSource *src, bool create)
{
	TokenSlot *victim = NULL;
	int32	   source_id = src->id;
	uint64	   fingerprint = src->credential_fingerprint;

	for (int i = 0; i < cache->nslots; i++)
	{
		TokenSlot *s = &cache->slots[i];

		if (s->used && s->dbid == MyDatabaseId && s->relid == src->table_oid &&
			s->source_id == source_id)
		{
			if (s->fingerprint == fingerprint)
				return s;
			/* credentials changed: the old token is worthless */
			if (!create || fetcher_alive(s->fetcher_pid))
				return NULL;
			victim = s;
			break;
		}
	}
	if (!create)
		return NULL;
	if (victim == NULL)
	{
		for (int i = 0; i < cache->nslots; i++)
		{
			TokenSlot *s = &cache->slots[i];

			if (!s->used)
			{
				victim = s;
				break;
			}
			if (fetcher_alive(s->fetcher_pid))
				continue;
			if (victim == NULL || s->last_used < victim->last_used)
				victim = s;
		}
	}
	if (victim == NULL)
		return NULL;
	explicit_bzero(victim->token, sizeof(victim->token));
	victim->used = true;
	victim->valid = false;
	victim->dbid = MyDatabaseId;
	victim->relid = src->table_oid;
	victim->source_id = source_id;
	victim->fingerprint = fingerprint;
	victim->fetcher_pid = 0;
	victim->len = 0;
	victim->generation = 0;
	return victim;
}

bool
dci_token_usable(TimestampTz obtained_at, TimestampTz expires_at, TimestampTz now, int force)
{
	int64 margin = (int64) dci_token_refresh_margin_s * USECS_PER_SEC;

	if (expires_at <= now)
		return false;
	if (force == DCI_TOKEN_FORCE_ALWAYS)
		return false;
	if (now - obtained_at < (int64) dci_token_min_interval_ms * 1000)
		return true;
	if (force != DCI_TOKEN_CACHED)
		return false;
	margin = Min(margin, (expires_at - obtained_at) / 2);
	return expires_at - margin > now;
}

TokenCacheResult
dci_token_cache_acquire(const DciSource *src, int force,
						TimestampTz deadline, DciSharedToken *out)
{
	bool			 waited = false;
	TokenCacheResult result;

	if (!exit_callback_registered)
	{
		before_shmem_exit(release_own_slots, (Datum) 0);
		exit_callback_registered = true;
	}

	for (;;)
	{
		TokenSlot *s;
		long	   remaining;

		LWLockAcquire(cache->lock, LW_EXCLUSIVE);
		s = find_slot(src, true);
		if (s == NULL)
		{
			LWLockRelease(cache->lock);
			result = TOKEN_CACHE_UNAVAILABLE;
			break;
		}
		/* after waiting for another fetch, its token is as fresh as asked */
		if (s->valid && dci_token_usable(s->obtained_at, s->expires_at, GetCurrentTimestamp(),
										 waited ? DCI_TOKEN_CACHED : force))
		{
			out->token = pnstrdup(s->token, s->len);
			out->obtained_at = s->obtained_at;
			out->expires_at = s->expires_at;
			out->generation = s->generation;
			s->last_used = GetCurrentTimestamp();
			LWLockRelease(cache->lock);
			result = TOKEN_CACHE_HIT;
			break;
		}
		if (s->fetcher_pid == 0 || s->fetcher_pid == MyProcPid || !fetcher_alive(s->fetcher_pid))
		{
			s->fetcher_pid = MyProcPid;
			s->last_used = GetCurrentTimestamp();
			LWLockRelease(cache->lock);
			result = TOKEN_CACHE_FETCH;
			break;
		}
		LWLockRelease(cache->lock);

		remaining = dci_ms_until(deadline);
		if (remaining <= 0)
		{
			result = TOKEN_CACHE_TIMEOUT;
			break;
		}
		/* wake at least every 100 ms to notice a fetcher that died */
		(void) ConditionVariableTimedSleep(&cache->cv, Min(remaining, 100L), PG_WAIT_EXTENSION);
		waited = true;
		CHECK_FOR_INTERRUPTS();
	}
	if (waited)
		ConditionVariableCancelSleep();
	return result;
}

void
dci_token_cache_store(const DciSource *src, const char *token,
					  TimestampTz obtained_at, TimestampTz expires_at, uint64 *generation)
{
	TokenSlot *s;
	size_t	   len = strlen(token);

	LWLockAcquire(cache->lock, LW_EXCLUSIVE);
	*generation = cache->next_generation++;
	s = find_slot(src, false);
	if (s != NULL)
	{
		explicit_bzero(s->token, sizeof(s->token));
		/* a token too long for a slot stays in the session only */
		s->valid = len < DCI_SHARED_TOKEN_MAX;
		if (s->valid)
		{
			memcpy(s->token, token, len);
			s->len = (int) len;
		}
		s->obtained_at = obtained_at;
		s->expires_at = expires_at;
		s->generation = *generation;
		if (s->fetcher_pid == MyProcPid)
			s->fetcher_pid = 0;
	}
	LWLockRelease(cache->lock);
	ConditionVariableBroadcast(&cache->cv);
}

void
dci_token_cache_abandon(const DciSource *src)
{
	TokenSlot *s;

	LWLockAcquire(cache->lock, LW_EXCLUSIVE);
	s = find_slot(src, false);
	if (s != NULL && s->fetcher_pid == MyProcPid)
		s->fetcher_pid = 0;
	LWLockRelease(cache->lock);
	ConditionVariableBroadcast(&cache->cv);
}

void
dci_token_cache_drop(const DciSource *src, uint64 generation)
{
	TokenSlot *s;

	LWLockAcquire(cache->lock, LW_EXCLUSIVE);
	s = find_slot(src, false);
	/* only the token that failed: another session may have renewed it already */
	if (s != NULL && s->valid && s->generation == generation)
	{
		s->valid = false;
		explicit_bzero(s->token, sizeof(s->token));
		s->len = 0;
	}
	LWLockRelease(cache->lock);
}

int
dci_token_cache_list(Oid relid, DciTokenInfo *out, int max)
{
	int n = 0;

	LWLockAcquire(cache->lock, LW_SHARED);
	for (int i = 0; i < cache->nslots && n < max; i++)
	{
		TokenSlot *s = &cache->slots[i];

		if (s->used && s->valid && s->dbid == MyDatabaseId && s->relid == relid)
		{
			out[n].source_id = s->source_id;
			out[n].fingerprint = s->fingerprint;
			out[n].obtained_at = s->obtained_at;
			out[n].expires_at = s->expires_at;
			n++;
		}
	}
	LWLockRelease(cache->lock);
	return n;
}
