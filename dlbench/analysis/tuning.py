"""The tuned tier chosen by measurement: the choice, its record (RESULTS/tuning.json) and the report's table.

A framework's candidates (frameworks.Candidate: configurations its own documentation offers for speed)
meet its default tier in one tune sitting of the speed protocol: each candidate against the default as
the anchor, Holm-corrected within each task's family (dlbench/analysis/verdicts.py). The fastest
candidate whose verdict is "faster" (it beats the default beyond the noise) becomes the tuned tier for
that task; where none does, the tuned tier is the default and the report says so. A candidate that
failed parity on a task is not offered there, and a slower or equivalent one is never chosen.

A choice is reused only where its key matches: the machine (CPU model, usable CPUs, GPUs), device,
threads, precision, framework, task, the environment's package fingerprint and the candidates offered.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from dlbench import files, schemas
from dlbench.analysis.verdicts import Verdict

SCHEMA = 1
FILE = "tuning.json"
NONE_FASTER = "no documented option was faster here"
NO_CANDIDATES = "no candidates: its documented speed path is its default"
PASS = "pass"


@dataclass(frozen=True)
class Probe:
    """One candidate on one task in a tune sitting."""

    candidate: str
    parity: str  # PASS, or why it was not offered
    verdict: str  # a Verdict against the default, or "not measured"
    ratio: float | None = None  # its time per step / the default's (geometric mean over groups)
    interval: tuple[float, float] | None = None  # the ratio's interval, at the level its verdict used
    processes: int = 0
    compile_s: float | None = None  # its first window (compilation and the first pass), median over processes
    default_compile_s: float | None = None  # the default's, the same way


@dataclass(frozen=True)
class Choice:
    """The tuned tier of one framework on one task, on the machine and stack of `key`."""

    key: dict
    choice: str  # a candidate's name, or "default"
    words: str
    probes: tuple[Probe, ...] = ()
    sitting: dict | None = None
    recorded: str = ""

    @classmethod
    def from_json(cls, d) -> Choice:
        """A recorded choice; ValueError naming the field where `d` is not one (tuning.json is read back)."""
        why = schemas.problem(schemas.Choice, d)
        if why:
            raise ValueError(why)
        probes = tuple(
            Probe(**{**p, "interval": tuple(p["interval"]) if p.get("interval") else None}) for p in d.get("probes", [])
        )
        return cls(d["key"], d["choice"], d["words"], probes, d.get("sitting"), d.get("recorded", ""))


def choose(probes: list[Probe] | tuple[Probe, ...]) -> tuple[str, str]:
    """(candidate or "default", words): the fastest candidate that passed parity and measured faster."""
    if not probes:
        return "default", NO_CANDIDATES
    faster = [p for p in probes if p.parity == PASS and p.verdict == Verdict.FASTER and p.ratio is not None]
    if not faster:
        return "default", NONE_FASTER
    best = min(faster, key=lambda p: p.ratio)
    lo, hi = best.interval or (math.nan, math.nan)
    return (
        best.candidate,
        f"{best.candidate}: {1 / best.ratio:.2f}x faster than the default [{1 / hi:.2f}, {1 / lo:.2f}]",
    )


def read(results: Path) -> tuple[list[Choice], list]:
    """(the choices recorded in RESULTS/tuning.json, the entries that are not choices, verbatim)."""
    path = results / FILE
    if not path.exists():
        return [], []
    record = files.read_json(path)
    found = record.get("choices") if isinstance(record, dict) else None
    out, bad = [], []
    for d in found if isinstance(found, list) else []:
        try:
            out.append(Choice.from_json(d))
        except (ValueError, TypeError) as e:
            bad.append(d)
            print(files.one_line(f"warning: {path}: an entry set aside ({e})"), file=sys.stderr)
    return out, bad


def load(results: Path) -> list[Choice]:
    """The choices recorded in RESULTS/tuning.json ([] if there is none; an entry that is not one is skipped,
    with a warning)."""
    return read(results)[0]


def save(results: Path, new: list[Choice]) -> None:
    """Record `new`, replacing any earlier choice with the same key; an entry that is not a choice is kept
    verbatim (never lost to a rewrite); the file is written whole."""
    keys = [json.dumps(c.key, sort_keys=True) for c in new]
    choices, bad = read(results)
    kept = [asdict(c) for c in choices if json.dumps(c.key, sort_keys=True) not in keys]
    body = {"schema": SCHEMA, "choices": [*kept, *bad, *(asdict(c) for c in new)]}
    files.write_whole(results / FILE, json.dumps(body, indent=1) + "\n")


def lookup(choices: list[Choice], key: dict) -> Choice | None:
    """The choice recorded for exactly this key (machine, stack, candidates...), or None: stale ones never match."""
    want = json.dumps(key, sort_keys=True)
    found = [c for c in choices if json.dumps(c.key, sort_keys=True) == want]
    return found[-1] if found else None


def table(choices: list[Choice]) -> pd.DataFrame:
    """A row per framework, task and candidate: parity, ratio to the default, verdict, compile cost, the choice."""
    lines = []
    for c in sorted(choices, key=lambda c: (c.key.get("task", ""), c.key.get("framework", ""))):
        base = {"task": c.key.get("task"), "framework": c.key.get("framework")}
        if not c.probes:
            lines.append(
                {
                    **base,
                    "candidate": "—",
                    "parity": "",
                    "× default [interval]": "",
                    "verdict": "",
                    "first window s (default → it)": "",
                    "chosen": f"default ({c.words})",
                }
            )
        for p in c.probes:
            ratio = f"{p.ratio:.3g} [{p.interval[0]:.3g}, {p.interval[1]:.3g}]" if p.ratio and p.interval else "—"
            first = (
                f"{p.default_compile_s:.3g} → {p.compile_s:.3g}"
                if p.compile_s is not None and p.default_compile_s is not None
                else "—"
            )
            lines.append(
                {
                    **base,
                    "candidate": p.candidate,
                    "parity": p.parity,
                    "× default [interval]": ratio,
                    "verdict": p.verdict,
                    "first window s (default → it)": first,
                    "chosen": "yes" if p.candidate == c.choice else "",
                }
            )
        if c.probes and c.choice == "default":
            lines.append(
                {
                    **base,
                    "candidate": "default",
                    "parity": "",
                    "× default [interval]": "1",
                    "verdict": "",
                    "first window s (default → it)": "",
                    "chosen": f"yes ({c.words})",
                }
            )
    return pd.DataFrame(lines)


def section(choices: list[Choice]) -> str:
    """The report's tuned-tier section: every candidate measured and the one chosen, per task and framework."""
    if not choices:
        return ""
    return (
        "## Tuned tiers, chosen by measurement (`harness.py tune`)\n\n"
        "Each candidate against its framework's default in one tune sitting of the speed protocol "
        "(Holm-corrected within the task); the fastest that is faster beyond the noise is the tuned tier, "
        "else the default. The first window holds compilation and the first pass.\n\n"
        + table(choices).to_markdown(index=False, disable_numparse=True)
        + "\n"
    )
