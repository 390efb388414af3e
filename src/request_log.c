/*
 * request_log.c
 *		dci_request_log: one record per call, written outside the caller's
 *		transaction.
 *
 * A failed call raises an ERROR that rolls back the caller's transaction;
 * its record must survive that.  With the library preloaded, records go
 * into a shared-memory queue and a background worker per database writes
 * them in its own transactions.  Without preloading (or on a standby) they
 * go to the server log only.  A record never holds a body, a secret, a token
 * or a query string.
 */
#include "dci_client.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "errors.h"
#include "request_log.h"
#include "settings.h"
#include "source.h"
#include "source_stats.h"

#define LOG_QUEUE_SIZE 2048
#define LOG_WORKERS	   8
/* a worker that did not come up is asked for again after this long */
#define WORKER_RETRY_MS 5000
/*
 * An idle writer leaves after this long, so it never holds up DROP DATABASE
 * or CREATE DATABASE ... TEMPLATE (both wait 5 s for other sessions); the
 * next record starts it again.
 */
#define WORKER_IDLE_EXIT_MS 1000

typedef struct LogRecord
{
	bool		used; /* written, not yet taken by a worker */
	Oid			dbid;
	Oid			userid;
	TimestampTz at;
	int32		source_id;
	char		source[64];
	char		method[8];
	char		path[256];
	int32		status; /* 0: no HTTP answer */
	char		outcome[20];
	double		elapsed_ms;
	int64		bytes;
	int32		attempts;
	char		error[DCI_QUOTE_MAX + 64];
} LogRecord;

typedef struct LogWorkerSlot
{
	Oid			dbid;
	int			pid; /* 0: not running */
	Latch	   *latch;
	TimestampTz requested_at; /* when a start was last asked for */
} LogWorkerSlot;

typedef struct LogShared
{
	LWLock		 *lock;
	uint64		  head; /* next record to write */
	uint64		  tail; /* oldest record possibly in use */
	uint64		  dropped;
	LogWorkerSlot workers[LOG_WORKERS];
	LogRecord	  records[LOG_QUEUE_SIZE];
} LogShared;

static LogShared *log_shared = NULL;

/* the call being recorded in this backend */
static struct
{
	bool		active;
	Oid			dbid;
	Oid			relid;
	int32		source_id;
	char		source[64];
	char		method[8];
	char		path[256];
	TimestampTz start;
	long		status;
	size_t		bytes;
	int			attempts;
	/* an error noted by dci_log_failed, written when the (sub)transaction aborts */
	bool failed;
	int	 sqlstate;
	char error[DCI_QUOTE_MAX + 64];
} current;

static bool abort_callbacks_registered = false;
static void write_failed(void);

void dci_log_worker_main(Datum arg);

void
dci_request_log_shmem_request(void)
{
	RequestAddinShmemSpace(sizeof(LogShared));
	RequestNamedLWLockTranche("dci_client request log", 1);
}

void
dci_request_log_shmem_startup(void)
{
	bool found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	log_shared = ShmemInitStruct("dci_client request log", sizeof(LogShared), &found);
	if (!found)
	{
		memset(log_shared, 0, sizeof(LogShared));
		log_shared->lock = &(GetNamedLWLockTranche("dci_client request log"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* ---- producers ---- */

static void
log_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		write_failed();
}

static void
log_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		write_failed();
}

void
dci_log_begin(const DciSource *src, const char *method, const char *path)
{
	if (!abort_callbacks_registered)
	{
		RegisterXactCallback(log_xact_callback, NULL);
		RegisterSubXactCallback(log_subxact_callback, NULL);
		abort_callbacks_registered = true;
	}
	/* a failure whose error some C code swallowed without aborting */
	write_failed();
	current.active = true;
	current.failed = false;
	current.dbid = MyDatabaseId;
	current.relid = src->table_oid;
	current.source_id = src->id;
	dci_clip_copy(current.source, src->code, sizeof(current.source));
	dci_clip_copy(current.method, method, sizeof(current.method));
	/* never the query string: it may carry identifiers or credentials */
	dci_clip_copy(current.path, pnstrdup(path, strcspn(path, "?")), sizeof(current.path));
	current.start = GetCurrentTimestamp();
	current.status = 0;
	current.bytes = 0;
	current.attempts = 0;
}

void
dci_log_exchange(long status, size_t bytes, int attempts)
{
	if (!current.active)
		return;
	current.status = status;
	current.bytes += bytes;
	current.attempts += attempts;
}

void
dci_log_set_start(TimestampTz start)
{
	if (current.active)
		current.start = start;
}

void
dci_log_flush_failed(void)
{
	write_failed();
}

/* start the worker of this database, at most every WORKER_RETRY_MS */
static void
request_worker(LogWorkerSlot *slot)
{
	BackgroundWorker		worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	strlcpy(worker.bgw_library_name, "dci_client", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "dci_log_worker_main", BGW_MAXLEN);
	snprintf(worker.bgw_name, BGW_MAXLEN, "dci_client request log writer for database %u", MyDatabaseId);
	strlcpy(worker.bgw_type, "dci_client request log", BGW_MAXLEN);
	worker.bgw_main_arg = ObjectIdGetDatum(MyDatabaseId);
	worker.bgw_notify_pid = 0;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(DEBUG1,
				(errmsg("dci_client could not start its request log writer"),
				 errhint("Raise max_worker_processes.")));
}

static void
to_server_log(const LogRecord *r)
{
	ereport(LOG,
			(errmsg("dci_client call: source \"%s\" %s %s status %d outcome %s %.1f ms, %d attempt(s)%s%s",
					r->source, r->method, r->path, r->status, r->outcome, r->elapsed_ms,
					r->attempts, r->error[0] ? ": " : "", r->error),
			 errhidestmt(true),
			 errhidecontext(true)));
}

static void
write_record(const char *outcome, const char *error)
{
	LogRecord	   r;
	bool		   failed = strcmp(outcome, "success") != 0;
	LogWorkerSlot *slot = NULL;
	Latch		  *wake = NULL;
	bool		   start = false;

	current.active = false;
	memset(&r, 0, sizeof(r));
	r.used = true;
	r.dbid = current.dbid;
	r.userid = GetUserId();
	r.at = GetCurrentTimestamp();
	r.source_id = current.source_id;
	dci_clip_copy(r.source, current.source, sizeof(r.source));
	dci_clip_copy(r.method, current.method, sizeof(r.method));
	dci_clip_copy(r.path, current.path, sizeof(r.path));
	r.status = (int32) current.status;
	strlcpy(r.outcome, outcome, sizeof(r.outcome));
	r.elapsed_ms = (r.at - current.start) / 1000.0;
	r.bytes = (int64) current.bytes;
	r.attempts = current.attempts;
	if (error)
		dci_clip_copy(r.error, error, sizeof(r.error));

	dci_stats_count(r.dbid, current.relid, r.source_id, failed, r.elapsed_ms);

	if (dci_log_requests == DCI_LOG_OFF || (dci_log_requests == DCI_LOG_ERRORS && !failed))
		return;
	if (log_shared == NULL || RecoveryInProgress())
	{
		to_server_log(&r);
		return;
	}

	LWLockAcquire(log_shared->lock, LW_EXCLUSIVE);
	if (log_shared->head - log_shared->tail >= LOG_QUEUE_SIZE)
	{
		/* full: the oldest record gives way */
		log_shared->records[log_shared->tail % LOG_QUEUE_SIZE].used = false;
		log_shared->tail++;
		log_shared->dropped++;
	}
	log_shared->records[log_shared->head % LOG_QUEUE_SIZE] = r;
	log_shared->head++;
	for (int i = 0; i < LOG_WORKERS; i++)
		if (log_shared->workers[i].dbid == r.dbid)
			slot = &log_shared->workers[i];
	if (slot == NULL)
		for (int i = 0; i < LOG_WORKERS; i++)
			if (log_shared->workers[i].dbid == InvalidOid)
			{
				slot = &log_shared->workers[i];
				slot->dbid = r.dbid;
				slot->pid = 0;
				slot->requested_at = 0;
				break;
			}
	if (slot != NULL)
	{
		if (slot->pid != 0)
			wake = slot->latch;
		else if (slot->requested_at == 0 ||
				 TimestampDifferenceExceeds(slot->requested_at, r.at, WORKER_RETRY_MS))
		{
			slot->requested_at = r.at;
			start = true;
		}
	}
	LWLockRelease(log_shared->lock);

	if (wake)
		SetLatch(wake);
	else if (start)
		request_worker(slot);
	else if (slot == NULL)
		to_server_log(&r); /* more databases than writers */
}

/* the outcome of a call that returned an HTTP answer */
void
dci_log_end(void)
{
	if (!current.active)
		return;
	if (current.status >= 200 && current.status < 400)
		write_record("success", NULL);
	else
		write_record("http_error", psprintf("HTTP %ld", current.status));
}

/*
 * From a PG_CATCH, with the error in flight: note its SQLSTATE and message,
 * nothing more.  The record is written by the abort callback, once the
 * (sub)transaction has released its locks, so nothing done here can fail
 * and replace the original error.
 */
void
dci_log_failed(void)
{
	MemoryContext old;
	ErrorData	 *edata;

	if (!current.active)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	MemoryContextSwitchTo(old);
	current.failed = true;
	current.sqlstate = edata->sqlerrcode;
	dci_clip_copy(current.error, edata->message ? edata->message : "", sizeof(current.error));
	FreeErrorData(edata);
}

/* write the record of a noted failure, classified by its SQLSTATE */
static void
write_failed(void)
{
	const char *outcome;

	if (!current.active || !current.failed)
		return;
	switch (current.sqlstate)
	{
		case ERRCODE_DCI_TIMEOUT:
		case ERRCODE_QUERY_CANCELED:
			outcome = "timeout";
			break;
		case ERRCODE_DCI_TRANSPORT:
			outcome = "connection_error";
			break;
		case ERRCODE_DCI_AUTH:
			outcome = "auth_error";
			break;
		case ERRCODE_DCI_REJECTED:
			outcome = "rejected";
			break;
		case ERRCODE_DCI_UNAVAILABLE:
			outcome = "unavailable";
			break;
		default:
			outcome = "error";
			break;
	}
	current.failed = false;
	/* messages are already free of secrets; cut like registry text */
	write_record(outcome, dci_quote_text(current.error, strlen(current.error)));
}

void
dci_log_token_fetch(const DciSource *src)
{
	dci_stats_count_token(MyDatabaseId, src->table_oid, src->id);
}

/* ---- the writer ---- */

static volatile sig_atomic_t got_sigterm = false;
static int					 my_slot = -1;

static void
worker_sigterm(SIGNAL_ARGS)
{
	int save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

static void
worker_exit(int code, Datum arg)
{
	if (my_slot >= 0)
	{
		LogWorkerSlot *slot = &log_shared->workers[my_slot];

		LWLockAcquire(log_shared->lock, LW_EXCLUSIVE);
		/* a successor may own the slot already */
		if (slot->pid == MyProcPid)
		{
			slot->pid = 0;
			slot->latch = NULL;
			slot->requested_at = 0;
		}
		LWLockRelease(log_shared->lock);
	}
}

/*
 * Take this database's records out of the queue.  With retire, and nothing
 * to take, give up the slot in the same critical section (returns -1): a
 * record written after that starts a new writer instead of waking this one.
 */
static int
take_records(LogRecord *out, int max, bool retire)
{
	int n = 0;

	LWLockAcquire(log_shared->lock, LW_EXCLUSIVE);
	for (uint64 i = log_shared->tail; i < log_shared->head && n < max; i++)
	{
		LogRecord *r = &log_shared->records[i % LOG_QUEUE_SIZE];

		if (r->used && r->dbid == MyDatabaseId)
		{
			out[n++] = *r;
			r->used = false;
		}
	}
	while (log_shared->tail < log_shared->head &&
		   !log_shared->records[log_shared->tail % LOG_QUEUE_SIZE].used)
		log_shared->tail++;
	if (n == 0 && retire)
	{
		LogWorkerSlot *slot = &log_shared->workers[my_slot];

		slot->pid = 0;
		slot->latch = NULL;
		slot->requested_at = 0;
		n = -1;
	}
	LWLockRelease(log_shared->lock);
	return n;
}

/*
 * Take the locks an INSERT needs, the table's and its identity sequence's,
 * without waiting: holding one while waiting for the other deadlocks with a
 * DROP EXTENSION that locks them the other way round.  A few tries; the
 * writer then keeps the batch and comes back (write_batch returns 0).
 */
static bool
lock_log_table(Oid rel)
{
	for (int attempt = 0; attempt < 5; attempt++)
	{
		if (ConditionalLockRelationOid(rel, RowExclusiveLock))
		{
			List	 *seqs = getOwnedSequences(rel);
			List	 *locked = NIL;
			bool	  all = true;
			ListCell *lc;

			foreach (lc, seqs)
			{
				if (!ConditionalLockRelationOid(lfirst_oid(lc), RowExclusiveLock))
				{
					all = false;
					break;
				}
				locked = lappend_oid(locked, lfirst_oid(lc));
			}
			/* the lock came after a DROP committed: the table is gone */
			if (all && !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(rel)))
				all = false;
			if (all)
				return true;
			foreach (lc, locked)
				UnlockRelationOid(lfirst_oid(lc), RowExclusiveLock);
			UnlockRelationOid(rel, RowExclusiveLock);
		}
		pg_usleep(50 * 1000L);
		CHECK_FOR_INTERRUPTS();
	}
	return false;
}

/* 1: written; 0: the table stayed locked, try again; -1: no table (the extension is gone) */
static int
write_batch(LogRecord *recs, int n, bool purge)
{
	char *table = NULL;
	int	  result = 1;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "writing dci_client request log");

	/* another database's extension, or one re-created elsewhere: look again each batch */
	dci_catalog_forget();
	if (OidIsValid(dci_extension_schema(true)))
	{
		Oid rel = get_relname_relid("dci_request_log", dci_extension_schema(true));

		if (!OidIsValid(rel))
			result = -1;
		else if (lock_log_table(rel))
			table = dci_qualified_table_name(rel);
		else
			result = 0;
	}
	else
		result = -1;
	if (table != NULL)
	{
		char *insert = psprintf("INSERT INTO %s (logged_at, source_id, source, method, path, "
								"status, outcome, elapsed_ms, bytes, attempts, error, username) "
								"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
								"(SELECT rolname FROM pg_catalog.pg_authid WHERE oid OPERATOR(pg_catalog.=) $12))",
								table);
		Oid	  types[12] = {TIMESTAMPTZOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
						   TEXTOID, FLOAT8OID, INT8OID, INT4OID, TEXTOID, OIDOID};

		for (int i = 0; i < n; i++)
		{
			LogRecord *r = &recs[i];
			Datum	   v[12];
			char	   nulls[12];

			memset(nulls, ' ', sizeof(nulls));
			v[0] = TimestampTzGetDatum(r->at);
			v[1] = Int32GetDatum(r->source_id);
			v[2] = CStringGetTextDatum(r->source);
			v[3] = CStringGetTextDatum(r->method);
			v[4] = CStringGetTextDatum(r->path);
			v[5] = Int32GetDatum(r->status);
			if (r->status == 0)
				nulls[5] = 'n';
			v[6] = CStringGetTextDatum(r->outcome);
			v[7] = Float8GetDatum(r->elapsed_ms);
			v[8] = Int64GetDatum(r->bytes);
			v[9] = Int32GetDatum(r->attempts);
			v[10] = CStringGetTextDatum(r->error);
			if (r->error[0] == '\0')
				nulls[10] = 'n';
			v[11] = ObjectIdGetDatum(r->userid);
			if (SPI_execute_with_args(insert, 12, types, v, nulls, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not write to dci_request_log");
		}
		if (purge)
			if (SPI_execute(psprintf("DELETE FROM %s WHERE logged_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) interval '%d days')",
									 table, dci_log_retention_days),
							false, 0) != SPI_OK_DELETE)
				elog(ERROR, "could not purge dci_request_log");
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return result;
}

void
dci_log_worker_main(Datum arg)
{
	Oid			dbid = DatumGetObjectId(arg);
	LogRecord  *batch;
	TimestampTz last_purge = 0;
	TimestampTz last_work;

	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	dci_bgworker_connect(dbid);

	if (log_shared == NULL)
		proc_exit(0);

	/* one writer per database: a second one leaves at once */
	LWLockAcquire(log_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LOG_WORKERS; i++)
		if (log_shared->workers[i].dbid == dbid)
		{
			if (log_shared->workers[i].pid == 0)
			{
				log_shared->workers[i].pid = MyProcPid;
				log_shared->workers[i].latch = MyLatch;
				my_slot = i;
			}
			break;
		}
	LWLockRelease(log_shared->lock);
	if (my_slot < 0)
		proc_exit(0);
	before_shmem_exit(worker_exit, (Datum) 0);

	batch = MemoryContextAlloc(TopMemoryContext, sizeof(LogRecord) * 256);
	last_work = GetCurrentTimestamp();
	while (!got_sigterm)
	{
		int			n;
		TimestampTz now;
		bool		purge;
		bool		idle;

		now = GetCurrentTimestamp();
		purge = TimestampDifferenceExceeds(last_purge, now, 3600 * 1000);
		idle = TimestampDifferenceExceeds(last_work, now, WORKER_IDLE_EXIT_MS);
		n = take_records(batch, 256, idle && !purge);
		if (n < 0)
			break; /* retired: the slot is free again */
		while (n > 0 || purge)
		{
			int written;

			/* a locked table (CREATE INDEX, a long LOCK): keep the batch, come back */
			while ((written = write_batch(batch, Max(n, 0), purge)) == 0 && !got_sigterm)
			{
				(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 200, PG_WAIT_EXTENSION);
				CHECK_FOR_INTERRUPTS();
			}
			if (written < 0 && n > 0)
				ereport(DEBUG1,
						(errmsg("dci_client request log: no dci_request_log here, %d record(s) not written", n)));
			if (purge)
				last_purge = now;
			purge = false;
			last_work = GetCurrentTimestamp();
			if (n == 0)
				break;
			n = take_records(batch, 256, false);
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 WORKER_IDLE_EXIT_MS / 4, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	proc_exit(0);
}
