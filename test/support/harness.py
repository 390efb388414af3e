#!/usr/bin/python3
"""Test helpers for dci_client: test certificates, the mock registry process and
throwaway PostgreSQL 15 clusters. No test logic lives here.

Why one module: every test script needs the same three pieces, and all of them
must be torn down even when a test crashes, so the teardown bookkeeping
(atexit + SIGTERM/SIGINT) is shared here.
"""
import atexit, json, os, pwd, selectors, shutil, signal, socket, subprocess, sys
import tempfile, time, urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
PG_USER = "postgres"

# ---------------------------------------------------------------- teardown bookkeeping
_LIVE = []            # started MockRegistry / Cluster objects, newest last
_PREV_HANDLERS = {}


def _stop_all():
    while _LIVE:
        obj = _LIVE.pop()
        try:
            obj.cleanup() if isinstance(obj, Cluster) else obj.stop()
        except Exception as e:                         # keep stopping the others
            print("harness teardown: %r" % e, file=sys.stderr)


def _on_signal(signum, frame):
    _stop_all()
    prev = _PREV_HANDLERS.get(signum)
    if callable(prev):
        prev(signum, frame)                            # e.g. KeyboardInterrupt for SIGINT
    else:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _track(obj):
    if not _PREV_HANDLERS:
        atexit.register(_stop_all)
        try:
            for s in (signal.SIGTERM, signal.SIGINT):
                _PREV_HANDLERS[s] = signal.signal(s, _on_signal)
        except ValueError:                             # not the main thread: atexit only
            pass
    if obj not in _LIVE:
        _LIVE.append(obj)


def _untrack(obj):
    if obj in _LIVE:
        _LIVE.remove(obj)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------- certificates
_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $ENV::SAN
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
[ca]
default_ca = testca
[testca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
"""
CERT_NAMES = ("ca", "server", "expired", "wronghost", "selfsigned", "mtls", "client")


def make_certs(dirpath):
    """Create the test PKI in dirpath (idempotent: skipped when all files exist).

    EC P-256 keys keep it fast. The expired cert uses `openssl ca -startdate/-enddate`
    because OpenSSL 3.0's `x509` has no way to set a past notBefore/notAfter."""
    os.makedirs(dirpath, exist_ok=True)
    if all(os.path.exists(os.path.join(dirpath, n + ext)) for n in CERT_NAMES for ext in (".crt", ".key")):
        return dirpath
    env = dict(os.environ, SAN="IP:127.0.0.1, DNS:localhost")

    def ossl(*args, san=None):
        e = dict(env, SAN=san) if san else env
        r = subprocess.run(("openssl",) + args, cwd=dirpath, env=e, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr))

    with open(os.path.join(dirpath, "openssl.cnf"), "w") as f:
        f.write(_CNF)
    newkey = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-config", "openssl.cnf")
    ossl("req", "-x509", *newkey, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
         "-subj", "/CN=dci_client test CA", "-extensions", "v3_ca")

    def leaf(name, cn, ext="server", san=None):
        ossl("req", "-new", *newkey, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial",
             str(int.from_bytes(os.urandom(8), "big")), "-days", "825", "-sha256",
             "-extfile", "openssl.cnf", "-extensions", ext, "-out", name + ".crt", san=san)

    leaf("server", "127.0.0.1")
    leaf("wronghost", "wrong.example", san="DNS:wrong.example")
    leaf("client", "dci-test-client", ext="client")
    ossl("req", "-new", *newkey, "-keyout", "expired.key", "-out", "expired.csr", "-subj", "/CN=127.0.0.1")
    open(os.path.join(dirpath, "index.txt"), "w").close()
    with open(os.path.join(dirpath, "serial"), "w") as f:
        f.write("1000\n")
    ossl("ca", "-batch", "-config", "openssl.cnf", "-cert", "ca.crt", "-keyfile", "ca.key", "-notext",
         "-startdate", "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "server",
         "-in", "expired.csr", "-out", "expired.crt")
    ossl("req", "-x509", *newkey, "-keyout", "selfsigned.key", "-out", "selfsigned.crt", "-days", "825",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1")
    for ext in (".crt", ".key"):
        shutil.copyfile(os.path.join(dirpath, "server" + ext), os.path.join(dirpath, "mtls" + ext))
    for f in os.listdir(dirpath):                  # leave only the .crt/.key pairs (+ cnf)
        if f.endswith((".csr", ".pem", ".old", ".attr")) or f in ("index.txt", "serial"):
            os.unlink(os.path.join(dirpath, f))
    os.chmod(dirpath, 0o755)                       # postgres may need to read ca.crt etc.
    for f in os.listdir(dirpath):
        os.chmod(os.path.join(dirpath, f), 0o644)
    return dirpath


def read_pem(certdir, name):
    with open(os.path.join(certdir, name)) as f:
        return f.read()


# ---------------------------------------------------------------- mock registry
class MockRegistry:
    """Runs test/support/mock_registry.py as a child process and talks to its control port."""

    def __init__(self):
        self.proc, self.ports = None, {}

    def start(self, certdir, timeout=10):
        self.certdir = certdir
        # --parent-watch: the mock exits when our stdin pipe closes, so even a
        # SIGKILLed test run leaves no mock behind.
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "mock_registry.py"),
                                      "--certdir", certdir, "--parent-watch"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        _track(self)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.stop()
            raise RuntimeError("mock registry did not report its ports within %ss" % timeout)
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("mock registry exited (rc=%s)" % self.proc.poll())
        self.ports = json.loads(line)
        self.http_url = "http://127.0.0.1:%d" % self.ports["http"]
        self.https_url = "https://127.0.0.1:%d" % self.ports["https"]
        self.https_urls = {k[6:]: "https://127.0.0.1:%d" % v for k, v in self.ports.items() if k.startswith("https_")}
        self.token_url = self.http_url + "/oauth2/client/token"
        self.control_url = "http://127.0.0.1:%d" % self.ports["control"]
        return self

    def _ctl(self, path, data=None):
        req = urllib.request.Request(self.control_url + path, method="GET" if data is None else "POST",
                                     data=None if data is None else json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stats(self):
        return self._ctl("/stats")

    def reset(self):
        return self._ctl("/reset", {})

    def fault(self, path, mode, count=1, **params):
        return self._ctl("/fault", dict(params, path=path, mode=str(mode), count=count))

    def add_client(self, client_id, client_secret, expires_in=3600, expires_in_format=None):
        d = {"client_id": client_id, "client_secret": client_secret, "expires_in": expires_in}
        if expires_in_format:
            d["expires_in_format"] = expires_in_format
        return self._ctl("/clients", d)

    def search_conf(self, **conf):
        """How the sync search endpoint behaves: delay (s), max_items (0: any), refuse (rjct | 413)."""
        return self._ctl("/search_conf", conf)

    def revoke(self):
        return self._ctl("/revoke", {})

    def set_bearer(self, tokens):
        return self._ctl("/bearer", {"tokens": list(tokens)})

    def expire_tokens(self):
        return self._ctl("/expire_tokens", {})

    def stop(self):
        _untrack(self)
        p, self.proc = self.proc, None
        if p and p.poll() is None:
            p.stdin.close()            # the --parent-watch EOF; SIGTERM does the same job
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in (p.stdin, p.stdout) if p else ():
            f.close()

    cleanup = stop

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


# ---------------------------------------------------------------- PostgreSQL cluster
def pg_bindir():
    try:
        return subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "/usr/lib/postgresql/15/bin"


def _conf_value(v):
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (int, float)):
        return str(v)
    return "'%s'" % str(v).replace("'", "''")


# Runs in a detached child: waits for EOF on stdin (our end closes when the test process
# exits, however it dies), then stops the cluster if it is still up and removes its tmpdir.
_WATCHDOG = r"""
import os, shutil, subprocess, sys
sys.stdin.buffer.read()
bindir, tmpdir, keep = sys.argv[1:4]
data = os.path.join(tmpdir, "data")
if os.path.exists(os.path.join(data, "postmaster.pid")):
    cmd = [os.path.join(bindir, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop"]
    subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + cmd,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if keep != "1":
    shutil.rmtree(tmpdir, ignore_errors=True)
"""


class Cluster:
    """A throwaway cluster in /tmp/dci_pg_*, run as the postgres OS user
    (PostgreSQL refuses to run as root; the test scripts run as root)."""

    def __init__(self):
        self.tmpdir = self.datadir = None
        self.running = False
        self.host = "127.0.0.1"
        self.bindir = pg_bindir()

    def _run(self, *args, check=True, timeout=120):
        cmd = [os.path.join(self.bindir, args[0])] + list(args[1:])
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", PG_USER, "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/")
        if check and r.returncode:
            raise RuntimeError("%s failed (rc=%d): %s%s%s" % (args[0], r.returncode, r.stdout, r.stderr,
                                                             self._log_tail()))
        return r

    def _log_tail(self, n=3000):
        try:
            return "\n--- server log tail ---\n" + self.log_text()[-n:]
        except (OSError, TypeError):
            return ""

    def start(self, preload=True, conf=None):
        """initdb + start; conf is a dict of extra settings, e.g. {"log_min_messages": "debug1"}."""
        self.tmpdir = tempfile.mkdtemp(prefix="dci_pg_")
        _track(self)
        self._watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, self.bindir, self.tmpdir, "1" if os.environ.get("DCI_KEEP_TMP") else "0"],
            stdin=subprocess.PIPE, start_new_session=True)
        pw = pwd.getpwnam(PG_USER)
        if os.geteuid() == 0:
            os.chown(self.tmpdir, pw.pw_uid, pw.pw_gid)
        self.datadir = os.path.join(self.tmpdir, "data")
        self.logfile = os.path.join(self.tmpdir, "server.log")
        self.port = free_port()
        self.dsn = "host=%s port=%d user=postgres dbname=postgres" % (self.host, self.port)
        self._run("initdb", "-D", self.datadir, "--auth=trust", "-U", "postgres", "--no-sync",
                  "-E", "UTF8", "--locale=C")
        settings = {"port": self.port, "listen_addresses": "127.0.0.1", "unix_socket_directories": self.tmpdir,
                    "logging_collector": False, "fsync": False, "max_connections": 40}
        if preload:
            settings["shared_preload_libraries"] = "dci_client"
        settings.update(conf or {})
        self._append_conf(settings)
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start")
        self.running = True
        return self

    def _append_conf(self, settings):
        # Later lines win in postgresql.conf, so appending is enough to override.
        path = os.path.join(self.datadir, "postgresql.conf")
        with open(path, "a") as f:
            f.write("\n# dci_client test harness\n")
            for k, v in settings.items():
                f.write("%s = %s\n" % (k, _conf_value(v)))

    def set_conf(self, settings):
        self._append_conf(settings)
        self.reload()

    def reload(self):
        # SIGHUP is asynchronous; the short pause lets the postmaster and idle backends reread.
        self._run("pg_ctl", "-D", self.datadir, "reload")
        time.sleep(0.3)

    def restart(self, mode="fast"):
        self._run("pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "-m", mode, "restart")
        self.running = True

    def connect(self, dbname="postgres", user="postgres", autocommit=True, **kw):
        import psycopg2                # here: the mock alone (with_mock.py) needs only python3
        conn = psycopg2.connect(host=self.host, port=self.port, dbname=dbname, user=user, **kw)
        conn.autocommit = autocommit
        return conn

    def execute(self, sql, params=None, **connect_kw):
        """One statement on a fresh connection; rows (list of tuples) or None."""
        conn = self.connect(**connect_kw)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    @staticmethod
    def backend_pid(conn):
        return conn.get_backend_pid()

    def log_text(self):
        with open(self.logfile, errors="replace") as f:
            return f.read()

    def _postmaster_pid(self):
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError, TypeError):
            return None

    def stop(self):
        if not self.datadir or not os.path.exists(os.path.join(self.datadir, "postmaster.pid")):
            self.running = False
            return
        for mode in ("fast", "immediate"):
            if self._run("pg_ctl", "-D", self.datadir, "-w", "-t", "30", "-m", mode, "stop",
                         check=False).returncode == 0:
                break
        else:
            pid = self._postmaster_pid()
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.running = False

    def cleanup(self):
        _untrack(self)
        try:
            self.stop()
        finally:
            if self.tmpdir and not os.environ.get("DCI_KEEP_TMP"):
                shutil.rmtree(self.tmpdir, ignore_errors=True)
                self.tmpdir = None
            wd, self._watchdog = getattr(self, "_watchdog", None), None
            if wd:                     # nothing left for it to do: let it exit
                wd.stdin.close()
                wd.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()
