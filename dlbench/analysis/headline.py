"""The headline of a results folder: `headline.md`, which the README includes verbatim (tests/test_report.py
holds the two equal), so no figure in the README's headline is typed in by hand.

Per task and setting: each framework's median test accuracy beside the seed's published figure, its
median steady epoch with the interval over runs, the ratio to the fastest and the verdict in words, all
computed from runs.jsonl by the report's own functions (the run is the unit; dlbench/analysis/stats.py).
Where a framework ran both tiers, its tuned tier against its default (dlbench/analysis/tiers.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import files
from dlbench.analysis.parity import load_parity
from dlbench.analysis.report import _differs, _fmt, groups, load_runs, speed_rows, summarise, tier_settings
from dlbench.analysis.stats import ALPHA
from dlbench.analysis.tiers import tier_rows
from tasks import TASKS

# What these convergence-run comparisons are not; the speed protocol's verdicts are (docs/methodology.md).
CAVEAT = (
    "The fastest is picked from these same runs; the interval is a hierarchical bootstrap's, whose "
    "coverage at 2-4 runs is not shown to reach 95 %."
)


def corrected(rows: list[dict]) -> dict[str, float]:
    """Holm-adjusted p of each framework against the fastest, over the rankable ones that pass the accuracy
    gate: the family is every comparison this headline makes for the task and setting (Holm 1979)."""
    from dlbench.analysis.verdicts import holm

    family = [r for r in rows[1:] if r["_to_fastest"].rankable and r.get("gate", "ok") == "ok"]
    return dict(zip([r["framework"] for r in family], holm([r["_to_fastest"].p_value for r in family]), strict=True))


def _verdict(rows: list[dict]) -> str:
    """One sentence: the fastest, then who is slower than it after Holm's correction, who cannot be told
    apart, who has too few runs, and who failed the accuracy gate (not ranked at all)."""
    fastest = rows[0]["framework"]
    if len(rows) == 1:  # e.g. a tuned tier run for one framework: its comparison is the report's tier section
        return f"only {fastest} ran in this setting."
    p = corrected(rows)
    slower, tied, unranked, gated = [], [], [], []
    for r in rows[1:]:
        c = r["_to_fastest"]
        if r.get("gate", "ok") != "ok":
            gated.append(r["framework"])
        elif not c.rankable:
            unranked.append(r["framework"])
        elif p[r["framework"]] < ALPHA and c.significant:
            slower.append(f"{r['framework']} {c.ratio:.2f}x")
        else:
            tied.append(r["framework"])
    out = [f"lowest median epoch: {fastest}"]
    if slower:
        out.append("slower than it after Holm's correction: " + ", ".join(slower))
    if tied:
        out.append("not distinguishable from it with these runs after Holm's correction: " + ", ".join(tied))
    if unranked:
        out.append("not enough runs to rank: " + ", ".join(unranked))
    if gated:
        out.append("not ranked, outside the accuracy gate: " + ", ".join(gated))
    return "; ".join(out) + "."


def _short(r: dict, p: dict[str, float]) -> str:
    """The verdict against the fastest in a few words (Holm-adjusted p)."""
    c = r["_to_fastest"]
    if c is None:
        return "—"
    if r.get("gate", "ok") != "ok":
        return "not ranked: accuracy gate"
    if not c.rankable:
        return f"cannot rank ({c.n[0]} vs {c.n[1]} runs)"
    slower = p[r["framework"]] < ALPHA and c.significant
    return f"{'slower' if slower else 'not distinguishable'}, Holm p = {p[r['framework']]:.2g}"


def _tier_short(c) -> str:
    """The tuned tier against the default in a few words (a ratio below 1 is faster)."""
    if not c.rankable:
        return f"cannot rank ({c.n[0]} vs {c.n[1]} runs)"
    if not c.significant:
        return f"not distinguishable, p = {c.p_value:.2g}"
    return f"{'faster' if c.ratio < 1 else 'slower'}, p = {c.p_value:.2g}"


def _tiers(df: pd.DataFrame) -> list[str]:
    """Per setting (tier aside) where a framework ran both tiers: its tuned tier against its default."""
    parts = []
    for key, ok in tier_settings(df).items():
        rows = tier_rows(ok)
        if not rows:
            continue
        lines = [{
            "task": r["task"],
            "framework": r["framework"],
            "runs": r["runs (default, tuned)"],
            "epoch (s) default → tuned": r["epoch (s) default → tuned"],
            "tuned / default [bootstrap]": r["tuned / default"],
            "tuned tier": _tier_short(r["_compared"]),
            "compile payback": r["compile payback"],
        } for r in rows]  # fmt: skip
        parts.append(
            f"**Tuned tier against default, {key[0]} profile ({_differs(key[:-1] + (None,))})** — each "
            "framework's tuned tier (what its documentation offers for speed) against its own default tier, "
            "steady epochs over runs; compile payback: per seed run in both tiers, the epoch from which the "
            "tuned tier's cumulative training time is no longer behind (the median over the seed pairs).\n\n"
            + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
        )
    return parts


def _accuracy_line(task: str, profile: str, accs: pd.Series) -> str:
    pub = TASKS[task].published if task in TASKS else None
    span = f"{accs.min():.4f}–{accs.max():.4f}" if len(accs) > 1 else f"{accs.iat[0]:.4f}"
    ours = f"each framework's median over its runs: {span}"
    if profile != "full":  # a subset trained for 1-2 epochs says nothing about the published figure
        return f"Test accuracy (a subset, not comparable with any published figure): {ours}."
    if pub is None:
        return f"Test accuracy: no published figure for this task; {ours}."
    return f"Test accuracy: published {pub.stated} ({pub.source}); ours, {ours}."


def headline(df: pd.DataFrame, parity: dict | None = None) -> str:
    """The headline markdown for these rows (every setting present; one table per task and setting)."""
    tables, grouped = summarise(df, parity), groups(df)
    per_task: dict[tuple, int] = {}
    for key in tables:
        per_task[key[:2]] = per_task.get(key[:2], 0) + 1
    parts = []
    for key, table in tables.items():
        profile, task = key[0], key[1]
        ok = grouped[key][grouped[key]["status"] == "ok"]
        rows, basis = speed_rows(table, ok)
        if not rows:
            continue
        acc = dict(zip(table["framework"], table["test_accuracy"], strict=True))
        p = corrected(rows)
        n_ok = dict(zip(table["framework"], table["runs"], strict=True))
        lines = [{
            "framework": r["framework"],
            "runs": n_ok[r["framework"]],
            "test acc": _fmt("test_accuracy", acc[r["framework"]]),
            "runs timed": r["runs"],  # the quiet runs of one boot (report.speed_rows)
            "median epoch (s)": r["median epoch (s)"],
            "× fastest [bootstrap]": r["× fastest [bootstrap]"],
            "vs the fastest": _short(r, p),
        } for r in rows]  # fmt: skip
        title = f"{task}, {profile} profile" + (f" ({_differs(key)})" if per_task[key[:2]] > 1 else "")
        parts.append(
            f"**{title}** — {_verdict(rows)} "
            f"{_accuracy_line(task, profile, pd.Series([acc[r['framework']] for r in rows]))} "
            f"Speed from {basis}. {CAVEAT}\n\n" + pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
        )
    if "tier" in df:
        parts += _tiers(df)
    by = ["task", "framework"] + (["tier"] if "tier" in df else [])  # a tuned tier's runs are not more runs
    n_runs = df[df["status"] == "ok"].groupby(by, dropna=False).size()
    if n_runs.empty:  # e.g. only an interrupted first run: nothing to rank, and the rows say why
        statuses = ", ".join(f"{n} {s}" for s, n in df["status"].value_counts().items())
        return f"No run finished ok yet, so nothing is ranked ({statuses}): see report.md for each row's cause.\n"
    runs = f"{int(np.min(n_runs))}–{int(np.max(n_runs))}" if len(set(n_runs)) > 1 else str(int(n_runs.iat[0]))
    return (f"{runs} runs per framework and task (seeds {', '.join(map(str, sorted(set(df['seed']))))}); "
            "medians over runs.\n\n" + "\n\n".join(parts) + "\n")  # fmt: skip


def write_headline(results: Path, profile: str | None = None) -> Path:
    """RESULTS/headline.md from RESULTS/runs.jsonl (after `write_summary`, which checked the folder)."""
    df = load_runs(results, quiet=True)  # after `write_summary`, which already warned about skipped lines
    if profile:
        df = df[df["profile"] == profile]
    files.write_whole(results / "headline.md", headline(df, load_parity(results)[0]))
    print(f"written: {results / 'headline.md'}")
    return results / "headline.md"
