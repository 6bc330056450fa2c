"""PaddlePaddle adapter (dygraph): NCHW convolutions, logits out, Adam with Keras's epsilon placement.

Added by following docs/adding-a-framework.md. Traps between Paddle and the canonical (Keras) layout,
each found by the conformance suite or `harness.py parity`:
- `nn.Linear` stores (in, out), the canonical layout as it is (no transpose, unlike PyTorch); Conv2D
  weights are OIHW (transposed on get/set); `nn.Flatten` flattens (C, H, W), so the Dense kernel after
  it has its rows permuted (tasks.spec.nchw_flatten_rows), as for every NCHW framework.
- Its Adam adds epsilon after bias correction, like PyTorch, although its documentation prints Keras's
  formula: a one-step probe (lr 1, g = 1e-3, eps = 1e-3) moved the weight by 0.5, Keras's formula gives
  0.0307. Without the per-step rescaling (_keras_eps) parity failed by 4.3e-3 (Iris), 6.2e-3 (MNIST),
  1.7e-2 (IMDB).
- `nn.LSTM` keeps two biases (bias_ih, bias_hh), gates i, f, g, o. `stop_gradient=True` on bias_hh breaks
  the fused CPU LSTM backward ("Required tensor shall not be nullptr", RnnGradNode): bias_hh is left out
  of the optimizer's parameters and stays at zero instead. Trained both, IMDB parity failed by 8.1e-3.
- `cross_entropy` wants int64 labels; binary labels float32.
- XavierUniform (receptive-field fans, as Keras) and Orthogonal pass the initialiser checks as they are.
Tiers: default dygraph; one candidate for the tuned tier (`harness.py tune` keeps it only where it measures
faster): the network under `paddle.jit.to_static`, Paddle's documented dynamic-to-static speed path, the
optimizer step and the Keras-epsilon rescaling unchanged around it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

warnings.filterwarnings("ignore", message=".*ccache.*")  # Paddle's import-time UserWarning about a C++ cache
import paddle  # noqa: E402
from paddle import nn  # noqa: E402
from paddle.nn import functional as F  # noqa: E402

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

LSTM_BIAS_VECTORS = 1  # trainable: bias_hh is stored but kept at zero, outside the optimizer
_device = "cpu"
CANDIDATES = ("default", "to-static")  # frameworks/__init__.py's candidates, and the default
_tier = "default"


class _LastHidden(nn.Layer):
    """An LSTM that returns its last hidden state, as Keras's LSTM(return_sequences=False)."""

    def __init__(self, n_in: int, units: int):
        super().__init__()
        self.lstm = nn.LSTM(n_in, units)

    def forward(self, x):
        return self.lstm(x)[1][0][-1]  # h of the (only) layer: (batch, units)


class _TokenAndPosition(nn.Layer):
    def __init__(self, spec: TokenAndPositionEmbedding, init):
        super().__init__()
        self.token = nn.Embedding(spec.vocab, spec.dim, weight_attr=init)
        self.position = nn.Embedding(spec.maxlen, spec.dim, weight_attr=init)

    def forward(self, x):
        return self.token(x) + self.position.weight[: x.shape[1]]


class _SelfAttention(nn.Layer):
    """Keras's MultiHeadAttention(heads, key_dim) as self-attention, written out in a few lines.

    Not nn.MultiHeadAttention: like PyTorch's, it makes each head embed_dim / num_heads wide (16 here),
    and the example's heads are key_dim = 32 wide each. Paddle's Linear stores (in, out), so the
    (d, heads * key_dim) weight is Keras's (d, heads, key_dim) kernel reshaped, with the same fans."""

    def __init__(self, d: int, spec: MultiHeadAttention, xavier, zeros):
        super().__init__()
        self.heads, self.key_dim = spec.heads, spec.key_dim
        width = spec.heads * spec.key_dim
        self.query, self.key, self.value = (nn.Linear(d, width, weight_attr=xavier, bias_attr=zeros) for _ in range(3))
        self.output = nn.Linear(width, d, weight_attr=xavier, bias_attr=zeros)

    def forward(self, x):
        b, n = x.shape[0], x.shape[1]
        q, k, v = (
            p(x).reshape([b, n, self.heads, self.key_dim]).transpose([0, 2, 1, 3])
            for p in (self.query, self.key, self.value)
        )
        a = F.softmax(paddle.matmul(q, k, transpose_y=True) / self.key_dim**0.5, axis=-1)  # over the keys
        o = paddle.matmul(a, v).transpose([0, 2, 1, 3]).reshape([b, n, self.heads * self.key_dim])
        return self.output(o)


class _Residual(nn.Layer):
    def __init__(self, body: nn.Sequential):
        super().__init__()
        self.body = body

    def forward(self, x):
        return x + self.body(x)


class _MeanOverTime(nn.Layer):
    def forward(self, x):
        return x.mean(axis=1)  # GlobalAveragePooling1D, no mask (padding counts, as in the example)


@dataclass
class Model:
    net: nn.Sequential
    opt: paddle.optimizer.Optimizer
    task: Task
    frozen: list  # LSTM bias_hh: outside the optimizer, its gradient cleared each step
    keyed: list  # (canonical layer key, layer) of every layer with weights, a residual block's too
    steps: int = 0  # Adam steps taken, for Keras's epsilon placement


def versions() -> dict[str, str]:
    return {"paddlepaddle": paddle.__version__, "cuda": str(paddle.is_compiled_with_cuda())}


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    global _device, _tier
    if tier not in CANDIDATES:
        raise ValueError(f"paddle has no tier {tier!r}: one of {', '.join(CANDIDATES)}")
    if precision != "fp32":
        raise RuntimeError(f"--precision {precision}: the Paddle adapter implements fp32 only")
    want_gpu = device == "gpu" or (device == "auto" and paddle.device.cuda.device_count() > 0)
    if want_gpu and paddle.device.cuda.device_count() == 0:
        raise RuntimeError("--device gpu asked for, but Paddle sees no GPU")
    _device, _tier = ("gpu" if want_gpu else "cpu"), tier
    paddle.set_device(_device)
    if deterministic and _device == "gpu":  # CPU kernels are deterministic; cuDNN's flag is read at import
        if os.environ.get("FLAGS_cudnn_deterministic") not in ("1", "true", "True"):
            raise RuntimeError("deterministic kernels on a GPU: start with FLAGS_cudnn_deterministic=1")
    return _device


def settings() -> dict[str, str]:
    return {
        "execution": "paddle.jit.to_static(network), static graph" if _tier == "to-static" else "dygraph (eager)",
        "optimizer": "paddle.optimizer.Adam",
        "data_placement": f"{_device} tensors, prepared once before the clock",
        "threads": f"OpenMP {os.environ.get('OMP_NUM_THREADS', 'unset')}",
    }


def _modules(layers, shapes, prefix: str, keyed: list) -> list:
    """The layers of a layer list (a residual block's body too), recording each weighted one's canonical key."""
    xavier = paddle.ParamAttr(initializer=nn.initializer.XavierUniform())
    zeros = paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))
    uniform = paddle.ParamAttr(initializer=nn.initializer.Uniform(-0.05, 0.05))
    mods = []
    for i, (layer, shape) in enumerate(zip(layers, shapes, strict=False)):
        key = prefix + layer_key(i, layer)
        if isinstance(layer, Dense):
            m = nn.Linear(shape[-1], layer.units, weight_attr=xavier, bias_attr=zeros)
        elif isinstance(layer, Conv2D):
            m = nn.Conv2D(shape[-1], layer.filters, layer.kernel, weight_attr=xavier, bias_attr=zeros)
        elif isinstance(layer, MaxPool2D):
            m = nn.MaxPool2D(layer.pool, layer.pool)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()  # (C, H, W) order: see nchw_flatten_rows on get/set
        elif isinstance(layer, Dropout):
            m = nn.Dropout(layer.rate)
        elif isinstance(layer, Embedding):
            m = nn.Embedding(layer.vocab, layer.dim, weight_attr=uniform)
        elif isinstance(layer, LSTM):
            m = _LastHidden(shape[-1], layer.units)
        elif isinstance(layer, TokenAndPositionEmbedding):
            m = _TokenAndPosition(layer, uniform)
        elif isinstance(layer, MultiHeadAttention):
            m = _SelfAttention(shape[-1], layer, xavier, zeros)
        elif isinstance(layer, LayerNorm):  # Paddle's default epsilon is 1e-5, the example's 1e-6
            m = nn.LayerNorm(shape[-1], epsilon=layer.eps)
        elif isinstance(layer, GlobalAveragePooling1D):
            m = _MeanOverTime()
        elif isinstance(layer, Residual):
            m = _Residual(nn.Sequential(*_modules(layer.layers, shapes_through(layer.layers, shape), key + ".", keyed)))
        else:
            raise ValueError(f"the Paddle adapter cannot build {type(layer).__name__}")
        if not isinstance(layer, Residual) and m.parameters():
            keyed.append((key, m))
        mods.append(m)
        if getattr(layer, "activation", "linear") == "relu":
            mods.append(nn.ReLU())
    return mods


def build(task: Task, seed: int) -> Model:
    paddle.seed(seed)  # seeds the initialisers and dropout
    keyed: list = []
    net = nn.Sequential(*_modules(task.layers, input_shapes(task), "", keyed))
    _init_lstms(net)
    r = task.recipe
    trainable = [p for n, p in net.named_parameters() if not n.endswith("bias_hh_l0")]
    frozen = [p for n, p in net.named_parameters() if n.endswith("bias_hh_l0")]
    opt = paddle.optimizer.Adam(learning_rate=r.lr, beta1=r.beta1, beta2=r.beta2, epsilon=r.eps, parameters=trainable)
    if _tier == "to-static":
        net = paddle.jit.to_static(net)  # the same Layer and parameters, its forward a static program
    return Model(net, opt, task, frozen, keyed)


@paddle.no_grad()
def _init_lstms(net) -> None:
    """Keras's LSTM: Glorot-uniform input kernel, orthogonal recurrent kernel, zero bias, forget bias 1."""
    for m in net.sublayers():
        if isinstance(m, nn.LSTM):
            h = m.hidden_size
            nn.initializer.XavierUniform()(m.weight_ih_l0)  # (4h, in): the same fans as Keras's (in, 4h)
            nn.initializer.Orthogonal()(m.weight_hh_l0)  # (4h, h): orthonormal columns, Keras's (h, 4h) rows
            b = np.zeros(4 * h, np.float32)
            b[h : 2 * h] = 1.0  # unit_forget_bias, gates i, f, g, o
            m.bias_ih_l0.set_value(b)
            m.bias_hh_l0.set_value(np.zeros(4 * h, np.float32))


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    xa = np.ascontiguousarray(x.transpose(0, 3, 1, 2) if x.ndim == 4 else x)
    xt = paddle.to_tensor(xa.astype(np.int64) if xa.dtype == np.int32 else xa)  # Embedding takes int64
    if y is None:
        return xt, None
    return xt, paddle.to_tensor(y.astype(np.float32) if y.dtype == np.float32 else y.astype(np.int64))


def _loss(model: Model, logits, y):
    if model.task.binary:
        logits = logits.squeeze(1)
        return F.binary_cross_entropy_with_logits(logits, y), ((logits > 0).astype("float32") == y).sum()
    return F.cross_entropy(logits, y), (logits.argmax(1) == y).sum()


def train_epoch(model: Model, data, order: np.ndarray):
    x, y = data
    model.net.train()
    bs, idx = model.task.recipe.batch_size, paddle.to_tensor(order.astype(np.int64))
    loss_sum, correct = paddle.zeros([]), paddle.zeros([], dtype="int64")
    for i in range(0, len(order), bs):
        b = idx[i : i + bs]
        loss, hits = _loss(model, model.net(paddle.gather(x, b)), paddle.gather(y, b))
        loss.backward()
        _keras_eps(model)
        model.opt.step()
        model.opt.clear_grad()
        for p in model.frozen:
            p.clear_gradient()
        loss_sum += loss.detach() * len(b)
        correct += hits.astype("int64")
    return model, float(loss_sum) / len(order), int(correct) / len(order)


def _keras_eps(model: Model) -> None:
    """Keras adds eps to sqrt(v) before bias correction, Paddle after: rescale it to eps / sqrt(1 - b2^t)."""
    model.steps += 1
    r = model.task.recipe
    model.opt._epsilon = r.eps / (1 - r.beta2**model.steps) ** 0.5


@paddle.no_grad()
def evaluate(model: Model, data):
    x, y = data
    model.net.eval()
    bs, loss_sum, correct = model.task.recipe.batch_size, 0.0, 0
    for i in range(0, len(x), bs):
        loss, hits = _loss(model, model.net(x[i : i + bs]), y[i : i + bs])
        loss_sum, correct = loss_sum + float(loss) * len(x[i : i + bs]), correct + int(hits)
    return loss_sum / len(x), correct / len(x)


@paddle.no_grad()
def predict(model: Model, data) -> np.ndarray:
    x = data[0]
    model.net.eval()
    bs = model.task.recipe.batch_size
    logits = paddle.concat([model.net(x[i : i + bs]) for i in range(0, len(x), bs)])
    return (F.sigmoid(logits) if model.task.binary else F.softmax(logits, axis=1)).numpy()


def n_params(model: Model) -> int:
    return sum(p.size for p in model.opt._parameter_list)


def layer_params(model: Model) -> dict[str, int]:
    trainable, out = {id(p) for p in model.opt._parameter_list}, {}
    for key, m in model.keyed:  # a residual block's layers count towards its top-level key
        top = top_level_key(key)
        out[top] = out.get(top, 0) + sum(p.size for p in m.parameters() if id(p) in trainable)
    return out


def peak_device_mib(model: Model) -> float | None:
    return paddle.device.cuda.max_memory_allocated() / 2**20 if _device == "gpu" else None


def sync(model: Model) -> None:
    if _device == "gpu":
        paddle.device.synchronize()  # CPU dygraph ops are synchronous


def get_weights(model: Model) -> dict[str, np.ndarray]:
    out = {}
    for key, m in model.keyed:
        if isinstance(m, nn.Linear):  # (in, out): canonical already
            k = m.weight.numpy()
            rows = nchw_flatten_rows(model.task, int(key.split(".")[0]))
            out[f"{key}.kernel"] = k if rows is None else k[rows]
            out[f"{key}.bias"] = m.bias.numpy()
        elif isinstance(m, nn.Conv2D):
            out[f"{key}.kernel"] = m.weight.numpy().transpose(2, 3, 1, 0)  # OIHW -> HWIO
            out[f"{key}.bias"] = m.bias.numpy()
        elif isinstance(m, nn.Embedding):
            out[f"{key}.embeddings"] = m.weight.numpy()
        elif isinstance(m, _TokenAndPosition):
            out[f"{key}.token_embeddings"] = m.token.weight.numpy()
            out[f"{key}.position_embeddings"] = m.position.weight.numpy()
        elif isinstance(m, _SelfAttention):  # (in, out) weights: Keras's kernels reshaped
            d, hk = m.output.weight.shape[1], (m.heads, m.key_dim)
            for n in ("query", "key", "value"):
                out[f"{key}.{n}_kernel"] = getattr(m, n).weight.numpy().reshape(d, *hk)
                out[f"{key}.{n}_bias"] = getattr(m, n).bias.numpy().reshape(hk)
            out[f"{key}.output_kernel"] = m.output.weight.numpy().reshape(*hk, d)
            out[f"{key}.output_bias"] = m.output.bias.numpy()
        elif isinstance(m, nn.LayerNorm):
            out[f"{key}.gamma"], out[f"{key}.beta"] = m.weight.numpy(), m.bias.numpy()
        elif isinstance(m, _LastHidden):
            lstm = m.lstm
            out[f"{key}.kernel"] = lstm.weight_ih_l0.numpy().T
            out[f"{key}.recurrent_kernel"] = lstm.weight_hh_l0.numpy().T
            out[f"{key}.bias"] = lstm.bias_ih_l0.numpy() + lstm.bias_hh_l0.numpy()
    return {k: np.array(v, np.float32, order="C") for k, v in out.items()}


@paddle.no_grad()
def set_weights(model: Model, weights: dict[str, np.ndarray]) -> Model:
    def f32(a):
        return np.ascontiguousarray(a, dtype=np.float32)

    for key, m in model.keyed:
        if isinstance(m, nn.Linear):
            rows = nchw_flatten_rows(model.task, int(key.split(".")[0]))
            k = weights[f"{key}.kernel"]
            m.weight.set_value(f32(k if rows is None else k[np.argsort(rows)]))
            m.bias.set_value(f32(weights[f"{key}.bias"]))
        elif isinstance(m, nn.Conv2D):
            m.weight.set_value(f32(weights[f"{key}.kernel"].transpose(3, 2, 0, 1)))  # HWIO -> OIHW
            m.bias.set_value(f32(weights[f"{key}.bias"]))
        elif isinstance(m, nn.Embedding):
            m.weight.set_value(f32(weights[f"{key}.embeddings"]))
        elif isinstance(m, _TokenAndPosition):
            m.token.weight.set_value(f32(weights[f"{key}.token_embeddings"]))
            m.position.weight.set_value(f32(weights[f"{key}.position_embeddings"]))
        elif isinstance(m, _SelfAttention):
            width = m.heads * m.key_dim
            for n in ("query", "key", "value"):
                getattr(m, n).weight.set_value(f32(weights[f"{key}.{n}_kernel"].reshape(-1, width)))
                getattr(m, n).bias.set_value(f32(weights[f"{key}.{n}_bias"].reshape(width)))
            m.output.weight.set_value(f32(weights[f"{key}.output_kernel"].reshape(width, -1)))
            m.output.bias.set_value(f32(weights[f"{key}.output_bias"]))
        elif isinstance(m, nn.LayerNorm):
            m.weight.set_value(f32(weights[f"{key}.gamma"]))
            m.bias.set_value(f32(weights[f"{key}.beta"]))
        elif isinstance(m, _LastHidden):
            m.lstm.weight_ih_l0.set_value(f32(weights[f"{key}.kernel"].T))
            m.lstm.weight_hh_l0.set_value(f32(weights[f"{key}.recurrent_kernel"].T))
            m.lstm.bias_ih_l0.set_value(f32(weights[f"{key}.bias"]))
            m.lstm.bias_hh_l0.set_value(np.zeros_like(f32(weights[f"{key}.bias"])))
    return model
