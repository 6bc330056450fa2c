"""The seeds' assessment of each framework: measured columns apart from documented facts.

Measured by `harness.py assess` (dlbench/driver/assess.py) into RESULTS/assessment.json: each
framework's own input pipeline (dlbench/worker/pipelines.py, in the framework's interpreter), the
installed size of its main packages, and the size of its adapter (logical lines of code, a proxy for
ease of use). Raw performance is the speed protocol's (tables.md, speed.md): not restated here from the
convergence runs, which rank nothing. What is measured for which framework comes from its
registry entry (frameworks/__init__.py: pipeline, distributions, facts). Documented facts (languages,
licence, latest release, maintenance) live in frameworks/facts.json, each with its source. `render`
turns both into the report's tables.
"""

from __future__ import annotations

import ast
import io
import sys
import tokenize
from pathlib import Path

import pandas as pd

from dlbench import files, schemas
from frameworks import FRAMEWORKS, ROOT

FACTS = ROOT / "frameworks" / "facts.json"


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


def rate(p: dict, unit: str = "") -> str:
    """A pipeline's samples/s: median `unit` [min, max] over its processes; for text, whether its batches were
    the reference pipeline's; or why there is no figure."""
    if p.get("error") or not p.get("samples_per_s"):
        return p.get("error") or "—"
    v = sorted(p["samples_per_s"])
    words = f"{v[len(v) // 2]:,.0f}{unit}" + (f" [{v[0]:,.0f}, {v[-1]:,.0f}]" if len(v) > 1 else "")
    differ = max(p.get("differing_reviews") or [0])
    return words + (f", {differ} reviews encoded otherwise than the reference" if differ else "")


FRAMEWORK_PACKAGES = {"torch", "jax", "flax", "optax", "mlx", "mxnet", "paddle", "keras", "tensorflow"}


def api_names(path: Path) -> set[str]:
    """Every framework name an adapter's source uses, as a full dotted path: attribute chains rooted at a name
    its imports bind to a framework package ("F.cross_entropy" with `from torch.nn import functional as F`:
    "torch.nn.functional.cross_entropy"). Read from the source, so the list cannot drift from the code."""
    tree = ast.parse(path.read_text())
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in FRAMEWORK_PACKAGES:
                    bound[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in FRAMEWORK_PACKAGES:
                for a in node.names:
                    bound[a.asname or a.name] = f"{node.module}.{a.name}"
    inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and id(node) not in inner:  # the whole chain, not its prefixes
            parts, v = [node.attr], node.value
            while isinstance(v, ast.Attribute):
                parts.append(v.attr)
                v = v.value
            if isinstance(v, ast.Name) and v.id in bound:
                names.add(".".join([bound[v.id], *reversed(parts)]))
    return names


def apis_words(found: dict) -> str:
    """An adapter's API check (`assess`): how many names it uses are public in its release, and any that are not."""
    if found.get("error"):
        return found["error"]
    standing = {n: s for n, s in (found.get("names") or {}).items() if s != "not installed"}
    public = sum(s == "public" for s in standing.values())
    other = sorted(f"{n} ({s.split(':')[0]})" for n, s in standing.items() if s != "public")
    return f"{public} of {len(standing)} public" + (f"; not: {', '.join(other[:4])}" if other else "")


def render(results: Path) -> str:
    """The assessment section of the report: a measured table and a documented one."""
    facts = files.read_json(FACTS)
    measured, path = {}, results / "assessment.json"
    if path.exists():  # InputError (one line) if it is not a bounded JSON file; set aside if not an assessment
        found = files.read_json(path)
        why = schemas.problem(schemas.Assessment, found)
        if why:
            print(files.one_line(f"warning: {path} set aside ({why}): run `harness.py assess` again"), file=sys.stderr)
        else:
            measured = found
    documented = {key for fw in FRAMEWORKS.values() for key in fw.facts}
    rows = []
    for fw, entry in FRAMEWORKS.items():
        pipe = entry.pipeline
        etl = measured.get("etl", {}).get(pipe, {}) if pipe else {}
        size = measured.get("install_mib", {}).get(fw)
        rows.append(
            {
                "framework": fw,
                "input pipeline": pipe or ("— (Keras takes the arrays)" if fw.startswith("keras") else "— (none)"),
                "MNIST images/s": rate(etl.get("images") or {}),
                "IMDB reviews/s": rate(etl.get("text") or {}),
                "install MiB (main packages)": f"{size:,.0f}" if isinstance(size, (int, float)) else "—",
                "adapter lines (proxy)": measured.get("code_lines", {}).get(fw, "—"),
                "framework APIs it uses": apis_words(measured.get("apis", {}).get(fw) or {"error": "—"}),
            }
        )
    doc = []
    for key, f in facts.items():
        if key.startswith("_") or key not in documented:
            continue
        doc.append(
            {
                "framework": f["name"],
                "languages (official)": ", ".join(f["languages"]),
                "licence": f["licence"],
                "latest release": f"{f['latest_release']} ({f['latest_release_date']})",
                "status": f["status"],
                "sources": " ".join(f"<{s}>" for s in f["sources"]),
            }
        )
    when = f"measured {measured['measured_at']}, {measured['threads']} threads" if measured else "not measured yet"
    return (
        "## Assessment\n\n### Measured\n\n"
        "Raw performance: the speed protocol's verdicts (the tables at the top, `speed.md`). Input pipelines, "
        "install sizes and adapter sizes from "
        f"`harness.py assess` ({when}). Pipelines (dlbench/worker/pipelines.py), median [min, max] over fresh "
        "processes: one shuffled epoch of the 54,000 MNIST training arrays in batches of 128, each batch "
        "materialised as the framework's tensors; and the 25,000 raw IMDB training reviews to padded index "
        "batches of 32 (tokenised, looked up, cut and padded as Keras's imdb encoding), every batch compared "
        "with the reference pipeline's. "
        "Install size: the main packages' files in the environment (for Keras backends, Keras + the backend). "
        "Adapter lines: logical lines of the adapter file (no blanks, comments or docstrings), a proxy for "
        "ease of use only; "
        "torch-compile reuses the eager adapter and the three Keras backends share one file.\n\n"
        + pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
        + "\n\n### Documented (frameworks/facts.json)\n\n"
        + facts["_about"]
        + "\n\n"
        + pd.DataFrame(doc).to_markdown(index=False, disable_numparse=True)
        + "\n"
    )
