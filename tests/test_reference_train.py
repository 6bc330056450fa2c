"""The training reference's gradients against central finite differences of the forward reference.

On a small copy of the Transformer task (the same layer kinds, tiny sizes), every weight tensor's
gradient is checked at random entries; random weights (biases, gamma and beta moved off their initial
values) make every term of the backward matter.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.imdb_transformer import TASK
from tasks.reference import forward, init_weights
from tasks.reference_train import loss_and_grads, train
from tasks.spec import (
    Dense,
    Dropout,
    GlobalAveragePooling1D,
    LayerNorm,
    MultiHeadAttention,
    Residual,
    TokenAndPositionEmbedding,
    canonical_shapes,
    count_params,
)


def small(heads: int = 2, key_dim: int = 4, dim: int = 6, maxlen: int = 5, vocab: int = 11):
    layers = (
        TokenAndPositionEmbedding(vocab, maxlen + 2, dim),  # a position table longer than the inputs
        Residual((MultiHeadAttention(heads, key_dim), Dropout(0.0))),
        LayerNorm(1e-6),
        Residual((Dense(7, "relu"), Dense(dim), Dropout(0.0))),
        LayerNorm(1e-3),
        GlobalAveragePooling1D(),
        Dense(5, "relu"),
        Dense(3, "softmax"),
    )
    return replace(TASK, layers=layers, input_shape=(maxlen,))


def _weights(task, seed):
    rng = np.random.default_rng(seed)
    w = init_weights(task, seed)
    return {k: (v + rng.normal(0, 0.3, v.shape)).astype(np.float64) for k, v in w.items()}


def _loss(task, w, x, y) -> float:
    p = forward(task, w, x)
    return float(-np.log(p[np.arange(len(y)), y]).mean())


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**16), heads=st.integers(1, 3), key_dim=st.integers(1, 5), dim=st.integers(2, 7))
def test_every_gradient_is_the_finite_difference_of_the_forward(seed, heads, key_dim, dim):
    task = small(heads, key_dim, dim)
    rng = np.random.default_rng(seed)
    w = _weights(task, seed)
    x = rng.integers(0, 11, (4, 5))
    x[0, :2] = x[1, 0]  # repeated tokens: their embedding rows' gradients must add up
    y = rng.integers(0, 3, 4)
    loss, g = loss_and_grads(task, w, x, y)
    assert loss == pytest.approx(_loss(task, w, x, y), rel=1e-12)
    assert g.keys() == w.keys()
    h = 1e-6
    for name, value in w.items():
        assert g[name].shape == value.shape, name
        for idx in {tuple(rng.integers(0, s) for s in value.shape) for _ in range(4)}:
            up, down = dict(w), dict(w)
            up[name], down[name] = value.copy(), value.copy()
            up[name][idx] += h
            down[name][idx] -= h
            numeric = (_loss(task, up, x, y) - _loss(task, down, x, y)) / (2 * h)
            assert g[name][idx] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, idx)


def test_adam_steps_lower_the_loss_and_move_every_weight():
    task = small()
    rng = np.random.default_rng(0)
    w = init_weights(task, 0)
    x = np.repeat(rng.integers(0, 11, (1, 8, 5)), 30, axis=0)  # one batch, 30 times
    y = np.repeat(rng.integers(0, 3, (1, 8)), 30, axis=0)
    losses, final = train(task, w, x, y)
    assert (np.diff(losses) < 0).all() and losses[-1] < 0.8 * losses[0]
    # The key projection's bias adds q . b to every score of a query: the same over the keys, so the softmax
    # ignores it and its gradient is zero (in every framework too); every other weight moves.
    still = [k for k in w if np.allclose(final[k], w[k])]
    assert still == ["1.residual.0.multiheadattention.key_bias"]


def test_the_first_adam_step_adds_eps_before_the_bias_correction_as_keras():
    """Keras: w -= lr * sqrt(1 - b2) / (1 - b1) * m / (sqrt(v) + eps), i.e. -lr * g / (|g| + eps / sqrt(1 - b2))
    at step 1; PyTorch and Optax divide by |g| + eps instead (the trap parity once caught on Iris)."""
    task, r = small(), TASK.recipe
    rng = np.random.default_rng(1)
    w = init_weights(task, 1)
    x, y = rng.integers(0, 11, (1, 4, 5)), rng.integers(0, 3, (1, 4))
    _, g = loss_and_grads(task, {k: v.astype(np.float64) for k, v in w.items()}, x[0], y[0])
    _, final = train(task, w, x, y)
    for k in w:
        keras = -r.lr * g[k] / (np.abs(g[k]) + r.eps / np.sqrt(1 - r.beta2))
        np.testing.assert_allclose(final[k] - w[k], keras, rtol=1e-9, atol=1e-15)


def test_the_transformer_task_has_keras_parameter_count_and_layout():
    assert count_params(TASK) == TASK.n_params == 657_758  # the Keras example's model.summary() total
    shapes = canonical_shapes(TASK)
    assert shapes["1.residual.0.multiheadattention.query_kernel"] == (32, 2, 32)  # key_dim = embed_dim
    assert shapes["1.residual.0.multiheadattention.output_kernel"] == (2, 32, 32)
    w = init_weights(TASK, 0)
    lim = np.sqrt(6 / (32 + 64))  # Keras's fans of the (32, 2, 32) query kernel: EinsumDense's axes, 32 in, 64 out
    q = w["1.residual.0.multiheadattention.query_kernel"]
    assert np.abs(q).max() <= lim and np.abs(q).max() > 0.9 * lim
    assert (w["2.layernorm.gamma"] == 1).all() and (w["2.layernorm.beta"] == 0).all()


# The adapters that build the Transformer task so far (issue 39); each runs in its own interpreter.
BUILT_BY = ("torch", "tensorflow", "keras-jax", "keras-torch", "jax", "jax-nnx", "paddle", "mlx", "mxnet")


@pytest.mark.slow
@pytest.mark.parametrize("name", BUILT_BY)
def test_an_adapter_trains_the_transformer_as_the_numpy_reference_does(name):
    """Forward and 10 Adam steps against the references (until the task is registered and `harness.py
    parity` covers it): the same parameters per layer, Keras's initial spreads, one weight layout."""
    import json
    import os
    import subprocess

    from frameworks import ENVIRONMENTS, FRAMEWORKS
    from tests.support.cli import ROOT

    fw = FRAMEWORKS[name]
    python = ENVIRONMENTS[fw.env].python
    if not python.exists():
        pytest.skip(f"{ENVIRONMENTS[fw.env].venv} missing")
    r = subprocess.run(
        [str(python), "tests/support/oracle_check.py", fw.module],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **fw.env_vars, "OMP_NUM_THREADS": "1"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["n_params"] == got["expected_params"] == sum(got["layer_params"].values()) == 657_758
    assert got["keys"] and got["round_trip"] == 0.0
    for k, (std, expected, n) in got["init_std"].items():  # Keras's initialisers (fans included): the spread of
        # n draws, within 4 standard errors of a sample standard deviation (relative 1 / sqrt(2n))
        assert std == pytest.approx(expected, rel=max(0.05, 4 / np.sqrt(2 * n)), abs=1e-7), k
    assert got["forward"] < 1e-5 and got["losses"] < 1e-4 and got["weights"] < 1e-4, got
