/*
 * dci_answer.c
 *		Reading DCI answers: parsed with PostgreSQL's JSON parser straight
 *		into jsonb, checked (status, acknowledgement, signature) and read
 *		leniently, the way real registries deviate from the schemas: counts
 *		as strings, empty strings for objects, reg_records as an object, a
 *		sync answer saying "rcvd".
 */
#include "dci_client.h"

#include "common/jsonapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "dci_answer.h"
#include "json_guard.h"
#include "redaction.h"
#include "request.h"
#include "sign.h"

/* ---- reading answers ---- */

JsonbValue *
dci_jget(JsonbContainer *c, const char *key)
{
	if (c == NULL || !JsonContainerIsObject(c))
		return NULL;
	return getKeyJsonValueFromContainer(c, key, strlen(key), NULL);
}

JsonbContainer *
dci_jobject(JsonbValue *v)
{
	if (v && v->type == jbvBinary && JsonContainerIsObject(v->val.binary.data))
		return v->val.binary.data;
	return NULL;
}

char *
dci_jstring(JsonbValue *v)
{
	if (v && v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	return NULL;
}

/*
 * A count that may come as a number or a numeric string; -1 when absent or
 * not a count (a fraction, a negative number, more than int8 holds: read as
 * unknown, never numeric's 22003).
 */
int64
dci_jcount(JsonbValue *v)
{
	char	 *s = NULL;
	char	 *end;
	long long n;

	if (v == NULL)
		return -1;
	if (v->type == jbvNumeric)
		s = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	else if (v->type == jbvString)
		s = pnstrdup(v->val.string.val, v->val.string.len);
	if (s != NULL && *s >= '0' && *s <= '9' && strlen(s) <= 18)
	{
		n = strtoll(s, &end, 10);
		if (*end == '\0')
			return n;
	}
	return -1;
}

/* "code: message" from whichever error shape the registry used */
char *
dci_reason_text(const DciSource *src, JsonbContainer *c, const char *code_key, const char *msg_key)
{
	char *code = dci_jstring(dci_jget(c, code_key));
	char *msg = dci_jstring(dci_jget(c, msg_key));
	char *text;

	if ((code == NULL || *code == '\0') && (msg == NULL || *msg == '\0'))
		return NULL;
	text = psprintf("%s%s%s", code ? code : "", code && *code && msg && *msg ? ": " : "",
					msg ? msg : "");
	return dci_quote_registry_text(src, text, strlen(text));
}

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
	JsonbValue		*res;
	int				 depth;
	bool			 too_deep;	 /* refused: nesting past DCI_JSON_MAX_DEPTH ... */
	bool			 bad_number; /* ... or a number numeric cannot hold */
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
		JsonbValue va;

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
 * text as a jsonb object with PostgreSQL's parser, into *jb (NULL when it is
 * not a JSON object; *detail then says why when the parser knows).  Nesting
 * past DCI_JSON_MAX_DEPTH and numbers numeric cannot hold are DC006.
 */
static Jsonb *
parse_object(DciSource *src, const char *what, char *text, size_t len, char **detail)
{
	JsonLexContext	  *lex;
	JsonParseErrorType perr;
	JsonSemAction	   sem;
	BuildState		   build = {NULL, NULL, 0, false, false};
	Jsonb			  *jb;

	*detail = NULL;
#if PG_VERSION_NUM >= 170000
	lex = makeJsonLexContextCstringLen(NULL, text, len, GetDatabaseEncoding(), true);
#else
	lex = makeJsonLexContextCstringLen(text, len, GetDatabaseEncoding(), true);
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
	if (perr != JSON_SUCCESS || build.res == NULL)
	{
		if (perr != JSON_SUCCESS)
			*detail = json_errdetail(perr, lex);
		return NULL;
	}
	jb = JsonbValueToJsonb(build.res);
	return (JB_ROOT_IS_OBJECT(jb) && !JB_ROOT_IS_SCALAR(jb)) ? jb : NULL;
}

/* non-2xx answers: DC002, DC009 or DC007 with the registry's reason */
static void
refuse_http_status(DciSource *src, const char *what, const DciHttpResponse *resp, Jsonb *jb,
				   const char *text, size_t len)
{
	char *why = NULL;

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
	if (resp->status >= 200 && resp->status <= 299)
		return;
	if (jb != NULL)
	{
		/* whichever error shape the registry used */
		JsonbContainer *root = &jb->root;
		JsonbContainer *h = dci_jobject(dci_jget(root, "header"));
		JsonbContainer *m = dci_jobject(dci_jget(root, "message"));

		why = dci_reason_text(src, h, "status_reason_code", "status_reason_message");
		if (why == NULL && m)
			why = dci_reason_text(src, dci_jobject(dci_jget(m, "error")), "code", "message");
		if (why == NULL)
			why = dci_reason_text(src, root, "error", "error_description");
		if (why == NULL)
			why = dci_reason_text(src, dci_jobject(dci_jget(root, "error")), "code", "message");
	}
	if (why == NULL)
		why = dci_quote_registry_text(src, text, len);
	/* the registry's reason belongs in the message: it is what users see */
	ereport(ERROR,
			(errcode(ERRCODE_DCI_REJECTED),
			 errmsg("registry of data source \"%s\" rejected the %s: HTTP %ld%s%s",
					src->code, what, resp->status, *why ? ": " : "", why)));
}

/* an acknowledgement NACK/ERR (also where a sync endpoint should have answered): DC007 */
static void
refuse_negative_ack(DciSource *src, const char *what, Jsonb *jb)
{
	JsonbContainer *m = dci_jobject(dci_jget(&jb->root, "message"));
	char		   *ack = dci_jstring(dci_jget(m, "ack_status"));
	char		   *why;

	if (ack && (strcmp(ack, "NACK") == 0 || strcmp(ack, "ERR") == 0))
	{
		why = dci_reason_text(src, dci_jobject(dci_jget(m, "error")), "code", "message");
		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" did not accept the %s: %s%s%s",
						src->code, what, ack, why ? ": " : "", why ? why : "")));
	}
}

/* a header status rjct: DC007 with the registry's reason */
static void
refuse_rejected_header(DciSource *src, const char *what, Jsonb *jb)
{
	JsonbContainer *header = dci_jobject(dci_jget(&jb->root, "header"));
	char		   *status = dci_jstring(dci_jget(header, "status"));
	char		   *why;

	if (status && strcmp(status, "rjct") == 0)
	{
		why = dci_reason_text(src, header, "status_reason_code", "status_reason_message");
		ereport(ERROR,
				(errcode(ERRCODE_DCI_REJECTED),
				 errmsg("registry of data source \"%s\" rejected the %s%s%s", src->code, what,
						why ? ": " : "", why ? why : "")));
	}
}

Jsonb *
dci_parse_answer(DciSource *src, const char *what, const DciHttpResponse *resp, bool need_header)
{
	char  *raw = dci_body_to_cstring(src, resp);
	size_t raw_len = (raw == resp->body) ? resp->body_len : strlen(raw);
	char  *str;
	size_t str_len;
	char  *detail;
	Jsonb *jb;

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
	jb = parse_object(src, what, str, str_len, &detail);
	refuse_http_status(src, what, resp, jb, str, str_len);
	if (jb == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" is not a JSON object", what, src->code),
				 detail ? errdetail_internal("%s", detail) : 0));

	/* over the bytes as received */
	dci_verify_response(src, raw, raw_len);
	refuse_negative_ack(src, what, jb);
	if (need_header && (dci_jobject(dci_jget(&jb->root, "header")) == NULL ||
						dci_jobject(dci_jget(&jb->root, "message")) == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_DCI_BAD_JSON),
				 errmsg("answer to the %s from data source \"%s\" is not a DCI envelope", what, src->code),
				 errdetail("It lacks a \"header\" or \"message\" object.")));
	refuse_rejected_header(src, what, jb);
	return jb;
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
	JsonbValue k;

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
	JsonbValue n;
	int64	   c = dci_jcount(v);

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
typedef void (*member_fixer)(JsonbParseState **st, const char *key, JsonbValue *v);

static JsonbValue *
copy_object(JsonbParseState **st, JsonbContainer *c, member_fixer fix)
{
	JsonbIterator	  *it = JsonbIteratorInit(c);
	JsonbValue		   v;
	JsonbIteratorToken tok;
	char			  *key = NULL;

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
		JsonbValue n = {.type = jbvNull};

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
	JsonbValue *v = dci_jget(pag, key);

	return v == NULL || v->type == jbvNumeric;
}

/* true when the item is already in normal form (the common, strict case) */
static bool
item_is_normal(JsonbContainer *item)
{
	JsonbValue		  *data = dci_jget(item, "data");
	JsonbValue		  *pag = dci_jget(item, "pagination");
	JsonbContainer	  *d = dci_jobject(data);
	JsonbValue		  *recs;
	JsonbIterator	  *it;
	JsonbValue		   v;
	JsonbIteratorToken tok;

	if (d == NULL)
		return false;
	recs = dci_jget(d, "reg_records");
	if (recs == NULL || recs->type != jbvBinary || !JsonContainerIsArray(recs->val.binary.data))
		return false;
	if (pag != NULL)
	{
		JsonbContainer *p = dci_jobject(pag);

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
Jsonb *
dci_normalize_item(JsonbValue *value)
{
	JsonbContainer	*item = value->val.binary.data;
	JsonbParseState *st = NULL;

	/* already normal: a plain copy of its bytes */
	if (item_is_normal(item))
		return JsonbValueToJsonb(value);

	return JsonbValueToJsonb(copy_object(&st, item, fix_item));
}
