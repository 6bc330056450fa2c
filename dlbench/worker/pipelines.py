"""Input-pipeline throughput: each framework's own loader, over MNIST's arrays and over IMDB's raw reviews.

    python -m dlbench.worker.pipelines images|text PIPELINE NPZ THREADS   (`harness.py assess`, in the
                                                                            framework's interpreter)

Prints one JSON line. Images: samples per second over one epoch of the MNIST training arrays (54,000
images, already decoded and scaled by tasks/data.py), shuffled, in batches of 128, each batch materialised
as the framework's tensors; this measures the loader, not decoding. Text: the 25,000 raw training reviews
(`prepare("imdb_text")`) to padded index batches of 32 as the IMDB LSTM trains on (Keras's imdb encoding:
tokenise, look up the word index, keep the last 80 tokens, pad in front), with the framework's own text
tools where it has them (tf.data with Keras's TextVectorization) and its DataLoader around the reference
tokenizer elsewhere; every batch of the first epoch is compared with the reference pipeline's
(tasks.data.encode_review) and the count of reviews that differ is reported, not assumed to be 0. Both:
the median of 3 timed epochs after one warm-up epoch.
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


# -- text: the raw reviews to padded index batches (texts already in the epoch's order: the same for every
# pipeline, so that each batch can be compared with the reference's)

TEXT_BATCH, MAXLEN, VOCAB = 32, 80, 20_000


def reference_batches(texts: list[str], word_index: dict[str, int]):
    """The reference pipeline: tasks.data.encode_review per review (Python), batches of TEXT_BATCH, as numpy."""
    from tasks.data import encode_review

    for i in range(0, len(texts), TEXT_BATCH):
        yield np.asarray([encode_review(t, word_index, VOCAB, MAXLEN) for t in texts[i : i + TEXT_BATCH]], np.int32)


def _encoded(texts, word_index):
    """A collate function for a DataLoader: the reference tokenizer over one batch of reviews."""
    from tasks.data import encode_review

    return np.asarray([encode_review(t, word_index, VOCAB, MAXLEN) for t in texts], np.int32)


def torch_text(texts, word_index):
    """torch.utils.data.DataLoader over the reviews, a tokenizer function as its collate_fn (torchtext is retired)."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(texts, batch_size=TEXT_BATCH, collate_fn=lambda b: torch.from_numpy(_encoded(b, word_index)))
    return lambda: iter(loader)


def tf_text(texts, word_index):
    """tf.data with Keras's TextVectorization: the word index as its vocabulary, Keras's old filters as its
    standardisation, then the imdb encoding's offsets, start token, pre-truncation and pre-padding in tf ops."""
    import keras
    import tensorflow as tf

    from tasks.data import FILTERS

    # TextVectorization's index of vocabulary[i] is i + 2 (0 pads, 1 is out of vocabulary): the word of rank r
    # at position r - 1, ranks the index lacks held by tokens no split yields (they contain a space)
    ranked = {r: w for w, r in word_index.items() if 0 < r < VOCAB - 3}
    vocab = [ranked.get(r, f"rank {r} unused") for r in range(1, max(ranked, default=0) + 1)]
    filters = FILTERS.pattern
    # Keras's text_to_word_sequence splits on Python's whitespace, which is Unicode's; TextVectorization's
    # "whitespace" split is ASCII's (147 of the 25,000 reviews came out otherwise, most by U+0085): every
    # other character Python calls whitespace becomes a space first.
    unicode_space = (
        "[\\x0b\\x0c\\x1c-\\x1f\\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]"
    )

    def standardize(s):
        s = tf.strings.regex_replace(tf.strings.lower(s, encoding="utf-8"), filters, " ")
        return tf.strings.regex_replace(s, unicode_space, " ")

    tv = keras.layers.TextVectorization(standardize=standardize, split="whitespace", vocabulary=vocab, ragged=True)

    def encode(batch):
        ids = tf.cast(tv(batch), tf.int32)  # vocabulary word of rank r: r + 1; out of vocabulary: 1
        ids = tf.ragged.map_flat_values(lambda v: tf.where(v == 1, 2, v + 2), ids)  # imdb: r + 3, unknown 2
        ids = tf.concat([tf.ones([tf.shape(batch)[0], 1], tf.int32), ids], axis=1)  # the start token
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        dense = ids.to_tensor(0)
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, MAXLEN - tf.shape(dense)[1])]])
        last = tf.reverse_sequence(dense, lengths, seq_axis=1, batch_axis=0)[:, :MAXLEN]  # the end, reversed
        return tf.reverse(last, axis=[1])  # ... back in order, zeros in front

    ds = tf.data.Dataset.from_tensor_slices(texts).batch(TEXT_BATCH).map(encode, num_parallel_calls=tf.data.AUTOTUNE)
    return lambda: iter(ds.prefetch(tf.data.AUTOTUNE))


def gluon_text(texts, word_index):
    """mxnet.gluon.data.DataLoader over the reviews, the tokenizer as its batchify_fn (GluonNLP is retired)."""
    import mxnet as mx
    from mxnet import gluon

    def batchify(b):
        return mx.nd.array(_encoded(b, word_index), dtype="int32")

    loader = gluon.data.DataLoader(gluon.data.SimpleDataset(texts), TEXT_BATCH, batchify_fn=batchify)
    return lambda: iter(loader)


def jax_text(texts, word_index):
    """What JAX's examples do: the batch made in numpy, jax.device_put."""
    import jax

    return lambda: (jax.device_put(b).block_until_ready() for b in reference_batches(texts, word_index))


def paddle_text(texts, word_index):
    """paddle.io.DataLoader over the reviews, the tokenizer as its collate_fn, single process."""
    import paddle

    class Reviews(paddle.io.Dataset):
        def __getitem__(self, i):
            return texts[i]

        def __len__(self):
            return len(texts)

    loader = paddle.io.DataLoader(
        Reviews(),
        batch_size=TEXT_BATCH,
        shuffle=False,
        num_workers=0,
        collate_fn=lambda b: paddle.to_tensor(_encoded(b, word_index)),
    )
    return lambda: iter(loader)


def mlx_text(texts, word_index):
    """The batch made in numpy, then mx.array, evaluated."""
    import mlx.core as mx

    def batches():
        for b in reference_batches(texts, word_index):
            a = mx.array(b)
            mx.eval(a)
            yield a

    return batches


def as_numpy(batch) -> np.ndarray:
    """A framework's tensor as numpy (MXNet's NDArray has its own method)."""
    return batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)


PIPELINES = {  # name -> (the images pipeline, the text pipeline)
    "torch DataLoader": (torch_dataloader, torch_text),
    "tf.data": (tf_data, tf_text),
    "Gluon DataLoader": (gluon_dataloader, gluon_text),
    "numpy + jax.device_put": (jax_numpy, jax_text),
    "paddle DataLoader": (paddle_dataloader, paddle_text),
    "mx.array gather (MLX's examples)": (mlx_arrays, mlx_text),
}


def differing(epoch, texts: list[str], word_index: dict[str, int]) -> int:
    """How many reviews a text pipeline's first epoch encodes otherwise than the reference pipeline."""
    bad = 0
    for got, want in zip(epoch(), reference_batches(texts, word_index), strict=True):
        got = as_numpy(got)
        bad += int(np.sum(np.any(got != want, axis=1))) if got.shape == want.shape else len(want)
    return bad


def timed(epoch) -> list[float]:
    """A text pipeline's epochs: one warm-up (first-iteration costs: thread pools, tracing), then 3 timed."""

    def run() -> int:
        return sum(int(b.shape[0]) for b in epoch())

    run()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    from tasks import TASKS
    from tasks.data import imdb_texts, load_splits

    kind, name, npz, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    pin(threads)
    images, text = PIPELINES[name]
    if kind == "images":
        s = load_splits(TASKS["mnist_cnn"], "full", npz)
        epoch = images(s.x_train, s.y_train)
        epoch()  # warm-up: first-iteration costs (thread pools, tracing) kept apart
        times = []
        for _ in range(3):
            t = time.perf_counter()
            n = epoch()
            times.append(time.perf_counter() - t)
        extra = {}
    else:
        texts, _, word_index = imdb_texts(npz)
        order = np.random.default_rng(0).permutation(len(texts))
        texts = [texts[i] for i in order]  # the epoch's order, the same for every pipeline
        epoch = text(texts, word_index)
        extra = {"differing_reviews": differing(epoch, texts, word_index)}
        times, n = timed(epoch), len(texts)
    rate = n / float(np.median(times))
    print(json.dumps({"pipeline": name, "kind": kind, "samples": n, "epoch_s": times, "samples_per_s": rate, **extra}))


if __name__ == "__main__":
    main()
