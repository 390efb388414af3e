/*
 * source.h
 *		The per-backend cache of data sources (source.c): one row of
 *		dci_data_source as the call path needs it, secrets decrypted.
 */
#ifndef DCI_SOURCE_H
#define DCI_SOURCE_H

#include "dci_client.h"
#include "errors.h"
#include "fmgr.h"

typedef enum DciAuthType
{
	DCI_AUTH_NONE,
	DCI_AUTH_BEARER,
	DCI_AUTH_OAUTH2
} DciAuthType;

typedef enum DciCredLocation
{
	DCI_CRED_BODY,
	DCI_CRED_BASIC,
	DCI_CRED_QUERY
} DciCredLocation;

/* dci_data_source.signature_format: how envelopes are signed and answers verified */
typedef enum DciSigFormat
{
	DCI_SIG_FORMAT_DCI = 0, /* the DCI signature field (README "Signing", OpenSPP) */
	DCI_SIG_FORMAT_JWS		/* a compact JWS, RS256, as OpenCRVS signs */
} DciSigFormat;

/* dci_data_source.dialect: how the registry deviates from the DCI standard (src/dialect.c) */
typedef enum DciDialect
{
	DCI_DIALECT_DCI = 0, /* the standard */
	DCI_DIALECT_OPENCRVS,
	DCI_DIALECT_OPENG2P
} DciDialect;

/*
 * One data source row as the call path needs it, with its secrets
 * decrypted.  Lives in its own memory context under CacheMemoryContext
 * until the table changes; secrets are wiped when it is freed.
 */
typedef struct DciSource
{
	MemoryContext	cxt;
	uint64			serial;	   /* unique per load in this backend: identifies this copy */
	Oid				table_oid; /* dci_data_source when loaded: ids restart on re-create */
	int32			id;
	char		   *code;
	char		   *registry_type;
	char		   *base_url;
	DciAuthType		auth_type;
	char		   *auth_url;
	char		   *client_id;
	DciCredLocation cred_location;
	char		   *scope;
	char		   *sender_id;
	char		   *receiver_id;
	char		   *callback_uri;
	char		   *search_endpoint;
	char		   *ping_endpoint;
	int				timeout_ms; /* 0: dci_client.timeout_ms */
	bool			verify_ssl;
	char		   *ca_cert;
	char		   *client_cert;
	char		   *client_cert_tls; /* client_cert as handed to libcurl (see source.c) */
	DciHeaders	   *extra_headers;	 /* validated at INSERT/UPDATE */
	int32			signing_key_id;	 /* 0: none */
	char		   *registry_public_key;
	bool			active;

	/* decrypted secrets; secret_error set when one could not be decrypted */
	char	*client_secret;
	char	*bearer_token;
	char	*client_key;
	char	*callback_token; /* what callbacks must present as Bearer (dci_receive) */
	DciError secret_error;

	/* identifies what a token depends on: changes when credentials change */
	uint64 credential_fingerprint;

	DciSigFormat signature_format;

	/* dci_search_batch: items per envelope, envelopes in flight (README "Bulk verification") */
	int batch_size;
	int max_concurrency;

	DciDialect dialect;
	/* the registry's JWK Set (registry_keys.c), NULL: none */
	char *registry_jwks_url;

	/* the session's access token while it is current (oauth.c), for redaction */
	const char *access_token;
} DciSource;

/* the column defaults of batch_size and max_concurrency, and their upper bounds */
#define DCI_DEFAULT_BATCH_SIZE		100
#define DCI_DEFAULT_MAX_CONCURRENCY 4
#define DCI_MAX_BATCH_SIZE			1000
#define DCI_MAX_CONCURRENCY			64

/* find a source by id (raises DC001 if unknown, or inactive when required) */
extern DciSource *dci_source_by_id(int32 id, bool require_active);
/* the source named by argument 0 of a text/integer overload */
extern DciSource *dci_source_from_arg(FunctionCallInfo fcinfo, bool require_active);
/* false, with err set (DC001), when the row lacks what calls need */
extern bool dci_source_check_complete(const DciSource *src, DciError *err);
/* record the outcome of dci_test_connection in the row (not in read-only transactions) */
extern void dci_source_record_test(int32 id, bool ok, const char *error);

#endif /* DCI_SOURCE_H */
