"""The Ray executor: each pairing x seed a Ray task reserving its CPUs (and a GPU), rows streamed back.

Every task still runs dlbench.driver.supervise.measure_pairing on its node: a worker process with the
framework's own interpreter, so each node needs this repository and its environments at the same path
(a shared filesystem, or the same `make setup` on every node) and the data cache (`$DLBENCH_CACHE_DIR`).
Results come back to the driver, which appends each row to its results file as soon as its task ends.
A task whose node or Ray worker dies becomes a row with status `lost` and Ray's error as the cause.

CPU sets: Ray reserves a number of CPUs per task but pins nothing, so two 2-thread tasks on one node
would both pin themselves to the node's first two cores and slow each other down. Each node gets a
`CpuPool` actor (created by the driver, pinned to the node) that hands every task there a disjoint set
of cores, which the worker pins to and the row records (`cpus`).
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from dlbench.driver.config import UsageError
from dlbench.driver.provenance import usable_cpus
from dlbench.driver.supervise import measure_pairing
from dlbench.protocol import JobConfig, Status
from frameworks import ROOT

NAMESPACE = "dlbench"


class CpuPool:
    """The usable CPUs of one node, lent out in disjoint sets (a Ray actor on that node)."""

    def __init__(self):
        self.free = usable_cpus()

    def acquire(self, n: int) -> list[int]:
        """n free CPUs, or [] if fewer are free (a task killed before releasing leaks its set)."""
        if len(self.free) < n:
            return []
        taken, self.free = self.free[:n], self.free[n:]
        return taken

    def release(self, cpus: list[int]) -> None:
        self.free = sorted(set(self.free) | set(cpus))


def _pool_name(node_id: str) -> str:
    return f"dlbench-cpus-{node_id}"


def measure_on_node(cfg: JobConfig, *args, **kwargs) -> dict:
    """measure_pairing with a CPU set lent by this node's pool (none if the node has no pool)."""
    import ray

    try:
        pool = ray.get_actor(_pool_name(ray.get_runtime_context().get_node_id()), namespace=NAMESPACE)
    except ValueError:  # a node that joined after the run started
        pool = None
    cpus = ray.get(pool.acquire.remote(cfg.threads)) if pool else []
    try:
        return measure_pairing(replace(cfg, cpus=tuple(cpus)), *args, **kwargs)
    finally:
        if cpus:
            pool.release.remote(cpus)


def check_address(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail fast, in one line, when a given Ray address does not answer (Ray itself retries for minutes)."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise UsageError(f"--ray-address must be HOST:PORT (e.g. 127.0.0.1:6379), got {address[:200]!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except (OSError, UnicodeError) as e:  # UnicodeError: a host name IDNA cannot encode (too long, odd)
        why = getattr(e, "strerror", None) or e
        raise UsageError(
            f"no Ray cluster answers at {address[:200]} within {timeout_s:g} s ({why}): "
            "start one with `ray start --head`, or check the address"
        ) from None


def authenticate_like_ray_start() -> None:
    """Token authentication on when a token exists and RAY_AUTH_MODE is unset, as `ray start` decides.

    Since Ray 2.59 `ray start --head` turns token authentication on whenever a token is found
    (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token: written by any earlier local `ray.init()`),
    but `ray.init(address=...)` never does, so the driver was refused by the very cluster started beside it
    with the same token ("InvalidAuthToken", then "Failed to connect"). An explicit RAY_AUTH_MODE wins.
    """
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or os.path.isfile(token_file):
        os.environ["RAY_AUTH_MODE"] = "token"


def run_on_ray(
    todo: list, job: Callable, finish: Callable, address: str | None, threads: int, gpu: bool, progress
) -> None:
    authenticate_like_ray_start()  # before the import: Ray reads RAY_AUTH_MODE once, as it loads
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # The driver's code travels to the workers by path: the repository is on every node (see above).
    try:
        ray.init(
            address=address,
            namespace=NAMESPACE,
            runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},
            log_to_driver=False,
            include_dashboard=False,
        )
    except ConnectionError as e:  # it answered check_address, then refused: most often the token
        mode = os.environ.get("RAY_AUTH_MODE", "disabled")
        raise UsageError(
            f"{e} (RAY_AUTH_MODE={mode} here): give this shell the cluster's RAY_AUTH_MODE and "
            "its token (RAY_AUTH_TOKEN or ~/.ray/auth_token), see docs.ray.io ray-security/token-auth"
        ) from None
    pools = [
        ray.remote(num_cpus=0)(CpuPool)
        .options(name=_pool_name(n["NodeID"]), scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], False))
        .remote()
        for n in ray.nodes()
        if n["Alive"]
    ]
    task = ray.remote(num_cpus=threads, num_gpus=1 if gpu else 0, max_retries=0)(measure_on_node)
    pending, submitted = {}, time.monotonic()
    for key in todo:
        pending[task.remote(*job(key))] = key
        progress.start(*key)
    try:
        while pending:
            (ref,), _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ref)
            try:
                out = ray.get(ref)
            except ray.exceptions.RayError as e:  # node died, worker killed, task cancelled
                cause = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
                out = {
                    "status": Status.LOST,
                    "error": f"Ray task lost ({type(e).__name__}): {cause}",
                    "wall_s": round(time.monotonic() - submitted, 3),
                }  # since submission: queueing included
            finish(key, out)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        for pool in pools:
            ray.kill(pool)
        ray.shutdown()
