"""A busy row is not a measurement: its timings never move a report, a verdict or a compare; its accuracy counts.

Metamorphic: the quiet rows alone are the reference. Adding busy rows with any timings (a 7x slowdown was
measured here) must leave every timing figure, interval, ranking and compare line as it was.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dlbench.analysis import report
from dlbench.analysis.compare import Side, compare_sets
from tests.test_compare import run_row, sitting, write

FRAMEWORKS = ("torch", "jax", "mxnet")


def _rows(timings: dict[str, list[float]], busy: bool = False, acc: float = 0.99) -> list[dict]:
    return [
        run_row(
            seed,
            t,
            fw=fw,
            task="mnist_cnn",
            machine_busy=busy,
            test_accuracy=acc,
            time_to_target_s=10 * t,
            run_id=f"{fw}-{seed}-{t}-{busy}",
        )
        for fw, ts in timings.items()
        for seed, t in enumerate(ts)
    ]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as the report reads them (dlbench/results.py's reader fills what a row leaves out)."""
    with tempfile.TemporaryDirectory() as d:
        write(Path(d), [{**r, "framework_version": "1", "epochs_run": 5, "peak_rss_mib": 100.0} for r in rows])
        return report.load_runs(Path(d))


timings = st.lists(st.floats(0.5, 2.0), min_size=2, max_size=5)
quiet_sets = st.fixed_dictionaries({fw: timings for fw in FRAMEWORKS})
busy_sets = st.dictionaries(
    st.sampled_from(FRAMEWORKS), st.lists(st.floats(0.1, 20.0), min_size=1, max_size=4), min_size=1
)


def _timing_view(df: pd.DataFrame) -> tuple:
    (table,) = report.summarise(df).values()
    table = report._with_intervals(table, df[df["status"] == "ok"])
    cols = [c for c in table if any(c.startswith(t) for t in report.TIMINGS)]
    return table.set_index("framework")[cols].sort_index().astype(str).to_dict()  # NaN as text


@settings(max_examples=40, deadline=None)
@given(quiet=quiet_sets, busy=busy_sets)
def test_busy_rows_move_no_timing_in_the_report_but_their_accuracy_counts(quiet, busy):
    alone = _frame(_rows(quiet))
    both = _frame(_rows(quiet) + _rows(busy, busy=True, acc=0.5))
    assert _timing_view(both) == _timing_view(alone)
    (table,) = report.summarise(both).values()
    table = table.set_index("framework")
    for fw in FRAMEWORKS:  # the busy runs are counted and their accuracy (0.5 against 0.99) is in the median
        accs = [0.99] * len(quiet[fw]) + [0.5] * len(busy.get(fw, []))
        assert table["runs"][fw] == len(accs) and table["machine_busy"][fw] == len(busy.get(fw, []))
        assert table["test_accuracy"][fw] == np.median(accs)


@settings(max_examples=25, deadline=None)
@given(
    machine=st.floats(0.2, 5.0),
    busy=st.lists(
        st.tuples(st.sampled_from(("torch", "jax")), st.floats(0.1, 20.0), st.integers(0, 5)), min_size=1, max_size=6
    ),
)
def test_busy_rows_move_no_speed_line_in_compare(machine, busy):
    """Busy speed rows (any timing, in any group) change no line of compare's speed family."""
    base = sitting(1.0, {"jax": 2.0}, sid="A")
    new = sitting(machine, {"jax": 2.6}, sid="B", seed=1)
    noisy = [
        {**r, "machine_busy": True, "window_s": [t * x for x in r["window_s"]]}
        for fw, t, g in busy
        for r in new
        if r["framework"] == fw and r["round"] == g
    ]

    def lines(rows):
        text = compare_sets(Side(pd.DataFrame(), base, []), Side(pd.DataFrame(), rows, []), 0.05, show_all=True)[0]
        return [[c.strip() for c in ln.split("|")] for ln in text.splitlines() if ln.startswith("| jax")]

    assert lines(new + noisy) == lines(new) and lines(new)


@settings(max_examples=10, deadline=None)
@given(default=timings, tuned=timings, busy=st.lists(st.floats(0.1, 20.0), min_size=1, max_size=3))
def test_busy_rows_move_nothing_in_the_tiers_section(default, tuned, busy):
    def section(rows):  # the report's own tiers section, as write_summary writes it
        with tempfile.TemporaryDirectory() as d:
            write(Path(d), [{**r, "framework_version": "1", "epochs_run": 5} for r in rows])
            report.write_summary(Path(d), figures=False)
            md = (Path(d) / "report.md").read_text()
        tiers = md.split("### Default and tuned tiers")[1] if "### Default and tuned" in md else ""
        return tiers.split("\n## ")[0].split("\nWarning: ")[0]  # up to the next section or the busy count

    tuned_rows = _rows({"torch": tuned})
    tiers = _rows({"torch": default}) + [{**r, "tier": "tuned", "run_id": r["run_id"] + "t"} for r in tuned_rows]
    noisy = [{**r, "tier": "tuned", "run_id": r["run_id"] + "b"} for r in _rows({"torch": busy}, busy=True)]
    assert section(tiers + noisy) == section(tiers) != ""


def test_a_framework_whose_every_run_was_busy_shows_no_timing_not_a_busy_one():
    df = _frame(_rows({"torch": [1.0, 1.01, 0.99]}) + _rows({"jax": [7.0, 7.1]}, busy=True))
    (table,) = report.summarise(df).values()
    jax = table.set_index("framework").loc["jax"]
    assert pd.isna(jax["steady_epoch_s"]) and pd.isna(jax["first_epoch_s"])
    assert jax["test_accuracy"] == 0.99 and jax["runs"] == 2
    md = report._markdown(table)
    header = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| framework")).split("|")]
    cells = [c.strip() for c in next(ln for ln in md.splitlines() if ln.startswith("| jax")).split("|")]
    assert cells[header.index("steady epoch (s)")] == "—" and cells[header.index("first epoch (s)")] == "—"
