"""Releases of one framework over time: `harness.py history torch` and the speed report's release family.

A release is a framework label's base name and the version its worker imported (`torch@2.15.0` and a
plain `torch` row are both torch; their versions come from the rows, never from the names). The series
is ordered by version (PEP 440). Step detection is the speed protocol's verdict logic applied to each
newer release against the one before it, as one pre-registered family per task, Holm-corrected:
a "step" is a difference that survives the correction ("faster"/"slower"); "equivalent" is two
one-sided tests within the margin. Within one sitting the pairs are paired by group (the processes that
took turns); releases measured in different sittings meet only through each sitting's anchor (the log
ratio of each process to its group's anchor turn, compared unpaired with Hsu's df), never by their raw
times. This is airspeed velocity's question (asv's step detection over a commit series) answered with
tests of known error rates instead of a penalised fit.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from packaging.version import InvalidVersion, Version

from dlbench.analysis.design import process_value
from dlbench.analysis.speed import DECIDED, anchor_of, label, load_speed, usable
from dlbench.analysis.verdicts import ALPHA, DELTA, Comparison, Welch, decide


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


def _collect(rows: list[dict], framework: str) -> dict[str, list[Point]]:
    """task -> the framework's releases (default tier, usable speed rows), in release order."""
    anchors = {r["sitting"]["id"]: anchor_of(rows, r["sitting"]["id"]) for r in rows if usable(r)}
    by_group: dict = defaultdict(dict)
    for r in rows:
        if usable(r):
            by_group[r["sitting"]["id"], r["task"], r.get("round")][label(r)] = r
    cells: dict = defaultdict(lambda: {"times": {}, "ratios": {}})
    for r in rows:
        if not usable(r) or base(r["framework"]) != framework or (r.get("tier") or "default") != "default":
            continue
        sid, g = r["sitting"]["id"], r.get("round")
        cell = cells[r["task"], label(r), str(r.get("framework_version")), sid]
        cell["times"][g] = process_value(r)
        turn = by_group[sid, r["task"], g].get(anchors.get(sid) or "")
        if turn is not None and label(turn) != label(r):
            cell["ratios"][g] = process_value(r) / process_value(turn)
    out: dict = defaultdict(list)
    for (task, name, version, sid), c in cells.items():
        out[task].append(Point(name, version, sid, c["times"], c["ratios"]))
    for points in out.values():
        points.sort(key=lambda p: (_version_key(p.version), p.sitting, p.name))
    return out


def _gm(values) -> float:
    return float(np.exp(np.mean(np.log(list(values)))))


def task_history(points: list[Point], delta: float = DELTA) -> tuple[pd.DataFrame, list[Comparison]]:
    """One task's releases in version order, and the steps between consecutive ones."""
    lines = [{"release": p.name, "version": p.version, "sitting": p.sitting, "processes": len(p.times),
              "ms / step": f"{1000 * _gm(p.times.values()):.3g}",
              "× its sitting's anchor": f"{_gm(p.ratios.values()):.3g}" if p.ratios else "—"}
             for p in points]  # fmt: skip
    return pd.DataFrame(lines), steps(points, delta)


def report(rows: list[dict], framework: str, delta: float = DELTA) -> str:
    """The markdown of `harness.py history FRAMEWORK`."""
    per_task = _collect(rows, framework)
    if not per_task:
        return (f"No speed rows of {framework} here: measure releases with `harness.py speed --frameworks "
                f"{framework}@VERSION,...` first.\n")  # fmt: skip
    parts = [f"History of {framework}: each release against the one before it, per task; Holm-corrected within "
             f"the task, equivalence within ±{100 * delta:g} %; releases in different sittings meet only "
             f"through their sittings' anchors."]  # fmt: skip
    for task, points in sorted(per_task.items()):
        table, comps = task_history(points, delta)
        parts.append(f"**{task}**\n\n" + table.to_markdown(index=False, disable_numparse=True))
        if comps:
            found = [c for c in comps if c.verdict in DECIDED[:2]]
            lines = [{"step": c.framework, "newer / older [95 % interval]":
                      f"{c.ratio:.3g} [{c.interval[0]:.3g}, {c.interval[1]:.3g}]", "verdict": c.words,
                      "flag": "STEP" if c in found else ""} for c in comps]  # fmt: skip
            parts.append(f"{len(found)} step(s) among {len(comps)} release change(s):\n\n"
                         + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))  # fmt: skip
        else:
            parts.append(
                "No release change tested: each needs two processes a side, in one sitting (paired) or "
                "beside an anchor in each sitting."
            )
    return "\n\n".join(parts) + "\n"


def sitting_section(rows: list[dict], sitting_id: str, task: str, delta: float = DELTA) -> str | None:
    """The speed report's release family for one task in one sitting: newer against older, per framework with
    two or more releases there (None where none has)."""
    mine = [r for r in rows if (r.get("sitting") or {}).get("id") == sitting_id and r.get("task") == task]
    lines = []
    for framework in sorted({base(r["framework"]) for r in mine}):
        points = _collect(mine, framework).get(task, [])
        lines += [{"release change": c.framework, "newer / older [95 % interval]":
                   f"{c.ratio:.3g} [{c.interval[0]:.3g}, {c.interval[1]:.3g}]", "verdict": c.words}
                  for c in steps(points, delta)] if len(points) > 1 else []  # fmt: skip
    if not lines:
        return None
    return ("Releases of one framework, each against the one before it (Holm within the task's release "
            "changes):\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))  # fmt: skip


def speed_rows(results: Path) -> tuple[list[dict], list[str]]:
    """Every speed row under `results` (its speed.jsonl and those of its sub-folders)."""
    rows, warnings = [], []
    for path in sorted({results / "speed.jsonl", *results.rglob("speed.jsonl")}):
        if path.is_file():
            found, warned = load_speed(path)
            rows += found
            warnings += warned
    return rows, warnings


def run(framework: str, results: Path, delta: float = DELTA) -> int:
    """`harness.py history FRAMEWORK`: print the release series and its steps."""
    rows, warnings = speed_rows(results)
    for w in warnings:
        print(w)
    print(report(rows, framework, delta), end="")
    return 0
