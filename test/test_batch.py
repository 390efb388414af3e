"""Bulk verification (README "Bulk verification", issue 12): dci_search_batch and
dci_search_by_ids pack items into envelopes and keep several in flight; the mock
counts envelopes, items and the most envelopes it held at once."""
import os
import socket
import threading
import time
from contextlib import closing

import psycopg2
from psycopg2.extras import Json

from support.env import expect_error
from support.util import TOKEN_PATH, code, setting

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing")


def _src(env, prefix, **cols):
    src = code(prefix)
    cols.setdefault("registry_type", "ns:org:RegistryType:Civil")
    cols.setdefault("sender_id", "openspp.example.org")
    env.add_source(src, **cols)
    return src


def _queries(values):
    return [{"type": "UIN", "value": v} for v in values]


def _batch(cur, src, queries, **kw):
    args = "".join(", %s => %%s" % k for k in kw)
    cur.execute("SELECT ord, reference_id, status, records, total_count, reason_code, reason_message "
                "FROM dci_search_batch(%%s, 'idtype-value', %%s%s)" % args,
                [src, Json(queries)] + list(kw.values()))
    return cur.fetchall()


def _search_stats(env):
    return env.mock.stats()["search"]


def test_batch_2500_in_order_batched_and_concurrent(env):
    src = _src(env, "batch2500")
    env.mock.search_conf(delay=0.02)
    values = ["%09d" % (i * 7) for i in range(1, 2501)]
    with closing(env.connect()) as conn:
        rows = _batch(conn.cursor(), src, _queries(values), batch_size=100, concurrency=4)
    assert [r[0] for r in rows] == list(range(1, 2501))
    for (ord_, ref, status, records, total, rc, rm), v in zip(rows, values):
        assert status == "succ", (ord_, status, rc, rm)
        assert records[0]["identifier"][0]["identifier_value"] == v, (ord_, records)
        assert total == 1 and ref and rc is None
    s = _search_stats(env)
    assert s["envelopes"] == 25 and s["items"] == 2500, s
    assert set(s["sizes"]) == {100}, s["sizes"]
    assert 2 <= s["max_inflight"] <= 4, s
    # every envelope passed the mock's schema check
    assert all(v["ok"] for v in env.mock.stats()["dci_validation"])


def test_batch_uneven_size_and_by_ids(env):
    src = _src(env, "batchids")
    ids = ["%09d" % i for i in range(1, 24)]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT ord, id_value, status, records FROM dci_search_by_ids(%s, 'UIN', %s, batch_size => 10)",
                    (src, ids))
        rows = cur.fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [(i + 1, v, "succ") for i, v in enumerate(ids)]
    assert all(r[3][0]["identifier"][0]["identifier_value"] == r[1] for r in rows)
    assert _search_stats(env)["sizes"] == [10, 10, 3] or sorted(_search_stats(env)["sizes"]) == [3, 10, 10]


def _public_key():
    with open(os.path.join(FIXTURES, "ed25519_public.pem")) as f:
        return f.read()


def test_batch_mixed_outcomes(env):
    src = _src(env, "batchmixed", registry_public_key=_public_key(),
               extra_headers=Json({"X-Mock-Sign": "ed25519"}))
    # envelopes of 5: #1 plain, #2 with rejected items, #3 answers 503, #4 badly signed, #5 plain
    values = ["%09d" % i for i in range(1, 26)]
    values[6], values[8] = "RJCT-1", "RJCT-2"
    values[12] = "FAIL503"
    values[17] = "BADSIG"
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 1)
        rows = _batch(cur, src, _queries(values), batch_size=5, concurrency=3)
    assert len(rows) == 25
    by = {r[0]: r for r in rows}
    for o in (7, 9):
        assert by[o][2] == "rjct" and by[o][5] == "rjct.reference_id.invalid", by[o]
        assert "RJCT" in by[o][6] and by[o][3] is None
    for o in range(11, 16):
        assert by[o][2] == "error" and by[o][5] == "DC009", by[o]
        assert src in by[o][6], by[o]
    for o in range(16, 21):
        assert by[o][2] == "error" and by[o][5] == "DC008", by[o]
    others = [o for o in range(1, 26) if o not in (7, 9) and not 11 <= o <= 20]
    assert all(by[o][2] == "succ" and by[o][3] for o in others), [by[o] for o in others]
    s = _search_stats(env)
    assert s["envelopes"] == 6, s     # 5 envelopes, the 503 one sent twice (max_retries 1)


def test_batch_401_mid_batch_one_renewal(env):
    src = _src(env, "batch401")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _batch(cur, src, _queries(["000000001"]))          # a cached token
        before = env.mock.stats()["token_requests"]
        env.mock.search_conf(delay=0.02)
        env.mock.fault("/registry/sync/search", "401", count=3, after=5)
        rows = _batch(cur, src, _queries(["%09d" % i for i in range(1, 201)]), batch_size=10, concurrency=4)
    assert [r[2] for r in rows] == ["succ"] * 200, [r for r in rows if r[2] != "succ"][:3]
    st = env.mock.stats()
    assert st["token_requests"] == before + 1, (before, st["token_requests"])
    assert st["search"]["envelopes"] == 1 + 20 + 3, st["search"]


def test_batch_401_after_renewal_raises_dc002(env):
    src = _src(env, "batch401x")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault("/registry/sync/search", "401", count=10)
        expect_error(cur, "DC002", "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', %s, batch_size => 5)",
                     (src, Json(_queries(["%09d" % i for i in range(1, 11)]))))
        env.mock.reset()
        assert len(_batch(cur, src, _queries(["000000001"]))) == 1


def test_batch_cancel_mid_batch(env):
    src = _src(env, "batchcancel")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _batch(cur, src, _queries(["000000001"]))
        env.mock.search_conf(delay=5)
        setting(cur, "statement_timeout", 400)
        t0 = time.monotonic()
        expect_error(cur, "57014", "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', %s, batch_size => 10, concurrency => 4)",
                     (src, Json(_queries(["%09d" % i for i in range(1, 101)]))))
        took = time.monotonic() - t0
        assert took < 1.0, took
        env.mock.search_conf(delay=0)
        setting(cur, "statement_timeout", 0)
        rows = _batch(cur, src, _queries(["%09d" % i for i in range(1, 31)]), batch_size=10)
        assert [r[2] for r in rows] == ["succ"] * 30


def test_batch_cancel_backend(env):
    src = _src(env, "batchcancelpid")
    conn = env.connect()
    try:
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        _batch(cur, src, _queries(["000000001"]))
        env.mock.search_conf(delay=5)
        out = {}

        def run():
            try:
                _batch(cur, src, _queries(["%09d" % i for i in range(1, 51)]), batch_size=5, concurrency=4)
            except psycopg2.Error as e:
                out["code"] = e.pgcode
            out["ended"] = time.monotonic()

        th = threading.Thread(target=run)
        th.start()
        with closing(env.connect()) as oc:
            c2 = oc.cursor()
            waited = None
            for _ in range(100):
                c2.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
                waited = c2.fetchone()[0]
                if waited == "Extension":
                    break
                time.sleep(0.02)
            assert waited == "Extension", waited
            t = time.monotonic()
            c2.execute("SELECT pg_cancel_backend(%s)", (pid,))
        th.join(10)
        assert out.get("code") == "57014", out
        assert out["ended"] - t < 1.0
        env.mock.search_conf(delay=0)
        assert len(_batch(cur, src, _queries(["000000001", "000000002"]))) == 2
    finally:
        conn.close()


def test_batch_capped_registry_split(env):
    src = _src(env, "batchcap")
    for refuse in ("rjct", "413"):
        env.mock.reset()
        env.mock.search_conf(max_items=10, refuse=refuse)
        values = ["%09d" % i for i in range(1, 96)]
        with closing(env.connect()) as conn:
            cur = conn.cursor()
            rows = _batch(cur, src, _queries(values), batch_size=40)
            assert [r[2] for r in rows] == ["succ"] * 95, (refuse, len(rows), _search_stats(env), [r for r in rows if r[2] != "succ"][:2])
            assert [r[3][0]["identifier"][0]["identifier_value"] for r in rows] == values
            first = _search_stats(env)
            # the size that worked is remembered: the next batch goes in envelopes of at most 10
            rows = _batch(cur, src, _queries(values[:30]), batch_size=40)
            assert [r[2] for r in rows] == ["succ"] * 30
            later = _search_stats(env)["sizes"][len(first["sizes"]):]
            assert later and max(later) <= 10, later
        src = _src(env, "batchcap")   # a fresh source: nothing remembered


def test_max_concurrency_caps_argument(env):
    src = _src(env, "batchcapc", max_concurrency=2)
    env.mock.search_conf(delay=0.05)
    with closing(env.connect()) as conn:
        rows = _batch(conn.cursor(), src, _queries(["%09d" % i for i in range(1, 41)]),
                      batch_size=2, concurrency=16)
    assert len(rows) == 40
    assert _search_stats(env)["max_inflight"] == 2, _search_stats(env)


def test_cluster_ceiling_caps_concurrency(env):
    src = _src(env, "batchceil", max_concurrency=16)
    env.mock.search_conf(delay=0.05)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_concurrency", 3)
        rows = _batch(cur, src, _queries(["%09d" % i for i in range(1, 41)]), batch_size=2, concurrency=16)
    assert len(rows) == 40
    assert _search_stats(env)["max_inflight"] == 3, _search_stats(env)


def test_batch_bad_input(env):
    src = _src(env, "batchbad")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        q = "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', %s)"
        expect_error(cur, "22023", q, (src, Json({"type": "UIN"})), contains="queries must be a JSON array")
        e = expect_error(cur, "22023", q, (src, Json(_queries(["1", "2"]) + ["x"])))
        assert "queries[2]" in str(e) and "ord 3" in str(e), e
        e = expect_error(cur, "22023", q, (src, Json(_queries(["1"]) + [{"type": "UIN"}])))
        assert "queries[1]" in str(e), e
        expect_error(cur, "22023", "SELECT count(*) FROM dci_search_batch(%s, 'bogus', '[]')", (src,),
                     contains="query_type")
        expect_error(cur, "22023", "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', '[]', batch_size => 0)",
                     (src,), contains="batch_size")
        expect_error(cur, "22023", "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', '[]', concurrency => 1000)",
                     (src,), contains="concurrency")
        expect_error(cur, "22023", "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', '[]', options => '{\"x\":1}')",
                     (src,), contains="unknown search option")
        cur.execute("SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', '[]')", (src,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM dci_search_by_ids(%s, 'UIN', '{}'::text[])", (src,))
        assert cur.fetchone()[0] == 0
        expect_error(cur, "DC001", q, ("no_such_source_zz", Json(_queries(["1"]))))
        for col, val in (("batch_size", 0), ("batch_size", 5000), ("max_concurrency", 0), ("max_concurrency", 500)):
            e = expect_error(cur, "23514", "UPDATE dci_data_source SET %s = %%s WHERE code = %%s" % col, (val, src))
            assert col in str(e), e
    assert _search_stats(env)["envelopes"] == 0


def test_batch_logs_each_envelope(env):
    src = _src(env, "batchlog")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT calls FROM dci_source_stats WHERE source = %s", (src,))
        before = (cur.fetchone() or [0])[0]
        _batch(cur, src, _queries(["%09d" % i for i in range(1, 31)]), batch_size=10)
        cur.execute("SELECT calls FROM dci_source_stats WHERE source = %s", (src,))
        assert cur.fetchone()[0] - before == 3


def test_max_concurrency_holds_across_sessions(env):
    """Preloaded: three sessions batching against one source with max_concurrency = 2
    together keep at most 2 envelopes in flight (slots in shared memory)."""
    src = _src(env, "batchslots", max_concurrency=2)
    env.mock.search_conf(delay=0.05)
    out, errors = {}, []
    start = threading.Barrier(3)

    def run(n):
        try:
            with closing(env.connect()) as conn:
                cur = conn.cursor()
                start.wait(10)
                out[n] = _batch(cur, src, _queries(["%09d" % (n * 100 + i) for i in range(1, 21)]),
                                batch_size=2, concurrency=2)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all([r[2] for r in out[n]] == ["succ"] * 20 for n in range(3)), out
    s = _search_stats(env)
    assert s["envelopes"] == 30, s
    assert s["max_inflight"] == 2, s
    # nothing left behind: a fourth batch gets both slots at once
    env.mock.reset()
    env.mock.search_conf(delay=0.05)
    with closing(env.connect()) as conn:
        rows = _batch(conn.cursor(), src, _queries(["%09d" % i for i in range(1, 11)]), batch_size=1, concurrency=2)
    assert len(rows) == 10 and _search_stats(env)["max_inflight"] == 2


def test_slots_freed_after_cancel(env):
    """A cancelled batch frees its slots: the next one is not held up waiting for them."""
    src = _src(env, "batchslotcancel", max_concurrency=2)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.search_conf(delay=5)
        setting(cur, "statement_timeout", 300)
        expect_error(cur, "57014", "SELECT count(*) FROM dci_search_batch(%s, 'idtype-value', %s, batch_size => 1)",
                     (src, Json(_queries(["%09d" % i for i in range(1, 11)]))))
        env.mock.search_conf(delay=0)
        setting(cur, "statement_timeout", 5000)
        rows = _batch(cur, src, _queries(["%09d" % i for i in range(1, 5)]), batch_size=1)
        assert [r[2] for r in rows] == ["succ"] * 4
        cur.execute("SELECT count(*) FROM dci_batch_progress WHERE source = %s", (src,))
        assert cur.fetchone()[0] == 0


def _progress_while(env, src, run_batch):
    """Rows of dci_batch_progress for src seen from another session while run_batch runs."""
    seen, out = [], {}

    def run():
        try:
            out["rows"] = run_batch()
        except psycopg2.Error as e:
            out["code"] = e.pgcode

    th = threading.Thread(target=run)
    th.start()
    with closing(env.connect()) as oc:
        oc.autocommit = True
        c2 = oc.cursor()
        while th.is_alive():
            c2.execute("SELECT pid, source, items_total, items_answered, items_failed, envelopes_in_flight, "
                       "started_at <= clock_timestamp(), elapsed >= '0'::interval FROM dci_batch_progress WHERE source = %s",
                       (src,))
            seen.extend(c2.fetchall())
            time.sleep(0.02)
        th.join()
        c2.execute("SELECT count(*) FROM dci_batch_progress WHERE source = %s", (src,))
        left = c2.fetchone()[0]
    return seen, out, left


def test_batch_progress_view(env):
    src = _src(env, "batchprog", max_concurrency=2)
    env.mock.search_conf(delay=0.1)
    conn = env.connect()
    try:
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        seen, out, left = _progress_while(
            env, src, lambda: _batch(cur, src, _queries(["%09d" % i for i in range(1, 41)]),
                                     batch_size=4, concurrency=2))
        assert len(out["rows"]) == 40
        assert seen, "no progress row seen"
        assert {r[0] for r in seen} == {pid} and {r[1] for r in seen} == {src}
        assert all(r[2] == 40 and r[4] == 0 and 0 <= r[5] <= 2 and r[6] and r[7] for r in seen), seen
        answered = [r[3] for r in seen]
        assert answered == sorted(answered) and answered[-1] > answered[0], answered
        assert left == 0

        # also gone after a cancel
        env.mock.search_conf(delay=5)
        setting(cur, "statement_timeout", 500)
        seen, out, left = _progress_while(
            env, src, lambda: _batch(cur, src, _queries(["%09d" % i for i in range(1, 41)]), batch_size=4))
        assert out.get("code") == "57014", out
        assert seen and left == 0, (seen, left)
    finally:
        env.mock.search_conf(delay=0)
        conn.close()


def test_source_stats_counts_items(env):
    src = _src(env, "batchitems")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _batch(cur, src, _queries(["%09d" % i for i in range(1, 26)]), batch_size=10)
        cur.execute("SELECT calls, items FROM dci_source_stats WHERE source = %s", (src,))
        assert cur.fetchone() == (3, 25)
        # a single dci_search is a call, not a batched item
        cur.execute("SELECT count(*) FROM dci_search_by_id(%s, 'UIN', '000000001')", (src,))
        cur.execute("SELECT calls, items FROM dci_source_stats WHERE source = %s", (src,))
        assert cur.fetchone() == (4, 25)
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'dci_source_stats' "
                    "ORDER BY ordinal_position")
        assert [r[0] for r in cur.fetchall()] == ["source_id", "source", "calls", "errors", "token_fetches",
                                                  "p50_ms", "p95_ms", "last_call_at", "items"]


def test_by_ids_arguments(env):
    """dci_search_by_ids builds its items per envelope from the array (batch.c)."""
    src = _src(env, "batchidsargs")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        e = expect_error(cur, "22023", "SELECT count(*) FROM dci_search_by_ids(%s, 'UIN', ARRAY['1', NULL])", (src,))
        assert "id_values[2] (ord 2)" in str(e), e
        expect_error(cur, "22023", "SELECT count(*) FROM dci_search_by_ids(%s, NULL, ARRAY['1'])", (src,),
                     contains="id_type")
        cur.execute("SELECT count(*) FROM dci_search_by_ids(%s, 'UIN', NULL)", (src,))
        assert cur.fetchone()[0] == 0
        # a lower bound other than 1: ord is still the position
        cur.execute("SELECT ord, id_value, status FROM dci_search_by_ids(%s, 'UIN', '[0:2]={a1,b2,c3}'::text[])", (src,))
        assert cur.fetchall() == [(1, "a1", "succ"), (2, "b2", "succ"), (3, "c3", "succ")]
    assert _search_stats(env)["items"] == 3


# ---- found by the attack on issue 12 -------------------------------------------
class _Sink:
    """accepts, waits `hold` seconds without reading, then reads everything"""
    def __init__(self, hold):
        self.hold = hold
        self.s = socket.socket(); self.s.bind(("127.0.0.1", 0)); self.s.listen(50)
        self.port = self.s.getsockname()[1]
        self.got = []
        threading.Thread(target=self.loop, daemon=True).start()
    def loop(self):
        while True:
            try: c, _ = self.s.accept()
            except OSError: return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()
    def one(self, c):
        time.sleep(self.hold)
        data = b""
        c.settimeout(5)
        try:
            while True:
                d = c.recv(1 << 20)
                if not d: break
                data += d
                if b"\r\n\r\n" in data:
                    h, _, b = data.partition(b"\r\n\r\n")
                    cl = [l for l in h.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                    if cl and len(b) >= int(cl[0].split(b":")[1]): break
        except Exception as e:
            pass
        self.got.append(data)
        try: c.sendall(b"HTTP/1.1 500 x\r\nContent-Length: 0\r\n\r\n"); c.close()
        except Exception: pass


def test_batch_caught_in_a_savepoint_leaves_no_transfer(env):
    """A batch cancelled inside an EXCEPTION block (Odoo: a savepoint) must not
    leave its transfers in the multi handle: their bodies are freed with the
    subtransaction, and the next call would send from freed memory (it
    crashed the backend)."""
    sink = _Sink(hold=3)
    bad = code("atk_sink")
    env.add_source(bad, base_url="http://127.0.0.1:%d" % sink.port)
    good = code("atk_good")
    env.add_source(good)
    env.mock.search_conf(delay=5)                     # the next call drives the multi handle a while
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET statement_timeout = '1500ms'")
        try:
            cur.execute("""DO $$ BEGIN
              BEGIN PERFORM * FROM dci_search_by_ids(%s, 'UIN',
                     (SELECT array_agg(repeat('x', 30000)) FROM generate_series(1, 1000)), batch_size => 1000);
              EXCEPTION WHEN query_canceled THEN NULL; END;
              PERFORM dci_search(%s, 'idtype-value', '{"type": "UIN", "value": "1"}');
            END $$""", (bad, good))
        except psycopg2.errors.QueryCanceled:
            pass                                      # the second call ran out of time: fine
        cur.execute("RESET statement_timeout")
        cur.execute("SELECT 1")                       # the backend is alive (it crashed before)
    time.sleep(3.5)
    for d in sink.got:                                # compact JSON text, never freed memory
        body = d.partition(b"\r\n\r\n")[2]
        odd = [b for b in body if b < 0x20 or b > 0x7e]
        assert not odd, "the registry got %d bytes that are no JSON text" % len(odd)
