"""The adapter contract: what every module in frameworks/ provides (a module satisfies it as is).

The harness owns the epoch loop, data order, early stopping, clocks and memory readings; an adapter
only turns the task's layer list into its framework's model and runs what it is told.
The releases an adapter supports (for `--frameworks NAME@VERSION`) are declared beside it in its registry
entry, frameworks.Framework.releases (a PEP 440 range) and .pinned, because the driver checks them
before any environment exists and never imports an adapter (dlbench/driver/releases.py).
Weights cross frameworks in the canonical layout of tasks.spec.canonical_shapes (NHWC flatten order,
HWIO convolutions, LSTM gates i, f, g, o with one bias).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from tasks.spec import Task

Model = Any  # the adapter's own model state: network, optimizer state, task (returned anew by JAX)
Data = Any  # arrays converted once to the framework's tensors, layout and device


class Adapter(Protocol):
    LSTM_BIAS_VECTORS: int  # trainable LSTM bias vectors: 1 as Keras (PyTorch and MXNet freeze their second)

    def versions(self) -> dict[str, str]:
        """The framework's package versions (framework first) and its backend/settings to record."""

    def configure(self, threads: int, device: str, precision: str, deterministic: bool, tier: str) -> str:
        """Set thread pools, device, precision ("fp32" | "tf32" | "bf16", see dlbench.protocol.Precision),
        deterministic kernels and the configuration before anything is built; return the device. `tier` is
        "default" or the name of one of the framework's registered candidates (frameworks.Candidate.name:
        the driver resolves "tuned" to tune's choice first); any other name raises ValueError."""

    def settings(self) -> dict[str, str]:
        """What shapes this adapter's speed, recorded beside its numbers (the fairness manifest): execution
        (eager, compiled, how), optimizer implementation, data placement, thread pools."""

    def build(self, task: Task, seed: int) -> Model:
        """The task's model, initialised as Keras does, and its Adam optimizer, seeded."""

    def prepare(self, x: np.ndarray, y: np.ndarray | None = None) -> Data:
        """Convert arrays to the framework's tensors once, outside the clock."""

    def train_epoch(self, model: Model, data: Data, order: np.ndarray) -> tuple[Model, float, float]:
        """One epoch over the examples in `order`, in recipe-sized batches: (model, loss, accuracy)."""

    def evaluate(self, model: Model, data: Data) -> tuple[float, float]:
        """Mean loss and accuracy in inference mode (dropout off)."""

    def predict(self, model: Model, data: Data) -> np.ndarray:
        """Output probabilities (softmax or sigmoid) in inference mode, as a numpy array."""

    def n_params(self, model: Model) -> int:
        """The number of trainable parameters as the framework counts them."""

    def layer_params(self, model: Model) -> dict[str, int]:
        """Parameters per canonical layer key ("2.lstm"), as the framework stores them."""

    def peak_device_mib(self, model: Model) -> float | None:
        """Peak accelerator memory so far, in MiB, by the framework's own counter; None on CPU."""

    def sync(self, model: Model) -> None:
        """Block until all queued work is done, so that a clock read afterwards is honest."""

    def get_weights(self, model: Model) -> dict[str, np.ndarray]:
        """All weights in the canonical layout (tasks.spec.canonical_shapes)."""

    def set_weights(self, model: Model, weights: dict[str, np.ndarray]) -> Model:
        """Load weights given in the canonical layout; return the model."""
