# dci_client — PGXS build.  `make run` and `make test` are the two commands
# of the README; both install their own prerequisites (Debian 12).

EXTENSION = dci_client
EXTVERSION = 0.2
MODULE_big = dci_client
OBJS = src/dci_client.o src/errors.o src/secrets.o src/triggers.o src/source.o \
       src/http.o src/http_failure.o src/http_util.o src/http_headers.o src/host_rules.o src/token_response.o \
       src/token_cache.o src/oauth.o src/request.o src/test_connection.o src/json.o src/dci_envelope.o src/dci_answer.o src/dci_calls.o src/batch.o \
       src/request_log.o src/source_stats.o src/batch_slots.o \
       src/canonical_json.o src/canonical_parser.o src/canonical_strings.o src/canonical_numbers.o src/base64.o src/sig_keys.o src/sig_field.o src/jws.o src/sign.o \
       src/settings.o src/catalog.o \
       src/path_check.o src/json_guard.o src/redact.o src/redaction.o \
       src/dialect.o src/dci_send.o \
       src/jwk_set.o src/registry_keys.o \
       src/inbound.o src/txn_record.o
# 0.1 is the released base script; 0.2 adds this round's changes as an upgrade.
DATA = src/dci_client--0.1.sql src/dci_client--0.1--0.2.sql
DATA_built = src/dci_client--$(EXTVERSION).sql
PGFILEDESC = "dci_client - DCI registry client"

REGRESS = sources secrets tokens requests errors test_connection signing dci inbound
REGRESS_OPTS = --load-extension=pgcrypto

# `make clean` also removes what the tests and the bench build or leave: unit
# and fuzz binaries, fuzz artefacts, curl_loop and bench/out, Python caches
EXTRA_CLEAN = test/unit/*_test test/fuzz/*_fuzz \
              $(foreach k,crash leak timeout oom slow-unit,test/fuzz/*-$(k)-*) \
              bench/curl_loop bench/out .pytest_cache dist \
              $(shell find . -name __pycache__ -type d -not -path './.git/*')

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags json-c 2>/dev/null)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare -Wmissing-prototypes $(if $(WERROR),-Werror)
SHLIB_LINK = $(shell curl-config --libs 2>/dev/null || echo -lcurl) -lssl -lcrypto -ljson-c

# no JIT bitcode: it would need clang on every build machine
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

PYTHON = /usr/bin/python3

# `make installcheck`: pg_regress against a running server (PGHOST, PGPORT,
# PGUSER; the extension installable there) through test/support/with_mock.py,
# which starts the bundled mock registry for the run and stops it afterwards,
# also on failure (unless MOCK_URL says the caller runs one, as `make test`
# does).  This is PGXS's command (Makefile.global) with the wrapper in front.
pg_regress_installcheck = echo "+++ regress install-check in $(subdir) +++" && \
    $(PYTHON) $(srcdir)/test/support/with_mock.py \
    $(top_builddir)/src/test/regress/pg_regress --inputdir=$(srcdir) --bindir='$(bindir)' \
    $(pg_regress_locale_flags) $(EXTRA_REGRESS_OPTS)

# The full 0.2 script is the 0.1 script followed by the upgrade, made at build
# time: a fresh install and an upgraded database run the same statements.
# Function bodies of the 0.1 part are not checked when created (as pg_dump
# does): the upgrade replaces them, and a planted overload in the schema must
# not make CREATE EXTENSION fail on a body that is about to go.  The 0.2
# bodies are SQL-standard (BEGIN ATOMIC): always parsed, bound by OID.
src/dci_client--0.2.sql: src/dci_client--0.1.sql src/dci_client--0.1--0.2.sql
	{ sed -n '1,/^\\echo/p' src/dci_client--0.1.sql; \
	  echo "SET LOCAL check_function_bodies = off;"; \
	  sed '1,/^\\echo/d' src/dci_client--0.1.sql; \
	  grep -v '^\\echo' src/dci_client--0.1--0.2.sql; } > $@

# PGXS does not track headers: every object depends on all of ours
$(OBJS): $(wildcard $(srcdir)/src/*.h)

.PHONY: deps run test unit
# what make run and make test build (the extension, unit binaries, fuzz
# targets) is built with -Werror: a warning fails them
run test: export WERROR = 1

deps:
	@bash test/support/install_deps.sh

run: deps
	$(MAKE) -s all install
	$(PYTHON) test/support/run_demo.py

# the whole suite under pytest (pytest.ini, test/conftest.py): pg_regress, the
# unit binaries, the fuzz targets and the integration tests, closing with the
# line "N passed, N failed"; `make test PYTEST_ARGS='-k tokens'` runs a part
PYTEST_ARGS ?=
test: deps
	$(MAKE) -s all install
	$(PYTHON) -m pytest $(PYTEST_ARGS)

# ---- unit tests and fuzzing of the PostgreSQL-free code (no server needed) ----
# `make unit`: one binary per test/unit/*_test.c, linked with the
# PostgreSQL-free objects only; each prints "name: N passed, N failed".
# `make fuzz`: libFuzzer targets test/fuzz/*_fuzz.c (clang), FUZZ_SECONDS each.
UNIT_SRCS = src/canonical_json.c src/canonical_parser.c src/canonical_strings.c src/canonical_numbers.c src/base64.c src/sig_keys.c src/sig_field.c src/jws.c \
            src/http_headers.c src/host_rules.c \
            src/token_response.c src/path_check.c src/json_guard.c src/redact.c src/jwk_set.c
UNIT_TESTS = $(patsubst %.c,%,$(wildcard test/unit/*_test.c))
FUZZ_TARGETS = $(patsubst %.c,%,$(wildcard test/fuzz/*_fuzz.c))
FIXTURES ?= $(srcdir)/test/fixtures
FUZZ_SECONDS ?= 20
UNIT_CFLAGS = -O1 -g -Wall -Wmissing-prototypes $(if $(WERROR),-Werror) -I$(srcdir)/src \
              $(shell pkg-config --cflags json-c 2>/dev/null)
UNIT_LIBS = $(shell curl-config --libs 2>/dev/null || echo -lcurl) -lssl -lcrypto -ljson-c -lm

test/unit/%_test: test/unit/%_test.c $(UNIT_SRCS) $(wildcard src/*.h test/unit/*.h test/unit/*.inc)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(UNIT_SRCS) $(UNIT_LIBS)

unit: $(UNIT_TESTS)
	@rc=0; for t in $(UNIT_TESTS); do ./$$t $(FIXTURES)/signing || rc=1; done; exit $$rc

test/fuzz/%_fuzz: test/fuzz/%_fuzz.c $(UNIT_SRCS) $(wildcard src/*.h)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(if $(WERROR),-Werror) -I$(srcdir)/src \
		$(shell pkg-config --cflags json-c 2>/dev/null) -o $@ $< $(UNIT_SRCS) $(UNIT_LIBS)

# each target starts from its seeds (test/fuzz/seeds/<name>/) and the fixtures;
# the corpus it grows goes to a temporary directory
fuzz: $(FUZZ_TARGETS)
	@rc=0; for t in $(FUZZ_TARGETS); do \
		n=$$(basename $$t _fuzz); corpus=$$(mktemp -d); \
		./$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
			-artifact_prefix=test/fuzz/$$n- $$corpus test/fuzz/seeds/$$n $(FIXTURES)/signing \
			> $$corpus.log 2>&1; st=$$?; \
		grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|Done)" $$corpus.log; \
		if [ $$st -ne 0 ]; then tail -40 $$corpus.log; fi; \
		rm -rf $$corpus $$corpus.log; \
		if [ $$st -eq 0 ]; then echo "$$n fuzz: 1 passed, 0 failed"; else echo "$$n fuzz: 0 passed, 1 failed"; rc=1; fi; \
	done; exit $$rc
.PHONY: fuzz

# issue 6: benchmark against nginx, side by side with a plain libcurl loop (bench/run.py);
# `make bench ARGS=--quick` for a one-minute smoke run
bench: deps
	$(MAKE) -s all install
	$(PYTHON) bench/run.py $(ARGS)
.PHONY: bench

# issue 5: Valgrind memcheck over the pg_regress suite (minutes; not part of `make test`)
valgrind: all install
	bash test/support/valgrind.sh
.PHONY: valgrind

# ---- packages ----
# `make deb`: the Debian package postgresql-15-dci-client (debian/, built with
# pg_buildext from Debian's packages only) in dist/.  dpkg-buildpackage writes
# next to the source tree, so it runs on a copy of the tracked files (as they
# are in the working tree) in a temporary directory, never in or beside the
# repository.
DISTVERSION = $(shell $(PYTHON) -c "import json; print(json.load(open('META.json'))['version'])")

deb: deps
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	mkdir -p "$$tmp/src" dist; \
	git ls-files -z --cached | \
		(cd . && xargs -0 cp --parents -t "$$tmp/src"); \
	(cd "$$tmp/src" && dpkg-buildpackage -us -uc -b > "$$tmp/build.log" 2>&1) || \
		{ tail -40 "$$tmp/build.log"; exit 1; }; \
	cp "$$tmp"/*.deb dist/; ls dist/*.deb

# `make dist`: the PGXN source archive (META.json at its top) in dist/
dist:
	@mkdir -p dist
	git archive --format zip --prefix=dci_client-$(DISTVERSION)/ -o dist/dci_client-$(DISTVERSION).zip HEAD
	@echo dist/dci_client-$(DISTVERSION).zip

.PHONY: deb dist
