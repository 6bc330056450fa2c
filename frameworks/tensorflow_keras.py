"""Keras 3 adapter: the seeds' own Sequential API, on TensorFlow (`tensorflow`), JAX (`keras-jax`) or
PyTorch (`keras-torch`), picked by KERAS_BACKEND, which the harness sets before this module is imported.

Keras is the reference framework of this suite: the canonical weight layout is Keras's own (Dense
(in, out), Conv2D HWIO, NHWC flatten, LSTM gates i, f, c, o with one bias), so get/set map directly.
- Initialisers are Keras's defaults, passed explicitly only to give them seeds: seeding through
  `keras.utils.set_random_seed` would import TensorFlow even on the JAX and torch backends (+400 MB).
- Adam's epsilon 1e-7 is Keras's default; it is passed anyway, from the recipe.
- `fit` runs one epoch on arrays already in the harness's order (`shuffle=False`), silently.
- Tiers. default: jit_compile at Keras's "auto" (tf.function graphs on a CPU-only TensorFlow, XLA on JAX,
  eager on torch), one step per execution. The tuned tier is the candidate `harness.py tune` measured
  fastest here, from what Keras's documentation offers for speed: steps_per_execution 8 or 32 (fewer
  Python round trips per batch) on TensorFlow and JAX, jit_compile=True (XLA) on TensorFlow, and on torch
  jit_compile=True (torch.compile; keras#21851 reports it slower than eager). Keras refuses
  steps_per_execution > 1 on torch ("must be 1 with the PyTorch backend").
"""

from __future__ import annotations

import os

import numpy as np

BACKEND = os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402 - KERAS_BACKEND must be set before this import

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
    canonical_shapes,
    layer_key,
)

LSTM_BIAS_VECTORS = 1
_threads: dict[str, int] = {}
_device = "cpu"
_precision = "fp32"
# tier -> (jit_compile, steps_per_execution), per backend; the names are frameworks/__init__.py's candidates
CANDIDATES = {
    "default": ("auto", 1),
    **({"spe-8": ("auto", 8), "spe-32": ("auto", 32)} if BACKEND != "torch" else {}),
    **({"xla": (True, 1), "xla-spe-32": (True, 32)} if BACKEND == "tensorflow" else {}),
    **({"jit-compile": (True, 1)} if BACKEND == "torch" else {}),
}
_jit, _spe = CANDIDATES["default"]
init = keras.initializers


def versions() -> dict[str, str]:
    backend_pkg = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[BACKEND]
    mod = __import__(backend_pkg)
    return {
        backend_pkg: mod.__version__,
        "keras": keras.__version__,
        "keras_backend": BACKEND,
        **{k: str(v) for k, v in _threads.items()},
    }


def configure(
    threads: int, device: str, precision: str = "fp32", deterministic: bool = False, tier: str = "default"
) -> str:
    global _precision, _jit, _spe
    if tier not in CANDIDATES:
        raise ValueError(f"Keras on {BACKEND} has no tier {tier!r}: one of {', '.join(CANDIDATES)}")
    _precision, (_jit, _spe) = precision, CANDIDATES[tier]
    if precision == "bf16":  # Keras's own mixed precision: bf16 compute, fp32 variables (last layer: build)
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    if BACKEND == "tensorflow":
        import tensorflow as tf

        # TensorFlow's default: TF32 on (Ampere and later). One policy for every framework.
        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
        if deterministic:
            tf.config.experimental.enable_op_determinism()

        # Must happen before TensorFlow's runtime starts; read back so the results show what held.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        _threads["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        _threads["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
        gpus = tf.config.list_physical_devices("GPU")
    elif BACKEND == "torch":
        import torch

        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        torch.set_num_threads(threads)
        _threads["torch_threads"] = torch.get_num_threads()
        gpus = list(range(torch.cuda.device_count()))
    else:  # XLA:CPU ignores its thread flags: the worker's CPU affinity bounds it
        import jax

        if device != "cpu":
            jax.config.update("jax_default_matmul_precision", "tensorfloat32" if precision == "tf32" else "highest")
        if deterministic:
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()
        if device == "cpu":
            jax.config.update("jax_platforms", "cpu")
        gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if device == "gpu" and not gpus:
        raise RuntimeError(f"--device gpu asked for, but Keras's {BACKEND} backend sees no GPU")
    global _device
    _device = "gpu" if gpus and device != "cpu" else "cpu"
    return _device


class _SummedSlicesAdam(keras.optimizers.Adam):
    """Keras's Adam with the repeated rows of a sparse (embedding) gradient summed first.

    On TensorFlow an embedding's gradient is a tf.IndexedSlices with one slice per occurrence of a
    token, and Keras 3.15's Adam squares it slice by slice: a token seen twice in a batch adds
    g1^2 + g2^2 to the second moment instead of (g1 + g2)^2 (checked: 5 instead of 9 for g = 1, 2).
    Every other framework, and Keras on JAX and torch, use the summed gradient; TF's own v1
    optimizers deduplicated too. Found by `harness.py parity` (IMDB trajectory off by 5e-2).
    """

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if isinstance(gradient, tf.IndexedSlices):
            rows, where = tf.unique(gradient.indices)
            summed = tf.math.unsorted_segment_sum(gradient.values, where, tf.shape(rows)[0])
            gradient = tf.IndexedSlices(summed, rows, gradient.dense_shape)
        return super().update_step(gradient, variable, learning_rate)


class TokenAndPosition(keras.layers.Layer):
    """The Keras example's TokenAndPositionEmbedding: token embedding + embedding of positions 0..T-1."""

    def __init__(self, spec: TokenAndPositionEmbedding, seed: int, **kw):
        super().__init__(**kw)
        self.token = keras.layers.Embedding(
            spec.vocab, spec.dim, embeddings_initializer=init.RandomUniform(-0.05, 0.05, seed)
        )
        self.position = keras.layers.Embedding(
            spec.maxlen, spec.dim, embeddings_initializer=init.RandomUniform(-0.05, 0.05, seed + 1)
        )

    def call(self, x):
        return self.token(x) + self.position(keras.ops.arange(0, keras.ops.shape(x)[-1]))


class SelfAttention(keras.layers.Layer):
    """keras.layers.MultiHeadAttention called as the example calls it, att(x, x): no mask."""

    def __init__(self, spec: MultiHeadAttention, seed: int, **kw):
        super().__init__(**kw)
        self.att = keras.layers.MultiHeadAttention(
            spec.heads, spec.key_dim, kernel_initializer=init.GlorotUniform(seed)
        )

    def call(self, x):
        return self.att(x, x)


class ResidualBlock(keras.layers.Layer):
    """x + body(x), the example's residual adds (its TransformerBlock, one add per sub-block)."""

    def __init__(self, body: list, **kw):
        super().__init__(**kw)
        self.body = body

    def call(self, x):  # Keras 3 passes `training` on to the Dropout inside through its call context
        h = x
        for layer in self.body:
            h = layer(h)
        return x + h


def _layer(layer, seed: int):
    if isinstance(layer, Dense):
        return keras.layers.Dense(layer.units, layer.activation, kernel_initializer=init.GlorotUniform(seed))
    if isinstance(layer, Conv2D):  # padding="valid" is Keras's default
        return keras.layers.Conv2D(
            layer.filters, layer.kernel, activation=layer.activation, kernel_initializer=init.GlorotUniform(seed)
        )
    if isinstance(layer, MaxPool2D):
        return keras.layers.MaxPooling2D(layer.pool)
    if isinstance(layer, Flatten):
        return keras.layers.Flatten()
    if isinstance(layer, Dropout):
        return keras.layers.Dropout(layer.rate, seed=seed)
    if isinstance(layer, Embedding):
        return keras.layers.Embedding(
            layer.vocab, layer.dim, embeddings_initializer=init.RandomUniform(-0.05, 0.05, seed)
        )
    if isinstance(layer, LSTM):  # unit_forget_bias=True and zero biases are the defaults
        return keras.layers.LSTM(
            layer.units,
            kernel_initializer=init.GlorotUniform(seed),
            recurrent_initializer=init.Orthogonal(seed=seed + 1),
        )
    if isinstance(layer, TokenAndPositionEmbedding):
        return TokenAndPosition(layer, seed)
    if isinstance(layer, MultiHeadAttention):
        return SelfAttention(layer, seed)
    if isinstance(layer, LayerNorm):  # Keras's default epsilon is 1e-3; the example passes 1e-6
        return keras.layers.LayerNormalization(epsilon=layer.eps)
    if isinstance(layer, GlobalAveragePooling1D):
        return keras.layers.GlobalAveragePooling1D()
    if isinstance(layer, Residual):
        return ResidualBlock([_layer(sub, seed * 10 + j) for j, sub in enumerate(layer.layers)])
    raise TypeError(f"no Keras layer for {layer!r}")


def build(task: Task, seed: int):
    layers = [_layer(la, seed * 1000 + i) for i, la in enumerate(task.layers)]
    if _precision == "bf16":  # Keras's mixed-precision guide: the output layer in float32, so is the loss
        last = layers[-1]
        layers[-1] = type(last).from_config({**last.get_config(), "dtype": "float32"})
    model = keras.Sequential([keras.Input(task.input_shape, dtype=task.input_dtype), *layers])
    r = task.recipe
    loss = "binary_crossentropy" if task.binary else "sparse_categorical_crossentropy"
    adam = _SummedSlicesAdam if BACKEND == "tensorflow" else keras.optimizers.Adam
    opt = adam(learning_rate=r.lr, beta_1=r.beta1, beta_2=r.beta2, epsilon=r.eps, name="adam")
    model.compile(optimizer=opt, loss=loss, metrics=["accuracy"], jit_compile=_jit, steps_per_execution=_spe)
    model.task = task
    return model


def settings() -> dict[str, str]:
    return {
        "execution": f"Keras fit on {BACKEND}, jit_compile={_jit}, steps_per_execution={_spe}",
        "optimizer": "keras.optimizers.Adam" + (" with repeated sparse rows summed" if BACKEND == "tensorflow" else ""),
        "data_placement": "numpy arrays on the host; fit copies each batch to the GPU"
        if _device == "gpu"
        else "numpy arrays (a CPU run: no copy to a device)",
        "threads": ", ".join(f"{k} {v}" for k, v in _threads.items()) or "backend default, bounded by CPU affinity",
    }


def prepare(x: np.ndarray, y: np.ndarray | None = None):
    return x, y  # Keras takes numpy arrays; its data adapter batches them


def train_epoch(model, data, order: np.ndarray):
    x, y = data
    h = model.fit(x[order], y[order], batch_size=model.task.recipe.batch_size, epochs=1, shuffle=False, verbose=0)
    return model, float(h.history["loss"][-1]), float(h.history["accuracy"][-1])


def evaluate(model, data):
    x, y = data
    r = model.evaluate(x, y, batch_size=model.task.recipe.batch_size, verbose=0, return_dict=True)
    return float(r["loss"]), float(r["accuracy"])


def predict(model, data) -> np.ndarray:
    return np.asarray(model.predict(data[0], batch_size=model.task.recipe.batch_size, verbose=0))


def n_params(model) -> int:
    return int(model.count_params())


def layer_params(model) -> dict[str, int]:
    pairs = zip(model.task.layers, model.layers, strict=True)
    return {layer_key(i, s): la.count_params() for i, (s, la) in enumerate(pairs) if la.weights}


def peak_device_mib(model) -> float | None:
    if _device != "gpu":
        return None
    if BACKEND == "tensorflow":  # TF_FORCE_GPU_ALLOW_GROWTH=true (registry): no up-front reservation
        import tensorflow as tf

        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    if BACKEND == "torch":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    import jax

    return jax.devices()[0].memory_stats()["peak_bytes_in_use"] / 2**20


def sync(model) -> None:
    # fit/evaluate/predict return host values, so TensorFlow and torch are done; JAX dispatches
    # asynchronously, and the last trained variable depends on the whole last step.
    keras.ops.convert_to_numpy(model.trainable_variables[-1])


def get_weights(model) -> dict[str, np.ndarray]:
    # The canonical layout is Keras's: a layer's weights, in its own order (LSTM gates i, f, c, o; an
    # attention's query, key, value, output, each kernel then bias), are the canonical names in theirs.
    names = list(canonical_shapes(model.task))
    out = {}
    for i, (spec, layer) in enumerate(zip(model.task.layers, model.layers, strict=True)):
        mine = [n for n in names if n.startswith(layer_key(i, spec) + ".")]
        for name, w in zip(mine, layer.get_weights(), strict=True):
            out[name] = np.array(w, np.float32)  # a copy, never a view of a live variable
    return out


def set_weights(model, weights: dict[str, np.ndarray]):
    for i, (spec, layer) in enumerate(zip(model.task.layers, model.layers, strict=True)):
        key = layer_key(i, spec) + "."
        ws = [w for k, w in weights.items() if k.startswith(key)]
        if ws:
            layer.set_weights(ws)  # canonical order within a layer is Keras's own
    return model
