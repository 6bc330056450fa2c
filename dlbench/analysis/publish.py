"""`harness.py report`: every report a results folder's files allow, each from its own rows.

runs.jsonl -> report.md, report.html, summary.csv, plots/ (what convergence runs are for: accuracy, epochs,
memory, compile time, latency; they rank nothing); speed.jsonl -> speed.md (every sitting's verdicts); one
speed sitting -> tables.md, with runs.jsonl's accuracy beside it and at the top of report.md where both are
there (an edition of the reference). Nothing in dlbench imports this module: it sits above report and tables.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dlbench import files
from dlbench.analysis.report import ReportError, load_runs, write_summary
from dlbench.analysis.speed import load_speed, sitting_ids
from dlbench.analysis.tables import write_edition, write_speed


def write_reports(results: Path, profile: str | None = None) -> int:
    """`harness.py report`: report.md from runs.jsonl, speed.md from speed.jsonl, each where its file exists
    (ReportError, through write_summary, when neither does)."""
    rc = 0
    if (results / "runs.jsonl").exists() or not (results / "speed.jsonl").is_file():
        rc = write_summary(results, profile)
    if (results / "speed.jsonl").is_file():
        loaded = load_speed(results)  # read once, for speed.md and tables.md
        if not loaded[0]:
            raise ReportError(f"{results / 'speed.jsonl'} holds no usable speed row: run `harness.py speed` first")
        print(write_speed(results, loaded=loaded))
        print(f"written: {results / 'speed.md'}")
        _edition(results, loaded[0])
    return rc


def _edition(results: Path, rows: list[dict]) -> None:
    """Where one speed sitting and convergence runs lie together (an edition of the reference): tables.md,
    also at the top of report.md."""
    if len(sitting_ids(rows)) != 1:
        print(f"no tables.md: {results / 'speed.jsonl'} holds {len(sitting_ids(rows))} sittings, an edition one")
        return
    runs = load_runs(results, quiet=True) if (results / "runs.jsonl").exists() else pd.DataFrame()
    written = write_edition(results, rows, runs)
    report_md = results / "report.md"
    if report_md.is_file():
        title, _, rest = report_md.read_text().partition("\n")
        plot = f"\n![ratios to the anchor]({written[1].relative_to(results)})\n"
        files.write_whole(report_md, f"{title}\n\n{written[0].read_text()}{plot}{rest}")
    print(f"written: {', '.join(map(str, written))}")
