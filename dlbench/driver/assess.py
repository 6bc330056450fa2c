"""`harness.py assess`: measure each framework's input pipeline, install size and adapter size.

Pipelines run in the framework's own interpreter (dlbench/worker/pipelines.py); what is measured for
which framework comes from its registry entry. dlbench/analysis/assess.py renders the result.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dlbench import files
from dlbench.analysis.assess import code_lines
from dlbench.driver import children
from dlbench.driver.config import AssessConfig, check_output
from dlbench.driver.provenance import machine
from frameworks import ENVIRONMENTS, FRAMEWORKS, ROOT
from tasks.data import prepare


def run(cfg: AssessConfig) -> int:
    """Measure into RESULTS/assessment.json."""
    check_output(cfg.results)
    npz, _ = prepare("mnist", cfg.data_dir)
    out = measure(npz, cfg.threads, log=lambda line: print(line, file=sys.stderr))
    out["machine"] = machine()
    path = cfg.results / "assessment.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_whole(path, json.dumps(out, indent=1))
    print(f"written: {path}; `python harness.py report` shows it")
    return 0


def _install_mib(python: Path, dists: list[str]) -> float | None:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "total = 0\n"
        "for d in sys.argv[1:]:\n"
        "    try: dist = m.distribution(d)\n"
        "    except m.PackageNotFoundError: continue\n"
        "    for f in dist.files or []:\n"
        "        p = f.locate()\n"
        "        total += p.stat().st_size if p.is_file() else 0\n"
        "print(total)\n"
    )
    try:
        r = children.run([str(python), "-c", code, *dists], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:  # walking an environment's files takes seconds; five minutes is not a size
        return None
    return round(int(r.stdout.strip()) / 2**20, 1) if r.returncode == 0 and r.stdout.strip() else None


def measure(npz: Path, threads: int, log=print) -> dict:
    """Pipeline throughput, install size of the main packages and adapter code size, per framework."""
    out: dict = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": threads,
        "etl": {},
        "install_mib": {},
        "code_lines": {},
    }
    for fw in FRAMEWORKS.values():
        env = ENVIRONMENTS[fw.env]
        if fw.pipeline and fw.pipeline not in out["etl"]:
            if not env.python.exists():
                out["etl"][fw.pipeline] = {"error": f"{env.venv} missing: {env.missing_hint}"}
            else:
                r = children.run(
                    [str(env.python), "-m", "dlbench.worker.pipelines", fw.pipeline, str(npz), str(threads)],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                lines = r.stdout.strip().splitlines()
                out["etl"][fw.pipeline] = (
                    json.loads(lines[-1])
                    if r.returncode == 0 and lines
                    else {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}
                )
            etl = out["etl"][fw.pipeline]
            log(f"assess: {fw.pipeline}: {etl.get('samples_per_s', etl.get('error'))}")
        out["install_mib"][fw.name] = _install_mib(env.python, list(fw.distributions)) if env.python.exists() else None
        out["code_lines"][fw.name] = code_lines(ROOT / (fw.module.replace(".", "/") + ".py"))
    return out
