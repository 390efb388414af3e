"""odoo/spp_dci_client_sql (issue 15) run here, without Odoo: the addon's own
Python on the stand-in ORM of test/support/odoo_orm.py (models composed by
_inherit as Odoo's registry does, over the upstream OpenSPP2 classes of
test/support/odoo_upstream.py), against the session's PostgreSQL with the
extension and the bundled mock registry.  Upstream methods that would send
HTTP themselves raise, so every test also proves the override took over.
Nothing here skips: every function and column the addon uses exists."""
import ast
import csv
import inspect
import json
import os
import py_compile
import tempfile
import time
import xml.etree.ElementTree as ET
from contextlib import closing

import psycopg2
import psycopg2.extras
import pytest

from support import odoo_orm
from support.env import CLIENT_ID, CLIENT_SECRET
from support.util import LEGACY_PLAINTEXT as LEGACY_KEYS, code, legacy, remember, secret

ADDON = os.path.join(odoo_orm.ROOT, "odoo", "spp_dci_client_sql")
addon = odoo_orm.install()
from odoo.addons.spp_dci_client.services.client import DCIClient  # noqa: E402
from odoo.addons.spp_dci_client_crvs.services.crvs_service import CRVSService  # noqa: E402
from odoo.addons.spp_dci_client_dr.services.dr_service import DRService  # noqa: E402
from odoo.addons.spp_dci_client_ibr.services.ibr_service import IBRService  # noqa: E402
from odoo.addons.spp_dci_client_sql import hooks  # noqa: E402
from odoo.addons.spp_dci_client_sql.controllers.main import DCICallbackController  # noqa: E402
from odoo.addons.spp_dci_client_sql.models import data_source as ds_mod  # noqa: E402
from odoo.addons.spp_dci_client_sql.models import fastapi_endpoint as fe_mod  # noqa: E402
from odoo.addons.spp_dci_client_sql.services import client as client_mod  # noqa: E402
from odoo.addons.spp_dci_client_sql.services import sql as sql_mod  # noqa: E402

UserError, ValidationError = odoo_orm.UserError, odoo_orm.ValidationError
SEARCH = "/registry/sync/search"
CIVIL, DR, IBR = "ns:org:RegistryType:Civil", "ns:org:RegistryType:DR", "ns:org:RegistryType:IBR"


@pytest.fixture
def oenv(env):
    conn = env.cluster.connect(autocommit=False)
    e = odoo_orm.environment(conn)
    yield e
    try:
        e.cr.rollback()
    finally:
        e.cr.close()


def vals(env, c, **over):
    v = {"name": c.upper(), "code": c, "registry_type": CIVIL, "base_url": env.mock.http_url, "auth_type": "oauth2",
         "oauth2_token_url": env.mock.token_url, "oauth2_client_id": CLIENT_ID,
         "oauth2_client_secret": CLIENT_SECRET, "oauth2_credential_location": "body", "verify_ssl": True,
         "timeout": 30, "our_sender_id": "openspp.example.org",
         "our_callback_uri": "https://openspp.example.org/dci/callback/" + c, "active": True}
    v.update(over)
    return v


def none_vals(env, c, **over):
    """auth_type none: the mock's DCI endpoints under /open take no token."""
    over.setdefault("base_url", env.mock.http_url + "/open")
    return vals(env, c, auth_type="none", oauth2_token_url=False, oauth2_client_id=False,
                oauth2_client_secret=False, **over)


def last_search(env, kind=None):
    """What the mock's sync search endpoint last received."""
    last = env.mock.stats()["last_request"]
    return last["/open" + SEARCH if kind == "none" else SEARCH]


def sql_row(oenv, c, *cols):
    oenv.cr.execute("SELECT %s FROM dci_data_source WHERE code = %%s" % ", ".join(cols), (c,))
    return oenv.cr.fetchone()


def odoo_row(oenv, rid, *cols):
    oenv.cr.execute("SELECT %s FROM spp_dci_data_source WHERE id = %%s" % ", ".join('"%s"' % c for c in cols),
                    (rid,))
    return oenv.cr.fetchone()


def no_secret_in_statements(oenv, *secrets):
    """No statement this cursor ran held a secret in its text (what
    pg_stat_activity and the server log would show)."""
    for stmt in oenv.cr.statements:
        for s in secrets:
            assert s not in stmt, stmt


def partner(oenv, name, *ids):
    p = oenv["res.partner"].create({"name": name})
    for id_type, value in ids:
        t = oenv["spp.id.type"].search([("code", "=", id_type)], limit=1) or \
            oenv["spp.id.type"].create({"code": id_type, "name": id_type})
        oenv["spp.registry.id"].create({"partner_id": p.id, "id_type_id": t.id, "value": value})
    return p


def same_signature(a, b):
    """Parameter names, kinds and defaults (annotations aside)."""
    def shape(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]
    return shape(a) == shape(b)


def user_error(fn, *a, **kw):
    try:
        fn(*a, **kw)
    except UserError as e:
        return e
    raise AssertionError("%s did not raise UserError" % getattr(fn, "__name__", fn))


# ---------------------------------------------------------------- the files
def test_addon_files_well_formed():
    manifest = ast.literal_eval(open(os.path.join(ADDON, "__manifest__.py")).read())
    assert manifest["version"].startswith("19.0."), manifest["version"]
    assert set(manifest["depends"]) == {"spp_dci_client", "spp_dci_client_crvs", "spp_dci_client_dr",
                                        "spp_dci_client_ibr"}, manifest["depends"]
    assert manifest["post_init_hook"] == "post_init_hook" and manifest["uninstall_hook"] == "uninstall_hook"
    for rel in manifest["data"]:
        assert os.path.exists(os.path.join(ADDON, rel)), rel
    for d in ("models", "controllers", "security", "data", "views", "tests"):
        assert os.path.isdir(os.path.join(ADDON, d)), d
    with tempfile.TemporaryDirectory() as tmp:
        for root, _dirs, files in os.walk(ADDON):
            for f in files:
                p = os.path.join(root, f)
                if f.endswith(".py"):
                    py_compile.compile(p, cfile=os.path.join(tmp, "x.pyc"), doraise=True)
                elif f.endswith(".xml"):
                    assert ET.parse(p).getroot().tag == "odoo", p
    with open(os.path.join(ADDON, "security", "ir.model.access.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "name", "model_id:id", "group_id:id", "perm_read", "perm_write", "perm_create",
                       "perm_unlink"], rows[0]
    assert all(len(r) == 8 and r[4:] == ["1", "0", "0", "0"] for r in rows[1:]), rows   # the log is read-only
    # the Odoo tests import (through the stand-in's odoo.tests)
    import importlib
    for m in ("test_data_source", "test_callbacks"):
        importlib.import_module("odoo.addons.spp_dci_client_sql.tests." + m)


# The form of spp_dci_client's view_spp_dci_data_source_form, reduced to the
# nodes the addon's inherited view locates (written from reading
# spp_dci_client/views/data_source_views.xml): the newest shows the masked
# oauth2_client_secret_display, an older one oauth2_client_secret.
UPSTREAM_FORM = """<form><sheet><group string="Authentication"><group>
  <field name="auth_type"/><field name="oauth2_client_id"/><field name="%s" widget="password"/>
  <field name="oauth2_scope"/></group></group>
  <group string="API Endpoints (Optional Overrides)" name="api_endpoints"><group>
  <field name="search_endpoint"/></group></group>
  <notebook><page string="Connection Status" name="connection_status"><group/></page>
  <page string="Notes" name="notes"><field name="notes"/></page></notebook></sheet></form>"""


def _locate(arch, spec):
    """The node an inherited view's spec locates in arch, as Odoo's
    locate_node does: <xpath expr> (the //tag[@a='v' or @a='w'] form), or a
    node matched by tag and its name attribute; None when nothing matches
    (Odoo refuses to install the view)."""
    import re
    if spec.tag == "xpath":
        m = re.fullmatch(r"//(\w+)\[(.+)\]", spec.get("expr"))
        assert m, spec.get("expr")
        alts = [re.fullmatch(r"@(\w+)='([^']*)'", a.strip()) for a in m.group(2).split(" or ")]
        assert all(alts), spec.get("expr")
        for node in arch.iter(m.group(1)):
            if any(node.get(a.group(1)) == a.group(2) for a in alts):
                return node
        return None
    for node in arch.iter(spec.tag):
        if node.get("name") == spec.get("name"):
            return node
    return None


def test_form_view_inherits_what_upstream_has():
    """Every spec of the addon's form view finds its node in upstream's form,
    the newest (oauth2_client_secret_display) and the older
    (oauth2_client_secret): else Odoo refuses to install the addon."""
    tree = ET.parse(os.path.join(ADDON, "views", "data_source_views.xml"))
    record = [r for r in tree.getroot() if r.get("id") == "view_spp_dci_data_source_form_sql"][0]
    assert record.find("field[@name='inherit_id']").get("ref") == "spp_dci_client.view_spp_dci_data_source_form"
    specs = list(record.find("field[@name='arch']"))
    assert specs
    for secret_field in ("oauth2_client_secret_display", "oauth2_client_secret"):
        arch = ET.fromstring(UPSTREAM_FORM % secret_field)
        for spec in specs:
            node = _locate(arch, spec)
            assert node is not None, (secret_field, ET.tostring(spec)[:120])
        # the replaced field is the secret's, which the addon shows masked
        assert [n.get("name") for n in arch.iter("field")
                if _locate(arch, specs[0]) is n] == [secret_field]
        replacement = [f.get("name") for f in specs[0].iter("field")]
        assert "oauth2_client_secret_display" in replacement and "oauth2_client_secret" not in replacement


def test_overrides_have_upstream_signatures():
    up_client = {name: fn for (cls, name), fn in client_mod._ORIGINAL.items()}
    assert {"_make_request", "_sign_request", "search", "search_async", "subscribe", "unsubscribe",
            "txn_status"} <= set(up_client), sorted(up_client)
    for (cls_name, name), upstream in client_mod._ORIGINAL.items():
        cls = {"DCIClient": DCIClient, "CRVSService": CRVSService, "DRService": DRService,
               "IBRService": IBRService}[cls_name]
        mine = getattr(cls, name)
        assert getattr(mine, "dci_client_sql", False), (cls_name, name)
        if upstream is not None:
            assert same_signature(mine.__wrapped__, upstream), (cls_name, name)
    up_model = __import__("support.odoo_upstream", fromlist=["DCIDataSource"]).DCIDataSource
    for name in ("create", "write", "unlink", "_get_oauth2_token", "_clear_oauth2_token_cache", "_get_headers",
                 "test_connection", "get_by_code", "get_by_registry_type", "_check_oauth2_fields",
                 "_check_bearer_token", "_compute_oauth2_client_secret_display",
                 "_inverse_oauth2_client_secret_display", "_apply_secret_display"):
        assert name in vars(ds_mod.DCIDataSource), name                    # overridden, not inherited
        mine = getattr(ds_mod.DCIDataSource, name)
        upstream = getattr(up_model, name, None) or getattr(odoo_orm.BaseModel, name)
        assert same_signature(mine, upstream), name
    # newest upstream made the credential methods private (not callable over
    # RPC: no user has a token minted and handed back); the addon must not
    # bring the public names back (upstream's own test asserts they are gone)
    for name in ("get_oauth2_token", "get_headers", "clear_oauth2_token_cache"):
        assert not hasattr(up_model, name), name
        assert name not in vars(ds_mod.DCIDataSource), name
    for name in ("_check_oauth2_fields", "_check_bearer_token"):
        assert getattr(ds_mod.DCIDataSource, name)._constrains, name        # still constraints
    from odoo.addons.spp_dci_client_sql.models import signing_key as sk_mod
    up_key = __import__("support.odoo_upstream", fromlist=["SigningKey"]).SigningKey
    for name in ("create", "write", "_check_keys_present", "action_activate", "get_signer"):
        mine = getattr(sk_mod.DCISigningKey, name)
        assert same_signature(mine, getattr(up_key, name, None) or getattr(odoo_orm.BaseModel, name)), name
    assert sk_mod.DCISigningKey._check_keys_present._constrains


# ---------------------------------------------------------------- sources: create / write / unlink
def test_create_write_secrets_go_through_not_into_odoo(env, oenv):
    c = code("addon")
    bearer = remember(secret("Zq9-bearer-"))
    rec = oenv["spp.dci.data.source"].create(vals(env, c, oauth2_scope="registry.search", timeout=12))
    assert odoo_row(oenv, rec.id, "oauth2_client_secret", "bearer_token", "_oauth2_access_token") == (None,) * 3
    assert sql_row(oenv, c, "base_url", "auth_url", "client_id", "scope", "timeout_ms", "sender_id",
                   "client_secret", "client_secret_set") == (
        env.mock.http_url, env.mock.token_url, CLIENT_ID, "registry.search", 12000, "openspp.example.org", None,
        True)
    assert rec.oauth2_client_secret_display == rec._SECRET_MASK and rec.dci_client_secret_set is True
    assert rec.oauth2_client_secret is False                     # the Char field stays empty
    # the mask written back changes nothing; a new value is written through
    rec.write({"oauth2_client_secret": rec._SECRET_MASK, "name": "Renamed"})
    assert sql_row(oenv, c, "name", "client_secret_set") == ("Renamed", True)
    # removing the secret of an OAuth2 source: the constraint asks the extension
    e = user_error(rec.write, {"oauth2_client_secret": False})
    assert isinstance(e, ValidationError) and "Client Secret is required" in str(e), str(e)
    # an OAuth2 source without a secret is refused; the transaction goes on
    oenv.cr.execute("CREATE TEMP TABLE odoo_work (v text)")
    oenv.cr.execute("INSERT INTO odoo_work VALUES ('kept')")
    e = user_error(oenv["spp.dci.data.source"].create, vals(env, code("nosec"), oauth2_client_secret=False))
    assert "Client Secret is required" in str(e), str(e)
    # bearer: written through, the constraint satisfied by bearer_token_set
    b = code("bearer")
    brec = oenv["spp.dci.data.source"].create(vals(env, b, auth_type="bearer", oauth2_token_url=False,
                                                   oauth2_client_id=False, oauth2_client_secret=False,
                                                   bearer_token=bearer))
    assert brec.dci_bearer_token_set and odoo_row(oenv, brec.id, "bearer_token") == (None,)
    e = user_error(oenv["spp.dci.data.source"].create, vals(env, code("nobear"), auth_type="bearer",
                                                             oauth2_client_secret=False))
    assert "Bearer Token is required" in str(e), str(e)
    # the extension's own checks become UserErrors; still usable
    e = user_error(oenv["spp.dci.data.source"].create, vals(env, code("ftp"), base_url="ftp://x.example"))
    assert e.pgcode == "23514" or isinstance(e, ValidationError), str(e)
    # a code change follows the row; unlink removes it
    rec.write({"code": c + "_x", "oauth2_client_secret": CLIENT_SECRET})
    assert sql_row(oenv, c + "_x", "client_secret_set") == (True,)
    rec.unlink()
    assert sql_row(oenv, c + "_x", "id") is None
    oenv.cr.execute("SELECT v FROM odoo_work")
    assert oenv.cr.fetchall() == [("kept",)]
    no_secret_in_statements(oenv, CLIENT_SECRET, bearer)


def test_form_fields_of_the_extension(env, oenv):
    c = code("form")
    rec = oenv["spp.dci.data.source"].create(none_vals(env, c, dci_batch_size=25, dci_max_concurrency=3,
                                                       dci_signature_format="jws"))
    assert sql_row(oenv, c, "batch_size", "max_concurrency", "signature_format") == (25, 3, "jws")
    rec.write({"dci_batch_size": 50})
    assert sql_row(oenv, c, "batch_size") == (50,)
    e = user_error(rec.write, {"dci_batch_size": 5000})
    assert e.pgcode == "23514", str(e)


def test_form_fields_newer_columns(env, oenv):
    c = code("formnew")
    token = remember(secret("Zq9-cbtok-"))
    rec = oenv["spp.dci.data.source"].create(none_vals(env, c, dci_dialect="opencrvs",
                                                       dci_registry_jwks_url="https://registry.example/jwks.json"))
    rec.dci_callback_token = token
    assert sql_row(oenv, c, "dialect", "registry_jwks_url", "callback_token_set") == (
        "opencrvs", "https://registry.example/jwks.json", True)
    assert rec.dci_callback_token == rec._SECRET_MASK and rec.dci_callback_token_set
    no_secret_in_statements(oenv, token)


def test_form_secret_fields_never_read_back(env, oenv):
    """What the form sends: the secret in oauth2_client_secret_display (create
    and write), the callback token in dci_callback_token; each is written
    through, Odoo's columns stay empty and every read gives the mask."""
    c = code("formsec")
    sec, sec2, tok = remember(secret("Zq9-disp-")), remember(secret("Zq9-disp2-")), remember(secret("Zq9-cbt-"))
    v = vals(env, c, oauth2_client_secret_display=sec, dci_callback_token=tok)
    del v["oauth2_client_secret"]
    rec = oenv["spp.dci.data.source"].create(v)
    assert sql_row(oenv, c, "client_secret_set", "callback_token_set") == (True, True)
    assert rec.oauth2_client_secret_display == rec._SECRET_MASK and rec.dci_callback_token == rec._SECRET_MASK
    rec.write({"oauth2_client_secret_display": sec2})
    assert rec.oauth2_client_secret_display == rec._SECRET_MASK
    rec.oauth2_client_secret_display = rec._SECRET_MASK                       # the mask sent back: unchanged
    assert sql_row(oenv, c, "client_secret_set") == (True,)
    oenv.cr.execute("SELECT row_to_json(s)::text FROM spp_dci_data_source s WHERE id = %s", (rec.id,))
    row = oenv.cr.fetchone()[0]
    for x in (sec, sec2, tok):
        assert x not in row and x not in repr(oenv.cache), x
    no_secret_in_statements(oenv, sec, sec2, tok)


def test_credential_methods_private_and_test_connection_gated(env, oenv):
    """Newest spp_dci_client: _get_oauth2_token / _get_headers /
    _clear_oauth2_token_cache are private (Odoo refuses RPC to '_' names), and
    test_connection asks for write access first.  Through the addon: no public
    token-minting method on the model, the private ones answer from the
    extension, and a user who may only read the source starts no
    credentialed call (nothing reaches the registry)."""
    c = code("priv")
    rec = oenv["spp.dci.data.source"].create(vals(env, c))
    for name in ("get_oauth2_token", "get_headers", "clear_oauth2_token_cache"):
        assert not hasattr(rec, name), name
    assert rec._get_headers()["Authorization"].startswith("Bearer ")
    env.mock.reset()
    oenv.registry.denied.add(("spp.dci.data.source", "write"))
    try:
        with pytest.raises(odoo_orm.AccessError):
            rec.test_connection()
        with pytest.raises(odoo_orm.AccessError):
            rec.action_test_connection()
    finally:
        oenv.registry.denied.clear()
    st = env.mock.stats()
    assert st["token_requests"] == 0 and not st["last_request"], st
    assert sql_row(oenv, c, "last_test_at") == (None,)
    assert rec.test_connection()["params"]["type"] == "success"          # allowed: runs


def test_lookups_ask_the_extension(env, oenv):
    c = code("look")
    rec = oenv["spp.dci.data.source"].create(vals(env, c))
    Source = oenv["spp.dci.data.source"]
    assert Source.get_by_code(c) == rec
    assert rec in Source.get_by_registry_type(CIVIL)
    oenv.cr.execute("UPDATE dci_data_source SET active = false WHERE code = %s", (c,))   # e.g. neutralised
    e = user_error(Source.get_by_code, c)
    assert "not found or is inactive" in str(e), str(e)
    assert rec not in Source.get_by_registry_type(CIVIL)


# ---------------------------------------------------------------- migration
def _plain_rows(env, oenv, n=2):
    """Rows as spp_dci_client kept them: secrets and a cached token in plain text
    (legacy(): on disk in Odoo's table by construction, see support/util.py).
    The first row's client is known to the mock, so its migrated secret works."""
    oenv["spp.dci.data.source"]                                 # the table exists (registry built)
    rows = []
    for i in range(n):
        c = code("mig")
        s, t, tok = legacy("Zq9-migsec-"), legacy("Zq9-migbear-"), legacy("Zq9-migtok-")
        client_id = "legacy-" + c
        env.mock.add_client(client_id, s)
        oenv.cr.execute("""INSERT INTO spp_dci_data_source (name, code, registry_type, base_url, auth_type,
                               oauth2_token_url, oauth2_client_id, oauth2_client_secret, bearer_token,
                               _oauth2_access_token, _oauth2_token_expires_at, our_sender_id, verify_ssl, active,
                               timeout, search_endpoint, oauth2_credential_location)
                           VALUES (%s, %s, %s, %s, 'oauth2', %s, %s, %s, %s, %s, now(), 'openspp.test', true, true,
                                   20, '/registry/sync/search', 'body') RETURNING id""",
                        (c.upper(), c, CIVIL, env.mock.http_url + "/", env.mock.token_url, client_id, s, t, tok))
        rows.append((oenv.cr.fetchone()[0], c, s, t, tok))
    return rows


def test_migration_hook_moves_plaintext_secrets(env, oenv):
    rows = _plain_rows(env, oenv)
    bad = code("migbad")
    bad_secret = legacy("Zq9-migbad-")
    oenv.cr.execute("""INSERT INTO spp_dci_data_source (name, code, base_url, auth_type, oauth2_client_secret,
                           active, verify_ssl) VALUES ('B', %s, 'ftp://nowhere.example', 'basic', %s, true, true)
                       RETURNING id""", (bad, bad_secret))
    bad_id = oenv.cr.fetchone()[0]
    oenv.cr.statements.clear()
    for _round in range(2):                                     # idempotent
        addon.post_init_hook(oenv)
        for rid, c, s, t, tok in rows:
            assert odoo_row(oenv, rid, "oauth2_client_secret", "bearer_token", "_oauth2_access_token",
                            "_oauth2_token_expires_at") == (None,) * 4
            assert sql_row(oenv, c, "base_url", "timeout_ms", "client_secret_set", "bearer_token_set",
                           "client_secret") == (env.mock.http_url, 20000, True, True, None)
        # a row the extension refuses is left as it was, and said so
        assert odoo_row(oenv, bad_id, "oauth2_client_secret") == (bad_secret,)
        assert sql_row(oenv, bad, "id") is None
    # the migrated secret works: the mock knows the first row's client
    rec = oenv["spp.dci.data.source"].browse([rows[0][0]])
    tok = rec._get_oauth2_token()
    assert tok and remember(tok)
    everything = [CLIENT_SECRET, bad_secret] + [x for r in rows for x in r[2:]]
    no_secret_in_statements(oenv, *everything)
    # and nothing is in pg_stat_activity now either (the statements never held them)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SELECT coalesce(string_agg(query, ' '), '') FROM pg_stat_activity")
        seen = cur.fetchone()[0]
    assert not [s for s in everything if s in seen]


def test_migration_of_signing_keys(env, oenv, tmp_path):
    """spp_dci's signing keys (PEM private keys in plain text in Odoo's table)
    move into dci_signing_key, encrypted; the source keeps signing with its
    key (the registry receives a signature); Odoo's private_key is blanked."""
    import subprocess
    key = str(tmp_path / "k.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True, capture_output=True)
    priv = open(key).read()
    pub = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True,
                         text=True).stdout
    LEGACY_KEYS.add(remember(priv.strip().splitlines()[1]))     # pre-migration plain text: see support/util.py
    oenv["spp.dci.data.source"]
    kid = code("sk")
    oenv.cr.execute("INSERT INTO spp_dci_signing_key (name, key_id, algorithm, private_key, public_key, state) "
                    "VALUES ('K', %s, 'ed25519', %s, %s, 'active') RETURNING id", (kid, priv, pub))
    okey = oenv.cr.fetchone()[0]
    c = code("migsig")
    oenv.cr.execute("""INSERT INTO spp_dci_data_source (name, code, registry_type, base_url, auth_type, our_sender_id,
                           verify_ssl, active, signing_key_id) VALUES ('S', %s, %s, %s, 'none', 'openspp.test', true,
                           true, %s) RETURNING id""", (c, CIVIL, env.mock.http_url + "/open", okey))
    rid = oenv.cr.fetchone()[0]
    oenv.cr.statements.clear()
    for _round in range(2):                                      # idempotent
        addon.post_init_hook(oenv)
        oenv.cr.execute("SELECT state, algorithm, kid_format, private_key_set, private_key FROM dci_signing_key "
                        "WHERE key_id = %s", (kid,))
        assert oenv.cr.fetchone() == ("active", "ed25519", "openspp", True, None)
        oenv.cr.execute("SELECT private_key FROM spp_dci_signing_key WHERE id = %s", (okey,))
        assert oenv.cr.fetchone() == (None,)
    oenv.cr.execute("SELECT k.key_id FROM dci_data_source d JOIN dci_signing_key k ON k.id = d.signing_key_id "
                    "WHERE d.code = %s", (c,))
    assert oenv.cr.fetchone() == (kid,)
    rec = oenv["spp.dci.data.source"].browse([rid])
    DCIClient(rec, oenv).search_by_id("UIN", "847951632")
    sent = json.loads(last_search(env, "none")["body"])
    assert sent["signature"] and kid in sent["signature"], sent["signature"][:200]
    no_secret_in_statements(oenv, priv.strip().splitlines()[1])
    # a key only Odoo holds cannot be chosen (it could not sign)
    oenv.cr.execute("INSERT INTO spp_dci_signing_key (name, key_id, state) VALUES ('N', %s, 'draft') RETURNING id",
                    (code("odooonly"),))
    e = user_error(rec.write, {"signing_key_id": oenv.cr.fetchone()[0]})
    assert "is not in dci_client" in str(e), str(e)


def test_grants_hook_lists_what_it_cannot_grant(env, oenv):
    role = code("odoo_role")
    oenv.cr.execute('CREATE ROLE "%s"' % role)
    oenv.cr.execute("GRANT USAGE ON SCHEMA public TO \"%s\"" % role)
    oenv.cr.execute('SET ROLE "%s"' % role)
    left = hooks.apply_grants(oenv.cr)                          # may not grant: lists, does not raise
    assert any("dci_search(text" in s for s in left) and any("dci_data_source" in s for s in left), left
    oenv.cr.execute("RESET ROLE")
    assert hooks.apply_grants(oenv.cr) == []                    # the superuser may (and has them)


def test_uninstall_leaves_the_sources(env, oenv):
    c = code("unin")
    oenv["spp.dci.data.source"].create(vals(env, c))
    addon.uninstall_hook(oenv)
    oenv.cr.execute("SELECT to_regclass('spp_dci_request_log')")
    assert oenv.cr.fetchone() == (None,)
    assert sql_row(oenv, c, "client_secret_set", "active") == (True, True)


# ---------------------------------------------------------------- DCIClient
def _envelope(client, value="847951632"):
    """What upstream's search builds before _make_request (its own envelope)."""
    return client._build_envelope("search", {"transaction_id": "t-%s" % value, "search_request": [{
        "reference_id": "r-1", "timestamp": "2026-01-01T00:00:00.000Z", "search_criteria": {
            "reg_type": CIVIL, "query_type": "idtype-value", "query": {"type": "UIN", "value": value}}}]})


def _auth_sources(env, oenv):
    bearer = env.mock.stats()["bearer_tokens"][0]
    S = oenv["spp.dci.data.source"]
    return {
        "none": S.create(none_vals(env, code("anone"))),
        "bearer": S.create(vals(env, code("abear"), auth_type="bearer", oauth2_token_url=False,
                                oauth2_client_id=False, oauth2_client_secret=False, bearer_token=bearer)),
        "oauth2": S.create(vals(env, code("aoauth"))),
    }, bearer


def test_searches_for_each_auth_type(env, oenv):
    sources, bearer = _auth_sources(env, oenv)
    for kind, rec in sources.items():
        answer = DCIClient(rec, oenv).search_by_id("UIN", "847951632")
        item = answer["message"]["search_response"][0]
        assert item["status"] == "succ" and item["data"]["reg_records"][0]["identifier"][0][
            "identifier_value"] == "847951632", answer
        auth = last_search(env, kind)["headers"].get("authorization")
        if kind == "none":
            assert auth is None
        elif kind == "bearer":
            assert auth == "Bearer " + bearer
        else:
            assert auth == "Bearer " + remember(rec._get_oauth2_token())
            hdrs = rec._get_headers()
            assert hdrs["Authorization"] == auth and hdrs["Accept"] == "application/json"
    assert sources["bearer"]._get_headers()["Authorization"] == "Bearer " + bearer
    assert "Authorization" not in sources["none"]._get_headers()
    e = user_error(sources["none"]._get_oauth2_token)
    assert "does not use OAuth2" in str(e)
    sources["oauth2"]._clear_oauth2_token_cache()
    # async, subscriptions, transaction status: the extension's functions
    client = DCIClient(sources["oauth2"], oenv)
    txn = client.search_async("idtype-value", "UIN:847951632")["message"]["transaction_id"]
    assert client.txn_status(txn)["message"]["txnstatus_response"]["txn_status"] == "succ"
    sub = client.subscribe("REGISTER")["message"]["transaction_id"]
    codes = client.txn_status(sub)["message"]["txnstatus_response"]["subscription_codes"]
    assert codes and client.unsubscribe(codes)["message"]["transaction_id"]
    assert not [v for v in env.mock.stats()["dci_validation"] if not v["ok"]]


def test_make_request_for_each_auth_type(env, oenv):
    """_make_request answers as upstream's did: the registry's whole answer
    ({signature, header, message}), which every upstream caller reads as
    response["message"][...]."""
    sources, bearer = _auth_sources(env, oenv)
    for kind, rec in sources.items():
        client = DCIClient(rec, oenv)
        answer = client._make_request(SEARCH, _envelope(client))
        assert set(answer) == {"signature", "header", "message"}, answer
        assert answer["header"]["action"] == "on-search" and answer["header"]["status"] == "succ", answer
        item = answer["message"]["search_response"][0]
        assert item["status"] == "succ" and item["data"]["reg_records"][0]["identifier"][0][
            "identifier_value"] == "847951632", answer
        sent = last_search(env, kind)
        auth = sent["headers"].get("authorization")
        assert (auth is None) if kind == "none" else auth.startswith("Bearer "), (kind, auth)
        if kind == "bearer":
            assert auth == "Bearer " + bearer
        # the extension's envelope around upstream's message
        body = json.loads(sent["body"])
        assert body["message"]["transaction_id"] == "t-847951632" and body["header"]["action"] == "search", body
    # upstream's own callers of _make_request (not overridden): their envelopes, their reading
    client = DCIClient(sources["oauth2"], oenv)
    expr = {"query": {"birth_date": {"ge": "2019-01-01"}}}
    answer = client.search_by_expression(expr)
    assert answer["message"]["search_response"][0]["status"] == "succ", answer
    assert json.loads(last_search(env)["body"])["message"]["search_request"][0]["search_criteria"][
        "query"] == expr
    answer = client.search_by_id_opencrvs("BRN", "BRN-2019-0042", event_type="birth")
    rec = answer["message"]["search_response"][0]["data"]["reg_records"][0]
    assert rec["birth_date"] == "2019-03-14", answer
    sent = json.loads(last_search(env)["body"])["message"]["search_request"][0]
    assert sent["locale"] == "eng" and sent["consent"]["id"] == "consent-openspp", sent
    # an asynchronous endpoint: the ACK as upstream read it (message.correlation_id / transaction_id)
    ack = client.search_by_expression(expr, async_mode=True)
    assert ack["message"]["ack_status"] == "ACK", ack
    # upstream spells the action txn_status (dci_send: txn-status); its endpoint acknowledges
    ack = client._make_request("/registry/txn/status", client._build_envelope("txn_status", {
        "transaction_id": "t-status-1", "txnstatus_request": {"reference_id": "r-1", "txn_type": "search",
                                                              "attribute_type": "transaction_id",
                                                              "attribute_value": ack["message"].get(
                                                                  "correlation_id") or "t-x"}}))
    assert ack["message"]["ack_status"] == "ACK", ack
    e = user_error(client._make_request, SEARCH, client._build_envelope("on-search", {}))
    assert isinstance(e, ValidationError), e
    assert not [v for v in env.mock.stats()["dci_validation"] if not v["ok"]], [
        v for v in env.mock.stats()["dci_validation"] if not v["ok"]][:3]


def test_txn_status_by_reference_id(env, oenv):
    """txn_status(ref, "reference_id") asks dci_txn_status with reference_ids."""
    rec = oenv["spp.dci.data.source"].create(vals(env, code("txnref")))
    client = DCIClient(rec, oenv)
    txn = client.search_async("idtype-value", "UIN:847951632")["message"]["transaction_id"]
    ref = json.loads(env.mock.stats()["last_request"]["/registry/search"]["body"])["message"][
        "search_request"][0]["reference_id"]
    status = client.txn_status(ref, attribute_type="reference_id")["message"]["txnstatus_response"]
    assert status["txn_status"] == "succ", status
    asked = json.loads(env.mock.stats()["last_request"]["/registry/sync/txn/status"]["body"])["message"][
        "txnstatus_request"]
    assert asked["attribute_type"] == "reference_id_list" and asked["attribute_value"] == [ref], asked
    assert client.txn_status(txn)["message"]["txnstatus_response"]["txn_status"] == "succ"
    e = user_error(client.txn_status, "no-such-ref", attribute_type="reference_id")
    assert e.pgcode == "DC007", str(e)
    assert client.txn_status_async(txn)["message"]["ack_status"] == "ACK"
    e = user_error(client.search_async, "idtype-value", "UIN:1", callback_url="https://elsewhere.example/cb")
    assert isinstance(e, ValidationError) and "callback URI" in str(e), str(e)
    assert client.search_async("idtype-value", "UIN:1", callback_url=rec.our_callback_uri)["message"]["ack_status"]
    assert not [v for v in env.mock.stats()["dci_validation"] if not v["ok"]]


def test_failing_call_keeps_the_odoo_transaction(env, oenv):
    rec = oenv["spp.dci.data.source"].create(vals(env, code("fail")))
    wrong = oenv["spp.dci.data.source"].create(vals(env, code("wrong"), oauth2_client_secret=remember(secret())))
    oenv.cr.execute("CREATE TEMP TABLE odoo_work (v text)")
    oenv.cr.execute("INSERT INTO odoo_work VALUES ('before')")
    e = user_error(DCIClient(rec, oenv).search_by_id, "UIN", "REJECTED")
    assert e.pgcode == "DC007" and str(e).startswith("The request was invalid. Please check your data"), str(e)
    e = user_error(DCIClient(wrong, oenv).search_by_id, "UIN", "1")
    assert e.pgcode == "DC002" and str(e).startswith("Authentication failed. Please verify the OAuth2"), str(e)
    assert CLIENT_SECRET not in str(e)
    oenv.cr.execute("INSERT INTO odoo_work VALUES ('after')")
    oenv.cr.execute("SELECT v FROM odoo_work ORDER BY v")
    assert oenv.cr.fetchall() == [("after",), ("before",)]
    assert DCIClient(rec, oenv).search_by_id("UIN", "847951632")["message"]["search_response"]
    oenv.cr.commit()                                             # the transaction commits


def test_test_connection_shows_the_steps(env, oenv):
    rec = oenv["spp.dci.data.source"].create(vals(env, code("conn")))
    action = rec.test_connection()
    assert action["params"]["type"] == "success", action
    assert rec.state == "active" and rec.last_error is False
    steps = rec.dci_test_steps.splitlines()
    # a source with a callback URI but neither callback token nor registry key
    # also gets dci_test_connection's warning row (README "Callbacks and notifications")
    warn = [s for s in steps if s.startswith("callbacks:")]
    assert len(warn) == 1 and "unauthenticated" in warn[0], steps
    steps = [s for s in steps if not s.startswith("callbacks:")]
    assert [s.split(":")[0] for s in steps] == ["config", "auth", "reachable", "authorized"], steps
    assert all(s.endswith(": ok") for s in steps), steps


# ---------------------------------------------------------------- CRVS, DR, IBR
def test_crvs_verification(env, oenv):
    c = code("crvs")
    oenv["spp.dci.data.source"].create(vals(env, c))
    svc = CRVSService(oenv, c)
    record = svc.verify_birth("BRN", "BRN-2019-0042")
    # upstream's shape (CRVSService._extract_birth_data), what its callers read
    assert record["birth_date"] == "2019-03-14" and record["person_name"]["given_name"] == "Amina", record
    assert record["raw_data"]["identifier"] == [{"identifier_type": "BRN", "identifier_value": "BRN-2019-0042"}]
    sent = json.loads(env.mock.stats()["last_request"][SEARCH]["body"])
    assert sent["message"]["search_request"][0]["search_criteria"]["query"] == {"type": "BRN",
                                                                                 "value": "BRN-2019-0042"}
    assert svc.verify_birth("BRN", "NOTFOUND") is None
    assert svc.check_death("UIN", "NOTFOUND") is False
    e = user_error(svc.verify_birth, "BRN", "REJECTED")
    assert str(e).startswith("Failed to verify birth record: The request was invalid") and e.pgcode == "DC007"


def test_dr_status_per_dr_spec(env, oenv):
    c = code("dr")
    oenv["spp.dci.data.source"].create(vals(env, c, registry_type=DR))
    svc = DRService(oenv, c)
    p = partner(oenv, "Ana", ("UIN", "847951632"))
    st = svc.get_disability_status(p)
    assert st["has_disability"] is True and st["disability_status"] == "Approved", st
    assert st["disability_types"] == ["Physical and movement related functions"], st
    assert st["disability_level"] == "Moderate" and str(st["assessment_date"]) == "2024-02-01", st
    assert st["raw_data"]["disability_details"][0]["impairment_level"] == "Moderate impairment or difficulty"
    denied = svc.get_disability_status(partner(oenv, "Ben", ("UIN", "DENIED-1")))
    assert denied["has_disability"] is False and denied["disability_status"] == "Rejected", denied
    assert svc.get_disability_status(partner(oenv, "Cy", ("UIN", "NOTFOUND"))) is None
    assert svc.get_disability_status(partner(oenv, "Di")) is None            # no identifier


def test_ibr_duplication_over_all_identifiers_in_one_call(env, oenv):
    c = code("ibr")
    rec = oenv["spp.dci.data.source"].create(vals(env, c, registry_type=IBR))
    p = partner(oenv, "Eve", ("UIN", "847951632"), ("BRN", "BRN-2019-0042"), ("NID", "RJCT-77"))
    before = env.mock.stats()["search"]
    result = IBRService(rec, oenv).check_duplication(p)
    after = env.mock.stats()["search"]
    assert after["envelopes"] - before["envelopes"] == 1, (before, after)        # one batched call ...
    assert after["items"] - before["items"] == 3, (before, after)                # ... of every identifier
    assert result["is_duplicate"] is True and result["matched_programs"] == ["Child Grant"], result
    assert [r["status"] for r in result["raw_response"]] == ["succ", "succ", "rjct"], result["raw_response"]
    e = user_error(IBRService(rec, oenv).check_duplication, partner(oenv, "Nobody"))
    assert "has no identifiers" in str(e)


# ---------------------------------------------------------------- callbacks through the controller
def test_callback_hostile_bodies(env, oenv):
    c = code("cbh")
    oenv["spp.dci.data.source"].create(vals(env, c))
    oenv.cr.execute("CREATE TEMP TABLE odoo_work (v text)")
    oenv.cr.execute("INSERT INTO odoo_work VALUES ('kept')")
    path = "/dci/callback/%s/on-search" % c
    for body, status in ((b"\xff\xfe\x00", 400), (b'{"header": "\x00"}', 400),
                         (b" " * (16 * 1024 * 1024 + 1), 413)):
        r = odoo_orm.dispatch(oenv, DCICallbackController, path, body, [("Content-Type", "application/json")])
        assert r.status_code == status and r.json()["message"]["ack_status"] == "NACK", (status, r.data[:200])
    oenv.cr.execute("SELECT v FROM odoo_work")
    assert oenv.cr.fetchall() == [("kept",)]


def test_callback_through_the_controller(env, oenv):
    c = code("cb")
    token = remember(secret("Zq9-cb-"))
    oenv["spp.dci.data.source"].create(vals(env, c, dci_callback_token=token))
    # dci_receive takes a notification for an active subscription only, and a fresh message_ts
    oenv.cr.execute("INSERT INTO dci_subscription (source_id, code, reg_event_type, state) "
                    "SELECT id, %s, 'DEATH', 'active' FROM dci_data_source WHERE code = %s", ("S-" + c, c))
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    envelope = {"signature": "", "header": {
        "version": "1.0.0", "message_id": "m-%s" % c, "message_ts": now, "action": "notify",
        "sender_id": "mock-registry", "receiver_id": "openspp.example.org", "total_count": 1,
        "is_msg_encrypted": False}, "message": {
        "transaction_id": "t-%s" % c, "subscription_code": "S-" + c, "event_type": "DEATH", "event_date": "2025-12-01",
        "identifiers": [{"type": "UIN", "value": "123456789"}]}}
    body = json.dumps(envelope).encode()
    path = "/dci/callback/%s/notify" % c
    cookie = remember(secret("Zq9-session-"))
    r = odoo_orm.dispatch(oenv, DCICallbackController, path, body,
                          [("Content-Type", "application/json"), ("Authorization", "Bearer " + token),
                           ("Cookie", "session_id=" + cookie)])
    assert 200 <= r.status_code < 300, (r.status_code, r.data)
    events = oenv["spp.dci.crvs.event"].search([("identifier_value", "=", "123456789")])
    assert len(events) == 1 and events.event_type == "death" and events.state == "processed", events
    assert json.loads(events.raw_data)["message"]["event_date"] == "2025-12-01"
    # a sender without the token: refused, nothing processed, the transaction goes on
    r = odoo_orm.dispatch(oenv, DCICallbackController, path, body.replace(b"m-", b"n-"),
                          [("Content-Type", "application/json"), ("Authorization", "Bearer wrong")])
    assert r.status_code in (401, 403), (r.status_code, r.data)
    assert len(oenv["spp.dci.crvs.event"].search([("identifier_value", "=", "123456789")])) == 1
    # not JSON at all
    r = odoo_orm.dispatch(oenv, DCICallbackController, path, b"{not json",
                          [("Authorization", "Bearer " + token)])
    assert r.status_code == 400, (r.status_code, r.data)
    # a replay of the accepted message: refused, processed once
    r = odoo_orm.dispatch(oenv, DCICallbackController, path, body,
                          [("Content-Type", "application/json"), ("Authorization", "Bearer " + token)])
    assert r.status_code == 409, (r.status_code, r.data)
    assert len(oenv["spp.dci.crvs.event"].search([("identifier_value", "=", "123456789")])) == 1
    no_secret_in_statements(oenv, token, cookie)


def test_fastapi_routes_replaced(oenv, monkeypatch):
    ours = object()
    monkeypatch.setattr(fe_mod, "build_router", lambda: ours)

    class R:
        def __init__(self, tags):
            self.tags = tags
    upstream = [R(["DCI CRVS Callback"]), R(["DCI DR Callback"]), R(["DCI IBR Callback"]), R(["Other"])]
    monkeypatch.setattr(__import__("support.odoo_upstream", fromlist=["x"]).FastapiEndpoint,
                        "_get_fastapi_routers", lambda self: list(upstream))
    ep = oenv["fastapi.endpoint"].create({"app": "dci_api"})
    got = ep._get_fastapi_routers()
    assert got == [upstream[3], ours], got
    other = oenv["fastapi.endpoint"].create({"app": "api_v2"})
    assert other._get_fastapi_routers() == upstream


# ---------------------------------------------------------------- the request log
def test_request_log_model(env, oenv):
    c = code("rlog")
    rec = oenv["spp.dci.data.source"].create(vals(env, c))
    oenv.cr.commit()                              # the log writer resolves the source by id
    try:
        user_error(DCIClient(rec, oenv).search_by_id, "UIN", "REJECTED")
        Log = oenv["spp.dci.request.log"]
        deadline = time.monotonic() + 30
        rows = Log.search([("source", "=", c)])
        while not rows and time.monotonic() < deadline:      # written asynchronously, after the rollback too
            time.sleep(0.2)
            oenv.cr.rollback()
            rows = oenv["spp.dci.request.log"].search([("source", "=", c)])
        assert rows, "no request log row for %s" % c
        row = list(rows)[0]
        assert row.outcome == "rejected" and row.status == "http_error" and row.path == SEARCH, (
            row.outcome, row.status, row.path)
        assert CLIENT_SECRET not in (row.error_detail or "")
    finally:
        oenv.cr.rollback()
        oenv.cr.execute("DELETE FROM dci_data_source WHERE code = %s", (c,))
        oenv.cr.execute("DROP TABLE IF EXISTS spp_dci_data_source, res_partner, spp_registry_id, spp_id_type, "
                        "spp_dci_crvs_event, spp_dci_disability_status, spp_dci_duplication_check, "
                        "ir_config_parameter, fastapi_endpoint, spp_dci_signing_key, res_users CASCADE")
        oenv.cr.execute("DROP VIEW IF EXISTS spp_dci_request_log")
        oenv.cr.commit()


def test_sql_errors_map_to_openspp_messages():
    for state in ("DC001", "DC002", "DC003", "DC004", "DC005", "DC006", "DC007", "DC008", "DC009", "22023",
                  "22021", "57014", "23514", "23505"):
        assert sql_mod.user_message(state), state
    assert "SSL certificate" in sql_mod.user_message("DC003", "TLS certificate problem: unable to get local issuer")
    assert "Please check the Base URL" in sql_mod.user_message("DC003", "could not connect (TLS 0.0 ms)")
    assert sql_mod.user_message("XX000") is None


def test_other_errors_pass_through(oenv):
    try:
        with sql_mod.dci_errors(oenv.cr):
            oenv.cr.execute("SELECT 1/0")
    except psycopg2.Error as e:
        assert e.pgcode == "22012"
    else:
        raise AssertionError("no error")
    oenv.cr.execute("SELECT 2")
    assert oenv.cr.fetchone() == (2,)


# ---------------------------------------------------------------- attacks
def test_hostile_secret_values(env, oenv, caplog):
    """Secrets with CSV/SQL metacharacters arrive intact; refused ones leave no
    trace of themselves in messages, statements or Odoo's columns; the
    transaction goes on."""
    tricky = remember(secret('Zq9-",\\\\\';-- -'))     # quote, comma, backslashes, space (the mock reads headers as latin-1)
    c = code("tricky")
    rec = oenv["spp.dci.data.source"].create(vals(env, c, auth_type="bearer", base_url=env.mock.http_url,
                                                   oauth2_token_url=False, oauth2_client_id=False,
                                                   oauth2_client_secret=False, bearer_token=tricky))
    oenv.cr.execute("SELECT dci_get_token(%s)", (c,))
    assert oenv.cr.fetchone()[0] == tricky                                    # stored byte for byte
    wide = remember(secret("Zq9-\u00e9\u4e2d-"))
    rec.write({"bearer_token": wide})
    oenv.cr.execute("SELECT dci_get_token(%s)", (c,))
    assert oenv.cr.fetchone()[0] == wide                                      # non-ASCII too
    rec.write({"bearer_token": tricky})
    env.mock.set_bearer([tricky])
    try:
        assert DCIClient(rec, oenv).search_by_id("UIN", "847951632")["message"]["search_response"]
        assert last_search(env)["headers"]["authorization"] == "Bearer " + tricky     # byte for byte
    finally:
        env.mock.reset()
    oenv.cr.execute("CREATE TEMP TABLE odoo_work (v text)")
    oenv.cr.execute("INSERT INTO odoo_work VALUES ('kept')")
    for bad in (remember(secret("Zq9-line-")) + "\r\nX-Injected: 1", remember(secret("Zq9-nul-")) + "\x00"):
        e = user_error(rec.write, {"bearer_token": bad})
        assert bad.split("\r")[0].split("\x00")[0] not in str(e), str(e)
        assert sql_row(oenv, c, "bearer_token_set") == (True,)                 # the old one is kept
    assert odoo_row(oenv, rec.id, "bearer_token") == (None,)
    oenv.cr.execute("SELECT v FROM odoo_work")
    assert oenv.cr.fetchall() == [("kept",)]
    no_secret_in_statements(oenv, tricky, wide)
    for r in caplog.records:
        assert "Zq9-line-" not in r.getMessage() and "Zq9-nul-" not in r.getMessage() and tricky not in r.getMessage()


def test_migration_of_a_hostile_row(env, oenv, caplog):
    """A plain-text bearer token the extension refuses (a header injection):
    the row stays as it was, the warning names the source, not the token."""
    oenv["spp.dci.data.source"]
    c = code("mighost")
    bad = legacy("Zq9-mighost-") + "\r\nX-Evil: 1"
    oenv.cr.execute("""INSERT INTO spp_dci_data_source (name, code, base_url, auth_type, bearer_token, active,
                           verify_ssl, our_sender_id) VALUES ('H', %s, %s, 'bearer', %s, true, true, 'openspp.test')
                       RETURNING id""", (c, env.mock.http_url, bad))
    rid = oenv.cr.fetchone()[0]
    oenv.cr.statements.clear()
    with caplog.at_level("WARNING"):
        done, failed = hooks.migrate_sources(oenv.cr)
    assert c in failed and c not in done, (done, failed)
    assert odoo_row(oenv, rid, "bearer_token") == (bad,) and sql_row(oenv, c, "id") is None
    assert any(c in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if "Zq9-mighost-" in r.getMessage()]
    no_secret_in_statements(oenv, bad.split("\r")[0])
    oenv.cr.execute("SELECT 1")                                  # usable


def test_callback_refused_before_sql_leaves_nothing(env, oenv):
    """Headers a sender controls are bounded and cleaned before they reach SQL:
    only what dci_receive reads goes there (never a Cookie: an Odoo session id
    in the statement text), the bearer token only as an HMAC of the body, another
    Authorization scheme not at all."""
    import hashlib
    from odoo.addons.spp_dci_client_sql.services import callbacks
    hdrs = [("Content-Type", "application/json; " + "y" * 100000), ("Bad\x00Name", "x"), ("ok", "a\x00b"),
            (b"raw", "x"), ("Cookie", "session_id=Zq9-odoo-session"), ("Proxy-Authorization", "Basic Zq9-proxy"),
            ("Authorization", "Bearer  Zq9-cb-token")] + [("X-%d" % i, "v") for i in range(500)]
    clean = callbacks.clean_headers(hdrs, b'{"body": 1}')
    assert set(clean) == {"content-type", "authorization"}, clean
    assert len(clean["content-type"]) == callbacks.MAX_HEADER_VALUE
    import hmac
    assert clean["authorization"] == "Bearer hmac-sha256:" + hmac.new(b"Zq9-cb-token", b'{"body": 1}',
                                                                      hashlib.sha256).hexdigest()
    assert "Zq9" not in json.dumps(clean)
    assert callbacks.clean_headers([("authorization", "Basic Zq9-basic")]) == {}
    # more headers than MAX_HEADERS: the rest are not looked at
    assert callbacks.clean_headers([("X-%d" % i, "v") for i in range(500)] + [("Authorization", "Bearer t")]) == {}


def test_callback_processing_of_hostile_shapes(env, oenv):
    """What dci_receive stored is processed defensively: wrong types anywhere
    make no exception (the message stays stored, the answer stands)."""
    from odoo.addons.spp_dci_client_sql.services import callbacks
    c = code("shape")
    oenv["spp.dci.data.source"].create(vals(env, c))
    for kind, action in (("crvs", "notify"), ("dr", "on-search"), ("ibr", "on-search")):
        for message in ("text", [], {"search_response": "zzz"}, {"search_response": [1, "a", None]},
                        {"search_response": [{"status": "succ", "data": {"reg_records": "x"}}]},
                        {"search_response": [{"status": "succ", "data": {"reg_records": [{"identifier": 5}]}}]},
                        {"identifiers": "UIN", "event_type": 7}):
            callbacks._process(oenv, c, kind, action, "not a header", message, "corr-1")
    oenv.cr.execute("SELECT 1")


def test_denied_read_does_not_poison_the_transaction(env, oenv):
    c = code("deny")
    rec = oenv["spp.dci.data.source"].create(vals(env, c))
    role = code("odoo_ro")
    oenv.cr.execute('CREATE ROLE "%s"' % role)
    oenv.cr.execute('GRANT USAGE ON SCHEMA public TO "%s"' % role)
    oenv.cr.execute('GRANT SELECT ON spp_dci_data_source TO "%s"' % role)
    oenv.cr.execute('SET ROLE "%s"' % role)
    oenv.invalidate()
    e = user_error(lambda: rec.dci_client_secret_set)
    assert e.pgcode == "42501", str(e)
    oenv.cr.execute("SELECT count(*) FROM spp_dci_data_source")     # still usable
    oenv.cr.execute("RESET ROLE")


def _violations(env, prefix="/registry/sync/"):
    return [v for v in env.mock.stats()["dci_validation"] if not v["ok"] and v["path"].startswith(prefix)]


def test_dr_and_ibr_domain_endpoints(env, oenv):
    """DRService / IBRService's domain calls go through the extension's named
    functions (dci_disability_details, dci_disabled, dci_enrolled,
    dci_enrollment_updates), whose requests the strict mock finds valid."""
    d, i = code("drdom"), code("ibrdom")
    oenv["spp.dci.data.source"].create(vals(env, d, registry_type=DR))
    ibr = oenv["spp.dci.data.source"].create(vals(env, i, registry_type=IBR))
    before = len(_violations(env))
    dr = DRService(oenv, d)
    details = dr.get_disability_details("UIN", "847951632")
    assert len(details) == 1 and details[0]["has_disability"] is True, details
    assert details[0]["disability_types"] == ["Physical and movement related functions"], details
    assert details[0]["disability_details"][0]["impairment_level"] == "Severe impairment or difficulty"
    sent = json.loads(env.mock.stats()["last_request"]["/registry/sync/get-disability-details"]["body"])
    crit = sent["message"]["disabled_criteria"]
    assert crit["query_type"] == "expression" and crit["query"]["member.member_identifier"] == {
        "eq": "847951632"}, crit
    assert sent["header"]["action"] == "search" and sent["header"]["total_count"] == 1, sent["header"]
    e = user_error(dr.get_disability_details, "UIN", "RJCT")          # the registry rejects the member
    assert e.pgcode == "DC007" and str(e).startswith("Failed to get disability status:"), str(e)
    assert dr.is_disabled("UIN", "847951632") is True
    assert dr.is_disabled("UIN", "ABLE") is False
    svc = IBRService(ibr, oenv)
    assert svc.get_enrolled("847951632")["enrolled_status"] == "yes"
    assert svc.get_enrolled("NEW", programme_identifier="AD234")["enrolled_status"] == "no"
    sent = json.loads(env.mock.stats()["last_request"]["/registry/sync/enrolled"]["body"])
    assert sent["message"]["enrolled_criteria"]["response_entity"] == "Member", sent
    receipts = svc.enrollment_updates([{"identifier": [{"identifier_type": "UIN", "identifier_value": "847951632"}],
                                        "programme": "AD234", "enrolment_date": "2026-01-05"}])
    assert [r["status"] for r in receipts] == ["succ"], receipts
    assert _violations(env)[before:] == [], _violations(env)[before:]


def test_mock_domain_endpoints_answer(env, oenv):
    """The strict mock's DR/IBR endpoints answer the extension's named
    functions as the specs have it, and find nothing to fault in what they send."""
    c = code("mockdom")
    oenv["spp.dci.data.source"].create(vals(env, c, registry_type=DR))
    before = len(_violations(env))
    who = psycopg2.extras.Json({"member.member_identifier": {"eq": "847951632"}})
    oenv.cr.execute("SELECT dci_disability_details(%s, %s)", (c, who))
    item = oenv.cr.fetchone()[0]
    assert item["status"] == "succ" and item["data"]["reg_records"][0]["disability_details"][0][
        "impairment_type"] == "Physical and movement related functions", item
    assert item["pagination"]["total_count"] == 1                    # the registry's "1" made a number
    oenv.cr.execute("SELECT dci_disabled(%s, %s) ->> 'disabled_status'", (c, who))
    assert oenv.cr.fetchone() == ("yes",)
    oenv.cr.execute("SELECT dci_disability_support(%s, %s)", (c, who))
    support = oenv.cr.fetchone()[0]
    assert support["status"] == "succ" and support["data"]["reg_records"], support
    oenv.cr.execute("SELECT dci_enrolled(%s, %s, response_entity => 'Member') ->> 'enrolled_status'",
                    (c, psycopg2.extras.Json({"person_identifier": {"eq": "847951632"}})))
    assert oenv.cr.fetchone() == ("yes",)
    assert _violations(env)[before:] == [], _violations(env)[before:]
    # a request the strict mock does fault (a hand-built envelope without a header) is seen as one
    body = {"message": {"transaction_id": "t-1", "disabled_criteria": {"query": {}}}}
    oenv.cr.execute("SELECT status FROM dci_request(%s, 'POST', '/registry/sync/disabled', %s)",
                    (c, psycopg2.extras.Json(body)))
    assert oenv.cr.fetchone() == (400,)
    assert len(_violations(env)) == before + 1


def test_hostile_inputs_keep_the_transaction(env, oenv):
    """What a caller (or a registrant's data) may hand the services: each is a
    UserError (ValidationError) OpenSPP can show, never a raw database error,
    and the Odoo transaction goes on."""
    rec = oenv["spp.dci.data.source"].create(vals(env, code("hostin")))
    client = DCIClient(rec, oenv)
    oenv.cr.execute("CREATE TEMP TABLE odoo_work (v text)")
    oenv.cr.execute("INSERT INTO odoo_work VALUES ('kept')")
    calls = [
        lambda: client.search("idtype-value", "UIN:\x00x"),                     # NUL: jsonb cannot hold it
        lambda: client.search("idtype-value", "UIN:\ud800"),                    # a lone surrogate
        lambda: client.search("no-such-type", "x"),
        lambda: client.search("idtype-value", "UIN:1", page_size=5000),
        lambda: client._make_request("/../admin", _envelope(client)),
        lambda: client._make_request("https://evil.example/x", _envelope(client)),
        lambda: client.send("/registry/sync/search", "search", {"transaction_id": 5}),
        lambda: client.subscribe("REGISTER", filter_query={"type": "x" * 10, "value": "\x00"}),
        lambda: client.txn_status("t" * 200),
        lambda: client.search_by_ids([("UIN", "\x00")]),
        # NUL in a text argument: psycopg2 raises ValueError before sending
        lambda: client.txn_status("t\x00x"),
        lambda: client.txn_status("t\x00x", attribute_type="reference_id"),
        lambda: client.unsubscribe(["S\x00"]),
        lambda: client.search("idtype-value", "UIN:1", registry_type="ns:org:RegistryType:\x00"),
        lambda: client._make_request("/registry/sync/search\x00", _envelope(client)),
        lambda: oenv["spp.dci.data.source"].get_by_code("a\x00"),
        lambda: rec.write({"notes": "n\x00"}),
        lambda: DRService(oenv, oenv["spp.dci.data.source"].create(
            vals(env, code("hostdr"), registry_type=DR)).code).get_disability_details("UIN", "\x00"),
    ]
    for i, call in enumerate(calls):
        try:
            call()
        except UserError:
            pass
        except Exception as e:          # noqa: BLE001
            raise AssertionError("call %d raised %s: %s" % (i, type(e).__name__, e))
        else:
            raise AssertionError("call %d succeeded" % i)
        oenv.cr.execute("SELECT v FROM odoo_work")
        assert oenv.cr.fetchall() == [("kept",)], i


def test_unauthenticated_callback_is_stored_not_processed(env, oenv):
    """A source with neither callback token nor registry key: dci_receive
    accepts (and stores) a notification, but the addon does not act on it
    (anyone could have sent a death notification) unless the system
    parameter allows it."""
    c = code("cbnone")
    oenv["spp.dci.data.source"].create(vals(env, c))
    oenv.cr.execute("INSERT INTO dci_subscription (source_id, code, reg_event_type, state) "
                    "SELECT id, %s, 'DEATH', 'active' FROM dci_data_source WHERE code = %s", ("S-" + c, c))

    def notify(n):
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        return json.dumps({"signature": "", "header": {
            "version": "1.0.0", "message_id": "m%d-%s" % (n, c), "message_ts": now, "action": "notify",
            "sender_id": "mock-registry", "receiver_id": "openspp.example.org", "total_count": 1,
            "is_msg_encrypted": False}, "message": {
            "transaction_id": "t-%s" % c, "subscription_code": "S-" + c, "event_type": "DEATH",
            "event_date": "2025-12-01", "identifiers": [{"type": "UIN", "value": "UNAUTH-" + c}]}}).encode()
    path = "/dci/callback/%s/notify" % c
    r = odoo_orm.dispatch(oenv, DCICallbackController, path, notify(1), [("Content-Type", "application/json")])
    assert r.status_code == 200, (r.status_code, r.data)
    oenv.cr.execute("SELECT verified FROM dci_inbox i JOIN dci_data_source d ON d.id = i.source_id "
                    "WHERE d.code = %s", (c,))
    assert oenv.cr.fetchall() == [("none",)]
    assert not oenv["spp.dci.crvs.event"].search([("identifier_value", "=", "UNAUTH-" + c)])
    oenv["ir.config_parameter"].sudo().set_param("spp_dci_client_sql.process_unverified_callbacks", "1")
    r = odoo_orm.dispatch(oenv, DCICallbackController, path, notify(2), [("Content-Type", "application/json")])
    assert r.status_code == 200, (r.status_code, r.data)
    assert len(oenv["spp.dci.crvs.event"].search([("identifier_value", "=", "UNAUTH-" + c)])) == 1


def test_signing_key_model_writes_through(env, oenv, tmp_path):
    """spp.dci.signing.key after the install: the private key (as
    action_generate_key writes it) goes to dci_signing_key, never into
    Odoo's table or a statement; activation asks the extension; a source
    choosing the key signs with it."""
    import subprocess
    key = str(tmp_path / "k.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True, capture_output=True)
    priv = open(key).read()
    remember(priv.strip().splitlines()[1])
    pub = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True,
                         text=True).stdout
    Key = oenv["spp.dci.signing.key"]
    kid = code("odk")
    k = Key.create({"name": "K", "key_id": kid, "algorithm": "ed25519"})
    e = user_error(k.action_activate)                                     # no key pair yet
    assert "without generating keypair" in str(e)
    k.write({"private_key": priv, "public_key": pub})                     # what action_generate_key writes
    oenv.cr.execute("SELECT private_key FROM spp_dci_signing_key WHERE id = %s", (k.id,))
    assert oenv.cr.fetchone() == (None,)
    assert k.dci_private_key_set is True and k.private_key is False
    k.action_activate()
    oenv.cr.execute("SELECT state, private_key_set, kid_format FROM dci_signing_key WHERE key_id = %s", (kid,))
    assert oenv.cr.fetchone() == ("active", True, "openspp")
    rec = oenv["spp.dci.data.source"].create(none_vals(env, code("odks"), signing_key_id=k.id))
    DCIClient(rec, oenv).search_by_id("UIN", "847951632")
    sent = json.loads(last_search(env, "none")["body"])
    assert kid in sent["signature"], sent["signature"][:200]
    # revoked in Odoo: revoked in the extension, the source no longer signs (DC001, not unsigned)
    k.write({"state": "revoked"})
    e = user_error(DCIClient(rec, oenv).search_by_id, "UIN", "847951632")
    assert e.pgcode == "DC001", str(e)
    no_secret_in_statements(oenv, priv.strip().splitlines()[1])


def test_callback_for_an_unknown_source_runs_no_failing_statement(env, oenv):
    """An unknown source in the URL: 404 before dci_receive, so no statement
    fails (a failing one is logged with its text: the sender's body)."""
    body = json.dumps({"header": {}, "message": {"x": "Zq9-body-" + "y" * 1000}}).encode()
    oenv.cr.statements.clear()
    r = odoo_orm.dispatch(oenv, DCICallbackController, "/dci/callback/no_such_src/on-search", body,
                          [("Content-Type", "application/json")])
    assert r.status_code == 404 and r.json()["message"]["ack_status"] == "NACK", (r.status_code, r.data)
    assert not [st for st in oenv.cr.statements if "Zq9-body-" in st], oenv.cr.statements
    oenv.cr.execute("SELECT 1")


def test_ibr_callback_correlation_id_is_no_pattern(env, oenv):
    """An IBR on-search whose correlation_id is "%" completes no pending
    duplication check (upstream's ilike would take it as a pattern); the
    real one completes its own."""
    from odoo.addons.spp_dci_client_sql.services import callbacks
    c = code("ibrcorr")
    oenv["spp.dci.data.source"].create(vals(env, c, registry_type=IBR))
    Check = oenv["spp.dci.duplication.check"]
    mine = Check.create({"state": "checking", "notes": "correlation: corr-123-abc"})
    other = Check.create({"state": "checking", "notes": "correlation: corr-999-xyz"})
    msg = {"search_response": [{"status": "succ", "data": {"reg_records": [{"programs": [{"name": "CG"}]}]}}]}
    assert callbacks._process(oenv, c, "ibr", "on-search", {}, msg, "%") == ("duplication_check", None)
    assert callbacks._process(oenv, c, "ibr", "on-search", {}, msg, "corr_123%") == ("duplication_check", None)
    assert callbacks._process(oenv, c, "ibr", "on-search", {}, msg, "corr-123-abc") == ("duplication_check", mine.id)
    oenv.invalidate()
    assert mine.state == "completed" and mine.result == "confirmed_match" and other.state == "checking"


def test_dr_callback_takes_every_record_and_namespace_ids(env, oenv):
    """A DR on-search: every record of every succ item updates its partner's
    disability status (upstream's callback does; the first record only would
    drop the rest), a partner found by an ID type's namespace URI as
    upstream does (matched literally: '%' finds nobody), last_sync_date and
    synced_by set as upstream sets them."""
    from odoo.addons.spp_dci_client_sql.services import callbacks
    c = code("drall")
    oenv["spp.dci.data.source"].create(vals(env, c, registry_type=DR))
    p1 = partner(oenv, "P1", ("UIN", "U-%s" % c))
    drn = oenv["spp.id.type"].create({"code": "DRN_%s" % c, "name": "DRN",
                                      "namespace_uri": "urn:openspp:id:drnum-%s" % c})
    p2 = oenv["res.partner"].create({"name": "P2"})
    oenv["spp.registry.id"].create({"partner_id": p2.id, "id_type_id": drn.id, "value": "D-%s" % c})
    p3 = partner(oenv, "P3", ("NID", "N-%s" % c))
    rec = {"disability_status": "Approved", "disability_details": [{"impairment_type": "Mobility"}]}
    msg = {"search_response": [
        {"status": "succ", "data": {"reg_records": [
            dict(rec, identifier=[{"identifier_type": "UIN", "identifier_value": "U-%s" % c}]),
            dict(rec, identifier=[{"identifier_type": "drnum-%s" % c, "identifier_value": "D-%s" % c}])]}},
        {"status": "succ", "data": {"reg_records": [
            dict(rec, identifier=[{"identifier_type": "%", "identifier_value": "N-%s" % c}])]}},
        {"status": "rjct", "data": {"reg_records": [
            dict(rec, identifier=[{"identifier_type": "NID", "identifier_value": "N-%s" % c}])]}}]}
    kind, touched = callbacks._process(oenv, c, "dr", "on-search", {"sender_id": "dr-reg"}, msg, None)
    assert kind == "disability_status" and len(touched) == 2, touched
    Status = oenv["spp.dci.disability.status"]
    for p in (p1, p2):
        st = Status.search([("partner_id", "=", p.id)])
        assert len(st) == 1 and st.has_disability and json.loads(st.disability_types) == ["Mobility"], p
        assert st.source_registry == "dr-reg" and st.last_sync_date and st.synced_by.id == oenv.uid
    assert not Status.search([("partner_id", "=", p3.id)])


def test_everything_as_odoos_role_with_the_readme_grants(env, oenv):
    """Odoo's database role, not a superuser, owning (here: granted) only
    Odoo's own tables and holding exactly what hooks.GRANTS lists (what the
    README's "Groups and grants" tells the DBA): a source created with its
    secret, headers, a search, a CRVS verification, an IBR check, the
    connection test, a callback through the controller, the request log,
    the migration hook on a plain-text row, unlink — none needs more."""
    role = code("odoo_rt")
    cr = oenv.cr
    cr.execute('CREATE ROLE "%s" NOSUPERUSER' % role)
    cr.execute('GRANT USAGE ON SCHEMA public TO "%s"' % role)
    for model in oenv.registry.models.values():                   # Odoo's tables (Odoo owns them)
        cr.execute("SELECT to_regclass(%s) IS NOT NULL", (model._table,))
        if cr.fetchone()[0]:
            cr.execute('GRANT ALL ON %s TO "%s"' % (model._table, role))
            cr.execute("SELECT pg_get_serial_sequence(%s, 'id')", (model._table,))
            seq = cr.fetchone()
            if seq and seq[0]:
                cr.execute('GRANT ALL ON SEQUENCE %s TO "%s"' % (seq[0], role))
    cr.execute('SET ROLE "%s"' % role)
    needed = hooks.missing_grants(cr)
    cr.execute("RESET ROLE")
    for stmt in needed:                                           # the DBA runs what the hook lists
        cr.execute(stmt % {"role": '"%s"' % role})
    c, cb = code("rt"), code("rtcb")
    token = remember(secret("Zq9-rtcb-"))
    mig = code("rtmig")
    oenv.cr.execute("""INSERT INTO spp_dci_data_source (name, code, registry_type, base_url, auth_type,
                           oauth2_token_url, oauth2_client_id, oauth2_client_secret, our_sender_id, active,
                           verify_ssl, timeout) VALUES ('M', %s, %s, %s, 'oauth2', %s, %s, %s, 'openspp.test',
                           true, true, 20) RETURNING id""", (mig, CIVIL, env.mock.http_url, env.mock.token_url,
                                                            CLIENT_ID, legacy("Zq9-rtmig-")))
    mig_id = oenv.cr.fetchone()[0]
    cr.execute('SET ROLE "%s"' % role)
    try:
        cr.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user")
        assert cr.fetchone() == (role, False)
        assert hooks.missing_grants(cr) == []
        addon.post_init_hook(oenv)                                 # migration as that role
        assert sql_row(oenv, mig, "client_secret_set") == (True,)
        assert odoo_row(oenv, mig_id, "oauth2_client_secret") == (None,)
        Source = oenv["spp.dci.data.source"]
        rec = Source.create(vals(env, c))
        Source.create(vals(env, cb, dci_callback_token=token))
        assert rec.dci_client_secret_set and rec._get_headers()["Authorization"].startswith("Bearer ")
        answer = DCIClient(rec, oenv).search_by_id("UIN", "847951632")
        assert answer["message"]["search_response"][0]["status"] == "succ"
        assert CRVSService(oenv, c).verify_birth("BRN", "BRN-2019-0042")["birth_date"] == "2019-03-14"
        p = partner(oenv, "RT", ("UIN", "847951632"), ("BRN", "BRN-2019-0042"))
        ibr = Source.create(vals(env, code("rtibr"), registry_type=IBR))
        assert len(IBRService(ibr, oenv).check_duplication(p)["raw_response"]) == 2
        assert rec.test_connection()["params"]["type"] == "success"
        oenv["spp.dci.request.log"].search([("source", "=", c)])      # readable (rows come asynchronously)
        cr.execute("RESET ROLE")
        cr.execute("INSERT INTO dci_subscription (source_id, code, reg_event_type, state) "
                   "SELECT id, %s, 'DEATH', 'active' FROM dci_data_source WHERE code = %s", ("S-" + cb, cb))
        cr.execute('SET ROLE "%s"' % role)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        body = json.dumps({"signature": "", "header": {
            "version": "1.0.0", "message_id": "m-" + cb, "message_ts": now, "action": "notify",
            "sender_id": "mock-registry", "receiver_id": "openspp.example.org", "total_count": 1,
            "is_msg_encrypted": False}, "message": {
            "transaction_id": "t-" + cb, "subscription_code": "S-" + cb, "event_type": "DEATH",
            "event_date": "2025-12-01", "identifiers": [{"type": "UIN", "value": "RT-" + cb}]}}).encode()
        r = odoo_orm.dispatch(oenv(su=True), DCICallbackController, "/dci/callback/%s/notify" % cb, body,
                              [("Content-Type", "application/json"), ("Authorization", "Bearer " + token)])
        assert 200 <= r.status_code < 300, (r.status_code, r.data)
        assert oenv["spp.dci.crvs.event"].search([("identifier_value", "=", "RT-" + cb)])
        rec.unlink()
        assert sql_row(oenv, c, "id") is None
    finally:
        cr.execute("RESET ROLE")
    no_secret_in_statements(oenv, token)


def test_callback_for_an_inactive_source_runs_no_failing_statement(env, oenv, monkeypatch):
    """A source switched off (or neutralised): dci_receive answers 503 for
    it without raising, so no statement carrying the sender's body fails (a
    failing one is logged with its text) and nothing is processed."""
    c = code("cboff")
    oenv["spp.dci.data.source"].create(vals(env, c, dci_callback_token=remember(secret("Zq9-off-"))))
    oenv.cr.execute("UPDATE dci_data_source SET active = false WHERE code = %s", (c,))
    failed = []
    real = sql_mod.dci_errors

    import contextlib

    @contextlib.contextmanager
    def watching(cr):
        try:
            with real(cr):
                yield
        except Exception as e:
            failed.append(e)
            raise
    monkeypatch.setattr(sql_mod, "dci_errors", watching)
    body = json.dumps({"header": {}, "message": {"x": "Zq9-offbody-" + "y" * 100}}).encode()
    r = odoo_orm.dispatch(oenv, DCICallbackController, "/dci/callback/%s/on-search" % c, body,
                          [("Content-Type", "application/json")])
    assert r.status_code == 503 and r.json()["message"]["ack_status"] == "ERR", (r.status_code, r.data)
    assert not failed, failed
    oenv.cr.execute("SELECT count(*) FROM dci_inbox i JOIN dci_data_source d ON d.id = i.source_id WHERE d.code = %s",
                    (c,))
    assert oenv.cr.fetchone() == (0,)


def test_callback_chunked_body_read_bounded(env, oenv, monkeypatch):
    """A body without Content-Length (chunked) larger than the limit: 413
    after reading at most one byte over it (get_data() would have read it
    all into the worker's memory); under the limit it still goes through."""
    from io import BytesIO
    from odoo.addons.spp_dci_client_sql.services import callbacks
    monkeypatch.setattr(callbacks, "MAX_BODY", 4096)
    huge = BytesIO(b'{"header": {}, "message": {"x": "' + b"y" * 200000 + b'"}}')
    r = odoo_orm.dispatch(oenv, DCICallbackController, "/dci/callback/any_src/on-search", huge,
                          [("Content-Type", "application/json")])
    assert r.status_code == 413 and r.json()["message"]["ack_status"] == "NACK", (r.status_code, r.data)
    assert huge.tell() <= 4097, huge.tell()
    small = BytesIO(b'{"header": {}, "message": {}}')
    r = odoo_orm.dispatch(oenv, DCICallbackController, "/dci/callback/no_such_src/on-search", small,
                          [("Content-Type", "application/json")])
    assert r.status_code == 404, (r.status_code, r.data)         # read whole, then refused as unknown
    oenv.cr.execute("SELECT 1")


def test_migration_gives_sources_their_registrys_callback_key(env, oenv, tmp_path, caplog):
    """Upstream verified callbacks with its sender registries (spp.dci.crvs/
    dr/ibr.sender: a PEM public key or a JWKS URL per registry sender_id).
    The install hook puts that key on the source whose receiver_id is the
    sender (PEM preferred, else the JWKS URL), so dci_receive verifies the
    same callbacks: else they arrive unauthenticated and are never
    processed.  Idempotent; a source with a key of its own is left alone; a
    source left with neither token nor key is named in a WARNING."""
    import subprocess
    key = str(tmp_path / "reg.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True, capture_output=True)
    pub = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True,
                         text=True).stdout
    Source = oenv["spp.dci.data.source"]
    crvs, dr, own, none = code("rkcrvs"), code("rkdr"), code("rkown"), code("rknone")
    Source.create(none_vals(env, crvs, receiver_id="crvs.gov." + crvs))
    Source.create(none_vals(env, dr, registry_type=DR, receiver_id="dr.gov." + dr))
    Source.create(none_vals(env, own, receiver_id="crvs.gov." + own, dci_registry_jwks_url="https://own.example/j"))
    Source.create(none_vals(env, none, receiver_id="nobody." + none))
    oenv["spp.dci.crvs.sender"].create({"name": "C", "sender_id": "crvs.gov." + crvs, "public_key": pub,
                                        "jwks_url": "https://crvs.example/jwks.json", "algorithm": "ed25519"})
    oenv["spp.dci.crvs.sender"].create({"name": "O", "sender_id": "crvs.gov." + own, "public_key": pub})
    oenv["spp.dci.dr.sender"].create({"name": "D", "sender_id": "dr.gov." + dr,
                                      "jwks_url": "https://dr.example/.well-known/jwks.json"})
    oenv["spp.dci.ibr.sender"].create({"name": "I", "sender_id": "dr.gov." + dr, "public_key": pub})  # other kind
    for _round in range(2):
        with caplog.at_level("WARNING"):
            addon.post_init_hook(oenv)
        assert sql_row(oenv, crvs, "registry_public_key IS NOT NULL", "registry_jwks_url") == (True, None)
        assert sql_row(oenv, dr, "registry_public_key", "registry_jwks_url") == (
            None, "https://dr.example/.well-known/jwks.json")
        assert sql_row(oenv, own, "registry_public_key", "registry_jwks_url") == (None, "https://own.example/j")
        assert sql_row(oenv, none, "registry_public_key", "registry_jwks_url") == (None, None)
    assert "take callbacks with neither" in caplog.text and none in caplog.text


def test_reinstall_after_uninstall_takes_odoos_configuration(env, oenv):
    """Uninstalled, the addon no longer writes through: spp_dci_client alone
    edits the record (a new base URL, a new secret in its plain-text column).
    Installed again, the hook makes the extension's row what Odoo's form
    shows (not the stale row it left) and moves the new secret in."""
    c = code("reinst")
    rec = oenv["spp.dci.data.source"].create(vals(env, c, timeout=12))
    addon.uninstall_hook(oenv)
    new_secret = legacy("Zq9-reinst-")
    env.mock.add_client("legacy-" + c, new_secret)
    oenv.cr.execute("""UPDATE spp_dci_data_source SET base_url = %s, timeout = 7, oauth2_client_id = %s,
                              oauth2_client_secret = %s, notes = 'edited while uninstalled' WHERE id = %s""",
                    (env.mock.http_url + "/open", "legacy-" + c, new_secret, rec.id))
    addon.post_init_hook(oenv)
    assert sql_row(oenv, c, "base_url", "timeout_ms", "client_id", "notes", "client_secret_set") == (
        env.mock.http_url + "/open", 7000, "legacy-" + c, "edited while uninstalled", True)
    assert odoo_row(oenv, rec.id, "oauth2_client_secret") == (None,)
    oenv.cr.execute("SELECT dci_get_token(%s, true) IS NOT NULL", (c,))      # the new secret is the one in use
    assert oenv.cr.fetchone() == (True,)
    addon.post_init_hook(oenv)                                                 # again: nothing changes
    assert sql_row(oenv, c, "base_url", "client_secret_set") == (env.mock.http_url + "/open", True)


def test_callback_hostile_source_codes(env, oenv):
    """The source code in the URL is the sender's: a NUL (%00), a lone
    surrogate, a huge or upper-case one is answered 404 like an unknown
    source — no psycopg2 ValueError escaping as a 500 with a traceback, no
    statement run for it — and the transaction goes on."""
    body = json.dumps({"header": {}, "message": {}}).encode()
    for src in ("a\x00b", "x\udcff", "y" * 100000, "Crvs", "crvs;drop", "1abc"):
        oenv.cr.statements.clear()
        r = odoo_orm.dispatch(oenv, DCICallbackController, "/dci/callback/%s/on-search" % src, body,
                              [("Content-Type", "application/json")])
        assert r.status_code == 404 and r.json()["message"]["ack_status"] == "NACK", (src[:20], r.status_code)
        assert not oenv.cr.statements, oenv.cr.statements
    oenv.cr.execute("SELECT 1")


def test_ibr_enrollment_status_reads_spec_answers(env, oenv):
    """IBRService.search_beneficiary / get_enrollment_status (not replaced)
    parse the search answer through _parse_search_response, which iterated
    `data` as a list: on a spec answer (data.reg_records, what dci_search
    returns) every person came back "not enrolled".  Replaced: both shapes."""
    c = code("ibrenr")
    ibr = oenv["spp.dci.data.source"].create(vals(env, c, registry_type=IBR))
    svc = IBRService(ibr, oenv)
    status = svc.get_enrollment_status("UIN", "847951632")
    assert status["enrolled"] is True and status["programs"] == ["Child Grant"], status
    found = svc.search_beneficiary("UIN", "847951632")
    assert found[0]["raw_data"]["identifier"][0]["identifier_value"] == "847951632", found
    # upstream's own shape (data a list of records) still parses
    legacy_shape = {"message": {"search_response": [{"reference_id": "r1", "data": [{"name": "X",
                                                                                     "programs": ["P"]}]}]}}
    assert [(m["name"], m["programs"]) for m in svc._parse_search_response(legacy_shape)] == [("X", ["P"])]
    assert svc._parse_search_response({"message": {"search_response": [{"data": "junk"}, "junk"]}}) == []


def test_openspp_dci_server_answers_still_signed(env, oenv, tmp_path):
    """spp_dci_server signs OpenSPP's own DCI answers (search, async,
    callbacks) with env["spp.dci.signing.key"].get_active_key().get_signer()
    .sign(header, message); upstream's get_signer reads the private key from
    Odoo's row, which the addon keeps empty: every answer went out unsigned
    ("No private key available for signing", caught by the routers).  The
    signer now signs through dci_sign with the extension's key; the
    signature verifies with the key's public half and names its kid."""
    import subprocess
    key = str(tmp_path / "srv.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", key], check=True, capture_output=True)
    priv = open(key).read()
    remember(priv.strip().splitlines()[1])
    pub = subprocess.run(["openssl", "pkey", "-in", key, "-pubout"], check=True, capture_output=True,
                         text=True).stdout
    Key = oenv["spp.dci.signing.key"]
    kid = code("srvk")
    k = Key.create({"name": "S", "key_id": kid, "algorithm": "ed25519", "private_key": priv, "public_key": pub})
    e = user_error(k.get_signer)                                     # draft: upstream's refusal kept
    assert "activate it first" in str(e)
    k.action_activate()
    header = {"version": "1.0.0", "message_id": "m-1", "message_ts": "2026-12-01T00:00:00.000Z",
              "action": "on-search", "sender_id": "openspp.example.org", "receiver_id": "reg",
              "total_count": 1, "is_msg_encrypted": False}
    message = {"transaction_id": "t-1", "search_response": []}
    signature = Key.get_active_key().get_signer().sign(header, message)
    assert signature and kid in signature, signature
    oenv.cr.execute("SELECT dci_verify(%s, %s)", (psycopg2.extras.Json(
        {"signature": signature, "header": header, "message": message}), pub))
    assert oenv.cr.fetchone() == (True,)
    no_secret_in_statements(oenv, priv.strip().splitlines()[1])


def test_crvs_fallback_event_is_processed(env, oenv):
    """A CRVS notification for a source CRVSService will not take (not a
    Civil registry): the event is created directly and, as upstream's
    fallback does, processed."""
    from odoo.addons.spp_dci_client_sql.services import callbacks
    c = code("crvsfb")
    oenv["spp.dci.data.source"].create(vals(env, c, registry_type="ns:org:RegistryType:Social"))
    msg = {"event_type": "DEATH", "event_date": "2025-12-01", "identifiers": [{"type": "UIN", "value": "FB-" + c}]}
    kind, event_id = callbacks._process(oenv, c, "crvs", "notify", {"sender_id": "x"}, msg, None)
    assert kind == "crvs_event" and event_id
    ev = oenv["spp.dci.crvs.event"].browse(event_id)
    assert ev.event_type == "death" and ev.state == "processed", (ev.event_type, ev.state)
