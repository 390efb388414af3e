#!/usr/bin/python3
"""The shared test environment: one mock registry, one preloaded cluster with
the extension created, and (on demand) a cluster without preloading.

Tests are functions `test_*(env)` in test/test_*.py; test/conftest.py's
session fixtures start the mock and the cluster once, hand the tests this Env
over them and tear everything down at the end.  A test raises
(AssertionError or anything) to fail.
"""
import psycopg2

from . import harness

# The default client of the mock registry.
CLIENT_ID = "openspp-client"
CLIENT_SECRET = "s3cr3t-Pa55word"

# The session cluster logs at debug1 and logs failing statements: the log scan
# at the end of the session reads that log.
CLUSTER_CONF = {
    "log_min_messages": "debug1",
    "log_min_error_statement": "error",
}


def start_cluster():
    """The session's cluster: preloaded, CLUSTER_CONF, the extension created in `postgres`."""
    cluster = harness.Cluster().start(preload=True, conf=CLUSTER_CONF)
    try:
        conn = cluster.connect()
        try:
            conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        finally:
            conn.close()
    except BaseException:
        cluster.cleanup()
        raise
    return cluster


class Env:
    def __init__(self, certdir, mock, cluster):
        """certdir: the test certificates (harness.make_certs); mock: a started
        harness.MockRegistry; cluster: the session's cluster (start_cluster).
        Their owner stops them; close() stops only what Env started itself."""
        self.certdir = certdir
        self.mock = mock
        self.cluster = cluster
        self._nopreload = None

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
        if self._nopreload is not None:
            self._nopreload.cleanup()
            self._nopreload = None


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
