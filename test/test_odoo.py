"""OpenSPP/Odoo integration (issues 7, 15): the extension called the way Odoo's
workers call it, through the addon odoo/spp_dci_client_sql on the stand-in ORM
of test/support/odoo_orm.py — a real psycopg2 cursor on a non-autocommit
REPEATABLE READ connection, with Odoo's `savepoint()`, `commit()` and
`rollback()`:
`cr.execute` with `%s` parameters, `Json` for jsonb, errors caught by
`pgcode`, in transactions that commit and that roll back, over a pool of
connections in threads.  Also: every SQLSTATE becomes the right UserError,
the neutralisation snippet switches off every source of a copied database,
the request log records each failure class (surviving the rollback) and
never a secret, and dci_source_stats counts."""
import datetime, json, os, re, subprocess, tempfile, threading, time, types, uuid
from contextlib import closing

import psycopg2
import psycopg2.extensions
from psycopg2.extras import Json

from support.env import CLIENT_ID, CLIENT_SECRET
from support.util import code, remember, secret

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADDON = os.path.join(ROOT, "odoo", "spp_dci_client_sql")

from support import odoo_orm  # noqa: E402

odoo_orm.install()
from odoo.addons.spp_dci_client.services.client import DCIClient  # noqa: E402
from odoo.addons.spp_dci_client_crvs.services.crvs_service import CRVSService  # noqa: E402
from odoo.addons.spp_dci_client_sql.services import sql as dci_sql  # noqa: E402

UserError = odoo_orm.UserError
SEARCH = "/registry/sync/search"
NEUTRALIZE_SQL = os.path.join(ADDON, "data", "neutralize.sql")


# ---------------------------------------------------------------- Odoo stand-ins
def odoo_env(env, cluster=None, dbname="postgres"):
    """An Odoo environment (test/support/odoo_orm.py) with the addon loaded,
    on a real psycopg2 connection: REPEATABLE READ, not autocommit."""
    return odoo_orm.environment((cluster or env.cluster).connect(dbname=dbname, autocommit=False))


def source(oenv, c):
    """The spp.dci.data.source record of a code (active or not)."""
    return oenv["spp.dci.data.source"].search([("code", "=", c), ("active", "in", [True, False])], limit=1)


def client(oenv, c):
    return DCIClient(source(oenv, c), oenv)


def search(oenv, c, value, id_type="UIN"):
    """A sync search through the addon's DCIClient (dci_search)."""
    return client(oenv, c).search("idtype-value", "%s:%s" % (id_type, value))


def token(oenv, c, force_refresh=False):
    return dci_sql.fetch_one(oenv.cr, "SELECT dci_get_token(%s, %s)", (c, force_refresh))


def make_request(oenv, c, method, path, payload=None, headers=None, raise_for_status=True):
    """dci_request inside the addon's dci_errors (savepoint, SQLSTATE ->
    UserError): the parsed body; UserError on HTTP >= 400 unless told not to."""
    (status, _headers, body, _ms), = dci_sql.fetch_all(
        oenv.cr, "SELECT status, headers, body, elapsed_ms FROM dci_request(%s, %s, %s, %s, %s)",
        (c, method, path, None if payload is None else Json(payload), None if headers is None else Json(headers)))
    if raise_for_status and status >= 400:
        raise UserError("The registry answered HTTP %s to %s %s." % (status, method, path))
    return json.loads(body) if body else {}


def neutralize(cr):
    with open(NEUTRALIZE_SQL) as f:
        cr.execute(f.read())


def _source_vals(env, c, **over):
    vals = {"name": c.upper(), "code": c, "registry_type": "ns:org:RegistryType:Civil",
            "base_url": env.mock.http_url, "auth_type": "oauth2",
            "oauth2_token_url": env.mock.token_url, "oauth2_client_id": CLIENT_ID,
            "oauth2_client_secret": CLIENT_SECRET, "oauth2_credential_location": "body",
            "verify_ssl": True, "timeout": 30, "our_sender_id": "openspp.example.org",
            "our_callback_uri": "https://openspp.example.org/dci/callback", "active": True}
    vals.update(over)
    return vals


def _new_source(env, prefix, **over):
    """A committed data source created through the Odoo model."""
    c = code(prefix)
    oenv = odoo_env(env)
    try:
        oenv["spp.dci.data.source"].create(_source_vals(env, c, **over))
        oenv.cr.commit()
    finally:
        oenv.cr.close()
    return c


def _user_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except UserError as e:
        return e
    raise AssertionError("%s%r did not raise UserError" % (getattr(fn, "__name__", fn), args))


def _ed25519_public_pem():
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "k.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True,
                       capture_output=True)
        return subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True,
                              capture_output=True, text=True).stdout


# ---------------------------------------------------------------- the addon loads without Odoo
def test_addon_loads_on_the_stand_in(env):
    for state in ("DC001", "DC002", "DC003", "DC004", "DC005", "DC006", "DC007", "DC008", "DC009",
                  "22023", "22021", "57014"):
        assert dci_sql.user_message(state), state
    oenv = odoo_env(env)
    try:
        assert "spp.dci.request.log" in oenv and "spp.dci.data.source" in oenv
        # the model is upstream's with the addon's methods first (Odoo's composition)
        mro = [k.__module__ for k in type(oenv["spp.dci.data.source"]).__mro__]
        assert mro.index("odoo.addons.spp_dci_client_sql.models.data_source") < mro.index("support.odoo_upstream")
    finally:
        oenv.cr.close()
    sql = open(NEUTRALIZE_SQL).read()
    assert "active = false" in sql and "client_secret = ''" in sql, sql


# ---------------------------------------------------------------- the model, write-through
def test_invalid_configuration_is_user_error(env):
    oenv = odoo_env(env)
    try:
        c = code("odoobad")
        e = _user_error(oenv["spp.dci.data.source"].create, _source_vals(env, c, base_url="ftp://x.example"))
        assert e.pgcode == "23514" and "base_url" in str(e), str(e)
        c2 = _new_source(env, "odoodup")
        e = _user_error(oenv["spp.dci.data.source"].create, _source_vals(env, c2))
        assert e.pgcode == "23505", str(e)
        oenv.cr.execute("SELECT 1")                                # the transaction is usable
        oenv.cr.commit()
    finally:
        oenv.cr.close()


def test_unlink_and_missing_fields(env):
    c = _new_source(env, "odoounlink")
    oenv = odoo_env(env)
    try:
        rec = source(oenv, c)
        rec.unlink()
        e = _user_error(token, oenv, c)
        assert e.pgcode == "DC001" and c in str(e), str(e)
        vals = _source_vals(env, code("odoonourl"))
        del vals["base_url"]
        e = _user_error(oenv["spp.dci.data.source"].create, vals)
        assert e.pgcode == "23502" and "base_url" in str(e), str(e)
        oenv.cr.commit()
    finally:
        oenv.cr.close()
    assert env.query("SELECT count(*) FROM dci_data_source WHERE code = %s", (c,)) == [(0,)]


def test_rolled_back_transaction_leaves_nothing(env):
    c = code("odoorb")
    oenv = odoo_env(env)
    try:
        oenv["spp.dci.data.source"].create(_source_vals(env, c))
        assert make_request(oenv, c, "GET", "/echo")["path"] == "/echo"
        oenv.cr.rollback()
        assert env.query("SELECT count(*) FROM dci_data_source WHERE code = %s", (c,)) == [(0,)]
        e = _user_error(token, oenv, c)                            # gone with the rollback
        assert e.pgcode == "DC001" and c in str(e), str(e)
    finally:
        oenv.cr.close()


# ---------------------------------------------------------------- SQLSTATE -> UserError
def test_every_failure_class_becomes_user_error(env):
    good = _new_source(env, "odooerr")
    wrong = _new_source(env, "odoowrong", oauth2_client_secret=secret())
    slow = _new_source(env, "odooslow", auth_type="none", oauth2_token_url=False, oauth2_client_id=False,
                       oauth2_client_secret=False, timeout=0.3)
    with closing(__import__("socket").socket()) as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]                             # closed once the block ends
    dead = _new_source(env, "odoodead", auth_type="none", oauth2_token_url=False, oauth2_client_id=False,
                       oauth2_client_secret=False, base_url="http://127.0.0.1:%d" % dead_port)
    signed = _new_source(env, "odoosigned")
    env.query("UPDATE dci_data_source SET registry_public_key = %s WHERE code = %s", (_ed25519_public_pem(), signed))
    off = _new_source(env, "odoooff", active=False)

    oenv = odoo_env(env)
    cr = oenv.cr
    try:
        marker = code("marker")
        cr.execute("CREATE TEMP TABLE odoo_work (v text)")
        cr.execute("INSERT INTO odoo_work VALUES (%s)", (marker,))
        cases = [
            ("DC001", lambda: search(oenv, off, "1"), off),
            ("DC001", lambda: token(oenv, "no_such_source"), "no_such_source"),
            ("DC002", lambda: make_request(oenv, wrong, "GET", "/echo"), "invalid_client"),
            ("DC003", lambda: make_request(oenv, dead, "GET", "/echo"), "127.0.0.1:%d" % dead_port),
            ("DC004", lambda: (env.mock.fault("/echo", "hang", count=1, delay=5),
                               make_request(oenv, slow, "GET", "/echo")), "time"),
            ("DC005", lambda: (cr.execute("SET LOCAL dci_client.max_response_bytes = '1kB'"),
                               env.mock.fault("/echo", "huge", count=1, bytes=50000),
                               make_request(oenv, good, "GET", "/echo")), "max_response_bytes"),
            ("DC006", lambda: search(oenv, good, "NOT_DCI"), good),
            ("DC007", lambda: search(oenv, good, "REJECTED"), good),
            ("DC008", lambda: search(oenv, signed, "1"), signed),
            ("DC009", lambda: (cr.execute("SET LOCAL dci_client.max_retries = 0"),
                               env.mock.fault(SEARCH, "503", count=2),
                               search(oenv, good, "BRN-1", "BRN")), good),
            ("22023", lambda: make_request(oenv, good, "TRACE", "/echo"), "TRACE"),
            ("22021", lambda: (env.mock.fault("/echo", "invalid_utf8", count=1),
                               make_request(oenv, good, "GET", "/echo")), None),
            ("57014", lambda: (cr.execute("SET LOCAL statement_timeout = '300ms'"),
                               env.mock.fault("/echo", "hang", count=1, delay=5),
                               make_request(oenv, good, "GET", "/echo")), None),
        ]
        for state, call, needle in cases:
            cr.execute("SAVEPOINT one_case")          # the SET LOCALs of a case end with it
            e = _user_error(call)
            cr.execute("ROLLBACK TO SAVEPOINT one_case")
            assert getattr(e, "pgcode", None) == state, (state, getattr(e, "pgcode", None), str(e))
            text = str(e)
            primary = e.__cause__.diag.message_primary
            assert text.startswith(dci_sql.user_message(state, primary) + "\n\n" + primary), (state, text)
            if needle:
                assert needle in text, (state, needle, text)
            assert CLIENT_SECRET not in text
            # the Odoo transaction goes on: earlier work is still there
            cr.execute("SELECT v FROM odoo_work")
            assert cr.fetchall() == [(marker,)], state
            env.mock.reset()
        assert make_request(oenv, good, "GET", "/echo")["path"] == "/echo"
        cr.commit()
    finally:
        cr.close()


def test_other_errors_pass_through(env):
    """An error that is not the extension's is re-raised as it is (and the
    savepoint still keeps the transaction usable)."""
    oenv = odoo_env(env)
    try:
        with closing(oenv.cr._cnx.cursor()):
            pass
        try:
            with dci_sql.dci_errors(oenv.cr):
                oenv.cr.execute("SELECT 1/0")
        except psycopg2.Error as e:
            assert e.pgcode == "22012", e.pgcode
        else:
            raise AssertionError("no error")
        oenv.cr.execute("SELECT 2")
        assert oenv.cr.fetchone() == (2,)
    finally:
        oenv.cr.close()


# ---------------------------------------------------------------- a worker pool
def test_worker_pool_threads(env):
    """Four connections in threads, like Odoo's workers: every public function,
    transactions that commit and that roll back, failures caught by pgcode;
    one token fetch for all of them (shared cache, single flight)."""
    src = _new_source(env, "pool")
    env.mock.reset()
    errors, results = [], []
    barrier = threading.Barrier(4)

    def worker(n):
        oenv = odoo_env(env)
        cr = oenv.cr
        try:
            rec = source(oenv, src)
            svc = CRVSService(oenv, src)
            dci = DCIClient(rec, oenv)
            barrier.wait()
            for i in range(4):
                # Odoo retries a request whose transaction hit a serialization
                # failure (REPEATABLE READ): dci_test_connection updates the
                # source's row, so concurrent tests of one source conflict
                for attempt in range(20):
                    try:
                        one_transaction(cr, rec, svc, dci, n, i)
                        break
                    except psycopg2.Error as e:
                        if e.pgcode != "40001" or attempt == 19:
                            raise
                        cr.rollback()
                        time.sleep(0.05 * (attempt % 5 + 1) + 0.01 * n)
                results.append((n, i))
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("worker %d: %r" % (n, e))
        finally:
            cr.close()

    def one_transaction(cr, rec, svc, dci, n, i):
            cr.execute("SELECT * FROM dci_request(%s, %s, %s, %s, %s)",
                       (src, "POST", "/echo", Json({"worker": n, "i": i}), Json({"X-Worker": str(n)})))
            status, headers, body, elapsed = cr.fetchone()
            assert status == 200 and json.loads(json.loads(body)["body"]) == {"worker": n, "i": i}
            assert rec._get_oauth2_token()
            assert svc.verify_birth("BRN", "BRN-%d-%d" % (n, i))["birth_date"]
            cr.execute("SELECT dci_search(%s, 'idtype-value', %s)", (src, Json({"type": "UIN", "value": "1"})))
            assert cr.fetchone()[0]["status"] == "succ"
            cr.execute("SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s, NULL, 10, 25)",
                       (src, Json({"type": "BULK", "value": "40"})))
            assert cr.fetchone() == (25,)
            cr.execute("SELECT dci_envelope(%s, 'search', %s)", (src, Json({"transaction_id": "t"})))
            assert cr.fetchone()[0]["header"]["action"] == "search"
            txn = dci.search_async("idtype-value", "UIN:2")["message"]["transaction_id"]
            cr.execute("SELECT dci_txn_status(%s, %s)", (src, txn))
            assert cr.fetchone()[0]["txn_status"] == "succ"
            sub = dci.subscribe("REGISTER")["message"]["transaction_id"]
            codes = dci.txn_status(sub)["message"]["txnstatus_response"]["subscription_codes"]
            cr.execute("SELECT dci_unsubscribe(%s, %s::text[])", (src, codes[:1]))
            cr.execute("SELECT ok FROM dci_test_connection(%s) WHERE step = 'authorized'", (src,))
            assert cr.fetchone() == (True,)
            cr.execute("SELECT cached FROM dci_token_status WHERE source = %s", (src,))
            assert cr.fetchone() == (True,)
            try:                                   # caught by pgcode, as Odoo code does
                with cr.savepoint():
                    cr.execute("SELECT dci_search(%s, 'idtype-value', %s)",
                               (src, Json({"type": "UIN", "value": "REJECTED"})))
            except psycopg2.Error as e:
                assert e.pgcode == "DC007", e.pgcode
            cr.execute("SELECT 1")
            if i % 2:
                cr.commit()
            else:
                cr.rollback()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(results) == 16, results
    st = env.mock.stats()
    assert st["token_requests"] == 1, st["token_requests"]
    assert not [v for v in st["dci_validation"] if not v["ok"]]


# ---------------------------------------------------------------- neutralisation of a copy
def _terminate_db(env, db):
    """What Odoo does before copying or dropping a database: end every other
    connection to it (its sessions, and dci_client's request log writer)."""
    env.cluster.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = %s AND pid <> pg_backend_pid()", (db,))
    for _ in range(50):
        if env.cluster.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db,)) == [(0,)]:
            return
        time.sleep(0.1)


def test_neutralised_copy_calls_nothing(env):
    prod, copy = code("odoo_prod"), code("odoo_staging")
    env.cluster.execute("CREATE DATABASE %s" % prod)
    try:
        with closing(env.cluster.connect(dbname=prod)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client CASCADE")
            # the Odoo model's own table, as spp_dci_client has it
            cur.execute("CREATE TABLE spp_dci_data_source (id serial PRIMARY KEY, code text, "
                        "active boolean DEFAULT true, state text DEFAULT 'active')")
        oenv = odoo_env(env, dbname=prod)
        try:
            m = oenv["spp.dci.data.source"]
            m.create(_source_vals(env, "crvs"))
            m.create(_source_vals(env, "dr", registry_type="ns:org:RegistryType:DR"))
            m.create(_source_vals(env, "ibr", auth_type="bearer", oauth2_token_url=False,
                                  oauth2_client_id=False, oauth2_client_secret=False,
                                  bearer_token="static-bearer-token-1"))
            oenv.cr.execute("UPDATE dci_data_source SET client_cert = %s, client_key = %s WHERE code = 'dr'",
                            (env.ca_pem(), remember("-----BEGIN PRIVATE KEY-----\nnot-a-real-key-%s\n"
                                                    "-----END PRIVATE KEY-----" % uuid.uuid4().hex)))
            oenv.cr.execute("SELECT dci_generate_signing_key('prod-key')")
            oenv.cr.execute("UPDATE dci_data_source SET signing_key_id = (SELECT id FROM dci_signing_key) "
                            "WHERE code = 'crvs'")
            for c in ("crvs", "dr", "ibr"):
                oenv.cr.execute("SELECT ok FROM dci_test_connection(%s) WHERE step = 'authorized'", (c,))
                assert oenv.cr.fetchone() == (True,), c
            oenv.cr.commit()
        finally:
            oenv.cr.close()
        _terminate_db(env, prod)
        env.cluster.execute("CREATE DATABASE %s TEMPLATE %s" % (copy, prod))

        oenv = odoo_env(env, dbname=copy)
        try:
            neutralize(oenv.cr)
            oenv.cr.commit()
            oenv.cr.execute("SELECT code, active, state, client_secret_set, bearer_token_set, client_key_set "
                            "FROM dci_data_source ORDER BY code")
            rows = oenv.cr.fetchall()
            assert rows == [(c, False, "draft", False, False, False) for c in ("crvs", "dr", "ibr")], rows
            oenv.cr.execute("SELECT state, private_key_set FROM dci_signing_key")
            assert oenv.cr.fetchall() == [("revoked", False)]
            oenv.cr.execute("SELECT count(*) FROM spp_dci_data_source WHERE active OR state <> 'draft'")
            assert oenv.cr.fetchone() == (0,)
            env.mock.reset()
            for c in ("crvs", "dr", "ibr"):
                e = _user_error(make_request, oenv, c, "GET", "/echo")
                assert e.pgcode == "DC001" and c in str(e), str(e)
                e = _user_error(search, oenv, c, "BRN-1", "BRN")
                assert e.pgcode == "DC001", str(e)
                e = _user_error(CRVSService, oenv, c)               # get_by_code asks the extension
                assert "not found or is inactive" in str(e), str(e)
            # switched on again by hand, it still cannot authenticate: the secrets are gone
            oenv.cr.execute("UPDATE dci_data_source SET active = true WHERE code = 'crvs'")
            e = _user_error(token, oenv, "crvs")
            assert e.pgcode == "DC001", str(e)
            oenv.cr.rollback()
            st = env.mock.stats()
            assert st["token_requests"] == 0 and not st["requests"], st["requests"]
        finally:
            oenv.cr.close()
        # production itself is untouched
        oenv = odoo_env(env, dbname=prod)
        try:
            assert source(oenv, "crvs")._get_oauth2_token()
        finally:
            oenv.cr.close()
    finally:
        for db in (copy, prod):
            env.cluster.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)


# ---------------------------------------------------------------- request log and stats
def _log_rows(env, source, n, timeout=2.0):
    """The dci_request_log rows of a source, once n are there (the background
    writer commits them asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = env.query("SELECT * FROM dci_request_log WHERE source = %s ORDER BY id", (source,))
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


LOG_COLS = None


def test_request_log_outcomes_survive_rollback(env):
    good = _new_source(env, "logok")
    wrong_secret = secret()
    wrong = _new_source(env, "logauth", oauth2_client_secret=wrong_secret)
    slow = _new_source(env, "logslow", auth_type="none", oauth2_token_url=False, oauth2_client_id=False,
                       oauth2_client_secret=False, timeout=0.3)
    dead = _new_source(env, "logdead", auth_type="none", oauth2_token_url=False, oauth2_client_id=False,
                       oauth2_client_secret=False, base_url="http://127.0.0.1:9")
    oenv = odoo_env(env)
    cr = oenv.cr
    tokens = set()
    expected = []
    try:
        cr.execute("SET dci_client.log_requests = 'all'")       # superuser only (PGC_SUSET)
        cr.commit()
        tokens.add(remember(token(oenv, good)))

        def fails(call):
            """A failing call in a transaction that then rolls back (its record stays)."""
            cr.execute("CREATE TEMP TABLE IF NOT EXISTS t_work (v int)")
            cr.execute("INSERT INTO t_work VALUES (1)")
            try:
                call()
            except psycopg2.Error as e:
                cr.rollback()
                return e.pgcode
            raise AssertionError("no error")

        def req(src, method="GET", path="/echo", **kw):
            cr.execute("SELECT * FROM dci_request(%s, %s, %s)", (src, method, path))
            return cr.fetchone()

        assert req(good, path="/echo?uin=847951632&client_secret=" + CLIENT_SECRET)[0] == 200
        expected.append((good, "success", 200))
        assert req(good, path="/missing")[0] == 404
        expected.append((good, "http_error", 404))
        cr.commit()
        env.mock.fault("/echo", "hang", count=1, delay=5)
        assert fails(lambda: req(slow)) == "DC004"
        expected.append((slow, "timeout", None))
        assert fails(lambda: req(dead)) == "DC003"
        expected.append((dead, "connection_error", None))
        assert fails(lambda: req(wrong)) == "DC002"
        expected.append((wrong, "auth_error", None))
        search = lambda value: cr.execute("SELECT dci_search(%s, 'idtype-value', %s)",  # noqa: E731
                                          (good, Json({"type": "UIN", "value": value})))
        assert fails(lambda: search("REJECTED")) == "DC007"
        expected.append((good, "rejected", 200))
        cr.execute("SET dci_client.max_retries = 0")
        env.mock.fault(SEARCH, "503", count=1)
        assert fails(lambda: search("1")) == "DC009"
        expected.append((good, "unavailable", 503))
        assert fails(lambda: search("NOT_DCI")) == "DC006"
        expected.append((good, "error", 200))
        env.mock.fault("/echo", "invalid_utf8", count=1)
        assert fails(lambda: req(good)) == "22021"
        expected.append((good, "error", 200))
        env.mock.fault("/echo", "hang", count=1, delay=5)
        cr.execute("SET statement_timeout = '300ms'")
        assert fails(lambda: req(good)) == "57014"
        expected.append((good, "timeout", None))
        cr.execute("RESET statement_timeout")
        cr.commit()
    finally:
        cr.close()

    by_source = {}
    for src, outcome, status in expected:
        by_source.setdefault(src, []).append((outcome, status))
    seen = []
    for src, want in by_source.items():
        rows = _log_rows(env, src, len(want))
        cols = [d for d in ("id", "logged_at", "source_id", "source", "method", "path", "status", "outcome",
                            "elapsed_ms", "bytes", "attempts", "error", "username")]
        got = [dict(zip(cols, r)) for r in rows]
        assert [(g["outcome"], g["status"]) for g in got] == want, (src, [(g["outcome"], g["status"], g["error"]) for g in got], want)
        seen += got
    for g in seen:
        assert g["path"] in ("/echo", "/missing", SEARCH), g        # never the query string
        assert g["method"] in ("GET", "POST") and g["username"] == "postgres", g
        assert g["elapsed_ms"] is not None and g["attempts"] is not None, g
        assert (g["outcome"] == "success") == (g["error"] is None), g
    text = repr(env.query("SELECT * FROM dci_request_log"))
    for s in [CLIENT_SECRET, wrong_secret, "847951632", "static-bearer-token-1"] + sorted(tokens):
        assert s not in text, "%r found in dci_request_log" % s
    assert not re.search(r"tok-\d+-[0-9a-f]{8}", text), text


def test_request_log_level_errors_by_default(env):
    src = _new_source(env, "loglevel")
    oenv = odoo_env(env)
    try:
        oenv.cr.execute("SHOW dci_client.log_requests")
        assert oenv.cr.fetchone() == ("errors",)
        make_request(oenv, src, "GET", "/echo")                   # success: not recorded at 'errors'
        _user_error(make_request, oenv, src, "TRACE", "/echo")    # refused before any call: no record
        env.mock.fault("/echo", "503", count=3)
        oenv.cr.execute("SET LOCAL dci_client.max_retries = 0")
        assert make_request(oenv, src, "GET", "/echo", raise_for_status=False) == {"error": "mock status 503"}
        oenv.cr.rollback()
        rows = _log_rows(env, src, 1)
        assert [(r[7], r[6]) for r in rows] == [("http_error", 503)], rows
        oenv.cr.execute("SET dci_client.log_requests = 'off'")
        env.mock.fault("/echo", "503", count=1)
        make_request(oenv, src, "GET", "/echo", raise_for_status=False)
        oenv.cr.commit()
    finally:
        oenv.cr.close()
    time.sleep(0.3)
    assert len(_log_rows(env, src, 2, timeout=0.2)) == 1
    # an ordinary role may not switch the log on or off
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        r = code("odoorole")
        cur.execute("CREATE ROLE %s" % r)
        try:
            cur.execute("SET ROLE %s" % r)
            try:
                cur.execute("SET dci_client.log_requests = 'all'")
            except psycopg2.Error as e:
                assert e.pgcode == "42501", e.pgcode
            else:
                raise AssertionError("a non-superuser changed dci_client.log_requests")
        finally:
            cur.execute("RESET ROLE")
            cur.execute("DROP ROLE %s" % r)


def test_source_stats_counts(env):
    src = _new_source(env, "stats")
    oenv = odoo_env(env)
    try:
        for _ in range(3):
            make_request(oenv, src, "GET", "/echo")
        CRVSService(oenv, src).verify_birth("BRN", "BRN-1")
        _user_error(search, oenv, src, "REJECTED")
        make_request(oenv, src, "GET", "/missing", raise_for_status=False)
        token(oenv, src, force_refresh=True)
        oenv.cr.rollback()
        oenv.cr.execute("SELECT calls, errors, token_fetches, p50_ms, p95_ms, last_call_at "
                        "FROM dci_source_stats WHERE source = %s", (src,))
        calls, errs, fetches, p50, p95, last = oenv.cr.fetchone()
        assert calls == 6, calls
        assert errs == 2, errs                                     # the rejection and the 404
        assert fetches == 2, fetches                               # the first token and the forced one
        assert p50 is not None and p95 >= p50 > 0, (p50, p95)
        assert last is not None
    finally:
        oenv.cr.close()
    # shared memory: another session sees the same numbers
    assert env.query("SELECT calls FROM dci_source_stats WHERE source = %s", (src,)) == [(6,)]


# ---------------------------------------------------------------- the README's Odoo examples
def _readme_odoo_blocks():
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("## Using it from Odoo (OpenSPP)")
    end = text.find("\n## ", start + 10)
    section = text[start:end if end > 0 else None]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_odoo_examples(env):
    blocks = _readme_odoo_blocks()
    assert len(blocks) >= 2, "the README's Odoo section lost its examples"
    partner = types.SimpleNamespace(birth_registration_number="BRN-2019-0042", national_id="847951632",
                                    birthdate=datetime.date(2019, 3, 14))
    oenv = odoo_env(env)
    try:
        oenv.cr.execute("DELETE FROM dci_data_source WHERE code = 'crvs'")
        oenv.cr.execute("DELETE FROM spp_dci_data_source WHERE code = 'crvs'")
        oenv["spp.dci.data.source"].create(_source_vals(env, "crvs"))
        ns = {"self": types.SimpleNamespace(env=oenv), "partner": partner}
        for block in blocks:
            exec(compile(block, "README.md (Odoo)", "exec"), ns)
        assert ns["result"]["verified"] is True, ns["result"]
        assert [r["status"] for r in ns["rows"]] == ["succ", "succ"], ns["rows"]
        assert ns["message"].startswith("The request was invalid."), ns["message"]
    finally:
        oenv.cr.rollback()
        oenv.cr.close()
