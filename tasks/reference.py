"""An independent numpy reference: Keras-default initial weights and the forward pass, no framework.

Adapters are checked against this, not against themselves: canonical weights -> predictions.
Computed in float64, so float32 frameworks should agree to about 1e-6.
"""

from __future__ import annotations

import numpy as np

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
    canonical_shapes,
    layer_key,
)


def glorot_limit(kind: str, shape: tuple[int, ...]) -> float:
    """Keras's Glorot-uniform bound sqrt(6 / (fan_in + fan_out)) for a kernel of this canonical name and shape."""
    if kind in ("query_kernel", "key_kernel", "value_kernel"):  # EinsumDense's axes: d in, heads x key_dim out
        fan_in, fan_out = shape[0], int(np.prod(shape[1:]))
    elif kind == "output_kernel":  # heads x key_dim in, d out
        fan_in, fan_out = int(np.prod(shape[:-1])), shape[-1]
    else:  # a conv kernel's leading axes (HW) count as its receptive field
        receptive = int(np.prod(shape[:-2]))
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
    return float(np.sqrt(6.0 / (fan_in + fan_out)))


def init_weights(task: Task, seed: int) -> dict[str, np.ndarray]:
    """Canonical weights drawn from Keras's default initialisers."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in canonical_shapes(task).items():
        kind = name.rsplit(".", 1)[1]
        layer = task.layers[int(name.split(".")[0])]
        if kind == "recurrent_kernel":  # orthogonal: rows of the (h, 4h) matrix orthonormal
            q, r = np.linalg.qr(rng.standard_normal((shape[1], shape[0])))
            w = (q * np.sign(np.diag(r))).T
        elif kind.endswith("kernel"):  # Glorot uniform with Keras's fans
            lim = glorot_limit(kind, shape)
            w = rng.uniform(-lim, lim, shape)
        elif kind.endswith("embeddings"):
            w = rng.uniform(-0.05, 0.05, shape)
        elif kind == "gamma":
            w = np.ones(shape)
        else:  # biases and beta: zero, and an LSTM's forget gate (the second quarter) at 1
            w = np.zeros(shape)
            if isinstance(layer, LSTM):
                w[layer.units : 2 * layer.units] = 1.0
        out[name] = w.astype(np.float32)
    return out


def _act(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return 1 / (1 + np.exp(-x))
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return x


PROJECTIONS = ("query", "key", "value")


def attention(w: dict, p: str, h: np.ndarray, layer: MultiHeadAttention) -> dict[str, np.ndarray]:
    """Self-attention's intermediate arrays (q, k, v, weights a, per-head outputs o) and its output y."""
    q, k, v = (
        np.einsum("bld,dhk->blhk", h, w[f"{p}.{n}_kernel"]) + w[f"{p}.{n}_bias"] for n in ("query", "key", "value")
    )
    a = _act(np.einsum("blhk,bmhk->bhlm", q, k) / np.sqrt(layer.key_dim), "softmax")  # over the keys m
    o = np.einsum("bhlm,bmhk->blhk", a, v)
    return {
        "q": q,
        "k": k,
        "v": v,
        "a": a,
        "o": o,
        "y": np.einsum("blhk,hkd->bld", o, w[f"{p}.output_kernel"]) + w[f"{p}.output_bias"],
    }


def layer_norm(h: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(x - mean) / sqrt(var + eps) over the last axis (biased variance), and 1 / sqrt(var + eps)."""
    mu = h.mean(-1, keepdims=True)
    inv = 1 / np.sqrt(((h - mu) ** 2).mean(-1, keepdims=True) + eps)
    return (h - mu) * inv, inv


def apply(layer, w: dict[str, np.ndarray], p: str, h: np.ndarray) -> np.ndarray:
    """One layer (canonical key p) in inference mode: dropout is the identity."""
    if isinstance(layer, Dense):
        return _act(h @ w[f"{p}.kernel"] + w[f"{p}.bias"], layer.activation)
    if isinstance(layer, Conv2D):  # VALID cross-correlation, NHWC x HWIO
        win = np.lib.stride_tricks.sliding_window_view(h, layer.kernel, axis=(1, 2))
        return _act(np.einsum("nhwcij,ijco->nhwo", win, w[f"{p}.kernel"]) + w[f"{p}.bias"], layer.activation)
    if isinstance(layer, MaxPool2D):
        (ph, pw), (n, hh, ww, c) = layer.pool, h.shape
        return h[:, : hh // ph * ph, : ww // pw * pw].reshape(n, hh // ph, ph, ww // pw, pw, c).max(axis=(2, 4))
    if isinstance(layer, Flatten):
        return h.reshape(len(h), -1)  # NHWC order, as Keras
    if isinstance(layer, Embedding):
        return w[f"{p}.embeddings"][h]
    if isinstance(layer, LSTM):
        u = layer.units
        state, cell = np.zeros((len(h), u)), np.zeros((len(h), u))
        for t in range(h.shape[1]):
            z = h[:, t] @ w[f"{p}.kernel"] + state @ w[f"{p}.recurrent_kernel"] + w[f"{p}.bias"]
            i_, f_, g_, o_ = (z[:, k * u : (k + 1) * u] for k in range(4))  # gates i, f, g, o
            cell = _act(f_, "sigmoid") * cell + _act(i_, "sigmoid") * np.tanh(g_)
            state = _act(o_, "sigmoid") * np.tanh(cell)
        return state
    if isinstance(layer, TokenAndPositionEmbedding):
        return w[f"{p}.token_embeddings"][h] + w[f"{p}.position_embeddings"][: h.shape[1]]
    if isinstance(layer, MultiHeadAttention):
        return attention(w, p, h, layer)["y"]
    if isinstance(layer, LayerNorm):
        return layer_norm(h, layer.eps)[0] * w[f"{p}.gamma"] + w[f"{p}.beta"]
    if isinstance(layer, Residual):
        out = h
        for j, sub in enumerate(layer.layers):
            out = apply(sub, w, f"{p}.{layer_key(j, sub)}", out)
        return h + out
    if isinstance(layer, GlobalAveragePooling1D):
        return h.mean(axis=1)
    if isinstance(layer, Dropout):
        return h
    raise TypeError(f"the numpy reference has no layer {type(layer).__name__}")


def forward(task: Task, weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The model's output probabilities in inference mode (dropout is the identity)."""
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    h = x.astype(np.float64) if task.input_dtype == "float32" else x
    for i, layer in enumerate(task.layers):
        h = apply(layer, w, layer_key(i, layer), h)
    return h


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Norm-wise relative difference max|a - b| / max|b| (elementwise ratios explode near zero)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))
