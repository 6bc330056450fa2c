"""The report: the accuracy gate, statistics against hand-computed cases, plots that are real PNGs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench.analysis import report
from dlbench.analysis.parity import load_parity
from tasks import TASKS
from tests.conftest import needs_data, real_data_dir
from tests.support.cli import cli, launch


def _row(fw, task, acc, profile="full", seed=0, epoch_s=1.0, **kw):
    return {"framework": fw, "framework_version": "1", "task": task, "profile": profile, "seed": seed,
            "status": "ok", "test_accuracy": acc, "steady_epoch_s": epoch_s, "first_epoch_s": 2 * epoch_s,
            "machine_busy": False, "device_requested": "cpu", "threads": 2, **kw}  # fmt: skip


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


def test_time_to_target_counts_runs_that_never_reached_it(tmp_path):
    rows = [_row("a", "mnist_cnn", 0.99, seed=0, time_to_target_s=10.0),
            _row("a", "mnist_cnn", 0.99, seed=1, time_to_target_s=None),
            _row("a", "mnist_cnn", 0.99, seed=2, time_to_target_s=None),
            _row("b", "mnist_cnn", 0.99, seed=0, time_to_target_s=10.0),
            _row("b", "mnist_cnn", 0.99, seed=1, time_to_target_s=30.0),
            _row("b", "mnist_cnn", 0.99, seed=2, time_to_target_s=None)]  # fmt: skip
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (table,) = report.summarise(report.load_runs(tmp_path)).values()
    md = report._markdown(table)
    line_a = next(ln for ln in md.splitlines() if ln.startswith("| a "))
    line_b = next(ln for ln in md.splitlines() if ln.startswith("| b "))
    assert "1 of 3" in line_a and "not reached" in line_a  # the one run's 10 s is not "the median"
    assert "2 of 3" in line_b and re.search(r"\|\s+30 \|", line_b)  # median of 10, 30 and never (+inf) is 30


def test_a_section_that_mixes_commits_says_so(tmp_path):
    rows = [_row("a", "iris_mlp", 0.9, seed=s, provenance={"git": {"commit": c * 40}}) for s, c in ((0, "a"), (1, "b"))]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli("report", "--results", str(tmp_path)).returncode == 0
    assert "Warning: these rows come from 2 commits" in (tmp_path / "report.md").read_text()


# ---------------------------------------------------------------- statistics, by hand

from math import comb  # noqa: E402

from dlbench.analysis.stats import compare, detectable, median_interval, min_p_value, runs_needed  # noqa: E402


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


def runs(values, spread=0.002):
    """Runs of 5 epochs each around the given per-run values."""
    return [[v * (1 + spread * d) for d in (-2, -1, 0, 1, 2)] for v in values]


def test_five_clearly_different_runs_are_ranked_three_are_not_enough():
    fast = [1.00, 1.03, 0.98, 1.01, 0.99]  # no ties between the two sides: the exact test applies
    slow = [1.4 * v for v in fast]
    c = compare("slow", runs(slow), "fast", runs(fast))
    assert abs(c.p_value - 2 / comb(10, 5)) < 1e-12  # complete separation over 5 vs 5 runs: p = 0.0079
    assert abs(c.ratio - 1.4) < 1e-9 and 1.3 < c.ci[0] <= c.ci[1] < 1.5
    assert c.verdict.startswith("fast is faster than slow by 1.40x [") and c.verdict.endswith(
        "p = 0.0079 over 5 vs 5 runs"
    )
    three = compare("slow", runs(slow[:3]), "fast", runs(fast[:3]))
    assert abs(three.p_value - 0.1) < 1e-12 and min_p_value(3, 3) == 0.1  # 2 / C(6, 3)
    assert three.verdict.startswith("not enough runs to rank: 3 vs 3 runs can never reach p < 0.05")
    assert "at least 4 each" in three.verdict and runs_needed() == 4 and min_p_value(4, 4) < 0.05
    same = compare("a", runs(fast), "b", runs(list(reversed(fast))))
    assert same.p_value == 1.0 and same.verdict.startswith("no significant difference with 5 vs 5 runs")


def test_epochs_of_one_run_are_not_independent_samples():
    # Two runs each, 50 epochs per run: pooling epochs would call this "significant"; over runs it cannot be.
    c = compare("a", [[2.0] * 50, [2.1] * 50], "b", [[1.0] * 50, [1.1] * 50])
    assert c.n == (2, 2) and not c.significant and c.verdict.startswith("not enough runs to rank")


def _mw_power(diff, cv, n, trials=20_000, seed=42):
    """The Mann-Whitney test's power, simulated here independently of stats.power (another seed, scipy's
    test one sample pair at a time would be slow: the exact p depends only on the ranks)."""
    from scipy import stats as st

    rng = np.random.default_rng(seed)
    s = np.sqrt(np.log1p(cv**2))
    a, b = rng.normal(0, s, (trials, n)), rng.normal(np.log1p(diff), s, (trials, n))
    return float(np.mean(st.mannwhitneyu(a, b, axis=1).pvalue < 0.05))


def test_the_detectable_difference_is_the_exact_tests_not_a_normal_approximation():
    d = detectable(0.05, 5, 0.05, 5)
    assert 0.78 <= _mw_power(d, 0.05, 5) <= 0.84  # power 0.8 at the difference it names
    # z(0.975) + z(0.8) = 2.8016: the normal approximation's 8.86 % has only about half that power
    assert _mw_power(2.8016 * np.sqrt(2 * 0.05**2 / 5), 0.05, 5) < 0.6 and d > 0.1
    assert detectable(0.05, 3, 0.05, 3) is None  # 3 vs 3 can never be significant, whatever the difference


# ---------------------------------------------------------------- the whole report on real runs


def test_report_on_a_three_seed_run_writes_markdown_html_and_valid_pngs(tmp_path):
    import matplotlib.image

    # the fake framework (numpy only) trains in a blink: the report, not the training, is under test here
    p = launch("run", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--seeds", "0,1,2", "--epochs", "5",
               "--results", str(tmp_path))  # fmt: skip
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


def test_the_headline_ranks_over_runs_and_sets_the_published_accuracy_beside_ours(tmp_path):
    from dlbench.analysis.headline import headline

    rows = [_timed("a", s, v) for s, v in enumerate([1.00, 1.02, 0.99, 1.01])]
    rows += [_timed("b", s, v) for s, v in enumerate([1.50, 1.53, 1.48, 1.52])]  # 4 vs 4: rankable
    rows += [_timed("c", s, v) for s, v in enumerate([1.20, 1.25])]  # 2 runs: never rankable
    rows += [_timed("a", s, 1.0, profile="quick", acc=0.90) for s in range(2)]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = headline(report.load_runs(tmp_path))
    full = text[text.index("**mnist_cnn, full profile**") :].split("\n\n")[0]
    # one comparison survives Holm's correction over the family (b; c cannot be ranked with 2 runs)
    assert full.startswith("**mnist_cnn, full profile** — lowest median epoch: a; slower than it after Holm's")
    assert "b 1.50x" in full and "not enough runs to rank: c" in full and "picked from these same runs" in full
    assert "published 99.00 % (the seed, Keras's Simple MNIST convnet" in full and "0.9900–0.9900" in full
    quick = text[text.index("**mnist_cnn, quick profile**") :]
    assert "not comparable with any published figure" in quick.split("\n\n")[0]
    assert "| b           | 4      | 0.9900     | 4            | 1.51" in text and "slower, Holm p = 0.029" in text


def _on(boot_id, row):
    return {**row, "provenance": {"machine": {"boot_id": boot_id}}}


def _cells(text: str, drop: tuple[int, ...] = ()) -> list[list[str]]:
    """The cells of a markdown table's header and rows, without the columns `drop`."""
    rows = [ln.split("|") for ln in text.splitlines() if ln.startswith("| ")]
    return [[c for i, c in enumerate(r) if i not in drop] for r in rows]


@settings(max_examples=12, deadline=None)
@given(machine=st.floats(0.2, 5.0), other=st.lists(st.sampled_from("abc"), min_size=1, max_size=6))
def test_speed_is_ranked_within_one_boot_and_the_other_boots_count_for_accuracy(tmp_path_factory, machine, other):
    """Runs from another boot (another sitting: its CPU runs every framework `machine` times as fast, and b
    faster still) change no timing figure and no verdict of the headline or of the report's speed table; they
    count as runs for accuracy, and the text names the boot the timings come from."""
    from dlbench.analysis.headline import headline

    folder = tmp_path_factory.mktemp("boots")
    speed, jitter = {"a": 1.0, "b": 1.5, "c": 1.2}, (1.00, 1.02, 0.99, 1.01)
    one = [_on("A" * 36, _timed(fw, s, v * j)) for fw, v in speed.items() for s, j in enumerate(jitter)]
    later = [_on("B" * 36, _timed(fw, 10 + i, machine * speed[fw] * (0.5 if fw == "b" else 1)))
             for i, fw in enumerate(other)]  # fewer runs than boot A's 12, so A is the sitting ranked  # fmt: skip

    def texts(rows):
        (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        df = report.load_runs(folder)
        (table,) = report.summarise(df).values()
        return headline(df), report.speed_section(table, df[df["status"] == "ok"])

    (head, section), (head_mixed, section_mixed) = texts(one), texts(one + later)
    assert _cells(head, drop=(2,)) == _cells(head_mixed, drop=(2,))  # all but the runs counted for accuracy
    assert _cells(section) == _cells(section_mixed)
    verdict = head[head.index("**mnist_cnn") :].split(" Speed from")[0]
    assert verdict == head_mixed[head_mixed.index("**mnist_cnn") :].split(" Speed from")[0]
    for text in (head_mixed, section_mixed):
        assert f"over the runs on boot {'A' * 8} only (the runs of 1 other boot(s) count for accuracy" in text
    assert "other boot" not in head + section
    runs = {c[1].strip(): int(c[2]) for c in _cells(head_mixed)[1:]}  # [0]: the header
    assert runs == {fw: 4 + other.count(fw) for fw in "abc"}  # every run counts for accuracy


def test_the_headline_corrects_for_the_family_and_leaves_gated_frameworks_unranked(tmp_path):
    from dlbench.analysis.headline import headline

    jitter = (1.00, 1.02, 0.99, 1.01)
    rows = [_timed(fw, s, v * j) for fw, v in (("a", 1.0), ("b", 1.5), ("c", 1.6)) for s, j in enumerate(jitter)]
    rows += [_timed("d", s, 2.0 * j, acc=0.5) for s, j in enumerate(jitter)]  # far below MNIST's accuracy floor
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = headline(report.load_runs(tmp_path))
    # b and c: each p = 0.029 alone; Holm over the two makes both 0.057: neither is called slower
    assert "not distinguishable from it with these runs after Holm's correction: b, c" in text
    assert "not ranked, outside the accuracy gate: d" in text and "not ranked: accuracy gate" in text


def test_the_headline_counts_runs_per_tier_and_names_a_lone_framework(tmp_path):
    from dlbench.analysis.headline import headline

    rows = [_timed(fw, s, v, tier="default") for fw, v in (("a", 1.0), ("b", 1.5)) for s in range(3)]
    rows += [_timed("a", s, 0.9, tier="tuned") for s in range(3)]  # a's tuned runs are not 6 runs of a
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = headline(report.load_runs(tmp_path))
    assert text.startswith("3 runs per framework and task")
    tuned = text[text.index("tier tuned)**") :].split("\n\n")[0]
    assert "only a ran in this setting." in tuned and "lowest median epoch" not in tuned


def test_the_headline_sets_each_tuned_tier_against_its_own_default(tmp_path):
    from dlbench.analysis.headline import headline

    jitter = (1.00, 1.01, 0.99, 1.02)  # distinct run medians: ties would move Mann-Whitney off its exact p
    rows = [_timed(fw, s, v * j, tier="default") for fw, v in (("a", 1.0), ("b", 1.5)) for s, j in enumerate(jitter)]
    rows += [_timed("a", s, 0.8 * j, tier="tuned") for s, j in enumerate(jitter)]  # faster: 0.80x
    rows += [_timed("b", s, 1.5 * 1.3 * j, tier="tuned") for s, j in enumerate(jitter)]  # slower: 1.30x
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = headline(report.load_runs(tmp_path))
    block = text[text.index("**Tuned tier against default, full profile") :]
    a, b = (next(line for line in block.splitlines() if line.startswith(f"| mnist_cnn | {fw} ")) for fw in "ab")
    assert "| 4, 4 " in a and "| 0.80 [" in a and "faster, p = 0.029" in a
    assert "| 1.30 [" in b and "slower, p = 0.029" in b and "never within the epochs run (4 seed pairs)" in b
    no_tuned = [r for r in rows if r["tier"] == "default"]
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in no_tuned))
    assert "Tuned tier against default" not in headline(report.load_runs(tmp_path))


def test_the_readme_headlines_are_the_reference_headlines_verbatim():
    """Nothing in the README's or docs' headlines is typed in by hand: each block is its folder's headline.md,
    speed.md or tables.md; the README shows the reference's tables."""
    from tests.support.cli import ROOT

    pattern = r"<!-- (?:headline|speed|tables): (\S+) -->\n(.*?)<!-- /(?:headline|speed|tables) -->"
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = {page: re.findall(pattern, page.read_text(), flags=re.S) for page in pages}
    assert "results/reference/tables.md" in dict(found[ROOT / "README.md"]), "the README lost the reference's tables"
    for page, blocks in found.items():
        for path, block in blocks:
            assert block == (ROOT / path).read_text(), f"{page.name}: {path}"
        for image in re.findall(r"!\[[^]]*\]\(((?:\.\./)?results/[^)]+)\)", page.read_text()):
            assert (page.parent / image).resolve().is_file(), f"{page.name}: {image}"


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
