"""The speed protocol's tables: one per-task table, made by `task_table`, and the pages made of it.

`task_table` is the only function that renders a verdict table. speed.md (every sitting of a results
folder, then the anchors' bridge across sittings), tables.md (one sitting beside the convergence runs'
accuracy: an edition of the reference), the README's block (tables.md verbatim) and the top of report.md
(tables.md again) are all made of it.

A row per variant (framework and tier), the anchor first, then by ratio: processes, the geometric-mean
time per step, the ratio to the anchor with its interval and the verdict (dlbench/analysis/verdicts.py:
paired by group, Holm within the task, every interval at Holm's stopping level, stated above the table);
each tuned variant against its own default in the same groups (a second family); where convergence runs
are given, the test accuracy over seeds, median [min, max], beside the task's published figure (the range
of n seeds is not called a 95 % interval: it holds the median with chance 1 - 2 * 0.5**n, 0.94 at 5), and
the time to target, derived: the sitting's time per step times the median run's steps to the validation
target. Speed comes from one sitting; accuracy does not depend on the machine's load.
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import files
from dlbench.analysis.scorecard import scorecard
from dlbench.analysis.speed import (
    ACROSS,
    DECIDED,
    Sitting,
    across_tasks,
    collect_releases,
    comparisons,
    label,
    load_speed,
    sitting_ids,
    sitting_of,
    split,
    steps,
    tier_comparisons,
    tiers_by_task,
)
from dlbench.analysis.verdicts import DELTA, Comparison, Verdict
from tasks import TASKS

SEED_RANGE_COVERAGE = "1 - 2 × 0.5ⁿ"  # the chance a range of n draws holds the median
RATIO = "× anchor [interval]"
OWN = "tuned × its default [interval]"


def steps_to_target(run: pd.Series) -> float:
    """A convergence run's training steps until its validation accuracy first reached the target (inf: never)."""
    task = TASKS[run["task"]]
    per_epoch = math.ceil(run["n_train"] / task.recipe.batch_size)
    for e, h in enumerate(run["history"], start=1):
        if h.get("val_accuracy") is not None and h["val_accuracy"] >= task.recipe.target_val_accuracy:
            return float(e * per_epoch)
    return math.inf


def _accuracy(runs: pd.DataFrame) -> str:
    acc = runs["test_accuracy"].astype(float)
    if acc.empty:
        return "— (no convergence runs)"
    return f"{acc.median():.4f} [{acc.min():.4f}, {acc.max():.4f}], {len(acc)} seed(s)"


def _gm(values) -> float:
    """The geometric mean (of a variant's processes' times per step)."""
    return float(np.exp(np.mean(np.log(list(values)))))


def _to_target(step_s: dict[int, float] | None, runs: pd.DataFrame) -> str:
    """The processes' geometric-mean step (as the table's ms / step) × the median run's steps to the target."""
    if runs.empty or not step_s:
        return "—"
    n = float(np.median([steps_to_target(r) for _, r in runs.iterrows()]))
    if not math.isfinite(n):
        return "not reached"
    return f"{_gm(step_s.values()) * n:.3g} s ({n:.0f} steps)"


def _ratio(c: Comparison | None) -> str:
    return f"{c.ratio:.3g} [{c.interval[0]:.3g}, {c.interval[1]:.3g}]" if c else "—"


def _why_not(s: Sitting, task: str, name: str) -> str:
    anchor_groups = s.per_task[task].get(s.anchor) or {}
    if not anchor_groups:
        return "not ranked: no anchor processes in this sitting"
    shared = len(set(s.per_task[task][name]) & set(anchor_groups))
    return f"not compared: {shared} group(s) with the anchor, 2 needed"


def _levels(*families: list[Comparison]) -> str:
    """The intervals' levels, in words, for the line above a table."""
    said = [
        f"{100 * fam[0].level:.4g} % {what}"
        for fam, what in zip(families, ("against the anchor", "tuned against default"), strict=False)
        if fam
    ]
    return f"intervals at Holm's stopping level ({', '.join(said)})" if said else "no comparison"


def task_table(
    s: Sitting, task: str, runs: pd.DataFrame | None = None, delta: float = DELTA, kept_default: tuple[str, ...] = ()
) -> str:
    """The markdown of one task in one sitting: the line that says what it is, then the table; with `runs`
    (convergence rows), the accuracy and derived time-to-target columns and the seed recipe's line."""
    per = s.per_task[task]
    comps = comparisons(s, task, delta)
    by = {c.framework: c for c in comps}
    tiers = tier_comparisons(s, task, delta)
    order = [s.anchor] if s.anchor in per else []
    order += sorted((f for f in per if f != s.anchor), key=lambda f: by[f].ratio if f in by else np.inf)
    notes = s.bimodal_notes(task)
    lines = []
    for name in order:
        framework, tier = split(name)
        c = by.get(name)
        line = {
            "variant": framework,
            "tier": tier,
            "processes": str(len(per[name])),
            "ms / step": f"{1000 * _gm(per[name].values()):.3g}",
            RATIO: "1" if name == s.anchor else _ratio(c),
            "verdict": "anchor" if name == s.anchor else c.words if c else _why_not(s, task, name),
        }
        if tiers:
            own = tiers.get(name)
            line[OWN] = own.words if own else ("" if tier == "default" else "—")
        if notes:
            line["windows"] = notes.get(name, "")
        lines.append(line)
    table = pd.DataFrame(lines)
    seed_line = ""
    if runs is not None:
        table, seed_line = _with_runs(table, per, runs, task)
    t = TASKS.get(task)
    decided = sum(c.verdict in DECIDED for c in comps)
    about = [
        f"{decided} of {len(comps)} comparisons decided",
        _levels(comps, list(tiers.values())),
        f"equivalence within ±{100 * delta:g} %",
    ]
    if runs is not None and t is not None:
        about.append(f"published {t.published.stated} ({t.published.source})" if t.published else "no published figure")
        about.append(f"validation target {t.recipe.target_val_accuracy:g}")
    kept = (
        f" Tuned tier = default tier (tune kept the default: `tuning.md`) for {', '.join(kept_default)}."
        if kept_default
        else ""
    )
    return (
        f"**{task}** — {'; '.join(about)}.{kept}\n\n"
        + table.to_markdown(index=False, disable_numparse=True)
        + seed_line
    )


def _with_runs(table: pd.DataFrame, per: dict, runs: pd.DataFrame, task: str) -> tuple[pd.DataFrame, str]:
    """The accuracy and time-to-target columns from the convergence runs, and the seed recipe's line."""
    runs = runs if len(runs) else pd.DataFrame(columns=["task", "status", "profile", "framework", "test_accuracy"])
    runs = runs[(runs["task"] == task) & (runs["status"] == "ok") & (runs["profile"] == "full")]
    recipe = runs["recipe"].fillna("ours") if "recipe" in runs else pd.Series("ours", index=runs.index)
    seeds_own, runs = runs[recipe == "seed"], runs[recipe == "ours"]
    labels = runs.apply(lambda r: label(r.to_dict()), axis=1) if len(runs) else pd.Series(dtype=str)
    accuracy, to_target = [], []
    for framework, tier in zip(table["variant"], table["tier"], strict=True):
        # convergence runs are the default tier's; a tuned variant trains the same model (parity), so its
        # accuracy is its default's and its time to target is its own step × its default's steps
        mine = runs[labels == framework] if len(runs) else runs
        accuracy.append(_accuracy(mine) + ("" if tier == "default" or mine.empty else " (its default's runs)"))
        name = framework if tier == "default" else f"{framework} ({tier.removeprefix('tuned: ')})"
        to_target.append(_to_target(per.get(name), mine))
    table = table.assign(**{"test accuracy: median [range], seeds": accuracy, "time to target (derived)": to_target})
    return table, seed_recipe_line(task, seeds_own)


def seed_recipe_line(task: str, runs: pd.DataFrame) -> str:
    """The `--recipe seed` runs' accuracy per framework beside the published figure ("" where there are none)."""
    t = TASKS.get(task)
    if runs.empty or t is None or t.seed_recipe is None:
        return ""
    r = t.seed_recipe
    how = (
        f"all {int(runs['n_train'].max()):,} training examples, {r.max_epochs} epochs, "
        + ("early stopping" if r.early_stopping else "no early stopping")
        + (", validated on the test set" if r.validate_on_test else "")
    )
    per = [f"{fw} {_accuracy(g)}" for fw, g in runs.groupby(runs.apply(lambda x: label(x.to_dict()), axis=1))]
    published = f"the published {t.published.stated}" if t.published else "no published figure"
    return f"\n\nThe seed's own recipe (`--recipe seed`: {how}), test accuracy beside {published}: {'; '.join(per)}."


def kept_defaults(results: Path | None, frameworks: set[str]) -> dict[str, tuple[str, ...]]:
    """task -> the sitting's frameworks whose recorded tuned choice there is the default (RESULTS/tuning.json)."""
    from dlbench.analysis import tuning

    out: dict[str, list[str]] = {}
    for c in tuning.load(results) if results else []:
        if c.choice == "default" and c.key.get("framework") in frameworks:
            out.setdefault(c.key.get("task"), []).append(c.key["framework"])
    return {t: tuple(sorted(set(f))) for t, f in out.items()}


def _head(s: Sitting, delta: float) -> str:
    return (
        f"Speed: sitting {s.id} (boot {str(s.info['sitting'].get('boot_id'))[:8]}, "
        f"{s.cpu}, {s.info.get('threads')} threads), anchor {s.anchor}, "
        f"equivalence within ±{100 * delta:g} %."
    )


def edition(speed_rows: list[dict], runs: pd.DataFrame, delta: float = DELTA, results: Path | None = None) -> str:
    """tables.md: every task of the folder's single speed sitting, in TASKS order, with the convergence runs'
    accuracy; ValueError where there is not one sitting. With `results`, its tuning.json names where the
    tuned tier is the default tier."""
    ids = sitting_ids(speed_rows)
    if len(ids) != 1:
        raise ValueError(f"an edition's tables come from one speed sitting; found {len(ids)}")
    s = Sitting(speed_rows, ids[0])
    kept = kept_defaults(results, {split(f)[0] for per in s.per_task.values() for f in per})
    head = (
        f"{_head(s, delta)} Accuracy: full-profile convergence runs, median [min, max] over seeds (the range "
        f"holds the median with chance {SEED_RANGE_COVERAGE}: 0.94 at 5 seeds, so it is not called a 95 % "
        "interval). Time to target: derived, the sitting's ms / step × the median run's steps to the "
        "validation target. A tuned variant is also set against its own default in the same groups (Holm "
        "within the task). Every interval is at the level its family's verdicts used "
        "(docs/methodology.md)."
    )
    body = [task_table(s, t, runs, delta, kept.get(t, ())) for t in s.tasks]
    return "\n\n".join([scorecard(s, runs, results, delta), head, *body]) + "\n"


def speed_md(rows: list[dict], delta: float = DELTA, sitting_id: str | None = None) -> str:
    """speed.md: every sitting (or one), each task's table, the release families, then the anchors' bridge."""
    ids = [sitting_id] if sitting_id else sitting_ids(rows)
    parts, decided, total = [], 0, 0
    for sid in ids:
        s = Sitting(rows, sid)
        mine = [r for r in rows if sitting_of(r) == sid]
        busy = sum(1 for r in mine if r.get("machine_busy"))
        failed = [r for r in mine if r["status"] != "ok"]
        head = (
            f"Sitting {sid} (boot {str(s.info['sitting'].get('boot_id'))[:8]}, "
            f"{s.cpu}, {s.info.get('threads')} threads, started "
            f"{s.info['sitting'].get('started')}); anchor {s.anchor}."
        )
        if busy:
            head += f" {busy} busy row(s) left out."
        if failed:
            head += (
                " Failed: "
                + "; ".join(f"{label(r)} {r['task']} {r['status']} ({r.get('error')})" for r in failed[:5])
                + "."
            )
        parts.append(head)
        for task in s.tasks:
            if s.anchor is None:
                parts.append(f"**{task}**: not ranked: this sitting names no single anchor.")
                continue
            parts.append(task_table(s, task, delta=delta))
            comps = comparisons(s, task, delta)
            decided, total = decided + sum(c.verdict in DECIDED for c in comps), total + len(comps)
            releases = release_section(mine, task, delta)  # torch@2.13.0 against torch@2.15.0, ...
            if releases:
                parts.append(releases)
        if s.anchor and len(s.tasks) > 1 and (across := sorted(across_tasks(s, delta), key=lambda c: c.ratio)):
            parts.append(
                f"Over all {len(s.tasks)} tasks (geometric mean of the time per step; each group's ratios averaged "
                "over the tasks, Holm over the tiers): " + "; ".join(f"{c.framework} {c.words}" for c in across) + "."
            )
    if len(ids) > 1:
        parts.append(bridge(rows, ids))
    parts.insert(0, f"Speed protocol: {decided} of {total} comparisons decided (faster, slower or equivalent).")
    return "\n\n".join(parts) + "\n"


def bridge(rows: list[dict], ids: list[str]) -> str:
    """Across sittings: each sitting's ratio to its own anchor, never one sitting's time against another's."""
    lines = []
    for sid in ids:
        s = Sitting(rows, sid)
        for task, per in s.per_task.items():
            a = list((per.get(s.anchor) or {}).values()) if s.anchor else []
            for f, v in per.items():
                if f != s.anchor:
                    ratio = (
                        f"{_gm(v.values()) / _gm(a):.3g}" if a else "not ranked: no anchor processes in this sitting"
                    )
                    lines.append(
                        {"task": task, "framework": f, "sitting": sid, "anchor": s.anchor, "× its anchor": ratio}
                    )
    return (
        "**Across sittings** — through each sitting's own anchor only (speed is never compared across "
        "sittings directly):\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
    )


def release_section(rows: list[dict], task: str, delta: float = DELTA) -> str | None:
    """One sitting's release family for one task: newer against older, per framework with two or more
    releases there (None where none has)."""
    lines = []
    for framework in sorted({r["framework"].split("@", 1)[0] for r in rows if r.get("task") == task}):
        points = collect_releases(rows, framework).get(task, [])
        if len(points) > 1:
            lines += [
                {"release change": c.framework, "newer / older [interval]": _ratio(c), "verdict": c.words}
                for c in steps(points, delta)
            ]
    if not lines:
        return None
    return (
        "Releases of one framework, each against the one before it (Holm within the task's release "
        "changes):\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
    )


VERDICT_COLOURS = {  # a reader sees the decision, not only the point
    Verdict.FASTER: "tab:green",
    Verdict.SLOWER: "tab:red",
    Verdict.EQUIVALENT: "tab:blue",
    Verdict.UNDECIDED: "tab:gray",
}


def plot(speed_rows: list[dict], path: Path, delta: float = DELTA) -> Path:
    """Each task's ratios to the anchor with their intervals, and every framework's tiers over all tasks (geometric
    mean): log scale, colour by verdict, the anchor's line at 1 and the equivalence band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from dlbench.analysis import plots  # matplotlib: only where a figure is drawn

    s = Sitting(speed_rows, sitting_ids(speed_rows)[0])
    panels = [(task, comparisons(s, task, delta)) for task in s.tasks] + [(ACROSS, across_tasks(s, delta))]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2), squeeze=False)
    for ax, (title, found) in zip(axes[0], panels, strict=True):
        comps = sorted(found, key=lambda c: c.ratio)
        for y, c in enumerate(comps):
            err = [[c.ratio - c.interval[0]], [c.interval[1] - c.ratio]]
            ax.errorbar([c.ratio], [y], xerr=err, fmt="o", capsize=3, color=VERDICT_COLOURS[Verdict(c.verdict)])
        ax.axvspan(1 / (1 + delta), 1 + delta, alpha=0.12, color="tab:blue")
        ax.axvline(1.0, color="black", lw=1)
        ax.set_xscale("log")
        ax.set_yticks(range(len(comps)), [c.framework for c in comps])
        ax.set_title(title if title != ACROSS else "all tasks (geometric mean)")
        level = f"{100 * comps[0].level:.4g} %" if comps else ""
        ax.set_xlabel(f"time per step × {s.anchor} ({level} interval)")
    marks = [Line2D([], [], color=c, marker="o", ls="", label=v.value) for v, c in VERDICT_COLOURS.items()]
    marks.append(Line2D([], [], color="black", lw=1, label=f"anchor: {s.anchor}"))
    fig.legend(handles=marks, loc="upper center", ncol=len(marks), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    path.parent.mkdir(parents=True, exist_ok=True)
    return plots.save(fig, path, dpi=110, tight=False)


def profile(s: Sitting) -> dict[str, list[float]]:
    """Performance profiles (Dolan & Moré 2002, Math. Program. 91:201-13): for each framework tier, its time per
    step over the fastest tier's on each task (the geometric mean of its groups' ratios to the anchor); a
    tier's curve at tau is the share of tasks on which it is within tau of the fastest."""
    by_tier = tiers_by_task(s)
    ratios = {t: {v: math.exp(float(np.mean(list(g.values())))) for v, g in m.items() if g} for t, m in by_tier.items()}
    out: dict[str, list[float]] = defaultdict(list)
    for per in ratios.values():
        best = min(per.values())
        for v, r in per.items():
            out[v].append(r / best)
    return {v: sorted(r) for v, r in out.items() if len(r) == len(ratios)}


def profile_plot(speed_rows: list[dict], path: Path) -> Path:
    """The performance-profile figure: one step curve per framework tier, tau on a log scale from 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dlbench.analysis import plots

    s = Sitting(speed_rows, sitting_ids(speed_rows)[0])
    curves = profile(s)
    top = max((max(r) for r in curves.values()), default=2.0) * 1.2
    fig, ax = plt.subplots(figsize=(7, 4.5))
    frameworks = sorted({v.removesuffix(" (tuned)") for v in curves})
    colour = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(frameworks)}  # a framework's two tiers alike
    for v, r in sorted(curves.items()):
        taus = [1.0, *r, top]
        shares = [sum(x <= 1.0 for x in r) / len(r), *(sum(x <= t for x in r) / len(r) for t in r), 1.0]
        framework = v.removesuffix(" (tuned)")
        ax.step(taus, shares, where="post", label=v, ls="-" if v == framework else "--", color=colour[framework])
    ax.set_xscale("log")
    ax.set_xlim(1.0, top)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("τ: time per step within τ × the fastest tier on the task")
    ax.set_ylabel(f"share of the {len(s.tasks)} tasks")
    ax.set_title(f"Performance profiles (Dolan & Moré 2002), sitting {s.id}")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    return plots.save(fig, path, dpi=110)


def write_speed(results: Path, sitting_id: str | None = None, delta: float = DELTA, loaded=None) -> str:
    """RESULTS/speed.md from RESULTS/speed.jsonl (every sitting; `loaded`: load_speed's answer, where the caller
    has it); returns the markdown of `sitting_id` (or all)."""
    rows, warnings = loaded or load_speed(results)
    for w in warnings:
        print(w, file=sys.stderr)
    text = speed_md(rows, delta)
    files.write_whole(results / "speed.md", "\n".join(warnings + [text]))
    return text if sitting_id is None else speed_md(rows, delta, sitting_id)


def write_edition(results: Path, speed_rows: list[dict], runs: pd.DataFrame) -> list[Path]:
    """RESULTS/tables.md and RESULTS/plots/tables.png."""
    out = results / "tables.md"
    png = plot(speed_rows, results / "plots" / "tables.png")
    curves = profile_plot(speed_rows, results / "plots" / "profile.png")
    files.write_whole(out, edition(speed_rows, runs, results=results))  # the plot beside it: links are the page's
    return [out, png, curves]
