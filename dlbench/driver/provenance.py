"""Where and with what a row was measured: the machine, the commit, and how busy the machine was."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from datetime import UTC
from pathlib import Path

from dlbench import files
from dlbench.driver import children
from dlbench.results import append_row
from frameworks import ROOT, Environment


def tool(*argv: str, timeout: float = 30, cwd: Path = ROOT) -> tuple[str | None, str | None]:
    """(stdout, None) of an external tool that succeeded, else (None, why): missing from the PATH, failed,
    timed out. Provenance degrades to null with the reason; it never stops a row from being written."""
    try:
        r = children.run(
            list(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        return None, f"{argv[0]} not found on the PATH"
    except subprocess.TimeoutExpired:
        return None, f"{argv[0]} did not answer within {timeout:g} s"
    except OSError as e:
        return None, f"{argv[0]} could not run ({e.strerror or e})"
    if r.returncode != 0:
        tail = (r.stderr.strip().splitlines() or [f"exit status {r.returncode}"])[-1]
        return None, f"{argv[0]} failed: {tail[:120]}"
    return r.stdout, None


def git() -> dict:
    """The repository's commit and whether tracked files differ from it; nulls and the reason without git."""
    commit, why = tool("git", "rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "unavailable": why}
    # --no-optional-locks: status would otherwise refresh the index under .git/index.lock, and a harness
    # killed meanwhile (its children die with it) would leave that lock behind for the user's next commit
    status, why = tool("git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit.strip(),
        "dirty": None if status is None else bool(status.strip()),
        **({"unavailable": why} if why else {}),
    }


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
    from datetime import datetime

    return {
        "id": uuid.uuid4().hex[:12],
        "boot_id": boot_id(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


@functools.cache  # asked for once per pairing (on a Ray node, per node): the machine does not change
def machine() -> dict:
    """The machine's identity; an entry that cannot be read is null (the boot id, the microcode) or, for
    the GPUs, null with the reason in `unavailable`."""
    gpus, why = _gpus()
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
        "gpus": gpus,
        **({"unavailable": {"gpus": why}} if why else {}),
    }


def _gpus() -> tuple[list[dict] | None, str | None]:
    """(name, driver and memory of each NVIDIA GPU, None); ([], None) where no NVIDIA driver is installed
    (no /proc/driver/nvidia: a machine without one); (None, why) where nvidia-smi should answer and does not."""
    out, why = tool("nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader")
    if out is None:
        return ([], None) if not Path("/proc/driver/nvidia").exists() else (None, why)
    keys = ("name", "driver", "memory")
    return [
        dict(zip(keys, (v.strip() for v in line.split(",")), strict=False)) for line in out.splitlines() if line.strip()
    ], None


def cpu_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = f[3] + f[4]  # idle + iowait
    except (OSError, ValueError, IndexError):
        return None
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def environment_lock(env: Environment) -> dict | None:
    """The lock file that `make setup` built the environment from, and its SHA-256 (None if built otherwise)."""
    try:
        stamp = files.read_json(ROOT / env.venv / ".stamp")
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
    out, _ = tool(str(env.python), "-c", _PACKAGES, timeout=120)
    return hashlib.sha256(out.encode()).hexdigest() if out is not None else None


def of_worker(fw_env: str, env: Environment, started: dict, data: dict, **extra) -> dict:
    """A row's provenance from its worker: the environment (name, lock, fingerprint), the Python and packages
    the worker reported (`started`: its versions, python, numpy_version), the data files, and `extra` (the
    invocation's machine, git commit and argv)."""
    versions = started.get("versions") or {}
    return {
        **extra,
        "environment": fw_env,
        "lock": environment_lock(env),
        "environment_sha256": environment_sha256(env),
        "python": started.get("python"),
        "packages": {**versions, "numpy": started.get("numpy_version")},
        "data": data,
    }


def record(path: Path, row: dict) -> None:
    """Append the row whole to `path`; where that fails, say which recovery file holds it (nothing is lost)."""
    spare = append_row(path, row)
    if spare:
        print(f"warning: could not append to {path}: this row is kept in {spare}", file=sys.stderr)
