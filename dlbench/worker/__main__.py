"""`python -m dlbench.worker CONFIG.json`: one job in this interpreter; events on stdout (dlbench.protocol)."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from dlbench.protocol import Event, JobConfig, Mode, Status, emit


def main() -> int:
    cfg = JobConfig.from_json(Path(sys.argv[1]).read_text())
    try:
        if cfg.mode == Mode.PARITY:
            from dlbench.worker.parity import run_parity as job
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
