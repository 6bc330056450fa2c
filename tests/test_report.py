"""The report: the accuracy gate, statistics against hand-computed cases, plots that are real PNGs."""

from __future__ import annotations

import json

import pandas as pd

from dlbench.analysis import report
from dlbench.analysis.parity import load_parity
from tests.conftest import needs_data, real_data_dir
from tests.support.cli import cli


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
    tables = report.summarise(report.load_runs(tmp_path), load_parity(tmp_path)[0])
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


# ---------------------------------------------------------------- statistics, by hand

from math import comb, pi, sqrt  # noqa: E402

import numpy as np  # noqa: E402

from dlbench.analysis.stats import bootstrap_ci, compare  # noqa: E402


def test_bootstrap_interval_of_two_points_is_their_range():
    # Resampled medians of [0, 10]: 0 (p 1/4), 5 (1/2), 10 (1/4): the 2.5 and 97.5 percentiles are 0 and 10.
    assert bootstrap_ci([0.0, 10.0]) == (0.0, 10.0)
    assert bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0) and bootstrap_ci([7.0]) == (7.0, 7.0)


def test_bootstrap_interval_of_a_large_sample_matches_the_asymptotic_width():
    x = np.random.default_rng(1).standard_normal(400)
    lo, hi = bootstrap_ci(x, seed=0)
    # The sample median's standard error is sqrt(pi / 2) / sqrt(n) for a standard normal: 0.0627 at n = 400.
    expected = 2 * 1.96 * sqrt(pi / 2) / sqrt(400)
    assert lo < np.median(x) < hi and abs((hi - lo) / expected - 1) < 0.25, (lo, hi, expected)
    assert bootstrap_ci(x, seed=0) == (lo, hi)  # a fixed seed: the same interval every time


def test_a_clearly_different_pair_is_ranked_and_an_equal_pair_is_not():
    fast = [1.00, 1.01, 1.02, 0.99, 1.03, 0.98, 1.015, 1.005]  # no ties: the exact test applies
    slow = [2 * t for t in fast]
    c = compare("slow", slow, "fast", fast)
    assert c.ratio == 2.0 and 1.9 < c.ci[0] <= c.ci[1] < 2.1
    assert abs(c.p_value - 2 / comb(16, 8)) < 1e-12  # complete separation, exact two-sided p
    assert c.verdict == "fast faster, 2.00x"
    same = compare("a", fast, "b", list(reversed(fast)))
    assert same.p_value == 1.0 and same.verdict.startswith("no significant difference")
    # Three runs each can never be ranked: complete separation gives p = 2 / C(6, 3) = 0.1.
    three = compare("slow", slow[:3], "fast", fast[:3])
    assert abs(three.p_value - 0.1) < 1e-12 and three.verdict.startswith("no significant difference")


# ---------------------------------------------------------------- the whole report on real runs


def test_report_on_a_three_seed_run_writes_markdown_html_and_valid_pngs(tmp_path):
    import matplotlib.image

    r = cli("run", "--frameworks", "torch", "--tasks", "iris_mlp", "--seeds", "0,1,2", "--epochs", "5",
            "--results", str(tmp_path))  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    md = (tmp_path / "report.md").read_text()
    assert "## Environment" in md and "## iris_mlp (quick profile)" in md
    html = (tmp_path / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<table>" in html and "<img" in html
    pngs = sorted((tmp_path / "plots" / "quick").glob("*.png"))
    names = {p.stem for p in pngs}
    assert {"learning_curves_iris_mlp", "accuracy_vs_time", "steady_epoch", "first_vs_steady", "peak_memory"} <= names
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
        h, w, _ = matplotlib.image.imread(p).shape  # decodes: a real image, not just a header
        assert h > 200 and w > 200
        assert f"]({p.relative_to(tmp_path)})" in md


# ---------------------------------------------------------------- the assessment


def test_code_lines_count_code_only(tmp_path):
    from dlbench.analysis.assess import code_lines

    f = tmp_path / "m.py"
    src = '"""Module\ndocstring."""\n\n# a comment\nimport os\n\n\ndef f(x):\n    """Doc."""\n'
    f.write_text(src + "    return (x +\n            1)  # why\n")
    assert code_lines(f) == 4  # import, def, and the two lines of the return


@needs_data
def test_assess_measures_every_pipeline_and_the_report_shows_it(tmp_path):
    from frameworks import ENVIRONMENTS, FRAMEWORKS

    r = cli("assess", "--results", str(tmp_path), "--data-dir", str(real_data_dir()), timeout=900)
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "assessment.json").read_text())
    for pipeline, m in out["etl"].items():
        envs = {ENVIRONMENTS[fw.env] for fw in FRAMEWORKS.values() if fw.pipeline == pipeline}
        if not all(env.python.exists() for env in envs):  # its framework's environment is not built here
            assert "make setup" in m["error"]
            continue
        assert m["samples"] == 54000 and m["samples_per_s"] > 1000, (pipeline, m)
    assert set(out["etl"]) == {fw.pipeline for fw in FRAMEWORKS.values() if fw.pipeline}
    assert out["install_mib"]["torch"] > 100 and all(n > 20 for n in out["code_lines"].values())
    rows = [_row("torch", "iris_mlp", 0.9, history=[{"epoch_s": 1.0}])]
    (tmp_path / "runs.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert cli("report", "--results", str(tmp_path)).returncode == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Assessment" in md and "tf.data" in md and "Apache MXNet" in md and "attic.apache.org" in md


def test_microbench_writes_pytest_benchmark_json_and_a_side_by_side_table(tmp_path):
    r = cli("microbench", "--frameworks", "torch", "--results", str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "microbench" / "torch.json").read_text())
    groups = {b["group"] for b in data["benchmarks"]}
    assert len(groups) == 6 and "mnist_cnn: 10 training steps of 128" in groups
    assert all(b["stats"]["median"] > 0 and b["extra_info"]["framework"] == "torch" for b in data["benchmarks"])
    table = (tmp_path / "microbench.md").read_text()
    assert "| benchmark" in table and "torch" in table and "imdb_lstm: one inference batch of 32" in table


def test_the_committed_reference_results_still_load_as_schema_0(tmp_path):
    import shutil

    from tests.support.cli import ROOT

    shutil.copy(ROOT / "results" / "reference" / "runs.jsonl", tmp_path / "runs.jsonl")
    df = report.load_runs(tmp_path)
    assert len(df) == 21 and set(df["schema"]) == {0}
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "## mnist_cnn (full profile)" in (tmp_path / "report.md").read_text()


def test_new_rows_carry_the_schema(tmp_path):
    from dlbench.protocol import SCHEMA

    r = cli("run", "--frameworks", "torch", "--tasks", "iris_mlp", "--epochs", "2", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    (row,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert row["schema"] == SCHEMA == 1
    assert report.load_runs(tmp_path)["schema"].tolist() == [1]
