"""The extension's request log in Odoo's UI: a read-only model over the
table `dci_request_log` (one row per call, written even when the caller's
transaction rolls back; never a body, a secret or a token), with the
status vocabulary of OpenSPP's `spp.api.outgoing.log`."""
from odoo import api, fields, models, tools

# dci_request_log.outcome -> spp.api.outgoing.log.status
OUTGOING_STATUS = {
    "success": "success",
    "http_error": "http_error",
    "auth_error": "http_error",
    "rejected": "http_error",
    "unavailable": "http_error",
    "timeout": "timeout",
    "connection_error": "connection_error",
    "error": "error",
}


class DCIRequestLog(models.Model):
    _name = "spp.dci.request.log"
    _description = "DCI Request Log (dci_client)"
    _auto = False
    _order = "logged_at desc, id desc"
    _rec_name = "path"

    logged_at = fields.Datetime(string="Time", readonly=True)
    source_id = fields.Integer(string="Source ID", readonly=True)
    source = fields.Char(string="Data Source", readonly=True)
    method = fields.Char(readonly=True)
    path = fields.Char(string="Endpoint", readonly=True)
    status_code = fields.Integer(string="HTTP Status", readonly=True)
    outcome = fields.Selection(
        [("success", "Success"), ("http_error", "HTTP Error"), ("timeout", "Timeout"),
         ("connection_error", "Connection Error"), ("auth_error", "Authentication Error"),
         ("rejected", "Rejected"), ("unavailable", "Unavailable"), ("error", "Error")],
        readonly=True)
    status = fields.Selection(
        [("success", "Success"), ("http_error", "HTTP Error"), ("connection_error", "Connection Error"),
         ("timeout", "Timeout"), ("error", "Error")],
        string="Status (OpenSPP)", compute="_compute_status",
        help="The outcome in the words of spp.api.outgoing.log")
    duration_ms = fields.Float(string="Duration (ms)", readonly=True)
    bytes = fields.Integer(readonly=True)
    attempts = fields.Integer(readonly=True)
    error_detail = fields.Text(string="Error", readonly=True)
    username = fields.Char(string="Database Role", readonly=True)

    def init(self):
        tools.drop_view_if_exists(self.env.cr, self._table)
        self.env.cr.execute("""
            CREATE VIEW %s AS
            SELECT l.id::integer AS id, l.logged_at AT TIME ZONE 'UTC' AS logged_at, l.source_id, l.source,
                   l.method, l.path, l.status AS status_code, l.outcome, l.elapsed_ms AS duration_ms,
                   l.bytes::integer AS bytes, l.attempts, l.error AS error_detail, l.username
              FROM dci_request_log l""" % self._table)

    @api.depends("outcome")
    def _compute_status(self):
        for rec in self:
            rec.status = OUTGOING_STATUS.get(rec.outcome, "error")
