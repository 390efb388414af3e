"""OAuth2 tokens: caching per session and across sessions (shared memory,
single flight), renewal, force_refresh, expires_in forms, the 401 resend,
cache invalidation on changed credentials, token endpoint failures, and
read-only / REPEATABLE READ transactions (README "dci_get_token", "Errors")."""
import threading, time
from contextlib import closing

import psycopg2

from support.env import CLIENT_ID, CLIENT_SECRET
from support.util import TOKEN_PATH, code, expect_code, remember, request, secret, setting


def test_100_calls_one_token_one_connection(env):
    src = code("tok100")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for i in range(100):
            r = request(cur, src)
            assert r["status"] == 200, r
    s = env.mock.stats()
    assert s["token_requests"] == 1, s["token_requests"]
    assert s["requests"].get("/echo") == 100, s["requests"]
    # token request and the 100 API calls go to the same host:port: one connection
    assert s["connections"].get("http") == 1, s["connections"]


def test_second_session_reuses_shared_token(env):
    src = code("tokshared")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as c1:
        assert request(c1.cursor(), src)["status"] == 200
    with closing(env.connect()) as c2:
        cur = c2.cursor()
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT cached, shared FROM dci_token_status WHERE source = %s", (src,))
        assert cur.fetchone() == (True, True)
    s = env.mock.stats()
    assert s["token_requests"] == 1, s["token_requests"]
    assert s["requests"].get("/echo") == 2, s["requests"]


def test_eight_sessions_single_flight(env):
    src = code("tokflight")
    env.add_source(src)
    conns = [env.connect() for _ in range(8)]
    env.mock.reset()
    # the first token request takes 1 s: the others arrive while it is in flight
    env.mock.fault(TOKEN_PATH, "slow", count=1, delay=1)
    barrier = threading.Barrier(8)
    results, errors = [None] * 8, []

    def run(i):
        try:
            cur = conns[i].cursor()
            barrier.wait(10)
            results[i] = request(cur, src)["status"]
        except Exception as e:          # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    took = time.monotonic() - t0
    for c in conns:
        c.close()
    assert not errors, errors
    assert results == [200] * 8, results
    s = env.mock.stats()
    assert s["token_requests"] == 1, "8 cold sessions made %d token requests" % s["token_requests"]
    assert s["requests"].get("/echo") == 8, s["requests"]
    assert took < 10, took


def test_without_preload_per_session(env):
    cl = env.nopreload_cluster()
    src = code("tokpersess")
    env.add_source(src, cluster=cl)
    env.mock.reset()
    for _ in range(2):
        with closing(env.connect(cl)) as conn:
            cur = conn.cursor()
            for _ in range(3):
                assert request(cur, src)["status"] == 200
            cur.execute("SELECT cached, shared FROM dci_token_status WHERE source = %s", (src,))
            assert cur.fetchone() == (True, False)
    s = env.mock.stats()
    assert s["token_requests"] == 2, s["token_requests"]
    assert s["requests"].get("/echo") == 6, s["requests"]


def test_short_lived_token_renewed_before_expiry(env):
    sec = secret()
    src = code("tokshort")
    env.add_source(src, client_id="short-client", client_secret=sec)
    env.mock.reset()
    env.mock.add_client("short-client", sec, expires_in=3)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.token_refresh_margin_s", 1)
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT extract(epoch FROM expires_at - obtained_at) FROM dci_token_status WHERE source = %s",
                    (src,))
        assert abs(float(cur.fetchone()[0]) - 3) < 0.5
        time.sleep(0.8)
        assert request(cur, src)["status"] == 200     # 2.2 s left > margin: reused
        assert env.mock.stats()["token_requests"] == 1
        time.sleep(1.7)                                # 0.5 s left < margin: renew
        assert request(cur, src)["status"] == 200
        s = env.mock.stats()
        assert s["token_requests"] == 2, s["token_requests"]
        assert s["tokens_live"] == 2, s   # the old one had not expired yet: renewed *before* expiry


def test_force_refresh(env):
    src = code("tokforce")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_get_token(%s)", (src,))
        t1 = cur.fetchone()[0]
        cur.execute("SELECT dci_get_token(%s)", (src,))
        assert cur.fetchone()[0] == t1
        assert env.mock.stats()["token_requests"] == 1
        cur.execute("SELECT dci_get_token(%s, force_refresh => true)", (src,))
        t2 = cur.fetchone()[0]
        assert t2 != t1 and t2.startswith("tok-")
        assert env.mock.stats()["token_requests"] == 2
        # the new token is the one used next
        assert request(cur, src)["status"] == 200
        s = env.mock.stats()
        assert s["token_requests"] == 2
        assert s["authorization"][-1] == "Bearer " + t2, s["authorization"][-1]
    # another session sees the renewed token too (shared memory)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_get_token(%s)", (src,))
        assert cur.fetchone()[0] == t2
    assert env.mock.stats()["token_requests"] == 2


def _lifetime(env, client_id, sec, expires_in):
    env.mock.add_client(client_id, sec, expires_in=expires_in)
    src = code("tokexp")
    env.add_source(src, client_id=client_id, client_secret=sec)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT extract(epoch FROM expires_at - obtained_at) FROM dci_token_status WHERE source = %s",
                    (src,))
        return float(cur.fetchone()[0])


def test_expires_in_string_and_absent(env):
    life = _lifetime(env, "string-client", secret(), "1800")
    assert abs(life - 1800) < 2, life
    assert env.mock.stats()["token_log"][-1]["client_id"] == "string-client"
    life = _lifetime(env, "absent-client", secret(), None)
    assert abs(life - 3600) < 2, life
    life = _lifetime(env, "number-client", secret(), 900)
    assert abs(life - 900) < 2, life


def test_token_status_never_shows_token(env):
    src = code("tokstatus")
    env.add_source(src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_get_token(%s)", (src,))
        tok = cur.fetchone()[0]
        assert tok and tok.startswith("tok-")
        cur.execute("SELECT * FROM dci_token_status")
        rows = cur.fetchall()
        cols = [d[0] for d in cur.description]
        assert any(r[cols.index("source")] == src and r[cols.index("cached")] for r in rows), rows
        for r in rows:
            for v in r:
                assert tok not in str(v), (cols, r)
        cur.execute("SELECT row_to_json(t)::text FROM dci_token_status t")
        for (txt,) in cur.fetchall():
            assert tok not in txt and "tok-" not in txt, txt


def test_401_renews_token_and_resends_once(env):
    src = code("tok401")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        assert request(cur, src)["status"] == 200
        s = env.mock.stats()
        assert s["token_requests"] == 1 and s["requests"]["/echo"] == 1
        old = s["authorization"][-1]
        env.mock.revoke()                    # the registry forgets every issued token
        assert request(cur, src)["status"] == 200
        s = env.mock.stats()
        assert s["token_requests"] == 2, s["token_requests"]
        assert s["requests"]["/echo"] == 3, s["requests"]
        assert s["authorization"][-2] == old and s["authorization"][-1] != old, s["authorization"]
        # the renewed token is kept: no further token request
        assert request(cur, src)["status"] == 200
        assert env.mock.stats()["token_requests"] == 2
        # a 401 that persists: one renewal, one resend, and the second 401 is returned
        env.mock.fault("/echo", "401", count=5)
        r = request(cur, src)
        assert r["status"] == 401, r
        s = env.mock.stats()
        assert s["token_requests"] == 3, s["token_requests"]
        assert s["requests"]["/echo"] == 6, s["requests"]


def test_401_for_bearer_source_not_retried(env):
    src = code("tok401b")
    env.add_source(src, auth_type="bearer", auth_url=None, client_id=None, client_secret=None,
                   bearer_token="static-bearer-token-1")
    env.mock.reset()
    env.mock.fault("/echo", "401", count=1)
    with closing(env.connect()) as conn:
        r = request(conn.cursor(), src)
    assert r["status"] == 401
    s = env.mock.stats()
    assert s["requests"]["/echo"] == 1 and s["token_requests"] == 0, s


def test_changed_secret_in_other_session(env):
    old, new = secret(), secret()
    env.mock.add_client("rotating-client", old)
    src = code("tokrotate")
    env.add_source(src, client_id="rotating-client", client_secret=old)
    env.mock.reset()
    env.mock.add_client("rotating-client", old)
    with closing(env.connect()) as a, closing(env.connect()) as b:
        ca = a.cursor()
        assert request(ca, src)["status"] == 200
        assert env.mock.stats()["token_requests"] == 1
        # the registry rotates the secret; an admin stores the new one in another session
        env.mock.add_client("rotating-client", new)
        b.cursor().execute("UPDATE dci_data_source SET client_secret = %s WHERE code = %s", (new, src))
        r = request(ca, src)
        assert r["status"] == 200, r
        s = env.mock.stats()
        assert s["token_requests"] == 2, "changed credentials did not drop the cached token"
        assert s["token_log"][-1]["client_id"] == "rotating-client"
        # the old secret would have been refused: the new one was used
        assert len(s["token_log"]) == 2


def test_token_endpoint_wrong_secret_dc002(env):
    src = code("tokwrong")
    env.add_source(src, client_secret="definitely-wrong-secret")
    remember("definitely-wrong-secret")
    env.mock.reset()
    with closing(env.connect()) as conn:
        e, _ = expect_code(conn.cursor(), "DC002", src, contains="invalid_client")
        assert "definitely-wrong-secret" not in str(e)
    s = env.mock.stats()
    assert s["token_requests"] == 1 and "/echo" not in s["requests"], s


def test_token_endpoint_500_dc002(env):
    src = code("tok500")
    env.add_source(src)
    env.mock.reset()
    env.mock.fault(TOKEN_PATH, "500", count=5)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 2)
        expect_code(cur, "DC002", src, contains="500")
    s = env.mock.stats()
    assert s["token_requests"] == 1, s["token_requests"]      # 500 is never retried
    assert "/echo" not in s["requests"], s["requests"]


def test_token_nonjson_dc006(env):
    src = code("toknonjson")
    env.add_source(src)
    env.mock.reset()
    env.mock.fault(TOKEN_PATH, "nonjson", count=1)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_code(cur, "DC006", src)
        # the failure was not cached: the next call gets a token
        assert request(cur, src)["status"] == 200
    assert env.mock.stats()["token_requests"] == 2


def test_token_without_access_token_dc002(env):
    src = code("toknoaccess")
    env.add_source(src)
    env.mock.reset()
    env.mock.fault(TOKEN_PATH, "token_no_access", count=1)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_code(cur, "DC002", src, contains="access_token")
        cur.execute("SELECT cached FROM dci_token_status WHERE source = %s", (src,))
        assert cur.fetchone() == (False,)
    assert env.mock.stats()["requests"].get("/echo") is None


def test_read_only_and_repeatable_read(env):
    src = code("tokro")
    env.add_source(src)
    env.mock.reset()
    # read-only REPEATABLE READ transaction, cold source: fetch + call
    conn = env.connect(autocommit=False)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        cur = conn.cursor()
        cur.execute("SHOW transaction_isolation")
        assert cur.fetchone()[0] == "repeatable read"
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT dci_get_token(%s, true)", (src,))
        assert cur.fetchone()[0].startswith("tok-")
        assert request(cur, src)["status"] == 200
        conn.commit()
    finally:
        conn.close()
    assert env.mock.stats()["token_requests"] == 2
    # read-write REPEATABLE READ (Odoo): the call path assigns no transaction id
    src2 = code("tokrr")
    env.add_source(src2)
    conn = env.connect(autocommit=False)
    try:
        conn.set_session(isolation_level="REPEATABLE READ")
        cur = conn.cursor()
        assert request(cur, src2)["status"] == 200
        cur.execute("SELECT dci_get_token(%s, true)", (src2,))
        cur.execute("SELECT pg_current_xact_id_if_assigned()")
        assert cur.fetchone()[0] is None, "the call path wrote something"
        conn.commit()
    finally:
        conn.close()


def test_401_renewal_shared_between_sessions(env):
    # A renews after a 401; B, still holding the old token, gets a 401 too but
    # picks up A's renewed token from shared memory instead of fetching again.
    src = code("tok401shared")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as a, closing(env.connect()) as b:
        ca, cb = a.cursor(), b.cursor()
        assert request(ca, src)["status"] == 200
        assert request(cb, src)["status"] == 200
        assert env.mock.stats()["token_requests"] == 1
        env.mock.revoke()
        assert request(ca, src)["status"] == 200
        assert env.mock.stats()["token_requests"] == 2
        assert request(cb, src)["status"] == 200
        s = env.mock.stats()
        assert s["token_requests"] == 2, "the renewed shared token was dropped or not reused"
        assert s["requests"]["/echo"] == 6, s["requests"]
        assert s["authorization"][-1] == s["authorization"][-3], s["authorization"]
