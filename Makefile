# The two commands a new user runs are `make demo` and `make test`; each sets up what it
# needs. Everything runs from a virtual environment built from the hash-locked
# requirements.lock, so a fresh machine gets exactly the versions CI tested.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv test lint fmt bench demo faults clean system-deps

all: test

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the interop tests use (tshark's DoIP/UDS dissectors). Installed only
# when missing; needs root, as CI and the development machines have.
system-deps:
	@command -v tshark >/dev/null 2>&1 || { \
	  echo "installing Debian tshark (interop tests decode our DoIP traffic with it)"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark >/dev/null; }

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.transfer
	$(BIN)/python -m bench.sim
	$(BIN)/python -m bench.identify
	$(BIN)/python -m bench.program
	$(BIN)/python -m bench.pdata
	$(BIN)/python -m bench.plan

# The main job on the built-in simulated F-series car: identify, plan, program, verify.
# Its data directory (demo P-Data, generated on first use) is kept in .ecuworks-demo.
DEMO_HOME ?= .ecuworks-demo

demo: $(STAMP)
	$(BIN)/python -m ecuworks --home $(DEMO_HOME) demo

# The long fault suites: the tester killed at 50 random points of a programming session.
faults: $(STAMP)
	ECUWORKS_CRASH_POINTS=50 $(BIN)/python -m pytest -q tests/execute/test_crash.py

# Regenerate the lock after changing dependencies in pyproject.toml.
lock:
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --allow-unsafe --generate-hashes --extra dev --strip-extras \
	  -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis $(DEMO_HOME)
