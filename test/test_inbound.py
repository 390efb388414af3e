"""The inbound half of DCI (README "Callbacks and notifications", issue 13):
the bundled mock acts as a registry that calls back; a small HTTP server in
this process does what the Odoo controller does (raw body and lower-cased
headers to dci_receive through psycopg2, commit, return status and body),
connected as a role that has only EXECUTE on dci_receive."""
import base64, hashlib, hmac, json, os, select, threading, time, uuid
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import pytest
from psycopg2.extras import Json

from support.env import expect_error
from support.util import code

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "fixtures", "signing")
WORKER_ROLE = "dci_http_worker"
UIN = {"type": "UIN", "value": "847951632"}


def _pem(name):
    with open(os.path.join(FIX, name)) as f:
        return f.read()


# ---------------------------------------------------------------- the receiver (the Odoo controller)
class Receiver:
    """POST /dci/<source>: dci_receive(source, raw body, lower-cased headers), commit."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.answers = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                src = self.path.rsplit("/", 1)[-1]
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    return self.reply(400, {"message": {"ack_status": "ERR", "error": {"code": "err.request.bad"}}})
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                conn = outer.cluster.connect(user=WORKER_ROLE, autocommit=False)
                try:
                    cur = conn.cursor()
                    cur.execute("SELECT http_status, response FROM dci_receive(%s, %s, %s)",
                                (src, text, Json(hdrs)))
                    status, response = cur.fetchone()
                    conn.commit()
                finally:
                    conn.close()
                outer.answers.append((status, response))
                self.reply(status, response)

            def reply(self, status, obj):
                body = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d/dci/" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _worker_role(cluster):
    with closing(cluster.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (WORKER_ROLE,))
        if not cur.fetchone():
            cur.execute("CREATE ROLE %s LOGIN" % WORKER_ROLE)
        cur.execute("GRANT EXECUTE ON FUNCTION dci_receive(text, text, jsonb) TO %s" % WORKER_ROLE)


@pytest.fixture
def rx(env):
    _worker_role(env.cluster)
    r = Receiver(env.cluster)
    yield r
    r.close()


def _callbacks(env, **conf):
    conf.setdefault("enabled", True)
    env.mock._ctl("/callbacks", conf)


def _sent(env):
    return env.mock._ctl("/callbacks")["sent"]


def _src(env, rx, prefix="inb", cluster=None, **cols):
    c = code(prefix)
    cols.setdefault("callback_uri", rx.url + c if rx else "https://openspp.example.org/cb")
    env.add_source(c, cluster=cluster, **cols)
    return c


def _wait(pred, what, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _txn(env, src, txn, cluster=None):
    rows = env.query("SELECT t.state, t.response, t.callbacks, t.action, t.message_id, t.endpoint "
                     "FROM dci_transaction t JOIN dci_data_source s ON s.id = t.source_id "
                     "WHERE s.code = %s AND t.transaction_id = %s", (src, txn), cluster=cluster)
    return rows[0] if rows else None


def _count(env, table, src, cluster=None):
    return env.query("SELECT count(*) FROM %s t JOIN dci_data_source s ON s.id = t.source_id WHERE s.code = %%s"
                     % table, (src,), cluster=cluster)[0][0]


def _now_iso(delta=0):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + delta)) + "Z"


def _envelope(action="on-search", txn=None, sender_id=None, receiver_id="openspp.test", ts=None,
              message_id=None, message=None):
    h = {"version": "1.0.0", "message_id": message_id or str(uuid.uuid4()), "message_ts": ts or _now_iso(),
         "action": action, "status": "succ", "total_count": 1, "completed_count": 1,
         "receiver_id": receiver_id}
    if sender_id:
        h["sender_id"] = sender_id
    m = message if message is not None else {"transaction_id": txn, "search_response": []}
    return {"header": h, "message": m}


def _receive(cur, src, body, headers=None):
    cur.execute("SELECT http_status, response FROM dci_receive(%s, %s, %s)",
                (src, body if isinstance(body, str) else json.dumps(body), Json(headers or {})))
    return cur.fetchone()


def _sign_ed25519(env_obj, sender="reg"):
    """The README's DCI signature over {header, message}, by the fixture key; the
    body itself keeps Python's default spacing and key order (not canonical)."""
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(_pem("ed25519_private.pem").encode(), password=None)
    canonical = json.dumps({"header": env_obj["header"], "message": env_obj["message"]},
                           sort_keys=True, separators=(",", ":"))
    digest = base64.b64encode(hashlib.sha256(canonical.encode()).digest()).decode()
    created = int(time.time())
    ss = "(created): %d\n(expires): %d\ndigest: %s" % (created, created + 300, digest)
    sig = base64.b64encode(key.sign(ss.encode())).decode()
    return ('namespace="dci", kidId="%s|k|ed25519", algorithm="ed25519", created="%d", expires="%d", '
            'headers="(created) (expires) digest", signature="%s"' % (sender, created, created + 300, sig))


# ---------------------------------------------------------------- full flows
def test_async_search_flow(env, rx):
    _callbacks(env)
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        cur.execute("GRANT EXECUTE ON FUNCTION dci_await(text, text, integer) TO %s" % WORKER_ROLE)
    row = _wait(lambda: (_txn(env, src, txn) or [None])[0] == "completed" and _txn(env, src, txn), "on-search")
    state, response, callbacks, action, message_id, endpoint = row
    assert (action, endpoint, callbacks) == ("search", "/registry/search", 1)
    assert message_id == json.loads(env.mock.stats()["last_request"]["/registry/search"]["body"])["header"]["message_id"]
    assert response["search_response"][0]["data"]["reg_records"], response
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_await(%s, %s, 1000)", (src, txn))
        result = cur.fetchone()[0]
    assert result["status"] == "succ" and result["data"]["reg_records"]
    sent = _sent(env)
    assert [s["action"] for s in sent] == ["on-search"] and sent[0]["status"] == 200
    assert sent[0]["response"]["message"]["ack_status"] == "ACK"
    inbox = env.query("SELECT i.action, i.transaction_id, i.verified, i.message_id FROM dci_inbox i "
                      "JOIN dci_data_source s ON s.id = i.source_id WHERE s.code = %s", (src,))
    assert inbox == [("on-search", txn, "none", sent[0]["message_id"])]


def test_dci_await_waits_for_the_callback(env, rx):
    _callbacks(env, delay=0.5)
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        cur.execute("SELECT dci_await(%s, %s, 20000)", (src, txn))
        result = cur.fetchone()[0]
        assert result and result["data"]["reg_records"]
        # under REPEATABLE READ the snapshot would never show it: refused, said so
        conn.autocommit = False
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        expect_error(cur, "25000", "SELECT dci_await(%s, %s, 10)", (src, txn))
        conn.rollback()
        conn.autocommit = True
        expect_error(cur, "22023", "SELECT dci_await(%s, 'never-sent', 10)", (src,))


def test_dci_await_times_out_and_cancels(env, rx):
    src = _src(env, rx)                          # callbacks off: nothing comes
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        cur.execute("SELECT dci_await(%s, %s, 200)", (src, txn))
        assert cur.fetchone()[0] is None
        _wait(lambda: _txn(env, src, txn)[0] == "acked", "the ACK recorded")
        cur.execute("SET statement_timeout = 300")
        expect_error(cur, "57014", "SELECT dci_await(%s, %s, 60000)", (src, txn))


def test_subscribe_notify_unsubscribe(env, rx):
    _callbacks(env)
    src = _src(env, rx)
    listener = env.connect()
    try:
        listener.cursor().execute("LISTEN dci_client")
        with closing(env.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
            txn = cur.fetchone()[0]
        _wait(lambda: (_txn(env, src, txn) or [None])[0] == "completed", "on-subscribe")
        subs = env.query("SELECT u.code, u.state, u.reg_event_type, u.transaction_id FROM dci_subscription u "
                         "JOIN dci_data_source s ON s.id = u.source_id WHERE s.code = %s", (src,))
        assert len(subs) == 1 and subs[0][1:] == ("active", "REGISTER", txn), subs
        sub_code = subs[0][0]
        rec = env.mock._ctl("/callbacks/notify", {"uri": rx.url + src, "code": sub_code,
                                                   "receiver_id": "openspp.test"})
        assert rec["status"] == 200, rec
        rows = env.query("SELECT i.id, i.action FROM dci_inbox i JOIN dci_data_source s ON s.id = i.source_id "
                         "WHERE s.code = %s AND i.action = 'notify'", (src,))
        assert len(rows) == 1
        payloads = []

        def got():
            if select.select([listener], [], [], 0.2)[0]:
                listener.poll()
            while listener.notifies:
                payloads.append(json.loads(listener.notifies.pop(0).payload))
            return any(p["action"] == "notify" for p in payloads)
        _wait(got, "NOTIFY dci_client")
        n = [p for p in payloads if p["action"] == "notify"][0]
        assert n == {"source": src, "action": "notify", "transaction_id": n["transaction_id"], "inbox_id": rows[0][0]}
        assert any(p["action"] == "on-subscribe" and p["transaction_id"] == txn for p in payloads)

        with closing(env.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_unsubscribe(%s, %s)", (src, [sub_code]))
            utxn = cur.fetchone()[0]
        _wait(lambda: (_txn(env, src, utxn) or [None])[0] == "completed", "on-unsubscribe")
        assert env.query("SELECT u.state FROM dci_subscription u JOIN dci_data_source s ON s.id = u.source_id "
                         "WHERE s.code = %s", (src,)) == [("cancelled",)]
        # a notify for the cancelled code is refused, nothing stored
        rec = env.mock._ctl("/callbacks/notify", {"uri": rx.url + src, "code": sub_code,
                                                   "receiver_id": "openspp.test"})
        assert rec["status"] == 404 and rec["response"]["message"]["error"]["code"] == "err.subscription_code.invalid"
        assert _count(env, "dci_inbox", src) == 3      # on-subscribe, notify, on-unsubscribe
    finally:
        listener.close()


def test_txn_status_async_flow(env, rx):
    _callbacks(env)
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        search_txn = cur.fetchone()[0]
        cur.execute("SELECT dci_txn_status_async(%s, %s)", (src, search_txn))
        txn = cur.fetchone()[0]
        cur.execute("SELECT dci_await(%s, %s, 20000)", (src, txn))
        result = cur.fetchone()[0]
    st = env.mock.stats()
    assert st["requests"].get("/registry/txn/status") == 1
    body = json.loads(st["last_request"]["/registry/txn/status"]["body"])
    assert body["header"]["action"] == "txn-status"
    assert body["message"]["txnstatus_request"]["attribute_value"] == search_txn
    assert result["txn_status"] == "succ" and result["txn_type"] == "search", result
    assert _txn(env, src, txn)[3] == "txn-status"


def test_multi_part_answer_accumulates(env, rx):
    _callbacks(env, parts=2)
    src = _src(env, rx)
    q = {"type": "UIN", "value": "847951632"}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'expression', %s, NULL, 4)", (src, Json({"status": "any"})))
        txn = cur.fetchone()[0]
    row = _wait(lambda: (lambda r: r if r and r[2] == 2 else None)(_txn(env, src, txn)), "two parts")
    assert row[0] == "completed"
    assert len(row[1]["search_response"]) == 2
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_await(%s, %s, 1000)", (src, txn))
        res = cur.fetchone()[0]
    total = sum(len(i["data"]["reg_records"]) for i in row[1]["search_response"])
    assert len(res["data"]["reg_records"]) == total


def test_first_part_leaves_the_transaction_open(env, rx):
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        e = _envelope(txn=txn)
        e["header"].update(total_count=2, completed_count=1)
        assert _receive(cur, src, e)[0] == 200
        assert _txn(env, src, txn)[0] in ("sent", "acked")     # the ACK's record may come later
        cur.execute("SELECT dci_await(%s, %s, 50)", (src, txn))
        assert cur.fetchone()[0] is None
        e = _envelope(txn=txn)
        e["header"].update(total_count=2, completed_count=2)
        assert _receive(cur, src, e)[0] == 200
        assert _txn(env, src, txn)[0] == "completed"


# ---------------------------------------------------------------- refusals
def _refused(cur, env, src, body, status, code_, headers=None):
    before = (_count(env, "dci_inbox", src), env.query("SELECT coalesce(sum(callbacks), 0) FROM dci_transaction")[0][0])
    st, resp = _receive(cur, src, body, headers)
    assert (st, resp["message"]["ack_status"], resp["message"]["error"]["code"]) == (status, "ERR", code_), resp
    assert set(resp["message"]) >= {"ack_status", "timestamp", "correlation_id", "error"}
    after = (_count(env, "dci_inbox", src), env.query("SELECT coalesce(sum(callbacks), 0) FROM dci_transaction")[0][0])
    assert before == after, "a refused message stored something"
    return resp


def test_refusals_each_with_its_code(env, rx):
    src = _src(env, rx, receiver_id="crvs.example")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        ok = lambda **kw: _envelope(txn=txn, sender_id="crvs.example", **kw)
        _refused(cur, env, src, "{not json", 400, "err.request.bad")
        _refused(cur, env, src, "[" * 5000 + "]" * 5000, 400, "err.request.bad")
        _refused(cur, env, src, '{"a": "\\u0000"}', 400, "err.request.bad")
        _refused(cur, env, src, '[1, 2]', 400, "err.request.invalid")
        _refused(cur, env, src, {"header": {"action": "on-search"}, "message": {}}, 400, "err.request.invalid")
        _refused(cur, env, src, {"header": "x", "message": {}}, 400, "err.request.invalid")
        e = ok()
        e["header"]["message_id"] = 42
        _refused(cur, env, src, e, 400, "err.request.invalid")
        _refused(cur, env, src, ok(action="search"), 400, "err.action.not_supported")
        _refused(cur, env, src, _envelope(txn=txn, sender_id="someone.else"), 403, "err.sender_id.invalid")
        _refused(cur, env, src, _envelope(txn=txn), 403, "err.sender_id.invalid")
        _refused(cur, env, src, ok(receiver_id="not.us"), 403, "err.receiver_id.invalid")
        _refused(cur, env, src, ok(ts=_now_iso(-3600)), 400, "err.message_ts.expired")
        _refused(cur, env, src, ok(ts=_now_iso(3600)), 400, "err.message_ts.future")
        _refused(cur, env, src, ok(ts="yesterday-ish"), 400, "err.message_ts.invalid")
        for word in ("now", "-infinity", "infinity", "epoch", "2026-13-45T99:99:99Z"):
            _refused(cur, env, src, ok(ts=word), 400, "err.message_ts.invalid")
        _refused(cur, env, src, _envelope(txn="never-sent", sender_id="crvs.example"), 404, "err.transaction_id.invalid")
        # a transaction id of another kind of request is not one this source sent for that callback
        _refused(cur, env, src, ok(action="on-subscribe", message={"transaction_id": txn}), 404,
                 "err.transaction_id.invalid")
        _refused(cur, env, src, ok(action="notify", message={"transaction_id": "t", "subscription_code": "nope"}),
                 404, "err.subscription_code.invalid")
        _refused(cur, env, src, ok(action="notify", message={"transaction_id": "t"}), 404,
                 "err.subscription_code.invalid")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        big = ok()
        big["message"]["pad"] = "x" * (5 * 1024 * 1024)
        _refused(cur, env, src, big, 413, "err.request.too_large")
        # accepted once, then a replay
        e = ok()
        assert _receive(cur, src, e)[0] == 200
        _refused(cur, env, src, e, 409, "err.message_id.duplicate")
        # the caller's own mistakes raise
        expect_error(cur, "DC001", "SELECT * FROM dci_receive('no_such_source', '{}')")
        expect_error(cur, "22023", "SELECT * FROM dci_receive(%s, NULL)", (src,))
        expect_error(cur, "22023", "SELECT * FROM dci_receive(%s, '{}', '[1]')", (src,))
        # a source switched off takes nothing
        cur.execute("UPDATE dci_data_source SET active = false WHERE code = %s", (src,))
        _refused(cur, env, src, ok(), 503, "err.service.unavailable")


def test_callback_token(env, rx):
    src = _src(env, rx, callback_token="cb-token-Zq81")
    assert env.query("SELECT callback_token, callback_token_set, callback_token_encrypted IS NOT NULL "
                     "FROM dci_data_source WHERE code = %s", (src,)) == [(None, True, True)]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        _refused(cur, env, src, _envelope(txn=txn), 401, "err.request.unauthorized")
        _refused(cur, env, src, _envelope(txn=txn), 401, "err.request.unauthorized",
                 {"authorization": "Bearer wrong"})
        _refused(cur, env, src, _envelope(txn=txn), 401, "err.request.unauthorized",
                 {"authorization": "Bearer cb-token-Zq8"})
        st, resp = _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer cb-token-Zq81"})
        assert st == 200, resp
        assert env.query("SELECT verified FROM dci_inbox i JOIN dci_data_source s ON s.id = i.source_id "
                         "WHERE s.code = %s", (src,)) == [("token",)]
        # HMAC-SHA256 of the body keyed with the token instead of the token (kept out of the
        # statement text): valid for that body only
        body = json.dumps(_envelope(txn=txn))
        mac = hmac.new(b"cb-token-Zq81", body.encode(), hashlib.sha256).hexdigest()
        st, resp = _receive(cur, src, body, {"authorization": "Bearer hmac-sha256:" + mac})
        assert st == 200, resp
        other = json.dumps(_envelope(txn=txn))                       # another body, the same MAC
        _refused(cur, env, src, other, 401, "err.request.unauthorized",
                 {"authorization": "Bearer hmac-sha256:" + mac})
        _refused(cur, env, src, other, 401, "err.request.unauthorized",
                 {"authorization": "Bearer hmac-sha256:" + hmac.new(b"cb-token-Zq8", other.encode(),
                                                                      hashlib.sha256).hexdigest()})
        # the token's plain SHA-256 is no credential (it would be one wherever it is logged)
        _refused(cur, env, src, other, 401, "err.request.unauthorized",
                 {"authorization": "Bearer sha256:" + hashlib.sha256(b"cb-token-Zq81").hexdigest()})
        _refused(cur, env, src, other, 401, "err.request.unauthorized",
                 {"authorization": "Bearer hmac-sha256:" + "zz" * 32})
        # re-encryption reads it (under the current key already: left as is) and it still works
        cur.execute("SELECT public.dci_reencrypt_secrets()")
        st, resp = _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer cb-token-Zq81"})
        assert st == 200, resp
        # an UPDATE that moves base_url keeps it (it is never sent; test_attack_inbound.py), unlike the others
        cur.execute("UPDATE dci_data_source SET base_url = 'http://127.0.0.1:1' WHERE code = %s", (src,))
        assert env.query("SELECT callback_token_set, client_secret_set FROM dci_data_source WHERE code = %s",
                         (src,)) == [(True, False)]
        cur.execute("UPDATE dci_data_source SET callback_token = 'again-1234' WHERE code = %s", (src,))
        expect_error(cur, "23514", "UPDATE dci_data_source SET callback_token = 'a\nb' WHERE code = %s", (src,))
        cur.execute("SELECT dci_clear_secret(%s, 'callback_token')", (src,))
        assert env.query("SELECT callback_token_set FROM dci_data_source WHERE code = %s", (src,)) == [(False,)]
    # the full flow with the mock presenting the token
    _callbacks(env, token="cb-token-2")
    src2 = _src(env, rx, callback_token="cb-token-2")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src2, Json(UIN)))
        txn2 = cur.fetchone()[0]
    _wait(lambda: (_txn(env, src2, txn2) or [None])[0] == "completed", "on-search with token")


def test_unauthenticated_callbacks_warned_by_test_connection(env, rx):
    src = _src(env, rx)
    rows = env.query("SELECT step, ok, detail FROM dci_test_connection(%s)", (src,))
    warn = [r for r in rows if r[0] == "callbacks"]
    assert warn and warn[0][1] is None and "unauthenticated" in warn[0][2], rows
    src2 = _src(env, rx, callback_token="tok-abc-123")
    rows = env.query("SELECT step FROM dci_test_connection(%s)", (src2,))
    assert "callbacks" not in [r[0] for r in rows]


@pytest.mark.parametrize("fmt", ["dci", "jws"])
def test_signed_callbacks_verify_over_the_raw_bytes(env, rx, fmt):
    key = _pem("ed25519_public.pem" if fmt == "dci" else "rsa_public.pem")
    # held until the key is set: the mock's ACKs are not signed, and a source
    # with a registry key verifies its synchronous answers too
    _callbacks(env, sign="ed25519" if fmt == "dci" else "jws", hold=True)
    src = _src(env, rx, signature_format=fmt)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn2 = cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET registry_public_key = %s WHERE code = %s", (key, src))
    sent = env.mock._ctl("/callbacks/release", {})["sent"]
    assert [s["status"] for s in sent] == [200, 200], sent
    assert _txn(env, src, txn)[0] == "completed"
    assert env.query("SELECT verified FROM dci_inbox i JOIN dci_data_source s ON s.id = i.source_id "
                     "WHERE s.code = %s", (src,)) == [("signature",), ("signature",)]
    txn = txn2
    env.query("DELETE FROM dci_inbox")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        # unsigned: missing; tampered after signing: invalid
        _refused(cur, env, src, _envelope(txn=txn), 401, "err.signature.missing")
        if fmt == "dci":
            e = _envelope(txn=txn)
            e["signature"] = _sign_ed25519(e)
            raw = json.dumps(e, indent=2)           # not the canonical spelling: verified as sent
            assert raw != json.dumps(e, sort_keys=True, separators=(",", ":"))
            e2 = json.loads(raw)
            e2["message"]["search_response"] = [{"tampered": True}]
            _refused(cur, env, src, json.dumps(e2), 401, "err.signature.invalid")
            st, resp = _receive(cur, src, raw)
            assert st == 200, resp


def test_signed_body_key_order_and_spacing(env, rx):
    """The signature covers the bytes as received: a body whose key order and
    spacing differ from the canonical form verifies; the same content
    re-serialised by jsonb (a different text) still verifies for the DCI
    format because its digest is over the canonical form, and a changed value
    does not."""
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET registry_public_key = %s WHERE code = %s",
                    (_pem("ed25519_public.pem"), src))
        e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": [], "z": 1.0, "a": "é"})
        sig = _sign_ed25519(e)
        raw = '{ "message" : %s ,\n "signature": %s, "header":%s }' % (
            json.dumps(e["message"], ensure_ascii=False), json.dumps(sig), json.dumps(e["header"], indent=1))
        st, resp = _receive(cur, src, raw)
        assert st == 200, resp
        # 1.0 re-serialised by jsonb is 1.0; by Python's canonical form 1.0 too; but 1 is another number
        e["message"]["z"] = 1
        e["header"]["message_id"] = str(uuid.uuid4())
        raw2 = '{ "message" : %s , "signature": %s, "header":%s }' % (
            json.dumps(e["message"]), json.dumps(sig), json.dumps(e["header"]))
        _refused(cur, env, src, raw2, 401, "err.signature.invalid")
        # duplicate keys: the last one counts for the signature and for what is stored alike
        e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": [], "v": "signed"})
        sig = _sign_ed25519(e)
        m_other = json.dumps(dict(e["message"], v="smuggled"))
        raw3 = '{"header": %s, "message": %s, "message": %s, "signature": %s}' % (
            json.dumps(e["header"]), m_other, json.dumps(e["message"]), json.dumps(sig))
        assert _receive(cur, src, raw3)[0] == 200
        assert env.query("SELECT i.message->>'v' FROM dci_inbox i JOIN dci_data_source s ON s.id = i.source_id "
                         "WHERE s.code = %s AND i.message_id = %s", (src, e["header"]["message_id"])) == [("signed",)]
        e["header"]["message_id"] = str(uuid.uuid4())
        sig = _sign_ed25519(e)
        raw4 = '{"header": %s, "message": %s, "message": %s, "signature": %s}' % (
            json.dumps(e["header"]), json.dumps(e["message"]), m_other, json.dumps(sig))
        _refused(cur, env, src, raw4, 401, "err.signature.invalid")


# ---------------------------------------------------------------- rollback and ordering
@pytest.fixture
def outcome_spy(env):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("CREATE TABLE IF NOT EXISTS inbound_outcomes (at timestamptz DEFAULT now())")
        cur.execute("TRUNCATE inbound_outcomes")
        cur.execute("""CREATE OR REPLACE FUNCTION inbound_outcome_spy() RETURNS trigger LANGUAGE plpgsql
                       SET search_path = public AS $$
                       BEGIN
                           IF (SELECT backend_type FROM pg_stat_activity WHERE pid = pg_backend_pid())
                              = 'dci_client transaction writer' THEN
                               INSERT INTO inbound_outcomes DEFAULT VALUES;
                           END IF;
                           RETURN NULL;
                       END $$""")
        cur.execute("CREATE TRIGGER inbound_outcome_spy AFTER UPDATE ON dci_transaction "
                    "FOR EACH STATEMENT EXECUTE FUNCTION inbound_outcome_spy()")
    yield
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("DROP TRIGGER inbound_outcome_spy ON dci_transaction")
        cur.execute("DROP FUNCTION inbound_outcome_spy()")
        cur.execute("DROP TABLE inbound_outcomes")


def test_callback_before_the_sender_commits(env, rx, outcome_spy):
    _callbacks(env, before_ack=True)             # the registry answers before it even ACKs
    src = _src(env, rx)
    with closing(env.connect(autocommit=False)) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        # the sender has not committed; the callback was already accepted
        sent = _sent(env)
        assert sent and sent[0]["status"] == 200, sent
        row = _txn(env, src, txn)
        assert row[0] == "completed", row
        conn.commit()
    # the sender's later 'acked' did not overwrite what the callback set: wait
    # until the outcome writer's UPDATE ran (a statement trigger sees it even
    # when it matches no row), then look
    _wait(lambda: env.query("SELECT count(*) FROM inbound_outcomes")[0][0] > 0, "the outcome writer")
    assert _txn(env, src, txn)[0] == "completed"


def test_sender_rolls_back_after_sending(env, rx):
    _callbacks(env, delay=0.3)
    src = _src(env, rx)
    with closing(env.connect(autocommit=False)) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        conn.rollback()
    assert _txn(env, src, txn) is not None
    _wait(lambda: (_txn(env, src, txn) or [None])[0] == "completed", "callback after the rollback")


def test_reused_transaction_id_refused_before_sending(env, rx):
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        t = "txn-" + uuid.uuid4().hex
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s, options => %s)",
                    (src, Json(UIN), Json({"transaction_id": t})))
        n = env.mock.stats()["requests"].get("/registry/search", 0)
        expect_error(cur, "22023", "SELECT dci_search_async(%s, 'idtype-value', %s, options => %s)",
                     (src, Json(UIN), Json({"transaction_id": t})))
        assert env.mock.stats()["requests"].get("/registry/search", 0) == n


def test_failed_send_marks_the_transaction_failed(env, rx):
    src = _src(env, rx)
    env.mock.fault("/registry/search", "status", status=500, count=10)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        try:
            cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        except psycopg2.Error:
            pass
        else:
            raise AssertionError("the 500 did not fail the call")
    rows = _wait(lambda: env.query("SELECT t.state FROM dci_transaction t JOIN dci_data_source s ON s.id = t.source_id "
                                   "WHERE s.code = %s AND t.state = 'failed'", (src,)), "state failed")
    assert rows == [("failed",)]


def test_without_preload(env):
    """The autonomous write needs no shared_preload_libraries: same behaviour."""
    cl = env.nopreload_cluster()
    assert env.query("SHOW shared_preload_libraries", cluster=cl) == [("",)]
    _worker_role(cl)
    r = Receiver(cl)
    try:
        _callbacks(env, before_ack=True)
        src = _src(env, r, cluster=cl)
        with closing(cl.connect(autocommit=False)) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
            txn = cur.fetchone()[0]
            assert _txn(env, src, txn, cluster=cl)[0] == "completed"
            conn.rollback()
        assert _txn(env, src, txn, cluster=cl)[0] == "completed"
        _callbacks(env, before_ack=False, delay=0.2)
        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
            txn = cur.fetchone()[0]
            cur.execute("SELECT dci_await(%s, %s, 20000)", (src, txn))
            assert cur.fetchone()[0]["data"]["reg_records"]
    finally:
        r.close()


# ---------------------------------------------------------------- concurrency
def test_eight_sessions_thousand_callbacks(env, rx):
    """8 sessions receive 1,000 callbacks at once, a fifth of them replays of
    another: each message stored once, every answer 200 or 409, no error."""
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
    bodies = []
    for i in range(800):
        e = _envelope(txn=txn)
        e["header"].update(total_count=10 ** 6, completed_count=i)
        bodies.append(json.dumps(e))
    bodies += bodies[:200]                       # replays, racing their originals
    results, errors = [], []
    lock = threading.Lock()

    def run(k):
        conn = env.cluster.connect(user=WORKER_ROLE, autocommit=False)
        try:
            cur = conn.cursor()
            for b in bodies[k::8]:
                cur.execute("SELECT http_status FROM dci_receive(%s, %s, '{}')", (src, b))
                st = cur.fetchone()[0]
                conn.commit()
                with lock:
                    results.append(st)
        except Exception as e:                   # noqa: BLE001
            errors.append(e)
        finally:
            conn.close()
    ts = [threading.Thread(target=run, args=(k,)) for k in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert len(results) == 1000 and results.count(200) == 800 and results.count(409) == 200
    assert _count(env, "dci_inbox", src) == 800
    assert _txn(env, src, txn)[2] == 800


# ---------------------------------------------------------------- privileges
# ---------------------------------------------------------------- the persistent transaction writer
def _async(cur, src, txn=None):
    opts = Json({"transaction_id": txn}) if txn else None
    cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s, options => %s)", (src, Json(UIN), opts))
    return cur.fetchone()[0]


def _writer_pids(env, dbname="postgres"):
    return [r[0] for r in env.query(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'dci_client transaction writer' "
        "AND datname = %s", (dbname,))]


def _waiting_senders(env):
    """Sessions inside dci_search_async waiting for the writer (an extension wait)."""
    return env.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
                     "AND wait_event_type = 'Extension' AND query LIKE 'SELECT dci_search_async%%'")[0][0]


def _senders(env, src, txns):
    """One session per transaction id, each sending it; returns (threads,
    results): results[i] is ("ok", id) or ("error", SQLSTATE) for txns[i]."""
    results = {}

    def send(i, t):
        with closing(env.connect()) as conn:
            try:
                results[i] = ("ok", _async(conn.cursor(), src, t))
            except psycopg2.Error as e:
                results[i] = ("error", e.pgcode)
    threads = [threading.Thread(target=send, args=(i, t)) for i, t in enumerate(txns)]
    for th in threads:
        th.start()
    return threads, results


def test_many_concurrent_async_senders_recorded_once(env, rx):
    """8 sessions x 50 dci_search_async at once through the database's writer:
    every request sent once and its row recorded once, all 'acked'."""
    src = _src(env, rx)
    before = env.mock.stats()["requests"].get("/registry/search", 0)
    errors = []
    txns = []

    def session(k):
        try:
            with closing(env.connect()) as conn:
                cur = conn.cursor()
                for i in range(50):
                    txns.append(_async(cur, src, "many-%d-%d-%s" % (k, i, uuid.uuid4().hex[:8])))
        except Exception as e:              # noqa: BLE001 - reported below
            errors.append(repr(e))
    threads = [threading.Thread(target=session, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(set(txns)) == 400
    assert env.mock.stats()["requests"].get("/registry/search", 0) - before == 400
    rows = env.query("SELECT t.transaction_id, count(*) FROM dci_transaction t JOIN dci_data_source s "
                     "ON s.id = t.source_id WHERE s.code = %s GROUP BY 1", (src,))
    assert sorted(r[0] for r in rows) == sorted(txns) and all(r[1] == 1 for r in rows)
    _wait(lambda: env.query("SELECT count(*) FROM dci_transaction t JOIN dci_data_source s ON s.id = t.source_id "
                            "WHERE s.code = %s AND t.state = 'acked'", (src,))[0][0] == 400, "400 acked")
    # they went through the database's persistent writer
    assert _writer_pids(env)


def test_writer_terminated_while_senders_wait(env, rx):
    """The writer is terminated while senders wait for it (it is held on a
    table lock): each sender returns, with its row, or fails cleanly with
    DC001 and nothing sent; the next call works."""
    src = _src(env, rx)
    with closing(env.connect()) as warm:
        _async(warm.cursor(), src)               # the writer is up
    before = env.mock.stats()["requests"].get("/registry/search", 0)
    locker = env.connect(autocommit=False)
    try:
        locker.cursor().execute("LOCK TABLE dci_transaction IN SHARE MODE")   # holds every INSERT
        txns = ["kill-%d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(4)]
        threads, results = _senders(env, src, txns)
        _wait(lambda: _waiting_senders(env) == 4, "4 senders waiting")
        pids = _wait(lambda: [r[0] for r in env.query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'dci_client transaction writer' "
            "AND datname = 'postgres' AND wait_event_type = 'Lock'")], "the writer waiting for the lock")
        for pid in pids:
            assert env.query("SELECT pg_terminate_backend(%s)", (pid,)) == [(True,)]
        _wait(lambda: not [p for p in _writer_pids(env) if p in pids], "the writer gone")
    finally:
        locker.rollback()
        locker.close()
    for th in threads:
        th.join(60)
        assert not th.is_alive(), "a sender still waits"
    assert len(results) == len(txns)
    for i, (kind, value) in results.items():
        t = txns[i]
        row = _txn(env, src, t)
        if kind == "ok":
            assert value == t and row is not None
        else:
            assert value == "DC001" and row is None, results      # rolled back, nothing sent
    # what the terminated writer held failed; what was still queued went to a new writer
    assert any(v == ("error", "DC001") for v in results.values()), results
    ok = sum(1 for k, _ in results.values() if k == "ok")
    assert env.mock.stats()["requests"].get("/registry/search", 0) - before == ok
    with closing(env.connect()) as conn:
        t = _async(conn.cursor(), src)
    assert _txn(env, src, t) is not None


def test_reused_transaction_id_in_a_group_refuses_only_it(env, rx):
    """Requests written in one transaction by the writer: a transaction_id used
    before, and one given twice in the group, are refused (22023) alone; the
    others are recorded and sent."""
    src = _src(env, rx)
    used = "used-" + uuid.uuid4().hex
    twice = "twice-" + uuid.uuid4().hex
    with closing(env.connect()) as conn:
        _async(conn.cursor(), src, used)
    before = env.mock.stats()["requests"].get("/registry/search", 0)
    locker = env.connect(autocommit=False)
    try:
        locker.cursor().execute("LOCK TABLE dci_transaction IN SHARE MODE")
        first, r0 = _senders(env, src, ["grp-first-" + uuid.uuid4().hex])    # the writer takes it, waits
        _wait(lambda: _waiting_senders(env) == 1, "the first sender waiting")
        _wait(lambda: env.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = "
                                "'dci_client transaction writer' AND datname = 'postgres' "
                                "AND wait_event_type = 'Lock'")[0][0] == 1, "the writer holding the first")
        good = ["grp-%d-%s" % (i, uuid.uuid4().hex[:8]) for i in range(3)]
        threads, results = _senders(env, src, good + [used])
        twin, r2 = _senders(env, src, [twice, twice])
        _wait(lambda: _waiting_senders(env) == 7, "7 senders waiting")
    finally:
        locker.rollback()
        locker.close()
    for th in first + threads + twin:
        th.join(60)
    assert r0[0][0] == "ok"
    assert results[3] == ("error", "22023")
    for i, t in enumerate(good):
        assert results[i] == ("ok", t) and _txn(env, src, t) is not None
    assert sorted(r2.values()) == [("error", "22023"), ("ok", twice)]
    assert _count_txn(env, src, twice) == 1
    # one request for each recorded one (the first, the three good ones, one of the twins)
    assert env.mock.stats()["requests"].get("/registry/search", 0) - before == 5


def test_sender_cancelled_while_the_writer_holds_its_row(env, rx):
    """A sender cancelled while it waits for the writer: 57014, nothing sent;
    the row, written once the writer goes on, stays 'sent' at worst; the next
    call of that session works."""
    src = _src(env, rx)
    before = env.mock.stats()["requests"].get("/registry/search", 0)
    t = "cancel-" + uuid.uuid4().hex
    locker = env.connect(autocommit=False)
    try:
        locker.cursor().execute("LOCK TABLE dci_transaction IN SHARE MODE")
        conn = env.connect()
        pid = conn.get_backend_pid()
        result = {}

        def send():
            try:
                result["v"] = ("ok", _async(conn.cursor(), src, t))
            except psycopg2.Error as e:
                result["v"] = ("error", e.pgcode)
        th = threading.Thread(target=send)
        th.start()
        _wait(lambda: _waiting_senders(env) == 1, "the sender waiting")
        assert env.query("SELECT pg_cancel_backend(%s)", (pid,)) == [(True,)]
        th.join(30)
        assert result["v"] == ("error", "57014")
    finally:
        locker.rollback()
        locker.close()
    _wait(lambda: _count_txn(env, src, t) == 1, "the abandoned row written")
    assert _txn(env, src, t)[0] == "sent"
    assert env.mock.stats()["requests"].get("/registry/search", 0) == before
    t2 = _async(conn.cursor(), src)
    assert _txn(env, src, t2) is not None
    conn.close()


def test_writer_killed_crash_restart_then_calls_work(env):
    """SIGKILL of the writer makes the postmaster restart every process (shared
    memory initialised again): the next asynchronous calls are recorded."""
    import signal
    from support import harness
    cl = harness.Cluster().start(preload=True)
    try:
        with closing(cl.connect()) as conn:
            conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        src = code("inbcrash")
        env.add_source(src, cluster=cl, callback_uri="https://openspp.example.org/cb")
        with closing(cl.connect()) as conn:
            _async(conn.cursor(), src)
            cur = conn.cursor()
            cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'dci_client transaction writer'")
            pids = [r[0] for r in cur.fetchall()]
        assert pids
        os.kill(pids[0], signal.SIGKILL)

        def calls_again():
            try:
                with closing(cl.connect()) as conn:
                    return [_async(conn.cursor(), src) for _ in range(3)]
            except psycopg2.Error:
                return None                      # still restarting
        txns = _wait(calls_again, "calls after the crash restart")
        for t in txns:
            assert _txn(env, src, t, cluster=cl) is not None
    finally:
        cl.cleanup()


def _count_txn(env, src, txn):
    return env.query("SELECT count(*) FROM dci_transaction t JOIN dci_data_source s ON s.id = t.source_id "
                     "WHERE s.code = %s AND t.transaction_id = %s", (src, txn))[0][0]


def test_drop_database_after_its_writer_ran(env):
    """The writer of a database leaves when idle: DROP DATABASE right after an
    asynchronous call succeeds (it waits 5 s for other sessions, then fails)."""
    db = code("txnwdrop")
    admin = env.cluster.connect()
    admin.cursor().execute("CREATE DATABASE %s" % db)
    try:
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client CASCADE")
            src = code("txnwdrop")
            env.add_source(src, conn=conn, callback_uri="https://openspp.example.org/cb")
            _async(cur, src)
            cur.execute("SELECT count(*) FROM dci_transaction")
            assert cur.fetchone()[0] == 1
        assert _writer_pids(env, db)             # it ran, and is still there for a moment
        admin.cursor().execute("DROP DATABASE %s" % db)
        assert env.query("SELECT count(*) FROM pg_database WHERE datname = %s", (db,)) == [(0,)]
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        admin.close()


def test_worker_role_needs_only_execute(env, rx):
    src = _src(env, rx)
    with closing(env.cluster.connect(user=WORKER_ROLE)) as conn:
        cur = conn.cursor()
        expect_error(cur, "42501", "SELECT * FROM dci_inbox")
        expect_error(cur, "42501", "SELECT * FROM dci_transaction")
        expect_error(cur, "42501", "SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        st, resp = _receive(cur, src, "{}")
        assert st == 400


# ---------------------------------------------------------------- the README's controller
README_CONTROLLER = '''
import hashlib
import hmac
import json

from odoo import http
from odoo.http import request


class DciCallbacks(http.Controller):
    @http.route("/dci/callback/<string:source>", type="http", auth="none", methods=["POST"], csrf=False)
    def callback(self, source, **kw):
        raw = request.httprequest.get_data(cache=False)          # the exact bytes
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return request.make_response(json.dumps({"message": {"ack_status": "ERR", "error": {
                "code": "err.request.bad", "message": "the body is not UTF-8"}}}), status=400,
                headers=[("Content-Type", "application/json")])
        headers = {k.lower(): v for k, v in request.httprequest.headers.items()}
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":                       # an HMAC of the body: the token stays out of the SQL text
            headers["authorization"] = "Bearer hmac-sha256:" + hmac.new(auth[7:].lstrip(" ").encode(), raw,
                                                                          hashlib.sha256).hexdigest()
        cr = request.env.cr
        cr.execute("SELECT http_status, response FROM dci_receive(%s, %s, %s)",
                   (source, body, json.dumps(headers)))
        status, response = cr.fetchone()
        cr.commit()                                             # stored, and NOTIFY delivered
        return request.make_response(json.dumps(response), status=status,
                                     headers=[("Content-Type", "application/json")])
'''


def test_readme_controller(env, rx):
    """The README's Odoo controller, run as written against a stand-in for
    odoo.http whose request carries the raw body, the headers and a real
    cursor of the HTTP workers' role."""
    import sys, types
    with open(os.path.join(os.path.dirname(HERE), "README.md")) as f:
        assert README_CONTROLLER.strip() in f.read(), "the README's controller changed: update this copy"
    src = _src(env, rx, callback_token="readme-cb-token-1")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
    body = json.dumps(_envelope(txn=txn)).encode()
    seen = []
    conn = env.cluster.connect(user=WORKER_ROLE, autocommit=False)
    made = {}

    class HttpRequest:
        headers = {"Content-Type": "application/json", "Authorization": "Bearer readme-cb-token-1"}

        def get_data(self, cache=True):
            return body

    class Cr:                                    # Odoo's cursor: execute, fetchone, commit
        def __init__(self):
            self.cur = conn.cursor()
            self.fetchone, self.commit = self.cur.fetchone, conn.commit

        def execute(self, sql, params):
            seen.append(self.cur.mogrify(sql, params).decode())
            return self.cur.execute(sql, params)

    request = types.SimpleNamespace(httprequest=HttpRequest(), env=types.SimpleNamespace(cr=Cr()),
                                    make_response=lambda data, status=200, headers=(): made.update(
                                        data=data, status=status) or made)
    http = types.ModuleType("odoo.http")
    http.Controller = object
    http.route = lambda *a, **kw: (lambda f: f)
    http.request = request
    odoo = types.ModuleType("odoo")
    odoo.http = http
    saved = {k: sys.modules.get(k) for k in ("odoo", "odoo.http")}
    sys.modules.update({"odoo": odoo, "odoo.http": http})
    try:
        ns = {}
        exec(README_CONTROLLER, ns)
        ns["DciCallbacks"]().callback(src)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
        conn.close()
    assert made["status"] == 200 and json.loads(made["data"])["message"]["ack_status"] == "ACK", made
    assert _txn(env, src, txn)[0] == "completed"
    assert seen and not any("readme-cb-token-1" in q for q in seen), "the token is in the statement text"


def test_replay_race_under_repeatable_read(env, rx):
    """Odoo's cursors are REPEATABLE READ: a twin that raced the original gets
    40001 (Odoo retries the request, and the retry is refused as a replay),
    never a second row."""
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
    body = json.dumps(_envelope(txn=txn))
    a = env.cluster.connect(user=WORKER_ROLE, autocommit=False)
    b = env.cluster.connect(user=WORKER_ROLE, autocommit=False)
    try:
        for c in (a, b):
            c.set_session(isolation_level="REPEATABLE READ")
        ca, cb = a.cursor(), b.cursor()
        cb.execute("SELECT 1")                   # b's snapshot, before a commits
        assert _receive(ca, src, body)[0] == 200
        out = {}

        def twin():
            try:
                out["status"] = _receive(cb, src, body)[0]
            except psycopg2.Error as e:
                out["pgcode"] = e.pgcode
        t = threading.Thread(target=twin)
        t.start()
        time.sleep(0.2)
        a.commit()
        t.join(30)
        b.rollback()
        assert out in ({"pgcode": "40001"}, {"status": 409}), out
        cb.execute("SELECT 1")
        assert _receive(cb, src, body)[0] == 409          # Odoo's retry
        b.commit()
    finally:
        a.close()
        b.close()
    assert _count(env, "dci_inbox", src) == 1


def test_hostile_bodies_never_raise(env, rx):
    """Wrong types and shapes anywhere in an envelope are answered, never
    raised, by the HTTP workers' role."""
    src = _src(env, rx)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        sub_txn = cur.fetchone()[0]
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
    cases = []
    for action, t in (("on-search", txn), ("on-subscribe", sub_txn)):
        for msg in ({"transaction_id": {"x": 1}}, {"transaction_id": t, "search_response": "str"},
                    {"transaction_id": t, "subscribe_response": [1, "x", None, {"subscriptions": "no"}]},
                    {"transaction_id": t, "subscribe_response": [{"subscriptions": [1, {"code": 5}, {"code": ""},
                                                                                    {"code": "x" * 500}]}]},
                    {"transaction_id": t, "search_response": [{"data": {"reg_records": 7}}]}):
            e = _envelope(action=action, message=msg)
            e["header"].update(total_count="abc", completed_count=10 ** 30)
            cases.append(json.dumps(e))
    for msg in ({"subscription_code": 5}, {"notify_event": {"a": 1}}, {"notify_event": [1, None]},
                {"subscription_code": None, "notify_event": [{"subscription_code": ["x"]}]}):
        cases.append(json.dumps(_envelope(action="notify", message=msg)))
    e = _envelope(txn=txn)
    e["header"]["message_id"] = "x" * 129
    cases.append(json.dumps(e))
    cases.append('{"header": {"message_id": "1", "message_ts": "%s", "action": "on-search"}, "message": []}' % _now_iso())
    cases.append('{"header": {"message_id": "2", "message_ts": "%s", "action": "on-search"}, "message": {}, '
                 '"header": 1}' % _now_iso())
    cases.append('{"a": 1e999999999}')
    cases.append('{"a": "\\ud800"}')
    cases.append("\t \n")
    with closing(env.cluster.connect(user=WORKER_ROLE)) as conn:
        cur = conn.cursor()
        for body in cases:
            for hdrs in ({}, {"authorization": ["Bearer", "x"]}, {"authorization": "Bearer " + "y" * 100000}):
                st, resp = _receive(cur, src, body, hdrs)
                assert 200 <= st < 600 and resp["message"]["ack_status"] in ("ACK", "ERR"), (body, st, resp)
    # what was accepted left the subscription table sane: no empty or oversized code
    assert env.query("SELECT count(*) FROM dci_subscription WHERE code = '' OR length(code) > 128") == [(0,)]


def test_callback_token_key_rotation(env):
    """dci_reencrypt_secrets() rewrites callback_token under a new key like the
    other secrets; callbacks authenticate with it after the old key is gone;
    a replay is still refused after a crash restart."""
    import pwd
    from support import harness
    cl = harness.Cluster().start(preload=True)
    try:
        with closing(cl.connect()) as conn:
            conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        _worker_role(cl)
        src = code("inbrot")
        env.add_source(src, cluster=cl, auth_type="none", auth_url=None, client_id=None, client_secret=None,
                       callback_uri="https://openspp.example.org/cb", callback_token="rotating-cb-token")
        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT callback_token_encrypted FROM dci_data_source WHERE code = %s", (src,))
            old_ct = bytes(cur.fetchone()[0])
            cur.execute("INSERT INTO dci_transaction (source_id, transaction_id, action, message_id, endpoint) "
                        "SELECT id, 'rot-txn', 'search', 'm', '/registry/search' FROM dci_data_source "
                        "WHERE code = %s", (src,))
            path = os.path.join(cl.datadir, "dci_client_new.key")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(32))
            pw = pwd.getpwnam(harness.PG_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)
            cur.execute("ALTER SYSTEM SET dci_client.key_file = 'dci_client_new.key'")
            cur.execute("ALTER SYSTEM SET dci_client.retired_key_files = 'dci_client.key'")
            cur.execute("SELECT pg_reload_conf()")
            time.sleep(0.4)
        with closing(cl.connect()) as conn:      # a session that has read the new settings
            cur = conn.cursor()
            cur.execute("SELECT public.dci_reencrypt_secrets()")
            assert cur.fetchone()[0] == 1
            cur.execute("SELECT callback_token_encrypted FROM dci_data_source WHERE code = %s", (src,))
            assert bytes(cur.fetchone()[0]) != old_ct
            cur.execute("ALTER SYSTEM RESET dci_client.retired_key_files")
            cur.execute("SELECT pg_reload_conf()")
            time.sleep(0.4)
        with closing(cl.connect(user=WORKER_ROLE)) as conn:
            cur = conn.cursor()
            assert _receive(cur, src, _envelope(txn="rot-txn"), {"authorization": "Bearer wrong"})[0] == 401
            replayed = _envelope(txn="rot-txn")
            st, resp = _receive(cur, src, replayed, {"authorization": "Bearer rotating-cb-token"})
            assert st == 200, resp
        # the replay record survives a restart (an immediate one: no checkpoint first)
        cl.restart(mode="immediate")
        with closing(cl.connect(user=WORKER_ROLE)) as conn:
            cur = conn.cursor()
            st, resp = _receive(cur, src, replayed, {"authorization": "Bearer rotating-cb-token"})
            assert (st, resp["message"]["error"]["code"]) == (409, "err.message_id.duplicate"), resp
    finally:
        cl.cleanup()


def test_callbacks_verified_through_the_jwks_and_its_rotation(env, rx):
    """A source with registry_jwks_url: callbacks verify with the key their
    signature names; the registry rotating to a new kid is picked up without
    a restart; a callback signed with a key the set lacks is refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    def pem():
        return ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    k1, k2, stranger = pem(), pem(), pem()
    env.mock._ctl("/jwks", {"keys": [{"kid": "reg|k1|ed25519", "private_pem": k1}], "sign_pem": k1,
                            "sign_kid": "reg|k1|ed25519"})
    _callbacks(env, sign="jwks", hold=True)
    # the kids name the registry as its callbacks' header.sender_id does
    src = _src(env, rx, receiver_id="reg")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        txns = []
        for _ in range(3):
            cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
            txns.append(cur.fetchone()[0])
        # the key set from now on (the mock's ACKs are not signed)
        cur.execute("UPDATE dci_data_source SET registry_jwks_url = %s WHERE code = %s",
                    (env.mock.http_url + "/jwks.json", src))
    sent = env.mock._ctl("/callbacks/release", {})["sent"]
    assert [s["status"] for s in sent] == [200, 200, 200], sent
    assert _txn(env, src, txns[0])[0] == "completed"
    # rotation: only k2 published and signing
    env.mock._ctl("/jwks", {"keys": [{"kid": "reg|k2|ed25519", "private_pem": k2}], "sign_pem": k2,
                            "sign_kid": "reg|k2|ed25519"})
    env.query("DELETE FROM dci_inbox")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("UPDATE dci_data_source SET registry_jwks_url = NULL WHERE code = %s", (src,))
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        t3 = cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET registry_jwks_url = %s WHERE code = %s",
                    (env.mock.http_url + "/jwks.json", src))
    sent = env.mock._ctl("/callbacks/release", {})["sent"]
    assert [s["status"] for s in sent] == [200], sent
    assert _txn(env, src, t3)[0] == "completed"
    assert env.query("SELECT verified FROM dci_inbox i JOIN dci_data_source s ON s.id = i.source_id "
                     "WHERE s.code = %s", (src,)) == [("signature",)]
    # signed by a key the set does not hold: refused, nothing stored
    env.mock._ctl("/jwks", {"sign_pem": stranger, "sign_kid": "reg|k9|ed25519"})
    before = _count(env, "dci_inbox", src)
    body = env.mock._ctl("/callbacks/notify", {"uri": rx.url + src, "code": "none", "sender_id": "reg",
                                                 "receiver_id": "openspp.test"})
    assert _count(env, "dci_inbox", src) == before
    assert body["status"] == 401 and body["response"]["message"]["error"]["code"] == "err.signature.invalid", body
