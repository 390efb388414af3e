/*
 * batch.c
 *		Bulk verification: dci_search_batch packs many search_request items
 *		into each envelope and keeps several envelopes in flight at once
 *		(README "Bulk verification").
 *
 * Envelopes are ranges of items.  dci_http_run_many (http.c) asks for the
 * next envelope when a slot is free and hands each back after its retries;
 * the envelope is then read here, its items become rows, and its memory is
 * freed.  Rows leave in input order through a tuplestore: an envelope that
 * comes back early waits (as rows, not as an answer) for those before it.
 *
 * One item's or one envelope's failure must not lose the others, so the
 * reading of an envelope's answer runs under PG_TRY and an error there is
 * kept (CopyErrorData, FlushErrorState) as the rows' reason.  No
 * subtransaction is needed: that code takes no lock, opens no relation and
 * holds no buffer pin — it parses and verifies text in memory — so nothing
 * but memory (in the envelope's own context, deleted afterwards) can be left
 * behind.  What no item can survive is raised again: configuration (DC001),
 * authentication after a renewal (DC002), cancellation (57014), lack of
 * resources (class 53) and internal errors (class XX).
 */
#include "dci_client.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "batch_slots.h"
#include "dci_answer.h"
#include "dci_calls.h"
#include "dialect.h"
#include "dci_envelope.h"
#include "deadline.h"
#include "http.h"
#include "oauth.h"
#include "request.h"
#include "redaction.h"
#include "request_log.h"
#include "secrets.h"
#include "settings.h"
#include "source.h"
#include "source_stats.h"

/* the envelope size that a registry accepted after refusing a larger one, per source */
typedef struct RememberedSize
{
	Oid	  relid;
	int32 source_id;
	int	  size;
} RememberedSize;

#define REMEMBERED_SIZES 64
static RememberedSize remembered[REMEMBERED_SIZES];

typedef struct Envelope
{
	int				 lo; /* first item (0-based) */
	int				 n;	 /* items */
	bool			 resent_after_401;
	uint64			 generation; /* of the token it carries */
	int				 attempts;
	TimestampTz		 start;
	MemoryContext	 cxt; /* everything of this envelope */
	char			*body;
	size_t			 body_len;
	char		   **refs; /* reference_id per item */
	DciHttpRequest	 req;
	struct Envelope *next;
} Envelope;

typedef struct ItemRow
{
	char  *reference_id;
	char  *status;
	Jsonb *records;
	int64  total_count; /* -1: NULL */
	char  *reason_code;
	char  *reason_message;
} ItemRow;

typedef struct Batch
{
	DciSource		*src;
	const char		*query_type;
	Jsonb			*queries; /* dci_search_batch; NULL for dci_search_by_ids: */
	const char		*id_type; /* ... its items are {"type": id_type, "value": ids[i]} */
	Datum			*ids;	  /* text, pointing into the argument array */
	const char		*reg_type;
	Jsonb			*options;
	int				 nitems;
	int				 cursor; /* next item not yet in an envelope */
	int				 size;	 /* items per new envelope */
	Envelope		*queue;	 /* envelopes to send again (split or after a 401) */
	char			*authorization;
	uint64			 generation;
	ItemRow		   **rows;
	int				 next_out;
	MemoryContext	 call_cxt;
	MemoryContext	 rows_cxt;
	Tuplestorestate *tupstore;
	TupleDesc		 tupdesc;
	DciBatchEntry	*entry;	   /* slots and progress (batch_slots.c) */
	int				 inflight; /* envelopes of this batch holding a slot */
	int				 answered; /* items with a succ or rjct row */
	int				 failed;   /* items with an error row */
} Batch;

static int *
remembered_size(const DciSource *src, bool create)
{
	int free_slot = -1;

	for (int i = 0; i < REMEMBERED_SIZES; i++)
	{
		if (remembered[i].size > 0 && remembered[i].relid == src->table_oid &&
			remembered[i].source_id == src->id)
			return &remembered[i].size;
		if (remembered[i].size == 0 && free_slot < 0)
			free_slot = i;
	}
	if (!create)
		return NULL;
	if (free_slot < 0)
		free_slot = (int) ((uint32) src->id % REMEMBERED_SIZES);
	remembered[free_slot].relid = src->table_oid;
	remembered[free_slot].source_id = src->id;
	remembered[free_slot].size = DCI_MAX_BATCH_SIZE;
	return &remembered[free_slot].size;
}

/* ---- arguments ---- */

static void
check_queries(const char *query_type, Jsonb *queries)
{
	int			  n;
	MemoryContext tmp;
	MemoryContext old;

	if (queries == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queries must not be NULL")));
	if (!JB_ROOT_IS_ARRAY(queries) || JB_ROOT_IS_SCALAR(queries))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("queries must be a JSON array"),
				 errhint("Element i is the query of item i, as dci_search takes it.")));
	n = JsonContainerSize(&queries->root);
	/* what looking at each element allocates goes with it: memory stays flat in N */
	tmp = AllocSetContextCreate(CurrentMemoryContext, "dci_search_batch check", ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(tmp);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *v;
		bool		ok;

		MemoryContextReset(tmp);
		v = getIthJsonbValueFromContainer(&queries->root, i);
		ok = v->type == jbvBinary;
		CHECK_FOR_INTERRUPTS();
		if (ok && strcmp(query_type, "idtype-value") == 0)
		{
			JsonbContainer *c = v->val.binary.data;
			JsonbValue	   *t = JsonContainerIsObject(c) ? dci_jget(c, "type") : NULL;
			JsonbValue	   *val = JsonContainerIsObject(c) ? dci_jget(c, "value") : NULL;

			ok = t != NULL && t->type == jbvString && val != NULL &&
				 (val->type == jbvString || val->type == jbvNumeric);
			if (!ok)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("queries[%d] (ord %d) is not an idtype-value query", i, i + 1),
						 errdetail("An idtype-value query is an object {\"type\": string, \"value\": string}.")));
		}
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("queries[%d] (ord %d) must be a JSON object or array", i, i + 1)));
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

/* ---- envelopes ---- */

static Envelope *
new_envelope(Batch *b, int lo, int n)
{
	MemoryContext cxt = AllocSetContextCreate(b->call_cxt, "dci_search_batch envelope",
											  ALLOCSET_DEFAULT_SIZES);
	Envelope	 *e = MemoryContextAllocZero(cxt, sizeof(Envelope));

	e->cxt = cxt;
	e->lo = lo;
	e->n = n;
	return e;
}

/* {"type": id_type, "value": id}: built per envelope, never for all items at once */
static Jsonb *
id_query(const char *id_type, Datum id)
{
	JsonbParseState *state = NULL;
	JsonbValue		 k;
	JsonbValue		 v;
	JsonbValue		*res;
	text			*t = DatumGetTextPP(id);

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	k.type = jbvString;
	k.val.string.val = "type";
	k.val.string.len = 4;
	pushJsonbValue(&state, WJB_KEY, &k);
	v.type = jbvString;
	v.val.string.val = (char *) id_type;
	v.val.string.len = strlen(id_type);
	pushJsonbValue(&state, WJB_VALUE, &v);
	k.val.string.val = "value";
	k.val.string.len = 5;
	pushJsonbValue(&state, WJB_KEY, &k);
	v.val.string.val = VARDATA_ANY(t);
	v.val.string.len = VARSIZE_ANY_EXHDR(t);
	pushJsonbValue(&state, WJB_VALUE, &v);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbValueToJsonb(res);
}

static void
build_body(Batch *b, Envelope *e)
{
	StringInfoData m;
	bool		   first = true;
	char		  *txn = dci_search_transaction_id(b->options);

	e->refs = palloc(sizeof(char *) * e->n);
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", txn, &first);
	dci_append_key(&m, "search_request", &first);
	appendStringInfoChar(&m, '[');
	for (int i = 0; i < e->n; i++)
	{
		Jsonb *query = b->queries ? JsonbValueToJsonb(getIthJsonbValueFromContainer(&b->queries->root, e->lo + i))
								  : id_query(b->id_type, b->ids[e->lo + i]);

		e->refs[i] = palloc(37);
		dci_uuid_v4(e->refs[i]);
		if (i)
			appendStringInfoChar(&m, ',');
		dci_append_search_item(&m, b->src, e->refs[i], b->query_type, query, b->reg_type, b->options,
							   100, 1);
	}
	appendStringInfoString(&m, "]}");
	/* signed per envelope */
	e->body = dci_build_envelope(b->src, "search", m.data, e->n, &e->body_len);
	pfree(m.data);
}

static bool
batch_next(void *arg, DciHttpRequest **req, void **tag)
{
	Batch		 *b = arg;
	Envelope	 *e;
	MemoryContext old;

	if (b->queue)
	{
		e = b->queue;
		b->queue = e->next;
		e->next = NULL;
	}
	else if (b->cursor < b->nitems)
	{
		e = new_envelope(b, b->cursor, Min(b->size, b->nitems - b->cursor));
		b->cursor += e->n;
	}
	else
		return false;

	/*
	 * A slot of the source's max_concurrency, cluster-wide: waited for when
	 * nothing of this batch is in flight, else tried (its transfers go on,
	 * and the envelope is asked for again when one of them ends).
	 */
	if (!dci_batch_slot_acquire(b->entry, b->src->max_concurrency, b->inflight == 0))
	{
		e->next = b->queue;
		b->queue = e;
		return false;
	}
	b->inflight++;

	old = MemoryContextSwitchTo(e->cxt);
	if (e->body == NULL)
		build_body(b, e);
	e->generation = b->generation;
	e->start = GetCurrentTimestamp();
	e->req.method = "POST";
	e->req.url = psprintf("%s%s", b->src->base_url, b->src->search_endpoint);
	e->req.body = e->body;
	e->req.body_len = e->body_len;
	e->req.source = b->src;
	e->req.deadline = dci_call_deadline(b->src);
	e->req.idempotent = true; /* a search only reads */
	e->req.headers = dci_call_headers(b->src, true, b->authorization);
	MemoryContextSwitchTo(old);
	*req = &e->req;
	*tag = e;
	return true;
}

static void
set_token(Batch *b, TimestampTz deadline)
{
	DciError err = {0};
	char	*token = dci_token_get(b->src, DCI_TOKEN_CACHED, deadline, &b->generation, &err);

	if (err.sqlstate != 0)
		dci_error_raise(&err);
	if (b->authorization)
		dci_secret_free(b->authorization);
	b->authorization = token ? MemoryContextStrdup(b->call_cxt, psprintf("Authorization: Bearer %s", token)) : NULL;
}

/* ---- rows ---- */

static void
put_row(Batch *b, int item, const char *ref, const char *status, Jsonb *records, int64 total,
		const char *code, const char *message)
{
	MemoryContext old = MemoryContextSwitchTo(b->rows_cxt);
	ItemRow		 *r = palloc0(sizeof(ItemRow));

	r->reference_id = ref ? pstrdup(ref) : NULL;
	r->status = pstrdup(status);
	if (records)
	{
		r->records = palloc(VARSIZE(records));
		memcpy(r->records, records, VARSIZE(records));
	}
	r->total_count = total;
	r->reason_code = code ? pstrdup(code) : NULL;
	r->reason_message = message ? pstrdup(message) : NULL;
	MemoryContextSwitchTo(old);
	/* an envelope whose answer failed half-way is written again, as errors: count it once */
	if (b->rows[item] != NULL)
	{
		if (strcmp(b->rows[item]->status, "error") == 0)
			b->failed--;
		else
			b->answered--;
	}
	b->rows[item] = r;
	if (strcmp(status, "error") == 0)
		b->failed++;
	else
		b->answered++;
}

/* the rows that are complete from the front, in order */
static void
flush_rows(Batch *b)
{
	while (b->next_out < b->nitems && b->rows[b->next_out] != NULL)
	{
		ItemRow *r = b->rows[b->next_out];
		Datum	 values[7];
		bool	 nulls[7] = {0};

		values[0] = Int32GetDatum(b->next_out + 1);
		if (b->ids)
		{
			/* dci_search_by_ids: the identifier instead of reference_id, no total_count */
			nulls[1] = false;
			values[1] = b->ids[b->next_out];
		}
		else
		{
			nulls[1] = r->reference_id == NULL;
			values[1] = nulls[1] ? (Datum) 0 : CStringGetTextDatum(r->reference_id);
		}
		values[2] = CStringGetTextDatum(r->status);
		nulls[3] = r->records == NULL;
		values[3] = JsonbPGetDatum(r->records);
		nulls[4] = r->total_count < 0;
		values[4] = Int64GetDatum(r->total_count);
		nulls[5] = r->reason_code == NULL;
		values[5] = nulls[5] ? (Datum) 0 : CStringGetTextDatum(r->reason_code);
		nulls[6] = r->reason_message == NULL;
		values[6] = nulls[6] ? (Datum) 0 : CStringGetTextDatum(r->reason_message);
		if (b->ids)
		{
			values[4] = values[5];
			nulls[4] = nulls[5];
			values[5] = values[6];
			nulls[5] = nulls[6];
		}
		tuplestore_putvalues(b->tupstore, b->tupdesc, values, nulls);
		/* the text datums made here (the tuplestore copied the row) */
		if (!b->ids && !nulls[1])
			pfree(DatumGetPointer(values[1]));
		pfree(DatumGetPointer(values[2]));
		if (r->reason_code)
			pfree(DatumGetPointer(b->ids ? values[4] : values[5]));
		if (r->reason_message)
			pfree(DatumGetPointer(b->ids ? values[5] : values[6]));
		if (r->reference_id)
			pfree(r->reference_id);
		pfree(r->status);
		if (r->records)
			pfree(r->records);
		if (r->reason_code)
			pfree(r->reason_code);
		if (r->reason_message)
			pfree(r->reason_message);
		pfree(r);
		b->rows[b->next_out] = NULL;
		b->next_out++;
	}
}

/* the items of a search answer become rows; items it does not answer too */
static void
read_items(Batch *b, Envelope *e, Jsonb *answer)
{
	JsonbContainer *msg = dci_jobject(dci_jget(&answer->root, "message"));
	JsonbValue	   *list = dci_jget(msg, "search_response");
	bool		   *seen = palloc0(sizeof(bool) * e->n);
	int				count = 0;

	if (list == NULL || list->type != jbvBinary || !JsonContainerIsArray(list->val.binary.data))
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("search answer from data source \"%s\" has no search_response list", b->src->code)));
	count = JsonContainerSize(list->val.binary.data);
	for (int j = 0; j < count; j++)
	{
		JsonbValue	   *v = getIthJsonbValueFromContainer(list->val.binary.data, j);
		JsonbContainer *item = dci_jobject(v);
		char		   *ref = item ? dci_jstring(dci_jget(item, "reference_id")) : NULL;
		int				k = -1;
		char		   *status;

		if (ref == NULL)
			continue;
		/* registries answer in order: try the same position first */
		if (j < e->n && strcmp(e->refs[j], ref) == 0)
			k = j;
		for (int i = 0; k < 0 && i < e->n; i++)
			if (strcmp(e->refs[i], ref) == 0)
				k = i;
		if (k < 0 || seen[k])
			continue;
		seen[k] = true;
		status = dci_jstring(dci_jget(item, "status"));
		if (dci_dialect_not_found(b->src, item))
		{
			/* the dialect's "no record": an answer, not a rejection */
			put_row(b, e->lo + k, ref, "succ",
					JsonbValueToJsonb(dci_jget(dci_jobject(dci_jget(&dci_no_records_item()->root, "data")), "reg_records")),
					0, NULL, NULL);
		}
		else if (status && strcmp(status, "rjct") == 0)
		{
			put_row(b, e->lo + k, ref, "rjct", NULL, -1,
					dci_jstring(dci_jget(item, "status_reason_code")),
					dci_jstring(dci_jget(item, "status_reason_message")));
		}
		else
		{
			Jsonb		   *norm = dci_normalize_item(v);
			JsonbContainer *data = dci_jobject(dci_jget(&norm->root, "data"));
			JsonbValue	   *recs = dci_jget(data, "reg_records");
			JsonbContainer *pag = dci_jobject(dci_jget(&norm->root, "pagination"));

			put_row(b, e->lo + k, ref, status ? status : "succ",
					recs ? JsonbValueToJsonb(recs) : NULL,
					pag ? dci_jcount(dci_jget(pag, "total_count")) : -1, NULL, NULL);
		}
	}
	for (int i = 0; i < e->n; i++)
		if (!seen[i])
			put_row(b, e->lo + i, e->refs[i], "error", NULL, -1, "DC006",
					psprintf("the answer from data source \"%s\" has no search_response item for this reference_id",
							 b->src->code));
}

static bool
must_raise(int sqlstate)
{
	return sqlstate == ERRCODE_DCI_CONFIG || sqlstate == ERRCODE_DCI_AUTH ||
		   sqlstate == ERRCODE_QUERY_CANCELED ||
		   ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_INSUFFICIENT_RESOURCES ||
		   ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_OPERATOR_INTERVENTION ||
		   ERRCODE_TO_CATEGORY(sqlstate) == ERRCODE_INTERNAL_ERROR;
}

/* a refusal of the envelope's size: HTTP 413 or rjct.total_count.limit_exceeded */
static bool
too_many_items(const ErrorData *edata, long status)
{
	return status == 413 ||
		   (edata->sqlerrcode == ERRCODE_DCI_REJECTED && edata->message &&
			strstr(edata->message, "total_count.limit_exceeded") != NULL);
}

static void
split(Batch *b, Envelope *e)
{
	int		  half = e->n / 2;
	Envelope *first = new_envelope(b, e->lo, half);
	Envelope *second = new_envelope(b, e->lo + half, e->n - half);
	int		 *size = remembered_size(b->src, true);

	*size = Min(*size, half);
	b->size = Min(b->size, half);
	second->next = b->queue;
	first->next = second;
	b->queue = first;
}

static void
batch_done(void *arg, DciHttpRequest *req, void *tag, bool ok, DciHttpResponse *resp)
{
	Batch		 *b = arg;
	Envelope	 *e = tag;
	DciSource	 *src = b->src;
	MemoryContext old = MemoryContextSwitchTo(e->cxt);
	ErrorData *volatile edata = NULL;
	long status = ok ? resp->status : 0;

	e->attempts += resp->attempts;
	b->inflight--;
	dci_batch_slot_release(b->entry);

	/* a refused token: one renewal for all envelopes, each resent once */
	if (ok && status == 401 && src->auth_type == DCI_AUTH_OAUTH2 && !e->resent_after_401)
	{
		if (e->generation == b->generation && dci_token_renewable(src, b->generation))
		{
			dci_token_drop(src, b->generation);
			set_token(b, dci_call_deadline(src));
		}
		if (e->generation != b->generation)
		{
			e->resent_after_401 = true;
			e->next = b->queue;
			b->queue = e;
			MemoryContextSwitchTo(old);
			return;
		}
	}

	dci_log_begin(src, "POST", src->search_endpoint);
	dci_log_set_start(e->start);
	dci_log_exchange(status, ok ? resp->body_len : 0, e->attempts);
	PG_TRY();
	{
		Jsonb *answer;

		if (!ok)
			dci_error_raise(&resp->error);
		dci_redact_sent_signature(e->body, e->body_len);
		answer = dci_parse_answer(src, "batched search", resp, true);
		read_items(b, e, answer);
	}
	PG_CATCH();
	{
		dci_log_failed();
		MemoryContextSwitchTo(e->cxt);
		edata = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();

	if (edata == NULL)
	{
		dci_log_end();
		dci_stats_count_items(MyDatabaseId, src->table_oid, src->id, e->n);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(e->cxt);
		flush_rows(b);
		dci_batch_set_progress(b->entry, b->answered, b->failed);
		return;
	}
	dci_log_flush_failed();
	if (must_raise(edata->sqlerrcode))
	{
		MemoryContextSwitchTo(old);
		ReThrowError(edata);
	}
	if (e->n > 1 && too_many_items(edata, status))
		split(b, e);
	else
	{
		const char *code = unpack_sql_state(edata->sqlerrcode);

		for (int i = 0; i < e->n; i++)
			put_row(b, e->lo + i, e->refs ? e->refs[i] : NULL, "error", NULL, -1, code,
					edata->message ? edata->message : "");
		dci_stats_count_items(MyDatabaseId, src->table_oid, src->id, e->n);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(e->cxt);
	flush_rows(b);
	dci_batch_set_progress(b->entry, b->answered, b->failed);
}

/* ---- the SQL functions ---- */

/*
 * The arguments both functions share (reg_type, options, batch_size,
 * concurrency: 3 to 6), then the batch: b holds its items.
 */
static Datum
run_batch(FunctionCallInfo fcinfo, Batch *b)
{
	int	 batch_size;
	int	 concurrency;
	int *size;
	int	 envelopes;

	b->reg_type = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	b->options = PG_ARGISNULL(4) ? NULL : PG_GETARG_JSONB_P(4);
	dci_check_search_options(b->options);
	if (!PG_ARGISNULL(5) && (PG_GETARG_INT32(5) < 1 || PG_GETARG_INT32(5) > DCI_MAX_BATCH_SIZE))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and %d", DCI_MAX_BATCH_SIZE)));
	if (!PG_ARGISNULL(6) && (PG_GETARG_INT32(6) < 1 || PG_GETARG_INT32(6) > DCI_MAX_CONCURRENCY))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("concurrency must be between 1 and %d", DCI_MAX_CONCURRENCY)));

	InitMaterializedSRF(fcinfo, 0);
	b->tupstore = ((ReturnSetInfo *) fcinfo->resultinfo)->setResult;
	b->tupdesc = ((ReturnSetInfo *) fcinfo->resultinfo)->setDesc;
	if (b->nitems == 0)
		return (Datum) 0;

	b->src = dci_source_from_arg(fcinfo, true);
	batch_size = PG_ARGISNULL(5) ? b->src->batch_size : PG_GETARG_INT32(5);
	size = remembered_size(b->src, false);
	if (size)
		batch_size = Min(batch_size, *size);
	concurrency = PG_ARGISNULL(6) ? b->src->max_concurrency : PG_GETARG_INT32(6);
	/* the registry's cap, then the cluster's */
	concurrency = Min(concurrency, b->src->max_concurrency);
	concurrency = Min(concurrency, dci_max_concurrency);
	envelopes = (b->nitems + batch_size - 1) / batch_size;
	concurrency = Max(1, Min(concurrency, envelopes));
	b->size = batch_size;

	b->call_cxt = AllocSetContextCreate(CurrentMemoryContext, "dci_search_batch", ALLOCSET_DEFAULT_SIZES);
	b->rows_cxt = AllocSetContextCreate(b->call_cxt, "dci_search_batch rows", ALLOCSET_DEFAULT_SIZES);
	b->rows = MemoryContextAllocExtended(b->call_cxt, sizeof(ItemRow *) * b->nitems,
										 MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	set_token(b, dci_call_deadline(b->src));
	b->entry = dci_batch_begin(b->src->table_oid, b->src->id, b->nitems);
	PG_TRY();
	{
		dci_http_run_many(concurrency, batch_next, batch_done, b);
	}
	PG_CATCH();
	{
		/* the transfers (their bodies are in memory about to go), the slots and the progress row */
		dci_http_abort_all();
		dci_batch_end(b->entry);
		PG_RE_THROW();
	}
	PG_END_TRY();
	dci_batch_end(b->entry);
	flush_rows(b);
	Assert(b->next_out == b->nitems);
	if (b->authorization)
		dci_secret_free(b->authorization);
	MemoryContextDelete(b->call_cxt);
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(dci_search_batch);

/*
 * dci_search_batch(source, query_type, queries jsonb, reg_type, options,
 * batch_size, concurrency) RETURNS TABLE(ord, reference_id, status,
 * records, total_count, reason_code, reason_message)
 */
Datum
dci_search_batch(PG_FUNCTION_ARGS)
{
	Batch b;

	memset(&b, 0, sizeof(b));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query_type must not be NULL")));
	b.query_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	dci_check_query_type(b.query_type);
	b.queries = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	check_queries(b.query_type, b.queries);
	b.nitems = JsonContainerSize(&b.queries->root);
	return run_batch(fcinfo, &b);
}

PG_FUNCTION_INFO_V1(dci_search_by_ids);

/*
 * dci_search_by_ids(source, id_type, id_values text[], reg_type, options,
 * batch_size, concurrency) RETURNS TABLE(ord, id_value, status, records,
 * reason_code, reason_message): idtype-value items made per envelope from
 * the array, so memory does not grow with the number of ids beyond the
 * array itself and a pointer per item.
 */
Datum
dci_search_by_ids(PG_FUNCTION_ARGS)
{
	Batch b;
	bool *id_nulls = NULL;

	memset(&b, 0, sizeof(b));
	b.query_type = "idtype-value";
	if (!PG_ARGISNULL(2))
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), TEXTOID, -1, false, TYPALIGN_INT, &b.ids, &id_nulls,
						  &b.nitems);
	if (b.nitems > 0 && PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("id_type must not be NULL")));
	b.id_type = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	for (int i = 0; i < b.nitems; i++)
		if (id_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("id_values[%d] (ord %d) must not be NULL", i + 1, i + 1)));
	return run_batch(fcinfo, &b);
}
