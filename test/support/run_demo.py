#!/usr/bin/python3
"""`make run`: the main job on an embedded default.

Starts a throwaway PostgreSQL cluster (library preloaded) and the bundled mock
DCI registry, then does what an OpenSPP deployment does: create the
extension, register a registry with its OAuth2 secret, obtain a token, make
an authenticated call, run a DCI sync search, test the connection, and print
each result.  Everything it started is torn down at the end.
"""
import json, os, shutil, sys, tempfile

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
        conn = cluster.connect()
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION dci_client CASCADE")
        print("PostgreSQL %s on port %d, mock DCI registry at %s"
              % (cluster.execute("SHOW server_version")[0][0], cluster.port, mock.http_url))

        # The secret travels as a bound parameter and is stored encrypted.
        cur.execute("""
            INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_url,
                                         client_id, client_secret, sender_id)
            VALUES ('crvs', 'National CRVS', 'ns:org:RegistryType:Civil', %s, %s,
                    'openspp-client', %s, 'openspp.example.org')""",
                    (mock.http_url, mock.token_url, "s3cr3t-Pa55word"))
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
        show("connection test", cur,
             "SELECT step, ok, detail FROM dci_test_connection('crvs')")
        show("source state", cur, "SELECT code, state, last_error FROM dci_data_source")

        stats = mock.stats()
        print("\nmock registry saw: %d token request(s), %d connection(s), requests %s"
              % (stats["token_requests"], sum(stats["connections"].values()),
                 json.dumps(stats["requests"])))
        conn.close()
        return 0 if rows and rows[0][0] == "succ" and rows[0][1] >= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
