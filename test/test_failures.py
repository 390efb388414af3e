"""Transport and limits (README "Settings", "Functions", "Errors"): TLS trust (untrusted, expired,
wrong host, self-signed, ca_cert, verify_ssl), oversized bodies, the time
budget, allowed_hosts (never contacted), gzip, no redirects, charset."""
import json, time
from contextlib import closing

from support.util import code, expect_code, request, setting

OPEN = "/open/echo"


def _none_source(env, prefix, **cols):
    src = code(prefix)
    row = dict(auth_type="none", auth_url=None, client_id=None, client_secret=None)
    row.update(cols)
    env.add_source(src, **row)
    return src


def test_tls_untrusted_certificate(env):
    src = _none_source(env, "tlsuntrusted", base_url=env.mock.https_url)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        e, _ = expect_code(cur, "DC003", src, "GET", OPEN, contains="certificate")
        assert "issuer" in str(e).lower() or "not trusted" in str(e).lower(), str(e)
    # the handshake failed: no HTTP request was read
    assert env.mock.stats()["requests"] == {}


def test_tls_with_ca_cert(env):
    src = _none_source(env, "tlsca", base_url=env.mock.https_url, ca_cert=env.ca_pem())
    with closing(env.connect()) as conn:
        r = request(conn.cursor(), src, "GET", OPEN)
    assert r["status"] == 200, r
    assert json.loads(r["body"])["path"] == OPEN
    # and oauth2 over https, token endpoint on the same TLS origin
    src2 = code("tlsoauth")
    env.add_source(src2, base_url=env.mock.https_url, auth_url=env.mock.https_url + "/oauth2/client/token",
                   ca_cert=env.ca_pem())
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for _ in range(3):
            assert request(cur, src2)["status"] == 200
    s = env.mock.stats()
    assert s["token_requests"] == 1 and s["requests"]["/echo"] == 3
    assert s["connections"] == {"https": 1}, s["connections"]


def test_tls_expired_certificate(env):
    src = _none_source(env, "tlsexpired", base_url=env.mock.https_urls["expired"], ca_cert=env.ca_pem())
    with closing(env.connect()) as conn:
        expect_code(conn.cursor(), "DC003", src, "GET", OPEN, contains="expired")


def test_tls_wrong_host(env):
    src = _none_source(env, "tlswronghost", base_url=env.mock.https_urls["wronghost"], ca_cert=env.ca_pem())
    with closing(env.connect()) as conn:
        e, _ = expect_code(conn.cursor(), "DC003", src, "GET", OPEN)
    msg = str(e).lower()
    assert "certificate" in msg or "host name" in msg or "subject name" in msg, str(e)
    assert env.mock.stats()["requests"] == {}


def test_tls_self_signed(env):
    url = env.mock.https_urls["selfsigned"]
    src = _none_source(env, "tlsself", base_url=url)
    src_ca = _none_source(env, "tlsselfca", base_url=url, ca_cert=env.ca_pem())
    src_off = _none_source(env, "tlsselfoff", base_url=url, verify_ssl=False)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_code(cur, "DC003", src, "GET", OPEN, contains="certificate")
        expect_code(cur, "DC003", src_ca, "GET", OPEN, contains="certificate")
        assert env.mock.stats()["requests"] == {}
        r = request(cur, src_off, "GET", OPEN)
        assert r["status"] == 200, r
    assert env.mock.stats()["requests"] == {OPEN: 1}


def test_oversized_body(env):
    src = _none_source(env, "toolarge")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_response_bytes", "1MB")
        env.mock.fault(OPEN, "huge", count=1, bytes=5000000)
        t0 = time.monotonic()
        expect_code(cur, "DC005", src, "GET", OPEN)
        env.mock.fault(OPEN, "huge_chunked", count=1, bytes=5000000)
        expect_code(cur, "DC005", src, "GET", OPEN)
        assert time.monotonic() - t0 < 5
        # just under the limit is fine, and the session still works
        env.mock.fault(OPEN, "huge_chunked", count=1, bytes=1000000)
        r = request(cur, src, "GET", OPEN)
        assert r["status"] == 200 and len(r["body"]) == 1000000, (r["status"], len(r["body"]))
        assert request(cur, src, "GET", OPEN)["status"] == 200
    # not retried
    assert env.mock.stats()["requests"][OPEN] == 4


def test_max_response_bytes_superuser_only(env):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("DROP ROLE IF EXISTS dci_plain_user")
        cur.execute("CREATE ROLE dci_plain_user")
        try:
            cur.execute("SET ROLE dci_plain_user")
            try:
                cur.execute("SET dci_client.max_response_bytes = '100MB'")
                raise AssertionError("a non-superuser could raise max_response_bytes")
            except Exception as e:
                assert getattr(e, "pgcode", None) == "42501", e
        finally:
            cur.execute("RESET ROLE")
            cur.execute("DROP ROLE dci_plain_user")


def test_timeout_dc004(env):
    src = _none_source(env, "slowsrc", timeout_ms=1000)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(OPEN, "slow", count=1, delay=3)
        e, took = expect_code(cur, "DC004", src, "GET", OPEN)
        assert 0.9 <= took < 2, took
        # slow_drip: bytes keep coming, but the budget is for the whole call
        env.mock.fault(OPEN, "slow_drip", count=1, bytes=20, interval=0.2)
        e, took = expect_code(cur, "DC004", src, "GET", OPEN)
        assert took < 2, took
        assert request(cur, src, "GET", OPEN)["status"] == 200


def test_allowed_hosts_refuses_before_connecting(env):
    src = code("allowedout")
    env.add_source(src)              # oauth2: token endpoint and API both on 127.0.0.1
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.allowed_hosts = 'example.org'")
        expect_code(cur, "DC001", src, contains="allowed_hosts")
        s = env.mock.stats()
        assert s["connections"] == {} and s["requests"] == {} and s["token_requests"] == 0, s
        # bearer source: the API call itself is refused
        src_b = code("allowedbearer")
        env.add_source(src_b, auth_type="bearer", auth_url=None, client_id=None, client_secret=None,
                       bearer_token="static-bearer-token-1")
        expect_code(cur, "DC001", src_b)
        assert env.mock.stats()["connections"] == {}
        cur.execute("RESET dci_client.allowed_hosts")
        assert request(cur, src)["status"] == 200


def test_allowed_hosts_by_system_setting(env):
    src = code("allowedsys")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as admin:
        ac = admin.cursor()
        ac.execute("ALTER SYSTEM SET dci_client.allowed_hosts = 'example.org, *.example.net, 10.0.0.0/8'")
        ac.execute("SELECT pg_reload_conf()")
        try:
            time.sleep(0.3)
            with closing(env.connect()) as conn:
                cur = conn.cursor()
                cur.execute("SHOW dci_client.allowed_hosts")
                assert "example.org" in cur.fetchone()[0]
                expect_code(cur, "DC001", src)
            assert env.mock.stats()["connections"] == {}
        finally:
            ac.execute("ALTER SYSTEM RESET dci_client.allowed_hosts")
            ac.execute("SELECT pg_reload_conf()")
            time.sleep(0.3)
    with closing(env.connect()) as conn:
        assert request(conn.cursor(), src)["status"] == 200


def test_allowed_hosts_name_resolving_to_loopback(env):
    port = env.mock.ports["http"]
    src = _none_source(env, "allowedlocal", base_url="http://localhost:%d" % port)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.allowed_hosts = 'localhost'")
        expect_code(cur, "DC001", src, "GET", OPEN, contains="allowed_hosts")
        assert env.mock.stats()["connections"] == {}
        # loopback listed as a range: allowed
        cur.execute("SET dci_client.allowed_hosts = 'localhost, 127.0.0.1/32'")
        r = request(cur, src, "GET", OPEN)
        assert r["status"] == 200, r


def test_allowed_hosts_cidr_allows(env):
    src = code("allowedcidr")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1/32'")
        assert request(cur, src)["status"] == 200
        # the token endpoint is checked too
        src2 = code("allowedtok")
        env.add_source(src2, auth_url="http://localhost:%d/oauth2/client/token" % env.mock.ports["http"])
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1'")
        expect_code(cur, "DC001", src2)
    s = env.mock.stats()
    assert s["token_requests"] == 1 and s["requests"]["/echo"] == 1, s


def test_gzip_body_decoded(env):
    src = _none_source(env, "gzipsrc")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(OPEN, "gzip", count=1)
        r = request(cur, src, "GET", OPEN)
    assert r["status"] == 200, r
    assert r["headers"].get("content-encoding") == "gzip", r["headers"]
    body = json.loads(r["body"])
    assert body["path"] == OPEN and "gzip" in body["headers"].get("accept-encoding", ""), body


def test_redirect_not_followed(env):
    src = _none_source(env, "redirsrc")
    target = env.mock.http_url + "/open/echo/redirected"
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(OPEN, "redirect", count=1, location=target)
        r = request(cur, src, "GET", OPEN)
    assert r["status"] == 302, r
    assert r["headers"].get("location") == target, r["headers"]
    assert json.loads(r["body"]) == {"moved": True}
    s = env.mock.stats()
    assert "/open/echo/redirected" not in s["requests"], s["requests"]
    assert s["requests"] == {OPEN: 1}, s["requests"]


def test_redirect_does_not_leak_token(env):
    src = code("redirtok")
    env.add_source(src)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault("/echo", "redirect", count=1, location="http://localhost:%d/echo/elsewhere"
                       % env.mock.ports["http"])
        assert request(cur, src)["status"] == 302
    s = env.mock.stats()
    assert "/echo/elsewhere" not in s["requests"] and len(s["authorization"]) == 1, s


def test_charset_and_invalid_body(env):
    src = _none_source(env, "charsetsrc")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(OPEN, "charset", count=1)
        r = request(cur, src, "GET", OPEN)
        assert json.loads(r["body"]) == {"name": "José"}, r["body"]
        env.mock.fault(OPEN, "invalid_utf8", count=1)
        expect_code(cur, "22021", src, "GET", OPEN)
        env.mock.fault(OPEN, "nul", count=1)
        expect_code(cur, "22021", src, "GET", OPEN)
        assert request(cur, src, "GET", OPEN)["status"] == 200


def test_bad_arguments_22023(env):
    src = _none_source(env, "badargs")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_code(cur, "22023", src, "TRACE", OPEN)
        expect_code(cur, "22023", src, "GET", "open/echo")
        expect_code(cur, "22023", src, "GET", "/open/../echo")
        expect_code(cur, "22023", src, "GET", OPEN, headers={"Authorization": "Bearer x"})
        expect_code(cur, "22023", src, "GET", OPEN, headers={"X-Evil": "a\r\nHost: evil"})
        assert request(cur, src, "get", OPEN + "?a=b")["status"] == 200
    assert env.mock.stats()["requests"] == {OPEN: 1}


def test_unknown_and_inactive_source_dc001(env):
    src = code("inactive")
    env.add_source(src, active=False)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_code(cur, "DC001", "no_such_source_here", contains="does not exist")
        expect_code(cur, "DC001", src, contains="not active")
    s = env.mock.stats()
    assert s["connections"] == {} and s["token_requests"] == 0, s
