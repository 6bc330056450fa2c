"""`harness.py compare` and `merge` on hand-made result folders."""

from __future__ import annotations

import json

import pandas as pd
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dlbench.analysis.compare import METRICS, compare_sets
from tests.support.cli import cli


def run_row(seed, epoch_s, torch="2.13.0", task="mnist_cnn", fw="torch", **kw):
    # 4 steady epochs around the run's value: the run is the unit, its epochs are not samples
    hist = [{"epoch_s": 2 * epoch_s}] + [{"epoch_s": epoch_s * (1 + d)} for d in (-0.002, -0.001, 0.001, 0.002)]
    return {"schema": 2, "run_id": f"{fw}-{task}-{seed}-{epoch_s}-{torch}", "framework": fw, "task": task,
            "profile": "full", "seed": seed, "status": "ok", "threads": 2, "device_requested": "cpu",
            "precision": "fp32", "tier": "default", "test_accuracy": 0.99, "first_epoch_s": 2 * epoch_s,
            "steady_epoch_s": epoch_s, "history": hist, "provenance": {"packages": {"torch": torch}}, **kw}  # fmt: skip


def write(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


BASE = [1.00, 1.03, 0.98, 1.01, 0.99]


def test_an_unchanged_pair_shows_no_detectable_change_and_exits_0(tmp_path):
    a = write(tmp_path / "a", [run_row(s, v) for s, v in enumerate(BASE)])
    b = write(tmp_path / "b", [run_row(s, v) for s, v in enumerate(reversed(BASE))])
    r = cli("compare", str(a), str(b))
    assert r.returncode == 0, r.stderr
    assert "steady epoch" not in r.stdout and "line(s): no detectable change beyond 5 %; `--all` lists them" in r.stdout
    assert sorted(p.name for p in b.iterdir()) == ["runs.jsonl"], "compare never writes into an input"
    r = cli("compare", str(a), str(b), "--all", "-o", str(tmp_path / "c.md"))
    steady = next(ln for ln in r.stdout.splitlines() if "steady epoch" in ln)
    assert "no detectable change" in steady and "could detect" in steady
    assert (tmp_path / "c.md").read_text().strip() == r.stdout.strip()
    r = cli("compare", str(a), str(b), "-o", str(b / "runs.jsonl"))
    assert r.returncode == 2 and "one of the inputs" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@settings(max_examples=60, deadline=None)
@given(
    scale=st.floats(0.5, 2.0),
    n_base=st.integers(1, 5),
    n_new=st.integers(1, 5),
    threshold=st.sampled_from([0.05, 0.1, 0.3]),
)
def test_every_line_is_shown_or_counted_and_a_shown_line_matters(scale, n_base, n_new, threshold):
    """The default listing hides only lines with neither a change nor an undecided change beyond the threshold."""
    a = pd.DataFrame([run_row(s, v) for s, v in enumerate(BASE[:n_base])])
    b = pd.DataFrame([run_row(s, scale * v) for s, v in enumerate(BASE[:n_new])])
    short, full = compare_sets(a, b, threshold)[0], compare_sets(a, b, threshold, show_all=True)[0]
    lines = [ln for ln in short.splitlines() if ln.startswith("| torch")]
    every = [ln for ln in full.splitlines() if ln.startswith("| torch")]
    counted = int(short.split(" line(s): no detectable")[0].rsplit("\n", 1)[-1]) if "line(s)" in short else 0
    assert len(lines) + counted == len(every) > 0
    for ln in lines:
        ratio = float(ln.split("|")[6].split()[0])
        assert abs(ratio - 1) > threshold and "no detectable change" not in ln, ln


def test_a_20_percent_slowdown_over_5_runs_is_slower_exits_1_and_names_the_torch_upgrade(tmp_path):
    a = write(tmp_path / "a", [run_row(s, v) for s, v in enumerate(BASE)])
    b = write(tmp_path / "b", [run_row(s, 1.2 * v, torch="2.15.0") for s, v in enumerate(BASE)]
              + [run_row(0, 1.0, task="iris_mlp")])  # fmt: skip
    r = cli("compare", str(a), str(b), "--threshold", "5%")
    assert r.returncode == 1, r.stdout + r.stderr
    steady = next(ln for ln in r.stdout.splitlines() if "steady epoch" in ln)
    assert "| slower" in steady and "1.200" in steady
    assert "package torch: 2.13.0 → 2.15.0" in r.stdout
    assert "- new: torch on iris_mlp" in r.stdout  # only on one side: listed apart


def test_a_slowdown_below_the_threshold_does_not_fail(tmp_path):
    a = write(tmp_path / "a", [run_row(s, v) for s, v in enumerate(BASE)])
    b = write(tmp_path / "b", [run_row(s, 1.2 * v) for s, v in enumerate(BASE)])
    assert cli("compare", str(a), str(b), "--threshold", "25%").returncode == 0


NOISE = [1.00, 1.04, 0.97, 1.02, 0.99, 1.01]  # per seed: the machine's drift, shared by both frameworks of a seed


@settings(max_examples=30, deadline=None)
@given(machine=st.floats(0.2, 5.0), relative=st.sampled_from([1.0, 1.5]))
@example(machine=0.6875, relative=1.5)  # CI: jax's raw change 1.03, inside the threshold
@example(machine=1.0, relative=1.5)
def test_through_the_anchor_a_uniformly_slower_machine_cancels_and_a_relative_change_remains(machine, relative):
    """Another sitting scales every timing by `machine`: raw, everything moves; through the anchor only
    jax's own change relative to torch (`relative`) is left, found at 6 seeds a side."""

    def side(scale, jax_scale):
        return pd.DataFrame([run_row(s, scale * v, fw=fw) for s, v in enumerate(NOISE)
                             for fw, v in (("torch", v), ("jax", 2 * v * jax_scale))])  # fmt: skip

    base, new = side(1.0, 1.0), side(machine, relative)
    text, slower = compare_sets(base, new, 0.05, show_all=True, anchor="torch")
    lines = [ln for ln in text.splitlines() if "steady epoch" in ln]
    assert [ln.split("|")[1].strip() for ln in lines] == ["jax"] and "÷ torch's" in lines[0]
    assert f"{relative:.3f}" in lines[0].split("|")[6], lines[0]  # the ratio is the relative change, exactly
    assert ("| slower" in lines[0]) == (relative > 1) == slower
    raw = [ln for ln in compare_sets(base, new, 0.05, show_all=True)[0].splitlines() if "steady epoch" in ln]
    moved = {"torch": machine, "jax": machine * relative}  # raw, jax's change is the machine's times its own
    for ln in raw:
        fw = ln.split("|")[1].strip()
        if abs(moved[fw] - 1) > 0.1:  # (machine 0.6875 x relative 1.5 is 1.03: no change, rightly)
            assert "no detectable change" not in ln, ln
        elif abs(moved[fw] - 1) < 0.01:
            assert "no detectable change" in ln, ln


@settings(max_examples=30, deadline=None)
@given(
    speeds=st.lists(st.floats(0.2, 5.0), min_size=2, max_size=2),
    torch_boot=st.lists(st.integers(0, 1), min_size=6, max_size=6),
    jax_boot=st.lists(st.integers(0, 1), min_size=6, max_size=6),
)
def test_the_anchor_bridges_only_through_its_run_on_the_same_boot(speeds, torch_boot, jax_boot):
    """In the new set each run of a seed may have run on either of two boots (two sittings, their CPUs
    `speeds` times as fast): only a jax run whose torch run of the same seed shares its boot is bridged, so
    the ratio through the anchor is jax's own change (1.5) whatever the boots' speeds; with no such pair
    there is no timing line at all."""

    def on(boot, row):
        return {**row, "provenance": {"machine": {"boot_id": f"boot-{boot}"}}}

    base = pd.DataFrame([on(0, run_row(s, v * k, fw=fw)) for s, v in enumerate(NOISE)
                         for fw, k in (("torch", 1), ("jax", 2))])  # fmt: skip
    new = pd.DataFrame([on(b[s], run_row(s, speeds[b[s]] * v * k, fw=fw)) for s, v in enumerate(NOISE)
                        for fw, k, b in (("torch", 1, torch_boot), ("jax", 3, jax_boot))])  # fmt: skip
    text = compare_sets(base, new, 0.05, show_all=True, anchor="torch")[0]
    lines = [ln for ln in text.splitlines() if "steady epoch" in ln]
    pairs = sum(t == j for t, j in zip(torch_boot, jax_boot, strict=True))
    assert len(lines) == (pairs > 0)
    if pairs:
        assert lines[0].split("|")[5].strip() == f"6, {pairs}", lines[0]  # runs (base, new): the bridged ones
        assert "1.500" in lines[0].split("|")[6], lines[0]


def test_compare_through_an_anchor_that_is_missing_is_one_line(tmp_path):
    a = write(tmp_path / "a", [run_row(s, v) for s, v in enumerate(BASE)])
    r = cli("compare", str(a), str(a), "--anchor", "jax")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--anchor jax" in r.stderr, r.stderr


def test_compare_bad_input_is_one_line(tmp_path):
    for args, words in (
        (["compare", str(tmp_path / "none"), str(tmp_path)], "cannot read"),
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
    """A time or a rate is faster/slower, memory smaller/larger, accuracy better/worse: the direction is
    the metric's own (a 0.83x peak RSS read "faster" in compare-edition2.md)."""
    label, higher_better, (better, worse) = METRICS[metric]

    def side(f: dict, tag: str) -> pd.DataFrame:  # f: metric -> factor (epochs come from the history)
        def at(m):
            return f.get(m, 1.0)

        return pd.DataFrame(
            [
                run_row(
                    s,
                    v * at("steady_epoch_s"),
                    torch=tag,
                    peak_rss_mib=500 * v * at("peak_rss_mib"),
                    eval_samples_per_s=1e4 / v * at("eval_samples_per_s"),
                    latency_b1_ms_p50=v * at("latency_b1_ms_p50"),
                    test_accuracy=0.5 * v * at("test_accuracy"),
                )
                for s, v in enumerate(BASE)
            ]
        )

    base, new = side({}, "a"), side({metric: factor}, "b")
    if metric == "first_epoch_s":  # run_row makes the first epoch twice the steady one: scale it alone
        new = base.copy()
        new["first_epoch_s"] *= factor
        new["history"] = [[{**h[0], "epoch_s": h[0]["epoch_s"] * factor}, *h[1:]] for h in new["history"]]
        new["run_id"] = new["run_id"] + "-new"
    text = compare_sets(base, new, 0.05, show_all=True)[0]
    (line,) = [ln for ln in text.splitlines() if f"| {label} " in ln]
    expected = better if (factor > 1) == higher_better else worse
    assert line.rstrip(" |").endswith(expected), line
