"""`harness.py report`: every report a results folder's files allow, each from its own rows.

runs.jsonl -> report.md, report.html, summary.csv, plots/ and headline.md; speed.jsonl -> speed.md; one speed
sitting -> tables.md, with runs.jsonl's accuracy beside it and at the top of report.md where both are there (an
edition of the reference). Nothing in dlbench imports this module: it sits above report, headline, speed, edition.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dlbench import files
from dlbench.analysis.edition import write_tables
from dlbench.analysis.speed import load_speed, values, write_speed_report


def write_reports(results: Path, profile: str | None = None) -> int:
    """`harness.py report`: report.md and headline.md from runs.jsonl, speed.md from speed.jsonl, each where
    its file exists (ReportError, through write_summary, when neither does)."""
    from dlbench.analysis.headline import write_headline
    from dlbench.analysis.report import write_summary

    rc = 0
    if (results / "runs.jsonl").exists() or not (results / "speed.jsonl").is_file():
        rc = write_summary(results, profile)
        write_headline(results, profile)
    if (results / "speed.jsonl").is_file():
        print(write_speed_report(results))
        print(f"written: {results / 'speed.md'}")
    if (results / "speed.jsonl").is_file():
        _edition(results)
    return rc


def _edition(results: Path) -> None:
    """Where one speed sitting and convergence runs lie together (an edition of the reference): tables.md,
    also at the top of report.md."""
    from dlbench.analysis.report import load_runs

    rows, _ = load_speed(results)
    if len(values(rows)) != 1:
        print(f"no tables.md: {results / 'speed.jsonl'} holds {len(values(rows))} sittings, an edition one")
        return
    runs = load_runs(results) if (results / "runs.jsonl").exists() else pd.DataFrame()  # accuracy comes later
    written = write_tables(results, rows, runs)
    report_md = results / "report.md"
    if report_md.is_file():
        title, _, rest = report_md.read_text().partition("\n")
        plot = f"\n![ratios to the anchor]({written[1].relative_to(results)})\n"
        files.write_whole(report_md, f"{title}\n\n{written[0].read_text()}{plot}{rest}")
    print(f"written: {', '.join(map(str, written))}")
