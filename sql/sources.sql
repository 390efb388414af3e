--
-- sources: installation, the dci_data_source table and its validation,
-- privileges (README "Register a registry", "Functions", "Privileges").
--
CREATE EXTENSION dci_client CASCADE;
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- control file: requires pgcrypto, not relocatable, superuser only
SELECT e.extname, e.extversion, e.extrelocatable, v.superuser, v.requires
  FROM pg_extension e
  JOIN pg_available_extension_versions v ON v.name = e.extname AND v.version = e.extversion
 WHERE e.extname = 'dci_client';
SELECT extnamespace::regnamespace AS schema FROM pg_extension WHERE extname = 'dci_client';

-- Helpers used by every file of this suite.  They run a statement and return
-- 'ok' or "SQLSTATE: message" (resp. the DETAIL), with the run-dependent
-- parts masked: the mock's port and the 16-hex-digit key id.
CREATE FUNCTION regress_mask(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT regexp_replace(regexp_replace(t,
        '127\.0\.0\.1:[0-9]{2,5}', '127.0.0.1:PORT', 'g'),
        '\m[0-9a-f]{16}\M', 'KEYID', 'g')
$$;
CREATE FUNCTION regress_sqlstate(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || regress_mask(msg);
END
$$;
CREATE FUNCTION regress_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    det text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    RETURN regress_mask(det);
END
$$;

\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL

-- the columns, types, defaults and nullability of the contract
SELECT column_name, data_type, column_default, is_nullable, is_generated
  FROM information_schema.columns
 WHERE table_schema = 'public' AND table_name = 'dci_data_source'
 ORDER BY ordinal_position;

-- a minimal row takes every default; base_url loses its trailing slashes
INSERT INTO dci_data_source (code, name, base_url, auth_url, client_id, client_secret)
VALUES ('minimal', 'Minimal', :'mock_url' || '//', :'token_url', 'openspp-client', 's3cr3t-Pa55word');
SELECT base_url = :'mock_url' AS base_url_without_slash,
       auth_url = :'token_url' AS auth_url_kept,
       auth_type, credential_location, registry_type, scope, search_endpoint, ping_endpoint,
       timeout_ms, verify_ssl, ca_cert, client_cert, extra_headers, signing_key_id,
       registry_public_key, active, state, last_test_at, last_error, notes,
       created_at = updated_at AS created_is_updated, created_at <= now() AS created_in_past
  FROM dci_data_source WHERE code = 'minimal';

-- code: ^[a-z][a-z0-9_]*$ (23514, naming the column)
SELECT v AS code, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES (%L, 'x', 'http://x.example', 'none')$$, v))
  FROM unnest(ARRAY['Upper', '1abc', '_a', 'a-b', 'a b', '', 'é', 'ok_code_1', 'z']) v;
SELECT regress_detail($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('Bad', 'x', 'http://x.example', 'none')$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES (NULL, 'x', 'http://x.example', 'none')$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('noname', NULL, 'http://x.example', 'none')$$);

-- code is unique
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('z', 'x', 'http://y.example', 'none')$$);

-- base_url: absolute http(s) URL, a host, no credentials, no fragment, no
-- query; stored without trailing '/'
SELECT v AS base_url, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('url_test', 'x', %L, 'none')$$, v)) AS result
  FROM unnest(ARRAY['ftp://x.example', 'x.example', 'http://', 'http:/x.example', 'http://user:pw@x.example',
                    'http://x.example/#frag', 'http://x.example/?q=1', 'http://x .example', ' http://x.example']) v;
SELECT regress_detail($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('url_test', 'x', 'http://u:p@x.example', 'none')$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('url_test', 'x', NULL, 'none')$$);
INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES
    ('url_a', 'x', 'https://registry.example/api/v1/', 'none'),
    ('url_b', 'x', 'HTTP://Registry.Example:8443', 'none'),
    ('url_c', 'x', 'http://10.1.2.3:8080///', 'none');
SELECT code, base_url FROM dci_data_source WHERE code LIKE 'url\_%' ORDER BY code;
UPDATE dci_data_source SET base_url = 'https://registry.example/other/' WHERE code = 'url_a';
SELECT base_url FROM dci_data_source WHERE code = 'url_a';
SELECT regress_sqlstate($$UPDATE dci_data_source SET base_url = 'mailto:x@example.org' WHERE code = 'url_a'$$);

-- auth_url: absolute http(s) URL (a query string is allowed), required for oauth2
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url) VALUES ('no_auth_url', 'x', 'http://x.example')$$);
SELECT regress_detail($$INSERT INTO dci_data_source (code, name, base_url) VALUES ('no_auth_url', 'x', 'http://x.example')$$);
SELECT regress_sqlstate($$UPDATE dci_data_source SET auth_url = NULL WHERE code = 'minimal'$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_url) VALUES ('bad_auth_url', 'x', 'http://x.example', 'token.example/token')$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_url) VALUES ('q_auth_url', 'x', 'http://x.example', 'https://x.example/token?tenant=a')$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('none_no_auth_url', 'x', 'http://x.example', 'none')$$);
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('bearer_no_auth_url', 'x', 'http://x.example', 'bearer')$$);

-- enumerations: auth_type, credential_location, registry_type, state
SELECT col, v, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_url, %I) VALUES ('enum_test', 'x', 'http://x.example', 'http://x.example/t', %L)$$, col, v))
  FROM (VALUES ('auth_type', 'basic'), ('auth_type', 'OAUTH2'), ('auth_type', NULL),
               ('credential_location', 'header'), ('credential_location', NULL),
               ('registry_type', 'ns:org:RegistryType:Health'), ('registry_type', 'Social'),
               ('registry_type', 'ns:org:RegistryType:'), ('registry_type', 'ns:org:RegistryType:9x'),
               ('registry_type', 'ns:org:RegistryType:CR VS'),
               ('state', 'ok'), ('state', NULL)) AS t(col, v);
SELECT regress_detail($$INSERT INTO dci_data_source (code, name, base_url, auth_type) VALUES ('enum_test', 'x', 'http://x.example', 'basic')$$);
SELECT regress_detail($$INSERT INTO dci_data_source (code, name, base_url, auth_type, registry_type) VALUES ('enum_test', 'x', 'http://x.example', 'none', 'x')$$);
-- every valid value is accepted
SELECT a, c, r, s, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_url, auth_type, credential_location, registry_type, state)
           VALUES ('enum_ok', 'x', 'http://x.example', 'http://x.example/t', %L, %L, %L, %L);
           DELETE FROM dci_data_source WHERE code = 'enum_ok'$$, a, c, r, s))
  FROM (VALUES ('none', 'body', 'ns:org:RegistryType:Social', 'draft'),
               ('bearer', 'basic', 'ns:org:RegistryType:Civil', 'testing'),
               ('oauth2', 'query', 'ns:org:RegistryType:IBR', 'active'),
               ('oauth2', 'body', 'ns:org:RegistryType:DR', 'error'),
               ('oauth2', 'body', 'ns:org:RegistryType:FR', 'draft'),
               ('oauth2', 'body', 'ns:org:RegistryType:CRVS', 'draft'),
               ('oauth2', 'body', 'ns:org:RegistryType:Farmer_2', 'draft'),
               ('oauth2', 'body', NULL, 'draft')) AS t(a, c, r, s);

-- endpoints: a path starting with '/', no '..' segment
SELECT col, v, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_type, %I) VALUES ('ep_test', 'x', 'http://x.example', 'none', %L)$$, col, v))
  FROM (VALUES ('search_endpoint', 'registry/sync/search'), ('search_endpoint', '/a/../b'),
               ('search_endpoint', '/a/..'), ('search_endpoint', '/a b'), ('search_endpoint', NULL),
               ('ping_endpoint', 'ping'), ('ping_endpoint', '/x#y'), ('ping_endpoint', '/registry/ping?x=1'),
               ('search_endpoint', '/..%2f'), ('search_endpoint', '/%2e%2e/x'), ('search_endpoint', '/..;/x'),
               ('search_endpoint', '/a%2Fb'), ('search_endpoint', '/./x'), ('search_endpoint', '/a..b/c')) AS t(col, v);

-- callback_uri: an absolute http(s) URL (registries POST callbacks there)
SELECT v, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_type, callback_uri) VALUES ('cb_test', 'x', 'http://x.example', 'none', %L);
           DELETE FROM dci_data_source WHERE code = 'cb_test'$$, v))
  FROM (VALUES ('https://openspp.example/dci/callback'), ('http://10.0.0.5:8069/cb?src=crvs'),
               ('/dci/callback'), ('ftp://x.example/cb'), ('openspp.example/cb'), ('https://x.example/cb#f')) AS t(v);

-- timeout_ms > 0, or NULL for the GUC
SELECT v, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_type, timeout_ms) VALUES ('to_test', 'x', 'http://x.example', 'none', %s);
           DELETE FROM dci_data_source WHERE code = 'to_test'$$, v))
  FROM unnest(ARRAY['0', '-1', '1', 'NULL', '600000']) v;

-- PEM columns must look like PEM
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type, ca_cert) VALUES ('pem_test', 'x', 'https://x.example', 'none', 'not a certificate')$$);

-- extra_headers: an object of string values; no CR/LF; no Authorization,
-- Host or Content-Length (any case): 22023
SELECT v AS extra_headers, regress_sqlstate(format(
         $$INSERT INTO dci_data_source (code, name, base_url, auth_type, extra_headers) VALUES ('hdr_test', 'x', 'http://x.example', 'none', %L)$$, v))
  FROM unnest(ARRAY['[]', '"X-A: b"', 'null', '{"X-A": 1}', '{"X-A": null}', '{"X-A": ["b"]}',
                    '{"X-A": "a\r\nX-B: b"}', '{"X-A": "a\nb"}', '{"X-A\nB": "a"}', '{"Bad Name": "x"}', '{"": "x"}',
                    '{"Authorization": "Bearer x"}', '{"authorization": "x"}', '{"HOST": "evil.example"}',
                    '{"Content-Length": "0"}']) v;
SELECT regress_sqlstate($$INSERT INTO dci_data_source (code, name, base_url, auth_type, extra_headers) VALUES ('hdr_test', 'x', 'http://x.example', 'none', NULL)$$);
INSERT INTO dci_data_source (code, name, base_url, auth_type, extra_headers)
VALUES ('hdr_ok', 'x', 'http://x.example', 'none', '{"X-Tenant": "t1", "Accept-Language": "fr", "X-Empty": ""}');
SELECT extra_headers FROM dci_data_source WHERE code = 'hdr_ok';
SELECT regress_sqlstate($$UPDATE dci_data_source SET extra_headers = '{"Host": "x"}' WHERE code = 'hdr_ok'$$);

-- updated_at is maintained on UPDATE (whatever the statement says)
UPDATE dci_data_source SET created_at = '2000-01-01', updated_at = '2000-01-01' WHERE code = 'hdr_ok';
BEGIN;
UPDATE dci_data_source SET notes = 'touched', updated_at = '1999-01-01' WHERE code = 'hdr_ok';
SELECT updated_at = now() AS updated_at_is_now, created_at = '2000-01-01' AS created_at_kept
  FROM dci_data_source WHERE code = 'hdr_ok';
COMMIT;

-- id cannot change: secrets are bound to it
SELECT regress_sqlstate($$UPDATE dci_data_source SET id = 999 WHERE code = 'hdr_ok'$$);
SELECT regress_sqlstate($$UPDATE dci_data_source SET id = DEFAULT WHERE code = 'hdr_ok'$$);

-- every function that takes a source has an integer overload: the core ones
-- by name, then any function whose first argument is "source text"
SELECT f AS function, to_regprocedure(f) IS NOT NULL AS exists
  FROM unnest(ARRAY['dci_get_token(text,boolean)', 'dci_get_token(integer,boolean)',
                    'dci_request(text,text,text,jsonb,jsonb)', 'dci_request(integer,text,text,jsonb,jsonb)',
                    'dci_test_connection(text)', 'dci_test_connection(integer)',
                    'dci_clear_secret(text,text)', 'dci_clear_secret(integer,text)']) f;
SELECT p.proname AS missing_integer_overload
  FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proname LIKE 'dci\_%'
   AND p.proargtypes[0] = 'text'::regtype AND p.proargnames[1] = 'source'
   AND NOT EXISTS (SELECT FROM pg_proc q
                    WHERE q.pronamespace = p.pronamespace AND q.proname = p.proname
                      AND q.proargtypes[0] = 'integer'::regtype
                      AND (q.proargtypes::oid[])[1:] = (p.proargtypes::oid[])[1:]);

-- nothing of the extension is granted to PUBLIC
SELECT d.classid::regclass AS catalog, pg_describe_object(d.classid, d.objid, 0) AS object
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dci_client')
   AND d.deptype = 'e'
   AND CASE d.classid
         WHEN 'pg_proc'::regclass THEN has_function_privilege('public', d.objid, 'EXECUTE')
         WHEN 'pg_class'::regclass THEN
           (SELECT relkind FROM pg_class WHERE oid = d.objid) <> 'c'
           AND (has_table_privilege('public', d.objid, 'SELECT') OR has_table_privilege('public', d.objid, 'INSERT')
                OR has_table_privilege('public', d.objid, 'UPDATE') OR has_table_privilege('public', d.objid, 'DELETE')
                OR ((SELECT relkind FROM pg_class WHERE oid = d.objid) = 'S'
                    AND has_sequence_privilege('public', d.objid, 'USAGE')))
         ELSE false
       END;
SELECT count(*) > 10 AS checked_objects
  FROM pg_depend d
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dci_client') AND d.deptype = 'e';

-- dci_token_status: per source, never the token
SELECT column_name, data_type
  FROM information_schema.columns
 WHERE table_schema = 'public' AND table_name = 'dci_token_status'
 ORDER BY ordinal_position;
SELECT source, auth_type, cached, obtained_at, expires_at FROM dci_token_status WHERE source = 'minimal';

-- configuration tables (and their identity sequences) are dumped by pg_dump
SELECT c::regclass AS config_table, cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS t(c, cond)
 WHERE e.extname = 'dci_client'
 ORDER BY c::regclass::text;

-- clean up: later files create their own sources
DELETE FROM dci_data_source;
