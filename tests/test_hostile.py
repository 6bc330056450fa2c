"""Nothing lost under hostile input: every numbered case of issue 15, the readers under arbitrary input,
stop signals, and no orphaned worker. Bad input is one line and exit status 2; recorded rows survive."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import harness
from dlbench import results
from dlbench.analysis.parity import load_parity
from dlbench.results import append_row, read_rows
from dlbench.schemas import Run
from tests.support.cli import cli, launch, rows

ROOT_USER = os.geteuid() == 0  # root writes into read-only folders: those cases cannot be shown as root


def good_row(seed=0, **kw) -> dict:
    return {
        "schema": 1,
        "framework": "fake-ok",
        "task": "iris_mlp",
        "profile": "quick",
        "seed": seed,
        "status": "ok",
        "test_accuracy": 0.9,
        "steady_epoch_s": 0.1,
        "first_epoch_s": 0.2,
        "machine_busy": False,
        "history": [{"epoch_s": 0.2}, {"epoch_s": 0.1}],
        **kw,
    }


def one_line_exit_2(r: subprocess.CompletedProcess, *words: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("harness.py: error: ") and "Traceback" not in r.stderr, r.stderr
    assert all(w in lines[0] for w in words), lines[0]


def worker_pids(harness_pid: int) -> set[int]:
    """The worker processes (`python -m dlbench.worker CONFIG`) this harness started."""
    out = subprocess.run(["pgrep", "-P", str(harness_pid), "-f", "dlbench[.]worker "], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def alive(pids: set[int]) -> set[int]:
    return {p for p in pids if os.path.exists(f"/proc/{p}") and "Z" not in _state(p)}


def _state(pid: int) -> str:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def wait_for_worker(p: subprocess.Popen) -> set[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pids = worker_pids(p.pid)
        if pids:
            return pids
        time.sleep(0.1)
    raise AssertionError("no worker started")


# ---------------------------------------------------------------- 1, 2: fragments and full disks


def test_1_a_row_after_a_fragment_without_newline_starts_its_own_line(tmp_path):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(good_row(0)) + "\n" + json.dumps(good_row(1))[:40])  # a crash's leftover
    assert append_row(path, good_row(2)) is None
    found = read_rows(path)
    assert [r["seed"] for r in found.rows] == [0, 2] and [n for n, _ in found.bad] == [2]


def test_1_resume_after_a_fragment_keeps_the_new_rows(tmp_path):
    args = ["run", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--epochs", "1", "--results", str(tmp_path)]
    assert launch(*args, "--seeds", "0").wait(timeout=120) == 0
    with open(tmp_path / "runs.jsonl", "a") as f:
        f.write('{"framework": "fake-ok", "task": "iris_mlp", "sta')  # torn, no newline
    p = launch(*args, "--seeds", "0,1", "--resume")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    found = read_rows(tmp_path / "runs.jsonl")
    assert sorted(r["seed"] for r in found.rows) == [0, 1] and len(found.bad) == 1


@pytest.mark.parametrize("how", ["enospc", "short"])
def test_2_a_full_disk_leaves_no_fragment_and_keeps_the_row_in_a_recovery_file(tmp_path, monkeypatch, how):
    path = tmp_path / "runs.jsonl"
    append_row(path, good_row(0))
    before = path.read_bytes()

    def full_disk(fd, data):
        if how == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(fd, data[: len(data) // 2])  # the disk filled up half-way through the row

    monkeypatch.setattr(results, "_write", full_disk)
    spare = append_row(path, good_row(1))
    assert path.read_bytes() == before  # cut back: no fragment for the next append to glue onto
    assert spare is not None and [r["seed"] for r in read_rows(spare).rows] == [1]


def test_2_the_harness_says_where_the_row_went_when_the_disk_is_full(tmp_path, monkeypatch, register, capsys):
    register("fake-ok", FAKE_MODE="ok")

    def full_disk(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(results, "_write", full_disk)
    rc = harness.main(
        ["run", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--epochs", "1", "--results", str(tmp_path)]
    )
    assert rc == 0
    err = capsys.readouterr().err
    spare = next(tmp_path.glob("runs.recovered-*.jsonl"))
    assert f"kept in {spare}" in err and read_rows(spare).rows[0]["status"] == "ok"


# ---------------------------------------------------------------- 3: unusable output locations, before any work


def unusable_results(tmp_path) -> list[str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    return [str(a_file), "/dev/null", "/proc/self", str(tmp_path / ("x" * 300)), ""]


@pytest.mark.parametrize("cmd", ["run", "parity"])
def test_3_an_unusable_results_folder_is_refused_before_any_work(tmp_path, cmd):
    for where in unusable_results(tmp_path):
        t0 = time.monotonic()
        r = cli(cmd, "--frameworks", "torch", "--tasks", "iris_mlp", "--results", where)
        one_line_exit_2(r, "--results")
        assert time.monotonic() - t0 < 30  # no worker trained first


@pytest.mark.skipif(ROOT_USER, reason="root may write into read-only folders")
def test_3_a_read_only_results_folder_is_refused(tmp_path):
    tmp_path.chmod(0o555)
    try:
        one_line_exit_2(cli("run", "--tasks", "iris_mlp", "--results", str(tmp_path / "r")), "cannot write results")
    finally:
        tmp_path.chmod(0o755)


# ---------------------------------------------------------------- 4: SIGTERM, SIGHUP, and no orphans

SLOW = ["run", "--frameworks", "fake-slow", "--tasks", "iris_mlp", "--epochs", "50"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_4_sigterm_records_interrupted_says_how_to_resume_and_leaves_no_orphan(tmp_path, sig):
    p = launch(*SLOW, "--seeds", "0,1", "--results", str(tmp_path))
    pids = wait_for_worker(p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "--resume" in err and "Traceback" not in err
    (row,) = rows(tmp_path)
    assert row["status"] == "interrupted" and signal.Signals(sig).name in row["error"]
    time.sleep(0.5)
    assert not alive(pids)  # the worker is gone, not orphaned


def test_4_a_worker_dies_with_a_killed_harness(tmp_path):
    # fake-hang prints nothing while it hangs, so no broken pipe would stop it either
    p = launch("run", "--frameworks", "fake-hang", "--tasks", "iris_mlp", "--results", str(tmp_path))
    pids = wait_for_worker(p)
    time.sleep(0.5)  # past its start-up, into the hang
    p.kill()  # SIGKILL: the harness cannot clean up; the kernel's parent-death signal does
    p.wait()
    time.sleep(1)
    assert not alive(pids)


def test_ctrl_c_twice_quickly_still_records_the_row_and_the_hint(tmp_path):
    p = launch(*SLOW, "--seeds", "0,1", "--results", str(tmp_path))
    wait_for_worker(p)
    p.send_signal(signal.SIGINT)
    time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "--resume" in err and "Traceback" not in err, err
    assert rows(tmp_path)[-1]["status"] == "interrupted"


# ---------------------------------------------------------------- 5: Ctrl-C during parity


def test_5_ctrl_c_during_parity_stops_it_and_leaves_the_earlier_parity_csv(tmp_path):
    earlier = "task,framework,verdict\niris_mlp,torch,pass\n"
    (tmp_path / "parity.csv").write_text(earlier)
    p = launch("parity", "--frameworks", "fake-hang,fake-ok", "--tasks", "iris_mlp", "--results", str(tmp_path))
    wait_for_worker(p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "nothing written" in err and "fake-ok" not in err  # stopped: the next framework never started
    assert (tmp_path / "parity.csv").read_text() == earlier and not (tmp_path / "parity.md").exists()


# ---------------------------------------------------------------- 6, 8, 9: numbers and services


@pytest.mark.parametrize(
    "args, words",
    [
        (["run", "--timeout", "nan"], "--timeout must be a positive, finite number"),
        (["run", "--timeout", "inf"], "--timeout must be a positive, finite number"),
        (["run", "--max-rss-mib", "nan"], "--max-rss-mib must be a positive, finite number"),
        (["run", "--seeds", "99999999999999999999"], "--seeds must be between 0 and"),
        (["run", "--repeats", "100000"], "--repeats must be between 1 and 1000"),
        (["parity", "--timeout", "nan"], "--timeout must be a positive, finite number"),
        (["microbench", "--timeout", "0"], "--timeout must be a positive"),
        (["microbench", "--timeout", "-5"], "--timeout must be a positive"),
        (["run", "--results", ""], "--results must name a folder"),
    ],
)
def test_6_9_numbers_must_be_finite_and_in_range(args, words):
    one_line_exit_2(cli(*args), words)


def test_8_a_ray_address_that_does_not_answer_fails_fast(tmp_path):
    t0 = time.monotonic()
    r = cli(
        "run", "--tasks", "iris_mlp", "--executor", "ray", "--ray-address", "127.0.0.1:1", "--results", str(tmp_path)
    )
    one_line_exit_2(r, "no Ray cluster answers at 127.0.0.1:1")
    assert time.monotonic() - t0 < 30 and not (tmp_path / "runs.jsonl").exists()


def test_9_a_microbench_timeout_costs_that_framework_only(tmp_path):
    r = cli("microbench", "--frameworks", "torch", "--timeout", "3", "--results", str(tmp_path))
    assert r.returncode == 0 and "timed out after 3 s" in r.stderr and "Traceback" not in r.stderr, r.stderr


# ---------------------------------------------------------------- 7: parity with nothing to compare


def test_7_parity_where_no_framework_gave_a_result_still_writes_its_table(tmp_path, register, register_env):
    register_env("nowhere", ".venv-nowhere")
    register("ghost", env="nowhere")
    assert harness.main(["parity", "--frameworks", "ghost", "--tasks", "iris_mlp", "--results", str(tmp_path)]) == 0
    assert "unavailable" in (tmp_path / "parity.md").read_text()
    register("fake-hang", FAKE_MODE="hang")
    rc = harness.main(
        ["parity", "--frameworks", "fake-hang", "--tasks", "iris_mlp", "--timeout", "1", "--results", str(tmp_path)]
    )
    assert rc == 1 and "timeout" in (tmp_path / "parity.md").read_text()


# ---------------------------------------------------------------- readers


WRONG_TYPES = [
    "[1, 2]",
    '"text"',
    "null",
    json.dumps(good_row(seed=[1])),
    json.dumps(good_row(test_accuracy="high")),
    json.dumps(good_row(threads="two")),
    json.dumps(good_row(profile=5)),
    json.dumps(good_row(history=[1, 2, 3])),
    json.dumps(good_row(history=[{"val_loss": 1.0}])),
    json.dumps(good_row(provenance={"machine": "x"})),
    json.dumps(good_row(status="exploded")),
    json.dumps(good_row(test_accuracy=float("nan"))),
]


def test_report_skips_rows_of_the_wrong_type_with_their_line_number(tmp_path):
    # one report over all of them (a report costs seconds); the reader sees each on its own line
    (tmp_path / "runs.jsonl").write_text("\n".join([json.dumps(good_row(0)), *WRONG_TYPES]) + "\n")
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"skipped {len(WRONG_TYPES)} malformed line(s)" in r.stderr and "line 2 (" in r.stderr
    found = read_rows(tmp_path / "runs.jsonl")
    assert [n for n, _ in found.bad] == list(range(2, 2 + len(WRONG_TYPES))) and len(found.rows) == 1


def test_bytes_that_are_not_utf8_are_one_bad_line(tmp_path):
    (tmp_path / "runs.jsonl").write_bytes(json.dumps(good_row(0)).encode() + b"\n\xff\xfe\n")
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0 and "line 2 (not UTF-8" in r.stderr, r.stderr


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(f.alias or n for n, f in Run.model_fields.items())), value=JSON)
def test_any_json_value_in_any_field_never_breaks_the_reader(tmp_path, field, value):
    path = tmp_path / "runs.jsonl"
    path.write_text(json.dumps(good_row(0)) + "\n" + json.dumps({**good_row(1), field: value}) + "\n")
    found = read_rows(path)
    assert found.rows[0]["seed"] == 0 and len(found.rows) + len(found.bad) == 2
    for r in found.rows:  # what passes is what the report relies on
        assert isinstance(r["framework"], str) and isinstance(r["seed"], int)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=200))
def test_any_bytes_on_a_line_never_break_the_reader(tmp_path, junk):
    path = tmp_path / "runs.jsonl"
    path.write_bytes(json.dumps(good_row(0)).encode() + b"\n" + junk + b"\n")
    found = read_rows(path)
    assert found.rows[0]["seed"] == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_any_parity_csv_never_breaks_its_reader(tmp_path, text):
    (tmp_path / "parity.csv").write_text(text)
    verdicts, warning = load_parity(tmp_path)
    assert isinstance(verdicts, dict) and (warning is None or isinstance(warning, str))


def test_a_parity_csv_with_empty_or_numeric_verdicts_is_reported_not_trusted(tmp_path):
    (tmp_path / "runs.jsonl").write_text(json.dumps(good_row(0)) + "\n")
    (tmp_path / "parity.csv").write_text("task,framework,verdict\niris_mlp,fake-ok,\niris_mlp,b,3\n")
    r = cli("report", "--results", str(tmp_path))
    assert r.returncode == 0 and "2 row(s) with an unknown verdict skipped" in r.stderr, r.stderr


def test_report_of_a_profile_with_no_rows_is_refused_and_the_old_report_stays(tmp_path):
    (tmp_path / "runs.jsonl").write_text(json.dumps(good_row(0)) + "\n")
    (tmp_path / "report.md").write_text("earlier report")
    one_line_exit_2(cli("report", "--results", str(tmp_path), "--profile", "full"), "no rows of the full profile")
    assert (tmp_path / "report.md").read_text() == "earlier report"


# ---------------------------------------------------------------- the cache and data files


def test_a_cache_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("not a folder")
    env = {**os.environ, "DLBENCH_CACHE_DIR": str(blocker)}
    one_line_exit_2(cli("run", "--tasks", "iris_mlp", "--results", str(tmp_path / "r"), env=env), "DLBENCH_CACHE_DIR")


def test_cache_metadata_that_is_not_ours_is_rebuilt_and_an_npz_folder_is_one_line(empty_cache):
    from tasks import data

    npz, _ = data.prepare("iris")
    npz.with_suffix(".json").write_text("[]")
    npz2, prov = data.prepare("iris")
    assert npz2 == npz and prov["cached"] is False  # rebuilt, no AttributeError
    npz.unlink()
    npz.mkdir()
    with pytest.raises(data.DataError, match="is not a file: delete it"):
        data.prepare("iris")


@pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their mode")
def test_a_data_file_that_cannot_be_read_is_one_line(tmp_path):
    (tmp_path / "iris.csv").write_text("x")
    (tmp_path / "iris.csv").chmod(0o000)
    one_line_exit_2(
        cli("run", "--tasks", "iris_mlp", "--data-dir", str(tmp_path), "--results", str(tmp_path / "r")), "cannot use"
    )
