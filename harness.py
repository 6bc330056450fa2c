"""dlbench harness: run the framework x task matrix, each pairing in its own worker process.

    python harness.py run [--frameworks torch] [--tasks mnist_cnn] [--profile quick|full] [--seeds 0,1]
    python harness.py report [--results results]
    python harness.py parity [--frameworks torch,jax] [--tasks iris_mlp]
    python harness.py assess [--results results]
    python harness.py microbench [--frameworks torch,jax]
    python harness.py list

Every pairing x seed appends one JSON line to RESULTS/runs.jsonl whatever happens (ok, error,
diverged, crashed, timeout, unavailable), with the machine's provenance and load beside the timings.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from frameworks import ENVIRONMENTS, FRAMEWORKS, ROOT
from tasks import TASKS
from tasks.data import DataError, prepare

DEFAULT_TIMEOUT_S = {"quick": 600, "full": 4 * 3600}
BUSY_CPU_PCT = 10.0  # other processes' CPU share above which a timing is flagged as disturbed
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
               "TF_NUM_INTEROP_THREADS")  # fmt: skip


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


# ---------------------------------------------------------------- provenance and machine load


def _git() -> dict:
    def git(*args):
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@functools.cache  # asked for once per pairing (on a Ray node, per node): the machine does not change
def machine() -> dict:
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_allowed": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
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


def _cpu_busy_s() -> float | None:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    try:
        f = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle = f[3] + f[4]  # idle + iowait
    return (sum(f[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- one worker


def _worker_env(threads: int, fw_vars: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update({k: str(threads) for k in THREAD_VARS})
    env.update(fw_vars)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _group_rss_mib(pgid: int) -> float:
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


class Interrupted(Exception):
    """Ctrl-C: the current worker was stopped and recorded; the matrix stops."""


def run_worker(
    cfg: dict, python: Path, env: dict, timeout_s: float, on_event, max_rss_mib: float | None = None
) -> dict:
    """Run worker.py with `python`; return its result fields, or a failure's status and cause.

    The worker runs in its own session, so Ctrl-C reaches only the harness, which then kills it.
    With `max_rss_mib`, its process group's resident memory is polled twice a second and the group is
    killed past the cap (status oom): RLIMIT_AS cannot do this, JAX and TensorFlow reserve far more
    address space than they use."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, err_path = Path(tmp, "config.json"), Path(tmp, "stderr.txt")
        cfg_path.write_text(json.dumps(cfg))
        with open(err_path, "w+") as err:
            before = os.times()
            proc = subprocess.Popen(
                [str(python), str(ROOT / "worker.py"), str(cfg_path)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
                start_new_session=True,  # its own process group: a timeout kills its children too
            )  # fmt: skip
            lines: queue.Queue = queue.Queue()
            threading.Thread(
                target=lambda: [lines.put(x) for x in proc.stdout] + [lines.put(None)], daemon=True
            ).start()
            deadline, result, error, timed_out = time.monotonic() + timeout_s, None, None, False
            interrupted, peak_mib, over_cap, next_poll = False, 0.0, False, 0.0
            while True:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0:
                        timed_out = True
                        os.killpg(proc.pid, signal.SIGKILL)
                        break
                    try:
                        line = lines.get(timeout=min(remaining, 0.5))
                    except queue.Empty:
                        line = ""
                    if max_rss_mib and time.monotonic() >= next_poll:  # twice a second, however chatty the worker
                        next_poll = time.monotonic() + 0.5
                        peak_mib = max(peak_mib, _group_rss_mib(proc.pid))
                        if peak_mib > max_rss_mib:
                            over_cap = True
                            os.killpg(proc.pid, signal.SIGKILL)
                            break
                except KeyboardInterrupt:
                    interrupted = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
                if line is None:
                    break
                if not line:
                    continue
                if line.startswith("@@dlbench "):
                    ev = json.loads(line[len("@@dlbench ") :])
                    if ev["event"] == "result":
                        result = ev
                    elif ev["event"] == "error":
                        error = ev["error"]
                    else:
                        on_event(ev)
            rc = proc.wait()
            after = os.times()
            err.seek(0)
            tail = [ln for ln in err.read().splitlines() if ln.strip()]
    worker_cpu_s = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    usage = {"worker_cpu_s": round(worker_cpu_s, 2)}
    if interrupted:
        return {"status": "interrupted", "error": "stopped by Ctrl-C (SIGINT)", **usage}
    if over_cap:
        return {
            "status": "oom",
            "error": f"worker used {peak_mib:,.0f} MiB, over --max-rss-mib {max_rss_mib:g}",
            **usage,
        }
    if timed_out:
        return {"status": "timeout", "error": f"no result within {timeout_s:g} s (--timeout)", **usage}
    if result is not None:
        result.pop("event")
        return {"status": "ok", "error": None, **result, **usage}
    if error is not None:
        status = "diverged" if error.startswith("FloatingPointError") else "error"
        return {"status": status, "error": error, **usage}
    if rc < 0:
        name = signal.Signals(-rc).name
        hint = " (from outside: perhaps the kernel's OOM killer)" if name == "SIGKILL" else ""
        return {"status": "crashed", "error": f"worker killed by {name}{hint}", **usage}
    return {"status": "error", "error": (tail[-1] if tail else f"worker exited with status {rc}")[:500], **usage}


def append_row(path: Path, row: dict) -> None:
    """Append one whole line: a single write, flushed and fsynced, under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(row, default=str) + "\n").encode()
    with open(path, "ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------- the matrix


def _csv(value: str, known: dict, what: str) -> list[str]:
    names = list(known) if value == "all" else [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise UsageError(f"unknown {what} {', '.join(unknown) or repr(value)}: choose from {', '.join(known)}")
    return names


def _positive_ints(value: str, what: str) -> list[int]:
    try:
        nums = [int(v) for v in value.split(",")]
    except ValueError:
        raise UsageError(f"{what} must be integers separated by commas, got {value!r}") from None
    if any(n < 0 for n in nums):
        raise UsageError(f"{what} must not be negative, got {value!r}")
    return nums


def _threads(value: int | None) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = cpus if value is None else value
    if not 1 <= threads <= cpus:
        raise UsageError(f"--threads must be between 1 and {cpus} (the CPUs this process may use), got {threads}")
    return threads


def cmd_run(args) -> int:
    from progress import Progress

    frameworks = _csv(args.frameworks, FRAMEWORKS, "framework")
    tasks = _csv(args.tasks, TASKS, "task")
    if args.repeats is not None:
        if args.seeds is not None:
            raise UsageError("give either --seeds or --repeats, not both")
        if args.repeats < 1:
            raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    seeds = list(range(args.repeats)) if args.repeats else _positive_ints(args.seeds or "0", "--seeds")
    threads = _threads(args.threads)
    if args.epochs is not None and args.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
    timeout_s = DEFAULT_TIMEOUT_S[args.profile] if args.timeout is None else args.timeout
    if timeout_s <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    if args.max_rss_mib is not None and args.max_rss_mib <= 0:
        raise UsageError(f"--max-rss-mib must be positive, got {args.max_rss_mib}")
    results = Path(args.results) / "runs.jsonl"

    data = {}
    for t in tasks:  # the ETL runs here, once; workers only read its cached arrays
        ds = TASKS[t].dataset
        if ds not in data:
            data[ds] = prepare(ds, args.data_dir)
    common = {"machine": machine(), "git": _git(), "argv": sys.argv[1:]}
    todo = [(t, f, s) for t in tasks for f in frameworks for s in seeds]
    if args.resume:
        done = recorded_ok(results, args.profile, threads, args.device, args.epochs)
        skipped = [k for k in todo if k in done]
        todo = [k for k in todo if k not in done]
        print(f"resume: {len(skipped)} pairing x seed(s) already recorded ok with these settings, "
              f"{len(todo)} to run", file=sys.stderr)  # fmt: skip
    progress = Progress(todo)
    rows = []
    try:
        with progress:
            if args.executor == "ray":
                from ray_executor import run_on_ray

                def job(key):
                    return _job(args, key[0], key[1], key[2], threads, timeout_s, data)

                def finish(key, out):
                    rows.append(finish_row(args, *key, threads, out, data, common, results, progress))

                run_on_ray(todo, job, finish, args.ray_address, threads, args.device == "gpu", progress)
            else:
                for t, f, seed in todo:
                    rows.append(_run_one(args, t, f, seed, threads, timeout_s, data, common, results, progress))
    except Interrupted:
        again = " ".join(a for a in sys.argv[1:] if a != "--resume")
        print(f"harness.py: interrupted: {len(rows)} row(s) recorded in {results} (the stopped one as "
              f"'interrupted'); continue with: python harness.py {again} --resume", file=sys.stderr)  # fmt: skip
        return 130
    busy = [r for r in rows if r.get("machine_busy")]
    if busy:
        print(f"warning: the machine was busy during {len(busy)} run(s) (other processes used more than "
              f"{BUSY_CPU_PCT:g} % of the CPUs): their timings are marked machine_busy", file=sys.stderr)  # fmt: skip
    print(
        f"{len(rows)} row(s) appended to {results}; `python harness.py report --results {args.results}` summarises them"
    )
    return 0


def measure_pairing(
    cfg: dict,
    python: str,
    env_vars: dict,
    timeout_s: float,
    max_rss_mib: float | None,
    missing: str | None = None,
    on_event=None,
) -> dict:
    """One worker, run where this function runs (here, or on a Ray node), with the machine's load around it."""
    load_before, busy_before, t0 = os.getloadavg()[0], _cpu_busy_s(), time.monotonic()
    if not Path(python).exists():
        out = {"status": "unavailable", "error": missing or f"{python} does not exist"}
    else:
        out = run_worker(cfg, Path(python), env_vars, timeout_s, on_event or (lambda ev: None), max_rss_mib)
    wall_s, busy_after = time.monotonic() - t0, _cpu_busy_s()
    others_pct = None
    if busy_before is not None and busy_after is not None and wall_s > 0:
        # CPU used by everything but our worker, as a share of all the machine's cores.
        others = max(0.0, busy_after - busy_before - out.get("worker_cpu_s", 0.0))
        others_pct = round(100 * others / (wall_s * (os.cpu_count() or 1)), 1)
    out.update(wall_s=round(wall_s, 3), load_avg_1m_before=round(load_before, 2), others_cpu_pct=others_pct,
               machine_busy=others_pct is not None and others_pct > BUSY_CPU_PCT, machine=machine())  # fmt: skip
    return out


def _job(args, task, fw_name, seed, threads, timeout_s, data) -> tuple:
    """The arguments of measure_pairing for one pairing x seed."""
    fw, env = FRAMEWORKS[fw_name], ENVIRONMENTS[FRAMEWORKS[fw_name].env]
    cfg = {"task": task, "module": fw.module, "profile": args.profile, "seed": seed, "threads": threads,
           "device": args.device, "epochs": args.epochs, "npz": str(data[TASKS[task].dataset][0])}  # fmt: skip
    missing = f"{env.venv} does not exist: {env.missing_hint}"
    return cfg, str(env.python), _worker_env(threads, fw.env_vars), timeout_s, args.max_rss_mib, missing


def _run_one(args, task, fw_name, seed, threads, timeout_s, data, common, results, progress) -> dict:
    progress.start(task, fw_name, seed)
    on_event = lambda ev: progress.epoch(task, fw_name, seed, ev)  # noqa: E731
    out = measure_pairing(*_job(args, task, fw_name, seed, threads, timeout_s, data), on_event=on_event)
    return finish_row(args, task, fw_name, seed, threads, out, data, common, results, progress)


def finish_row(args, task, fw_name, seed, threads, out, data, common, results, progress) -> dict:
    """The row for one measured pairing x seed: appended whole, then shown."""
    fw, env = FRAMEWORKS[fw_name], ENVIRONMENTS[FRAMEWORKS[fw_name].env]
    versions = out.pop("versions", {})
    node = out.pop("machine", None) or common["machine"]
    row = {
        "framework": fw_name,
        "framework_version": next(iter(versions.values()), None),
        "task": task,
        "profile": args.profile,
        "seed": seed,
        "status": out.pop("status"),
        "error": out.pop("error"),
        "threads": threads,
        "device": out.pop("device", args.device),
        "device_requested": args.device,
        "epochs_cap": args.epochs,
        **out,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "provenance": {
            **common,
            "machine": node,
            "executor": getattr(args, "executor", "local"),
            "environment": fw.env,
            "python_executable": str(env.python),
            "python": out.pop("python", None),
            "packages": {**versions, "numpy": out.get("numpy_version")},
            "data": data[TASKS[task].dataset][1],
        },
    }
    append_row(results, row)
    progress.finish(task, fw_name, seed, row)
    if row["status"] == "interrupted":
        raise Interrupted
    return row


def recorded_ok(results: Path, profile: str, threads: int, device: str, epochs: int | None) -> set:
    """(task, framework, seed) already recorded ok with the same settings; unreadable lines are ignored."""
    done = set()
    try:
        lines = results.read_text().splitlines()
    except OSError:
        return done
    for line in lines:
        try:
            r = json.loads(line)
        except ValueError:
            continue
        same = (r.get("profile"), r.get("threads"), r.get("device_requested", r.get("device")), r.get("epochs_cap"))
        if r.get("status") == "ok" and same == (profile, threads, device, epochs):
            done.add((r.get("task"), r.get("framework"), r.get("seed")))
    return done


# ---------------------------------------------------------------- parity


def cmd_parity(args) -> int:
    """Same weights and batches in every framework: predictions vs numpy, trajectories vs each other."""
    import numpy as np

    import parity
    from report import write_parity

    frameworks = _csv(args.frameworks, FRAMEWORKS, "framework")
    tasks = _csv(args.tasks, TASKS, "task")
    threads = _threads(args.threads)
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, got {args.timeout}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        inputs = {t: parity.inputs(TASKS[t]) for t in tasks}
        Path(tmp, "inputs").mkdir()
        for t, inp in inputs.items():
            np.savez(Path(tmp, "inputs", f"{t}.npz"), **inp)
        measured: dict[str, dict] = {t: {} for t in tasks}
        for f in frameworks:
            fw, env = FRAMEWORKS[f], ENVIRONMENTS[FRAMEWORKS[f].env]
            out_dir = Path(tmp, f)
            out_dir.mkdir()
            cfg = {"mode": "parity", "module": fw.module, "tasks": tasks, "threads": threads, "device": args.device,
                   "inputs": str(Path(tmp, "inputs")), "out": str(out_dir)}  # fmt: skip
            t0 = time.monotonic()
            if not env.python.exists():
                out = {"status": "unavailable", "error": f"{env.venv} does not exist: {env.missing_hint}"}
            else:
                out = run_worker(cfg, env.python, _worker_env(threads, fw.env_vars), args.timeout, lambda ev: None)
            print(f"parity: {f} {out['status']} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
            for t in tasks:
                summary = out.get("tasks", {}).get(t, {"error": out.get("error")})
                if out["status"] == "ok" and "error" not in summary:
                    with np.load(out_dir / f"{t}.npz", allow_pickle=False) as z:
                        measured[t][f] = (summary, {k: z[k] for k in z.files})
                else:
                    verdict = "unavailable" if out["status"] == "unavailable" else "FAIL"
                    rows.append({"task": t, "framework": f, "verdict": verdict,
                                 "problems": [f"{t}: {out['status']}: {summary['error']}"]})  # fmt: skip
        for t in tasks:
            rows.extend(parity.compare(TASKS[t], inputs[t], measured[t]))
    write_parity(Path(args.results), rows, tasks, frameworks)
    failed = [r for r in rows if r["verdict"] == "FAIL"]
    return 1 if failed else 0


def cmd_assess(args) -> int:
    """Input pipelines, install sizes and adapter sizes into RESULTS/assessment.json (see assess.py)."""
    import assess

    threads = _threads(args.threads)
    npz, _ = prepare("mnist", args.data_dir)
    out = assess.measure(npz, threads, log=lambda line: print(line, file=sys.stderr))
    out["machine"] = machine()
    path = Path(args.results) / "assessment.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"written: {path}; `python harness.py report` shows it")
    return 0


def cmd_microbench(args) -> int:
    """benchmarks/test_micro.py (pytest-benchmark) once per framework in its interpreter; merged table."""
    from report import microbench_table

    frameworks = _csv(args.frameworks, FRAMEWORKS, "framework")
    threads = _threads(args.threads)
    out = Path(args.results) / "microbench"
    out.mkdir(parents=True, exist_ok=True)
    for f in frameworks:
        fw, env = FRAMEWORKS[f], ENVIRONMENTS[FRAMEWORKS[f].env]
        if not env.python.exists():
            print(f"microbench: {f} skipped: {env.venv} does not exist, {env.missing_hint}", file=sys.stderr)
            continue
        cmd = [str(env.python), "-m", "pytest", "benchmarks/test_micro.py", "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={out / (f + '.json')}"]  # fmt: skip
        vars_ = {**_worker_env(threads, fw.env_vars), "DLBENCH_FRAMEWORK": f, "DLBENCH_THREADS": str(threads)}
        r = subprocess.run(cmd, cwd=ROOT, env=vars_, capture_output=True, text=True, timeout=args.timeout)
        tail = (r.stdout.strip().splitlines() or ["no output"])[-1]
        print(f"microbench: {f}: {tail}", file=sys.stderr)
    table = microbench_table(out)
    print(table)
    (Path(args.results) / "microbench.md").write_text(table + "\n")
    print(f"written: {out}/*.json (pytest-benchmark JSON), {Path(args.results) / 'microbench.md'}")
    return 0


# ---------------------------------------------------------------- report and list


def cmd_report(args) -> int:
    from report import ReportError, write_summary

    try:
        return write_summary(Path(args.results), args.profile)
    except ReportError as e:
        raise UsageError(str(e)) from None


def _importable(python: Path, package: str) -> bool:
    """Whether `package` can be found by `python`, without importing it (that can take seconds)."""
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({package!r}) is None)"
    return subprocess.run([str(python), "-c", code], capture_output=True).returncode == 0


def cmd_list(args) -> int:
    print("frameworks:")
    for f in FRAMEWORKS.values():
        env = ENVIRONMENTS[f.env]
        if not env.python.exists():
            state = f"missing: {env.venv} does not exist, {env.missing_hint}"
        elif f.package and not _importable(env.python, f.package):
            state = f"missing: {f.package} is not installed in {env.venv}, run `make setup`"
        else:
            state = "installed"
        print(f"  {f.name:<12} {f.description:<24} {state}; interpreter {env.python}")
    print("tasks:")
    for t in TASKS.values():
        r = t.recipe
        print(f"  {t.name:<12} {t.dataset:<6} {t.n_params:>9,} params  batch {r.batch_size}, "
              f"<= {r.max_epochs} epochs, early stopping {'on' if r.early_stopping else 'off'}, "
              f"target val acc {r.target_val_accuracy}")  # fmt: skip
    return 0


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, not argparse's usage block
        raise UsageError(f"{message} (see `python harness.py {self.prog.split()[-1]} --help`)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    r = sub.add_parser("run", help="run the framework x task matrix")
    r.add_argument("--frameworks", default="all", help="comma-separated, or all (default)")
    r.add_argument("--tasks", default="all", help="comma-separated, or all (default)")
    r.add_argument("--profile", default="quick", choices=["quick", "full"])
    r.add_argument("--seeds", help="comma-separated seeds (default 0)")
    r.add_argument("--repeats", type=int, help="N runs per pairing: seeds 0..N-1")
    r.add_argument("--epochs", type=int, help="cap every profile's epochs at N")
    r.add_argument("--threads", type=int, help="threads for every framework (default: all CPUs)")
    r.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    r.add_argument("--timeout", type=float, help="seconds per pairing (default: quick 600, full 14400)")
    r.add_argument("--results", default="results", help="results folder (default results/)")
    r.add_argument("--data-dir", help="where data files may already be (also $DLBENCH_DATA_DIR)")
    r.add_argument("--resume", action="store_true", help="skip pairing x seeds already recorded ok with these settings")
    r.add_argument("--max-rss-mib", type=float, help="kill a worker whose memory exceeds this (status oom)")
    r.add_argument("--executor", default="local", choices=["local", "ray"], help="where workers run (default local)")
    r.add_argument("--ray-address", help="a running Ray cluster (default: start a local one)")
    r.set_defaults(fn=cmd_run)
    s = sub.add_parser("report", help="summarise RESULTS/runs.jsonl into tables")
    s.add_argument("--results", default="results")
    s.add_argument("--profile", choices=["quick", "full"], help="only this profile's rows")
    s.set_defaults(fn=cmd_report)
    q = sub.add_parser("parity", help="check that every framework trains the same model (exit 1 if not)")
    q.add_argument("--frameworks", default="all", help="comma-separated, or all (default)")
    q.add_argument("--tasks", default="all", help="comma-separated, or all (default)")
    q.add_argument("--threads", type=int, help="threads for every framework (default: all CPUs)")
    q.add_argument("--timeout", type=float, default=600, help="seconds per framework (default 600)")
    q.add_argument("--device", default="cpu", choices=["cpu", "gpu", "auto"])
    q.add_argument("--results", default="results", help="where parity.md and parity.csv go (default results/)")
    q.set_defaults(fn=cmd_parity)
    a = sub.add_parser("assess", help="measure input pipelines, install and adapter sizes for the report")
    a.add_argument("--threads", type=int, help="threads (default: all CPUs)")
    a.add_argument("--results", default="results")
    a.add_argument("--data-dir", help="where data files may already be (also $DLBENCH_DATA_DIR)")
    a.set_defaults(fn=cmd_assess)
    m = sub.add_parser("microbench", help="pytest-benchmark micro-benchmarks, frameworks side by side")
    m.add_argument("--frameworks", default="all", help="comma-separated, or all (default)")
    m.add_argument("--threads", type=int, help="threads (default: all CPUs)")
    m.add_argument("--timeout", type=float, default=1800, help="seconds per framework (default 1800)")
    m.add_argument("--results", default="results")
    m.set_defaults(fn=cmd_microbench)
    ls = sub.add_parser("list", help="show the frameworks and tasks")
    ls.set_defaults(fn=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
        return args.fn(args)
    except (UsageError, DataError) as e:
        print(f"harness.py: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `harness.py list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("harness.py: interrupted; every finished row is in the results file", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
