"""The Ray executor: each pairing x seed a Ray task reserving its CPUs (and a GPU), rows streamed back.

Every task still runs dlbench.driver.supervise.measure_pairing on its node: a worker process with the framework's own
interpreter, so each node needs this repository and its environments at the same path (a shared
filesystem, or the same `make setup` on every node) and the data cache (`$DLBENCH_CACHE_DIR`).
Results come back to the driver, which appends each row to its results file as soon as its task ends.
A task whose node or Ray worker dies becomes a row with status `lost` and Ray's error as the cause.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dlbench.driver.supervise import measure_pairing
from dlbench.protocol import Status
from frameworks import ROOT


def run_on_ray(todo: list, job: Callable, finish: Callable, address: str | None, threads: int, gpu: bool,
               progress) -> None:  # fmt: skip
    import ray

    # The driver's code travels to the workers by path: the repository is on every node (see above).
    ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}}, log_to_driver=False,
             include_dashboard=False)  # fmt: skip
    task = ray.remote(num_cpus=threads, num_gpus=1 if gpu else 0, max_retries=0)(measure_pairing)
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
        ray.shutdown()
