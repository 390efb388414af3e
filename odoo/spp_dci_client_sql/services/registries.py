"""The CRVS, DR and IBR services of OpenSPP on the dci_client extension.

CRVSService (spp_dci_client_crvs/services/crvs_service.py), DRService
(spp_dci_client_dr/services/dr_service.py) and IBRService
(spp_dci_client_ibr/services/ibr_service.py) are plain classes; their
methods are replaced like DCIClient's (same names and signatures; the
original runs where this addon is not installed):

- CRVS `verify_birth` / `check_death`: one search through the client
  (dci_search); upstream's birth data of the first registry record (its
  _extract_birth_data, the record as raw_data), or None / False.
- DR `get_disability_status(partner)`: the DR spec's record
  (`disability_status`, `disability_details`, `disability_level`) read by
  `extract_disability` below; new: `get_disability_details` (the DR's
  `/registry/sync/get-disability-details`, dci_disability_details) and
  `is_disabled` (`/registry/sync/disabled`, dci_disabled).
- IBR `check_duplication(partner)`: ALL of the partner's identifiers in one
  `dci_search_batch` call (one envelope of many items), instead of one HTTP
  request per identifier; `_parse_search_response` reads the spec's
  data.reg_records (upstream: a list only), so search_beneficiary and
  get_enrollment_status work on dci_search's answers; new: `get_enrolled`
  (`/registry/sync/enrolled`, dci_enrolled) and `enrollment_updates`
  (dci_enrollment_updates).
"""
import logging
from datetime import date, datetime

from odoo import _
from odoo.exceptions import UserError, ValidationError

from odoo.addons.spp_dci_client_crvs.services.crvs_service import CRVSService
from odoo.addons.spp_dci_client_dr.services.dr_service import DRService
from odoo.addons.spp_dci_client_ibr.services.ibr_service import IBRService

from . import sql
from .client import _override

_logger = logging.getLogger(__name__)

# DR spec: disability_status is free text; these are its workflow words
APPROVED = {"approved", "registered", "yes"}
REJECTED = {"rejected", "denied", "no"}


def _wrapped(text, exc):
    err = UserError(text % str(exc))
    err.pgcode = getattr(exc, "pgcode", None)
    return err


def _first_record(response):
    message = (response or {}).get("message") or {}
    items = message.get("search_response") if isinstance(message, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        data = item.get("data") or {}
        records = data.get("reg_records") if isinstance(data, dict) else None
        if isinstance(records, dict):
            records = [records]
        for rec in records or []:
            if isinstance(rec, dict):
                return rec
    return None


def _as_date(value):
    if not value:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).date()
    except ValueError:
        return None


def extract_disability(record):
    """A DR spec record (DisabledPerson) -> what OpenSPP stores: has_disability,
    disability_types (impairment types), disability_status, disability_level,
    disability_details, functional_scores ({}: the spec has none),
    assessment_date, source_registry, raw_data."""
    details = record.get("disability_details") or []
    if isinstance(details, dict):
        details = [details]
    details = [d for d in details if isinstance(d, dict)]
    types = [d["impairment_type"] for d in details if d.get("impairment_type")]
    status = str(record.get("disability_status") or "").strip()
    word = status.lower()
    if word in APPROVED:
        has = True
    elif word in REJECTED:
        has = False
    else:
        has = bool(types)
    return {
        "has_disability": has,
        "disability_types": types,
        "disability_status": status or None,
        "disability_level": record.get("disability_level"),
        "disability_details": details,
        "functional_scores": {},
        "assessment_date": _as_date(record.get("last_updated") or record.get("registration_date")),
        "source_registry": record.get("source_registry") or record.get("registry_name"),
        "raw_data": record,
    }


# ---------------------------------------------------------------- CRVS
@_override(CRVSService, "verify_birth")
def verify_birth(self, identifier_type: str, identifier_value: str) -> dict | None:
    """The CRVS's birth record for an identifier in upstream's shape (its
    _extract_birth_data: birth_date, person_name, mother_name, ...), with
    the registry's record as raw_data; None when there is none."""
    if not identifier_type or not identifier_value:
        raise ValidationError("identifier_type and identifier_value are required")
    try:
        response = self.client.search_by_id(identifier_type=identifier_type, identifier_value=identifier_value,
                                            page=1, page_size=1)
    except UserError as e:
        raise _wrapped(_("Failed to verify birth record: %s"), e) from e
    record = _first_record(response)
    if record is None:
        return None
    return dict(self._extract_birth_data(record), raw_data=record)


@_override(CRVSService, "check_death")
def check_death(self, identifier_type: str, identifier_value: str) -> bool:
    """Whether the CRVS holds a death record for the identifier."""
    if not identifier_type or not identifier_value:
        raise ValidationError("identifier_type and identifier_value are required")
    try:
        response = self.client.search(query_type="idtype-value",
                                      query_value="%s:%s" % (identifier_type, identifier_value),
                                      page=1, page_size=1, registry_event_type="DEATH")
    except UserError as e:
        raise _wrapped(_("Failed to check death status: %s"), e) from e
    return _first_record(response) is not None


# ---------------------------------------------------------------- DR
@_override(DRService, "get_disability_status")
def get_disability_status(self, partner) -> dict | None:
    """The DR's record of the partner, read per the DR spec, or None."""
    if not partner:
        raise ValidationError("Partner is required")
    identifier = self._get_partner_identifier(partner)
    if not identifier:
        return None
    id_type, id_value = identifier
    try:
        response = self.client.search_by_id(identifier_type=id_type, identifier_value=id_value,
                                            record_type="PERSON", page=1, page_size=1)
    except UserError as e:
        raise _wrapped(_("Failed to get disability status: %s"), e) from e
    record = _first_record(response)
    return extract_disability(record) if record is not None else None


@_override(DRService, "_extract_disability_data")
def _extract_disability_data(self, record_data: dict) -> dict:
    """DR spec parsing (extract_disability)."""
    return extract_disability(record_data)


def _member_query(identifier_type, identifier_value):
    """The DR spec's member query (expression) for one identifier."""
    query = {"member.member_identifier": {"eq": identifier_value}}
    if identifier_type:
        query["member.member_identifier_type"] = {"eq": identifier_type}
    return query


def _records(item):
    data = (item or {}).get("data") if isinstance(item, dict) else None
    recs = data.get("reg_records") if isinstance(data, dict) else None
    return [r for r in ([recs] if isinstance(recs, dict) else recs or []) if isinstance(r, dict)]


def get_disability_details(self, identifier_type, identifier_value):
    """DR /registry/sync/get-disability-details (dci_disability_details) for
    one member: its records parsed per the DR spec (extract_disability),
    [] when the registry holds none."""
    if not identifier_value:
        raise ValidationError("identifier_value is required")
    try:
        item = sql.fetch_one(self.env.cr, "SELECT dci_disability_details(%s, %s)",
                             (self.data_source.code, sql.jsonb(_member_query(identifier_type,
                                                                                    identifier_value))))
    except UserError as e:
        raise _wrapped(_("Failed to get disability status: %s"), e) from e
    return [extract_disability(rec) for rec in _records(item)]


def is_disabled(self, identifier_type, identifier_value):
    """DR /registry/sync/disabled (dci_disabled): whether the registry says
    the member is disabled (disabled_status yes)."""
    if not identifier_value:
        raise ValidationError("identifier_value is required")
    try:
        item = sql.fetch_one(self.env.cr, "SELECT dci_disabled(%s, %s)",
                             (self.data_source.code, sql.jsonb(_member_query(identifier_type,
                                                                                    identifier_value))))
    except UserError as e:
        raise _wrapped(_("Failed to get disability status: %s"), e) from e
    return str((item or {}).get("disabled_status") or "").lower() == "yes"


DRService.is_disabled = is_disabled
DRService.get_disability_details = get_disability_details


# ---------------------------------------------------------------- IBR
def _programs(service, record):
    programs = list(service._extract_programs(record))
    for e in record.get("programs_enrollments") or []:          # the registries' spec field
        if isinstance(e, dict) and (e.get("programme_name") or e.get("programme_identifier")):
            programs.append(str(e.get("programme_name") or e.get("programme_identifier")))
    return programs


@_override(IBRService, "check_duplication")
def check_duplication(self, partner) -> dict:
    """Duplicate enrollments of a partner: every identifier it has, in one
    dci_search_batch call.  Same answer as upstream: is_duplicate,
    matched_programs, raw_response (one entry per identifier)."""
    if not partner:
        raise ValueError("partner is required")
    identifiers = self._get_partner_identifiers(partner)
    if not identifiers:
        raise UserError(_("Partner '%s' has no identifiers configured. Please add at least one identifier "
                          "before checking for duplicates.") % partner.name)
    rows = self.client.search_by_ids(identifiers)
    matches, programs, raw = [], set(), []
    for (id_type, id_value), row in zip(identifiers, rows):
        raw.append({"identifier_type": id_type, "identifier_value": id_value, "status": row["status"],
                    "records": row["records"], "reason_code": row["reason_code"],
                    "reason_message": row["reason_message"]})
        if row["status"] != "succ":
            _logger.warning("IBR search for %s failed: %s %s", id_type, row["reason_code"], row["reason_message"])
            continue
        for record in row["records"] or []:
            progs = _programs(self, record)
            matches.append({"reference_id": row["reference_id"], "name": self._extract_name(record),
                            "identifiers": self._extract_identifiers(record), "programs": progs,
                            "raw_data": record})
            programs.update(progs)
    return {"is_duplicate": bool(matches), "matched_programs": sorted(programs), "raw_response": raw}


@_override(IBRService, "_parse_search_response")
def _parse_search_response(self, response: dict) -> list[dict]:
    """The matches of a search answer, as upstream's (reference_id, name,
    identifiers, programs, raw_data), from each item's data.reg_records (the
    spec's shape, what dci_search returns) or a list of records (upstream's);
    anything else is no match.  Upstream iterated data as a list only: on a
    spec answer search_beneficiary / get_enrollment_status found no one."""
    message = (response or {}).get("message") if isinstance(response, dict) else None
    items = message.get("search_response") if isinstance(message, dict) else None
    matches = []
    for item in _dicts(items):
        data = item.get("data")
        records = data if isinstance(data, list) else (data or {}).get("reg_records") if isinstance(data, dict) else []
        for record in _dicts(records):
            matches.append({"reference_id": item.get("reference_id"), "name": self._extract_name(record),
                            "identifiers": self._extract_identifiers(record), "programs": _programs(self, record),
                            "raw_data": record})
    return matches


def _dicts(value):
    if isinstance(value, dict):
        value = [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def get_enrolled(self, identifier_value, programme_identifier=None, response_entity="Member"):
    """IBR /registry/sync/enrolled (dci_enrolled): the enrolled_response
    item ({enrolled_status: yes / no, ...}) for a person, in one programme
    or any."""
    if not identifier_value:
        raise ValidationError("identifier_value is required")
    query = {"person_identifier": {"eq": identifier_value}}
    if programme_identifier:
        query["programme_identifier.program.programme_identifier"] = {"eq": programme_identifier}
    return sql.fetch_one(self.env.cr, "SELECT dci_enrolled(%s, %s, 'expression', %s)",
                         (self.data_source.code, sql.jsonb(query), response_entity or None))


def enrollment_updates(self, beneficiaries):
    """IBR /registry/sync/enrollment/updates (dci_enrollment_updates): tell
    the registry who was enrolled; the enrolled_response items (one receipt
    per beneficiary)."""
    if not beneficiaries:
        raise ValidationError("beneficiaries are required")
    answer = sql.fetch_one(self.env.cr, "SELECT dci_enrollment_updates(%s, %s)",
                           (self.data_source.code, sql.jsonb(list(beneficiaries))))
    return (answer or {}).get("enrolled_response") or []


IBRService.enrollment_updates = enrollment_updates
IBRService.get_enrolled = get_enrolled
