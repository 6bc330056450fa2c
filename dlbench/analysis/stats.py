"""Statistics for the report, with the run as the unit: one worker process, one seed, one value.

A framework's figure on a task is the median over its runs of each run's own statistic (e.g. the
run's median steady epoch). Epochs of one run are never pooled as independent samples: they share the
process, its memory layout, its thread placement and the machine's state at the time, and run-to-run
variation is far larger than epoch-to-epoch variation (measured here: torch's MNIST steady epoch was
6.82 s in one session and 9.26 s in another).

- `median_interval`: the exact distribution-free confidence interval for a median from order
  statistics (Conover, Practical Nonparametric Statistics, 3rd ed., sec. 3.2): [x_(k), x_(n-k+1)]
  covers the median with probability 1 - 2 P(Binomial(n, 1/2) <= k - 1). With n >= 6 some k reaches
  95 %; with fewer runs the report shows the range and calls it that ("range of 3 runs"), never "95 %".
- `compare`: A vs B over runs: the ratio of the medians, a two-sided Mann-Whitney U test over the runs'
  values, and a ratio interval from a hierarchical bootstrap (runs resampled, then epochs within each
  resampled run: Saravanan, Berman & Sober 2020, "Application of the hierarchical bootstrap to
  multi-level data in neuroscience", Neurons, Behavior, Data analysis and Theory 3(5)). A pair can only
  be ranked when the test can reject at all: Mann-Whitney's smallest two-sided p for n vs m runs is
  2 / C(n + m, n) (3 vs 3: 0.1, never significant; 4 vs 4: 0.029).
- `detectable`: the smallest relative difference the runs at hand could detect with power 0.8 by the
  test actually used (two-sided Mann-Whitney at alpha 0.05), found by simulation (log-normal runs with
  the observed coefficients of variation): the noise floor, measured. (A normal approximation said
  less: at the difference it gave, the exact test's power was about 0.5.)
- `quiet`: the runs whose timings are samples at all (a busy run's are not; its accuracy is).
- `one_boot`: the runs whose timings may be compared with each other: those of one boot. The CPU and its
  speed change between boots of this machine (the same command measured up to 5x apart), so timings from
  different boots are different sittings; their accuracy still counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, sqrt
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as st

if TYPE_CHECKING:
    import pandas as pd

LEVEL = 0.95
ALPHA = 0.05
POWER = 0.8
RESAMPLES = 10_000


def _finite(values) -> np.ndarray:
    return np.asarray([float(x) for x in values if x is not None and np.isfinite(x)], np.float64)


@dataclass(frozen=True)
class Interval:
    """An interval for a median over runs, and what it is: an exact CI with its coverage, or a range."""

    low: float
    high: float
    n: int
    coverage: float | None  # exact coverage of an order-statistic CI; None for a plain range

    @property
    def label(self) -> str:
        if self.n < 2:
            return f"{self.n} run"
        if self.coverage is None:
            return f"range of {self.n} runs"
        return f"{100 * LEVEL:g} % CI ({100 * self.coverage:.1f} % exact, {self.n} runs)"


def order_statistic_k(n: int, level: float = LEVEL) -> tuple[int, float] | None:
    """(k, coverage) of the narrowest [x_(k), x_(n-k+1)] covering the median with probability >= level."""
    best = None
    for k in range(1, n // 2 + 1):
        coverage = 1 - 2 * st.binom.cdf(k - 1, n, 0.5)
        if coverage >= level:
            best = (k, float(coverage))
    return best


def median_interval(values, level: float = LEVEL) -> Interval:
    """The median's exact order-statistic interval where the runs allow one, else their range."""
    v = np.sort(_finite(values))
    n = len(v)
    if n == 0:
        return Interval(np.nan, np.nan, 0, None)
    found = order_statistic_k(n, level)
    if found is None:
        return Interval(float(v[0]), float(v[-1]), n, None)
    k, coverage = found
    return Interval(float(v[k - 1]), float(v[n - k]), n, coverage)


def min_p_value(n: int, m: int) -> float:
    """The smallest two-sided p a Mann-Whitney test of n vs m runs can give (complete separation)."""
    return min(1.0, 2 / comb(n + m, n)) if n and m else 1.0


def runs_needed(alpha: float = ALPHA) -> int:
    """The fewest runs per framework (n vs n) with which a significant ranking is possible at all."""
    n = 1
    while min_p_value(n, n) >= alpha:
        n += 1
    return n


def cv(values) -> float | None:
    """Run-to-run coefficient of variation (sample sd / mean); None with fewer than 2 runs."""
    v = _finite(values)
    return float(np.std(v, ddof=1) / np.mean(v)) if len(v) >= 2 and np.mean(v) else None


def power(diff: float, cv_a: float, n_a: int, cv_b: float, n_b: int, trials: int = 2000, seed: int = 0) -> float:
    """Simulated power of the two-sided Mann-Whitney test at ALPHA: runs log-normal with these CVs, b's
    median `1 + diff` times a's."""
    rng = np.random.default_rng(seed)
    sa, sb = sqrt(np.log1p(cv_a**2)), sqrt(np.log1p(cv_b**2))
    a = rng.normal(0.0, sa, (trials, n_a))
    b = rng.normal(np.log1p(diff), sb, (trials, n_b))
    p = st.mannwhitneyu(a, b, alternative="two-sided", axis=1).pvalue
    return float(np.mean(p < ALPHA))


def detectable(cv_a: float | None, n_a: int, cv_b: float | None, n_b: int) -> float | None:
    """Smallest relative difference the Mann-Whitney test over these runs detects with power POWER (by
    simulation, bisection on the difference); None when a CV is unknown, the test can never reject with
    these runs, or not even a 100-fold difference would do."""
    if cv_a is None or cv_b is None or min_p_value(n_a, n_b) >= ALPHA:
        return None
    lo, hi = 0.0, 99.0
    if power(hi, cv_a, n_a, cv_b, n_b) < POWER:
        return None
    for _ in range(25):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power(mid, cv_a, n_a, cv_b, n_b) >= POWER else (mid, hi)
        if hi - lo < 0.005:
            break
    return float(hi)


def hierarchical_ratio_ci(runs_a: list, runs_b: list, seed: int = 0, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of median-of-run-medians(a) / (b), resampling runs, then epochs within runs.

    Each element of runs_a / runs_b is one run's list of epoch times (or a one-element list)."""
    rng = np.random.default_rng(seed)
    a = [_finite(r) for r in runs_a if len(_finite(r))]
    b = [_finite(r) for r in runs_b if len(_finite(r))]
    if not a or not b:
        return (np.nan, np.nan)

    def stat(runs):
        # Level 2 first: RESAMPLES bootstrap medians of each run's own epochs, shape (runs, RESAMPLES).
        medians = np.stack([np.median(rng.choice(r, (RESAMPLES, len(r))), axis=1) for r in runs])
        # Level 1: resample the runs; each picked run brings one of its level-2 medians, at random.
        picks = rng.integers(0, len(runs), (RESAMPLES, len(runs)))
        draws = rng.integers(0, RESAMPLES, (RESAMPLES, len(runs)))
        return np.median(medians[picks, draws], axis=1)

    ratio = stat(a) / stat(b)
    tail = 100 * (1 - level) / 2
    return float(np.percentile(ratio, tail)), float(np.percentile(ratio, 100 - tail))


@dataclass(frozen=True)
class Comparison:
    """How much slower `a` is than `b` over runs (ratio of medians, > 1: a is slower), and whether it is real."""

    a: str
    b: str
    ratio: float
    ci: tuple[float, float]
    p_value: float
    n: tuple[int, int]
    detectable: float | None  # the smallest relative difference these runs could detect
    detectable_at_5: float | None  # the same with 5 runs each (from the observed CVs)

    @property
    def rankable(self) -> bool:
        return min_p_value(*self.n) < ALPHA

    @property
    def significant(self) -> bool:
        return self.rankable and self.p_value < ALPHA and not (self.ci[0] <= 1.0 <= self.ci[1])

    @property
    def verdict(self) -> str:
        na, nb = self.n
        if not self.rankable:
            need = runs_needed()
            more = f"; 5 runs each would detect a {100 * self.detectable_at_5:.0f} % difference" if (
                self.detectable_at_5) else ""  # fmt: skip
            return (f"not enough runs to rank: {na} vs {nb} runs can never reach p < {ALPHA:g} "
                    f"(at least {need} each are needed){more}")  # fmt: skip
        if not self.significant:
            floor = f"; these runs would detect a {100 * self.detectable:.0f} % difference" if self.detectable else ""
            return f"no significant difference with {na} vs {nb} runs (p = {self.p_value:.2g}){floor}"
        faster, slower, factor = (self.b, self.a, self.ratio) if self.ratio > 1 else (self.a, self.b, 1 / self.ratio)
        lo, hi = self.ci if self.ratio > 1 else (1 / self.ci[1], 1 / self.ci[0])
        return (f"{faster} is faster than {slower} by {factor:.2f}x [{lo:.2f}, {hi:.2f}], "
                f"p = {self.p_value:.2g} over {na} vs {nb} runs")  # fmt: skip


def compare(a: str, runs_a: list, b: str, runs_b: list, seed: int = 0) -> Comparison:
    """A vs B. runs_a / runs_b: per run, its epoch times (the run's value is their median)."""
    va = np.asarray([np.median(_finite(r)) for r in runs_a if len(_finite(r))])
    vb = np.asarray([np.median(_finite(r)) for r in runs_b if len(_finite(r))])
    ratio = float(np.median(va) / np.median(vb)) if len(va) and len(vb) else np.nan
    p = float(st.mannwhitneyu(va, vb, alternative="two-sided").pvalue) if len(va) and len(vb) else np.nan
    ci = hierarchical_ratio_ci(runs_a, runs_b, seed) if len(va) >= 2 and len(vb) >= 2 else (np.nan, np.nan)
    ca, cb = cv(va), cv(vb)
    d5 = None if ca is None or cb is None else detectable(ca, 5, cb, 5)
    return Comparison(a, b, ratio, ci, p, (len(va), len(vb)), detectable(ca, len(va), cb, len(vb)), d5)


def quiet(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows whose timings are a measurement: those not flagged `machine_busy` (another process used the
    CPUs: one slowed a 2-thread run up to 7x here). A busy row's accuracy, epochs and memory still count."""
    if "machine_busy" not in rows:
        return rows
    return rows[~rows["machine_busy"].fillna(False).astype(bool)]


def boot(row) -> str | None:
    """The boot a row ran on (provenance.machine.boot_id); None where the row does not record it."""
    prov = row.get("provenance")
    machine = prov.get("machine") if isinstance(prov, dict) else None
    found = machine.get("boot_id") if isinstance(machine, dict) else None
    return str(found) if found else None


def one_boot(rows: pd.DataFrame) -> tuple[pd.DataFrame, str | None, int]:
    """(the rows of one boot, that boot, how many other boots were left out): the boot where the most
    frameworks ran, then the most runs; rows that record no boot count as one boot of their own."""
    import pandas as pd

    if rows.empty or "provenance" not in rows:
        return rows, None, 0
    boots = pd.Series([boot(r) or "" for _, r in rows.iterrows()], index=rows.index)  # "": not recorded
    size = rows.groupby(boots)["framework"].agg(["nunique", "size"])
    chosen = max(size.index, key=lambda b: (size.at[b, "nunique"], size.at[b, "size"], b))
    return rows[boots == chosen], chosen or None, len(size) - 1
