/*
 * dci_calls.c
 *		The DCI calls: sync and async search, pagination, transaction
 *		status, subscriptions.  Every call goes through dci_call(): tokens,
 *		retries, the 401 renewal, the time budget and cancellation apply
 *		unchanged.
 */
#include "dci_client.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "dci_answer.h"
#include "dci_calls.h"
#include "dci_envelope.h"
#include "deadline.h"
#include "dialect.h"
#include "errors.h"
#include "json.h"
#include "redaction.h"
#include "request.h"
#include "request_log.h"
#include "source.h"
#include "txn_record.h"

/* dci_search_records stops here unless max_records says otherwise */
#define DCI_RECORDS_HARD_CAP 100000
#define DCI_MAX_PAGE_SIZE	 1000

/* dci_subscribe's notify_record_type when the caller gives none (README, "DCI layer") */
#define DCI_DEFAULT_NOTIFY_RECORD_TYPE "spdci-extensions-dci:Person"

static const char *const query_types[] = {"idtype-value", "expression", "predicate", "graphql"};

/* POST an envelope to a DCI endpoint and parse the answer; every call is logged */
static Jsonb *
exchange_as(DciSource *src, const char *path, const char *action, const char *message,
			int total_count, const char *callback_status, bool read_only, const char *what,
			bool need_header)
{
	size_t			len;
	char		   *envelope = dci_build_envelope_as(src, action, message, total_count, callback_status,
													 &len);
	DciHttpResponse resp;
	DciError		err = {0};
	Jsonb *volatile answer = NULL;

	dci_redact_sent_signature(envelope, len);
	dci_log_begin(src, "POST", path);
	PG_TRY();
	{
		if (!dci_call(src, "POST", path, envelope, len, NULL, dci_call_deadline(src),
					  read_only, true, &resp, &err))
			dci_error_raise(&err);
		answer = dci_parse_answer(src, what, &resp, need_header);
	}
	PG_CATCH();
	{
		dci_log_failed();
		PG_RE_THROW();
	}
	PG_END_TRY();
	dci_log_end();
	return answer;
}

static Jsonb *
exchange(DciSource *src, const char *path, const char *action, const char *message,
		 int total_count, bool read_only, const char *what, bool need_header)
{
	return exchange_as(src, path, action, message, total_count, NULL, read_only, what, need_header);
}

Jsonb *
dci_exchange(DciSource *src, const char *path, const char *action, const char *message,
			 int total_count, const char *callback_status, bool read_only, const char *what,
			 bool need_header)
{
	return exchange_as(src, path, action, message, total_count, callback_status, read_only, what,
					   need_header);
}

/*
 * An asynchronous call: its dci_transaction row is committed (txn_record.c)
 * before the request goes out, then marked acked, or failed when the call
 * or its acknowledgement fails.
 */
static void
exchange_async(DciSource *src, const char *path, const char *action, const char *message,
			   int total_count, const char *what, const char *txn,
			   const char *sub_event, const char *sub_filter)
{
	size_t			len;
	char			msgid[37];
	char		   *envelope = dci_build_envelope_id(src, action, message, total_count, &len, msgid);
	DciHttpResponse resp;
	DciError		err = {0};
	DciTxnRecord   *volatile rec = NULL;

	rec = dci_txn_record_begin(src, txn, action, msgid, path, sub_event, sub_filter);
	dci_log_begin(src, "POST", path);
	PG_TRY();
	{
		Jsonb	   *answer;

		if (!dci_call(src, "POST", path, envelope, len, NULL, dci_call_deadline(src),
					  false, true, &resp, &err))
			dci_error_raise(&err);
		answer = dci_parse_answer(src, what, &resp, false);
		dci_check_ack(src, what, answer);
	}
	PG_CATCH();
	{
		dci_log_failed();
		dci_txn_record_end(rec, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	dci_log_end();
	dci_txn_record_end(rec, true);
}

/* ---- search ---- */

typedef struct SearchArgs
{
	const char *query_type;
	Jsonb	   *query;
	const char *reg_type;
	int32		page_size;
	int32		page_number;
	Jsonb	   *options;
	const char *transaction_id;
} SearchArgs;

/*
 * The search_criteria members a caller may set, as the five registry specs
 * define them (version, reg_type, query_type, query and pagination come
 * from the arguments); locale and transaction_id go elsewhere.
 */
static const char *const criteria_options[] = {"sort", "reg_event_type", "reg_record_type", "consent",
											   "authorize", "response_entity"};

static void
check_search_args(SearchArgs *a)
{
	bool ok = false;

	for (int i = 0; i < lengthof(query_types); i++)
		if (a->query_type && strcmp(a->query_type, query_types[i]) == 0)
			ok = true;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid query_type \"%s\"", a->query_type ? a->query_type : "NULL"),
				 errhint("Use idtype-value, expression, predicate or graphql.")));
	if (a->query == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must not be NULL")));
	if (a->page_size < 1 || a->page_size > DCI_MAX_PAGE_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_size must be between 1 and %d", DCI_MAX_PAGE_SIZE)));
	if (a->page_number < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("page_number must be 1 or more")));
	dci_check_search_options(a->options);
}

void
dci_check_query_type(const char *query_type)
{
	bool ok = false;

	for (int i = 0; i < lengthof(query_types); i++)
		if (query_type && strcmp(query_type, query_types[i]) == 0)
			ok = true;
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid query_type \"%s\"", query_type ? dci_quote_text(query_type, strlen(query_type)) : "NULL"),
				 errhint("Use idtype-value, expression, predicate or graphql.")));
}

/* the specs' response_entity (Social search_criteria, IBR enrolled_criteria) */
void
dci_check_response_entity(const char *response_entity)
{
	if (strcmp(response_entity, "Group") != 0 && strcmp(response_entity, "Member") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid response_entity \"%s\"", dci_quote_text(response_entity, strlen(response_entity))),
				 errhint("Use Group or Member.")));
}

static void
check_option_type(Jsonb *options, const char *key, enum jbvType type, const char *what)
{
	JsonbValue *v = dci_jget(&options->root, key);

	if (v && v->type != type)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search option \"%s\" must be %s", key, what)));
}

static void
check_option_container(Jsonb *options, const char *key, bool object)
{
	JsonbValue *v = dci_jget(&options->root, key);

	if (v && (v->type != jbvBinary ||
			  (object ? !JsonContainerIsObject(v->val.binary.data) : !JsonContainerIsArray(v->val.binary.data))))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search option \"%s\" must be a JSON %s", key, object ? "object" : "array")));
}

void
dci_check_search_options(Jsonb *options)
{
	if (options)
	{
		JsonbIterator	  *it;
		JsonbValue		   v;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(options) || JB_ROOT_IS_SCALAR(options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options must be a JSON object")));
		it = JsonbIteratorInit(&options->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char *key;
			bool  known = false;

			if (tok != WJB_KEY)
				continue;
			key = pnstrdup(v.val.string.val, v.val.string.len);
			for (int i = 0; i < lengthof(criteria_options); i++)
				if (strcmp(key, criteria_options[i]) == 0)
					known = true;
			if (strcmp(key, "locale") == 0 || strcmp(key, "transaction_id") == 0)
				known = true;
			if (!known)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown search option \"%s\"", key),
						 errhint("Options are sort, reg_event_type, reg_record_type, response_entity, consent, authorize, locale and transaction_id.")));
		}
		/* the shapes the specs give them: a string, a list, objects */
		check_option_type(options, "response_entity", jbvString, "a string");
		{
			char *re = dci_jstring(dci_jget(&options->root, "response_entity"));

			if (re)
				dci_check_response_entity(re);
		}
		check_option_type(options, "reg_record_type", jbvString, "a string");
		check_option_type(options, "locale", jbvString, "a string");
		check_option_type(options, "transaction_id", jbvString, "a string");
		check_option_container(options, "sort", false);
		check_option_container(options, "consent", true);
		check_option_container(options, "authorize", true);
	}
}

/* an option's value as compact JSON text, NULL when absent */
static char *
option_text(Jsonb *options, const char *key)
{
	JsonbValue *v;

	if (options == NULL)
		return NULL;
	v = dci_jget(&options->root, key);
	if (v == NULL)
		return NULL;
	return dci_jsonb_to_compact(JsonbValueToJsonb(v), NULL);
}

static char *
option_string(Jsonb *options, const char *key)
{
	JsonbValue *v = options ? dci_jget(&options->root, key) : NULL;

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search option \"%s\" must be a string", key)));
	return dci_jstring(v);
}

/* the message's transaction_id: the option's, or a fresh UUID */
char *
dci_search_transaction_id(Jsonb *options)
{
	char *t = option_string(options, "transaction_id");

	if (t == NULL)
	{
		t = palloc(37);
		dci_uuid_v4(t);
	}
	if (strlen(t) > 99)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id is longer than 99 characters")));
	return t;
}

/* the option as a search_criteria member; false when it is absent */
static bool
append_option(StringInfo m, Jsonb *options, const char *key, bool *cfirst)
{
	char *t = option_text(options, key);

	if (t == NULL)
		return false;
	dci_append_key(m, key, cfirst);
	appendStringInfoString(m, t);
	return true;
}

void
dci_append_search_item(StringInfo m, DciSource *src, const char *ref, const char *query_type,
					   Jsonb *query, const char *reg_type_arg, Jsonb *options,
					   int page_size, int page_number)
{
	char		ts[32];
	bool		first = true;
	bool		cfirst = true;
	const char *reg_type = reg_type_arg ? reg_type_arg : src->registry_type;
	char	   *locale = option_string(options, "locale");
	char	   *id_type = NULL;
	char	   *query_text = dci_dialect_id_query(src, &query_type, query,
												 option_text(options, "reg_event_type"), &id_type);
	char	   *event = dci_dialect_event_type(src, option_text(options, "reg_event_type"), id_type);
	char	   *block;

	dci_timestamp_now(ts, sizeof(ts));
	/* OpenG2P's reg_type is the literal "Individual", whatever the routing type */
	if (src->dialect == DCI_DIALECT_OPENG2P)
		reg_type = "Individual";
	appendStringInfoChar(m, '{');
	dci_append_str(m, "reference_id", ref, &first);
	dci_append_str(m, "timestamp", ts, &first);
	dci_append_key(m, "search_criteria", &first);
	appendStringInfoChar(m, '{');
	dci_append_str(m, "version", DCI_VERSION_STRING, &cfirst);
	if (reg_type)
		dci_append_str(m, "reg_type", reg_type, &cfirst);
	if (event)
	{
		dci_append_key(m, "reg_event_type", &cfirst);
		appendStringInfoString(m, event);
	}
	if (!append_option(m, options, "reg_record_type", &cfirst) && src->dialect == DCI_DIALECT_OPENG2P)
		dci_append_str(m, "reg_record_type", "Individual", &cfirst);
	dci_append_str(m, "query_type", query_type, &cfirst);
	(void) append_option(m, options, "response_entity", &cfirst);
	if (query_text)
	{
		dci_append_key(m, "query", &cfirst);
		appendStringInfoString(m, query_text);
	}
	else
		dci_append_jsonb(m, "query", query, &cfirst);
	if (!append_option(m, options, "sort", &cfirst) && src->dialect == DCI_DIALECT_OPENCRVS)
	{
		/* OpenCRVS pages by creation time */
		dci_append_key(m, "sort", &cfirst);
		appendStringInfoString(m, "[{\"attribute_name\":\"createdAt\",\"sort_order\":\"asc\"}]");
	}
	dci_append_key(m, "pagination", &cfirst);
	appendStringInfo(m, "{\"page_size\":%d,\"page_number\":%d}", page_size, page_number);
	/* OpenCRVS reads consent from the request item, not the criteria */
	if (src->dialect != DCI_DIALECT_OPENCRVS &&
		!append_option(m, options, "consent", &cfirst) &&
		(block = dci_dialect_default_block(src, "consent", ts)) != NULL)
	{
		dci_append_key(m, "consent", &cfirst);
		appendStringInfoString(m, block);
	}
	if (!append_option(m, options, "authorize", &cfirst) &&
		(block = dci_dialect_default_block(src, "authorize", ts)) != NULL)
	{
		dci_append_key(m, "authorize", &cfirst);
		appendStringInfoString(m, block);
	}
	appendStringInfoChar(m, '}');
	if (src->dialect == DCI_DIALECT_OPENCRVS &&
		!append_option(m, options, "consent", &first) &&
		(block = dci_dialect_default_block(src, "consent", ts)) != NULL)
	{
		dci_append_key(m, "consent", &first);
		appendStringInfoString(m, block);
	}
	/* OpenCRVS requires a locale: its default language code */
	if (locale == NULL && src->dialect == DCI_DIALECT_OPENCRVS)
		locale = "eng";
	if (locale)
		dci_append_str(m, "locale", locale, &first);
	appendStringInfoChar(m, '}');
}

/* the search message (one search_request); *txn receives the transaction id */
static char *
search_message(DciSource *src, SearchArgs *a, char **txn)
{
	StringInfoData m;
	char		   ref[37];
	bool		   first = true;

	if (a->transaction_id)
		*txn = pstrdup(a->transaction_id);
	else
		*txn = dci_search_transaction_id(a->options);
	if (strlen(*txn) > 99)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id is longer than 99 characters")));
	dci_uuid_v4(ref);

	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", *txn, &first);
	dci_append_key(&m, "search_request", &first);
	appendStringInfoChar(&m, '[');
	dci_append_search_item(&m, src, ref, a->query_type, a->query, a->reg_type, a->options,
						   a->page_size, a->page_number);
	appendStringInfoString(&m, "]}");
	return m.data;
}

/* the normal form of "no record": what a dialect's not-found answer reads as */
Jsonb *
dci_no_records_item(void)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											  CStringGetDatum("{\"status\":\"succ\",\"data\":{\"reg_records\":[]}}")));
}

/* one sync search; returns the first search_response item, normalised */
static Jsonb *
search_once(DciSource *src, SearchArgs *a)
{
	char		   *txn;
	char		   *message = search_message(src, a, &txn);
	Jsonb		   *answer = exchange(src, src->search_endpoint, "search", message, 1, true,
									  "search", true);
	JsonbContainer *msg = dci_jobject(dci_jget(&answer->root, "message"));
	JsonbValue	   *list = dci_jget(msg, "search_response");
	JsonbValue	   *first;
	JsonbContainer *item;
	char		   *status;

	if (src->dialect == DCI_DIALECT_OPENG2P && list && list->type == jbvBinary &&
		JsonContainerIsArray(list->val.binary.data) && JsonContainerSize(list->val.binary.data) == 0)
		return dci_no_records_item();
	if (list == NULL || list->type != jbvBinary || !JsonContainerIsArray(list->val.binary.data) ||
		JsonContainerSize(list->val.binary.data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("search answer from data source \"%s\" has no search_response item", src->code)));
	first = getIthJsonbValueFromContainer(list->val.binary.data, 0);
	item = dci_jobject(first);
	if (item == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("search_response item from data source \"%s\" is not an object", src->code)));
	status = dci_jstring(dci_jget(item, "status"));
	if (dci_dialect_not_found(src, item))
		return dci_no_records_item();
	if (status && strcmp(status, "rjct") == 0)
	{
		char *why = dci_reason_text(src, item, "status_reason_code", "status_reason_message");

		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the search%s%s", src->code,
						why ? ": " : "", why ? why : "")));
	}
	return dci_normalize_item(first);
}

static void
read_search_args(FunctionCallInfo fcinfo, SearchArgs *a, bool with_pagination_args)
{
	memset(a, 0, sizeof(*a));
	a->query_type = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	a->query = PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2);
	a->reg_type = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));
	a->page_size = PG_ARGISNULL(4) ? 100 : PG_GETARG_INT32(4);
	a->page_number = 1;
	if (with_pagination_args)
	{
		a->page_number = PG_ARGISNULL(5) ? 1 : PG_GETARG_INT32(5);
		a->options = PG_ARGISNULL(6) ? NULL : PG_GETARG_JSONB_P(6);
	}
	check_search_args(a);
}

PG_FUNCTION_INFO_V1(dci_search);

/* dci_search(source, query_type, query, reg_type, page_size, page_number, options) */
Datum
dci_search(PG_FUNCTION_ARGS)
{
	SearchArgs a;
	DciSource *src;

	read_search_args(fcinfo, &a, true);
	src = dci_source_from_arg(fcinfo, true);
	PG_RETURN_JSONB_P(search_once(src, &a));
}

/* ---- paging through records ---- */

typedef struct RecordsState
{
	DciSource	 *src;
	SearchArgs	  args;
	MemoryContext page_cxt;		/* holds one page at a time */
	Jsonb		 *page;			/* normalised item of the current page */
	int			  page_records; /* records in the current page */
	int			  next_record;	/* index of the next record to return */
	int64		  total_count;	/* -1: registry did not say */
	int64		  returned;
	int64		  limit;
	bool		  last_page;
	char		  code[NAMEDATALEN * 2];
	int32		  source_id;
} RecordsState;

static JsonbContainer *
records_of(Jsonb *item)
{
	JsonbContainer *data = dci_jobject(dci_jget(&item->root, "data"));
	JsonbValue	   *recs = dci_jget(data, "reg_records");

	if (recs && recs->type == jbvBinary && JsonContainerIsArray(recs->val.binary.data))
		return recs->val.binary.data;
	return NULL;
}

static void
fetch_page(RecordsState *st)
{
	MemoryContext	old;
	JsonbContainer *recs;
	JsonbContainer *pag;

	MemoryContextReset(st->page_cxt);
	old = MemoryContextSwitchTo(st->page_cxt);
	st->page = search_once(st->src, &st->args);
	MemoryContextSwitchTo(old);

	recs = records_of(st->page);
	st->page_records = recs ? JsonContainerSize(recs) : 0;
	st->next_record = 0;
	pag = dci_jobject(dci_jget(&st->page->root, "pagination"));
	if (pag)
	{
		int64 t = dci_jcount(dci_jget(pag, "total_count"));

		if (t >= 0)
			st->total_count = t;
	}
	/*
	 * With a total_count, only an empty page ends early: registries that cap
	 * their page size answer short pages and count pages in their own size.
	 * Without one, a short page is the last.
	 */
	if (st->total_count >= 0)
		st->last_page = st->page_records == 0;
	else
		st->last_page = st->page_records < st->args.page_size;
	st->args.page_number++;
}

static Datum
records_next(FunctionCallInfo fcinfo, bool *done)
{
	FuncCallContext *funcctx = SRF_PERCALL_SETUP();
	RecordsState	*st = funcctx->user_fctx;
	JsonbValue		*v;

	*done = true;
	if (st->returned >= st->limit || (st->total_count >= 0 && st->returned >= st->total_count))
		return (Datum) 0;
	if (st->next_record >= st->page_records)
	{
		if (st->page == NULL || st->last_page)
		{
			if (st->page != NULL)
				return (Datum) 0;
		}
		/* the cached source may have been invalidated between rows */
		st->src = dci_source_by_id(st->source_id, true);
		fetch_page(st);
		if (st->page_records == 0)
			return (Datum) 0;
	}
	v = getIthJsonbValueFromContainer(records_of(st->page), st->next_record++);
	st->returned++;
	*done = false;
	return JsonbPGetDatum(JsonbValueToJsonb(v));
}

PG_FUNCTION_INFO_V1(dci_search_records);

/* dci_search_records(source, query_type, query, reg_type, page_size, max_records) */
Datum
dci_search_records(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;
	bool			 done;
	Datum			 result;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		RecordsState *st;
		DciSource	 *src;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		st = palloc0(sizeof(RecordsState));
		read_search_args(fcinfo, &st->args, false);
		if (!PG_ARGISNULL(5) && PG_GETARG_INT32(5) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_records must not be negative")));
		st->limit = PG_ARGISNULL(5) ? DCI_RECORDS_HARD_CAP : PG_GETARG_INT32(5);
		src = dci_source_from_arg(fcinfo, true);
		st->source_id = src->id;
		st->src = src;
		st->total_count = -1;
		st->page_cxt = AllocSetContextCreate(funcctx->multi_call_memory_ctx,
											 "dci_search_records page", ALLOCSET_DEFAULT_SIZES);
		funcctx->user_fctx = st;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	result = records_next(fcinfo, &done);
	if (done)
	{
		RecordsState *st = funcctx->user_fctx;

		/* warn only when the cap cut the stream, not when it ended there */
		if (PG_ARGISNULL(5) && st->returned >= DCI_RECORDS_HARD_CAP &&
			(st->total_count > st->returned ||
			 (st->total_count < 0 && !(st->last_page && st->next_record >= st->page_records))))
			ereport(WARNING,
					(errmsg("dci_search_records stopped after %d records", DCI_RECORDS_HARD_CAP),
					 errhint("Pass max_records to read more.")));
		SRF_RETURN_DONE(funcctx);
	}
	SRF_RETURN_NEXT(funcctx, result);
}

/* ---- asynchronous calls: search, subscribe, unsubscribe ---- */

/* check the acknowledgement of an asynchronous call (ACK; NACK/ERR → DC007) */
void
dci_check_ack(DciSource *src, const char *what, Jsonb *answer)
{
	JsonbContainer *msg = dci_jobject(dci_jget(&answer->root, "message"));
	char		   *ack = dci_jstring(dci_jget(msg, "ack_status"));

	if (ack == NULL)
		ack = dci_jstring(dci_jget(&answer->root, "ack_status"));
	if (ack && strcmp(ack, "ACK") == 0)
		return;
	if (ack && (strcmp(ack, "NACK") == 0 || strcmp(ack, "ERR") == 0))
	{
		char *why = dci_reason_text(src, dci_jobject(dci_jget(msg, "error")), "code", "message");

		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" did not accept the %s: %s%s%s",
						src->code, what, ack, why ? ": " : "", why ? why : "")));
	}
	ereport(ERROR,
			(errcode(ERRCODE_DCI_BAD_JSON),
			 errmsg("answer to the %s from data source \"%s\" has no acknowledgement", what, src->code),
			 errdetail("Expected message.ack_status ACK, NACK or ERR.")));
}

PG_FUNCTION_INFO_V1(dci_search_async);

Datum
dci_search_async(PG_FUNCTION_ARGS)
{
	SearchArgs a;
	DciSource *src;
	char	  *txn;
	char	  *message;

	read_search_args(fcinfo, &a, true);
	src = dci_source_from_arg(fcinfo, true);
	message = search_message(src, &a, &txn);
	exchange_async(src, "/registry/search", "search", message, 1, "asynchronous search", txn, NULL, NULL);
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}

/* ---- transaction status ---- */

static const char *const txn_types[] = {"search", "subscribe", "unsubscribe", "receipt"};

/*
 * A text[] argument as a JSON array of strings; 22023 for an empty one, a
 * NULL element, or (max_len > 0) an element longer than max_len characters.
 */
static char *
text_array_json(FunctionCallInfo fcinfo, int arg, const char *name, int max_len)
{
	ArrayType	  *arr = PG_GETARG_ARRAYTYPE_P(arg);
	Datum		  *elems;
	bool		  *nulls;
	int			   n;
	StringInfoData b;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be empty", name)));
	initStringInfo(&b);
	appendStringInfoChar(&b, '[');
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s must not contain NULL", name)));
		if (max_len > 0 && DatumGetInt32(DirectFunctionCall1(textlen, elems[i])) > max_len)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("%s holds a value longer than %d characters", name, max_len)));
		if (i)
			appendStringInfoChar(&b, ',');
		escape_json(&b, TextDatumGetCString(elems[i]));
	}
	appendStringInfoChar(&b, ']');
	return b.data;
}

void
dci_txn_status_args(FunctionCallInfo fcinfo, int first, DciTxnStatusQuery *q)
{
	int given = 0;
	int nargs = PG_NARGS();

	q->txn_type = "search";
	q->attribute_type = NULL;
	q->attribute_value = NULL;
	if (nargs > first + 1 && !PG_ARGISNULL(first + 1))
	{
		char *t = text_to_cstring(PG_GETARG_TEXT_PP(first + 1));
		bool  ok = false;

		for (int i = 0; i < lengthof(txn_types); i++)
			if (strcmp(t, txn_types[i]) == 0)
				q->txn_type = txn_types[i], ok = true;
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid txn_type \"%s\"", dci_quote_text(t, strlen(t))),
					 errhint("Use search, subscribe, unsubscribe or receipt.")));
	}
	if (!PG_ARGISNULL(first))
	{
		StringInfoData b;
		char		  *t = text_to_cstring(PG_GETARG_TEXT_PP(first));

		if (strlen(t) > 99)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("transaction_id is longer than 99 characters")));
		initStringInfo(&b);
		escape_json(&b, t);
		q->attribute_type = "transaction_id";
		q->attribute_value = b.data;
		given++;
	}
	if (nargs > first + 2 && !PG_ARGISNULL(first + 2))
	{
		q->attribute_type = "reference_id_list";
		q->attribute_value = text_array_json(fcinfo, first + 2, "reference_ids", 0);
		given++;
	}
	if (nargs > first + 3 && !PG_ARGISNULL(first + 3))
	{
		StringInfoData b;
		char		  *t = text_to_cstring(PG_GETARG_TEXT_PP(first + 3));

		/* the specs' correlation_id: a string of at most 99 characters */
		if (pg_mbstrlen(t) > 99)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("correlation_id is longer than 99 characters")));
		initStringInfo(&b);
		escape_json(&b, t);
		q->attribute_type = "correlation_id";
		q->attribute_value = b.data;
		given++;
	}
	if (nargs > first + 4 && !PG_ARGISNULL(first + 4))
	{
		q->attribute_type = "subscription_code_list";
		q->attribute_value = text_array_json(fcinfo, first + 4, "subscription_codes", 99);
		given++;
	}
	if (given == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id must not be NULL"),
				 nargs > first + 2 ? errhint("Or ask by reference_ids, correlation_id or subscription_codes.") : 0));
	if (given > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give only one of transaction_id, reference_ids, correlation_id and subscription_codes")));
}

char *
dci_txn_status_message(const DciTxnStatusQuery *q, char **txn)
{
	char		   ref[37];
	StringInfoData m;
	bool		   first = true;
	bool		   rfirst = true;

	*txn = palloc(37);
	dci_uuid_v4(*txn);
	dci_uuid_v4(ref);
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", *txn, &first);
	dci_append_key(&m, "txnstatus_request", &first);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "reference_id", ref, &rfirst);
	dci_append_str(&m, "txn_type", q->txn_type, &rfirst);
	dci_append_str(&m, "attribute_type", q->attribute_type, &rfirst);
	dci_append_key(&m, "attribute_value", &rfirst);
	appendStringInfoString(&m, q->attribute_value);
	appendStringInfoString(&m, "}}");
	return m.data;
}

PG_FUNCTION_INFO_V1(dci_txn_status);

/*
 * dci_txn_status(source, transaction_id, txn_type, reference_ids,
 * correlation_id, subscription_codes) returns the txnstatus_response
 */
Datum
dci_txn_status(PG_FUNCTION_ARGS)
{
	DciSource		 *src;
	DciTxnStatusQuery q;
	char			 *txn;
	char			 *message;
	Jsonb			 *answer;
	JsonbContainer	 *msg;
	JsonbValue		 *resp;

	dci_txn_status_args(fcinfo, 1, &q);
	src = dci_source_from_arg(fcinfo, true);
	message = dci_txn_status_message(&q, &txn);
	answer = exchange(src, "/registry/sync/txn/status", "txn-status", message, 1, true,
					  "transaction status request", true);
	msg = dci_jobject(dci_jget(&answer->root, "message"));
	resp = dci_jget(msg, "txnstatus_response");
	if (resp == NULL)
		PG_RETURN_JSONB_P(JsonbValueToJsonb(dci_jget(&answer->root, "message")));
	PG_RETURN_JSONB_P(JsonbValueToJsonb(resp));
}

PG_FUNCTION_INFO_V1(dci_txn_status_async);

/*
 * dci_txn_status_async(source, transaction_id, txn_type, reference_ids,
 * correlation_id, subscription_codes) returns the transaction id of the
 * request; the answer comes as txn-on-status (dci_receive, dci_await)
 */
Datum
dci_txn_status_async(PG_FUNCTION_ARGS)
{
	DciTxnStatusQuery q;
	DciSource  *src;
	char	   *txn;
	char	   *message;

	/* the arguments and the message of dci_txn_status (one builder) */
	dci_txn_status_args(fcinfo, 1, &q);
	src = dci_source_from_arg(fcinfo, true);
	message = dci_txn_status_message(&q, &txn);

	exchange_async(src, "/registry/txn/status", "txn-status", message, 1,
				   "asynchronous transaction status request", txn, NULL, NULL);
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}

PG_FUNCTION_INFO_V1(dci_subscribe);

/* dci_subscribe(source, reg_event_type, filter, notify_record_type) returns transaction id */
Datum
dci_subscribe(PG_FUNCTION_ARGS)
{
	DciSource	  *src;
	char		  *event;
	Jsonb		  *filter;
	char		   txn[37];
	char		   ref[37];
	char		   ts[32];
	StringInfoData m;
	bool		   first = true;
	bool		   cfirst = true;
	const char	  *filter_type;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reg_event_type must not be NULL")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	filter = PG_ARGISNULL(2) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"type\":\"*\",\"value\":\"*\"}"))) : PG_GETARG_JSONB_P(2);
	src = dci_source_from_arg(fcinfo, true);
	/* the filter's shape says its type, as for search queries */
	filter_type = JB_ROOT_IS_ARRAY(filter) && !JB_ROOT_IS_SCALAR(filter) ? "predicate" : (dci_jget(&filter->root, "type") && dci_jget(&filter->root, "value")) ? "idtype-value"
																																							   : "expression";

	dci_uuid_v4(txn);
	dci_uuid_v4(ref);
	dci_timestamp_now(ts, sizeof(ts));
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", txn, &first);
	dci_append_key(&m, "subscribe_request", &first);
	appendStringInfoString(&m, "[{");
	first = true;
	dci_append_str(&m, "reference_id", ref, &first);
	dci_append_str(&m, "timestamp", ts, &first);
	dci_append_key(&m, "subscribe_criteria", &first);
	appendStringInfoChar(&m, '{');
	if (src->registry_type)
		dci_append_str(&m, "reg_type", src->registry_type, &cfirst);
	{
		StringInfoData e;
		char		  *sent;

		initStringInfo(&e);
		escape_json(&e, event);
		sent = dci_dialect_event_type(src, e.data, NULL);
		dci_append_key(&m, "reg_event_type", &cfirst);
		appendStringInfoString(&m, sent);
	}
	dci_append_str(&m, "filter_type", filter_type, &cfirst);
	dci_append_jsonb(&m, "filter", filter, &cfirst);
	/* required by every registry spec: the record type of a person when not given */
	dci_append_str(&m, "notify_record_type",
				   PG_ARGISNULL(3) ? DCI_DEFAULT_NOTIFY_RECORD_TYPE : text_to_cstring(PG_GETARG_TEXT_PP(3)),
				   &cfirst);
	appendStringInfoString(&m, "}}]}");

	exchange_async(src, "/registry/subscribe", "subscribe", m.data, 1, "subscription", txn,
				   event, dci_jsonb_to_compact(filter, NULL));
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}

PG_FUNCTION_INFO_V1(dci_unsubscribe);

/* dci_unsubscribe(source, subscription_codes text[]) returns transaction id */
Datum
dci_unsubscribe(PG_FUNCTION_ARGS)
{
	DciSource	  *src;
	ArrayType	  *codes;
	Datum		  *elems;
	bool		  *nulls;
	int			   n;
	char		   txn[37];
	char		   ts[32];
	StringInfoData m;
	bool		   first = true;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription_codes must not be NULL")));
	codes = PG_GETARG_ARRAYTYPE_P(1);
	deconstruct_array(codes, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("subscription_codes must not be empty")));
	src = dci_source_from_arg(fcinfo, true);

	dci_uuid_v4(txn);
	dci_timestamp_now(ts, sizeof(ts));
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", txn, &first);
	dci_append_str(&m, "timestamp", ts, &first);
	dci_append_key(&m, "subscription_codes", &first);
	appendStringInfoChar(&m, '[');
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("subscription_codes must not contain NULL")));
		if (i)
			appendStringInfoChar(&m, ',');
		escape_json(&m, TextDatumGetCString(elems[i]));
	}
	appendStringInfoString(&m, "]}");

	exchange_async(src, "/registry/unsubscribe", "unsubscribe", m.data, n, "unsubscription", txn,
				   NULL, NULL);
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}
