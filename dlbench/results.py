"""The results file, RESULTS/runs.jsonl: one JSON row per job. Written by the driver, read by everyone.

Writing: `append_row` adds one whole line, a single write under an exclusive lock, fsynced. A file
that does not end in a newline (a fragment left by a crash or a full disk) gets one first, so the new
row never glues onto the fragment. A write that fails (ENOSPC, EIO) is undone (the file is cut back
to its size before) and the row is kept in a recovery file instead, whose path is returned.

Reading: `read_rows` is the one reader (report, --resume, compare, merge), bounded (dlbench/files.py:
regular files only, a size, line and depth cap). Each line is decoded and checked field by field against
FIELDS; a line that is too long, not UTF-8, not JSON, too deep, not an object or has a field of the
wrong type is skipped and reported with its line number, never fatal. Standard library only.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlbench import files
from dlbench.protocol import Status

_NUM, _INT, _STR, _BOOL, _DICT, _LIST = "number", "int", "str", "bool", "dict", "list"

# field -> (type, may be null). Fields not listed are kept as they are. Rows lacking a required
# field (null not allowed) are bad lines; `schema` is absent in rows older than schema 1.
FIELDS: dict[str, tuple[str, bool]] = {
    "framework": (_STR, False),
    "task": (_STR, False),
    "status": (_STR, False),
    "profile": (_STR, False),
    "seed": (_INT, False),
    "schema": (_INT, True),
    "error": (_STR, True),
    "threads": (_INT, True),
    "device": (_STR, True),
    "device_requested": (_STR, True),
    "epochs_cap": (_INT, True),
    "framework_version": (_STR, True),
    "test_accuracy": (_NUM, True),
    "test_loss": (_NUM, True),
    "epochs_run": (_INT, True),
    "stopped_early": (_BOOL, True),
    "train_s": (_NUM, True),
    "first_epoch_s": (_NUM, True),
    "steady_epoch_s": (_NUM, True),
    "train_samples_per_s": (_NUM, True),
    "time_to_target_s": (_NUM, True),
    "eval_samples_per_s": (_NUM, True),
    "peak_rss_mib": (_NUM, True),
    "rss_before_train_mib": (_NUM, True),
    "peak_device_mib": (_NUM, True),
    "n_params": (_INT, True),
    "train_peak_rss_mib": (_NUM, True),
    "wall_s": (_NUM, True),
    "others_cpu_pct": (_NUM, True),
    "machine_busy": (_BOOL, True),
    "timestamp": (_STR, True),
    "history": (_LIST, True),
    "provenance": (_DICT, True),
    "cpus": (_LIST, True),
    "run_index": (_INT, True),
    "order": (_DICT, True),
    "precision": (_STR, True),
    "tier": (_STR, True),
    "settings": (_DICT, True),
    "recipe": (_STR, True),
    "run_id": (_STR, True),
    "latency_b1_ms_p50": (_NUM, True),
    "latency_b1_ms_p99": (_NUM, True),
    "gpu_util_pct_median": (_NUM, True),
    "gpu_energy_j": (_NUM, True),
    "cpu_energy_j": (_NUM, True),
}
# A speed row (`"kind": "speed"`, RESULTS/speed.jsonl) has these too: its sitting, its anchor and its windows.
SPEED_FIELDS: dict[str, tuple[str, bool]] = {
    "kind": (_STR, False),
    "sitting": (_DICT, False),
    "anchor": (_STR, True),
    "round": (_INT, True),
    "candidate": (_STR, True),
    "window_kind": (_STR, True),
    "window_steps": (_LIST, True),
    "window_s": (_LIST, True),
    "epoch_steps": (_INT, True),
    "pairs": (_INT, True),
    "task_s": (_NUM, True),
}
WINDOW_KINDS = ("epoch", "pairs")
HISTORY_FIELDS = ("epoch_s", "val_s", "train_loss", "train_accuracy", "val_loss", "val_accuracy")
PROVENANCE_DICTS = ("machine", "git", "packages", "data", "lock")  # each a dict (or null) when present


def _is(kind: str, v) -> bool:
    if kind == _NUM:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if kind == _INT:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, {_STR: str, _BOOL: bool, _DICT: dict, _LIST: list}[kind])


def _fields(row: dict, fields: dict[str, tuple[str, bool]]) -> str | None:
    for name, (kind, nullable) in fields.items():
        v = row.get(name)
        if v is None:
            if not nullable:
                return f"no {name}"
        elif not _is(kind, v):
            return f"{name} is not a {kind}: {json.dumps(v)[:40]}"
    return None


def speed_problem(row: dict) -> str | None:
    """Why a speed row is not usable, or None: its sitting has a string id, its windows are as many positive
    step counts as finite non-negative times, its window kind is known, its epoch has a positive step count."""
    why = _fields(row, SPEED_FIELDS)
    if why:
        return why
    sitting = row["sitting"]
    if not isinstance(sitting.get("id"), str) or not sitting["id"]:
        return "sitting.id is not a string"
    bad = [k for k in ("boot_id", "started") if sitting.get(k) is not None and not isinstance(sitting[k], str)]
    if bad:
        return f"sitting.{bad[0]} is not a string"
    if row.get("window_kind") is not None and row["window_kind"] not in WINDOW_KINDS:
        return f"unknown window_kind {str(row['window_kind'])[:40]!r}"
    steps, seconds = row.get("window_steps") or [], row.get("window_s") or []
    if not all(_is(_INT, k) and k > 0 for k in steps):
        return "window_steps are not positive integers"
    if not all(_is(_NUM, t) and t >= 0 for t in seconds):
        return "window_s are not finite non-negative numbers"
    if len(steps) != len(seconds):
        return f"{len(steps)} window_steps for {len(seconds)} window_s"
    if row.get("epoch_steps") is not None and row["epoch_steps"] <= 0:
        return "epoch_steps is not positive"
    return None


def problem(row) -> str | None:
    """Why `row` is not a usable results row (a run's, or a speed row's), or None."""
    if not isinstance(row, dict):
        return f"a JSON {type(row).__name__}, not an object"
    why = _fields(row, FIELDS)
    if why:
        return why
    if row.get("kind") is not None:
        if row["kind"] != "speed":
            return f"unknown kind {str(row['kind'])[:40]!r}"
        why = speed_problem(row)
        if why:
            return why
    if row["status"] not in {s.value for s in Status}:
        return f"unknown status {row['status'][:40]!r}"
    for i, h in enumerate(row.get("history") or []):
        if not isinstance(h, dict) or not _is(_NUM, h.get("epoch_s")):
            return f"history[{i}] has no epoch_s"
        bad = [k for k in HISTORY_FIELDS if h.get(k) is not None and not _is(_NUM, h[k])]
        if bad:
            return f"history[{i}].{bad[0]} is not a number"
    prov = row.get("provenance") or {}
    bad = [k for k in PROVENANCE_DICTS if prov.get(k) is not None and not isinstance(prov[k], dict)]
    if bad:
        return f"provenance.{bad[0]} is not an object"
    if row.get("cpus") is not None and not all(_is(_INT, c) for c in row["cpus"]):
        return "cpus are not integers"
    return None


@dataclass
class Rows:
    """What `read_rows` found: the usable rows, and (line number, reason) for every line skipped."""

    rows: list[dict] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)
    numbers: list[int] = field(default_factory=list)  # each usable row's line number

    def warning(self, path: Path) -> str | None:
        if not self.bad:
            return None
        where = ", ".join(f"{n} ({why})" for n, why in self.bad[:5]) + (" ..." if len(self.bad) > 5 else "")
        return files.one_line(f"warning: skipped {len(self.bad)} malformed line(s) in {path}: line {where}")


def read_rows(path: Path) -> Rows:
    """Every usable row of a results file, read bounded (dlbench/files.py): a line too long, not UTF-8, not
    JSON, nested too deep or not a row is skipped with its number. InputError if `path` is not a regular
    file or too large; OSError only if it cannot be opened at all."""
    out = Rows()
    for n, raw in files.lines(path):
        if raw is None:
            out.bad.append((n, f"longer than {files.LINE_CAP >> 20} MiB"))
            continue
        if not raw.strip():
            continue
        try:
            row = files.loads(raw)
        except ValueError as e:
            out.bad.append((n, str(e)))
            continue
        why = problem(row)
        if why:
            out.bad.append((n, why))
        else:
            out.rows.append(row)
            out.numbers.append(n)
    return out


def check_writable(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written and removed there; OSError if not."""
    if str(folder) == "":
        raise OSError(errno.EINVAL, "an empty path")
    folder.mkdir(parents=True, exist_ok=True)
    if not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder))
    probe = folder / f".dlbench-write-test-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, b"x\n")
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink()
    runs = folder / "runs.jsonl"
    if runs.exists() and not runs.is_file():
        raise IsADirectoryError(errno.EISDIR, "not a regular file", str(runs))
    if runs.exists():
        os.close(os.open(runs, os.O_WRONLY | os.O_APPEND))


def recovery_dir() -> Path:
    return Path(os.environ.get("DLBENCH_CACHE_DIR", Path.home() / ".cache" / "dlbench")) / "recovered"


_write = os.write  # the one write of a row; tests replace it with one that fails as a full disk does


def append_row(path: Path, row: dict) -> Path | None:
    """Append one whole line; None when it is in `path`, else the recovery file that holds it."""
    data = (json.dumps(row, default=str) + "\n").encode()
    try:
        _append(path, data)
        return None
    except OSError as e:
        for folder in (path.parent, recovery_dir()):
            spare = folder / f"runs.recovered-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                _append(spare, data, os.write)  # whole or cut back: no fragment of a row left behind
                return spare
            except OSError:
                continue
        raise OSError(e.errno, f"cannot write the row to {path} ({e.strerror}) nor to a recovery file") from None


def _append(path: Path, data: bytes, write=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a fragment without its newline: the new row starts on its own line
        try:
            done = (write or _write)(fd, data)
            if done != len(data):
                raise OSError(errno.ENOSPC, f"short write ({done} of {len(data)} bytes)")
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)  # no fragment left behind
            raise
    finally:
        os.close(fd)  # closing releases the lock


def recorded_ok(path: Path, same: Callable[[dict], bool]) -> set:
    """(task, framework, seed, tier) of the usable rows recorded ok for which `same(row)` holds."""
    try:
        found = read_rows(path)
    except FileNotFoundError:
        return set()
    if found.bad:
        import sys

        print(found.warning(path), file=sys.stderr)
    rows = found.rows
    return {
        (r["task"], r["framework"], r["seed"], r.get("tier") or "default")
        for r in rows
        if r["status"] == Status.OK and same(r)
    }


def row_id(row: dict) -> str:
    """A row's identity: its run_id, or for rows written before run_id existed a hash of its content."""
    if isinstance(row.get("run_id"), str):
        return row["run_id"]
    return "sha256:" + hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()


def merge(sources: list[Path], out: Path, schema: int) -> tuple[int, int, list[str]]:
    """Append to OUT/runs.jsonl every usable row of `sources` it does not hold yet (by row_id).

    Returns (added, already there, warnings). A row of a schema newer than `schema` is refused: ValueError
    naming the file and line, and nothing is written."""
    target = out / "runs.jsonl"
    have = {row_id(r) for r in read_rows(target).rows} if target.exists() else set()
    new, warnings, dup = [], [], 0
    for src in sources:
        found = read_rows(src)
        if found.bad:
            warnings.append(found.warning(src))
        for r in found.rows:
            if isinstance(r.get("schema"), int) and r["schema"] > schema:
                raise ValueError(
                    f"{src}: a row of schema {r['schema']}, newer than this harness's {schema}: "
                    "merge with the harness that wrote it"
                )
            rid = row_id(r)
            if rid in have:
                dup += 1
                continue
            have.add(rid)
            new.append(r)
    for r in new:
        spare = append_row(target, r)
        if spare:
            warnings.append(f"could not append to {target}: a row is kept in {spare}")
    return len(new), dup, warnings
