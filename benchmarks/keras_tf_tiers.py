"""Which half of Keras-on-TensorFlow's tuned tier costs on the MNIST CNN: XLA or steps_per_execution? Run in
the main environment on a quiet machine:

    .venv/bin/python benchmarks/keras_tf_tiers.py

Builds the adapter's model (frameworks/tensorflow_keras.py) with each of the four combinations of
jit_compile (Keras's "auto", which is off on a CPU-only machine, or True) and steps_per_execution (1 or
32), trains one warm-up epoch of STEPS synthetic MNIST-shaped batches, then times a second; two rounds.
Prints ms per training step.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from frameworks import tensorflow_keras as A  # noqa: E402
from tasks import TASKS  # noqa: E402

STEPS, BATCH = 64, 128

if __name__ == "__main__":
    A.configure(2, "cpu")
    task = TASKS["mnist_cnn"]
    rng = np.random.default_rng(0)
    x, y = rng.random((STEPS * BATCH, 28, 28, 1), np.float32), rng.integers(0, 10, STEPS * BATCH)
    order = np.arange(STEPS * BATCH)
    for rnd in range(2):
        for jit, spe in ((False, 1), (False, 32), (True, 1), (True, 32)):
            A._jit_compile = lambda j=jit: True if j else "auto"  # the adapter reads these two at build
            A._steps_per_execution = lambda s=spe: s
            model = A.build(task, 0)
            A.train_epoch(model, (x, y), order)  # compile and warm up
            t0 = time.perf_counter()
            A.train_epoch(model, (x, y), order)
            A.sync(model)
            ms = 1000 * (time.perf_counter() - t0) / STEPS
            mode = f"jit_compile={'True' if jit else 'auto'}, steps_per_execution={spe:2}"
            print(f"round {rnd}: {mode}: {ms:6.1f} ms/step", flush=True)
