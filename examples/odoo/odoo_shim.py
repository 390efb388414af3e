"""Just enough of Odoo for the examples to import and run without Odoo.

Used by test/test_odoo.py (and by linters); inside Odoo the real `odoo`
package is imported instead.  Nothing here is needed in production.

- `UserError`, `ValidationError`;
- `_()` (no translation);
- `api.model`, `api.model_create_multi`, `api.depends`, `api.constrains`:
  decorators that change nothing;
- `fields.*`: placeholders that remember their arguments (an instance
  attribute of the same name holds the value);
- `models.Model` / `models.AbstractModel`: one record per instance, holding
  its values as attributes, with `env`, `ensure_one()`, `sudo()`, `write()`,
  `create()` and iteration over itself — the calls the examples make.
"""


class UserError(Exception):
    """odoo.exceptions.UserError: shown to the user as a dialog."""

    def __init__(self, message):
        super().__init__(message)
        self.args = (message,)


class ValidationError(UserError):
    pass


def _(text, *args):
    return text % args if args else text


class api:  # noqa: N801 - mirrors `from odoo import api`
    @staticmethod
    def model(fn):
        return fn

    @staticmethod
    def model_create_multi(fn):
        return fn

    @staticmethod
    def depends(*_names):
        return lambda fn: fn

    @staticmethod
    def constrains(*_names):
        return lambda fn: fn


class _Field:
    def __init__(self, *args, **kw):
        self.args, self.kw = args, kw

    # an unset value reads as the default, or False like Odoo
    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        default = self.kw.get("default", False)
        return default() if callable(default) else default


class fields:  # noqa: N801 - mirrors `from odoo import fields`
    Char = Text = Selection = Integer = Boolean = Datetime = Many2one = Float = type(
        "Field", (_Field,), {})


class _Model:
    _name = None
    _inherit = None

    def __init__(self, env=None, **values):
        self.env = env
        self.id = values.pop("id", None)
        for k, v in values.items():
            setattr(self, k, v)

    def __iter__(self):
        yield self

    def __len__(self):
        return 1

    def ensure_one(self):
        return self

    def sudo(self, *_a):
        return self

    def with_context(self, *_a, **_kw):
        return self

    def write(self, vals):
        for k, v in vals.items():
            setattr(self, k, v)
        return True

    def unlink(self):
        return True

    def create(self, vals_list):
        if isinstance(vals_list, dict):
            vals_list = [vals_list]
        recs = [type(self)(self.env, **vals) for vals in vals_list]
        return recs[0] if len(recs) == 1 else recs


class models:  # noqa: N801 - mirrors `from odoo import models`
    Model = AbstractModel = TransientModel = _Model
