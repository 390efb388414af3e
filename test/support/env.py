#!/usr/bin/python3
"""The shared test environment: one mock registry, one preloaded cluster with
the extension created, and (on demand) a cluster without preloading.

Tests are functions `test_*(env)` in test/test_*.py; run_tests.py calls them
in file order.  A test raises (AssertionError or anything) to fail.
"""
import os, sys, tempfile, time

from . import harness  # noqa: E402
import psycopg2  # noqa: E402

# The default client of the mock registry.
CLIENT_ID = "openspp-client"
CLIENT_SECRET = "s3cr3t-Pa55word"


class Env:
    def __init__(self):
        self.certdir = tempfile.mkdtemp(prefix="dci_certs_")
        os.chmod(self.certdir, 0o755)
        harness.make_certs(self.certdir)
        self.mock = harness.MockRegistry().start(self.certdir)
        self.cluster = harness.Cluster().start(preload=True, conf={
            "log_min_messages": "debug1",
            "log_min_error_statement": "error",
        })
        self._nopreload = None
        with self.connect() as conn:
            conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")

    # -- clusters --------------------------------------------------------
    def connect(self, cluster=None, **kw):
        return (cluster or self.cluster).connect(**kw)

    def nopreload_cluster(self):
        """A second cluster without shared_preload_libraries (started once)."""
        if self._nopreload is None:
            self._nopreload = harness.Cluster().start(preload=False)
            with self._nopreload.connect() as conn:
                conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        return self._nopreload

    def ca_pem(self):
        return harness.read_pem(self.certdir, "ca.crt")

    # -- data sources ----------------------------------------------------
    def add_source(self, code, conn=None, cluster=None, **cols):
        """Insert a data source pointing at the mock (oauth2 by default);
        any column may be overridden.  Returns its id."""
        row = {
            "code": code, "name": code.upper(), "base_url": self.mock.http_url,
            "auth_type": "oauth2", "auth_url": self.mock.token_url,
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "sender_id": "openspp.test",       # DCI calls refuse a source without one
        }
        row.update(cols)
        row = {k: v for k, v in row.items() if v is not None or k in cols}
        names = ", ".join(row)
        marks = ", ".join(["%s"] * len(row))
        own = conn is None
        conn = conn or self.connect(cluster)
        try:
            cur = conn.cursor()
            cur.execute("DELETE FROM dci_data_source WHERE code = %s", (code,))
            cur.execute("INSERT INTO dci_data_source (%s) VALUES (%s) RETURNING id" % (names, marks),
                        list(row.values()))
            return cur.fetchone()[0]
        finally:
            if own:
                conn.close()

    def query(self, sql, params=None, cluster=None):
        with self.connect(cluster) as conn:
            cur = conn.cursor()
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def close(self):
        for obj in (self._nopreload, self.cluster):
            if obj is not None:
                obj.cleanup()
        self.mock.stop()


def expect_error(cur, pgcode, sql, params=None, contains=None):
    """Run sql and require it to fail with SQLSTATE pgcode; returns the error."""
    try:
        cur.execute(sql, params)
    except psycopg2.Error as e:
        if cur.connection.autocommit is False:
            cur.connection.rollback()
        assert e.pgcode == pgcode, "expected %s, got %s: %s" % (pgcode, e.pgcode, e)
        if contains:
            assert contains in str(e), "%r not in %r" % (contains, str(e))
        return e
    raise AssertionError("expected SQLSTATE %s, but it succeeded: %s" % (pgcode, sql))
