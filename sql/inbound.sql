--
-- inbound: dci_receive's checks, each refusal with its own code and nothing
-- stored; an accepted callback and its replay (README "Callbacks and
-- notifications").  No callback needs the network: the transaction a
-- callback answers is written here directly.
--
\set VERBOSITY terse
\set SHOW_CONTEXT never

INSERT INTO dci_data_source (code, name, base_url, auth_type, sender_id, receiver_id, callback_uri)
VALUES ('inbound_reg', 'Inbound', 'http://127.0.0.1:9', 'none', 'openspp.test', 'crvs.example',
        'https://openspp.example.org/dci/callback/inbound_reg');
INSERT INTO dci_transaction (source_id, transaction_id, action, message_id, endpoint, state)
SELECT id, 'txn-1', 'search', 'm-0', '/registry/search', 'acked' FROM dci_data_source WHERE code = 'inbound_reg';

-- an envelope from the registry, now; $1 the action, $2 the message id, $3 the message
CREATE FUNCTION inbound_env(action text, message_id text, message jsonb,
                            ts timestamptz DEFAULT now(), sender text DEFAULT 'crvs.example') RETURNS text
LANGUAGE sql AS $$
    SELECT jsonb_build_object('header', jsonb_build_object('version', '1.0.0', 'message_id', message_id,
               'message_ts', to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
               'action', action, 'sender_id', sender, 'receiver_id', 'openspp.test',
               'total_count', 1, 'completed_count', 1),
           'message', message)::text
$$;

CREATE FUNCTION inbound_try(body text) RETURNS text LANGUAGE sql AS $$
    SELECT http_status || ' ' || (response #>> '{message,ack_status}') ||
           coalesce(' ' || (response #>> '{message,error,code}'), '')
      FROM dci_receive('inbound_reg', body)
$$;

SELECT inbound_try('{oops');
SELECT inbound_try(repeat('[', 100) || repeat(']', 100));
SELECT inbound_try('[]');
SELECT inbound_try('{"header": {}, "message": {}}');
SELECT inbound_try(inbound_env('search', 'm-1', '{"transaction_id": "txn-1"}'));
SELECT inbound_try(inbound_env('on-search', 'm-1', '{"transaction_id": "txn-1"}', sender => 'other'));
SELECT inbound_try(inbound_env('on-search', 'm-1', '{"transaction_id": "txn-1"}', now() - interval '1 hour'));
SELECT inbound_try(inbound_env('on-search', 'm-1', '{"transaction_id": "txn-1"}', now() + interval '1 hour'));
SELECT inbound_try(inbound_env('on-search', 'm-1', '{"transaction_id": "txn-2"}'));
SELECT inbound_try(inbound_env('notify', 'm-1', '{"transaction_id": "n", "subscription_code": "S1"}'));
SELECT count(*) AS stored FROM dci_inbox;
SELECT state, callbacks FROM dci_transaction WHERE transaction_id = 'txn-1';

-- accepted, then the same message again
SELECT inbound_try(inbound_env('on-search', 'm-1', '{"transaction_id": "txn-1", "search_response": [{"status": "succ"}]}'));
SELECT inbound_try(inbound_env('on-search', 'm-1', '{"transaction_id": "txn-1", "search_response": [{"status": "succ"}]}'));
SELECT action, message_id, transaction_id, verified FROM dci_inbox;
SELECT state, callbacks, response -> 'search_response' AS response FROM dci_transaction
 WHERE transaction_id = 'txn-1';

-- the caller's own mistakes raise
SELECT * FROM dci_receive('no_such_source', '{}');
SELECT * FROM dci_receive('inbound_reg', NULL);
SELECT * FROM dci_receive('inbound_reg', '{}', '"x"');

DELETE FROM dci_inbox;
DELETE FROM dci_transaction WHERE transaction_id = 'txn-1';
DELETE FROM dci_data_source WHERE code = 'inbound_reg';
DROP FUNCTION inbound_try(text);
DROP FUNCTION inbound_env(text, text, jsonb, timestamptz, text);
