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


# ---- a domain function's answer is its first item: a rejected one is DC007 ----
def test_domain_function_first_item_rejected_is_dc007(env):
    """One request is sent, so the first item is its answer: a registry that
    puts a rejected item first and a succ one after must not have the
    rejection returned as if it were the status (README: DC007 when it is
    rejected)."""
    src = _src(env, "atk14rj")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(DISABLED, "status", status=200, count=1, body={"header": HDR, "message": {
            "transaction_id": "t", "disabled_response": [
                {"status": "rjct", "status_reason_code": "rjct.reference_id.invalid",
                 "status_reason_message": "no such member"},
                {"status": "succ", "disabled_status": "yes"}]}})
        e = expect_error(cur, "DC007", "SELECT dci_disabled(%s, %s)", (src, Json(QUERY)))
        assert "rjct.reference_id.invalid" in str(e) and "no such member" in str(e), e
        # through dci_send the list is returned as it came, each item with its status
        env.mock.fault(DISABLED, "status", status=200, count=1, body={"header": HDR, "message": {
            "transaction_id": "t", "disabled_response": [
                {"status": "rjct", "status_reason_code": "rjct.x"}, {"status": "succ", "disabled_status": "yes"}]}})
        msg = _one(cur, "SELECT dci_send(%s, %s, 'search', %s)",
                   (src, DISABLED, Json({"disabled_criteria": {"query_type": "expression", "query": QUERY}})))
        assert [i["status"] for i in msg["disabled_response"]] == ["rjct", "succ"]


# ---- an asynchronous endpoint is never retried like a read ----
def test_dci_send_async_endpoints_are_not_retried_as_reads(env):
    """/registry/search and /registry/txn/status answer with an
    acknowledgement and call back: a second POST after a reset connection
    would start the search (and its callback) twice.  dci_search_async
    treats them as writes; dci_send with the action 'search' must too."""
    src = _src(env, "atk14rt", registry_type="ns:org:RegistryType:Social")
    search = {"search_request": [{"reference_id": "r-1", "timestamp": "2026-01-01T00:00:00Z",
                                  "search_criteria": {"query_type": "idtype-value",
                                                      "query": {"type": "UIN", "value": "1"}}}]}
    status = {"txnstatus_request": {"reference_id": "r-2", "txn_type": "search",
                                    "attribute_type": "transaction_id", "attribute_value": "t-1"}}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for path, action, msg in (("/registry/search", "search", search),
                                  ("/registry/txn/status", "txn-status", status)):
            before = _requests(env, path)
            env.mock.fault(path, "reset", count=1)
            expect_error(cur, "DC003", "SELECT dci_send(%s, %s, %s, %s)", (src, path, action, Json(msg)))
            assert _requests(env, path) - before == 1, path
        # the sync forms are reads: retried
        before = _requests(env, "/registry/sync/search")
        env.mock.fault("/registry/sync/search", "reset", count=1)
        _one(cur, "SELECT dci_send(%s, '/registry/sync/search', 'search', %s)", (src, Json(search)))
        assert _requests(env, "/registry/sync/search") - before == 2


# ---- bad input gets 22023 before anything is sent ----
def test_bad_input_is_22023_before_sending(env):
    src = _src(env, "atk14in", registry_type="ns:org:RegistryType:Civil")
    long = "x" * 100
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        n = len(env.mock.stats()["dci_validation"])
        before = env.mock.stats()["requests"]
        for sql, params in (
                # the specs' correlation_id and subscription codes are at most 99 characters
                ("SELECT dci_txn_status(%s, NULL, correlation_id => %s)", (src, long)),
                ("SELECT dci_txn_status(%s, NULL, 'subscribe', subscription_codes => ARRAY[%s])", (src, long)),
                # response_entity is Group or Member (EnrolledRequest, Social search_criteria)
                ("SELECT dci_enrolled(%s, %s, response_entity => 'Beneficiary')", (src, Json(QUERY))),
                ("SELECT dci_enrolled(%s, %s, response_entity => '')", (src, Json(QUERY))),
                ("SELECT dci_search(%s, 'idtype-value', %s, options => %s)",
                 (src, Json({"type": "UIN", "value": "1"}), Json({"response_entity": "Household"}))),
                # dci_send's own transaction_id: a string of 1 to 99 characters, as every spec's
                ("SELECT dci_send(%s, %s, 'search', %s)", (src, DISABLED, Json({"transaction_id": 7}))),
                ("SELECT dci_send(%s, %s, 'search', %s)", (src, DISABLED, Json({"transaction_id": {"a": 1}}))),
                ("SELECT dci_send(%s, %s, 'search', %s)", (src, DISABLED, Json({"transaction_id": ""}))),
                ("SELECT dci_send(%s, %s, 'search', %s)", (src, DISABLED, Json({"transaction_id": long})))):
            expect_error(cur, "22023", sql, params)
        assert len(env.mock.stats()["dci_validation"]) == n
        assert env.mock.stats()["requests"] == before


# ---- hostile registries ----
def test_hostile_answers_to_dci_send(env):
    import os
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing",
                           "ed25519_public.pem")) as f:
        pub = f.read()
    src = _src(env, "atk14ho")
    signed = _src(env, "atk14hs", registry_public_key=pub)
    crit = Json({"enrolled_criteria": {"query_type": "expression", "query": {"a": {"eq": "b"}}}})
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        # a registry key set: an answer without any signature (here a bare one, as enrolled may be) is DC008
        expect_error(cur, "DC008", "SELECT dci_enrolled(%s, %s)", (signed, Json(QUERY)))
        expect_error(cur, "DC008", "SELECT dci_send(%s, %s, 'search', %s)", (signed, ENROLLED, crit))
        # in the JWS format too, and with a signature that is no JWS
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "signing",
                               "rsa_public.pem")) as f:
            jws = _src(env, "atk14hj", registry_public_key=f.read(), signature_format="jws")
        expect_error(cur, "DC008", "SELECT dci_enrolled(%s, %s)", (jws, Json(QUERY)))
        for body in ({"signature": "a.b.c", "enrolled_response": [{"status": "succ", "enrolled_status": "yes"}]},
                     {"signature": "", "header": HDR, "message": {"enrolled_response": [{"status": "succ"}]}}):
            env.mock.fault(ENROLLED, "status", status=200, count=1, body=body)
            expect_error(cur, "DC008", "SELECT dci_enrolled(%s, %s)", (jws, Json(QUERY)))
            env.mock.fault(ENROLLED, "status", status=200, count=1, body=body)
            expect_error(cur, "DC008", "SELECT dci_enrolled(%s, %s)", (signed, Json(QUERY)))
        for mode, pgcode in (("invalid_utf8", "22021"), ("nul", "22021"), ("nonjson", "DC006")):
            env.mock.fault(ENROLLED, mode, count=1)
            expect_error(cur, pgcode, "SELECT dci_send(%s, %s, 'search', %s)", (src, ENROLLED, crit))
        for body in ('"just a string"', "[1, 2]", "null", "1"):
            env.mock.fault(ENROLLED, "status", status=200, count=1, body=body)
            expect_error(cur, "DC006", "SELECT dci_send(%s, %s, 'search', %s)", (src, ENROLLED, crit))
        # ERR at the root of a bare answer, and in the message
        for body in ({"ack_status": "ERR", "error": {"code": "err.x", "message": "boom"}},
                     {"header": HDR, "message": {"ack_status": "ERR", "error": {"code": "err.x", "message": "boom"}}}):
            env.mock.fault(ENROLLED, "status", status=200, count=1, body=body)
            expect_error(cur, "DC007", "SELECT dci_send(%s, %s, 'search', %s)", (src, ENROLLED, crit))
        # a huge list is read (normalised) without trouble
        env.mock.fault(ENROLLED, "status", status=200, count=1, body={"enrolled_response": [
            {"status": "succ", "enrolled_status": "no", "n": i} for i in range(20000)]})
        msg = _one(cur, "SELECT dci_send(%s, %s, 'search', %s)", (src, ENROLLED, crit))
        assert len(msg["enrolled_response"]) == 20000


# ---- what the caller wrote is quoted, not echoed raw, in errors and the log ----
def test_hostile_endpoint_and_action_are_quoted_in_errors(env):
    """An endpoint, action, query_type, response_entity or txn_type with CR/LF would forge lines in the server log
    and a huge one would be copied whole into the error: quoted as
    dci_request quotes its path (control characters blanked, bounded)."""
    src = _src(env, "atk14q")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for sql, arg in (("SELECT dci_send(%s, %s, 'search', '{}')", "/a\r\n2026-01-01 LOG:  forged"),
                         ("SELECT dci_send(%s, %s, 'search', '{}')", "/a/../" + "x" * 200000),
                         ("SELECT dci_send(%s, '/registry/sync/disabled', %s, '{}')", "x\r\nLOG:  forged"),
                         ("SELECT dci_send(%s, '/registry/sync/disabled', %s, '{}')", "y" * 200000),
                         ("SELECT dci_disabled(%s, '{}', %s)", "expression\r\nLOG:  forged"),
                         ("SELECT dci_enrolled(%s, '{}', response_entity => %s)", "Member\r\nLOG:  forged"),
                         ("SELECT dci_txn_status(%s, 't', %s)", "search\r\nLOG:  forged" + "z" * 200000)):
            e = expect_error(cur, "22023", sql, (src, arg))
            text = (e.diag.message_primary or "") + (e.diag.message_detail or "")
            assert "\r" not in text and "\n" not in text, repr(text[:200])
            assert len(text) < 2000, len(text)


# ---- the upgrade carries over grants of every shape ----
def test_upgrade_carries_grants_of_odd_roles_and_the_integer_overload(env):
    """Grants on 0.1's dci_txn_status to a role whose name needs quoting, to
    PUBLIC, on the integer overload and passed on by a grantee holding the
    grant option: each is found on the new function after ALTER EXTENSION
    UPDATE, and nothing more."""
    db = code("up14b")
    odd, other, second = 'Odoo "DCI"; worker', code("r14_other"), code("r14_second")
    admin = env.cluster.connect()
    admin.cursor().execute("CREATE DATABASE %s" % db)
    for r in (odd, other, second):
        admin.cursor().execute('CREATE ROLE "%s" LOGIN' % r.replace('"', '""'))
    try:
        with closing(env.cluster.connect(dbname=db)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
            cur.execute('GRANT EXECUTE ON FUNCTION dci_txn_status(integer, text) TO "%s"' % odd.replace('"', '""'))
            cur.execute("GRANT EXECUTE ON FUNCTION dci_txn_status(text, text) TO %s WITH GRANT OPTION" % other)
            cur.execute("SET ROLE %s" % other)
            cur.execute("GRANT EXECUTE ON FUNCTION dci_txn_status(text, text) TO %s" % second)
            cur.execute("RESET ROLE")
            cur.execute("ALTER EXTENSION dci_client UPDATE")
            new_t = "dci_txn_status(text, text, text, text[], text, text[])"
            new_i = "dci_txn_status(integer, text, text, text[], text, text[])"
            cur.execute("SELECT has_function_privilege(%s, %s, 'EXECUTE'), has_function_privilege(%s, %s, 'EXECUTE'), "
                        "has_function_privilege(%s, %s, 'EXECUTE'), has_function_privilege(%s, %s, 'EXECUTE WITH GRANT OPTION'), "
                        "has_function_privilege(%s, %s, 'EXECUTE'), has_function_privilege('public', %s, 'EXECUTE')",
                        (odd, new_i, odd, new_t, other, new_t, other, new_t, second, new_t, new_i))
            assert cur.fetchone() == (True, False, True, True, True, False)
    finally:
        admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        for r in (second, other, odd):
            admin.cursor().execute('DROP ROLE IF EXISTS "%s"' % r.replace('"', '""'))
        admin.close()


def test_dci_send_hands_back_no_credential(env):
    """An echoing path under base_url (any path is reachable through
    dci_send) returns the bearer token in every spelling: redacted."""
    from support.util import remember
    src = _src(env, "atk14cr")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        got = json.dumps(_one(cur, "SELECT dci_send(%s, '/echo-auth', 'search', '{}')", (src,)))
        token = remember(env.query("SELECT dci_get_token(%s)", (src,))[0][0])
        assert token and token not in got and "[redacted]" in got, got[:300]
        assert json.loads(got)["raw"] == "Bearer [redacted]"


# ---- OpenG2P's "no record" belongs to searches, not to receipts ----
def test_openg2p_not_found_is_no_record_only_in_search_answers(env):
    """REG-ERR-001 is "no record" in an OpenG2P search_response; an
    enrolment update rejected with it was not applied, and must not come
    back as succ (nor a disability status as a search item)."""
    UPDATES = "/registry/sync/enrollment/updates"
    src = _src(env, "atk14g2p", registry_type="ns:org:RegistryType:IBR", dialect="openg2p")
    rj = {"status": "rjct", "status_reason_code": "REG-ERR-001", "status_reason_message": "beneficiary not found"}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        env.mock.fault(UPDATES, "status", status=200, count=1, body={"transaction_id": "t", "enrolled_response": [rj]})
        e = expect_error(cur, "DC007", "SELECT dci_enrollment_updates(%s, %s)", (src, Json([{"id": 1}])))
        assert "REG-ERR-001" in str(e)
        env.mock.fault(UPDATES, "status", status=200, count=1, body={"transaction_id": "t", "enrolled_response": [
            rj, {"status": "succ"}]})
        msg = _one(cur, "SELECT dci_enrollment_updates(%s, %s)", (src, Json([{"id": 1}, {"id": 2}])))
        assert [i["status"] for i in msg["enrolled_response"]] == ["rjct", "succ"], msg
        env.mock.fault(DISABLED, "status", status=200, count=1, body={"header": HDR, "message": {
            "transaction_id": "t", "disabled_response": [rj]}})
        expect_error(cur, "DC007", "SELECT dci_disabled(%s, %s)", (src, Json(QUERY)))
        # a search answer through dci_send keeps the dialect's reading
        env.mock.fault("/registry/sync/search", "status", status=200, count=1, body={"header": HDR, "message": {
            "transaction_id": "t", "search_response": [rj]}})
        msg = _one(cur, "SELECT dci_send(%s, '/registry/sync/search', 'search', '{}')", (src,))
        assert msg["search_response"] == [{"status": "succ", "data": {"reg_records": []}}], msg


# ---- grants carried over by the upgrade survive pg_dump ----
def test_upgraded_txn_status_grants_survive_dump_and_restore(env):
    """Grants made inside an extension script are recorded as the
    extension's initial privileges, which pg_dump leaves out: the grant on
    0.1's dci_txn_status that the upgrade carries over must still be in
    the dump (Odoo's backup), so a restored database keeps it."""
    import os, subprocess, tempfile
    role, src_db, dst_db = code("r14_dump"), code("up14d"), code("up14r")
    admin = env.cluster.connect()
    admin.cursor().execute("CREATE ROLE %s LOGIN" % role)
    admin.cursor().execute("CREATE DATABASE %s" % src_db)
    admin.cursor().execute("CREATE DATABASE %s" % dst_db)

    def pg(tool, *args):
        r = subprocess.run([os.path.join(env.cluster.bindir, tool), "-h", env.cluster.host, "-p",
                            str(env.cluster.port), "-U", "postgres"] + list(args),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "%s failed: %s%s" % (tool, r.stdout, r.stderr)
        return r.stdout

    try:
        with closing(env.cluster.connect(dbname=src_db)) as conn:
            cur = conn.cursor()
            cur.execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
            cur.execute("GRANT EXECUTE ON FUNCTION dci_txn_status(text, text) TO %s" % role)
            cur.execute("ALTER EXTENSION dci_client UPDATE")
        with tempfile.TemporaryDirectory() as tmp:
            dump = os.path.join(tmp, "odoo.dump")
            pg("pg_dump", "-Fc", "-f", dump, src_db)
            pg("pg_restore", "--exit-on-error", "-d", dst_db, dump)
        for db in (src_db, dst_db):
            with closing(env.cluster.connect(dbname=db)) as conn:
                cur = conn.cursor()
                cur.execute("SELECT has_function_privilege(%s, "
                            "'dci_txn_status(text, text, text, text[], text, text[])', 'EXECUTE')", (role,))
                assert cur.fetchone() == (True,), db
    finally:
        for db in (src_db, dst_db):
            admin.cursor().execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % db)
        admin.cursor().execute("DROP ROLE IF EXISTS %s" % role)
        admin.close()


# ---- OpenCRVS: a national id is looked up on the person of the event searched ----
def test_opencrvs_national_id_follows_the_event(env):
    """OpenCRVS' gateway reads a national id as child.nid for birth and
    deceased.nid for any other event (dci-crvs-api: nidField =
    reg_event_type === 'birth' ? 'child.nid' : 'deceased.nid').  A death
    check by NID sent child.nid with reg_event_type death: no record, so a
    deceased beneficiary looked alive."""
    path = "/opencrvs/registry/sync/search"
    crvs = _src(env, "atk14crvs", registry_type="ns:org:RegistryType:Civil", dialect="opencrvs",
                search_endpoint=path)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for id_type, event, field in (("NID", "DEATH", "deceased.nid"), ("UIN", "death", "deceased.nid"),
                                      ("NID", None, "child.nid"), ("UIN", "Birth", "child.nid")):
            opts = {"reg_event_type": event} if event else {}
            cur.execute("SELECT dci_search(%s, 'idtype-value', %s, options => %s)",
                        (crvs, Json({"type": id_type, "value": "N-1"}), Json(opts)))
            sc = json.loads(env.mock.stats()["last_request"][path]["body"])["message"]["search_request"][0][
                "search_criteria"]
            assert sc["reg_event_type"] == (event or "birth").lower(), sc
            assert sc["query"]["value"]["expression"]["query"] == {
                "data": {field: {"type": "exact", "term": "N-1"}}}, (id_type, event, sc["query"])
