"""Running the harness as a user does: `python harness.py ...` in a subprocess, or launched in the background."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

# The harness in its own process with fake frameworks registered (they exist only in that process).
LAUNCH = """
import _signal  # the C module, at once: a signal during signal.py's own import would be this launcher's traceback
_signal.signal(_signal.SIGINT, _signal.default_int_handler)
import signal
import sys
# As at a terminal: a shell starts background jobs with SIGINT ignored (and nohup, SIGHUP), and Python
# keeps that; the harness rightly respects an ignored signal, so the tests start from a terminal's state.
signal.signal(signal.SIGHUP, signal.SIG_DFL)
import harness
from frameworks import FRAMEWORKS, Candidate, Framework
fakes = tuple(Candidate(name=n, changes=("execution",), source="a fake flag") for n in ("half", "same", "double"))
for mode in ("ok", "slow", "hang", "alloc"):
    FRAMEWORKS["fake-" + mode] = Framework(name="fake-" + mode, module="tests.support.fake_adapter", env="main",
                                           env_vars={"FAKE_MODE": mode}, candidates=fakes)
sys.exit(harness.main(sys.argv[1:]))
"""


def cli(*args, **kw) -> subprocess.CompletedProcess:
    """`python harness.py ARGS` from the repository root, output captured."""
    return subprocess.run([sys.executable, "harness.py", *args], cwd=ROOT, capture_output=True, text=True, **kw)


def launch(*args) -> subprocess.Popen:
    """The harness in its own process, with the fake frameworks fake-ok, fake-slow, fake-hang and fake-alloc."""
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def rows(results: Path) -> list[dict]:
    """Every line of RESULTS/runs.jsonl, each of which must parse."""
    return [json.loads(line) for line in (results / "runs.jsonl").read_text().splitlines()]


def wait_for_rows(results: Path, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = results / "runs.jsonl"
        if path.is_file() and len(path.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} rows after {timeout} s")
