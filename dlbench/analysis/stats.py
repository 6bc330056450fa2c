"""Statistics for the report: bootstrap confidence intervals and pairwise speed comparisons.

Framework-neutral (numpy and scipy). Intervals are percentile bootstraps of the median with a fixed
seed, so a report is reproducible. Speed comparisons use every steady epoch of every run (or, where
runs have one epoch, each run's first epoch), since with three seeds a rank test over run medians can
never reach p < 0.05 (the smallest two-sided Mann-Whitney p for 3 vs 3 is 0.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as st

LEVEL = 0.95
ALPHA = 0.05
RESAMPLES = 10_000


def bootstrap_ci(values, level: float = LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the median; (v, v) for a single value, NaNs for none."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if len(v) == 0:
        return (np.nan, np.nan)
    if len(v) == 1 or np.all(v == v[0]):
        return (float(v[0]), float(v[0]))
    res = st.bootstrap((v,), np.median, confidence_level=level, n_resamples=RESAMPLES, method="percentile",
                       random_state=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


@dataclass(frozen=True)
class Comparison:
    """How much slower `a` is than `b` (ratio of median times, > 1: a is slower), and whether it is real."""

    a: str
    b: str
    ratio: float
    ci: tuple[float, float]
    p_value: float
    n: tuple[int, int]

    @property
    def verdict(self) -> str:
        if min(self.n) < 2:
            return "too few measurements to rank"
        if self.p_value >= ALPHA or self.ci[0] <= 1.0 <= self.ci[1]:
            return "no significant difference: the spread is too large to rank these two"
        faster, factor = (self.b, self.ratio) if self.ratio > 1 else (self.a, 1 / self.ratio)
        return f"{faster} faster, {factor:.2f}x"


def compare(a: str, times_a, b: str, times_b, seed: int = 0) -> Comparison:
    """Ratio of median times a/b with a bootstrap interval, and a two-sided Mann-Whitney U test."""
    x, y = np.asarray(times_a, np.float64), np.asarray(times_b, np.float64)
    ratio = float(np.median(x) / np.median(y))
    if min(len(x), len(y)) < 2:
        return Comparison(a, b, ratio, (np.nan, np.nan), np.nan, (len(x), len(y)))
    res = st.bootstrap((x, y), lambda p, q, axis=-1: np.median(p, axis=axis) / np.median(q, axis=axis),
                       confidence_level=LEVEL, n_resamples=RESAMPLES, method="percentile",
                       random_state=np.random.default_rng(seed))  # fmt: skip
    p = float(st.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    return Comparison(a, b, ratio, ci, p, (len(x), len(y)))
