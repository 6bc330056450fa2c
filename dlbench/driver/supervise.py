"""One worker process, supervised: started with its framework's interpreter, watched, classified.

`Worker` is the one way the harness starts `python -m dlbench.worker CONFIG.json` (run, speed, parity and
tune all go through it): its own session, the parent-death link, its events read on a thread
(dlbench.protocol), its stderr kept, and however it ended turned into a `Status` with a cause (`ended`).
`run_worker` drives a one-shot worker to its result under a deadline and a memory cap; dlbench/driver/speed.py
drives long-lived ones by command. `measure_pairing` wraps `run_worker` with the machine's load around the
run; it is what an executor (local or Ray) runs for each job.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dlbench import files
from dlbench.driver import children, signals
from dlbench.driver.monitor import Monitor
from dlbench.driver.provenance import cpu_busy_s, machine
from dlbench.protocol import Event, JobConfig, Status, parse
from frameworks import ROOT

BUSY_CPU_PCT = 10.0  # other processes' CPU share above which a timing is flagged as disturbed
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)


class Interrupted(Exception):
    """Ctrl-C: the current worker was stopped and recorded; the matrix stops."""


def worker_env(threads: int, fw_vars: dict, device: str = "cpu") -> dict:
    """The worker's environment: ours without PYTHONPATH, every thread pool sized, the framework's variables;
    for --device cpu no GPU is visible at all (Keras on torch picks CUDA by itself, TensorFlow sees every
    GPU: hiding them is the one guarantee that a "cpu" row ran on the CPU)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({k: str(threads) for k in THREAD_VARS})
    env.update(fw_vars)
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    return env


def group_rss_mib(pgid: int) -> float:
    """Resident memory of every process in a process group (the worker and any children), in MiB."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of /proc/PID/stat: the process group
                total += int((stat.parent / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it ended on its own meanwhile


class Worker:
    """One `python -m dlbench.worker` process in its own session: its events on a queue (None: it ended)."""

    def __init__(self, cfg: JobConfig, python: Path, env: dict, tmp: Path, commands: bool = False):
        self.id = uuid.uuid4().hex
        path = tmp / f"{self.id}.json"
        files.write_whole(path, cfg.to_json())
        self.err = open(tmp / f"{self.id}.err", "w+")  # noqa: SIM115 - closed in close()
        # The worker asks the kernel to kill it if this process dies (dlbench/worker/__main__.py).
        env = {**env, "DLBENCH_PARENT_PID": str(os.getpid())}
        try:
            self.proc = children.popen(
                [str(python), "-m", "dlbench.worker", str(path)],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE if commands else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self.err,
                text=True,
                start_new_session=True,  # its own process group: a kill reaches its children too
            )
        except BaseException:
            self.err.close()
            raise
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            ev = parse(line)
            if ev is not None:
                self.events.put(ev)
        self.events.put(None)

    def send(self, cmd: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: the next event (None) says so

    def kill(self) -> None:
        _kill_group(self.proc.pid)

    def ended(self, with_hint: bool = True) -> tuple[Status, str]:
        """After its last event: how it ended, from its exit status and the last line of its stderr."""
        rc = self.proc.wait()
        self.err.seek(0)
        tail = [ln for ln in self.err.read().splitlines() if ln.strip()]
        if rc < 0:
            name = signal.Signals(-rc).name
            hint = " (from outside: perhaps the kernel's OOM killer)" if name == "SIGKILL" and with_hint else ""
            return Status.CRASHED, f"worker killed by {name}{hint}"
        return Status.ERROR, (tail[-1] if tail else f"worker exited with status {rc}")[:500]

    def close(self) -> None:
        """Kill it if it still runs, reap it, close its stderr."""
        if self.proc.poll() is None:
            self.kill()
        self.proc.wait()
        self.err.close()


def run_worker(
    cfg: JobConfig,
    python: Path,
    env: dict,
    timeout_s: float,
    on_event: Callable,
    max_rss_mib: float | None = None,
    monitor: Monitor | None = None,
) -> dict:
    """Run one job with `python`; return its result fields, or a failure's status and cause.

    The worker runs in its own session, so Ctrl-C reaches only the harness, which then kills it (and
    the kernel kills it if the harness dies: DLBENCH_PARENT_PID, a parent-death signal).
    With `max_rss_mib`, its process group's resident memory is polled twice a second and the group is
    killed past the cap (status oom): RLIMIT_AS cannot do this, JAX and TensorFlow reserve far more
    address space than they use."""
    interrupted, timed_out, over_cap, peak_mib, finished = False, False, False, 0.0, False
    result = error = None
    with tempfile.TemporaryDirectory() as tmp:
        before = os.times()
        w = None
        try:
            w = Worker(cfg, python, env, Path(tmp))
            deadline, next_poll = time.monotonic() + timeout_s, 0.0
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                try:
                    ev = w.events.get(timeout=min(remaining, 0.5))
                except queue.Empty:
                    ev = {}
                if max_rss_mib and time.monotonic() >= next_poll:  # twice a second, however chatty the worker
                    next_poll = time.monotonic() + 0.5
                    peak_mib = max(peak_mib, group_rss_mib(w.proc.pid))
                    if peak_mib > max_rss_mib:
                        over_cap = True
                        break
                if ev is None:
                    finished = True
                    break
                if not ev:
                    continue
                if ev["event"] == Event.RESULT:
                    result = ev
                elif ev["event"] == Event.ERROR:
                    error = ev
                elif ev["event"] == Event.TRAINING:
                    if monitor:
                        monitor.training_started()
                else:
                    if monitor:
                        monitor.epoch_ended()
                    on_event(ev)
        except KeyboardInterrupt:  # a stop signal (dlbench/driver/signals.py), wherever it landed
            interrupted = True
        if w is not None and (interrupted or timed_out or over_cap):
            w.kill()
        exit_ = w.ended() if w is not None and finished else None
        if w is not None:
            w.close()
        after = os.times()
    worker_cpu_s = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    usage = {"worker_cpu_s": round(worker_cpu_s, 2)}
    if interrupted:
        return {"status": Status.INTERRUPTED, "error": f"stopped by {signals.name()}", **usage}
    if over_cap:
        return {
            "status": Status.OOM,
            "error": f"worker used {peak_mib:,.0f} MiB, over --max-rss-mib {max_rss_mib:g}",
            **usage,
        }
    if timed_out:
        return {"status": Status.TIMEOUT, "error": f"no result within {timeout_s:g} s (--timeout)", **usage}
    if result is not None:
        result.pop("event")
        return {"status": Status.OK, "error": None, **result, **(monitor.summary() if monitor else {}), **usage}
    if error is not None:
        return {"status": Status(error["status"]), "error": error["error"], **usage}
    status, cause = exit_ or (Status.ERROR, "worker ended without a result")
    return {"status": status, "error": cause, **usage}


def measure_pairing(
    cfg: JobConfig,
    python: str,
    env_vars: dict,
    timeout_s: float,
    max_rss_mib: float | None,
    missing: str | None = None,
    on_event: Callable | None = None,
) -> dict:
    """One worker, run where this function runs (here, or on a Ray node), with the machine's load around it."""
    load_before, busy_before, t0 = os.getloadavg()[0], cpu_busy_s(), time.monotonic()
    if not Path(python).exists():
        out = {"status": Status.UNAVAILABLE, "error": missing or f"{python} does not exist"}
    else:
        monitor = Monitor(str(cfg.device))
        out = run_worker(cfg, Path(python), env_vars, timeout_s, on_event or (lambda ev: None), max_rss_mib, monitor)
    wall_s, busy_after = time.monotonic() - t0, cpu_busy_s()
    others_pct = None
    if busy_before is not None and busy_after is not None and wall_s > 0:
        # CPU used by everything but our worker, as a share of all the machine's cores.
        others = max(0.0, busy_after - busy_before - out.get("worker_cpu_s", 0.0))
        others_pct = round(100 * others / (wall_s * (os.cpu_count() or 1)), 1)
    out.update(
        wall_s=round(wall_s, 3),
        load_avg_1m_before=round(load_before, 2),
        others_cpu_pct=others_pct,
        machine_busy=others_pct is not None and others_pct > BUSY_CPU_PCT,
        machine=machine(),
    )
    return out
