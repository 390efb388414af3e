/*
 * dci_envelope.c
 *		DCI envelopes: written as compact JSON text, the exact bytes sent, so
 *		the signature covers what the registry parses; dci_envelope().
 */
#include "dci_client.h"

#include <sys/time.h>
#include <time.h>

#include "common/pg_prng.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "dci_answer.h"
#include "dci_envelope.h"
#include "json.h"
#include "sign.h"
#include "source.h"

/* ---- small writers ---- */

/*
 * A random (version 4) UUID for message and reference ids.  They must be
 * unique, not secret: a per-backend generator seeded once from the strong
 * source spares OpenSSL's per-call fork check.
 */
void
dci_uuid_v4(char *out)
{
	static pg_prng_state prng;
	static bool			 seeded = false;
	unsigned char		 b[16];
	uint64				 r[2];

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
void
dci_timestamp_now(char *out, size_t len)
{
	struct timeval tv;
	struct tm	   tm;

	int				  fields[7];
	static const int  widths[7] = {4, 2, 2, 2, 2, 2, 3};
	static const char seps[7] = {'-', '-', 'T', ':', ':', '.', 'Z'};
	int				  o = 0;

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
		int v = fields[f];

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

void
dci_append_key(StringInfo buf, const char *key, bool *first)
{
	if (!*first)
		appendStringInfoChar(buf, ',');
	*first = false;
	escape_json(buf, key);
	appendStringInfoChar(buf, ':');
}

void
dci_append_str(StringInfo buf, const char *key, const char *value, bool *first)
{
	dci_append_key(buf, key, first);
	escape_json(buf, value);
}

/* a jsonb value embedded as compact text */
void
dci_append_jsonb(StringInfo buf, const char *key, Jsonb *value, bool *first)
{
	dci_append_key(buf, key, first);
	appendStringInfoString(buf, dci_jsonb_to_compact(value, NULL));
}

/*
 * The envelope text: {"header":{...},"message":<message>,"signature":"..."}
 * The signature covers {"header":H,"message":M} exactly as sent.
 */
static char *build_envelope(DciSource *src, const char *action, const char *message, int total_count,
							const char *callback_status, size_t *len, char *message_id_out);

char *
dci_build_envelope(DciSource *src, const char *action, const char *message, int total_count,
				   size_t *len)
{
	return build_envelope(src, action, message, total_count, NULL, len, NULL);
}

/* the same; the header's message_id copied to message_id_out (37 bytes) */
char *
dci_build_envelope_id(DciSource *src, const char *action, const char *message, int total_count,
					  size_t *len, char *message_id_out)
{
	return build_envelope(src, action, message, total_count, NULL, len, message_id_out);
}

/*
 * callback_status NULL: the request header (MsgHeader); else the callback
 * header (MsgCallbackHeader) with that status, as notify messages carry.
 */
char *
dci_build_envelope_as(DciSource *src, const char *action, const char *message, int total_count,
					  const char *callback_status, size_t *len)
{
	return build_envelope(src, action, message, total_count, callback_status, len, NULL);
}

static char *
build_envelope(DciSource *src, const char *action, const char *message, int total_count,
			   const char *callback_status, size_t *len, char *message_id_out)
{
	StringInfoData hm;
	StringInfoData out;
	char		   msgid[37];
	char		   ts[32];
	bool		   first = true;
	char		  *signature;

	/* registries route and verify by sender_id: an envelope without one is refused there */
	if (src->sender_id == NULL || *src->sender_id == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("data source \"%s\" has no sender_id", src->code),
				 errhint("Set sender_id (this system's DCI identifier, e.g. openspp.example.org) before sending DCI messages.")));
	dci_uuid_v4(msgid);
	if (message_id_out)
		strlcpy(message_id_out, msgid, 37);
	dci_timestamp_now(ts, sizeof(ts));

	initStringInfo(&hm);
	appendStringInfoString(&hm, "{\"header\":{");
	dci_append_str(&hm, "version", DCI_VERSION_STRING, &first);
	dci_append_str(&hm, "message_id", msgid, &first);
	dci_append_str(&hm, "message_ts", ts, &first);
	dci_append_str(&hm, "action", action, &first);
	if (callback_status)
	{
		dci_append_str(&hm, "status", callback_status, &first);
		dci_append_key(&hm, "total_count", &first);
		appendStringInfo(&hm, "%d", total_count);
		dci_append_key(&hm, "completed_count", &first);
		appendStringInfo(&hm, "%d", total_count);
	}
	dci_append_str(&hm, "sender_id", src->sender_id, &first);
	if (src->callback_uri && callback_status == NULL)
		dci_append_str(&hm, "sender_uri", src->callback_uri, &first);
	dci_append_str(&hm, "receiver_id", src->receiver_id ? src->receiver_id : src->base_url, &first);
	if (callback_status == NULL)
	{
		dci_append_key(&hm, "total_count", &first);
		appendStringInfo(&hm, "%d", total_count);
	}
	/* OpenCRVS' gateway writes and expects no is_msg_encrypted (README, dialects) */
	if (src->dialect != DCI_DIALECT_OPENCRVS)
	{
		dci_append_key(&hm, "is_msg_encrypted", &first);
		appendStringInfoString(&hm, "false");
	}
	dci_append_key(&hm, "meta", &first);
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

/* ---- dci_envelope ---- */

/*
 * Requests in a message: the length of its *_request list, of
 * subscription_codes, or of enrolled_updates.beneficiaries; else 1.
 */
int
dci_count_requests(Jsonb *message)
{
	static const char *const lists[] = {"search_request", "subscribe_request", "subscription_codes",
										"notify_request"};
	JsonbValue				*v;

	if (!JB_ROOT_IS_OBJECT(message) || JB_ROOT_IS_SCALAR(message))
		return 1;
	for (int i = 0; i < lengthof(lists); i++)
	{
		v = dci_jget(&message->root, lists[i]);
		if (v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
			return JsonContainerSize(v->val.binary.data);
	}
	v = dci_jget(dci_jobject(dci_jget(&message->root, "enrolled_updates")), "beneficiaries");
	if (v && v->type == jbvBinary && JsonContainerIsArray(v->val.binary.data))
		return JsonContainerSize(v->val.binary.data);
	return 1;
}

PG_FUNCTION_INFO_V1(dci_envelope);

/* dci_envelope(source, action, message jsonb) returns jsonb */
Datum
dci_envelope(PG_FUNCTION_ARGS)
{
	DciSource *src;
	char	  *action;
	Jsonb	  *message;
	char	  *envelope_text;

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
		if (!dci_may_sign(src->signature_format))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to sign with the key of data source \"%s\"", src->code),
					 errdetail("The data source has a signing key, so dci_envelope would return a signature."),
					 errhint("Signing is granted with EXECUTE on %s(jsonb, text).",
							 src->signature_format == DCI_SIG_FORMAT_JWS ? "dci_sign_jws" : "dci_sign")));
		if (!src->active)
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("data source \"%s\" is not active: its key signs nothing", src->code)));
	}
	envelope_text = dci_build_envelope(src, action, dci_jsonb_to_compact(message, NULL),
									   dci_count_requests(message), NULL);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(envelope_text)));
}
