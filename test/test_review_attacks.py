#!/usr/bin/python3
"""The attacks of the issue-10 review, each performed for real: a calling
role stealing the token through an echoing registry, the database owner
hijacking name resolution, CR/LF header injection, echoed Basic
credentials, warm connections outliving a tightened allowed_hosts, header
floods past statement_timeout, a caller flooding the token endpoint,
invalid UTF-8 in the request log, a damaged row, the signing oracle and
path tricks.  Each test fails on the code before the fix."""
import base64, json, time
from contextlib import closing
from urllib.parse import quote

import psycopg2
from psycopg2.extras import Json

from support.env import CLIENT_ID, CLIENT_SECRET, expect_error
from support.util import TOKEN_PATH, code, remember, request, secret, session


def _spellings(value):
    """The ways an echoing registry may spell a credential back."""
    u_all = "".join("\\u%04X" % ord(c) for c in value)
    return [value, quote(value, safe=""), "".join("%%%02X" % b for b in value.encode()), u_all,
            u_all.lower(), base64.b64encode(value.encode()).decode()]


def _assert_absent(text, value, where):
    for s in _spellings(value):
        if len(s) >= 4:
            assert s not in text, "%s holds the credential (as %r): %s" % (where, s, text[:400])


def _caller_role(env, role, functions):
    with session(env) as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if not cur.fetchone():
            cur.execute("CREATE ROLE %s LOGIN" % role)
        for f in functions:
            cur.execute("GRANT EXECUTE ON FUNCTION %s TO %s" % (f, role))


# ---- 1 and 4: what a call hands back never holds a credential ----------------
def test_echoed_token_is_redacted_in_body_and_headers(env):
    src = code("atk_echo")
    env.add_source(src)
    _caller_role(env, "atk_caller", ["dci_request(text, text, text, jsonb, jsonb)",
                                     "dci_get_token(text, boolean)"])
    with closing(env.connect(user="atk_caller")) as conn:
        cur = conn.cursor()
        r = request(cur, src, "GET", "/echo-auth")
        assert r["status"] == 200, r
        plain = request(cur, src, "GET", "/echo")
    token = remember(env.query("SELECT dci_get_token(%s)", (src,))[0][0])
    text = r["body"] + json.dumps(r["headers"])
    _assert_absent(text, token, "dci_request's answer")
    _assert_absent(plain["body"], token, "the /echo body")
    # the spellings were really there to redact: the mock sent each of them
    assert text.count("[redacted]") >= 7, text
    assert "Bearer [redacted]" in r["body"] and "Bearer [redacted]" in r["headers"]["x-echo-authorization"]


def test_echoed_bearer_token_and_json_escapes(env):
    src = code("atk_bearer")
    tok = remember("bt-" + secret("")[:12] + "/a+b=")      # '/', '+', '=' as base64 and URLs spell them
    env.mock.set_bearer(env.mock.stats()["bearer_tokens"] + [tok])
    env.add_source(src, auth_type="bearer", bearer_token=tok, auth_url=None, client_id=None,
                   client_secret=None)
    with session(env) as cur:
        r = request(cur, src, "GET", "/echo-auth")
    assert r["status"] == 200, r
    _assert_absent(r["body"] + json.dumps(r["headers"]), tok, "the bearer echo")
    echoed = json.loads(r["body"])
    for k in ("u_escaped", "url", "url_all", "b64", "b64_slash"):     # b64_slash: '/' written as '\/'
        assert echoed[k] == "[redacted]", (k, echoed[k])


def test_echoed_basic_credentials_in_token_error(env):
    src = code("atk_basic")
    sec = remember(secret())
    env.mock.add_client("atk-basic-client", sec)
    env.add_source(src, client_id="atk-basic-client", client_secret=sec, credential_location="basic")
    b64 = remember(base64.b64encode(("atk-basic-client:" + sec).encode()).decode())
    env.mock.fault(TOKEN_PATH, "token_echo", count=3)
    with session(env) as cur:
        e = expect_error(cur, "DC002", "SELECT dci_get_token(%s)", (src,))
        text = "%s %s" % (e.pgerror, e.diag.message_detail)
        assert "invalid_client" in text and "[redacted]" in text, text
        _assert_absent(text, b64, "the DC002 error")
        _assert_absent(text, sec, "the DC002 error")
        cur.execute("SELECT step, ok, detail FROM dci_test_connection(%s)", (src,))
        rows = cur.fetchall()
        cur.execute("SELECT last_error FROM dci_data_source WHERE code = %s", (src,))
        last = cur.fetchone()[0] or ""
    for row in rows:
        _assert_absent(str(row), b64, "dci_test_connection")
    _assert_absent(last, b64, "last_error")
    assert "[redacted]" in last, last


# ---- 2: the database owner cannot redirect what a superuser runs --------------
def test_database_owner_cannot_hijack_name_resolution(env):
    with session(env) as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'atk_owner'")
        if not cur.fetchone():
            cur.execute("CREATE ROLE atk_owner LOGIN")
        cur.execute("DROP DATABASE IF EXISTS atk_hijack")
        cur.execute("CREATE DATABASE atk_hijack OWNER atk_owner")
    with closing(env.connect(dbname="atk_hijack")) as conn:
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION dci_client CASCADE")
        cur.execute("INSERT INTO dci_data_source (code, name, base_url, auth_url, client_id, client_secret,"
                    " sender_id) VALUES ('victim', 'Victim', %s, %s, %s, %s, 'openspp.test')",
                    (env.mock.http_url, env.mock.token_url, CLIENT_ID, CLIENT_SECRET))
    # the owner of the database owns "public": rename it, plant look-alikes everywhere
    with closing(env.connect(dbname="atk_hijack", user="atk_owner")) as conn:
        cur = conn.cursor()
        cur.execute("ALTER SCHEMA public RENAME TO x")
        cur.execute("CREATE SCHEMA public")
        cur.execute("CREATE TABLE public.planted_calls (who text)")
        cur.execute("GRANT ALL ON public.planted_calls TO PUBLIC")
        cur.execute("CREATE TABLE public.dci_data_source (id int, code text, client_secret text,"
                    " bearer_token text, client_key text)")
        cur.execute("INSERT INTO public.dci_data_source VALUES (1, 'victim', 'x', 'x', 'x')")
        cur.execute("""CREATE FUNCTION public.planted() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN INSERT INTO public.planted_calls VALUES (current_user); RETURN NEW; END $$""")
        cur.execute("CREATE TRIGGER t BEFORE UPDATE ON public.dci_data_source FOR EACH ROW"
                    " EXECUTE FUNCTION public.planted()")
        for sig, ret in (("x.dci_search_records(text, varchar, jsonb)", "SETOF jsonb"),
                         ("public.dci_search_records(text, text, jsonb, text, integer, integer)", "SETOF jsonb"),
                         ("x.dci_secret_binding(varchar, varchar, varchar, boolean, varchar)", "text"),
                         ("public.dci_secret_binding(text, text, text, boolean, text)", "text"),
                         ("public.jsonb_build_object(text, text, text, text)", "jsonb")):
            cur.execute("CREATE FUNCTION %s RETURNS %s LANGUAGE sql AS $$ "
                        "INSERT INTO public.planted_calls VALUES (current_user) RETURNING NULL::%s $$"
                        % (sig, ret, ret.replace("SETOF ", "")))
    with closing(env.connect(dbname="atk_hijack")) as conn:      # a superuser uses the extension
        cur = conn.cursor()
        cur.execute("SET search_path = public, x")
        cur.execute("SELECT x.dci_clear_secret('victim', 'client_secret')")
        cur.execute("SELECT client_secret_set FROM x.dci_data_source WHERE code = 'victim'")
        assert cur.fetchone()[0] is False, "the real secret was not cleared"
        cur.execute("UPDATE x.dci_data_source SET client_secret = %s", (CLIENT_SECRET,))
        cur.execute("SELECT count(*) FROM x.dci_search_by_id('victim', 'UIN', 'U-1')")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT x.dci_reencrypt_secrets()")
        cur.execute("SELECT count(*) FROM public.planted_calls")
        assert cur.fetchone()[0] == 0, "planted code ran"
    with session(env) as cur:
        cur.execute("DROP DATABASE atk_hijack")


# ---- 3: CR/LF (and every control character) never reaches a header line -------
def test_control_characters_refused_in_header_values(env):
    src = code("atk_crlf")
    env.add_source(src)
    with session(env) as cur:
        expect_error(cur, "23514", "UPDATE dci_data_source SET auth_type = 'bearer',"
                     " bearer_token = %s WHERE code = %s", ("tok\r\nHost: evil", src), contains="bearer_token")
        expect_error(cur, "22023", "UPDATE dci_data_source SET extra_headers = %s WHERE code = %s",
                     (Json({"X-A": "v\x01w"}), src))
        expect_error(cur, "22023", "SET dci_client.user_agent = %s", ("ua\x01",))
        expect_error(cur, "22023", "SET dci_client.user_agent = %s", ("ua\rX-Evil: 1",))
        before = env.mock.stats()["requests"].get("/echo", 0)
        env.mock.fault(TOKEN_PATH, "token_value", count=1, token="tok-x\r\nX-Evil: 1")
        e = expect_error(cur, "DC002", "SELECT * FROM dci_request(%s, 'GET', '/echo')", (src,))
        assert "control characters" in str(e), str(e)
        assert env.mock.stats()["requests"].get("/echo", 0) == before, "a request went out"


# ---- 5: a tightened allowed_hosts holds for the very next request --------------
def _set_allowed_hosts(value):
    return "ALTER SYSTEM SET dci_client.allowed_hosts = %s" % ("DEFAULT" if value is None else
                                                                "'%s'" % value)


def test_tightened_allowed_hosts_closes_warm_connections(env):
    port = env.mock.http_url.rsplit(":", 1)[1]
    src = code("atk_hosts")
    env.add_source(src, base_url="http://localhost:%s" % port)
    admin = env.connect()
    try:
        acur = admin.cursor()
        acur.execute(_set_allowed_hosts("localhost, 127.0.0.1, ::1"))
        acur.execute("SELECT pg_reload_conf()")
        time.sleep(0.3)
        with session(env) as cur:
            cur.execute("SELECT 1")
            assert request(cur, src)["status"] == 200          # a kept-alive connection now
            before = env.mock.stats()["requests"].get("/echo", 0)
            # the name stays allowed, its loopback address no longer is
            acur.execute(_set_allowed_hosts("localhost"))
            acur.execute("SELECT pg_reload_conf()")
            time.sleep(0.3)
            cur.execute("SELECT 1")                              # the reload is taken here
            e = expect_error(cur, "DC001", "SELECT * FROM dci_request(%s, 'GET', '/echo')", (src,))
            assert "allowed_hosts" in str(e), str(e)
            assert env.mock.stats()["requests"].get("/echo", 0) == before, "the warm connection was used"
    finally:
        acur.execute(_set_allowed_hosts(None))
        acur.execute("SELECT pg_reload_conf()")
        admin.close()
        time.sleep(0.3)


# ---- 6: caller-sized header input is bounded and interruptible -----------------
def test_header_floods_are_refused(env):
    src = code("atk_hdrs")
    env.add_source(src)
    many = {"X-H-%d" % i: "v" for i in range(40000)}
    with session(env) as cur:
        cur.execute("SET statement_timeout = '300ms'")
        expect_error(cur, "22023", "UPDATE dci_data_source SET extra_headers = %s WHERE code = %s",
                     (Json(many), src), contains="at most")
        expect_error(cur, "22023", "SELECT * FROM dci_request(%s, 'GET', '/echo', NULL, %s)",
                     (src, Json(many)), contains="at most")
        expect_error(cur, "22023", "SELECT * FROM dci_request(%s, 'GET', '/echo', NULL, %s)",
                     (src, Json({"X-Big": "v" * 10000})))
        cur.execute("RESET statement_timeout")
        assert request(cur, src, headers={"X-H-%d" % i: "v" for i in range(90)})["status"] == 200


# ---- 7: no caller floods the token endpoint -----------------------------------
def test_caller_cannot_flood_the_token_endpoint(env):
    src = code("atk_flood")
    env.add_source(src)
    _caller_role(env, "atk_caller", ["dci_request(text, text, text, jsonb, jsonb)",
                                     "dci_get_token(text, boolean)"])
    with closing(env.connect(user="atk_caller")) as conn:
        cur = conn.cursor()
        request(cur, src)
        before = env.mock.stats()["token_requests"]
        cur.execute("SET dci_client.token_refresh_margin_s = 86400")
        for _ in range(50):
            assert request(cur, src)["status"] == 200
        for _ in range(20):
            cur.execute("SELECT dci_get_token(%s, force_refresh => true)", (src,))
        assert env.mock.stats()["token_requests"] - before == 0, env.mock.stats()["token_requests"] - before
        expect_error(cur, "42501", "SET dci_client.token_min_interval_ms = 0")
        time.sleep(1.1)                      # past the minimum interval a forced refresh fetches, once
        for _ in range(5):
            cur.execute("SELECT dci_get_token(%s, force_refresh => true)", (src,))
        assert env.mock.stats()["token_requests"] - before == 1


# ---- 8: truncated text stays valid UTF-8 ---------------------------------------
def test_request_log_cuts_on_character_boundaries(env):
    src = code("atk_utf8")
    env.add_source(src)
    with session(env) as cur:
        cur.execute("SET dci_client.log_requests = 'all'")
        request(cur, src, "GET", "/echo/" + "€" * 200)
        request(cur, src, "GET", "/nothing/" + "€" * 200)
        deadline = time.time() + 10
        while time.time() < deadline:
            cur.execute("SELECT count(*) FROM dci_request_log WHERE source = %s", (src,))
            if cur.fetchone()[0] >= 2:
                break
            time.sleep(0.1)
        cur.execute("SELECT path, error FROM dci_request_log WHERE source = %s", (src,))
        rows = cur.fetchall()
    assert len(rows) == 2 and all(p.endswith("€") for p, _ in rows), rows


# ---- 9: a damaged row is DC001, never a crash -----------------------------------
def test_damaged_row_gives_dc001(env):
    src = code("atk_null")
    env.add_source(src)
    with session(env) as cur:
        try:
            cur.execute("ALTER TABLE dci_data_source ALTER auth_type DROP NOT NULL,"
                        " ALTER credential_location DROP NOT NULL")
            cur.execute("UPDATE dci_data_source SET auth_type = NULL WHERE code = %s", (src,))
            e = expect_error(cur, "DC001", "SELECT * FROM dci_request(%s, 'GET', '/echo')", (src,))
            assert "auth_type" in str(e), str(e)
            cur.execute("UPDATE dci_data_source SET auth_type = 'oauth2', credential_location = NULL"
                        " WHERE code = %s", (src,))
            expect_error(cur, "DC001", "SELECT * FROM dci_request(%s, 'GET', '/echo')", (src,),
                         contains="credential_location")
            cur.execute("SELECT 1")                        # the backend survived
        finally:
            cur.execute("DELETE FROM dci_data_source WHERE code = %s", (src,))
            cur.execute("ALTER TABLE dci_data_source ALTER auth_type SET NOT NULL,"
                        " ALTER credential_location SET NOT NULL")


# ---- 10: signatures only for roles that may sign --------------------------------
def test_envelope_is_no_signing_oracle(env):
    src = code("atk_sign")
    inactive = code("atk_sign_off")
    with session(env) as cur:
        cur.execute("SELECT dci_generate_signing_key()")
        key = cur.fetchone()[0]
    env.add_source(src, sender_id="openspp.test", signing_key_id=key)
    env.add_source(inactive, sender_id="openspp.test", signing_key_id=key, active=False)
    env.add_source(code("atk_nosign"), sender_id="openspp.test")
    _caller_role(env, "atk_caller", ["dci_envelope(text, text, jsonb)"])
    msg = Json({"transaction_id": "t", "search_request": []})
    with closing(env.connect(user="atk_caller")) as conn:
        cur = conn.cursor()
        expect_error(cur, "42501", "SELECT dci_envelope(%s, 'search', %s)", (src, msg), contains="dci_sign")
    _caller_role(env, "atk_signer", ["dci_envelope(text, text, jsonb)", "dci_sign(jsonb, text)"])
    with closing(env.connect(user="atk_signer")) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_envelope(%s, 'search', %s) ->> 'signature'", (src, msg))
        assert cur.fetchone()[0].startswith('namespace="dci"')
        expect_error(cur, "DC001", "SELECT dci_envelope(%s, 'search', %s)", (inactive, msg))


# ---- 11: one path validator refuses the encoded tricks --------------------------
def test_path_tricks_refused(env):
    src = code("atk_path")
    env.add_source(src)
    with session(env) as cur:
        for p in ("/..%2f", "/%2e%2e%2f", "/..;/", "/%2E%2E/x", "/a/%252e%252e/b", "/x%2Fy", "/./x",
                  "/a/.."):
            expect_error(cur, "22023", "SELECT * FROM dci_request(%s, 'GET', %s)", (src, p))
            expect_error(cur, "23514", "UPDATE dci_data_source SET search_endpoint = %s WHERE code = %s",
                         (p, src), contains="search_endpoint")
            expect_error(cur, "23514", "UPDATE dci_data_source SET ping_endpoint = %s WHERE code = %s",
                         (p, src), contains="ping_endpoint")
        assert request(cur, src, "GET", "/echo/a..b?x=../..")["status"] == 200


# ---- answers PostgreSQL's own parser would choke on are DC006 -------------------
def test_deep_or_huge_answers_are_dc006(env):
    src = code("atk_deep")
    env.add_source(src)
    q = Json({"type": "UIN", "value": "1"})
    with session(env) as cur:
        for body in ("[" * 200000 + "]" * 200000,
                     '{"header": {}, "message": {"n": 1e999999999999}}',
                     '{"header": {}, "message": {"n": 1e-20000}}',
                     '{"header": {}, "message": {"n": 1%s}}' % ("0" * 140000)):
            env.mock.fault("/registry/sync/search", "status", count=1, status=200, body=body)
            expect_error(cur, "DC006", "SELECT dci_search(%s, 'idtype-value', %s)", (src, q))
        assert request(cur, src)["status"] == 200


# ---- found by the attack on the fixes above ------------------------------------
def test_invalid_allowed_hosts_fails_closed(env):
    """A value that does not parse, from postgresql.conf at start or set by
    ALTER SYSTEM before the library was loaded, refuses every host instead of
    falling back to the default (any host)."""
    from support import harness
    for preload in (True, False):
        cl = harness.Cluster().start(preload=preload,
                                     conf={"dci_client.allowed_hosts": "api.example.org, 10.0.0.0/33"})
        try:
            with closing(cl.connect()) as conn:
                cur = conn.cursor()
                cur.execute("CREATE EXTENSION dci_client CASCADE")
                env.add_source("atk_badhosts", conn=conn)
                e = expect_error(cur, "DC001", "SELECT * FROM dci_request('atk_badhosts', 'GET', '/echo')")
                assert "allowed_hosts" in str(e), str(e)
        finally:
            cl.cleanup()


def test_damaged_signing_key_row_gives_dc001(env):
    src = code("atk_keynull")
    with session(env) as cur:
        cur.execute("SELECT dci_generate_signing_key()")
        key = cur.fetchone()[0]
        env.add_source(src, signing_key_id=key)
        try:
            cur.execute("ALTER TABLE dci_signing_key ALTER key_id DROP NOT NULL")
            cur.execute("UPDATE dci_signing_key SET key_id = NULL WHERE id = %s", (key,))
            expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)",
                         (src, Json({"type": "UIN", "value": "1"})))
            cur.execute("SELECT dci_jwks()")                       # the backend survived
        finally:
            cur.execute("DELETE FROM dci_data_source WHERE code = %s", (src,))
            cur.execute("DELETE FROM dci_signing_key WHERE key_id IS NULL")
            cur.execute("ALTER TABLE dci_signing_key ALTER key_id SET NOT NULL")


def test_slow_redaction_is_cancelled(env):
    """A hostile token server and registry make redaction slow (a long token,
    a body of its near misses): statement_timeout still ends the call."""
    src = code("atk_redos")
    env.add_source(src)
    env.mock.fault(TOKEN_PATH, "token_value", count=1, token="a" * 4000 + "b")
    env.mock.fault("/echo", "status", count=1, status=200, body="a" * 2000000)
    with session(env) as cur:
        cur.execute("SET statement_timeout = '1s'")
        t0 = time.monotonic()
        expect_error(cur, "57014", "SELECT * FROM dci_request(%s, 'GET', '/echo')", (src,))
        assert time.monotonic() - t0 < 5, "not interrupted: %.1f s" % (time.monotonic() - t0)
        cur.execute("RESET statement_timeout")
        cur.execute("SELECT 1")


def test_echoed_token_in_longer_base64_and_header_names(env):
    src = code("atk_b64")
    env.add_source(src)
    with session(env) as cur:
        r = request(cur, src, "GET", "/echo-auth")
    token = remember(env.query("SELECT dci_get_token(%s)", (src,))[0][0])
    echoed = json.loads(r["body"])
    # at most the last partial group (two bytes of the token) may stay
    rest = echoed["b64url_unpadded"].split("[redacted]")
    assert len(rest) == 2 and len(rest[0]) <= 3 and len(rest[1]) <= 3, echoed["b64url_unpadded"]
    # "Bearer <token>" in base64: the token's part of it is gone
    assert "[redacted]" in echoed["b64_bearer"], echoed["b64_bearer"]
    assert not any(token.lower() in name for name in r["headers"]), list(r["headers"])
    assert any(name.startswith("x-dci-redacted-") for name in r["headers"]), list(r["headers"])


def test_repeated_401_does_not_flood_the_token_endpoint(env):
    src = code("atk_401")
    env.add_source(src)
    _caller_role(env, "atk_caller", ["dci_request(text, text, text, jsonb, jsonb)"])
    with closing(env.connect(user="atk_caller")) as conn:
        cur = conn.cursor()
        request(cur, src)
        before = env.mock.stats()["token_requests"]
        env.mock.fault("/echo", "401", count=30)
        for _ in range(30):
            assert request(cur, src)["status"] == 401
        assert env.mock.stats()["token_requests"] - before == 0


def test_damaged_endpoint_and_hop_by_hop_headers(env):
    src = code("atk_ep")
    env.add_source(src)
    with session(env) as cur:
        for h in ("Transfer-Encoding", "Connection", "Upgrade", "TE", "Expect", "Keep-Alive", "Proxy-Authorization"):
            expect_error(cur, "22023", "SELECT * FROM dci_request(%s, 'GET', '/echo', NULL, %s)",
                         (src, Json({h: "x"})), contains=h)
        try:
            cur.execute("ALTER TABLE dci_data_source DISABLE TRIGGER dci_data_source_secrets,"
                        " DISABLE TRIGGER dci_data_source_rules")
            cur.execute("UPDATE dci_data_source SET search_endpoint = '/../x' WHERE code = %s", (src,))
            expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)",
                         (src, Json({"type": "UIN", "value": "1"})), contains="search_endpoint")
        finally:
            cur.execute("DELETE FROM dci_data_source WHERE code = %s", (src,))
            cur.execute("ALTER TABLE dci_data_source ENABLE ALWAYS TRIGGER dci_data_source_secrets,"
                        " ENABLE ALWAYS TRIGGER dci_data_source_rules")


def test_counts_beyond_int8_are_not_22003(env):
    src = code("atk_count")
    env.add_source(src)
    body = json.dumps({"header": {"status": "succ"}, "message": {"search_response": [
        {"status": "succ", "data": {"reg_records": [{"id": 1}]},
         "pagination": {"page_size": 10, "page_number": 1, "total_count": 1e30}}]}})
    with session(env) as cur:
        env.mock.fault("/registry/sync/search", "status", count=1, status=200, body=body)
        cur.execute("SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)",
                    (src, Json({"type": "UIN", "value": "1"})))
        assert cur.fetchone()[0] == 1


def test_planted_overload_does_not_block_install_or_upgrade(env):
    with session(env) as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'atk_owner'")
        if not cur.fetchone():
            cur.execute("CREATE ROLE atk_owner LOGIN")
        for db in ("atk_plant_new", "atk_plant_up"):
            cur.execute("DROP DATABASE IF EXISTS %s" % db)
            cur.execute("CREATE DATABASE %s OWNER atk_owner" % db)
    with closing(env.connect(dbname="atk_plant_up")) as conn:
        conn.cursor().execute("CREATE EXTENSION dci_client VERSION '0.1' CASCADE")
    for db in ("atk_plant_new", "atk_plant_up"):
        with closing(env.connect(dbname=db, user="atk_owner")) as conn:
            conn.cursor().execute("CREATE FUNCTION public.dci_search_records(text, text, jsonb) "
                                  "RETURNS SETOF jsonb LANGUAGE sql AS 'SELECT NULL::jsonb'")
    with closing(env.connect(dbname="atk_plant_new")) as conn:
        conn.cursor().execute("CREATE EXTENSION dci_client CASCADE")
    with closing(env.connect(dbname="atk_plant_up")) as conn:
        cur = conn.cursor()
        cur.execute("ALTER EXTENSION dci_client UPDATE")
        cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'dci_client'")
        assert cur.fetchone()[0] == "0.2"
    with session(env) as cur:
        for db in ("atk_plant_new", "atk_plant_up"):
            cur.execute("DROP DATABASE %s" % db)


# ---- found by the review of issue 11 -----------------------------------------
def test_rules_hold_after_other_before_triggers(env):
    """The rules live in the row triggers, not in CHECKs: a BEFORE trigger that
    sorts after ours and rewrites the row is caught by the AFTER check."""
    src = code("atk_zz")
    env.add_source(src)
    with session(env) as cur:
        cur.execute("""CREATE FUNCTION public.atk_zz_evil() RETURNS trigger LANGUAGE plpgsql AS $$
                       BEGIN NEW.timeout_ms := -1; RETURN NEW; END $$""")
        cur.execute("CREATE TRIGGER zz_evil BEFORE UPDATE ON dci_data_source FOR EACH ROW "
                    "WHEN (NEW.name = 'evil') EXECUTE FUNCTION public.atk_zz_evil()")
        try:
            expect_error(cur, "23514", "UPDATE dci_data_source SET name = 'evil' WHERE code = %s", (src,),
                         contains="timeout_ms")
            cur.execute("SELECT timeout_ms FROM dci_data_source WHERE code = %s", (src,))
            assert cur.fetchone() == (None,)
        finally:
            cur.execute("DROP TRIGGER zz_evil ON dci_data_source")
            cur.execute("DROP FUNCTION public.atk_zz_evil()")


def test_request_log_waits_out_a_locked_table(env):
    """A lock on dci_request_log (CREATE INDEX takes SHARE) delays the
    writer; it keeps the records and writes them once the lock is gone."""
    src = code("atk_logk")
    env.add_source(src)
    locker = env.connect(autocommit=False)
    try:
        lcur = locker.cursor()
        lcur.execute("LOCK dci_request_log IN SHARE MODE")
        with session(env) as cur:
            cur.execute("SET dci_client.log_requests = 'all'")
            for _ in range(3):
                request(cur, src)
            time.sleep(2.5)
            cur.execute("SELECT count(*) FROM dci_request_log WHERE source = %s", (src,))
            assert cur.fetchone() == (0,)          # the lock still holds
            locker.rollback()
            deadline = time.time() + 10
            n = 0
            while time.time() < deadline:
                cur.execute("SELECT count(*) FROM dci_request_log WHERE source = %s", (src,))
                n = cur.fetchone()[0]
                if n == 3:
                    break
                time.sleep(0.1)
            assert n == 3, n
    finally:
        locker.close()
