"""DCIClient (spp_dci_client/services/client.py) on the dci_client extension.

DCIClient is a plain Python class, not an Odoo model, so it cannot be
inherited through the registry: its methods are replaced on the class, each
by one of the same name and signature, which runs the original when this
addon is not installed in the database at hand (several databases may share
one server).  What changes when it is installed:

- `_make_request(endpoint, envelope, _retry_auth=True)` sends through
  `dci_send(source, endpoint, action, message)`: the extension builds its own
  envelope (header, signature), authenticates, retries, verifies the answer's
  signature and raises a documented SQLSTATE; httpx and `_get_headers()` are
  not used.  `_sign_request` no longer signs in Python (the extension does,
  with `dci_signing_key`), and `_log_outgoing_call` records nothing: every call
  is in `dci_request_log` (model spp.dci.request.log), rollback or not.
- `search`, `search_async`, `subscribe`, `unsubscribe`, `txn_status` call
  `dci_search`, `dci_search_async`, `dci_subscribe`, `dci_unsubscribe`,
  `dci_txn_status` and hand back the shapes the upstream methods return.
- `search_batch` / `search_by_ids` (new): `dci_search_batch`, many queries
  in envelopes of `batch_size`, `max_concurrency` in flight.
Each call runs in a savepoint; a SQLSTATE becomes OpenSPP's UserError.
"""
import logging

from odoo.exceptions import ValidationError

from odoo.addons.spp_dci_client.services.client import DCIClient

from . import sql

_logger = logging.getLogger(__name__)

IDTYPE_VALUE = "idtype-value"
_ORIGINAL = {}


def installed(env):
    """Whether this addon is installed in env's database (its model exists)."""
    try:
        return "spp.dci.request.log" in env
    except Exception:                  # an env without a registry: not ours
        return False


def _override(cls, name):
    """Replace cls.name by the decorated function; the original stays
    reachable (and is what runs where the addon is not installed)."""
    def wrap(fn):
        original = getattr(cls, name, None)
        _ORIGINAL[(cls.__name__, name)] = original

        def method(self, *args, **kwargs):
            if installed(self.env):
                return fn(self, *args, **kwargs)
            if original is None:
                raise AttributeError(name)
            return original(self, *args, **kwargs)
        method.__name__ = name
        method.__doc__ = fn.__doc__
        method.__wrapped__ = fn
        method.dci_client_sql = True
        setattr(cls, name, method)
        return method
    return wrap


def original(cls, name):
    return _ORIGINAL[(cls.__name__, name)]


def _source(client):
    return client.data_source.code


def _qt(query_type):
    """A QueryType member or a string: the wire value."""
    return str(getattr(query_type, "value", query_type))


def _options(registry_event_type=None, **extra):
    out = {k: v for k, v in dict(extra, reg_event_type=registry_event_type).items() if v}
    return out


def _search_envelope(item, transaction_id=None):
    """The answer shape of upstream's search(): an on-search envelope whose
    message holds the item dci_search returned."""
    return {
        "signature": "",
        "header": {"version": "1.0.0", "action": "on-search", "status": item.get("status", "succ"),
                   "total_count": 1, "is_msg_encrypted": False},
        "message": {"transaction_id": transaction_id or "", "search_response": [item]},
    }


def _ack(transaction_id):
    """The answer shape of upstream's async calls (an ACK): the transaction id
    ties the registry's callback to the request."""
    return {"message": {"ack_status": "ACK", "transaction_id": transaction_id,
                        "correlation_id": transaction_id}}


# ---------------------------------------------------------------- the transport
# upstream's header actions -> dci_send's (upstream writes txn_status)
SEND_ACTIONS = {"search": "search", "txn_status": "txn-status", "txn-status": "txn-status",
                "subscribe": "subscribe", "unsubscribe": "unsubscribe", "notify": "notify"}


def _answer_status(message):
    """The header status of an answer whose message dci_send returned: its
    *_response items all succ -> succ, some rejected -> part (dci_send fails
    with DC007 when every one is)."""
    statuses = []
    for key, value in message.items() if isinstance(message, dict) else ():
        if key.endswith("_response") and isinstance(value, list):
            statuses += [v.get("status") for v in value if isinstance(v, dict)]
    return "part" if "rjct" in statuses else "succ"


def answer_envelope(action, message):
    """The registry's whole answer as upstream's _make_request returned it
    ({signature, header, message}: callers read response["message"][...]),
    from the message dci_send returned.  The header is rebuilt (dci_send
    verified the real one and returns the message only): action on-<action>,
    status from the items, total_count the number of items."""
    message = message if isinstance(message, dict) else {}
    items = sum(len(v) for k, v in message.items() if k.endswith("_response") and isinstance(v, list))
    header = {"version": "1.0.0", "action": "on-" + action.replace("_", "-"),
              "status": _answer_status(message), "total_count": items or 1, "completed_count": items or 1,
              "is_msg_encrypted": False}
    if message.get("ack_status"):              # an acknowledgement (async endpoint): as it came
        return {"message": message}
    return {"signature": "", "header": header, "message": message}


@_override(DCIClient, "_make_request")
def _make_request(self, endpoint: str, envelope: dict, _retry_auth: bool = True) -> dict:
    """POST the message of upstream's envelope to endpoint through dci_send;
    the registry's whole answer ({signature, header, message}, or the ACK
    {message: {ack_status, correlation_id, ...}} of an asynchronous endpoint),
    as upstream returned it.  The extension builds its own header (sender,
    receiver, message_id, dialect), signs with the source's key, renews the
    token on a 401 itself (_retry_auth is kept for the signature only) and
    verifies the answer; a refusal is its SQLSTATE's UserError."""
    header = (envelope or {}).get("header") or {}
    upstream_action = header.get("action") or "search"
    action = SEND_ACTIONS.get(upstream_action)
    if action is None:
        raise ValidationError("DCI action %r cannot be sent to a registry" % upstream_action)
    message = sql.fetch_one(self.env.cr, "SELECT dci_send(%s, %s, %s, %s)",
                            (_source(self), endpoint, action, sql.jsonb((envelope or {}).get("message") or {})))
    return answer_envelope(action, message)


@_override(DCIClient, "_sign_request")
def _sign_request(self, header: dict, message: dict) -> dict:
    """No signature in Python: dci_send signs what it sends with the source's
    dci_signing_key (and the private key never leaves the extension)."""
    return {"signature": "", "header": header, "message": message}


@_override(DCIClient, "_log_outgoing_call")
def _log_outgoing_call(self, url, endpoint, envelope, response_data, status_code, duration_ms, status,
                       error_detail):
    """Nothing: dci_client records every call in dci_request_log (shown by
    spp.dci.request.log), also when the caller's transaction rolls back."""
    return None


# ---------------------------------------------------------------- searches
@_override(DCIClient, "search")
def search(self, query_type: str, query_value: str, record_type: str = "PERSON", page: int = 1,
           page_size: int = 10, registry_type: str | None = None, registry_event_type: str | None = None) -> dict:
    """One sync search through dci_search; the on-search envelope shape."""
    query = self._parse_query(query_type, query_value)
    if page < 1:
        raise ValidationError("Page must be >= 1")
    if page_size < 1 or page_size > 1000:
        raise ValidationError("Page size must be between 1 and 1000")
    item = sql.fetch_one(self.env.cr, "SELECT dci_search(%s, %s, %s, %s, %s, %s, %s)",
                         (_source(self), _qt(query_type), sql.jsonb(query), registry_type or None, page_size, page,
                          sql.jsonb(_options(registry_event_type))))
    return _search_envelope(item or {})


@_override(DCIClient, "search_async")
def search_async(self, query_type: str, query_value: str, record_type: str = "PERSON", page: int = 1,
                 page_size: int = 10, registry_type: str | None = None, registry_event_type: str | None = None,
                 callback_url: str | None = None) -> dict:
    """An async search through dci_search_async (the answer comes to the
    source's callback_uri, recorded in dci_transaction); an ACK with the
    transaction id.  A callback_url other than the source's is refused."""
    if callback_url and callback_url != (self.data_source.our_callback_uri or None):
        # the extension sends its own header (sender_uri = the source's
        # callback_uri) and records the transaction for dci_receive: another
        # URL would be ignored by the envelope, or get a callback dci_receive
        # cannot match; said, not silently dropped
        raise ValidationError("Callbacks go to the data source's callback URI (%s): set our_callback_uri to %s "
                              "instead of passing callback_url." % (self.data_source.our_callback_uri or "unset",
                                                                    callback_url))
    query = self._parse_query(query_type, query_value)
    txn = sql.fetch_one(self.env.cr, "SELECT dci_search_async(%s, %s, %s, %s, %s, %s, %s)",
                        (_source(self), _qt(query_type), sql.jsonb(query), registry_type or None, page_size, page,
                         sql.jsonb(_options(registry_event_type))))
    return _ack(txn)


def search_batch(self, query_type, queries, registry_type=None, registry_event_type=None, batch_size=None,
                 concurrency=None):
    """Many searches in one call (dci_search_batch): a list of dicts, one per
    query in input order: ord, reference_id, status (succ / rjct / error),
    records, total_count, reason_code, reason_message."""
    rows = sql.fetch_all(
        self.env.cr,
        "SELECT ord, reference_id, status, records, total_count, reason_code, reason_message "
        "FROM dci_search_batch(%s, %s, %s, %s, %s, %s, %s) ORDER BY ord",   # zipped with the queries
        (_source(self), _qt(query_type), sql.jsonb(list(queries)), registry_type or None,
         sql.jsonb(_options(registry_event_type)), batch_size, concurrency))
    keys = ("ord", "reference_id", "status", "records", "total_count", "reason_code", "reason_message")
    return [dict(zip(keys, r)) for r in rows]


def search_by_ids(self, identifiers, registry_type=None):
    """search_batch over [(identifier_type, identifier_value), ...]."""
    return self.search_batch(IDTYPE_VALUE, [{"type": t, "value": v} for t, v in identifiers],
                             registry_type=registry_type)


DCIClient.search_batch = search_batch
DCIClient.search_by_ids = search_by_ids


# ---------------------------------------------------------------- subscriptions, status
@_override(DCIClient, "subscribe")
def subscribe(self, event_type: str, filter_query: dict | None = None, notify_record_type: str = "Person") -> dict:
    """dci_subscribe; an ACK with the transaction id (the subscription codes
    arrive in the registry's on-subscribe callback)."""
    if not event_type:
        raise ValidationError("event_type is required")
    txn = sql.fetch_one(self.env.cr, "SELECT dci_subscribe(%s, %s, %s, %s)",
                        (_source(self), event_type, sql.jsonb(filter_query or {"type": "*", "value": "*"}),
                         notify_record_type))
    return _ack(txn)


@_override(DCIClient, "unsubscribe")
def unsubscribe(self, subscription_codes: list[str]) -> dict:
    """dci_unsubscribe; an ACK with the transaction id."""
    if not subscription_codes:
        raise ValidationError("At least one subscription_code is required")
    txn = sql.fetch_one(self.env.cr, "SELECT dci_unsubscribe(%s, %s::text[])",
                        (_source(self), list(subscription_codes)))
    return _ack(txn)


@_override(DCIClient, "txn_status")
def txn_status(self, attribute_value: str, attribute_type: str = "transaction_id") -> dict:
    """dci_txn_status: by transaction id, or by reference id (reference_ids);
    {"message": {"transaction_id", "txnstatus_response"}}, the shape of
    upstream's answer."""
    if not attribute_value:
        raise ValidationError("attribute_value is required")
    if attribute_type not in ("transaction_id", "reference_id"):
        raise ValidationError("attribute_type must be 'transaction_id' or 'reference_id'")
    if attribute_type == "transaction_id":
        resp = sql.fetch_one(self.env.cr, "SELECT dci_txn_status(%s, %s)", (_source(self), attribute_value))
    else:
        resp = sql.fetch_one(self.env.cr, "SELECT dci_txn_status(%s, NULL, reference_ids => %s::text[])",
                             (_source(self), [attribute_value]))
    return {"message": {"transaction_id": attribute_value if attribute_type == "transaction_id" else None,
                        "txnstatus_response": resp}}


def txn_status_async(self, transaction_id, txn_type="search"):
    """dci_txn_status_async: the answer comes as txn-on-status to the
    source's callback_uri; an ACK with the transaction id sent."""
    return _ack(sql.fetch_one(self.env.cr, "SELECT dci_txn_status_async(%s, %s, %s)",
                              (_source(self), transaction_id, txn_type)))


DCIClient.txn_status_async = txn_status_async


def send(self, endpoint, action, message):
    """Any DCI endpoint of the registry (e.g. the DR's
    /registry/sync/get-disability-details, the IBR's /registry/sync/enrolled):
    the answer's message, as dci_send returns it."""
    return sql.fetch_one(self.env.cr, "SELECT dci_send(%s, %s, %s, %s)",
                         (_source(self), endpoint, action, sql.jsonb(message)))


DCIClient.send = send
