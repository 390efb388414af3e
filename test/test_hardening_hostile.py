"""Hardening: a hostile registry (issue 5).  Slow-drip bodies end with the
budget (also on the token endpoint), oversized bodies are cut at
max_response_bytes without being held in memory (backend VmRSS), header
floods are bounded, invalid UTF-8 / NUL give 22021, deep JSON does not hurt,
redirects are not followed and carry no credential to another origin,
registry text in errors is cut to 300 characters, and the token URL's query
string (credentials there for credential_location = query) never appears in
an error."""
import json, re, time
from contextlib import closing

from support.env import CLIENT_SECRET
from support.util import TOKEN_PATH, code, expect_code, request, secret, setting

OPEN = "/open/echo"


def _none(env, prefix, **cols):
    s = code(prefix)
    row = dict(auth_type="none", auth_url=None, client_id=None, client_secret=None)
    row.update(cols)
    env.add_source(s, **row)
    return s


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def _hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_slow_drip_bounded_by_budget(env):
    api = _none(env, "hostdrip", timeout_ms=1000)
    tok = code("hostdriptok")
    env.add_source(tok, timeout_ms=1000)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        # the API: 100 bytes, one every 0.1 s, would take 10 s
        env.mock.fault(OPEN, "slow_drip", count=1, bytes=100, interval=0.1)
        e, took = expect_code(cur, "DC004", api, "GET", OPEN)
        assert took < 2.0, "slow drip took %.2f s against a 1 s budget" % took
        # the token endpoint dripping: the same budget covers it
        env.mock.fault(TOKEN_PATH, "slow_drip", count=1, bytes=100, interval=0.1)
        e, took = expect_code(cur, "DC004", tok, "GET", "/echo")
        assert took < 2.0, took
        assert CLIENT_SECRET not in str(e)
        assert request(cur, tok)["status"] == 200


def test_oversized_body_not_allocated(env):
    src = _none(env, "hosthuge")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        pid = conn.get_backend_pid()
        setting(cur, "dci_client.max_response_bytes", "1MB")
        assert request(cur, src, "GET", OPEN)["status"] == 200          # warm
        rss0 = _rss_kb(pid)
        t0 = time.monotonic()
        for mode in ("huge_chunked", "huge"):
            env.mock.fault(OPEN, mode, count=1, bytes=200 * 1024 * 1024)
            e, took = expect_code(cur, "DC005", src, "GET", OPEN, contains="max_response_bytes")
            assert took < 5, (mode, took)
        rss1, hwm = _rss_kb(pid), _hwm_kb(pid)
        grew = rss1 - rss0
        print("       oversized: 2 x 200 MB refused at 1 MB in %.2f s; VmRSS %d -> %d kB (+%d kB), VmHWM %d kB"
              % (time.monotonic() - t0, rss0, rss1, grew, hwm))
        assert grew < 8 * 1024, "backend RSS grew by %d kB while refusing 200 MB bodies" % grew
        assert hwm < rss0 + 16 * 1024, "peak RSS %d kB: the body was buffered" % hwm
        assert request(cur, src, "GET", OPEN)["status"] == 200


def test_header_flood_codes(env):
    src = _none(env, "hostflood2")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 0)
        pid = conn.get_backend_pid()
        rss0 = _rss_kb(pid)
        for n in (10000, 800):          # 1.1 MB of headers; 800 fields in 90 kB
            e, took = expect_code(cur, "DC005", src, "GET", OPEN, headers={"X-Mock-Fault": "header_flood;count=%d" % n},
                                  contains="headers")
            assert took < 3, (n, took)
        assert _rss_kb(pid) - rss0 < 8 * 1024
        # a normal number of headers is fine
        r = request(cur, src, "GET", OPEN, headers={"X-Mock-Fault": "header_flood;count=100"})
        assert r["status"] == 200 and len([h for h in r["headers"] if h.startswith("x-flood-")]) == 100


def test_invalid_text_refused(env):
    src = _none(env, "hosttext")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for mode in ("invalid_utf8", "nul"):
            expect_code(cur, "22021", src, "GET", OPEN, headers={"X-Mock-Fault": mode})
        assert request(cur, src, "GET", OPEN)["status"] == 200


def test_deep_json_token_answer(env):
    src = code("hostdeep")
    env.add_source(src)
    deep = '{"access_token": "tok-deep", "x": ' + "[" * 100000 + "]" * 100000 + "}"
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(TOKEN_PATH, "status", count=1, status=200, body=deep)
        try:
            cur.execute("SELECT dci_get_token(%s)", (src,))
            got = cur.fetchone()[0]
            assert got == "tok-deep", got
        except Exception as e:
            assert getattr(e, "pgcode", None) in ("DC006", "DC002", "54001"), e
        # the backend survived, the session works
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_redirect_to_other_origin_gets_nothing(env):
    src = code("hostredir")
    env.add_source(src)
    elsewhere = "https://127.0.0.1:%d/echo/stolen" % env.mock.ports["https"]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        assert request(cur, src)["status"] == 200                         # token cached
        env.mock.reset()
        env.mock.add_client("openspp-client", CLIENT_SECRET)
        # the API redirects to another port: returned as is, not followed
        env.mock.fault("/echo", "redirect", count=1, location=elsewhere)
        r = request(cur, src, "POST", "/echo", {"a": 1})
        assert r["status"] == 302 and r["headers"]["location"] == elsewhere, r
        # the token endpoint redirects: no token, and the credentials stay put
        env.mock.fault(TOKEN_PATH, "redirect", count=1, location=elsewhere + "/token")
        try:
            cur.execute("SELECT dci_get_token(%s, true)", (src,))
            raise AssertionError("a redirecting token endpoint yielded a token")
        except Exception as e:
            assert getattr(e, "pgcode", None) == "DC002", e
            assert "302" in str(e), str(e)
    s = env.mock.stats()
    assert "https" not in s["connections"], s["connections"]
    assert "/echo/stolen" not in s["requests"] and "/echo/stolen/token" not in s["requests"], s["requests"]


def test_registry_text_truncated(env):
    src = code("hosttrunc")
    env.add_source(src)
    long_desc = "Q" * 5000
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(TOKEN_PATH, "status", count=1, status=401,
                       body=json.dumps({"error": "invalid_client", "error_description": long_desc}))
        e, _ = expect_code(cur, "DC002", src)
        runs = [len(m) for m in re.findall(r"Q+", str(e))]
        assert runs and max(runs) <= 300, runs
        assert "..." in str(e), str(e)
        assert len(str(e)) < 1500, len(str(e))
        # control characters from the registry are neutralised
        env.mock.fault(TOKEN_PATH, "status", count=1, status=400,
                       body=json.dumps({"error": "bad\r\nX-Injected: 1\u0000", "error_description": "\u001b[31mred"}))
        e, _ = expect_code(cur, "DC002", src)
        assert "\r" not in str(e) and "\x1b" not in str(e) and "\x00" not in str(e), repr(str(e))


def test_token_url_query_never_in_errors(env):
    sec = secret()
    env.mock.add_client("query-client", sec)
    src = code("hostquery")
    env.add_source(src, client_id="query-client", client_secret=sec, credential_location="query",
                   auth_url=env.mock.token_url + "?tenant=t1", timeout_ms=1000)
    refused = code("hostqueryrefused")
    env.add_source(refused, client_id="query-client", client_secret=sec, credential_location="query",
                   auth_url="http://127.0.0.1:1/oauth2/client/token?tenant=t1")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 0)
        assert request(cur, src)["status"] == 200
        assert env.mock.stats()["token_log"][-1]["location"] == "query"
        errors = []
        for mode, want in (("500", "DC002"), ("reset", "DC003"), ("reset_headers", "DC003"),
                           ("nonjson", "DC006"), ("token_error", "DC002"), ("hang", "DC004")):
            env.mock.fault(TOKEN_PATH, mode, count=1, delay=5)
            try:
                cur.execute("SELECT dci_get_token(%s, true)", (src,))
                raise AssertionError("%s: a token came back" % mode)
            except Exception as e:
                assert getattr(e, "pgcode", None) == want, (mode, e)
                errors.append(str(e) + " " + str(getattr(e, "diag", None) and e.diag.message_detail))
        e, _ = expect_code(cur, "DC003", refused)
        errors.append(str(e))
        cur.execute("SELECT string_agg(detail, ' ') FROM dci_test_connection(%s)", (refused,))
        errors.append(cur.fetchone()[0])
    for text in errors:
        for bad in ("client_secret=", sec, "client_id=", "tenant=t1", "token?"):
            assert bad not in text, "%r in error: %s" % (bad, text)
