"""Default and tuned tiers side by side in the convergence runs: compile payback and the manifest.

Whether a tuned tier is faster is the speed protocol's question (each tuned variant against its own default
in one sitting: dlbench/analysis/speed.py's tier_comparisons); the convergence runs answer what compiling costs
and when it pays back.

A tuned tier (frameworks/__init__.py, each adapter's docstring) often pays for itself only later: a
compiled step is faster, but compiling costs the first epoch. `payback` finds the epoch at which the
tuned tier's cumulative training time first drops to the default's, from per-epoch times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks import TASKS

MANIFEST_KEYS = (
    "tier",
    "candidate",
    "execution",
    "optimizer",
    "precision",
    "deterministic",
    "data_placement",
    "threads",
)


def payback(default: list[float], tuned: list[float]) -> tuple[int | None, str]:
    """(epoch, words): the first epoch after which the tuned tier's cumulative time is at most the default's.

    Within the epochs both ran, from their per-epoch times; beyond them, at their last epochs' rates, said
    so; None when the tuned tier is never ahead ("never": its steady epoch is no faster)."""
    n = min(len(default), len(tuned))
    if n == 0:
        return None, "—"
    cd, ct = np.cumsum(default[:n]), np.cumsum(tuned[:n])
    ahead = np.nonzero(ct <= cd)[0]
    if len(ahead):
        e = int(ahead[0]) + 1
        return e, f"epoch {e}" + (" (ahead from the start)" if e == 1 else "")
    rate_d, rate_t = default[n - 1], tuned[n - 1]
    if rate_t >= rate_d:
        return None, f"never within {n} epoch{'s' * (n > 1)} (its steady epoch is not faster)"
    extra = int(np.ceil((ct[-1] - cd[-1]) / (rate_d - rate_t)))
    return n + extra, f"not within {n} epochs; at their last epochs' rates, epoch {n + extra}"


def payback_over_seeds(d: pd.DataFrame, t: pd.DataFrame) -> tuple[float | None, str]:
    """(median epoch, words): `payback` per seed run in both tiers (the same data order and initialisation
    on both sides), its median and spread over the pairs; never a median profile that mixes seeds."""
    by_d = {s: h for s, h in zip(d["seed"], d["history"], strict=True) if h}
    by_t = {s: h for s, h in zip(t["seed"], t["history"], strict=True) if h}
    found = [
        payback([e["epoch_s"] for e in by_d[s]], [e["epoch_s"] for e in by_t[s]])[0]
        for s in sorted(set(by_d) & set(by_t))
    ]
    if not found:
        return None, "— (no seed ran in both tiers)"
    reached = [e for e in found if e is not None]
    if not reached:
        return None, f"never within the epochs run ({len(found)} seed pair{'s' * (len(found) > 1)})"
    med = float(np.median(reached))
    spread = f"seed pairs {min(reached)}-{max(reached)}" if min(reached) != max(reached) else "every seed pair"
    return med, f"epoch {med:g} ({spread}; {len(reached)} of {len(found)} pairs repaid)"


def steps_per_epoch(ok: pd.DataFrame) -> dict[str, int]:
    """Training steps in an epoch per task, from the rows' training-set size and the recipe's batch."""
    return {
        t: int(np.ceil(ok.loc[ok["task"] == t, "n_train"].median() / TASKS[t].recipe.batch_size))
        for t in set(ok["task"])
        if t in TASKS and "n_train" in ok
    }


def tier_rows(ok: pd.DataFrame) -> list[dict]:
    """Per task and framework with both tiers (one setting otherwise): first and steady epochs of each tier
    (medians over runs) and the compile payback."""
    rows, steps_of = [], steps_per_epoch(ok)
    for (task, fw), g in ok.groupby(["task", "framework"]):
        d, t = g[g["tier"] == "default"], g[g["tier"] == "tuned"]
        if d.empty or t.empty:
            continue
        runs_d = [[h["epoch_s"] for h in hist[1:]] or [hist[0]["epoch_s"]] for hist in d["history"] if hist]
        runs_t = [[h["epoch_s"] for h in hist[1:]] or [hist[0]["epoch_s"]] for hist in t["history"] if hist]
        epoch, words = payback_over_seeds(d, t)
        steps = steps_of.get(task)
        if epoch is not None and steps:
            words += f"; {epoch * steps:,.0f} steps"
        rows.append(
            {
                "task": task,
                "framework": fw,
                "runs (default, tuned)": f"{len(runs_d)}, {len(runs_t)}",
                "first epoch (s) default → tuned": (
                    f"{d['first_epoch_s'].median():.3g} → {t['first_epoch_s'].median():.3g}"
                ),
                "epoch (s) default → tuned": f"{np.median([np.median(r) for r in runs_d]):.3g} → "
                f"{np.median([np.median(r) for r in runs_t]):.3g}",
                "compile payback": words,
            }
        )
    return rows


def section(ok: pd.DataFrame) -> str:
    """Per task (one setting of profile, device, threads, precision): default vs tuned per framework."""
    rows = tier_rows(ok)
    if not rows:
        return ""
    return (
        "### Default and tuned tiers\n\nEach framework's tuned tier (what its own documentation offers for "
        "speed; the manifest below lists it) beside its default in these runs: the first epoch (compilation "
        "included) and the median of the epochs after it. Compile payback: per seed run in both tiers, the epoch "
        "after which the tuned tier's cumulative training time is no longer behind the default's (median and "
        "spread over the seed pairs). Whether the tuned tier is faster is the speed protocol's verdict.\n\n"
        + pd.DataFrame(rows).to_markdown(index=False)
        + "\n"
    )


def manifest(ok: pd.DataFrame) -> str:
    """What shaped each framework's speed, per tier: the rows' `settings`, one line per framework and tier."""
    seen: dict[tuple[str, str, str], dict] = {}
    for fw, tier, s in zip(
        ok["framework"], ok.get("tier", [None] * len(ok)), ok.get("settings", [None] * len(ok)), strict=True
    ):
        if isinstance(s, dict):
            seen.setdefault((fw, str(tier), str(s.get("candidate") or "")), s)  # a tuned choice may differ by task
    if not seen:
        return ""
    rows = [{"framework": fw, **{k: s.get(k) or "—" for k in MANIFEST_KEYS}} for (fw, *_), s in sorted(seen.items())]
    return (
        "## Fairness manifest\n\nEverything that shaped each framework's speed, as its rows recorded it "
        "(`settings`): how it executes (eager, compiled, how), its optimizer implementation, precision, "
        "determinism, where the data lives and its thread pools. Nothing else differs between frameworks: "
        "the same model, initialisation, data order and optimizer math (`harness.py parity`).\n\n"
        + pd.DataFrame(rows).to_markdown(index=False)
        + "\n"
    )
