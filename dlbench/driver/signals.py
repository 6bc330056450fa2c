"""Stop signals: Ctrl-C (SIGINT), SIGTERM (timeout, SLURM, systemd) and SIGHUP all stop a run the same way.

The first one raises KeyboardInterrupt in the main thread: the running worker's process group is
killed, its row recorded as `interrupted`, the resume command printed, and the harness exits with
128 + the signal's number. Further signals while that happens are noted and ignored, so a second
Ctrl-C cannot cut the row short. A signal that was ignored when the harness started (nohup, a
background job) stays ignored.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
received: list[int] = []


def _handler(signum, frame) -> None:
    received.append(signum)
    if len(received) == 1:
        raise KeyboardInterrupt


@contextmanager
def stop_signals():
    """Handle the stop signals as above while the block runs; restore the previous handlers after."""
    received.clear()
    previous = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    for s, h in previous.items():
        if h is not signal.SIG_IGN:
            signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def name() -> str:
    """The signal that stopped the run ("SIGINT" when stopped otherwise, e.g. KeyboardInterrupt in a test)."""
    return signal.Signals(received[0]).name if received else "SIGINT"


def exit_status() -> int:
    return 128 + (received[0] if received else signal.SIGINT)
