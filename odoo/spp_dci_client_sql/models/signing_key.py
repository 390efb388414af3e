"""spp.dci.signing.key (spp_dci/models/signing_key.py) on dci_client.

Upstream keeps the PEM private key in plain text in Odoo's table.  Here each
key is also a row of dci_signing_key (same key_id), which the extension signs
with: the private key is written through to its write-only column (encrypted
there) and never stored by Odoo; key_id, algorithm (rs256 -> rsa-sha256),
public key and state are kept in step.  The checks that read the private key
(_check_keys_present, action_activate) ask the extension (private_key_set),
and get_signer (what spp_dci_server signs its answers with) signs through
dci_sign.
"""
from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..services import sql

ALGORITHMS = {"ed25519": "ed25519", "rs256": "rsa-sha256"}
SYNCED = ("key_id", "algorithm", "public_key")


class ExtensionSigner:
    """spp_dci's DCISigner interface (sign(header, message) -> the DCI
    signature field) over dci_sign and one dci_signing_key."""

    def __init__(self, cr, key_id):
        self.cr, self.key_id = cr, key_id

    def sign(self, header, message):
        return sql.fetch_one(self.cr, "SELECT dci_sign(%s, %s)",
                             (sql.jsonb({"header": header, "message": message}), self.key_id))


class DCISigningKey(models.Model):
    _inherit = "spp.dci.signing.key"

    dci_private_key_set = fields.Boolean(string="Private Key Stored", compute="_compute_dci_private_key_set",
                                         help="Whether dci_client holds the private key (it never shows it)")

    def _dci_cols(self, vals):
        cols = {}
        for name in SYNCED:
            if name in vals:
                v = vals[name] or None
                cols[name] = ALGORITHMS.get(v, v) if name == "algorithm" else v
        return cols

    def _dci_state(self, key_id, state):
        # after the private key: an active key needs it
        if state in ("draft", "active", "revoked"):
            self.env.cr.execute("UPDATE dci_signing_key SET state = %s WHERE key_id = %s AND state <> %s",
                                (state, key_id, state))

    @api.model_create_multi
    def create(self, vals_list):
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        cr = self.env.cr
        odoo_vals = []
        with sql.dci_errors(cr):
            for vals in vals_list:
                vals = dict(vals)
                private = vals.pop("private_key", None)
                cols = self._dci_cols(vals)
                cols.setdefault("algorithm", "ed25519")
                # a key_id the extension holds already (e.g. made by dci_generate_signing_key) is that key
                cr.execute("INSERT INTO dci_signing_key (%s, state, kid_format) VALUES (%s, 'draft', 'openspp') "
                           "ON CONFLICT (key_id) DO NOTHING" % (", ".join(cols), ", ".join(["%s"] * len(cols))),
                           list(cols.values()))
                if private:
                    sql.write_secrets(cr, cols.get("key_id"), {"private_key": private}, table="dci_signing_key")
                self._dci_state(cols.get("key_id"), vals.get("state"))
                odoo_vals.append(vals)
            return super().create(odoo_vals)

    def write(self, vals):
        vals = dict(vals)
        private = vals.pop("private_key", None) if "private_key" in vals else None
        cr = self.env.cr
        with sql.dci_errors(cr):
            for rec in self:
                key_id = rec.key_id
                cols = rec._dci_cols(vals)
                if cols:
                    cr.execute("UPDATE dci_signing_key SET %s WHERE key_id = %%s"
                               % ", ".join("%s = %%s" % c for c in cols), list(cols.values()) + [key_id])
                    key_id = cols.get("key_id") or key_id
                if private is not None:
                    sql.write_secrets(cr, key_id, {"private_key": private or ""}, table="dci_signing_key")
                rec._dci_state(key_id, vals.get("state"))
            self.invalidate_recordset(["dci_private_key_set"])
            return super().write(vals) if vals else True

    def _dci_private_key_flag(self):
        self.ensure_one()
        with sql.dci_errors(self.env.cr):
            self.env.cr.execute("SELECT private_key_set FROM dci_signing_key WHERE key_id = %s", (self.key_id,))
            row = self.env.cr.fetchone()
        return bool(row and row[0])

    @api.depends("key_id")
    def _compute_dci_private_key_set(self):
        for rec in self:
            rec.dci_private_key_set = rec._dci_private_key_flag() if rec.key_id else False

    @api.constrains("state", "private_key", "public_key")
    def _check_keys_present(self):
        """Ensure keys are generated before activation (the private key: in dci_client)."""
        for record in self:
            if record.state == "active" and (not record.public_key or not record._dci_private_key_flag()):
                raise ValidationError(_("Cannot activate key without generating key pair. Please generate keys first."))

    def get_signer(self):
        """What spp_dci_server's routers sign OpenSPP's own DCI answers with
        (`get_active_key().get_signer().sign(header, message)`).  Upstream
        builds a DCISigner over the private key in Odoo's row, which this
        addon keeps empty: the signer here asks dci_sign, with the
        extension's copy of the key (it never leaves the extension)."""
        self.ensure_one()
        if self.state != "active":
            raise UserError(_("Cannot use key in %s state for signing. Please activate it first.") % self.state)
        if not self._dci_private_key_flag():
            raise UserError(_("No private key available for signing."))
        return ExtensionSigner(self.env.cr, self.key_id)

    def action_activate(self):
        """Activate the signing key for use (the private key: in dci_client)."""
        self.ensure_one()
        if self.state == "active":
            raise UserError(_("Key is already active."))
        if self.state == "revoked":
            raise UserError(_("Cannot activate a revoked key. Please create a new key."))
        if not self.public_key or not self._dci_private_key_flag():
            raise UserError(_("Cannot activate key without generating keypair. Please generate keys first."))
        self.write({"state": "active", "activated_date": fields.Datetime.now()})
        return {"type": "ir.actions.client", "tag": "display_notification",
                "params": {"title": _("Activated"), "message": _("Signing key '%s' is now active") % self.name,
                           "type": "success"}}
