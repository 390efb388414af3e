"""Install and uninstall hooks.

post_init_hook (after the addon's tables and views exist):
1. requires the dci_client extension in this database (CREATE EXTENSION,
   as a superuser, comes first: README "Installing in OpenSPP");
2. grants Odoo's database role what the addon's groups use (GRANTS) where
   this role may grant it, and lists what is still missing otherwise
   (system parameter spp_dci_client_sql.missing_grants and a WARNING);
3. migrates every signing key of spp_dci (its plain-text PEM private key
   into dci_signing_key, blanked in Odoo), then every existing source: the
   row of dci_data_source (with the signing key it used), and its
   plain-text oauth2_client_secret / bearer_token moved into the extension
   (encrypted) with the Odoo columns blanked, the cached token dropped;
   then the key each source's registry signed its callbacks with
   (upstream's CRVS/DR/IBR sender registries) as its registry key.
   Idempotent.  No secret is ever in the text of a statement: the values
   move from column to column inside the database (UPDATE ... FROM).

uninstall_hook: see README "Installing in OpenSPP" (uninstalling).
"""
import logging

import psycopg2

from odoo import _
from odoo.exceptions import UserError

from .services import sql

_logger = logging.getLogger(__name__)

# Odoo group -> what Odoo's database role needs for it (README "Privileges").
# Odoo connects with one role for every worker, so the grants go to that
# role (current_user); the groups decide who may use them inside Odoo.
GRANTS = {
    # runtime: the services' calls (DCIClient, CRVS/DR/IBR), the request log
    "spp_dci_client_sql.group_dci_user": {
        "functions": ["dci_request", "dci_test_connection", "dci_search", "dci_search_records",
                      "dci_search_by_id", "dci_search_async", "dci_txn_status", "dci_txn_status_async",
                      "dci_subscribe", "dci_unsubscribe", "dci_search_batch", "dci_search_by_ids", "dci_send",
                      "dci_disability_support", "dci_disability_details", "dci_disabled", "dci_enrolled",
                      "dci_enrollment_updates", "dci_await",
                      "dci_token_status_entries", "dci_source_stats_entries", "dci_source_stats_items",
                      "dci_batch_progress_entries"],
        "tables": {"dci_data_source": "SELECT", "dci_request_log": "SELECT", "dci_token_status": "SELECT",
                   "dci_source_stats": "SELECT", "dci_batch_progress": "SELECT", "dci_transaction": "SELECT",
                   "dci_subscription": "SELECT"},
    },
    # administration: sources and their secrets, tokens for get_headers()
    "spp_dci_client_sql.group_dci_admin": {
        "functions": ["dci_clear_secret", "dci_get_token"],
        "tables": {"dci_data_source": "SELECT, INSERT, UPDATE, DELETE",
                   "dci_signing_key": "SELECT, INSERT, UPDATE, DELETE"},
    },
    # HTTP workers receiving callbacks: dci_receive, then the processing reads
    # what it stored (dci_inbox joined to its source)
    "spp_dci_client_sql.group_dci_callback": {
        # dci_sign: spp_dci_server's answers, signed through spp.dci.signing.key.get_signer()
        "functions": ["dci_receive", "dci_sign"],
        "tables": {"dci_inbox": "SELECT", "dci_transaction": "SELECT", "dci_subscription": "SELECT",
                   "dci_data_source": "SELECT"},
    },
}
SECRET_FIELDS = (("oauth2_client_secret", "client_secret"), ("bearer_token", "bearer_token"))
# the dci_data_source columns migrate_sources takes from Odoo's record
SYNCED_COLUMNS = ("name", "registry_type", "base_url", "auth_type", "auth_url", "client_id", "scope",
                  "credential_location", "verify_ssl", "sender_id", "callback_uri", "receiver_id", "search_endpoint",
                  "active", "notes", "timeout_ms")
CACHE_FIELDS = ("_oauth2_access_token", "_oauth2_token_expires_at")


def _each_function(cr, name):
    cr.execute("""SELECT p.oid::regprocedure::text FROM pg_catalog.pg_proc p
                    JOIN pg_catalog.pg_depend d ON d.objid = p.oid AND d.deptype = 'e'
                    JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
                   WHERE e.extname = 'dci_client' AND p.proname = %s""", (name,))
    return [r[0] for r in cr.fetchall()]


def missing_grants(cr):
    """GRANT statements Odoo's role still needs (for the DBA)."""
    out = []
    for spec in GRANTS.values():
        for name in spec["functions"]:
            for sig in _each_function(cr, name):
                cr.execute("SELECT has_function_privilege(current_user, %s, 'EXECUTE')", (sig,))
                if not cr.fetchone()[0]:
                    out.append("GRANT EXECUTE ON FUNCTION %s TO %%(role)s;" % sig)
        for table, privs in spec["tables"].items():
            cr.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
            if not cr.fetchone()[0]:
                continue
            for priv in privs.split(", "):
                cr.execute("SELECT has_table_privilege(current_user, %s, %s)", (table, priv))
                if not cr.fetchone()[0]:
                    out.append("GRANT %s ON %s TO %%(role)s;" % (priv, table))
    return sorted(set(out))


def apply_grants(cr):
    """Grant what is missing when this role may (a superuser, or a role with
    the grant option); returns what is still missing."""
    for stmt in missing_grants(cr):
        try:
            with cr.savepoint(flush=False):
                cr.execute(stmt % {"role": "CURRENT_USER"})
        except psycopg2.Error as e:
            _logger.info("could not %s: %s", stmt % {"role": "CURRENT_USER"}, e.pgcode)
    left = missing_grants(cr)
    if left:
        cr.execute("SELECT current_user")
        role = cr.fetchone()[0]
        _logger.warning("dci_client: Odoo's role %s lacks privileges the addon uses; as a superuser run:\n%s",
                        role, "\n".join(s % {"role": '"%s"' % role.replace('"', '""')} for s in left))
    return left


def migrate_signing_keys(cr):
    """Every spp_dci_signing_key (spp_dci: PEM private keys in plain text in
    Odoo's table) into dci_signing_key: the private key moved column to
    column (encrypted by the extension) and blanked in Odoo's table; the
    algorithm spelled the extension's way (rs256 -> rsa-sha256); kid_format
    'openspp' (the kids OpenSPP's registries look for:
    {sender_id}|{key_id}|{algorithm}).  A key_id the extension holds already
    is left alone.  Returns (migrated key_ids, {key_id: SQLSTATE} left as they were)."""
    cr.execute("SELECT to_regclass('spp_dci_signing_key') IS NOT NULL")
    if not cr.fetchone()[0] or not all(sql.has_column(cr, "spp_dci_signing_key", c)
                                       for c in ("key_id", "algorithm", "public_key", "private_key", "state")):
        return [], {}
    cr.execute("SELECT id, key_id FROM spp_dci_signing_key ORDER BY id")
    done, failed = [], {}
    for rid, key_id in cr.fetchall():
        try:
            with cr.savepoint(flush=False):
                # draft first: an active key needs its private key, which follows
                cr.execute("""
                    INSERT INTO dci_signing_key (key_id, algorithm, public_key, state, kid_format)
                    SELECT s.key_id, CASE s.algorithm WHEN 'rs256' THEN 'rsa-sha256' ELSE s.algorithm END,
                           s.public_key, 'draft', 'openspp'
                      FROM spp_dci_signing_key s
                     WHERE s.id = %s AND NOT EXISTS (SELECT 1 FROM dci_signing_key k WHERE k.key_id = s.key_id)
                    RETURNING id""", (rid,))
                if cr.fetchone() is not None:
                    cr.execute("UPDATE dci_signing_key k SET private_key = s.private_key FROM spp_dci_signing_key s "
                               "WHERE s.id = %s AND k.key_id = s.key_id AND coalesce(s.private_key, '') <> ''",
                               (rid,))
                    cr.execute("UPDATE dci_signing_key k SET state = s.state FROM spp_dci_signing_key s "
                               "WHERE s.id = %s AND k.key_id = s.key_id AND s.state IN ('active', 'revoked')",
                               (rid,))
                cr.execute("UPDATE spp_dci_signing_key SET private_key = NULL WHERE id = %s "
                           "AND EXISTS (SELECT 1 FROM dci_signing_key k WHERE k.key_id = spp_dci_signing_key.key_id "
                           "AND k.private_key_set)", (rid,))
            done.append(key_id)
        except psycopg2.Error as e:
            failed[key_id] = e.pgcode
            _logger.warning("dci_client: signing key %s not migrated (SQLSTATE %s: %s); its Odoo row is unchanged",
                            key_id, e.pgcode, e.diag.message_primary if e.diag else "")
    return done, failed


def migrate_sources(cr):
    """Every spp_dci_data_source row into dci_data_source, its plain-text
    secrets moved in (encrypted by the extension) and blanked in Odoo's table.
    Returns (migrated codes, {code: SQLSTATE} of rows left as they were)."""
    cr.execute("SELECT to_regclass('spp_dci_data_source') IS NOT NULL")
    if not cr.fetchone()[0]:
        return [], {}
    have = {c for c in ("oauth2_client_secret", "bearer_token", "timeout", "oauth2_scope", "notes", "receiver_id",
                        "search_endpoint", "oauth2_credential_location", "signing_key_id") + CACHE_FIELDS
            if sql.has_column(cr, "spp_dci_data_source", c)}

    def col(name, default="NULL"):
        return "s.%s" % name if name in have else default

    cr.execute("SELECT id, code FROM spp_dci_data_source ORDER BY id")
    done, failed = [], {}
    for rid, code in cr.fetchall():
        try:
            with cr.savepoint(flush=False):
                cr.execute("""
                    INSERT INTO dci_data_source (code, name, registry_type, base_url, auth_type, auth_url, client_id,
                                                 scope, credential_location, verify_ssl, sender_id, callback_uri,
                                                 receiver_id, search_endpoint, active, notes, timeout_ms)
                    SELECT s.code, s.name,
                           CASE WHEN s.registry_type ~ '^ns:org:RegistryType:[A-Za-z][A-Za-z0-9_]*$'
                                THEN s.registry_type END,
                           rtrim(s.base_url, '/'), s.auth_type, s.oauth2_token_url, s.oauth2_client_id,
                           NULLIF(%s, ''), coalesce(%s, 'body'), coalesce(s.verify_ssl, true), s.our_sender_id,
                           NULLIF(s.our_callback_uri, ''), NULLIF(%s, ''),
                           coalesce(NULLIF(%s, ''), '/registry/sync/search'), coalesce(s.active, true), %s,
                           CASE WHEN %s > 0 THEN %s * 1000 END
                      FROM spp_dci_data_source s
                     WHERE s.id = %%s
                    -- a row the extension has already (the addon installed
                    -- before, then uninstalled while Odoo's record changed):
                    -- Odoo's configuration is the one its form shows
                    ON CONFLICT (code) DO UPDATE SET %s"""
                           % (col("oauth2_scope"), col("oauth2_credential_location"), col("receiver_id"),
                              col("search_endpoint"), col("notes"), col("timeout", "0"), col("timeout", "0"),
                              ", ".join("%s = EXCLUDED.%s" % (c, c) for c in SYNCED_COLUMNS)),
                           (rid,))
                for field, column in SECRET_FIELDS:
                    if field in have:
                        # column to column: the value is never part of the statement
                        cr.execute("UPDATE dci_data_source d SET %s = s.%s FROM spp_dci_data_source s "
                                   "WHERE s.id = %%s AND d.code = s.code AND coalesce(s.%s, '') <> ''"
                                   % (column, field, field), (rid,))
                if "signing_key_id" in have:
                    # the key the source signed with, as migrated by migrate_signing_keys
                    cr.execute("""UPDATE dci_data_source d SET signing_key_id = k.id
                                    FROM spp_dci_data_source s JOIN spp_dci_signing_key o ON o.id = s.signing_key_id
                                    JOIN dci_signing_key k ON k.key_id = o.key_id
                                   WHERE s.id = %s AND d.code = s.code AND d.signing_key_id IS NULL""", (rid,))
                blank = [f for f, _c in SECRET_FIELDS if f in have] + [f for f in CACHE_FIELDS if f in have]
                if blank:
                    cr.execute("UPDATE spp_dci_data_source SET %s WHERE id = %%s"
                               % ", ".join('"%s" = NULL' % f for f in blank), (rid,))
            done.append(code)
        except psycopg2.Error as e:
            failed[code] = e.pgcode
            _logger.warning("dci_client: data source %s not migrated (SQLSTATE %s: %s); its Odoo row is unchanged",
                            code, e.pgcode, e.diag.message_primary if e.diag else "")
    return done, failed


# upstream's trusted-registry tables (spp_dci_client_crvs/_dr/_ibr senders):
# the key each verified callbacks with, by registry kind
SENDER_TABLES = (("spp_dci_crvs_sender", ("ns:org:RegistryType:Civil", "ns:org:RegistryType:CRVS")),
                 ("spp_dci_dr_sender", ("ns:org:RegistryType:DR",)),
                 ("spp_dci_ibr_sender", ("ns:org:RegistryType:IBR",)))


def migrate_registry_keys(cr):
    """The keys upstream verified callbacks with (its CRVS/DR/IBR sender
    registries: a PEM public key or a JWKS URL per registry sender_id) onto
    the matching sources, so that dci_receive verifies the same callbacks:
    without them a migrated source has neither callback token nor registry
    key, and its callbacks are stored but not processed.  A source matches
    the active sender of its registry kind whose sender_id is its
    receiver_id; the PEM is preferred (what upstream verified with), else
    the JWKS URL; a source that has a registry key already is left alone.
    Returns (codes given a key, {code: SQLSTATE} refused)."""
    done, failed = [], {}
    for table, reg_types in SENDER_TABLES:
        cr.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
        if not cr.fetchone()[0] or not all(sql.has_column(cr, table, c)
                                           for c in ("sender_id", "public_key", "jwks_url", "active")):
            continue
        cr.execute("""SELECT d.code, s.id FROM dci_data_source d JOIN %s s ON s.sender_id = d.receiver_id
                       WHERE d.registry_type = ANY(%%s) AND s.active
                         AND d.registry_public_key IS NULL AND d.registry_jwks_url IS NULL
                         AND (coalesce(s.public_key, '') <> '' OR coalesce(s.jwks_url, '') <> '')
                       ORDER BY d.code""" % table, (list(reg_types),))
        for code, sender in cr.fetchall():
            try:
                with cr.savepoint(flush=False):
                    # column to column, as the secrets (a public key is no secret, but one path)
                    cr.execute("""UPDATE dci_data_source d
                                     SET registry_public_key = CASE WHEN coalesce(s.public_key, '') <> ''
                                                                    THEN s.public_key END,
                                         registry_jwks_url = CASE WHEN coalesce(s.public_key, '') = ''
                                                                  THEN s.jwks_url END
                                    FROM %s s WHERE s.id = %%s AND d.code = %%s""" % table, (sender, code))
                done.append(code)
            except psycopg2.Error as e:
                failed[code] = e.pgcode
                _logger.warning("dci_client: data source %s: its registry's key (%s) not taken (SQLSTATE %s: %s)",
                                code, table, e.pgcode, e.diag.message_primary if e.diag else "")
    cr.execute("""SELECT code FROM dci_data_source WHERE callback_uri IS NOT NULL AND NOT callback_token_set
                     AND registry_public_key IS NULL AND registry_jwks_url IS NULL ORDER BY code""")
    unverified = [r[0] for r in cr.fetchall()]
    if unverified:
        _logger.warning("dci_client: data source(s) %s take callbacks with neither callback token nor registry key: "
                        "their callbacks are stored but not processed (set the Callback Token or the Registry "
                        "JWKS URL)", ", ".join(unverified))
    return done, failed


def post_init_hook(env):
    cr = env.cr
    version = sql.extension_version(cr)
    if not version:
        raise UserError(_("The dci_client extension is not installed in this database: as a superuser run "
                          "CREATE EXTENSION dci_client CASCADE; then install this addon again."))
    sql.require_extension(cr)
    left = apply_grants(cr)
    env["ir.config_parameter"].sudo().set_param("spp_dci_client_sql.missing_grants", "\n".join(left) or False)
    keys_done, keys_failed = migrate_signing_keys(cr)
    if keys_done or keys_failed:
        _logger.info("dci_client: %d signing key(s) migrated, %d left unchanged %s", len(keys_done),
                     len(keys_failed), sorted(keys_failed))
    done, failed = migrate_sources(cr)
    _logger.info("dci_client %s: %d data source(s) migrated, %d left unchanged %s", version, len(done),
                 len(failed), sorted(failed))
    keyed, refused = migrate_registry_keys(cr)
    if keyed or refused:
        _logger.info("dci_client: %d source(s) given their registry's callback key, %d refused %s", len(keyed),
                     len(refused), sorted(refused))


def uninstall_hook(env):
    """The extension and its rows stay (sources, encrypted secrets, request
    log): Odoo's data source rows keep their configuration but no secret, so
    spp_dci_client alone cannot authenticate until the secrets are entered
    again (or the addon is installed again, which finds them in place)."""
    cr = env.cr
    cr.execute("DROP VIEW IF EXISTS spp_dci_request_log")
    cr.execute("DROP TABLE IF EXISTS pg_temp.dci_odoo_secret_in")
