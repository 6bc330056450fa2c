"""What each subcommand is asked to do, as typed, frozen configs, and the checks that build them.

harness.py turns the command line into one of these; a value that cannot be used raises UsageError,
which the harness prints as one line with exit status 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlbench.driver.provenance import usable_cpus
from dlbench.protocol import Device, Profile, Word

DEFAULT_TIMEOUT_S = {Profile.QUICK: 600, Profile.FULL: 4 * 3600}


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class Executor(Word):
    LOCAL = "local"  # one worker at a time on this machine
    RAY = "ray"  # each job a Ray task (dlbench/driver/ray_executor.py)


@dataclass(frozen=True)
class RunConfig:
    frameworks: tuple[str, ...]
    tasks: tuple[str, ...]
    profile: Profile
    seeds: tuple[int, ...]
    threads: int
    device: Device
    epochs: int | None  # cap on every profile's epochs
    timeout_s: float
    results: Path  # the folder; rows go to results/runs.jsonl
    data_dir: str | None
    resume: bool
    max_rss_mib: float | None
    executor: Executor
    ray_address: str | None
    argv: tuple[str, ...]  # the command line, recorded in provenance and repeated in the resume hint


@dataclass(frozen=True)
class ParityConfig:
    frameworks: tuple[str, ...]
    tasks: tuple[str, ...]
    threads: int
    device: Device
    timeout_s: float
    results: Path


@dataclass(frozen=True)
class AssessConfig:
    threads: int
    results: Path
    data_dir: str | None


@dataclass(frozen=True)
class MicrobenchConfig:
    frameworks: tuple[str, ...]
    threads: int
    timeout_s: float
    results: Path


def names(value: str, known, what: str) -> tuple[str, ...]:
    """Comma-separated names, each one of `known`, or "all"."""
    chosen = list(known) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown or not chosen:
        raise UsageError(f"unknown {what} {', '.join(unknown) or repr(value)}: choose from {', '.join(known)}")
    return tuple(chosen)


def non_negative_ints(value: str, what: str) -> tuple[int, ...]:
    try:
        nums = [int(v) for v in value.split(",")]
    except ValueError:
        raise UsageError(f"{what} must be integers separated by commas, got {value!r}") from None
    if any(n < 0 for n in nums):
        raise UsageError(f"{what} must not be negative, got {value!r}")
    return tuple(nums)


def threads(value: int | None) -> int:
    """--threads, default all the CPUs this process may use."""
    cpus = len(usable_cpus())
    n = cpus if value is None else value
    if not 1 <= n <= cpus:
        raise UsageError(f"--threads must be between 1 and {cpus} (the CPUs this process may use), got {n}")
    return n


def positive(value: float | None, what: str) -> float | None:
    if value is not None and not value > 0:
        raise UsageError(f"{what} must be positive, got {value:g}")
    return value
