/*
 * inbound.c
 *		dci_receive: a registry's callback (on-search, on-subscribe,
 *		on-unsubscribe, txn-on-status) or notification, handed over raw by
 *		the HTTP controller, checked in order, stored, announced; dci_await.
 *
 * Nothing the sender did wrong raises: it gets an ERR acknowledgement with a
 * DCI error code and an HTTP status (README "Callbacks and notifications").
 * Only the caller's own mistakes raise (unknown source DC001, NULL body or
 * non-object headers 22023).  A refused message stores nothing: the writes
 * run in a subtransaction that a late refusal (a replay, an unknown
 * transaction) rolls back.  The tables are written as the bootstrap
 * superuser (callers need EXECUTE only), named by OID in the extension's
 * schema, search_path pinned.
 */
#include "dci_client.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "access/detoast.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "catalog.h"
#include "dci_answer.h"
#include "dci_envelope.h"
#include "errors.h"
#include "hex.h"
#include "inbound.h"
#include "json.h"
#include "json_guard.h"
#include "settings.h"
#include "sign.h"
#include "source.h"

/* deeper JSON is refused before PostgreSQL's parser sees it */
#define INBOUND_MAX_DEPTH 64
#define INBOUND_ID_MAX	  128
/*
 * NOTIFY refuses a payload of BLCKSZ - NAMEDATALEN - 128 bytes or more; the
 * rest of ours is at most ~1 kB (a transaction_id of INBOUND_ID_MAX bytes,
 * each escaped as \u00xx).
 */
#define NOTIFY_MAX_CODE (BLCKSZ - NAMEDATALEN - 128 - 1024)

typedef struct Refusal
{
	int			status;			/* 0: accepted */
	const char *code;
	char		message[256];
} Refusal;

static void
refuse(Refusal *r, int status, const char *code, const char *fmt,...) pg_attribute_printf(4, 5);

static void
refuse(Refusal *r, int status, const char *code, const char *fmt,...)
{
	va_list		ap;

	r->status = status;
	r->code = code;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof(r->message), fmt, ap);
	va_end(ap);
}

#define REFUSE(...) \
	do { \
		refuse(r, __VA_ARGS__); \
		return; \
	} while (0)

/* run f(arg) in a subtransaction: its error becomes false, not an abort */
typedef Datum (*SafeFn) (Datum arg);

static bool
try_in_subxact(SafeFn f, Datum arg, Datum *result)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		*result = f(arg);
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
		/* a cancel or a shutdown is not the sender's mistake */
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
			ReThrowError(edata);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static Datum
parse_jsonb(Datum cstr)
{
	return DirectFunctionCall1(jsonb_in, cstr);
}

/*
 * Without an offset a message_ts is UTC, not the caller's session TimeZone;
 * the setting is restored when the subtransaction ends, either way.
 */
static Datum
parse_timestamptz(Datum cstr)
{
	int			nest = NewGUCNestLevel();
	Datum		d;

	(void) set_config_option("TimeZone", "UTC", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	d = DirectFunctionCall3(timestamptz_in, cstr, ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	AtEOXact_GUC(true, nest);
	return d;
}

static char *
jstr(JsonbContainer *c, const char *key)
{
	JsonbValue *v = c ? dci_jget(c, key) : NULL;

	if (v == NULL || v->type != jbvString)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static Jsonb *
jsub(JsonbContainer *c, const char *key)
{
	JsonbValue *v = c ? dci_jget(c, key) : NULL;

	return v ? JsonbValueToJsonb(v) : NULL;
}

/* a list of the container under key, or NULL */
static JsonbContainer *
jarray(JsonbContainer *c, const char *key)
{
	JsonbValue *v = c ? dci_jget(c, key) : NULL;

	if (v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
		return v->val.binary.data;
	return NULL;
}

static JsonbContainer *
jitem(JsonbContainer *arr, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(arr, i);

	return dci_jobject(v);
}

/*
 * ISO 8601 as DCI writes it: YYYY-MM-DDTHH:MM, then anything timestamptz_in
 * takes.  Its special words ('now', 'epoch', 'infinity') are not timestamps
 * a registry sends, and 'now' would never be stale.
 */
static bool
iso_like(const char *t)
{
	static const char shape[] = "dddd-dd-ddTdd:dd";

	for (int i = 0; shape[i]; i++)
	{
		if (shape[i] == 'd' ? !(t[i] >= '0' && t[i] <= '9')
			: shape[i] == 'T' ? !(t[i] == 'T' || t[i] == 't' || t[i] == ' ')
			: t[i] != shape[i])
			return false;
	}
	return true;
}

/* constant time over SHA-256 digests: the lengths leak nothing either */
static bool
token_matches(const char *given, size_t given_len, const char *expected)
{
	unsigned char a[SHA256_DIGEST_LENGTH];
	unsigned char b[SHA256_DIGEST_LENGTH];
	bool		ok;

	SHA256((const unsigned char *) given, given_len, a);
	SHA256((const unsigned char *) expected, strlen(expected), b);
	ok = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
	explicit_bzero(a, sizeof(a));
	explicit_bzero(b, sizeof(b));
	return ok;
}

static bool
bearer_ok(DciSource *src, Jsonb *headers, const char *body, size_t body_len)
{
	JsonbValue *v;
	const char *p;
	size_t		n;
	bool		ok;

	if (headers == NULL)
		return false;
	v = dci_jget(&headers->root, "authorization");
	if (v == NULL || v->type != jbvString || v->val.string.len < 7 ||
		pg_strncasecmp(v->val.string.val, "Bearer ", 7) != 0)
		return false;
	p = v->val.string.val + 7;
	n = v->val.string.len - 7;
	while (n > 0 && *p == ' ')
		p++, n--;
	/*
	 * "hmac-sha256:<64 hex digits>", HMAC-SHA256 keyed with the token over
	 * this body: the controller may hand that over instead of the token, so
	 * the token is never in the statement text (psycopg2 interpolates
	 * parameters into it), and what is (in pg_stat_activity, a log line)
	 * authenticates only this body — whose message_id is then taken.
	 */
	if (n == 12 + 2 * SHA256_DIGEST_LENGTH && strncmp(p, "hmac-sha256:", 12) == 0)
	{
		unsigned char given[SHA256_DIGEST_LENGTH];
		unsigned char want[EVP_MAX_MD_SIZE];
		unsigned int want_len = 0;

		for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
		{
			int			hi = dci_hex_value((unsigned char) p[12 + 2 * i]);
			int			lo = dci_hex_value((unsigned char) p[13 + 2 * i]);

			if (hi < 0 || lo < 0)
				return false;
			given[i] = (unsigned char) (hi << 4 | lo);
		}
		if (HMAC(EVP_sha256(), src->callback_token, (int) strlen(src->callback_token),
				 (const unsigned char *) body, body_len, want, &want_len) == NULL ||
			want_len != SHA256_DIGEST_LENGTH)
			return false;
		ok = CRYPTO_memcmp(given, want, SHA256_DIGEST_LENGTH) == 0;
		explicit_bzero(want, sizeof(want));
		return ok;
	}
	ok = token_matches(p, n, src->callback_token);
	return ok;
}

static const char *const actions[] = {"on-search", "on-subscribe", "on-unsubscribe", "txn-on-status", "notify"};
/* the request each callback answers */
static const char *const answered[] = {"search", "subscribe", "unsubscribe", "txn-status", NULL};
/* the list a multi-part answer accumulates */
static const char *const parts_key[] = {"search_response", "subscribe_response", "subscription_status", NULL, NULL};

/* ---- storing ---- */

static char *
ext_table(const char *name)
{
	Oid			nsp = dci_extension_schema(false);
	Oid			rel = get_relname_relid(name, nsp);

	if (!OidIsValid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("dci_client has no table %s here", name),
				 errhint("Run ALTER EXTENSION dci_client UPDATE.")));
	return dci_qualified_table_name(rel);
}

typedef struct Inbound
{
	DciSource  *src;
	int			action;			/* index in actions[] */
	const char *message_id;
	char	   *transaction_id;
	char	   *correlation_id;
	const char *verified;
	Jsonb	   *header;
	Jsonb	   *message;
	JsonbContainer *hdr;
	JsonbContainer *msg;
} Inbound;

/*
 * The statements' plans, kept for the backend's life: parsing and planning
 * them cost a callback more than storing it.  Every name in them is
 * schema-qualified, so a plan the plan cache revalidates resolves the same.
 */
#define INBOUND_PLANS 32
static struct
{
	char	   *sql;
	SPIPlanPtr	plan;
}			plans[INBOUND_PLANS];

static int
spi_run(const char *sql, int n, Oid *types, Datum *values, const char *nulls, int expect)
{
	SPIPlanPtr	plan = NULL;
	int			rc;
	int			i;

	for (i = 0; i < INBOUND_PLANS && plans[i].sql != NULL; i++)
		if (strcmp(plans[i].sql, sql) == 0)
		{
			plan = plans[i].plan;
			break;
		}
	if (plan == NULL)
	{
		plan = SPI_prepare(sql, n, types);
		if (plan == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("dci_receive: could not prepare a statement: %s", SPI_result_code_string(SPI_result))));
		if (i < INBOUND_PLANS && SPI_keepplan(plan) == 0)
		{
			plans[i].sql = MemoryContextStrdup(TopMemoryContext, sql);
			plans[i].plan = plan;
		}
	}
	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expect)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("dci_receive: a statement failed: %s", SPI_result_code_string(rc))));
	return (int) SPI_processed;
}

/* the registry refused the whole request (header.status rjct) */
static bool
rejected(JsonbContainer *hdr)
{
	char	   *status = jstr(hdr, "status");

	return status && strcmp(status, "rjct") == 0;
}

/* is this number of the header below that one (both present) */
static bool
part_of_more(JsonbContainer *hdr)
{
	int64		done = dci_jcount(dci_jget(hdr, "completed_count"));
	int64		total = dci_jcount(dci_jget(hdr, "total_count"));

	return done >= 0 && total >= 0 && done < total;
}

/*
 * the transaction the callback answers: update it; false when unknown (or
 * too large); *settled when it was answered in full before (left as it is)
 */
static bool
store_callback(Inbound *in, Refusal *r, bool *settled)
{
	char	   *t = ext_table("dci_transaction");
	Oid			types[5] = {INT4OID, TEXTOID, TEXTOID, JSONBOID, TEXTOID};
	Datum		v[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	const char *key = parts_key[in->action];
	const char *state;
	if (part_of_more(in->hdr))
		state = NULL;			/* more parts to come */
	else if (rejected(in->hdr))
		state = "failed";
	else
		state = "completed";
	v[0] = Int32GetDatum(in->src->id);
	v[1] = CStringGetTextDatum(in->transaction_id);
	v[2] = CStringGetTextDatum(answered[in->action]);
	/*
	 * Locked first (a concurrent part of the same transaction waits): a
	 * transaction a callback already ended is settled, or a hostile registry
	 * could append to or overwrite what dci_await returned (or reactivate
	 * subscriptions); and the parts together stay within max_response_bytes,
	 * as one synchronous answer.
	 */
	if (spi_run(psprintf("SELECT completed_at IS NOT NULL, response FROM %s "
						 "WHERE source_id OPERATOR(pg_catalog.=) $1 AND transaction_id OPERATOR(pg_catalog.=) $2 "
						 "AND action OPERATOR(pg_catalog.=) $3 FOR UPDATE", t),
				3, types, v, nulls, SPI_OK_SELECT) == 0)
	{
		refuse(r, 404, "err.transaction_id.invalid",
			   "transaction_id is not a %s this system sent to this registry", answered[in->action]);
		return false;
	}
	else
	{
		bool		isnull;
		bool		closed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		so_far = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		Size		size = (isnull ? 0 : toast_raw_datum_size(so_far)) + VARSIZE(in->message);

		/*
		 * Settled: another full answer (a retry with a new message_id, or a
		 * hostile overwrite) is acknowledged and kept in the inbox but
		 * changes nothing; a late part of a multi-part answer (parts may
		 * arrive out of order) is still appended.
		 */
		if (closed && (key == NULL || state != NULL))
		{
			*settled = true;
			return true;
		}
		if (!isnull && key && size > (Size) dci_max_response_bytes)
		{
			refuse(r, 413, "err.request.too_large",
				   "the parts of the answer together are larger than %d bytes", dci_max_response_bytes);
			return false;
		}
	}
	v[3] = JsonbPGetDatum(in->message);
	v[4] = state ? CStringGetTextDatum(state) : (Datum) 0;
	if (!state)
		nulls[4] = 'n';
	if (spi_run(psprintf("UPDATE %s SET callbacks = callbacks OPERATOR(pg_catalog.+) 1, "
						 "response = CASE WHEN response IS NULL OR %s THEN $4 "
						 "ELSE pg_catalog.jsonb_set(response, ARRAY[%s]::pg_catalog.text[], "
						 "COALESCE(response OPERATOR(pg_catalog.->) %s, '[]'::pg_catalog.jsonb) OPERATOR(pg_catalog.||) "
						 "COALESCE($4 OPERATOR(pg_catalog.->) %s, '[]'::pg_catalog.jsonb)) END, "
						 "state = CASE WHEN $5 IS NULL OR state OPERATOR(pg_catalog.=) 'completed' THEN state ELSE $5 END, "
						 "completed_at = CASE WHEN $5 IS NULL THEN completed_at ELSE COALESCE(completed_at, pg_catalog.now()) END "
						 "WHERE source_id OPERATOR(pg_catalog.=) $1 AND transaction_id OPERATOR(pg_catalog.=) $2 "
						 "AND action OPERATOR(pg_catalog.=) $3",
						 t, key ? "false" : "true",
						 quote_literal_cstr(key ? key : "x"), quote_literal_cstr(key ? key : "x"),
						 quote_literal_cstr(key ? key : "x")),
				5, types, v, nulls, SPI_OK_UPDATE) == 0)
	{
		refuse(r, 404, "err.transaction_id.invalid",
			   "transaction_id is not a %s this system sent to this registry", answered[in->action]);
		return false;
	}
	return true;
}

/* on-subscribe: each subscription granted becomes active */
static void
store_subscriptions(Inbound *in)
{
	char	   *t = ext_table("dci_subscription");
	JsonbContainer *items = jarray(in->msg, "subscribe_response");
	Oid			rtypes[2] = {INT4OID, TEXTOID};
	Datum		rv[2];
	char	   *event = NULL;
	char	   *filter = NULL;

	rv[0] = Int32GetDatum(in->src->id);
	rv[1] = CStringGetTextDatum(in->transaction_id);
	/* what dci_subscribe asked for, kept in its 'requested' row */
	if (spi_run(psprintf("DELETE FROM %s WHERE source_id OPERATOR(pg_catalog.=) $1 AND transaction_id OPERATOR(pg_catalog.=) $2 "
						 "AND code IS NULL RETURNING reg_event_type, filter::pg_catalog.text", t),
				2, rtypes, rv, NULL, SPI_OK_DELETE_RETURNING) > 0)
	{
		event = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		filter = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	}
	for (int i = 0; items && i < (int) JsonContainerSize(items); i++)
	{
		JsonbContainer *item = jitem(items, i);
		JsonbContainer *subs = jarray(item, "subscriptions");
		char	   *status = jstr(item, "status");

		if (status && strcmp(status, "rjct") == 0)
			continue;
		for (int j = 0; subs && j < (int) JsonContainerSize(subs); j++)
		{
			JsonbContainer *s = jitem(subs, j);
			char	   *code = jstr(s, "code");
			char	   *sstatus = jstr(s, "status");
			char	   *ev = jstr(s, "reg_event_type");
			Jsonb	   *f = jsub(s, "filter");
			Oid			types[5] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID};
			Datum		v[5];
			char		nulls[5] = {' ', ' ', ' ', ' ', ' '};

			if (code == NULL || *code == '\0' || strlen(code) > INBOUND_ID_MAX ||
				(sstatus && strcmp(sstatus, "unsubscribe") == 0))
				continue;
			v[0] = Int32GetDatum(in->src->id);
			v[1] = CStringGetTextDatum(code);
			ev = ev ? ev : event;
			v[2] = ev ? CStringGetTextDatum(ev) : (Datum) 0;
			nulls[2] = ev ? ' ' : 'n';
			if (f)
				v[3] = CStringGetTextDatum(dci_jsonb_to_compact(f, NULL));
			else if (filter)
				v[3] = CStringGetTextDatum(filter);
			else
				nulls[3] = 'n';
			v[4] = CStringGetTextDatum(in->transaction_id);
			spi_run(psprintf("INSERT INTO %s AS cur (source_id, code, reg_event_type, filter, state, transaction_id) "
							 "VALUES ($1, $2, $3, $4::pg_catalog.jsonb, 'active', $5) "
							 "ON CONFLICT (source_id, code) DO UPDATE SET state = 'active', "
							 "updated_at = pg_catalog.now(), transaction_id = EXCLUDED.transaction_id "
							 /* a cancelled code is revived by a new subscribe only, not by its old one */
							 "WHERE cur.state OPERATOR(pg_catalog.<>) 'cancelled' "
							 "OR COALESCE(cur.transaction_id, '') OPERATOR(pg_catalog.<>) EXCLUDED.transaction_id", t),
					5, types, v, nulls, SPI_OK_INSERT);
		}
	}
}

/* on-unsubscribe: each code the registry confirms is cancelled */
static void
cancel_subscriptions(Inbound *in)
{
	char	   *t = ext_table("dci_subscription");
	JsonbContainer *items = jarray(in->msg, "subscription_status");

	for (int i = 0; items && i < (int) JsonContainerSize(items); i++)
	{
		JsonbContainer *s = jitem(items, i);
		char	   *code = jstr(s, "code");
		char	   *status = jstr(s, "status");
		Oid			types[2] = {INT4OID, TEXTOID};
		Datum		v[2];

		if (code == NULL || (status && strcmp(status, "unsubscribe") != 0))
			continue;
		v[0] = Int32GetDatum(in->src->id);
		v[1] = CStringGetTextDatum(code);
		spi_run(psprintf("UPDATE %s SET state = 'cancelled', updated_at = pg_catalog.now() "
						 "WHERE source_id OPERATOR(pg_catalog.=) $1 AND code OPERATOR(pg_catalog.=) $2", t),
				2, types, v, NULL, SPI_OK_UPDATE);
	}
}

static bool
code_active(Inbound *in, const char *code)
{
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		v[2];

	v[0] = Int32GetDatum(in->src->id);
	v[1] = CStringGetTextDatum(code);
	/* FOR SHARE: an on-unsubscribe committing meanwhile is waited for */
	return spi_run(psprintf("SELECT 1 FROM %s WHERE source_id OPERATOR(pg_catalog.=) $1 AND code OPERATOR(pg_catalog.=) $2 "
							"AND state OPERATOR(pg_catalog.=) 'active' FOR SHARE", ext_table("dci_subscription")),
				   2, types, v, NULL, SPI_OK_SELECT) > 0;
}

/*
 * notify: the subscription is named by subscription_code, in the message
 * or in each notify_event item; every code named must be active.
 */
static bool
check_notify(Inbound *in, Refusal *r)
{
	char	   *code = jstr(in->msg, "subscription_code");
	JsonbContainer *events = jarray(in->msg, "notify_event");
	int			named = 0;

	if (code)
	{
		named++;
		if (!code_active(in, code))
			goto bad;
	}
	for (int i = 0; events && i < (int) JsonContainerSize(events); i++)
	{
		char	   *c = jstr(jitem(events, i), "subscription_code");

		if (c == NULL)
			continue;
		named++;
		if (!code_active(in, c))
			goto bad;
	}
	if (named > 0)
		return true;
bad:
	refuse(r, 404, "err.subscription_code.invalid",
		   named ? "the subscription code is not an active subscription of this system"
		   : "the notification names no subscription_code");
	return false;
}

static int64 last_purge_at = 0;

static void
purge_old(void)
{
	TimestampTz now = GetCurrentTimestamp();

	if (last_purge_at != 0 && !TimestampDifferenceExceeds(last_purge_at, now, 3600 * 1000))
		return;
	last_purge_at = now;
	/*
	 * The inbox is the replay record: a row goes only when its message would
	 * be stale anyway, i.e. kept at least callback_max_age_s plus the clock
	 * skew (a message_ts that far ahead is still fresh that long after).
	 */
	spi_run(psprintf("DELETE FROM %s WHERE received_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) "
					 "pg_catalog.make_interval(secs => %d))", ext_table("dci_inbox"),
					 Max(dci_inbox_retention_days * 86400, dci_callback_max_age_s + dci_callback_clock_skew_s + 60)),
			0, NULL, NULL, NULL, SPI_OK_DELETE);
	spi_run(psprintf("UPDATE %s SET state = 'expired' WHERE state OPERATOR(pg_catalog.=) ANY ('{sent,acked}'::pg_catalog.text[]) "
					 "AND sent_at OPERATOR(pg_catalog.<) (pg_catalog.now() OPERATOR(pg_catalog.-) pg_catalog.make_interval(days => %d))",
					 ext_table("dci_transaction"), dci_inbox_retention_days),
			0, NULL, NULL, NULL, SPI_OK_UPDATE);
}

/* insert into the inbox and apply; false (r set) when refused */
static bool
store(Inbound *in, Refusal *r, int64 *inbox_id)
{
	Oid			types[8] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID, JSONBOID};
	Datum		v[8];
	char		nulls[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	v[0] = Int32GetDatum(in->src->id);
	v[1] = CStringGetTextDatum(actions[in->action]);
	v[2] = CStringGetTextDatum(in->message_id);
	v[3] = in->transaction_id ? CStringGetTextDatum(in->transaction_id) : (Datum) 0;
	nulls[3] = in->transaction_id ? ' ' : 'n';
	v[4] = in->correlation_id ? CStringGetTextDatum(in->correlation_id) : (Datum) 0;
	nulls[4] = in->correlation_id ? ' ' : 'n';
	v[5] = CStringGetTextDatum(in->verified);
	v[6] = JsonbPGetDatum(in->header);
	v[7] = JsonbPGetDatum(in->message);
	/* the unique index decides a replay, also against a concurrent twin */
	if (spi_run(psprintf("INSERT INTO %s (source_id, action, message_id, transaction_id, correlation_id, verified, header, message) "
						 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (source_id, message_id) DO NOTHING RETURNING id",
						 ext_table("dci_inbox")),
				8, types, v, nulls, SPI_OK_INSERT_RETURNING) == 0)
	{
		refuse(r, 409, "err.message_id.duplicate", "message_id was received before");
		return false;
	}
	*inbox_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (answered[in->action] != NULL)
	{
		bool		settled = false;

		if (in->transaction_id == NULL)
		{
			refuse(r, 404, "err.transaction_id.invalid", "the message has no transaction_id");
			return false;
		}
		if (!store_callback(in, r, &settled))
			return false;
		if (settled || rejected(in->hdr))
			;					/* the subscriptions stay as they are */
		else if (strcmp(actions[in->action], "on-subscribe") == 0)
			store_subscriptions(in);
		else if (strcmp(actions[in->action], "on-unsubscribe") == 0)
			cancel_subscriptions(in);
	}
	else if (!check_notify(in, r))
		return false;
	purge_old();
	return true;
}

static void
announce(Inbound *in, int64 inbox_id)
{
	StringInfoData p;
	bool		first = true;

	initStringInfo(&p);
	appendStringInfoChar(&p, '{');
	/* the code is unbounded, the payload not: a code too long is null (source_id names it) */
	if (strlen(in->src->code) < NOTIFY_MAX_CODE)
		dci_append_str(&p, "source", in->src->code, &first);
	else
	{
		dci_append_key(&p, "source", &first);
		appendStringInfoString(&p, "null");
		dci_append_key(&p, "source_id", &first);
		appendStringInfo(&p, "%d", in->src->id);
	}
	dci_append_str(&p, "action", actions[in->action], &first);
	dci_append_key(&p, "transaction_id", &first);
	if (in->transaction_id)
		escape_json(&p, in->transaction_id);
	else
		appendStringInfoString(&p, "null");
	dci_append_key(&p, "inbox_id", &first);
	appendStringInfo(&p, INT64_FORMAT "}", inbox_id);
	/* transactional: delivered when the caller commits */
	Async_Notify(DCI_NOTIFY_CHANNEL, p.data);
}

/* ---- the checks ---- */

/* key absent, or an array of objects */
static bool
list_of_objects(JsonbContainer *msg, const char *key)
{
	JsonbValue *v = dci_jget(msg, key);
	JsonbContainer *items = jarray(msg, key);

	if (v == NULL)
		return true;
	if (items == NULL)
		return false;
	for (int i = 0; i < (int) JsonContainerSize(items); i++)
		if (jitem(items, i) == NULL)
			return false;
	return true;
}

static void
receive(DciSource *src, const char *raw, size_t len, Jsonb *headers, Refusal *r,
		char **correlation)
{
	Datum		d;
	Jsonb	   *jb;
	Inbound		in;
	char	   *action;
	char	   *ts_text;
	TimestampTz ts;
	TimestampTz now;
	bool		authenticated = false;
	DciRegistryVerify sig;
	DciVerifyResult why;
	DciError	keyerr;
	int64		inbox_id = 0;

	memset(&in, 0, sizeof(in));
	in.src = src;
	/* switched off: like every call, nothing is taken for it */
	if (!src->active)
		REFUSE(503, "err.service.unavailable", "the data source is not active here");
	if (len > (size_t) dci_callback_max_bytes)
		REFUSE(413, "err.request.too_large", "the body is larger than %d bytes", dci_callback_max_bytes);
	if (memchr(raw, '\0', len) != NULL || json_nesting_exceeds(raw, len, INBOUND_MAX_DEPTH) ||
		!try_in_subxact(parse_jsonb, CStringGetDatum(pnstrdup(raw, len)), &d))
		REFUSE(400, "err.request.bad", "the body is not JSON (or nests deeper than %d)", INBOUND_MAX_DEPTH);
	jb = DatumGetJsonbP(d);

	/* a DCI envelope */
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb) ||
		(in.hdr = dci_jobject(dci_jget(&jb->root, "header"))) == NULL ||
		(in.msg = dci_jobject(dci_jget(&jb->root, "message"))) == NULL)
		REFUSE(400, "err.request.invalid", "the body is not a DCI envelope (an object with header and message objects)");
	in.message_id = jstr(in.hdr, "message_id");
	ts_text = jstr(in.hdr, "message_ts");
	action = jstr(in.hdr, "action");
	if (in.message_id == NULL || *in.message_id == '\0' || strlen(in.message_id) > INBOUND_ID_MAX ||
		ts_text == NULL || action == NULL)
		REFUSE(400, "err.request.invalid", "header needs message_id (at most %d characters), message_ts and action strings", INBOUND_ID_MAX);
	*correlation = pstrdup(in.message_id);

	in.action = -1;
	for (int i = 0; i < lengthof(actions); i++)
		if (strcmp(action, actions[i]) == 0)
			in.action = i;
	if (in.action < 0)
		REFUSE(400, "err.action.not_supported", "action must be on-search, on-subscribe, on-unsubscribe, txn-on-status or notify");

	/* from the source's registry, to us */
	if (src->receiver_id && *src->receiver_id)
	{
		char	   *sender = jstr(in.hdr, "sender_id");

		if (sender == NULL || strcmp(sender, src->receiver_id) != 0)
			REFUSE(403, "err.sender_id.invalid", "sender_id is not the registry of this data source");
	}
	if (src->sender_id && *src->sender_id)
	{
		char	   *receiver = jstr(in.hdr, "receiver_id");

		if (receiver == NULL || strcmp(receiver, src->sender_id) != 0)
			REFUSE(403, "err.receiver_id.invalid", "receiver_id is not this system");
	}

	/* the caller */
	if (src->secret_error.sqlstate != 0)
	{
		ereport(WARNING,
				(errcode(src->secret_error.sqlstate),
				 errmsg("dci_receive: %s", src->secret_error.message)));
		REFUSE(503, "err.service.unavailable", "the receiver cannot check callbacks now");
	}
	if (src->callback_token)
	{
		if (!bearer_ok(src, headers, raw, len))
			REFUSE(401, "err.request.unauthorized", "a valid Authorization: Bearer callback token is required");
		authenticated = true;
	}

	/* the signature, over the bytes as received */
	sig = dci_registry_verify(src, raw, len, "callback", &why, &keyerr);
	if (sig == DCI_REGISTRY_KEY_UNUSABLE)
	{
		ereport(WARNING,
				(errcode(keyerr.sqlstate),
				 errmsg("dci_receive: %s", keyerr.message),
				 keyerr.detail[0] ? errdetail("%s", keyerr.detail) : 0));
		REFUSE(503, "err.service.unavailable", "the receiver cannot check signatures now");
	}
	if (sig == DCI_REGISTRY_MISSING)
		REFUSE(401, "err.signature.missing", "the message must be signed");
	if (sig == DCI_REGISTRY_BAD)
		REFUSE(401, "err.signature.invalid", "the signature does not verify: %s", dci_verify_result_text(why));
	in.verified = sig == DCI_REGISTRY_OK ? "signature" : authenticated ? "token" : "none";

	/* fresh */
	if (!iso_like(ts_text) || !try_in_subxact(parse_timestamptz, CStringGetDatum(ts_text), &d) ||
		TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d)))
		REFUSE(400, "err.message_ts.invalid", "message_ts is not an ISO 8601 timestamp");
	ts = DatumGetTimestampTz(d);
	now = GetCurrentTimestamp();
	if (ts < now && TimestampDifferenceExceeds(ts, now, dci_callback_max_age_s * 1000))
		REFUSE(400, "err.message_ts.expired", "message_ts is older than %d seconds", dci_callback_max_age_s);
	if (ts > now && TimestampDifferenceExceeds(now, ts, dci_callback_clock_skew_s * 1000))
		REFUSE(400, "err.message_ts.future", "message_ts is in the future");

	/*
	 * The answer's list, when there is one, is an array of objects: the
	 * parts are appended to it and dci_await reads its items as objects.
	 */
	if (parts_key[in.action] && !list_of_objects(in.msg, parts_key[in.action]))
		REFUSE(400, "err.request.invalid", "message.%s must be an array of objects", parts_key[in.action]);

	in.transaction_id = jstr(in.msg, "transaction_id");
	if (in.transaction_id && strlen(in.transaction_id) > INBOUND_ID_MAX)
		in.transaction_id = NULL;
	in.correlation_id = jstr(in.msg, "correlation_id");
	if (in.correlation_id && strlen(in.correlation_id) > INBOUND_ID_MAX)
		in.correlation_id = NULL;
	in.header = jsub(&jb->root, "header");
	in.message = jsub(&jb->root, "message");

	/* never seen, answers what we sent; all or nothing */
	{
		MemoryContext oldcxt = CurrentMemoryContext;
		ResourceOwner oldowner = CurrentResourceOwner;
		DciPrivilegedState priv;
		bool		ok;

		dci_spi_begin_privileged(&priv);
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcxt);
		ok = store(&in, r, &inbox_id);
		if (ok)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		dci_spi_end_privileged(&priv);
		if (!ok)
			return;
	}
	announce(&in, inbox_id);
	r->status = 200;
}

static Jsonb *
answer(const Refusal *r, const char *correlation)
{
	StringInfoData out;
	char		ts[32];
	bool		first = true;

	dci_timestamp_now(ts, sizeof(ts));
	initStringInfo(&out);
	appendStringInfoString(&out, "{\"message\":{");
	dci_append_str(&out, "ack_status", r->status == 200 ? "ACK" : "ERR", &first);
	dci_append_str(&out, "timestamp", ts, &first);
	dci_append_str(&out, "correlation_id", correlation ? correlation : "", &first);
	if (r->status != 200)
	{
		bool		efirst = true;

		dci_append_key(&out, "error", &first);
		appendStringInfoChar(&out, '{');
		dci_append_str(&out, "code", r->code, &efirst);
		dci_append_str(&out, "message", r->message, &efirst);
		appendStringInfoChar(&out, '}');
	}
	appendStringInfoString(&out, "}}");
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

PG_FUNCTION_INFO_V1(dci_receive);

/* dci_receive(source, body text, headers jsonb) RETURNS TABLE(http_status, response) */
Datum
dci_receive(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	DciSource  *src;
	text	   *body;
	Jsonb	   *headers = NULL;
	Refusal		r;
	char	   *correlation = NULL;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("body must not be NULL")));
	if (!PG_ARGISNULL(2))
	{
		headers = PG_GETARG_JSONB_P(2);
		if (!JB_ROOT_IS_OBJECT(headers) || JB_ROOT_IS_SCALAR(headers))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("headers must be a JSON object of lower-case header names")));
	}
	src = dci_source_from_arg(fcinfo, false);
	body = PG_GETARG_TEXT_PP(1);
	memset(&r, 0, sizeof(r));
	receive(src, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body), headers, &r, &correlation);

	InitMaterializedSRF(fcinfo, 0);
	values[0] = Int32GetDatum(r.status);
	values[1] = JsonbPGetDatum(answer(&r, correlation));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* ---- dci_await ---- */

/* the state and result of a transaction; false when there is none */
static bool
read_transaction(DciSource *src, const char *txn, char **state, Jsonb **result, bool *is_search,
				 MemoryContext into)
{
	DciPrivilegedState priv;
	Oid			types[2] = {INT4OID, TEXTOID};
	Datum		v[2];
	bool		found = false;

	v[0] = Int32GetDatum(src->id);
	v[1] = CStringGetTextDatum(txn);
	dci_spi_begin_privileged(&priv);
	/* not read-only: each check takes a fresh snapshot (READ COMMITTED) */
	/*
	 * The result only once the transaction is over: the checks of a long
	 * wait would otherwise each copy a partial answer (up to
	 * max_response_bytes) into the transaction's memory.
	 */
	if (spi_run(psprintf("SELECT state, CASE WHEN state OPERATOR(pg_catalog.<>) ALL ('{completed,failed}'::pg_catalog.text[]) THEN NULL "
						 "WHEN action OPERATOR(pg_catalog.=) 'search' THEN "
						 "CASE WHEN pg_catalog.jsonb_array_length(response OPERATOR(pg_catalog.->) 'search_response') OPERATOR(pg_catalog.>) 1 "
						 /* the records of every part into the first item's data, when it is an object */
						 "AND pg_catalog.jsonb_typeof(response OPERATOR(pg_catalog.#>) '{search_response,0,data}') OPERATOR(pg_catalog.=) 'object' "
						 "THEN pg_catalog.jsonb_set(response OPERATOR(pg_catalog.#>) '{search_response,0}', '{data,reg_records}', "
						 "pg_catalog.jsonb_path_query_array(response, '$.search_response[*].data.reg_records[*]')) "
						 "ELSE response OPERATOR(pg_catalog.#>) '{search_response,0}' END "
						 "WHEN action OPERATOR(pg_catalog.=) 'txn-status' THEN "
						 "COALESCE(response OPERATOR(pg_catalog.->) 'txnstatus_response', response) "
						 "ELSE response END, action OPERATOR(pg_catalog.=) 'search' FROM %s "
						 "WHERE source_id OPERATOR(pg_catalog.=) $1 AND transaction_id OPERATOR(pg_catalog.=) $2",
						 ext_table("dci_transaction")),
				2, types, v, NULL, SPI_OK_SELECT) == 1)
	{
		bool		isnull;
		Datum		d;

		found = true;
		*is_search = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		*state = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		*result = isnull ? NULL : DatumGetJsonbPCopy(d);
		/* out of SPI's memory, which SPI_finish frees; the caller's context (per check) */
		*state = MemoryContextStrdup(into, *state);
		if (*result)
		{
			Jsonb	   *copy = MemoryContextAlloc(into, VARSIZE(*result));

			memcpy(copy, *result, VARSIZE(*result));
			*result = copy;
		}
	}
	dci_spi_end_privileged(&priv);
	return found;
}

PG_FUNCTION_INFO_V1(dci_await);

/* dci_await(source, transaction_id, timeout_ms) RETURNS jsonb: the result, NULL on timeout */
Datum
dci_await(PG_FUNCTION_ARGS)
{
	DciSource  *src;
	char	   *txn;
	int32		timeout_ms;
	TimestampTz deadline;
	long		step = 10;
	MemoryContext check_cxt;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("transaction_id and timeout_ms must not be NULL")));
	timeout_ms = PG_GETARG_INT32(2);
	if (timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout_ms must not be negative")));
	txn = text_to_cstring(PG_GETARG_TEXT_PP(1));
	src = dci_source_from_arg(fcinfo, false);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_STATE),
				 errmsg("dci_await needs READ COMMITTED"),
				 errdetail("Under REPEATABLE READ or SERIALIZABLE the transaction's snapshot never shows a callback that arrives while it waits.")));
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	check_cxt = AllocSetContextCreate(CurrentMemoryContext, "dci_await check", ALLOCSET_SMALL_SIZES);
	for (;;)
	{
		char	   *state;
		Jsonb	   *result;
		bool		is_search = false;
		long		left;

		MemoryContextReset(check_cxt);
		if (!read_transaction(src, txn, &state, &result, &is_search, check_cxt))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("transaction \"%s\" is not an asynchronous request sent to data source \"%s\"",
							dci_quote_text(txn, strlen(txn)), src->code)));
		if (strcmp(state, "completed") == 0 || strcmp(state, "failed") == 0)
		{
			if (result == NULL)
				PG_RETURN_NULL();
			/* an answer to a search as dci_search gives it */
			if (is_search && !JB_ROOT_IS_SCALAR(result) && JB_ROOT_IS_OBJECT(result))
			{
				JsonbValue	v;

				v.type = jbvBinary;
				v.val.binary.data = &result->root;
				v.val.binary.len = VARSIZE(result) - VARHDRSZ;
				PG_RETURN_JSONB_P(dci_normalize_item(&v));
			}
			PG_RETURN_JSONB_P(result);
		}
		if (strcmp(state, "expired") == 0)
			PG_RETURN_NULL();
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (left <= 0)
			PG_RETURN_NULL();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Min(step, left), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		step = Min(step * 2, 200);
	}
}
