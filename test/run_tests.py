#!/usr/bin/python3
"""The whole test suite: pg_regress (sql/ -> expected/) against a throwaway
cluster, then the Python integration tests (test/test_*.py).  Ends with the
line "N passed, N failed"; exits non-zero on any failure.

    run_tests.py [-k substring] [--no-regress]
"""
import importlib, os, re, shutil, subprocess, sys, time, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from support import env as envmod  # noqa: E402

passed = failed = 0
failures = []


def record(name, ok, msg=""):
    global passed, failed
    if ok:
        passed += 1
        print("ok     %s" % name, flush=True)
    else:
        failed += 1
        failures.append(name)
        print("FAIL   %s\n%s" % (name, msg), flush=True)


def run_regress(env):
    """pg_regress through PGXS's installcheck, pointed at the sandbox cluster."""
    e = dict(os.environ, PGHOST=env.cluster.host, PGPORT=str(env.cluster.port), PGUSER="postgres",
             MOCK_URL=env.mock.http_url, MOCK_HTTPS_URL=env.mock.https_url,
             MOCK_TOKEN_URL=env.mock.token_url, MOCK_CONTROL_URL=env.mock.control_url)
    p = subprocess.run(["make", "-s", "-C", ROOT, "installcheck"], env=e,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = 0
    for line in p.stdout.splitlines():
        m = re.match(r"^(?:ok|not ok)?\s*\d*\s*[-+]?\s*(?:test\s+)?(\w+)\s+\.\.\.\s+(ok|FAILED|failed)", line.strip())
        if m:
            seen += 1
            record("regress/" + m.group(1), m.group(2) == "ok")
    if p.returncode != 0 or seen == 0:
        diffs = os.path.join(ROOT, "regression.diffs")
        text = open(diffs).read()[-6000:] if os.path.exists(diffs) else p.stdout[-3000:]
        record("regress/(run)", False, text)


def run_unit_and_fuzz():
    """PostgreSQL-free code: `make unit` (one binary per test/unit/*_test.c)
    and, when clang is there, a bounded `make fuzz` (10 s per target)."""
    p = subprocess.run(["make", "-s", "-C", ROOT, "unit"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    seen = 0
    for line in p.stdout.splitlines():
        m = re.match(r"^(\w+): (\d+) passed, (\d+) failed$", line.strip())
        if m:
            seen += 1
            print("       %s" % line.strip())
            record("unit/" + m.group(1), m.group(3) == "0", p.stdout[-3000:])
    if p.returncode != 0 and seen == 0:
        record("unit/(build)", False, p.stdout[-3000:])
    if shutil.which("clang") is None:
        print("       (fuzz skipped: clang is not installed)")
        return
    p = subprocess.run(["make", "-s", "-C", ROOT, "fuzz", "FUZZ_SECONDS=10"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", p.stdout)
    results = re.findall(r"^(\w+) fuzz: (\d+) passed, (\d+) failed$", p.stdout, re.M)
    for (name, _, bad), n in zip(results, execs + ["?"] * len(results)):
        print("       fuzz %s: %s executions in 10 s" % (name, n))
        record("fuzz/" + name, bad == "0", p.stdout[-3000:])
    if not results:
        record("fuzz/(build)", False, p.stdout[-3000:])


def main(argv):
    pattern = None
    if "-k" in argv:
        pattern = argv[argv.index("-k") + 1]
    started = time.time()
    env = envmod.Env()
    try:
        if "--no-regress" not in argv and pattern is None:
            run_regress(env)
        if pattern is None or pattern in ("unit", "fuzz"):
            run_unit_and_fuzz()
        files = sorted(f for f in os.listdir(HERE)
                       if f.startswith("test_") and f.endswith(".py"))
        for f in files:
            mod = importlib.import_module(f[:-3])
            tests = [(n, getattr(mod, n)) for n in mod.__dict__ if n.startswith("test_") and callable(getattr(mod, n))]
            for name, fn in tests:
                full = "%s/%s" % (f[:-3], name)
                if pattern and pattern not in full:
                    continue
                env.mock.reset()
                t0 = time.time()
                try:
                    fn(env)
                    record(full, True)
                except Exception:
                    record(full, False, traceback.format_exc())
                if time.time() - t0 > 20:
                    print("       (%s took %.0f s)" % (full, time.time() - t0))
    finally:
        env.close()
    print("\n%.0f s" % (time.time() - started))
    if failures:
        print("failed: " + ", ".join(failures))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
