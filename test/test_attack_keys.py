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
