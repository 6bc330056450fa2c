"""JAX adapter in Flax NNX, the API Flax's documentation recommends to new users since Flax 0.10:
`nnx.Module`s holding their own parameters, `nnx.Optimizer` over optax, `nnx.jit` training steps.

The same model and math as frameworks/jax_flax.py (Linen), written the way NNX's own MNIST tutorial
writes it, so that `jax-nnx` against `jax` measures what the API costs. Traps, handled here:
- Keras's defaults, not Flax's: nnx.Conv pads SAME and starts kernels LeCun-normal, nnx.Linear too;
  padding VALID and Glorot-uniform kernels (fans of HWIO kernels include the receptive field, as Keras)
  are set explicitly; embeddings start U(-0.05, 0.05) as Keras's.
- Optax adds Adam's eps after bias correction, Keras before: the same eps schedule as the Linen adapter.
- The LSTM is one fused cell in the canonical layout (kernel (in, 4h), recurrent kernel (h, 4h), one
  bias, gates i, f, g, o): nnx.OptimizedLSTMCell keeps per-gate matrices with Keras-unlike initialisers.
- Dropout: nnx.Dropout draws from the model's own `dropout` stream (nnx.Rngs), which the jitted step
  advances in place; the stream is seeded from the run's seed.
- Last batch: indices padded to whole batches, the padding masked out of the loss (one shape, one compile).
- nnx.jit walks the model and optimizer graph in Python on every call to find what changed (Flax's
  "Performance considerations" guide); on small models that walk is a large share of a step. The
  default tier pays it, as a user following the tutorial does; the guide's remedies are the candidates.
Tiers. default: `nnx.jit` of the step (graph mode). Candidates, from Flax's performance guide and the
nnx.jit reference: `cached-partial` (nnx.cached_partial: the graph traversal of model and optimizer
cached across calls), `tree-mode` (nnx.jit(graph=False): modules treated as plain pytrees) and
`functional` (nnx.split once, a pure jax.jit step over the state, nnx.update back after the epoch).
Donation: off on XLA:CPU (slower there, as in the Linen adapter), on elsewhere.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

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
CANDIDATES = ("default", "cached-partial", "tree-mode", "functional")
glorot = nnx.initializers.glorot_uniform()

_precision = "fp32"
_tier = "default"
_donated = False


def _uniform(lim: float):
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -lim, lim)


class FusedLSTM(nnx.Module):
    """LSTM returning the last hidden state; gates i, f, g, o in one (in, 4h) and one (h, 4h) matrix."""

    def __init__(self, din: int, units: int, dtype, rngs: nnx.Rngs):
        h = self.units = units
        self.dtype = dtype
        self.kernel = nnx.Param(glorot(rngs.params(), (din, 4 * h)))
        self.recurrent_kernel = nnx.Param(nnx.initializers.orthogonal()(rngs.params(), (h, 4 * h)))
        self.bias = nnx.Param(jnp.zeros(4 * h).at[h : 2 * h].set(1.0))  # Keras's unit_forget_bias

    def __call__(self, x):
        dt, f32 = self.dtype, jnp.float32
        xz = jnp.einsum("btd,dk->tbk", x.astype(dt), self.kernel.value.astype(dt)).astype(f32) + self.bias.value
        rec = self.recurrent_kernel.value.astype(dt)

        def step(carry, z):
            hid, cell = carry
            i, f, g, o = jnp.split(z + (hid.astype(dt) @ rec).astype(f32), 4, axis=-1)
            cell = jax.nn.sigmoid(f) * cell + jax.nn.sigmoid(i) * jnp.tanh(g)
            hid = jax.nn.sigmoid(o) * jnp.tanh(cell)
            return (hid, cell), None

        zeros = jnp.zeros((x.shape[0], self.units), f32)
        (hid, _), _ = jax.lax.scan(step, (zeros, zeros), xz)
        return hid


class TokenAndPosition(nnx.Module):
    """Token embedding plus an embedding of positions 0..T-1 (Keras's Transformer example)."""

    def __init__(self, spec: TokenAndPositionEmbedding, dtype, rngs: nnx.Rngs):
        self.token = nnx.Embed(spec.vocab, spec.dim, embedding_init=_uniform(0.05), dtype=dtype, rngs=rngs)
        self.position = nnx.Embed(spec.maxlen, spec.dim, embedding_init=_uniform(0.05), dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.token(x) + self.position(jnp.arange(x.shape[1]))


def _module(layer, shape, dtype, rngs: nnx.Rngs, key: str, keyed: list):
    """One layer's NNX module (None for those without state), recording weighted ones by canonical key."""
    if isinstance(layer, Dense):
        m = nnx.Linear(shape[-1], layer.units, kernel_init=glorot, dtype=dtype, rngs=rngs)
    elif isinstance(layer, Conv2D):
        m = nnx.Conv(
            shape[-1], layer.filters, layer.kernel, padding="VALID", kernel_init=glorot, dtype=dtype, rngs=rngs
        )
    elif isinstance(layer, Embedding):
        m = nnx.Embed(layer.vocab, layer.dim, embedding_init=_uniform(0.05), dtype=dtype, rngs=rngs)
    elif isinstance(layer, LSTM):
        m = FusedLSTM(shape[-1], layer.units, dtype, rngs)
    elif isinstance(layer, Dropout):
        return nnx.Dropout(layer.rate, rngs=rngs)
    elif isinstance(layer, TokenAndPositionEmbedding):
        m = TokenAndPosition(layer, dtype, rngs)
    elif isinstance(layer, MultiHeadAttention):  # query/key/value/out LinearGeneral kernels in Keras's layout
        m = nnx.MultiHeadAttention(
            layer.heads,
            shape[-1],
            qkv_features=layer.heads * layer.key_dim,
            out_features=shape[-1],
            kernel_init=glorot,
            dtype=dtype,
            decode=False,
            deterministic=True,
            rngs=rngs,
        )
    elif isinstance(layer, LayerNorm):  # the two-pass variance, as Keras and the reference compute it
        m = nnx.LayerNorm(shape[-1], epsilon=layer.eps, use_fast_variance=False, dtype=dtype, rngs=rngs)
    elif isinstance(layer, Residual):
        return Stack(layer.layers, shapes_through(layer.layers, shape), dtype, rngs, key + ".", keyed, residual=True)
    else:
        return None  # MaxPool2D, Flatten, GlobalAveragePooling1D: no state
    keyed.append((key, layer, m))
    return m


class Stack(nnx.Module):
    """A layer list (the task's, or a residual block's body: x + layers(x))."""

    def __init__(self, layers, shapes, dtype, rngs, prefix: str, keyed: list, residual: bool = False):
        self.kinds, self.residual = tuple(layers), residual  # static: the layer list drives __call__
        self.layers = nnx.List(
            [
                _module(la, sh, dtype, rngs, prefix + layer_key(i, la), keyed)
                for i, (la, sh) in enumerate(zip(layers, shapes, strict=False))
            ]
        )

    def __call__(self, x, train: bool = False):
        inputs = x
        for layer, m in zip(self.kinds, self.layers, strict=True):
            if isinstance(layer, MaxPool2D):
                x = nnx.max_pool(x, layer.pool, strides=layer.pool, padding="VALID")
            elif isinstance(layer, Flatten):
                x = x.reshape(x.shape[0], -1)  # NHWC order, as Keras
            elif isinstance(layer, GlobalAveragePooling1D):
                x = x.mean(axis=1)
            elif isinstance(layer, Dropout):
                x = m(x, deterministic=not train)
            elif isinstance(layer, Residual):
                x = m(x, train)
            else:
                x = m(x)
            if getattr(layer, "activation", "linear") == "relu":
                x = jax.nn.relu(x)
        return inputs + x if self.residual else x


class Net(nnx.Module):
    """The task's layer list as NNX modules; returns logits."""

    def __init__(self, task: Task, dtype, rngs: nnx.Rngs, keyed: list):
        self.stack = Stack(task.layers, input_shapes(task), dtype, rngs, "", keyed)  # keyed: filled for get/set

    def __call__(self, x, train: bool = False):
        return self.stack(x, train).astype(jnp.float32)


def versions() -> dict[str, str]:
    import flax

    return {"jax": jax.__version__, "jaxlib": jax.lib.__version__, "flax": flax.__version__, "optax": optax.__version__}


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    global _precision, _tier, _donated
    if tier not in CANDIDATES:
        raise ValueError(f"jax-nnx has no tier {tier!r}: one of {', '.join(CANDIDATES)}")
    _precision, _tier = precision, tier
    if device != "cpu":
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if precision == "tf32" else "highest")
    if deterministic:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if device == "gpu" and not gpus:
        raise RuntimeError("--device gpu asked for, but JAX sees no GPU")
    platform = jax.devices()[0].platform
    _donated = platform != "cpu"
    return platform


def settings() -> dict[str, str]:
    donation = "donated" if _donated else "not donated (slower on XLA:CPU)"
    execution = {
        "default": "nnx.jit per step (graph mode: the object graph walked each call)",
        "cached-partial": "nnx.cached_partial(nnx.jit step, model, optimizer): graph traversal cached",
        "tree-mode": "nnx.jit(graph=False) per step: modules as plain pytrees",
        "functional": "nnx.split once, jax.jit of a pure step over the state, nnx.update after the epoch",
    }[_tier]
    return {
        "api": "Flax NNX",
        "execution": f"{execution}, state {donation}",
        "optimizer": "nnx.Optimizer(optax.adam, eps schedule for Keras's placement)",
        "data_placement": f"{jax.devices()[0].platform} arrays, prepared once before the clock",
        "threads": "XLA's pool, bounded by the worker's CPU affinity",
    }


def _loss_hits(logits, y, mask, binary: bool):
    if binary:
        logits = logits[:, 0]
        losses = optax.sigmoid_binary_cross_entropy(logits, y)
        hits = ((logits > 0) == (y > 0.5)) * mask
    else:
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        hits = (logits.argmax(-1) == y) * mask
    return (losses * mask).sum() / mask.sum(), hits.sum()


def _step(model: Net, optimizer: nnx.Optimizer, x, y, idx, mask, binary: bool):
    """One Adam step, written as NNX's tutorial writes it: model and optimizer updated in place."""

    def loss_fn(m):
        return _loss_hits(m(x[idx], train=True), y[idx], mask, binary)

    (loss, hits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
    optimizer.update(model, grads)
    return loss * mask.sum(), hits


def _pure_step(graphdef, state, x, y, idx, mask, binary: bool):
    """The `functional` candidate: the step as a pure function of the split state (jax.jit, no graph walk)."""
    model, optimizer = nnx.merge(graphdef, state)
    loss, hits = _step(model, optimizer, x, y, idx, mask, binary)
    return nnx.state((model, optimizer)), loss, hits


def build(task: Task, seed: int):
    dtype = jnp.bfloat16 if _precision == "bf16" else jnp.float32
    params_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    keyed: list = []  # (canonical key, layer, module) of every weighted layer, a residual block's too
    model = Net(task, dtype, nnx.Rngs(params=params_key, dropout=dropout_key), keyed)
    r = task.recipe
    keras_eps = lambda count: r.eps / jnp.sqrt(1 - r.beta2 ** (count + 1))  # noqa: E731
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=r.lr, b1=r.beta1, b2=r.beta2, eps=keras_eps)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    return {
        "model": model,
        "optimizer": optimizer,
        "task": task,
        "keyed": keyed,
        "step": _compiled_step(model, optimizer),
    }


def _compiled_step(model, optimizer):
    """The tier's step, called as step(x, y, idx, mask, binary)."""
    donate = ("model", "optimizer") if _donated else ()
    if _tier == "cached-partial":
        jitted = nnx.jit(_step, static_argnames="binary", donate_argnames=donate)
        return nnx.cached_partial(jitted, model, optimizer)
    if _tier == "tree-mode":
        jitted = nnx.jit(_step, static_argnames="binary", donate_argnames=donate, graph=False)
        return lambda *a, **k: jitted(model, optimizer, *a, **k)
    if _tier == "functional":
        return jax.jit(_pure_step, static_argnums=(0, 6), donate_argnums=(1,) if _donated else ())
    jitted = nnx.jit(_step, static_argnames="binary", donate_argnames=donate)
    return lambda *a, **k: jitted(model, optimizer, *a, **k)


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    return jnp.asarray(x), (None if y is None else jnp.asarray(y))


def _batches(order: np.ndarray, bs: int):
    n = len(order)
    pad = (-n) % bs
    idx = np.concatenate([order, np.zeros(pad, order.dtype)]).reshape(-1, bs)
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(-1, bs)
    return idx, mask


def train_epoch(model, data, order: np.ndarray):
    x, y = data
    task, step = model["task"], model["step"]
    binary = task.binary
    loss_sum, hits = 0.0, 0
    batches = zip(*_batches(order, task.recipe.batch_size), strict=True)
    if _tier == "functional":
        graphdef, state = nnx.split((model["model"], model["optimizer"]))
        for idx, mask in batches:
            state, loss, hit = step(graphdef, state, x, y, idx, mask, binary)
            loss_sum, hits = loss_sum + loss, hits + hit
        nnx.update((model["model"], model["optimizer"]), state)
    else:
        for idx, mask in batches:
            loss, hit = step(x, y, idx, mask, binary=binary)
            loss_sum, hits = loss_sum + loss, hits + hit  # device arrays: no sync per step
    return model, float(loss_sum) / len(order), int(hits) / len(order)


@nnx.jit(static_argnames="binary")
def _eval_step(net: Net, x, y, idx, mask, binary: bool):
    loss, hits = _loss_hits(net(x[idx]), y[idx], mask, binary)
    return loss * mask.sum(), hits


@nnx.jit
def _predict_step(net: Net, x, idx):
    return net(x[idx])


def evaluate(model, data):
    x, y = data
    task = model["task"]
    loss_sum, hits = 0.0, 0
    for idx, mask in zip(*_batches(np.arange(len(x)), task.recipe.batch_size), strict=True):
        loss, hit = _eval_step(model["model"], x, y, idx, mask, binary=task.binary)
        loss_sum, hits = loss_sum + loss, hits + hit
    return float(loss_sum) / len(x), int(hits) / len(x)


def predict(model, data) -> np.ndarray:
    x = data[0]
    idx, _ = _batches(np.arange(len(x)), model["task"].recipe.batch_size)
    logits = jnp.concatenate([_predict_step(model["model"], x, i) for i in idx])[: len(x)]
    probs = jax.nn.sigmoid(logits) if model["task"].binary else jax.nn.softmax(logits)
    return np.asarray(probs)


_NAMES = {
    nnx.Embed: {"embeddings": "embedding"},
    nnx.LayerNorm: {"gamma": "scale", "beta": "bias"},
}


def _params(model) -> dict[str, dict[str, nnx.Variable]]:
    """Canonical layer key -> {canonical weight name: the module's variable}."""
    out = {}
    for key, layer, m in model["keyed"]:
        if isinstance(layer, TokenAndPositionEmbedding):
            out[key] = {"token_embeddings": m.token.embedding, "position_embeddings": m.position.embedding}
        elif isinstance(layer, MultiHeadAttention):  # NNX names the output projection "out"
            out[key] = {
                f"{p}_{leaf}": getattr(getattr(m, "out" if p == "output" else p), leaf)
                for p in ("query", "key", "value", "output")
                for leaf in ("kernel", "bias")
            }
        elif isinstance(layer, LSTM):
            out[key] = {n: getattr(m, n) for n in ("kernel", "recurrent_kernel", "bias")}
        elif isinstance(layer, (Embedding, LayerNorm)):
            out[key] = {c: getattr(m, n) for c, n in _NAMES[type(m)].items()}
        else:
            out[key] = {"kernel": m.kernel, "bias": m.bias}
    return out


def n_params(model) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(nnx.state(model["model"], nnx.Param)))


def layer_params(model) -> dict[str, int]:
    out: dict[str, int] = {}
    for k, ps in _params(model).items():  # a residual block's layers count towards its top-level key
        top = top_level_key(k)
        out[top] = out.get(top, 0) + sum(int(np.prod(v.shape)) for v in ps.values())
    return out


def peak_device_mib(model) -> float | None:
    dev = jax.devices()[0]
    return dev.memory_stats()["peak_bytes_in_use"] / 2**20 if dev.platform == "gpu" else None


def sync(model) -> None:
    jax.block_until_ready(nnx.state(model["model"], nnx.Param))


def get_weights(model) -> dict[str, np.ndarray]:
    return {f"{k}.{n}": np.array(v.value, np.float32) for k, ps in _params(model).items() for n, v in ps.items()}


def set_weights(model, weights: dict[str, np.ndarray]):
    params = _params(model)
    for key, value in weights.items():
        layer, name = key.rsplit(".", 1)
        params[layer][name].value = jnp.asarray(value)
    return model
