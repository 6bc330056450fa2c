"""A deliberately misbehaving adapter for the harness's failure tests; FAKE_MODE picks the fault.

raise: build() raises; hang: train_epoch() never returns; segfault: the worker dies by SIGSEGV;
nan: the loss is NaN; ok: a constant model that predicts class frequencies (numpy only);
async: each epoch's work (0.5 s) runs on after train_epoch returns, until sync waits for it, as on
an accelerator; async-nosync: the same with a sync that does not wait (the harness cannot tell);
slow: each epoch takes 0.2 s (for interrupting a matrix); oom: holds 600 MB resident for 10 s.
Tiers (the tuned tier's candidates, for `tune`): "half", "same" and "double" scale the slow epoch's 0.2 s.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

LSTM_BIAS_VECTORS = 1
MODE = os.environ.get("FAKE_MODE", "ok")
ASYNC_S = 0.5
CANDIDATES = {"default": 1.0, "half": 0.5, "same": 1.0, "double": 2.0}  # the slow epoch's time, scaled


_seen: dict = {}


def versions():
    # What the worker's environment showed this adapter (the tests assert on it through the row).
    return {"fake": "0.0", "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"), **_seen}


def configure(threads, device, precision="fp32", deterministic=False, tier="default"):
    if tier not in CANDIDATES:
        raise ValueError(f"the fake adapter has no tier {tier!r}")
    _seen.update(precision=precision, deterministic=str(deterministic), tier=tier)
    return "cpu"


def settings():
    tier = _seen.get("tier", "default")
    return {"execution": "numpy, constant model" if tier == "default" else f"numpy, {tier} (a fake flag)"}


def build(task, seed):
    if MODE == "raise":
        raise RuntimeError("deliberate failure in build")
    return {"task": task}


def prepare(x, y=None):
    return x, y


def train_epoch(model, data, order):
    if MODE == "hang":
        time.sleep(3600)
    if MODE == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if MODE == "slow":
        time.sleep(0.2 * CANDIDATES[_seen.get("tier", "default")])
    if MODE == "oom":
        model["ballast"] = np.ones(600 * 2**20, np.uint8)  # touched: resident, not just reserved
        time.sleep(10)
    if MODE == "alloc":  # 200 MiB touched (resident) inside every window, freed when it returns
        ballast = np.ones(200 * 2**20, np.uint8)
        del ballast
    if MODE.startswith("async"):
        model["pending"] = threading.Thread(target=time.sleep, args=(ASYNC_S,))
        model["pending"].start()
    return model, (float("nan") if MODE == "nan" else 1.0), 0.5


def evaluate(model, data):
    return 1.0, 0.5


def predict(model, data):
    return np.full((len(data[0]), 1), 0.5, np.float32)


def layer_params(model):
    return {}


def n_params(model):
    return model["task"].n_params


def peak_device_mib(model):
    return None


def sync(model):
    if MODE == "async" and model.get("pending"):
        model["pending"].join()


def get_weights(model):
    return {}


def set_weights(model, weights):
    return model
