"""The log scan that ends every session using the cluster (test/conftest.py,
the teardown of the session fixture `server_log_scan`): no secret, token or
key in any server log line written during the suite (README "Settings",
"Errors"; the cluster logs at debug1 and logs failing statements).  The scan
first does the things most likely to leak (token fetches, refused tokens, 401
renewals, decrypt failures, failing statements after a token was used), so it
means something even when the session ran a single test, and it proves with a
planted value that the scanner sees failing statements.  It needles for every
secret the session's tests used (support.util.SECRETS).  Formerly the test
test_zz_logscan.py, last by its file name."""
import base64, os, re
from contextlib import closing

import psycopg2

from .env import CLIENT_ID, CLIENT_SECRET
from .util import SECRETS, TOKEN_PATH, code, expect_code, request, secret


class LogScanFailure(AssertionError):
    """The log scan failed (a leak, or the scan itself could not run): pytest
    reports it as an error at teardown, conftest counts it as a failed test."""

TOKEN_RE = re.compile(r"tok-\d+-[0-9a-f]{8}")
PLANT = "tok-999999-deadbeef"


def _exercise(env):
    """Token fetches and failures of every kind; returns the tokens seen."""
    tokens = set()
    src = code("logscan")
    env.add_source(src, credential_location="basic")
    bad = code("logscanbad")
    wrong = secret()
    env.add_source(bad, client_secret=wrong)
    with closing(env.connect()) as conn:
        cur = conn.cursor()
        cur.execute("SET client_min_messages = warning")
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT dci_get_token(%s)", (src,))
        tokens.add(cur.fetchone()[0])
        env.mock.revoke()                                  # 401 -> renew -> resend
        assert request(cur, src)["status"] == 200
        cur.execute("SELECT dci_get_token(%s, true)", (src,))
        tokens.add(cur.fetchone()[0])
        expect_code(cur, "DC002", bad)                     # token endpoint refuses
        env.mock.fault(TOKEN_PATH, "token_error", count=1)
        expect_code(cur, "DC002", bad)
        env.mock.fault("/echo", "hang", count=1, delay=5)  # a failing statement, token cached
        cur.execute("SET statement_timeout = '300ms'")
        expect_code(cur, "57014", src, "POST", "/echo", {"note": "x"})
        cur.execute("SET statement_timeout = 0")
        expect_code(cur, "22023", src, "GET", "/echo", headers={"Authorization": "Bearer nope"})
        cur.execute("UPDATE dci_data_source SET base_url = base_url || '/moved' WHERE code = %s", (bad,))
        expect_code(cur, "DC001", bad)
        # the planted value: a failing statement carrying a token-like literal
        try:
            cur.execute("SELECT %s::integer", (PLANT,))
            raise AssertionError("the planted statement did not fail")
        except psycopg2.Error as e:
            assert e.pgcode == "22P02", e
    return tokens


def scan(env):
    """no secret, token or key in the server log; returns the number of lines
    and of needles looked for.  Raises AssertionError (or whatever the
    exercise raised) when it fails."""
    tokens = _exercise(env)
    log = env.cluster.log_text()
    lines = log.splitlines()

    # the scanner works: the planted failing statement is in the log and found
    planted = [l for l in lines if PLANT in l]
    assert planted and any("STATEMENT" in l for l in planted), "failing statements are not logged"
    assert any(TOKEN_RE.search(l) for l in planted)
    # and the log holds the suite's own errors (it is the right file, at the right level)
    assert any("DC002" in l or "could not obtain an access token" in l for l in lines), "no DC002 logged"
    assert any("dci_request" in l and "STATEMENT" in l for l in lines)

    needles = {s: "secret" for s in SECRETS | {CLIENT_SECRET, "static-bearer-token-1"}}
    needles.update({t: "token" for t in tokens if t})
    needles[base64.b64encode(("%s:%s" % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()] = "basic credentials"
    for name in ("dci_client.key",):
        p = os.path.join(env.cluster.datadir, name)
        if os.path.exists(p):
            with open(p, "rb") as f:
                raw = f.read()
            needles[raw.hex()] = "key (hex)"
            needles[base64.b64encode(raw).decode()] = "key (base64)"
            if len(raw) == 64:
                needles[raw.decode(errors="replace")] = "key (hex file)"

    leaks = []
    for i, line in enumerate(lines):
        if PLANT in line:
            line = line.replace(PLANT, "")
        for needle, what in needles.items():
            if needle and needle in line:
                leaks.append("%s at line %d: %s" % (what, i + 1, line[:300]))
        m = TOKEN_RE.search(line)
        if m:
            leaks.append("token-like %s at line %d: %s" % (m.group(0), i + 1, line[:300]))
    assert not leaks, "%d leaking log line(s):\n%s" % (len(leaks), "\n".join(leaks[:10]))
    return len(lines), len(needles)


def run(env):
    """scan(env) for the session fixture: any failure becomes LogScanFailure."""
    env.mock.reset()
    try:
        return scan(env)
    except Exception as e:
        raise LogScanFailure("server log scan: %s: %s" % (type(e).__name__, e)) from e
