"""The inbound half's benchmark (`make bench ARGS=--inbound`, README
"Benchmarks"): on a throwaway preloaded cluster and the bundled mock registry,
side by side in one run:

  1. the sender: dci_search_async (its autonomous dci_transaction write: the
     database's transaction writer commits the row before the request goes
     out) against
     dci_search on the same registry, one call per round trip from Python;
  2. the receiver: dci_receive of on-search callbacks (token-authenticated,
     then Ed25519-signed), one callback per transaction and a commit each, as
     Odoo's controller does, from 1 and 4 sessions; against the physical
     floor of the same work done by hand: the same body parsed as jsonb, a
     row inserted into a table with the same unique index, a NOTIFY and a
     commit per callback.

Ratios are medians of interleaved runs.  Written to bench/out/inbound.md."""
import base64, datetime, hashlib, json, os, statistics, sys, threading, time, uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test"))
from support import harness                      # noqa: E402
from support.env import CLIENT_ID, CLIENT_SECRET  # noqa: E402  the mock's client

OUT = os.path.join(HERE, "out")
FIX = os.path.join(HERE, "..", "test", "fixtures", "signing")
QUERY = json.dumps({"type": "UIN", "value": "847951632"})
TOKEN = "bench-callback-token-7fd1c0"


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def callback(txn, n=1):
    return {"signature": "", "header": {
        "version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": now_iso(), "action": "on-search",
        "status": "succ", "total_count": 1, "completed_count": 1, "sender_id": "bench-registry",
        "receiver_id": "openspp.bench", "is_msg_encrypted": False, "meta": {}}, "message": {
        "transaction_id": txn, "correlation_id": str(uuid.uuid4()), "search_response": [{
            "reference_id": str(uuid.uuid4()), "timestamp": now_iso(), "status": "succ",
            "data": {"version": "1.0.0", "reg_type": "ns:org:RegistryType:Civil", "reg_record_type": "Person",
                     "reg_records": [{"identifier": [{"identifier_type": "UIN", "identifier_value": str(n)}],
                                      "name": {"given_name": "Ana", "surname": "Bench"}}]}}]}}


def sign(env):
    """The README's DCI signature (Ed25519 over the canonical digest)."""
    from cryptography.hazmat.primitives import serialization
    with open(os.path.join(FIX, "ed25519_private.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    canonical = json.dumps({"header": env["header"], "message": env["message"]}, sort_keys=True,
                           separators=(",", ":"))
    digest = base64.b64encode(hashlib.sha256(canonical.encode()).digest()).decode()
    created = int(time.time())
    ss = "(created): %d\n(expires): %d\ndigest: %s" % (created, created + 300, digest)
    env["signature"] = ('namespace="dci", kidId="bench-registry|k|ed25519", algorithm="ed25519", '
                        'created="%d", expires="%d", headers="(created) (expires) digest", signature="%s"'
                        % (created, created + 300, base64.b64encode(key.sign(ss.encode())).decode()))
    return env


def add_source(cur, code, mock):
    cur.execute("INSERT INTO dci_data_source (code, name, base_url, auth_type, auth_url, client_id, "
                "client_secret, sender_id, receiver_id, callback_uri, callback_token) "
                "VALUES (%s, %s, %s, 'oauth2', %s, %s, %s, 'openspp.bench', "
                "'bench-registry', 'https://openspp.bench/dci/callback', %s)",
                (code, code, mock.http_url, mock.token_url, CLIENT_ID, CLIENT_SECRET, TOKEN))


def timed(fn, items):
    t0 = time.perf_counter()
    fn(items)
    return (time.perf_counter() - t0) / len(items) * 1e6      # microseconds per item


def sender(cluster, n, runs):
    conn = cluster.connect()
    conn.autocommit = True
    cur = conn.cursor()

    def sync(k):
        for _ in range(k):
            cur.execute("SELECT dci_search('bench_in', 'idtype-value', %s)", (QUERY,))
            cur.fetchone()

    def async_(k):
        for _ in range(k):
            cur.execute("SELECT dci_search_async('bench_in', 'idtype-value', %s)", (QUERY,))
            cur.fetchone()
    sync(20), async_(20)                          # warm: token, connection, worker library
    res = {"dci_search": [], "dci_search_async": []}
    for _ in range(runs):
        res["dci_search"].append(timed(lambda k: sync(len(k)), [None] * n))
        res["dci_search_async"].append(timed(lambda k: async_(len(k)), [None] * n))
    conn.close()
    return {k: statistics.median(v) for k, v in res.items()}


def transactions(cluster, n, code, signed):
    """n transactions sent by source `code`; the mock's ACKs are not signed,
    so the registry key is set only once they are sent."""
    conn = cluster.connect()
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("UPDATE dci_data_source SET registry_public_key = NULL WHERE code = %s", (code,))
    out = []
    for _ in range(n):
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (code, QUERY))
        out.append(cur.fetchone()[0])
    if signed:
        with open(os.path.join(FIX, "ed25519_public.pem")) as f:
            cur.execute("UPDATE dci_data_source SET registry_public_key = %s WHERE code = %s", (f.read(), code))
    conn.close()
    return out


def run_sessions(cluster, bodies, sessions, stmt, params):
    """bodies split over `sessions` connections, a commit after each."""
    errors = []

    def work(part):
        conn = cluster.connect()
        conn.autocommit = False
        cur = conn.cursor()
        try:
            for b in part:
                cur.execute(stmt, params(b))
                st = cur.fetchone()[0]
                conn.commit()
                if st not in (200, None, 1):
                    errors.append(st)
        except Exception as e:                    # noqa: BLE001
            errors.append(repr(e))
        finally:
            conn.close()
    ts = [threading.Thread(target=work, args=(bodies[k::sessions],)) for k in range(sessions)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - t0
    if errors:
        raise RuntimeError("callbacks refused: %r" % errors[:5])
    return took / len(bodies) * 1e6


FLOOR = ("WITH b AS (SELECT %s::jsonb AS j), "
         "i AS (INSERT INTO bench_floor (source_id, message_id, transaction_id, header, message) "
         "SELECT 1, j->'header'->>'message_id', j->'message'->>'transaction_id', j->'header', j->'message' "
         "FROM b ON CONFLICT DO NOTHING RETURNING 1) "
         "SELECT (SELECT count(*) FROM i)::int, pg_notify('bench_floor', (SELECT j->'message'->>'transaction_id' FROM b))")


def receiver(cluster, n, runs):
    conn = cluster.connect()
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
                "source_id integer, received_at timestamptz DEFAULT now(), message_id text, transaction_id text, "
                "header jsonb, message jsonb, UNIQUE (source_id, message_id))")
    conn.close()
    hdr = json.dumps({"authorization": "Bearer " + TOKEN})
    res = {}
    for sessions in (1, 4):
        for signed in (False, True):
            key = "dci_receive %s, %d session%s" % ("signed" if signed else "token", sessions,
                                                     "s" if sessions > 1 else "")
            res[key], res["floor, %d session%s" % (sessions, "s" if sessions > 1 else "")] = [], []
    for _ in range(runs):
        for sessions in (1, 4):
            s = "s" if sessions > 1 else ""
            for signed in (False, True):
                src = "bench_sig" if signed else "bench_tok"
                txns = transactions(cluster, n, src, signed)
                bodies = [json.dumps(sign(callback(t, i)) if signed else callback(t, i))
                          for i, t in enumerate(txns)]
                res["dci_receive %s, %d session%s" % ("signed" if signed else "token", sessions, s)].append(
                    run_sessions(cluster, bodies, sessions,
                                 "SELECT http_status FROM dci_receive(%s, %s, %s)",
                                 lambda b, src=src: (src, b, hdr)))
            bodies = [json.dumps(callback(str(uuid.uuid4()), i)) for i in range(n)]
            res["floor, %d session%s" % (sessions, s)].append(
                run_sessions(cluster, bodies, sessions, FLOOR, lambda b: (b,)))
    return {k: statistics.median(v) for k, v in res.items()}


MOCK = None


def main(args):
    global MOCK
    quick = args.quick
    n, runs = (200, 1) if quick else (600, 3)
    t_start = time.time()
    os.makedirs(OUT, exist_ok=True)
    import tempfile, shutil
    certdir = tempfile.mkdtemp(prefix="dci_bench_certs_")
    os.chmod(certdir, 0o755)
    harness.make_certs(certdir)
    MOCK = harness.MockRegistry().start(certdir)
    cluster = harness.Cluster()
    try:
        cluster.start(preload=True)
        c = cluster.connect()
        c.autocommit = True
        c.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        for code in ("bench_in", "bench_tok", "bench_sig"):
            add_source(c.cursor(), code, MOCK)
        c.close()
        S = sender(cluster, n // 2, runs)
        R = receiver(cluster, n, runs)
    finally:
        cluster.cleanup()
        MOCK.stop()
        shutil.rmtree(certdir, ignore_errors=True)
    L = ["## dci_client inbound benchmark", "",
         "%s, `bench/run.py --inbound%s`, %d calls/callbacks per run, median of %d run(s)" % (
             datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), " --quick" if quick else "", n, runs), "",
         "| what | µs per call | ratio |", "|---|---|---|"]
    L.append("| dci_search (sync, reference) | %.0f | 1.00 |" % S["dci_search"])
    L.append("| dci_search_async (+ autonomous dci_transaction write) | %.0f | %.2f |" % (
        S["dci_search_async"], S["dci_search_async"] / S["dci_search"]))
    for sessions in (1, 4):
        s = "s" if sessions > 1 else ""
        floor = R["floor, %d session%s" % (sessions, s)]
        L.append("| floor: parse + insert + NOTIFY + commit by hand, %d session%s (reference) | %.0f | 1.00 |"
                 % (sessions, s, floor))
        for kind in ("token", "signed"):
            v = R["dci_receive %s, %d session%s" % (kind, sessions, s)]
            L.append("| dci_receive, %s, %d session%s | %.0f | %.2f |" % (
                "callback token" if kind == "token" else "Ed25519 signature", sessions, s, v, v / floor))
    L += ["", "(µs per callback with several sessions is wall time / callbacks: throughput; "
          "total bench time %.0f s)" % (time.time() - t_start)]
    report = "\n".join(L) + "\n"
    with open(os.path.join(OUT, "inbound.md"), "w") as f:
        f.write(report)
    with open(os.path.join(OUT, "inbound.json"), "w") as f:
        json.dump({"sender": S, "receiver": R}, f, indent=1)
    print(report)
    return 0
