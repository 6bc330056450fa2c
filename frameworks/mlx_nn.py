"""MLX adapter (mlx.nn, CPU build mlx[cpu] on Linux): NHWC convolutions, lazy evaluation, Keras's Adam.

Added by following docs/adding-a-framework.md. What MLX does differently, and what the adapter does:
- Lazy evaluation: operations build a graph that runs at `mx.eval`. Each training step evaluates the
  parameters and the optimizer state (as MLX's own examples do), and `sync` is `mx.eval` of the
  parameters: the clock never stops before the work is done.
- Adam: `mlx.optimizers.Adam` has bias_correction=False by default (no bias correction at all) and with
  bias_correction=True adds eps after the correction (PyTorch's placement). The one-step probe (lr 1,
  g = 1e-3, eps = 1e-3): 0.0969 without correction, 0.500 with it; Keras's formula gives 0.0307.
  `_KerasAdam` computes Keras's update itself: lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps).
- Layouts: Linear weights are (out, in) (transposed on get/set); Conv2d is NHWC with (out, kh, kw, in)
  weights, so flattening is Keras's (H, W, C) order and needs no permutation; LSTM keeps Wx (4h, in),
  Wh (4h, h) and ONE bias (4h), gates i, f, g, o: exactly the canonical LSTM, transposed.
- MLX's LSTM layer loops over time steps in Python (80 for IMDB), each one a small graph. Compiling
  the step (the tuned tier) traces that loop once, yet measured here (results/reference-mlx at c361f85, 2-core
  CPU) the compiled IMDB epoch is 1.20x the eager one (slower); on Iris it is 0.19x.
- Threads: mlx.core has no thread-count setting (the worker's CPU affinity bounds it), and its CPU
  build uses one core on the MNIST CNN and the IMDB LSTM here: 10 training steps took the same time
  pinned to 1 or 2 CPUs (README, "MLX's MNIST again"), where PyTorch's took 0.61-0.76x as long at 2.
- Initialisers: MLX's own default to uniform(+-1/sqrt(fan)) (LSTM) and its conv fans follow the OHWI
  layout; the adapter loads Keras's initialisers from the framework-neutral reference instead
  (tasks/reference.init_weights, seeded): the statistics check passes by construction, and the seed
  is the run's. Dropout draws from MLX's own generator, seeded with mx.random.seed.
Tiers: default eager; one candidate for the tuned tier (`harness.py tune` keeps it only where it measures
faster): the training step under `mx.compile` (MLX's documented way to fuse a step), with the model,
optimizer and random states as its inputs and outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import numpy as np

from tasks.reference import init_weights
from tasks.spec import (
    LSTM,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    GlobalAveragePooling1D,
    LayerNorm,
    MaxPool2D,
    MultiHeadAttention,
    Residual,
    Task,
    TokenAndPositionEmbedding,
    input_shapes,
    layer_key,
    shapes_through,
    top_level_key,
)

LSTM_BIAS_VECTORS = 1
CANDIDATES = ("default", "compile")  # frameworks/__init__.py's candidates, and the default
_tier = "default"


class _KerasAdam(optim.Adam):
    """Adam as Keras computes it: eps added to sqrt(v) before the bias correction (see the docstring)."""

    def apply_single(self, gradient: mx.array, parameter: mx.array, state: dict):
        lr = self.learning_rate.astype(gradient.dtype)
        b1, b2 = self.betas
        t = self.step
        m = b1 * state["m"] + (1 - b1) * gradient
        v = b2 * state["v"] + (1 - b2) * mx.square(gradient)
        state["m"], state["v"] = m, v
        alpha = lr * mx.sqrt(1 - b2**t) / (1 - b1**t)
        return parameter - (alpha * m / (mx.sqrt(v) + self.eps)).astype(gradient.dtype)


class _Flatten(nn.Module):
    def __call__(self, x):
        return x.reshape(x.shape[0], -1)  # NHWC: Keras's flatten order


class _LastHidden(nn.Module):
    def __init__(self, n_in: int, units: int):
        super().__init__()
        self.lstm = nn.LSTM(n_in, units)

    def __call__(self, x):
        return self.lstm(x)[0][:, -1, :]  # the last hidden state, as Keras's return_sequences=False


class _TokenAndPosition(nn.Module):
    def __init__(self, spec: TokenAndPositionEmbedding):
        super().__init__()
        self.token, self.position = nn.Embedding(spec.vocab, spec.dim), nn.Embedding(spec.maxlen, spec.dim)

    def __call__(self, x):
        return self.token(x) + self.position.weight[: x.shape[1]]


class _SelfAttention(nn.Module):
    """mlx.nn.MultiHeadAttention as Keras's MultiHeadAttention(heads, key_dim), called on (x, x, x).

    MLX lets the projections' width (dims = heads * key_dim, 64 here) differ from the input's (32), so the
    example's 32-wide heads fit; its default is bias=False, Keras's True."""

    def __init__(self, d: int, spec: MultiHeadAttention):
        super().__init__()
        w = spec.heads * spec.key_dim
        self.heads, self.key_dim = spec.heads, spec.key_dim
        self.att = nn.MultiHeadAttention(
            w,
            spec.heads,
            query_input_dims=d,
            key_input_dims=d,
            value_input_dims=d,
            value_dims=w,
            value_output_dims=d,
            bias=True,
        )

    def __call__(self, x):
        return self.att(x, x, x)


class _MeanOverTime(nn.Module):
    def __call__(self, x):
        return x.mean(axis=1)  # GlobalAveragePooling1D, no mask (padding counts, as in the example)


class Net(nn.Module):
    """A layer list (the task's, or a residual block's body: x + layers(x))."""

    def __init__(self, layers, shapes, prefix: str, keyed: list, residual: bool = False):
        """keyed collects (canonical key, module) of each weighted layer, a residual block's too, for get/set."""
        super().__init__()
        self.layers, self.residual = [], residual
        for i, (layer, shape) in enumerate(zip(layers, shapes, strict=False)):
            key = prefix + layer_key(i, layer)
            if isinstance(layer, Dense):
                m = nn.Linear(shape[-1], layer.units)
            elif isinstance(layer, Conv2D):
                m = nn.Conv2d(shape[-1], layer.filters, layer.kernel)  # VALID, stride 1
            elif isinstance(layer, MaxPool2D):
                m = nn.MaxPool2d(layer.pool, layer.pool)
            elif isinstance(layer, Flatten):
                m = _Flatten()
            elif isinstance(layer, Dropout):
                m = nn.Dropout(layer.rate)
            elif isinstance(layer, Embedding):
                m = nn.Embedding(layer.vocab, layer.dim)
            elif isinstance(layer, LSTM):
                m = _LastHidden(shape[-1], layer.units)
            elif isinstance(layer, TokenAndPositionEmbedding):
                m = _TokenAndPosition(layer)
            elif isinstance(layer, MultiHeadAttention):
                m = _SelfAttention(shape[-1], layer)
            elif isinstance(layer, LayerNorm):
                m = nn.LayerNorm(shape[-1], eps=layer.eps)
            elif isinstance(layer, GlobalAveragePooling1D):
                m = _MeanOverTime()
            elif isinstance(layer, Residual):
                m = Net(layer.layers, shapes_through(layer.layers, shape), key + ".", keyed, residual=True)
            else:
                raise ValueError(f"the MLX adapter cannot build {type(layer).__name__}")
            if not isinstance(layer, Residual) and _size(m):
                keyed.append((key, m))
            self.layers.append(m)
        self.relu = [getattr(la, "activation", "linear") == "relu" for la in layers]

    def __call__(self, x):
        inputs = x
        for layer, relu in zip(self.layers, self.relu, strict=True):
            x = layer(x)
            if relu:
                x = nn.relu(x)
        return inputs + x if self.residual else x  # logits: softmax/sigmoid live in the loss and in predict


@dataclass
class Model:
    net: Net
    opt: optim.Optimizer
    task: Task
    step: object  # the training step (compiled in the tuned tier)
    keyed: tuple = ()  # (canonical key, module) of every weighted layer, a residual block's too


def versions() -> dict[str, str]:
    return {"mlx": mx.__version__, "mlx_device": str(mx.default_device())}


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    global _tier
    if tier not in CANDIDATES:
        raise ValueError(f"mlx has no tier {tier!r}: one of {', '.join(CANDIDATES)}")
    if precision != "fp32":
        raise RuntimeError(f"--precision {precision}: the MLX adapter implements fp32 only")
    if device == "gpu" and not mx.is_available(mx.gpu):
        raise RuntimeError("--device gpu asked for, but this MLX build has no GPU backend (mlx[cpu])")
    mx.set_default_device(mx.gpu if device != "cpu" and mx.is_available(mx.gpu) else mx.cpu)
    _tier = tier
    return str(mx.default_device())


def settings() -> dict[str, str]:
    return {
        "execution": "lazy graphs, mx.compile of the training step"
        if _tier == "compile"
        else "lazy graphs, mx.eval after each step",
        "optimizer": "mlx.optimizers.Adam subclass with Keras's update",
        "data_placement": f"mx.array on {mx.default_device()} (unified memory), prepared once",
        "threads": "MLX's CPU pool, bounded by the worker's CPU affinity",
    }


def _loss(model: Model, net: Net, x, y):
    logits = net(x)
    if model.task.binary:
        logits = logits[:, 0]
        loss = nn.losses.binary_cross_entropy(logits, y, with_logits=True, reduction="mean")
        return loss, ((logits > 0) == (y > 0.5)).sum()
    return nn.losses.cross_entropy(logits, y, reduction="mean"), (logits.argmax(axis=1) == y).sum()


def build(task: Task, seed: int) -> Model:
    mx.random.seed(seed)  # dropout
    keyed: list = []
    net = Net(task.layers, input_shapes(task), "", keyed)
    r = task.recipe
    opt = _KerasAdam(learning_rate=r.lr, betas=[r.beta1, r.beta2], eps=r.eps)
    model = Model(net, opt, task, None, tuple(keyed))
    set_weights(model, init_weights(task, seed))  # Keras's initialisers, seeded (see the docstring)
    value_and_grad = nn.value_and_grad(net, lambda n, x, y: _loss(model, n, x, y))

    def step(x, y):
        (loss, hits), grads = value_and_grad(net, x, y)
        opt.update(net, grads)
        return loss, hits

    if _tier == "compile":
        state = [net.state, opt.state, mx.random.state]
        step = partial(mx.compile, inputs=state, outputs=state)(step)
    model.step = step
    return model


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    return mx.array(x), (None if y is None else mx.array(y))


def train_epoch(model: Model, data, order: np.ndarray):
    x, y = data
    model.net.train()
    bs, idx = model.task.recipe.batch_size, mx.array(order.astype(np.int32))
    loss_sum, hits = mx.array(0.0), mx.array(0)
    for i in range(0, len(order), bs):
        b = idx[i : i + bs]
        loss, hit = model.step(x[b], y[b])
        loss_sum, hits = loss_sum + loss * len(b), hits + hit
        mx.eval(model.net.parameters(), model.opt.state, loss_sum, hits)
    return model, float(loss_sum.item()) / len(order), int(hits.item()) / len(order)


def evaluate(model: Model, data):
    x, y = data
    model.net.eval()
    bs, loss_sum, hits = model.task.recipe.batch_size, 0.0, 0
    for i in range(0, len(x), bs):
        loss, hit = _loss(model, model.net, x[i : i + bs], y[i : i + bs])
        loss_sum, hits = loss_sum + loss.item() * min(bs, len(x) - i), hits + hit.item()
    return loss_sum / len(x), hits / len(x)


def predict(model: Model, data) -> np.ndarray:
    x = data[0]
    model.net.eval()
    bs = model.task.recipe.batch_size
    logits = mx.concatenate([model.net(x[i : i + bs]) for i in range(0, len(x), bs)])
    probs = mx.sigmoid(logits) if model.task.binary else mx.softmax(logits, axis=1)
    return np.array(probs)


def _size(module) -> int:
    from mlx.utils import tree_flatten

    return sum(v.size for _, v in tree_flatten(module.trainable_parameters()))


def n_params(model: Model) -> int:
    return _size(model.net)


def layer_params(model: Model) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, layer in model.keyed:  # a residual block's layers count towards its top-level key
        top = top_level_key(key)
        out[top] = out.get(top, 0) + _size(layer)
    return out


def peak_device_mib(model: Model) -> float | None:
    return None  # the CPU build: no device memory apart from the host's (peak RSS covers it)


def sync(model: Model) -> None:
    mx.eval(model.net.parameters())


def get_weights(model: Model) -> dict[str, np.ndarray]:
    out = {}
    for key, layer in model.keyed:
        if isinstance(layer, nn.Linear):
            out[f"{key}.kernel"], out[f"{key}.bias"] = np.array(layer.weight).T, np.array(layer.bias)
        elif isinstance(layer, nn.Conv2d):  # (out, kh, kw, in) -> HWIO
            out[f"{key}.kernel"], out[f"{key}.bias"] = (
                np.array(layer.weight).transpose(1, 2, 3, 0),
                np.array(layer.bias),
            )
        elif isinstance(layer, nn.Embedding):
            out[f"{key}.embeddings"] = np.array(layer.weight)
        elif isinstance(layer, _TokenAndPosition):
            out[f"{key}.token_embeddings"] = np.array(layer.token.weight)
            out[f"{key}.position_embeddings"] = np.array(layer.position.weight)
        elif isinstance(layer, _SelfAttention):  # Linear (out, in) -> Keras's (d, heads, key_dim) kernels
            att, hk = layer.att, (layer.heads, layer.key_dim)
            for n, proj in (("query", att.query_proj), ("key", att.key_proj), ("value", att.value_proj)):
                out[f"{key}.{n}_kernel"] = np.array(proj.weight).T.reshape(-1, *hk)
                out[f"{key}.{n}_bias"] = np.array(proj.bias).reshape(hk)
            out[f"{key}.output_kernel"] = np.array(att.out_proj.weight).T.reshape(*hk, -1)
            out[f"{key}.output_bias"] = np.array(att.out_proj.bias)
        elif isinstance(layer, nn.LayerNorm):
            out[f"{key}.gamma"], out[f"{key}.beta"] = np.array(layer.weight), np.array(layer.bias)
        elif isinstance(layer, _LastHidden):
            out[f"{key}.kernel"] = np.array(layer.lstm.Wx).T
            out[f"{key}.recurrent_kernel"] = np.array(layer.lstm.Wh).T
            out[f"{key}.bias"] = np.array(layer.lstm.bias)
    return {k: np.array(v, np.float32, order="C") for k, v in out.items()}  # copies, not views


def set_weights(model: Model, weights: dict[str, np.ndarray]) -> Model:
    def a(v):
        return mx.array(np.ascontiguousarray(v, np.float32))

    for key, layer in model.keyed:
        if isinstance(layer, nn.Linear):
            layer.weight, layer.bias = a(weights[f"{key}.kernel"].T), a(weights[f"{key}.bias"])
        elif isinstance(layer, nn.Conv2d):  # HWIO -> (out, kh, kw, in)
            layer.weight, layer.bias = a(weights[f"{key}.kernel"].transpose(3, 0, 1, 2)), a(weights[f"{key}.bias"])
        elif isinstance(layer, nn.Embedding):
            layer.weight = a(weights[f"{key}.embeddings"])
        elif isinstance(layer, _TokenAndPosition):
            layer.token.weight = a(weights[f"{key}.token_embeddings"])
            layer.position.weight = a(weights[f"{key}.position_embeddings"])
        elif isinstance(layer, _SelfAttention):
            att, width = layer.att, layer.heads * layer.key_dim
            for n, proj in (("query", att.query_proj), ("key", att.key_proj), ("value", att.value_proj)):
                proj.weight = a(weights[f"{key}.{n}_kernel"].reshape(-1, width).T)
                proj.bias = a(weights[f"{key}.{n}_bias"].reshape(width))
            att.out_proj.weight = a(weights[f"{key}.output_kernel"].reshape(width, -1).T)
            att.out_proj.bias = a(weights[f"{key}.output_bias"])
        elif isinstance(layer, nn.LayerNorm):
            layer.weight, layer.bias = a(weights[f"{key}.gamma"]), a(weights[f"{key}.beta"])
        elif isinstance(layer, _LastHidden):
            layer.lstm.Wx = a(weights[f"{key}.kernel"].T)
            layer.lstm.Wh = a(weights[f"{key}.recurrent_kernel"].T)
            layer.lstm.bias = a(weights[f"{key}.bias"])
    mx.eval(model.net.parameters())
    return model
