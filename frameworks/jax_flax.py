"""JAX adapter: Flax Linen model, Optax Adam, jit-compiled train/eval steps, scanned LSTM.

Why Linen rather than NNX: Linen's `apply(params, x)` is a pure function, so model state stays
explicit (a flax TrainState passed in and returned) and `jax.jit` needs no split/merge plumbing.
Traps, handled here:
- Flax's defaults are not Keras's: nn.Conv pads SAME (50,186 parameters; the task needs VALID,
  34,826) and kernels start LeCun-normal. Padding and every initialiser are set explicitly.
- Optax's adam defaults to eps 1e-8 and adds it after bias correction, Keras before: the recipe's
  1e-7 is passed as the schedule that makes Optax's step Keras's (see build).
- get_weights copies: np.asarray of a CPU jax array can alias a buffer that donation later reuses.
- The LSTM is one fused cell, the layout of the canonical weights (kernel (in, 4h), recurrent kernel
  (h, 4h), one bias, gates i, f, g, o), so get/set need no mapping; its input projection for all time
  steps is one matmul before a `lax.scan` over time (never a Python loop). Flax's own LSTMCell keeps
  eight per-gate Dense layers, and per-gate Glorot/orthogonal initialisers would not be Keras's
  (which sees the fused (in, 4h) and (h, 4h) matrices).
- Last batch: the epoch's index list is padded to whole batches and the padding is masked out of the
  loss, so every step has one shape and compiles once; the masked mean equals the unpadded mean.
- Dispatch is asynchronous: `sync` blocks on the parameters, so compilation lands in the first epoch.
- Donation: on a GPU the train state is donated to the step (updated in place, half the memory). On
  XLA:CPU donation made the step slower, measured interleaved with the same plain Flax loop (2 threads,
  40 steps x 4 rounds, median ms/step): IMDB 20.8 without, 32.1 with; MNIST 63.4 without, 69.2 with.
  So the CPU step does not donate (benchmarks/overhead.py: the adapter/plain ratio was 1.27 on IMDB).
Tiers. default: one jitted call per step (what Flax's examples do). The tuned tier is the candidate
`harness.py tune` measured fastest here: k steps per jitted lax.scan (k = 8, 32) or the whole epoch in
one (JAX's documented way to remove per-step dispatch); like the step, a scan donates its state off the
CPU only.
Speed, measured on the MNIST CNN (2 threads, 30 steps of 128): XLA_FLAGS --xla_cpu_use_thunk_runtime=false,
--xla_cpu_use_onednn=true and --xla_cpu_enable_fast_math=true all stayed within noise of the default
(2.0-2.2 s). A CNN step takes ~70 ms, while a whole Iris step, dispatch included, takes ~0.1 ms
(steady epoch 0.0007 s for 7 steps), so dispatch is not the CNN's cost: the time is in XLA:CPU's
compiled step itself, about 4x PyTorch's per epoch, while JAX's inference is the fastest. Defaults are
kept: this is the JAX a user would write.
The tuned tier's scan pays on Iris (0.33x the default's epoch) and IMDB (0.86x) but makes the MNIST CNN's
epoch 5.66x slower (results/reference-jax at c361f85, 5 v 5 runs). Not the while loop (jax-ml/jax#12868 reports
convolutions slower inside loop bodies on CPU): benchmarks/jax_scan.py, 20 MNIST steps, 2 threads, two
rounds: a Python loop of jitted steps 104-107 ms a step, one scan 395-399, a scan with unroll=20 366-431,
the 20 steps inlined into one jit with no loop 362-406, a Python loop of length-1 scans 424-433. Any
program that wraps the step (in a scan, even of length 1, or beside other steps) is slow. Not the
convolutions' form either: the scans leave two backward convolutions outside the NHWC/HWIO form that
XLA:CPU hands to Eigen, but the inlined steps keep all of theirs in it and are as slow. The cause is not
found (XLA:CPU not profiled per op yet).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn
from flax.training import train_state

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

LSTM_BIAS_VECTORS = 1
glorot = nn.initializers.glorot_uniform()  # fans of HWIO kernels include the receptive field, as Keras


def _uniform(lim: float):
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -lim, lim)


def _lstm_bias(key, shape, dtype=jnp.float32):
    h = shape[0] // 4
    return jnp.zeros(shape, dtype).at[h : 2 * h].set(1.0)  # Keras's unit_forget_bias


_precision = "fp32"
# tier -> steps per jitted lax.scan (None: one jitted call per step; 0: the whole epoch in one scan)
CANDIDATES = {"default": None, "scan-8": 8, "scan-32": 32, "scan-epoch": 0}
_scan = CANDIDATES["default"]
_donated = False  # the step and the scan donate their state off the CPU only


class FusedLSTM(nn.Module):
    """LSTM returning the last hidden state; gates i, f, g, o in one (in, 4h) and one (h, 4h) matrix."""

    units: int
    dtype: Any = jnp.float32  # of the matmuls (bf16: as Flax's Dense computes); the cell state stays float32

    @nn.compact
    def __call__(self, x):
        h, dt, f32 = self.units, self.dtype, jnp.float32
        kernel = self.param("kernel", glorot, (x.shape[-1], 4 * h))
        recurrent = self.param("recurrent_kernel", nn.initializers.orthogonal(), (h, 4 * h))
        bias = self.param("bias", _lstm_bias, (4 * h,))
        # all time steps at once, time-major
        # (XLA:CPU has no bf16 x bf16 -> f32 dot, so products come out in dt and are widened after.)
        xz = jnp.einsum("btd,dk->tbk", x.astype(dt), kernel.astype(dt)).astype(f32) + bias
        rec = recurrent.astype(dt)

        def step(carry, z):
            hid, cell = carry
            i, f, g, o = jnp.split(z + (hid.astype(dt) @ rec).astype(f32), 4, axis=-1)
            cell = nn.sigmoid(f) * cell + nn.sigmoid(i) * jnp.tanh(g)
            hid = nn.sigmoid(o) * jnp.tanh(cell)
            return (hid, cell), None

        zeros = jnp.zeros((x.shape[0], h), f32)
        (hid, _), _ = jax.lax.scan(step, (zeros, zeros), xz)
        return hid


class TokenAndPosition(nn.Module):
    """Token embedding plus an embedding of positions 0..T-1 (Keras's Transformer example)."""

    spec: TokenAndPositionEmbedding
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        s = self.spec
        token = nn.Embed(s.vocab, s.dim, embedding_init=_uniform(0.05), dtype=self.dtype, name="token")
        position = nn.Embed(s.maxlen, s.dim, embedding_init=_uniform(0.05), dtype=self.dtype, name="position")
        return token(x) + position(jnp.arange(x.shape[1]))


def _stack(layers: tuple, x, train: bool, dt):
    """A layer list, called inside a compact __call__: the modules it makes belong to that module, each
    named by its canonical key, so get/set are direct."""
    for i, layer in enumerate(layers):
        name = layer_key(i, layer)  # canonical keys, so get/set are direct
        if isinstance(layer, TokenAndPositionEmbedding):
            x = TokenAndPosition(layer, dt, name=name)(x)
        elif isinstance(layer, MultiHeadAttention):  # Keras's layout: query/key/value (d, heads, key_dim)
            # kernels, out (heads, key_dim, d); DenseGeneral initialises them as the flat (d, heads*key_dim)
            # matrix, EinsumDense's fans. Self-attention, no mask; the scale 1/sqrt(key_dim) is Flax's.
            x = nn.MultiHeadDotProductAttention(
                layer.heads,
                qkv_features=layer.heads * layer.key_dim,
                out_features=x.shape[-1],
                kernel_init=glorot,
                dtype=dt,
                deterministic=True,
                name=name,
            )(x)
        elif isinstance(layer, LayerNorm):  # the two-pass variance, as Keras and the reference compute it
            x = nn.LayerNorm(epsilon=layer.eps, use_fast_variance=False, dtype=dt, name=name)(x)
        elif isinstance(layer, GlobalAveragePooling1D):
            x = x.mean(axis=1)
        elif isinstance(layer, Residual):
            x = ResidualBlock(layer.layers, dt, name=name)(x, train)
        elif isinstance(layer, Dense):
            x = nn.Dense(layer.units, kernel_init=glorot, dtype=dt, name=name)(x)
        elif isinstance(layer, Conv2D):
            x = nn.Conv(layer.filters, layer.kernel, padding="VALID", kernel_init=glorot, dtype=dt, name=name)(x)
        elif isinstance(layer, MaxPool2D):
            x = nn.max_pool(x, layer.pool, strides=layer.pool, padding="VALID")
        elif isinstance(layer, Flatten):
            x = x.reshape(x.shape[0], -1)  # NHWC order, as Keras: no permutation needed
        elif isinstance(layer, Dropout):
            x = nn.Dropout(layer.rate, deterministic=not train)(x)
        elif isinstance(layer, Embedding):
            x = nn.Embed(layer.vocab, layer.dim, embedding_init=_uniform(0.05), dtype=dt, name=name)(x)
        elif isinstance(layer, LSTM):
            x = FusedLSTM(layer.units, dt, name=name)(x)
        if getattr(layer, "activation", "linear") == "relu":
            x = nn.relu(x)
    return x


class ResidualBlock(nn.Module):
    """x + layers(x): a residual block of the Transformer task."""

    layers: tuple
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        return x + _stack(self.layers, x, train, self.dtype)


class Net(nn.Module):
    """The task's layer list; returns logits (softmax/sigmoid are applied in the loss and predict)."""

    task: Task
    dtype: Any = jnp.float32  # compute dtype (bfloat16 for --precision bf16); parameters stay float32

    @nn.compact
    def __call__(self, x, train: bool = False):
        return _stack(self.task.layers, x, train, self.dtype).astype(jnp.float32)  # logits, the loss in float32


class State(train_state.TrainState):
    key: jax.Array  # the dropout key; each step folds in its step number


def versions() -> dict[str, str]:
    import flax

    return {"jax": jax.__version__, "jaxlib": jax.lib.__version__, "flax": flax.__version__, "optax": optax.__version__}


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    global _precision, _scan, _train_step, _train_scanned, _donated
    if tier not in CANDIDATES:
        raise ValueError(f"jax has no tier {tier!r}: one of {', '.join(CANDIDATES)}")
    _precision, _scan = precision, CANDIDATES[tier]
    if device != "cpu":  # XLA's default matmul precision on a GPU is TF32-like: fp32 asks for "highest"
        jax.config.update("jax_default_matmul_precision", "tensorfloat32" if precision == "tf32" else "highest")
    if deterministic:  # read when the GPU backend starts: before the first jax.devices()
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
    # XLA:CPU sizes its thread pool from the CPUs it may run on: the worker's affinity bounds it.
    if device == "cpu":
        jax.config.update("jax_platforms", "cpu")  # before the first jax.devices(): a GPU stays unused
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if device == "gpu" and not gpus:
        raise RuntimeError("--device gpu asked for, but JAX sees no GPU")
    platform = jax.devices()[0].platform
    if platform != "cpu":
        _train_step, _donated = jax.jit(_step, static_argnums=(5,), donate_argnums=(0,)), True
        _train_scanned = jax.jit(_scanned, static_argnums=(5,), donate_argnums=(0,))
    return platform


def build(task: Task, seed: int):
    net = Net(task, jnp.bfloat16 if _precision == "bf16" else jnp.float32)
    init_key, dropout_key = jax.random.split(jax.random.PRNGKey(seed))
    dummy = jnp.zeros((1, *task.input_shape), task.input_dtype)
    params = net.init(init_key, dummy)["params"]
    r = task.recipe
    # Keras's epsilon placement (before bias correction) is Optax's with eps / sqrt(1 - b2^t): a schedule
    # of the step count, which inject_hyperparams starts at 0 for the first update.
    keras_eps = lambda count: r.eps / jnp.sqrt(1 - r.beta2 ** (count + 1))  # noqa: E731
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=r.lr, b1=r.beta1, b2=r.beta2, eps=keras_eps)
    state = State.create(apply_fn=net.apply, params=params, tx=tx, key=dropout_key)
    return {"state": state, "task": task}


def settings() -> dict[str, str]:
    state = "donated" if _donated else "not donated (slower on XLA:CPU)"
    scan = "the epoch's steps" if _scan == 0 else f"{_scan} steps"
    return {
        "execution": f"jax.jit per step, state {state}"
        if _scan is None
        else f"jax.jit of lax.scan over {scan}, state {state}",
        "optimizer": "optax.adam (eps schedule for Keras's placement)",
        "data_placement": f"{jax.devices()[0].platform} arrays, prepared once before the clock",
        "threads": "XLA's pool, bounded by the worker's CPU affinity",
    }


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    return jnp.asarray(x), (None if y is None else jnp.asarray(y))


def _loss_hits(logits, y, mask, binary: bool):
    """Masked mean loss and the number of correct predictions."""
    if binary:
        logits = logits[:, 0]
        losses = optax.sigmoid_binary_cross_entropy(logits, y)
        hits = ((logits > 0) == (y > 0.5)) * mask
    else:
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        hits = (logits.argmax(-1) == y) * mask
    return (losses * mask).sum() / mask.sum(), hits.sum()


def _step(state: State, x, y, idx, mask, binary: bool):
    key = jax.random.fold_in(state.key, state.step)

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, x[idx], train=True, rngs={"dropout": key})
        return _loss_hits(logits, y[idx], mask, binary)

    (loss, hits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), loss * mask.sum(), hits


# default tier: one compiled call per step; the state is donated off the CPU only (see the docstring)
_train_step = jax.jit(_step, static_argnums=(5,))


def _scanned(state: State, x, y, idxs, masks, binary: bool):
    """The scan candidates: consecutive steps in one compiled call (lax.scan), no Python between them."""

    def body(s, batch):
        s, loss, hits = _step(s, x, y, batch[0], batch[1], binary)
        return s, (loss, hits)

    state, (losses, hits) = jax.lax.scan(body, state, (idxs, masks))
    return state, losses.sum(), hits.sum()


_train_scanned = jax.jit(_scanned, static_argnums=(5,))  # donating off the CPU only, as the step (configure)


@partial(jax.jit, static_argnums=(5,))
def _eval_step(state: State, x, y, idx, mask, binary: bool):
    logits = state.apply_fn({"params": state.params}, x[idx])
    loss, hits = _loss_hits(logits, y[idx], mask, binary)
    return loss * mask.sum(), hits


@jax.jit
def _predict_step(state: State, x, idx):
    return state.apply_fn({"params": state.params}, x[idx])


def _batches(order: np.ndarray, bs: int):
    """Index and mask arrays padded to whole batches: one shape for every step."""
    n = len(order)
    pad = (-n) % bs
    idx = np.concatenate([order, np.zeros(pad, order.dtype)]).reshape(-1, bs)
    mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(-1, bs)
    return idx, mask


def train_epoch(model, data, order: np.ndarray):
    x, y = data
    task, state = model["task"], model["state"]
    binary = task.binary
    idxs, masks = _batches(order, task.recipe.batch_size)
    loss_sum, hits = 0.0, 0
    if _scan is not None:  # chunks of k steps (a shorter last one compiles once more), or the epoch in one
        k = _scan or len(idxs)
        for i in range(0, len(idxs), k):
            state, loss, hit = _train_scanned(state, x, y, idxs[i : i + k], masks[i : i + k], binary)
            loss_sum, hits = loss_sum + loss, hits + hit
        return {"state": state, "task": task}, float(loss_sum) / len(order), int(hits) / len(order)
    for idx, mask in zip(idxs, masks, strict=True):
        state, loss, hit = _train_step(state, x, y, idx, mask, binary)
        loss_sum, hits = loss_sum + loss, hits + hit  # device arrays: no sync per step
    return {"state": state, "task": task}, float(loss_sum) / len(order), int(hits) / len(order)


def evaluate(model, data):
    x, y = data
    task = model["task"]
    binary = task.binary
    loss_sum, hits = 0.0, 0
    for idx, mask in zip(*_batches(np.arange(len(x)), task.recipe.batch_size), strict=True):
        loss, hit = _eval_step(model["state"], x, y, idx, mask, binary)
        loss_sum, hits = loss_sum + loss, hits + hit
    return float(loss_sum) / len(x), int(hits) / len(x)


def predict(model, data) -> np.ndarray:
    x = data[0]
    idx, _ = _batches(np.arange(len(x)), model["task"].recipe.batch_size)
    logits = jnp.concatenate([_predict_step(model["state"], x, i) for i in idx])[: len(x)]
    probs = nn.sigmoid(logits) if model["task"].binary else nn.softmax(logits)
    return np.asarray(probs)


def n_params(model) -> int:
    return sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(model["state"].params))


def layer_params(model) -> dict[str, int]:
    tree = model["state"].params  # top-level names are the canonical layer keys
    return {k: sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(v)) for k, v in tree.items()}


def peak_device_mib(model) -> float | None:
    # XLA_PYTHON_CLIENT_PREALLOCATE=false (set by the registry) makes this the model's use, not 75 % of the GPU.
    dev = jax.devices()[0]
    return dev.memory_stats()["peak_bytes_in_use"] / 2**20 if dev.platform == "gpu" else None


def sync(model) -> None:
    jax.block_until_ready(model["state"].params)


def _path(task: Task, name: str) -> tuple[str, ...]:
    """Where a canonical weight ("1.residual.0.multiheadattention.query_kernel") lies in the parameter tree
    (("1.residual", "0.multiheadattention", "query", "kernel")): module names are the canonical keys."""
    layers, parts, path = task.layers, name.split("."), []
    while True:
        layer = layers[int(parts[0])]
        path.append(f"{parts[0]}.{parts[1]}")
        parts = parts[2:]
        if not isinstance(layer, Residual):
            break
        layers = layer.layers
    w = parts[0]
    if isinstance(layer, MultiHeadAttention):  # Flax names the output projection "out"
        proj, leaf = w.rsplit("_", 1)
        return (*path, "out" if proj == "output" else proj, leaf)
    if isinstance(layer, LayerNorm):
        return (*path, {"gamma": "scale", "beta": "bias"}[w])
    leaf = {
        "embeddings": ("embedding",),
        "token_embeddings": ("token", "embedding"),
        "position_embeddings": ("position", "embedding"),
    }.get(w, (w,))
    return (*path, *leaf)


def get_weights(model) -> dict[str, np.ndarray]:
    out = {}
    for name in canonical_shapes(model["task"]):
        value = model["state"].params
        for k in _path(model["task"], name):
            value = value[k]
        out[name] = np.array(value, np.float32)  # a copy: donation may reuse the buffer
    return out


def set_weights(model, weights: dict[str, np.ndarray]):
    def mutable(tree):
        return {k: mutable(v) if isinstance(v, dict) else v for k, v in tree.items()}

    params = mutable(model["state"].params)
    for name, value in weights.items():
        *parents, leaf = _path(model["task"], name)
        node = params
        for k in parents:
            node = node[k]
        node[leaf] = jnp.asarray(value)
    model["state"] = model["state"].replace(params=params)
    return model
