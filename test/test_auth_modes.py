"""Where credentials go: credential_location body/basic/query for the token
request, Bearer for auth_type bearer, nothing for none, and the token / the
client secret never cross to the other side (README "Register a registry", "Functions")."""
import base64, json
from contextlib import closing

from support.env import CLIENT_ID, CLIENT_SECRET
from support.util import TOKEN_PATH, code, request


def _token_record(env, location, scope=None):
    src = code("auth" + location)
    cols = {"credential_location": location}
    if scope:
        cols["scope"] = scope
    env.add_source(src, **cols)
    env.mock.reset()
    with closing(env.connect()) as conn:
        r = request(conn.cursor(), src, "POST", "/echo", {"probe": location})
    assert r["status"] == 200, r
    s = env.mock.stats()
    assert s["token_requests"] == 1 and len(s["token_log"]) == 1, s
    return s, s["token_log"][0]


def test_credentials_in_body(env):
    s, rec = _token_record(env, "body", scope="registry.search")
    assert rec["location"] == "body" and rec["client_id"] == CLIENT_ID, rec
    assert rec["secret_in_body"] and not rec["secret_in_query"] and not rec["secret_in_basic"], rec
    assert rec["query_keys"] == [], rec
    assert not rec["has_authorization"], rec
    assert rec["grant_type"] == "client_credentials" and rec["scope"] == "registry.search", rec
    assert rec["content_type"].startswith("application/x-www-form-urlencoded"), rec
    assert rec["accept"] == "application/json", rec


def test_credentials_in_basic_header(env):
    s, rec = _token_record(env, "basic")
    assert rec["location"] == "basic" and rec["client_id"] == CLIENT_ID, rec
    assert rec["secret_in_basic"] and not rec["secret_in_body"] and not rec["secret_in_query"], rec
    assert "client_id" not in rec["body_keys"] and rec["query_keys"] == [], rec
    assert rec["scope"] is None and "scope" not in rec["body_keys"], rec    # no scope set: none sent
    hdr = s["last_request"][TOKEN_PATH]["headers"]["authorization"]
    assert hdr.startswith("Basic "), hdr
    assert base64.b64decode(hdr[6:]).decode() == "%s:%s" % (CLIENT_ID, CLIENT_SECRET)


def test_credentials_in_query(env):
    s, rec = _token_record(env, "query")
    assert rec["location"] == "query" and rec["client_id"] == CLIENT_ID, rec
    assert rec["secret_in_query"] and not rec["secret_in_body"] and not rec["secret_in_basic"], rec
    assert rec["body_keys"] == ["grant_type"], rec
    assert not rec["has_authorization"], rec


def test_basic_credentials_are_form_encoded(env):
    # RFC 6749 2.3.1: id and secret are form-encoded before the Basic header
    sec = "p@ss:wörd/+&=%"
    env.mock.add_client("odd:client", sec)
    src = code("authbasicenc")
    env.add_source(src, credential_location="basic", client_id="odd:client", client_secret=sec)
    env.mock.reset()
    env.mock.add_client("odd:client", sec)
    with closing(env.connect()) as conn:
        assert request(conn.cursor(), src)["status"] == 200
    rec = env.mock.stats()["token_log"][0]
    assert rec["location"] == "basic" and rec["client_id"] == "odd:client", rec


def test_bearer_source(env):
    src = code("authbearer")
    env.add_source(src, auth_type="bearer", auth_url=None, client_id=None, client_secret=None,
                   bearer_token="static-bearer-token-1")
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        r = request(cur, src)
        assert r["status"] == 200, r
        # sent as it is; what the registry echoes back is redacted
        assert json.loads(r["body"])["headers"]["authorization"] == "Bearer [redacted]"
        cur.execute("SELECT dci_get_token(%s)", (src,))
        assert cur.fetchone()[0] == "static-bearer-token-1"
    s = env.mock.stats()
    assert s["authorization"] == ["Bearer static-bearer-token-1"], s["authorization"]
    assert s["token_requests"] == 0, s


def test_none_sends_no_authorization(env):
    src = code("authnone")
    env.add_source(src, auth_type="none", auth_url=None, client_id=None, client_secret=None)
    env.mock.reset()
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        r = request(cur, src, "GET", "/open/echo")
        assert r["status"] == 200, r
        assert "authorization" not in json.loads(r["body"])["headers"], r
        # a protected path answers 401, and nothing is renewed or resent for `none`
        assert request(cur, src, "GET", "/echo")["status"] == 401
        cur.execute("SELECT dci_get_token(%s)", (src,))
        assert cur.fetchone()[0] is None
    s = env.mock.stats()
    assert s["authorization"] == [None, None], s["authorization"]
    assert s["token_requests"] == 0 and s["requests"]["/echo"] == 1, s


def test_token_and_secret_stay_on_their_side(env):
    # The token endpoint on another origin (localhost vs 127.0.0.1): the bearer
    # token must never reach it, and the API must never see the client secret.
    port = env.mock.ports["http"]
    for loc in ("body", "basic", "query"):
        src = code("authsides" + loc)
        env.add_source(src, credential_location=loc,
                       auth_url="http://localhost:%d/oauth2/client/token" % port)
        env.mock.reset()
        with closing(env.connect()) as conn:
            cur = conn.cursor()
            for _ in range(2):
                assert request(cur, src, "POST", "/echo", {"x": 1}, {"X-Extra": "1"})["status"] == 200
            cur.execute("SELECT dci_get_token(%s, true)", (src,))   # a second token fetch, with a token cached
            tok = cur.fetchone()[0]
            assert request(cur, src, "GET", "/echo?a=b")["status"] == 200
        s = env.mock.stats()
        assert s["token_requests"] == 2, (loc, s["token_requests"])
        for rec in s["token_log"]:
            assert rec["location"] == loc, rec
            assert rec["has_authorization"] == (loc == "basic"), rec
        tokreq = s["last_request"][TOKEN_PATH]
        auth = tokreq["headers"].get("authorization")
        assert auth is None or auth.startswith("Basic "), auth
        assert "tok-" not in json.dumps(tokreq), tokreq
        assert tok not in json.dumps(tokreq)
        # every API call carried a bearer token and nothing of the client credentials
        assert s["authorization"] and all(a.startswith("Bearer tok-") for a in s["authorization"]), s["authorization"]
        api = json.dumps(s["last_request"]["/echo"])
        assert CLIENT_SECRET not in api and "client_secret" not in api, api
