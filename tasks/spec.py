"""The task contract: layers, recipe and task, as plain data (numpy and the standard library only).

A task's model is a Sequential-style list of layers, as the Keras seeds write it. Every framework
builds the same list; `canonical_shapes` fixes the framework-neutral weight layout that adapters
import and export (Dense kernel (in, out); Conv2D kernel HWIO; LSTM kernel (in, 4h), recurrent
kernel (h, 4h), one bias (4h), gate order i, f, g, o).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Literal

import numpy as np

Activation = Literal["linear", "relu", "softmax", "sigmoid"]


class Loss(str, Enum):
    """The recipe's loss; a str, so it compares equal to Keras's loss names."""

    CATEGORICAL = "categorical_crossentropy"  # integer labels (int32), softmax outputs
    BINARY = "binary_crossentropy"  # 0/1 labels (float32), one sigmoid output


@dataclass(frozen=True)
class Dense:
    units: int
    activation: Activation = "linear"


@dataclass(frozen=True)
class Conv2D:
    filters: int
    kernel: tuple[int, int]
    activation: Activation = "linear"  # padding is always VALID, stride 1 (the Keras default)


@dataclass(frozen=True)
class MaxPool2D:
    pool: tuple[int, int] = (2, 2)  # stride = pool, VALID


@dataclass(frozen=True)
class Flatten:
    """NHWC flatten order (Keras's): NCHW frameworks permute the next Dense kernel's rows."""


@dataclass(frozen=True)
class Dropout:
    rate: float


@dataclass(frozen=True)
class Embedding:
    vocab: int
    dim: int


@dataclass(frozen=True)
class LSTM:
    units: int  # returns the last hidden state only (return_sequences=False)


@dataclass(frozen=True)
class TokenAndPositionEmbedding:
    """A token embedding (vocab, dim) plus a learned position embedding (maxlen, dim) of positions 0..T-1,
    summed (Keras's Transformer example). Weights: token_embeddings (vocab, dim), position_embeddings
    (maxlen, dim), both U(-0.05, 0.05) as Keras's Embedding."""

    vocab: int
    maxlen: int
    dim: int


@dataclass(frozen=True)
class MultiHeadAttention:
    """Self-attention (query = key = value = the input), no mask: padding tokens are attended to, as in
    the Keras example. Keras's layout: query/key/value kernels (d, heads, key_dim) and biases (heads,
    key_dim); output kernel (heads, key_dim, d) and bias (d); scores scaled by 1/sqrt(key_dim), softmax
    over the keys. Kernels Glorot-uniform with the fans EinsumDense gives them (its input and output
    axes: d and heads x key_dim, as a (d, heads * key_dim) matrix would have), biases zero."""

    heads: int
    key_dim: int


@dataclass(frozen=True)
class LayerNorm:
    """Normalisation over the last axis: (x - mean) / sqrt(var + eps) * gamma + beta, the biased variance.
    Weights gamma (d) = 1 and beta (d) = 0."""

    eps: float  # the example's 1e-6; Keras's default is 1e-3, PyTorch's and Flax's 1e-5, MXNet's 1e-5


@dataclass(frozen=True)
class Residual:
    """x + layers(x), the sub-layers applied in order; their weights are keyed under the block's key
    ("1.residual.0.multiheadattention.query_kernel")."""

    layers: tuple  # of Layer


@dataclass(frozen=True)
class GlobalAveragePooling1D:
    """The mean over the time axis, (batch, T, d) -> (batch, d); no mask: padding counts, as in the example."""


Layer = (
    Dense
    | Conv2D
    | MaxPool2D
    | Flatten
    | Dropout
    | Embedding
    | LSTM
    | TokenAndPositionEmbedding
    | MultiHeadAttention
    | LayerNorm
    | Residual
    | GlobalAveragePooling1D
)


@dataclass(frozen=True)
class Recipe:
    """How to train: Adam settings, batches, epochs, early stopping, validation split, target."""

    loss: Loss
    batch_size: int
    max_epochs: int
    early_stopping: bool
    target_val_accuracy: float
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-7  # Keras's default; PyTorch/Optax default to 1e-8, MXNet to 1e-8: set explicitly
    validation_split: float = 0.1  # the LAST fraction of the training set, as Keras's fit does
    validate_on_test: bool = False  # the seeds' way: fit on the whole training set, validate on the test set
    es_min_delta: float = 0.0005  # early stopping on val_loss, Keras semantics
    es_patience: int = 2


@dataclass(frozen=True)
class AccuracyGate:
    """When a framework's timings on a task are comparable: its median test accuracy reached the
    profile's floor and, in the full profile, lies within `tolerance` of the median over frameworks."""

    min_full: float
    # The quick profile trains a subset for 1-2 epochs, on the cliff where accuracy takes off: quick
    # IMDB varied 0.57-0.77 across seeds within one framework. So a floor only, no tolerance.
    min_quick: float
    tolerance: float  # absolute; at least two test examples' worth where the test set is small


@dataclass(frozen=True)
class Published:
    """The test accuracy the task's seed (the Keras tutorial it comes from) reports, and in whose words."""

    test_accuracy: float
    stated: str  # as the source states it ("99.00 %", "about 82 %")
    source: str


@dataclass(frozen=True)
class Task:
    """A benchmark task: its data set, input shape, model, recipe and the facts to check."""

    name: str
    dataset: Literal["iris", "mnist", "imdb", "imdb200"]  # imdb200: the IMDB reviews encoded to length 200
    input_shape: tuple[int, ...]  # one example, without the batch axis (NHWC for images)
    input_dtype: Literal["float32", "int32"]
    layers: tuple[Layer, ...]
    recipe: Recipe
    n_params: int  # with ONE LSTM bias vector (Keras); see lstm_bias_delta
    gate: AccuracyGate
    notes: str = ""
    quick: dict = field(default_factory=dict)  # the quick profile's overrides (n_train, n_test, epochs)
    published: Published | None = None  # what our full-profile accuracy is held against
    seed_recipe: Recipe | None = None  # the seed's own recipe, where it gives one whole (`--recipe seed`)
    seed_gap: str = ""  # where it does not: what the seed leaves out

    @property
    def binary(self) -> bool:
        """One sigmoid output and 0/1 labels (else softmax over classes, integer labels)."""
        return self.recipe.loss == Loss.BINARY


def with_recipe(task: Task, recipe: str) -> Task:
    """The task trained by "ours" (its recipe) or by "seed" (its seed's own); ValueError where the seed gives none."""
    if recipe == "ours":
        return task
    if recipe != "seed":
        raise ValueError(f"no recipe {recipe!r}: ours or seed")
    if task.seed_recipe is None:
        raise ValueError(f"{task.name} has no seed recipe: {task.seed_gap}")
    return replace(task, recipe=task.seed_recipe)


def layer_key(index: int, layer: Layer) -> str:
    """The canonical key of a layer ("2.lstm"): weights are "{key}.{name}" ("2.lstm.bias")."""
    return f"{index}.{type(layer).__name__.lower()}"


def _output_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape one layer gives for an input of `shape` (one example)."""
    if isinstance(layer, Dense):
        return (*shape[:-1], layer.units)
    if isinstance(layer, LSTM):
        return (layer.units,)
    if isinstance(layer, Conv2D):  # VALID, stride 1
        return (shape[0] - layer.kernel[0] + 1, shape[1] - layer.kernel[1] + 1, layer.filters)
    if isinstance(layer, MaxPool2D):
        return (shape[0] // layer.pool[0], shape[1] // layer.pool[1], shape[2])
    if isinstance(layer, Flatten):
        return (int(np.prod(shape)),)
    if isinstance(layer, (Embedding, TokenAndPositionEmbedding)):
        return (*shape, layer.dim)
    if isinstance(layer, GlobalAveragePooling1D):
        return shape[1:]
    return shape  # Dropout, LayerNorm, MultiHeadAttention (self-attention keeps d), Residual


def top_level_key(key: str) -> str:
    """The task-level layer a canonical layer key belongs to: "1.residual" for "1.residual.0.multiheadattention"
    (a residual block's sub-layers count towards the block)."""
    return ".".join(key.split(".")[:2])


def shapes_through(layers, shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shape each of `layers` receives from an input of `shape` (one example), then the output's."""
    shapes = [shape]
    for layer in layers:
        shapes.append(_output_shape(layer, shapes[-1]))
    return shapes


def input_shapes(task: Task) -> list[tuple[int, ...]]:
    """The shape each layer receives (one example, NHWC), in layer order, then the output's shape."""
    return shapes_through(task.layers, task.input_shape)


def _layer_shapes(key: str, layer: Layer, shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """The canonical weights of one layer that receives `shape`."""
    if isinstance(layer, Dense):
        return {f"{key}.kernel": (shape[-1], layer.units), f"{key}.bias": (layer.units,)}
    if isinstance(layer, Conv2D):
        return {f"{key}.kernel": (*layer.kernel, shape[-1], layer.filters), f"{key}.bias": (layer.filters,)}
    if isinstance(layer, Embedding):
        return {f"{key}.embeddings": (layer.vocab, layer.dim)}
    if isinstance(layer, LSTM):
        h = layer.units
        return {f"{key}.kernel": (shape[-1], 4 * h), f"{key}.recurrent_kernel": (h, 4 * h), f"{key}.bias": (4 * h,)}
    if isinstance(layer, TokenAndPositionEmbedding):
        return {
            f"{key}.token_embeddings": (layer.vocab, layer.dim),
            f"{key}.position_embeddings": (layer.maxlen, layer.dim),
        }
    if isinstance(layer, MultiHeadAttention):
        d, hk = shape[-1], (layer.heads, layer.key_dim)
        out = {f"{key}.{p}_{w}": s for p in ("query", "key", "value") for w, s in (("kernel", (d, *hk)), ("bias", hk))}
        return {**out, f"{key}.output_kernel": (*hk, d), f"{key}.output_bias": (d,)}
    if isinstance(layer, LayerNorm):
        return {f"{key}.gamma": (shape[-1],), f"{key}.beta": (shape[-1],)}
    if isinstance(layer, Residual):
        out = {}
        for j, (sub, inner) in enumerate(zip(layer.layers, shapes_through(layer.layers, shape), strict=False)):
            out.update(_layer_shapes(f"{key}.{layer_key(j, sub)}", sub, inner))
        return out
    return {}


def canonical_shapes(task: Task) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every weight in the canonical layout, in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (layer, shape) in enumerate(zip(task.layers, input_shapes(task), strict=False)):
        shapes.update(_layer_shapes(layer_key(i, layer), layer, shape))
    return shapes


def count_params(task: Task) -> int:
    """The parameter count of the canonical layout (one LSTM bias)."""
    return sum(int(np.prod(shape)) for shape in canonical_shapes(task).values())


def nchw_flatten_rows(task: Task, index: int) -> np.ndarray | None:
    """For NCHW frameworks, the Dense layer at `index` after a Flatten of an (H, W, C) image: row i of
    the canonical kernel (Keras's H, W, C flatten order) is row rows[i] of the framework's (C, H, W)
    flatten order; np.argsort(rows) maps back. None where no permutation is needed."""
    before = index - 1
    while before >= 0 and isinstance(task.layers[before], Dropout):  # Flatten -> Dropout -> Dense (MNIST)
        before -= 1
    if before < 0 or not isinstance(task.layers[before], Flatten):
        return None
    shape = input_shapes(task)[before]
    if len(shape) != 3:
        return None
    h, w, c = shape
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).ravel()


def lstm_bias_delta(task: Task, bias_vectors: int) -> int:
    """Extra trainable parameters of an adapter that trains `bias_vectors` LSTM biases. Every adapter
    here trains one (PyTorch and MXNet store a second, frozen at zero), so the delta is 0."""
    return sum(4 * la.units * (bias_vectors - 1) for la in task.layers if isinstance(la, LSTM))


def expected_layer_params(task: Task, lstm_bias_vectors: int) -> dict[str, int]:
    """Canonical layer key -> parameters, with the extra LSTM bias of PyTorch/MXNet where kept."""
    out: dict[str, int] = {}
    for key, shape in canonical_shapes(task).items():
        layer = top_level_key(key)  # a residual block holds its layers' weights
        out[layer] = out.get(layer, 0) + int(math.prod(shape))
    for i, la in enumerate(task.layers):
        if isinstance(la, LSTM):
            out[f"{i}.lstm"] += 4 * la.units * (lstm_bias_vectors - 1)
    return out
