"""`harness.py list`: the registered frameworks (and whether their environment is ready) and the tasks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from dlbench.driver import children
from frameworks import ENVIRONMENTS, FRAMEWORKS
from tasks import TASKS


def _importable(python: Path, package: str) -> bool:
    """Whether `package` can be found by `python`, without importing it (that can take seconds)."""
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({package!r}) is None)"
    try:
        return children.run([str(python), "-c", code], capture_output=True, timeout=60).returncode == 0
    except subprocess.TimeoutExpired:  # an interpreter that does not answer in a minute is not ready
        return False


def run() -> int:
    print("frameworks:")
    for f in FRAMEWORKS.values():
        env = ENVIRONMENTS[f.env]
        if not env.python.exists():
            state = f"missing: {env.venv} does not exist, {env.missing_hint}"
        elif f.package and not _importable(env.python, f.package):
            state = f"missing: {f.package} is not installed in {env.venv}, run `make setup`"
        else:
            state = "installed"
        print(f"  {f.name:<12} {f.description:<24} {state}; interpreter {env.python}")
    print("tasks:")
    for t in TASKS.values():
        r = t.recipe
        print(
            f"  {t.name:<12} {t.dataset:<6} {t.n_params:>9,} params  batch {r.batch_size}, "
            f"<= {r.max_epochs} epochs, early stopping {'on' if r.early_stopping else 'off'}, "
            f"target val acc {r.target_val_accuracy}"
        )
    return 0
