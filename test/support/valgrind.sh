#!/bin/bash
# Valgrind memcheck over the pg_regress suite (issue 5).  Not part of `make test`:
# it takes minutes.  Run as root or as a user that can run PostgreSQL:
#
#     make valgrind            # or: bash test/support/valgrind.sh
#
# How: a throwaway cluster whose postmaster runs under valgrind (pg_ctl -p points at
# a wrapper; forked backends stay under valgrind), max_connections small, the mock
# registry on loopback, then `make installcheck` (the REGRESS files run one at a
# time, one backend each).  Every process writes its own log; afterwards the logs
# are searched for invalid reads/writes, uses of uninitialised values and definite
# leaks whose stack goes through dci_client.so.  Exit status: 0 when none is
# attributed to dci_client, 1 otherwise, 2 when the run itself failed.
#
# Limits: Debian's PostgreSQL is built without USE_VALGRIND, so palloc'd chunks are
# not tracked one by one (an overrun inside a memory context block goes unseen);
# malloc'd memory (libcurl, OpenSSL, json-c, the extension's own response buffer,
# header lists and host rules) is checked fully.  PostgreSQL ships a suppression
# file only in its source tree; test/support/valgrind.supp holds the few we need.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$(dirname "$HERE")")
PYTHON=${PYTHON:-/usr/bin/python3}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)"; exit 2; }

exec "$PYTHON" - "$ROOT" <<'PY'
import glob, json, os, re, shutil, subprocess, sys, tempfile, time
root = sys.argv[1]
sys.path.insert(0, os.path.join(root, "test"))
from support import harness

work = tempfile.mkdtemp(prefix="dci_valgrind_")
os.chmod(work, 0o777)
logs = os.path.join(work, "vg")
os.makedirs(logs)
os.chmod(logs, 0o777)
supp = [os.path.join(root, "test", "support", "valgrind.supp")]
for s in ("/usr/lib/x86_64-linux-gnu/valgrind/debian.supp", "/usr/lib/valgrind/debian.supp"):
    if os.path.exists(s):
        supp.append(s)
        break
wrapper = os.path.join(work, "postgres-vg")
with open(wrapper, "w") as f:
    f.write("#!/bin/sh\nexec valgrind --quiet --tool=memcheck --trace-children=no "
            "--leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite "
            "--track-origins=no --num-callers=30 --error-limit=no --read-var-info=no "
            "--child-silent-after-fork=no %s --log-file=%s/%%p.log %s/postgres \"$@\"\n"
            % (" ".join("--suppressions=" + s for s in supp), logs, harness.pg_bindir()))
os.chmod(wrapper, 0o755)

certs = os.path.join(work, "certs")
harness.make_certs(certs)
mock = harness.MockRegistry().start(certs)
cl = harness.Cluster()
rc = 2
try:
    # initdb normally, start under valgrind
    cl.tmpdir = tempfile.mkdtemp(prefix="dci_pg_vg_")
    harness._track(cl)
    import pwd
    pw = pwd.getpwnam(harness.PG_USER)
    if os.geteuid() == 0:
        os.chown(cl.tmpdir, pw.pw_uid, pw.pw_gid)
    cl.datadir = os.path.join(cl.tmpdir, "data")
    cl.logfile = os.path.join(cl.tmpdir, "server.log")
    cl.port = harness.free_port()
    cl._run("initdb", "-D", cl.datadir, "--auth=trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C")
    cl._append_conf({"port": cl.port, "listen_addresses": "127.0.0.1", "unix_socket_directories": cl.tmpdir,
                     "fsync": False, "max_connections": 8, "shared_preload_libraries": "dci_client",
                     "max_worker_processes": 4, "autovacuum": False, "jit": False,
                     "dci_client.timeout_ms": 120000, "dci_client.connect_timeout_ms": 60000})
    t0 = time.time()
    cl._run("pg_ctl", "-D", cl.datadir, "-l", cl.logfile, "-p", wrapper, "-w", "-t", "600", "start", timeout=700)
    cl.running = True
    print("postmaster under valgrind started in %.0f s" % (time.time() - t0), flush=True)
    env = dict(os.environ, PGHOST=cl.host, PGPORT=str(cl.port), PGUSER="postgres",
               MOCK_URL=mock.http_url, MOCK_HTTPS_URL=mock.https_url,
               MOCK_TOKEN_URL=mock.token_url, MOCK_CONTROL_URL=mock.control_url)
    t0 = time.time()
    p = subprocess.run(["make", "-s", "-C", root, "installcheck"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(p.stdout[-3000:])
    print("pg_regress under valgrind: %.0f s, exit %d" % (time.time() - t0, p.returncode), flush=True)
    cl._run("pg_ctl", "-D", cl.datadir, "-w", "-t", "600", "-m", "fast", "stop", check=False, timeout=700)
    cl.running = False
    time.sleep(1)

    # ---- read the logs
    kinds = re.compile(r"^==\d+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|"
                       r"Syscall param|Mismatched free|Source and destination overlap|"
                       r"[\d,]+ (\([\d,]+ direct, [\d,]+ indirect\) )?bytes in [\d,]+ blocks are definitely lost)")
    # frames of the extension: "(in .../dci_client.so)" without debug info, else a
    # function of dci_client.so (nm) in one of its source files
    so = os.path.join(subprocess.run(["pg_config", "--pkglibdir"], capture_output=True, text=True).stdout.strip(),
                      "dci_client.so")
    syms = set(l.split()[-1] for l in subprocess.run(["nm", "--defined-only", so], capture_output=True,
                                                      text=True).stdout.splitlines() if l.strip())
    srcs = set(os.path.basename(f) for f in glob.glob(os.path.join(root, "src", "*.c")))
    frame = re.compile(r"(?:at|by) 0x[0-9A-F]+: (\S+) \((?:in (\S+)|([^:()]+):\d+)\)")

    def is_ours(block):
        for m in frame.finditer(block):
            fn, obj, src = m.groups()
            if (obj and obj.endswith("dci_client.so")) or (src in srcs and fn in syms):
                return True
        return False

    ours, others, nlogs = [], [], 0
    for path in sorted(glob.glob(os.path.join(logs, "*.log"))):
        nlogs += 1
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        i = 0
        while i < len(lines):
            if kinds.match(lines[i]):
                j = i + 1
                while j < len(lines) and lines[j].strip() not in ("==%s==" % lines[i].split("==")[1], "") \
                        and not kinds.match(lines[j]):
                    j += 1
                block = "\n".join(lines[i:j])
                (ours if is_ours(block) else others).append((os.path.basename(path), block))
                i = j
            else:
                i += 1
    def summary(lst):
        c = {}
        for _, b in lst:
            k = re.sub(r"^==\d+== ", "", b.splitlines()[0])
            k = re.sub(r"[\d,]+ (\([^)]*\) )?bytes in [\d,]+ blocks", "N bytes in N blocks", k)
            k = re.sub(r" in loss record .*| ?\(0x[0-9a-f]+, 0x[0-9a-f]+, \d+\)", "", k)
            k += " [" + ", ".join(m.group(1) for m in list(frame.finditer(b))[:4]) + "]"
            c[k] = c.get(k, 0) + 1
        return c
    print("\nvalgrind logs: %d processes" % nlogs)
    print("errors attributed to dci_client.so: %d %s" % (len(ours), json.dumps(summary(ours))))
    print("errors elsewhere (PostgreSQL, libraries): %d %s" % (len(others), json.dumps(summary(others))))
    for name, b in ours[:20]:
        print("---- %s\n%s" % (name, b))
    print("\nfirst reports elsewhere, for reference:")
    for name, b in others[:3]:
        print("---- %s\n%s" % (name, "\n".join(b.splitlines()[:12])))
    if p.returncode != 0:
        print("pg_regress failed under valgrind (see regression.diffs)")
        rc = 2
    else:
        rc = 1 if ours else 0
    print("valgrind: %d passed, %d failed" % (1 if rc == 0 else 0, 0 if rc == 0 else 1))
    print("logs kept in %s" % logs if rc else "")
finally:
    try:
        cl.cleanup()
    finally:
        mock.stop()
        if rc == 0 and not os.environ.get("DCI_KEEP_TMP"):
            shutil.rmtree(work, ignore_errors=True)
sys.exit(rc)
PY
