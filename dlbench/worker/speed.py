"""A speed worker, inside the framework's interpreter: it builds a task, warms it up, and times windows of
whole training steps when the driver says so.

A speed run answers "how long does a training step take here", apart from convergence (accuracy, epochs
and time to target stay with the full profile). The driver (dlbench/driver/speed.py) keeps one worker
per framework alive at once, and has them take turns, window by window: this machine's speed drifts by
up to 2x over seconds (other tenants of the host), and windows of different frameworks a moment apart
see the same drift, which a comparison within a cycle of turns then cancels. Only one worker computes
at a time; the others wait on their stdin.

The commands (one JSON object a line on stdin; every answer an event, dlbench/protocol.py):
    {"do": "task", "task": NAME, "npz": PATH}   load the full-size training split, build the model at
        the task's batch and run its first window (compilation, first pass): answer "ready"
    {"do": "warm"}                              windows until two agree (recorded, not timed), then
        answer "ready" with the long and short window lengths
    {"do": "window", "steps": K, "repeat": R}   R windows, each one `train_epoch` call over the first K
        steps of a fresh permutation (whole batches only), synced before and after: answer their seconds
    {"do": "end"}                               answer "result" and exit

A window's time carries a fixed cost as well (Keras's `fit` builds its data adapter and callbacks each
call: about 0.1 s on TensorFlow, next to 30 ms a step on MNIST) which a real epoch pays once per epoch,
not once per K steps. So windows come in pairs, a long (about `window_target_s`) and a short (a quarter
of its steps), and the least-squares line time = call + step x K separates the two; a run's value is

    s_per_step = step + call / epoch_steps,

the time per step of a real epoch (dlbench/analysis/design.py computes it from the recorded windows).
Where an epoch is short (Iris: 7 steps) every window is a whole epoch and the value is their total
time over their total steps. Both are means over whole windows: they do not flip between modes as a
median of two-speed epochs does (TensorFlow's MNIST epochs alternate between two speeds in one run).
"""

from __future__ import annotations

import gc
import importlib
import json
import math
import sys
import time
import traceback

from dlbench.protocol import Event, JobConfig, Status, emit
from dlbench.worker.cpus import pin
from dlbench.worker.loop import epoch_order, manifest, reset_peak_rss, rss_mib, status_mib

# Warm-up ends when two consecutive windows agree within this fraction (compilation, caches, allocator
# pools and autotuning are done by then), or after JobConfig.warmup_max windows; recorded either way.
STEADY_TOLERANCE = 0.10
LONG_STEPS = (2, 64)  # the long window's bounds, in steps (MLX's CPU build: about 0.9 s a step)
WHOLE_EPOCH_STEPS = 32  # an epoch of at most this many steps is itself the window
CALL_SHARE = 4.0  # a long window's steps take at least this many times a call's fixed cost


class Task:
    """One task built and warmed up in this process."""

    def __init__(self, ad, cfg: JobConfig, name: str, npz: str):
        from tasks import TASKS
        from tasks.data import load_splits

        self.ad, self.cfg, self.task = ad, cfg, TASKS[name]
        # Memory: the kernel's peak count restarts here, before the data and the model (the previous task's
        # are collected), and again after warm-up, so the timed windows' peak is theirs alone.
        self.peak_reset = reset_peak_rss()
        self.rss_before_mib = status_mib("VmRSS")
        t = time.perf_counter()
        s = load_splits(self.task, "full", npz)
        self.train, self.n = ad.prepare(s.x_train, s.y_train), len(s.x_train)
        del s
        self.model = ad.build(self.task, cfg.seed)
        ad.sync(self.model)
        self.build_s = time.perf_counter() - t
        self.bs = self.task.recipe.batch_size
        self.epoch_steps = math.ceil(self.n / self.bs)
        self.whole = self.epoch_steps <= WHOLE_EPOCH_STEPS
        self.index = 0

    def window(self, k: int) -> float:
        import numpy as np

        order = epoch_order(self.cfg.seed, self.index, self.n)
        if not self.whole:
            order = order[: k * self.bs]  # whole batches only: no ragged last batch, no retrace for one
        self.index += 1
        self.ad.sync(self.model)
        t = time.perf_counter()
        self.model, loss, _ = self.ad.train_epoch(self.model, self.train, order)
        self.ad.sync(self.model)
        dt = time.perf_counter() - t
        if not np.isfinite(loss):
            raise FloatingPointError(f"loss is not finite in window {self.index}: {loss}")
        return dt

    def compile(self) -> dict:
        """The first window: compilation and the first pass (the driver runs these side by side)."""
        self.probe = [self.epoch_steps if self.whole else 2]
        self.seconds = [self.window(self.probe[0])]
        return dict(task=self.task.name, build_s=self.build_s, compile_s=self.seconds[0])

    def warm_up(self) -> dict:
        """Windows until two agree (one framework at a time); then the long and short window lengths.

        Where an epoch is the window, whole epochs. Otherwise windows of two sizes in turn (2 and 8 steps;
        1 and 2 where a step is longer than a long window, as MLX's 0.9 s), which separate a call's fixed
        cost from a step's: the long window must be long enough that its steps outweigh the call four
        times over (TensorFlow's `fit`: about 0.1 s a call against 25 ms a step), or the line through
        the pairs would rest on noise."""
        probe, seconds = self.probe, self.seconds
        probe.append(probe[0])  # a second first-sized window: the first held compilation, this one does not
        seconds.append(self.window(probe[0]))
        slow = not self.whole and seconds[-1] / probe[-1] > self.cfg.window_target_s
        sizes = (self.epoch_steps,) if self.whole else (LONG_STEPS[0],) if slow else (2, min(8, self.epoch_steps))
        most = 2 if slow else max(1 + 2 * len(sizes), self.cfg.warmup_max)  # slow: nothing to amortise
        while len(seconds) < most:
            k = sizes[len(seconds) % len(sizes)]
            probe.append(k)
            seconds.append(self.window(k))
            if len(seconds) > 2 * len(sizes) and self._agree(k):
                break
        last = {n: t for n, t in zip(probe[1:], seconds[1:], strict=True)}  # each size's latest window
        steady = all(self._agree(n) for n in last)
        if self.whole:
            long = short = self.epoch_steps
        else:
            lo, hi = sizes if len(sizes) == 2 else (0, sizes[0])  # slow: the call's cost is taken as nil
            step = max((last[hi] - last.get(lo, 0.0)) / (hi - lo), 1e-6)
            long = self._long(step, max(last[lo] - lo * step, 0.0) if lo else 0.0)
            short = max(1, long // 4)
            for k in (long, short):  # a length not yet run compiles here, not in a timed window (a scan over
                if k not in probe:  # k steps, Keras's steps_per_execution: one program per length)
                    probe.append(k)
                    seconds.append(self.window(k))
        memory = dict(
            rss_before_build_mib=self.rss_before_mib,  # after the previous task's model and data were collected
            warm_peak_rss_mib=status_mib("VmHWM") if self.peak_reset else None,  # build, compile, warm-up
            peak_reset=self.peak_reset and reset_peak_rss(),  # the timed windows' peak counts from here
        )
        return dict(
            task=self.task.name,
            **memory,
            long=long,
            short=short,
            epoch_steps=self.epoch_steps,
            window_kind="epoch" if self.whole else "pairs",
            warmup_steps=probe,
            warmup_s=seconds,
            warmup_steady=steady,
            build_s=self.build_s,
            n_train=self.n,
            batch_size=self.bs,
        )

    def _agree(self, k: int) -> bool:
        """The last two warm-up windows of k steps agree within STEADY_TOLERANCE."""
        same = [t for t, n in zip(self.seconds[1:], self.probe[1:], strict=True) if n == k]
        return len(same) >= 2 and abs(same[-1] - same[-2]) <= STEADY_TOLERANCE * same[-2]

    def _long(self, step_s: float, call_s: float = 0.0) -> int:
        want = max(self.cfg.window_target_s, CALL_SHARE * call_s) / max(step_s, 1e-9)
        return int(min(max(round(want), LONG_STEPS[0]), LONG_STEPS[1], self.epoch_steps))


def serve(cfg: JobConfig, commands=None) -> dict:
    """Import, configure, answer "started", then serve commands until "end"; the result event's fields."""
    import numpy as np

    cpus = pin(cfg.threads, cfg.cpus)
    t0 = time.perf_counter()
    ad = importlib.import_module(cfg.module)
    device = ad.configure(cfg.threads, str(cfg.device), str(cfg.precision), cfg.deterministic, cfg.configuration)
    started = dict(
        device=device,
        cpus=cpus,
        settings=manifest(cfg, ad),
        versions=ad.versions(),
        numpy_version=np.__version__,
        python=sys.version.split()[0],
        import_s=time.perf_counter() - t0,
    )
    emit(Event.STARTED, **started)
    task = None
    for line in commands or sys.stdin:
        cmd = json.loads(line)
        if cmd["do"] == "end":
            break
        try:
            if cmd["do"] == "task":
                task = None  # the previous task's model and data go before the next is built
                gc.collect()
                task = Task(ad, cfg, cmd["task"], cmd["npz"])
                emit(Event.READY, **task.compile())
            elif cmd["do"] == "warm":
                emit(Event.READY, **task.warm_up())
            elif cmd["do"] == "window":
                s = [task.window(int(cmd["steps"])) for _ in range(int(cmd.get("repeat", 1)))]
                emit(Event.WINDOW, s=s, hwm_mib=status_mib("VmHWM"))  # the peak since warm-up ended
        except Exception as e:  # noqa: BLE001 - a failure is that task's row, with its cause; the worker goes on
            traceback.print_exc()
            status = Status.DIVERGED if isinstance(e, FloatingPointError) else Status.ERROR
            emit(
                Event.ERROR,
                status=status,
                error=f"{type(e).__name__}: {e}".splitlines()[0][:500],
                task=cmd.get("task") or (task.task.name if task else None),
            )
            task = None
    return {**started, "peak_rss_mib": rss_mib()}
