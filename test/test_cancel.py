"""Interruptible transfers (README "Functions"): statement_timeout and pg_cancel_backend
end a hanging transfer with 57014 promptly, the session stays usable,
pg_stat_activity shows the wait, the call's own budget gives DC004, and
backoff sleeps are interruptible too."""
import threading, time
from contextlib import closing

import psycopg2

from support.util import code, expect_code, request, setting

PATH = "/echo"


def _warm(env, prefix, **cols):
    src = code(prefix)
    env.add_source(src, **cols)
    conn = env.connect()
    cur = conn.cursor()
    assert request(cur, src)["status"] == 200       # token cached, connection open
    return conn, cur, src


def test_statement_timeout_cancels_hang(env):
    conn, cur, src = _warm(env, "cancelst")
    with closing(conn):
        env.mock.fault(PATH, "hang", count=1, delay=30)
        cur.execute("SET statement_timeout = '500ms'")
        e, took = expect_code(cur, "57014", src)
        assert took < 1.5, "statement_timeout took %.2f s" % took   # the README: within 100 ms
        assert took >= 0.45, took
        cur.execute("SET statement_timeout = 0")
        # the session is usable: the next call works at once
        t0 = time.monotonic()
        r = request(cur, src)
        assert r["status"] == 200, r
        assert time.monotonic() - t0 < 2
        # in an explicit transaction too
        conn.autocommit = False
        env.mock.fault(PATH, "hang", count=1, delay=30)
        cur.execute("SET LOCAL statement_timeout = '500ms'")
        expect_code(cur, "57014", src)            # rolls back
        assert request(cur, src)["status"] == 200
        conn.commit()


def test_cancel_backend_and_wait_event(env):
    conn, cur, src = _warm(env, "cancelpid")
    pid = conn.get_backend_pid()
    env.mock.fault(PATH, "hang", count=1, delay=30)
    out = {}

    def run():
        t0 = time.monotonic()
        try:
            request(cur, src)
            out["result"] = "succeeded"
        except psycopg2.Error as e:
            out["result"] = e.pgcode
        out["ended"] = time.monotonic()
        out["took"] = out["ended"] - t0

    th = threading.Thread(target=run)
    th.start()
    with closing(env.connect()) as other:
        oc = other.cursor()
        seen = None
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            oc.execute("SELECT state, wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", (pid,))
            seen = oc.fetchone()
            if seen and seen[1] == "Extension":
                break
            time.sleep(0.05)
        assert seen and seen[0] == "active" and seen[1] == "Extension", seen
        time.sleep(0.3)
        oc.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert oc.fetchone()[0] == "Extension"
        t_cancel = time.monotonic()
        oc.execute("SELECT pg_cancel_backend(%s)", (pid,))
        assert oc.fetchone()[0] is True
        th.join(10)
    with closing(conn):
        assert out.get("result") == "57014", out
        assert out["ended"] - t_cancel < 1.0, "cancel took %.2f s" % (out["ended"] - t_cancel)
        assert request(cur, src)["status"] == 200


def test_own_budget_gives_dc004(env):
    conn, cur, src = _warm(env, "cancelbudget", timeout_ms=500)
    with closing(conn):
        env.mock.fault(PATH, "hang", count=1, delay=30)
        e, took = expect_code(cur, "DC004", src)
        assert 0.4 <= took < 2, took
        assert request(cur, src)["status"] == 200
        # the GUC budget, when the source has none
        src2 = code("cancelguc")
        env.add_source(src2)
        assert request(cur, src2)["status"] == 200
        setting(cur, "dci_client.timeout_ms", 700)
        env.mock.fault(PATH, "slow", count=1, delay=3)
        e, took = expect_code(cur, "DC004", src2)
        assert 0.6 <= took < 2, took


def test_backoff_sleep_interruptible(env):
    conn, cur, src = _warm(env, "cancelbackoff", timeout_ms=60000)
    with closing(conn):
        setting(cur, "dci_client.max_retries", 2)
        env.mock.fault(PATH, "503", count=1, retry_after=20)
        cur.execute("SET statement_timeout = '500ms'")
        e, took = expect_code(cur, "57014", src)
        assert took < 2, "backoff sleep was not interrupted (%.2f s)" % took
        cur.execute("SET statement_timeout = 0")
        assert env.mock.stats()["requests"][PATH] == 2      # the warm-up call and the 503
        assert request(cur, src)["status"] == 200
