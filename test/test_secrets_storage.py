"""Write-only secrets (README "Write-only secrets"): the plaintext is absent from SELECT *,
from the data directory (table files and WAL) and from pg_dump output; the
key file is created 0600 only when a secret is first encrypted; wrong,
missing key, tampered or copied ciphertext give DC001 naming the key id;
changing where credentials go removes the stored secret."""
import hashlib, hmac, os, shutil, stat, subprocess, time
from contextlib import closing

from support import harness
from support.env import CLIENT_ID, CLIENT_SECRET
from support.util import LEGACY_PLAINTEXT, SECRETS, code, expect_code, request, secret

KEY_NAME = "dci_client.key"


def _add_secret_source(env, prefix, cluster=None, **cols):
    sec = secret()
    client = "client-" + sec[-8:]
    env.mock.add_client(client, sec)
    src = code(prefix)
    env.add_source(src, cluster=cluster, client_id=client, client_secret=sec, **cols)
    return src, client, sec


def _files_containing(root, needles):
    """{needle: [paths]} for every regular file under root holding it."""
    hits = {n: [] for n in needles}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            for n in needles:
                if n in data:
                    hits[n].append(p)
    return hits


def _key_id(master):
    return hmac.new(master, b"dci_client key id", hashlib.sha256).digest()[:8].hex()


def test_select_star_has_no_plaintext(env):
    src, client, sec = _add_secret_source(env, "secselect")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT * FROM dci_data_source WHERE code = %s", (src,))
        row = cur.fetchone()
        cols = [d[0] for d in cur.description]
        rec = dict(zip(cols, row))
        assert rec["client_secret"] is None and rec["client_secret_set"] is True, rec
        assert rec["client_secret_encrypted"] is not None
        for k, v in rec.items():
            v = bytes(v) if isinstance(v, memoryview) else v
            assert sec not in str(v) and sec.encode() not in (v if isinstance(v, bytes) else b""), k
        cur.execute("SELECT row_to_json(s)::text FROM dci_data_source s")
        for (txt,) in cur.fetchall():
            assert sec not in txt and CLIENT_SECRET not in txt
        # and yet it decrypts: the call authenticates with it
        assert request(cur, src)["status"] == 200
    assert env.mock.stats()["token_log"][-1]["client_id"] == client


def test_plaintext_not_on_disk_or_wal(env):
    src, client, sec = _add_secret_source(env, "secdisk")
    with closing(env.connect()) as conn:
        conn.autocommit = True
        cur = conn.cursor()
        # the scan must find the row in pg_wal: keep the segments the
        # CHECKPOINT below would otherwise recycle (other tests write WAL too)
        cur.execute("ALTER SYSTEM SET wal_keep_size = '1GB'")
        cur.execute("SELECT pg_reload_conf()")
    try:
        _scan_disk_and_wal(env, src, client, sec)
    finally:
        with closing(env.connect()) as conn:
            conn.autocommit = True
            conn.cursor().execute("ALTER SYSTEM RESET wal_keep_size")
            conn.cursor().execute("SELECT pg_reload_conf()")


def _scan_disk_and_wal(env, src, client, sec):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        assert request(cur, src)["status"] == 200
        # an UPDATE with a new secret writes WAL again
        sec2 = secret()
        env.mock.add_client(client, sec2)
        cur.execute("UPDATE dci_data_source SET client_secret = %s WHERE code = %s", (sec2, src))
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT client_secret_encrypted, pg_relation_filepath('dci_data_source') "
                    "FROM dci_data_source WHERE code = %s", (src,))
        cipher, relpath = cur.fetchone()
        cipher = bytes(cipher)
        cur.execute("SELECT dci_get_token(%s)", (src,))
        token = cur.fetchone()[0]
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_switch_wal()")
    datadir = env.cluster.datadir
    relfile = os.path.join(datadir, relpath)
    assert os.path.exists(relfile), relfile
    # an UPDATE's WAL record may leave out the prefix it shares with the old
    # tuple (format version and key id), so look for the rest of the ciphertext
    cipher = cipher[16:]
    # the Odoo addon's pre-migration rows hold LEGACY_PLAINTEXT in Odoo's own
    # table on purpose (support/util.py): not the extension's secrets
    needles = [s.encode() for s in (SECRETS - LEGACY_PLAINTEXT) | {sec, sec2, CLIENT_SECRET, token}] + [cipher]
    hits = _files_containing(datadir, needles)
    # the row really is on disk (table file and WAL), so the scan can see it
    assert relfile in hits[cipher], hits[cipher]
    assert any("pg_wal" in p for p in hits[cipher]), hits[cipher]
    leaked = {n.decode(): p for n, p in hits.items() if n != cipher and p}
    assert not leaked, "plaintext secrets or tokens found on disk: %r" % leaked


def _pg_dump(cluster):
    cmd = [os.path.join(cluster.bindir, "pg_dump"), "-h", cluster.host, "-p", str(cluster.port),
           "-U", "postgres", "-d", "postgres"]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_pg_dump_carries_ciphertext_not_plaintext(env):
    src, client, sec = _add_secret_source(env, "secdump")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT encode(client_secret_encrypted, 'hex') FROM dci_data_source WHERE code = %s", (src,))
        cipher_hex = cur.fetchone()[0]
    dump = _pg_dump(env.cluster)
    assert src in dump, "pg_dump output lacks the data source rows"
    assert cipher_hex in dump, "pg_dump output lacks the ciphertext"
    for s in SECRETS | {sec, CLIENT_SECRET}:
        assert s not in dump, "plaintext secret in pg_dump output"
    assert "COPY public.dci_data_source" in dump or "INSERT INTO public.dci_data_source" in dump


def test_main_cluster_key_file_mode(env):
    # the key file exists once a secret has been stored: store one here rather
    # than count on an earlier test (or the regress run) having done it
    _add_secret_source(env, "seckeymode")
    path = os.path.join(env.cluster.datadir, KEY_NAME)
    assert os.path.exists(path), os.listdir(env.cluster.datadir)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    assert st.st_size in (32, 64, 65), st.st_size


def test_changing_base_url_removes_secret(env):
    src, client, sec = _add_secret_source(env, "secmove")
    port = env.mock.ports["http"]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        assert request(cur, src)["status"] == 200
        # NULL (or leaving it out) keeps the secret
        cur.execute("UPDATE dci_data_source SET client_secret = NULL, notes = 'x' WHERE code = %s", (src,))
        cur.execute("SELECT client_secret_set FROM dci_data_source WHERE code = %s", (src,))
        assert cur.fetchone()[0] is True
        # moving the origin without the secret drops it
        cur.execute("UPDATE dci_data_source SET base_url = %s WHERE code = %s",
                    ("http://localhost:%d" % port, src))
        cur.execute("SELECT client_secret_set, client_secret_encrypted FROM dci_data_source WHERE code = %s", (src,))
        assert cur.fetchone() == (False, None)
        env.mock.reset()
        expect_code(cur, "DC001", src, contains="client_secret")
        assert env.mock.stats()["connections"] == {}, "a source without its secret contacted the server"
        # moved together with the secret: kept and usable
        env.mock.add_client(client, sec)
        cur.execute("UPDATE dci_data_source SET base_url = %s, client_secret = %s WHERE code = %s",
                    (env.mock.http_url, sec, src))
        cur.execute("SELECT client_secret_set FROM dci_data_source WHERE code = %s", (src,))
        assert cur.fetchone()[0] is True
        assert request(cur, src)["status"] == 200
        # the other trust columns too
        for col, val in (("auth_url", "http://localhost:%d/oauth2/client/token" % port),
                         ("credential_location", "basic"), ("verify_ssl", False)):
            cur.execute("UPDATE dci_data_source SET client_secret = %s WHERE code = %s", (sec, src))
            cur.execute("UPDATE dci_data_source SET %s = %%s WHERE code = %%s" % col, (val, src))
            cur.execute("SELECT client_secret_set FROM dci_data_source WHERE code = %s", (src,))
            assert cur.fetchone()[0] is False, col
        # '' removes it explicitly
        cur.execute("UPDATE dci_data_source SET client_secret = %s WHERE code = %s", (sec, src))
        cur.execute("UPDATE dci_data_source SET client_secret = '' WHERE code = %s", (src,))
        cur.execute("SELECT client_secret_set FROM dci_data_source WHERE code = %s", (src,))
        assert cur.fetchone()[0] is False


def _dc001_on_call_or_update(cur, sql, params, src):
    """A modified ciphertext may be refused when written or when used; DC001 either way."""
    try:
        cur.execute(sql, params)
    except Exception as e:
        assert getattr(e, "pgcode", None) == "DC001", e
        return e
    e, _ = expect_code(cur, "DC001", src)
    return e


def test_tampered_and_copied_ciphertext(env):
    a, _, _ = _add_secret_source(env, "sectampera")
    b, _, _ = _add_secret_source(env, "sectamperb")
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        e = _dc001_on_call_or_update(
            cur, "UPDATE dci_data_source SET client_secret_encrypted = "
                 "set_byte(client_secret_encrypted, 30, get_byte(client_secret_encrypted, 30) # 1) "
                 "WHERE code = %s", (a,), a)
        assert "client_secret" in str(e), str(e)
        # copied from another row
        _dc001_on_call_or_update(
            cur, "UPDATE dci_data_source SET client_secret_encrypted = "
                 "(SELECT client_secret_encrypted FROM dci_data_source WHERE code = %s) WHERE code = %s",
            (b, a), a)
        # copied into another column of the same row
        _dc001_on_call_or_update(
            cur, "UPDATE dci_data_source SET auth_type = 'bearer', bearer_token_encrypted = "
                 "(SELECT client_secret_encrypted FROM dci_data_source WHERE code = %s) WHERE code = %s",
            (b, b), b)
    s = env.mock.stats()
    assert s["token_requests"] == 0 and s["requests"] == {}, s


def test_key_file_lifecycle_wrong_and_missing_key(env):
    """On a cluster of its own: the key file appears only with the first
    encrypted secret; a wrong or missing key gives DC001 naming the key id
    and never creates a new key."""
    cl = harness.Cluster().start(preload=True)
    try:
        key = os.path.join(cl.datadir, KEY_NAME)
        with closing(env.connect(cl)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client CASCADE")
            assert not os.path.exists(key), "key created by CREATE EXTENSION"
            plain = code("keyplain")
            env.add_source(plain, cluster=cl, auth_type="none", auth_url=None, client_id=None,
                           client_secret=None)
            assert request(cur, plain, "GET", "/open/echo")["status"] == 200
            assert not os.path.exists(key), "key created without any secret"
            src, client, sec = _add_secret_source(env, "keysrc", cluster=cl)
            assert os.path.exists(key), "no key file after the first secret"
            st = os.stat(key)
            assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
            assert request(cur, src)["status"] == 200
        with open(key, "rb") as f:
            master = f.read()
        if len(master) != 32:
            master = bytes.fromhex(master.decode().strip())
        kid = _key_id(master)
        SECRETS.add(master.hex())
        saved = key + ".saved"
        shutil.copy2(key, saved)
        try:
            # a wrong key: the same file, other bytes
            with open(key, "r+b") as f:
                f.write(os.urandom(32))
                f.truncate()
            with closing(env.connect(cl)) as conn:
                cur = conn.cursor()
                cur.execute("UPDATE dci_data_source SET notes = 'reload' WHERE code = %s", (src,))
                env.mock.reset()
                e, _ = expect_code(cur, "DC001", src, contains=[src, kid])
                assert master.hex() not in str(e)
                assert env.mock.stats()["token_requests"] == 0
            # back to the right key: works again
            shutil.copyfile(saved, key)
            with closing(env.connect(cl)) as conn:
                env.mock.add_client(client, sec)
                assert request(conn.cursor(), src)["status"] == 200
            # a missing key: DC001, and decrypting never creates a key
            os.rename(key, key + ".away")
            try:
                with closing(env.connect(cl)) as conn:
                    e, _ = expect_code(conn.cursor(), "DC001", src, contains=[src, kid])
                assert not os.path.exists(key), "a key file was created while decrypting"
            finally:
                os.rename(key + ".away", key)
            with closing(env.connect(cl)) as conn:
                assert request(conn.cursor(), src)["status"] == 200
        finally:
            if os.path.exists(saved):
                shutil.copyfile(saved, key)
                os.unlink(saved)
        log = cl.log_text()
        bad = [l for l in log.splitlines() if master.hex() in l or sec in l]
        assert not bad, bad
    finally:
        cl.cleanup()
