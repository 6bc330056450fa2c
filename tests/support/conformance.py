"""Conformance measurements for one adapter, run in its framework's own interpreter:

    python tests/support/conformance.py MODULE TASKS EXCHANGE_DIR [--export]

Prints one JSON object {task: {measurement: value}}; tests/test_conformance.py asserts on it, so the
checks hold for every registered adapter; it also lists the contract's names (frameworks/contract.py)
that the module lacks. With --export, the adapter also writes its weights after a short training and its
predictions on a fixed batch to EXCHANGE_DIR (the cross-framework reference); without it, any exported
set found there is loaded and its predictions compared. numpy, the standard library, tasks/ and the
adapter only: it runs in every environment.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from dlbench.worker.parity import init_problems  # noqa: E402
from tasks import TASKS  # noqa: E402
from tasks.reference import forward, init_weights, max_rel_diff  # noqa: E402
from tasks.spec import (  # noqa: E402
    canonical_shapes,
    expected_layer_params,  # noqa: E402
    lstm_bias_delta,
)


def batch(task, n: int, seed: int) -> np.ndarray:
    """Synthetic inputs of the task's shape: pixels in [0, 1], token ids in [0, vocab)."""
    rng = np.random.default_rng(seed)
    if task.input_dtype == "int32":
        return rng.integers(0, 20000, (n, *task.input_shape)).astype(np.int32)
    return rng.random((n, *task.input_shape), dtype=np.float32)


def learnable(task, n: int = 256):
    """A small data set with a signal to learn: token 5 present / the brightness of the input."""
    x = batch(task, n, seed=1)
    if task.binary:
        x[: n // 2, 40] = 5
        return x, (x == 5).any(axis=1).astype(np.float32)
    classes = task.layers[-1].units
    score = x.reshape(n, -1).mean(axis=1)
    return x, np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1])).astype(np.int32)


def check(ad, task, exchange: Path, export: bool) -> dict:
    r: dict = {}
    model = ad.build(task, seed=0)
    r["n_params"] = ad.n_params(model)
    r["expected_params"] = task.n_params + lstm_bias_delta(task, ad.LSTM_BIAS_VECTORS)
    r["layer_params"] = ad.layer_params(model)
    r["expected_layer_params"] = expected_layer_params(task, ad.LSTM_BIAS_VECTORS)
    r["init_problems"] = init_problems(task, ad.get_weights(model))

    # Independent reference: canonical weights with non-zero biases -> numpy forward pass.
    w = {k: v + np.float32(0.05) if k.endswith("bias") else v for k, v in init_weights(task, seed=3).items()}
    got = ad.get_weights(ad.set_weights(model, w))
    r["shapes_ok"] = {k: v.shape for k, v in got.items()} == canonical_shapes(task)
    r["roundtrip_max_abs"] = max(float(np.abs(got[k] - w[k]).max()) for k in w) if r["shapes_ok"] else None
    x = batch(task, 16, seed=0)
    data = ad.prepare(x)
    p1, p2 = ad.predict(model, data), ad.predict(model, data)
    r["reference_rel_diff"] = max_rel_diff(p1, forward(task, w, x))
    r["inference_deterministic"] = bool(np.array_equal(p1, p2))  # dropout off in predict

    # Training: three epochs on a small learnable set must reduce the loss.
    xs, ys = learnable(task)
    model = ad.build(task, seed=0)
    train = ad.prepare(xs, ys)
    r["loss_before"] = ad.evaluate(model, train)[0]
    rng = np.random.default_rng(0)
    for _ in range(3):
        model, loss, acc = ad.train_epoch(model, train, rng.permutation(len(xs)))
    r["sync_returns"] = ad.sync(model) is None
    r["loss_after"] = ad.evaluate(model, train)[0]

    # Cross-framework: predictions from weights another framework trained and exported.
    path = exchange / f"{task.name}.npz"
    if export:
        np.savez(path, predictions=ad.predict(model, data), **ad.get_weights(model))
    elif path.is_file():
        with np.load(path, allow_pickle=False) as f:
            theirs = {k: f[k] for k in f.files if k != "predictions"}
            r["exchange_rel_diff"] = max_rel_diff(ad.predict(ad.set_weights(model, theirs), data), f["predictions"])
    return r


def missing_from_contract(ad) -> list[str]:
    """The names frameworks/contract.py's Adapter declares that the adapter module does not provide."""
    from frameworks.contract import Adapter

    declared = set(Adapter.__annotations__) | {n for n, v in vars(Adapter).items() if callable(v) and n[0] != "_"}
    return sorted(n for n in declared if not hasattr(ad, n))


def main() -> None:
    module, tasks, exchange = sys.argv[1], sys.argv[2].split(","), Path(sys.argv[3])
    ad = importlib.import_module(module)
    ad.configure(threads=2, device="cpu", precision="fp32", deterministic=False, tier="default")
    out = {t: check(ad, TASKS[t], exchange, "--export" in sys.argv) for t in tasks}
    for t in tasks:
        out[t]["missing_from_contract"] = missing_from_contract(ad)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
