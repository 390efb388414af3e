#!/usr/bin/python3
"""A registry that signs its answers (README "Signing"): with the source's
registry_public_key set, a genuinely signed answer is accepted end to end, and a
tampered or expired one is refused with DC008.  The mock signs with the fixture
Ed25519 key when the source asks through extra_headers (X-Mock-Sign)."""
import os

import psycopg2
from psycopg2.extras import Json

from support.env import expect_error

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing")
QUERY = Json({"type": "UIN", "value": "847951632"})


def _public_key():
    with open(os.path.join(FIXTURES, "ed25519_public.pem")) as f:
        return f.read()


def _source(env, code, mode):
    env.add_source(code, sender_id="openspp.test", registry_type="ns:org:RegistryType:Civil",
                   registry_public_key=_public_key(),
                   extra_headers=Json({"X-Mock-Sign": mode}) if mode else Json({}))


def test_signed_answer_accepted(env):
    _source(env, "signed_ok", "ed25519")
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s)", ("signed_ok", QUERY))
        item = cur.fetchone()[0]
        assert item["data"]["reg_records"], item
        # the same answer verifies with dci_verify too (the mock signed what it sent)
        cur.execute("SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)",
                    ("signed_ok", QUERY))
        assert cur.fetchone()[0] >= 1


def test_tampered_answer_refused(env):
    _source(env, "signed_tampered", "tamper")
    with env.connect() as conn:
        e = expect_error(conn.cursor(), "DC008", "SELECT dci_search(%s, 'idtype-value', %s)",
                         ("signed_tampered", QUERY))
        assert "signed_tampered" in str(e), e


def test_expired_signature_refused(env):
    _source(env, "signed_expired", "expired")
    with env.connect() as conn:
        expect_error(conn.cursor(), "DC008", "SELECT dci_search(%s, 'idtype-value', %s)",
                     ("signed_expired", QUERY))


def test_signature_not_required_without_public_key(env):
    # the same signed answers are fine for a source that does not ask for verification
    env.add_source("signed_noverify", sender_id="openspp.test",
                   extra_headers=Json({"X-Mock-Sign": "tamper"}))
    with env.connect() as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s) ? 'data'", ("signed_noverify", QUERY))
        assert cur.fetchone()[0] is True
