"""The numpy reference, training: gradients by hand and Keras's Adam, no framework, float64.

So that `harness.py parity` can hold every framework's 10-step trajectory on the Transformer task against
an independent oracle, not only against the other frameworks' consensus. Covers the layers that task
uses (Dense, Dropout at rate 0, token-and-position embedding, multi-head self-attention, LayerNorm,
residual blocks, global average pooling); tests/test_reference_train.py checks every gradient against
central finite differences of tasks.reference.forward.
"""

from __future__ import annotations

import numpy as np

from tasks.reference import PROJECTIONS, _act, attention, layer_norm
from tasks.spec import (
    Dense,
    Dropout,
    GlobalAveragePooling1D,
    LayerNorm,
    Loss,
    MultiHeadAttention,
    Residual,
    Task,
    TokenAndPositionEmbedding,
    layer_key,
)


def _forward(layer, w: dict, p: str, h: np.ndarray) -> tuple[np.ndarray, dict]:
    """One layer's output and what its backward needs."""
    if isinstance(layer, Dense):
        z = h @ w[f"{p}.kernel"] + w[f"{p}.bias"]
        return _act(z, layer.activation), {"x": h, "z": z}
    if isinstance(layer, TokenAndPositionEmbedding):
        return w[f"{p}.token_embeddings"][h] + w[f"{p}.position_embeddings"][: h.shape[1]], {"x": h}
    if isinstance(layer, MultiHeadAttention):
        c = attention(w, p, h, layer)
        return c["y"], {**c, "x": h}
    if isinstance(layer, LayerNorm):
        xhat, inv = layer_norm(h, layer.eps)
        return xhat * w[f"{p}.gamma"] + w[f"{p}.beta"], {"xhat": xhat, "inv": inv}
    if isinstance(layer, Residual):
        out, caches = h, []
        for j, sub in enumerate(layer.layers):
            out, c = _forward(sub, w, f"{p}.{layer_key(j, sub)}", out)
            caches.append(c)
        return h + out, {"caches": caches}
    if isinstance(layer, GlobalAveragePooling1D):
        return h.mean(axis=1), {"length": h.shape[1]}
    if isinstance(layer, Dropout):
        if layer.rate:
            raise ValueError("the training reference runs dropout off (rate 0), as parity does")
        return h, {}
    raise TypeError(f"the training reference has no layer {type(layer).__name__}")


def _backward(layer, w: dict, p: str, c: dict, dy: np.ndarray, g: dict) -> np.ndarray:
    """Accumulate the layer's weight gradients into g; return the gradient of its input."""
    if isinstance(layer, Dense):
        if layer.activation == "relu":
            dy = dy * (c["z"] > 0)
        x = c["x"]
        g[f"{p}.kernel"] = g.get(f"{p}.kernel", 0) + x.reshape(-1, x.shape[-1]).T @ dy.reshape(-1, dy.shape[-1])
        g[f"{p}.bias"] = g.get(f"{p}.bias", 0) + dy.reshape(-1, dy.shape[-1]).sum(0)
        return dy @ w[f"{p}.kernel"].T
    if isinstance(layer, TokenAndPositionEmbedding):
        tok = np.zeros_like(w[f"{p}.token_embeddings"])
        np.add.at(tok, c["x"], dy)  # a token repeated in the batch gets the sum of its rows' gradients
        pos = np.zeros_like(w[f"{p}.position_embeddings"])
        pos[: dy.shape[1]] = dy.sum(0)
        g[f"{p}.token_embeddings"], g[f"{p}.position_embeddings"] = tok, pos
        return np.zeros(0)  # integer inputs have no gradient
    if isinstance(layer, MultiHeadAttention):
        x, a, o = c["x"], c["a"], c["o"]
        g[f"{p}.output_kernel"] = np.einsum("blhk,bld->hkd", o, dy)
        g[f"{p}.output_bias"] = dy.sum((0, 1))
        do = np.einsum("bld,hkd->blhk", dy, w[f"{p}.output_kernel"])
        da = np.einsum("blhk,bmhk->bhlm", do, c["v"])
        grads = {"value": np.einsum("bhlm,blhk->bmhk", a, do)}
        ds = a * (da - (da * a).sum(-1, keepdims=True)) / np.sqrt(layer.key_dim)  # softmax's Jacobian, scaled
        grads["query"] = np.einsum("bhlm,bmhk->blhk", ds, c["k"])
        grads["key"] = np.einsum("bhlm,blhk->bmhk", ds, c["q"])
        dx = np.zeros_like(x)
        for n in PROJECTIONS:
            g[f"{p}.{n}_kernel"] = np.einsum("bld,blhk->dhk", x, grads[n])
            g[f"{p}.{n}_bias"] = grads[n].sum((0, 1))
            dx += np.einsum("blhk,dhk->bld", grads[n], w[f"{p}.{n}_kernel"])
        return dx
    if isinstance(layer, LayerNorm):
        xhat, inv = c["xhat"], c["inv"]
        lead = tuple(range(dy.ndim - 1))
        g[f"{p}.gamma"], g[f"{p}.beta"] = (dy * xhat).sum(lead), dy.sum(lead)
        dxhat = dy * w[f"{p}.gamma"]
        n = dy.shape[-1]
        return inv / n * (n * dxhat - dxhat.sum(-1, keepdims=True) - xhat * (dxhat * xhat).sum(-1, keepdims=True))
    if isinstance(layer, Residual):
        d = dy
        for j in reversed(range(len(layer.layers))):
            sub = layer.layers[j]
            d = _backward(sub, w, f"{p}.{layer_key(j, sub)}", c["caches"][j], d, g)
        return dy + d
    if isinstance(layer, GlobalAveragePooling1D):
        return np.repeat(dy[:, None, :], c["length"], axis=1) / c["length"]
    return dy  # Dropout at rate 0


def loss_and_grads(task: Task, w: dict, x: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """The batch's mean cross-entropy and the gradient of every canonical weight."""
    if task.recipe.loss != Loss.CATEGORICAL or task.layers[-1].activation != "softmax":
        raise ValueError("the training reference covers softmax outputs with integer labels")
    h, caches = x, []
    for i, layer in enumerate(task.layers):
        h, c = _forward(layer, w, layer_key(i, layer), h)
        caches.append(c)
    n = len(y)
    loss = float(-np.log(h[np.arange(n), y]).mean())
    dz = h.copy()
    dz[np.arange(n), y] -= 1
    dz /= n  # softmax and cross-entropy together: d loss / d logits
    last = task.layers[-1]
    key = layer_key(len(task.layers) - 1, last)
    g: dict = {}
    xin = caches[-1]["x"]
    g[f"{key}.kernel"], g[f"{key}.bias"] = xin.T @ dz, dz.sum(0)
    d = dz @ w[f"{key}.kernel"].T
    for i in reversed(range(len(task.layers) - 1)):
        layer = task.layers[i]
        d = _backward(layer, w, layer_key(i, layer), caches[i], d, g)
    return loss, g


def train(task: Task, weights: dict[str, np.ndarray], xs: np.ndarray, ys: np.ndarray):
    """Adam steps on the batches xs[i], ys[i], Keras's update (eps added before the bias correction,
    folded into the step size): the per-step losses and the final weights (float64)."""
    r = task.recipe
    w = {k: v.astype(np.float64) for k, v in weights.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v2 = {k: np.zeros_like(v) for k, v in w.items()}
    losses = []
    for t, (x, y) in enumerate(zip(xs, ys, strict=True), start=1):
        loss, g = loss_and_grads(task, w, x, y)
        losses.append(loss)
        alpha = r.lr * np.sqrt(1 - r.beta2**t) / (1 - r.beta1**t)
        for k in w:
            m[k] = r.beta1 * m[k] + (1 - r.beta1) * g[k]
            v2[k] = r.beta2 * v2[k] + (1 - r.beta2) * g[k] ** 2
            w[k] = w[k] - alpha * m[k] / (np.sqrt(v2[k]) + r.eps)
    return np.asarray(losses), w
