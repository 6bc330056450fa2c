"""Statistics of the convergence runs, with the run as the unit: one worker process, one seed, one value.

A framework's figure on a task is the median over its runs of each run's own statistic (e.g. the
run's median steady epoch). Epochs of one run are never pooled as independent samples: they share the
process, its memory layout, its thread placement and the machine's state at the time.

- `median_interval`: the exact distribution-free confidence interval for a median from order
  statistics (Conover, Practical Nonparametric Statistics, 3rd ed., sec. 3.2): [x_(k), x_(n-k+1)]
  covers the median with probability 1 - 2 P(Binomial(n, 1/2) <= k - 1). With n >= 6 some k reaches
  95 %; with fewer runs the report shows the range and calls it that ("range of 3 runs"), never "95 %".
- `quiet`: the runs whose timings are samples at all (a busy run's are not; its accuracy is).
- `boot`: the boot a row ran on.

Nothing here compares frameworks: verdicts are dlbench/analysis/verdicts.py's (the speed protocol's and
`compare`'s). The run-based Mann-Whitney ranking that was here went with the headline (docs/editions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import stats as st

from dlbench.analysis.verdicts import LEVEL

if TYPE_CHECKING:
    import pandas as pd


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
