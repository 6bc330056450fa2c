"""`harness.py microbench`: benchmarks/test_micro.py (pytest-benchmark) once per framework, in its interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

from dlbench import files
from dlbench.analysis.microbench import microbench_table, overhead_table
from dlbench.driver import children
from dlbench.driver.config import MicrobenchConfig, check_output
from dlbench.driver.supervise import worker_env
from frameworks import ENVIRONMENTS, FRAMEWORKS, ROOT


def run(cfg: MicrobenchConfig) -> int:
    """One pytest-benchmark JSON per framework under RESULTS/microbench/, and the merged table."""
    check_output(cfg.results)
    out = cfg.results / "microbench"
    out.mkdir(parents=True, exist_ok=True)
    for f in cfg.frameworks:
        fw, env = FRAMEWORKS[f], ENVIRONMENTS[FRAMEWORKS[f].env]
        if not env.python.exists():
            print(f"microbench: {f} skipped: {env.venv} does not exist, {env.missing_hint}", file=sys.stderr)
            continue
        cmd = [
            str(env.python),
            "-m",
            "pytest",
            "benchmarks/test_micro.py",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--benchmark-json={out / (f + '.json')}",
        ]
        vars_ = {
            **worker_env(cfg.threads, fw.env_vars, "cpu"),
            "DLBENCH_FRAMEWORK": f,
            "DLBENCH_THREADS": str(cfg.threads),
        }
        try:
            r = children.run(cmd, cwd=ROOT, env=vars_, capture_output=True, text=True, timeout=cfg.timeout_s)
            tail = (r.stdout.strip().splitlines() or ["no output"])[-1]
        except subprocess.TimeoutExpired:  # this framework's numbers are missing; the others still run
            tail = f"timed out after {cfg.timeout_s:g} s (--timeout): no numbers"
        print(f"microbench: {f}: {tail}", file=sys.stderr)
    table = microbench_table(out)
    print(table)
    files.write_whole(cfg.results / "microbench.md", table + "\n")
    print(f"written: {out}/*.json (pytest-benchmark JSON), {cfg.results / 'microbench.md'}")
    return 0


def run_overhead(cfg: MicrobenchConfig) -> int:
    """benchmarks/overhead.py per framework (default tier): adapter vs a plain loop, RESULTS/overhead.json."""
    check_output(cfg.results)
    out: dict = {}
    for f in cfg.frameworks:
        fw, env = FRAMEWORKS[f], ENVIRONMENTS[FRAMEWORKS[f].env]
        if not env.python.exists():
            out[f] = {"error": f"{env.venv} does not exist: {env.missing_hint}"}
            continue
        vars_ = worker_env(cfg.threads, fw.env_vars, "cpu")
        try:
            r = children.run(
                [str(env.python), "benchmarks/overhead.py", f, str(cfg.threads)],
                cwd=ROOT,
                env=vars_,
                capture_output=True,
                text=True,
                timeout=cfg.timeout_s,
            )
            lines = r.stdout.strip().splitlines()
            out[f] = (
                json.loads(lines[-1])
                if r.returncode == 0 and lines
                else {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}
            )
        except subprocess.TimeoutExpired:
            out[f] = {"error": f"timed out after {cfg.timeout_s:g} s (--timeout)"}
        print(
            f"overhead: {f}: " + ", ".join(f"{t} {m['ratio']:.2f}x" for t, m in out[f].items() if "ratio" in m)
            if "error" not in out[f]
            else f"overhead: {f}: {out[f]['error']}",
            file=sys.stderr,
        )
    path = cfg.results / "overhead.json"
    files.write_whole(path, json.dumps({"threads": cfg.threads, "frameworks": out}, indent=1))
    print(overhead_table(path))
    print(f"written: {path}; `python harness.py report` shows it")
    return 0
