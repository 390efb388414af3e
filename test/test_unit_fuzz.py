"""The PostgreSQL-free code (no server needed): each unit binary of `make
unit` (test/unit/NAME_test.c) and, when clang is there, each libFuzzer target
of `make fuzz` (test/fuzz/NAME_fuzz.c, a bounded run of 10 s) is one test.
The Makefile builds and runs them; each prints "NAME: N passed, N failed"."""
import glob
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ_SECONDS = 10


def _names(pattern, suffix):
    return sorted(os.path.basename(p)[:-len(suffix)] for p in glob.glob(os.path.join(ROOT, pattern)))


UNIT = _names("test/unit/*_test.c", "_test.c")
FUZZ = _names("test/fuzz/*_fuzz.c", "_fuzz.c")


def _make(*args):
    return subprocess.run(["make", "-s", "-C", ROOT] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.parametrize("name", UNIT)
def test_unit(name, record_property):
    p = _make("unit", "UNIT_TESTS=test/unit/%s_test" % name)
    counts = re.findall(r"^(\w+): (\d+) passed, (\d+) failed$", p.stdout, re.M)
    assert p.returncode == 0 and len(counts) == 1 and counts[0][2] == "0", \
        "make unit (%s): rc %d\n%s" % (name, p.returncode, p.stdout[-3000:])
    record_property("note", "%s checks passed" % counts[0][1])


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not installed")
@pytest.mark.parametrize("name", FUZZ)
def test_fuzz(name, record_property):
    p = _make("fuzz", "FUZZ_SECONDS=%d" % FUZZ_SECONDS, "FUZZ_TARGETS=test/fuzz/%s_fuzz" % name)
    assert p.returncode == 0 and re.search(r"^%s fuzz: 1 passed, 0 failed$" % name, p.stdout, re.M), \
        "make fuzz (%s): rc %d\n%s" % (name, p.returncode, p.stdout[-3000:])
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", p.stdout)
    record_property("note", "%s executions in %d s" % (execs[-1] if execs else "?", FUZZ_SECONDS))
