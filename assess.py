"""The seeds' assessment of each framework: measured columns apart from documented facts.

Measured by `harness.py assess` into RESULTS/assessment.json: each framework's own input pipeline
(etl.py, in the framework's interpreter), the installed size of its main packages, and the size of
its adapter (logical lines of code, a proxy for ease of use). Raw performance comes from the runs.
Documented facts (languages, licence, latest release, maintenance) live in frameworks/facts.json,
each with its source. `render` turns both into the report's tables.
"""

from __future__ import annotations

import ast
import io
import json
import subprocess
import tokenize
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from frameworks import ENVIRONMENTS, FRAMEWORKS, ROOT

FACTS = ROOT / "frameworks" / "facts.json"
PIPELINE = {"torch": "torch DataLoader", "torch-compile": "torch DataLoader", "tensorflow": "tf.data",
            "jax": "numpy + jax.device_put", "mxnet": "Gluon DataLoader"}  # fmt: skip
DISTRIBUTIONS = {"torch": ["torch"], "tensorflow": ["tensorflow-cpu"], "keras": ["keras"],
                 "jax": ["jax", "jaxlib", "flax", "optax"], "mxnet": ["mxnet"]}  # fmt: skip
ENV_OF = {"mxnet": "mxnet"}  # the others are installed in the main environment


def code_lines(path: Path) -> int:
    """Logical lines of code: not blank, not a comment, not a docstring."""
    src = path.read_text()
    doc_lines = set()
    for node in ast.walk(ast.parse(src)):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
        ):
            if isinstance(body[0].value.value, str):
                doc_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    code = set()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type not in (
            tokenize.COMMENT,
            tokenize.NL,
            tokenize.NEWLINE,
            tokenize.INDENT,
            tokenize.DEDENT,
            tokenize.ENDMARKER,
        ):
            code.update(range(tok.start[0], tok.end[0] + 1))
    return len(code - doc_lines)


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
    r = subprocess.run([str(python), "-c", code, *dists], capture_output=True, text=True)
    return round(int(r.stdout.strip()) / 2**20, 1) if r.returncode == 0 and r.stdout.strip() else None


def measure(npz: Path, threads: int, log=print) -> dict:
    """ETL throughput per pipeline, install sizes per package family, adapter code size per framework."""
    out: dict = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": threads,
                 "etl": {}, "install_mib": {}, "code_lines": {}}  # fmt: skip
    for fw, pipeline in PIPELINE.items():
        if pipeline in out["etl"] or fw not in FRAMEWORKS:
            continue
        env = ENVIRONMENTS[FRAMEWORKS[fw].env]
        if not env.python.exists():
            out["etl"][pipeline] = {"error": f"{env.venv} missing: {env.missing_hint}"}
            continue
        r = subprocess.run([str(env.python), str(ROOT / "etl.py"), pipeline, str(npz), str(threads)], cwd=ROOT,
                           capture_output=True, text=True, timeout=1800)  # fmt: skip
        lines = r.stdout.strip().splitlines()
        out["etl"][pipeline] = json.loads(lines[-1]) if r.returncode == 0 and lines else {
            "error": (r.stderr.strip().splitlines() or ["failed"])[-1][:300]}  # fmt: skip
        log(f"assess: {pipeline}: {out['etl'][pipeline].get('samples_per_s', out['etl'][pipeline].get('error'))}")
    for family, dists in DISTRIBUTIONS.items():
        python = ENVIRONMENTS[ENV_OF.get(family, "main")].python
        out["install_mib"][family] = _install_mib(python, dists) if python.exists() else None
    for name, fw in FRAMEWORKS.items():
        out["code_lines"][name] = code_lines(ROOT / (fw.module.replace(".", "/") + ".py"))
    return out


def render(results: Path, runs: pd.DataFrame) -> str:
    """The assessment section of the report: a measured table and a documented one."""
    facts = json.loads(FACTS.read_text())
    measured = {}
    if (results / "assessment.json").is_file():
        measured = json.loads((results / "assessment.json").read_text())
    ok = runs[runs["status"] == "ok"] if "status" in runs else runs
    profile = "full" if (ok.get("profile") == "full").any() else "quick"
    runs_p = ok[ok["profile"] == profile]
    epoch = runs_p["steady_epoch_s"].fillna(runs_p["first_epoch_s"])  # one-epoch runs: their only epoch
    speed = epoch.groupby([runs_p["framework"], runs_p["task"]]).median()
    from tasks import TASKS

    tasks = [t for t in TASKS if t in set(runs_p["task"])]
    rows = []
    for fw in FRAMEWORKS:
        pipe = PIPELINE.get(fw)
        etl = measured.get("etl", {}).get(pipe, {}) if pipe else {}
        fams = facts["_frameworks"].get(fw, [])
        sizes = [measured.get("install_mib", {}).get(f) for f in fams]
        rows.append({
            "framework": fw,
            **{f"{t} epoch (s)": (f"{speed[fw, t]:.3g}" if (fw, t) in speed and pd.notna(speed[fw, t]) else "—")
               for t in tasks},
            "input pipeline": pipe or "— (Keras takes the arrays)",
            "pipeline samples/s": f"{etl['samples_per_s']:,.0f}" if "samples_per_s" in etl else etl.get("error", "—"),
            "install MiB (main packages)": " + ".join(f"{s:,.0f}" for s in sizes if s is not None) or "—",
            "adapter lines (proxy)": measured.get("code_lines", {}).get(fw, "—"),
        })  # fmt: skip
    doc = []
    for key, f in facts.items():
        if key.startswith("_"):
            continue
        doc.append({"framework": f["name"], "languages (official)": ", ".join(f["languages"]), "licence": f["licence"],
                    "latest release": f"{f['latest_release']} ({f['latest_release_date']})", "status": f["status"],
                    "sources": " ".join(f"<{s}>" for s in f["sources"])})  # fmt: skip
    when = f"measured {measured['measured_at']}, {measured['threads']} threads" if measured else "not measured yet"
    return (
        "## Assessment\n\n### Measured\n\n"
        f"Raw performance: median steady epoch of the {profile}-profile runs above (a run's only epoch where it had "
        "one). Input pipelines, install sizes and adapter sizes from "
        f"`harness.py assess` ({when}). Pipeline: one shuffled epoch of the 54,000 MNIST training arrays in "
        "batches of 128, each batch materialised as the framework's tensors (etl.py). Install size: the main "
        "packages' files in the environment (for Keras backends, Keras + the backend). Adapter lines: logical "
        "lines of the adapter file (no blanks, comments or docstrings), a proxy for ease of use only; "
        "torch-compile reuses the eager adapter and the three Keras backends share one file.\n\n"
        + pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
        + "\n\n### Documented (frameworks/facts.json)\n\n"
        + facts["_about"]
        + "\n\n"
        + pd.DataFrame(doc).to_markdown(index=False, disable_numparse=True)
        + "\n"
    )
