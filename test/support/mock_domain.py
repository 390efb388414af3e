"""The registries' own sync endpoints (beyond search) for the mock registry:
the DR's /registry/sync/get-disability-details (dr_api_v1.0.0.yaml:
GetDisabilitySupportRequest -> GetDisabilityInfoResponse) and the IBR's
/registry/sync/enrolled (ibr_api_v1.0.0.yaml: EnrolledRequest ->
EnrolledResponse).  Hooked into mock_registry.ROUTES; the helpers come from
there (this module imports nothing of it: it runs as a script)."""
import json
import uuid


def routes(jbody, dci_header, now_iso, dr_fields):
    def _message(req):
        try:
            env = json.loads(req.body)
            return env["message"] if isinstance(env.get("message"), dict) else None
        except (ValueError, AttributeError, TypeError):
            return None

    def _value(criteria, key):
        q = (criteria or {}).get("query") or {}
        v = q.get(key) if isinstance(q, dict) else None
        return str(v.get("eq")) if isinstance(v, dict) and "eq" in v else None

    def disability_details(req):
        m = _message(req)
        if req.method != "POST" or m is None or "disabled_criteria" not in m:
            return jbody({"error": "bad request"}, 400)
        value = _value(m["disabled_criteria"], "member.member_identifier")
        records = [] if value in (None, "NOTFOUND") else [dict(dr_fields(value), identifier=[
            {"identifier_type": "UIN", "identifier_value": value}])]
        return jbody({"signature": "", "header": dci_header(req), "message": {
            "transaction_id": m.get("transaction_id", ""), "correlation_id": str(uuid.uuid4()),
            "search_response": [{"reference_id": str(uuid.uuid4()), "timestamp": now_iso(), "status": "succ",
                                 "data": {"version": "1.0.0", "reg_records": records}}]}})

    def enrolled(req):
        m = _message(req)
        if req.method != "POST" or m is None or "enrolled_criteria" not in m:
            return jbody({"error": "bad request"}, 400)
        value = _value(m["enrolled_criteria"], "person_identifier")
        return jbody({"signature": "", "header": dci_header(req), "message": {
            "transaction_id": m.get("transaction_id", ""), "correlation_id": str(uuid.uuid4()),
            "enrolled_response": [{"reference_id": str(uuid.uuid4()), "timestamp": now_iso(), "status": "succ",
                                   "enrolled_status": "no" if value in (None, "NOTFOUND") else "yes"}]}})

    return {"/registry/sync/get-disability-details": disability_details, "/registry/sync/enrolled": enrolled}
