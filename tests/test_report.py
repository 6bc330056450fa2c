"""The report: the accuracy gate, statistics against hand-computed cases, plots that are real PNGs."""

from __future__ import annotations

import json

import pandas as pd

import report


def _row(fw, task, acc, profile="full", seed=0, epoch_s=1.0, **kw):
    return {"framework": fw, "framework_version": "1", "task": task, "profile": profile, "seed": seed,
            "status": "ok", "test_accuracy": acc, "steady_epoch_s": epoch_s, "first_epoch_s": 2 * epoch_s,
            "machine_busy": False, **kw}  # fmt: skip


def test_the_gate_flags_low_or_outlying_accuracy_and_failed_parity(tmp_path):
    rows = [
        _row("a", "mnist_cnn", 0.988),
        _row("b", "mnist_cnn", 0.989),
        _row("c", "mnist_cnn", 0.980),  # below the full floor 0.985
        _row("d", "imdb_lstm", 0.83),
        _row("e", "imdb_lstm", 0.83),
        _row("f", "imdb_lstm", 0.86),  # 0.03 above the median: > tolerance 0.02
        _row("g", "imdb_lstm", 0.83),
        _row("d", "imdb_lstm", 0.70, profile="quick"),  # quick: a floor (0.55) only, no tolerance
        _row("f", "imdb_lstm", 0.60, profile="quick"),
    ]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pd.DataFrame([{"task": "imdb_lstm", "framework": "g", "verdict": "FAIL"}]).to_csv(tmp_path / "parity.csv")
    tables = report.summarise(report.load_runs(tmp_path), report.load_parity(tmp_path))
    gates = {(p, t, f): g for (p, t), tab in tables.items() for f, g in zip(tab["framework"], tab["gate"], strict=True)}
    assert gates["full", "mnist_cnn", "a"] == gates["full", "mnist_cnn", "b"] == "ok"
    assert gates["full", "mnist_cnn", "c"] == "✗ accuracy below 0.985"
    assert gates["full", "imdb_lstm", "d"] == "ok"
    assert gates["full", "imdb_lstm", "f"].startswith("✗ accuracy +0.030 from the median")
    assert gates["full", "imdb_lstm", "g"] == "✗ parity FAIL"
    assert gates["quick", "imdb_lstm", "d"] == gates["quick", "imdb_lstm", "f"] == "ok"
    md = report._markdown(tables["full", "mnist_cnn"])
    line_c = next(ln for ln in md.splitlines() if ln.startswith("| c "))
    assert "(1)" in line_c and "(2)" in line_c  # its timings in parentheses: not comparable
