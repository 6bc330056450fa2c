"""The report's figures (matplotlib, PNG): learning curves, accuracy vs time, epoch times, memory.

Every function takes the `ok` rows of one profile (a pandas DataFrame of runs.jsonl rows) and writes
one PNG, returning its path. Colours follow the framework, the same in every figure.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on CI machines or servers

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from dlbench import files  # noqa: E402
from dlbench.analysis.stats import median_interval, quiet  # noqa: E402

DPI = 110


def _colours(frameworks) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {f: cmap(i % 10) for i, f in enumerate(sorted(frameworks))}


def _tasks(ok: pd.DataFrame) -> list[str]:
    from tasks import TASKS

    return [t for t in TASKS if t in set(ok["task"])] + sorted(set(ok["task"]) - set(TASKS))


def save(fig, path: Path, dpi: int = DPI, tight: bool = True) -> Path:
    """A figure as PNG, written whole (never through a link into another file), then closed; `tight`: lay it out
    first (a figure with a legend of its own lays itself out)."""
    import io

    if tight:
        fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi)
    plt.close(fig)
    files.write_whole(path, png.getvalue())  # whole or not at all, the path named if the disk is full
    return path


def learning_curves(ok: pd.DataFrame, task: str, out: Path) -> Path:
    """Validation accuracy and loss by epoch and by training time: one line per run (seed)."""
    runs = ok[ok["task"] == task]
    colours = _colours(ok["framework"].unique())
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey="row")
    seen = set()
    for _, r in runs.iterrows():
        h = pd.DataFrame(r["history"] if isinstance(r["history"], list) else [])
        if not {"epoch_s", "val_accuracy", "val_loss"} <= set(h.columns):
            continue  # a row from an older or partial file: nothing to draw
        epoch = np.arange(1, len(h) + 1)
        wall = h["epoch_s"].cumsum()
        label = r["framework"] if r["framework"] not in seen else None
        seen.add(r["framework"])
        kw = {"color": colours[r["framework"]], "alpha": 0.8, "marker": "." if len(h) < 30 else None}
        for row, metric in enumerate(("val_accuracy", "val_loss")):
            axes[row, 0].plot(epoch, h[metric], label=label, **kw)
            axes[row, 1].plot(wall, h[metric], **kw)
    from tasks import TASKS

    if task in TASKS:  # the target that time to target counts to
        for ax in axes[0]:
            ax.axhline(TASKS[task].recipe.target_val_accuracy, color="grey", linestyle="--", linewidth=1)
        axes[0, 0].annotate("target", (1, TASKS[task].recipe.target_val_accuracy), fontsize=8, color="grey")
    for row, name in enumerate(("validation accuracy", "validation loss")):
        axes[row, 0].set_ylabel(name)
        axes[row, 0].set_xlabel("epoch")
        axes[row, 1].set_xlabel("training time (s, validation not counted)")
    if axes[0, 0].get_legend_handles_labels()[0]:  # no run with a history: no legend (and no warning)
        axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{task}: learning curves (one line per seed)")
    return save(fig, out / f"learning_curves_{task}.png")


def accuracy_vs_time(ok: pd.DataFrame, out: Path) -> Path:
    """Test accuracy against total training time, one point per run."""
    tasks, colours = _tasks(ok), _colours(ok["framework"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for fw, g in ok[ok["task"] == task].groupby("framework"):
            ax.scatter(g["train_s"], g["test_accuracy"], color=colours[fw], label=fw, s=25)
        ax.set(title=task, xlabel="training time (s)", ylabel="test accuracy", xscale="log")
    axes[0, 0].legend(fontsize=8)
    return save(fig, out / "accuracy_vs_time.png")


def _bars(ok: pd.DataFrame, out: Path, name: str, column: str, label: str, with_ci: bool) -> Path:
    tasks, colours = _tasks(ok), _colours(ok["framework"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        g = ok[ok["task"] == task].groupby("framework")[column]
        fws = sorted(g.groups, key=lambda f: g.get_group(f).median())  # the fastest on top
        med = [g.get_group(f).median() for f in fws]
        err = None
        if with_ci:
            cis = [median_interval(g.get_group(f).dropna()) for f in fws]
            err = np.array([[m - i.low, i.high - m] for m, i in zip(med, cis, strict=True)]).T
            err = np.nan_to_num(np.clip(err, 0, None))
        ax.barh(fws, med, xerr=err, color=[colours[f] for f in fws], capsize=3)
        ax.set(title=task)
        ax.invert_yaxis()
    fig.supxlabel(label)  # once: per axis the long label ran into its neighbours
    return save(fig, out / name)


def steady_epoch(ok: pd.DataFrame, out: Path) -> Path:
    """Median steady-epoch time per framework with its interval over runs (exact 95 % CI from 6 runs, else range)."""
    col = ok["steady_epoch_s"].fillna(ok["first_epoch_s"])  # one-epoch runs have no steady epoch
    label = "steady epoch (s), median over runs; bars: 95 % CI (>= 6 runs) or range"
    return _bars(ok.assign(epoch_s=col), out, "steady_epoch.png", "epoch_s", label, True)


def first_vs_steady(ok: pd.DataFrame, out: Path) -> Path:
    """First epoch (compilation, warm-up) beside the steady epoch, medians."""
    tasks = _tasks(ok)
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        g = ok[ok["task"] == task].groupby("framework")[["first_epoch_s", "steady_epoch_s"]].median()
        y = np.arange(len(g))
        ax.barh(y - 0.2, g["first_epoch_s"], 0.4, label="first epoch")
        ax.barh(y + 0.2, g["steady_epoch_s"].fillna(0), 0.4, label="steady epoch")
        ax.set(yticks=y, yticklabels=g.index, title=task, xlabel="seconds (median)")
        ax.invert_yaxis()
    axes[0, 0].legend(fontsize=8)
    return save(fig, out / "first_vs_steady.png")


def peak_memory(ok: pd.DataFrame, out: Path) -> Path:
    """The worker's peak resident memory (framework, data and model), median over runs."""
    return _bars(ok, out, "peak_memory.png", "peak_rss_mib", "peak RSS (MiB), median", False)


def all_figures(ok: pd.DataFrame, out: Path) -> list[Path]:
    """Every figure for one profile's ok rows, into `out`; one that cannot be drawn is skipped, said so."""
    import sys

    out.mkdir(parents=True, exist_ok=True)
    jobs = [(f"learning curves {t}", lambda t=t: learning_curves(ok, t, out)) for t in _tasks(ok)]
    jobs += [(f.__name__, lambda f=f: f(quiet(ok), out)) for f in (accuracy_vs_time, steady_epoch, first_vs_steady)]
    jobs += [("peak_memory", lambda: peak_memory(ok, out))]  # memory does not depend on the load
    paths = []
    for name, job in jobs:
        try:
            paths.append(job())
        except (KeyError, ValueError, TypeError) as e:  # rows missing fields: the report still goes out
            plt.close("all")
            print(f"warning: figure {name} skipped ({type(e).__name__}: {e})", file=sys.stderr)
    return paths
