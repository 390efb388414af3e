/*
 * dialect.c
 *		Registries that deviate from the DCI standard in known ways, as
 *		OpenSPP's own client meets them (README "Any endpoint, domain
 *		endpoints and dialects" lists each rule and where it comes from):
 *
 *		opencrvs: by-id lookups as an expression query, reg_event_type in
 *		lower case (birth, death, marriage), consent and locale on the
 *		request item, sort by createdAt.
 *
 *		openg2p: by-id lookups as an expression on search_text, reg_type
 *		and reg_record_type "Individual", consent and authorize blocks on
 *		every search_criteria; REG-ERR-001 means "no record".
 */
#include "dci_client.h"

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "dci_answer.h"
#include "dialect.h"
#include "json.h"

/* the namespaced query type both dialects carry inside the query */
#define EXPRESSION_QUERY_TYPE "ns:org:QueryType:expression"

/* OpenCRVS' record field for a registration number (BRN, DRN, MRN) */
#define OPENCRVS_REGISTRATION_NUMBER "legalStatuses.REGISTERED.registrationNumber"

static bool
is_registration_number(const char *id_type)
{
	return strcmp(id_type, "BRN") == 0 || strcmp(id_type, "DRN") == 0 || strcmp(id_type, "MRN") == 0;
}

/* the event a by-id lookup is about, from the kind of its number */
static const char *
opencrvs_event_of(const char *id_type)
{
	if (id_type && strcmp(id_type, "DRN") == 0)
		return "death";
	if (id_type && strcmp(id_type, "MRN") == 0)
		return "marriage";
	return "birth";
}

/* the option's reg_event_type when it is a string, in lower case (palloc'd); else NULL */
static char *
option_event_lower(const char *option_json)
{
	Jsonb	   *opt;
	JsonbValue *s;
	char	   *lower;

	if (option_json == NULL)
		return NULL;
	opt = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(option_json)));
	if (!JB_ROOT_IS_SCALAR(opt))
		return NULL;
	s = getIthJsonbValueFromContainer(&opt->root, 0);
	if (s == NULL || s->type != jbvString)
		return NULL;
	/* event names are ASCII: no locale's idea of case */
	lower = pnstrdup(s->val.string.val, s->val.string.len);
	for (char *p = lower; *p; p++)
		*p = pg_ascii_tolower((unsigned char) *p);
	return lower;
}

char *
dci_dialect_id_query(const DciSource *src, const char **query_type, Jsonb *query,
					 const char *event_option_json, char **id_type)
{
	JsonbValue	  *t;
	JsonbValue	  *v;
	StringInfoData q;
	char		  *value;

	*id_type = NULL;
	if (src->dialect == DCI_DIALECT_DCI || strcmp(*query_type, "idtype-value") != 0 ||
		!JB_ROOT_IS_OBJECT(query) || JB_ROOT_IS_SCALAR(query))
		return NULL;
	t = dci_jget(&query->root, "type");
	v = dci_jget(&query->root, "value");
	if (t == NULL || t->type != jbvString || v == NULL)
		return NULL;
	*id_type = dci_jstring(t);
	value = dci_jsonb_to_compact(JsonbValueToJsonb(v), NULL);

	initStringInfo(&q);
	appendStringInfoString(&q, "{\"type\":\"" EXPRESSION_QUERY_TYPE "\",\"value\":{\"expression\":{\"query\":{");
	if (src->dialect == DCI_DIALECT_OPENG2P)
		appendStringInfo(&q, "\"search_text\":{\"$eq\":%s}", value);
	else if (is_registration_number(*id_type))
		appendStringInfo(&q, "\"" OPENCRVS_REGISTRATION_NUMBER "\":{\"type\":\"exact\",\"term\":%s}", value);
	else if (strcmp(*id_type, "UIN") == 0 || strcmp(*id_type, "NID") == 0)
	{
		/* the gateway's nidField: child.nid for birth, deceased.nid for any other event sent */
		char	   *event = option_event_lower(event_option_json);

		appendStringInfo(&q, "\"data\":{\"%s.nid\":{\"type\":\"exact\",\"term\":%s}}",
						 strcmp(event ? event : opencrvs_event_of(*id_type), "birth") == 0 ? "child" : "deceased",
						 value);
	}
	else
	{
		escape_json(&q, *id_type);
		appendStringInfo(&q, ":{\"type\":\"exact\",\"term\":%s}", value);
	}
	appendStringInfoString(&q, "}}}}");
	*query_type = "expression";
	return q.data;
}

char *
dci_dialect_event_type(const DciSource *src, const char *option_json, const char *id_type)
{
	char	   *lower;

	if (src->dialect != DCI_DIALECT_OPENCRVS)
		return option_json ? pstrdup(option_json) : NULL;
	/* OpenCRVS needs the event on every search; a by-id lookup says it by its number */
	if (option_json == NULL)
	{
		StringInfoData b;

		initStringInfo(&b);
		escape_json(&b, opencrvs_event_of(id_type));
		return b.data;
	}
	lower = option_event_lower(option_json);
	if (lower == NULL)
		return pstrdup(option_json);
	{
		StringInfoData b;

		initStringInfo(&b);
		escape_json(&b, lower);
		return b.data;
	}
}

char *
dci_dialect_default_block(const DciSource *src, const char *which, const char *ts)
{
	StringInfoData b;
	bool		   consent = strcmp(which, "consent") == 0;

	initStringInfo(&b);
	if (src->dialect == DCI_DIALECT_OPENG2P)
	{
		/* JSON-LD consent and authorize, purpose ELIGIBILITY_CHECK, on every search_criteria */
		appendStringInfo(&b, "{\"@context\":\"https://schema.spdci.org/common/v1/api-schemas/%s.jsonld\","
						 "\"@type\":\"%s\",\"ts\":\"%s\",\"purpose\":{"
						 "\"text\":\"Eligibility verification for social-protection program\","
						 "\"code\":\"ELIGIBILITY_CHECK\","
						 "\"ref_uri\":\"https://docs.openspp.org/consent/eligibility-check\"}}",
						 consent ? "Consent" : "Authorize", consent ? "Consent" : "Authorize", ts);
		return b.data;
	}
	if (src->dialect == DCI_DIALECT_OPENCRVS && consent)
	{
		/* on the request item; refUri is where the registry can reach the requester */
		appendStringInfo(&b, "{\"id\":\"consent-openspp\",\"ts\":\"%s\",\"purpose\":{"
						 "\"text\":\"Social protection program verification\",\"code\":\"SPP\",\"refUri\":",
						 ts);
		escape_json(&b, src->callback_uri ? src->callback_uri : "http://openspp.org");
		appendStringInfoString(&b, "}}");
		return b.data;
	}
	pfree(b.data);
	return NULL;
}

bool
dci_dialect_not_found(const DciSource *src, JsonbContainer *item)
{
	char *status;
	char *code;

	if (src->dialect != DCI_DIALECT_OPENG2P || item == NULL)
		return false;
	status = dci_jstring(dci_jget(item, "status"));
	code = dci_jstring(dci_jget(item, "status_reason_code"));
	return status && strcmp(status, "rjct") == 0 && code && strcmp(code, "REG-ERR-001") == 0;
}
