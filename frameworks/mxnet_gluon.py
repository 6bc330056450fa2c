"""MXNet adapter: Gluon HybridSequential, hybridized, Trainer with Adam, in its own environment.

MXNet 1.9.1 (the last release; Apache retired the project to the Attic in 2023) needs numpy<1.24,
so it runs in .venv-mxnet with numpy 1.23.5; the harness starts its workers with that interpreter.
Traps between Gluon and the canonical (Keras) layout, handled here:
- Gluon's default initialiser is Uniform(0.07), not Keras's, and mx.init.Orthogonal scales by 1.414
  unless told: Glorot (Xavier uniform, avg fans, magnitude 3), orthogonal with scale 1, zeros,
  LSTMBias(forget 1) and Uniform(0.05) are set explicitly.
- CPU convolutions are NCHW: `prepare` permutes images once, and the rows of the Dense kernel after
  Flatten are permuted on get/set ((C, H, W) order vs Keras's (H, W, C)); Dense stores (out, in).
- Gluon's LSTM keeps two biases (i2h, h2h); Keras one. Both trainable would move their sum twice as
  fast under Adam (a different model, as in PyTorch): h2h is frozen at zero (grad_req "null").
  Exported as the sum, imported into i2h. Its gate order i, f, c, o is the canonical one.
- Adam's epsilon defaults to 1e-8: the recipe's 1e-7 is passed. MXNet adds it before bias correction,
  as Keras does, so no rescaling is needed (PyTorch and Optax need it).
- Execution is asynchronous: `sync` calls mx.nd.waitall(), or every clock would stop early.
- MKL-DNN's log_softmax, which gluon.loss.SoftmaxCrossEntropyLoss calls, is off by 3.3e-6 (measured on
  normal logits; 8e-8 with MXNET_MKLDNN_ENABLED=0), and its gradient by 2.3e-6: 40 times float32's
  rounding, enough to fail the Transformer's parity trajectory (2.7e-4, tolerance 1e-4). The categorical
  loss is the same cross-entropy on a log-softmax written out (max-shifted, exp, sum, log), 4e-8.
hybridize(static_alloc=True, static_shape=True), measured against plain hybridize() (2 threads, two
runs each): MNIST CNN 30 batches 0.49/0.49 s vs 0.52/0.63 s; IMDB LSTM 60 batches 3.03/2.73 s vs
3.24/3.05 s. Kept: 5-22 % less time.
"""

from __future__ import annotations

import os
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # numpy 1.23 + MXNet 1.9 chatter
warnings.filterwarnings("ignore", category=UserWarning, module="mxnet")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402
from mxnet import autograd, gluon  # noqa: E402
from mxnet.gluon import nn, rnn  # noqa: E402

from tasks.spec import (  # noqa: E402
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
    nchw_flatten_rows,
    shapes_through,
    top_level_key,
)

LSTM_BIAS_VECTORS = 1  # trainable: h2h_bias is stored but frozen at zero
GLOROT = mx.init.Xavier(rnd_type="uniform", factor_type="avg", magnitude=3)  # = sqrt(6 / (in + out))
_ctx = mx.cpu()


class _LastStep(gluon.HybridBlock):
    """Gluon's fused LSTM over (batch, time, features), returning the last hidden state."""

    def __init__(self, n_in: int, units: int):
        super().__init__()
        with self.name_scope():
            self.lstm = rnn.LSTM(
                units,
                layout="NTC",
                input_size=n_in,
                i2h_weight_initializer=GLOROT,
                h2h_weight_initializer=mx.init.Orthogonal(scale=1.0),  # its default scale is 1.414
                i2h_bias_initializer=mx.init.LSTMBias(1.0),
                h2h_bias_initializer="zeros",
            )

    def hybrid_forward(self, F, x):
        return F.squeeze(F.slice_axis(self.lstm(x), axis=1, begin=-1, end=None), axis=1)


class _TokenAndPosition(gluon.HybridBlock):
    def __init__(self, spec: TokenAndPositionEmbedding):
        super().__init__()
        with self.name_scope():
            uniform = mx.init.Uniform(0.05)
            self.token = nn.Embedding(spec.vocab, spec.dim, weight_initializer=uniform)
            self.position = nn.Embedding(spec.maxlen, spec.dim, weight_initializer=uniform)

    def hybrid_forward(self, F, x):
        positions = F.contrib.arange_like(x, axis=1)  # 0..T-1, symbolic: the block hybridizes
        return F.broadcast_add(self.token(x), F.expand_dims(self.position(positions), axis=0))


class _SelfAttention(gluon.HybridBlock):
    """Keras's MultiHeadAttention(heads, key_dim) as self-attention: Gluon 1.9 has no attention layer (GluonNLP
    had one), so these are the few lines a Gluon user writes: four Dense projections (flatten=False, the
    (out, in) weights Keras's kernels transposed and reshaped) and batch_dot over heads x batch."""

    def __init__(self, d: int, spec: MultiHeadAttention):
        super().__init__()
        self.heads, self.key_dim = spec.heads, spec.key_dim
        width = spec.heads * spec.key_dim
        with self.name_scope():
            self.query, self.key, self.value = (
                nn.Dense(width, flatten=False, in_units=d, weight_initializer=GLOROT) for _ in range(3)
            )
            self.output = nn.Dense(d, flatten=False, in_units=width, weight_initializer=GLOROT)

    def _split(self, F, t):  # (b, n, heads * k) -> (b * heads, n, k)
        return F.reshape(F.transpose(F.reshape(t, (0, 0, self.heads, -1)), axes=(0, 2, 1, 3)), (-3, 0, 0))

    def hybrid_forward(self, F, x):
        q, k, v = (self._split(F, p(x)) for p in (self.query, self.key, self.value))
        a = F.softmax(F.batch_dot(q, k, transpose_b=True) / self.key_dim**0.5, axis=-1)  # over the keys
        o = F.reshape(F.batch_dot(a, v), (-4, -1, self.heads, 0, 0))  # (b, heads, n, k)
        return self.output(F.reshape(F.transpose(o, axes=(0, 2, 1, 3)), (0, 0, -3)))


class _Residual(gluon.HybridBlock):
    def __init__(self, body):
        super().__init__()
        with self.name_scope():
            self.body = body

    def hybrid_forward(self, F, x):
        return x + self.body(x)


class _CrossEntropy(gluon.HybridBlock):
    """SoftmaxCrossEntropyLoss's math on a log-softmax written out: MKL-DNN's own is imprecise (module docstring)."""

    def hybrid_forward(self, F, logits, labels):
        s = F.broadcast_sub(logits, F.max(logits, axis=1, keepdims=True))  # no exp overflows
        return F.log(F.sum(F.exp(s), axis=1)) - F.pick(s, labels, axis=1)


class _MeanOverTime(gluon.HybridBlock):
    def hybrid_forward(self, F, x):
        return F.mean(x, axis=1)  # GlobalAveragePooling1D, no mask (padding counts, as in the example)


def versions() -> dict[str, str]:
    return {
        "mxnet": mx.__version__,
        "mxnet_status": "retired: Apache Attic since 2023, last release 1.9.1",
        "mkldnn": str(mx.runtime.Features().is_enabled("MKLDNN")),
    }


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    # MXNet sizes its OpenMP pool from OMP_NUM_THREADS at import (unset: ONE thread); the harness sets it.
    global _ctx
    if tier != "default":  # no candidates: its documented speed path is already the default (settings)
        raise ValueError(f"mxnet has no tier {tier!r}: its only one is default")
    if precision not in ("fp32", "tf32"):
        raise RuntimeError(f"--precision {precision}: the MXNet adapter implements fp32 and tf32 only")
    # Tensor cores (TF32 on Ampere+) for cuBLAS/cuDNN only where asked; read by MXNet at each call.
    os.environ["MXNET_CUDA_ALLOW_TENSOR_CORE"] = "1" if precision == "tf32" else "0"
    if deterministic:
        os.environ["MXNET_ENFORCE_DETERMINISM"], os.environ["MXNET_CUDNN_AUTOTUNE_DEFAULT"] = "1", "0"
    if device == "gpu" and mx.context.num_gpus() == 0:
        raise RuntimeError("--device gpu asked for, but MXNet sees no GPU")
    _ctx = mx.gpu() if device != "cpu" and mx.context.num_gpus() else mx.cpu()
    return str(_ctx)


def settings() -> dict[str, str]:
    return {
        # No tuned-tier candidates: hybridize(static_alloc, static_shape) is already on (measured,
        # see above), and MXNet 1.9 documents no fused or multi-tensor Adam for Gluon's Trainer.
        "execution": "hybridize(static_alloc=True, static_shape=True)",
        "optimizer": "gluon.Trainer('adam')",
        "loss": "categorical: cross-entropy on a written-out log-softmax (MKL-DNN's is 40x less precise)",
        "data_placement": f"{_ctx} NDArrays, prepared once before the clock",
        "threads": f"OpenMP {os.environ.get('OMP_NUM_THREADS', 'unset')}",
    }


def _blocks(seq, layers, shapes, prefix: str, keyed: list) -> None:
    """Add a layer list's blocks to `seq` (a residual block's body too), recording each weighted one's key."""
    for i, (layer, shape) in enumerate(zip(layers, shapes, strict=False)):
        key = prefix + layer_key(i, layer)
        act = "relu" if getattr(layer, "activation", "linear") == "relu" else None  # logits out
        if isinstance(layer, Dense):  # flatten=False keeps a sequence's time axis (the Transformer's FFN)
            b = nn.Dense(layer.units, act, flatten=len(shape) == 1, in_units=shape[-1], weight_initializer=GLOROT)
        elif isinstance(layer, Conv2D):
            b = nn.Conv2D(layer.filters, layer.kernel, activation=act, in_channels=shape[-1], weight_initializer=GLOROT)
        elif isinstance(layer, MaxPool2D):
            b = nn.MaxPool2D(layer.pool, layer.pool)
        elif isinstance(layer, Flatten):
            b = nn.Flatten()  # (C, H, W) order: see nchw_flatten_rows on get/set
        elif isinstance(layer, Dropout):
            b = nn.Dropout(layer.rate)
        elif isinstance(layer, Embedding):
            b = nn.Embedding(layer.vocab, layer.dim, weight_initializer=mx.init.Uniform(0.05))
        elif isinstance(layer, LSTM):
            b = _LastStep(shape[-1], layer.units)
        elif isinstance(layer, TokenAndPositionEmbedding):
            b = _TokenAndPosition(layer)
        elif isinstance(layer, MultiHeadAttention):
            b = _SelfAttention(shape[-1], layer)
        elif isinstance(layer, LayerNorm):  # gamma 1, beta 0 by default; Gluon's epsilon default is 1e-5
            b = nn.LayerNorm(epsilon=layer.eps, in_channels=shape[-1])
        elif isinstance(layer, GlobalAveragePooling1D):
            b = _MeanOverTime()
        elif isinstance(layer, Residual):
            body = nn.HybridSequential()
            with body.name_scope():
                _blocks(body, layer.layers, shapes_through(layer.layers, shape), key + ".", keyed)
            b = _Residual(body)
        else:
            raise ValueError(f"the MXNet adapter cannot build {type(layer).__name__}")
        if isinstance(
            layer, (Dense, Conv2D, Embedding, LSTM, TokenAndPositionEmbedding, MultiHeadAttention, LayerNorm)
        ):
            keyed.append((key, layer, b))
        seq.add(b)


def build(task: Task, seed: int):
    mx.random.seed(seed)
    np.random.seed(seed)  # mx.init.Orthogonal draws with numpy
    net, keyed = nn.HybridSequential(), []
    with net.name_scope():
        _blocks(net, task.layers, input_shapes(task), "", keyed)
    net.initialize(ctx=_ctx)  # biases: Gluon's default bias initialiser is zeros
    for name, p in net.collect_params().items():
        if name.endswith("h2h_bias"):
            p.grad_req = "null"  # one trainable LSTM bias, as Keras (see the module docstring)
    net.hybridize(static_alloc=True, static_shape=True)
    r = task.recipe
    trainable = [p for p in net.collect_params().values() if p.grad_req != "null"]
    trainer = gluon.Trainer(
        trainable, "adam", {"learning_rate": r.lr, "beta1": r.beta1, "beta2": r.beta2, "epsilon": r.eps}
    )
    binary = task.binary
    loss = gluon.loss.SigmoidBinaryCrossEntropyLoss() if binary else _CrossEntropy()
    loss.hybridize(static_alloc=True, static_shape=True)
    return {"net": net, "trainer": trainer, "loss": loss, "task": task, "binary": binary, "keyed": keyed}


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x  # NHWC -> NCHW
    return mx.nd.array(x, ctx=_ctx, dtype=x.dtype), (None if y is None else mx.nd.array(y, ctx=_ctx))


def _hits(m, out, y):
    pred = (out[:, 0] > 0) if m["binary"] else out.argmax(axis=1)
    return (pred == y).sum()


def train_epoch(m, data, order: np.ndarray):
    x, y = data
    bs, idx = m["task"].recipe.batch_size, mx.nd.array(order, ctx=_ctx, dtype="int64")
    loss_sum, hits = mx.nd.zeros(1, ctx=_ctx), mx.nd.zeros(1, ctx=_ctx)
    for i in range(0, len(order), bs):
        b = idx[i : i + bs]
        xb, yb = x.take(b), y.take(b)
        with autograd.record():  # recording also turns Dropout on
            out = m["net"](xb)
            loss = m["loss"](out, yb)
        loss.backward()
        m["trainer"].step(len(order[i : i + bs]))  # Gluon losses are per example: step divides by the batch
        loss_sum += loss.sum()  # queued, not synchronised
        hits += _hits(m, out, yb)
    return m, loss_sum.asscalar() / len(order), hits.asscalar() / len(order)


def evaluate(m, data):
    x, y = data
    bs, loss_sum, hits = m["task"].recipe.batch_size, mx.nd.zeros(1, ctx=_ctx), mx.nd.zeros(1, ctx=_ctx)
    for i in range(0, len(x), bs):
        out = m["net"](x[i : i + bs])
        loss_sum += m["loss"](out, y[i : i + bs]).sum()
        hits += _hits(m, out, y[i : i + bs])
    return loss_sum.asscalar() / len(x), hits.asscalar() / len(x)


def predict(m, data) -> np.ndarray:
    x, bs = data[0], m["task"].recipe.batch_size
    logits = mx.nd.concat(*[m["net"](x[i : i + bs]) for i in range(0, len(x), bs)], dim=0)
    return (mx.nd.sigmoid(logits) if m["binary"] else mx.nd.softmax(logits)).asnumpy()


def n_params(m) -> int:
    return sum(int(np.prod(p.shape)) for p in m["net"].collect_params().values() if p.grad_req != "null")


def layer_params(m) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, _, b in m["keyed"]:  # a residual block's layers count towards its top-level key
        top = top_level_key(key)
        out[top] = out.get(top, 0) + sum(
            int(np.prod(p.shape)) for p in b.collect_params().values() if p.grad_req != "null"
        )
    return out


def peak_device_mib(m) -> float | None:
    # MXNet keeps no peak counter: the GPU's used memory (NVML's view via MXNet) at the time of the call.
    if _ctx.device_type != "gpu":
        return None
    free, total = mx.context.gpu_memory_info(_ctx.device_id)
    return (total - free) / 2**20


def sync(m) -> None:
    mx.nd.waitall()


def _lstm_params(block):
    ps = block.lstm.collect_params()
    return {
        suffix: next(p for k, p in ps.items() if k.endswith(suffix))
        for suffix in ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")
    }


def get_weights(m) -> dict[str, np.ndarray]:
    out = {}
    for key, spec, block in m["keyed"]:
        if isinstance(spec, Dense):
            k, rows = block.weight.data().asnumpy().T, nchw_flatten_rows(m["task"], int(key.split(".")[0]))
            out[f"{key}.kernel"], out[f"{key}.bias"] = (k if rows is None else k[rows]), block.bias.data().asnumpy()
        elif isinstance(spec, Conv2D):
            out[f"{key}.kernel"] = block.weight.data().asnumpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
            out[f"{key}.bias"] = block.bias.data().asnumpy()
        elif isinstance(spec, Embedding):
            out[f"{key}.embeddings"] = block.weight.data().asnumpy()
        elif isinstance(spec, TokenAndPositionEmbedding):
            out[f"{key}.token_embeddings"] = block.token.weight.data().asnumpy()
            out[f"{key}.position_embeddings"] = block.position.weight.data().asnumpy()
        elif isinstance(spec, MultiHeadAttention):  # Dense (out, in) -> Keras's (d, heads, key_dim)
            hk = (spec.heads, spec.key_dim)
            for n in ("query", "key", "value"):
                out[f"{key}.{n}_kernel"] = getattr(block, n).weight.data().asnumpy().T.reshape(-1, *hk)
                out[f"{key}.{n}_bias"] = getattr(block, n).bias.data().asnumpy().reshape(hk)
            out[f"{key}.output_kernel"] = block.output.weight.data().asnumpy().T.reshape(*hk, -1)
            out[f"{key}.output_bias"] = block.output.bias.data().asnumpy()
        elif isinstance(spec, LayerNorm):
            out[f"{key}.gamma"], out[f"{key}.beta"] = block.gamma.data().asnumpy(), block.beta.data().asnumpy()
        else:
            p = _lstm_params(block)
            out[f"{key}.kernel"] = p["i2h_weight"].data().asnumpy().T
            out[f"{key}.recurrent_kernel"] = p["h2h_weight"].data().asnumpy().T
            out[f"{key}.bias"] = (p["i2h_bias"].data() + p["h2h_bias"].data()).asnumpy()
    return {k: np.array(v, np.float32, order="C") for k, v in out.items()}  # copies, as every adapter


def set_weights(m, weights: dict[str, np.ndarray]):
    def put(param, value):
        param.set_data(mx.nd.array(np.ascontiguousarray(value), ctx=_ctx))

    for key, spec, block in m["keyed"]:
        if isinstance(spec, Dense):
            k, rows = weights[f"{key}.kernel"], nchw_flatten_rows(m["task"], int(key.split(".")[0]))
            put(block.weight, (k if rows is None else k[np.argsort(rows)]).T)
            put(block.bias, weights[f"{key}.bias"])
        elif isinstance(spec, Conv2D):
            put(block.weight, weights[f"{key}.kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
            put(block.bias, weights[f"{key}.bias"])
        elif isinstance(spec, Embedding):
            put(block.weight, weights[f"{key}.embeddings"])
        elif isinstance(spec, TokenAndPositionEmbedding):
            put(block.token.weight, weights[f"{key}.token_embeddings"])
            put(block.position.weight, weights[f"{key}.position_embeddings"])
        elif isinstance(spec, MultiHeadAttention):
            width = spec.heads * spec.key_dim
            for n in ("query", "key", "value"):
                put(getattr(block, n).weight, weights[f"{key}.{n}_kernel"].reshape(-1, width).T)
                put(getattr(block, n).bias, weights[f"{key}.{n}_bias"].reshape(width))
            put(block.output.weight, weights[f"{key}.output_kernel"].reshape(width, -1).T)
            put(block.output.bias, weights[f"{key}.output_bias"])
        elif isinstance(spec, LayerNorm):
            put(block.gamma, weights[f"{key}.gamma"])
            put(block.beta, weights[f"{key}.beta"])
        else:
            p = _lstm_params(block)
            put(p["i2h_weight"], weights[f"{key}.kernel"].T)
            put(p["h2h_weight"], weights[f"{key}.recurrent_kernel"].T)
            put(p["i2h_bias"], weights[f"{key}.bias"])
            put(p["h2h_bias"], np.zeros_like(weights[f"{key}.bias"]))
    return m
