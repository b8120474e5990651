# sparsepipe — the two set-up commands are `make demo` and `make test`; both create .venv when missing and
# install into it idempotently (a second run only checks a stamp file).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.sparsepipe-installed
DEMO_OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: setup demo test test-all bench lint clean help

help:
	@echo "make demo      create .venv, install, run the main job on built-in data (outputs in $(DEMO_OUT))"
	@echo "make test      create .venv, install, run the test suite (tests marked slow are skipped)"
	@echo "make test-all  the whole suite, slow tests included"
	@echo "make bench     benchmarks (JSON on stdout, peers measured in the same run)"
	@echo "make lint      ruff"

$(STAMP): pyproject.toml scripts/check_system.sh
	@bash scripts/check_system.sh "$(PYTHON)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/sparsepipe demo --out $(DEMO_OUT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

bench: setup
	$(PY) -m pytest bench -m "" -q --benchmark-only --benchmark-json=out/bench/pytest-benchmark.json
	@for s in bench/*.py; do case $$s in bench/test_*|bench/conftest.py) ;; *) echo "== $$s"; $(PY) $$s;; esac; done

lint: setup
	$(VENV)/bin/ruff check perception slam recon apps tests bench

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .hypothesis .benchmarks
