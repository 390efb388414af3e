"""Hardening: privileges (README "Privileges", issue 5).  The README's GRANTs are run
verbatim (extracted from its "Privileges" section, so a README change is
tested): the calling role needs EXECUTE only, the administering role cannot
redirect a stored secret, no non-superuser reads the key or a decrypted
secret, nothing is granted to PUBLIC, and the database owner's pg_dump
works."""
import os, re, subprocess
from contextlib import closing

import psycopg2

from support.env import expect_error
from support.util import code, request, secret

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROLES = ("odoo_dci", "dci_admin")


def _privileges_section():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    m = re.search(r"^## Privileges\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "README.md has no '## Privileges' section"
    return m.group(1)


def readme_privileges_sql():
    """The first ```sql block of README.md's "## Privileges" section."""
    block = re.search(r"```sql\n(.*?)```", _privileges_section(), re.S)
    assert block, "README.md's Privileges section has no ```sql block"
    sql = block.group(1)
    for role in ROLES:
        assert "CREATE ROLE %s" % role in sql, "README no longer creates %s" % role
    return sql


def _drop_role(cur, role):
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    if cur.fetchone():
        cur.execute("DROP OWNED BY %s" % role)
        cur.execute("DROP ROLE %s" % role)


def _readme_owner_grants(sql):
    """The README's statements granting to the database owner (role odoo)."""
    return [st.strip() for st in sql.split(";") if re.search(r"\bTO\s+odoo\s*$", st.strip())]


def _ensure_owner_role(cur):
    """The README's block also grants to `odoo`, the database owner: it must exist."""
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'odoo'")
    if not cur.fetchone():
        cur.execute("CREATE ROLE odoo LOGIN")
        return True
    return False


def _setup_roles(env, dbname="postgres", cluster=None):
    """Run the README block as superuser; give both roles LOGIN to connect as Odoo would."""
    with closing((cluster or env.cluster).connect(dbname=dbname)) as conn:
        cur = conn.cursor()
        for role in ROLES:
            _drop_role(cur, role)
        created = _ensure_owner_role(cur)
        cur.execute(readme_privileges_sql())
        for role in ROLES:
            cur.execute("ALTER ROLE %s LOGIN" % role)
        if created:         # leave no `odoo` role behind for later test files
            _drop_role(cur, "odoo")


def _as(env, role, dbname="postgres"):
    conn = env.cluster.connect(user=role, dbname=dbname)
    return conn


def _key_path(env):
    return os.path.join(env.cluster.datadir, "dci_client.key")


def _sources(env):
    """An oauth2 source (token cached once) and a bearer source, as superuser."""
    oauth = code("privoauth")
    env.add_source(oauth)
    bearer = code("privbearer")
    env.add_source(bearer, auth_type="bearer", auth_url=None, client_id=None, client_secret=None,
                   bearer_token="static-bearer-token-1")
    return oauth, bearer


def test_calling_role_needs_execute_only(env):
    _setup_roles(env)
    oauth, bearer = _sources(env)
    with closing(_as(env, "odoo_dci")) as conn:
        cur = conn.cursor()
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cur.fetchone()[0] is False
        # it calls
        assert request(cur, oauth)["status"] == 200
        assert request(cur, bearer)["status"] == 200
        cur.execute("SELECT step, ok FROM dci_test_connection(%s)", (oauth,))
        steps = dict(cur.fetchall())
        assert steps.get("reachable") is True and steps.get("auth") is True, steps
        cur.execute("SELECT cached FROM dci_token_status WHERE source = %s", (oauth,))
        assert cur.fetchone() == (True,)
        # but reads no table
        for t in ("dci_data_source", "dci_signing_key", "dci_request_log"):
            expect_error(cur, "42501", "SELECT * FROM %s" % t)
        # dci_get_token, dci_sign and re-encryption need their own grants
        # (the README block grants dci_get_token as an option: revoke it first)
    with closing(env.connect()) as su:
        su.cursor().execute("REVOKE EXECUTE ON FUNCTION dci_get_token(text, boolean), "
                            "dci_get_token(integer, boolean) FROM odoo_dci")
    with closing(_as(env, "odoo_dci")) as conn:
        cur = conn.cursor()
        expect_error(cur, "42501", "SELECT dci_get_token(%s)", (oauth,))
        expect_error(cur, "42501", "SELECT dci_get_token(1)")
        expect_error(cur, "42501", "SELECT dci_sign('{}'::jsonb, 'k')")
        expect_error(cur, "42501", "SELECT dci_reencrypt_secrets()")
        expect_error(cur, "42501", "SELECT dci_secret_binding('a', 'b', 'c', true, NULL)")
        # the hidden settings
        for name in ("dci_client.key_file", "dci_client.retired_key_files", "dci_client.proxy"):
            expect_error(cur, "42501", "SHOW %s" % name)
            expect_error(cur, "42501", "SELECT current_setting(%s, true)", (name,))
            cur.execute("SELECT count(*) FROM pg_settings WHERE name = %s", (name,))
            assert cur.fetchone()[0] == 0, name
        # nor can it change where calls go
        for name, val in (("dci_client.allowed_hosts", ""), ("dci_client.proxy", "http://127.0.0.1:9"),
                          ("dci_client.max_response_bytes", "1GB")):
            expect_error(cur, "42501", "SET %s = '%s'" % (name, val))
    # granted back (the README's optional line): now it may
    with closing(env.connect()) as su:
        su.cursor().execute("GRANT EXECUTE ON FUNCTION dci_get_token(text, boolean) TO odoo_dci")
    with closing(_as(env, "odoo_dci")) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_get_token(%s)", (oauth,))
        assert cur.fetchone()[0].startswith("tok-")


def test_admin_cannot_redirect_secret(env):
    _setup_roles(env)
    other = "http://localhost:%d" % env.mock.ports["http"]     # another origin, same mock
    sec = secret()
    env.mock.add_client("admin-client", sec)
    with closing(_as(env, "dci_admin")) as conn:
        cur = conn.cursor()
        src = code("privadmin")
        # the admin creates and edits sources (server-side encryption runs for it)
        cur.execute("INSERT INTO dci_data_source (code, name, base_url, auth_url, client_id, client_secret) "
                    "VALUES (%s, 'x', %s, %s, 'admin-client', %s) RETURNING id",
                    (src, env.mock.http_url, env.mock.token_url, sec))
        sid = cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET notes = 'edited', scope = NULL WHERE id = %s", (sid,))
        cur.execute("SELECT client_secret, client_secret_set, encode(client_secret_encrypted, 'hex') "
                    "FROM dci_data_source WHERE id = %s", (sid,))
        plain, is_set, old_ct = cur.fetchone()
        assert plain is None and is_set is True and sec.encode().hex() not in old_ct
        cur.execute("SELECT step, ok FROM dci_test_connection(%s)", (src,))
        assert dict(cur.fetchall())["auth"] is True
    # warm the shared token with the odoo role
    with closing(_as(env, "odoo_dci")) as conn:
        assert request(conn.cursor(), src)["status"] == 200
    env.mock.reset()
    env.mock.add_client("admin-client", sec)
    with closing(_as(env, "dci_admin")) as conn:
        cur = conn.cursor()
        # move base_url: the secret is dropped
        cur.execute("UPDATE dci_data_source SET base_url = %s WHERE id = %s", (other, sid))
        cur.execute("SELECT client_secret_set FROM dci_data_source WHERE id = %s", (sid,))
        assert cur.fetchone()[0] is False
        # writing the old ciphertext back in the same row does not help
        cur.execute("UPDATE dci_data_source SET client_secret_encrypted = decode(%s, 'hex') WHERE id = %s",
                    (old_ct, sid))
        cur.execute("SELECT client_secret_set FROM dci_data_source WHERE id = %s", (sid,))
        assert cur.fetchone()[0] is True
        # nor does moving auth_url together with the old ciphertext in one statement
        cur.execute("UPDATE dci_data_source SET auth_url = %s, client_secret_encrypted = decode(%s, 'hex') "
                    "WHERE id = %s", (other + "/oauth2/client/token", old_ct, sid))
    with closing(_as(env, "odoo_dci")) as conn:
        cur = conn.cursor()
        try:
            request(cur, src)
            raise AssertionError("a redirected source still authenticated")
        except psycopg2.Error as e:
            assert e.pgcode == "DC001", e
            assert "client_secret" in str(e) and sec not in str(e), str(e)
    s = env.mock.stats()
    # neither the secret nor the cached token went anywhere
    assert s["connections"] == {} and s["token_requests"] == 0 and s["authorization"] == [], s
    # a bearer source: changing auth_type/auth_url drops the bearer token too
    with closing(_as(env, "dci_admin")) as conn:
        cur = conn.cursor()
        b = code("privadminb")
        cur.execute("INSERT INTO dci_data_source (code, name, base_url, auth_type, bearer_token) "
                    "VALUES (%s, 'b', %s, 'bearer', 'static-bearer-token-1') RETURNING id", (b, env.mock.http_url))
        bid = cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET verify_ssl = false WHERE id = %s", (bid,))
        cur.execute("SELECT bearer_token_set FROM dci_data_source WHERE id = %s", (bid,))
        assert cur.fetchone()[0] is False
        # a copy to a new row id (OVERRIDING SYSTEM VALUE) fails to authenticate
        cur.execute("INSERT INTO dci_data_source (id, code, name, base_url, auth_url, client_id, "
                    "client_secret_encrypted) OVERRIDING SYSTEM VALUE VALUES (%s, %s, 'c', %s, %s, "
                    "'admin-client', decode(%s, 'hex'))",
                    (sid + 100000, code("privcopy"), env.mock.http_url, env.mock.token_url, old_ct))
        cur.execute("SELECT step, ok, detail FROM dci_test_connection(%s)", (sid + 100000,))
        rows = cur.fetchall()
        assert rows[0][0] == "config" and rows[0][1] is False and "decrypt" in rows[0][2], rows
    assert env.mock.stats()["token_requests"] == 0


def test_no_role_reads_key_or_secret(env):
    _setup_roles(env)
    oauth, bearer = _sources(env)
    key = _key_path(env)
    assert os.path.exists(key)
    with open(key, "rb") as f:
        raw = f.read()
    for role in ROLES + ("dci_nobody",):
        with closing(env.connect()) as su:
            cur = su.cursor()
            if role == "dci_nobody":
                _drop_role(cur, role)
                cur.execute("CREATE ROLE dci_nobody LOGIN")
        with closing(_as(env, role)) as conn:
            cur = conn.cursor()
            for sql, args in (("SELECT pg_read_file(%s)", (key,)),
                              ("SELECT pg_read_binary_file(%s)", (key,)),
                              ("SELECT pg_read_binary_file('dci_client.key')", None),
                              ("SELECT pg_stat_file(%s)", (key,)),
                              ("SELECT pg_ls_dir('.')", None),
                              ("COPY (SELECT 1) TO '/tmp/dci_priv_probe'", None),
                              ("SELECT lo_import(%s)", (key,)),
                              ("SELECT dci_reencrypt_secrets()", None),
                              ("SELECT dci_secret_binding('a', 'b', 'c', true, NULL)", None),
                              ("SELECT dci_data_source_trigger()", None)):
                try:
                    cur.execute(sql, args)
                    raise AssertionError("%s ran as %s: %r" % (sql, role, cur.fetchall()))
                except psycopg2.Error as e:
                    assert e.pgcode in ("42501", "0A000", "42883"), (role, sql, e.pgcode, str(e))
                    assert raw.hex() not in str(e)
            if role != "odoo_dci":     # the README grants them to the calling role (no secret in them)
                for f in ("dci_token_status_entries", "dci_source_stats_entries", "dci_source_stats_items",
                          "dci_batch_progress_entries"):
                    expect_error(cur, "42501", "SELECT %s()" % f)
                for rel in ("dci_source_stats", "dci_batch_progress"):
                    expect_error(cur, "42501", "SELECT * FROM %s" % rel)
            else:
                cur.execute("SELECT count(*) FROM dci_source_stats")
                cur.execute("SELECT count(*) FROM dci_batch_progress")
            # internal C symbols cannot be reached by a non-superuser either
            expect_error(cur, "42501", "CREATE FUNCTION x_decrypt(bytea) RETURNS text "
                         "AS '$libdir/dci_client', 'dci_get_token' LANGUAGE C")
            cur.execute("SELECT pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')")
            assert cur.fetchone()[0] is False
            if role == "dci_admin":
                # the ciphertext is readable (README grants SELECT) but useless
                cur.execute("SELECT client_secret, bearer_token, client_key FROM dci_data_source")
                assert all(v is None for row in cur.fetchall() for v in row)
    with closing(env.connect()) as su:
        _drop_role(su.cursor(), "dci_nobody")


def test_nothing_granted_to_public(env):
    with closing(env.connect()) as su:
        cur = su.cursor()
        # the catalog: no dci_* function, table, view or sequence has a PUBLIC ACL entry
        cur.execute("""
            SELECT p.oid::regprocedure::text FROM pg_proc p
              JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'dci_client'
             WHERE p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a
                                                WHERE a.grantee = 0)""")
        public_funcs = [r[0] for r in cur.fetchall()]
        # dci_verify / dci_search_by_id are checked below by calling them
        cur.execute("""
            SELECT c.relname FROM pg_class c
              JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
              JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'dci_client'
             WHERE EXISTS (SELECT 1 FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
                            WHERE a.grantee = 0)""")
        public_rels = [r[0] for r in cur.fetchall()]
        cur.execute("""
            SELECT p.oid::regprocedure::text, p.proname,
                   array(SELECT format_type(t, NULL) FROM unnest(p.proargtypes) t)
              FROM pg_proc p
              JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
              JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'dci_client'
             WHERE p.prorettype <> 'trigger'::regtype""")
        funcs = cur.fetchall()
        _drop_role(cur, "dci_fresh")
        cur.execute("CREATE ROLE dci_fresh LOGIN")
        cur.execute("GRANT USAGE ON SCHEMA public TO dci_fresh")
    assert not public_funcs, "functions with PUBLIC EXECUTE: %s" % public_funcs
    assert not public_rels, "relations with PUBLIC access: %s" % public_rels
    assert len(funcs) >= 30, funcs
    try:
        with closing(_as(env, "dci_fresh")) as conn:
            conn.autocommit = True
            cur = conn.cursor()
            for sig, name, types in funcs:
                # call each with NULL arguments: the EXECUTE check comes first
                call = "SELECT %s(%s)" % (name, ", ".join("(SELECT NULL::%s)" % t for t in types))
                try:
                    cur.execute(call)
                    raise AssertionError("%s is callable by a role without grants" % sig)
                except psycopg2.Error as e:
                    assert e.pgcode == "42501", (sig, e.pgcode, str(e))
            for rel in ("dci_data_source", "dci_signing_key", "dci_request_log", "dci_token_status",
                        "dci_source_stats", "dci_batch_progress"):
                expect_error(cur, "42501", "SELECT * FROM %s" % rel)
    finally:
        with closing(env.connect()) as su:
            _drop_role(su.cursor(), "dci_fresh")


def _pg_dump(cluster, dbname, user):
    cmd = [os.path.join(cluster.bindir, "pg_dump"), "-h", cluster.host, "-p", str(cluster.port),
           "-U", user, "-d", dbname]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")


def test_database_owner_pg_dump(env):
    """The owner's grants are the README's (`... TO odoo`), run in a database odoo owns."""
    db = "dci_owned_db"
    grants = _readme_owner_grants(readme_privileges_sql())
    assert grants, "README's Privileges block has no GRANT ... TO odoo for the database owner"
    with closing(env.connect()) as su:
        cur = su.cursor()
        cur.execute("DROP DATABASE IF EXISTS %s" % db)
        created = _ensure_owner_role(cur)
        cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'odoo'")
        assert cur.fetchone()[0] is False
        cur.execute("CREATE DATABASE %s OWNER odoo" % db)
    try:
        with closing(env.cluster.connect(dbname=db)) as su:
            cur = su.cursor()
            cur.execute("CREATE EXTENSION dci_client CASCADE")
            for g in grants:
                cur.execute(g)
            sec = secret()
            src = code("privdump")
            env.add_source(src, conn=su, client_secret=sec)
        r = _pg_dump(env.cluster, db, "odoo")
        assert r.returncode == 0, ("pg_dump as the database owner, with the README's grants, failed: %s"
                                   % r.stderr)
        assert src in r.stdout and "client_secret_encrypted" in r.stdout
        assert sec not in r.stdout
        # and the owner sees no plaintext and cannot fetch a token
        with closing(env.cluster.connect(dbname=db, user="odoo")) as conn:
            cur = conn.cursor()
            cur.execute("SELECT client_secret FROM dci_data_source")
            assert cur.fetchone()[0] is None
            expect_error(cur, "42501", "SELECT dci_get_token(%s)", (src,))
    finally:
        with closing(env.connect()) as su:
            cur = su.cursor()
            cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
            if created:
                _drop_role(cur, "odoo")
