"""The conformance suite: every registered adapter, on every task, in its own interpreter.

Each framework's measurements come from tests/support/conformance.py run in a subprocess with that
framework's interpreter and environment variables (Keras backends cannot share a process, and MXNet
lives in another Python environment). A new adapter gets these tests by being registered.
PyTorch runs first and exports trained weights; every other framework must reproduce its predictions.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from frameworks import ENVIRONMENTS, FRAMEWORKS
from tasks import TASKS
from tests.support.cli import ROOT

pytestmark = pytest.mark.slow  # minutes of real frameworks: `make test-slow` runs it (and CI)

EXPORTER = "torch"
_cache: dict[str, dict] = {}


@pytest.fixture(scope="session")
def exchange(tmp_path_factory):
    return tmp_path_factory.mktemp("exchange")


def measurements(name: str, exchange) -> dict:
    """Run tests/conformance.py for one framework (all tasks) once per session."""
    if EXPORTER not in _cache and name != EXPORTER:
        measurements(EXPORTER, exchange)  # the weights others load must exist first
    if name not in _cache:
        fw = FRAMEWORKS[name]
        env_ = ENVIRONMENTS[fw.env]
        python = env_.python
        if not python.exists():
            pytest.skip(f"{fw.env} environment missing ({env_.venv}): {env_.missing_hint}")
        env = {**os.environ, **fw.env_vars, "OMP_NUM_THREADS": "2"}
        args = [str(python), "tests/support/conformance.py", fw.module, ",".join(TASKS), str(exchange)]
        r = subprocess.run(
            args + (["--export"] if name == EXPORTER else []),
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert r.returncode == 0, f"{name}: conformance run failed:\n{r.stderr[-3000:]}"
        _cache[name] = json.loads(r.stdout.strip().splitlines()[-1])
    return _cache[name]


CASES = [(f, t) for f in FRAMEWORKS for t in TASKS]
IMPORTERS = [(f, t) for f, t in CASES if f != EXPORTER]


@pytest.fixture(params=CASES, ids=[f"{f}-{t}" for f, t in CASES])
def m(request, exchange):
    framework, task = request.param
    return measurements(framework, exchange)[task]


@pytest.fixture(params=IMPORTERS, ids=[f"{f}-{t}" for f, t in IMPORTERS])
def m_importer(request, exchange):
    framework, task = request.param
    return measurements(framework, exchange)[task]


def test_parameter_count_is_the_tasks_plus_documented_delta(m):
    assert m["n_params"] == m["expected_params"]


def test_canonical_weights_round_trip_exactly(m):
    assert m["shapes_ok"] and m["roundtrip_max_abs"] == 0.0


def test_predictions_match_the_numpy_reference(m):
    assert m["reference_rel_diff"] <= 1e-5


def test_predictions_match_weights_exported_by_torch(m_importer):
    assert m_importer["exchange_rel_diff"] <= 1e-5


def test_inference_is_deterministic_dropout_off(m):
    assert m["inference_deterministic"]


def test_three_epochs_on_a_small_set_reduce_the_loss(m):
    assert m["loss_after"] < m["loss_before"]


def test_per_layer_parameter_counts_are_the_tasks(m):
    assert m["layer_params"] == m["expected_layer_params"]
    assert sum(m["layer_params"].values()) == m["n_params"]  # no parameter outside the task's layers


def test_fresh_model_has_keras_initialiser_statistics(m):
    assert m["init_problems"] == []


def test_the_module_provides_every_function_of_the_contract(m):
    assert m["missing_from_contract"] == []
