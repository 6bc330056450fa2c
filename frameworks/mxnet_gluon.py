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
    MaxPool2D,
    Task,
    input_shapes,
    layer_key,
    nchw_flatten_rows,
)  # fmt: skip

LSTM_BIAS_VECTORS = 1  # trainable: h2h_bias is stored but frozen at zero
GLOROT = mx.init.Xavier(rnd_type="uniform", factor_type="avg", magnitude=3)  # = sqrt(6 / (in + out))
_ctx = mx.cpu()


class _LastStep(gluon.HybridBlock):
    """Gluon's fused LSTM over (batch, time, features), returning the last hidden state."""

    def __init__(self, n_in: int, units: int):
        super().__init__()
        with self.name_scope():
            self.lstm = rnn.LSTM(
                units, layout="NTC", input_size=n_in, i2h_weight_initializer=GLOROT,
                h2h_weight_initializer=mx.init.Orthogonal(scale=1.0),  # its default scale is 1.414
                i2h_bias_initializer=mx.init.LSTMBias(1.0), h2h_bias_initializer="zeros",
            )  # fmt: skip

    def hybrid_forward(self, F, x):
        return F.squeeze(F.slice_axis(self.lstm(x), axis=1, begin=-1, end=None), axis=1)


def versions() -> dict[str, str]:
    return {
        "mxnet": mx.__version__,
        "mxnet_status": "retired: Apache Attic since 2023, last release 1.9.1",
        "mkldnn": str(mx.runtime.Features().is_enabled("MKLDNN")),
    }


def configure(threads: int, device: str, precision: str = "fp32", deterministic: bool = False,
              tier: str = "default") -> str:  # fmt: skip
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
        "data_placement": f"{_ctx} NDArrays, prepared once before the clock",
        "threads": f"OpenMP {os.environ.get('OMP_NUM_THREADS', 'unset')}",
    }


def build(task: Task, seed: int):
    mx.random.seed(seed)
    np.random.seed(seed)  # mx.init.Orthogonal draws with numpy
    net = nn.HybridSequential()
    with net.name_scope():
        for layer, shape in zip(task.layers, input_shapes(task), strict=False):
            act = "relu" if getattr(layer, "activation", "linear") == "relu" else None  # logits out
            if isinstance(layer, Dense):
                net.add(nn.Dense(layer.units, act, in_units=shape[-1], weight_initializer=GLOROT))
            elif isinstance(layer, Conv2D):
                net.add(nn.Conv2D(layer.filters, layer.kernel, activation=act, in_channels=shape[-1],
                                  weight_initializer=GLOROT))  # fmt: skip
            elif isinstance(layer, MaxPool2D):
                net.add(nn.MaxPool2D(layer.pool, layer.pool))
            elif isinstance(layer, Flatten):
                net.add(nn.Flatten())  # (C, H, W) order: see nchw_flatten_rows on get/set
            elif isinstance(layer, Dropout):
                net.add(nn.Dropout(layer.rate))
            elif isinstance(layer, Embedding):
                net.add(nn.Embedding(layer.vocab, layer.dim, weight_initializer=mx.init.Uniform(0.05)))
            elif isinstance(layer, LSTM):
                net.add(_LastStep(shape[-1], layer.units))
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
    loss = gluon.loss.SigmoidBinaryCrossEntropyLoss() if binary else gluon.loss.SoftmaxCrossEntropyLoss()
    return {"net": net, "trainer": trainer, "loss": loss, "task": task, "binary": binary}


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
    return {
        key: sum(int(np.prod(p.shape)) for p in b.collect_params().values() if p.grad_req != "null")
        for key, _, b in _weighted(m)
    }


def peak_device_mib(m) -> float | None:
    # MXNet keeps no peak counter: the GPU's used memory (NVML's view via MXNet) at the time of the call.
    if _ctx.device_type != "gpu":
        return None
    free, total = mx.context.gpu_memory_info(_ctx.device_id)
    return (total - free) / 2**20


def sync(m) -> None:
    mx.nd.waitall()


def _weighted(m):
    """(canonical layer key, block) for each layer with weights, in order."""
    for i, (spec, block) in enumerate(zip(m["task"].layers, m["net"], strict=True)):
        if isinstance(spec, (Dense, Conv2D, Embedding, LSTM)):
            yield layer_key(i, spec), spec, block


def _lstm_params(block):
    ps = block.lstm.collect_params()
    return {suffix: next(p for k, p in ps.items() if k.endswith(suffix)) for suffix in
            ("i2h_weight", "h2h_weight", "i2h_bias", "h2h_bias")}  # fmt: skip


def get_weights(m) -> dict[str, np.ndarray]:
    out = {}
    for key, spec, block in _weighted(m):
        if isinstance(spec, Dense):
            k, rows = block.weight.data().asnumpy().T, nchw_flatten_rows(m["task"], int(key.split(".")[0]))
            out[f"{key}.kernel"], out[f"{key}.bias"] = (k if rows is None else k[rows]), block.bias.data().asnumpy()
        elif isinstance(spec, Conv2D):
            out[f"{key}.kernel"] = block.weight.data().asnumpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
            out[f"{key}.bias"] = block.bias.data().asnumpy()
        elif isinstance(spec, Embedding):
            out[f"{key}.embeddings"] = block.weight.data().asnumpy()
        else:
            p = _lstm_params(block)
            out[f"{key}.kernel"] = p["i2h_weight"].data().asnumpy().T
            out[f"{key}.recurrent_kernel"] = p["h2h_weight"].data().asnumpy().T
            out[f"{key}.bias"] = (p["i2h_bias"].data() + p["h2h_bias"].data()).asnumpy()
    return {k: np.array(v, np.float32, order="C") for k, v in out.items()}  # copies, as every adapter


def set_weights(m, weights: dict[str, np.ndarray]):
    def put(param, value):
        param.set_data(mx.nd.array(np.ascontiguousarray(value), ctx=_ctx))

    for key, spec, block in _weighted(m):
        if isinstance(spec, Dense):
            k, rows = weights[f"{key}.kernel"], nchw_flatten_rows(m["task"], int(key.split(".")[0]))
            put(block.weight, (k if rows is None else k[np.argsort(rows)]).T)
            put(block.bias, weights[f"{key}.bias"])
        elif isinstance(spec, Conv2D):
            put(block.weight, weights[f"{key}.kernel"].transpose(3, 2, 0, 1))  # HWIO -> OIHW
            put(block.bias, weights[f"{key}.bias"])
        elif isinstance(spec, Embedding):
            put(block.weight, weights[f"{key}.embeddings"])
        else:
            p = _lstm_params(block)
            put(p["i2h_weight"], weights[f"{key}.kernel"].T)
            put(p["h2h_weight"], weights[f"{key}.recurrent_kernel"].T)
            put(p["i2h_bias"], weights[f"{key}.bias"])
            put(p["h2h_bias"], np.zeros_like(weights[f"{key}.bias"]))
    return m
