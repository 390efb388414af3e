/*
 * dci_client.h
 *		Declarations shared by the files of the dci_client extension.
 *
 * Each .c file owns one concern; this header declares only what crosses
 * files.  Code that needs no PostgreSQL headers (header and token parsing,
 * host rules) is declared in its own header so tests can link it alone.
 */
#ifndef DCI_CLIENT_H
#define DCI_CLIENT_H

#include "postgres.h"

/* shmem_request_hook, InitMaterializedSRF, MarkGUCPrefixReserved */
#if PG_VERSION_NUM < 150000
#error "dci_client needs PostgreSQL 15 or later"
#endif

#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#define DCI_CLIENT_VERSION "0.2"

/* SQLSTATEs of README "Errors" */
#define ERRCODE_DCI_CONFIG			MAKE_SQLSTATE('D','C','0','0','1')
#define ERRCODE_DCI_AUTH			MAKE_SQLSTATE('D','C','0','0','2')
#define ERRCODE_DCI_TRANSPORT		MAKE_SQLSTATE('D','C','0','0','3')
#define ERRCODE_DCI_TIMEOUT			MAKE_SQLSTATE('D','C','0','0','4')
#define ERRCODE_DCI_TOO_LARGE		MAKE_SQLSTATE('D','C','0','0','5')
#define ERRCODE_DCI_BAD_JSON		MAKE_SQLSTATE('D','C','0','0','6')
#define ERRCODE_DCI_REJECTED		MAKE_SQLSTATE('D','C','0','0','7')
#define ERRCODE_DCI_SIGNATURE		MAKE_SQLSTATE('D','C','0','0','8')
#define ERRCODE_DCI_UNAVAILABLE		MAKE_SQLSTATE('D','C','0','0','9')

/* Registry text quoted in an error is cut to this many characters. */
#define DCI_QUOTE_MAX 300

/* ---- settings (dci_client.c) ---- */
extern char *dci_key_file;
extern char *dci_retired_key_files;
extern char *dci_allowed_hosts;
extern char *dci_proxy;
extern char *dci_user_agent;
extern int	dci_timeout_ms;
extern int	dci_connect_timeout_ms;
extern int	dci_max_response_bytes;
extern int	dci_max_retries;
extern int	dci_token_refresh_margin_s;
extern int	dci_token_min_interval_ms;
extern int	dci_shared_token_slots;

/* true when loaded through shared_preload_libraries (shared token cache on) */
extern bool dci_shared_preloaded;

/* parsed form of dci_client.allowed_hosts, NULL when empty (dci_client.c) */
struct HostRules;
extern const struct HostRules *dci_host_rules(void);
/* changes whenever allowed_hosts changes */
extern uint64 dci_host_rules_generation(void);

/* ---- errors carried out of code that must not ereport (errors.c) ---- */
typedef struct DciError
{
	int			sqlstate;		/* 0: no error */
	char		message[256];
	char		detail[768];
	char		hint[256];
} DciError;

/* record an error (first one wins); message/detail/hint are printf formats */
extern void dci_error_set(DciError *err, int sqlstate, const char *fmt,...) pg_attribute_printf(3, 4);
extern void dci_error_detail(DciError *err, const char *fmt,...) pg_attribute_printf(2, 3);
extern void dci_error_hint(DciError *err, const char *fmt,...) pg_attribute_printf(2, 3);
/* raise a recorded error as an ereport(ERROR) */
extern void dci_error_raise(const DciError *err) pg_attribute_noreturn();
/* the error as one line "message: detail", for test_connection and last_error */
extern char *dci_error_text(const DciError *err);
/* strlcpy that never cuts a character of the server encoding in half */
extern void dci_clip_copy(char *dst, const char *src, size_t size);
/* copy at most DCI_QUOTE_MAX characters of untrusted text, control chars blanked */
extern char *dci_quote_text(const char *text, size_t len);

/* ---- request headers: validated "Name: value" pairs (palloc'd) ---- */
/* limits of extra_headers and of a call's headers (22023 beyond them) */
#define DCI_MAX_HEADERS			100
#define DCI_MAX_HEADER_NAME		256
#define DCI_MAX_HEADER_VALUE	8192
typedef struct DciHeaders
{
	int			n;
	char	  **names;
	char	  **values;
} DciHeaders;

/* ---- data sources (source.c) ---- */
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
	DCI_SIG_FORMAT_DCI = 0,		/* the DCI signature field (README "Signing", OpenSPP) */
	DCI_SIG_FORMAT_JWS			/* a compact JWS, RS256, as OpenCRVS signs */
} DciSigFormat;

/*
 * One data source row as the call path needs it, with its secrets
 * decrypted.  Lives in its own memory context under CacheMemoryContext
 * until the table changes; secrets are wiped when it is freed.
 */
typedef struct DciSource
{
	MemoryContext cxt;
	uint64		serial;			/* unique per load in this backend: identifies this copy */
	Oid			table_oid;		/* dci_data_source when loaded: ids restart on re-create */
	int32		id;
	char	   *code;
	char	   *registry_type;
	char	   *base_url;
	DciAuthType auth_type;
	char	   *auth_url;
	char	   *client_id;
	DciCredLocation cred_location;
	char	   *scope;
	char	   *sender_id;
	char	   *receiver_id;
	char	   *callback_uri;
	char	   *search_endpoint;
	char	   *ping_endpoint;
	int			timeout_ms;		/* 0: dci_client.timeout_ms */
	bool		verify_ssl;
	char	   *ca_cert;
	char	   *client_cert;
	char	   *client_cert_tls;	/* client_cert as handed to libcurl (see source.c) */
	DciHeaders *extra_headers;	/* validated at INSERT/UPDATE */
	int32		signing_key_id; /* 0: none */
	char	   *registry_public_key;
	bool		active;

	/* decrypted secrets; secret_error set when one could not be decrypted */
	char	   *client_secret;
	char	   *bearer_token;
	char	   *client_key;
	DciError	secret_error;

	/* identifies what a token depends on: changes when credentials change */
	uint64		credential_fingerprint;

	DciSigFormat signature_format;

	/* the session's access token while it is current (oauth.c), for redaction */
	const char *access_token;
} DciSource;

/* find a source by code or id (raises DC001 if unknown, or inactive when required) */
extern DciSource *dci_source_by_code(Oid fn_oid, const char *code, bool require_active);
extern DciSource *dci_source_by_id(Oid fn_oid, int32 id, bool require_active);
/* the source named by argument 0 of a text/integer overload */
extern DciSource *dci_source_from_arg(FunctionCallInfo fcinfo, bool require_active);
/* false, with err set (DC001), when the row lacks what calls need */
extern bool dci_source_check_complete(const DciSource *src, DciError *err);
/* record the outcome of dci_test_connection in the row (not in read-only transactions) */
extern void dci_source_record_test(Oid fn_oid, int32 id, bool ok, const char *error);
/* SPI as the bootstrap superuser, restricted, search_path pg_catalog, pg_temp */
typedef struct DciPrivilegedState
{
	Oid			save_userid;
	int			save_sec_context;
	int			nestlevel;
} DciPrivilegedState;
extern int	dci_spi_begin_privileged(DciPrivilegedState *state);
extern void dci_spi_end_privileged(DciPrivilegedState *state);
/* the OID of dci_data_source (changes when the extension is re-created) */
extern Oid	dci_source_table_oid(Oid fn_oid);
/* the extension's schema, found from one of its functions */
extern Oid	dci_extension_schema(Oid fn_oid);

/* ---- secrets (secrets.c) ---- */
/* encrypt plaintext for (table, column, row id, binding); creates the key file if needed */
extern bytea *dci_secret_encrypt(const char *plaintext, const char *table,
								 const char *column, int32 row_id, const char *binding);
/* decrypt; returns NULL and fills err (DC001) on a missing key or a failed check */
extern char *dci_secret_decrypt(const bytea *ciphertext, const char *table,
								const char *column, int32 row_id, const char *binding,
								const char *owner_desc, DciError *err);
/* the binding string: the columns that say where a secret may be sent */
extern char *dci_secret_binding(const char *base_url, const char *auth_url,
								const char *cred_location, bool verify_ssl,
								const char *ca_cert);
/* load pgcrypto and warm OpenSSL in the postmaster (preloaded only) */
extern void dci_secrets_preload(void);
/* wipe and free a palloc'd secret */
extern void dci_secret_free(char *secret);

/* ---- HTTP transfers (http.c) ---- */
typedef struct DciHttpRequest
{
	const char *method;			/* upper case */
	const char *url;
	const char *const *headers; /* "Name: value" lines, NULL-terminated */
	const char *body;			/* NULL: no body */
	size_t		body_len;
	const DciSource *source;	/* TLS settings */
	TimestampTz deadline;
	bool		idempotent;		/* may be resent after a reset */
} DciHttpRequest;

typedef struct DciHttpResponse
{
	long		status;			/* 0: no HTTP answer (see error) */
	char	   *body;			/* palloc'd, NUL-terminated */
	size_t		body_len;
	struct DciHeaderList *headers;	/* valid until the next transfer */
	int			attempts;
	double		elapsed_ms;
	DciError	error;			/* transport failure when status == 0 */
} DciHttpResponse;

/*
 * One exchange with the retry rules of README "Errors" (backoff, Retry-After) inside
 * the request's deadline.  Returns false with resp->error set when no usable
 * HTTP answer came; the last HTTP answer is returned as it is otherwise.
 */
extern bool dci_http_exchange(const DciHttpRequest *req, DciHttpResponse *resp);
/* milliseconds left until deadline (never negative) */
extern long dci_ms_until(TimestampTz deadline);
/* the deadline of a call that starts now */
extern TimestampTz dci_call_deadline(const DciSource *src);
/* URL-encode (application/x-www-form-urlencoded component) */
extern char *dci_url_encode(const char *s);

/* ---- calls (request.c) ---- */
/* the method in upper case, or 22023 */
extern const char *dci_check_method(const char *method);
/* 22023 unless path starts with '/' and has no ".." segment */
extern void dci_check_path(const char *path);
/*
 * One call to base_url || path with the source's headers and token (when
 * with_auth); a 401 on OAuth2 renews the token and resends once.  False with
 * err set when there was no HTTP answer or no token.
 */
extern bool dci_call(DciSource *src, const char *method, const char *path,
					 const char *body, size_t body_len, const DciHeaders *headers,
					 TimestampTz deadline, bool idempotent, bool with_auth,
					 DciHttpResponse *resp, DciError *err);
/* the body as text / a string of the server encoding (22021 when invalid) */
extern text *dci_body_to_text(const DciSource *src, const DciHttpResponse *resp);
extern char *dci_body_to_cstring(const DciSource *src, const DciHttpResponse *resp);

/* ---- tokens (oauth.c) ---- */
/*
 * The access token of a source (the stored one for bearer, NULL for none),
 * or NULL with err set.  *generation identifies it for dci_token_drop.
 */
#define DCI_TOKEN_CACHED		0	/* a cached token while it is fresh */
#define DCI_TOKEN_FORCE			1	/* a new one, unless the cached one is younger than token_min_interval_ms */
#define DCI_TOKEN_FORCE_ALWAYS	2	/* a new one (superusers) */
extern char *dci_token_get(DciSource *src, int force_refresh, TimestampTz deadline,
						   uint64 *generation, DciError *err);
/* forget the token of generation (after a 401), locally and in shared memory */
extern void dci_token_drop(DciSource *src, uint64 generation);

/* ---- JSON (json.c) ---- */
/* compact JSON text of a jsonb value (no spaces), as sent on the wire */
extern char *dci_jsonb_to_compact(Jsonb *jb, size_t *len);
/*
 * An object of string header values as DciHeaders; raises 22023 naming
 * "what" for anything else, a CR/LF, or a name callers may not set.
 */
extern DciHeaders *dci_jsonb_to_headers(Jsonb *jb, const char *what);
/* jsonb object of response headers */
struct DciHeaderList;
extern Jsonb *dci_header_list_to_jsonb(const struct DciHeaderList *headers);

#endif							/* DCI_CLIENT_H */
