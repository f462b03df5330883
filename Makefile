# The two commands a newcomer needs: `make demo` and `make test`.
# Everything else here is what those two are made of.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
NPM ?= npm

# The sandbox's network (docs/network.md): a profile (loopback, same-region,
# cross-region-us, asia-us, spike, or a .toml/.json file) and RTT overrides
# (`NETWORK_RTT=supabase=80ms,convex=20ms`), for demo, ui and swarm.
NETWORK ?=
NETWORK_RTT ?=
SANDBOX_UP_ARGS = $(if $(NETWORK),--network $(NETWORK)) $(if $(NETWORK_RTT),--network-rtt $(NETWORK_RTT))

# Load settings (override on the command line: `make demo DEMO_DURATION=120`).
LOCUSTFILE ?= locustfiles/ai_context.py
DEMO_CONTACTS ?= 2000
DEMO_DURATION ?= 60
# With a NETWORK, users mostly wait on the links: a closed model of 14 users would
# collect too few lookups for a verdict (1000 per target), so the demo offers a fixed
# rate instead (open model: DEMO_OPEN_RATE lookups/s per target, 90 % of them known
# phones; 50 users per target keep 25 lookups/s of up to ~2 s each going).
DEMO_OPEN_RATE ?= $(if $(NETWORK)$(NETWORK_RTT),25,)
DEMO_USERS ?= $(if $(DEMO_OPEN_RATE),350,14)
DEMO_SPAWN_RATE ?= $(if $(DEMO_OPEN_RATE),175,7)
DEMO_OUT ?=
DEMO_WARMUP ?= 5
DEMO_KEEP_SANDBOX ?=
# DEMO_REALTIME=1: also the inbox's update latency (convex_sub, supabase_realtime); it never changes the verdict
DEMO_REALTIME ?=
RUN_DURATION ?= 120
RUN_USERS ?= 21
RUN_SPAWN_RATE ?= 5
RUN_WARMUP ?= 10
# VERBOSE=1: Locust's periodic stats table during run/swarm (otherwise only the final summary)
VERBOSE ?=
QUIET_STATS = $(if $(filter 1,$(VERBOSE)),,--only-summary)
WORKERS ?= 2
# The settings file for run/ui/swarm against real deployments.
ENV_FILE ?= .env
# ui/swarm: `sandbox` (the local stack) or `env` (the deployments named in ENV_FILE);
# default: the sandbox when a NETWORK is given, else ENV_FILE when it exists.
AGAINST ?= $(if $(NETWORK)$(NETWORK_RTT),sandbox,$(if $(wildcard $(ENV_FILE)),env,sandbox))
CHROMIUM ?= /usr/bin/chromium
# Exports the running sandbox's env into the recipe's shell (values may hold
# shell metacharacters, so they are quoted rather than sourced).
LOAD_SANDBOX_ENV = eval "$$($(PY) -c 'import shlex; from sandbox.launcher import read_env; print("".join(f"export {k}={shlex.quote(v)}\n" for k, v in read_env().items()))')" && \
	export ENV_FILE="$${SANDBOX_DIR:-.sandbox}/env"
# The phones ui/swarm/run draw from (`python -m seed workload`); runs/ is git-ignored.
# One file per settings file, so a sandbox's phones are never sent to a deployment:
# runs/workload.json for .env, runs/workload.env.prod.json for .env.prod,
# runs/workload.sandbox-env.json for the sandbox (refreshed from it at each ui/swarm).
WORKLOAD ?= runs/workload$(subst /,-,$(filter-out .env,$(if $(filter sandbox,$(AGAINST)),.sandbox/env,$(ENV_FILE)))).json
# Where runs keep their Locust CSVs, HDR artifact and logs (git-ignored).
RUNS ?= runs
DEMO_RUNS ?= $(RUNS)

.DEFAULT_GOAL := help
.PHONY: help check-tools venv node nextjs-deps deps chromium test test-py test-js lint clean \
	demo demo-run ui swarm run sandbox-up sandbox-down sandbox-seed check-dotenv bench

help:
	@echo "make demo    - start the sandbox, seed, migrate, load-test every target, print the decision"
	@echo "               (DEMO_CONTACTS=$(DEMO_CONTACTS) DEMO_DURATION=$(DEMO_DURATION)s DEMO_USERS=$(DEMO_USERS))"
	@echo "               NETWORK=spike (or same-region, cross-region-us, asia-us, a profile file) puts"
	@echo "               real-world latency on the sandbox's links, also for ui/swarm; docs/network.md"
	@echo "make test    - install everything and run the test suites"
	@echo "make ui      - Locust web UI on http://127.0.0.1:8089 (AGAINST=sandbox|env, now: $(AGAINST))"
	@echo "make swarm   - headless run, master + WORKERS=$(WORKERS) workers (AGAINST=sandbox|env, now: $(AGAINST))"
	@echo "make run     - headless run against the deployments in .env, then the decision table (VERBOSE=1: live stats)"
	@echo "make lint    - ruff + mypy"
	@echo "make bench   - run the benchmarks (interleaved pairs) and rewrite docs/benchmarks.md; BENCH=generator runs one"

check-tools:
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or newer" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { echo "error: Python 3.11 or newer is required, $(PYTHON) is $$($(PYTHON) -c 'import platform; print(platform.python_version())')" >&2; exit 1; }
	@command -v node >/dev/null || { echo "error: node not found; install Node.js 20.9 or newer" >&2; exit 1; }
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 9) ? 0 : 1)' || { echo "error: Node.js 20.9 or newer is required, node is $$(node --version)" >&2; exit 1; }
	@command -v $(NPM) >/dev/null || { echo "error: $(NPM) not found; it ships with Node.js" >&2; exit 1; }

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

# The stamp holds the lockfile's hash: sandbox/nextjs.py reads the same stamp
# and skips its own `npm ci` when it matches.
nextjs/node_modules/.stamp: nextjs/package.json nextjs/package-lock.json
	@$(MAKE) --no-print-directory check-tools
	cd nextjs && $(NPM) ci --no-audit --no-fund --loglevel=error
	@sha256sum nextjs/package-lock.json | cut -d' ' -f1 > $@

nextjs-deps: nextjs/node_modules/.stamp

deps: venv node nextjs-deps

# The browser test drives Debian's Chromium (browser downloads are not possible here).
chromium:
	@if [ -x "$(CHROMIUM)" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium (for the browser test)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
			|| { echo "error: apt-get install chromium failed" >&2; exit 1; }; \
	else \
		echo "error: $(CHROMIUM) is missing; install it (Debian/Ubuntu: sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2; \
		exit 1; \
	fi

test: deps chromium
	$(MAKE) --no-print-directory test-js
	$(MAKE) --no-print-directory test-py

test-py: venv
	$(PY) -m pytest -q

test-js: node
	$(NPM) test --silent

lint: venv
	$(PY) -m ruff check .
	$(PY) -m mypy harness sandbox seed reports locustfiles bench

# --------------------------------------------------------------------------- benchmarks

# BENCH: one or more of `$(PY) -m bench --list` (default: all); PAIRS overrides each one's pair count.
# Exit codes 3 (a goal not met) and 4 (undecided) are verdicts, written into the docs, not failures.
BENCH ?=
PAIRS ?=
bench: venv node
	@rc=0; $(PY) -m bench --write-docs --json-dir $(RUNS)/bench $(if $(PAIRS),--pairs $(PAIRS)) $(BENCH) || rc=$$?; \
	case $$rc in 0|3|4) ;; *) echo "error: a benchmark failed to run (exit $$rc)" >&2; exit $$rc;; esac

# --------------------------------------------------------------------------- sandbox + seed

sandbox-up: venv node nextjs-deps
	$(PY) -m sandbox up $(SANDBOX_UP_ARGS) > /dev/null

sandbox-down:
	@if [ -x $(PY) ]; then $(PY) -m sandbox down; fi

# Fills the running sandbox: data in Supabase, the same rows in Convex, parity
# checked, and workload.json (the phones the load draws from).
sandbox-seed:
	$(LOAD_SANDBOX_ENV) && \
	$(PY) -m seed generate --contacts $(DEMO_CONTACTS) --reset && \
	{ [ -z "$${CONVEX_URL:-}" ] || { $(PY) -m seed migrate --clear --restart && $(PY) -m seed verify; }; } && \
	mkdir -p $(dir $(WORKLOAD)) && $(PY) -m seed workload --out $(WORKLOAD)

check-dotenv:
	@test -f "$(ENV_FILE)" || { echo "error: $(ENV_FILE) not found; copy .env.example to .env and fill it in (see README, 'Pointing it at real deployments')" >&2; exit 1; }

# --------------------------------------------------------------------------- demo

# One bash script: the sandbox is stopped on every exit path (trap; DEMO_KEEP_SANDBOX=1
# leaves it running), and the report's exit codes 0 / 10 / 11 are verdicts, not
# failures. Targets whose service is not in the sandbox are left out, and said so.
demo: venv node nextjs-deps
	@$(MAKE) --no-print-directory demo-run

demo-run:
	@set -euo pipefail; \
	started=$$(date +%s); \
	stamp=$$(date -u +%Y%m%dT%H%M%SZ); \
	out="$(DEMO_OUT)"; out="$${out:-reports/out/demo-$$stamp}"; \
	run="$(DEMO_RUNS)/demo-$$stamp"; mkdir -p "$$run"; \
	if [ "$(DEMO_KEEP_SANDBOX)" != 1 ]; then trap 'echo "== stopping the sandbox"; env -u DATABASE_URL $(PY) -m sandbox down || true' EXIT; fi; \
	echo "== starting the sandbox (PostgreSQL, Supabase-compatible gateway, Convex runtime, Next.js)$(if $(NETWORK)$(NETWORK_RTT), network: $(strip $(NETWORK) $(NETWORK_RTT)))"; \
	$(PY) -m sandbox up $(SANDBOX_UP_ARGS) > /dev/null; \
	$(LOAD_SANDBOX_ENV); \
	targets="supabase_rest supabase_nested supabase_rpc"; \
	if [ -n "$${CONVEX_URL:-}" ]; then targets="$$targets convex_http convex_query"; \
	else echo "note: no Convex in this sandbox; the Convex targets are left out"; fi; \
	if [ -n "$${APP_URL:-}" ]; then targets="$$targets api_supabase$${CONVEX_URL:+ api_convex}"; \
	else echo "note: no Next.js app in this sandbox; the API-route targets are left out"; fi; \
	if [ "$(DEMO_REALTIME)" = 1 ]; then targets="$$targets supabase_realtime$${CONVEX_URL:+ convex_sub}"; fi; \
	echo "== seeding $(DEMO_CONTACTS) contacts$${CONVEX_URL:+, migrating to Convex, verifying parity}"; \
	$(PY) -m seed -q generate --contacts $(DEMO_CONTACTS) --reset; \
	if [ -n "$${CONVEX_URL:-}" ]; then $(PY) -m seed -q migrate --clear --restart --checkpoint "$$run/migrate-checkpoint.json"; $(PY) -m seed -q verify; fi; \
	$(PY) -m seed -q workload --out "$$run/workload.json"; \
	echo "== load test: $$targets; $(DEMO_USERS) users$(if $(DEMO_OPEN_RATE), offering $(DEMO_OPEN_RATE) lookups/s per target), $(DEMO_DURATION) s (the first $(DEMO_WARMUP) s are warm-up, left out of the decision)"; \
	rc=0; $(PY) -m locust -f $(LOCUSTFILE) --headless --only-summary \
		-u $(DEMO_USERS) -r $(DEMO_SPAWN_RATE) -t $(DEMO_DURATION)s $(if $(DEMO_OPEN_RATE),--open-rate $(DEMO_OPEN_RATE)) \
		--csv "$$run/run" --csv-full-history --workload "$$run/workload.json" --warmup $(DEMO_WARMUP) \
		--targets $$targets --no-verdict-exit-code > "$$run/locust.log" 2>&1 || rc=$$?; \
	if [ $$rc -eq 1 ] && [ -s "$$run/run_stats.csv" ]; then \
		echo "note: some requests failed (Locust exit 1); the report weighs them; details: $$run/locust.log"; \
	elif [ $$rc -eq 2 ]; then grep '^error:' "$$run/locust.log" >&2 || tail -n 5 "$$run/locust.log" >&2; rm -rf "$$run"; \
		echo "error: the run did not start (exit 2): nothing was measured" >&2; exit 2; \
	elif [ $$rc -ne 0 ]; then tail -n 20 "$$run/locust.log" >&2; echo "error: the load test failed (exit $$rc); log: $$run/locust.log" >&2; exit $$rc; fi; \
	if [ -z "$${CONVEX_URL:-}" ]; then \
		echo "== no decision: it needs a Convex target; the lookups measured (ms):"; \
		$(PY) -c 'import csv,sys; rows=[r for r in csv.DictReader(open(sys.argv[1])) if r["Type"] == "lookup"]; [print("  %-16s n=%6s failures=%4s p50=%6s p95=%6s" % (r["Name"], r["Request Count"], r["Failure Count"], r["50%"], r["95%"])) for r in rows]' "$$run/run_stats.csv"; \
		exit 0; \
	fi; \
	echo "== diagnosis: the plans of the Supabase lookups for $(DIAGNOSE_SAMPLES) sampled phones, the catalog, the run's connections"; \
	wl="$$run/workload.json"; $(DIAGNOSE); \
	echo "== decision"; \
	rc=0; $(PY) -m reports decide "$$run/run" --out "$$out" --strict || rc=$$?; \
	case $$rc in 0|10|11) ;; 3) echo "error: the run cannot decide (see the failures in $$out/decision.md)" >&2; exit 3;; \
		*) echo "error: the report failed (exit $$rc)" >&2; exit $$rc;; esac; \
	echo "Sandbox numbers exercise the method on this machine; they are not a verdict on hosted Supabase or Convex."; \
	echo "== demo finished in $$(( $$(date +%s) - started )) s; report: $$out/report.html"

# --------------------------------------------------------------------------- load against .env or the sandbox

# ENV_SETUP: the shell lines that point the settings at the sandbox or at .env.
ifeq ($(AGAINST),sandbox)
ENV_SETUP = $(PY) -m sandbox up $(SANDBOX_UP_ARGS) > /dev/null && $(LOAD_SANDBOX_ENV) && \
	{ { mkdir -p $(dir $(WORKLOAD)) && $(PY) -m seed -q workload --out $(WORKLOAD) 2>/dev/null; } || $(MAKE) --no-print-directory sandbox-seed; }
else
ENV_SETUP = $(if $(NETWORK)$(NETWORK_RTT),{ echo "error: NETWORK/NETWORK_RTT apply to the sandbox; drop them or use AGAINST=sandbox" >&2; exit 2; } && )\
	$(MAKE) --no-print-directory check-dotenv && export ENV_FILE="$(ENV_FILE)" && \
	{ test -f $(WORKLOAD) || [ -n "$${TEST_PHONE:-}" ] || grep -q '^TEST_PHONE=.' "$(ENV_FILE)" || { mkdir -p $(dir $(WORKLOAD)) && $(PY) -m seed workload --out $(WORKLOAD); }; }
endif

ui: venv node nextjs-deps
	@$(ENV_SETUP) && \
	echo "Locust web UI: http://127.0.0.1:8089 (Ctrl-C to stop)" && \
	$(PY) -m locust -f $(LOCUSTFILE) --web-host 127.0.0.1 --web-port 8089 --workload $(WORKLOAD)

# The Supabase side's diagnosis ($$run, $$out, $$wl set), written to $$out/diagnosis.json before the
# decision so the report carries its findings. It informs and never stops the run: without a Supabase
# target or its settings, it leaves a note and the log.
DIAGNOSE_SAMPLES ?= 20
DIAGNOSE = mkdir -p "$$out"; \
	if $(PY) -m reports diagnose --run "$$run/run" $$(test -f "$$wl" && echo --workload "$$wl") --samples $(DIAGNOSE_SAMPLES) \
		--out "$$out" > "$$out/diagnose.log" 2>&1; then \
		$(PY) -c 'import json,sys; d=json.load(open(sys.argv[1])); f=d.get("findings") or []; print("   %d finding(s)%s" % (len(f), ": " + ", ".join(sorted({x["code"] for x in f})) if f else ""))' "$$out/diagnosis.json" || true; \
	else echo "note: no diagnosis: $$(grep -m1 '^error:' "$$out/diagnose.log" || tail -n 1 "$$out/diagnose.log")"; rm -f "$$out/diagnosis.json"; fi

# After a headless Locust run ($$rc, $$run set): exit 1 with stats is a run with failed requests
# (the report weighs them); exit 2 is a run that never started (its folder is removed); then
# the decision, where exit 3 is a run that cannot decide (a failing target, data that differs).
AFTER_RUN = if [ $$rc -eq 1 ] && [ -s "$$run/run_stats.csv" ]; then echo "note: some requests failed (Locust exit 1); the report weighs them"; \
	elif [ $$rc -eq 2 ]; then rm -rf "$$run"; echo "error: the run did not start (exit 2): nothing was measured" >&2; exit 2; \
	elif [ $$rc -ne 0 ]; then echo "error: the load test failed (exit $$rc); files in $$run/" >&2; exit $$rc; fi; \
	out="reports/out/$$(basename "$$run")"; wl="$(WORKLOAD)"; $(DIAGNOSE); \
	rc=0; $(PY) -m reports decide "$$run/run" --out "$$out" --strict || rc=$$?; \
	case $$rc in 0|10|11) ;; 3) echo "error: the run cannot decide (see $$out/decision.md)" >&2; exit 3;; \
		*) exit $$rc;; esac
WARMUP_NOTE = echo "== load test: $(RUN_USERS) users, $(RUN_DURATION) s; the first $(RUN_WARMUP) s are warm-up, left out of the decision"

swarm: venv node nextjs-deps
	@set -euo pipefail; $(ENV_SETUP); \
	stamp=$$(date -u +%Y%m%dT%H%M%SZ); run="$(RUNS)/swarm-$$stamp"; mkdir -p "$$run"; \
	pids=(); trap 'kill $${pids[@]} 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 $(WORKERS)); do \
		$(PY) -m locust -f $(LOCUSTFILE) --worker --master-host 127.0.0.1 > "$$run/worker-$$i.log" 2>&1 & pids+=($$!); \
	done; \
	$(WARMUP_NOTE); \
	rc=0; $(PY) -m locust -f $(LOCUSTFILE) --master --master-bind-host 127.0.0.1 --headless --expect-workers $(WORKERS) \
		-u $(RUN_USERS) -r $(RUN_SPAWN_RATE) -t $(RUN_DURATION)s --csv "$$run/run" --csv-full-history --workload $(WORKLOAD) \
		--warmup $(RUN_WARMUP) $(QUIET_STATS) --no-verdict-exit-code || rc=$$?; \
	kill $${pids[@]} 2>/dev/null || true; wait 2>/dev/null || true; \
	$(AFTER_RUN)

run: venv check-dotenv
	@set -euo pipefail; export ENV_FILE="$(ENV_FILE)"; \
	test -f $(WORKLOAD) || [ -n "$${TEST_PHONE:-}" ] || grep -q '^TEST_PHONE=.' "$(ENV_FILE)" || { mkdir -p $(dir $(WORKLOAD)) && $(PY) -m seed workload --out $(WORKLOAD); }; \
	stamp=$$(date -u +%Y%m%dT%H%M%SZ); run="$(RUNS)/run-$$stamp"; mkdir -p "$$run"; \
	$(WARMUP_NOTE); \
	rc=0; $(PY) -m locust -f $(LOCUSTFILE) --headless -u $(RUN_USERS) -r $(RUN_SPAWN_RATE) -t $(RUN_DURATION)s \
		--csv "$$run/run" --csv-full-history --workload $(WORKLOAD) --warmup $(RUN_WARMUP) $(QUIET_STATS) --no-verdict-exit-code || rc=$$?; \
	$(AFTER_RUN)

clean:
	rm -rf $(VENV) node_modules nextjs/node_modules nextjs/.next
