"""The registry calls of OpenSPP's client modules (spp_dci_client_crvs, _dr,
_ibr), each a few lines of SQL through `env.cr`.

    svc = DciRegistryService(self.env, "crvs")
    result = svc.verify_birth(partner.birth_registration_number, partner.birthdate)

Every call runs inside `dci_errors()`: a failure becomes a UserError and the
surrounding Odoo transaction stays usable.  jsonb arrives as Python
dicts/lists; jsonb arguments go through `psycopg2.extras.Json`.
"""
from psycopg2.extras import Json

try:
    from .dci_data_source import dci_errors
except ImportError:
    from dci_data_source import dci_errors


class DciRegistryService:
    """Calls to one data source (its `code` in dci_data_source)."""

    def __init__(self, env, source):
        self.env = env
        self.cr = env.cr
        self.source = source

    def _all(self, sql, params):
        with dci_errors(self.cr):
            self.cr.execute(sql, params)
            return self.cr.fetchall()

    def _one(self, sql, params):
        with dci_errors(self.cr):
            self.cr.execute(sql, params)
            return self.cr.fetchone()[0]

    # ------------------------------------------------------------ CRVS
    def verify_birth(self, brn, birthdate=None):
        """Birth verification: the registry's record for a birth registration
        number, and whether it agrees with the declared birth date.
        Returns {"found", "verified", "record"}."""
        rows = self._all("SELECT r FROM dci_search_by_id(%s, %s, %s) AS r", (self.source, "BRN", brn))
        record = rows[0][0] if rows else None
        verified = record is not None and (
            birthdate is None or record.get("birth_date") == birthdate.isoformat())
        return {"found": record is not None, "verified": verified, "record": record}

    # ------------------------------------------------------------ DR
    def disability_status(self, uin):
        """The disability record of a person ({"status", "severity", ...}) or None."""
        rows = self._all("SELECT r -> 'disability' FROM dci_search_by_id(%s, %s, %s) AS r",
                         (self.source, "UIN", uin))
        return rows[0][0] if rows else None

    def is_disabled(self, uin):
        status = self.disability_status(uin)
        return bool(status) and status.get("status") == "verified"

    # ------------------------------------------------------------ IBR
    def enrollments(self, uin):
        """[(program, status), ...] of a person in the integrated beneficiary registry."""
        return [tuple(r) for r in self._all(
            """SELECT e ->> 'program', e ->> 'status'
                 FROM dci_search_by_id(%s, %s, %s) AS r,
                      jsonb_array_elements(coalesce(r -> 'enrollments', '[]')) AS e""",
            (self.source, "UIN", uin))]

    def check_duplication(self, uin):
        """True when the person is already actively enrolled in a programme."""
        return any(status == "active" for _program, status in self.enrollments(uin))

    # ------------------------------------------------------------ generic searches
    def search(self, query_type, query, page_size=100, page_number=1, options=None):
        """One sync search; the first search_response item (data + pagination)."""
        return self._one("SELECT dci_search(%s, %s, %s, NULL, %s, %s, %s)",
                         (self.source, query_type, Json(query), page_size, page_number, Json(options or {})))

    def search_records(self, query_type, query, max_records=None, page_size=100):
        """Every record, following the pages (bounded by max_records)."""
        return [r[0] for r in self._all("SELECT r FROM dci_search_records(%s, %s, %s, NULL, %s, %s) AS r",
                                        (self.source, query_type, Json(query), page_size, max_records))]

    # ------------------------------------------------------------ async, status, subscriptions
    def search_async(self, query_type, query, options=None):
        """Posts an async search; the answer arrives on callback_uri
        (/registry/on-search).  Returns the transaction_id to match it."""
        return self._one("SELECT dci_search_async(%s, %s, %s, options => %s)",
                         (self.source, query_type, Json(query), Json(options or {})))

    def txn_status(self, transaction_id):
        """The registry's txnstatus_response for a transaction."""
        return self._one("SELECT dci_txn_status(%s, %s)", (self.source, transaction_id))

    def subscribe(self, reg_event_type, filter=None, notify_record_type=None):  # noqa: A002
        """Subscribes to registry events (e.g. REGISTER, BIRTH); returns the
        transaction_id; the subscription codes arrive in on-subscribe."""
        if filter is None:
            return self._one("SELECT dci_subscribe(%s, %s, notify_record_type => %s)",
                             (self.source, reg_event_type, notify_record_type))
        return self._one("SELECT dci_subscribe(%s, %s, %s, %s)",
                         (self.source, reg_event_type, Json(filter), notify_record_type))

    def unsubscribe(self, subscription_codes):
        """Ends subscriptions; returns the transaction_id."""
        return self._one("SELECT dci_unsubscribe(%s, %s::text[])", (self.source, list(subscription_codes)))
