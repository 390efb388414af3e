"""Hardening: key rotation without downtime (README "Key rotation", issue 5), on a cluster
of its own so the main cluster's key is left alone.

While 4 sessions call dci_request in a loop on 2 sources, a new key file is
installed (key_file -> new, retired_key_files -> old, reload) and
dci_reencrypt_secrets() runs: no call fails, every ciphertext is then under
the new key id, the retired key can be dropped, a value under a key that is
gone gives DC001 naming its 16-hex key id, and a cluster restored from
pg_dump without the key never creates one."""
import hashlib, hmac, os, pwd, subprocess, tempfile, threading, time
from contextlib import closing

import psycopg2

from support import harness
from support.util import SECRETS, code, expect_code, request, secret

SECRET_COLS = ("client_secret", "bearer_token", "client_key")


def _key_id(master):
    return hmac.new(master, b"dci_client key id", hashlib.sha256).digest()[:8].hex()


def _read_key(path):
    with open(path, "rb") as f:
        raw = f.read()
    return raw if len(raw) == 32 else bytes.fromhex(raw.decode().strip())


def _write_key(path):
    master = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(master)
    pw = pwd.getpwnam(harness.PG_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)
    SECRETS.add(master.hex())
    return master


def _ciphertext_key_ids(cur):
    """{(table, column, id): key id hex} of every stored secret."""
    out = {}
    for col in SECRET_COLS:
        cur.execute("SELECT id, encode(substring(%s_encrypted FROM 2 FOR 8), 'hex') FROM dci_data_source "
                    "WHERE %s_encrypted IS NOT NULL" % (col, col))
        for i, kid in cur.fetchall():
            out[("dci_data_source", col, i)] = kid
    cur.execute("SELECT id, encode(substring(private_key_encrypted FROM 2 FOR 8), 'hex') FROM dci_signing_key "
                "WHERE private_key_encrypted IS NOT NULL")
    for i, kid in cur.fetchall():
        out[("dci_signing_key", "private_key", i)] = kid
    return out


def _add(env, cl, prefix, **cols):
    sec = secret()
    client = "rot-" + sec[-8:]
    env.mock.add_client(client, sec)
    src = code(prefix)
    env.add_source(src, cluster=cl, client_id=client, client_secret=sec, **cols)
    return src, client, sec


def _reload(cur):
    cur.execute("SELECT pg_reload_conf()")
    time.sleep(0.4)


def _psql(cl, *args, stdin=None):
    cmd = [os.path.join(cl.bindir, "psql"), "-h", cl.host, "-p", str(cl.port), "-U", "postgres",
           "-X", "-q", "-v", "ON_ERROR_STOP=1"] + list(args)
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", harness.PG_USER, "--"] + cmd
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120, cwd="/")


def test_rotation_under_load_then_restore_without_key(env):
    cl = harness.Cluster().start(preload=True)
    cl2 = None
    try:
        with closing(cl.connect()) as conn:
            conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
        a, ca, sa = _add(env, cl, "rota")
        b, cb, sb = _add(env, cl, "rotb", credential_location="basic")
        bear = code("rotbear")
        env.add_source(bear, cluster=cl, auth_type="bearer", auth_url=None, client_id=None,
                       client_secret=None, bearer_token="static-bearer-token-1")
        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_generate_signing_key('rotation-key')", (a,))
        old_path = os.path.join(cl.datadir, "dci_client.key")
        old = _read_key(old_path)
        old_kid = _key_id(old)
        SECRETS.add(old.hex())
        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            before = _ciphertext_key_ids(cur)
            cur.execute("SELECT encode(client_secret_encrypted, 'hex') FROM dci_data_source WHERE code = %s", (a,))
            old_ct_a = cur.fetchone()[0]
        assert len(before) == 4 and set(before.values()) == {old_kid}, before

        # ---- load: 4 sessions x 2 sources, until told to stop
        stop = threading.Event()
        calls, errors = [0] * 4, []

        def worker(n):
            try:
                conn = cl.connect()
            except Exception as e:            # pragma: no cover
                errors.append(repr(e))
                return
            with closing(conn):
                cur = conn.cursor()
                while not stop.is_set():
                    for s in (a, b):
                        try:
                            r = request(cur, s)
                            if r["status"] != 200:
                                errors.append("HTTP %s" % r["status"])
                        except psycopg2.Error as e:
                            errors.append("%s %s" % (e.pgcode, e))
                        calls[n] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)

        new_path = os.path.join(cl.datadir, "dci_client_new.key")
        new = _write_key(new_path)
        new_kid = _key_id(new)
        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            cur.execute("ALTER SYSTEM SET dci_client.key_file = 'dci_client_new.key'")
            cur.execute("ALTER SYSTEM SET dci_client.retired_key_files = 'dci_client.key'")
            _reload(cur)
            t0 = time.monotonic()
            cur.execute("SELECT dci_reencrypt_secrets()")
            rewritten = cur.fetchone()[0]
            reencrypt_s = time.monotonic() - t0
            assert rewritten == 4, rewritten
            time.sleep(0.5)                       # calls go on under the new key
            after = _ciphertext_key_ids(cur)
            # a new secret is written under the new key: the same id
            c, _, _ = _add(env, cl, "rotc")
            cur.execute("SELECT encode(substring(client_secret_encrypted FROM 2 FOR 8), 'hex') "
                        "FROM dci_data_source WHERE code = %s", (c,))
            assert cur.fetchone()[0] == new_kid
            assert set(after.values()) == {new_kid}, after
            assert set(after) == set(before)
            # idempotent: nothing left to rewrite
            cur.execute("SELECT dci_reencrypt_secrets()")
            assert cur.fetchone()[0] == 0
            # drop the retired key: setting and file
            cur.execute("ALTER SYSTEM RESET dci_client.retired_key_files")
            _reload(cur)
            os.rename(old_path, old_path + ".gone")
            time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(30)
        total = sum(calls)
        assert not errors, "%d of %d calls failed during rotation: %s" % (len(errors), total, errors[:5])
        assert total >= 40 and all(calls), calls
        print("       rotation: %d calls in 4 sessions, 0 errors; dci_reencrypt_secrets() %.3f s"
              % (total, reencrypt_s))

        with closing(cl.connect()) as conn:
            cur = conn.cursor()
            # fresh sessions: everything decrypts under the new key alone
            for s in (a, b, bear, c):
                assert request(cur, s)["status"] == 200, s
            cur.execute("SELECT dci_sign(dci_envelope(%s, 'search', '{}'), 'rotation-key')", (a,))
            assert cur.fetchone()[0]
            # a value under a key that is gone: DC001 naming the key id
            cur.execute("UPDATE dci_data_source SET client_secret_encrypted = decode(%s, 'hex') WHERE code = %s",
                        (old_ct_a, a))
            e, _ = expect_code(cur, "DC001", a, contains=[a, old_kid])
            assert "dci_client.retired_key_files" in str(e), str(e)
            assert old.hex() not in str(e) and new.hex() not in str(e)
            cur.execute("SELECT step, ok, detail FROM dci_test_connection(%s)", (a,))
            cfg = cur.fetchone()
            assert cfg[0] == "config" and cfg[1] is False and old_kid in cfg[2], cfg
            # and its key back as a retired key: it decrypts again
            os.rename(old_path + ".gone", old_path)
            cur.execute("ALTER SYSTEM SET dci_client.retired_key_files = 'dci_client.key'")
            _reload(cur)
            cur.execute("UPDATE dci_data_source SET notes = 'reload' WHERE code = %s", (a,))
            assert request(cur, a)["status"] == 200

        # ---- a cluster restored from pg_dump, without the key
        dump = tempfile.NamedTemporaryFile(prefix="dci_rot_", suffix=".sql", delete=False)
        dump.close()
        os.chmod(dump.name, 0o666)
        try:
            cmd = [os.path.join(cl.bindir, "pg_dump"), "-h", cl.host, "-p", str(cl.port), "-U", "postgres",
                   "-d", "postgres", "-f", dump.name]
            r = subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + cmd,
                               capture_output=True, text=True, timeout=60, cwd="/")
            assert r.returncode == 0, r.stderr
            cl2 = harness.Cluster().start(preload=True)
            r = _psql(cl2, "-d", "postgres", "-f", dump.name)
            assert r.returncode == 0, r.stderr[-2000:]
        finally:
            os.unlink(dump.name)
        keys2 = lambda: sorted(f for f in os.listdir(cl2.datadir) if "key" in f)
        assert keys2() == [], keys2()
        with closing(cl2.connect()) as conn:
            cur = conn.cursor()
            cur.execute("SELECT count(*) FROM dci_data_source WHERE client_secret_set")
            assert cur.fetchone()[0] >= 3
            for s in (b, bear):
                e, _ = expect_code(cur, "DC001", s, contains=[s, new_kid])
            try:
                cur.execute("SELECT dci_get_token(%s)", (b,))
                raise AssertionError("dci_get_token worked without the key")
            except psycopg2.Error as e:
                assert e.pgcode == "DC001" and new_kid in str(e), e
            cur.execute("SELECT step, ok FROM dci_test_connection(%s)", (b,))
            assert cur.fetchone() == ("config", False)
            assert keys2() == [], "a key file was created while decrypting: %s" % keys2()
            # re-encrypting with no key must not mint one either
            try:
                cur.execute("SELECT dci_reencrypt_secrets()")
                raise AssertionError("dci_reencrypt_secrets() succeeded without the key")
            except psycopg2.Error as e:
                assert e.pgcode == "DC001", e
            assert keys2() == [], "dci_reencrypt_secrets() created a key file: %s" % keys2()
    finally:
        if cl2 is not None:
            cl2.cleanup()
        cl.cleanup()
