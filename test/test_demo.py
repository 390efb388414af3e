#!/usr/bin/python3
"""`make run` (test/support/run_demo.py) works: its own cluster and mock registry, one
token request per source, connections reused, a search answered, 1,000 ids verified in
bulk, an asynchronous search completed by its callback, a disability registry asked and
a healthy connection test."""
import re
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_make_run_demo(env):
    p = subprocess.run([sys.executable, os.path.join(HERE, "support", "run_demo.py")],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = p.stdout
    m = re.search(r"mock registry saw: (\d+) token request\(s\), (\d+) connection\(s\)", out)
    assert m and int(m.group(1)) == 2, out                 # crvs and dr, one each
    assert 1 <= int(m.group(2)) <= 5, out                  # the batch's 4 in flight, then reused
    assert "succ | 1 |" in out, out
    assert "1000 | 1000 | 1000" in out, out
    assert "search | completed | 1 | on-search | token" in out, out
    assert "disabled_status\n   yes" in out, out
    for step in ("config | True", "auth | True", "reachable | True", "authorized | True"):
        assert step in out, out
    assert "crvs | active" in out, out
