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
ODD_JSON = JSON | st.sampled_from([float("inf"), float("nan"), -1.0, 0, ""])  # any value, and the edge ones
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
    | {("window_s", 0), ("window_steps", 0), ("provenance", "machine"), ("provenance", "packages")}
    | {("provenance", "machine", k) for k in ROWS[0]["provenance"]["machine"]}
    | {("provenance", k) for k in ROWS[0]["provenance"]}
    | {("provenance", "git", "commit"), ("provenance", "data", "sha256"), ("provenance", "lock", "sha256")}
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    place=st.sampled_from(PLACES),
    value=ODD_JSON,
    which=st.integers(0, len(ROWS) - 1),
)
def test_any_json_value_in_any_field_of_a_speed_row_is_used_or_named_and_no_table_prints_inf(
    tmp_path, place, value, which
):
    rows = list(ROWS)
    rows[which] = _put(rows[which], place, value)
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


def _runs() -> list[dict]:
    """Six committed convergence rows on Iris (three frameworks, two seeds each where recorded)."""
    rows = [json.loads(line) for line in (REFERENCE / "runs.jsonl").read_text().splitlines()]
    return [r for r in rows if r["task"] == "iris_mlp"][:6]


RUNS = _runs()
RUN_PLACES = sorted(
    {(k,) for k in RUNS[0]}
    | {("history", 0, "epoch_s"), ("history", 1), ("provenance", "machine"), ("provenance", "packages")}
    | {("provenance", "machine", k) for k in RUNS[0]["provenance"]["machine"]}
    | {("provenance", k) for k in RUNS[0]["provenance"]}
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    place=st.sampled_from(RUN_PLACES),
    value=ODD_JSON,
    which=st.integers(0, len(RUNS) - 1),
)
def test_any_json_value_in_any_field_of_a_run_row_is_used_or_named_and_the_report_prints_no_inf(
    tmp_path, place, value, which
):
    from dlbench.analysis.report import ReportError, write_summary
    from dlbench.results import read_rows

    rows = list(RUNS)
    rows[which] = _put(rows[which], place, value)
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in rows))
    found = read_rows(tmp_path / "runs.jsonl")
    assert len(found.rows) + len(found.bad) == len(rows) and all(n == which + 1 for n, _ in found.bad)
    try:
        write_summary(tmp_path, figures=False)
    except ReportError as e:  # one line, exit 2: never a traceback
        assert "\n" not in str(e)
        return
    assert not NOT_A_FIGURE.search((tmp_path / "report.md").read_text())


RECORDS = {  # a valid record of each kind read back from RESULTS, as its command writes it
    "assessment": {
        "measured_at": "2026-12-07T00:00:00+00:00",
        "threads": 2,
        "etl": {
            "torch DataLoader": {"images": {"samples_per_s": [5000.0, 5100.0]}, "text": {"samples_per_s": [900.0]}},
            "tf.data": {"images": {"error": "not built"}},
        },
        "install_mib": {"torch": 700.0},
        "code_lines": {"torch": 120},
        "apis": {"torch": {"names": {"torch.nn.Linear": "public", "torch._C.x": "private"}}, "mlx": None},
    },
    "overhead": {
        "threads": 2,
        "frameworks": {
            "torch": {"iris_mlp": {"adapter_step_ms": 1.0, "plain_step_ms": 0.9, "ratio": 1.1, "ratios": [1.1, 1.1]}}
        },
    },
    "microbench": {
        "benchmarks": [{"group": "dense", "stats": {"median": 0.001}, "extra_info": {"framework": "torch"}}]
    },
}


def _places(d, prefix=()) -> list[tuple]:
    """Every place in a nested record, containers and leaves."""
    out = [prefix] if prefix else []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        out += _places(v, (*prefix, k))
    return out


def _render(kind: str, folder) -> str:
    from dlbench.analysis import assess, microbench

    if kind == "assessment":
        (folder / "assessment.json").write_text(json.dumps(RECORDS_NOW[kind], allow_nan=True))
        return assess.render(folder)
    if kind == "overhead":
        (folder / "overhead.json").write_text(json.dumps(RECORDS_NOW[kind], allow_nan=True))
        return microbench.overhead_table(folder / "overhead.json")
    (folder / "mb").mkdir(exist_ok=True)
    (folder / "mb" / "torch.json").write_text(json.dumps(RECORDS_NOW[kind], allow_nan=True))
    return microbench.microbench_table(folder / "mb")


RECORDS_NOW: dict = {}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind_place=st.sampled_from([(k, p) for k, d in RECORDS.items() for p in _places(d)]),
    value=ODD_JSON,
)
def test_any_json_value_anywhere_in_an_assessment_overhead_or_benchmark_record_never_breaks_its_table(
    tmp_path, kind_place, value
):
    kind, place = kind_place
    RECORDS_NOW[kind] = _put(RECORDS[kind], place, value)
    text = _render(kind, tmp_path)
    assert isinstance(text, str) and not NOT_A_FIGURE.search(text), text


def test_a_valid_record_of_each_kind_shows_its_figures():
    """The schemas refuse the bad, not the good: each valid record's figure reaches its table."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        RECORDS_NOW.update(copy.deepcopy(RECORDS))
        shown = _render("assessment", Path(d))
        assert "5,100 [5,000, 5,100]" in shown and "not built" in shown and "1 of 2 public" in shown
        assert "1.10" in _render("overhead", Path(d))
        assert "| dense" in _render("microbench", Path(d))


def test_every_file_a_command_writes_into_a_results_folder_is_checked_before_any_work():
    """results.WRITTEN (what check_writable holds to be a file of its own) names every results file the code writes."""
    from dlbench.results import WRITTEN

    named = set()
    for path in (ROOT / "dlbench").rglob("*.py"):
        named |= set(re.findall(r'/ "([\w.-]+\.(?:md|json|jsonl|csv|html))"', path.read_text()))
    assert named - {"facts.json", "releases.json"} <= set(WRITTEN), named - set(WRITTEN)  # those two: frameworks/
    assert tuning.FILE in WRITTEN


def _plant(folder, name: str, target, how: str) -> None:
    """Make folder/name another name of `target`: a symbolic link or a hard link."""
    (folder / name).unlink(missing_ok=True)
    (folder / name).symlink_to(target) if how == "symlink" else os.link(target, folder / name)


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
@pytest.mark.parametrize("name", ["report.md", "tables.md", "speed.md", "summary.csv"])
def test_report_refuses_a_results_folder_whose_outputs_name_its_inputs(tmp_path, capsys, how, name):
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RUNS))
    (tmp_path / "speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    for victim in ("runs.jsonl", "speed.jsonl"):
        before = {p: p.read_bytes() for p in (tmp_path / "runs.jsonl", tmp_path / "speed.jsonl")}
        _plant(tmp_path, name, tmp_path / victim, how)
        rc, _, err = _main(capsys, "report", "--results", str(tmp_path))
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert "a symbolic link" in err or "a hard link" in err, err
        assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("how", ["symlink", "hardlink"])
@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("speed", "speed.jsonl"),
        ("speed", "design.json"),
        ("speed", "speed.md"),
        ("speed", "tables.md"),
        ("tune", "tuning.json"),
        ("tune", "tuning.md"),
        ("tune", "speed.jsonl"),
        ("run", "runs.jsonl"),
        ("run", "report.md"),
    ],
)
def test_a_measuring_command_refuses_before_any_work_an_output_that_names_another_file(
    tmp_path, capsys, command, name, how
):
    """speed, tune and run: a results folder where a file they would write is another file's name (a results
    file of another kind, here or in another folder) is refused in one line, before any process starts."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RUNS))
    results = tmp_path / "results"
    results.mkdir()
    before = (other / "runs.jsonl").read_bytes()
    _plant(results, name, other / "runs.jsonl", how)
    args = ["--frameworks", "torch", "--tasks", "iris_mlp", "--results", str(results)]
    rc, out, err = _main(capsys, command, *args)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "a symbolic link" in err or "a hard link" in err, err
    assert (other / "runs.jsonl").read_bytes() == before and [p.name for p in results.iterdir()] == [name]


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink", "file"])
def test_merge_refuses_an_output_that_names_one_of_its_sources_by_any_path(tmp_path, capsys, spelling):
    src = tmp_path / "a"
    src.mkdir()
    (src / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RUNS))
    before = (src / "runs.jsonl").read_bytes()
    out = {"same": src, "dotdot": src / ".." / "a", "file": src / "runs.jsonl"}.get(spelling, tmp_path / "b")
    if spelling in ("symlink", "hardlink"):
        out.mkdir()
        _plant(out, "runs.jsonl", src / "runs.jsonl", spelling)
    rc, _, err = _main(capsys, "merge", str(src / "runs.jsonl"), "-o", str(out))
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert (src / "runs.jsonl").read_bytes() == before


def test_history_reads_and_writes_nothing_it_was_not_asked_to(tmp_path, capsys):
    (tmp_path / "speed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    rc, _, _ = _main(capsys, "history", "torch", "--results", str(tmp_path))
    assert rc == 0 and {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


HOSTILE_LINES = [  # the issue's rows: each once broke a reader that trusted what parsed
    {**ROWS[0], "provenance": None},
    {**ROWS[0], "sitting": {}},
    {**ROWS[0], "sitting": "x"},
    {**ROWS[0], "window_s": [float("inf")]},
]


@pytest.mark.slow
def test_the_path_drawing_tests_pass_in_a_copy_with_hostile_results_planted_above_it(tmp_path):
    """Hermetic: a copy of the repository at tmp/a/b/clone, hostile speed.jsonl and runs.jsonl files planted at
    ../../x/y, .. and ../.. of it; the tests that draw paths (the option fuzz, the row kinds) pass there, so
    no test reads what lies on the machine outside its own folders, the data and the repository."""
    import shutil
    import subprocess
    import sys

    clone = tmp_path / "a" / "b" / "clone"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    for rel in filter(None, tracked.stdout.decode().split("\0")):
        if (ROOT / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, clone / rel)
    hostile = "".join(json.dumps(r, allow_nan=True) + "\n" for r in HOSTILE_LINES) + '{"x": 1e999}\n[1,2]\n'
    for where in (tmp_path / "a" / "x" / "y", clone.parent, clone.parent.parent, tmp_path):
        where.mkdir(parents=True, exist_ok=True)
        for name in ("speed.jsonl", "runs.jsonl"):
            (where / name).write_text(hostile)
    tests = ["tests/test_fuzz.py::test_any_string_for_any_option_is_a_checked_config_or_one_line_and_exit_2"]
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *tests,
            "tests/test_row_kinds.py",
            "-m",
            "not slow",
        ],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
