#!/usr/bin/python3
"""The structure the README's "Layout" promises, checked on the built objects:
no call cycle between the C files (undefined symbols of each object resolved
to the object defining them, then strongly connected components), and no
PostgreSQL header in the PostgreSQL-free core.  Prints what it finds; exits
non-zero on a violation."""
import collections, glob, os, re, subprocess, sys

CORE = {"base64", "canonical_json", "canonical_parser", "canonical_strings", "canonical_numbers", "sig_keys",
        "sig_field", "jws", "http_headers", "host_rules", "token_response", "path_check",
        "json_guard", "redact", "hex", "jwk_set"}


def call_graph(srcdir):
    defs, undef = {}, {}
    for o in sorted(glob.glob(os.path.join(srcdir, "*.o"))):
        d, u = set(), set()
        for line in subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout.splitlines():
            p = line.split()
            if len(p) == 3 and p[1] in "TDBR":
                d.add(p[2])
            elif len(p) == 2 and p[0] == "U":
                u.add(p[1])
        name = os.path.basename(o)[:-2]
        defs[name], undef[name] = d, u
    owner = {s: n for n, d in defs.items() for s in d}
    return {n: {owner[s] for s in u if s in owner and owner[s] != n} for n, u in undef.items()}


def cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for v in graph:
        if v not in index:
            visit(v)
    return out


def core_violations(srcdir):
    bad = []
    for name in sorted(CORE):
        for ext in (".c", ".h"):
            path = os.path.join(srcdir, name + ext)
            if not os.path.exists(path):
                continue
            for inc in re.findall(r'^#include [<"]([^>"]+)[>"]', open(path).read(), re.M):
                local = os.path.join(srcdir, inc)
                if os.path.exists(local):
                    if os.path.basename(inc)[:-2] not in CORE:
                        bad.append("%s%s includes %s (not core)" % (name, ext, inc))
                elif inc.startswith(("postgres", "utils/", "fmgr", "access/", "catalog/", "nodes/",
                                     "lib/", "mb/", "common/", "storage/", "executor/", "miscadmin")):
                    bad.append("%s%s includes the PostgreSQL header %s" % (name, ext, inc))
    return bad


def main(srcdir):
    problems = ["call cycle: " + " -> ".join(c) for c in cycles(call_graph(srcdir))]
    problems += core_violations(srcdir)
    for p in problems:
        print(p)
    print("layers: %d problem(s)" % len(problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "src")))
