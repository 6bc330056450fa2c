"""Adapter vs plain loop: does an adapter handicap its framework? `harness.py overhead` runs this once per
framework, in its interpreter:

    python benchmarks/overhead.py FRAMEWORK THREADS

For the MNIST CNN and the IMDB LSTM it times the adapter's `train_epoch` on STEPS batches against a plain
training loop of the same network written as the framework's tutorials write one (PyTorch: zero_grad /
backward / step over tensor slices; Keras: `model.fit` with `optimizer="adam"`; JAX: a jitted Flax
TrainState step fed numpy batches; MXNet: `autograd.record` and `Trainer.step`). The two alternate for
ROUNDS rounds after a warm-up each, the side that goes first alternating too, and the ratio adapter /
plain is taken per round, then its median: drift of the machine hits both sides alike. The plain
loops skip what the suite adds for fairness (Keras's epsilon placement in PyTorch and Optax, summed
sparse rows in Keras's Adam on TensorFlow, batches gathered by index, a device-side loss and accuracy
sum): the ratio is what that costs. Prints one JSON object.
Synthetic inputs of the tasks' shapes: a step's cost does not depend on the pixel values.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dlbench.worker.cpus import pin  # noqa: E402
from dlbench.worker.parity import synthetic_x  # noqa: E402
from frameworks import FRAMEWORKS  # noqa: E402
from tasks import TASKS  # noqa: E402

STEPS, ROUNDS = 40, 7


def torch_loop(ad, model, x, y):
    import torch
    from torch.nn import functional as F

    net, task = model.net, model.task
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    (xt, yt), bs = ad.prepare(x, y), task.recipe.batch_size

    def epoch():
        net.train()
        for i in range(0, len(xt), bs):
            opt.zero_grad()
            out = net(xt[i : i + bs])
            loss = (
                F.binary_cross_entropy_with_logits(out.squeeze(1), yt[i : i + bs])
                if task.binary
                else F.cross_entropy(out, yt[i : i + bs].long())
            )
            loss.backward()
            opt.step()

    return epoch


def keras_loop(ad, model, x, y):
    import keras

    plain = ad.build(model.task, seed=1)  # the same layers, compiled the tutorial way
    loss = "binary_crossentropy" if model.task.binary else "sparse_categorical_crossentropy"
    plain.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    bs = model.task.recipe.batch_size
    return lambda: plain.fit(x, y, batch_size=bs, epochs=1, shuffle=False, verbose=0)


def jax_loop(ad, model, x, y):
    import jax
    import optax
    from flax.training import train_state

    state = model["state"]
    task = model["task"]
    params = jax.tree_util.tree_map(lambda a: a.copy(), state.params)  # the adapter donates its own buffers
    plain = train_state.TrainState.create(apply_fn=state.apply_fn, params=params, tx=optax.adam(1e-3))
    key = jax.random.PRNGKey(0)

    @jax.jit
    def step(s, xb, yb):
        def loss_fn(p):
            logits = s.apply_fn({"params": p}, xb, train=True, rngs={"dropout": key})
            if task.binary:
                return optax.sigmoid_binary_cross_entropy(logits[:, 0], yb).mean()
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        return s.apply_gradients(grads=jax.grad(loss_fn)(s.params))

    bs, box = task.recipe.batch_size, {"s": plain}

    def epoch():
        for i in range(0, len(x), bs):
            box["s"] = step(box["s"], x[i : i + bs], y[i : i + bs])
        jax.block_until_ready(box["s"].params)

    return epoch


def mxnet_loop(ad, model, x, y):
    import mxnet as mx
    from mxnet import autograd, gluon

    net, task = model["net"], model["task"]
    trainer = gluon.Trainer(
        [p for p in net.collect_params().values() if p.grad_req != "null"], "adam", {"learning_rate": 1e-3}
    )
    xt, yt = ad.prepare(x, y)
    loss_fn = gluon.loss.SigmoidBinaryCrossEntropyLoss() if task.binary else gluon.loss.SoftmaxCrossEntropyLoss()
    bs = task.recipe.batch_size

    def epoch():
        for i in range(0, len(x), bs):
            with autograd.record():
                loss = loss_fn(net(xt[i : i + bs]), yt[i : i + bs])
            loss.backward()
            trainer.step(bs)
        mx.nd.waitall()

    return epoch


def paddle_loop(ad, model, x, y):
    import paddle
    from paddle.nn import functional as F

    net, task = model.net, model.task
    opt = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.opt._parameter_list)
    (xt, yt), bs = ad.prepare(x, y), task.recipe.batch_size

    def epoch():
        net.train()
        for i in range(0, len(x), bs):
            out = net(xt[i : i + bs])
            loss = (
                F.binary_cross_entropy_with_logits(out.squeeze(1), yt[i : i + bs])
                if task.binary
                else F.cross_entropy(out, yt[i : i + bs])
            )
            loss.backward()
            opt.step()
            opt.clear_grad()

    return epoch


def mlx_loop(ad, model, x, y):
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim

    net, task = model.net, model.task
    opt = optim.Adam(learning_rate=1e-3)

    def loss_fn(n, xb, yb):
        logits = n(xb)
        if task.binary:
            return nn.losses.binary_cross_entropy(logits[:, 0], yb, with_logits=True, reduction="mean")
        return nn.losses.cross_entropy(logits, yb, reduction="mean")

    grad = nn.value_and_grad(net, loss_fn)
    (xt, yt), bs = ad.prepare(x, y), task.recipe.batch_size

    def epoch():
        net.train()
        for i in range(0, len(x), bs):
            _, g = grad(net, xt[i : i + bs], yt[i : i + bs])
            opt.update(net, g)
            mx.eval(net.parameters(), opt.state)

    return epoch


PLAIN = {
    "frameworks.pytorch": torch_loop,
    "frameworks.tensorflow_keras": keras_loop,
    "frameworks.jax_flax": jax_loop,
    "frameworks.mxnet_gluon": mxnet_loop,
    "frameworks.paddle_dygraph": paddle_loop,
    "frameworks.mlx_nn": mlx_loop,
}


def measure(ad, task) -> dict:
    rng = np.random.default_rng(0)
    n = STEPS * task.recipe.batch_size
    x = synthetic_x(task, n, rng)
    y = rng.integers(0, 2, n).astype(np.float32) if task.binary else rng.integers(0, 10, n).astype(np.int32)
    model = ad.build(task, seed=0)
    data, order = ad.prepare(x, y), np.arange(n)
    box = {"m": model}

    def adapter_epoch():
        box["m"], _, _ = ad.train_epoch(box["m"], data, order)
        ad.sync(box["m"])

    module = FRAMEWORKS[sys.argv[1]].module
    if module not in PLAIN:
        raise SystemExit(f"no plain loop for {module} in benchmarks/overhead.py: add one beside the others")
    plain_epoch = PLAIN[module](ad, model, x, y)
    adapter_epoch()  # warm-up: compilation, allocator, thread pools
    plain_epoch()

    def timed(fn) -> float:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    rounds = []
    for i in range(ROUNDS):  # which side goes first alternates: a drift within a round hits both alike
        if i % 2 == 0:
            a = timed(adapter_epoch)
            rounds.append((a, timed(plain_epoch)))
        else:
            p = timed(plain_epoch)
            rounds.append((timed(adapter_epoch), p))
    a, p = np.array(rounds).T
    return {
        "steps": STEPS,
        "rounds": ROUNDS,
        "adapter_step_ms": 1000 * float(np.median(a)) / STEPS,
        "plain_step_ms": 1000 * float(np.median(p)) / STEPS,
        "ratio": float(np.median(a / p)),
        # fastest against fastest: robust where a runtime flips between speed modes (TF's LSTM here)
        "ratio_of_minima": float(a.min() / p.min()),
        "ratios": [round(float(r), 3) for r in a / p],
    }


def main() -> None:
    name, threads = sys.argv[1], int(sys.argv[2])
    pin(threads)
    ad = importlib.import_module(FRAMEWORKS[name].module)
    ad.configure(threads, "cpu", "fp32", False, os.environ.get("DLBENCH_TIER", "default"))
    print(json.dumps({t: measure(ad, TASKS[t]) for t in ("mnist_cnn", "imdb_lstm")}))


if __name__ == "__main__":
    main()
