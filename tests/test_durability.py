"""Nothing lost, nothing silent: memory caps, SIGKILL and resume, Ctrl-C, two harnesses on one folder,
corrupt downloads and cache entries."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np

import harness
from tasks import data
from tests.conftest import needs_data, real_data_dir
from tests.support.cli import ROOT, launch, wait_for_rows
from tests.support.cli import rows as lines


def test_a_worker_over_the_memory_cap_is_killed_as_oom_and_the_rest_runs(register, tmp_path):
    for mode in ("oom", "ok"):
        register(f"fake-{mode}", FAKE_MODE=mode)
    rc = harness.main(
        [
            "run",
            "--frameworks",
            "fake-oom,fake-ok",
            "--tasks",
            "iris_mlp",
            "--epochs",
            "1",
            "--max-rss-mib",
            "400",
            "--results",
            str(tmp_path),
        ]
    )
    assert rc == 0
    got = {r["framework"]: r for r in lines(tmp_path)}
    assert got["fake-oom"]["status"] == "oom" and "over --max-rss-mib 400" in got["fake-oom"]["error"]
    assert got["fake-oom"]["wall_s"] < 9  # killed when it crossed the cap, not when it finished
    assert got["fake-ok"]["status"] == "ok"


SLOW = ["run", "--frameworks", "fake-slow", "--tasks", "iris_mlp", "--epochs", "3"]


def test_sigkill_mid_matrix_then_resume_gives_one_ok_row_per_seed(tmp_path):
    seeds = "0,1,2,3,4,5"
    p = launch(*SLOW, "--seeds", seeds, "--results", str(tmp_path))
    wait_for_rows(tmp_path, 2)
    p.send_signal(signal.SIGKILL)
    p.wait()
    before = lines(tmp_path)  # loads: no torn line
    assert 2 <= len(before) < 6
    p = launch(*SLOW, "--seeds", seeds, "--results", str(tmp_path), "--resume")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert f"resume: {len(before)} pairing x seed(s) already recorded ok" in err
    rows = lines(tmp_path)
    assert sorted(r["seed"] for r in rows if r["status"] == "ok") == [0, 1, 2, 3, 4, 5]


def test_ctrl_c_records_the_running_worker_as_interrupted_and_says_how_to_resume(tmp_path):
    p = launch(*SLOW, "--seeds", "0,1,2,3", "--results", str(tmp_path))
    wait_for_rows(tmp_path, 1)
    time.sleep(0.3)  # the next worker is running
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "continue with: python harness.py run" in err and "--resume" in err and "Traceback" not in err
    rows = lines(tmp_path)
    assert rows[-1]["status"] == "interrupted" and all(r["status"] == "ok" for r in rows[:-1])
    p = launch(*SLOW, "--seeds", "0,1,2,3", "--results", str(tmp_path), "--resume")
    p.communicate(timeout=120)
    ok = [r["seed"] for r in lines(tmp_path) if r["status"] == "ok"]
    assert sorted(ok) == [0, 1, 2, 3]  # each exactly once


def test_two_harnesses_on_one_folder_never_interleave(tmp_path):
    a = launch(
        "run",
        "--frameworks",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--epochs",
        "20",
        "--seeds",
        ",".join(map(str, range(0, 8))),
        "--results",
        str(tmp_path),
    )
    b = launch(
        "run",
        "--frameworks",
        "fake-ok",
        "--tasks",
        "iris_mlp",
        "--epochs",
        "20",
        "--seeds",
        ",".join(map(str, range(100, 108))),
        "--results",
        str(tmp_path),
    )
    assert a.wait(timeout=120) == 0 and b.wait(timeout=120) == 0
    rows = lines(tmp_path)  # every line parses
    assert sorted(r["seed"] for r in rows) == [*range(0, 8), *range(100, 108)]
    assert all(len(r["history"]) == 20 for r in rows)


# ---------------------------------------------------------------- data: discard and fetch again


def test_a_corrupted_cache_entry_is_rebuilt(empty_cache):
    npz, prov = data.prepare("iris")
    good = np.load(npz)["x"].copy()
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte in the cached arrays
    npz.write_bytes(bytes(raw))
    npz2, prov2 = data.prepare("iris")
    assert npz2 == npz and prov2["cached"] is False  # detected by its recorded hash, rebuilt
    assert np.array_equal(np.load(npz2)["x"], good)


@needs_data
def test_a_truncated_download_is_discarded_and_fetched_again(empty_cache, monkeypatch):
    (empty_cache / "mnist").mkdir(parents=True)
    real = real_data_dir() / "mnist"
    for f in real.iterdir():
        shutil.copy(f, empty_cache / "mnist" / f.name)
    victim = empty_cache / "mnist" / "t10k-labels-idx1-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:100])  # a download cut short
    fetched = []

    def fake_download(dataset, src, dirs):  # the network, served from the real copy
        fetched.append(src.name)
        (empty_cache / dataset / src.name).write_bytes((real / src.name).read_bytes())
        return empty_cache / dataset / src.name

    monkeypatch.setattr(data, "_download", fake_download)
    npz, prov = data.prepare("mnist")
    assert fetched == ["t10k-labels-idx1-ubyte.gz"] and prov["files"]["t10k-labels-idx1-ubyte.gz"]["verified"] == "md5"
    assert os.path.getsize(victim) == os.path.getsize(real / victim.name)


def test_a_truncated_download_offline_is_one_clear_line(empty_cache, tmp_path):
    (empty_cache / "mnist").mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (empty_cache / "mnist" / name).write_bytes(b"\x1f\x8b truncated")
    env = {
        **os.environ,
        "DLBENCH_CACHE_DIR": str(empty_cache),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    env.pop("DLBENCH_DATA_DIR", None)
    r = subprocess.run(
        [sys.executable, "harness.py", "run", "--tasks", "mnist_cnn", "--results", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "could not be downloaded" in r.stderr
    assert not (tmp_path / "runs.jsonl").exists()


def test_resume_reruns_rows_from_another_version_or_commit(tmp_path):
    args = ["run", "--frameworks", "fake-ok", "--tasks", "iris_mlp", "--epochs", "2", "--results", str(tmp_path)]
    p = launch(*args, "--seeds", "0,1,2")
    assert p.wait(timeout=120) == 0
    rows = lines(tmp_path)
    rows[0]["provenance"]["environment_sha256"] = "another stack"  # as if torch had been upgraded since
    rows[1]["provenance"]["git"]["commit"] = "0" * 40  # an older commit of the harness
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    p = launch(*args, "--seeds", "0,1,2", "--resume")
    _, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "resume: 1 pairing x seed(s) already recorded ok with these settings, versions and commit, 2 to run" in err
    assert sorted(r["seed"] for r in lines(tmp_path)[3:]) == [0, 1]
    lock = lines(tmp_path)[-1]["provenance"]["lock"]
    assert lock is None or (lock["lock"].startswith("requirements/main-py") and len(lock["sha256"]) == 64)
