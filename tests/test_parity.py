"""`harness.py parity`: every framework trains the same model, and a broken adapter is named."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import harness
from dlbench.analysis.parity import FORWARD_TOL, TRAJECTORY_TOL
from frameworks import ENVIRONMENTS, FRAMEWORKS
from tasks import TASKS
from tests.support.cli import cli


@pytest.mark.slow
def test_every_framework_passes_on_every_task(tmp_path):
    r = cli("parity", "--results", str(tmp_path), timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    df = pd.read_csv(tmp_path / "parity.csv")
    built = [f for f, fw in FRAMEWORKS.items() if ENVIRONMENTS[fw.env].python.exists()]
    assert (tmp_path / "parity.md").read_text().count("| pass") == len(built) * len(TASKS)
    for name, fw in FRAMEWORKS.items():
        rows = df[df["framework"] == name]
        assert sorted(rows["task"]) == sorted(TASKS), name
        if not ENVIRONMENTS[fw.env].python.exists():
            assert (rows["verdict"] == "unavailable").all()
            continue
        assert (rows["verdict"] == "pass").all(), rows[["task", "problems"]].to_string()
        assert (rows["forward_rel_diff"] <= FORWARD_TOL).all() and (rows["trajectory_rel_diff"] <= TRAJECTORY_TOL).all()
        assert rows["params_ok"].all() and rows["init_ok"].all()


@pytest.mark.parametrize(
    "mode, task, others, words",
    [  # the forward and initialisation checks are against numpy: they need no other framework to outvote
        ("relu", "iris_mlp", "", ["iris_mlp: predictions differ from the numpy reference"]),
        (
            "init",
            "iris_mlp",
            "",
            ["iris_mlp: 0.dense.kernel: max |w|", "exceeds the Glorot bound", "0.dense.bias: not zero"],
        ),
        (
            "eps",
            "iris_mlp",
            "torch,jax,",
            ["iris_mlp: trajectory differs from the frameworks' consensus", "final weights differ most in"],
        ),
        (
            "lstm-bias",
            "imdb_lstm",
            "torch,jax,",
            ["layer 2.lstm has 132096 parameters, expected 131584", "differ most in 2.lstm.bias"],
        ),
    ],
)
def test_a_broken_adapter_is_caught_and_located(mode, task, others, words, register, tmp_path, capsys):
    register("broken", "tests.support.broken_adapter", BROKEN=mode)
    rc = harness.main(["parity", "--frameworks", others + "broken", "--tasks", task, "--results", str(tmp_path)])
    assert rc == 1
    df = pd.read_csv(tmp_path / "parity.csv").set_index("framework")
    if others:  # the consensus: two frameworks that agree outvote the broken one
        assert df.loc["torch", "verdict"] == "pass" and df.loc["jax", "verdict"] == "pass"
    assert df.loc["broken", "verdict"] == "FAIL"
    for w in words:
        assert w in df.loc["broken", "problems"], df.loc["broken", "problems"]
    assert words[0] in capsys.readouterr().out  # printed too


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 64), cols=st.integers(1, 64), seed=st.integers(0, 2**16))
def test_the_init_check_passes_kerass_glorot_draws_of_any_size_and_fails_a_narrower_one(rows, cols, seed):
    """The variance check allows four standard errors of a sample variance (a 40-weight kernel strayed 25 %
    by chance); a kernel drawn from half the range is still caught once it has 50 weights."""
    from dlbench.worker.parity import init_problems
    from tasks.reference import glorot_limit

    rng = np.random.default_rng(seed)
    lim = glorot_limit("kernel", (rows, cols))
    assert init_problems(TASKS["iris_mlp"], {"0.dense.kernel": rng.uniform(-lim, lim, (rows, cols))}) == []
    narrow = rng.uniform(-lim / 2, lim / 2, (rows, cols))
    if rows * cols >= 50:
        assert init_problems(TASKS["iris_mlp"], {"0.dense.kernel": narrow}) != []
