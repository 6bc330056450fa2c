"""Release cadence, a measured proxy for maintenance: how often each framework's project publishes a release.

The history is PyPI's (https://pypi.org/pypi/NAME/json): each final release (no pre-releases, nothing
yanked) dated by its first upload. `harness.py assess --online` refreshes the committed snapshot,
frameworks/releases.json, with the day it was read; offline the snapshot is used and said so. Figures
are counted back from the snapshot's day, not today, so that a report made later says the same.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from packaging.version import InvalidVersion, Version
from pydantic import Field

from dlbench import files, schemas
from frameworks import ROOT

SNAPSHOT = ROOT / "frameworks" / "releases.json"
WINDOW_DAYS = 730  # the last 24 months


class Snapshot(schemas.Record):
    """frameworks/releases.json: per PyPI project, its final releases as [version, ISO day]."""

    read_on: str
    source: str
    projects: dict[str, list[list[str]]] = Field(default_factory=dict)


def releases(pypi: dict) -> list[tuple[str, str]]:
    """(version, day of its first upload) for every final, unyanked release in PyPI's JSON for one project."""
    out = []
    for version, uploads in (pypi.get("releases") or {}).items():
        try:
            if Version(version).is_prerelease or Version(version).is_devrelease:
                continue
        except InvalidVersion:
            continue
        days = [u.get("upload_time_iso_8601", "")[:10] for u in uploads or [] if not u.get("yanked")]
        days = [d for d in days if len(d) == 10]
        if days:
            out.append((version, min(days)))
    return sorted(out, key=lambda vd: vd[1])


@dataclass(frozen=True)
class Cadence:
    """One project's releases over the 24 months before `read_on`."""

    project: str
    read_on: str
    count: int  # final releases in the window
    median_gap_days: float | None  # between consecutive releases in the window
    days_since_last: int | None  # from the last release (any time) to read_on

    @property
    def short(self) -> str:
        """ "torch 14 (gap 51 d, last 40 d)": releases in 24 months, their median gap, days since the last."""
        gap = f"gap {self.median_gap_days:.0f} d, " if self.median_gap_days is not None else ""
        last = f"last {self.days_since_last} d" if self.days_since_last is not None else "none"
        return f"{self.project} {self.count} ({gap}{last})"

    @property
    def words(self) -> str:
        gap = f", a median {self.median_gap_days:.0f} days apart" if self.median_gap_days is not None else ""
        last = f"; last {self.days_since_last} days before {self.read_on}" if self.days_since_last is not None else ""
        return f"{self.count} releases in 24 months{gap}{last}"


def cadence(project: str, history: list[list[str]], read_on: str) -> Cadence:
    """The cadence of one project from its [version, day] list."""
    end = date.fromisoformat(read_on)
    days = sorted(date.fromisoformat(d) for _, d in history if date.fromisoformat(d) <= end)
    recent = [d for d in days if d > end - timedelta(days=WINDOW_DAYS)]
    gaps = [(b - a).days for a, b in zip(recent, recent[1:], strict=False)]
    return Cadence(
        project=project,
        read_on=read_on,
        count=len(recent),
        median_gap_days=statistics.median(gaps) if gaps else None,
        days_since_last=(end - days[-1]).days if days else None,
    )


def load(path: Path | None = None) -> Snapshot | None:
    """The committed snapshot (or `path`), or None where it is missing or not one (a warning says which)."""
    path = path or SNAPSHOT
    if not path.exists():
        return None
    found = files.read_json(path)
    if why := schemas.problem(Snapshot, found):
        import sys

        print(files.one_line(f"warning: {path} set aside ({why}): run `harness.py assess --online`"), file=sys.stderr)
        return None
    return Snapshot.model_validate(found)
