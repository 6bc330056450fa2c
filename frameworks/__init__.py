"""The framework registry: which adapter module and which Python environment runs each framework.

Adapters are imported lazily, by module name, inside the worker process only, so a framework that
is missing or broken never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Environment:
    """A virtual environment that `make setup` creates from a requirements file."""

    venv: str  # relative to the repository root
    requirements: str
    base_python: str = "python3.11"

    @property
    def python(self) -> Path:
        return ROOT / self.venv / "bin" / "python"


@dataclass(frozen=True)
class Framework:
    name: str
    module: str  # the adapter, imported only inside the worker
    env: str  # a key of ENVIRONMENTS
    package: str = ""  # the import that must succeed in that environment (for `harness.py list`)
    env_vars: dict[str, str] = field(default_factory=dict)  # set in the worker before any import
    description: str = ""


ENVIRONMENTS: dict[str, Environment] = {
    # TensorFlow, PyTorch and JAX share one environment with numpy 2; MXNet 1.9.1 will get its own
    # (numpy<1.24): a framework names its environment, and the harness runs its worker there.
    "main": Environment(".venv", "requirements/main.txt"),
}

FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework("torch", "frameworks.pytorch", "main", package="torch", description="PyTorch, eager mode"),
        # next: tensorflow, keras-jax, keras-torch (main env), jax (main env), mxnet (its own env)
    )
}
