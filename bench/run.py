#!/usr/bin/python3
"""dci_client benchmark (issue 6): `make bench` (or `/usr/bin/python3 bench/run.py`).

Starts a throwaway PostgreSQL cluster (dci_client preloaded, the build that is
installed: `make bench` installs the tree first) and nginx serving static JSON
(bench/nginx.conf), registers an oauth2 data source pointing at nginx, and
measures side by side in one run:

  1. bench/curl_loop.c: a plain C loop on one libcurl easy handle, keep-alive,
     doing the request dci_request makes (the reference, ratio 1.00);
  2. warm dci_request: a server-side loop of N calls in one backend, each call's
     body depending on the generate_series row (so no call can be collapsed);
  3. dci_search (envelope build + parse of a one-record answer), same style;
  4. cold calls: a new backend's first dci_request (statement time only);
  5. pgbench -c 1, 2, 4 running one dci_request per transaction;
  6. the backend's RSS before and after 100,000 calls, and the TCP connections
     and token requests nginx saw during them;
  7. bulk verification (dci_search_by_ids) against bench/batch_registry.py, a
     registry answering after a fixed 50 ms and serving concurrent requests:
     sequential dci_search_by_id as the baseline, 10,000 lookups 100 per
     envelope 8 in flight, 2,000 lookups 1 per envelope 32 in flight, a
     registry capped at 10 per envelope, and the backend's RSS across
     100,000 lookups.  `--batch` runs only this part (no nginx needed).

Timed loops are medians of several runs, interleaved (A B C, A B C, ...).
The table is printed and written to bench/out/results.md (raw numbers in
bench/out/results.json).  Default ~4 minutes; --quick is a ~1 minute smoke run.
nginx and the cluster are torn down on exit, failure and SIGINT/SIGTERM.
"""
import argparse, atexit, datetime, json, os, platform, re, shutil, signal, statistics
import subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "out")
sys.path.insert(0, os.path.join(ROOT, "test"))
sys.path.insert(0, HERE)


# SIGTERM must unwind (finally + atexit stop nginx).  Installed before harness
# is used: harness chains to the handler it finds, after stopping its clusters.
def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _sigterm)

from support import harness  # noqa: E402
from batch_registry import BatchRegistry  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
BODY_LEN = 313
# {"n":<7 digits>,"pad":"x...x"} = 20 + 291 + 2 bytes, the body curl_loop.c sends
PAD_LEN = BODY_LEN - 22
BODY_SQL = "jsonb_build_object('n', g + 1000000, 'pad', repeat('x', %d))" % PAD_LEN
SOURCE = "bench"


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


# ---------------------------------------------------------------- prerequisites
def apt_install(*pkgs):
    if os.geteuid() != 0:
        sys.exit("missing %s: run as root or install them" % " ".join(pkgs))
    log("installing %s" % " ".join(pkgs))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + list(pkgs),
                   check=True, env=env, stdout=subprocess.DEVNULL)


def find_nginx():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.access(p, os.X_OK):
            return p
    apt_install("nginx-light")
    return "/usr/sbin/nginx"


def build_curl_loop():
    exe = os.path.join(HERE, "curl_loop")
    cmd = ["cc", "-O2", "-Wall", "-o", exe, os.path.join(HERE, "curl_loop.c"), "-lcurl"]
    r = sh(cmd)
    if r.returncode and ("curl/curl.h" in r.stderr or not shutil.which("cc")):
        apt_install("gcc", "libc6-dev", "libcurl4-openssl-dev")
        r = sh(cmd)
    if r.returncode:
        sys.exit("building curl_loop failed:\n" + r.stderr)
    return exe


# ---------------------------------------------------------------- nginx
# Detached watchdog: waits for EOF on stdin (our end closes however we die),
# then stops nginx if it still runs and removes its prefix directory.
_NGINX_WATCHDOG = r"""
import os, shutil, signal, sys, time
sys.stdin.buffer.read()
pid, prefix = int(sys.argv[1]), sys.argv[2]
try:
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        os.kill(pid, 0)
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
except OSError:
    pass
shutil.rmtree(prefix, ignore_errors=True)
"""


class Nginx:
    def __init__(self, binary):
        self.binary, self.proc, self.watchdog, self.prefix = binary, None, None, None

    def start(self):
        self.port = harness.free_port()
        self.prefix = tempfile.mkdtemp(prefix="dci_bench_nginx_")
        os.chmod(self.prefix, 0o755)
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(self.prefix, d))
        shutil.copytree(os.path.join(HERE, "www"), os.path.join(self.prefix, "www"))
        with open(os.path.join(HERE, "nginx.conf")) as f:
            conf = f.read().replace("@PORT@", str(self.port))
        self.conf = os.path.join(self.prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.access_log = os.path.join(self.prefix, "logs", "access.log")
        self.error_log = os.path.join(self.prefix, "logs", "error.log")
        cmd = [self.binary, "-p", self.prefix + "/", "-e", self.error_log, "-c", self.conf,
               "-g", "daemon off;"]
        r = sh(cmd[:-2] + ["-t"])
        if r.returncode:
            raise RuntimeError("nginx -t failed: %s" % r.stderr)
        atexit.register(self.stop)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.watchdog = subprocess.Popen([sys.executable, "-c", _NGINX_WATCHDOG, str(self.proc.pid),
                                          self.prefix], stdin=subprocess.PIPE, start_new_session=True)
        self.url = "http://127.0.0.1:%d" % self.port
        deadline = time.time() + 10
        import urllib.request
        while True:
            try:
                with urllib.request.urlopen(self.url + "/bench", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None else ""
                raise RuntimeError("nginx did not come up on %s: %s %s" % (self.url, err, self._errlog()))
            time.sleep(0.05)
        return self

    def _errlog(self):
        try:
            with open(self.error_log) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def version(self):
        return sh([self.binary, "-v"]).stderr.strip().replace("nginx version: ", "")

    def log_offset(self):
        time.sleep(0.2)             # nginx logs a request just after answering it
        return os.path.getsize(self.access_log)

    def log_since(self, offset):
        """[(connection, port, method, uri, status, content_length)] logged since offset."""
        time.sleep(0.2)
        with open(self.access_log, errors="replace") as f:
            f.seek(offset)
            text = f.read()
        rows = []
        for line in text.splitlines():
            p = line.split("|")
            if len(p) < 6:
                continue
            req = p[2].split(" ")
            rows.append((p[0], p[1], req[0], req[1] if len(req) > 1 else "", p[3], p[4]))
        return rows

    def stop(self):
        p, self.proc = self.proc, None
        if p and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p:
            p.stderr.close()
        w, self.watchdog = self.watchdog, None
        if w:
            w.stdin.close()         # the watchdog removes the prefix directory
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                pass


def summarize(rows):
    uris = [r[3].split("?")[0] for r in rows]
    return {"requests": len(rows), "connections": len({r[0] for r in rows}),
            "token_requests": sum(1 for u in uris if u == "/oauth2/client/token"),
            "non_200": sum(1 for r in rows if r[4] != "200"),
            "body_lengths": sorted({r[5] for r in rows if r[3] == "/bench"})}


# ---------------------------------------------------------------- measurements
def curl_loop(exe, url, n, fresh=False):
    r = sh([exe, url, str(n)] + (["fresh"] if fresh else []), timeout=600)
    if r.returncode:
        raise RuntimeError("curl_loop failed: %s" % r.stderr)
    m = re.match(r"([\d.]+) us/call \d+ calls (\S+)", r.stdout)
    return float(m.group(1)), m.group(2)


def curl_parallel(exe, url, k, n):
    """calls per second of k plain libcurl loops running at once (n calls each)"""
    t0 = time.perf_counter()
    procs = [subprocess.Popen([exe, url, str(n)], stdout=subprocess.DEVNULL) for _ in range(k)]
    for p in procs:
        if p.wait():
            raise RuntimeError("curl_loop failed")
    return k * n / (time.perf_counter() - t0)


def sql_loop(cur, sql, n):
    t0 = time.perf_counter()
    cur.execute(sql, {"n": n})
    row = cur.fetchone()
    dt = time.perf_counter() - t0
    if row[0] != n:
        raise RuntimeError("loop answered %s successful calls of %d: %s" % (row[0], n, sql))
    return dt * 1e6 / n, (row[1] if len(row) > 1 else None)


REQUEST_LOOP = ("SELECT count(*), avg(r.elapsed_ms) FROM generate_series(1, %%(n)s) g, "
                "LATERAL dci_request('%s', 'POST', '/bench', %s) r WHERE r.status = 200"
                % (SOURCE, BODY_SQL))
SEARCH_LOOP = ("SELECT count(*) FROM generate_series(1, %%(n)s) g, "
               "LATERAL dci_search('%s', 'idtype-value', jsonb_build_object('type', 'UIN', "
               "'value', (g + 1000000)::text)) r WHERE r ? 'data'" % SOURCE)
SQL_ONLY_LOOP = ("SELECT count(*) FROM generate_series(1, %%(n)s) g, "
                 "LATERAL (SELECT %s AS b) r WHERE r.b IS NOT NULL" % BODY_SQL)
ONE_CALL = ("SELECT status, elapsed_ms FROM dci_request('%s', 'POST', '/bench', "
            "jsonb_build_object('n', %%(n)s, 'pad', repeat('x', %d)))" % (SOURCE, PAD_LEN))


def vmrss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def vm_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s for pid %d" % (key, pid))


def reset_hwm(pid):
    """VmHWM back to the current RSS (Linux clear_refs 5); False where not allowed"""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def pgbench(cluster, script, clients, seconds):
    cmd = [os.path.join(PG_BIN, "pgbench"), "-h", cluster.host, "-p", str(cluster.port), "-U", "postgres",
           "-n", "-T", str(seconds), "-c", str(clients), "-j", str(min(clients, os.cpu_count() or 1)),
           "-f", script, "postgres"]
    r = sh(cmd, timeout=seconds + 120)
    m = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", r.stdout, re.M)
    failed = re.search(r"number of failed transactions: (\d+)", r.stdout)
    if r.returncode or not m or (failed and int(failed.group(1))):
        raise RuntimeError("pgbench -c %d failed (rc=%d):\n%s\n%s" % (clients, r.returncode, r.stdout, r.stderr))
    return float(m.group(1))


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def med(xs):
    return statistics.median(xs)


# ---------------------------------------------------------------- machine info
def machine_info(cur, libcurl, nginx):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cur.execute("SELECT version()")
    pg = cur.fetchone()[0]
    git = sh(["git", "-C", ROOT, "log", "-1", "--format=%h %s"]).stdout.strip()
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--", "src"]).stdout.strip()
    so = os.path.join(sh(["pg_config", "--pkglibdir"]).stdout.strip() or "/usr/lib/postgresql/15/lib",
                      "dci_client.so")
    so_time = (datetime.datetime.fromtimestamp(os.path.getmtime(so)).strftime("%Y-%m-%d %H:%M:%S")
               if os.path.exists(so) else "?")
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": "%s %s" % (platform.system(), platform.release()),
            "postgres": pg, "libcurl": libcurl, "nginx": nginx,
            "commit": git + (" (src/ has uncommitted changes)" if dirty else ""),
            "extension_so": "%s (built %s)" % (so, so_time)}


# ---------------------------------------------------------------- report
def fmt(x, nd=1):
    return "%.*f" % (nd, x)


def verdict(ok):
    return "yes" if ok else "**NO**"


def render(R, args):
    ref = R["curl_us"]
    rows = []

    def row(label, us, runs, note, ratio=None):
        # ratio: the median of per-run ratios to the libcurl run of the same round
        # (paired, so load from other processes cancels out), else median / median
        if ratio is None:
            ratio = us / ref
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            label, fmt(us), fmt(min(runs)), fmt(ratio, 2) + "×",
            " ".join(fmt(x) for x in runs) if len(runs) <= 5 else "%s–%s (%d samples)" % (fmt(min(runs)), fmt(max(runs)), len(runs)),
            note))

    L = []
    L.append("# dci_client benchmark")
    L.append("")
    L.append("%s, `bench/run.py%s`" % (R["when"], " --quick" if args.quick else ""))
    L.append("")
    M = R["machine"]
    L.append("- machine: %s CPU(s), %s; %s" % (M["nproc"], M["cpu"], M["kernel"]))
    L.append("- %s" % M["postgres"])
    L.append("- %s; nginx %s (loopback, keep-alive)" % (M["libcurl"], M["nginx"]))
    L.append("- dci_client: commit %s; %s" % (M["commit"], M["extension_so"]))
    L.append("- load average (1/5/15 min) at start: %s, at end: %s%s" % (
        R["load_start"], R["load_end"],
        " — other work was running: expect noise" if float(R["load_start"].split()[0]) > 0.5 else ""))
    L.append("")
    L.append("## Per call (median of %d interleaved runs of %s calls)" % (args.runs, "{:,}".format(args.calls)))
    L.append("")
    L.append("Ratio: to the plain libcurl loop, as the median of per-run ratios (each run's loop against "
             "the libcurl loop of the same round) where both ran in every round.")
    L.append("")
    L.append("| measurement | µs per call | best run | ratio | runs (µs) | notes |")
    L.append("|---|---:|---:|---:|---|---|")
    row("1. plain libcurl loop, one easy handle, keep-alive (`bench/curl_loop.c`)", ref, R["curl_runs"],
        "313-byte POST, 1.5 KB answer")
    row("2. warm `dci_request`, server-side loop in one backend", R["req_us"], R["req_runs"],
        "`elapsed_ms` reported by the calls: %s µs" % fmt(R["req_elapsed_us"]), R["req_ratio"])
    row("&nbsp;&nbsp;&nbsp;same statement without the call (SQL + body build only)", R["sql_us"], R["sql_runs"],
        "executor overhead included in row 2", R["sql_ratio"])
    row("3. `dci_search`, one-record answer (envelope build + parse)", R["search_us"], R["search_runs"],
        "**%+.1f µs** over `dci_request` (median of per-run differences)" % R["search_minus_req_us"],
        R["search_ratio"])
    row("4. cold call: new backend's first `dci_request`", R["cold_us"], R["cold_samples"],
        "median of %d new connections, statement time only; `elapsed_ms` reported: %s µs"
        % (len(R["cold_samples"]), fmt(R["cold_http_us"])))
    row("&nbsp;&nbsp;&nbsp;libcurl, new handle + TCP connection per call", R["curl_fresh_us"], R["curl_fresh_runs"],
        "reference for row 4 (%d calls per run)" % args.fresh_calls, R["curl_fresh_ratio"])
    row("&nbsp;&nbsp;&nbsp;first call in the cluster (connect + token fetch)", R["first_call_us"],
        [R["first_call_us"]], "one sample")
    L.extend(rows)
    L.append("")
    L.append("## Concurrency: `pgbench -n -T %d -f` one `dci_request` per transaction (median of %d run(s))"
             % (args.pgbench_seconds, args.pgbench_rounds))
    L.append("")
    L.append("Ratio to -c 1: median of per-round ratios (each round runs -c 1, 2, 4 back to back).")
    L.append("")
    L.append("| clients | tps | µs per transaction per client | ratio to -c 1 | runs (tps) | TCP connections nginx saw |")
    L.append("|---:|---:|---:|---:|---|---|")
    c1 = R["pgbench"]["1"]["tps"]
    for c in args.clients:
        P = R["pgbench"][str(c)]
        L.append("| %d | %s | %s | %s | %s | %s |" % (c, fmt(P["tps"], 0), fmt(c * 1e6 / P["tps"]),
                                                     fmt(P["ratio"], 2) + "×",
                                                     " ".join(fmt(x, 0) for x in P["runs"]),
                                                     " ".join(str(x) for x in P["connections"])))
    L.append("| 1 | %s | %s | | | same script without the call (`SELECT %s`) |" % (
        fmt(R["pgbench_sql_tps"], 0), fmt(1e6 / R["pgbench_sql_tps"]), "jsonb_build_object(...)"))
    L.append("")
    L.append("The machine's own scaling, for reference: the same number of plain libcurl loops "
             "(`bench/curl_loop.c`, no PostgreSQL) running at once against the same nginx:")
    L.append("")
    L.append("| loops | calls per second | ratio to 1 loop | runs |")
    L.append("|---:|---:|---:|---|")
    for c in args.clients:
        Q = R["curl_par"][str(c)]
        L.append("| %d | %s | %s× | %s |" % (c, fmt(Q["rate"], 0), fmt(Q["ratio"], 2),
                                            " ".join(fmt(x, 0) for x in Q["runs"])))
    L.append("")
    L.append("One call per statement (pgbench -c 1 less the same script without the call): %s µs per "
             "`dci_request`, %s× the libcurl loop (row 2 runs many calls in one statement)."
             % (fmt(1e6 / c1 - 1e6 / R["pgbench_sql_tps"]), fmt((1e6 / c1 - 1e6 / R["pgbench_sql_tps"]) / ref, 2)))
    L.append("")
    S = R["rss"]
    L.append("## One backend, %s calls after a %s-call warm-up"
             % ("{:,}".format(S["calls"]), "{:,}".format(S["warmup"])))
    L.append("")
    L.append("| VmRSS before | VmRSS after | growth | µs per call | TCP connections | token requests | requests nginx logged |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|")
    L.append("| %s kB | %s kB | %+d kB | %s | %d | %d | %s |" % (
        "{:,}".format(S["before_kb"]), "{:,}".format(S["after_kb"]), S["after_kb"] - S["before_kb"],
        fmt(S["us"]), S["connections"], S["token_requests"], "{:,}".format(S["requests"])))
    L.append("")
    L.append("Token requests over the whole bench: %d; cold calls: %d connections and %d token requests for %d new backends."
             % (R["token_requests_total"], R["cold_log"]["connections"], R["cold_log"]["token_requests"],
                len(R["cold_samples"])))
    L.append("")
    L.append("## Targets of issue 6 (benchmarks, not tests)")
    L.append("")
    L.append("| target | measured | met |")
    L.append("|---|---:|---|")
    ratio = R["req_ratio"]
    c2 = R["pgbench"]["2"]["ratio"]
    L.append("| warm `dci_request` ≤ 1.15× the libcurl loop (goal 1.05×) | %s× | %s |" % (fmt(ratio, 2), verdict(ratio <= 1.15)))
    L.append("| `pgbench -c 2` ≥ 1.7× `-c 1` | %s× (plain libcurl loops: %s×) | %s |"
             % (fmt(c2, 2), fmt(R["curl_par"]["2"]["ratio"], 2), verdict(c2 >= 1.7)))
    L.append("| exactly 1 TCP connection per backend over the %s calls | %d | %s |"
             % ("{:,}".format(S["calls"]), S["connections"], verdict(S["connections"] == 1)))
    L.append("| 0 token requests per backend over the %s calls | %d | %s |"
             % ("{:,}".format(S["calls"]), S["token_requests"], verdict(S["token_requests"] == 0)))
    L.append("| RSS growth < 2 MB over the %s calls | %+d kB | %s |"
             % ("{:,}".format(S["calls"]), S["after_kb"] - S["before_kb"], verdict(S["after_kb"] - S["before_kb"] < 2048)))
    d = R["search_minus_req_us"]
    L.append("| `dci_search` adds ≤ 15 µs over `dci_request` | %+.1f µs | %s |" % (d, verdict(d <= 15)))
    L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- profile
def setup(nginx, cluster):
    """nginx + cluster up, extension and source created; a connection of the creating session."""
    nginx.start()
    log("nginx %s on %s" % (nginx.version(), nginx.url))
    cluster.start(preload=True)
    log("PostgreSQL on port %d" % cluster.port)
    conn = cluster.connect()
    cur = conn.cursor()
    cur.execute("CREATE EXTENSION dci_client CASCADE")
    cur.execute("""
        INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_url,
                                     client_id, client_secret, sender_id)
        VALUES (%s, 'nginx (bench)', 'ns:org:RegistryType:Civil', %s, %s,
                'bench-client', %s, 'bench.example.org')""",
                (SOURCE, nginx.url, nginx.url + "/oauth2/client/token", "bench-secret"))
    return conn


def profile(calls):
    """perf record -g on one warm backend while it makes `calls` dci_request calls
    (one statement, the loop of row 2); prints the top functions and writes
    bench/out/profile.txt and bench/out/perf.data (perf script | stackcollapse-perf.pl
    | flamegraph.pl makes a flame graph of it)."""
    perf = shutil.which("perf")
    if not perf:
        apt_install("linux-perf")
        perf = shutil.which("perf")
    probe = sh([perf, "record", "-o", "/dev/null", "-e", "cpu-clock", "--", "true"])
    if probe.returncode:
        sys.exit("perf record does not work here (%s); see bench/profile.sh for the callgrind way"
                 % probe.stderr.strip()[-300:])
    os.makedirs(OUT, exist_ok=True)
    data = os.path.join(OUT, "perf.data")
    nginx, cluster = Nginx(find_nginx()), harness.Cluster()
    try:
        setup(nginx, cluster).close()
        conn = cluster.connect()            # a fresh backend, like an application's
        cur = conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        pid = cur.fetchone()[0]
        sql_loop(cur, REQUEST_LOOP, 1000)   # warm: connection, token, caches
        rec = subprocess.Popen([perf, "record", "-e", "cpu-clock", "-F", "2000", "--call-graph", "dwarf,8192",
                                "-p", str(pid), "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)                     # perf attaches
        us, el = sql_loop(cur, REQUEST_LOOP, calls)
        rec.send_signal(signal.SIGINT)
        err = rec.communicate(timeout=120)[1].decode(errors="replace")
        if rec.returncode not in (0, -signal.SIGINT):
            raise RuntimeError("perf record failed: %s" % err)
        log("%d calls: %.1f µs per call (elapsed_ms %.1f µs); %s"
            % (calls, us, el * 1000, err.strip().splitlines()[-1] if err.strip() else ""))
        conn.close()
    finally:
        cluster.cleanup()
        nginx.stop()
    rep = []
    for title, extra in (("self time by function (top 40)", ["--no-children"]),
                         ("time including callees, dci_client and libcurl functions",
                          ["--children"])):
        r = sh([perf, "report", "-i", data, "--stdio", "--sort", "dso,symbol", "-g", "none",
                "--percent-limit", "0.5"] + extra, timeout=600)
        lines = [l for l in r.stdout.splitlines() if l.strip() and not l.startswith("#")]
        if "--children" in extra:
            lines = [l for l in lines if "dci_client.so" in l or "libcurl" in l][:40]
        else:
            lines = lines[:40]
        rep.append("## " + title + "\n\n" + "\n".join(lines) + "\n")
    text = ("# perf profile: one backend, %d warm dci_request calls, %.1f µs per call\n\n" % (calls, us)
            + "\n".join(rep))
    with open(os.path.join(OUT, "profile.txt"), "w") as f:
        f.write(text)
    print(text)
    print("written to bench/out/profile.txt; raw samples in bench/out/perf.data")
    return 0


# ---------------------------------------------------------------- 7: bulk verification
BATCH_SOURCE, CAPPED_SOURCE = "bench_batch", "bench_capped"
BY_IDS = ("SELECT count(*) FILTER (WHERE status = 'succ' AND records->0->'identifier'->0->>'identifier_value' = id_value), "
          "count(*) FROM dci_search_by_ids(%(src)s, 'UIN', "
          "(SELECT array_agg(lpad((g + %(base)s)::text, 9, '0') ORDER BY g) FROM generate_series(1, %(n)s) g), "
          "batch_size => %(size)s, concurrency => %(conc)s)")
SEQUENTIAL = ("SELECT count(*) FROM generate_series(1, %(n)s) g, "
              "LATERAL dci_search_by_id(%(src)s, 'UIN', lpad(g::text, 9, '0')) r")


def batch_setup(cur, registry, capped):
    for src, reg in ((BATCH_SOURCE, registry), (CAPPED_SOURCE, capped)):
        cur.execute("""
            INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_type, bearer_token,
                                         sender_id, batch_size, max_concurrency)
            VALUES (%s, 'batch bench registry', 'ns:org:RegistryType:Civil', %s, 'bearer', 'bench-bearer',
                    'bench.example.org', 100, 32)""", (src, reg.url))


def batch_run(cur, reg, src, n, size, conc, base=0):
    """seconds, items answered correctly, rows, and the registry's counters"""
    reg.reset()
    t0 = time.perf_counter()
    cur.execute(BY_IDS, {"src": src, "n": n, "size": size, "conc": conc, "base": base})
    ok, rows = cur.fetchone()
    dt = time.perf_counter() - t0
    if rows != n:
        raise RuntimeError("dci_search_by_ids gave %d rows for %d lookups" % (rows, n))
    return {"lookups": n, "size": size, "conc": conc, "s": dt, "ok": ok, "envelopes": reg.envelopes,
            "max_inflight": reg.max_inflight}


def batch_bench(cluster, conn, args):
    """Section 7 on a fresh backend of the cluster; conn creates the sources."""
    registry = BatchRegistry(delay=0.05).start()
    capped = BatchRegistry(delay=0.05, max_items=10).start()
    B = {"delay_ms": 50}
    try:
        batch_setup(conn.cursor(), registry, capped)
        c = cluster.connect()
        k = c.cursor()
        k.execute("SET dci_client.max_concurrency = 32")
        k.execute("SELECT pg_backend_pid()")
        pid = k.fetchone()[0]
        batch_run(k, registry, BATCH_SOURCE, 200, 100, 8)      # warm: connections, caches
        log("batch: sequential dci_search_by_id x %d" % args.batch_sequential)
        t0 = time.perf_counter()
        k.execute(SEQUENTIAL, {"n": args.batch_sequential, "src": BATCH_SOURCE})
        if k.fetchone()[0] != args.batch_sequential:
            raise RuntimeError("sequential lookups did not all answer one record")
        B["seq_s_per_lookup"] = (time.perf_counter() - t0) / args.batch_sequential
        B["seq_n"] = args.batch_sequential
        log("batch: 10,000 lookups, 100 per envelope, 8 in flight")
        B["big"] = batch_run(k, registry, BATCH_SOURCE, 10000, 100, 8)
        log("batch: 2,000 lookups, 1 per envelope, 32 in flight")
        B["single"] = batch_run(k, registry, BATCH_SOURCE, 2000, 1, 32)
        log("batch: 1,000 lookups against a registry capped at 10 per envelope")
        B["capped"] = batch_run(k, capped, CAPPED_SOURCE, 1000, 100, 8)
        B["rss"] = []
        # the last run repeats the one before: growth that stops is a high-water mark, not a leak
        for n in (args.batch_rss // 10, args.batch_rss, args.batch_rss):
            log("batch: RSS across %d lookups" % n)
            before = vm_kb(pid, "VmRSS")
            hwm = reset_hwm(pid)
            B["rss_run"] = batch_run(k, registry, BATCH_SOURCE, n, 100, 8, base=100000)
            B["rss"].append({"lookups": n, "before_kb": before, "after_kb": vm_kb(pid, "VmRSS"),
                             "peak_kb": vm_kb(pid, "VmHWM") if hwm else None})
        c.close()
    finally:
        registry.stop()
        capped.stop()
    return B


def render_batch(B):
    seq = B["seq_s_per_lookup"]
    L = ["", "### Bulk verification (a registry answering after %d ms, concurrently)" % B["delay_ms"], "",
         "| run | lookups | per envelope | in flight | time | per lookup | vs sequential | envelopes | most in flight | answered | target |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    L.append("| sequential `dci_search_by_id` (%d measured, extrapolated) | 10,000 | 1 | 1 | %.1f s | %.1f ms | 1× | 10,000 | 1 | %d of %d | baseline |"
             % (B["seq_n"], seq * 10000, seq * 1000, B["seq_n"], B["seq_n"]))
    targets = {
        "big": lambda r, x: "≤ 1.5 s: %s" % ("yes" if r["s"] <= 1.5 else "NO"),
        "single": lambda r, x: "≥ 24×: %s" % ("yes" if x >= 24 else "NO"),
        "capped": lambda r, x: "all answered: %s" % ("yes" if r["ok"] == r["lookups"] else "NO"),
        "rss_run": lambda r, x: "RSS below",
    }
    labels = {"big": "`dci_search_by_ids`", "single": "`dci_search_by_ids`",
              "capped": "`dci_search_by_ids`, registry capped at 10 (413)", "rss_run": "`dci_search_by_ids` (RSS run)"}
    for key in ("big", "single", "capped", "rss_run"):
        r = B[key]
        x = seq * r["lookups"] / r["s"]
        L.append("| %s | %s | %d | %d | %.2f s | %.3f ms | %.0f× | %d | %d | %d | %s |"
                 % (labels[key], "{:,}".format(r["lookups"]), r["size"], r["conc"], r["s"],
                    r["s"] * 1000 / r["lookups"], x, r["envelopes"], r["max_inflight"], r["ok"], targets[key](r, x)))
    L += ["", "Backend RSS (`/proc/<pid>/status`; peak = `VmHWM`, reset before the call through `clear_refs`), "
          "one `dci_search_by_ids` call, 100 per envelope, 8 in flight:", "",
          "| lookups | RSS before | peak during | RSS after |", "|---:|---:|---:|---:|"]
    for R in B["rss"]:
        L.append("| {:,} | {:,} kB | {} | {:,} kB |".format(
            R["lookups"], R["before_kb"], "{:,} kB".format(R["peak_kb"]) if R["peak_kb"] else "?", R["after_kb"]))
    return "\n".join(L) + "\n"


def batch_only(args):
    """`--batch`: only section 7, on its own cluster (no nginx)."""
    t_start = time.time()
    os.makedirs(OUT, exist_ok=True)
    cluster = harness.Cluster()
    try:
        cluster.start(preload=True)
        log("PostgreSQL on port %d" % cluster.port)
        conn = cluster.connect()
        conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        B = batch_bench(cluster, conn, args)
        conn.close()
    finally:
        cluster.cleanup()
    report = ("## dci_client bulk verification benchmark\n\n%s, `bench/run.py --batch%s`, load average %s\n"
              % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), " --quick" if args.quick else "", loadavg()))
    report += render_batch(B) + "\n(total bench time %.0f s)\n" % (time.time() - t_start)
    with open(os.path.join(OUT, "batch.md"), "w") as f:
        f.write(report)
    with open(os.path.join(OUT, "batch.json"), "w") as f:
        json.dump(B, f, indent=1)
    print()
    print(report)
    print("written to %s" % os.path.relpath(os.path.join(OUT, "batch.md"), os.getcwd()))
    return 0


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    ap.add_argument("--runs", type=int, help="interleaved runs per loop (median); default 5, quick 3")
    ap.add_argument("--calls", type=int, help="calls per timed loop run; default 20000, quick 3000")
    ap.add_argument("--rss-calls", type=int, help="calls for the RSS phase; default 100000, quick 20000")
    ap.add_argument("--cold", type=int, help="new connections for the cold call; default 20, quick 5")
    ap.add_argument("--pgbench-seconds", type=int, help="-T per pgbench run; default 10, quick 3")
    ap.add_argument("--pgbench-rounds", type=int, help="pgbench runs per client count (median); default 3, quick 1")
    ap.add_argument("--batch", action="store_true",
                    help="only the bulk verification part (section 7; no nginx)")
    ap.add_argument("--inbound", action="store_true",
                    help="only the inbound benchmark (bench/inbound.py: dci_search_async, dci_receive; no nginx)")
    ap.add_argument("--batch-rss", type=int, help="lookups for the batch RSS run; default 100000, quick 20000")
    ap.add_argument("--batch-sequential", type=int,
                    help="sequential dci_search_by_id calls for the baseline; default 100, quick 40")
    ap.add_argument("--profile", type=int, metavar="CALLS",
                    help="instead of the bench: perf-profile one warm backend doing CALLS calls (bench/profile.sh)")
    args = ap.parse_args()
    if args.profile:
        return profile(args.profile)
    q = args.quick
    for name, full, quick in (("runs", 5, 3), ("calls", 20000, 3000), ("rss_calls", 100000, 20000),
                              ("cold", 20, 5), ("pgbench_seconds", 10, 3), ("pgbench_rounds", 3, 1),
                              ("batch_rss", 100000, 20000), ("batch_sequential", 100, 40)):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    if args.inbound:
        import inbound
        return inbound.main(args)
    if args.batch:
        return batch_only(args)
    args.clients = (1, 2, 4)
    args.fresh_calls = 200
    args.warmup = 1000

    t_start = time.time()
    nginx_bin = find_nginx()
    exe = build_curl_loop()
    os.makedirs(OUT, exist_ok=True)
    nginx = Nginx(nginx_bin)
    cluster = harness.Cluster()
    R = {"when": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "load_start": loadavg()}
    tmp = tempfile.mkdtemp(prefix="dci_bench_")
    atexit.register(shutil.rmtree, tmp, True)
    try:
        conn = setup(nginx, cluster)
        cur = conn.cursor()
        start_off = nginx.log_offset()

        # first call in the cluster: connect + token fetch
        t0 = time.perf_counter()
        cur.execute(ONE_CALL, {"n": 1000000})
        st = cur.fetchone()
        R["first_call_us"] = (time.perf_counter() - t0) * 1e6
        if st[0] != 200:
            raise RuntimeError("first dci_request answered HTTP %s" % st[0])
        cur.execute("SELECT (dci_search(%s, 'idtype-value', '{\"type\":\"UIN\",\"value\":\"1\"}')) ? 'data'", (SOURCE,))
        if not cur.fetchone()[0]:
            raise RuntimeError("dci_search answer has no data")

        # ---- 1-3: interleaved warm loops
        libcurl = curl_loop(exe, nginx.url + "/bench", 100)[1]
        sql_loop(cur, REQUEST_LOOP, args.warmup)
        sql_loop(cur, SEARCH_LOOP, 200)
        sql_loop(cur, SQL_ONLY_LOOP, 1000)
        R["machine"] = machine_info(cur, libcurl, nginx.version())
        tasks = {
            "curl": lambda: (curl_loop(exe, nginx.url + "/bench", args.calls)[0], None),
            "req": lambda: sql_loop(cur, REQUEST_LOOP, args.calls),
            "search": lambda: sql_loop(cur, SEARCH_LOOP, args.calls),
            "sql": lambda: sql_loop(cur, SQL_ONLY_LOOP, args.calls),
            "curl_fresh": lambda: (curl_loop(exe, nginx.url + "/bench", args.fresh_calls, fresh=True)[0], None),
        }
        names = list(tasks)
        runs = {k: [] for k in names}
        elapsed = []
        log("warm loops: %d runs x %d calls, interleaved" % (args.runs, args.calls))
        for i in range(args.runs):
            order = names[i % len(names):] + names[:i % len(names)]
            for k in order:
                us, extra = tasks[k]()
                runs[k].append(us)
                if k == "req":
                    elapsed.append(extra * 1000.0)
            log("run %d: %s" % (i + 1, ", ".join("%s %.1f µs" % (k, runs[k][-1]) for k in names)))
        for k in names:
            R[k + "_runs"] = runs[k]
            R[k + "_us"] = med(runs[k])
        R["req_elapsed_us"] = med(elapsed)
        for k in names:
            R[k + "_ratio"] = med([a / b for a, b in zip(runs[k], runs["curl"])])
        R["search_minus_req_us"] = med([a - b for a, b in zip(runs["search"], runs["req"])])

        # ---- 4: cold calls
        log("cold calls: %d new connections" % args.cold)
        off = nginx.log_offset()
        cold, cold_http = [], []
        for i in range(args.cold):
            c = cluster.connect()
            k = c.cursor()
            t0 = time.perf_counter()
            k.execute(ONE_CALL, {"n": 2000000 + i})
            st = k.fetchone()
            cold.append((time.perf_counter() - t0) * 1e6)
            cold_http.append(st[1] * 1000.0)
            c.close()
            if st[0] != 200:
                raise RuntimeError("cold dci_request answered HTTP %s" % st[0])
        R["cold_samples"] = cold
        R["cold_us"] = med(cold)
        R["cold_http_us"] = med(cold_http)
        R["cold_log"] = summarize(nginx.log_since(off))

        # ---- 5: pgbench
        script = os.path.join(tmp, "dci_request.sql")
        with open(script, "w") as f:
            f.write("\\set n random(1000000, 9999999)\n"
                    "SELECT status FROM dci_request('%s', 'POST', '/bench', "
                    "jsonb_build_object('n', :n, 'pad', repeat('x', %d)));\n" % (SOURCE, PAD_LEN))
        sql_script = os.path.join(tmp, "sql_only.sql")
        with open(sql_script, "w") as f:
            f.write("\\set n random(1000000, 9999999)\n"
                    "SELECT jsonb_build_object('n', :n, 'pad', repeat('x', %d));\n" % PAD_LEN)
        os.chmod(tmp, 0o755)
        for p in (script, sql_script):
            os.chmod(p, 0o644)
        R["pgbench"] = {str(c): {"runs": [], "connections": []} for c in args.clients}
        R["curl_par"] = {str(c): {"runs": []} for c in args.clients}
        for rnd in range(args.pgbench_rounds):
            for c in args.clients:
                log("pgbench -c %d -T %d (round %d)" % (c, args.pgbench_seconds, rnd + 1))
                off = nginx.log_offset()
                tps = pgbench(cluster, script, c, args.pgbench_seconds)
                s = summarize(nginx.log_since(off))
                R["pgbench"][str(c)]["runs"].append(tps)
                R["pgbench"][str(c)]["connections"].append(s["connections"])
            # the hardware's own scaling: the same number of plain libcurl loops
            for c in args.clients:
                R["curl_par"][str(c)]["runs"].append(curl_parallel(exe, nginx.url + "/bench", c,
                                                                    args.calls))
        for c in args.clients:
            P = R["pgbench"][str(c)]
            P["tps"] = med(P["runs"])
            P["ratio"] = med([a / b for a, b in zip(P["runs"], R["pgbench"]["1"]["runs"])])
            Q = R["curl_par"][str(c)]
            Q["rate"] = med(Q["runs"])
            Q["ratio"] = med([a / b for a, b in zip(Q["runs"], R["curl_par"]["1"]["runs"])])
        log("pgbench -c 1 without the call")
        R["pgbench_sql_tps"] = pgbench(cluster, sql_script, 1, max(2, args.pgbench_seconds // 2))

        # ---- 6: RSS, connections and tokens over many calls in one backend
        log("RSS: %d calls in one new backend" % args.rss_calls)
        c = cluster.connect()
        k = c.cursor()
        k.execute("SELECT pg_backend_pid()")
        pid = k.fetchone()[0]
        sql_loop(k, REQUEST_LOOP, args.warmup)
        before = vmrss_kb(pid)
        off = nginx.log_offset()
        us, _ = sql_loop(k, REQUEST_LOOP, args.rss_calls)
        s = summarize(nginx.log_since(off))
        after = vmrss_kb(pid)
        c.close()
        R["rss"] = dict(s, calls=args.rss_calls, warmup=args.warmup, before_kb=before, after_kb=after, us=us)
        if s["requests"] != args.rss_calls:
            log("warning: nginx logged %d requests for %d calls" % (s["requests"], args.rss_calls))
        whole = summarize(nginx.log_since(start_off))
        R["token_requests_total"] = whole["token_requests"]
        R["bench_body_lengths"] = whole["body_lengths"]
        R["non_200_total"] = whole["non_200"]

        # ---- 7: bulk verification
        R["batch"] = batch_bench(cluster, conn, args)
        conn.close()
        R["load_end"] = loadavg()
    finally:
        cluster.cleanup()
        nginx.stop()

    report = render(R, args) + render_batch(R["batch"])
    oddities = []
    if R["bench_body_lengths"] != [str(BODY_LEN)]:
        oddities.append("request body lengths seen by nginx for /bench: %s (expected %d)"
                        % (R["bench_body_lengths"], BODY_LEN))
    if R["non_200_total"]:
        oddities.append("%d answers other than 200 in nginx's log" % R["non_200_total"])
    if oddities:
        report += "\n" + "\n".join("- note: " + o for o in oddities) + "\n"
    report += "\n(total bench time %.0f s)\n" % (time.time() - t_start)
    with open(os.path.join(OUT, "results.md"), "w") as f:
        f.write(report)
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(R, f, indent=1)
    print()
    print(report)
    print("written to %s" % os.path.relpath(os.path.join(OUT, "results.md"), os.getcwd()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
