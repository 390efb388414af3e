--
-- test_connection: dci_test_connection's four steps, the state it records,
-- and what it never does (raise for network/auth failures, write in a
-- read-only transaction) (README "dci_test_connection").
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL

INSERT INTO dci_data_source (code, name, base_url, auth_type, auth_url, client_id, client_secret, bearer_token, ping_endpoint, active)
VALUES ('tc_ok',      'OK',      :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', NULL, '/registry/ping', true),
       ('tc_wrong',   'Wrong',   :'mock_url', 'oauth2', :'token_url', 'openspp-client', 'wr0ng-s3cret',    NULL, '/registry/ping', true),
       ('tc_404',     'NoPing',  :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', NULL, '/nope',          true),
       ('tc_down',    'Down',    'http://127.0.0.1:1', 'none', NULL,  NULL,             NULL,              NULL, '/registry/ping', true),
       ('tc_none',    'None',    :'mock_url', 'none',   NULL,         NULL,             NULL,              NULL, '/open/echo',     true),
       ('tc_bearer',  'Bearer',  :'mock_url', 'bearer', NULL,         NULL,             NULL, 'static-bearer-token-1', '/registry/ping', true),
       ('tc_badtok',  'BadTok',  :'mock_url', 'bearer', NULL,         NULL,             NULL, 'not-a-valid-token',     '/registry/ping', true),
       ('tc_off',     'Off',     :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', NULL, '/registry/ping', false),
       ('tc_incomplete', 'Incomplete', :'mock_url', 'oauth2', :'token_url', 'openspp-client', NULL,       NULL, '/registry/ping', true),
       ('tc_ro',      'ReadOnly', :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', NULL, '/registry/ping', true);

-- the result columns (rows come in the order config, auth, reachable, authorized)
SELECT * FROM dci_test_connection('tc_ok') \gdesc
SELECT state, last_test_at IS NULL AS never_tested FROM dci_data_source WHERE code = 'tc_ok';

-- a healthy source: every step true; state becomes 'active'
SELECT step, ok, detail, elapsed_ms >= 0 AS elapsed FROM dci_test_connection('tc_ok');
SELECT state, last_test_at IS NOT NULL AS tested, last_error FROM dci_data_source WHERE code = 'tc_ok';

-- a wrong secret: reported, not raised; auth and authorized false; state 'error'
SELECT step, ok, detail FROM dci_test_connection('tc_wrong');
SELECT state, last_test_at IS NOT NULL AS tested, last_error FROM dci_data_source WHERE code = 'tc_wrong';
SELECT count(*) AS secret_in_report FROM dci_test_connection('tc_wrong') WHERE detail LIKE '%wr0ng%';

-- a ping endpoint that does not exist (404): reachable, authorized NULL
-- (not verifiable); no step is false, so the state is 'active'
SELECT step, ok, detail FROM dci_test_connection('tc_404');
SELECT state, last_error FROM dci_data_source WHERE code = 'tc_404';

-- nothing listens: reachable false, authorized NULL; state 'error'
SELECT step, ok, CASE WHEN step = 'reachable' THEN detail LIKE 'could not connect to data source "tc_down" ("127.0.0.1:1")%' END AS refused,
       CASE WHEN step <> 'reachable' THEN detail END AS detail
  FROM dci_test_connection('tc_down');
SELECT state, last_error LIKE 'reachable: could not connect to data source "tc_down" ("127.0.0.1:1")%' AS last_error_names_step
  FROM dci_data_source WHERE code = 'tc_down';

-- auth_type none: no token step (NULL); an open endpoint authorizes
SELECT step, ok, detail FROM dci_test_connection('tc_none');
SELECT state FROM dci_data_source WHERE code = 'tc_none';

-- bearer: the stored token is used; a token the registry refuses gives
-- authorized false
SELECT step, ok, detail FROM dci_test_connection('tc_bearer');
SELECT step, ok, detail FROM dci_test_connection('tc_badtok');
SELECT code, state, last_error FROM dci_data_source WHERE code IN ('tc_bearer', 'tc_badtok') ORDER BY code;

-- an incomplete row: config false, the rest skipped; still no error raised
SELECT step, ok, detail FROM dci_test_connection('tc_incomplete');
SELECT state, last_error FROM dci_data_source WHERE code = 'tc_incomplete';

-- inactive sources can be tested (that is how a new source is tried) ...
SELECT step, ok, detail FROM dci_test_connection('tc_off');
SELECT state, active FROM dci_data_source WHERE code = 'tc_off';
-- ... while every other call still refuses them
SELECT regress_sqlstate($$SELECT dci_request('tc_off', 'GET', '/registry/ping')$$);

-- the integer overload
SELECT step, ok FROM dci_test_connection((SELECT id FROM dci_data_source WHERE code = 'tc_none'));

-- a later test overwrites the state: fix the secret and test again
UPDATE dci_data_source SET client_secret = 's3cr3t-Pa55word' WHERE code = 'tc_wrong';
SELECT bool_and(ok) AS all_ok FROM dci_test_connection('tc_wrong');
SELECT state, last_error FROM dci_data_source WHERE code = 'tc_wrong';

-- in a read-only transaction it reports but does not record
BEGIN TRANSACTION READ ONLY;
SELECT step, ok FROM dci_test_connection('tc_ro');
SELECT state, last_test_at IS NULL AS never_tested, last_error FROM dci_data_source WHERE code = 'tc_ro';
COMMIT;
SELECT state, last_test_at IS NULL AS never_tested FROM dci_data_source WHERE code = 'tc_ro';
UPDATE dci_data_source SET client_secret = 'wr0ng-s3cret' WHERE code = 'tc_ro';
BEGIN TRANSACTION READ ONLY;
SELECT step, ok FROM dci_test_connection('tc_ro');
COMMIT;
SELECT state, last_test_at IS NULL AS never_tested, last_error FROM dci_data_source WHERE code = 'tc_ro';

-- the recorded test is part of the caller's transaction
BEGIN;
SELECT count(*) FROM dci_test_connection('tc_ro');
SELECT state FROM dci_data_source WHERE code = 'tc_ro';
ROLLBACK;
SELECT state, last_test_at IS NULL AS never_tested FROM dci_data_source WHERE code = 'tc_ro';

-- last_test_at is the wall-clock time of the test
SELECT last_test_at >= (SELECT updated_at FROM dci_data_source WHERE code = 'tc_ok') AS after_update,
       last_test_at <= clock_timestamp() AS not_in_future
  FROM dci_data_source WHERE code = 'tc_ok';

DROP FUNCTION regress_sqlstate(text);
DROP FUNCTION regress_detail(text);
DROP FUNCTION regress_mask(text);
DELETE FROM dci_data_source;
