/*
 * batch_slots.c
 *		Running batches: one entry per dci_search_batch in progress, with its
 *		envelopes in flight and its items answered, for the slot limit and
 *		the dci_batch_progress view.
 *
 * With the library preloaded the entries are in shared memory (one per
 * backend can run a batch at a time: MaxBackends entries) under one LWLock:
 * a batch takes a slot before each envelope, and the envelopes in flight
 * of all entries of a (database, table, source) never exceed the source's
 * max_concurrency.  A batch with nothing in flight sleeps on a condition
 * variable for a slot; one with envelopes in flight does not wait (its
 * transfers must go on) and, while another batch waits, takes no more, so
 * a waiting batch gets the next free slot.  Entries are freed when the batch
 * ends, raises (batch.c's PG_CATCH) or its backend exits (before_shmem_exit).
 * Without preloading the entries are per backend: limits and progress are
 * this session's.
 */
#include "dci_client.h"

#include <signal.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "batch_slots.h"
#include "catalog.h"

struct DciBatchEntry
{
	int			pid; /* 0: free */
	Oid			dbid;
	Oid			relid;
	int32		source_id;
	int			total;
	int			answered;
	int			failed;
	int			inflight;
	bool		waiting;
	TimestampTz started;
};

typedef struct BatchArea
{
	LWLock			 *lock;
	ConditionVariable cv;
	int				  nentries;
	DciBatchEntry	  entries[FLEXIBLE_ARRAY_MEMBER];
} BatchArea;

#define LOCAL_ENTRIES 4

static BatchArea *shared_area = NULL;
static BatchArea *local_area = NULL;
static bool		  exit_callback_registered = false;

static Size
area_size(int n)
{
	return add_size(offsetof(BatchArea, entries), mul_size(sizeof(DciBatchEntry), n));
}

void
dci_batch_slots_shmem_request(void)
{
	RequestAddinShmemSpace(area_size(MaxBackends));
	RequestNamedLWLockTranche("dci_client batches", 1);
}

void
dci_batch_slots_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared_area = ShmemInitStruct("dci_client batches", area_size(MaxBackends), &found);
	if (!found)
	{
		memset(shared_area, 0, area_size(MaxBackends));
		shared_area->lock = &(GetNamedLWLockTranche("dci_client batches"))->lock;
		ConditionVariableInit(&shared_area->cv);
		shared_area->nentries = MaxBackends;
	}
	LWLockRelease(AddinShmemInitLock);
}

static BatchArea *
area(void)
{
	if (shared_area)
		return shared_area;
	if (local_area == NULL)
		local_area = MemoryContextAllocZero(TopMemoryContext, area_size(LOCAL_ENTRIES));
	local_area->nentries = LOCAL_ENTRIES;
	return local_area;
}

static void
lock(BatchArea *a, LWLockMode mode)
{
	if (a == shared_area)
		LWLockAcquire(a->lock, mode);
}

static void
unlock(BatchArea *a, bool wake)
{
	if (a != shared_area)
		return;
	LWLockRelease(a->lock);
	if (wake)
		ConditionVariableBroadcast(&a->cv);
}

static void
clear_entry(DciBatchEntry *e)
{
	memset(e, 0, sizeof(*e));
}

/* a backend that exits in a batch (FATAL, terminate) frees its entries */
static void
release_own_entries(int code, Datum arg)
{
	BatchArea *a = area();
	bool	   any = false;

	lock(a, LW_EXCLUSIVE);
	for (int i = 0; i < a->nentries; i++)
		if (a->entries[i].pid == MyProcPid)
		{
			clear_entry(&a->entries[i]);
			any = true;
		}
	unlock(a, any);
}

static bool
alive(int pid)
{
	return pid == MyProcPid || kill(pid, 0) == 0 || errno != ESRCH;
}

DciBatchEntry *
dci_batch_begin(Oid relid, int32 source_id, int total)
{
	BatchArea	  *a = area();
	DciBatchEntry *e = NULL;

	if (!exit_callback_registered)
	{
		before_shmem_exit(release_own_entries, (Datum) 0);
		exit_callback_registered = true;
	}
	lock(a, LW_EXCLUSIVE);
	for (int i = 0; i < a->nentries && e == NULL; i++)
		if (a->entries[i].pid == 0 || !alive(a->entries[i].pid))
			e = &a->entries[i];
	if (e)
	{
		clear_entry(e);
		e->pid = MyProcPid;
		e->dbid = MyDatabaseId;
		e->relid = relid;
		e->source_id = source_id;
		e->total = total;
		e->started = GetCurrentTimestamp();
	}
	unlock(a, false);
	return e;
}

/* envelopes in flight of e's source, and whether another batch of it waits; under the lock */
static int
source_inflight(BatchArea *a, const DciBatchEntry *e, bool *other_waits)
{
	int n = 0;

	*other_waits = false;
	for (int i = 0; i < a->nentries; i++)
	{
		DciBatchEntry *o = &a->entries[i];

		if (o->pid == 0 || o->dbid != e->dbid || o->relid != e->relid || o->source_id != e->source_id)
			continue;
		if (o != e && !alive(o->pid))
		{
			clear_entry(o);
			continue;
		}
		n += o->inflight;
		if (o != e && o->waiting)
			*other_waits = true;
	}
	return n;
}

bool
dci_batch_slot_acquire(DciBatchEntry *e, int cap, bool wait)
{
	BatchArea *a = area();
	bool	   slept = false;
	bool	   got = false;

	if (e == NULL)
		return true;
	for (;;)
	{
		bool other_waits;
		int	 n;

		lock(a, LW_EXCLUSIVE);
		n = source_inflight(a, e, &other_waits);
		/* per backend, a batch never asks for more than its own concurrency */
		if (a != shared_area || (n < cap && (wait || !other_waits)))
		{
			e->inflight++;
			e->waiting = false;
			got = true;
		}
		else if (wait)
			e->waiting = true;
		unlock(a, false);
		if (got || !wait)
			break;
		/* woken by a release; at least every 100 ms to notice a backend that died */
		(void) ConditionVariableTimedSleep(&a->cv, 100, PG_WAIT_EXTENSION);
		slept = true;
		CHECK_FOR_INTERRUPTS();
	}
	if (slept)
		ConditionVariableCancelSleep();
	return got;
}

void
dci_batch_slot_release(DciBatchEntry *e)
{
	BatchArea *a = area();

	if (e == NULL)
		return;
	lock(a, LW_EXCLUSIVE);
	if (e->inflight > 0)
		e->inflight--;
	unlock(a, true);
}

void
dci_batch_set_progress(DciBatchEntry *e, int answered, int failed)
{
	BatchArea *a = area();

	if (e == NULL)
		return;
	lock(a, LW_EXCLUSIVE);
	e->answered = answered;
	e->failed = failed;
	unlock(a, false);
}

void
dci_batch_end(DciBatchEntry *e)
{
	BatchArea *a = area();
	bool	   held;

	if (e == NULL)
		return;
	lock(a, LW_EXCLUSIVE);
	held = e->inflight > 0 || e->waiting;
	if (e->pid == MyProcPid)
		clear_entry(e);
	unlock(a, held);
}

PG_FUNCTION_INFO_V1(dci_batch_progress_entries);

/*
 * dci_batch_progress_entries() returns (pid, source_id, items_total,
 * items_answered, items_failed, envelopes_in_flight, waiting_for_slot,
 * started_at, shared) for the batches running in this database.
 */
Datum
dci_batch_progress_entries(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BatchArea	  *a = area();
	Oid			   relid = dci_source_table_oid();
	int			   n = 0;
	DciBatchEntry *copy;

	InitMaterializedSRF(fcinfo, 0);
	copy = palloc(sizeof(DciBatchEntry) * a->nentries);
	lock(a, LW_SHARED);
	for (int i = 0; i < a->nentries; i++)
		if (a->entries[i].pid != 0 && a->entries[i].dbid == MyDatabaseId && a->entries[i].relid == relid)
			copy[n++] = a->entries[i];
	unlock(a, false);
	for (int i = 0; i < n; i++)
	{
		Datum values[9];
		bool  nulls[9] = {false};

		values[0] = Int32GetDatum(copy[i].pid);
		values[1] = Int32GetDatum(copy[i].source_id);
		values[2] = Int32GetDatum(copy[i].total);
		values[3] = Int32GetDatum(copy[i].answered);
		values[4] = Int32GetDatum(copy[i].failed);
		values[5] = Int32GetDatum(copy[i].inflight);
		values[6] = BoolGetDatum(copy[i].waiting);
		values[7] = TimestampTzGetDatum(copy[i].started);
		values[8] = BoolGetDatum(a == shared_area);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	pfree(copy);
	return (Datum) 0;
}
