"""Every process the harness starts dies with it, however the harness ends (Ctrl-C, a timeout's SIGKILL,
a closed terminal): each child asks the kernel, between fork and exec, for SIGKILL when its parent dies
(Linux's PR_SET_PDEATHSIG). Without it a child of a killed harness runs on (a micro-benchmark for half an
hour, a worker training) and spoils every later measurement on the machine.

`run` and `popen` are subprocess's, with that request and stdin closed (a child never waits on a
terminal); `run` must be given its timeout, `popen`'s children are watched by dlbench/driver/supervise.py.
The request is made in the thread that starts the child: the kernel sends the signal when that thread
ends, so children are started from the main thread or one that outlives them.
"""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1
try:  # looked up before any fork: the child only calls it
    _prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def run(argv: list[str], *, timeout: float, **kw) -> subprocess.CompletedProcess:
    """subprocess.run whose child dies with this process, and within `timeout` seconds (subprocess.TimeoutExpired,
    the child killed): no call that leaves the harness waits without end, so each caller states its bound."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(argv, preexec_fn=_die_with_parent, timeout=timeout, **kw)  # noqa: PLW1509 - the point of it


def popen(argv: list[str], **kw) -> subprocess.Popen:
    """subprocess.Popen whose child dies with this process."""
    return subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)  # noqa: PLW1509
