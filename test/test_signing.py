"""Signing (README, "Signing"): signatures made by the extension
verify with an independent implementation (Python's json + `cryptography`),
and that implementation's signatures verify in the extension; tampering with
any header or message field, the timestamps or the key fails; envelopes of
the DCI layer are signed with the source's key (DC001 when it is revoked);
answers must be signed when registry_public_key is set (DC008); the private
key never appears in plain text in the table, pg_dump or the server log."""
import base64, copy, hashlib, json, os, re, subprocess, time
from contextlib import closing

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from psycopg2.extras import Json

from support.env import expect_error
from support.util import code

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing")

ENVELOPE = {
    "header": {"version": "1.0.0", "message_id": "3f1c2b1e-0000-4000-8000-000000000001",
               "message_ts": "2026-11-28T07:00:00.000Z", "action": "search",
               "sender_id": "openspp.example", "sender_uri": "https://openspp.example/cb",
               "receiver_id": "crvs.example", "total_count": 1, "is_msg_encrypted": False,
               "meta": {"note": "Jos\u00e9 \U0001F600 \"q\" /p"}},
    "message": {"transaction_id": "T-1", "search_request": [{
        "reference_id": "R-1", "timestamp": "2026-11-28T07:00:00.000Z",
        "search_criteria": {"reg_type": "ns:org:RegistryType:Civil", "query_type": "idtype-value",
                            "query": {"type": "UIN", "value": "847951632"},
                            "pagination": {"page_size": 10, "page_number": 1}},
        "locale": "eng", "score": 27.5, "tiny": 1e-07, "big": 12345678901234567890}]},
}


# ---- the independent implementation (README "Signing", steps 1-5) ----
def canonical(header, message):
    return json.dumps({"header": header, "message": message}, sort_keys=True, separators=(",", ":"))


def signing_string(created, expires, digest):
    return "(created): %d\n(expires): %d\ndigest: %s" % (created, expires, digest)


def py_sign(private_key, algorithm, sender_id, key_id, envelope, created=None):
    created = int(time.time()) if created is None else created
    expires = created + 300
    digest = base64.b64encode(hashlib.sha256(
        canonical(envelope["header"], envelope["message"]).encode()).digest()).decode()
    data = signing_string(created, expires, digest).encode()
    if algorithm == "ed25519":
        sig = private_key.sign(data)
    else:
        sig = private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return ('namespace="dci", kidId="%s|%s|%s", algorithm="%s", created="%d", expires="%d", '
            'headers="(created) (expires) digest", signature="%s"'
            % (sender_id, key_id, algorithm, algorithm, created, expires, base64.b64encode(sig).decode()))


def py_verify(public_pem, field, envelope, now=None):
    now = int(time.time()) if now is None else now
    p = dict(re.findall(r'(\w+)="([^"]*)"', field))
    key = serialization.load_pem_public_key(public_pem.encode())
    algorithm = "ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "rsa-sha256"
    if p.get("algorithm") != algorithm:
        return False
    created, expires = int(p["created"]), int(p["expires"])
    if not (now <= expires and created <= now + 60):
        return False
    digest = base64.b64encode(hashlib.sha256(
        canonical(envelope["header"], envelope["message"]).encode()).digest()).decode()
    data = signing_string(created, expires, digest).encode()
    sig = base64.b64decode(p["signature"])
    try:
        if algorithm == "ed25519":
            key.verify(sig, data)
        else:
            key.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
        return True
    except InvalidSignature:
        return False


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def leaves(obj, path=()):
    """Every (path, value) of scalars in obj."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, path + (i,))
    else:
        yield path, obj


def tampered(envelope, path):
    e = copy.deepcopy(envelope)
    d = e
    for k in path[:-1]:
        d = d[k]
    v = d[path[-1]]
    if isinstance(v, bool):
        d[path[-1]] = not v
    elif isinstance(v, (int, float)):
        d[path[-1]] = v + 1
    else:
        d[path[-1]] = (v or "") + "x"
    return e


def new_key(cur, algorithm):
    cur.execute("SELECT dci_generate_signing_key(NULL, %s)", (algorithm,))
    kid = cur.fetchone()[0]
    cur.execute("SELECT key_id, public_key FROM dci_signing_key WHERE id = %s", (kid,))
    key_id, pub = cur.fetchone()
    return kid, key_id, pub


def test_extension_signatures_verify_in_python(env):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for algorithm in ("ed25519", "rsa-sha256"):
            _, key_id, pub = new_key(cur, algorithm)
            cur.execute("SELECT dci_sign(%s, %s)", (Json(ENVELOPE), key_id))
            field = cur.fetchone()[0]
            assert 'kidId="openspp.example|%s|%s"' % (key_id, algorithm) in field, field
            assert py_verify(pub, field, ENVELOPE), (algorithm, field)
            # the canonical form is over what jsonb prints: the same object for Python
            cur.execute("SELECT %s::jsonb::text", (Json(ENVELOPE),))
            assert py_verify(pub, field, json.loads(cur.fetchone()[0]))
            # tampering with any header or message field breaks it
            for path, _ in leaves({"header": ENVELOPE["header"], "message": ENVELOPE["message"]}):
                assert not py_verify(pub, field, tampered(ENVELOPE, path)), path
            # ... and with the timestamps
            for name in ("created", "expires"):
                bad = re.sub(name + r'="(\d+)"', lambda m: '%s="%d"' % (name, int(m.group(1)) - 1), field)
                assert not py_verify(pub, bad, ENVELOPE), name
            # the kid in the JWKS is the thumbprint, which is the generated key_id
            cur.execute("SELECT count(*) FROM jsonb_array_elements(dci_jwks()->'keys') j WHERE j->>'kid' = %s",
                        (key_id,))
            assert cur.fetchone()[0] == 1


def test_python_signatures_verify_in_extension(env):
    ed_priv = serialization.load_pem_private_key(fixture("ed25519_private.pem").encode(), None)
    rsa_priv = serialization.load_pem_private_key(fixture("rsa_private.pem").encode(), None)
    other = ed25519.Ed25519PrivateKey.generate()
    other_pub = other.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with closing(env.connect()) as conn:
        cur = conn.cursor()

        def verify(envelope, pub):
            cur.execute("SELECT dci_verify(%s, %s)", (Json(envelope), pub))
            return cur.fetchone()[0]

        for algorithm, priv, pub_name in (("ed25519", ed_priv, "ed25519_public.pem"),
                                          ("rsa-sha256", rsa_priv, "rsa_public.pem")):
            pub = fixture(pub_name)
            field = py_sign(priv, algorithm, "crvs.example", "registry-1", ENVELOPE)
            signed = dict(ENVELOPE, signature=field)
            assert verify(signed, pub), algorithm
            for path, _ in leaves({"header": ENVELOPE["header"], "message": ENVELOPE["message"]}):
                assert not verify(dict(tampered(ENVELOPE, path), signature=field), pub), path
            for name in ("created", "expires"):
                bad = re.sub(name + r'="(\d+)"', lambda m: '%s="%d"' % (name, int(m.group(1)) + 1), field)
                assert not verify(dict(ENVELOPE, signature=bad), pub), name
            # another key, the other algorithm's key
            assert not verify(signed, other_pub)
            assert not verify(signed, fixture("rsa_public.pem" if algorithm == "ed25519" else "ed25519_public.pem"))
            # expired, and too far in the future; 60 s of clock skew is allowed
            now = int(time.time())
            old = py_sign(priv, algorithm, "crvs.example", "registry-1", ENVELOPE, created=now - 400)
            assert not verify(dict(ENVELOPE, signature=old), pub)
            ahead = py_sign(priv, algorithm, "crvs.example", "registry-1", ENVELOPE, created=now + 50)
            assert verify(dict(ENVELOPE, signature=ahead), pub)
            future = py_sign(priv, algorithm, "crvs.example", "registry-1", ENVELOPE, created=now + 120)
            assert not verify(dict(ENVELOPE, signature=future), pub)


def test_every_fixture_vector_envelope_canonicalises_alike(env):
    """The vectors' envelopes, signed now by the extension with the fixture
    key, verify in Python: the same canonical text on both sides."""
    vectors = json.loads(fixture("vectors.json"))
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'vector-ed'")
        cur.execute("INSERT INTO dci_signing_key (key_id, algorithm, public_key, private_key, state) "
                    "VALUES ('vector-ed', 'ed25519', %s, %s, 'active')",
                    (fixture("ed25519_public.pem"), fixture("ed25519_private.pem")))
        for v in vectors:
            cur.execute("SELECT dci_sign(%s, 'vector-ed')", (Json(v["envelope"]),))
            field = cur.fetchone()[0]
            assert py_verify(fixture("ed25519_public.pem"), field, v["envelope"]), v["name"]
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'vector-ed'")


def test_dci_layer_signs_with_source_key(env):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        kid, key_id, pub = new_key(cur, "ed25519")
        src = code("signed")
        env.add_source(src, conn=conn, auth_type="none", auth_url=None, client_id=None, client_secret=None,
                       sender_id="openspp.example", signing_key_id=kid)
        cur.execute("SELECT dci_envelope(%s, 'search', %s)::text", (src, Json({"transaction_id": "T-9"})))
        envelope = json.loads(cur.fetchone()[0])
        assert py_verify(pub, envelope["signature"], envelope), envelope["signature"]
        assert ('kidId="openspp.example|%s|ed25519"' % key_id) in envelope["signature"]
        cur.execute("SELECT dci_verify(%s, %s)", (Json(envelope), pub))
        assert cur.fetchone()[0] is True
        # a draft or revoked key refuses to send rather than send unsigned
        cur.execute("UPDATE dci_signing_key SET state = 'revoked' WHERE id = %s", (kid,))
        expect_error(cur, "DC001", "SELECT dci_envelope(%s, 'search', '{}')", (src,), contains="revoked")
        cur.execute("UPDATE dci_signing_key SET state = 'draft' WHERE id = %s", (kid,))
        expect_error(cur, "DC001", "SELECT dci_envelope(%s, 'search', '{}')", (src,), contains="not active")
        # without a key: unsigned
        cur.execute("UPDATE dci_data_source SET signing_key_id = NULL WHERE code = %s", (src,))
        cur.execute("SELECT dci_envelope(%s, 'search', '{}') ->> 'signature'", (src,))
        assert cur.fetchone()[0] == ""


def test_unsigned_answer_is_refused_when_registry_key_set(env):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        src = code("verifyresp")
        env.add_source(src, conn=conn, sender_id="openspp.example",
                       registry_public_key=fixture("ed25519_public.pem"))
        # the mock registry answers with "signature": ""
        e = expect_error(cur, "DC008", "SELECT dci_search(%s, 'idtype-value', %s)",
                         (src, Json({"type": "UIN", "value": "1"})), contains="not signed")
        assert "BEGIN" not in str(e)
        cur.execute("UPDATE dci_data_source SET registry_public_key = NULL WHERE code = %s", (src,))
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s) IS NOT NULL", (src, Json({"type": "UIN", "value": "1"})))
        assert cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET registry_public_key = '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----' "
                    "WHERE code = %s", (src,))
        expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)",
                     (src, Json({"type": "UIN", "value": "1"})), contains="registry_public_key")


def test_private_key_never_in_plaintext(env):
    priv = fixture("rsa_private.pem")
    body = [l for l in priv.splitlines() if l and not l.startswith("-----")]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'plain-check'")
        cur.execute("INSERT INTO dci_signing_key (key_id, algorithm, private_key, state) "
                    "VALUES ('plain-check', 'rsa-sha256', %s, 'active') RETURNING id", (priv,))
        cur.execute("SELECT private_key, private_key_encrypted::text, t::text FROM dci_signing_key t "
                    "WHERE key_id = 'plain-check'")
        plain, cipher, row = cur.fetchone()
        assert plain is None
        for line in body:
            assert line not in row
            assert line.encode().hex() not in cipher
        # it signs, so it is there
        cur.execute("SELECT dci_sign(%s, 'plain-check')", (Json(ENVELOPE),))
        assert py_verify(fixture("rsa_public.pem"), cur.fetchone()[0], ENVELOPE)
        cmd = [os.path.join(env.cluster.bindir, "pg_dump"), "-h", env.cluster.host, "-p", str(env.cluster.port),
               "-U", "postgres", "-d", "postgres"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd="/")
        assert r.returncode == 0, r.stderr
        assert "plain-check" in r.stdout, "pg_dump lacks the signing key row"
        for line in body:
            assert line not in r.stdout, "private key in pg_dump output"
        # a generated key is inserted with the PEM as a parameter: never logged
        cur.execute("SELECT dci_generate_signing_key(NULL, 'ed25519')")
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'plain-check'")
    log = env.cluster.log_text()
    assert "PRIVATE KEY" not in log, "a private key in the server log"
    for line in body:
        assert line not in log
