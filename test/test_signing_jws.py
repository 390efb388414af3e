"""The second signature format (README "Signing", JWS): a data
source with signature_format 'jws' sends envelopes whose `signature` is a
compact JWS (RS256, kid = RFC 7638 thumbprint) over the exact body without
`signature`, verified here with Python's `cryptography`; answers the mock
signs the same way (X-Mock-Sign: jws) are accepted, tampered ones or a bad
signature give DC008; an Ed25519 key cannot sign or verify this format (DC001)."""
import base64, hashlib, json, os
from contextlib import closing

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from psycopg2.extras import Json

from support.env import expect_error
from support.util import code

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing")
QUERY = Json({"type": "UIN", "value": "847951632"})
SEARCH = "/registry/sync/search"


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def b64u_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def thumbprint(public_pem):
    """RFC 7638, independently of the extension."""
    n = serialization.load_pem_public_key(public_pem.encode()).public_numbers()
    uint = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
    jwk = json.dumps({"e": b64u(uint(n.e)), "kty": "RSA", "n": b64u(uint(n.n))},
                     sort_keys=True, separators=(",", ":"))
    return b64u(hashlib.sha256(jwk.encode()).digest())


def py_verify_jws(public_pem, jws):
    """(header, payload bytes) when the JWS verifies with RS256, else None."""
    h, p, s = jws.split(".")
    header = json.loads(b64u_decode(h))
    if header.get("alg") != "RS256":
        return None
    key = serialization.load_pem_public_key(public_pem.encode())
    try:
        key.verify(b64u_decode(s), (h + "." + p).encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        return None
    return header, b64u_decode(p)


def _rsa_key(cur):
    cur.execute("SELECT dci_generate_signing_key(NULL, 'rsa-sha256')")
    kid = cur.fetchone()[0]
    cur.execute("SELECT key_id, public_key FROM dci_signing_key WHERE id = %s", (kid,))
    return (kid,) + cur.fetchone()


def test_jws_envelopes_verify_in_python(env):
    with closing(env.connect()) as conn:
        conn.autocommit = True
        cur = conn.cursor()
        kid, key_id, pub = _rsa_key(cur)
        src = code("jwsout")
        env.add_source(src, conn=conn, sender_id="openspp.example", registry_type="ns:org:RegistryType:Civil",
                       signing_key_id=kid, signature_format="jws")
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s) ? 'data'", (src, QUERY))
        assert cur.fetchone()[0] is True
        # what went over the wire
        body = env.mock.stats()["last_request"][SEARCH]["body"]
        envelope = json.loads(body)
        jws = envelope["signature"]
        assert jws.count(".") == 2, jws
        verified = py_verify_jws(pub, jws)
        assert verified is not None, "the JWS does not verify with Python's cryptography"
        header, payload = verified
        assert header == {"alg": "RS256", "kid": thumbprint(pub)}, header
        assert key_id == thumbprint(pub)          # generated with key_id NULL: the thumbprint
        # the payload is the exact body without "signature"
        i = body.rindex(',"signature":')
        assert payload == (body[:i] + "}").encode("utf-8"), (payload[:200], body[:200])
        assert json.loads(payload) == {"header": envelope["header"], "message": envelope["message"]}
        # and dci_verify_jws agrees; the DCI verifier does not take it
        cur.execute("SELECT dci_verify_jws(%s, %s), dci_verify(%s, %s)", (body, pub, body, pub))
        assert cur.fetchone() == (True, False)
        # tampering with the header or message breaks it
        for path in (("header", "action"), ("message", "transaction_id")):
            bad = json.loads(body)
            bad[path[0]][path[1]] += "x"
            cur.execute("SELECT dci_verify_jws(%s, %s)", (json.dumps(bad), pub))
            assert cur.fetchone()[0] is False, path
        # a JWS made by Python verifies in the extension
        priv = serialization.load_pem_private_key(fixture("rsa_private.pem").encode(), None)
        hm = json.dumps({"header": envelope["header"], "message": envelope["message"]})
        si = b64u(json.dumps({"alg": "RS256", "kid": "registry"}).encode()) + "." + b64u(hm.encode())
        py_jws = si + "." + b64u(priv.sign(si.encode(), padding.PKCS1v15(), hashes.SHA256()))
        signed = dict(envelope, signature=py_jws)
        cur.execute("SELECT dci_verify_jws(%s, %s), dci_verify_jws(%s, %s)",
                    (Json(signed), fixture("rsa_public.pem"), Json(signed), pub))
        assert cur.fetchone() == (True, False)
        # back to the DCI field
        cur.execute("UPDATE dci_data_source SET signature_format = 'dci' WHERE code = %s", (src,))
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s) ? 'data'", (src, QUERY))
        sig = json.loads(env.mock.stats()["last_request"][SEARCH]["body"])["signature"]
        assert sig.startswith('namespace="dci"') and "|rsa-sha256" in sig, sig


def test_ed25519_key_cannot_sign_jws(env):
    with closing(env.connect()) as conn:
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT dci_generate_signing_key(NULL, 'ed25519')")
        kid = cur.fetchone()[0]
        src = code("jwsed")
        env.add_source(src, conn=conn, sender_id="openspp.example", signing_key_id=kid,
                       signature_format="jws")
        expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", (src, QUERY),
                     contains="rsa-sha256")
        assert env.mock.stats()["requests"].get(SEARCH, 0) == 0, "sent although it cannot be signed"
        # the column takes only the two formats, and says which column is wrong
        e = expect_error(cur, "23514", "UPDATE dci_data_source SET signature_format = 'JWS' WHERE code = %s", (src,))
        assert "signature_format" in str(e), e


def _answer_source(env, src, mode, public_key=None):
    env.add_source(src, sender_id="openspp.test", registry_type="ns:org:RegistryType:Civil",
                   registry_public_key=public_key or fixture("rsa_public.pem"), signature_format="jws",
                   extra_headers=Json({"X-Mock-Sign": mode}) if mode else Json({}))


def test_jws_signed_answer_accepted(env):
    src = code("jwsans")
    _answer_source(env, src, "jws")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s)", (src, QUERY))
        item = cur.fetchone()[0]
        assert item["data"]["reg_records"], item
        cur.execute("SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)", (src, QUERY))
        assert cur.fetchone()[0] >= 1


def test_jws_bad_answers_refused(env):
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for mode, contains in (("jws-tamper", "header and message"), ("jws-badsig", "does not match"),
                               (None, "not signed"), ("ed25519", "cannot be parsed")):
            src = code("jwsbad")
            _answer_source(env, src, mode)
            e = expect_error(cur, "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", (src, QUERY),
                             contains=src)
            assert contains in str(e), (mode, str(e))
        # another RSA key
        src = code("jwsother")
        _, _, other_pub = _rsa_key(cur)
        conn.commit()
        _answer_source(env, src, "jws", public_key=other_pub)
        expect_error(cur, "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", (src, QUERY))
        # an Ed25519 registry key cannot verify RS256: a configuration error
        src = code("jwsedpub")
        _answer_source(env, src, "jws", public_key=fixture("ed25519_public.pem"))
        expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", (src, QUERY),
                     contains="registry_public_key")
        # the DCI format does not take a JWS answer
        src = code("jwsasdci")
        _answer_source(env, src, "jws")
        cur.execute("UPDATE dci_data_source SET signature_format = 'dci' WHERE code = %s", (src,))
        conn.commit()
        expect_error(cur, "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", (src, QUERY))
