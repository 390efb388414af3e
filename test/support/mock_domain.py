"""The mock registry's domain endpoints and dialects (issue 14).

Hooked into mock_registry.py by install(): the disability registry's sync
endpoints (DR spec), the beneficiary registry's (IBR spec), and the sync
search of an OpenCRVS gateway (/opencrvs/...) and an OpenG2P registry
(/openg2p/...), each request checked strictly against its shape
(test/fixtures/dci/domain_shapes.json, taken from the specs and from the
registries' own validators); a violation is answered with HTTP 400 and
recorded in stats()["dci_validation"] like every DCI envelope, so tests that
assert no violation fail.  Answers are shaped as each registry writes them.
Also: transaction status by reference_id_list / subscription_code_list and
txn_type, for the txn-status handler of mock_registry.
"""
import json, os, re, uuid

NS = {}                     # mock_registry's globals (STATE, jbody, dci_header, ...), set by install()

_FIXTURES = os.environ.get("DCI_FIXTURES") or os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "..", "fixtures", "dci"))
with open(os.path.join(_FIXTURES, "domain_shapes.json")) as _f:
    SHAPES = json.load(_f)

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
QUERY_TYPES = ("idtype-value", "expression", "predicate", "graphql")


class Check:
    def __init__(self):
        self.errs = []

    def typ(self, obj, key, kind, where, required=False):
        if not isinstance(obj, dict) or key not in obj:
            if required:
                self.errs.append("%s.%s is required" % (where, key))
            return False
        v = obj[key]
        ok = {"str": isinstance(v, str), "obj": isinstance(v, dict), "arr": isinstance(v, list),
              "bool": isinstance(v, bool), "int": isinstance(v, int) and not isinstance(v, bool)}[kind]
        if not ok:
            self.errs.append("%s.%s must be %s, not %r" % (where, key, kind, v))
        return ok

    def only(self, obj, allowed, where):
        for k in obj if isinstance(obj, dict) else ():
            if k not in allowed:
                self.errs.append("%s has unknown member %r" % (where, k))

    def ts(self, obj, key, where, required=True):
        if self.typ(obj, key, "str", where, required) and not _TS_RE.match(obj[key]):
            self.errs.append("%s.%s is not ISO 8601 with a zone: %r" % (where, key, obj[key]))


def _envelope(c, env, header_kind, action, signature_required=True):
    """The envelope and its header (MsgHeader or MsgCallbackHeader)."""
    c.only(env, ("signature", "header", "message"), "envelope")
    c.typ(env, "signature", "str", "envelope", signature_required)
    h = env.get("header") if c.typ(env, "header", "obj", "envelope", True) else {}
    m = env.get("message") if c.typ(env, "message", "obj", "envelope", True) else {}
    shape = SHAPES["headers"][header_kind]
    c.only(h, shape["members"], "header")
    for k in shape["required"]:
        c.typ(h, k, shape["types"][k], "header", True)
    for k, kind in shape["types"].items():
        c.typ(h, k, kind, "header")
    c.ts(h, "message_ts", "header")
    if isinstance(h.get("message_id"), str) and not _UUID_RE.match(h["message_id"]):
        c.errs.append("header.message_id is not a UUID")
    if h.get("action") != action:
        c.errs.append("header.action %r must be %r here" % (h.get("action"), action))
    if header_kind == "callback" and h.get("status") not in ("rcvd", "pdng", "succ", "rjct"):
        c.errs.append("header.status %r is not rcvd, pdng, succ or rjct" % h.get("status"))
    if c.typ(m, "transaction_id", "str", "message", True) and not 1 <= len(m["transaction_id"]) <= 99:
        c.errs.append("message.transaction_id must be 1..99 characters")
    return h, m


def _criteria(c, m, key, with_response_entity):
    """DisabledRequest.disabled_criteria / EnrolledRequest.enrolled_criteria."""
    c.only(m, ("transaction_id", key), "message")
    if not c.typ(m, key, "obj", "message", True):
        return
    cr, w = m[key], "message." + key
    allowed = ("query_type", "query") + (("response_entity",) if with_response_entity else ())
    c.only(cr, allowed, w)
    if c.typ(cr, "query_type", "str", w, True) and cr["query_type"] not in QUERY_TYPES:
        c.errs.append("%s.query_type %r is not one of %s" % (w, cr["query_type"], QUERY_TYPES))
    c.typ(cr, "query", "obj", w, True)
    if with_response_entity and c.typ(cr, "response_entity", "str", w) and \
            cr["response_entity"] not in ("Group", "Member"):
        c.errs.append("%s.response_entity %r is not Group or Member" % (w, cr["response_entity"]))


def _dci_search_item(c, it, w):
    c.typ(it, "reference_id", "str", w, True)
    c.ts(it, "timestamp", w)
    return it.get("search_criteria") if c.typ(it, "search_criteria", "obj", w, True) else {}


def validate(path, raw):
    """Violations of the request shape for path (empty: valid)."""
    c = Check()
    try:
        env = json.loads(raw)
    except ValueError as e:
        return ["body is not JSON: %s" % e]
    if not isinstance(env, dict):
        return ["envelope is not an object"]
    ep = ENDPOINTS[path]
    if ep["kind"] == "opencrvs":
        return _validate_opencrvs(c, env)
    if ep["kind"] == "openg2p":
        return _validate_openg2p(c, env)
    h, m = _envelope(c, env, ep["header"], ep["action"])
    if ep["kind"] == "criteria":
        _criteria(c, m, ep["criteria"], ep.get("response_entity", False))
        if isinstance(h.get("total_count"), int) and h["total_count"] != 1:
            c.errs.append("header.total_count must be 1 for one criteria, not %r" % h["total_count"])
    elif ep["kind"] == "enrollment_updates":
        c.only(m, ("transaction_id", "enrolled_updates"), "message")
        if c.typ(m, "enrolled_updates", "obj", "message", True):
            u = m["enrolled_updates"]
            c.only(u, ("beneficiaries",), "message.enrolled_updates")
            if c.typ(u, "beneficiaries", "arr", "message.enrolled_updates", True):
                if not all(isinstance(b, dict) for b in u["beneficiaries"]):
                    c.errs.append("message.enrolled_updates.beneficiaries must hold objects")
                if isinstance(h.get("total_count"), int) and h["total_count"] != len(u["beneficiaries"]):
                    c.errs.append("header.total_count %r != %d beneficiaries" % (h["total_count"],
                                                                                 len(u["beneficiaries"])))
    return c.errs


def _validate_opencrvs(c, env):
    """What OpenCRVS' DCI gateway takes (opencrvs/dci-crvs-api, as OpenSPP's client sends it)."""
    h, m = _envelope(c, env, "opencrvs", "search", signature_required=False)
    if "is_msg_encrypted" in h:
        c.errs.append("header.is_msg_encrypted is not part of OpenCRVS' header")
    for i, it in enumerate(m.get("search_request") or [None]):
        w = "search_request[%d]" % i
        if not isinstance(it, dict):
            c.errs.append(w + " is not an object")
            continue
        sc = _dci_search_item(c, it, w)
        c.only(it, ("reference_id", "timestamp", "search_criteria", "consent", "locale"), w)
        if c.typ(it, "consent", "obj", w, True):
            c.typ(it["consent"], "purpose", "obj", w + ".consent", True)
        if c.typ(it, "locale", "str", w, True) and not re.match(r"^[a-z]{3}$", it["locale"]):
            c.errs.append("%s.locale %r is not a 3-letter language code" % (w, it["locale"]))
        w += ".search_criteria"
        if sc.get("query_type") != "expression":
            c.errs.append("%s.query_type %r: OpenCRVS takes expression queries" % (w, sc.get("query_type")))
        q = sc.get("query")
        if not (isinstance(q, dict) and q.get("type") == "ns:org:QueryType:expression"
                and isinstance(q.get("value"), dict) and isinstance(q["value"].get("expression"), dict)
                and isinstance(q["value"]["expression"].get("query"), dict)):
            c.errs.append(w + ".query must be {type: ns:org:QueryType:expression, value: {expression: {query: {...}}}}")
        ev = sc.get("reg_event_type")
        if ev not in ("birth", "death", "marriage"):
            c.errs.append("%s.reg_event_type %r is not birth, death or marriage (lower case)" % (w, ev))
        s = sc.get("sort")
        if not (isinstance(s, list) and s and all(isinstance(x, dict) and x.get("sort_order") in ("asc", "desc")
                                                  for x in s)):
            c.errs.append(w + ".sort must be a non-empty list of {attribute_name, sort_order}")
        p = sc.get("pagination")
        if not (isinstance(p, dict) and isinstance(p.get("page_size"), int) and p["page_size"] > 0):
            c.errs.append(w + ".pagination.page_size must be a positive integer")
    return c.errs


def _validate_openg2p(c, env):
    """OpenG2P's canonical search (OpenSPP's spp_dci_openg2p: its five envelope differences)."""
    h, m = _envelope(c, env, "request", "search")
    for i, it in enumerate(m.get("search_request") or [None]):
        w = "search_request[%d]" % i
        if not isinstance(it, dict):
            c.errs.append(w + " is not an object")
            continue
        sc = _dci_search_item(c, it, w)
        w += ".search_criteria"
        if sc.get("query_type") != "expression":
            c.errs.append("%s.query_type %r: OpenG2P takes expression queries" % (w, sc.get("query_type")))
        q = sc.get("query")
        try:
            ok = q["type"] == "ns:org:QueryType:expression" and "$eq" in q["value"]["expression"]["query"]["search_text"]
        except (KeyError, TypeError):
            ok = False
        if not ok:
            c.errs.append(w + ".query must be the expression on search_text {$eq: id}")
        for k in ("reg_type", "reg_record_type"):
            if sc.get(k) != "Individual":
                c.errs.append("%s.%s %r must be \"Individual\"" % (w, k, sc.get(k)))
        for k, t in (("consent", "Consent"), ("authorize", "Authorize")):
            b = sc.get(k)
            if not (isinstance(b, dict) and b.get("@type") == t and isinstance(b.get("purpose"), dict)):
                c.errs.append("%s.%s must be a JSON-LD %s block with a purpose" % (w, k, t))
    return c.errs


# ---------------------------------------------------------------- answers

def _registrant(q):
    """The registrant a query names: the first string value inside it (or None)."""
    if isinstance(q, str):
        return q
    if isinstance(q, dict):
        for k in ("term", "$eq", "eq", "value"):          # the operand of a match, when there is one
            if isinstance(q.get(k), str):
                return q[k]
        for v in q.values():
            r = _registrant(v)
            if r is not None:
                return r
    if isinstance(q, list):
        for v in q:
            r = _registrant(v)
            if r is not None:
                return r
    return None


def _item(who, extra):
    base = {"reference_id": str(uuid.uuid4()), "timestamp": NS["now_iso"](), "status": "succ"}
    if who == "RJCT":
        base.update({"status": "rjct", "status_reason_code": "rjct.reference_id.invalid",
                     "status_reason_message": "no registrant %s in this registry" % who})
        return base
    base.update(extra)
    return base


def _answer(req, m, action, list_name, item, bare=False):
    msg = {"transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4()), list_name: [item]}
    if bare:                        # the IBR spec's answers are the bare response object
        return NS["jbody"](msg)
    return NS["jbody"]({"signature": "", "header": NS["dci_header"](req, action=action), "message": msg})


def h_domain(req):
    jbody = NS["jbody"]
    if req.method != "POST":
        return jbody({"error": "method_not_allowed"}, 405)
    errs = req.dci_errors
    if errs:
        return NS["dci_reject"](req, "rjct.request.invalid", "; ".join(errs))
    env = json.loads(req.body)
    m, ep = env["message"], ENDPOINTS[req.path]
    if ep["kind"] in ("opencrvs", "openg2p"):
        return _dialect_search(req, m, ep["kind"])
    if ep["kind"] == "enrollment_updates":
        bens = m["enrolled_updates"]["beneficiaries"]
        items = [_item(_registrant(b), {"status_reason_message": "enrolment recorded"}) for b in bens]
        return NS["jbody"]({"transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4()),
                            "enrolled_response": items})
    who = _registrant(m[ep["criteria"]]["query"])
    if who == "FAIL503":
        return jbody({"error": "mock status 503"}, 503)
    if who == "HTTP400":
        return NS["dci_reject"](req, "rjct.query.invalid", "the query names no registrant")
    if req.path.endswith("/disabled"):
        return _answer(req, m, "on-search", "disabled_response",
                       _item(who, {"disabled_status": "no" if who == "ABLE" else "yes"}))
    if req.path.endswith("/enrolled"):
        return _answer(req, m, "on-search", "enrolled_response",
                       _item(who, {"enrolled_status": "no" if who == "NEW" else "yes"}), bare=True)
    if req.path.endswith("/get-disability-support"):
        recs = [[{"human_assistance": {"type": "mobility", "frequency": "Daily", "support_status": "Needed"},
                  "assistive_technology": [], "registration_date": "2023-05-20T09:00:00Z"}]]
    else:
        recs = [{"disability_details": [{"impairment_type": "Physical and movement related functions",
                                         "impairment_level": "Severe impairment or difficulty",
                                         "impairment_cause": "Work Accident", "age_on_set": "Working age"}],
                 "identifier": who}]
    # a registry's lenient counts: the normal form makes them numbers
    return _answer(req, m, "on-search", "search_response",
                   _item(who, {"data": {"version": "1.0.0", "reg_records": recs},
                               "pagination": {"page_size": "10", "page_number": "1", "total_count": "1"}}))


def _dialect_search(req, m, kind):
    out = []
    for it in m["search_request"]:
        q = it["search_criteria"]["query"]["value"]["expression"]["query"]
        who = _registrant(q)
        item = {"reference_id": it["reference_id"], "timestamp": NS["now_iso"](), "status": "succ"}
        if kind == "openg2p" and who == "NOTFOUND":
            # OpenG2P says "no such registrant" as a rejection with REG-ERR-001
            item.update({"status": "rjct", "status_reason_code": "REG-ERR-001",
                         "status_reason_message": "Record not found"})
        elif who == "RJCT":
            item.update({"status": "rjct", "status_reason_code": "rjct.reference_id.invalid",
                         "status_reason_message": "no such record"})
        else:
            rec = ({"id": who, "field": next(iter(q)), "name": {"given_name": "Amina"}} if kind == "opencrvs"
                   else {"reg_id": who, "is_poor": True, "name": "Amina Diallo"})
            item.update({"data": {"version": "1.0.0", "reg_type": it["search_criteria"].get("reg_type", ""),
                                  "reg_records": [rec]},
                         "pagination": {"page_size": 100, "page_number": 1, "total_count": 1}})
        out.append(item)
    h = NS["dci_header"](req, total=len(out))
    body = {"header": h, "message": {"transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4()),
                                     "search_response": out}}
    if kind == "opencrvs":
        h.pop("is_msg_encrypted", None)          # OpenCRVS writes neither this nor an empty signature
    else:
        body["signature"] = ""
    return NS["jbody"](body)


# ---------------------------------------------------------------- transaction status

def find_txn(t):
    """The stored transaction a txnstatus_request names (None: unknown)."""
    STATE = NS["STATE"]
    kind, value = t.get("attribute_type"), t.get("attribute_value")
    with STATE.lock:
        txns = json.loads(json.dumps(STATE.dci_txns))
    found = None
    if kind == "transaction_id" and isinstance(value, str):
        found = txns.get(value)
    elif kind == "reference_id_list" and isinstance(value, list):
        found = next((x for x in txns.values() if set(value) & set(x.get("reference_ids", []))), None)
    elif kind == "subscription_code_list" and isinstance(value, list):
        found = next((x for x in txns.values() if x.get("txn_type") == "subscribe"
                      and set(value) & set(x.get("subscription_codes", []))), None)
    # registries key on the attribute; the txn_type asked is checked by the tests, not here
    return found


ENDPOINTS = {
    "/registry/sync/get-disability-support": {"kind": "criteria", "criteria": "disabled_criteria",
                                              "header": "request", "action": "search"},
    "/registry/sync/get-disability-details": {"kind": "criteria", "criteria": "disabled_criteria",
                                              "header": "request", "action": "search"},
    "/registry/sync/disabled": {"kind": "criteria", "criteria": "disabled_criteria",
                                "header": "request", "action": "search"},
    "/registry/sync/enrolled": {"kind": "criteria", "criteria": "enrolled_criteria", "response_entity": True,
                                "header": "request", "action": "search"},
    "/registry/sync/enrollment/updates": {"kind": "enrollment_updates", "header": "callback", "action": "notify"},
    "/opencrvs/registry/sync/search": {"kind": "opencrvs"},
    "/openg2p/registry/sync/search": {"kind": "openg2p"},
}


def install(ns):
    """Hook into mock_registry: its globals give STATE and the answer helpers."""
    NS.update(ns)
    ns["ROUTES"].update({p: h_domain for p in ENDPOINTS})
