"""PyTorch with torch.compile: the eager adapter's model and training loop, its forward compiled.

Written by following docs/adding-a-framework.md, as a new adapter would be. Everything but `build`
and `versions` is the eager adapter's (frameworks/pytorch.py): same modules, initialisers, Adam (with
Keras's epsilon placement), frozen second LSTM bias and canonical weight mapping.
- The network's forward is replaced by its compiled version: the network stays an nn.Sequential, so
  the eager adapter's get/set_weights and parameter counts apply unchanged, and training updates the
  same parameters. Not nn.Module.compile(): in torch 2.13 it compiled nothing here (dynamo's frame
  counter stayed at 0, the first call took 4 ms), while torch.compile(net.forward) compiles (3 s).
- Default mode and backend (inductor): what `torch.compile(model)` gives a user. Compilation happens
  on the first batch of each new shape (the last, shorter batch; evaluation; inference), so it lands
  in the first epoch and in the warm-up predict, which the harness keeps apart from steady epochs.
"""

from __future__ import annotations

import torch

from frameworks import pytorch as eager
from frameworks.pytorch import (  # noqa: F401 - the contract's functions, unchanged from eager
    LSTM_BIAS_VECTORS,
    configure,
    evaluate,
    get_weights,
    layer_params,
    n_params,
    peak_device_mib,
    predict,
    prepare,
    set_weights,
    sync,
    train_epoch,
)
from tasks.spec import Task


def versions() -> dict[str, str]:
    return {**eager.versions(), "torch_compile": "default mode, inductor"}


def build(task: Task, seed: int) -> eager.Model:
    model = eager.build(task, seed)
    model.net.forward = torch.compile(model.net.forward)  # parameters stay the module's
    return model
