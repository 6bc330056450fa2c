"""The speed protocol's tables: per sitting and task, each framework against the anchor, in words.

Speed is compared only within a sitting (one `harness.py speed` invocation on one boot). Across
sittings, frameworks meet only through each sitting's own ratio to its anchor, which every sitting
measures; a sitting without anchor processes on a task is not ranked there. Busy rows (other processes
used the CPUs) are counted and left out: a busy row is not a measurement. Releases of one framework
(`torch`, `torch@2.15.0`) are also compared each against the one before it, a second family per task
(the steps that dlbench/analysis/history.py finds over a framework's whole release series).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from packaging.version import InvalidVersion, Version

from dlbench import files
from dlbench.analysis.design import process_value
from dlbench.analysis.verdicts import (
    ALPHA,
    DELTA,
    Comparison,
    Verdict,
    Welch,
    against_anchor,
    against_differences,
    bimodal,
    decide,
)
from dlbench.results import read_rows

DECIDED = (Verdict.FASTER, Verdict.SLOWER, Verdict.EQUIVALENT)


def label(row: dict) -> str:
    """As dlbench.driver.config.Variant prints: "torch", "torch (tuned)", or a candidate's "torch (compile)"."""
    tier = row.get("tier") or "default"
    return row["framework"] if tier == "default" else f"{row['framework']} ({row.get('candidate') or tier})"


def usable(row: dict) -> bool:
    """An ok, quiet speed row with windows and a sitting, whose time per step is positive."""
    if not (row.get("kind") == "speed" and row["status"] == "ok" and not row.get("machine_busy")
            and row.get("window_s") and isinstance(row.get("sitting"), dict)):  # fmt: skip
        return False
    try:
        return process_value(row) > 0
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return False


def load_speed(results: Path) -> tuple[list[dict], list[str]]:
    """The speed rows of RESULTS/speed.jsonl (all of them), and warnings about skipped lines."""
    path = results / "speed.jsonl" if results.is_dir() else results
    found = read_rows(path)
    warning = found.warning(path)
    return [r for r in found.rows if r.get("kind") == "speed"], [warning] if warning else []


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
    for (sid, task, g), per in by.items():
        anchor = anchor_of(rows, sid)
        if anchor not in per:
            continue
        for f, r in per.items():
            if f == anchor:
                continue
            out[sid][task][f][g] = float(np.log(process_value(r)) - np.log(process_value(per[anchor])))
    return out


def anchor_of(rows: list[dict], sitting_id: str) -> str | None:
    names = {r.get("anchor") for r in rows if (r.get("sitting") or {}).get("id") == sitting_id}
    names.discard(None)
    return names.pop() if len(names) == 1 else None


def verdict_table(vals: dict[str, dict[int, float]], anchor: str, bimodal_of: dict[str, str],
                  delta: float = DELTA, d: dict[str, dict[int, float]] | None = None,
                  ) -> tuple[pd.DataFrame, list[Comparison]]:  # fmt: skip
    """One task in one sitting: a row per framework, the anchor first, then by ratio. With `d` (per
    framework, per group, the log ratio to the anchor's turns beside it) the comparisons are paired."""
    comps = (
        against_differences(d, anchor, ALPHA, delta) if d is not None else against_anchor(vals, anchor, ALPHA, delta)
    )
    by = {c.framework: c for c in comps}
    lines = [{"framework": anchor, "processes": len(vals.get(anchor, [])),
              "ms / step": _ms(vals.get(anchor)), "× anchor [95 % interval]": "1", "verdict": "anchor",
              "windows": bimodal_of.get(anchor, "")}]  # fmt: skip
    for f in sorted((f for f in vals if f != anchor), key=lambda f: by[f].ratio if f in by else np.inf):
        c = by.get(f)
        lines.append({
            "framework": f, "processes": len(vals[f]), "ms / step": _ms(vals[f]),
            "× anchor [95 % interval]": f"{c.ratio:.3g} [{c.interval[0]:.3g}, {c.interval[1]:.3g}]" if c else "—",
            "verdict": c.words if c else _why_not(vals, f, anchor),
            "windows": bimodal_of.get(f, ""),
        })  # fmt: skip
    return pd.DataFrame(lines), comps


def _why_not(vals: dict, f: str, anchor: str) -> str:
    n_anchor = len(vals.get(anchor) or {})
    if n_anchor == 0:
        return "not ranked: no anchor processes in this sitting"
    shared = len(set(vals[f]) & set(vals.get(anchor) or {}))
    return f"not compared: {shared} group(s) with the anchor, 2 needed"


def _ms(v: dict | None) -> str:
    if not v:
        return "—"
    return f"{1000 * float(np.exp(np.mean(np.log(list(v.values()))))):.3g}"  # geometric mean over processes


def _bimodal_notes(rows: list[dict], sitting_id: str, task: str) -> dict[str, str]:
    flagged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if usable(r) and r["sitting"]["id"] == sitting_id and r["task"] == task:
            per_step = np.asarray(r["window_s"]) / np.asarray(r["window_steps"])
            long = per_step if r["window_kind"] == "epoch" else per_step[np.asarray(r["window_steps"]) ==
                                                                         max(r["window_steps"])]  # fmt: skip
            flagged[label(r)][0] += bimodal(long)
            flagged[label(r)][1] += 1
    return {f: f"bimodal in {a} of {b}" for f, (a, b) in flagged.items() if a}


def report(rows: list[dict], delta: float = DELTA, sitting_id: str | None = None) -> str:
    """The markdown of every sitting (or one), then, where there are several, the anchors' bridge."""

    vals, paired = values(rows), diffs(rows)  # each computed once for every sitting and task
    sittings = [sitting_id] if sitting_id else sorted(vals, key=lambda s: _started(rows, s))
    parts, decided, total, ratios = [], 0, 0, defaultdict(dict)
    for sid in sittings:
        anchor = anchor_of(rows, sid)
        info = next(r for r in rows if (r.get("sitting") or {}).get("id") == sid)
        busy = sum(1 for r in rows if (r.get("sitting") or {}).get("id") == sid and r.get("machine_busy"))
        failed = [r for r in rows if (r.get("sitting") or {}).get("id") == sid and r["status"] != "ok"]
        head = (f"Sitting {sid} (boot {str(info['sitting'].get('boot_id'))[:8]}, "
                f"{info['provenance']['machine'].get('cpu')}, {info['threads']} threads, started "
                f"{info['sitting'].get('started')}); anchor {anchor}.")  # fmt: skip
        if busy:
            head += f" {busy} busy row(s) left out."
        if failed:
            head += " Failed: " + "; ".join(f"{label(r)} {r['task']} {r['status']} ({r.get('error')})"
                                            for r in failed[:5]) + "."  # fmt: skip
        parts.append(head)
        for task, per in vals.get(sid, {}).items():
            if anchor is None:
                parts.append(f"**{task}**: not ranked: this sitting names no single anchor.")
                continue
            d = paired[sid][task]
            table, comps = verdict_table(per, anchor, _bimodal_notes(rows, sid, task), delta, d)
            n_dec = sum(c.verdict in DECIDED for c in comps)
            decided, total = decided + n_dec, total + len(comps)
            for c in comps:
                ratios[c.framework][(task, sid)] = c.ratio
            parts.append(f"**{task}** — {n_dec} of {len(comps)} comparisons decided; Holm-corrected within "
                         f"the task, equivalence within ±{100 * delta:g} %.\n\n"
                         + table.to_markdown(index=False, disable_numparse=True))  # fmt: skip
            releases = sitting_section(rows, sid, task, delta)  # torch@2.13.0 against torch@2.15.0, ...
            if releases:
                parts.append(releases)
    if ratios:
        gm = "; ".join(f"{f} {np.exp(np.mean(np.log(list(r.values())))):.2f}x" for f, r in sorted(
            ratios.items(), key=lambda kv: np.mean(np.log(list(kv[1].values())))))  # fmt: skip
        parts.append(f"Geometric mean of the ratios to the anchor over tasks: {gm}.")
    if len(sittings) > 1:
        parts.append(bridge(rows, vals, sittings))
    parts.insert(0, f"Speed protocol: {decided} of {total} comparisons decided (faster, slower or equivalent).")
    return "\n\n".join(parts) + "\n"


def bridge(rows, vals, sittings) -> str:
    """Across sittings: each sitting's ratio to its own anchor, never one sitting's time against another's."""
    lines = []
    for sid in sittings:
        anchor = anchor_of(rows, sid)
        for task, per in vals[sid].items():
            a = list((per.get(anchor) or {}).values()) if anchor else []
            for f, v in per.items():
                if f == anchor:
                    continue
                ratio = (f"{np.exp(np.mean(np.log(list(v.values()))) - np.mean(np.log(a))):.3g}" if a
                         else "not ranked: no anchor processes in this sitting")  # fmt: skip
                lines.append({"task": task, "framework": f, "sitting": sid, "anchor": anchor, "× its anchor": ratio})
    return (
        "**Across sittings** — through each sitting's own anchor only (speed is never compared across "
        "sittings directly):\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
    )


def _started(rows, sid) -> str:
    return next((r["sitting"].get("started") or "" for r in rows if (r.get("sitting") or {}).get("id") == sid), "")


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


def sitting_section(rows: list[dict], sitting_id: str, task: str, delta: float = DELTA) -> str | None:
    """The speed report's release family for one task in one sitting: newer against older, per framework with
    two or more releases there (None where none has)."""
    mine = [r for r in rows if (r.get("sitting") or {}).get("id") == sitting_id and r.get("task") == task]
    lines = []
    for framework in sorted({base(r["framework"]) for r in mine}):
        points = collect_releases(mine, framework).get(task, [])
        lines += [{"release change": c.framework, "newer / older [95 % interval]":
                   f"{c.ratio:.3g} [{c.interval[0]:.3g}, {c.interval[1]:.3g}]", "verdict": c.words}
                  for c in steps(points, delta)] if len(points) > 1 else []  # fmt: skip
    if not lines:
        return None
    return ("Releases of one framework, each against the one before it (Holm within the task's release "
            "changes):\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True))  # fmt: skip


def write_speed_report(results: Path, sitting_id: str | None = None, delta: float = DELTA) -> str:
    """RESULTS/speed.md from RESULTS/speed.jsonl (every sitting); returns the markdown of `sitting_id` (or all)."""
    rows, warnings = load_speed(results)
    text = report(rows, delta)
    files.write_whole(results / "speed.md", "\n".join(warnings + [text]))
    return text if sitting_id is None else report(rows, delta, sitting_id)
