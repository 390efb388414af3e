/*
 * dci_send.c
 *		Any endpoint of a DCI registry through the whole DCI path
 *		(dci_send), and the domain endpoints of the disability (DR) and
 *		beneficiary (IBR) registry specs built on it: envelope, signature,
 *		tokens, retries, answer verification and normalisation are
 *		dci_calls.c's and dci_answer.c's, unchanged.
 */
#include "dci_client.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "dci_answer.h"
#include "dci_calls.h"
#include "dci_envelope.h"
#include "dialect.h"
#include "errors.h"
#include "json.h"
#include "path_check.h"
#include "source.h"

/*
 * The actions a sender posts to a registry.  The header follows the action:
 * the request header for requests, the callback header (with status) for
 * notify, as the IBR's /registry/sync/enrollment/updates wants it.  Reads
 * are retried like reads; the others only where no request can have
 * reached the registry (README "Retries").
 */
typedef struct ActionRule
{
	const char *action;
	const char *callback_status; /* NULL: request header */
	bool		read_only;
} ActionRule;

static const ActionRule action_rules[] = {
	{"search", NULL, true},
	{"txn-status", NULL, true},
	{"subscribe", NULL, false},
	{"unsubscribe", NULL, false},
	{"notify", "succ", false},
};

static const ActionRule *
action_rule(const char *action)
{
	for (int i = 0; i < lengthof(action_rules); i++)
		if (strcmp(action, action_rules[i].action) == 0)
			return &action_rules[i];
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid action \"%s\"", dci_quote_text(action, strlen(action))),
			 errhint("Use search, txn-status, subscribe, unsubscribe or notify.")));
	return NULL;				/* keep compiler quiet */
}

static void
check_endpoint(const char *endpoint)
{
	const char *problem = dci_path_problem(endpoint, false);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid endpoint \"%s\"", dci_quote_text(endpoint, strlen(endpoint))),
				 errdetail("The endpoint %s.", problem)));
}

static bool
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s);
	size_t k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/*
 * The items of a *_response list: every one rejected → DC007 with the first
 * one's reason; else each item in the lenient normal form.  A dialect's "no
 * record" (OpenG2P's REG-ERR-001) is no rejection in a search_response only:
 * in a receipt (enrolled_response) or a status it says nothing was done.
 */
static void
push_response_list(JsonbParseState **st, DciSource *src, const char *what, const char *key,
				   JsonbContainer *list)
{
	bool	   search = strcmp(key, "search_response") == 0;
	int		   n = JsonContainerSize(list);
	int		   rejected = 0;
	JsonbValue *first_rejected = NULL;

	for (int i = 0; i < n; i++)
	{
		JsonbValue	   *v = getIthJsonbValueFromContainer(list, i);
		JsonbContainer *item = dci_jobject(v);
		char		   *status = dci_jstring(dci_jget(item, "status"));

		if (status && strcmp(status, "rjct") == 0 && !(search && dci_dialect_not_found(src, item)))
		{
			rejected++;
			if (first_rejected == NULL)
				first_rejected = v;
		}
	}
	if (n > 0 && rejected == n)
	{
		char *why = dci_reason_text(src, dci_jobject(first_rejected), "status_reason_code",
									"status_reason_message");

		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the %s%s%s", src->code, what,
						why ? ": " : "", why ? why : "")));
	}

	(void) pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < n; i++)
	{
		JsonbValue *v = getIthJsonbValueFromContainer(list, i);
		JsonbValue	norm;

		if (search && dci_dialect_not_found(src, dci_jobject(v)))
		{
			Jsonb *none = dci_no_records_item();

			norm.type = jbvBinary;
			norm.val.binary.data = &none->root;
			norm.val.binary.len = VARSIZE(none) - VARHDRSZ;
			v = &norm;
		}
		else if (dci_jobject(v) != NULL)
		{
			Jsonb *item = dci_normalize_item(v);

			norm.type = jbvBinary;
			norm.val.binary.data = &item->root;
			norm.val.binary.len = VARSIZE(item) - VARHDRSZ;
			v = &norm;
		}
		(void) pushJsonbValue(st, WJB_ELEM, v);
	}
	(void) pushJsonbValue(st, WJB_END_ARRAY, NULL);
}

/*
 * What dci_send returns: the answer's message (the answer itself when a
 * registry answers without an envelope, as the IBR spec lets
 * enrollment/updates and enrolled do), its *_response lists read as above.
 * An acknowledgement is returned as it came: NACK/ERR were refused already.
 */
static Jsonb *
read_message(DciSource *src, const char *what, Jsonb *answer)
{
	JsonbContainer	  *msg = dci_jobject(dci_jget(&answer->root, "message"));
	JsonbParseState	  *st = NULL;
	JsonbIterator	  *it;
	JsonbValue		   v;
	JsonbValue		  *res = NULL;
	JsonbIteratorToken tok;
	char			  *key = NULL;

	if (msg == NULL)
	{
		if (dci_jget(&answer->root, "header") != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DCI_BAD_JSON),
					 errmsg("answer to the %s from data source \"%s\" has no message object", what, src->code)));
		msg = &answer->root;
	}
	/* an acknowledgement other than ACK, wherever it stands: DC007 (NACK/ERR) or DC006 */
	{
		char *ack = dci_jstring(dci_jget(msg, "ack_status"));

		if (ack && strcmp(ack, "ACK") != 0)
			dci_check_ack(src, what, answer);
	}
	it = JsonbIteratorInit(msg);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			res = pushJsonbValue(&st, tok, &v);
		}
		else if (tok == WJB_VALUE && key && ends_with(key, "_response") && v.type == jbvBinary &&
				 JsonContainerIsArray(v.val.binary.data))
			push_response_list(&st, src, what, key, v.val.binary.data);
		else
			res = pushJsonbValue(&st, tok, tok == WJB_BEGIN_OBJECT || tok == WJB_END_OBJECT ? NULL : &v);
	}
	return JsonbValueToJsonb(res);
}

/*
 * The message as sent: the caller's, with a fresh transaction_id in front
 * when it has none; one it has is a string of 1 to 99 characters, as in
 * every spec (22023).
 */
static char *
message_text(Jsonb *message)
{
	char		  *text = dci_jsonb_to_compact(message, NULL);
	StringInfoData m;
	char		   txn[37];
	JsonbValue	  *given = dci_jget(&message->root, "transaction_id");

	if (given != NULL)
	{
		if (given->type != jbvString || given->val.string.len == 0 ||
			pg_mbstrlen_with_len(given->val.string.val, given->val.string.len) > 99)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the message's transaction_id must be a string of 1 to 99 characters")));
		return text;
	}
	dci_uuid_v4(txn);
	initStringInfo(&m);
	appendStringInfoString(&m, "{\"transaction_id\":");
	escape_json(&m, txn);
	if (JsonContainerSize(&message->root) > 0)
		appendStringInfoChar(&m, ',');
	appendStringInfoString(&m, text + 1);
	return m.data;
}

/*
 * A synchronous endpoint: a "sync" segment in its path, as every spec's
 * /registry/sync/... has.  The others (/registry/search, /registry/txn/status)
 * acknowledge and call back: posting twice starts the work twice, so they
 * are retried like writes, as dci_search_async's are.
 */
static bool
is_sync_endpoint(const char *endpoint)
{
	for (const char *p = strstr(endpoint, "/sync"); p != NULL; p = strstr(p + 1, "/sync"))
		if (p[5] == '/' || p[5] == '\0')
			return true;
	return false;
}

static Jsonb *
send_message(DciSource *src, const char *endpoint, const ActionRule *rule, const char *message,
			 int total_count, const char *what)
{
	Jsonb *answer = dci_exchange(src, endpoint, rule->action, message, total_count,
								 rule->callback_status, rule->read_only && is_sync_endpoint(endpoint),
								 what, false);

	return read_message(src, what, answer);
}

PG_FUNCTION_INFO_V1(dci_send);

/* dci_send(source, endpoint, action, message jsonb) returns jsonb */
Datum
dci_send(PG_FUNCTION_ARGS)
{
	char			 *endpoint;
	const ActionRule *rule;
	Jsonb			 *message;
	DciSource		 *src;
	char			 *what;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("endpoint, action and message must not be NULL")));
	endpoint = text_to_cstring(PG_GETARG_TEXT_PP(1));
	check_endpoint(endpoint);
	rule = action_rule(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	message = PG_GETARG_JSONB_P(3);
	if (!JB_ROOT_IS_OBJECT(message) || JB_ROOT_IS_SCALAR(message))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message must be a JSON object")));
	src = dci_source_from_arg(fcinfo, true);
	/* in every message about the call: bounded like all caller text */
	what = psprintf("%s request to %s", rule->action, dci_quote_text(endpoint, strlen(endpoint)));
	PG_RETURN_JSONB_P(send_message(src, endpoint, rule, message_text(message),
								   dci_count_requests(message), what));
}

/* ---- the domain endpoints of the DR and IBR specs ---- */

/*
 * The first item of the answer's list (one request was sent: it is the
 * answer), DC006 when there is none, DC007 when it is rejected, whatever
 * items follow it.  A dialect's "no record" was made a succ item already.
 */
static Jsonb *
first_item(DciSource *src, const char *what, Jsonb *msg, const char *list_name)
{
	JsonbValue	   *list = dci_jget(&msg->root, list_name);
	JsonbContainer *item;
	char		   *status;

	if (list == NULL || list->type != jbvBinary || !JsonContainerIsArray(list->val.binary.data) ||
		JsonContainerSize(list->val.binary.data) == 0 ||
		(item = dci_jobject(getIthJsonbValueFromContainer(list->val.binary.data, 0))) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" has no %s item", what, src->code,
						list_name)));
	status = dci_jstring(dci_jget(item, "status"));
	if (status && strcmp(status, "rjct") == 0)
	{
		char *why = dci_reason_text(src, item, "status_reason_code", "status_reason_message");

		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the %s%s%s", src->code, what,
						why ? ": " : "", why ? why : "")));
	}
	return JsonbValueToJsonb(getIthJsonbValueFromContainer(list->val.binary.data, 0));
}

/*
 * {"transaction_id":T,"<criteria_key>":{"query_type":Q[,"response_entity":R],"query":{...}}}
 * from arguments (source, query jsonb, query_type text[, response_entity text]).
 */
static char *
criteria_message(FunctionCallInfo fcinfo, const char *criteria_key, bool with_response_entity)
{
	Jsonb		  *query;
	char		  *query_type;
	StringInfoData m;
	char		   txn[37];
	bool		   first = true;
	bool		   cfirst = true;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must not be NULL")));
	query = PG_GETARG_JSONB_P(1);
	/* the specs' query is an object: an expression such as {"member.member_identifier": {"eq": ...}} */
	if (!JB_ROOT_IS_OBJECT(query) || JB_ROOT_IS_SCALAR(query))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must be a JSON object")));
	query_type = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	dci_check_query_type(query_type);

	dci_uuid_v4(txn);
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", txn, &first);
	dci_append_key(&m, criteria_key, &first);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "query_type", query_type, &cfirst);
	if (with_response_entity && PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		char *re = text_to_cstring(PG_GETARG_TEXT_PP(3));

		dci_check_response_entity(re);
		dci_append_str(&m, "response_entity", re, &cfirst);
	}
	dci_append_jsonb(&m, "query", query, &cfirst);
	appendStringInfoString(&m, "}}");
	return m.data;
}

/* a sync domain search: POST the criteria message, return the first item of list_name */
static Datum
domain_search(FunctionCallInfo fcinfo, const char *endpoint, const char *criteria_key,
			  const char *list_name, const char *what, bool with_response_entity)
{
	char	  *message = criteria_message(fcinfo, criteria_key, with_response_entity);
	DciSource *src = dci_source_from_arg(fcinfo, true);
	Jsonb	  *msg = send_message(src, endpoint, &action_rules[0], message, 1, what);

	PG_RETURN_JSONB_P(first_item(src, what, msg, list_name));
}

PG_FUNCTION_INFO_V1(dci_disability_support);

/* dci_disability_support(source, query, query_type): the first search_response item */
Datum
dci_disability_support(PG_FUNCTION_ARGS)
{
	return domain_search(fcinfo, "/registry/sync/get-disability-support", "disabled_criteria",
						 "search_response", "disability support request", false);
}

PG_FUNCTION_INFO_V1(dci_disability_details);

/* dci_disability_details(source, query, query_type): the first search_response item */
Datum
dci_disability_details(PG_FUNCTION_ARGS)
{
	return domain_search(fcinfo, "/registry/sync/get-disability-details", "disabled_criteria",
						 "search_response", "disability details request", false);
}

PG_FUNCTION_INFO_V1(dci_disabled);

/* dci_disabled(source, query, query_type): the first disabled_response item */
Datum
dci_disabled(PG_FUNCTION_ARGS)
{
	return domain_search(fcinfo, "/registry/sync/disabled", "disabled_criteria",
						 "disabled_response", "disability status request", false);
}

PG_FUNCTION_INFO_V1(dci_enrolled);

/* dci_enrolled(source, query, query_type, response_entity): the first enrolled_response item */
Datum
dci_enrolled(PG_FUNCTION_ARGS)
{
	return domain_search(fcinfo, "/registry/sync/enrolled", "enrolled_criteria",
						 "enrolled_response", "enrolment status request", true);
}

PG_FUNCTION_INFO_V1(dci_enrollment_updates);

/*
 * dci_enrollment_updates(source, beneficiaries jsonb) returns the answer's
 * message: a notify (callback header) to /registry/sync/enrollment/updates
 */
Datum
dci_enrollment_updates(PG_FUNCTION_ARGS)
{
	Jsonb		  *beneficiaries;
	DciSource	  *src;
	StringInfoData m;
	char		   txn[37];
	bool		   first = true;
	int			   n;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("beneficiaries must not be NULL")));
	beneficiaries = PG_GETARG_JSONB_P(1);
	if (!JB_ROOT_IS_ARRAY(beneficiaries) || JB_ROOT_IS_SCALAR(beneficiaries) ||
		(n = JsonContainerSize(&beneficiaries->root)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("beneficiaries must be a non-empty JSON array of objects")));
	for (int i = 0; i < n; i++)
		if (dci_jobject(getIthJsonbValueFromContainer(&beneficiaries->root, i)) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("beneficiaries must be a non-empty JSON array of objects")));
	src = dci_source_from_arg(fcinfo, true);

	dci_uuid_v4(txn);
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	dci_append_str(&m, "transaction_id", txn, &first);
	dci_append_key(&m, "enrolled_updates", &first);
	appendStringInfoChar(&m, '{');
	first = true;
	dci_append_jsonb(&m, "beneficiaries", beneficiaries, &first);
	appendStringInfoString(&m, "}}");
	PG_RETURN_JSONB_P(send_message(src, "/registry/sync/enrollment/updates", action_rule("notify"),
								   m.data, n, "enrolment update"));
}
