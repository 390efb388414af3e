"""Hardening: SSRF (README "Settings", allowed_hosts, issue 5).  With allowed_hosts set,
nothing outside it is contacted: not through names that resolve to loopback
(libcurl resolves `localhost` and `*.localhost` to 127.0.0.1 itself), not
through other spellings of an address (decimal, hex, short, IPv4-mapped
IPv6), not link-local 169.254.169.254 or private 10.0.0.1 (refused by the
name check: no packet leaves), not through the token URL, not through the
proxy.

Only 127.0.0.0/8 and ::1 ever receive traffic here.  The non-loopback cases
must be refused before connecting; should the check ever break, the tiny
connect_timeout_ms and max_retries = 0 make the test fail fast instead of
hanging, and every case asserts DC001 within a fraction of a second."""
import time
from contextlib import closing

from support.util import code, expect_code, request, setting

OPEN = "/open/echo"


def _src(env, base_url, **cols):
    s = code("ssrf")
    row = dict(auth_type="none", auth_url=None, client_id=None, client_secret=None, base_url=base_url)
    row.update(cols)
    env.add_source(s, **row)
    return s


def _session(env, allowed):
    conn = env.connect()
    cur = conn.cursor()
    setting(cur, "dci_client.connect_timeout_ms", 200)
    setting(cur, "dci_client.max_retries", 0)
    setting(cur, "dci_client.timeout_ms", 2000)
    cur.execute("SET dci_client.allowed_hosts = %s", (allowed,))
    return conn, cur


def _refused(env, cur, src, path=OPEN, contains="allowed_hosts"):
    e, took = expect_code(cur, "DC001", src, "GET", path, contains=contains)
    assert took < 0.5, "refusal took %.2f s: did it try to connect?" % took
    return e


def _no_contact(env):
    s = env.mock.stats()
    assert s["connections"] == {} and s["requests"] == {} and s["token_requests"] == 0, s


def test_names_resolving_to_loopback(env):
    port = env.mock.ports["http"]
    api = _src(env, "http://api.localhost:%d" % port)
    bare = _src(env, "http://localhost:%d" % port)
    vm = _src(env, "http://vm:%d" % port)                   # /etc/hosts: 127.0.0.1 vm
    env.mock.reset()
    conn, cur = _session(env, "*.localhost")
    with closing(conn):
        # the name matches the pattern, the address it resolves to does not: refused at connect
        e = _refused(env, cur, api)
        assert "address 127.0.0.1" in str(e) or "address ::1" in str(e), str(e)
        # "*.localhost" does not match "localhost", nor an unrelated name
        _refused(env, cur, bare)
        _refused(env, cur, vm)
        _no_contact(env)
        # listing the loopback range lets the pattern through: the control case
        cur.execute("SET dci_client.allowed_hosts = '*.localhost, 127.0.0.0/8'")
        assert request(cur, api, "GET", OPEN)["status"] == 200
        _refused(env, cur, vm)                              # names are still checked
    assert env.mock.stats()["connections"] == {"http": 1}


def test_address_spellings_refused(env):
    port = env.mock.ports["http"]
    spellings = [
        "127.0.0.1", "2130706433", "0x7f.1", "0177.0.0.1", "127.1", "[::1]", "[::ffff:127.0.0.1]",
        "[0:0:0:0:0:ffff:7f00:1]", "localhost",
        # not loopback: must never be contacted
        "169.254.169.254", "2852039166", "0251.0376.0251.0376", "[::ffff:169.254.169.254]",
        "10.0.0.1", "10.1", "192.168.0.1", "172.16.0.1", "[fd00::1]", "[fe80::1]", "0.0.0.0",
    ]
    sources = {h: _src(env, "http://%s:%d" % (h, port)) for h in spellings}
    env.mock.reset()
    conn, cur = _session(env, "*.registry.invalid, registry.invalid")
    with closing(conn):
        t0 = time.monotonic()
        for h, s in sources.items():
            _refused(env, cur, s)
        assert time.monotonic() - t0 < 3
    _no_contact(env)


def test_link_local_and_private_even_with_names_listed(env):
    """Cloud metadata and private space: refused by the name check (an IP
    literal must be inside a listed range), however generous the name list."""
    port = env.mock.ports["http"]
    meta = _src(env, "http://169.254.169.254")
    meta_port = _src(env, "http://169.254.169.254:%d" % port)
    private = _src(env, "http://10.0.0.1:%d" % port)
    env.mock.reset()
    conn, cur = _session(env, "*.localhost, localhost, 127.0.0.0/8, ::1")
    with closing(conn):
        for s in (meta, meta_port, private):
            _refused(env, cur, s, "/latest/meta-data/")
        # a neighbouring range listed does not open the others
        cur.execute("SET dci_client.allowed_hosts = '10.0.0.2/32, 169.254.0.0/24'")
        _refused(env, cur, private)
        _refused(env, cur, meta)
    _no_contact(env)


def test_cidr_ranges(env):
    port = env.mock.ports["http"]
    one = _src(env, "http://127.0.0.1:%d" % port)
    env.mock.reset()
    conn, cur = _session(env, "127.0.0.2/32")
    with closing(conn):
        _refused(env, cur, one)
        cur.execute("SET dci_client.allowed_hosts = '10.0.0.0/8, 192.168.0.0/16'")
        _refused(env, cur, one)
        _no_contact(env)
        for ok in ("127.0.0.0/30", "127.0.0.0/8", "127.0.0.1"):
            cur.execute("SET dci_client.allowed_hosts = %s", (ok,))
            assert request(cur, one, "GET", OPEN)["status"] == 200, ok
        # a malformed range is refused when set, and the previous setting stays
        for bad in ("127.0.0.1/33", "10.0.0.0/x", "*.", "a*b.example"):
            try:
                cur.execute("SET dci_client.allowed_hosts = %s", (bad,))
                raise AssertionError("allowed_hosts accepted %r" % bad)
            except Exception as e:
                assert getattr(e, "pgcode", None) == "22023", (bad, e)
        cur.execute("SHOW dci_client.allowed_hosts")
        assert cur.fetchone()[0] == "127.0.0.1"


def test_ipv6_literal(env):
    port = env.mock.ports["http"]
    v6 = _src(env, "http://[::1]:%d" % port)
    env.mock.reset()
    conn, cur = _session(env, "127.0.0.0/8, localhost")
    with closing(conn):
        _refused(env, cur, v6)
        # listed: it passes both checks and connects to ::1, where the mock
        # does not listen (it binds 127.0.0.1): a transport error, not DC001
        for allowed in ("::1", "[::1]", "::1/128"):
            cur.execute("SET dci_client.allowed_hosts = %s", (allowed,))
            e, took = expect_code(cur, "DC003", v6, "GET", OPEN)
            assert "allowed_hosts" not in str(e), str(e)
    _no_contact(env)


def test_token_url_checked_too(env):
    port = env.mock.ports["http"]
    s = code("ssrftok")
    env.add_source(s, auth_url="http://169.254.169.254/oauth2/client/token")
    s2 = code("ssrftok2")                   # the API is allowed, its token endpoint is not
    env.add_source(s2, auth_url="http://vm:%d/oauth2/client/token" % port)
    s3 = code("ssrftok3")                   # allowed by name, refused by address
    env.add_source(s3, auth_url="http://auth.localhost:%d/oauth2/client/token" % port)
    env.mock.reset()
    conn, cur = _session(env, "127.0.0.1, *.registry.invalid")
    with closing(conn):
        _refused(env, cur, s, "/echo")
        _refused(env, cur, s2, "/echo", contains='"vm"')
        cur.execute("SET dci_client.allowed_hosts = '*.localhost'")
        _refused(env, cur, s3, "/echo")
        cur.execute("SELECT step, ok, detail FROM dci_test_connection(%s)", (s,))
        rows = {r[0]: r for r in cur.fetchall()}
        assert rows["auth"][1] is False and "allowed_hosts" in rows["auth"][2], rows
    _no_contact(env)


def test_proxy_not_contacted_for_refused_hosts(env):
    """The mock's plain listener plays the proxy: it counts connections and
    answers absolute-URI requests like any other."""
    port = env.mock.ports["http"]
    proxy = "http://127.0.0.1:%d" % port
    meta = _src(env, "http://169.254.169.254")
    private = _src(env, "http://10.0.0.1")
    loop = _src(env, "http://127.0.0.1:%d" % port)
    api = _src(env, "http://api.localhost:%d" % port)
    env.mock.reset()
    conn, cur = _session(env, "*.localhost")
    with closing(conn):
        cur.execute("SET dci_client.proxy = %s", (proxy,))
        for s in (meta, private, loop):
            _refused(env, cur, s)
        _no_contact(env)
        # an allowed name goes through the proxy (which resolves it: the
        # address check is the proxy's job, as the README says)
        r = request(cur, api, "GET", OPEN)
        assert r["status"] == 200, r
        st = env.mock.stats()
        assert st["connections"] == {"http": 1} and st["requests"] == {OPEN: 1}, st
        # the proxy environment variables are ignored when the setting is empty
        cur.execute("RESET dci_client.proxy")
        e = _refused(env, cur, api)
        assert "address 127.0.0.1" in str(e) or "address ::1" in str(e), str(e)
    assert env.mock.stats()["connections"] == {"http": 1}


def test_system_wide_setting_not_overridable(env):
    """allowed_hosts set in postgresql.conf binds every non-superuser session."""
    port = env.mock.ports["http"]
    s = _src(env, "http://127.0.0.1:%d" % port)
    with closing(env.connect()) as su:
        cur = su.cursor()
        cur.execute("DROP ROLE IF EXISTS dci_ssrf_user")
        cur.execute("CREATE ROLE dci_ssrf_user LOGIN")
        cur.execute("GRANT EXECUTE ON FUNCTION dci_request(text, text, text, jsonb, jsonb) TO dci_ssrf_user")
        cur.execute("ALTER SYSTEM SET dci_client.allowed_hosts = '*.registry.invalid'")
        cur.execute("SELECT pg_reload_conf()")
    time.sleep(0.3)
    env.mock.reset()
    try:
        with closing(env.connect(user="dci_ssrf_user")) as conn:
            cur = conn.cursor()
            setting(cur, "dci_client.connect_timeout_ms", 200)
            for sql in ("SET dci_client.allowed_hosts = ''", "RESET dci_client.allowed_hosts",
                        "SELECT set_config('dci_client.allowed_hosts', '', false)",
                        "SET dci_client.proxy = 'http://127.0.0.1:1'"):
                try:
                    cur.execute(sql)
                    raise AssertionError("a non-superuser ran %s" % sql)
                except Exception as e:
                    assert getattr(e, "pgcode", None) == "42501", (sql, e)
            _refused(env, cur, s)
        _no_contact(env)
    finally:
        with closing(env.connect()) as su:
            cur = su.cursor()
            cur.execute("ALTER SYSTEM RESET dci_client.allowed_hosts")
            cur.execute("SELECT pg_reload_conf()")
            cur.execute("DROP OWNED BY dci_ssrf_user")
            cur.execute("DROP ROLE dci_ssrf_user")
        time.sleep(0.3)
