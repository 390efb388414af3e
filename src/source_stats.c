/*
 * source_stats.c
 *		Per-source call statistics for dci_source_stats: calls, errors,
 *		token fetches and a latency histogram (p50/p95).
 *
 * In shared memory when the library is preloaded (every session of the
 * cluster counts into it), else per session.  A slot is found once per
 * backend and source and then updated under its own spinlock: a few
 * nanoseconds per call.
 */
#include "dci_client.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "source_stats.h"

#define STATS_SLOTS 256
/* latency buckets: 4 per doubling, from 10 µs up to about 3 hours */
#define LATENCY_BUCKETS 120
#define LATENCY_BASE_MS 0.01

typedef struct StatsSlot
{
	slock_t		mutex;
	Oid			dbid;  /* InvalidOid: free */
	Oid			relid; /* dci_data_source: ids restart when it is re-created */
	int32		source_id;
	int64		calls;
	int64		errors;
	int64		token_fetches;
	int64		items; /* search items carried by batched envelopes */
	TimestampTz last_call;
	int64		latency[LATENCY_BUCKETS];
} StatsSlot;

typedef struct StatsShared
{
	LWLock	 *lock; /* slot allocation only */
	StatsSlot slots[STATS_SLOTS];
} StatsShared;

static StatsShared *stats_shared = NULL;
static StatsShared *stats_local = NULL; /* without preloading */

void
dci_stats_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(StatsShared));
	RequestNamedLWLockTranche("dci_client stats", 1);
}

void
dci_stats_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	stats_shared = ShmemInitStruct("dci_client stats", sizeof(StatsShared), &found);
	if (!found)
	{
		memset(stats_shared, 0, sizeof(StatsShared));
		stats_shared->lock = &(GetNamedLWLockTranche("dci_client stats"))->lock;
		for (int i = 0; i < STATS_SLOTS; i++)
			SpinLockInit(&stats_shared->slots[i].mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

static StatsShared *
stats_area(void)
{
	if (stats_shared)
		return stats_shared;
	if (stats_local == NULL)
	{
		stats_local = MemoryContextAllocZero(TopMemoryContext, sizeof(StatsShared));
		for (int i = 0; i < STATS_SLOTS; i++)
			SpinLockInit(&stats_local->slots[i].mutex);
	}
	return stats_local;
}

/* the slot of (dbid, source_id); remembered per backend */
static StatsSlot *
find_slot(Oid dbid, Oid relid, int32 source_id)
{
	static int32	  last_source = -1;
	static Oid		  last_db = InvalidOid;
	static Oid		  last_relid = InvalidOid;
	static StatsSlot *last_slot = NULL;
	StatsShared		 *area = stats_area();
	StatsSlot		 *slot = NULL;

	if (last_slot && last_source == source_id && last_db == dbid && last_relid == relid &&
		last_slot->dbid == dbid && last_slot->relid == relid && last_slot->source_id == source_id)
		return last_slot;

	if (area == stats_shared)
		LWLockAcquire(area->lock, LW_EXCLUSIVE);
	for (int i = 0; i < STATS_SLOTS && slot == NULL; i++)
		if (area->slots[i].dbid == dbid && area->slots[i].relid == relid &&
			area->slots[i].source_id == source_id)
			slot = &area->slots[i];
	for (int i = 0; i < STATS_SLOTS && slot == NULL; i++)
		if (area->slots[i].dbid == InvalidOid)
		{
			slot = &area->slots[i];
			SpinLockAcquire(&slot->mutex);
			slot->dbid = dbid;
			slot->relid = relid;
			slot->source_id = source_id;
			slot->calls = slot->errors = slot->token_fetches = slot->items = 0;
			slot->last_call = 0;
			memset(slot->latency, 0, sizeof(slot->latency));
			SpinLockRelease(&slot->mutex);
		}
	if (area == stats_shared)
		LWLockRelease(area->lock);

	last_source = source_id;
	last_db = dbid;
	last_relid = relid;
	last_slot = slot;
	return slot;
}

static int
latency_bucket(double ms)
{
	int b;

	if (ms <= LATENCY_BASE_MS)
		return 0;
	b = (int) (4.0 * log2(ms / LATENCY_BASE_MS));
	return Min(Max(b, 0), LATENCY_BUCKETS - 1);
}

/* the upper bound of a bucket, in ms */
static double
bucket_ms(int b)
{
	return LATENCY_BASE_MS * pow(2.0, (b + 1) / 4.0);
}

void
dci_stats_count(Oid dbid, Oid relid, int32 source_id, bool error, double elapsed_ms)
{
	StatsSlot *slot = find_slot(dbid, relid, source_id);

	if (slot == NULL)
		return; /* more sources than slots: not counted */
	SpinLockAcquire(&slot->mutex);
	slot->calls++;
	if (error)
		slot->errors++;
	slot->latency[latency_bucket(elapsed_ms)]++;
	slot->last_call = GetCurrentTimestamp();
	SpinLockRelease(&slot->mutex);
}

void
dci_stats_count_token(Oid dbid, Oid relid, int32 source_id)
{
	StatsSlot *slot = find_slot(dbid, relid, source_id);

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->token_fetches++;
	SpinLockRelease(&slot->mutex);
}

void
dci_stats_count_items(Oid dbid, Oid relid, int32 source_id, int items)
{
	StatsSlot *slot = find_slot(dbid, relid, source_id);

	if (slot == NULL)
		return;
	SpinLockAcquire(&slot->mutex);
	slot->items += items;
	SpinLockRelease(&slot->mutex);
}

static double
percentile(const int64 *hist, int64 total, double p)
{
	int64 want = (int64) ceil(total * p);
	int64 seen = 0;

	if (total == 0)
		return 0;
	for (int b = 0; b < LATENCY_BUCKETS; b++)
	{
		seen += hist[b];
		if (seen >= want)
			return bucket_ms(b);
	}
	return bucket_ms(LATENCY_BUCKETS - 1);
}

PG_FUNCTION_INFO_V1(dci_source_stats_entries);

/*
 * dci_source_stats_entries() returns (source_id, calls, errors,
 * token_fetches, p50_ms, p95_ms, last_call_at, shared) for this database.
 */
Datum
dci_source_stats_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StatsShared	  *area = stats_area();
	Oid			   relid = dci_source_table_oid();

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < STATS_SLOTS; i++)
	{
		StatsSlot  copy;
		StatsSlot *slot = &area->slots[i];
		Datum	   values[8];
		bool	   nulls[8] = {false};

		SpinLockAcquire(&slot->mutex);
		memcpy(&copy, slot, sizeof(StatsSlot));
		SpinLockRelease(&slot->mutex);
		if (copy.dbid != MyDatabaseId || copy.relid != relid)
			continue;
		values[0] = Int32GetDatum(copy.source_id);
		values[1] = Int64GetDatum(copy.calls);
		values[2] = Int64GetDatum(copy.errors);
		values[3] = Int64GetDatum(copy.token_fetches);
		values[4] = Float8GetDatum(percentile(copy.latency, copy.calls, 0.50));
		values[5] = Float8GetDatum(percentile(copy.latency, copy.calls, 0.95));
		values[6] = TimestampTzGetDatum(copy.last_call);
		nulls[4] = nulls[5] = copy.calls == 0;
		nulls[6] = copy.last_call == 0;
		values[7] = BoolGetDatum(area == stats_shared);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dci_source_stats_items);

/*
 * dci_source_stats_items() returns (source_id, items) for this database:
 * the items of batched envelopes (dci_search_batch), the view's last column.
 */
Datum
dci_source_stats_items(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StatsShared	  *area = stats_area();
	Oid			   relid = dci_source_table_oid();

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < STATS_SLOTS; i++)
	{
		StatsSlot *slot = &area->slots[i];
		Oid		   dbid;
		Oid		   srelid;
		Datum	   values[2];
		bool	   nulls[2] = {false};

		SpinLockAcquire(&slot->mutex);
		dbid = slot->dbid;
		srelid = slot->relid;
		values[0] = Int32GetDatum(slot->source_id);
		values[1] = Int64GetDatum(slot->items);
		SpinLockRelease(&slot->mutex);
		if (dbid != MyDatabaseId || srelid != relid)
			continue;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
