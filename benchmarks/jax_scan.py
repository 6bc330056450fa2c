"""Why is JAX's tuned tier (the epoch as one jitted lax.scan) slower on the MNIST CNN? Run in the main
environment, after the machine is quiet:

    .venv/bin/python benchmarks/jax_scan.py

Times STEPS training steps of the adapter's own `_step` (frameworks/jax_flax.py) wrapped five ways, two
rounds each, each case on a fresh state after its compile, and prints the median ms per step over three
timings. Synthetic MNIST-shaped inputs: a step's cost does not depend on the pixel values. The cases
separate the while loop (jax-ml/jax#12868: convolutions slower inside loop bodies on XLA:CPU) from
everything else that changes when steps share one compiled program. First it prints the dimension
labels of every convolution in each compiled program: b01f_01io->b01f (NHWC input, HWIO kernel) is the
form XLA:CPU's emitter can hand to Eigen's convolution (its conditions are in
xla/service/cpu/ir_emission_utils.cc); other forms cannot go there.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

from frameworks import jax_flax as A  # noqa: E402
from tasks import TASKS  # noqa: E402

STEPS, BATCH = 20, 128

A.configure(2, "cpu")
TASK = TASKS["mnist_cnn"]
_rng = np.random.default_rng(0)
X = jax.numpy.asarray(_rng.random((BATCH * 40, 28, 28, 1), np.float32))
Y = jax.numpy.asarray(_rng.integers(0, 10, BATCH * 40))
IDX, MASK = (jax.numpy.asarray(a) for a in A._batches(_rng.permutation(BATCH * 40)[: BATCH * STEPS], BATCH))


def _body(s, batch):
    return A._step(s, X, Y, batch[0], batch[1], False)[0], None


def _jit_step():
    """The adapter's step, jitted on its own as the default tier does."""
    return jax.jit(A._step, static_argnums=(5,))


def _jit_scan(unroll: int = 1):
    """The steps of the given batches in one jitted lax.scan, as the tuned tier does."""
    return jax.jit(lambda s, i, m: jax.lax.scan(_body, s, (i, m), unroll=unroll)[0])


def python_loop():
    """The default tier: one jitted call per step."""
    step = _jit_step()

    def run(s):
        for i in range(STEPS):
            s = step(s, X, Y, IDX[i], MASK[i], False)[0]
        return s

    return run


def scan(unroll: int = 1):
    """The tuned tier's shape: all steps in one lax.scan (unroll > 1 repeats the body inside the loop)."""
    f = _jit_scan(unroll)
    return lambda s: f(s, IDX, MASK)


def inlined():
    """All steps in one jit with no loop at all: Python unrolls them while tracing."""

    def run(s):
        for i in range(STEPS):
            s = _body(s, (IDX[i], MASK[i]))[0]
        return s

    return jax.jit(run)


def length1_scans():
    """One step per call, as in the default tier, but each inside a scan of length 1."""
    f = _jit_scan()

    def run(s):
        for i in range(STEPS):
            s = f(s, IDX[i : i + 1], MASK[i : i + 1])
        return s

    return run


def conv_labels(jitted, *args) -> list[str]:
    """The dim_labels of every convolution in the program XLA:CPU compiled for these arguments."""
    return re.findall(r" convolution\(.*?dim_labels=([^,\s]+)", jitted.lower(*args).compile().as_text())


def programs(state) -> dict:
    """The single compiled programs behind the cases, with their arguments."""
    scan_fn = _jit_scan()
    return {
        "the jitted step (default tier)": (_jit_step(), (state, X, Y, IDX[0], MASK[0], False)),
        "one scan over the steps (tuned tier)": (scan_fn, (state, IDX, MASK)),
        "a length-1 scan": (scan_fn, (state, IDX[:1], MASK[:1])),
        "one jit, steps inlined, no loop": (inlined(), (state,)),
    }


CASES = {
    "python loop of jitted steps (default tier)": python_loop(),
    "one scan over the steps (tuned tier)": scan(),
    f"one scan, unroll={STEPS}": scan(STEPS),
    "one jit, steps inlined, no loop": inlined(),
    "python loop of length-1 scans": length1_scans(),
}

if __name__ == "__main__":
    print(f"jax {jax.__version__}: convolutions per compiled program (dim_labels, count)")
    for name, (fn, args) in programs(A.build(TASK, 0)["state"]).items():
        labels = conv_labels(fn, *args)
        print(f"{name:44s} {', '.join(f'{k} x{labels.count(k)}' for k in sorted(set(labels)))}")
    print(f"{STEPS} MNIST CNN training steps of {BATCH}, median ms per step")
    for rnd in range(2):
        for name, fn in CASES.items():
            jax.block_until_ready(fn(A.build(TASK, 0)["state"]).params)  # compile
            times = []
            for _ in range(3):
                state = A.build(TASK, 0)["state"]
                t0 = time.perf_counter()
                jax.block_until_ready(fn(state).params)
                times.append(time.perf_counter() - t0)
            print(f"round {rnd}: {name:44s} {1000 * np.median(times) / STEPS:7.1f}", flush=True)
