"""The scorecard: one row per framework, one column per criterion the seed tutorial names ("assessed on various
metrics (not just popularity)": languages, raw performance, ETL, documentation and community, maintenance) plus
accuracy, memory and footprint. Every cell is measured by a command, or a documented fact with its source
and the day it was read; a column's header links to the page that says how (docs/scorecard.md).

- Speed: the speed protocol's geometric mean over the sitting's tasks (speed.across_tasks), both tiers.
- Accuracy: the convergence runs' median test accuracy per task against the published figure.
- Memory: what training adds, per task: the speed rows' timed peak over the process's resident memory before
  the task was built, median over processes; where the sitting's rows predate it, the convergence runs'.
- Input pipeline, footprint: `harness.py assess` (RESULTS/assessment.json).
- Releases: PyPI's release history (frameworks/releases.json, its day); languages and status: facts.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import files, schemas
from dlbench.analysis import cadence
from dlbench.analysis.assess import apis_words, rate
from dlbench.analysis.speed import Sitting, across_tasks, label, split, usable
from dlbench.analysis.verdicts import DELTA
from frameworks import FRAMEWORKS, ROOT
from tasks import TASKS

DOCS = "docs/scorecard.md"
SHORT = {"iris_mlp": "Iris", "mnist_cnn": "MNIST", "imdb_lstm": "IMDB LSTM", "imdb_transformer": "Transformer"}
LIFECYCLE = "checkpoint, resume, retrain, export, serve: the lifecycle measurement fills this"


def _col(name: str, anchor: str) -> str:
    return f"[{name}]({DOCS}#{anchor})"


def speed_cell(s: Sitting, framework: str, delta: float) -> str:
    """The framework's default tier over all tasks against the anchor, and its tuned tier where it differs."""
    found = {c.framework: c for c in across_tasks(s, delta)}
    default = "anchor" if framework == s.anchor else found[framework].words if framework in found else "—"
    tuned = found.get(f"{framework} (tuned)")
    return default + (f"; tuned: {tuned.words}" if tuned else "")


def accuracy_cell(runs: pd.DataFrame, framework: str, task: str) -> str:
    """Median test accuracy over the framework's full-profile seeds, ✓ within the task's gate of the published
    figure (of its floor where none is published), else the gap."""
    mine = runs[(runs["framework"] == framework) & (runs["task"] == task)] if len(runs) else runs
    acc = pd.to_numeric(mine["test_accuracy"], errors="coerce").dropna() if len(mine) else pd.Series(dtype=float)
    if acc.empty:
        return "— (no runs)"
    t, median = TASKS[task], float(acc.median())
    goal = t.published.test_accuracy - t.gate.tolerance if t.published else t.gate.min_full
    if median >= goal:
        return f"{100 * median:.1f} % ✓"
    ref = t.published.test_accuracy if t.published else t.gate.min_full
    return f"{100 * median:.1f} % ({100 * (median - ref):+.1f} pt)"


def memory_cell(s: Sitting, runs: pd.DataFrame, framework: str) -> tuple[str, str]:
    """MiB training adds per task (the sitting's order), and where the figures come from."""
    speed = {
        t: [
            r["timed_peak_rss_mib"] - r["rss_before_build_mib"]
            for r in s.rows
            if usable(r) and r["task"] == t and label(r) == framework and r.get("timed_peak_rss_mib") is not None
        ]
        for t in s.tasks
    }
    if all(speed.values()):
        return " · ".join(f"{np.median(v):,.0f}" for v in speed.values()), "speed"
    out = []
    for t in s.tasks:
        mine = runs[(runs["framework"] == framework) & (runs["task"] == t)] if len(runs) else runs
        cols = {"train_peak_rss_mib", "rss_before_train_mib"}
        added = (mine["train_peak_rss_mib"] - mine["rss_before_train_mib"]).dropna() if cols <= set(mine) else []
        out.append(f"{np.median(added):,.0f}" if len(added) else "—")
    return " · ".join(out), "runs"


def pipeline_cell(pipeline: str, measured: dict, assessed: bool) -> str:
    """The framework's own input pipeline's rates, images and text (median over processes), or why there are none."""
    if not pipeline:
        return "none: Keras takes the arrays"
    if not assessed:
        return f"{pipeline}: —"
    kinds = (("images", " images/s"), ("text", " reviews/s"))
    parts = [rate(measured.get(kind) or {}, unit) for kind, unit in kinds]
    return f"{pipeline}: " + "; ".join(parts)


def _assessment(results: Path | None) -> dict:
    path = results / "assessment.json" if results else None
    if path is None or not path.exists():
        return {}
    found = files.read_json(path)
    return found if schemas.problem(schemas.Assessment, found) is None else {}


def scorecard(s: Sitting, runs: pd.DataFrame, results: Path | None = None, delta: float = DELTA) -> str:
    """The scorecard's markdown: the table, then where each column's figures come from and when."""
    runs = runs if len(runs) else pd.DataFrame(columns=["framework", "task", "status", "profile", "tier"])
    ok = runs[(runs["status"] == "ok") & (runs["profile"] == "full")]
    if "recipe" in ok:
        ok = ok[ok["recipe"].fillna("ours") == "ours"]
    if "tier" in ok:
        ok = ok[ok["tier"].fillna("default") == "default"]
    facts = files.read_json(ROOT / "frameworks" / "facts.json")
    assessed = _assessment(results)
    snapshot = cadence.load()
    present = {split(name)[0] for per in s.paired.values() for name in per} | {s.anchor}
    lines, sources = [], set()
    for fw, entry in FRAMEWORKS.items():
        if fw not in present:
            continue
        mine = [facts.get(k, {}) for k in entry.facts]  # Keras on TensorFlow: Keras's facts, then TensorFlow's
        memory, source = memory_cell(s, ok, fw)
        sources.add(source)
        projects = [f["pypi"][0] for f in mine if f.get("pypi")]
        histories = [(p, snapshot.projects[p]) for p in projects if snapshot and p in snapshot.projects]
        languages = mine[0].get("languages", []) if mine else []  # the API a user writes: Keras's, not its backend's
        pipe = (assessed.get("etl") or {}).get(entry.pipeline) or {}
        size, code = (assessed.get("install_mib") or {}).get(fw), (assessed.get("code_lines") or {}).get(fw)
        lines.append(
            {
                "framework": fw,
                _col("speed, all tasks", "speed"): speed_cell(s, fw, delta),
                **{_col(f"accuracy {SHORT.get(t, t)}", "accuracy"): accuracy_cell(ok, fw, t) for t in s.tasks},
                _col("memory training adds, MiB", "memory"): memory,
                _col("input pipeline", "input-pipeline"): pipeline_cell(entry.pipeline, pipe, bool(assessed)),
                _col("releases in 24 months", "releases"): "; ".join(
                    cadence.cadence(p, h, snapshot.read_on).short for p, h in histories
                )
                or "—",
                _col("documented APIs", "documented-apis"): apis_words((assessed.get("apis") or {}).get(fw) or {})
                if assessed
                else "—",
                _col("languages", "languages"): ", ".join(languages) or "—",
                _col("status", "status"): mine[0].get("status", "—") if mine else "—",
                _col("lifecycle", "lifecycle"): LIFECYCLE,
                _col("footprint", "footprint"): (
                    f"{size:,.0f} MiB installed, {code} adapter lines" if isinstance(size, (int, float)) else "—"
                ),
            }
        )
    where = "speed rows (timed windows)" if sources == {"speed"} else "convergence runs (train peak − before training)"
    notes = [
        f"Speed: sitting {s.id} on {s.cpu}, geometric mean of the time per step over {len(s.tasks)} tasks against "
        f"{s.anchor}, Holm over the variants, interval at the level the verdicts used.",
        f"Memory, per task ({' · '.join(SHORT.get(t, t) for t in s.tasks)}): from the {where}, median.",
        "Input pipeline, documented APIs and footprint: "
        + (
            f"`harness.py assess` on {assessed.get('measured_at', '?')[:10]}, "
            f"{(assessed.get('machine') or {}).get('cpu') or 'a CPU not recorded'}, "
            f"{assessed.get('threads')} threads."
            if assessed
            else "`harness.py assess` has not been run for these results."
        ),
        f"Releases: final releases on PyPI in the 24 months before {snapshot.read_on}, the median days between them "
        "and the days since the last (`harness.py assess --online`)."
        if snapshot
        else "",
        "Languages and status: frameworks/facts.json, each with its source. Popularity is not scored.",
    ]
    table = pd.DataFrame(lines).to_markdown(index=False, disable_numparse=True)
    return "### Scorecard\n\n" + table + "\n\n" + " ".join(n for n in notes if n) + "\n"
