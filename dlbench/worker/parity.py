"""Cross-framework parity, the worker's half: same weights, same batches, in one framework.

`inputs(task)` makes the shared canonical weights and batches (in the driver); `measure(ad, task,
inputs)` runs inside one framework's worker and interpreter: statistics of a freshly built model's
initial weights, its per-layer parameter counts, then the shared canonical weights loaded, predictions
on a fixed batch, and STEPS Adam steps on fixed batches with dropout off (rate 0: the only randomness
frameworks cannot share), each step's loss and the final weights. The comparison of the frameworks'
measurements is dlbench/analysis/parity.py. numpy, the standard library and tasks/ only.
"""

from __future__ import annotations

import importlib
import os
import traceback
from dataclasses import replace

import numpy as np

from dlbench.protocol import PARITY_STEPS as STEPS
from dlbench.protocol import JobConfig
from dlbench.worker.cpus import pin
from tasks.reference import glorot_limit, init_weights
from tasks.spec import Dropout, Residual, Task

BATCH = 8  # small: seconds per framework, in CI too


def _no_dropout(layers: tuple) -> tuple:
    """Every Dropout at rate 0, a Residual's too."""
    return tuple(
        Dropout(0.0)
        if isinstance(la, Dropout)
        else replace(la, layers=_no_dropout(la.layers))
        if isinstance(la, Residual)
        else la
        for la in layers
    )


def parity_task(task: Task) -> Task:
    """The task with dropout off and small batches: what the trajectories are compared on."""
    return replace(task, layers=_no_dropout(task.layers), recipe=replace(task.recipe, batch_size=BATCH))


def synthetic_x(task: Task, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inputs of the task's shape: pixels and features in [0, 1), token ids in [0, vocab)."""
    if task.input_dtype == "int32":
        return rng.integers(0, task.layers[0].vocab, (n, *task.input_shape)).astype(np.int32)
    return rng.random((n, *task.input_shape), dtype=np.float32)


def inputs(task: Task, seed: int = 0) -> dict[str, np.ndarray]:
    """The shared canonical weights ("w/" keys), a batch to predict and STEPS training batches."""
    rng = np.random.default_rng(seed)
    w = init_weights(task, seed)
    # Biases and LayerNorm's beta start at 0 (forget gate 1), gamma at 1: an offset makes a lost or
    # mis-mapped one show in the forward pass, and keeps a tensor's norm off the few Adam steps it moved.
    for k in w:
        if k.endswith(("bias", "beta", "gamma")):
            w[k] = w[k] + rng.uniform(-0.1, 0.1, w[k].shape).astype(np.float32)
    out = {f"w/{k}": v for k, v in w.items()}
    out["x_predict"] = synthetic_x(task, 16, rng)
    out["x_train"] = synthetic_x(task, STEPS * BATCH, rng).reshape(STEPS, BATCH, *task.input_shape)
    if task.binary:
        out["y_train"] = rng.integers(0, 2, (STEPS, BATCH)).astype(np.float32)
    else:
        out["y_train"] = rng.integers(0, task.layers[-1].units, (STEPS, BATCH)).astype(np.int32)
    return out


def init_problems(task: Task, w: dict[str, np.ndarray]) -> list[str]:
    """Where a fresh model's weights depart from Keras's initialisers, one message per weight."""
    problems = []
    for key, v in w.items():
        v64, kind = v.astype(np.float64), key.rsplit(".", 1)[1]
        if kind == "recurrent_kernel":  # orthogonal: the (h, 4h) matrix's rows orthonormal
            err = np.abs(v64 @ v64.T - np.eye(v.shape[0])).max()
            if err > 1e-4:
                problems.append(f"{key}: not orthogonal (max |W W^T - I| = {err:.3g})")
        elif kind.endswith("kernel"):  # Glorot uniform: |w| <= limit, variance limit^2 / 3
            lim = glorot_limit(kind, v.shape)
            ratio = np.var(v64) / (lim**2 / 3)
            # The sample variance of n uniform draws has a relative standard error sqrt(0.8 / n) (its kurtosis
            # is 1.8): a 40-weight kernel (the Transformer's Dense(2)) strays 25 % by chance in 1 seed of 6.
            slack = max(0.25, 4 * np.sqrt(0.8 / v.size))
            if np.abs(v).max() > lim + 1e-6:
                problems.append(f"{key}: max |w| {np.abs(v).max():.4g} exceeds the Glorot bound {lim:.4g}")
            elif not 1 - slack < ratio < 1 + slack:
                problems.append(f"{key}: variance {ratio:.3g}x Glorot uniform's")
        elif kind.endswith("embeddings"):
            if not 0.049 < np.abs(v).max() <= 0.05 + 1e-7:  # float32(0.05) is 0.0500000007
                problems.append(f"{key}: max |w| {np.abs(v).max():.4g}, expected uniform(-0.05, 0.05)")
        elif kind == "gamma" and not np.array_equal(v, np.ones_like(v)):
            problems.append(f"{key}: not one")
        elif kind.endswith("bias") or kind == "beta":
            expected = np.zeros_like(v)
            if ".lstm." in key:
                expected[len(v) // 4 : len(v) // 2] = 1.0  # Keras's unit_forget_bias, gates i, f, g, o
            if not np.array_equal(v, expected):
                problems.append(f"{key}: not {'zero with forget gate 1' if '.lstm.' in key else 'zero'}")
    return problems


def measure(ad, task: Task, inp: dict[str, np.ndarray]) -> tuple[dict, dict[str, np.ndarray]]:
    """In a framework's worker: (summary for JSON, arrays: predictions, losses, final "w/" weights)."""
    fresh = ad.build(task, seed=0)
    summary = {
        "n_params": ad.n_params(fresh),
        "layer_params": ad.layer_params(fresh),
        "lstm_bias_vectors": ad.LSTM_BIAS_VECTORS,
        "init_problems": init_problems(task, ad.get_weights(fresh)),
    }
    pt = parity_task(task)
    weights = {k[2:]: v for k, v in inp.items() if k.startswith("w/")}
    model = ad.set_weights(ad.build(pt, seed=0), weights)
    arrays = {"predictions": ad.predict(model, ad.prepare(inp["x_predict"]))}
    model, losses = _trajectory(ad, model, inp)
    arrays["losses"] = losses
    arrays.update({f"w/{k}": v for k, v in ad.get_weights(model).items()})
    # Determinism: the same weights and batches once more, in this process; bit-identical losses or not.
    _, again = _trajectory(ad, ad.set_weights(ad.build(pt, seed=0), weights), inp)
    summary["deterministic"] = bool(np.array_equal(losses, again))
    return summary, arrays


def _trajectory(ad, model, inp: dict[str, np.ndarray]):
    """STEPS Adam steps, one batch each (one epoch of BATCH examples in their given order): (model, losses)."""
    losses = []
    for step in range(STEPS):
        batch = ad.prepare(inp["x_train"][step], inp["y_train"][step])
        model, loss, _ = ad.train_epoch(model, batch, np.arange(BATCH))
        losses.append(loss)
    ad.sync(model)
    return model, np.asarray(losses, np.float64)


def run_parity(cfg: JobConfig) -> dict:
    """Parity measurements for each task: arrays to cfg.out/TASK.npz, summaries in the result event."""
    from tasks import TASKS

    pin(cfg.threads, cfg.cpus)
    ad = importlib.import_module(cfg.module)
    device = ad.configure(cfg.threads, str(cfg.device), str(cfg.precision), cfg.deterministic, cfg.configuration)
    out = {}
    for name in cfg.tasks:
        try:
            with np.load(os.path.join(cfg.inputs, f"{name}.npz"), allow_pickle=False) as f:
                inp = {k: f[k] for k in f.files}
            summary, arrays = measure(ad, TASKS[name], inp)
            np.savez(os.path.join(cfg.out, f"{name}.npz"), **arrays)
            out[name] = summary
        except Exception as e:  # noqa: BLE001 - one task's failure is that task's row, not the framework's
            traceback.print_exc()
            out[name] = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:500]}
    return {"device": device, "versions": ad.versions(), "tasks": out}
