# Two commands for a fresh machine: `make run` (the service on its embedded
# default) and `make test` (the whole test suite). Everything else is a helper.

VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# The TUF conformance suite (read-only, unmodified) and its own virtual environment:
# it pins its own python-tuf and pytest.
CONFORMANCE ?= $(CURDIR)/../shared/tuf-conformance
CONFORMANCE_VENV ?= .venv-conformance
CONFORMANCE_STAMP := $(CONFORMANCE_VENV)/.installed
# Our suite runs in this many pytest-xdist workers, a test module per worker at a time
# (module-scoped server stacks start once): on 2 shared cores the whole suite took
# 250 s in 2 workers, where its tests' own times add up to 444 s (one process: about
# 7.5 min). Each worker scans its own logs for secrets (tests/conftest.py).
# PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2

.PHONY: run test deps clean conformance lint

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	# compat: a plain path entry; the default import-hook finder adds ~30 ms to every
	# Python start (measured with hyperfine: 50 -> 20 ms for `python -c pass`)
	$(VENV)/bin/pip install --quiet -e '.[test]' --config-settings editable_mode=compat
	touch $(STAMP)

## Run signer + server on 127.0.0.1 with SQLite and dev certificates in keys/.
run: $(STAMP)
	$(VENV)/bin/notary-server dev

$(CONFORMANCE_STAMP): $(STAMP) $(CONFORMANCE)/pyproject.toml
	$(VENV)/bin/python scripts/conformance.py setup --suite "$(CONFORMANCE)" --venv $(CONFORMANCE_VENV)

## The TUF conformance suite against trustctl, fresh process and kept Verifier.
conformance: $(STAMP) deps $(CONFORMANCE_STAMP)
	$(VENV)/bin/python scripts/conformance.py run --suite "$(CONFORMANCE)" --venv $(CONFORMANCE_VENV)

## Install system packages the tests use (PostgreSQL, docker-registry, skopeo, faketime),
## lint, run the TUF conformance suite, then our own suite (its summary line comes last);
## fails when any of them fails.
test: $(STAMP) deps $(CONFORMANCE_STAMP)
	@lint=0; $(MAKE) --no-print-directory lint || lint=$$?; \
	conformance=0; \
	$(VENV)/bin/python scripts/conformance.py run --suite "$(CONFORMANCE)" --venv $(CONFORMANCE_VENV) || conformance=$$?; \
	main=0; $(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadscope --durations=15 || main=$$?; \
	if [ $$lint -ne 0 ]; then echo "make test: ruff or mypy found problems (see above)"; exit $$lint; fi; \
	if [ $$conformance -ne 0 ]; then echo "make test: the TUF conformance suite failed (see above)"; exit $$conformance; fi; \
	exit $$main

## ruff (lint and format) and mypy, as configured in pyproject.toml.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy notary_server notary_signer trustctl

deps:
	bash scripts/install-system-deps.sh

clean:
	rm -rf $(VENV) $(CONFORMANCE_VENV) var build *.egg-info
