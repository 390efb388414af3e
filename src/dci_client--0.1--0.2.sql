-- dci_client 0.1 -> 0.2.  A fresh CREATE EXTENSION of 0.2 runs the 0.1
-- script and then this one, so new and upgraded databases are the same.
\echo Use "ALTER EXTENSION dci_client UPDATE TO '0.2'" to load this file. \quit

-- Rows 0.1 took that 0.2's rules refuse would block every later UPDATE of
-- the row (dci_test_connection records its result with one): name them now
-- and stop, rather than upgrade into a table that cannot be written.
DO $$
DECLARE
    bad text;
BEGIN
    SELECT string_agg(format('%s (callback_uri)', code), ', ' ORDER BY code) INTO bad
      FROM @extschema@.dci_data_source
     WHERE callback_uri IS NOT NULL AND callback_uri !~* '^https?://[^/?#[:space:]]+([/?][^#[:space:]]*)?$';
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'data sources with values dci_client 0.2 refuses: %', bad
            USING ERRCODE = '23514',
                  HINT = 'Fix or clear those columns (callback_uri must be an absolute http(s) URL), then run ALTER EXTENSION dci_client UPDATE again.';
    END IF;
END
$$;

-- The table's rules live in one place, the row triggers (src/triggers.c),
-- which name the column in their messages: the CHECK constraints that
-- repeated them go.  registry_type now takes any ns:org:RegistryType:<Name>,
-- as registries report it (e.g. ns:org:RegistryType:CRVS).  The CHECKs that
-- keep plaintext out of the secret columns stay: they are the storage
-- guarantee, not a rule of the row.
ALTER TABLE dci_data_source
    DROP CONSTRAINT dci_data_source_code_check,
    DROP CONSTRAINT dci_data_source_registry_type_check,
    DROP CONSTRAINT dci_data_source_base_url_check,
    DROP CONSTRAINT dci_data_source_auth_type_check,
    DROP CONSTRAINT dci_data_source_auth_url_check,
    DROP CONSTRAINT dci_data_source_credential_location_check,
    DROP CONSTRAINT dci_data_source_search_endpoint_check,
    DROP CONSTRAINT dci_data_source_ping_endpoint_check,
    DROP CONSTRAINT dci_data_source_timeout_ms_check,
    DROP CONSTRAINT dci_data_source_extra_headers_check,
    DROP CONSTRAINT dci_data_source_state_check,
    DROP CONSTRAINT dci_data_source_signature_format_check,
    DROP CONSTRAINT dci_data_source_oauth2_needs_auth_url;
ALTER TABLE dci_signing_key
    DROP CONSTRAINT dci_signing_key_algorithm_check,
    DROP CONSTRAINT dci_signing_key_state_check;

-- ... and once more, AFTER, on the row as stored: a BEFORE trigger sorting
-- after ours could change the row after it was checked.
CREATE FUNCTION dci_data_source_check_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dci_data_source_check_trigger' LANGUAGE C;
CREATE FUNCTION dci_signing_key_check_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'dci_signing_key_check_trigger' LANGUAGE C;
CREATE TRIGGER dci_data_source_rules AFTER INSERT OR UPDATE ON dci_data_source
    FOR EACH ROW EXECUTE FUNCTION dci_data_source_check_trigger();
CREATE TRIGGER dci_signing_key_rules AFTER INSERT OR UPDATE ON dci_signing_key
    FOR EACH ROW EXECUTE FUNCTION dci_signing_key_check_trigger();
ALTER TABLE dci_data_source ENABLE ALWAYS TRIGGER dci_data_source_rules;
ALTER TABLE dci_signing_key ENABLE ALWAYS TRIGGER dci_signing_key_rules;
REVOKE ALL ON FUNCTION dci_data_source_check_trigger(), dci_signing_key_check_trigger() FROM PUBLIC;

-- Nothing of the extension resolves an object by name at call time: the
-- database owner owns "public" and could rename it and plant look-alikes.
-- dci_clear_secret is C (the table found by OID); dci_search_by_id has a
-- SQL-standard body, parsed once here and bound by OID (the call qualified
-- and complete, so a planted overload cannot make it ambiguous).
CREATE OR REPLACE FUNCTION dci_clear_secret(source text, column_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'dci_clear_secret' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE OR REPLACE FUNCTION dci_clear_secret(source integer, column_name text) RETURNS void
    AS 'MODULE_PATHNAME', 'dci_clear_secret' LANGUAGE C VOLATILE PARALLEL UNSAFE;

CREATE OR REPLACE FUNCTION dci_search_by_id(source text, id_type text, id_value text) RETURNS SETOF jsonb
    LANGUAGE sql VOLATILE ROWS 1
BEGIN ATOMIC
    SELECT r FROM @extschema@.dci_search_records(source, 'idtype-value'::text,
        pg_catalog.jsonb_build_object('type', id_type, 'value', id_value), NULL::text, 100, NULL::integer) AS r;
END;
CREATE OR REPLACE FUNCTION dci_search_by_id(source integer, id_type text, id_value text) RETURNS SETOF jsonb
    LANGUAGE sql VOLATILE ROWS 1
BEGIN ATOMIC
    SELECT r FROM @extschema@.dci_search_records(source, 'idtype-value'::text,
        pg_catalog.jsonb_build_object('type', id_type, 'value', id_value), NULL::text, 100, NULL::integer) AS r;
END;

-- Bulk verification (issue 12): items per envelope and envelopes in flight
-- per registry; the trigger checks their ranges (src/triggers.c).
ALTER TABLE dci_data_source ADD COLUMN batch_size integer NOT NULL DEFAULT 100;
ALTER TABLE dci_data_source ADD COLUMN max_concurrency integer NOT NULL DEFAULT 4;

CREATE FUNCTION dci_search_batch(source text, query_type text, queries jsonb, reg_type text DEFAULT NULL,
                                 options jsonb DEFAULT '{}', batch_size integer DEFAULT NULL,
                                 concurrency integer DEFAULT NULL)
    RETURNS TABLE(ord integer, reference_id text, status text, records jsonb, total_count bigint,
                  reason_code text, reason_message text)
    AS 'MODULE_PATHNAME', 'dci_search_batch' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
CREATE FUNCTION dci_search_batch(source integer, query_type text, queries jsonb, reg_type text DEFAULT NULL,
                                 options jsonb DEFAULT '{}', batch_size integer DEFAULT NULL,
                                 concurrency integer DEFAULT NULL)
    RETURNS TABLE(ord integer, reference_id text, status text, records jsonb, total_count bigint,
                  reason_code text, reason_message text)
    AS 'MODULE_PATHNAME', 'dci_search_batch' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;

-- The common case, a list of identifiers: C too (batch.c), the items made
-- per envelope from the array (a jsonb of all the queries would cost about
-- 1 kB per id while the batch runs).
CREATE FUNCTION dci_search_by_ids(source text, id_type text, id_values text[], reg_type text DEFAULT NULL,
                                  options jsonb DEFAULT '{}', batch_size integer DEFAULT NULL,
                                  concurrency integer DEFAULT NULL)
    RETURNS TABLE(ord integer, id_value text, status text, records jsonb, reason_code text, reason_message text)
    AS 'MODULE_PATHNAME', 'dci_search_by_ids' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;
CREATE FUNCTION dci_search_by_ids(source integer, id_type text, id_values text[], reg_type text DEFAULT NULL,
                                  options jsonb DEFAULT '{}', batch_size integer DEFAULT NULL,
                                  concurrency integer DEFAULT NULL)
    RETURNS TABLE(ord integer, id_value text, status text, records jsonb, reason_code text, reason_message text)
    AS 'MODULE_PATHNAME', 'dci_search_by_ids' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1000;

REVOKE ALL ON FUNCTION dci_search_batch(text, text, jsonb, text, jsonb, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION dci_search_batch(integer, text, jsonb, text, jsonb, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION dci_search_by_ids(text, text, text[], text, jsonb, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION dci_search_by_ids(integer, text, text[], text, jsonb, integer, integer) FROM PUBLIC;

-- Running batches (src/batch_slots.c): one row per dci_search_batch in
-- progress in this database, from shared memory when preloaded (all
-- backends), else this session's.
CREATE FUNCTION dci_batch_progress_entries(
        OUT pid integer, OUT source_id integer, OUT items_total integer, OUT items_answered integer,
        OUT items_failed integer, OUT envelopes_in_flight integer, OUT waiting_for_slot boolean,
        OUT started_at timestamptz, OUT shared boolean)
    RETURNS SETOF record AS 'MODULE_PATHNAME', 'dci_batch_progress_entries' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE VIEW dci_batch_progress AS
SELECT b.pid,
       b.source_id,
       s.code AS source,
       b.items_total,
       b.items_answered,
       b.items_failed,
       b.envelopes_in_flight,
       b.waiting_for_slot,
       b.started_at,
       pg_catalog.clock_timestamp() - b.started_at AS elapsed
  FROM @extschema@.dci_batch_progress_entries() b
  LEFT JOIN @extschema@.dci_data_source s ON s.id = b.source_id;
REVOKE ALL ON FUNCTION dci_batch_progress_entries() FROM PUBLIC;
REVOKE ALL ON dci_batch_progress FROM PUBLIC;

-- dci_source_stats counts the items of batched envelopes too: a column at
-- the end (the view's grants are kept).
CREATE FUNCTION dci_source_stats_items(OUT source_id integer, OUT items bigint)
    RETURNS SETOF record AS 'MODULE_PATHNAME', 'dci_source_stats_items' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE OR REPLACE VIEW dci_source_stats AS
SELECT s.id AS source_id,
       s.code AS source,
       coalesce(t.calls, 0) AS calls,
       coalesce(t.errors, 0) AS errors,
       coalesce(t.token_fetches, 0) AS token_fetches,
       t.p50_ms,
       t.p95_ms,
       t.last_call_at,
       coalesce(i.items, 0) AS items
  FROM @extschema@.dci_data_source s
  LEFT JOIN @extschema@.dci_source_stats_entries() t ON t.source_id = s.id
  LEFT JOIN @extschema@.dci_source_stats_items() i ON i.source_id = s.id;
REVOKE ALL ON FUNCTION dci_source_stats_items() FROM PUBLIC;

-- ==== any endpoint, domain endpoints and dialects (issue 14) ====
-- How the registry deviates from the standard (src/dialect.c); the row
-- trigger checks the value (src/triggers.c).
ALTER TABLE dci_data_source ADD COLUMN dialect text NOT NULL DEFAULT 'dci';

-- Any endpoint through the whole DCI path (src/dci_send.c).
CREATE FUNCTION dci_send(source text, endpoint text, action text, message jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_send' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_send(source integer, endpoint text, action text, message jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_send' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The disability registry's sync endpoints (DR spec).
CREATE FUNCTION dci_disability_support(source text, query jsonb, query_type text DEFAULT 'expression') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_disability_support' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_disability_support(source integer, query jsonb, query_type text DEFAULT 'expression') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_disability_support' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_disability_details(source text, query jsonb, query_type text DEFAULT 'expression') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_disability_details' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_disability_details(source integer, query jsonb, query_type text DEFAULT 'expression') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_disability_details' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_disabled(source text, query jsonb, query_type text DEFAULT 'expression') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_disabled' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_disabled(source integer, query jsonb, query_type text DEFAULT 'expression') RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_disabled' LANGUAGE C VOLATILE PARALLEL UNSAFE;

-- The beneficiary registry's sync endpoints (IBR spec).
CREATE FUNCTION dci_enrolled(source text, query jsonb, query_type text DEFAULT 'expression',
                             response_entity text DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_enrolled' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_enrolled(source integer, query jsonb, query_type text DEFAULT 'expression',
                             response_entity text DEFAULT NULL) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_enrolled' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_enrollment_updates(source text, beneficiaries jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_enrollment_updates' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_enrollment_updates(source integer, beneficiaries jsonb) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_enrollment_updates' LANGUAGE C VOLATILE PARALLEL UNSAFE;

REVOKE ALL ON FUNCTION dci_send(text, text, text, jsonb), dci_send(integer, text, text, jsonb),
    dci_disability_support(text, jsonb, text), dci_disability_support(integer, jsonb, text),
    dci_disability_details(text, jsonb, text), dci_disability_details(integer, jsonb, text),
    dci_disabled(text, jsonb, text), dci_disabled(integer, jsonb, text),
    dci_enrolled(text, jsonb, text, text), dci_enrolled(integer, jsonb, text, text),
    dci_enrollment_updates(text, jsonb), dci_enrollment_updates(integer, jsonb) FROM PUBLIC;

-- dci_txn_status asks about every txn_type and by every attribute the specs
-- allow: trailing DEFAULT parameters, so dci_txn_status(source,
-- transaction_id) calls what it always did.  More parameters make another
-- function: dropped and created again, its EXECUTE grants carried over
-- (nothing in the extension depends on it).
DO $$
DECLARE
    grants text[];
    g text;
BEGIN
    SELECT coalesce(pg_catalog.array_agg(pg_catalog.format(
               'GRANT EXECUTE ON FUNCTION @extschema@.dci_txn_status(%s, text, text, text[], text, text[]) TO %s%s',
               CASE WHEN p.proargtypes[0] OPERATOR(pg_catalog.=) 'pg_catalog.int4'::pg_catalog.regtype THEN 'integer' ELSE 'text' END,
               CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE a.grantee::pg_catalog.regrole::text END,
               CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)), '{}')
      INTO grants
      FROM pg_catalog.pg_proc p, pg_catalog.aclexplode(p.proacl) a
     WHERE p.oid IN ('@extschema@.dci_txn_status(text, text)'::pg_catalog.regprocedure,
                     '@extschema@.dci_txn_status(integer, text)'::pg_catalog.regprocedure)
       AND a.privilege_type OPERATOR(pg_catalog.=) 'EXECUTE'
       AND a.grantee OPERATOR(pg_catalog.<>) p.proowner;
    DROP FUNCTION @extschema@.dci_txn_status(text, text);
    DROP FUNCTION @extschema@.dci_txn_status(integer, text);
    CREATE FUNCTION @extschema@.dci_txn_status(source text, transaction_id text, txn_type text DEFAULT 'search',
                                               reference_ids text[] DEFAULT NULL, correlation_id text DEFAULT NULL,
                                               subscription_codes text[] DEFAULT NULL) RETURNS jsonb
        AS 'MODULE_PATHNAME', 'dci_txn_status' LANGUAGE C VOLATILE PARALLEL UNSAFE;
    CREATE FUNCTION @extschema@.dci_txn_status(source integer, transaction_id text, txn_type text DEFAULT 'search',
                                               reference_ids text[] DEFAULT NULL, correlation_id text DEFAULT NULL,
                                               subscription_codes text[] DEFAULT NULL) RETURNS jsonb
        AS 'MODULE_PATHNAME', 'dci_txn_status' LANGUAGE C VOLATILE PARALLEL UNSAFE;
    REVOKE ALL ON FUNCTION @extschema@.dci_txn_status(text, text, text, text[], text, text[]),
        @extschema@.dci_txn_status(integer, text, text, text[], text, text[]) FROM PUBLIC;
    FOREACH g IN ARRAY grants LOOP
        EXECUTE g;
    END LOOP;
    -- A GRANT in an extension script is recorded as the extension's initial
    -- privilege, which pg_dump leaves out (CREATE EXTENSION is to make it):
    -- the carried-over grants are the administrator's, so the initial
    -- privileges are the owner's alone (after the REVOKE), as a fresh
    -- install has them.
    UPDATE pg_catalog.pg_init_privs i
       SET initprivs = ARRAY[pg_catalog.makeaclitem(p.proowner, p.proowner, 'EXECUTE', false)]
      FROM pg_catalog.pg_proc p
     WHERE p.oid IN ('@extschema@.dci_txn_status(text, text, text, text[], text, text[])'::pg_catalog.regprocedure,
                     '@extschema@.dci_txn_status(integer, text, text, text[], text, text[])'::pg_catalog.regprocedure)
       AND i.objoid OPERATOR(pg_catalog.=) p.oid
       AND i.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
       AND i.objsubid OPERATOR(pg_catalog.=) 0;
END
$$;
-- ==== end of any endpoint, domain endpoints and dialects ====

-- ==== registry keys from JWKS (issue 13) and signing-key kid interop (issue 14) ====
-- The registry's verification keys from its JWK Set: fetched through the
-- HTTP path of every call, cached per session (src/registry_keys.c).  The
-- row trigger checks the URL as it checks callback_uri (an absolute
-- http(s) URL) and refuses it together with registry_public_key.
ALTER TABLE dci_data_source ADD COLUMN registry_jwks_url text;

-- How dci_jwks() names a key: 'thumbprint' (RFC 7638, as 0.1 did) or
-- 'openspp' (sender_id|key_id|algorithm, the algorithm spelled ed25519 /
-- rs256, as OpenSPP's registries look keys up; its signatures then spell
-- the algorithm the same way).  The row trigger checks the values.
ALTER TABLE dci_signing_key ADD COLUMN kid_format text NOT NULL DEFAULT 'thumbprint';
-- ==== end of registry keys from JWKS ====

-- ==== inbound DCI: transactions, callbacks, notifications (issue 13) ====
-- Callbacks authenticate with a bearer token of their own, write-only like
-- the other secrets (src/triggers.c encrypts it; README "Write-only secrets").
ALTER TABLE dci_data_source ADD COLUMN callback_token text CHECK (callback_token IS NULL);
ALTER TABLE dci_data_source ADD COLUMN callback_token_encrypted bytea;
ALTER TABLE dci_data_source ADD COLUMN callback_token_set boolean
    GENERATED ALWAYS AS (callback_token_encrypted IS NOT NULL) STORED;
COMMENT ON COLUMN dci_data_source.callback_token IS 'Write-only: stored encrypted in callback_token_encrypted; reads back NULL; '''' removes it';
COMMENT ON TABLE dci_data_source IS 'External DCI registries; client_secret, bearer_token, client_key and callback_token are write-only and stored encrypted';

-- One row per asynchronous request sent, committed by a background worker
-- before the request goes out (src/txn_record.c): known to dci_receive
-- whatever the sender's transaction does afterwards.
CREATE TABLE dci_transaction (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id integer NOT NULL,
    transaction_id text NOT NULL,
    action text NOT NULL CHECK (action IN ('search', 'subscribe', 'unsubscribe', 'txn-status')),
    message_id text NOT NULL,
    endpoint text NOT NULL,
    sent_at timestamptz NOT NULL DEFAULT now(),
    state text NOT NULL DEFAULT 'sent' CHECK (state IN ('sent', 'acked', 'completed', 'failed', 'expired')),
    completed_at timestamptz,
    response jsonb,
    callbacks integer NOT NULL DEFAULT 0,
    UNIQUE (source_id, transaction_id)
);
CREATE INDEX dci_transaction_sent_at ON dci_transaction (sent_at);
COMMENT ON TABLE dci_transaction IS 'Asynchronous DCI requests sent, and what their callbacks answered';

CREATE TABLE dci_subscription (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id integer NOT NULL,
    code text,
    reg_event_type text,
    filter jsonb,
    state text NOT NULL DEFAULT 'requested' CHECK (state IN ('requested', 'active', 'cancelled')),
    transaction_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_id, code)
);
COMMENT ON TABLE dci_subscription IS 'Subscriptions: requested by dci_subscribe, active from on-subscribe, cancelled by on-unsubscribe';

-- Every accepted callback or notification; (source_id, message_id) unique:
-- a replay is refused by the index, also across restarts and sessions.
CREATE TABLE dci_inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id integer NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    action text NOT NULL,
    message_id text NOT NULL,
    transaction_id text,
    correlation_id text,
    verified text NOT NULL CHECK (verified IN ('signature', 'token', 'none')),
    header jsonb NOT NULL,
    message jsonb NOT NULL,
    UNIQUE (source_id, message_id)
);
CREATE INDEX dci_inbox_received_at ON dci_inbox (received_at);
COMMENT ON TABLE dci_inbox IS 'Accepted DCI callbacks and notifications; kept dci_client.inbox_retention_days days';

SELECT pg_catalog.pg_extension_config_dump('dci_transaction', '');
SELECT pg_catalog.pg_extension_config_dump('dci_subscription', '');
SELECT pg_catalog.pg_extension_config_dump('dci_inbox', '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('@extschema@.dci_transaction', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('@extschema@.dci_subscription', 'id'), '');
SELECT pg_catalog.pg_extension_config_dump(pg_catalog.pg_get_serial_sequence('@extschema@.dci_inbox', 'id'), '');
REVOKE ALL ON dci_transaction, dci_subscription, dci_inbox FROM PUBLIC;

CREATE FUNCTION dci_receive(source text, body text, headers jsonb DEFAULT NULL)
    RETURNS TABLE(http_status integer, response jsonb)
    AS 'MODULE_PATHNAME', 'dci_receive' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
CREATE FUNCTION dci_receive(source integer, body text, headers jsonb DEFAULT NULL)
    RETURNS TABLE(http_status integer, response jsonb)
    AS 'MODULE_PATHNAME', 'dci_receive' LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 1;
CREATE FUNCTION dci_await(source text, transaction_id text, timeout_ms integer) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_await' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_await(source integer, transaction_id text, timeout_ms integer) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'dci_await' LANGUAGE C VOLATILE PARALLEL UNSAFE;
-- the arguments of dci_txn_status, to the asynchronous /registry/txn/status
CREATE FUNCTION dci_txn_status_async(source text, transaction_id text, txn_type text DEFAULT 'search',
                                     reference_ids text[] DEFAULT NULL, correlation_id text DEFAULT NULL,
                                     subscription_codes text[] DEFAULT NULL) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_txn_status_async' LANGUAGE C VOLATILE PARALLEL UNSAFE;
CREATE FUNCTION dci_txn_status_async(source integer, transaction_id text, txn_type text DEFAULT 'search',
                                     reference_ids text[] DEFAULT NULL, correlation_id text DEFAULT NULL,
                                     subscription_codes text[] DEFAULT NULL) RETURNS text
    AS 'MODULE_PATHNAME', 'dci_txn_status_async' LANGUAGE C VOLATILE PARALLEL UNSAFE;
REVOKE ALL ON FUNCTION dci_receive(text, text, jsonb), dci_receive(integer, text, jsonb),
    dci_await(text, text, integer), dci_await(integer, text, integer),
    dci_txn_status_async(text, text, text, text[], text, text[]),
    dci_txn_status_async(integer, text, text, text[], text, text[])
    FROM PUBLIC;
-- ==== end of inbound DCI ====
