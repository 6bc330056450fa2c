"""One table per task: the speed sitting's verdicts beside the convergence runs' accuracy (`tables.md`).

For each task of a results folder that holds both a speed sitting (speed.jsonl) and convergence runs
(runs.jsonl, full profile): per variant (framework and tier), the time per step and its ratio to the
anchor with the verdict (dlbench/analysis/speed.py: paired, Holm-corrected within the task), and the
test accuracy over the seeds, median [min, max], beside the task's published figure. The range of n
seeds is not called a 95 % interval: the chance that it holds the median is 1 - 2 * 0.5**n (0.94 at 5).
Time to target is derived, and says so: the sitting's time per step times the median run's steps to the
validation target (epochs to the target times the steps of an epoch; a run that never reached it counts
as never). Speed comes from one sitting only; accuracy does not depend on the machine's load.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench.analysis.speed import _bimodal_notes, anchor_of, diffs, label, values, verdict_table
from dlbench.analysis.verdicts import ALPHA, DELTA, Comparison, against_differences
from tasks import TASKS

SEED_RANGE_COVERAGE = "1 - 2 × 0.5ⁿ"  # the chance a range of n draws holds the median


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


def _to_target(step_s: dict[int, float] | None, runs: pd.DataFrame) -> str:
    """The processes' geometric-mean step (as the table's ms / step) × the median run's steps to the target."""
    if runs.empty or not step_s:
        return "—"
    steps = float(np.median([steps_to_target(r) for _, r in runs.iterrows()]))
    if not math.isfinite(steps):
        return "not reached"
    step = float(np.exp(np.mean(np.log(list(step_s.values())))))
    return f"{step * steps:.3g} s ({steps:.0f} steps)"


class _Sitting:
    """One speed sitting's per-task values and paired differences, computed once for tables and plot."""

    def __init__(self, speed_rows: list[dict]):
        vals = values(speed_rows)
        if len(vals) != 1:
            raise ValueError(f"an edition's tables come from one speed sitting; found {len(vals)}")
        (self.id,) = vals
        self.rows, self.per_task, self.paired = speed_rows, vals[self.id], diffs(speed_rows)[self.id]
        self.anchor = anchor_of(speed_rows, self.id)
        self.tasks = [t for t in TASKS if t in self.per_task]


def _split(name: str) -> tuple[str, str]:
    """("torch", "tuned: fused-adam") for "torch (fused-adam)"; ("torch", "default") for "torch"."""
    framework, _, candidate = name.partition(" (")
    return framework, f"tuned: {candidate.rstrip(')')}" if candidate else "default"


def tier_comparisons(s: _Sitting, task: str, delta: float = DELTA) -> dict[str, Comparison]:
    """Each tuned variant against its own default tier, paired within the sitting's groups (the anchor
    cancels: log(tuned / anchor) - log(default / anchor)); Holm within the task's tuned variants."""
    paired = s.paired[task]
    d = {}
    for name, groups in paired.items():
        framework, tier = _split(name)
        # the anchor's default tier has log ratio 0 to itself in every group
        own = paired.get(framework) or ({g: 0.0 for g in groups} if framework == s.anchor else {})
        if tier != "default" and own:
            d[name] = {g: x - own[g] for g, x in groups.items() if g in own}
    return {c.framework: c for c in against_differences(d, "its default", ALPHA, delta)}


def task_table(s: _Sitting, runs: pd.DataFrame, task: str, delta: float = DELTA,
               kept_default: tuple[str, ...] = ()) -> str:  # fmt: skip
    """The markdown of one task: its variants' verdicts and accuracies, the published figure above them."""
    per = s.per_task[task]
    table, _ = verdict_table(per, s.anchor, _bimodal_notes(s.rows, s.id, task), delta, s.paired[task])
    tiers = tier_comparisons(s, task, delta)
    t = TASKS[task]
    runs = runs if len(runs) else pd.DataFrame(columns=["task", "status", "profile", "framework", "test_accuracy"])
    runs = runs[(runs["task"] == task) & (runs["status"] == "ok") & (runs["profile"] == "full")]
    recipe = runs["recipe"].fillna("ours") if "recipe" in runs else pd.Series("ours", index=runs.index)
    seeds_own, runs = runs[recipe == "seed"], runs[recipe == "ours"]
    labels = runs.apply(lambda r: label(r.to_dict()), axis=1) if len(runs) else pd.Series(dtype=str)
    variant, tier, own, accuracy, to_target = [], [], [], [], []
    for _, line in table.iterrows():
        framework, where = _split(line["framework"])
        variant.append(framework)
        tier.append(where)
        c = tiers.get(line["framework"])
        own.append(c.words if c else ("" if where == "default" else "—"))
        # convergence runs are the default tier's; a tuned variant trains the same model (parity), so its
        # accuracy is its default's and its time to target is its own step × its default's steps
        mine = runs[labels == framework] if len(runs) else runs
        accuracy.append(_accuracy(mine) + ("" if where == "default" or mine.empty else " (its default's runs)"))
        to_target.append(_to_target(per.get(line["framework"]), mine))
    table = table.drop(columns=["framework", "windows"])
    table.insert(0, "tier", tier)
    table.insert(0, "variant", variant)
    table = table.assign(**{"tuned × its default [95 % interval]": own,
                            "test accuracy: median [range], seeds": accuracy,
                            "time to target (derived)": to_target})  # fmt: skip
    published = f"published {t.published.stated} ({t.published.source})" if t.published else "no published figure"
    kept = (f" Tuned tier = default tier (tune kept the default: `tuning.md`) for {', '.join(kept_default)}."
            if kept_default else "")  # fmt: skip
    return (f"**{task}** — {published}; validation target {t.recipe.target_val_accuracy:g}.{kept}\n\n"
            + table.to_markdown(index=False, disable_numparse=True) + seed_recipe_line(task, seeds_own))  # fmt: skip


def seed_recipe_line(task: str, runs: pd.DataFrame) -> str:
    """The `--recipe seed` runs' accuracy per framework beside the published figure ("" where there are none)."""
    t = TASKS[task]
    if runs.empty or t.seed_recipe is None:
        return ""
    r = t.seed_recipe
    how = (f"all {int(runs['n_train'].max()):,} training examples, {r.max_epochs} epochs, "
           + ("early stopping" if r.early_stopping else "no early stopping")
           + (", validated on the test set" if r.validate_on_test else ""))  # fmt: skip
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


def tables(speed_rows: list[dict], runs: pd.DataFrame, delta: float = DELTA, results: Path | None = None) -> str:
    """Every task of the folder's single speed sitting, in TASKS order; ValueError where there is not one sitting.
    With `results`, its tuning.json names where the tuned tier is the default tier."""
    s = _Sitting(speed_rows)
    kept = kept_defaults(results, {_split(f)[0] for per in s.per_task.values() for f in per})
    info = next(r for r in speed_rows if (r.get("sitting") or {}).get("id") == s.id)
    head = (f"Speed: sitting {s.id} (boot {str(info['sitting'].get('boot_id'))[:8]}, "
            f"{info['provenance']['machine'].get('cpu')}, {info['threads']} threads), anchor "
            f"{s.anchor}, equivalence within ±{100 * delta:g} %. Accuracy: full-profile "
            f"convergence runs, median [min, max] over seeds (the range holds the median with chance "
            f"{SEED_RANGE_COVERAGE}: 0.94 at 5 seeds, so it is not called a 95 % interval). Time to target: "
            "derived, the sitting's ms / step × the median run's steps to the validation target. A tuned variant "
            "is also set against its own default in the same groups (Holm within the task).")  # fmt: skip
    body = [task_table(s, runs, t, delta, kept.get(t, ())) for t in s.tasks]
    return "\n\n".join([head, *body]) + "\n"


def plot(speed_rows: list[dict], path: Path, delta: float = DELTA) -> Path:
    """Each task's ratios to the anchor with their 95 % intervals, log scale, the equivalence band shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = _Sitting(speed_rows)
    fig, axes = plt.subplots(1, len(s.tasks), figsize=(4 * len(s.tasks), 3.5), squeeze=False)
    for ax, task in zip(axes[0], s.tasks, strict=True):
        _, comps = verdict_table(s.per_task[task], s.anchor, {}, delta, s.paired[task])
        comps = sorted(comps, key=lambda c: c.ratio)
        y = np.arange(len(comps))
        lo = [c.ratio - c.interval[0] for c in comps]
        hi = [c.interval[1] - c.ratio for c in comps]
        ax.errorbar([c.ratio for c in comps], y, xerr=[lo, hi], fmt="o", capsize=3)
        ax.axvspan(1 - delta, 1 + delta, alpha=0.15)
        ax.set_xscale("log")
        ax.set_yticks(y, [c.framework for c in comps])
        ax.set_title(task)
        ax.set_xlabel(f"time per step × {s.anchor} (95 % interval)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_tables(results: Path, speed_rows: list[dict], runs: pd.DataFrame) -> list[Path]:
    """RESULTS/tables.md and RESULTS/plots/tables.png."""
    from dlbench import files

    out = results / "tables.md"
    png = plot(speed_rows, results / "plots" / "tables.png")
    files.write_whole(out, tables(speed_rows, runs, results=results))  # the plot beside it: links are the page's
    return [out, png]
