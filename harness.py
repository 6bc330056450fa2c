"""dlbench: run the framework x task matrix, each pairing in its own worker process; report; check parity.

    python harness.py run [--frameworks torch] [--tasks mnist_cnn] [--profile quick|full] [--seeds 0,1]
    python harness.py speed [--frameworks all] [--tasks all] [--anchor torch] [--budget 900]
    python harness.py tune [--frameworks torch] [--tasks all] [--budget 200]
    python harness.py report [--results results]
    python harness.py parity [--frameworks torch,jax] [--tasks iris_mlp]
    python harness.py assess [--results results]
    python harness.py microbench|overhead [--frameworks torch,jax]
    python harness.py compare BASE NEW [--threshold 5%] [--all] [--anchor torch] [-o FILE]
    python harness.py history torch [--results results]
    python harness.py merge A B ... -o OUT
    python harness.py list

Every pairing x seed appends one JSON line to RESULTS/runs.jsonl whatever happens (ok, error, diverged, crashed,
timeout, oom, interrupted, unavailable, lost), with the machine's provenance and load beside the timings. This file
is the command line only: argparse, a typed config, one library call per subcommand (dlbench/driver, dlbench/analysis).
"""

from __future__ import annotations

import _signal  # signal's C module, at once: importing signal.py (its enums) takes long enough to be interrupted
import sys

# Ctrl-C during the imports (a second or more): a line, not a traceback. Raised in the import system, KeyboardInterrupt
# can land in a weakref callback: "Exception ignored ... Traceback", and the run went on (CI). So SIGINT only notes.
_noted: list[int] = []
_note = lambda signum, frame: _noted.append(signum)
if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:  # an ignored SIGINT (nohup) stays ignored
    _signal.signal(_signal.SIGINT, _note)

import argparse
import subprocess
from pathlib import Path

from dlbench.driver import config as c
from dlbench.driver import signals
from dlbench.files import InputError, error_line, escape_what_the_terminal_cannot_print
from dlbench.protocol import Device, Precision, Profile, Tier
from frameworks import ALIASES, FRAMEWORKS
from tasks import TASKS
from tasks.data import DataError

if _signal.getsignal(_signal.SIGINT) is _note:
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
if _noted:
    print("harness.py: stopped while starting; nothing was run", file=sys.stderr)
    sys.exit(128 + _signal.SIGINT)


def cmd_run(a: argparse.Namespace) -> int:
    from dlbench.driver import matrix, tuning

    return matrix.run(tuning.resolved(c.run_config(a, FRAMEWORKS, ALIASES, TASKS)))  # tuned: tune's choice


def cmd_speed(a: argparse.Namespace) -> int:
    from dlbench.driver import tuning
    from dlbench.driver.speed import run

    return run(tuning.resolved(c.speed_config(a, FRAMEWORKS, ALIASES, TASKS)))  # tuned: tune's choice


def cmd_tune(a: argparse.Namespace) -> int:
    from dlbench.driver import tuning

    return tuning.run(c.tune_config(a, FRAMEWORKS, TASKS))


def cmd_report(a: argparse.Namespace) -> int:
    from dlbench.analysis.publish import write_reports
    from dlbench.analysis.report import ReportError

    try:
        return write_reports(c.existing_dir(a.results, "--results"), a.profile)
    except ReportError as e:
        raise c.UsageError(str(e)) from None


def cmd_parity(a: argparse.Namespace) -> int:
    from dlbench.driver import parity

    return parity.run(c.parity_config(a, FRAMEWORKS, ALIASES, TASKS))


def cmd_assess(a: argparse.Namespace) -> int:
    from dlbench.driver import assess

    return assess.run(c.assess_config(a))


def cmd_microbench(a: argparse.Namespace) -> int:  # microbench and overhead
    from dlbench.driver import microbench

    cfg = c.MicrobenchConfig(
        frameworks=c.names(a.frameworks, FRAMEWORKS, "framework"),
        threads=c.threads(a.threads),
        timeout_s=c.positive(a.timeout, "--timeout"),
        results=c.results_dir(a.results),
    )
    return (microbench.run if a.cmd == "microbench" else microbench.run_overhead)(cfg)


def cmd_compare(a: argparse.Namespace) -> int:
    from dlbench.analysis import compare

    output = None if a.output is None else c.path(a.output, "--output")
    base, new, threshold = c.path(a.base, "BASE"), c.path(a.new, "NEW"), c.percent(a.threshold, "--threshold")
    return compare.run(base, new, threshold, output, a.all, a.anchor)


def cmd_history(a: argparse.Namespace) -> int:
    from dlbench.analysis import history

    return history.run(
        c.one_name(a.framework, FRAMEWORKS, "framework"),
        c.existing_dir(a.results, "--results"),
        c.percent(a.equivalence, "--equivalence"),
    )


def cmd_merge(a: argparse.Namespace) -> int:
    from dlbench.driver.config import merge

    return merge([c.path(x, "a merge source") for x in a.sources], c.path(a.output, "-o/--output"))


def cmd_list(a: argparse.Namespace) -> int:
    from dlbench.driver import listing

    return listing.run()


def _releases(a: argparse.Namespace) -> None:
    """NAME@VERSION in --frameworks or --anchor: a framework each, in an environment built for it (or reused)."""
    if specs := [v for v in (getattr(a, "frameworks", None), getattr(a, "anchor", None)) if v and "@" in v]:
        from dlbench.driver import releases

        releases.register(",".join(specs))


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, not argparse's usage block
        sub = self.prog.split()[1:]  # "harness.py run" -> ["run"]; the top-level parser has none
        raise c.UsageError(f"{message} (see `python harness.py {' '.join([*sub, '--help'])}`)")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="harness.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    devices, profiles = [d.value for d in Device], [x.value for x in Profile]
    precisions, tiers = [p.value for p in Precision], [t.value for t in Tier] + ["all"]

    def common(sp, frameworks=True, tasks=True, data=True):
        if frameworks:
            sp.add_argument("--frameworks", default="all", help="comma-separated, or all (default)")
        if tasks:
            sp.add_argument("--tasks", default="all", help="comma-separated, or all (default)")
        sp.add_argument("--threads", type=int, help="threads for every framework (default: all CPUs)")
        sp.add_argument("--results", default="results", help="results folder (default results/)")
        if data:
            sp.add_argument("--data-dir", help="where data files may already be (also $DLBENCH_DATA_DIR)")

    def training(sp, tier=True):  # how the frameworks train: run, speed, parity and tune share these
        sp.add_argument(
            "--device", default="cpu", choices=devices, help="cpu (default), gpu, or auto (a GPU where one is seen)"
        )
        sp.add_argument("--precision", default="fp32", choices=precisions, help="fp32 (default), tf32 (GPU), bf16")
        if tier:
            sp.add_argument("--tier", default="default", choices=tiers, help="default (the default), tuned, or all")

    r = sub.add_parser("run", help="run the framework x task matrix")
    common(r)
    training(r)
    r.add_argument("--profile", default="quick", choices=profiles, help="quick (default: small data) or full")
    r.add_argument("--seeds", help="comma-separated seeds (default 0)")
    r.add_argument("--repeats", type=int, help="N runs per pairing: seeds 0..N-1")
    r.add_argument("--epochs", type=int, help="cap every profile's epochs at N")
    r.add_argument("--recipe", default="ours", choices=[x.value for x in c.RecipeName], help="ours (default) or seed")
    r.add_argument("--timeout", type=float, help="seconds per pairing (default: quick 600, full 14400)")
    r.add_argument("--resume", action="store_true", help="skip pairing x seeds already recorded ok with these settings")
    r.add_argument("--max-rss-mib", type=float, help="kill a worker whose memory exceeds this (status oom)")
    r.add_argument("--executor", default="local", choices=[e.value for e in c.Executor], help="where workers run")
    r.add_argument("--ray-address", help="a running Ray cluster (default: start a local one)")
    r.add_argument("--order", default="interleaved", choices=[o.value for o in c.Order], help="interleaved or fixed")
    r.add_argument("--order-seed", type=int, help="seed of the interleaved order (default: drawn, recorded)")
    r.set_defaults(fn=cmd_run)
    sp = sub.add_parser("speed", help="the speed protocol: verdicts against an anchor, per task (make bench)")
    common(sp)
    training(sp)
    sp.add_argument("--anchor", default="torch", help="the framework every other is compared with (default torch)")
    sp.add_argument("--budget", type=float, default=900, help="seconds for the whole protocol (default 900)")
    sp.add_argument("--equivalence", default="10%", help="equivalence margin, either way (default 10%%)")
    sp.add_argument("--target", default="5%", help="planned 95 %% interval half-width of each ratio (default 5%%)")
    sp.add_argument("--pilot", type=int, default=2, help="pilot groups (default 2)")
    sp.set_defaults(fn=cmd_speed)
    tu = sub.add_parser("tune", help="choose each framework's tuned tier by measurement (RESULTS/tuning.json)")
    common(tu)
    training(tu, tier=False)
    tu.add_argument("--budget", type=float, default=200, help="seconds per framework and task (default 200)")
    tu.add_argument("--equivalence", default="10%", help="equivalence margin, either way (default 10%%)")
    tu.set_defaults(fn=cmd_tune)
    s = sub.add_parser("report", help="summarise RESULTS/runs.jsonl into tables")
    s.add_argument("--results", default="results")
    s.add_argument("--profile", choices=profiles, help="only this profile's rows")
    s.set_defaults(fn=cmd_report)
    q = sub.add_parser("parity", help="check that every framework trains the same model (exit 1 if not)")
    common(q, data=False)
    training(q)
    q.add_argument("--timeout", type=float, default=600, help="seconds per framework (default 600)")
    q.set_defaults(fn=cmd_parity)
    a = sub.add_parser("assess", help="measure input pipelines, install and adapter sizes for the report")
    common(a, frameworks=False, tasks=False)
    a.add_argument("--online", action="store_true", help="refresh the release histories from PyPI first")
    a.set_defaults(fn=cmd_assess)
    m = sub.add_parser("microbench", help="pytest-benchmark micro-benchmarks, frameworks side by side")
    common(m, tasks=False, data=False)
    m.add_argument("--timeout", type=float, default=1800, help="seconds per framework (default 1800)")
    m.set_defaults(fn=cmd_microbench)
    o = sub.add_parser("overhead", help="each adapter's training step against a plain tutorial loop")
    common(o, tasks=False, data=False)
    o.add_argument("--timeout", type=float, default=1800, help="seconds per framework (default 1800)")
    o.set_defaults(fn=cmd_microbench)
    cp = sub.add_parser("compare", help="NEW against BASE: speed through the anchor; accuracy, memory, epochs")
    cp.add_argument("base", help="a results folder, or its runs.jsonl or speed.jsonl")
    cp.add_argument("new", help="a results folder, or its runs.jsonl or speed.jsonl")
    cp.add_argument("--threshold", default="5%", help="smallest change that counts (default 5%%)")
    cp.add_argument("-o", "--output", help="a file the markdown is also written to (default: standard output only)")
    cp.add_argument("--all", action="store_true", help="list the equivalent lines and the small changes too")
    cp.add_argument("--anchor", help="the anchor of both sets' speed sittings (default: the one they share)")
    cp.set_defaults(fn=cmd_compare)
    h = sub.add_parser("history", help="a framework's speed across its releases, and where it changed")
    h.add_argument("framework", help="a registered framework, e.g. torch")
    h.add_argument("--results", default="results", help="speed.jsonl files there and below (default results/)")
    h.add_argument("--equivalence", default="10%", help="equivalence margin, either way (default 10%%)")
    h.set_defaults(fn=cmd_history)
    mg = sub.add_parser("merge", help="combine result files, keeping every row once")
    mg.add_argument("sources", nargs="+", help="results folders or runs.jsonl files")
    mg.add_argument("-o", "--output", required=True, help="the results folder to merge into")
    mg.set_defaults(fn=cmd_merge)
    sub.add_parser("list", help="show the frameworks and tasks").set_defaults(fn=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        escape_what_the_terminal_cannot_print()
        args = parser().parse_args(argv)
        with signals.stop_signals():
            _releases(args)
            return args.fn(args)
    except BrokenPipeError:  # e.g. `harness.py list | head`
        sys.stderr.close()
        return 0
    except (c.UsageError, DataError, InputError, OSError) as e:  # OSError: a full disk, met after the checks
        print(f"harness.py: error: {error_line(e)}", file=sys.stderr)
        return 2
    except subprocess.TimeoutExpired as e:  # a tool (uv, an interpreter) past its bound (docs/input-surfaces.md)
        print(f"harness.py: error: {Path(e.cmd[0]).name} did not finish within {e.timeout:g} s", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"harness.py: stopped by {signals.name()}; every finished row is in the results file", file=sys.stderr)
        return signals.exit_status()


if __name__ == "__main__":
    sys.exit(main())
