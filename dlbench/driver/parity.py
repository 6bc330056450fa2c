"""`harness.py parity`: the same weights and batches in every framework's worker, then compared.

Each framework runs once, in its own interpreter, over every task (dlbench/worker/parity.py measures);
dlbench/analysis/parity.py compares predictions with the numpy reference and trajectories with each
other, and writes parity.md and parity.csv. Exit status 1 if any framework fails.
"""

from __future__ import annotations

import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dlbench import files
from dlbench.analysis.parity import compare, write_parity
from dlbench.driver import signals
from dlbench.driver.config import ParityConfig, check_output
from dlbench.driver.supervise import run_worker, worker_env
from dlbench.protocol import JobConfig, Mode, Status
from dlbench.worker.parity import inputs
from frameworks import ENVIRONMENTS, FRAMEWORKS
from tasks import TASKS


def run(cfg: ParityConfig) -> int:
    """Exit status 0 (all pass), 1 (a FAIL), or 128 + the signal when stopped: then nothing is written."""
    check_output(cfg.results)
    from dataclasses import replace

    from dlbench.driver.config import every_candidate

    cfg = replace(cfg, frameworks=every_candidate(cfg.frameworks, str(cfg.device), FRAMEWORKS))  # tuned: each one
    try:
        rows = _measure_and_compare(cfg)
    except KeyboardInterrupt:
        rows = None
    if rows is None:
        print(
            f"parity: stopped by {signals.name()}: nothing written (an earlier parity.csv is untouched)",
            file=sys.stderr,
        )
        return signals.exit_status()
    write_parity(cfg.results, rows, list(cfg.tasks), [str(v) for v in cfg.frameworks], cfg.precision, cfg.device)
    return 1 if any(r["verdict"] == "FAIL" for r in rows) else 0


def _measure_and_compare(cfg: ParityConfig) -> list[dict] | None:
    """One row per task x framework; None if a stop signal ended a framework's worker."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        shared = {t: inputs(TASKS[t]) for t in cfg.tasks}
        Path(tmp, "inputs").mkdir()
        for t, inp in shared.items():
            npz = io.BytesIO()
            np.savez(npz, **inp)
            files.write_whole(Path(tmp, "inputs", f"{t}.npz"), npz.getvalue())  # a full disk: names the file
        measured: dict[str, dict] = {t: {} for t in cfg.tasks}
        for v in cfg.frameworks:
            f = str(v)  # "torch", or "torch (compile)": the label in the tables
            fw, env = FRAMEWORKS[v.framework], ENVIRONMENTS[FRAMEWORKS[v.framework].env]
            out_dir = Path(tmp, f"{v.framework}-{v.tier}-{v.candidate}")
            out_dir.mkdir()
            jc = JobConfig(
                Mode.PARITY,
                fw.module,
                cfg.threads,
                cfg.device,
                tasks=cfg.tasks,
                precision=cfg.precision,
                deterministic=True,
                tier=v.tier,
                candidate=v.candidate,
                inputs=str(Path(tmp, "inputs")),
                out=str(out_dir),
            )
            t0 = time.monotonic()
            if not env.python.exists():
                out = {"status": Status.UNAVAILABLE, "error": f"{env.venv} does not exist: {env.missing_hint}"}
            else:
                vars_ = worker_env(cfg.threads, fw.env_vars, cfg.device)
                out = run_worker(jc, env.python, vars_, cfg.timeout_s, lambda ev: None)
            print(f"parity: {f} {out['status']} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            if out["status"] == Status.INTERRUPTED:
                return None
            for t in cfg.tasks:
                summary = out.get("tasks", {}).get(t, {"error": out.get("error")})
                if out["status"] == Status.OK and "error" not in summary:
                    with np.load(out_dir / f"{t}.npz", allow_pickle=False) as z:
                        measured[t][f] = (summary, {k: z[k] for k in z.files})
                else:
                    verdict = "unavailable" if out["status"] == Status.UNAVAILABLE else "FAIL"
                    rows.append(
                        {
                            "task": t,
                            "framework": f,
                            "verdict": verdict,
                            "problems": [f"{t}: {out['status']}: {summary['error']}"],
                        }
                    )
        for t in cfg.tasks:
            rows.extend(compare(TASKS[t], shared[t], measured[t], cfg.precision))
    return rows
