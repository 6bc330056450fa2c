"""Hand-made rows shared by the tests."""

from __future__ import annotations


def speed_row(sid: str, framework: str, value: float, group: int, *, steps: int = 7, **fields) -> dict:
    """One ok process of a speed sitting `sid` in group `group`: two whole-epoch windows of `steps` steps at
    `value` seconds a step, anchor torch, on Iris; `fields` replace any field."""
    row = {
        "kind": "speed",
        "status": "ok",
        "framework": framework,
        "tier": "default",
        "task": "iris_mlp",
        "profile": "speed",
        "seed": group,
        "round": group,
        "anchor": "torch",
        "threads": 2,
        "machine_busy": False,
        "sitting": {"id": sid, "boot_id": sid, "started": sid},
        "window_kind": "epoch",
        "window_steps": [steps, steps],
        "window_s": [steps * value, steps * value],
        "epoch_steps": steps,
        "provenance": {"machine": {"cpu": "test"}},
    }
    return {**row, **fields}
