# Two commands on a fresh machine (Python 3.11 is all it needs):
#   make run   — set up and start the bot with the local LINE simulator
#   make test  — set up and run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.PHONY: run test check bench bench-scale chaos screenshots clean

# What production installs (make run needs nothing more)…
$(STAMP): requirements.txt constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 が必要です ($(PYTHON) が見つかりません)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	@touch $(STAMP)

# …and what the tests and checks add.
$(DEV): $(STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	@touch $(DEV)

run: $(STAMP)
	$(PY) bot.py demo

# The checks first (lint + import order, types, the layer contract), then the whole suite.
test: $(DEV) check
	$(PY) -m pytest -q

check: $(DEV)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(DEV)
	$(PY) -m bench.webhook

# National scale (issue 13): 10 / 1,000 / 10,000 experts on SQLite and PostgreSQL; see bench/README.md.
bench-scale: $(DEV)
	$(PY) -m bench.scale

# Faults (PostgreSQL/Redis/Sentinel/worker/malformed/…) against servers of its own; see bench/README.md.
chaos: $(DEV)
	$(PY) -m bench.chaos

# The README's and docs/WALKTHROUGH.md's pictures, taken by the browser tests.
screenshots: $(DEV)
	$(PY) -m pytest -q tests/test_browser.py tests/test_browser_page.py tests/test_browser_walkthrough.py
	$(PY) -m simulator.screenshots page-ops-panel page-unread-badge

clean:
	rm -rf $(VENV) var
