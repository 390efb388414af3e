--
-- errors: bad arguments (22023), configuration (DC001), transport (DC003),
-- time budget (DC004), size limit (DC005), body encoding (22021)
-- (README "Settings", "dci_request", "Errors").
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL
\getenv mock_https_url MOCK_HTTPS_URL

INSERT INTO dci_data_source (code, name, base_url, auth_type, auth_url, client_id, client_secret)
VALUES ('err',      'Err',      :'mock_url',           'none',   NULL,              NULL,             NULL),
       ('err_oauth', 'OAuth',   :'mock_url',           'oauth2', :'token_url',      'openspp-client', 's3cr3t-Pa55word'),
       ('err_down', 'Down',     'http://127.0.0.1:1',  'none',   NULL,              NULL,             NULL),
       ('err_tokdown', 'TokDown', :'mock_url',         'oauth2', 'http://127.0.0.1:1/token', 'openspp-client', 's3cr3t-Pa55word'),
       ('err_tls',  'TLS',      :'mock_https_url',     'none',   NULL,              NULL,             NULL),
       ('err_nosecret', 'NoSecret', :'mock_url',       'oauth2', :'token_url',      'openspp-client', NULL),
       ('err_noid', 'NoId',     :'mock_url',           'oauth2', :'token_url',      NULL,             's3cr3t-Pa55word'),
       ('err_nobearer', 'NoBearer', :'mock_url',       'bearer', NULL,              NULL,             NULL);

-- methods: GET POST PUT PATCH DELETE HEAD, nothing else (22023)
SELECT m AS method, regress_sqlstate(format($$SELECT dci_request('err', %L, '/open/echo')$$, m))
  FROM unnest(ARRAY['TRACE', 'CONNECT', 'OPTIONS', 'GETS', '', ' GET', 'GET /x HTTP/1.1']) m;
SELECT regress_sqlstate($$SELECT dci_request('err', NULL, '/open/echo')$$);

-- paths: start with '/', may carry a query, no '..' segment (also encoded)
SELECT p AS path, regress_sqlstate(format($$SELECT dci_request('err', 'GET', %L)$$, p))
  FROM unnest(ARRAY['open/echo', '', '/open/../echo', '/..', '/open/..', '/%2e%2e/echo', '/%2E%2e/echo',
                    '/.%2e/echo', '/%2e./echo', '/open/echo#frag', '/open/echo x', E'/open/echo\r\nX-A: b',
                    '/open\echo', 'http://elsewhere.example/']) p;
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', NULL)$$);
-- '..' inside a segment or in the query string is not a '..' segment
SELECT p AS path, (dci_request('err', 'GET', p)).status
  FROM unnest(ARRAY['/open/echo/a..b', '/open/echo/...', '/open/echo?x=../y']) p;

-- call headers: an object of string values, no CR/LF, no Authorization,
-- Host or Content-Length (22023)
SELECT h AS headers, regress_sqlstate(format($$SELECT dci_request('err', 'GET', '/open/echo', NULL, %L)$$, h))
  FROM unnest(ARRAY['[]', '"X-A: b"', '[{"X-A": "b"}]', '{"X-A": 1}', '{"X-A": true}', '{"X-A": null}',
                    '{"X-A": {"b": "c"}}', '{"X-A": "a\r\nX-B: b"}', '{"X-A": "a\rb"}', '{"X-A\r\nX-B": "b"}',
                    '{"X A": "b"}', '{"X-A:": "b"}', '{"Authorization": "Bearer x"}', '{"AUTHORIZATION": "x"}',
                    '{"Host": "elsewhere.example"}', '{"content-length": "0"}']) h;

-- source: unknown (DC001), NULL (22023), for every function and overload
SELECT regress_sqlstate($$SELECT dci_request('no_such_source', 'GET', '/')$$);
SELECT regress_sqlstate($$SELECT dci_request(-1, 'GET', '/')$$);
SELECT regress_sqlstate($$SELECT dci_get_token('no_such_source')$$);
SELECT regress_sqlstate($$SELECT dci_get_token(-1)$$);
SELECT regress_sqlstate($$SELECT * FROM dci_test_connection('no_such_source')$$);
SELECT regress_sqlstate($$SELECT * FROM dci_test_connection(-1)$$);
SELECT regress_sqlstate($$SELECT dci_request(NULL::text, 'GET', '/')$$);
SELECT regress_sqlstate($$SELECT dci_request(NULL::integer, 'GET', '/')$$);
SELECT regress_sqlstate($$SELECT dci_get_token(NULL::text)$$);
SELECT regress_sqlstate($$SELECT dci_get_token(NULL::integer)$$);
SELECT regress_sqlstate($$SELECT * FROM dci_test_connection(NULL::text)$$);
-- codes are case-sensitive handles
SELECT regress_sqlstate($$SELECT dci_request('ERR', 'GET', '/open/echo')$$);

-- incomplete rows (DC001)
SELECT regress_sqlstate($$SELECT dci_get_token('err_nosecret')$$);
SELECT regress_sqlstate($$SELECT dci_request('err_nosecret', 'GET', '/echo')$$);
SELECT regress_sqlstate($$SELECT dci_get_token('err_noid')$$);
SELECT regress_sqlstate($$SELECT dci_request('err_nobearer', 'GET', '/echo')$$);

-- transport: nothing listens (DC003), for the API call and the token fetch
SELECT regress_sqlstate($$SELECT dci_request('err_down', 'GET', '/registry/ping')$$);
SELECT regress_sqlstate($$SELECT dci_get_token('err_tokdown')$$);
SELECT regress_sqlstate($$SELECT dci_request('err_tokdown', 'GET', '/echo')$$);

-- bodies that are not valid in their charset, or hold a NUL byte (22021)
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "invalid_utf8"}')$$);
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "nul"}')$$);

-- bodies larger than dci_client.max_response_bytes (DC005); superuser only
SET dci_client.max_response_bytes = '4kB';
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "huge;bytes=100000"}')$$);
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "huge_chunked;bytes=100000"}')$$);
SELECT status, length(body) FROM dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "huge;bytes=4000"}');
RESET dci_client.max_response_bytes;
SELECT status, length(body) FROM dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "huge;bytes=100000"}');
SELECT regress_sqlstate($$SET dci_client.max_response_bytes = 100$$);
SELECT regress_sqlstate($$SET LOCAL ROLE pg_read_all_settings; SET dci_client.max_response_bytes = '1MB'$$);
SELECT regress_sqlstate($$SET LOCAL ROLE pg_read_all_settings; SET dci_client.allowed_hosts = ''$$);

-- TLS: a certificate the system does not trust is a transport error (DC003)
SELECT regress_sqlstate($$SELECT dci_request('err_tls', 'GET', '/open/echo')$$);
-- a ca_cert that is not a usable certificate is a configuration error
UPDATE dci_data_source SET ca_cert = E'-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n'
 WHERE code = 'err_tls';
SELECT regress_sqlstate($$SELECT dci_request('err_tls', 'GET', '/open/echo')$$);
-- verify_ssl = false accepts it
UPDATE dci_data_source SET ca_cert = NULL, verify_ssl = false WHERE code = 'err_tls';
SELECT status FROM dci_request('err_tls', 'GET', '/open/echo');

-- dci_client.allowed_hosts: anything else is refused with DC001, before connecting
SET dci_client.allowed_hosts = 'example.org';
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo')$$);
SELECT regress_sqlstate($$SELECT dci_get_token('err_oauth', true)$$);
SELECT regress_sqlstate($$SELECT dci_request('err_down', 'GET', '/open/echo')$$);
SET dci_client.allowed_hosts = '*.example.org, registry.example.net';
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo')$$);
-- an IP address or a CIDR range lets the mock through
SET dci_client.allowed_hosts = '127.0.0.1';
SELECT (dci_request('err', 'GET', '/open/echo')).status;
SET dci_client.allowed_hosts = '127.0.0.0/8';
SELECT (dci_request('err', 'GET', '/open/echo')).status;
SELECT dci_get_token('err_oauth', true) IS NOT NULL AS token;
-- a loopback name is not enough: the resolved address is checked too
INSERT INTO dci_data_source (code, name, base_url, auth_type)
VALUES ('err_local', 'Local', replace(:'mock_url', '127.0.0.1', 'localhost'), 'none');
SET dci_client.allowed_hosts = 'localhost';
SELECT left(regress_sqlstate($$SELECT dci_request('err_local', 'GET', '/open/echo')$$), 6) AS refused;
SET dci_client.allowed_hosts = 'localhost, 127.0.0.1, ::1';
SELECT (dci_request('err_local', 'GET', '/open/echo')).status;
RESET dci_client.allowed_hosts;
SELECT regress_sqlstate($$SET dci_client.allowed_hosts = '10.0.0.0/99'$$);

-- the time budget of one call: dci_client.timeout_ms, or the source's timeout_ms (DC004)
SET dci_client.timeout_ms = 200;
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "slow;delay=2"}')$$);
RESET dci_client.timeout_ms;
UPDATE dci_data_source SET timeout_ms = 200 WHERE code = 'err';
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "slow;delay=2"}')$$);
-- the source's budget wins over the setting
SET dci_client.timeout_ms = 60000;
SELECT regress_sqlstate($$SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "slow;delay=2"}')$$);
RESET dci_client.timeout_ms;
UPDATE dci_data_source SET timeout_ms = NULL WHERE code = 'err';
SELECT regress_sqlstate($$SET dci_client.timeout_ms = 0$$);

-- statement_timeout ends a call with 57014 and leaves the session usable
SET statement_timeout = '300ms';
\set VERBOSITY sqlstate
SELECT dci_request('err', 'GET', '/open/echo', NULL, '{"X-Mock-Fault": "slow;delay=2"}');
\set VERBOSITY terse
RESET statement_timeout;
SELECT (dci_request('err', 'GET', '/open/echo')).status;

-- dci_client.user_agent may not hold CR/LF
SELECT regress_sqlstate($$SET dci_client.user_agent = E'x\r\nX-Injected: 1'$$);
SET dci_client.user_agent = 'regress-agent/1.0';
SELECT (dci_request('err', 'GET', '/open/echo')).body::jsonb -> 'headers' ->> 'user-agent' AS user_agent;
RESET dci_client.user_agent;

-- no secret or token in any message: the refused token fetch of a source
-- whose secret is wrong quotes the endpoint, not the secret
UPDATE dci_data_source SET client_secret = 'wr0ng-s3cret-value' WHERE code = 'err_oauth';
SELECT regress_sqlstate($$SELECT dci_get_token('err_oauth', true)$$);
SELECT regress_detail($$SELECT dci_get_token('err_oauth', true)$$) LIKE '%wr0ng%' AS secret_in_detail;

DELETE FROM dci_data_source;
