"""Attacks on the inbound half of DCI (README "Callbacks and notifications"):
what a hostile registry, a holder of the callback token, or a role with only
EXECUTE on dci_receive could make dci_receive, dci_await or the transaction
writer do.  Helpers of test/test_inbound.py."""
import json
from contextlib import closing

from psycopg2.extras import Json

from support.env import expect_error
from test_inbound import UIN, WORKER_ROLE, _count, _envelope, _now_iso, _receive, _src, _txn, _worker_role


def _search_async(env, src):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        return cur.fetchone()[0]


def _records(n, tag):
    return [{"data": {"reg_records": [{"id": "%s-%d" % (tag, i)} for i in range(n)]}}]


# ---------------------------------------------------------------- a transaction once completed
def test_callback_after_completion_changes_nothing(env):
    """A completed transaction is settled: a later callback with a fresh
    message_id (a registry's retry, or a hostile one) is acknowledged and kept
    in dci_inbox, but appends no records, overwrites no transaction status
    answer and leaves the callback count as it was."""
    src = _src(env, None)
    txn = _search_async(env, src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        st, resp = _receive(cur, src, _envelope(txn=txn, message={"transaction_id": txn,
                                                                   "search_response": _records(1, "a")}))
        assert st == 200, resp
        before = _txn(env, src, txn)
        assert before[0] == "completed"
        inbox = _count(env, "dci_inbox", src)
        st, resp = _receive(cur, src, _envelope(txn=txn, message={"transaction_id": txn,
                                                                   "search_response": _records(1, "forged")}))
        assert st == 200, resp
        assert _txn(env, src, txn) == before
        assert _count(env, "dci_inbox", src) == inbox + 1
        cur.execute("SELECT dci_await(%s, %s, 0)", (src, txn))
        assert [r["id"] for r in cur.fetchone()[0]["data"]["reg_records"]] == ["a-0"]
        # a transaction status answer is not overwritten either
        cur.execute("SELECT dci_txn_status_async(%s, %s)", (src, txn))
        st_txn = cur.fetchone()[0]
        ok = {"transaction_id": st_txn, "txnstatus_response": {"txn_type": "search", "txn_status": "succ"}}
        assert _receive(cur, src, _envelope(action="txn-on-status", message=ok))[0] == 200
        forged = {"transaction_id": st_txn, "txnstatus_response": {"txn_type": "search", "txn_status": "rjct"}}
        assert _receive(cur, src, _envelope(action="txn-on-status", message=forged))[0] == 200
        cur.execute("SELECT dci_await(%s, %s, 0)", (src, st_txn))
        assert cur.fetchone()[0]["txn_status"] == "succ"


def test_rejected_transaction_stays_rejected(env):
    """A header status rjct ends the transaction failed; a later callback does
    not turn it completed."""
    src = _src(env, None)
    txn = _search_async(env, src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        e = _envelope(txn=txn)
        e["header"]["status"] = "rjct"
        assert _receive(cur, src, e)[0] == 200
        assert _txn(env, src, txn)[0] == "failed"
        st, resp = _receive(cur, src, _envelope(txn=txn, message={"transaction_id": txn,
                                                                   "search_response": _records(1, "late")}))
        assert st == 200, resp
        assert _txn(env, src, txn)[0] == "failed"
        cur.execute("SELECT dci_await(%s, %s, 0)", (src, txn))
        assert "late" not in json.dumps(cur.fetchone()[0])


def _sub_state(env, src, code_):
    rows = env.query("SELECT b.state FROM dci_subscription b JOIN dci_data_source s ON s.id = b.source_id "
                     "WHERE s.code = %s AND b.code = %s", (src, code_))
    return rows[0][0] if rows else None


def test_old_subscribe_transaction_cannot_revive_a_cancelled_code(env):
    """Once on-subscribe settled a subscribe transaction and the code was
    cancelled, another on-subscribe for that old transaction does not make
    the code active again (notifications for it stay refused)."""
    src = _src(env, None)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        sub = cur.fetchone()[0]
        granted = {"transaction_id": sub, "subscribe_response": [
            {"status": "succ", "subscriptions": [{"code": "SUB-1", "status": "subscribe"}]}]}
        assert _receive(cur, src, _envelope(action="on-subscribe", message=granted))[0] == 200
        assert _sub_state(env, src, "SUB-1") == "active"
        cur.execute("SELECT dci_unsubscribe(%s, ARRAY['SUB-1'])", (src,))
        uns = cur.fetchone()[0]
        gone = {"transaction_id": uns, "subscription_status": [{"code": "SUB-1", "status": "unsubscribe"}]}
        assert _receive(cur, src, _envelope(action="on-unsubscribe", message=gone))[0] == 200
        assert _sub_state(env, src, "SUB-1") == "cancelled"
        assert _receive(cur, src, _envelope(action="on-subscribe", message=granted))[0] == 200
        assert _sub_state(env, src, "SUB-1") == "cancelled"
        late = _envelope(action="on-subscribe", message=granted)          # "a late part" of the old answer
        late["header"].update(total_count=2, completed_count=1)
        assert _receive(cur, src, late)[0] == 200
        assert _sub_state(env, src, "SUB-1") == "cancelled"
        st, resp = _receive(cur, src, _envelope(action="notify", message={"subscription_code": "SUB-1"}))
        assert (st, resp["message"]["error"]["code"]) == (404, "err.subscription_code.invalid"), resp
        # a new subscribe that the registry answers with the same code revives it
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        again = cur.fetchone()[0]
        assert _receive(cur, src, _envelope(action="on-subscribe", message=dict(granted, transaction_id=again)))[0] == 200
        assert _sub_state(env, src, "SUB-1") == "active"


def test_parts_out_of_order_all_kept(env):
    """Parts may arrive out of order: the last part first ends the
    transaction, an earlier part arriving after it is still appended (but a
    second full answer is not, see above)."""
    src = _src(env, None)
    txn = _search_async(env, src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for done in (3, 1, 2):
            e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": _records(1, "p%d" % done)})
            e["header"].update(total_count=3, completed_count=done)
            assert _receive(cur, src, e)[0] == 200
        row = _txn(env, src, txn)
        assert row[0] == "completed" and row[2] == 3
        cur.execute("SELECT dci_await(%s, %s, 0)", (src, txn))
        assert sorted(r["id"] for r in cur.fetchone()[0]["data"]["reg_records"]) == ["p1-0", "p2-0", "p3-0"]


def test_multi_part_answer_is_bounded(env):
    """A registry that never ends a multi-part answer cannot grow the
    transaction's response without bound: past dci_client.max_response_bytes
    a part is refused (413), answered, not raised, and the parts before stay."""
    src = _src(env, None)
    txn = _search_async(env, src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_response_bytes = 20000")
        accepted = 0
        last = None
        for i in range(40):
            e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": _records(40, "p%d" % i)})
            e["header"].update(total_count=10 ** 6, completed_count=i + 1)
            st, resp = _receive(cur, src, e)
            if st != 200:
                last = (st, resp["message"]["error"]["code"])
                break
            accepted += 1
        assert last == (413, "err.request.too_large"), (accepted, last)
        assert 1 <= accepted < 40
        row = _txn(env, src, txn)
        assert row[2] == accepted and len(row[1]["search_response"]) == accepted
        assert env.query("SELECT pg_column_size(response) FROM dci_transaction t JOIN dci_data_source s "
                         "ON s.id = t.source_id WHERE s.code = %s AND t.transaction_id = %s",
                         (src, txn))[0][0] <= 20000


# ---------------------------------------------------------------- replays
def test_replay_refused_after_the_retention_purge_while_still_fresh(env):
    """The inbox is the replay record: with the widest freshness window the
    settings allow (callback_max_age_s 1 day, callback_clock_skew_s 1 hour)
    and the shortest retention (1 day), a message received with a message_ts
    an hour ahead is still fresh a day later; the purge must not forget it
    before then, or the same message is accepted twice."""
    env.cluster.set_conf({"dci_client.callback_max_age_s": "86400", "dci_client.callback_clock_skew_s": "3600",
                          "dci_client.inbox_retention_days": "1"})
    try:
        src = _src(env, None)
        txn, other = _search_async(env, src), _search_async(env, src)
        body = json.dumps(_envelope(txn=txn, ts=_now_iso(-86400 + 120)))
        with closing(env.connect()) as conn:
            assert _receive(conn.cursor(), src, body)[0] == 200
        # as if received a day and a minute ago, when its message_ts was 59 minutes ahead
        env.query("UPDATE dci_inbox SET received_at = now() - interval '1 day 1 minute' "
                  "WHERE message_id = %s", (json.loads(body)["header"]["message_id"],))
        with closing(env.connect()) as conn:            # a fresh backend: its first message purges
            cur = conn.cursor()
            assert _receive(cur, src, _envelope(txn=other))[0] == 200
            st, resp = _receive(cur, src, body)
            assert (st, resp["message"]["error"]["code"]) == (409, "err.message_id.duplicate"), resp
    finally:
        env.cluster.set_conf({"dci_client.callback_max_age_s": "300", "dci_client.callback_clock_skew_s": "30",
                              "dci_client.inbox_retention_days": "30"})


# ---------------------------------------------------------------- shapes a hostile registry sends
def test_answer_lists_not_arrays_of_objects_refused(env):
    """An on-search whose search_response is not an array of objects (a
    string, a number, an object, an array holding scalars or arrays) is
    refused at the door with err.request.invalid and nothing stored: stored,
    it made dci_await of the transaction raise jsonb's own errors ("cannot get
    array length of a scalar", 22P02).  Likewise subscribe_response and
    subscription_status.  A well-formed answer is then still accepted."""
    from test_inbound import _refused
    src = _src(env, None)
    txn = _search_async(env, src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        sub = cur.fetchone()[0]
        for bad in ("str", 7, None, {"a": 1}, [1], ["x", {"data": 1}], [[]], [{"data": {}}, None]):
            for parts in (1, 2):
                e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": bad})
                e["header"].update(total_count=2, completed_count=parts)
                _refused(cur, env, src, e, 400, "err.request.invalid")
            _refused(cur, env, src, _envelope(action="on-subscribe", message={
                "transaction_id": sub, "subscribe_response": bad}), 400, "err.request.invalid")
        assert _txn(env, src, txn)[2] == 0
        for p in (1, 2):
            e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": _records(1, "r%d" % p)})
            e["header"].update(total_count=2, completed_count=p)
            assert _receive(cur, src, e)[0] == 200
        cur.execute("SELECT dci_await(%s, %s, 0)", (src, txn))
        assert [r["id"] for r in cur.fetchone()[0]["data"]["reg_records"]] == ["r1-0", "r2-0"]


def test_rejected_subscribe_or_unsubscribe_changes_no_subscription(env):
    """A header status rjct is the registry refusing the whole request: an
    on-subscribe so marked activates no code it lists, an on-unsubscribe so
    marked cancels none (the registry keeps notifying them)."""
    src = _src(env, None)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        sub = cur.fetchone()[0]
        e = _envelope(action="on-subscribe", message={"transaction_id": sub, "subscribe_response": [
            {"subscriptions": [{"code": "RJ-1", "status": "subscribe"}]}]})
        e["header"]["status"] = "rjct"
        assert _receive(cur, src, e)[0] == 200
        assert _txn(env, src, sub)[0] == "failed"
        assert _sub_state(env, src, "RJ-1") is None
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        sub2 = cur.fetchone()[0]
        ok = {"transaction_id": sub2, "subscribe_response": [{"subscriptions": [{"code": "RJ-2", "status": "subscribe"}]}]}
        assert _receive(cur, src, _envelope(action="on-subscribe", message=ok))[0] == 200
        cur.execute("SELECT dci_unsubscribe(%s, ARRAY['RJ-2'])", (src,))
        uns = cur.fetchone()[0]
        e = _envelope(action="on-unsubscribe", message={"transaction_id": uns, "subscription_status": [
            {"code": "RJ-2", "status": "unsubscribe"}]})
        e["header"]["status"] = "rjct"
        assert _receive(cur, src, e)[0] == 200
        assert _sub_state(env, src, "RJ-2") == "active"


def test_notify_payload_never_too_long(env):
    """NOTIFY payloads are limited to 8000 bytes: a source whose code is that
    long (the unique index compresses it) still has its callbacks answered,
    not raised; the payload names the source by its code when it fits."""
    import select
    src = "l" + "x" * 8100
    env.add_source(src, callback_uri="https://openspp.example.org/cb")
    try:
        txn = _search_async(env, src)
        with closing(env.connect()) as listener, closing(env.connect()) as conn:
            listener.cursor().execute("LISTEN dci_client")
            st, resp = _receive(conn.cursor(), src, _envelope(txn=txn))
            assert st == 200, resp
            assert _txn(env, src, txn)[0] == "completed"
            select.select([listener], [], [], 5)
            listener.poll()
            payloads = [json.loads(n.payload) for n in listener.notifies]
            assert len(payloads) == 1 and payloads[0]["transaction_id"] == txn
            assert payloads[0]["source"] is None
            assert payloads[0]["source_id"] == env.query("SELECT id FROM dci_data_source WHERE code = %s", (src,))[0][0]
            assert len(listener.notifies[0].payload.encode()) < 8000
    finally:
        env.query("DELETE FROM dci_data_source WHERE code = %s", (src,))


# ---------------------------------------------------------------- background worker slots
def test_no_worker_slot_refuses_before_sending(env):
    """With every background worker slot taken (max_worker_processes 1, held
    by the logical replication launcher) an asynchronous call waits, then
    refuses with 53400 before anything is sent and leaves no row; a cancel
    ends the wait at once (57014)."""
    import threading
    from support import harness
    cl = harness.Cluster().start(preload=False, conf={"max_worker_processes": "1"})
    try:
        with closing(cl.connect()) as conn:
            conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        src = _src(env, None, cluster=cl)
        before = env.mock.stats()["requests"].get("/registry/search", 0)
        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            expect_error(cur, "53400", "SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            t = threading.Timer(0.5, lambda: cl.connect().cursor().execute("SELECT pg_cancel_backend(%s)", (pid,)))
            t.start()
            # 57014, not 53400: the cancel ended the wait, which would have ended in 53400
            expect_error(cur, "57014", "SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
            t.join()
        assert env.mock.stats()["requests"].get("/registry/search", 0) == before
        assert env.query("SELECT count(*) FROM dci_transaction", cluster=cl) == [(0,)]
    finally:
        cl.cleanup()


# ---------------------------------------------------------------- pg_dump / pg_restore
def test_dump_restore_keeps_the_replay_record_and_the_token(env):
    """pg_dump of a database that received callbacks carries the inbox (a
    replay stays refused in the restored database), the transactions (their
    callbacks are still recognised) and the callback token (ciphertext only:
    the token is in no byte of the dump); the identity sequences continue."""
    import os, tempfile
    from test_operations import _Database, _pg
    token = "cb-dump-token-Qw7e"
    with tempfile.TemporaryDirectory() as tmp, _Database(env.cluster, "inb_src") as src_db, \
            _Database(env.cluster, "inb_dst", extension=False) as dst_db:
        with closing(src_db.connect()) as conn:
            env.add_source("crvs", conn=conn, callback_token=token, callback_uri="https://openspp.example.org/cb")
            cur = conn.cursor()
            cur.execute("SELECT dci_search_async('crvs', 'idtype-value', %s)", (Json(UIN),))
            t1 = cur.fetchone()[0]
            cur.execute("SELECT dci_search_async('crvs', 'idtype-value', %s)", (Json(UIN),))
            t2 = cur.fetchone()[0]
            seen = json.dumps(_envelope(txn=t1))
            assert _receive(cur, "crvs", seen, {"authorization": "Bearer " + token})[0] == 200
        dump = os.path.join(tmp, "db.dump")
        _pg(env.cluster, "pg_dump", "-Fc", "-f", dump, src_db.name)
        assert token.encode() not in open(dump, "rb").read()
        _pg(env.cluster, "pg_restore", "--exit-on-error", "-d", dst_db.name, dump)
        with closing(dst_db.connect()) as conn:
            cur = conn.cursor()
            auth = {"authorization": "Bearer " + token}
            st, resp = _receive(cur, "crvs", seen, auth)
            assert (st, resp["message"]["error"]["code"]) == (409, "err.message_id.duplicate"), resp
            assert _receive(cur, "crvs", _envelope(txn=t2), {"authorization": "Bearer wrong"})[0] == 401
            assert _receive(cur, "crvs", _envelope(txn=t2), auth)[0] == 200
            cur.execute("SELECT dci_search_async('crvs', 'idtype-value', %s)", (Json(UIN),))
            cur.execute("SELECT count(DISTINCT id), count(*) FROM dci_transaction")
            assert cur.fetchone() == (3, 3)
            cur.execute("SELECT count(DISTINCT id), count(*) FROM dci_inbox")
            assert cur.fetchone() == (2, 2)


def test_upgrade_from_0_1_then_receive(env):
    """A database created at 0.1 and updated to 0.2: a source made at 0.1
    gets a callback token, sends asynchronously and receives its callback;
    nothing of the inbound tables is readable by PUBLIC."""
    from test_operations import _Database
    with _Database(env.cluster, "inb_upg", extension=False) as db:
        db.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
        with closing(db.connect()) as conn:
            env.add_source("crvs", conn=conn, callback_uri="https://openspp.example.org/cb")
        db.execute("ALTER EXTENSION dci_client UPDATE")
        with closing(db.connect()) as conn:
            cur = conn.cursor()
            cur.execute("UPDATE dci_data_source SET callback_token = 'upg-token-1' WHERE code = 'crvs'")
            cur.execute("SELECT dci_search_async('crvs', 'idtype-value', %s)", (Json(UIN),))
            txn = cur.fetchone()[0]
            assert _receive(cur, "crvs", _envelope(txn=txn))[0] == 401
            assert _receive(cur, "crvs", _envelope(txn=txn), {"authorization": "Bearer upg-token-1"})[0] == 200
            cur.execute("SELECT state FROM dci_transaction WHERE transaction_id = %s", (txn,))
            assert cur.fetchone() == ("completed",)
            cur.execute("SELECT c.relname FROM pg_class c WHERE c.relname IN ('dci_transaction', 'dci_subscription', "
                        "'dci_inbox') AND (has_table_privilege('public', c.oid, 'SELECT') "
                        "OR has_table_privilege('public', c.oid, 'INSERT'))")
            assert cur.fetchall() == []


def test_eight_sessions_racing_one_transactions_parts(env):
    """40 parts of one answer delivered by 8 sessions at once: every part
    accepted once and kept, the count exact, the transaction completed."""
    import threading
    src = _src(env, None)
    txn = _search_async(env, src)
    bodies = []
    for done in range(1, 41):
        e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": _records(1, "q%d" % done)})
        e["header"].update(total_count=40, completed_count=done)
        bodies.append(json.dumps(e))
    statuses, errors = [], []

    def run(chunk):
        try:
            with closing(env.connect()) as conn:
                cur = conn.cursor()
                for b in chunk:
                    statuses.append(_receive(cur, src, b)[0])
        except Exception as ex:                 # noqa: BLE001 -- reported below
            errors.append(ex)
    threads = [threading.Thread(target=run, args=(bodies[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and statuses == [200] * 40, (errors, statuses)
    row = _txn(env, src, txn)
    assert row[0] == "completed" and row[2] == 40
    assert sorted(i["data"]["reg_records"][0]["id"] for i in row[1]["search_response"]) == \
        sorted("q%d-0" % d for d in range(1, 41))


# ---------------------------------------------------------------- one source's messages on another's route
def test_another_sources_transaction_or_code_refused(env):
    """Two sources of the same registry (same receiver_id, no key): a
    callback for A's transaction, or a notification for A's subscription
    code, delivered to B's route is refused and stores nothing under either."""
    from test_inbound import _refused
    a = _src(env, None, receiver_id="reg.same")
    b = _src(env, None, receiver_id="reg.same")
    txn = _search_async(env, a)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (a,))
        sub = cur.fetchone()[0]
        granted = {"transaction_id": sub, "subscribe_response": [{"subscriptions": [{"code": "A-ONLY"}]}]}
        assert _receive(cur, a, _envelope(action="on-subscribe", sender_id="reg.same", message=granted))[0] == 200
        _refused(cur, env, b, _envelope(txn=txn, sender_id="reg.same"), 404, "err.transaction_id.invalid")
        _refused(cur, env, b, _envelope(action="on-subscribe", sender_id="reg.same", message=granted), 404,
                 "err.transaction_id.invalid")
        _refused(cur, env, b, _envelope(action="notify", sender_id="reg.same", message={"subscription_code": "A-ONLY"}),
                 404, "err.subscription_code.invalid")
        assert _sub_state(env, b, "A-ONLY") is None and _txn(env, a, txn)[2] == 0


# ---------------------------------------------------------------- the callback token and the trust columns
def test_trust_change_does_not_open_the_callback_route(env):
    """The callback token is never sent anywhere (the registry presents it),
    so the columns that say where secrets go do not bind it: an UPDATE of
    base_url, ca_cert or verify_ssl (a CA rotation) keeps it, and callbacks
    without it stay refused instead of silently becoming unauthenticated.
    The outbound secrets are still dropped."""
    from test_inbound import _refused
    token = "cb-trust-token-9Kp"
    src = _src(env, None, callback_token=token)
    txn = _search_async(env, src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for change in ("base_url = base_url || '/v2'", "ca_cert = %s" % "'%s'" % env.ca_pem(),
                       "verify_ssl = false"):
            cur.execute("UPDATE dci_data_source SET %s WHERE code = %%s" % change, (src,))
            assert env.query("SELECT callback_token_set, client_secret_set FROM dci_data_source WHERE code = %s",
                             (src,)) == [(True, False)], change
            cur.execute("UPDATE dci_data_source SET client_secret = 'again' WHERE code = %s", (src,))
            _refused(cur, env, src, _envelope(txn=txn), 401, "err.request.unauthorized")
        st, resp = _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer " + token})
        assert st == 200, resp
        rows = env.query("SELECT step FROM dci_test_connection(%s)", (src,))
        assert "callbacks" not in [r[0] for r in rows]
        # '' still removes it, as before
        cur.execute("UPDATE dci_data_source SET callback_token = '' WHERE code = %s", (src,))
        assert env.query("SELECT callback_token_set FROM dci_data_source WHERE code = %s", (src,)) == [(False,)]


# ---------------------------------------------------------------- what is stored is what was verified
def test_signed_body_spellings_store_what_was_verified(env):
    """With a registry key: a BOM before the body is refused; whitespace
    before it is not a change; a key spelled with \\u escapes is the same
    key for the signature and for what is stored, also as a duplicate (the
    last counts for both: a smuggled earlier "message" is neither verified
    nor stored)."""
    from test_inbound import _pem, _refused, _sign_ed25519
    src = _src(env, None)
    txn = _search_async(env, src)
    env.query("UPDATE dci_data_source SET registry_public_key = %s WHERE code = %s", (_pem("ed25519_public.pem"), src))
    with closing(env.connect()) as conn:
        cur = conn.cursor()

        def signed(v):
            e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": [], "v": v})
            e["total"] = 1
            return e, _sign_ed25519(e)
        e, sig = signed("bom")
        _refused(cur, env, src, "\ufeff" + json.dumps(dict(e, signature=sig)), 400, "err.request.bad")
        e, sig = signed("ws")
        assert _receive(cur, src, " \r\n\t" + json.dumps(dict(e, signature=sig)))[0] == 200
        e, sig = signed("escaped")
        smuggled = json.dumps(dict(e["message"], v="smuggled", search_response=[{"data": {"reg_records": [1]}}]))
        raw = '{"\\u0068eader": %s, "message": %s, "\\u006dessage": %s, "sign\\u0061ture": %s}' % (
            json.dumps(e["header"]), smuggled, json.dumps(e["message"]), json.dumps(sig))
        assert _receive(cur, src, raw)[0] == 200
        raw = '{"header": %s, "\\u006dessage": %s, "message": %s, "signature": %s}' % (
            json.dumps(e["header"]), json.dumps(e["message"]), smuggled, json.dumps(sig))
        _refused(cur, env, src, raw, 401, "err.signature.invalid")
        assert sorted(r[0] for r in env.query(
            "SELECT i.message->>'v' FROM dci_inbox i JOIN dci_data_source s ON s.id = i.source_id "
            "WHERE s.code = %s", (src,))) == ["escaped", "ws"]


def test_token_change_takes_effect_in_open_sessions(env):
    """Revoking a leaked callback token works at once in the HTTP workers'
    pooled connections: a session that accepted the old token refuses it
    after another session set a new one, removed it, or switched the source
    off; likewise a registry key set meanwhile is required at once."""
    from test_inbound import _pem
    src = _src(env, None, callback_token="old-token-1")
    txn = _search_async(env, src)
    _worker_role(env.cluster)
    with closing(env.cluster.connect(user=WORKER_ROLE)) as pooled:
        cur = pooled.cursor()
        assert _receive(cur, src, _envelope(txn=txn, action="on-search"), {"authorization": "Bearer old-token-1"})[0] == 200
        env.query("UPDATE dci_data_source SET callback_token = 'new-token-2' WHERE code = %s", (src,))
        assert _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer old-token-1"})[0] == 401
        assert _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer new-token-2"})[0] == 200
        env.query("UPDATE dci_data_source SET registry_public_key = %s WHERE code = %s",
                  (_pem("ed25519_public.pem"), src))
        st, resp = _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer new-token-2"})
        assert (st, resp["message"]["error"]["code"]) == (401, "err.signature.missing"), resp
        env.query("UPDATE dci_data_source SET active = false WHERE code = %s", (src,))
        assert _receive(cur, src, _envelope(txn=txn), {"authorization": "Bearer new-token-2"})[0] == 503


# ---------------------------------------------------------------- dci_await's memory
def _hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def test_await_of_an_open_transaction_does_not_accumulate_memory(env):
    """A registry sends a large first part and never the rest: a session
    awaiting the transaction checks it again and again; each check must not
    keep a copy of the partial answer (it did, in the transaction's memory,
    until the wait ended: ~3 MB per check)."""
    src = _src(env, None)
    txn = _search_async(env, src)
    big = [{"data": {"reg_records": [{"id": "r%d" % i, "pad": "x" * 1000} for i in range(3000)]}}]
    e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": big})
    e["header"].update(total_count=2, completed_count=1)
    with closing(env.connect()) as conn:
        assert _receive(conn.cursor(), src, e)[0] == 200
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        cur.execute("SELECT dci_await(%s, %s, 0)", (src, txn))        # warm: one check
        assert cur.fetchone()[0] is None
        before = _hwm_kb(pid)
        cur.execute("SELECT dci_await(%s, %s, 6000)", (src, txn))     # some 35 checks
        assert cur.fetchone()[0] is None
        grown = _hwm_kb(pid) - before
    assert grown < 30 * 1024, "dci_await grew by %d kB" % grown


def test_outcome_writer_does_not_hold_a_slot_behind_a_row_lock(env):
    """The ACK's record waits for nobody: while a callback's transaction
    (an Odoo request still processing) holds the transaction's row, the
    outcome worker gives up instead of holding a background worker slot
    until that commits (enough of those and every asynchronous call is
    refused with 53400, parallel queries get no workers)."""
    import threading, time
    src = _src(env, None)
    env.mock.fault("/registry/search", "slow", count=1, delay=1.5)
    got = {}
    t = threading.Thread(target=lambda: got.setdefault("txn", _search_async(env, src)))
    t.start()
    holder = env.connect(autocommit=False)
    try:
        cur = holder.cursor()
        deadline = time.time() + 10
        while time.time() < deadline:
            cur.execute("SELECT t.id FROM dci_transaction t JOIN dci_data_source s ON s.id = t.source_id "
                        "WHERE s.code = %s FOR UPDATE", (src,))
            if cur.fetchall():
                break
            holder.rollback()
            time.sleep(0.02)
        t.join()
        assert "txn" in got

        def writers():
            return env.query("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'dci_client transaction writer'")[0][0]
        deadline = time.time() + 15
        while writers() and time.time() < deadline:
            time.sleep(0.1)
        assert writers() == 0, "the outcome worker is still waiting for the row lock"
    finally:
        holder.rollback()
        holder.close()
    assert _txn(env, src, got["txn"])[0] in ("sent", "acked")


# ---------------------------------------------------------------- message_ts
def test_message_ts_without_offset_is_utc_whatever_the_session_timezone(env):
    """A message_ts without an offset is read as UTC, not in the HTTP
    worker's session TimeZone (Odoo's workers need not run in UTC): the same
    fresh message is accepted under any TimeZone; with an offset it is read
    as written."""
    import time
    src = _src(env, None)
    naive = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for tz in ("Pacific/Kiritimati", "Etc/GMT+12", "UTC"):
            cur.execute("SET TimeZone = %s", (tz,))
            txn = _search_async(env, src)
            st, resp = _receive(cur, src, _envelope(txn=txn, ts=naive))
            assert st == 200, (tz, resp)
            st, resp = _receive(cur, src, _envelope(txn=_search_async(env, src), ts=naive + "+05:00"))
            assert (st, resp["message"]["error"]["code"]) == (400, "err.message_ts.expired"), (tz, resp)
        cur.execute("SHOW TimeZone")
        assert cur.fetchone()[0] == "UTC"
        cur.execute("SET TimeZone = 'Pacific/Kiritimati'")
        _receive(cur, src, _envelope(txn=_search_async(env, src), ts=naive))
        cur.execute("SHOW TimeZone")
        assert cur.fetchone()[0] == "Pacific/Kiritimati"        # the session's own setting is left as it was


def test_notify_payload_carries_no_secret_and_is_public(env):
    """What any connected role sees on LISTEN dci_client (it needs no grant,
    README "NOTIFY"): the documented keys only, never the callback token in
    any spelling, nor the message itself."""
    import base64, hashlib, select
    token = "cb-notify-token-Zz3"
    src = _src(env, None, callback_token=token)
    txn = _search_async(env, src)
    env.query("DROP ROLE IF EXISTS dci_nobody")
    env.query("CREATE ROLE dci_nobody LOGIN")
    try:
        with closing(env.cluster.connect(user="dci_nobody")) as listener, closing(env.connect()) as conn:
            listener.cursor().execute("LISTEN dci_client")
            e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": _records(1, "private")})
            assert _receive(conn.cursor(), src, e, {"authorization": "Bearer " + token})[0] == 200
            select.select([listener], [], [], 5)
            listener.poll()
            assert len(listener.notifies) == 1
            payload = listener.notifies[0].payload
            assert set(json.loads(payload)) == {"source", "action", "transaction_id", "inbox_id"}
            for needle in (token, hashlib.sha256(token.encode()).hexdigest(), base64.b64encode(token.encode()).decode(),
                           "private"):
                assert needle not in payload
    finally:
        env.query("DROP ROLE IF EXISTS dci_nobody")


def test_await_of_parts_whose_data_is_no_object(env):
    """Parts whose data is an array, a string or missing: dci_await of the
    completed transaction answers (the first item as it came), never one of
    jsonb_set's errors (22P02 "path element is not an integer")."""
    src = _src(env, None)
    for data in ([], "text", None, [{"reg_records": [1]}]):
        txn = _search_async(env, src)
        with closing(env.connect()) as conn:
            cur = conn.cursor()
            for p in (1, 2):
                item = {"status": "succ"} if data is None else {"status": "succ", "data": data}
                e = _envelope(txn=txn, message={"transaction_id": txn, "search_response": [item]})
                e["header"].update(total_count=2, completed_count=p)
                assert _receive(cur, src, e)[0] == 200
            cur.execute("SELECT dci_await(%s, %s, 0)", (src, txn))
            assert cur.fetchone()[0]["status"] == "succ", data


# ---------------------------------------------------------------- the writer's queue
def test_terminated_senders_leak_no_queue_slot(env):
    """Senders terminated (pg_terminate_backend: FATAL, no error handler runs)
    while they wait for the writer must not keep their queue slot: after more
    such senders than the queue has slots, the next call is written at once
    (not refused with 53400 after waiting 10 s for a full queue)."""
    import uuid
    from test_inbound import _async, _senders, _wait
    src = _src(env, None)
    with closing(env.connect()) as warm:
        _async(warm.cursor(), src)                  # the writer is up
    waiting = ("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
               "AND wait_event_type = 'Extension' AND query LIKE 'SELECT dci_search_async%%'")
    for wave in range(3):
        locker = env.connect(autocommit=False)
        try:
            locker.cursor().execute("LOCK TABLE dci_transaction IN SHARE MODE")   # holds every INSERT
            txns = ["leak-%d-%d-%s" % (wave, i, uuid.uuid4().hex[:8]) for i in range(22)]
            threads, _ = _senders(env, src, txns)
            pids = _wait(lambda: (lambda p: p if len(p) == len(txns) else None)(
                [r[0] for r in env.query(waiting)]), "the senders waiting")
            for pid in pids:
                env.query("SELECT pg_terminate_backend(%s)", (pid,))
            _wait(lambda: not env.query(waiting), "the senders gone")
        finally:
            locker.rollback()
            locker.close()
        for th in threads:
            th.join(60)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET statement_timeout = '8s'")     # a full queue would wait 10 s, then 53400
        t = _async(cur, src)
    assert _txn(env, src, t) is not None


def test_dropped_database_leaves_no_queued_outcome(env):
    """Outcomes (ACK) queued for a writer that is then terminated by DROP
    DATABASE ... WITH (FORCE) belong to a database that is gone: no writer
    will ever take them, so they must not keep their queue slots (after more
    of them than the queue has slots, the next call of another database is
    written at once, not refused with 53400 after 10 s)."""
    import threading
    import psycopg2
    from support.util import code
    from test_inbound import _async, _wait
    for rnd in range(3):
        db = code("txnwleak")
        admin = env.cluster.connect()
        admin.cursor().execute("CREATE DATABASE %s" % db)
        try:
            holder = env.cluster.connect(dbname=db)
            hc = holder.cursor()
            hc.execute("CREATE EXTENSION dci_client CASCADE")
            src = code("txnwleak")
            env.add_source(src, conn=holder, callback_uri="https://openspp.example.org/cb")
            # the writer's ACK of a row blocks on a lock this session holds
            hc.execute("""CREATE FUNCTION public.hold_outcome() RETURNS trigger LANGUAGE plpgsql
                          SET search_path = pg_catalog AS $$
                          BEGIN PERFORM pg_advisory_xact_lock(4242); RETURN NEW; END $$""")
            hc.execute("CREATE TRIGGER hold_outcome BEFORE UPDATE ON dci_transaction "
                       "FOR EACH ROW EXECUTE FUNCTION public.hold_outcome()")
            hc.execute("SELECT pg_advisory_lock(4242)")
            with closing(env.cluster.connect(dbname=db)) as c:
                _async(c.cursor(), src)           # its ACK holds the writer
            _wait(lambda: env.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                    "backend_type = 'dci_client transaction writer' AND wait_event_type = 'Lock'",
                                    (db,))[0][0] == 1, "the writer held")
            done = []

            def send():
                try:
                    with closing(env.cluster.connect(dbname=db)) as c:
                        _async(c.cursor(), src)   # to a worker of its own after 5 s; its ACK queued
                        done.append(1)
                except psycopg2.Error:
                    pass
            threads = [threading.Thread(target=send) for _ in range(22)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            assert len(done) == 22
            admin.cursor().execute("DROP DATABASE %s WITH (FORCE)" % db)
        finally:
            admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
            admin.close()
    # another database: while its writer is held on a table lock with one
    # request, two more are queued together (one transaction, after the lock);
    # with the dropped databases' outcomes still in the queue only one slot is
    # free, and they would follow one another
    from test_inbound import _senders, _waiting_senders
    db = code("txnwleak")
    admin = env.cluster.connect()
    admin.cursor().execute("CREATE DATABASE %s" % db)
    try:
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client CASCADE")
            src = code("txnwleak")
            env.add_source(src, conn=conn, callback_uri="https://openspp.example.org/cb")
            cur.execute("CREATE TABLE public.writer_xact (transaction_id text, xid bigint)")
            cur.execute("""CREATE FUNCTION public.note_xact() RETURNS trigger LANGUAGE plpgsql
                           SET search_path = pg_catalog AS $$
                           BEGIN INSERT INTO public.writer_xact VALUES (NEW.transaction_id, txid_current());
                           RETURN NEW; END $$""")
            cur.execute("CREATE TRIGGER note_xact AFTER INSERT ON dci_transaction "
                        "FOR EACH ROW EXECUTE FUNCTION public.note_xact()")
            cur.execute("GRANT ALL ON public.writer_xact TO PUBLIC")
        locker = env.cluster.connect(dbname=db)
        locker.autocommit = False
        try:
            locker.cursor().execute("LOCK TABLE dci_transaction IN SHARE MODE")

            class _Env:                         # _senders, in that database
                def connect(self):
                    return env.cluster.connect(dbname=db)
            first, r1 = _senders(_Env(), src, ["first"])
            _wait(lambda: env.query("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND "
                                    "backend_type = 'dci_client transaction writer' AND wait_event_type = 'Lock'",
                                    (db,))[0][0] == 1, "the writer held")
            pair, r2 = _senders(_Env(), src, ["second", "third"])
            _wait(lambda: _waiting_senders(env) == 3, "3 senders waiting")
        finally:
            locker.rollback()
            locker.close()
        for th in first + pair:
            th.join(60)
        assert r1 == {0: ("ok", "first")} and r2 == {0: ("ok", "second"), 1: ("ok", "third")}
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("SELECT count(DISTINCT xid) FROM public.writer_xact WHERE transaction_id IN ('second', 'third')")
            assert cur.fetchone()[0] == 1
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        admin.close()


def test_tiny_statement_timeouts_send_nothing_unrecorded(env):
    """Senders cancelled by a tiny statement_timeout at every point of the
    queue's state machine (queued, taken, done): no request reaches the
    registry without its row, a successful call has its row, and the queue
    stays usable."""
    import psycopg2
    from test_inbound import _async
    src = _src(env, None)
    before = env.mock.stats()["requests"].get("/registry/search", 0)
    ok = []
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for i in range(40):
            cur.execute("SET statement_timeout = %s", ("%dms" % (1 + i % 20),))
            try:
                ok.append(_async(cur, src))
            except psycopg2.errors.QueryCanceled:
                pass
        cur.execute("RESET statement_timeout")
        t = _async(cur, src)
    # a timeout may also strike after the request went out (while its answer is read): what
    # must hold is that nothing reached the registry without its row committed first
    sent = env.mock.stats()["requests"].get("/registry/search", 0) - before
    rows = env.query("SELECT count(*) FROM dci_transaction t JOIN dci_data_source s ON s.id = t.source_id "
                     "WHERE s.code = %s", (src,))[0][0]
    assert len(ok) + 1 <= sent <= rows, (len(ok), sent, rows)
    for txn in ok + [t]:
        assert _txn(env, src, txn) is not None
