# Two commands for a new user: `make bench` (set up, run the quick benchmark, print its table) and
# `make test` (set up, run the tests). Setup is idempotent: an environment is rebuilt only when its
# requirements file changed.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
# Real data may already be on this machine (CI points this at ../shared/data); else it is downloaded.
export DLBENCH_DATA_DIR ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
BENCH_ARGS ?=

.PHONY: setup bench test lint clean
setup: $(VENV)/.stamp

$(VENV)/.stamp: requirements/main.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/main.txt
	touch $@

bench: setup
	$(PY) harness.py run $(BENCH_ARGS)
	$(PY) harness.py report

test: setup
	$(PY) -m pytest -q tests

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
