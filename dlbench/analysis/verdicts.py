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
- Equivalence: two one-sided tests (Schuirmann 1987, J. Pharmacokin. Biopharm. 15:657-680) that the
  ratio lies within [1/(1 + delta), 1 + delta] (delta 10 % by default).
- Verdict: "faster" / "slower" where the Holm-adjusted difference test rejects at alpha; else
  "equivalent" where the Holm-adjusted equivalence test does; else "undecided", with the number of
  further processes each side that would decide it at the variance and ratio observed (the same tests,
  at Holm's strictest level alpha / m: a conservative forecast, not a promise).

tests/test_verdicts.py simulates the whole procedure (the protocol's designs, six identical frameworks,
thousands of trials): the 95 % interval's coverage and the familywise rate of false "faster"/"slower".
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

    def p_equivalence(self, delta: float) -> float:
        """TOST: the larger of the two one-sided p values against the margins +-log(1 + delta)."""
        m = log(1 + delta)
        if self.se == 0:
            return 0.0 if abs(self.diff) < m else 1.0
        lower = st.t.sf((self.diff + m) / self.se, self.df)
        upper = st.t.sf((m - self.diff) / self.se, self.df)
        return float(max(lower, upper))

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
    interval: tuple[float, float]  # 95 % Welch t-interval of the ratio
    p_difference: float  # Holm-adjusted
    p_equivalence: float  # Holm-adjusted
    verdict: Verdict
    more: int | None  # undecided: further processes each side that would decide it; None: more than MAX_MORE

    @property
    def words(self) -> str:
        """pyperf's style: "1.42x slower [1.31, 1.55]", "equivalent (1.02x [0.97, 1.07])"."""
        lo, hi = self.interval
        if self.verdict in (Verdict.FASTER, Verdict.SLOWER):
            factor, (a, b) = (self.ratio, (lo, hi)) if self.ratio > 1 else (1 / self.ratio, (1 / hi, 1 / lo))
            return f"{factor:.2f}x {self.verdict} [{a:.2f}, {b:.2f}]"
        if self.verdict == Verdict.EQUIVALENT:
            return f"equivalent, {self.ratio:.2f}x [{lo:.2f}, {hi:.2f}]"
        more = f"{self.more} more processes each would decide" if self.more else "more than 50 more processes each"
        return f"undecided, {self.ratio:.2f}x [{lo:.2f}, {hi:.2f}]: {more}"


def more_needed(w: Welch, n: tuple[int, int], level_alpha: float, delta: float) -> int | None:
    """The fewest further processes on each side (groups, where paired) with which the observed ratio
    and variances would be decided by the same tests at `level_alpha`; None beyond MAX_MORE."""
    if w.se == 0:
        return None
    k = np.arange(1, MAX_MORE + 1)
    small = min(n)
    se = w.se * np.sqrt(small / (small + k))  # se scales as 1/sqrt(n); the df is the smaller n - 1
    df = small + k - 1
    m = log(1 + delta)
    p_diff = 2 * st.t.sf(abs(w.diff) / se, df)
    p_eq = np.maximum(st.t.sf((w.diff + m) / se, df), st.t.sf((m - w.diff) / se, df))
    hit = np.flatnonzero((p_diff < level_alpha) | (p_eq < level_alpha))
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
    """The family's verdicts: Holm over the difference tests, Holm over the equivalence tests."""
    others = list(tests)
    if not others:
        return []
    p_diff = holm([tests[f][0].p_difference() for f in others])
    p_eq = holm([tests[f][0].p_equivalence(delta) for f in others])
    out = []
    for f, pd_, pe in zip(others, p_diff, p_eq, strict=True):
        w, n = tests[f]
        if pd_ < alpha:
            verdict = Verdict.SLOWER if w.diff > 0 else Verdict.FASTER
        elif pe < alpha:
            verdict = Verdict.EQUIVALENT
        else:
            verdict = Verdict.UNDECIDED
        more = more_needed(w, n, alpha / len(others), delta) if verdict == Verdict.UNDECIDED else None
        out.append(Comparison(f, anchor, n, float(np.exp(w.diff)), w.interval(), pd_, pe, verdict, more))
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
