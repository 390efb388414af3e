"""The retry rules of README "Errors", per method, counted at the mock:
- any method: no connection, 429, 503;
- GET/HEAD/PUT/DELETE only: reset after the request was sent, 502, 504;
- nothing else (500, 4xx); Retry-After honoured inside the budget;
  max_retries bounds the attempts."""
import threading, time
from contextlib import closing

from support.util import code, expect_code, request, setting

PATH = "/echo"


def _setup(env, prefix, **cols):
    src = code(prefix)
    env.add_source(src, **cols)
    conn = env.connect()
    cur = conn.cursor()
    setting(cur, "dci_client.max_retries", 2)
    # warm the token so the counts below are API requests only
    # (no mock reset from here on: it would revoke the cached token)
    assert request(cur, src)["status"] == 200
    _BASE[0] = _raw(env)
    return conn, cur, src


_BASE = [0]


def _raw(env):
    return env.mock.stats()["requests"].get(PATH, 0)


def _mark(env):
    """Start counting requests to PATH from here."""
    _BASE[0] = _raw(env)


def _count(env):
    return _raw(env) - _BASE[0]


def test_503_and_429_retried_for_every_method(env):
    conn, cur, src = _setup(env, "retry503")
    with closing(conn):
        for mode in ("503", "429"):
            for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                _mark(env)
                env.mock.fault(PATH, mode, count=1, retry_after=0)
                r = request(cur, src, method, PATH, {"m": method} if method in ("POST", "PUT", "PATCH") else None)
                assert r["status"] == 200, (mode, method, r)
                assert _count(env) == 2, (mode, method, _count(env))


def test_502_504_retried_only_for_idempotent(env):
    conn, cur, src = _setup(env, "retry502")
    with closing(conn):
        for mode in ("502", "504"):
            for method in ("GET", "HEAD", "PUT", "DELETE"):
                _mark(env)
                env.mock.fault(PATH, mode, count=1)
                r = request(cur, src, method, PATH)
                assert r["status"] == 200, (mode, method, r)
                assert _count(env) == 2, (mode, method, _count(env))
            for method in ("POST", "PATCH"):
                _mark(env)
                env.mock.fault(PATH, mode, count=1)
                r = request(cur, src, method, PATH, {"m": method})
                assert r["status"] == int(mode), (mode, method, r)
                assert _count(env) == 1, (mode, method, _count(env))


def test_reset_after_request_fresh_connection(env):
    src = code("retryresetfresh")
    env.add_source(src, auth_type="none", auth_url=None, client_id=None, client_secret=None)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 2)
        env.mock.fault("/open/echo", "reset", count=1)
        expect_code(cur, "DC003", src, "POST", "/open/echo", {"order": "pay once"})
        assert env.mock.stats()["requests"].get("/open/echo") == 1


def test_reset_after_request(env):
    # on a warm keep-alive connection, the way Odoo's sessions call
    conn, cur, src = _setup(env, "retryreset")
    with closing(conn):
        for method in ("POST", "PATCH"):
            _mark(env)
            env.mock.fault(PATH, "reset", count=1)
            expect_code(cur, "DC003", src, method, PATH, {"order": "pay once"})
            assert _count(env) == 1, (method, _count(env))
        for method in ("GET", "PUT", "DELETE"):
            _mark(env)
            env.mock.fault(PATH, "reset", count=1)
            r = request(cur, src, method, PATH)
            assert r["status"] == 200, (method, r)
            assert _count(env) == 2, (method, _count(env))
        # the session is fine afterwards
        _mark(env)
        assert request(cur, src, "POST", PATH, {"a": 1})["status"] == 200
        assert _count(env) == 1


def test_500_never_retried(env):
    conn, cur, src = _setup(env, "retry500")
    with closing(conn):
        for method in ("GET", "POST", "PUT", "DELETE"):
            _mark(env)
            env.mock.fault(PATH, "500", count=1)
            assert request(cur, src, method, PATH)["status"] == 500
            assert _count(env) == 1, (method, _count(env))
        _mark(env)
        env.mock.fault(PATH, "status", count=1, status=400)
        assert request(cur, src, "GET", PATH)["status"] == 400
        assert _count(env) == 1


def test_retries_bounded_by_max_retries(env):
    conn, cur, src = _setup(env, "retrymax")
    with closing(conn):
        # exactly 1 + max_retries failures queued: a 4th attempt would get 200
        env.mock.fault(PATH, "503", count=3, retry_after=0)
        r = request(cur, src, "GET", PATH)
        assert r["status"] == 503, r
        assert _count(env) == 3, _count(env)           # 1 + max_retries (2)
        assert env.mock.stats()["faults"] == []
        _mark(env)
        setting(cur, "dci_client.max_retries", 0)
        env.mock.fault(PATH, "503", count=1, retry_after=0)
        assert request(cur, src, "GET", PATH)["status"] == 503
        assert _count(env) == 1, _count(env)
        _mark(env)
        env.mock.fault(PATH, "reset", count=1)
        expect_code(cur, "DC003", src, "GET", PATH)
        assert _count(env) == 1, _count(env)


def test_backoff_without_retry_after(env):
    conn, cur, src = _setup(env, "retrybackoff")
    with closing(conn):
        env.mock.fault(PATH, "502", count=2)
        t0 = time.monotonic()
        r = request(cur, src, "GET", PATH)
        took = time.monotonic() - t0
        assert r["status"] == 200 and _count(env) == 3, (r, _count(env))
        # exponential backoff with jitter: 50-100 ms, then 100-200 ms
        assert 0.1 <= took < 2, took


def test_retry_after_honoured(env):
    conn, cur, src = _setup(env, "retryafter")
    with closing(conn):
        env.mock.fault(PATH, "503", count=1, retry_after=1)
        t0 = time.monotonic()
        r = request(cur, src, "GET", PATH)
        took = time.monotonic() - t0
        assert r["status"] == 200 and _count(env) == 2, (r, _count(env))
        assert 0.9 <= took < 3, took


def test_retry_after_survives_latch_wakeups(env):
    # a reload (SIGHUP sets every backend's latch) must not cut the wait short
    conn, cur, src = _setup(env, "retrylatch")
    with closing(conn):
        env.mock.fault(PATH, "503", count=1, retry_after=2)

        def poke():
            time.sleep(0.5)
            env.cluster.execute("SELECT pg_reload_conf()")

        th = threading.Thread(target=poke)
        th.start()
        t0 = time.monotonic()
        r = request(cur, src, "GET", PATH)
        took = time.monotonic() - t0
        th.join()
        assert r["status"] == 200 and _count(env) == 2, (r, _count(env))
        assert 1.9 <= took < 4, "Retry-After: 2 waited only %.2f s" % took


def test_retry_after_beyond_budget_returns_at_once(env):
    conn, cur, src = _setup(env, "retrybudget", timeout_ms=3000)
    with closing(conn):
        env.mock.fault(PATH, "503", count=1, retry_after=20)
        t0 = time.monotonic()
        r = request(cur, src, "GET", PATH)
        took = time.monotonic() - t0
        assert r["status"] == 503, r
        assert r["headers"].get("retry-after") == "20", r["headers"]
        assert took < 1.0, took
        assert _count(env) == 1


def test_connection_refused_dc003(env):
    src = code("retryrefused")
    env.add_source(src, base_url="http://127.0.0.1:1", auth_type="none", auth_url=None,
                   client_id=None, client_secret=None)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 2)
        e, took = expect_code(cur, "DC003", src, "POST", "/x", {"a": 1}, contains="127.0.0.1:1")
        assert took < 3, took
        # token endpoint unreachable: also DC003, before any API call
        src2 = code("retryrefusedtok")
        env.add_source(src2, auth_url="http://127.0.0.1:1/token")
        env.mock.reset()
        expect_code(cur, "DC003", src2)
        assert env.mock.stats()["requests"] == {}
