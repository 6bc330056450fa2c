"""The PyTorch adapter with one deliberate fairness bug, picked by BROKEN; `harness.py parity` must
catch each one and say where:

relu: an extra ReLU on the logits (the kind of bug published comparisons shipped);
init: PyTorch's default initialisers instead of Keras's;
eps: PyTorch's own Adam epsilon placement (after bias correction) instead of Keras's;
lstm-bias: both LSTM bias vectors trainable (their sum moves twice as fast under Adam).
"""

from __future__ import annotations

import os

from torch import nn

from frameworks import pytorch as base
from frameworks.pytorch import *  # noqa: F403 - the same adapter; build (and for eps, one helper) differ

MODE = os.environ.get("BROKEN", "relu")
LSTM_BIAS_VECTORS = 1

if MODE == "eps":
    base._keras_eps = lambda model: None  # train_epoch looks the helper up in base's globals


def build(task, seed):
    model = base.build(task, seed)
    if MODE == "relu":
        model.net.append(nn.ReLU())
    elif MODE == "init":
        for m in model.net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    elif MODE == "lstm-bias":
        for m in model.net.modules():
            if isinstance(m, nn.LSTM):
                m.bias_hh_l0.requires_grad_(True)
                model.opt.add_param_group({"params": [m.bias_hh_l0]})
    return model
