# The two commands a new user runs are `make demo` and `make test`; each sets up what it
# needs. Everything runs from a virtual environment built from the hash-locked
# requirements.lock, so a fresh machine gets exactly the versions CI tested.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ASSETS := node_modules/.installed

.PHONY: all venv test lint fmt bench demo faults fuzz clean system-deps serve

all: test

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP) $(ASSETS)

# htmx and its SSE extension for the web UI, from the npm registry at the versions and
# hashes of package-lock.json (docs/adr/0005). Without npm the UI still works as plain HTML.
$(ASSETS): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && touch $(ASSETS); \
	else echo "npm not found: the web UI runs without htmx (plain pages)"; fi

# Debian packages the tests use, installed only when missing (needs root, as CI and the
# development machines have): tshark (interop tests decode our DoIP traffic with it),
# PostgreSQL (the platform's tests start a throwaway cluster), chromium (browser tests
# of the web UI; never downloaded by Playwright).
system-deps:
	@missing=""; \
	command -v tshark >/dev/null 2>&1 || missing="$$missing tshark"; \
	{ test -x /usr/lib/postgresql/15/bin/initdb || command -v initdb >/dev/null 2>&1; } \
	  || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

test: $(STAMP) $(ASSETS) system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

# Every benchmark, one after the other, then one report: bench/report.md, bench/report.json
# and bench/plots/*.png. Speed never fails it; a benchmark that crashed does.
bench: $(STAMP) system-deps
	$(BIN)/python -m bench.report --run

# The main job on the built-in simulated F-series car: identify, plan, program, verify.
# Its data directory (demo P-Data, generated on first use) is kept in .ecuworks-demo.
DEMO_HOME ?= .ecuworks-demo

demo: $(STAMP)
	$(BIN)/python -m ecuworks --home $(DEMO_HOME) demo

# The long fault suite (about 20 minutes): 50 tester SIGKILLs + resume, 20 connection drops,
# 20 voltage sags, an NRC storm, 10 simulator restarts, backend outages during sync. It
# prints runs / recovered / bricked ECUs / lost records and fails unless all recovered.
faults: $(STAMP)
	$(BIN)/python -m bench.faults

# Fuzzing: a million hypothesis inputs over the decoders and the simulator's servers (about
# 15 minutes), then schemathesis against the OpenAPI schemas of the workstation and backend.
fuzz: $(STAMP)
	$(BIN)/python -m bench.fuzz
	$(BIN)/python -m bench.api_fuzz

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --allow-unsafe --generate-hashes --extra dev --strip-extras \
	  -o requirements.lock pyproject.toml

# A first look: the simulated f-series car and the web UI together (Ctrl-C stops both).
serve: $(STAMP) $(ASSETS)
	$(BIN)/python -m ecuworks --home $(DEMO_HOME) serve --demo

clean:
	rm -rf node_modules $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis $(DEMO_HOME)
