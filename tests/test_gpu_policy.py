"""The precision policy and device isolation, checked on a CPU; the GPU evidence comes from the rows and
parity tables measured on an H100 (tests/fixtures/h100-*, copied from ../shared/gpu/h100-2026-11-23)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pandas as pd
import pytest

import harness
from dlbench.analysis import report
from dlbench.analysis.parity import TOLERANCES
from tests.support.cli import cli, rows

FIXTURES = Path(__file__).parent / "fixtures"


def test_precision_is_passed_to_the_adapter_and_recorded(register, tmp_path):
    register("fake-ok", FAKE_MODE="ok")
    rc = harness.main(
        [
            "run",
            "--frameworks",
            "fake-ok",
            "--tasks",
            "iris_mlp",
            "--epochs",
            "1",
            "--precision",
            "bf16",
            "--results",
            str(tmp_path),
        ]
    )
    assert rc == 0
    (row,) = rows(tmp_path)
    assert row["precision"] == "bf16" and row["provenance"]["packages"]["precision"] == "bf16"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--precision", "tf32"], "--precision tf32 is an NVIDIA GPU format: on --device cpu use fp32"),
        (["--precision", "bf16", "--frameworks", "torch,mxnet"], "--precision bf16 is not implemented by mxnet"),
        (["--precision", "fp16"], "invalid choice"),
    ],
)
@pytest.mark.parametrize("cmd", ["run", "parity"])
def test_a_precision_that_cannot_apply_is_refused_in_one_line(cmd, args, words):
    r = cli(cmd, "--tasks", "iris_mlp", *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and words in lines[0], r.stderr


def test_device_cpu_hides_every_gpu_from_the_worker(register, tmp_path):
    register("fake-ok", FAKE_MODE="ok")
    assert (
        harness.main(
            ["run", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--epochs", "1", "--results", str(tmp_path)]
        )
        == 0
    )
    (row,) = rows(tmp_path)
    assert row["provenance"]["packages"]["cuda_visible_devices"] == ""  # what the worker's environment held


def test_torch_compile_rows_record_peak_device_memory_through_the_same_adapter():
    """torch-compile is torch's tuned tier now: the same module, so the same peak_device_mib (null on a CPU,
    a number on a GPU), not a re-export that could go missing."""
    from frameworks import ALIASES, FRAMEWORKS

    name, tier = ALIASES["torch-compile"]
    assert tier == "tuned" and callable(importlib.import_module(FRAMEWORKS[name].module).peak_device_mib)


@pytest.mark.slow
def test_a_real_bf16_run_trains_and_says_so(tmp_path):
    r = cli(
        "run",
        "--frameworks",
        "torch",
        "--tasks",
        "iris_mlp",
        "--precision",
        "bf16",
        "--epochs",
        "20",
        "--results",
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    (row,) = rows(tmp_path)
    assert row["status"] == "ok" and row["precision"] == "bf16" and row["test_accuracy"] > 0.6


def test_rows_of_another_precision_are_another_section(tmp_path):
    base = {
        "schema": 2,
        "framework": "a",
        "task": "iris_mlp",
        "profile": "quick",
        "status": "ok",
        "test_accuracy": 0.9,
        "steady_epoch_s": 1.0,
        "threads": 2,
        "device_requested": "cpu",
    }
    import json

    lines = [{**base, "seed": 0, "precision": "fp32"}, {**base, "seed": 0, "precision": "bf16", "steady_epoch_s": 3.0}]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert len(report.summarise(report.load_runs(tmp_path))) == 2


def test_the_h100_rows_report_device_memory_and_their_own_section(tmp_path):
    (tmp_path / "runs.jsonl").write_text((FIXTURES / "h100-quick-runs.jsonl").read_text())
    tables = report.summarise(report.load_runs(tmp_path))
    assert {k[2] for k in tables} == {"gpu"}  # device requested: the rows predate the field, read from "cuda"
    mnist = next(t for k, t in tables.items() if k[1] == "mnist_cnn")
    assert "peak_device_mib" in mnist and (mnist["peak_device_mib"].dropna() > 0).any()


def test_tf32_tolerances_cover_what_tf32_did_on_an_h100_and_fp32_would_not():
    """At the frameworks' defaults (TF32 in cuDNN and XLA), an H100 gave forward differences of 1.0e-4 to
    1.6e-4 and trajectories of 1e-3 to 6e-3: all fail fp32's tolerances and pass tf32's."""
    p = pd.read_csv(FIXTURES / "h100-parity-defaults.csv")
    fwd, traj = p["forward_rel_diff"].max(), p["trajectory_rel_diff"].max()
    assert fwd > TOLERANCES["fp32"][0] and traj > TOLERANCES["fp32"][1]
    assert fwd <= TOLERANCES["tf32"][0] and traj <= TOLERANCES["tf32"][1]
    # and the fairness bugs parity caught (1.5e-2 and more over 10 steps) would still fail at tf32
    assert TOLERANCES["tf32"][1] < 1.5e-2
