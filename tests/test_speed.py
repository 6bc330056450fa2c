"""The speed protocol end to end, on fake frameworks: groups, rows with their sitting and boot, the plan,
the verdict tables; and every run row carries the boot it ran on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dlbench.analysis.tables import speed_md as report
from dlbench.driver.provenance import boot_id
from tests.support.cli import cli, launch, rows

BOOT = Path("/proc/sys/kernel/random/boot_id")


def _speed_rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "speed.jsonl").read_text().splitlines()]


def test_a_speed_sitting_on_fakes_gives_rows_a_plan_and_verdicts(tmp_path):
    p = launch(
        "speed",
        "--frameworks",
        "fake-ok,fake-slow",
        "--anchor",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--budget",
        "40",
        "--results",
        str(tmp_path),
    )
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    got = _speed_rows(tmp_path)
    assert {r["framework"] for r in got} == {"fake-ok", "fake-slow"} and {r["status"] for r in got} == {"ok"}
    groups = {r["round"] for r in got}
    assert groups >= {0, 1}, "the pilot is two groups"
    for g in groups:  # one process per framework in every group, alive together
        assert len({r["process_id"] for r in got if r["round"] == g}) == 2
    anchor = next(r for r in got if r["framework"] == "fake-ok")
    other = next(r for r in got if r["framework"] == "fake-slow" and r["round"] == anchor["round"])
    assert anchor["pairs"] >= other["pairs"] and set(anchor["window_turn"]).isdisjoint(other["window_turn"])
    design = json.loads((tmp_path / "design.json").read_text())
    assert design["anchor"] == "fake-ok" and "fake-slow / iris_mlp" in design["components"]
    assert design["groups"] == len(groups)
    # fake-slow sleeps 0.2 s an epoch against fake-ok's nothing: far slower, whatever the groups
    assert "fake-slow" in out and "slower" in out and (tmp_path / "speed.md").read_text().count("slower") >= 1
    for r in got:
        assert r["sitting"]["boot_id"] == boot_id() and r["provenance"]["machine"]["boot_id"] == boot_id()


def test_the_anchor_turns_are_about_sqrt_k_and_spread_through_the_cycle():
    from dlbench.driver.speed import anchor_slots

    assert anchor_slots(7) == {0, 2, 5} or len(anchor_slots(7)) == 3
    for k in range(1, 30):
        slots = anchor_slots(k)
        assert len(slots) == max(1, round(k**0.5)) and all(0 <= i <= k for i in slots) and 0 in slots


@pytest.mark.skipif(not BOOT.is_file(), reason="no /proc boot id on this system")
def test_every_new_run_row_carries_its_boot_and_sitting(tmp_path):
    r = cli("run", "--frameworks", "torch", "--tasks", "iris_mlp", "--epochs", "1", "--results", str(tmp_path))
    assert r.returncode == 0, r.stderr
    (row,) = rows(tmp_path)
    assert row["sitting"]["boot_id"] == BOOT.read_text().strip() == row["provenance"]["machine"]["boot_id"]
    assert len(row["sitting"]["id"]) == 12 and row["provenance"]["machine"]["kernel"]


def test_a_missing_boot_id_is_null_not_an_error(monkeypatch):
    from dlbench.driver import provenance

    monkeypatch.setattr(provenance, "_read", lambda path: None)
    assert provenance.boot_id() is None and provenance.sitting()["boot_id"] is None


@pytest.mark.parametrize(
    "args, words",
    [
        (["--budget", "0"], "--budget must be a positive"),
        (["--anchor", "nosuch"], "unknown framework nosuch"),
        (["--pilot", "1"], "--pilot must be between 2 and 20"),
        (["--equivalence", "ten"], "--equivalence must be a number"),
        (["--results", ""], "--results must name a folder"),
    ],
)
def test_bad_speed_input_is_one_line_and_exit_2(args, words):
    r = cli("speed", *args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.stderr


def test_the_report_leaves_busy_failed_and_broken_rows_out_and_says_so():
    base = {
        "kind": "speed",
        "tier": "default",
        "task": "iris_mlp",
        "profile": "speed",
        "seed": 0,
        "anchor": "a",
        "threads": 2,
        "sitting": {"id": "s", "boot_id": "b", "started": "t"},
        "window_kind": "epoch",
        "epoch_steps": 7,
        "provenance": {"machine": {"cpu": "test"}},
    }
    good = [
        {
            **base,
            "framework": f,
            "round": g,
            "status": "ok",
            "machine_busy": False,
            "window_steps": [7, 7],
            "window_s": [0.007 * k * (1 + g / 100), 0.007 * k],
        }
        for f, k in (("a", 1), ("b", 3))
        for g in range(3)
    ]
    busy = {**good[0], "round": 9, "machine_busy": True}
    failed = {**base, "framework": "b", "round": 9, "status": "crashed", "error": "worker killed by SIGSEGV"}
    broken = {**good[0], "round": 8, "window_s": [0.0, 0.0]}  # a non-positive time is not a measurement
    text = report([*good, busy, failed, broken])
    assert "1 busy row(s) left out" in text and "crashed (worker killed by SIGSEGV)" in text
    assert re.search(r"\| a +\| default +\| 3 ", text) and "3.00x slower" in text


def _committed_speed_folders() -> list[Path]:
    import subprocess

    from tests.support.cli import ROOT

    out = subprocess.run(["git", "ls-files", "results/*/speed.jsonl"], cwd=ROOT, capture_output=True, text=True)
    # results/NAME/speed.jsonl: the verdict sittings (tune's, one level deeper, are test_tuning.py's)
    return sorted({ROOT / Path(line).parent for line in out.stdout.split() if len(Path(line).parts) == 3})


@pytest.mark.parametrize("folder", _committed_speed_folders(), ids=lambda p: p.name)
def test_a_committed_speed_sitting_is_one_boot_one_clean_commit(folder):
    from dlbench.analysis.speed import load_speed

    got, warnings = load_speed(folder)
    assert not warnings and got
    assert len({r["sitting"]["id"] for r in got}) == 1 and len({r["sitting"]["boot_id"] for r in got}) == 1
    assert len({r["provenance"]["git"]["commit"] for r in got}) == 1
    assert not any(r["provenance"]["git"]["dirty"] for r in got), "a published row comes from a clean tree"


def test_the_warm_up_runs_every_window_length_once_before_any_timed_window():
    """A program per window length (JAX's scan over k steps, Keras's steps_per_execution) compiles on its first
    call: measured before, in the warm-up, the first timed windows held the compile (negative step times)."""
    import time

    from dlbench.protocol import JobConfig, Mode
    from dlbench.worker.speed import Task
    from tasks import TASKS

    compiled = []

    class Adapter:
        def sync(self, model):
            pass

        def train_epoch(self, model, data, order):
            k = len(order) // 32
            if k not in compiled:
                compiled.append(k)
                time.sleep(0.05)  # the first call of a length compiles
            time.sleep(0.002 * k)
            return model, 1.0, 0.5

    t = object.__new__(Task)  # no data: the adapter above times itself
    t.ad, t.cfg, t.task, t.model, t.train = (
        Adapter(),
        JobConfig(Mode.SPEED, "x", 1, window_target_s=0.03),
        TASKS["imdb_lstm"],
        None,
        None,
    )
    t.n, t.bs, t.epoch_steps, t.whole, t.index, t.build_s = 25000, 32, 782, False, 0, 0.0
    t.peak_reset, t.rss_before_mib = False, None
    t.compile()
    got = t.warm_up()
    assert got["long"] not in (2, 8) and {got["long"], got["short"]} <= set(compiled), (got, compiled)
    before = len(compiled)
    t.window(got["long"]), t.window(got["short"])
    assert len(compiled) == before  # nothing left to compile in the timed windows


@pytest.mark.slow  # a sitting of two fake frameworks: about 40 s
def test_a_speed_row_says_what_memory_its_timed_windows_added(tmp_path):
    """fake-alloc touches a 200 MiB array inside every window, fake-ok allocates nothing: the timed windows'
    peak resident memory over the process's before building the task is >= 200 MiB for the one, under a
    quarter of that for the other (its data and model: 19-24 MiB measured); the kernel's peak count restarted
    with /proc/self/clear_refs before the build and after warm-up."""
    p = launch(
        "speed",
        "--frameworks",
        "fake-alloc",
        "--anchor",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--budget",
        "30",
        "--results",
        str(tmp_path),
    )
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    added = {}
    for r in _speed_rows(tmp_path):
        assert r["peak_reset"] is True and r["warm_peak_rss_mib"] >= r["rss_before_build_mib"] > 0
        added.setdefault(r["framework"], []).append(r["timed_peak_rss_mib"] - r["rss_before_build_mib"])
    assert min(added["fake-alloc"]) >= 200, added
    assert max(abs(a) for a in added["fake-ok"]) < 50, added  # its data and model: about 20 MiB here
