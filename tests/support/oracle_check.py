"""Run inside one framework's interpreter: an adapter on the Transformer task against the numpy references.

    python tests/support/oracle_check.py frameworks.pytorch

Prints one JSON line: parameter counts, the weight round trip, the forward pass against
tasks/reference.py and 10 Adam steps against tasks/reference_train.py (dropout off, batches of 8).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from dlbench.worker.parity import parity_task  # noqa: E402
from tasks.imdb_transformer import TASK  # noqa: E402
from tasks.reference import forward, init_weights, max_rel_diff  # noqa: E402
from tasks.reference_train import train  # noqa: E402
from tasks.spec import count_params  # noqa: E402


def main(module: str) -> dict:
    ad = importlib.import_module(module)
    ad.configure(1, "cpu", "fp32", True, "default")
    task = parity_task(TASK)
    model = ad.build(task, 0)
    fresh = ad.get_weights(model)
    ref = init_weights(task, 0)
    rng = np.random.default_rng(0)
    w = {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in ref.items()}
    model = ad.set_weights(model, w)
    back = ad.get_weights(model)
    x = rng.integers(0, 20_000, (16, 200)).astype(np.int32)
    forward_diff = max_rel_diff(ad.predict(model, ad.prepare(x)), forward(task, w, x))
    xs = rng.integers(0, 20_000, (10, 8, 200)).astype(np.int32)
    ys = rng.integers(0, 2, (10, 8)).astype(np.int32)
    losses = []
    for xb, yb in zip(xs, ys, strict=True):
        model, loss, _ = ad.train_epoch(model, ad.prepare(xb, yb), np.arange(8))
        losses.append(loss)
    ref_losses, ref_w = train(task, w, xs, ys)
    got = ad.get_weights(model)
    return {
        "n_params": ad.n_params(model),
        "expected_params": count_params(task),
        "layer_params": ad.layer_params(model),
        "keys": list(fresh) == list(ref) and all(fresh[k].shape == ref[k].shape for k in ref),
        "init_std": {k: [float(fresh[k].std()), float(ref[k].std()), ref[k].size] for k in ref},
        "round_trip": max(float(np.abs(back[k] - w[k]).max()) for k in w),
        "forward": forward_diff,
        "losses": max(abs(a - b) / abs(b) for a, b in zip(losses, ref_losses, strict=True)),
        "weights": max(float(np.linalg.norm(got[k] - ref_w[k]) / max(np.linalg.norm(ref_w[k]), 1e-12)) for k in ref_w),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
