"""Every record kind the harness reads back, declared once: the types, ranges and words each reader relies on.

A results row (RESULTS/runs.jsonl), a speed row (RESULTS/speed.jsonl), a tuning choice (RESULTS/tuning.json),
the assessment (RESULTS/assessment.json), the overhead record (RESULTS/overhead.json) and a pytest-benchmark
file: each a pydantic model in strict mode (no "3" taken for 3, no true for 1), numbers finite, extra fields
kept as they are (a newer harness may add some). `problem(model, value)` is the one check: None, or the first
bad field by its path ("history.2.epoch_s: Input should be a finite number"). Readers skip what fails, name it
with its line, and hand the analysis only what passed. design.json is written for people and never read back.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dlbench.protocol import Status

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNegative = Annotated[float, Field(allow_inf_nan=False, ge=0)]
Positive = Annotated[float, Field(allow_inf_nan=False, gt=0)]
Count = Annotated[int, Field(ge=0)]
Name = Annotated[str, Field(min_length=1)]
StatusWord = Literal[tuple(s.value for s in Status)]  # type: ignore[valid-type]


class Record(BaseModel):
    """What every record shares: strict types, fields it does not declare kept."""

    model_config = ConfigDict(strict=True, extra="allow")


class Epoch(Record):
    """One epoch of a convergence run's history."""

    epoch_s: Finite
    val_s: Finite | None = None
    train_loss: Finite | None = None
    train_accuracy: Finite | None = None
    val_loss: Finite | None = None
    val_accuracy: Finite | None = None


class Gpu(Record):
    """One GPU of the machine record (nvidia-smi's answer)."""

    name: str | None = None
    driver: str | None = None


class Machine(Record):
    """The machine a row ran on (dlbench/driver/provenance.py): what the tables print from it."""

    hostname: str | None = None
    platform: str | None = None
    kernel: str | None = None
    boot_id: str | None = None
    microcode: str | None = None
    cpu: str | None = None
    cpu_count: int | None = None
    cpus_allowed: int | None = None
    memory_gib: NonNegative | None = None
    harness_python: str | None = None
    gpus: list[Gpu] | None = None


class Git(Record):
    """The commit a row was made at."""

    commit: str | None = None
    dirty: bool | None = None


class Hashed(Record):
    """A file a row depends on (the data, the environment's lock), by its hash."""

    sha256: str | None = None


class Provenance(Record):
    """Where a row came from (dlbench/driver/provenance.py); every part a reader prints, typed."""

    machine: Machine | None = None
    git: Git | None = None
    packages: dict[str, str | None] | None = None
    data: Hashed | None = None
    lock: Hashed | None = None
    python: str | None = None
    environment: str | None = None
    environment_sha256: str | None = None


class Run(Record):
    """A row of RESULTS/runs.jsonl: one job (a framework on a task with a seed) and how it ended."""

    framework: str
    task: str
    status: StatusWord
    profile: str
    seed: int
    schema_: int | None = Field(None, alias="schema")  # absent in rows older than schema 1
    kind: None = None  # a run row has no kind; a speed row says "speed"
    error: str | None = None
    threads: int | None = None
    device: str | None = None
    device_requested: str | None = None
    epochs_cap: int | None = None
    framework_version: str | None = None
    test_accuracy: Finite | None = None
    test_loss: Finite | None = None
    epochs_run: int | None = None
    stopped_early: bool | None = None
    train_s: Finite | None = None
    first_epoch_s: Finite | None = None
    steady_epoch_s: Finite | None = None
    train_samples_per_s: Finite | None = None
    time_to_target_s: Finite | None = None
    eval_samples_per_s: Finite | None = None
    peak_rss_mib: Finite | None = None
    rss_before_train_mib: Finite | None = None
    peak_device_mib: Finite | None = None
    n_params: int | None = None
    train_peak_rss_mib: Finite | None = None
    wall_s: Finite | None = None
    others_cpu_pct: Finite | None = None
    machine_busy: bool | None = None
    timestamp: str | None = None
    history: list[Epoch] | None = None
    provenance: Provenance | None = None
    cpus: list[int] | None = None
    run_index: int | None = None
    order: dict | None = None
    precision: str | None = None
    tier: str | None = None
    settings: dict | None = None
    recipe: str | None = None
    run_id: str | None = None
    latency_b1_ms_p50: Finite | None = None
    latency_b1_ms_p99: Finite | None = None
    gpu_util_pct_median: Finite | None = None
    gpu_energy_j: Finite | None = None
    cpu_energy_j: Finite | None = None
    gpu_util_pct_mean: Finite | None = None
    gpu_util_samples: int | None = None
    candidate: str | None = None
    import_s: Finite | None = None
    latency_b1_calls: int | None = None
    latency_b1_ms_iqr: Finite | None = None
    latency_b1_ms_p90: Finite | None = None
    latency_b1_warmup_calls: int | None = None
    load_avg_1m_before: Finite | None = None
    max_epochs: int | None = None
    monitor_note: str | None = None
    monitored_s: Finite | None = None
    n_params_delta: int | None = None
    n_train: Count | None = None
    n_val: Count | None = None
    n_test: Count | None = None
    numpy_version: str | None = None
    python: str | None = None
    sitting: dict | None = None
    throughput_basis: str | None = None
    worker_cpu_s: Finite | None = None


class Sitting(Record):
    """Which speed sitting a row belongs to (dlbench/driver/speed.py)."""

    id: Name
    boot_id: str | None = None
    started: str | None = None


class Speed(Run):
    """A row of RESULTS/speed.jsonl: one process's turn in a speed sitting and its timed windows."""

    kind: Literal["speed"]
    sitting: Sitting
    anchor: str | None = None
    round: int | None = None
    candidate: str | None = None
    window_kind: Literal["epoch", "pairs"] | None = None
    window_steps: list[Annotated[int, Field(gt=0)]] | None = None
    window_s: list[NonNegative] | None = None
    epoch_steps: Annotated[int, Field(gt=0)] | None = None
    pairs: int | None = None
    task_s: Finite | None = None
    rss_before_build_mib: NonNegative | None = None
    warm_peak_rss_mib: NonNegative | None = None
    timed_peak_rss_mib: NonNegative | None = None
    peak_reset: bool | None = None
    process_id: str | None = None
    phase: str | None = None
    batch_size: int | None = None
    long: int | None = None
    short: int | None = None
    build_s: Finite | None = None
    compile_s: Finite | None = None
    prepare_all_s: Finite | None = None
    group_start_s: Finite | None = None
    warmup_steps: list[int] | None = None
    warmup_s: list[Finite] | None = None
    warmup_steady: bool | None = None
    window_turn: list[int] | None = None
    others_cpu_s: Finite | None = None
    measured_wall_s: Finite | None = None

    @model_validator(mode="after")
    def _windows_pair_up(self) -> Speed:
        steps, seconds = self.window_steps or [], self.window_s or []
        if len(steps) != len(seconds):
            raise ValueError(f"{len(steps)} window_steps for {len(seconds)} window_s")
        return self


class Probe(Record):
    """One candidate on one task in a tune sitting (RESULTS/tuning.json)."""

    model_config = ConfigDict(strict=True, extra="forbid")
    candidate: str
    parity: str
    verdict: str
    ratio: Positive | None = None
    interval: Annotated[list[Finite], Field(min_length=2, max_length=2)] | None = None  # [low, high]
    processes: int = 0
    compile_s: Finite | None = None
    default_compile_s: Finite | None = None


class ChoiceKey(Record):
    """What a tuned tier's choice holds for: at least a framework and a task."""

    framework: str
    task: str


class Choice(Record):
    """A recorded tuned-tier choice (RESULTS/tuning.json's `choices`)."""

    key: ChoiceKey
    choice: str
    words: str
    probes: list[Probe] = []
    sitting: dict | None = None
    recorded: str = ""


class Pipeline(Record):
    """One input pipeline on one data kind (`harness.py assess`): each process's rate (and, for text, how many
    reviews it encoded otherwise than the reference), or why there is none."""

    samples_per_s: list[Positive] = []
    differing_reviews: list[Count] = []
    error: str | None = None


class ApiCheck(Record):
    """One adapter's framework names, each's standing in its release (dlbench/worker/apis.py), or why none."""

    names: dict[str, str] = {}
    error: str | None = None


class Assessment(Record):
    """RESULTS/assessment.json (`harness.py assess`)."""

    measured_at: str
    threads: int
    etl: dict[str, dict[Literal["images", "text"], Pipeline]] = {}
    install_mib: dict[str, NonNegative | None] = {}
    code_lines: dict[str, Count] = {}
    apis: dict[str, ApiCheck | None] = {}
    machine: Machine | None = None


class Overhead(Record):
    """One framework on one task in RESULTS/overhead.json (`harness.py overhead`)."""

    adapter_step_ms: Positive
    plain_step_ms: Positive
    ratio: Positive
    ratios: list[Positive]
    ratio_of_minima: Positive | None = None


class OverheadFile(Record):
    """RESULTS/overhead.json: per framework, per task an Overhead, or {"error": why} for the framework."""

    threads: int | None = None
    frameworks: dict[str, dict]


class BenchmarkStats(Record):
    """A pytest-benchmark entry's statistics, in seconds."""

    median: NonNegative


class Benchmark(Record):
    """One entry of a pytest-benchmark JSON file (`harness.py microbench`)."""

    group: str
    stats: BenchmarkStats
    extra_info: dict = {}


JSON_NAMES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def problem(model: type[BaseModel], value) -> str | None:
    """Why `value` is not a `model`, or None: the first bad field by its path, in one short line."""
    if not isinstance(value, dict):
        return f"a JSON {JSON_NAMES.get(type(value), type(value).__name__)}, not an object"
    try:
        model.model_validate(value)
        return None
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        try:  # a figure that is not finite is never printed, not even in a warning that a table may carry
            given = json.dumps(first.get("input"), default=str, allow_nan=False)
        except ValueError:  # that, or an integer of more than 4,300 digits
            given = "a number that is not finite, or too long"
        if not where:  # the record as a whole (two fields that disagree): the message says it all
            return first["msg"].removeprefix("Value error, ")
        if first["type"] in ("missing", "finite_number"):  # nothing to show: no value, or one no table prints
            return f"{where}: {first['msg'].lower()}"
        return f"{where}: {first['msg']} (given {given[:40]})"
