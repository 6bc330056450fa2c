"""Where and with what a row was measured: the machine, the commit, and how busy the machine was."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path

from frameworks import ROOT, Environment


def git() -> dict:
    """The repository's commit and whether tracked files differ from it."""

    def run(*args):
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(run("status", "--porcelain", "--untracked-files=no"))}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cpus() -> list[int]:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _read(path: str) -> str | None:
    """A /proc or /sys entry's text, stripped; None where it is missing or unreadable (never an error)."""
    try:
        return Path(path).read_text(errors="replace").strip() or None
    except OSError:
        return None


def _microcode() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("microcode"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def boot_id() -> str | None:
    """This boot of the machine (a new one after every restart; the same CPU model string can hide
    another host: a VM's CPU changes between boots, and speed with it)."""
    return _read("/proc/sys/kernel/random/boot_id")


def sitting() -> dict:
    """One invocation of the harness: an id of its own, the boot it ran on, when it started. Speed is
    compared within a sitting only (dlbench/analysis/speed.py)."""
    import uuid
    from datetime import datetime, timezone

    return {"id": uuid.uuid4().hex[:12], "boot_id": boot_id(),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}  # fmt: skip


@functools.cache  # asked for once per pairing (on a Ray node, per node): the machine does not change
def machine() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "boot_id": boot_id(),
        "microcode": _microcode(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": len(usable_cpus()),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "harness_python": platform.python_version(),
        "gpus": _gpus(),
    }


def _gpus() -> list[dict]:
    """Name, driver and memory of each NVIDIA GPU (nvidia-smi), for the provenance; [] without one."""
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return []
    keys = ("name", "driver", "memory")
    return [dict(zip(keys, (v.strip() for v in line.split(",")), strict=False)) for line in r.stdout.splitlines()]


def cpu_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = f[3] + f[4]  # idle + iowait
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def environment_lock(env: Environment) -> dict | None:
    """The lock file that `make setup` built the environment from, and its SHA-256 (None if built otherwise)."""
    try:
        stamp = json.loads((ROOT / env.venv / ".stamp").read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


_PACKAGES = "import importlib.metadata as m, json; print(json.dumps(sorted({(d.metadata['Name'] or '').lower(): d.version for d in m.distributions()}.items())))"  # noqa: E501


@functools.cache
def environment_sha256(env: Environment) -> str | None:
    """A fingerprint of every package installed in the environment (names and versions): two rows with
    the same fingerprint ran on the same stack, whatever the lock says. None if the environment is missing."""
    if not env.python.exists():
        return None
    r = subprocess.run([str(env.python), "-c", _PACKAGES], capture_output=True, text=True, timeout=120)
    return hashlib.sha256(r.stdout.encode()).hexdigest() if r.returncode == 0 else None
