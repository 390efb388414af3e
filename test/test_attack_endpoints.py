"""Attacks on issue 14 (dci_send, the DR/IBR domain functions, dci_txn_status
by attribute, the options and dialects), each performed for real against the
mock registry; every test failed on the code before its fix."""
import json
from contextlib import closing

from psycopg2.extras import Json

from support.env import expect_error
from support.util import code, session

QUERY = {"member.member_identifier": {"eq": "ABC451123"}}
DISABLED = "/registry/sync/disabled"
ENROLLED = "/registry/sync/enrolled"
HDR = {"message_id": "1", "message_ts": "2026-01-01T00:00:00Z", "action": "on-search", "status": "succ"}


def _src(env, prefix, **cols):
    src = code(prefix)
    cols.setdefault("registry_type", "ns:org:RegistryType:DR")
    cols.setdefault("sender_id", "openspp.example.org")
    env.add_source(src, **cols)
    return src


def _role(env, prefix, functions):
    role = code(prefix)
    with session(env) as cur:
        cur.execute("CREATE ROLE %s LOGIN" % role)
        for f in functions:
            cur.execute("GRANT EXECUTE ON FUNCTION %s TO %s" % (f, role))
    return role


def _drop_role(env, role):
    env.query("DROP OWNED BY %s" % role)
    env.query("DROP ROLE %s" % role)


def _one(cur, sql, params=()):
    cur.execute(sql, params)
    return cur.fetchone()[0]


def _requests(env, path):
    return env.mock.stats()["requests"].get(path, 0)


# ---- dci_send is no signing oracle, even through a registry that echoes ----
def _signature_value(sig):
    """The part of a signature that is the signing: DCI's signature="..." or a JWS's last segment."""
    return sig.split('signature="', 1)[1].rstrip('"') if 'signature="' in sig else sig.rsplit(".", 1)[1]


def test_dci_send_returns_no_signature_an_echo_hands_back(env):
    """A caller with EXECUTE on dci_send but not on dci_sign writes any
    message; a registry path that echoes its request (as /echo does), or a
    registry quoting the signature it refuses, must not hand the signature
    the source's key made over that message back to the caller: not in the
    answer, not in the error."""
    with session(env) as cur:
        cur.execute("SELECT dci_generate_signing_key()")
        ed = cur.fetchone()[0]
        cur.execute("SELECT dci_generate_signing_key(NULL, 'rsa-sha256')")
        rsa = cur.fetchone()[0]
    srcs = [_src(env, "atk14sig", signing_key_id=ed),
            _src(env, "atk14jws", signing_key_id=rsa, signature_format="jws")]
    role = _role(env, "atk14_send", ["dci_send(text, text, text, jsonb)"])
    msg = {"transaction_id": "t-forged", "search_request": [{"reference_id": "r", "anything": "I like"}]}
    try:
        with closing(env.connect(user=role)) as conn:
            cur = conn.cursor()
            for src in srcs:
                got = _one(cur, "SELECT dci_send(%s, '/echo', 'search', %s)", (src, Json(msg)))
                sent = json.loads(env.mock.stats()["last_request"]["/echo"]["body"])
                value = _signature_value(sent["signature"])
                assert len(value) > 40, sent["signature"]          # it was signed and sent
                text = json.dumps(got)
                assert value not in text, "dci_send handed back the signature: %s" % text[:300]
                assert "[redacted]" in text
                e = expect_error(cur, "DC007", "SELECT dci_send(%s, '/echo/signature-error', 'search', %s)",
                                 (src, Json(msg)))
                sent = json.loads(env.mock.stats()["last_request"]["/echo/signature-error"]["body"])
                value = _signature_value(sent["signature"])
                assert value not in str(e), "the error quotes the signature: %s" % e
                assert "rjct.signature.invalid" in str(e)
    finally:
        _drop_role(env, role)
