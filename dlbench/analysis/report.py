"""Turn RESULTS/runs.jsonl into the report: report.md, report.html, summary.csv and plots/ (PNG)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from dlbench.analysis.microbench import microbench_table
from dlbench.analysis.parity import load_parity
from dlbench.results import check_writable, read_rows
from tasks import TASKS

# Column -> header; every timing is the median over the seeds' ok runs.
COLUMNS = {
    "framework": "framework",
    "framework_version": "version",
    "runs": "ok runs",
    "test_accuracy": "test acc",
    "gate": "gate",
    "epochs_run": "epochs",
    "time_to_target_s": "to target (s)",
    "first_epoch_s": "first epoch (s)",
    "steady_epoch_s": "steady epoch (s)",
    "train_samples_per_s": "train samples/s",
    "eval_samples_per_s": "infer samples/s",
    "peak_rss_mib": "peak RSS (MiB)",
    "n_params": "params",
    "threads": "threads",
    "machine_busy": "busy runs",
}


class ReportError(Exception):
    """The results cannot be read: one line, exit 2."""


def load_runs(results: Path) -> pd.DataFrame:
    """All usable rows of runs.jsonl (dlbench/results.py's reader); malformed lines are skipped with a
    warning that counts them and gives their line numbers."""
    path = results / "runs.jsonl"
    try:
        found = read_rows(path)
    except OSError as e:
        raise ReportError(f"cannot read {path} ({e.strerror}): run `python harness.py run` first") from None
    if found.bad:
        print(found.warning(path), file=sys.stderr)
    rows = found.rows
    if not rows:
        raise ReportError(f"{path} holds no readable rows: run `python harness.py run` first")
    df = pd.DataFrame(rows)
    for col in (
        *(c for c in COLUMNS if c not in ("runs", "gate")),
        *TIMINGS,
        "profile",
        "seed",
        "train_s",
        "timestamp",
    ):
        if col not in df:
            df[col] = None
    # Rows written before the schema field existed are schema 0 (pyperf versions its JSON the same way).
    df["schema"] = pd.to_numeric(df["schema"], errors="coerce").fillna(0).astype(int) if "schema" in df else 0
    df["history"] = [h if isinstance(h, list) else [] for h in df.get("history", [None] * len(df))]
    df["machine_busy"] = df["machine_busy"].fillna(False).astype(bool)
    return df


TIMINGS = ("time_to_target_s", "first_epoch_s", "steady_epoch_s", "train_samples_per_s", "eval_samples_per_s")


def gate(table: pd.DataFrame, task: str, profile: str, parity: dict) -> pd.Series:
    """Per framework: "ok", or why its timings are not comparable (accuracy floor, distance from the
    frameworks' median accuracy, a failed parity check)."""
    g = TASKS[task].gate if task in TASKS else None
    median = table["test_accuracy"].median()
    verdicts = []
    for fw, acc in zip(table["framework"], table["test_accuracy"], strict=True):
        why = []
        if g is not None:
            floor = g.min_full if profile == "full" else g.min_quick
            if not acc >= floor:
                why.append(f"accuracy below {floor:g}")
            elif profile == "full" and abs(acc - median) > g.tolerance:
                why.append(f"accuracy {acc - median:+.3f} from the median (> {g.tolerance:g})")
        if parity.get((task, fw), "pass").startswith(("FAIL", "unavailable")):
            why.append(f"parity {parity[(task, fw)]}")
        verdicts.append("ok" if not why else "✗ " + "; ".join(why))
    return pd.Series(verdicts, index=table.index)


def summarise(df: pd.DataFrame, parity: dict | None = None) -> dict[tuple[str, str], pd.DataFrame]:
    """(profile, task) -> one row per framework: medians over ok runs, and the accuracy gate."""
    tables = {}
    order = {t: i for i, t in enumerate(TASKS)}
    keys = sorted(df.groupby(["profile", "task"]).groups, key=lambda k: (k[0], order.get(k[1], 99), k[1]))
    for profile, task in keys:
        g = df[(df["profile"] == profile) & (df["task"] == task)]
        ok = g[g["status"] == "ok"]
        if ok.empty:
            continue
        num = [c for c in COLUMNS if c in ok and c not in ("framework", "framework_version", "runs", "machine_busy")]
        agg = ok.groupby("framework")[num].median(numeric_only=False)
        agg.insert(0, "framework_version", ok.groupby("framework")["framework_version"].last())
        agg.insert(1, "runs", ok.groupby("framework").size())
        agg["machine_busy"] = ok.groupby("framework")["machine_busy"].sum().astype(int)
        agg = agg.reset_index()
        agg.insert(agg.columns.get_loc("test_accuracy") + 1, "gate", gate(agg, task, profile, parity or {}))
        tables[(profile, task)] = agg
    return tables


def _fmt(col: str, v) -> str:
    """Human formatting: accuracies to 4 decimals, seconds to 3 significant digits, counts with commas."""
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return "—"
    if col == "test_accuracy":
        return f"{v:.4f}"
    if col.endswith("_s") and not col.endswith("_per_s"):
        return f"{v:.3g}"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:,.0f}"
    return str(v)


def _markdown(table: pd.DataFrame) -> str:
    """The table as markdown; timings carry their 95 % interval where there are several runs, and a
    row that fails the gate has its timings in parentheses."""
    passed = table["gate"] == "ok" if "gate" in table else pd.Series(True, index=table.index)

    def cell(c, i):
        s = _fmt(c, table[c].iat[i])
        lo, hi = (table[f"{c}_ci_low"].iat[i], table[f"{c}_ci_high"].iat[i]) if f"{c}_ci_low" in table else (0, 0)
        if c in TIMINGS and s != "—" and pd.notna(lo) and lo != hi:
            s += f" [{_fmt(c, lo)}, {_fmt(c, hi)}]"
        return s if passed.iat[i] or c not in TIMINGS or s == "—" else f"({s})"

    t = pd.DataFrame({COLUMNS[c]: [cell(c, i) for i in range(len(table))] for c in table.columns if c in COLUMNS})
    align = ["left" if c in ("framework", "version", "gate") else "right" for c in t.columns]
    return t.to_markdown(index=False, disable_numparse=True, colalign=align)


def _with_intervals(table: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """Add <metric>_ci_low/_ci_high: 95 % bootstrap intervals of each timing's median over runs."""
    from dlbench.analysis.stats import bootstrap_ci

    for c in TIMINGS + ("test_accuracy", "peak_rss_mib"):
        if c in ok:
            cis = [bootstrap_ci(ok.loc[ok["framework"] == f, c].dropna()) for f in table["framework"]]
            table[f"{c}_ci_low"], table[f"{c}_ci_high"] = [c_[0] for c_ in cis], [c_[1] for c_ in cis]
    return table


def epoch_samples(ok: pd.DataFrame) -> tuple[dict[str, list[float]], str]:
    """Per framework, every steady epoch's seconds from every run; where runs have one epoch only,
    each run's first epoch (compilation included), and the basis says so."""
    steady = {f: [h["epoch_s"] for hist in g["history"] for h in hist[1:]] for f, g in ok.groupby("framework")}
    if all(steady.values()):
        return steady, "steady epochs (every epoch after the first, of every run)"
    first = {f: [hist[0]["epoch_s"] for hist in g["history"] if hist] for f, g in ok.groupby("framework")}
    return first, "first epochs (only one epoch per run: compilation included)"


def speed_section(table: pd.DataFrame, ok: pd.DataFrame) -> str:
    """Frameworks ranked by median epoch time: ratio to the fastest with its interval, and whether each
    differs significantly from the next faster one."""
    from dlbench.analysis.stats import ALPHA, compare

    samples, basis = epoch_samples(ok)
    gate_of = dict(zip(table["framework"], table["gate"], strict=True))
    ranked = sorted((f for f in samples if samples[f]), key=lambda f: float(pd.Series(samples[f]).median()))
    if len(ranked) < 2:
        return ""
    rows = []
    for i, f in enumerate(ranked):
        to_fastest = compare(f, samples[f], ranked[0], samples[ranked[0]]) if i else None
        lo, hi = to_fastest.ci if to_fastest else (None, None)
        to_next = compare(f, samples[f], ranked[i - 1], samples[ranked[i - 1]]) if i else None
        rows.append({
            "framework": f,
            "epochs measured": len(samples[f]),
            "median epoch (s)": _fmt("epoch_s", pd.Series(samples[f]).median()),
            "× fastest [95 % CI]": "1" if not i else f"{to_fastest.ratio:.2f} [{lo:.2f}, {hi:.2f}]",
            "vs the next faster": "—" if not i else f"{to_next.verdict} (p = {to_next.p_value:.2g})",
            "gate": gate_of.get(f, "—"),
        })  # fmt: skip
    return (
        f"Speed, from {basis}; intervals are percentile bootstraps, p from a two-sided Mann–Whitney U test "
        f"(significant below {ALPHA:g}, and only if the interval excludes 1).\n\n"
        + pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
        + "\n"
    )


def environment_section(df: pd.DataFrame) -> str:
    """Where and with what the runs were made: machine, threads, commits, versions per framework."""
    prov = [r for r in df.get("provenance", pd.Series(dtype=object)) if isinstance(r, dict)]
    lines = []
    machines = {json.dumps(p.get("machine", {}), sort_keys=True) for p in prov}
    for m in map(json.loads, sorted(machines)):
        lines.append(f"- machine: {m.get('cpu')}, {m.get('cpus_allowed')} of {m.get('cpu_count')} CPUs usable, "
                     f"{m.get('memory_gib')} GiB, {m.get('platform')}")  # fmt: skip
    if "threads" in df:
        lines.append(f"- threads per worker: {', '.join(str(t) for t in sorted(df['threads'].dropna().unique()))}")
    commits = sorted({(p.get("git") or {}).get("commit") or "unknown" for p in prov})
    lines.append(f"- commit(s): {', '.join(c[:10] for c in commits)}")
    if "timestamp" in df:
        lines.append(f"- runs from {df['timestamp'].min()} to {df['timestamp'].max()}")
    versions = {}
    for fw, p in zip(df["framework"], df.get("provenance", [None] * len(df)), strict=True):
        if isinstance(p, dict) and p.get("packages"):
            pk = ", ".join(f"{k} {v}" for k, v in p["packages"].items() if v is not None)
            versions[fw] = f"Python {p.get('python')}, {pk}"
    lines += [f"- {fw}: {v}" for fw, v in sorted(versions.items())]
    return "## Environment\n\n" + "\n".join(lines) + "\n"


def write_summary(results: Path, profile: str | None = None, figures: bool = True) -> int:
    """report.md, report.html, summary.csv and plots/ under `results`; the tables are printed too."""
    df = load_runs(results)
    if profile:
        present = sorted(set(df["profile"]))
        df = df[df["profile"] == profile]
        if df.empty:
            raise ReportError(f"no rows of the {profile} profile in {results / 'runs.jsonl'} (it holds: "
                              f"{', '.join(present)}): drop --profile or run that profile first")  # fmt: skip
    try:
        check_writable(results)
    except OSError as e:
        raise ReportError(f"cannot write the report into {results} ({e.strerror or e}): make it writable") from None
    parity, parity_warning = load_parity(results)
    if parity_warning:
        print(f"warning: {parity_warning}", file=sys.stderr)
    tables = summarise(df, parity)
    parts, frames = [environment_section(df)], []
    parts.append(
        "Medians over seeds of `ok` runs, with 95 % bootstrap intervals in brackets where there are several; "
        "`—` = not measured (e.g. no steady epoch when only one epoch ran). Gate: a framework's timings are "
        "comparable only if its test accuracy reached the task's floor and (full profile) lies within the "
        "task's tolerance of the median over frameworks (tasks/*.py), and it did not fail `harness.py parity`; "
        "otherwise they are shown in parentheses with the reason. "
        + (
            "Parity results: parity.csv.\n"
            if parity
            else f"Parity results unusable: {parity_warning}.\n"
            if parity_warning
            else "Parity was not run for these results.\n"
        )
    )
    for (prof, task), table in tables.items():
        ok = df[(df["profile"] == prof) & (df["task"] == task) & (df["status"] == "ok")]
        table = _with_intervals(table, ok)
        parts.append(f"## {task} ({prof} profile)\n\n{_markdown(table)}\n\n{speed_section(table, ok)}")
        frames.append(table.assign(task=task, profile=prof))
    if figures and tables:
        from dlbench.analysis.plots import all_figures

        for prof in sorted({p for p, _ in tables}):
            ok = df[(df["profile"] == prof) & (df["status"] == "ok")]
            paths = all_figures(ok, results / "plots" / prof)
            parts.append(f"## Figures ({prof} profile)\n\n"
                         + "\n\n".join(f"![{p.stem}]({p.relative_to(results)})" for p in paths) + "\n")  # fmt: skip
    failed = df[df["status"] != "ok"]
    if not failed.empty:
        cols = ["task", "framework", "profile", "seed", "status", "error"]
        parts.append("## Failures\n\n" + failed[cols].to_markdown(index=False) + "\n")
    busy = int(df.get("machine_busy", pd.Series(dtype=bool)).fillna(False).sum())
    if busy:
        parts.append(f"Warning: {busy} run(s) ran while other processes used the CPUs; their timings are suspect.\n")
    from dlbench.analysis.assess import render

    parts.append(render(results, df))
    if (results / "microbench").is_dir():
        parts.append("## Micro-benchmarks\n\n" + microbench_table(results / "microbench") + "\n")
    text = "# dlbench report\n\n" + "\n".join(parts)
    (results / "report.md").write_text(text)
    _html(text, results / "report.html")
    written = [results / "report.md", results / "report.html"]
    if frames:
        pd.concat(frames).to_csv(results / "summary.csv", index=False)
        written.append(results / "summary.csv")
    print(text)
    print(f"written: {', '.join(map(str, written))}")
    return 0


def _html(markdown_text: str, path: Path) -> None:
    """The same report as a standalone HTML page (figures linked relative to it)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px}"
             "td{text-align:right}img{max-width:100%}")  # fmt: skip
    path.write_text(f"<!doctype html>\n<html><head><meta charset='utf-8'><title>dlbench report</title>"
                    f"<style>{style}</style></head><body>\n{body}\n</body></html>\n")  # fmt: skip
