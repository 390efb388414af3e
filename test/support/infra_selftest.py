#!/usr/bin/python3
"""Self-test of the test infrastructure (mock registry + harness), not of the extension.

Why: the extension's tests will trust the mock's counters and faults; this checks
them with plain http.client/ssl so a mock bug is not mistaken for an extension bug.
Run: /usr/bin/python3 test/support/infra_selftest.py   (as root; prints "N passed, N failed")
"""
import base64, gzip, http.client, json, os, socket, ssl, subprocess, sys, tempfile, time, traceback
from urllib.parse import quote, urlencode, urlsplit

sys.dont_write_bytecode = True          # no __pycache__ litter in test/
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import harness  # noqa: E402

TESTS = []
CID, SECRET = "openspp-client", "s3cr3t-Pa55word"


def test(fn):
    TESTS.append(fn)
    return fn


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def call(url, method="GET", path="/", body=None, headers=None, timeout=5, ctx=None):
    """One request on a fresh connection: (status, {lower-name: value}, body bytes)."""
    u = urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def get_token(loc="body", cid=CID, secret=SECRET, scope=None, grant="client_credentials"):
    form, path, hdrs = {"grant_type": grant}, "/oauth2/client/token", {
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if scope:
        form["scope"] = scope
    if loc == "body":
        form.update(client_id=cid, client_secret=secret)
    elif loc == "basic":
        raw = "%s:%s" % (quote(cid, safe=""), quote(secret, safe=""))
        hdrs["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
    elif loc == "query":
        path += "?" + urlencode({"client_id": cid, "client_secret": secret})
    st, h, b = call(M.http_url, "POST", path, urlencode(form), hdrs)
    return st, json.loads(b)


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


# ---------------------------------------------------------------- mock: auth
@test
def token_locations():
    for loc in ("body", "basic", "query"):
        st, j = get_token(loc, scope="registry.search")
        check(st == 200 and j["access_token"].startswith("tok-") and j["expires_in"] == 3600, (loc, st, j))
        rec = M.stats()["token_log"][-1]
        check(rec["location"] == loc and rec["client_id"] == CID and rec["scope"] == "registry.search", rec)
        check(rec["secret_in_" + loc] and rec["grant_type"] == "client_credentials", rec)
        check(rec["accept"] == "application/json", rec)
    s = M.stats()
    check(s["token_requests"] == 3 and s["token_issued"] == 3, s)


@test
def token_errors():
    st, j = get_token(secret="wrong")
    check(st == 401 and j["error"] == "invalid_client", j)
    st, j = get_token(grant="password")
    check(st == 400 and j["error"] == "unsupported_grant_type", j)
    check(M.stats()["token_issued"] == 0)


@test
def api_auth():
    st, _, b = call(M.http_url, "GET", "/registry/ping")
    check(st == 401 and json.loads(b)["error"] == "invalid_token", (st, b))
    tok = get_token()[1]["access_token"]
    st, _, b = call(M.http_url, "GET", "/registry/ping", headers=bearer(tok))
    check(st == 200 and json.loads(b) == {"status": "ok"}, (st, b))
    st, _, _ = call(M.http_url, "GET", "/registry/ping", headers=bearer("static-bearer-token-1"))
    check(st == 200)
    s = M.stats()
    check(s["authorization"] == [None, "Bearer " + tok, "Bearer static-bearer-token-1"], s["authorization"])
    check(s["requests"]["/registry/ping"] == 3 and s["methods"]["/registry/ping"] == {"GET": 3}, s)


@test
def revoke_expire_bearer():
    tok = get_token()[1]["access_token"]
    M.revoke()
    check(call(M.http_url, "GET", "/registry/ping", headers=bearer(tok))[0] == 401)
    tok = get_token()[1]["access_token"]
    M.expire_tokens()
    check(call(M.http_url, "GET", "/registry/ping", headers=bearer(tok))[0] == 401)
    M.set_bearer(["other"])
    check(call(M.http_url, "GET", "/registry/ping", headers=bearer("static-bearer-token-1"))[0] == 401)
    check(call(M.http_url, "GET", "/registry/ping", headers=bearer("other"))[0] == 200)


@test
def clients_expires_formats():
    M.add_client("c-str", "p w/é", expires_in="36000")
    M.add_client("c-absent", "x", expires_in=None)
    st, j = get_token("basic", "c-str", "p w/é")         # url-encoded inside Basic
    check(st == 200 and j["expires_in"] == "36000", j)
    st, j = get_token("body", "c-absent", "x")
    check(st == 200 and "expires_in" not in j, j)
    check(set(M.stats()["clients"]) == {CID, "c-str", "c-absent"})


@test
def reset_clears():
    M.add_client("tmp", "x")
    get_token()
    M.fault("/registry/ping", "500", count=5)
    M.reset()
    s = M.stats()
    check(s["token_requests"] == 0 and s["faults"] == [] and s["clients"] == [CID] and s["connections"] == {}, s)


# ---------------------------------------------------------------- mock: data API
@test
def echo_and_open():
    st, _, b = call(M.http_url, "PUT", "/echo/a/b?x=1", '{"k":1}',
                    dict(bearer("static-bearer-token-1"), **{"X-Custom": "v"}))
    j = json.loads(b)
    check(st == 200 and j["method"] == "PUT" and j["path"] == "/echo/a/b" and j["query"] == "x=1", j)
    check(j["body"] == '{"k":1}' and j["headers"]["x-custom"] == "v", j)
    st, _, b = call(M.http_url, "DELETE", "/open/echo")
    check(st == 200 and json.loads(b)["method"] == "DELETE")
    st, h, b = call(M.http_url, "HEAD", "/open/echo")
    check(st == 200 and b == b"" and int(h["content-length"]) > 0, (st, h))
    check(M.stats()["last_request"]["/echo/a/b"]["query"] == "x=1")


@test
def sync_search():
    ts = "2026-01-01T00:00:00.000Z"
    env = {"signature": "", "header": {
        "version": "1.0.0", "message_id": "0c96614c-7255-4774-b109-cd53ee851769", "message_ts": ts,
        "action": "search", "sender_id": "openspp", "total_count": 1}, "message": {
        "transaction_id": "T1", "search_request": [{"reference_id": "R1", "timestamp": ts, "search_criteria": {
            "query_type": "idtype-value", "query": {"type": "UIN", "value": "847951632"}}}]}}
    hdrs = dict(bearer("static-bearer-token-1"), **{"Content-Type": "application/json"})
    st, _, b = call(M.http_url, "POST", "/registry/sync/search", json.dumps(env), hdrs)
    j = json.loads(b)
    item = j["message"]["search_response"][0]
    check(st == 200 and j["header"]["status"] == "succ" and j["message"]["transaction_id"] == "T1", j)
    check(item["reference_id"] == "R1" and item["data"]["reg_records"][0]["id"] == 1, item)
    # an envelope that breaks the DCI schema: HTTP 400, rjct, and recorded as a violation
    st, _, b = call(M.http_url, "POST", "/registry/sync/search", json.dumps({"header": {}, "message": {}}), hdrs)
    j = json.loads(b)
    check(st == 400 and j["header"]["status"] == "rjct"
          and j["header"]["status_reason_code"] == "rjct.request.invalid", j)
    v = M.stats()["dci_validation"]
    check(v[-2]["ok"] and not v[-1]["ok"] and "header.message_id is required" in v[-1]["errors"], v)


@test
def keepalive_connection_count():
    conn = http.client.HTTPConnection("127.0.0.1", M.ports["http"], timeout=5)
    for _ in range(3):
        conn.request("GET", "/open/echo")
        conn.getresponse().read()
    conn.close()
    s = M.stats()
    check(s["connections"]["http"] == 1 and s["requests"]["/open/echo"] == 3, s)


# ---------------------------------------------------------------- mock: faults
@test
def fault_503_retry_after():
    M.fault("/open/echo", "503", count=2, retry_after=2)
    for _ in range(2):
        st, h, _ = call(M.http_url, "GET", "/open/echo")
        check(st == 503 and h["retry-after"] == "2", (st, h))
    check(call(M.http_url, "GET", "/open/echo")[0] == 200)
    st, h, _ = call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "429;retry_after=1"})
    check(st == 429 and h["retry-after"] == "1")


@test
def fault_token_path():
    M.fault("/oauth2/client/token", "token_no_access")
    st, j = get_token()
    check(st == 200 and "access_token" not in j, j)
    M.fault("*", "token_error")
    st, j = get_token()
    check(st == 400 and j["errors"][0]["code"] == "err.invalid", j)
    check(M.stats()["token_requests"] == 2)


@test
def fault_gzip_charset_redirect_dup():
    st, h, b = call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "gzip", "Accept-Encoding": "gzip"})
    check(st == 200 and h["content-encoding"] == "gzip" and json.loads(gzip.decompress(b))["path"] == "/open/echo")
    st, h, b = call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "charset"})
    check("ISO-8859-1" in h["content-type"] and b.decode("latin-1") == '{"name":"José"}', (h, b))
    st, h, _ = call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "redirect;location=http://x/y"})
    check(st == 302 and h["location"] == "http://x/y")
    conn = http.client.HTTPConnection("127.0.0.1", M.ports["http"], timeout=5)
    conn.request("GET", "/open/echo", headers={"X-Mock-Fault": "duplicate_headers"})
    r = conn.getresponse()
    check(r.msg.get_all("X-Dup") == ["a", "b"] and len(r.msg.get_all("Set-Cookie")) == 2)
    conn.close()
    check(call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "nul"})[2] == b'{"name":"a\x00b"}')


@test
def fault_huge():
    st, h, b = call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "huge;bytes=1048576"})
    check(st == 200 and int(h["content-length"]) == len(b) == 1048576 and json.loads(b)["pad"][:3] == "xxx")
    M.fault("/open/echo", "huge_chunked", bytes=1048576)
    st, h, b = call(M.http_url, "GET", "/open/echo")
    check(h.get("transfer-encoding") == "chunked" and "content-length" not in h and len(b) == 1048576, h)


@test
def fault_hang_timeout():
    M.fault("/open/echo", "hang", delay=5)
    t = time.monotonic()
    try:
        call(M.http_url, "GET", "/open/echo", timeout=1)
        check(False, "no timeout")
    except (socket.timeout, TimeoutError):
        pass
    check(time.monotonic() - t < 2.5)


@test
def fault_reset_and_close():
    for mode in ("reset", "reset_headers", "reset_body"):
        M.fault("/open/echo", mode)
        try:
            call(M.http_url, "GET", "/open/echo")
            check(False, mode + ": got an answer")
        except (ConnectionResetError, http.client.RemoteDisconnected, http.client.IncompleteRead) as e:
            check(mode != "reset" or isinstance(e, ConnectionResetError), (mode, e))
    M.reset()
    M.fault("*", "close_before")
    try:
        call(M.http_url, "GET", "/open/echo")
        check(False, "close_before: got an answer")
    except (ConnectionError, http.client.RemoteDisconnected):
        pass
    s = M.stats()
    check(s["connections"]["http"] == 1 and s["requests"] == {}, s)
    st, _, _ = call(M.http_url, "GET", "/open/echo", headers={"X-Mock-Fault": "slow;delay=0.3"})
    check(st == 200)


@test
def fault_header_flood():
    # http.client refuses > 100 headers, so read the raw answer.
    with socket.create_connection(("127.0.0.1", M.ports["http"]), timeout=5) as s:
        s.sendall(b"GET /open/echo HTTP/1.1\r\nHost: x\r\nX-Mock-Fault: header_flood;count=500\r\n\r\n")
        data = b""
        while b'{"status":"ok"}' not in data:
            chunk = s.recv(65536)
            check(chunk, "connection closed early")
            data += chunk
    check(data.count(b"X-Flood-") == 500)


# ---------------------------------------------------------------- mock: TLS
def ctx(ca=True, client=False):
    c = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt") if ca else None)
    if client:
        c.load_cert_chain(os.path.join(CERTS, "client.crt"), os.path.join(CERTS, "client.key"))
    return c


@test
def tls_ok_and_mtls():
    check(call(M.https_url, "GET", "/open/echo", ctx=ctx())[0] == 200)
    check(call(M.https_urls["mtls"], "GET", "/open/echo", ctx=ctx(client=True))[0] == 200)
    try:
        call(M.https_urls["mtls"], "GET", "/open/echo", ctx=ctx())
        check(False, "mtls without client cert answered")
    except (ssl.SSLError, ConnectionError):
        pass
    s = M.stats()["connections"]
    check(s["https"] == 1 and s["https_mtls"] == 2, s)


@test
def tls_bad_certs():
    for name, why in (("expired", "expired"), ("wronghost", "mismatch"), ("selfsigned", "self")):
        try:
            call(M.https_urls[name], "GET", "/open/echo", ctx=ctx())
            check(False, name + " accepted")
        except ssl.SSLCertVerificationError as e:
            check(why in str(e).lower(), (name, e))
    check(call(M.https_urls["selfsigned"], "GET", "/open/echo",
               ctx=ssl._create_unverified_context())[0] == 200)


# ---------------------------------------------------------------- harness: cluster
@test
def cluster_basics():
    global PG_DIR
    with harness.Cluster() as c:
        c.start(preload=False, conf={"work_mem": "8MB"})
        PG_DIR = c.tmpdir
        check(c.execute("SELECT 1") == [(1,)])
        check(c.execute("SHOW work_mem") == [("8MB",)])
        c.set_conf({"work_mem": "16MB"})
        check(c.execute("SHOW work_mem") == [("16MB",)])
        conn = c.connect()
        check(c.backend_pid(conn) > 0)
        conn.close()
        c.restart()
        check(c.execute("SELECT current_setting('max_connections')") == [("40",)])
        check("database system is ready" in c.log_text())
    check(not os.path.exists(PG_DIR), "tmpdir left behind")


def leftovers():
    ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [l for l in ps.splitlines() if "mock_registry.py" in l or (PG_DIR and PG_DIR in l)]


def main():
    global M, CERTS, PG_DIR
    PG_DIR = None
    t = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="dci_certs_")
    CERTS = harness.make_certs(tmp)
    print("certs in %.2fs" % (time.monotonic() - t))
    M = harness.MockRegistry().start(CERTS)
    passed = failed = 0
    try:
        for fn in TESTS:
            M.reset()
            try:
                fn()
                passed += 1
                print("ok   ", fn.__name__)
            except Exception:
                failed += 1
                print("FAIL ", fn.__name__)
                traceback.print_exc()
    finally:
        mock_pid = M.ports["pid"]
        M.stop()
        subprocess.run(["rm", "-rf", tmp])
    try:
        os.kill(mock_pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    left = leftovers()
    if alive or left:
        failed += 1
        print("FAIL  leftover processes:", alive, left)
    else:
        passed += 1
        print("ok    no leftover processes")
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
