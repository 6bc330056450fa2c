"""The committed reference folders keep the rules they were measured under, and their headlines are the rows'."""

from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from dlbench.analysis.headline import headline
from dlbench.analysis.parity import load_parity
from dlbench.analysis.report import load_runs
from tests.support.cli import ROOT


def _committed_reference_folders() -> list[str]:
    """results/reference*/ as committed (a developer's ignored folders are not the published ones)."""
    out = subprocess.run(["git", "ls-files", "results/*/runs.jsonl"], cwd=ROOT, capture_output=True, text=True)
    folders = sorted({line.split("/")[1] for line in out.stdout.split()})
    # reference-1, the first edition, predates these rules (schema 0, one busy row): kept as measured.
    return [f for f in folders if f.startswith("reference") and f != "reference-1"]


FOLDERS = _committed_reference_folders()


def test_the_reference_folders_are_found():
    assert {"reference", "reference-mlx-mnist"} <= set(FOLDERS), FOLDERS


@pytest.mark.parametrize("name", FOLDERS)
def test_a_reference_folder_is_one_machine_one_commit_clean_quiet_and_parity_passed(name):
    folder = ROOT / "results" / name
    rows = [json.loads(line) for line in (folder / "runs.jsonl").read_text().splitlines()]
    prov = [r["provenance"] for r in rows]
    assert len({p["git"]["commit"] for p in prov}) == 1, "an edition never mixes commits"
    assert not any(p["git"]["dirty"] for p in prov), "a published row comes from a clean tree"
    assert len({json.dumps(p["machine"], sort_keys=True) for p in prov}) == 1, "nor machines"
    assert [(r["framework"], r["task"], r["seed"]) for r in rows if r["machine_busy"]] == [], "busy rows repeated"
    assert {r["status"] for r in rows} == {"ok"}
    assert set(pd.read_csv(folder / "parity.csv")["verdict"]) == {"pass"}, "parity first, all pass"
    for f in ("report.md", "report.html", "assessment.json", "microbench.md", "compare.md"):
        assert (folder / f).is_file(), f


@pytest.mark.parametrize("name", FOLDERS)
def test_a_reference_headline_is_what_its_rows_say(name):
    """headline.md (which the README includes verbatim) regenerates from runs.jsonl and parity.csv alone."""
    folder = ROOT / "results" / name
    assert (folder / "headline.md").read_text() == headline(load_runs(folder), load_parity(folder)[0])
