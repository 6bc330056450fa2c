"""The one table renderer (dlbench/analysis/tables.py): the speed sitting's verdicts beside the convergence runs'
accuracy, per task, in tables.md and speed.md alike."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench.analysis import tuning
from dlbench.analysis.tables import edition as tables
from dlbench.analysis.tables import speed_md, steps_to_target
from tests.support.cli import cli

TIMES = {
    ("torch", "default", ""): 1e-3,
    ("jax", "default", ""): 0.5e-3,
    ("mxnet", "default", ""): 1e-3,
    ("torch", "tuned", "compile"): 0.7e-3,
    ("jax", "tuned", "scan-8"): 0.5e-3,
}


def speed_rows(rng, groups=6, task="iris_mlp"):
    rows = []
    for g in range(groups):
        common = rng.lognormal(0, 0.05)  # the group's shared slowness: paired away
        for (fw, tier, cand), t in TIMES.items():
            v = t * common * rng.lognormal(0, 0.01)
            rows.append(
                {
                    "kind": "speed",
                    "status": "ok",
                    "framework": fw,
                    "tier": tier,
                    "candidate": cand,
                    "task": task,
                    "profile": "speed",
                    "seed": g,
                    "round": g,
                    "anchor": "torch",
                    "threads": 2,
                    "machine_busy": False,
                    "sitting": {"id": "S1", "boot_id": "b00t", "started": "t"},
                    "window_kind": "epoch",
                    "window_steps": [8, 8],
                    "window_s": [8 * v, 8 * v],
                    "epoch_steps": 8,
                    "provenance": {"machine": {"cpu": "test cpu"}},
                }
            )
    return rows


def run(fw, acc, seed, tier="default", cand="", reach=3, recipe="ours", profile="full"):
    hist = [{"val_accuracy": 0.95 if e >= reach else 0.5, "epoch_s": 0.1} for e in range(1, 11)]
    return {
        "framework": fw,
        "tier": tier,
        "candidate": cand,
        "task": "iris_mlp",
        "status": "ok",
        "profile": profile,
        "recipe": recipe,
        "seed": seed,
        "test_accuracy": acc,
        "n_train": 120,
        "history": hist,
    }


def line(text, name, tier="default"):
    return next(ln for ln in text.splitlines() if ln.startswith(f"| {name} ") and f"| {tier} " in ln)


def cell(text_line, i):
    return text_line.split("|")[i + 1].strip()


def test_each_variant_has_its_verdict_and_its_own_seeds_accuracy():
    rng = np.random.default_rng(0)
    runs = [run("torch", a, s) for s, a in enumerate([0.90, 0.93, 0.87, 0.90, 0.97])]
    runs += [run("torch", 0.5, 9, recipe="seed"), run("torch", 0.1, 8, profile="quick")]  # neither counts
    runs += [run("torch", 0.2, s, "tuned", "compile") for s in range(3)]  # a tuned tier's runs: not its accuracy
    runs += [run("jax", 0.9, s, reach=1) for s in range(5)]
    text = tables(speed_rows(rng), pd.DataFrame(runs))
    assert "sitting S1 (boot b00t, test cpu, 2 threads), anchor torch" in text
    assert "no published figure; validation target 0.9." in text.split("**iris_mlp** — ")[1].splitlines()[0]
    torch = line(text, "torch")
    assert "anchor" in torch and cell(torch, 7) == "0.9000 [0.8700, 0.9700], 5 seed(s)" and cell(torch, 6) == ""
    ms = float(cell(torch, 3))  # its time per step x (3 epochs x 120 / 16 = 8 steps)
    seconds = float(cell(torch, 8).split(" s (24 steps)")[0])
    assert abs(seconds - ms * 24 / 1000) <= 0.01 * seconds and 0.9 < ms < 1.1
    assert "faster" in line(text, "jax") and " s (8 steps)" in line(text, "jax")
    assert "equivalent" in line(text, "mxnet") and "— (no convergence runs)" in line(text, "mxnet")
    compiled = line(text, "torch", "tuned: compile")
    assert "faster" in cell(compiled, 5) and "faster" in cell(compiled, 6)  # against the anchor and its default
    assert cell(compiled, 7) == "0.9000 [0.8700, 0.9700], 5 seed(s) (its default's runs)"
    assert cell(compiled, 8).endswith(" s (24 steps)") and float(cell(compiled, 3)) < 0.8
    scan = line(text, "jax", "tuned: scan-8")  # as fast as its default, twice the anchor's speed
    own = cell(scan, 6)  # "equivalent, 1.01x slower, within ±10 % [...]": the interval lies inside the margin
    assert "faster" in cell(scan, 5) and own.startswith("equivalent, ")
    assert abs(float(own[12:].split("x")[0]) - 1) < 0.02, own


def test_steps_to_target_is_the_first_epoch_at_the_target_times_an_epochs_steps():
    r = pd.Series(run("torch", 0.9, 0, reach=4))
    assert steps_to_target(r) == 4 * 8
    assert math.isinf(steps_to_target(pd.Series(run("torch", 0.9, 0, reach=99))))


@settings(max_examples=50, deadline=None)
@given(accs=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=7))
def test_the_accuracy_cell_is_the_median_and_range_of_the_variants_own_seeds(accs):
    rows = speed_rows(np.random.default_rng(1), groups=4)
    text = tables(rows, pd.DataFrame([run("torch", a, s) for s, a in enumerate(accs)] + [run("jax", 0.0, 0)]))
    a = np.asarray(accs)
    want = f"{np.median(a):.4f} [{a.min():.4f}, {a.max():.4f}], {len(a)} seed(s)"
    assert want in line(text, "torch") and "0.0000 [0.0000, 0.0000], 1 seed(s)" in line(text, "jax")


def test_report_writes_tables_md_at_the_top_of_report_md(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in speed_rows(rng)))
    runs = [
        {
            **run("torch", 0.9, s),
            "schema": 2,
            "run_id": str(s),
            "threads": 2,
            "device_requested": "cpu",
            "first_epoch_s": 0.1,
            "steady_epoch_s": 0.1,
        }
        for s in range(3)
    ]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    key = {"framework": "mxnet", "task": "iris_mlp"}  # tune kept mxnet's default: said above the table
    tuning.save(tmp_path, [tuning.Choice(key, "default", tuning.NO_CANDIDATES)])
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    tables_md = (tmp_path / "tables.md").read_text()
    assert (tmp_path / "plots" / "tables.png").stat().st_size > 1000
    assert "Tuned tier = default tier (tune kept the default: `tuning.md`) for mxnet." in tables_md
    top = "# dlbench report\n\n" + tables_md + "\n![ratios to the anchor](plots/tables.png)\n"
    assert (tmp_path / "report.md").read_text().startswith(top)


def test_before_any_convergence_run_the_tables_hold_the_verdicts_and_say_accuracy_is_missing():
    text = tables(speed_rows(np.random.default_rng(3)), pd.DataFrame())
    assert "anchor" in line(text, "torch") and "faster" in line(text, "jax", "tuned: scan-8")
    assert all("— (no convergence runs)" in line(text, f) for f in ("torch", "jax", "mxnet"))


def test_the_seeds_own_recipe_runs_stand_beside_the_published_figure_not_in_the_table():
    imdb = lambda *a, **k: {**run(*a, **k), "task": "imdb_lstm", "n_train": 25000}  # noqa: E731
    runs = [imdb("torch", a, s, recipe="seed") for s, a in enumerate([0.83, 0.81, 0.85])]
    runs += [imdb("tensorflow", 0.8123, 0, recipe="seed"), imdb("torch", 0.5, 0)]
    text = tables(speed_rows(np.random.default_rng(4), task="imdb_lstm"), pd.DataFrame(runs))
    assert (
        "The seed's own recipe (`--recipe seed`: all 25,000 training examples, 10 epochs, no early stopping, "
        "validated on the test set), test accuracy beside the published about 82 %: tensorflow 0.8123 "
        "[0.8123, 0.8123], 1 seed(s); torch 0.8300 [0.8100, 0.8500], 3 seed(s)."
    ) in text
    assert "0.5000 [0.5000, 0.5000], 1 seed(s)" in line(text, "torch")  # the table holds our recipe's runs only


def test_speed_md_and_tables_md_print_the_same_verdicts_from_the_one_renderer():
    """speed.md (no convergence runs) and tables.md (with them) share every verdict cell: one function makes both."""
    rows = speed_rows(np.random.default_rng(5))
    with_runs, speed = tables(rows, pd.DataFrame([run("torch", 0.9, 0)])), speed_md(rows)
    for name, tier in (("torch", "default"), ("jax", "default"), ("mxnet", "default"), ("torch", "tuned: compile")):
        assert line(with_runs, name, tier).split("|")[1:8] == line(speed, name, tier).split("|")[1:8]
    assert "test accuracy" not in speed and "test accuracy" in with_runs
