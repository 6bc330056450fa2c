"""The run matrix: plan the framework x task x seed jobs, run each in a worker, append one row per job.

Every job appends one JSON line to RESULTS/runs.jsonl whatever happens (a `Status` with its cause),
with the machine's provenance and load beside the timings.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime

import numpy as np

from dlbench.driver import signals
from dlbench.driver.config import Executor, Order, RunConfig, Variant, check_output
from dlbench.driver.progress import Progress
from dlbench.driver.provenance import environment_sha256, git, machine, of_worker, record, sitting
from dlbench.driver.supervise import BUSY_CPU_PCT, Interrupted, measure_pairing, worker_env
from dlbench.protocol import SCHEMA, JobConfig, Mode, Status, Tier
from dlbench.results import recorded_ok
from frameworks import ENVIRONMENTS, FRAMEWORKS
from tasks import TASKS
from tasks.data import prepare

Key = tuple[str, Variant, int]  # (task, framework in a tier, seed)


def run(cfg: RunConfig) -> int:
    """Run the matrix; exit status 0, or 128 + the signal when stopped (the resume command is printed)."""
    results = cfg.results / "runs.jsonl"
    check_output(cfg.results)
    if cfg.executor == Executor.RAY:
        from dlbench.driver.ray_executor import check_address

        check_address(cfg.ray_address)
    data = {}
    for t in cfg.tasks:  # the ETL runs here, once; workers only read its cached arrays
        ds = TASKS[t].dataset
        if ds not in data:
            data[ds] = prepare(ds, cfg.data_dir)
    common = {"machine": machine(), "git": git(), "argv": list(cfg.argv), "sitting": sitting()}
    plan = planned(cfg)
    run_index = {key: i for i, key in enumerate(plan)}
    todo: list[Key] = list(plan)
    if cfg.resume:
        done = recorded_ok(results, lambda row: same_settings_and_stack(cfg, common["git"]["commit"], row))
        skipped = [k for k in todo if (k[0], k[1].framework, k[2], k[1].tier) in done]
        todo = [k for k in todo if (k[0], k[1].framework, k[2], k[1].tier) not in done]
        print(
            f"resume: {len(skipped)} pairing x seed(s) already recorded ok with these settings, versions and "
            f"commit, {len(todo)} to run",
            file=sys.stderr,
        )
    progress = Progress(todo)
    rows: list[dict] = []

    def finish(key: Key, out: dict) -> None:
        out = {**out, "run_index": run_index[key], "order": {"kind": cfg.order, "seed": cfg.order_seed}}
        rows.append(finish_row(cfg, *key, out, data, common, results, progress))

    try:
        with progress:
            if cfg.executor == Executor.RAY:
                from dlbench.driver.ray_executor import run_on_ray

                run_on_ray(
                    todo,
                    lambda key: job(cfg, *key, data),
                    finish,
                    cfg.ray_address,
                    cfg.threads,
                    cfg.device == "gpu",
                    progress,
                )
            else:
                for key in todo:
                    progress.start(*key)
                    on_event = lambda ev, key=key: progress.epoch(*key, ev)  # noqa: E731
                    finish(key, measure_pairing(*job(cfg, *key, data), on_event=on_event))
    except (Interrupted, KeyboardInterrupt):
        again = " ".join(a for a in cfg.argv if a != "--resume")
        print(
            f"harness.py: stopped by {signals.name()}: {len(rows)} row(s) recorded in {results} (a stopped "
            f"worker's as 'interrupted'); continue with: python harness.py {again} --resume",
            file=sys.stderr,
        )
        return signals.exit_status()
    busy = [r for r in rows if r.get("machine_busy")]
    if busy:
        print(
            f"warning: the machine was busy during {len(busy)} run(s) (other processes used more than "
            f"{BUSY_CPU_PCT:g} % of the CPUs): their timings are marked machine_busy",
            file=sys.stderr,
        )
    print(
        f"{len(rows)} row(s) appended to {results}; `python harness.py report --results {cfg.results}` summarises them"
    )
    return 0


def planned(cfg: RunConfig) -> list[Key]:
    """Every (task, framework, seed) in the order they run.

    Interleaved (the default): seed by seed, and within a seed task by task with the frameworks in an
    order drawn from (order_seed, seed, task), so that slow drift of the machine (thermal, other tenants)
    spreads over every framework instead of landing on whichever runs last. Fixed: as given."""
    if cfg.order == Order.FIXED:
        return [(t, f, s) for t in cfg.tasks for f in cfg.frameworks for s in cfg.seeds]
    out = []
    for s in cfg.seeds:
        for ti, t in enumerate(cfg.tasks):
            perm = np.random.default_rng([cfg.order_seed, s, ti]).permutation(len(cfg.frameworks))
            out += [(t, cfg.frameworks[i], s) for i in perm]
    return out


def same_settings_and_stack(cfg: RunConfig, commit: str | None, row: dict) -> bool:
    """Whether a recorded row counts as done for this run: the same settings, the same commit, and the
    same installed packages in its framework's environment (a row from another version is not done)."""
    name = row.get("framework")
    fw = FRAMEWORKS.get(name) if isinstance(name, str) else None
    prov = row.get("provenance") if isinstance(row.get("provenance"), dict) else {}
    settings = (
        row.get("profile"),
        row.get("threads"),
        row.get("device_requested"),
        row.get("epochs_cap"),
        row.get("precision", "fp32"),
        row.get("recipe", "ours"),
    )
    return (
        fw is not None
        and settings == (cfg.profile, cfg.threads, cfg.device, cfg.epochs, cfg.precision, cfg.recipe)
        and (prov.get("git") or {}).get("commit") == commit
        and prov.get("environment_sha256") == environment_sha256(ENVIRONMENTS[fw.env])
    )


def job(cfg: RunConfig, task: str, variant: Variant, seed: int, data: dict) -> tuple:
    """The arguments of measure_pairing for one pairing x seed."""
    fw, env = FRAMEWORKS[variant.framework], ENVIRONMENTS[FRAMEWORKS[variant.framework].env]
    jc = JobConfig(
        Mode.RUN,
        fw.module,
        cfg.threads,
        cfg.device,
        task=task,
        profile=cfg.profile,
        seed=seed,
        epochs=cfg.epochs,
        npz=str(data[TASKS[task].dataset][0]),
        precision=cfg.precision,
        tier=variant.tier,
        candidate=candidate(cfg, task, variant),
        recipe=cfg.recipe,
    )
    missing = f"{env.venv} does not exist: {env.missing_hint}"
    vars_ = worker_env(cfg.threads, fw.env_vars, cfg.device)
    return jc, str(env.python), vars_, cfg.timeout_s, cfg.max_rss_mib, missing


def candidate(cfg: RunConfig, task: str, variant: Variant) -> str:
    """The tuned tier's configuration for this task: the variant's own, or the one tune chose ("" by default;
    dlbench.driver.tuning.resolved fills cfg.candidates before the run)."""
    if variant.tier == Tier.DEFAULT:
        return ""
    return variant.candidate or cfg.candidates[variant.framework, task]


def finish_row(cfg: RunConfig, task, variant: Variant, seed, out, data, common, results, progress) -> dict:
    """The row for one measured pairing x seed: appended whole, then shown."""
    fw_name = variant.framework
    fw, env = FRAMEWORKS[fw_name], ENVIRONMENTS[FRAMEWORKS[fw_name].env]
    versions = out.pop("versions", {})
    node = out.pop("machine", None) or common["machine"]
    python = out.get("python")  # also a top-level field of the row, as the worker reported it
    row = {
        "schema": SCHEMA,
        "run_id": uuid.uuid4().hex,  # a row's identity: `harness.py merge` keeps each once
        "framework": fw_name,
        "framework_version": next(iter(versions.values()), None),
        "task": task,
        "profile": cfg.profile,
        "seed": seed,
        "status": out.pop("status"),
        "error": out.pop("error"),
        "threads": cfg.threads,
        "device": out.pop("device", cfg.device),
        "device_requested": cfg.device,
        "epochs_cap": cfg.epochs,
        "precision": cfg.precision,
        "tier": variant.tier,
        "recipe": cfg.recipe,  # "seed": the seed's own recipe (tasks/spec.py: with_recipe)
        "candidate": candidate(cfg, task, variant),
        "sitting": common["sitting"],  # this invocation and its boot: rows of one sitting compare directly
        **out,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "provenance": of_worker(
            fw.env,
            env,
            {"versions": versions, "python": python, "numpy_version": out.get("numpy_version")},
            data[TASKS[task].dataset][1],
            **{k: v for k, v in common.items() if k not in ("sitting", "machine")},
            machine=node,  # a Ray node's own, where the job ran on one
            executor=cfg.executor,
            python_executable=str(env.python),
        ),
    }
    record(results, row)
    progress.finish(task, variant, seed, row)
    if row["status"] == Status.INTERRUPTED:
        raise Interrupted
    return row
