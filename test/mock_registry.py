#!/usr/bin/python3
"""Mock DCI registry for the dci_client tests.

Why a standalone process: the extension runs inside PostgreSQL backends, so the
registry must be a real TCP server outside the test process; faults (resets,
hangs, floods) are easier to produce reliably on raw sockets we own.

Usage: mock_registry.py --certdir DIR
Prints one JSON line {"http": P, "https": P, "control": P, "pid": N, ...} and
serves until SIGTERM/SIGINT. Data listeners: http, https (+ https_expired,
https_wronghost, https_selfsigned, https_mtls when DIR/NAME.crt exists).
The control listener (plain HTTP) never touches the counters.
"""
import argparse, base64, gzip, json, os, secrets, signal, socket, ssl, struct
import sys, threading, time, uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit

TOKEN_PATH = "/oauth2/client/token"
SHUTDOWN = threading.Event()          # hang/slow_drip poll it so SIGTERM is prompt
DEFAULT_CLIENTS = {"openspp-client": {"client_id": "openspp-client", "client_secret": "s3cr3t-Pa55word",
                                      "expires_in": 3600, "expires_in_format": "number"}}
DEFAULT_BEARER = ["static-bearer-token-1"]
EXTRA_TLS = ("expired", "wronghost", "selfsigned", "mtls")


class State:
    """All mutable mock state, behind one lock (handlers run in many threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.clients = json.loads(json.dumps(DEFAULT_CLIENTS))
            self.bearer = list(DEFAULT_BEARER)
            self.tokens = {}              # token -> {"expires": monotonic, "revoked": bool}
            self.faults = []              # [{"path", "mode", "remaining", "params"}]
            self.connections = {}
            self.requests, self.methods, self.last_request = {}, {}, {}
            self.token_requests = self.token_issued = 0
            self.authorization, self.token_log = [], []

    def stats(self):
        with self.lock:
            return {"connections": dict(self.connections), "requests": dict(self.requests),
                    "methods": json.loads(json.dumps(self.methods)),
                    "token_requests": self.token_requests, "token_issued": self.token_issued,
                    "authorization": list(self.authorization), "token_log": list(self.token_log),
                    "last_request": dict(self.last_request),
                    "faults": [dict(f) for f in self.faults],
                    "clients": sorted(self.clients), "bearer_tokens": list(self.bearer),
                    "tokens_live": sum(1 for t in self.tokens.values()
                                       if not t["revoked"] and t["expires"] > time.monotonic())}

    def take_fault(self, path, at_accept=False):
        """Pop one queued fault for this request (or, at accept, a close_before fault)."""
        with self.lock:
            for f in self.faults:
                if at_accept != (f["mode"] == "close_before"):
                    continue
                if at_accept or f["path"] in (path, "*"):
                    f["remaining"] -= 1
                    if f["remaining"] <= 0:
                        self.faults.remove(f)
                    return f["mode"], dict(f["params"])
        return None

    def token_ok(self, tok):
        with self.lock:
            if tok in self.bearer:
                return True
            t = self.tokens.get(tok)
            return bool(t) and not t["revoked"] and t["expires"] > time.monotonic()


STATE = State()


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jbody(obj, status=200, extra=()):
    """A normal JSON answer: (status, [(name, value)], bytes)."""
    return status, [("Content-Type", "application/json")] + list(extra), json.dumps(obj).encode()


# ---------------------------------------------------------------- data API
def h_ping(req):
    if req.method not in ("GET", "POST", "HEAD"):
        return jbody({"error": "method_not_allowed"}, 405)
    return jbody({"status": "ok"})


def h_sync_search(req):
    # Minimal DCI sync search answer; later tasks extend the DCI endpoints via ROUTES.
    if req.method != "POST":
        return jbody({"error": "method_not_allowed"}, 405)
    try:
        msg = json.loads(req.body or "{}")
    except ValueError:
        msg = {}
    m = msg.get("message") if isinstance(msg, dict) else None
    m = m if isinstance(m, dict) else {}
    items = m.get("search_request") if isinstance(m.get("search_request"), list) else [{}]
    ref = (items[0] or {}).get("reference_id", str(uuid.uuid4())) if items and isinstance(items[0], dict) else ""
    header = {"version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": now_iso(),
              "action": "on-search", "status": "succ", "total_count": 1, "completed_count": 1,
              "sender_id": "mock-registry", "receiver_id": (msg.get("header") or {}).get("sender_id", "")
              if isinstance(msg.get("header"), dict) else "", "is_msg_encrypted": False, "meta": {}}
    message = {"correlation_id": str(uuid.uuid4()), "search_response": [{
        "reference_id": ref, "timestamp": now_iso(), "status": "succ",
        "data": {"reg_records": [{"id": 1}]},
        "pagination": {"page_size": 100, "page_number": 1, "total_count": 1}}]}
    if "transaction_id" in m:
        message["transaction_id"] = m["transaction_id"]
    return jbody({"signature": "", "header": header, "message": message})


def h_echo(req):
    return jbody({"method": req.method, "path": req.path, "query": req.query,
                  "headers": req.hdrs, "body": req.body})


ROUTES = {"/registry/ping": h_ping, "/registry/sync/search": h_sync_search}
PREFIX_ROUTES = {"/echo": h_echo, "/open/echo": h_echo}   # path itself or any sub-path


def route(req):
    h = ROUTES.get(req.path)
    if h is None:
        for p, fn in PREFIX_ROUTES.items():
            if req.path == p or req.path.startswith(p + "/"):
                h = fn
    return h(req) if h else jbody({"error": "not_found", "path": req.path}, 404)


def h_token(req):
    """OAuth2 client-credentials grant; credentials from basic header, body or query."""
    ctype = req.hdrs.get("content-type", "")
    form = parse_qs(req.body, keep_blank_values=True) if "x-www-form-urlencoded" in ctype else {}
    q = parse_qs(req.query, keep_blank_values=True)
    one = lambda d, k: d[k][0] if k in d else None
    basic_id = basic_secret = None
    auth = req.hdrs.get("authorization")
    if auth and auth[:6].lower() == "basic ":
        try:   # RFC 6749 2.3.1: form-urlencode id and secret, then base64 "id:secret"
            i, _, s = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            basic_id, basic_secret = unquote_plus(i), unquote_plus(s)
        except ValueError:
            pass
    if basic_id is not None:
        loc, cid, csec = "basic", basic_id, basic_secret
    elif "client_id" in form:
        loc, cid, csec = "body", one(form, "client_id"), one(form, "client_secret")
    elif "client_id" in q:
        loc, cid, csec = "query", one(q, "client_id"), one(q, "client_secret")
    else:
        loc, cid, csec = "none", None, None
    grant = one(form, "grant_type")
    rec = {"location": loc, "client_id": cid, "scope": one(form, "scope"), "grant_type": grant,
           "content_type": ctype, "accept": req.hdrs.get("accept"), "query_keys": sorted(q),
           "body_keys": sorted(form), "has_authorization": auth is not None,
           "secret_in_body": "client_secret" in form, "secret_in_query": "client_secret" in q,
           "secret_in_basic": basic_secret is not None}
    with STATE.lock:
        STATE.token_log.append(rec)
        client = STATE.clients.get(cid) if cid is not None else None
    if grant != "client_credentials":
        return jbody({"error": "unsupported_grant_type"}, 400)
    if not client or client["client_secret"] != csec:
        return jbody({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
    fmt, exp = client.get("expires_in_format", "number"), client.get("expires_in")
    try:
        life = float(exp) if exp is not None and fmt != "absent" else 3600.0
    except ValueError:
        life = 3600.0
    with STATE.lock:
        STATE.token_issued += 1
        tok = "tok-%d-%s" % (STATE.token_issued, secrets.token_hex(4))
        STATE.tokens[tok] = {"expires": time.monotonic() + life, "revoked": False}
    out = {"access_token": tok, "token_type": "bearer"}
    if fmt == "number":     # coerce "3600" to 3600 when the test asked for a number
        out["expires_in"] = exp if not isinstance(exp, str) else (float(exp) if "." in exp else int(exp))
    elif fmt == "string":
        out["expires_in"] = str(exp)
    return jbody(out)


# ---------------------------------------------------------------- faults
def parse_fault_header(v):
    """X-Mock-Fault: mode[;param=value...] (one-off fault chosen by the request)."""
    parts = [p.strip() for p in v.split(";") if p.strip()]
    params = dict(p.partition("=")[::2] for p in parts[1:])
    return parts[0], params


def num(params, key, default):
    v = params.get(key)
    return default if v is None else (float(v) if "." in str(v) else int(v))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive, like real registries
    disable_nagle_algorithm = True         # no 40 ms delayed-ACK stalls on keep-alive
    timeout = 300                          # idle keep-alive connections eventually go away

    def log_message(self, *a):             # keep stderr for real crashes only
        pass

    def setup(self):
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()    # in the worker thread, not the accept loop

    def handle(self):
        try:
            super().handle()
        except OSError:                    # peer went away / TLS failure / our own abort()
            self.close_connection = True
        except ValueError as e:            # I/O on a file closed by abort()
            if "closed" not in str(e):
                raise

    # -- request plumbing
    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def dispatch(self):
        u = urlsplit(self.path)
        self.raw_body = self.read_body()
        self.body = self.raw_body.decode("utf-8", "replace")
        self.path, self.query, self.full_path = u.path, u.query, self.path
        self.method = self.command
        self.hdrs = {k.lower(): v for k, v in self.headers.items()}
        is_token = self.path == TOKEN_PATH or self.path.endswith("/token")
        with STATE.lock:
            STATE.requests[self.path] = STATE.requests.get(self.path, 0) + 1
            pm = STATE.methods.setdefault(self.path, {})
            pm[self.method] = pm.get(self.method, 0) + 1
            STATE.last_request[self.path] = {"method": self.method, "headers": self.hdrs,
                                             "body": self.body, "query": self.query}
            if is_token:
                STATE.token_requests += 1
            else:
                STATE.authorization.append(self.hdrs.get("authorization"))
        hv = self.headers.get("X-Mock-Fault")
        fault = parse_fault_header(hv) if hv else STATE.take_fault(self.path)
        if fault:
            mode, params = fault
            if self.apply_fault(mode, params, is_token):
                return
        self.send(*self.normal(is_token))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = dispatch

    def normal(self, is_token):
        if is_token:
            return h_token(self)
        if not self.path.startswith("/open/"):
            a = self.hdrs.get("authorization", "")
            if a[:7].lower() != "bearer " or not STATE.token_ok(a[7:].strip()):
                return jbody({"error": "invalid_token"}, 401, [("WWW-Authenticate", 'Bearer error="invalid_token"')])
        return route(self)

    def send(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.method != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def abort(self, rst=True, linger=0.1):
        """Drop the connection; with rst, SO_LINGER(1, 0) makes close() send a TCP RST."""
        self.close_connection = True
        try:
            self.wfile.flush()
            if linger:
                time.sleep(linger)     # let already-sent bytes reach the peer before the RST
            if rst:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.request.close()
        except OSError:
            pass

    def sleep(self, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end and not SHUTDOWN.is_set():
            time.sleep(min(0.1, max(0, end - time.monotonic())))

    def apply_fault(self, mode, p, is_token):
        """Returns True when the fault produced the whole answer (or no answer)."""
        w = self.request.sendall
        if mode == "slow":
            self.sleep(num(p, "delay", 2))
            return False
        if mode == "hang":
            self.sleep(num(p, "delay", 60))
            self.abort(rst=False, linger=0)
        elif mode in ("reset", "close_before"):
            self.abort(rst=(mode == "reset"), linger=0)
        elif mode == "reset_headers":
            w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            self.abort()
        elif mode == "reset_body":
            w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"data":"x')
            self.abort()
        elif mode == "status" or mode in ("401", "429", "500", "502", "503", "504"):
            st = int(p.get("status", mode if mode != "status" else 500))
            hdrs = [("Content-Type", p.get("content_type", "application/json"))]
            if "retry_after" in p:
                hdrs.append(("Retry-After", str(p["retry_after"])))
            if st == 401:
                hdrs.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            body = p.get("body")
            body = json.dumps({"error": "invalid_token" if st == 401 else "mock status %d" % st}) if body is None else body
            self.send(st, hdrs, body.encode() if isinstance(body, str) else json.dumps(body).encode())
        elif mode in ("huge", "huge_chunked"):
            self.send_huge(int(num(p, "bytes", 20 * 1024 * 1024)), mode == "huge_chunked")
        elif mode == "nonjson":
            self.send(200, [("Content-Type", "text/html")], b"<html>not json</html>")
        elif mode == "gzip":
            st, hdrs, body = self.normal(is_token)
            self.send(st, hdrs + [("Content-Encoding", "gzip")], gzip.compress(body))
        elif mode == "charset":
            self.send(200, [("Content-Type", "application/json; charset=ISO-8859-1")],
                      '{"name":"José"}'.encode("latin-1"))
        elif mode == "invalid_utf8":
            self.send(200, [("Content-Type", "application/json")], b'{"name":"\xff\xfe"}')
        elif mode == "nul":
            self.send(200, [("Content-Type", "application/json")], b'{"name":"a\x00b"}')
        elif mode == "redirect":
            self.send(302, [("Location", p.get("location", "http://127.0.0.1:1/elsewhere")),
                            ("Content-Type", "application/json")], b'{"moved":true}')
        elif mode == "header_flood":
            val = "v" * 100
            self.send(200, [("Content-Type", "application/json")] +
                      [("X-Flood-%d" % i, val) for i in range(int(num(p, "count", 10000)))], b'{"status":"ok"}')
        elif mode == "slow_drip":
            n, iv = int(num(p, "bytes", 10)), float(num(p, "interval", 0.5))
            w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % n)
            for _ in range(n):
                if SHUTDOWN.is_set():
                    break
                self.sleep(iv)
                w(b" ")
        elif mode == "duplicate_headers":
            st, hdrs, body = self.normal(is_token)
            self.send(st, hdrs + [("X-Dup", "a"), ("X-Dup", "b"), ("Set-Cookie", "a=1; Path=/"),
                                  ("Set-Cookie", "b=2; Path=/")], body)
        elif mode == "token_no_access":
            self.send(*jbody({"token_type": "bearer"}))
        elif mode == "token_error":
            self.send(*jbody({"errors": [{"code": "err.invalid", "message": "bad"}]}, 400))
        else:
            self.send(*jbody({"error": "unknown mock fault", "mode": mode}, 500))
        return True

    def send_huge(self, n, chunked):
        # Valid JSON of exactly n bytes when n >= 10, so a client with a high limit can parse it.
        head, tail = (b'{"pad":"', b'"}') if n >= 10 else (b"", b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked") if chunked else self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.method == "HEAD":
            return
        self.wfile.flush()
        left, first, chunk = n - len(tail), True, b"x" * 65536
        while left > 0:
            part = (head + chunk)[:min(65536, left)] if first else chunk[:min(65536, left)]
            first, left = False, left - len(part)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if tail:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail) if chunked else tail)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class DataServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name, ctx=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.name = name
        if ctx:   # handshake later, in the handler thread, so a silent client can't block accept()
            self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request, client_address):
        with STATE.lock:
            STATE.connections[self.name] = STATE.connections.get(self.name, 0) + 1
        if STATE.take_fault(None, at_accept=True):
            request.close()     # close_before: drop right after accept, nothing read
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):   # TLS handshake failures etc. are expected
            super().handle_error(request, client_address)


# ---------------------------------------------------------------- control API
class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.split("?")[0] == "/stats":
            return self.reply(STATE.stats())
        self.reply({"error": "not_found"}, 404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            d = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply({"error": "bad json"}, 400)
        p = self.path.split("?")[0]
        with STATE.lock:
            if p == "/fault":
                params = {k: v for k, v in d.items() if k not in ("path", "mode", "count")}
                STATE.faults.append({"path": d.get("path", "*"), "mode": str(d["mode"]),
                                     "remaining": int(d.get("count", 1)), "params": params})
            elif p == "/clients":
                exp = d.get("expires_in")
                fmt = d.get("expires_in_format") or ("absent" if exp is None else
                                                     "string" if isinstance(exp, str) else "number")
                STATE.clients[d["client_id"]] = {"client_id": d["client_id"], "client_secret": d.get("client_secret"),
                                                 "expires_in": exp, "expires_in_format": fmt}
            elif p == "/revoke":
                for t in STATE.tokens.values():
                    t["revoked"] = True
            elif p == "/expire_tokens":
                for t in STATE.tokens.values():
                    t["expires"] = time.monotonic() - 1
            elif p == "/bearer":
                STATE.bearer = list(d.get("tokens", []))
            elif p != "/reset":
                return self.reply({"error": "not_found"}, 404)
        if p == "/reset":
            STATE.reset()
        self.reply({"ok": True})


def tls_context(certdir, name, require_client=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certdir, name + ".crt"), os.path.join(certdir, name + ".key"))
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.path.join(certdir, "ca.crt"))
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--certdir", required=True)
    ap.add_argument("--parent-watch", action="store_true",
                    help="exit when stdin reaches EOF (the parent died or closed the pipe)")
    a = ap.parse_args()
    servers = {"http": DataServer("http"), "https": DataServer("https", tls_context(a.certdir, "server"))}
    for name in EXTRA_TLS:
        if os.path.exists(os.path.join(a.certdir, name + ".crt")):
            servers["https_" + name] = DataServer("https_" + name, tls_context(a.certdir, name, name == "mtls"))
    ctl = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    ctl.daemon_threads = True
    servers["control"] = ctl
    for s in servers.values():
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    out = {k: s.server_address[1] for k, s in servers.items()}
    out["pid"] = os.getpid()
    print(json.dumps(out), flush=True)
    done = threading.Event()
    stop = lambda *_: (SHUTDOWN.set(), done.set())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    if a.parent_watch:
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop()), daemon=True).start()
    while not done.wait(1):
        pass
    # Exit at once: the OS closes the sockets, and skipping interpreter finalization avoids
    # trouble with daemon threads still sleeping (hang/slow faults) or reading stdin.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
