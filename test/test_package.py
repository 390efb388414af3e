"""Installing it the way DBAs do (README "Install"): the Debian package
postgresql-15-dci-client built by `make deb` from Debian's packages only,
installed, and checked as an autopkgtest would (debian/tests/installcheck:
pg_regress against a throwaway pg_virtualenv cluster with the installed
package); and the PGXN archive of `make dist` with a META.json that is valid
for the PGXN Meta Spec 1.0.0."""
import glob, json, os, re, shutil, subprocess, tempfile, zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(cmd, **kw):
    p = subprocess.run(cmd, cwd=kw.pop("cwd", ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    assert p.returncode == 0, "%s failed (rc %d):\n%s" % (" ".join(cmd), p.returncode, p.stdout[-4000:])
    return p.stdout


def _copy_tree(dest):
    files = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]).split("\0")
    for f in filter(None, files):
        if os.path.isfile(os.path.join(ROOT, f)):
            os.makedirs(os.path.join(dest, os.path.dirname(f)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), os.path.join(dest, f))


@pytest.mark.skipif(os.geteuid() != 0, reason="installs a package: needs root")
def test_debian_package_installs_and_passes_installcheck():
    for deb in glob.glob(os.path.join(ROOT, "dist", "*.deb")):
        os.remove(deb)
    _run(["make", "-s", "deb"])
    debs = glob.glob(os.path.join(ROOT, "dist", "postgresql-15-dci-client_*_amd64.deb"))
    assert len(debs) == 1, debs
    info = _run(["dpkg-deb", "-I", debs[0]])
    for dep in ("postgresql-15", "libcurl4 (>= 7.85.0)", "libssl3", "libjson-c5"):
        assert dep in info, "missing Depends %r:\n%s" % (dep, info)
    files = _run(["dpkg-deb", "-c", debs[0]])
    for f in ("lib/dci_client.so", "extension/dci_client.control", "extension/dci_client--0.1.sql",
              "extension/dci_client--0.1--0.2.sql", "extension/dci_client--0.2.sql"):
        assert f in files, f
    try:
        _run(["dpkg", "-i", debs[0]])
        assert "install ok installed" in _run(["dpkg-query", "-W", "-f=${Status}", "postgresql-15-dci-client"])
        with tempfile.TemporaryDirectory() as tmp:
            _copy_tree(tmp)          # pg_buildext cleans the tree it runs in: a copy
            out = _run(["debian/tests/installcheck"], cwd=tmp)
        assert re.search(r"All \d+ tests passed", out), out[-3000:]
    finally:
        # leave the machine as the rest of the suite expects it: the build of this tree
        subprocess.run(["dpkg", "-r", "postgresql-15-dci-client"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        _run(["make", "-s", "install"])


SEMVER = re.compile(r"^\d+\.\d+\.\d+(-[0-9A-Za-z-]+)?$")
LICENSES = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
            "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
            "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
            "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown"}
TOP = {"name", "version", "abstract", "maintainer", "license", "provides", "meta-spec",
       "description", "generated_by", "tags", "no_index", "prereqs", "release_status", "resources"}


def meta_problems(meta):
    """What the PGXN Meta Spec 1.0.0 (pgxn.org/spec) says this META.json gets wrong."""
    bad = []
    for k in ("name", "version", "abstract", "maintainer", "license", "provides", "meta-spec"):
        if k not in meta:
            bad.append("missing %s" % k)
    for k in meta:
        if k not in TOP and not k.lower().startswith("x_"):
            bad.append("unknown key %s" % k)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", str(meta.get("name", ""))):
        bad.append("bad name")
    if not SEMVER.match(str(meta.get("version", ""))):
        bad.append("version is not a semantic version")
    if meta.get("meta-spec", {}).get("version") != "1.0.0":
        bad.append("meta-spec version is not 1.0.0")
    lic = meta.get("license")
    lics = [lic] if isinstance(lic, str) else (lic if isinstance(lic, list) else list((lic or {}).keys()))
    if not lics or any(isinstance(lic, str) and l not in LICENSES for l in lics):
        bad.append("license %r is not one of the spec's" % lic)
    m = meta.get("maintainer")
    if not (isinstance(m, str) or (isinstance(m, list) and m and all(isinstance(x, str) for x in m))):
        bad.append("maintainer must be a string or a list of strings")
    for ext, p in (meta.get("provides") or {}).items():
        if not isinstance(p, dict) or "file" not in p or "version" not in p:
            bad.append("provides.%s needs file and version" % ext)
        elif not SEMVER.match(p["version"]):
            bad.append("provides.%s.version is not a semantic version" % ext)
    for phase, rels in (meta.get("prereqs") or {}).items():
        if phase not in ("configure", "build", "test", "runtime", "develop"):
            bad.append("unknown prereq phase %s" % phase)
        for rel, deps in rels.items():
            if rel not in ("requires", "recommends", "suggests", "conflicts"):
                bad.append("unknown prereq relation %s" % rel)
            for name, ver in deps.items():
                if not re.match(r"^(0|[<>=!]*\s*\d+(\.\d+){0,2}([, ]+[<>=!]*\s*\d+(\.\d+){0,2})*)$", str(ver)):
                    bad.append("prereq %s has a bad version %r" % (name, ver))
    if "tags" in meta and not all(isinstance(t, str) and 0 < len(t) < 256 for t in meta["tags"]):
        bad.append("tags must be short strings")
    return bad


def test_meta_json_follows_the_pgxn_spec_and_the_control_file():
    meta = json.load(open(os.path.join(ROOT, "META.json")))
    assert meta_problems(meta) == []
    # the validator itself refuses what the spec refuses
    assert meta_problems(dict(meta, version="0.2")) and meta_problems(dict(meta, license="gpl"))
    control = open(os.path.join(ROOT, "dci_client.control")).read()
    default = re.search(r"default_version = '([^']+)'", control).group(1)
    assert meta["version"].startswith(default + "."), (meta["version"], default)
    assert meta["provides"]["dci_client"]["version"] == meta["version"]
    assert meta["prereqs"]["runtime"]["requires"]["PostgreSQL"] == "15.0.0"


def test_make_dist_archive():
    meta = json.load(open(os.path.join(ROOT, "META.json")))
    out = _run(["make", "-s", "dist"])
    path = os.path.join(ROOT, out.strip().splitlines()[-1])
    prefix = "dci_client-%s/" % meta["version"]
    with zipfile.ZipFile(path) as z:
        names = set(z.namelist())
        assert json.loads(z.read(prefix + "META.json")) == meta
    for f in ("dci_client.control", "Makefile", "README.md", meta["provides"]["dci_client"]["file"],
              "src/dci_client--0.1--0.2.sql", "debian/control"):
        assert prefix + f in names, f
    assert not any(n.startswith(prefix + "dist/") or n.endswith(".o") for n in names)
