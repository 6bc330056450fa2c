"""`python -m dlbench.worker CONFIG.json`: one job in this interpreter; events on stdout (dlbench.protocol)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import traceback
from pathlib import Path

from dlbench.protocol import Event, JobConfig, Mode, Status, emit


def die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this worker when the harness that started it dies (it runs in
    its own session, so nothing else would stop it: an orphan would go on using the CPUs)."""
    parent = os.environ.get("DLBENCH_PARENT_PID")
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # the harness died before the request took effect
        os._exit(1)


def main() -> int:
    die_with_parent()
    cfg = JobConfig.from_json(Path(sys.argv[1]).read_text())
    try:
        if cfg.mode == Mode.PARITY:
            from dlbench.worker.parity import run_parity as job
        elif cfg.mode == Mode.SPEED:
            from dlbench.worker.speed import serve as job
        else:
            from dlbench.worker.loop import run as job
        emit(Event.RESULT, **job(cfg))
        return 0
    except Exception as e:  # noqa: BLE001 - every failure becomes a row, with its cause
        traceback.print_exc()
        status = Status.DIVERGED if isinstance(e, FloatingPointError) else Status.ERROR
        emit(Event.ERROR, status=status, error=f"{type(e).__name__}: {e}".splitlines()[0][:500])
        return 1


if __name__ == "__main__":
    sys.exit(main())
