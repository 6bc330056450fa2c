"""The report: the accuracy gate, statistics against hand-computed cases, plots that are real PNGs."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench.analysis import report
from dlbench.analysis.parity import load_parity
from tasks import TASKS
from tests.conftest import needs_data, real_data_dir
from tests.support.cli import cli, launch


def _row(fw, task, acc, profile="full", seed=0, epoch_s=1.0, **kw):
    return {
        "framework": fw,
        "framework_version": "1",
        "task": task,
        "profile": profile,
        "seed": seed,
        "status": "ok",
        "test_accuracy": acc,
        "steady_epoch_s": epoch_s,
        "first_epoch_s": 2 * epoch_s,
        "machine_busy": False,
        "device_requested": "cpu",
        "threads": 2,
        **kw,
    }


def test_the_gate_flags_low_or_outlying_accuracy_and_failed_parity(tmp_path):
    rows = [
        _row("a", "mnist_cnn", 0.988),
        _row("b", "mnist_cnn", 0.989),
        _row("c", "mnist_cnn", 0.980),  # below the full floor 0.988
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
    gates = {
        (k[0], k[1], f): g for k, tab in tables.items() for f, g in zip(tab["framework"], tab["gate"], strict=True)
    }
    assert gates["full", "mnist_cnn", "a"] == gates["full", "mnist_cnn", "b"] == "ok"
    assert gates["full", "mnist_cnn", "c"] == "✗ accuracy below 0.988"
    assert gates["full", "imdb_lstm", "d"] == "ok"
    assert gates["full", "imdb_lstm", "f"].startswith("✗ accuracy +0.030 from the median")
    assert gates["full", "imdb_lstm", "g"] == "✗ parity FAIL"
    assert gates["quick", "imdb_lstm", "d"] == gates["quick", "imdb_lstm", "f"] == "ok"
    md = report._markdown(next(tab for k, tab in tables.items() if k[:2] == ("full", "mnist_cnn")))
    line_c = next(ln for ln in md.splitlines() if ln.startswith("| c "))
    assert "(1)" in line_c and "(2)" in line_c  # its timings in parentheses: not comparable


def test_rows_of_different_settings_are_never_merged_into_one_median(tmp_path):
    rows = [_row("a", "iris_mlp", 0.9, profile="quick", seed=s, epoch_s=1.0, threads=2) for s in range(3)]
    rows.append(_row("a", "iris_mlp", 0.9, profile="quick", seed=9, epoch_s=50.0, threads=1, epochs_cap=1))
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tables = report.summarise(report.load_runs(tmp_path))
    assert len(tables) == 2
    steady = sorted(float(t["steady_epoch_s"].iat[0]) for t in tables.values())
    assert steady == [1.0, 50.0]  # each its own median, not one of {1, 1, 1, 50}
    assert cli("report", "--results", str(tmp_path)).returncode == 0
    md = (tmp_path / "report.md").read_text()
    assert "## iris_mlp (quick profile; threads 1, device cpu, epochs cap 1)" in md
    assert "## iris_mlp (quick profile; threads 2, device cpu)" in md


def _reaching(fw: str, seed: int, epoch: int | None, epochs: int = 6) -> dict:
    """An MNIST run whose validation accuracy first reaches the target (0.99) in `epoch` (None: never)."""
    hist = [{"epoch_s": 1.0, "val_accuracy": 0.995 if epoch and e >= epoch else 0.98} for e in range(1, epochs + 1)]
    return _row(fw, "mnist_cnn", 0.99, seed=seed, history=hist)


def test_epochs_to_target_counts_runs_that_never_reached_it(tmp_path):
    rows = [_reaching("a", 0, 2), _reaching("a", 1, None), _reaching("a", 2, None)]
    rows += [_reaching("b", 0, 2), _reaching("b", 1, 4), _reaching("b", 2, None)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (table,) = report.summarise(report.load_runs(tmp_path)).values()
    md = report._markdown(table)
    line_a = next(ln for ln in md.splitlines() if ln.startswith("| a "))
    line_b = next(ln for ln in md.splitlines() if ln.startswith("| b "))
    assert "1 of 3" in line_a and "not reached" in line_a  # the one run's epoch 2 is not "the median"
    assert "2 of 3" in line_b and re.search(r"\|\s+4 \|", line_b)  # median of 2, 4 and never is 4


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.floats(0.1, 10.0)), min_size=2, max_size=12))
def test_convergence_runs_rank_nothing(tmp_path_factory, runs):
    """Whatever their epochs, the convergence runs' report calls no framework faster or slower than another:
    speed verdicts are the speed protocol's alone."""
    folder = tmp_path_factory.mktemp("runs")
    rows = [
        _row(fw, "mnist_cnn", 0.99, seed=i, history=[{"epoch_s": 3 * v}] + [{"epoch_s": v}] * 3)
        for i, (fw, v) in enumerate(runs)
    ]
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert report.write_summary(folder, figures=False) == 0
    text = (folder / "report.md").read_text()
    assert not re.search(r"\b(faster|slower|fastest)\b", text), text


def test_a_section_that_mixes_commits_says_so(tmp_path):
    rows = [_row("a", "iris_mlp", 0.9, seed=s, provenance={"git": {"commit": c * 40}}) for s, c in ((0, "a"), (1, "b"))]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("report", "--results", str(tmp_path)).returncode == 0
    assert "Warning: these rows come from 2 commits" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------- statistics, by hand

from dlbench.analysis.stats import median_interval  # noqa: E402


def test_order_statistic_intervals_match_the_binomial_table():
    # Coverage of [x_(k), x_(n-k+1)] is 1 - 2 P(Bin(n, 1/2) <= k - 1). n = 6: k = 1 gives 1 - 2/64 = 96.875 %
    # (k = 2: 1 - 14/64 = 78 %); n = 10: k = 2 gives 1 - 2 * 11/1024 = 97.85 % (k = 3: 89 %).
    six = median_interval([6.0, 1.0, 5.0, 2.0, 4.0, 3.0])
    assert (six.low, six.high, six.coverage) == (1.0, 6.0, 1 - 2 / 64)
    ten = median_interval(range(1, 11))
    assert (ten.low, ten.high) == (2.0, 9.0) and abs(ten.coverage - (1 - 2 * 11 / 1024)) < 1e-12
    assert ten.label == "95 % CI (97.9 % exact, 10 runs)"


def test_fewer_than_six_runs_give_a_range_never_called_95_percent():
    three = median_interval([3.0, 1.0, 2.0])
    assert (three.low, three.high, three.coverage) == (1.0, 3.0, None) and three.label == "range of 3 runs"
    five = median_interval([1.0, 2.0, 3.0, 4.0, 5.0])  # 1 - 2/32 = 93.75 % < 95 %: no exact 95 % interval
    assert five.coverage is None and "95" not in five.label


def test_report_on_a_three_seed_run_writes_markdown_html_and_valid_pngs(tmp_path):
    import matplotlib.image

    # the fake framework (numpy only) trains in a blink: the report, not the training, is under test here
    p = launch(
        "run",
        "--frameworks",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--seeds",
        "0,1,2",
        "--epochs",
        "5",
        "--results",
        str(tmp_path),
    )
    assert p.wait(timeout=300) == 0, p.stderr.read()
    # the report, not this machine's load, is under test: a busy run's timings are left out of the timing
    # figures (tests/test_busy_rows.py), so rows measured while other tests ran are marked quiet here
    rows = [json.loads(ln) for ln in (tmp_path / "runs.jsonl").read_text().splitlines()]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps({**r, "machine_busy": False}) + "\n" for r in rows))
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


@pytest.mark.slow
@needs_data
def test_assess_measures_every_pipeline_and_the_report_shows_it(tmp_path):
    from frameworks import ENVIRONMENTS, FRAMEWORKS

    r = cli("assess", "--results", str(tmp_path), "--data-dir", str(real_data_dir()), timeout=2400)
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "assessment.json").read_text())
    for pipeline, kinds in out["etl"].items():
        envs = {ENVIRONMENTS[fw.env] for fw in FRAMEWORKS.values() if fw.pipeline == pipeline}
        for kind, m in kinds.items():
            if not all(env.python.exists() for env in envs):  # its framework's environment is not built here
                assert "make setup" in m["error"]
                continue
            assert len(m["samples_per_s"]) == 3 and min(m["samples_per_s"]) > 100, (pipeline, kind, m)
            if kind == "text":  # every framework's batches of the 25,000 real reviews are the reference's
                assert m["differing_reviews"] == [0, 0, 0], (pipeline, m)
    assert set(out["etl"]) == {fw.pipeline for fw in FRAMEWORKS.values() if fw.pipeline}
    assert out["install_mib"]["torch"] > 100 and all(n > 20 for n in out["code_lines"].values())
    known = {"public", "private", "deprecated", "missing", "not installed"}
    for found in out["apis"].values():  # every built environment's adapter: its names, each checked
        if found is not None:
            assert len(found["names"]) > 20 and {s.split(":")[0] for s in found["names"].values()} <= known
    rows = [_row("torch", "iris_mlp", 0.9, history=[{"epoch_s": 1.0}])]
    (tmp_path / "runs.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert cli("report", "--results", str(tmp_path)).returncode == 0
    md = (tmp_path / "report.md").read_text()
    assert "## Assessment" in md and "tf.data" in md and "Apache MXNet" in md and "attic.apache.org" in md


@pytest.mark.slow
def test_microbench_writes_pytest_benchmark_json_and_a_side_by_side_table(tmp_path):
    r = cli("microbench", "--frameworks", "torch", "--results", str(tmp_path), timeout=900)
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "microbench" / "torch.json").read_text())
    groups = {b["group"] for b in data["benchmarks"]}
    assert len(groups) == 2 * len(TASKS) and "mnist_cnn: 10 training steps of 128" in groups
    assert all(b["stats"]["median"] > 0 and b["extra_info"]["framework"] == "torch" for b in data["benchmarks"])
    table = (tmp_path / "microbench.md").read_text()
    assert "| benchmark" in table and "torch" in table and "imdb_lstm: one inference batch of 32" in table


def test_the_first_edition_reference_still_loads_as_schema_0(tmp_path):
    import shutil

    from tests.support.cli import ROOT

    # the first edition's rows (results/reference-1/ at c361f85, docs/editions.md)
    shutil.copy(ROOT / "tests" / "fixtures" / "edition1-runs.jsonl", tmp_path / "runs.jsonl")
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
    assert row["schema"] == SCHEMA == 2
    assert report.load_runs(tmp_path)["schema"].tolist() == [2]
    # schema 2: the resident memory when training starts, and the peak counted from there
    assert 50 < row["rss_before_train_mib"] <= row["train_peak_rss_mib"] <= row["peak_rss_mib"]


def _timed(fw, seed, epoch_s, profile="full", task="mnist_cnn", acc=0.99, **kw):
    """A row whose history has a first epoch and four steady ones around epoch_s."""
    hist = [{"epoch_s": 3 * epoch_s}] + [{"epoch_s": epoch_s * (1 + 0.002 * d)} for d in (-1, 0, 1, 2)]
    return _row(fw, task, acc, profile=profile, seed=seed, epoch_s=epoch_s, history=hist, **kw)


def test_the_readme_fits_on_a_screen_and_its_links_resolve():
    from tests.support.cli import ROOT

    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    unlinked = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if f"(docs/{p.name})" not in readme]
    assert unlinked == [], "every docs/ page is linked from the README"
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", page.read_text()):
            if not link.startswith("http"):
                assert (page.parent / link).exists(), f"{page.name}: {link}"
