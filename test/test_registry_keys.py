#!/usr/bin/python3
"""Registry keys from a JWKS URL (issue 13) and signing-key kid interop (issue 14), README
"Signing": answers verified with the key their signature names, from the registry's JWK Set
fetched through the HTTP path of every call (allowed_hosts, TLS), cached with a TTL,
fetched again for an unknown kid at most once per interval; bad key sets refused with their
SQLSTATE and no key material in any message; keys published by dci_jwks() with OpenSPP's
kid (sender_id|key_id|alg) found the way OpenSPP's sender registry finds them.

The mock serves the key set at /jwks.json (test/support/mock_jwks.py), counts its fetches,
and signs answers with the key a test names (X-Mock-Sign: jwks | jwks-jws)."""
import base64
import contextlib
import hashlib
import json
import time

import psycopg2
from psycopg2.extras import Json
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from support.env import expect_error

QUERY = Json({"type": "UIN", "value": "847951632"})



def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _ed():
    return _pem(ed25519.Ed25519PrivateKey.generate())


def _rsa(bits=2048):
    return _pem(rsa.generate_private_key(public_exponent=65537, key_size=bits))


def _b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _thumbprint(private_pem):
    """RFC 7638, computed here independently of the extension."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64u(raw)}
    else:
        n = key.public_key().public_numbers()
        u = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
        members = {"e": _b64u(u(n.e)), "kty": "RSA", "n": _b64u(u(n.n))}
    return _b64u(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())


def _jwks(mock, **conf):
    mock._ctl("/jwks", conf)


def _fetches(mock):
    return mock.stats()["jwks"]["fetches"]


def _source(env, code, url=None, fmt="dci", mode=None, **cols):
    mode = mode or ("jwks-jws" if fmt == "jws" else "jwks")
    cols.setdefault("registry_type", "ns:org:RegistryType:Civil")
    env.add_source(code, signature_format=fmt, registry_jwks_url=url or env.mock.http_url + "/jwks.json",
                   extra_headers=Json({"X-Mock-Sign": mode}), **cols)


@contextlib.contextmanager
def _conn(env, interval=0, ttl=None):
    """A new session (its own key cache), autocommit: SETs survive the errors a test provokes."""
    conn = env.connect()
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute("SET dci_client.jwks_refetch_interval_s = %s", (interval,))
        if ttl is not None:
            cur.execute("SET dci_client.jwks_cache_ttl_s = %s", (ttl,))
        yield conn
    finally:
        conn.close()


def _search(cur, code):
    cur.execute("SELECT dci_search(%s, 'idtype-value', %s)", (code, QUERY))
    return cur.fetchone()[0]


def _ok(cur, code):
    item = _search(cur, code)
    assert item["data"]["reg_records"], item


# ---------------------------------------------------------------- verification via JWKS
def test_ed25519_dci_field_thumbprint_kid(env, mock):
    key = _ed()
    tp = _thumbprint(key)
    # the JWKS names the key by its thumbprint; the signature's kidId carries it as key_id
    _jwks(mock, keys=[{"kid": tp, "private_pem": key}], sign_pem=key, sign_kid="reg|%s|ed25519" % tp)
    _source(env, "jwks_ed_tp")
    with _conn(env, interval=3600) as conn:
        cur = conn.cursor()
        _ok(cur, "jwks_ed_tp")
        _ok(cur, "jwks_ed_tp")
        assert _fetches(mock) == 1, "the key set is cached"


def test_ed25519_openspp_kid(env, mock):
    key, other = _ed(), _ed()
    # OpenSPP's registries: kid = kidId = sender_id|key_id|ed25519; another key of another kid first
    _jwks(mock, keys=[{"kid": "reg|old|ed25519", "private_pem": other},
                      {"kid": "reg|k1|ed25519", "private_pem": key}],
          sign_pem=key, sign_kid="reg|k1|ed25519")
    _source(env, "jwks_ed_spp")
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_ed_spp")


def test_kid_by_key_id_part_and_without_kid_in_jwks(env, mock):
    key = _ed()
    # a JWK whose kid is only the key_id part of the kidId
    _jwks(mock, keys=[{"kid": "k7", "private_pem": key}], sign_pem=key, sign_kid="reg|k7|ed25519")
    _source(env, "jwks_keyid")
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_keyid")
    # a JWK without kid, found by its thumbprint in the kidId
    _jwks(mock, keys=[{"kid": None, "private_pem": key}], sign_kid="reg|%s|ed25519" % _thumbprint(key))
    _source(env, "jwks_nokid")
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_nokid")


def test_rsa_dci_field_both_spellings(env, mock):
    key = _rsa()
    # OpenSPP spells RSA "rs256" in the kid and in the signature's algorithm
    _jwks(mock, keys=[{"kid": "reg|k2|rs256", "private_pem": key}], sign_pem=key,
          sign_kid="reg|k2|rs256", sign_alg="rs256")
    _source(env, "jwks_rsa_spp")
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_rsa_spp")
    # the README's spelling in the signature finds the same JWK
    _jwks(mock, sign_kid="reg|k2|rsa-sha256", sign_alg="rsa-sha256")
    _source(env, "jwks_rsa_readme")
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_rsa_readme")


def test_rsa_jws_kid(env, mock):
    key, other = _rsa(), _rsa()
    tp = _thumbprint(key)
    _jwks(mock, keys=[{"kid": "x", "private_pem": other}, {"kid": tp, "private_pem": key}],
          sign_pem=key, sign_kid=tp)
    _source(env, "jwks_jws", fmt="jws")
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_jws")
    # signed with the other key under this kid: refused
    _jwks(mock, sign_pem=other)
    _source(env, "jwks_jws_wrong", fmt="jws")
    with _conn(env) as conn:
        expect_error(conn.cursor(), "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_jws_wrong", QUERY))


def test_signed_with_another_key_refused(env, mock):
    key, impostor = _ed(), _ed()
    _jwks(mock, keys=[{"kid": "reg|k1|ed25519", "private_pem": key}], sign_pem=impostor, sign_kid="reg|k1|ed25519")
    _source(env, "jwks_impostor")
    with _conn(env) as conn:
        e = expect_error(conn.cursor(), "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_impostor", QUERY))
        assert "does not verify" in str(e), e


def test_unsigned_answer_refused(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}])       # no sign_pem: the mock does not sign
    _source(env, "jwks_unsigned")
    with _conn(env) as conn:
        e = expect_error(conn.cursor(), "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_unsigned", QUERY))
        assert "not signed" in str(e), e


# ---------------------------------------------------------------- unknown kid, rotation, rate, TTL
def test_unknown_kid_one_refetch_then_dc008(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519")
    _source(env, "jwks_unknown")
    with _conn(env, interval=0) as conn:
        cur = conn.cursor()
        _ok(cur, "jwks_unknown")
        assert _fetches(mock) == 1
        _jwks(mock, sign_kid="reg|k9|ed25519")
        e = expect_error(cur, "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_unknown", QUERY))
        assert "k9" in str(e) and "fetched just now" in str(e), e
        assert _fetches(mock) == 2, "one refetch for the unknown kid"


def test_rotation_picked_up_without_restart(env, mock):
    old, new = _ed(), _rsa()
    _jwks(mock, keys=[{"kid": "reg|k1|ed25519", "private_pem": old}], sign_pem=old, sign_kid="reg|k1|ed25519",
          cache_control="max-age=3600")
    _source(env, "jwks_rotate")
    with _conn(env, interval=0) as conn:
        cur = conn.cursor()
        _ok(cur, "jwks_rotate")
        # the registry rotates: a new key and kid (of another type), the old one gone
        _jwks(mock, keys=[{"kid": "reg|k2|rs256", "private_pem": new}], sign_pem=new,
              sign_kid="reg|k2|rs256", sign_alg="rs256")
        _ok(cur, "jwks_rotate")                     # same session: no restart, no reconnect
        assert _fetches(mock) == 2
        _ok(cur, "jwks_rotate")
        assert _fetches(mock) == 2, "the new set is cached"


def test_refetch_rate_limited(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519")
    _source(env, "jwks_flood")
    with _conn(env, interval=3600) as conn:
        cur = conn.cursor()
        _ok(cur, "jwks_flood")
        # a hostile sender names kid after kid: no fetch until the interval has passed
        for i in range(5):
            _jwks(mock, sign_kid="reg|bogus%d|ed25519" % i)
            e = expect_error(cur, "DC008", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_flood", QUERY))
            assert "jwks_refetch_interval_s" in str(e), e
        assert _fetches(mock) == 1
        # the known kid still verifies from the cache
        _jwks(mock, sign_kid="reg|k1|ed25519")
        _ok(cur, "jwks_flood")
        assert _fetches(mock) == 1


def test_ttl_cache_control_and_setting(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          cache_control="max-age=3600")
    _source(env, "jwks_ttl")
    with _conn(env, interval=0, ttl=0) as conn:
        cur = conn.cursor()
        for _ in range(3):
            _ok(cur, "jwks_ttl")
        assert _fetches(mock) == 1, "max-age=3600 keeps the set, whatever jwks_cache_ttl_s says"
    mock.reset()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          cache_control="no-cache")
    _source(env, "jwks_ttl")                         # a new row: the cache starts afresh
    with _conn(env, interval=0, ttl=3600) as conn:
        cur = conn.cursor()
        for _ in range(3):
            _ok(cur, "jwks_ttl")
        assert _fetches(mock) == 3, "no-cache: fetched again each time (the interval allows it)"
    mock.reset()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519")
    _source(env, "jwks_ttl")
    with _conn(env, interval=0, ttl=3600) as conn:
        cur = conn.cursor()
        for _ in range(3):
            _ok(cur, "jwks_ttl")
        assert _fetches(mock) == 1, "no Cache-Control: jwks_cache_ttl_s"
    with _conn(env, interval=0, ttl=0) as conn:
        cur = conn.cursor()
        for _ in range(2):
            _ok(cur, "jwks_ttl")
        assert _fetches(mock) == 3, "jwks_cache_ttl_s = 0 with no Cache-Control: fetched each time"


def test_stale_set_used_while_fetch_fails(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          cache_control="max-age=0")
    _source(env, "jwks_stale")
    with _conn(env, interval=0) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        _ok(cur, "jwks_stale")
        _jwks(mock, status=503)
        _ok(cur, "jwks_stale")                       # expired, the refetch failed: the stale set serves
        assert _fetches(mock) == 2
        cur.execute("SET dci_client.jwks_max_stale_s = 0")
        e = expect_error(cur, "DC009", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_stale", QUERY))
        assert "503" in str(e), e


# ---------------------------------------------------------------- the HTTP path: allowed_hosts, TLS
def test_disallowed_jwks_host_refused_nothing_fetched(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519")
    port = mock.http_url.rsplit(":", 1)[1]
    _source(env, "jwks_ssrf", url="http://localhost:%s/jwks.json" % port)
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1'")
        e = expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_ssrf", QUERY))
        assert "allowed_hosts" in str(e) and "registry_jwks_url" in str(e), e
        assert _fetches(mock) == 0
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1, localhost'")
        _ok(cur, "jwks_ssrf")
        assert _fetches(mock) == 1


def test_redirect_not_followed(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          status=302, redirect="http://169.254.169.254/latest/meta-data/")
    _source(env, "jwks_redirect")
    with _conn(env) as conn:
        e = expect_error(conn.cursor(), "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_redirect", QUERY))
        assert "HTTP 302" in str(e), e
        assert _fetches(mock) == 1


def test_tls_with_the_test_ca(env, mock):
    key = _rsa()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|rsa-sha256")
    # the source's TLS settings apply to the key set: its CA, verify_ssl
    _source(env, "jwks_tls", url=mock.https_url + "/jwks.json", ca_cert=env.ca_pem())
    with _conn(env) as conn:
        _ok(conn.cursor(), "jwks_tls")
    assert _fetches(mock) == 1
    _source(env, "jwks_tls_noca", url=mock.https_url + "/jwks.json")
    with _conn(env) as conn:
        expect_error(conn.cursor(), "DC003", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_tls_noca", QUERY))
    assert _fetches(mock) == 1, "an untrusted server is not asked"


def test_slow_jwks_times_out(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519", delay=5)
    _source(env, "jwks_slow", timeout_ms=1500)
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        expect_error(cur, "DC004", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_slow", QUERY))


# ---------------------------------------------------------------- bad key sets
def _bad(env, mock, code, raw, sqlstate, contains, secrets=()):
    _jwks(mock, raw=raw, sign_pem=_ed(), sign_kid="reg|k1|ed25519")
    _source(env, code)
    with _conn(env) as conn:
        e = expect_error(conn.cursor(), sqlstate, "SELECT dci_search(%s, 'idtype-value', %s)", (code, QUERY))
    text = "%s %s %s" % (e.pgerror, e.diag.message_detail, e.diag.message_hint)
    assert contains in text, text
    for s in secrets:
        assert s not in text, text
    return text


def test_bad_key_sets(env, mock):
    ed = serialization.load_pem_private_key(_ed().encode(), password=None)
    d = _b64u(ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                               serialization.NoEncryption()))
    x = _b64u(ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    okp = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"}
    # private key material: refused whole, the value never quoted
    _bad(env, mock, "jwks_bad_d", json.dumps({"keys": [dict(okp, d=d)]}), "DC006", "private key material",
         secrets=(d, x))
    _bad(env, mock, "jwks_bad_oct", json.dumps({"keys": [{"kty": "oct", "k": d}]}), "DC006", '"k"', secrets=(d,))
    _bad(env, mock, "jwks_bad_json", "{not json", "DC006", "not JSON")
    _bad(env, mock, "jwks_bad_keys", json.dumps({"keys": {"a": 1}}), "DC006", '"keys" array')
    _bad(env, mock, "jwks_bad_kid", json.dumps({"keys": [dict(okp, kid=5)]}), "DC006", '"kid"')
    _bad(env, mock, "jwks_bad_x", json.dumps({"keys": [dict(okp, x=123)]}), "DC006", '"x"')
    _bad(env, mock, "jwks_bad_kty", json.dumps({"keys": [{"x": x}]}), "DC006", '"kty"')
    _bad(env, mock, "jwks_bad_b64", json.dumps({"keys": [dict(okp, x="+" + x[1:])]}), "DC006", "base64url")
    _bad(env, mock, "jwks_short_x", json.dumps({"keys": [dict(okp, x=x[:-3])]}), "DC006", "32")
    _bad(env, mock, "jwks_dup_kid", json.dumps({"keys": [okp, dict(okp)]}), "DC006", "same kid")
    _bad(env, mock, "jwks_many", json.dumps({"keys": [dict(okp, kid="k%d" % i) for i in range(65)]}),
         "DC006", "more than 64")
    _bad(env, mock, "jwks_huge", json.dumps({"keys": [], "pad": "x" * 300000}), "DC005", "more than")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()
    u = lambda i: i.to_bytes((i.bit_length() + 7) // 8, "big")
    _bad(env, mock, "jwks_rsa1024", json.dumps({"keys": [{"kty": "RSA", "n": _b64u(u(small.n)), "e": "AQAB"}]}),
         "DC006", "1024 bits")
    _bad(env, mock, "jwks_rsa_e", json.dumps({"keys": [{"kty": "RSA", "n": _b64u(u(small.n) * 2), "e": "AAE"}]}),
         "DC006", "leading zero")
    # keys of other kinds are skipped, not refused: the kid is then unknown
    _bad(env, mock, "jwks_only_ec", json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": x, "kid": "k1"},
                                                         dict(okp, use="enc")]}),
         "DC008", "has no ed25519 key")


def test_jwks_http_errors(env, mock):
    _jwks(mock, keys=[], status=404, sign_pem=_ed(), sign_kid="reg|k1|ed25519")
    _source(env, "jwks_404")
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_404", QUERY), contains="HTTP 404")
        _jwks(mock, status=500)
        _source(env, "jwks_500")
        expect_error(cur, "DC009", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_500", QUERY), contains="HTTP 500")


# ---------------------------------------------------------------- the column
def test_column_rules(env, mock):
    with _conn(env) as conn:
        cur = conn.cursor()
        for bad in ("ftp://example.org/jwks", "/jwks.json", "http://"):
            expect_error(cur, "23514", "INSERT INTO dci_data_source (code, name, auth_type, base_url, registry_jwks_url) "
                         "VALUES ('jwks_col', 'X', 'none', 'http://127.0.0.1:1', %s)", (bad,), contains="registry_jwks_url")
        with open(__file__.rsplit("/", 1)[0] + "/fixtures/signing/ed25519_public.pem") as f:
            pk = f.read()
        expect_error(cur, "23514", "INSERT INTO dci_data_source (code, name, auth_type, base_url, registry_jwks_url, "
                     "registry_public_key) VALUES ('jwks_col', 'X', 'none', 'http://127.0.0.1:1', "
                     "'https://registry.example/jwks.json', %s)", (pk,), contains="not both")
        expect_error(cur, "23514", "INSERT INTO dci_signing_key (key_id, algorithm, kid_format) "
                     "VALUES ('kf', 'ed25519', 'jwk')", contains="kid_format")
        expect_error(cur, "23514", "INSERT INTO dci_signing_key (key_id, algorithm, kid_format) "
                     "VALUES ('a|b', 'ed25519', 'openspp')", contains="|")


# ---------------------------------------------------------------- kid interop with OpenSPP (issue 14)
def _openspp_fetch_public_key(jwks, sender_id):
    """What OpenSPP's sender registry does with a fetched JWKS (re-implemented from reading
    spp_dci_server/models/sender_registry.py): the first key whose kid starts with
    "<sender_id>|", its algorithm the kid's third part, the JWK turned into a public key."""
    for jwk in jwks["keys"]:
        if jwk.get("kid", "").startswith(sender_id + "|"):
            break
    else:
        return None, None
    parts = jwk["kid"].split("|")
    algorithm = parts[2] if len(parts) >= 3 else None
    pad = lambda s: s + "=" * (-len(s) % 4)
    if jwk["kty"] == "OKP" and jwk.get("crv") == "Ed25519":
        pub = ed25519.Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(pad(jwk["x"])))
    elif jwk["kty"] == "RSA":
        n = int.from_bytes(base64.urlsafe_b64decode(pad(jwk["n"])), "big")
        e = int.from_bytes(base64.urlsafe_b64decode(pad(jwk["e"])), "big")
        pub = rsa.RSAPublicNumbers(e, n).public_key()
    else:
        return None, None
    return pub, algorithm


def _openspp_verify(pub, algorithm, signature, header, message):
    """OpenSPP's DCIVerifier (spp_dci/services/signing.py), re-implemented: the field's
    algorithm must equal the registry's, the digest over the sorted compact JSON."""
    fields = dict((k, v) for k, v in (p.strip().split("=", 1) for p in signature.split(", ")))
    fields = {k: v.strip('"') for k, v in fields.items()}
    if fields["algorithm"] != algorithm or int(time.time()) > int(fields["expires"]):
        return False
    digest = base64.b64encode(hashlib.sha256(json.dumps({"header": header, "message": message}, sort_keys=True,
                                                        separators=(",", ":")).encode()).digest()).decode()
    ss = "(created): %s\n(expires): %s\ndigest: %s" % (fields["created"], fields["expires"], digest)
    sig = base64.b64decode(fields["signature"])
    try:
        if isinstance(pub, ed25519.Ed25519PublicKey):
            pub.verify(sig, ss.encode())
        else:
            pub.verify(sig, ss.encode(), padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def test_dci_jwks_found_by_openspp_lookup(env, mock):
    envelope = {"header": {"version": "1.0.0", "message_id": "m1", "message_ts": "2026-01-01T00:00:00Z",
                           "action": "search", "sender_id": "openspp.test", "total_count": 1},
                "message": {"transaction_id": "t1", "search_request": []}}
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM dci_data_source WHERE code LIKE 'kidspp%%'")
        cur.execute("DELETE FROM dci_signing_key WHERE key_id LIKE 'spp-%%'")
        ids = {}
        for alg in ("ed25519", "rsa-sha256"):
            cur.execute("SELECT dci_generate_signing_key(%s, %s)", ("spp-" + alg, alg))
            ids[alg] = cur.fetchone()[0]
        cur.execute("UPDATE dci_signing_key SET kid_format = 'openspp' WHERE id = %s", (ids["ed25519"],))
        conn.commit()
    # OpenSPP publishes one sender_id per installation: one source per key here
    env.add_source("kidspp_ed", sender_id="openspp.test", signing_key_id=ids["ed25519"])
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_jwks()")
        jwks = cur.fetchone()[0]
        kids = [k["kid"] for k in jwks["keys"]]
        assert "openspp.test|spp-ed25519|ed25519" in kids, kids
        pub, algorithm = _openspp_fetch_public_key(jwks, "openspp.test")
        assert pub is not None and algorithm == "ed25519"
        cur.execute("SELECT dci_sign(%s, 'spp-ed25519')", (Json(envelope),))
        sig = cur.fetchone()[0]
        assert 'kidId="openspp.test|spp-ed25519|ed25519"' in sig, sig
        assert _openspp_verify(pub, algorithm, sig, envelope["header"], envelope["message"])
        # a thumbprint kid is not what OpenSPP looks for (the prefix lookup misses it) ...
        envelope["header"]["sender_id"] = "other.sender"
        assert _openspp_fetch_public_key(jwks, "other.sender") == (None, None)

        # ... until the key says so: RSA, spelled rs256 in the kid and in the signature
        cur.execute("UPDATE dci_signing_key SET kid_format = 'openspp' WHERE id = %s", (ids["rsa-sha256"],))
        conn.commit()
    env.add_source("kidspp_rsa", sender_id="other.sender", signing_key_id=ids["rsa-sha256"])
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_jwks()")
        jwks = cur.fetchone()[0]
        pub, algorithm = _openspp_fetch_public_key(jwks, "other.sender")
        assert isinstance(pub, rsa.RSAPublicKey) and algorithm == "rs256", jwks
        cur.execute("SELECT dci_sign(%s, 'spp-rsa-sha256')", (Json(envelope),))
        sig = cur.fetchone()[0]
        assert 'algorithm="rs256"' in sig and 'kidId="other.sender|spp-rsa-sha256|rs256"' in sig, sig
        assert _openspp_verify(pub, algorithm, sig, envelope["header"], envelope["message"])
        # our own verifier takes OpenSPP's spelling too
        cur.execute("SELECT public_key FROM dci_signing_key WHERE id = %s", (ids["rsa-sha256"],))
        pem = cur.fetchone()[0]
        cur.execute("SELECT dci_verify(%s, %s)", (Json(dict(envelope, signature=sig)), pem))
        assert cur.fetchone()[0] is True
        cur.execute("DELETE FROM dci_data_source WHERE code LIKE 'kidspp%%'")
        cur.execute("DELETE FROM dci_signing_key WHERE key_id LIKE 'spp-%%'")


def test_thumbprint_keys_unchanged(env, mock):
    # the default kid_format publishes the RFC 7638 thumbprint, as 0.1 did
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'tp-key'")
        cur.execute("SELECT dci_generate_signing_key('tp-key', 'ed25519')")
        kid = cur.fetchone()[0]
        cur.execute("SELECT kid_format, public_key FROM dci_signing_key WHERE id = %s", (kid,))
        fmt, pub = cur.fetchone()
        assert fmt == "thumbprint"
        cur.execute("SELECT dci_jwks()")
        kids = [k["kid"] for k in cur.fetchone()[0]["keys"]]
        key = serialization.load_pem_public_key(pub.encode())
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        tp = _b64u(hashlib.sha256(json.dumps({"crv": "Ed25519", "kty": "OKP", "x": _b64u(raw)}, sort_keys=True,
                                             separators=(",", ":")).encode()).digest())
        assert tp in kids, kids
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'tp-key'")


# ---------------------------------------------------------------- attacks
def test_statement_timeout_interrupts_a_slow_jwks(env, mock):
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519", delay=8)
    _source(env, "jwks_cancel")
    with _conn(env, interval=3600) as conn:
        cur = conn.cursor()
        cur.execute("SET statement_timeout = 1000")
        expect_error(cur, "57014", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_cancel", QUERY))
        cur.execute("RESET statement_timeout")      # the session stays usable
        _jwks(mock, delay=0)
        # within the interval the cancelled fetch is not repeated, and the error says so
        expect_error(cur, "DC003", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_cancel", QUERY),
                     contains="did not complete")
        assert _fetches(mock) == 1
        cur.execute("SET dci_client.jwks_refetch_interval_s = 0")
        _ok(cur, "jwks_cancel")


def test_batch_verifies_through_jwks(env, mock):
    key = _rsa()
    _jwks(mock, keys=[{"kid": "reg|k1|rs256", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|rs256",
          sign_alg="rs256")
    _source(env, "jwks_batch", batch_size=2)
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*), string_agg(DISTINCT status, ',') FROM "
                    "dci_search_by_ids('jwks_batch', 'UIN', %s)", (["847951632", "1", "2", "3", "4"],))
        total, statuses = cur.fetchone()
        assert (total, statuses) == (5, "succ"), (total, statuses)
        assert _fetches(mock) == 1, "one fetch for every envelope of the batch"
        # an impostor signs: no item is taken as an answer
        _jwks(mock, sign_pem=_rsa())
        try:
            cur.execute("SELECT status, reason_code FROM dci_search_by_ids('jwks_batch', 'UIN', %s)",
                        (["847951632", "1", "2"],))
            rows = cur.fetchall()
            assert all(r[0] != "succ" for r in rows), rows
        except psycopg2.Error as e:
            assert e.pgcode == "DC008", e


def test_settings_are_superusers(env, mock):
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("DROP ROLE IF EXISTS jwks_user")
        cur.execute("CREATE ROLE jwks_user LOGIN")
    try:
        with contextlib.closing(env.cluster.connect(user="jwks_user")) as conn:
            conn.autocommit = True
            cur = conn.cursor()
            for name in ("jwks_refetch_interval_s", "jwks_cache_ttl_s", "jwks_max_stale_s"):
                expect_error(cur, "42501", "SET dci_client.%s = 0" % name)
    finally:
        with _conn(env) as conn:
            conn.cursor().execute("DROP ROLE jwks_user")


def test_internal_url_of_a_non_superuser_admin(env, mock):
    """A role that may write dci_data_source (not a superuser) points the key set at an
    internal address: allowed_hosts (the superuser's) refuses it before anything is sent,
    and where it is allowed, nothing of what the internal service answered is quoted."""
    secret_path = "/open/echo/internal-metadata-7f3a9c"
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("DROP ROLE IF EXISTS jwks_admin")
        cur.execute("CREATE ROLE jwks_admin LOGIN")
        cur.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON dci_data_source TO jwks_admin")
        cur.execute("GRANT USAGE ON SEQUENCE dci_data_source_id_seq TO jwks_admin")
        cur.execute("GRANT EXECUTE ON FUNCTION dci_search(text, text, jsonb, text, integer, integer, jsonb) TO jwks_admin")
        cur.execute("ALTER ROLE jwks_admin SET dci_client.allowed_hosts = '127.0.0.1'")
    key = _ed()
    _jwks(mock, sign_pem=key, sign_kid="reg|k1|ed25519")
    port = mock.http_url.rsplit(":", 1)[1]
    try:
        with contextlib.closing(env.cluster.connect(user="jwks_admin")) as conn:
            conn.autocommit = True
            cur = conn.cursor()
            env.add_source("jwks_internal", conn=conn, registry_type="ns:org:RegistryType:Civil",
                           registry_jwks_url="http://localhost:%s%s" % (port, secret_path),
                           extra_headers=Json({"X-Mock-Sign": "jwks"}))
            e = expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_internal", QUERY))
            assert "allowed_hosts" in str(e), e
            assert mock.stats()["requests"].get(secret_path) is None
            # a superuser allows the address: the answer is not a key set, and is not shown
            cur.execute("UPDATE dci_data_source SET registry_jwks_url = %s WHERE code = 'jwks_internal'",
                        ("http://127.0.0.1:%s%s" % (port, secret_path),))
            e = expect_error(cur, "DC006", "SELECT dci_search(%s, 'idtype-value', %s)", ("jwks_internal", QUERY))
            text = "%s %s %s" % (e.pgerror, e.diag.message_detail, e.diag.message_hint)
            assert mock.stats()["requests"].get(secret_path) == 1
            assert "7f3a9c" not in text, text
            for leaked in ("X-Echo", "echo", "GET"):
                assert leaked not in text, text
    finally:
        with _conn(env) as conn:
            cur = conn.cursor()
            cur.execute("DELETE FROM dci_data_source WHERE code = 'jwks_internal'")
            cur.execute("DROP OWNED BY jwks_admin")
            cur.execute("DROP ROLE jwks_admin")


def test_openspp_kid_refuses_unsafe_names(env, mock):
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM dci_signing_key WHERE key_id IN ('spp-q', 'spp-ok')")
        expect_error(cur, "23514", "INSERT INTO dci_signing_key (key_id, algorithm, kid_format) "
                     "VALUES ('a\"b', 'ed25519', 'openspp')", contains="double quote")
        cur.execute("SELECT dci_generate_signing_key('spp-ok', 'ed25519')")
        kid = cur.fetchone()[0]
        cur.execute("UPDATE dci_signing_key SET kid_format = 'openspp' WHERE id = %s", (kid,))
    # a source whose sender_id could not be a kid: dci_jwks() still answers, without that kid
    env.add_source("kidspp_bad", sender_id='bad"sender', signing_key_id=kid)
    env.add_source("kidspp_good", sender_id="good.sender", signing_key_id=kid)
    try:
        with _conn(env) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_jwks()")
            kids = [k["kid"] for k in cur.fetchone()[0]["keys"]]
            assert "good.sender|spp-ok|ed25519" in kids, kids
            assert not any("bad" in k for k in kids), kids
    finally:
        with _conn(env) as conn:
            cur = conn.cursor()
            cur.execute("DELETE FROM dci_data_source WHERE code LIKE 'kidspp%%'")
            cur.execute("DELETE FROM dci_signing_key WHERE id = %s", (kid,))


def test_dci_send_domain_endpoint_verified_through_jwks(env, mock):
    # dci_send (issue 14) reads answers through the same verification: a domain endpoint's
    # signed answer is verified with the registry's JWKS key, an impostor's refused
    key = _ed()
    _jwks(mock, keys=[{"kid": "reg|k1|ed25519", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519")
    _source(env, "jwks_send", registry_type="ns:org:RegistryType:DR")
    msg = Json({"disabled_criteria": {"query_type": "expression",
                                      "query": {"member.member_identifier": {"eq": "ABC451123"}}}})
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_send('jwks_send', '/registry/sync/disabled', 'search', %s)", (msg,))
        assert "disabled_response" in cur.fetchone()[0]
        _jwks(mock, sign_pem=_ed())
        expect_error(cur, "DC008", "SELECT dci_send('jwks_send', '/registry/sync/disabled', 'search', %s)", (msg,))
    assert _fetches(mock) == 1
