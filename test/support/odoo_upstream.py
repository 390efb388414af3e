"""Stand-ins of the OpenSPP2 classes odoo/spp_dci_client_sql extends, written
from reading OpenSPP/OpenSPP2 (see the README, "Using it from Odoo"):
fields, constraints and methods with upstream's names and signatures.  What
would send HTTP with httpx raises odoo_orm.UpstreamHTTPCalled; a test that
reaches it fails.  Imported by odoo_orm.install() only."""
import json
import logging
import uuid
from datetime import datetime, timezone

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from .odoo_orm import StrEnum, UpstreamHTTPCalled, _module

_logger = logging.getLogger("odoo_upstream")


# ---------------------------------------------------------------- spp_dci/schemas/constants.py
class RegistryType(StrEnum):
    SOCIAL_REGISTRY = "ns:org:RegistryType:Social"
    CRVS = "ns:org:RegistryType:Civil"
    IBR = "ns:org:RegistryType:IBR"
    DISABILITY_REGISTRY = "ns:org:RegistryType:DR"
    FUNCTIONAL_REGISTRY = "ns:org:RegistryType:FR"


class QueryType(StrEnum):
    IDTYPE_VALUE = "idtype-value"
    EXPRESSION = "expression"
    PREDICATE = "predicate"
    GRAPHQL = "graphql"


# ---------------------------------------------------------------- base models used by upstream
class ResUsers(models.Model):
    _name = "res.users"
    name = fields.Char()


class ResPartner(models.Model):
    _name = "res.partner"
    name = fields.Char()
    reg_ids = fields.One2many("spp.registry.id", "partner_id")


class IdType(models.Model):
    _name = "spp.id.type"
    name = fields.Char()
    code = fields.Char()
    namespace_uri = fields.Char()


class RegistryId(models.Model):
    _name = "spp.registry.id"
    _rec_name = "value"
    partner_id = fields.Many2one("res.partner")
    id_type_id = fields.Many2one("spp.id.type")
    value = fields.Char()


class ConfigParameter(models.Model):
    _name = "ir.config_parameter"
    key = fields.Char()
    value = fields.Text()

    def get_param(self, key, default=False):
        rec = self.search([("key", "=", key)], limit=1)
        return rec.value if rec else default

    def set_param(self, key, value):
        rec = self.search([("key", "=", key)], limit=1)
        if rec:
            rec.write({"value": value})
        else:
            self.create({"key": key, "value": value})
        return True


class FastapiEndpoint(models.Model):
    _name = "fastapi.endpoint"
    app = fields.Char()

    def _get_fastapi_routers(self):
        return []


class SigningKey(models.Model):
    """spp_dci/models/signing_key.py: the PEM private key in plain text."""
    _name = "spp.dci.signing.key"
    name = fields.Char()
    key_id = fields.Char()
    algorithm = fields.Selection(default="ed25519")
    private_key = fields.Text(groups="base.group_system")
    public_key = fields.Text()
    state = fields.Char(default="draft")
    activated_date = fields.Datetime()

    @api.constrains("state", "private_key", "public_key")
    def _check_keys_present(self):
        for record in self:
            if record.state == "active" and (not record.private_key or not record.public_key):
                raise ValidationError(_("Cannot activate key without generating key pair. Please generate keys first."))

    def action_activate(self):
        self.ensure_one()
        if not self.private_key or not self.public_key:
            raise UserError(_("Cannot activate key without generating keypair. Please generate keys first."))
        self.write({"state": "active", "activated_date": fields.Datetime.now()})

    @api.model
    def get_active_key(self, algorithm=None):
        domain = [("state", "=", "active")] + ([("algorithm", "=", algorithm)] if algorithm else [])
        return self.search(domain, order="activated_date desc, id desc", limit=1)

    def get_signer(self):
        """What spp_dci_server's search/async/callback routers sign their
        answers with: a DCISigner over the private key read from Odoo's row."""
        self.ensure_one()
        if self.state != "active":
            raise UserError(_("Cannot use key in %s state for signing. Please activate it first.") % self.state)
        if not self.private_key:
            raise UserError(_("No private key available for signing."))
        raise UpstreamHTTPCalled("spp.dci.signing.key.get_signer (DCISigner over the plain-text private key)")


# ---------------------------------------------------------------- spp_dci_client/services/errors.py
HTTP_ERROR_MESSAGES = {
    400: "The request was invalid. Please check your data and try again.",
    401: "Authentication failed. Please verify the OAuth2 credentials in Data Source settings.",
    403: "Access denied. The external registry rejected our request.",
    503: "The external registry is temporarily unavailable. Please try again later.",
}


def format_http_error(status_code, technical_detail=None):
    return HTTP_ERROR_MESSAGES.get(status_code, "Connection error (HTTP %s)." % status_code)


def format_connection_error(error_type, detail=None):
    return {"timeout": "Connection timed out. The external registry is not responding."}.get(
        error_type, "Could not connect to the external registry. Please check the Base URL.")


# ---------------------------------------------------------------- spp_dci_client/models/data_source.py
class DCIDataSource(models.Model):
    _name = "spp.dci.data.source"
    _description = "DCI Data Source"
    _order = "name"
    _SECRET_MASK = "********"

    name = fields.Char(required=True)
    code = fields.Char(required=True)
    registry_type = fields.Selection()
    base_url = fields.Char(required=True)
    auth_type = fields.Selection(default="oauth2", required=True)        # none, bearer, oauth2
    bearer_token = fields.Char(groups="base.group_system")
    oauth2_token_url = fields.Char()
    oauth2_client_id = fields.Char()
    oauth2_client_secret = fields.Char(groups="base.group_system", copy=False)
    oauth2_client_secret_display = fields.Char(compute="_compute_oauth2_client_secret_display",
                                               inverse="_inverse_oauth2_client_secret_display",
                                               groups="base.group_system")
    oauth2_scope = fields.Char()
    oauth2_credential_location = fields.Selection(default="body")
    signing_key_id = fields.Many2one("spp.dci.signing.key")
    verify_ssl = fields.Boolean(default=True)
    timeout = fields.Integer(default=30)
    active = fields.Boolean(default=True)
    notes = fields.Text()
    our_sender_id = fields.Char()
    our_callback_uri = fields.Char()
    receiver_id = fields.Char()
    search_endpoint = fields.Char(default="/registry/sync/search")
    subscribe_endpoint = fields.Char(default="/registry/subscribe")
    auth_endpoint = fields.Char(default="/oauth2/client/token")
    state = fields.Selection(default="draft")
    last_test_date = fields.Datetime(readonly=True)
    last_error = fields.Text(readonly=True)
    _oauth2_access_token = fields.Char(groups="base.group_system")
    _oauth2_token_expires_at = fields.Datetime(groups="base.group_system")

    @api.depends("oauth2_client_secret")
    def _compute_oauth2_client_secret_display(self):
        for record in self:
            record.oauth2_client_secret_display = self._SECRET_MASK if record.oauth2_client_secret else False

    def _inverse_oauth2_client_secret_display(self):
        for record in self:
            value = record.oauth2_client_secret_display
            if value and value != self._SECRET_MASK:
                record.oauth2_client_secret = value
            elif not value:
                record.oauth2_client_secret = False

    @api.model
    def _apply_secret_display(self, vals):
        """Newest upstream: what the form sends in the display field becomes
        oauth2_client_secret in vals, before the write (the inverse would see
        the recomputed mask); the mask itself keeps the stored secret."""
        if "oauth2_client_secret_display" not in vals:
            return
        value = vals.pop("oauth2_client_secret_display")
        if value == self._SECRET_MASK:
            return
        vals["oauth2_client_secret"] = value or False

    @api.model_create_multi
    def create(self, vals_list):
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        for v in vals_list:
            self._apply_secret_display(v)
        return super().create(vals_list)

    def write(self, vals):
        self._apply_secret_display(vals)
        return super().write(vals)

    @api.constrains("code")
    def _check_code_unique(self):
        for record in self:
            if record.code and self.search([("code", "=", record.code), ("id", "!=", record.id)], limit=1):
                raise ValidationError(_("Data source code must be unique. Please choose a different code."))

    @api.constrains("code")
    def _check_code_format(self):
        for record in self:
            if record.code and not all(c.isalnum() or c == "_" for c in record.code):
                raise ValidationError(_("Code must contain only lowercase alphanumeric characters and underscores."))

    @api.constrains("base_url")
    def _check_base_url_format(self):
        for record in self:
            if record.base_url and not record.base_url.startswith(("http://", "https://")):
                raise ValidationError(_("Base URL must start with http:// or https://"))

    @api.constrains("auth_type", "oauth2_token_url", "oauth2_client_id", "oauth2_client_secret")
    def _check_oauth2_fields(self):
        for record in self:
            if record.auth_type == "oauth2":
                if not record.oauth2_token_url:
                    raise ValidationError(_("OAuth2 Token URL is required when using OAuth2 authentication."))
                if not record.oauth2_client_id:
                    raise ValidationError(_("OAuth2 Client ID is required when using OAuth2 authentication."))
                if not record.oauth2_client_secret:
                    raise ValidationError(_("OAuth2 Client Secret is required when using OAuth2 authentication."))

    @api.constrains("auth_type", "bearer_token")
    def _check_bearer_token(self):
        for record in self:
            if record.auth_type == "bearer" and not record.bearer_token:
                raise ValidationError(_("Bearer Token is required when using Bearer Token authentication."))

    @api.constrains("auth_type", "our_sender_id")
    def _check_sender_id(self):
        for record in self:
            if record.auth_type != "none" and not record.our_sender_id:
                raise ValidationError(_("Sender ID is required for authenticated connections."))

    # Newest upstream: the credential methods are private (underscore: not
    # callable over RPC); the public get_oauth2_token / get_headers /
    # clear_oauth2_token_cache are gone (its test asserts they are absent).
    def _clear_oauth2_token_cache(self):
        self.ensure_one()
        self.sudo().write({"_oauth2_access_token": False, "_oauth2_token_expires_at": False})

    def _get_oauth2_token(self, force_refresh=False):
        raise UpstreamHTTPCalled("spp.dci.data.source._get_oauth2_token (httpx)")

    def _get_headers(self, force_refresh_token=False):
        raise UpstreamHTTPCalled("spp.dci.data.source._get_headers (reads the plain-text secret)")

    def test_connection(self):
        self.ensure_one()
        self.check_access("write")          # a read-only user must not trigger a credentialed call
        raise UpstreamHTTPCalled("spp.dci.data.source.test_connection (httpx)")

    def action_test_connection(self):
        return self.test_connection()

    @api.model
    def get_by_code(self, code):
        data_source = self.search([("code", "=", code), ("active", "=", True)], limit=1)
        if not data_source:
            raise UserError(_("Data source with code '%s' not found or is inactive.") % code)
        return data_source

    @api.model
    def get_by_registry_type(self, registry_type):
        return self.search([("registry_type", "=", registry_type), ("active", "=", True)])


# ---------------------------------------------------------------- spp_dci_client/services/client.py
class DCIClient:
    def __init__(self, data_source, env):
        if not data_source:
            raise ValueError("data_source is required")
        self.data_source = data_source
        self.env = env
        self._validate_configuration()

    def _validate_configuration(self):
        missing = [f for f in ["base_url", "our_sender_id"] if not getattr(self.data_source, f, None)]
        if missing:
            raise ValidationError("Data source '%s' is missing required fields: %s"
                                  % (self.data_source.name, ", ".join(missing)))

    def search(self, query_type, query_value, record_type="PERSON", page=1, page_size=10, registry_type=None,
               registry_event_type=None):
        query = self._parse_query(query_type, query_value)
        envelope = self._build_envelope("search", {"transaction_id": str(uuid.uuid4()), "search_request": [
            {"reference_id": str(uuid.uuid4()), "timestamp": _now(), "search_criteria": {
                "reg_type": registry_type or self.data_source.registry_type, "query_type": str(query_type),
                "query": query, "pagination": {"page_size": page_size, "page_number": page}}}]})
        return self._make_request(self.data_source.search_endpoint or "/registry/sync/search", envelope)

    def search_async(self, query_type, query_value, record_type="PERSON", page=1, page_size=10,
                     registry_type=None, registry_event_type=None, callback_url=None):
        query = self._parse_query(query_type, query_value)
        envelope = self._build_envelope("search", {"transaction_id": str(uuid.uuid4()), "search_request": [
            {"reference_id": str(uuid.uuid4()), "timestamp": _now(), "search_criteria": {
                "reg_type": registry_type or self.data_source.registry_type, "query_type": str(query_type),
                "query": query, "pagination": {"page_size": page_size, "page_number": page}}}]},
            callback_url=callback_url)
        return self._make_request("/registry/search", envelope)

    def search_by_id(self, identifier_type, identifier_value, record_type="PERSON", page=1, page_size=10,
                     async_mode=False, registry_event_type=None):
        method = self.search_async if async_mode else self.search
        return method(query_type=QueryType.IDTYPE_VALUE, query_value="%s:%s" % (identifier_type, identifier_value),
                      record_type=record_type, page=page, page_size=page_size,
                      registry_event_type=registry_event_type)

    def search_by_expression(self, expression, record_type="PERSON", page=1, page_size=10, registry_type=None,
                             registry_event_type=None, async_mode=False, use_opencrvs_format=False):
        """Upstream builds its own envelope and calls _make_request (the addon
        does not override this: _make_request must answer in upstream's shape)."""
        if use_opencrvs_format:
            envelope = self._build_search_envelope_opencrvs(
                {"type": "ns:org:QueryType:expression", "value": {"expression": {"query": expression}}},
                "expression", registry_event_type, page, page_size)
        else:
            envelope = self._build_envelope("search", {"transaction_id": str(uuid.uuid4()), "search_request": [
                {"reference_id": str(uuid.uuid4()), "timestamp": _now(), "search_criteria": {
                    "version": "1.0.0", "reg_type": registry_type or self.data_source.registry_type,
                    "query_type": "expression", "query": expression,
                    "pagination": {"page_size": page_size, "page_number": page}}}]})
        if async_mode:
            return self._make_request("/registry/search", envelope)
        return self._make_request(self.data_source.search_endpoint or "/registry/sync/search", envelope)

    def search_by_id_opencrvs(self, identifier_type, identifier_value, event_type="birth", page=1, page_size=10,
                              async_mode=False):
        envelope = self._build_search_envelope_opencrvs({"type": identifier_type, "value": identifier_value},
                                                        "idtype-value", event_type, page, page_size)
        if async_mode:
            return self._make_request("/registry/search", envelope)
        return self._make_request(self.data_source.search_endpoint or "/registry/sync/search", envelope)

    def _build_search_envelope_opencrvs(self, query, query_type, event_type, page, page_size):
        now = _now()
        item = {"reference_id": str(uuid.uuid4()), "timestamp": now, "search_criteria": {
            "version": "1.0.0", "reg_type": RegistryType.CRVS.value, "reg_event_type": (event_type or "birth").lower(),
            "query_type": query_type, "query": query,
            "sort": [{"attribute_name": "createdAt", "sort_order": "asc"}],
            "pagination": {"page_size": page_size, "page_number": page}},
            "consent": {"id": "consent-openspp", "ts": now, "purpose": {
                "text": "Social protection program verification", "code": "SPP",
                "refUri": self.data_source.our_callback_uri or "http://openspp.org"}},
            "locale": "eng"}
        header = {"version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": now, "action": "search",
                  "sender_id": self.data_source.our_sender_id, "sender_uri": self.data_source.our_callback_uri or "",
                  "receiver_id": self.data_source.receiver_id or self.data_source.base_url, "total_count": 1}
        return {"header": header, "message": {"transaction_id": str(uuid.uuid4()), "search_request": [item]}}

    def _parse_query(self, query_type, query_value):
        if query_type == QueryType.IDTYPE_VALUE:
            if ":" in query_value:
                t, v = query_value.split(":", 1)
                return {"type": t.strip(), "value": v.strip()}
            raise ValidationError("For query_type 'idtype-value', query_value must be in format 'TYPE:VALUE', "
                                  "got: %s" % query_value)
        return query_value

    def subscribe(self, event_type, filter_query=None, notify_record_type="Person"):
        envelope = self._build_envelope("subscribe", {"transaction_id": str(uuid.uuid4()), "subscribe_request": [
            {"reference_id": str(uuid.uuid4()), "timestamp": _now(), "subscribe_criteria": {
                "reg_event_type": event_type, "notify_record_type": notify_record_type,
                "filter": filter_query or {"type": "*", "value": "*"}}}]})
        return self._make_request(self.data_source.subscribe_endpoint or "/registry/subscribe", envelope)

    def unsubscribe(self, subscription_codes):
        envelope = self._build_envelope("unsubscribe", {"transaction_id": str(uuid.uuid4()), "timestamp": _now(),
                                                        "subscription_code": subscription_codes})
        return self._make_request("/registry/unsubscribe", envelope)

    def txn_status(self, attribute_value, attribute_type="transaction_id"):
        envelope = self._build_envelope("txn_status", {"transaction_id": str(uuid.uuid4()), "txnstatus_request": {
            "reference_id": str(uuid.uuid4()), "attribute_type": attribute_type,
            "attribute_value": attribute_value}})
        return self._make_request("/registry/txn/status", envelope)

    def _build_envelope(self, action, message, callback_url=None):
        header = {"version": "1.0.0", "message_id": str(uuid.uuid4()), "message_ts": _now(), "action": action,
                  "sender_id": self.data_source.our_sender_id or "",
                  "sender_uri": callback_url or self.data_source.our_callback_uri or "",
                  "receiver_id": self.data_source.receiver_id or self.data_source.base_url, "total_count": 1,
                  "is_msg_encrypted": False, "meta": {}}
        return self._sign_request(header, message)

    def _sign_request(self, header, message):
        if self.data_source.signing_key_id:
            raise UpstreamHTTPCalled("DCIClient._sign_request (signs with the key's private key in Python)")
        return {"signature": "", "header": header, "message": message}

    def _make_request(self, endpoint, envelope, _retry_auth=True):
        self.data_source._get_headers()
        raise UpstreamHTTPCalled("DCIClient._make_request (httpx, _get_headers)")

    def _log_outgoing_call(self, url, endpoint, envelope, response_data, status_code, duration_ms, status,
                           error_detail):
        raise AssertionError("upstream _log_outgoing_call reached")


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---------------------------------------------------------------- spp_dci_client_crvs
class CRVSEvent(models.Model):
    _name = "spp.dci.crvs.event"
    name = fields.Char()
    event_type = fields.Char()
    identifier_type = fields.Char()
    identifier_value = fields.Char()
    event_date = fields.Char()
    raw_data = fields.Text()
    state = fields.Char(default="received")

    def process_event(self):
        self.write({"state": "processed"})


class CRVSService:
    def __init__(self, env, data_source_code="crvs_main"):
        self.env = env
        self.data_source_code = data_source_code
        self.data_source = self.env["spp.dci.data.source"].get_by_code(data_source_code)
        if self.data_source.registry_type != RegistryType.CRVS.value:
            raise ValidationError("Data source '%s' is not a CRVS registry (type: %s)"
                                  % (data_source_code, self.data_source.registry_type))
        self.client = DCIClient(self.data_source, env)

    def verify_birth(self, identifier_type, identifier_value):
        raise UpstreamHTTPCalled("CRVSService.verify_birth (search_by_id_opencrvs -> httpx)")

    def check_death(self, identifier_type, identifier_value):
        raise UpstreamHTTPCalled("CRVSService.check_death (search_by_id_opencrvs -> httpx)")

    def _extract_birth_data(self, record_data):
        """Upstream's birth_data: identifier (the BRN), birth_date, person_name,
        mother_name, father_name, place_of_birth, when the record has them."""
        out = {}
        for ident in record_data.get("identifiers") or []:
            if isinstance(ident, dict) and ident.get("type") == "BRN":
                out.update(identifier_type="BRN", identifier_value=ident.get("value"))
                break
        if "birth_date" in record_data or "birthdate" in record_data:
            out["birth_date"] = record_data.get("birth_date", record_data.get("birthdate"))
        if "name" in record_data:
            out["person_name"] = record_data["name"]
        elif "given_name" in record_data and "family_name" in record_data:
            out["person_name"] = "%s %s" % (record_data["given_name"], record_data["family_name"])
        for key in ("mother_name", "father_name", "place_of_birth"):
            if key in record_data:
                out[key] = record_data[key]
        return out

    def process_notification(self, notification_data):
        if not notification_data:
            raise ValidationError("notification_data is required")
        message = notification_data.get("message", notification_data)
        identifiers = message.get("identifiers", [])
        first = identifiers[0] if identifiers else {}
        event = self.env["spp.dci.crvs.event"].create({
            "event_type": message.get("event_type", "").lower(), "identifier_type": first.get("type"),
            "identifier_value": first.get("value"), "event_date": message.get("event_date"),
            "raw_data": json.dumps(notification_data, indent=2), "state": "received"})
        event.process_event()
        return event.id


class CRVSSenderRegistry(models.Model):
    """spp_dci_client_crvs/models/crvs_sender.py: the public key (PEM) or
    JWKS URL of a trusted registry, by the sender_id of its callbacks (the
    upstream routers verify callbacks with it); DR and IBR have the same."""
    _name = "spp.dci.crvs.sender"
    name = fields.Char()
    sender_id = fields.Char()
    public_key = fields.Text()
    jwks_url = fields.Char()
    algorithm = fields.Selection()
    active = fields.Boolean(default=True)


class DRSenderRegistry(models.Model):
    _name = "spp.dci.dr.sender"
    name = fields.Char()
    sender_id = fields.Char()
    public_key = fields.Text()
    jwks_url = fields.Char()
    algorithm = fields.Selection()
    active = fields.Boolean(default=True)


class IBRSenderRegistry(models.Model):
    _name = "spp.dci.ibr.sender"
    name = fields.Char()
    sender_id = fields.Char()
    public_key = fields.Text()
    jwks_url = fields.Char()
    algorithm = fields.Selection()
    active = fields.Boolean(default=True)


# ---------------------------------------------------------------- spp_dci_client_dr
class DisabilityStatus(models.Model):
    _name = "spp.dci.disability.status"
    partner_id = fields.Many2one("res.partner")
    has_disability = fields.Boolean()
    disability_types = fields.Text()
    functional_scores = fields.Text()
    assessment_date = fields.Date()
    source_registry = fields.Char()
    raw_data = fields.Text()
    state = fields.Char(default="synced")
    error_message = fields.Text()
    last_sync_date = fields.Datetime(default=lambda self: fields.Datetime.now())
    synced_by = fields.Many2one("res.users")
    active = fields.Boolean(default=True)


class DRService:
    def __init__(self, env, data_source_code="dr_main"):
        self.env = env
        self.data_source_code = data_source_code
        self.data_source = self.env["spp.dci.data.source"].get_by_code(data_source_code)
        if self.data_source.registry_type != RegistryType.DISABILITY_REGISTRY.value:
            raise ValidationError("Data source '%s' is not a Disability Registry" % data_source_code)
        self.client = DCIClient(self.data_source, env)

    def get_disability_status(self, partner):
        raise UpstreamHTTPCalled("DRService.get_disability_status (search_by_id -> httpx)")

    def _get_partner_identifier(self, partner):
        reg_ids = self.env["spp.registry.id"].search([("partner_id", "=", partner.id)])
        for id_type in ["UIN", "DRN", "NATIONAL_ID", "NID"]:
            for reg_id in reg_ids:
                if reg_id.id_type_id.code == id_type and reg_id.value:
                    return (reg_id.id_type_id.code, reg_id.value)
        for reg_id in reg_ids:
            return (reg_id.id_type_id.code, reg_id.value)
        return None

    def _extract_disability_data(self, record_data):
        raise AssertionError("upstream _extract_disability_data reached")


# ---------------------------------------------------------------- spp_dci_client_ibr
class DuplicationCheck(models.Model):
    _name = "spp.dci.duplication.check"
    partner_id = fields.Many2one("res.partner")
    identifier_type = fields.Char()
    identifier_value = fields.Char()
    result = fields.Char()
    matched_programs = fields.Text()
    raw_response = fields.Text()
    state = fields.Char(default="ready")
    notes = fields.Text()


class IBRService:
    def __init__(self, data_source, env):
        if not data_source:
            raise ValueError("data_source is required")
        self.data_source = data_source
        self.env = env
        self.client = DCIClient(data_source, env)

    def check_duplication(self, partner):
        raise UpstreamHTTPCalled("IBRService.check_duplication (one search_by_id -> httpx per identifier)")

    def search_beneficiary(self, identifier_type, identifier_value):
        try:
            response = self.client.search_by_id(identifier_type=identifier_type, identifier_value=identifier_value,
                                                record_type="PERSON", page=1, page_size=10)
            return self._parse_search_response(response)
        except Exception as e:
            raise UserError("Failed to search for beneficiary %s:%s: %s" % (identifier_type, identifier_value, e)) \
                from e

    def get_enrollment_status(self, identifier_type, identifier_value):
        matches = self.search_beneficiary(identifier_type, identifier_value)
        programs = set()
        for m in matches:
            programs.update(m.get("programs", []))
        return {"enrolled": bool(matches), "programs": sorted(programs),
                "beneficiary_info": matches[0] if matches else None}

    def _parse_search_response(self, response):
        """Upstream iterates each item's `data` as a list of records (a
        spec answer's data is an object holding reg_records: iterating it
        gives its keys, and the parse error makes the answer [])."""
        matches = []
        try:
            for item in (response.get("message", {}) or {}).get("search_response", []):
                for record in item.get("data", []):
                    matches.append({"reference_id": item.get("reference_id"), "name": self._extract_name(record),
                                    "identifiers": self._extract_identifiers(record),
                                    "programs": self._extract_programs(record), "raw_data": record})
        except Exception:
            return []
        return matches

    def _get_partner_identifiers(self, partner):
        out = []
        for registry_id in partner.reg_ids:
            if registry_id.id_type_id and registry_id.value:
                out.append((registry_id.id_type_id.code or registry_id.id_type_id.name, registry_id.value))
        return out

    def _extract_name(self, record):
        for field in ["name", "full_name"]:
            if field in record and record[field]:
                return record[field]
        given, family = record.get("given_name", ""), record.get("family_name", "")
        return ("%s %s" % (given, family)).strip() or None

    def _extract_identifiers(self, record):
        ids = record.get("identifiers") or record.get("identifier") or []
        return list(ids) if isinstance(ids, list) else [ids]

    def _extract_programs(self, record):
        programs = []
        for prog in record.get("programs") or []:
            if isinstance(prog, str):
                programs.append(prog)
            elif isinstance(prog, dict):
                name = prog.get("name") or prog.get("id") or prog.get("code")
                if name:
                    programs.append(str(name))
        for enrollment in record.get("enrollments") or []:
            if isinstance(enrollment, dict):
                name = enrollment.get("program_name") or enrollment.get("program_id") or enrollment.get("program")
                if name:
                    programs.append(str(name))
        return programs


# ---------------------------------------------------------------- register them where the addon imports them
_module("odoo.addons.spp_dci.schemas.constants", RegistryType=RegistryType, QueryType=QueryType)
_module("odoo.addons.spp_dci.schemas", RegistryType=RegistryType, QueryType=QueryType)
_module("odoo.addons.spp_dci_client.services.errors", format_http_error=format_http_error,
        format_connection_error=format_connection_error)
_module("odoo.addons.spp_dci_client.services.client", DCIClient=DCIClient)
_module("odoo.addons.spp_dci_client.services", DCIClient=DCIClient)
_module("odoo.addons.spp_dci_client.models.data_source", DCIDataSource=DCIDataSource)
_module("odoo.addons.spp_dci_client_crvs.services.crvs_service", CRVSService=CRVSService)
_module("odoo.addons.spp_dci_client_dr.services.dr_service", DRService=DRService)
_module("odoo.addons.spp_dci_client_ibr.services.ibr_service", IBRService=IBRService)
