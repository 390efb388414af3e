"""A minimal stand-in for Odoo, enough to run odoo/spp_dci_client_sql's Python
against a real PostgreSQL (no Odoo runs on this machine).  Nothing here is
used in production; it is what test/test_odoo_addon.py imports.

`install()` puts a package `odoo` into sys.modules:
- odoo.exceptions (UserError, ValidationError, AccessError), odoo._;
- odoo.fields: Char, Text, Selection, Integer, Float, Boolean, Date,
  Datetime, Json, Many2one, One2many (stored fields are real columns of a
  real table; computed ones are computed on read, with their inverse on
  assignment);
- odoo.api: model, model_create_multi, depends, constrains, onchange, and
  Environment (env[model], `model in env`, env.cr, env.uid, env.user,
  env(su=True));
- odoo.models: Model / AbstractModel / TransientModel with _name and
  _inherit composed the way Odoo's registry does (one class per model whose
  bases are every class of that model, the last loaded first: an override
  really overrides and super() reaches the upstream method); create (defaults,
  inverses, then constraints), write, unlink, browse, search (=, !=, in,
  not in, like, ilike, one dotted many2one step, active_test), ensure_one,
  exists, sudo, check_access (denials set by a test), constraints by
  @api.constrains, init() for _auto = False;
- odoo.http: Controller, route, request (a thread-local proxy), and
  dispatch() to run a route with a raw body and headers;
- odoo.tools.drop_view_if_exists, odoo.tests (TransactionCase, HttpCase,
  tagged: enough to import the addon's Odoo tests);
- the upstream modules the addon extends, written from reading OpenSPP2
  (spp_dci_client/models/data_source.py, services/client.py,
  services/errors.py; spp_dci_client_crvs/services/crvs_service.py;
  spp_dci_client_dr/services/dr_service.py; spp_dci_client_ibr/services/
  ibr_service.py; spp_dci/schemas/constants.py): their fields, constraints
  and the methods the addon replaces.  The upstream methods that would do
  HTTP with httpx raise UpstreamHTTPCalled instead: a test that reaches one
  fails, which proves the override took over.
and `odoo.addons` whose path is the repository's odoo/ directory, so that
`odoo.addons.spp_dci_client_sql` is the real addon.

Cursor: a real psycopg2 connection, not autocommit, REPEATABLE READ (as
Odoo's workers), with Odoo's savepoint() (ROLLBACK TO + RELEASE on an
exception), commit(), rollback(), copy_expert().
"""
import contextlib
import datetime
import enum
import json
import logging
import os
import re
import sys
import threading
import types
import uuid

import psycopg2
import psycopg2.extensions

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ADDONS = os.path.join(ROOT, "odoo")
_logger = logging.getLogger("odoo_orm")


class UpstreamHTTPCalled(AssertionError):
    """An upstream method that sends HTTP itself (httpx) was reached."""


# ---------------------------------------------------------------- exceptions
class UserError(Exception):
    def __init__(self, message=""):
        super().__init__(message)


class ValidationError(UserError):
    pass


class AccessError(UserError):
    pass


def _(text, *args):
    return text % args if args else text


# ---------------------------------------------------------------- cursor
class Cursor:
    def __init__(self, conn):
        conn.autocommit = False
        conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ)
        self._cnx = conn
        self._obj = conn.cursor()
        self.statements = []                  # every statement text this cursor ran (for the tests)

    def execute(self, query, params=None):
        self.statements.append(self._obj.mogrify(query, params).decode() if params is not None else query)
        return self._obj.execute(query, params)

    def fetchone(self):
        return self._obj.fetchone()

    def fetchall(self):
        return self._obj.fetchall()

    def dictfetchall(self):
        cols = [d[0] for d in self._obj.description]
        return [dict(zip(cols, r)) for r in self._obj.fetchall()]

    @property
    def rowcount(self):
        return self._obj.rowcount

    def copy_expert(self, sql, file, size=8192):
        self.statements.append(sql)
        return self._obj.copy_expert(sql, file, size)

    @contextlib.contextmanager
    def savepoint(self, flush=True):
        name = "sp_%s" % uuid.uuid4().hex
        self._obj.execute('SAVEPOINT "%s"' % name)
        try:
            yield
        except BaseException:
            self._obj.execute('ROLLBACK TO SAVEPOINT "%s"' % name)
            self._obj.execute('RELEASE SAVEPOINT "%s"' % name)
            raise
        else:
            self._obj.execute('RELEASE SAVEPOINT "%s"' % name)

    def commit(self):
        self._cnx.commit()

    def rollback(self):
        self._cnx.rollback()

    def close(self):
        self._cnx.close()


# ---------------------------------------------------------------- fields
class Field:
    sql_type = "text"
    relational = False

    def __init__(self, *args, string=None, compute=None, inverse=None, default=None, required=False,
                 readonly=False, groups=None, help=None, store=None, copy=True, **kw):
        self.args, self.kw = args, kw
        self.string, self.compute, self.inverse = string, compute, inverse
        self.default, self.required = default, required
        self.store = (compute is None) if store is None else store
        self.name = None

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, rec, owner=None):
        if rec is None:
            return self
        return rec._read_field(self)

    def __set__(self, rec, value):
        rec._assign_field(self, value)

    def to_python(self, env, value):
        return False if value is None else value

    def to_sql(self, value):
        return None if value is False else value

    def empty(self, env):
        return False


class Char(Field):
    pass


class Text(Field):
    pass


class Selection(Field):
    pass


class Integer(Field):
    sql_type = "integer"

    def to_python(self, env, value):
        return 0 if value is None else value


class Float(Field):
    sql_type = "double precision"

    def to_python(self, env, value):
        return 0.0 if value is None else value


class Boolean(Field):
    sql_type = "boolean"

    def to_python(self, env, value):
        return bool(value)

    def to_sql(self, value):
        return bool(value)


class Date(Field):
    sql_type = "date"


class Datetime(Field):
    sql_type = "timestamp without time zone"

    @staticmethod
    def now():
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)


class Json(Field):
    sql_type = "jsonb"

    def to_sql(self, value):
        return None if value is False or value is None else psycopg2.extras.Json(value)


class Many2one(Field):
    sql_type = "integer"
    relational = True

    def __init__(self, comodel_name=None, *args, **kw):
        super().__init__(*args, **kw)
        self.comodel_name = comodel_name

    def to_python(self, env, value):
        return env[self.comodel_name].browse([value] if value else [])

    def to_sql(self, value):
        if isinstance(value, BaseModel):
            return value.id or None
        return value or None

    def empty(self, env):
        return env[self.comodel_name].browse()


class One2many(Field):
    relational = True

    def __init__(self, comodel_name=None, inverse_name=None, *args, **kw):
        super().__init__(*args, **kw)
        self.comodel_name, self.inverse_name = comodel_name, inverse_name
        self.store = False
        self.compute = None

    def empty(self, env):
        return env[self.comodel_name].browse()


import psycopg2.extras  # noqa: E402  (Json above)


# ---------------------------------------------------------------- api
class api:  # noqa: N801
    @staticmethod
    def model(fn):
        return fn

    @staticmethod
    def model_create_multi(fn):
        return fn

    @staticmethod
    def depends(*names):
        def deco(fn):
            fn._depends = names
            return fn
        return deco

    @staticmethod
    def constrains(*names):
        def deco(fn):
            fn._constrains = names
            return fn
        return deco

    @staticmethod
    def onchange(*names):
        return lambda fn: fn


class Environment:
    def __init__(self, cr, registry, uid=2, context=None, su=False, cache=None):
        self.cr, self.registry, self.uid = cr, registry, uid
        self.context = dict(context or {})
        self.su = su
        self.cache = {} if cache is None else cache

    def __getitem__(self, model):
        return self.registry.models[model](self, ())

    def __contains__(self, model):
        return model in self.registry.models

    def __call__(self, cr=None, user=None, context=None, su=None):
        return Environment(cr or self.cr, self.registry, self.uid if user is None else user,
                           self.context if context is None else context, self.su if su is None else su,
                           self.cache if cr is None else None)

    @property
    def user(self):
        return self["res.users"].browse([self.uid])

    def invalidate(self):
        self.cache.clear()


api.Environment = Environment


# ---------------------------------------------------------------- models
MODEL_CLASSES = []


class MetaModel(type):
    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        if not attrs.get("_abstract_base") and not attrs.get("_registry_class"):
            MODEL_CLASSES.append(cls)


_DOMAIN_OPS = {"=": "=", "!=": "<>", "like": "LIKE", "ilike": "ILIKE", "=like": "LIKE", "=ilike": "ILIKE", ">": ">", "<": "<", ">=": ">=", "<=": "<="}


class BaseModel(metaclass=MetaModel):
    _abstract_base = True
    _name = None
    _inherit = None
    _auto = True
    _order = "id"
    _rec_name = "name"
    _description = None
    _fields = {}
    _table = None

    def __init__(self, env, ids=()):
        self.env = env
        self._ids = tuple(ids)

    # -- recordset
    @property
    def ids(self):
        return list(self._ids)

    @property
    def id(self):
        return self._ids[0] if len(self._ids) == 1 else False

    def __iter__(self):
        for i in self._ids:
            yield type(self)(self.env, (i,))

    def __len__(self):
        return len(self._ids)

    def __bool__(self):
        return bool(self._ids)

    def __eq__(self, other):
        return isinstance(other, BaseModel) and other._name == self._name and set(other._ids) == set(self._ids)

    def __hash__(self):
        return hash((self._name, self._ids))

    def __contains__(self, rec):
        return rec.id in self._ids

    def __repr__(self):
        return "%s%r" % (self._name, self._ids)

    def ensure_one(self):
        if len(self._ids) != 1:
            raise ValueError("Expected singleton: %r" % (self,))
        return self

    def browse(self, ids=()):
        if isinstance(ids, int):
            ids = [ids]
        return type(self)(self.env, ids or ())

    def sudo(self, flag=True):
        return type(self)(self.env(su=flag), self._ids)

    def with_context(self, *a, **kw):
        return self

    def check_access(self, operation):
        """Odoo 18+: AccessError unless the user may do `operation` on these
        records.  The stand-in has no ACLs: a test denies (model, operation)
        pairs in env.registry.denied; a superuser env passes."""
        if not self.env.su and (self._name, operation) in self.env.registry.denied:
            raise AccessError("You are not allowed to %s %s records." % (operation, self._name))

    def exists(self):
        if not self._ids:
            return self
        self.env.cr.execute("SELECT id FROM %s WHERE id = ANY(%%s)" % self._table, (list(self._ids),))
        found = {r[0] for r in self.env.cr.fetchall()}
        return self.browse([i for i in self._ids if i in found])

    # -- fields
    def _read_field(self, field):
        if not self._ids:
            return field.empty(self.env)
        self.ensure_one()
        key = (self._name, self.id, field.name)
        cache = self.env.cache
        if isinstance(field, One2many):
            return self.env[field.comodel_name].search([(field.inverse_name, "=", self.id)])
        if key not in cache:
            if field.store:
                self.env.cr.execute('SELECT "%s" FROM %s WHERE id = %%s' % (field.name, self._table), (self.id,))
                row = self.env.cr.fetchone()
                cache[key] = field.to_python(self.env, row[0] if row else None)
            elif field.compute:
                getattr(self._computing(), field.compute)()
                cache.setdefault(key, False)
            else:
                cache[key] = False
        value = cache[key]
        if isinstance(field, Many2one) and not isinstance(value, BaseModel):
            value = field.to_python(self.env, value)
        return value

    def _assign_field(self, field, value):
        if self.env.context.get("_computing"):
            self.env.cache[(self._name, self.id, field.name)] = value
            return
        if field.store:
            self.write({field.name: value})
        else:
            for rec in self:
                self.env.cache[(rec._name, rec.id, field.name)] = value
            if field.inverse:
                getattr(self, field.inverse)()

    def invalidate_recordset(self, fnames=None, flush=True):
        """Odoo 17+: drop these records' cached values (of fnames, or all)."""
        for key in [k for k in self.env.cache if k[0] == self._name and k[1] in self._ids
                    and (fnames is None or k[2] in fnames)]:
            del self.env.cache[key]

    def _computing(self):
        return type(self)(self.env(context=dict(self.env.context, _computing=True)), self._ids)

    # -- CRUD
    @api.model_create_multi
    def create(self, vals_list):
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        ids = []
        for vals in vals_list:
            vals = dict(vals)
            for name, field in self._fields.items():
                if field.store and name not in vals and field.default is not None:
                    vals[name] = field.default(self) if callable(field.default) else field.default
            stored = {k: v for k, v in vals.items() if k in self._fields and self._fields[k].store}
            for k, f in self._fields.items():
                if f.required and f.store and stored.get(k) in (None, False, ""):
                    raise ValidationError("Field %s of %s is required" % (k, self._name))
            cols = list(stored)
            if cols:
                self.env.cr.execute(
                    "INSERT INTO %s (%s) VALUES (%s) RETURNING id"
                    % (self._table, ", ".join('"%s"' % c for c in cols), ", ".join(["%s"] * len(cols))),
                    [self._fields[c].to_sql(stored[c]) for c in cols])
            else:
                self.env.cr.execute("INSERT INTO %s DEFAULT VALUES RETURNING id" % self._table)
            rid = self.env.cr.fetchone()[0]
            ids.append(rid)
            rec = self.browse([rid])
            for k, v in vals.items():
                f = self._fields.get(k)
                if f is not None and not f.store and f.inverse:
                    rec._assign_field(f, v)
            rec._validate_fields(list(vals))
        return self.browse(ids)

    def write(self, vals):
        stored = {k: v for k, v in vals.items() if k in self._fields and self._fields[k].store}
        if stored and self._ids:
            self.env.cr.execute(
                "UPDATE %s SET %s WHERE id = ANY(%%s)" % (self._table, ", ".join('"%s" = %%s' % c for c in stored)),
                [self._fields[c].to_sql(v) for c, v in stored.items()] + [list(self._ids)])
        self.env.invalidate()
        for k, v in vals.items():
            f = self._fields.get(k)
            if f is not None and not f.store and f.inverse:
                self._assign_field(f, v)
        self._validate_fields(list(vals))
        return True

    def unlink(self):
        if self._ids:
            self.env.cr.execute("DELETE FROM %s WHERE id = ANY(%%s)" % self._table, (list(self._ids),))
        self.env.invalidate()
        return True

    def _validate_fields(self, field_names):
        names = set(field_names)
        for attr in dir(type(self)):
            fn = getattr(type(self), attr, None)
            if callable(fn) and names & set(getattr(fn, "_constrains", ())):
                fn(self)

    # -- search
    def _where(self, domain):
        clauses, params = [], []
        mentions_active = False
        for term in domain:
            if term in ("&", "|", "!"):
                raise NotImplementedError("only implicit AND in the stand-in's domains")
            name, op, value = term
            mentions_active = mentions_active or name == "active"
            col = '"%s"' % name
            if "." in name:
                first, rest = name.split(".", 1)
                comodel = self.env[self._fields[first].comodel_name]
                sub_where, sub_params = comodel._where([(rest, op, value)])
                clauses.append('"%s" IN (SELECT id FROM %s WHERE %s)' % (first, comodel._table, sub_where))
                params += sub_params
                continue
            field = self._fields.get(name)
            if isinstance(value, BaseModel):
                value = value.id
            if op in ("in", "not in"):
                clauses.append(("%s = ANY(%%s)" if op == "in" else "NOT (%s = ANY(%%s))") % col)
                params.append(list(value))
            elif op in ("=", "!=") and (value is False or value is None) and not isinstance(field, Boolean):
                clauses.append("%s IS %sNULL" % (col, "" if op == "=" else "NOT "))
            else:
                if op in ("like", "ilike"):
                    value = "%%%s%%" % value
                clauses.append("%s %s %%s" % (col, _DOMAIN_OPS[op]))
                params.append(value)
        if "active" in self._fields and not mentions_active and self.env.context.get("active_test", True):
            clauses.append('"active" IS TRUE')
        return " AND ".join(clauses) or "TRUE", params

    def search(self, domain, limit=None, order=None, offset=0):
        where, params = self._where(domain)
        self.env.cr.execute("SELECT id FROM %s WHERE %s ORDER BY %s%s" % (
            self._table, where, order or self._order, " LIMIT %d" % limit if limit else ""), params)
        return self.browse([r[0] for r in self.env.cr.fetchall()])

    def search_count(self, domain):
        return len(self.search(domain))


class Model(BaseModel):
    _abstract_base = True


class AbstractModel(BaseModel):
    _abstract_base = True


class TransientModel(BaseModel):
    _abstract_base = True


class Registry:
    """Every model class loaded so far, composed per model name."""

    def __init__(self, cr):
        self.models = {}
        self.denied = set()                 # (model, operation) refused by check_access
        by_name = {}
        for cls in MODEL_CLASSES:
            inherit = cls.__dict__.get("_inherit")
            name = cls.__dict__.get("_name") or (inherit if isinstance(inherit, str) else (inherit or [None])[0])
            by_name.setdefault(name, []).append(cls)
        for name, classes in by_name.items():
            reg = MetaModel(name.replace(".", "_"), tuple(reversed(classes)),
                            {"_name": name, "_registry_class": True, "__module__": __name__})
            fields = {}
            for klass in reversed(reg.__mro__):
                for attr, value in vars(klass).items():
                    if isinstance(value, Field):
                        fields[attr] = value
            reg._fields = fields
            reg._table = name.replace(".", "_")
            self.models[name] = reg
        # the schema, as Odoo's module loading makes it: DDL only where something
        # is missing (an ALTER would lock the table for the whole transaction),
        # committed at once like an installation
        changed = False
        for name, reg in self.models.items():
            if not reg._auto:
                continue
            cr.execute("SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
                       "AND NOT attisdropped", (reg._table,))
            have = {r[0] for r in cr.fetchall()}
            if not have:
                cr.execute("CREATE TABLE IF NOT EXISTS %s (id serial PRIMARY KEY)" % reg._table)
                have, changed = {"id"}, True
            for fname, field in reg._fields.items():
                if field.store and fname not in have:
                    cr.execute('ALTER TABLE %s ADD COLUMN IF NOT EXISTS "%s" %s'
                               % (reg._table, fname, field.sql_type))
                    changed = True
        env = Environment(cr, self)
        for name, reg in self.models.items():
            init = getattr(reg, "init", None)
            if init is not None and not reg._auto:
                cr.execute("SELECT to_regclass(%s) IS NULL", (reg._table,))
                if cr.fetchone()[0]:
                    init(reg(env, ()))
                    changed = True
        if changed:
            cr.commit()

    def __contains__(self, name):
        return name in self.models


# ---------------------------------------------------------------- http
class Controller:
    pass


def route(route=None, **kw):
    routes = route if isinstance(route, (list, tuple)) else [route]

    def deco(fn):
        fn.routing = dict(kw, routes=routes)
        return fn
    return deco


class _Local(threading.local):
    request = None


_local = _Local()


class _RequestProxy:
    def __getattr__(self, name):
        if _local.request is None:
            raise RuntimeError("no request")
        return getattr(_local.request, name)


request = _RequestProxy()


class HTTPRequest:
    """body: bytes, or a file-like object (a chunked body: no content_length)."""

    def __init__(self, body, headers):
        import io
        self.stream = body if hasattr(body, "read") else io.BytesIO(body or b"")
        self.content_length = None if hasattr(body, "read") else len(body or b"")
        self.headers = _Headers(headers)

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        return self.stream.read()


class _Headers:
    def __init__(self, pairs):
        self._pairs = list(pairs)

    def items(self):
        return list(self._pairs)


class Response:
    def __init__(self, data, status):
        self.status_code = status
        self.data = json.dumps(data).encode()

    def json(self):
        return json.loads(self.data)


class Request:
    def __init__(self, env, body, headers):
        self._env = env
        self.httprequest = HTTPRequest(body, headers)

    @property
    def env(self):
        return self._env

    def make_json_response(self, data, headers=None, cookies=None, status=200):
        return Response(data, status)


def _route_regex(pattern):
    out = re.sub(r"<string:(\w+)>", r"(?P<\1>[^/]+)", pattern)
    out = re.sub(r"<path:(\w+)>", r"(?P<\1>.+)", out)
    return re.compile("^" + out + "$")


def dispatch(env, controller_cls, path, body, headers=(), method="POST"):
    """Run the controller method whose route matches path, as Odoo's HTTP
    stack would: the raw body and headers on request.httprequest."""
    for attr in dir(controller_cls):
        fn = getattr(controller_cls, attr)
        routing = getattr(fn, "routing", None)
        if not routing or method not in routing.get("methods", [method]):
            continue
        for pattern in routing["routes"]:
            m = _route_regex(pattern).match(path)
            if m:
                _local.request = Request(env, body, headers)
                try:
                    return fn(controller_cls(), **m.groupdict())
                finally:
                    _local.request = None
    return Response({"error": "not found"}, 404)


def drop_view_if_exists(cr, viewname):
    cr.execute("DROP VIEW IF EXISTS %s CASCADE" % viewname)


# ---------------------------------------------------------------- the package
def _module(name, **attrs):
    mod = sys.modules.get(name)
    if mod is None:
        mod = types.ModuleType(name)
        sys.modules[name] = mod
    for k, v in attrs.items():
        setattr(mod, k, v)
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(_module(parent), child, mod)
    return mod


def install():
    """Put the stand-in `odoo` (and the upstream modules) into sys.modules
    and import the addon; idempotent.  Returns the addon's package."""
    if "odoo" in sys.modules and getattr(sys.modules["odoo"], "_standin", False):
        return sys.modules["odoo.addons.spp_dci_client_sql"]
    fields_mod = _module("odoo.fields", Field=Field, Char=Char, Text=Text, Selection=Selection, Integer=Integer,
                         Float=Float, Boolean=Boolean, Date=Date, Datetime=Datetime, Json=Json,
                         Many2one=Many2one, One2many=One2many)
    models_mod = _module("odoo.models", Model=Model, AbstractModel=AbstractModel, TransientModel=TransientModel,
                         BaseModel=BaseModel)
    exc_mod = _module("odoo.exceptions", UserError=UserError, ValidationError=ValidationError,
                      AccessError=AccessError)
    api_mod = _module("odoo.api", model=api.model, model_create_multi=api.model_create_multi,
                      depends=api.depends, constrains=api.constrains, onchange=api.onchange,
                      Environment=Environment)
    http_mod = _module("odoo.http", Controller=Controller, route=route, request=request)
    tools_mod = _module("odoo.tools", drop_view_if_exists=drop_view_if_exists)
    _module("odoo", _standin=True, _=_, api=api_mod, fields=fields_mod, models=models_mod, exceptions=exc_mod,
            http=http_mod, tools=tools_mod, SUPERUSER_ID=1)
    _tests_modules()
    addons = _module("odoo.addons")
    addons.__path__ = [ADDONS]
    from . import odoo_upstream  # noqa: F401  (the upstream classes, registered as odoo.addons.*)
    import importlib
    return importlib.import_module("odoo.addons.spp_dci_client_sql")


def _tests_modules():
    import unittest

    class TransactionCase(unittest.TestCase):
        pass

    class HttpCase(TransactionCase):
        pass

    def tagged(*_tags):
        return lambda cls: cls

    common = _module("odoo.tests.common", TransactionCase=TransactionCase, HttpCase=HttpCase, tagged=tagged)
    _module("odoo.tests", TransactionCase=TransactionCase, HttpCase=HttpCase, tagged=tagged, common=common)


def environment(conn, uid=2):
    """An Environment over a new registry on a psycopg2 connection."""
    install()
    cr = Cursor(conn)
    registry = Registry(cr)
    return Environment(cr, registry, uid)


class StrEnum(str, enum.Enum):
    def __str__(self):
        return str(self.value)
