"""The committed reference (its third edition, docs/editions.md) keeps the rules it was measured under, and the
README's tables are what its rows say."""

from __future__ import annotations

import json
import re
import subprocess

import pandas as pd

from dlbench.analysis.report import load_runs
from dlbench.analysis.speed import load_speed
from dlbench.analysis.tables import edition
from tests.support.cli import ROOT

REFERENCE = ROOT / "results" / "reference"


def _tracked(pattern: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_results_holds_the_reference_only():
    """Earlier editions and the evidence of earlier issues are in git history (docs/editions.md names them)."""
    assert {p.split("/")[1] for p in _tracked("results/")} == {"README.md", "reference"}


def test_the_edition_is_one_clean_commit_with_parity_first():
    speed, warnings = load_speed(REFERENCE)
    assert not warnings and speed
    commits = {r["provenance"]["git"]["commit"] for r in speed}
    assert len(commits) == 1 and len({r["sitting"]["id"] for r in speed}) == 1, "one sitting, one commit"
    # convergence runs accumulate over sittings (accuracy does not depend on the machine's load), all at this commit
    found = REFERENCE / "runs.jsonl"
    runs = [json.loads(line) for line in found.read_text().splitlines()] if found.exists() else []
    assert {r["provenance"]["git"]["commit"] for r in runs} <= commits, "the convergence runs ran what was timed"
    assert not any(r["provenance"]["git"]["dirty"] for r in [*speed, *runs]), "a published row is from a clean tree"
    assert {r["status"] for r in runs} <= {"ok"}
    assert set(pd.read_csv(REFERENCE / "parity.csv")["verdict"]) == {"pass"}, "parity first, all pass"


def test_the_readme_block_is_what_report_makes_of_the_committed_rows():
    """The README's tables (and tables.md, which holds the same block) regenerate from the reference's rows alone:
    no figure on the front door is typed in. The other generated pages are tested for what must hold in them
    (tests/test_tables.py, tests/test_report.py), not held byte for byte."""
    speed, _ = load_speed(REFERENCE)
    made = edition(speed, load_runs(REFERENCE, quiet=True), results=REFERENCE)
    block = re.search(
        r"<!-- tables: results/reference/tables.md -->\n(.*?)<!-- /tables -->",
        (ROOT / "README.md").read_text(),
        flags=re.S,
    )
    assert block and block.group(1) == made == (REFERENCE / "tables.md").read_text()


def decided_in_first_groups(k: int) -> int:
    """How many default-tier comparisons with the anchor the reference sitting decides from its first k groups."""
    from dlbench.analysis.speed import diffs
    from dlbench.analysis.verdicts import ALPHA, DELTA, against_differences

    speed, _ = load_speed(REFERENCE)
    rounds = sorted({r["round"] for r in speed})[:k]
    (per_task,) = diffs([r for r in speed if r["round"] in rounds and r.get("tier", "default") == "default"]).values()
    comps = [c for per in per_task.values() for c in against_differences(per, "torch", ALPHA, DELTA)]
    return sum(not c.words.startswith("undecided") for c in comps)


def test_the_speed_budget_default_buys_the_third_group_that_decides():
    """docs/methodology.md: the pilot's 2 groups decide almost nothing; the default budget (900 s) affords a third."""
    assert [decided_in_first_groups(k) for k in (2, 3, 4)] == [0, 23, 26]
