"""Calling the dci_client extension from Odoo: one savepoint per call, the
extension's SQLSTATEs turned into the UserErrors OpenSPP shows, secrets
handed over without ever being part of a statement's text.

Everything here takes an Odoo cursor (`env.cr`): `execute` with `%s`
parameters (psycopg2 interpolates them on the client), `savepoint()`, and
`copy_expert` (forwarded by Odoo's Cursor to psycopg2's).
"""
import contextlib
import csv
import io
import logging

import psycopg2
from psycopg2.extras import Json

from odoo import _
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

# OpenSPP's own texts (spp_dci_client/services/errors.py), so users read what
# they read before the extension took over; the extension's message (it names
# the source and quotes the registry, never a secret) follows on its own
# paragraph.
_AUTH_STEPS = "\n\nPlease check:\n• OAuth2 Token URL\n• Client ID and Secret\n• OAuth2 Scope"
_PERSISTS = "\n\nIf the problem persists, contact the registry administrator."
OPENSPP_MESSAGES = {
    "DC001": "The data source is not usable: it is unknown, inactive or incompletely configured, "
             "or its stored credentials cannot be decrypted on this server.",
    "DC002": "Authentication failed. Please verify the OAuth2 credentials in Data Source settings." + _AUTH_STEPS,
    "DC003": "Could not connect to the external registry. Please check the Base URL.",
    "DC003-ssl": "SSL certificate verification failed. Check 'Verify SSL' setting or contact administrator.",
    "DC003-dns": "Could not resolve the server address. Please check the Base URL.",
    "DC004": "Connection timed out. The external registry is not responding.",
    "DC005": "An unexpected error occurred. Please contact your administrator.",
    "DC006": "An unexpected error occurred. Please contact your administrator.",
    "DC007": "The request was invalid. Please check your data and try again.",
    "DC008": "The registry's answer is not signed as expected: it was not accepted.",
    "DC009": "The external registry is temporarily unavailable. Please try again later." + _PERSISTS,
    "22023": "The request was invalid. Please check your data and try again.",
    "22021": "An unexpected error occurred. Please contact your administrator.",
    "57014": "Connection timed out. The external registry is not responding.",
    "23514": "Invalid data source configuration.",
    "23505": "Data source code must be unique. Please choose a different code.",
    "23502": "A required field of the data source is missing.",
    "42501": "The database role of this Odoo lacks a privilege of the dci_client extension "
             "(see the addon's README: Privileges).",
}


# values PostgreSQL cannot take in a call's arguments: untranslatable
# character (NUL, lone surrogate in JSON), invalid text, out of range, too
# long, nesting too deep / too complex
BAD_INPUT = {"22P05", "22P02", "22003", "22001", "22025", "54000", "54001"}


def user_message(pgcode, primary=""):
    """The first paragraph of the UserError for a SQLSTATE (None: not ours)."""
    if pgcode == "DC003":
        low = (primary or "").lower()
        if "certificate" in low or "ssl" in low:          # not "tls": the timings say "TLS 0.0 ms"
            pgcode = "DC003-ssl"
        elif "resolve" in low or "dns" in low:
            pgcode = "DC003-dns"
    text = OPENSPP_MESSAGES.get(pgcode)
    if text is None and pgcode in BAD_INPUT:
        # a value PostgreSQL cannot take (a NUL or lone surrogate in a query,
        # a number out of range, nesting too deep): bad input, as 22023
        text = OPENSPP_MESSAGES["22023"]
    return _(text) if text else None


def user_error(exc):
    """The UserError for a psycopg2 error raised by the extension, or None."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    text = user_message(getattr(exc, "pgcode", None), primary or "")
    if text is None:
        return None
    said = [m for m in (primary, diag.message_detail if diag is not None else None) if m]
    err = UserError("\n\n".join([text] + said))
    err.pgcode = exc.pgcode
    return err


@contextlib.contextmanager
def dci_errors(cr):
    """Run calls of the extension as one unit: a failure rolls back to the
    savepoint taken on entry (the Odoo transaction goes on: without it an
    ERROR would abort the whole request's transaction) and an extension
    SQLSTATE becomes a UserError.  Other database errors are re-raised."""
    try:
        with cr.savepoint(flush=False):
            yield
    except psycopg2.Error as e:
        err = user_error(e)
        if err is None:
            raise
        _logger.info("dci_client call failed: SQLSTATE %s: %s", e.pgcode,
                     e.diag.message_primary if e.diag else "")
        raise err from e
    except ValueError as e:
        # psycopg2 refuses a NUL in a text argument before sending anything:
        # bad input, as PostgreSQL's 22P05 would be (not a server error)
        if "NUL" not in str(e):
            raise
        err = UserError(user_message("22P05") + "\n\n" + _("A value contains a NUL character."))
        err.pgcode = "22P05"
        raise err from e


def fetch_one(cr, sql, params=()):
    with dci_errors(cr):
        cr.execute(sql, params)
        row = cr.fetchone()
    return row[0] if row else None


def fetch_all(cr, sql, params=()):
    with dci_errors(cr):
        cr.execute(sql, params)
        return cr.fetchall()


def jsonb(value):
    return None if value is None else Json(value)


# ---------------------------------------------------------------- the catalog
# what the addon calls: an older dci_client lacks some (ALTER EXTENSION ... UPDATE)
REQUIRED_FUNCTIONS = ("dci_send", "dci_search_batch", "dci_receive", "dci_txn_status_async",
                      "dci_disability_details", "dci_disabled", "dci_enrolled", "dci_enrollment_updates",
                      "dci_test_connection", "dci_get_token")
REQUIRED_COLUMNS = ("dialect", "registry_jwks_url", "callback_token", "callback_token_set", "batch_size",
                    "max_concurrency", "signature_format")


def has_function(cr, name):
    """Whether a function of that name belongs to the extension."""
    return not missing_functions(cr, (name,))


def missing_functions(cr, names):
    cr.execute("""SELECT n FROM unnest(%s::text[]) AS n
                   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p
                                       JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
                                       JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                                      WHERE e.extname = 'dci_client' AND p.proname = n)""", (list(names),))
    return [r[0] for r in cr.fetchall()]


def has_column(cr, table, column):
    cr.execute("""SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute
                                  WHERE attrelid = pg_catalog.to_regclass(%s) AND attname = %s
                                    AND attnum > 0 AND NOT attisdropped)""", (table, column))
    return cr.fetchone()[0]


def extension_version(cr):
    cr.execute("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'dci_client'")
    row = cr.fetchone()
    return row[0] if row else None


def require_extension(cr):
    """The installed dci_client has everything the addon calls (checked once,
    at install: not before every call)."""
    missing = missing_functions(cr, REQUIRED_FUNCTIONS) + [
        "dci_data_source." + c for c in REQUIRED_COLUMNS if not has_column(cr, "dci_data_source", c)]
    if missing:
        raise UserError(_("The installed dci_client (version %s) lacks %s: install a newer dci_client and run "
                          "ALTER EXTENSION dci_client UPDATE, then install this addon again.")
                        % (extension_version(cr), ", ".join(missing)))


# ---------------------------------------------------------------- secrets
# A secret never goes into the text of a statement: psycopg2 would put it
# there, and statement texts are visible in pg_stat_activity and written to
# the server log when the statement fails.  It is streamed with COPY into a
# temporary table of this session (COPY data is neither), and an UPDATE that
# names only columns moves it into the write-only column, where the
# extension's trigger encrypts it.  ON COMMIT DELETE ROWS, and the rows are
# deleted at once anyway.
SECRET_COLUMNS = ("client_secret", "bearer_token", "client_key", "callback_token")


# the write-only columns of each table, and the column that names its row
SECRET_TABLES = {"dci_data_source": ("code", SECRET_COLUMNS), "dci_signing_key": ("key_id", ("private_key",))}


def write_secrets(cr, code, secrets, table="dci_data_source"):
    """secrets: {column: value}; '' removes the stored secret, as in SQL.
    code: the row's code (dci_data_source) or key_id (dci_signing_key)."""
    secrets = {c: v for c, v in secrets.items() if v is not None}
    if not secrets:
        return
    key_column, allowed = SECRET_TABLES[table]
    for column in secrets:
        if column not in allowed:
            raise ValueError("not a secret column: %r" % column)
    buf = io.StringIO()
    writer = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n")
    for column, value in secrets.items():
        if "\x00" in value:
            raise UserError(_("A secret cannot contain a NUL character."))
        writer.writerow([code, column, value])
    buf.seek(0)
    with dci_errors(cr):
        cr.execute("CREATE TEMP TABLE IF NOT EXISTS dci_odoo_secret_in "
                   "(code text, col text, value text) ON COMMIT DELETE ROWS")
        cr.execute("DELETE FROM pg_temp.dci_odoo_secret_in")
        cr.copy_expert("COPY pg_temp.dci_odoo_secret_in (code, col, value) FROM STDIN WITH (FORMAT csv)", buf)
        for column in secrets:
            # column comes from SECRET_COLUMNS (checked above), never from input
            cr.execute("UPDATE %s d SET %s = s.value "
                       "FROM pg_temp.dci_odoo_secret_in s "
                       "WHERE s.code = d.%s AND s.col = %%s AND d.%s = %%s"
                       % (table, column, key_column, key_column), (column, code))
        # (table, key_column and column come from SECRET_TABLES, never from input)
        # on failure the savepoint takes the rows away with it
        cr.execute("DELETE FROM pg_temp.dci_odoo_secret_in")
