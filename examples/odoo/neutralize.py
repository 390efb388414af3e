"""Odoo database neutralisation for dci_client.

Odoo runs every installed module's `data/neutralize.sql` when a database is
neutralised (`odoo-bin neutralize -d DB`, or the "Neutralize" box when a
database is duplicated or restored from the database manager).  Ship
`data/neutralize.sql` (beside this file) in the module; nothing else is
needed.  `neutralize(cr)` runs the same statements from Python, for scripts
that copy databases outside Odoo (`CREATE DATABASE staging TEMPLATE prod`,
then connect to staging and call it).

After it, in the copy: every source is inactive (`DC001` on any call), in
state `draft`, with no client secret, bearer token or TLS client key, and
every signing key is revoked and without its private key.
"""
import os

NEUTRALIZE_SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "neutralize.sql")


def neutralize_sql():
    with open(NEUTRALIZE_SQL) as f:
        return f.read()


def neutralize(cr):
    """Run data/neutralize.sql on a cursor of the copy (the caller commits)."""
    cr.execute(neutralize_sql())
