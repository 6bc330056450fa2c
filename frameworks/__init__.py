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
    missing_hint: str = "run `make setup`"

    @property
    def python(self) -> Path:
        return ROOT / self.venv / "bin" / "python"


@dataclass(frozen=True)
class Framework:
    name: str
    module: str  # the adapter, imported only inside the worker
    env: str  # a key of ENVIRONMENTS
    env_vars: dict[str, str] = field(default_factory=dict)  # set in the worker before any import
    package: str = ""  # the import that must succeed in that environment (for `harness.py list`)
    description: str = ""


ENVIRONMENTS: dict[str, Environment] = {
    # TensorFlow, PyTorch and JAX share one environment with numpy 2; MXNet 1.9.1 will get its own
    # (numpy<1.24): a framework names its environment, and the harness runs its worker there.
    "main": Environment(".venv", "requirements/main.txt"),
    "mxnet": Environment(
        ".venv-mxnet", "requirements/mxnet.txt", missing_hint="run `make setup` (MXNet 1.9.1 needs Python <= 3.11)"
    ),
}

_KERAS = "frameworks.tensorflow_keras"  # one adapter file, three backends
_TF_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # TensorFlow's start-up chatter; errors still show
# On a GPU, JAX preallocates 75 % of its memory and TensorFlow all of it: turned off, so that the peak
# device memory each framework reports means the same thing (what the model used). No effect on CPU.
_NO_PREALLOC = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}

FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework("torch", "frameworks.pytorch", "main", package="torch", description="PyTorch, eager mode"),
        Framework(
            "torch-compile", "frameworks.pytorch_compile", "main", package="torch", description="PyTorch, torch.compile"
        ),  # fmt: skip
        Framework(
            "tensorflow",
            _KERAS,
            "main",
            {**_TF_QUIET, **_NO_PREALLOC, "KERAS_BACKEND": "tensorflow"},
            "tensorflow",
            "Keras 3 on TensorFlow",
        ),
        Framework(
            "keras-jax", _KERAS, "main", {**_TF_QUIET, **_NO_PREALLOC, "KERAS_BACKEND": "jax"}, "jax", "Keras 3 on JAX"
        ),
        Framework(
            "keras-torch", _KERAS, "main", {**_TF_QUIET, "KERAS_BACKEND": "torch"}, "torch", "Keras 3 on PyTorch"
        ),
        Framework("jax", "frameworks.jax_flax", "main", _NO_PREALLOC, "flax", "JAX, Flax Linen + Optax"),
        Framework("mxnet", "frameworks.mxnet_gluon", "mxnet", package="mxnet", description="MXNet Gluon, hybridized"),
    )
}
