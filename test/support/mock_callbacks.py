"""The mock registry calling back (issue 13): after it ACKs an asynchronous
search, subscribe, unsubscribe or transaction status request, it POSTs
on-search, on-subscribe, on-unsubscribe or txn-on-status to the envelope's
header.sender_uri, as a registry does; a control call makes it send a
notify for a subscription code.

Control (the mock's control listener):
  POST /callbacks          {"enabled", "sign" (null | "ed25519" | "jws" | "jwks" | "jwks-jws"), "token",
                            "before_ack", "delay", "parts"}: how callbacks are sent
  POST /callbacks/notify   {"uri", "code", "sender_id", "receiver_id", "transaction_id"}
  POST /callbacks/release  send the callbacks kept while "hold" was set
  GET  /callbacks          what was sent and what the receiver answered
Hooked into mock_registry.py by on_async() and control()."""
import json, threading, time, uuid
import urllib.request

LOCK = threading.Lock()
DEFAULT = {"enabled": False, "sign": None, "token": None, "before_ack": False, "delay": 0.05, "parts": 1,
           "hold": False}
CONF = dict(DEFAULT)
SENT = []
HELD = []                                        # callbacks kept for POST /callbacks/release
ANSWER_TO = {"search": "on-search", "subscribe": "on-subscribe", "unsubscribe": "on-unsubscribe",
             "txn-status": "txn-on-status"}


def reset():
    with LOCK:
        CONF.clear()
        CONF.update(DEFAULT)
        del SENT[:]
        del HELD[:]


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"


def _header(action, sender_id, receiver_id, total=1, completed=1):
    # key order and spacing as a Python registry prints them: not the canonical form
    return {"version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": _now(),
            "action": action, "status": "succ", "total_count": total, "completed_count": completed,
            "sender_id": sender_id, "receiver_id": receiver_id, "is_msg_encrypted": False}


def post(mock, uri, env, conf):
    body = json.dumps(env).encode()
    if conf.get("sign"):
        # "jwks" / "jwks-jws": the key of the mock's key set (mock_jwks.py); else the fixture keys
        signer = mock.mock_jwks.sign_answer if conf["sign"].startswith("jwks") else mock.sign_answer
        body = signer(body, conf["sign"])
    hdrs = {"Content-Type": "application/json"}
    if conf.get("token"):
        hdrs["Authorization"] = "Bearer " + conf["token"]
    req = urllib.request.Request(uri, data=body, headers=hdrs, method="POST")
    rec = {"uri": uri, "action": env["header"]["action"], "message_id": env["header"]["message_id"]}
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            rec["status"], rec["response"] = r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        rec["status"], rec["response"] = e.code, json.loads(e.read() or b"null")
    except Exception as e:                       # noqa: BLE001 -- recorded for the test to see
        rec["status"], rec["error"] = 0, str(e)
    with LOCK:
        SENT.append(rec)
    return rec


def _messages(mock, req, env):
    """The callback message(s) for an acknowledged request."""
    m, h = env["message"], env["header"]
    kind = mock.DCI_PATHS[req.path]
    txn = m["transaction_id"]
    if kind == "search":
        items, _ = mock.dci_search_items(req, m)
        items = items or []
        return [{"transaction_id": txn, "correlation_id": str(uuid.uuid4()), "search_response": items}]
    with mock.STATE.lock:
        known = json.loads(json.dumps(mock.STATE.dci_txns.get(txn) or {}))
    if kind == "subscribe":
        crit = m["subscribe_request"]
        return [{"transaction_id": txn, "correlation_id": str(uuid.uuid4()), "subscribe_response": [
            {"reference_id": it["reference_id"], "timestamp": _now(), "status": "succ",
             "subscriptions": [{"code": code, "status": "subscribe", "timestamp": _now(),
                                "reg_event_type": it["subscribe_criteria"].get("reg_event_type"),
                                "filter": it["subscribe_criteria"].get("filter")}]}
            for it, code in zip(crit, known.get("subscription_codes", []))]}]
    if kind == "unsubscribe":
        return [{"transaction_id": txn, "correlation_id": str(uuid.uuid4()), "timestamp": _now(),
                 "status": "succ", "subscription_status": [{"code": c, "status": "unsubscribe"}
                                                           for c in m["subscription_codes"]]}]
    t = m["txnstatus_request"]
    asked = mock.mock_domain.find_txn(t) or {}
    return [{"transaction_id": txn, "correlation_id": str(uuid.uuid4()),
             "txnstatus_response": dict(asked, reference_id=t["reference_id"], txn_type=t["txn_type"],
                                        txn_status="succ" if asked else "rjct", timestamp=_now())}]


def _call_back(mock, req, env, conf):
    h = env["header"]
    uri = h.get("sender_uri")
    if not uri:
        return
    kind = mock.DCI_PATHS[req.path]
    action = ANSWER_TO[kind]
    msgs = _messages(mock, req, env)
    parts = max(1, int(conf.get("parts") or 1))
    if kind == "search" and parts > 1:
        # a multi-part answer: the records split over `parts` callbacks
        item = (msgs[0]["search_response"] or [{}])[0]
        recs = ((item.get("data") or {}).get("reg_records")) or []
        msgs = []
        for p in range(parts):
            it = json.loads(json.dumps(item))
            if "data" in it:
                it["data"]["reg_records"] = recs[p::parts]
            msgs.append({"transaction_id": env["message"]["transaction_id"],
                         "correlation_id": str(uuid.uuid4()), "search_response": [it]})
    for i, msg in enumerate(msgs):
        out = {"signature": "", "header": _header(action, h.get("receiver_id"), h.get("sender_id"),
                                                   len(msgs), i + 1),
               "message": msg}
        post(mock, uri, out, conf)


def on_async(mock, req, env):
    """Called by h_dci when it ACKs an asynchronous request."""
    with LOCK:
        conf = dict(CONF)
    if not conf["enabled"]:
        return
    if conf["hold"]:
        with LOCK:
            HELD.append(lambda: _call_back(mock, req, env, conf))
        return
    if conf["before_ack"]:
        _call_back(mock, req, env, conf)         # a fast registry: the answer before the ACK
        return

    def later():
        time.sleep(float(conf.get("delay") or 0))
        _call_back(mock, req, env, conf)
    threading.Thread(target=later, daemon=True).start()


def control(mock, path, method, d):
    """Control requests under /callbacks; None when the path is not ours."""
    if not path.startswith("/callbacks"):
        return None
    if method == "GET":
        with LOCK:
            return {"conf": dict(CONF), "sent": [dict(s) for s in SENT]}
    if path == "/callbacks":
        with LOCK:
            CONF.update(d)
        return {"ok": True}
    if path == "/callbacks/release":
        with LOCK:
            held = list(HELD)
            del HELD[:]
            n = len(SENT)
        for f in held:
            f()
        with LOCK:
            return {"sent": [dict(x) for x in SENT[n:]]}
    if path == "/callbacks/notify":
        with LOCK:
            conf = dict(CONF)
        hdr = _header("notify", d.get("sender_id"), d.get("receiver_id"))
        msg = {"transaction_id": d.get("transaction_id") or str(uuid.uuid4()),
               "subscription_code": d["code"],
               "notify_event": [{"reference_id": str(uuid.uuid4()), "timestamp": _now(),
                                 "data": {"version": "1.0.0", "reg_event_type": "REGISTER",
                                          "reg_record_type": "Person",
                                          "reg_records": {"identifier": [{"identifier_type": "UIN",
                                                                          "identifier_value": "1"}]}}}]}
        return post(mock, d["uri"], {"signature": "", "header": hdr, "message": msg}, conf)
    return {"error": "not_found"}
