"""Does Paddle's bundled MKL take a slow path on AMD CPUs? Run from the repository root, machine quiet:

    .venv-paddle/bin/python benchmarks/paddle_mkl_dispatch.py

Paddle's CPU wheel ships MKL 2019.0 Update 5 (`libmklml_intel.so`; MKL_VERBOSE prints the version). MKL of
that age picks its kernels by CPU vendor, not by the instructions the CPU has: on an AMD CPU it runs a
generic path even where AVX2 and AVX-512 are there. MKL 2019/2020.0 still read the undocumented
`MKL_DEBUG_CPU_TYPE=5` (use the AVX2 kernels whatever the vendor), so the two settings separate the
dispatch from everything else. Each case runs in a fresh process (MKL reads the variable once), two
threads, the cases interleaved over ROUNDS rounds; it prints the best of each process's timings:

- one sgemm of the IMDB LSTM's shape (batch 32 x 128 inputs @ 128 x 512 gates, and 128 x 128 @ 128 x 512);
- STEPS training steps of the adapter's own IMDB LSTM (frameworks/paddle_dygraph.py), synthetic tokens:
  a step's cost does not depend on which words the reviews hold.

On an Intel CPU the two cases should match; the reference's speed sitting ran on one (boot 2dfb2a07).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROUNDS, STEPS, REPEATS = 3, 40, 5
CASES = {"MKL as shipped": {}, "MKL_DEBUG_CPU_TYPE=5": {"MKL_DEBUG_CPU_TYPE": "5"}}


def child() -> None:
    """One process: time the sgemms and the adapter's training steps, print one line of numbers."""
    import numpy as np
    import paddle

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from frameworks import paddle_dygraph as A
    from tasks import TASKS
    from tasks.imdb_lstm import MAXLEN, VOCAB

    def best_us(f, n: int) -> float:
        f()
        runs = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            for _ in range(n):
                f()
            runs.append((time.perf_counter() - t) / n * 1e6)
        return min(runs)

    w = paddle.randn([128, 512])
    small, big = paddle.randn([32, 128]), paddle.randn([128, 128])
    gemm32 = best_us(lambda: paddle.matmul(small, w), 500)
    gemm128 = best_us(lambda: paddle.matmul(big, w), 500)

    A.configure(2, "cpu")
    task = TASKS["imdb_lstm"]
    rng = np.random.default_rng(0)
    n = task.recipe.batch_size * STEPS
    data = A.prepare(rng.integers(1, VOCAB, (n, MAXLEN)).astype(np.int32), rng.integers(0, 2, n).astype(np.float32))
    model = A.build(task, seed=0)
    order = np.arange(n)
    A.train_epoch(model, data, order[: task.recipe.batch_size * 2])  # first steps pay for allocation
    step_ms = best_us(lambda: A.train_epoch(model, data, order), 1) / STEPS / 1e3
    print(f"{gemm32:.1f} {gemm128:.1f} {step_ms:.2f}")


def _cpuinfo(key: str) -> str:
    """The first value of KEY in /proc/cpuinfo ("vendor_id": GenuineIntel or AuthenticAMD, what MKL dispatches on)."""
    return next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith(key)), "?")


def main() -> None:
    cpu = f"{_cpuinfo('model name')} ({_cpuinfo('vendor_id')})"
    print(f"CPU: {cpu}; 2 threads; {ROUNDS} rounds, cases interleaved, fresh process each")
    times: dict[str, list[list[float]]] = {c: [] for c in CASES}
    for _ in range(ROUNDS):
        for case, extra in CASES.items():
            env = {**os.environ, "OMP_NUM_THREADS": "2", "GLOG_minloglevel": "2", **extra}
            out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"the {case} process failed: {out.stderr.strip().splitlines()[-1]}")
            times[case].append([float(v) for v in out.stdout.split()[-3:]])
    print(f"{'case':24s} {'sgemm 32x128@128x512':>22s} {'sgemm 128x128@128x512':>23s} {'IMDB LSTM step':>16s}")
    for case, rows in times.items():
        best = [min(r[i] for r in rows) for i in range(3)]
        print(f"{case:24s} {best[0]:19.1f} us {best[1]:20.1f} us {best[2]:13.2f} ms")
    a, b = [min(r[2] for r in times[c]) for c in CASES]
    print(f"the IMDB LSTM step as shipped is {a / b:.2f}x the step with MKL_DEBUG_CPU_TYPE=5")


if __name__ == "__main__":
    child() if sys.argv[1:] == ["--child"] else main()
