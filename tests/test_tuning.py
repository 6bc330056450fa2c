"""The tuned tier chosen by measurement (`harness.py tune`): the choice on hand-made probes and rows, its
record round-tripping, a stale choice never reused, and a tune sitting on fake frameworks end to end."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlbench.analysis import tuning
from dlbench.analysis.tuning import NONE_FASTER, PASS, Choice, Probe, choose
from dlbench.analysis.verdicts import Verdict
from dlbench.driver import tuning as driver
from dlbench.driver.config import TuneConfig, UsageError, Variant
from dlbench.protocol import Device, Precision, Tier
from frameworks import FRAMEWORKS, Candidate, Framework
from tasks import TASKS


def probe(name, verdict, ratio, parity=PASS):
    return Probe(name, parity, str(verdict), ratio, (ratio * 0.9, ratio * 1.1), 4, 1.0, 0.5)


def test_a_slower_or_tied_candidate_is_never_chosen_and_a_tie_keeps_the_default():
    assert choose([probe("a", Verdict.SLOWER, 1.3), probe("b", Verdict.EQUIVALENT, 0.97)]) == ("default", NONE_FASTER)
    assert choose([probe("a", Verdict.UNDECIDED, 0.8)])[0] == "default"  # faster-looking, within the noise
    assert choose([])[0] == "default"


def test_the_fastest_candidate_beyond_the_noise_is_chosen_and_a_parity_failure_never_is():
    got, words = choose(
        [
            probe("a", Verdict.FASTER, 0.8),
            probe("b", Verdict.FASTER, 0.5, parity="FAIL: x"),
            probe("c", Verdict.FASTER, 0.7),
            probe("d", Verdict.SLOWER, 0.6),
        ]
    )
    assert got == "c" and words.startswith("c: 1.43x faster")


verdicts = st.sampled_from([v for v in Verdict if v != Verdict.ANCHOR])


@given(st.lists(st.tuples(verdicts, st.floats(0.05, 20), st.booleans()), max_size=6))
def test_the_choice_is_the_default_or_the_fastest_candidate_that_passed_and_measured_faster(spec):
    probes = [probe(f"c{i}", v, r, PASS if ok else "FAIL: trajectory") for i, (v, r, ok) in enumerate(spec)]
    got, _ = choose(probes)
    eligible = [p for p in probes if p.verdict == Verdict.FASTER and p.parity == PASS]
    if not eligible:
        assert got == "default"
    else:
        chosen = next(p for p in probes if p.candidate == got)
        assert chosen in eligible and chosen.ratio == min(p.ratio for p in eligible)


def _key(**over):
    return {
        "framework": "torch",
        "task": "iris_mlp",
        "device": "cpu",
        "threads": 2,
        "precision": "fp32",
        "cpu": "Intel(R) Xeon(R)",
        "cpus_allowed": 2,
        "gpus": [],
        "packages": "abc",
        "candidates": ["compile"],
        **over,
    }


def test_tuning_json_round_trips_and_a_new_choice_replaces_the_old_for_its_key(tmp_path):
    a = Choice(
        _key(),
        "compile",
        "compile: 1.30x faster",
        (probe("compile", Verdict.FASTER, 0.77),),
        {"id": "s1", "boot_id": "b"},
        "2026-12-01T00:00:00+00:00",
    )
    b = Choice(_key(task="mnist_cnn"), "default", NONE_FASTER, (probe("compile", Verdict.SLOWER, 1.5),))
    tuning.save(tmp_path, [a, b])
    assert tuning.load(tmp_path) == [a, b]
    again = Choice(_key(), "default", NONE_FASTER)
    tuning.save(tmp_path, [again])
    assert tuning.load(tmp_path) == [b, again]
    assert json.loads((tmp_path / tuning.FILE).read_text())["schema"] == tuning.SCHEMA


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=12,
)


@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"choices": st.lists(json_values, max_size=3)}),
        st.fixed_dictionaries(
            {
                "choices": st.lists(
                    st.fixed_dictionaries({"key": json_values, "choice": json_values, "words": json_values}), max_size=3
                )
            }
        ),
    )
)
def test_any_json_in_tuning_json_is_read_without_an_error(tmp_path_factory, value):
    """A hand-edited or foreign tuning.json: its unusable entries are skipped, never a traceback."""
    folder = tmp_path_factory.mktemp("t")
    (folder / tuning.FILE).write_text(json.dumps(value))
    got = tuning.load(folder)
    assert all(isinstance(c.key, dict) and isinstance(c.choice, str) for c in got)
    tuning.lookup(got, _key())


@pytest.mark.parametrize(
    "change",
    [
        {"packages": "other"},
        {"cpu": "AMD EPYC"},
        {"cpus_allowed": 16},
        {"device": "gpu"},
        {"threads": 1},
        {"candidates": ["compile", "new"]},
    ],
)
def test_a_stale_choice_other_machine_or_stack_is_not_reused(change):
    recorded = [Choice(_key(), "compile", "compile: 1.30x faster")]
    assert tuning.lookup(recorded, _key()).choice == "compile"
    assert tuning.lookup(recorded, _key(**change)) is None


def test_a_tuned_run_without_a_recorded_choice_and_no_tuning_says_what_to_run(tmp_path):
    cfg = TuneConfig(("torch",), ("iris_mlp",), 2, Device.CPU, Precision.FP32, tmp_path, None, ())
    with pytest.raises(UsageError, match="harness.py tune --frameworks torch --tasks iris_mlp"):
        driver.resolve((Variant("torch", Tier.TUNED),), ("iris_mlp",), cfg)
    assert driver.resolve((Variant("torch", Tier.DEFAULT),), ("iris_mlp",), cfg) == {}  # nothing to resolve


def test_parity_checks_every_candidate_of_a_tuned_tier():
    from dlbench.driver.config import every_candidate

    got = every_candidate((Variant("torch", Tier.DEFAULT), Variant("jax", Tier.TUNED)), "cpu", FRAMEWORKS)
    assert got == (Variant("torch", Tier.DEFAULT), *(Variant("jax", Tier.TUNED, f"scan-{k}") for k in (8, 32, "epoch")))
    on_cpu = every_candidate((Variant("torch", Tier.TUNED),), "cpu", FRAMEWORKS)
    assert Variant("torch", Tier.TUNED, "compile-reduce-overhead") not in on_cpu  # CUDA graphs: a GPU only
    assert Variant("torch", Tier.TUNED, "compile-reduce-overhead") in every_candidate(
        (Variant("torch", Tier.TUNED),), "gpu", FRAMEWORKS
    )


CHOICES = st.sampled_from(["default", "a", "b"])


@given(
    chosen=st.dictionaries(st.sampled_from(["iris_mlp", "mnist_cnn", "imdb_lstm"]), CHOICES, min_size=1),
    with_default=st.booleans(),
)
def test_a_tuned_tier_whose_choice_is_the_default_is_measured_once_as_the_default(chosen, with_default):
    """Every asked task is measured exactly once per tier's configuration: the default tier's process takes the
    tasks where tune kept the default, a candidate's process only the tasks it was chosen for."""
    tasks = tuple(chosen)
    asked = (Variant("torch", Tier.DEFAULT),) * with_default + (Variant("torch", Tier.TUNED),)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "resolve", lambda *a, **k: {("torch", t): c for t, c in chosen.items()})
        got, tasks_of = driver.with_choices(asked, tasks, cfg=None, tune_first=False)
    runs = {str(v): tasks_of.get(str(v), tasks) for v in got}
    assert len(got) == len(set(got)) and all(v.candidate != "default" for v in got)
    for t, c in chosen.items():
        measured_as = "torch" if c == "default" else f"torch ({c})"
        assert t in runs[measured_as]
    if with_default:
        assert runs["torch"] == tasks  # asked for in its own right: every task
    else:
        assert set(runs.get("torch", ())) == {t for t, c in chosen.items() if c == "default"}
    for name, ts in runs.items():
        if name != "torch":
            assert set(ts) == {t for t, c in chosen.items() if f"torch ({c})" == name}


@pytest.fixture
def fake_slow(monkeypatch):
    """fake-slow with three candidates that scale its 0.2 s epoch (tests/support/fake_adapter.py), all
    passing the parity gate (a fake cannot pass the real one: test_a_candidate_that_fails_parity...)."""
    fakes = tuple(Candidate(name=n, changes=("execution",), source="a fake flag") for n in ("half", "same", "double"))
    fw = Framework(
        name="fake-slow",
        module="tests.support.fake_adapter",
        env="main",
        env_vars={"FAKE_MODE": "slow"},
        candidates=fakes,
    )
    monkeypatch.setitem(FRAMEWORKS, "fake-slow", fw)
    return fw


def test_a_tune_sitting_chooses_the_faster_candidate_and_a_tuned_run_uses_it(fake_slow, tmp_path, monkeypatch):
    from dlbench.driver import matrix
    from dlbench.driver.config import Executor, Order, RunConfig
    from dlbench.protocol import Profile

    monkeypatch.setattr(
        driver, "_parity_gate", lambda cfg, name, offered: {c.name: {"iris_mlp": PASS} for c in offered}
    )
    cfg = TuneConfig(
        ("fake-slow",), ("iris_mlp",), 1, Device.CPU, Precision.FP32, tmp_path, None, (), budget_per_task_s=45
    )
    assert driver.run(cfg) == 0
    (c,) = tuning.load(tmp_path)
    by = {p.candidate: p for p in c.probes}
    assert c.choice == "half" and by["half"].verdict == Verdict.FASTER and 0.4 < by["half"].ratio < 0.6, c
    assert by["double"].verdict == Verdict.SLOWER and 1.9 < by["double"].ratio < 2.1, c
    # "same" sleeps as long as the default: on a quiet machine its interval is a hair wide and may exclude 1
    # (CI: 1.0001 [1.00002, 1.0002]); wholly inside the margin, that is "equivalent", never "slower"
    assert abs(by["same"].ratio - 1) < 0.02 and by["same"].ratio > by["half"].ratio, c
    assert by["same"].verdict in (Verdict.EQUIVALENT, Verdict.UNDECIDED), c
    assert (tmp_path / "tuning" / "fake-slow" / "speed.jsonl").is_file() and c.sitting["boot_id"]
    assert re.search(r"\| iris_mlp +\| fake-slow +\| half +\| pass", (tmp_path / "tuning.md").read_text())
    run = RunConfig(
        frameworks=(Variant("fake-slow", Tier.TUNED),),
        tasks=("iris_mlp",),
        profile=Profile.QUICK,
        seeds=(0,),
        threads=1,
        device=Device.CPU,
        epochs=1,
        timeout_s=120,
        results=tmp_path,
        data_dir=None,
        resume=False,
        max_rss_mib=None,
        executor=Executor.LOCAL,
        ray_address=None,
        argv=(),
        order=Order.FIXED,
    )
    assert matrix.run(driver.resolved(run)) == 0  # as harness.py does: the recorded choice
    (row,) = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert row["tier"] == "tuned" and row["candidate"] == "half" and row["settings"]["candidate"] == "half"
    assert row["settings"]["execution"] == "numpy, half (a fake flag)"


def test_a_candidate_that_fails_parity_is_not_offered(fake_slow, tmp_path, monkeypatch):
    """The real gate: the fake's constant model fails parity, so nothing is measured and tuned = default."""
    ok = Framework(name="fake-ok", module="tests.support.fake_adapter", env="main", env_vars={"FAKE_MODE": "ok"})
    monkeypatch.setitem(FRAMEWORKS, "fake-ok", ok)
    monkeypatch.setitem(driver.REFERENCES, "fake-slow", "fake-ok")  # a reference without torch's start-up
    cfg = TuneConfig(
        ("fake-slow",), ("iris_mlp",), 1, Device.CPU, Precision.FP32, tmp_path, None, (), budget_per_task_s=45
    )
    assert driver.run(cfg) == 0
    (c,) = tuning.load(tmp_path)
    assert c.choice == "default" and c.words == NONE_FASTER
    assert all(p.parity != PASS and p.verdict == "not measured" for p in c.probes) and len(c.probes) == 3
    where = tmp_path / "tuning" / "fake-slow"
    assert not (where / "speed.jsonl").exists() and (where / "parity.md").is_file()


def _committed_tunings() -> list:
    import subprocess
    from pathlib import Path

    from tests.support.cli import ROOT

    out = subprocess.run(["git", "ls-files", "results/*/tuning.json"], cwd=ROOT, capture_output=True, text=True)
    return sorted(ROOT / Path(line).parent for line in out.stdout.split())


@pytest.mark.parametrize("folder", _committed_tunings(), ids=lambda p: p.name)
def test_a_committed_tuning_is_what_its_sittings_say(folder):
    """Every recorded choice regenerates from the tune sitting it names: one boot, each candidate's ratio and
    verdict recomputed, the choice choose()'s."""
    from dlbench.analysis.speed import diffs, label, load_speed
    from dlbench.analysis.verdicts import ALPHA, against_differences

    choices = tuning.load(folder)
    assert choices and (folder / "tuning.md").read_text() == tuning.section(choices)
    for c in choices:
        assert choose(c.probes) == (c.choice, c.words), c
        if not any(p.ratio for p in c.probes):
            continue
        every, warnings = load_speed(folder / "tuning" / c.key["framework"])
        rows = [r for r in every if r["sitting"]["id"] == c.sitting["id"]]  # a later tune of other tasks: its own
        assert not warnings and rows and len({r["sitting"]["boot_id"] for r in rows}) == 1
        assert rows[0]["sitting"] == c.sitting
        d = diffs(rows)[c.sitting["id"]][c.key["task"]]
        comps = {x.framework: x for x in against_differences(d, c.key["framework"], ALPHA, 0.10)}
        for p in c.probes:
            if p.ratio is None:
                continue
            got = comps[label({"framework": c.key["framework"], "tier": "tuned", "candidate": p.candidate})]
            assert (str(got.verdict), round(got.ratio, 9)) == (p.verdict, round(p.ratio, 9)), (c.key, p)


@given(tasks=st.lists(st.sampled_from(sorted(TASKS)), min_size=1, unique=True), per_task=st.integers(1, 900))
def test_a_tune_sittings_budget_grows_with_its_tasks(tasks, per_task):
    import harness
    from dlbench.driver import config

    a = harness.parser().parse_args(["tune", "--tasks", ",".join(tasks), "--budget", str(per_task)])
    cfg = config.tune_config(a, FRAMEWORKS, TASKS)
    assert cfg.budget_s == per_task * len(tasks)
    assert replace(cfg, tasks=tuple(tasks[:1])).budget_s == per_task  # a tuned run tunes only the tasks missing
    default = config.tune_config(harness.parser().parse_args(["tune", "--tasks", ",".join(tasks)]), FRAMEWORKS, TASKS)
    assert default.budget_s == config.tune_with(default).budget_s == 200 * len(tasks)  # docs/cli.md: default 200
