--
-- requests: dci_request against the mock's /echo (README "dci_request").
-- /echo answers {"method", "path", "query", "headers" (lower-cased names),
-- "body"}; X-Mock-Fault in the call's headers makes the mock misbehave.
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL

INSERT INTO dci_data_source (code, name, base_url, auth_type, auth_url, client_id, client_secret, bearer_token, extra_headers, active)
VALUES ('req',        'Req',    :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', NULL,
        '{"X-Tenant": "t1", "X-Override": "from-extra"}', true),
       ('req_bearer', 'Bearer', :'mock_url', 'bearer', NULL, NULL, NULL, 'static-bearer-token-1', '{}', true),
       ('req_none',   'None',   :'mock_url', 'none',   NULL, NULL, NULL, NULL, '{}', true),
       ('req_off',    'Off',    :'mock_url', 'none',   NULL, NULL, NULL, NULL, '{}', false);

-- every method, any case; the method reaches the server in upper case
SELECT m AS method, r.status, r.body::jsonb ->> 'method' AS echoed, r.body::jsonb ->> 'path' AS path
  FROM unnest(ARRAY['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'get', 'Post', 'delete']) WITH ORDINALITY AS t(m, n),
       LATERAL dci_request('req', m, '/echo') r
 ORDER BY n;
-- HEAD: the status and headers, no body
SELECT status, body = '' AS empty_body, headers ->> 'content-type' AS content_type
  FROM dci_request('req', 'HEAD', '/echo');

-- a body is sent as compact JSON with Content-Type: application/json;
-- Accept: application/json always; Authorization: Bearer <token> (the mock
-- echoes it; what comes back to the caller has the token redacted)
SELECT e ->> 'method' AS method,
       e ->> 'body' AS body,
       e -> 'headers' ->> 'content-type' AS content_type,
       e -> 'headers' ->> 'accept' AS accept,
       left(e -> 'headers' ->> 'authorization', 7) = 'Bearer ' AS bearer,
       e -> 'headers' ->> 'authorization' = 'Bearer [redacted]' AS current_token_redacted,
       e -> 'headers' ->> 'user-agent' LIKE 'dci_client/%' AS user_agent
  FROM (SELECT body::jsonb AS e FROM dci_request('req', 'POST', '/echo', '{"a": 1}')) s;
SELECT (dci_request('req', 'PUT', '/echo', '{"b": [1, 2, {"c": null}], "a": "é", "n": 1.50}')).body::jsonb ->> 'body' AS body;
SELECT (dci_request('req', 'PATCH', '/echo', '"just a string"')).body::jsonb ->> 'body' AS body;
-- without a body: no Content-Type, nothing sent
SELECT e -> 'headers' ? 'content-type' AS has_content_type, e ->> 'body' AS body,
       e -> 'headers' ->> 'accept' AS accept
  FROM (SELECT body::jsonb AS e FROM dci_request('req', 'GET', '/echo')) s;

-- extra_headers go with every call; the call's headers are laid over them
SELECT e -> 'headers' ->> 'x-tenant' AS x_tenant, e -> 'headers' ->> 'x-override' AS x_override,
       e -> 'headers' ? 'x-call' AS has_x_call
  FROM (SELECT body::jsonb AS e FROM dci_request('req', 'GET', '/echo')) s;
SELECT e -> 'headers' ->> 'x-tenant' AS x_tenant, e -> 'headers' ->> 'x-override' AS x_override,
       e -> 'headers' ->> 'x-call' AS x_call
  FROM (SELECT body::jsonb AS e
          FROM dci_request('req', 'GET', '/echo', NULL, '{"x-override": "from-call", "X-Call": "c"}')) s;
-- an empty headers object changes nothing
SELECT (dci_request('req', 'GET', '/echo', NULL, '{}')).body::jsonb -> 'headers' ->> 'x-override' AS x_override;

-- a query string is allowed and passed on
SELECT e ->> 'path' AS path, e ->> 'query' AS query
  FROM (SELECT body::jsonb AS e FROM dci_request('req', 'GET', '/echo/sub/item?x=1&y=two%20words')) s;

-- SELECT * FROM dci_request(...) gives four columns
SELECT * FROM dci_request('req', 'GET', '/echo') \gdesc
SELECT status, jsonb_typeof(headers) AS headers, length(body) > 0 AS has_body, elapsed_ms >= 0 AS elapsed
  FROM dci_request('req', 'GET', '/echo');
SELECT pg_typeof(dci_request('req', 'GET', '/echo'));

-- the integer overload
SELECT (dci_request((SELECT id FROM dci_data_source WHERE code = 'req'), 'GET', '/echo')).status;

-- bearer sources send the stored token (the mock accepts only it; its echo
-- comes back redacted); none sends no Authorization
SELECT e -> 'headers' ->> 'authorization' = 'Bearer [redacted]' AS stored_bearer
  FROM (SELECT body::jsonb AS e FROM dci_request('req_bearer', 'GET', '/echo')) s;
SELECT status, e -> 'headers' ? 'authorization' AS has_authorization
  FROM (SELECT status, body::jsonb AS e FROM dci_request('req_none', 'GET', '/open/echo')) s;
-- without a token the mock refuses: the 401 is returned, not raised
SELECT status, body::jsonb ->> 'error' AS error FROM dci_request('req_none', 'GET', '/echo');

-- response header names are lower-cased; repeated headers joined with ", "
SELECT headers ? 'content-type' AS lower, headers ? 'Content-Type' AS mixed,
       headers ->> 'content-type' AS content_type
  FROM dci_request('req', 'GET', '/echo');
SELECT status, headers ->> 'x-dup' AS x_dup, headers ->> 'set-cookie' AS set_cookie
  FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "duplicate_headers"}');

-- gzip bodies are decoded
SELECT status, body::jsonb ->> 'method' AS method, body::jsonb ->> 'path' AS path
  FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "gzip"}');

-- the body is converted from its charset (here ISO-8859-1) to the server encoding
SELECT status, headers ->> 'content-type' AS content_type, body, body::jsonb ->> 'name' = 'José' AS converted
  FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "charset"}');

-- every HTTP status is returned, not raised
SELECT status, body FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "status;status=418"}');
SELECT status, body FROM dci_request('req', 'POST', '/echo', '{}', '{"X-Mock-Fault": "status;status=500"}');
SELECT status, body FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "status;status=404;body=nothing here"}');
SELECT status, headers ->> 'retry-after' AS retry_after
  FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "status;status=503;retry_after=0"}');
SELECT status, headers ->> 'retry-after' AS retry_after
  FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "status;status=429;retry_after=0"}');

-- redirects are not followed
SELECT status, headers ->> 'location' AS location, body
  FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "redirect"}');

-- a 401 on an oauth2 source renews the token and resends once; the second
-- answer (here the fault again) is returned as it is
SELECT dci_get_token('req') AS before_401 \gset
SELECT status FROM dci_request('req', 'GET', '/echo', NULL, '{"X-Mock-Fault": "401"}');
SELECT dci_get_token('req') <> :'before_401' AS token_renewed;
SELECT status FROM dci_request('req', 'GET', '/echo');

-- inactive sources refuse every call (DC001)
SELECT regress_sqlstate($$SELECT dci_request('req_off', 'GET', '/open/echo')$$);
SELECT regress_sqlstate($$SELECT dci_get_token('req_off')$$);
UPDATE dci_data_source SET active = true WHERE code = 'req_off';
SELECT status FROM dci_request('req_off', 'GET', '/open/echo');

DELETE FROM dci_data_source;
