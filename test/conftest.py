"""pytest's fixtures and hooks for the whole suite (`make test`).

Fixtures, for the session:
  certdir          the test certificates (support.harness.make_certs)
  mock             the mock registry (support/mock_registry.py, a child process)
  cluster          a throwaway cluster, library preloaded, the extension created
  env              support.env.Env over the three: what every `test_x(env)` takes
  server_log_scan  requested by `env`; its teardown, at the end of the session,
                   scans the cluster's log for every secret the session used
                   (support/logscan.py) and fails the run when it finds one
Before each test that uses the mock (through `env` or `mock`), the mock is
reset.

Order: pg_regress (test_regress.py) first, then the unit binaries and fuzz
targets (test_unit_fuzz.py), then the integration tests by file name (see
pytest_collection_modifyitems).  No test depends on that order or on another
test having run: each passes alone, and the suite passes reversed and shuffled.

The last line printed is "N passed, N failed" (", N skipped" when some were):
each regress file, unit binary, fuzz target and integration test counts one,
the log scan counts one, a file that fails to import counts one failed.
"""
import os
import shutil
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
pytest.register_assert_rewrite("support")

from support import harness, logscan  # noqa: E402
from support.env import Env, start_cluster  # noqa: E402


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def certdir():
    path = tempfile.mkdtemp(prefix="dci_certs_")
    os.chmod(path, 0o755)
    harness.make_certs(path)
    yield path
    if not os.environ.get("DCI_KEEP_TMP"):
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def mock(certdir):
    m = harness.MockRegistry().start(certdir)
    yield m
    m.stop()


@pytest.fixture(scope="session")
def cluster():
    c = start_cluster()
    yield c
    c.cleanup()


@pytest.fixture(scope="session")
def _env(certdir, mock, cluster):
    e = Env(certdir, mock, cluster)
    yield e
    e.close()


@pytest.fixture(scope="session")
def server_log_scan(_env):
    """Nothing at setup; at the end of the session (before the cluster and
    the mock stop) the log scan, which raises LogScanFailure on a finding."""
    yield
    lines, needles = logscan.run(_env)
    _LOG_SCAN["outcome"] = "passed"
    _LOG_SCAN["detail"] = "%d lines, %d secrets, tokens and keys looked for" % (lines, needles)


@pytest.fixture(scope="session")
def env(_env, server_log_scan):
    return _env


@pytest.fixture(autouse=True)
def _reset_mock(request):
    if "mock" in request.fixturenames:
        request.getfixturevalue("mock").reset()


# ---------------------------------------------------------------- order
def _group(item):
    name = os.path.basename(str(item.fspath))
    return {"test_regress.py": 0, "test_unit_fuzz.py": 1}.get(name, 2)


def pytest_collection_modifyitems(session, config, items):
    # the quick, fundamental checks first (pg_regress, then the PostgreSQL-free
    # code), so that a broken build shows at once; for readability only, nothing
    # needs it.  A stable sort keeps file and definition order within a group.
    items.sort(key=_group)


# ---------------------------------------------------------------- counting
_OUTCOME = {}            # nodeid -> "passed" | "failed" | "skipped"
_LOG_SCAN = {}           # "outcome", "detail": set by the log scan's teardown
_COLLECT_ERRORS = []     # nodeids of files that failed to import
_NOTES = []              # (nodeid, text): what the unit and fuzz tests measured
_SESSION = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if call.when == "teardown" and call.excinfo is not None \
            and call.excinfo.errisinstance(logscan.LogScanFailure):
        rep.dci_log_scan = True          # the scan's finding, not this test's
        _LOG_SCAN["outcome"] = "failed"
        _LOG_SCAN["detail"] = str(call.excinfo.value).splitlines()[0][:200]


def pytest_runtest_logreport(report):
    if report.failed and not getattr(report, "dci_log_scan", False):
        _OUTCOME[report.nodeid] = "failed"
    elif report.when == "call" and report.passed:
        _OUTCOME.setdefault(report.nodeid, "passed")
    elif report.skipped:
        _OUTCOME.setdefault(report.nodeid, "skipped")
    for name, value in report.user_properties:
        if name == "note" and report.when == "call":
            _NOTES.append((report.nodeid, value))


def pytest_collectreport(report):
    if report.failed:
        _COLLECT_ERRORS.append(report.nodeid)


def pytest_sessionstart(session):
    _SESSION["ran"] = not session.config.option.collectonly


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if _NOTES:
        tr.section("unit and fuzz")
        for nodeid, text in _NOTES:
            tr.write_line("%s: %s" % (nodeid.split("::")[-1], text))
    if _LOG_SCAN:
        tr.section("server log scan")
        tr.write_line("%s: %s" % (_LOG_SCAN["outcome"], _LOG_SCAN["detail"]))


def _counts():
    values = list(_OUTCOME.values())
    passed = values.count("passed") + (_LOG_SCAN.get("outcome") == "passed")
    failed = values.count("failed") + (_LOG_SCAN.get("outcome") == "failed") + len(_COLLECT_ERRORS)
    return passed, failed, values.count("skipped")


def pytest_unconfigure(config):
    # after pytest's own summary: this is the last line of the output
    if not _SESSION.get("ran"):
        return
    passed, failed, skipped = _counts()
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    sys.stdout.flush()
    sys.stderr.flush()
    print(line, flush=True)
