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
 * Dynamic workers and DSM need no shared_preload_libraries, so preloaded
 * and not preloaded servers behave the same.  The worker runs as the
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
#include "storage/proc.h"
#include "storage/procarray.h"
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

DciTxnRecord *
dci_txn_record_begin(DciSource *src, const char *txn, const char *action,
					 const char *message_id, const char *endpoint,
					 const char *sub_event, const char *sub_filter)
{
	DciTxnRecord *rec;
	dsm_segment *seg;
	TxnShared  *sh;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int			phase;
	TimestampTz give_up;

	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot send an asynchronous request during recovery"),
				 errdetail("Its transaction could not be recorded in dci_transaction, so its callback would be refused.")));
	if (strlen(txn) >= TXN_FIELD_MAX || (sub_filter && strlen(sub_filter) >= TXN_FILTER_MAX) ||
		(sub_event && strlen(sub_event) >= sizeof(sh->sub_event)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id, reg_event_type or filter is too long to record")));

	old = MemoryContextSwitchTo(TopTransactionContext);
	rec = palloc0(sizeof(DciTxnRecord));
	MemoryContextSwitchTo(old);
	seg = dsm_create(sizeof(TxnShared), 0);
	sh = dsm_segment_address(seg);
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
	rec->row_id = sh->row_id;
	if (phase == TXN_DUPLICATE)
	{
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id \"%s\" was already used with data source \"%s\"",
						dci_quote_text(txn, strlen(txn)), src->code),
				 errhint("Give each asynchronous request its own transaction_id, or none for a fresh UUID.")));
	}
	if (phase != TXN_COMMITTED)
	{
		char		error[256];

		strlcpy(error, sh->error[0] ? sh->error : "the writer stopped", sizeof(error));
		dsm_detach(seg);
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("could not record the transaction in dci_transaction: nothing was sent"),
				 errdetail("%s", error)));
	}
	dsm_detach(seg);
	return rec;
}

void
dci_txn_record_end(DciTxnRecord *rec, bool acked)
{
	BackgroundWorker worker;
	TxnOutcome	o;

	if (rec == NULL || rec->done)
		return;
	rec->done = true;
	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "dci_client", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dci_txn_outcome_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dci_client transaction outcome writer for PID %d", MyProcPid);
	strlcpy(worker.bgw_type, "dci_client transaction writer", BGW_MAXLEN);
	worker.bgw_main_arg = Int64GetDatum(rec->row_id);
	o.dbid = MyDatabaseId;
	o.acked = acked;
	memcpy(worker.bgw_extra, &o, sizeof(o));
	worker.bgw_notify_pid = 0;
	/* no slot: the row stays 'sent', which a callback still completes */
	if (!RegisterDynamicBackgroundWorker(&worker, NULL))
		elog(DEBUG1, "dci_client: no worker slot to record the outcome of dci_transaction row " INT64_FORMAT,
			 rec->row_id);
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

/* insert the row(s); returns the row id, 0 for a duplicate transaction_id */
static int64
insert_row(TxnShared *sh)
{
	Oid			types[5] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		v[5];
	int64		id = 0;
	bool		isnull;

	v[0] = Int32GetDatum(sh->source_id);
	v[1] = CStringGetTextDatum(sh->transaction_id);
	v[2] = CStringGetTextDatum(sh->action);
	v[3] = CStringGetTextDatum(sh->message_id);
	v[4] = CStringGetTextDatum(sh->endpoint);
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (source_id, transaction_id, action, message_id, endpoint) "
									   "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source_id, transaction_id) DO NOTHING RETURNING id",
									   txn_table("dci_transaction")),
							  5, types, v, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert into dci_transaction");
	if (SPI_processed == 1)
		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (id != 0 && sh->subscription)
	{
		Oid			stypes[4] = {INT4OID, TEXTOID, TEXTOID, TEXTOID};
		Datum		sv[4];

		sv[0] = Int32GetDatum(sh->source_id);
		sv[1] = CStringGetTextDatum(sh->sub_event);
		sv[2] = CStringGetTextDatum(sh->sub_filter);
		sv[3] = CStringGetTextDatum(sh->transaction_id);
		if (SPI_execute_with_args(psprintf("INSERT INTO %s (source_id, reg_event_type, filter, state, transaction_id) "
										   "VALUES ($1, $2, $3::pg_catalog.jsonb, 'requested', $4)",
										   txn_table("dci_subscription")),
								  4, stypes, sv, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert into dci_subscription");
	}
	return id;
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
	BackgroundWorkerInitializeConnectionByOid(dbid, InvalidOid, 0);
	/* runs as the bootstrap superuser: nothing from a user's schema may resolve */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	PG_TRY();
	{
		begin_xact("recording a dci_client transaction");
		id = insert_row(sh);
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
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		v[2];

	pqsignal(SIGTERM, txn_worker_sigterm);
	BackgroundWorkerUnblockSignals();
	memcpy(&o, MyBgworkerEntry->bgw_extra, sizeof(o));
	BackgroundWorkerInitializeConnectionByOid(o.dbid, InvalidOid, 0);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	v[0] = CStringGetTextDatum(o.acked ? "acked" : "failed");
	v[1] = arg;
	/*
	 * Waiting for nobody: a callback's transaction still open (its HTTP
	 * request still being processed) holds the row, and a worker waiting
	 * behind it would hold its slot as long.  Locked rows are skipped and
	 * tried again for a short while; then the row stays 'sent' (the
	 * callback moves it on anyway).
	 */
	for (int attempt = 0; attempt < TXN_OUTCOME_TRIES && !txn_got_sigterm; attempt++)
	{
		char	   *t;
		uint64		moved;
		bool		still_sent;

		begin_xact("recording a dci_client transaction's acknowledgement");
		t = txn_table("dci_transaction");
		if (SPI_execute_with_args(psprintf("UPDATE %s SET state = $1 WHERE id OPERATOR(pg_catalog.=) ("
										   "SELECT id FROM %s WHERE id OPERATOR(pg_catalog.=) $2 "
										   "AND state OPERATOR(pg_catalog.=) 'sent' FOR UPDATE SKIP LOCKED)", t, t),
								  2, types, v, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update dci_transaction");
		moved = SPI_processed;
		if (SPI_execute_with_args(psprintf("SELECT 1 FROM %s WHERE id OPERATOR(pg_catalog.=) $1 "
										   "AND state OPERATOR(pg_catalog.=) 'sent'", t),
								  1, types + 1, v + 1, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read dci_transaction");
		still_sent = SPI_processed > 0;
		end_xact();
		if (moved > 0 || !still_sent)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, TXN_OUTCOME_PAUSE_MS,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	proc_exit(0);
}
