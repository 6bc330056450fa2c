"""The framework registry: one `Framework` entry per framework, everything the driver knows about it.

Adapters are imported lazily, by module name, inside the worker process only, so a framework that
is missing or broken never stops the others. Adding a framework: its adapter module, one entry in
FRAMEWORKS, its documented facts in facts.json, and (only if it cannot share the main environment) an
Environment with its requirements file. docs/adding-a-framework.md walks through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Environment:
    """A virtual environment that `make setup` creates, with uv, from the lock of a requirements file.

    By convention requirements/main.in builds .venv and requirements/NAME.in builds .venv-NAME; the
    Makefile finds every .in file, so a new environment needs its .in file and this entry only."""

    venv: str  # relative to the repository root
    requirements: str  # the .in file; its locks are requirements/NAME-pyX.Y.lock
    missing_hint: str = "run `make setup`"  # said in the rows of a framework whose environment is missing

    @property
    def python(self) -> Path:
        return ROOT / self.venv / "bin" / "python"


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One configuration a framework's own documentation offers for speed: a candidate for its tuned tier.

    `harness.py tune` measures each one that passes parity against the default, in one sitting, and the
    fastest that beats the default beyond the noise becomes the tuned tier (dlbench/driver/tuning.py)."""

    name: str  # what the adapter's configure() takes as its tier
    changes: tuple[str, ...]  # the settings() keys it changes from the default (a test holds each adapter to it)
    source: str  # where the framework's documentation offers it
    devices: tuple[str, ...] = ("cpu", "gpu")  # where it means something (CUDA graphs: a GPU only)


@dataclass(frozen=True, kw_only=True)
class Framework:
    """One framework (or one configuration of it) that the harness can run."""

    name: str
    module: str  # the adapter, imported only inside the worker
    env: str  # a key of ENVIRONMENTS
    env_vars: dict[str, str] = field(default_factory=dict)  # set in the worker before any import
    package: str = ""  # the import that must succeed in that environment (for `harness.py list`)
    description: str = ""
    pipeline: str = ""  # its own input pipeline, a key of dlbench.worker.pipelines.PIPELINES ("" = none)
    distributions: tuple[str, ...] = ()  # the PyPI distributions whose installed size `assess` measures
    facts: tuple[str, ...] = ()  # its entries in frameworks/facts.json (Keras backends: keras + the backend)
    precisions: tuple[str, ...] = ("fp32", "tf32", "bf16")  # what its adapter implements (dlbench.protocol.Precision)
    candidates: tuple[Candidate, ...] = ()  # its tuned tier's candidates; none: the tuned tier is the default
    # Other releases its adapter supports, as NAME@VERSION (dlbench/driver/releases.py builds their
    # environments): a PEP 440 range ("" = the locked release only), the distributions the release number
    # pins, and what else its worker needs installed beyond its distributions and numpy.
    releases: str = ""
    pinned: tuple[str, ...] = ()
    release_extras: tuple[str, ...] = ()

    def offered(self, device: str) -> tuple[Candidate, ...]:
        """The candidates that mean something on this device ("cpu" or "gpu")."""
        return tuple(c for c in self.candidates if device in c.devices)


ENVIRONMENTS: dict[str, Environment] = {
    # TensorFlow and PyTorch share one environment with numpy 2; MXNet 1.9.1 needs numpy<1.24
    # (so Python <= 3.11): a framework names its environment, and the harness runs its worker there.
    "main": Environment(venv=".venv", requirements="requirements/main.in"),
    "mxnet": Environment(
        venv=".venv-mxnet",
        requirements="requirements/mxnet.in",
        missing_hint="run `make setup` (MXNet 1.9.1 needs Python 3.11)",
    ),
    "paddle": Environment(venv=".venv-paddle", requirements="requirements/paddle.in"),  # its own protobuf
    "mlx": Environment(venv=".venv-mlx", requirements="requirements/mlx.in"),
    # JAX 0.12 needs Python >= 3.12; the main environment's torch 2.13.0 CPU build is for 3.11
    "jax": Environment(
        venv=".venv-jax", requirements="requirements/jax.in", missing_hint="run `make setup` (JAX 0.12: Python 3.12)"
    ),
}

_KERAS = "frameworks.tensorflow_keras"  # one adapter file, three backends
_TF_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "2"}  # TensorFlow's start-up chatter; errors still show
# On a GPU, JAX preallocates 75 % of its memory and TensorFlow all of it: turned off, so that the peak
# device memory each framework reports means the same thing (what the model used). No effect on CPU.
_NO_PREALLOC = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
_TORCH, _JAX = ("torch",), ("jax", "jaxlib")

_EXE = ("execution",)
_KERAS_DOC = "keras.io Model.compile: steps_per_execution (several steps per call), jit_compile (XLA)"
_SPE = tuple(Candidate(name=f"spe-{k}", changes=_EXE, source=_KERAS_DOC) for k in (8, 32))
_COMPILE = "pytorch.org torch.compile: modes 'default', 'max-autotune-no-cudagraphs', 'reduce-overhead' (CUDA graphs)"
TORCH_CANDIDATES = (
    Candidate(
        name="fused-adam",
        changes=("optimizer",),
        source="pytorch.org torch.optim.Adam: fused=True, the fastest where supported",
    ),
    Candidate(name="compile", changes=("execution", "optimizer"), source=_COMPILE),
    Candidate(name="compile-max-autotune", changes=("execution", "optimizer"), source=_COMPILE),
    Candidate(name="compile-reduce-overhead", changes=("execution", "optimizer"), source=_COMPILE, devices=("gpu",)),
)
_SCAN = "jax.readthedocs.io jax.lax.scan: a loop folded into one compiled call (no Python between steps)"
_NNX = "flax.readthedocs.io NNX performance considerations: nnx.cached_partial, nnx.jit(graph=False), split/merge"
NNX_CANDIDATES = tuple(
    Candidate(name=n, changes=_EXE, source=_NNX) for n in ("cached-partial", "tree-mode", "functional")
)

FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework(
            name="torch",
            module="frameworks.pytorch",
            env="main",
            env_vars={},
            package="torch",
            description="PyTorch, eager mode",
            pipeline="torch DataLoader",
            distributions=_TORCH,
            facts=("torch",),
            candidates=TORCH_CANDIDATES,
            releases=">=2.4",
            pinned=_TORCH,
        ),
        Framework(
            name="tensorflow",
            module=_KERAS,
            env="main",
            env_vars={**_TF_QUIET, **_NO_PREALLOC, "KERAS_BACKEND": "tensorflow"},
            package="tensorflow",
            description="Keras 3 on TensorFlow",
            pipeline="tf.data",
            distributions=("keras", "tensorflow-cpu"),
            facts=("keras", "tensorflow"),
            candidates=(*_SPE, *(Candidate(name=n, changes=_EXE, source=_KERAS_DOC) for n in ("xla", "xla-spe-32"))),
            releases=">=2.16",
            pinned=("tensorflow-cpu",),
        ),  # 2.16: Keras 3 the default
        Framework(
            name="keras-jax",
            module=_KERAS,
            env="jax",
            env_vars={**_TF_QUIET, **_NO_PREALLOC, "KERAS_BACKEND": "jax"},
            package="jax",
            description="Keras 3 on JAX",
            pipeline="",
            distributions=("keras", *_JAX),
            facts=("keras", "jax"),
            candidates=_SPE,
            releases=">=3.5",
            pinned=("keras",),
        ),  # its release is Keras's
        Framework(
            name="keras-torch",
            module=_KERAS,
            env="main",
            env_vars={**_TF_QUIET, "KERAS_BACKEND": "torch"},
            package="torch",
            description="Keras 3 on PyTorch",
            pipeline="",
            distributions=("keras", *_TORCH),
            facts=("keras", "torch"),
            candidates=(Candidate(name="jit-compile", changes=_EXE, source=_KERAS_DOC + "; torch.compile on torch"),),
            releases=">=3.5",
            pinned=("keras",),
        ),
        Framework(
            name="jax",
            module="frameworks.jax_flax",
            env="jax",
            env_vars=_NO_PREALLOC,
            package="flax",
            description="JAX, Flax Linen + Optax",
            pipeline="numpy + jax.device_put",
            distributions=(*_JAX, "flax", "optax"),
            facts=("jax",),
            candidates=tuple(Candidate(name=f"scan-{k}", changes=_EXE, source=_SCAN) for k in (8, 32, "epoch")),
            releases=">=0.5",
            pinned=_JAX,
        ),
        Framework(
            name="jax-nnx",
            module="frameworks.jax_nnx",
            env="jax",
            env_vars=_NO_PREALLOC,
            package="flax",
            description="JAX, Flax NNX + Optax",
            pipeline="numpy + jax.device_put",
            distributions=(*_JAX, "flax", "optax"),
            facts=("jax",),
            candidates=NNX_CANDIDATES,
            releases=">=0.5",
            pinned=_JAX,
        ),  # flax resolves to a release with NNX's API of 0.12
        Framework(
            name="mxnet",
            module="frameworks.mxnet_gluon",
            env="mxnet",
            env_vars={},
            package="mxnet",
            description="MXNet Gluon, hybridized",
            pipeline="Gluon DataLoader",
            distributions=("mxnet",),
            facts=("mxnet",),
            precisions=("fp32", "tf32"),
        ),  # no bf16 in Gluon 1.9; its
        # documented speed path, hybridize(static_alloc, static_shape), is already its default here
        Framework(
            name="paddle",
            module="frameworks.paddle_dygraph",
            env="paddle",
            env_vars={},
            package="paddle",
            description="PaddlePaddle, dygraph",
            pipeline="paddle DataLoader",
            distributions=("paddlepaddle",),
            facts=("paddle",),
            precisions=("fp32",),
            candidates=(
                Candidate(
                    name="to-static",
                    changes=_EXE,
                    source="paddlepaddle.org paddle.jit.to_static: dynamic graph to static",
                ),
            ),
            releases=">=3.0",
            pinned=("paddlepaddle",),
            release_extras=("setuptools",),
        ),
        Framework(
            name="mlx",
            module="frameworks.mlx_nn",
            env="mlx",
            env_vars={},
            package="mlx",
            description="MLX (mlx.nn), CPU build",
            pipeline="mx.array gather (MLX's examples)",
            distributions=("mlx", "mlx-cpu"),
            facts=("mlx",),
            precisions=("fp32",),
            candidates=(
                Candidate(
                    name="compile", changes=_EXE, source="ml-explore.github.io mlx mx.compile: the training step"
                ),
            ),
            releases=">=0.20",
            pinned=("mlx", "mlx-cpu"),
        ),
    )
}

# Names kept for a framework's tier: `--frameworks torch-compile` is `--frameworks torch --tier tuned`.
ALIASES: dict[str, tuple[str, str]] = {"torch-compile": ("torch", "tuned")}
