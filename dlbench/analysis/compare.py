"""`harness.py compare BASE NEW`: did anything get faster or slower between two result sets, and why?

For every framework x task x setting present in both (profile, device, threads, epochs cap, precision,
tier; the schema may differ), the ratio NEW / BASE of the run medians of each metric, with an interval
and a two-sided Mann-Whitney test over runs (dlbench/analysis/stats.py: the run is the unit). A line's
verdict is "faster" / "slower" (memory "smaller" / "larger", accuracy "better" / "worse") only when the
test rejects and the change exceeds the threshold; otherwise "no detectable change", with the smallest
change those runs could have detected. For each significant change, the provenance that differs between the
two sides: the first thing to check by hand (versions, Python, CPU, GPU and driver, threads, settings,
commit, data). Exit status 1 when a significant slowdown beyond the threshold is found, so CI can gate on it.

Two sets measured in different sittings (another boot, another CPU) differ by the machine as much as by
the code; `--anchor FRAMEWORK` compares them through it (as the speed protocol does across sittings): each
run's timing is divided by the anchor's run of the same seed, task and setting on the same boot in its own
set (a run with no such anchor run is left out of the timings), so a machine that is uniformly slower
cancels and what is left is the change relative to the anchor. The anchor's own timings are then 1 by
construction and not compared; accuracy and memory are compared as measured.

What is shown: the changes, and the undecided lines that matter (a change beyond the threshold that these
runs cannot call significant); the lines with neither are counted, and `--all` lists them. The text goes
to standard output, and to `-o FILE` when asked: never into one of the inputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import files
from dlbench.analysis.stats import ALPHA, boot, compare, quiet

# metric -> (label, True when larger is better, the words for a change for the better and for the worse):
# a time or a rate is faster/slower, memory smaller/larger (a lower peak RSS is not "faster"), accuracy better/worse
METRICS = {
    "steady_epoch_s": ("steady epoch", False, ("faster", "slower")),
    "first_epoch_s": ("first epoch", False, ("faster", "slower")),
    "eval_samples_per_s": ("inference samples/s", True, ("faster", "slower")),
    "latency_b1_ms_p50": ("batch-1 latency p50", False, ("faster", "slower")),
    "peak_rss_mib": ("peak RSS", False, ("smaller", "larger")),
    "test_accuracy": ("test accuracy", True, ("better", "worse")),
}
THROUGH_ANCHOR = {"steady_epoch_s", "first_epoch_s", "eval_samples_per_s", "latency_b1_ms_p50"}  # machine speed
MATCH = ("framework", "task", "profile", "device_requested", "threads", "epochs_cap", "precision", "tier", "recipe")
DEFAULTS = {"precision": "fp32", "tier": "default", "recipe": "ours"}  # what rows written before these fields ran with


def _key(row: pd.Series) -> tuple:
    out = []
    for c in MATCH:
        v = row.get(c)
        v = DEFAULTS.get(c) if v is None or (isinstance(v, float) and np.isnan(v)) else v
        out.append(int(v) if isinstance(v, float) and float(v).is_integer() else v)
    return tuple(out)


def _provenance(rows: pd.DataFrame) -> dict[str, set]:
    """What the rows ran with, flattened: package versions, Python, CPU, GPUs, threads, settings, commit, data."""
    seen: dict[str, set] = {}

    def add(k, v):
        seen.setdefault(k, set()).add(str(v))

    for _, r in rows.iterrows():
        p = r.get("provenance") if isinstance(r.get("provenance"), dict) else {}
        for name, version in (p.get("packages") or {}).items():
            add(f"package {name}", version)
        add("Python", p.get("python"))
        m = p.get("machine") or {}
        add("CPU", m.get("cpu"))
        add("GPUs", ", ".join(f"{g.get('name')} (driver {g.get('driver')})" for g in m.get("gpus") or []) or "none")
        add("threads", r.get("threads"))
        add("commit", ((p.get("git") or {}).get("commit") or "unknown")[:10])
        add("data", (p.get("data") or {}).get("sha256"))
        add("lock", (p.get("lock") or {}).get("sha256"))
        for k, v in (r.get("settings") if isinstance(r.get("settings"), dict) else {}).items():
            add(f"setting {k}", v)
    return seen


def explain(base: pd.DataFrame, new: pd.DataFrame) -> str:
    """The provenance that differs between two sets of rows, in words."""
    a, b = _provenance(base), _provenance(new)
    diffs = [f"{k}: {', '.join(sorted(a.get(k, {'—'})))} → {', '.join(sorted(b.get(k, {'—'})))}"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]  # fmt: skip
    return "; ".join(diffs) or "nothing recorded differs"


def _values(row: pd.Series, metric: str) -> list[float]:
    """The values a run contributes: its steady epochs, or its single value ([] where it has none)."""
    if metric == "steady_epoch_s":
        hist = row.get("history")
        return [h["epoch_s"] for h in hist[1:]] if isinstance(hist, list) and len(hist) > 1 else []
    v = pd.to_numeric(pd.Series([row.get(metric)]), errors="coerce").dropna()
    return [float(v.iloc[0])] if len(v) else []


def _runs(rows: pd.DataFrame, metric: str, anchor: pd.DataFrame | None = None) -> list[list[float]]:
    """Per run, the values the ratio is taken over; with `anchor` (its runs in the same set), each divided by
    the median of the anchor's run of the same seed on the same boot (a run without one is left out: a
    bridge through another boot's run would compare two sittings, which the anchor is there to avoid)."""
    per = [((r.get("seed"), boot(r)), _values(r, metric)) for _, r in rows.iterrows()]
    if anchor is None:
        return [v for _, v in per if v]
    own = {(r.get("seed"), boot(r)): float(np.median(v)) for _, r in anchor.iterrows() if (v := _values(r, metric))}
    return [[x / own[key] for x in v] for key, v in per if v and own.get(key)]


def _by_key(rows: pd.DataFrame) -> dict[tuple, list]:
    """Row labels grouped by their MATCH key, in one pass."""
    out: dict[tuple, list] = {}
    for label, r in rows.iterrows():
        out.setdefault(_key(r), []).append(label)
    return out


def compare_sets(base: pd.DataFrame, new: pd.DataFrame, threshold: float, show_all: bool = False,
                 anchor: str | None = None) -> tuple[str, bool]:  # fmt: skip
    """(markdown, a significant slowdown beyond the threshold was found); timings through `anchor` if given."""
    base, new = base[base["status"] == "ok"], new[new["status"] == "ok"]
    kb, kn = _by_key(base), _by_key(new)
    rows, explanations, slower, hidden = [], [], False, 0
    for k in sorted(set(kb) & set(kn), key=lambda k: tuple(map(str, k))):
        b, n = base.loc[kb[k]], new.loc[kn[k]]
        timed_b, timed_n = quiet(b), quiet(n)  # a busy run's timings are not a measurement
        significant = False
        ka = (anchor, *k[1 : MATCH.index("tier")], "default", *k[MATCH.index("tier") + 1 :])
        for metric, (label, higher_better, (better, worse_word)) in METRICS.items():
            sb, sn = (timed_b, timed_n) if metric in THROUGH_ANCHOR else (b, n)
            if anchor and metric in THROUGH_ANCHOR:
                if k[0] == anchor or ka not in kb or ka not in kn:
                    continue  # the anchor's own ratio is 1; without its runs on both sides there is no bridge
                rb, rn = _runs(sb, metric, quiet(base.loc[kb[ka]])), _runs(sn, metric, quiet(new.loc[kn[ka]]))
                label = f"{label} ÷ {anchor}'s"
            else:
                rb, rn = _runs(sb, metric), _runs(sn, metric)
            if not rb or not rn:
                continue
            c = compare("new", rn, "base", rb)
            change = c.ratio - 1
            worse = change < 0 if higher_better else change > 0
            if c.significant and abs(change) > threshold:
                verdict = worse_word if worse else better
                significant = True
                slower |= worse and metric != "test_accuracy"
            elif abs(change) > threshold:  # a change that would matter, which these runs cannot show
                more = f"{c.n[0]} vs {c.n[1]} runs cannot show any change" if not c.rankable else "not significant"
                verdict = f"undecided: {100 * change:+.0f} %, {more}"
            else:
                floor = f"; could detect {100 * c.detectable:.0f} %" if c.detectable else (
                    f"; {c.n[0]} vs {c.n[1]} runs cannot show any change" if not c.rankable else "")  # fmt: skip
                verdict = f"no detectable change{floor}"
                if not show_all:
                    hidden += 1
                    continue
            ci = "" if np.isnan(c.ci[0]) else f" [{c.ci[0]:.3f}, {c.ci[1]:.3f}]"
            rows.append({"framework": k[0], "task": k[1], "setting": _setting(k), "metric": label,
                         "runs (base, new)": f"{c.n[1]}, {c.n[0]}", "new / base": f"{c.ratio:.3f}{ci}",
                         "p": f"{c.p_value:.2g}", "verdict": verdict})  # fmt: skip
        if significant:
            explanations.append(f"- {k[0]} on {k[1]} ({_setting(k)}): {explain(b, n)}")
    busy = sum(len(s) - len(quiet(s)) for s in (base, new))
    only = [(side, k) for side, ks, other in (("base", kb, kn), ("new", kn, kb)) for k in ks if k not in other]
    text = (
        f"# dlbench compare\n\nNEW / BASE of the run medians; intervals and p over runs (two-sided Mann–Whitney, "
        f"significant below {ALPHA:g}); a change counts only if significant and beyond {100 * threshold:g} %."
        + (
            f" Timings through the anchor: each run's ÷ {anchor}'s run of its seed on its boot, in its own set."
            if anchor
            else ""
        )
        + (f" Timings leave out the {busy} busy run(s) (`machine_busy`: accuracy, memory keep them)." if busy else "")
        + "\n\n"
        + (pd.DataFrame(rows).to_markdown(index=False) + "\n" if rows else "")
        + ("" if kb.keys() & kn.keys() else "No framework × task × setting is in both.\n")
        + (
            f"\n{hidden} line(s): no detectable change beyond {100 * threshold:g} %; `--all` lists them.\n"
            if hidden
            else ""
        )
    )
    if explanations:
        text += "\n## What differs where something changed\n\n" + "\n".join(explanations) + "\n"
    if only:
        text += "\n## In one side only\n\n" + "\n".join(f"- {side}: {k[0]} on {k[1]} ({_setting(k)})"
                                                        for side, k in only) + "\n"  # fmt: skip
    return text, slower


def _setting(k: tuple) -> str:
    d = dict(zip(MATCH, k, strict=True))
    cap = f", epochs ≤ {d['epochs_cap']}" if d["epochs_cap"] is not None else ""
    recipe = "" if d["recipe"] == "ours" else f", the {d['recipe']}'s recipe"  # `--recipe seed`: another training
    where = f"{d['profile']}, {d['device_requested']}, {d['threads']} threads{cap}"
    return f"{where}, {d['precision']}, {d['tier']}{recipe}"


def rows_of(path: Path) -> Path:
    """A results folder or a runs.jsonl file -> the runs.jsonl."""
    return path / "runs.jsonl" if path.is_dir() else path


def run(base: Path, new: Path, threshold: float, output: str | None, show_all: bool = False,
        anchor: str | None = None) -> int:  # fmt: skip
    """`harness.py compare`: markdown to stdout (and to `output`); exit 1 on a significant slowdown."""
    from dlbench.analysis.report import ReportError, load_runs
    from dlbench.driver.config import UsageError

    sides = []
    for given in (base, new):
        path = rows_of(given)
        try:
            sides.append(load_runs(path.parent, path))
        except ReportError as e:
            raise UsageError(str(e)) from None
    if anchor and not all((s["framework"] == anchor).any() for s in sides):
        raise UsageError(f"--anchor {anchor}: not a framework of both sets; name one that ran in both")
    text, slower = compare_sets(*sides, threshold, show_all, anchor)
    if output:
        out = Path(output)
        if out.resolve() in {rows_of(p).resolve() for p in (base, new)}:
            raise UsageError(f"--output {out} is one of the inputs: name another file")
        try:
            files.write_whole(out, text)
        except OSError as e:
            raise UsageError(f"cannot write {out} ({e.strerror}): name another --output") from None
    print(text)
    if output:
        print(f"written: {output}", file=sys.stderr)
    return 1 if slower else 0
