#!/usr/bin/python3
"""Every example in README.md is exercised (issue 7): each ```sql block runs,
in order, in a fresh database against the mock registry (the example hosts and
secret mapped onto the mock's), and each ```python block is found verbatim in
a test that runs it.  A broken or untested example fails the suite."""
import os
import re

from support.env import CLIENT_ID, CLIENT_SECRET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# blocks that other tests run verbatim, with the test that does
RUN_ELSEWHERE = {
    "CREATE ROLE odoo_dci": "test_hardening_privileges.py",
}


def _blocks(lang, skip_section=None):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    if skip_section:
        # a section whose blocks a test extracts and runs by itself
        start = text.index(skip_section)
        end = text.find("\n## ", start + len(skip_section))
        text = text[:start] + (text[end:] if end > 0 else "")
    return [m.group(1) for m in re.finditer(r"(?ms)^```%s\n(.*?)^```" % lang, text)]


def _elsewhere(block):
    for marker, test in RUN_ELSEWHERE.items():
        if marker in block:
            with open(os.path.join(HERE, test)) as f:
                assert "README" in f.read(), "%s no longer runs the README block" % test
            return True
    return False


def _mapped(env, sql):
    # the README's example registry is the mock here
    for fake, real in (("https://api.crvs.gov.example/v1", env.mock.http_url),
                       ("https://auth.crvs.gov.example/oauth2/client/token", env.mock.token_url),
                       ("https://api.dr.gov.example/v1", env.mock.http_url),
                       ("https://auth.dr.gov.example/oauth2/client/token", env.mock.token_url),
                       ("'openspp-client', 'the-secret'", "'%s', '%s'" % (CLIENT_ID, CLIENT_SECRET))):
        sql = sql.replace(fake, real)
    return sql


def test_sql_examples_run(env):
    blocks = [b for b in _blocks("sql") if not _elsewhere(b)]
    assert len(blocks) >= 6, "README lost its SQL examples (%d left)" % len(blocks)
    admin = env.cluster.connect()
    admin.autocommit = True
    admin.cursor().execute("DROP DATABASE IF EXISTS readme_examples")
    admin.cursor().execute("CREATE DATABASE readme_examples")
    try:
        conn = env.cluster.connect(dbname="readme_examples")
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION dci_client CASCADE")
        for i, block in enumerate(blocks):
            sql = _mapped(env, block)
            try:
                cur.execute(sql)
            except Exception as e:
                raise AssertionError("README SQL example %d fails: %s\n%s" % (i + 1, e, block))
        # the examples did what they say: a source registered, tested and used
        cur.execute("SELECT state, client_secret_set FROM dci_data_source WHERE code = 'crvs'")
        assert cur.fetchone() == ("active", True)
        cur.execute("SELECT calls > 0 FROM dci_source_stats WHERE source = 'crvs'")
        assert cur.fetchone()[0] is True
        conn.close()
    finally:
        admin.cursor().execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = 'readme_examples' AND pid <> pg_backend_pid()")
        admin.cursor().execute("DROP DATABASE IF EXISTS readme_examples WITH (FORCE)")
        admin.close()


def test_python_examples_are_run_by_tests(env):
    sources = ""
    for name in os.listdir(HERE):
        if name.startswith("test_") and name.endswith(".py") and name != os.path.basename(__file__):
            with open(os.path.join(HERE, name)) as f:
                sources += f.read()
    odoo_section = "## Using it from Odoo (OpenSPP)"
    with open(os.path.join(HERE, "test_odoo.py")) as f:
        assert odoo_section in f.read(), "test_odoo.py no longer runs the README's Odoo section"
    blocks = _blocks("python", skip_section=odoo_section)
    assert blocks, "README lost its Python examples"
    missing = [b for b in blocks if b.strip() not in sources]
    assert not missing, "README Python examples no test runs:\n%s" % "\n---\n".join(missing)
