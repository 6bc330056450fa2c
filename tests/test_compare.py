"""`harness.py compare` and `merge` on hand-made result folders: speed through each sitting's anchor (speed rows),
accuracy, memory and epochs over seeds (convergence rows), with the speed protocol's engine and words."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlbench.analysis.compare import METRICS, Side, compare_sets
from tests.support import rows as made
from tests.support.cli import cli


def run_row(seed, epoch_s, torch="2.13.0", task="mnist_cnn", fw="torch", **kw):
    # 4 steady epochs around the run's value: the run is the unit, its epochs are not samples
    hist = [{"epoch_s": 2 * epoch_s}] + [{"epoch_s": epoch_s * (1 + d)} for d in (-0.002, -0.001, 0.001, 0.002)]
    return {
        "schema": 2,
        "run_id": f"{fw}-{task}-{seed}-{epoch_s}-{torch}",
        "framework": fw,
        "task": task,
        "profile": "full",
        "seed": seed,
        "status": "ok",
        "threads": 2,
        "device_requested": "cpu",
        "precision": "fp32",
        "tier": "default",
        "test_accuracy": 0.99,
        "first_epoch_s": 2 * epoch_s,
        "steady_epoch_s": epoch_s,
        "history": hist,
        "provenance": {"packages": {"torch": torch}},
        **kw,
    }


def write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


BASE = [1.00, 1.03, 0.98, 1.01, 0.99]


def speed_row(sid, fw, value, group):
    """An MNIST process in sitting `sid` (its CPU named after it): tests/support/rows.py's, 8-step windows."""
    prov = {"machine": {"cpu": sid}, "packages": {fw: "1"}}
    return made.speed_row(sid, fw, value, group, steps=8, task="mnist_cnn", provenance=prov)


def sitting(machine: float, ratios: dict[str, float], groups: int = 6, sid: str = "S", seed: int = 0) -> list[dict]:
    """A sitting on a machine `machine` times as slow: per group a shared drift, torch and each framework at
    its ratio to torch, each process with 1 % noise of its own."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(groups):
        drift = machine * rng.lognormal(0, 0.05)
        rows.append(speed_row(sid, "torch", 1e-3 * drift * rng.lognormal(0, 0.01), g))
        rows += [speed_row(sid, fw, 1e-3 * r * drift * rng.lognormal(0, 0.01), g) for fw, r in ratios.items()]
    return rows


def write_speed(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_an_unchanged_pair_shows_no_change_and_exits_0(tmp_path):
    a = write(tmp_path / "a", [run_row(s, v) for s, v in enumerate(BASE)])
    b = write(tmp_path / "b", [run_row(s, v) for s, v in enumerate(reversed(BASE))])
    r = cli("compare", str(a), str(b))
    assert r.returncode == 0, r.stderr
    assert "test accuracy" not in r.stdout and "line(s): equivalent, or no change beyond 5 %" in r.stdout
    assert sorted(p.name for p in b.iterdir()) == ["runs.jsonl"], "compare never writes into an input"
    r = cli("compare", str(a), str(b), "--all", "-o", str(tmp_path / "c.md"))
    accuracy = next(ln for ln in r.stdout.splitlines() if "test accuracy" in ln)
    assert "equivalent, 1x" in accuracy
    assert (tmp_path / "c.md").read_text().strip() == r.stdout.strip()
    for inside in (b / "runs.jsonl", write_speed(tmp_path / "s", sitting(1.0, {"jax": 2.0})) / "speed.jsonl"):
        before = inside.read_bytes()
        r = cli("compare", str(inside.parent), str(inside.parent), "-o", str(inside))
        assert r.returncode == 2 and "a file compare read" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert inside.read_bytes() == before, "nothing recorded is overwritten"


@settings(max_examples=30, deadline=None)
@given(
    scale=st.floats(0.5, 2.0),
    n_base=st.integers(1, 5),
    n_new=st.integers(1, 5),
    threshold=st.sampled_from([0.05, 0.1, 0.3]),
)
def test_every_line_is_shown_or_counted_and_a_shown_line_matters(scale, n_base, n_new, threshold):
    """The default listing hides only the equivalent lines and those with no change beyond the threshold."""
    a = pd.DataFrame([run_row(s, v, peak_rss_mib=500 * v) for s, v in enumerate(BASE[:n_base])])
    b = pd.DataFrame([run_row(s, v, peak_rss_mib=500 * scale * v) for s, v in enumerate(BASE[:n_new])])
    sa, sb = Side(a, [], []), Side(b, [], [])
    short, full = compare_sets(sa, sb, threshold)[0], compare_sets(sa, sb, threshold, show_all=True)[0]
    lines = [ln for ln in short.splitlines() if ln.startswith("| torch")]
    every = [ln for ln in full.splitlines() if ln.startswith("| torch")]
    counted = int(short.split(" line(s): equivalent")[0].rsplit("\n", 1)[-1]) if "line(s)" in short else 0
    assert len(lines) + counted == len(every)
    for ln in lines:
        ratio = float(ln.split("|")[6].split()[0])
        assert abs(np.log(ratio)) > np.log1p(threshold) and "equivalent" not in ln, ln


@settings(max_examples=25, deadline=None)
@given(machine=st.floats(0.2, 5.0), relative=st.sampled_from([1.0, 1.3]), seed=st.integers(0, 1000))
@example(machine=1.0, relative=1.3, seed=0)
def test_through_the_anchor_a_uniformly_slower_machine_cancels_and_a_relative_change_remains(machine, relative, seed):
    """The new sitting runs on a machine `machine` times as slow: only jax's own change against torch
    (`relative`) is left, decided at 6 groups a side; keras-jax did not change (equivalent, hidden)."""
    base = Side(pd.DataFrame(), sitting(1.0, {"jax": 2.0, "keras-jax": 3.0}, sid="A", seed=seed), [])
    new = Side(pd.DataFrame(), sitting(machine, {"jax": 2.0 * relative, "keras-jax": 3.0}, sid="B", seed=seed + 1), [])
    text, worse = compare_sets(base, new, 0.05, show_all=True)
    lines = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if "÷ the anchor's" in ln}
    assert set(lines) == {"jax", "keras-jax"}, text
    ratio = float(lines["jax"].split("|")[6].split()[0])
    assert abs(ratio / relative - 1) < 0.03, lines["jax"]  # the machine cancelled
    assert ("x slower [" in lines["jax"]) == (relative > 1) == worse
    assert "equivalent" in lines["keras-jax"] or "undecided" in lines["keras-jax"]
    assert "slower" not in lines["keras-jax"].split("|")[7].split(",")[0]


def test_a_30_percent_slowdown_exits_1_and_names_the_torch_upgrade_a_smaller_one_does_not_fail(tmp_path):
    a = write_speed(tmp_path / "a", sitting(1.0, {"jax": 2.0}, sid="A"))
    rows = sitting(2.0, {"jax": 2.6}, sid="B", seed=1)
    for r in rows:
        r["provenance"]["packages"] = {"jax": "0.13"} if r["framework"] == "jax" else r["provenance"]["packages"]
    b = write_speed(tmp_path / "b", rows + [speed_row("B", "mxnet", 1e-3, 0)])
    r = cli("compare", str(a), str(b), "--threshold", "5%")
    assert r.returncode == 1, r.stdout + r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("| jax "))
    assert "1.30x slower" in line and "speed, through torch" in line
    assert "package jax: 1 → 0.13" in r.stdout
    assert "- one side only: mxnet on mnist_cnn (speed)" in r.stdout  # only on one side: listed apart
    assert cli("compare", str(a), str(b), "--threshold", "40%").returncode == 0


def test_compare_through_an_anchor_that_is_missing_is_one_line(tmp_path):
    a = write_speed(tmp_path / "a", sitting(1.0, {"jax": 2.0}))
    r = cli("compare", str(a), str(a), "--anchor", "jax")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--anchor jax" in r.stderr, r.stderr


def test_compare_bad_input_is_one_line(tmp_path):
    for args, words in (
        (["compare", str(tmp_path / "none"), str(tmp_path)], "holds no runs.jsonl or speed.jsonl rows"),
        (["compare", str(tmp_path), str(tmp_path), "--threshold", "lots"], "--threshold must be"),
    ):
        r = cli(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and words in r.stderr, r.stderr


def test_merge_keeps_every_row_once_and_refuses_an_unknown_schema(tmp_path):
    rows = [run_row(s, v) for s, v in enumerate(BASE)]
    a, b = write(tmp_path / "a", rows[:3]), write(tmp_path / "b", rows[2:])
    old = dict(rows[0])
    old.pop("run_id")  # a row from before run_id: identified by its content
    c = write(tmp_path / "c", [old, old])
    r = cli("merge", str(a), str(b), str(c), "-o", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    merged = [json.loads(x) for x in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert len(merged) == 6 and "6 row(s) added" in r.stdout and "2 already there" in r.stdout  # rows[2], old
    r = cli("merge", str(a), "-o", str(tmp_path / "out"))  # again: nothing new
    assert "0 row(s) added" in r.stdout and "3 already there" in r.stdout
    future = write(tmp_path / "future", [{**rows[0], "run_id": "x", "schema": 99}])
    r = cli("merge", str(future), "-o", str(tmp_path / "out2"))
    assert r.returncode == 2 and "schema 99" in r.stderr and not (tmp_path / "out2" / "runs.jsonl").exists()


def test_the_seeds_own_recipe_is_its_own_setting_and_named_so(tmp_path):
    a = write(tmp_path / "a", [run_row(s, v) for s, v in enumerate(BASE)])
    b = write(tmp_path / "b", [run_row(s, v, recipe="seed") for s, v in enumerate(BASE)])
    r = cli("compare", str(a), str(b))
    assert "- base: torch on mnist_cnn (full, cpu, 2 threads, fp32, default)" in r.stdout
    assert "- new: torch on mnist_cnn (full, cpu, 2 threads, fp32, default, the seed's recipe)" in r.stdout


@settings(max_examples=40, deadline=None)
@given(metric=st.sampled_from(sorted(METRICS)), factor=st.sampled_from([0.6, 0.8, 1.25, 1.6]))
def test_a_significant_change_is_named_in_its_metric_s_own_words(metric, factor):
    """Memory smaller/larger, accuracy better/worse, epochs fewer/more: the direction is the metric's own (a
    0.83x peak RSS read "faster" in compare-edition2.md once)."""
    m = METRICS[metric]

    def side(f: float, tag: str) -> pd.DataFrame:
        scale = {"peak_rss_mib": 500, "test_accuracy": 0.5, "epochs_run": 10}
        values = lambda v: {m: k * v * (f if m == metric else 1) for m, k in scale.items()}  # noqa: E731
        return pd.DataFrame([run_row(s, 1.0, torch=tag, **values(v)) for s, v in enumerate(BASE)])

    text = compare_sets(Side(side(1.0, "a"), [], []), Side(side(factor, "b"), [], []), 0.05, show_all=True)[0]
    (line,) = [ln for ln in text.splitlines() if f"| {m.label} " in ln]
    assert f"x {m.up if factor > 1 else m.down} [" in line, line
