"""The micro-benchmarks' table: pytest-benchmark JSON files, one per framework, side by side."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from dlbench import files, schemas


def microbench_table(folder: Path) -> str:
    """pytest-benchmark JSON files (one per framework) -> one markdown table: median ms, frameworks side by side."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = files.read_json(path)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (OSError, ValueError):
            print(f"warning: {path} is not readable JSON, skipped", file=sys.stderr)
            continue
        for i, b in enumerate(data.get("benchmarks") if isinstance(data.get("benchmarks"), list) else []):
            why = schemas.problem(schemas.Benchmark, b)
            if why:
                print(files.one_line(f"warning: {path}: benchmarks[{i}] skipped ({why})"), file=sys.stderr)
                continue
            fw = b.get("extra_info", {}).get("framework", path.stem)
            fw = fw if isinstance(fw, str) else path.stem
            rows.append({"benchmark": b["group"], "framework": fw, "median_ms": 1000 * b["stats"]["median"]})
    if not rows:
        return "No micro-benchmarks yet: `python harness.py microbench`."
    t = pd.DataFrame(rows).pivot_table(index="benchmark", columns="framework", values="median_ms", aggfunc="first")
    t = t.map(lambda v: "—" if pd.isna(v) else f"{v:.3g}")
    return (
        "Micro-benchmarks (pytest-benchmark), median milliseconds per call; each call ends with the adapter's "
        "sync.\n\n" + t.reset_index().to_markdown(index=False, disable_numparse=True)
    )


def _overhead_problem(tasks) -> str | None:
    """Why one framework's overhead entry has no figures to show (its error, or the field that is wrong)."""
    if not isinstance(tasks, dict):
        return "not an object"
    if "error" in tasks:
        return str(tasks["error"])
    for task, m in tasks.items():
        if why := schemas.problem(schemas.Overhead, m):
            return f"{task}: {why}"
    return None


def overhead_table(path: Path) -> str:
    """RESULTS/overhead.json (`harness.py overhead`) as a table: each adapter's step against a plain loop."""
    try:
        data = files.read_json(path)
    except (OSError, ValueError):
        return f"{path} is not readable: run `python harness.py overhead` again."
    if why := schemas.problem(schemas.OverheadFile, data):
        return files.one_line(f"{path} is not an overhead record ({why}): run `python harness.py overhead` again.")
    fws = data["frameworks"]
    rows = []
    for fw, tasks in fws.items():
        said = _overhead_problem(tasks)
        if said:
            rows.append(
                {
                    "framework": fw,
                    "task": "—",
                    "adapter step (ms)": "—",
                    "plain loop step (ms)": "—",
                    "adapter / plain": files.one_line(str(said), 200),
                }
            )
            continue
        for task, m in tasks.items():
            rows.append(
                {
                    "framework": fw,
                    "task": task,
                    "adapter step (ms)": f"{m['adapter_step_ms']:.3g}",
                    "plain loop step (ms)": f"{m['plain_step_ms']:.3g}",
                    "adapter / plain": f"{m['ratio']:.2f} (rounds: {', '.join(f'{r:.2f}' for r in m['ratios'])})",
                    "fastest / fastest": f"{m['ratio_of_minima']:.2f}" if "ratio_of_minima" in m else "—",
                }
            )
    return (
        "Each adapter's training step (default tier) against a plain loop of the same network as the "
        "framework's tutorials write one (benchmarks/overhead.py), alternating rounds, median of the per-round "
        "ratios, and the fastest round of each side against the other's (robust where a runtime flips "
        f"between speed modes); {data.get('threads')} threads.\n\n" + pd.DataFrame(rows).to_markdown(index=False)
    )
