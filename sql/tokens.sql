--
-- tokens: dci_get_token for oauth2 / bearer / none, caching, force_refresh,
-- credential locations, refusals, dci_token_status (README "dci_get_token").
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL

INSERT INTO dci_data_source (code, name, base_url, auth_type, auth_url, client_id, client_secret, credential_location, bearer_token)
VALUES ('tok_body',   'Body',   :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', 'body',  NULL),
       ('tok_basic',  'Basic',  :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', 'basic', NULL),
       ('tok_query',  'Query',  :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', 'query', NULL),
       ('tok_scope',  'Scope',  :'mock_url', 'oauth2', :'token_url', 'openspp-client', 's3cr3t-Pa55word', 'body',  NULL),
       ('tok_wrong',  'Wrong',  :'mock_url', 'oauth2', :'token_url', 'openspp-client', 'not-the-secret',  'body',  NULL),
       ('tok_bearer', 'Bearer', :'mock_url', 'bearer', NULL,         NULL,             NULL,              'body',  'static-bearer-token-1'),
       ('tok_none',   'None',   :'mock_url', 'none',   NULL,         NULL,             NULL,              'body',  NULL);
UPDATE dci_data_source SET scope = 'registry.read registry.search' WHERE code = 'tok_scope';

-- nothing is cached before the first call
SELECT source, auth_type, cached, obtained_at IS NULL AS no_obtained_at, expires_at IS NULL AS no_expires_at
  FROM dci_token_status WHERE source LIKE 'tok\_%' ORDER BY source;

-- oauth2: a token from the endpoint (client credentials in the form body)
SELECT dci_get_token('tok_body') AS t1 \gset
SELECT :'t1' <> '' AS got_token;
-- cached: the same token again, also through the integer overload
SELECT dci_get_token('tok_body') = :'t1' AS same_token;
SELECT dci_get_token((SELECT id FROM dci_data_source WHERE code = 'tok_body')) = :'t1' AS same_token_by_id;
SELECT dci_get_token('tok_body', false) = :'t1' AS same_token_no_refresh;
-- force_refresh fetches a new one, which is then the cached one
SELECT dci_get_token('tok_body', force_refresh => true) AS t2 \gset
SELECT :'t2' <> :'t1' AS new_token;
SELECT dci_get_token('tok_body') = :'t2' AS new_token_cached;

-- every credential_location works against the mock (and scope is accepted)
SELECT code, credential_location, dci_get_token(code) IS NOT NULL AS token
  FROM dci_data_source WHERE code IN ('tok_basic', 'tok_query', 'tok_scope') ORDER BY code;
-- sources do not share tokens
SELECT count(DISTINCT dci_get_token(code)) AS distinct_tokens
  FROM dci_data_source WHERE code IN ('tok_body', 'tok_basic', 'tok_query', 'tok_scope');

-- bearer: the stored token; none: NULL
SELECT dci_get_token('tok_bearer') = 'static-bearer-token-1' AS stored_bearer;
SELECT dci_get_token('tok_bearer', true) = 'static-bearer-token-1' AS stored_bearer_refresh;
SELECT dci_get_token('tok_none') IS NULL AS none_is_null;
SELECT dci_get_token('tok_none', true) IS NULL AS none_is_null_refresh;

-- a refused client is DC002, quoting the endpoint's error, never the secret
SELECT regress_sqlstate($$SELECT dci_get_token('tok_wrong')$$);
SELECT regress_detail($$SELECT dci_get_token('tok_wrong')$$);
SELECT regress_sqlstate($$SELECT dci_get_token('tok_wrong', true)$$) LIKE '%not-the-secret%' AS secret_in_message;
-- an unknown client id too
UPDATE dci_data_source SET client_id = 'nobody' WHERE code = 'tok_wrong';
SELECT regress_sqlstate($$SELECT dci_get_token('tok_wrong')$$);
-- a token endpoint that answers 2xx without access_token: DC002
UPDATE dci_data_source SET auth_url = :'mock_url' || '/open/echo', client_secret = 'not-the-secret' WHERE code = 'tok_wrong';
SELECT regress_sqlstate($$SELECT dci_get_token('tok_wrong')$$);
-- a token endpoint that answers 404: DC002
UPDATE dci_data_source SET auth_url = :'mock_url' || '/open/no-such-endpoint', client_secret = 'not-the-secret' WHERE code = 'tok_wrong';
SELECT regress_sqlstate($$SELECT dci_get_token('tok_wrong')$$);
SELECT regress_detail($$SELECT dci_get_token('tok_wrong')$$);

-- changing the credentials of a source does not keep serving the old token
UPDATE dci_data_source SET client_id = 'nobody' WHERE code = 'tok_basic';
SELECT regress_sqlstate($$SELECT dci_get_token('tok_basic')$$);
-- ... while editing unrelated columns keeps the cached token
SELECT dci_get_token('tok_body') AS t3 \gset
UPDATE dci_data_source SET notes = 'edited', name = 'Body (edited)' WHERE code = 'tok_body';
SELECT dci_get_token('tok_body') = :'t3' AS token_kept;

-- dci_token_status: cached after a fetch, with its lifetime; never the token
SELECT source, auth_type, cached, obtained_at <= now() + interval '1 minute' AS obtained,
       expires_at - obtained_at BETWEEN interval '3500 s' AND interval '3700 s' AS lifetime_about_1h
  FROM dci_token_status WHERE source LIKE 'tok\_%' ORDER BY source;
SELECT count(*) AS rows_showing_a_token
  FROM dci_token_status s WHERE s::text LIKE '%' || :'t3' || '%';
SELECT source_id = (SELECT id FROM dci_data_source WHERE code = 'tok_body') AS source_id_matches
  FROM dci_token_status WHERE source = 'tok_body';

-- no table is written when a token is fetched: works in a read-only transaction
BEGIN TRANSACTION READ ONLY;
SELECT dci_get_token('tok_query', true) IS NOT NULL AS token_read_only;
COMMIT;
BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ;
SELECT dci_get_token('tok_query', true) IS NOT NULL AS token_repeatable_read;
COMMIT;

-- a deleted source has no status and no token
DELETE FROM dci_data_source WHERE code = 'tok_scope';
SELECT count(*) FROM dci_token_status WHERE source = 'tok_scope';
SELECT regress_sqlstate($$SELECT dci_get_token('tok_scope')$$);

DELETE FROM dci_data_source;
