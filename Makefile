# Two commands for a new user: `make bench` (set up, run the quick benchmark, print its table) and
# `make test` (set up, run the tests). Setup is idempotent: an environment is rebuilt only when its
# requirements file changed.
PYTHON ?= python3.11
VENV := .venv
VENV_MX := .venv-mxnet
PY := $(VENV)/bin/python
# Real data may already be on this machine (CI points this at ../shared/data); else it is downloaded.
export DLBENCH_DATA_DIR ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
BENCH_ARGS ?=

.PHONY: setup bench test lint clean
setup: $(VENV)/.stamp $(VENV_MX)/.stamp

$(VENV)/.stamp: requirements/main.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/main.txt
	touch $@

# MXNet 1.9.1 needs numpy<1.24, so Python <= 3.11. If this environment cannot be built, the rest still
# works: the harness records mxnet rows as unavailable.
$(VENV_MX)/.stamp: requirements/mxnet.txt
	@( $(PYTHON) -m venv $(VENV_MX) \
	  && $(VENV_MX)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements/mxnet.txt \
	  && touch $@ ) \
	|| { rm -rf $(VENV_MX); echo "warning: could not create $(VENV_MX) (MXNet needs Python <= 3.11; PYTHON=$(PYTHON)): mxnet runs will be 'unavailable'"; }

bench: setup
	$(PY) harness.py run $(BENCH_ARGS)
	$(PY) harness.py report

test: setup
	$(PY) -m pytest -q tests
	@# the framework-neutral data code must also work under MXNet's numpy 1.23
	if [ -x $(VENV_MX)/bin/python ]; then $(VENV_MX)/bin/python -m pytest -q tests/test_data.py; fi

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
