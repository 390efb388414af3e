"""The mock registry's JSON Web Key Set (README "Signing", registry keys from a JWKS URL).

GET /jwks.json (no authentication, like a real JWKS) serves the key set a test configured
through the control API (POST /jwks) and counts each fetch; a source that asks through its
extra_headers (X-Mock-Sign: jwks | jwks-jws) gets answers signed with the key the test named:
the DCI signature field (kidId and algorithm as configured) or a compact JWS (RS256, kid as
configured).  Configuration (all optional; omitted members keep their value):
  keys:          [{"kid": str|null, "private_pem": str}]  the published keys (public halves)
  sign_pem:      PEM of the private key that signs answers
  sign_kid:      kidId of the DCI field / kid of the JWS header ("" or null: none)
  sign_alg:      the DCI field's algorithm ("ed25519", "rsa-sha256", "rs256")
  cache_control: Cache-Control header of the key set (null: none)
  raw:           a document served as is instead of the keys (str; null: the keys)
  status:        HTTP status of the key set (a 3xx sends Location: redirect)
  redirect:      the Location of a 3xx
  delay:         seconds before answering
Used by mock_registry.py; the tests' helpers are in test/test_registry_keys.py.
"""
import base64, hashlib, json, threading, time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

PATH = "/jwks.json"
_lock = threading.Lock()
_conf = {}
_fetches = [0]


def reset():
    with _lock:
        _conf.clear()
        _conf.update({"keys": [], "sign_pem": None, "sign_kid": None, "sign_alg": None,
                      "cache_control": None, "raw": None, "status": 200, "redirect": None, "delay": 0})
        _fetches[0] = 0


def configure(d):
    with _lock:
        for k, v in d.items():
            if k in _conf:
                _conf[k] = v


def stats():
    with _lock:
        return {"fetches": _fetches[0]}


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _uint(i):
    return i.to_bytes((i.bit_length() + 7) // 8, "big")


def public_jwk(private_pem, kid):
    """The public JWK of a private key (PEM), with kid when not None."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw), "use": "sig", "alg": "EdDSA"}
    else:
        pub = key.public_key().public_numbers()
        jwk = {"kty": "RSA", "n": b64u(_uint(pub.n)), "e": b64u(_uint(pub.e)), "use": "sig", "alg": "RS256"}
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def serve(handler):
    """(status, headers, body) for a GET of PATH, else None."""
    if handler.path != PATH:
        return None
    with _lock:
        _fetches[0] += 1
        conf = json.loads(json.dumps(_conf))
    if conf["delay"]:
        handler.sleep(float(conf["delay"]))
    headers = [("Content-Type", "application/json")]
    if conf["cache_control"] is not None:
        headers.append(("Cache-Control", conf["cache_control"]))
    if conf["redirect"]:
        headers.append(("Location", conf["redirect"]))
    if conf["raw"] is not None:
        body = conf["raw"].encode()
    else:
        body = json.dumps({"keys": [public_jwk(k["private_pem"], k.get("kid")) for k in conf["keys"]]}).encode()
    return int(conf["status"]), headers, body


def sign_answer(body, mode):
    """body signed with the configured key: the DCI field (mode "jwks") or a JWS ("jwks-jws")."""
    with _lock:
        pem, kid, alg = _conf["sign_pem"], _conf["sign_kid"], _conf["sign_alg"]
    try:
        env = json.loads(body)
    except ValueError:
        return body
    if pem is None or not isinstance(env, dict) or "header" not in env or "message" not in env:
        return body
    key = serialization.load_pem_private_key(pem.encode(), password=None)

    def raw_sign(data):
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    if mode == "jwks-jws":
        env.pop("signature", None)
        header = {"alg": "RS256"}
        if kid:
            header["kid"] = kid
        signing_input = b64u(json.dumps(header, separators=(",", ":")).encode()) + "." + b64u(json.dumps(env).encode())
        env["signature"] = signing_input + "." + b64u(raw_sign(signing_input.encode()))
        return json.dumps(env).encode()
    canonical = json.dumps({"header": env["header"], "message": env["message"]}, sort_keys=True, separators=(",", ":"))
    digest = base64.b64encode(hashlib.sha256(canonical.encode()).digest()).decode()
    created = int(time.time())
    expires = created + 300
    ss = "(created): %d\n(expires): %d\ndigest: %s" % (created, expires, digest)
    sig = base64.b64encode(raw_sign(ss.encode())).decode()
    alg = alg or ("ed25519" if isinstance(key, ed25519.Ed25519PrivateKey) else "rsa-sha256")
    env["signature"] = ('namespace="dci", %salgorithm="%s", created="%d", expires="%d", '
                        'headers="(created) (expires) digest", signature="%s"'
                        % ('kidId="%s", ' % kid if kid else "", alg, created, expires, sig))
    return json.dumps(env).encode()


reset()
