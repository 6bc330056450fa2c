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


def _runs(tier, epochs_by_seed):
    import pandas as pd

    return pd.DataFrame(
        [{"seed": s, "tier": tier, "history": [{"epoch_s": e} for e in es]} for s, es in epochs_by_seed.items()]
    )


def test_payback_is_per_seed_pair_with_its_spread_never_a_profile_that_mixes_seeds():
    from dlbench.analysis.tiers import payback_over_seeds

    default = _runs("default", {0: [10, 10, 10, 10], 1: [10, 10, 10, 10], 2: [10, 10, 10, 10]})
    tuned = _runs("tuned", {0: [25, 5, 5, 5], 1: [12, 5, 5, 5], 2: [30, 20, 20, 20], 9: [1, 1, 1, 1]})  # 9: no pair
    epoch, words = payback_over_seeds(default, tuned)
    assert epoch == 3 and words == "epoch 3 (seed pairs 2-4; 2 of 3 pairs repaid)"  # seed 0: 4, seed 1: 2


def test_a_tuned_tier_with_the_same_steady_epochs_never_pays_back_its_slower_first_epoch():
    import pandas as pd

    from dlbench.analysis.tiers import tier_rows

    rows = []
    for tier in ("default", "tuned"):  # the same epochs in both tiers, seed by seed: indistinguishable
        for s, base in enumerate((1.0, 1.02, 0.98, 1.01)):
            hist = [{"epoch_s": base * (1.5 if i == 0 and tier == "tuned" else 1.0)} for i in range(4)]
            rows.append(
                {
                    "task": "imdb_lstm",
                    "framework": "keras-jax",
                    "tier": tier,
                    "seed": s,
                    "history": hist,
                    "first_epoch_s": hist[0]["epoch_s"],
                    "n_train": 20000,
                }
            )
    (row,) = tier_rows(pd.DataFrame(rows))
    assert row["compile payback"] == "never within the epochs run (4 seed pairs)", row


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


def settings(name: str, tiers: list[str]) -> dict[str, dict]:
    """tier -> the adapter's settings() (or {"error": ...} where configure refused it), one process per framework."""
    fw = FRAMEWORKS[name]
    python = ENVIRONMENTS[fw.env].python
    if not python.exists():
        pytest.skip(f"{fw.env} environment missing: {ENVIRONMENTS[fw.env].missing_hint}")
    r = subprocess.run(
        [str(python), "tests/support/settings_probe.py", fw.module, *tiers],
        cwd=ROOT,
        env={**os.environ, **fw.env_vars, "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [json.loads(x) for x in r.stdout.splitlines() if x.startswith('{"tier"')]
    return {x["tier"]: x.get("settings") or {"error": x["error"]} for x in lines}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(FRAMEWORKS))
def test_each_candidate_changes_exactly_the_settings_it_names_and_nothing_else_is_accepted(name):
    """Every registered candidate is one the adapter knows, and differs from the default where it says it does."""
    candidates = FRAMEWORKS[name].candidates
    got = settings(name, ["default", *(c.name for c in candidates), "tuned", "no-such-tier"])
    default = got["default"]
    assert {"execution", "optimizer", "data_placement", "threads"} <= default.keys(), default
    for c in candidates:
        assert "error" not in got[c.name], (c.name, got[c.name])
        changed = {k for k in default if default[k] != got[c.name][k]}
        assert got[c.name].keys() == default.keys() and changed == set(c.changes), (c.name, default, got[c.name])
    # "tuned" is not a configuration: the driver resolves it to a candidate (tune's choice) first
    assert "error" in got["tuned"] and "error" in got["no-such-tier"], got
