"""The results file, RESULTS/runs.jsonl: one JSON row per job. Written by the driver, read by everyone.

Writing: `append_row` adds one whole line, a single write under an exclusive lock, fsynced. A file
that does not end in a newline (a fragment left by a crash or a full disk) gets one first, so the new
row never glues onto the fragment. A write that fails (ENOSPC, EIO) is undone (the file is cut back
to its size before) and the row is kept in a recovery file instead, whose path is returned.

Reading: `read_rows` is the one reader (report, --resume, compare, merge), bounded (dlbench/files.py:
regular files only, a size, line and depth cap). Each line is decoded and checked field by field against
its kind's schema (dlbench/schemas.py); a line that is too long, not UTF-8, not JSON, too deep, not an
object or has a field of the wrong type is skipped and reported with its line number, never fatal.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlbench import files, schemas
from dlbench.protocol import Status


def problem(row) -> str | None:
    """Why `row` is not a usable results row (a run's, or a speed row's: dlbench/schemas.py), or None."""
    kind = row.get("kind") if isinstance(row, dict) else None
    if kind not in (None, "speed"):
        return f"unknown kind {str(kind)[:40]!r}"
    return schemas.problem(schemas.Speed if kind == "speed" else schemas.Run, row)


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
    for name in WRITTEN:
        if why := files.not_own(folder / name):
            raise OSError(errno.EEXIST, f"{folder / name} is {why}: remove it, or write elsewhere", str(folder / name))
    for name in RECORDS:
        if (folder / name).exists():
            os.close(_open_record(folder / name, os.O_WRONLY | os.O_APPEND))


RECORDS = ("runs.jsonl", "speed.jsonl")  # the files rows are appended to; every other file is written whole
# every file a command writes into a results folder: each must be a file of its own (files.not_own), checked
# before any work; tests/test_row_kinds.py holds this list to the code's writes
WRITTEN = (
    *RECORDS,
    "report.md",
    "report.html",
    "summary.csv",
    "tables.md",
    "speed.md",
    "design.json",
    "tuning.json",
    "tuning.md",
    "assessment.json",
    "overhead.json",
    "microbench.md",
    "parity.md",
    "parity.csv",
)


def _open_record(path: Path, flags: int) -> int:
    """A descriptor of a record file of its own: a regular file, not a symbolic link (O_NOFOLLOW), with no other
    name (a hard link), so that an append never lands in another file; OSError saying which it is."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)  # a FIFO: no hang
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(e.errno, f"{path} is a symbolic link: rows go only to a file of its own", str(path)) from None
        raise
    st = os.fstat(fd)
    why = "not a regular file" if not stat.S_ISREG(st.st_mode) else "a hard link" if st.st_nlink > 1 else None
    if why:
        os.close(fd)
        raise OSError(errno.EEXIST, f"{path} is {why}: rows go only to a file of its own", str(path))
    os.set_blocking(fd, True)
    return fd


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
    fd = _open_record(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
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
    if any(files.same_file(target, src) for src in sources):
        raise ValueError(f"{target} is one of the files to merge: name another -o folder")
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
