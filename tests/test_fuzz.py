"""Every input surface (docs/input-surfaces.md) against input hostile in form as well as content: special
files, unbounded size and depth, undecodable bytes and byte-order marks, empty, enormous and non-ASCII
strings, duplicated items, a full disk, missing tools, a terminal that cannot print, signals at random
moments. The promise: one line and exit status 2 for bad input, never a traceback, never a hang, the
good rows beside a bad one kept, nothing the harness started left running."""

from __future__ import annotations

import codecs
import contextlib
import errno
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import harness
from dlbench import files, protocol
from dlbench.analysis import microbench, parity, report
from dlbench.analysis import speed as speed_report
from dlbench.driver import provenance
from dlbench.results import read_rows
from tasks import data
from tests.support.cli import LAUNCH, ROOT
from tests.test_hostile import good_row, one_line_exit_2

FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)


@contextlib.contextmanager
def no_hang(seconds: float = 20):
    """Fail (not hang) if the block blocks longer than `seconds`."""

    def boom(*_):
        raise AssertionError(f"blocked for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def special(kind: str, path: Path) -> Path:
    """Make `path` a file of `kind`: fifo, folder, socket, zero (a link to /dev/zero: endless)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "socket":
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(path))
        s.close()
    else:
        path.symlink_to(f"/dev/{kind}")
    return path


SPECIAL = ["fifo", "folder", "socket", "zero"]  # /dev/null is a regular file in some containers


# ---------------------------------------------------------------- files: the bounded reader itself


@pytest.mark.parametrize("kind", SPECIAL)
def test_the_bounded_reader_refuses_every_kind_of_file_but_a_regular_one_at_once(tmp_path, kind):
    path = special(kind, tmp_path / "x")
    with no_hang(), pytest.raises(files.InputError, match="not a regular file"):
        files.read_bytes(path)
    with no_hang(), pytest.raises(files.InputError, match="not a regular file"):
        list(files.lines(path))


@FUZZ
@given(
    chunks=st.lists(st.binary(max_size=40) | st.sampled_from([b"\n", b"\r\n", b"x" * 100]), max_size=30),
    cap=st.integers(1, 64),
)
def test_lines_keeps_every_line_within_the_cap_and_numbers_the_long_ones(tmp_path, chunks, cap):
    path = tmp_path / "f"
    raw = b"".join(chunks)
    path.write_bytes(raw)
    got = list(files.lines(path, line_cap=cap))
    want = raw.split(b"\n")
    if want and want[-1] == b"":
        want = want[:-1]
    assert [n for n, _ in got] == list(range(1, len(want) + 1))
    for (_, line), w in zip(got, want, strict=True):  # a line is long when its content exceeds the cap
        assert line == (None if len(w) > cap else w.rstrip(b"\r"))


def test_a_file_over_its_size_cap_is_one_line_naming_it(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 2048)
    with pytest.raises(files.InputError, match=r"big\.json is 0 MiB, more than the 0 MiB"):
        files.read_bytes(path, cap=1024)


@FUZZ
@given(depth=st.integers(1, 200_000), brackets=st.sampled_from(["[]", "{}"]))
@example(depth=1_000_000, brackets="[]")
def test_json_of_any_depth_is_decoded_or_refused_never_a_recursion_error(depth, brackets):
    text = brackets[0] * depth + brackets[1] * depth if brackets == "[]" else '{"a":' * depth + "1" + "}" * depth
    try:
        value = files.loads(text)
    except ValueError as e:
        assert "nested deeper" in str(e) and depth > files.DEPTH_CAP - 1
    else:
        assert files.depth(value) <= files.DEPTH_CAP


@FUZZ
@given(
    row=st.fixed_dictionaries({"seed": st.integers(0, 9)}),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252"]),
    name=st.text(min_size=1, max_size=20),
)
def test_any_encoding_is_read_as_utf8_with_a_bom_dropped_or_refused_by_name(row, encoding, name):
    payload = json.dumps({**row, "name": name}, ensure_ascii=False)
    try:
        raw = payload.encode(encoding)
    except UnicodeEncodeError:
        return
    try:
        as_utf8 = json.loads(raw.decode("utf-8-sig"))  # what the bytes say when read as UTF-8 (BOM dropped)
    except ValueError:
        as_utf8 = None
    if encoding in ("utf-8", "utf-8-sig"):
        assert as_utf8 == {**row, "name": name}
    try:
        assert files.loads(raw) == as_utf8  # UTF-8 (or bytes that happen to be UTF-8), with or without a BOM
    except ValueError as e:
        assert as_utf8 is None and str(e).startswith(("not UTF-8", "not JSON")), e


# ---------------------------------------------------------------- every reader of results, in every form


def _runs_file(tmp_path: Path, form: str) -> Path:
    """A results folder whose runs.jsonl holds good rows around one line hostile in `form`."""
    good = [json.dumps(good_row(s)).encode() for s in range(2)]
    bad = {
        "deep": b"[" * 100_000 + b"]" * 100_000,
        "long": b'{"x": "' + b"y" * (files.LINE_CAP + 10) + b'"}',
        "undecodable": b"\xff\xfe\x00garbage",
        "bom": codecs.BOM_UTF8 + json.dumps(good_row(7)).encode(),
        "utf16": json.dumps(good_row(8)).encode("utf-16"),
        "nul": b"\x00" * 64,
        "duplicate": good[0],
        "empty": b"",
    }[form]
    (tmp_path / "runs.jsonl").write_bytes(good[0] + b"\n" + bad + b"\n" + good[1] + b"\n")
    return tmp_path


FORMS = ["deep", "long", "undecodable", "bom", "utf16", "nul", "duplicate", "empty"]


@pytest.mark.parametrize("form", FORMS)
def test_every_reader_keeps_the_good_rows_around_a_hostile_line(tmp_path, form):
    folder = _runs_file(tmp_path, form)
    with no_hang():
        found = read_rows(folder / "runs.jsonl")
    seeds = [r["seed"] for r in found.rows]
    assert seeds[0] == 0 and seeds[-1] == 1  # the rows on both sides survive
    if form == "bom":
        assert seeds == [0, 7, 1]  # a byte-order mark (an editor's) is not a reason to lose a row
    elif form in ("duplicate", "empty"):
        assert not found.bad
    else:
        assert [n for n, _ in found.bad] == [2], found.bad


def run_cli(*args, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """The harness as a user runs it (with the fake frameworks registered)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}  # the harness from any current folder
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=kw.pop("cwd", ROOT),
        capture_output=True,
        text=True,
        errors="backslashreplace",
        timeout=timeout,
        env=env,
        **kw,
    )


def _commands(folder: Path, other: Path) -> dict[str, list[str]]:
    return {
        "report": ["report", "--results", str(folder)],
        "compare": ["compare", str(folder), str(other), "--all", "--output", str(other / "c.md")],
        "merge": ["merge", str(folder), "-o", str(other)],
        "resume": [
            "run",
            "--frameworks",
            "fake-ok",
            "--tasks",
            "iris_mlp",
            "--epochs",
            "1",
            "--resume",
            "--results",
            str(folder),
        ],
    }


@pytest.mark.parametrize("command", ["report", "compare", "merge", "resume"])
@pytest.mark.parametrize("kind", ["fifo", "zero", "socket"])
def test_every_command_that_reads_results_refuses_a_special_file_in_one_line(tmp_path, command, kind, register, capsys):
    register("fake-ok", FAKE_MODE="ok")
    folder, other = tmp_path / "a", tmp_path / "b"
    folder.mkdir()
    other.mkdir()
    _runs_file(other, "duplicate")
    special(kind, folder / "runs.jsonl")
    with no_hang(60):  # in this process: the CLI's own path, without a second interpreter's start-up
        rc = harness.main(_commands(folder, other)[command])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("harness.py: error: "), err
    assert str(folder) in err[0]  # the line names the file (merge and --resume check it as a file first)


@pytest.mark.parametrize("command", ["report", "compare", "merge", "resume"])
def test_every_command_that_reads_results_survives_a_line_nested_a_hundred_thousand_deep(
    tmp_path, command, register, capsys
):
    register("fake-ok", FAKE_MODE="ok")
    folder, other = tmp_path / "a", tmp_path / "b"
    folder.mkdir()
    other.mkdir()
    _runs_file(folder, "deep")
    _runs_file(other, "empty")
    with no_hang(120):
        rc = harness.main(_commands(folder, other)[command])
    err = capsys.readouterr().err
    assert "line 2 (nested deeper than" in err and rc in (0, 1), err[-2000:]
    assert [r["seed"] for r in read_rows(folder / "runs.jsonl").rows][:2] == [0, 1]  # nothing lost


def test_speed_rows_parity_assessment_and_microbench_files_refuse_special_files(tmp_path):
    for name in ("speed.jsonl", "parity.csv", "assessment.json", "overhead.json"):
        special("fifo", tmp_path / name)
    (tmp_path / "microbench").mkdir()
    special("fifo", tmp_path / "microbench" / "torch.json")
    with no_hang():
        with pytest.raises(files.InputError, match="speed.jsonl is a FIFO"):
            speed_report.load_speed(tmp_path)
        verdicts, warning = parity.load_parity(tmp_path)
        assert verdicts == {} and "parity.csv is a FIFO" in warning
        with pytest.raises(files.InputError, match="assessment.json is a FIFO"):
            from dlbench.analysis import assess

            assess.render(tmp_path)
        assert "not readable" in microbench.overhead_table(tmp_path / "overhead.json")
        assert "No micro-benchmarks" in microbench.microbench_table(tmp_path / "microbench")


# ---------------------------------------------------------------- any set of valid rows: the report

STATUSES = ["ok", "error", "diverged", "crashed", "timeout", "oom", "interrupted", "unavailable", "lost"]
ROW = st.builds(
    lambda status, fw, task, profile, seed, tier, epoch, acc: good_row(
        seed,
        status=status,
        framework=fw,
        task=task,
        profile=profile,
        tier=tier,
        steady_epoch_s=epoch if status == "ok" else None,
        first_epoch_s=epoch if status == "ok" else None,
        test_accuracy=acc if status == "ok" else None,
        history=[{"epoch_s": epoch or 0.1}] if status == "ok" else None,
        error=None if status == "ok" else "cause",
    ),
    st.sampled_from(STATUSES),
    st.sampled_from(["torch", "jax", "fake-ok", "é"]),
    st.sampled_from(["iris_mlp", "mnist_cnn", "imdb_lstm", "nope"]),
    st.sampled_from(["quick", "full"]),
    st.integers(0, 3),
    st.sampled_from(["default", "tuned"]),
    st.floats(1e-4, 1e3),
    st.floats(0, 1),
)


@settings(FUZZ, max_examples=60)
@given(rows=st.lists(ROW, min_size=1, max_size=12))
@example(rows=[good_row(0, status="interrupted", test_accuracy=None, history=None, error="stopped by SIGINT")])
def test_any_set_of_valid_rows_gives_a_report(tmp_path, rows):
    """The states a user reaches by accident (only an interrupted first run, one framework failing every
    seed, a tier without its default) are all valid rows: the report renders them all."""
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    (folder / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert report.write_summary(folder, figures=False) == 0
    assert (folder / "report.md").read_text().strip()


# ---------------------------------------------------------------- options: every string, every subcommand

HOSTILE = st.sampled_from(
    [
        "",
        " ",
        ",",
        ",,",
        "all,",
        "torch,torch",
        "torch, torch",
        "a" * 5000,
        "é",
        "１",
        "١",
        "\u202e",
        "\n",
        "\x1b[31m",
        "-1",
        "0,0",
        "nan",
        "inf",
        "1e999",
        "5%%",
        "%",
        "💥",
        "../../..",
        "/",
        "/dev/null",
        "/proc/self/mem",
        "~",
        "torch@",
        "torch@2.15.0",
        "torch@1.0",
        "mxnet@1.9.1",
        "torch@2.15.0,torch@2.15.0",
        "@",
        "torch@x@y",
    ]
) | st.text(max_size=30).filter(lambda s: "\x00" not in s)
OPTIONS = {
    "run": [
        "--frameworks",
        "--tasks",
        "--seeds",
        "--results",
        "--data-dir",
        "--timeout",
        "--epochs",
        "--threads",
        "--max-rss-mib",
        "--order-seed",
        "--repeats",
        "--ray-address",
        "--profile",
        "--tier",
        "--device",
        "--precision",
        "--order",
        "--executor",
    ],
    "speed": [
        "--frameworks",
        "--tasks",
        "--anchor",
        "--budget",
        "--equivalence",
        "--target",
        "--pilot",
        "--results",
        "--data-dir",
        "--threads",
    ],
    "parity": ["--frameworks", "--tasks", "--timeout", "--results", "--threads"],
    "tune": [
        "--frameworks",
        "--tasks",
        "--budget",
        "--equivalence",
        "--results",
        "--data-dir",
        "--threads",
        "--device",
        "--precision",
    ],
    "report": ["--results", "--profile"],
    "compare": ["--threshold", "--output"],
    "history": ["--results", "--equivalence"],
    "merge": ["-o"],
    "assess": ["--results", "--data-dir"],
    "microbench": ["--frameworks", "--timeout"],
    "overhead": ["--frameworks", "--timeout"],
}


@pytest.fixture
def stubbed(monkeypatch, tmp_path):
    """The subcommands' library calls replaced by a recorder: what reaches them is a checked config."""
    from dlbench.driver import assess, matrix, releases
    from dlbench.driver import microbench as mb
    from dlbench.driver import parity as par
    from dlbench.driver import speed as sp
    from dlbench.driver import tuning as tu

    def unresolvable(rel, *_):  # a well-formed release in range would be built: refused here, as offline
        raise releases.UsageError(f"{rel.name} cannot be resolved (stubbed): no package index in this test")

    monkeypatch.setattr(releases, "resolve", unresolvable)
    calls = []
    for mod, fn in (
        (matrix, "run"),
        (sp, "run"),
        (par, "run"),
        (assess, "run"),
        (mb, "run"),
        (mb, "run_overhead"),
        (tu, "run"),
    ):
        monkeypatch.setattr(mod, fn, lambda cfg, *_, **__: calls.append(cfg) or 0)
    # A hostile --results that is valid becomes a folder here, not in the repo; the working folder is four
    # levels down so that "../../.." stays inside the test's own folder (nothing else on the machine is read).
    (tmp_path / "cwd" / "a" / "b" / "c").mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(tmp_path / "cwd" / "a" / "b" / "c")
    monkeypatch.setenv("DLBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return calls


@settings(FUZZ, max_examples=400)
@given(command=st.sampled_from(sorted(OPTIONS)), data=st.data(), value=HOSTILE)
def test_any_string_for_any_option_is_a_checked_config_or_one_line_and_exit_2(stubbed, capsys, command, data, value):
    option = data.draw(st.sampled_from(OPTIONS[command]))
    if value.startswith("/") and not value.startswith(("/dev/", "/proc/")):  # confined to the test's own folder
        value = str(Path.cwd().parents[3]) + value
    folders = {"compare": ["a", "b"], "merge": ["a"]}.get(command, [])
    positional = folders or {"history": ["torch"]}.get(command, [])
    for p in folders:
        Path(p).mkdir(exist_ok=True)
        (Path(p) / "runs.jsonl").write_text(json.dumps(good_row(0)) + "\n")
    capsys.readouterr()
    rc = harness.main([command, *positional, option, value])
    err = capsys.readouterr().err
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("harness.py: error: "), err
    else:
        assert rc in (0, 1) and "Traceback" not in err, err
        if command in ("run", "speed", "parity", "tune"):
            cfg = stubbed[-1]
            assert cfg.frameworks and len(set(cfg.frameworks)) == len(cfg.frameworks)
            assert cfg.tasks and len(set(cfg.tasks)) == len(cfg.tasks)
            assert str(cfg.results).strip()
        if command == "run":
            assert len(set(stubbed[-1].seeds)) == len(stubbed[-1].seeds)


@pytest.mark.parametrize(
    "args, words",
    [
        (["report", "--results", ""], "--results must name a folder"),
        (["compare", "", ""], "BASE must name a path"),
        (["compare", "a", "b", "--output", ""], "must name a path"),
        (["merge", "", "-o", "x"], "a merge source must name a path"),
        (["run", "--seeds", ""], "--seeds is empty"),
        (["run", "--seeds", "0,0"], "more than once"),
        (["run", "--seeds", "١"], "--seeds must be integers"),
        (["run", "--frameworks", "torch,torch"], "names torch more than once"),
        (["run", "--tasks", ""], "the task list is empty"),
        (["run", "--tasks", "iris_mlp,,mnist_cnn"], "empty item"),
        (["run", "--data-dir", ""], "--data-dir must name a folder"),
        (["run", "--data-dir", "/nonexistent/data"], "is not a folder"),
        (["speed", "--anchor", ""], "is empty"),
        (["speed", "--equivalence", "1_0%"], "must be a number or a percentage"),
    ],
)
def test_the_issues_empty_and_absurd_strings_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, args, words):
    monkeypatch.chdir(tmp_path)
    rc = harness.main(args)  # in this process (the subprocess path: test_a_disk_that_fills_up_...)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("harness.py: error: ") and words in err[0], err
    assert not list(tmp_path.iterdir())  # nothing written into the current folder


# ---------------------------------------------------------------- environment variables


@settings(FUZZ, max_examples=60)
@given(
    var=st.sampled_from(["DLBENCH_DATA_DIR", "DLBENCH_CACHE_DIR", "XDG_CACHE_HOME"]),
    value=st.sampled_from(["", " ", "/nonexistent", "relative", "é", "a" * 300, "/dev/null", "/proc"])
    | st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s),
)
def test_any_data_or_cache_variable_is_used_or_refused_in_one_line(stubbed, monkeypatch, capsys, var, value):
    monkeypatch.setenv(var, value)
    capsys.readouterr()
    rc = harness.main(["run", "--frameworks", "torch", "--tasks", "iris_mlp"])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err, err
    if rc == 2:
        assert len(err.strip().splitlines()) == 1, err
    try:  # the data step meets the cache folder: a DataError (one line in the harness) or arrays
        npz, _ = data.prepare("iris")
        assert npz.is_file()
    except data.DataError as e:
        assert "\n" not in str(e)


def test_a_data_dir_variable_that_names_no_folder_is_one_line(tmp_path):
    r = run_cli(
        "run",
        "--frameworks",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--results",
        str(tmp_path),
        env={"DLBENCH_DATA_DIR": str(tmp_path / "nowhere")},
        timeout=60,
    )
    one_line_exit_2(r, "DLBENCH_DATA_DIR", "is not a folder")


# ---------------------------------------------------------------- raw data: text from outside


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            import io

            t.addfile(info, io.BytesIO(blob))
    return path


@settings(FUZZ, max_examples=80)
@given(
    blob=st.binary(max_size=200) | st.text(max_size=50).map(lambda s: s.encode("utf-16")),
    name=st.sampled_from(
        [
            "aclImdb/train/pos/1_9.txt",
            "aclImdb/test/neg/" + "9" * 5000 + "_1.txt",
            "aclImdb/train/pos/١_٩.txt",
            "aclImdb/train/neg/2_99999.txt",
            "é/ü.txt",
        ]
    ),
)
def test_any_bytes_in_a_raw_review_are_a_dataerror_line_never_a_traceback(tmp_path, blob, name):
    tar = _tar(tmp_path / f"{uuid.uuid4().hex}.tar.gz", {name: blob})
    words = tmp_path / "w.json"
    words.write_text('{"the": 1}')
    with pytest.raises(data.DataError) as e:  # one review is never the 25,000 of a split: always refused
        data._etl_imdb({"aclImdb_v1.tar.gz": tar, "imdb_word_index.json": words})
    assert "\n" not in str(e.value)


@FUZZ
@given(text=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80))
def test_a_review_with_a_byte_order_mark_encodes_as_the_same_review_without(text):
    index = {"the": 1, "movie": 17}
    plain = data.encode_review(files.text(text.encode()), index)
    assert data.encode_review(files.text(codecs.BOM_UTF8 + text.encode()), index) == plain


# ---------------------------------------------------------------- tools, /proc, terminal


def test_provenance_without_git_or_nvidia_smi_on_the_path_is_null_with_the_reason(tmp_path):
    r = run_cli(
        "run",
        "--frameworks",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--epochs",
        "1",
        "--results",
        str(tmp_path),
        env={"PATH": str(tmp_path / "empty")},
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (row,) = [json.loads(x) for x in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert row["status"] == "ok"
    assert row["provenance"]["git"] == {"commit": None, "dirty": None, "unavailable": "git not found on the PATH"}


@settings(FUZZ, max_examples=30)
@given(
    tool=st.sampled_from(["git", "nvidia-smi", "true", "false", "/nonexistent/x", "/dev/null", "/"]),
    args=st.lists(st.text(max_size=10).filter(lambda s: "\x00" not in s), max_size=3),
)
def test_any_external_tool_call_returns_its_output_or_the_reason(tool, args):
    out, why = provenance.tool(tool, *args, timeout=20)
    assert (out is None) != (why is None) and (why is None or "\n" not in why)


def test_a_missing_proc_entry_is_null_and_the_machine_record_still_forms(monkeypatch):
    monkeypatch.setattr(provenance, "_read", lambda path: None)
    real = Path.read_text

    def no_proc(self, *a, **kw):
        if str(self).startswith("/proc"):
            raise FileNotFoundError(2, "No such file", str(self))
        return real(self, *a, **kw)

    monkeypatch.setattr(Path, "read_text", no_proc)
    provenance.machine.cache_clear()
    try:
        m = provenance.machine()
        assert m["boot_id"] is None and m["microcode"] is None and m["cpu"]
        assert provenance.cpu_busy_s() is None
        json.dumps(m)
    finally:
        provenance.machine.cache_clear()


# (LC_ALL=C alone is no test: Python 3.7+ coerces the C locale to UTF-8, PEP 538)
@pytest.mark.parametrize("env", [{"PYTHONIOENCODING": "ascii"}])
def test_a_terminal_that_cannot_print_non_ascii_gets_escapes_not_a_crash(tmp_path, env):
    (tmp_path / "runs.jsonl").write_text(json.dumps(good_row(0, framework="fake-ok", error=None)) + "\n")
    for args in (["report", "--results", str(tmp_path)], ["run", "--frameworks", "ü×"]):
        r = run_cli(*args, env=env, timeout=120)
        assert "Traceback" not in r.stderr and "UnicodeEncodeError" not in r.stderr, r.stderr[-2000:]
        assert r.returncode in (0, 2), r.stderr[-2000:]


# ---------------------------------------------------------------- a full disk, everywhere the program writes


def _fsize(limit: int):
    """A child's file-size limit: every write past `limit` bytes fails with EFBIG (Python ignores
    SIGXFSZ), as on a disk that fills up; works without root, unlike a small tmpfs."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


@pytest.mark.parametrize("command", ["report", "compare", "merge", "run", "parity", "data"])
def test_a_disk_that_fills_up_is_one_line_and_the_earlier_files_stay(tmp_path, command):
    folder, other = tmp_path / "a", tmp_path / "b"
    folder.mkdir()
    other.mkdir()
    _runs_file(folder, "duplicate")
    (other / "runs.jsonl").write_text(json.dumps(good_row(5)) + "\n")  # merge has rows to add
    before = {p: p.read_bytes() for p in (folder / "runs.jsonl", other / "runs.jsonl")}
    run = ["run", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--epochs", "1", "--results", str(folder)]
    parity = ["parity", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--results", str(folder)]
    args = {**_commands(folder, other), "run": run, "data": run, "parity": parity}[command]
    size = min(p.stat().st_size for p in before) + 10  # past the probe, short of the next row or report
    env = {**os.environ, "DLBENCH_CACHE_DIR": str(tmp_path / "cache")}
    os.environ["DLBENCH_CACHE_DIR"] = env["DLBENCH_CACHE_DIR"]
    try:  # the data is in the cache already (but for "data"): the disk fills at the row, not at the data
        if command != "data":
            data.prepare("iris")
    finally:
        os.environ.pop("DLBENCH_CACHE_DIR")
    r = subprocess.run(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_fsize(size),
        env=env,
    )
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ""
    if r.returncode == 0:  # every row it could not append is in a recovery file, and it says where
        kept = [line.rsplit("kept in ", 1)[1] for line in r.stderr.splitlines() if "kept in " in line]
        assert kept and all(read_rows(Path(k)).rows for k in kept), r.stderr[-2000:]
    elif command in ("run", "parity"):  # its worker's config or inputs, or the row, cannot be written: says which
        assert r.returncode == 2 and last.startswith("harness.py: error: cannot write "), r.stderr[-2000:]
    else:
        one_line_exit_2(r, "File too large", str(tmp_path))
    for p, content in before.items():  # nothing recorded is lost or cut
        assert p.read_bytes().startswith(content)
    for p in tmp_path.rglob("*.md"):  # a report is whole or absent, never cut
        assert p.read_text().endswith("\n") or p.stat().st_size == 0


# ---------------------------------------------------------------- processes: dead with the harness


def tagged(tag: str) -> set[int]:
    """Every live process whose environment carries `tag` (the harness's descendants, however re-parented)."""
    out = set()
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if tag.encode() in env.read_bytes() and "Z" not in (env.parent / "stat").read_text().rsplit(")", 1)[1][:3]:
                out.add(int(env.parent.name))
        except (OSError, IndexError):
            continue
    return out - {os.getpid()}


def _start(args: list[str], tmp_path: Path, tag: str) -> subprocess.Popen:
    env = {**os.environ, "DLBENCH_FUZZ_TAG": tag, "DLBENCH_CACHE_DIR": str(tmp_path / "c")}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _gone(tag: str, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not tagged(tag):
            return True
        time.sleep(0.2)
    return False


SUBCOMMANDS = {
    "run": ["run", "--frameworks", "fake-hang", "--tasks", "iris_mlp"],
    "speed": ["speed", "--frameworks", "torch,fake-hang", "--tasks", "iris_mlp", "--budget", "60"],
    "parity": ["parity", "--frameworks", "fake-hang", "--tasks", "iris_mlp"],
    "assess": ["assess"],
    "microbench": ["microbench", "--frameworks", "torch"],
    "overhead": ["overhead", "--frameworks", "torch"],
}


@pytest.mark.parametrize(
    "command, how",  # SIGKILL everywhere (no cleanup can run: the kernel's signal must do it); the others
    [(c, signal.SIGKILL) for c in sorted(SUBCOMMANDS)] + [("speed", signal.SIGTERM), ("parity", signal.SIGINT)],
)  # run's SIGINT, SIGTERM and SIGHUP: test_a_signal_at_any_moment_...
def test_every_process_a_subcommand_starts_dies_with_the_harness(tmp_path, command, how):
    tag = uuid.uuid4().hex
    p = _start([*SUBCOMMANDS[command], "--results", str(tmp_path / "r")], tmp_path, tag)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not (tagged(tag) - {p.pid}) and p.poll() is None:
        time.sleep(0.1)
    time.sleep(1)  # a child that stays, not a passing `git rev-parse`
    started = tagged(tag) - {p.pid}
    assert started, (
        f"{command} started no process ({p.poll()}): {p.stderr.read()[-2000:] if p.poll() is not None else ''}"
    )
    os.kill(p.pid, how)
    _, err = p.communicate(timeout=60)
    assert _gone(tag), f"{command}: still running after the harness ended by {how.name}: {tagged(tag)}"
    assert "Traceback" not in err, err[-2000:]


def _interrupted_before_the_harness_ran(err: str) -> bool:
    """A KeyboardInterrupt traceback from the interpreter's start-up (site's .pth files, the launcher's first
    lines, the import of harness.py) before harness.py's first statements make SIGINT a note: no frame in this
    project's files, and nothing after it."""
    lines = err.strip().splitlines()
    frames = [x for x in lines if x.lstrip().startswith('File "')]
    return (
        bool(lines)
        and lines[0].startswith(("Traceback", "Fatal Python error: init_import_site"))
        and lines[-1] == "KeyboardInterrupt"
        and "Exception ignored" not in err
        and not any(str(ROOT) in x for x in frames)
    )


@settings(FUZZ, max_examples=6)
@given(delay=st.floats(0, 3), how=st.sampled_from([signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]))
@example(delay=0.05, how=signal.SIGINT)  # during harness.py's imports (CI: "Exception ignored", and the run went on)
@example(delay=0.015, how=signal.SIGINT)  # about when the interpreter itself is still starting
def test_a_signal_at_any_moment_leaves_whole_rows_no_traceback_and_nothing_running(tmp_path, delay, how):
    tag, folder = uuid.uuid4().hex, tmp_path / uuid.uuid4().hex
    p = _start(
        [
            "run",
            "--frameworks",
            "fake-slow,fake-ok",
            "--tasks",
            "iris_mlp",
            "--seeds",
            "0,1",
            "--epochs",
            "4",
            "--results",
            str(folder),
        ],
        tmp_path,
        tag,
    )
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(p.pid, how)
    _, err = p.communicate(timeout=120)
    assert _gone(tag), tagged(tag)
    if _interrupted_before_the_harness_ran(err):  # Python's own start-up: no program can catch it
        assert p.returncode in (-signal.SIGINT, 1) and not folder.exists(), err[-2000:]  # 1: site's fatal error
        return
    assert "Traceback" not in err and "Exception ignored" not in err, err[-2000:]
    assert not (ROOT / ".git" / "index.lock").exists()  # its `git status`, killed with it, took no lock
    if how != signal.SIGKILL:
        # -how: the signal came before Python installed any handler and ended the interpreter itself
        assert p.returncode in (0, 1, 128 + how, -how), err[-2000:]
    path = folder / "runs.jsonl"
    if path.exists():  # every recorded line is a whole row
        assert not read_rows(path).bad, read_rows(path).bad


# ---------------------------------------------------------------- what workers print, addresses, caches, stamps


@settings(FUZZ, max_examples=300)
@given(
    line=st.text(max_size=300)
    | st.builds(lambda n: protocol.EVENT_PREFIX + "[" * n + "]" * n, st.integers(0, 50_000))
    | st.builds(lambda d: protocol.EVENT_PREFIX + json.dumps(d), st.dictionaries(st.text(max_size=8), st.integers()))
)
def test_any_line_a_framework_prints_is_an_event_or_its_own_output_never_an_exception(line):
    ev = protocol.parse(line)
    assert ev is None or ev["event"] in {e.value for e in protocol.Event}


@settings(FUZZ, max_examples=200)
@given(address=HOSTILE | st.builds(lambda h, p: f"{h}:{p}", st.text(max_size=300), st.integers(-10, 10**12)))
@example(address="é" * 100 + ":6379")
@example(address="127.0.0.1:99999999")
def test_any_ray_address_is_refused_in_one_line_or_tried_within_its_timeout(address):
    from dlbench.driver.config import UsageError
    from dlbench.driver.ray_executor import check_address

    t0 = time.monotonic()
    try:
        check_address(address, timeout_s=0.5)
    except UsageError as e:
        assert "\n" not in files.one_line(str(e))
    assert time.monotonic() - t0 < 15


@pytest.mark.parametrize("kind", SPECIAL)
def test_cache_records_and_environment_stamps_of_any_kind_are_rebuilt_or_ignored(empty_cache, tmp_path, kind):
    npz, _ = data.prepare("iris")
    meta = npz.with_suffix(".json")
    meta.unlink()
    special(kind, meta)
    with no_hang():
        try:
            again, info = data.prepare("iris")  # the record is unusable: the entry is rebuilt, or one line
            assert again == npz and info["cached"] is False
        except data.DataError as e:
            assert "\n" not in str(e)
    from frameworks import Environment

    venv = tmp_path / "venv"
    venv.mkdir()
    special(kind, venv / ".stamp")
    with no_hang():
        assert provenance.environment_lock(Environment(str(venv), "requirements/x.txt")) is None


@settings(FUZZ, max_examples=100)
@given(
    user=st.dictionaries(
        st.sampled_from(
            [
                "KERAS_BACKEND",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "PYTHONPATH",
                "CUDA_VISIBLE_DEVICES",
                "TF_NUM_INTRAOP_THREADS",
            ]
        ),
        st.text(max_size=20).filter(lambda s: "\x00" not in s),
    ),
    framework=st.sampled_from(["tensorflow", "keras-jax", "keras-torch", "torch", "jax"]),
    threads=st.integers(1, 2),
)
def test_the_users_own_framework_variables_never_reach_a_worker(monkeypatch, user, framework, threads):
    """A user's shell may set KERAS_BACKEND=jax or OMP_NUM_THREADS=1: a worker still runs the framework,
    the threads and the device asked for, and imports nothing from the user's PYTHONPATH."""
    from dlbench.driver.supervise import THREAD_VARS, worker_env
    from frameworks import FRAMEWORKS

    with monkeypatch.context() as m:
        for k in ("KERAS_BACKEND", "PYTHONPATH"):
            m.delenv(k, raising=False)
        for k, v in user.items():
            m.setenv(k, v)
        env = worker_env(threads, FRAMEWORKS[framework].env_vars, "cpu")
    assert "PYTHONPATH" not in env and env["CUDA_VISIBLE_DEVICES"] == ""
    assert all(env[k] == str(threads) for k in THREAD_VARS)
    assert env.get("KERAS_BACKEND") == FRAMEWORKS[framework].env_vars.get("KERAS_BACKEND", user.get("KERAS_BACKEND"))


def test_a_closed_stdout_ends_the_harness_quietly():
    p = subprocess.Popen(
        [sys.executable, "harness.py", "list"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    p.stdout.close()  # as `harness.py list | head -0` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 0 and "Traceback" not in err, err


def test_every_test_the_input_surfaces_page_names_exists():
    """docs/input-surfaces.md maps each surface to its tests: a renamed or removed test breaks this."""
    import re

    page = (ROOT / "docs" / "input-surfaces.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", page))
    defined = {
        m for f in (ROOT / "tests").glob("test_*.py") for m in re.findall(r"^def (test_\w+)", f.read_text(), re.M)
    }
    assert named and not named - defined, sorted(named - defined)


@given(code=st.sampled_from(sorted(errno.errorcode)), filename=st.one_of(st.none(), st.text(max_size=50)))
def test_an_oserror_line_advises_free_space_only_when_space_ran_out(code, filename):
    """A refused connection is not a full disk (Ray's ConnectionError is an OSError): the advice follows errno."""
    line = files.error_line(OSError(code, os.strerror(code), filename))
    assert "\n" not in line and os.strerror(code) in line
    spent = code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    assert ("free space" in line) == spent or "free space" in (filename or "")
    assert "free space" not in files.error_line(ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379"))
