#!/usr/bin/python3
"""A registry or token endpoint that echoes what it was sent must not put a
credential into our error messages: quoted registry text has the source's
client secret, bearer token and current access token redacted."""
import json

from psycopg2.extras import Json

from support.env import CLIENT_SECRET, expect_error


def test_token_endpoint_echoing_the_secret(env):
    env.add_source("redact_tok")
    env.mock.fault("/oauth2/client/token", "status", status=401,
                   body=json.dumps({"error": "invalid_client",
                                    "error_description": "secret %s is wrong" % CLIENT_SECRET}))
    with env.connect() as conn:
        e = expect_error(conn.cursor(), "DC002", "SELECT dci_get_token('redact_tok')")
    text = "%s %s" % (e.pgerror, e.diag.message_detail)
    assert CLIENT_SECRET not in text, text
    assert "[redacted]" in text and "invalid_client" in text, text


def test_registry_echoing_the_token(env):
    env.add_source("redact_api", sender_id="openspp.test")
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_get_token('redact_api')")
        token = cur.fetchone()[0]
        env.mock.fault("/registry/sync/search", "status", status=400,
                       body=json.dumps({"header": {"status": "rjct",
                                                   "status_reason_code": "rjct.request.invalid",
                                                   "status_reason_message": "bad Authorization: Bearer " + token}}))
        e = expect_error(cur, "DC007", "SELECT dci_search('redact_api', 'idtype-value', %s)",
                         (Json({"type": "UIN", "value": "1"}),))
    assert token not in str(e), str(e)
    assert "rjct.request.invalid" in str(e) and "[redacted]" in str(e), str(e)
