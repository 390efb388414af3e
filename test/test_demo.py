#!/usr/bin/python3
"""`make run` (test/support/run_demo.py) works: its own cluster and mock registry, one
token request, one connection, a search answered and a healthy connection test."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def test_make_run_demo(env):
    p = subprocess.run([sys.executable, os.path.join(HERE, "support", "run_demo.py")],
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = p.stdout
    assert "1 token request(s), 1 connection(s)" in out, out
    assert "succ | 1 |" in out, out
    for step in ("config | True", "auth | True", "reachable | True", "authorized | True"):
        assert step in out, out
    assert "crvs | active" in out, out
