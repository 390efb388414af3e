--
-- secrets: write-only columns, encryption, removal, binding to origin, row
-- and column, tampering (README "Write-only secrets", "Key rotation").
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL

INSERT INTO dci_data_source (code, name, base_url, auth_url, client_id, client_secret)
VALUES ('sec', 'Secrets', :'mock_url', :'token_url', 'openspp-client', 's3cr3t-Pa55word');

-- the plaintext reads back NULL; the ciphertext is bytea without the plaintext
SELECT client_secret, client_secret_set, bearer_token_set, client_key_set,
       pg_typeof(client_secret_encrypted) AS type,
       length(client_secret_encrypted) > length('s3cr3t-Pa55word') AS longer,
       position(convert_to('s3cr3t', 'UTF8') in client_secret_encrypted) = 0 AS no_plaintext,
       bearer_token_encrypted IS NULL AS no_bearer
  FROM dci_data_source WHERE code = 'sec';
-- ... and it decrypts for a call
SELECT dci_get_token('sec') IS NOT NULL AS token;

-- encryption uses a random IV: the same secret twice gives two ciphertexts
INSERT INTO dci_data_source (code, name, base_url, auth_url, client_id, client_secret)
VALUES ('sec_twin', 'Twin', :'mock_url', :'token_url', 'openspp-client', 's3cr3t-Pa55word');
SELECT a.client_secret_encrypted <> b.client_secret_encrypted AS different
  FROM dci_data_source a, dci_data_source b WHERE a.code = 'sec' AND b.code = 'sec_twin';
UPDATE dci_data_source SET client_secret = 's3cr3t-Pa55word' WHERE code = 'sec_twin'
RETURNING client_secret, client_secret_set;

-- leaving the column out, or writing NULL, keeps the secret
UPDATE dci_data_source SET name = 'Renamed' WHERE code = 'sec';
UPDATE dci_data_source SET client_secret = NULL, scope = NULL WHERE code = 'sec';
SELECT client_secret_set FROM dci_data_source WHERE code = 'sec';
SELECT dci_get_token('sec', true) IS NOT NULL AS token;

-- writing '' removes it; the source is then incomplete (DC001)
UPDATE dci_data_source SET client_secret = '' WHERE code = 'sec';
SELECT client_secret, client_secret_set, client_secret_encrypted IS NULL AS removed
  FROM dci_data_source WHERE code = 'sec';
SELECT regress_sqlstate($$SELECT dci_get_token('sec', true)$$);

-- dci_clear_secret(source, column), by code and by id
UPDATE dci_data_source SET client_secret = 's3cr3t-Pa55word', bearer_token = 'b', client_key = '-----BEGIN PRIVATE KEY-----x'
 WHERE code = 'sec';
SELECT client_secret_set, bearer_token_set, client_key_set FROM dci_data_source WHERE code = 'sec';
SELECT dci_clear_secret('sec', 'bearer_token');
SELECT dci_clear_secret((SELECT id FROM dci_data_source WHERE code = 'sec'), 'client_key');
SELECT client_secret_set, bearer_token_set, client_key_set FROM dci_data_source WHERE code = 'sec';
SELECT regress_sqlstate($$SELECT dci_clear_secret('sec', 'name')$$);
SELECT regress_sqlstate($$SELECT dci_clear_secret('sec', NULL)$$);
SELECT regress_sqlstate($$SELECT dci_clear_secret('no_such_source', 'client_secret')$$);
SELECT regress_sqlstate($$SELECT dci_clear_secret(-1, 'client_secret')$$);
SELECT client_secret_set FROM dci_data_source WHERE code = 'sec';

-- changing where credentials go or how the server is trusted drops every
-- stored secret ...
UPDATE dci_data_source SET client_secret = 's3cr3t-Pa55word', bearer_token = 'b' WHERE code = 'sec';
UPDATE dci_data_source SET base_url = 'http://elsewhere.example' WHERE code = 'sec';
SELECT 'base_url' AS changed, client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
UPDATE dci_data_source SET base_url = :'mock_url', client_secret = 's3cr3t-Pa55word', bearer_token = 'b' WHERE code = 'sec';
UPDATE dci_data_source SET auth_url = :'token_url' || '?x=1' WHERE code = 'sec';
SELECT 'auth_url' AS changed, client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
UPDATE dci_data_source SET auth_url = :'token_url', client_secret = 's3cr3t-Pa55word', bearer_token = 'b' WHERE code = 'sec';
UPDATE dci_data_source SET credential_location = 'basic' WHERE code = 'sec';
SELECT 'credential_location' AS changed, client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
UPDATE dci_data_source SET credential_location = 'body', client_secret = 's3cr3t-Pa55word', bearer_token = 'b' WHERE code = 'sec';
UPDATE dci_data_source SET verify_ssl = false WHERE code = 'sec';
SELECT 'verify_ssl' AS changed, client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
UPDATE dci_data_source SET verify_ssl = true, client_secret = 's3cr3t-Pa55word', bearer_token = 'b' WHERE code = 'sec';
UPDATE dci_data_source SET ca_cert = '-----BEGIN CERTIFICATE-----x' WHERE code = 'sec';
SELECT 'ca_cert' AS changed, client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
UPDATE dci_data_source SET ca_cert = NULL, client_secret = 's3cr3t-Pa55word', bearer_token = 'b' WHERE code = 'sec';
SELECT 'restored' AS changed, client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
SELECT dci_get_token('sec', true) IS NOT NULL AS token;

-- ... but not when the statement writes them again (they are then bound to
-- the new values and decrypt)
UPDATE dci_data_source SET base_url = :'mock_url' || '/', auth_url = :'token_url' || '?v=2',
       credential_location = 'basic', client_secret = 's3cr3t-Pa55word'
 WHERE code = 'sec';
SELECT client_secret_set, bearer_token_set FROM dci_data_source WHERE code = 'sec';
SELECT dci_get_token('sec', true) IS NOT NULL AS token;

-- writing the same value, or changing other columns, keeps them
UPDATE dci_data_source SET base_url = :'mock_url', auth_url = :'token_url' || '?v=2',
       client_id = 'openspp-client', scope = 'registry.read', name = 'Again', extra_headers = '{"X-A": "b"}',
       timeout_ms = 5000, notes = 'n', active = true
 WHERE code = 'sec';
SELECT client_secret_set FROM dci_data_source WHERE code = 'sec';

-- a ciphertext copied to another row fails at call time with DC001 naming
-- the key it was made with, never garbage
UPDATE dci_data_source
   SET client_secret_encrypted = (SELECT client_secret_encrypted FROM dci_data_source WHERE code = 'sec_twin')
 WHERE code = 'sec';
SELECT client_secret_set FROM dci_data_source WHERE code = 'sec';
SELECT regress_sqlstate($$SELECT dci_get_token('sec', true)$$);
SELECT regress_detail($$SELECT dci_get_token('sec', true)$$);
SELECT regress_sqlstate($$SELECT dci_request('sec', 'GET', '/echo')$$);

-- ... and so does one copied to another column of the same row
UPDATE dci_data_source SET auth_type = 'bearer', client_secret = 'x', bearer_token = ''
 WHERE code = 'sec_twin';
UPDATE dci_data_source SET bearer_token_encrypted = client_secret_encrypted WHERE code = 'sec_twin';
SELECT bearer_token_set FROM dci_data_source WHERE code = 'sec_twin';
SELECT regress_sqlstate($$SELECT dci_get_token('sec_twin')$$);
SELECT regress_sqlstate($$SELECT dci_request('sec_twin', 'GET', '/echo')$$);

-- a tampered ciphertext (one bit flipped) fails with DC001
UPDATE dci_data_source SET client_secret = 's3cr3t-Pa55word', auth_url = :'token_url' WHERE code = 'sec';
SELECT dci_get_token('sec', true) IS NOT NULL AS token;
UPDATE dci_data_source
   SET client_secret_encrypted = set_byte(client_secret_encrypted, 30, get_byte(client_secret_encrypted, 30) # 1)
 WHERE code = 'sec';
SELECT regress_sqlstate($$SELECT dci_get_token('sec', true)$$);
SELECT regress_detail($$SELECT dci_get_token('sec', true)$$);
UPDATE dci_data_source
   SET client_secret_encrypted = set_byte(client_secret_encrypted, 30, get_byte(client_secret_encrypted, 30) # 1)
 WHERE code = 'sec';
SELECT dci_get_token('sec', true) IS NOT NULL AS token_after_undo;
UPDATE dci_data_source
   SET client_secret_encrypted = substr(client_secret_encrypted, 1, length(client_secret_encrypted) - 1)
 WHERE code = 'sec';
SELECT regress_sqlstate($$SELECT dci_get_token('sec', true)$$);

-- an INSERT that supplies *_encrypted directly keeps it as given ...
INSERT INTO dci_data_source (code, name, base_url, auth_url, client_id, client_secret_encrypted)
VALUES ('sec_restored', 'Restored', :'mock_url', :'token_url', 'openspp-client', '\xdeadbeef');
SELECT client_secret_set, client_secret_encrypted = '\xdeadbeef'::bytea AS kept_as_given
  FROM dci_data_source WHERE code = 'sec_restored';
-- ... which only decrypts if it is a ciphertext made for that row
SELECT regress_sqlstate($$SELECT dci_get_token('sec_restored')$$);
SELECT regress_detail($$SELECT dci_get_token('sec_restored')$$);

-- a pg_dump-style restore (same id, same URLs, credential location and TLS
-- settings, the ciphertext) works
UPDATE dci_data_source SET client_secret = 's3cr3t-Pa55word' WHERE code = 'sec';
SELECT id AS sec_id, encode(client_secret_encrypted, 'hex') AS sec_ct, credential_location AS sec_loc
  FROM dci_data_source WHERE code = 'sec' \gset
DELETE FROM dci_data_source WHERE code = 'sec';
INSERT INTO dci_data_source (id, code, name, base_url, auth_url, credential_location, client_id, client_secret_encrypted)
OVERRIDING SYSTEM VALUE
VALUES (:sec_id, 'sec', 'Secrets', :'mock_url', :'token_url', :'sec_loc', 'openspp-client', decode(:'sec_ct', 'hex'));
SELECT client_secret_set, encode(client_secret_encrypted, 'hex') = :'sec_ct' AS kept_as_given
  FROM dci_data_source WHERE code = 'sec';
SELECT dci_get_token('sec', true) IS NOT NULL AS token;

-- the plaintext columns refuse storage even if the trigger is bypassed
SELECT conname, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid = 'dci_data_source'::regclass AND contype = 'c'
   AND pg_get_constraintdef(oid) LIKE '%IS NULL%'
 ORDER BY conname;

DELETE FROM dci_data_source;
