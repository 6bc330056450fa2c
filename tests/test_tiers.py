"""Default and tuned tiers: the payback arithmetic by hand, and tuned settings differing only where documented."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from dlbench.analysis.tiers import payback
from frameworks import ALIASES, ENVIRONMENTS, FRAMEWORKS
from tests.support.cli import ROOT


def test_payback_when_compilation_is_repaid_within_the_run():
    # default 10 s an epoch; tuned 25 s first (compiling), then 5 s: cumulative 10,20,30,40 vs 25,30,35,40
    assert payback([10, 10, 10, 10], [25, 5, 5, 5]) == (4, "epoch 4")


def test_payback_from_the_start_and_never():
    assert payback([10, 10], [8, 8]) == (1, "epoch 1 (ahead from the start)")
    epoch, words = payback([10, 10, 10], [30, 12, 12])  # slower every epoch: never
    assert epoch is None and words.startswith("never within 3 epochs")


def test_payback_beyond_the_epochs_run_is_extrapolated_and_said_so():
    # cumulative after 3: default 30, tuned 50 + 5 + 5 = 60; 30 behind at 5 s gained per epoch: 6 more
    assert payback([10, 10, 10], [50, 5, 5]) == (9, "not within 3 epochs; at their last epochs' rates, epoch 9")


def test_torch_compile_is_an_alias_of_torchs_tuned_tier():
    from dlbench.driver.config import Variant, variants
    from dlbench.protocol import Tier

    assert ALIASES["torch-compile"] == ("torch", "tuned")
    assert variants("torch-compile,jax", "default", FRAMEWORKS, ALIASES) == (
        Variant("torch", Tier.TUNED),
        Variant("jax", Tier.DEFAULT),
    )
    both = variants("torch", "all", FRAMEWORKS, ALIASES)
    assert both == (Variant("torch", Tier.DEFAULT), Variant("torch", Tier.TUNED)) and str(both[1]) == "torch (tuned)"


def settings(name: str, tier: str) -> dict:
    fw = FRAMEWORKS[name]
    python = ENVIRONMENTS[fw.env].python
    if not python.exists():
        pytest.skip(f"{fw.env} environment missing: {ENVIRONMENTS[fw.env].missing_hint}")
    r = subprocess.run([str(python), "tests/support/settings_probe.py", fw.module, tier], cwd=ROOT,
                       env={**os.environ, **fw.env_vars, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_a_tuned_tier_changes_exactly_the_documented_settings(name):
    default, tuned = settings(name, "default"), settings(name, "tuned")
    assert default.keys() == tuned.keys() and {"execution", "optimizer", "data_placement", "threads"} <= default.keys()
    changed = {k for k in default if default[k] != tuned[k]}
    assert changed == set(FRAMEWORKS[name].tuned), (name, default, tuned)
