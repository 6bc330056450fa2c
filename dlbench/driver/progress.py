"""Live display of the matrix: a rich table on a terminal, one plain line per event otherwise."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.table import Table

_STYLE = {"ok": "green", "running": "yellow", "pending": "dim"}


class Progress:
    def __init__(self, cells: list[tuple[str, str, int]]):
        self.state = {c: {"status": "pending", "epoch": "", "val": "", "time": ""} for c in cells}
        self.console = Console(stderr=True)
        self.live = (
            Live(self._table(), console=self.console, refresh_per_second=4) if self.console.is_terminal else None
        )
        self.t0 = self.last_print = time.monotonic()

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)

    def _table(self) -> Table:
        table = Table("task", "framework", "seed", "status", "epoch", "val acc", "time", title="dlbench")
        for (task, fw, seed), s in self.state.items():
            style = _STYLE.get(s["status"], "red")
            table.add_row(task, str(fw), str(seed), f"[{style}]{s['status']}[/]", s["epoch"], s["val"], s["time"])
        return table

    def _update(self, cell, line: str, quiet: bool = False, **fields) -> None:
        self.state[cell].update(fields)
        if self.live:
            self.live.update(self._table())
        elif not quiet or time.monotonic() - self.last_print >= 5:  # plain logs: an epoch line per 5 s
            self.last_print = time.monotonic()
            print(line, file=sys.stderr, flush=True)

    def start(self, task: str, fw: str, seed: int) -> None:
        self.t0 = time.monotonic()
        self._update((task, fw, seed), f"[{task} {fw} seed {seed}] started", status="running")

    def epoch(self, task: str, fw: str, seed: int, ev: dict) -> None:
        ep = f"{ev['epoch']}/{ev['max_epochs']}"
        val = f"{ev['val_accuracy']:.4f}"
        line = f"[{task} {fw} seed {seed}] epoch {ep}: {ev['epoch_s']:.2f} s, val acc {val}"
        self._update((task, fw, seed), line, quiet=True, epoch=ep, val=val, time=f"{time.monotonic() - self.t0:.0f} s")

    def finish(self, task: str, fw: str, seed: int, row: dict) -> None:
        why = f" ({row['error']})" if row.get("error") else ""
        acc = f", test acc {row['test_accuracy']:.4f}" if row.get("test_accuracy") is not None else ""
        line = f"[{task} {fw} seed {seed}] {row['status']}{acc} in {row.get('wall_s') or 0:.1f} s{why}"
        self._update((task, fw, seed), line, status=row["status"], time=f"{row['wall_s']:.0f} s")
