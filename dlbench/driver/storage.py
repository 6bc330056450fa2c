"""The results file: one JSON line per job, appended whole; read back for --resume."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path

from dlbench.protocol import Status


def append_row(path: Path, row: dict) -> None:
    """Append one whole line: a single write, flushed and fsynced, under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(row, default=str) + "\n").encode()
    with open(path, "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        fcntl.flock(f, fcntl.LOCK_UN)


def recorded_ok(results: Path, same: Callable[[dict], bool]) -> set:
    """(task, framework, seed) of the rows recorded ok for which `same(row)` holds; unreadable lines are ignored."""
    done = set()
    try:
        lines = results.read_text().splitlines()
    except OSError:
        return done
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if isinstance(r, dict) and r.get("status") == Status.OK and same(r):
            done.add((r.get("task"), r.get("framework"), r.get("seed")))
    return done
