"""The worker protocol: the one module that both the driver and the worker import.

The driver starts one worker per job, with the framework's own interpreter, from the repository root:

    python -m dlbench.worker CONFIG.json

CONFIG.json is a `JobConfig` (`to_json` / `from_json`). The worker answers on stdout: every line that
starts with EVENT_PREFIX is one JSON object, an event; any other line is the framework's own output.

    {"event": "training"}                                                                  before the first epoch
    {"event": "epoch", "epoch": 3, "max_epochs": 30, "epoch_s": ..., "val_accuracy": ...}   after each epoch
                                                                       (a speed run: after each window)
    {"event": "result", ...measured fields...}                                            once, at the end
    {"event": "error", "status": "error" | "diverged", "error": "ValueError: ..."}         instead of result

A speed worker (Mode.SPEED) instead answers commands from stdin (dlbench/worker/speed.py): "started",
then "ready" for each task, "window" for each window, "error" (with "task") for a task that failed,
and "result" when told to end.

A worker exits 0 after `result` and 1 after `error`. One that ends with neither is classified by the
driver (killed by a signal: crashed; past its deadline: timeout; over its memory cap: oom; stopped by
the user: interrupted); one whose environment is missing never starts (unavailable); one whose Ray
node died never reports (lost). Every outcome is a `Status` and becomes one results row.

Standard library only: this runs under every framework's interpreter (MXNet's Python 3.11 and numpy
1.23 included) and in the driver.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import Enum

from dlbench import files

PARITY_STEPS = 10  # Adam steps each framework takes on the shared batches in `harness.py parity`

# The version of a results row; bump on any change of a field's meaning. Rows without one are schema 0.
# 2: rss_before_train_mib is the resident memory when training starts (it was the peak so far), and
#    train_peak_rss_mib is new: the peak from then on.
# Fields added without changing another's meaning keep the version: `sitting` (this invocation's id, boot id
# and start) and provenance.machine's boot_id, microcode and kernel; the speed protocol's rows ("kind":
# "speed") live in their own file, speed.jsonl.
SCHEMA = 2
EVENT_PREFIX = "@@dlbench "


class Word(str, Enum):
    """A closed vocabulary whose members are their own JSON strings (`json.dumps(Status.OK)` == '"ok"')."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


class Status(Word):
    """How a job ended: the `status` field of its row."""

    OK = "ok"
    ERROR = "error"  # an exception in the worker: `error` is its last line
    DIVERGED = "diverged"  # a non-finite loss, with the epoch
    CRASHED = "crashed"  # killed by a signal
    TIMEOUT = "timeout"  # past --timeout
    OOM = "oom"  # past --max-rss-mib
    INTERRUPTED = "interrupted"  # Ctrl-C (or another stop signal) to the harness
    UNAVAILABLE = "unavailable"  # the framework's environment is missing: `error` says how to make it
    LOST = "lost"  # its Ray task or node died


class Mode(Word):
    RUN = "run"  # train one task x seed and measure it
    PARITY = "parity"  # the parity measurements of dlbench/worker/parity.py, for several tasks
    SPEED = "speed"  # one speed run: warm up, then timed windows of whole steps (dlbench/worker/speed.py)


class Event(Word):
    TRAINING = "training"  # the epoch loop starts now (the monitor starts sampling)
    EPOCH = "epoch"
    RESULT = "result"
    ERROR = "error"
    # A speed worker (Mode.SPEED) takes commands on stdin, one JSON object a line, and answers each:
    STARTED = "started"  # imported and configured: device, settings, versions, import_s
    READY = "ready"  # {"do": "task"} done: the task is built and warmed up; its window lengths
    WINDOW = "window"  # {"do": "window", "steps": k} done: its seconds


class Profile(Word):
    QUICK = "quick"
    FULL = "full"


class RecipeName(Word):
    """Which recipe trains a task (tasks/spec.py: with_recipe)."""

    OURS = "ours"  # the task's recipe: the same split and early stopping for every task
    SEED = "seed"  # the seed's own, where it gives one whole (IMDB: all 25,000 reviews, 10 epochs, test set validates)


class Device(Word):
    CPU = "cpu"
    GPU = "gpu"
    AUTO = "auto"


class Tier(Word):
    """Which of a framework's configurations runs (frameworks/__init__.py documents each adapter's)."""

    DEFAULT = "default"  # what the framework's documented defaults give a user
    TUNED = "tuned"  # the best a competent user would configure from the framework's own documentation


class Precision(Word):
    """The arithmetic of matmuls and convolutions, the same policy in every adapter."""

    FP32 = "fp32"  # IEEE float32 everywhere: TF32 off in cuBLAS/cuDNN/XLA (the default)
    TF32 = "tf32"  # TF32 tensor cores on (NVIDIA Ampere and later; a GPU format only)
    BF16 = "bf16"  # each framework's idiomatic mixed precision: bf16 compute, fp32 weights and loss


@dataclass(frozen=True)
class JobConfig:
    """What one worker is asked to do. Run jobs use task..npz; parity jobs use tasks, inputs and out."""

    mode: Mode
    module: str  # the adapter, e.g. "frameworks.pytorch"
    threads: int
    device: Device = Device.CPU
    task: str = ""
    profile: Profile = Profile.QUICK
    seed: int = 0
    epochs: int | None = None  # the --epochs cap
    npz: str = ""  # the ETL's cached arrays (tasks/data.py)
    cpus: tuple[int, ...] = ()  # the CPUs to pin to; () = the first `threads` this process may use
    precision: Precision = Precision.FP32
    deterministic: bool = False  # deterministic kernels (cuDNN, XLA, TF op determinism): parity asks for them
    tier: Tier = Tier.DEFAULT
    recipe: RecipeName = RecipeName.OURS
    candidate: str = ""  # the tuned tier's chosen candidate (frameworks.Candidate.name); "" in the default tier
    tasks: tuple[str, ...] = ()
    inputs: str = ""  # parity: folder of TASK.npz inputs
    out: str = ""  # parity: folder for TASK.npz measurements
    # speed: a long window lasts about window_target_s (dlbench/worker/speed.py)
    window_target_s: float = 0.25
    warmup_max: int = 6

    @property
    def configuration(self) -> str:
        """What the adapter's configure() is given as its tier: "default", or the tuned tier's candidate."""
        if self.tier == Tier.DEFAULT:
            return "default"
        if not self.candidate:
            raise ValueError("the tuned tier needs a candidate: the driver resolves it (dlbench/driver/tuning.py)")
        return self.candidate

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> JobConfig:
        raw = json.loads(text)
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in raw.items() if k in known}
        d["mode"], d["device"], d["profile"] = Mode(d["mode"]), Device(d["device"]), Profile(d["profile"])
        d["precision"] = Precision(d.get("precision", Precision.FP32))
        d["tier"] = Tier(d.get("tier", Tier.DEFAULT))
        d["recipe"] = RecipeName(d.get("recipe", RecipeName.OURS))
        d["cpus"], d["tasks"] = tuple(d.get("cpus", ())), tuple(d.get("tasks", ()))
        return cls(**d)


def emit(kind: Event, **fields_) -> None:
    """Write one event line to stdout, flushed (the driver reads it as it comes)."""
    print(EVENT_PREFIX + json.dumps({"event": kind, **fields_}), flush=True)


def parse(line: str) -> dict | None:
    """The event on a line of worker output, or None for the framework's own output."""
    if not line.startswith(EVENT_PREFIX):
        return None
    try:  # bounded: a framework may print anything, even after our prefix
        ev = files.loads(line[len(EVENT_PREFIX) :])
    except ValueError:
        return None
    return ev if isinstance(ev, dict) and ev.get("event") in {e.value for e in Event} else None
