/*
 * txn_record.c
 *		The autonomous write of dci_transaction.
 *
 * A callback may arrive before the sender's transaction commits, and the
 * sender may roll back after the request went out: the row that lets
 * dci_receive recognise the transaction must be committed on its own,
 * before the request is sent.  Each asynchronous call starts a dynamic
 * background worker and hands it the row in a dynamic shared memory
 * segment; the worker inserts and commits it and says so, and only then is
 * the request sent.  The outcome (ACK or failure) is recorded by a second,
 * fire-and-forget worker that moves the row from 'sent' only, so a state a
 * callback set first stays; the sender does not wait for it, and with no
 * worker slot free the row stays 'sent' (a callback still completes it).
 * Each worker holds its slot for one short transaction; when every slot is
 * taken the sender waits for one (interruptibly, at most TXN_SLOT_WAIT_MS).
 * That is the path without shared_preload_libraries.  Preloaded, a
 * persistent writer per database does the same work for every sender of
 * its database, many rows in one transaction (see "the persistent writer"
 * below); beyond its bounds a request falls back to a worker of its own.
 * Every writer runs as the
 * bootstrap superuser with search_path pinned, the table found by OID in the
 * extension's schema.
 */
#include "dci_client.h"

#include <signal.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "errors.h"
#include "txn_record.h"

#define TXN_FIELD_MAX 128
#define TXN_SLOT_WAIT_MS 10000
#define TXN_FILTER_MAX 16384
/* the outcome worker tries a row locked by a callback this often, this far apart */
#define TXN_OUTCOME_TRIES 20
#define TXN_OUTCOME_PAUSE_MS 100

typedef enum TxnPhase
{
	TXN_STARTING = 0,
	TXN_COMMITTED,
	TXN_DUPLICATE,
	TXN_ERROR
} TxnPhase;

typedef struct TxnShared
{
	slock_t		mutex;
	Oid			dbid;
	Latch	   *sender_latch;
	int			phase;		/* TxnPhase, set by the worker */
	int64		row_id;		/* the row written, set by the worker */
	int32		source_id;
	char		transaction_id[TXN_FIELD_MAX];
	char		action[32];
	char		message_id[TXN_FIELD_MAX];
	char		endpoint[256];
	bool		subscription;
	char		sub_event[256];
	char		sub_filter[TXN_FILTER_MAX];
	char		error[256];
} TxnShared;

struct DciTxnRecord
{
	int64		row_id;
	bool		done;
};

/* what an outcome worker gets in bgw_extra (the row id is its main argument) */
typedef struct TxnOutcome
{
	Oid			dbid;
	bool		acked;
} TxnOutcome;

void		dci_txn_worker_main(Datum arg);

static int	group_write(const TxnShared *req, int64 *row_id, char *error, size_t errlen);
static bool group_outcome(int64 row_id, bool acked);

/* fill the request: the same fields whichever writer takes it */
static void
fill_request(TxnShared *sh, DciSource *src, const char *txn, const char *action,
			 const char *message_id, const char *endpoint,
			 const char *sub_event, const char *sub_filter)
{
	memset(sh, 0, sizeof(TxnShared));
	SpinLockInit(&sh->mutex);
	sh->dbid = MyDatabaseId;
	sh->sender_latch = MyLatch;
	sh->source_id = src->id;
	strlcpy(sh->transaction_id, txn, sizeof(sh->transaction_id));
	strlcpy(sh->action, action, sizeof(sh->action));
	strlcpy(sh->message_id, message_id, sizeof(sh->message_id));
	strlcpy(sh->endpoint, endpoint, sizeof(sh->endpoint));
	if (sub_event)
	{
		sh->subscription = true;
		strlcpy(sh->sub_event, sub_event, sizeof(sh->sub_event));
		strlcpy(sh->sub_filter, sub_filter ? sub_filter : "null", sizeof(sh->sub_filter));
	}
}

/* a worker for this one request (not preloaded, or no writer for this database) */
static int
percall_write(const TxnShared *req, int64 *row_id, char *error, size_t errlen)
{
	dsm_segment *seg;
	TxnShared  *sh;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	int			phase;
	TimestampTz give_up;

	seg = dsm_create(sizeof(TxnShared), 0);
	sh = dsm_segment_address(seg);
	memcpy(sh, req, sizeof(TxnShared));
	SpinLockInit(&sh->mutex);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "dci_client", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dci_txn_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dci_client transaction writer for PID %d", MyProcPid);
	strlcpy(worker.bgw_type, "dci_client transaction writer", BGW_MAXLEN);
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	memcpy(worker.bgw_extra, &sh->dbid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;
	/* every slot taken (parallel queries, other writers): wait for one */
	give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TXN_SLOT_WAIT_MS);
	while (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		if (GetCurrentTimestamp() >= give_up)
		{
			dsm_detach(seg);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not start the writer of dci_transaction: nothing was sent"),
					 errdetail("No background worker slot came free in %d ms.", TXN_SLOT_WAIT_MS),
					 errhint("Raise max_worker_processes.")));
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/* wait until the row is committed, or the worker gave up */
	for (;;)
	{
		pid_t		pid;
		BgwHandleStatus st;

		SpinLockAcquire(&sh->mutex);
		phase = sh->phase;
		SpinLockRelease(&sh->mutex);
		if (phase != TXN_STARTING)
			break;
		st = GetBackgroundWorkerPid(handle, &pid);
		if (st == BGWH_STOPPED || st == BGWH_POSTMASTER_DIED)
		{
			/* it may have finished between the two reads */
			SpinLockAcquire(&sh->mutex);
			phase = sh->phase;
			SpinLockRelease(&sh->mutex);
			if (phase == TXN_STARTING)
				phase = TXN_ERROR;
			break;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* a cancel here: the row may still be committed, as 'sent' (never sent) */
		CHECK_FOR_INTERRUPTS();
	}
	*row_id = sh->row_id;
	strlcpy(error, sh->error, errlen);
	dsm_detach(seg);
	return phase;
}

DciTxnRecord *
dci_txn_record_begin(DciSource *src, const char *txn, const char *action,
					 const char *message_id, const char *endpoint,
					 const char *sub_event, const char *sub_filter)
{
	DciTxnRecord *rec;
	TxnShared  *req;
	MemoryContext old;
	int			phase;
	int64		row_id = 0;
	char		error[256] = "";

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot send an asynchronous request during recovery"),
				 errdetail("Its transaction could not be recorded in dci_transaction, so its callback would be refused.")));
	if (strlen(txn) >= TXN_FIELD_MAX || (sub_filter && strlen(sub_filter) >= TXN_FILTER_MAX) ||
		(sub_event && strlen(sub_event) >= sizeof(((TxnShared *) NULL)->sub_event)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id, reg_event_type or filter is too long to record")));

	old = MemoryContextSwitchTo(TopTransactionContext);
	rec = palloc0(sizeof(DciTxnRecord));
	MemoryContextSwitchTo(old);
	req = palloc(sizeof(TxnShared));
	fill_request(req, src, txn, action, message_id, endpoint, sub_event, sub_filter);

	phase = group_write(req, &row_id, error, sizeof(error));
	if (phase < 0)
		phase = percall_write(req, &row_id, error, sizeof(error));
	pfree(req);
	rec->row_id = row_id;
	if (phase == TXN_DUPLICATE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id \"%s\" was already used with data source \"%s\"",
						dci_quote_text(txn, strlen(txn)), src->code),
				 errhint("Give each asynchronous request its own transaction_id, or none for a fresh UUID.")));
	if (phase != TXN_COMMITTED)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("could not record the transaction in dci_transaction: nothing was sent"),
				 errdetail("%s", error[0] ? error : "the writer stopped")));
	return rec;
}

static void
percall_outcome(int64 row_id, bool acked)
{
	BackgroundWorker worker;
	TxnOutcome	o;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "dci_client", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dci_txn_outcome_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dci_client transaction outcome writer for PID %d", MyProcPid);
	strlcpy(worker.bgw_type, "dci_client transaction writer", BGW_MAXLEN);
	worker.bgw_main_arg = Int64GetDatum(row_id);
	o.dbid = MyDatabaseId;
	o.acked = acked;
	memcpy(worker.bgw_extra, &o, sizeof(o));
	worker.bgw_notify_pid = 0;
	/* no slot: the row stays 'sent', which a callback still completes */
	if (!RegisterDynamicBackgroundWorker(&worker, NULL))
		elog(DEBUG1, "dci_client: no worker slot to record the outcome of dci_transaction row " INT64_FORMAT,
			 row_id);
}

void
dci_txn_record_end(DciTxnRecord *rec, bool acked)
{
	if (rec == NULL || rec->done)
		return;
	rec->done = true;
	if (!group_outcome(rec->row_id, acked))
		percall_outcome(rec->row_id, acked);
}

/* ---- the worker ---- */

static volatile sig_atomic_t txn_got_sigterm = false;

static void
txn_worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	txn_got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static char *
txn_table(const char *name)
{
	Oid			nsp;
	Oid			rel;

	dci_catalog_forget();
	nsp = dci_extension_schema(true);
	rel = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
	if (!OidIsValid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("dci_client has no table %s in this database (run ALTER EXTENSION dci_client UPDATE)", name)));
	return dci_qualified_table_name(rel);
}

static void
begin_xact(const char *what)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, what);
}

static void
end_xact(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * The writer's statements, prepared once and kept: the plan cache re-plans
 * them when the tables change.  A statement is prepared again when its
 * table's qualified name changes (the extension's schema renamed, moved).
 */
typedef struct GroupPlan
{
	SPIPlanPtr	plan;
	char	   *table;			/* in TopMemoryContext */
} GroupPlan;

static GroupPlan plan_insert, plan_subscription, plan_outcome, plan_still_sent;

static SPIPlanPtr
group_plan(GroupPlan *gp, const char *table, const char *sql, int nargs, Oid *types)
{
	if (gp->plan != NULL && strcmp(gp->table, table) == 0)
		return gp->plan;
	if (gp->plan != NULL)
	{
		SPI_freeplan(gp->plan);
		pfree(gp->table);
		gp->plan = NULL;
	}
	gp->plan = SPI_prepare(sql, nargs, types);
	if (gp->plan == NULL || SPI_keepplan(gp->plan) != 0)
		elog(ERROR, "could not prepare a statement on %s", table);
	gp->table = MemoryContextStrdup(TopMemoryContext, table);
	return gp->plan;
}

/* the tables of one group, found once (dci_subscription only when needed) */
typedef struct GroupTables
{
	char	   *txn;
	char	   *subscription;
} GroupTables;

/* insert the row(s); returns the row id, 0 for a duplicate transaction_id */
static int64
insert_row(TxnShared *sh, GroupTables *gt)
{
	Oid			types[5] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		v[5];
	int64		id = 0;
	bool		isnull;
	SPIPlanPtr	plan;

	plan = group_plan(&plan_insert, gt->txn,
					  psprintf("INSERT INTO %s (source_id, transaction_id, action, message_id, endpoint) "
							   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source_id, transaction_id) DO NOTHING RETURNING id",
							   gt->txn), 5, types);
	v[0] = Int32GetDatum(sh->source_id);
	v[1] = CStringGetTextDatum(sh->transaction_id);
	v[2] = CStringGetTextDatum(sh->action);
	v[3] = CStringGetTextDatum(sh->message_id);
	v[4] = CStringGetTextDatum(sh->endpoint);
	if (SPI_execute_plan(plan, v, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert into dci_transaction");
	if (SPI_processed == 1)
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (id != 0 && sh->subscription)
	{
		Oid			stypes[4] = {INT4OID, TEXTOID, TEXTOID, TEXTOID};
		Datum		sv[4];

		if (gt->subscription == NULL)
			gt->subscription = txn_table("dci_subscription");
		plan = group_plan(&plan_subscription, gt->subscription,
						  psprintf("INSERT INTO %s (source_id, reg_event_type, filter, state, transaction_id) "
								   "VALUES ($1, $2, $3::pg_catalog.jsonb, 'requested', $4)",
								   gt->subscription), 4, stypes);
		sv[0] = Int32GetDatum(sh->source_id);
		sv[1] = CStringGetTextDatum(sh->sub_event);
		sv[2] = CStringGetTextDatum(sh->sub_filter);
		sv[3] = CStringGetTextDatum(sh->transaction_id);
		if (SPI_execute_plan(plan, sv, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into dci_subscription");
	}
	return id;
}

/* one outcome: 1 moved or no longer 'sent' (done), 0 locked by a callback (try again) */
static int
write_outcome(int64 row_id, bool acked, GroupTables *gt)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];
	SPIPlanPtr	plan;
	const char *t = gt->txn;

	v[0] = CStringGetTextDatum(acked ? "acked" : "failed");
	v[1] = Int64GetDatum(row_id);
	/* skip a row a callback's open transaction holds: a writer waiting behind it would hold up every other */
	plan = group_plan(&plan_outcome, t,
					  psprintf("UPDATE %s SET state = $1 WHERE id OPERATOR(pg_catalog.=) ("
							   "SELECT id FROM %s WHERE id OPERATOR(pg_catalog.=) $2 "
							   "AND state OPERATOR(pg_catalog.=) 'sent' FOR UPDATE SKIP LOCKED)", t, t),
					  2, types);
	if (SPI_execute_plan(plan, v, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update dci_transaction");
	if (SPI_processed > 0)
		return 1;
	plan = group_plan(&plan_still_sent, t,
					  psprintf("SELECT 1 FROM %s WHERE id OPERATOR(pg_catalog.=) $1 "
							   "AND state OPERATOR(pg_catalog.=) 'sent'", t),
					  1, types + 1);
	if (SPI_execute_plan(plan, v + 1, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read dci_transaction");
	return SPI_processed > 0 ? 0 : 1;
}

void
dci_txn_worker_main(Datum arg)
{
	dsm_segment *seg;
	TxnShared  *sh;
	Oid			dbid;
	int64		id = 0;

	pqsignal(SIGTERM, txn_worker_sigterm);
	BackgroundWorkerUnblockSignals();
	memcpy(&dbid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "dci_client transaction writer");
	seg = dsm_attach(DatumGetUInt32(arg));
	if (seg == NULL)
		proc_exit(0);			/* the sender gave up before we came up */
	dsm_pin_mapping(seg);
	sh = dsm_segment_address(seg);
	dci_bgworker_connect(dbid);

	PG_TRY();
	{
		GroupTables gt = {0};

		begin_xact("recording a dci_client transaction");
		gt.txn = txn_table("dci_transaction");
		id = insert_row(sh, &gt);
		end_xact();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		SpinLockAcquire(&sh->mutex);
		strlcpy(sh->error, edata->message ? edata->message : "error", sizeof(sh->error));
		sh->phase = TXN_ERROR;
		SpinLockRelease(&sh->mutex);
		SetLatch(sh->sender_latch);
		PG_RE_THROW();
	}
	PG_END_TRY();

	SpinLockAcquire(&sh->mutex);
	sh->row_id = id;
	sh->phase = id != 0 ? TXN_COMMITTED : TXN_DUPLICATE;
	SpinLockRelease(&sh->mutex);
	SetLatch(sh->sender_latch);
	proc_exit(0);
}

void		dci_txn_outcome_main(Datum arg);

/* the sender's outcome: acked or failed, from 'sent' only (a callback may have been first) */
void
dci_txn_outcome_main(Datum arg)
{
	TxnOutcome	o;

	pqsignal(SIGTERM, txn_worker_sigterm);
	BackgroundWorkerUnblockSignals();
	memcpy(&o, MyBgworkerEntry->bgw_extra, sizeof(o));
	dci_bgworker_connect(o.dbid);
	/*
	 * Waiting for nobody: a callback's transaction still open (its HTTP
	 * request still being processed) holds the row, and a worker waiting
	 * behind it would hold its slot as long.  Locked rows are skipped and
	 * tried again for a short while; then the row stays 'sent' (the
	 * callback moves it on anyway).
	 */
	for (int attempt = 0; attempt < TXN_OUTCOME_TRIES && !txn_got_sigterm; attempt++)
	{
		GroupTables gt = {0};
		int			done;

		begin_xact("recording a dci_client transaction's acknowledgement");
		gt.txn = txn_table("dci_transaction");
		done = write_outcome(DatumGetInt64(arg), o.acked, &gt);
		end_xact();
		if (done)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, TXN_OUTCOME_PAUSE_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(0);
}

/* ---- the persistent writer of a database (preloaded) ---- */

/*
 * With the library preloaded, a sender puts its request into a slot of a
 * shared-memory queue and waits on its latch; one writer per database takes
 * every pending request of its database and writes them in one transaction
 * (a subtransaction per request, so one refused row fails no other), then
 * sets the senders' latches.  Outcomes go through the same queue, nobody
 * waiting for them.  An idle writer leaves after TXN_IDLE_EXIT_MS, so it
 * never holds up DROP DATABASE (which waits 5 s for other sessions).  With
 * no writer slot for the database, or a writer that does not come up, the
 * request goes to a worker of its own as without preloading.
 */
#define TXN_QUEUE_SLOTS 64
#define TXN_WRITERS 8
#define TXN_IDLE_EXIT_MS 1000
/* a writer asked for and not up yet is asked for again after this long */
#define TXN_START_RETRY_MS 1000
/* a request no writer took in this long goes to a worker of its own */
#define TXN_START_WAIT_MS 5000
/* a request taken and not written in this long: the sender gives up (nothing sent) */
#define TXN_WRITE_WAIT_MS 30000

typedef enum TxnItemState
{
	ITEM_FREE = 0,
	ITEM_PENDING,				/* queued, not taken */
	ITEM_TAKEN,					/* the writer is writing it */
	ITEM_DONE,					/* written: phase, row_id, error set */
	ITEM_ABANDONED				/* taken, its sender gone: the writer frees it */
} TxnItemState;

typedef struct TxnItem
{
	int			state;			/* TxnItemState */
	bool		outcome;		/* an outcome record: req.row_id, acked */
	bool		acked;
	int			tries;
	TimestampTz queued_at;
	TimestampTz not_before;		/* an outcome whose row was locked: try again then */
	TxnShared	req;			/* its mutex is unused here: the queue's lock covers it */
} TxnItem;

typedef struct TxnWriterSlot
{
	Oid			dbid;			/* InvalidOid: free */
	int			pid;			/* 0: not running */
	Latch	   *latch;
	TimestampTz requested_at;	/* when a start was last asked for */
} TxnWriterSlot;

typedef struct TxnQueue
{
	LWLock	   *lock;
	TxnWriterSlot writers[TXN_WRITERS];
	TxnItem		items[TXN_QUEUE_SLOTS];
} TxnQueue;

static TxnQueue *txn_queue = NULL;

void		dci_txn_group_main(Datum arg);

void
dci_txn_record_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(TxnQueue));
	RequestNamedLWLockTranche("dci_client transaction writer", 1);
}

void
dci_txn_record_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	txn_queue = ShmemInitStruct("dci_client transaction writer", sizeof(TxnQueue), &found);
	if (!found)
	{
		memset(txn_queue, 0, sizeof(TxnQueue));
		txn_queue->lock = &(GetNamedLWLockTranche("dci_client transaction writer"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* with the lock held: the writer slot of this database, claimed if need be; -1: none free */
static int
writer_slot(Oid dbid, bool claim, TimestampTz now)
{
	int			spare = -1;

	for (int i = 0; i < TXN_WRITERS; i++)
	{
		TxnWriterSlot *w = &txn_queue->writers[i];

		if (w->dbid == dbid)
			return i;
		/* free, or left by a writer that never came up */
		if (spare < 0 && w->pid == 0 &&
			(w->dbid == InvalidOid ||
			 TimestampDifferenceExceeds(w->requested_at, now, TXN_START_WAIT_MS)))
			spare = i;
	}
	if (!claim || spare < 0)
		return -1;
	txn_queue->writers[spare].dbid = dbid;
	txn_queue->writers[spare].pid = 0;
	txn_queue->writers[spare].latch = NULL;
	txn_queue->writers[spare].requested_at = 0;
	return spare;
}

/*
 * With the lock held: wake the writer of slot w, or say it must be started
 * (at most every TXN_START_RETRY_MS).  Returns the latch to set, or NULL.
 */
static Latch *
writer_wake(int w, TimestampTz now, bool *start)
{
	TxnWriterSlot *slot = &txn_queue->writers[w];

	*start = false;
	if (slot->pid != 0)
		return slot->latch;
	if (slot->requested_at == 0 ||
		TimestampDifferenceExceeds(slot->requested_at, now, TXN_START_RETRY_MS))
	{
		slot->requested_at = now;
		*start = true;
	}
	return NULL;
}

static bool
start_writer(void)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "dci_client", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dci_txn_group_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dci_client transaction writer for database %u", MyDatabaseId);
	strlcpy(worker.bgw_type, "dci_client transaction writer", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&worker, &handle);
}

/*
 * With the lock held: a free queue item, or -1.  With none, an outcome
 * queued TXN_WRITE_WAIT_MS ago and still not taken is given up (its
 * database's writer never came, e.g. the database was dropped before it
 * connected; the row stays 'sent'): nobody waits for it.
 */
static int
free_item(TimestampTz now)
{
	int			stale = -1;

	for (int i = 0; i < TXN_QUEUE_SLOTS; i++)
	{
		TxnItem    *it = &txn_queue->items[i];

		if (it->state == ITEM_FREE)
			return i;
		if (stale < 0 && it->state == ITEM_PENDING && it->outcome &&
			TimestampDifferenceExceeds(it->queued_at, now, TXN_WRITE_WAIT_MS))
			stale = i;
	}
	if (stale >= 0)
		txn_queue->items[stale].state = ITEM_FREE;
	return stale;
}

/* the sender stops waiting (cancelled, or gave up): what the writer holds it frees itself */
static void
abandon_item(int idx)
{
	TxnItem    *it = &txn_queue->items[idx];

	LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
	if (it->state == ITEM_TAKEN)
		it->state = ITEM_ABANDONED;
	else if (it->state == ITEM_PENDING || it->state == ITEM_DONE)
		it->state = ITEM_FREE;
	LWLockRelease(txn_queue->lock);
}

/*
 * The queue item this backend waits for, freed (or left to the writer) when
 * the backend exits while waiting: pg_terminate_backend is a FATAL, which
 * runs no PG_CATCH, and a slot left DONE or PENDING would stay taken for
 * good.
 */
static int	waiting_item = -1;
static bool sender_exit_hooked = false;

static void
sender_exit(int code, Datum arg)
{
	int			idx = waiting_item;

	waiting_item = -1;
	if (idx >= 0 && txn_queue != NULL)
		abandon_item(idx);
}

/*
 * Write the row through this database's writer and wait for it.  Returns
 * the TxnPhase, or -1 when the request was not queued or no writer took it
 * (the caller then starts a worker of its own).
 */
static int
group_write(const TxnShared *req, int64 *row_id, char *error, size_t errlen)
{
	volatile int idx = -1;
	volatile int phase = -1;
	TimestampTz queued_at;
	TimestampTz give_up;

	if (txn_queue == NULL)
		return -1;
	if (!sender_exit_hooked)
	{
		before_shmem_exit(sender_exit, (Datum) 0);
		sender_exit_hooked = true;
	}

	/* a free slot in the queue: wait for one, bounded */
	give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TXN_SLOT_WAIT_MS);
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		Latch	   *wake = NULL;
		bool		start = false;
		int			w;

		LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
		w = writer_slot(MyDatabaseId, true, now);
		if (w < 0)
		{
			/* more databases than writers */
			LWLockRelease(txn_queue->lock);
			return -1;
		}
		{
			int			i = free_item(now);

			if (i >= 0)
			{
				TxnItem    *it = &txn_queue->items[i];

				memcpy(&it->req, req, sizeof(TxnShared));
				it->outcome = false;
				it->tries = 0;
				it->queued_at = now;
				it->not_before = 0;
				it->state = ITEM_PENDING;
				idx = i;
				waiting_item = i;
			}
		}
		if (idx >= 0)
			wake = writer_wake(w, now, &start);
		LWLockRelease(txn_queue->lock);
		if (idx >= 0)
		{
			if (wake)
				SetLatch(wake);
			else if (start)
				(void) start_writer();	/* none: asked for again while waiting */
			queued_at = now;
			break;
		}
		if (now >= give_up)
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("could not queue the transaction for dci_transaction: nothing was sent"),
					 errdetail("The queue of the transaction writer stayed full for %d ms.", TXN_SLOT_WAIT_MS)));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}

	/* wait for the writer's word */
	PG_TRY();
	{
		for (;;)
		{
			TxnItem    *it = &txn_queue->items[idx];
			TimestampTz now = GetCurrentTimestamp();
			bool		start = false;
			bool		fallback = false;
			bool		timed_out = false;

			LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
			if (it->state == ITEM_DONE)
			{
				phase = it->req.phase;
				*row_id = it->req.row_id;
				strlcpy(error, it->req.error, errlen);
				it->state = ITEM_FREE;
				waiting_item = -1;
				LWLockRelease(txn_queue->lock);
				break;
			}
			if (it->state == ITEM_PENDING)
			{
				int			w = writer_slot(MyDatabaseId, true, now);

				/* no writer (slot taken by another database, none came up): a worker of its own */
				if (w < 0 || TimestampDifferenceExceeds(queued_at, now, TXN_START_WAIT_MS))
				{
					it->state = ITEM_FREE;
					waiting_item = -1;
					fallback = true;
				}
				else
					(void) writer_wake(w, now, &start);
			}
			else if (it->state == ITEM_TAKEN &&
					 TimestampDifferenceExceeds(queued_at, now, TXN_WRITE_WAIT_MS))
			{
				it->state = ITEM_ABANDONED;
				waiting_item = -1;
				timed_out = true;
			}
			LWLockRelease(txn_queue->lock);
			if (fallback)
				break;
			if (timed_out)
			{
				phase = TXN_ERROR;
				snprintf(error, errlen, "The transaction writer did not answer in %d ms.", TXN_WRITE_WAIT_MS);
				break;
			}
			/* a writer that left (terminated): ask for another */
			if (start)
				(void) start_writer();
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			/* a cancel here: the row may still be committed, as 'sent' (never sent) */
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_CATCH();
	{
		waiting_item = -1;
		abandon_item(idx);
		PG_RE_THROW();
	}
	PG_END_TRY();
	waiting_item = -1;
	return phase;
}

/* queue the outcome; false: no room or no writer (the caller starts a worker of its own) */
static bool
group_outcome(int64 row_id, bool acked)
{
	TimestampTz now;
	Latch	   *wake = NULL;
	bool		start = false;
	int			idx = -1;
	int			w;

	if (txn_queue == NULL)
		return false;
	now = GetCurrentTimestamp();
	LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
	w = writer_slot(MyDatabaseId, true, now);
	if (w >= 0 && (idx = free_item(now)) >= 0)
	{
		TxnItem    *it = &txn_queue->items[idx];

		memset(&it->req, 0, offsetof(TxnShared, transaction_id));
		it->req.dbid = MyDatabaseId;
		it->req.row_id = row_id;
		it->outcome = true;
		it->acked = acked;
		it->tries = 0;
		it->queued_at = now;
		it->not_before = 0;
		it->state = ITEM_PENDING;
	}
	if (idx >= 0)
		wake = writer_wake(w, now, &start);
	LWLockRelease(txn_queue->lock);
	if (idx < 0)
		return false;
	if (wake)
		SetLatch(wake);
	else if (start && !start_writer())
	{
		/*
		 * The queued outcome would wait for a writer that is not coming.
		 * Only while it is still ours: since the lock was released a writer
		 * may have come, recorded it, and the item may be another sender's.
		 */
		bool		withdrawn = false;

		LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
		if (txn_queue->items[idx].state == ITEM_PENDING && txn_queue->items[idx].outcome &&
			txn_queue->items[idx].req.row_id == row_id && txn_queue->items[idx].req.dbid == MyDatabaseId)
		{
			txn_queue->items[idx].state = ITEM_FREE;
			withdrawn = true;
		}
		LWLockRelease(txn_queue->lock);
		return !withdrawn;
	}
	return true;
}

/* ---- the persistent writer ---- */

static int	my_writer = -1;

/*
 * Leaving: requests taken and not reported fail (the transaction that held
 * them is not committed), the senders of pending ones are woken to ask for
 * a new writer.
 */
static void
group_exit(int code, Datum arg)
{
	Latch	   *latches[TXN_QUEUE_SLOTS];
	int			n = 0;

	if (my_writer < 0 || txn_queue == NULL)
		return;
	LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
	/* retired (slot given up, maybe to a new writer of this database): nothing here is ours */
	for (int i = 0; i < TXN_QUEUE_SLOTS && txn_queue->writers[my_writer].pid == MyProcPid; i++)
	{
		TxnItem    *it = &txn_queue->items[i];

		if (it->req.dbid != MyDatabaseId || it->state == ITEM_FREE)
			continue;
		/*
		 * Outcomes, pending ones too: nobody waits for them, and after DROP
		 * DATABASE no writer would ever take them (the row stays 'sent').
		 */
		if (it->state == ITEM_ABANDONED || it->outcome)
			it->state = ITEM_FREE;
		else if (it->state == ITEM_TAKEN)
		{
			it->req.phase = TXN_ERROR;
			strlcpy(it->req.error, "the transaction writer stopped", sizeof(it->req.error));
			it->state = ITEM_DONE;
			latches[n++] = it->req.sender_latch;
		}
		else if (it->state == ITEM_PENDING)
			latches[n++] = it->req.sender_latch;
	}
	if (txn_queue->writers[my_writer].pid == MyProcPid)
	{
		txn_queue->writers[my_writer].pid = 0;
		txn_queue->writers[my_writer].latch = NULL;
		txn_queue->writers[my_writer].requested_at = 0;
	}
	LWLockRelease(txn_queue->lock);
	for (int i = 0; i < n; i++)
		SetLatch(latches[i]);
}

/*
 * Take this database's pending requests (outcomes not before their time).
 * With retire, and nothing pending at all, give up the slot in the same
 * critical section (returns -1): a request queued after that starts a new
 * writer instead of waking this one.  *deferred: an outcome waits.
 */
static int
take_items(int *out, bool retire, bool *deferred)
{
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();

	*deferred = false;
	LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
	for (int i = 0; i < TXN_QUEUE_SLOTS; i++)
	{
		TxnItem    *it = &txn_queue->items[i];

		if (it->state != ITEM_PENDING || it->req.dbid != MyDatabaseId)
			continue;
		if (it->not_before > now)
		{
			*deferred = true;
			continue;
		}
		it->state = ITEM_TAKEN;
		out[n++] = i;
	}
	if (n == 0 && retire && !*deferred)
	{
		TxnWriterSlot *w = &txn_queue->writers[my_writer];

		w->pid = 0;
		w->latch = NULL;
		w->requested_at = 0;
		w->dbid = InvalidOid;
		n = -1;
	}
	LWLockRelease(txn_queue->lock);
	return n;
}

typedef struct ItemResult
{
	int			phase;			/* TxnPhase; for an outcome: TXN_COMMITTED done, TXN_STARTING again */
	int64		row_id;
	char		error[256];
} ItemResult;

/* one request in a subtransaction of its own: its failure is its own */
static void
write_item(TxnItem *it, GroupTables *gt, ItemResult *res)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;

	memset(res, 0, sizeof(ItemResult));
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		/* the writer alone changes a taken item's request: read it in place */
		if (it->outcome)
			res->phase = write_outcome(it->req.row_id, it->acked, gt) ? TXN_COMMITTED : TXN_STARTING;
		else
		{
			res->row_id = insert_row(&it->req, gt);
			res->phase = res->row_id != 0 ? TXN_COMMITTED : TXN_DUPLICATE;
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		res->phase = TXN_ERROR;
		res->row_id = 0;
		strlcpy(res->error, edata->message ? edata->message : "error", sizeof(res->error));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* write the taken requests in one transaction, a subtransaction each; report */
static void
write_group(int *idx, int n, ItemResult *res)
{
	Latch	   *latches[TXN_QUEUE_SLOTS];
	int			nl = 0;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		GroupTables gt = {NULL, NULL};
		bool		rows = false;

		begin_xact("recording dci_client transactions");
		gt.txn = txn_table("dci_transaction");
		for (int i = 0; i < n; i++)
			rows = rows || !txn_queue->items[idx[i]].outcome;
		/*
		 * Outcomes alone need not wait for the WAL flush: one lost in a crash
		 * leaves its row 'sent', which a callback still completes (as when no
		 * worker could record it).  A new row is flushed before its request
		 * goes out.
		 */
		if (!rows && SPI_execute("SET LOCAL synchronous_commit = off", false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not set synchronous_commit");
		for (int i = 0; i < n; i++)
			write_item(&txn_queue->items[idx[i]], &gt, &res[i]);
		end_xact();
	}
	PG_CATCH();
	{
		/* the whole transaction failed (no table, the commit): nothing of it stands */
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(cxt);
		for (int i = 0; i < n; i++)
		{
			res[i].phase = TXN_ERROR;
			res[i].row_id = 0;
			strlcpy(res[i].error, edata->message ? edata->message : "error", sizeof(res[i].error));
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();

	LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		TxnItem    *it = &txn_queue->items[idx[i]];

		if (it->outcome)
		{
			/* a row a callback holds: again a little later, a few times; then it stays 'sent' */
			if (res[i].phase == TXN_STARTING && ++it->tries < TXN_OUTCOME_TRIES)
			{
				it->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TXN_OUTCOME_PAUSE_MS);
				it->state = ITEM_PENDING;
			}
			else
				it->state = ITEM_FREE;
			continue;
		}
		if (it->state == ITEM_ABANDONED)
		{
			it->state = ITEM_FREE;
			continue;
		}
		it->req.phase = res[i].phase;
		it->req.row_id = res[i].row_id;
		strlcpy(it->req.error, res[i].error, sizeof(it->req.error));
		it->state = ITEM_DONE;
		latches[nl++] = it->req.sender_latch;
	}
	LWLockRelease(txn_queue->lock);
	for (int i = 0; i < nl; i++)
		SetLatch(latches[i]);
}

void
dci_txn_group_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	int		   *idx;
	ItemResult *res;
	TimestampTz last_work;

	/*
	 * pg_terminate_backend ends it even while it waits for a lock: what it
	 * took and did not report fails (group_exit), what is pending gets a new
	 * writer.
	 */
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	dci_bgworker_connect(dbid);
	if (txn_queue == NULL)
		proc_exit(0);

	/* one writer per database: a second one leaves at once */
	LWLockAcquire(txn_queue->lock, LW_EXCLUSIVE);
	for (int i = 0; i < TXN_WRITERS; i++)
		if (txn_queue->writers[i].dbid == dbid)
		{
			if (txn_queue->writers[i].pid == 0)
			{
				txn_queue->writers[i].pid = MyProcPid;
				txn_queue->writers[i].latch = MyLatch;
				my_writer = i;
			}
			break;
		}
	LWLockRelease(txn_queue->lock);
	if (my_writer < 0)
		proc_exit(0);
	before_shmem_exit(group_exit, (Datum) 0);

	idx = MemoryContextAlloc(TopMemoryContext, sizeof(int) * TXN_QUEUE_SLOTS);
	res = MemoryContextAlloc(TopMemoryContext, sizeof(ItemResult) * TXN_QUEUE_SLOTS);
	last_work = GetCurrentTimestamp();
	for (;;)
	{
		bool		deferred;
		int			n;

		CHECK_FOR_INTERRUPTS();

		n = take_items(idx, TimestampDifferenceExceeds(last_work, GetCurrentTimestamp(), TXN_IDLE_EXIT_MS),
					   &deferred);
		if (n < 0)
			break;				/* retired: the slot is free again */
		if (n > 0)
		{
			write_group(idx, n, res);
			last_work = GetCurrentTimestamp();
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 deferred ? TXN_OUTCOME_PAUSE_MS : TXN_IDLE_EXIT_MS / 4, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	proc_exit(0);
}
