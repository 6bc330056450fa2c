"""Repetitions planned from measured variance (Kalibera & Jones 2013, "Rigorous Benchmarking in Reasonable
Time", ISMM): a pilot measures, per framework x task, the variance between processes and between window
pairs inside one process, and what a process and a pair cost; the plan then chooses window pairs per
cell and processes per framework to reach a stated precision at least cost, within a time budget.

On the log scale a process's value (its time per step) has variance  V = between + within / m  with m
window pairs, and costs  c_task + m * c_pair  seconds on top of the process's start (import, paid once
for all its tasks). Minimising cost for a given V gives Kalibera & Jones's optimum
m* = sqrt((c_task / c_pair) * (within / between)), bounded to PAIRS. Processes are then added one at a
time where they shrink the widest predicted anchor interval most per second, until every predicted
95 % interval is within +-target or the budget is spent. The plan sees variances and costs only, never
the ratios: it cannot steer a verdict.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as st

from dlbench.analysis.verdicts import LEVEL

PAIRS = (2, 8)  # window pairs per process and task, at least and at most
MIN_BETWEEN = 1e-5  # a between-process variance of 0 from two pilot processes is chance: floor (0.3 % sd)


def fit_line(steps: list[int], seconds: list[float]) -> tuple[float, float, float]:
    """Least squares seconds = call + step * steps: (call, step, residual variance)."""
    n = len(steps)
    mk, mt = sum(steps) / n, sum(seconds) / n
    sxx = sum((k - mk) ** 2 for k in steps)
    step = sum((k - mk) * (t - mt) for k, t in zip(steps, seconds, strict=True)) / sxx
    call = mt - step * mk
    return call, step, sum((t - call - step * k) ** 2 for k, t in zip(steps, seconds, strict=True)) / max(1, n - 2)


def process_value(row: dict) -> float:
    """A speed row's time per step, recomputed from its windows (the worker's formula, from the raw data)."""
    steps, seconds = row["window_steps"], row["window_s"]
    if row["window_kind"] == "epoch":
        return sum(seconds) / sum(steps)
    call, step, _ = fit_line(steps, seconds)
    return step + call / row["epoch_steps"]


def within_log_var(row: dict) -> float:
    """The variance of log(value) that the process's own windows leave (delta method), per window pair."""
    steps, seconds, v = row["window_steps"], row["window_s"], process_value(row)
    pairs = row.get("pairs") or len(steps) / 2
    if row["window_kind"] == "epoch":
        per_step = np.asarray(seconds) / np.asarray(steps)
        return float(np.var(per_step, ddof=1) / len(per_step) / v**2 * pairs)
    _, _, s2 = fit_line(steps, seconds)
    kc = np.asarray(steps, float) - np.mean(steps)
    return float(s2 / (kc**2).sum() / v**2 * pairs)


@dataclass(frozen=True)
class Components:
    """One framework x task from the pilot: variance components (log scale) and costs (seconds)."""

    processes: int
    between: float  # variance of log(value) between processes, less what the windows explain
    within: float  # variance of log(value) one window pair leaves inside a process
    pair_s: float  # one long + one short window
    task_s: float  # the rest of the task in a process: data, build, warm-up


def components(rows: list[dict]) -> Components:
    """From a cell's pilot rows (status ok, one per process)."""
    logs = np.log([process_value(r) for r in rows])
    within = float(np.mean([within_log_var(r) for r in rows]))
    pairs = np.mean([r.get("pairs") or len(r["window_steps"]) / 2 for r in rows])
    total_between = float(np.var(logs, ddof=1)) if len(logs) > 1 else math.nan
    between = max(MIN_BETWEEN, total_between - within / pairs) if len(logs) > 1 else MIN_BETWEEN
    pair_s = float(np.mean([sum(r["window_s"]) / (r.get("pairs") or len(r["window_s"]) / 2) for r in rows]))
    task_s = float(np.mean([r["task_s"] for r in rows]))  # data, build and warm-up
    return Components(len(rows), between, within, pair_s, task_s)


def optimal_pairs(c: Components, start_share_s: float) -> int:
    """Kalibera & Jones's optimum number of window pairs per process, within PAIRS."""
    m = math.sqrt((c.task_s + start_share_s) / max(c.pair_s, 1e-9) * c.within / c.between)
    return int(min(max(round(m), PAIRS[0]), PAIRS[1]))


def half_width(v_f: float, n_f: int, v_a: float, n_a: int) -> float:
    """Predicted half-width of the 95 % log-ratio interval (Hsu's df, as dlbench/analysis/verdicts.py)."""
    if min(n_f, n_a) < 2:
        return math.inf
    return float(st.t.ppf(0.5 + LEVEL / 2, min(n_f, n_a) - 1)) * math.sqrt(v_f / n_f + v_a / n_a)


@dataclass(frozen=True)
class Design:
    pairs: dict[str, dict[str, int]]  # framework -> task -> window pairs per process
    groups: int  # groups in all (the pilot's included): every framework has one process in each
    group_s: float  # predicted seconds of one more group
    half_width: dict[str, dict[str, float]]  # framework -> task -> predicted 95 % half-width of log(ratio)
    cost_s: float  # predicted seconds of the groups still to run
    target: float
    budget_s: float

    def to_json(self) -> dict:
        return asdict(self)


def plan(
    comps: dict[tuple[str, str], Components],
    fixed_s: float,
    anchor: str,
    done: int,
    budget_s: float,
    target: float = 0.05,
) -> Design:
    """The design for the groups after the pilot: `comps` per (framework, task); `fixed_s` what a group
    costs besides its timed windows (imports side by side, builds, warm-ups, waits: the pilot's measured
    group time less its windows); `done` the groups measured; `budget_s` what is left.

    More groups until every predicted interval is within +-target, or the budget is spent. The prediction
    treats the two sides as independent; a group's shared drift, which pairing removes, only makes the
    real intervals narrower."""
    frameworks = sorted({f for f, _ in comps})
    tasks = {f: [t for g, t in comps if g == f] for f in frameworks}
    best = {f: {t: optimal_pairs(comps[f, t], fixed_s / max(1, len(comps))) for t in tasks[f]} for f in frameworks}
    log_target = math.log(1 + target)

    def design(cap: int) -> tuple[float, int, dict, float, dict]:
        """Kalibera & Jones's pairs, at most `cap`; then as many groups as needed and affordable."""
        pairs = {f: {t: min(m, cap) for t, m in best[f].items()} for f in frameworks}
        var = {(f, t): comps[f, t].between + comps[f, t].within / pairs[f][t] for f, t in comps}
        for t in tasks.get(anchor, []):
            var[anchor, t] = comps[anchor, t].between + comps[anchor, t].within / (
                pairs[anchor][t] * max(1, round(math.sqrt(len(frameworks) - 1)))
            )
        timed = sum(pairs[f][t] * c.pair_s for (f, t), c in comps.items() if f != anchor)
        for t in tasks.get(anchor, []):  # the anchor takes about sqrt(k) turns a cycle (driver/speed.py)
            cycles = max(pairs[f][t] for f in frameworks if t in tasks[f])
            timed += cycles * max(1, round(math.sqrt(len(frameworks) - 1))) * comps[anchor, t].pair_s
        group_s = fixed_s + timed

        def widths(g: int) -> dict[str, dict[str, float]]:
            return {
                f: {t: half_width(var[f, t], g, var[anchor, t], g) if (anchor, t) in var else 0.0 for t in tasks[f]}
                for f in frameworks
                if f != anchor
            }

        def worst(g: int) -> float:
            return max((w for d in widths(g).values() for w in d.values()), default=0.0)

        g = done
        while g - done < int(budget_s // group_s) and worst(g) > log_target:
            g += 1
        return worst(g), g, pairs, group_s, widths(g)

    # Few groups leave few degrees of freedom, and the t quantile grows fast below 4 (12.7 at 1, 4.3 at
    # 2): so the cap on pairs is chosen with the groups it leaves affordable (Kalibera & Jones minimise
    # variance per cost; at this budget the df matter as much): the fewest predicted intervals wider
    # than the target, then the narrowest on average (no single noisy cell decides the design).
    def score(d) -> tuple:
        w = [x for per in d[4].values() for x in per.values()]
        return (sum(x > log_target for x in w), round(float(np.mean(w)) if w else 0.0, 6), d[1] * d[3])

    _, g, pairs, group_s, widths = min((design(cap) for cap in range(PAIRS[0], PAIRS[1] + 1)), key=score)
    return Design(pairs, g, group_s, widths, (g - done) * group_s, target, budget_s)
