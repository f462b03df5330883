# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else here is what those two are made of.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NPM ?= npm

.DEFAULT_GOAL := help
.PHONY: help check-tools venv node deps test test-py test-js lint typecheck clean

help:
	@echo "make demo    - start the sandbox, seed, migrate, load-test every target, print the decision"
	@echo "make test    - install everything and run the test suites"
	@echo "make lint    - ruff + mypy"

check-tools:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or newer" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "error: Python 3.11 or newer is required, $(PYTHON) is $$($(PYTHON) -c 'import platform; print(platform.python_version())')" >&2; exit 1; }
	@command -v node >/dev/null || { echo "error: node not found; install Node.js 20 or newer" >&2; exit 1; }
	@node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "error: Node.js 20 or newer is required, node is $$(node --version)" >&2; exit 1; }

# The virtualenv is rebuilt when requirements.txt changes.
$(VENV)/.stamp: requirements.txt
	@$(MAKE) --no-print-directory check-tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

venv: $(VENV)/.stamp

node_modules/.stamp: package.json package-lock.json
	@$(MAKE) --no-print-directory check-tools
	$(NPM) ci --no-audit --no-fund --loglevel=error
	@touch $@

node: node_modules/.stamp

deps: venv node

test: deps
	$(MAKE) --no-print-directory test-js
	$(MAKE) --no-print-directory test-py

test-py: venv
	$(PY) -m pytest -q

test-js: node
	$(NPM) test --silent

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy harness sandbox seed reports locustfiles bench

clean:
	rm -rf $(VENV) node_modules nextjs/node_modules nextjs/.next
