"""The micro-benchmarks' table: pytest-benchmark JSON files, one per framework, side by side."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd


def microbench_table(folder: Path) -> str:
    """pytest-benchmark JSON files (one per framework) -> one markdown table: median ms, frameworks side by side."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            print(f"warning: {path} is not readable JSON, skipped", file=sys.stderr)
            continue
        for b in data.get("benchmarks", []):
            fw = b.get("extra_info", {}).get("framework", path.stem)
            rows.append({"benchmark": b["group"], "framework": fw, "median_ms": 1000 * b["stats"]["median"]})
    if not rows:
        return "No micro-benchmarks yet: `python harness.py microbench`."
    t = pd.DataFrame(rows).pivot_table(index="benchmark", columns="framework", values="median_ms", aggfunc="first")
    t = t.map(lambda v: "—" if pd.isna(v) else f"{v:.3g}")
    return ("Micro-benchmarks (pytest-benchmark), median milliseconds per call; each call ends with the adapter's "
            "sync.\n\n" + t.reset_index().to_markdown(index=False, disable_numparse=True))  # fmt: skip
