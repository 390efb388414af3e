-- dci_client 0.1: data sources, secrets, tokens, requests.
\echo Use "CREATE EXTENSION dci_client CASCADE" to load this file. \quit

-- Signing keys (§6); the table exists from the start because data sources
-- reference it.  private_key is write-only, like the data source secrets.
CREATE TABLE dci_signing_key (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id text NOT NULL UNIQUE,
    algorithm text NOT NULL DEFAULT 'ed25519'
        CHECK (algorithm IN ('ed25519', 'rsa-sha256')),
    public_key text,
    private_key text CHECK (private_key IS NULL),
    private_key_encrypted bytea,
    private_key_set boolean GENERATED ALWAYS AS (private_key_encrypted IS NOT NULL) STORED,
    state text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'active', 'revoked')),
    created_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE dci_signing_key IS 'Keys that sign outgoing DCI messages; private_key is write-only and stored encrypted';

CREATE TABLE dci_data_source (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code text NOT NULL UNIQUE CHECK (code ~ '^[a-z][a-z0-9_]*$'),
    name text NOT NULL,
    registry_type text CHECK (registry_type IN ('ns:org:RegistryType:Social',
        'ns:org:RegistryType:Civil', 'ns:org:RegistryType:IBR',
        'ns:org:RegistryType:DR', 'ns:org:RegistryType:FR')),
    base_url text NOT NULL CHECK (base_url ~* '^https?://'),
    auth_type text NOT NULL DEFAULT 'oauth2' CHECK (auth_type IN ('none', 'bearer', 'oauth2')),
    auth_url text CHECK (auth_url ~* '^https?://'),
    client_id text,
    -- write-only secrets: the trigger encrypts them into *_encrypted; the
    -- CHECKs keep plaintext out of storage even with triggers disabled
    client_secret text CHECK (client_secret IS NULL),
    client_secret_encrypted bytea,
    client_secret_set boolean GENERATED ALWAYS AS (client_secret_encrypted IS NOT NULL) STORED,
    credential_location text NOT NULL DEFAULT 'body' CHECK (credential_location IN ('body', 'basic', 'query')),
    scope text,
    bearer_token text CHECK (bearer_token IS NULL),
    bearer_token_encrypted bytea,
    bearer_token_set boolean GENERATED ALWAYS AS (bearer_token_encrypted IS NOT NULL) STORED,
    sender_id text,
    receiver_id text,
    callback_uri text,
    search_endpoint text NOT NULL DEFAULT '/registry/sync/search' CHECK (search_endpoint ~ '^/'),
    ping_endpoint text NOT NULL DEFAULT '/registry/ping' CHECK (ping_endpoint ~ '^/'),
    timeout_ms integer CHECK (timeout_ms > 0),
    verify_ssl boolean NOT NULL DEFAULT true,
    ca_cert text,
    client_cert text,
    client_key text CHECK (client_key IS NULL),
    client_key_encrypted bytea,
    client_key_set boolean GENERATED ALWAYS AS (client_key_encrypted IS NOT NULL) STORED,
    extra_headers jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(extra_headers) = 'object'),
    signing_key_id integer REFERENCES dci_signing_key (id),
    registry_public_key text,
    active boolean NOT NULL DEFAULT true,
    state text NOT NULL DEFAULT 'draft' CHECK (state IN ('draft', 'testing', 'active', 'error')),
    last_test_at timestamptz,
    last_error text,
    notes text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    signature_format text NOT NULL DEFAULT 'dci' CHECK (signature_format IN ('dci', 'jws')),
    CONSTRAINT dci_data_source_oauth2_needs_auth_url
        CHECK (auth_type <> 'oauth2' OR auth_url IS NOT NULL)
);

COMMENT ON TABLE dci_data_source IS 'External DCI registries; client_secret, bearer_token and client_key are write-only and stored encrypted';
COMMENT ON COLUMN dci_data_source.client_secret IS 'Write-only: stored encrypted in client_secret_encrypted; reads back NULL; '''' removes it';
COMMENT ON COLUMN dci_data_source.bearer_token IS 'Write-only: stored encrypted in bearer_token_encrypted; reads back NULL; '''' removes it';
COMMENT ON COLUMN dci_data_source.client_key IS 'Write-only: stored encrypted in client_key_encrypted; reads back NULL; '''' removes it';

CREATE FUNCTION dci_data_source_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dci_data_source_trigger' LANGUAGE C;
CREATE FUNCTION dci_signing_key_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dci_signing_key_trigger' LANGUAGE C;
CREATE FUNCTION dci_invalidate_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dci_invalidate_trigger' LANGUAGE C;

CREATE TRIGGER dci_data_source_secrets BEFORE INSERT OR UPDATE ON dci_data_source
    FOR EACH ROW EXECUTE FUNCTION dci_data_source_trigger();
CREATE TRIGGER dci_data_source_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dci_data_source
    FOR EACH STATEMENT EXECUTE FUNCTION dci_invalidate_trigger();
CREATE TRIGGER dci_signing_key_secrets BEFORE INSERT OR UPDATE ON dci_signing_key
    FOR EACH ROW EXECUTE FUNCTION dci_signing_key_trigger();
CREATE TRIGGER dci_signing_key_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dci_signing_key
    FOR EACH STATEMENT EXECUTE FUNCTION dci_invalidate_trigger();
-- secrets are encrypted whatever session_replication_role says (replicas, restores)
ALTER TABLE dci_data_source ENABLE ALWAYS TRIGGER dci_data_source_secrets;
ALTER TABLE dci_data_source ENABLE ALWAYS TRIGGER dci_data_source_invalidate;
ALTER TABLE dci_signing_key ENABLE ALWAYS TRIGGER dci_signing_key_secrets;
ALTER TABLE dci_signing_key ENABLE ALWAYS TRIGGER dci_signing_key_invalidate;

-- pg_dump carries the rows (ciphertext only) and the identity sequences
SELECT pg_catalog.pg_extension_config_dump('dci_data_source', '');
SELECT pg_catalog.pg_extension_config_dump('dci_signing_key', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('@extschema@.dci_data_source', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('@extschema@.dci_signing_key', 'id'), '');

CREATE TYPE dci_response AS (
    status integer,
    headers jsonb,
    body text,
    elapsed_ms double precision
);

CREATE FUNCTION dci_get_token(source text, force_refresh boolean DEFAULT false)
    RETURNS text AS 'MODULE_PATHNAME', 'dci_get_token' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_get_token(source integer, force_refresh boolean DEFAULT false)
    RETURNS text AS 'MODULE_PATHNAME', 'dci_get_token' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_request(source text, method text, path text, body jsonb DEFAULT NULL, headers jsonb DEFAULT NULL)
    RETURNS dci_response AS 'MODULE_PATHNAME', 'dci_request' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_request(source integer, method text, path text, body jsonb DEFAULT NULL, headers jsonb DEFAULT NULL)
    RETURNS dci_response AS 'MODULE_PATHNAME', 'dci_request' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_test_connection(source text)
    RETURNS TABLE (step text, ok boolean, detail text, elapsed_ms double precision)
    AS 'MODULE_PATHNAME', 'dci_test_connection' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_test_connection(source integer)
    RETURNS TABLE (step text, ok boolean, detail text, elapsed_ms double precision)
    AS 'MODULE_PATHNAME', 'dci_test_connection' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Runs as the caller: removing a secret needs UPDATE on the table.
CREATE FUNCTION dci_clear_secret(source text, column_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    updated integer;
BEGIN
    IF column_name IS NULL OR column_name NOT IN ('client_secret', 'bearer_token', 'client_key') THEN
        RAISE EXCEPTION 'column "%" is not a secret of dci_data_source', column_name
            USING ERRCODE = '22023',
                  HINT = 'The secrets are client_secret, bearer_token and client_key.';
    END IF;
    EXECUTE format('UPDATE @extschema@.dci_data_source SET %I = '''' WHERE code = $1', column_name)
        USING source;
    GET DIAGNOSTICS updated = ROW_COUNT;
    IF updated = 0 THEN
        RAISE EXCEPTION 'data source "%" does not exist', source USING ERRCODE = 'DC001';
    END IF;
END
$$;
CREATE FUNCTION dci_clear_secret(source integer, column_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    source_code text;
BEGIN
    SELECT code INTO source_code FROM @extschema@.dci_data_source WHERE id = source;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'data source "%" does not exist', source USING ERRCODE = 'DC001';
    END IF;
    PERFORM @extschema@.dci_clear_secret(source_code, column_name);
END
$$;

CREATE FUNCTION dci_secret_binding(text, text, text, boolean, text) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_secret_binding_sql' LANGUAGE C IMMUTABLE PARALLEL SAFE;

CREATE FUNCTION dci_reencrypt_secrets() RETURNS integer
    AS 'MODULE_PATHNAME', 'dci_reencrypt_secrets' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_token_status_entries(
        OUT source_id integer, OUT obtained_at timestamptz, OUT expires_at timestamptz, OUT shared boolean)
    RETURNS SETOF record AS 'MODULE_PATHNAME', 'dci_token_status_entries' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Per source: whether a token is cached, when it was obtained and when it
-- expires; never the token itself.
CREATE VIEW dci_token_status AS
SELECT s.id AS source_id,
       s.code AS source,
       s.auth_type,
       t.source_id IS NOT NULL AS cached,
       t.obtained_at,
       t.expires_at,
       coalesce(t.shared, false) AS shared
  FROM @extschema@.dci_data_source s
  LEFT JOIN @extschema@.dci_token_status_entries() t ON t.source_id = s.id;

-- ==== DCI layer (dci.c) ====
CREATE FUNCTION dci_envelope(source text, action text, message jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_envelope' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_envelope(source integer, action text, message jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_envelope' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_search(source text, query_type text, query jsonb, reg_type text DEFAULT NULL,
        page_size integer DEFAULT 100, page_number integer DEFAULT 1, options jsonb DEFAULT '{}')
    RETURNS jsonb AS 'MODULE_PATHNAME', 'dci_search' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_search(source integer, query_type text, query jsonb, reg_type text DEFAULT NULL,
        page_size integer DEFAULT 100, page_number integer DEFAULT 1, options jsonb DEFAULT '{}')
    RETURNS jsonb AS 'MODULE_PATHNAME', 'dci_search' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_search_records(source text, query_type text, query jsonb, reg_type text DEFAULT NULL,
        page_size integer DEFAULT 100, max_records integer DEFAULT NULL)
    RETURNS SETOF jsonb AS 'MODULE_PATHNAME', 'dci_search_records' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100;
CREATE FUNCTION dci_search_records(source integer, query_type text, query jsonb, reg_type text DEFAULT NULL,
        page_size integer DEFAULT 100, max_records integer DEFAULT NULL)
    RETURNS SETOF jsonb AS 'MODULE_PATHNAME', 'dci_search_records' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 100;

CREATE FUNCTION dci_search_by_id(source text, id_type text, id_value text) RETURNS SETOF jsonb
LANGUAGE sql VOLATILE ROWS 1 AS $$
    SELECT r FROM @extschema@.dci_search_records($1, 'idtype-value',
        pg_catalog.jsonb_build_object('type', $2, 'value', $3)) AS r
$$;
CREATE FUNCTION dci_search_by_id(source integer, id_type text, id_value text) RETURNS SETOF jsonb
LANGUAGE sql VOLATILE ROWS 1 AS $$
    SELECT r FROM @extschema@.dci_search_records($1, 'idtype-value',
        pg_catalog.jsonb_build_object('type', $2, 'value', $3)) AS r
$$;

CREATE FUNCTION dci_search_async(source text, query_type text, query jsonb, reg_type text DEFAULT NULL,
        page_size integer DEFAULT 100, page_number integer DEFAULT 1, options jsonb DEFAULT '{}')
    RETURNS text AS 'MODULE_PATHNAME', 'dci_search_async' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_search_async(source integer, query_type text, query jsonb, reg_type text DEFAULT NULL,
        page_size integer DEFAULT 100, page_number integer DEFAULT 1, options jsonb DEFAULT '{}')
    RETURNS text AS 'MODULE_PATHNAME', 'dci_search_async' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_txn_status(source text, transaction_id text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_txn_status' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_txn_status(source integer, transaction_id text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_txn_status' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_subscribe(source text, reg_event_type text,
        filter jsonb DEFAULT '{"type": "*", "value": "*"}', notify_record_type text DEFAULT NULL)
    RETURNS text AS 'MODULE_PATHNAME', 'dci_subscribe' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_subscribe(source integer, reg_event_type text,
        filter jsonb DEFAULT '{"type": "*", "value": "*"}', notify_record_type text DEFAULT NULL)
    RETURNS text AS 'MODULE_PATHNAME', 'dci_subscribe' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE FUNCTION dci_unsubscribe(source text, subscription_codes text[]) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_unsubscribe' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_unsubscribe(source integer, subscription_codes text[]) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_unsubscribe' LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION dci_envelope(text, text, jsonb), dci_envelope(integer, text, jsonb),
    dci_search(text, text, jsonb, text, integer, integer, jsonb),
    dci_search(integer, text, jsonb, text, integer, integer, jsonb),
    dci_search_records(text, text, jsonb, text, integer, integer),
    dci_search_records(integer, text, jsonb, text, integer, integer),
    dci_search_by_id(text, text, text), dci_search_by_id(integer, text, text),
    dci_search_async(text, text, jsonb, text, integer, integer, jsonb),
    dci_search_async(integer, text, jsonb, text, integer, integer, jsonb),
    dci_txn_status(text, text), dci_txn_status(integer, text),
    dci_subscribe(text, text, jsonb, text), dci_subscribe(integer, text, jsonb, text),
    dci_unsubscribe(text, text[]), dci_unsubscribe(integer, text[])
    FROM PUBLIC;

-- ==== request log and statistics (request_log.c, source_stats.c) ====
-- One row per call (dci_client.log_requests: off, errors, all), written by a
-- background worker so a failed call's record survives its rollback.  Never
-- a body, secret, token or query string.
CREATE TABLE dci_request_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at timestamptz NOT NULL DEFAULT now(),
    source_id integer,
    source text,
    method text,
    path text,
    status integer,
    outcome text NOT NULL CHECK (outcome IN ('success', 'http_error', 'timeout', 'connection_error',
        'auth_error', 'rejected', 'unavailable', 'error')),
    elapsed_ms double precision,
    bytes bigint,
    attempts integer,
    error text,
    username text
);
CREATE INDEX dci_request_log_logged_at ON dci_request_log (logged_at);
CREATE INDEX dci_request_log_source ON dci_request_log (source_id, logged_at);
COMMENT ON TABLE dci_request_log IS 'Calls to data sources (dci_client.log_requests); kept dci_client.log_retention_days days';

CREATE FUNCTION dci_source_stats_entries(
        OUT source_id integer, OUT calls bigint, OUT errors bigint, OUT token_fetches bigint,
        OUT p50_ms double precision, OUT p95_ms double precision, OUT last_call_at timestamptz,
        OUT shared boolean)
    RETURNS SETOF record AS 'MODULE_PATHNAME', 'dci_source_stats_entries' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- Per source since the server started (all sessions when preloaded, else this session).
CREATE VIEW dci_source_stats AS
SELECT s.id AS source_id,
       s.code AS source,
       coalesce(t.calls, 0) AS calls,
       coalesce(t.errors, 0) AS errors,
       coalesce(t.token_fetches, 0) AS token_fetches,
       t.p50_ms,
       t.p95_ms,
       t.last_call_at
  FROM @extschema@.dci_data_source s
  LEFT JOIN @extschema@.dci_source_stats_entries() t ON t.source_id = s.id;

REVOKE ALL ON FUNCTION dci_source_stats_entries() FROM PUBLIC;

-- Nothing for PUBLIC: the README shows the GRANTs for calling and
-- administering roles.
REVOKE ALL ON FUNCTION dci_data_source_trigger(), dci_signing_key_trigger(), dci_invalidate_trigger(),
    dci_get_token(text, boolean), dci_get_token(integer, boolean),
    dci_request(text, text, text, jsonb, jsonb), dci_request(integer, text, text, jsonb, jsonb),
    dci_test_connection(text), dci_test_connection(integer),
    dci_clear_secret(text, text), dci_clear_secret(integer, text),
    dci_secret_binding(text, text, text, boolean, text),
    dci_reencrypt_secrets(), dci_token_status_entries()
    FROM PUBLIC;

-- ==== signing (sign.c) ====
-- DCI message signatures (SPEC §6, DCI.md "Signatures").  dci_sign is
-- granted separately from the other functions (SPEC §7).
CREATE FUNCTION dci_sign(envelope jsonb, key_id text) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_sign' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_verify(envelope jsonb, public_key text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'dci_verify' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
CREATE FUNCTION dci_jwks() RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_jwks' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_generate_signing_key(key_id text DEFAULT NULL, algorithm text DEFAULT 'ed25519')
    RETURNS integer AS 'MODULE_PATHNAME', 'dci_generate_signing_key' LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dci_generate_signing_key(text, text) IS 'New active Ed25519 or RSA-2048 key; key_id defaults to its RFC 7638 thumbprint';
REVOKE ALL ON FUNCTION dci_sign(jsonb, text), dci_verify(jsonb, text), dci_jwks(),
    dci_generate_signing_key(text, text)
    FROM PUBLIC;
-- The second format (signature_format = 'jws'): a compact JWS, RS256, kid =
-- RFC 7638 thumbprint, over the body without "signature", as OpenCRVS signs.
CREATE FUNCTION dci_sign_jws(body jsonb, key_id text) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_sign_jws' LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_verify_jws(body jsonb, public_key text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'dci_verify_jws' LANGUAGE C STRICT VOLATILE PARALLEL SAFE;
REVOKE ALL ON FUNCTION dci_sign_jws(jsonb, text), dci_verify_jws(jsonb, text) FROM PUBLIC;
-- ==== end of signing ====
