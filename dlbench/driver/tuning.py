"""`harness.py tune`: each framework's tuned tier chosen by measurement, recorded in RESULTS/tuning.json.

Per framework: its candidates (frameworks.Candidate, from its own documentation) go through `parity`
first (beside its own default tier and torch's, JAX's for torch, so that a trajectory has an
independent framework to agree with); a candidate that fails on a task is not offered there. Then one
tune sitting of the speed protocol (dlbench/driver/speed.py): the default tier as the anchor, every
candidate beside it, in groups of processes taking turns. dlbench/analysis/tuning.py turns its verdicts into the choice.
Each framework's parity gate and tune sitting (parity.md, speed.jsonl, design.json, speed.md) go to
RESULTS/tuning/FRAMEWORK/, the choices to RESULTS/tuning.json and their table to RESULTS/tuning.md.

`run`, `speed` and `parity` with `--tier tuned` use the recorded choice for this machine and stack
(`resolved`, which harness.py applies before the run); where there is none, `run` and `speed` tune first.
"""

from __future__ import annotations

import statistics
import sys
from datetime import UTC, datetime

from dlbench import files
from dlbench.analysis import tuning
from dlbench.analysis.tuning import PASS, Choice, Probe
from dlbench.driver import signals
from dlbench.driver.config import ParityConfig, SpeedConfig, TuneConfig, UsageError, Variant, check_output
from dlbench.driver.provenance import environment_sha256, machine
from dlbench.protocol import Tier
from frameworks import ENVIRONMENTS, FRAMEWORKS

# A default tier beside every parity gate (torch's; JAX's for torch): a trajectory needs an independent
# framework to agree with, not only its own configurations.
REFERENCES = {"torch": "jax"}
SUBFOLDER = "tuning"


def key(framework: str, task: str, cfg, node: dict) -> dict:
    """What a choice depends on: the machine, device, threads, precision, stack and candidates offered."""
    fw = FRAMEWORKS[framework]
    return {
        "framework": framework,
        "task": task,
        "device": str(cfg.device),
        "threads": cfg.threads,
        "precision": str(cfg.precision),
        "cpu": node.get("cpu"),
        "cpus_allowed": node.get("cpus_allowed"),
        "gpus": [g.get("name") for g in node.get("gpus") or []] if str(cfg.device) == "gpu" else [],
        "packages": environment_sha256(ENVIRONMENTS[fw.env]),
        "candidates": [c.name for c in fw.offered(str(cfg.device))],
    }


def resolve(
    frameworks: tuple[Variant, ...],
    tasks: tuple[str, ...],
    cfg,
    tune_with: TuneConfig | None = None,
) -> dict[tuple[str, str], str]:
    """(framework, task) -> the recorded tuned choice for this machine and stack, for every tuned variant;
    tunes what is missing first when `tune_with` is given, else UsageError names what is missing."""
    wanted = sorted({v.framework for v in frameworks if v.tier == Tier.TUNED and not v.candidate})
    if not wanted:
        return {}
    node = machine()
    found = _recorded(cfg, wanted, tasks, node)
    missing = sorted({f for (f, _), c in found.items() if c is None})
    if missing and tune_with is not None:
        print(f"tune: no tuned-tier choice recorded here for {', '.join(missing)}: measuring it first", file=sys.stderr)
        rc = run(TuneConfig(**{**vars(tune_with), "frameworks": tuple(missing), "tasks": tasks}))
        if rc:
            raise KeyboardInterrupt
        found = _recorded(cfg, wanted, tasks, node)
    for (f, t), c in found.items():
        if c is None:
            raise UsageError(
                f"no tuned-tier choice for {f} on {t} on this machine and stack: run "
                f"`python harness.py tune --frameworks {f} --tasks {t}` first"
            )
    return {ft: c.choice for ft, c in found.items()}


def _recorded(cfg, frameworks, tasks, node: dict) -> dict[tuple[str, str], Choice | None]:
    """(framework, task) -> the choice recorded for this machine and stack, or None (tuning.json read once)."""
    choices = tuning.load(cfg.results)
    return {(f, t): tuning.lookup(choices, key(f, t, cfg, node)) for f in frameworks for t in tasks}


def run(cfg: TuneConfig) -> int:
    """Tune every framework of `cfg`; exit status 0, or 128 + the signal when stopped (choices so far kept)."""
    from dlbench.driver import speed

    check_output(cfg.results)
    node = machine()
    for name in cfg.frameworks:
        where = cfg.results / SUBFOLDER / name
        where.mkdir(parents=True, exist_ok=True)
        offered = FRAMEWORKS[name].offered(str(cfg.device))
        if not offered:
            tuning.save(cfg.results, [_choice(cfg, name, t, node, ()) for t in cfg.tasks])
            print(f"tune: {name}: {tuning.NO_CANDIDATES}", file=sys.stderr)
            continue
        gate = _parity_gate(cfg, name, offered)
        if gate is None:
            return signals.exit_status()
        measured = [c.name for c in offered if any(v == PASS for v in gate[c.name].values())]
        rows, sid = [], None
        if measured:
            anchor = Variant(name, Tier.DEFAULT)
            scfg = SpeedConfig(
                frameworks=(anchor, *(Variant(name, Tier.TUNED, c) for c in measured)),
                tasks=cfg.tasks,
                anchor=anchor,
                threads=cfg.threads,
                device=cfg.device,
                precision=cfg.precision,
                results=where,
                data_dir=cfg.data_dir,
                argv=cfg.argv,
                budget_s=cfg.budget_s,
                equivalence=cfg.equivalence,
                timeout_s=cfg.timeout_s,
            )
            rc = speed.run(scfg)
            from dlbench.analysis.speed import load_speed

            rows = load_speed(where)[0]
            sid = rows[-1]["sitting"]["id"] if rows and rows[-1].get("anchor") == name else None
            if rc:
                return rc
        from dlbench.analysis.speed import diffs

        paired = diffs(rows).get(sid, {}) if sid else {}  # task -> candidate -> group -> log ratio to the default
        tuning.save(
            cfg.results, [_choice(cfg, name, t, node, offered, gate, rows, sid, paired.get(t, {})) for t in cfg.tasks]
        )
    chosen = [c for c in tuning.load(cfg.results) if c.key["framework"] in cfg.frameworks]
    print(tuning.table(chosen).to_markdown(index=False, disable_numparse=True))
    files.write_whole(cfg.results / "tuning.md", tuning.section(tuning.load(cfg.results)))  # every choice here
    print(f"written: {cfg.results / tuning.FILE}, {cfg.results / 'tuning.md'}")
    return 0


def _parity_gate(cfg: TuneConfig, name: str, offered) -> dict[str, dict[str, str]] | None:
    """candidate -> task -> PASS or the parity problem; None if a stop signal ended it."""
    from dlbench.analysis.parity import write_parity
    from dlbench.driver import parity

    mine = (Variant(name, Tier.DEFAULT), *(Variant(name, Tier.TUNED, c.name) for c in offered))
    refs = tuple(Variant(f, Tier.DEFAULT) for f in [REFERENCES.get(name, "torch")] if f in FRAMEWORKS)
    pcfg = ParityConfig(
        frameworks=(*refs, *mine),
        tasks=cfg.tasks,
        threads=cfg.threads,
        device=cfg.device,
        timeout_s=cfg.timeout_s,
        results=cfg.results / SUBFOLDER / name,
        precision=cfg.precision,
    )
    rows = parity._measure_and_compare(pcfg)
    if rows is None:
        return None
    write_parity(pcfg.results, rows, list(cfg.tasks), [str(v) for v in pcfg.frameworks], cfg.precision, cfg.device)
    out: dict[str, dict[str, str]] = {c.name: {} for c in offered}
    for c in offered:
        label = str(Variant(name, Tier.TUNED, c.name))
        for t in cfg.tasks:
            r = next((r for r in rows if r["framework"] == label and r["task"] == t), None)
            ok = r is not None and str(r["verdict"]).startswith(PASS)
            out[c.name][t] = PASS if ok else "; ".join((r or {}).get("problems") or ["no parity row"])[:300]
    return out


def _choice(cfg, name, task, node, offered, gate=None, rows=(), sid=None, d=None) -> Choice:
    from dlbench.analysis.verdicts import ALPHA, against_differences

    probes = []
    if offered:
        anchor = str(Variant(name, Tier.DEFAULT))
        comps = {c.framework: c for c in against_differences(d, anchor, ALPHA, cfg.equivalence)} if d else {}
        first = _first_windows(rows, sid, task)
        for c in offered:
            label, parity_ = str(Variant(name, Tier.TUNED, c.name)), gate[c.name][task]
            comp = comps.get(label) if parity_ == PASS else None
            probes.append(
                Probe(
                    c.name,
                    parity_,
                    str(comp.verdict) if comp else "not measured",
                    comp.ratio if comp else None,
                    tuple(comp.interval) if comp else None,
                    comp.n[0] if comp else 0,
                    first.get(label),
                    first.get(anchor),
                )
            )
    choice, words = tuning.choose(probes)
    started = next((r["sitting"] for r in rows if r.get("sitting", {}).get("id") == sid), None)
    return Choice(
        key(name, task, cfg, node),
        choice,
        words,
        tuple(probes),
        started,
        datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _first_windows(rows, sid, task) -> dict[str, float]:
    """label -> median over processes of the first window (compilation and the first pass), in seconds."""
    from dlbench.analysis.speed import label

    by: dict[str, list[float]] = {}
    for r in rows:
        if r.get("sitting", {}).get("id") == sid and r["task"] == task and r["status"] == "ok" and r.get("compile_s"):
            by.setdefault(label(r), []).append(float(r["compile_s"]))
    return {k: statistics.median(v) for k, v in by.items()}


def resolved(cfg):
    """A run or speed config whose tuned variants name the candidates tune chose here (tuning first where
    none is recorded); the config as it is where no tuned variant lacks a candidate."""
    from dataclasses import replace

    from dlbench.driver.config import RunConfig, tune_with

    if not any(v.tier == Tier.TUNED and not v.candidate for v in cfg.frameworks):
        return cfg
    if isinstance(cfg, RunConfig):
        return replace(cfg, candidates=resolve(cfg.frameworks, cfg.tasks, cfg, tune_with(cfg)))
    frameworks, tasks_of = with_choices(cfg.frameworks, cfg.tasks, cfg)
    return replace(cfg, frameworks=frameworks, tasks_of=tasks_of)


def with_choices(
    frameworks: tuple[Variant, ...],
    tasks: tuple[str, ...],
    cfg,
    tune_first: bool = True,
) -> tuple[tuple[Variant, ...], dict[str, tuple[str, ...]]]:
    """Tuned variants without a candidate become one variant per chosen candidate, each with the tasks it
    was chosen for (str(variant) -> tasks); where tune chose the default, the tuned tier is the default
    tier, measured once as such. The others stay as they are, on every task."""
    from dlbench.driver.config import tune_with

    choices = resolve(frameworks, tasks, cfg, tune_with(cfg) if tune_first else None)
    out: list[Variant] = []
    tasks_of: dict[str, tuple[str, ...]] = {}
    for v in frameworks:
        if v.tier != Tier.TUNED or v.candidate:
            out.append(v)
            continue
        for chosen in dict.fromkeys(choices[v.framework, t] for t in tasks):
            # a second process of the default configuration would only measure the default again
            w = Variant(v.framework, *((Tier.DEFAULT,) if chosen == "default" else (Tier.TUNED, chosen)))
            out.append(w)
            tasks_of[str(w)] = tuple(t for t in tasks if choices[v.framework, t] == chosen)
    for v in frameworks:  # a default tier asked for in its own right runs every task
        if v.tier == Tier.DEFAULT:
            tasks_of.pop(str(v), None)
    return tuple(dict.fromkeys(out)), tasks_of
