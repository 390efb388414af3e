"""Any endpoint, domain endpoints and dialects (README "DCI layer", issue 14):
dci_send through the whole DCI path, the DR and IBR domain endpoints with
their requests checked by the mock against the specs' shapes (a violation
fails the test), dci_txn_status by txn_type and reference_id, every
search_criteria option of the specs, and the dialect column (opencrvs,
openg2p) changing what is sent and how answers are read."""
import json, re, uuid
from contextlib import closing

import psycopg2
from psycopg2.extras import Json

from support.env import expect_error
from support.util import code

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
QUERY = {"member.member_identifier": {"eq": "ABC451123"}}
DISABLED = "/registry/sync/disabled"
ENROLLED = "/registry/sync/enrolled"
UPDATES = "/registry/sync/enrollment/updates"


def _src(env, prefix, **cols):
    src = code(prefix)
    cols.setdefault("registry_type", "ns:org:RegistryType:DR")
    cols.setdefault("sender_id", "openspp.example.org")
    env.add_source(src, **cols)
    return src


def _valid(env, path=None, expect=None):
    """Every envelope the mock received (on path) passed its shape check."""
    v = [x for x in env.mock.stats()["dci_validation"] if path is None or x["path"] == path]
    assert v, "the mock received no DCI envelope%s" % (" on " + path if path else "")
    bad = [x for x in v if not x["ok"]]
    assert not bad, "request shape violations: %s" % json.dumps(bad, indent=1)
    if expect is not None:
        assert len(v) == expect, (len(v), expect)
    return v


def _sent(env, path):
    return json.loads(env.mock.stats()["last_request"][path]["body"])


def _requests(env, path):
    return env.mock.stats()["requests"].get(path, 0)


def _one(cur, sql, params=()):
    cur.execute(sql, params)
    return cur.fetchone()[0]


def _error(cur, pgcode, sql, params, *needles):
    e = expect_error(cur, pgcode, sql, params)
    msg = e.diag.message_primary or ""
    for n in needles:
        assert n in msg, "%r not in %r" % (n, msg)
    return e


# ---------------------------------------------------------------- domain endpoints
def test_disabled_request_shape_and_answer(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        item = _one(cur, "SELECT dci_disabled(%s, %s)", (src, Json(QUERY)))
        assert item["disabled_status"] == "yes" and item["status"] == "succ", item
        sid = env.query("SELECT id FROM dci_data_source WHERE code = %s", (src,))[0][0]
        assert _one(cur, "SELECT dci_disabled(%s, %s) ->> 'disabled_status'",
                    (sid, Json({"member.member_identifier": {"eq": "ABLE"}}))) == "no"
    _valid(env, DISABLED, expect=2)
    sent = _sent(env, DISABLED)
    assert sent["header"]["action"] == "search" and sent["header"]["total_count"] == 1
    assert "status" not in sent["header"]
    assert UUID_RE.match(sent["message"]["transaction_id"])
    assert sent["message"]["disabled_criteria"] == {"query_type": "expression",
                                                   "query": {"member.member_identifier": {"eq": "ABLE"}}}


def test_disability_support_and_details_normalised(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        sup = _one(cur, "SELECT dci_disability_support(%s, %s)", (src, Json(QUERY)))
        det = _one(cur, "SELECT dci_disability_details(%s, %s, 'idtype-value')",
                   (src, Json({"type": "UIN", "value": "4471"})))
    _valid(env, "/registry/sync/get-disability-support", expect=1)
    _valid(env, "/registry/sync/get-disability-details", expect=1)
    # the mock answers counts as strings: the normal form of dci_search makes them numbers
    assert sup["pagination"] == {"page_size": 10, "page_number": 1, "total_count": 1}, sup
    assert sup["data"]["reg_records"][0][0]["human_assistance"]["type"] == "mobility"
    assert det["data"]["reg_records"][0]["identifier"] == "4471"
    assert det["data"]["reg_records"][0]["disability_details"][0]["impairment_cause"] == "Work Accident"
    sent = _sent(env, "/registry/sync/get-disability-details")["message"]["disabled_criteria"]
    assert sent["query_type"] == "idtype-value"


def test_enrolled_bare_answer_and_response_entity(env):
    src = _src(env, "ibr", registry_type="ns:org:RegistryType:IBR")
    q = {"person_identifier": {"eq": "ABC451123"},
         "programme_identifier.program.programme_identifier": {"eq": "DCI001"}}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        item = _one(cur, "SELECT dci_enrolled(%s, %s, response_entity => 'Member')", (src, Json(q)))
        assert item["enrolled_status"] == "yes", item
        assert _one(cur, "SELECT dci_enrolled(%s, %s) ->> 'enrolled_status'",
                    (src, Json({"person_identifier": {"eq": "NEW"}}))) == "no"
    v = _valid(env, ENROLLED, expect=2)
    assert v
    crit = _sent(env, ENROLLED)["message"]["enrolled_criteria"]
    assert "response_entity" not in crit
    # the first call carried it (the mock refuses any value but Group/Member)


def test_enrollment_updates_is_a_notify_with_the_callback_header(env):
    src = _src(env, "ibr", registry_type="ns:org:RegistryType:IBR", callback_uri="https://openspp.example.org/cb")
    bens = [{"identifier": [{"identifier_type": "UIN", "identifier_value": "111"}], "programme": "Child Grant"},
            {"identifier": [{"identifier_type": "UIN", "identifier_value": "222"}], "programme": "Child Grant"}]
    with closing(env.connect()) as conn:
        msg = _one(conn.cursor(), "SELECT dci_enrollment_updates(%s, %s)", (src, Json(bens)))
    _valid(env, UPDATES, expect=1)
    h = _sent(env, UPDATES)["header"]
    assert h["action"] == "notify" and h["status"] == "succ", h
    assert h["total_count"] == 2 and h["completed_count"] == 2, h
    assert "sender_uri" not in h                   # not part of the callback header
    assert [i["status"] for i in msg["enrolled_response"]] == ["succ", "succ"], msg


def test_domain_rejections_are_dc007_with_the_reason(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _error(cur, "DC007", "SELECT dci_disabled(%s, %s)", (src, Json({"id": {"eq": "RJCT"}})),
               "rjct.reference_id.invalid", "no registrant RJCT")
        _error(cur, "DC007", "SELECT dci_disability_details(%s, %s)", (src, Json({"id": {"eq": "HTTP400"}})),
               "HTTP 400", "rjct.query.invalid")
        _error(cur, "DC007", "SELECT dci_enrolled(%s, %s)", (src, Json({"id": {"eq": "RJCT"}})),
               "rjct.reference_id.invalid")
    _valid(env, expect=3)


def test_domain_transport_failures(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        # a read: a reset connection is retried
        env.mock.fault(DISABLED, "reset", count=1)
        assert _one(cur, "SELECT dci_disabled(%s, %s) ->> 'disabled_status'", (src, Json(QUERY))) == "yes"
        assert _requests(env, DISABLED) == 2
        # a write (notify): not retried once it may have reached the registry
        env.mock.fault(UPDATES, "reset", count=1)
        expect_error(cur, "DC003", "SELECT dci_enrollment_updates(%s, %s)", (src, Json([{"id": 1}])))
        assert _requests(env, UPDATES) == 1
        env.mock.fault(DISABLED, "503", count=3, retry_after=0)
        expect_error(cur, "DC009", "SELECT dci_disabled(%s, %s)", (src, Json(QUERY)))
        env.mock.fault(DISABLED, "401", count=10)
        expect_error(cur, "DC002", "SELECT dci_disabled(%s, %s)", (src, Json(QUERY)))


def test_domain_bad_input_sends_nothing(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_error(cur, "22023", "SELECT dci_disabled(%s, NULL)", (src,))
        expect_error(cur, "22023", "SELECT dci_disabled(%s, '[1]')", (src,))
        expect_error(cur, "22023", "SELECT dci_disabled(%s, '{}', 'sql')", (src,))
        expect_error(cur, "22023", "SELECT dci_enrollment_updates(%s, '[]')", (src,))
        expect_error(cur, "22023", "SELECT dci_enrollment_updates(%s, '[1]')", (src,))
        expect_error(cur, "DC001", "SELECT dci_disabled('no_such_source', '{}')")
    assert not env.mock.stats()["dci_validation"]


# ---------------------------------------------------------------- dci_send
def test_dci_send_any_endpoint(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        msg = _one(cur, "SELECT dci_send(%s, %s, 'search', %s)",
                   (src, DISABLED, Json({"disabled_criteria": {"query_type": "expression", "query": QUERY}})))
        assert msg["disabled_response"][0]["disabled_status"] == "yes", msg
        sent = _sent(env, DISABLED)["message"]
        assert UUID_RE.match(sent["transaction_id"]), sent       # added: the message had none
        # a notify: the callback header, total_count from the message
        msg = _one(cur, "SELECT dci_send(%s, %s, 'notify', %s)",
                   (src, UPDATES, Json({"transaction_id": "t-77", "enrolled_updates": {
                       "beneficiaries": [{"id": 1}, {"id": 2}, {"id": 3}]}})))
        h = _sent(env, UPDATES)["header"]
        assert h["status"] == "succ" and h["total_count"] == 3 and h["action"] == "notify", h
        assert _sent(env, UPDATES)["message"]["transaction_id"] == "t-77"
        assert len(msg["enrolled_response"]) == 3
        # a sync search through dci_send: search_response items in the normal form
        msg = _one(cur, "SELECT dci_send(%s, '/registry/sync/search', 'search', %s)", (src, Json({
            "search_request": [{"reference_id": "r-1", "timestamp": "2026-01-01T00:00:00Z",
                                "search_criteria": {"query_type": "idtype-value",
                                                    "query": {"type": "UIN", "value": "LENIENT"}}}]})))
        assert isinstance(msg["search_response"][0]["data"]["reg_records"], list), msg
        # an asynchronous endpoint: the acknowledgement
        ack = _one(cur, "SELECT dci_send(%s, '/registry/subscribe', 'subscribe', %s)", (src, Json({
            "subscribe_request": [{"reference_id": "r-2", "timestamp": "2026-01-01T00:00:00Z",
                                   "subscribe_criteria": {"reg_event_type": "REGISTER", "filter": {"type": "*", "value": "*"},
                                                          "notify_record_type": "Person"}}]})))
        assert ack["ack_status"] == "ACK", ack
        _error(cur, "DC007", "SELECT dci_send(%s, %s, 'search', %s)",
               (src, DISABLED, Json({"disabled_criteria": {"query_type": "expression", "query": {"x": "RJCT"}}})),
               "rjct.reference_id.invalid")
    _valid(env)


def test_dci_send_refuses_hostile_arguments(env):
    src = _src(env, "dr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for ep in ("", "registry/sync/disabled", "/../oauth2/client/token", "/a/../b", "http://evil.example/x",
                   "/registry/sync/disabled?x=1", "/a#b", "/a b", "/a\r\nX-Evil: 1", "/a\\b"):
            expect_error(cur, "22023", "SELECT dci_send(%s, %s, 'search', '{}')", (src, ep))
        for action in ("on-search", "SEARCH", "txn_status", "", "search\n"):
            expect_error(cur, "22023", "SELECT dci_send(%s, %s, %s, '{}')", (src, DISABLED, action))
        for message in ("[]", '"x"', "1", "null"):
            expect_error(cur, "22023", "SELECT dci_send(%s, %s, 'search', %s::jsonb)", (src, DISABLED, message))
        expect_error(cur, "22023", "SELECT dci_send(%s, NULL, 'search', '{}')", (src,))
    assert not env.mock.stats()["dci_validation"]
    assert not env.mock.stats()["requests"].get(DISABLED)


# ---------------------------------------------------------------- transaction status
def test_txn_status_by_reference_id_and_for_a_subscription(env):
    src = _src(env, "crvs", registry_type="ns:org:RegistryType:Civil")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        txn = _one(cur, "SELECT dci_search_async(%s, 'idtype-value', %s)",
                   (src, Json({"type": "UIN", "value": "847951632"})))
        ref = _sent(env, "/registry/search")["message"]["search_request"][0]["reference_id"]
        st = _one(cur, "SELECT dci_txn_status(%s, NULL, reference_ids => ARRAY[%s])", (src, ref))
        assert st["txn_type"] == "search" and st["txn_status"] == "succ", st
        t = _sent(env, "/registry/sync/txn/status")["message"]["txnstatus_request"]
        assert t["attribute_type"] == "reference_id_list" and t["attribute_value"] == [ref], t
        # the 0.1 call is unchanged
        assert _one(cur, "SELECT dci_txn_status(%s, %s) ->> 'txn_type'", (src, txn)) == "search"
        sub = _one(cur, "SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        st = _one(cur, "SELECT dci_txn_status(%s, %s, 'subscribe')", (src, sub))
        assert st["txn_type"] == "subscribe" and st["subscription_codes"], st
        t = _sent(env, "/registry/sync/txn/status")["message"]["txnstatus_request"]
        assert t == dict(t, txn_type="subscribe", attribute_type="transaction_id", attribute_value=sub), t
        code_ = st["subscription_codes"][0]
        st = _one(cur, "SELECT dci_txn_status(%s, NULL, 'subscribe', subscription_codes => ARRAY[%s])", (src, code_))
        assert st["txn_type"] == "subscribe", st
        _error(cur, "DC007", "SELECT dci_txn_status(%s, NULL, 'subscribe', ARRAY['no-such-ref'])", (src,),
               "rjct.transaction_id.invalid")
        n = len(env.mock.stats()["dci_validation"])
        expect_error(cur, "22023", "SELECT dci_txn_status(%s, %s, 'notify')", (src, sub))
        expect_error(cur, "22023", "SELECT dci_txn_status(%s, %s, 'search', ARRAY['r'])", (src, sub))
        expect_error(cur, "22023", "SELECT dci_txn_status(%s, NULL, 'search', ARRAY[]::text[])", (src,))
        expect_error(cur, "22023", "SELECT dci_txn_status(%s, NULL, 'search', ARRAY[NULL]::text[])", (src,))
        expect_error(cur, "22023", "SELECT dci_txn_status(%s, NULL)", (src,))
        assert len(env.mock.stats()["dci_validation"]) == n
    _valid(env)


# ---------------------------------------------------------------- options
def test_every_search_criteria_option_of_the_specs(env):
    src = _src(env, "sr", registry_type="ns:org:RegistryType:Social")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s, options => %s)",
                    (src, Json({"type": "UIN", "value": "1"}), Json({"response_entity": "Member"})))
        sc = _sent(env, "/registry/sync/search")["message"]["search_request"][0]["search_criteria"]
        assert sc["response_entity"] == "Member", sc
        assert list(sc).index("response_entity") == list(sc).index("query_type") + 1
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s, options => %s)",
                    (src, Json({"type": "UIN", "value": "1"}), Json({"response_entity": "Group"})))
        sc = _sent(env, "/registry/search")["message"]["search_request"][0]["search_criteria"]
        assert sc["response_entity"] == "Group"
        n = len(env.mock.stats()["dci_validation"])
        for bad in ({"response_entitie": "Member"}, {"response_entity": 1}, {"sort": {"a": 1}},
                    {"consent": "yes"}, {"version": "2.0.0"}, {"pagination": {}}):
            expect_error(cur, "22023", "SELECT dci_search(%s, 'idtype-value', %s, options => %s)",
                         (src, Json({"type": "UIN", "value": "1"}), Json(bad)))
        assert len(env.mock.stats()["dci_validation"]) == n
    _valid(env)


# ---------------------------------------------------------------- dialects
def test_dialect_column_is_checked(env):
    src = _src(env, "d")
    assert env.query("SELECT dialect FROM dci_data_source WHERE code = %s", (src,))[0][0] == "dci"
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for bad in ("OpenCRVS", "", "openg2p "):
            expect_error(cur, "23514", "UPDATE dci_data_source SET dialect = %s WHERE code = %s", (bad, src))
        cur.execute("UPDATE dci_data_source SET dialect = 'openg2p' WHERE code = %s", (src,))
        conn.commit()


def test_search_by_id_in_each_dialect(env):
    dci = _src(env, "dci", registry_type="ns:org:RegistryType:Civil")
    crvs = _src(env, "ocrvs", registry_type="ns:org:RegistryType:Civil", dialect="opencrvs",
                search_endpoint="/opencrvs/registry/sync/search", callback_uri="https://openspp.example.org/cb")
    g2p = _src(env, "og2p", registry_type="ns:org:RegistryType:Social", dialect="openg2p",
               search_endpoint="/openg2p/registry/sync/search")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT r FROM dci_search_by_id(%s, 'UIN', '847951632') AS r", (dci,))
        assert len(cur.fetchall()) == 1
        sc = _sent(env, "/registry/sync/search")["message"]["search_request"][0]["search_criteria"]
        assert sc["query_type"] == "idtype-value" and sc["query"] == {"type": "UIN", "value": "847951632"}

        cur.execute("SELECT r FROM dci_search_by_id(%s, 'DRN', 'D2024XYZ') AS r", (crvs,))
        rows = [r[0] for r in cur.fetchall()]
        assert rows == [{"id": "D2024XYZ", "field": "legalStatuses.REGISTERED.registrationNumber",
                         "name": {"given_name": "Amina"}}], rows
        env_ = _sent(env, "/opencrvs/registry/sync/search")
        assert "is_msg_encrypted" not in env_["header"]
        it = env_["message"]["search_request"][0]
        sc = it["search_criteria"]
        assert sc["query_type"] == "expression"
        assert sc["query"] == {"type": "ns:org:QueryType:expression", "value": {"expression": {"query": {
            "legalStatuses.REGISTERED.registrationNumber": {"type": "exact", "term": "D2024XYZ"}}}}}, sc
        assert sc["reg_event_type"] == "death" and sc["sort"][0]["attribute_name"] == "createdAt"
        assert it["locale"] == "eng" and it["consent"]["purpose"]["refUri"] == "https://openspp.example.org/cb"
        assert "consent" not in sc

        cur.execute("SELECT r FROM dci_search_by_id(%s, 'UIN', 'IND-NSR-0001') AS r", (g2p,))
        rows = [r[0] for r in cur.fetchall()]
        assert rows == [{"reg_id": "IND-NSR-0001", "is_poor": True, "name": "Amina Diallo"}], rows
        sc = _sent(env, "/openg2p/registry/sync/search")["message"]["search_request"][0]["search_criteria"]
        assert sc["query"]["value"]["expression"]["query"] == {"search_text": {"$eq": "IND-NSR-0001"}}
        assert sc["reg_type"] == sc["reg_record_type"] == "Individual"
        assert sc["consent"]["purpose"]["code"] == "ELIGIBILITY_CHECK" and sc["authorize"]["@type"] == "Authorize"
        # OpenG2P's "not found" (REG-ERR-001) is no record, not a rejection ...
        cur.execute("SELECT count(*) FROM dci_search_by_id(%s, 'UIN', 'NOTFOUND')", (g2p,))
        assert cur.fetchone()[0] == 0
        # ... but any other rejection still is one
        _error(cur, "DC007", "SELECT count(*) FROM dci_search_by_id(%s, 'UIN', 'RJCT')", (g2p,),
               "rjct.reference_id.invalid")
    _valid(env)


def test_batch_and_subscribe_in_a_dialect(env):
    g2p = _src(env, "og2p", dialect="openg2p", search_endpoint="/openg2p/registry/sync/search")
    crvs = _src(env, "ocrvs", registry_type="ns:org:RegistryType:Civil", dialect="opencrvs",
                search_endpoint="/opencrvs/registry/sync/search")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT id_value, status, jsonb_array_length(records) FROM dci_search_by_ids(%s, 'UIN', %s)",
                    (g2p, ["A-1", "NOTFOUND", "A-3"]))
        assert cur.fetchall() == [("A-1", "succ", 1), ("NOTFOUND", "succ", 0), ("A-3", "succ", 1)]
        cur.execute("SELECT ord, status FROM dci_search_by_ids(%s, 'BRN', %s)", (crvs, ["B-1", "B-2"]))
        assert cur.fetchall() == [(1, "succ"), (2, "succ")]
        sc = _sent(env, "/opencrvs/registry/sync/search")["message"]["search_request"][1]["search_criteria"]
        assert sc["reg_event_type"] == "birth"
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s, options => %s) -> 'status'",
                    (crvs, Json({"type": "MRN", "value": "M-1"}), Json({"reg_event_type": "MARRIAGE"})))
        sc = _sent(env, "/opencrvs/registry/sync/search")["message"]["search_request"][0]["search_criteria"]
        assert sc["reg_event_type"] == "marriage"
        cur.execute("SELECT dci_subscribe(%s, 'BIRTH')", (crvs,))
        crit = _sent(env, "/registry/subscribe")["message"]["subscribe_request"][0]["subscribe_criteria"]
        assert crit["reg_event_type"] == "birth", crit
    _valid(env)


def test_a_registry_answering_in_the_wrong_dialect(env):
    """REG-ERR-001 means "no record" only from an openg2p source; a standard
    source pointed at an OpenG2P registry sends the standard form, which the
    OpenG2P registry refuses (and the mock records the violation)."""
    dci = _src(env, "dci", search_endpoint="/openg2p/registry/sync/search")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _error(cur, "DC007", "SELECT count(*) FROM dci_search_by_id(%s, 'UIN', 'NOTFOUND')", (dci,),
               "rjct.request.invalid")
    v = env.mock.stats()["dci_validation"]
    assert v and not v[-1]["ok"] and any("search_text" in e for e in v[-1]["errors"]), v


# ---------------------------------------------------------------- privileges
def test_new_functions_need_grants(env):
    src = _src(env, "dr")
    role = code("r_endpoints")
    env.query("CREATE ROLE %s LOGIN" % role)
    try:
        with closing(env.connect(user=role)) as conn:
            cur = conn.cursor()
            for sql in ("SELECT dci_send(%s, '/registry/sync/disabled', 'search', '{}')",
                        "SELECT dci_disabled(%s, '{}')", "SELECT dci_enrolled(%s, '{}')",
                        "SELECT dci_disability_support(%s, '{}')", "SELECT dci_disability_details(%s, '{}')",
                        "SELECT dci_enrollment_updates(%s, '[{}]')", "SELECT dci_txn_status(%s, 'x')",
                        "SELECT dci_txn_status(%s, 'x', 'subscribe')"):
                expect_error(cur, "42501", sql, (src,))
                conn.rollback()
        env.query("GRANT EXECUTE ON FUNCTION dci_disabled(text, jsonb, text) TO %s" % role)
        with closing(env.connect(user=role)) as conn:
            assert _one(conn.cursor(), "SELECT dci_disabled(%s, %s) ->> 'disabled_status'",
                        (src, Json(QUERY))) == "yes"
    finally:
        env.query("DROP OWNED BY %s" % role)
        env.query("DROP ROLE %s" % role)
    assert not env.mock.stats()["requests"].get("/registry/sync/get-disability-support")


# ---------------------------------------------------------------- README examples, verbatim
README_DR = '''\
self.env.cr.execute(
    "SELECT dci_disabled(%s, %s) ->> 'disabled_status'",
    ("dr", Json({"member.member_identifier": {"eq": partner.national_id}})),
)
is_disabled = self.env.cr.fetchone()[0] == "yes"
self.env.cr.execute(
    """SELECT d ->> 'impairment_type', d ->> 'impairment_level'
         FROM jsonb_array_elements(dci_disability_details(%s, %s) -> 'data' -> 'reg_records') AS r,
              jsonb_array_elements(r -> 'disability_details') AS d""",
    ("dr", Json({"member.member_identifier": {"eq": partner.national_id}})),
)
impairments = self.env.cr.fetchall()          # [("Physical and movement related functions", "Severe ..."), ...]
'''

README_IBR = '''\
self.env.cr.execute(
    "SELECT dci_enrolled(%s, %s, response_entity => 'Member') ->> 'enrolled_status'",
    ("ibr", Json({"person_identifier": {"eq": partner.national_id},
                  "programme_identifier.program.programme_identifier": {"eq": program.code}})),
)
already_enrolled = self.env.cr.fetchone()[0] == "yes"
self.env.cr.execute(
    "SELECT dci_enrollment_updates(%s, %s) -> 'enrolled_response'",
    ("ibr", Json([{"identifier": [{"identifier_type": "UIN", "identifier_value": partner.national_id}],
                   "programme": program.code, "enrolment_date": fields.Date.today().isoformat()}])),
)
receipts = self.env.cr.fetchone()[0]          # [{"reference_id": ..., "status": "succ", ...}]
'''


def _odoo(cur, snippet, **names):
    """Run a README snippet with `self.env.cr` a psycopg2 cursor, as in an Odoo model."""
    import os, types
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")) as f:
        assert snippet in f.read(), "README.md no longer holds this example:\n" + snippet
    ns = dict(names, self=types.SimpleNamespace(env=types.SimpleNamespace(cr=cur)), Json=Json)
    exec(compile(snippet, "README.md example", "exec"), ns)
    return ns


def test_readme_examples_verbatim(env):
    import datetime, types
    env.add_source("dr", registry_type="ns:org:RegistryType:DR", sender_id="openspp.example.org")
    env.add_source("ibr", registry_type="ns:org:RegistryType:IBR", sender_id="openspp.example.org")
    partner = types.SimpleNamespace(national_id="847951632")
    fields = types.SimpleNamespace(Date=types.SimpleNamespace(today=lambda: datetime.date(2026, 12, 1)))
    with closing(env.connect(autocommit=False)) as conn:          # Odoo runs in a transaction
        cur = conn.cursor()
        ns = _odoo(cur, README_DR, partner=partner)
        assert ns["is_disabled"] is True
        assert ns["impairments"] == [("Physical and movement related functions", "Severe impairment or difficulty")]
        assert _sent(env, DISABLED)["message"]["disabled_criteria"]["query"] == {
            "member.member_identifier": {"eq": "847951632"}}
        assert _odoo(cur, README_DR, partner=types.SimpleNamespace(national_id="ABLE"))["is_disabled"] is False
        ns = _odoo(cur, README_IBR, partner=partner, program=types.SimpleNamespace(code="DCI001"), fields=fields)
        assert ns["already_enrolled"] is True and ns["receipts"][0]["status"] == "succ", ns["receipts"]
        crit = _sent(env, ENROLLED)["message"]["enrolled_criteria"]
        assert crit["response_entity"] == "Member" and crit["query"]["person_identifier"] == {"eq": "847951632"}
        ben = _sent(env, UPDATES)["message"]["enrolled_updates"]["beneficiaries"][0]
        assert ben["programme"] == "DCI001" and ben["enrolment_date"] == "2026-12-01", ben
        conn.commit()
    _valid(env, expect=6)


# ---------------------------------------------------------------- upgrade from 0.1
def test_upgrade_from_0_1_keeps_txn_status_grants(env):
    """dci_txn_status gains trailing parameters: the upgrade drops and creates
    it again, carrying over the EXECUTE grants given on the 0.1 functions."""
    role, db = code("r_up14"), code("up14")
    admin = env.cluster.connect()
    admin.cursor().execute("CREATE DATABASE %s" % db)
    admin.cursor().execute("CREATE ROLE %s LOGIN" % role)
    try:
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
            cur.execute("GRANT USAGE ON SCHEMA public TO %s" % role)
            cur.execute("GRANT EXECUTE ON FUNCTION dci_txn_status(text, text) TO %s WITH GRANT OPTION" % role)
            cur.execute("ALTER EXTENSION dci_client UPDATE")
            cur.execute("SELECT has_function_privilege(%s, 'dci_txn_status(text, text, text, text[], text, text[])', 'EXECUTE'), "
                        "has_function_privilege(%s, 'dci_txn_status(integer, text, text, text[], text, text[])', 'EXECUTE'), "
                        "has_function_privilege('public', 'dci_txn_status(text, text, text, text[], text, text[])', 'EXECUTE')",
                        (role, role))
            assert cur.fetchone() == (True, False, False)
            cur.execute("SELECT count(*) FROM pg_proc WHERE proname = 'dci_txn_status'")
            assert cur.fetchone() == (2,)
            # still one member of the extension each, and the column is there with its default
            cur.execute("SELECT count(*) FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid "
                        "WHERE p.proname = 'dci_txn_status' AND d.deptype = 'e'")
            assert cur.fetchone() == (2,)
            cur.execute("SELECT column_default FROM information_schema.columns "
                        "WHERE table_name = 'dci_data_source' AND column_name = 'dialect'")
            assert cur.fetchone() == ("'dci'::text",)
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        admin.cursor().execute("DROP ROLE IF EXISTS %s" % role)
        admin.close()


def test_hostile_answers_to_domain_calls(env):
    src = _src(env, "dr")
    hdr = {"message_id": "1", "message_ts": "2026-01-01T00:00:00Z", "action": "on-search", "status": "succ"}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for body, pgcode, needle in (
                ({"header": hdr, "message": {"disabled_response": "yes"}}, "DC006", "no disabled_response item"),
                ({"header": hdr, "message": {"disabled_response": [1, 2]}}, "DC006", "no disabled_response item"),
                ({"header": hdr, "message": {"disabled_response": []}}, "DC006", "no disabled_response item"),
                ({"header": hdr, "message": []}, "DC006", "no message object"),
                ({"ack_status": "NACK"}, "DC007", "NACK"),
                ({"message": {"ack_status": "MAYBE"}}, "DC006", "no acknowledgement"),
                ({"header": dict(hdr, status="rjct", status_reason_code="rjct.version.invalid"), "message": {}},
                 "DC007", "rjct.version.invalid"),
                ({"header": hdr, "message": {"disabled_response": [
                    {"status": "rjct", "status_reason_code": "REG-ERR-001", "status_reason_message": "x"}]}},
                 "DC007", "REG-ERR-001")):      # "no record" only in the openg2p dialect
            env.mock.fault(DISABLED, "status", status=200, body=body)
            _error(cur, pgcode, "SELECT dci_disabled(%s, %s)", (src, Json(QUERY)), needle)
        # a partly rejected list is returned, each item with its status
        env.mock.fault("/registry/sync/enrolled", "status", status=200, body={"transaction_id": "t", "enrolled_response": [
            {"status": "rjct", "status_reason_code": "rjct.x"}, {"status": "succ", "enrolled_status": "no"}]})
        msg = _one(cur, "SELECT dci_send(%s, '/registry/sync/enrolled', 'search', %s)",
                   (src, Json({"enrolled_criteria": {"query_type": "expression", "query": {"a": {"eq": "b"}}}})))
        assert [i["status"] for i in msg["enrolled_response"]] == ["rjct", "succ"], msg


def test_signed_answers_of_domain_endpoints_are_verified(env):
    import os
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing",
                           "ed25519_public.pem")) as f:
        pub = f.read()
    ok = _src(env, "drs", registry_public_key=pub, extra_headers=Json({"X-Mock-Sign": "ed25519"}))
    bad = _src(env, "drt", registry_public_key=pub, extra_headers=Json({"X-Mock-Sign": "tamper"}))
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        assert _one(cur, "SELECT dci_disabled(%s, %s) ->> 'disabled_status'", (ok, Json(QUERY))) == "yes"
        expect_error(cur, "DC008", "SELECT dci_disabled(%s, %s)", (bad, Json(QUERY)))
        expect_error(cur, "DC008", "SELECT dci_send(%s, %s, 'search', %s)",
                     (bad, DISABLED, Json({"disabled_criteria": {"query_type": "expression", "query": QUERY}})))


def test_txn_status_async_by_reference_id_and_for_a_subscription(env):
    """The asynchronous form (/registry/txn/status, answered by txn-on-status
    through dci_receive) takes the same arguments: by reference id, and about a
    subscribe transaction."""
    from test_inbound import Receiver, _worker_role
    _worker_role(env.cluster)
    rx = Receiver(env.cluster)
    try:
        src = _src(env, "crvsasync", registry_type="ns:org:RegistryType:Civil")
        env.query("UPDATE dci_data_source SET callback_uri = %s WHERE code = %s", (rx.url + src, src))
        env.mock._ctl("/callbacks", {"enabled": True})
        with closing(env.connect()) as conn:
            cur = conn.cursor()
            _one(cur, "SELECT dci_search_async(%s, 'idtype-value', %s)",
                 (src, Json({"type": "UIN", "value": "847951632"})))
            ref = _sent(env, "/registry/search")["message"]["search_request"][0]["reference_id"]
            t1 = _one(cur, "SELECT dci_txn_status_async(%s, NULL, reference_ids => ARRAY[%s])", (src, ref))
            t = _sent(env, "/registry/txn/status")["message"]["txnstatus_request"]
            assert t["attribute_type"] == "reference_id_list" and t["attribute_value"] == [ref], t
            st = _one(cur, "SELECT dci_await(%s, %s, 20000)", (src, t1))
            assert st and st["txn_type"] == "search" and st["txn_status"] == "succ", st
            sub = _one(cur, "SELECT dci_subscribe(%s, 'REGISTER')", (src,))
            t2 = _one(cur, "SELECT dci_txn_status_async(%s, %s, 'subscribe')", (src, sub))
            t = _sent(env, "/registry/txn/status")["message"]["txnstatus_request"]
            assert t == dict(t, txn_type="subscribe", attribute_type="transaction_id", attribute_value=sub), t
            st = _one(cur, "SELECT dci_await(%s, %s, 20000)", (src, t2))
            assert st and st["txn_type"] == "subscribe" and st["subscription_codes"], st
            expect_error(cur, "22023", "SELECT dci_txn_status_async(%s, %s, 'notify')", (src, sub))
        states = env.query("SELECT t.transaction_id, t.state FROM dci_transaction t JOIN dci_data_source s "
                           "ON s.id = t.source_id WHERE s.code = %s AND t.action = 'txn-status'", (src,))
        assert sorted(states) == sorted([(t1, "completed"), (t2, "completed")]), states
        _valid(env)
    finally:
        env.mock._ctl("/callbacks", {"enabled": False})
        rx.close()
