/*
 * sign.c
 *		Signing keys and DCI signatures on the PostgreSQL side (README "Signing"):
 *		dci_sign, dci_verify, dci_jwks, dci_generate_signing_key, and the
 *		signing / verification of the DCI layer's envelopes.
 *
 * Keys are read from dci_signing_key through SPI as the bootstrap
 * superuser (callers need EXECUTE only) and kept per backend until the
 * table changes: its statement trigger sends a relcache invalidation of the
 * table, and the callback below marks the cache stale, as in source.c.  A
 * private key is decrypted the first time it signs, and then kept as an
 * OpenSSL key object (never as text).
 *
 * Which keys sign:
 *	- a data source signs only with an "active" key: a "draft" key is not
 *	  yet published in dci_jwks(), so the registry could not verify it;
 *	  "revoked", missing or undecryptable keys refuse (DC001) — a source
 *	  with a key never sends unsigned;
 *	- dci_sign() also signs with a "draft" key, so a new key can be tried
 *	  before it is published; never with a "revoked" one.
 * dci_generate_signing_key() creates "active" keys: the common case is a
 * source that should sign from now on.
 */
#include "dci_client.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/acl.h"
#include "utils/syscache.h"

#include "canonical_json.h"
#include "catalog.h"
#include "errors.h"
#include "json.h"
#include "secrets.h"
#include "sign.h"
#include "jws.h"
#include "sig_field.h"
#include "sig_keys.h"
#include "registry_keys.h"
#include "source.h"

#define RSA_GENERATED_BITS 2048

typedef enum KeyState
{
	KEY_DRAFT,
	KEY_ACTIVE,
	KEY_REVOKED
} KeyState;

typedef struct SigningKey
{
	int32	   id;
	char	  *key_id;
	DciSigAlg  alg;
	KeyState   state;
	char	  *public_pem; /* NULL when not stored */
	bytea	  *private_ct; /* the stored ciphertext, NULL when none */
	DciSigKey *signer;	   /* the decrypted private key, once used */
	DciSigKey *verifier;   /* the public key (stored, or of the private) */
	bool	   openspp_kid; /* kid_format 'openspp': sender_id|key_id|rs256 (README "Signing") */
} SigningKey;

static MemoryContext keys_cxt = NULL;
static SigningKey	*keys = NULL;
static int			 nkeys = 0;
static bool			 keys_valid = false;
static bool			 callback_registered = false;
static Oid			 keys_table = InvalidOid;

static void
keys_relcache_callback(Datum arg, Oid relid)
{
	/* only marks: keys in use by the running call are freed at the next lookup */
	if (relid == InvalidOid || relid == keys_table)
		keys_valid = false;
}

static void
free_keys(void)
{
	for (int i = 0; i < nkeys; i++)
	{
		dci_sigkey_free(keys[i].signer);
		dci_sigkey_free(keys[i].verifier);
	}
	keys = NULL;
	nkeys = 0;
	if (keys_cxt != NULL)
		MemoryContextReset(keys_cxt);
}

static void
load_keys(void)
{
	DciPrivilegedState priv;
	MemoryContext	   old;

	free_keys();
	if (keys_cxt == NULL)
		keys_cxt = AllocSetContextCreate(CacheMemoryContext, "dci_client signing keys",
										 ALLOCSET_SMALL_SIZES);

	keys_table = dci_signing_key_table_oid();
	dci_spi_begin_privileged(&priv);
	/* kid_format is of 0.2: absent while the schema is still 0.1 */
	if (SPI_execute(psprintf("SELECT id, key_id, algorithm, state, public_key, private_key_encrypted, %s "
							 "FROM %s ORDER BY id",
							 get_attnum(keys_table, "kid_format") != InvalidAttrNumber ? "kid_format" : "NULL::text",
							 dci_qualified_table_name(keys_table)),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read dci_signing_key");

	old = MemoryContextSwitchTo(keys_cxt);
	keys = palloc0(sizeof(SigningKey) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		SigningKey *k;
		bool		isnull;
		Datum		d;
		char	   *key_id = SPI_getvalue(tup, td, 2);
		char	   *state = SPI_getvalue(tup, td, 4);

		/*
		 * A damaged row (a superuser dropped a NOT NULL): not a key.  A
		 * source naming it refuses to send (DC001), as for a missing key.
		 */
		if (key_id == NULL || state == NULL || SPI_getvalue(tup, td, 3) == NULL)
			continue;
		k = &keys[nkeys++];
		k->id = DatumGetInt32(SPI_getbinval(tup, td, 1, &isnull));
		k->key_id = pstrdup(key_id);
		k->alg = dci_sig_alg_from_name(SPI_getvalue(tup, td, 3));
		k->state = strcmp(state, "active") == 0 ? KEY_ACTIVE : strcmp(state, "revoked") == 0 ? KEY_REVOKED
																							 : KEY_DRAFT;
		k->public_pem = SPI_getvalue(tup, td, 5);
		if (k->public_pem != NULL && *k->public_pem == '\0')
			k->public_pem = NULL;
		d = SPI_getbinval(tup, td, 6, &isnull);
		k->private_ct = isnull ? NULL : DatumGetByteaPCopy(d);
		{
			char *kid_format = SPI_getvalue(tup, td, 7);

			k->openspp_kid = kid_format != NULL && strcmp(kid_format, "openspp") == 0;
		}
	}
	MemoryContextSwitchTo(old);
	dci_spi_end_privileged(&priv);

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(keys_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	keys_valid = true;
}

static void
begin_lookup(void)
{
	/* see committed changes of other sessions on the very next call */
	AcceptInvalidationMessages();
	if (!keys_valid)
		load_keys();
}

static SigningKey *
find_key_by_name(const char *key_id)
{
	begin_lookup();
	for (int i = 0; i < nkeys; i++)
		if (strcmp(keys[i].key_id, key_id) == 0)
			return &keys[i];
	return NULL;
}

static SigningKey *
find_key_by_id(int32 id)
{
	begin_lookup();
	for (int i = 0; i < nkeys; i++)
		if (keys[i].id == id)
			return &keys[i];
	return NULL;
}

/* the private key, decrypted on first use; raises DC001 when it cannot be had */
static DciSigKey *
key_signer(SigningKey *k)
{
	DciError   err = {0};
	char	  *binding;
	char	  *pem;
	char	   msg[256] = "";
	DciSigKey *signer;

	if (k->signer != NULL)
		return k->signer;
	if (k->private_ct == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key \"%s\" has no private key", k->key_id),
				 errhint("Store it with UPDATE dci_signing_key SET private_key = '<PEM>', or use dci_generate_signing_key().")));
	binding = dci_secret_binding(k->key_id, dci_sig_alg_name(k->alg), NULL, true, NULL);
	pem = dci_secret_decrypt(k->private_ct, "dci_signing_key", "private_key", k->id, binding,
							 psprintf("signing key \"%s\"", k->key_id), &err);
	if (pem == NULL)
		dci_error_raise(&err);
	signer = dci_sigkey_load(pem, true, msg, sizeof(msg));
	dci_secret_free(pem);
	if (signer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("private_key of signing key \"%s\" is not usable", k->key_id),
				 errdetail("It is %s.", msg),
				 errhint("Keys are Ed25519 or RSA of 2048 bits or more, as unencrypted PEM (PKCS#8).")));
	if (dci_sigkey_alg(signer) != k->alg)
	{
		dci_sigkey_free(signer);
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("private_key of signing key \"%s\" is not an %s key", k->key_id,
						dci_sig_alg_name(k->alg))));
	}
	if (k->public_pem != NULL)
	{
		DciSigKey *pub = dci_sigkey_load(k->public_pem, false, msg, sizeof(msg));
		bool	   same = pub != NULL && dci_sigkey_same_public(signer, pub);

		dci_sigkey_free(pub);
		if (!same)
		{
			dci_sigkey_free(signer);
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("public_key and private_key of signing key \"%s\" do not belong together",
							k->key_id),
					 errhint("Store the public key of the private key, or set public_key to NULL.")));
		}
	}
	k->signer = signer;
	return signer;
}

/* the public key: the stored one, else the private key's */
static DciSigKey *
key_verifier(SigningKey *k)
{
	char msg[256] = "";

	if (k->verifier != NULL)
		return k->verifier;
	if (k->public_pem != NULL)
	{
		k->verifier = dci_sigkey_load(k->public_pem, false, msg, sizeof(msg));
		if (k->verifier == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("public_key of signing key \"%s\" is not usable", k->key_id),
					 errdetail("It is %s.", msg)));
	}
	else
	{
		DciSigKey *signer = key_signer(k);
		char	  *pem = dci_sigkey_public_pem(signer);

		k->verifier = pem ? dci_sigkey_load(pem, false, msg, sizeof(msg)) : NULL;
		free(pem);
		if (k->verifier == NULL)
			elog(ERROR, "could not derive the public key of signing key \"%s\"", k->key_id);
	}
	return k->verifier;
}

/* sign the envelope text {header, message, ...} with k: the signature field */
static char *
sign_text(SigningKey *k, const char *sender_id, const char *text, size_t len)
{
	DciSigKey *signer = key_signer(k);
	char	  *hm;
	size_t	   hm_len;
	char	   err[256] = "";
	char	  *field;
	char	  *result;
	int64	   created = (int64) time(NULL);

	if (!cj_envelope(text, len, &hm, &hm_len, NULL, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot sign: %s", err),
				 errhint("An envelope is a JSON object with \"header\" and \"message\".")));
	/*
	 * An openspp kidId is split on '|': a sender_id holding one would be read as
	 * another sender, and dci_jwks() publishes no kid for it (openspp_kids).
	 */
	if (k->openspp_kid && strchr(sender_id, '|') != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key \"%s\" (kid_format 'openspp') cannot sign for a sender_id holding \"|\"",
						k->key_id),
				 errdetail("Its kidId is sender_id|key_id|algorithm: a registry would read another sender_id."),
				 errhint("Change the sender_id, or the key's kid_format to 'thumbprint'.")));
	/* OpenSPP's registries compare the algorithm with the kid's last part: spell it as they do */
	field = dci_sig_sign_as(signer, sender_id, k->key_id,
							k->openspp_kid ? dci_sig_alg_openspp_name(k->alg) : dci_sig_alg_name(k->alg),
							hm, hm_len, created, created + DCI_SIG_LIFETIME, err, sizeof(err));
	free(hm);
	if (field == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot sign with key \"%s\": %s", k->key_id, err)));
	result = pstrdup(field);
	free(field);
	return result;
}

/*
 * The compact JWS (RS256, kid = the key's RFC 7638 thumbprint) of payload,
 * the exact text that is sent without "signature".  Only RSA keys: DC001
 * for an Ed25519 one (what names the key is in what).
 */
static char *
sign_jws_text(SigningKey *k, const char *what, const char *payload, size_t len)
{
	DciSigKey *signer;
	char	  *kid;
	char	   err[256] = "";
	char	  *jws;
	char	  *result;

	if (k->alg != DCI_SIG_RSA_SHA256)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("%s cannot sign a JWS: signing key \"%s\" is %s", what, k->key_id,
						dci_sig_alg_name(k->alg)),
				 errdetail("The JWS format (signature_format 'jws', as OpenCRVS uses) is RS256: it needs an rsa-sha256 key."),
				 errhint("Use an rsa-sha256 key, e.g. dci_generate_signing_key(NULL, 'rsa-sha256'), or signature_format 'dci'.")));
	signer = key_signer(k);
	kid = dci_sigkey_thumbprint(signer);
	if (kid == NULL)
		elog(ERROR, "could not compute the thumbprint of signing key \"%s\"", k->key_id);
	jws = dci_jws_sign(signer, kid, payload, len, err, sizeof(err));
	free(kid);
	if (jws == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot sign with key \"%s\": %s", k->key_id, err)));
	result = pstrdup(jws);
	free(jws);
	return result;
}

/* ---- the DCI layer ---- */

char *
dci_signature_for_source(DciSource *src, const char *hm_text, size_t len)
{
	SigningKey *k;

	if (src->signing_key_id == 0)
		return pstrdup("");
	k = find_key_by_id(src->signing_key_id);
	if (k == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key %d of data source \"%s\" does not exist",
						src->signing_key_id, src->code)));
	if (k->state == KEY_REVOKED)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key \"%s\" of data source \"%s\" is revoked", k->key_id, src->code),
				 errhint("Give the data source an active key in signing_key_id, or none.")));
	if (k->state != KEY_ACTIVE)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key \"%s\" of data source \"%s\" is not active", k->key_id, src->code),
				 errdetail("Draft keys are not yet published in dci_jwks(), so the registry could not verify them."),
				 errhint("Set state = 'active' in dci_signing_key.")));
	if (src->signature_format == DCI_SIG_FORMAT_JWS)
		return sign_jws_text(k, psprintf("data source \"%s\"", src->code), hm_text, len);
	return sign_text(k, src->sender_id ? src->sender_id : "", hm_text, len);
}

/*
 * The key that verifies what the source's registry sent (the envelope text
 * body; what names it: "answer", "callback"): from the registry's JWKS when
 * registry_jwks_url is set (the key the signature names, registry_keys.c),
 * else registry_public_key.  The one place registry keys are acquired.
 * NULL with err unset: the source names no key; NULL with err set: no key
 * (DC008: the envelope names none that the set holds, or is not signed).
 * *owned receives what the caller must free.
 */
/*
 * Parsed registry_public_keys of the last few source loads, by the load's
 * serial (a changed row is a new load): OpenSSL 3's PEM decoder costs more
 * than the verification itself, and a registry answering or calling back
 * many times would pay it every time.  Public keys only.
 */
#define REGISTRY_PEM_CACHE 8
static struct
{
	uint64		serial;
	DciSigKey  *key;
}			pem_cache[REGISTRY_PEM_CACHE];
static int	pem_cache_next = 0;

static const DciSigKey *
registry_key(DciSource *src, const char *body, size_t len, const char *what,
			 DciSigKey **owned, DciError *err)
{
	char		msg[256] = "";
	DciSigKey  *key;
	int			slot;

	*owned = NULL;
	if (src->registry_jwks_url != NULL && *src->registry_jwks_url != '\0')
		return dci_registry_key_for_envelope(src, body, len, what, err);
	if (src->registry_public_key == NULL || *src->registry_public_key == '\0')
		return NULL;
	for (int i = 0; i < REGISTRY_PEM_CACHE; i++)
		if (pem_cache[i].key != NULL && pem_cache[i].serial == src->serial)
			return pem_cache[i].key;
	key = dci_sigkey_load(src->registry_public_key, false, msg, sizeof(msg));
	if (key == NULL)
	{
		dci_error_set(err, ERRCODE_DCI_CONFIG, "registry_public_key of data source \"%s\" is not usable", src->code);
		dci_error_detail(err, "It is %s.", msg);
		dci_error_hint(err, "Set it to the registry's Ed25519 or RSA public key (PEM), or to NULL.");
		return NULL;
	}
	slot = pem_cache_next;
	pem_cache_next = (pem_cache_next + 1) % REGISTRY_PEM_CACHE;
	dci_sigkey_free(pem_cache[slot].key);
	pem_cache[slot].serial = src->serial;
	pem_cache[slot].key = key;
	return key;
}

/* does the envelope text carry a non-empty "signature" */
static bool
has_signature(const char *body, size_t len)
{
	char	   *hm = NULL;
	char	   *sig = NULL;
	size_t		hm_len;
	char		err[128];
	bool		has;

	if (!cj_envelope(body, len, &hm, &hm_len, &sig, err, sizeof(err)))
		return false;
	has = sig != NULL && *sig != '\0';
	free(hm);
	free(sig);
	return has;
}

DciRegistryVerify
dci_registry_verify(DciSource *src, const char *body, size_t len, const char *what,
					DciVerifyResult *detail, DciError *err)
{
	DciSigKey  *owned;
	const DciSigKey *key;
	DciVerifyResult r;

	*detail = DCI_VERIFY_OK;
	memset(err, 0, sizeof(*err));
	key = registry_key(src, body, len, what, &owned, err);
	if (key == NULL)
	{
		if (err->sqlstate == 0)
			return DCI_REGISTRY_NO_KEY;
		if (err->sqlstate != ERRCODE_DCI_SIGNATURE)
			return DCI_REGISTRY_KEY_UNUSABLE;
		*detail = has_signature(body, len) ? DCI_VERIFY_BAD_SIGNATURE : DCI_VERIFY_MISSING;
		return *detail == DCI_VERIFY_MISSING ? DCI_REGISTRY_MISSING : DCI_REGISTRY_BAD;
	}
	if (src->signature_format == DCI_SIG_FORMAT_JWS)
	{
		if (dci_sigkey_alg(key) != DCI_SIG_RSA_SHA256)
		{
			dci_sigkey_free(owned);
			dci_error_set(err, ERRCODE_DCI_CONFIG, "registry_public_key of data source \"%s\" cannot verify a JWS", src->code);
			dci_error_detail(err, "The JWS format (signature_format 'jws') is RS256: it needs an RSA key, not an Ed25519 one.");
			dci_error_hint(err, "Set registry_public_key to the registry's RSA public key, or signature_format to 'dci'.");
			return DCI_REGISTRY_KEY_UNUSABLE;
		}
		r = dci_jws_verify_envelope(key, body, len);
	}
	else
		r = dci_sig_verify_envelope(key, body, len, (int64) time(NULL));
	dci_sigkey_free(owned);
	*detail = r;
	if (r == DCI_VERIFY_OK)
		return DCI_REGISTRY_OK;
	return r == DCI_VERIFY_MISSING ? DCI_REGISTRY_MISSING : DCI_REGISTRY_BAD;
}

void
dci_verify_response(DciSource *src, const char *body, size_t len)
{
	DciError	err;
	DciVerifyResult r;
	DciRegistryVerify v = dci_registry_verify(src, body, len, "answer", &r, &err);

	if (v == DCI_REGISTRY_NO_KEY || v == DCI_REGISTRY_OK)
		return;
	/* the key's own error (an unusable key; the key set's DC008 or fetch error) as it is */
	if (err.sqlstate != 0)
		dci_error_raise(&err);
	if (v == DCI_REGISTRY_MISSING)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_SIGNATURE),
				 errmsg("answer of data source \"%s\" is not signed", src->code),
				 errdetail("%s", dci_verify_result_text(r)),
				 errhint("The data source names registry_public_key, so its answers must be signed.")));
	ereport(ERROR,
			(errcode(ERRCODE_DCI_SIGNATURE),
			 errmsg("signature of the answer from data source \"%s\" does not verify", src->code),
			 errdetail("%s", dci_verify_result_text(r)),
			 errhint("Check %s of data source \"%s\", and the clocks of both sides.",
					 src->registry_jwks_url ? "registry_jwks_url" : "registry_public_key", src->code)));
}

/* ---- SQL functions ---- */

/* header.sender_id of an envelope, or NULL */
static char *
envelope_sender_id(Jsonb *jb)
{
	JsonbValue *header;
	JsonbValue *sender;

	if (!JB_ROOT_IS_OBJECT(jb))
		return NULL;
	header = getKeyJsonValueFromContainer(&jb->root, "header", 6, NULL);
	if (header == NULL || header->type != jbvBinary)
		return NULL;
	sender = getKeyJsonValueFromContainer(header->val.binary.data, "sender_id", 9, NULL);
	if (sender == NULL || sender->type != jbvString)
		return NULL;
	return pnstrdup(sender->val.string.val, sender->val.string.len);
}

/* the key a SQL signing function names: draft keys sign too, revoked ones never */
static SigningKey *
sql_signing_key(const char *key_id)
{
	SigningKey *k = find_key_by_name(key_id);

	if (k == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key \"%s\" does not exist", key_id)));
	if (k->state == KEY_REVOKED)
		ereport(ERROR,
				(errcode(ERRCODE_DCI_CONFIG),
				 errmsg("signing key \"%s\" is revoked", key_id)));
	return k;
}

PG_FUNCTION_INFO_V1(dci_sign);

/* dci_sign(envelope jsonb, key_id text) RETURNS text */
Datum
dci_sign(PG_FUNCTION_ARGS)
{
	Jsonb	   *envelope = PG_GETARG_JSONB_P(0);
	SigningKey *k = sql_signing_key(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	char	   *sender_id;
	char	   *text;
	size_t		len;

	sender_id = envelope_sender_id(envelope);
	if (sender_id == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("envelope has no header.sender_id"),
				 errdetail("The signature names its sender (kidId is sender_id|key_id|algorithm).")));
	/* the text that is sent: jsonb's own output, compact */
	text = dci_jsonb_to_compact(envelope, &len);
	PG_RETURN_TEXT_P(cstring_to_text(sign_text(k, sender_id, text, len)));
}

/* a verifier of an envelope's text under a key */
typedef DciVerifyResult (*EnvelopeVerifier)(const DciSigKey *key, const char *text, size_t len);

static DciVerifyResult
verify_dci_field(const DciSigKey *key, const char *text, size_t len)
{
	return dci_sig_verify_envelope(key, text, len, (int64) time(NULL));
}

/*
 * The SQL verifiers: false, never an error, for anything that is not a valid
 * signature; the reason goes to DEBUG1.
 */
static bool
verify_sql(FunctionCallInfo fcinfo, const char *fname, EnvelopeVerifier verify)
{
	Jsonb		   *envelope = PG_GETARG_JSONB_P(0);
	char		   *pem = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char			msg[256] = "";
	DciSigKey	   *key = dci_sigkey_load(pem, false, msg, sizeof(msg));
	char		   *text;
	size_t			len;
	DciVerifyResult r;

	if (key == NULL)
	{
		elog(DEBUG1, "%s: the public key is %s", fname, msg);
		return false;
	}
	text = dci_jsonb_to_compact(envelope, &len);
	r = verify(key, text, len);
	dci_sigkey_free(key);
	if (r != DCI_VERIFY_OK)
		elog(DEBUG1, "%s: %s", fname, dci_verify_result_text(r));
	return r == DCI_VERIFY_OK;
}

PG_FUNCTION_INFO_V1(dci_verify);

/* dci_verify(envelope jsonb, public_key text) RETURNS boolean */
Datum
dci_verify(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(verify_sql(fcinfo, "dci_verify", verify_dci_field));
}

/*
 * The kids of a kid_format 'openspp' key: sender_id|key_id|alg (OpenSPP's
 * spelling) for each sender_id of the data sources that sign with it, as
 * their signatures' kidId names it.  NIL when no source uses the key (it is
 * then published under its thumbprint).
 */
static List *
openspp_kids(SigningKey *k)
{
	DciPrivilegedState priv;
	Oid				   argtype = INT4OID;
	Datum			   arg = Int32GetDatum(k->id);
	List			  *kids = NIL;
	MemoryContext	   caller = CurrentMemoryContext;

	dci_spi_begin_privileged(&priv);
	if (SPI_execute_with_args(psprintf("SELECT DISTINCT sender_id FROM %s WHERE signing_key_id OPERATOR(pg_catalog.=) $1 "
									   "AND sender_id IS NOT NULL ORDER BY 1",
									   dci_qualified_table_name(dci_source_table_oid())),
							  1, &argtype, &arg, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read dci_data_source");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char		 *sender = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext old;

		/* such a sender_id cannot sign either (sign_text refuses it): no kid for it */
		if (!dci_sig_field_safe(sender) || strchr(sender, '|') != NULL)
		{
			ereport(WARNING,
					(errcode(ERRCODE_DCI_CONFIG),
					 errmsg("signing key \"%s\" is not published for a sender_id holding a double quote, a backslash, \"|\" or a control character",
							k->key_id)));
			continue;
		}
		old = MemoryContextSwitchTo(caller);
		kids = lappend(kids, psprintf("%s|%s|%s", sender, k->key_id, dci_sig_alg_openspp_name(k->alg)));
		MemoryContextSwitchTo(old);
	}
	dci_spi_end_privileged(&priv);
	return kids;
}

PG_FUNCTION_INFO_V1(dci_jwks);

/* dci_jwks() RETURNS jsonb: {"keys": [...]} of the active keys */
Datum
dci_jwks(PG_FUNCTION_ARGS)
{
	StringInfoData out;
	bool		   first = true;

	begin_lookup();
	initStringInfo(&out);
	appendStringInfoString(&out, "{\"keys\":[");
	for (int i = 0; i < nkeys; i++)
	{
		SigningKey *k = &keys[i];
		DciSigKey  *pub;
		char	   *kid;
		char	   *jwk;

		List	   *kids = NIL;
		ListCell   *lc;

		if (k->state != KEY_ACTIVE)
			continue;
		pub = key_verifier(k);
		if (k->openspp_kid)
			kids = openspp_kids(k);
		if (kids == NIL)
		{
			kid = dci_sigkey_thumbprint(pub);
			if (kid == NULL)
				elog(ERROR, "could not compute the thumbprint of signing key \"%s\"", k->key_id);
			kids = list_make1(pstrdup(kid));
			free(kid);
		}
		foreach(lc, kids)
		{
			jwk = dci_sigkey_jwk(pub, (const char *) lfirst(lc));
			if (jwk == NULL)
				elog(ERROR, "could not build the JWK of signing key \"%s\"", k->key_id);
			if (!first)
				appendStringInfoChar(&out, ',');
			first = false;
			appendStringInfoString(&out, jwk);
			free(jwk);
		}
	}
	appendStringInfoString(&out, "]}");
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

PG_FUNCTION_INFO_V1(dci_generate_signing_key);

/*
 * dci_generate_signing_key(key_id text DEFAULT NULL, algorithm text DEFAULT
 * 'ed25519') RETURNS integer: a new active key; key_id defaults to the
 * key's RFC 7638 thumbprint.  The row is inserted as the bootstrap
 * superuser (EXECUTE is the privilege); the trigger encrypts private_key.
 */
Datum
dci_generate_signing_key(PG_FUNCTION_ARGS)
{
	char			  *algorithm;
	DciSigAlg		   alg;
	char			  *private_pem;
	char			  *public_pem;
	char			   err[256] = "";
	char			  *key_id;
	DciPrivilegedState priv;
	Oid				   argtypes[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum			   values[4];
	text			  *private_text;
	int32			   id;
	bool			   isnull;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("algorithm must not be NULL")));
	algorithm = text_to_cstring(PG_GETARG_TEXT_PP(1));
	alg = dci_sig_alg_from_name(algorithm);
	if (alg == DCI_SIG_UNKNOWN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown signing algorithm \"%s\"", algorithm),
				 errhint("The algorithms are \"ed25519\" and \"rsa-sha256\".")));
	if (!PG_ARGISNULL(0) && VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key_id must not be empty"),
				 errhint("Pass NULL for the key's RFC 7638 thumbprint.")));

	if (!dci_sigkey_generate(alg, RSA_GENERATED_BITS, &private_pem, &public_pem, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a signing key: %s", err)));
	if (PG_ARGISNULL(0))
	{
		DciSigKey *pub = dci_sigkey_load(public_pem, false, err, sizeof(err));
		char	  *t = pub ? dci_sigkey_thumbprint(pub) : NULL;

		dci_sigkey_free(pub);
		key_id = t ? pstrdup(t) : NULL;
		free(t);
		if (key_id == NULL)
		{
			explicit_bzero(private_pem, strlen(private_pem));
			free(private_pem);
			free(public_pem);
			elog(ERROR, "could not compute the thumbprint of the new key");
		}
	}
	else
		key_id = text_to_cstring(PG_GETARG_TEXT_PP(0));

	private_text = cstring_to_text(private_pem);
	explicit_bzero(private_pem, strlen(private_pem));
	free(private_pem);
	values[0] = CStringGetTextDatum(key_id);
	values[1] = CStringGetTextDatum(algorithm);
	values[2] = CStringGetTextDatum(public_pem);
	values[3] = PointerGetDatum(private_text);
	free(public_pem);

	dci_spi_begin_privileged(&priv);
	/*
	 * The private key travels as a parameter, never in the statement text.
	 * No row limit: with one, the AFTER STATEMENT trigger that invalidates
	 * the key caches would not fire.
	 */
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (key_id, algorithm, public_key, private_key, state) "
									   "VALUES ($1, $2, $3, $4, 'active') RETURNING id",
									   dci_qualified_table_name(dci_signing_key_table_oid())),
							  4, argtypes, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING ||
		SPI_processed != 1)
		elog(ERROR, "could not insert into dci_signing_key");
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	dci_spi_end_privileged(&priv);
	explicit_bzero(VARDATA(private_text), VARSIZE(private_text) - VARHDRSZ);
	PG_RETURN_INT32(id);
}

PG_FUNCTION_INFO_V1(dci_sign_jws);

/*
 * dci_sign_jws(body jsonb, key_id text) RETURNS text: the compact JWS of
 * the body without "signature" (jsonb's own compact text), as a source with
 * signature_format 'jws' signs.  Draft keys sign too, as with dci_sign.
 */
Datum
dci_sign_jws(PG_FUNCTION_ARGS)
{
	Jsonb	   *body = PG_GETARG_JSONB_P(0);
	SigningKey *k = sql_signing_key(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	Jsonb	   *payload;
	char	   *text;
	size_t		len;
	char	   *hm;
	size_t		hm_len;
	char		err[256] = "";

	payload = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(body),
												 CStringGetTextDatum("signature")));
	text = dci_jsonb_to_compact(payload, &len);
	if (!cj_envelope(text, len, &hm, &hm_len, NULL, err, sizeof(err)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot sign: %s", err),
				 errhint("An envelope is a JSON object with \"header\" and \"message\".")));
	free(hm);
	PG_RETURN_TEXT_P(cstring_to_text(sign_jws_text(k, "dci_sign_jws", text, len)));
}

PG_FUNCTION_INFO_V1(dci_verify_jws);

/*
 * dci_verify_jws(body jsonb, public_key text) RETURNS boolean: does the
 * body's "signature" hold a compact RS256 JWS, valid under public_key,
 * over the body's header and message?
 */
Datum
dci_verify_jws(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(verify_sql(fcinfo, "dci_verify_jws", dci_jws_verify_envelope));
}

bool
dci_may_sign(DciSigFormat format)
{
	Oid argtypes[2] = {JSONBOID, TEXTOID};
	Oid sign_oid;

	/* dci_sign[_jws](jsonb, text) of this extension's schema: by signature, not by search_path */
	sign_oid = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
							   CStringGetDatum(format == DCI_SIG_FORMAT_JWS ? "dci_sign_jws" : "dci_sign"),
							   PointerGetDatum(buildoidvector(argtypes, 2)),
							   ObjectIdGetDatum(dci_extension_schema(false)));
	if (!OidIsValid(sign_oid))
		return false;
#if PG_VERSION_NUM >= 160000
	return object_aclcheck(ProcedureRelationId, sign_oid, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
#else
	return pg_proc_aclcheck(sign_oid, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
#endif
}
