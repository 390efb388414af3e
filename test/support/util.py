"""Small helpers shared by the integration tests (test/test_*.py).

Calls are made the way Odoo makes them: psycopg2, parameters bound by the
driver, `SELECT * FROM dci_request(...)` so the response arrives as columns.
"""
import json, os, secrets, time

import psycopg2
import psycopg2.extras

TOKEN_PATH = "/oauth2/client/token"

# Every secret a test stores or sends, so the log scan (logscan.py) can look for them.
SECRETS = set()


def secret(prefix="Zq9-unique-secret-"):
    """A distinctive secret, remembered for the log scan."""
    s = prefix + secrets.token_hex(8)
    SECRETS.add(s)
    return s


def remember(value):
    SECRETS.add(value)
    return value


# Plain-text secrets a test deliberately writes into a table that is not the
# extension's, as a deployment had them before migrating (the Odoo addon's
# migration tests put them into spp_dci_client's own table): they are on disk
# and in the WAL by construction, so the disk/WAL scan of test_secrets_storage
# leaves them out.  They are in SECRETS too, so the server log scan still
# looks for every one.
LEGACY_PLAINTEXT = set()


def legacy(prefix="Zq9-legacy-"):
    """A distinctive pre-migration plain-text secret (see LEGACY_PLAINTEXT)."""
    s = secret(prefix)
    LEGACY_PLAINTEXT.add(s)
    return s


def code(prefix):
    """A unique source code (^[a-z][a-z0-9_]*$)."""
    return "%s_%s" % (prefix, secrets.token_hex(3))


def request(cur, source, method="GET", path="/echo", body=None, headers=None):
    """dci_request as Odoo calls it; returns a dict of the four columns."""
    cur.execute("SELECT * FROM dci_request(%s, %s, %s, %s, %s)",
                (source, method, path,
                 None if body is None else psycopg2.extras.Json(body),
                 None if headers is None else psycopg2.extras.Json(headers)))
    status, hdrs, text, elapsed = cur.fetchone()
    return {"status": status, "headers": hdrs, "body": text, "elapsed_ms": elapsed}


def request_error(cur, source, method="GET", path="/echo", body=None, headers=None):
    """Run dci_request and require it to fail; returns (error, seconds taken)."""
    t0 = time.monotonic()
    try:
        request(cur, source, method, path, body, headers)
    except psycopg2.Error as e:
        if not cur.connection.autocommit:
            cur.connection.rollback()
        return e, time.monotonic() - t0
    raise AssertionError("dci_request(%r, %r, %r) succeeded, expected an error" % (source, method, path))


def expect_code(cur, pgcode, source, method="GET", path="/echo", body=None, headers=None, contains=None):
    e, secs = request_error(cur, source, method, path, body, headers)
    assert e.pgcode == pgcode, "expected SQLSTATE %s, got %s: %s" % (pgcode, e.pgcode, e)
    if contains:
        for c in ([contains] if isinstance(contains, str) else contains):
            assert c.lower() in str(e).lower(), "%r not in error %r" % (c, str(e))
    return e, secs


def setting(cur, name, value):
    cur.execute("SELECT set_config(%s, %s, false)", (name, str(value)))


def body_json(resp):
    return json.loads(resp["body"])


def requests_to(stats, path):
    return stats["requests"].get(path, 0)


class session:
    """`with session(env) as cur:` -- a connection that is closed afterwards
    (psycopg2's own context manager only ends the transaction)."""

    def __init__(self, env, cluster=None, **kw):
        self.conn = env.connect(cluster, **kw)

    def __enter__(self):
        return self.conn.cursor()

    def __exit__(self, *exc):
        self.conn.close()
