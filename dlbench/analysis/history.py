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

from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.analysis.speed import DECIDED, Point, collect_releases, load_speed, steps
from dlbench.analysis.verdicts import DELTA, Comparison


def _gm(values) -> float:
    return float(np.exp(np.mean(np.log(list(values)))))


def task_history(points: list[Point], delta: float = DELTA) -> tuple[pd.DataFrame, list[Comparison]]:
    """One task's releases in version order, and the steps between consecutive ones."""
    lines = [
        {
            "release": p.name,
            "version": p.version,
            "sitting": p.sitting,
            "processes": len(p.times),
            "ms / step": f"{1000 * _gm(p.times.values()):.3g}",
            "× its sitting's anchor": f"{_gm(p.ratios.values()):.3g}" if p.ratios else "—",
        }
        for p in points
    ]
    return pd.DataFrame(lines), steps(points, delta)


def report(rows: list[dict], framework: str, delta: float = DELTA) -> str:
    """The markdown of `harness.py history FRAMEWORK`."""
    per_task = collect_releases(rows, framework)
    if not per_task:
        return (
            f"No speed rows of {framework} here: measure releases with `harness.py speed --frameworks "
            f"{framework}@VERSION,...` first.\n"
        )
    parts = [
        f"History of {framework}: each release against the one before it, per task; Holm-corrected within "
        f"the task, equivalence within ±{100 * delta:g} %; releases in different sittings meet only "
        f"through their sittings' anchors."
    ]
    for task, points in sorted(per_task.items()):
        table, comps = task_history(points, delta)
        parts.append(f"**{task}**\n\n" + table.to_markdown(index=False, disable_numparse=True))
        if comps:
            found = [c for c in comps if c.verdict in DECIDED[:2]]
            lines = [
                {
                    "step": c.framework,
                    "newer / older [95 % interval]": f"{c.ratio:.3g} [{c.interval[0]:.3g}, {c.interval[1]:.3g}]",
                    "verdict": c.words,
                    "flag": "STEP" if c in found else "",
                }
                for c in comps
            ]
            parts.append(
                f"{len(found)} step(s) among {len(comps)} release change(s):\n\n"
                + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
            )
        else:
            parts.append(
                "No release change tested: each needs two processes a side, in one sitting (paired) or "
                "beside an anchor in each sitting."
            )
    return "\n\n".join(parts) + "\n"


def speed_rows(results: Path) -> tuple[list[dict], list[str]]:
    """Every speed row in RESULTS/speed.jsonl and in the speed.jsonl of its sub-folders, two levels down
    (a release sitting's, such as RESULTS/releases/speed.jsonl); deeper, tune's sittings, whose anchor is the
    framework itself."""
    rows, warnings = [], []
    for pattern in ("speed.jsonl", "*/speed.jsonl", "*/*/speed.jsonl"):
        for path in sorted(results.glob(pattern)):
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
