"""CPU pinning, written once for every process that runs a framework (worker, pipelines, micro-benchmarks)."""

from __future__ import annotations

import os


def pin(threads: int, cpus: tuple[int, ...] | list[int] = ()) -> list[int]:
    """Pin this process to `cpus`, or else to the first `threads` CPUs it may use; return the CPU set.

    XLA and some OpenMP runtimes size their thread pools from the CPUs a process may run on, whatever
    their thread settings say: pinning is what makes `--threads` mean the same for every framework."""
    if not hasattr(os, "sched_setaffinity"):  # macOS: no affinity API; thread settings alone apply
        return list(cpus)
    chosen = list(cpus) or sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, chosen)
    return sorted(os.sched_getaffinity(0))
