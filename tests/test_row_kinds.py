"""Every reader checks field types, per row kind: a speed row or a tuning.json choice with any JSON value in any
field (nested ones too) is used or set aside with its reason, never an exception, and no table prints a figure
that is not finite. Nothing the harness did not write for this purpose is overwritten."""

from __future__ import annotations

import copy
import json
import os
import re

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dlbench.analysis import history, tuning
from dlbench.analysis.speed import load_speed, sitting_ids
from dlbench.analysis.tables import edition, speed_md
from tests.support.cli import ROOT
from tests.test_compare import run_row

REFERENCE = ROOT / "results" / "reference"
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
NOT_A_FIGURE = re.compile(r"\b(inf|nan|NaN|Infinity)\b")


def _speed_rows() -> list[dict]:
    """A small valid sitting: the reference's first group on Iris (every variant), as committed."""
    rows = [json.loads(line) for line in (REFERENCE / "speed.jsonl").read_text().splitlines()]
    return [r for r in rows if r["task"] == "iris_mlp" and r["round"] in (0, 1, 2)]


ROWS = _speed_rows()
# every place a reader of speed rows looks: top-level fields, the sitting, the windows, the provenance's machine
PLACES = sorted(
    {(k,) for k in ROWS[0]}
    | {("sitting", k) for k in ROWS[0]["sitting"]}
    | {("window_s", 0), ("window_steps", 0), ("provenance", "machine"), ("provenance", "machine", "cpu")}
)


def _set(row: dict, place: tuple, value) -> dict:
    row = copy.deepcopy(row)
    *path, last = place
    target = row
    for p in path:
        target = target[p] if isinstance(target, dict) or isinstance(p, int) else target
    if isinstance(target, (dict, list)):
        try:
            target[last] = value
        except IndexError:
            pass
    return row


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    place=st.sampled_from(PLACES),
    value=JSON | st.sampled_from([float("inf"), float("nan"), -1.0, 0, ""]),
    which=st.integers(0, len(ROWS) - 1),
)
def test_any_json_value_in_any_field_of_a_speed_row_is_used_or_named_and_no_table_prints_inf(
    tmp_path, place, value, which
):
    rows = list(ROWS)
    rows[which] = _set(rows[which], place, value)
    (tmp_path / "speed.jsonl").write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))
    got, warnings = load_speed(tmp_path)
    if len(got) < len(rows):  # the changed row, and only it, is set aside and named by its line
        assert len(got) == len(rows) - 1 and f"line {which + 1} (" in " ".join(warnings), warnings
    text = speed_md(got)
    if len(sitting_ids(got)) == 1:
        text += edition(got, pd.DataFrame())
    text += history.report(got, "torch")
    assert not NOT_A_FIGURE.search(text), text


def _main(capsys, *args) -> tuple[int, str, str]:
    """harness.py in this process (as tests/test_fuzz.py calls it): its exit status, stdout and stderr."""
    import harness

    capsys.readouterr()
    rc = harness.main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_the_issues_speed_rows_are_named_not_a_traceback(tmp_path, capsys):
    """provenance null, sitting {} and sitting "x", a window time of Infinity: report and history each say one
    line about the row and carry on (docs: the reader's warning), never a traceback."""
    base = ROWS[0]
    for change in ({"provenance": None}, {"sitting": {}}, {"sitting": "x"}, {"window_s": [float("inf"), 0.01]}):
        folder = tmp_path / str(abs(hash(json.dumps(change, allow_nan=True))))
        folder.mkdir()
        body = [json.dumps({**base, **change}, allow_nan=True), *(json.dumps(r) for r in ROWS[1:])]
        (folder / "speed.jsonl").write_text("\n".join(body) + "\n")
        for args in (("report", "--results", str(folder)), ("history", "torch", "--results", str(folder))):
            rc, out, err = _main(capsys, *args)
            assert rc == 0 and "Traceback" not in err + out, (change, args, err[-800:])
            if "provenance" not in change:
                assert "line 1 (" in out + err, (change, args, out[-400:], err[-400:])
        assert not NOT_A_FIGURE.search((folder / "speed.md").read_text())


def _choices() -> list:
    """Three recorded choices with probes (a candidate measured against the default)."""
    return [c for c in json.loads((REFERENCE / "tuning.json").read_text())["choices"] if c["probes"]][:3]


CHOICE_PLACES = sorted(
    {(k,) for k in _choices()[0]}
    | {("key", "task"), ("key", "framework"), ("probes", 0)}
    | {("probes", 0, k) for k in _choices()[0]["probes"][0]}
)


def _put(d, place, value):
    d = copy.deepcopy(d)
    target = d
    for p in place[:-1]:
        if isinstance(target, dict):
            target = target.get(p)
        elif isinstance(target, list) and isinstance(p, int) and p < len(target):
            target = target[p]
        else:
            return d
    if isinstance(target, dict) or (
        isinstance(target, list) and isinstance(place[-1], int) and place[-1] < len(target)
    ):
        target[place[-1]] = value
    return d


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(place=st.sampled_from(CHOICE_PLACES), value=JSON)
def test_any_json_value_in_any_field_of_a_choice_is_used_or_set_aside_and_a_rewrite_keeps_it(tmp_path, place, value):
    choices = _choices()
    choices[1] = _put(choices[1], place, value)
    (tmp_path / "tuning.json").write_text(json.dumps({"schema": 1, "choices": choices}))
    found, aside = tuning.read(tmp_path)
    assert len(found) + len(aside) == 3 and tuning.table(found) is not None
    assert not NOT_A_FIGURE.search(tuning.section(found))
    tuning.save(tmp_path, [found[0]] if found else [])  # a rewrite, as tune makes one
    kept = json.loads((tmp_path / "tuning.json").read_text())["choices"]
    assert all(d in kept for d in aside), "an entry tune cannot parse is kept verbatim"


def _spellings(tmp_path, target):
    """Ways to name `target`: as is, through `..`, a symlink, a hard link."""
    link, hard = tmp_path / "link", tmp_path / "hard"
    link.symlink_to(target)
    os.link(target, hard)
    return [target, target.parent / ".." / target.parent.name / target.name, link, hard]


@pytest.mark.parametrize("name", ["runs.jsonl", "speed.jsonl", "tuning.json", "design.json", "parity.csv"])
def test_compare_refuses_an_output_that_names_a_results_file_or_an_input_by_any_path(tmp_path, capsys, name):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    target = folder / name
    if not target.exists():  # a convergence row where compare reads one, else any recorded bytes
        target.write_text(json.dumps(run_row(0, 1.0)) + "\n" if name == "runs.jsonl" else "something recorded\n")
    before = target.read_bytes()
    for spelling in _spellings(tmp_path, target):
        rc, _, err = _main(capsys, "compare", str(folder), str(folder), "-o", str(spelling))
        assert rc == 2 and len(err.strip().splitlines()) == 1, (spelling, err)
        assert target.read_bytes() == before, spelling


def test_history_of_a_folder_that_does_not_exist_is_one_line_and_exit_2(tmp_path, capsys):
    rc, _, err = _main(capsys, "history", "torch", "--results", str(tmp_path / "nowhere"))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "is not a folder" in err


def test_a_speed_file_without_one_usable_row_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "speed.jsonl").write_text(json.dumps({**ROWS[0], "sitting": {}}) + "\nnot json\n")
    rc, _, err = _main(capsys, "report", "--results", str(tmp_path))
    assert rc == 2 and err.strip().splitlines()[-1].startswith("harness.py: error: ") and "no usable speed row" in err
    assert "Traceback" not in err
