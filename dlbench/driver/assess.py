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
from dlbench.analysis import cadence
from dlbench.analysis.assess import api_names, code_lines
from dlbench.driver import children
from dlbench.driver.config import AssessConfig, UsageError, check_output
from dlbench.driver.provenance import machine
from frameworks import ENVIRONMENTS, FRAMEWORKS, ROOT
from tasks.data import prepare

PYPI = "https://pypi.org/pypi/{}/json"
PYPI_TIMEOUT_S = 30  # per read from PyPI (docs/input-surfaces.md)


def refresh_releases(projects: list[str], path: Path | None = None) -> str:
    """Read each project's release history from PyPI into the snapshot (written whole); UsageError in one line
    where PyPI cannot be read (the snapshot stays as it was)."""
    import urllib.error
    import urllib.request

    path, out = path or cadence.SNAPSHOT, {}
    for name in projects:
        try:
            with urllib.request.urlopen(PYPI.format(name), timeout=PYPI_TIMEOUT_S) as r:
                raw = r.read(files.JSON_CAP + 1)
            if len(raw) > files.JSON_CAP:
                raise ValueError("larger than a release history")
            data = files.loads(raw)
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except (OSError, ValueError, urllib.error.URLError) as e:
            raise UsageError(f"PyPI's release history of {name} cannot be read ({e}): the snapshot stays") from None
        out[name] = [list(vd) for vd in cadence.releases(data)]
    today = datetime.now(UTC).date().isoformat()
    files.write_whole(path, json.dumps({"read_on": today, "source": PYPI.format("NAME"), "projects": out}, indent=1))
    return f"release histories read from PyPI on {today} into {path}"


def release_projects() -> list[str]:
    """Every PyPI project the documented facts name (frameworks/facts.json's "pypi")."""
    facts = files.read_json(ROOT / "frameworks" / "facts.json")
    return list(dict.fromkeys(p for k, f in facts.items() if not k.startswith("_") for p in f.get("pypi", [])))


def run(cfg: AssessConfig) -> int:
    """Measure into RESULTS/assessment.json; with `online`, refresh the release histories first."""
    check_output(cfg.results)
    if cfg.online:
        print(refresh_releases(release_projects()), file=sys.stderr)
    else:
        snap = cadence.load()
        said = f"the snapshot read on {snap.read_on}" if snap else "none (no snapshot)"
        print(f"release histories: {said} (frameworks/releases.json); --online refreshes it", file=sys.stderr)
    data = {"images": prepare("mnist", cfg.data_dir)[0], "text": prepare("imdb_text", cfg.data_dir)[0]}
    out = measure(data, cfg.threads, log=lambda line: print(line, file=sys.stderr))
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


PROCESSES = 3  # each pipeline runs in this many fresh processes: the interval is over processes


def pipeline_runs(python: Path, kind: str, pipeline: str, npz: Path, threads: int) -> dict:
    """One pipeline on one data kind in PROCESSES fresh processes: each one's samples/s (and, for text, the
    reviews it encoded otherwise than the reference), or the first failure's last line."""
    out: dict = {"samples_per_s": [], "differing_reviews": []}
    for _ in range(PROCESSES):
        argv = [str(python), "-m", "dlbench.worker.pipelines", kind, pipeline, str(npz), str(threads)]
        try:
            r = children.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            return {"error": "did not finish within 1,800 s"}
        lines = r.stdout.strip().splitlines()
        if r.returncode != 0 or not lines:
            return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}
        got = json.loads(lines[-1])
        out["samples_per_s"].append(got["samples_per_s"])
        if "differing_reviews" in got:
            out["differing_reviews"].append(got["differing_reviews"])
    return out


def measure(data: dict[str, Path], threads: int, log=print) -> dict:
    """Pipeline throughput on each data kind, install size of the main packages and adapter code size, per
    framework."""
    out: dict = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": threads,
        "processes": PROCESSES,
        "etl": {},
        "install_mib": {},
        "code_lines": {},
        "apis": {},
    }
    for fw in FRAMEWORKS.values():
        env = ENVIRONMENTS[fw.env]
        if fw.pipeline and fw.pipeline not in out["etl"]:
            out["etl"][fw.pipeline] = {}
            for kind, npz in data.items():
                if not env.python.exists():
                    found = {"error": f"{env.venv} missing: {env.missing_hint}"}
                else:
                    found = pipeline_runs(env.python, kind, fw.pipeline, npz, threads)
                out["etl"][fw.pipeline][kind] = found
                log(f"assess: {fw.pipeline}, {kind}: {found.get('samples_per_s', found.get('error'))}")
        out["install_mib"][fw.name] = _install_mib(env.python, list(fw.distributions)) if env.python.exists() else None
        adapter = ROOT / (fw.module.replace(".", "/") + ".py")
        out["code_lines"][fw.name] = code_lines(adapter)
        out["apis"][fw.name] = _apis(env, fw, sorted(api_names(adapter))) if env.python.exists() else None
    return out


def _apis(env, fw, names: list[str]) -> dict:
    """Each framework name the adapter uses, checked in its own interpreter (dlbench/worker/apis.py), with its
    environment variables (a Keras backend)."""
    import os

    argv = [str(env.python), "-m", "dlbench.worker.apis", *names]
    try:
        r = children.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **fw.env_vars})
    except subprocess.TimeoutExpired:
        return {"error": "did not finish within 300 s"}
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        return {"error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}
    return {"names": json.loads(lines[-1])}
