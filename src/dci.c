/*
 * dci.c
 *		The DCI layer: envelopes, sync and async search, pagination,
 *		transaction status, subscriptions.
 *
 * Envelopes are written as compact JSON text (the exact bytes sent, so the
 * signature covers what the registry parses); answers are parsed with
 * PostgreSQL's JSON parser into jsonb and read leniently, the way real
 * registries deviate from the schemas: counts as strings, empty strings for
 * objects, reg_records as an object, a sync answer saying "rcvd".  Every
 * call goes through dci_call(): tokens, retries, the 401 renewal, the time
 * budget and cancellation apply unchanged.
 */
#include "dci_client.h"

#include <sys/time.h>

#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "common/pg_prng.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "request_log.h"
#include "json_guard.h"
#include "redaction.h"
#include "sign.h"

#define DCI_VERSION_STRING "1.0.0"
/* dci_search_records stops here unless max_records says otherwise */
#define DCI_RECORDS_HARD_CAP 100000
#define DCI_MAX_PAGE_SIZE 1000

static const char *const query_types[] = {"idtype-value", "expression", "predicate", "graphql"};

/* ---- small writers ---- */

/*
 * A random (version 4) UUID for message and reference ids.  They must be
 * unique, not secret: a per-backend generator seeded once from the strong
 * source spares OpenSSL's per-call fork check.
 */
static void
uuid_v4(char *out)
{
	static pg_prng_state prng;
	static bool seeded = false;
	unsigned char b[16];
	uint64		r[2];

	if (!seeded)
	{
		if (!pg_prng_strong_seed(&prng))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not seed the message id generator")));
		seeded = true;
	}
	r[0] = pg_prng_uint64(&prng);
	r[1] = pg_prng_uint64(&prng);
	memcpy(b, r, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	/* 8-4-4-4-12 hex digits, by hand: snprintf costs more than the rest of it */
	for (int i = 0, o = 0; i < 16; i++)
	{
		static const char hex[] = "0123456789abcdef";

		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[b[i] >> 4];
		out[o++] = hex[b[i] & 0x0f];
		out[o] = '\0';
	}
}

/* wall clock, UTC, ISO 8601 with milliseconds */
static void
timestamp_now(char *out, size_t len)
{
	struct timeval tv;
	struct tm	tm;

	int			fields[7];
	static const int widths[7] = {4, 2, 2, 2, 2, 2, 3};
	static const char seps[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
	int			o = 0;

	Assert(len >= 25);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	fields[0] = tm.tm_year + 1900;
	fields[1] = tm.tm_mon + 1;
	fields[2] = tm.tm_mday;
	fields[3] = tm.tm_hour;
	fields[4] = tm.tm_min;
	fields[5] = tm.tm_sec;
	fields[6] = (int) (tv.tv_usec / 1000);
	/* YYYY-MM-DDTHH:MM:SS.mmmZ, by hand (this runs twice per message) */
	for (int f = 0; f < 7; f++)
	{
		int			v = fields[f];

		for (int d = widths[f] - 1; d >= 0; d--)
		{
			out[o + d] = (char) ('0' + v % 10);
			v /= 10;
		}
		o += widths[f];
		out[o++] = seps[f];
	}
	out[o] = '\0';
}

static void
append_key(StringInfo buf, const char *key, bool *first)
{
	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

static void
append_str(StringInfo buf, const char *key, const char *value, bool *first)
{
	append_key(buf, key, first);
	escape_json(buf, value);
}

/* a jsonb value embedded as compact text */
static void
append_jsonb(StringInfo buf, const char *key, Jsonb *value, bool *first)
{
	append_key(buf, key, first);
	appendStringInfoString(buf, dci_jsonb_to_compact(value, NULL));
}

/*
 * The envelope text: {"header":{...},"message":<message>,"signature":"..."}
 * The signature covers {"header":H,"message":M} exactly as sent.
 */
static char *
build_envelope(DciSource *src, const char *action, const char *message, int total_count,
			   size_t *len)
{
	StringInfoData hm;
	StringInfoData out;
	char		msgid[37];
	char		ts[32];
	bool		first = true;
	char	   *signature;

	/* registries route and verify by sender_id: an envelope without one is refused there */
	if (src->sender_id == NULL || *src->sender_id == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("data source \"%s\" has no sender_id", src->code),
				 errhint("Set sender_id (this system's DCI identifier, e.g. openspp.example.org) before sending DCI messages.")));
	uuid_v4(msgid);
	timestamp_now(ts, sizeof(ts));

	initStringInfo(&hm);
	appendStringInfoString(&hm, "{\"header\":{");
	append_str(&hm, "version", DCI_VERSION_STRING, &first);
	append_str(&hm, "message_id", msgid, &first);
	append_str(&hm, "message_ts", ts, &first);
	append_str(&hm, "action", action, &first);
	append_str(&hm, "sender_id", src->sender_id, &first);
	if (src->callback_uri)
		append_str(&hm, "sender_uri", src->callback_uri, &first);
	append_str(&hm, "receiver_id", src->receiver_id ? src->receiver_id : src->base_url, &first);
	append_key(&hm, "total_count", &first);
	appendStringInfo(&hm, "%d", total_count);
	append_key(&hm, "is_msg_encrypted", &first);
	appendStringInfoString(&hm, "false");
	append_key(&hm, "meta", &first);
	appendStringInfoString(&hm, "{}");
	appendStringInfoString(&hm, "},\"message\":");
	appendStringInfoString(&hm, message);
	appendStringInfoChar(&hm, '}');

	signature = dci_signature_for_source(src, hm.data, hm.len);

	/* the same text, with the signature after header and message */
	initStringInfo(&out);
	appendBinaryStringInfo(&out, hm.data, hm.len - 1);
	appendStringInfoString(&out, ",\"signature\":");
	escape_json(&out, signature);
	appendStringInfoChar(&out, '}');
	pfree(hm.data);
	if (len)
		*len = out.len;
	return out.data;
}

/* ---- reading answers ---- */

static JsonbValue *
jget(JsonbContainer *c, const char *key)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

static JsonbContainer *
jobject(JsonbValue *v)
{
	if (v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
		return v->val.binary.data;
	return NULL;
}

static char *
jstring(JsonbValue *v)
{
	if (v && v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	return NULL;
}

/* a count that may come as a number or a numeric string; -1 when absent */
static int64
jcount(JsonbValue *v)
{
	if (v == NULL)
		return -1;
	if (v->type == jbvNumeric)
		return DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(v->val.numeric)));
	if (v->type == jbvString && v->val.string.len > 0 && v->val.string.len < 19)
	{
		char	   *s = pnstrdup(v->val.string.val, v->val.string.len);
		char	   *end;
		long long	n = strtoll(s, &end, 10);

		if (*end == '\0' && n >= 0)
			return n;
	}
	return -1;
}

/* "code: message" from whichever error shape the registry used */
static char *
reason_text(const DciSource *src, JsonbContainer *c, const char *code_key, const char *msg_key)
{
	char	   *code = jstring(jget(c, code_key));
	char	   *msg = jstring(jget(c, msg_key));
	char	   *text;

	if ((code == NULL || *code == '\0') && (msg == NULL || *msg == '\0'))
		return NULL;
	text = psprintf("%s%s%s", code ? code : "", code && *code && msg && *msg ? ": " : "",
					msg ? msg : "");
	return dci_quote_registry_text(src, text, strlen(text));
}

/* dci_subscribe's notify_record_type when the caller gives none (README, "DCI layer") */
#define DCI_DEFAULT_NOTIFY_RECORD_TYPE "spdci-extensions-dci:Person"

/* DCI answers are shallow; deeper nesting is hostile */
#define DCI_JSON_MAX_DEPTH 64

/*
 * One pass of PostgreSQL's JSON parser straight into jsonb (what jsonb_in
 * does, plus a depth bound, and with parse errors returned rather than
 * raised so they become DC006).
 */
typedef struct BuildState
{
	JsonbParseState *ps;
	JsonbValue *res;
	int			depth;
	bool		too_deep;		/* refused: nesting past DCI_JSON_MAX_DEPTH ... */
	bool		bad_number;		/* ... or a number numeric cannot hold */
} BuildState;

/* PostgreSQL 16 lets a semantic action stop the parse; before, it only records */
#if PG_VERSION_NUM >= 160000
#define ACTION_RETURN(b) return (b)->too_deep ? JSON_SEM_ACTION_FAILED : JSON_SUCCESS
typedef JsonParseErrorType action_result;
#else
#define ACTION_RETURN(b) return
typedef void action_result;
#endif

static action_result
build_open(BuildState *b, JsonbIteratorToken tok)
{
	if (++b->depth > DCI_JSON_MAX_DEPTH)
		b->too_deep = true;
	if (!b->too_deep)
		b->res = pushJsonbValue(&b->ps, tok, NULL);
	ACTION_RETURN(b);
}

static action_result
build_close(BuildState *b, JsonbIteratorToken tok)
{
	if (!b->too_deep)
		b->res = pushJsonbValue(&b->ps, tok, NULL);
	b->depth--;
	ACTION_RETURN(b);
}

static action_result
build_object_start(void *arg)
{
	return build_open(arg, WJB_BEGIN_OBJECT);
}

static action_result
build_object_end(void *arg)
{
	return build_close(arg, WJB_END_OBJECT);
}

static action_result
build_array_start(void *arg)
{
	return build_open(arg, WJB_BEGIN_ARRAY);
}

static action_result
build_array_end(void *arg)
{
	return build_close(arg, WJB_END_ARRAY);
}

static action_result
build_field(void *arg, char *fname, bool isnull)
{
	BuildState *b = arg;
	JsonbValue	k;

	if (!b->too_deep)
	{
		k.type = jbvString;
		k.val.string.val = fname;
		k.val.string.len = strlen(fname);
		b->res = pushJsonbValue(&b->ps, WJB_KEY, &k);
	}
	ACTION_RETURN(b);
}

static action_result
build_scalar(void *arg, char *token, JsonTokenType type)
{
	BuildState *b = arg;
	JsonbValue	v;

	if (b->too_deep)
		ACTION_RETURN(b);
	switch (type)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.val = token;
			v.val.string.len = strlen(token);
			break;
		case JSON_TOKEN_NUMBER:
			/* numeric_in would raise 22003: refuse it as DC006 instead */
			if (!json_number_fits_numeric(token, strlen(token)))
			{
				b->bad_number = b->too_deep = true;
				ACTION_RETURN(b);
			}
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in, CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = (type == JSON_TOKEN_TRUE);
			break;
		default:
			v.type = jbvNull;
			break;
	}
	if (b->ps == NULL)
	{
		/* a bare scalar: jsonb keeps it as a one-element raw array */
		JsonbValue	va;

		va.type = jbvArray;
		va.val.array.rawScalar = true;
		va.val.array.nElems = 1;
		(void) pushJsonbValue(&b->ps, WJB_BEGIN_ARRAY, &va);
		(void) pushJsonbValue(&b->ps, WJB_ELEM, &v);
		b->res = pushJsonbValue(&b->ps, WJB_END_ARRAY, NULL);
	}
	else if (b->ps->contVal.type == jbvArray)
		b->res = pushJsonbValue(&b->ps, WJB_ELEM, &v);
	else
		b->res = pushJsonbValue(&b->ps, WJB_VALUE, &v);
	ACTION_RETURN(b);
}

/*
 * Parse a DCI answer: JSON object required (DC006); 401/403 → DC002, 429 and
 * 5xx → DC009, other non-2xx → DC007; signature checked when the source names
 * the registry's public key; header status rjct → DC007.
 */
static Jsonb *
parse_answer(DciSource *src, const char *what, const DciHttpResponse *resp, bool need_header)
{
	char	   *raw;
	size_t		raw_len;
	char	   *str;
	size_t		str_len;
	JsonLexContext *lex;
	JsonParseErrorType perr;
	JsonSemAction sem;
	BuildState	build = {NULL, NULL, 0, false, false};
	Jsonb	   *jb = NULL;
	JsonbContainer *header;
	char	   *status;
	bool		is_json;

	raw = dci_body_to_cstring(src, resp);
	raw_len = (raw == resp->body) ? resp->body_len : strlen(raw);

	/*
	 * PostgreSQL's parser recurses: too deep a nesting would end in 54001
	 * before our depth bound is seen.  Counted first, without recursion.
	 */
	if (json_nesting_exceeds(raw, raw_len, DCI_JSON_MAX_DEPTH))
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" nests deeper than %d levels",
						what, src->code, DCI_JSON_MAX_DEPTH)));
	/* what the caller gets back holds no credential an echoing registry returned */
	str = dci_redact(src, raw, raw_len, &str_len);

#if PG_VERSION_NUM >= 170000
	lex = makeJsonLexContextCstringLen(NULL, str, str_len, GetDatabaseEncoding(), true);
#else
	lex = makeJsonLexContextCstringLen(str, str_len, GetDatabaseEncoding(), true);
#endif
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &build;
	sem.object_start = build_object_start;
	sem.object_end = build_object_end;
	sem.array_start = build_array_start;
	sem.array_end = build_array_end;
	sem.object_field_start = build_field;
	sem.scalar = build_scalar;
	perr = pg_parse_json(lex, &sem);
	if (build.bad_number)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" holds a number too large or too precise to store",
						what, src->code)));
	if (build.too_deep)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" nests deeper than %d levels",
						what, src->code, DCI_JSON_MAX_DEPTH)));
	is_json = (perr == JSON_SUCCESS && build.res != NULL);
	if (is_json)
	{
		jb = JsonbValueToJsonb(build.res);
		is_json = JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb);
	}

	if (resp->status == 401 || resp->status == 403)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_AUTH),
				 errmsg("%s on data source \"%s\" was refused with HTTP %ld", what, src->code, resp->status),
				 errdetail("The call was refused again after the access token was renewed."),
				 errhint("Check that the client of data source \"%s\" is authorized for this call.", src->code)));
	if (resp->status == 429 || resp->status >= 500)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_UNAVAILABLE),
				 errmsg("registry of data source \"%s\" is unavailable", src->code),
				 errdetail("%s answered HTTP %ld after %d attempt(s).", what, resp->status, resp->attempts),
				 errhint("Try again later.")));
	if (resp->status < 200 || resp->status > 299)
	{
		char	   *why = NULL;

		if (is_json)
		{
			JsonbContainer *root = &jb->root;
			JsonbContainer *h = jobject(jget(root, "header"));
			JsonbContainer *m = jobject(jget(root, "message"));

			why = reason_text(src, h, "status_reason_code", "status_reason_message");
			if (why == NULL && m)
				why = reason_text(src, jobject(jget(m, "error")), "code", "message");
			if (why == NULL)
				why = reason_text(src, root, "error", "error_description");
			if (why == NULL)
				why = reason_text(src, jobject(jget(root, "error")), "code", "message");
		}
		if (why == NULL)
			why = dci_quote_registry_text(src, str, str_len);
		/* the registry's reason belongs in the message: it is what users see */
		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the %s: HTTP %ld%s%s",
						src->code, what, resp->status, *why ? ": " : "", why)));
	}
	if (!is_json)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" is not a JSON object", what, src->code),
				 perr != JSON_SUCCESS ? errdetail_internal("%s", json_errdetail(perr, lex)) : 0));

	/* over the bytes as received */
	dci_verify_response(src, raw, raw_len);

	/* a sync endpoint that answers with a negative acknowledgement */
	{
		JsonbContainer *m = jobject(jget(&jb->root, "message"));
		char	   *ack = jstring(jget(m, "ack_status"));

		if (ack && (strcmp(ack, "NACK") == 0 || strcmp(ack, "ERR") == 0))
		{
			char	   *why = reason_text(src, jobject(jget(m, "error")), "code", "message");

			ereport(ERROR,
					(errcode(ERRCODE_DCI_REJECTED),
					 errmsg("registry of data source \"%s\" did not accept the %s: %s%s%s",
							src->code, what, ack, why ? ": " : "", why ? why : "")));
		}
	}

	header = jobject(jget(&jb->root, "header"));
	if (need_header && (header == NULL || jobject(jget(&jb->root, "message")) == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" is not a DCI envelope", what, src->code),
				 errdetail("It lacks a \"header\" or \"message\" object.")));
	status = jstring(jget(header, "status"));
	if (status && strcmp(status, "rjct") == 0)
	{
		char	   *why = reason_text(src, header, "status_reason_code", "status_reason_message");

		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the %s%s%s", src->code, what,
						why ? ": " : "", why ? why : "")));
	}
	return jb;
}

/* POST an envelope to a DCI endpoint and parse the answer; every call is logged */
static Jsonb *
exchange(DciSource *src, const char *path, const char *action, const char *message,
		 int total_count, bool read_only, const char *what, bool need_header)
{
	size_t		len;
	char	   *envelope = build_envelope(src, action, message, total_count, &len);
	DciHttpResponse resp;
	DciError	err = {0};
	Jsonb	   *volatile answer = NULL;

	dci_log_begin(src, "POST", path);
	PG_TRY();
	{
		if (!dci_call(src, "POST", path, envelope, len, NULL, dci_call_deadline(src),
					  read_only, true, &resp, &err))
			dci_error_raise(&err);
		answer = parse_answer(src, what, &resp, need_header);
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

/* ---- lenient normal form of a search_response item ---- */

static void
push_value(JsonbParseState **st, JsonbIteratorToken tok, JsonbValue *v)
{
	(void) pushJsonbValue(st, tok, v);
}

static void
push_key(JsonbParseState **st, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	(void) pushJsonbValue(st, WJB_KEY, &k);
}

static bool
is_empty_string(JsonbValue *v)
{
	return v->type == jbvString && v->val.string.len == 0;
}

/* counts as numbers; "" and garbage become null */
static void
push_count(JsonbParseState **st, JsonbValue *v)
{
	JsonbValue	n;
	int64		c = jcount(v);

	if (c < 0)
		n.type = jbvNull;
	else
	{
		n.type = jbvNumeric;
		n.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, Int64GetDatum(c)));
	}
	push_value(st, WJB_VALUE, &n);
}

/* copy an object, calling fix(key, value) for each member */
typedef void (*member_fixer) (JsonbParseState **st, const char *key, JsonbValue *v);

static JsonbValue *
copy_object(JsonbParseState **st, JsonbContainer *c, member_fixer fix)
{
	JsonbIterator *it = JsonbIteratorInit(c);
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	tok = JsonbIteratorNext(&it, &v, true);
	Assert(tok == WJB_BEGIN_OBJECT);
	push_value(st, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_END_OBJECT)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			push_value(st, WJB_KEY, &v);
		}
		else if (tok == WJB_VALUE)
			fix(st, key, &v);
	}
	return pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

static void
fix_pagination(JsonbParseState **st, const char *key, JsonbValue *v)
{
	if (strcmp(key, "page_size") == 0 || strcmp(key, "page_number") == 0 ||
		strcmp(key, "total_count") == 0)
		push_count(st, v);
	else
		push_value(st, WJB_VALUE, v);
}

static void
fix_data(JsonbParseState **st, const char *key, JsonbValue *v)
{
	if (strcmp(key, "reg_records") == 0)
	{
		/* one record as an object, or nothing as "": always an array */
		if (v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
			push_value(st, WJB_VALUE, v);
		else
		{
			push_value(st, WJB_BEGIN_ARRAY, NULL);
			if (v->type == jbvBinary || (!is_empty_string(v) && v->type != jbvNull))
				push_value(st, WJB_ELEM, v);
			push_value(st, WJB_END_ARRAY, NULL);
		}
	}
	else if (is_empty_string(v) && strcmp(key, "version") != 0 && strcmp(key, "reg_type") != 0 &&
			 strcmp(key, "reg_record_type") != 0)
	{
		JsonbValue	n = {.type = jbvNull};

		push_value(st, WJB_VALUE, &n);
	}
	else
		push_value(st, WJB_VALUE, v);
}

static void
fix_item(JsonbParseState **st, const char *key, JsonbValue *v)
{
	if (strcmp(key, "data") == 0 && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
		(void) copy_object(st, v->val.binary.data, fix_data);
	else if (strcmp(key, "data") == 0 && (is_empty_string(v) || v->type == jbvNull))
	{
		/* no data at all: an empty record list */
		push_value(st, WJB_BEGIN_OBJECT, NULL);
		push_key(st, "reg_records");
		push_value(st, WJB_BEGIN_ARRAY, NULL);
		push_value(st, WJB_END_ARRAY, NULL);
		push_value(st, WJB_END_OBJECT, NULL);
	}
	else if (strcmp(key, "pagination") == 0 && v->type == jbvBinary &&
			 JsonContainerIsObject(v->val.binary.data))
		(void) copy_object(st, v->val.binary.data, fix_pagination);
	else
		push_value(st, WJB_VALUE, v);
}

/* a count member that needs no rewriting: absent or a number */
static bool
count_is_normal(JsonbContainer *pag, const char *key)
{
	JsonbValue *v = jget(pag, key);

	return v == NULL || v->type == jbvNumeric;
}

/* true when the item is already in normal form (the common, strict case) */
static bool
item_is_normal(JsonbContainer *item)
{
	JsonbValue *data = jget(item, "data");
	JsonbValue *pag = jget(item, "pagination");
	JsonbContainer *d = jobject(data);
	JsonbValue *recs;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (d == NULL)
		return false;
	recs = jget(d, "reg_records");
	if (recs == NULL || recs->type != jbvBinary || !JsonContainerIsArray(recs->val.binary.data))
		return false;
	if (pag != NULL)
	{
		JsonbContainer *p = jobject(pag);

		if (p == NULL || !count_is_normal(p, "page_size") || !count_is_normal(p, "page_number") ||
			!count_is_normal(p, "total_count"))
			return false;
	}
	/* no "" standing in for an object among data's members */
	it = JsonbIteratorInit(d);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_VALUE && is_empty_string(&v))
			return false;
	return true;
}

/* the item (an object value of the answer) in normal form */
static Jsonb *
normalize_item(JsonbValue *value)
{
	JsonbContainer *item = value->val.binary.data;
	JsonbParseState *st = NULL;

	/* already normal: a plain copy of its bytes */
	if (item_is_normal(item))
		return JsonbValueToJsonb(value);

	return JsonbValueToJsonb(copy_object(&st, item, fix_item));
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

static const char *const criteria_options[] = {"sort", "reg_event_type", "reg_record_type", "consent", "authorize"};

static void
check_search_args(SearchArgs *a)
{
	bool		ok = false;

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
	if (a->options)
	{
		JsonbIterator *it;
		JsonbValue	v;
		JsonbIteratorToken tok;

		if (!JB_ROOT_IS_OBJECT(a->options) || JB_ROOT_IS_SCALAR(a->options))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("options must be a JSON object")));
		it = JsonbIteratorInit(&a->options->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			char	   *key;
			bool		known = false;

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
						 errhint("Options are sort, reg_event_type, reg_record_type, consent, authorize, locale and transaction_id.")));
		}
	}
}

/* an option's value as compact JSON text, NULL when absent */
static char *
option_text(Jsonb *options, const char *key)
{
	JsonbValue *v;

	if (options == NULL)
		return NULL;
	v = jget(&options->root, key);
	if (v == NULL)
		return NULL;
	return dci_jsonb_to_compact(JsonbValueToJsonb(v), NULL);
}

static char *
option_string(Jsonb *options, const char *key)
{
	JsonbValue *v = options ? jget(&options->root, key) : NULL;

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("search option \"%s\" must be a string", key)));
	return jstring(v);
}

/* the search message (one search_request); *txn receives the transaction id */
static char *
search_message(DciSource *src, SearchArgs *a, char **txn)
{
	StringInfoData m;
	char		ref[37];
	char		ts[32];
	bool		first = true;
	bool		cfirst = true;
	const char *reg_type = a->reg_type ? a->reg_type : src->registry_type;
	char	   *locale = option_string(a->options, "locale");

	if (a->transaction_id)
		*txn = pstrdup(a->transaction_id);
	else
	{
		char	   *t = option_string(a->options, "transaction_id");

		if (t == NULL)
		{
			t = palloc(37);
			uuid_v4(t);
		}
		*txn = t;
	}
	if (strlen(*txn) > 99)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id is longer than 99 characters")));
	uuid_v4(ref);
	timestamp_now(ts, sizeof(ts));

	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	append_str(&m, "transaction_id", *txn, &first);
	append_key(&m, "search_request", &first);
	appendStringInfoString(&m, "[{");
	first = true;
	append_str(&m, "reference_id", ref, &first);
	append_str(&m, "timestamp", ts, &first);
	append_key(&m, "search_criteria", &first);
	appendStringInfoChar(&m, '{');
	append_str(&m, "version", DCI_VERSION_STRING, &cfirst);
	if (reg_type)
		append_str(&m, "reg_type", reg_type, &cfirst);
	for (int i = 1; i <= 2; i++)
	{
		char	   *t = option_text(a->options, criteria_options[i]);

		if (t)
		{
			append_key(&m, criteria_options[i], &cfirst);
			appendStringInfoString(&m, t);
		}
	}
	append_str(&m, "query_type", a->query_type, &cfirst);
	append_jsonb(&m, "query", a->query, &cfirst);
	{
		char	   *sort = option_text(a->options, "sort");

		if (sort)
		{
			append_key(&m, "sort", &cfirst);
			appendStringInfoString(&m, sort);
		}
	}
	append_key(&m, "pagination", &cfirst);
	appendStringInfo(&m, "{\"page_size\":%d,\"page_number\":%d}", a->page_size, a->page_number);
	for (int i = 3; i <= 4; i++)
	{
		char	   *t = option_text(a->options, criteria_options[i]);

		if (t)
		{
			append_key(&m, criteria_options[i], &cfirst);
			appendStringInfoString(&m, t);
		}
	}
	appendStringInfoChar(&m, '}');
	if (locale)
		append_str(&m, "locale", locale, &first);
	appendStringInfoString(&m, "}]}");
	return m.data;
}

/* one sync search; returns the first search_response item, normalised */
static Jsonb *
search_once(DciSource *src, SearchArgs *a)
{
	char	   *txn;
	char	   *message = search_message(src, a, &txn);
	Jsonb	   *answer = exchange(src, src->search_endpoint, "search", message, 1, true,
								  "search", true);
	JsonbContainer *msg = jobject(jget(&answer->root, "message"));
	JsonbValue *list = jget(msg, "search_response");
	JsonbValue *first;
	JsonbContainer *item;
	char	   *status;

	if (list == NULL || list->type != jbvBinary || !JsonContainerIsArray(list->val.binary.data) ||
		JsonContainerSize(list->val.binary.data) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("search answer from data source \"%s\" has no search_response item", src->code)));
	first = getIthJsonbValueFromContainer(list->val.binary.data, 0);
	item = jobject(first);
	if (item == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("search_response item from data source \"%s\" is not an object", src->code)));
	status = jstring(jget(item, "status"));
	if (status && strcmp(status, "rjct") == 0)
	{
		char	   *why = reason_text(src, item, "status_reason_code", "status_reason_message");

		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the search%s%s", src->code,
						why ? ": " : "", why ? why : "")));
	}
	return normalize_item(first);
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
	SearchArgs	a;
	DciSource  *src;

	read_search_args(fcinfo, &a, true);
	src = dci_source_from_arg(fcinfo, true);
	PG_RETURN_JSONB_P(search_once(src, &a));
}

/* ---- paging through records ---- */

typedef struct RecordsState
{
	DciSource  *src;
	SearchArgs	args;
	MemoryContext page_cxt;		/* holds one page at a time */
	Jsonb	   *page;			/* normalised item of the current page */
	int			page_records;	/* records in the current page */
	int			next_record;	/* index of the next record to return */
	int64		total_count;	/* -1: registry did not say */
	int64		returned;
	int64		limit;
	bool		last_page;
	char		code[NAMEDATALEN * 2];
	int32		source_id;
} RecordsState;

static JsonbContainer *
records_of(Jsonb *item)
{
	JsonbContainer *data = jobject(jget(&item->root, "data"));
	JsonbValue *recs = jget(data, "reg_records");

	if (recs && recs->type == jbvBinary && JsonContainerIsArray(recs->val.binary.data))
		return recs->val.binary.data;
	return NULL;
}

static void
fetch_page(RecordsState *st)
{
	MemoryContext old;
	JsonbContainer *recs;
	JsonbContainer *pag;

	MemoryContextReset(st->page_cxt);
	old = MemoryContextSwitchTo(st->page_cxt);
	st->page = search_once(st->src, &st->args);
	MemoryContextSwitchTo(old);

	recs = records_of(st->page);
	st->page_records = recs ? JsonContainerSize(recs) : 0;
	st->next_record = 0;
	pag = jobject(jget(&st->page->root, "pagination"));
	if (pag)
	{
		int64		t = jcount(jget(pag, "total_count"));

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
	RecordsState *st = funcctx->user_fctx;
	JsonbValue *v;

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
		st->src = dci_source_by_id(fcinfo->flinfo->fn_oid, st->source_id, true);
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
	bool		done;
	Datum		result;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		RecordsState *st;
		DciSource  *src;

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
static void
check_ack(DciSource *src, const char *what, Jsonb *answer)
{
	JsonbContainer *msg = jobject(jget(&answer->root, "message"));
	char	   *ack = jstring(jget(msg, "ack_status"));

	if (ack == NULL)
		ack = jstring(jget(&answer->root, "ack_status"));
	if (ack && strcmp(ack, "ACK") == 0)
		return;
	if (ack && (strcmp(ack, "NACK") == 0 || strcmp(ack, "ERR") == 0))
	{
		char	   *why = reason_text(src, jobject(jget(msg, "error")), "code", "message");

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
	SearchArgs	a;
	DciSource  *src;
	char	   *txn;
	char	   *message;
	Jsonb	   *answer;

	read_search_args(fcinfo, &a, true);
	src = dci_source_from_arg(fcinfo, true);
	message = search_message(src, &a, &txn);
	answer = exchange(src, "/registry/search", "search", message, 1, false, "asynchronous search", false);
	check_ack(src, "asynchronous search", answer);
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}

PG_FUNCTION_INFO_V1(dci_txn_status);

/* dci_txn_status(source, transaction_id) returns the txnstatus_response */
Datum
dci_txn_status(PG_FUNCTION_ARGS)
{
	DciSource  *src;
	char	   *wanted;
	char		txn[37];
	char		ref[37];
	StringInfoData m;
	bool		first = true;
	bool		rfirst = true;
	Jsonb	   *answer;
	JsonbContainer *msg;
	JsonbValue *resp;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id must not be NULL")));
	wanted = text_to_cstring(PG_GETARG_TEXT_PP(1));
	src = dci_source_from_arg(fcinfo, true);
	uuid_v4(txn);
	uuid_v4(ref);

	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	append_str(&m, "transaction_id", txn, &first);
	append_key(&m, "txnstatus_request", &first);
	appendStringInfoChar(&m, '{');
	append_str(&m, "reference_id", ref, &rfirst);
	append_str(&m, "txn_type", "search", &rfirst);
	append_str(&m, "attribute_type", "transaction_id", &rfirst);
	append_str(&m, "attribute_value", wanted, &rfirst);
	appendStringInfoString(&m, "}}");

	answer = exchange(src, "/registry/sync/txn/status", "txn-status", m.data, 1, true,
					  "transaction status request", true);
	msg = jobject(jget(&answer->root, "message"));
	resp = jget(msg, "txnstatus_response");
	if (resp == NULL)
		PG_RETURN_JSONB_P(JsonbValueToJsonb(jget(&answer->root, "message")));
	PG_RETURN_JSONB_P(JsonbValueToJsonb(resp));
}

PG_FUNCTION_INFO_V1(dci_subscribe);

/* dci_subscribe(source, reg_event_type, filter, notify_record_type) returns transaction id */
Datum
dci_subscribe(PG_FUNCTION_ARGS)
{
	DciSource  *src;
	char	   *event;
	Jsonb	   *filter;
	char		txn[37];
	char		ref[37];
	char		ts[32];
	StringInfoData m;
	bool		first = true;
	bool		cfirst = true;
	const char *filter_type;
	Jsonb	   *answer;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reg_event_type must not be NULL")));
	event = text_to_cstring(PG_GETARG_TEXT_PP(1));
	filter = PG_ARGISNULL(2) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"type\":\"*\",\"value\":\"*\"}"))) :
		PG_GETARG_JSONB_P(2);
	src = dci_source_from_arg(fcinfo, true);
	/* the filter's shape says its type, as for search queries */
	filter_type = JB_ROOT_IS_ARRAY(filter) && !JB_ROOT_IS_SCALAR(filter) ? "predicate" :
		(jget(&filter->root, "type") && jget(&filter->root, "value")) ? "idtype-value" : "expression";

	uuid_v4(txn);
	uuid_v4(ref);
	timestamp_now(ts, sizeof(ts));
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	append_str(&m, "transaction_id", txn, &first);
	append_key(&m, "subscribe_request", &first);
	appendStringInfoString(&m, "[{");
	first = true;
	append_str(&m, "reference_id", ref, &first);
	append_str(&m, "timestamp", ts, &first);
	append_key(&m, "subscribe_criteria", &first);
	appendStringInfoChar(&m, '{');
	if (src->registry_type)
		append_str(&m, "reg_type", src->registry_type, &cfirst);
	append_str(&m, "reg_event_type", event, &cfirst);
	append_str(&m, "filter_type", filter_type, &cfirst);
	append_jsonb(&m, "filter", filter, &cfirst);
	/* required by every registry spec: the record type of a person when not given */
	append_str(&m, "notify_record_type",
			   PG_ARGISNULL(3) ? DCI_DEFAULT_NOTIFY_RECORD_TYPE : text_to_cstring(PG_GETARG_TEXT_PP(3)),
			   &cfirst);
	appendStringInfoString(&m, "}}]}");

	answer = exchange(src, "/registry/subscribe", "subscribe", m.data, 1, false, "subscription", false);
	check_ack(src, "subscription", answer);
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}

PG_FUNCTION_INFO_V1(dci_unsubscribe);

/* dci_unsubscribe(source, subscription_codes text[]) returns transaction id */
Datum
dci_unsubscribe(PG_FUNCTION_ARGS)
{
	DciSource  *src;
	ArrayType  *codes;
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	char		txn[37];
	char		ts[32];
	StringInfoData m;
	bool		first = true;
	Jsonb	   *answer;

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

	uuid_v4(txn);
	timestamp_now(ts, sizeof(ts));
	initStringInfo(&m);
	appendStringInfoChar(&m, '{');
	append_str(&m, "transaction_id", txn, &first);
	append_str(&m, "timestamp", ts, &first);
	append_key(&m, "subscription_codes", &first);
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

	answer = exchange(src, "/registry/unsubscribe", "unsubscribe", m.data, n, false, "unsubscription", false);
	check_ack(src, "unsubscription", answer);
	PG_RETURN_TEXT_P(cstring_to_text(txn));
}

/* ---- dci_envelope ---- */

/* requests in a message: the length of its *_request list, or of subscription_codes */
static int
count_requests(Jsonb *message)
{
	static const char *const lists[] = {"search_request", "subscribe_request", "subscription_codes",
	"notify_request"};
	JsonbValue *v;

	if (!JB_ROOT_IS_OBJECT(message) || JB_ROOT_IS_SCALAR(message))
		return 1;
	for (int i = 0; i < lengthof(lists); i++)
	{
		v = jget(&message->root, lists[i]);
		if (v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
			return JsonContainerSize(v->val.binary.data);
	}
	return 1;
}

PG_FUNCTION_INFO_V1(dci_envelope);

/* dci_envelope(source, action, message jsonb) returns jsonb */
Datum
dci_envelope(PG_FUNCTION_ARGS)
{
	DciSource  *src;
	char	   *action;
	Jsonb	   *message;
	char	   *envelope_text;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("action and message must not be NULL")));
	action = text_to_cstring(PG_GETARG_TEXT_PP(1));
	message = PG_GETARG_JSONB_P(2);
	if (!JB_ROOT_IS_OBJECT(message) || JB_ROOT_IS_SCALAR(message))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("message must be a JSON object")));
	src = dci_source_from_arg(fcinfo, false);

	/*
	 * A signed envelope is a signature over a message the caller chose: only
	 * for roles that may sign (EXECUTE on dci_sign), and only with the key of
	 * an active source.
	 */
	if (src->signing_key_id != 0)
	{
		if (!dci_may_sign(fcinfo->flinfo->fn_oid))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to sign with the key of data source \"%s\"", src->code),
					 errdetail("The data source has a signing key, so dci_envelope would return a signature."),
					 errhint("Signing is granted with EXECUTE on dci_sign(jsonb, text).")));
		if (!src->active)
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("data source \"%s\" is not active: its key signs nothing", src->code)));
	}
	envelope_text = build_envelope(src, action, dci_jsonb_to_compact(message, NULL),
								   count_requests(message), NULL);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(envelope_text)));
}
