"""pg_regress: each file of sql/ checked against expected/, one test per file
(the Makefile's REGRESS, in its order).  The suite runs once, through PGXS's
`make installcheck` pointed at the session's cluster and mock registry (the
SQL reads the mock's addresses from MOCK_URL, MOCK_HTTPS_URL, MOCK_TOKEN_URL
and MOCK_CONTROL_URL); every file depends on sources.sql, which creates the
extension and the helpers, so the files cannot run one by one."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _regress_files():
    with open(os.path.join(ROOT, "Makefile")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^REGRESS\s*=(.*)$", text, re.M)
    return m.group(1).split()


REGRESS = _regress_files()
RESULT_RE = re.compile(r"^(?:ok|not ok)?\s*\d*\s*[-+]?\s*(?:test\s+)?(\w+)\s+\.\.\.\s+(ok|FAILED|failed)")


@pytest.fixture(scope="module")
def regress_run(env):
    env.mock.reset()
    e = dict(os.environ, PGHOST=env.cluster.host, PGPORT=str(env.cluster.port), PGUSER="postgres",
             MOCK_URL=env.mock.http_url, MOCK_HTTPS_URL=env.mock.https_url,
             MOCK_TOKEN_URL=env.mock.token_url, MOCK_CONTROL_URL=env.mock.control_url)
    p = subprocess.run(["make", "-s", "-C", ROOT, "installcheck"], env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for line in p.stdout.splitlines():
        m = RESULT_RE.match(line.strip())
        if m:
            results[m.group(1)] = m.group(2)
    diffs = ""
    path = os.path.join(ROOT, "regression.diffs")
    if p.returncode != 0 and os.path.exists(path):
        with open(path, errors="replace") as f:
            diffs = f.read()
    return p.returncode, results, p.stdout, diffs


def _diff_of(diffs, name):
    """The part of regression.diffs about expected/NAME.out."""
    parts = re.split(r"(?m)^(?=diff )", diffs)
    mine = [d for d in parts if re.search(r"/%s\.out\b" % re.escape(name), d.split("\n", 1)[0])]
    return ("".join(mine) or diffs)[-6000:]


@pytest.mark.parametrize("name", REGRESS)
def test_regress(regress_run, name):
    rc, results, out, diffs = regress_run
    assert name in results, "pg_regress reported nothing for %s (make installcheck: rc %d):\n%s" % (
        name, rc, out[-3000:])
    assert results[name] == "ok", "%s: results/%s.out differs from expected/%s.out:\n%s" % (
        name, name, name, _diff_of(diffs, name))
    assert rc == 0 or any(s != "ok" for s in results.values()), \
        "every file passed but make installcheck failed (rc %d):\n%s" % (rc, out[-3000:])
