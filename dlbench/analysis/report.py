"""Turn RESULTS/runs.jsonl into the report: report.md, report.html, summary.csv and plots/ (PNG).

Convergence runs answer what they are for: accuracy over seeds, epochs and steps to the target, memory,
compile time (the first epoch beside the steady ones), latency. They rank nothing: every speed statement
comes from the speed protocol (dlbench/analysis/tables.py), where the processes took turns in one sitting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import files
from dlbench.analysis.microbench import microbench_table, overhead_table
from dlbench.analysis.parity import load_parity
from dlbench.analysis.stats import quiet
from dlbench.results import check_writable, read_rows
from tasks import TASKS

# Column -> header; every figure is the median over the ok runs (one value per run).
COLUMNS = {
    "framework": "framework",
    "framework_version": "version",
    "runs": "ok runs",
    "test_accuracy": "test acc",
    "gate": "gate",
    "epochs_run": "epochs",
    "reached": "reached target",
    "epochs_to_target": "epochs to target",
    "first_epoch_s": "first epoch (s)",
    "steady_epoch_s": "steady epoch (s)",
    "train_samples_per_s": "train samples/s",
    "eval_samples_per_s": "infer samples/s",
    "latency_b1_ms_p50": "batch-1 p50 (ms)",
    "latency_b1_ms_p99": "batch-1 p99 (ms)",
    "peak_rss_mib": "peak RSS (MiB)",
    "train_added_mib": "training added (MiB)",
    "peak_device_mib": "peak device (MiB)",
    "gpu_util_pct_median": "GPU util (%)",
    "energy_j_per_sample": "J/sample",
    "n_params": "params",
    "machine_busy": "busy runs",
}
# What makes two rows comparable: rows differing in any of these are never merged into one median.
# (Later fields, e.g. precision or tier, join here when rows carry them.) Tier stays last: the tiers'
# comparison sets it aside as key[:-1].
SETTINGS = ("profile", "task", "device_requested", "threads", "epochs_cap", "schema", "precision", "recipe", "tier")


class ReportError(Exception):
    """The results cannot be read: one line, exit 2."""


def load_runs(results: Path, path: Path | None = None, quiet: bool = False) -> pd.DataFrame:
    """All usable rows of RESULTS/runs.jsonl, or of the file `path` (dlbench/results.py's reader);
    malformed lines are skipped with a warning that counts them and gives their line numbers."""
    path = path or results / "runs.jsonl"
    try:
        found = read_rows(path)
    except OSError as e:
        raise ReportError(f"cannot read {path} ({e.strerror}): run `python harness.py run` first") from None
    if found.bad and not quiet:
        print(found.warning(path), file=sys.stderr)
    rows = found.rows
    if not rows:
        raise ReportError(f"{path} holds no readable rows: run `python harness.py run` first")
    df = pd.DataFrame(rows)
    for col in (
        *(c for c in COLUMNS if c not in ("runs", "gate")),
        *TIMINGS,
        "peak_device_mib",
        "gpu_util_pct_median",
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
    for col in SETTINGS:
        if col not in df:
            df[col] = None
    df["recipe"] = df["recipe"].fillna("ours")  # rows written before --recipe existed ran ours
    if "device" in df:  # rows before device_requested existed: the kind of device they ran on ("cpu(0)" -> cpu)
        kind = df["device"].map(
            lambda d: None if not isinstance(d, str) else "cpu" if d.lower().startswith("cpu") else "gpu"
        )
        df["device_requested"] = df["device_requested"].fillna(kind)

    # What training added on top of the framework, its data and the model: from schema 2 the peak
    # counted from the start of training; older rows only have the whole process's peak.
    def num(col):
        return pd.to_numeric(df[col], errors="coerce") if col in df else pd.Series(np.nan, index=df.index)

    peak = num("train_peak_rss_mib").fillna(num("peak_rss_mib"))
    df["train_added_mib"] = (peak - num("rss_before_train_mib")).clip(lower=0)
    # Energy per training sample over the training epochs (validation passes included): the GPU board's
    # where measured, else the CPU packages' (dlbench/driver/monitor.py says what each covers).
    df["epochs_to_target"] = [epochs_to_target(t, h) for t, h in zip(df["task"], df["history"], strict=True)]
    energy = num("gpu_energy_j").fillna(num("cpu_energy_j"))
    df["energy_j_per_sample"] = energy / (num("n_train") * num("epochs_run"))
    return df


TIMINGS = (
    "first_epoch_s",
    "steady_epoch_s",
    "train_samples_per_s",
    "eval_samples_per_s",
    "latency_b1_ms_p50",
    "latency_b1_ms_p99",
)


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


def settings_key(row) -> tuple:
    """The row's SETTINGS values; whole floats as ints (pandas turns an int column with nulls into floats)."""

    def clean(v):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        return int(v) if isinstance(v, float) and v.is_integer() else v

    return tuple(clean(row[c]) for c in SETTINGS)


def groups(df: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """Rows split by SETTINGS, ordered by profile, then task as in TASKS, then the rest."""
    order = {t: i for i, t in enumerate(TASKS)}
    keys = [settings_key(r) for _, r in df[list(SETTINGS)].iterrows()]
    out: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys):
        out.setdefault(k, []).append(i)
    ranked = sorted(out, key=lambda k: (str(k[0]), order.get(k[1], 99), str(k[1]), tuple(map(str, k[2:]))))
    return {k: df.iloc[out[k]] for k in ranked}


def tier_settings(df: pd.DataFrame) -> dict[tuple, pd.DataFrame]:
    """The `ok` rows per setting with task and tier set aside (key: tier None): where tiers are compared."""
    return {
        key: g[g["status"] == "ok"].assign(task=df.loc[g.index, "task"], tier=df.loc[g.index, "tier"])
        for key, g in groups(df.assign(task="*", tier="*")).items()
    }


def epochs_to_target(task: str, history: list) -> float | None:
    """The epoch in which a run's validation accuracy first reached the task's target (None: never)."""
    target = TASKS[task].recipe.target_val_accuracy if task in TASKS else None
    for e, h in enumerate(history, start=1):
        acc = h.get("val_accuracy") if isinstance(h, dict) else None
        if target is not None and isinstance(acc, (int, float)) and acc >= target:
            return float(e)
    return None


def to_target(values) -> tuple[float | None, int, int]:
    """(median with never-reached counted as never, reached, runs); None ("not reached") when the
    median run did not reach the target: fewer than half reached, or exactly half (the median of an even
    count is then the mean of a reached and an unreached run: infinite)."""
    v = [float(x) if x is not None and pd.notna(x) else float("inf") for x in values]
    reached = sum(np.isfinite(v))
    median = float(np.median(v)) if v else float("inf")
    if not np.isfinite(median):
        return None, reached, len(v)
    return median, reached, len(v)


def summarise(df: pd.DataFrame, parity: dict | None = None) -> dict[tuple, pd.DataFrame]:
    """Settings -> one row per framework: medians over ok runs (one value per run), and the accuracy gate."""
    tables = {}
    for key, g in groups(df).items():
        profile, task = key[0], key[1]
        ok = g[g["status"] == "ok"]
        if ok.empty:
            continue
        num = [
            c
            for c in COLUMNS
            if c in ok
            and c not in ("framework", "framework_version", "runs", "machine_busy", "reached", "epochs_to_target")
        ]
        agg = ok.groupby("framework")[num].median(numeric_only=False)
        measured = quiet(ok)  # timings from the quiet runs only; "—" where every run was busy
        timed = [c for c in num if c in TIMINGS]
        agg[timed] = measured.groupby("framework")[timed].median(numeric_only=False).reindex(agg.index)
        agg.insert(0, "framework_version", ok.groupby("framework")["framework_version"].last())
        agg.insert(1, "runs", ok.groupby("framework").size())
        # whether and in which epoch a run reached the target does not depend on the machine or its load
        reached = {f: to_target(r["epochs_to_target"]) for f, r in ok.groupby("framework")}
        agg["reached"] = [f"{reached[f][1]} of {reached[f][2]}" for f in agg.index]
        agg["epochs_to_target"] = [reached[f][0] for f in agg.index]
        agg["machine_busy"] = ok.groupby("framework")["machine_busy"].sum().astype(int)
        agg = agg.reset_index()
        agg.insert(agg.columns.get_loc("test_accuracy") + 1, "gate", gate(agg, task, profile, parity or {}))
        optional = (
            "peak_device_mib",
            "gpu_util_pct_median",
            "train_added_mib",
            "energy_j_per_sample",
            "latency_b1_ms_p50",
            "latency_b1_ms_p99",
        )  # shown where measured
        agg = agg.drop(
            columns=[c for c in optional if c in agg and pd.to_numeric(agg[c], errors="coerce").isna().all()]
        )
        tables[key] = agg[[c for c in COLUMNS if c in agg] + [c for c in agg if c not in COLUMNS]]
    return tables


def _fmt(col: str, v) -> str:
    """Human formatting: accuracies to 4 decimals, seconds to 3 significant digits, counts with commas."""
    if col == "epochs_to_target":
        return "not reached" if v is None or (isinstance(v, float) and pd.isna(v)) else f"{v:g}"
    if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
        return "—"  # not measured, or not a figure (a division by a zero count): never "inf" or "nan"
    if isinstance(v, str):  # already words: "— (busy runs only)"
        return v
    if col == "test_accuracy":
        return f"{v:.4f}"
    if (col.endswith("_s") and not col.endswith("_per_s")) or col.startswith("latency_"):
        return f"{v:.3g}"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:,.0f}"
    return str(v)


def _markdown(table: pd.DataFrame) -> str:
    """The table as markdown; figures carry their interval over runs in brackets (an exact 95 % CI where a
    framework has 6 runs or more, else the range of its runs), and a row that fails the gate has its
    timings in parentheses."""
    passed = table["gate"] == "ok" if "gate" in table else pd.Series(True, index=table.index)

    def cell(c, i):
        s = _fmt(c, table[c].iat[i])
        lo, hi = (table[f"{c}_ci_low"].iat[i], table[f"{c}_ci_high"].iat[i]) if f"{c}_ci_low" in table else (0, 0)
        if c in TIMINGS and s not in ("—", "not reached") and pd.notna(lo) and lo != hi:
            s += f" [{_fmt(c, lo)}, {_fmt(c, hi)}]"
        return s if passed.iat[i] or c not in TIMINGS or s == "—" else f"({s})"

    t = pd.DataFrame({COLUMNS[c]: [cell(c, i) for i in range(len(table))] for c in table.columns if c in COLUMNS})
    align = ["left" if c in ("framework", "version", "gate") else "right" for c in t.columns]
    return t.to_markdown(index=False, disable_numparse=True, colalign=align)


def _with_intervals(table: pd.DataFrame, ok: pd.DataFrame) -> pd.DataFrame:
    """Add <metric>_ci_low/_ci_high/_ci_label: each figure's interval over runs (stats.median_interval)."""
    from dlbench.analysis.stats import median_interval

    for c in (*TIMINGS, "test_accuracy", "peak_rss_mib"):
        if c in ok:
            runs = quiet(ok) if c in TIMINGS else ok
            cis = [
                median_interval(pd.to_numeric(runs.loc[runs["framework"] == f, c], errors="coerce").dropna())
                for f in table["framework"]
            ]
            table[f"{c}_ci_low"], table[f"{c}_ci_high"] = [i.low for i in cis], [i.high for i in cis]
            table[f"{c}_ci_label"] = [i.label for i in cis]
    return table


def environment_section(df: pd.DataFrame) -> str:
    """Where and with what the runs were made: machine, threads, commits, versions per framework."""
    prov = [r for r in df.get("provenance", pd.Series(dtype=object)) if isinstance(r, dict)]
    lines = []
    machines = {json.dumps(p.get("machine") or {}, sort_keys=True) for p in prov}
    for m in map(json.loads, sorted(machines)):
        lines.append(
            f"- machine: {m.get('cpu')}, {m.get('cpus_allowed')} of {m.get('cpu_count')} CPUs usable, "
            f"{m.get('memory_gib')} GiB, {m.get('platform')}"
        )
    if "threads" in df:
        lines.append(f"- threads per worker: {', '.join(str(t) for t in sorted(df['threads'].dropna().unique()))}")
    commits = sorted({(p.get("git") or {}).get("commit") or "unknown" for p in prov})
    lines.append(f"- commit(s): {', '.join(c[:10] for c in commits)}")
    stamps = df["timestamp"].dropna() if "timestamp" in df else pd.Series(dtype=object)
    if len(stamps):
        lines.append(f"- runs from {stamps.min()} to {stamps.max()}")
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
            raise ReportError(
                f"no rows of the {profile} profile in {results / 'runs.jsonl'} (it holds: "
                f"{', '.join(present)}): drop --profile or run that profile first"
            )
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
        "Medians over `ok` runs (the run, one process and one seed, is the unit: each run's own median "
        "epoch, never pooled epochs), with an interval over runs in brackets: the exact 95 % confidence "
        "interval of the median from order statistics where a framework has 6 runs or more, else the range "
        "of its runs (`ok runs` says how many); `—` = not measured (e.g. no steady epoch when only one epoch "
        "ran). Epochs to target: the epoch in which the validation accuracy first reached the task's target, "
        "the median over all runs with a run that never reached it counted as never, `not reached` when the "
        "median run did not reach it (fewer than half, or exactly half). The timings describe these runs "
        "(which ran on several boots, some beside other work) and rank nothing: speed verdicts are the speed "
        "protocol's (the tables above, `speed.md`). "
        "Rows are compared only with rows of the same settings "
        "(profile, task, device, threads, epochs cap, schema, precision, tier, recipe): one section per setting. "
        "Gate: a framework's figures are "
        "comparable only if its test accuracy reached the task's floor and (full profile) lies within the "
        "task's tolerance of the median over frameworks (tasks/*.py), and it did not fail `harness.py parity`; "
        "otherwise its timings are shown in parentheses with the reason. "
        + (
            "Parity results: parity.csv.\n"
            if parity
            else f"Parity results unusable: {parity_warning}.\n"
            if parity_warning
            else "Parity was not run for these results.\n"
        )
    )
    grouped = groups(df)
    per_task: dict[tuple, int] = {}
    for key in tables:
        per_task[key[:2]] = per_task.get(key[:2], 0) + 1
    for key, table in tables.items():
        prof, task = key[0], key[1]
        g = grouped[key]
        ok = g[g["status"] == "ok"]
        table = _with_intervals(table, ok)
        title = f"{task} ({prof} profile)" if per_task[key[:2]] == 1 else f"{task} ({prof} profile; {_differs(key)})"
        parts.append(f"## {title}\n\n{_settings_line(key)}{_mixed(ok)}\n\n{_markdown(table)}\n")
        frames.append(table.assign(**{c: v for c, v in zip(SETTINGS, key, strict=True)}))
    if figures and tables:
        from dlbench.analysis.plots import all_figures

        for prof in sorted({k[0] for k in tables}):
            ok = df[(df["profile"] == prof) & (df["status"] == "ok")]
            paths = all_figures(ok, results / "plots" / prof)
            parts.append(
                f"## Figures ({prof} profile)\n\n"
                + "\n\n".join(f"![{p.stem}]({p.relative_to(results)})" for p in paths)
                + "\n"
            )
    from dlbench.analysis.tiers import manifest, section

    for key, ok in tier_settings(df).items():  # one setting, every task and tier
        text = section(quiet(ok))  # timings only
        if text:
            parts.append(f"## Tiers ({key[0]} profile; {_differs(key[:-1] + (None,))})\n\n{text}")
    from dlbench.analysis import tuning

    if (results / tuning.FILE).is_file():  # the choices `harness.py tune` recorded, every candidate measured
        parts.append(tuning.section(tuning.load(results)))
    parts.append(manifest(df[df["status"] == "ok"]))
    failed = df[df["status"] != "ok"]
    if not failed.empty:
        cols = ["task", "framework", "profile", "seed", "status", "error"]
        parts.append("## Failures\n\n" + failed[cols].to_markdown(index=False) + "\n")
    busy = int(df.get("machine_busy", pd.Series(dtype=bool)).fillna(False).sum())
    if busy:
        parts.append(
            f"Warning: {busy} run(s) ran while other processes used the CPUs: their timings are left out of "
            "every timing above (their accuracy, epochs and memory count).\n"
        )
    from dlbench.analysis.assess import render

    parts.append(render(results))
    if (results / "overhead.json").is_file():
        parts.append("## Adapter overhead\n\n" + overhead_table(results / "overhead.json") + "\n")
    if (results / "microbench").is_dir():
        parts.append("## Micro-benchmarks\n\n" + microbench_table(results / "microbench") + "\n")
    text = "# dlbench report\n\n" + "\n".join(parts)
    files.write_whole(results / "report.md", text)
    _html(text, results / "report.html")
    written = [results / "report.md", results / "report.html"]
    if frames:
        files.write_whole(results / "summary.csv", pd.concat(frames).to_csv(index=False))
        written.append(results / "summary.csv")
    print(text)
    print(f"written: {', '.join(map(str, written))}")
    return 0


def _settings_line(key: tuple) -> str:
    named = {c: v for c, v in zip(SETTINGS, key, strict=True) if c not in ("profile", "task")}
    shown = ", ".join(
        f"{c.replace('_requested', '').replace('_', ' ')} {'none' if v is None else v}"
        for c, v in named.items()
        if v is not None or c == "epochs_cap"
    )
    return f"Settings: {shown}."


def _differs(key: tuple) -> str:
    named = dict(zip(SETTINGS, key, strict=True))
    bits = [f"threads {named['threads']}", f"device {named['device_requested']}"]
    if named["epochs_cap"] is not None:
        bits.append(f"epochs cap {named['epochs_cap']}")
    bits += [
        f"{c} {named[c]}"
        for c in SETTINGS[5:]
        if named[c] is not None and c != "schema" and (c, named[c]) != ("recipe", "ours")
    ]
    return ", ".join(bits)


def _mixed(ok: pd.DataFrame) -> str:
    """A warning when one section's rows come from several commits or framework versions."""
    provs = [p if isinstance(p, dict) else {} for p in ok["provenance"]] if "provenance" in ok else []
    commits = sorted({(p.get("git") or {}).get("commit") or "unknown" for p in provs}) if provs else []
    versions = ok.groupby("framework")["framework_version"].agg(lambda v: sorted({str(x) for x in v}))
    mixed = {f: v for f, v in versions.items() if len(v) > 1}
    out = []
    if len(commits) > 1:
        out.append(f"these rows come from {len(commits)} commits ({', '.join(c[:10] for c in commits)})")
    if mixed:
        out.append(
            "framework versions differ within a framework: "
            + "; ".join(f"{f} {', '.join(v)}" for f, v in mixed.items())
        )
    return ("\n\nWarning: " + "; ".join(out) + ".") if out else ""


def _html(markdown_text: str, path: Path) -> None:
    """The same report as a standalone HTML page (figures linked relative to it)."""
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 8px}"
        "td{text-align:right}img{max-width:100%}"
    )
    files.write_whole(
        path,
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>dlbench report</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n",
    )
