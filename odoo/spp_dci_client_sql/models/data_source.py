"""spp.dci.data.source on the dci_client extension.

The row of `dci_data_source` with the same `code` is the connection's
configuration: create/write/unlink keep it in step, the secrets are written
through to its write-only columns and never stored by Odoo (the Char fields
`oauth2_client_secret` and `bearer_token` stay empty), and the methods that
authenticate, test or look sources up ask the extension.  The overridden
methods keep the names and signatures of spp_dci_client/models/data_source.py.
"""
import datetime
import logging

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from odoo.addons.spp_dci_client.models.data_source import DCIDataSource as _Upstream

from ..services import sql

_logger = logging.getLogger(__name__)

# spp_dci_client's newest data source has private credential methods
# (_get_oauth2_token, _get_headers, _clear_oauth2_token_cache: not callable
# over RPC, so no user can have a token minted and handed back); older ones
# had them public.  The private ones are overridden always; the public names
# exist here only where upstream still has them (never re-added).
UPSTREAM_PUBLIC_TOKEN_METHODS = hasattr(_Upstream, "get_headers")

# Odoo field -> dci_data_source column, values written through unchanged
FIELD_MAP = {
    "name": "name",
    "code": "code",
    "registry_type": "registry_type",
    "base_url": "base_url",
    "auth_type": "auth_type",
    "oauth2_token_url": "auth_url",
    "oauth2_client_id": "client_id",
    "oauth2_scope": "scope",
    "oauth2_credential_location": "credential_location",
    "verify_ssl": "verify_ssl",
    "our_sender_id": "sender_id",
    "our_callback_uri": "callback_uri",
    "receiver_id": "receiver_id",
    "search_endpoint": "search_endpoint",
    "active": "active",
    "notes": "notes",
    # what the extension adds (this addon's fields)
    "dci_batch_size": "batch_size",
    "dci_max_concurrency": "max_concurrency",
    "dci_signature_format": "signature_format",
    "dci_dialect": "dialect",
    "dci_registry_jwks_url": "registry_jwks_url",
}
# write-only secrets: handed to the extension, never stored by Odoo
SECRET_MAP = {
    "oauth2_client_secret": "client_secret",
    "bearer_token": "bearer_token",
    "dci_callback_token": "callback_token",
}
# the fields computed from what the extension holds: recomputed after a
# secret is written (never the value just assigned: it would be readable back)
SECRET_VIEW_FIELDS = ("oauth2_client_secret_display", "dci_callback_token", "dci_client_secret_set",
                      "dci_bearer_token_set", "dci_callback_token_set")
BOOLEAN_FIELDS = ("verify_ssl", "active")


def _sql_value(field, value):
    if value is False and field not in BOOLEAN_FIELDS:
        return None                                  # Odoo's empty value
    return value


class DCIDataSource(models.Model):
    _inherit = "spp.dci.data.source"

    dci_client_secret_set = fields.Boolean(
        string="Client Secret Stored", compute="_compute_dci_secrets_set",
        help="Whether dci_client holds a client secret for this source (it never shows it)")
    dci_bearer_token_set = fields.Boolean(string="Bearer Token Stored", compute="_compute_dci_secrets_set")
    dci_callback_token_set = fields.Boolean(string="Callback Token Stored", compute="_compute_dci_secrets_set")
    dci_callback_token = fields.Char(
        string="Callback Token", compute="_compute_dci_callback_token", inverse="_inverse_dci_callback_token",
        groups="base.group_system",
        help="Secret the registry presents on our callbacks (write-only: kept encrypted by dci_client)")
    dci_dialect = fields.Selection(
        [("dci", "DCI (SPDCI 1.0)"), ("opencrvs", "OpenCRVS"), ("openg2p", "OpenG2P")],
        string="Registry Dialect", default="dci")
    dci_batch_size = fields.Integer(string="Batch Size", default=100,
                                    help="Items per envelope of a bulk verification (1-1000)")
    dci_max_concurrency = fields.Integer(string="Max Concurrency", default=4,
                                         help="Envelopes in flight at once, across all workers (1-64)")
    dci_signature_format = fields.Selection([("dci", "DCI signature field"), ("jws", "JWS (OpenCRVS)")],
                                            string="Signature Format", default="dci")
    dci_registry_jwks_url = fields.Char(string="Registry JWKS URL",
                                        help="Where the registry publishes the keys its answers are signed with")
    dci_test_steps = fields.Text(string="Connection Test Steps", readonly=True,
                                 help="The steps of the last dci_test_connection: config, auth, reachable, authorized")

    # ------------------------------------------------------------ write-through
    def _dci_columns(self, vals):
        """(columns, secrets) of dci_data_source for Odoo values."""
        cols = {FIELD_MAP[k]: _sql_value(k, v) for k, v in vals.items() if k in FIELD_MAP}
        if "timeout" in vals:
            cols["timeout_ms"] = int(vals["timeout"] * 1000) if vals["timeout"] else None
        if "signing_key_id" in vals:
            cols["signing_key_id"] = self._dci_signing_key(vals["signing_key_id"])
        secrets = {}
        for field, column in SECRET_MAP.items():
            if field not in vals:
                continue
            v = vals[field]
            if not v:
                secrets[column] = ""                   # emptied in the form: remove it
            elif v != self._SECRET_MASK:
                secrets[column] = v
        return cols, secrets

    def _dci_signing_key(self, odoo_key_id):
        """dci_signing_key.id of an spp.dci.signing.key (same key_id), or None.
        The extension signs with its own copy (the install hook moves the keys
        in); a key only Odoo holds cannot sign and is refused, never dropped."""
        if not odoo_key_id:
            return None
        cr = self.env.cr
        cr.execute("SELECT k.id, o.key_id FROM spp_dci_signing_key o LEFT JOIN dci_signing_key k ON k.key_id = o.key_id "
                   "WHERE o.id = %s", (int(odoo_key_id),))
        row = cr.fetchone()
        if not row or row[0] is None:
            raise UserError(_("Signing key %s is not in dci_client: run the addon's migration "
                              "(hooks.migrate_signing_keys) or import it into dci_signing_key.")
                            % (row[1] if row else odoo_key_id))
        return row[0]

    @api.model
    def _apply_secret_display(self, vals):
        """The form's oauth2_client_secret_display as oauth2_client_secret in
        vals (the mask: unchanged), before the write-through.  Newest upstream
        does the same inside its create/write, after this addon's: the value
        would reach Odoo's column in plain text and the extension never."""
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
        cr = self.env.cr
        odoo_vals = []
        with sql.dci_errors(cr):
            for vals in vals_list:
                vals = dict(vals)
                self._apply_secret_display(vals)
                cols, secrets = self._dci_columns(vals)
                cols.setdefault("timeout_ms", int(vals.get("timeout", 30) * 1000) if vals.get("timeout", 30) else None)
                names = ", ".join(cols)
                cr.execute("INSERT INTO dci_data_source (%s) VALUES (%s)" % (names, ", ".join(["%s"] * len(cols))),
                           list(cols.values()))
                sql.write_secrets(cr, cols.get("code"), secrets)
                odoo_vals.append({k: v for k, v in vals.items() if k not in SECRET_MAP})
            # the extension's row exists (with its secrets) before Odoo's
            # constraints run, so that they can ask it
            return super().create(odoo_vals)

    def write(self, vals):
        vals = dict(vals)
        self._apply_secret_display(vals)
        cr = self.env.cr
        with sql.dci_errors(cr):
            for rec in self:
                cols, secrets = rec._dci_columns(vals)
                code = rec.code
                if cols:
                    cr.execute("UPDATE dci_data_source SET %s WHERE code = %%s"
                               % ", ".join("%s = %%s" % c for c in cols), list(cols.values()) + [code])
                    code = cols.get("code") or code
                sql.write_secrets(cr, code, secrets)
            rest = {k: v for k, v in vals.items() if k not in SECRET_MAP}
            if any(f in vals for f in SECRET_MAP):
                self._dci_forget_secret_views()
            if rest:
                return super().write(rest)
            if any(f in vals for f in SECRET_MAP):
                self._validate_fields(["oauth2_client_secret", "bearer_token"])
            return True

    def _dci_forget_secret_views(self):
        """Drop the cached values of the fields shown for secrets: an
        assignment leaves the value assigned in Odoo's cache (and the form
        would read the secret back); recomputed, they are the mask."""
        self.invalidate_recordset([f for f in SECRET_VIEW_FIELDS if f in self._fields])

    def unlink(self):
        codes = [rec.code for rec in self]
        res = super().unlink()
        sql.fetch_all(self.env.cr, "DELETE FROM dci_data_source WHERE code = ANY(%s) RETURNING id", (codes,))
        return res

    def _dci_row(self, *columns):
        self.ensure_one()
        with sql.dci_errors(self.env.cr):            # a refused read must not abort Odoo's transaction
            self.env.cr.execute("SELECT %s FROM dci_data_source WHERE code = %%s" % ", ".join(columns),
                                (self.code,))
            return self.env.cr.fetchone()

    def _dci_secret_flags(self):
        row = self._dci_row("client_secret_set", "bearer_token_set", "callback_token_set") if self.code else None
        return tuple(bool(x) for x in row) if row else (False, False, False)

    # ------------------------------------------------------------ the secrets in the form
    @api.depends("code")
    def _compute_oauth2_client_secret_display(self):
        for record in self:
            record.oauth2_client_secret_display = self._SECRET_MASK if record._dci_secret_flags()[0] else False

    def _inverse_oauth2_client_secret_display(self):
        for record in self:
            value = record.oauth2_client_secret_display
            if value != self._SECRET_MASK:
                record.write({"oauth2_client_secret": value or False})
            record._dci_forget_secret_views()

    @api.depends("code")
    def _compute_dci_secrets_set(self):
        for record in self:
            flags = record._dci_secret_flags()
            record.dci_client_secret_set, record.dci_bearer_token_set, record.dci_callback_token_set = flags

    @api.depends("code")
    def _compute_dci_callback_token(self):
        for record in self:
            record.dci_callback_token = self._SECRET_MASK if record._dci_secret_flags()[2] else False

    def _inverse_dci_callback_token(self):
        for record in self:
            if record.dci_callback_token != self._SECRET_MASK:
                record.write({"dci_callback_token": record.dci_callback_token or False})
            record._dci_forget_secret_views()

    # ------------------------------------------------------------ constraints that ask the extension
    @api.constrains("auth_type", "oauth2_token_url", "oauth2_client_id", "oauth2_client_secret")
    def _check_oauth2_fields(self):
        """Validate OAuth2 configuration fields (the secret: stored by dci_client)."""
        for record in self:
            if record.auth_type == "oauth2":
                if not record.oauth2_token_url:
                    raise ValidationError(_("OAuth2 Token URL is required when using OAuth2 authentication."))
                if not record.oauth2_client_id:
                    raise ValidationError(_("OAuth2 Client ID is required when using OAuth2 authentication."))
                if not record._dci_secret_flags()[0]:
                    raise ValidationError(_("OAuth2 Client Secret is required when using OAuth2 authentication."))

    @api.constrains("auth_type", "bearer_token")
    def _check_bearer_token(self):
        """Validate Bearer token configuration (the token: stored by dci_client)."""
        for record in self:
            if record.auth_type == "bearer" and not record._dci_secret_flags()[1]:
                raise ValidationError(_("Bearer Token is required when using Bearer Token authentication."))

    # ------------------------------------------------------------ what the extension does
    def _clear_oauth2_token_cache(self):
        """Drop the cached OAuth2 token: dci_client fetches a fresh one now
        (its cache is in memory, shared by every worker; nothing in Odoo)."""
        self.ensure_one()
        if self.auth_type == "oauth2":
            sql.fetch_one(self.env.cr, "SELECT dci_get_token(%s, true) IS NOT NULL", (self.code,))
        _logger.info("Cleared OAuth2 token cache for data source: %s", self.code)

    def _get_oauth2_token(self, force_refresh=False):
        """A valid OAuth2 access token, from dci_client's shared cache or the
        token endpoint (one fetch at a time per source across workers)."""
        self.ensure_one()
        if self.auth_type != "oauth2":
            raise UserError(_("This data source does not use OAuth2 authentication."))
        return sql.fetch_one(self.env.cr, "SELECT dci_get_token(%s, %s)", (self.code, bool(force_refresh)))

    def _get_headers(self, force_refresh_token=False):
        """HTTP headers with authentication, for code that still builds its own
        requests (the DCI calls of this addon need none: the extension adds them)."""
        self.ensure_one()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.auth_type == "oauth2":
            headers["Authorization"] = "Bearer %s" % self._get_oauth2_token(force_refresh=force_refresh_token)
        elif self.auth_type == "bearer":
            token = sql.fetch_one(self.env.cr, "SELECT dci_get_token(%s)", (self.code,))
            if not token:
                raise UserError(_("Bearer token is not configured for this data source."))
            headers["Authorization"] = "Bearer %s" % token
        elif self.auth_type == "basic":
            raise UserError(_("Basic authentication is not yet implemented."))
        return headers

    if UPSTREAM_PUBLIC_TOKEN_METHODS:
        # older spp_dci_client: its public names, same signatures
        def clear_oauth2_token_cache(self):
            """Drop the cached OAuth2 token (older spp_dci_client's name)."""
            return self._clear_oauth2_token_cache()

        def get_oauth2_token(self, force_refresh=False):
            """A valid OAuth2 access token (older spp_dci_client's name)."""
            return self._get_oauth2_token(force_refresh=force_refresh)

        def get_headers(self, force_refresh_token=False):
            """Authenticated HTTP headers (older spp_dci_client's name)."""
            return self._get_headers(force_refresh_token=force_refresh_token)

    def test_connection(self):
        """dci_test_connection: config, auth, reachable, authorized.  The
        extension records state / last_test_at / last_error on its row; they
        are copied here with the steps, and a notification is returned."""
        self.ensure_one()
        # it uses the source's credentials and calls out: only for who may
        # manage the source (newest upstream's gate), not any reader
        self.check_access("write")
        rows = sql.fetch_all(self.env.cr, "SELECT step, ok, detail, elapsed_ms FROM dci_test_connection(%s)",
                             (self.code,))
        state, last_test_at, last_error = self._dci_row("state", "last_test_at", "last_error")
        if last_test_at is not None and last_test_at.tzinfo is not None:   # Odoo keeps naive UTC
            last_test_at = last_test_at.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        word = {True: _("ok"), False: _("failed"), None: _("not verifiable")}
        lines = ["%s: %s%s" % (step, word[ok], " (%s)" % detail if detail and ok is not True else "")
                 for step, ok, detail, _ms in rows]
        super().write({"state": state, "last_test_date": last_test_at or False,
                       "last_error": last_error or False, "dci_test_steps": "\n".join(lines)})
        ok = state == "active"
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": _("Connection Successful") if ok else _("Connection Failed"),
                "message": "\n".join(lines),
                "type": "success" if ok else "danger",
                "sticky": not ok,
            },
        }

    @api.model
    def get_by_code(self, code):
        """The active data source of that code, as dci_client sees it."""
        found = sql.fetch_one(self.env.cr, "SELECT code FROM dci_data_source WHERE code = %s AND active", (code,))
        data_source = self.search([("code", "=", found)], limit=1) if found else self.browse()
        if not data_source:
            raise UserError(_("Data source with code '%s' not found or is inactive.") % code)
        return data_source

    @api.model
    def get_by_registry_type(self, registry_type):
        """Every active data source of a registry type, as dci_client sees them."""
        codes = [r[0] for r in sql.fetch_all(
            self.env.cr, "SELECT code FROM dci_data_source WHERE registry_type = %s AND active ORDER BY code",
            (registry_type,))]
        return self.search([("code", "in", codes)]) if codes else self.browse()
