"""The DCI layer (README "DCI layer", issue 3): envelopes that a strict validator of the
DCI schemas accepts (the mock validates every envelope it receives and the
tests fail on any violation), query types and options passed through, paging
through large results with one page in memory, every rejection shape, the
fixtures of test/fixtures/dci, async search and txn status,
subscriptions, and the README's worked examples run verbatim."""
import datetime, json, math, os, re, time, types, uuid
from contextlib import closing

import psycopg2
from psycopg2.extras import Json

from support.env import expect_error
from support.util import TOKEN_PATH, code, setting

SEARCH = "/registry/sync/search"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UIN = {"type": "UIN", "value": "847951632"}


def _src(env, prefix, **cols):
    src = code(prefix)
    cols.setdefault("registry_type", "ns:org:RegistryType:Civil")
    cols.setdefault("sender_id", "openspp.example.org")
    env.add_source(src, **cols)
    return src


def _valid(env, expect=None):
    """Every envelope the mock received on a DCI path passed its schema check."""
    v = env.mock.stats()["dci_validation"]
    assert v, "the mock received no DCI envelope"
    bad = [x for x in v if not x["ok"]]
    assert not bad, "DCI schema violations: %s" % json.dumps(bad, indent=1)
    if expect is not None:
        assert len(v) == expect, (len(v), expect)
    return v


def _sent(env, path=SEARCH):
    return json.loads(env.mock.stats()["last_request"][path]["body"])


def _search(cur, src, query_type="idtype-value", query=UIN, **kw):
    args = ", ".join("%s => %%s" % k for k in kw)
    cur.execute("SELECT dci_search(%%s, %%s, %%s%s)" % (", " + args if args else ""),
                [src, query_type, Json(query)] + [Json(v) if isinstance(v, (dict, list)) else v
                                                  for v in kw.values()])
    return cur.fetchone()[0]


def _records(cur, src, query, page_size=100, max_records=None, query_type="idtype-value"):
    cur.execute("SELECT dci_search_records(%s, %s, %s, NULL, %s, %s)",
                (src, query_type, Json(query), page_size, max_records))
    return [r[0] for r in cur.fetchall()]


def _requests(env, path=SEARCH):
    return env.mock.stats()["requests"].get(path, 0)


def _dci_error(cur, pgcode, sql, params, *needles):
    """The error must have pgcode and carry every needle in its primary message."""
    e = expect_error(cur, pgcode, sql, params)
    msg = e.diag.message_primary or ""
    for n in needles:
        assert n in msg, "%r not in the error message %r (detail %r)" % (n, msg, e.diag.message_detail)
    return e


# ---------------------------------------------------------------- envelopes
def test_envelope_header_fields(env):
    src = _src(env, "dcienv", receiver_id="crvs.example", callback_uri="https://openspp.example.org/dci/callback")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        seen = []
        for _ in range(3):
            t0 = datetime.datetime.now(datetime.timezone.utc)
            item = _search(cur, src)
            assert item["status"] == "succ" and len(item["data"]["reg_records"]) == 1, item
            e = _sent(env)
            h = e["header"]
            assert set(e) == {"signature", "header", "message"}, e
            assert e["signature"] == "", e["signature"]
            assert h["version"] == "1.0.0" and h["action"] == "search", h
            assert UUID_RE.match(h["message_id"]), h["message_id"]
            assert TS_RE.match(h["message_ts"]), h["message_ts"]
            ts = datetime.datetime.strptime(h["message_ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc)
            assert abs((ts - t0).total_seconds()) < 5, (ts, t0)          # UTC wall clock
            assert h["total_count"] == len(e["message"]["search_request"]) == 1, h
            assert h["sender_id"] == "openspp.example.org", h
            assert h["receiver_id"] == "crvs.example", h
            assert h["sender_uri"] == "https://openspp.example.org/dci/callback", h
            assert h["is_msg_encrypted"] is False and h["meta"] == {}, h
            it = e["message"]["search_request"][0]
            assert UUID_RE.match(it["reference_id"]) and TS_RE.match(it["timestamp"]), it
            assert it["search_criteria"]["pagination"] == {"page_size": 100, "page_number": 1}, it
            seen.append((h["message_id"], e["message"]["transaction_id"], it["reference_id"]))
        for i in range(3):                              # fresh per call
            assert len({s[i] for s in seen}) == 3, seen
    _valid(env, 3)


def test_envelope_receiver_falls_back_to_base_url(env):
    src = _src(env, "dcienvrcv")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _search(cur, src)
        h = _sent(env)["header"]
        assert h["receiver_id"] == env.mock.http_url, h
        assert "sender_uri" not in h, h                 # no callback_uri: left out, not null
        cur.execute("SELECT dci_envelope(%s, 'search', %s)", (src, Json({"transaction_id": "T-1"})))
        e = cur.fetchone()[0]
        assert e["header"]["receiver_id"] == env.mock.http_url, e
    _valid(env, 1)


def test_dci_envelope_function(env):
    src = _src(env, "dcienvfn", receiver_id="crvs.example")
    ts = "2026-01-01T00:00:00.000Z"
    reqs = [{"reference_id": "R-%d" % i, "timestamp": ts, "search_criteria": {
        "query_type": "idtype-value", "query": {"type": "UIN", "value": str(i)}}} for i in range(3)]
    msg = {"transaction_id": "T-env-1", "search_request": reqs}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_envelope(%s, 'search', %s)", (src, Json(msg)))
        e1 = cur.fetchone()[0]
        cur.execute("SELECT dci_envelope(%s, 'search', %s)", (src, Json(msg)))
        e2 = cur.fetchone()[0]
        h = e1["header"]
        assert set(e1) == {"signature", "header", "message"} and e1["signature"] == "", e1
        assert e1["message"] == msg, e1["message"]
        assert h["total_count"] == 3, h
        assert h["version"] == "1.0.0" and h["action"] == "search" and h["sender_id"] == "openspp.example.org", h
        assert h["receiver_id"] == "crvs.example" and h["is_msg_encrypted"] is False and h["meta"] == {}, h
        assert UUID_RE.match(h["message_id"]) and TS_RE.match(h["message_ts"]), h
        assert e1["header"]["message_id"] != e2["header"]["message_id"]
        # what dci_envelope builds is a valid DCI request: send it as it is
        cur.execute("SELECT status, body FROM dci_request(%s, 'POST', %s, %s)", (src, SEARCH, Json(e1)))
        status, body = cur.fetchone()
        assert status == 200, body
        assert len(json.loads(body)["message"]["search_response"]) == 3
        # total_count for the other message kinds
        for m, n in (({"transaction_id": "T", "subscription_codes": ["a", "b"]}, 2),
                     ({"transaction_id": "T", "subscribe_request": [{}, {}, {}, {}]}, 4),
                     ({"transaction_id": "T", "txnstatus_request": {}}, 1)):
            cur.execute("SELECT dci_envelope(%s, 'x', %s) -> 'header' -> 'total_count'", (src, Json(m)))
            assert cur.fetchone()[0] == n, m
        expect_error(cur, "22023", "SELECT dci_envelope(%s, 'search', '[1]')", (src,))
        expect_error(cur, "22023", "SELECT dci_envelope(%s, NULL, '{}')", (src,))
        expect_error(cur, "DC001", "SELECT dci_envelope('no_such_source', 'search', '{}')")
    _valid(env, 1)


def test_signed_envelope_still_valid(env):
    # with a signing key the signature is a DCI signature string over what was sent
    src = _src(env, "dcisigned")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        kid = "dci-test-" + src
        cur.execute("SELECT dci_generate_signing_key(%s)", (kid,))
        key = cur.fetchone()[0]
        cur.execute("UPDATE dci_data_source SET signing_key_id = %s WHERE code = %s", (key, src))
        assert _search(cur, src)["status"] == "succ"
        sent = _sent(env)
        sig = sent["signature"]
        assert sig.startswith('namespace="dci"') and \
            'kidId="openspp.example.org|%s|ed25519"' % kid in sig, sig
        cur.execute("SELECT dci_verify(%s, public_key) FROM dci_signing_key WHERE id = %s",
                    (Json(sent), key))
        assert cur.fetchone()[0] is True
        cur.execute("DELETE FROM dci_data_source WHERE code = %s", (src,))
        cur.execute("DELETE FROM dci_signing_key WHERE id = %s", (key,))
    _valid(env, 1)


# ---------------------------------------------------------------- queries and options
def test_all_query_types_passed_through(env):
    src = _src(env, "dciqt")
    queries = {
        "idtype-value": {"type": "UIN", "value": "847951632"},
        "expression": {"type": "ns:org:QueryType:expression", "value": {"expression": {
            "collection": "Person", "query": {"$and": [{"birth_date": {"$gt": "2020-01-01"}}]}}}},
        "predicate": [{"seq_num": 1, "expression1": {"attribute_name": "sex", "operator": "eq",
                                                      "attribute_value": "female"},
                       "condition": "and",
                       "expression2": {"attribute_name": "birth_date", "operator": "ge",
                                       "attribute_value": "2020-01-01"}}],
        "graphql": "{ persons(where: {sex: {_eq: \"female\"}}) { id name { given_name } } }",
    }
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        for qt, q in queries.items():
            item = _search(cur, src, qt, q)
            sc = _sent(env)["message"]["search_request"][0]["search_criteria"]
            assert sc["query_type"] == qt and sc["query"] == q, (qt, sc)
            assert sc["reg_type"] == "ns:org:RegistryType:Civil" and sc["version"] == "1.0.0", sc
            assert item["status"] == "succ" and len(item["data"]["reg_records"]) >= 1, item
        expect_error(cur, "22023", "SELECT dci_search(%s, 'sql', '{}')", (src,))
        expect_error(cur, "22023", "SELECT dci_search(%s, NULL, '{}')", (src,))
        expect_error(cur, "22023", "SELECT dci_search(%s, 'idtype-value', NULL)", (src,))
    _valid(env, 4)


def test_options_land_in_their_place(env):
    src = _src(env, "dciopt")
    opts = {"sort": [{"attribute_name": "birth_date", "sort_order": "desc"},
                     {"attribute_name": "name", "sort_order": "asc"}],
            "reg_event_type": "birth", "reg_record_type": "spdci-extensions-dci:Person",
            "consent": {"ts": "2026-01-01T00:00:00Z", "purpose": {"text": "eligibility"}},
            "authorize": {"ts": "2026-01-01T00:00:00Z", "purpose": {"text": "benefit"}},
            "locale": "fra", "transaction_id": "TXN-odoo-42"}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        item = _search(cur, src, reg_type="ns:org:RegistryType:DR", page_size=25, page_number=2, options=opts)
        m = _sent(env)["message"]
        it = m["search_request"][0]
        sc = it["search_criteria"]
        assert m["transaction_id"] == "TXN-odoo-42", m
        assert it["locale"] == "fra" and "locale" not in sc, it
        for k in ("sort", "reg_event_type", "reg_record_type", "consent", "authorize"):
            assert sc[k] == opts[k], (k, sc)
        assert "transaction_id" not in sc and "transaction_id" not in it
        assert sc["reg_type"] == "ns:org:RegistryType:DR", sc               # reg_type argument wins
        assert sc["pagination"] == {"page_size": 25, "page_number": 2}, sc
        assert item["locale"] == "fra", item
        # without the option a transaction id is generated (a UUID), fresh per call
        _search(cur, src)
        t1 = _sent(env)["message"]["transaction_id"]
        _search(cur, src, options={})
        t2 = _sent(env)["message"]["transaction_id"]
        assert UUID_RE.match(t1) and UUID_RE.match(t2) and t1 != t2, (t1, t2)
        # a transaction id over 99 characters is refused before sending
        expect_error(cur, "22023", "SELECT dci_search(%s, 'idtype-value', %s, options => %s)",
                     (src, Json(UIN), Json({"transaction_id": "x" * 100})))
    _valid(env, 3)


def test_argument_errors(env):
    src = _src(env, "dciargs")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        q = Json(UIN)
        for sql in ("SELECT dci_search(%s, 'idtype-value', %s, NULL, 0)",
                    "SELECT dci_search(%s, 'idtype-value', %s, NULL, 1001)",
                    "SELECT dci_search(%s, 'idtype-value', %s, NULL, -5)",
                    "SELECT dci_search(%s, 'idtype-value', %s, NULL, 100, 0)",
                    "SELECT dci_search(%s, 'idtype-value', %s, options => '{\"pagesize\": 5}')",
                    "SELECT dci_search(%s, 'idtype-value', %s, options => '[]')",
                    "SELECT dci_search(%s, 'idtype-value', %s, options => '{\"locale\": 5}')",
                    "SELECT dci_search_async(%s, 'idtype-value', %s, NULL, 1001)",
                    "SELECT dci_search_async(%s, 'idtype-value', %s, options => '{\"bogus\": 1}')",
                    "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s, NULL, 0)",
                    "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s, NULL, 1001)",
                    "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s, NULL, 100, -1)"):
            expect_error(cur, "22023", sql, (src, q))
        e = expect_error(cur, "22023", "SELECT dci_search(%s, 'idtype-value', %s, options => '{\"pagesize\": 5}')",
                         (src, q))
        assert "pagesize" in e.diag.message_primary, e
        expect_error(cur, "22023", "SELECT dci_txn_status(%s, NULL)", (src,))
        expect_error(cur, "22023", "SELECT dci_subscribe(%s, NULL)", (src,))
        expect_error(cur, "22023", "SELECT dci_unsubscribe(%s, '{}'::text[])", (src,))
        expect_error(cur, "22023", "SELECT dci_unsubscribe(%s, ARRAY['a', NULL])", (src,))
        # the boundaries are accepted
        _search(cur, src, page_size=1)
        _search(cur, src, page_size=1000, page_number=7)
    s = env.mock.stats()
    assert len(s["dci_validation"]) == 2, s["dci_validation"]     # nothing sent for the bad calls
    _valid(env, 2)


# ---------------------------------------------------------------- paging
def test_records_2500_in_pages_of_100(env):
    src = _src(env, "dcipage")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        recs = _records(cur, src, {"type": "BULK", "value": "2500"}, page_size=100)
    ids = [r["id"] for r in recs]
    assert len(ids) == 2500, len(ids)
    assert ids == list(range(1, 2501)), "out of order or duplicated"
    assert len(set(r["identifier"][0]["identifier_value"] for r in recs)) == 2500
    assert _requests(env) == 25, _requests(env)
    _valid(env, 25)


def test_records_pages_follow_page_numbers(env):
    src = _src(env, "dcipagenum")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        recs = _records(cur, src, {"type": "BULK", "value": "250"}, page_size=100)
        assert [r["id"] for r in recs] == list(range(1, 251))
        sc = _sent(env)["message"]["search_request"][0]["search_criteria"]
        assert sc["pagination"] == {"page_size": 100, "page_number": 3}, sc
        assert _requests(env) == 3
        # an exact multiple: the registry's total_count ends it, no empty extra page
        recs = _records(cur, src, {"type": "BULK", "value": "300"}, page_size=100)
        assert len(recs) == 300 and _requests(env) == 6, (len(recs), _requests(env))
        # in FROM, ordered by the stream
        cur.execute("SELECT (r ->> 'id')::int FROM dci_search_records(%s, 'idtype-value', %s, NULL, 7) "
                    "WITH ORDINALITY AS t(r, n) ORDER BY n", (src, Json({"type": "BULK", "value": "20"})))
        assert [r[0] for r in cur.fetchall()] == list(range(1, 21))
        assert _requests(env) == 9
        recs = _records(cur, src, {"type": "UIN", "value": "NOTFOUND"})
        assert recs == [] and _requests(env) == 10
    _valid(env, 10)


def test_records_registry_capping_its_page_size(env):
    # The registry answers pages of 10 whatever the page_size asked, and says so in
    # pagination (page_size 10, total_count 25): the records follow its pagination
    # to total_count instead of stopping at the first "short" page.
    src = _src(env, "dcicapped")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        recs = _records(cur, src, {"type": "CAPPED", "value": "25"}, page_size=100)
    assert [r["id"] for r in recs] == list(range(1, 26)), [r["id"] for r in recs]
    assert _requests(env) == 3, _requests(env)
    _valid(env, 3)


def test_records_exactly_hard_cap_no_warning(env):
    # 100,000 records, all returned: nothing was cut, so no "stopped" WARNING
    src = _src(env, "dciexactcap")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*) FROM (SELECT dci_search_records(%s, 'idtype-value', %s, NULL, 1000)) s",
                    (src, Json({"type": "BULK", "value": "100000"})))
        assert cur.fetchone()[0] == 100000
        assert not [n for n in conn.notices if "WARNING" in n], conn.notices
    assert _requests(env) == 100, _requests(env)
    _valid(env, 100)


def _rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def test_records_memory_does_not_grow_with_pages(env):
    src = _src(env, "dcimem")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        pid = conn.get_backend_pid()
        sql = ("SELECT count(*), count(DISTINCT r ->> 'id'), max((r ->> 'id')::int) "
               "FROM (SELECT dci_search_records(%s, 'idtype-value', %s, NULL, 100) AS r) s")
        q = Json({"type": "BULK", "value": "20000"})
        cur.execute(sql, (src, q))                      # warm-up: caches, allocator arenas
        assert cur.fetchone() == (20000, 20000, 20000)
        before = _rss_kb(pid)
        cur.execute(sql, (src, q))
        assert cur.fetchone() == (20000, 20000, 20000)
        after = _rss_kb(pid)
    assert after - before < 2048, "backend RSS grew by %d kB over 200 pages" % (after - before)
    assert _requests(env) == 400, _requests(env)
    _valid(env, 400)


def test_max_records_stops_early(env):
    src = _src(env, "dcimax")
    bulk = {"type": "BULK", "value": "2500"}
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        n0 = 0
        for mx, ps in ((250, 100), (200, 100), (1, 100), (999, 1000), (0, 100)):
            recs = _records(cur, src, bulk, page_size=ps, max_records=mx)
            assert [r["id"] for r in recs] == list(range(1, mx + 1)), (mx, len(recs))
            n = _requests(env)
            assert n - n0 == math.ceil(mx / ps), (mx, ps, n - n0)
            n0 = n
        # max_records above the total: the total
        assert len(_records(cur, src, {"type": "BULK", "value": "150"}, max_records=10000)) == 150
    _valid(env)


def test_forever_stopped_by_max_records(env):
    src = _src(env, "dciforever")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        recs = _records(cur, src, {"type": "FOREVER", "value": "x"}, page_size=1000, max_records=1500)
        assert [r["id"] for r in recs] == list(range(1, 1501))
        assert _requests(env) == 2, _requests(env)
        assert not [n for n in conn.notices if "WARNING" in n], conn.notices
    _valid(env, 2)


def test_forever_stopped_by_hard_cap_with_warning(env):
    src = _src(env, "dcicap")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT count(*), count(DISTINCT r ->> 'id') FROM "
                    "(SELECT dci_search_records(%s, 'idtype-value', %s, NULL, 1000) AS r) s",
                    (src, Json({"type": "FOREVER", "value": "x"})))
        assert cur.fetchone() == (100000, 100000)
        warnings = [n for n in conn.notices if "WARNING" in n]
        assert len(warnings) == 1 and "100000" in warnings[0], conn.notices
    assert _requests(env) == 100, _requests(env)
    _valid(env, 100)


# ---------------------------------------------------------------- rejections and failures
def test_rejections_are_dc007_with_reason_code(env):
    src = _src(env, "dcirjct")
    sync = "SELECT dci_search(%s, 'idtype-value', %s)"
    recs = "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)"
    asy = "SELECT dci_search_async(%s, 'idtype-value', %s)"
    q = lambda v: Json({"type": "UIN", "value": v})
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        # header rjct (the fixture), item rjct, HTTP 400 with a DCI error body
        _dci_error(cur, "DC007", sync, (src, q("REJECTED")), "rjct.action.not_supported",
                   "action 'search' is not supported by this registry")
        _dci_error(cur, "DC007", recs, (src, q("REJECTED")), "rjct.action.not_supported")
        _dci_error(cur, "DC007", sync, (src, q("ITEM_RJCT")), "rjct.search.too_many_records_found",
                   "narrow the search")
        _dci_error(cur, "DC007", recs, (src, q("ITEM_RJCT")), "rjct.search.too_many_records_found")
        _dci_error(cur, "DC007", sync, (src, q("HTTP400")), "rjct.search_criteria.invalid")
        # NACK / ERR acknowledgements of the asynchronous calls
        _dci_error(cur, "DC007", asy, (src, q("NACK")), "NACK", "err.request.bad")
        _dci_error(cur, "DC007", asy, (src, q("ERR")), "ERR", "err.service.unavailable")
        _dci_error(cur, "DC007", "SELECT dci_subscribe(%s, 'NACK')", (src,), "NACK", "err.request.bad")
        _dci_error(cur, "DC007", "SELECT dci_unsubscribe(%s, ARRAY['NACK'])", (src,), "NACK", "err.request.bad")
        # other 4xx bodies: the status and the registry's words are quoted
        env.mock.fault(SEARCH, "status", status=422,
                       body={"errors": [{"code": "err.query.unsupported", "message": "no"}]})
        e = _dci_error(cur, "DC007", sync, (src, Json(UIN)), "422")
        assert "err.query.unsupported" in str(e), e
        env.mock.fault(SEARCH, "status", status=404, body={"error": "not_found"})
        e = _dci_error(cur, "DC007", sync, (src, Json(UIN)), "404")
        assert "not_found" in str(e), e
        # registry text is truncated (README "Errors": <= 300 characters quoted)
        long = "x" * 3000
        env.mock.fault(SEARCH, "status", status=200, body={"header": {
            "status": "rjct", "status_reason_code": "rjct.too.long", "status_reason_message": long},
            "message": {}})
        e = _dci_error(cur, "DC007", sync, (src, Json(UIN)), "rjct.too.long")
        assert len(str(e)) < 800, len(str(e))
        env.mock.fault(SEARCH, "status", status=400, body={"header": {
            "status": "rjct", "status_reason_code": "rjct.too.long", "status_reason_message": long},
            "message": {}})
        e = _dci_error(cur, "DC007", sync, (src, Json(UIN)), "rjct.too.long")
        assert len(str(e)) < 800, len(str(e))
    _valid(env, 13)


def test_unavailable_registry_is_dc009(env):
    src = _src(env, "dciunavail")
    sql = "SELECT dci_search(%s, 'idtype-value', %s)"
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        setting(cur, "dci_client.max_retries", 2)
        _search(cur, src)                              # token warm
        for mode in ("503", "429"):
            n0 = _requests(env)
            env.mock.fault(SEARCH, mode, count=3, retry_after=0)
            e = expect_error(cur, "DC009", sql, (src, Json(UIN)))
            assert _requests(env) - n0 == 3, (mode, _requests(env) - n0)    # 1 + max_retries
            assert "unavailable" in e.diag.message_primary, e
            assert mode in (e.diag.message_detail or ""), e.diag.message_detail
        # 500: not retried, still "try later"
        n0 = _requests(env)
        env.mock.fault(SEARCH, "500", count=1)
        expect_error(cur, "DC009", sql, (src, Json(UIN)))
        assert _requests(env) - n0 == 1
        # 502/504 are retried for the read-only sync search: the retry succeeds
        n0 = _requests(env)
        env.mock.fault(SEARCH, "502", count=1)
        assert _search(cur, src)["status"] == "succ"
        assert _requests(env) - n0 == 2
        # async calls and subscriptions: 503 after the retries is DC009 too
        env.mock.fault("/registry/search", "503", count=3, retry_after=0)
        expect_error(cur, "DC009", "SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        env.mock.fault("/registry/subscribe", "503", count=3, retry_after=0)
        expect_error(cur, "DC009", "SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        # the session is fine afterwards
        assert _search(cur, src)["status"] == "succ"
    _valid(env)


def test_401_after_renewal_is_dc002(env):
    src = _src(env, "dci401")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _search(cur, src)
        t0, n0 = env.mock.stats()["token_requests"], _requests(env)
        env.mock.revoke()
        env.mock.fault(SEARCH, "401", count=2)
        e = expect_error(cur, "DC002", "SELECT dci_search(%s, 'idtype-value', %s)", (src, Json(UIN)))
        s = env.mock.stats()
        assert s["token_requests"] - t0 == 1, s["token_requests"] - t0       # renewed once
        assert _requests(env) - n0 == 2, _requests(env) - n0                 # resent once
        assert "401" in str(e), e
        # 403 on the asynchronous path too
        env.mock.fault("/registry/search", "status", count=2, status=403)
        expect_error(cur, "DC002", "SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
    _valid(env)


def test_not_dci_answers_are_dc006(env):
    src = _src(env, "dcinotdci")
    sql = "SELECT dci_search(%s, 'idtype-value', %s)"
    q = lambda v: Json({"type": "UIN", "value": v})
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_error(cur, "DC006", sql, (src, q("HTML")))
        e = expect_error(cur, "DC006", sql, (src, q("NOT_DCI")))
        assert "envelope" in e.diag.message_primary, e
        expect_error(cur, "DC006", "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)",
                     (src, q("NOT_DCI")))
        env.mock.fault(SEARCH, "nonjson")
        expect_error(cur, "DC006", sql, (src, Json(UIN)))
        # an envelope whose message has no search_response item
        env.mock.fault(SEARCH, "status", status=200,
                       body={"header": {"status": "succ"}, "message": {"search_response": []}})
        expect_error(cur, "DC006", sql, (src, Json(UIN)))
        env.mock.fault("/registry/search", "status", status=202, body={"message": {"hello": 1}})
        expect_error(cur, "DC006", "SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
    _valid(env)


# ---------------------------------------------------------------- fixtures
def test_fixture_strict(env):
    src = _src(env, "dcistrict")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        item = _search(cur, src, query={"type": "UIN", "value": "STRICT"})
        assert item["status"] == "succ" and item["reference_id"] == "R-0001", item
        assert item["pagination"] == {"page_size": 10, "page_number": 1, "total_count": 1}, item
        recs = item["data"]["reg_records"]
        assert len(recs) == 1 and recs[0]["identifier"][0]["identifier_value"] == "847951632", recs
        assert recs[0]["name"] == {"given_name": "Sudarat", "surname": "Phumchai"}
        recs = _records(cur, src, {"type": "UIN", "value": "STRICT"})
        assert len(recs) == 1 and recs[0]["identifier"] == [
            {"identifier_type": "UIN", "identifier_value": "847951632"}], recs
        assert recs[0]["birth_date"] == "1995-09-21"
    _valid(env, 2)


def test_fixture_lenient(env):
    src = _src(env, "dcilenient")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        item = _search(cur, src, query={"type": "UIN", "value": "LENIENT"})
        assert item["status"] == "rcvd", item                         # tolerated on a sync answer
        recs = item["data"]["reg_records"]                            # object -> one-element array
        assert isinstance(recs, list) and len(recs) == 1, item
        assert recs[0]["identifier"][0]["identifier_value"] == "847951632", recs
        assert item["pagination"]["total_count"] is None, item        # "" tolerated
        assert item["pagination"]["page_size"] == 10, item
        recs = _records(cur, src, {"type": "UIN", "value": "LENIENT"})
        assert len(recs) == 1 and recs[0]["name"]["surname"] == "Phumchai", recs
        assert _requests(env) == 2                                   # one page, short: done
    _valid(env, 2)


def test_fixture_rejected(env):
    src = _src(env, "dcirejected")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        e = _dci_error(cur, "DC007", "SELECT dci_search(%s, 'idtype-value', %s)",
                       (src, Json({"type": "UIN", "value": "REJECTED"})), "rjct.action.not_supported")
        assert src in e.diag.message_primary, e
    _valid(env, 1)


# ---------------------------------------------------------------- async, txn status, subscriptions
def test_async_search_and_txn_status(env):
    src = _src(env, "dciasync")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        txn = cur.fetchone()[0]
        sent = _sent(env, "/registry/search")
        assert sent["header"]["action"] == "search", sent
        assert sent["message"]["transaction_id"] == txn and UUID_RE.match(txn), (txn, sent)
        assert env.mock.stats()["requests"].get(SEARCH, 0) == 0        # not the sync endpoint
        # the caller's own transaction id is used and returned
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s, options => %s)",
                    (src, Json({"type": "BRN", "value": "B-77"}), Json({"transaction_id": "odoo-txn-9"})))
        assert cur.fetchone()[0] == "odoo-txn-9"
        # txn status of both
        cur.execute("SELECT dci_txn_status(%s, %s)", (src, txn))
        st = cur.fetchone()[0]
        sent = _sent(env, "/registry/sync/txn/status")
        tr = sent["message"]["txnstatus_request"]
        assert sent["header"]["action"] == "txn-status" and sent["header"]["total_count"] == 1, sent
        assert tr["attribute_type"] == "transaction_id" and tr["attribute_value"] == txn, tr
        assert tr["txn_type"] == "search", tr
        assert st["txn_status"] == "succ" and st["txn_type"] == "search", st
        assert st["search_response"][0]["data"]["reg_records"][0]["identifier"][0]["identifier_value"] == "847951632"
        cur.execute("SELECT dci_txn_status(%s, 'odoo-txn-9') -> 'search_response' -> 0 -> 'data' -> 'reg_records' "
                    "-> 0 ->> 'birth_date'", (src,))
        assert cur.fetchone()[0] == "2019-03-14"
        # an ACK answered with HTTP 200 (not 202) is an ACK too
        env.mock.fault("/registry/search", "status", status=200, body={"message": {
            "ack_status": "ACK", "timestamp": "2026-01-01T00:00:00Z", "correlation_id": "c-1"}})
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (src, Json(UIN)))
        assert UUID_RE.match(cur.fetchone()[0])
        # an unknown transaction: the registry rejects it
        _dci_error(cur, "DC007", "SELECT dci_txn_status(%s, 'no-such-txn')", (src,), "rjct.transaction_id.invalid")
    _valid(env, 6)


def test_subscribe_and_unsubscribe(env):
    src = _src(env, "dcisub", callback_uri="https://openspp.example.org/dci")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (src,))
        txn = cur.fetchone()[0]
        sent = _sent(env, "/registry/subscribe")
        assert sent["header"]["action"] == "subscribe" and sent["header"]["total_count"] == 1, sent
        assert sent["header"]["sender_uri"] == "https://openspp.example.org/dci"
        assert sent["message"]["transaction_id"] == txn and UUID_RE.match(txn), (txn, sent)
        crit = sent["message"]["subscribe_request"][0]["subscribe_criteria"]
        assert crit["reg_event_type"] == "REGISTER" and crit["filter"] == {"type": "*", "value": "*"}, crit
        assert crit["reg_type"] == "ns:org:RegistryType:Civil", crit
        subs = env.mock.stats()["dci_subscriptions"]
        assert len(subs) == 1 and subs["SUB-0001"]["transaction_id"] == txn, subs
        # a predicate filter and a notify_record_type
        flt = [{"seq_num": 1, "expression1": {"attribute_name": "birth_date", "operator": "ge",
                                              "attribute_value": "2026-01-01"}}]
        cur.execute("SELECT dci_subscribe(%s, 'UPDATE', %s, 'spdci-extensions-dci:Person')", (src, Json(flt)))
        txn2 = cur.fetchone()[0]
        crit = _sent(env, "/registry/subscribe")["message"]["subscribe_request"][0]["subscribe_criteria"]
        assert crit["filter"] == flt and crit["filter_type"] == "predicate", crit
        assert crit["notify_record_type"] == "spdci-extensions-dci:Person", crit
        assert txn2 != txn
        # unsubscribe both
        cur.execute("SELECT dci_unsubscribe(%s, ARRAY['SUB-0001', 'SUB-0002'])", (src,))
        utxn = cur.fetchone()[0]
        sent = _sent(env, "/registry/unsubscribe")
        assert sent["header"]["action"] == "unsubscribe" and sent["message"]["transaction_id"] == utxn, sent
        assert sent["message"]["subscription_codes"] == ["SUB-0001", "SUB-0002"], sent
        assert sent["header"]["total_count"] == 2, sent
        subs = env.mock.stats()["dci_subscriptions"]
        assert not any(s["active"] for s in subs.values()), subs
    _valid(env, 3)


# ---------------------------------------------------------------- by id, overloads, core path
def test_search_by_id(env):
    src = _src(env, "dcibyid")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT r FROM dci_search_by_id(%s, %s, %s) AS r", (src, "UIN", "847951632"))
        rows = cur.fetchall()
        assert len(rows) == 1 and rows[0][0]["identifier"] == [
            {"identifier_type": "UIN", "identifier_value": "847951632"}], rows
        sc = _sent(env)["message"]["search_request"][0]["search_criteria"]
        assert sc["query_type"] == "idtype-value" and sc["query"] == UIN, sc
        cur.execute("SELECT count(*) FROM dci_search_by_id(%s, 'UIN', 'NOTFOUND')", (src,))
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT dci_search_by_id(%s, 'BULK', '250')", (src,))        # pages inside
        assert len(cur.fetchall()) == 250
    _valid(env, 5)


def test_integer_overloads(env):
    src = _src(env, "dciint")
    sid = env.query("SELECT id FROM dci_data_source WHERE code = %s", (src,))[0][0]
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT dci_envelope(%s, 'search', '{}') -> 'header' ->> 'sender_id'", (sid,))
        assert cur.fetchone()[0] == "openspp.example.org"
        cur.execute("SELECT dci_search(%s, 'idtype-value', %s) ->> 'status'", (sid, Json(UIN)))
        assert cur.fetchone()[0] == "succ"
        cur.execute("SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s, NULL, 10)",
                    (sid, Json({"type": "BULK", "value": "35"})))
        assert cur.fetchone()[0] == 35
        cur.execute("SELECT count(*) FROM dci_search_by_id(%s, 'UIN', '1')", (sid,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT dci_search_async(%s, 'idtype-value', %s)", (sid, Json(UIN)))
        txn = cur.fetchone()[0]
        cur.execute("SELECT dci_txn_status(%s, %s) ->> 'txn_status'", (sid, txn))
        assert cur.fetchone()[0] == "succ"
        cur.execute("SELECT dci_subscribe(%s, 'REGISTER')", (sid,))
        assert UUID_RE.match(cur.fetchone()[0])
        cur.execute("SELECT dci_unsubscribe(%s, ARRAY['SUB-0001'])", (sid,))
        assert UUID_RE.match(cur.fetchone()[0])
        expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", (-1, Json(UIN)))
    _valid(env, 10)


def test_inactive_source_refused(env):
    src = _src(env, "dcioff", active=False)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        expect_error(cur, "DC001", "SELECT dci_search(%s, 'idtype-value', %s)", (src, Json(UIN)))
        expect_error(cur, "DC001", "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)",
                     (src, Json(UIN)))
        expect_error(cur, "DC001", "SELECT dci_subscribe(%s, 'REGISTER')", (src,))
    assert not env.mock.stats()["dci_validation"]


def test_core_path_401_renews_token_once(env):
    src = _src(env, "dcirenew")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _search(cur, src)
        t0, n0 = env.mock.stats()["token_requests"], _requests(env)
        env.mock.fault(SEARCH, "401", count=1)
        recs = _records(cur, src, {"type": "BULK", "value": "30"}, page_size=10)
        assert [r["id"] for r in recs] == list(range(1, 31))
        s = env.mock.stats()
        assert s["token_requests"] - t0 == 1, s["token_requests"] - t0
        assert _requests(env) - n0 == 4, _requests(env) - n0          # 3 pages + 1 resend
        assert s["authorization"][-1] != s["authorization"][-4], "the resend used the old token"
    _valid(env)


def test_statement_timeout_cancels_hanging_search(env):
    src = _src(env, "dcihang")
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        _search(cur, src)
        env.mock.fault(SEARCH, "hang", count=1, delay=30)
        cur.execute("SET statement_timeout = '500ms'")
        t0 = time.monotonic()
        expect_error(cur, "57014", "SELECT dci_search(%s, 'idtype-value', %s)", (src, Json(UIN)))
        took = time.monotonic() - t0
        assert took < 1.5, took
        # mid-way through paging
        env.mock.fault(SEARCH, "hang", count=1, delay=30)
        t0 = time.monotonic()
        expect_error(cur, "57014", "SELECT count(*) FROM dci_search_records(%s, 'idtype-value', %s)",
                     (src, Json({"type": "BULK", "value": "10"})))
        assert time.monotonic() - t0 < 1.5
        cur.execute("SET statement_timeout = 0")
        assert _search(cur, src)["status"] == "succ"                  # session usable
    _valid(env)


# ---------------------------------------------------------------- README examples, verbatim
README_CRVS = '''\
self.env.cr.execute(
    "SELECT r FROM dci_search_by_id(%s, %s, %s) AS r",
    ("crvs", "BRN", partner.birth_registration_number),
)
births = [row[0] for row in self.env.cr.fetchall()]
birth_verified = bool(births) and births[0].get("birth_date") == partner.birthdate.isoformat()
'''

README_DR = '''\
self.env.cr.execute(
    "SELECT r FROM dci_search_by_id(%s, %s, %s) AS r",
    ("dr", "UIN", partner.national_id),
)
row = self.env.cr.fetchone()
disability = row[0] if row else None          # the DR spec's record: disability_status, disability_details, ...
is_disabled = bool(disability) and str(disability.get("disability_status", "")).lower() in ("approved", "registered")
'''

README_IBR = '''\
self.env.cr.execute(
    """SELECT e ->> 'program', e ->> 'status'
         FROM dci_search_by_id(%s, %s, %s) AS r,
              jsonb_array_elements(r -> 'enrollments') AS e""",
    ("ibr", "UIN", partner.national_id),
)
enrollments = self.env.cr.fetchall()          # [("Child Grant", "active"), ...]
is_duplicate = any(status == "active" for _program, status in enrollments)
'''

README_ASYNC = '''\
self.env.cr.execute(
    "SELECT dci_search_async(%s, 'idtype-value', %s)",
    ("crvs", Json({"type": "UIN", "value": partner.national_id})),
)
transaction_id = self.env.cr.fetchone()[0]
self.env.cr.execute("SELECT dci_txn_status(%s, %s)", ("crvs", transaction_id))
txn_status = self.env.cr.fetchone()[0]        # the txnstatus_response
self.env.cr.execute("SELECT dci_subscribe(%s, %s)", ("crvs", "REGISTER"))
subscription_txn = self.env.cr.fetchone()[0]
'''

README_SQL = [
    """SELECT dci_search('crvs', 'idtype-value', '{"type": "UIN", "value": "847951632"}');""",
    """SELECT dci_search('crvs', 'predicate',
                  '[{"seq_num": 1, "expression1": {"attribute_name": "birth_date",
                     "operator": "ge", "attribute_value": "2024-01-01"}}]',
                  page_size => 50, options => '{"sort": [{"attribute_name": "birth_date", "sort_order": "asc"}]}');""",
    """SELECT count(*) FROM dci_search_records('crvs', 'predicate',
                  '[{"seq_num": 1, "expression1": {"attribute_name": "birth_date",
                     "operator": "ge", "attribute_value": "2024-01-01"}}]', max_records => 10000);""",
]


def _odoo(cur, partner, snippet):
    """Run a README snippet with `self.env.cr` a psycopg2 cursor, as in an Odoo model."""
    with open(os.path.join(ROOT, "README.md")) as f:
        assert snippet in f.read(), "README.md no longer holds this example:\n" + snippet
    ns = {"self": types.SimpleNamespace(env=types.SimpleNamespace(cr=cur)), "partner": partner, "Json": Json}
    exec(compile(snippet, "README.md example", "exec"), ns)
    return ns


def test_readme_worked_examples(env):
    for c, kind in (("crvs", "Civil"), ("dr", "DR"), ("ibr", "IBR")):
        env.add_source(c, registry_type="ns:org:RegistryType:" + kind, sender_id="openspp.example.org")
    partner = types.SimpleNamespace(birth_registration_number="BRN-2019-0042", national_id="847951632",
                                    birthdate=datetime.date(2019, 3, 14))
    other = types.SimpleNamespace(birth_registration_number="NOTFOUND", national_id="NOTFOUND",
                                  birthdate=datetime.date(2019, 3, 14))
    with closing(env.connect(autocommit=False)) as conn:          # Odoo runs in a transaction
        cur = conn.cursor()
        ns = _odoo(cur, partner, README_CRVS)
        assert ns["birth_verified"] is True and ns["births"][0]["name"]["given_name"] == "Amina", ns["births"]
        sc = _sent(env)["message"]["search_request"][0]["search_criteria"]
        assert sc["query"] == {"type": "BRN", "value": "BRN-2019-0042"}, sc
        assert sc["reg_type"] == "ns:org:RegistryType:Civil", sc
        assert _odoo(cur, other, README_CRVS)["birth_verified"] is False
        ns = _odoo(cur, partner, README_DR)
        assert ns["is_disabled"] is True and ns["disability"]["disability_details"][0]["impairment_type"] == \
            "Physical and movement related functions", ns["disability"]
        assert _sent(env)["message"]["search_request"][0]["search_criteria"]["reg_type"] == "ns:org:RegistryType:DR"
        ns = _odoo(cur, other, README_DR)
        assert ns["is_disabled"] is False and ns["disability"] is None
        ns = _odoo(cur, partner, README_IBR)
        assert ns["is_duplicate"] is True and ns["enrollments"] == [("Child Grant", "active")], ns["enrollments"]
        assert _odoo(cur, other, README_IBR)["is_duplicate"] is False
        ns = _odoo(cur, partner, README_ASYNC)
        assert UUID_RE.match(ns["transaction_id"]) and UUID_RE.match(ns["subscription_txn"]), ns
        assert ns["txn_status"]["txn_status"] == "succ", ns["txn_status"]
        with open(os.path.join(ROOT, "README.md")) as f:
            readme = f.read()
        for sql in README_SQL:
            assert sql in readme, sql
            cur.execute(sql)
            assert cur.fetchone()[0], sql
        conn.commit()
    _valid(env, 12)
