"""The PyTorch adapter against the task contract and the independent numpy reference."""

from __future__ import annotations

import numpy as np
import pytest

from tasks import TASKS
from tasks.reference import forward, init_weights, max_rel_diff
from tasks.spec import canonical_shapes, lstm_bias_delta

torch_adapter = pytest.importorskip("frameworks.pytorch")


def batch(task, n=16, seed=0):
    """Synthetic inputs of the task's shape: pixels in [0, 1], token ids in [0, vocab)."""
    rng = np.random.default_rng(seed)
    if task.input_dtype == "int32":
        return rng.integers(0, 20000, (n, *task.input_shape)).astype(np.int32)
    return rng.random((n, *task.input_shape), dtype=np.float32)


@pytest.fixture(scope="module", autouse=True)
def _configure():
    torch_adapter.configure(threads=2, device="cpu")


@pytest.mark.parametrize("name", list(TASKS))
def test_parameter_count_is_the_tasks_plus_documented_delta(name):
    task = TASKS[name]
    model = torch_adapter.build(task, seed=0)
    expected = {"iris_mlp": 2_371, "mnist_cnn": 34_826, "imdb_lstm": 2_691_713 + 512}[name]
    assert torch_adapter.n_params(model) == expected == task.n_params + lstm_bias_delta(task, 2)


@pytest.mark.parametrize("name", list(TASKS))
def test_canonical_weights_round_trip(name):
    task = TASKS[name]
    model = torch_adapter.build(task, seed=0)
    w = init_weights(task, seed=7)
    got = torch_adapter.get_weights(torch_adapter.set_weights(model, w))
    assert {k: v.shape for k, v in got.items()} == canonical_shapes(task)
    for k in w:
        np.testing.assert_array_equal(got[k], w[k], err_msg=k)


@pytest.mark.parametrize("name", list(TASKS))
def test_predictions_match_the_numpy_reference(name):
    """Independent check of layouts: NCHW flatten permutation, transposed kernels, gate order, biases."""
    task = TASKS[name]
    w = init_weights(task, seed=3)
    if name == "imdb_lstm":  # non-zero biases, so that bias placement is really tested
        w = {k: (v + 0.1 if k.endswith("bias") else v) for k, v in w.items()}
    model = torch_adapter.set_weights(torch_adapter.build(task, seed=0), w)
    x = batch(task)
    got = torch_adapter.predict(model, torch_adapter.prepare(x))
    ref = forward(task, w, x)
    assert got.shape == ref.shape
    assert max_rel_diff(got, ref) <= 1e-5


@pytest.mark.parametrize("name", list(TASKS))
def test_fresh_model_has_keras_initialiser_statistics(name):
    task = TASKS[name]
    w = torch_adapter.get_weights(torch_adapter.build(task, seed=1))
    for key, v in w.items():
        if key.endswith(".kernel"):
            rf = int(np.prod(v.shape[:-2]))
            lim = np.sqrt(6 / (v.shape[-2] * rf + v.shape[-1] * rf))
            assert np.abs(v).max() <= lim + 1e-6, key
            assert np.var(v) == pytest.approx(lim**2 / 3, rel=0.25), key  # uniform(-l, l): l^2 / 3
        elif key.endswith("recurrent_kernel"):
            np.testing.assert_allclose(v @ v.T, np.eye(v.shape[0]), atol=1e-5)
        elif key.endswith("embeddings"):
            assert np.abs(v).max() <= 0.05 and np.abs(v).max() > 0.049
        elif key.endswith("bias"):
            expected = np.zeros_like(v)
            if "lstm" in key:
                expected[len(v) // 4 : len(v) // 2] = 1.0  # forget gate
            np.testing.assert_array_equal(v, expected, err_msg=key)


@pytest.mark.parametrize("name", list(TASKS))
def test_one_epoch_on_a_small_slice_reduces_the_loss(name):
    task = TASKS[name]
    rng = np.random.default_rng(0)
    n = 256
    x = batch(task, n, seed=1)
    if task.recipe.loss == "binary_crossentropy":  # learnable: label = whether token 5 occurs
        x[: n // 2, 40] = 5
        y = (x == 5).any(axis=1).astype(np.float32)
    else:
        classes = {"iris_mlp": 3, "mnist_cnn": 10}[name]
        y = rng.integers(0, classes, n).astype(np.int32)
    model = torch_adapter.build(task, seed=0)
    data = torch_adapter.prepare(x, y)
    before, _ = torch_adapter.evaluate(model, data)
    for _epoch in range(3):
        model, _, _ = torch_adapter.train_epoch(model, data, rng.permutation(n))
    torch_adapter.sync(model)
    after, _ = torch_adapter.evaluate(model, data)
    assert after < before


def test_dropout_is_off_at_inference():
    task = TASKS["imdb_lstm"]
    model = torch_adapter.build(task, seed=0)
    data = torch_adapter.prepare(batch(task, 8))
    np.testing.assert_array_equal(torch_adapter.predict(model, data), torch_adapter.predict(model, data))
