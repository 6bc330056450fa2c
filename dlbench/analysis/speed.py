"""The speed protocol's rows as values: per sitting, task and variant, each process's time per step.

Speed is compared only within a sitting (one `harness.py speed` invocation on one boot). Across
sittings, frameworks meet only through each sitting's own ratio to its anchor, which every sitting
measures; a sitting without anchor processes on a task is not ranked there. Busy rows (other processes
used the CPUs) are counted and left out: a busy row is not a measurement. Releases of one framework
(`torch`, `torch@2.15.0`) are also compared each against the one before it, a second family per task
(the steps that dlbench/analysis/history.py finds over a framework's whole release series). No markdown here:
dlbench/analysis/tables.py renders every table.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from packaging.version import InvalidVersion, Version

from dlbench.analysis.design import process_value
from dlbench.analysis.verdicts import ALPHA, DELTA, Comparison, Verdict, Welch, against_differences, bimodal, decide
from dlbench.results import read_rows
from tasks import TASKS

DECIDED = (Verdict.FASTER, Verdict.SLOWER, Verdict.EQUIVALENT)


def label(row: dict) -> str:
    """As dlbench.driver.config.Variant prints: "torch", "torch (tuned)", or a candidate's "torch (compile)"."""
    tier = row.get("tier") or "default"
    return row["framework"] if tier == "default" else f"{row['framework']} ({row.get('candidate') or tier})"


def usable(row: dict) -> bool:
    """An ok, quiet speed row with windows whose time per step is finite and positive. Rows come from
    `load_speed`, which has checked each against the speed row's schema once (dlbench/schemas.py): checking it
    again here, on every call of every table, took 80 % of making the reference's tables."""
    if not (
        isinstance(row, dict)
        and row.get("kind") == "speed"
        and row.get("status") == "ok"
        and not row.get("machine_busy")
        and row.get("window_s")
        and row.get("window_kind")
        and isinstance(row.get("task"), str)
        and isinstance(row.get("framework"), str)
    ):
        return False
    try:
        value = process_value(row)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return False
    return math.isfinite(value) and value > 0


def load_speed(results: Path) -> tuple[list[dict], list[str]]:
    """The speed rows of RESULTS/speed.jsonl (all of them), and warnings about the lines set aside: those the
    reader refused (dlbench/results.py) and rows that are not speed rows."""
    path = results / "speed.jsonl" if results.is_dir() else results
    found = read_rows(path)
    warnings = [w] if (w := found.warning(path)) else []
    others = [n for n, r in zip(found.numbers, found.rows, strict=True) if r.get("kind") != "speed"]
    if others:
        where = ", ".join(f"{n} (not a speed row)" for n in others[:5]) + (" ..." if len(others) > 5 else "")
        warnings.append(f"warning: set aside {len(others)} row(s) of {path}: line {where}")
    return [r for r in found.rows if r.get("kind") == "speed"], warnings


def values(rows: list[dict]) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
    """sitting id -> task -> framework label -> group -> that process's time per step (usable rows only)."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for r in rows:
        if usable(r):
            out[r["sitting"]["id"]][r["task"]][label(r)][r.get("round", r.get("seed"))] = process_value(r)
    return out


def diffs(rows: list[dict]) -> dict[str, dict[str, dict[str, dict[int, float]]]]:
    """sitting -> task -> framework -> group -> log(framework's time per step / the anchor's in that group):
    the pairing that cancels what a group shares (its processes' start, the minutes it ran in)."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    by: dict = defaultdict(dict)
    for r in rows:
        if usable(r):
            by[r["sitting"]["id"], r["task"], r.get("round", r.get("seed"))][label(r)] = r
    anchors = {sid: anchor_of(rows, sid) for sid, _, _ in by}  # once a sitting, not once a group
    for (sid, task, g), per in by.items():
        anchor = anchors[sid]
        if anchor not in per:
            continue
        for f, r in per.items():
            if f == anchor:
                continue
            out[sid][task][f][g] = float(np.log(process_value(r)) - np.log(process_value(per[anchor])))
    return out


def anchor_of(rows: list[dict], sitting_id: str) -> str | None:
    names = {r.get("anchor") for r in rows if sitting_of(r) == sitting_id}
    names.discard(None)
    return names.pop() if len(names) == 1 else None


def sitting_of(row: dict) -> str | None:
    """The id of the sitting a speed row belongs to (None where it names none)."""
    sitting = row.get("sitting")
    return sitting.get("id") if isinstance(sitting, dict) and isinstance(sitting.get("id"), str) else None


def sitting_ids(rows: list[dict]) -> list[str]:
    """The sittings with usable rows, in the order they started."""
    ids = {r["sitting"]["id"]: r["sitting"].get("started") or "" for r in rows if usable(r)}
    return sorted(ids, key=lambda sid: (ids[sid], sid))


class Sitting:
    """One sitting's per-task values and paired differences, computed once for its tables and plot."""

    def __init__(self, rows: list[dict], sitting_id: str):
        mine = [r for r in rows if sitting_of(r) == sitting_id]
        self.id, self.rows = sitting_id, mine
        self.per_task = values(mine).get(sitting_id, {})
        self.paired = diffs(mine).get(sitting_id, {})
        self.anchor = anchor_of(mine, sitting_id)
        self.info = next(r for r in mine if usable(r)) if any(usable(r) for r in mine) else mine[0]
        self.tasks = [t for t in TASKS if t in self.per_task] + sorted(t for t in self.per_task if t not in TASKS)
        self.families: dict[tuple, list[Comparison]] = {}  # (family, task, delta) -> comparisons, made once
        machine = (self.info.get("provenance") or {}).get("machine") or {}
        self.cpu = machine.get("cpu") or "CPU not recorded"

    def bimodal_notes(self, task: str) -> dict[str, str]:
        """variant -> "bimodal in k of n" where some of its processes' long windows ran at two speeds."""
        flagged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.rows:
            if usable(r) and r["task"] == task:
                per_step = np.asarray(r["window_s"]) / np.asarray(r["window_steps"])
                longest = np.asarray(r["window_steps"]) == max(r["window_steps"])
                flagged[label(r)][0] += bimodal(per_step if r["window_kind"] == "epoch" else per_step[longest])
                flagged[label(r)][1] += 1
        return {f: f"bimodal in {a} of {b}" for f, (a, b) in flagged.items() if a}


def comparisons(s: Sitting, task: str, delta: float = DELTA) -> list[Comparison]:
    """Every variant against the sitting's anchor on one task: paired by group, one Holm family."""
    if ("anchor", task, delta) not in s.families:
        found = against_differences(s.paired.get(task, {}), s.anchor, ALPHA, delta) if s.anchor else []
        s.families["anchor", task, delta] = found
    return s.families["anchor", task, delta]


ACROSS = "all tasks"  # the family of each variant's geometric mean over the sitting's tasks


def geometric_means(paired: dict[str, dict[str, dict]], anchor: str, delta: float = DELTA) -> list[Comparison]:
    """Each variant's geometric-mean ratio to the anchor over every task of `paired` (task -> variant -> group ->
    log ratio): per group, the mean of its log ratios over the tasks, then the paired test over the groups
    that measured it on every task, Holm over the variants, as for one task. Averaging within a group first
    keeps the tasks' correlation (one group's processes, one machine state) in the interval; a variant that
    misses a task has no geometric mean (None there: nothing is averaged over fewer tasks)."""
    tasks = list(paired)
    d = {}
    for f in set().union(*(paired[t] for t in tasks)) if tasks else ():
        if all(f in paired[t] for t in tasks):
            common = sorted(set.intersection(*(set(paired[t][f]) for t in tasks)), key=str)
            d[f] = {g: float(np.mean([paired[t][f][g] for t in tasks])) for g in common}
    return against_differences(dict(sorted(d.items())), anchor, ALPHA, delta)


def tiers_by_task(s: Sitting) -> dict[str, dict[str, dict]]:
    """task -> "FRAMEWORK" or "FRAMEWORK (tuned)" -> group -> log ratio to the anchor. A framework's tuned tier
    is the candidate it ran on each task, or its default where tune kept the default there (no tuned
    variant on that task); a framework with no tuned variant on any task has no tuned entry (its tuned tier is
    its default); a task with two tuned candidates of one framework (a tune sitting) gives none."""
    out: dict[str, dict[str, dict]] = {}
    has_tuned = {split(n)[0] for t in s.tasks for n in s.paired.get(t, {}) if split(n)[1] != "default"}
    for task in s.tasks:
        paired = dict(s.paired.get(task, {}))
        if s.anchor:
            anchor_groups = set().union(*(set(v) for v in paired.values())) if paired else set()
            paired.setdefault(s.anchor, {g: 0.0 for g in anchor_groups})  # the anchor against itself
        tuned: dict[str, list[dict]] = defaultdict(list)
        for name, groups in paired.items():
            framework, tier = split(name)
            if tier != "default":
                tuned[framework].append(groups)
        mine = {f: groups for f, groups in paired.items() if split(f)[1] == "default"}
        for f in list(mine):
            if f in has_tuned and len(tuned.get(f, [None])) == 1:
                mine[f"{f} (tuned)"] = tuned[f][0] if f in tuned else mine[f]
        out[task] = mine
    return out


def across_tasks(s: Sitting, delta: float = DELTA) -> list[Comparison]:
    """Each framework's tiers against the anchor over all the sitting's tasks at once (`geometric_means` over
    `tiers_by_task`), made once; the anchor's default tier is not compared with itself."""
    if ("anchor", ACROSS, delta) not in s.families:
        by_tier = tiers_by_task(s)
        for mine in by_tier.values():
            mine.pop(s.anchor, None)
        s.families["anchor", ACROSS, delta] = geometric_means(by_tier, s.anchor, delta) if s.anchor else []
    return s.families["anchor", ACROSS, delta]


def split(name: str) -> tuple[str, str]:
    """("torch", "tuned: fused-adam") for "torch (fused-adam)"; ("torch", "default") for "torch"."""
    framework, _, candidate = name.partition(" (")
    return framework, f"tuned: {candidate.rstrip(')')}" if candidate else "default"


def tier_comparisons(s: Sitting, task: str, delta: float = DELTA) -> dict[str, Comparison]:
    """Each tuned variant against its own default tier, paired within the sitting's groups (the anchor
    cancels: log(tuned / anchor) - log(default / anchor)); Holm within the task's tuned variants."""
    paired = s.paired.get(task, {})
    d = {}
    for name, groups in paired.items():
        framework, tier = split(name)
        # the anchor's default tier has log ratio 0 to itself in every group
        own = paired.get(framework) or ({g: 0.0 for g in groups} if framework == s.anchor else {})
        if tier != "default" and own:
            d[name] = {g: x - own[g] for g, x in groups.items() if g in own}
    return {c.framework: c for c in against_differences(d, "its default", ALPHA, delta)}


# -- releases of one framework: each against the one before it (harness.py history builds on these) --


def base(name: str) -> str:
    """The registered framework a label runs: "torch" for "torch@2.15.0"."""
    return name.split("@", 1)[0]


def _version_key(v: str | None):
    try:
        return (0, Version(v or ""))
    except InvalidVersion:
        return (1, str(v))


@dataclass(frozen=True)
class Point:
    """One release of the framework in one sitting: its processes' times per step and ratios to the anchor."""

    name: str  # the row's label: "torch@2.15.0", or "torch" for the locked release
    version: str  # what its worker imported
    sitting: str
    times: dict  # group -> seconds per step
    ratios: dict  # group -> its time / its group's anchor turn (none where it is the anchor)


def steps(series: list[Point], delta: float = DELTA, alpha: float = ALPHA) -> list[Comparison]:
    """Each release against the one before it (series in release order), as one Holm family: paired by group
    within a sitting; across sittings, the ratios to each sitting's anchor, unpaired. A Comparison's
    `framework` names the change, "NEWER (version) vs OLDER (version)"."""
    tests = {}
    for a, b in zip(series, series[1:], strict=False):
        name = f"{b.name} ({b.version}) vs {a.name} ({a.version})"
        common = sorted(set(a.times) & set(b.times)) if a.sitting == b.sitting else []
        if len(common) >= 2:
            d = np.log([b.times[g] for g in common]) - np.log([a.times[g] for g in common])
            tests[name] = (Welch.paired(d), (len(d), len(d)))
        elif a.sitting != b.sitting and len(a.ratios) >= 2 and len(b.ratios) >= 2:
            la, lb = (np.log(np.asarray(list(x.ratios.values()), float)) for x in (a, b))
            tests[name] = (Welch.of(lb, la), (len(lb), len(la)))
    return decide(tests, "the release before", alpha, delta)


def collect_releases(rows: list[dict], framework: str) -> dict[str, list[Point]]:
    """task -> the framework's releases (default tier, usable speed rows), in release order."""
    ok = [r for r in rows if usable(r)]
    anchors = {sid: anchor_of(rows, sid) for sid in {r["sitting"]["id"] for r in ok}}
    by_group: dict = defaultdict(dict)
    for r in ok:
        by_group[r["sitting"]["id"], r["task"], r.get("round")][label(r)] = r
    cells: dict = defaultdict(lambda: {"times": {}, "ratios": {}})
    for r in ok:
        if base(r["framework"]) != framework or (r.get("tier") or "default") != "default":
            continue
        sid, g = r["sitting"]["id"], r.get("round")
        cell = cells[r["task"], label(r), str(r.get("framework_version")), sid]
        cell["times"][g] = process_value(r)
        turn = by_group[sid, r["task"], g].get(anchors[sid] or "")
        if turn is not None and label(turn) != label(r):
            cell["ratios"][g] = process_value(r) / process_value(turn)
    out: dict = defaultdict(list)
    for (task, name, version, sid), c in cells.items():
        out[task].append(Point(name, version, sid, c["times"], c["ratios"]))
    for points in out.values():
        points.sort(key=lambda p: (_version_key(p.version), p.sitting, p.name))
    return out
