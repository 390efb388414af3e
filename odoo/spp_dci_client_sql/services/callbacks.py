"""Callbacks from registries (on-search, on-subscribe, notify): the raw body
and the headers go to dci_receive, which checks the sender (callback token,
signature), stores the message in dci_inbox (and settles dci_transaction /
dci_subscription) and says what to answer.  The processing OpenSPP did in
its FastAPI routers (CRVS events, DR disability status, IBR duplication
checks) then reads what dci_receive stored: the jsonb of dci_inbox, not the
request body parsed again."""
import hashlib
import hmac
import json
import logging
import re

from odoo.exceptions import UserError

from . import sql
from .registries import extract_disability

_logger = logging.getLogger(__name__)

# system parameter: "1" processes callbacks dci_receive accepted without a
# token or signature (a source with neither); default: stored, not processed
UNVERIFIED_PARAM = "spp_dci_client_sql.process_unverified_callbacks"
MAX_BODY = 16 * 1024 * 1024          # dci_client.max_response_bytes' default
# what dci_data_source.code may be (its CHECK), bounded: the URL's code is the sender's
SOURCE_CODE = re.compile(r"[a-z][a-z0-9_]{0,1023}")
MAX_HEADERS = 100
MAX_HEADER_VALUE = 8192

# SQLSTATE of a refused callback -> HTTP status
REFUSED_STATUS = {"DC001": 404, "DC002": 401, "DC008": 401, "DC006": 400, "22023": 400, "22021": 400,
                  "DC005": 413, "42501": 503}


def _dicts(value):
    """The dict items of what should be a list of objects (a hostile sender
    may put anything there)."""
    if isinstance(value, dict):
        value = [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def read_bounded(stream, limit):
    """The request body from a file-like stream, at most limit + 1 bytes
    (more than limit: too large, the rest is never read)."""
    chunks, size = [], 0
    while size <= limit:
        chunk = stream.read(min(65536, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _nack(code, text):
    return {"message": {"ack_status": "NACK", "error": {"code": code, "message": text}}}


# The headers handed to dci_receive: what it reads (authorization) and the
# body's type.  psycopg2 writes parameters into the statement text, which
# pg_stat_activity shows and the server log keeps when the statement fails:
# a browser's Cookie (an Odoo session), a proxy's credentials or any other
# header a sender sets must not land there.
FORWARDED_HEADERS = ("authorization", "content-type")


def clean_headers(headers, body=b""):
    """Lower-cased names, string values, bounded, only FORWARDED_HEADERS; the
    Authorization header only as an HMAC-SHA256 of body keyed with the Bearer
    token (dci_receive checks that as well), so the token is not in the
    statement text, and what is there authenticates this one body only;
    another scheme is dropped (dci_receive takes Bearer only)."""
    out = {}
    seen = 0
    for name, value in headers or ():
        seen += 1
        if seen > MAX_HEADERS:
            break
        if not isinstance(name, str) or not isinstance(value, str):
            continue
        if len(name) > 256 or "\x00" in name or "\x00" in value:
            continue
        name = name.lower()
        if name not in FORWARDED_HEADERS:
            continue
        if name == "authorization":
            if value[:7].lower() != "bearer ":
                continue
            value = "Bearer hmac-sha256:" + hmac.new(value[7:].lstrip(" ").encode(), body, hashlib.sha256).hexdigest()
        out[name] = value[:MAX_HEADER_VALUE]
    return out


def receive(env, source, body, headers, kind=None):
    """(http_status, answer) for a callback of data source `source`.
    body: the raw bytes; headers: (name, value) pairs.  kind: 'crvs', 'dr',
    'ibr' or None (from the source's registry_type)."""
    cr = env.cr
    if not isinstance(source, str) or not SOURCE_CODE.fullmatch(source):
        # no such source can exist; a NUL would even make psycopg2 raise
        # ValueError (a 500 with a traceback) before any SQL
        return 404, _nack("err.request.refused", "the message was not accepted")
    if body is None:
        body = b""
    if len(body) > MAX_BODY:
        return 413, _nack("err.request.too_large", "the message is too large")
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body)
    except UnicodeDecodeError:
        return 400, _nack("err.request.bad", "the body is not UTF-8")
    if "\x00" in text:
        return 400, _nack("err.request.bad", "the body holds a NUL character")
    try:
        # an unknown source is answered here: dci_receive would raise (DC001),
        # and a failing statement is written to the server log with its text,
        # the sender's whole body (up to 16 MB a request, from anyone)
        (known, before), = sql.fetch_all(
            cr, "SELECT EXISTS (SELECT 1 FROM dci_data_source WHERE code = %s), "
                "coalesce((SELECT max(id) FROM dci_inbox), 0)", (source,))
        if not known:
            return 404, _nack("err.request.refused", "the message was not accepted")
        with sql.dci_errors(cr):
            cr.execute("SELECT http_status, response FROM dci_receive(%s, %s, %s)",
                       (source, text, sql.jsonb(clean_headers(headers, text.encode()))))
            status, answer = cr.fetchone()
    except UserError as e:
        code = getattr(e, "pgcode", None)
        _logger.info("callback for %s refused: SQLSTATE %s", source, code)
        return REFUSED_STATUS.get(code, 500), _nack("err.request.refused", "the message was not accepted")
    if 200 <= (status or 0) < 300:
        process_stored(env, source, before, kind)
    return status, answer


def process_stored(env, source, after_id, kind=None):
    """Process the inbox rows this transaction stored (ids above after_id:
    under Odoo's REPEATABLE READ no other transaction's new rows are
    visible).  A failure in processing is logged; the message stays stored."""
    cr = env.cr
    rows = sql.fetch_all(
        cr, """SELECT i.id, i.action, i.transaction_id, i.correlation_id, i.verified, i.header, i.message,
                      d.registry_type
                 FROM dci_inbox i JOIN dci_data_source d ON d.id = i.source_id
                WHERE i.id > %s AND d.code = %s ORDER BY i.id""", (after_id, source))
    done = []
    allow_unverified = None
    for inbox_id, action, txn, corr, verified, header, message, registry_type in rows:
        if verified not in ("signature", "token"):
            # stored by dci_receive with neither a callback token nor a registry
            # key to check: anyone who can reach Odoo could have sent it (a
            # death notification, a disability status); not acted on unless
            # the administrator says so
            if allow_unverified is None:
                allow_unverified = env["ir.config_parameter"].sudo().get_param(UNVERIFIED_PARAM) in ("1", "True",
                                                                                                   "true")
            if not allow_unverified:
                _logger.warning("callback %s of %s is not authenticated (set the source's callback token or "
                                "registry key): stored in dci_inbox, not processed", inbox_id, source)
                done.append((action, None))
                continue
        which = kind or {"ns:org:RegistryType:Civil": "crvs", "ns:org:RegistryType:CRVS": "crvs",
                         "ns:org:RegistryType:DR": "dr", "ns:org:RegistryType:IBR": "ibr"}.get(registry_type)
        try:
            with cr.savepoint(flush=False):
                done.append(_process(env, source, which, action, header or {}, message or {}, corr))
        except Exception as e:      # noqa: BLE001 - the message stays stored; the answer stands
            _logger.error("processing callback %s of %s failed: %s", inbox_id, source, type(e).__name__)
    return done


def _process(env, source, kind, action, header, message, correlation_id):
    header = header if isinstance(header, dict) else {}
    message = message if isinstance(message, dict) else {}
    if kind == "crvs" and action in ("notify", "on-notify", None):
        return ("crvs_event", _crvs_event(env, source, header, message))
    if kind == "dr" and action == "on-search":
        return ("disability_status", _dr_on_search(env, header, message))
    if kind == "ibr" and action == "on-search":
        return ("duplication_check", _ibr_on_search(env, message, correlation_id))
    return (action, None)


def _crvs_event(env, source, header, message):
    from odoo.addons.spp_dci_client_crvs.services.crvs_service import CRVSService
    try:
        service = CRVSService(env, source)
    except Exception as e:              # not a CRVS source: OpenSPP's fallback creates the event directly
        _logger.warning("CRVS service for %s unavailable (%s): event created directly", source, e)
        service = None
    # the fields OpenSPP's processing reads, in the types it expects
    message = dict(message, event_type=str(message.get("event_type") or ""),
                   identifiers=_dicts(message.get("identifiers")))
    data = {"header": header, "message": message}
    if service is not None:
        return service.process_notification(data)
    ids = _dicts(message.get("identifiers")) or [{}]
    event = env["spp.dci.crvs.event"].sudo().create({
        "event_type": str(message.get("event_type") or "").lower(),
        "identifier_type": ids[0].get("type"), "identifier_value": ids[0].get("value"),
        "event_date": message.get("event_date"), "raw_data": json.dumps(data, indent=2),
        "state": "received"})
    try:                                # as upstream's fallback: processed when it can be, kept otherwise
        with env.cr.savepoint(flush=False):
            event.process_event()
    except Exception as e:              # noqa: BLE001
        _logger.error("processing CRVS event %s failed: %s", event.id, type(e).__name__)
    return event.id


def _like_literal(text):
    """text as a LIKE pattern matching itself (no wildcard from a sender)."""
    return str(text).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _partner(env, record):
    """The partner an identifier of the record names: by ID type code, or
    (as upstream's DR callback) by an ID type whose namespace URI contains
    the type given, matched literally."""
    RegistryId = env["spp.registry.id"].sudo()
    for i in _dicts(record.get("identifier") or record.get("identifiers")):
        t = i.get("identifier_type") or i.get("type")
        v = i.get("identifier_value") or i.get("value")
        if not (t and v and isinstance(t, str) and isinstance(v, str)):
            continue
        reg = RegistryId.search([("id_type_id.code", "=", t), ("value", "=", v)], limit=1)
        if not reg and not t.startswith("urn:"):
            reg = RegistryId.search([("id_type_id.namespace_uri", "=ilike", "%" + _like_literal(t) + "%"),
                                     ("value", "=", v)], limit=1)
        if reg:
            return reg.partner_id
    return None


def _dr_on_search(env, header, message):
    """Every record of every succ item (as upstream's DR callback): the
    disability status of the partner it identifies, created or updated."""
    from odoo import fields
    Status = env["spp.dci.disability.status"].sudo()
    touched = []
    for item in _dicts(message.get("search_response")):
        if item.get("status") != "succ":
            continue
        for record in _records_of(item):
            partner = _partner(env, record)
            if not partner:
                continue
            ex = extract_disability(record)
            vals = {"partner_id": partner.id, "has_disability": ex["has_disability"],
                    "disability_types": json.dumps(ex["disability_types"]),
                    "functional_scores": json.dumps({}), "assessment_date": ex["assessment_date"],
                    "source_registry": header.get("sender_id"), "raw_data": json.dumps(record), "state": "synced",
                    "last_sync_date": fields.Datetime.now(), "synced_by": env.user.id}
            existing = Status.search([("partner_id", "=", partner.id), ("active", "=", True)], limit=1)
            if existing:
                existing.write(vals)
                touched.append(existing.id)
            else:
                touched.append(Status.create(vals).id)
    return touched


def _records_of(item):
    data = item.get("data")
    return _dicts(data.get("reg_records")) if isinstance(data, dict) else []


def _ibr_on_search(env, message, correlation_id):
    if not correlation_id:
        return None
    # upstream matches ("notes", "ilike", correlation_id): the registry's value
    # as a LIKE pattern, so "%" would complete whichever check is pending;
    # matched literally here
    pattern = "%" + str(correlation_id).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    check = env["spp.dci.duplication.check"].sudo().search(
        [("state", "=", "checking"), ("notes", "=ilike", pattern)], limit=1)
    if not check:
        return None
    records, programs = [], []
    for item in _dicts(message.get("search_response")):
        if item.get("status") == "succ":
            data = item.get("data") or {}
            records.extend(_dicts(data.get("reg_records")) if isinstance(data, dict) else [])
    for rec in records:
        for p in _dicts(rec.get("programs")) + _dicts(rec.get("programs_enrollments")):
            if isinstance(p, dict) and (p.get("name") or p.get("program_name") or p.get("programme_name")):
                programs.append(p.get("name") or p.get("program_name") or p.get("programme_name"))
    check.write({"result": "confirmed_match" if records else "no_match", "matched_programs": "\n".join(programs),
                 "raw_response": json.dumps(message), "state": "completed"})
    return check.id
