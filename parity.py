"""Cross-framework parity: same weights, same batches -> same predictions and the same Adam steps.

Framework-neutral (numpy, the standard library and tasks/ only), in two halves:
- `measure(ad, task, inputs)` runs inside one framework's worker and interpreter: statistics of a
  freshly built model's initial weights, its per-layer parameter counts, then the shared canonical
  weights loaded, predictions on a fixed batch, and STEPS Adam steps on fixed batches with dropout
  off (rate 0: the only randomness frameworks cannot share), each step's loss and the final weights.
- `compare(task, inputs, measured)` runs in the harness: predictions against the numpy reference
  (tasks/reference.py, no framework), trajectories (losses and final weights) against the
  frameworks' consensus (the elementwise median over frameworks: with three or more, one framework
  that strays is outvoted; with two that disagree, both fail, as neither can be preferred), and a
  verdict whose problems name the task and the step or layer that diverged.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tasks.reference import forward, init_weights, max_rel_diff
from tasks.spec import LSTM, Dropout, Task, canonical_shapes

STEPS = 10
BATCH = 8  # small: seconds per framework, in CI too
FORWARD_TOL = 1e-5  # float32 against the float64 reference
TRAJECTORY_TOL = 1e-4  # float32 frameworks against each other after STEPS steps


def parity_task(task: Task) -> Task:
    """The task with dropout off and small batches: what the trajectories are compared on."""
    layers = tuple(Dropout(0.0) if isinstance(la, Dropout) else la for la in task.layers)
    return replace(task, layers=layers, recipe=replace(task.recipe, batch_size=BATCH))


def synthetic_x(task: Task, n: int, rng: np.random.Generator) -> np.ndarray:
    """Inputs of the task's shape: pixels and features in [0, 1), token ids in [0, vocab)."""
    if task.input_dtype == "int32":
        return rng.integers(0, task.layers[0].vocab, (n, *task.input_shape)).astype(np.int32)
    return rng.random((n, *task.input_shape), dtype=np.float32)


def inputs(task: Task, seed: int = 0) -> dict[str, np.ndarray]:
    """The shared canonical weights ("w/" keys), a batch to predict and STEPS training batches."""
    rng = np.random.default_rng(seed)
    w = init_weights(task, seed)
    for k in w:  # biases start at 0 (forget gate 1): an offset makes a lost or mis-mapped bias show
        if k.endswith("bias"):
            w[k] = w[k] + rng.uniform(-0.1, 0.1, w[k].shape).astype(np.float32)
    out = {f"w/{k}": v for k, v in w.items()}
    out["x_predict"] = synthetic_x(task, 16, rng)
    out["x_train"] = synthetic_x(task, STEPS * BATCH, rng).reshape(STEPS, BATCH, *task.input_shape)
    if task.recipe.loss == "binary_crossentropy":
        out["y_train"] = rng.integers(0, 2, (STEPS, BATCH)).astype(np.float32)
    else:
        out["y_train"] = rng.integers(0, task.layers[-1].units, (STEPS, BATCH)).astype(np.int32)
    return out


def expected_layer_params(task: Task, lstm_bias_vectors: int) -> dict[str, int]:
    """Canonical layer key -> parameters, with the extra LSTM bias of PyTorch/MXNet where kept."""
    out: dict[str, int] = {}
    for key, shape in canonical_shapes(task).items():
        layer = key.rsplit(".", 1)[0]
        out[layer] = out.get(layer, 0) + int(np.prod(shape))
    for i, la in enumerate(task.layers):
        if isinstance(la, LSTM):
            out[f"{i}.lstm"] += 4 * la.units * (lstm_bias_vectors - 1)
    return out


def init_problems(task: Task, w: dict[str, np.ndarray]) -> list[str]:
    """Where a fresh model's weights depart from Keras's initialisers, one message per weight."""
    problems = []
    for key, v in w.items():
        v64 = v.astype(np.float64)
        if key.endswith(".kernel"):  # Glorot uniform: |w| <= limit, variance limit^2 / 3
            rf = int(np.prod(v.shape[:-2]))
            lim = np.sqrt(6 / (v.shape[-2] * rf + v.shape[-1] * rf))
            ratio = np.var(v64) / (lim**2 / 3)
            if np.abs(v).max() > lim + 1e-6:
                problems.append(f"{key}: max |w| {np.abs(v).max():.4g} exceeds the Glorot bound {lim:.4g}")
            elif not 0.75 < ratio < 1.25:
                problems.append(f"{key}: variance {ratio:.3g}x Glorot uniform's")
        elif key.endswith(".recurrent_kernel"):  # orthogonal: the (h, 4h) matrix's rows orthonormal
            err = np.abs(v64 @ v64.T - np.eye(v.shape[0])).max()
            if err > 1e-4:
                problems.append(f"{key}: not orthogonal (max |W W^T - I| = {err:.3g})")
        elif key.endswith(".embeddings"):
            if not 0.049 < np.abs(v).max() <= 0.05 + 1e-7:  # float32(0.05) is 0.0500000007
                problems.append(f"{key}: max |w| {np.abs(v).max():.4g}, expected uniform(-0.05, 0.05)")
        elif key.endswith(".bias"):
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
    model = ad.set_weights(ad.build(pt, seed=0), {k[2:]: v for k, v in inp.items() if k.startswith("w/")})
    arrays = {"predictions": ad.predict(model, ad.prepare(inp["x_predict"]))}
    losses = []
    for step in range(STEPS):  # one batch = one epoch of BATCH examples in their given order
        batch = ad.prepare(inp["x_train"][step], inp["y_train"][step])
        model, loss, _ = ad.train_epoch(model, batch, np.arange(BATCH))
        losses.append(loss)
    ad.sync(model)
    arrays["losses"] = np.asarray(losses, np.float64)
    arrays.update({f"w/{k}": v for k, v in ad.get_weights(model).items()})
    return summary, arrays


def _weights(arrays: dict) -> dict[str, np.ndarray]:
    return {k[2:]: v for k, v in arrays.items() if k.startswith("w/")}


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||b||: how far a weight tensor moved away, as a whole.

    Not the elementwise max used for predictions: Adam divides each gradient by its own root mean
    square, so an element whose gradient is near eps turns float32 rounding into a visible step
    (measured: one of the 18,432 MNIST conv2 weights 9.6e-6 apart after 10 steps, everything else
    < 2e-6). Real differences (an eps placement, an extra bias, a mis-summed gradient) move whole
    tensors and show at 1e-3 and more.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def trajectory_diff(a: dict, b: dict) -> tuple[float, float]:
    """(losses, final weights): the max relative difference of the losses, of the weight tensors."""
    wa, wb = _weights(a), _weights(b)
    if wa.keys() != wb.keys():
        return np.inf, np.inf
    return max_rel_diff(a["losses"], b["losses"]), max(rel_l2(wa[k], wb[k]) for k in wb)


def _where(arrays: dict, consensus: dict) -> str:
    """The first step whose loss, and the layer whose final weights, stray most from the consensus."""
    loss_err = np.abs(arrays["losses"] - consensus["losses"]) / np.abs(consensus["losses"]).max()
    step = int(np.argmax(loss_err > TRAJECTORY_TOL)) + 1 if (loss_err > TRAJECTORY_TOL).any() else None
    w, c = _weights(arrays), _weights(consensus)
    layer = max(c, key=lambda k: rel_l2(w[k], c[k]) if k in w else np.inf)
    at = f"loss first differs at step {step} of {STEPS}" if step else "losses agree"
    return f"{at}; final weights differ most in {layer} ({rel_l2(w[layer], c[layer]):.2g})" if layer in w else at


def compare(task: Task, inp: dict[str, np.ndarray], measured: dict[str, tuple[dict, dict]]) -> list[dict]:
    """One row per framework: forward and trajectory differences, checks, verdict and problems."""
    reference = forward(task, {k[2:]: v for k, v in inp.items() if k.startswith("w/")}, inp["x_predict"])
    names = list(measured)
    keys = set.intersection(*(set(_weights(a)) for _, a in measured.values())) if measured else set()
    consensus = {  # elementwise median over frameworks: a majority outvotes one that strays
        k: np.median(np.stack([a[k] for _, a in measured.values()]), axis=0)
        for k in ["losses", *(f"w/{k}" for k in keys)]
    } if measured else {}  # fmt: skip
    rows = []
    for name in names:
        summary, arrays = measured[name]
        problems = [f"{task.name}: {p}" for p in summary["init_problems"]]
        expected = expected_layer_params(task, summary["lstm_bias_vectors"])
        for layer, n in expected.items():
            got = summary["layer_params"].get(layer)
            if got != n:
                problems.append(f"{task.name}: layer {layer} has {got} parameters, expected {n}")
        if summary["n_params"] != sum(summary["layer_params"].values()):
            problems.append(f"{task.name}: {summary['n_params']} parameters in all, but the layers hold "
                            f"{sum(summary['layer_params'].values())}")  # fmt: skip
        fwd = max_rel_diff(arrays["predictions"], reference)
        if not fwd <= FORWARD_TOL:
            problems.append(f"{task.name}: predictions differ from the numpy reference by {fwd:.3g} "
                            f"(tolerance {FORWARD_TOL:g})")  # fmt: skip
        pairs = {other: max(trajectory_diff(arrays, measured[other][1])) for other in names if other != name}
        loss_d, weight_d = trajectory_diff(arrays, consensus) if pairs else (None, None)
        traj = None if loss_d is None else max(loss_d, weight_d)
        if traj is not None and not traj <= TRAJECTORY_TOL:
            problems.append(f"{task.name}: trajectory differs from the frameworks' consensus by {traj:.3g} "
                            f"(tolerance {TRAJECTORY_TOL:g}): {_where(arrays, consensus)}")  # fmt: skip
        rows.append({
            "task": task.name,
            "framework": name,
            "forward_rel_diff": fwd,
            "loss_rel_diff": loss_d,
            "weights_rel_diff": weight_d,
            "trajectory_rel_diff": traj,
            "pairs": pairs,
            "params_ok": not any("parameters" in p for p in problems),
            "init_ok": not summary["init_problems"],
            "verdict": "FAIL" if problems else ("pass" if pairs else "pass (forward only: one framework)"),
            "problems": problems,
        })  # fmt: skip
    return rows
