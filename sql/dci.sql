--
-- dci: the DCI layer (README "DCI layer") against the mock registry, which validates
-- every envelope it receives (a violation would show up as DC007
-- rjct.request.invalid below) and answers from a synthetic registry:
-- idtype-value UIN/BRN -> one record, BULK n -> n records, paginated;
-- LENIENT / STRICT / REJECTED -> test/fixtures/dci; ITEM_RJCT, HTTP400,
-- NACK, ERR, SYNC_ERR, HTML, NOT_DCI -> the failure shapes.
--
\set VERBOSITY terse
\set SHOW_CONTEXT never
\getenv mock_url MOCK_URL
\getenv token_url MOCK_TOKEN_URL

-- 'ok' or "SQLSTATE: message" of a statement
CREATE FUNCTION rdci_err(sql text) RETURNS text LANGUAGE plpgsql AS $$
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

INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_url, client_id, client_secret,
                             sender_id, receiver_id, callback_uri)
VALUES ('rdci', 'DCI regress', 'ns:org:RegistryType:Civil', :'mock_url', :'token_url',
        'openspp-client', 's3cr3t-Pa55word', 'openspp.example.org', 'crvs.example',
        'https://openspp.example.org/dci/callback'),
       ('rdci_dr', 'DCI regress DR', 'ns:org:RegistryType:DR', :'mock_url', :'token_url',
        'openspp-client', 's3cr3t-Pa55word', 'openspp.example.org', NULL, NULL);

-- dci_envelope: the header of the contract; message_id and message_ts vary
SELECT e -> 'signature' AS signature,
       e -> 'header' ->> 'version' AS version,
       e -> 'header' ->> 'action' AS action,
       e -> 'header' ->> 'sender_id' AS sender_id,
       e -> 'header' ->> 'sender_uri' AS sender_uri,
       e -> 'header' ->> 'receiver_id' AS receiver_id,
       e -> 'header' -> 'total_count' AS total_count,
       e -> 'header' -> 'is_msg_encrypted' AS is_msg_encrypted,
       e -> 'header' -> 'meta' AS meta,
       e -> 'header' ->> 'message_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS uuid_message_id,
       e -> 'header' ->> 'message_ts' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$' AS utc_ms_message_ts,
       abs(extract(epoch FROM (e -> 'header' ->> 'message_ts')::timestamptz - clock_timestamp())) < 5 AS now_ts,
       e -> 'message' AS message
  FROM dci_envelope('rdci', 'search', '{"transaction_id": "T-1", "search_request": [{"reference_id": "R-1"}, {"reference_id": "R-2"}]}') e;
SELECT jsonb_object_keys(dci_envelope('rdci', 'search', '{}')) AS envelope_keys ORDER BY 1;
SELECT jsonb_object_keys(dci_envelope('rdci', 'search', '{}') -> 'header') AS header_keys ORDER BY 1;
-- a fresh message_id per call; receiver_id falls back to base_url; no sender_uri without callback_uri
SELECT count(DISTINCT dci_envelope('rdci', 'search', '{}') -> 'header' ->> 'message_id') AS distinct_ids
  FROM generate_series(1, 5);
SELECT h ->> 'receiver_id' = :'mock_url' AS receiver_is_base_url, h ? 'sender_uri' AS has_sender_uri
  FROM (SELECT dci_envelope('rdci_dr', 'subscribe', '{"subscription_codes": ["a", "b", "c"]}') -> 'header' AS h) s;
SELECT dci_envelope('rdci', 'unsubscribe', '{"subscription_codes": ["a", "b", "c"]}') -> 'header' -> 'total_count' AS total_count;
SELECT dci_envelope((SELECT id FROM dci_data_source WHERE code = 'rdci'), 'search', '{}') -> 'header' ->> 'sender_id' AS by_id;

-- argument errors
SELECT rdci_err($$SELECT dci_envelope('rdci', 'search', '[]')$$);
SELECT rdci_err($$SELECT dci_envelope('rdci', NULL, '{}')$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "1"}', NULL, 0)$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "1"}', NULL, 1001)$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "1"}', NULL, 10, 0)$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "1"}', options => '{"page": 2}')$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'sql', '{}')$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', NULL)$$);
SELECT rdci_err($$SELECT count(*) FROM dci_search_records('rdci', 'idtype-value', '{"type": "UIN", "value": "1"}', NULL, 100, -1)$$);
SELECT rdci_err($$SELECT dci_unsubscribe('rdci', '{}')$$);
SELECT rdci_err($$SELECT dci_search('no_such_source', 'idtype-value', '{}')$$);

-- a sync search: the first search_response item, records as an array
SELECT r ->> 'status' AS status, r -> 'pagination' AS pagination, r -> 'data' -> 'reg_records' AS records
  FROM dci_search('rdci', 'idtype-value', '{"type": "BRN", "value": "BRN-2019-0042"}') r;
SELECT r -> 'data' -> 'reg_records' -> 0 -> 'disability' AS disability
  FROM dci_search('rdci_dr', 'idtype-value', '{"type": "UIN", "value": "847951632"}') r;
-- pages of the synthetic registry, and the options that go with them
SELECT r -> 'pagination' AS pagination, jsonb_path_query_array(r, '$.data.reg_records[*].id') AS ids, r ->> 'locale' AS locale
  FROM dci_search('rdci', 'idtype-value', '{"type": "BULK", "value": "25"}', NULL, 10, 3,
                  '{"locale": "fra", "transaction_id": "rdci-t-1", "sort": [{"attribute_name": "id", "sort_order": "asc"}]}') r;
-- the other query types, as given
SELECT qt, jsonb_array_length(dci_search('rdci', qt, q) -> 'data' -> 'reg_records') AS records
  FROM (VALUES ('expression', '{"type": "ns:org:QueryType:expression", "value": {"expression": {"sex": "female"}}}'::jsonb),
               ('predicate', '[{"seq_num": 1, "expression1": {"attribute_name": "sex", "operator": "eq", "attribute_value": "female"}}]'),
               ('graphql', '"{ persons { id } }"')) v(qt, q);

-- every record, in order, following the pages (25 records, pages of 10)
SELECT string_agg(r ->> 'id', ',' ORDER BY n) AS ids, count(*) AS records
  FROM dci_search_records('rdci', 'idtype-value', '{"type": "BULK", "value": "25"}', NULL, 10) WITH ORDINALITY t(r, n);
-- max_records stops early
SELECT count(*) FROM dci_search_records('rdci', 'idtype-value', '{"type": "BULK", "value": "25"}', NULL, 10, 12);
SELECT count(*) FROM dci_search_records('rdci', 'idtype-value', '{"type": "FOREVER", "value": "x"}', NULL, 50, 120);
-- by id
SELECT r -> 'identifier' AS identifier, r ->> 'birth_date' AS birth_date
  FROM dci_search_by_id('rdci', 'BRN', 'BRN-2019-0042') r;
SELECT count(*) AS not_found FROM dci_search_by_id('rdci', 'UIN', 'NOTFOUND');

-- the fixtures: strict, lenient (reg_records object, total_count "", status rcvd)
SELECT r ->> 'status' AS status, r -> 'pagination' AS pagination, r -> 'data' -> 'reg_records' -> 0 -> 'identifier' AS identifier
  FROM dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "STRICT"}') r;
SELECT r ->> 'status' AS status, r -> 'pagination' AS pagination, jsonb_typeof(r -> 'data' -> 'reg_records') AS records_type,
       r -> 'data' -> 'reg_records' -> 0 -> 'name' AS name
  FROM dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "LENIENT"}') r;
SELECT r -> 'name' AS name FROM dci_search_by_id('rdci', 'UIN', 'LENIENT') r;

-- rejections: DC007 with the registry's reason code
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "REJECTED"}')$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "ITEM_RJCT"}')$$);
-- HTTP 400 with a DCI error body: the status and the reason code in the message
SELECT left(e, 5) AS sqlstate, e LIKE '%HTTP 400%' AS has_status,
       e LIKE '%rjct.search_criteria.invalid%' AS has_reason_code
  FROM rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "HTTP400"}')$$) e;
SELECT rdci_err($$SELECT dci_search_async('rdci', 'idtype-value', '{"type": "UIN", "value": "NACK"}')$$);
SELECT rdci_err($$SELECT dci_search_async('rdci', 'idtype-value', '{"type": "UIN", "value": "ERR"}')$$);
SELECT rdci_err($$SELECT dci_subscribe('rdci', 'NACK')$$);
SELECT rdci_err($$SELECT dci_txn_status('rdci', 'rdci-no-such-txn')$$);
-- a sync endpoint answering with an ERR acknowledgement: DC007 with its code
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "SYNC_ERR"}')$$);
-- answers that are not DCI envelopes: DC006
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "HTML"}')$$);
SELECT rdci_err($$SELECT dci_search('rdci', 'idtype-value', '{"type": "UIN", "value": "NOT_DCI"}')$$);

-- async search: the transaction id sent (here the caller's), then its status
SELECT dci_search_async('rdci', 'idtype-value', '{"type": "BRN", "value": "BRN-2019-0042"}',
                        options => '{"transaction_id": "rdci-async-1"}') AS transaction_id;
SELECT s ->> 'txn_type' AS txn_type, s ->> 'txn_status' AS txn_status,
       s -> 'search_response' -> 0 -> 'data' -> 'reg_records' -> 0 -> 'identifier' AS identifier
  FROM dci_txn_status('rdci', 'rdci-async-1') s;
SELECT dci_search_async('rdci', 'idtype-value', '{"type": "UIN", "value": "1"}')
       ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$' AS generated_uuid;
-- subscribe / unsubscribe return the transaction id they sent (a UUID)
SELECT dci_subscribe('rdci', 'REGISTER') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4' AS subscribed,
       dci_subscribe('rdci', 'UPDATE', '[{"seq_num": 1, "expression1": {"attribute_name": "birth_date", "operator": "ge", "attribute_value": "2026-01-01"}}]',
                     'spdci-extensions-dci:Person') ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4' AS subscribed_predicate,
       dci_unsubscribe('rdci', ARRAY['SUB-0001', 'SUB-0002']) ~ '^[0-9a-f]{8}-[0-9a-f]{4}-4' AS unsubscribed;

-- registries route and verify by sender_id: a source without one sends nothing (DC001)
INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_url, client_id, client_secret)
VALUES ('rdci_nosender', 'No sender', 'ns:org:RegistryType:CRVS', :'mock_url', :'token_url',
        'openspp-client', 's3cr3t-Pa55word');
SELECT rdci_err($$SELECT dci_search('rdci_nosender', 'idtype-value', '{"type": "UIN", "value": "1"}')$$);
SELECT rdci_err($$SELECT dci_subscribe('rdci_nosender', 'REGISTER')$$);
SELECT rdci_err($$SELECT dci_envelope('rdci_nosender', 'search', '{}')$$);
DELETE FROM dci_data_source WHERE code = 'rdci_nosender';

DROP FUNCTION rdci_err(text);
DELETE FROM dci_data_source WHERE code IN ('rdci', 'rdci_dr');
