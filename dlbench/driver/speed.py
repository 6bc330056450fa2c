"""The speed protocol: a pilot, a plan from its variances, the planned groups, then the verdicts.

A group is one fresh worker process per framework, all alive at once (they import side by side), which
then take turns: for each task (rotated from group to group) they build and compile side by side
(nothing is timed), warm up one at a time, then in every cycle each framework times one window pair, in
the order of a row of a Williams design (a Latin square balanced for first-order carry-over; for an odd
count each row is followed by its mirror, so the direction alternates), the row changing from cycle to
cycle; the anchor takes about sqrt(k) turns a cycle. Only one worker computes at a time: after each
window the driver waits until that worker's CPU time stops growing (OpenMP threads spin a while after
a parallel region), and it records what every other process used during each window.

Why turns: this machine's speed drifts (measured: one torch process's IMDB step went 28 -> 51 ms within
15 s; ten processes one after another varied by 11-20 %). Frameworks measured in the same minutes see
the same drift, and the comparison within a group (dlbench/analysis/speed.py pairs each framework with
the anchor of its group) cancels what the group shares.

1. Pilot: `pilot` groups, `pilot_pairs` window pairs per framework and task.
2. Plan (dlbench/analysis/design.py): from the pilot's variance components and costs, window pairs per
   framework x task (Kalibera & Jones) and the number of groups, within what is left of --budget.
3. The planned groups.
4. Verdicts (dlbench/analysis/speed.py): every framework against the anchor, per task, within this
   sitting; printed, and written to RESULTS/speed.md.

Every process appends one row per task to RESULTS/speed.jsonl, whatever happens, with the sitting (an id
for this invocation, the boot id) and the machine's provenance; the plan goes to RESULTS/design.json.
"""

from __future__ import annotations

import json
import math
import os
import queue
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from dlbench import files
from dlbench.driver import signals
from dlbench.driver.config import SpeedConfig, Variant, check_output
from dlbench.driver.provenance import cpu_busy_s, git, machine, of_worker, record, sitting
from dlbench.driver.supervise import BUSY_CPU_PCT, Interrupted, Worker, worker_env
from dlbench.protocol import SCHEMA, Event, JobConfig, Mode, Status
from frameworks import ENVIRONMENTS, FRAMEWORKS
from tasks import TASKS
from tasks.data import prepare

SPEED_FILE = "speed.jsonl"
REPORT_RESERVE_S = 15.0  # kept back from the budget for the verdicts and their files
QUIET_S, QUIET_MAX_S = 0.015, 0.5  # after a window: wait until the worker's CPU time is still this long


def williams(n: int) -> list[list[int]]:
    """The rows of a Williams design for n treatments: each a permutation, every treatment once in every
    position, and (for even n; for odd n over the doubled rows) every ordered pair adjacent equally often."""
    first, lo, hi = [0], 1, n - 1
    while len(first) < n:
        first.append(lo)
        lo += 1
        if len(first) < n:
            first.append(hi)
            hi -= 1
    rows = [[(x + r) % n for x in first] for r in range(n)]
    return rows if n % 2 == 0 else [row for r in rows for row in (r, r[::-1])]


def round_order(frameworks: list, r: int, order_seed: int = 0) -> list:
    """The frameworks' order in round r (0-based): row r of the Williams design, the rows' sequence
    shifted by the recorded order seed so that repeated sittings do not all start alike."""
    rows = williams(len(frameworks))
    return [frameworks[i] for i in rows[(r + order_seed) % len(rows)]]


def anchor_slots(k: int) -> set[int]:
    """Where the anchor's turns go among k others' (before position i, 0..k): round(sqrt(k)) of them, spread."""
    n = max(1, round(math.sqrt(k)))
    return {round(j * k / n) for j in range(n)}


def task_order(tasks: list, r: int) -> list:
    return [tasks[(i + r) % len(tasks)] for i in range(len(tasks))]


class WorkerGone(Exception):
    """A speed worker ended or stopped answering: its status and cause."""

    def __init__(self, status: Status, error: str):
        super().__init__(error)
        self.status, self.error = status, error


def _cpu_s(pid: int) -> float:
    """CPU seconds of a process (all its threads) so far; 0 if it is gone."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Live:
    """One speed worker (supervise.Worker), alive for a group: commands in, events out, a deadline on every
    answer."""

    def __init__(self, v: Variant, cfg: SpeedConfig, r: int, tmp: Path):
        fw = FRAMEWORKS[v.framework]
        self.v, self.env, self.cfg = v, ENVIRONMENTS[fw.env], cfg
        self.worker, self.started = None, {}
        jc = JobConfig(
            Mode.SPEED,
            fw.module,
            cfg.threads,
            cfg.device,
            seed=r,
            precision=cfg.precision,
            tier=v.tier,
            candidate=v.candidate,
            window_target_s=cfg.window_target_s,
        )
        if not self.env.python.exists():
            raise WorkerGone(Status.UNAVAILABLE, f"{self.env.venv} does not exist: {self.env.missing_hint}")
        env = worker_env(cfg.threads, fw.env_vars, cfg.device)
        self.worker = Worker(jc, self.env.python, env, tmp, commands=True)
        self.id, self.proc = self.worker.id, self.worker.proc

    def ask(self, cmd: dict | None, timeout: float) -> dict:
        """Send `cmd` (None: just wait) and return the answer; WorkerGone if the worker ended or timed out."""
        if cmd is not None:
            self.worker.send(cmd)
        try:
            ev = self.worker.events.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise WorkerGone(Status.TIMEOUT, f"no answer within {timeout:g} s") from None
        if ev is None:
            gone = WorkerGone(*self.worker.ended(with_hint=False))
            self.stop()
            raise gone
        if ev["event"] == Event.ERROR and not ev.get("task"):
            raise WorkerGone(Status(ev["status"]), ev["error"])
        return ev

    def send(self, cmd: dict) -> None:
        self.worker.send(cmd)

    def cpu_s(self) -> float:
        return _cpu_s(self.proc.pid) if self.proc else 0.0

    def quiet(self) -> None:
        """Wait until this worker's CPU time stops growing (its threads may spin after the window)."""
        deadline, last = time.monotonic() + QUIET_MAX_S, self.cpu_s()
        while time.monotonic() < deadline:
            time.sleep(QUIET_S)
            now = self.cpu_s()
            if now == last:
                return
            last = now

    def stop(self) -> None:
        if self.worker is not None and not self.worker.err.closed:
            self.worker.close()


class Sitting:
    """One invocation's state: its data, its rows, its clock."""

    def __init__(self, cfg: SpeedConfig):
        self.cfg, self.t0 = cfg, time.monotonic()
        self.path = cfg.results / SPEED_FILE
        self.data = {}
        for t in cfg.tasks:
            ds = TASKS[t].dataset
            if ds not in self.data:
                self.data[ds] = prepare(ds, cfg.data_dir)
        self.common = {"machine": machine(), "git": git(), "argv": list(cfg.argv)}
        self.sitting = sitting()
        self.rows: list[dict] = []
        self.group_s: list[float] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def group(self, r: int, pairs: dict[str, dict[str, int]], phase: str) -> None:
        """Group r: a process per framework, alive together, taking turns; a row per framework and task."""
        cfg = self.cfg
        live: dict[str, Live] = {}
        gone: dict[str, WorkerGone] = {}
        t0 = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            try:
                for v in cfg.frameworks:
                    try:
                        live[str(v)] = Live(v, cfg, r, Path(tmp))
                    except WorkerGone as e:
                        gone[str(v)] = e
                for name, w in list(live.items()):
                    try:
                        w.started = w.ask(None, cfg.timeout_s)
                    except WorkerGone as e:
                        gone[name] = e
                        del live[name]
                start_s = time.monotonic() - t0
                for task in task_order(list(cfg.tasks), r):
                    self._task(r, task, live, gone, pairs, phase, start_s)
                for w in live.values():
                    try:
                        w.ask({"do": "end"}, cfg.timeout_s)
                    except WorkerGone:
                        pass
            finally:
                for w in live.values():
                    w.stop()
        self.group_s.append(time.monotonic() - t0)
        print(f"speed: group {r + 1} ({phase}) {self.group_s[-1]:.0f} s", file=sys.stderr)

    def _task(self, r, task, live, gone, pairs, phase, start_s) -> None:
        cfg = self.cfg
        npz = str(self.data[TASKS[task].dataset][0])
        ready, windows, failed = {}, {}, {}
        names = [n for n in round_order(sorted(live), r, cfg.order_seed) if n not in gone and _runs(cfg, n, task)]
        t = time.monotonic()
        for name in names:  # build and compile side by side: nothing is timed yet, and compiling is slow
            live[name].send({"do": "task", "task": task, "npz": npz})
        built = {}
        for name in names:
            try:
                built[name] = live[name].ask(None, cfg.timeout_s)
            except WorkerGone as e:
                gone[name] = e
        prepare_s = time.monotonic() - t
        for w in live.values():
            w.quiet()
        for name, ev in built.items():  # then warm up one at a time: the steadiness check needs a quiet machine
            if ev["event"] == Event.ERROR:
                failed[name] = (Status(ev["status"]), ev["error"])
                continue
            w0 = time.monotonic()
            try:
                ev = {**live[name].ask({"do": "warm"}, cfg.timeout_s), "compile_s": ev.get("compile_s")}
            except WorkerGone as e:
                gone[name] = e
                continue
            live[name].quiet()
            if ev["event"] == Event.ERROR:
                failed[name] = (Status(ev["status"]), ev["error"])
                continue
            ready[name] = {**ev, "task_s": time.monotonic() - w0, "prepare_all_s": prepare_s}
            windows[name] = {
                "window_steps": [],
                "window_s": [],
                "window_turn": [],
                "others_cpu_s": 0.0,
                "measured_wall_s": 0.0,
                "pairs": 0,
                "timed_peak_rss_mib": None,  # the process's peak resident memory over its timed windows
            }
        cycles = max((pairs[n][task] for n in ready), default=0)
        cores, anchor, turns = os.cpu_count() or 1, str(cfg.anchor), [0]

        def turn(name: str, c: int) -> None:
            """One window pair of `name` (a run of whole epochs each, where an epoch is the window)."""
            if name in gone or name in failed:
                return
            rd, w, mine = ready[name], live[name], windows[name]
            lengths = (rd["long"], rd["short"]) if c % 2 == 0 else (rd["short"], rd["long"])
            repeat = (
                1
                if rd["window_kind"] == "pairs"
                else max(1, math.ceil(cfg.window_target_s / max(rd["warmup_s"][-1], 1e-6)))
            )
            for k in lengths:
                busy0, cpu0, t = cpu_busy_s(), w.cpu_s(), time.monotonic()
                try:
                    ev = w.ask({"do": "window", "steps": k, "repeat": repeat}, cfg.timeout_s)
                except WorkerGone as e:
                    gone[name] = e
                    return
                wall, busy1, cpu1 = time.monotonic() - t, cpu_busy_s(), w.cpu_s()
                w.quiet()
                if ev["event"] == Event.ERROR:
                    failed[name] = (Status(ev["status"]), ev["error"])
                    return
                if rd.get("peak_reset") and isinstance(ev.get("hwm_mib"), (int, float)):
                    mine["timed_peak_rss_mib"] = max(mine["timed_peak_rss_mib"] or 0.0, ev["hwm_mib"])
                mine["window_steps"] += [k] * len(ev["s"])
                mine["window_s"] += ev["s"]
                mine["window_turn"] += [turns[0]] * len(ev["s"])
                if busy0 is not None and busy1 is not None:  # what every other process used meanwhile
                    mine["others_cpu_s"] += max(0.0, busy1 - busy0 - (cpu1 - cpu0))
                    mine["measured_wall_s"] += wall * cores
            mine["pairs"] += 1
            turns[0] += 1

        # A cycle: every framework's turn in a Williams row that changes from cycle to cycle, and the
        # anchor's turns spread among them: it is in every comparison, so it gets about sqrt(k) turns for
        # the others' one (Dunnett 1955's allocation for k comparisons with one control).
        for c in range(cycles):
            order = [n for n in round_order(sorted(ready), r + c, cfg.order_seed) if n != anchor and pairs[n][task] > c]
            slots = anchor_slots(len(order)) if anchor in ready else set()
            for i, name in enumerate([*order, None]):
                if i in slots:
                    turn(anchor, c)
                if name is not None:
                    turn(name, c)
        for v in cfg.frameworks:
            name = str(v)
            if not _runs(cfg, name, task):
                continue
            if name in ready and name not in gone and name not in failed:
                self._row(
                    v,
                    r,
                    task,
                    phase,
                    live[name],
                    {"status": Status.OK, "error": None, **ready[name], **windows[name]},
                    start_s,
                )
            else:
                status, error = failed.get(name) or (gone[name].status, gone[name].error)
                self._row(v, r, task, phase, live.get(name), {"status": status, "error": error}, start_s)

    def _row(self, v: Variant, r: int, task: str, phase: str, w: Live | None, own: dict, start_s: float) -> None:
        cfg, fw = self.cfg, FRAMEWORKS[v.framework]
        env = ENVIRONMENTS[fw.env]
        st = (w.started if w else {}) or {}
        own.pop("event", None)
        cpu_wall = own.pop("measured_wall_s", 0.0)
        others_pct = round(100 * own.pop("others_cpu_s", 0.0) / cpu_wall, 1) if cpu_wall else None
        versions = st.get("versions") or {}
        row = {
            "schema": SCHEMA,
            "kind": "speed",
            "run_id": uuid.uuid4().hex,
            "process_id": w.id if w else None,
            "framework": v.framework,
            "tier": v.tier,
            "candidate": v.candidate,
            "task": task,
            "profile": "speed",
            "seed": r,
            "round": r,
            "phase": phase,
            "anchor": str(cfg.anchor),
            "sitting": self.sitting,
            **own,
            "threads": cfg.threads,
            "device": st.get("device", cfg.device),
            "device_requested": cfg.device,
            "precision": cfg.precision,
            "settings": st.get("settings"),
            "cpus": st.get("cpus"),
            "import_s": st.get("import_s"),
            "group_start_s": start_s,
            "others_cpu_pct": others_pct,
            "machine_busy": others_pct is not None and others_pct > BUSY_CPU_PCT,
            "framework_version": next(iter(versions.values()), None),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "provenance": of_worker(fw.env, env, st, self.data[TASKS[task].dataset][1], **self.common),
        }
        record(self.path, row)
        self.rows.append(row)
        if row["status"] == Status.OK:
            from dlbench.analysis.design import process_value

            shown = f"{1000 * process_value(row):.3g} ms/step" + (" [machine busy]" if row["machine_busy"] else "")
        else:
            shown = f"{row['status']} ({row['error']})"
        print(f"speed: group {r + 1} {task} {v}: {shown}", file=sys.stderr)
        if row["status"] == Status.INTERRUPTED:
            raise Interrupted


def _runs(cfg: SpeedConfig, name: str, task: str) -> bool:
    """Whether the variant named `name` runs `task` (a tuned choice runs only the tasks it was chosen for)."""
    return task in cfg.tasks_of.get(name, cfg.tasks)


def run(cfg: SpeedConfig) -> int:
    """The whole protocol; exit status 0, or 128 + the signal when stopped (every finished row is kept)."""
    from dlbench.analysis.design import components, plan
    from dlbench.analysis.speed import usable
    from dlbench.analysis.tables import write_speed

    check_output(cfg.results)
    s = Sitting(cfg)
    try:
        for r in range(cfg.pilot):
            s.group(r, {str(v): {t: cfg.pilot_pairs for t in cfg.tasks} for v in cfg.frameworks}, "pilot")
        ok = [x for x in s.rows if usable(x)]
        comps = {}
        for v in cfg.frameworks:
            for t in cfg.tasks:
                mine = [
                    x
                    for x in ok
                    if (x["framework"], x["tier"], x.get("candidate", ""), x["task"])
                    == (v.framework, v.tier, v.candidate, t)
                ]
                if mine:
                    comps[str(v), t] = components(mine)
        timed = sum(sum(x.get("window_s") or []) for x in s.rows) / max(1, cfg.pilot)
        fixed_s = sum(s.group_s) / max(1, len(s.group_s)) - timed  # a group's cost besides its windows
        left = cfg.budget_s - s.elapsed() - REPORT_RESERVE_S
        if any(f == str(cfg.anchor) for f, _ in comps):
            design = plan(comps, fixed_s, str(cfg.anchor), cfg.pilot, left, cfg.target)
            record = {
                "sitting": s.sitting,
                "anchor": str(cfg.anchor),
                "order_seed": cfg.order_seed,
                "pilot_groups": cfg.pilot,
                "pilot_pairs": cfg.pilot_pairs,
                "pilot_group_s": s.group_s,
                "components": {f"{f} / {t}": vars(c) for (f, t), c in comps.items()},
                **design.to_json(),
            }
            files.write_whole(cfg.results / "design.json", json.dumps(record, indent=1) + "\n")
            print(
                f"speed: plan ({left:.0f} s left): {design.groups} groups in all, {design.group_s:.0f} s a group",
                file=sys.stderr,
            )
            for r in range(cfg.pilot, design.groups):
                fallback = {t: cfg.pilot_pairs for t in cfg.tasks}
                s.group(r, {str(v): design.pairs.get(str(v), fallback) for v in cfg.frameworks}, "planned")
        else:
            print(f"speed: no plan: the anchor {cfg.anchor} has no usable pilot row", file=sys.stderr)
    except (Interrupted, KeyboardInterrupt):
        print(f"harness.py: stopped by {signals.name()}: {len(s.rows)} row(s) recorded in {s.path}", file=sys.stderr)
        return signals.exit_status()
    print(write_speed(cfg.results, sitting_id=s.sitting["id"]))
    print(f"speed: {s.elapsed():.0f} s in all; rows in {s.path}", file=sys.stderr)
    return 0
