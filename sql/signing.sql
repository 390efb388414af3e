--
-- signing: signing keys, dci_sign / dci_verify, dci_jwks, revocation
-- (README, "Signing").  dci_sign uses the wall clock, so the
-- byte-exact fixture vectors are reproduced by the unit tests
-- (test/unit/signature_test.c); here: the SQL behaviour.
--
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- 'ok', or "SQLSTATE: message" of the error the statement raised
CREATE FUNCTION signing_sqlstate(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
    msg text;
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
    RETURN st || ': ' || msg;
END
$$;

-- the fixture keys (test/fixtures/signing)
SELECT '-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f
-----END PRIVATE KEY-----' AS ed_priv,
'-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAA6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=
-----END PUBLIC KEY-----' AS ed_pub,
'-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAnqkn1KFjf9YWaxWVukdH
48WJLE2RGwkvD+QpcPczQkg/m6Jx8x0a6VyE9hYgiFf7HzbmUvyM9HpxLLjY73m+
WZi9TZQabFsmIG2z1pqfNybr5eZj5/5le1N2um/znvGnKLwqXMwMUAHMSalgKWs+
KeLDDA0N6cffX3J5D0VCOZ3sMNgHeoki8GDuZ40/K5XerFWzLvR8ORsU4/gncQR4
H1ap6YlW3nwFZdh6W/sYknV10Ybgnyq8dMJYfho9o3VitdoCvH8jtlzM08dleP48
Uvo5GlPq2aW5I0z3ZYNmXA++LXbDythMClJTlMkVzDeKL2tWA/I6lLpD++yONgLT
TwIDAQAB
-----END PUBLIC KEY-----' AS rsa_pub \gset

-- import an existing pair by INSERT (the fixture Ed25519 key)
INSERT INTO dci_signing_key (key_id, algorithm, public_key, private_key, state)
VALUES ('fixture-ed', 'ed25519', :'ed_pub', :'ed_priv', 'active');
-- private_key reads back NULL; only ciphertext is stored
SELECT key_id, algorithm, state, private_key IS NULL AS private_key_hidden, private_key_set,
       position(encode(convert_to('MC4CAQAwBQYDK2VwBCIEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f', 'UTF8'), 'hex')
                in encode(private_key_encrypted, 'hex')) = 0 AS no_plaintext
  FROM dci_signing_key WHERE key_id = 'fixture-ed';

-- generated keys: Ed25519 with the RFC 7638 thumbprint as key_id, RSA with a name
SELECT dci_generate_signing_key() AS ed_id \gset
SELECT dci_generate_signing_key('rsa-1', 'rsa-sha256') AS rsa_id \gset
SELECT key_id ~ '^[A-Za-z0-9_-]{43}$' AS thumbprint_key_id, algorithm, state,
       public_key LIKE '-----BEGIN PUBLIC KEY-----%' AS public_pem, private_key IS NULL AS hidden, private_key_set
  FROM dci_signing_key WHERE id = :ed_id;
SELECT key_id, algorithm, state, private_key_set FROM dci_signing_key WHERE id = :rsa_id;
SELECT signing_sqlstate($$SELECT dci_generate_signing_key('x', 'ecdsa')$$);
SELECT signing_sqlstate($$SELECT dci_generate_signing_key('', 'ed25519')$$);
SELECT signing_sqlstate($$SELECT dci_generate_signing_key('rsa-1', 'rsa-sha256')$$);

-- JWKS: one JWK per active key, kid = thumbprint (= key_id of the generated key)
SELECT jsonb_array_length(dci_jwks()->'keys') AS active_keys;
SELECT j->>'kty' AS kty, j->>'crv' AS crv, j->>'alg' AS alg, j->>'use' AS use,
       j ? 'x' AS has_x, j ? 'n' AS has_n, j->>'e' AS e, j ? 'd' AS has_private_part
  FROM jsonb_array_elements(dci_jwks()->'keys') j ORDER BY 1, 3;
SELECT count(*) AS kid_is_key_id
  FROM jsonb_array_elements(dci_jwks()->'keys') j JOIN dci_signing_key k ON k.key_id = j->>'kid'
 WHERE k.id = :ed_id;
SELECT j->>'kid' AS fixture_kid, j->>'x' AS fixture_x
  FROM jsonb_array_elements(dci_jwks()->'keys') j WHERE j->>'x' = 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg';

-- sign, then verify
SELECT '{"header": {"version": "1.0.0", "message_id": "m-1", "message_ts": "2026-11-28T07:00:00.000Z", "action": "search", "sender_id": "openspp.example", "receiver_id": "crvs.example", "total_count": 1, "is_msg_encrypted": false, "meta": {}}, "message": {"transaction_id": "T-1", "score": 1.50, "big": 123456789012345678901234567890, "name": "Jos\u00e9"}}'::jsonb::text AS env \gset
SELECT dci_sign(:'env', 'fixture-ed') AS sig \gset
SELECT :'sig' ~ '^namespace="dci", kidId="openspp\.example\|fixture-ed\|ed25519", algorithm="ed25519", created="[0-9]{10}", expires="[0-9]{10}", headers="\(created\) \(expires\) digest", signature="[A-Za-z0-9+/]{86}=="$' AS field_format;
SELECT (regexp_match(:'sig', 'expires="([0-9]+)"'))[1]::bigint - (regexp_match(:'sig', 'created="([0-9]+)"'))[1]::bigint AS lifetime,
       abs((regexp_match(:'sig', 'created="([0-9]+)"'))[1]::bigint - extract(epoch from clock_timestamp())::bigint) < 5 AS wall_clock;
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), :'ed_pub') AS valid;
-- the signature covers header and message, not their order or spacing
SELECT dci_verify(jsonb_build_object('message', (:'env'::jsonb)->'message', 'signature', :'sig', 'header', (:'env'::jsonb)->'header'), :'ed_pub') AS reordered;
-- tampering: header, message, the field's times or signature, another key
SELECT dci_verify(jsonb_set(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), '{header,action}', '"subscribe"'), :'ed_pub') AS header_changed;
SELECT dci_verify(jsonb_set(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), '{message,score}', '1.5000001'), :'ed_pub') AS message_changed;
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(regexp_replace(:'sig', 'expires="([0-9]+)"', 'expires="9\1"'))), :'ed_pub') AS expires_changed;
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(regexp_replace(:'sig', 'signature="(.)', 'signature="' || CASE WHEN substring(:'sig' from 'signature="(.)') = 'A' THEN 'B' ELSE 'A' END))), :'ed_pub') AS signature_changed;
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), public_key) AS other_key FROM dci_signing_key WHERE id = :ed_id;
-- wrong algorithm, malformed, missing: false, never an error
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), :'rsa_pub') AS rsa_key;
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(replace(:'sig', 'algorithm="ed25519"', 'algorithm="rsa-sha256"'))), :'ed_pub') AS algorithm_renamed;
SELECT dci_verify(jsonb_set(:'env', '{signature}', '"garbage"'), :'ed_pub') AS garbage,
       dci_verify(jsonb_set(:'env', '{signature}', '""'), :'ed_pub') AS empty,
       dci_verify(:'env', :'ed_pub') AS missing,
       dci_verify(jsonb_set(:'env', '{signature}', '42'), :'ed_pub') AS not_a_string,
       dci_verify('[1,2]', :'ed_pub') AS not_an_envelope,
       dci_verify('{"signature": "x", "header": {}}', :'ed_pub') AS no_message,
       dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), 'not a key') AS bad_key,
       dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), :'ed_priv') AS private_key_given;
-- expired: the fixture vector (created 1764313200) is long past
SELECT dci_verify('{"header": {"version": "1.0.0", "message_id": "0c96614c-7255-4774-b109-cd53ee851769", "message_ts": "2026-11-28T07:00:00.000Z", "action": "search", "sender_id": "openspp.example", "sender_uri": "https://openspp.example/dci/callback", "receiver_id": "crvs.example", "total_count": 1, "is_msg_encrypted": false, "meta": {}}, "message": {"transaction_id": "T-0001", "search_request": [{"reference_id": "R-0001", "timestamp": "2026-11-28T07:00:00.000Z", "search_criteria": {"version": "1.0.0", "reg_type": "ns:org:RegistryType:Civil", "query_type": "idtype-value", "query": {"type": "UIN", "value": "847951632"}, "pagination": {"page_size": 10, "page_number": 1}}, "locale": "eng"}]}, "signature": "namespace=\"dci\", kidId=\"openspp.example|key-1|ed25519\", algorithm=\"ed25519\", created=\"1764313200\", expires=\"1764313500\", headers=\"(created) (expires) digest\", signature=\"0QrWdu/jpJbzCtYZunOxmQukw+IqvEjz9m5gowqLUpPdOk7+ykb593nhamAfAoUfpuSc91MV0GfbI42z5Wo0BA==\""}', :'ed_pub') AS vector_expired;
SELECT dci_verify(NULL, :'ed_pub') IS NULL AS strict;

-- RSA signs too
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(dci_sign(:'env', 'rsa-1'))), public_key) AS rsa_valid,
       dci_sign(:'env', 'rsa-1') ~ 'kidId="openspp\.example\|rsa-1\|rsa-sha256", algorithm="rsa-sha256"' AS rsa_field
  FROM dci_signing_key WHERE key_id = 'rsa-1';

-- the second format (OpenCRVS): a compact JWS, RS256, kid = RFC 7638 thumbprint,
-- payload = the body without "signature"
CREATE FUNCTION signing_b64url(t text) RETURNS bytea LANGUAGE sql IMMUTABLE
    RETURN decode(rpad(translate(t, '-_', '+/'), (length(t) + 3) / 4 * 4, '='), 'base64');
SELECT dci_sign_jws(jsonb_set(:'env', '{signature}', '"old"'), 'rsa-1') AS jws \gset
SELECT :'jws' ~ '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' AND length(split_part(:'jws', '.', 3)) = 342 AS compact_jws,
       convert_from(signing_b64url(split_part(:'jws', '.', 1)), 'UTF8')
         = '{"alg":"RS256","kid":"' || (SELECT j->>'kid' FROM jsonb_array_elements(dci_jwks()->'keys') j
                                         WHERE j->>'alg' = 'RS256') || '"}' AS header_alg_kid,
       convert_from(signing_b64url(split_part(:'jws', '.', 2)), 'UTF8')::jsonb = :'env'::jsonb
         AS payload_is_body_without_signature,
       position('signature' in convert_from(signing_b64url(split_part(:'jws', '.', 2)), 'UTF8')) = 0 AS no_signature_in_payload;
SELECT dci_verify_jws(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), public_key) AS jws_valid,
       dci_verify_jws(jsonb_build_object('message', (:'env'::jsonb)->'message', 'signature', :'jws',
                                         'header', (:'env'::jsonb)->'header'), public_key) AS jws_reordered
  FROM dci_signing_key WHERE key_id = 'rsa-1';
-- tampering, other keys, other formats: false, never an error
SELECT dci_verify_jws(jsonb_set(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), '{header,action}', '"subscribe"'), public_key) AS header_changed,
       dci_verify_jws(jsonb_set(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), '{message,score}', '1.5000001'), public_key) AS message_changed,
       dci_verify_jws(jsonb_set(:'env', '{signature}', to_jsonb(left(:'jws', -2) || CASE WHEN right(:'jws', 2) = 'AA' THEN 'AQ' ELSE 'AA' END)), public_key) AS signature_changed,
       dci_verify_jws(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), :'rsa_pub') AS other_rsa_key,
       dci_verify_jws(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), :'ed_pub') AS ed25519_key,
       dci_verify_jws(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), 'not a key') AS bad_key,
       dci_verify_jws(jsonb_set(:'env', '{signature}', '"a.b.c"'), public_key) AS garbage,
       dci_verify_jws(jsonb_set(:'env', '{signature}', '""'), public_key) AS empty,
       dci_verify_jws(:'env', public_key) AS missing,
       dci_verify_jws('[1,2]', public_key) AS not_an_envelope,
       dci_verify_jws(jsonb_set(:'env', '{signature}', to_jsonb(dci_sign(:'env', 'rsa-1'))), public_key) AS dci_field,
       dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'jws'::text)), public_key) AS jws_to_dci_verify
  FROM dci_signing_key WHERE key_id = 'rsa-1';
-- RS256 only: an Ed25519 key does not sign a JWS
SELECT signing_sqlstate($$SELECT dci_sign_jws('{"header": {}, "message": {}}', 'fixture-ed')$$);
SELECT signing_sqlstate($$SELECT dci_sign_jws('{"header": {}}', 'rsa-1')$$);
SELECT signing_sqlstate($$SELECT dci_sign_jws('{"header": {}, "message": {}}', 'no-such-key')$$);
SELECT dci_sign_jws(NULL, 'rsa-1') IS NULL AS jws_strict;

-- per source: signature_format 'dci' (the default) or 'jws'
INSERT INTO dci_data_source (code, name, base_url, auth_type, sender_id, signing_key_id)
VALUES ('jws_src', 'JWS', 'https://crvs.example', 'none', 'openspp.example', :rsa_id);
SELECT signature_format FROM dci_data_source WHERE code = 'jws_src';
SELECT signing_sqlstate($$UPDATE dci_data_source SET signature_format = 'jwt' WHERE code = 'jws_src'$$);
SELECT signing_sqlstate($$UPDATE dci_data_source SET signature_format = NULL WHERE code = 'jws_src'$$);
SELECT dci_verify(dci_envelope('jws_src', 'search', '{"transaction_id": "T-3"}'), public_key) AS dci_envelope_dci,
       dci_envelope('jws_src', 'search', '{}') ->> 'signature' LIKE 'namespace="dci"%' AS dci_field
  FROM dci_signing_key WHERE key_id = 'rsa-1';
UPDATE dci_data_source SET signature_format = 'jws' WHERE code = 'jws_src';
SELECT dci_verify_jws(dci_envelope('jws_src', 'search', '{"transaction_id": "T-3"}'), public_key) AS jws_envelope_valid,
       dci_verify(dci_envelope('jws_src', 'search', '{}'), public_key) AS not_a_dci_field
  FROM dci_signing_key WHERE key_id = 'rsa-1';
UPDATE dci_data_source SET signing_key_id = (SELECT id FROM dci_signing_key WHERE key_id = 'fixture-ed') WHERE code = 'jws_src';
SELECT signing_sqlstate($$SELECT dci_envelope('jws_src', 'search', '{}')$$);
DELETE FROM dci_data_source WHERE code = 'jws_src';
DROP FUNCTION signing_b64url(text);

-- refusals of dci_sign
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {}, "message": {}}', 'fixture-ed')$$);
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a"}}', 'fixture-ed')$$);
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a\"b"}, "message": {}}', 'fixture-ed')$$);
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a"}, "message": {}}', 'no-such-key')$$);

-- draft keys sign with dci_sign (to try them) but are not published
UPDATE dci_signing_key SET state = 'draft' WHERE key_id = 'rsa-1';
SELECT dci_sign(:'env', 'rsa-1') <> '' AS draft_signs;
SELECT jsonb_array_length(dci_jwks()->'keys') AS active_keys;
-- revoked keys never sign and leave the JWKS
UPDATE dci_signing_key SET state = 'revoked' WHERE key_id = 'fixture-ed';
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a"}, "message": {}}', 'fixture-ed')$$);
SELECT jsonb_array_length(dci_jwks()->'keys') AS active_keys;
-- its old signatures still verify with its public key (revocation is the verifier's list)
SELECT dci_verify(jsonb_set(:'env', '{signature}', to_jsonb(:'sig'::text)), :'ed_pub') AS old_signature;

-- a private key that does not match the stored public key is refused
INSERT INTO dci_signing_key (key_id, algorithm, public_key, private_key, state)
VALUES ('mismatch', 'ed25519', (SELECT public_key FROM dci_signing_key WHERE id = :ed_id), :'ed_priv', 'active');
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a"}, "message": {}}', 'mismatch')$$);
-- an RSA key stored as ed25519 is refused
INSERT INTO dci_signing_key (key_id, algorithm, private_key, state)
VALUES ('wrong-alg', 'rsa-sha256', :'ed_priv', 'active');
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a"}, "message": {}}', 'wrong-alg')$$);
-- a key imported without public_key is published from its private key
INSERT INTO dci_signing_key (key_id, algorithm, private_key, state)
VALUES ('private-only', 'ed25519', :'ed_priv', 'draft');
UPDATE dci_signing_key SET state = 'active' WHERE key_id IN ('private-only');
DELETE FROM dci_signing_key WHERE key_id IN ('mismatch', 'wrong-alg');
SELECT count(*) AS fixture_published FROM jsonb_array_elements(dci_jwks()->'keys') j
 WHERE j->>'x' = 'A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg';
-- a copied ciphertext does not decrypt under another key_id
UPDATE dci_signing_key SET private_key_encrypted = (SELECT private_key_encrypted FROM dci_signing_key WHERE key_id = 'fixture-ed')
 WHERE key_id = 'private-only';
SELECT signing_sqlstate($$SELECT dci_sign('{"header": {"sender_id": "a"}, "message": {}}', 'private-only')$$);

-- nothing for PUBLIC
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
  FROM pg_proc p WHERE p.proname IN ('dci_sign', 'dci_verify', 'dci_jwks', 'dci_generate_signing_key',
                                     'dci_sign_jws', 'dci_verify_jws') ORDER BY 1;

DELETE FROM dci_signing_key WHERE NOT EXISTS (SELECT 1 FROM dci_data_source s WHERE s.signing_key_id = dci_signing_key.id);
DROP FUNCTION signing_sqlstate(text);
