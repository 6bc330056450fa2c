"""Micro-benchmarks (pytest-benchmark): training steps and one inference batch, per framework x task.

One framework per pytest process (Keras backends cannot share one; MXNet lives in another
environment): `python harness.py microbench` runs this file once per framework, in its interpreter,
with DLBENCH_FRAMEWORK set, and merges the JSON files so that each group compares frameworks.
Inputs are synthetic batches of the task's shape (dlbench/worker/parity.py's synthetic_x): the cost of a step does not
depend on the pixel values. Every timed call ends with the adapter's sync, so asynchronous work counts.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

from dlbench.worker.cpus import pin
from dlbench.worker.parity import synthetic_x
from frameworks import FRAMEWORKS
from tasks import TASKS

FRAMEWORK = os.environ.get("DLBENCH_FRAMEWORK", "torch")
STEPS = 10  # training steps per timed call: train_epoch's fixed per-call cost (e.g. Keras's fit) is spread


@pytest.fixture(scope="module")
def ad():
    threads = int(os.environ.get("DLBENCH_THREADS", "2"))
    pin(threads)
    adapter = importlib.import_module(FRAMEWORKS[FRAMEWORK].module)
    adapter.configure(threads, "cpu", "fp32", False, "default")
    return adapter


def _data(task, n: int, ad):
    rng = np.random.default_rng(0)
    x = synthetic_x(task, n, rng)
    if task.binary:
        y = rng.integers(0, 2, n).astype(np.float32)
    else:
        y = rng.integers(0, task.layers[-1].units, n).astype(np.int32)
    return ad.prepare(x, y)


@pytest.mark.parametrize("task_name", list(TASKS))
def test_train_steps(benchmark, ad, task_name):
    task = TASKS[task_name]
    bs = task.recipe.batch_size
    state = {"model": ad.build(task, seed=0)}
    data, order = _data(task, STEPS * bs, ad), np.arange(STEPS * bs)

    def steps():
        state["model"] = ad.train_epoch(state["model"], data, order)[0]
        ad.sync(state["model"])

    steps()  # compilation and warm-up, outside the measurement
    benchmark.group = f"{task_name}: {STEPS} training steps of {bs}"
    benchmark.extra_info.update(framework=FRAMEWORK, task=task_name, op="train", examples=STEPS * bs)
    benchmark.pedantic(steps, rounds=5, iterations=1)


@pytest.mark.parametrize("task_name", list(TASKS))
def test_inference_batch(benchmark, ad, task_name):
    task = TASKS[task_name]
    model, data = ad.build(task, seed=0), _data(task, task.recipe.batch_size, ad)

    def infer():
        ad.predict(model, data)
        ad.sync(model)

    infer()
    benchmark.group = f"{task_name}: one inference batch of {task.recipe.batch_size}"
    benchmark.extra_info.update(framework=FRAMEWORK, task=task_name, op="infer", examples=task.recipe.batch_size)
    benchmark.pedantic(infer, rounds=20, iterations=1, warmup_rounds=2)
