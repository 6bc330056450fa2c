"""Input-pipeline throughput: each framework's own loader feeding the same MNIST arrays in batches.

    python -m dlbench.worker.pipelines PIPELINE NPZ THREADS   (`harness.py assess`, in the framework's interpreter)

Prints one JSON line: samples per second over one epoch of the MNIST training arrays (54,000 images,
already decoded and scaled by tasks/data.py), shuffled, in batches of 128, each batch materialised as
the framework's tensors. The median of 3 timed epochs after one warm-up epoch. This measures the
loader, not decoding or augmentation: the arrays are the same for every pipeline.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from dlbench.worker.cpus import pin

BATCH = 128


def torch_dataloader(x, y):
    """torch.utils.data.DataLoader over a TensorDataset: the default, single-process loader."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=BATCH, shuffle=True)
    return lambda: sum(len(xb) for xb, _ in loader)


def tf_data(x, y):
    """tf.data from tensor slices, shuffled over the whole set, batched and prefetched."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=0).batch(BATCH).prefetch(tf.data.AUTOTUNE)
    return lambda: sum(int(xb.shape[0]) for xb, _ in ds)


def gluon_dataloader(x, y):
    """mxnet.gluon.data.DataLoader over an ArrayDataset; batches waited on (MXNet is asynchronous)."""
    import mxnet as mx
    from mxnet import gluon

    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(mx.nd.array(x), mx.nd.array(y)), BATCH, shuffle=True)

    def epoch():
        n = 0
        for xb, _ in loader:
            xb.wait_to_read()
            n += xb.shape[0]
        return n

    return epoch


def jax_numpy(x, y):
    """What JAX's own examples do: permute indices in numpy, slice, jax.device_put each batch."""
    import jax

    rng = np.random.default_rng(0)

    def epoch():
        n, order = 0, rng.permutation(len(x))
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            xb, _ = jax.device_put((x[idx], y[idx]))
            xb.block_until_ready()
            n += len(idx)
        return n

    return epoch


def paddle_dataloader(x, y):
    """paddle.io.DataLoader over a TensorDataset: Paddle's documented loader, single process."""
    import paddle

    ds = paddle.io.TensorDataset([paddle.to_tensor(x), paddle.to_tensor(y.astype(np.int64))])
    loader = paddle.io.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=0)
    return lambda: sum(int(xb.shape[0]) for xb, _ in loader)


def mlx_arrays(x, y):
    """What MLX's own examples do (mlx-examples mnist: batch_iterate): the arrays in mx.array once, a
    permutation of indices each epoch, each batch gathered and evaluated (MLX is lazy: mx.eval makes it)."""
    import mlx.core as mx

    xa, ya, rng = mx.array(x), mx.array(y), np.random.default_rng(0)

    def epoch():
        n, order = 0, mx.array(rng.permutation(len(x)))
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            xb, yb = xa[idx], ya[idx]
            mx.eval(xb, yb)
            n += int(idx.shape[0])
        return n

    return epoch


PIPELINES = {
    "torch DataLoader": torch_dataloader,
    "tf.data": tf_data,
    "Gluon DataLoader": gluon_dataloader,
    "numpy + jax.device_put": jax_numpy,
    "paddle DataLoader": paddle_dataloader,
    "mx.array gather (MLX's examples)": mlx_arrays,
}


def main() -> None:
    from tasks import TASKS
    from tasks.data import load_splits

    name, npz, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pin(threads)
    s = load_splits(TASKS["mnist_cnn"], "full", npz)
    epoch = PIPELINES[name](s.x_train, s.y_train)
    epoch()  # warm-up: first-iteration costs (thread pools, tracing) kept apart
    times = []
    for _ in range(3):
        t = time.perf_counter()
        n = epoch()
        times.append(time.perf_counter() - t)
    print(json.dumps({"pipeline": name, "samples": n, "epoch_s": times, "samples_per_s": n / float(np.median(times))}))


if __name__ == "__main__":
    main()
