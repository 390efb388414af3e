#!/usr/bin/python3
"""Mock DCI registry for the dci_client tests.

Why a standalone process: the extension runs inside PostgreSQL backends, so the
registry must be a real TCP server outside the test process; faults (resets,
hangs, floods) are easier to produce reliably on raw sockets we own.

Usage: mock_registry.py --certdir DIR
Prints one JSON line {"http": P, "https": P, "control": P, "pid": N, ...} and
serves until SIGTERM/SIGINT. Data listeners: http, https (+ https_expired,
https_wronghost, https_selfsigned, https_mtls when DIR/NAME.crt exists).
The control listener (plain HTTP) never touches the counters.
"""
import argparse, base64, gzip, json, os, re, secrets, signal, socket, ssl, struct
import sys, threading, time, uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote_plus, urlsplit

import mock_jwks                      # the registry's JWKS (test/support/mock_jwks.py)
import mock_callbacks  # the registry calling back (issue 13)

TOKEN_PATH = "/oauth2/client/token"
SHUTDOWN = threading.Event()          # hang/slow_drip poll it so SIGTERM is prompt
DEFAULT_CLIENTS = {"openspp-client": {"client_id": "openspp-client", "client_secret": "s3cr3t-Pa55word",
                                      "expires_in": 3600, "expires_in_format": "number"}}
DEFAULT_BEARER = ["static-bearer-token-1"]
EXTRA_TLS = ("expired", "wronghost", "selfsigned", "mtls")


class State:
    """All mutable mock state, behind one lock (handlers run in many threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.clients = json.loads(json.dumps(DEFAULT_CLIENTS))
            self.bearer = list(DEFAULT_BEARER)
            self.tokens = {}              # token -> {"expires": monotonic, "revoked": bool}
            self.faults = []              # [{"path", "mode", "remaining", "params"}]
            self.connections = {}
            self.requests, self.methods, self.last_request = {}, {}, {}
            self.token_requests = self.token_issued = 0
            self.authorization, self.token_log = [], []
            self.dci_validation, self.dci_txns, self.dci_subscriptions = [], {}, {}
            # batched search (issue 12): what the sync search endpoint saw, and how it behaves
            self.search = {"envelopes": 0, "items": 0, "inflight": 0, "max_inflight": 0, "sizes": []}
            self.search_conf = {"delay": 0.0, "max_items": 0, "refuse": "rjct"}

    def stats(self):
        with self.lock:
            return {"connections": dict(self.connections), "requests": dict(self.requests),
                    "methods": json.loads(json.dumps(self.methods)),
                    "token_requests": self.token_requests, "token_issued": self.token_issued,
                    "authorization": list(self.authorization), "token_log": list(self.token_log),
                    "last_request": dict(self.last_request),
                    "faults": [dict(f) for f in self.faults],
                    "clients": sorted(self.clients), "bearer_tokens": list(self.bearer),
                    "dci_validation": [dict(v) for v in self.dci_validation],
                    "dci_subscriptions": json.loads(json.dumps(self.dci_subscriptions)),
                    "dci_transactions": sorted(self.dci_txns),
                    "search": json.loads(json.dumps(self.search)),
                    "jwks": mock_jwks.stats(),
                    "tokens_live": sum(1 for t in self.tokens.values()
                                       if not t["revoked"] and t["expires"] > time.monotonic())}

    def take_fault(self, path, at_accept=False):
        """Pop one queued fault for this request (or, at accept, a close_before fault)."""
        with self.lock:
            for f in self.faults:
                if at_accept != (f["mode"] == "close_before"):
                    continue
                if at_accept or f["path"] in (path, "*"):
                    if int(f["params"].get("after", 0)) > 0:       # let this many requests pass first
                        f["params"]["after"] = int(f["params"]["after"]) - 1
                        return None
                    f["remaining"] -= 1
                    if f["remaining"] <= 0:
                        self.faults.remove(f)
                    return f["mode"], {k: v for k, v in f["params"].items() if k != "after"}
        return None

    def token_ok(self, tok):
        with self.lock:
            if tok in self.bearer:
                return True
            t = self.tokens.get(tok)
            return bool(t) and not t["revoked"] and t["expires"] > time.monotonic()


STATE = State()


def now_iso():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def jbody(obj, status=200, extra=()):
    """A normal JSON answer: (status, [(name, value)], bytes)."""
    return status, [("Content-Type", "application/json")] + list(extra), json.dumps(obj).encode()


# ---------------------------------------------------------------- signed answers
def sign_answer(body, mode):
    """Sign a DCI answer as the README's "Signing" says, with the fixture Ed25519 key (the source
    asks through its extra_headers: X-Mock-Sign: ed25519 | tamper | expired), or
    as OpenCRVS does, a compact JWS (RS256, kid = RFC 7638 thumbprint) over the
    body without "signature", with the fixture RSA key (jws | jws-tamper |
    jws-badsig)."""
    import base64, hashlib
    from cryptography.hazmat.primitives import serialization
    try:
        env = json.loads(body)
    except ValueError:
        return body
    if not isinstance(env, dict) or "header" not in env or "message" not in env:
        return body
    fixtures = os.environ.get("DCI_SIGNING_FIXTURES") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "signing")
    if mode.startswith("jws"):
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        def b64u(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

        def uint(i):
            return i.to_bytes((i.bit_length() + 7) // 8, "big")

        with open(os.path.join(fixtures, "rsa_private.pem"), "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        pub = key.public_key().public_numbers()
        kid = b64u(hashlib.sha256(json.dumps({"e": b64u(uint(pub.e)), "kty": "RSA", "n": b64u(uint(pub.n))},
                                             sort_keys=True, separators=(",", ":")).encode()).digest())
        env.pop("signature", None)
        # the payload is spelled as the registry likes (here: Python's default spacing)
        signing_input = (b64u(json.dumps({"alg": "RS256", "kid": kid}, separators=(",", ":")).encode()) + "." +
                         b64u(json.dumps(env).encode()))
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        if mode == "jws-badsig":
            sig = bytes([sig[0] ^ 1]) + sig[1:]
        env["signature"] = signing_input + "." + b64u(sig)
        if mode == "jws-tamper":
            env["message"]["tampered"] = True
        return json.dumps(env).encode()
    with open(os.path.join(fixtures, "ed25519_private.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    canonical = json.dumps({"header": env["header"], "message": env["message"]},
                           sort_keys=True, separators=(",", ":"))
    digest = base64.b64encode(hashlib.sha256(canonical.encode()).digest()).decode()
    created = int(time.time()) - (1000 if mode == "expired" else 0)
    expires = created + 300
    signing_string = "(created): %d\n(expires): %d\ndigest: %s" % (created, expires, digest)
    sig = base64.b64encode(key.sign(signing_string.encode())).decode()
    env["signature"] = ('namespace="dci", kidId="%s|mock-registry-key|ed25519", algorithm="ed25519", '
                        'created="%d", expires="%d", headers="(created) (expires) digest", signature="%s"'
                        % (env["header"].get("sender_id", ""), created, expires, sig))
    if mode == "tamper":
        env["message"]["tampered"] = True
    return json.dumps(env).encode()


# ---------------------------------------------------------------- data API
def h_ping(req):
    if req.method not in ("GET", "POST", "HEAD"):
        return jbody({"error": "method_not_allowed"}, 405)
    return jbody({"status": "ok"})


# ---------------------------------------------------------------- DCI endpoints
# Every envelope received on a DCI path is checked against the DCI request
# schema rules (stats()["dci_validation"]); a violation is answered with HTTP 400
# and a DCI error, so a test fails loudly.  Answers come from a synthetic
# registry chosen by the query (see dci_records) or from test/fixtures/dci.
DCI_PATHS = {"/registry/sync/search": "search", "/registry/search": "search",
             "/registry/subscribe": "subscribe", "/registry/unsubscribe": "unsubscribe",
             "/registry/sync/txn/status": "txn-status", "/registry/txn/status": "txn-status"}
DCI_ACTIONS = ("search", "on-search", "subscribe", "on-subscribe", "notify", "unsubscribe",
               "on-unsubscribe", "txn-status", "txn-on-status")
DCI_QUERY_TYPES = ("idtype-value", "expression", "predicate", "graphql")
FIXTURES_DIR = os.environ.get("DCI_FIXTURES") or os.path.normpath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "dci"))
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _iso_ok(v):
    if not isinstance(v, str) or not _TS_RE.match(v):
        return False
    try:
        datetime.fromisoformat(v.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


def dci_validate(path, raw):
    """The DCI request schema rules; returns a list of violations (empty: valid)."""
    errs = []
    try:
        env = json.loads(raw)
    except ValueError as e:
        return ["body is not JSON: %s" % e]
    if not isinstance(env, dict):
        return ["envelope is not an object"]

    def typ(obj, key, kind, where, required=False):
        if key not in obj:
            if required:
                errs.append("%s.%s is required" % (where, key))
            return False
        v = obj[key]
        ok = {"str": isinstance(v, str), "obj": isinstance(v, dict), "arr": isinstance(v, list),
              "bool": isinstance(v, bool),
              "int": isinstance(v, int) and not isinstance(v, bool)}[kind]
        if not ok:
            errs.append("%s.%s must be %s, not %r" % (where, key, kind, v))
        return ok

    for k in env:
        if k not in ("signature", "header", "message"):
            errs.append("unknown top-level member %r" % k)
    typ(env, "signature", "str", "envelope", True)
    h = env.get("header") if typ(env, "header", "obj", "envelope", True) else {}
    m = env.get("message") if typ(env, "message", "obj", "envelope", True) else {}
    for k in ("message_id", "message_ts", "action", "sender_id"):
        typ(h, k, "str", "header", True)
    for k in ("version", "sender_uri", "receiver_id"):
        typ(h, k, "str", "header")
    typ(h, "is_msg_encrypted", "bool", "header")
    typ(h, "meta", "obj", "header")
    if typ(h, "total_count", "int", "header", True) and h["total_count"] < 0:
        errs.append("header.total_count must be >= 0")
    if isinstance(h.get("message_id"), str) and not _UUID_RE.match(h["message_id"]):
        errs.append("header.message_id is not a UUID: %r" % h["message_id"])
    if isinstance(h.get("message_ts"), str) and not _iso_ok(h["message_ts"]):
        errs.append("header.message_ts is not ISO 8601 with a zone: %r" % h["message_ts"])
    if isinstance(h.get("version"), str) and h["version"] != "1.0.0":
        errs.append("header.version %r is not 1.0.0" % h["version"])
    action = h.get("action")
    if isinstance(action, str) and action not in DCI_ACTIONS:
        errs.append("header.action %r is not a DCI action" % action)
    want = DCI_PATHS.get(path)
    if want and isinstance(action, str) and action != want:
        errs.append("header.action %r does not belong on %s (want %r)" % (action, path, want))
    if h.get("is_msg_encrypted") is True:
        errs.append("header.is_msg_encrypted: the mock only takes clear messages")
    total = h.get("total_count") if isinstance(h.get("total_count"), int) else None
    if typ(m, "transaction_id", "str", "message", True) and not 1 <= len(m["transaction_id"]) <= 99:
        errs.append("message.transaction_id must be 1..99 characters")

    def item_common(it, where):
        typ(it, "reference_id", "str", where, True)
        if typ(it, "timestamp", "str", where, True) and not _iso_ok(it["timestamp"]):
            errs.append("%s.timestamp is not ISO 8601 with a zone: %r" % (where, it["timestamp"]))
        typ(it, "locale", "str", where)

    def items(key):
        if not typ(m, key, "arr", "message", True):
            return []
        if not m[key]:
            errs.append("message.%s must not be empty" % key)
        if total is not None and total != len(m[key]):
            errs.append("header.total_count %d != %d entries in message.%s" % (total, len(m[key]), key))
        return m[key]

    if want == "search":
        for i, it in enumerate(items("search_request")):
            w = "search_request[%d]" % i
            if not isinstance(it, dict):
                errs.append(w + " is not an object")
                continue
            item_common(it, w)
            if not typ(it, "search_criteria", "obj", w, True):
                continue
            sc, w = it["search_criteria"], w + ".search_criteria"
            for k in ("version", "reg_type", "reg_record_type"):
                typ(sc, k, "str", w)
            if "reg_event_type" in sc and not isinstance(sc["reg_event_type"], (str, dict)):
                errs.append(w + ".reg_event_type must be a string or object")
            for k in ("consent", "authorize"):
                typ(sc, k, "obj", w)
            qt = sc.get("query_type")
            if typ(sc, "query_type", "str", w, True) and qt not in DCI_QUERY_TYPES:
                errs.append("%s.query_type %r is not one of %s" % (w, qt, DCI_QUERY_TYPES))
            if "query" not in sc:
                errs.append(w + ".query is required")
            else:
                q = sc["query"]
                if qt == "idtype-value" and not (isinstance(q, dict) and isinstance(q.get("type"), str)
                                                 and isinstance(q.get("value"), str)):
                    errs.append(w + ".query must be {type: string, value: string} for idtype-value")
                elif qt == "predicate" and not (isinstance(q, list) and q and all(isinstance(x, dict) for x in q)):
                    errs.append(w + ".query must be a non-empty array of objects for predicate")
                elif qt == "expression" and not isinstance(q, dict):
                    errs.append(w + ".query must be an object for expression")
                elif qt == "graphql" and not isinstance(q, (str, dict)):
                    errs.append(w + ".query must be a string or object for graphql")
            if typ(sc, "pagination", "obj", w):
                p = sc["pagination"]
                if not (isinstance(p.get("page_size"), int) and not isinstance(p.get("page_size"), bool)
                        and 1 <= p["page_size"] <= 1000):
                    errs.append("%s.pagination.page_size must be an integer 1..1000, not %r" % (w, p.get("page_size")))
                if not (isinstance(p.get("page_number"), int) and not isinstance(p.get("page_number"), bool)
                        and p["page_number"] >= 1):
                    errs.append("%s.pagination.page_number must be an integer >= 1, not %r" % (w, p.get("page_number")))
            if typ(sc, "sort", "arr", w):
                for j, s in enumerate(sc["sort"]):
                    if not (isinstance(s, dict) and isinstance(s.get("attribute_name"), str)
                            and s.get("sort_order") in ("asc", "desc")):
                        errs.append("%s.sort[%d] must be {attribute_name, sort_order asc|desc}" % (w, j))
    elif want == "subscribe":
        for i, it in enumerate(items("subscribe_request")):
            w = "subscribe_request[%d]" % i
            if not isinstance(it, dict):
                errs.append(w + " is not an object")
                continue
            item_common(it, w)
            if not typ(it, "subscribe_criteria", "obj", w, True):
                continue
            sc, w = it["subscribe_criteria"], w + ".subscribe_criteria"
            typ(sc, "reg_event_type", "str", w, True)
            typ(sc, "notify_record_type", "str", w, True)        # required by all five specs
            for k in ("reg_type", "frequency"):
                typ(sc, k, "str", w)
            if "filter_type" in sc and sc["filter_type"] not in ("idtype-value", "expression", "predicate"):
                errs.append("%s.filter_type %r is not idtype-value, expression or predicate" % (w, sc["filter_type"]))
            if "filter" not in sc:
                errs.append(w + ".filter is required")
    elif want == "unsubscribe":
        if typ(m, "timestamp", "str", "message", True) and not _iso_ok(m["timestamp"]):
            errs.append("message.timestamp is not ISO 8601 with a zone: %r" % m["timestamp"])
        for j, c in enumerate(items("subscription_codes")):
            if not isinstance(c, str) or not c:
                errs.append("message.subscription_codes[%d] must be a non-empty string" % j)
    elif want == "txn-status":
        if total is not None and total != 1:
            errs.append("header.total_count must be 1 for a txn-status request, not %d" % total)
        if typ(m, "txnstatus_request", "obj", "message", True):
            t, w = m["txnstatus_request"], "txnstatus_request"
            typ(t, "reference_id", "str", w, True)
            typ(t, "locale", "str", w)
            if t.get("txn_type") not in ("search", "subscribe", "unsubscribe", "receipt"):
                errs.append("%s.txn_type %r is not search, subscribe, unsubscribe or receipt" % (w, t.get("txn_type")))
            if t.get("attribute_type") not in ("transaction_id", "reference_id_list", "correlation_id",
                                               "subscription_code_list"):
                errs.append("%s.attribute_type %r is not valid" % (w, t.get("attribute_type")))
            if not isinstance(t.get("attribute_value"), (str, list)):
                errs.append(w + ".attribute_value must be a string or array")
    return errs


def dci_header(req, status="succ", action="on-search", total=1, code=None, reason=None):
    try:
        sender = json.loads(req.body)["header"].get("sender_id", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        sender = ""
    h = {"version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": now_iso(), "action": action,
         "status": status, "total_count": total, "completed_count": total if status == "succ" else 0,
         "sender_id": "mock-registry", "receiver_id": sender, "is_msg_encrypted": False, "meta": {}}
    if code:
        h["status_reason_code"], h["status_reason_message"] = code, reason or code
    return h


def dci_reject(req, code, reason, http=400, action="on-search"):
    return jbody({"signature": "", "header": dci_header(req, "rjct", action, 0, code, reason[:999]),
                  "message": {}}, http)


def dci_fixture(name):
    with open(os.path.join(FIXTURES_DIR, name), "rb") as f:
        return 200, [("Content-Type", "application/json")], f.read()


# Registry kinds: the record an idtype-value search finds depends on reg_type.
def dci_person(i, id_type, id_value, reg_type):
    rec = {"id": i, "identifier": [{"identifier_type": id_type, "identifier_value": id_value}]}
    kind = (reg_type or "").rsplit(":", 1)[-1]
    if kind == "Civil" or id_type == "BRN":
        rec.update({"name": {"given_name": "Amina", "surname": "Diallo"}, "sex": "female",
                    "birth_date": "2019-03-14", "birth_place": "Kigali",
                    "registration_date": "2019-03-20", "vital_status": "alive"})
    elif kind == "DR":
        rec.update({"disability": {"status": "verified", "functional_difficulty": ["mobility"],
                                   "severity": "moderate", "assessed_on": "2024-02-01"}})
        rec.update(dr_spec_fields(id_value))
    elif kind == "IBR":
        rec.update({"enrollments": [{"program": "Child Grant", "status": "active",
                                     "enrolled_on": "2023-06-01", "agency": "MoSD"}]})
    return rec


def dr_spec_fields(id_value):
    """The DR spec's DisabledPerson fields (dr_api_v1.0.0.yaml); a value
    starting DENIED is a refused registration."""
    if str(id_value).startswith("DENIED"):
        return {"disability_status": "Rejected", "disability_details": [],
                "registration_date": "2023-01-10T00:00:00Z"}
    return {"disability_status": "Approved", "disability_level": "Moderate",
            "disability_details": [{"impairment_type": "Physical and movement related functions",
                                    "impairment_level": "Moderate impairment or difficulty",
                                    "impairment_cause": "Work Accident", "age_on_set": "Working age"}],
            "registration_date": "2023-01-10T00:00:00Z", "last_updated": "2024-02-01T00:00:00Z"}


def dci_records(sc, page_size, page_number):
    """(records of the page, total_count or None, special answer name or None)."""
    qt, q = sc.get("query_type"), sc.get("query")
    if qt != "idtype-value":
        # the other query types: a fixed result of 3 records, echoing the query type
        recs = [{"id": i, "query_type": qt} for i in range(1, 4)]
        lo = (page_number - 1) * page_size
        return recs[lo:lo + page_size], len(recs), None
    t, v = q["type"], q["value"]
    if v in ("LENIENT", "REJECTED", "STRICT", "ITEM_RJCT", "NOT_DCI", "HTML", "HTTP400", "NACK", "ERR", "SYNC_ERR"):
        return [], 0, v
    if v == "NOTFOUND":
        return [], 0, None
    lo = (page_number - 1) * page_size
    if t in ("BULK", "CAPPED"):
        n = int(v)
        ids = range(lo + 1, min(lo + page_size, n) + 1)
        return [{"id": i, "identifier": [{"identifier_type": "UIN", "identifier_value": "%09d" % i}]}
                for i in ids], n, None
    if t == "FOREVER":
        return [{"id": i, "identifier": [{"identifier_type": "UIN", "identifier_value": "%09d" % i}]}
                for i in range(lo + 1, lo + page_size + 1)], None, None
    recs = [dci_person(1, t, v, sc.get("reg_type"))]
    return recs[lo:lo + page_size], 1, None


def dci_search_items(req, m):
    """search_response items for a search message, or a whole special answer."""
    out = []
    for it in m["search_request"]:
        sc = it["search_criteria"]
        p = sc.get("pagination") or {"page_size": 100, "page_number": 1}
        if isinstance(sc.get("query"), dict) and sc["query"].get("type") == "CAPPED":
            p = dict(p, page_size=min(p["page_size"], 10))   # a registry that caps its page size
        recs, total, special = dci_records(sc, p["page_size"], p["page_number"])
        if special:
            return None, special
        pag = {"page_size": p["page_size"], "page_number": p["page_number"]}
        if total is not None:
            pag["total_count"] = total
        item = {"reference_id": it["reference_id"], "timestamp": now_iso(), "status": "succ",
                "data": {"version": "1.0.0", "reg_type": sc.get("reg_type", ""),
                         "reg_record_type": sc.get("reg_record_type", "Person"), "reg_records": recs},
                "pagination": pag}
        if "locale" in it:
            item["locale"] = it["locale"]
        out.append(item)
    return out, None


def dci_special(req, special, m):
    if special == "LENIENT":
        return dci_fixture("search_response_lenient.json")
    if special == "STRICT":
        return dci_fixture("search_response_strict.json")
    if special == "REJECTED":
        return dci_fixture("search_response_rejected.json")
    if special == "NOT_DCI":
        return jbody({"result": "ok", "records": [{"id": 1}]})
    if special == "HTML":
        return 200, [("Content-Type", "text/html")], b"<html><body>Registry portal</body></html>"
    if special == "HTTP400":
        return dci_reject(req, "rjct.search_criteria.invalid", "the search criteria are not supported")
    if special == "ITEM_RJCT":
        it = m["search_request"][0]
        return jbody({"signature": "", "header": dci_header(req), "message": {
            "transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4()),
            "search_response": [{"reference_id": it["reference_id"], "timestamp": now_iso(),
                                 "status": "rjct", "status_reason_code": "rjct.search.too_many_records_found",
                                 "status_reason_message": "narrow the search: too many records match"}]}})
    return None


def dci_ack(req, status="ACK", code=None, text=None, http=202):
    msg = {"ack_status": status, "timestamp": now_iso(), "correlation_id": str(uuid.uuid4())}
    if code:
        msg["error"] = {"code": code, "message": text or code}
    return jbody({"message": msg}, http)


def h_dci(req):
    if req.method != "POST":
        return jbody({"error": "method_not_allowed"}, 405)
    errs = getattr(req, "dci_errors", None)
    if errs is None:
        errs = dci_validate(req.path, req.body)
    if errs:
        return dci_reject(req, "rjct.request.invalid", "; ".join(errs))
    env = json.loads(req.body)
    m, kind = env["message"], DCI_PATHS[req.path]
    if req.path == "/registry/sync/search":
        with STATE.lock:
            conf = dict(STATE.search_conf)
        n = len(m["search_request"])
        values = [str((it["search_criteria"].get("query") or {}).get("value", ""))
                  if isinstance(it["search_criteria"].get("query"), dict) else "" for it in m["search_request"]]
        if conf["max_items"] and n > conf["max_items"]:     # a registry that caps its envelopes
            if conf["refuse"] == "413":
                return jbody({"error": "request entity too large"}, 413)
            return dci_reject(req, "rjct.total_count.limit_exceeded",
                              "at most %d search requests per message" % conf["max_items"])
        if any(v.startswith("FAIL503") for v in values):
            return jbody({"error": "mock status 503"}, 503)
        if any(v.startswith("BADSIG") for v in values):
            req.batch_tamper = True
        items, special = dci_search_items(req, m)
        if items is not None and special is None:
            for it, v in zip(items, values):
                if v.startswith("RJCT"):
                    it.pop("data", None)
                    it.update({"status": "rjct", "status_reason_code": "rjct.reference_id.invalid",
                               "status_reason_message": "no such person: %s" % v})
        if special in ("NACK", "ERR"):
            special = "HTTP400"
        if special == "SYNC_ERR":           # an acknowledgement with ERR where an answer belongs
            return dci_ack(req, "ERR", "err.service.unavailable", "the registry could not run the search", 200)
        if special:
            return dci_special(req, special, m)
        return jbody({"signature": "", "header": dci_header(req, total=len(items)), "message": {
            "transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4()),
            "search_response": items}})
    if req.path == "/registry/search":
        items, special = dci_search_items(req, m)
        if special == "NACK":
            return dci_ack(req, "NACK", "err.request.bad", "the search request was refused", 200)
        if special == "ERR":
            return dci_ack(req, "ERR", "err.service.unavailable", "the registry could not take the search", 200)
        with STATE.lock:
            STATE.dci_txns[m["transaction_id"]] = {"txn_type": "search", "search_response": items or [],
                                                   "reference_ids": [it["reference_id"] for it in m["search_request"]]}
        mock_callbacks.on_async(sys.modules[__name__], req, env)
        return dci_ack(req)
    if kind == "subscribe":
        crit = [it["subscribe_criteria"] for it in m["subscribe_request"]]
        if any(c.get("reg_event_type") == "NACK" for c in crit):
            return dci_ack(req, "NACK", "err.request.bad", "unknown reg_event_type", 200)
        with STATE.lock:
            codes = []
            for c in crit:
                code = "SUB-%04d" % (len(STATE.dci_subscriptions) + 1)
                STATE.dci_subscriptions[code] = {"transaction_id": m["transaction_id"], "criteria": c,
                                                 "active": True}
                codes.append(code)
            STATE.dci_txns[m["transaction_id"]] = {"txn_type": "subscribe", "subscription_codes": codes,
                                                   "reference_ids": [it["reference_id"] for it in m["subscribe_request"]]}
        mock_callbacks.on_async(sys.modules[__name__], req, env)
        return dci_ack(req)
    if kind == "unsubscribe":
        if "NACK" in m["subscription_codes"]:
            return dci_ack(req, "NACK", "err.request.bad", "unknown subscription code", 200)
        with STATE.lock:
            for c in m["subscription_codes"]:
                if c in STATE.dci_subscriptions:
                    STATE.dci_subscriptions[c]["active"] = False
            STATE.dci_txns[m["transaction_id"]] = {"txn_type": "unsubscribe",
                                                   "subscription_codes": list(m["subscription_codes"])}
        mock_callbacks.on_async(sys.modules[__name__], req, env)
        return dci_ack(req)
    # txn status (sync answers here; the async path only acknowledges)
    t = m["txnstatus_request"]
    if req.path == "/registry/txn/status":
        mock_callbacks.on_async(sys.modules[__name__], req, env)
        return dci_ack(req)
    known = mock_domain.find_txn(t)          # by any attribute_type, of the txn_type asked
    if known is None:
        return jbody({"signature": "", "header": dci_header(req, "rjct", "txn-on-status", 0,
                                                             "rjct.transaction_id.invalid",
                                                             "unknown transaction %s" % t["attribute_value"]),
                      "message": {"transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4())}})
    resp = dict(known, reference_id=t["reference_id"], txn_status="succ", timestamp=now_iso())
    return jbody({"signature": "", "header": dci_header(req, action="txn-on-status"), "message": {
        "transaction_id": m["transaction_id"], "correlation_id": str(uuid.uuid4()),
        "txnstatus_response": resp}})


def h_echo(req):
    if req.path.endswith("/signature-error"):
        # a registry refusing a signature by quoting it, as validation errors do
        try:
            sig = json.loads(req.body).get("signature", "")
        except (ValueError, AttributeError):
            sig = ""
        return jbody({"header": {"status": "rjct", "status_reason_code": "rjct.signature.invalid",
                                 "status_reason_message": "signature %s does not verify" % sig}, "message": {}})
    return jbody({"method": req.method, "path": req.path, "query": req.query,
                  "headers": req.hdrs, "body": req.body})


def _u_escape_all(text):
    """Every character as a JSON \\uXXXX escape (what a hostile echo may send)."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF)))
        else:
            out.append("\\u%04X" % cp)
    return "".join(out)


def h_echo_auth(req):
    """Echo the Authorization header (and any credential) in every spelling a
    registry might use: raw, JSON \\u-escaped, URL-encoded, base64, and as
    response headers."""
    from urllib.parse import quote
    auth = req.hdrs.get("authorization", "")
    value = auth.split(" ", 1)[1] if " " in auth else auth
    b64 = base64.b64encode(value.encode()).decode()
    body = ('{"raw": %s, "u_escaped": "%s", "url": %s, "url_all": "%s", "b64": %s, "b64_slash": %s, '
            '"body": %s, "query": %s}' % (
                json.dumps(auth), _u_escape_all(value), json.dumps(quote(value, safe="")),
                "".join("%%%02X" % b for b in value.encode()), json.dumps(b64),
                json.dumps(b64).replace("/", "\\/"), json.dumps(req.body), json.dumps(req.query)))
    bearer_b64 = base64.b64encode(auth.encode()).decode()          # the token inside a longer base64
    unpadded_url = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")
    body = body[:-1] + ', "b64_bearer": %s, "b64url_unpadded": %s}' % (json.dumps(bearer_b64),
                                                                     json.dumps(unpadded_url))
    name = "X-Tok-" + "".join(c for c in value if c.isalnum() or c in "-_.")   # the token in a header name
    return 200, [("Content-Type", "application/json"), ("X-Echo-Authorization", auth),
                 ("X-Echo-Url", quote(value, safe="")), (name, "1")], body.encode()


ROUTES = dict({"/registry/ping": h_ping, "/echo-auth": h_echo_auth}, **{p: h_dci for p in DCI_PATHS})
PREFIX_ROUTES = {"/echo": h_echo, "/open/echo": h_echo}   # path itself or any sub-path
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_domain                                         # noqa: E402  DR/IBR endpoints, dialects (issue 14)
mock_domain.install(globals())


def route(req):
    if req.path.startswith("/open/registry/"):     # the DCI endpoints, unauthenticated (auth_type none)
        req.path = req.path[len("/open"):]
    h = ROUTES.get(req.path)
    if h is None:
        for p, fn in PREFIX_ROUTES.items():
            if req.path == p or req.path.startswith(p + "/"):
                h = fn
    return h(req) if h else jbody({"error": "not_found", "path": req.path}, 404)


def h_token(req):
    """OAuth2 client-credentials grant; credentials from basic header, body or query."""
    ctype = req.hdrs.get("content-type", "")
    form = parse_qs(req.body, keep_blank_values=True) if "x-www-form-urlencoded" in ctype else {}
    q = parse_qs(req.query, keep_blank_values=True)
    one = lambda d, k: d[k][0] if k in d else None
    basic_id = basic_secret = None
    auth = req.hdrs.get("authorization")
    if auth and auth[:6].lower() == "basic ":
        try:   # RFC 6749 2.3.1: form-urlencode id and secret, then base64 "id:secret"
            i, _, s = base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")
            basic_id, basic_secret = unquote_plus(i), unquote_plus(s)
        except ValueError:
            pass
    if basic_id is not None:
        loc, cid, csec = "basic", basic_id, basic_secret
    elif "client_id" in form:
        loc, cid, csec = "body", one(form, "client_id"), one(form, "client_secret")
    elif "client_id" in q:
        loc, cid, csec = "query", one(q, "client_id"), one(q, "client_secret")
    else:
        loc, cid, csec = "none", None, None
    grant = one(form, "grant_type")
    rec = {"location": loc, "client_id": cid, "scope": one(form, "scope"), "grant_type": grant,
           "content_type": ctype, "accept": req.hdrs.get("accept"), "query_keys": sorted(q),
           "body_keys": sorted(form), "has_authorization": auth is not None,
           "secret_in_body": "client_secret" in form, "secret_in_query": "client_secret" in q,
           "secret_in_basic": basic_secret is not None}
    with STATE.lock:
        STATE.token_log.append(rec)
        client = STATE.clients.get(cid) if cid is not None else None
    if grant != "client_credentials":
        return jbody({"error": "unsupported_grant_type"}, 400)
    if not client or client["client_secret"] != csec:
        return jbody({"error": "invalid_client", "error_description": "Client authentication failed"}, 401)
    fmt, exp = client.get("expires_in_format", "number"), client.get("expires_in")
    try:
        life = float(exp) if exp is not None and fmt != "absent" else 3600.0
    except ValueError:
        life = 3600.0
    with STATE.lock:
        STATE.token_issued += 1
        tok = "tok-%d-%s" % (STATE.token_issued, secrets.token_hex(4))
        STATE.tokens[tok] = {"expires": time.monotonic() + life, "revoked": False}
    out = {"access_token": tok, "token_type": "bearer"}
    if fmt == "number":     # coerce "3600" to 3600 when the test asked for a number
        out["expires_in"] = exp if not isinstance(exp, str) else (float(exp) if "." in exp else int(exp))
    elif fmt == "string":
        out["expires_in"] = str(exp)
    return jbody(out)


# ---------------------------------------------------------------- faults
def parse_fault_header(v):
    """X-Mock-Fault: mode[;param=value...] (one-off fault chosen by the request)."""
    parts = [p.strip() for p in v.split(";") if p.strip()]
    params = dict(p.partition("=")[::2] for p in parts[1:])
    return parts[0], params


def num(params, key, default):
    v = params.get(key)
    return default if v is None else (float(v) if "." in str(v) else int(v))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive, like real registries
    disable_nagle_algorithm = True         # no 40 ms delayed-ACK stalls on keep-alive
    timeout = 300                          # idle keep-alive connections eventually go away

    def log_message(self, *a):             # keep stderr for real crashes only
        pass

    def setup(self):
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()    # in the worker thread, not the accept loop

    def handle(self):
        try:
            super().handle()
        except OSError:                    # peer went away / TLS failure / our own abort()
            self.close_connection = True
        except ValueError as e:            # I/O on a file closed by abort()
            if "closed" not in str(e):
                raise

    # -- request plumbing
    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def dispatch(self):
        u = urlsplit(self.path)
        self.raw_body = self.read_body()
        self.body = self.raw_body.decode("utf-8", "replace")
        self.path, self.query, self.full_path = u.path, u.query, self.path
        self.method = self.command
        self.hdrs = {k.lower(): v for k, v in self.headers.items()}
        is_token = self.path == TOKEN_PATH or self.path.endswith("/token")
        with STATE.lock:
            STATE.requests[self.path] = STATE.requests.get(self.path, 0) + 1
            pm = STATE.methods.setdefault(self.path, {})
            pm[self.method] = pm.get(self.method, 0) + 1
            STATE.last_request[self.path] = {"method": self.method, "headers": self.hdrs,
                                             "body": self.body, "query": self.query}
            if is_token:
                STATE.token_requests += 1
            else:
                STATE.authorization.append(self.hdrs.get("authorization"))
        if (self.path in DCI_PATHS or self.path in mock_domain.ENDPOINTS) and self.method == "POST":
            # every DCI envelope, faults or not
            self.dci_errors = (mock_domain.validate(self.path, self.body) if self.path in mock_domain.ENDPOINTS
                               else dci_validate(self.path, self.body))
            with STATE.lock:
                STATE.dci_validation.append({"path": self.path, "ok": not self.dci_errors,
                                             "errors": list(self.dci_errors)})
        counting = self.path == "/registry/sync/search" and self.method == "POST"
        if counting:
            try:
                n_items = len(json.loads(self.body)["message"]["search_request"])
            except (ValueError, KeyError, TypeError):
                n_items = 0
            with STATE.lock:
                sr = STATE.search
                sr["envelopes"] += 1
                sr["items"] += n_items
                sr["sizes"].append(n_items)
                sr["inflight"] += 1
                sr["max_inflight"] = max(sr["max_inflight"], sr["inflight"])
                delay = STATE.search_conf["delay"]
            self.in_flight = True
            try:
                if delay:
                    self.sleep(delay)
                return self.dispatch_rest()
            finally:
                self.end_in_flight()
        return self.dispatch_rest()

    def end_in_flight(self):
        # before the answer goes out: once the client has it, it may send the next
        if getattr(self, "in_flight", False):
            self.in_flight = False
            with STATE.lock:
                STATE.search["inflight"] -= 1

    def dispatch_rest(self):
        self.batch_tamper = False
        is_token = self.path == TOKEN_PATH or self.path.endswith("/token")
        hv = self.headers.get("X-Mock-Fault")
        fault = parse_fault_header(hv) if hv else STATE.take_fault(self.path)
        if fault:
            mode, params = fault
            if self.apply_fault(mode, params, is_token):
                return
        status, headers, body = mock_jwks.serve(self) or self.normal(is_token)
        sign = self.headers.get("X-Mock-Sign")
        signed_path = self.path in DCI_PATHS or self.path in mock_domain.ENDPOINTS
        if sign and signed_path and sign.startswith("jwks"):
            body = mock_jwks.sign_answer(body, sign)
        elif sign and signed_path:
            body = sign_answer(body, "tamper" if getattr(self, "batch_tamper", False) else sign)
        self.send(status, headers, body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = dispatch

    def normal(self, is_token):
        if is_token:
            return h_token(self)
        if not self.path.startswith("/open/"):
            a = self.hdrs.get("authorization", "")
            if a[:7].lower() != "bearer " or not STATE.token_ok(a[7:].strip()):
                return jbody({"error": "invalid_token"}, 401, [("WWW-Authenticate", 'Bearer error="invalid_token"')])
        return route(self)

    def send(self, status, headers, body):
        self.end_in_flight()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.method != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def abort(self, rst=True, linger=0.1):
        """Drop the connection; with rst, SO_LINGER(1, 0) makes close() send a TCP RST."""
        self.close_connection = True
        try:
            self.wfile.flush()
            if linger:
                time.sleep(linger)     # let already-sent bytes reach the peer before the RST
            if rst:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            self.request.close()
        except OSError:
            pass

    def sleep(self, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end and not SHUTDOWN.is_set():
            time.sleep(min(0.1, max(0, end - time.monotonic())))

    def apply_fault(self, mode, p, is_token):
        """Returns True when the fault produced the whole answer (or no answer)."""
        w = self.request.sendall
        if mode == "slow":
            self.sleep(num(p, "delay", 2))
            return False
        if mode == "hang":
            self.sleep(num(p, "delay", 60))
            self.abort(rst=False, linger=0)
        elif mode in ("reset", "close_before"):
            self.abort(rst=(mode == "reset"), linger=0)
        elif mode == "reset_headers":
            w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            self.abort()
        elif mode == "reset_body":
            w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b'{"data":"x')
            self.abort()
        elif mode == "status" or mode in ("401", "429", "500", "502", "503", "504"):
            st = int(p.get("status", mode if mode != "status" else 500))
            hdrs = [("Content-Type", p.get("content_type", "application/json"))]
            if "retry_after" in p:
                hdrs.append(("Retry-After", str(p["retry_after"])))
            if st == 401:
                hdrs.append(("WWW-Authenticate", 'Bearer error="invalid_token"'))
            body = p.get("body")
            body = json.dumps({"error": "invalid_token" if st == 401 else "mock status %d" % st}) if body is None else body
            self.send(st, hdrs, body.encode() if isinstance(body, str) else json.dumps(body).encode())
        elif mode in ("huge", "huge_chunked"):
            self.send_huge(int(num(p, "bytes", 20 * 1024 * 1024)), mode == "huge_chunked")
        elif mode == "nonjson":
            self.send(200, [("Content-Type", "text/html")], b"<html>not json</html>")
        elif mode == "gzip":
            st, hdrs, body = self.normal(is_token)
            self.send(st, hdrs + [("Content-Encoding", "gzip")], gzip.compress(body))
        elif mode == "charset":
            self.send(200, [("Content-Type", "application/json; charset=ISO-8859-1")],
                      '{"name":"José"}'.encode("latin-1"))
        elif mode == "invalid_utf8":
            self.send(200, [("Content-Type", "application/json")], b'{"name":"\xff\xfe"}')
        elif mode == "nul":
            self.send(200, [("Content-Type", "application/json")], b'{"name":"a\x00b"}')
        elif mode == "redirect":
            self.send(302, [("Location", p.get("location", "http://127.0.0.1:1/elsewhere")),
                            ("Content-Type", "application/json")], b'{"moved":true}')
        elif mode == "header_flood":
            val = "v" * 100
            self.send(200, [("Content-Type", "application/json")] +
                      [("X-Flood-%d" % i, val) for i in range(int(num(p, "count", 10000)))], b'{"status":"ok"}')
        elif mode == "slow_drip":
            n, iv = int(num(p, "bytes", 10)), float(num(p, "interval", 0.5))
            w(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % n)
            for _ in range(n):
                if SHUTDOWN.is_set():
                    break
                self.sleep(iv)
                w(b" ")
        elif mode == "duplicate_headers":
            st, hdrs, body = self.normal(is_token)
            self.send(st, hdrs + [("X-Dup", "a"), ("X-Dup", "b"), ("Set-Cookie", "a=1; Path=/"),
                                  ("Set-Cookie", "b=2; Path=/")], body)
        elif mode == "token_no_access":
            self.send(*jbody({"token_type": "bearer"}))
        elif mode == "token_error":
            self.send(*jbody({"errors": [{"code": "err.invalid", "message": "bad"}]}, 400))
        elif mode == "token_echo":        # a token endpoint that quotes the credentials it got
            self.send(*jbody({"error": "invalid_client",
                              "error_description": "got Authorization %s and body %s" % (
                                  self.headers.get("Authorization", ""), self.body)}, 401))
        elif mode == "token_value":       # a hostile token server's access_token (e.g. with CR/LF)
            self.send(*jbody({"access_token": p.get("token", ""), "token_type": "bearer",
                              "expires_in": 3600}))
        else:
            self.send(*jbody({"error": "unknown mock fault", "mode": mode}, 500))
        return True

    def send_huge(self, n, chunked):
        # Valid JSON of exactly n bytes when n >= 10, so a client with a high limit can parse it.
        head, tail = (b'{"pad":"', b'"}') if n >= 10 else (b"", b"")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked") if chunked else self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.method == "HEAD":
            return
        self.wfile.flush()
        left, first, chunk = n - len(tail), True, b"x" * 65536
        while left > 0:
            part = (head + chunk)[:min(65536, left)] if first else chunk[:min(65536, left)]
            first, left = False, left - len(part)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if tail:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail) if chunked else tail)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class DataServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name, ctx=None):
        super().__init__(("127.0.0.1", 0), Handler)
        self.name = name
        if ctx:   # handshake later, in the handler thread, so a silent client can't block accept()
            self.socket = ctx.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request, client_address):
        with STATE.lock:
            STATE.connections[self.name] = STATE.connections.get(self.name, 0) + 1
        if STATE.take_fault(None, at_accept=True):
            request.close()     # close_before: drop right after accept, nothing read
            return
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], OSError):   # TLS handshake failures etc. are expected
            super().handle_error(request, client_address)


# ---------------------------------------------------------------- control API
class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, obj, status=200):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        cb = mock_callbacks.control(sys.modules[__name__], self.path.split("?")[0], "GET", {})
        if cb is not None:
            return self.reply(cb)
        if self.path.split("?")[0] == "/stats":
            return self.reply(STATE.stats())
        self.reply({"error": "not_found"}, 404)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            d = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            return self.reply({"error": "bad json"}, 400)
        p = self.path.split("?")[0]
        cb = mock_callbacks.control(sys.modules[__name__], p, "POST", d)
        if cb is not None:
            return self.reply(cb)
        with STATE.lock:
            if p == "/fault":
                params = {k: v for k, v in d.items() if k not in ("path", "mode", "count")}
                STATE.faults.append({"path": d.get("path", "*"), "mode": str(d["mode"]),
                                     "remaining": int(d.get("count", 1)), "params": params})
            elif p == "/clients":
                exp = d.get("expires_in")
                fmt = d.get("expires_in_format") or ("absent" if exp is None else
                                                     "string" if isinstance(exp, str) else "number")
                STATE.clients[d["client_id"]] = {"client_id": d["client_id"], "client_secret": d.get("client_secret"),
                                                 "expires_in": exp, "expires_in_format": fmt}
            elif p == "/revoke":
                for t in STATE.tokens.values():
                    t["revoked"] = True
            elif p == "/expire_tokens":
                for t in STATE.tokens.values():
                    t["expires"] = time.monotonic() - 1
            elif p == "/search_conf":
                STATE.search_conf.update(d)
            elif p == "/jwks":
                mock_jwks.configure(d)
            elif p == "/bearer":
                STATE.bearer = list(d.get("tokens", []))
            elif p != "/reset":
                return self.reply({"error": "not_found"}, 404)
        if p == "/reset":
            STATE.reset()
            mock_jwks.reset()
            mock_callbacks.reset()
        self.reply({"ok": True})


def tls_context(certdir, name, require_client=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certdir, name + ".crt"), os.path.join(certdir, name + ".key"))
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.path.join(certdir, "ca.crt"))
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--certdir", required=True)
    ap.add_argument("--parent-watch", action="store_true",
                    help="exit when stdin reaches EOF (the parent died or closed the pipe)")
    a = ap.parse_args()
    servers = {"http": DataServer("http"), "https": DataServer("https", tls_context(a.certdir, "server"))}
    for name in EXTRA_TLS:
        if os.path.exists(os.path.join(a.certdir, name + ".crt")):
            servers["https_" + name] = DataServer("https_" + name, tls_context(a.certdir, name, name == "mtls"))
    ctl = ThreadingHTTPServer(("127.0.0.1", 0), ControlHandler)
    ctl.daemon_threads = True
    servers["control"] = ctl
    for s in servers.values():
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    out = {k: s.server_address[1] for k, s in servers.items()}
    out["pid"] = os.getpid()
    print(json.dumps(out), flush=True)
    done = threading.Event()
    stop = lambda *_: (SHUTDOWN.set(), done.set())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    if a.parent_watch:
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop()), daemon=True).start()
    while not done.wait(1):
        pass
    # Exit at once: the OS closes the sockets, and skipping interpreter finalization avoids
    # trouble with daemon threads still sleeping (hang/slow faults) or reading stdin.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
