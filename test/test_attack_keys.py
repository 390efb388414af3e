#!/usr/bin/python3
"""Attacks on registry keys from a JWKS URL and on kid styles (README "Signing", "Registry
keys from a JWKS URL, and kid styles"): what a hostile registry, network or sender could get
the key cache or the kid matching to accept.  Helpers of test/test_registry_keys.py."""
import base64
import json

from cryptography.hazmat.primitives import serialization

from support.env import expect_error
from test_registry_keys import QUERY, _conn, _ed, _fetches, _jwks, _ok, _source, _thumbprint, _b64u


def _search_error(cur, code, sqlstate, contains=None):
    return expect_error(cur, sqlstate, "SELECT dci_search(%s, 'idtype-value', %s)", (code, QUERY), contains=contains)


def _public_jwk(private_pem, **extra):
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return dict({"kty": "OKP", "crv": "Ed25519", "x": _b64u(raw)}, **extra)


def _private_d(private_pem):
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return _b64u(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption()))


# ---------------------------------------------------------------- the cache and allowed_hosts
def test_allowed_hosts_tightened_drops_the_cached_set(env, mock):
    """A superuser who removes the key set's host from allowed_hosts stops trusting what
    was fetched from it: the cached set is not used (DC001), nothing is fetched."""
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          cache_control="max-age=3600")
    port = mock.http_url.rsplit(":", 1)[1]
    _source(env, "atk_hosts", url="http://localhost:%s/jwks.json" % port)
    with _conn(env, interval=0) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1, localhost'")
        _ok(cur, "atk_hosts")
        assert _fetches(mock) == 1
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1'")
        e = _search_error(cur, "atk_hosts", "DC001")
        assert "allowed_hosts" in str(e), e
        assert _fetches(mock) == 1
        cur.execute("SET dci_client.allowed_hosts = '127.0.0.1, localhost'")
        _ok(cur, "atk_hosts")


def test_registry_jwks_url_repointed_drops_the_cached_set(env, mock):
    """UPDATE of registry_jwks_url (by another session): the next answer is verified with
    the new URL's set, never with the old one's cached keys. (held)"""
    old, new = _ed(), _ed()
    port = mock.http_url.rsplit(":", 1)[1]
    _jwks(mock, keys=[{"kid": "k1", "private_pem": old}], sign_pem=old, sign_kid="reg|k1|ed25519",
          cache_control="max-age=3600")
    _source(env, "atk_repoint")
    with _conn(env, interval=3600) as conn:
        cur = conn.cursor()
        _ok(cur, "atk_repoint")
        with _conn(env) as admin:
            admin.cursor().execute("UPDATE dci_data_source SET registry_jwks_url = %s WHERE code = 'atk_repoint'",
                                   ("http://localhost:%s/jwks.json" % port,))
        # the new URL serves another key under the same kid; an answer signed by the old key
        _jwks(mock, keys=[{"kid": "k1", "private_pem": new}])
        e = _search_error(cur, "atk_repoint", "DC008", contains="does not verify")
        assert _fetches(mock) == 2, "the new URL was fetched despite the interval"
        _jwks(mock, sign_pem=new)
        _ok(cur, "atk_repoint")
        assert _fetches(mock) == 2


# ---------------------------------------------------------------- a leaked key, stale grace
def test_refetched_set_with_private_key_stops_trusting_the_cached_one(env, mock):
    """The registry's key set, fetched again (a new kid), now holds the private half of the
    key we cached: that key can be used by anyone.  The cached set must not verify any more."""
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          cache_control="max-age=3600")
    _source(env, "atk_leak")
    with _conn(env, interval=0) as conn:
        cur = conn.cursor()
        _ok(cur, "atk_leak")
        leaked = json.dumps({"keys": [_public_jwk(key, kid="k1", d=_private_d(key))]})
        _jwks(mock, raw=leaked, sign_kid="reg|k2|ed25519")        # an unknown kid: a refetch
        _search_error(cur, "atk_leak", "DC006", contains="private key material")
        _jwks(mock, sign_kid="reg|k1|ed25519")                      # anyone signing with the leaked key
        _search_error(cur, "atk_leak", "DC006", contains="private key material")
        assert _fetches(mock) == 3


def test_stale_grace_only_for_an_outage(env, mock):
    """An expired set serves while the registry cannot be reached (held: 503), not when it
    says the set is gone (404) or publishes one that is refused."""
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="reg|k1|ed25519",
          cache_control="max-age=0")
    _source(env, "atk_stale")
    with _conn(env, interval=0) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        _ok(cur, "atk_stale")
        _jwks(mock, status=503)
        _ok(cur, "atk_stale")
        _jwks(mock, status=404)
        _search_error(cur, "atk_stale", "DC001", contains="HTTP 404")
        _jwks(mock, status=200)
        _ok(cur, "atk_stale")
        _jwks(mock, raw=json.dumps({"keys": [_public_jwk(key, kid="k1", alg="EdDSA", use=5)]}))
        _search_error(cur, "atk_stale", "DC006")


# ---------------------------------------------------------------- degenerate keys
_P = 2 ** 255 - 19


def _small_order_encodings():
    """Encodings of the Ed25519 points of order 1, 2, 4 and 8 (computed here, pure integers),
    and the non-canonical spellings (y + p) of those with y < 19."""
    d = (-121665 * pow(121666, _P - 2, _P)) % _P

    def add(a, b):
        (x1, y1), (x2, y2) = a, b
        t = d * x1 * x2 * y1 * y2 % _P
        return ((x1 * y2 + y1 * x2) * pow(1 + t, _P - 2, _P) % _P,
                (y1 * y2 + x1 * x2) * pow(1 - t, _P - 2, _P) % _P)

    sqrt_m1 = pow(2, (_P - 1) // 4, _P)
    # an order-8 point: x^2 = (y^2 - 1) / (d y^2 + 1) with (x, y) doubling to (sqrt(-1), 0)
    # solve by search over the curve: double every candidate point of the 8-torsion
    pts = {(0, 1), (0, _P - 1), (sqrt_m1, 0), (_P - sqrt_m1, 0)}
    # the order-8 points P satisfy 2P in {(±sqrt(-1), 0)}: x = ±y and y^2 = ... ; solve x = y:
    # 2xy/(1+d x^2 y^2) = ±sqrt(-1), (y^2+x^2)/(1-d x^2 y^2) = 0 -> y^2 = -x^2 -> x = ±sqrt(-1) y
    # then on the curve: -x^2 + y^2 = 1 + d x^2 y^2 with x^2 = -y^2: 2 y^2 = 1 - d y^4
    # d y^4 + 2 y^2 - 1 = 0 -> y^2 = (-2 ± sqrt(4 + 4d)) / (2d) = (-1 ± sqrt(1 + d)) / d
    def sqrt(a):
        r = pow(a, (_P + 3) // 8, _P)
        if r * r % _P != a % _P:
            r = r * sqrt_m1 % _P
        return r if r * r % _P == a % _P else None

    s = sqrt((1 + d) % _P)
    for sign in (1, -1):
        y2 = (-1 + sign * s) * pow(d, _P - 2, _P) % _P
        y = sqrt(y2)
        if y is None:
            continue
        for yy in (y, _P - y):
            x = sqrt_m1 * yy % _P
            for xx in (x, _P - x):
                pts.add((xx, yy))
    out = []
    for x, y in pts:
        q = (x, y)
        for _ in range(3):
            q = add(q, q)
        assert q == (0, 1), "not of small order"
        for yy in ([y, y + _P] if y + _P < 2 ** 255 else [y]):
            enc = bytearray(yy.to_bytes(32, "little"))
            enc[31] |= (x & 1) << 7
            out.append(bytes(enc))
    assert len(pts) == 8
    return out


def test_small_order_ed25519_key_refused(env, mock):
    """A JWK (or PEM) whose x is a point of small order: (R = identity, S = 0) verifies any
    message under it, so anyone could sign as the registry.  Refused like a bad key (DC006)."""
    encodings = _small_order_encodings()
    forged = base64.b64encode(bytes([1] + [0] * 31) + bytes(32)).decode()
    identity = bytes([1] + [0] * 31)
    _jwks(mock, raw=json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64u(identity), "kid": "k1"}]}),
          sign_pem=_ed(), sign_kid="reg|k1|ed25519", sign_raw=forged)
    _source(env, "atk_small")
    with _conn(env) as conn:
        cur = conn.cursor()
        _search_error(cur, "atk_small", "DC006", contains="small order")
        for i, enc in enumerate(encodings):
            _jwks(mock, raw=json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": _b64u(enc), "kid": "k1"}]}))
            _source(env, "atk_small%d" % i)
            _search_error(cur, "atk_small%d" % i, "DC006")
        # the same key as a PEM: dci_verify says false for the forgery
        spki = bytes.fromhex("302a300506032b6570032100") + identity
        pem = "-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n" % base64.b64encode(spki).decode()
        envelope = {"header": {"sender_id": "x"}, "message": {},
                    "signature": 'namespace="dci", kidId="x|k|ed25519", algorithm="ed25519", created="%d", '
                                 'expires="%d", headers="(created) (expires) digest", signature="%s"'
                                 % (1, 2 ** 40, forged)}
        cur.execute("SELECT dci_verify(%s::jsonb, %s)", (json.dumps(envelope), pem))
        assert cur.fetchone()[0] is False


# ---------------------------------------------------------------- kid_format 'openspp'
def test_openspp_key_does_not_sign_for_a_sender_id_with_a_bar(env, mock):
    """sender_id 'a|b' with a kid_format 'openspp' key: the kidId 'a|b|key|ed25519' is no
    kid dci_jwks() publishes (it leaves that sender out) and a registry splitting on '|'
    reads sender 'a'. Refused before anything is sent, as the README says."""
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("DELETE FROM dci_signing_key WHERE key_id = 'atk-bar'")
        cur.execute("SELECT dci_generate_signing_key('atk-bar', 'ed25519')")
        kid = cur.fetchone()[0]
        cur.execute("UPDATE dci_signing_key SET kid_format = 'openspp' WHERE id = %s", (kid,))
    env.add_source("atk_bar", sender_id="victim|x", signing_key_id=kid, auth_type="none", auth_url=None,
                   client_id=None, client_secret=None)
    try:
        with _conn(env) as conn:
            cur = conn.cursor()
            before = mock.stats()["requests"].get("/registry/sync/search", 0)
            _search_error(cur, "atk_bar", "DC001", contains="|")
            assert mock.stats()["requests"].get("/registry/sync/search", 0) == before
    finally:
        with _conn(env) as conn:
            cur = conn.cursor()
            cur.execute("DELETE FROM dci_data_source WHERE code = 'atk_bar'")
            cur.execute("DELETE FROM dci_signing_key WHERE id = %s", (kid,))


# ---------------------------------------------------------------- kid matching across senders
def test_key_of_another_sender_does_not_verify(env, mock):
    """A key set holding the keys of several senders, named as OpenSPP names them
    (sender_id|key_id|alg, as dci_jwks() does for several sources): a key published for
    'other.registry' does not verify an answer from 'mock-registry' (its header.sender_id),
    whatever kidId the signature gives — the other sender's own, or its key's thumbprint as
    key_id under our registry's name."""
    mine, theirs = _ed(), _ed()
    _jwks(mock, keys=[{"kid": "mock-registry|k1|ed25519", "private_pem": mine},
                      {"kid": "other.registry|k2|ed25519", "private_pem": theirs}],
          sign_pem=mine, sign_kid="mock-registry|k1|ed25519", cache_control="max-age=3600")
    _source(env, "atk_sender")
    with _conn(env, interval=3600) as conn:
        cur = conn.cursor()
        _ok(cur, "atk_sender")
        for kid in ("other.registry|k2|ed25519", "mock-registry|%s|ed25519" % _thumbprint(theirs),
                    "other.registry|%s|ed25519" % _thumbprint(theirs)):
            _jwks(mock, sign_pem=theirs, sign_kid=kid)
            e = _search_error(cur, "atk_sender", "DC008")
            assert 'header.sender_id is "mock-registry"' in str(e), e
        # nor without a kid (one Ed25519 key of this sender: ours)
        _jwks(mock, sign_pem=theirs, sign_kid=None)
        _search_error(cur, "atk_sender", "DC008")
        _jwks(mock, sign_pem=mine, sign_kid=None)
        _ok(cur, "atk_sender")
        assert _fetches(mock) == 1


# ---------------------------------------------------------------- upgrade, dci_jwks to a non-superuser
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")


def test_upgrade_keeps_keys_and_jwks_shows_no_private_part(env, mock):
    """Keys made under 0.1, then ALTER EXTENSION UPDATE: kid_format 'thumbprint', the same
    kids in dci_jwks(), signatures that still verify; switched to 'openspp', dci_jwks() to a
    role granted only EXECUTE on it holds public members only. (held)"""
    import contextlib
    db = "atk_keys_up"
    admin = env.cluster.connect()
    admin.autocommit = True
    admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
    admin.cursor().execute("CREATE DATABASE %s" % db)
    admin.cursor().execute("DROP ROLE IF EXISTS atk_jwks_reader")
    admin.cursor().execute("CREATE ROLE atk_jwks_reader LOGIN")
    try:
        with contextlib.closing(env.cluster.connect(dbname=db)) as conn:
            conn.autocommit = True
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
            cur.execute("SELECT dci_generate_signing_key('up-ed', 'ed25519'), dci_generate_signing_key('up-rsa', 'rsa-sha256')")
            cur.execute("SELECT dci_jwks()")
            before = sorted(k["kid"] for k in cur.fetchone()[0]["keys"])
            cur.execute("INSERT INTO dci_data_source (code, name, auth_type, base_url, sender_id, signing_key_id) "
                        "SELECT 'up', 'UP', 'none', %s, 'up.sender', id FROM dci_signing_key WHERE key_id = 'up-rsa'",
                        (mock.http_url,))
            cur.execute("ALTER EXTENSION dci_client UPDATE")
            cur.execute("SELECT key_id, kid_format FROM dci_signing_key ORDER BY 1")
            assert cur.fetchall() == [("up-ed", "thumbprint"), ("up-rsa", "thumbprint")]
            cur.execute("SELECT dci_jwks()")
            assert sorted(k["kid"] for k in cur.fetchone()[0]["keys"]) == before
            env_ = json.dumps({"header": {"sender_id": "up.sender"}, "message": {}})
            cur.execute("SELECT dci_verify(jsonb_set(%s::jsonb, '{signature}', to_jsonb(dci_sign(%s::jsonb, 'up-rsa'))), "
                        "(SELECT public_key FROM dci_signing_key WHERE key_id = 'up-rsa'))", (env_, env_))
            assert cur.fetchone()[0] is True
            cur.execute("UPDATE dci_signing_key SET kid_format = 'openspp'")
            cur.execute("GRANT EXECUTE ON FUNCTION dci_jwks() TO atk_jwks_reader")
        with contextlib.closing(env.cluster.connect(dbname=db, user="atk_jwks_reader")) as conn:
            cur = conn.cursor()
            cur.execute("SELECT dci_jwks()")
            keys = cur.fetchone()[0]["keys"]
            assert "up.sender|up-rsa|rs256" in [k["kid"] for k in keys], keys
            for k in keys:
                assert not set(k) & set(PRIVATE_MEMBERS), k
            expect_error(cur, "42501", "SELECT private_key_encrypted FROM dci_signing_key")
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        admin.cursor().execute("DROP ROLE IF EXISTS atk_jwks_reader")
        admin.close()


# ---------------------------------------------------------------- the source's client certificate
def test_client_certificate_not_presented_to_another_origin(env, mock):
    """A source with mutual TLS (client_cert, client_key): whoever may edit the row can point
    registry_jwks_url at a host of their choosing without the stored client_key being removed
    (as a change of base_url removes it).  The key set is public: the client certificate is
    presented only to the source's own origin (base_url), where it goes anyway."""
    from support import harness
    pem = lambda n: harness.read_pem(env.certdir, n)
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}], sign_pem=key, sign_kid="mock-registry|k1|ed25519")
    base = mock.https_urls["mtls"]
    port = base.rsplit(":", 1)[1]
    tls = dict(ca_cert=env.ca_pem(), client_cert=pem("client.crt"), client_key=pem("client.key"), base_url=base)
    # another origin (the same server, which refuses a client without a certificate)
    _source(env, "atk_mtls_other", url="https://localhost:%s/jwks.json" % port, **tls)
    with _conn(env) as conn:
        _search_error(conn.cursor(), "atk_mtls_other", "DC003")
    assert _fetches(mock) == 0, "the certificate reached another origin"
    # the source's own origin: the certificate is presented, as to every call
    _source(env, "atk_mtls_own", url=base + "/jwks.json", **tls)
    with _conn(env) as conn:
        _ok(conn.cursor(), "atk_mtls_own")
    assert _fetches(mock) == 1


# ---------------------------------------------------------------- no downgrade to unsigned
def test_no_key_set_never_means_unsigned_is_accepted(env, mock):
    """registry_jwks_url set, and no key set to be had (nothing listens, an empty set, a
    set of keys we do not use): an unsigned answer — or one signed by anyone — is an error
    of the fetch's class or DC008, never an answer. (held)"""
    key = _ed()
    _jwks(mock, keys=[{"kid": "k1", "private_pem": key}])       # the mock does not sign
    _source(env, "atk_down_dead", url="http://127.0.0.1:9/jwks.json")
    with _conn(env) as conn:
        cur = conn.cursor()
        cur.execute("SET dci_client.max_retries = 0")
        _search_error(cur, "atk_down_dead", "DC008", contains="not signed")
        _jwks(mock, sign_pem=key, sign_kid="mock-registry|k1|ed25519")
        _search_error(cur, "atk_down_dead", "DC003")
    for raw, state in (('{"keys": []}', "DC008"),
                       (json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}), "DC008")):
        _jwks(mock, raw=raw, sign_pem=None)
        _source(env, "atk_down_empty")
        with _conn(env) as conn:
            _search_error(conn.cursor(), "atk_down_empty", state, contains="not signed")
        _jwks(mock, sign_pem=_ed(), sign_kid=None)
        with _conn(env) as conn:
            _search_error(conn.cursor(), "atk_down_empty", state)
