"""`harness.py compare BASE NEW`: what changed between two result sets, and why?

Two questions, one engine (dlbench/analysis/verdicts.py: Welch's t on logs with Hsu's df, Holm within a
family, every interval at Holm's stopping level, "equivalent" when it lies inside the margin):

- Speed, from each set's speed sittings (speed.jsonl): per task and variant, each process's log ratio to
  its group's anchor turn in its own sitting, NEW against BASE. Two sets measured on different boots or
  CPUs differ by the machine as much as by the code; through the anchor a uniformly slower machine
  cancels. One family per task. Convergence runs' epochs are never timed against each other here.
- Accuracy, memory and epochs, from the convergence runs (runs.jsonl): per framework x task x setting
  (profile, device, threads, epochs cap, precision, tier, recipe), one value per run (the run is the
  unit), NEW / BASE. One family per task and metric. A busy run counts here: none of these is a timing.

Words: speed faster/slower, memory smaller/larger, accuracy better/worse, epochs fewer/more; within the
metric's margin "equivalent"; otherwise "undecided", with how many more processes or runs would decide.
Shown: every decided change beyond the threshold and every undecided one beyond it; the rest are counted
(`--all` lists them). For each decided change, the provenance that differs between the two sides. Exit
status 1 when speed is slower or memory larger beyond the threshold, so CI can gate on it. The text goes
to standard output, and to `-o FILE` when asked: never over a file either set was read from.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dlbench import files
from dlbench.analysis.speed import anchor_of, diffs, load_speed, sitting_ids
from dlbench.analysis.verdicts import ALPHA, DELTA, Comparison, Verdict, Welch, decide


@dataclass(frozen=True)
class Metric:
    """What a compared quantity is called, its words for up and down, its margin and unit of replication."""

    label: str
    up: str  # the word for NEW above BASE
    down: str
    delta: float  # the equivalence margin, relative
    unit: str  # what the "more would decide" forecast counts
    worse_up: bool | None  # True: up is worse and fails the exit status; None: never fails it


HEADER = "# dlbench compare"  # the first line of its output: the one kind of file `-o` may replace
SPEED = Metric("time per step ÷ the anchor's", "slower", "faster", DELTA, "processes", True)
METRICS = {
    "test_accuracy": Metric("test accuracy", "better", "worse", 0.01, "runs", None),
    "peak_rss_mib": Metric("peak RSS", "larger", "smaller", 0.10, "runs", True),
    "epochs_run": Metric("epochs run", "more", "fewer", 0.10, "runs", None),
}
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
    diffs = [
        f"{k}: {', '.join(sorted(a.get(k, {'—'})))} → {', '.join(sorted(b.get(k, {'—'})))}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]
    return "; ".join(diffs) or "nothing recorded differs"


def _by_key(rows: pd.DataFrame) -> dict[tuple, list]:
    """Row labels grouped by their MATCH key, in one pass."""
    out: dict[tuple, list] = {}
    for label, r in rows.iterrows():
        out.setdefault(_key(r), []).append(label)
    return out


def _logs(values) -> np.ndarray:
    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").to_numpy(float)
    return np.log(v[np.isfinite(v) & (v > 0)])


def _tests(pairs: dict) -> dict:
    """Welch (Hsu's df) of NEW against BASE for every entry with 2 values a side: name -> (test, n)."""
    return {k: (Welch.of(n, b), (len(n), len(b))) for k, (b, n) in pairs.items() if len(b) >= 2 and len(n) >= 2}


def speed_ratios(rows: list[dict], anchor: str) -> dict[tuple[str, str], np.ndarray]:
    """(task, variant) -> each process's log ratio to its group's turn of `anchor`, over the sittings whose
    anchor it is."""
    out: dict = {}
    per_sitting = diffs(rows)
    for sid in sitting_ids(rows):
        if anchor_of(rows, sid) != anchor:
            continue
        for task, per in per_sitting.get(sid, {}).items():
            for variant, groups in per.items():
                out.setdefault((task, variant), []).extend(groups.values())
    return {k: np.asarray(v) for k, v in out.items()}


def _line(framework, task, setting, m: Metric, c: Comparison) -> dict:
    return {
        "framework": framework,
        "task": task,
        "setting": setting,
        "metric": m.label,
        "n (base, new)": f"{c.n[1]}, {c.n[0]}",
        "new / base [interval]": f"{c.ratio:.3f} [{c.interval[0]:.3f}, {c.interval[1]:.3f}]",
        "verdict": c.say(m.up, m.down, m.unit),
    }


@dataclass
class Found:
    """compare's findings: the lines, those hidden, the decided changes' keys, whether one fails the gate."""

    lines: list = field(default_factory=list)
    hidden: int = 0
    changed: list = field(default_factory=list)
    worse: bool = False

    def add(self, line: dict, c: Comparison, m: Metric, threshold: float, show_all: bool, key=None) -> None:
        beyond = abs(np.log(c.ratio)) > np.log1p(threshold)
        decided = c.verdict in (Verdict.FASTER, Verdict.SLOWER)
        if decided and beyond:
            self.changed.append(key)
            up = c.verdict == Verdict.SLOWER
            self.worse |= m.worse_up is not None and up == m.worse_up
        if (decided or c.verdict == Verdict.UNDECIDED) and beyond or show_all:
            self.lines.append(line)
        else:
            self.hidden += 1


def compare_speed(
    base: list[dict], new: list[dict], anchor: str, threshold: float, found: Found, show_all: bool
) -> list[tuple[str, str]]:
    """Speed lines into `found`; returns the (task, variant) that only one side measured."""
    rb, rn = speed_ratios(base, anchor), speed_ratios(new, anchor)
    for task in sorted({t for t, _ in rb} | {t for t, _ in rn}):
        pairs = {v: (rb[t, v], rn[t, v]) for t, v in rb if t == task and (t, v) in rn}
        for c in decide(_tests(pairs), "base", ALPHA, SPEED.delta):
            found.add(
                _line(c.framework, task, f"speed, through {anchor}", SPEED, c),
                c,
                SPEED,
                threshold,
                show_all,
                ("speed", c.framework, task),
            )
    return sorted(set(rb) ^ set(rn))


def compare_runs(base: pd.DataFrame, new: pd.DataFrame, threshold: float, found: Found, show_all: bool) -> list:
    """Convergence lines into `found`; returns the keys that only one side ran."""
    base, new = base[base["status"] == "ok"], new[new["status"] == "ok"]
    kb, kn = _by_key(base), _by_key(new)
    for task in sorted({k[1] for k in kb.keys() & kn.keys()}, key=str):
        keys = sorted((k for k in kb.keys() & kn.keys() if k[1] == task), key=lambda k: tuple(map(str, k)))
        for col, m in METRICS.items():
            pairs = {
                k: (_logs(base.loc[kb[k], col]), _logs(new.loc[kn[k], col])) for k in keys if col in base and col in new
            }
            for c in decide(_tests(pairs), "base", ALPHA, m.delta):
                k = c.framework
                found.add(_line(k[0], k[1], _setting(k), m, c), c, m, threshold, show_all, ("runs", k))
    return [("base", k) for k in kb if k not in kn] + [("new", k) for k in kn if k not in kb]


def compare_sets(
    base: Side, new: Side, threshold: float, show_all: bool = False, anchor: str | None = None
) -> tuple[str, bool]:
    """(markdown, a slowdown or growth beyond the threshold was decided)."""
    found = Found()
    only_speed, only_runs = [], []
    anchor = anchor or base.anchor(new)
    if base.speed and new.speed and anchor:
        only_speed = compare_speed(base.speed, new.speed, anchor, threshold, found, show_all)
    if not base.runs.empty and not new.runs.empty:
        only_runs = compare_runs(base.runs, new.runs, threshold, found, show_all)
    text = (
        f"{HEADER}\n\nNEW / BASE: speed through each sitting's anchor"
        + (f" ({anchor})" if anchor else "")
        + " from the speed sittings; accuracy, peak RSS and epochs over the convergence runs. Welch's t with "
        f"Hsu's df, Holm within each task (and metric), intervals at Holm's stopping level; equivalent within "
        f"±{100 * DELTA:g} % (accuracy ±{100 * METRICS['test_accuracy'].delta:g} %); a change is listed when it "
        f"is beyond {100 * threshold:g} %.\n\n"
        + (pd.DataFrame(found.lines).to_markdown(index=False, disable_numparse=True) + "\n" if found.lines else "")
        + (
            f"\n{found.hidden} line(s): equivalent, or no change beyond {100 * threshold:g} %; `--all` lists them.\n"
            if found.hidden
            else ""
        )
        + ("" if found.lines or found.hidden else "Nothing is in both sets to compare.\n")
    )
    why = []
    kb, kn = (_by_key(base.runs), _by_key(new.runs)) if any(k[0] == "runs" for k in found.changed) else ({}, {})
    for key in found.changed:
        if key[0] == "runs":
            k = key[1]
            b, n = base.runs.loc[kb[k]], new.runs.loc[kn[k]]
            why.append(f"- {k[0]} on {k[1]} ({_setting(k)}): {explain(b, n)}")
        else:
            pick = [[r for r in side.speed if r.get("task") == key[2]] for side in (base, new)]
            why.append(f"- {key[1]} on {key[2]} (speed): {explain(pd.DataFrame(pick[0]), pd.DataFrame(pick[1]))}")
    if why:
        text += "\n## What differs where something changed\n\n" + "\n".join(dict.fromkeys(why)) + "\n"
    only = [f"- {side}: {k[0]} on {k[1]} ({_setting(k)})" for side, k in only_runs]
    only += [f"- one side only: {v} on {t} (speed)" for t, v in only_speed]
    if only:
        text += "\n## In one side only\n\n" + "\n".join(only) + "\n"
    return text, found.worse


@dataclass
class Side:
    """One result set: its convergence rows and its speed rows, and the files they came from."""

    runs: pd.DataFrame
    speed: list[dict]
    read: list[Path]

    def anchors(self) -> set[str]:
        return {a for sid in sitting_ids(self.speed) if (a := anchor_of(self.speed, sid))}

    def anchor(self, other: Side) -> str | None:
        """The anchor both sets' sittings share, where exactly one is shared."""
        shared = self.anchors() & other.anchors()
        return shared.pop() if len(shared) == 1 else None


def load_side(path: Path) -> Side:
    """A results folder (its runs.jsonl and speed.jsonl, each where present) or one such file."""
    from dlbench.analysis.report import ReportError, load_runs
    from dlbench.driver.config import UsageError

    runs_path = path / "runs.jsonl" if path.is_dir() else path
    speed_path = path / "speed.jsonl" if path.is_dir() else path
    speed, warnings = load_speed(speed_path) if speed_path.is_file() else ([], [])
    runs, read = pd.DataFrame(), [speed_path] if speed else []
    if runs_path.is_file() and not (runs_path == speed_path and speed):
        try:
            runs = load_runs(runs_path.parent, runs_path)
            read.append(runs_path)
        except ReportError as e:
            raise UsageError(str(e)) from None
    for w in warnings:
        print(w, file=sys.stderr)
    if runs.empty and not speed:
        raise UsageError(f"{path} holds no runs.jsonl or speed.jsonl rows: name a results folder or one of its files")
    return Side(runs, speed, read)


def _setting(k: tuple) -> str:
    d = dict(zip(MATCH, k, strict=True))
    cap = f", epochs ≤ {d['epochs_cap']}" if d["epochs_cap"] is not None else ""
    recipe = "" if d["recipe"] == "ours" else f", the {d['recipe']}'s recipe"  # `--recipe seed`: another training
    where = f"{d['profile']}, {d['device_requested']}, {d['threads']} threads{cap}"
    return f"{where}, {d['precision']}, {d['tier']}{recipe}"


def _earlier_output(path: Path) -> bool:
    """Whether `path`, through any link, is a regular file that compare wrote (it starts with HEADER): the only
    file compare overwrites, so no spelling of a results file (`..`, a symlink, a hard link) is ever replaced."""
    try:
        with open(path, "rb") as f:
            return path.resolve().is_file() and f.read(len(HEADER)) == HEADER.encode()
    except OSError:
        return False


def run(
    base: Path, new: Path, threshold: float, output: str | None, show_all: bool = False, anchor: str | None = None
) -> int:
    """`harness.py compare`: markdown to stdout (and to `output`); exit 1 on a decided slowdown or growth."""
    from dlbench.driver.config import UsageError

    sides = [load_side(p) for p in (base, new)]
    if anchor and sides[0].speed and sides[1].speed and not all(anchor in s.anchors() for s in sides):
        raise UsageError(f"--anchor {anchor}: not the anchor of a speed sitting in both sets; name one that is")
    text, worse = compare_sets(*sides, threshold, show_all, anchor)
    if output:
        out = Path(output)
        if any(files.same_file(out, p) for s in sides for p in s.read):
            raise UsageError(f"--output {out} is a file compare read: name another file")
        if (out.exists() or out.is_symlink()) and not _earlier_output(out):
            raise UsageError(f"--output {out} exists and is not an earlier compare's output: name a new file")
        try:
            files.write_whole(out, text)
        except OSError as e:
            raise UsageError(f"cannot write {out} ({e.strerror}): name another --output") from None
    print(text)
    if output:
        print(f"written: {output}", file=sys.stderr)
    return 1 if worse else 0
