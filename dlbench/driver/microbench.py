"""`harness.py microbench`: benchmarks/test_micro.py (pytest-benchmark) once per framework, in its interpreter."""

from __future__ import annotations

import subprocess
import sys

from dlbench.analysis.microbench import microbench_table
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
        cmd = [str(env.python), "-m", "pytest", "benchmarks/test_micro.py", "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={out / (f + '.json')}"]  # fmt: skip
        vars_ = {
            **worker_env(cfg.threads, fw.env_vars, "cpu"),
            "DLBENCH_FRAMEWORK": f,
            "DLBENCH_THREADS": str(cfg.threads),
        }
        try:
            r = subprocess.run(cmd, cwd=ROOT, env=vars_, capture_output=True, text=True, timeout=cfg.timeout_s)
            tail = (r.stdout.strip().splitlines() or ["no output"])[-1]
        except subprocess.TimeoutExpired:  # this framework's numbers are missing; the others still run
            tail = f"timed out after {cfg.timeout_s:g} s (--timeout): no numbers"
        print(f"microbench: {f}: {tail}", file=sys.stderr)
    table = microbench_table(out)
    print(table)
    (cfg.results / "microbench.md").write_text(table + "\n")
    print(f"written: {out}/*.json (pytest-benchmark JSON), {cfg.results / 'microbench.md'}")
    return 0
