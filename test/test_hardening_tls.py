"""Hardening: TLS (README "Register a registry", "Errors", issue 5).  Mutual TLS with client_cert /
client_key from memory (the key is never written to disk), TLS >= 1.2
(a TLS 1.1-only `openssl s_server` is refused, a TLS 1.2 one is not), and
DC003 messages that name the certificate problem.  (test_failures.py covers
verification on by default, ca_cert and verify_ssl.)"""
import os, re, shutil, socket, subprocess, time
from contextlib import closing

from support import harness
from support.util import code, expect_code, remember, request

OPEN = "/open/echo"


def _src(env, base_url, **cols):
    s = code("tlsh")
    row = dict(auth_type="none", auth_url=None, client_id=None, client_secret=None, base_url=base_url)
    row.update(cols)
    env.add_source(s, **row)
    return s


def _pem_body(pem):
    """The base64 lines of a PEM (what a copy on disk would contain)."""
    return "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))


def _files_containing(roots, needles, skip=()):
    hits = []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if os.path.join(dirpath, d) not in skip]
            for f in files:
                p = os.path.join(dirpath, f)
                try:
                    if not os.path.isfile(p) or os.path.getsize(p) > 64 * 1024 * 1024:
                        continue
                    with open(p, "rb") as fh:
                        data = fh.read()
                except OSError:
                    continue
                # PEM bodies may be wrapped at 64 columns in a copy: compare without newlines
                flat = data.replace(b"\r", b"").replace(b"\n", b"")
                for n in needles:
                    if n in flat:
                        hits.append(p)
    return hits


def test_mutual_tls(env):
    pem = lambda n: harness.read_pem(env.certdir, n)
    client_key = remember(pem("client.key"))
    remember(_pem_body(client_key))
    url = env.mock.https_urls["mtls"]
    mtls = _src(env, url, ca_cert=env.ca_pem(), client_cert=pem("client.crt"), client_key=client_key)
    nocert = _src(env, url, ca_cert=env.ca_pem())
    # a client certificate the server's CA did not sign
    stranger = _src(env, url, ca_cert=env.ca_pem(), client_cert=pem("selfsigned.crt"),
                    client_key=remember(pem("selfsigned.key")))
    # a key that does not belong to the certificate: unusable settings, not a transport error
    mismatch = _src(env, url, ca_cert=env.ca_pem(), client_cert=pem("client.crt"),
                    client_key=remember(pem("server.key")))
    env.mock.reset()
    with closing(env.connect()) as conn:
        # in a fresh session: libcurl would reuse a connection another source
        # opened with the same certificate (it compares the certificate, not the key)
        e, _ = expect_code(conn.cursor(), "DC001", mismatch, "GET", OPEN, contains="client_key")
        assert client_key not in str(e) and _pem_body(client_key)[:40] not in str(e)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for _ in range(3):
            r = request(cur, mtls, "GET", OPEN)
            assert r["status"] == 200, r
        assert env.mock.stats()["requests"] == {OPEN: 3}
        e, _ = expect_code(cur, "DC003", nocert, "GET", OPEN)
        e, _ = expect_code(cur, "DC003", stranger, "GET", OPEN)
        # the stored column reads back NULL; the PEM is only in ciphertext
        cur.execute("SELECT client_key, client_key_set, client_cert IS NOT NULL FROM dci_data_source "
                    "WHERE code = %s", (mtls,))
        assert cur.fetchone() == (None, True, True)
        # the mTLS source still works after the failures (handles reset between calls)
        assert request(cur, mtls, "GET", OPEN)["status"] == 200
        # and its live connection, made with the same certificate, is not reused
        # for a source whose key does not belong to it
        expect_code(cur, "DC001", mismatch, "GET", OPEN, contains="client_key")
        cur.execute("CHECKPOINT")
    assert env.mock.stats()["requests"] == {OPEN: 4}, env.mock.stats()["requests"]
    # the key never touched the disk: not in the data directory (tables, WAL,
    # temp files), not in /tmp (but for the test PKI itself), not in the log
    body = _pem_body(client_key).encode()
    hits = _files_containing([env.cluster.tmpdir, "/tmp", "/var/tmp"], [body],
                             skip={env.certdir.rstrip("/")})
    hits = [h for h in hits if not h.startswith(env.certdir)]
    assert not hits, "the client key was written to disk: %s" % hits
    # positive control: the scanner does find it where it is
    assert _files_containing([env.certdir], [body]), "scanner cannot see the key in the PKI directory"


class _SServer:
    """`openssl s_server -www` restricted to one protocol version."""

    def __init__(self, certdir, version):
        self.port = harness.free_port()
        self.proc = subprocess.Popen(
            ["openssl", "s_server", "-accept", "127.0.0.1:%d" % self.port, "-www", "-naccept", "10",
             "-cert", os.path.join(certdir, "server.crt"), "-key", os.path.join(certdir, "server.key"),
             "-" + version, "-cipher", "DEFAULT@SECLEVEL=0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)

    def alive(self):
        return self.proc.poll() is None

    def output(self):
        return self.proc.stdout.read().decode(errors="replace") if self.proc.poll() is not None else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


def _client_speaks(port, version):
    """Does a TLS client forced to `version` get a handshake? (proves the server offers it)"""
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-" + version,
                        "-cipher", "DEFAULT@SECLEVEL=0"], input="", capture_output=True, text=True, timeout=10)
    m = re.search(r"Protocol\s*:\s*(\S+)", r.stdout)
    return m.group(1) if m else None


def test_tls_below_1_2_refused(env):
    if not shutil.which("openssl"):
        raise AssertionError("openssl binary missing: cannot start a TLS 1.1 server")
    old = _SServer(env.certdir, "tls1_1")
    new = _SServer(env.certdir, "tls1_2")
    try:
        if not old.alive() or _client_speaks(old.port, "tls1_1") != "TLSv1.1":
            print("       SKIP TLS 1.1 check: this OpenSSL will not serve TLS 1.1 even at SECLEVEL=0: %s"
                  % old.output()[-300:])
            return
        assert _client_speaks(new.port, "tls1_2") == "TLSv1.2"
        s11 = _src(env, "https://127.0.0.1:%d" % old.port, ca_cert=env.ca_pem())
        s12 = _src(env, "https://127.0.0.1:%d" % new.port, ca_cert=env.ca_pem())
        with closing(env.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SET dci_client.max_retries = 0")
            e, took = expect_code(cur, "DC003", s11, "GET", "/", contains="TLS")
            assert took < 3, took
            # the same server at TLS 1.2 is fine (s_server -www answers any path)
            r = request(cur, s12, "GET", "/")
            assert r["status"] == 200, r
            assert "TLSv1.2" in r["body"] or "Protocol" in r["body"] or r["body"], r
    finally:
        old.stop()
        new.stop()


def test_certificate_problems_named(env):
    urls = env.mock.https_urls
    cases = [
        # (base_url, ca_cert, what the message must say)
        (urls["expired"], env.ca_pem(), ["expired"]),
        (urls["wronghost"], env.ca_pem(), ["subject name", "host name"]),
        (urls["selfsigned"], None, ["self-signed", "self signed"]),
        (env.mock.https_url, None, ["local issuer"]),                   # no ca_cert: unknown CA
        (env.mock.https_url, harness.read_pem(env.certdir, "selfsigned.crt"), ["local issuer", "issuer"]),
    ]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        for url, ca, words in cases:
            s = _src(env, url, ca_cert=ca)
            e, took = expect_code(cur, "DC003", s, "GET", OPEN)
            text = str(e).lower()
            assert "certificate" in text, text
            assert any(w in text for w in words), "%s: %r does not name %s" % (url, str(e), words)
            assert took < 2, took
            # and dci_test_connection reports it without raising
            cur.execute("SELECT step, ok, detail FROM dci_test_connection(%s)", (s,))
            rows = {r[0]: r for r in cur.fetchall()}
            assert rows["reachable"][1] is False and any(w in rows["reachable"][2].lower() for w in words), rows
    assert env.mock.stats()["requests"] == {}
