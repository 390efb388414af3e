/*
 * registry_keys.c
 *		A registry's verification keys from its JWK Set (README "Signing",
 *		"Registry keys from a JWKS URL").
 *
 * The set is fetched with dci_http_exchange, as every call of the source
 * is: allowed_hosts (by name and by the address connected to), the
 * source's verify_ssl and ca_cert, the proxy, its timeout, interrupts.  No
 * credential is sent: a JWKS is public.  It is kept per session, for the
 * answer's Cache-Control max-age or dci_client.jwks_cache_ttl_s, and
 * fetched again for a kid it does not hold (a key rotation) — but never
 * sooner than dci_client.jwks_refetch_interval_s after the last fetch,
 * whatever the signatures name or the registry's max-age says, so that
 * neither a hostile sender nor a registry can make us flood the URL.  A set
 * past its expiry that cannot be fetched again stays in use for
 * dci_client.jwks_max_stale_s.
 *
 * The cache lives in malloc'd memory (the keys are OpenSSL objects), one
 * entry per source, named by what the keys depend on (URL and TLS
 * settings): a source whose URL or trust changes starts afresh.
 */
#include "dci_client.h"

#include "utils/timestamp.h"

#include "canonical_json.h"
#include "deadline.h"
#include "http.h"
#include "http_headers.h"
#include "jwk_set.h"
#include "jws.h"
#include "registry_keys.h"
#include "settings.h"
#include "sig_field.h"

/* longest max-age honoured (a registry cannot pin a key set for longer) */
#define JWKS_MAX_TTL_S 86400
/* sources whose sets a session keeps */
#define JWKS_CACHE_ENTRIES 32

typedef struct JwksCacheEntry
{
	int32		source_id;
	char	   *ident;		/* what the set depends on, malloc'd; NULL: free slot */
	DciJwkSet  *set;		/* NULL: none fetched yet */
	TimestampTz fetched_at; /* of set */
	TimestampTz expires_at; /* of set */
	TimestampTz last_attempt;
	DciError	last_error; /* of the last attempt, sqlstate 0 when it succeeded */
} JwksCacheEntry;

static JwksCacheEntry cache[JWKS_CACHE_ENTRIES];

static void
entry_clear(JwksCacheEntry *c)
{
	dci_jwkset_free(c->set);
	free(c->ident);
	memset(c, 0, sizeof(*c));
}

/* the entry of src, made empty when what it depends on changed */
static JwksCacheEntry *
cache_entry(DciSource *src)
{
	char		   *ident = psprintf("%u|%s|%d|%s", src->table_oid, src->registry_jwks_url,
									 (int) src->verify_ssl, src->ca_cert ? src->ca_cert : "");
	JwksCacheEntry *free_slot = NULL;
	JwksCacheEntry *oldest = &cache[0];
	JwksCacheEntry *c;

	for (int i = 0; i < JWKS_CACHE_ENTRIES; i++)
	{
		c = &cache[i];
		if (c->ident == NULL)
		{
			if (free_slot == NULL)
				free_slot = c;
			continue;
		}
		if (c->source_id == src->id)
		{
			if (strcmp(c->ident, ident) == 0)
			{
				pfree(ident);
				return c;
			}
			entry_clear(c);
			free_slot = c;
			break;
		}
		if (c->last_attempt < oldest->last_attempt)
			oldest = c;
	}
	c = free_slot ? free_slot : oldest;
	entry_clear(c);
	c->ident = strdup(ident);
	pfree(ident);
	if (c->ident == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	c->source_id = src->id;
	return c;
}

static bool
may_fetch(const JwksCacheEntry *c, TimestampTz now)
{
	return c->last_attempt == 0 ||
		   now >= TimestampTzPlusMilliseconds(c->last_attempt, (int64) dci_jwks_refetch_interval_s * 1000);
}

/* fetch the set into c; false with c->last_error set (c->set is kept then) */
static bool
fetch_set(DciSource *src, JwksCacheEntry *c)
{
	static const char *const headers[] = {"Accept: application/jwk-set+json, application/json", NULL};
	DciHttpRequest	req = {0};
	DciHttpResponse resp;
	DciError	   *err = &c->last_error;
	DciJwkSet	   *set;
	char			why[256] = "";
	long			ttl;
	bool			ok;

	/* what the next call says if this one is cancelled half-way (the error leaves through longjmp) */
	memset(err, 0, sizeof(*err));
	dci_error_set(err, ERRCODE_DCI_TRANSPORT,
				  "the last fetch of the key set (registry_jwks_url) of data source \"%s\" did not complete",
				  src->code);
	c->last_attempt = GetCurrentTimestamp();
	req.method = "GET";
	req.url = src->registry_jwks_url;
	req.headers = headers;
	req.source = src;
	req.deadline = dci_call_deadline(src);
	req.idempotent = true;
	ok = dci_http_exchange(&req, &resp);
	memset(err, 0, sizeof(*err)); /* dci_error_set keeps the first error */
	if (!ok)
	{
		dci_error_set(err, resp.error.sqlstate ? resp.error.sqlstate : ERRCODE_DCI_TRANSPORT,
					  "could not fetch the key set (registry_jwks_url) of data source \"%s\"", src->code);
		dci_error_detail(err, "%s%s%s", resp.error.message, resp.error.detail[0] ? " " : "", resp.error.detail);
		if (resp.error.hint[0])
			dci_error_hint(err, "%s", resp.error.hint);
		return false;
	}
	if (resp.status != 200)
	{
		bool later = resp.status == 429 || resp.status >= 500;

		dci_error_set(err, later ? ERRCODE_DCI_UNAVAILABLE : ERRCODE_DCI_CONFIG,
					  "key set (registry_jwks_url) of data source \"%s\" answered HTTP %ld", src->code,
					  resp.status);
		dci_error_detail(err, "The key set must be answered with 200 and a JSON Web Key Set (redirects are not followed).");
		return false;
	}
	if (resp.body_len > DCI_JWKS_MAX_BYTES)
	{
		dci_error_set(err, ERRCODE_DCI_TOO_LARGE,
					  "key set (registry_jwks_url) of data source \"%s\" is %zu bytes, more than %d",
					  src->code, resp.body_len, DCI_JWKS_MAX_BYTES);
		return false;
	}
	set = dci_jwkset_parse(resp.body, resp.body_len, why, sizeof(why));
	if (set == NULL)
	{
		dci_error_set(err, ERRCODE_DCI_BAD_JSON,
					  "key set (registry_jwks_url) of data source \"%s\" is not usable", src->code);
		dci_error_detail(err, "In the answer: %s.", why);
		return false;
	}
	ttl = dci_cache_control_max_age(resp.headers ? header_list_get(resp.headers, "cache-control") : NULL);
	if (ttl < 0)
		ttl = dci_jwks_cache_ttl_s;
	ttl = Min(ttl, JWKS_MAX_TTL_S);
	dci_jwkset_free(c->set);
	c->set = set;
	c->fetched_at = c->last_attempt;
	c->expires_at = TimestampTzPlusMilliseconds(c->fetched_at, (int64) ttl * 1000);
	return true;
}

const DciSigKey *
dci_registry_key(DciSource *src, const char *kid, DciSigAlg alg, DciError *err)
{
	JwksCacheEntry	  *c;
	TimestampTz		   now = GetCurrentTimestamp();
	bool			   fetched = false;
	const DciJwkEntry *e;

	if (src->registry_jwks_url == NULL || *src->registry_jwks_url == '\0')
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "data source \"%s\" has no registry_jwks_url", src->code);
		return NULL;
	}
	c = cache_entry(src);

	/* none yet, or expired: fetch, as often as the interval allows */
	if ((c->set == NULL || now >= c->expires_at) && may_fetch(c, now))
	{
		fetched = true;
		(void) fetch_set(src, c);
	}
	if (c->set == NULL ||
		(now >= TimestampTzPlusMilliseconds(c->expires_at, (int64) dci_jwks_max_stale_s * 1000) &&
		 c->last_error.sqlstate != 0))
	{
		if (c->last_error.sqlstate != 0)
		{
			*err = c->last_error;
			if (!fetched)
				dci_error_hint(err, "The key set is fetched again at most every %d s (dci_client.jwks_refetch_interval_s).",
							   dci_jwks_refetch_interval_s);
		}
		else
			dci_error_set(err, ERRCODE_DCI_CONFIG, "no key set of data source \"%s\" yet", src->code);
		return NULL;
	}

	e = dci_jwkset_find(c->set, kid, alg);
	/* a kid the set does not hold: perhaps a rotation — fetch once more, if the interval allows */
	if (e == NULL && !fetched && may_fetch(c, now))
	{
		fetched = true;
		if (fetch_set(src, c))
			e = dci_jwkset_find(c->set, kid, alg);
	}
	if (e == NULL)
	{
		char *quoted = kid && *kid ? dci_quote_text(kid, strlen(kid)) : NULL;

		if (quoted)
			dci_error_set(err, ERRCODE_DCI_SIGNATURE,
						  "the key set of data source \"%s\" has no %s key \"%s\"", src->code,
						  alg == DCI_SIG_UNKNOWN ? "usable" : dci_sig_alg_name(alg), quoted);
		else
			dci_error_set(err, ERRCODE_DCI_SIGNATURE,
						  "the signature names no key, and the key set of data source \"%s\" has not exactly one %s key",
						  src->code, alg == DCI_SIG_UNKNOWN ? "usable" : dci_sig_alg_name(alg));
		if (c->last_error.sqlstate != 0)
			dci_error_detail(err, "Fetching the key set again failed: %s", c->last_error.message);
		else
			dci_error_detail(err, "The key set (registry_jwks_url) holds %d usable key(s)%s.", c->set->nkeys,
							 fetched ? ", fetched just now" : "");
		dci_error_hint(err, "The key set is fetched again at most every %d s (dci_client.jwks_refetch_interval_s).",
					   dci_jwks_refetch_interval_s);
		return NULL;
	}
	return e->key;
}

const DciSigKey *
dci_registry_key_for_envelope(DciSource *src, const char *text, size_t len, const char *what,
							  DciError *err)
{
	char			*hm = NULL;
	size_t			 hm_len;
	char			*sig = NULL;
	const DciSigKey *key = NULL;

	if (!cj_envelope(text, len, &hm, &hm_len, &sig, NULL, 0))
		dci_error_set(err, ERRCODE_DCI_SIGNATURE, "signature of the %s from data source \"%s\" does not verify",
					  what, src->code);
	else if (sig == NULL || *sig == '\0')
	{
		dci_error_set(err, ERRCODE_DCI_SIGNATURE, "%s of data source \"%s\" is not signed", what, src->code);
		dci_error_detail(err, "%s", dci_verify_result_text(DCI_VERIFY_MISSING));
		dci_error_hint(err, "The data source names registry_jwks_url, so what it sends must be signed.");
	}
	else if (src->signature_format == DCI_SIG_FORMAT_JWS)
	{
		DciJws j;

		if (!dci_jws_parse(sig, strlen(sig), &j, NULL, 0))
			dci_error_set(err, ERRCODE_DCI_SIGNATURE, "signature of the %s from data source \"%s\" does not verify",
						  what, src->code);
		else
		{
			/* RS256 is the only JWS algorithm: an Ed25519 key never verifies one */
			key = dci_registry_key(src, j.kid, DCI_SIG_RSA_SHA256, err);
			dci_jws_free(&j);
		}
	}
	else
	{
		DciSigField f;

		if (!dci_sig_field_parse(sig, strlen(sig), &f, NULL, 0))
			dci_error_set(err, ERRCODE_DCI_SIGNATURE, "signature of the %s from data source \"%s\" does not verify",
						  what, src->code);
		else
		{
			key = dci_registry_key(src, f.kid_id, dci_sig_alg_from_any_name(f.algorithm), err);
			dci_sig_field_free(&f);
		}
	}
	if (key == NULL && err->sqlstate == ERRCODE_DCI_SIGNATURE && err->detail[0] == '\0')
		dci_error_detail(err, "%s", dci_verify_result_text(DCI_VERIFY_MALFORMED));
	free(hm);
	free(sig);
	return key;
}
