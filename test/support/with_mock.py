#!/usr/bin/python3
"""`make installcheck` runs pg_regress through this: with_mock.py COMMAND [ARG...]

The regress SQL reads the bundled mock registry's addresses from MOCK_URL,
MOCK_HTTPS_URL, MOCK_TOKEN_URL and MOCK_CONTROL_URL.  When MOCK_URL is set,
the caller runs a mock already (`make test`'s session, test/support/
valgrind.sh) and COMMAND runs as it is.  Otherwise this makes the test
certificates in a temporary directory, starts the mock registry, runs COMMAND
with the four variables set, and then stops the mock and removes the
certificates, whatever COMMAND did: its exit status is this script's.  SIGINT
and SIGTERM stop the mock too, and the mock exits by itself when this process
dies in any other way (--parent-watch).
"""
import os, shutil, signal, subprocess, sys, tempfile


# SIGTERM unwinds (the finally below); installed before harness is used, which
# chains to the handler it finds after stopping the mock
def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


signal.signal(signal.SIGTERM, _sigterm)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import harness  # noqa: E402


def main(cmd):
    if not cmd:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    if os.environ.get("MOCK_URL"):
        return subprocess.call(cmd)
    certdir = tempfile.mkdtemp(prefix="dci_certs_")
    try:
        os.chmod(certdir, 0o755)
        harness.make_certs(certdir)
        with harness.MockRegistry().start(certdir) as mock:
            print("mock registry at %s (https %s, control %s) for this run"
                  % (mock.http_url, mock.https_url, mock.control_url), flush=True)
            env = dict(os.environ, MOCK_URL=mock.http_url, MOCK_HTTPS_URL=mock.https_url,
                       MOCK_TOKEN_URL=mock.token_url, MOCK_CONTROL_URL=mock.control_url)
            return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        shutil.rmtree(certdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
