#!/usr/bin/python3
"""`make run`: the main job on an embedded default.

Starts a throwaway PostgreSQL cluster (library preloaded) and the bundled mock
DCI registry, then does what an OpenSPP deployment does: create the
extension, register a registry with its OAuth2 secret, obtain a token, make
an authenticated call, run a DCI sync search, verify a whole programme in
bulk (dci_search_batch), run an asynchronous search whose answer the registry
posts back to a callback route (a stand-in for Odoo's controller handing the
raw body to dci_receive) and await it, ask the disability registry, test the
connection, and print each result.  Everything it started is torn down at the
end.
"""
import json, os, shutil, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import harness  # noqa: E402
from psycopg2.extras import Json  # noqa: E402


def show(title, cur, sql, params=None):
    cur.execute(sql, params)
    rows = cur.fetchall()
    names = [d[0] for d in cur.description]
    print("\n-- %s" % title)
    print("   " + " | ".join(names))
    for r in rows:
        print("   " + " | ".join("" if v is None else str(v) for v in r))
    return rows


def callback_route(cluster):
    """What Odoo's controller does (README "Callbacks and notifications"): the
    raw body and lower-cased headers to dci_receive, commit, return its answer."""
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = cluster.connect(autocommit=False)
            try:
                cur = conn.cursor()
                cur.execute("SELECT http_status, response FROM dci_receive(%s, %s, %s)",
                            (self.path.rsplit("/", 1)[-1], raw.decode("utf-8", "replace"),
                             Json({k.lower(): v for k, v in self.headers.items()})))
                status, response = cur.fetchone()
                conn.commit()
            finally:
                conn.close()
            body = json.dumps(response).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    certdir = tempfile.mkdtemp(prefix="dci_certs_")
    try:
        return demo(certdir)
    finally:
        shutil.rmtree(certdir, ignore_errors=True)


def demo(certdir):
    os.chmod(certdir, 0o755)
    harness.make_certs(certdir)
    with harness.MockRegistry().start(certdir) as mock, \
            harness.Cluster().start(preload=True) as cluster:
        route = callback_route(cluster)
        callback_uri = "http://127.0.0.1:%d/dci/callback/crvs" % route.server_address[1]
        conn = cluster.connect()
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION dci_client CASCADE")
        print("PostgreSQL %s on port %d, mock DCI registry at %s"
              % (cluster.execute("SHOW server_version")[0][0], cluster.port, mock.http_url))

        # The secret travels as a bound parameter and is stored encrypted.
        cur.execute("""
            INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_url,
                                         client_id, client_secret, sender_id, callback_uri,
                                         callback_token)
            VALUES ('crvs', 'National CRVS', 'ns:org:RegistryType:Civil', %s, %s,
                    'openspp-client', %s, 'openspp.example.org', %s, %s)""",
                    (mock.http_url, mock.token_url, "s3cr3t-Pa55word", callback_uri, "cb-T0ken-4-demo"))
        show("registered data source (client_secret reads back NULL)", cur,
             "SELECT id, code, base_url, auth_type, client_secret, client_secret_set, "
             "octet_length(client_secret_encrypted) AS ciphertext_bytes FROM dci_data_source")

        show("token (shown truncated)", cur,
             "SELECT left(dci_get_token('crvs'), 6) || '...' AS token")
        show("token status", cur,
             "SELECT source, cached, shared, expires_at - obtained_at AS lifetime FROM dci_token_status")

        show("authenticated call", cur,
             "SELECT status, body, round(elapsed_ms::numeric, 2) AS elapsed_ms "
             "FROM dci_request('crvs', 'GET', '/registry/ping')")

        # the DCI layer builds the envelope (message id, timestamps, counts), sends it
        # through the same path (token, retries) and returns the registry's answer item
        rows = show("DCI sync search (dci_search)", cur,
                    "SELECT r -> 'status' AS status, "
                    "jsonb_array_length(r -> 'data' -> 'reg_records') AS records, "
                    "r -> 'data' -> 'reg_records' -> 0 -> 'name' AS first_record_name "
                    "FROM dci_search('crvs', 'idtype-value', %s) AS r",
                    (Json({"type": "UIN", "value": "847951632"}),))
        # bulk verification: a whole programme's ids, packed into envelopes, several in flight
        ids = ["%09d" % (100000000 + 7 * i) for i in range(1000)]
        t0 = time.monotonic()
        bulk = show("bulk verification (dci_search_batch: 1,000 ids, 100 per envelope, 4 in flight)", cur,
             "SELECT count(*) AS lookups, count(*) FILTER (WHERE status = 'succ') AS answered, "
             "count(*) FILTER (WHERE jsonb_array_length(records) > 0) AS found "
             "FROM dci_search_batch('crvs', 'idtype-value', %s, batch_size => 100, concurrency => 4)",
             (Json([{"type": "UIN", "value": v} for v in ids]),))
        took = time.monotonic() - t0
        print("   (%.2f s; %d sync search envelopes so far, the first by dci_search)"
              % (took, mock.stats()["search"]["envelopes"]))

        # the asynchronous half: the registry ACKs, then posts on-search to callback_uri with
        # our callback token; dci_receive checks and stores it, dci_await returns the answer
        mock._ctl("/callbacks", {"enabled": True, "token": "cb-T0ken-4-demo", "delay": 0.1})
        cur.execute("SELECT dci_search_async('crvs', 'idtype-value', %s)",
                    (Json({"type": "UIN", "value": "847951632"}),))
        txn = cur.fetchone()[0]
        show("asynchronous search: dci_search_async, the callback, dci_await", cur,
             "SELECT r -> 'status' AS status, r -> 'data' -> 'reg_records' -> 0 -> 'name' AS first_record_name "
             "FROM dci_await('crvs', %s, 10000) AS r", (txn,))
        kept = show("what the database kept of it (dci_transaction, dci_inbox)", cur,
             "SELECT t.action, t.state, t.callbacks, i.action AS received, i.verified "
             "FROM dci_transaction t JOIN dci_inbox i USING (source_id, transaction_id) "
             "WHERE t.transaction_id = %s", (txn,))

        # another registry's own endpoint: the disability registry
        cur.execute("""
            INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_url,
                                         client_id, client_secret, sender_id)
            VALUES ('dr', 'National disability registry', 'ns:org:RegistryType:DR', %s, %s,
                    'openspp-client', %s, 'openspp.example.org')""",
                    (mock.http_url, mock.token_url, "s3cr3t-Pa55word"))
        dr = show("disability registry (dci_disabled)", cur,
             "SELECT dci_disabled('dr', %s) ->> 'disabled_status' AS disabled_status",
             (Json({"member.member_identifier": {"eq": "847951632"}}),))

        show("connection test", cur,
             "SELECT step, ok, detail FROM dci_test_connection('crvs')")
        show("source state", cur, "SELECT code, state, last_error FROM dci_data_source")

        stats = mock.stats()
        print("\nmock registry saw: %d token request(s), %d connection(s), requests %s"
              % (stats["token_requests"], sum(stats["connections"].values()),
                 json.dumps(stats["requests"])))
        conn.close()
        route.shutdown()
        ok = (rows and rows[0][0] == "succ" and rows[0][1] >= 1 and bulk == [(1000, 1000, 1000)]
              and kept == [("search", "completed", 1, "on-search", "token")] and dr == [("yes",)])
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
