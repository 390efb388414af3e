# dci_client — PGXS build.  `make run` and `make test` are the two commands
# of the README; both install their own prerequisites (Debian 12).

EXTENSION = dci_client
EXTVERSION = 0.1
MODULE_big = dci_client
OBJS = src/dci_client.o src/errors.o src/secrets.o src/triggers.o src/source.o \
       src/http.o src/http_headers.o src/host_rules.o src/token_response.o \
       src/token_cache.o src/oauth.o src/request.o src/test_connection.o src/json.o src/dci.o
DATA = src/dci_client--0.1.sql
PGFILEDESC = "dci_client - DCI registry client"

REGRESS = sources secrets tokens requests errors test_connection
REGRESS_OPTS = --load-extension=pgcrypto

PG_CONFIG ?= pg_config
PG_CPPFLAGS = -I$(srcdir)/src $(shell pkg-config --cflags json-c 2>/dev/null) -Wall -Wmissing-prototypes
SHLIB_LINK = $(shell curl-config --libs 2>/dev/null || echo -lcurl) -lssl -lcrypto -ljson-c

# no JIT bitcode: it would need clang on every build machine
override with_llvm = no

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

PYTHON = /usr/bin/python3

.PHONY: deps run test unit
deps:
	@bash test/install_deps.sh

run: deps
	$(MAKE) -s all install
	$(PYTHON) test/run_demo.py

test: deps
	$(MAKE) -s all install
	$(PYTHON) test/run_tests.py
