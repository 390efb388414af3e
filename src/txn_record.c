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
 * the request sent.  The worker then waits for the outcome (ACK or failure)
 * and records it in a second transaction, moving the row from 'sent' only.
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
#define TXN_FILTER_MAX 16384

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
	int			sender_pid;
	Latch	   *sender_latch;
	Latch	   *worker_latch;
	int			phase;		/* TxnPhase, set by the worker */
	int			outcome;	/* 0: not yet; 1: acked; 2: failed; set by the sender */
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
	dsm_segment *seg;
	TxnShared  *shared;
};

void		dci_txn_worker_main(Datum arg);

DciTxnRecord *
dci_txn_record_begin(DciSource *src, const char *txn, const char *action,
					 const char *message_id, const char *endpoint,
					 const char *sub_event, const char *sub_filter)
{
	DciTxnRecord *rec;
	TxnShared  *sh;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int			phase;

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
	rec->seg = dsm_create(sizeof(TxnShared), 0);
	sh = dsm_segment_address(rec->seg);
	rec->shared = sh;
	memset(sh, 0, sizeof(TxnShared));
	SpinLockInit(&sh->mutex);
	sh->dbid = MyDatabaseId;
	sh->sender_pid = MyProcPid;
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
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(rec->seg));
	memcpy(worker.bgw_extra, &sh->dbid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		dsm_detach(rec->seg);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the writer of dci_transaction: nothing was sent"),
				 errhint("Raise max_worker_processes.")));
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
	if (phase == TXN_DUPLICATE)
	{
		dsm_detach(rec->seg);
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
		dsm_detach(rec->seg);
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("could not record the transaction in dci_transaction: nothing was sent"),
				 errdetail("%s", error)));
	}
	return rec;
}

void
dci_txn_record_end(DciTxnRecord *rec, bool acked)
{
	Latch	   *wake;

	if (rec == NULL || rec->seg == NULL)
		return;
	SpinLockAcquire(&rec->shared->mutex);
	if (rec->shared->outcome == 0)
		rec->shared->outcome = acked ? 1 : 2;
	wake = rec->shared->worker_latch;
	SpinLockRelease(&rec->shared->mutex);
	if (wake)
		SetLatch(wake);
	/* in an error path the (sub)transaction's resource owner detaches it */
	if (acked)
		dsm_detach(rec->seg);
	rec->seg = NULL;
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
	int			outcome = 0;

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

	SpinLockAcquire(&sh->mutex);
	sh->worker_latch = MyLatch;
	SpinLockRelease(&sh->mutex);

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
	sh->phase = id != 0 ? TXN_COMMITTED : TXN_DUPLICATE;
	SpinLockRelease(&sh->mutex);
	SetLatch(sh->sender_latch);
	if (id == 0)
		proc_exit(0);

	/* the outcome, for as long as the sender lives */
	while (!txn_got_sigterm)
	{
		SpinLockAcquire(&sh->mutex);
		outcome = sh->outcome;
		SpinLockRelease(&sh->mutex);
		if (outcome != 0 || BackendPidGetProc(sh->sender_pid) == NULL)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	if (outcome != 0)
	{
		Oid			types[2] = {TEXTOID, INT8OID};
		Datum		v[2];

		v[0] = CStringGetTextDatum(outcome == 1 ? "acked" : "failed");
		v[1] = Int64GetDatum(id);
		begin_xact("recording a dci_client transaction's acknowledgement");
		/* only from 'sent': a callback may have completed it already */
		if (SPI_execute_with_args(psprintf("UPDATE %s SET state = $1 WHERE id OPERATOR(pg_catalog.=) $2 "
										   "AND state OPERATOR(pg_catalog.=) 'sent'",
										   txn_table("dci_transaction")),
								  2, types, v, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update dci_transaction");
		end_xact();
	}
	proc_exit(0);
}
