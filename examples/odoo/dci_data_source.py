"""spp.dci.data.source on top of the dci_client PostgreSQL extension.

Drop this file into an Odoo module that depends on `spp_dci_client` (e.g.
`models/dci_data_source.py` of a module `spp_dci_client_pg`).  It keeps the
model's fields and its public methods, and delegates the work to the SQL
functions of the extension through `self.env.cr`:

| method                        | SQL                                   |
|-------------------------------|---------------------------------------|
| get_access_token()            | SELECT dci_get_token(code, force)     |
| make_request(method, endpoint)| SELECT * FROM dci_request(...)        |
| test_connection()             | SELECT * FROM dci_test_connection(code) |

What changes for the data: the row of `dci_data_source` (same `code`) is the
connection configuration; this model writes its fields through to it on
create/write.  The client secret and the bearer token are written through
and never stored in Odoo's table (they used to be plain text there); the
OAuth2 token is never stored anywhere but memory (it used to be cached in
`_oauth2_access_token`).  `state`, `last_test_date` and `last_error` are
read back from the SQL row after `test_connection()`.

Errors: every SQL call runs inside `dci_errors(cr)`, which rolls back to a
savepoint (the Odoo transaction stays usable) and turns the extension's
SQLSTATEs into `UserError` messages (`DCI_ERRORS`).
"""
import contextlib
import datetime
import json
import logging

import psycopg2
from psycopg2.extras import Json

try:  # inside Odoo
    from odoo import _, api, fields, models
    from odoo.exceptions import UserError
except ImportError:  # outside Odoo: tests, linters
    try:
        from .odoo_shim import UserError, _, api, fields, models
    except ImportError:
        from odoo_shim import UserError, _, api, fields, models

_logger = logging.getLogger(__name__)

# SQLSTATE -> what the user is told.  The extension's own message and detail
# follow it: they name the data source and quote the registry's reason, and
# never carry a secret, a token or a key.
DCI_ERRORS = {
    "DC001": _("The data source is not usable: it is unknown, inactive or incompletely "
               "configured, or its stored credentials cannot be decrypted on this server."),
    "DC002": _("The registry refused our credentials. Check the client ID and secret "
               "(or the bearer token) of the data source."),
    "DC003": _("Could not connect to the registry (network, DNS or TLS certificate problem)."),
    "DC004": _("The registry did not answer in time."),
    "DC005": _("The registry's answer was too large."),
    "DC006": _("The registry's answer could not be understood (not the expected JSON)."),
    "DC007": _("The registry rejected the request."),
    "DC008": _("The registry's answer is not signed as expected: it was not accepted."),
    "DC009": _("The registry is unavailable at the moment. Please try again later."),
    "22023": _("Invalid request to the registry."),
    "22021": _("The registry's answer contains invalid characters."),
    "57014": _("The call to the registry was cancelled or exceeded the time allowed."),
    "23514": _("Invalid data source configuration."),
    "23505": _("A data source with this code already exists."),
    "23502": _("A required field of the data source is missing."),
}


def dci_user_error(exc):
    """The UserError for a psycopg2 error raised by a dci_client function,
    or None when its SQLSTATE is not one of DCI_ERRORS."""
    text = DCI_ERRORS.get(getattr(exc, "pgcode", None))
    if text is None:
        return None
    diag = getattr(exc, "diag", None)
    said = [m for m in (diag.message_primary, diag.message_detail) if m] if diag is not None else []
    err = UserError("\n\n".join([text] + said))
    err.pgcode = exc.pgcode
    return err


@contextlib.contextmanager
def dci_errors(cr):
    """Run SQL calls of the extension as one unit:

        with dci_errors(self.env.cr):
            self.env.cr.execute("SELECT dci_search_by_id(%s, %s, %s)", (...))

    A failure rolls back to a savepoint taken on entry, so the surrounding
    Odoo transaction goes on (an error inside a transaction would otherwise
    abort it), and a dci_client SQLSTATE becomes a UserError.  Other
    database errors are re-raised as they are."""
    try:
        with cr.savepoint():
            yield
    except psycopg2.Error as e:
        err = dci_user_error(e)
        if err is None:
            raise
        _logger.info("dci_client call failed: SQLSTATE %s: %s", e.pgcode,
                     e.diag.message_primary if e.diag else e)
        raise err from e


# Odoo field -> dci_data_source column (values written through unchanged)
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
}
# write-only secrets: passed to SQL, never stored by Odoo
SECRET_MAP = {
    "oauth2_client_secret": "client_secret",
    "bearer_token": "bearer_token",
}
SECRET_MASK = "********"


def _sql_value(field, value):
    if field == "timeout":
        return int(value * 1000) if value else None          # seconds -> timeout_ms
    if value is False and field not in ("verify_ssl", "active"):
        return None                                          # Odoo's empty value
    return value


class DciDataSource(models.Model):
    _inherit = "spp.dci.data.source"

    # write-only: the UI shows a mask when the SQL row holds a secret
    oauth2_client_secret_display = fields.Char(
        compute="_compute_oauth2_client_secret_display",
        inverse="_inverse_oauth2_client_secret_display",
        groups="base.group_system",
    )

    # ---------------------------------------------------------------- write-through
    def _dci_columns(self, vals):
        cols = {FIELD_MAP[k]: _sql_value(k, v) for k, v in vals.items() if k in FIELD_MAP}
        if "timeout" in vals:
            cols["timeout_ms"] = _sql_value("timeout", vals["timeout"])
        for field, column in SECRET_MAP.items():
            v = vals.get(field)
            if v is False:                          # emptied in the form: remove it
                cols[column] = ""
            elif v and v != SECRET_MASK:
                cols[column] = v
        return cols

    # Secrets go in a statement of their own, after the row is known to be
    # valid: psycopg2 interpolates parameters into the statement text, and a
    # statement that fails is written to the server log with its text
    # (log_min_error_statement).  For that one statement the log is told not
    # to (only possible when Odoo's role may set it: superuser, or set
    # `ALTER ROLE ... SET log_min_error_statement = panic` for the role).
    def _dci_write_secrets(self, code, secrets):
        if not secrets:
            return
        cr = self.env.cr
        sets = ", ".join("%s = %%s" % c for c in secrets)
        with dci_errors(cr):
            cr.execute("SELECT current_setting('log_min_error_statement')")
            previous = cr.fetchone()[0]
            try:
                with cr.savepoint():
                    cr.execute("SET LOCAL log_min_error_statement = panic")
            except psycopg2.Error:
                pass                                    # not allowed for this role: see above
            cr.execute("UPDATE dci_data_source SET %s WHERE code = %%s" % sets, list(secrets.values()) + [code])
            cr.execute("SELECT set_config('log_min_error_statement', %s, true)", (previous,))

    @staticmethod
    def _dci_split_secrets(cols):
        return {c: cols.pop(c) for c in list(cols) if c in SECRET_MAP.values()}

    def _dci_insert(self, cols):
        secrets = self._dci_split_secrets(cols)
        names = ", ".join(cols)
        marks = ", ".join(["%s"] * len(cols))
        with dci_errors(self.env.cr):
            self.env.cr.execute("INSERT INTO dci_data_source (%s) VALUES (%s)" % (names, marks),
                                [Json(v) if isinstance(v, dict) else v for v in cols.values()])
        self._dci_write_secrets(cols["code"], secrets)

    def _dci_update(self, code, cols):
        # a new base_url/auth_url/credential_location/verify_ssl drops the stored
        # secrets; the secrets written afterwards in this same call are kept
        secrets = self._dci_split_secrets(cols)
        if cols:
            sets = ", ".join("%s = %%s" % c for c in cols)
            with dci_errors(self.env.cr):
                self.env.cr.execute("UPDATE dci_data_source SET %s WHERE code = %%s" % sets,
                                    list(cols.values()) + [code])
            code = cols.get("code", code)
        self._dci_write_secrets(code, secrets)

    @api.model_create_multi
    def create(self, vals_list):
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        pushed = []
        for vals in vals_list:
            cols = self._dci_columns(vals)
            cols.setdefault("timeout_ms", _sql_value("timeout", vals.get("timeout", 30)))
            pushed.append(cols)
            for f in SECRET_MAP:                     # never stored by Odoo
                vals.pop(f, None)
        records = super().create(vals_list)
        for cols in pushed:
            self._dci_insert(cols)
        return records

    def write(self, vals):
        vals = dict(vals)
        secrets = {f: vals.pop(f) for f in list(vals) if f in SECRET_MAP}
        for rec in self:
            cols = rec._dci_columns(dict(vals, **secrets))
            rec._dci_update(rec.code, cols)
        return super().write(vals) if vals else True

    def unlink(self):
        codes = [rec.code for rec in self]
        res = super().unlink()
        with dci_errors(self.env.cr):
            self.env.cr.execute("DELETE FROM dci_data_source WHERE code = ANY(%s)", (codes,))
        return res

    def _dci_row(self, *columns):
        self.env.cr.execute("SELECT %s FROM dci_data_source WHERE code = %%s" % ", ".join(columns),
                            (self.code,))
        return self.env.cr.fetchone()

    @api.depends("code")
    def _compute_oauth2_client_secret_display(self):
        for rec in self:
            row = rec._dci_row("client_secret_set") if rec.code else None
            rec.oauth2_client_secret_display = SECRET_MASK if row and row[0] else False

    def _inverse_oauth2_client_secret_display(self):
        for rec in self:
            rec.write({"oauth2_client_secret": rec.oauth2_client_secret_display or False})

    # ---------------------------------------------------------------- the service methods
    def get_access_token(self, force_refresh=False):
        """A valid access token (cached in memory, shared by all workers when the
        library is preloaded); None for auth_type 'none'."""
        self.ensure_one()
        with dci_errors(self.env.cr):
            self.env.cr.execute("SELECT dci_get_token(%s, %s)", (self.code, bool(force_refresh)))
            return self.env.cr.fetchone()[0]

    get_oauth2_token = get_access_token          # the name spp_dci_client uses

    def clear_oauth2_token_cache(self):
        """Drop the cached token by fetching a fresh one now."""
        self.get_access_token(force_refresh=True)

    def make_request(self, method, endpoint, payload=None, headers=None, raise_for_status=True):
        """One authenticated call: `base_url + endpoint`, `payload` sent as JSON.
        Returns the parsed JSON answer (a dict; {} for an empty body), or raises
        UserError for an HTTP error when raise_for_status.  The extension renews
        the token on a 401 and retries what is safe to retry."""
        self.ensure_one()
        with dci_errors(self.env.cr):
            self.env.cr.execute(
                "SELECT status, headers, body, elapsed_ms FROM dci_request(%s, %s, %s, %s, %s)",
                (self.code, method, endpoint,
                 None if payload is None else Json(payload),
                 None if headers is None else Json(headers)))
            status, _headers, body, elapsed_ms = self.env.cr.fetchone()
        _logger.debug("dci %s %s %s: HTTP %s in %.0f ms", self.code, method, endpoint, status, elapsed_ms)
        if raise_for_status and status >= 400:
            raise UserError(_("The registry answered HTTP %s to %s %s.") % (status, method.upper(), endpoint))
        if not body:
            return {}
        try:
            return json.loads(body)
        except ValueError:
            raise UserError(_("The registry's answer could not be understood (not the expected JSON)."))

    def test_connection(self):
        """dci_test_connection(code): config, auth, reachable, authorized.
        The SQL function sets state / last_test_at / last_error on the row;
        they are copied to the Odoo record.  Returns a notification action."""
        self.ensure_one()
        with dci_errors(self.env.cr):
            self.env.cr.execute("SELECT step, ok, detail, elapsed_ms FROM dci_test_connection(%s)",
                                (self.code,))
            steps = self.env.cr.fetchall()
            state, last_test_at, last_error = self._dci_row("state", "last_test_at", "last_error")
        if last_test_at is not None:                 # Odoo keeps naive UTC datetimes
            last_test_at = last_test_at.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        super().write({"state": state, "last_test_date": last_test_at or False, "last_error": last_error or False})
        ok = state == "active"
        lines = ["%s: %s%s" % (step, {True: "ok", False: "failed", None: "not verifiable"}[passed],
                               " (%s)" % detail if detail and passed is not True else "")
                 for step, passed, detail, _ms in steps]
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

    def action_test_connection(self):
        return self.test_connection()
