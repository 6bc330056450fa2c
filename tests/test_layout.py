"""The layout shows the architecture: a thin entry point, no import cycles, a worker side free of the driver's
libraries (checked by reading the imports, and by importing it under MXNet's interpreter)."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from frameworks import ENVIRONMENTS
from tests.support.cli import ROOT

PACKAGES = ("dlbench", "frameworks", "tasks")
DRIVER_ONLY = {"pandas", "rich", "scipy", "matplotlib", "ray", "markdown", "tabulate", "pydantic"}


def modules() -> dict[str, Path]:
    """Every first-party module: dotted name -> file."""
    out = {"harness": ROOT / "harness.py"}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """The modules `path` imports anywhere in it (top level or inside functions), first-party resolved to
    the longest known module name, third-party by their top-level name."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            parts = name.split(".")
            hit = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in known), None)
            out.add(hit or parts[0])
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {d for d in imports(f, known) if d in known and d != m} for m, f in mods.items()}


def test_the_ten_root_modules_are_gone_and_the_top_level_is_the_designs():
    gone = ["worker", "parity", "report", "stats", "plots", "assess", "etl", "progress", "ray_executor"]
    assert not [m for m in gone if (ROOT / f"{m}.py").exists()]
    assert sorted(p.name for p in ROOT.glob("*.py")) == ["harness.py"]
    for name in ("frameworks", "tasks", "results", "tests", "README.md", "harness.py", "dlbench"):
        assert (ROOT / name).exists(), name


def test_harness_is_a_thin_entry_point():  # argparse for thirteen subcommands, one library call each
    assert len((ROOT / "harness.py").read_text().splitlines()) < 270


def test_no_import_cycle_anywhere():
    g = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                cycle = path[path.index(d) :] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")  # inside a function counts too
    assert imports(tmp_path / "b.py", {"a", "b"}) == {"a"} and imports(tmp_path / "a.py", {"a", "b"}) == {"b"}


def worker_side() -> dict[str, Path]:
    """What runs inside a framework's interpreter: the worker package, the protocol, tasks and the contract."""
    return {
        m: f
        for m, f in modules().items()
        if m.startswith(("dlbench.worker", "tasks"))
        or m in ("dlbench", "dlbench.protocol", "dlbench.files", "frameworks", "frameworks.contract")
    }


def test_the_worker_side_never_imports_the_drivers_libraries_or_modules():
    known = set(modules())
    for m, f in worker_side().items():
        deps = imports(f, known)
        assert not deps & DRIVER_ONLY, (m, deps & DRIVER_ONLY)
        assert not {d for d in deps if d.startswith(("dlbench.driver", "dlbench.analysis", "harness"))}, m


@pytest.mark.skipif(not ENVIRONMENTS["mxnet"].python.exists(), reason=".venv-mxnet missing: run `make setup`")
def test_the_worker_side_imports_under_mxnets_interpreter_without_driver_libraries():
    names = [m for m in worker_side() if m != "frameworks.contract"] + ["frameworks.contract"]
    code = (
        "import importlib, sys\n"
        f"for m in {names!r}: importlib.import_module(m)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(DRIVER_ONLY)!r})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    r = subprocess.run([str(ENVIRONMENTS["mxnet"].python), "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_test_reads_shared_data_but_the_one_fixture():
    """A new user has no ../shared: real data reaches the tests only through conftest's real_data_dir
    (DLBENCH_DATA_DIR first), so a clone anywhere with DLBENCH_DATA_DIR set runs every test."""
    mentions = ('"shared"', "shared/data", "'shared'")
    offenders = [
        f.relative_to(ROOT)
        for f in (ROOT / "tests").rglob("*.py")
        if f.name not in ("conftest.py", "test_layout.py") and any(m in f.read_text() for m in mentions)
    ]
    assert offenders == []


def test_every_environment_follows_the_makefiles_convention():
    """`make setup` builds .venv from requirements/main.in and .venv-NAME from requirements/NAME.in,
    from the lock of its Python: an environment in the registry must be one the Makefile builds."""
    for key, env in ENVIRONMENTS.items():
        assert env.requirements == f"requirements/{key}.in" and (ROOT / env.requirements).is_file(), key
        assert env.venv == (".venv" if key == "main" else f".venv-{key}"), key
        locks = sorted((ROOT / "requirements").glob(f"{key}-py*.lock"))
        assert locks, f"no lock for {key}: run `make lock`"
        for lock in locks:
            pins = [ln for ln in lock.read_text().splitlines() if ln and not ln.startswith((" ", "#"))]
            assert pins and all("==" in p and p.endswith("\\") for p in pins), lock.name  # pinned, hashes follow


def test_the_cli_page_is_what_the_parser_says():
    """docs/cli.md regenerates from harness.py's parser: an option added, renamed or re-helped shows here."""
    import harness
    from dlbench.clidoc import render

    page = (ROOT / "docs" / "cli.md").read_text()
    assert page == render(harness.parser()), "regenerate it: python -m dlbench.clidoc > docs/cli.md"


def test_the_guide_runs_as_written_and_cites_only_names_that_exist():
    """docs/adding-a-framework.md: its Python blocks execute against the registry (keyword fields that exist),
    every private helper it cites is defined in frameworks/ or tasks/, every dotted dlbench./tasks. path
    imports, and every test it names exists."""
    import importlib
    import re

    import frameworks

    guide = (ROOT / "docs" / "adding-a-framework.md").read_text()
    for block in re.findall(r"```python\n(.*?)```", guide, flags=re.S):
        exec(block, {**vars(frameworks)})  # a TypeError here: a field the registry no longer has
    sources = "".join(p.read_text() for d in ("frameworks", "tasks", "dlbench") for p in (ROOT / d).rglob("*.py"))
    tests = "".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    for name in set(re.findall(r"`(_[a-z]\w*)`", guide)):
        assert re.search(rf"def {name}\b", sources), f"the guide cites {name}, which no longer exists"
    for path in set(re.findall(r"`((?:dlbench|tasks)\.[\w.]+)`", guide)):
        module, _, attr = path.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), path
    for test in set(re.findall(r"`(test_\w+)`", guide)):
        assert f"def {test}(" in tests, test


def test_every_child_process_is_started_with_a_time_bound():
    """children.run requires its timeout; every call of it in the code names one (docs/input-surfaces.md lists
    the bounds), and nothing calls subprocess.run or check_output directly, around that rule."""
    import ast

    calls = []
    for path in (ROOT / "dlbench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value.id if isinstance(node.func.value, ast.Name) else ""
                if (owner, node.func.attr) in {("children", "run"), ("subprocess", "run")}:
                    calls.append((path.name, node.lineno, owner, {k.arg for k in node.keywords}))
                assert (owner, node.func.attr) not in {("subprocess", "check_output"), ("subprocess", "call")}
    assert calls and all("timeout" in kw for name, *_, kw in calls if name != "children.py"), calls
    assert {name for name, _, owner, _ in calls if owner == "subprocess"} == {"children.py"}
