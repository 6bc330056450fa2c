"""Verdicts of the speed protocol: each framework against a pre-registered anchor, per task and sitting.

The unit is the worker process: one value per process and task (its time per step, from its windows:
dlbench/worker/speed.py). Comparisons are fixed before measuring: every framework against the anchor
(torch's default tier unless --anchor says otherwise), per task; they form one family per task and
sitting, corrected by Holm's step-down method (Holm 1979, "A simple sequentially rejective multiple
test procedure", Scand. J. Statist. 6:65-70).

- Difference, paired (the speed protocol's groups: every framework has one process in each group, alive
  beside the anchor's and taking turns with it): the one-sample t-test on the per-group differences of
  log values, df = groups - 1; the ratio of geometric means is the effect and its t-interval a ratio
  interval.
- Difference, unpaired (values without groups): Welch's t statistic on the logs, with Hsu's
  conservative degrees of freedom
  min(n_f, n_a) - 1 (Scheffe 1970, "Practical solutions of the Behrens-Fisher problem", JASA 65:1501-08).
  Satterthwaite's df covered only 0.93-0.95 at 3 processes a side with unequal variances in the
  simulation (tests/test_verdicts.py); Hsu's covered >= 0.95 in every case simulated.
- Verdict and interval, one rule (docs/methodology.md, "Verdicts and their intervals"): Holm's
  step-down over the family's difference tests decides k comparisons; every interval of the family is
  printed at Holm's stopping level 1 - alpha / (m - k) (1 - alpha where all m are decided), the level at
  which the step-down stopped (for the comparisons it did not decide this is Strassburger & Bretz 2008's
  compatible bound, Stat. Med. 27:4914-27). By construction a decided comparison's interval excludes 1
  and an undecided one's includes it. An interval wholly inside the equivalence margin
  [1/(1 + delta), 1 + delta] is "equivalent" (two one-sided tests at that level: Schuirmann 1987,
  J. Pharmacokin. Biopharm. 15:657-680), with its direction in the words, even where it excludes 1
  (1.0001x [1.00002, 1.0002] is equivalent, not slower). Otherwise "faster" / "slower" where Holm
  decided it, else "undecided", with the number of further processes each side that would decide it at
  the variance and ratio observed (the same rule at Bonferroni's level alpha / m: a conservative
  forecast, not a promise).

tests/test_verdicts.py simulates the whole procedure (the protocol's designs, six identical frameworks,
thousands of trials): the printed interval's coverage and the familywise rate of false "faster"/"slower".
"""

from __future__ import annotations

from dataclasses import dataclass
from math import log, sqrt

import numpy as np
from scipy import stats as st

from dlbench.protocol import Word

ALPHA = 0.05
DELTA = 0.10  # the equivalence margin: within 10 % either way
LEVEL = 0.95
MAX_MORE = 50  # forecasts beyond this many more processes say "more than 50"


class Verdict(Word):
    FASTER = "faster"
    SLOWER = "slower"
    EQUIVALENT = "equivalent"
    UNDECIDED = "undecided"
    ANCHOR = "anchor"


@dataclass(frozen=True)
class Welch:
    """Welch's comparison of log values: difference of means (f - anchor), its standard error and df."""

    diff: float
    se: float
    df: float

    @classmethod
    def paired(cls, d: np.ndarray) -> Welch:
        """The one-sample t on per-group log differences (framework - anchor)."""
        return cls(float(np.mean(d)), float(np.std(d, ddof=1) / sqrt(len(d))), len(d) - 1)

    @classmethod
    def of(cls, log_f: np.ndarray, log_a: np.ndarray) -> Welch:
        vf, va = np.var(log_f, ddof=1) / len(log_f), np.var(log_a, ddof=1) / len(log_a)
        return cls(float(np.mean(log_f) - np.mean(log_a)), sqrt(vf + va), min(len(log_f), len(log_a)) - 1)

    def p_difference(self) -> float:
        if self.se == 0:
            return 0.0 if self.diff != 0 else 1.0
        return float(2 * st.t.sf(abs(self.diff) / self.se, self.df))

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        """The ratio interval: exp of the t-interval of the log difference."""
        h = float(st.t.ppf(0.5 + level / 2, self.df)) * self.se if self.se > 0 else 0.0
        return float(np.exp(self.diff - h)), float(np.exp(self.diff + h))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's adjusted p values (monotone step-down), in the order given."""
    m = len(pvalues)
    order = np.argsort(pvalues, kind="stable")
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """One framework against the anchor on one task, in one sitting."""

    framework: str
    anchor: str
    n: tuple[int, int]  # processes (framework, anchor)
    ratio: float  # geometric mean of the framework's values / the anchor's (> 1: slower)
    interval: tuple[float, float]  # the ratio's t-interval at `level`
    level: float  # the interval's confidence level: Holm's stopping level, 1 - alpha / (m - k)
    p_difference: float  # Holm-adjusted
    verdict: Verdict
    more: int | None  # undecided: further processes each side that would decide it; None: more than MAX_MORE
    delta: float = DELTA  # the equivalence margin the verdict used

    @property
    def words(self) -> str:
        """pyperf's style: "1.42x slower [1.31, 1.55]", "equivalent, 1.02x slower, within ±10 % [...]"."""
        return self.say()

    def say(self, up: str = "slower", down: str = "faster", unit: str = "processes") -> str:
        """`words` with a metric's own words for a ratio above and below 1 and for what it replicates
        (memory: "larger"/"smaller", runs)."""
        lo, hi = self.interval
        factor, (a, b) = (self.ratio, (lo, hi)) if self.ratio >= 1 else (1 / self.ratio, (1 / hi, 1 / lo))
        way = "" if self.ratio == 1 else f" {up}" if self.ratio > 1 else f" {down}"
        if self.verdict in (Verdict.FASTER, Verdict.SLOWER):
            return f"{factor:.2f}x {up if self.verdict == Verdict.SLOWER else down} [{a:.2f}, {b:.2f}]"
        if self.verdict == Verdict.EQUIVALENT:
            x = "{:.2f}" if round(factor, 2) != 1 else "{:.6g}"  # 1.0001x is not "1.00x"
            span = f"[{x.format(a)}, {x.format(b)}]"
            return f"equivalent, {x.format(factor)}x{way}, within ±{100 * self.delta:g} % {span}"
        more = f"{self.more} more {unit} each would decide" if self.more else f"more than 50 more {unit} each"
        return f"undecided, {self.ratio:.2f}x [{lo:.2f}, {hi:.2f}]: {more}"


def stopping_level(p_holm: list[float], alpha: float = ALPHA) -> float:
    """The confidence level of a family's intervals: 1 - alpha / (m - k), k the comparisons Holm decided
    (1 - alpha where it decided all m): every decided interval then excludes 1, every other includes it."""
    m, k = len(p_holm), sum(p < alpha for p in p_holm)
    return 1 - alpha / max(1, m - k)


def inside(interval: tuple[float, float], delta: float) -> bool:
    """Whether a ratio interval lies wholly inside the equivalence margin [1/(1 + delta), 1 + delta]."""
    return 1 / (1 + delta) < interval[0] and interval[1] < 1 + delta


def more_needed(w: Welch, n: tuple[int, int], level_alpha: float, delta: float) -> int | None:
    """The fewest further processes on each side (groups, where paired) with which the observed ratio
    and variances would be decided by the same rule at `level_alpha`; None beyond MAX_MORE."""
    if w.se == 0:
        return None
    k = np.arange(1, MAX_MORE + 1)
    small = min(n)
    se = w.se * np.sqrt(small / (small + k))  # se scales as 1/sqrt(n); the df is the smaller n - 1
    df = small + k - 1
    h = st.t.ppf(1 - level_alpha / 2, df) * se
    m = log(1 + delta)
    decided = (np.abs(w.diff) > h) | ((w.diff - h > -m) & (w.diff + h < m))
    hit = np.flatnonzero(decided)
    return int(k[hit[0]]) if len(hit) else None


def against_anchor(values: dict, anchor: str, alpha: float = ALPHA, delta: float = DELTA) -> list[Comparison]:
    """Every framework of `values` against `anchor`, Holm-corrected as one family. values[name] is either
    a dict group -> time (paired by group) or a list of times (unpaired, Hsu's df). Frameworks with fewer
    than 2 processes (2 shared groups, where paired), or an anchor with fewer, are not returned."""
    paired = all(isinstance(v, dict) for v in values.values())
    base = values.get(anchor, {} if paired else [])
    tests = {}
    for f, v in values.items():
        if f == anchor:
            continue
        if paired:
            common = sorted(set(v) & set(base))
            if len(common) >= 2:
                d = np.log([v[g] for g in common]) - np.log([base[g] for g in common])
                tests[f] = (Welch.paired(d), (len(d), len(d)))
        elif len(v) >= 2 and len(base) >= 2:
            tests[f] = (Welch.of(np.log(np.asarray(v, float)), np.log(np.asarray(base, float))), (len(v), len(base)))
    return decide(tests, anchor, alpha, delta)


def against_differences(
    d: dict[str, dict], anchor: str, alpha: float = ALPHA, delta: float = DELTA
) -> list[Comparison]:
    """Paired comparisons from per-group log ratios already formed (framework -> group -> log ratio)."""
    tests = {f: (Welch.paired(np.asarray(list(v.values()))), (len(v), len(v))) for f, v in d.items() if len(v) >= 2}
    return decide(tests, anchor, alpha, delta)


def decide(
    tests: dict[str, tuple[Welch, tuple[int, int]]], anchor: str, alpha: float, delta: float
) -> list[Comparison]:
    """The family's verdicts: Holm over the difference tests; every interval at Holm's stopping level;
    "equivalent" where that interval lies inside the margin (module docstring)."""
    others = list(tests)
    if not others:
        return []
    p_diff = holm([tests[f][0].p_difference() for f in others])
    level = stopping_level(p_diff, alpha)
    out = []
    for f, pd_ in zip(others, p_diff, strict=True):
        w, n = tests[f]
        interval = w.interval(level)
        if inside(interval, delta):
            verdict = Verdict.EQUIVALENT
        elif pd_ < alpha:
            verdict = Verdict.SLOWER if w.diff > 0 else Verdict.FASTER
        else:
            verdict = Verdict.UNDECIDED
        more = more_needed(w, n, alpha / len(others), delta) if verdict == Verdict.UNDECIDED else None
        out.append(Comparison(f, anchor, n, float(np.exp(w.diff)), interval, level, pd_, verdict, more, delta))
    return out


def bimodal(values, min_gap: float = 1.2) -> bool:
    """Whether window (or epoch) times fall into two separate speeds: sorted, some split leaves at least
    two values and a fifth of them on each side, and the faster side's slowest is at least `min_gap`
    times below the slower side's fastest while each side is tighter than that gap (TensorFlow's MNIST
    epochs: 5.5 s and 10.6 s in one run)."""
    v = np.sort(np.asarray([x for x in values if x is not None and np.isfinite(x) and x > 0], float))
    n = len(v)
    least = max(2, int(np.ceil(n / 5)))
    for i in range(least, n - least + 1):
        low, high = v[:i], v[i:]
        gap = high[0] / low[-1]
        if gap >= min_gap and max(low[-1] / low[0], high[-1] / high[0]) < gap:
            return True
    return False
