"""What each subcommand is asked to do, as typed, frozen configs, and the checks that build them.

harness.py turns the command line into one of these; a value that cannot be used raises UsageError,
which the harness prints as one line with exit status 2.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from dlbench.driver.provenance import usable_cpus
from dlbench.protocol import Device, Precision, Profile, RecipeName, Tier, Word
from dlbench.results import check_writable

DEFAULT_TIMEOUT_S = {Profile.QUICK: 600, Profile.FULL: 4 * 3600}
# Seeds reach every framework's own seeding; the Keras adapter seeds layer i with seed * 1000 + i, and
# MXNet's seed is a C int: 0..2**20 - 1 stays within int32 everywhere.
MAX_SEED = 2**20 - 1
MAX_REPEATS = 1000


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class Order(Word):
    INTERLEAVED = "interleaved"  # seed by seed; within a seed task by task, frameworks in a seeded random order
    FIXED = "fixed"  # task by task, framework by framework, seed by seed (the order given)


class Executor(Word):
    LOCAL = "local"  # one worker at a time on this machine
    RAY = "ray"  # each job a Ray task (dlbench/driver/ray_executor.py)


@dataclass(frozen=True)
class RunConfig:
    frameworks: tuple[Variant, ...]
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
    order: Order = Order.INTERLEAVED
    order_seed: int = 0  # the permutation's seed, recorded in every row
    precision: Precision = Precision.FP32
    candidates: dict = field(default_factory=dict)  # (framework, task) -> the tuned tier's chosen candidate
    recipe: RecipeName = RecipeName.OURS


@dataclass(frozen=True)
class TuneConfig:
    """`harness.py tune`: each framework's tuned tier chosen by measurement (dlbench/driver/tuning.py)."""

    frameworks: tuple[str, ...]
    tasks: tuple[str, ...]
    threads: int
    device: Device
    precision: Precision
    results: Path  # tuning.json here; the tune sittings' rows, plans and parity in results/tuning/
    data_dir: str | None
    argv: tuple[str, ...]
    budget_per_task_s: float = 200.0  # Iris alone at 200 s a framework ran 7 groups and decided (docs/editions.md)
    equivalence: float = 0.10
    timeout_s: float = 900.0  # per answer of a worker (parity: per worker)

    @property
    def budget_s(self) -> float:
        """Each framework's tune sitting (the speed protocol's --budget), by its tasks: 360 s for four gave 2-4
        groups, too few to decide a 3.5x difference."""
        return self.budget_per_task_s * len(self.tasks)


@dataclass(frozen=True)
class ParityConfig:
    frameworks: tuple[Variant, ...]
    tasks: tuple[str, ...]
    threads: int
    device: Device
    timeout_s: float
    results: Path
    precision: Precision = Precision.FP32


@dataclass(frozen=True)
class SpeedConfig:
    """`harness.py speed`: the speed protocol (dlbench/driver/speed.py)."""

    frameworks: tuple[Variant, ...]  # the anchor among them
    tasks: tuple[str, ...]
    anchor: Variant
    threads: int
    device: Device
    precision: Precision
    results: Path  # rows go to results/speed.jsonl
    data_dir: str | None
    argv: tuple[str, ...]
    # the whole protocol, data preparation included. 540 s (the earlier default) ran the 2 pilot groups only on boot
    # 2dfb2a07 (a group of the 9 frameworks x 4 tasks: 185 s) and decided 5 of 32; the third edition's sitting cut to
    # its first 3 / 4 groups decides 23 / 26 of 32 (docs/methodology.md)
    budget_s: float = 900.0
    equivalence: float = 0.10  # +-10 %: the two one-sided tests' margin
    target: float = 0.05  # the planned precision: 95 % interval half-width of each ratio to the anchor
    pilot: int = 2  # processes per framework before the plan (they count in the verdicts too)
    pilot_pairs: int = 2  # window pairs per task in a pilot process
    window_target_s: float = 0.15  # seconds of a long window
    timeout_s: float = 900.0  # per answer of a worker
    order_seed: int = 0
    tasks_of: dict = field(default_factory=dict)  # str(variant) -> its tasks, where not all (a tuned choice's)


@dataclass(frozen=True)
class AssessConfig:
    threads: int
    results: Path
    data_dir: str | None
    online: bool = False  # refresh the release histories from PyPI first


@dataclass(frozen=True)
class MicrobenchConfig:
    frameworks: tuple[str, ...]
    threads: int
    timeout_s: float
    results: Path


def _items(value: str, what: str) -> list[str]:
    """A comma-separated list's items, stripped; UsageError if one is empty or named twice."""
    items = [v.strip() for v in value.split(",")]
    if not value.strip():
        raise UsageError(f"{what} is empty: give one or more items separated by commas")
    if "" in items:
        raise UsageError(f"{what} has an empty item in {value!r}: separate the items with single commas")
    twice = sorted({v for v in items if items.count(v) > 1})
    if twice:
        raise UsageError(f"{what} names {', '.join(twice)} more than once: give each once")
    return items


def names(value: str, known, what: str) -> tuple[str, ...]:
    """Comma-separated names, each one of `known`, or "all"."""
    chosen = list(known) if value == "all" else _items(value, f"the {what} list")
    unknown = [n for n in chosen if n not in known]
    if unknown:
        shown = ", ".join(repr(n) if not n.isprintable() or len(n) > 40 else n for n in unknown)
        raise UsageError(f"unknown {what} {shown[:200]}: choose from {', '.join(known)}")
    return tuple(chosen)


def one_name(value: str, known, what: str) -> str:
    """Exactly one of `known` (not "all", not a list): for a command about one framework."""
    chosen = names(value, known, what) if value != "all" else ()
    if len(chosen) != 1:
        raise UsageError(f"name one {what}, got {value[:80]!r}: choose from {', '.join(known)}")
    return chosen[0]


class Variant(NamedTuple):
    """A framework in one tier: what one row measures. In the tuned tier, `candidate` names the configuration
    (frameworks.Candidate): chosen by `harness.py tune` for a task, or a candidate that tune measures."""

    framework: str
    tier: Tier
    candidate: str = ""

    def __str__(self) -> str:
        if self.tier == Tier.DEFAULT:
            return self.framework
        return f"{self.framework} ({self.candidate or self.tier})"


def variants(value: str, tier: str, registry, aliases) -> tuple[Variant, ...]:
    """(framework, tier) pairs to run: each named framework in each tier of --tier (default, tuned, or all);
    an alias (torch-compile) names one framework in one tier."""
    tiers = list(Tier) if tier == "all" else [Tier(tier)]
    chosen = names(value, {**registry, **aliases} if value != "all" else registry, "framework")
    out: list[Variant] = []
    for name in chosen:
        pairs = (
            [Variant(aliases[name][0], Tier(aliases[name][1]))]
            if name in aliases
            else [Variant(name, t) for t in tiers]
        )
        out += [p for p in pairs if p not in out]
    return tuple(out)


def every_candidate(frameworks: tuple[Variant, ...], device: str, registry) -> tuple[Variant, ...]:
    """Tuned variants without a candidate become one variant per candidate offered (parity checks them all)."""
    out: list[Variant] = []
    for v in frameworks:
        if v.tier == Tier.TUNED and not v.candidate:
            out += [Variant(v.framework, Tier.TUNED, c.name) for c in registry[v.framework].offered(device)]
        else:
            out.append(v)
    return tuple(dict.fromkeys(out))


def non_negative_ints(value: str, what: str) -> tuple[int, ...]:
    """Comma-separated decimal integers (ASCII digits only: int() would take "١" or "1_0"), each once."""
    items = _items(value, what)
    if not all(re.fullmatch(r"[0-9]{1,30}", v) for v in items):
        raise UsageError(f"{what} must be integers separated by commas, got {value[:80]!r}")
    nums = [int(v) for v in items]
    if any(not 0 <= n <= MAX_SEED for n in nums):
        raise UsageError(f"{what} must be between 0 and {MAX_SEED} (every framework's seed range), got {value!r}")
    if len(set(nums)) < len(nums):
        raise UsageError(f"{what} names a seed more than once ({value!r}): give each once")
    return tuple(nums)


def seeds(seeds: str | None, repeats: int | None) -> tuple[int, ...]:
    """--seeds 0,1,2 or --repeats 3 (seeds 0..2); seed 0 by default."""
    if repeats is None:
        return non_negative_ints("0" if seeds is None else seeds, "--seeds")
    if seeds is not None:
        raise UsageError("give either --seeds or --repeats, not both")
    if not 1 <= repeats <= MAX_REPEATS:
        raise UsageError(f"--repeats must be between 1 and {MAX_REPEATS}, got {repeats}")
    return tuple(range(repeats))


def recipe(value: str, tasks: list) -> RecipeName:
    """--recipe: refused in one line where a task's seed gives no whole recipe (the tasks that have one named)."""
    from tasks.spec import with_recipe

    if value == RecipeName.SEED:
        for t in tasks:
            try:
                with_recipe(t, value)
            except ValueError as e:
                from tasks import TASKS

                have = ", ".join(n for n, k in TASKS.items() if k.seed_recipe is not None)
                raise UsageError(f"--recipe seed: {e}; give --tasks among {have}") from None
    return RecipeName(value)


def precision(value: str, device: Device, frameworks: tuple[str, ...], registry) -> Precision:
    """--precision, refused in one line where it cannot apply: TF32 off a GPU, bf16 where an adapter lacks it."""
    p = Precision(value)
    if p == Precision.TF32 and device == Device.CPU:
        raise UsageError("--precision tf32 is an NVIDIA GPU format: on --device cpu use fp32 (or bf16)")
    lacking = [v[0] for v in frameworks if p.value not in registry[v[0]].precisions]
    if lacking:
        raise UsageError(
            f"--precision {p} is not implemented by {', '.join(lacking)}: "
            f"leave {'it' if len(lacking) == 1 else 'them'} out with --frameworks"
        )
    return p


def order_seed(value: int | None) -> int:
    """--order-seed, or a fresh one (recorded in every row, so the order can be repeated)."""
    if value is None:
        return secrets.randbelow(2**31)
    if not 0 <= value < 2**31:
        raise UsageError(f"--order-seed must be between 0 and {2**31 - 1}, got {value}")
    return value


def path(value: str, what: str, kind: str = "path") -> Path:
    """A path given on the command line: not empty (Path("") is the current folder, silently)."""
    if not value.strip():
        raise UsageError(f"{what} must name a {kind}, got an empty string")
    return Path(value)


def existing_dir(value: str, what: str) -> Path:
    """A folder that must already exist (one the command only reads)."""
    found = path(value, what, "folder")
    if not found.is_dir():
        raise UsageError(f"{what} {value!r} is not a folder: name a results folder that exists")
    return found


def results_dir(value: str) -> Path:
    """--results: a folder name; that it can be written is checked before any work (dlbench/results.py)."""
    return path(value, "--results", "folder")


def data_dir(value: str | None) -> str | None:
    """--data-dir (else $DLBENCH_DATA_DIR): if given, an existing folder; an empty variable counts as unset."""
    import os

    for given, what in ((value, "--data-dir"), (os.environ.get("DLBENCH_DATA_DIR") or None, "DLBENCH_DATA_DIR")):
        if given is not None and not path(given, what, "folder").is_dir():
            raise UsageError(f"{what} {given!r} is not a folder: point it at the data (see docs/setup-and-commands.md)")
    return value


def threads(value: int | None) -> int:
    """--threads, default all the CPUs this process may use."""
    cpus = len(usable_cpus())
    n = cpus if value is None else value
    if not 1 <= n <= cpus:
        raise UsageError(f"--threads must be between 1 and {cpus} (the CPUs this process may use), got {n}")
    return n


def percent(value: str, what: str) -> float:
    """ "5%" or "0.05" -> 0.05; ASCII decimal (float() would take "١" or "1_0"), finite, 0 <= x < 10."""
    v = value.strip()
    m = re.fullmatch(r"([0-9]{0,6}(?:\.[0-9]{0,9})?)(%?)", v)
    if not m or not m.group(1).strip("."):
        raise UsageError(f"{what} must be a number or a percentage like 5%, got {value[:80]!r}")
    x = float(m.group(1)) / (100 if m.group(2) else 1)
    if not 0 <= x < 10:
        raise UsageError(f"{what} must be between 0% and 1000%, got {value[:80]!r}")
    return x


def assess_config(a) -> AssessConfig:
    """`harness.py assess`'s arguments, checked."""
    return AssessConfig(
        threads=threads(a.threads), results=results_dir(a.results), data_dir=data_dir(a.data_dir), online=a.online
    )


def check_output(folder: Path) -> None:
    """Fail before any work, in one line, if results could not be written into `folder`."""
    try:
        check_writable(folder)
    except OSError as e:
        why = e.strerror or e
        raise UsageError(f"cannot write results into {str(folder)!r} ({why}): choose another --results") from None


def count(value: int, what: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise UsageError(f"{what} must be between {low} and {high}, got {value}")
    return value


def positive(value: float | None, what: str) -> float | None:
    """A positive, finite number (nan and inf would silently switch a limit off), or None."""
    if value is not None and not 0 < value < float("inf"):
        raise UsageError(f"{what} must be a positive, finite number, got {value:g}")
    return value


def merge(sources: list[Path], out: Path) -> int:
    """`harness.py merge`: every row of `sources` into OUT/runs.jsonl once (by run_id)."""
    import sys

    from dlbench.protocol import SCHEMA
    from dlbench.results import merge as merge_rows

    check_output(out)
    files = [s / "runs.jsonl" if s.is_dir() else s for s in sources]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"no results file at {', '.join(missing)}: give folders or runs.jsonl files")
    try:
        added, dup, warnings = merge_rows(files, out, SCHEMA)
    except ValueError as e:
        raise UsageError(str(e)) from None
    for w in warnings:
        print(w, file=sys.stderr)
    print(f"{added} row(s) added to {out / 'runs.jsonl'}, {dup} already there (same run_id)")
    return 0


def speed_config(a, registry, aliases, tasks) -> SpeedConfig:
    """`harness.py speed`'s arguments, checked: the anchor runs in every sitting, so it joins the frameworks."""
    import sys

    frameworks = variants(a.frameworks, a.tier, registry, aliases)
    anchor = variants(a.anchor, "default", registry, aliases)
    if len(anchor) != 1:
        raise UsageError(f"--anchor names one framework, got {a.anchor!r}")
    return SpeedConfig(
        frameworks=tuple(dict.fromkeys((anchor[0], *frameworks))),
        tasks=names(a.tasks, tasks, "task"),
        anchor=anchor[0],
        threads=threads(a.threads),
        device=Device(a.device),
        precision=precision(a.precision, Device(a.device), frameworks, registry),
        results=results_dir(a.results),
        data_dir=data_dir(a.data_dir),
        argv=tuple(sys.argv[1:]),
        budget_s=positive(a.budget, "--budget"),
        equivalence=percent(a.equivalence, "--equivalence"),
        target=percent(a.target, "--target"),
        pilot=count(a.pilot, "--pilot", 2, 20),
        order_seed=secrets.randbelow(2**31),  # shifts the Williams rows; recorded in design.json
    )


def tune_config(a, registry, tasks) -> TuneConfig:
    """`harness.py tune`'s arguments, checked."""
    import sys

    return TuneConfig(
        frameworks=names(a.frameworks, registry, "framework"),
        tasks=names(a.tasks, tasks, "task"),
        threads=threads(a.threads),
        device=Device(a.device),
        precision=precision(
            a.precision, Device(a.device), [(f,) for f in names(a.frameworks, registry, "f")], registry
        ),
        results=results_dir(a.results),
        data_dir=data_dir(a.data_dir),
        argv=tuple(sys.argv[1:]),
        budget_per_task_s=positive(a.budget, "--budget"),
        equivalence=percent(a.equivalence, "--equivalence"),
    )


def parity_config(a, registry, aliases, tasks) -> ParityConfig:
    """`harness.py parity`'s arguments, checked."""
    frameworks = variants(a.frameworks, a.tier, registry, aliases)
    return ParityConfig(
        frameworks=frameworks,
        tasks=names(a.tasks, tasks, "task"),
        threads=threads(a.threads),
        device=Device(a.device),
        timeout_s=positive(a.timeout, "--timeout"),
        results=results_dir(a.results),
        precision=precision(a.precision, Device(a.device), frameworks, registry),
    )


def tune_with(cfg) -> TuneConfig:
    """The tune a run or speed sitting does first where a tuned tier has no recorded choice."""
    return TuneConfig(
        frameworks=(),
        tasks=cfg.tasks,
        threads=cfg.threads,
        device=cfg.device,
        precision=cfg.precision,
        results=cfg.results,
        data_dir=cfg.data_dir,
        argv=cfg.argv,
    )


def run_config(a, registry, aliases, tasks) -> RunConfig:
    """`harness.py run`'s arguments, checked."""
    import sys

    if a.epochs is not None and a.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {a.epochs}")
    profile = Profile(a.profile)
    frameworks, task_names = variants(a.frameworks, a.tier, registry, aliases), names(a.tasks, tasks, "task")
    return RunConfig(
        frameworks=frameworks,
        tasks=task_names,
        profile=profile,
        seeds=seeds(a.seeds, a.repeats),
        threads=threads(a.threads),
        device=Device(a.device),
        epochs=a.epochs,
        timeout_s=positive(a.timeout, "--timeout") or DEFAULT_TIMEOUT_S[profile],
        results=results_dir(a.results),
        data_dir=data_dir(a.data_dir),
        resume=a.resume,
        max_rss_mib=positive(a.max_rss_mib, "--max-rss-mib"),
        executor=Executor(a.executor),
        ray_address=a.ray_address,
        argv=tuple(sys.argv[1:]),
        order=Order(a.order),
        order_seed=order_seed(a.order_seed),
        precision=precision(a.precision, Device(a.device), frameworks, registry),
        recipe=recipe(a.recipe, [tasks[t] for t in task_names]),
    )
