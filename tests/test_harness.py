"""The harness end to end: rows for every outcome, the matrix going on, one-line CLI errors."""

from __future__ import annotations

import json

import pytest

import harness
from tests.support.cli import cli, rows

REQUIRED = (
    "framework framework_version task profile seed status error test_accuracy test_loss epochs_run "
    "stopped_early train_s first_epoch_s steady_epoch_s train_samples_per_s time_to_target_s "
    "eval_samples_per_s peak_rss_mib import_s n_params threads device history provenance "
    "others_cpu_pct machine_busy timestamp"
).split()


def test_end_to_end_run_gives_an_ok_row_with_every_field(tmp_path):
    r = cli("run", "--frameworks", "torch", "--tasks", "iris_mlp", "--results", str(tmp_path), "--epochs", "3")
    assert r.returncode == 0, r.stderr
    (row,) = rows(tmp_path)
    assert row["status"] == "ok" and row["error"] is None
    assert not set(REQUIRED) - set(row), set(REQUIRED) - set(row)
    assert row["epochs_run"] == 3 and len(row["history"]) == 3
    assert set(row["history"][0]) >= {"epoch_s", "train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert 0 < row["steady_epoch_s"] < row["wall_s"] and row["first_epoch_s"] > 0
    assert 0 <= row["test_accuracy"] <= 1 and row["peak_rss_mib"] > 50 and row["n_params"] == 2371
    prov = row["provenance"]
    assert prov["packages"]["torch"].startswith("2.13.0") and prov["python"].startswith("3.")
    assert prov["data"]["files"]["iris.csv"]["sha256"] and prov["machine"]["cpu_count"] >= 1
    report = cli("report", "--results", str(tmp_path))
    assert report.returncode == 0 and "iris_mlp" in report.stdout and "torch" in report.stdout
    assert (tmp_path / "report.md").is_file() and (tmp_path / "summary.csv").is_file()


@pytest.fixture
def fakes(register):
    for mode in ("raise", "hang", "segfault", "nan", "ok"):
        register(f"fake-{mode}", FAKE_MODE=mode)


def test_failures_become_rows_and_the_matrix_goes_on(fakes, tmp_path, capsys):
    names = "fake-raise,fake-hang,fake-segfault,fake-nan,fake-ok"
    rc = harness.main(
        [
            "run",
            "--frameworks",
            names,
            "--tasks",
            "iris_mlp",
            "--seeds",
            "0,1",
            "--timeout",
            "10",
            "--results",
            str(tmp_path),
        ]
    )
    assert rc == 0
    got = {(r["framework"], r["seed"]): r for r in rows(tmp_path)}
    assert len(got) == 10  # every pairing x seed, whatever happened
    for seed in (0, 1):
        assert got["fake-raise", seed]["status"] == "error"
        assert "deliberate failure in build" in got["fake-raise", seed]["error"]
        assert got["fake-hang", seed]["status"] == "timeout"
        assert got["fake-segfault", seed]["status"] == "crashed"
        assert "SIGSEGV" in got["fake-segfault", seed]["error"]
        assert got["fake-nan", seed]["status"] == "diverged" and "epoch 1" in got["fake-nan", seed]["error"]
        assert got["fake-ok", seed]["status"] == "ok"
    harness.main(["report", "--results", str(tmp_path)])
    assert "Failures" in (tmp_path / "report.md").read_text()


def test_the_clock_waits_for_sync(register, tmp_path):
    """Epoch times include work still running when train_epoch returns: the clock is read after sync."""
    for mode in ("async", "async-nosync"):
        register(mode, FAKE_MODE=mode)
    rc = harness.main(
        [
            "run",
            "--frameworks",
            "async,async-nosync",
            "--tasks",
            "iris_mlp",
            "--epochs",
            "2",
            "--results",
            str(tmp_path),
        ]
    )
    assert rc == 0
    got = {r["framework"]: [h["epoch_s"] for h in r["history"]] for r in rows(tmp_path)}
    assert all(t >= 0.5 for t in got["async"]), got
    assert all(t < 0.5 for t in got["async-nosync"]), got  # the control: without a waiting sync, it is missed


def test_missing_environment_gives_unavailable_rows(register, register_env, tmp_path):
    register_env("nowhere", ".venv-nowhere")
    register("ghost", env="nowhere")
    assert harness.main(["run", "--frameworks", "ghost", "--tasks", "iris_mlp", "--results", str(tmp_path)]) == 0
    (row,) = rows(tmp_path)
    assert row["status"] == "unavailable" and "make setup" in row["error"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "--frameworks", "tensorflw"], "unknown framework tensorflw"),
        (["run", "--tasks", "cifar"], "unknown task cifar"),
        (["run", "--seeds", "a,b"], "--seeds must be integers"),
        (["run", "--repeats", "0"], "--repeats must be between 1 and 1000"),
        (["run", "--repeats", "2", "--seeds", "0,1"], "either --seeds or --repeats"),
        (["run", "--threads", "0"], "--threads must be between"),
        (["run", "--epochs", "0"], "--epochs must be at least 1"),
        (["run", "--timeout", "-1"], "--timeout must be a positive"),
        (["run", "--profile", "huge"], "invalid choice"),
        (["run", "--epochs", "x"], "invalid int value"),
        (["report", "--results", "/nonexistent/dir"], "is not a folder"),
        (["frobnicate"], "invalid choice"),
        (["frobnicate"], "(see `python harness.py --help`)"),
        (["run", "--profile", "huge"], "(see `python harness.py run --help`)"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, words, tmp_path):
    r = cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr


def test_report_skips_malformed_lines_and_keeps_the_rest(tmp_path):
    good = {
        "schema": 1,
        "framework": "torch",
        "task": "iris_mlp",
        "profile": "quick",
        "seed": 0,
        "status": "ok",
        "framework_version": "2",
        "test_accuracy": 0.9,
        "steady_epoch_s": 0.1,
        "machine_busy": False,
    }
    (tmp_path / "runs.jsonl").write_text(json.dumps(good) + "\n{truncated\n" + json.dumps(good)[:20])
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0
    assert "skipped 2 malformed line(s)" in r.stderr and "0.9000" in r.stdout


def test_list_shows_frameworks_and_tasks():
    r = cli("list")
    assert r.returncode == 0 and "torch" in r.stdout and "imdb_lstm" in r.stdout and ".venv" in r.stdout


def test_the_matrix_runs_interleaved_seed_by_seed_with_frameworks_permuted_by_a_recorded_seed():
    from dataclasses import replace

    import numpy as np

    from dlbench.driver.config import Order, RunConfig
    from dlbench.driver.matrix import planned

    cfg = RunConfig(
        ("a", "b", "c"),
        ("iris_mlp", "mnist_cnn"),
        "quick",
        (0, 1),
        1,
        "cpu",
        None,
        10.0,
        None,
        None,
        False,
        None,
        "local",
        None,
        (),
        Order.INTERLEAVED,
        7,
    )
    plan = planned(cfg)
    assert [s for _, _, s in plan] == [0] * 6 + [1] * 6  # seed by seed
    assert [t for t, _, _ in plan[:6]] == ["iris_mlp"] * 3 + ["mnist_cnn"] * 3  # then task by task
    for i, (s, ti) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        perm = np.random.default_rng([7, s, ti]).permutation(3)
        assert [f for _, f, _ in plan[3 * i : 3 * i + 3]] == [cfg.frameworks[j] for j in perm]
    assert len({tuple(f for _, f, _ in plan[3 * i : 3 * i + 3]) for i in range(4)}) > 1  # not one fixed order
    fixed = planned(replace(cfg, order=Order.FIXED))
    assert fixed[:3] == [("iris_mlp", "a", 0), ("iris_mlp", "a", 1), ("iris_mlp", "b", 0)]


def test_rows_record_their_place_in_the_order(register, tmp_path):
    for name in ("fake-a", "fake-b"):
        register(name, FAKE_MODE="ok")
    args = ["run", "--frameworks", "fake-a,fake-b", "--tasks", "iris_mlp", "--seeds", "0,1", "--epochs", "1"]
    assert harness.main([*args, "--order-seed", "3", "--results", str(tmp_path)]) == 0
    got = rows(tmp_path)
    assert [r["run_index"] for r in got] == [0, 1, 2, 3] and {r["order"]["seed"] for r in got} == {3}
    assert [r["seed"] for r in got] == [0, 0, 1, 1] and {r["order"]["kind"] for r in got} == {"interleaved"}
