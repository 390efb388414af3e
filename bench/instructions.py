#!/usr/bin/python3
"""Instructions per call (callgrind; deterministic, unlike wall time on a shared VM):
the plain libcurl loop against dci_request and dci_search in a single-user backend,
and dci_search_by_ids per item (100 per envelope).

    /usr/bin/python3 bench/instructions.py
"""
import os, re, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test"))
import run as B  # noqa: E402
from support import harness  # noqa: E402

# valgrind is in Debian; the bench installs what it needs
if not subprocess.run(["which", "valgrind"], capture_output=True).stdout:
    B.apt_install("valgrind")
exe = B.build_curl_loop()
ng = B.Nginx(B.find_nginx()); cl = harness.Cluster()
conn = B.setup(ng, cl); cur = conn.cursor()
cur.execute("SELECT status FROM dci_request('bench','POST','/bench','{}')")
# bulk verification: a registry answering every item (the bench's own, without delay)
from batch_registry import BatchRegistry  # noqa: E402
breg = BatchRegistry(delay=0.0).start()
cur.execute("""INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_type, bearer_token, sender_id)
               VALUES ('batchbench', 'batch', 'ns:org:RegistryType:Civil', %s, 'bearer', 'bench-bearer',
                       'bench.example.org')""", (breg.url,))
conn.close()
cl.stop()
out = tempfile.mkdtemp(); os.chmod(out, 0o777)
def total(path):
    txt = open(path).read()
    m = re.search(r"^summary: (\d+)", txt, re.M) or re.search(r"^totals: (\d+)", txt, re.M)
    return int(m.group(1))
def backend(n, what):
    sql = {"req": "SELECT count(*) FROM generate_series(1,%d) g, LATERAL dci_request('bench','POST','/bench', jsonb_build_object('n', g, 'pad', repeat('x',291))) r WHERE r.status = 200;\n",
           "search": "SELECT count(*) FROM generate_series(1,%d) g, LATERAL dci_search('bench','idtype-value', jsonb_build_object('type','UIN','value',(g+1000000)::text)) r WHERE r ? 'data';\n",
           "batch": "SELECT count(*) FROM dci_search_by_ids('batchbench', 'UIN', (SELECT array_agg(lpad(g::text, 9, '0')) FROM generate_series(1,%d) g), batch_size => 100, concurrency => 8) r WHERE r.status = 'succ';\n"}[what] % n
    f = os.path.join(out, "cg.%s.%d" % (what, n))
    subprocess.run(["runuser", "-u", "postgres", "--", "valgrind", "--tool=callgrind", "--callgrind-out-file=" + f,
                    os.path.join(B.PG_BIN, "postgres"), "--single", "-D", cl.datadir, "postgres"],
                   input=sql, text=True, capture_output=True, timeout=600)
    return total(f)
def curl(n):
    f = os.path.join(out, "cg.curl.%d" % n)
    subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + f, exe, ng.url + "/bench", str(n)],
                   capture_output=True, timeout=600)
    return total(f)
c = (curl(3000) - curl(1000)) / 2000
r = (backend(3000, "req") - backend(1000, "req")) / 2000
s = (backend(3000, "search") - backend(1000, "search")) / 2000
print("instructions per call: libcurl loop %.0f, dci_request %.0f (%.2fx), dci_search %.0f (+%.0f over dci_request)" % (c, r, r / c, s, s - r))
if "--no-batch" not in sys.argv:
    i = (backend(5000, "batch") - backend(1000, "batch")) / 4000
    print("instructions per item: dci_search_by_ids, 100 per envelope, 8 in flight %.0f (%.2f of one dci_search)" % (i, i / s))
breg.stop(); ng.stop(); cl.cleanup()
