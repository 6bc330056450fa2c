# Two commands for a new user: `make bench` (set up, run the speed protocol, print its verdicts) and
# `make test` (set up, run the tests). Setup builds one virtual environment per requirements/NAME.in
# (main -> .venv, NAME -> .venv-NAME) with uv, from the lock file for its Python (NAME-pyX.Y.lock: every
# package pinned, with hashes). It is idempotent: an environment is rebuilt only when its lock changed.
# `make lock` refreshes the locks from the .in files.

# The main environment's Python: PYTHON=..., else the newest python3.X >= 3.11 on PATH that runs
# (Keras 3.15 needs 3.11; a pyenv shim for a version that is not selected does not run, so it is skipped).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
UV_VERSION := 0.13.9
UV := .uv/bin/uv
PY := .venv/bin/python
MAIN_LOCK := requirements/main-py$(PYVER).lock
EXTRA := $(filter-out main,$(basename $(notdir $(wildcard requirements/*.in))))
# Wheels kept locally for pip (PIP_FIND_LINKS or pip's find-links setting, e.g. a CPU build of torch)
# are offered to uv too.
FIND_LINKS := $(or $(UV_FIND_LINKS),$(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
ifneq ($(FIND_LINKS),)
export UV_FIND_LINKS := $(FIND_LINKS)
endif
export UV_CACHE_DIR ?= $(HOME)/.cache/uv
# Real data may already be on this machine (CI points this at ../shared/data); else it is downloaded.
export DLBENCH_DATA_DIR ?= $(if $(wildcard ../shared/data/README.md),$(abspath ../shared/data),)
BENCH_ARGS ?=

.PHONY: setup bench test test-slow lint lock clean
setup: .venv/.stamp $(EXTRA:%=.venv-%/.stamp)

$(UV):
	@test -n "$(PYTHON)" || { echo "error: no Python >= 3.11 found: install one, or give PYTHON=/path/to/python3.X"; exit 2; }
	$(PYTHON) -m venv .uv && .uv/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The stamp records which lock built the environment: the harness copies it into every row's provenance.
define stamp
printf '{"lock": "%s", "sha256": "%s"}\n' $(1) $$(sha256sum $(1) | cut -d' ' -f1) > $(2)
endef

.venv/.stamp: requirements/main.in $(wildcard $(MAIN_LOCK)) | $(UV)
	@test -f $(MAIN_LOCK) || { echo "error: no lock for Python $(PYVER) ($(MAIN_LOCK)): run \`make lock\`, or give PYTHON=python3.11|3.12|3.13"; exit 2; }
	$(UV) venv --quiet --allow-existing --python $(PYTHON) .venv
	VIRTUAL_ENV=.venv $(UV) pip sync --quiet --require-hashes $(MAIN_LOCK)
	@$(call stamp,$(MAIN_LOCK),$@)

# Other environments (MXNet 1.9.1 needs numpy<1.24, so Python 3.11): the Python named in the .in file's
# "# python:" line: pythonX.Y on PATH where it runs, else pyenv's installed X.Y (a pyenv shim for a version
# that is not selected does not run), else what uv finds or downloads where the network allows. If it cannot
# be built, setup says so in one line and carries on: the harness records that framework's rows as
# unavailable, and its tests skip.
.SECONDEXPANSION:
.venv-%/.stamp: requirements/%.in $$(wildcard requirements/$$*-py*.lock) | $(UV)
	@py=$$(sed -n 's/^# python: *//p' requirements/$*.in); lock=requirements/$*-py$$py.lock; \
	exe=$$(for p in python$$py $(HOME)/.pyenv/versions/$$py.*/bin/python$$py; do \
	  $$p -c '' 2>/dev/null && { echo $$p; break; }; done); \
	( $(UV) venv --quiet --allow-existing --python $${exe:-$$py} .venv-$* \
	  && VIRTUAL_ENV=.venv-$* $(UV) pip sync --quiet --require-hashes $$lock \
	  && $(call stamp,$$lock,$@) ) \
	|| { rm -rf .venv-$*; echo "warning: could not build .venv-$* (needs Python $$py): $* runs will be 'unavailable'"; }

bench: setup
	$(PY) harness.py speed $(BENCH_ARGS)

# `make test` leaves the tests marked slow (every framework's interpreter end to end: conformance, parity of
# all, each adapter's candidates, Ray, the assessment, the seed recipe) to `make test-slow`; CI (.ci/run) runs both.
test: setup
	$(PY) -m pytest -q -m "not slow" tests
	@# the framework-neutral data code must also work under MXNet's numpy 1.23
	if [ -x .venv-mxnet/bin/python ]; then .venv-mxnet/bin/python -m pytest -q tests/test_data.py; fi

test-slow: setup
	$(PY) -m pytest -q -m slow tests

lint: setup
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# Every package pinned with hashes, for this platform: the main environment for Python 3.11-3.13 (the
# versions found), every other environment for the Python its .in file names.
lock: | $(UV)
	@for v in 3.11 3.12 3.13; do \
	  $(UV) pip compile --quiet --generate-hashes --python-version $$v requirements/main.in \
	    -o requirements/main-py$$v.lock || exit 1; done
	@for e in $(EXTRA); do py=$$(sed -n 's/^# python: *//p' requirements/$$e.in); \
	  $(UV) pip compile --quiet --generate-hashes --python-version $$py requirements/$$e.in \
	    -o requirements/$$e-py$$py.lock || exit 1; done

clean:
	rm -rf .venv .venv-* .uv .pytest_cache
