"""Operations (issue 7): pg_dump/pg_restore of a database with sources (same
cluster and key: the sources work; another cluster without the key: a clear
DC001 naming the key id, and no key is created there); ALTER EXTENSION
dci_client UPDATE from every installable version to default_version; DROP
EXTENSION / CREATE EXTENSION leaves nothing behind and starts clean.

`make installcheck` against an existing cluster is what test_regress.py
does (PGHOST/PGPORT + the MOCK_* variables); it is not run twice.
"""
import glob, os, re, subprocess, tempfile, time
from contextlib import closing

import psycopg2

from support import harness
from support.env import CLIENT_ID, CLIENT_SECRET
from support.util import code

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAREDIR = subprocess.run(["pg_config", "--sharedir"], capture_output=True, text=True).stdout.strip()


def _pg(cluster, tool, *args):
    """Run a client program of the cluster's bindir against it, as root over TCP."""
    r = subprocess.run([os.path.join(cluster.bindir, tool), "-h", cluster.host, "-p", str(cluster.port),
                        "-U", "postgres"] + list(args), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, "%s failed (%d): %s%s" % (tool, r.returncode, r.stdout, r.stderr)
    return r


class _Database:
    """A scratch database on a cluster, dropped (WITH FORCE: the request log
    writer may be connected to it) at the end."""

    def __init__(self, cluster, prefix, extension=True):
        self.cluster, self.name = cluster, code(prefix)
        cluster.execute("CREATE DATABASE %s" % self.name)
        if extension:
            self.execute("CREATE EXTENSION dci_client CASCADE")

    def connect(self, **kw):
        return self.cluster.connect(dbname=self.name, **kw)

    def execute(self, sql, params=None):
        return self.cluster.execute(sql, params, dbname=self.name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cluster.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.name)


def _add_sources(env, db):
    with closing(db.connect()) as conn:
        for c, cols in (("crvs", {}), ("dr", {"credential_location": "basic"}),
                        ("ibr", {"auth_type": "bearer", "auth_url": None, "client_id": None,
                                 "client_secret": None, "bearer_token": "static-bearer-token-1"})):
            env.add_source(c, conn=conn, registry_type="ns:org:RegistryType:Civil", sender_id="openspp.example.org", **cols)


def _objects(db):
    """What the extension is made of: its member objects, their columns and
    function signatures, comparable between two databases."""
    rows = db.execute("""
        SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
          FROM pg_depend d JOIN pg_extension e ON d.refclassid = 'pg_extension'::regclass AND d.refobjid = e.oid
         WHERE e.extname = 'dci_client' AND d.deptype = 'e'
         ORDER BY 1""")
    cols = db.execute("""
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated
          FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
          LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
         WHERE c.relname LIKE 'dci\\_%' AND c.relkind IN ('r', 'v', 'c')
         ORDER BY 1, a.attnum""")
    funcs = db.execute("""
        SELECT p.oid::regprocedure::text, pg_get_function_result(p.oid), p.provolatile, p.proisstrict,
               p.prosecdef, p.prosrc, coalesce(p.proacl::text, '')
          FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'dci_client'
         ORDER BY 1""")
    cons = db.execute("""
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid::regclass::text LIKE 'dci\\_%' ORDER BY 1, 2""")
    # whole definitions: SQL-standard bodies, triggers (and how they are enabled), indexes, views, grants
    defs = db.execute("""
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid)
          FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
          JOIN pg_extension e ON d.refobjid = e.oid AND e.extname = 'dci_client'
         WHERE p.prokind = 'f'
         ORDER BY 1""")
    trig = db.execute("""
        SELECT tgrelid::regclass::text, tgname, tgenabled, pg_get_triggerdef(oid) FROM pg_trigger
         WHERE tgrelid::regclass::text LIKE 'dci\\_%' AND NOT tgisinternal ORDER BY 1, 2""")
    idx = db.execute("""
        SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index
         WHERE indrelid::regclass::text LIKE 'dci\\_%' ORDER BY 1""")
    views = db.execute("""
        SELECT c.relname, pg_get_viewdef(c.oid), coalesce(c.relacl::text, '') FROM pg_class c
         WHERE c.relname LIKE 'dci\\_%' AND c.relkind IN ('v', 'r') ORDER BY 1""")
    config = db.execute("""
        SELECT unnest(extconfig)::regclass::text, unnest(extcondition) FROM pg_extension
         WHERE extname = 'dci_client' ORDER BY 1""")
    return {"objects": [r[0] for r in rows], "columns": cols, "functions": funcs, "constraints": cons,
            "definitions": defs, "triggers": trig, "indexes": idx, "relations": views, "config": config}


def _key_id(db, c):
    """The key id a stored secret names: bytes 2..9 of its ciphertext."""
    return db.execute("SELECT encode(substr(client_secret_encrypted, 2, 8), 'hex') FROM dci_data_source "
                      "WHERE code = %s", (c,))[0][0]


# ---------------------------------------------------------------- dump and restore
def test_dump_restore_same_cluster(env):
    with tempfile.TemporaryDirectory() as tmp, _Database(env.cluster, "ops_src") as src, \
            _Database(env.cluster, "ops_dst", extension=False) as dst:
        _add_sources(env, src)
        dump = os.path.join(tmp, "odoo.dump")
        _pg(env.cluster, "pg_dump", "-Fc", "-f", dump, src.name)
        raw = open(dump, "rb").read()
        assert CLIENT_SECRET.encode() not in raw and b"static-bearer-token-1" not in raw
        _pg(env.cluster, "pg_restore", "--exit-on-error", "-d", dst.name, dump)

        rows = dst.execute("SELECT code, client_secret_set, bearer_token_set FROM dci_data_source ORDER BY id")
        assert rows == [("crvs", True, False), ("dr", True, False), ("ibr", False, True)], rows
        assert src.execute("SELECT id, code FROM dci_data_source ORDER BY id") == \
            dst.execute("SELECT id, code FROM dci_data_source ORDER BY id")
        with closing(dst.connect()) as conn:
            cur = conn.cursor()
            for c in ("crvs", "dr"):
                cur.execute("SELECT dci_get_token(%s, true)", (c,))
                assert cur.fetchone()[0].startswith("tok-"), c
            cur.execute("SELECT dci_get_token('ibr')")
            assert cur.fetchone() == ("static-bearer-token-1",)
            cur.execute("SELECT status FROM dci_request('crvs', 'GET', '/echo')")
            assert cur.fetchone() == (200,)
            cur.execute("SELECT ok FROM dci_test_connection('dr') WHERE step = 'authorized'")
            assert cur.fetchone() == (True,)
            # the identity sequence came along: a new source does not collide
            env.add_source("fr", conn=conn)
            cur.execute("SELECT count(DISTINCT id) FROM dci_data_source")
            assert cur.fetchone() == (4,)
        assert _objects(src) == _objects(dst)


def test_restore_on_cluster_without_key(env):
    """Another cluster, no key file: the restored sources fail with a DC001
    that names the key id they need, and no key file is created there."""
    with tempfile.TemporaryDirectory() as tmp, _Database(env.cluster, "ops_keyed") as src:
        _add_sources(env, src)
        kid = _key_id(src, "crvs")
        assert re.fullmatch(r"[0-9a-f]{16}", kid), kid
        assert os.path.exists(os.path.join(env.cluster.datadir, "dci_client.key"))
        dump = os.path.join(tmp, "odoo.dump")
        _pg(env.cluster, "pg_dump", "-Fc", "-f", dump, src.name)

        other = harness.Cluster().start(preload=False)
        try:
            keyfile = os.path.join(other.datadir, "dci_client.key")
            other.execute("CREATE DATABASE odoo")
            _pg(other, "pg_restore", "--exit-on-error", "-d", "odoo", dump)
            with closing(other.connect(dbname="odoo")) as conn:
                cur = conn.cursor()
                cur.execute("SELECT code, client_secret_set FROM dci_data_source ORDER BY id")
                assert cur.fetchall() == [("crvs", True), ("dr", True), ("ibr", False)]
                for c, fn in (("crvs", "SELECT dci_get_token(%s)"),
                              ("dr", "SELECT * FROM dci_request(%s, 'GET', '/echo')"),
                              ("ibr", "SELECT dci_get_token(%s)")):
                    try:
                        cur.execute(fn, (c,))
                    except psycopg2.Error as e:
                        assert e.pgcode == "DC001", (c, e.pgcode, str(e))
                        assert c in e.diag.message_primary, str(e)
                        assert kid in str(e), "key id %s not named: %s" % (kid, e)
                    else:
                        raise AssertionError("%s worked without the key" % c)
                cur.execute("SELECT step, ok FROM dci_test_connection('crvs')")
                steps = cur.fetchall()
                assert steps[0] == ("config", False), steps
                assert not os.path.exists(keyfile), "a key file was created on the restored cluster"
                # a new secret is what creates a key, and then it works
                cur.execute("UPDATE dci_data_source SET client_secret = %s WHERE code = 'crvs'", (CLIENT_SECRET,))
                assert os.path.exists(keyfile)
                cur.execute("SELECT dci_get_token('crvs')")
                assert cur.fetchone()[0].startswith("tok-")
            assert env.mock.stats()["token_requests"] == 1
        finally:
            other.cleanup()


# ---------------------------------------------------------------- upgrade
def _default_version():
    with open(os.path.join(ROOT, "dci_client.control")) as f:
        return re.search(r"^default_version\s*=\s*'([^']+)'", f.read(), re.M).group(1)


def test_upgrade_scripts_installed_and_chained(env):
    """Every src/dci_client--A--B.sql is installed, and from every installable
    version the chain reaches default_version."""
    default = _default_version()
    installed = set(os.path.basename(p) for p in glob.glob(os.path.join(SHAREDIR, "extension", "dci_client--*.sql")))
    scripts = [os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "src", "dci_client--*.sql"))]
    assert "dci_client--%s.sql" % default in scripts, scripts
    for s in scripts:
        assert s in installed, "%s is not installed (Makefile DATA)" % s
    edges = [re.match(r"dci_client--(.+)--(.+)\.sql$", s).groups() for s in scripts if s.count("--") == 2]
    versions = {re.match(r"dci_client--([^-]+(?:-[^-]+)*)\.sql$", s).group(1) for s in scripts if s.count("--") == 1}
    versions |= {a for a, _ in edges} | {b for _, b in edges}
    rows = env.query("SELECT version FROM pg_available_extension_versions WHERE name = 'dci_client'")
    available = {r[0] for r in rows}
    assert default in available, available
    paths = env.query("SELECT source, target, path FROM pg_extension_update_paths('dci_client') "
                      "WHERE target = %s AND source <> target", (default,))
    reach = {s for s, _t, p in paths if p is not None}
    for v in versions - {default}:
        assert v in reach, "no update path from %s to %s" % (v, default)


def test_alter_extension_update_from_every_version(env):
    default = _default_version()
    sources = sorted(r[0] for r in env.query(
        "SELECT source FROM pg_extension_update_paths('dci_client') "
        "WHERE target = %s AND source <> target AND path IS NOT NULL", (default,)))
    with _Database(env.cluster, "ops_fresh") as fresh:
        want = _objects(fresh)
        assert len(want["objects"]) > 40, want["objects"]
        assert sources == ["0.1"] or default != "0.2", sources
        for v in sources:
            with _Database(env.cluster, "ops_from", extension=False) as db:
                db.execute("CREATE EXTENSION dci_client VERSION %s CASCADE" % psycopg2.extensions.QuotedString(v).getquoted().decode())
                _add_sources(env, db)
                db.execute("ALTER EXTENSION dci_client UPDATE")
                assert db.execute("SELECT extversion FROM pg_extension WHERE extname = 'dci_client'") == [(default,)]
                got = _objects(db)
                for k in want:
                    assert got[k] == want[k], "after %s -> %s, %s differ:\n%s\n%s" % (v, default, k, got[k], want[k])
                with closing(db.connect()) as conn:
                    cur = conn.cursor()
                    cur.execute("SELECT dci_get_token('crvs')")
                    assert cur.fetchone()[0].startswith("tok-")
        # on the current version it is a clean no-op, with sources in place
        _add_sources(env, fresh)
        with closing(fresh.connect()) as conn:
            conn.notices.clear()
            cur = conn.cursor()
            cur.execute("ALTER EXTENSION dci_client UPDATE")
            assert any("already installed" in n for n in conn.notices), conn.notices
            cur.execute("ALTER EXTENSION dci_client UPDATE TO %s" % psycopg2.extensions.QuotedString(default).getquoted().decode())
            cur.execute("SELECT dci_get_token('crvs')")
            assert cur.fetchone()[0].startswith("tok-")
        got = _objects(fresh)
        assert got == want


# ---------------------------------------------------------------- drop and re-create
def test_drop_and_recreate_extension(env):
    with _Database(env.cluster, "ops_drop") as db:
        _add_sources(env, db)
        with closing(db.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SET dci_client.log_requests = 'all'")
            cur.execute("SELECT dci_get_token('crvs')")
            old_token = cur.fetchone()[0]
            cur.execute("SELECT status FROM dci_request('crvs', 'GET', '/echo')")
            assert cur.fetchone() == (200,)
            cur.execute("DROP EXTENSION dci_client")
            for sql in (r"SELECT count(*) FROM pg_proc WHERE proname LIKE 'dci\_%'",
                        r"SELECT count(*) FROM pg_class WHERE relname LIKE 'dci\_%'",
                        r"SELECT count(*) FROM pg_type WHERE typname LIKE 'dci\_%' OR typname LIKE '\_dci\_%'",
                        "SELECT count(*) FROM pg_extension WHERE extname = 'dci_client'"):
                cur.execute(sql)
                assert cur.fetchone() == (0,), sql
            cur.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pgcrypto'")
            assert cur.fetchone() == (1,)                      # CASCADE brought it; DROP leaves it
            # a call in the same session after the drop fails cleanly
            try:
                cur.execute("SELECT dci_get_token('crvs')")
            except psycopg2.Error as e:
                assert e.pgcode == "42883", e.pgcode           # undefined function
            cur.execute("CREATE EXTENSION dci_client")
            cur.execute("SELECT count(*) FROM dci_data_source")
            assert cur.fetchone() == (0,)
            cur.execute("SELECT count(*) FROM dci_request_log")
            assert cur.fetchone() == (0,)
        env.mock.reset()
        _add_sources(env, db)
        other = code("client")
        env.mock.add_client(other, CLIENT_SECRET + "-other")
        db.execute("UPDATE dci_data_source SET client_id = %s, client_secret = %s WHERE code = 'crvs'",
                   (other, CLIENT_SECRET + "-other"))
        with closing(db.connect()) as conn:
            cur = conn.cursor()
            # the new 'crvs' has the id the dropped one had, and other credentials:
            # the dropped source's token must not be handed out for it
            cur.execute("SELECT dci_get_token('crvs')")
            new_token = cur.fetchone()[0]
            assert new_token.startswith("tok-") and new_token != old_token
            st = env.mock.stats()
            assert st["token_requests"] == 1 and st["token_log"][-1]["client_id"] == other, st["token_log"]
            cur.execute("SELECT status FROM dci_request('dr', 'GET', '/echo')")
            assert cur.fetchone() == (200,)
            cur.execute("SELECT dci_search('crvs', 'idtype-value', '{\"type\": \"UIN\", \"value\": \"1\"}')")
            assert cur.fetchone()[0]["status"] == "succ"
            # statistics start over too (the dropped 'crvs' made one call under the same id)
            cur.execute("SELECT source, calls FROM dci_source_stats ORDER BY source_id")
            stats = cur.fetchall()
            assert stats == [("crvs", 1), ("dr", 1), ("ibr", 0)], stats


def test_readme_operations_examples(env):
    text = open(os.path.join(ROOT, "README.md")).read()
    start = text.index("## Operations")
    section = text[start:text.index("\n## ", start + 5)]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert blocks, "the README's Operations section lost its examples"
    src = code("opsreadme")
    env.add_source(src)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT status FROM dci_request(%s, 'GET', '/missing')", (src,))
        for block in blocks:
            for stmt in [s.strip() for s in block.split(";") if s.strip()]:
                cur.execute(stmt)
                assert cur.fetchall() is not None
        cur.execute("SELECT calls, errors FROM dci_source_stats WHERE source = %s", (src,))
        assert cur.fetchone() == (1, 1)


# ---------------------------------------------------------------- upgrade from 0.1, with data
def test_upgrade_from_0_1_keeps_secrets_keys_and_log(env):
    """A database at 0.1 with sources, secrets, a signing key and log rows:
    ALTER EXTENSION UPDATE to 0.2 keeps every secret decryptable, every
    function working, and the upgraded database dumps and restores."""
    with tempfile.TemporaryDirectory() as tmp, \
            _Database(env.cluster, "ops_up01", extension=False) as db, \
            _Database(env.cluster, "ops_up01_restored", extension=False) as restored:
        db.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
        _add_sources(env, db)
        db.execute("UPDATE dci_data_source SET sender_id = 'openspp.test'")
        key = db.execute("SELECT dci_generate_signing_key('up-key')")[0][0]
        db.execute("UPDATE dci_data_source SET signing_key_id = %s WHERE code = 'dr'", (key,))
        with closing(db.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SET dci_client.log_requests = 'all'")
            cur.execute("SELECT status FROM dci_request('crvs', 'GET', '/echo')")
        deadline = time.time() + 10
        while time.time() < deadline and db.execute("SELECT count(*) FROM dci_request_log")[0][0] == 0:
            time.sleep(0.1)
        log_before = db.execute("SELECT count(*) FROM dci_request_log")[0][0]
        assert log_before >= 1
        before = db.execute("SELECT code, client_secret_encrypted, bearer_token_encrypted FROM dci_data_source ORDER BY id")

        db.execute("ALTER EXTENSION dci_client UPDATE")
        assert db.execute("SELECT extversion FROM pg_extension WHERE extname = 'dci_client'") == [("0.2",)]
        # the ciphertext is untouched, and it still decrypts
        assert db.execute("SELECT code, client_secret_encrypted, bearer_token_encrypted FROM dci_data_source ORDER BY id") == before
        assert db.execute("SELECT count(*) FROM dci_request_log")[0][0] >= log_before
        with closing(db.connect()) as conn:
            cur = conn.cursor()
            for c in ("crvs", "dr"):
                cur.execute("SELECT dci_get_token(%s, true)", (c,))
                assert cur.fetchone()[0].startswith("tok-"), c
            cur.execute("SELECT dci_get_token('ibr')")
            assert cur.fetchone() == ("static-bearer-token-1",)
            cur.execute("SELECT dci_envelope('dr', 'search', '{}') ->> 'signature'")
            assert cur.fetchone()[0].startswith('namespace="dci"')
            cur.execute("SELECT count(*) FROM dci_search_by_id('crvs', 'UIN', '1')")
            assert cur.fetchone() == (1,)
            cur.execute("SELECT dci_clear_secret('crvs', 'client_secret')")
            cur.execute("SELECT client_secret_set FROM dci_data_source WHERE code = 'crvs'")
            assert cur.fetchone() == (False,)
            # the 0.2 rules hold on the upgraded table (the trigger; the old CHECKs are gone)
            cur.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'dci_data_source_auth_type_check'")
            assert cur.fetchone() == (0,)
            try:
                cur.execute("UPDATE dci_data_source SET auth_type = 'basic' WHERE code = 'dr'")
                raise AssertionError("a bad auth_type was accepted")
            except psycopg2.Error as e:
                assert e.pgcode == "23514", e.pgcode
        dump = os.path.join(tmp, "up.dump")
        _pg(env.cluster, "pg_dump", "-Fc", "-f", dump, db.name)
        _pg(env.cluster, "pg_restore", "--exit-on-error", "-d", restored.name, dump)
        assert restored.execute("SELECT extversion FROM pg_extension WHERE extname = 'dci_client'") == [("0.2",)]
        with closing(restored.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_get_token('dr', true)")
            assert cur.fetchone()[0].startswith("tok-")
        assert _objects(restored) == _objects(db)


def test_upgrade_stops_on_rows_0_2_refuses(env):
    """A value 0.1 took and 0.2 refuses would leave a row no UPDATE can touch
    (dci_test_connection writes one): the upgrade names it and stops."""
    with _Database(env.cluster, "ops_up_lax", extension=False) as db:
        db.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
        _add_sources(env, db)
        # a row as the 0.1 library wrote it (the 0.2 library's trigger refuses it already)
        db.execute("ALTER TABLE dci_data_source DISABLE TRIGGER dci_data_source_secrets")
        db.execute("UPDATE dci_data_source SET callback_uri = 'not a url' WHERE code = 'dr'")
        db.execute("ALTER TABLE dci_data_source ENABLE ALWAYS TRIGGER dci_data_source_secrets")
        try:
            db.execute("ALTER EXTENSION dci_client UPDATE")
            raise AssertionError("the upgrade went through")
        except psycopg2.Error as e:
            assert e.pgcode == "23514" and "dr (callback_uri)" in str(e), str(e)
        assert db.execute("SELECT extversion FROM pg_extension WHERE extname = 'dci_client'") == [("0.1",)]
        db.execute("UPDATE dci_data_source SET callback_uri = 'https://openspp.example/cb' WHERE code = 'dr'")
        db.execute("ALTER EXTENSION dci_client UPDATE")
        assert db.execute("SELECT extversion FROM pg_extension WHERE extname = 'dci_client'") == [("0.2",)]


def test_extension_in_its_own_schema_qualified_calls(env):
    """README Security: installed in a superuser-owned schema and called
    qualified, the extension works, and an overload the database owner plants
    in public is never reached."""
    owner, db = code("r_dbown"), code("ownschema")
    admin = env.cluster.connect()
    admin.cursor().execute("CREATE ROLE %s LOGIN" % owner)
    admin.cursor().execute("CREATE DATABASE %s OWNER %s" % (db, owner))
    try:
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE SCHEMA dci")
            cur.execute("CREATE EXTENSION dci_client SCHEMA dci CASCADE")
            cur.execute("SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'dci_client'")
            assert cur.fetchone() == ("dci",)
            cur.execute("INSERT INTO dci.dci_data_source (code, name, base_url, auth_type, auth_url, client_id, "
                        "client_secret, sender_id) VALUES ('own', 'own', %s, 'oauth2', %s, %s, %s, 'openspp.test')",
                        (env.mock.http_url, env.mock.token_url, CLIENT_ID, CLIENT_SECRET))
        with closing(env.cluster.connect(dbname=db, user=owner)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE TABLE public.planted_ran (at timestamptz)")
            cur.execute("CREATE FUNCTION public.dci_request(text, text, text) RETURNS text LANGUAGE sql "
                        "AS $$ INSERT INTO public.planted_ran VALUES (now()); SELECT 'planted' $$")
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("SELECT status FROM dci.dci_request('own', 'GET', '/echo')")
            assert cur.fetchone() == (200,)
            cur.execute("SELECT dci.dci_get_token('own') IS NOT NULL")
            assert cur.fetchone() == (True,)
            cur.execute("SELECT count(*) FROM public.planted_ran")
            assert cur.fetchone() == (0,)
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        admin.cursor().execute("DROP ROLE IF EXISTS %s" % owner)
        admin.close()


def test_released_0_1_script_is_unchanged():
    """0.1 is deployed: its install script must stay as released (what
    changes goes into dci_client--0.1--0.2.sql), or databases installed from
    it and from this tree would differ under the same version."""
    import hashlib
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "dci_client--0.1.sql")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == "1a8aae431d118e4c51c18941bca1cfa7aec975f28e058b98f841bd407544e34b", digest
